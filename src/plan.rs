//! Pure planning: from what VirtualBox holds (the VM, its snapshot tree, the
//! media registry) and the policy, decide the exact steps of a fold — or refuse
//! with the reason and the fix. No I/O here except the injected file test, so
//! every tree shape is tested without VirtualBox.
//!
//! vblaunch's own snapshots are the ones whose description starts with
//! [`MARKER`] (names are only labels). After a fold with `keep = N` the VM has
//! its N newest own snapshots, named (newest first) `current`, `previous`,
//! `previous-2`, … `previous-<N-1>`; the newest is the VM's current snapshot,
//! and every older one is a restore point.
//!
//! Rules:
//! - only an offline VM (poweroff, aborted, saved, aborted-saved) with no
//!   session is folded: never an online merge;
//! - every hard disk's chain must be registered, accessible, on disk, `normal`;
//! - own snapshots must lie on the path from the root to the current
//!   snapshot, and the current snapshot must be own and a leaf (or there are
//!   no own snapshots yet: the first run takes one);
//! - the order is take, rename, delete: the new snapshot exists before any
//!   restore point is folded, so a failure never loses one;
//! - any other snapshot is the user's and is never deleted or renamed.
use std::path::Path;

use crate::exit::Code;
use crate::vbox::media::{self, Medium};
use crate::vbox::vminfo::{Snapshot, VmInfo};

/// Every description vblaunch writes starts with this; it is how later runs
/// tell vblaunch's snapshots from the user's.
pub const MARKER: &str = "vblaunch: taken ";

pub fn description(now_iso8601: &str) -> String {
    format!(
        "{MARKER}{now_iso8601} by vblaunch {}. It is merged into its parent at the next \
         launch; do not rename or delete it by hand.",
        env!("CARGO_PKG_VERSION")
    )
}

/// Whether the snapshot's description is vblaunch's marker: [`MARKER`], a
/// time (ISO 8601), ` by vblaunch ` (a note that merely starts with
/// "vblaunch: taken " is not). Ownership needs more: see [`is_own`].
///
/// ```
/// use vblaunch::plan::{description, is_marked};
/// use vblaunch::vbox::vminfo::Snapshot;
/// let mut s = Snapshot { name: "current".into(), uuid: "u".into(), description: None,
///                        node: String::new(), parent: None, children: vec![] };
/// assert!(!is_marked(&s));
/// s.description = Some(description("2026-11-26T07:00:00Z"));
/// assert!(is_marked(&s));
/// s.description = Some("vblaunch: taken care of the printer".into());
/// assert!(!is_marked(&s));
/// ```
pub fn is_marked(s: &Snapshot) -> bool {
    let Some(rest) = s
        .description
        .as_deref()
        .and_then(|d| d.strip_prefix(MARKER))
    else {
        return false;
    };
    let Some((time, by)) = rest.split_once(' ') else {
        return false;
    };
    let t = time.as_bytes();
    t.len() >= 20
        && t[..4].iter().all(u8::is_ascii_digit)
        && t[4] == b'-'
        && t[10] == b'T'
        && time.ends_with('Z')
        && by.starts_with("by vblaunch ")
}

/// Whether vblaunch took this snapshot of `vm`: it carries the marker, and
/// its UUID is in the record vblaunch keeps in the VM's own settings
/// (extradata [`crate::vbox::settings::OWN_KEY`], written after each take,
/// so it travels with the VM folder), or in `journal_taken` (takes the
/// journal saw complete, for a run that died before it could record). A VM
/// without any record (managed by an older vblaunch) is judged by the marker
/// alone, once: the next take records them.
pub fn is_own(vm: &VmInfo, s: &Snapshot) -> bool {
    is_marked(s)
        && match &vm.recorded_own {
            Some(list) => list.iter().any(|u| u.eq_ignore_ascii_case(&s.uuid)),
            None => true,
        }
}

/// When vblaunch took a snapshot (from its marker), as written (ISO 8601).
pub fn taken_at(s: &Snapshot) -> Option<&str> {
    marker_time(s.description.as_deref()?)
}

/// The time in a marker description.
pub fn marker_time(description: &str) -> Option<&str> {
    description.strip_prefix(MARKER)?.split_whitespace().next()
}

/// The label of the own snapshot `age` launches old (0 = newest).
pub fn label(age: usize, newest: &str) -> String {
    match age {
        0 => newest.to_string(),
        1 => "previous".to_string(),
        n => format!("previous-{n}"),
    }
}

/// Whether `name` is one of the labels vblaunch gives (for `--adopt`).
fn is_label(name: &str, newest: &str) -> bool {
    name == newest
        || name == "previous"
        || name
            .strip_prefix("previous-")
            .is_some_and(|n| n.parse::<u32>().is_ok_and(|n| n >= 2))
}

pub struct Policy<'a> {
    pub snapshot_name: &'a str,
    /// How many own snapshots to keep (the current one and N-1 restore points); ≥ 1.
    pub keep: usize,
    /// Treat unmarked snapshots with vblaunch's labels on the current path as
    /// vblaunch's (made by the old launcher script, or by hand).
    pub adopt: bool,
    pub now_iso8601: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Take the new managed snapshot.
    Take { name: String, description: String },
    /// Relabel an own snapshot (by UUID); changes no data.
    Rename {
        uuid: String,
        from: String,
        to: String,
    },
    /// Merge this own snapshot (by UUID) into its parent.
    Delete { uuid: String, name: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Plain-language lines for the user (what will happen, user snapshots seen).
    pub notes: Vec<String>,
    /// The attached hard disks (current-state media) before the fold.
    pub disks: Vec<Medium>,
    /// How many own snapshots the VM will have afterwards.
    pub own_after: usize,
    /// The UUIDs of vblaunch's snapshots on the current path before the run
    /// (adopted ones included): what the record after the take starts from.
    pub own_before: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub reason: String,
}

fn refuse(code: Code, reason: impl Into<String>) -> Refusal {
    Refusal {
        code,
        reason: reason.into(),
    }
}

fn describe_state(vm: &VmInfo) -> String {
    let name = &vm.name;
    let state = &vm.state;
    let what = state.doing();
    format!(
        "VM '{name}' is {what} (state: {state}). vblaunch only folds a VM that is powered off, \
         saved or aborted; it never merges snapshots of a running VM. Shut the VM down or save \
         its state, then run vblaunch again. Nothing was changed."
    )
}

/// The hard disks attached to the VM (current state), with their chains checked.
pub fn check_disks(
    vm: &VmInfo,
    media: &[Medium],
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Vec<Medium>, Refusal> {
    let mut disks = Vec::new();
    for att in &vm.attachments {
        // DVD/floppy images are not in `list hdds`: skip them.
        let Some(m) = media.iter().find(|m| m.uuid == att.image_uuid) else {
            continue;
        };
        for link in media::chain(media, &m.uuid) {
            let medium = link.map_err(|missing| {
                refuse(
                    Code::Refused,
                    format!(
                        "The disk in slot {} of VM '{}' depends on a disk image {{{missing}}} that \
                         VirtualBox does not know (not in its media registry). Put the missing .vdi \
                         back (from your backup) and run vblaunch again. Nothing was changed.",
                        att.slot(),
                        vm.name
                    ),
                )
            })?;
            let present = exists(&medium.location);
            if !medium.is_accessible() || !present {
                let problem =
                    crate::vbox::errors::medium_problem(medium.access_error.as_deref(), present);
                return Err(refuse(
                    Code::Refused,
                    format!(
                        "Disk image {} of VM '{}' is {} (VirtualBox state: {}). \
                         Merging snapshots now could lose data. Restore that file from your backup \
                         to exactly that path, then run vblaunch again. Nothing was changed.",
                        medium.location.display(),
                        vm.name,
                        problem.medium_label(),
                        medium.state
                    ),
                ));
            }
            if medium.state.is_locked() {
                return Err(refuse(
                    Code::Refused,
                    format!(
                        "Disk image {} of VM '{}' is in use by another task (VirtualBox lists it \
                         '{}'): a clone or export, a merge VirtualBox is still running, or a \
                         program reading the disk. A merge now would fail half-way. Let that \
                         task finish (or close the program using the disk; `VBoxManage \
                         showmediuminfo disk {}` shows the disk's state), then run vblaunch \
                         again. Nothing was changed.",
                        medium.location.display(),
                        vm.name,
                        medium.state,
                        crate::process::quote(&medium.location.to_string_lossy())
                    ),
                ));
            }
            if !medium.is_normal() {
                return Err(refuse(
                    Code::Refused,
                    format!(
                        "Disk {} of VM '{}' is of type '{}'. Snapshots do not freeze such a disk, \
                         so vblaunch cannot make it safe to back up. Change it to 'normal' in the \
                         VirtualBox Media Manager, or detach it. Nothing was changed.",
                        medium.location.display(),
                        vm.name,
                        medium.kind
                    ),
                ));
            }
        }
        disks.push(m.clone());
    }
    if disks.is_empty() {
        return Err(refuse(
            Code::Refused,
            format!(
                "VM '{}' has no hard disk attached, so there is nothing to keep safe for backups. \
                 Start it from VirtualBox directly. Nothing was changed.",
                vm.name
            ),
        ));
    }
    Ok(disks)
}

fn show(s: &Snapshot) -> String {
    format!("'{}' {{{}}}", s.name, s.uuid)
}

/// The snapshots from the root to the current one (indices), oldest first.
pub fn current_path(vm: &VmInfo) -> Vec<usize> {
    let mut path = Vec::new();
    let mut at = vm
        .current_snapshot
        .as_deref()
        .and_then(|u| vm.snapshots.iter().position(|s| s.uuid == u));
    while let Some(i) = at {
        path.push(i);
        at = vm.snapshots[i].parent;
    }
    path.reverse();
    path
}

/// vblaunch's own snapshots on the current path, oldest first, and those elsewhere.
pub fn own_snapshots(vm: &VmInfo, snapshot_name: &str, adopt: bool) -> (Vec<usize>, Vec<usize>) {
    let path = current_path(vm);
    let own = |i: usize| {
        let s = &vm.snapshots[i];
        is_own(vm, s) || (adopt && path.contains(&i) && is_label(&s.name, snapshot_name))
    };
    let on: Vec<usize> = path.iter().copied().filter(|&i| own(i)).collect();
    let off: Vec<usize> = (0..vm.snapshots.len())
        .filter(|i| !path.contains(i) && own(*i))
        .collect();
    (on, off)
}

/// For each snapshot on the current path (oldest first), the differencing
/// images that hold the writes made after it was taken (one per hard disk):
/// a linear chain base ← d1 ← … ← dm has one diff per snapshot on the path,
/// the last being the current state. The chain is matched from its top: a
/// linked clone's disk, or a disk attached on top of an image that already
/// had a child, rests on images of another VM below the image its first
/// snapshot froze (see [`floor`]). None when the chain is shorter than the
/// path (then sizes are unknown, never guessed).
pub fn path_diffs<'m>(vm: &VmInfo, media: &'m [Medium]) -> Option<Vec<(usize, Vec<&'m Medium>)>> {
    let path = current_path(vm);
    let mut per_snapshot: Vec<(usize, Vec<&Medium>)> =
        path.iter().map(|&i| (i, Vec::new())).collect();
    for att in &vm.attachments {
        if !media.iter().any(|m| m.uuid == att.image_uuid) {
            continue; // not a hard disk
        }
        let mut chain: Vec<&Medium> = media::chain(media, &att.image_uuid)
            .into_iter()
            .collect::<Result<_, _>>()
            .ok()?;
        chain.reverse(); // base first
        let below = chain.len().checked_sub(path.len() + 1)?;
        for (j, entry) in per_snapshot.iter_mut().enumerate() {
            entry.1.push(chain[below + j + 1]);
        }
    }
    Some(per_snapshot)
}

/// Per attached hard disk: the image the VM's oldest snapshot froze (its
/// first merge target) and the base at the bottom of its chain. They differ
/// for a linked clone or a disk attached on top of another VM's image:
/// then the floor is this VM's own differencing image, which holds what the
/// folds merge, and a backup needs it as well as the base.
pub fn floors<'m>(vm: &VmInfo, media: &'m [Medium]) -> Vec<(&'m Medium, &'m Medium)> {
    let path = current_path(vm);
    vm.attachments
        .iter()
        .filter_map(|a| {
            let mut chain: Vec<&Medium> = media::chain(media, &a.image_uuid)
                .into_iter()
                .collect::<Result<_, _>>()
                .ok()?;
            chain.reverse();
            let below = chain.len().checked_sub(path.len() + 1)?;
            Some((chain[below], chain[0]))
        })
        .collect()
}

/// What the pre-flight checks need to know about the file system.
pub struct Space<'a> {
    /// Free bytes on the volume holding a path (the OS call for that exact
    /// path; a path not yet there is asked of its nearest existing folder).
    pub free: &'a dyn Fn(&Path) -> Option<u64>,
    /// A file's size on disk.
    pub size: &'a dyn Fn(&Path) -> Option<u64>,
    /// Whether VirtualBox (running as this user) can write a file or create
    /// files in a folder: Err says why not.
    pub writable: &'a dyn Fn(&Path) -> Result<(), String>,
    pub margin: u64,
}

/// What a new differencing image takes before the VM writes to it: VDI
/// header and alignment (VirtualBox makes them 2 MiB), plus 4 bytes of block
/// map per MiB of capacity.
const NEW_DIFF: u64 = 2 << 20;
/// Headroom for a take (new images and the settings file rewritten).
pub const TAKE_MARGIN: u64 = 16 << 20;

fn mib(b: u64) -> String {
    format!("{:.0} MiB", b as f64 / (1u64 << 20) as f64)
}

fn not_writable(vm: &VmInfo, path: &Path, what: &str, why: &str) -> Refusal {
    refuse(
        Code::Refused,
        format!(
            "VirtualBox cannot write {} ({what}): {why}. Changing VM '{}' now would fail half-way. \
             Make it writable (its owner and permissions, a read-only or immutable flag, or a \
             disk mounted read-only), then run vblaunch again. Nothing was changed.",
            path.display(),
            vm.name
        ),
    )
}

/// One merge target of a plan: the image the deleted snapshots' data is
/// written into, and the differencing images merged into it.
struct Target<'m> {
    target: &'m Medium,
    merged: Vec<&'m Medium>,
}

/// Per hard disk, where the plan's merges write (pure): a deleted
/// snapshot's diff merges into the nearest image below it that stays (the
/// base, or the diff of a kept snapshot below it). None when the chain does
/// not match the snapshot path.
fn merge_targets<'m>(
    vm: &VmInfo,
    media: &'m [Medium],
    deleted: &[&str],
) -> Option<Vec<Target<'m>>> {
    let diffs = path_diffs(vm, media)?;
    let path = current_path(vm);
    let gone = |j: usize| deleted.contains(&vm.snapshots[path[j]].uuid.as_str());
    let disks = diffs.first().map(|(_, ms)| ms.len()).unwrap_or(0);
    let mut out: Vec<Target> = Vec::new();
    for d in 0..disks {
        // full[0] is the image the oldest snapshot froze (the base, or this
        // VM's own image on another's); full[j + 1] holds the writes after path[j].
        let floor = media
            .iter()
            .find(|m| Some(m.uuid.as_str()) == diffs[0].1[d].parent.as_deref())?;
        let mut full: Vec<&Medium> = vec![floor];
        full.extend(diffs.iter().map(|(_, ms)| ms[d]));
        for j in (0..path.len()).filter(|&j| gone(j)) {
            let mut k = j;
            while k > 0 && gone(k - 1) {
                k -= 1;
            }
            let target = full[k];
            match out.iter_mut().find(|t| t.target.uuid == target.uuid) {
                Some(t) => t.merged.push(full[j + 1]),
                None => out.push(Target {
                    target,
                    merged: vec![full[j + 1]],
                }),
            }
        }
    }
    Some(out)
}

/// Checks before the first step, so that a refusal changes nothing: the
/// folders and images VirtualBox will write are writable; the Snapshots
/// folder and the VM folder have room for a take; each merge target has room
/// for what is merged into it plus a margin and no other child (VirtualBox
/// would merge forward into the other child and leave the target, e.g. the
/// base, unchanged); VirtualBox left no half-written settings file.
/// Returns notes (e.g. free space that could not be determined).
pub fn preflight(
    vm: &VmInfo,
    media: &[Medium],
    plan: &Plan,
    space: &Space<'_>,
    leftover_settings: Option<&Path>,
) -> Result<Vec<String>, Refusal> {
    // A settings file VirtualBox cannot replace is the cause to name first:
    // it also leaves a `.vbox-tmp` behind, which is then no interrupted save.
    if let Some(cfg) = vm.cfg_file.as_deref() {
        let dir = cfg.parent().unwrap_or(cfg);
        (space.writable)(dir).map_err(|why| {
            not_writable(
                vm,
                dir,
                "the VM folder: VirtualBox saves the settings file there",
                &why,
            )
        })?;
        (space.writable)(cfg)
            .map_err(|why| not_writable(vm, cfg, "the VM's settings file", &why))?;
    }
    if let Some(tmp) = leftover_settings {
        return Err(refuse(
            Code::Refused,
            format!(
                "VirtualBox left a new settings file {} behind that it never put in place (an interrupted \
                 or failed save). \
                 Changing snapshots now could make it the VM's settings. Run `vblaunch doctor \
                 \"{}\" --fix` to move it aside safely, then run vblaunch again. Nothing was changed.",
                tmp.display(),
                vm.name
            ),
        ));
    }
    if plan.steps.is_empty() {
        return Ok(Vec::new());
    }
    let mut notes = Vec::new();
    let mut room = |path: &Path, need: u64, what: &str| -> Result<(), Refusal> {
        match (space.free)(path) {
            Some(free) if free < need => Err(refuse(
                Code::Refused,
                format!(
                    "Not enough free space {what} {}: it needs {} but its volume has {} free. \
                     Free space on that disk (or lower merge_free_space_margin_mb in the config \
                     for merges), then run vblaunch again. Nothing was changed.",
                    path.display(),
                    mib(need),
                    mib(free)
                ),
            )),
            Some(free) => {
                log::debug!(
                    "free space {what} {}: {} free, {} needed",
                    path.display(),
                    mib(free),
                    mib(need)
                );
                Ok(())
            }
            None => {
                notes.push(format!(
                    "could not determine the free space {what} {}; VirtualBox refuses a merge \
                     itself when space runs out",
                    path.display()
                ));
                Ok(())
            }
        }
    };
    // The settings file is rewritten by every step: VirtualBox writes
    // `<vm>.vbox-tmp` next to it, then renames.
    let settings_size = vm.cfg_file.as_deref().and_then(space.size).unwrap_or(0);
    let takes = plan.steps.iter().any(|s| matches!(s, Step::Take { .. }));
    let deleted: Vec<&str> = plan
        .steps
        .iter()
        .filter_map(|s| match s {
            Step::Delete { uuid, .. } => Some(uuid.as_str()),
            _ => None,
        })
        .collect();
    if let Some(folder) = vm
        .snapshot_folder
        .as_deref()
        .filter(|_| takes || !deleted.is_empty())
    {
        (space.writable)(folder).map_err(|why| {
            not_writable(
                vm,
                folder,
                "the Snapshots folder: a take creates the new differencing images there, a merge removes one",
                &why,
            )
        })?;
        if takes {
            let images: u64 = plan
                .disks
                .iter()
                .map(|d| NEW_DIFF + d.capacity_mb.unwrap_or(0) * 4)
                .sum();
            room(
                folder,
                images + settings_size + TAKE_MARGIN,
                "to take a snapshot in",
            )?;
        }
    }
    if let Some(cfg) = vm.cfg_file.as_deref() {
        room(
            cfg.parent().unwrap_or(cfg),
            settings_size * 2 + TAKE_MARGIN,
            "to save the settings file in",
        )?;
    }
    if deleted.is_empty() {
        return Ok(notes);
    }
    let Some(targets) = merge_targets(vm, media, &deleted) else {
        notes.push(
            "could not match the disk chain to the snapshots, so free space was not checked; \
             VirtualBox refuses a merge itself when space runs out"
                .to_string(),
        );
        return Ok(notes);
    };
    for Target { target, merged } in &targets {
        let others: Vec<&Medium> = media
            .iter()
            .filter(|m| m.parent.as_deref() == Some(target.uuid.as_str()))
            .filter(|m| !merged.iter().any(|d| d.uuid == m.uuid))
            .collect();
        if !others.is_empty() {
            return Err(refuse(
                Code::Refused,
                format!(
                    "Disk image {} {{{}}}, which the fold of VM '{}' would merge into, has \
                     another child image: {}. It is shared (another VM, or a linked clone, is \
                     built on it), so VirtualBox would merge the other way, into the snapshot's \
                     image, and {} would not change: a backup of it would miss this VM's work. \
                     vblaunch will not fold this VM while the image is shared. `VBoxManage \
                     showmediuminfo disk {}` names the VMs using it; give each VM its own copy \
                     of the disk (VBoxManage clonemedium) or release the other VM, then run \
                     vblaunch again. Nothing was changed.",
                    target.location.display(),
                    target.uuid,
                    vm.name,
                    others
                        .iter()
                        .map(|m| format!("{} {{{}}}", m.location.display(), m.uuid))
                        .collect::<Vec<_>>()
                        .join(", "),
                    target.location.display(),
                    crate::process::quote(&target.location.to_string_lossy())
                ),
            ));
        }
        (space.writable)(&target.location).map_err(|why| {
            not_writable(
                vm,
                &target.location,
                "a merge writes the snapshot's data into it",
                &why,
            )
        })?;
        let bytes: u64 = merged
            .iter()
            .map(|m| (space.size)(&m.location).unwrap_or(0))
            .sum();
        let required = bytes + space.margin;
        match (space.free)(&target.location) {
            Some(free) if free < required => {
                return Err(refuse(
                    Code::Refused,
                    format!(
                        "Not enough free space to merge into {}: it needs {} (the \
                         differencing data {} plus a safety margin of {}) but its volume \
                         has {} free. Free space on that disk (or lower \
                         merge_free_space_margin_mb in the config), then run vblaunch \
                         again. Nothing was changed.",
                        target.location.display(),
                        mib(required),
                        mib(bytes),
                        mib(space.margin),
                        mib(free)
                    ),
                ))
            }
            Some(_) => {}
            None => notes.push(format!(
                "could not determine the free space for {}; VirtualBox refuses a merge \
                 itself when space runs out",
                target.location.display()
            )),
        }
    }
    Ok(notes)
}

/// Decide the steps of a fold.
pub fn plan(
    vm: &VmInfo,
    media: &[Medium],
    policy: &Policy<'_>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Plan, Refusal> {
    if !vm.accessible {
        return Err(refuse(
            Code::VmNotFound,
            format!(
                "VM {} is inaccessible: VirtualBox cannot read its settings.",
                vm.uuid
            ),
        ));
    }
    if !vm.state.allows_fold() {
        return Err(refuse(Code::VmState, describe_state(vm)));
    }
    if let Some(session) = &vm.session_name {
        return Err(refuse(
            Code::VmState,
            format!(
                "VM '{}' is open in another program (session '{session}'): a VirtualBox window, \
                 VBoxManage or a front end holds its lock. Close it and run vblaunch again. \
                 Nothing was changed.",
                vm.name
            ),
        ));
    }
    let disks = check_disks(vm, media, exists)?;
    let name = policy.snapshot_name;
    let keep = policy.keep.max(1);
    let take = Step::Take {
        name: name.to_string(),
        description: description(policy.now_iso8601),
    };
    let (own, off_path) = own_snapshots(vm, name, policy.adopt);
    let mut notes = Vec::new();
    let user: Vec<String> = vm
        .snapshots
        .iter()
        .enumerate()
        .filter(|(i, _)| !own.contains(i) && !off_path.contains(i))
        .map(|(_, s)| show(s))
        .collect();
    if !user.is_empty() {
        notes.push(format!(
            "VM '{}' has snapshots of yours: {}. vblaunch never deletes or renames them.",
            vm.name,
            user.join(", ")
        ));
    }
    if let Some(&i) = off_path.first() {
        return Err(refuse(
            Code::Refused,
            format!(
                "vblaunch's snapshot {} of VM '{}' is not on the path to the VM's current state \
                 (the VM was probably restored to another snapshot). vblaunch will not guess which \
                 state to keep. Restore the VM to its newest vblaunch snapshot, or delete the \
                 branch you do not need, in the VirtualBox Manager; then run vblaunch again. \
                 Nothing was changed.",
                show(&vm.snapshots[i]),
                vm.name
            ),
        ));
    }
    let current = vm.current();
    let named: Vec<&Snapshot> = vm.snapshots.iter().filter(|s| s.name == name).collect();

    if own.is_empty() {
        // Not managed yet. A user snapshot with the managed name is ambiguous.
        if named.len() > 1 {
            return Err(refuse(
                Code::Refused,
                format!(
                    "VM '{}' has {} snapshots named '{name}': {}. vblaunch cannot tell which one \
                     it manages and will not guess. Rename or delete the extra ones in the \
                     VirtualBox Manager (Snapshots tab), then run vblaunch again. Nothing was \
                     changed.",
                    vm.name,
                    named.len(),
                    named.iter().map(|s| show(s)).collect::<Vec<_>>().join(", ")
                ),
            ));
        }
        if let Some(s) = named.first() {
            return Err(refuse(
                Code::Refused,
                format!(
                    "Snapshot {} of VM '{}' was not taken by vblaunch (its description lacks \
                     vblaunch's marker), and vblaunch never deletes a snapshot it did not make. \
                     If it is the '{name}' of your old launcher script and may be merged into \
                     its parent, run vblaunch once with --adopt. Otherwise rename it in the \
                     VirtualBox Manager (or set another snapshot_name in the config). \
                     Nothing was changed.",
                    show(s),
                    vm.name
                ),
            ));
        }
        match current {
            None => notes.push(format!(
                "VM '{}' has no vblaunch snapshot yet (first run, or folded when it last shut \
                 down): taking snapshot '{name}'; from now on the base disk stays frozen while \
                 the VM runs.",
                vm.name
            )),
            Some(cur) => notes.push(format!(
                "Taking snapshot '{name}' on top of your snapshot {}.",
                show(cur)
            )),
        }
        return Ok(Plan {
            steps: vec![take],
            notes,
            disks,
            own_after: 1,
            own_before: own.iter().map(|&i| vm.snapshots[i].uuid.clone()).collect(),
        });
    }

    let newest = &vm.snapshots[*own.last().expect("own is not empty")];
    let cur = current.expect("own snapshots lie on the current path");
    if cur.uuid != newest.uuid {
        let dup = if named.len() > 1 {
            format!(
                "VM '{}' has {} snapshots named '{name}' ({}). ",
                vm.name,
                named.len(),
                named.iter().map(|s| show(s)).collect::<Vec<_>>().join(", ")
            )
        } else {
            String::new()
        };
        return Err(refuse(
            Code::Refused,
            format!(
                "{dup}The current snapshot of VM '{}' is {}, which vblaunch did not take; its newest \
                 own snapshot is {}. The VM was probably restored to another snapshot, or a \
                 snapshot was taken by hand after the last launch. vblaunch will not guess which \
                 state to keep. In the VirtualBox Manager, delete or restore snapshots until \
                 {} is the current one, then run vblaunch again. Nothing was changed.",
                vm.name,
                show(cur),
                show(newest),
                show(newest)
            ),
        ));
    }
    if !cur.children.is_empty() {
        return Err(refuse(
            Code::Refused,
            format!(
                "Snapshot {} of VM '{}' has child snapshots; folding it would merge into your \
                 snapshots. Move or delete those children in the VirtualBox Manager, then run \
                 vblaunch again. Nothing was changed.",
                show(cur),
                vm.name
            ),
        ));
    }

    // After the take there are own.len() + 1 own snapshots; fold the oldest beyond `keep`.
    let total = own.len() + 1;
    let fold_count = total.saturating_sub(keep);
    let (folded, kept) = own.split_at(fold_count.min(own.len()));
    for &i in folded {
        let s = &vm.snapshots[i];
        if s.children.len() > 1 {
            return Err(refuse(
                Code::Refused,
                format!(
                    "vblaunch's snapshot {} of VM '{}' has {} child snapshots (a branch); \
                     VirtualBox cannot merge it. Delete the branch you do not need in the \
                     VirtualBox Manager, then run vblaunch again. Nothing was changed.",
                    show(s),
                    vm.name,
                    s.children.len()
                ),
            ));
        }
    }
    // More own snapshots than `keep` before the take means an earlier merge
    // did not complete (or keep was lowered): merge those first, so that a
    // merge that keeps failing never adds one more snapshot per run.
    let early = own.len().saturating_sub(keep).min(folded.len());
    let delete = |i: usize| {
        let s = &vm.snapshots[i];
        Step::Delete {
            uuid: s.uuid.clone(),
            name: s.name.clone(),
        }
    };
    let mut steps: Vec<Step> = folded[..early].iter().map(|&i| delete(i)).collect();
    steps.push(take);
    // Labels by age: the new snapshot is 0, the kept ones 1.. (newest first).
    for (age, &i) in kept.iter().rev().enumerate() {
        let s = &vm.snapshots[i];
        let want = label(age + 1, name);
        if s.name != want {
            steps.push(Step::Rename {
                uuid: s.uuid.clone(),
                from: s.name.clone(),
                to: want,
            });
        }
    }
    steps.extend(folded[early..].iter().map(|&i| delete(i)));
    for &i in folded {
        let s = &vm.snapshots[i];
        let into = match s.parent.map(|p| &vm.snapshots[p]) {
            None if floors(vm, media).iter().any(|(f, b)| f.uuid != b.uuid) => {
                "this VM's own image(s) on the base it shares with another VM or a clone's \
                 source (that base stays as it is)"
                    .to_string()
            }
            None => "the base disk(s)".to_string(),
            Some(p) if own.contains(&s.parent.unwrap()) => format!("snapshot {}", show(p)),
            Some(p) => format!(
                "your snapshot {} (its differencing image; the base disk stays frozen under it)",
                show(p)
            ),
        };
        notes.push(format!("Folding {} into {into}.", show(s)));
    }
    let own_after = total - fold_count;
    if keep > 1 {
        notes.push(format!(
            "Keeping {} restore point{} (keep = {keep}).",
            own_after - 1,
            if own_after - 1 == 1 { "" } else { "s" }
        ));
    }
    if early > 0 {
        notes.push(format!(
            "VM '{}' has {} vblaunch snapshots, more than keep = {keep} (an earlier merge did not \
             complete, or keep was lowered): merging the {early} oldest first, before taking a \
             new snapshot; {} in all.",
            vm.name,
            own.len(),
            fold_count
        ));
    }
    Ok(Plan {
        steps,
        notes,
        disks,
        own_after,
        own_before: own.iter().map(|&i| vm.snapshots[i].uuid.clone()).collect(),
    })
}

/// The fold after the VM shut down (`fold_on_exit`): merge the session (the
/// current snapshot) into its parent and take nothing — the VM is off, so
/// nothing writes to the base until the next launch, which takes a fresh
/// snapshot before it starts the VM. Only with keep = 1: restore points live
/// above the base, so with them the base cannot hold today's work.
pub fn plan_exit_fold(
    vm: &VmInfo,
    media: &[Medium],
    policy: &Policy<'_>,
    exists: &dyn Fn(&Path) -> bool,
) -> Result<Plan, Refusal> {
    if policy.keep > 1 {
        return Err(refuse(
            Code::Refused,
            format!(
                "fold_on_exit is skipped for VM '{}': with keep = {} the session stays a restore \
                 point and is folded at a later launch.",
                vm.name, policy.keep
            ),
        ));
    }
    if !vm.state.is_shut_down() {
        return Err(refuse(
            Code::VmState,
            format!(
                "VM '{}' was not shut down (state: {}); a saved session is folded at the next \
                 launch instead.",
                vm.name, vm.state
            ),
        ));
    }
    let full = plan(vm, media, policy, exists)?;
    // Same checks as a launch; keep only the merges (no new snapshot).
    let steps: Vec<Step> = full
        .steps
        .into_iter()
        .filter(|s| matches!(s, Step::Delete { .. }))
        .collect();
    if steps.is_empty() {
        return Err(refuse(
            Code::Refused,
            format!("VM '{}' has no vblaunch snapshot to fold.", vm.name),
        ));
    }
    Ok(Plan {
        steps,
        notes: vec![format!(
            "VM '{}' shut down: merging its session into the base disk(s) now.",
            vm.name
        )],
        disks: full.disks,
        own_after: 0,
        own_before: full.own_before,
    })
}

/// Check what VirtualBox holds after the fold: the current snapshot is the one
/// just taken, has the managed name, is a leaf; the VM has `own_expected` own
/// snapshots on its current path and no other; every attached hard disk is now
/// a differencing image. Returns what was found otherwise.
pub fn verify(
    vm: &VmInfo,
    media: &[Medium],
    taken_uuid: &str,
    name: &str,
    own_expected: usize,
) -> Result<(), String> {
    let mut problems = Vec::new();
    match vm.current() {
        None => problems.push("the VM has no current snapshot".to_string()),
        Some(c) => {
            if c.uuid != taken_uuid {
                problems.push(format!(
                    "the current snapshot is {} instead of the one just taken {{{taken_uuid}}}",
                    show(c)
                ));
            }
            if c.name != name {
                problems.push(format!(
                    "the current snapshot is named '{}', not '{name}'",
                    c.name
                ));
            }
            if !c.children.is_empty() {
                problems.push(format!("the current snapshot {} has children", show(c)));
            }
        }
    }
    let (own, off) = own_snapshots(vm, name, false);
    if own.len() != own_expected || !off.is_empty() {
        problems.push(format!(
            "expected {own_expected} vblaunch snapshot(s) on the current path, found {} (and {} elsewhere)",
            own.len(),
            off.len()
        ));
    }
    let own_named = own
        .iter()
        .filter(|&&i| vm.snapshots[i].name == name)
        .count();
    if own_named > 1 {
        problems.push(format!(
            "there are {own_named} vblaunch snapshots named '{name}'"
        ));
    }
    let mut disks = 0;
    for att in &vm.attachments {
        let Some(m) = media.iter().find(|m| m.uuid == att.image_uuid) else {
            continue;
        };
        disks += 1;
        if !m.is_differencing() {
            problems.push(format!(
                "disk {} in slot {} is not a differencing image, so writes would go to the base disk",
                m.location.display(),
                att.slot()
            ));
        }
    }
    if disks == 0 {
        problems.push("no hard disk is attached any more".to_string());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vbox::vminfo::Attachment;
    use std::path::PathBuf;

    const BASE: &str = "b0000000-0000-0000-0000-000000000000";

    fn medium(uuid: &str, parent: Option<&str>) -> Medium {
        crate::vbox::media::test_medium(uuid, parent, format!("/vms/{uuid}.vdi"), Some(32))
    }

    /// A VM whose snapshots are given as (name, parent index, marked); the
    /// current snapshot is `current`; media form the matching chain.
    struct Tree {
        vm: VmInfo,
        media: Vec<Medium>,
    }

    fn tree(snaps: &[(&str, Option<usize>, bool)], current: Option<usize>) -> Tree {
        let mut vm = VmInfo {
            name: "Dev Box".into(),
            uuid: "vm-uuid".into(),
            accessible: true,
            state: "poweroff".into(),
            ..Default::default()
        };
        let mut media = vec![medium(BASE, None)];
        for (i, (name, parent, marked)) in snaps.iter().enumerate() {
            vm.snapshots.push(Snapshot {
                name: name.to_string(),
                uuid: format!("s{i}"),
                description: marked.then(|| description("2026-11-26T06:00:00Z")),
                node: String::new(),
                parent: *parent,
                children: vec![],
            });
            if let Some(p) = parent {
                vm.snapshots[*p].children.push(i);
            }
        }
        // The current state's medium: one diff per snapshot on the path to the current one.
        let mut leaf = BASE.to_string();
        if let Some(c) = current {
            let mut path = vec![c];
            while let Some(p) = vm.snapshots[*path.last().unwrap()].parent {
                path.push(p);
            }
            for (depth, _) in path.iter().rev().enumerate() {
                let u = format!("d{depth}");
                media.push(medium(&u, Some(&leaf)));
                leaf = u;
            }
            vm.current_snapshot = Some(format!("s{c}"));
        }
        vm.attachments.push(Attachment {
            controller: "SATA".into(),
            port: 0,
            device: 0,
            location: PathBuf::from(format!("/vms/{leaf}.vdi")),
            image_uuid: leaf,
        });
        Tree { vm, media }
    }

    fn policy() -> Policy<'static> {
        Policy {
            snapshot_name: "current",
            keep: 1,
            adopt: false,
            now_iso8601: "2026-11-26T07:00:00Z",
        }
    }

    fn keep(n: usize) -> Policy<'static> {
        Policy {
            keep: n,
            ..policy()
        }
    }

    fn del(i: usize, name: &str) -> Step {
        Step::Delete {
            uuid: format!("s{i}"),
            name: name.into(),
        }
    }

    fn ren(i: usize, from: &str, to: &str) -> Step {
        Step::Rename {
            uuid: format!("s{i}"),
            from: from.into(),
            to: to.into(),
        }
    }

    /// A linear chain of own snapshots with the given names, the last current.
    fn chain(names: &[&str]) -> Tree {
        let snaps: Vec<(&str, Option<usize>, bool)> = names
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, i.checked_sub(1), true))
            .collect();
        tree(&snaps, names.len().checked_sub(1))
    }

    fn run(t: &Tree) -> Result<Plan, Refusal> {
        plan(&t.vm, &t.media, &policy(), &|_| true)
    }

    fn take() -> Step {
        Step::Take {
            name: "current".into(),
            description: description("2026-11-26T07:00:00Z"),
        }
    }

    #[test]
    fn no_snapshots_takes_current_to_adopt_the_vm() {
        let p = run(&tree(&[], None)).unwrap();
        assert_eq!(p.steps, [take()]);
        assert!(
            p.notes[0].contains("no vblaunch snapshot yet"),
            "{:?}",
            p.notes
        );
        assert_eq!(p.disks[0].uuid, BASE);
        assert_eq!(p.own_after, 1);
    }

    #[test]
    fn keep_1_takes_the_new_current_then_folds_the_old_one_by_uuid() {
        let p = run(&chain(&["current"])).unwrap();
        assert_eq!(p.steps, [take(), del(0, "current")]);
        assert!(
            p.notes.iter().any(|n| n.contains("into the base disk")),
            "{:?}",
            p.notes
        );
        assert_eq!(p.own_after, 1);
    }

    #[test]
    fn keep_2_renames_current_to_previous_and_folds_the_oldest() {
        // First fold under keep 2: nothing to fold yet.
        let p = plan(
            &chain(&["current"]).vm,
            &chain(&["current"]).media,
            &keep(2),
            &|_| true,
        )
        .unwrap();
        assert_eq!(p.steps, [take(), ren(0, "current", "previous")]);
        assert_eq!(p.own_after, 2);
        // Steady state: previous is folded, current becomes previous.
        let t = chain(&["previous", "current"]);
        let p = plan(&t.vm, &t.media, &keep(2), &|_| true).unwrap();
        assert_eq!(
            p.steps,
            [take(), ren(1, "current", "previous"), del(0, "previous")]
        );
        assert_eq!(p.own_after, 2);
    }

    #[test]
    fn keep_3_and_4_shift_every_label() {
        let t = chain(&["previous-2", "previous", "current"]);
        let p = plan(&t.vm, &t.media, &keep(3), &|_| true).unwrap();
        assert_eq!(
            p.steps,
            [
                take(),
                ren(2, "current", "previous"),
                ren(1, "previous", "previous-2"),
                del(0, "previous-2")
            ]
        );
        let p = plan(&t.vm, &t.media, &keep(4), &|_| true).unwrap();
        assert_eq!(
            p.steps,
            [
                take(),
                ren(2, "current", "previous"),
                ren(1, "previous", "previous-2"),
                ren(0, "previous-2", "previous-3")
            ]
        );
        assert_eq!(p.own_after, 4);
    }

    #[test]
    fn lowering_keep_folds_every_extra_snapshot_oldest_first_and_says_so() {
        let t = chain(&["previous-2", "previous", "current"]);
        let p = run(&t).unwrap();
        // The excess beyond keep goes first, then the take, then the last one.
        assert_eq!(
            p.steps,
            [
                del(0, "previous-2"),
                del(1, "previous"),
                take(),
                del(2, "current")
            ]
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("more than keep = 1") && n.contains("3 in all")),
            "{:?}",
            p.notes
        );
        assert_eq!(p.own_after, 1);
    }

    #[test]
    fn a_merge_that_failed_last_time_is_completed_before_anything_is_taken() {
        // keep = 1: last run took s1 and its merge of s0 failed.
        let t = chain(&["current", "current"]);
        let p = run(&t).unwrap();
        assert_eq!(p.steps, [del(0, "current"), take(), del(1, "current")]);
        assert_eq!(p.own_after, 1);
        // keep = 2: the failed merge of the oldest goes first, the labels follow.
        let t = chain(&["previous", "previous", "current"]);
        let p = plan(&t.vm, &t.media, &keep(2), &|_| true).unwrap();
        assert_eq!(
            p.steps,
            [
                del(0, "previous"),
                take(),
                ren(2, "current", "previous"),
                del(1, "previous")
            ]
        );
        assert_eq!(p.own_after, 2);
        // On exit (no take) the same merges, oldest first.
        let t = chain(&["current", "current"]);
        let p = plan_exit_fold(&t.vm, &t.media, &policy(), &|_| true).unwrap();
        assert_eq!(p.steps, [del(0, "current"), del(1, "current")]);
    }

    fn writable_space<'a>(
        free: &'a dyn Fn(&Path) -> Option<u64>,
        writable: &'a dyn Fn(&Path) -> Result<(), String>,
    ) -> Space<'a> {
        Space {
            free,
            writable,
            size: &|_| Some(8 << 20),
            margin: 0,
        }
    }

    #[test]
    fn preflight_refuses_a_merge_into_a_shared_image() {
        // The base has a second child: another VM's diff (or a linked clone).
        let mut t = chain(&["current"]);
        t.media.push(medium("other-vm-diff", Some(BASE)));
        let p = run(&t).unwrap();
        let free = |_: &Path| Some(u64::MAX);
        let r = preflight(&t.vm, &t.media, &p, &space(&free, 0), None).unwrap_err();
        assert_eq!(r.code, Code::Refused);
        assert!(
            r.reason.contains("/vms/other-vm-diff.vdi")
                && r.reason.contains(&format!("/vms/{BASE}.vdi"))
                && r.reason.contains("would not change")
                && r.reason.contains("Nothing was changed"),
            "{}",
            r.reason
        );
        // A linked clone's own chain: the target is its own diff, unshared,
        // even though the image below it has other children.
        let mut t = chain(&["yours", "current"]);
        t.vm.snapshots[0].description = None;
        t.media.push(medium("source-vm-diff", Some(BASE)));
        let p = run(&t).unwrap();
        assert!(p.steps.contains(&del(1, "current")), "{:?}", p.steps);
        assert!(preflight(&t.vm, &t.media, &p, &space(&free, 0), None).is_ok());
    }

    #[test]
    fn preflight_refuses_folders_and_images_virtualbox_cannot_write() {
        let mut t = chain(&["current"]);
        t.vm.cfg_file = Some(PathBuf::from("/vms/Dev Box/Dev Box.vbox"));
        t.vm.snapshot_folder = Some(PathBuf::from("/vms/Dev Box/Snapshots"));
        let p = run(&t).unwrap();
        let free = |_: &Path| Some(u64::MAX);
        for (bad, says) in [
            ("/vms/Dev Box", "the VM folder"),
            ("/vms/Dev Box/Dev Box.vbox", "settings file"),
            ("/vms/Dev Box/Snapshots", "the Snapshots folder"),
            (&*format!("/vms/{BASE}.vdi"), "a merge writes"),
        ] {
            let no = |p: &Path| {
                if p == Path::new(bad) {
                    Err("read-only".to_string())
                } else {
                    Ok(())
                }
            };
            let r = preflight(&t.vm, &t.media, &p, &writable_space(&free, &no), None).unwrap_err();
            assert!(
                r.reason.contains(bad) && r.reason.contains(says) && r.reason.contains("read-only"),
                "{bad}: {}",
                r.reason
            );
        }
        let yes = |_: &Path| Ok(());
        assert!(preflight(&t.vm, &t.media, &p, &writable_space(&free, &yes), None).is_ok());
        // VirtualBox could not replace the settings file and left its -tmp:
        // the cause is named, not "an interrupted save".
        let cfg_ro = |p: &Path| {
            if p.ends_with("Dev Box.vbox") {
                Err("immutable".to_string())
            } else {
                Ok(())
            }
        };
        let tmp = Path::new("/vms/Dev Box/Dev Box.vbox-tmp");
        let r = preflight(
            &t.vm,
            &t.media,
            &p,
            &writable_space(&free, &cfg_ro),
            Some(tmp),
        )
        .unwrap_err();
        assert!(
            r.reason.contains("settings file")
                && r.reason.contains("immutable")
                && !r.reason.contains("interrupted"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn preflight_refuses_a_take_without_room_for_the_new_images() {
        let mut t = chain(&[]);
        t.vm.cfg_file = Some(PathBuf::from("/vms/Dev Box/Dev Box.vbox"));
        t.vm.snapshot_folder = Some(PathBuf::from("/small/Snapshots"));
        let p = run(&t).unwrap();
        let yes = |_: &Path| Ok(());
        // 12 MiB free on the Snapshots folder's volume, plenty elsewhere.
        let free = |p: &Path| {
            Some(if p.starts_with("/small") {
                12 << 20
            } else {
                1 << 40
            })
        };
        let r = preflight(&t.vm, &t.media, &p, &writable_space(&free, &yes), None).unwrap_err();
        assert!(
            r.reason.contains("to take a snapshot in /small/Snapshots")
                && r.reason.contains("12 MiB free"),
            "{}",
            r.reason
        );
        let roomy = |_: &Path| Some(1u64 << 40);
        assert!(preflight(&t.vm, &t.media, &p, &writable_space(&roomy, &yes), None).is_ok());
    }

    #[test]
    fn labels_are_repaired_after_a_crash_between_take_and_rename() {
        // Two own snapshots both named "current" (the rename never ran).
        let t = chain(&["current", "current"]);
        let p = plan(&t.vm, &t.media, &keep(3), &|_| true).unwrap();
        assert_eq!(
            p.steps,
            [
                take(),
                ren(1, "current", "previous"),
                ren(0, "current", "previous-2")
            ]
        );
    }

    #[test]
    fn user_snapshots_interleaved_are_kept_and_named() {
        // base <- mine <- previous <- ours-too? no: mine is the user's, in the chain.
        let t = tree(
            &[
                ("previous", None, true),
                ("mine", Some(0), false),
                ("current", Some(1), true),
            ],
            Some(2),
        );
        let p = plan(&t.vm, &t.media, &keep(2), &|_| true).unwrap();
        assert_eq!(
            p.steps,
            [take(), ren(2, "current", "previous"), del(0, "previous")]
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("snapshots of yours: 'mine'")),
            "{:?}",
            p.notes
        );
        // Folding "current" whose parent is the user's snapshot merges into that one.
        let t = tree(
            &[("before upgrade", None, false), ("current", Some(0), true)],
            Some(1),
        );
        let p = run(&t).unwrap();
        assert_eq!(p.steps, [take(), del(1, "current")]);
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("your snapshot 'before upgrade'")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn user_snapshots_only_get_current_taken_on_top() {
        let p = run(&tree(
            &[("mine", None, false), ("mine too", Some(0), false)],
            Some(1),
        ))
        .unwrap();
        assert_eq!(p.steps, [take()]);
        assert!(p
            .notes
            .iter()
            .any(|n| n.contains("on top of your snapshot 'mine too'")));
    }

    #[test]
    fn duplicate_unmarked_managed_names_are_refused_listing_both() {
        let r = run(&tree(
            &[("current", None, false), ("current", Some(0), false)],
            Some(1),
        ))
        .unwrap_err();
        assert_eq!(r.code, Code::Refused);
        assert!(
            r.reason.contains("2 snapshots named 'current'")
                && r.reason.contains("s0")
                && r.reason.contains("s1"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn a_user_snapshot_on_top_of_current_is_refused() {
        // Marked "current", then the user took "current" by hand (unmarked).
        let r = run(&tree(
            &[("current", None, true), ("current", Some(0), false)],
            Some(1),
        ))
        .unwrap_err();
        assert_eq!(r.code, Code::Refused);
        assert!(
            r.reason.contains("which vblaunch did not take"),
            "{}",
            r.reason
        );
        let r = run(&tree(
            &[("current", None, true), ("mine", Some(0), false)],
            Some(1),
        ))
        .unwrap_err();
        assert!(
            r.reason.contains("which vblaunch did not take"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn own_snapshot_off_the_current_path_is_refused() {
        // Restored to the user's root snapshot: vblaunch's "current" is on another branch.
        let r = run(&tree(
            &[("mine", None, false), ("current", Some(0), true)],
            Some(0),
        ))
        .unwrap_err();
        assert!(r.reason.contains("not on the path"), "{}", r.reason);
    }

    #[test]
    fn managed_current_with_children_is_refused() {
        let mut t = tree(
            &[("current", None, true), ("mine", Some(0), false)],
            Some(0),
        );
        t.vm.current_snapshot = Some("s0".into());
        let r = run(&t).unwrap_err();
        assert!(r.reason.contains("has child snapshots"), "{}", r.reason);
    }

    #[test]
    fn a_restore_point_with_a_branch_is_not_folded() {
        let t = tree(
            &[
                ("previous", None, true),
                ("current", Some(0), true),
                ("mine", Some(0), false),
            ],
            Some(1),
        );
        let r = plan(&t.vm, &t.media, &keep(1), &|_| true).unwrap_err();
        assert!(r.reason.contains("2 child snapshots"), "{}", r.reason);
    }

    #[test]
    fn unmarked_current_is_refused_unless_adopted() {
        let t = tree(&[("current", None, false)], Some(0));
        let r = run(&t).unwrap_err();
        assert!(r.reason.contains("--adopt"), "{}", r.reason);
        let adopt = Policy {
            adopt: true,
            ..policy()
        };
        let p = plan(&t.vm, &t.media, &adopt, &|_| true).unwrap();
        assert_eq!(p.steps, [take(), del(0, "current")]);
        // The seed's cascade (current -> previous) is adopted as restore points.
        let t = tree(
            &[("previous", None, false), ("current", Some(0), false)],
            Some(1),
        );
        let adopt2 = Policy {
            adopt: true,
            keep: 2,
            ..policy()
        };
        let p = plan(&t.vm, &t.media, &adopt2, &|_| true).unwrap();
        assert_eq!(
            p.steps,
            [take(), ren(1, "current", "previous"), del(0, "previous")]
        );
    }

    #[test]
    fn configured_snapshot_name_is_honoured() {
        let t = tree(&[("vbl", None, true)], Some(0));
        let pol = Policy {
            snapshot_name: "vbl",
            ..policy()
        };
        let p = plan(&t.vm, &t.media, &pol, &|_| true).unwrap();
        assert!(matches!(&p.steps[0], Step::Take { name, .. } if name == "vbl"));
        assert!(matches!(&p.steps[1], Step::Delete { name, .. } if name == "vbl"));
    }

    #[test]
    fn running_paused_transient_and_locked_vms_are_refused() {
        for state in [
            "running",
            "paused",
            "saving",
            "starting",
            "deletingsnapshot",
            "livesnapshotting",
        ] {
            let mut t = chain(&["current"]);
            t.vm.state = state.into();
            let r = run(&t).unwrap_err();
            assert_eq!(r.code, Code::VmState);
            assert!(r.reason.contains(state), "{}", r.reason);
        }
        for state in ["saved", "aborted", "aborted-saved", "poweroff"] {
            let mut t = chain(&["current"]);
            t.vm.state = state.into();
            assert!(run(&t).is_ok(), "{state}");
        }
        let mut t = tree(&[], None);
        t.vm.session_name = Some("GUI/Qt".into());
        let r = run(&t).unwrap_err();
        assert_eq!(r.code, Code::VmState);
        assert!(r.reason.contains("GUI/Qt"));
    }

    #[test]
    fn a_missing_diff_file_is_refused_naming_its_path() {
        let t = chain(&["current"]);
        let r = plan(&t.vm, &t.media, &policy(), &|p| !p.ends_with("d0.vdi")).unwrap_err();
        assert_eq!(r.code, Code::Refused);
        assert!(r.reason.contains("/vms/d0.vdi"), "{}", r.reason);
        let mut t = t;
        t.media[1].state = "inaccessible".into();
        let r = run(&t).unwrap_err();
        assert!(r.reason.contains("inaccessible"), "{}", r.reason);
        // There but unreadable is not called missing.
        assert!(!r.reason.contains("MISSING"), "{}", r.reason);
        t.media[1].access_error = Some(
            "Could not open the medium '/vms/d1.vdi'.\nVDI: invalid pre-header in '/vms/d1.vdi' (VERR_VD_VDI_INVALID_HEADER).".into(),
        );
        let r = run(&t).unwrap_err();
        assert!(r.reason.contains("is DAMAGED"), "{}", r.reason);
    }

    #[test]
    fn a_disk_another_task_holds_is_refused_before_any_change() {
        for (i, state) in [(0, "locked read"), (1, "locked write")] {
            let mut t = chain(&["current"]);
            t.media[i].state = state.into();
            let r = run(&t).unwrap_err();
            assert_eq!(r.code, Code::Refused);
            assert!(
                r.reason.contains(&format!("'{state}'"))
                    && r.reason.contains(t.media[i].location.to_str().unwrap())
                    && r.reason.contains("VBoxManage showmediuminfo disk"),
                "{}",
                r.reason
            );
        }
    }

    #[test]
    fn a_chain_with_an_unregistered_parent_is_refused() {
        let mut t = chain(&["current"]);
        t.media.remove(0); // base not registered
        let r = run(&t).unwrap_err();
        assert!(r.reason.contains(BASE), "{}", r.reason);
    }

    #[test]
    fn writethrough_disks_and_vms_without_disks_are_refused() {
        let mut t = tree(&[], None);
        t.media[0].kind = "writethrough".into();
        assert!(run(&t).unwrap_err().reason.contains("writethrough"));
        let mut t = tree(&[], None);
        t.vm.attachments.clear();
        assert!(run(&t).unwrap_err().reason.contains("no hard disk"));
    }

    #[test]
    fn dvd_images_are_ignored() {
        let mut t = tree(&[], None);
        t.vm.attachments.push(Attachment {
            controller: "IDE".into(),
            port: 1,
            device: 0,
            location: "/isos/debian.iso".into(),
            image_uuid: "iso-uuid".into(),
        });
        assert_eq!(run(&t).unwrap().disks.len(), 1);
    }

    #[test]
    fn verify_accepts_the_expected_state_and_names_every_problem() {
        let t = chain(&["previous", "current"]);
        assert_eq!(verify(&t.vm, &t.media, "s1", "current", 2), Ok(()));
        let err = verify(&t.vm, &t.media, "s1", "current", 1).unwrap_err();
        assert!(err.contains("expected 1 vblaunch snapshot"), "{err}");
        let err = verify(&t.vm, &t.media, "other", "current", 2).unwrap_err();
        assert!(err.contains("instead of the one just taken"), "{err}");
        let t0 = tree(&[], None);
        let err = verify(&t0.vm, &t0.media, "s0", "current", 1).unwrap_err();
        assert!(
            err.contains("no current snapshot") && err.contains("not a differencing image"),
            "{err}"
        );
    }

    #[test]
    fn each_snapshot_on_the_path_maps_to_the_diff_after_it() {
        let t = chain(&["previous", "current"]);
        let d = path_diffs(&t.vm, &t.media).unwrap();
        assert_eq!(d.len(), 2);
        assert_eq!((d[0].0, d[0].1[0].uuid.as_str()), (0, "d0"));
        assert_eq!((d[1].0, d[1].1[0].uuid.as_str()), (1, "d1"));
        let mut broken = chain(&["previous", "current"]);
        broken.media.retain(|m| m.uuid != "d0");
        broken.media.iter_mut().for_each(|m| {
            if m.uuid == "d1" {
                m.parent = Some(BASE.into())
            }
        });
        assert!(path_diffs(&broken.vm, &broken.media).is_none());
        // A linked clone: its chain rests on another VM's images; matched from the top.
        let mut clone = chain(&["current"]);
        clone.media[0].parent = Some("source-diff".into());
        clone.media.push(medium("source-diff", Some("source-base")));
        clone.media.push(medium("source-base", None));
        let d = path_diffs(&clone.vm, &clone.media).unwrap();
        assert_eq!(d[0].1[0].uuid, "d0");
        let f = floors(&clone.vm, &clone.media);
        assert_eq!(
            (f[0].0.uuid.as_str(), f[0].1.uuid.as_str()),
            (BASE, "source-base")
        );
    }

    fn space<'a>(free: &'a dyn Fn(&Path) -> Option<u64>, margin: u64) -> Space<'a> {
        Space {
            free,
            writable: &|_| Ok(()),
            size: &|p: &Path| {
                if p.ends_with("b0000000-0000-0000-0000-000000000000.vdi") {
                    Some(1 << 30)
                } else {
                    Some(8 << 20)
                }
            },
            margin,
        }
    }

    #[test]
    fn preflight_refuses_a_merge_that_does_not_fit_with_both_numbers() {
        let t = chain(&["previous", "current"]);
        let p = plan(&t.vm, &t.media, &keep(2), &|_| true).unwrap();
        let free = |_: &Path| Some(100u64 << 20);
        assert!(
            preflight(&t.vm, &t.media, &p, &space(&free, 64 << 20), None)
                .unwrap()
                .is_empty()
        );
        let r = preflight(&t.vm, &t.media, &p, &space(&free, 200 << 20), None).unwrap_err();
        assert_eq!(r.code, Code::Refused);
        assert!(
            r.reason.contains("needs 208 MiB") && r.reason.contains("has 100 MiB free"),
            "{}",
            r.reason
        );
        assert!(
            r.reason.contains(&format!("/vms/{BASE}.vdi")),
            "{}",
            r.reason
        );
        // Two merges into the base add up (keep lowered from 3 to 1).
        let t = chain(&["previous-2", "previous", "current"]);
        let p = run(&t).unwrap();
        let free = |_: &Path| Some(20u64 << 20);
        let r = preflight(&t.vm, &t.media, &p, &space(&free, 0), None).unwrap_err();
        assert!(r.reason.contains("needs 24 MiB"), "{}", r.reason);
    }

    #[test]
    fn preflight_without_merges_or_with_unknown_space_does_not_refuse() {
        let t = tree(&[], None);
        let p = run(&t).unwrap();
        let none = |_: &Path| Some(0u64);
        assert!(preflight(&t.vm, &t.media, &p, &space(&none, 1 << 30), None).is_ok());
        let t = chain(&["current"]);
        let p = run(&t).unwrap();
        let unknown = |_: &Path| None;
        let notes = preflight(&t.vm, &t.media, &p, &space(&unknown, 0), None).unwrap();
        assert!(
            notes[0].contains("could not determine the free space"),
            "{notes:?}"
        );
    }

    #[test]
    fn preflight_refuses_a_leftover_settings_file() {
        let t = chain(&["current"]);
        let p = run(&t).unwrap();
        let free = |_: &Path| Some(u64::MAX);
        let r = preflight(
            &t.vm,
            &t.media,
            &p,
            &space(&free, 0),
            Some(Path::new("/vms/x.vbox-tmp")),
        )
        .unwrap_err();
        assert!(
            r.reason.contains("/vms/x.vbox-tmp") && r.reason.contains("doctor"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn exit_fold_merges_the_session_and_takes_nothing() {
        let t = chain(&["current"]);
        let p = plan_exit_fold(&t.vm, &t.media, &policy(), &|_| true).unwrap();
        assert_eq!(p.steps, [del(0, "current")]);
        assert_eq!(p.own_after, 0);
        let mut saved = chain(&["current"]);
        saved.vm.state = "saved".into();
        assert_eq!(
            plan_exit_fold(&saved.vm, &saved.media, &policy(), &|_| true)
                .unwrap_err()
                .code,
            Code::VmState
        );
        let e = plan_exit_fold(&t.vm, &t.media, &keep(2), &|_| true).unwrap_err();
        assert!(e.reason.contains("keep = 2"), "{}", e.reason);
        let none = tree(&[], None);
        assert!(plan_exit_fold(&none.vm, &none.media, &policy(), &|_| true).is_err());
    }

    #[test]
    fn description_carries_the_marker_and_the_time() {
        let d = description("2026-11-26T07:00:00Z");
        assert!(d.starts_with(MARKER));
        assert!(
            !d.contains('\n'),
            "a single line keeps showvminfo parsing simple"
        );
        let s = Snapshot {
            name: "x".into(),
            uuid: "u".into(),
            description: Some(d),
            node: String::new(),
            parent: None,
            children: vec![],
        };
        assert_eq!(taken_at(&s), Some("2026-11-26T07:00:00Z"));
        assert_eq!(label(0, "current"), "current");
        assert_eq!(label(1, "current"), "previous");
        assert_eq!(label(3, "current"), "previous-3");
    }
}
