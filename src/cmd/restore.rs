//! `vblaunch restore <VM> [--to current|previous|previous-N|N|UUID] [--yes] [--dry-run]`:
//! discard the VM's changes back to one of vblaunch's restore points. The
//! plan is [`crate::plan::restore`]'s; this command shows what will be lost,
//! asks (or takes --yes), and lets the engine apply it.
use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;

use crate::cli::RestoreArgs;
use crate::engine::{self, LockedVm};
use crate::exit::{fail, Code};
use crate::plan;
use crate::Context;

pub fn run(ctx: &Context, args: RestoreArgs) -> Result<()> {
    let locked = engine::open(ctx, &args.vm)?;
    let LockedVm {
        vb, vm, media, eff, ..
    } = &locked;
    let plan = plan::plan_restore(vm, media, &eff.snapshot_name, &args.to, &|p| {
        std::fs::metadata(p).ok().map(|m| m.len())
    })?;

    let mut summary = format!(
        "Restore VM '{}' to '{}' {{{}}}{}.\nThis discards everything the VM wrote since then{}.",
        vm.name,
        plan.target_name,
        plan.target,
        plan.taken
            .as_deref()
            .map(|t| format!(" (taken {t})"))
            .unwrap_or_default(),
        plan.changes_bytes
            .map(|b| format!(" (about {} on disk)", crate::units::mib(b, 1)))
            .unwrap_or_default()
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
        engine::steps::print_dry_run("Dry run: vblaunch would run", vb, vm, &plan.steps, None);
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
    engine::restore(ctx, &locked, &plan)
}
