//! `vblaunch fold VM`: fold and take a fresh snapshot without starting the
//! VM (for scheduled backup scripts). The work is the engine's
//! ([`crate::engine::fold`]).
use anyhow::Result;

use crate::engine::{self, Start};
use crate::Context;

pub fn run(ctx: &Context, vm_arg: &str) -> Result<()> {
    let locked = engine::open(ctx, vm_arg)?;
    engine::fold(ctx, &locked, Start::No)?;
    Ok(())
}
