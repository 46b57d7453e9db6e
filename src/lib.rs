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
pub mod gui;
pub mod hooks;
pub mod lock;
pub mod logging;
pub mod notify;
pub mod plan;
pub mod platform;
pub mod process;
pub mod report;
pub mod shortcut;
pub mod snapshots;
pub mod state;
pub mod units;
pub mod vbox;

use anyhow::Result;

use crate::cli::{Cli, Command};
pub use crate::context::Context;

pub fn run(cli: Cli) -> Result<()> {
    run_with(cli, None)
}

/// [`run`], shown by `face` (None: the console).
pub fn run_with(cli: Cli, face: Option<std::sync::Arc<dyn face::Face>>) -> Result<()> {
    // Logging first, so that even a config error reaches the log file.
    if let Err(e) = logging::init(cli.global.verbosity(), &logging::log_file_path()) {
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

/// A recorded VBoxManage output (or settings file) from tests/fixtures.
#[cfg(test)]
pub(crate) fn fixture(name: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// The house reads top-down: every module uses only modules of a lower
/// layer (`crate::<module>` in its code, tests and comments aside), so no
/// module imports the one that dispatches to it and there is no cycle. A
/// new module gets a layer here.
#[cfg(test)]
mod layers {
    /// Lower layers first.
    const LAYERS: &[&[&str]] = &[
        &["exit", "units", "platform", "disk"],
        &["files", "process"],
        &["logging", "lock", "notify"],
        &["state", "hooks", "vbox", "shortcut", "report"],
        &["config", "snapshots"],
        &["guard", "plan", "cli"],
        &["face"],
        &["context", "Context"],
        &["engine"],
        &["cmd"],
        &["lib", "run", "run_with"],
        &["gui"],
        &["main", "main_gui"],
    ];

    fn layer(module: &str) -> Option<usize> {
        LAYERS.iter().position(|l| l.contains(&module))
    }

    fn sources(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                sources(&p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                out.push(p);
            }
        }
    }

    #[test]
    fn every_module_uses_only_lower_layers() {
        let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        sources(&src, &mut files);
        let mut wrong = Vec::new();
        for f in files {
            let rel = f
                .strip_prefix(&src)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/");
            let top = rel
                .split('/')
                .next()
                .unwrap()
                .trim_end_matches(".rs")
                .to_string();
            let own = layer(&top).unwrap_or_else(|| panic!("src/{rel}: give `{top}` a layer"));
            let text = std::fs::read_to_string(&f).unwrap();
            let code = text.split("#[cfg(test)]\nmod ").next().unwrap();
            for line in code.lines().filter(|l| !l.trim_start().starts_with("//")) {
                for (i, _) in line.match_indices("crate::") {
                    let after = &line[i + 7..];
                    let ident = |s: &str| -> String {
                        s.trim_start()
                            .chars()
                            .take_while(|c| c.is_alphanumeric() || *c == '_')
                            .collect()
                    };
                    // `crate::{a, b::c}`: each module of the group (on one line).
                    let used: Vec<String> = match after.strip_prefix('{') {
                        Some(group) => group
                            .split('}')
                            .next()
                            .unwrap_or_default()
                            .split(',')
                            .map(ident)
                            .collect(),
                        None => vec![ident(after)],
                    };
                    for used in used {
                        if used.is_empty() || used == top || used == "fixture" {
                            continue;
                        }
                        match layer(&used) {
                            Some(l) if l < own => {}
                            _ => wrong.push(format!("src/{rel}: uses crate::{used}")),
                        }
                    }
                }
            }
        }
        wrong.sort();
        wrong.dedup();
        assert!(
            wrong.is_empty(),
            "upward or unknown uses:\n{}",
            wrong.join("\n")
        );
    }
}
