//! vblaunch: make VirtualBox VMs safe to back up with a file-level tool.
//!
//! The house, top-down (each layer uses only the ones below it):
//! - `main.rs` / `main_gui.rs` parse the command line ([`cli`]) and call
//!   [`run`], which builds the [`Context`] once (config, paths, logging,
//!   CLI > environment > config precedence) and dispatches to [`cmd`];
//! - [`cmd`]: one thin module per subcommand; [`face`]: what the shortcut
//!   launch shows in native windows;
//! - [`engine`]: opens a VM under its lock and applies a plan (hooks,
//!   settings backup, [`state`]'s journal, each step as a VBoxManage call,
//!   the read-back and its check);
//! - [`plan`]: the pure planners, on [`snapshots`]' vocabulary;
//! - [`vbox`]: everything known about VirtualBox (VBoxManage calls and their
//!   output, its files, states, errors), [`guard`] (its processes), [`lock`],
//!   [`disk`] (free space, writability), [`files`] (vblaunch's own files),
//!   [`hooks`], [`notify`], [`shortcut`];
//! - [`process`]: the one way a program is run (deadline, process group,
//!   decoding), used for VBoxManage, hooks and notifiers.
pub mod cli;
pub mod cmd;
pub mod config;
pub mod context;
pub mod disk;
pub mod engine;
pub mod exit;
pub mod face;
pub mod files;
pub mod guard;
pub mod hooks;
pub mod lock;
pub mod logging;
pub mod notify;
pub mod plan;
pub mod platform;
pub mod process;
pub mod shortcut;
pub mod snapshots;
pub mod state;
pub mod units;
pub mod vbox;

use anyhow::Result;

use crate::cli::{Cli, Command};
pub use crate::context::{log_file_path, Context};

pub fn run(cli: Cli) -> Result<()> {
    run_with(cli, None)
}

/// [`run`], shown by `face` (None: the console).
pub fn run_with(cli: Cli, face: Option<std::sync::Arc<dyn face::Face>>) -> Result<()> {
    // Logging first, so that even a config error reaches the log file.
    if let Err(e) = logging::init(cli.global.verbosity(), &log_file_path()) {
        eprintln!("vblaunch: warning: {e}; continuing without a log file");
    }
    log::debug!(
        "vblaunch {} started: {:?}",
        env!("CARGO_PKG_VERSION"),
        std::env::args().collect::<Vec<_>>()
    );
    // Generators need no configuration (a broken config must not block them).
    match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            let mut cmd = cli::Cli::command();
            clap_complete::generate(*shell, &mut cmd, "vblaunch", &mut std::io::stdout());
            return Ok(());
        }
        Command::Manpage => {
            use clap::CommandFactory;
            clap_mangen::Man::new(cli::Cli::command()).render(&mut std::io::stdout())?;
            return Ok(());
        }
        _ => {}
    }
    let ctx = Context::new(cli.global.clone(), face)?;
    match cli.command {
        Command::Launch { vm } => cmd::launch::run(&ctx, &vm),
        Command::Fold { vm } => cmd::fold::run(&ctx, &vm),
        Command::Config { action } => cmd::config::run(&ctx, action),
        Command::Shortcut(args) => cmd::shortcut::run(&ctx, args),
        Command::Status(args) => cmd::status::run(&ctx, args),
        Command::List => cmd::list::run(&ctx),
        Command::Restore(args) => cmd::restore::run(&ctx, args),
        Command::Doctor(args) => cmd::doctor::run(&ctx, args),
        Command::Completions { .. } | Command::Manpage => unreachable!("handled above"),
    }
}

/// Print the error that ends a run once (with its causes and the log file's
/// path) and record it in the log file.
pub fn report_error(err: &anyhow::Error) {
    let mut text = format!("{err}");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    log::error!(target: logging::FILE_ONLY, "{text}");
    eprintln!("vblaunch: error: {}", logging::sanitize(&text, "\n"));
    if logging::has_log_file() {
        eprintln!("(log file: {})", log_file_path().display());
    }
}

/// After a failure with `--pause-on-error` (a shortcut launch): keep its
/// window open, or (no terminal at all) tell the desktop, so that a failure
/// is never silent.
pub fn after_failure(message: &str) {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        pause_for_enter();
    } else {
        notify::failure("vblaunch", message);
    }
}

/// After an error in a window that closes when vblaunch exits (a shortcut),
/// keep it open until the user has read it. Only when someone can answer.
pub fn pause_for_enter() {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return;
    }
    eprint!("Press Enter to close this window.");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}

/// A recorded VBoxManage output (or settings file) from tests/fixtures.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}
