//! What a failed step left, checked right after the failure: the VM read
//! again from VirtualBox, its settings file checked, compared with the VM
//! before the run ([`compare`], pure), and the journal's incomplete merges.
//! [`verified_failure`] turns that into the error the user reads, so every
//! "nothing was changed" or "consistent" in it is what was found.
use crate::vbox::{VBoxManage, VmInfo};
use crate::Context;

/// What a failed run left, as checked right after the failure.
#[derive(Debug, Default, PartialEq)]
pub struct Outcome {
    /// What changed, in plain words (empty: nothing).
    pub changed: Vec<String>,
    /// The settings file is missing, empty or not well-formed.
    pub settings_damaged: Option<String>,
    /// A merge that may have written part of its data and did not complete.
    pub incomplete_merge: Option<String>,
    /// VirtualBox could not be asked (the re-read failed).
    pub unknown: Option<String>,
}

impl Outcome {
    pub fn nothing_changed(&self) -> bool {
        self.changed.is_empty()
            && self.settings_damaged.is_none()
            && self.incomplete_merge.is_none()
            && self.unknown.is_none()
    }
}

/// Compare the VM before the run with what VirtualBox holds after a failed
/// step (pure). `merge_of`: the snapshot whose merge failed, if the failed
/// step was a merge; `refused`: VirtualBox refused that step before it
/// changed anything.
pub fn compare(before: &VmInfo, after: &VmInfo, merge_of: Option<&str>, refused: bool) -> Outcome {
    let mut o = Outcome::default();
    for s in &after.snapshots {
        match before.snapshot(&s.uuid) {
            None => o
                .changed
                .push(format!("snapshot '{}' {{{}}} was taken", s.name, s.uuid)),
            Some(b) if b.name != s.name => o.changed.push(format!(
                "snapshot {{{}}} was renamed from '{}' to '{}'",
                s.uuid, b.name, s.name
            )),
            Some(_) => {}
        }
    }
    for s in &before.snapshots {
        if after.snapshot(&s.uuid).is_none() {
            o.changed.push(format!(
                "snapshot '{}' {{{}}} was merged into its parent (complete)",
                s.name, s.uuid
            ));
        }
    }
    if before.current_snapshot != after.current_snapshot
        && after
            .current_snapshot
            .as_deref()
            .is_some_and(|c| before.snapshot(c).is_some())
    {
        o.changed.push(format!(
            "the VM's current snapshot is now {{{}}}",
            after.current_snapshot.as_deref().unwrap_or_default()
        ));
    }
    // The images the VM writes to (a take that failed half-way may have
    // attached a new differencing image without a snapshot).
    for a in &after.attachments {
        let was = before
            .attachments
            .iter()
            .find(|b| b.slot() == a.slot())
            .map(|b| b.image_uuid.as_str());
        if was != Some(a.image_uuid.as_str()) {
            o.changed.push(format!(
                "the disk in slot {} is now image {} {{{}}}",
                a.slot(),
                a.location.display(),
                a.image_uuid
            ));
        }
    }
    if let Some(uuid) = merge_of {
        if let Some(s) = after.snapshot(uuid) {
            if !refused {
                o.incomplete_merge = Some(format!(
                    "the merge of snapshot '{}' {{{uuid}}} did not complete: VirtualBox may have \
                     written part of it into the disk below it, which is therefore not a \
                     consistent disk to back up until the merge completes",
                    s.name
                ));
            }
        }
    }
    o
}

/// Which run failed: what the user runs again to go on from where it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Run {
    Fold,
    /// A restore, finished by restoring `current` (it deletes the discarded
    /// restore points left; a fold would refuse them as a branch).
    Restore,
}

/// Turn a failed step into an error that says what is true now: the VM
/// re-read from VirtualBox, its settings file checked, compared with the VM
/// before the run; then whether the base disks are consistent, and the one
/// next step. VirtualBox's own words stay beneath (the error's cause).
pub fn verified_failure(
    ctx: &Context,
    vb: &VBoxManage,
    before: &VmInfo,
    merge_of: Option<&str>,
    run: Run,
    err: anyhow::Error,
) -> anyhow::Error {
    let refused = crate::vbox::changed_nothing(&err);
    let settings = before
        .cfg_file
        .as_deref()
        .map(|cfg| crate::vbox::settings::check_file(cfg, &before.uuid));
    let mut outcome = match vb.read_vm(&before.uuid) {
        Ok((after, _)) => compare(before, &after, merge_of, refused),
        Err(e) => Outcome {
            unknown: Some(format!(
                "vblaunch could not ask VirtualBox what the failed step left ({})",
                e.root_cause()
                    .to_string()
                    .lines()
                    .next()
                    .unwrap_or_default()
            )),
            // Without VirtualBox's view, a failed merge counts as incomplete.
            incomplete_merge: merge_of.filter(|_| !refused).map(|u| {
                format!(
                    "the merge of snapshot {{{u}}} may not have completed, so the disk below it \
                     may be partly merged"
                )
            }),
            ..Outcome::default()
        },
    };
    if let Some(Err(why)) = settings {
        outcome.settings_damaged = Some(why);
    }
    // "Consistent" is checked against the journal too: an incomplete merge of
    // an earlier run (not the step that failed here) also rules it out.
    if outcome.incomplete_merge.is_none() {
        let earlier = crate::state::incomplete_merges(&ctx.data_dir, &before.uuid, &|u| {
            before.snapshot(u).is_some()
        });
        if let Some(m) = earlier.first() {
            outcome.incomplete_merge = Some(format!(
                "an earlier merge did not complete (\"{}\", started {}), so the disk below it \
                 may be partly merged",
                m.step, m.started
            ));
        }
    }
    log::debug!("after the failure: {outcome:?}");
    let vm_arg = crate::process::quote(&before.name);
    let mut text = String::from("What vblaunch found after the failure (checked just now):");
    if outcome.nothing_changed() {
        text.push_str(
            "\n  Nothing was changed: VirtualBox holds the same snapshots and disk images as before \
             the run, the settings file is intact, and every restore point is still there.",
        );
    }
    for c in &outcome.changed {
        text.push_str(&format!("\n  - {c}"));
    }
    for w in [
        &outcome.unknown,
        &outcome.incomplete_merge,
        &outcome.settings_damaged,
    ]
    .into_iter()
    .flatten()
    {
        text.push_str(&format!("\n  - {w}"));
    }
    let safe = outcome.incomplete_merge.is_none()
        && outcome.settings_damaged.is_none()
        && outcome.unknown.is_none();
    text.push_str(if safe {
        "\n  The base disks are consistent (no merge is half-done)."
    } else {
        "\n  Do not back up this VM until `vblaunch status` says it is safe to back up."
    });
    let next = if outcome.settings_damaged.is_some() {
        format!(
            "run `vblaunch doctor {vm_arg} --fix`: it puts back the settings file vblaunch saved \
             before this run (in {}), then fix what VirtualBox reports below",
            crate::state::dir(&ctx.data_dir, &before.uuid)
                .join("settings-backups")
                .display()
        )
    } else if outcome.incomplete_merge.is_some() {
        let again = match run {
            Run::Fold => format!("vblaunch fold {vm_arg}"),
            Run::Restore => format!("vblaunch restore {vm_arg} --to current"),
        };
        format!(
            "fix what VirtualBox reports below, then run `{again}`: it repeats the merge and \
             completes it (VirtualBox merges in place and removes the snapshot last, so nothing \
             is lost)"
        )
    } else {
        match run {
            Run::Fold => "fix what VirtualBox reports below, then run vblaunch again".to_string(),
            Run::Restore => format!(
                "fix what VirtualBox reports below, then run `vblaunch restore {vm_arg} --to \
                 current` to finish (or the restore again, if nothing was changed)"
            ),
        }
    };
    text.push_str(&format!("\nNext step: {next}."));
    err.context(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vbox::vminfo::Snapshot;

    fn vm(snaps: &[(&str, &str)], current: &str) -> VmInfo {
        VmInfo {
            name: "Dev Box".into(),
            uuid: "vm".into(),
            accessible: true,
            snapshots: snaps
                .iter()
                .enumerate()
                .map(|(i, (n, u))| Snapshot {
                    name: n.to_string(),
                    uuid: u.to_string(),
                    description: None,
                    node: String::new(),
                    parent: i.checked_sub(1),
                    children: if i + 1 < snaps.len() {
                        vec![i + 1]
                    } else {
                        vec![]
                    },
                })
                .collect(),
            current_snapshot: Some(current.to_string()),
            ..Default::default()
        }
    }

    #[test]
    fn a_failed_take_that_changed_nothing_says_so() {
        let before = vm(&[("current", "s0")], "s0");
        let o = compare(&before, &before.clone(), None, false);
        assert!(o.nothing_changed(), "{o:?}");
        // A new image attached without a snapshot is a change.
        let mut before = before;
        before.attachments.push(crate::vbox::vminfo::Attachment {
            controller: "SATA".into(),
            port: 0,
            device: 0,
            location: "/v/d0.vdi".into(),
            image_uuid: "d0".into(),
        });
        let mut after = before.clone();
        after.attachments[0].image_uuid = "d1".into();
        let o = compare(&before, &after, None, false);
        assert!(
            !o.nothing_changed() && o.changed[0].contains("slot SATA-0-0 is now image"),
            "{o:?}"
        );
    }

    #[test]
    fn a_failed_merge_after_a_take_reports_the_take_and_the_incomplete_merge() {
        let before = vm(&[("current", "s0")], "s0");
        let after = vm(&[("current", "s0"), ("current", "s1")], "s1");
        let o = compare(&before, &after, Some("s0"), false);
        assert!(!o.nothing_changed());
        assert_eq!(o.changed, ["snapshot 'current' {s1} was taken"]);
        assert!(
            o.incomplete_merge
                .as_deref()
                .is_some_and(|m| m.contains("{s0} did not complete")),
            "{o:?}"
        );
        // VirtualBox refused up front: the merge wrote nothing.
        let o = compare(&before, &after, Some("s0"), true);
        assert!(o.incomplete_merge.is_none());
        // The snapshot is gone: the merge completed after all.
        let done = vm(&[("current", "s1")], "s1");
        let o = compare(&before, &done, Some("s0"), false);
        assert!(o.incomplete_merge.is_none());
        assert!(
            o.changed.iter().any(|c| c.contains("{s0} was merged")),
            "{o:?}"
        );
    }
}
