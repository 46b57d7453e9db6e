//! A plan's [`Step`] as VirtualBox sees it: the one place that turns a step
//! into a VBoxManage call ([`run`]), into the command line a dry run prints
//! ([`command`], the same line the call runs), and into the journal's words
//! ([`journal`]).
use std::time::Instant;

use anyhow::Result;

use crate::plan::Step;
use crate::process::CommandLine;
use crate::vbox::{VBoxManage, VmInfo};

/// The journal's kind of step and its text (what `doctor` and the next run
/// read back if this run dies during the step).
pub fn journal(step: &Step) -> (&'static str, String) {
    match step {
        Step::Take { name, .. } => ("take", format!("take snapshot '{name}'")),
        Step::Rename { uuid, from, to } => (
            "rename",
            format!("rename snapshot {{{uuid}}} '{from}' to '{to}'"),
        ),
        Step::Merge { uuid, name } => (
            crate::state::MERGE,
            format!("merge snapshot {{{uuid}}} '{name}'"),
        ),
        Step::Restore { uuid, name } => {
            ("restore", format!("restore snapshot {{{uuid}}} '{name}'"))
        }
        Step::Discard { uuid, name } => (
            crate::state::MERGE,
            format!("delete discarded snapshot {{{uuid}}} '{name}'"),
        ),
    }
}

/// The VBoxManage command line that [`run`] executes for `step`.
pub fn command(vb: &VBoxManage, vm: &VmInfo, step: &Step) -> CommandLine {
    match step {
        Step::Take { name, description } => vb.take_command(&vm.uuid, name, description),
        Step::Rename { uuid, to, .. } => vb.rename_command(&vm.uuid, uuid, to),
        Step::Merge { uuid, .. } | Step::Discard { uuid, .. } => vb.delete_command(&vm.uuid, uuid),
        Step::Restore { uuid, .. } => vb.restore_command(&vm.uuid, uuid),
    }
}

/// Run one step; returns the UUID of a snapshot it took. A failure says,
/// above VirtualBox's words, which step failed and what it means.
pub fn run(vb: &VBoxManage, vm: &VmInfo, step: &Step) -> Result<Option<String>> {
    match step {
        Step::Take { name, description } => {
            let uuid = vb.snapshot_take(&vm.uuid, name, description).map_err(|e| {
                e.context(format!("VM '{}': taking snapshot '{name}' failed", vm.name))
            })?;
            log::info!("Took snapshot '{name}' {{{uuid}}}.");
            return Ok(Some(uuid));
        }
        Step::Rename { uuid, from, to } => {
            vb.snapshot_rename(&vm.uuid, uuid, to).map_err(|e| {
                e.context(format!(
                    "VM '{}': renaming snapshot '{from}' {{{uuid}}} to '{to}' failed (names are \
                     only labels; the next run fixes them)",
                    vm.name
                ))
            })?;
            log::info!("Renamed snapshot '{from}' {{{uuid}}} to '{to}'.");
        }
        Step::Merge { uuid, name } => {
            log::info!(
                "Merging snapshot '{name}' {{{uuid}}} of VM '{}' into its parent (the time \
                 depends on how much the VM wrote in that session; it cannot be cancelled)…",
                vm.name
            );
            let t = Instant::now();
            vb.snapshot_delete(&vm.uuid, uuid).map_err(|e| {
                e.context(format!(
                    "VM '{}': merging snapshot '{name}' {{{uuid}}} into its parent failed",
                    vm.name
                ))
            })?;
            log::info!("Merged in {:.1} s.", t.elapsed().as_secs_f64());
        }
        Step::Restore { uuid, name } => {
            vb.snapshot_restore(&vm.uuid, uuid)
                .map_err(|e| e.context(format!("restoring '{name}' {{{uuid}}} failed")))?;
            log::info!("Restored '{name}' {{{uuid}}}.");
        }
        Step::Discard { uuid, name } => {
            vb.snapshot_delete(&vm.uuid, uuid).map_err(|e| {
                e.context(format!(
                    "the VM was restored, but deleting the discarded restore point '{name}' \
                     {{{uuid}}} failed"
                ))
            })?;
            log::info!("Deleted discarded restore point '{name}' {{{uuid}}}.");
        }
    }
    Ok(None)
}

/// `--dry-run`: the command lines the steps (and the start) would run.
pub fn print_dry_run(
    header: &str,
    vb: &VBoxManage,
    vm: &VmInfo,
    steps: &[Step],
    start: Option<CommandLine>,
) {
    println!("{header}");
    for step in steps {
        println!("  {}", command(vb, vm, step));
    }
    if let Some(cmd) = start {
        println!("  {cmd}");
    }
    println!("Nothing was changed.");
}
