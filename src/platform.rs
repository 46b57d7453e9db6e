//! The operating system vblaunch runs on, as a value: per-OS behaviour
//! (VBoxManage's install places, shortcut formats, front-end program names)
//! takes an [`Os`], so every branch is tested on any host.

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
