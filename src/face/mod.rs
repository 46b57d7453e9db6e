//! The faces vblaunch shows a user: the console (what it prints), and, for a
//! shortcut launch, native windows (`vblaunchw.exe` on Windows).
//!
//! The engine reports what happens as [`Event`]s to the run's [`Face`]
//! (`Context::face`); it does not know which face it has. Everything the
//! engine says is also logged (to the log file always, and to the terminal
//! when there is one), so the console face draws only what the log cannot:
//! a call's progress. What a GUI shows is decided by pure functions in
//! [`model`] (titles, texts, percentages, buttons, whether a window appears
//! at all), unit-tested on every OS; the native code only draws what the
//! model says.
pub mod desktop;
pub mod model;
#[cfg(windows)]
pub mod windows;

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
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
    /// A mutating VBoxManage call began (`merge`: a snapshot merge).
    CallBegan { merge: bool },
    /// VBoxManage's progress output ("0%...10%...") reached `percent`.
    Progress { percent: u8 },
    /// The mutating call ended.
    CallEnded,
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

impl Event {
    /// The event for a VBoxManage call's progress.
    pub fn of_call(p: crate::vbox::CallProgress) -> Event {
        use crate::vbox::CallProgress::*;
        match p {
            Began { merge } => Event::CallBegan { merge },
            Percent(percent) => Event::Progress { percent },
            Ended => Event::CallEnded,
        }
    }
}

/// Something that shows a run to its user. Called from the thread that runs
/// the engine; a face with a window of its own runs that window elsewhere.
pub trait Face: Send + Sync {
    fn event(&self, event: &Event);
    /// Whether the user asked to stop waiting (a *Cancel* button while
    /// VirtualBox is open): the run then ends, having changed nothing.
    fn cancelled(&self) -> bool {
        false
    }
}

/// The console face: a mutating call's progress on the terminal — a bar
/// with the elapsed time for a merge on a terminal, VirtualBox's own
/// `0%...10%...` text otherwise. Everything else the console shows is the
/// engine's log lines.
pub struct Console {
    show_progress: bool,
    drawing: Mutex<Drawing>,
}

enum Drawing {
    Idle,
    Bar(indicatif::ProgressBar),
    Text { printed: bool },
}

impl Console {
    /// `show_progress`: draw progress at all (not with `--quiet`).
    pub fn new(show_progress: bool) -> Console {
        Console {
            show_progress,
            drawing: Mutex::new(Drawing::Idle),
        }
    }
}

impl Face for Console {
    fn event(&self, event: &Event) {
        if !self.show_progress {
            return;
        }
        let mut d = self.drawing.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::CallBegan { merge } => {
                *d = if *merge && std::io::stderr().is_terminal() {
                    let bar = indicatif::ProgressBar::new(100);
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "  merging [{bar:40}] {pos:>3}%  {elapsed_precise}",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    );
                    bar.enable_steady_tick(Duration::from_millis(500));
                    Drawing::Bar(bar)
                } else {
                    Drawing::Text { printed: false }
                };
            }
            Event::Progress { percent } => match &mut *d {
                Drawing::Bar(bar) => bar.set_position(u64::from(*percent)),
                Drawing::Text { printed } => {
                    let mut err = std::io::stderr().lock();
                    let _ = write!(err, "{percent}%...");
                    let _ = err.flush();
                    *printed = true;
                }
                Drawing::Idle => {}
            },
            Event::CallEnded => match std::mem::replace(&mut *d, Drawing::Idle) {
                Drawing::Bar(bar) => bar.finish_and_clear(),
                Drawing::Text { printed: true } => eprintln!(),
                _ => {}
            },
            _ => {}
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

/// Whether `VBLAUNCH_GUI_TRANSCRIPT` asks for a transcript instead of windows.
pub fn transcript_on() -> bool {
    std::env::var_os("VBLAUNCH_GUI_TRANSCRIPT").is_some_and(|p| !p.is_empty())
}

/// With `VBLAUNCH_GUI_TRANSCRIPT` set, append what a window shows to that
/// file instead of showing it; returns whether it did.
pub fn transcript(entry: &str) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{fail, Code};

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
        assert_eq!(
            r.console_text(),
            "while launching\n  caused by: the snapshot tree is odd"
        );
    }
}
