//! Per-VM lock: a file under the data dir, locked with the OS's advisory lock
//! (`std::fs::File::try_lock`: flock on Unix, LockFileEx on Windows) and held
//! for the whole run. The OS releases it when the process dies, however it
//! dies, so a stale lock cannot block the next launch (unlike a pid file).
use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::exit::{fail, Code};

#[derive(Debug)]
pub struct VmLock {
    _file: File,
    pub path: PathBuf,
}

/// A file name for any VM name or UUID: ASCII letters, digits, `-` and `_`
/// stay; every other byte becomes `%XX` (so "Dev Box" and "Dev_Box" differ).
///
/// ```
/// assert_eq!(vblaunch::lock::file_name("Dev Box"), "Dev%20Box.lock");
/// assert_eq!(vblaunch::lock::file_name("Ä"), "%C3%84.lock");
/// ```
pub fn file_name(key: &str) -> String {
    let mut out = String::new();
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{out}.lock")
}

/// Take the lock for `key` (a VM name or UUID) without waiting.
pub fn acquire(dir: &Path, key: &str, vm_label: &str) -> Result<VmLock> {
    if let Some(data) = dir.parent() {
        crate::files::private_dir(data)?;
    }
    crate::files::private_dir(dir)?;
    let path = dir.join(file_name(key));
    let mut file = crate::files::open(
        &path,
        crate::files::no_follow()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true),
        "open lock file",
    )?;
    match file.try_lock() {
        Ok(()) => {
            // For the curious (and the error below on Unix): who holds it.
            let _ = file.set_len(0);
            let _ = writeln!(file, "{}", std::process::id());
            log::debug!("locked {}", path.display());
            Ok(VmLock { _file: file, path })
        }
        Err(TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path)
                .ok()
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .map(|pid| format!(" (process {pid})"))
                .unwrap_or_default();
            Err(fail(
                Code::LockHeld,
                format!(
                    "another vblaunch{holder} is already working on VM '{vm_label}'. Wait for it \
                     to finish; nothing was changed. (lock file: {})",
                    path.display()
                ),
            ))
        }
        Err(TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Whether a vblaunch holds the lock for `key` right now (it is working on
/// that VM). Probes without creating the file; a probe that gets the lock
/// releases it at once.
pub fn is_held(dir: &Path, key: &str) -> bool {
    let path = dir.join(file_name(key));
    match crate::files::open(
        &path,
        crate::files::no_follow().read(true).write(true),
        "probe",
    ) {
        Ok(f) => matches!(f.try_lock(), Err(TryLockError::WouldBlock)),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_and_distinct() {
        assert_eq!(file_name("Dev Box"), "Dev%20Box.lock");
        assert_ne!(file_name("Dev Box"), file_name("Dev_Box"));
        assert_eq!(file_name("é/..\\"), "%C3%A9%2F%2E%2E%5C.lock");
    }

    #[test]
    fn second_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = acquire(dir.path(), "My VM", "My VM").unwrap();
        let err = acquire(dir.path(), "My VM", "My VM").unwrap_err();
        assert_eq!(crate::exit::code_of(&err), Code::LockHeld);
        assert!(format!("{err:#}").contains("My VM"));
        assert!(acquire(dir.path(), "Other VM", "Other VM").is_ok());
        assert!(is_held(dir.path(), "My VM"));
        assert!(!is_held(dir.path(), "Other VM"));
        drop(first);
        assert!(!is_held(dir.path(), "My VM"));
        assert!(acquire(dir.path(), "My VM", "My VM").is_ok());
    }
}
