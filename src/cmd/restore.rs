//! `vblaunch restore <VM> [--to current|previous|previous-N|N|UUID] [--yes] [--dry-run]`:
//! discard the VM's changes back to one of vblaunch's restore points.
//!
//! VirtualBox's `snapshot restore` makes the chosen snapshot current with a
//! fresh differencing image; the newer restore points (now a dead branch) are
//! then deleted, newest first, and the labels are repaired, so the chain stays
//! linear and the next launch folds as usual. Nothing happens before the user
//! saw what will be lost and said yes (or passed --yes). A restore interrupted
//! after VirtualBox's restore step is finished by `restore --to current`.
use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use anyhow::Result;

use crate::cli::RestoreArgs;
use crate::exit::{fail, Code};
use crate::plan::{self, Refusal};
use crate::vbox::{Medium, VmInfo};
use crate::Context;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Restore {
        uuid: String,
        name: String,
    },
    Delete {
        uuid: String,
        name: String,
    },
    Rename {
        uuid: String,
        from: String,
        to: String,
    },
}

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

fn refuse(code: Code, reason: String) -> Refusal {
    Refusal { code, reason }
}

fn is_descendant(vm: &VmInfo, i: usize, ancestor: usize) -> bool {
    let mut at = vm.snapshots[i].parent;
    while let Some(p) = at {
        if p == ancestor {
            return true;
        }
        at = vm.snapshots[p].parent;
    }
    false
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
        let extra = if vm.state.has_saved_state() {
            " It has a saved state, which a restore would throw away: start it and shut it down, \
             or discard the saved state in VirtualBox first."
        } else {
            " Shut it down first."
        };
        return Err(refuse(
            Code::VmState,
            format!(
                "VM '{}' must be powered off to restore it (state: {}{}).{extra} Nothing was changed.",
                vm.name,
                vm.state,
                vm.session_name.as_deref().map(|s| format!(", open in '{s}'")).unwrap_or_default()
            ),
        ));
    }
    let (own, off) = plan::own_snapshots(vm, snapshot_name, false);
    let Some(&newest) = own.last() else {
        return Err(refuse(
            Code::Refused,
            format!(
                "VM '{}' has no vblaunch restore points. Nothing was changed.",
                vm.name
            ),
        ));
    };
    let cur = vm
        .current_snapshot
        .as_deref()
        .and_then(|u| vm.snapshots.iter().position(|s| s.uuid == u));
    if cur != Some(newest) {
        return Err(refuse(
            Code::Refused,
            format!(
                "The current snapshot of VM '{}' is not vblaunch's newest one ('{}' {{{}}}); \
                 vblaunch will not guess. Use the VirtualBox Manager. Nothing was changed.",
                vm.name, vm.snapshots[newest].name, vm.snapshots[newest].uuid
            ),
        ));
    }
    // Own snapshots below the current one are left over from an interrupted
    // restore; any other own snapshot off the path is a branch we do not touch.
    let leftovers: Vec<usize> = off
        .iter()
        .copied()
        .filter(|&i| is_descendant(vm, i, newest))
        .collect();
    if let Some(&i) = off.iter().find(|i| !leftovers.contains(i)) {
        let s = &vm.snapshots[i];
        return Err(refuse(
            Code::Refused,
            format!(
                "vblaunch's snapshot '{}' {{{}}} of VM '{}' is on another branch; vblaunch will \
                 not guess. Use the VirtualBox Manager. Nothing was changed.",
                s.name, s.uuid, vm.name
            ),
        ));
    }
    if let Some(s) = vm
        .snapshots
        .iter()
        .enumerate()
        .find(|(i, s)| is_descendant(vm, *i, newest) && !plan::is_own(vm, s))
        .map(|(_, s)| s)
    {
        return Err(refuse(
            Code::Refused,
            format!(
                "Your snapshot '{}' {{{}}} depends on vblaunch's newest snapshot; restoring would \
                 mean deleting it, and vblaunch never deletes your snapshots. Nothing was changed.",
                s.name, s.uuid
            ),
        ));
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
                    plan::label(a, snapshot_name),
                    s.name,
                    s.uuid,
                    plan::taken_at(s)
                        .map(|t| format!(", taken {t}"))
                        .unwrap_or_default()
                )
            })
            .collect();
        return Err(refuse(
            Code::Usage,
            format!(
                "VM '{}' has no restore point '{to}'. Its restore points are:\n{}",
                vm.name,
                list.join("\n")
            ),
        ));
    };
    let path = plan::current_path(vm);
    let tpos = path
        .iter()
        .position(|&i| i == target)
        .expect("own is on the path");
    if let Some(&u) = path[tpos..].iter().find(|&&i| !own.contains(&i)) {
        let s = &vm.snapshots[u];
        return Err(refuse(
            Code::Refused,
            format!(
                "Your snapshot '{}' {{{}}} is newer than that restore point; restoring would mean \
                 deleting it, and vblaunch never deletes your snapshots. Nothing was changed.",
                s.name, s.uuid
            ),
        ));
    }
    let changes_bytes = plan::path_diffs(vm, media).and_then(|d| {
        d.iter()
            .filter(|(i, _)| path[tpos..].contains(i))
            .flat_map(|(_, ms)| ms.iter())
            .map(|m| size(&m.location))
            .sum::<Option<u64>>()
    });
    let mut doomed: Vec<usize> = path[tpos + 1..].to_vec();
    doomed.extend(leftovers);
    // Newest (deepest) first, so each deleted snapshot is a leaf.
    let depth = |i: usize| {
        let mut d = 0;
        let mut at = vm.snapshots[i].parent;
        while let Some(p) = at {
            d += 1;
            at = vm.snapshots[p].parent;
        }
        d
    };
    doomed.sort_by_key(|&i| std::cmp::Reverse(depth(i)));
    let t = &vm.snapshots[target];
    let mut steps = vec![Step::Restore {
        uuid: t.uuid.clone(),
        name: t.name.clone(),
    }];
    for &i in &doomed {
        steps.push(Step::Delete {
            uuid: vm.snapshots[i].uuid.clone(),
            name: vm.snapshots[i].name.clone(),
        });
    }
    let kept = &own[..=own.iter().position(|&i| i == target).unwrap()];
    for (age, &i) in kept.iter().rev().enumerate() {
        let want = plan::label(age, snapshot_name);
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
        taken: plan::taken_at(t).map(str::to_string),
        lost: doomed
            .iter()
            .map(|&i| {
                let s = &vm.snapshots[i];
                (
                    s.name.clone(),
                    s.uuid.clone(),
                    plan::taken_at(s).map(str::to_string),
                )
            })
            .collect(),
        changes_bytes,
        steps,
    })
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
}

pub fn run(ctx: &Context, args: RestoreArgs) -> Result<()> {
    let super::Session {
        vb, vm, media, eff, ..
    } = &super::open(ctx, &args.vm)?;
    let plan = plan_restore(vm, media, &eff.snapshot_name, &args.to, &|p| {
        std::fs::metadata(p).ok().map(|m| m.len())
    })
    .map_err(|r| fail(r.code, r.reason))?;

    let mut summary =
        format!(
        "Restore VM '{}' to '{}' {{{}}}{}.\nThis discards everything the VM wrote since then{}.",
        vm.name,
        plan.target_name,
        plan.target,
        plan.taken.as_deref().map(|t| format!(" (taken {t})")).unwrap_or_default(),
        plan.changes_bytes.map(|b| format!(" (about {} on disk)", mib(b))).unwrap_or_default()
    );
    for (name, uuid, taken) in &plan.lost {
        summary.push_str(&format!(
            "\nRestore point '{name}' {{{uuid}}}{} will be gone.",
            taken
                .as_deref()
                .map(|t| format!(" (taken {t})"))
                .unwrap_or_default()
        ));
    }
    eprintln!("{summary}");
    if ctx.global.dry_run {
        println!("Dry run: vblaunch would run");
        for s in &plan.steps {
            let cmd = match s {
                Step::Restore { uuid, .. } => vb.restore_command(&vm.uuid, uuid),
                Step::Delete { uuid, .. } => vb.delete_command(&vm.uuid, uuid),
                Step::Rename { uuid, to, .. } => vb.rename_command(&vm.uuid, uuid, to),
            };
            println!("  {cmd}");
        }
        println!("Nothing was changed.");
        return Ok(());
    }
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(fail(
                Code::Usage,
                "no terminal to ask for confirmation; pass --yes to restore from a script. Nothing was changed.",
            ));
        }
        eprint!("Type 'yes' to restore: ");
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim(), "yes" | "y") {
            return Err(fail(Code::Usage, "not confirmed; nothing was changed."));
        }
    }
    super::fold::report_interrupted_run(ctx, vm);
    super::fold::backup_settings(ctx, vm, eff.settings_backups)?;
    let mut journal =
        crate::state::JournalWriter::start(&ctx.data_dir, &vm.uuid, "restore", &|u| {
            vm.snapshot(u).is_some()
        })?;
    for s in &plan.steps {
        let (kind, what, uuid) = match s {
            Step::Restore { uuid, name } => (
                "restore",
                format!("restore snapshot {{{uuid}}} '{name}'"),
                uuid,
            ),
            Step::Delete { uuid, name } => (
                crate::state::MERGE,
                format!("delete discarded snapshot {{{uuid}}} '{name}'"),
                uuid,
            ),
            Step::Rename { uuid, from, to } => (
                "rename",
                format!("rename snapshot {{{uuid}}} '{from}' to '{to}'"),
                uuid,
            ),
        };
        journal.step(
            kind,
            what,
            &vm.uuid,
            Some(uuid),
            || run_step(vb, vm, s),
            &crate::vbox::changed_nothing,
        )?;
    }
    log::info!(
        "VM '{}' is back at '{}' (taken {}); the next launch folds as usual.",
        vm.name,
        plan.target_name,
        plan.taken.as_deref().unwrap_or("unknown")
    );
    Ok(())
}

fn run_step(vb: &crate::vbox::VBoxManage, vm: &VmInfo, s: &Step) -> Result<()> {
    match s {
        Step::Restore { uuid, name } => {
            vb.snapshot_restore(&vm.uuid, uuid).map_err(|e| {
                e.context(format!(
                    "restoring '{name}' {{{uuid}}} failed; nothing was changed. Fix what \
                         VirtualBox reports below, then run the restore again"
                ))
            })?;
            log::info!("Restored '{name}' {{{uuid}}}.");
        }
        Step::Delete { uuid, name } => {
            vb.snapshot_delete(&vm.uuid, uuid).map_err(|e| {
                e.context(format!(
                    "the VM was restored, but deleting the discarded restore point '{name}' \
                         {{{uuid}}} failed. Run `vblaunch restore \"{}\" --to current` to finish",
                    vm.name
                ))
            })?;
            log::info!("Deleted discarded restore point '{name}' {{{uuid}}}.");
        }
        Step::Rename { uuid, from, to } => {
            vb.snapshot_rename(&vm.uuid, uuid, to).map_err(|e| {
                    e.context(format!(
                        "renaming '{from}' {{{uuid}}} to '{to}' failed (labels only; the next launch fixes them)"
                    ))
                })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
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
                description: marked.then(|| plan::description(&format!("2026-11-2{i}T06:00:00Z"))),
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
                Step::Delete {
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
        assert_eq!(e.code, Code::Usage);
        assert!(
            e.reason.contains("previous (1): 'previous' {s0}"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn user_snapshots_newer_than_the_target_are_never_deleted() {
        let (mut v, m) = vm(&[("previous", true), ("mine", false), ("current", true)]);
        v.snapshots[1].description = None;
        let e = plan_restore(&v, &m, "current", "previous", &mb).unwrap_err();
        assert!(e.reason.contains("'mine'"), "{}", e.reason);
        // But restoring past nothing of the user's is fine.
        assert!(plan_restore(&v, &m, "current", "current", &mb).is_ok());
    }

    #[test]
    fn running_or_saved_vms_are_refused() {
        let (mut v, m) = vm(&[("current", true)]);
        v.state = "saved".into();
        let e = plan_restore(&v, &m, "current", "current", &mb).unwrap_err();
        assert_eq!(e.code, Code::VmState);
        assert!(e.reason.contains("saved state"), "{}", e.reason);
        v.state = "running".into();
        assert_eq!(
            plan_restore(&v, &m, "current", "current", &mb)
                .unwrap_err()
                .code,
            Code::VmState
        );
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
                Step::Delete {
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
}
