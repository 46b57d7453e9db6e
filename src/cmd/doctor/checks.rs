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
    if vm.state_allows_fold() && vm.session_name.is_none() {
        check(Level::Ok, "state", vm.state.clone())
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
            size.map(|s| format!(" ({})", human(s))).unwrap_or_default()
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
    let Some(diffs) = crate::plan::path_diffs(vm, media) else {
        return String::new();
    };
    for (i, ms) in diffs {
        if ms.iter().any(|m| m.uuid == uuid) {
            let s = &vm.snapshots[i];
            return format!(
                "; it holds what the VM wrote after snapshot '{}' {{{}}}{}",
                s.name,
                s.uuid,
                crate::plan::taken_at(s)
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
    let (own, off) = crate::plan::own_snapshots(info, &f.snapshot_name, false);
    let users = info.snapshots.len() - own.len() - off.len();
    let desc = match info.current() {
        Some(c) => format!(
            "{} of vblaunch's, {users} of yours; current '{}' {{{}}}{}",
            own.len(),
            c.name,
            c.uuid,
            crate::plan::taken_at(c)
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
        .recovery(r.reason.clone()),
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
            check(Level::Fail, "pre-flight", "the next fold would refuse")
                .recovery(r.reason.clone()),
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
    let diff_bytes: u64 = crate::plan::path_diffs(&vm.info, &f.media)
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
                human(free),
                human(diff_bytes)
            ),
        ),
        Some(free) => check(
            Level::Warn,
            "free space",
            format!(
                "{} free where the disks are; merging needs about {} plus a margin of {}",
                human(free),
                human(diff_bytes),
                human(f.merge_margin)
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
                !crate::plan::own_snapshots(&vm.info, &f.snapshot_name, false)
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
                human(lf.bytes_merged),
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

/// Bytes as GiB, MiB or KiB (status.rs and face/model.rs have the same
/// formatter for an optional size).
fn human(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}
