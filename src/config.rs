//! The configuration file (TOML, strict: an unknown key is an error with
//! file:line:column). Global defaults at the top level, per-VM tables under
//! `[vm."<name or UUID>"]`. Works with no file at all.
//!
//! Precedence for every setting: command-line flag > `[vm."…"]` table >
//! top-level key > built-in default. This module layers the file
//! ([`Config::layered`]); the command line goes on top in
//! [`crate::Context::effective`], the one place that decides.
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

/// The table a `[header]` line opens, as its key path (`[vm."A".hooks]` →
/// `["vm", "A", "hooks"]`), parsed by toml itself so quoting is right.
fn header_path(line: &str) -> Option<Vec<String>> {
    let t = line.trim_start();
    if !t.starts_with('[') || t.starts_with("[[") {
        return None;
    }
    let mut v: toml::Table = toml::from_str(&format!("{t}\n")).ok()?;
    let mut path = Vec::new();
    loop {
        if v.len() != 1 {
            return Some(path);
        }
        let (k, inner) = v.into_iter().next()?;
        path.push(k);
        match inner {
            toml::Value::Table(t) => v = t,
            _ => return Some(path),
        }
    }
}

/// `:line` of `key` in the table at `table` (`[]` = top level, `["vm",
/// "A"]`, `["hooks"]`, …), also written as a dotted key; else the first line
/// that starts with `key`; else nothing.
fn locate(text: &str, table: &[&str], key: &str) -> String {
    let norm = |s: &str| {
        s.chars()
            .filter(|c| !c.is_whitespace() && *c != '"' && *c != '\'')
            .collect::<String>()
    };
    let mut current: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if let Some(h) = header_path(line) {
            current = h;
            continue;
        }
        if current.len() > table.len() || current.iter().zip(table).any(|(a, b)| a != b) {
            continue;
        }
        let Some((lhs, _)) = line.split_once('=') else {
            continue;
        };
        let mut want: Vec<&str> = table[current.len()..].to_vec();
        want.push(key);
        if norm(lhs) == norm(&want.join(".")) {
            return format!(":{}", i + 1);
        }
    }
    text.lines()
        .position(|l| l.trim_start().starts_with(key))
        .map(|i| format!(":{}", i + 1))
        .unwrap_or_default()
}

/// The longest snapshot name accepted (characters). VirtualBox has no
/// documented limit, but the name travels on every command line.
pub const MAX_NAME_CHARS: usize = 128;

/// Allowed ranges of the numeric settings (inclusive). Upper bounds keep
/// every duration addable to the clock and every size in range.
pub mod limits {
    /// 7 days: a single VBoxManage call (merges are not limited by it).
    pub const CALL_TIMEOUT_SECS: (u64, u64) = (1, 7 * 86_400);
    pub const MERGE_STALL_WARNING_SECS: (u64, u64) = (1, 86_400);
    /// 1 year (0 = do not wait).
    pub const WAIT_TIMEOUT_SECS: (u64, u64) = (0, 365 * 86_400);
    pub const WAIT_POLL_MS: (u64, u64) = (10, 600_000);
    /// 7 days.
    pub const HOOK_TIMEOUT_SECS: (u64, u64) = (1, 7 * 86_400);
    /// 1 PiB (2^30 MiB): in bytes still far from u64's end.
    pub const MERGE_FREE_SPACE_MARGIN_MB: (u64, u64) = (0, 1 << 30);
    pub const SETTINGS_BACKUPS: (u64, u64) = (1, 1000);
    pub const KEEP: (u64, u64) = (1, super::MAX_KEEP as u64);
}

/// Whether `name` is a label vblaunch gives restore points (`previous`,
/// `previous-N`): a snapshot name equal to one would be renamed into it.
fn is_restore_point_label(name: &str) -> bool {
    name == "previous"
        || name
            .strip_prefix("previous-")
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

fn validate(file: &ConfigFile, text: &str, origin: &str) -> Result<()> {
    let err = |table: &[&str], key: &str, msg: String| {
        let wher = match table {
            [] => String::new(),
            t => format!(
                " in [{}]",
                t.iter()
                    .map(
                        |p| if p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                            p.to_string()
                        } else {
                            format!("{p:?}")
                        }
                    )
                    .collect::<Vec<_>>()
                    .join(".")
            ),
        };
        fail(
            Code::Usage,
            format!("{origin}{}: {key}{wher} {msg}", locate(text, table, key)),
        )
    };
    let range = |table: &[&str], key: &str, v: Option<u64>, (lo, hi): (u64, u64)| match v {
        Some(v) if v < lo || v > hi => Err(err(
            table,
            key,
            format!("must be between {lo} and {hi} (got {v})"),
        )),
        _ => Ok(()),
    };
    let global = (
        Vec::<&str>::new(),
        file.snapshot_name.as_ref(),
        file.guard_processes.as_ref(),
        file.keep,
        file.wait_timeout_secs,
        file.hooks.as_ref(),
    );
    let tables = std::iter::once(global).chain(file.vm.iter().map(|(name, t)| {
        (
            vec!["vm", name.as_str()],
            t.snapshot_name.as_ref(),
            t.guard_processes.as_ref(),
            t.keep,
            t.wait_timeout_secs,
            t.hooks.as_ref(),
        )
    }));
    for (table, snap, guard, keep, wait_timeout, hooks) in tables {
        if let Some(s) = snap {
            if s.trim().is_empty()
                || s.chars().any(char::is_control)
                || crate::vbox::state::is_uuid(s)
            {
                return Err(err(
                    &table,
                    "snapshot_name",
                    format!("must be a non-empty single-line name without control characters that is not a UUID (got {:?})", crate::logging::escape(&s.chars().take(40).collect::<String>())),
                ));
            }
            let n = s.chars().count();
            if n > MAX_NAME_CHARS {
                return Err(err(
                    &table,
                    "snapshot_name",
                    format!("must be at most {MAX_NAME_CHARS} characters long (got {n})"),
                ));
            }
            if is_restore_point_label(s) {
                return Err(err(
                    &table,
                    "snapshot_name",
                    format!("must not be {s:?}: vblaunch names restore points \"previous\", \"previous-2\", …, so every fold would rename the current snapshot into one. Pick another name."),
                ));
            }
        }
        if let Some(g) = guard {
            if g.iter().any(|p| p.trim().is_empty()) {
                return Err(err(
                    &table,
                    "guard_processes",
                    "contains an empty process name".into(),
                ));
            }
        }
        range(&table, "keep", keep.map(u64::from), limits::KEEP)?;
        range(
            &table,
            "wait_timeout_secs",
            wait_timeout,
            limits::WAIT_TIMEOUT_SECS,
        )?;
        if let Some(h) = hooks {
            let mut ht = table.clone();
            ht.push("hooks");
            for (name, argv) in [
                ("before_fold", &h.before_fold),
                ("after_fold", &h.after_fold),
                ("after_start", &h.after_start),
                ("after_exit", &h.after_exit),
            ] {
                if let Some(argv) = argv {
                    if argv.first().is_none_or(|p| p.trim().is_empty()) {
                        return Err(err(
                            &ht,
                            name,
                            "must be a non-empty argv array, e.g. [\"restic\", \"backup\", \"…\"]"
                                .into(),
                        ));
                    }
                }
            }
            range(
                &ht,
                "timeout_secs",
                h.timeout_secs,
                limits::HOOK_TIMEOUT_SECS,
            )?;
        }
    }
    let top: &[&str] = &[];
    range(
        top,
        "settings_backups",
        file.settings_backups.map(u64::from),
        limits::SETTINGS_BACKUPS,
    )?;
    range(
        top,
        "call_timeout_secs",
        file.call_timeout_secs,
        limits::CALL_TIMEOUT_SECS,
    )?;
    range(
        top,
        "merge_stall_warning_secs",
        file.merge_stall_warning_secs,
        limits::MERGE_STALL_WARNING_SECS,
    )?;
    range(top, "wait_poll_ms", file.wait_poll_ms, limits::WAIT_POLL_MS)?;
    range(
        top,
        "merge_free_space_margin_mb",
        file.merge_free_space_margin_mb,
        limits::MERGE_FREE_SPACE_MARGIN_MB,
    )?;
    Ok(())
}

/// Load the config. `explicit` (from `--config` or `VBLAUNCH_CONFIG`) must
/// exist; the default path may be absent (built-in defaults then).
pub fn load(path: &Path, explicit: bool) -> Result<Config> {
    // A FIFO or device would block the read (or never end): refuse it.
    if let Ok(md) = std::fs::metadata(path) {
        if !md.is_file() {
            return Err(fail(
                Code::Usage,
                format!(
                    "config file {} is not a regular file; pass a TOML file",
                    path.display()
                ),
            ));
        }
    }
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

    /// The config file's settings for a VM known by any of `keys`: its
    /// `[vm."…"]` table over the top level over the built-in defaults. The
    /// command line goes on top in [`crate::Context::effective`].
    pub fn layered(&self, keys: &[&str]) -> Effective {
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
        let e = c.layered(&["MyVM"]);
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
        let a = c.layered(&["A"]);
        assert!(a.wait && a.fold_on_exit);
        assert_eq!(a.hooks.after_fold.as_deref().unwrap()[0], "robocopy");
        assert_eq!(a.hooks.before_fold.as_deref().unwrap()[0], "true");
        assert_eq!(a.hooks.timeout, Duration::from_secs(60));
        let b = c.layered(&["B"]);
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
        let e = c.layered(&["Dev Box"]);
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
        assert_eq!(c.layered(&["Other"]).start_type, StartType::Headless);
        assert_eq!(
            c.layered(&["uuid-given", "Dev Box"]).start_type,
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
        assert!(crate::vbox::state::is_uuid(
            "18580ff3-3d30-4242-b9bf-6fe37f9ff5f1"
        ));
        assert!(crate::vbox::state::is_uuid(
            "{18580ff3-3d30-4242-b9bf-6fe37f9ff5f1}"
        ));
        assert!(!crate::vbox::state::is_uuid("current"));
    }

    #[test]
    fn numbers_out_of_range_are_refused_with_line_and_range() {
        for (text, key, line) in [
            (
                "call_timeout_secs = 9223372036854775807\n",
                "call_timeout_secs",
                1,
            ),
            (
                "keep = 1\n[hooks]\ntimeout_secs = 9223372036854775807\n",
                "timeout_secs",
                3,
            ),
            ("[hooks]\ntimeout_secs = 0\n", "timeout_secs", 2),
            (
                "merge_free_space_margin_mb = 17592186044416\n",
                "merge_free_space_margin_mb",
                1,
            ),
            (
                "wait_timeout_secs = 18446744073709551615\n",
                "wait_timeout_secs",
                1,
            ),
            ("wait_poll_ms = 1\n", "wait_poll_ms", 1),
            ("settings_backups = 0\n", "settings_backups", 1),
            (
                "merge_stall_warning_secs = 0\n",
                "merge_stall_warning_secs",
                1,
            ),
            (
                "[vm.\"A\"]\nwait_timeout_secs = 99999999999\n",
                "wait_timeout_secs",
                2,
            ),
            ("[vm.\"A\".hooks]\ntimeout_secs = 0\n", "timeout_secs", 2),
        ] {
            let err = match from_toml_str(text, "c.toml") {
                Err(e) => e,
                Ok(f) => panic!("{text:?} was accepted: {f:?}"),
            };
            let msg = format!("{err:#}");
            assert!(
                msg.starts_with(&format!("c.toml:{line}: {key}")),
                "{text:?}: {msg}"
            );
            assert!(msg.contains("must be between"), "{msg}");
            assert_eq!(crate::exit::code_of(&err), Code::Usage);
        }
        let ok = "call_timeout_secs = 604800\nmerge_free_space_margin_mb = 1073741824\nwait_timeout_secs = 0\n[hooks]\ntimeout_secs = 1\n";
        let e = Config {
            file: from_toml_str(ok, "c.toml").unwrap(),
            path: None,
        }
        .layered(&["x"]);
        assert_eq!(e.merge_margin, 1 << 50);
        assert!(std::time::Instant::now()
            .checked_add(e.call_timeout)
            .is_some());
    }

    #[test]
    fn a_snapshot_name_that_is_a_restore_point_label_is_refused() {
        for (text, line) in [
            ("keep = 2\nsnapshot_name = \"previous\"\n", 2),
            ("keep = 3\nsnapshot_name = \"previous-2\"\n", 2),
            (
                "snapshot_name = \"ok\"\n[vm.\"A\"]\nkeep = 2\nsnapshot_name = \"previous-7\"\n",
                4,
            ),
        ] {
            let err = from_toml_str(text, "c.toml").unwrap_err();
            let msg = format!("{err:#}");
            assert!(
                msg.starts_with(&format!("c.toml:{line}: snapshot_name")),
                "{msg}"
            );
            assert!(msg.contains("restore points"), "{msg}");
        }
        assert!(from_toml_str("snapshot_name = \"previously\"\n", "c.toml").is_ok());
        assert!(from_toml_str("snapshot_name = \"previous-x\"\n", "c.toml").is_ok());
    }

    #[test]
    fn snapshot_names_are_bounded_and_free_of_control_characters() {
        let long = format!("snapshot_name = \"{}\"\n", "x".repeat(MAX_NAME_CHARS + 1));
        let msg = format!("{:#}", from_toml_str(&long, "c.toml").unwrap_err());
        assert!(msg.contains(&format!("at most {MAX_NAME_CHARS}")), "{msg}");
        assert!(msg.len() < 400, "the name is not echoed whole: {msg}");
        let ok = format!("snapshot_name = \"{}\"\n", "é".repeat(MAX_NAME_CHARS));
        assert!(from_toml_str(&ok, "c.toml").is_ok());
        assert!(from_toml_str("snapshot_name = \"a\\u001bb\"\n", "c.toml").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn a_config_path_that_is_not_a_regular_file_is_refused_without_reading() {
        let d = tempfile::tempdir().unwrap();
        let fifo = d.path().join("fifo.toml");
        assert!(std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success());
        let err = load(&fifo, true).unwrap_err();
        assert!(format!("{err:#}").contains("not a regular file"), "{err:#}");
        assert_eq!(crate::exit::code_of(&err), Code::Usage);
        assert!(load(d.path(), false).is_err(), "a folder");
    }

    /// Property: for any text built from config fragments (valid and
    /// invalid keys, values at and beyond every limit, broken syntax), the
    /// loader returns an error or a config whose effective settings are
    /// usable (durations addable to the clock), and never panics.
    #[test]
    fn the_loader_returns_an_error_or_a_usable_config_never_a_panic() {
        let keys = [
            "call_timeout_secs",
            "merge_stall_warning_secs",
            "wait_timeout_secs",
            "wait_poll_ms",
            "merge_free_space_margin_mb",
            "settings_backups",
            "keep",
            "timeout_secs",
            "snapshot_name",
            "guard_processes",
            "quick_read",
            "start_type",
            "before_fold",
            "wait",
        ];
        let values = [
            "0",
            "1",
            "-1",
            "10",
            "604800",
            "604801",
            "1073741824",
            "1073741825",
            "9223372036854775807",
            "18446744073709551615",
            "1e9",
            "\"previous\"",
            "\"previous-2\"",
            "\"\"",
            "\"x\"",
            "[]",
            "[\"\"]",
            "[\"a\"]",
            "true",
            "\"always\"",
            "\"gui\"",
            "{}",
            "\"a\\nb\"",
            "\"12345678-1234-1234-1234-123456789abc\"",
            "\"\u{1F600}\"",
        ];
        let headers = [
            "",
            "[hooks]",
            "[vm.\"A\"]",
            "[vm.\"A\".hooks]",
            "[vm.\"\"]",
            "[[vm]]",
            "[vm",
        ];
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        for _ in 0..3000 {
            let mut text = String::new();
            for _ in 0..1 + next(6) {
                match next(8) {
                    0 => text.push_str(headers[next(headers.len())]),
                    1 => text.push_str("= ="),
                    _ => text.push_str(&format!(
                        "{} = {}",
                        keys[next(keys.len())],
                        values[next(values.len())]
                    )),
                }
                text.push('\n');
            }
            let result = std::panic::catch_unwind(|| {
                from_toml_str(&text, "p.toml").map(|file| {
                    let c = Config { file, path: None };
                    let e = c.layered(&["A"]);
                    let now = std::time::Instant::now();
                    for d in [
                        Some(e.call_timeout),
                        Some(e.merge_stall_warning),
                        Some(e.wait_poll),
                        Some(e.hooks.timeout),
                        e.wait_timeout,
                    ] {
                        assert!(now.checked_add(d.unwrap_or_default()).is_some());
                    }
                    assert!(e.keep >= 1 && e.settings_backups >= 1);
                })
            });
            match result {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    assert_eq!(crate::exit::code_of(&err), Code::Usage, "{text:?}: {err:#}")
                }
                Err(_) => panic!("the loader panicked on {text:?}"),
            }
        }
    }
}
