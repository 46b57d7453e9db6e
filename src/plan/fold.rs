//! The fold planner: from the VM, its media and the policy, the steps of a
//! launch's fold (or of the fold after the VM shut down), the pre-flight
//! checks of those steps against the file system, and the check of what
//! VirtualBox holds afterwards. Pure: the file system is asked through
//! injected functions ([`Space`], `exists`).
//!
//! Rules:
//! - only an offline VM (poweroff, aborted, saved, aborted-saved) with no
//!   session is folded: never an online merge;
//! - every hard disk's chain must be registered, accessible, on disk, `normal`;
//! - own snapshots must lie on the path from the root to the current
//!   snapshot, and the current snapshot must be own and a leaf (or there are
//!   no own snapshots yet: the first run takes one);
//! - the order is take, rename, merge: the new snapshot exists before any
//!   restore point is folded, so a failure never loses one (own snapshots
//!   beyond `keep` left by a merge that did not complete are merged first,
//!   so that a merge that keeps failing never piles up snapshots);
//! - any other snapshot is the user's and is never merged or renamed.
use std::path::Path;

use super::{Plan, Refusal, Step};
use crate::snapshots::{current_path, description, floors, label, own_snapshots, path_diffs, show};
use crate::vbox::media::{self, Medium};
use crate::vbox::vminfo::{Snapshot, VmInfo};

pub struct Policy<'a> {
    pub snapshot_name: &'a str,
    /// How many own snapshots to keep (the current one and N-1 restore points); ≥ 1.
    pub keep: usize,
    /// Treat unmarked snapshots with vblaunch's labels on the current path as
    /// vblaunch's (made by the old launcher script, or by hand).
    pub adopt: bool,
    pub now_iso8601: &'a str,
}

impl<'a> Policy<'a> {
    /// The policy of a VM's settings (`keep` and the name as the Context
    /// decided them), taking `now` as the marker's time.
    pub fn of(eff: &'a crate::config::Effective, now: &'a str, adopt: bool) -> Policy<'a> {
        Policy {
            snapshot_name: &eff.snapshot_name,
            keep: eff.keep,
            adopt,
            now_iso8601: now,
        }
    }
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
            let medium = link.map_err(|missing| Refusal::UnknownImage {
                vm: vm.name.clone(),
                slot: att.slot(),
                missing,
            })?;
            let present = exists(&medium.location);
            if !medium.is_accessible() || !present {
                let problem =
                    crate::vbox::errors::medium_problem(medium.access_error.as_deref(), present);
                return Err(Refusal::DiskUnusable {
                    vm: vm.name.clone(),
                    path: medium.location.clone(),
                    problem: problem.medium_label(),
                    state: medium.state.to_string(),
                });
            }
            if medium.state.is_locked() {
                return Err(Refusal::DiskLocked {
                    vm: vm.name.clone(),
                    path: medium.location.clone(),
                    state: medium.state.to_string(),
                });
            }
            if !medium.is_normal() {
                return Err(Refusal::DiskNotNormal {
                    vm: vm.name.clone(),
                    path: medium.location.clone(),
                    kind: medium.kind.clone(),
                });
            }
        }
        disks.push(m.clone());
    }
    if disks.is_empty() {
        return Err(Refusal::NoHardDisk {
            vm: vm.name.clone(),
        });
    }
    Ok(disks)
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

fn not_writable(vm: &VmInfo, path: &Path, what: &'static str, why: String) -> Refusal {
    Refusal::NotWritable {
        vm: vm.name.clone(),
        path: path.to_path_buf(),
        what,
        why,
    }
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
                why,
            )
        })?;
        (space.writable)(cfg)
            .map_err(|why| not_writable(vm, cfg, "the VM's settings file", why))?;
    }
    if let Some(tmp) = leftover_settings {
        return Err(Refusal::LeftoverSettings {
            vm: vm.name.clone(),
            tmp: tmp.to_path_buf(),
        });
    }
    if plan.steps.is_empty() {
        return Ok(Vec::new());
    }
    let mut notes = Vec::new();
    let mut room = |path: &Path, need: u64, what: &'static str| -> Result<(), Refusal> {
        match (space.free)(path) {
            Some(free) if free < need => Err(Refusal::NoRoom {
                what,
                path: path.to_path_buf(),
                need,
                free,
            }),
            Some(free) => {
                log::debug!(
                    "free space {what} {}: {} free, {} needed",
                    path.display(),
                    crate::units::mib(free, 0),
                    crate::units::mib(need, 0)
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
    let takes = plan.takes();
    let deleted = plan.merged();
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
                why,
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
            return Err(Refusal::SharedTarget {
                vm: vm.name.clone(),
                target: target.location.clone(),
                target_uuid: target.uuid.clone(),
                others: others
                    .iter()
                    .map(|m| format!("{} {{{}}}", m.location.display(), m.uuid))
                    .collect::<Vec<_>>()
                    .join(", "),
            });
        }
        (space.writable)(&target.location).map_err(|why| {
            not_writable(
                vm,
                &target.location,
                "a merge writes the snapshot's data into it",
                why,
            )
        })?;
        let bytes: u64 = merged
            .iter()
            .map(|m| (space.size)(&m.location).unwrap_or(0))
            .sum();
        let required = bytes + space.margin;
        match (space.free)(&target.location) {
            Some(free) if free < required => {
                return Err(Refusal::NoRoomToMerge {
                    target: target.location.clone(),
                    need: required,
                    bytes,
                    margin: space.margin,
                    free,
                })
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
        return Err(Refusal::Inaccessible {
            uuid: vm.uuid.clone(),
        });
    }
    if !vm.state.allows_fold() {
        return Err(Refusal::NotOffline {
            vm: vm.name.clone(),
            state: vm.state.clone(),
        });
    }
    if let Some(session) = &vm.session_name {
        return Err(Refusal::OpenElsewhere {
            vm: vm.name.clone(),
            session: session.clone(),
        });
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
        return Err(Refusal::OwnOffPath {
            vm: vm.name.clone(),
            snapshot: show(&vm.snapshots[i]),
        });
    }
    let current = vm.current();
    let named: Vec<&Snapshot> = vm.snapshots.iter().filter(|s| s.name == name).collect();

    if own.is_empty() {
        // Not managed yet. A user snapshot with the managed name is ambiguous.
        if named.len() > 1 {
            return Err(Refusal::AmbiguousName {
                vm: vm.name.clone(),
                name: name.to_string(),
                snapshots: named.iter().map(|s| show(s)).collect(),
            });
        }
        if let Some(s) = named.first() {
            return Err(Refusal::NotTaken {
                vm: vm.name.clone(),
                name: name.to_string(),
                snapshot: show(s),
            });
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
            own_before: own.iter().map(|&i| vm.snapshots[i].uuid.clone()).collect(),
        });
    }

    let newest = &vm.snapshots[*own.last().expect("own is not empty")];
    let cur = current.expect("own snapshots lie on the current path");
    if cur.uuid != newest.uuid {
        return Err(Refusal::CurrentNotNewest {
            vm: vm.name.clone(),
            name: name.to_string(),
            current: show(cur),
            newest: show(newest),
            named: if named.len() > 1 {
                named.iter().map(|s| show(s)).collect()
            } else {
                Vec::new()
            },
        });
    }
    if !cur.children.is_empty() {
        return Err(Refusal::CurrentHasChildren {
            vm: vm.name.clone(),
            snapshot: show(cur),
        });
    }

    // After the take there are own.len() + 1 own snapshots; fold the oldest beyond `keep`.
    let total = own.len() + 1;
    let fold_count = total.saturating_sub(keep);
    let (folded, kept) = own.split_at(fold_count.min(own.len()));
    for &i in folded {
        let s = &vm.snapshots[i];
        if s.children.len() > 1 {
            return Err(Refusal::Branched {
                vm: vm.name.clone(),
                snapshot: show(s),
                children: s.children.len(),
            });
        }
    }
    // More own snapshots than `keep` before the take means an earlier merge
    // did not complete (or keep was lowered): merge those first, so that a
    // merge that keeps failing never adds one more snapshot per run.
    let early = own.len().saturating_sub(keep).min(folded.len());
    let delete = |i: usize| {
        let s = &vm.snapshots[i];
        Step::Merge {
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
        return Err(Refusal::ExitKeepsRestorePoints {
            vm: vm.name.clone(),
            keep: policy.keep,
        });
    }
    if !vm.state.is_shut_down() {
        return Err(Refusal::ExitNotShutDown {
            vm: vm.name.clone(),
            state: vm.state.clone(),
        });
    }
    let full = plan(vm, media, policy, exists)?;
    // Same checks as a launch; keep only the merges (no new snapshot).
    let steps: Vec<Step> = full
        .steps
        .into_iter()
        .filter(|s| matches!(s, Step::Merge { .. }))
        .collect();
    if steps.is_empty() {
        return Err(Refusal::ExitNothingToFold {
            vm: vm.name.clone(),
        });
    }
    Ok(Plan {
        steps,
        notes: vec![format!(
            "VM '{}' shut down: merging its session into the base disk(s) now.",
            vm.name
        )],
        disks: full.disks,
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
    use crate::exit::Code;
    use crate::snapshots::{taken_at, MARKER};
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
        Step::Merge {
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
        assert_eq!(p.own_after(), 1);
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
        assert_eq!(p.own_after(), 1);
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
        assert_eq!(p.own_after(), 2);
        // Steady state: previous is folded, current becomes previous.
        let t = chain(&["previous", "current"]);
        let p = plan(&t.vm, &t.media, &keep(2), &|_| true).unwrap();
        assert_eq!(
            p.steps,
            [take(), ren(1, "current", "previous"), del(0, "previous")]
        );
        assert_eq!(p.own_after(), 2);
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
        assert_eq!(p.own_after(), 4);
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
        assert_eq!(p.own_after(), 1);
    }

    #[test]
    fn a_merge_that_failed_last_time_is_completed_before_anything_is_taken() {
        // keep = 1: last run took s1 and its merge of s0 failed.
        let t = chain(&["current", "current"]);
        let p = run(&t).unwrap();
        assert_eq!(p.steps, [del(0, "current"), take(), del(1, "current")]);
        assert_eq!(p.own_after(), 1);
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
        assert_eq!(p.own_after(), 2);
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
        assert_eq!(r.code(), Code::Refused);
        match &r {
            Refusal::SharedTarget { target, others, .. } => {
                assert_eq!(target, &PathBuf::from(format!("/vms/{BASE}.vdi")));
                assert_eq!(others, "/vms/other-vm-diff.vdi {other-vm-diff}");
            }
            other => panic!("{other:?}"),
        }
        let text = r.to_string();
        assert!(
            text.contains("would not change") && text.contains("Nothing was changed"),
            "{text}"
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
                matches!(&r, Refusal::NotWritable { path, what, why, .. }
                    if path == Path::new(bad) && what.contains(says) && why == "read-only"),
                "{bad}: {r:?}"
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
            matches!(&r, Refusal::NotWritable { what, why, .. }
                if what.contains("settings file") && why == "immutable"),
            "{r:?}"
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
        // The new image (2 MiB + its block map), the settings file (8 MiB), the margin.
        assert_eq!(
            r,
            Refusal::NoRoom {
                what: "to take a snapshot in",
                path: PathBuf::from("/small/Snapshots"),
                need: (2 << 20) + 32 * 4 + (8 << 20) + TAKE_MARGIN,
                free: 12 << 20,
            }
        );
        assert!(r.to_string().contains("12 MiB free"), "{r}");
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
        assert_eq!(r.code(), Code::Refused);
        assert_eq!(
            r,
            Refusal::AmbiguousName {
                vm: "Dev Box".into(),
                name: "current".into(),
                snapshots: vec!["'current' {s0}".into(), "'current' {s1}".into()],
            }
        );
        assert!(r.to_string().contains("2 snapshots named 'current'"), "{r}");
    }

    #[test]
    fn a_user_snapshot_on_top_of_current_is_refused() {
        // Marked "current", then the user took "current" by hand (unmarked).
        let r = run(&tree(
            &[("current", None, true), ("current", Some(0), false)],
            Some(1),
        ))
        .unwrap_err();
        assert_eq!(r.code(), Code::Refused);
        assert!(
            matches!(&r, Refusal::CurrentNotNewest { current, newest, named, .. }
                if current == "'current' {s1}" && newest == "'current' {s0}" && named.len() == 2),
            "{r:?}"
        );
        assert!(
            r.to_string().contains("has 2 snapshots named 'current'"),
            "{r}"
        );
        let r = run(&tree(
            &[("current", None, true), ("mine", Some(0), false)],
            Some(1),
        ))
        .unwrap_err();
        assert!(
            matches!(&r, Refusal::CurrentNotNewest { current, named, .. }
                if current == "'mine' {s1}" && named.is_empty()),
            "{r:?}"
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
        assert!(
            matches!(&r, Refusal::OwnOffPath { snapshot, .. } if snapshot == "'current' {s1}"),
            "{r:?}"
        );
    }

    #[test]
    fn managed_current_with_children_is_refused() {
        let mut t = tree(
            &[("current", None, true), ("mine", Some(0), false)],
            Some(0),
        );
        t.vm.current_snapshot = Some("s0".into());
        let r = run(&t).unwrap_err();
        assert_eq!(
            r,
            Refusal::CurrentHasChildren {
                vm: "Dev Box".into(),
                snapshot: "'current' {s0}".into()
            }
        );
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
        assert!(
            matches!(&r, Refusal::Branched { snapshot, children: 2, .. } if snapshot == "'previous' {s0}"),
            "{r:?}"
        );
    }

    #[test]
    fn unmarked_current_is_refused_unless_adopted() {
        let t = tree(&[("current", None, false)], Some(0));
        let r = run(&t).unwrap_err();
        assert!(matches!(&r, Refusal::NotTaken { .. }), "{r:?}");
        assert!(r.to_string().contains("--adopt"), "{r}");
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
        assert!(matches!(&p.steps[1], Step::Merge { name, .. } if name == "vbl"));
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
            assert_eq!(r.code(), Code::VmState);
            assert!(
                matches!(&r, Refusal::NotOffline { state: s, .. } if s.as_str() == state),
                "{r:?}"
            );
        }
        for state in ["saved", "aborted", "aborted-saved", "poweroff"] {
            let mut t = chain(&["current"]);
            t.vm.state = state.into();
            assert!(run(&t).is_ok(), "{state}");
        }
        let mut t = tree(&[], None);
        t.vm.session_name = Some("GUI/Qt".into());
        let r = run(&t).unwrap_err();
        assert_eq!(r.code(), Code::VmState);
        assert!(matches!(&r, Refusal::OpenElsewhere { session, .. } if session == "GUI/Qt"));
    }

    #[test]
    fn an_inaccessible_vm_is_refused_by_uuid() {
        let mut t = chain(&["current"]);
        t.vm.accessible = false;
        let r = run(&t).unwrap_err();
        assert_eq!(
            r,
            Refusal::Inaccessible {
                uuid: "vm-uuid".into()
            }
        );
        assert_eq!(r.code(), Code::VmNotFound);
    }

    #[test]
    fn a_missing_diff_file_is_refused_naming_its_path() {
        let t = chain(&["current"]);
        let r = plan(&t.vm, &t.media, &policy(), &|p| !p.ends_with("d0.vdi")).unwrap_err();
        assert_eq!(r.code(), Code::Refused);
        assert!(
            matches!(&r, Refusal::DiskUnusable { path, problem, .. }
                if path == Path::new("/vms/d0.vdi") && problem.contains("MISSING")),
            "{r:?}"
        );
        let mut t = t;
        t.media[1].state = "inaccessible".into();
        let r = run(&t).unwrap_err();
        // There but unreadable is not called missing.
        assert!(
            matches!(&r, Refusal::DiskUnusable { state, problem, .. }
                if state == "inaccessible" && !problem.contains("MISSING")),
            "{r:?}"
        );
        t.media[1].access_error = Some(
            "Could not open the medium '/vms/d1.vdi'.\nVDI: invalid pre-header in '/vms/d1.vdi' (VERR_VD_VDI_INVALID_HEADER).".into(),
        );
        let r = run(&t).unwrap_err();
        assert!(
            matches!(&r, Refusal::DiskUnusable { problem, .. } if problem.starts_with("DAMAGED")),
            "{r:?}"
        );
    }

    #[test]
    fn a_disk_another_task_holds_is_refused_before_any_change() {
        for (i, state) in [(0, "locked read"), (1, "locked write")] {
            let mut t = chain(&["current"]);
            t.media[i].state = state.into();
            let r = run(&t).unwrap_err();
            assert_eq!(
                r,
                Refusal::DiskLocked {
                    vm: "Dev Box".into(),
                    path: t.media[i].location.clone(),
                    state: state.into()
                }
            );
            assert!(
                r.to_string().contains("VBoxManage showmediuminfo disk"),
                "{r}"
            );
        }
    }

    #[test]
    fn a_chain_with_an_unregistered_parent_is_refused() {
        let mut t = chain(&["current"]);
        t.media.remove(0); // base not registered
        let r = run(&t).unwrap_err();
        assert!(
            matches!(&r, Refusal::UnknownImage { missing, .. } if missing == BASE),
            "{r:?}"
        );
    }

    #[test]
    fn writethrough_disks_and_vms_without_disks_are_refused() {
        let mut t = tree(&[], None);
        t.media[0].kind = "writethrough".into();
        assert!(
            matches!(run(&t).unwrap_err(), Refusal::DiskNotNormal { kind, .. } if kind == "writethrough")
        );
        let mut t = tree(&[], None);
        t.vm.attachments.clear();
        assert!(matches!(run(&t).unwrap_err(), Refusal::NoHardDisk { .. }));
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
        assert_eq!(r.code(), Code::Refused);
        assert_eq!(
            r,
            Refusal::NoRoomToMerge {
                target: PathBuf::from(format!("/vms/{BASE}.vdi")),
                need: 208 << 20,
                bytes: 8 << 20,
                margin: 200 << 20,
                free: 100 << 20,
            }
        );
        assert!(
            r.to_string().contains("needs 208 MiB") && r.to_string().contains("has 100 MiB free"),
            "{r}"
        );
        // Two merges into the base add up (keep lowered from 3 to 1).
        let t = chain(&["previous-2", "previous", "current"]);
        let p = run(&t).unwrap();
        let free = |_: &Path| Some(20u64 << 20);
        let r = preflight(&t.vm, &t.media, &p, &space(&free, 0), None).unwrap_err();
        assert!(
            matches!(r, Refusal::NoRoomToMerge { need, .. } if need == 24 << 20),
            "{r:?}"
        );
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
        assert_eq!(
            r,
            Refusal::LeftoverSettings {
                vm: "Dev Box".into(),
                tmp: PathBuf::from("/vms/x.vbox-tmp")
            }
        );
        assert!(r.to_string().contains("doctor"), "{r}");
    }

    #[test]
    fn exit_fold_merges_the_session_and_takes_nothing() {
        let t = chain(&["current"]);
        let p = plan_exit_fold(&t.vm, &t.media, &policy(), &|_| true).unwrap();
        assert_eq!(p.steps, [del(0, "current")]);
        assert_eq!(p.own_after(), 0);
        let mut saved = chain(&["current"]);
        saved.vm.state = "saved".into();
        let e = plan_exit_fold(&saved.vm, &saved.media, &policy(), &|_| true).unwrap_err();
        assert!(matches!(e, Refusal::ExitNotShutDown { .. }), "{e:?}");
        assert_eq!(e.code(), Code::VmState);
        let e = plan_exit_fold(&t.vm, &t.media, &keep(2), &|_| true).unwrap_err();
        assert!(
            matches!(e, Refusal::ExitKeepsRestorePoints { keep: 2, .. }),
            "{e:?}"
        );
        let none = tree(&[], None);
        assert!(matches!(
            plan_exit_fold(&none.vm, &none.media, &policy(), &|_| true),
            Err(Refusal::ExitNothingToFold { .. })
        ));
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
