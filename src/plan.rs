//! Pure planning: from what VirtualBox holds (the VM, its snapshot tree, the
//! media registry) and the policy, decide the exact steps of a fold — or refuse
//! with the reason and the fix. No I/O here except the injected file test, so
//! every tree shape is tested without VirtualBox.
//!
//! Rules:
//! - only an offline VM (poweroff, aborted, saved, aborted-saved) with no
//!   session is folded: never an online merge;
//! - every hard disk's chain must be registered, accessible, on disk, `normal`;
//! - the managed snapshot (default name "current") is deleted only when it is
//!   the single snapshot of that name, it is the current snapshot, it is a leaf
//!   and vblaunch took it (its description carries the marker) — or the user
//!   said `--adopt` for one made by hand or by the old script;
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

/// Whether vblaunch took this snapshot (its description starts with [`MARKER`]).
///
/// ```
/// use vblaunch::plan::{description, is_marked};
/// use vblaunch::vbox::vminfo::Snapshot;
/// let mut s = Snapshot { name: "current".into(), uuid: "u".into(), description: None,
///                        node: String::new(), parent: None, children: vec![] };
/// assert!(!is_marked(&s));
/// s.description = Some(description("2026-11-26T07:00:00Z"));
/// assert!(is_marked(&s));
/// ```
pub fn is_marked(s: &Snapshot) -> bool {
    s.description
        .as_deref()
        .is_some_and(|d| d.starts_with(MARKER))
}

pub struct Policy<'a> {
    pub snapshot_name: &'a str,
    /// Accept a managed-name snapshot without vblaunch's marker.
    pub adopt: bool,
    pub now_iso8601: &'a str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Merge this snapshot (by UUID) into its parent.
    Delete { uuid: String, name: String },
    /// Take the managed snapshot.
    Take { name: String, description: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub steps: Vec<Step>,
    /// Plain-language lines for the user (what will happen, user snapshots seen).
    pub notes: Vec<String>,
    /// The attached hard disks (current-state media) before the fold.
    pub disks: Vec<Medium>,
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
    let state = if vm.state.is_empty() {
        "unknown"
    } else {
        vm.state.as_str()
    };
    let what = match state {
        "running" => "running",
        "paused" => "paused",
        "starting" | "restoring" => "starting",
        "stopping" | "saving" => "shutting down",
        "gurumeditation" => "stuck (guru meditation)",
        _ => "busy",
    };
    format!(
        "VM '{name}' is {what} (state: {state}). vblaunch only folds a VM that is powered off, \
         saved or aborted; it never merges snapshots of a running VM. Shut the VM down or save \
         its state, then run vblaunch again. Nothing was changed."
    )
}

/// The hard disks attached to the VM (current state), with their chains checked.
fn check_disks(
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
            if !medium.is_accessible() || !exists(&medium.location) {
                return Err(refuse(
                    Code::Refused,
                    format!(
                        "Disk image {} of VM '{}' is missing or unreadable (VirtualBox state: {}). \
                         Merging snapshots now could lose data. Restore that file from your backup \
                         to exactly that path, then run vblaunch again. Nothing was changed.",
                        medium.location.display(),
                        vm.name,
                        medium.state
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

fn label(s: &Snapshot) -> String {
    format!("'{}' {{{}}}", s.name, s.uuid)
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
    if !vm.state_allows_fold() {
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
    let take = Step::Take {
        name: name.to_string(),
        description: description(policy.now_iso8601),
    };
    let managed: Vec<&Snapshot> = vm.snapshots.iter().filter(|s| s.name == name).collect();
    let user: Vec<String> = vm
        .snapshots
        .iter()
        .filter(|s| s.name != name)
        .map(label)
        .collect();
    let mut notes = Vec::new();
    if !user.is_empty() {
        notes.push(format!(
            "VM '{}' has snapshots of yours: {}. vblaunch never deletes or renames them.",
            vm.name,
            user.join(", ")
        ));
    }

    match managed.as_slice() {
        [] => {
            match vm.current() {
                None => notes.push(format!(
                    "First run for VM '{}': taking snapshot '{name}'; from now on the base disk \
                     stays frozen while the VM runs.",
                    vm.name
                )),
                Some(cur) => notes.push(format!(
                    "Taking snapshot '{name}' on top of your snapshot {}.",
                    label(cur)
                )),
            }
            Ok(Plan {
                steps: vec![take],
                notes,
                disks,
            })
        }
        [s] => {
            let cur = vm.current();
            if cur.map(|c| c.uuid.as_str()) != Some(s.uuid.as_str()) {
                let now = cur.map(label).unwrap_or_else(|| "none".into());
                return Err(refuse(
                    Code::Refused,
                    format!(
                        "Snapshot {} of VM '{}' is not the VM's current snapshot (the current one \
                         is {now}); the VM was probably restored to another snapshot. vblaunch will \
                         not guess which state to keep. In the VirtualBox Manager, restore or delete \
                         snapshots until '{name}' is the current one (or rename it), then run \
                         vblaunch again. Nothing was changed.",
                        label(s),
                        vm.name
                    ),
                ));
            }
            if !s.children.is_empty() {
                return Err(refuse(
                    Code::Refused,
                    format!(
                        "Snapshot {} of VM '{}' has child snapshots; folding it would merge into \
                         your snapshots. Move or delete those children in the VirtualBox Manager, \
                         then run vblaunch again. Nothing was changed.",
                        label(s),
                        vm.name
                    ),
                ));
            }
            if !is_marked(s) && !policy.adopt {
                return Err(refuse(
                    Code::Refused,
                    format!(
                        "Snapshot {} of VM '{}' was not taken by vblaunch (its description lacks \
                         vblaunch's marker), and vblaunch never deletes a snapshot it did not make. \
                         If it is the 'current' of your old launcher script and may be merged into \
                         its parent, run vblaunch once with --adopt. Otherwise rename it in the \
                         VirtualBox Manager (or set another snapshot_name in the config). \
                         Nothing was changed.",
                        label(s),
                        vm.name
                    ),
                ));
            }
            match s.parent.map(|p| &vm.snapshots[p]) {
                None => notes.push(format!(
                    "Folding snapshot {} into the base disk(s), then taking a fresh '{name}'.",
                    label(s)
                )),
                Some(p) => notes.push(format!(
                    "Snapshot '{name}' sits on your snapshot {}: the fold merges into that \
                     snapshot's differencing image (the base disk stays frozen under it), then a \
                     fresh '{name}' is taken.",
                    label(p)
                )),
            }
            Ok(Plan {
                steps: vec![
                    Step::Delete {
                        uuid: s.uuid.clone(),
                        name: s.name.clone(),
                    },
                    take,
                ],
                notes,
                disks,
            })
        }
        many => Err(refuse(
            Code::Refused,
            format!(
                "VM '{}' has {} snapshots named '{name}': {}. vblaunch cannot tell which one it \
                 manages and will not guess. Rename or delete the extra ones in the VirtualBox \
                 Manager (Snapshots tab), then run vblaunch again. Nothing was changed.",
                vm.name,
                many.len(),
                many.iter().map(|s| label(s)).collect::<Vec<_>>().join(", ")
            ),
        )),
    }
}

/// Check what VirtualBox holds after the fold: the current snapshot is the one
/// just taken, has the managed name, is a leaf, and every attached hard disk
/// is now a differencing image. Returns what was found otherwise.
pub fn verify(vm: &VmInfo, media: &[Medium], taken_uuid: &str, name: &str) -> Result<(), String> {
    let mut problems = Vec::new();
    match vm.current() {
        None => problems.push("the VM has no current snapshot".to_string()),
        Some(c) => {
            if c.uuid != taken_uuid {
                problems.push(format!(
                    "the current snapshot is {} instead of the one just taken {{{taken_uuid}}}",
                    label(c)
                ));
            }
            if c.name != name {
                problems.push(format!(
                    "the current snapshot is named '{}', not '{name}'",
                    c.name
                ));
            }
            if !c.children.is_empty() {
                problems.push(format!("the current snapshot {} has children", label(c)));
            }
        }
    }
    let same_name = vm.snapshots.iter().filter(|s| s.name == name).count();
    if same_name > 1 {
        problems.push(format!("there are {same_name} snapshots named '{name}'"));
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
        Medium {
            uuid: uuid.into(),
            parent: parent.map(Into::into),
            state: "created".into(),
            kind: if parent.is_some() {
                "normal (differencing)"
            } else {
                "normal (base)"
            }
            .into(),
            location: PathBuf::from(format!("/vms/{uuid}.vdi")),
            format: "VDI".into(),
            capacity_mb: Some(32),
            access_error: None,
        }
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
            adopt: false,
            now_iso8601: "2026-11-26T07:00:00Z",
        }
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
        assert!(p.notes[0].contains("First run"), "{:?}", p.notes);
        assert_eq!(p.disks[0].uuid, BASE);
    }

    #[test]
    fn managed_current_leaf_is_deleted_by_uuid_then_retaken() {
        let p = run(&tree(&[("current", None, true)], Some(0))).unwrap();
        assert_eq!(
            p.steps,
            [
                Step::Delete {
                    uuid: "s0".into(),
                    name: "current".into()
                },
                take()
            ]
        );
        assert!(
            p.notes.iter().any(|n| n.contains("into the base disk")),
            "{:?}",
            p.notes
        );
    }

    #[test]
    fn current_on_a_user_snapshot_merges_into_that_snapshot_and_says_so() {
        let p = run(&tree(
            &[("before upgrade", None, false), ("current", Some(0), true)],
            Some(1),
        ))
        .unwrap();
        assert_eq!(p.steps.len(), 2);
        assert!(matches!(&p.steps[0], Step::Delete { uuid, .. } if uuid == "s1"));
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("sits on your snapshot 'before upgrade'")),
            "{:?}",
            p.notes
        );
        assert!(
            p.notes
                .iter()
                .any(|n| n.contains("never deletes or renames")),
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
    fn duplicate_managed_names_are_refused_listing_both() {
        let r = run(&tree(
            &[("current", None, true), ("current", Some(0), true)],
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
    fn managed_snapshot_that_is_not_current_is_refused() {
        let r = run(&tree(
            &[("current", None, true), ("mine", Some(0), false)],
            Some(1),
        ))
        .unwrap_err();
        assert_eq!(r.code, Code::Refused);
        assert!(
            r.reason.contains("not the VM's current snapshot"),
            "{}",
            r.reason
        );
    }

    #[test]
    fn managed_current_with_children_is_refused() {
        // "current" is current but has a child (possible after a restore + take elsewhere).
        let mut t = tree(
            &[("current", None, true), ("mine", Some(0), false)],
            Some(0),
        );
        t.vm.current_snapshot = Some("s0".into());
        let r = run(&t).unwrap_err();
        assert!(r.reason.contains("has child snapshots"), "{}", r.reason);
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
        assert_eq!(p.steps.len(), 2);
    }

    #[test]
    fn configured_snapshot_name_is_honoured() {
        let t = tree(&[("vbl", None, true), ("current", Some(0), false)], Some(0));
        let mut t2 = t;
        t2.vm.snapshots[1].parent = None; // keep "vbl" a leaf for this test
        t2.vm.snapshots[0].children.clear();
        let pol = Policy {
            snapshot_name: "vbl",
            ..policy()
        };
        let p = plan(&t2.vm, &t2.media, &pol, &|_| true).unwrap();
        assert!(matches!(&p.steps[0], Step::Delete { name, .. } if name == "vbl"));
        assert!(matches!(&p.steps[1], Step::Take { name, .. } if name == "vbl"));
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
            let mut t = tree(&[("current", None, true)], Some(0));
            t.vm.state = state.into();
            let r = run(&t).unwrap_err();
            assert_eq!(r.code, Code::VmState);
            assert!(r.reason.contains(state), "{}", r.reason);
        }
        for state in ["saved", "aborted", "aborted-saved", "poweroff"] {
            let mut t = tree(&[("current", None, true)], Some(0));
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
        let t = tree(&[("current", None, true)], Some(0));
        let r = plan(&t.vm, &t.media, &policy(), &|p| !p.ends_with("d0.vdi")).unwrap_err();
        assert_eq!(r.code, Code::Refused);
        assert!(r.reason.contains("/vms/d0.vdi"), "{}", r.reason);
        let mut t = t;
        t.media[1].state = "inaccessible".into();
        let r = run(&t).unwrap_err();
        assert!(r.reason.contains("inaccessible"), "{}", r.reason);
    }

    #[test]
    fn a_chain_with_an_unregistered_parent_is_refused() {
        let mut t = tree(&[("current", None, true)], Some(0));
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
        let t = tree(&[("current", None, true)], Some(0));
        assert_eq!(verify(&t.vm, &t.media, "s0", "current"), Ok(()));
        let err = verify(&t.vm, &t.media, "other", "current").unwrap_err();
        assert!(err.contains("instead of the one just taken"), "{err}");
        let t0 = tree(&[], None);
        let err = verify(&t0.vm, &t0.media, "s0", "current").unwrap_err();
        assert!(
            err.contains("no current snapshot") && err.contains("not a differencing image"),
            "{err}"
        );
    }

    #[test]
    fn description_carries_the_marker_and_the_time() {
        let d = description("2026-11-26T07:00:00Z");
        assert!(d.starts_with(MARKER));
        assert!(d.contains("2026-11-26T07:00:00Z"));
        assert!(
            !d.contains('\n'),
            "a single line keeps showvminfo parsing simple"
        );
    }
}
