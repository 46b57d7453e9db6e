//! `snapshot <vm> take|delete|restore|restorecurrent|edit|list`: the snapshot
//! tree and the differencing media under it. A take freezes the current
//! attachments and gives the VM new differencing media; a delete merges each
//! frozen medium with its one child, in the direction VirtualBox picks, after
//! planning every merge (a task that fails changes nothing); a restore drops
//! the current state's own media and starts new ones on the snapshot's.

use std::fs;

use anyhow::Result;

use super::media::{
    could_not_open, create_empty_medium, missing_file, missing_in_chain, written_size,
};
use super::{
    err, find_vm, is_offline_stable, long_state, lookup_vm, parse, s, strip_braces, Lookup, Site,
    D_INVALID_VM_STATE, D_SESSION_NOT_FOUND,
};
use crate::info;
use crate::model::{self, is_uuid, new_uuid, now_stamp, Attachment, Medium, Snapshot, State, Vm};
use crate::{unsupported, Out, PROGRESS};

const SNAPSHOT: Site = Site {
    find: "\"FindMachine(bstrMachine.raw(), pMachine.asOutParam())\" at line 344 of file VBoxManageSnapshot.cpp",
    lock: "\"LockMachine(a->session, LockType_Shared)\" at line 350 of file VBoxManageSnapshot.cpp",
};

const D_INVALID_OBJ_STATE: &str =
    "Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component SessionMachine, interface IMachine, callee nsISupports";
const SNAP_FIND_ARGV2: &str =
    "Context: \"FindSnapshot(Bstr(a->argv[2]).raw(), pSnapshot.asOutParam())\" at line 537 of file VBoxManageSnapshot.cpp";
const SNAP_FIND_EDIT: &str =
    "Context: \"FindSnapshot(Bstr(Value.psz).raw(), pSnapshot.asOutParam())\" at line 618 of file VBoxManageSnapshot.cpp";
const SNAP_DELETE_CTX: &str =
    "Context: \"DeleteSnapshot(bstrSnapGuid.raw(), pProgress.asOutParam())\" at line 554 of file VBoxManageSnapshot.cpp";
const SNAP_TASK_DELETE_CTX: &str =
    "Context: \"RTEXITCODE handleSnapshot(HandlerArg*)\" at line 564 of file VBoxManageSnapshot.cpp";
const SNAP_TASK_TAKE_CTX: &str =
    "Context: \"RTEXITCODE handleSnapshot(HandlerArg*)\" at line 495 of file VBoxManageSnapshot.cpp";
const SNAP_TAKE_CTX: &str = "Context: \"TakeSnapshot(Bstr(pszName).raw(), Bstr(pszDescription).raw(), fPause, bstrSnapshotId.asOutParam(), progress.asOutParam())\" at line 484 of file VBoxManageSnapshot.cpp";
const SNAP_RESTORE_CTX: &str =
    "Context: \"RestoreSnapshot(pSnapshot, pProgress.asOutParam())\" at line 593 of file VBoxManageSnapshot.cpp";
const SNAP_TASK_RESTORE_CTX: &str =
    "Context: \"RTEXITCODE handleSnapshot(HandlerArg*)\" at line 603 of file VBoxManageSnapshot.cpp";

const D_SESSION_FAILURE: &str =
    "Details: code NS_ERROR_FAILURE (0x80004005), component SessionMachine, interface IMachine";

/// A snapshot by uuid, else the first name match depth-first.
fn find_snapshot(vm: &Vm, arg: &str, context: &str) -> Result<usize, Out> {
    let u = strip_braces(arg);
    if is_uuid(u) {
        return vm
            .snapshots
            .iter()
            .position(|s| s.uuid.eq_ignore_ascii_case(u))
            .ok_or_else(|| {
                err(vec![
                    format!("Could not find a snapshot with UUID {{{u}}}"),
                    s("Details: code NS_ERROR_FAILURE (0x80004005), component SessionMachine, interface IMachine, callee nsISupports"),
                    s(context),
                ])
            });
    }
    vm.dfs()
        .into_iter()
        .map(|(i, _)| i)
        .find(|&i| vm.snapshots[i].name == arg)
        .ok_or_else(|| {
            err(vec![
                format!("Could not find a snapshot named '{arg}'"),
                s(D_SESSION_NOT_FOUND),
                s(context),
            ])
        })
}

/// The stdout line a `snapshot <vm> delete|restore <snap>` prints before acting.
pub fn deleting_line(st: &State, args: &[String]) -> Option<String> {
    if args.first().map(String::as_str) != Some("snapshot") {
        return None;
    }
    let vm = match lookup_vm(st, args.get(1)?) {
        Lookup::Found(i) => &st.vms[i],
        _ => return None,
    };
    let verb = match args.get(2)?.as_str() {
        "delete" => "Deleting",
        "restore" => "Restoring",
        _ => return None,
    };
    let si = find_snapshot(vm, args.get(3)?, "").ok()?;
    Some(announce(verb, &vm.snapshots[si]))
}

/// `<verb> snapshot 'NAME' (UUID)`: what a delete or a restore prints first,
/// whether it then fails or not.
fn announce(verb: &str, snap: &Snapshot) -> String {
    format!("{verb} snapshot '{}' ({})\n", snap.name, snap.uuid)
}

fn is_transient(state: &str) -> bool {
    matches!(
        state,
        "teleporting"
            | "livesnapshotting"
            | "starting"
            | "stopping"
            | "saving"
            | "restoring"
            | "teleportingpausedvm"
            | "teleportingin"
            | "deletingsnapshotlive"
            | "deletingsnapshotlivepaused"
            | "onlinesnapshotting"
            | "restoringsnapshot"
            | "deletingsnapshot"
            | "settingup"
            | "snapshotting"
    )
}

/// Why a machine in `state` cannot `what` ("take a snapshot", "delete a
/// snapshot"): it is changing state, or it is neither off nor running.
fn state_refusal(state: &str, what: &str) -> Option<String> {
    if is_transient(state) {
        Some(format!(
            "Cannot {what} of the machine while it is changing the state (machine state: {})",
            long_state(state)
        ))
    } else if !is_offline_stable(state) && !matches!(state, "running" | "paused") {
        Some(format!("Invalid machine state: {}", long_state(state)))
    } else {
        None
    }
}

/// A snapshot task that failed once started: its progress ends at 0% with
/// the error, then `head`, the `cause` and the task's `context` line.
fn task_failed(mut out: Out, head: &str, cause: Vec<String>, context: &str) -> Out {
    out.err("0%...NS_ERROR_FAILURE\n");
    let mut lines = vec![s(head)];
    lines.extend(cause);
    lines.push(s(context));
    out.vbox_error(&lines)
}

/// New empty differencing media in the VM's snapshot folder, one on top of
/// each of `on`'s media: the attachments of a current state that starts there.
fn new_diffs(st: &mut State, vi: usize, on: &[Attachment]) -> Result<Vec<Attachment>> {
    let snap_fldr = st.vms[vi].snap_fldr();
    fs::create_dir_all(&snap_fldr)?;
    let mut atts = Vec::new();
    for a in on {
        let diff = new_uuid();
        let loc = format!("{snap_fldr}/{{{diff}}}.vdi");
        create_empty_medium(&loc)?;
        let cap = st.medium(&a.medium).map(|m| m.capacity_mb).unwrap_or(0);
        st.media.push(Medium {
            uuid: diff.clone(),
            parent: Some(a.medium.clone()),
            location: loc,
            capacity_mb: cap,
        });
        atts.push(Attachment {
            medium: diff,
            ..a.clone()
        });
    }
    Ok(atts)
}

pub(super) fn snapshot(st: &mut State, args: &[String]) -> Result<Out> {
    let (Some(vmarg), Some(sub)) = (args.first(), args.get(1)) else {
        return Ok(unsupported("snapshot without <vm> <subcommand>"));
    };
    let rest = &args[2..];
    if !matches!(
        sub.as_str(),
        "take" | "delete" | "restore" | "restorecurrent" | "edit" | "list"
    ) {
        return Ok(unsupported(&format!("snapshot subcommand {sub:?}")));
    }
    let vi = match find_vm(st, vmarg, &SNAPSHOT) {
        Ok(i) => i,
        Err(o) => return Ok(o),
    };
    match sub.as_str() {
        "take" => snap_take(st, vi, rest),
        "delete" => match rest {
            [target] => snap_delete(st, vi, target),
            _ => Ok(unsupported("snapshot delete needs exactly one snapshot")),
        },
        "restore" => match rest {
            [target] => {
                let si = match find_snapshot(&st.vms[vi], target, SNAP_FIND_ARGV2) {
                    Ok(i) => i,
                    Err(o) => return Ok(o),
                };
                snap_restore(st, vi, si)
            }
            _ => Ok(unsupported("snapshot restore needs exactly one snapshot")),
        },
        "restorecurrent" => {
            if !rest.is_empty() {
                return Ok(unsupported("snapshot restorecurrent takes no arguments"));
            }
            let cur = st.vms[vi].current_snapshot.clone();
            match cur.and_then(|c| st.vms[vi].snapshot_idx(&c)) {
                Some(si) => snap_restore(st, vi, si),
                None => Ok(err(vec![s("Could not find a current snapshot")])),
            }
        }
        "edit" => Ok(snap_edit(st, vi, rest)),
        "list" => Ok(snap_list(&st.vms[vi], rest)),
        _ => unreachable!(),
    }
}

fn snap_list(vm: &Vm, args: &[String]) -> Out {
    let p = match parse(args, &[], &["--machinereadable"]) {
        Ok(p) => p,
        Err(o) => return o,
    };
    if !p.has("--machinereadable") || !p.pos.is_empty() {
        return unsupported("snapshot list without --machinereadable");
    }
    let mut out = Out::ok();
    if vm.snapshots.is_empty() {
        out.out("This machine does not have any snapshots\n");
        out.code = 1;
    } else {
        out.out(&info::snapshot_lines(vm));
    }
    out
}

fn snap_take(st: &mut State, vi: usize, args: &[String]) -> Result<Out> {
    let p = match parse(args, &["--description"], &["--live", "--pause"]) {
        Ok(p) => p,
        Err(o) => return Ok(o),
    };
    let [name] = p.pos.as_slice() else {
        return Ok(unsupported("snapshot take needs exactly one name"));
    };
    let vm = &st.vms[vi];
    if let Some(msg) = state_refusal(&vm.state, "take a snapshot") {
        return Ok(err(vec![msg, s(D_INVALID_VM_STATE), s(SNAP_TAKE_CTX)]));
    }
    if let Some(missing) = missing_file(st, &vm.attachments) {
        return Ok(task_failed(
            Out::ok(),
            "Failed to take snapshot",
            could_not_open(&missing),
            SNAP_TASK_TAKE_CTX,
        ));
    }
    let snap_uuid = new_uuid();
    let frozen = vm.attachments.clone();
    let new_atts = new_diffs(st, vi, &frozen)?;
    let vm = &mut st.vms[vi];
    vm.snapshots.push(Snapshot {
        uuid: snap_uuid.clone(),
        name: name.clone(),
        description: p.get("--description").unwrap_or("").to_string(),
        parent: vm.current_snapshot.clone(),
        state_file: vm.state_file.clone(),
        attachments: frozen,
    });
    vm.attachments = new_atts;
    vm.current_snapshot = Some(snap_uuid.clone());
    vm.state_change = now_stamp();
    let mut out = Out::ok();
    out.out(&format!("Snapshot taken. UUID: {snap_uuid}\n"));
    out.err(PROGRESS);
    Ok(out)
}

// ---------------------------------------------------------------------------
// snapshot delete: refuse, plan every merge, carry them out, unlink

/// One step of a snapshot delete, for one medium the snapshot froze.
enum MergePlan {
    /// Merge `child` and `parent`; `backward` keeps the parent.
    Merge {
        parent: String,
        child: String,
        backward: bool,
    },
    /// A differencing medium without children: just delete it.
    Delete(String),
}

fn snap_delete(st: &mut State, vi: usize, target: &str) -> Result<Out> {
    let si = match find_snapshot(&st.vms[vi], target, SNAP_FIND_ARGV2) {
        Ok(i) => i,
        Err(o) => return Ok(o),
    };
    let snap = st.vms[vi].snapshots[si].clone();
    let mut out = Out::ok();
    out.out(&announce("Deleting", &snap));
    if let Some(lines) = delete_refusal(&st.vms[vi], &snap) {
        return Ok(out.vbox_error(&lines));
    }
    // Plan every merge before changing anything (the task fails as a whole).
    let plans = match merge_plans(st, &snap) {
        Ok(plans) => plans,
        Err(cause) => {
            return Ok(task_failed(
                out,
                "Snapshot operation failed",
                cause,
                SNAP_TASK_DELETE_CTX,
            ))
        }
    };
    for plan in plans {
        carry_out(st, plan)?;
    }
    let vm = &mut st.vms[vi];
    unlink(vm, &snap);
    vm.state_change = now_stamp();
    out.err(PROGRESS);
    Ok(out)
}

/// Why VirtualBox will not start deleting `snap`: the machine's state, or
/// the snapshot's children (more than one, or one under the current snapshot).
fn delete_refusal(vm: &Vm, snap: &Snapshot) -> Option<Vec<String>> {
    if let Some(msg) = state_refusal(&vm.state, "delete a snapshot") {
        return Some(vec![msg, s(D_INVALID_VM_STATE), s(SNAP_DELETE_CTX)]);
    }
    let kids = vm.children(Some(&snap.uuid)).len();
    let msg = if kids > 1 {
        format!(
            "Snapshot '{}' of the machine '{}' cannot be deleted, because it has {} child snapshots, which is more than the one snapshot allowed for deletion",
            snap.name, vm.name, kids
        )
    } else if kids == 1 && vm.current_snapshot.as_deref() == Some(snap.uuid.as_str()) {
        format!(
            "Snapshot '{}' of the machine '{}' cannot be deleted, because it is the current snapshot and has one child snapshot",
            snap.name, vm.name
        )
    } else {
        return None;
    };
    Some(vec![msg, s(D_INVALID_OBJ_STATE), s(SNAP_DELETE_CTX)])
}

/// A step for each medium `snap` froze, or the cause the task fails with
/// (its child's chain misses a file, or it has more than one child).
fn merge_plans(st: &State, snap: &Snapshot) -> Result<Vec<MergePlan>, Vec<String>> {
    let mut plans = Vec::new();
    for a in &snap.attachments {
        let Some(p) = st.medium(&a.medium) else {
            continue;
        };
        match st.children_of(&p.uuid).as_slice() {
            [] => {
                if p.parent.is_some() {
                    plans.push(MergePlan::Delete(p.uuid.clone()));
                }
            }
            [c] => {
                let c = &st.media[*c];
                if let Some(missing) = missing_in_chain(st, &c.uuid) {
                    let mut cause = vec![
                        format!(
                            "Cannot lock hard disk '{}' when deleting a snapshot",
                            p.location
                        ),
                        s(D_SESSION_FAILURE),
                        s("--------"),
                    ];
                    cause.extend(could_not_open(&missing));
                    return Err(cause);
                }
                // Medium::i_queryPreferredMergeDirection: a base always takes
                // its child back; otherwise merge the smaller into the larger
                // (equal sizes: forward, the child survives).
                let backward =
                    p.parent.is_none() || written_size(&p.location) > written_size(&c.location);
                plans.push(MergePlan::Merge {
                    parent: p.uuid.clone(),
                    child: c.uuid.clone(),
                    backward,
                });
            }
            many => {
                return Err(vec![
                    format!(
                        "Hard disk '{}' has more than one child hard disk ({})",
                        p.location,
                        many.len()
                    ),
                    s(D_SESSION_FAILURE),
                ]);
            }
        }
    }
    Ok(plans)
}

/// One step on the media registry and the medium files: the merged medium
/// holds both media's bytes and takes the other's place (references, parent).
fn carry_out(st: &mut State, plan: MergePlan) -> Result<()> {
    match plan {
        MergePlan::Delete(u) => {
            if let Some(i) = st.medium_idx(&u) {
                let _ = fs::remove_file(&st.media[i].location);
                st.media.remove(i);
            }
        }
        MergePlan::Merge {
            parent,
            child,
            backward,
        } => {
            let (Some(pi), Some(ci)) = (st.medium_idx(&parent), st.medium_idx(&child)) else {
                return Ok(());
            };
            let ploc = st.media[pi].location.clone();
            let cloc = st.media[ci].location.clone();
            let mut blocks = model::read_blocks(&ploc)?;
            blocks.extend(model::read_blocks(&cloc)?);
            if backward {
                model::write_blocks(&ploc, &blocks)?;
                let _ = fs::remove_file(&cloc);
                for m in st.media.iter_mut() {
                    if m.parent.as_deref() == Some(child.as_str()) {
                        m.parent = Some(parent.clone());
                    }
                }
                st.media.retain(|m| m.uuid != child);
                st.replace_medium_refs(&child, &parent);
            } else {
                model::write_blocks(&cloc, &blocks)?;
                let _ = fs::remove_file(&ploc);
                let grand = st.media[pi].parent.clone();
                st.media[ci].parent = grand;
                st.media.retain(|m| m.uuid != parent);
                st.replace_medium_refs(&parent, &child);
            }
        }
    }
    Ok(())
}

/// Takes `snap` out of the VM's tree: its children move to the end of its
/// parent's list, and its parent becomes current if it was.
fn unlink(vm: &mut Vm, snap: &Snapshot) {
    let idx = vm.snapshot_idx(&snap.uuid).expect("snapshot still there");
    vm.snapshots.remove(idx);
    let mut moved = Vec::new();
    let mut k = 0;
    while k < vm.snapshots.len() {
        if vm.snapshots[k].parent.as_deref() == Some(snap.uuid.as_str()) {
            let mut c = vm.snapshots.remove(k);
            c.parent = snap.parent.clone();
            moved.push(c);
        } else {
            k += 1;
        }
    }
    vm.snapshots.extend(moved);
    if vm.current_snapshot.as_deref() == Some(snap.uuid.as_str()) {
        vm.current_snapshot = snap.parent.clone();
    }
}

// ---------------------------------------------------------------------------

fn snap_restore(st: &mut State, vi: usize, si: usize) -> Result<Out> {
    let vm = &st.vms[vi];
    let snap = vm.snapshots[si].clone();
    let mut out = Out::ok();
    out.out(&announce("Restoring", &snap));
    if !is_offline_stable(&vm.state) {
        return Ok(out.vbox_error(&[
            format!(
                "Cannot delete the current state of the running machine (machine state: {})",
                long_state(&vm.state)
            ),
            s(D_INVALID_VM_STATE),
            s(SNAP_RESTORE_CTX),
        ]));
    }
    if let Some(missing) = missing_file(st, &snap.attachments) {
        return Ok(task_failed(
            out,
            "Snapshot operation failed",
            could_not_open(&missing),
            SNAP_TASK_RESTORE_CTX,
        ));
    }
    // Discard the current state's own differencing media.
    let referenced_by_snapshots: Vec<String> = st
        .vms
        .iter()
        .flat_map(|v| v.snapshots.iter())
        .flat_map(|s| s.attachments.iter().map(|a| a.medium.clone()))
        .collect();
    for a in vm.attachments.clone() {
        let Some(mi) = st.medium_idx(&a.medium) else {
            continue;
        };
        if st.media[mi].parent.is_some()
            && st.children_of(&a.medium).is_empty()
            && !referenced_by_snapshots.contains(&a.medium)
        {
            let _ = fs::remove_file(&st.media[mi].location);
            st.media.remove(mi);
        }
    }
    let new_atts = new_diffs(st, vi, &snap.attachments)?;
    let vm = &mut st.vms[vi];
    if let Some(f) = vm.state_file.take() {
        if snap.state_file.as_deref() != Some(f.as_str()) {
            let _ = fs::remove_file(f);
        }
    }
    vm.attachments = new_atts;
    vm.current_snapshot = Some(snap.uuid.clone());
    match &snap.state_file {
        Some(f) => {
            vm.state = s("saved");
            vm.state_file = Some(f.clone());
        }
        None => vm.state = s("poweroff"),
    }
    vm.state_change = now_stamp();
    out.err(PROGRESS);
    Ok(out)
}

fn snap_edit(st: &mut State, vi: usize, args: &[String]) -> Out {
    let p = match parse(args, &["--name", "--description"], &["--current"]) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let vm = &st.vms[vi];
    let si = if p.has("--current") {
        if !p.pos.is_empty() {
            return unsupported("snapshot edit with both --current and a snapshot");
        }
        match vm
            .current_snapshot
            .as_deref()
            .and_then(|c| vm.snapshot_idx(c))
        {
            Some(i) => i,
            None => return err(vec![s("Could not find a current snapshot")]),
        }
    } else {
        let [target] = p.pos.as_slice() else {
            return unsupported("snapshot edit needs one snapshot or --current");
        };
        match find_snapshot(vm, target, SNAP_FIND_EDIT) {
            Ok(i) => i,
            Err(o) => return o,
        }
    };
    let snap = &mut st.vms[vi].snapshots[si];
    if let Some(n) = p.get("--name") {
        snap.name = n.to_string();
    }
    if let Some(d) = p.get("--description") {
        snap.description = d.to_string();
    }
    Out::ok()
}
