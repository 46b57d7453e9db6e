//! Shortcuts that run `vblaunch --pause-on-error launch <VM>`: a `.lnk` on
//! Windows, a `.desktop` entry on Linux, a `.command` file on macOS. The
//! renderers are pure and compiled on every OS (Linux CI tests all three);
//! only the choice of folder depends on the OS the program runs on.
//!
//! Every file written is recorded (path and content hash) in a manifest in
//! the data dir, so `--remove` deletes exactly what vblaunch created and
//! nothing a user changed since.
pub mod linux;
pub mod macos;
pub mod windows;

use std::path::{Path, PathBuf};

/// The GUI program's file name on Linux and macOS.
pub const GUI_BIN: &str = "vblaunchw";

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::platform::Os;

/// What the shortcut starts.
#[derive(Debug, Clone)]
pub struct Target {
    /// vblaunch's own absolute path.
    pub exe: PathBuf,
    /// What the shortcut passes to `launch`: the VM's name (or its UUID,
    /// for a name no shortcut format can carry).
    pub vm: String,
    /// The VM's name when `vm` is its UUID.
    pub name: Option<String>,
    /// Windows: VirtualBox.exe to take the icon from; Linux: an icon name.
    pub icon: Option<String>,
}

impl Target {
    /// `--` before the VM: a name that starts with `-` is still a name.
    pub fn args(&self) -> [&str; 4] {
        ["--pause-on-error", "launch", "--", &self.vm]
    }

    pub fn title(&self) -> String {
        format!("{} (vblaunch)", self.display_name())
    }

    /// The VM's name for people: control characters shown as `\n`, `\u{1b}`.
    pub fn display_name(&self) -> String {
        self.name.as_deref().map_or_else(
            || crate::logging::escape(&self.vm).into_owned(),
            |n| crate::logging::escape(n).into_owned(),
        )
    }

    pub fn description(&self) -> String {
        format!(
            "Start the VirtualBox VM \"{}\" with vblaunch: it first folds the last session into the base disk, so backups see a consistent disk",
            self.display_name()
        )
    }
}

/// A file name for the VM's shortcut on `os`: characters no file system
/// takes, and control characters, become `_`. On Linux the name is a
/// desktop file ID (ASCII letters, digits, `-`, `_`) that is distinct for
/// distinct VM names: every other byte, and `_` itself, becomes `_XX`
/// (so `Dev Box` → `Dev_20Box`, `Dev_Box` → `Dev_5FBox`).
pub fn file_name(os: Os, vm: &str) -> String {
    let safe: String = vm
        .chars()
        .map(|c| {
            if c.is_control() || "<>:\"/\\|?*".contains(c) {
                '_'
            } else {
                c
            }
        })
        .collect();
    let safe = safe.trim_matches(|c: char| c == '.' || c == ' ');
    match os {
        Os::Windows => format!("{safe} (vblaunch).lnk"),
        Os::Linux => {
            let mut id = String::new();
            for b in vm.bytes() {
                if b.is_ascii_alphanumeric() || b == b'-' {
                    id.push(b as char);
                } else {
                    id.push_str(&format!("_{b:02X}"));
                }
            }
            format!("vblaunch-{id}.desktop")
        }
        Os::MacOs => format!("{safe} (vblaunch).command"),
    }
}

/// The file's content, and whether it must be executable.
pub fn render(os: Os, t: &Target) -> (Vec<u8>, bool) {
    let exe = t.exe.to_string_lossy();
    let args = t.args();
    match os {
        Os::Windows => {
            let arguments = windows::quote_args(&args);
            let work_dir = windows_parent(&exe);
            let bytes = windows::render(&windows::Lnk {
                target: &exe,
                arguments: &arguments,
                working_dir: &work_dir,
                icon: t.icon.as_deref(),
                description: &t.description(),
            });
            (bytes, false)
        }
        Os::Linux => {
            let argv = [exe.as_ref(), args[0], args[1], args[2], args[3]];
            let text = linux::render(&linux::Entry {
                name: &t.title(),
                comment: &t.description(),
                argv: &argv,
                icon: t.icon.as_deref().unwrap_or("virtualbox"),
                vm: &t.vm,
                // vblaunchw shows its own windows; vblaunch needs a terminal.
                terminal: t.exe.file_name() != Some(std::ffi::OsStr::new(GUI_BIN)),
            });
            (text.into_bytes(), true)
        }
        Os::MacOs => {
            let argv = [exe.as_ref(), args[0], args[1], args[2], args[3]];
            (macos::render(&argv, &t.display_name()).into_bytes(), true)
        }
    }
}

/// The folder part of a Windows path, whatever OS runs this.
fn windows_parent(path: &str) -> String {
    match path.rfind(['\\', '/']) {
        Some(i) => path[..i].to_string(),
        None => String::new(),
    }
}

/// FNV-1a 64: identifies the bytes vblaunch wrote (not a security measure).
pub fn fingerprint(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    #[serde(default)]
    pub shortcut: Vec<Entry>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    pub vm: String,
    pub path: PathBuf,
    pub fingerprint: String,
}

impl Manifest {
    pub fn load(path: &Path) -> Result<Manifest> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).with_context(|| {
                format!("{} is damaged; move it away and run again", path.display())
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Manifest::default()),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// Write atomically: a crash leaves the old or the new manifest, never half of one.
    pub fn save(&self, path: &Path) -> Result<()> {
        crate::files::write_atomic(path, toml::to_string(self)?.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_names_are_safe_on_every_os() {
        assert_eq!(
            file_name(Os::Windows, "Dev: \"Box\"?"),
            "Dev_ _Box__ (vblaunch).lnk"
        );
        assert_eq!(
            file_name(Os::Linux, "Dev Box é"),
            "vblaunch-Dev_20Box_20_C3_A9.desktop"
        );
        // Distinct VMs get distinct Linux names (these collided).
        for (a, b) in [
            ("Dev Box", "Dev_Box"),
            ("Ü", "é"),
            ("a.b", "a_b"),
            ("x", "x_"),
        ] {
            assert_ne!(
                file_name(Os::Linux, a),
                file_name(Os::Linux, b),
                "{a} / {b}"
            );
        }
        assert_eq!(file_name(Os::MacOs, "a/b"), "a_b (vblaunch).command");
    }

    #[test]
    fn windows_shortcut_runs_launch_with_pause_from_vblaunch_folder() {
        let t = Target {
            exe: PathBuf::from(r"C:\Tools\vblaunch.exe"),
            vm: "Dev Box".into(),
            name: None,
            icon: Some(r"C:\Program Files\Oracle\VirtualBox\VirtualBox.exe".into()),
        };
        let (bytes, exec) = render(Os::Windows, &t);
        assert!(!exec);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.lnk");
        std::fs::write(&p, &bytes).unwrap();
        let link = lnk::ShellLink::open(&p, lnk::encoding::WINDOWS_1252).unwrap();
        assert_eq!(
            link.link_target().as_deref(),
            Some(r"C:\Tools\vblaunch.exe")
        );
        assert_eq!(
            link.string_data().command_line_arguments().as_deref(),
            Some("--pause-on-error launch -- \"Dev Box\"")
        );
        assert_eq!(
            link.string_data().working_dir().as_deref(),
            Some(r"C:\Tools")
        );
    }

    #[test]
    fn manifest_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m/shortcuts.toml");
        assert!(Manifest::load(&p).unwrap().shortcut.is_empty());
        let m = Manifest {
            shortcut: vec![Entry {
                vm: "Dev \"Box\"".into(),
                path: "/x/y.desktop".into(),
                fingerprint: fingerprint(b"abc"),
            }],
        };
        m.save(&p).unwrap();
        assert_eq!(Manifest::load(&p).unwrap().shortcut, m.shortcut);
        assert_ne!(fingerprint(b"abc"), fingerprint(b"abd"));
    }
}
