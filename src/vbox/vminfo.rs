//! Pure parser of `VBoxManage showvminfo <vm> --machinereadable` (VirtualBox 7.x).
//!
//! Sharp edges this parser exists for (each recorded from real VBoxManage 7.2 in tests/fixtures):
//! - keys may be quoted (`"SATA Ctl-0-0"=…`: controller names contain spaces);
//! - ordinary string values are quoted with `\"` and `\\` escapes;
//! - some lines have no `=` at all (` rec_screen0`);
//! - snapshot names and descriptions are printed RAW: they may contain `"` and
//!   span several lines, even lines that look like `SnapshotName="…"`. They are
//!   read by structure: a name runs until the line before the matching
//!   `SnapshotUUID<suffix>=`, a description until a line ending in `"` that is
//!   followed by the next node's `SnapshotName…=` or `CurrentSnapshotName=`.
use std::collections::HashMap;
use std::path::PathBuf;

pub use super::state::VmState;

/// One snapshot of the tree, stored in [`VmInfo::snapshots`] (an arena).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    pub uuid: String,
    pub description: Option<String>,
    /// The position suffix VirtualBox prints: "" for the root, "-1-2" for the
    /// second child of the root's first child.
    pub node: String,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
}

/// A medium attached to a controller slot, as `"<ctl>-<port>-<dev>"="<path>"`
/// plus `"<ctl>-ImageUUID-<port>-<dev>"="<uuid>"`. The path is the CURRENT-STATE
/// medium (a differencing image once a snapshot exists). DVDs and floppies
/// with an image appear here too; [`crate::vbox::media`] tells hard disks apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attachment {
    pub controller: String,
    pub port: u32,
    pub device: u32,
    pub location: PathBuf,
    pub image_uuid: String,
}

impl Attachment {
    pub fn slot(&self) -> String {
        format!("{}-{}-{}", self.controller, self.port, self.device)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct VmInfo {
    pub name: String,
    pub uuid: String,
    /// VirtualBox prints `name="<inaccessible>"` for a VM whose settings it cannot read.
    pub accessible: bool,
    pub cfg_file: Option<PathBuf>,
    pub snapshot_folder: Option<PathBuf>,
    pub log_folder: Option<PathBuf>,
    /// `VMState` (see [`VmState`]).
    pub state: VmState,
    pub state_file: Option<PathBuf>,
    /// Present only while some process holds a session lock on the VM.
    pub session_name: Option<String>,
    pub attachments: Vec<Attachment>,
    pub snapshots: Vec<Snapshot>,
    pub current_snapshot: Option<String>,
    /// The UUIDs of the snapshots vblaunch recorded as its own in the VM's
    /// extradata (`vblaunch/own`, kept in the VM's `.vbox`, so it travels
    /// with the VM folder); None when the VM has no such record (managed by
    /// an older vblaunch, or never).
    pub recorded_own: Option<Vec<String>>,
}

impl VmInfo {
    pub fn snapshot(&self, uuid: &str) -> Option<&Snapshot> {
        self.snapshots.iter().find(|s| s.uuid == uuid)
    }

    pub fn current(&self) -> Option<&Snapshot> {
        self.current_snapshot
            .as_deref()
            .and_then(|u| self.snapshot(u))
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseError(pub String);

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cannot parse showvminfo output: {}", self.0)
    }
}

impl std::error::Error for ParseError {}

/// Split `key=value` where the key may be quoted. Returns None for lines
/// without a key (` rec_screen0`).
fn split_key(line: &str) -> Option<(String, &str)> {
    if let Some(rest) = line.strip_prefix('"') {
        let (key, after) = read_quoted(rest)?;
        let value = after.strip_prefix('=')?;
        Some((key, value))
    } else {
        let eq = line.find('=')?;
        let key = &line[..eq];
        if key.is_empty() || key.contains(char::is_whitespace) {
            return None;
        }
        Some((key.to_string(), &line[eq + 1..]))
    }
}

/// Read an escaped quoted string (the opening quote already consumed);
/// returns the unescaped text and what follows the closing quote.
fn read_quoted(s: &str) -> Option<(String, &str)> {
    let mut out = String::new();
    let mut chars = s.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some((_, 'n')) => out.push('\n'),
                Some((_, 'r')) => out.push('\r'),
                Some((_, 't')) => out.push('\t'),
                Some((_, other)) => out.push(other),
                None => out.push('\\'),
            },
            '"' => return Some((out, &s[i + 1..])),
            other => out.push(other),
        }
    }
    None
}

/// An ordinary value: quoted with escapes, or bare (numbers, `none`).
fn plain_value(raw: &str) -> String {
    match raw.strip_prefix('"') {
        Some(rest) => match read_quoted(rest) {
            Some((v, _)) => v,
            // no closing quote: keep what is there rather than fail
            None => rest.to_string(),
        },
        None => raw.to_string(),
    }
}

/// `SnapshotName-1-2` → Some("-1-2"); also for `SnapshotUUID…`/`SnapshotDescription…`.
fn snapshot_suffix<'a>(key: &'a str, prefix: &str) -> Option<&'a str> {
    let suffix = key.strip_prefix(prefix)?;
    let ok = suffix.is_empty()
        || (suffix.starts_with('-')
            && suffix[1..]
                .split('-')
                .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())));
    ok.then_some(suffix)
}

/// Whether a line starts the next snapshot node or the current-snapshot block,
/// or is the first line after the snapshot section (`GuestMemoryBalloon=`,
/// 7.2: the last node printed is not the current one after a restore, see
/// tests/fixtures/93-*), i.e. can follow the end of a raw description.
fn starts_snapshot_key(line: &str) -> bool {
    if line.starts_with("CurrentSnapshotName=\"") || line.starts_with("GuestMemoryBalloon=") {
        return true;
    }
    match line.split_once("=\"") {
        Some((key, _)) => snapshot_suffix(key, "SnapshotName").is_some(),
        None => false,
    }
}

/// Read a raw value starting at `lines[*i]` after `key="`; it ends at a line
/// ending in `"` for which `is_end(next_line)` holds. Advances `*i` to its last line.
fn raw_value(
    lines: &[&str],
    i: &mut usize,
    first: &str,
    is_end: impl Fn(Option<&str>) -> bool,
) -> Result<String, ParseError> {
    let mut acc = first.to_string();
    loop {
        if acc.ends_with('"') && is_end(lines.get(*i + 1).copied()) {
            acc.pop();
            return Ok(acc);
        }
        *i += 1;
        match lines.get(*i) {
            Some(l) => {
                acc.push('\n');
                acc.push_str(l);
            }
            None => {
                return Err(ParseError(
                    "unterminated snapshot name or description".into(),
                ))
            }
        }
    }
}

/// Why a read cannot be trusted, in words.
pub const CUT_OFF: &str = "VBoxManage writes names and paths in the character set of its locale \
     (on Windows: the ANSI code page) and stops its output, without an error, at the first \
     character that set cannot represent";

/// Whether `text` (VBoxManage output that always ends in a line break)
/// shows an encoding failure: cut off mid-line, or bytes that did not decode.
pub fn incomplete(text: &str) -> Option<String> {
    if text.contains('\u{fffd}') {
        return Some(format!(
            "the output holds bytes that are not text in the expected character set ({CUT_OFF})"
        ));
    }
    if !text.is_empty() && !text.ends_with('\n') {
        let last = text.rsplit('\n').next().unwrap_or(text);
        return Some(format!("the output is cut off after `{last}` ({CUT_OFF})"));
    }
    None
}

/// Parse the whole output.
pub fn parse(text: &str) -> Result<VmInfo, ParseError> {
    if let Some(why) = incomplete(text) {
        return Err(ParseError(why));
    }
    let lines: Vec<&str> = text.lines().collect();
    let mut kv: HashMap<String, String> = HashMap::new();
    let mut order: Vec<String> = Vec::new();
    let mut snaps: Vec<Snapshot> = Vec::new();
    let mut by_suffix: HashMap<String, usize> = HashMap::new();
    let mut current_name: Option<String> = None;

    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        // Raw snapshot values first: they must not go through the escape parser.
        if let Some((key, rest)) = line.split_once("=\"") {
            if let Some(suffix) = snapshot_suffix(key, "SnapshotName") {
                let uuid_key = format!("SnapshotUUID{suffix}=\"");
                let name = raw_value(&lines, &mut i, rest, |next| {
                    next.is_some_and(|n| n.starts_with(&uuid_key))
                })?;
                let parent = if suffix.is_empty() {
                    None
                } else {
                    let cut = suffix.rfind('-').unwrap_or(0);
                    match by_suffix.get(&suffix[..cut]) {
                        Some(&p) => Some(p),
                        None => {
                            return Err(ParseError(format!(
                                "snapshot node {suffix} appears before its parent"
                            )))
                        }
                    }
                };
                let idx = snaps.len();
                snaps.push(Snapshot {
                    name,
                    uuid: String::new(),
                    description: None,
                    node: suffix.to_string(),
                    parent,
                    children: Vec::new(),
                });
                if let Some(p) = parent {
                    snaps[p].children.push(idx);
                }
                if by_suffix.insert(suffix.to_string(), idx).is_some() {
                    return Err(ParseError(format!("snapshot node {suffix} appears twice")));
                }
                i += 1;
                continue;
            }
            if let Some(suffix) = snapshot_suffix(key, "SnapshotDescription") {
                let desc = raw_value(&lines, &mut i, rest, |next| match next {
                    None => true,
                    Some(n) => starts_snapshot_key(n),
                })?;
                match by_suffix.get(suffix) {
                    Some(&idx) => snaps[idx].description = Some(desc),
                    None => {
                        return Err(ParseError(format!(
                            "description for unknown snapshot node {suffix}"
                        )))
                    }
                }
                i += 1;
                continue;
            }
            if key == "CurrentSnapshotName" {
                current_name = Some(raw_value(&lines, &mut i, rest, |next| {
                    next.is_some_and(|n| n.starts_with("CurrentSnapshotUUID=\""))
                })?);
                i += 1;
                continue;
            }
        }
        if let Some((key, raw)) = split_key(line) {
            if let Some(suffix) = snapshot_suffix(&key, "SnapshotUUID") {
                let idx = *by_suffix.get(suffix).ok_or_else(|| {
                    ParseError(format!("snapshot UUID for unknown node {suffix}"))
                })?;
                snaps[idx].uuid = plain_value(raw);
            } else {
                if !kv.contains_key(&key) {
                    order.push(key.clone());
                }
                kv.insert(key, plain_value(raw));
            }
        }
        i += 1;
    }

    let name = kv
        .get("name")
        .cloned()
        .ok_or_else(|| ParseError("no name= line".into()))?;
    let uuid = kv
        .get("UUID")
        .cloned()
        .ok_or_else(|| ParseError("no UUID= line".into()))?;
    if name != "<inaccessible>" {
        for key in ["CfgFile", "VMState"] {
            if !kv.contains_key(key) {
                return Err(ParseError(format!(
                    "no {key}= line: the output is incomplete ({CUT_OFF})"
                )));
            }
        }
    }
    if let Some(s) = snaps.iter().find(|s| s.uuid.is_empty()) {
        return Err(ParseError(format!(
            "snapshot '{}' (node {}) has no UUID",
            s.name, s.node
        )));
    }
    let path = |k: &str| kv.get(k).filter(|v| !v.is_empty()).map(PathBuf::from);

    // Attachments: "<ctl>-ImageUUID-<port>-<dev>" names the slot; the location
    // is "<ctl>-<port>-<dev>". Walk in output order for a stable result.
    let mut attachments = Vec::new();
    for key in &order {
        let Some(pos) = key.rfind("-ImageUUID-") else {
            continue;
        };
        let controller = &key[..pos];
        let rest = &key[pos + "-ImageUUID-".len()..];
        let Some((port, device)) = rest.split_once('-') else {
            continue;
        };
        let (Ok(port), Ok(device)) = (port.parse::<u32>(), device.parse::<u32>()) else {
            continue;
        };
        let loc_key = format!("{controller}-{port}-{device}");
        let Some(location) = kv.get(&loc_key) else {
            continue;
        };
        if location == "none" || location == "emptydrive" || location.is_empty() {
            continue;
        }
        attachments.push(Attachment {
            controller: controller.to_string(),
            port,
            device,
            location: PathBuf::from(location),
            image_uuid: kv[key].clone(),
        });
    }

    let current_snapshot = kv.get("CurrentSnapshotUUID").cloned();
    if let (Some(u), Some(n)) = (&current_snapshot, &current_name) {
        match snaps.iter().find(|s| &s.uuid == u) {
            Some(s) if &s.name == n => {}
            Some(s) => {
                return Err(ParseError(format!(
                "current snapshot {u} is named '{}' in the tree but '{n}' in CurrentSnapshotName",
                s.name
            )))
            }
            None => {
                return Err(ParseError(format!(
                    "current snapshot {u} is not in the snapshot tree"
                )))
            }
        }
    }

    Ok(VmInfo {
        accessible: name != "<inaccessible>",
        name,
        uuid,
        cfg_file: path("CfgFile"),
        snapshot_folder: path("SnapFldr"),
        log_folder: path("LogFldr"),
        state: kv
            .get("VMState")
            .map(|s| VmState::parse(s))
            .unwrap_or_default(),
        state_file: path("VMStateFile"),
        session_name: kv.get("SessionName").cloned().filter(|s| !s.is_empty()),
        attachments,
        snapshots: snaps,
        current_snapshot,
        // Not printed by showvminfo; read from the settings file by the caller.
        recorded_own: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    #[test]
    fn a_restored_vm_whose_current_snapshot_is_not_printed_last_parses() {
        // Restored to 'a' (two-line description): 'a' is current, its child
        // 'b' is printed after the current-snapshot block.
        let vm = parse(&crate::fixture(
            "93-showvminfo-restored-current-not-last.stdout",
        ))
        .unwrap();
        assert_eq!(vm.snapshots.len(), 2);
        assert_eq!(
            vm.snapshots[0].description.as_deref(),
            Some("first\nline two")
        );
        assert_eq!(vm.snapshots[1].name, "b");
        assert_eq!(vm.snapshots[1].description.as_deref(), Some("second"));
        assert_eq!(vm.snapshots[1].parent, Some(0));
        assert_eq!(vm.current().map(|s| s.name.as_str()), Some("a"));
    }

    #[test]
    fn parses_recorded_vm_without_snapshots() {
        let vm = parse(&fixture("08-showvminfo-no-snapshot.stdout")).unwrap();
        assert_eq!(vm.name, "TestVM");
        assert_eq!(vm.uuid, "18580ff3-3d30-4242-b9bf-6fe37f9ff5f1");
        assert_eq!(vm.state, "poweroff");
        assert!(vm.accessible);
        assert!(vm.snapshots.is_empty());
        assert_eq!(vm.current_snapshot, None);
        assert_eq!(
            vm.cfg_file.as_deref(),
            Some(std::path::Path::new(
                "/home/user/vbox/vms/TestVM/TestVM.vbox"
            ))
        );
        assert_eq!(vm.attachments.len(), 1);
        let a = &vm.attachments[0];
        assert_eq!(a.slot(), "SATA-0-0");
        assert_eq!(a.location, PathBuf::from("/home/user/vbox/disks/base.vdi"));
        assert_eq!(a.image_uuid, "23efa5b1-d77e-4182-934e-73737e5ccb8b");
        assert_eq!(vm.session_name, None);
    }

    #[test]
    fn parses_recorded_three_level_tree() {
        let vm = parse(&fixture("21-showvminfo-3-snapshots.stdout")).unwrap();
        let names: Vec<_> = vm.snapshots.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["older", "previous", "current"]);
        assert_eq!(vm.snapshots[0].parent, None);
        assert_eq!(vm.snapshots[1].parent, Some(0));
        assert_eq!(vm.snapshots[2].parent, Some(1));
        assert_eq!(vm.snapshots[2].node, "-1-1");
        let cur = vm.current().unwrap();
        assert_eq!(cur.name, "current");
        assert_eq!(cur.uuid, "689c6b87-da89-4146-8531-2a5cf329cc1c");
        assert!(cur.children.is_empty());
        assert_eq!(
            vm.attachments[0].image_uuid,
            "3462b2bb-99c9-4e73-acf7-3497dac9f1c7"
        );
    }

    #[test]
    fn parses_recorded_one_snapshot() {
        let vm = parse(&fixture("12-showvminfo-1-snapshot.stdout")).unwrap();
        assert_eq!(vm.snapshots.len(), 1);
        assert_eq!(vm.current().unwrap().name, "current");
    }

    const HEAD: &str = "name=\"My \\\"VM\\\" é\"\nUUID=\"ab408727-e82f-4444-a90f-c1f1f761d25b\"\nCfgFile=\"/tmp/v m/My VM.vbox\"\nVMState=\"saved\"\nVMStateFile=\"/tmp/a b/x.sav\"\n rec_screen0\n\"SATA Ctl-0-0\"=\"/tmp/v m/d.vdi\"\n\"SATA Ctl-ImageUUID-0-0\"=\"c18415ec-b083-4796-88a9-8bad73495098\"\n\"SATA Ctl-1-0\"=\"none\"\n";

    #[test]
    fn unescapes_values_and_quoted_keys() {
        let vm = parse(HEAD).unwrap();
        assert_eq!(vm.name, "My \"VM\" é");
        assert_eq!(vm.state, "saved");
        assert!(vm.state.allows_fold());
        assert_eq!(vm.state_file, Some(PathBuf::from("/tmp/a b/x.sav")));
        assert_eq!(vm.attachments.len(), 1);
        assert_eq!(vm.attachments[0].controller, "SATA Ctl");
        assert_eq!(vm.attachments[0].location, PathBuf::from("/tmp/v m/d.vdi"));
    }

    #[test]
    fn reads_raw_multiline_descriptions_that_look_like_keys() {
        // As printed by real VirtualBox 7.2.22 for a description containing a
        // quote, a newline and a fake SnapshotName line.
        let text = format!(
            "{HEAD}SnapshotName=\"user \"one\"\"\nSnapshotUUID=\"bebce420-c05d-4570-9d7c-ed169dd81995\"\n\
SnapshotDescription=\"line1 \"q\"\nline2 SnapshotName=\"fake\"\"\n\
SnapshotName-1=\"current\"\nSnapshotUUID-1=\"b6793db9-cec1-42f5-b25d-981bb0f53ea0\"\n\
SnapshotDescription-1=\"vblaunch x\"\n\
CurrentSnapshotName=\"current\"\nCurrentSnapshotUUID=\"b6793db9-cec1-42f5-b25d-981bb0f53ea0\"\n\
CurrentSnapshotNode=\"SnapshotName-1\"\nGuestMemoryBalloon=0\n"
        );
        let vm = parse(&text).unwrap();
        assert_eq!(vm.snapshots.len(), 2);
        assert_eq!(vm.snapshots[0].name, "user \"one\"");
        assert_eq!(
            vm.snapshots[0].description.as_deref(),
            Some("line1 \"q\"\nline2 SnapshotName=\"fake\"")
        );
        assert_eq!(vm.snapshots[1].description.as_deref(), Some("vblaunch x"));
        assert_eq!(
            vm.current().unwrap().uuid,
            "b6793db9-cec1-42f5-b25d-981bb0f53ea0"
        );
    }

    #[test]
    fn multiline_snapshot_name_ends_at_its_uuid_line() {
        let text = format!(
            "{HEAD}SnapshotName=\"a\nb\"\nSnapshotUUID=\"11111111-1111-1111-1111-111111111111\"\n\
CurrentSnapshotName=\"a\nb\"\nCurrentSnapshotUUID=\"11111111-1111-1111-1111-111111111111\"\n"
        );
        let vm = parse(&text).unwrap();
        assert_eq!(vm.snapshots[0].name, "a\nb");
        assert_eq!(vm.current().unwrap().name, "a\nb");
    }

    #[test]
    fn builds_branching_trees_with_duplicate_names() {
        let text = format!(
            "{HEAD}SnapshotName=\"current\"\nSnapshotUUID=\"00000000-0000-0000-0000-000000000001\"\n\
SnapshotName-1=\"x\"\nSnapshotUUID-1=\"00000000-0000-0000-0000-000000000002\"\n\
SnapshotName-1-1=\"current\"\nSnapshotUUID-1-1=\"00000000-0000-0000-0000-000000000003\"\n\
SnapshotName-2=\"y\"\nSnapshotUUID-2=\"00000000-0000-0000-0000-000000000004\"\n\
CurrentSnapshotName=\"current\"\nCurrentSnapshotUUID=\"00000000-0000-0000-0000-000000000003\"\n"
        );
        let vm = parse(&text).unwrap();
        assert_eq!(vm.snapshots.len(), 4);
        assert_eq!(vm.snapshots[0].children, vec![1, 3]);
        assert_eq!(vm.snapshots[2].parent, Some(1));
        assert_eq!(vm.snapshots[3].parent, Some(0));
        assert_eq!(
            vm.snapshots.iter().filter(|s| s.name == "current").count(),
            2
        );
    }

    #[test]
    fn output_cut_off_by_the_locale_is_an_encoding_error_not_a_vm() {
        // Real 7.2.22 under LC_ALL=C: a VM in ".../jürgen/Plain/" prints up to
        // `CfgFile="` and stops (exit 0); one named "Dev Box ü", read by
        // UUID, prints `name="` only.
        for f in [
            "49-lc-c-showvminfo-cut-off.stdout",
            "54-lc-c-showvminfo-by-uuid-name-cut-off.stdout",
        ] {
            let e = parse(&fixture(f)).unwrap_err().to_string();
            assert!(e.contains("cut off after `"), "{f}: {e}");
            assert!(e.contains("character set of its locale"), "{f}: {e}");
        }
        // Whole lines, but a line every read has is missing.
        let short = "name=\"Plain\"\nUUID=\"0b6a3f2e-1d2c-4e5f-8a9b-0c1d2e3f4a5b\"\n";
        let e = parse(short).unwrap_err().to_string();
        assert!(
            e.contains("no CfgFile= line") && e.contains("locale"),
            "{e}"
        );
        // Bytes that did not decode (U+FFFD) are never taken for a name.
        let e = parse(&HEAD.replace('é', "\u{fffd}"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("not text in the expected character set"), "{e}");
    }

    #[test]
    fn session_and_inaccessible_markers() {
        let vm = parse("name=\"<inaccessible>\"\nUUID=\"u\"\nSessionName=\"GUI/Qt\"\n").unwrap();
        assert!(!vm.accessible);
        assert_eq!(vm.session_name.as_deref(), Some("GUI/Qt"));
    }

    #[test]
    fn rejects_output_without_identity_or_with_broken_tree() {
        assert!(parse("VMState=\"poweroff\"\n").is_err());
        let orphan = format!("{HEAD}SnapshotName-1=\"x\"\nSnapshotUUID-1=\"u\"\n");
        assert!(parse(&orphan).is_err());
        let unterminated = format!("{HEAD}SnapshotName=\"x\n");
        assert!(parse(&unterminated).is_err());
        let dangling_current = format!(
            "{HEAD}SnapshotName=\"x\"\nSnapshotUUID=\"u1\"\nCurrentSnapshotName=\"x\"\nCurrentSnapshotUUID=\"u2\"\n"
        );
        assert!(parse(&dangling_current).is_err());
    }

    #[test]
    fn transient_and_running_states_do_not_allow_a_fold() {
        for s in [
            "running",
            "paused",
            "starting",
            "saving",
            "deletingsnapshot",
            "",
            "stuck",
        ] {
            let vm = VmInfo {
                state: s.into(),
                ..Default::default()
            };
            assert!(!vm.state.allows_fold(), "{s}");
        }
    }
}
