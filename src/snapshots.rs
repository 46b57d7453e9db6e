//! The snapshot vocabulary every command shares: which snapshots are
//! vblaunch's (its marker in the description, and the record in the VM's
//! extradata), their labels (`current`, `previous`, `previous-N`), queries on
//! the snapshot tree (the path to the current state, descendants), and the
//! images behind it (the differencing images after each snapshot, what a
//! backup must copy, their sizes). Pure functions of [`VmInfo`] and the media
//! registry; the planners (`plan`), status, list, doctor and restore use them.
//!
//! vblaunch's own snapshots are the ones whose description starts with
//! [`MARKER`] (names are only labels). After a fold with `keep = N` the VM has
//! its N newest own snapshots, named (newest first) `current`, `previous`,
//! `previous-2`, … `previous-<N-1>`; the newest is the VM's current snapshot,
//! and every older one is a restore point.
use std::path::{Path, PathBuf};

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
/// use vblaunch::snapshots::{description, is_marked};
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

/// How messages name a snapshot: `'<name>' {<uuid>}`.
pub fn show(s: &Snapshot) -> String {
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
/// snapshot froze (see [`floors`]). None when the chain is shorter than the
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

/// Whether snapshot `i` lies below snapshot `ancestor` in the tree.
pub fn is_descendant(vm: &VmInfo, i: usize, ancestor: usize) -> bool {
    let mut at = vm.snapshots[i].parent;
    while let Some(p) = at {
        if p == ancestor {
            return true;
        }
        at = vm.snapshots[p].parent;
    }
    false
}

/// How many snapshots lie above snapshot `i` (the root is 0).
pub fn depth(vm: &VmInfo, i: usize) -> usize {
    let mut d = 0;
    let mut at = vm.snapshots[i].parent;
    while let Some(p) = at {
        d += 1;
        at = vm.snapshots[p].parent;
    }
    d
}

/// The differencing images holding the writes made after the snapshots on
/// the current path that `which` picks (by UUID), every hard disk's; None
/// when the chain does not match the path (see [`path_diffs`]).
pub fn diffs_after<'m>(
    vm: &VmInfo,
    media: &'m [Medium],
    which: &dyn Fn(&str) -> bool,
) -> Option<Vec<&'m Medium>> {
    Some(
        path_diffs(vm, media)?
            .into_iter()
            .filter(|(i, _)| which(&vm.snapshots[*i].uuid))
            .flat_map(|(_, ms)| ms)
            .collect(),
    )
}

/// The bytes on disk of `images` (those whose size is unknown count 0).
pub fn bytes_on_disk(images: &[&Medium], size: &dyn Fn(&Path) -> Option<u64>) -> u64 {
    images.iter().filter_map(|m| size(&m.location)).sum()
}

/// The images a backup must copy to hold each attached hard disk as frozen
/// by the current snapshot: its base and, for a disk that rests on another
/// VM's images (a linked clone, a base shared by two VMs), also this VM's own
/// image that the folds merge into (see [`floors`]).
pub fn base_disks(vm: &VmInfo, media: &[Medium]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for (floor, base) in floors(vm, media) {
        out.push(base.location.clone());
        if floor.uuid != base.uuid {
            out.push(floor.location.clone());
        }
    }
    out
}
