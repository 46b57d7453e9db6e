//! The configuration file (TOML, strict: an unknown key is an error with
//! file:line:column). Global defaults at the top level, per-VM tables under
//! `[vm."<name or UUID>"]`. Works with no file at all.
//!
//! Precedence for every setting: command-line flag > `[vm."…"]` table >
//! top-level key > built-in default.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;
use serde::Deserialize;

use crate::exit::{fail, Code};
use crate::vbox::StartType;

pub const DEFAULT_SNAPSHOT_NAME: &str = "current";
pub const DEFAULT_GUARD_PROCESSES: &[&str] =
    &["VirtualBox", "VirtualBoxVM", "VBoxHeadless", "VBoxSDL"];
pub const DEFAULT_CALL_TIMEOUT_SECS: u64 = 300;
pub const DEFAULT_MERGE_STALL_WARNING_SECS: u64 = 120;
/// VirtualBox allows 250 snapshots per VM; more restore points than this make no sense.
pub const MAX_KEEP: u32 = 100;

/// `[hooks]` (defaults) or `[vm."…".hooks]`: argv arrays per event.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hooks {
    pub before_fold: Option<Vec<String>>,
    pub after_fold: Option<Vec<String>>,
    pub after_start: Option<Vec<String>>,
    pub after_exit: Option<Vec<String>>,
    pub timeout_secs: Option<u64>,
}

/// How vblaunch reads a VM before a fold (`vbox::quick`).
#[derive(Debug, Default, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum QuickRead {
    /// One `list --multiple` call plus the settings file, when the guard
    /// list watches every default front end; else `showvminfo` + `list hdds`.
    #[default]
    Auto,
    /// The quick read even with a narrower guard list.
    Always,
    /// Always `showvminfo` + `list hdds`.
    Never,
}

/// Settings that may be given globally or per VM.
#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VmTable {
    pub vboxmanage: Option<PathBuf>,
    pub snapshot_name: Option<String>,
    pub start_type: Option<StartType>,
    pub guard_processes: Option<Vec<String>>,
    pub wait_timeout_secs: Option<u64>,
    pub keep: Option<u32>,
    pub wait: Option<bool>,
    pub fold_on_exit: Option<bool>,
    pub hooks: Option<Hooks>,
}

#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub vboxmanage: Option<PathBuf>,
    pub snapshot_name: Option<String>,
    pub start_type: Option<StartType>,
    pub guard_processes: Option<Vec<String>>,
    pub wait_timeout_secs: Option<u64>,
    pub keep: Option<u32>,
    pub settings_backups: Option<u32>,
    pub merge_free_space_margin_mb: Option<u64>,
    pub wait: Option<bool>,
    pub fold_on_exit: Option<bool>,
    pub wait_poll_ms: Option<u64>,
    pub hooks: Option<Hooks>,
    pub call_timeout_secs: Option<u64>,
    pub merge_stall_warning_secs: Option<u64>,
    pub quick_read: Option<QuickRead>,
    #[serde(default)]
    pub vm: BTreeMap<String, VmTable>,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct EffectiveHooks {
    pub before_fold: Option<Vec<String>>,
    pub after_fold: Option<Vec<String>>,
    pub after_start: Option<Vec<String>>,
    pub after_exit: Option<Vec<String>>,
    pub timeout: Duration,
}

impl EffectiveHooks {
    pub fn get(&self, e: crate::hooks::Event) -> Option<&[String]> {
        use crate::hooks::Event::*;
        match e {
            BeforeFold => self.before_fold.as_deref(),
            AfterFold => self.after_fold.as_deref(),
            AfterStart => self.after_start.as_deref(),
            AfterExit => self.after_exit.as_deref(),
        }
    }
}

/// The loaded file (or none) and where it came from.
#[derive(Debug, Default, Clone)]
pub struct Config {
    pub file: ConfigFile,
    pub path: Option<PathBuf>,
}

/// Settings for one VM after precedence.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// The configured VBoxManage path and where it was set.
    pub vboxmanage: Option<(PathBuf, String)>,
    pub snapshot_name: String,
    pub start_type: StartType,
    pub guard_processes: Vec<String>,
    /// None: wait for VirtualBox to close for as long as it takes.
    pub wait_timeout: Option<Duration>,
    /// vblaunch snapshots to keep: the current one plus keep-1 restore points.
    pub keep: usize,
    /// How many copies of the VM's settings files to keep.
    pub settings_backups: usize,
    /// Free space required beyond the merged data, in bytes.
    pub merge_margin: u64,
    /// Stay until the VM's session ends.
    pub wait: bool,
    /// After the VM powers off (while waiting), merge the session into the base.
    pub fold_on_exit: bool,
    /// First interval between state polls while waiting (grows to 15 s).
    pub wait_poll: Duration,
    /// The hook per event (per VM, else global).
    pub hooks: EffectiveHooks,
    pub call_timeout: Duration,
    pub merge_stall_warning: Duration,
    pub quick_read: QuickRead,
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, col)
}

/// Parse and validate; `origin` names the file in errors.
pub fn from_toml_str(text: &str, origin: &str) -> Result<ConfigFile> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| {
        let (line, col) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        fail(
            Code::Usage,
            format!("{origin}:{line}:{col}: {}", e.message().trim_end()),
        )
    })?;
    validate(&file, text, origin)?;
    Ok(file)
}

/// Where a key is, for errors found after parsing (best effort: first match).
fn locate_key(text: &str, key: &str) -> String {
    text.lines()
        .position(|l| l.trim_start().starts_with(key))
        .map(|i| format!(":{}", i + 1))
        .unwrap_or_default()
}

fn validate(file: &ConfigFile, text: &str, origin: &str) -> Result<()> {
    let tables = std::iter::once((
        None,
        file.snapshot_name.as_ref(),
        file.guard_processes.as_ref(),
    ))
    .chain(file.vm.iter().map(|(name, t)| {
        (
            Some(name),
            t.snapshot_name.as_ref(),
            t.guard_processes.as_ref(),
        )
    }));
    for (vm, snap, guard) in tables {
        let wher = match vm {
            Some(v) => format!(" in [vm.\"{v}\"]"),
            None => String::new(),
        };
        if let Some(s) = snap {
            if s.trim().is_empty() || s.contains(['\n', '\r']) || looks_like_uuid(s) {
                return Err(fail(
                    Code::Usage,
                    format!(
                        "{origin}{}: snapshot_name{wher} must be a non-empty single-line name that is not a UUID (got {s:?})",
                        locate_key(text, "snapshot_name")
                    ),
                ));
            }
        }
        if let Some(g) = guard {
            if g.iter().any(|p| p.trim().is_empty()) {
                return Err(fail(
                    Code::Usage,
                    format!(
                        "{origin}{}: guard_processes{wher} contains an empty process name",
                        locate_key(text, "guard_processes")
                    ),
                ));
            }
        }
    }
    let keeps = std::iter::once(file.keep).chain(file.vm.values().map(|t| t.keep));
    for k in keeps.flatten() {
        if !(1..=MAX_KEEP).contains(&k) {
            return Err(fail(
                Code::Usage,
                format!(
                    "{origin}{}: keep must be between 1 and {MAX_KEEP} (got {k})",
                    locate_key(text, "keep")
                ),
            ));
        }
    }
    let hook_tables = std::iter::once(file.hooks.as_ref())
        .chain(file.vm.values().map(|t| t.hooks.as_ref()))
        .flatten();
    for h in hook_tables {
        for (name, argv) in [
            ("before_fold", &h.before_fold),
            ("after_fold", &h.after_fold),
            ("after_start", &h.after_start),
            ("after_exit", &h.after_exit),
        ] {
            if let Some(argv) = argv {
                if argv.first().is_none_or(|p| p.trim().is_empty()) {
                    return Err(fail(
                        Code::Usage,
                        format!(
                            "{origin}{}: the {name} hook must be a non-empty argv array, e.g. [\"restic\", \"backup\", \"…\"]",
                            locate_key(text, name)
                        ),
                    ));
                }
            }
        }
    }
    if file.settings_backups == Some(0) {
        return Err(fail(
            Code::Usage,
            format!(
                "{origin}{}: settings_backups must be at least 1",
                locate_key(text, "settings_backups")
            ),
        ));
    }
    for (key, v) in [
        ("call_timeout_secs", file.call_timeout_secs),
        ("merge_stall_warning_secs", file.merge_stall_warning_secs),
    ] {
        if v == Some(0) {
            return Err(fail(
                Code::Usage,
                format!(
                    "{origin}{}: {key} must be at least 1",
                    locate_key(text, key)
                ),
            ));
        }
    }
    Ok(())
}

pub fn looks_like_uuid(s: &str) -> bool {
    let s = s.trim_matches(|c| c == '{' || c == '}');
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

/// Load the config. `explicit` (from `--config` or `VBLAUNCH_CONFIG`) must
/// exist; the default path may be absent (built-in defaults then).
pub fn load(path: &Path, explicit: bool) -> Result<Config> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Config {
            file: from_toml_str(&text, &path.display().to_string())?,
            path: Some(path.to_path_buf()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => Ok(Config::default()),
        Err(e) => Err(fail(
            Code::Usage,
            format!("cannot read config file {}: {e}", path.display()),
        )),
    }
}

impl Config {
    /// The `[vm."…"]` table for a VM known by any of `keys` (the argument as
    /// given, the VM's name, its UUID).
    pub fn vm_table(&self, keys: &[&str]) -> Option<(&str, &VmTable)> {
        keys.iter().find_map(|k| {
            self.file
                .vm
                .get_key_value(*k)
                .map(|(name, t)| (name.as_str(), t))
        })
    }

    pub fn effective(&self, keys: &[&str]) -> Effective {
        let f = &self.file;
        let vm = self.vm_table(keys);
        let t = vm.map(|(_, t)| t);
        let origin = self
            .path
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "the config file".into());
        let vboxmanage = match (t.and_then(|t| t.vboxmanage.clone()), &f.vboxmanage) {
            (Some(p), _) => Some((
                p,
                format!("[vm.\"{}\"] vboxmanage in {origin}", vm.unwrap().0),
            )),
            (None, Some(p)) => Some((p.clone(), format!("vboxmanage in {origin}"))),
            (None, None) => None,
        };
        Effective {
            vboxmanage,
            snapshot_name: t
                .and_then(|t| t.snapshot_name.clone())
                .or_else(|| f.snapshot_name.clone())
                .unwrap_or_else(|| DEFAULT_SNAPSHOT_NAME.into()),
            start_type: t
                .and_then(|t| t.start_type)
                .or(f.start_type)
                .unwrap_or(StartType::Gui),
            guard_processes: t
                .and_then(|t| t.guard_processes.clone())
                .or_else(|| f.guard_processes.clone())
                .unwrap_or_else(|| {
                    DEFAULT_GUARD_PROCESSES
                        .iter()
                        .map(|s| s.to_string())
                        .collect()
                }),
            wait_timeout: t
                .and_then(|t| t.wait_timeout_secs)
                .or(f.wait_timeout_secs)
                .map(Duration::from_secs),
            keep: t.and_then(|t| t.keep).or(f.keep).unwrap_or(1) as usize,
            settings_backups: f.settings_backups.unwrap_or(10).max(1) as usize,
            merge_margin: f.merge_free_space_margin_mb.unwrap_or(256) << 20,
            wait: t.and_then(|t| t.wait).or(f.wait).unwrap_or(false),
            fold_on_exit: t
                .and_then(|t| t.fold_on_exit)
                .or(f.fold_on_exit)
                .unwrap_or(false),
            wait_poll: Duration::from_millis(f.wait_poll_ms.unwrap_or(2000).max(10)),
            hooks: {
                let g = f.hooks.clone().unwrap_or_default();
                let v = t.and_then(|t| t.hooks.clone()).unwrap_or_default();
                EffectiveHooks {
                    before_fold: v.before_fold.or(g.before_fold),
                    after_fold: v.after_fold.or(g.after_fold),
                    after_start: v.after_start.or(g.after_start),
                    after_exit: v.after_exit.or(g.after_exit),
                    timeout: Duration::from_secs(v.timeout_secs.or(g.timeout_secs).unwrap_or(600)),
                }
            },
            call_timeout: Duration::from_secs(
                f.call_timeout_secs.unwrap_or(DEFAULT_CALL_TIMEOUT_SECS),
            ),
            merge_stall_warning: Duration::from_secs(
                f.merge_stall_warning_secs
                    .unwrap_or(DEFAULT_MERGE_STALL_WARNING_SECS),
            ),
            quick_read: f.quick_read.unwrap_or_default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_config_gives_defaults() {
        let c = Config::default();
        let e = c.effective(&["MyVM"]);
        assert_eq!(e.snapshot_name, "current");
        assert_eq!(e.start_type, StartType::Gui);
        assert_eq!(e.guard_processes.len(), 4);
        assert_eq!(e.wait_timeout, None);
        assert_eq!(e.vboxmanage, None);
        assert_eq!(e.keep, 1);
        assert!(!e.wait && !e.fold_on_exit);
        assert_eq!(
            e.hooks,
            EffectiveHooks {
                timeout: Duration::from_secs(600),
                ..Default::default()
            }
        );
    }

    #[test]
    fn hooks_per_vm_override_the_defaults_event_by_event() {
        let text = r#"
[hooks]
after_fold = ["restic", "backup", "/vms"]
before_fold = ["true"]
timeout_secs = 60

[vm."A"]
wait = true
fold_on_exit = true
[vm."A".hooks]
after_fold = ["robocopy", "x", "y"]
"#;
        let c = Config {
            file: from_toml_str(text, "h.toml").unwrap(),
            path: None,
        };
        let a = c.effective(&["A"]);
        assert!(a.wait && a.fold_on_exit);
        assert_eq!(a.hooks.after_fold.as_deref().unwrap()[0], "robocopy");
        assert_eq!(a.hooks.before_fold.as_deref().unwrap()[0], "true");
        assert_eq!(a.hooks.timeout, Duration::from_secs(60));
        let b = c.effective(&["B"]);
        assert_eq!(b.hooks.after_fold.as_deref().unwrap()[0], "restic");
        assert!(!b.wait);
        let err = from_toml_str("[hooks]\nafter_fold = []\n", "h.toml").unwrap_err();
        assert!(format!("{err:#}").starts_with("h.toml:2:"), "{err:#}");
        assert!(
            from_toml_str("[hooks]\nafter_fold = \"restic backup\"\n", "h.toml").is_err(),
            "a shell string is not an argv"
        );
    }

    #[test]
    fn per_vm_table_overrides_globals() {
        let text = r#"
snapshot_name = "vbl"
start_type = "headless"
wait_timeout_secs = 60

[vm."Dev Box"]
start_type = "separate"
guard_processes = ["VBoxHeadless"]
vboxmanage = "/opt/vb/VBoxManage"
"#;
        let c = Config {
            file: from_toml_str(text, "t.toml").unwrap(),
            path: Some("t.toml".into()),
        };
        let e = c.effective(&["Dev Box"]);
        assert_eq!(e.snapshot_name, "vbl");
        assert_eq!(e.start_type, StartType::Separate);
        assert_eq!(e.guard_processes, ["VBoxHeadless"]);
        assert_eq!(e.wait_timeout, Some(Duration::from_secs(60)));
        let (p, src) = e.vboxmanage.unwrap();
        assert_eq!(p, PathBuf::from("/opt/vb/VBoxManage"));
        assert!(
            src.contains("[vm.\"Dev Box\"]") && src.contains("t.toml"),
            "{src}"
        );
        // Another VM only gets the globals; the table is also found by a later key (the UUID).
        assert_eq!(c.effective(&["Other"]).start_type, StartType::Headless);
        assert_eq!(
            c.effective(&["uuid-given", "Dev Box"]).start_type,
            StartType::Separate
        );
    }

    #[test]
    fn unknown_keys_are_errors_with_file_line_and_column() {
        let text = "snapshot_name = \"x\"\n\n[vm.\"A\"]\nstart_typ = \"gui\"\n";
        let err = from_toml_str(text, "/etc/v.toml").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.starts_with("/etc/v.toml:4:1:"), "{msg}");
        assert!(msg.contains("start_typ"), "{msg}");
        assert_eq!(crate::exit::code_of(&err), Code::Usage);
    }

    #[test]
    fn bad_values_name_their_line() {
        let err = from_toml_str("start_type = \"fullscreen\"\n", "c.toml").unwrap_err();
        assert!(format!("{err:#}").starts_with("c.toml:1:"), "{err:#}");
        let err = from_toml_str("x = 1\nsnapshot_name = \"\"\n", "c.toml").unwrap_err();
        assert!(format!("{err:#}").starts_with("c.toml:"), "{err:#}");
        let err = from_toml_str(
            "\nsnapshot_name = \"12345678-1234-1234-1234-123456789abc\"\n",
            "c.toml",
        )
        .unwrap_err();
        assert!(format!("{err:#}").starts_with("c.toml:2:"), "{err:#}");
        assert!(from_toml_str("guard_processes = [\"\"]\n", "c.toml").is_err());
        assert!(from_toml_str("call_timeout_secs = 0\n", "c.toml").is_err());
        let err = from_toml_str("\n[vm.\"A\"]\nkeep = 0\n", "c.toml").unwrap_err();
        assert!(format!("{err:#}").starts_with("c.toml:3:"), "{err:#}");
    }

    #[test]
    fn shipped_example_documents_every_key_and_parses() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/config/vblaunch.example.toml");
        let text = std::fs::read_to_string(path).unwrap();
        let file = from_toml_str(&text, path).unwrap();
        for key in [
            "vboxmanage",
            "snapshot_name",
            "start_type",
            "guard_processes",
            "wait_timeout_secs",
            "keep",
            "settings_backups",
            "merge_free_space_margin_mb",
            "wait",
            "fold_on_exit",
            "wait_poll_ms",
            "before_fold",
            "after_fold",
            "after_start",
            "after_exit",
            "timeout_secs",
            "call_timeout_secs",
            "merge_stall_warning_secs",
            "quick_read",
        ] {
            assert!(text.contains(&format!("{key} =")), "example lacks {key}");
        }
        assert!(!file.vm.is_empty(), "example shows a per-VM table");
    }

    #[test]
    fn missing_default_file_is_fine_but_missing_explicit_file_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("none.toml");
        assert!(load(&p, false).unwrap().path.is_none());
        let err = load(&p, true).unwrap_err();
        assert!(format!("{err:#}").contains("none.toml"));
    }

    #[test]
    fn uuid_detection() {
        assert!(looks_like_uuid("18580ff3-3d30-4242-b9bf-6fe37f9ff5f1"));
        assert!(looks_like_uuid("{18580ff3-3d30-4242-b9bf-6fe37f9ff5f1}"));
        assert!(!looks_like_uuid("current"));
    }
}
