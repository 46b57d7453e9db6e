//! Pure planning: from what VirtualBox holds (the VM, its snapshot tree, the
//! media registry) and the policy, decide the exact steps of a run — or
//! refuse with a typed [`Refusal`] that says why and what to do. No I/O here
//! except the injected file tests, so every tree shape is tested without
//! VirtualBox. Data flows one way: `cmd/` reads the VM (`vbox`), a planner
//! here returns a [`Plan`] or a refusal, and [`crate::engine`] applies the
//! plan's [`Step`]s.
//!
//! - [`fold`]: the launch's fold (take, relabel, merge), the fold after the
//!   VM shut down, the pre-flight checks against the file system, and the
//!   check of what VirtualBox holds afterwards;
//! - [`restore`]: going back to a restore point.
//!
//! The snapshot vocabulary both use (vblaunch's marker, labels, tree
//! queries) is [`crate::snapshots`].
pub mod fold;
pub mod restore;

use std::fmt;
use std::path::PathBuf;

use crate::exit::Code;
use crate::vbox::media::Medium;
use crate::vbox::state::VmState;

pub use fold::{plan, plan_exit_fold, preflight, verify, Policy, Space};
pub use restore::{plan_restore, RestorePlan};

/// One change to a VM, addressed by UUID: every mutation vblaunch makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Take the new managed snapshot.
    Take { name: String, description: String },
    /// Relabel an own snapshot; changes no data.
    Rename {
        uuid: String,
        from: String,
        to: String,
    },
    /// Merge an own snapshot into its parent (a fold).
    Merge { uuid: String, name: String },
    /// Make a snapshot current again, discarding the current state.
    Restore { uuid: String, name: String },
    /// Delete a restore point a restore has discarded (a dead branch).
    Discard { uuid: String, name: String },
}

impl Step {
    /// The snapshot the step works on (None for a take: it has no UUID yet).
    pub fn snapshot(&self) -> Option<&str> {
        match self {
            Step::Take { .. } => None,
            Step::Rename { uuid, .. }
            | Step::Merge { uuid, .. }
            | Step::Restore { uuid, .. }
            | Step::Discard { uuid, .. } => Some(uuid),
        }
    }

    /// The snapshot this step merges into its parent (VirtualBox's `snapshot
    /// delete` writes its data into the image below): a merge, or a discard.
    pub fn merges(&self) -> Option<&str> {
        match self {
            Step::Merge { uuid, .. } | Step::Discard { uuid, .. } => Some(uuid),
            _ => None,
        }
    }
}

/// A run's steps, and what the user is told about them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Plain-language lines for the user (what will happen, user snapshots seen).
    pub notes: Vec<String>,
    /// The attached hard disks (current-state media) before the fold.
    pub disks: Vec<Medium>,
    /// The UUIDs of vblaunch's snapshots on the current path before the run
    /// (adopted ones included): what the record after the take starts from.
    pub own_before: Vec<String>,
}

impl Plan {
    /// The snapshots the plan merges into their parents, in order.
    pub fn merged(&self) -> Vec<&str> {
        self.steps.iter().filter_map(Step::merges).collect()
    }

    pub fn takes(&self) -> bool {
        self.steps.iter().any(|s| matches!(s, Step::Take { .. }))
    }

    /// How many own snapshots the VM will have afterwards: those it had,
    /// plus the one taken, less those merged.
    pub fn own_after(&self) -> usize {
        (self.own_before.len() + usize::from(self.takes())).saturating_sub(self.merged().len())
    }
}

/// `'<name>' {<uuid>}`: how messages name a snapshot.
pub type Shown = String;

/// Why a planner changes nothing. [`Refusal::code`] is the exit code;
/// `Display` is the message: what is wrong, why vblaunch stops, what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// VirtualBox cannot read the VM's settings.
    Inaccessible {
        uuid: String,
    },
    /// Running, paused, starting, …: never an online merge.
    NotOffline {
        vm: String,
        state: VmState,
    },
    /// A process holds the VM's session lock.
    OpenElsewhere {
        vm: String,
        session: String,
    },
    /// A disk's chain names an image VirtualBox does not know.
    UnknownImage {
        vm: String,
        slot: String,
        missing: String,
    },
    /// A disk image is missing, damaged or inaccessible.
    DiskUnusable {
        vm: String,
        path: PathBuf,
        problem: &'static str,
        state: String,
    },
    /// Another task has a disk image locked.
    DiskLocked {
        vm: String,
        path: PathBuf,
        state: String,
    },
    /// Writethrough, shareable, immutable…: snapshots do not freeze it.
    DiskNotNormal {
        vm: String,
        path: PathBuf,
        kind: String,
    },
    NoHardDisk {
        vm: String,
    },
    /// VirtualBox could not write where a step writes.
    NotWritable {
        vm: String,
        path: PathBuf,
        what: &'static str,
        why: String,
    },
    /// VirtualBox left `<vm>.vbox-tmp` behind.
    LeftoverSettings {
        vm: String,
        tmp: PathBuf,
    },
    /// Too little free space for a take or the settings file.
    NoRoom {
        what: &'static str,
        path: PathBuf,
        need: u64,
        free: u64,
    },
    /// Too little free space for a merge.
    NoRoomToMerge {
        target: PathBuf,
        need: u64,
        bytes: u64,
        margin: u64,
        free: u64,
    },
    /// The merge target has another child (another VM, a linked clone).
    SharedTarget {
        vm: String,
        target: PathBuf,
        target_uuid: String,
        others: String,
    },
    /// An own snapshot is off the path to the current state.
    OwnOffPath {
        vm: String,
        snapshot: Shown,
    },
    /// Several snapshots carry the managed name and none is vblaunch's.
    AmbiguousName {
        vm: String,
        name: String,
        snapshots: Vec<Shown>,
    },
    /// A snapshot with the managed name that vblaunch did not take.
    NotTaken {
        vm: String,
        name: String,
        snapshot: Shown,
    },
    /// The current snapshot is not vblaunch's newest.
    CurrentNotNewest {
        vm: String,
        name: String,
        current: Shown,
        newest: Shown,
        /// The snapshots with the managed name, when there are several.
        named: Vec<Shown>,
    },
    CurrentHasChildren {
        vm: String,
        snapshot: Shown,
    },
    /// An own snapshot to merge has several children.
    Branched {
        vm: String,
        snapshot: Shown,
        children: usize,
    },
    /// fold_on_exit with restore points: folded at a later launch.
    ExitKeepsRestorePoints {
        vm: String,
        keep: usize,
    },
    /// fold_on_exit after a save instead of a shutdown.
    ExitNotShutDown {
        vm: String,
        state: VmState,
    },
    ExitNothingToFold {
        vm: String,
    },
    /// A restore needs the VM powered off.
    RestoreNotOff {
        vm: String,
        state: VmState,
        session: Option<String>,
    },
    NoRestorePoints {
        vm: String,
    },
    /// A restore starts from vblaunch's newest snapshot only.
    RestoreCurrentNotNewest {
        vm: String,
        newest: Shown,
    },
    /// An own snapshot on another branch.
    OwnOnBranch {
        vm: String,
        snapshot: Shown,
    },
    /// A user snapshot below vblaunch's newest one.
    UserSnapshotBelow {
        snapshot: Shown,
    },
    /// A user snapshot newer than the restore point.
    UserSnapshotNewer {
        snapshot: Shown,
    },
    /// `--to` names no restore point; `points` lists them.
    NoSuchRestorePoint {
        vm: String,
        to: String,
        points: Vec<String>,
    },
}

impl Refusal {
    pub fn code(&self) -> Code {
        use Refusal::*;
        match self {
            Inaccessible { .. } => Code::VmNotFound,
            NotOffline { .. }
            | OpenElsewhere { .. }
            | ExitNotShutDown { .. }
            | RestoreNotOff { .. } => Code::VmState,
            NoSuchRestorePoint { .. } => Code::Usage,
            _ => Code::Refused,
        }
    }
}

fn mib(b: u64) -> String {
    crate::units::mib(b, 0)
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use Refusal::*;
        const AGAIN: &str = "then run vblaunch again. Nothing was changed.";
        match self {
            Inaccessible { uuid } => write!(
                f,
                "VM {uuid} is inaccessible: VirtualBox cannot read its settings. Run `vblaunch \
                 doctor {uuid}` to see why and what restores it. Nothing was changed."
            ),
            NotOffline { vm, state } => write!(
                f,
                "VM '{vm}' is {} (state: {state}). vblaunch only folds a VM that is powered off, \
                 saved or aborted; it never merges snapshots of a running VM. Shut the VM down or \
                 save its state, {AGAIN}",
                state.doing()
            ),
            OpenElsewhere { vm, session } => write!(
                f,
                "VM '{vm}' is open in another program (session '{session}'): a VirtualBox window, \
                 VBoxManage or a front end holds its lock. Close it and run vblaunch again. \
                 Nothing was changed."
            ),
            UnknownImage { vm, slot, missing } => write!(
                f,
                "The disk in slot {slot} of VM '{vm}' depends on a disk image {{{missing}}} that \
                 VirtualBox does not know (not in its media registry). Put the missing .vdi back \
                 (from your backup) and run vblaunch again. Nothing was changed."
            ),
            DiskUnusable {
                vm,
                path,
                problem,
                state,
            } => write!(
                f,
                "Disk image {} of VM '{vm}' is {problem} (VirtualBox state: {state}). Merging \
                 snapshots now could lose data. Restore that file from your backup to exactly \
                 that path, {AGAIN}",
                path.display()
            ),
            DiskLocked { vm, path, state } => write!(
                f,
                "Disk image {} of VM '{vm}' is in use by another task (VirtualBox lists it \
                 '{state}'): a clone or export, a merge VirtualBox is still running, or a program \
                 reading the disk. A merge now would fail half-way. Let that task finish (or \
                 close the program using the disk; `VBoxManage showmediuminfo disk {}` shows the \
                 disk's state), {AGAIN}",
                path.display(),
                crate::process::quote(&path.to_string_lossy())
            ),
            DiskNotNormal { vm, path, kind } => write!(
                f,
                "Disk {} of VM '{vm}' is of type '{kind}'. Snapshots do not freeze such a disk, so \
                 vblaunch cannot make it safe to back up. Change it to 'normal' in the VirtualBox \
                 Media Manager, or detach it. Nothing was changed.",
                path.display()
            ),
            NoHardDisk { vm } => write!(
                f,
                "VM '{vm}' has no hard disk attached, so there is nothing to keep safe for \
                 backups. Start it from VirtualBox directly. Nothing was changed."
            ),
            NotWritable {
                vm,
                path,
                what,
                why,
            } => write!(
                f,
                "VirtualBox cannot write {} ({what}): {why}. Changing VM '{vm}' now would fail \
                 half-way. Make it writable (its owner and permissions, a read-only or immutable \
                 flag, or a disk mounted read-only), {AGAIN}",
                path.display()
            ),
            LeftoverSettings { vm, tmp } => write!(
                f,
                "VirtualBox left a new settings file {} behind that it never put in place (an \
                 interrupted or failed save). Changing snapshots now could make it the VM's \
                 settings. Run `vblaunch doctor \"{vm}\" --fix` to move it aside safely, {AGAIN}",
                tmp.display()
            ),
            NoRoom {
                what,
                path,
                need,
                free,
            } => write!(
                f,
                "Not enough free space {what} {}: it needs {} but its volume has {} free. Free \
                 space on that disk (or lower merge_free_space_margin_mb in the config for \
                 merges), {AGAIN}",
                path.display(),
                mib(*need),
                mib(*free)
            ),
            NoRoomToMerge {
                target,
                need,
                bytes,
                margin,
                free,
            } => write!(
                f,
                "Not enough free space to merge into {}: it needs {} (the differencing data {} \
                 plus a safety margin of {}) but its volume has {} free. Free space on that disk \
                 (or lower merge_free_space_margin_mb in the config), {AGAIN}",
                target.display(),
                mib(*need),
                mib(*bytes),
                mib(*margin),
                mib(*free)
            ),
            SharedTarget {
                vm,
                target,
                target_uuid,
                others,
            } => write!(
                f,
                "Disk image {} {{{target_uuid}}}, which the fold of VM '{vm}' would merge into, \
                 has another child image: {others}. It is shared (another VM, or a linked clone, \
                 is built on it), so VirtualBox would merge the other way, into the snapshot's \
                 image, and {} would not change: a backup of it would miss this VM's work. \
                 vblaunch will not fold this VM while the image is shared. `VBoxManage \
                 showmediuminfo disk {}` names the VMs using it; give each VM its own copy of the \
                 disk (VBoxManage clonemedium) or release the other VM, {AGAIN}",
                target.display(),
                target.display(),
                crate::process::quote(&target.to_string_lossy())
            ),
            OwnOffPath { vm, snapshot } => write!(
                f,
                "vblaunch's snapshot {snapshot} of VM '{vm}' is not on the path to the VM's \
                 current state (the VM was probably restored to another snapshot). vblaunch will \
                 not guess which state to keep. Restore the VM to its newest vblaunch snapshot, \
                 or delete the branch you do not need, in the VirtualBox Manager; {AGAIN}"
            ),
            AmbiguousName {
                vm,
                name,
                snapshots,
            } => write!(
                f,
                "VM '{vm}' has {} snapshots named '{name}': {}. vblaunch cannot tell which one it \
                 manages and will not guess. Rename or delete the extra ones in the VirtualBox \
                 Manager (Snapshots tab), {AGAIN}",
                snapshots.len(),
                snapshots.join(", ")
            ),
            NotTaken { vm, name, snapshot } => write!(
                f,
                "Snapshot {snapshot} of VM '{vm}' was not taken by vblaunch (its description \
                 lacks vblaunch's marker), and vblaunch never deletes a snapshot it did not make. \
                 If it is the '{name}' of your old launcher script and may be merged into its \
                 parent, run vblaunch once with --adopt. Otherwise rename it in the VirtualBox \
                 Manager (or set another snapshot_name in the config). Nothing was changed."
            ),
            CurrentNotNewest {
                vm,
                name,
                current,
                newest,
                named,
            } => {
                if named.len() > 1 {
                    write!(
                        f,
                        "VM '{vm}' has {} snapshots named '{name}' ({}). ",
                        named.len(),
                        named.join(", ")
                    )?;
                }
                write!(
                    f,
                    "The current snapshot of VM '{vm}' is {current}, which vblaunch did not take; \
                     its newest own snapshot is {newest}. The VM was probably restored to another \
                     snapshot, or a snapshot was taken by hand after the last launch. vblaunch \
                     will not guess which state to keep. In the VirtualBox Manager, delete or \
                     restore snapshots until {newest} is the current one, {AGAIN}"
                )
            }
            CurrentHasChildren { vm, snapshot } => write!(
                f,
                "Snapshot {snapshot} of VM '{vm}' has child snapshots; folding it would merge into \
                 your snapshots. Move or delete those children in the VirtualBox Manager, {AGAIN}"
            ),
            Branched {
                vm,
                snapshot,
                children,
            } => write!(
                f,
                "vblaunch's snapshot {snapshot} of VM '{vm}' has {children} child snapshots (a \
                 branch); VirtualBox cannot merge it. Delete the branch you do not need in the \
                 VirtualBox Manager, {AGAIN}"
            ),
            ExitKeepsRestorePoints { vm, keep } => write!(
                f,
                "fold_on_exit is skipped for VM '{vm}': with keep = {keep} the session stays a \
                 restore point and is folded at a later launch."
            ),
            ExitNotShutDown { vm, state } => write!(
                f,
                "VM '{vm}' was not shut down (state: {state}); a saved session is folded at the \
                 next launch instead."
            ),
            ExitNothingToFold { vm } => write!(
                f,
                "VM '{vm}' has no vblaunch snapshot to fold on exit (it was merged or deleted \
                 while the VM ran). `vblaunch status \"{vm}\"` shows what the VM holds; the next \
                 launch takes a fresh snapshot. Nothing was changed."
            ),
            RestoreNotOff { vm, state, session } => {
                let extra = if state.has_saved_state() {
                    " It has a saved state, which a restore would throw away: start it and shut \
                     it down, or discard the saved state in VirtualBox first."
                } else {
                    " Shut it down first."
                };
                write!(
                    f,
                    "VM '{vm}' must be powered off to restore it (state: {state}{}).{extra} \
                     Nothing was changed.",
                    session
                        .as_deref()
                        .map(|s| format!(", open in '{s}'"))
                        .unwrap_or_default()
                )
            }
            NoRestorePoints { vm } => write!(
                f,
                "VM '{vm}' has no vblaunch restore points. Nothing was changed."
            ),
            RestoreCurrentNotNewest { vm, newest } => write!(
                f,
                "The current snapshot of VM '{vm}' is not vblaunch's newest one ({newest}); \
                 vblaunch will not guess. Use the VirtualBox Manager. Nothing was changed."
            ),
            OwnOnBranch { vm, snapshot } => write!(
                f,
                "vblaunch's snapshot {snapshot} of VM '{vm}' is on another branch; vblaunch will \
                 not guess. Use the VirtualBox Manager. Nothing was changed."
            ),
            UserSnapshotBelow { snapshot } => write!(
                f,
                "Your snapshot {snapshot} depends on vblaunch's newest snapshot; restoring would \
                 mean deleting it, and vblaunch never deletes your snapshots. Nothing was changed."
            ),
            UserSnapshotNewer { snapshot } => write!(
                f,
                "Your snapshot {snapshot} is newer than that restore point; restoring would mean \
                 deleting it, and vblaunch never deletes your snapshots. Nothing was changed."
            ),
            NoSuchRestorePoint { vm, to, points } => write!(
                f,
                "VM '{vm}' has no restore point '{to}'. Its restore points are:\n{}",
                points.join("\n")
            ),
        }
    }
}

/// A refusal ends the run with its exit code (`?` on a planner's result).
/// Not a `std::error::Error`, so it can never reach anyhow without its code.
impl From<Refusal> for anyhow::Error {
    fn from(r: Refusal) -> anyhow::Error {
        crate::exit::fail(r.code(), r.to_string())
    }
}
