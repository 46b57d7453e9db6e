//! `vblaunch config path|check`.
use anyhow::Result;

use crate::cli::ConfigAction;
use crate::Context;

pub fn run(ctx: &Context, action: ConfigAction) -> Result<()> {
    let path = ctx.config_path.display();
    match action {
        ConfigAction::Path => {
            println!("{path}");
            let state = if ctx.config.path.is_some() {
                "exists"
            } else {
                "does not exist; built-in defaults apply"
            };
            log::info!("config file ({}): {state}", ctx.config_source);
        }
        // Loading the context already parsed and validated the file; an error
        // there has ended the run with file:line and exit code 2.
        ConfigAction::Check => match &ctx.config.path {
            Some(_) => println!(
                "{path}: ok ({} per-VM table{})",
                ctx.config.file.vm.len(),
                if ctx.config.file.vm.len() == 1 {
                    ""
                } else {
                    "s"
                }
            ),
            None => println!("{path}: no such file; built-in defaults apply"),
        },
    }
    Ok(())
}
