//! The operating system vblaunch runs on, as a value: per-OS behaviour
//! (VBoxManage's install places, shortcut formats, front-end program names)
//! takes an [`Os`], so every branch is tested on any host. Also the
//! platform's folders for vblaunch's own data (needed before the
//! [`crate::Context`] exists: the log file opens first).
use std::path::PathBuf;

/// Which operating system's defaults to use (a value, so every branch is tested on Linux).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Os {
    Windows,
    MacOs,
    Linux,
}

impl Os {
    pub fn current() -> Os {
        if cfg!(windows) {
            Os::Windows
        } else if cfg!(target_os = "macos") {
            Os::MacOs
        } else {
            Os::Linux
        }
    }
}

#[cfg(windows)]
/// Whether this process has a console window (`vblaunchw.exe` has none, and
/// then its children must not open one each).
pub fn has_console() -> bool {
    // SAFETY: no arguments; returns a window handle or null.
    !unsafe { windows_sys::Win32::System::Console::GetConsoleWindow() }.is_null()
}

/// The platform's folders for vblaunch (config, data).
pub fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "vblaunch")
}

/// `VBLAUNCH_DATA_DIR` (a portable install, or a test) or the platform data dir.
pub fn data_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("VBLAUNCH_DATA_DIR").filter(|v| !v.is_empty()) {
        return PathBuf::from(d);
    }
    project_dirs()
        .map(|d| d.data_local_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("vblaunch"))
}
