//! The judgement of `vblaunch doctor`: pure functions from [`Facts`] to
//! [`Check`]s (`ok`, `warn` or `FAIL`, the evidence, the recovery to print
//! and the [`Fix`] `--fix` may perform). No I/O and no printing here: the
//! facts were read by [`super::facts`], and `run` prints what is judged.
//!
//! [`all`] runs every check in the order they are printed: VBoxManage and
//! known defects; the VM registered and readable; for a readable VM its
//! state, media chain, snapshots, pre-flight, settings file and free space;
//! vblaunch's records (settings backups, a leftover `-tmp` of an
//! inaccessible VM, journal, last fold); VirtualBox processes; the lock.
use std::path::{Path, PathBuf};

use super::facts::{Facts, ReadableVm, Records, VdiIds};
use crate::vbox::media::{self, Medium};
use crate::vbox::settings::refs as settings_refs;
use crate::vbox::vminfo::Attachment;
use crate::vbox::VmInfo;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Ok,
    Warn,
    Fail,
}

/// A repair `--fix` may perform.
#[derive(Debug, Clone)]
pub enum Fix {
    /// Move `<vm>.vbox-tmp` into the settings backups.
    MoveTmp { tmp: PathBuf },
    /// Open images VirtualBox's registry lost, then save the VM's settings.
    OpenMedia { paths: Vec<PathBuf> },
    /// Attach an unregistered image (the real current state) in place of a
    /// missing one the stale settings name.
    Relink {
        controller: String,
        port: u32,
        device: u32,
        orphan: PathBuf,
        missing: String,
    },
    /// Put a good settings copy in place of the current settings file.
    RestoreSettings { from: PathBuf },
    /// Run the fold again.
    Fold,
}

#[derive(Debug, Clone)]
pub struct Check {
    pub level: Level,
    pub name: String,
    pub evidence: String,
    /// The exact recovery, printed under a warning or failure.
    pub recovery: Option<String>,
    pub fix: Option<Fix>,
}

fn check(level: Level, name: &str, evidence: impl Into<String>) -> Check {
    Check {
        level,
        name: name.to_string(),
        evidence: evidence.into(),
        recovery: None,
        fix: None,
    }
}

impl Check {
    fn recovery(mut self, text: impl Into<String>) -> Check {
        self.recovery = Some(text.into());
        self
    }
    fn fix(mut self, fix: Fix) -> Check {
        self.fix = Some(fix);
        self
    }
    /// With the repair "put the good settings copy back", if there is one.
    fn restore_fix(self, f: &Facts, cfg: &Path) -> Check {
        match good_settings_copy(f, cfg) {
            Some(from) => self.fix(Fix::RestoreSettings { from }),
            None => self,
        }
    }
}

/// Every check, in the order they are printed.
pub fn all(f: &Facts) -> Vec<Check> {
    let tool = match &f.vboxmanage {
        Ok(t) => t,
        Err(e) => {
            return vec![check(Level::Fail, "VBoxManage", e.clone()).recovery(
                "install VirtualBox, or point vblaunch at VBoxManage with --vboxmanage PATH, \
                 VBLAUNCH_VBOXMANAGE or `vboxmanage = \"…\"` in the config file",
            )]
        }
    };
    let mut out = vboxmanage(&tool.exe, &tool.version);
    out.push(registered(f));
    if let Some(vm) = &f.vm {
        out.extend(readable(f, vm));
    }
    if let (Some(uuid), Some(rec)) = (&f.target.uuid, &f.records) {
        out.push(settings_backups(f, rec));
        out.extend(leftover_of_inaccessible(f));
        out.push(journal(f, rec, uuid));
        out.push(last_fold(f, rec));
    }
    out.extend(processes(f));
    out.extend(lock(f));
    out
}

/// VBoxManage runs, and its version has no known data-loss defect.
fn vboxmanage(exe: &Path, version: &Result<String, String>) -> Vec<Check> {
    match version {
        Ok(v) => vec![
            check(
                Level::Ok,
                "VBoxManage",
                format!("{} (version {v})", exe.display()),
            ),
            match crate::vbox::known_bugs::warning(v) {
                Some(w) => check(Level::Fail, "known VirtualBox defects", w)
                    .recovery("upgrade VirtualBox before the next launch"),
                None => check(
                    Level::Ok,
                    "known VirtualBox defects",
                    format!("none known in {v}"),
                ),
            },
        ],
        Err(e) => vec![check(
            Level::Fail,
            "VBoxManage",
            format!("{} does not run: {e}", exe.display()),
        )
        .recovery("reinstall VirtualBox, or point --vboxmanage at a working VBoxManage")],
    }
}

/// The VM is registered, and VirtualBox can read it.
fn registered(f: &Facts) -> Check {
    match (&f.vm, &f.target.uuid) {
        (Some(vm), _) => {
            let vm = &vm.info;
            check(
                Level::Ok,
                "VM registered and accessible",
                format!(
                    "'{}' {{{}}}, settings {}",
                    vm.name,
                    vm.uuid,
                    vm.cfg_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "unknown".into())
                ),
            )
        }
        (None, Some(uuid)) => inaccessible(f, uuid),
        (None, None) => not_registered(f),
    }
}

/// Neither VirtualBox nor vblaunch knows a VM of that name.
fn not_registered(f: &Facts) -> Check {
    let vm_arg = &f.vm_arg;
    let known = match &f.registered_vms {
        Some(Ok(v)) => v
            .iter()
            .map(|(n, u)| format!("'{n}' {{{u}}}"))
            .collect::<Vec<_>>()
            .join(", "),
        Some(Err(e)) => format!("(could not list them: {e})"),
        None => String::new(),
    };
    check(
        Level::Fail,
        "VM registered",
        format!(
            "VirtualBox has no VM '{vm_arg}' and vblaunch has no record of one by that \
             name. Registered VMs: {}",
            if known.is_empty() {
                "none".into()
            } else {
                known
            }
        ),
    )
    .recovery(format!(
        "check the name (case-sensitive; a UUID works too). If the VM was removed from \
         VirtualBox but its folder still exists, register it again: `VBoxManage \
         registervm \"/path/to/{vm_arg}/{vm_arg}.vbox\"` (or Machine > Add in the \
         VirtualBox Manager)"
    ))
}

// ---------------------------------------------------------------------------
// A VM VirtualBox cannot read

/// The failure for a VM VirtualBox cannot read, with the repair that fits.
fn inaccessible(f: &Facts, uuid: &str) -> Check {
    let name = "VM registered and accessible";
    let t = &f.target;
    let err = t.access_error.clone().unwrap_or_default();
    let (cfg, text) = match (&t.cfg, &f.settings_text) {
        (Some(cfg), Some(Ok(text))) => (cfg, text),
        (Some(cfg), Some(Err(e))) => {
            return check(
                Level::Fail,
                name,
                format!(
                    "VM {{{uuid}}} is inaccessible: its settings file {} cannot be read ({e})",
                    cfg.display()
                ),
            )
            .recovery(restore_steps(f, uuid, cfg))
            .restore_fix(f, cfg)
        }
        _ => {
            return check(
                Level::Fail,
                name,
                format!("VM {{{uuid}}} is registered but inaccessible, and its settings file is unknown. VirtualBox said: {err}"),
            )
            .recovery("open the VirtualBox Manager: it shows the VM's settings file and why it cannot be read")
        }
    };
    let refs = match settings_refs(text, cfg) {
        Ok(r) => r,
        Err(e) => {
            return check(
                Level::Fail,
                name,
                format!("VM {{{uuid}}} is inaccessible: its settings file {e}"),
            )
            .recovery(restore_steps(f, uuid, cfg))
            .restore_fix(f, cfg)
        }
    };
    let known: Vec<&str> = refs
        .registry
        .iter()
        .map(|(u, _)| u.as_str())
        .chain(f.media.iter().map(|m| m.uuid.as_str()))
        .collect();
    let missing: Vec<&String> = refs
        .attached
        .iter()
        .filter(|u| !known.contains(&u.as_str()))
        .collect();
    let mut found = Vec::new();
    let mut lost = Vec::new();
    for u in &missing {
        match find_image(f, &refs.snapshot_folder, u) {
            Some(p) => found.push(p),
            None => lost.push((*u).clone()),
        }
    }
    let head = format!(
        "VM {{{uuid}}} (settings {}) is registered but INACCESSIBLE. VirtualBox said: {}",
        cfg.display(),
        if err.is_empty() {
            "(nothing)".into()
        } else {
            err.replace('\n', " | ")
        }
    );
    if !missing.is_empty() && lost.is_empty() {
        return unregistered_images(name, &head, uuid, cfg, found);
    }
    if !lost.is_empty() {
        return lost_images(f, name, &head, uuid, cfg, &lost, &refs.snapshot_folder);
    }
    check(Level::Fail, name, head)
        .recovery(restore_steps(f, uuid, cfg))
        .restore_fix(f, cfg)
}

/// The file in `folder` whose VDI header says it is image `uuid`:
/// `{uuid}.vdi` first, else any `.vdi` there.
fn find_image(f: &Facts, folder: &Path, uuid: &str) -> Option<PathBuf> {
    let is = |p: &Path| f.files.vdi(p).is_some_and(|(x, _)| x == uuid);
    let by_name = folder.join(format!("{{{uuid}}}.vdi"));
    if is(&by_name) {
        return Some(by_name);
    }
    f.files.vdis(folder).iter().find(|p| is(p)).cloned()
}

/// The settings name images VirtualBox's registry lost, and their files exist.
fn unregistered_images(
    name: &str,
    head: &str,
    uuid: &str,
    cfg: &Path,
    found: Vec<PathBuf>,
) -> Check {
    check(
        Level::Fail,
        name,
        format!(
            "{head}. The settings name disk image(s) missing from VirtualBox's media registry \
             whose files still exist: {}",
            join_paths(&found)
        ),
    )
    .recovery(format!(
        "the data is intact; only VirtualBox's registry lost track of the image. \
         `vblaunch doctor {uuid} --fix` repairs it; by hand, with VirtualBox's windows closed:\n\
         1. back up {}\n\
         2. run this as ONE command line (VirtualBox forgets an opened image when its service \
         stops, a few seconds after the last command, and then drops the VM from its list):\n   \
         VBoxManage list vms && {} && VBoxManage list vms && \
         VBoxManage setextradata {uuid} vblaunch/repaired yes && \
         VBoxManage setextradata {uuid} vblaunch/repaired\n   \
         (opens the image(s), lets VirtualBox load the VM again and save its settings, registry included)",
        cfg.display(),
        found
            .iter()
            .map(|p| format!("VBoxManage showmediuminfo disk \"{}\"", p.display()))
            .collect::<Vec<_>>()
            .join(" && "),
    ))
    .fix(Fix::OpenMedia { paths: found })
}

/// Images the settings name are neither registered nor in the Snapshots folder.
fn lost_images(
    f: &Facts,
    name: &str,
    head: &str,
    uuid: &str,
    cfg: &Path,
    lost: &[String],
    folder: &Path,
) -> Check {
    check(
        Level::Fail,
        name,
        format!(
            "{head}. Disk image(s) {} are neither in VirtualBox's media registry nor in {}",
            lost.iter()
                .map(|u| format!("{{{u}}}"))
                .collect::<Vec<_>>()
                .join(", "),
            folder.display()
        ),
    )
    .recovery(format!(
        "restore {} from your backup into {} (a backup restored without its Snapshots \
         folder does this), then run `vblaunch doctor {uuid}` again.\n{}",
        lost.iter()
            .map(|u| format!("{{{u}}}.vdi"))
            .collect::<Vec<_>>()
            .join(", "),
        folder.display(),
        restore_steps(f, uuid, cfg)
    ))
    .restore_fix(f, cfg)
}

/// How to put a settings copy back by hand.
fn restore_steps(f: &Facts, uuid: &str, cfg: &Path) -> String {
    let file = cfg
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let newest = f.records.as_ref().and_then(|r| r.backups.last());
    let copy = newest
        .map(|d| d.join(&file).display().to_string())
        .unwrap_or_else(|| format!("{}-prev", cfg.display()));
    let dir = f
        .records
        .as_ref()
        .map(|r| r.backups_dir.display().to_string())
        .unwrap_or_default();
    format!(
        "if the settings file is damaged or stale: close VirtualBox; copy {cfg} aside; \
         `VBoxManage unregistervm {uuid}`; copy a good copy (newest first: {copy}, older folders \
         in {dir}) to {cfg}; `VBoxManage registervm \"{cfg}\"`; run `vblaunch doctor {uuid}` again",
        cfg = cfg.display()
    )
}

/// The newest settings copy that differs from the current file, whose every
/// image exists on disk and that accounts for every image in the Snapshots
/// folder.
fn good_settings_copy(f: &Facts, cfg: &Path) -> Option<PathBuf> {
    let current = match &f.settings_text {
        Some(Ok(t)) => Some(t.as_str()),
        _ => None,
    };
    f.settings_copies
        .iter()
        .find(|c| {
            let Some(text) = c.text.as_deref() else {
                return false;
            };
            if current == Some(text) {
                return false;
            }
            let Ok(refs) = settings_refs(text, cfg) else {
                return false;
            };
            let all_exist = refs.registry.iter().all(|(_, p)| f.files.is_file(p));
            let known: Vec<&str> = refs
                .registry
                .iter()
                .map(|(u, _)| u.as_str())
                .chain(f.media.iter().map(|m| m.uuid.as_str()))
                .collect();
            let resolved = refs.attached.iter().all(|u| known.contains(&u.as_str()));
            let no_orphans = f.files.vdis(&refs.snapshot_folder).iter().all(|p| {
                refs.registry.iter().any(|(_, l)| l == p)
                    || f.files
                        .vdi(p)
                        .is_some_and(|(u, _)| refs.registry.iter().any(|(x, _)| x == u))
            });
            all_exist && resolved && no_orphans
        })
        .map(|c| c.path.clone())
}

// ---------------------------------------------------------------------------
// A VM VirtualBox can read

/// The checks of a VM VirtualBox can read, in order.
fn readable(f: &Facts, vm: &ReadableVm) -> Vec<Check> {
    let mut out = vec![state(&vm.info)];
    let chain = media_chain(f, &vm.info);
    let chain_ok = chain.iter().all(|c| c.level != Level::Fail);
    out.extend(chain);
    out.push(snapshots(f, vm, chain_ok));
    out.extend(preflight(f, vm));
    out.extend(settings_file(f, vm));
    out.extend(free_space(f, vm));
    out
}

/// A fold needs the VM powered off or saved, and no session open.
fn state(vm: &VmInfo) -> Check {
    if vm.state.allows_fold() && vm.session_name.is_none() {
        check(Level::Ok, "state", vm.state.to_string())
    } else if let Some(s) = &vm.session_name {
        check(
            Level::Warn,
            "state",
            format!(
                "{} and open in '{s}' (a fold waits until it is closed)",
                vm.state
            ),
        )
    } else {
        check(
            Level::Warn,
            "state",
            format!("{} (a fold needs the VM powered off or saved)", vm.state),
        )
    }
}

/// An image in the Snapshots folder VirtualBox does not know (by path or
/// by the UUID in its header), with its header's ids.
type Orphan = (PathBuf, Option<VdiIds>);

fn orphans(f: &Facts, vm: &VmInfo) -> Vec<Orphan> {
    let Some(dir) = &vm.snapshot_folder else {
        return Vec::new();
    };
    f.files
        .vdis(dir)
        .iter()
        .filter(|p| !f.media.iter().any(|m| &m.location == *p))
        .map(|p| (p.clone(), f.files.vdi(p).cloned()))
        .filter(|(_, ids)| {
            // A registered UUID under another path is not an orphan.
            !ids.as_ref()
                .is_some_and(|(u, _)| f.media.iter().any(|m| &m.uuid == u))
        })
        .collect()
}

/// Every attached disk's chain: each image registered, its file there and
/// readable, its header agreeing with the registry, and of type `normal`;
/// images in the Snapshots folder VirtualBox does not know.
fn media_chain(f: &Facts, vm: &VmInfo) -> Vec<Check> {
    let orphans = orphans(f, vm);
    let mut out = Vec::new();
    let disks: Vec<&Attachment> = vm
        .attachments
        .iter()
        .filter(|a| f.media.iter().any(|m| m.uuid == a.image_uuid))
        .collect();
    if disks.is_empty() {
        out.push(check(
            Level::Warn,
            "media chain",
            "the VM has no hard disk attached",
        ));
    }
    let mut chains = Vec::new();
    for att in disks {
        let (checks, mut shown) = disk_chain(f, vm, att, &orphans);
        out.extend(checks);
        shown.reverse();
        chains.push(format!("{}: {}", att.slot(), shown.join(" <- ")));
    }
    let chain_ok = out.iter().all(|c| c.level != Level::Fail);
    if chain_ok && !chains.is_empty() {
        out.push(check(Level::Ok, "media chain", chains.join("; ")));
    }
    let stale_handled = out
        .iter()
        .any(|c| matches!(c.fix, Some(Fix::Relink { .. })));
    if !orphans.is_empty() && !stale_handled {
        out.push(check(
            Level::Warn,
            "media chain",
            format!(
                "image(s) in the Snapshots folder that VirtualBox does not know: {} (left over, or \
                 the settings file is older than the disks; vblaunch leaves them alone)",
                join_paths(&orphans.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
            ),
        ));
    }
    out
}

/// One disk's chain, from its current-state image down to its base: the
/// problems found, and each image as shown (path and size), top first.
fn disk_chain(
    f: &Facts,
    vm: &VmInfo,
    att: &Attachment,
    orphans: &[Orphan],
) -> (Vec<Check>, Vec<String>) {
    let mut out = Vec::new();
    let mut shown = Vec::new();
    for (depth, link) in media::chain(&f.media, &att.image_uuid)
        .into_iter()
        .enumerate()
    {
        let m = match link {
            Ok(m) => m,
            Err(u) => {
                out.push(unregistered_link(vm, att, &u));
                break;
            }
        };
        let size = f.files.size(&m.location);
        shown.push(format!(
            "{}{}",
            m.location.display(),
            size.map(|s| format!(" ({})", crate::units::human(s)))
                .unwrap_or_default()
        ));
        if size.is_none() || !m.is_accessible() {
            out.push(unusable_image(
                f,
                vm,
                att,
                m,
                depth,
                size.is_some(),
                orphans,
            ));
            continue;
        }
        // Parent links: the file's header must agree with the registry.
        if let Some((u, p)) = f.files.vdi(&m.location) {
            if *u != m.uuid || *p != m.parent {
                out.push(
                    check(
                        Level::Fail,
                        "media chain",
                        format!(
                            "{}: VirtualBox's registry says UUID {} parent {:?}, the file's header says {u} parent {p:?}",
                            m.location.display(),
                            m.uuid,
                            m.parent
                        ),
                    )
                    .recovery("do not fold; restore the VM folder and its disks from one consistent backup"),
                );
            }
        }
        if !m.is_normal() {
            out.push(check(
                Level::Warn,
                "media chain",
                format!(
                    "{} is of type '{}': snapshots do not freeze it",
                    m.location.display(),
                    m.kind
                ),
            ));
        }
    }
    (out, shown)
}

/// A parent in the chain that VirtualBox's media registry does not hold.
fn unregistered_link(vm: &VmInfo, att: &Attachment, u: &str) -> Check {
    check(
        Level::Fail,
        "media chain",
        format!(
            "slot {}: image {{{u}}} is not in VirtualBox's media registry",
            att.slot()
        ),
    )
    .recovery(format!(
        "put {{{u}}}.vdi back from your backup (into {}), then run `vblaunch doctor` again",
        vm.snapshot_folder
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    ))
}

/// An image of the chain whose file is missing or VirtualBox cannot read:
/// a stale settings file (the real current state is an unregistered sibling
/// in the Snapshots folder), or data only a backup still has.
fn unusable_image(
    f: &Facts,
    vm: &VmInfo,
    att: &Attachment,
    m: &Medium,
    depth: usize,
    exists: bool,
    orphans: &[Orphan],
) -> Check {
    // Stale settings: an unregistered image in the Snapshots
    // folder is a child of the same parent as the missing leaf.
    let sibling: Vec<&PathBuf> = orphans
        .iter()
        .filter(|(_, ids)| {
            ids.as_ref()
                .is_some_and(|(_, p)| p.is_some() && *p == m.parent)
        })
        .map(|(p, _)| p)
        .collect();
    if depth == 0 && m.parent.is_some() && sibling.len() == 1 {
        return stale_settings(vm, att, m, sibling[0]);
    }
    check(
        Level::Fail,
        "media chain",
        format!(
            "slot {}: disk image {} is {} (VirtualBox: {}){}",
            att.slot(),
            m.location.display(),
            crate::vbox::errors::medium_problem(m.access_error.as_deref(), exists).medium_label(),
            m.state,
            diff_owner(vm, &f.media, &m.uuid)
        ),
    )
    .recovery(format!(
        "no automatic fix: the data in that file exists only in your backups.\n\
         1. close VirtualBox and do not start or fold the VM;\n\
         2. restore the file from your backup to exactly {};\n\
         3. run `vblaunch doctor {}` again.\n\
         vblaunch refuses to fold until the file is back.",
        m.location.display(),
        vm.uuid
    ))
}

/// The current-state image `m` is gone and `orphan`, its unregistered
/// sibling, holds the VM's data: an older settings file was put back.
fn stale_settings(vm: &VmInfo, att: &Attachment, m: &Medium, orphan: &Path) -> Check {
    check(
        Level::Fail,
        "media chain",
        format!(
            "slot {}: the current-state image {} does not exist, while {} (an \
             image VirtualBox does not know, child of the same parent) does: \
             the settings file is STALE (an older copy put back)",
            att.slot(),
            m.location.display(),
            orphan.display()
        ),
    )
    .recovery(format!(
        "the VM's data is in {orphan}. `vblaunch doctor {u} --fix` attaches it \
         again; by hand, with VirtualBox's windows closed:\n\
         1. back up {cfg}\n\
         2. VBoxManage storageattach {u} --storagectl \"{ctl}\" --port {port} --device {dev} --type hdd --medium \"{orphan}\"\n\
         3. VBoxManage closemedium disk {missing}",
        orphan = orphan.display(),
        u = vm.uuid,
        cfg = vm
            .cfg_file
            .as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default(),
        ctl = att.controller,
        port = att.port,
        dev = att.device,
        missing = m.uuid,
    ))
    .fix(Fix::Relink {
        controller: att.controller.clone(),
        port: att.port,
        device: att.device,
        orphan: orphan.to_path_buf(),
        missing: m.uuid.clone(),
    })
}

/// " (what snapshot '<name>' ... wrote)" for a differencing image, if known.
fn diff_owner(vm: &VmInfo, media: &[Medium], uuid: &str) -> String {
    let Some(diffs) = crate::snapshots::path_diffs(vm, media) else {
        return String::new();
    };
    for (i, ms) in diffs {
        if ms.iter().any(|m| m.uuid == uuid) {
            let s = &vm.snapshots[i];
            return format!(
                "; it holds what the VM wrote after snapshot '{}' {{{}}}{}",
                s.name,
                s.uuid,
                crate::snapshots::taken_at(s)
                    .map(|t| format!(" (taken {t})"))
                    .unwrap_or_default()
            );
        }
    }
    String::new()
}

/// vblaunch's snapshots, and whether a fold would go ahead.
fn snapshots(f: &Facts, vm: &ReadableVm, chain_ok: bool) -> Check {
    let info = &vm.info;
    let (own, off) = crate::snapshots::own_snapshots(info, &f.snapshot_name, false);
    let users = info.snapshots.len() - own.len() - off.len();
    let desc = match info.current() {
        Some(c) => format!(
            "{} of vblaunch's, {users} of yours; current '{}' {{{}}}{}",
            own.len(),
            c.name,
            c.uuid,
            crate::snapshots::taken_at(c)
                .map(|t| format!(" taken {t}"))
                .unwrap_or_default()
        ),
        None => "no snapshots (the first launch takes vblaunch's)".to_string(),
    };
    match &vm.plan {
        Ok(_) if off.is_empty() => check(Level::Ok, "snapshots", desc),
        Ok(_) => check(
            Level::Warn,
            "snapshots",
            format!(
                "{desc}; {} vblaunch snapshot(s) off the current path",
                off.len()
            ),
        ),
        Err(r) if chain_ok => check(
            Level::Fail,
            "snapshots",
            format!("{desc}; a fold would refuse"),
        )
        .recovery(r.to_string()),
        Err(_) => check(
            Level::Warn,
            "snapshots",
            format!("{desc}; a fold refuses until the media chain is repaired"),
        ),
    }
}

/// What the next fold's pre-flight says of the real folders and images
/// (writable, room, a merge target shared with another VM or clone).
fn preflight(f: &Facts, vm: &ReadableVm) -> Option<Check> {
    match vm.preflight.as_ref()? {
        Ok(()) => Some(check(
            Level::Ok,
            "pre-flight",
            "the folders and images the next fold writes are writable and have room, and \
             no merge target is shared",
        )),
        // A leftover settings file has its own check.
        Err(_) if f.leftover_tmp.is_some() => None,
        Err(r) => Some(
            check(Level::Fail, "pre-flight", "the next fold would refuse").recovery(r.to_string()),
        ),
    }
}

/// No half-written `-tmp` beside the settings file, and the file on disk
/// well-formed: VirtualBox may hold the VM in memory while the file is
/// empty or damaged (measured: VERR_DISK_FULL at a take leaves the .vbox
/// at 0 bytes); the VM is lost when VBoxSVC next starts.
fn settings_file(f: &Facts, vm: &ReadableVm) -> Option<Check> {
    if let Some(tmp) = &f.leftover_tmp {
        return Some(
            check(
                Level::Fail,
                "settings file",
                format!(
                    "VirtualBox left a half-written {} behind (an interrupted save); vblaunch refuses to fold",
                    tmp.display()
                ),
            )
            .recovery(format!(
                "`vblaunch doctor {} --fix` moves it into vblaunch's settings backups; by hand: \
                 close VirtualBox and move it out of the VM's folder",
                crate::process::quote(&vm.info.name)
            ))
            .fix(Fix::MoveTmp { tmp: tmp.clone() }),
        );
    }
    let cfg = vm.info.cfg_file.as_ref()?;
    Some(match vm.settings_file.as_ref()? {
        Ok(()) => check(
            Level::Ok,
            "settings file",
            format!("{} (well-formed, no leftover -tmp)", cfg.display()),
        ),
        Err(why) => check(
            Level::Fail,
            "settings file",
            format!(
                "{why}; VirtualBox still has the VM in memory, but it cannot load it \
                 again once its service restarts"
            ),
        )
        .recovery(restore_steps(f, &vm.info.uuid, cfg))
        .restore_fix(f, cfg),
    })
}

/// Room for the next merge where the disks are.
fn free_space(f: &Facts, vm: &ReadableVm) -> Option<Check> {
    let space = vm.free_space.as_ref()?;
    let diff_bytes: u64 = crate::snapshots::path_diffs(&vm.info, &f.media)
        .map(|d| {
            d.iter()
                .flat_map(|(_, ms)| ms.iter())
                .filter_map(|m| f.files.size(&m.location))
                .sum()
        })
        .unwrap_or(0);
    Some(match space.free {
        Some(free) if free >= diff_bytes + f.merge_margin => check(
            Level::Ok,
            "free space",
            format!(
                "{} free where the disks are; the next merge needs about {}",
                crate::units::human(free),
                crate::units::human(diff_bytes)
            ),
        ),
        Some(free) => check(
            Level::Warn,
            "free space",
            format!(
                "{} free where the disks are; merging needs about {} plus a margin of {}",
                crate::units::human(free),
                crate::units::human(diff_bytes),
                crate::units::human(f.merge_margin)
            ),
        )
        .recovery("free some space on that volume before the next launch"),
        None => check(
            Level::Warn,
            "free space",
            format!("unknown for {}", space.path.display()),
        ),
    })
}

// ---------------------------------------------------------------------------
// vblaunch's records (readable or not)

/// vblaunch copies the settings before each fold.
fn settings_backups(f: &Facts, rec: &Records) -> Check {
    let managed =
        f.vm.as_ref()
            .map(|vm| {
                !crate::snapshots::own_snapshots(&vm.info, &f.snapshot_name, false)
                    .0
                    .is_empty()
            })
            .unwrap_or(true);
    match rec.backups.last() {
        Some(newest) => check(
            Level::Ok,
            "settings backups",
            format!(
                "{} in {}, newest {}",
                rec.backups.len(),
                newest.parent().unwrap_or(newest).display(),
                newest
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        ),
        None if managed => check(
            Level::Warn,
            "settings backups",
            format!(
                "none in {} (vblaunch copies the settings before each fold)",
                rec.backups_dir.display()
            ),
        ),
        None => check(
            Level::Ok,
            "settings backups",
            "none yet (the first fold makes one)",
        ),
    }
}

/// A half-written `-tmp` beside the settings of a VM VirtualBox cannot read
/// (for a readable VM, [`settings_file`] says it).
fn leftover_of_inaccessible(f: &Facts) -> Option<Check> {
    if f.vm.is_some() {
        return None;
    }
    let tmp = f.leftover_tmp.as_ref()?;
    Some(
        check(
            Level::Fail,
            "settings file",
            format!(
                "VirtualBox left a half-written {} behind (an interrupted save)",
                tmp.display()
            ),
        )
        .recovery("`vblaunch doctor --fix` moves it into vblaunch's settings backups")
        .fix(Fix::MoveTmp { tmp: tmp.clone() }),
    )
}

/// The journal of the last run: an incomplete merge is a failure (the disk
/// it merges into may be partly merged), an interrupted or failed step a
/// warning. Only this VM's steps count (a journal may record another VM's).
fn journal(f: &Facts, rec: &Records, uuid: &str) -> Check {
    let j = match &rec.journal {
        Ok(j) => j,
        Err(e) => return check(Level::Warn, "journal", e.clone()),
    };
    let exists = |u: &str| f.vm.as_ref().is_none_or(|vm| vm.info.snapshot(u).is_some());
    let incomplete: Vec<_> = j
        .incomplete_merges()
        .into_iter()
        .filter(|m| exists(&m.snapshot))
        .collect();
    let fold_line = format!(
        "run `vblaunch fold {}`: it re-reads what VirtualBox holds and finishes the \
         step (a merge VirtualBox did not finish is repeated; nothing is lost)",
        crate::process::quote(&f.vm_arg)
    );
    if let Some(m) = incomplete.first() {
        check(
            Level::Fail,
            "journal",
            format!(
                "a merge did not complete: \"{}\" (started {}; {}). The disk it \
                 merges into may be partly merged: not safe to back up until a fold \
                 completes it",
                m.step,
                m.started,
                m.outcome.lines().next().unwrap_or_default()
            ),
        )
        .recovery(fold_line)
        .fix(Fix::Fold)
    } else if let Some(e) = j.unfinished().filter(|e| e.vm == uuid) {
        check(
            Level::Warn,
            "journal",
            format!(
                "the last vblaunch {} was interrupted during step \"{}\" (started {})",
                j.run, e.step, e.started
            ),
        )
        .recovery(fold_line)
        .fix(Fix::Fold)
    } else if let Some(e) = j.failed().filter(|e| e.vm == uuid) {
        check(
            Level::Warn,
            "journal",
            format!(
                "the last vblaunch {} (started {}) failed at step \"{}\": {}",
                j.run,
                j.started,
                e.step,
                e.outcome
                    .as_deref()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            ),
        )
        .recovery(fold_line)
    } else {
        check(
            Level::Ok,
            "journal",
            if j.run.is_empty() {
                "no run recorded".to_string()
            } else {
                format!(
                    "the last {} (started {}) finished every step",
                    j.run, j.started
                )
            },
        )
    }
}

/// The record of the last fold, and whether the VM is still on the
/// snapshot that fold left it on.
fn last_fold(f: &Facts, rec: &Records) -> Check {
    let s = match &rec.state {
        Ok(s) => s,
        Err(e) => return check(Level::Warn, "last fold", e.clone()),
    };
    match &s.last_fold {
        Some(lf)
            if f.vm
                .as_ref()
                .is_some_and(|vm| vm.info.snapshot(&lf.snapshot).is_none()) =>
        {
            check(
                Level::Warn,
                "last fold",
                format!(
                    "{} left the VM on snapshot {{{}}}, which it no longer has (expected after \
                     `vblaunch restore`; otherwise the settings file is older than the last fold)",
                    lf.finished, lf.snapshot
                ),
            )
        }
        Some(lf) => check(
            Level::Ok,
            "last fold",
            format!(
                "{} ({:.1} s, {} merged, now on snapshot {{{}}})",
                lf.finished,
                lf.duration_ms as f64 / 1000.0,
                crate::units::human(lf.bytes_merged),
                lf.snapshot
            ),
        ),
        None => check(Level::Ok, "last fold", "none recorded"),
    }
}

// ---------------------------------------------------------------------------
// VirtualBox processes and vblaunch locks

fn processes(f: &Facts) -> Option<Check> {
    Some(match f.processes.as_ref()? {
        Ok(running) if running.is_empty() => check(
            Level::Ok,
            "VirtualBox processes",
            format!("none of {} running", f.guard_processes.join(", ")),
        ),
        Ok(running) => check(
            Level::Warn,
            "VirtualBox processes",
            format!(
                "running: {} (a launch waits for them; --fix needs them closed)",
                crate::guard::describe(running)
            ),
        ),
        Err(e) => check(Level::Warn, "VirtualBox processes", e.clone()),
    })
}

fn lock(f: &Facts) -> Option<Check> {
    f.lock_held.then(|| {
        check(
            Level::Warn,
            "vblaunch lock",
            "another vblaunch is working on this VM right now; its checks may change under it",
        )
    })
}

// ---------------------------------------------------------------------------

pub fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmd::doctor::facts::{
        FileFacts, Files, FreeSpace, Records, SettingsCopy, Target, Tool,
    };
    use crate::fixture;
    use crate::plan::Refusal;
    use crate::state::{IncompleteMerge, Journal, JournalEntry, LastFold, VmState};
    use crate::vbox::{media, vminfo};

    const NOW: &str = "2026-11-26T07:00:00Z";
    /// Fixture 12/13: VM TestVM, one snapshot `current`, base ← leaf.
    const VM12: &str = "18580ff3-3d30-4242-b9bf-6fe37f9ff5f1";
    const BASE12: &str = "23efa5b1-d77e-4182-934e-73737e5ccb8b";
    const LEAF12: &str = "5c2dd3db-b339-4845-9c9d-cc5c99cc039b";
    const SNAP12: &str = "8c80fd17-eeb7-4ea4-b4bd-146d4ffda522";
    const SNAPDIR: &str = "/home/user/vbox/vms/TestVM/Snapshots";

    /// VBoxManage found and working, a VM nowhere: the start of every case.
    fn base(vm_arg: &str) -> Facts {
        Facts {
            vm_arg: vm_arg.to_string(),
            vboxmanage: Ok(Tool {
                exe: PathBuf::from("/usr/bin/VBoxManage"),
                version: Ok(fixture("01-version.stdout").trim().to_string()),
            }),
            target: Target {
                label: vm_arg.to_string(),
                ..Target::default()
            },
            vm: None,
            media: Vec::new(),
            registered_vms: None,
            snapshot_name: "current".to_string(),
            merge_margin: 256 << 20,
            guard_processes: vec!["VirtualBox".to_string(), "VBoxHeadless".to_string()],
            settings_text: None,
            leftover_tmp: None,
            settings_copies: Vec::new(),
            files: Files::default(),
            records: None,
            processes: Some(Ok(Vec::new())),
            lock_held: false,
        }
    }

    fn records(dir: &str) -> Records {
        Records {
            backups: Vec::new(),
            backups_dir: PathBuf::from(dir),
            journal: Ok(Journal::default()),
            state: Ok(VmState::default()),
        }
    }

    /// A file on disk of `size` bytes with a VDI header (uuid, parent).
    fn vdi(size: u64, uuid: &str, parent: Option<&str>) -> FileFacts {
        FileFacts {
            size: Some(size),
            is_file: true,
            vdi: Some((uuid.to_string(), parent.map(str::to_string))),
        }
    }

    fn mark(vm: &mut VmInfo, snapshot: &str) {
        let s = vm
            .snapshots
            .iter_mut()
            .find(|s| s.uuid == snapshot)
            .unwrap();
        s.description = Some(crate::snapshots::description(NOW));
    }

    /// A readable VM: every registered image on disk (2 MiB, a header that
    /// agrees), the Snapshots folder holding the registered diffs, a
    /// well-formed settings file, room to merge, the fold's own plan.
    fn readable_facts(info: VmInfo, media: Vec<Medium>) -> Facts {
        let mut f = base(&info.name);
        f.target = Target {
            label: info.name.clone(),
            uuid: Some(info.uuid.clone()),
            cfg: info.cfg_file.clone(),
            access_error: None,
        };
        for m in &media {
            let file = vdi(2 << 20, &m.uuid, m.parent.as_deref());
            f.files.files.insert(m.location.clone(), file);
        }
        if let Some(dir) = &info.snapshot_folder {
            let diffs = media
                .iter()
                .filter(|m| m.location.starts_with(dir))
                .map(|m| m.location.clone())
                .collect();
            f.files.folders.insert(dir.clone(), diffs);
        }
        f.media = media;
        f.settings_text = Some(Ok("<VirtualBox/>".to_string()));
        f.records = Some(records(&format!(
            "/data/vms/{}/settings-backups",
            info.uuid
        )));
        f.vm = Some(ReadableVm {
            plan: Ok(()),
            preflight: Some(Ok(())),
            settings_file: info.cfg_file.as_ref().map(|_| Ok(())),
            free_space: Some(FreeSpace {
                path: PathBuf::from("/home/user/vbox/disks/base.vdi"),
                free: Some(100 << 30),
            }),
            info,
        });
        replan(&mut f);
        f
    }

    /// The fold's verdict on the facts as they are now.
    fn replan(f: &mut Facts) {
        let vm = f.vm.as_mut().unwrap();
        let policy = crate::plan::Policy {
            snapshot_name: "current",
            keep: 1,
            adopt: false,
            now_iso8601: NOW,
        };
        let files = &f.files;
        vm.plan = crate::plan::plan(&vm.info, &f.media, &policy, &|p| files.is_file(p)).map(|_| ());
        if vm.plan.is_err() {
            vm.preflight = None;
        }
    }

    /// Recorded outputs of `showvminfo` and `list hdds`.
    fn recorded(showvminfo: &str, hdds: &str) -> Facts {
        let info = vminfo::parse(&fixture(showvminfo)).unwrap();
        readable_facts(info, media::parse(&fixture(hdds)))
    }

    /// Fixture 12/13 with its `current` taken by vblaunch: all is well.
    fn healthy() -> Facts {
        let mut info = vminfo::parse(&fixture("12-showvminfo-1-snapshot.stdout")).unwrap();
        mark(&mut info, SNAP12);
        let mut f = readable_facts(
            info,
            media::parse(&fixture("13-list-hdds-1-snapshot.stdout")),
        );
        f.records.as_mut().unwrap().backups = vec![PathBuf::from(format!(
            "/data/vms/{VM12}/settings-backups/2026-11-26T06-00-00Z"
        ))];
        f
    }

    fn vm_mut(f: &mut Facts) -> &mut VmInfo {
        &mut f.vm.as_mut().unwrap().info
    }

    fn named<'a>(checks: &'a [Check], name: &str) -> Vec<&'a Check> {
        checks.iter().filter(|c| c.name == name).collect()
    }

    /// The one check called `name`.
    fn one(f: &Facts, name: &str) -> Check {
        let all = all(f);
        let found = named(&all, name);
        assert_eq!(found.len(), 1, "{name}: {all:#?}");
        found[0].clone()
    }

    fn leaf12() -> PathBuf {
        PathBuf::from(format!("{SNAPDIR}/{{{LEAF12}}}.vdi"))
    }

    // -----------------------------------------------------------------------
    // all

    #[test]
    fn a_healthy_vm_is_ok_in_every_check_in_print_order() {
        let f = healthy();
        let checks = all(&f);
        let seen: Vec<(&str, Level)> = checks.iter().map(|c| (c.name.as_str(), c.level)).collect();
        assert_eq!(
            seen,
            [
                ("VBoxManage", Level::Ok),
                ("known VirtualBox defects", Level::Ok),
                ("VM registered and accessible", Level::Ok),
                ("state", Level::Ok),
                ("media chain", Level::Ok),
                ("snapshots", Level::Ok),
                ("pre-flight", Level::Ok),
                ("settings file", Level::Ok),
                ("free space", Level::Ok),
                ("settings backups", Level::Ok),
                ("journal", Level::Ok),
                ("last fold", Level::Ok),
                ("VirtualBox processes", Level::Ok),
            ]
        );
        assert!(checks
            .iter()
            .all(|c| c.fix.is_none() && c.recovery.is_none()));
    }

    #[test]
    fn without_vboxmanage_there_is_only_that_failure() {
        let mut f = base("Dev Box");
        f.vboxmanage = Err("VBoxManage not found; looked in /usr/bin".to_string());
        let checks = all(&f);
        assert_eq!(checks.len(), 1, "{checks:#?}");
        let c = &checks[0];
        assert_eq!((c.level, c.name.as_str()), (Level::Fail, "VBoxManage"));
        assert_eq!(c.evidence, "VBoxManage not found; looked in /usr/bin");
        assert!(c.recovery.as_deref().unwrap().contains("--vboxmanage PATH"));
        assert!(c.fix.is_none());
    }

    // -----------------------------------------------------------------------
    // VBoxManage and known defects

    #[test]
    fn vboxmanage_ok_names_the_program_and_its_recorded_version() {
        let c = one(&healthy(), "VBoxManage");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.evidence,
            "/usr/bin/VBoxManage (version 7.2.22_Debianr175245)"
        );
        let c = one(&healthy(), "known VirtualBox defects");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(c.evidence, "none known in 7.2.22_Debianr175245");
    }

    #[test]
    fn vboxmanage_that_does_not_run_fails_and_the_checks_go_on() {
        let mut f = healthy();
        f.vboxmanage = Ok(Tool {
            exe: PathBuf::from("/opt/vb/VBoxManage"),
            version: Err("exit code 3: cannot start".to_string()),
        });
        let checks = all(&f);
        let c = named(&checks, "VBoxManage")[0];
        assert_eq!(c.level, Level::Fail);
        assert_eq!(
            c.evidence,
            "/opt/vb/VBoxManage does not run: exit code 3: cannot start"
        );
        assert!(c
            .recovery
            .as_deref()
            .unwrap()
            .contains("reinstall VirtualBox"));
        assert!(named(&checks, "known VirtualBox defects").is_empty());
        assert_eq!(named(&checks, "media chain").len(), 1);
    }

    #[test]
    fn a_version_with_a_known_data_loss_defect_fails() {
        let mut f = healthy();
        f.vboxmanage = Ok(Tool {
            exe: PathBuf::from("/usr/bin/VBoxManage"),
            version: Ok("7.2.16_Ubuntur168000".to_string()),
        });
        let c = one(&f, "known VirtualBox defects");
        assert_eq!(c.level, Level::Fail);
        assert!(c.evidence.contains("bug 850"), "{c:?}");
        assert_eq!(
            c.recovery.as_deref(),
            Some("upgrade VirtualBox before the next launch")
        );
        assert!(c.fix.is_none());
    }

    // -----------------------------------------------------------------------
    // Registered

    #[test]
    fn a_readable_vm_is_registered_and_accessible() {
        let c = one(&healthy(), "VM registered and accessible");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.evidence,
            format!("'TestVM' {{{VM12}}}, settings /home/user/vbox/vms/TestVM/TestVM.vbox")
        );
    }

    #[test]
    fn an_unknown_vm_fails_naming_the_recorded_registered_vms() {
        let mut f = base("Nope");
        f.registered_vms = Some(Ok(crate::vbox::parse_list_vms(&fixture(
            "15-list-vms.stdout",
        ))));
        let checks = all(&f);
        let c = named(&checks, "VM registered")[0];
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.evidence
                .ends_with(&format!("Registered VMs: 'TestVM' {{{VM12}}}")),
            "{c:?}"
        );
        assert!(c
            .recovery
            .as_deref()
            .unwrap()
            .contains("registervm \"/path/to/Nope/Nope.vbox\""));
        // Nothing else is known of it.
        let names: Vec<&str> = checks.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "VBoxManage",
                "known VirtualBox defects",
                "VM registered",
                "VirtualBox processes"
            ]
        );
    }

    #[test]
    fn an_unknown_vm_among_none_or_an_unreadable_list() {
        let mut f = base("Nope");
        f.registered_vms = Some(Ok(Vec::new()));
        assert!(one(&f, "VM registered")
            .evidence
            .ends_with("Registered VMs: none"));
        f.registered_vms = Some(Err("VBoxSVC is not running".to_string()));
        assert!(one(&f, "VM registered")
            .evidence
            .ends_with("Registered VMs: (could not list them: VBoxSVC is not running)"));
    }

    // -----------------------------------------------------------------------
    // Inaccessible

    /// Fixture 47's settings file (cfg `/vms/R/R.vbox`) with the registry
    /// entry of the current diff of its first disk removed: VirtualBox
    /// cannot load the VM (fixture 43's error).
    const LOST47: &str = "c763aa88-08b0-423b-8730-834b0af4a27e";
    const PARENT47: &str = "6b70c568-dcfd-4d68-b978-7a7bb3bccd5a";
    const VM47: &str = "6a98fdef-0c74-412b-81ee-1b99ad77b9d0";

    fn cfg47() -> PathBuf {
        PathBuf::from("/vms/R/R.vbox")
    }

    /// Its Snapshots folder, joined as the settings parser joins it (so
    /// that it displays the same on Windows).
    fn snap47() -> PathBuf {
        cfg47().with_file_name("Snapshots")
    }

    fn settings47_without_lost() -> String {
        let needle = format!("<HardDisk uuid=\"{{{LOST47}}}\"");
        fixture("47-real-settings.vbox")
            .lines()
            .filter(|l| !l.contains(&needle))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The VM of fixture 47 registered but inaccessible; every image its
    /// registry names is on disk, the lost one too (in its Snapshots folder).
    fn inaccessible47() -> Facts {
        let mut f = base(VM47);
        let cfg = cfg47();
        f.target = Target {
            label: VM47.to_string(),
            uuid: Some(VM47.to_string()),
            cfg: Some(cfg.clone()),
            access_error: Some(
                crate::vbox::errors::error_lines(&fixture("43-regmissing-list-vms-long.stderr"))
                    .join("\n"),
            ),
        };
        let text = settings47_without_lost();
        let refs = settings_refs(&text, &cfg).unwrap();
        for (u, p) in &refs.registry {
            f.files.files.insert(p.clone(), vdi(1 << 20, u, None));
        }
        let lost = refs.snapshot_folder.join(format!("{{{LOST47}}}.vdi"));
        f.files
            .files
            .insert(lost.clone(), vdi(1 << 20, LOST47, Some(PARENT47)));
        let mut listed: Vec<PathBuf> = refs
            .registry
            .iter()
            .map(|(_, p)| p.clone())
            .filter(|p| p.starts_with(&refs.snapshot_folder))
            .collect();
        listed.push(lost);
        listed.sort();
        f.files.folders.insert(refs.snapshot_folder.clone(), listed);
        f.settings_text = Some(Ok(text));
        f.records = Some(records(&format!("/data/vms/{VM47}/settings-backups")));
        f
    }

    #[test]
    fn an_inaccessible_vm_says_what_virtualbox_said_on_one_line() {
        // Fixture 43's error, as `list vms --long` printed it.
        let c = one(&inaccessible47(), "VM registered and accessible");
        assert!(
            c.evidence.contains(
                "VirtualBox said: A differencing image of snapshot {689c6b87-da89-4146-8531-2a5cf329cc1c} \
                 could not be found. Could not find an open hard disk with UUID \
                 {7d072fae-bd84-4ada-92bd-38ef9d7978d6} | Details: code NS_ERROR_FAILURE"
            ),
            "{c:?}"
        );
    }

    #[test]
    fn an_image_the_registry_lost_whose_file_exists_is_opened_again() {
        let f = inaccessible47();
        let c = one(&f, "VM registered and accessible");
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.evidence.contains(&format!(
                "VM {{{VM47}}} (settings /vms/R/R.vbox) is registered but INACCESSIBLE"
            )),
            "{c:?}"
        );
        let file = snap47().join(format!("{{{LOST47}}}.vdi"));
        assert!(
            c.evidence
                .ends_with(&format!("whose files still exist: {}", file.display())),
            "{c:?}"
        );
        assert!(
            matches!(&c.fix, Some(Fix::OpenMedia { paths }) if *paths == [file.clone()]),
            "{c:?}"
        );
        let r = c.recovery.unwrap();
        assert!(r.contains(&format!(
            "VBoxManage showmediuminfo disk \"{}\"",
            file.display()
        )));
        assert!(r.contains(&format!("`vblaunch doctor {VM47} --fix`")));
    }

    #[test]
    fn a_lost_image_under_another_name_is_found_by_its_header() {
        let mut f = inaccessible47();
        let folder = snap47();
        let by_name = folder.join(format!("{{{LOST47}}}.vdi"));
        let renamed = folder.join("copy.vdi");
        let file = f.files.files.remove(&by_name).unwrap();
        f.files.files.insert(renamed.clone(), file);
        let list = f.files.folders.get_mut(&folder).unwrap();
        list.retain(|p| *p != by_name);
        list.push(renamed.clone());
        let c = one(&f, "VM registered and accessible");
        assert!(
            matches!(&c.fix, Some(Fix::OpenMedia { paths }) if paths == &[renamed]),
            "{c:?}"
        );
    }

    #[test]
    fn a_lost_image_nowhere_on_disk_names_the_backup_to_restore() {
        let mut f = inaccessible47();
        let folder = snap47();
        let by_name = folder.join(format!("{{{LOST47}}}.vdi"));
        f.files.files.remove(&by_name);
        f.files
            .folders
            .get_mut(&folder)
            .unwrap()
            .retain(|p| *p != by_name);
        let c = one(&f, "VM registered and accessible");
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.evidence.contains(&format!(
                "Disk image(s) {{{LOST47}}} are neither in VirtualBox's media registry nor in {}",
                snap47().display()
            )),
            "{c:?}"
        );
        let r = c.recovery.as_deref().unwrap();
        assert!(
            r.starts_with(&format!(
                "restore {{{LOST47}}}.vdi from your backup into {}",
                snap47().display()
            )),
            "{r}"
        );
        assert!(
            r.contains("`VBoxManage unregistervm"),
            "and how to put a copy back: {r}"
        );
        assert!(c.fix.is_none(), "no settings copy to put back: {c:?}");
    }

    #[test]
    fn a_good_settings_copy_is_offered_for_a_lost_image() {
        let mut f = inaccessible47();
        let folder = snap47();
        let by_name = folder.join(format!("{{{LOST47}}}.vdi"));
        f.files.files.remove(&by_name);
        f.files
            .folders
            .get_mut(&folder)
            .unwrap()
            .retain(|p| *p != by_name);
        // The whole recorded file (its registry complete) is in a backup.
        let copy = PathBuf::from("/data/backups/2026-11-26T06-00-00Z/R.vbox");
        f.settings_copies = vec![SettingsCopy {
            path: copy.clone(),
            text: Some(fixture("47-real-settings.vbox")),
        }];
        // ...but it names the lost image: no good.
        let c = one(&f, "VM registered and accessible");
        assert!(c.fix.is_none(), "{c:?}");
        // The copy before the lost image existed is.
        let older = settings47_without_lost().replace(
            &format!("<Image uuid=\"{{{LOST47}}}\"/>"),
            &format!("<Image uuid=\"{{{PARENT47}}}\"/>"),
        );
        f.settings_copies.push(SettingsCopy {
            path: PathBuf::from("/vms/R/R.vbox-prev"),
            text: Some(older),
        });
        let c = one(&f, "VM registered and accessible");
        assert!(
            matches!(&c.fix, Some(Fix::RestoreSettings { from }) if from == Path::new("/vms/R/R.vbox-prev")),
            "{c:?}"
        );
    }

    #[test]
    fn a_settings_copy_is_good_only_if_it_differs_and_accounts_for_every_image() {
        let mut f = inaccessible47();
        let full = fixture("47-real-settings.vbox");
        let copy = |p: &str, text: &str| SettingsCopy {
            path: PathBuf::from(p),
            text: Some(text.to_string()),
        };
        let cfg = cfg47();
        // The same text as the current file.
        f.settings_text = Some(Ok(full.clone()));
        f.settings_copies = vec![copy("/b/1/R.vbox", &full)];
        assert_eq!(good_settings_copy(&f, &cfg), None);
        // Unreadable, or not XML.
        f.settings_text = Some(Err("denied".into()));
        f.settings_copies = vec![
            SettingsCopy {
                path: PathBuf::from("/b/1/R.vbox"),
                text: None,
            },
            copy("/b/1/R.vbox-prev", "<not xml"),
        ];
        assert_eq!(good_settings_copy(&f, &cfg), None);
        // An image it names is not on disk.
        f.settings_copies = vec![copy("/b/1/R.vbox", &full)];
        assert_eq!(
            good_settings_copy(&f, &cfg).as_deref(),
            Some(Path::new("/b/1/R.vbox"))
        );
        let base = PathBuf::from("/tmp/exp/vms2/Rich \"VM\" \u{fc}/base.vdi");
        let kept = f.files.files.remove(&base).unwrap();
        assert_eq!(good_settings_copy(&f, &cfg), None);
        f.files.files.insert(base, kept);
        // An image in the Snapshots folder it does not know.
        let stray = snap47().join("stray.vdi");
        f.files.files.insert(
            stray.clone(),
            vdi(1, "0badf00d-0000-4000-8000-000000000000", None),
        );
        f.files.folders.get_mut(&snap47()).unwrap().push(stray);
        assert_eq!(good_settings_copy(&f, &cfg), None);
    }

    #[test]
    fn an_inaccessible_vm_whose_settings_cannot_be_read() {
        let mut f = inaccessible47();
        f.settings_text = Some(Err("Permission denied (os error 13)".to_string()));
        let c = one(&f, "VM registered and accessible");
        assert_eq!(c.level, Level::Fail);
        assert_eq!(
            c.evidence,
            format!("VM {{{VM47}}} is inaccessible: its settings file /vms/R/R.vbox cannot be read (Permission denied (os error 13))")
        );
        assert!(c
            .recovery
            .as_deref()
            .unwrap()
            .starts_with("if the settings file is damaged or stale"));
        assert!(c.fix.is_none());
        f.settings_copies = vec![SettingsCopy {
            path: PathBuf::from("/vms/R/R.vbox-prev"),
            text: Some(fixture("47-real-settings.vbox")),
        }];
        f.files.files.insert(
            snap47().join(format!("{{{LOST47}}}.vdi")),
            vdi(1, LOST47, Some(PARENT47)),
        );
        assert!(matches!(
            one(&f, "VM registered and accessible").fix,
            Some(Fix::RestoreSettings { .. })
        ));
    }

    #[test]
    fn an_inaccessible_vm_with_damaged_or_unknown_settings() {
        let mut f = inaccessible47();
        f.settings_text = Some(Ok("<VirtualBox".to_string()));
        let c = one(&f, "VM registered and accessible");
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.evidence.starts_with(&format!(
                "VM {{{VM47}}} is inaccessible: its settings file /vms/R/R.vbox is not valid XML"
            )),
            "{c:?}"
        );
        assert!(c.recovery.is_some());

        f.target.cfg = None;
        let c = one(&f, "VM registered and accessible");
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.evidence.contains(
                "its settings file is unknown. VirtualBox said: A differencing image of snapshot"
            ),
            "{c:?}"
        );
        assert!(c
            .recovery
            .unwrap()
            .starts_with("open the VirtualBox Manager"));
        assert!(c.fix.is_none());
    }

    #[test]
    fn an_inaccessible_vm_that_misses_no_image_gets_the_restore_steps() {
        let mut f = inaccessible47();
        f.settings_text = Some(Ok(fixture("47-real-settings.vbox")));
        f.target.access_error = None;
        let c = one(&f, "VM registered and accessible");
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.evidence
                .ends_with("is registered but INACCESSIBLE. VirtualBox said: (nothing)"),
            "{c:?}"
        );
        let r = c.recovery.unwrap();
        assert!(
            r.contains("newest first: /vms/R/R.vbox-prev"),
            "no backups yet: {r}"
        );
        assert!(
            r.contains(&format!(
                "older folders in /data/vms/{VM47}/settings-backups"
            )),
            "{r}"
        );
    }

    #[test]
    fn restore_steps_name_the_newest_backup_first() {
        let mut f = inaccessible47();
        f.records.as_mut().unwrap().backups = vec![
            PathBuf::from("/data/b/2026-11-25T06-00-00Z"),
            PathBuf::from("/data/b/2026-11-26T06-00-00Z"),
        ];
        let s = restore_steps(&f, VM47, &cfg47());
        let newest = Path::new("/data/b/2026-11-26T06-00-00Z").join("R.vbox");
        assert!(
            s.contains(&format!("newest first: {},", newest.display())),
            "{s}"
        );
        assert!(
            s.contains(&format!("`VBoxManage unregistervm {VM47}`")),
            "{s}"
        );
        assert!(
            s.contains("`VBoxManage registervm \"/vms/R/R.vbox\"`"),
            "{s}"
        );
    }

    #[test]
    fn a_leftover_tmp_of_an_inaccessible_vm_is_moved_aside() {
        let mut f = inaccessible47();
        assert!(named(&all(&f), "settings file").is_empty());
        f.leftover_tmp = Some(PathBuf::from("/vms/R/R.vbox-tmp"));
        let c = one(&f, "settings file");
        assert_eq!(c.level, Level::Fail);
        assert_eq!(
            c.evidence,
            "VirtualBox left a half-written /vms/R/R.vbox-tmp behind (an interrupted save)"
        );
        assert!(
            matches!(&c.fix, Some(Fix::MoveTmp { tmp }) if tmp == Path::new("/vms/R/R.vbox-tmp"))
        );
    }

    // -----------------------------------------------------------------------
    // State

    #[test]
    fn state_powered_off_is_ok_running_or_open_warns() {
        let mut f = healthy();
        assert_eq!(one(&f, "state").level, Level::Ok);
        assert_eq!(one(&f, "state").evidence, "poweroff");
        vm_mut(&mut f).state = "running".into();
        let c = one(&f, "state");
        assert_eq!(c.level, Level::Warn);
        assert_eq!(
            c.evidence,
            "running (a fold needs the VM powered off or saved)"
        );
        vm_mut(&mut f).state = "poweroff".into();
        vm_mut(&mut f).session_name = Some("GUI/Qt".into());
        let c = one(&f, "state");
        assert_eq!(c.level, Level::Warn);
        assert_eq!(
            c.evidence,
            "poweroff and open in 'GUI/Qt' (a fold waits until it is closed)"
        );
    }

    // -----------------------------------------------------------------------
    // Media chain

    #[test]
    fn media_chain_ok_shows_each_disk_from_base_to_current_with_sizes() {
        let c = one(&healthy(), "media chain");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.evidence,
            format!(
                "SATA-0-0: /home/user/vbox/disks/base.vdi (2.0 MiB) <- {} (2.0 MiB)",
                leaf12().display()
            )
        );
    }

    #[test]
    fn media_chain_of_recorded_two_disk_vm() {
        let f = recorded(
            "47-real-settings-showvminfo.stdout",
            "47-real-settings-listhdds.stdout",
        );
        let c = one(&f, "media chain");
        assert_eq!(c.level, Level::Ok, "{c:?}");
        let disks: Vec<&str> = c.evidence.split("; ").collect();
        assert_eq!(disks.len(), 2, "{c:?}");
        assert!(
            disks[0].starts_with(
                "SATA Ctl-0-0: /tmp/exp/vms2/Rich \"VM\" \u{fc}/base.vdi (2.0 MiB) <- "
            ),
            "{c:?}"
        );
        assert!(
            disks[1].starts_with("IDE-1-0: /tmp/exp/vms2/Rich \"VM\" \u{fc}/data.vdi"),
            "{c:?}"
        );
        assert_eq!(disks[0].matches(" <- ").count(), 2, "{c:?}");
    }

    #[test]
    fn a_recorded_deleted_diff_is_missing_and_names_the_snapshot_it_holds() {
        // Fixtures 34/35: the current diff's file was deleted.
        let mut f = recorded(
            "34-diffgone-showvminfo.stdout",
            "35-diffgone-list-hdds.stdout",
        );
        let leaf = PathBuf::from(format!(
            "{SNAPDIR}/{{3462b2bb-99c9-4e73-acf7-3497dac9f1c7}}.vdi"
        ));
        f.files.files.remove(&leaf);
        f.files
            .folders
            .get_mut(Path::new(SNAPDIR))
            .unwrap()
            .retain(|p| *p != leaf);
        let chain = named(&all(&f), "media chain")
            .into_iter()
            .cloned()
            .collect::<Vec<_>>();
        assert_eq!(chain.len(), 1, "{chain:#?}");
        let c = &chain[0];
        assert_eq!(c.level, Level::Fail);
        assert_eq!(
            c.evidence,
            format!(
                "slot SATA-0-0: disk image {} is MISSING (VirtualBox: inaccessible); it holds \
                 what the VM wrote after snapshot 'current' {{689c6b87-da89-4146-8531-2a5cf329cc1c}}",
                leaf.display()
            )
        );
        let r = c.recovery.as_deref().unwrap();
        assert!(r.starts_with("no automatic fix"), "{r}");
        assert!(r.contains(&format!(
            "restore the file from your backup to exactly {}",
            leaf.display()
        )));
        assert!(c.fix.is_none());
        // The snapshots check does not blame the plan for a broken chain.
        let s = one(&f, "snapshots");
        assert_eq!(s.level, Level::Warn, "{s:?}");
        assert!(s
            .evidence
            .ends_with("a fold refuses until the media chain is repaired"));
    }

    #[test]
    fn an_unreadable_image_whose_file_is_there() {
        let mut f = healthy();
        let m = f.media.iter_mut().find(|m| m.uuid == LEAF12).unwrap();
        m.state = "inaccessible".into();
        m.access_error = Some("VD: error VERR_VD_VDI_INVALID_HEADER opening image file".into());
        let c = one(&f, "media chain");
        assert_eq!(c.level, Level::Fail);
        assert!(
            c.evidence.contains(
                "is DAMAGED (the file is there but unreadable) (VirtualBox: inaccessible)"
            ),
            "{c:?}"
        );
    }

    #[test]
    fn a_stale_settings_file_is_relinked_to_the_unregistered_sibling() {
        let mut f = healthy();
        let leaf = leaf12();
        f.files.files.remove(&leaf);
        f.files
            .folders
            .get_mut(Path::new(SNAPDIR))
            .unwrap()
            .retain(|p| *p != leaf);
        let orphan = PathBuf::from(format!(
            "{SNAPDIR}/{{0e0e0e0e-1111-4222-8333-444444444444}}.vdi"
        ));
        f.files.files.insert(
            orphan.clone(),
            vdi(
                8 << 20,
                "0e0e0e0e-1111-4222-8333-444444444444",
                Some(BASE12),
            ),
        );
        f.files
            .folders
            .get_mut(Path::new(SNAPDIR))
            .unwrap()
            .push(orphan.clone());
        let checks = all(&f);
        let chain = named(&checks, "media chain");
        assert_eq!(
            chain.len(),
            1,
            "the orphan is the stale case, not a warning too: {chain:#?}"
        );
        let c = chain[0];
        assert_eq!(c.level, Level::Fail);
        assert!(c.evidence.contains("the settings file is STALE"), "{c:?}");
        assert!(c.evidence.contains(&orphan.display().to_string()));
        assert!(
            matches!(&c.fix, Some(Fix::Relink { controller, port: 0, device: 0, orphan: o, missing })
                if controller == "SATA" && *o == orphan && missing == LEAF12),
            "{c:?}"
        );
        let r = c.recovery.as_deref().unwrap();
        assert!(r.contains(&format!(
            "VBoxManage storageattach {VM12} --storagectl \"SATA\" --port 0 --device 0 --type hdd --medium \"{}\"",
            orphan.display()
        )), "{r}");
        assert!(r.contains(&format!("VBoxManage closemedium disk {LEAF12}")));
    }

    #[test]
    fn two_unregistered_siblings_are_not_guessed_between() {
        let mut f = healthy();
        let leaf = leaf12();
        f.files.files.remove(&leaf);
        for u in [
            "0e0e0e0e-1111-4222-8333-444444444441",
            "0e0e0e0e-1111-4222-8333-444444444442",
        ] {
            let p = PathBuf::from(format!("{SNAPDIR}/{{{u}}}.vdi"));
            f.files.files.insert(p.clone(), vdi(1, u, Some(BASE12)));
            f.files.folders.get_mut(Path::new(SNAPDIR)).unwrap().push(p);
        }
        let checks = all(&f);
        let chain = named(&checks, "media chain");
        assert!(chain[0].evidence.contains("is MISSING"), "{chain:#?}");
        assert!(chain[0].fix.is_none());
        assert_eq!(chain[1].level, Level::Warn);
        assert!(chain[1]
            .evidence
            .starts_with("image(s) in the Snapshots folder that VirtualBox does not know: "));
    }

    #[test]
    fn an_unknown_image_in_the_snapshots_folder_warns() {
        let mut f = healthy();
        let stray = PathBuf::from(format!("{SNAPDIR}/left-over.vdi"));
        f.files.files.insert(
            stray.clone(),
            FileFacts {
                size: Some(1),
                is_file: true,
                vdi: None,
            },
        );
        f.files
            .folders
            .get_mut(Path::new(SNAPDIR))
            .unwrap()
            .push(stray.clone());
        // A registered image under another path is not unknown.
        let moved = PathBuf::from(format!("{SNAPDIR}/moved.vdi"));
        f.files.files.insert(moved.clone(), vdi(1, BASE12, None));
        f.files
            .folders
            .get_mut(Path::new(SNAPDIR))
            .unwrap()
            .push(moved);
        let checks = all(&f);
        let chain = named(&checks, "media chain");
        assert_eq!(chain.len(), 2, "{chain:#?}");
        assert_eq!(chain[0].level, Level::Ok);
        assert_eq!(chain[1].level, Level::Warn);
        assert_eq!(
            chain[1].evidence,
            format!(
                "image(s) in the Snapshots folder that VirtualBox does not know: {} (left over, or \
                 the settings file is older than the disks; vblaunch leaves them alone)",
                stray.display()
            )
        );
    }

    #[test]
    fn a_registered_image_without_a_readable_header_is_known_by_its_path() {
        let mut f = healthy();
        f.files.files.get_mut(&leaf12()).unwrap().vdi = None;
        let c = one(&f, "media chain");
        assert_eq!(c.level, Level::Ok, "{c:?}");
    }

    #[test]
    fn a_header_that_disagrees_with_the_registry_fails() {
        let mut f = healthy();
        f.files.files.get_mut(&leaf12()).unwrap().vdi = Some((LEAF12.to_string(), None));
        let c = one(&f, "media chain");
        assert_eq!(c.level, Level::Fail);
        assert_eq!(
            c.evidence,
            format!(
                "{}: VirtualBox's registry says UUID {LEAF12} parent Some(\"{BASE12}\"), the file's header says {LEAF12} parent None",
                leaf12().display()
            )
        );
        assert!(c.recovery.unwrap().starts_with("do not fold"));
    }

    #[test]
    fn an_image_missing_from_the_registry_in_the_chain_fails() {
        let mut f = healthy();
        f.media.retain(|m| m.uuid != BASE12);
        let c = one(&f, "media chain");
        assert_eq!(c.level, Level::Fail);
        assert_eq!(
            c.evidence,
            format!("slot SATA-0-0: image {{{BASE12}}} is not in VirtualBox's media registry")
        );
        assert_eq!(
            c.recovery.as_deref(),
            Some(format!("put {{{BASE12}}}.vdi back from your backup (into {SNAPDIR}), then run `vblaunch doctor` again").as_str())
        );
    }

    #[test]
    fn a_disk_snapshots_do_not_freeze_warns_beside_the_ok_chain() {
        let mut f = healthy();
        f.media.iter_mut().find(|m| m.uuid == BASE12).unwrap().kind = "writethrough (base)".into();
        let checks = all(&f);
        let chain = named(&checks, "media chain");
        assert_eq!(chain.len(), 2, "{chain:#?}");
        assert_eq!(chain[0].level, Level::Warn);
        assert_eq!(
            chain[0].evidence,
            "/home/user/vbox/disks/base.vdi is of type 'writethrough (base)': snapshots do not freeze it"
        );
        assert_eq!(chain[1].level, Level::Ok);
    }

    #[test]
    fn a_vm_without_a_hard_disk_warns() {
        let mut f = healthy();
        vm_mut(&mut f).attachments.clear();
        let c = one(&f, "media chain");
        assert_eq!(c.level, Level::Warn);
        assert_eq!(c.evidence, "the VM has no hard disk attached");
    }

    // -----------------------------------------------------------------------
    // Snapshots

    #[test]
    fn snapshots_ok_counts_vblaunchs_and_names_the_current_one() {
        let c = one(&healthy(), "snapshots");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.evidence,
            format!("1 of vblaunch's, 0 of yours; current 'current' {{{SNAP12}}} taken {NOW}")
        );
    }

    #[test]
    fn a_recorded_current_vblaunch_did_not_take_fails_with_the_folds_reason() {
        // Fixture 12 as recorded: a `current` without vblaunch's marker.
        let f = recorded(
            "12-showvminfo-1-snapshot.stdout",
            "13-list-hdds-1-snapshot.stdout",
        );
        let c = one(&f, "snapshots");
        assert_eq!(c.level, Level::Fail);
        assert_eq!(
            c.evidence,
            format!(
                "0 of vblaunch's, 1 of yours; current 'current' {{{SNAP12}}}; a fold would refuse"
            )
        );
        let Err(r) = &f.vm.as_ref().unwrap().plan else {
            panic!("the plan refuses")
        };
        assert_eq!(c.recovery.as_deref(), Some(r.to_string().as_str()));
        assert!(c.fix.is_none());
        assert!(
            named(&all(&f), "pre-flight").is_empty(),
            "no pre-flight without a plan"
        );
    }

    #[test]
    fn a_recorded_vm_with_the_users_snapshots_under_vblaunchs() {
        let f = recorded(
            "47-real-settings-showvminfo.stdout",
            "47-real-settings-listhdds.stdout",
        );
        let c = one(&f, "snapshots");
        assert!(
            c.evidence.starts_with("1 of vblaunch's, 2 of yours; current 'current' {d2f62257-2feb-467a-ac12-24c80b01ea0d} taken 2026-11-26T09:00:00Z"),
            "{c:?}"
        );
    }

    #[test]
    fn vblaunch_snapshots_off_the_current_path_warn() {
        // Fixture 21: older <- previous <- current; the VM restored to `previous`.
        let mut info = vminfo::parse(&fixture("21-showvminfo-3-snapshots.stdout")).unwrap();
        for u in [
            "19e02e42-bbc8-4de4-969d-fa09b8f70972",
            "689c6b87-da89-4146-8531-2a5cf329cc1c",
        ] {
            mark(&mut info, u);
        }
        let media = media::parse(&fixture("22-list-hdds-3-snapshots.stdout"));
        let mut f = readable_facts(info, media);
        f.vm.as_mut().unwrap().plan = Ok(());
        vm_mut(&mut f).current_snapshot = Some("19e02e42-bbc8-4de4-969d-fa09b8f70972".into());
        let c = one(&f, "snapshots");
        assert_eq!(c.level, Level::Warn, "{c:?}");
        assert!(
            c.evidence
                .starts_with("1 of vblaunch's, 1 of yours; current 'previous'"),
            "{c:?}"
        );
        assert!(
            c.evidence
                .ends_with("; 1 vblaunch snapshot(s) off the current path"),
            "{c:?}"
        );
    }

    #[test]
    fn a_vm_without_snapshots_is_ok_until_the_first_launch() {
        let info = vminfo::parse(&fixture("08-showvminfo-no-snapshot.stdout")).unwrap();
        let f = readable_facts(
            info,
            media::parse(&fixture("09-list-hdds-no-snapshot.stdout")),
        );
        let c = one(&f, "snapshots");
        assert_eq!(c.level, Level::Ok, "{c:?}");
        assert_eq!(
            c.evidence,
            "no snapshots (the first launch takes vblaunch's)"
        );
        // Not managed yet: no backups is fine.
        let c = one(&f, "settings backups");
        assert_eq!(
            (c.level, c.evidence.as_str()),
            (Level::Ok, "none yet (the first fold makes one)")
        );
    }

    // -----------------------------------------------------------------------
    // Pre-flight

    fn not_writable() -> Refusal {
        Refusal::NotWritable {
            vm: "TestVM".into(),
            path: PathBuf::from("/vms"),
            what: "the VM folder",
            why: "read-only".into(),
        }
    }

    #[test]
    fn preflight_ok_or_the_folds_refusal() {
        let mut f = healthy();
        assert_eq!(one(&f, "pre-flight").level, Level::Ok);
        f.vm.as_mut().unwrap().preflight = Some(Err(not_writable()));
        let c = one(&f, "pre-flight");
        assert_eq!(c.level, Level::Fail);
        assert_eq!(c.evidence, "the next fold would refuse");
        assert_eq!(
            c.recovery.as_deref(),
            Some(not_writable().to_string().as_str())
        );
    }

    #[test]
    fn a_leftover_tmp_is_the_settings_files_failure_not_the_preflights() {
        let mut f = healthy();
        let tmp = PathBuf::from("/home/user/vbox/vms/TestVM/TestVM.vbox-tmp");
        f.leftover_tmp = Some(tmp.clone());
        f.vm.as_mut().unwrap().preflight = Some(Err(Refusal::LeftoverSettings {
            vm: "TestVM".into(),
            tmp: tmp.clone(),
        }));
        let checks = all(&f);
        assert!(named(&checks, "pre-flight").is_empty(), "{checks:#?}");
        let c = named(&checks, "settings file")[0];
        assert_eq!(c.level, Level::Fail);
        assert!(c.evidence.starts_with(&format!(
            "VirtualBox left a half-written {} behind",
            tmp.display()
        )));
        assert!(matches!(&c.fix, Some(Fix::MoveTmp { tmp: t }) if *t == tmp));
        assert!(c
            .recovery
            .as_deref()
            .unwrap()
            .starts_with("`vblaunch doctor TestVM --fix` moves it"));
    }

    // -----------------------------------------------------------------------
    // Settings file

    #[test]
    fn settings_file_well_formed_is_ok() {
        let c = one(&healthy(), "settings file");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.evidence,
            "/home/user/vbox/vms/TestVM/TestVM.vbox (well-formed, no leftover -tmp)"
        );
    }

    #[test]
    fn an_empty_settings_file_fails_and_a_good_copy_is_put_back() {
        let mut f = healthy();
        let why = "the VM's settings file /home/user/vbox/vms/TestVM/TestVM.vbox is empty (0 bytes): VirtualBox could not write it";
        f.vm.as_mut().unwrap().settings_file = Some(Err(why.to_string()));
        f.settings_text = Some(Ok(String::new()));
        let c = one(&f, "settings file");
        assert_eq!(c.level, Level::Fail);
        assert!(c.evidence.starts_with(why));
        assert!(c
            .evidence
            .ends_with("it cannot load it again once its service restarts"));
        assert!(c
            .recovery
            .as_deref()
            .unwrap()
            .contains(&format!("`VBoxManage unregistervm {VM12}`")));
        assert!(c.fix.is_none(), "no copy yet");
        let copy = PathBuf::from("/home/user/vbox/vms/TestVM/TestVM.vbox-prev");
        f.settings_copies = vec![SettingsCopy {
            path: copy.clone(),
            text: Some(
                r#"<VirtualBox><Machine uuid="{18580ff3-3d30-4242-b9bf-6fe37f9ff5f1}"/></VirtualBox>"#
                    .to_string(),
            ),
        }];
        // It names no image, and the Snapshots folder holds the leaf it does not know.
        assert!(one(&f, "settings file").fix.is_none());
        f.files.folders.insert(
            PathBuf::from("/home/user/vbox/vms/TestVM/Snapshots"),
            Vec::new(),
        );
        let c = one(&f, "settings file");
        assert!(
            matches!(&c.fix, Some(Fix::RestoreSettings { from }) if *from == copy),
            "{c:?}"
        );
    }

    // -----------------------------------------------------------------------
    // Free space

    #[test]
    fn free_space_ok_warn_or_unknown() {
        let mut f = healthy();
        let c = one(&f, "free space");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.evidence,
            "100.0 GiB free where the disks are; the next merge needs about 2.0 MiB"
        );
        let space = f.vm.as_mut().unwrap().free_space.as_mut().unwrap();
        space.free = Some(200 << 20);
        let c = one(&f, "free space");
        assert_eq!(c.level, Level::Warn);
        assert_eq!(
            c.evidence,
            "200.0 MiB free where the disks are; merging needs about 2.0 MiB plus a margin of 256.0 MiB"
        );
        assert_eq!(
            c.recovery.as_deref(),
            Some("free some space on that volume before the next launch")
        );
        f.vm.as_mut().unwrap().free_space.as_mut().unwrap().free = None;
        let c = one(&f, "free space");
        assert_eq!(c.level, Level::Warn);
        assert_eq!(c.evidence, "unknown for /home/user/vbox/disks/base.vdi");
        f.vm.as_mut().unwrap().free_space = None;
        assert!(named(&all(&f), "free space").is_empty());
    }

    #[test]
    fn the_next_merge_needs_the_size_of_the_diffs_on_the_path() {
        let mut f = healthy();
        f.files.files.get_mut(&leaf12()).unwrap().size = Some(3 << 30);
        f.files
            .files
            .get_mut(Path::new("/home/user/vbox/disks/base.vdi"))
            .unwrap()
            .size = Some(40 << 30);
        assert!(one(&f, "free space")
            .evidence
            .ends_with("the next merge needs about 3.0 GiB"));
    }

    // -----------------------------------------------------------------------
    // Records

    #[test]
    fn settings_backups_ok_names_the_newest_or_warns_when_a_managed_vm_has_none() {
        let c = one(&healthy(), "settings backups");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.evidence,
            format!("1 in /data/vms/{VM12}/settings-backups, newest 2026-11-26T06-00-00Z")
        );
        let mut f = healthy();
        f.records.as_mut().unwrap().backups.clear();
        let c = one(&f, "settings backups");
        assert_eq!(c.level, Level::Warn);
        assert_eq!(
            c.evidence,
            format!("none in /data/vms/{VM12}/settings-backups (vblaunch copies the settings before each fold)")
        );
        // An inaccessible VM without backups counts as managed.
        let mut f = inaccessible47();
        f.records.as_mut().unwrap().backups.clear();
        assert_eq!(one(&f, "settings backups").level, Level::Warn);
    }

    fn entry(
        step: &str,
        kind: &str,
        vm: &str,
        snapshot: Option<&str>,
        outcome: Option<&str>,
    ) -> JournalEntry {
        JournalEntry {
            step: step.to_string(),
            kind: kind.to_string(),
            vm: vm.to_string(),
            snapshot: snapshot.map(str::to_string),
            started: "2026-11-26T07:00:01Z".to_string(),
            outcome: outcome.map(str::to_string),
            taken_at: None,
        }
    }

    fn with_journal(entries: Vec<JournalEntry>) -> Facts {
        let mut f = healthy();
        f.records.as_mut().unwrap().journal = Ok(Journal {
            run: "fold".to_string(),
            started: "2026-11-26T07:00:00Z".to_string(),
            entries,
            incomplete_merges: Vec::new(),
        });
        f
    }

    #[test]
    fn journal_of_a_finished_run_or_none_is_ok() {
        let f = with_journal(vec![entry(
            "take snapshot 'current'",
            "take",
            VM12,
            None,
            Some("ok"),
        )]);
        let c = one(&f, "journal");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.evidence,
            "the last fold (started 2026-11-26T07:00:00Z) finished every step"
        );
        let c = one(&healthy(), "journal");
        assert_eq!(
            (c.level, c.evidence.as_str()),
            (Level::Ok, "no run recorded")
        );
    }

    #[test]
    fn an_incomplete_merge_fails_and_the_fold_finishes_it() {
        let step = format!("merge snapshot {{{SNAP12}}} 'current'");
        let f = with_journal(vec![entry(&step, "merge", VM12, Some(SNAP12), None)]);
        let c = one(&f, "journal");
        assert_eq!(c.level, Level::Fail);
        assert_eq!(
            c.evidence,
            format!(
                "a merge did not complete: \"{step}\" (started 2026-11-26T07:00:01Z; interrupted). \
                 The disk it merges into may be partly merged: not safe to back up until a fold completes it"
            )
        );
        assert!(matches!(c.fix, Some(Fix::Fold)));
        assert!(c
            .recovery
            .unwrap()
            .starts_with("run `vblaunch fold TestVM`"));
    }

    #[test]
    fn an_incomplete_merge_of_a_snapshot_that_is_gone_is_over() {
        let mut f = with_journal(Vec::new());
        f.records
            .as_mut()
            .unwrap()
            .journal
            .as_mut()
            .unwrap()
            .incomplete_merges = vec![IncompleteMerge {
            snapshot: "0000dead-0000-4000-8000-000000000000".to_string(),
            step: "merge snapshot {0000dead-0000-4000-8000-000000000000} 'current'".to_string(),
            started: "2026-11-25T07:00:00Z".to_string(),
            outcome: "failed: NS_ERROR_ABORT".to_string(),
        }];
        assert_eq!(one(&f, "journal").level, Level::Ok);
        // Of an inaccessible VM nothing is known to be gone.
        let mut g = inaccessible47();
        g.records.as_mut().unwrap().journal = f.records.unwrap().journal;
        assert_eq!(one(&g, "journal").level, Level::Fail);
    }

    #[test]
    fn an_interrupted_step_warns_and_the_fold_finishes_it() {
        let f = with_journal(vec![entry(
            "take snapshot 'current'",
            "take",
            VM12,
            None,
            None,
        )]);
        let c = one(&f, "journal");
        assert_eq!(c.level, Level::Warn);
        assert_eq!(
            c.evidence,
            "the last vblaunch fold was interrupted during step \"take snapshot 'current'\" (started 2026-11-26T07:00:01Z)"
        );
        assert!(matches!(c.fix, Some(Fix::Fold)));
    }

    #[test]
    fn a_failed_step_warns_with_its_first_line_and_no_fix() {
        let f = with_journal(vec![entry(
            "take snapshot 'current'",
            "take",
            VM12,
            None,
            Some("failed: VBoxManage: error: Failed to take snapshot\ndetails"),
        )]);
        let c = one(&f, "journal");
        assert_eq!(c.level, Level::Warn);
        assert_eq!(
            c.evidence,
            "the last vblaunch fold (started 2026-11-26T07:00:00Z) failed at step \"take snapshot 'current'\": failed: VBoxManage: error: Failed to take snapshot"
        );
        assert!(c.recovery.is_some());
        assert!(c.fix.is_none());
    }

    #[test]
    fn another_vms_steps_do_not_count() {
        let other = "99999999-0000-4000-8000-000000000000";
        let f = with_journal(vec![entry(
            "take snapshot 'current'",
            "take",
            other,
            None,
            None,
        )]);
        assert_eq!(one(&f, "journal").level, Level::Ok);
    }

    #[test]
    fn an_unreadable_journal_or_record_warns() {
        let mut f = healthy();
        let rec = f.records.as_mut().unwrap();
        rec.journal = Err("journal.toml: expected `=`".to_string());
        rec.state = Err("state.toml: invalid".to_string());
        let c = one(&f, "journal");
        assert_eq!(
            (c.level, c.evidence.as_str()),
            (Level::Warn, "journal.toml: expected `=`")
        );
        let c = one(&f, "last fold");
        assert_eq!(
            (c.level, c.evidence.as_str()),
            (Level::Warn, "state.toml: invalid")
        );
    }

    fn last(snapshot: &str) -> VmState {
        VmState {
            last_fold: Some(LastFold {
                finished: "2026-11-26T06:00:05Z".to_string(),
                duration_ms: 1234,
                bytes_merged: 5 << 20,
                snapshot: snapshot.to_string(),
                restore_points: 1,
            }),
        }
    }

    #[test]
    fn last_fold_ok_or_on_a_snapshot_the_vm_no_longer_has() {
        let c = one(&healthy(), "last fold");
        assert_eq!((c.level, c.evidence.as_str()), (Level::Ok, "none recorded"));
        let mut f = healthy();
        f.records.as_mut().unwrap().state = Ok(last(SNAP12));
        let c = one(&f, "last fold");
        assert_eq!(c.level, Level::Ok);
        assert_eq!(
            c.evidence,
            format!("2026-11-26T06:00:05Z (1.2 s, 5.0 MiB merged, now on snapshot {{{SNAP12}}})")
        );
        f.records.as_mut().unwrap().state = Ok(last("0000dead-0000-4000-8000-000000000000"));
        let c = one(&f, "last fold");
        assert_eq!(c.level, Level::Warn);
        assert!(c.evidence.starts_with("2026-11-26T06:00:05Z left the VM on snapshot {0000dead-0000-4000-8000-000000000000}, which it no longer has"));
    }

    // -----------------------------------------------------------------------
    // Processes and locks

    #[test]
    fn virtualbox_processes_none_running_or_running_or_unknown() {
        let c = one(&healthy(), "VirtualBox processes");
        assert_eq!(
            (c.level, c.evidence.as_str()),
            (Level::Ok, "none of VirtualBox, VBoxHeadless running")
        );
        let mut f = healthy();
        f.processes = Some(Ok(vec![crate::guard::FrontEnd {
            pid: 4242,
            name: "VirtualBox".to_string(),
        }]));
        let c = one(&f, "VirtualBox processes");
        assert_eq!(c.level, Level::Warn);
        assert_eq!(
            c.evidence,
            format!(
                "running: {} (a launch waits for them; --fix needs them closed)",
                crate::guard::describe(&[crate::guard::FrontEnd {
                    pid: 4242,
                    name: "VirtualBox".into()
                }])
            )
        );
        f.processes = Some(Err("cannot read /proc".to_string()));
        let c = one(&f, "VirtualBox processes");
        assert_eq!(
            (c.level, c.evidence.as_str()),
            (Level::Warn, "cannot read /proc")
        );
    }

    #[test]
    fn a_held_lock_warns() {
        let mut f = healthy();
        assert!(named(&all(&f), "vblaunch lock").is_empty());
        f.lock_held = true;
        let checks = all(&f);
        let c = checks.last().unwrap();
        assert_eq!((c.name.as_str(), c.level), ("vblaunch lock", Level::Warn));
    }
}
