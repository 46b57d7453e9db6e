//! Reader of VirtualBox's own files: a VM's settings file (`<VM>.vbox`,
//! VirtualBox's XML) and the registry in `VirtualBox.xml`. Used to verify a
//! fold from what VirtualBox has written to disk, for the quick read of a
//! VM at launch (`vbox::quick`), to resolve a VM's name without a call, to
//! name a VM VirtualBox cannot load, and by doctor's checks.
//!
//! Why: after `snapshot take/delete/edit` returns, VirtualBox has saved the
//! VM's settings (temp file + rename). The file is what survives a power cut
//! and what the next VBoxSVC loads, so checking it is checking the durable
//! result; and reading it costs about a millisecond, where another
//! `showvminfo` + `list hdds` round costs ~100 ms. vblaunch never edits these
//! files (only `doctor --fix` may put back a copy vblaunch saved earlier).
//!
//! Only what verification needs is read: the machine's UUID, name, state
//! (saved/aborted), current snapshot, the snapshot tree with descriptions, the
//! current state's hard disk attachments, and the VM's own media registry. The
//! caller falls back to VirtualBox's live view when the file does not tell
//! the whole story (an attached image registered elsewhere, an unknown
//! layout), see [`Settings::complete`].
use std::path::{Path, PathBuf};

use roxmltree::{Document, Node};

use super::media::Medium;
use super::state::{MediumState, VmState};
use super::vminfo::{Attachment, Snapshot, VmInfo};

/// A VM as its settings file describes it.
#[derive(Debug)]
pub struct Settings {
    pub vm: VmInfo,
    pub media: Vec<Medium>,
}

impl Settings {
    /// Whether every attached disk's chain down to its base is in the file's
    /// media registry (so verification needs nothing else).
    pub fn complete(&self) -> Result<(), String> {
        for a in &self.vm.attachments {
            let chain = super::media::chain(&self.media, &a.image_uuid);
            if chain.is_empty() || chain.iter().any(Result::is_err) {
                return Err(format!(
                    "the chain of image {{{}}} (slot {}) is not all in the file's media registry",
                    a.image_uuid,
                    a.slot()
                ));
            }
        }
        Ok(())
    }
}

fn child<'a, 'i>(n: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    n.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn children<'a, 'i: 'a>(n: Node<'a, 'i>, name: &'a str) -> impl Iterator<Item = Node<'a, 'i>> + 'a {
    n.children()
        .filter(move |c| c.is_element() && c.tag_name().name() == name)
}

fn uuid_attr(n: Node, attr: &str) -> Option<String> {
    n.attribute(attr).map(|u| {
        u.trim_matches(|c| c == '{' || c == '}')
            .to_ascii_lowercase()
    })
}

fn resolve(dir: &Path, location: &str) -> PathBuf {
    let p = Path::new(location);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        dir.join(p)
    }
}

/// Parse the text of `<VM>.vbox` found at `path` (relative locations in the
/// file are relative to its folder).
pub fn parse(text: &str, path: &Path) -> Result<Settings, String> {
    let doc = Document::parse(text).map_err(|e| format!("not valid XML: {e}"))?;
    let root = doc.root_element();
    if root.tag_name().name() != "VirtualBox" {
        return Err(format!("root element is <{}>", root.tag_name().name()));
    }
    let m = child(root, "Machine").ok_or("no <Machine> element")?;
    let dir = path.parent().unwrap_or(Path::new(""));
    let uuid = uuid_attr(m, "uuid").ok_or("<Machine> has no uuid")?;
    let name = m.attribute("name").ok_or("<Machine> has no name")?;

    let mut media = Vec::new();
    if let Some(disks) = child(m, "MediaRegistry").and_then(|r| child(r, "HardDisks")) {
        for d in children(disks, "HardDisk") {
            collect_media(d, None, dir, &mut media)?;
        }
    }

    let mut snapshots = Vec::new();
    if let Some(s) = child(m, "Snapshot") {
        collect_snapshots(s, None, String::new(), &mut snapshots)?;
    }

    let hardware = child(m, "Hardware").ok_or("no <Hardware> element")?;
    // VirtualBox 7 keeps the controllers in <Hardware>; older files beside it.
    let controllers =
        child(hardware, "StorageControllers").or_else(|| child(m, "StorageControllers"));
    let mut attachments = Vec::new();
    for c in controllers
        .into_iter()
        .flat_map(|c| children(c, "StorageController"))
    {
        let controller = c.attribute("name").ok_or("a controller without a name")?;
        for d in children(c, "AttachedDevice") {
            if d.attribute("type") != Some("HardDisk") {
                continue;
            }
            let Some(image) = child(d, "Image").and_then(|i| uuid_attr(i, "uuid")) else {
                continue;
            };
            let num = |a: &str| -> Result<u32, String> {
                d.attribute(a)
                    .unwrap_or("0")
                    .parse()
                    .map_err(|_| format!("<AttachedDevice> with a bad {a}"))
            };
            let location = media
                .iter()
                .find(|x: &&Medium| x.uuid == image)
                .map(|x| x.location.clone())
                .unwrap_or_default();
            attachments.push(Attachment {
                controller: controller.to_string(),
                port: num("port")?,
                device: num("device")?,
                location,
                image_uuid: image,
            });
        }
    }

    let state_file = m.attribute("stateFile").map(|f| resolve(dir, f));
    let aborted = m.attribute("aborted") == Some("true");
    let state = match (aborted, state_file.is_some()) {
        (true, true) => VmState::AbortedSaved,
        (true, false) => VmState::Aborted,
        (false, true) => VmState::Saved,
        (false, false) => VmState::PowerOff,
    };
    let vm = VmInfo {
        name: name.to_string(),
        uuid,
        accessible: true,
        cfg_file: Some(path.to_path_buf()),
        snapshot_folder: Some(resolve(
            dir,
            m.attribute("snapshotFolder").unwrap_or("Snapshots"),
        )),
        log_folder: Some(dir.join("Logs")),
        state,
        state_file,
        session_name: None,
        attachments,
        snapshots,
        current_snapshot: uuid_attr(m, "currentSnapshot"),
        recorded_own: recorded_own_of(m),
    };
    Ok(Settings { vm, media })
}

/// The extradata key under which vblaunch records its own snapshots' UUIDs
/// (space-separated).
pub const OWN_KEY: &str = "vblaunch/own";

fn recorded_own_of(m: Node) -> Option<Vec<String>> {
    let value = child(m, "ExtraData")?
        .children()
        .find(|c| c.is_element() && c.attribute("name") == Some(OWN_KEY))?
        .attribute("value")?;
    Some(
        value
            .split_whitespace()
            .map(str::to_ascii_lowercase)
            .collect(),
    )
}

/// vblaunch's record of its own snapshots in a settings file (see
/// [`OWN_KEY`]); None when the file has none or cannot be read.
pub fn recorded_own(path: &Path) -> Option<Vec<String>> {
    let text = std::fs::read_to_string(path).ok()?;
    let doc = Document::parse(&text).ok()?;
    recorded_own_of(child(doc.root_element(), "Machine")?)
}

fn collect_media(
    n: Node,
    parent: Option<&str>,
    dir: &Path,
    out: &mut Vec<Medium>,
) -> Result<(), String> {
    let uuid = uuid_attr(n, "uuid").ok_or("a <HardDisk> without a uuid")?;
    let location = resolve(
        dir,
        n.attribute("location")
            .ok_or("a <HardDisk> without a location")?,
    );
    let kind = match parent {
        Some(_) => "normal (differencing)".to_string(),
        None => format!(
            "{} (base)",
            n.attribute("type").unwrap_or("Normal").to_ascii_lowercase()
        ),
    };
    out.push(Medium {
        uuid: uuid.clone(),
        parent: parent.map(str::to_string),
        // The file does not say; verification does not look at it (the
        // pre-flight checks before a merge ask VirtualBox).
        state: MediumState::Created,
        kind,
        format: n.attribute("format").unwrap_or("VDI").to_string(),
        access_error: None,
        location,
        capacity_mb: None,
    });
    for c in children(n, "HardDisk") {
        collect_media(c, Some(&uuid), dir, out)?;
    }
    Ok(())
}

fn collect_snapshots(
    n: Node,
    parent: Option<usize>,
    node: String,
    out: &mut Vec<Snapshot>,
) -> Result<usize, String> {
    let uuid = uuid_attr(n, "uuid").ok_or("a <Snapshot> without a uuid")?;
    let name = n.attribute("name").ok_or("a <Snapshot> without a name")?;
    let description = child(n, "Description")
        .and_then(|d| d.text())
        .map(str::to_string)
        .or_else(|| n.attribute("description").map(str::to_string));
    let me = out.len();
    out.push(Snapshot {
        name: name.to_string(),
        uuid,
        description,
        node: node.clone(),
        parent,
        children: Vec::new(),
    });
    if let Some(kids) = child(n, "Snapshots") {
        for (i, c) in children(kids, "Snapshot").enumerate() {
            let k = collect_snapshots(c, Some(me), format!("{node}-{}", i + 1), out)?;
            out[me].children.push(k);
        }
    }
    Ok(me)
}

/// What a settings file references, for `vblaunch doctor` (which must cope
/// with files VirtualBox cannot load, so it reads no more than this).
#[derive(Debug, PartialEq)]
pub struct Refs {
    /// The VM's media registry (hard disks, DVD and floppy images): uuid → file.
    pub registry: Vec<(String, PathBuf)>,
    /// Every image uuid attached, in the current state and in snapshots.
    pub attached: Vec<String>,
    pub snapshot_folder: PathBuf,
}

pub fn refs(text: &str, path: &Path) -> Result<Refs, String> {
    let doc =
        Document::parse(text).map_err(|e| format!("{} is not valid XML: {e}", path.display()))?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let m = child(doc.root_element(), "Machine")
        .ok_or_else(|| format!("{} has no <Machine> element", path.display()))?;
    let registry = child(m, "MediaRegistry")
        .into_iter()
        .flat_map(|r| r.descendants())
        .filter(|n| matches!(n.tag_name().name(), "HardDisk" | "DVDImage" | "FloppyImage"))
        .filter_map(|n| {
            Some((
                uuid_attr(n, "uuid")?,
                resolve(dir, n.attribute("location")?),
            ))
        })
        .collect();
    let attached = m
        .descendants()
        .filter(|n| n.tag_name().name() == "Image")
        .filter_map(|n| uuid_attr(n, "uuid"))
        .collect();
    Ok(Refs {
        registry,
        attached,
        snapshot_folder: resolve(dir, m.attribute("snapshotFolder").unwrap_or("Snapshots")),
    })
}

/// The `<MachineEntry uuid="{…}" src="…"/>` of VirtualBox.xml in `home`:
/// (uuid, settings file).
pub fn machine_entries(text: &str, home: &Path) -> Result<Vec<(String, PathBuf)>, String> {
    let doc = Document::parse(text).map_err(|e| format!("not valid XML: {e}"))?;
    Ok(doc
        .descendants()
        .filter(|n| n.tag_name().name() == "MachineEntry")
        .filter_map(|n| Some((uuid_attr(n, "uuid")?, resolve(home, n.attribute("src")?))))
        .collect())
}

/// The machine registry of VirtualBox.xml in the first of `homes` that has
/// one (see [`super::locate::user_homes`]); `Ok(None)` when none has.
pub fn machine_registry(homes: &[PathBuf]) -> Result<Option<Vec<(String, PathBuf)>>, String> {
    for home in homes {
        let xml = home.join("VirtualBox.xml");
        let Ok(text) = std::fs::read_to_string(&xml) else {
            continue;
        };
        return machine_entries(&text, home)
            .map(Some)
            .map_err(|e| format!("{}: {e}", xml.display()));
    }
    Ok(None)
}

/// The settings file as VirtualBox left it: present, not empty, well-formed
/// and about this VM. Err: what is wrong with it.
pub fn check_file(cfg: &Path, uuid: &str) -> Result<(), String> {
    let meta = std::fs::metadata(cfg).map_err(|e| {
        format!(
            "the VM's settings file {} cannot be read ({e})",
            cfg.display()
        )
    })?;
    if meta.len() == 0 {
        return Err(format!(
            "the VM's settings file {} is empty (0 bytes): VirtualBox could not write it",
            cfg.display()
        ));
    }
    let s = read(cfg)
        .map_err(|e| format!("the VM's settings file {} is damaged: {e}", cfg.display()))?;
    if s.vm.uuid != uuid {
        return Err(format!(
            "the settings file {} describes another VM {{{}}}",
            cfg.display(),
            s.vm.uuid
        ));
    }
    Ok(())
}

/// Read and parse the settings file.
pub fn read(path: &Path) -> Result<Settings, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    parse(&text, path).map_err(|e| format!("{}: {e}", path.display()))
}

/// `<cfg>-tmp`, if it exists: the new settings file VirtualBox writes next
/// to the old one and renames over it; one left behind is an interrupted
/// (or failed) save.
pub fn leftover_tmp(cfg: &Path) -> Option<PathBuf> {
    let mut name = cfg.file_name()?.to_os_string();
    name.push("-tmp");
    let tmp = cfg.with_file_name(name);
    tmp.exists().then_some(tmp)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    /// The settings file and `showvminfo` + `list hdds` of the same real VM
    /// (VirtualBox 7.2.22: a name with quotes and non-ASCII, two controllers,
    /// disks outside the VM folder, a branch in the snapshot tree, a raw
    /// multi-line description) describe the same VM.
    #[test]
    fn the_settings_file_says_what_showvminfo_and_list_hdds_say() {
        let live =
            crate::vbox::vminfo::parse(&fixture("47-real-settings-showvminfo.stdout")).unwrap();
        let media = crate::vbox::media::parse(&fixture("47-real-settings-listhdds.stdout"));
        let cfg = live.cfg_file.clone().unwrap();
        let s = parse(&fixture("47-real-settings.vbox"), &cfg).unwrap();
        s.complete().unwrap();
        let f = &s.vm;
        assert_eq!(f.uuid, live.uuid);
        assert_eq!(f.name, live.name);
        assert_eq!(f.name, "Rich \"VM\" \u{fc}");
        assert_eq!(f.state, live.state);
        assert_eq!(f.current_snapshot, live.current_snapshot);
        assert_eq!(f.snapshot_folder, live.snapshot_folder);
        assert_eq!(f.snapshots, live.snapshots);
        assert_eq!(f.snapshots.len(), 3);
        assert!(f.snapshots[0]
            .description
            .as_deref()
            .unwrap()
            .contains("SnapshotName=\"fake\"\n& the"));
        assert_eq!(f.attachments, live.attachments);
        assert_eq!(f.attachments.len(), 2);
        assert_eq!(s.media.len(), media.len());
        for m in &media {
            let x = s.media.iter().find(|x| x.uuid == m.uuid).unwrap();
            assert_eq!(
                (&x.parent, &x.location),
                (&m.parent, &m.location),
                "{}",
                m.uuid
            );
            assert_eq!(x.is_differencing(), m.is_differencing());
        }
    }

    #[test]
    fn saved_and_aborted_states_come_from_the_machine_attributes() {
        let text = fixture("47-real-settings.vbox");
        let cfg = Path::new("/vms/x/x.vbox");
        let with = |attrs: &str| {
            let t = text.replacen("<Machine ", &format!("<Machine {attrs} "), 1);
            parse(&t, cfg).unwrap().vm
        };
        assert_eq!(with("").state, "poweroff");
        let saved = with("stateFile=\"Snapshots/x.sav\"");
        assert_eq!(saved.state, "saved");
        assert_eq!(
            saved.state_file,
            Some(PathBuf::from("/vms/x/Snapshots/x.sav"))
        );
        assert_eq!(with("aborted=\"true\"").state, "aborted");
        assert_eq!(
            with("aborted=\"true\" stateFile=\"s.sav\"").state,
            "aborted-saved"
        );
    }

    #[test]
    fn an_attached_disk_registered_elsewhere_makes_the_file_incomplete() {
        let text = fixture("47-real-settings.vbox");
        // Drop the data disk's chain from the file's registry.
        let start = text.find("<HardDisk uuid=\"{7cc2e309").unwrap();
        let end = text.find("      </HardDisks>").unwrap();
        let cut = format!("{}{}", &text[..start], &text[end..]);
        let s = parse(&cut, Path::new("/vms/x/x.vbox")).unwrap();
        let e = s.complete().unwrap_err();
        assert!(e.contains("82b891f6"), "{e}");
    }

    #[test]
    fn refs_decode_character_references_in_paths() {
        let cfg = Path::new("/vms/R/R.vbox");
        let r = refs(&fixture("47-real-settings.vbox"), cfg).unwrap();
        assert_eq!(r.registry.len(), 8);
        assert!(r.registry.contains(&(
            "7cfe6324-201d-447e-95a8-4d90fc0eccea".to_string(),
            PathBuf::from("/tmp/exp/vms2/Rich \"VM\" \u{fc}/base.vdi")
        )));
        assert!(r.registry.contains(&(
            "c763aa88-08b0-423b-8730-834b0af4a27e".to_string(),
            PathBuf::from("/vms/R/Snapshots/{c763aa88-08b0-423b-8730-834b0af4a27e}.vdi")
        )));
        // Current state (2) and three snapshots (2 each).
        assert_eq!(r.attached.len(), 8);
        assert_eq!(r.snapshot_folder, PathBuf::from("/vms/R/Snapshots"));
        assert!(refs("<VirtualBox><Machine", cfg).is_err());
    }

    #[test]
    fn machine_entries_resolve_relative_sources() {
        let xml = r#"<VirtualBox><Global><MachineRegistry>
            <MachineEntry uuid="{AAAAAAAA-0000-0000-0000-000000000001}" src="/vms/A &#xC4;/A.vbox"/>
            <MachineEntry uuid="{bbbbbbbb-0000-0000-0000-000000000002}" src="B/B.vbox"/>
            </MachineRegistry></Global></VirtualBox>"#;
        let e = machine_entries(xml, Path::new("/home/u/.config/VirtualBox")).unwrap();
        assert_eq!(
            e,
            [
                (
                    "aaaaaaaa-0000-0000-0000-000000000001".to_string(),
                    PathBuf::from("/vms/A \u{c4}/A.vbox")
                ),
                (
                    "bbbbbbbb-0000-0000-0000-000000000002".to_string(),
                    PathBuf::from("/home/u/.config/VirtualBox/B/B.vbox")
                ),
            ]
        );
    }

    #[test]
    fn what_is_not_a_settings_file_is_an_error_not_a_guess() {
        let cfg = Path::new("/vms/x/x.vbox");
        assert!(parse("<!-- nothing -->", cfg).is_err());
        assert!(parse("<Other/>", cfg).unwrap_err().contains("<Other>"));
        assert!(parse("<VirtualBox/>", cfg).unwrap_err().contains("Machine"));
        assert!(parse("<VirtualBox><Machine uuid=\"{1}\"", cfg).is_err());
    }

    #[test]
    fn a_settings_file_is_checked_for_presence_size_form_and_vm() {
        let d = tempfile::tempdir().unwrap();
        let cfg = d.path().join("Dev Box.vbox");
        assert!(check_file(&cfg, "vm")
            .unwrap_err()
            .contains("cannot be read"));
        std::fs::write(&cfg, "").unwrap();
        assert!(check_file(&cfg, "vm").unwrap_err().contains("0 bytes"));
        std::fs::write(&cfg, "<VirtualBox><Machine").unwrap();
        assert!(check_file(&cfg, "vm").unwrap_err().contains("damaged"));
        std::fs::write(&cfg, crate::fixture("47-real-settings.vbox")).unwrap();
        let uuid = read(&cfg).unwrap().vm.uuid;
        assert_eq!(check_file(&cfg, &uuid), Ok(()));
        assert!(check_file(&cfg, "another")
            .unwrap_err()
            .contains("another VM"));
    }
}
