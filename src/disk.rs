//! The file system facts the pre-flight checks need, asked of the OS for the
//! exact path (statvfs / GetDiskFreeSpaceExW through `fs4`; access(2) through
//! `rustix`). A volume list (what vblaunch used before) misses tmpfs, bind
//! mounts and other unlisted file systems and then answers for `/` instead.
use std::path::{Path, PathBuf};

/// The path itself if it exists, else its nearest existing ancestor (a
/// Snapshots folder VirtualBox has not created yet lives on its parent's
/// volume).
fn existing(path: &Path) -> Option<PathBuf> {
    path.ancestors()
        .find(|p| !p.as_os_str().is_empty() && std::fs::symlink_metadata(p).is_ok())
        .map(Path::to_path_buf)
}

/// Available bytes (for this user) on the file system holding `path`; None
/// when the OS cannot tell.
pub fn free(path: &Path) -> Option<u64> {
    let p = existing(path)?;
    match fs4::available_space(&p) {
        Ok(n) => Some(n),
        Err(e) => {
            log::debug!("free space of {}: {e}", p.display());
            None
        }
    }
}

/// Whether this user may write `path` (a file: change it; a folder: create
/// and remove files in it). A path not yet there is judged by the folder it
/// would be created in. Err says why not, in the OS's words.
pub fn writable(path: &Path) -> Result<(), String> {
    let Some(p) = existing(path) else {
        return Ok(()); // nothing to ask; VirtualBox will say
    };
    writable_os(&p)
}

#[cfg(unix)]
fn writable_os(p: &Path) -> Result<(), String> {
    // access(2) asks the kernel, which also says no for a read-only mount
    // (EROFS) and an immutable file or folder (EPERM), even for root.
    rustix::fs::access(p, rustix::fs::Access::WRITE_OK).map_err(|e| {
        let e = std::io::Error::from(e);
        match e.raw_os_error() {
            Some(30) => "it is on a read-only file system".to_string(),
            Some(1) => {
                "the file system does not allow changing it (an immutable flag?)".to_string()
            }
            _ => e.to_string(),
        }
    })
}

#[cfg(windows)]
fn writable_os(p: &Path) -> Result<(), String> {
    // The read-only attribute is what stops VirtualBox most often on Windows
    // (ACLs are not judged here: VirtualBox reports those itself).
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() && m.permissions().readonly() => {
            Err("the file has the read-only attribute".to_string())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_asked_for_the_exact_path_or_its_nearest_folder() {
        let dir = tempfile::tempdir().unwrap();
        let here = free(dir.path()).expect("the OS answers for a temp dir");
        assert!(here > 0);
        let later = free(&dir.path().join("Snapshots/not-yet.vdi")).unwrap();
        // The same volume; other tests may write meanwhile, so not equal.
        assert!(later.abs_diff(here) < 1 << 30, "{here} vs {later}");
    }

    #[cfg(unix)]
    #[test]
    fn a_folder_without_write_permission_is_not_writable() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(writable(dir.path()), Ok(()));
        assert_eq!(writable(&dir.path().join("new/file.vdi")), Ok(()));
        let ro = dir.path().join("ro");
        std::fs::create_dir(&ro).unwrap();
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o500)).unwrap();
        // root may write anyway (CI runs as root): then access(2) agrees.
        let root = rustix::process::geteuid().is_root();
        assert_eq!(writable(&ro).is_ok(), root, "{:?}", writable(&ro));
        std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o700)).unwrap();
    }
}
