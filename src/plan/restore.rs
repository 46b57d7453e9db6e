//! The restore planner (pure): going back to one of vblaunch's restore
//! points. VirtualBox's `snapshot restore` makes the chosen snapshot current
//! with a fresh differencing image; the newer restore points (now a dead
//! branch) are then discarded, newest first, and the labels repaired, so the
//! chain stays linear and the next launch folds as usual. A restore that was
//! interrupted after VirtualBox's restore step is finished by restoring
//! `current` (the discarded snapshots below it are found as leftovers).
use std::path::Path;

use super::{Refusal, Step};
use crate::snapshots::{
    bytes_on_disk, current_path, depth, diffs_after, is_descendant, is_own, label, own_snapshots,
    show, taken_at,
};
use crate::vbox::{Medium, VmInfo};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestorePlan {
    pub target: String,
    pub target_name: String,
    pub taken: Option<String>,
    /// Restore points that will be gone: (name, uuid, taken).
    pub lost: Vec<(String, String, Option<String>)>,
    /// Size on disk of the changes discarded, when known.
    pub changes_bytes: Option<u64>,
    pub steps: Vec<Step>,
}

/// Decide a restore (pure).
pub fn plan_restore(
    vm: &VmInfo,
    media: &[Medium],
    snapshot_name: &str,
    to: &str,
    size: &dyn Fn(&Path) -> Option<u64>,
) -> Result<RestorePlan, Refusal> {
    if !vm.state.is_shut_down() || vm.session_name.is_some() {
        return Err(Refusal::RestoreNotOff {
            vm: vm.name.clone(),
            state: vm.state.clone(),
            session: vm.session_name.clone(),
        });
    }
    let (own, off) = own_snapshots(vm, snapshot_name, false);
    let Some(&newest) = own.last() else {
        return Err(Refusal::NoRestorePoints {
            vm: vm.name.clone(),
        });
    };
    let cur = vm
        .current_snapshot
        .as_deref()
        .and_then(|u| vm.snapshots.iter().position(|s| s.uuid == u));
    if cur != Some(newest) {
        return Err(Refusal::RestoreCurrentNotNewest {
            vm: vm.name.clone(),
            newest: show(&vm.snapshots[newest]),
        });
    }
    // Own snapshots below the current one are left over from an interrupted
    // restore; any other own snapshot off the path is a branch we do not touch.
    let leftovers: Vec<usize> = off
        .iter()
        .copied()
        .filter(|&i| is_descendant(vm, i, newest))
        .collect();
    if let Some(&i) = off.iter().find(|i| !leftovers.contains(i)) {
        return Err(Refusal::OwnOnBranch {
            vm: vm.name.clone(),
            snapshot: show(&vm.snapshots[i]),
        });
    }
    if let Some(s) = vm
        .snapshots
        .iter()
        .enumerate()
        .find(|(i, s)| is_descendant(vm, *i, newest) && !is_own(vm, s))
        .map(|(_, s)| s)
    {
        return Err(Refusal::UserSnapshotBelow { snapshot: show(s) });
    }

    // Resolve the target by age (0 = newest).
    let ages: Vec<usize> = own.iter().rev().copied().collect();
    let age = if let Ok(n) = to.parse::<usize>() {
        Some(n)
    } else if to == snapshot_name || to == "current" {
        Some(0)
    } else if to == "previous" {
        Some(1)
    } else if let Some(n) = to
        .strip_prefix("previous-")
        .and_then(|n| n.parse::<usize>().ok())
    {
        Some(n)
    } else {
        ages.iter()
            .position(|&i| vm.snapshots[i].uuid == to.trim_matches(['{', '}']))
    };
    let Some(&target) = age.and_then(|a| ages.get(a)) else {
        let list: Vec<String> = ages
            .iter()
            .enumerate()
            .map(|(a, &i)| {
                let s = &vm.snapshots[i];
                format!(
                    "  {} ({a}): '{}' {{{}}}{}",
                    label(a, snapshot_name),
                    s.name,
                    s.uuid,
                    taken_at(s)
                        .map(|t| format!(", taken {t}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        return Err(Refusal::NoSuchRestorePoint {
            vm: vm.name.clone(),
            to: to.to_string(),
            points: list,
        });
    };
    let path = current_path(vm);
    let tpos = path
        .iter()
        .position(|&i| i == target)
        .expect("own is on the path");
    if let Some(&u) = path[tpos..].iter().find(|&&i| !own.contains(&i)) {
        return Err(Refusal::UserSnapshotNewer {
            snapshot: show(&vm.snapshots[u]),
        });
    }
    let discarded: Vec<&str> = path[tpos..]
        .iter()
        .map(|&i| vm.snapshots[i].uuid.as_str())
        .collect();
    // Known only when every image's size is.
    let changes_bytes = diffs_after(vm, media, &|u| discarded.contains(&u))
        .filter(|ms| ms.iter().all(|m| size(&m.location).is_some()))
        .map(|ms| bytes_on_disk(&ms, size));
    let mut doomed: Vec<usize> = path[tpos + 1..].to_vec();
    doomed.extend(leftovers);
    // Newest (deepest) first, so each deleted snapshot is a leaf.
    doomed.sort_by_key(|&i| std::cmp::Reverse(depth(vm, i)));
    let t = &vm.snapshots[target];
    let mut steps = vec![Step::Restore {
        uuid: t.uuid.clone(),
        name: t.name.clone(),
    }];
    for &i in &doomed {
        steps.push(Step::Discard {
            uuid: vm.snapshots[i].uuid.clone(),
            name: vm.snapshots[i].name.clone(),
        });
    }
    let kept = &own[..=own.iter().position(|&i| i == target).unwrap()];
    for (age, &i) in kept.iter().rev().enumerate() {
        let want = label(age, snapshot_name);
        if vm.snapshots[i].name != want {
            steps.push(Step::Rename {
                uuid: vm.snapshots[i].uuid.clone(),
                from: vm.snapshots[i].name.clone(),
                to: want,
            });
        }
    }
    Ok(RestorePlan {
        target: t.uuid.clone(),
        target_name: t.name.clone(),
        taken: taken_at(t).map(str::to_string),
        lost: doomed
            .iter()
            .map(|&i| {
                let s = &vm.snapshots[i];
                (
                    s.name.clone(),
                    s.uuid.clone(),
                    taken_at(s).map(str::to_string),
                )
            })
            .collect(),
        changes_bytes,
        steps,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::Code;
    use crate::vbox::media::test_medium;
    use crate::vbox::vminfo::{Attachment, Snapshot};
    use std::path::PathBuf;

    fn vm(names: &[(&str, bool)]) -> (VmInfo, Vec<Medium>) {
        let mut snaps = Vec::new();
        let mut media = vec![test_medium("b", None, "/v/b.vdi", None)];
        for (i, (n, marked)) in names.iter().enumerate() {
            snaps.push(Snapshot {
                name: n.to_string(),
                uuid: format!("s{i}"),
                description: marked
                    .then(|| crate::snapshots::description(&format!("2026-11-2{i}T06:00:00Z"))),
                node: String::new(),
                parent: i.checked_sub(1),
                children: if i + 1 < names.len() {
                    vec![i + 1]
                } else {
                    vec![]
                },
            });
            let parent = if i == 0 {
                "b".to_string()
            } else {
                format!("d{}", i - 1)
            };
            media.push(test_medium(
                &format!("d{i}"),
                Some(&parent),
                format!("/v/d{i}.vdi"),
                None,
            ));
        }
        let last = names.len() - 1;
        let v = VmInfo {
            name: "Dev".into(),
            uuid: "vm".into(),
            accessible: true,
            state: "poweroff".into(),
            attachments: vec![Attachment {
                controller: "SATA".into(),
                port: 0,
                device: 0,
                location: PathBuf::from(format!("/v/d{last}.vdi")),
                image_uuid: format!("d{last}"),
            }],
            snapshots: snaps,
            current_snapshot: Some(format!("s{last}")),
            ..Default::default()
        };
        (v, media)
    }

    fn mb(_: &Path) -> Option<u64> {
        Some(1 << 20)
    }

    #[test]
    fn restore_to_previous_discards_current_and_relabels() {
        let (v, m) = vm(&[("previous-2", true), ("previous", true), ("current", true)]);
        let p = plan_restore(&v, &m, "current", "previous", &mb).unwrap();
        assert_eq!(p.target, "s1");
        assert_eq!(
            p.steps,
            [
                Step::Restore {
                    uuid: "s1".into(),
                    name: "previous".into()
                },
                Step::Discard {
                    uuid: "s2".into(),
                    name: "current".into()
                },
                Step::Rename {
                    uuid: "s1".into(),
                    from: "previous".into(),
                    to: "current".into()
                },
                Step::Rename {
                    uuid: "s0".into(),
                    from: "previous-2".into(),
                    to: "previous".into()
                },
            ]
        );
        assert_eq!(p.lost.len(), 1);
        assert_eq!(
            p.changes_bytes,
            Some(2 << 20),
            "the diffs after previous and after current"
        );
        assert_eq!(p.taken.as_deref(), Some("2026-11-21T06:00:00Z"));
    }

    #[test]
    fn targets_by_age_uuid_and_label_and_a_clear_error_otherwise() {
        let (v, m) = vm(&[("previous", true), ("current", true)]);
        assert_eq!(
            plan_restore(&v, &m, "current", "0", &mb).unwrap().target,
            "s1"
        );
        assert_eq!(
            plan_restore(&v, &m, "current", "1", &mb).unwrap().target,
            "s0"
        );
        assert_eq!(
            plan_restore(&v, &m, "current", "{s0}", &mb).unwrap().target,
            "s0"
        );
        let p = plan_restore(&v, &m, "current", "current", &mb).unwrap();
        assert_eq!(
            p.steps,
            [Step::Restore {
                uuid: "s1".into(),
                name: "current".into()
            }]
        );
        let e = plan_restore(&v, &m, "current", "previous-5", &mb).unwrap_err();
        assert_eq!(e.code(), Code::Usage);
        match &e {
            Refusal::NoSuchRestorePoint { to, points, .. } => {
                assert_eq!(to, "previous-5");
                assert_eq!(
                    points,
                    &[
                        "  current (0): 'current' {s1}, taken 2026-11-21T06:00:00Z",
                        "  previous (1): 'previous' {s0}, taken 2026-11-20T06:00:00Z"
                    ]
                );
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn user_snapshots_newer_than_the_target_are_never_deleted() {
        let (mut v, m) = vm(&[("previous", true), ("mine", false), ("current", true)]);
        v.snapshots[1].description = None;
        let e = plan_restore(&v, &m, "current", "previous", &mb).unwrap_err();
        assert_eq!(
            e,
            Refusal::UserSnapshotNewer {
                snapshot: "'mine' {s1}".into()
            }
        );
        // But restoring past nothing of the user's is fine.
        assert!(plan_restore(&v, &m, "current", "current", &mb).is_ok());
    }

    #[test]
    fn running_or_saved_vms_are_refused() {
        let (mut v, m) = vm(&[("current", true)]);
        v.state = "saved".into();
        let e = plan_restore(&v, &m, "current", "current", &mb).unwrap_err();
        assert!(
            matches!(&e, Refusal::RestoreNotOff { state, .. } if state.has_saved_state()),
            "{e:?}"
        );
        assert_eq!(e.code(), Code::VmState);
        assert!(e.to_string().contains("saved state"), "{e}");
        v.state = "running".into();
        let e = plan_restore(&v, &m, "current", "current", &mb).unwrap_err();
        assert!(matches!(e, Refusal::RestoreNotOff { .. }), "{e:?}");
        assert_eq!(e.code(), Code::VmState);
    }

    #[test]
    fn an_interrupted_restore_is_finished_by_restoring_current() {
        // Restored to s0, but deleting s1 (now a branch below it) failed.
        let (mut v, m) = vm(&[("previous", true), ("current", true)]);
        v.current_snapshot = Some("s0".into());
        let p = plan_restore(&v, &m, "current", "current", &mb).unwrap();
        assert_eq!(
            p.steps,
            [
                Step::Restore {
                    uuid: "s0".into(),
                    name: "previous".into()
                },
                Step::Discard {
                    uuid: "s1".into(),
                    name: "current".into()
                },
                Step::Rename {
                    uuid: "s0".into(),
                    from: "previous".into(),
                    to: "current".into()
                },
            ]
        );
    }

    #[test]
    fn restore_refuses_what_it_cannot_do_safely_naming_the_snapshot() {
        // No vblaunch snapshot at all.
        let (v, m) = vm(&[("mine", false)]);
        let e = plan_restore(&v, &m, "current", "current", &mb).unwrap_err();
        assert_eq!(e, Refusal::NoRestorePoints { vm: "Dev".into() });
        assert_eq!(e.code(), Code::Refused);
        // The current snapshot is the user's, on top of vblaunch's newest.
        let (v, m) = vm(&[("current", true), ("mine", false)]);
        let e = plan_restore(&v, &m, "current", "current", &mb).unwrap_err();
        assert_eq!(
            e,
            Refusal::RestoreCurrentNotNewest {
                vm: "Dev".into(),
                newest: "'current' {s0}".into()
            }
        );
        // Restored by hand to vblaunch's older snapshot: the user's snapshot
        // below the newest one would be deleted.
        let (mut v, m) = vm(&[("previous", true), ("current", true), ("mine", false)]);
        v.current_snapshot = Some("s1".into());
        let e = plan_restore(&v, &m, "current", "current", &mb).unwrap_err();
        assert_eq!(
            e,
            Refusal::UserSnapshotBelow {
                snapshot: "'mine' {s2}".into()
            }
        );
        // An own snapshot on another branch (not below the newest one).
        let (mut v, m) = vm(&[("previous", true), ("current", true)]);
        v.snapshots.push(Snapshot {
            name: "old".into(),
            uuid: "s9".into(),
            description: Some(crate::snapshots::description("2026-11-01T06:00:00Z")),
            node: String::new(),
            parent: Some(0),
            children: vec![],
        });
        v.snapshots[0].children.push(2);
        let e = plan_restore(&v, &m, "current", "current", &mb).unwrap_err();
        assert_eq!(
            e,
            Refusal::OwnOnBranch {
                vm: "Dev".into(),
                snapshot: "'old' {s9}".into()
            }
        );
        assert!(e.to_string().contains("another branch"), "{e}");
    }
}
