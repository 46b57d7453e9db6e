//! `vblaunch launch VM` (and `vblaunch VM`): fold, take a fresh snapshot,
//! start the VM; with `wait`, stay until it shuts down (then the after_exit
//! hook and fold_on_exit). The work is the engine's ([`crate::engine`]).
use anyhow::Result;

use crate::engine::{self, Start};
use crate::Context;

pub fn run(ctx: &Context, vm_arg: &str) -> Result<()> {
    let locked = engine::open(ctx, vm_arg)?;
    let hook_vm = engine::fold(ctx, &locked, Start::Yes)?;
    // Other vblaunch runs may work on the VM while this one waits.
    let (vb, vm, eff) = locked.release();
    if !ctx.global.dry_run && eff.wait {
        // Nobody may be watching the terminal by the time the VM shuts down.
        engine::wait_and_exit(ctx, &vb, &vm, &eff, hook_vm).inspect_err(|e| {
            // VirtualBox's words (the root cause) first: notifications are short.
            let body = format!("{}\n\n{e}", e.root_cause());
            crate::notify::failure(&format!("vblaunch: VM '{}'", vm.name), &body);
        })?;
    }
    Ok(())
}
