//! The faces vblaunch shows a user: the console (what it prints today) and,
//! for a shortcut launch on Windows, native windows (`vblaunchw.exe`).
//!
//! The engine reports what happens as [`Event`]s to a [`Face`]; it does not
//! know which face it has. What a GUI shows is decided by pure functions in
//! [`model`] (titles, texts, percentages, buttons, whether a window appears at
//! all), unit-tested on every OS; the native code in `windows` only draws what
//! the model says.
//!
//! Sharp edges: the engine (`cmd::fold`, `vbox`) does not send these events
//! yet — it still logs and prints itself; hooking it up is the next step.
//! Only the end of a run reaches the GUI today (`gui_main`): the failure
//! dialog, and the second launch of a VM that vblaunch holds and that runs.
pub mod model;
#[cfg(windows)]
pub mod windows;

use std::time::Duration;

/// What happens during a launch, in the order a launch goes.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A VirtualBox front end is open; vblaunch waits for it to close
    /// (`front_ends`: "VirtualBox (pid 7)", as `guard::describe` says).
    WaitingForVirtualBox { front_ends: String },
    /// VirtualBox closed; the launch goes on.
    VirtualBoxClosed,
    /// A merge of the last session into the base disk began (cannot be cancelled).
    Merging { bytes: Option<u64> },
    /// VBoxManage's progress output ("0%...10%...") reached `percent`.
    Progress { percent: u8 },
    /// `startvm` runs.
    Starting,
    /// The VM started (`start_type`: gui, headless, separate).
    Started { start_type: String },
    /// vblaunch holds the session while the VM runs (`wait = true`).
    Holding,
    /// The VM shut down; `folded`: fold-on-exit put the session into the base.
    SessionEnded { folded: bool },
    /// The launch failed; the run ends with `report.code`.
    Failed(model::Report),
}

/// Something that shows a launch to its user.
pub trait Face {
    /// `at`: time since the launch began (decides whether a window appears).
    fn event(&mut self, at: Duration, event: &Event);
}

/// The console face: the sentences vblaunch prints today, at the same levels.
pub struct Console {
    pub vm: String,
}

/// Whether a console line is a warning or plain information.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Info,
    Warn,
    Error,
}

impl Console {
    /// The line the console shows for `event`, if any. (Merge progress is
    /// VBoxManage's own `0%...10%...` text or the terminal's progress bar,
    /// drawn by `vbox`; the final error is printed by `report_error`.)
    pub fn line(&self, event: &Event) -> Option<(Level, String)> {
        let vm = &self.vm;
        Some(match event {
            Event::WaitingForVirtualBox { front_ends } => (
                Level::Warn,
                format!(
                    "VirtualBox is running: {front_ends}. Close VirtualBox to continue (Ctrl-C to abort)."
                ),
            ),
            Event::VirtualBoxClosed => (Level::Info, "VirtualBox is closed; continuing.".into()),
            Event::Merging { .. } | Event::Progress { .. } | Event::Starting => return None,
            Event::Started { start_type } => {
                (Level::Info, format!("Started VM '{vm}' ({start_type})."))
            }
            Event::Holding => (
                Level::Info,
                format!(
                    "Waiting for VM '{vm}' to shut down (Ctrl-C stops waiting; the VM keeps running)…"
                ),
            ),
            Event::SessionEnded { .. } => (Level::Info, format!("VM '{vm}' has stopped.")),
            Event::Failed(r) => (Level::Error, r.console_text()),
        })
    }
}

impl Face for Console {
    fn event(&mut self, _at: Duration, event: &Event) {
        match self.line(event) {
            Some((Level::Info, l)) => log::info!("{l}"),
            Some((Level::Warn, l)) => log::warn!("{l}"),
            Some((Level::Error, l)) => {
                log::error!(target: crate::logging::FILE_ONLY, "{l}");
                eprintln!("vblaunch: error: {l}");
            }
            None => {}
        }
    }
}

/// The GUI executable's file name on Windows.
pub const GUI_EXE: &str = "vblaunchw.exe";

/// What a Windows shortcut starts: `vblaunchw.exe` next to `exe` (no console
/// window), or `exe` itself when that is missing (e.g. after `cargo install
/// --bin vblaunch`), so the shortcut still works, with a console.
pub fn shortcut_exe(
    exe: &std::path::Path,
    is_file: &dyn Fn(&std::path::Path) -> bool,
) -> std::path::PathBuf {
    // Windows path rules whatever OS runs this (Linux tests render .lnk files).
    let s = exe.to_string_lossy();
    let dir = s.rfind(['\\', '/']).map_or("", |i| &s[..=i]);
    let gui = std::path::PathBuf::from(format!("{dir}{GUI_EXE}"));
    if is_file(&gui) {
        gui
    } else {
        exe.to_path_buf()
    }
}

/// `vblaunchw`'s main: run the command line; show a failure in the face's
/// dialog (with *Retry* where the user can fix it, e.g. by closing
/// VirtualBox) and exit with the same code as `vblaunch`.
pub fn gui_main() -> std::process::ExitCode {
    use clap::Parser;
    loop {
        let args = crate::cli::with_implicit_launch(std::env::args_os().collect());
        let cli = match crate::cli::Cli::try_parse_from(args) {
            Ok(cli) => cli,
            Err(e) if !e.use_stderr() => {
                // --help, --version: nobody reads a GUI program's stdout.
                show_plain("vblaunch", &e.to_string());
                return std::process::ExitCode::SUCCESS;
            }
            Err(e) => {
                let err = crate::exit::fail(crate::exit::Code::Usage, e.to_string());
                return fail_once("vblaunch", &err);
            }
        };
        let vm = match &cli.command {
            crate::cli::Command::Launch { vm } | crate::cli::Command::Fold { vm } => vm.clone(),
            _ => "vblaunch".to_string(),
        };
        let pause = cli.global.pause_on_error;
        let launch = matches!(cli.command, crate::cli::Command::Launch { .. });
        let global = cli.global.clone();
        match crate::run(cli) {
            Ok(()) => return std::process::ExitCode::SUCCESS,
            Err(err) => {
                let code = crate::exit::code_of(&err);
                // A double-click on the shortcut of a VM that vblaunch holds
                // and that runs is not an error.
                if launch && code == crate::exit::Code::LockHeld {
                    let running = vm_is_running(global, &vm);
                    if let model::SecondLaunch::ShowRunningVm { message } =
                        model::second_launch(&vm, code, running)
                    {
                        log::info!("{message} ({err})");
                        show_note(&format!("{vm} — vblaunch"), &message);
                        return std::process::ExitCode::SUCCESS;
                    }
                }
                crate::report_error(&err);
                if !pause && !cfg!(windows) {
                    return std::process::ExitCode::from(code.as_u8());
                }
                let report = model::Report::from_error(&err);
                let log = crate::log_file_path().display().to_string();
                let dialog = model::failure_dialog(&vm, &report, &log);
                if show_failure(&dialog) == Choice::Retry {
                    log::info!("retrying at the user's request");
                    continue;
                }
                return std::process::ExitCode::from(code.as_u8());
            }
        }
    }
}

/// Whether VirtualBox says `vm` is running; `None` when it cannot be asked.
fn vm_is_running(global: crate::cli::Global, vm: &str) -> Option<bool> {
    let ctx = crate::Context::new(global).ok()?;
    let eff = ctx.effective(&[vm]);
    let info = ctx.vbox(&eff).ok()?.show_vm_info(vm).ok()?;
    Some(info.state == crate::vbox::state::VmState::Running)
}

fn fail_once(vm: &str, err: &anyhow::Error) -> std::process::ExitCode {
    let code = crate::exit::code_of(err);
    crate::report_error(err);
    let report = model::Report::from_error(err);
    let log = crate::log_file_path().display().to_string();
    show_failure(&model::failure_dialog(vm, &report, &log));
    std::process::ExitCode::from(code.as_u8())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Retry,
    Close,
}

/// Show the failure dialog. With `VBLAUNCH_GUI_TRANSCRIPT` set (tests: Wine
/// in CI has no one to click), append the dialog's text to that file instead
/// and choose *Close*.
fn show_failure(d: &model::FailureDialog) -> Choice {
    let buttons: Vec<&str> = d.buttons.iter().map(|b| b.label()).collect();
    let entry = format!("{}\n[{}]", d.full_text(), buttons.join("] ["));
    if transcript(&entry) {
        return Choice::Close;
    }
    show_native(d)
}

/// A short note ("Dev Box is already running.").
fn show_note(title: &str, text: &str) {
    if !transcript(&format!("{title}\n\n{text}\n[OK]")) {
        show_plain(title, text);
    }
}

/// With `VBLAUNCH_GUI_TRANSCRIPT` set, append a dialog's text to that file
/// instead of showing it; returns whether it did.
fn transcript(entry: &str) -> bool {
    use std::io::Write;
    let Some(path) = std::env::var_os("VBLAUNCH_GUI_TRANSCRIPT").filter(|p| !p.is_empty()) else {
        return false;
    };
    let written = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .and_then(|mut f| f.write_all(format!("{entry}\n---\n").as_bytes()));
    if let Err(e) = written {
        log::warn!("cannot write the dialog transcript: {e}");
    }
    true
}

#[cfg(windows)]
fn show_native(d: &model::FailureDialog) -> Choice {
    match windows::show_failure(d) {
        windows::Choice::Retry => Choice::Retry,
        windows::Choice::Close => Choice::Close,
    }
}

/// Elsewhere: what `vblaunch --pause-on-error` does (keep a terminal open,
/// or tell the desktop).
#[cfg(not(windows))]
fn show_native(d: &model::FailureDialog) -> Choice {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        crate::pause_for_enter();
    } else {
        crate::notify::failure("vblaunch", &d.full_text());
    }
    Choice::Close
}

#[cfg(windows)]
fn show_plain(title: &str, text: &str) {
    windows::show_info(title, text);
}

#[cfg(not(windows))]
fn show_plain(_title: &str, text: &str) {
    print!("{text}");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{fail, Code};

    fn console() -> Console {
        Console {
            vm: "Dev Box".into(),
        }
    }

    #[test]
    fn console_prints_what_vblaunch_prints_today() {
        let c = console();
        assert_eq!(
            c.line(&Event::WaitingForVirtualBox {
                front_ends: "VirtualBox (pid 7)".into()
            }),
            Some((
                Level::Warn,
                "VirtualBox is running: VirtualBox (pid 7). Close VirtualBox to continue (Ctrl-C to abort).".into()
            ))
        );
        assert_eq!(
            c.line(&Event::Started {
                start_type: "gui".into()
            }),
            Some((Level::Info, "Started VM 'Dev Box' (gui).".into()))
        );
        assert_eq!(c.line(&Event::Progress { percent: 40 }), None);
        assert!(c
            .line(&Event::Holding)
            .unwrap()
            .1
            .contains("Ctrl-C stops waiting"));
    }

    #[test]
    fn windows_shortcut_starts_the_gui_exe_next_to_vblaunch() {
        use crate::platform::Os;
        use crate::shortcut::{render, Target};
        use std::path::{Path, PathBuf};
        let console = Path::new(r"C:\Tools\vblaunch.exe");
        let exe = shortcut_exe(console, &|p| p == Path::new(r"C:\Tools\vblaunchw.exe"));
        let t = Target {
            exe,
            vm: "Dev Box".into(),
            name: None,
            icon: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.lnk");
        std::fs::write(&p, render(Os::Windows, &t).0).unwrap();
        let link = lnk::ShellLink::open(&p, lnk::encoding::WINDOWS_1252).unwrap();
        assert_eq!(
            link.link_target().as_deref(),
            Some(r"C:\Tools\vblaunchw.exe")
        );
        assert_eq!(
            link.string_data().working_dir().as_deref(),
            Some(r"C:\Tools")
        );
        // Without vblaunchw.exe the shortcut still starts vblaunch.exe.
        assert_eq!(shortcut_exe(console, &|_| false), PathBuf::from(console));
    }

    #[test]
    fn install_shortcut_cmd_makes_the_shortcuts_with_vblaunch_shortcut() {
        // The .cmd runs `vblaunch.exe shortcut` (console: its output is read),
        // which writes .lnk files that start vblaunchw.exe (tested above); it
        // refuses when vblaunchw.exe was not unpacked.
        let cmd = include_str!("../../packaging/windows/install-shortcut.cmd");
        assert!(cmd.contains("\"%~dp0vblaunch.exe\" shortcut %*"), "{cmd}");
        assert!(cmd.contains("if not exist \"%~dp0vblaunchw.exe\""), "{cmd}");
        assert!(cmd.contains("\r\n"), "cmd.exe files keep CRLF line ends");
    }

    #[test]
    fn console_failure_is_the_error_chain_report_error_prints() {
        let err = Err::<(), _>(fail(Code::Refused, "the snapshot tree is odd"))
            .map_err(|e| e.context("while launching"))
            .unwrap_err();
        let r = model::Report::from_error(&err);
        let (level, text) = console().line(&Event::Failed(r)).unwrap();
        assert_eq!(level, Level::Error);
        assert_eq!(
            text,
            "while launching\n  caused by: the snapshot tree is odd"
        );
    }
}
