//! The fake's persistent model: VMs, snapshot trees, the media registry and
//! queued faults, stored as TOML in `$VBOX_USER_HOME/fake-vbox.toml`; plus the
//! medium files, which hold the medium's own written bytes.

use std::collections::BTreeMap;
use std::fs;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Serialize, Deserialize, Clone, Default, Debug)]
pub struct State {
    #[serde(default)]
    pub vms: Vec<Vm>,
    #[serde(default)]
    pub media: Vec<Medium>,
    #[serde(default)]
    pub faults: Vec<Fault>,
    /// `fake linger on`: a power-off ends the session as real VirtualBox
    /// does (see `Vm::session_closing`).
    #[serde(default)]
    pub linger_session: bool,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Vm {
    pub name: String,
    pub uuid: String,
    #[serde(default)]
    pub ostype: Option<String>,
    pub cfg_file: String,
    pub state: String,
    pub state_change: String,
    #[serde(default)]
    pub state_file: Option<String>,
    #[serde(default)]
    pub session: Option<String>,
    /// After a power-off with `linger_session`, the showvminfo calls left
    /// until the session is gone, as measured on 7.2.22 (tests/fixtures/49-*):
    /// 2: `poweroff` with the session name still set; 1: the call fails
    /// ("Failed to get a console object from the direct session"); then the
    /// session is gone.
    #[serde(default)]
    pub session_closing: u32,
    pub mac: String,
    #[serde(default)]
    pub current_snapshot: Option<String>,
    /// `setextradata` keys and values (written into the settings file).
    #[serde(default)]
    pub extradata: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub controllers: Vec<Controller>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    /// Flat list; the tree is given by `parent`, children in list order.
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Controller {
    pub name: String,
    /// sata | ide | scsi
    pub bus: String,
    #[serde(default)]
    pub port_count: Option<u32>,
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
pub struct Attachment {
    pub controller: String,
    pub port: u32,
    pub device: u32,
    pub medium: String,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Snapshot {
    pub uuid: String,
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub parent: Option<String>,
    #[serde(default)]
    pub state_file: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Medium {
    pub uuid: String,
    #[serde(default)]
    pub parent: Option<String>,
    pub location: String,
    pub capacity_mb: u64,
}

#[derive(Serialize, Deserialize, Clone, Debug)]
pub struct Fault {
    pub words: Vec<String>,
    /// Matching calls still to let through before this fault fires.
    pub skip: u32,
    pub action: String,
    #[serde(default)]
    pub args: Vec<String>,
}

impl Controller {
    pub fn kind(&self) -> (&'static str, u32, u32) {
        // (type name, max ports, devices per port)
        match self.bus.as_str() {
            "ide" => ("PIIX4", 2, 2),
            "scsi" => ("LsiLogic", 16, 1),
            _ => ("IntelAhci", 30, 1),
        }
    }
    pub fn ports(&self) -> u32 {
        let (_, max, _) = self.kind();
        self.port_count.unwrap_or(max).min(max)
    }
}

impl Vm {
    pub fn vm_dir(&self) -> PathBuf {
        Path::new(&self.cfg_file)
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_default()
    }
    pub fn base_name(&self) -> String {
        Path::new(&self.cfg_file)
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
    pub fn snap_fldr(&self) -> String {
        self.vm_dir()
            .join("Snapshots")
            .to_string_lossy()
            .into_owned()
    }
    pub fn children(&self, parent: Option<&str>) -> Vec<usize> {
        self.snapshots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.parent.as_deref() == parent)
            .map(|(i, _)| i)
            .collect()
    }
    /// Depth-first order of snapshot indexes with their machine-readable suffix.
    pub fn dfs(&self) -> Vec<(usize, String)> {
        fn walk(
            vm: &Vm,
            parent: Option<&str>,
            prefix: &str,
            root: bool,
            out: &mut Vec<(usize, String)>,
        ) {
            for (n, i) in vm.children(parent).into_iter().enumerate() {
                let p = if root && n == 0 {
                    String::new()
                } else if root {
                    format!("-{}", n + 1)
                } else {
                    format!("{prefix}-{}", n + 1)
                };
                out.push((i, p.clone()));
                let uuid = vm.snapshots[i].uuid.clone();
                walk(vm, Some(&uuid), &p, false, out);
            }
        }
        let mut out = Vec::new();
        walk(self, None, "", true, &mut out);
        out
    }
    pub fn snapshot_idx(&self, uuid: &str) -> Option<usize> {
        self.snapshots.iter().position(|s| s.uuid == uuid)
    }
    /// All medium uuids referenced by this VM (current state and snapshots).
    pub fn referenced_media(&self) -> Vec<String> {
        let mut v: Vec<String> = self.attachments.iter().map(|a| a.medium.clone()).collect();
        for s in &self.snapshots {
            v.extend(s.attachments.iter().map(|a| a.medium.clone()));
        }
        v
    }
}

impl State {
    pub fn medium_idx(&self, uuid: &str) -> Option<usize> {
        self.media
            .iter()
            .position(|m| m.uuid.eq_ignore_ascii_case(uuid))
    }
    pub fn medium(&self, uuid: &str) -> Option<&Medium> {
        self.medium_idx(uuid).map(|i| &self.media[i])
    }
    /// By uuid (with or without braces) or exact location.
    pub fn find_medium(&self, arg: &str) -> Option<usize> {
        let u = arg.trim_start_matches('{').trim_end_matches('}');
        if is_uuid(u) {
            if let Some(i) = self.medium_idx(u) {
                return Some(i);
            }
        }
        self.media.iter().position(|m| m.location == arg)
    }
    pub fn children_of(&self, uuid: &str) -> Vec<usize> {
        self.media
            .iter()
            .enumerate()
            .filter(|(_, m)| m.parent.as_deref() == Some(uuid))
            .map(|(i, _)| i)
            .collect()
    }
    /// The chain from `uuid` up to its base (uuid first).
    pub fn chain(&self, uuid: &str) -> Vec<usize> {
        let mut out = Vec::new();
        let mut cur = self.medium_idx(uuid);
        while let Some(i) = cur {
            if out.contains(&i) {
                break;
            }
            out.push(i);
            cur = self.media[i]
                .parent
                .as_deref()
                .and_then(|p| self.medium_idx(p));
        }
        out
    }
    /// Media in `list hdds` order: each base (registry order) followed by its
    /// descendants depth-first.
    pub fn tree_order(&self) -> Vec<usize> {
        fn walk(st: &State, i: usize, out: &mut Vec<usize>) {
            if out.contains(&i) {
                return;
            }
            out.push(i);
            for c in st.children_of(&st.media[i].uuid) {
                walk(st, c, out);
            }
        }
        let mut out = Vec::new();
        for (i, m) in self.media.iter().enumerate() {
            let orphan = match &m.parent {
                None => true,
                Some(p) => self.medium_idx(p).is_none(),
            };
            if orphan {
                walk(self, i, &mut out);
            }
        }
        out
    }
    /// A VM is inaccessible when it references a medium missing from the registry.
    pub fn vm_accessible(&self, vm: &Vm) -> bool {
        vm.referenced_media()
            .iter()
            .all(|m| self.medium_idx(m).is_some())
    }
    pub fn replace_medium_refs(&mut self, from: &str, to: &str) {
        for vm in &mut self.vms {
            for a in vm.attachments.iter_mut() {
                if a.medium == from {
                    a.medium = to.to_string();
                }
            }
            for s in vm.snapshots.iter_mut() {
                for a in s.attachments.iter_mut() {
                    if a.medium == from {
                        a.medium = to.to_string();
                    }
                }
            }
        }
    }
}

pub fn is_uuid(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 36
        && b.iter().enumerate().all(|(i, c)| match i {
            8 | 13 | 18 | 23 => *c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

/// A random version-4 UUID (std only: RandomState is randomly seeded per process).
pub fn new_uuid() -> String {
    let mut bytes = [0u8; 16];
    for (n, chunk) in bytes.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(n as u64);
        h.write_u128(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos())
                .unwrap_or(0),
        );
        h.write_u32(std::process::id());
        chunk.copy_from_slice(&h.finish().to_le_bytes());
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// `2026-11-26T05:51:59.225000000`, as VirtualBox prints VMStateChangeTime.
pub fn now_stamp() -> String {
    let s = humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string();
    format!("{}000000", s.trim_end_matches('Z'))
}

pub fn load(path: &Path) -> Result<State> {
    match fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("parsing {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(State::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

pub fn save(path: &Path, st: &State) -> Result<()> {
    let text = toml::to_string(st).context("serialising the fake state")?;
    write_atomic(path, text.as_bytes())
}

pub fn write_atomic(path: &Path, data: &[u8]) -> Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".fake-tmp");
    let tmp = PathBuf::from(tmp);
    fs::write(&tmp, data).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("renaming onto {}", path.display()))?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Medium files: a header line, then `offset<TAB>hex` runs of written bytes.

const MEDIUM_HEADER: &str =
    "# fake VBoxManage medium: offset<TAB>hex of the bytes written to this medium itself\n";

pub type Blocks = BTreeMap<u64, u8>;

pub fn read_blocks(path: &str) -> Result<Blocks> {
    let text = fs::read_to_string(path).with_context(|| format!("reading medium {path}"))?;
    let mut map = Blocks::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let (off, hex) = line
            .split_once('\t')
            .with_context(|| format!("bad line in medium {path}: {line:?}"))?;
        let off: u64 = off
            .parse()
            .with_context(|| format!("bad offset in {path}"))?;
        let bytes = from_hex(hex).with_context(|| format!("bad hex in {path}"))?;
        for (k, b) in bytes.into_iter().enumerate() {
            map.insert(off + k as u64, b);
        }
    }
    Ok(map)
}

pub fn write_blocks(path: &str, blocks: &Blocks) -> Result<()> {
    let mut text = String::from(MEDIUM_HEADER);
    text.push_str(&blocks_text(blocks));
    if let Some(dir) = Path::new(path).parent() {
        fs::create_dir_all(dir).ok();
    }
    write_atomic(Path::new(path), text.as_bytes())
}

/// Sorted, merged `offset<TAB>hex` lines.
pub fn blocks_text(blocks: &Blocks) -> String {
    let mut out = String::new();
    let mut run: Option<(u64, Vec<u8>)> = None;
    for (&off, &b) in blocks {
        match &mut run {
            Some((start, bytes)) if *start + bytes.len() as u64 == off => bytes.push(b),
            _ => {
                if let Some((start, bytes)) = run.take() {
                    out.push_str(&format!("{start}\t{}\n", to_hex(&bytes)));
                }
                run = Some((off, vec![b]));
            }
        }
    }
    if let Some((start, bytes)) = run {
        out.push_str(&format!("{start}\t{}\n", to_hex(&bytes)));
    }
    out
}

pub fn to_hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn from_hex(s: &str) -> Result<Vec<u8>> {
    let s = s.trim();
    anyhow::ensure!(s.len().is_multiple_of(2), "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).map_err(Into::into))
        .collect()
}

// ---------------------------------------------------------------------------
// Settings files: each registered VM's `<name>.vbox`, laid out as VirtualBox
// 7.2 writes it (the parts vblaunch reads: machine attributes, the VM's media
// registry, the snapshot tree with descriptions, the current state's disks).
// Written after every change, like VirtualBox saves before a call returns.

fn xml_escape(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '>' => o.push_str("&gt;"),
            '"' => o.push_str("&quot;"),
            '\n' => o.push_str("&#10;"),
            '\r' => o.push_str("&#13;"),
            c => o.push(c),
        }
    }
    o
}

fn storage_xml(st: &State, vm: &Vm, atts: &[Attachment], indent: &str) -> String {
    let mut o = format!("{indent}<StorageControllers>\n");
    for c in &vm.controllers {
        let (ty, _, _) = c.kind();
        o += &format!(
            "{indent}  <StorageController name=\"{}\" type=\"{ty}\" PortCount=\"{}\" useHostIOCache=\"false\" Bootable=\"true\">\n",
            xml_escape(&c.name),
            c.ports()
        );
        for a in atts.iter().filter(|a| a.controller == c.name) {
            if st.medium(&a.medium).is_none() && !is_uuid(&a.medium) {
                continue;
            }
            o += &format!(
                "{indent}    <AttachedDevice type=\"HardDisk\" hotpluggable=\"false\" port=\"{}\" device=\"{}\">\n{indent}      <Image uuid=\"{{{}}}\"/>\n{indent}    </AttachedDevice>\n",
                a.port, a.device, a.medium
            );
        }
        o += &format!("{indent}  </StorageController>\n");
    }
    o += &format!("{indent}</StorageControllers>\n");
    o
}

fn snapshot_xml(st: &State, vm: &Vm, i: usize, indent: &str) -> String {
    let s = &vm.snapshots[i];
    let mut o = format!(
        "{indent}<Snapshot uuid=\"{{{}}}\" name=\"{}\" timeStamp=\"2026-11-26T00:00:00Z\"{}>\n",
        s.uuid,
        xml_escape(&s.name),
        s.state_file
            .as_ref()
            .map(|f| format!(" stateFile=\"{}\"", xml_escape(f)))
            .unwrap_or_default()
    );
    if !s.description.is_empty() {
        o += &format!(
            "{indent}  <Description>{}</Description>\n",
            xml_escape(&s.description)
        );
    }
    o += &format!("{indent}  <Hardware>\n");
    o += &storage_xml(st, vm, &s.attachments, &format!("{indent}    "));
    o += &format!("{indent}  </Hardware>\n");
    let kids = vm.children(Some(&s.uuid));
    if !kids.is_empty() {
        o += &format!("{indent}  <Snapshots>\n");
        for k in kids {
            o += &snapshot_xml(st, vm, k, &format!("{indent}    "));
        }
        o += &format!("{indent}  </Snapshots>\n");
    }
    o += &format!("{indent}</Snapshot>\n");
    o
}

fn medium_xml(st: &State, keep: &[usize], i: usize, indent: &str) -> String {
    let m = &st.media[i];
    let kids: Vec<usize> = st
        .children_of(&m.uuid)
        .into_iter()
        .filter(|k| keep.contains(k))
        .collect();
    let ty = if m.parent.is_none() {
        " type=\"Normal\""
    } else {
        ""
    };
    let head = format!(
        "{indent}<HardDisk uuid=\"{{{}}}\" location=\"{}\" format=\"VDI\"{ty}",
        m.uuid,
        xml_escape(&m.location)
    );
    if kids.is_empty() {
        return format!("{head}/>\n");
    }
    let mut o = format!("{head}>\n");
    for k in kids {
        o += &medium_xml(st, keep, k, &format!("{indent}  "));
    }
    o += &format!("{indent}</HardDisk>\n");
    o
}

pub fn settings_xml(st: &State, vm: &Vm) -> String {
    // The VM's registry: every medium on a chain it references.
    let mut keep = Vec::new();
    for u in vm.referenced_media() {
        for i in st.chain(&u) {
            if !keep.contains(&i) {
                keep.push(i);
            }
        }
    }
    let mut o = String::from(
        "<?xml version=\"1.0\"?>\n<!--\n** DO NOT EDIT THIS FILE.\n** Written by the fake VBoxManage (tests).\n-->\n<VirtualBox xmlns=\"http://www.virtualbox.org/\" version=\"1.19-linux\">\n",
    );
    o += &format!(
        "  <Machine uuid=\"{{{}}}\" name=\"{}\" OSType=\"Other\"{} snapshotFolder=\"Snapshots\"{}{}>\n",
        vm.uuid,
        xml_escape(&vm.name),
        vm.current_snapshot
            .as_ref()
            .map(|c| format!(" currentSnapshot=\"{{{c}}}\""))
            .unwrap_or_default(),
        vm.state_file
            .as_ref()
            .map(|f| format!(" stateFile=\"{}\"", xml_escape(f)))
            .unwrap_or_default(),
        if vm.state == "aborted" { " aborted=\"true\"" } else { "" }
    );
    o += "    <MediaRegistry>\n      <HardDisks>\n";
    for &i in &keep {
        let is_top = match &st.media[i].parent {
            None => true,
            Some(p) => st.medium_idx(p).is_none_or(|pi| !keep.contains(&pi)),
        };
        if is_top {
            o += &medium_xml(st, &keep, i, "        ");
        }
    }
    o += "      </HardDisks>\n    </MediaRegistry>\n";
    if !vm.extradata.is_empty() {
        o += "    <ExtraData>\n";
        for (k, v) in &vm.extradata {
            o += &format!(
                "      <ExtraDataItem name=\"{}\" value=\"{}\"/>\n",
                xml_escape(k),
                xml_escape(v)
            );
        }
        o += "    </ExtraData>\n";
    }
    if let Some(root) = vm.children(None).first() {
        o += &snapshot_xml(st, vm, *root, "    ");
    }
    o += "    <Hardware>\n";
    o += &storage_xml(st, vm, &vm.attachments, "      ");
    o += "    </Hardware>\n  </Machine>\n</VirtualBox>\n";
    o
}

/// The global registry, `$VBOX_USER_HOME/VirtualBox.xml`: the registered
/// VMs' settings files (the real file holds more; vblaunch reads only these).
pub fn global_xml(st: &State) -> String {
    let mut o = String::from(
        "<?xml version=\"1.0\"?>\n<!--\n** DO NOT EDIT THIS FILE.\n** Written by the fake VBoxManage (tests).\n-->\n<VirtualBox xmlns=\"http://www.virtualbox.org/\" version=\"1.12-linux\">\n  <Global>\n    <MachineRegistry>\n",
    );
    for vm in &st.vms {
        o += &format!(
            "      <MachineEntry uuid=\"{{{}}}\" src=\"{}\"/>\n",
            vm.uuid,
            xml_escape(&vm.cfg_file)
        );
    }
    o += "    </MachineRegistry>\n  </Global>\n</VirtualBox>\n";
    o
}

/// Write VirtualBox.xml, and the settings file of every registered VM whose
/// folder exists.
pub fn write_settings(st: &State, home: &Path) -> Result<()> {
    let global = home.join("VirtualBox.xml");
    let text = global_xml(st);
    if fs::read_to_string(&global).ok().as_deref() != Some(text.as_str()) {
        write_atomic(&global, text.as_bytes())?;
    }
    for vm in &st.vms {
        let cfg = Path::new(&vm.cfg_file);
        if cfg.parent().is_some_and(Path::is_dir) {
            let text = settings_xml(st, vm);
            if fs::read_to_string(cfg).ok().as_deref() != Some(text.as_str()) {
                write_atomic(cfg, text.as_bytes())?;
            }
        }
    }
    Ok(())
}
