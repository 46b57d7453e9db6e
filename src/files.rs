//! Private, symlink-safe files: every file vblaunch writes goes through here.
//!
//! - Folders vblaunch creates are 0700 and its files 0600 (VirtualBox keeps a
//!   VM's `.vbox` at 0600 in a 0700 folder; copies of it must not be more
//!   readable than the original).
//! - A symbolic link where vblaunch writes is refused with an error naming
//!   the path, never followed: the target of a planted link is not appended
//!   to, truncated, created or replaced. Opens use `O_NOFOLLOW` on Unix (so
//!   even a link planted after the check is not followed); on Windows the
//!   check refuses reparse points (symlinks, junctions) and opens pass
//!   `FILE_FLAG_OPEN_REPARSE_POINT`.
//! - Atomic writes go to a fresh temp file (random name, created
//!   exclusively) in the target's folder, are fsynced and renamed into place:
//!   a power cut leaves the old or the new file, never a torn one, and a
//!   rename replaces a link at the target itself, never its target.
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

use crate::exit::{fail, Code};

/// The mode of vblaunch's files (Unix).
pub const FILE_MODE: u32 = 0o600;
/// The mode of the folders vblaunch creates (Unix).
pub const DIR_MODE: u32 = 0o700;

/// Whether `path` is a symbolic link (on Windows: any name-surrogate
/// reparse point, junctions included). A missing path is not.
pub fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// The error for a link where vblaunch would write.
pub fn link_error(path: &Path) -> anyhow::Error {
    fail(
        Code::Exists,
        format!(
            "{} is a symbolic link; vblaunch does not write through links. Remove the link \
             (or replace it by a real file or folder) and run again. Nothing was written there.",
            path.display()
        ),
    )
}

/// Refuse when a link sits at `path`.
pub fn refuse_link(path: &Path) -> Result<()> {
    if is_link(path) {
        return Err(link_error(path));
    }
    Ok(())
}

/// Create `dir` (and missing parents) with mode 0700, and refuse when it is
/// a link. An existing folder is left as it is.
pub fn create_dir(dir: &Path) -> Result<()> {
    refuse_link(dir)?;
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(DIR_MODE);
    }
    b.create(dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // A link created in between would have made `create` succeed through it.
    refuse_link(dir)
}

/// Like [`create_dir`], and also make an existing folder private (0700): for
/// the folders that are vblaunch's own (the data dir and those under it).
pub fn private_dir(dir: &Path) -> Result<()> {
    create_dir(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let md =
            std::fs::metadata(dir).with_context(|| format!("cannot read {}", dir.display()))?;
        if md.permissions().mode() & 0o077 != 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(DIR_MODE))
                .with_context(|| format!("cannot make {} private", dir.display()))?;
        }
    }
    Ok(())
}

/// Map "it was a link" from a no-follow open to [`link_error`].
fn open_error(e: std::io::Error, path: &Path, what: &str) -> anyhow::Error {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::ELOOP) {
        return link_error(path);
    }
    if is_link(path) {
        return link_error(path);
    }
    anyhow::Error::new(e).context(format!("cannot {what} {}", path.display()))
}

/// Options that create private files and never follow a link at the path.
pub fn no_follow() -> OpenOptions {
    let mut o = OpenOptions::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(FILE_MODE).custom_flags(libc::O_NOFOLLOW);
    }
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_FLAG_OPEN_REPARSE_POINT: u32 = 0x0020_0000;
        o.custom_flags(FILE_FLAG_OPEN_REPARSE_POINT);
    }
    o
}

/// Open `path` with `opts` (from [`no_follow`]), refusing a link there.
pub fn open(path: &Path, opts: &OpenOptions, what: &str) -> Result<File> {
    refuse_link(path)?;
    opts.open(path).map_err(|e| open_error(e, path, what))
}

/// Open (creating, 0600) a file to append to: the log.
pub fn open_append(path: &Path) -> Result<File> {
    open(path, no_follow().create(true).append(true), "open")
}

/// Write `bytes` to `path` atomically as a private (0600) file in one of
/// vblaunch's own folders: a link at `path` or at its folder is refused.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    create_dir(path.parent().context("a file path has a parent")?)?;
    write_atomic_mode(path, bytes, FILE_MODE)
}

/// Write `bytes` to `path` atomically with `mode` (Unix; ignored elsewhere),
/// in any folder (the user's desktop may well be a link). Missing folders
/// are created 0700; a link at `path` itself is refused.
pub fn write_atomic_mode(path: &Path, bytes: &[u8], mode: u32) -> Result<()> {
    let dir = path.parent().context("a file path has a parent")?;
    if !dir.is_dir() {
        create_dir(dir)?;
    }
    refuse_link(path)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    // tempfile creates the file exclusively (O_EXCL, never through a link)
    // under a fresh random name, 0600.
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{name}."))
        .suffix(".tmp")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", tmp.path().display()))?;
    #[cfg(unix)]
    if mode != FILE_MODE {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("cannot set the mode of {}", tmp.path().display()))?;
    }
    #[cfg(not(unix))]
    let _ = mode;
    tmp.persist(path)
        .map_err(|e| e.error)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    // Make the rename itself durable where the OS allows opening a directory.
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[cfg(unix)]
    #[test]
    fn files_are_private_and_folders_0700() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("new/sub/state.toml");
        write_atomic(&f, b"x").unwrap();
        assert_eq!(mode(&f), 0o600);
        assert_eq!(mode(&d.path().join("new")), 0o700);
        assert_eq!(mode(&d.path().join("new/sub")), 0o700);
        write_atomic_mode(&f, b"y", 0o400).unwrap();
        assert_eq!(mode(&f), 0o400);
        assert_eq!(std::fs::read(&f).unwrap(), b"y");
        // No temp file is left.
        assert_eq!(std::fs::read_dir(f.parent().unwrap()).unwrap().count(), 1);
        let log = d.path().join("new/log");
        open_append(&log).unwrap();
        assert_eq!(mode(&log), 0o600);
    }

    #[cfg(unix)]
    #[test]
    fn a_link_where_vblaunch_writes_is_refused_and_its_target_untouched() {
        let d = tempfile::tempdir().unwrap();
        let victim = d.path().join("victim");
        std::fs::write(&victim, "precious").unwrap();
        let link = d.path().join("state.toml");
        std::os::unix::fs::symlink(&victim, &link).unwrap();
        for err in [
            write_atomic(&link, b"x").unwrap_err(),
            open_append(&link).unwrap_err(),
        ] {
            assert_eq!(crate::exit::code_of(&err), Code::Exists, "{err:#}");
            assert!(format!("{err:#}").contains(&link.display().to_string()));
        }
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        assert!(is_link(&link));
        // A dangling link: its target is not created.
        let dangling = d.path().join("lock");
        std::os::unix::fs::symlink(d.path().join("created?"), &dangling).unwrap();
        assert!(open_append(&dangling).is_err());
        assert!(!d.path().join("created?").exists());
        // A linked folder.
        let real = d.path().join("real");
        std::fs::create_dir(&real).unwrap();
        std::os::unix::fs::symlink(&real, d.path().join("linked")).unwrap();
        assert!(write_atomic(&d.path().join("linked/f"), b"x").is_err());
        assert!(private_dir(&d.path().join("linked")).is_err());
        assert_eq!(std::fs::read_dir(&real).unwrap().count(), 0);
    }

    #[cfg(unix)]
    #[test]
    fn private_dir_tightens_an_existing_folder() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("data");
        std::fs::create_dir(&p).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        private_dir(&p).unwrap();
        assert_eq!(mode(&p), 0o700);
    }
}

#[cfg(test)]
mod portable_tests {
    use super::*;

    /// On every OS: an atomic write creates, then replaces, and leaves no
    /// temp file; the log opens for appending.
    #[test]
    fn atomic_writes_replace_and_leave_nothing_behind() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("sub").join("state.toml");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(std::fs::read(&f).unwrap(), b"two");
        assert_eq!(std::fs::read_dir(f.parent().unwrap()).unwrap().count(), 1);
        let mut log = open_append(&d.path().join("sub").join("log")).unwrap();
        log.write_all(b"x").unwrap();
        private_dir(&d.path().join("sub")).unwrap();
    }
}
