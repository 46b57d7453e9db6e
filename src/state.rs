//! What vblaunch remembers per VM, under `<data dir>/vms/<VM UUID>/`:
//! - `state.toml`: the last successful fold;
//! - `journal.toml`: the steps of the last run that changed the VM, each
//!   recorded before it starts and marked when it ends, so an interrupted run
//!   (power cut, kill) is noticed and reported by the next one;
//! - `settings-backups/<time>/`: copies of the VM's `.vbox` (and `.vbox-prev`)
//!   taken before the first change of each run (VirtualBox keeps only one
//!   previous version).
//!
//! Files are written atomically (temp file, fsync, rename), so a power cut
//! leaves the old or the new file, never a torn one.
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

/// One step of a run that changes the VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// What the step does, e.g. `delete snapshot {uuid} ('current')`.
    pub step: String,
    pub vm: String,
    pub snapshot: Option<String>,
    pub started: String,
    /// `ok`, or `failed: …`; absent while the step runs (or if the run died).
    pub outcome: Option<String>,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// `fold`, `restore`, …
    pub run: String,
    pub started: String,
    #[serde(default)]
    pub entries: Vec<JournalEntry>,
}

impl Journal {
    /// The step a previous run started but never finished.
    pub fn unfinished(&self) -> Option<&JournalEntry> {
        self.entries.iter().find(|e| e.outcome.is_none())
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

pub fn load_journal(data_dir: &Path, vm_uuid: &str) -> Result<Journal> {
    let path = dir(data_dir, vm_uuid).join("journal.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} is damaged", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Journal::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The journal of the current run, saved at every change.
pub struct JournalWriter {
    path: PathBuf,
    journal: Journal,
    /// A step's success is recorded in memory and written with the next
    /// write (the next step's intent, or on drop): nothing changes the VM
    /// between the two, so one write says both, and a crash in between reads
    /// as "interrupted in that step", which the next run checks anyway.
    unsaved: bool,
}

impl JournalWriter {
    /// A journal for a new run. Nothing is written until the first step
    /// begins: a run that changes nothing leaves the previous journal.
    pub fn start(data_dir: &Path, vm_uuid: &str, run: &str) -> Result<JournalWriter> {
        Ok(JournalWriter {
            path: dir(data_dir, vm_uuid).join("journal.toml"),
            journal: Journal {
                run: run.to_string(),
                started: now(),
                entries: Vec::new(),
            },
            unsaved: false,
        })
    }

    fn save(&mut self) -> Result<()> {
        write_atomic(&self.path, toml::to_string(&self.journal)?.as_bytes())?;
        self.unsaved = false;
        Ok(())
    }

    /// Run `f` as one journalled step: recorded before it starts, its outcome
    /// after it ends (a failure to write the journal stops the run first).
    pub fn step<T>(
        &mut self,
        step: String,
        vm: &str,
        snapshot: Option<&str>,
        f: impl FnOnce() -> Result<T>,
    ) -> Result<T> {
        self.begin(step, vm, snapshot)?;
        let result = f();
        match &result {
            Ok(_) => {
                self.set_outcome("ok");
                self.unsaved = true;
            }
            Err(e) => self.end(&format!("failed: {e}"))?,
        }
        result
    }

    fn set_outcome(&mut self, outcome: &str) {
        if let Some(e) = self.journal.entries.last_mut() {
            e.outcome = Some(outcome.to_string());
        }
    }

    /// Record a step before it runs.
    pub fn begin(&mut self, step: String, vm: &str, snapshot: Option<&str>) -> Result<()> {
        self.journal.entries.push(JournalEntry {
            step,
            vm: vm.to_string(),
            snapshot: snapshot.map(str::to_string),
            started: now(),
            outcome: None,
        });
        self.save()
    }

    /// Record how the last step ended.
    pub fn end(&mut self, outcome: &str) -> Result<()> {
        self.set_outcome(outcome);
        self.save()
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        if self.unsaved {
            if let Err(e) = self.save() {
                log::warn!(
                    "could not record the end of the last step in {}: {e:#} (the next run \
                     will re-check what VirtualBox holds)",
                    self.path.display()
                );
            }
        }
    }
}

/// Copy the VM's settings files into a new timestamped backup folder and
/// keep only the newest `keep` folders. Returns the folder.
pub fn backup_settings(
    data_dir: &Path,
    vm_uuid: &str,
    cfg_file: &Path,
    keep: usize,
) -> Result<PathBuf> {
    let root = dir(data_dir, vm_uuid).join("settings-backups");
    let stamp = now().replace(':', "-");
    let mut target = root.join(&stamp);
    let mut n = 1;
    while target.exists() {
        n += 1;
        target = root.join(format!("{stamp}-{n}"));
    }
    std::fs::create_dir_all(&target)
        .with_context(|| format!("cannot create {}", target.display()))?;
    let mut copied = 0;
    for suffix in ["", "-prev"] {
        let mut name = cfg_file
            .file_name()
            .context("settings file has a name")?
            .to_os_string();
        name.push(suffix);
        let src = cfg_file.with_file_name(&name);
        if src.is_file() {
            let data =
                std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
            write_atomic(&target.join(&name), &data)?;
            copied += 1;
        }
    }
    if copied == 0 {
        let _ = std::fs::remove_dir(&target);
        anyhow::bail!(
            "the VM's settings file {} does not exist; nothing to back up",
            cfg_file.display()
        );
    }
    let mut all: Vec<PathBuf> = std::fs::read_dir(&root)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    all.sort();
    let excess = all.len().saturating_sub(keep.max(1));
    for old in &all[..excess] {
        let _ = std::fs::remove_dir_all(old);
    }
    Ok(target)
}

/// The settings backups of a VM, oldest first.
pub fn settings_backups(data_dir: &Path, vm_uuid: &str) -> Vec<PathBuf> {
    let root = dir(data_dir, vm_uuid).join("settings-backups");
    let mut all: Vec<PathBuf> = match std::fs::read_dir(&root) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir())
            .collect(),
        Err(_) => Vec::new(),
    };
    all.sort();
    all
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

    #[test]
    fn journal_records_unfinished_steps() {
        let d = tempfile::tempdir().unwrap();
        let mut j = JournalWriter::start(d.path(), "vm", "fold").unwrap();
        let out = j.step("take".into(), "vm", None, || Ok(7)).unwrap();
        assert_eq!(out, 7);
        let failed = j.step("rename".into(), "vm", None, || -> Result<()> {
            anyhow::bail!("boom")
        });
        assert!(failed.is_err());
        j.begin("delete snapshot {s}".into(), "vm", Some("s"))
            .unwrap();
        // The process dies here: the next run reads the journal.
        let read = load_journal(d.path(), "vm").unwrap();
        assert_eq!(read.run, "fold");
        assert_eq!(read.entries[0].outcome.as_deref(), Some("ok"));
        assert_eq!(read.entries[1].outcome.as_deref(), Some("failed: boom"));
        assert_eq!(read.unfinished().unwrap().snapshot.as_deref(), Some("s"));
        j.end("ok").unwrap();
        assert!(load_journal(d.path(), "vm").unwrap().unfinished().is_none());
    }

    #[test]
    fn the_last_steps_success_is_written_when_the_writer_goes() {
        let d = tempfile::tempdir().unwrap();
        let mut j = JournalWriter::start(d.path(), "vm", "fold").unwrap();
        j.step("take".into(), "vm", None, || Ok(())).unwrap();
        j.step("delete".into(), "vm", Some("s"), || Ok(())).unwrap();
        // Each step's intent is on disk before it runs.
        let mid = load_journal(d.path(), "vm").unwrap();
        assert_eq!(mid.entries.len(), 2);
        assert_eq!(mid.entries[0].outcome.as_deref(), Some("ok"));
        drop(j);
        let read = load_journal(d.path(), "vm").unwrap();
        assert!(read.unfinished().is_none(), "{read:?}");
    }

    #[test]
    fn settings_backups_copy_both_files_and_keep_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let vmdir = d.path().join("My VM");
        std::fs::create_dir_all(&vmdir).unwrap();
        let cfg = vmdir.join("My VM.vbox");
        std::fs::write(&cfg, "settings").unwrap();
        std::fs::write(vmdir.join("My VM.vbox-prev"), "previous").unwrap();
        let mut made = Vec::new();
        for _ in 0..4 {
            made.push(backup_settings(d.path(), "vm", &cfg, 3).unwrap());
        }
        let all = settings_backups(d.path(), "vm");
        assert_eq!(all.len(), 3);
        assert_eq!(all.last(), made.last());
        let newest = all.last().unwrap();
        assert_eq!(
            std::fs::read_to_string(newest.join("My VM.vbox")).unwrap(),
            "settings"
        );
        assert_eq!(
            std::fs::read_to_string(newest.join("My VM.vbox-prev")).unwrap(),
            "previous"
        );
        assert!(!made[0].exists(), "the oldest was pruned");
        assert!(backup_settings(d.path(), "vm", &vmdir.join("none.vbox"), 3).is_err());
    }
}
