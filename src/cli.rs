//! The command line (clap derive). `vblaunch <VM>` is shorthand for
//! `vblaunch launch <VM>`; a VM named like a subcommand is launched with
//! `vblaunch launch <name>`. Global options work before or after the subcommand.
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::vbox::StartType;

#[derive(Debug, Parser)]
#[command(
    name = "vblaunch",
    version,
    about = "Launch a VirtualBox VM so that its disks are safe to back up",
    after_help = AFTER_HELP,
    subcommand_required = true,
    arg_required_else_help = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,

    #[command(subcommand)]
    pub command: Command,
}

/// Examples, then the exit-code table (kept equal to `exit::EXIT_CODES_HELP` by a test).
const AFTER_HELP: &str = concat!(
        "Examples:\n",
        "  vblaunch \"Dev Box\"                  fold the last session into the base disk, take a fresh snapshot, start the VM\n",
        "  vblaunch fold \"Dev Box\"             the same without starting the VM (for scheduled backup scripts)\n",
        "  vblaunch --dry-run \"Dev Box\"        show the VBoxManage commands it would run; change nothing\n",
        "  vblaunch \"Dev Box\" --type headless  start without a window\n",
        "  vblaunch launch fold                launch a VM that is named \"fold\"\n",
        "  vblaunch config check               validate the configuration file\n",
        "  vblaunch shortcut \"Dev Box\"         desktop and Start-menu shortcuts that run vblaunch\n",
        "  vblaunch \"Dev Box\" --keep 3         keep two restore points (previous, previous-2)\n",
        "  vblaunch status --json              restore points, sizes, \"safe to back up\" for scripts\n",
        "  vblaunch restore \"Dev Box\" --to previous   go back to the state of the launch before last\n",
        "\n",
        "Each launch folds the snapshot \"current\" into the base disk and takes a new\n",
        "\"current\": while the VM runs, the base .vdi does not change, so a file backup\n",
        "copies a consistent disk. Snapshots with other names are never touched.\n",
        "\n",
        "Exit codes:\n",
        "   0  success\n",
        "   1  unexpected error\n",
        "   2  bad command line or configuration file\n",
        "   3  a VirtualBox window or VM process is running (--no-wait, or --wait-timeout ran out)\n",
        "   4  another vblaunch is already working on this VM\n",
        "   5  the VM's state does not allow a fold (running, paused, busy, locked by a session)\n",
        "   6  the snapshots or disks make a fold unsafe; nothing was changed\n",
        "   7  the VM is not registered or VirtualBox cannot read it\n",
        "   8  VBoxManage was not found\n",
        "   9  a VBoxManage command failed\n",
        "  10  after the fold VirtualBox does not hold what vblaunch expected\n",
        "  11  the VM did not start (the fold was kept)\n",
        "  12  a file exists (or was changed) and --force was not given, or a symlink sits where vblaunch writes\n",
        "  13  a hook failed (before_fold: nothing was changed)"
);

#[derive(Debug, Args, Clone, Default)]
pub struct Global {
    /// Configuration file [default: $VBLAUNCH_CONFIG, else the platform config dir]
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Path of VBoxManage [default: $VBLAUNCH_VBOXMANAGE, config, usual install places]
    #[arg(long, global = true, value_name = "PATH")]
    pub vboxmanage: Option<PathBuf>,

    /// Print the VBoxManage commands that would run, change nothing
    #[arg(long, global = true)]
    pub dry_run: bool,

    /// Fail at once (exit 3) if VirtualBox is running instead of waiting for it to close
    #[arg(long, global = true)]
    pub no_wait: bool,

    /// Wait at most this long for VirtualBox to close (0 = do not wait)
    #[arg(long, global = true, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(0..=crate::config::limits::WAIT_TIMEOUT_SECS.1))]
    pub wait_timeout: Option<u64>,

    /// How to start the VM [default: config start_type, else gui]
    #[arg(long = "type", global = true, value_enum, value_name = "TYPE")]
    pub start_type: Option<StartType>,

    /// Keep this many vblaunch snapshots: the current one plus N-1 restore points [default: config keep, else 1]
    #[arg(long, global = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=100))]
    pub keep: Option<u32>,

    /// Also fold a managed-name snapshot that vblaunch did not take (e.g. from the old launcher script)
    #[arg(long, global = true)]
    pub adopt: bool,

    /// After starting the VM, stay until its session ends (then fold_on_exit and after_exit hooks) [config: wait]
    #[arg(long, global = true)]
    pub wait: bool,

    /// On failure, wait for Enter before exiting (shortcuts pass it: their window would close)
    #[arg(long, global = true)]
    pub pause_on_error: bool,

    /// More output (-vv for all VBoxManage details)
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,

    /// Less output (-qq: errors only)
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "verbose")]
    pub quiet: u8,
}

impl Global {
    pub fn verbosity(&self) -> i8 {
        (self.verbose.min(3) as i8) - (self.quiet.min(3) as i8)
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Fold the last session into the base disk, take a fresh snapshot and start the VM
    Launch {
        /// VM name or UUID
        vm: String,
    },
    /// Fold and take a fresh snapshot, without starting the VM
    Fold {
        /// VM name or UUID
        vm: String,
    },
    /// Show or check the configuration file
    Config {
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Show the state of one VM or all: restore points, sizes, last fold, whether it is safe to back up
    Status(StatusArgs),
    /// List the registered VMs and whether vblaunch manages them
    List,
    /// Discard the VM's changes back to a restore point
    Restore(RestoreArgs),
    /// Diagnose a VM read-only (each check ok/warn/fail with evidence); --fix repairs what cannot lose data
    Doctor(DoctorArgs),
    /// Create (or --remove) a desktop / Start-menu shortcut that runs `vblaunch <VM>`
    Shortcut(ShortcutArgs),
    /// Print a shell completion script (bash, zsh, fish, powershell, elvish)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff), for packaging
    #[command(hide = true)]
    Manpage,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// VM name or UUID [default: every registered VM]
    pub vm: Option<String>,
    /// Print JSON for scripts and backup tools
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// VM name or UUID
    pub vm: String,
    /// Restore point: current (the last launch), previous, previous-N, N launches back, or a snapshot UUID
    #[arg(long, default_value = "current", value_name = "POINT")]
    pub to: String,
    /// Do not ask for confirmation (for scripts)
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// VM name or UUID
    pub vm: String,
    /// Perform the fixes that cannot lose data, each after confirmation (--yes: without asking)
    #[arg(long)]
    pub fix: bool,
    /// With --fix: do not ask before each fix
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Args)]
pub struct ShortcutArgs {
    /// VM name or UUID the shortcut launches
    pub vm: String,
    /// Put it on the desktop
    #[arg(long)]
    pub desktop: bool,
    /// Put it in the Start menu (Windows), the applications menu (Linux) or ~/Applications (macOS)
    #[arg(long)]
    pub start_menu: bool,
    /// Put it in this folder instead
    #[arg(long, value_name = "DIR", conflicts_with_all = ["desktop", "start_menu"])]
    pub dest: Option<PathBuf>,
    /// Delete the shortcuts vblaunch created for this VM
    #[arg(long)]
    pub remove: bool,
    /// Overwrite an existing file (or remove one changed since vblaunch wrote it)
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigAction {
    /// Print the configuration file's path (and whether it exists)
    Path,
    /// Parse and validate the configuration file
    Check,
}

pub fn parse() -> Cli {
    let args = with_implicit_launch(std::env::args_os().collect());
    match Cli::try_parse_from(&args) {
        Ok(cli) => cli,
        Err(e) => {
            // A shortcut's window must stay open on a command-line error too
            // (clap would print and exit at once).
            let pause = e.use_stderr()
                && args
                    .iter()
                    .skip(1)
                    .take_while(|a| *a != "--")
                    .any(|a| a == "--pause-on-error");
            let _ = e.print();
            if pause {
                crate::report::after_failure(&e.to_string());
            }
            std::process::exit(e.exit_code());
        }
    }
}

/// `vblaunch [OPTIONS] VM [OPTIONS]` → `vblaunch [OPTIONS] launch VM [OPTIONS]`:
/// insert `launch` before the first positional word unless it is a subcommand.
/// Options that take a value are read from the clap definition itself.
pub fn with_implicit_launch(mut args: Vec<std::ffi::OsString>) -> Vec<std::ffi::OsString> {
    use clap::CommandFactory;
    let cmd = Cli::command();
    let takes_value = |word: &str| {
        cmd.get_arguments().any(|a| {
            a.get_action().takes_values()
                && (a.get_long().is_some_and(|l| word == format!("--{l}"))
                    || a.get_short().is_some_and(|s| word == format!("-{s}")))
        })
    };
    let mut i = 1;
    while i < args.len() {
        let word = args[i].to_string_lossy().into_owned();
        if word == "--" {
            // `vblaunch -- -odd-vm-name` → `vblaunch launch -- -odd-vm-name`
            args.insert(i, "launch".into());
            return args;
        }
        if word.starts_with('-') && word.len() > 1 {
            i += if takes_value(&word) { 2 } else { 1 };
            continue;
        }
        let is_subcommand = word == "help" || cmd.get_subcommands().any(|s| s.get_name() == word);
        if !is_subcommand {
            args.insert(i, "launch".into());
        }
        return args;
    }
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    fn p(args: &[&str]) -> Cli {
        let argv = std::iter::once("vblaunch")
            .chain(args.iter().copied())
            .map(Into::into)
            .collect();
        Cli::try_parse_from(with_implicit_launch(argv)).unwrap()
    }

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bare_vm_is_a_launch_and_options_go_anywhere() {
        let c = p(&[
            "--dry-run",
            "--config",
            "fold",
            "My VM",
            "--type",
            "headless",
            "-v",
        ]);
        assert!(matches!(c.command, Command::Launch { ref vm } if vm == "My VM"));
        assert_eq!(c.global.config, Some(PathBuf::from("fold")));
        assert!(c.global.dry_run);
        assert_eq!(c.global.start_type, Some(StartType::Headless));
        assert_eq!(c.global.verbosity(), 1);
    }

    #[test]
    fn subcommands_take_global_options_before_and_after() {
        let c = p(&["--no-wait", "fold", "X", "--wait-timeout", "5", "-q"]);
        assert!(matches!(c.command, Command::Fold { ref vm } if vm == "X"));
        assert!(c.global.no_wait);
        assert_eq!(c.global.wait_timeout, Some(5));
        assert_eq!(c.global.verbosity(), -1);
        let c = p(&["launch", "fold"]);
        assert!(matches!(c.command, Command::Launch { ref vm } if vm == "fold"));
        let c = p(&["--", "-dash vm"]);
        assert!(matches!(c.command, Command::Launch { ref vm } if vm == "-dash vm"));
        let c = p(&["--wait-timeout=5", "config", "check"]);
        assert!(matches!(c.command, Command::Config { .. }));
    }

    #[test]
    fn help_lists_exit_codes_matching_the_code_table() {
        assert!(AFTER_HELP.ends_with(crate::exit::EXIT_CODES_HELP));
    }
}
