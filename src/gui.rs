//! The GUI front end: `vblaunchw`'s main (the program shortcuts start). It
//! runs the command line like `vblaunch`, shows a failure in the platform's
//! dialog (with *Retry* where the user can fix it, e.g. by closing
//! VirtualBox) instead of a console that waits for Enter, and exits with the
//! same code. What the dialogs say comes from [`crate::face::model`].
use std::sync::Arc;

#[cfg(not(windows))]
use crate::face::desktop;
use crate::face::model::VmNow;
use crate::face::{Event, Face};

/// `vblaunchw`'s main: run the command line with the platform's native face
/// (progress, notification icon); show a failure in the face's dialog (with
/// *Retry* where the user can fix it, e.g. by closing VirtualBox) and exit
/// with the same code as `vblaunch`.
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
        let (vm, shown) = match &cli.command {
            crate::cli::Command::Launch { vm } | crate::cli::Command::Fold { vm } => {
                (vm.clone(), true)
            }
            _ => ("vblaunch".to_string(), false),
        };
        let pause = cli.global.pause_on_error;
        let launch = matches!(cli.command, crate::cli::Command::Launch { .. });
        let global = cli.global.clone();
        // *Run doctor* diagnoses the launch's VM, as the launch sees it.
        let doctor = shown.then(|| crate::face::model::console_args(&global, "doctor", &vm));
        // A double-click on the shortcut of a VM that runs: show the VM.
        if launch && !global.dry_run {
            let _ = crate::logging::init(global.verbosity(), &crate::logging::log_file_path());
            if let crate::face::model::SecondLaunch::ShowRunningVm { message, warn } =
                crate::face::model::launch_of_running_vm(&vm, vm_is_running(global.clone(), &vm))
            {
                log::info!("{message} Nothing to fold or start (a shortcut launch).");
                show_running_vm(&vm, &message, warn);
                return std::process::ExitCode::SUCCESS;
            }
        }
        let face = if shown {
            platform_face(&vm, &global)
        } else {
            None
        };
        let result = crate::run_with(cli, face.clone());
        let err = match result {
            Ok(()) => return std::process::ExitCode::SUCCESS,
            Err(err) => err,
        };
        let code = crate::exit::code_of(&err);
        // The face's windows close before the dialog shows.
        let cancelled = face.as_ref().is_some_and(|f| f.cancelled());
        if let Some(f) = &face {
            f.event(&Event::Failed(crate::face::model::Report::from_error(&err)));
        }
        drop(face);
        if cancelled && code == crate::exit::Code::VirtualBoxRunning {
            // The user pressed Cancel while vblaunch waited: nothing changed,
            // and nothing to explain.
            log::info!("{err}");
            return std::process::ExitCode::from(code.as_u8());
        }
        // A double-click on the shortcut of a VM that vblaunch holds
        // and that runs is not an error.
        if launch && code == crate::exit::Code::LockHeld {
            let running = vm_is_running(global, &vm);
            if let crate::face::model::SecondLaunch::ShowRunningVm { message, warn } =
                crate::face::model::second_launch(&vm, code, running)
            {
                log::info!("{message} ({err})");
                show_running_vm(&vm, &message, warn);
                return std::process::ExitCode::SUCCESS;
            }
        }
        crate::report::report_error(&err);
        if !pause && !cfg!(windows) {
            return std::process::ExitCode::from(code.as_u8());
        }
        let report = crate::face::model::Report::from_error(&err);
        let log = crate::logging::log_file_path().display().to_string();
        let dialog = crate::face::model::failure_dialog(&vm, &report, &log);
        if show_failure(&dialog, doctor.as_deref()) == Choice::Retry {
            log::info!("retrying at the user's request");
            continue;
        }
        return std::process::ExitCode::from(code.as_u8());
    }
}

/// The native face of a launch or fold on this platform (None: the console
/// face, whose output nobody sees in a GUI program, but the log has it all).
#[cfg(windows)]
fn platform_face(vm: &str, global: &crate::cli::Global) -> Option<Arc<dyn Face>> {
    Some(Arc::new(crate::face::windows::WindowsFace::start(
        vm, global,
    )))
}

/// On a Linux desktop: zenity's or kdialog's windows when there are
/// ([`desktop`]); else None.
#[cfg(not(windows))]
fn platform_face(vm: &str, global: &crate::cli::Global) -> Option<Arc<dyn Face>> {
    let exe = std::env::current_exe().ok()?;
    let kit = desktop::init(Some(desktop::doctor_argv(&exe, global, vm)))?;
    let log = crate::logging::log_file_path().display().to_string();
    Some(Arc::new(desktop::DesktopFace::new(kit, vm, &log)))
}

/// A second launch of a VM that runs: its VirtualBox window comes to the
/// front; without one, the note says it runs.
fn show_running_vm(vm: &str, message: &str, warn: bool) {
    #[cfg(windows)]
    if let Some(title) = crate::face::windows::bring_vm_window_to_front(vm) {
        log::info!("brought the window '{title}' to the front");
        let _ =
            crate::face::transcript(&format!("{vm} — vblaunch\n\nbrought to the front: {title}"));
        if !warn {
            return;
        }
    }
    if warn {
        log::warn!("{message}");
    }
    show_note(&format!("{vm} — vblaunch"), message);
}

/// Whether VirtualBox says `vm` is running; `None` when it cannot be asked.
fn vm_is_running(global: crate::cli::Global, vm: &str) -> Option<VmNow> {
    let ctx = crate::Context::new(global, None).ok()?;
    let eff = ctx.effective(&[vm]);
    let info = ctx.vbox(&eff).ok()?.show_vm_info(vm).ok()?;
    Some(if info.state == crate::vbox::state::VmState::Running {
        // On a snapshot, the VM writes to its differencing image.
        VmNow::Running {
            frozen: info.current().is_some(),
        }
    } else {
        VmNow::NotRunning
    })
}

fn fail_once(vm: &str, err: &anyhow::Error) -> std::process::ExitCode {
    let code = crate::exit::code_of(err);
    crate::report::report_error(err);
    let report = crate::face::model::Report::from_error(err);
    let log = crate::logging::log_file_path().display().to_string();
    show_failure(&crate::face::model::failure_dialog(vm, &report, &log), None);
    std::process::ExitCode::from(code.as_u8())
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Choice {
    Retry,
    Close,
}

/// Show the failure dialog; `doctor`: the arguments of *Run doctor*'s
/// `vblaunch` (None: no VM to diagnose, so no such button). With
/// `VBLAUNCH_GUI_TRANSCRIPT` set (tests: Wine in CI has no one to click),
/// append the dialog's text to that file instead and choose *Close*.
fn show_failure(
    d: &crate::face::model::FailureDialog,
    doctor: Option<&[std::ffi::OsString]>,
) -> Choice {
    let mut d = d.clone();
    if doctor.is_none() {
        d.buttons
            .retain(|b| *b != crate::face::model::Button::RunDoctor);
    }
    let buttons: Vec<&str> = d.buttons.iter().map(|b| b.label()).collect();
    let entry = format!("{}\n[{}]", d.full_text(), buttons.join("] ["));
    if crate::face::transcript(&entry) {
        return Choice::Close;
    }
    show_native(&d, doctor.unwrap_or_default())
}

/// A short note ("Dev Box is already running.").
fn show_note(title: &str, text: &str) {
    if !crate::face::transcript(&format!("{title}\n\n{text}\n[OK]")) {
        show_plain(title, text);
    }
}

#[cfg(windows)]
fn show_native(d: &crate::face::model::FailureDialog, doctor: &[std::ffi::OsString]) -> Choice {
    match crate::face::windows::show_failure(d, doctor) {
        crate::face::windows::Choice::Retry => Choice::Retry,
        crate::face::windows::Choice::Close => Choice::Close,
    }
}

/// Elsewhere: zenity's or kdialog's dialog ([`desktop`], whose kit has
/// *Run doctor*'s argv), or what `vblaunch --pause-on-error` does (keep a
/// terminal open, or tell the desktop).
#[cfg(not(windows))]
fn show_native(d: &crate::face::model::FailureDialog, _doctor: &[std::ffi::OsString]) -> Choice {
    use std::io::IsTerminal;
    if let Some(kit) = desktop::kit() {
        return if desktop::show_failure(kit, d) {
            Choice::Retry
        } else {
            Choice::Close
        };
    }
    if std::io::stdin().is_terminal() {
        crate::report::pause_for_enter();
    } else {
        crate::notify::failure("vblaunch", &d.full_text());
    }
    Choice::Close
}

#[cfg(windows)]
fn show_plain(title: &str, text: &str) {
    crate::face::windows::show_info(title, text);
}

#[cfg(not(windows))]
fn show_plain(title: &str, text: &str) {
    use std::io::IsTerminal;
    match desktop::kit() {
        Some(kit) if !std::io::stdout().is_terminal() => desktop::show_info(kit, title, text),
        _ => print!("{text}"),
    }
}
