//! Everything `vblaunch doctor` reads, gathered once into plain data: the
//! VBoxManage calls (through the [`VBoxManage`] facade), VirtualBox.xml and
//! the settings files, VDI headers, the Snapshots folder, vblaunch's own
//! records (settings backups, journal, last fold), free space, the process
//! list and the locks. Nothing here judges or prints (a VirtualBox.xml that
//! cannot be parsed is only logged); [`super::checks`] judges these facts.
//!
//! The one exception to "no judging" is the fold's own verdict: whether a
//! fold would go ahead now ([`crate::plan::plan`]) and what its pre-flight
//! says of the real folders and images ([`crate::cmd::fold::preflight`]).
//! Doctor reports those answers as they are; it does not judge them again.
//!
//! Only what a check can use is read, and only once: the headers of the
//! images of the VM's chains and of the `.vdi` files of the Snapshots
//! folder; the settings copies only when the current settings are in doubt
//! (VirtualBox cannot read the VM, or the file on disk is damaged).
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::guard::FrontEnd;
use crate::plan::Refusal;
use crate::state::{Journal, VmState};
use crate::vbox::media::{self, Medium};
use crate::vbox::settings::refs as settings_refs;
use crate::vbox::{VBoxManage, VmInfo};
use crate::Context;

/// What doctor knows about one VM, readable by VirtualBox or not.
#[derive(Debug)]
pub struct Facts {
    /// The VM as the user gave it (a name or a UUID).
    pub vm_arg: String,
    /// VBoxManage's path and `--version`; Err: why it was not found. Then
    /// nothing else was read and every other field is empty.
    pub vboxmanage: Result<Tool, String>,
    /// Where the VM is: its UUID and settings file, from VirtualBox or the files.
    pub target: Target,
    /// What VirtualBox says of the VM, when it can read it.
    pub vm: Option<ReadableVm>,
    /// VirtualBox's media registry (`list hdds`; empty if that failed).
    pub media: Vec<Medium>,
    /// `list vms`, asked only when the VM was found nowhere; Err: why not.
    pub registered_vms: Option<Result<Vec<(String, String)>, String>>,
    /// The snapshot name vblaunch manages (config), for the VM.
    pub snapshot_name: String,
    /// Free space a merge needs beyond its data (config), in bytes.
    pub merge_margin: u64,
    /// The VirtualBox programs a launch waits for (config).
    pub guard_processes: Vec<String>,
    /// The text of the settings file (`target.cfg`), when it is known; Err:
    /// why it cannot be read.
    pub settings_text: Option<Result<String, String>>,
    /// `<settings file>-tmp`, when VirtualBox left one behind.
    pub leftover_tmp: Option<PathBuf>,
    /// Copies of the settings file a repair could put back, newest first
    /// (read only when the current settings are in doubt).
    pub settings_copies: Vec<SettingsCopy>,
    /// The files and folders looked at.
    pub files: Files,
    /// vblaunch's records of the VM, when its UUID is known.
    pub records: Option<Records>,
    /// The VirtualBox processes running (of `guard_processes`); Err: why the
    /// process list could not be read. None only without VBoxManage.
    pub processes: Option<Result<Vec<FrontEnd>, String>>,
    /// Whether another vblaunch holds the VM's lock.
    pub lock_held: bool,
}

/// VBoxManage, found.
#[derive(Debug)]
pub struct Tool {
    pub exe: PathBuf,
    /// `VBoxManage --version`; Err: why it does not run.
    pub version: Result<String, String>,
}

/// What is known about the VM's identity, readable or not.
#[derive(Debug, Clone, Default)]
pub struct Target {
    /// The name the user gave (or VirtualBox's name when readable).
    pub label: String,
    pub uuid: Option<String>,
    pub cfg: Option<PathBuf>,
    /// Why VirtualBox cannot read it.
    pub access_error: Option<String>,
}

/// A VM VirtualBox can read, and what the fold would make of it.
#[derive(Debug)]
pub struct ReadableVm {
    pub info: VmInfo,
    /// Whether a fold would go ahead now; Err: why it would refuse.
    pub plan: Result<(), Refusal>,
    /// The next fold's pre-flight (writable, room, no shared merge target);
    /// None when the plan already refuses.
    pub preflight: Option<Result<(), Refusal>>,
    /// The settings file as VirtualBox left it ([`crate::vbox::settings::check_file`]);
    /// None when VirtualBox names no settings file.
    pub settings_file: Option<Result<(), String>>,
    /// Free space where the disks are, when there is a place to ask.
    pub free_space: Option<FreeSpace>,
}

/// Free space on the volume of `path` (None: unknown).
#[derive(Debug, Clone)]
pub struct FreeSpace {
    pub path: PathBuf,
    pub free: Option<u64>,
}

/// A settings copy (in vblaunch's backups, or `.vbox-prev`).
#[derive(Debug, Clone)]
pub struct SettingsCopy {
    pub path: PathBuf,
    /// Its text; None when it cannot be read.
    pub text: Option<String>,
}

/// vblaunch's records of a VM.
#[derive(Debug)]
pub struct Records {
    /// Its settings backups, oldest first.
    pub backups: Vec<PathBuf>,
    /// The folder they are in.
    pub backups_dir: PathBuf,
    /// The journal of the last run; Err: why it cannot be read.
    pub journal: Result<Journal, String>,
    /// The record of the last fold; Err: why it cannot be read.
    pub state: Result<VmState, String>,
}

/// A VDI file's own UUID and its parent's (None for a base image).
pub type VdiIds = (String, Option<String>);

/// The files and folders doctor looked at. A path it did not look at reads
/// as absent.
#[derive(Debug, Clone, Default)]
pub struct Files {
    pub files: BTreeMap<PathBuf, FileFacts>,
    /// The `.vdi` files of each folder listed, sorted.
    pub folders: BTreeMap<PathBuf, Vec<PathBuf>>,
}

/// One file as found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FileFacts {
    /// Its size (None: it does not exist, or cannot be asked).
    pub size: Option<u64>,
    /// Whether it is a regular file.
    pub is_file: bool,
    /// The ids in its VDI header, if it has one.
    pub vdi: Option<VdiIds>,
}

impl Files {
    pub fn size(&self, path: &Path) -> Option<u64> {
        self.files.get(path).and_then(|f| f.size)
    }

    pub fn is_file(&self, path: &Path) -> bool {
        self.files.get(path).is_some_and(|f| f.is_file)
    }

    pub fn vdi(&self, path: &Path) -> Option<&VdiIds> {
        self.files.get(path).and_then(|f| f.vdi.as_ref())
    }

    /// The `.vdi` files of a folder (none if it was not listed).
    pub fn vdis(&self, dir: &Path) -> &[PathBuf] {
        self.folders.get(dir).map(Vec::as_slice).unwrap_or_default()
    }

    /// Look at a file (once).
    fn probe(&mut self, path: &Path) {
        if self.files.contains_key(path) {
            return;
        }
        let meta = std::fs::metadata(path).ok();
        let facts = FileFacts {
            size: meta.as_ref().map(|m| m.len()),
            is_file: meta.as_ref().is_some_and(|m| m.is_file()),
            vdi: vdi_ids(path),
        };
        self.files.insert(path.to_path_buf(), facts);
    }

    /// List a folder's `.vdi` files and look at each (once).
    fn list(&mut self, dir: &Path) {
        if self.folders.contains_key(dir) {
            return;
        }
        let vdis = vdi_files(dir);
        for p in &vdis {
            self.probe(p);
        }
        self.folders.insert(dir.to_path_buf(), vdis);
    }
}

/// Read everything the checks need about `vm_arg`.
pub fn gather(ctx: &Context, vm_arg: &str) -> Facts {
    let eff0 = ctx.effective(&[vm_arg]);
    let vb = match ctx.vbox(&eff0) {
        Ok(vb) => vb,
        Err(e) => return without_vboxmanage(vm_arg, format!("{e:#}")),
    };
    let version = vb.version().map_err(|e| format!("{e:#}"));
    let (target, info) = locate(ctx, &vb, vm_arg);
    let eff = {
        let mut keys = vec![vm_arg];
        if let Some(i) = &info {
            keys.push(&i.name);
        }
        if let Some(u) = &target.uuid {
            keys.push(u);
        }
        ctx.effective(&keys)
    };
    let media = vb.list_hdds().unwrap_or_default();
    let registered_vms =
        (info.is_none() && target.uuid.is_none()).then(|| vb.list_vms().map_err(|e| e.to_string()));
    let settings_text = target
        .cfg
        .as_ref()
        .map(|cfg| std::fs::read_to_string(cfg).map_err(|e| e.to_string()));
    let leftover_tmp = match &info {
        Some(vm) => crate::engine::leftover_settings(vm),
        None => target
            .cfg
            .as_deref()
            .and_then(crate::vbox::settings::leftover_tmp),
    };
    let mut files = Files::default();
    let vm = info.map(|info| readable(ctx, info, &media, &eff, &mut files));
    let in_doubt = match &vm {
        Some(vm) => vm.settings_file.as_ref().is_some_and(|r| r.is_err()),
        None => true,
    };
    let settings_copies = match (&target.uuid, &target.cfg) {
        (Some(uuid), Some(cfg)) if in_doubt => settings_copies(ctx, uuid, cfg),
        _ => Vec::new(),
    };
    if let (None, Some(cfg), Some(Ok(text))) = (&vm, &target.cfg, &settings_text) {
        look_at_refs(&mut files, text, cfg);
    }
    if let Some(cfg) = &target.cfg {
        for c in &settings_copies {
            if let Some(text) = &c.text {
                look_at_refs(&mut files, text, cfg);
            }
        }
    }
    let records = target.uuid.as_deref().map(|uuid| records(ctx, uuid));
    let processes = crate::guard::Scanner::new()
        .and_then(|mut s| s.scan(&eff.guard_processes))
        .map_err(|e| format!("{e:#}"));
    let mut keys = vec![vm_arg.to_string()];
    keys.extend(target.uuid.clone());
    if let Some(vm) = &vm {
        keys.push(vm.info.name.clone());
    }
    let lock_held = keys
        .iter()
        .any(|k| crate::lock::is_held(&ctx.locks_dir(), k));
    Facts {
        vm_arg: vm_arg.to_string(),
        vboxmanage: Ok(Tool {
            exe: vb.exe.clone(),
            version,
        }),
        target,
        vm,
        media,
        registered_vms,
        snapshot_name: eff.snapshot_name.clone(),
        merge_margin: eff.merge_margin,
        guard_processes: eff.guard_processes.clone(),
        settings_text,
        leftover_tmp,
        settings_copies,
        files,
        records,
        processes: Some(processes),
        lock_held,
    }
}

/// The facts when VBoxManage cannot be found: only that.
fn without_vboxmanage(vm_arg: &str, why: String) -> Facts {
    Facts {
        vm_arg: vm_arg.to_string(),
        vboxmanage: Err(why),
        target: Target {
            label: vm_arg.to_string(),
            ..Target::default()
        },
        vm: None,
        media: Vec::new(),
        registered_vms: None,
        snapshot_name: String::new(),
        merge_margin: 0,
        guard_processes: Vec::new(),
        settings_text: None,
        leftover_tmp: None,
        settings_copies: Vec::new(),
        files: Files::default(),
        records: None,
        processes: None,
        lock_held: false,
    }
}

/// What the fold would make of a readable VM, its settings file, free
/// space, and the files of its chains and Snapshots folder.
fn readable(
    ctx: &Context,
    info: VmInfo,
    media: &[Medium],
    eff: &crate::config::Effective,
    files: &mut Files,
) -> ReadableVm {
    if let Some(dir) = &info.snapshot_folder {
        files.list(dir);
    }
    for att in &info.attachments {
        for m in media::chain(media, &att.image_uuid).into_iter().flatten() {
            files.probe(&m.location);
        }
    }
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let policy = crate::plan::Policy::of(eff, &now, ctx.global.adopt);
    let planned = crate::plan::plan(&info, media, &policy, &crate::vbox::file_exists);
    let preflight = planned
        .as_ref()
        .ok()
        .map(|p| crate::engine::preflight(&info, media, p, eff).map(|_| ()));
    let settings_file = info
        .cfg_file
        .as_ref()
        .map(|cfg| crate::vbox::settings::check_file(cfg, &info.uuid));
    // Where the disks are: the first attached disk, else the settings file.
    let free_space = media
        .iter()
        .find(|m| info.attachments.iter().any(|a| a.image_uuid == m.uuid))
        .map(|m| m.location.clone())
        .or_else(|| info.cfg_file.clone())
        .map(|path| FreeSpace {
            free: crate::disk::free(&path),
            path,
        });
    ReadableVm {
        plan: planned.map(|_| ()),
        preflight,
        settings_file,
        free_space,
        info,
    }
}

/// The files a settings text references: its images and its Snapshots
/// folder (with, for each attached image, `<Snapshots>/{uuid}.vdi`).
fn look_at_refs(files: &mut Files, text: &str, cfg: &Path) {
    let Ok(refs) = settings_refs(text, cfg) else {
        return;
    };
    for (_, p) in &refs.registry {
        files.probe(p);
    }
    files.list(&refs.snapshot_folder);
    for u in &refs.attached {
        files.probe(&refs.snapshot_folder.join(format!("{{{u}}}.vdi")));
    }
}

/// The settings copies a repair could put back, newest first: vblaunch's
/// backups (each with its `-prev`), then the `-prev` beside the file.
fn settings_copies(ctx: &Context, uuid: &str, cfg: &Path) -> Vec<SettingsCopy> {
    let Some(file) = cfg.file_name().map(|f| f.to_string_lossy().into_owned()) else {
        return Vec::new();
    };
    let mut paths = Vec::new();
    for d in crate::state::settings_backups(&ctx.data_dir, uuid)
        .iter()
        .rev()
    {
        paths.push(d.join(&file));
        paths.push(d.join(format!("{file}-prev")));
    }
    paths.push(cfg.with_file_name(format!("{file}-prev")));
    paths
        .into_iter()
        .map(|path| SettingsCopy {
            text: std::fs::read_to_string(&path).ok(),
            path,
        })
        .collect()
}

fn records(ctx: &Context, uuid: &str) -> Records {
    Records {
        backups: crate::state::settings_backups(&ctx.data_dir, uuid),
        backups_dir: crate::state::dir(&ctx.data_dir, uuid).join("settings-backups"),
        journal: crate::state::load_journal(&ctx.data_dir, uuid).map_err(|e| format!("{e:#}")),
        state: crate::state::load(&ctx.data_dir, uuid).map_err(|e| format!("{e:#}")),
    }
}

/// Find the VM: VirtualBox's view if it can read it, else its UUID and
/// settings file from `list vms --long`, VirtualBox.xml, or vblaunch's records.
fn locate(ctx: &Context, vb: &VBoxManage, vm_arg: &str) -> (Target, Option<VmInfo>) {
    let first_error = match vb.show_vm_info(vm_arg) {
        Ok(info) => {
            let t = Target {
                label: info.name.clone(),
                uuid: Some(info.uuid.clone()),
                cfg: info.cfg_file.clone(),
                access_error: None,
            };
            return (t, Some(info));
        }
        Err(e) => format!("{e:#}"),
    };
    let mut uuid =
        crate::vbox::state::is_uuid(vm_arg).then(|| vm_arg.trim_matches(['{', '}']).to_lowercase());
    let mut cfg = None;
    let mut access_error = None;
    // `list vms --long`: blocks of `Name:` / `UUID:` / `Config file:`.
    if let Ok((out, err)) = vb.list_vms_long() {
        for (u, c) in parse_long_vms(&out) {
            if uuid.as_deref() == Some(u.as_str())
                || (uuid.is_none() && c.file_stem().is_some_and(|s| s == vm_arg))
            {
                uuid = Some(u);
                cfg = Some(c);
                break;
            }
        }
        let errs = crate::vbox::errors::error_lines(&err);
        if !errs.is_empty() {
            access_error = Some(errs.join("\n"));
        }
    }
    // VirtualBox.xml's machine registry.
    if cfg.is_none() {
        for (u, c) in machine_entries(ctx) {
            if uuid.as_deref() == Some(u.as_str())
                || (uuid.is_none() && c.file_stem().is_some_and(|s| s == vm_arg))
            {
                uuid = Some(u);
                cfg = Some(c);
                break;
            }
        }
    }
    // vblaunch's own records: settings backups named after the VM.
    if uuid.is_none() {
        uuid = uuid_from_backups(ctx, vm_arg);
    }
    // Still registered (inaccessible) under that UUID?
    let registered = match (&uuid, vb.list_vms()) {
        (Some(u), Ok(vms)) => vms.iter().any(|(_, x)| x == u),
        _ => false,
    };
    if !registered && cfg.is_none() {
        // Not registered at all.
        let t = Target {
            label: vm_arg.to_string(),
            uuid: None,
            cfg: None,
            access_error: Some(first_error),
        };
        return (t, None);
    }
    if let (Some(u), None) = (&uuid, &cfg) {
        cfg = machine_entries(ctx)
            .into_iter()
            .find(|(x, _)| x == u)
            .map(|(_, c)| c);
    }
    let t = Target {
        label: vm_arg.to_string(),
        uuid,
        cfg,
        access_error: access_error.or(Some(first_error)),
    };
    (t, None)
}

/// `list vms --long`: (uuid, settings file) of each VM.
fn parse_long_vms(text: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut uuid: Option<String> = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("UUID:") {
            uuid = Some(v.trim().to_lowercase());
        } else if let Some(v) = line.strip_prefix("Config file:") {
            if let Some(u) = uuid.take() {
                out.push((u, PathBuf::from(v.trim())));
            }
        }
    }
    out
}

/// `<MachineEntry uuid="{…}" src="…"/>` of VirtualBox.xml: (uuid, settings file).
fn machine_entries(ctx: &Context) -> Vec<(String, PathBuf)> {
    let homes = crate::vbox::locate::user_homes(&|v| ctx.env(v));
    crate::vbox::settings::machine_registry(&homes)
        .unwrap_or_else(|e| {
            log::warn!("{e}");
            None
        })
        .unwrap_or_default()
}

fn uuid_from_backups(ctx: &Context, vm_arg: &str) -> Option<String> {
    let file = format!("{vm_arg}.vbox");
    let rd = std::fs::read_dir(ctx.data_dir.join("vms")).ok()?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !crate::vbox::state::is_uuid(&name) {
            continue;
        }
        if crate::state::settings_backups(&ctx.data_dir, &name)
            .iter()
            .any(|d| d.join(&file).is_file())
        {
            return Some(name);
        }
    }
    None
}

/// The `.vdi` files of a folder.
fn vdi_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("vdi")))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A VDI file's ids, from its header.
fn vdi_ids(path: &Path) -> Option<VdiIds> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = [0u8; 0x1c8];
    f.read_exact(&mut h).ok()?;
    if h[0x40..0x44] != [0x7f, 0x10, 0xda, 0xbe] {
        return None;
    }
    let uuid = |o: usize| {
        let b = &h[o..o + 16];
        format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    };
    let parent = uuid(0x1a8);
    let parent = (parent != "00000000-0000-0000-0000-000000000000").then_some(parent);
    Some((uuid(0x188), parent))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixture;

    #[test]
    fn the_recorded_long_list_names_an_inaccessible_vms_settings_file() {
        // Fixture 43: `list vms --long` of a VM VirtualBox cannot load.
        assert_eq!(
            parse_long_vms(&fixture("43-regmissing-list-vms-long.stdout")),
            [(
                "18580ff3-3d30-4242-b9bf-6fe37f9ff5f1".to_string(),
                PathBuf::from("/home/user/vbox/vms/TestVM/TestVM.vbox")
            )]
        );
        assert!(parse_long_vms("UUID: 1\nName: x\n").is_empty());
    }

    /// A file with a VDI header naming `uuid` (bytes as VirtualBox stores
    /// them: the first three fields little-endian) and a parent.
    fn header(uuid: [u8; 16], parent: [u8; 16]) -> Vec<u8> {
        let mut h = vec![0u8; 0x200];
        h[0x40..0x44].copy_from_slice(&[0x7f, 0x10, 0xda, 0xbe]);
        h[0x188..0x198].copy_from_slice(&uuid);
        h[0x1a8..0x1b8].copy_from_slice(&parent);
        h
    }

    #[test]
    fn vdi_headers_and_folders_are_read_once_into_files() {
        let d = tempfile::tempdir().unwrap();
        let id = [
            0x04, 0x03, 0x02, 0x01, 0x06, 0x05, 0x08, 0x07, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
            0x0f, 0x10,
        ];
        let diff = d.path().join("{diff}.vdi");
        std::fs::write(&diff, header(id, id)).unwrap();
        let base = d.path().join("BASE.VDI");
        std::fs::write(&base, header(id, [0; 16])).unwrap();
        std::fs::write(d.path().join("short.vdi"), b"not a header").unwrap();
        std::fs::write(d.path().join("notes.txt"), b"").unwrap();
        let mut files = Files::default();
        files.list(d.path());
        let listed: Vec<String> = files
            .vdis(d.path())
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(listed, ["BASE.VDI", "short.vdi", "{diff}.vdi"]);
        let uuid = "01020304-0506-0708-090a-0b0c0d0e0f10".to_string();
        assert_eq!(files.vdi(&diff), Some(&(uuid.clone(), Some(uuid.clone()))));
        assert_eq!(files.vdi(&base), Some(&(uuid, None)));
        assert_eq!(files.vdi(&d.path().join("short.vdi")), None);
        assert_eq!(files.size(&diff), Some(0x200));
        assert!(files.is_file(&diff));
        // Never looked at: absent.
        assert_eq!(files.size(&d.path().join("notes.txt")), None);
        assert!(files.vdis(&d.path().join("elsewhere")).is_empty());
        files.probe(&d.path().join("gone.vdi"));
        let gone = &files.files[&d.path().join("gone.vdi")];
        assert_eq!(*gone, FileFacts::default());
    }
}
