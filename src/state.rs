//! What vblaunch remembers per VM, in `<data dir>/vms/<VM UUID>/state.toml`:
//! the last successful fold. Written atomically (temp file, fsync, rename),
//! so a power cut leaves the old or the new file, never a torn one.
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmState {
    pub last_fold: Option<LastFold>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastFold {
    /// When the fold finished (ISO 8601, UTC).
    pub finished: String,
    pub duration_ms: u64,
    /// Size on disk of the differencing images merged by this fold.
    pub bytes_merged: u64,
    /// The snapshot the VM runs on since.
    pub snapshot: String,
    pub restore_points: usize,
}

pub fn dir(data_dir: &Path, vm_uuid: &str) -> PathBuf {
    data_dir
        .join("vms")
        .join(crate::lock::file_name(vm_uuid).trim_end_matches(".lock"))
}

pub fn load(data_dir: &Path, vm_uuid: &str) -> Result<VmState> {
    let path = dir(data_dir, vm_uuid).join("state.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} is damaged", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(VmState::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Write `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().context("a file path has a parent")?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let tmp = path.with_extension("tmp");
    {
        let mut f = std::fs::File::create(&tmp)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("cannot replace {}", path.display()))?;
    // Make the rename itself durable where the OS allows opening a directory.
    if let Ok(d) = std::fs::File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub fn save(data_dir: &Path, vm_uuid: &str, state: &VmState) -> Result<()> {
    let path = dir(data_dir, vm_uuid).join("state.toml");
    write_atomic(&path, toml::to_string(state)?.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_round_trips_and_starts_empty() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path(), "u-1").unwrap(), VmState::default());
        let s = VmState {
            last_fold: Some(LastFold {
                finished: "2026-11-26T07:00:00Z".into(),
                duration_ms: 1234,
                bytes_merged: 4 << 20,
                snapshot: "s".into(),
                restore_points: 1,
            }),
        };
        save(d.path(), "u-1", &s).unwrap();
        assert_eq!(load(d.path(), "u-1").unwrap(), s);
        assert!(!dir(d.path(), "u-1").join("state.tmp").exists());
    }
}
