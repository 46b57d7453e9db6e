//! vblaunch: make VirtualBox VMs safe to back up with a file-level tool.
//!
//! `run` builds the context once (config, paths, logging) and dispatches to
//! one module per subcommand under `cmd/`. All VirtualBox knowledge is in
//! `vbox/`; decisions are pure functions in `plan`; the world is touched only
//! through `process` (VBoxManage), `guard` (process list) and `lock`.
pub mod cli;
pub mod cmd;
pub mod config;
pub mod disk;
pub mod exit;
pub mod face;
pub mod files;
pub mod guard;
pub mod hooks;
pub mod lock;
pub mod logging;
pub mod notify;
pub mod plan;
pub mod process;
pub mod shortcut;
pub mod state;
pub mod vbox;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::cli::{Cli, Command};
use crate::config::Config;
use crate::exit::{fail, Code};

/// The one owner of environment variables and platform paths.
pub struct Context {
    pub global: cli::Global,
    pub config: Config,
    pub config_path: PathBuf,
    /// How the config path was chosen ("--config", "VBLAUNCH_CONFIG", "default").
    pub config_source: &'static str,
    pub data_dir: PathBuf,
    pub env_vboxmanage: Option<PathBuf>,
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("", "", "vblaunch")
}

/// The log file's path (also printed with every error).
pub fn log_file_path() -> PathBuf {
    data_dir().join("vblaunch.log")
}

/// `VBLAUNCH_DATA_DIR` (a portable install, or a test) or the platform data dir.
fn data_dir() -> PathBuf {
    if let Some(d) = non_empty_env("VBLAUNCH_DATA_DIR") {
        return PathBuf::from(d);
    }
    project_dirs()
        .map(|d| d.data_local_dir().to_path_buf())
        .unwrap_or_else(|| std::env::temp_dir().join("vblaunch"))
}

fn non_empty_env(name: &str) -> Option<OsString> {
    std::env::var_os(name).filter(|v| !v.is_empty())
}

impl Context {
    fn new(global: cli::Global) -> Result<Context> {
        let (config_path, config_source, explicit) = if let Some(p) = &global.config {
            (p.clone(), "--config", true)
        } else if let Some(p) = non_empty_env("VBLAUNCH_CONFIG") {
            (PathBuf::from(p), "VBLAUNCH_CONFIG", true)
        } else {
            let dir = project_dirs()
                .map(|d| d.config_dir().to_path_buf())
                .ok_or_else(|| {
                    fail(
                    Code::Usage,
                    "cannot find your home folder to locate the config file; pass --config FILE",
                )
                })?;
            (dir.join("vblaunch.toml"), "default", false)
        };
        let data_dir = data_dir();
        let config = config::load(&config_path, explicit)?;
        Ok(Context {
            global,
            config,
            config_path,
            config_source,
            data_dir,
            env_vboxmanage: non_empty_env("VBLAUNCH_VBOXMANAGE").map(PathBuf::from),
        })
    }

    /// An environment variable (every read of the environment goes through here).
    pub fn env(&self, name: &str) -> Option<OsString> {
        std::env::var_os(name)
    }

    pub fn locks_dir(&self) -> PathBuf {
        self.data_dir.join("locks")
    }

    /// The VBoxManage facade for a VM's effective settings.
    pub fn vbox(&self, eff: &config::Effective) -> Result<vbox::VBoxManage> {
        let exe = self.vboxmanage(eff)?;
        log::debug!("using VBoxManage at {}", exe.display());
        Ok(vbox::VBoxManage {
            exe,
            call_timeout: eff.call_timeout,
            stall_warning: eff.merge_stall_warning,
            show_progress: self.global.verbosity() >= 0,
        })
    }

    /// Resolve VBoxManage for a VM's effective settings.
    pub fn vboxmanage(&self, eff: &config::Effective) -> Result<PathBuf> {
        let explicit = vbox::locate::Explicit {
            flag: self.global.vboxmanage.clone(),
            env: self.env_vboxmanage.clone(),
            config: eff.vboxmanage.clone(),
        };
        let defaults =
            vbox::locate::default_candidates(vbox::locate::Os::current(), &|n| self.env(n));
        vbox::locate::locate(&explicit, &defaults, &|p: &Path| p.is_file())
    }
}

pub fn run(cli: Cli) -> Result<()> {
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
    let ctx = Context::new(cli.global.clone())?;
    match cli.command {
        Command::Launch { vm } => cmd::fold::run(&ctx, &vm, true),
        Command::Fold { vm } => cmd::fold::run(&ctx, &vm, false),
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
