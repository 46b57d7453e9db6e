//! What a GUI face shows, as plain data: the progress window (and whether it
//! appears at all), the failure dialog, the notification-area icon, and the
//! single-instance case. Pure: the native code draws these, tests read them.
use std::time::Duration;

use super::Event;
use crate::exit::Code;

/// A launch that is done within this time shows no window of vblaunch's own.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);

/// A failure, as the console prints it and the dialog shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub code: Code,
    /// The error and its causes, one per part (what `report_error` prints).
    pub chain: Vec<String>,
}

impl Report {
    pub fn from_error(err: &anyhow::Error) -> Report {
        Report {
            code: crate::exit::code_of(err),
            chain: err.chain().map(|e| e.to_string()).collect(),
        }
    }

    /// The console's text: the error, then "  caused by: …" per cause.
    pub fn console_text(&self) -> String {
        let mut text = self.chain.first().cloned().unwrap_or_default();
        for cause in self.chain.iter().skip(1) {
            text.push_str(&format!("\n  caused by: {cause}"));
        }
        text
    }
}

/// The buttons of vblaunch's dialogs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Button {
    /// Open the log file in the default editor.
    OpenLog,
    /// A console running `vblaunch doctor "<VM>"`, kept open.
    RunDoctor,
    /// Put the dialog's whole text on the clipboard.
    CopyDetails,
    Close,
    /// Try the launch again (after the user did what the dialog asks).
    Retry,
    /// Stop; nothing was changed.
    Cancel,
}

impl Button {
    pub fn label(self) -> &'static str {
        match self {
            Button::OpenLog => "Open log",
            Button::RunDoctor => "Run doctor",
            Button::CopyDetails => "Copy details",
            Button::Close => "Close",
            Button::Retry => "Retry",
            Button::Cancel => "Cancel",
        }
    }
}

/// The failure dialog.
#[derive(Debug, Clone, PartialEq)]
pub struct FailureDialog {
    pub title: String,
    /// The large first line: what went wrong, or what the user must do.
    pub heading: String,
    /// The rest of vblaunch's message (without the sections below).
    pub body: String,
    /// "What this means" (VirtualBox failures vblaunch recognises).
    pub meaning: Option<String>,
    /// "What to do".
    pub what_to_do: Option<String>,
    /// VirtualBox's own words, under "Details".
    pub details: Option<String>,
    /// "Exit code 9 · log: …".
    pub footer: String,
    pub exit_code: u8,
    pub buttons: Vec<Button>,
    pub default_button: Button,
}

impl FailureDialog {
    /// Everything the dialog says, for *Copy details* (and for a face that
    /// can show only plain text).
    pub fn full_text(&self) -> String {
        format!("{}\n\n{}", self.title, self.message_text())
    }

    /// The dialog's text under its title bar.
    pub fn message_text(&self) -> String {
        let mut out = self.heading.clone();
        if !self.body.is_empty() {
            out.push_str(&format!("\n\n{}", self.body));
        }
        if let Some(m) = &self.meaning {
            out.push_str(&format!("\n\nWhat this means: {m}"));
        }
        if let Some(t) = &self.what_to_do {
            out.push_str(&format!("\n\nWhat to do: {t}"));
        }
        if let Some(d) = &self.details {
            out.push_str(&format!("\n\nDetails — VirtualBox said:\n{d}"));
        }
        out.push_str(&format!("\n\n{}", self.footer));
        out
    }
}

/// The failure dialog for a report: vblaunch's message split into the parts
/// the console shows ("What this means:", "What to do:", "VirtualBox said:"
/// with its indented lines), none of them dropped.
pub fn failure_dialog(vm: &str, report: &Report, log_file: &str) -> FailureDialog {
    let mut body: Vec<String> = Vec::new();
    let mut meaning = None;
    let mut what_to_do = None;
    let mut details: Vec<String> = Vec::new();
    let mut in_details = false;
    for part in &report.chain {
        for line in part.lines() {
            if in_details && (line.starts_with(' ') || line.starts_with('\t')) {
                details.push(line.trim().to_string());
                continue;
            }
            in_details = false;
            if let Some(m) = line.strip_prefix("What this means: ") {
                meaning = Some(m.to_string());
            } else if let Some(t) = line.strip_prefix("What to do: ") {
                what_to_do = Some(t.to_string());
            } else if line.trim_end() == "VirtualBox said:" {
                in_details = true;
            } else if !line.trim().is_empty() && !body.iter().any(|b| b == line) {
                // A cause repeated in the context above it is said once.
                body.push(line.to_string());
            }
        }
    }
    let (heading, buttons, default_button) = match report.code {
        Code::VirtualBoxRunning => (
            format!("Close the VirtualBox window '{vm}' to continue"),
            vec![Button::Retry, Button::Cancel],
            Button::Retry,
        ),
        code => (
            heading_for(code).to_string(),
            vec![
                Button::OpenLog,
                Button::RunDoctor,
                Button::CopyDetails,
                Button::Close,
            ],
            Button::Close,
        ),
    };
    FailureDialog {
        title: format!("{vm} — vblaunch"),
        heading,
        body: body.join("\n"),
        meaning,
        what_to_do,
        details: (!details.is_empty()).then(|| details.join("\n")),
        footer: format!("Exit code {} · log: {log_file}", report.code.as_u8()),
        exit_code: report.code.as_u8(),
        buttons,
        default_button,
    }
}

/// The dialog's heading per exit code (the exit-code table in plain words).
fn heading_for(code: Code) -> &'static str {
    match code {
        Code::Ok => "Done",
        Code::Internal => "vblaunch hit an unexpected error",
        Code::Usage => "The command line or the configuration file is wrong",
        Code::VirtualBoxRunning => "VirtualBox is still open",
        Code::LockHeld => "vblaunch is already working on this VM",
        Code::VmState => "The VM is not powered off, so it was not started",
        Code::Refused => "vblaunch did not touch the VM: its snapshots or disks make a fold unsafe",
        Code::VmNotFound => "VirtualBox does not know this VM",
        Code::NoVBoxManage => "VirtualBox (VBoxManage) was not found",
        Code::VBoxManageFailed => "A VirtualBox command failed",
        Code::Verification => "After the fold, VirtualBox does not hold what vblaunch expected",
        Code::StartFailed => "The VM did not start (the fold was kept; the base disk is safe)",
        Code::Exists => "A file is in the way",
        Code::HookFailed => "A hook failed",
    }
}

/// The arguments of the console `vblaunch` that *Run doctor* and *Status*
/// run for `vm`: the launch's `--config` and `--vboxmanage` (so it looks at
/// the same VirtualBox), then `<command> -- <vm>` (a VM named `-x` is a VM).
pub fn console_args(
    global: &crate::cli::Global,
    command: &str,
    vm: &str,
) -> Vec<std::ffi::OsString> {
    use std::ffi::OsString;
    let mut args = Vec::new();
    if let Some(c) = &global.config {
        args.extend([OsString::from("--config"), c.clone().into_os_string()]);
    }
    if let Some(v) = &global.vboxmanage {
        args.extend([OsString::from("--vboxmanage"), v.clone().into_os_string()]);
    }
    args.extend([command, "--", vm].map(OsString::from));
    args
}

/// The argv that *Run doctor* starts on Windows: a console that runs
/// `vblaunch ARGS` ([`console_args`]) and stays open (`cmd /s /k` strips
/// only the outer quotes).
pub fn doctor_command_line(console_exe: &str, args: &[std::ffi::OsString]) -> String {
    use crate::shortcut::windows::quote_arg;
    let mut inner = quote_arg(console_exe);
    for a in args {
        inner.push(' ');
        inner.push_str(&quote_arg(&a.to_string_lossy()));
    }
    format!("/s /k \"{inner}\"")
}

/// Where a launch is.
#[derive(Debug, Clone, PartialEq)]
enum Phase {
    Checking,
    Waiting { front_ends: String },
    Merging { bytes: Option<u64>, percent: u8 },
    Starting,
    Started,
    Holding,
    Ended { folded: bool },
    Failed(Report),
}

/// The progress window.
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressView {
    pub title: String,
    pub heading: String,
    pub text: String,
    /// `None`: a bar that only shows activity (no percentage is known).
    pub percent: Option<u8>,
    /// "Elapsed 1:05".
    pub elapsed: String,
    /// Whether *Cancel* is offered (it changes nothing where it is offered).
    pub cancel: bool,
}

/// The notification-area icon while vblaunch holds the session.
#[derive(Debug, Clone, PartialEq)]
pub struct TrayView {
    pub tooltip: String,
    pub menu: Vec<TrayItem>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrayItem {
    /// A dialog with what `vblaunch status "<VM>"` says.
    Status,
    OpenLog,
    /// vblaunch exits, the VM keeps running (like Ctrl-C).
    StopWaiting,
}

impl TrayItem {
    pub fn label(self) -> &'static str {
        match self {
            TrayItem::Status => "Status",
            TrayItem::OpenLog => "Open log",
            TrayItem::StopWaiting => "Stop waiting",
        }
    }
}

/// What the GUI shows at one moment.
#[derive(Debug, Clone, PartialEq)]
pub enum Screen {
    /// No window of vblaunch's own (the VM's window is all the user sees).
    Nothing,
    Progress(ProgressView),
    Failure(FailureDialog),
    Tray(TrayView),
    /// A balloon/toast, after which the icon goes away.
    Toast(String),
}

/// A launch as the GUI sees it: fed with [`Event`]s, asked for a [`Screen`].
#[derive(Debug, Clone)]
pub struct Launch {
    vm: String,
    log_file: String,
    phase: Phase,
    /// The progress window of the current stretch of work is showing.
    shown: bool,
    /// When the current stretch of work (the launch; later the fold on
    /// exit) began, as `screen`'s `at`; `None` while nothing is busy.
    busy_since: Option<Duration>,
}

impl Launch {
    pub fn new(vm: &str, log_file: &str) -> Launch {
        Launch {
            vm: vm.to_string(),
            log_file: log_file.to_string(),
            phase: Phase::Checking,
            shown: false,
            busy_since: Some(Duration::ZERO),
        }
    }

    pub fn apply(&mut self, event: &Event) {
        self.phase = match (event, &self.phase) {
            (Event::WaitingForVirtualBox { front_ends }, _) => Phase::Waiting {
                front_ends: front_ends.clone(),
            },
            (Event::VirtualBoxClosed, _) => Phase::Checking,
            (Event::Merging { bytes }, _) => Phase::Merging {
                bytes: *bytes,
                percent: 0,
            },
            (Event::Progress { percent }, Phase::Merging { bytes, .. }) => Phase::Merging {
                bytes: *bytes,
                percent: (*percent).min(100),
            },
            (Event::Progress { .. } | Event::CallBegan { .. } | Event::CallEnded, other) => {
                other.clone()
            }
            (Event::Starting, _) => Phase::Starting,
            (Event::Started { .. }, _) => Phase::Started,
            (Event::Holding, _) => Phase::Holding,
            (Event::SessionEnded { folded }, _) => Phase::Ended { folded: *folded },
            (Event::Failed(r), _) => Phase::Failed(r.clone()),
        };
    }

    /// What to show `at` after the launch began. A progress window appears
    /// once a stretch of work (the launch, or the fold on exit after the VM
    /// shut down) has taken [`SHOW_AFTER`] (at once when the user must act:
    /// VirtualBox is open), and once shown stays until that work is done.
    /// Its elapsed time counts from the start of that stretch.
    pub fn screen(&mut self, at: Duration) -> Screen {
        let busy = matches!(
            self.phase,
            Phase::Checking | Phase::Waiting { .. } | Phase::Merging { .. } | Phase::Starting
        );
        if !busy {
            self.busy_since = None;
            self.shown = false;
        }
        let since = if busy {
            *self.busy_since.get_or_insert(at)
        } else {
            at
        };
        let took = at.saturating_sub(since);
        let vm = &self.vm;
        let title = format!("{vm} — vblaunch");
        let elapsed = format!("Elapsed {}:{:02}", took.as_secs() / 60, took.as_secs() % 60);
        let busy = |heading: String, text: String, percent, cancel| {
            Screen::Progress(ProgressView {
                title: title.clone(),
                heading,
                text,
                percent,
                elapsed: elapsed.clone(),
                cancel,
            })
        };
        let screen = match &self.phase {
            // No Cancel: the engine asks `Face::cancelled` only while it
            // waits for VirtualBox, so a Cancel here would not stop the fold.
            Phase::Checking => busy(
                format!("Preparing {vm}…"),
                "Checking the VM's snapshots and disks.".to_string(),
                None,
                false,
            ),
            Phase::Waiting { front_ends } => busy(
                "Waiting for VirtualBox to close…".to_string(),
                format!(
                    "Close the VirtualBox window ({front_ends}) and vblaunch goes on. \
                     Cancel stops here; nothing was changed."
                ),
                None,
                true,
            ),
            Phase::Merging { bytes, percent } => busy(
                format!(
                    "Merging the last session ({}) into the base disk — it cannot be cancelled",
                    crate::units::human_or_unknown(*bytes)
                ),
                "Stopping a merge half-way could damage the disk, so there is no Cancel. \
                 You can keep working in other programs."
                    .to_string(),
                Some(*percent),
                false,
            ),
            Phase::Starting => busy(format!("Starting {vm}…"), String::new(), None, false),
            Phase::Started => Screen::Nothing,
            Phase::Holding => Screen::Tray(TrayView {
                tooltip: format!("{vm} is running — its base disk is frozen and safe to back up"),
                menu: vec![TrayItem::Status, TrayItem::OpenLog, TrayItem::StopWaiting],
            }),
            Phase::Ended { folded: true } => {
                Screen::Toast(format!("{vm}: today's work is in the base disk"))
            }
            Phase::Ended { folded: false } => Screen::Toast(format!("{vm} has stopped")),
            Phase::Failed(r) => Screen::Failure(failure_dialog(vm, r, &self.log_file)),
        };
        if let Screen::Progress(_) = &screen {
            let must_act = matches!(self.phase, Phase::Waiting { .. });
            if !(self.shown || must_act || took >= SHOW_AFTER) {
                return Screen::Nothing;
            }
            self.shown = true;
        }
        screen
    }
}

impl ProgressView {
    /// The percentage as the window writes it next to the bar ("40 %"), or
    /// what it says while no percentage is known.
    pub fn percent_label(&self) -> String {
        match self.percent {
            Some(p) => format!("{p}%"),
            None => "Working…".to_string(),
        }
    }
}

impl Screen {
    /// What this screen shows, as the GUI transcript records it
    /// (`VBLAUNCH_GUI_TRANSCRIPT`: tests read what was shown, in order).
    /// The elapsed time is left out, so that an entry changes only when what
    /// the window says does. `None`: nothing of vblaunch's own is shown (a
    /// failure is recorded by the failure dialog itself).
    pub fn transcript(&self) -> Option<String> {
        match self {
            Screen::Nothing | Screen::Failure(_) => None,
            Screen::Progress(p) => {
                let mut out = format!("{}\n\n{}\n", p.title, p.heading);
                if !p.text.is_empty() {
                    out.push_str(&format!("{}\n", p.text));
                }
                out.push_str(&format!("progress: {}\n", p.percent_label()));
                out.push_str(if p.cancel { "[Cancel]" } else { "[no Cancel]" });
                Some(out)
            }
            Screen::Tray(t) => {
                let menu: Vec<&str> = t.menu.iter().map(|i| i.label()).collect();
                Some(format!(
                    "notification icon: {}\nmenu: [{}]",
                    t.tooltip,
                    menu.join("] [")
                ))
            }
            Screen::Toast(text) => Some(format!("balloon: {text}")),
        }
    }
}

/// Whether a top-level window's title is that of `vm`'s own VirtualBox
/// window: "Dev Box [Running] - Oracle VirtualBox" (6.x: "… - Oracle VM
/// VirtualBox"). The name must be the whole first part: "Dev Box 2 [Running]"
/// is another VM's.
pub fn is_vm_window(title: &str, vm: &str) -> bool {
    !vm.is_empty() && title.contains("VirtualBox") && title.starts_with(&format!("{vm} ["))
}

/// The dialog *Status* opens from the notification-area icon: what
/// `vblaunch status "<VM>"` printed, or why it could not say.
#[derive(Debug, Clone, PartialEq)]
pub struct StatusDialog {
    pub title: String,
    pub heading: String,
    pub text: String,
}

pub fn status_dialog(vm: &str, printed: Result<String, String>) -> StatusDialog {
    let (heading, text) = match printed {
        Ok(out) => (format!("{vm} is running"), out.trim_end().to_string()),
        Err(e) => (
            format!("vblaunch could not read the status of {vm}"),
            e.trim_end().to_string(),
        ),
    };
    StatusDialog {
        title: format!("{vm} — vblaunch status"),
        heading,
        text,
    }
}

/// What VirtualBox says of the VM a shortcut launches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmNow {
    /// Not running (a launch goes on).
    NotRunning,
    /// Running; `frozen`: on a snapshot, so its writes go to a differencing
    /// image and the base disks do not change.
    Running { frozen: bool },
}

/// The note for a VM that runs already: its name, and — when it runs
/// without a snapshot (started from VirtualBox, not from the shortcut) —
/// that its base disk changes under a backup, and what to do.
fn already_running(vm: &str, frozen: bool) -> String {
    if frozen {
        format!("{vm} is already running.")
    } else {
        format!(
            "{vm} is already running, without a snapshot (it was not started by vblaunch): it \
             writes straight into its base disk, so a backup of that disk now is not \
             consistent. Shut {vm} down and start it from this shortcut."
        )
    }
}

/// What a second launch of a VM that vblaunch already holds does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecondLaunch {
    /// The VM runs: bring its window to the front (or say it runs); exit 0.
    /// `warn`: the note must show even then (the base disk is not frozen).
    ShowRunningVm { message: String, warn: bool },
    /// Not the single-instance case: show the failure as usual.
    Fail,
}

/// A double-click on the shortcut while vblaunch holds the VM (lock held) and
/// the VM is running is not an error. `now`: `None` when VirtualBox could
/// not be asked (then the lock error is shown, failing closed).
pub fn second_launch(vm: &str, code: Code, now: Option<VmNow>) -> SecondLaunch {
    if code == Code::LockHeld {
        launch_of_running_vm(vm, now)
    } else {
        SecondLaunch::Fail
    }
}

/// A shortcut launch of a VM that already runs — started by an earlier
/// launch that still waits for it, or from VirtualBox: there is nothing to
/// fold or start, and a double-click does not mean "wait until its window
/// closes" (which is what the launch would do: the VM's window is a
/// VirtualBox front end). `None` (VirtualBox could not be asked): launch as
/// usual ([`SecondLaunch::Fail`] here means: not this case, go on).
pub fn launch_of_running_vm(vm: &str, now: Option<VmNow>) -> SecondLaunch {
    match now {
        Some(VmNow::Running { frozen }) => SecondLaunch::ShowRunningVm {
            message: already_running(vm, frozen),
            warn: !frozen,
        },
        _ => SecondLaunch::Fail,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::fail;

    const LOG: &str = r"C:\Users\me\AppData\Local\vblaunch\vblaunch.log";

    fn at(ms: u64) -> Duration {
        Duration::from_millis(ms)
    }

    fn progress(s: Screen) -> ProgressView {
        match s {
            Screen::Progress(p) => p,
            other => panic!("expected a progress window, got {other:?}"),
        }
    }

    #[test]
    fn a_fast_launch_shows_nothing() {
        let mut l = Launch::new("Dev Box", LOG);
        assert_eq!(l.screen(at(10)), Screen::Nothing);
        l.apply(&Event::Merging {
            bytes: Some(1 << 20),
        });
        l.apply(&Event::Progress { percent: 100 });
        assert_eq!(l.screen(at(400)), Screen::Nothing);
        l.apply(&Event::Starting);
        assert_eq!(l.screen(at(800)), Screen::Nothing);
        l.apply(&Event::Started {
            start_type: "gui".into(),
        });
        assert_eq!(l.screen(at(900)), Screen::Nothing);
    }

    #[test]
    fn a_slow_fold_shows_progress_with_its_percentages_and_no_cancel() {
        let mut l = Launch::new("Dev Box", LOG);
        l.apply(&Event::Merging {
            bytes: Some(1_395_864_371),
        });
        assert_eq!(l.screen(at(500)), Screen::Nothing);
        let p = progress(l.screen(at(1000)));
        assert_eq!(p.title, "Dev Box — vblaunch");
        assert_eq!(
            p.heading,
            "Merging the last session (1.3 GiB) into the base disk — it cannot be cancelled"
        );
        assert!(p.text.contains("no Cancel"), "{}", p.text);
        assert!(!p.cancel);
        assert_eq!(p.percent, Some(0));
        for (t, pct) in [(2_000, 10), (3_500, 40), (65_000, 100)] {
            l.apply(&Event::Progress { percent: pct });
            let p = progress(l.screen(at(t)));
            assert_eq!(p.percent, Some(pct));
        }
        assert_eq!(progress(l.screen(at(65_000))).elapsed, "Elapsed 1:05");
        // Once shown, the window stays through the start, then closes.
        l.apply(&Event::Starting);
        let p = progress(l.screen(at(65_100)));
        assert_eq!(p.heading, "Starting Dev Box…");
        assert_eq!(p.percent, None);
        l.apply(&Event::Started {
            start_type: "gui".into(),
        });
        assert_eq!(l.screen(at(65_200)), Screen::Nothing);
    }

    #[test]
    fn waiting_for_virtualbox_shows_at_once_and_offers_cancel() {
        let mut l = Launch::new("Dev Box", LOG);
        l.apply(&Event::WaitingForVirtualBox {
            front_ends: "VirtualBox (pid 7)".into(),
        });
        let p = progress(l.screen(at(50)));
        assert_eq!(p.heading, "Waiting for VirtualBox to close…");
        assert!(p.text.contains("VirtualBox (pid 7)"));
        assert!(p.text.contains("nothing was changed"));
        assert!(p.cancel);
        assert_eq!(p.percent, None);
    }

    #[test]
    fn cancel_is_offered_only_while_waiting_for_virtualbox() {
        // The engine stops for Cancel only in its wait for VirtualBox.
        let mut l = Launch::new("Dev Box", LOG);
        assert!(!progress(l.screen(at(1500))).cancel, "checking");
        l.apply(&Event::WaitingForVirtualBox {
            front_ends: "VirtualBox (pid 7)".into(),
        });
        assert!(progress(l.screen(at(1600))).cancel, "waiting");
        l.apply(&Event::VirtualBoxClosed);
        assert!(!progress(l.screen(at(1700))).cancel, "checking again");
    }

    #[test]
    fn progress_outside_a_merge_changes_nothing() {
        let mut l = Launch::new("Dev Box", LOG);
        l.apply(&Event::Starting);
        l.apply(&Event::Progress { percent: 50 });
        assert_eq!(progress(l.screen(at(2000))).heading, "Starting Dev Box…");
    }

    fn vbox_failure() -> Report {
        // What `vbox::call_failed` builds, wrapped as `cmd::fold` does.
        let inner = fail(
            Code::VBoxManageFailed,
            "VBoxManage failed (exit code 1): VBoxManage snapshot Dev delete {abc}\n\
             VirtualBox said:\n  VBoxManage: error: Not enough free storage space\n  \
             VBoxManage: error: Details: code E_FAIL\n\
             What this means: The disk holding the VM is too full to merge the snapshot.\n\
             What to do: Free space on that disk, then run vblaunch again.",
        );
        Report::from_error(&inner.context("merging the last session of VM 'Dev Box'"))
    }

    #[test]
    fn a_virtualbox_failure_gives_meaning_what_to_do_and_virtualbox_words() {
        let d = failure_dialog("Dev Box", &vbox_failure(), LOG);
        assert_eq!(d.title, "Dev Box — vblaunch");
        assert_eq!(d.heading, "A VirtualBox command failed");
        assert_eq!(
            d.body,
            "merging the last session of VM 'Dev Box'\n\
             VBoxManage failed (exit code 1): VBoxManage snapshot Dev delete {abc}"
        );
        assert_eq!(
            d.meaning.as_deref(),
            Some("The disk holding the VM is too full to merge the snapshot.")
        );
        assert_eq!(
            d.what_to_do.as_deref(),
            Some("Free space on that disk, then run vblaunch again.")
        );
        assert_eq!(
            d.details.as_deref(),
            Some(
                "VBoxManage: error: Not enough free storage space\n\
                 VBoxManage: error: Details: code E_FAIL"
            )
        );
        assert_eq!(d.exit_code, 9);
        assert_eq!(d.footer, format!("Exit code 9 · log: {LOG}"));
        assert_eq!(
            d.buttons,
            [
                Button::OpenLog,
                Button::RunDoctor,
                Button::CopyDetails,
                Button::Close
            ]
        );
        assert_eq!(d.default_button, Button::Close);
        // Copy details loses nothing the console shows.
        let all = d.full_text();
        for part in vbox_failure().console_text().lines() {
            let part = part.trim().trim_start_matches("caused by: ");
            assert!(all.contains(part), "{part:?} missing from\n{all}");
        }
    }

    #[test]
    fn each_failure_kind_has_its_heading_and_exit_code() {
        for (code, heading) in [
            (Code::LockHeld, "vblaunch is already working on this VM"),
            (Code::VmNotFound, "VirtualBox does not know this VM"),
            (Code::NoVBoxManage, "VirtualBox (VBoxManage) was not found"),
            (
                Code::StartFailed,
                "The VM did not start (the fold was kept; the base disk is safe)",
            ),
            (Code::Internal, "vblaunch hit an unexpected error"),
        ] {
            let r = Report::from_error(&fail(code, "the message"));
            let d = failure_dialog("Dev Box", &r, LOG);
            assert_eq!(d.heading, heading);
            assert_eq!(d.body, "the message");
            assert_eq!(d.exit_code, code.as_u8());
            assert_eq!((d.meaning, d.what_to_do, d.details), (None, None, None));
            assert!(d.buttons.contains(&Button::RunDoctor));
        }
        // A plain (untyped) error is internal, exit 1.
        let d = failure_dialog(
            "Dev Box",
            &Report::from_error(&anyhow::anyhow!("boom")),
            LOG,
        );
        assert_eq!((d.exit_code, d.body.as_str()), (1, "boom"));
    }

    #[test]
    fn virtualbox_open_asks_the_user_to_close_it_with_retry_and_cancel() {
        let r = Report::from_error(&fail(
            Code::VirtualBoxRunning,
            "VirtualBox is still running after 60 s: VirtualBox (pid 7). Close it and run \
             vblaunch again. Nothing was changed.",
        ));
        let d = failure_dialog("Dev Box", &r, LOG);
        assert_eq!(
            d.heading,
            "Close the VirtualBox window 'Dev Box' to continue"
        );
        assert_eq!(d.buttons, [Button::Retry, Button::Cancel]);
        assert_eq!(d.default_button, Button::Retry);
        assert!(d.body.contains("VirtualBox (pid 7)"));
        assert_eq!(d.exit_code, 3);
    }

    #[test]
    fn a_failure_after_progress_replaces_the_window() {
        let mut l = Launch::new("Dev Box", LOG);
        l.apply(&Event::Merging { bytes: None });
        l.apply(&Event::Failed(vbox_failure()));
        match l.screen(at(100)) {
            Screen::Failure(d) => assert_eq!(d.exit_code, 9),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn holding_the_session_shows_a_tray_icon_then_a_toast() {
        let mut l = Launch::new("Dev Box", LOG);
        l.apply(&Event::Started {
            start_type: "gui".into(),
        });
        l.apply(&Event::Holding);
        assert_eq!(
            l.screen(at(100)),
            Screen::Tray(TrayView {
                tooltip: "Dev Box is running — its base disk is frozen and safe to back up".into(),
                menu: vec![TrayItem::Status, TrayItem::OpenLog, TrayItem::StopWaiting],
            })
        );
        l.apply(&Event::SessionEnded { folded: true });
        assert_eq!(
            l.screen(at(200)),
            Screen::Toast("Dev Box: today's work is in the base disk".into())
        );
    }

    #[test]
    fn a_second_launch_of_a_running_held_vm_is_not_an_error() {
        assert_eq!(
            second_launch(
                "Dev Box",
                Code::LockHeld,
                Some(VmNow::Running { frozen: true })
            ),
            SecondLaunch::ShowRunningVm {
                message: "Dev Box is already running.".into(),
                warn: false
            }
        );
        // Held but not running (a fold in progress), unknown, or another error:
        // the failure dialog as usual.
        assert_eq!(
            second_launch("Dev Box", Code::LockHeld, Some(VmNow::NotRunning)),
            SecondLaunch::Fail
        );
        assert_eq!(
            second_launch("Dev Box", Code::LockHeld, None),
            SecondLaunch::Fail
        );
        assert_eq!(
            second_launch(
                "Dev Box",
                Code::VmState,
                Some(VmNow::Running { frozen: true })
            ),
            SecondLaunch::Fail
        );
    }

    #[test]
    fn the_fold_on_exit_is_a_stretch_of_its_own() {
        let mut l = Launch::new("Dev Box", LOG);
        l.apply(&Event::Started {
            start_type: "gui".into(),
        });
        l.apply(&Event::Holding);
        assert!(matches!(l.screen(at(500)), Screen::Tray(_)));
        // Hours later the VM shuts down and the session is folded: a quick
        // fold shows no window, a slow one counts its own time.
        l.apply(&Event::Merging { bytes: Some(4096) });
        let t0 = 3 * 3600 * 1000;
        assert_eq!(l.screen(at(t0)), Screen::Nothing);
        assert_eq!(l.screen(at(t0 + 900)), Screen::Nothing);
        let p = progress(l.screen(at(t0 + 62_000)));
        assert_eq!(p.elapsed, "Elapsed 1:02");
        l.apply(&Event::SessionEnded { folded: true });
        assert!(matches!(l.screen(at(t0 + 62_100)), Screen::Toast(_)));
    }

    #[test]
    fn the_transcript_says_what_each_screen_shows_without_the_clock() {
        let mut l = Launch::new("Dev Box", LOG);
        l.apply(&Event::Merging {
            bytes: Some(1_395_864_371),
        });
        l.apply(&Event::Progress { percent: 40 });
        let a = l.screen(at(1_500)).transcript().unwrap();
        assert_eq!(
            a,
            "Dev Box — vblaunch\n\n\
             Merging the last session (1.3 GiB) into the base disk — it cannot be cancelled\n\
             Stopping a merge half-way could damage the disk, so there is no Cancel. \
             You can keep working in other programs.\n\
             progress: 40%\n[no Cancel]"
        );
        assert_eq!(l.screen(at(2_700)).transcript().unwrap(), a);
        l.apply(&Event::WaitingForVirtualBox {
            front_ends: "VirtualBox (pid 7)".into(),
        });
        let w = l.screen(at(3_000)).transcript().unwrap();
        assert!(w.ends_with("progress: Working…\n[Cancel]"), "{w}");
        l.apply(&Event::Holding);
        assert_eq!(
            l.screen(at(4_000)).transcript().unwrap(),
            "notification icon: Dev Box is running — its base disk is frozen and safe to \
             back up\nmenu: [Status] [Open log] [Stop waiting]"
        );
        l.apply(&Event::SessionEnded { folded: true });
        assert_eq!(
            l.screen(at(5_000)).transcript().unwrap(),
            "balloon: Dev Box: today's work is in the base disk"
        );
        assert_eq!(Screen::Nothing.transcript(), None);
    }

    #[test]
    fn the_vm_window_is_found_by_its_title() {
        let vm = "Dev Box";
        assert!(is_vm_window("Dev Box [Running] - Oracle VirtualBox", vm));
        assert!(is_vm_window("Dev Box [Running] - Oracle VM VirtualBox", vm));
        for other in [
            "Dev Box — vblaunch",
            "Dev Box 2 [Running] - Oracle VirtualBox",
            "Dev [Running] - Oracle VirtualBox",
            "Oracle VirtualBox Manager — Dev Box",
            "Dev Box [Running] - notes.txt",
        ] {
            assert!(!is_vm_window(other, vm), "{other}");
        }
        assert!(!is_vm_window(" [Running] - Oracle VirtualBox", ""));
    }

    #[test]
    fn the_status_dialog_shows_what_status_printed_or_why_not() {
        let d = status_dialog(
            "Dev Box",
            Ok("VM 'Dev Box'\n  safe to back up: yes\n".into()),
        );
        assert_eq!(d.title, "Dev Box — vblaunch status");
        assert_eq!(d.heading, "Dev Box is running");
        assert_eq!(d.text, "VM 'Dev Box'\n  safe to back up: yes");
        let d = status_dialog("Dev Box", Err("vblaunch.exe was not found\n".into()));
        assert_eq!(d.heading, "vblaunch could not read the status of Dev Box");
        assert_eq!(d.text, "vblaunch.exe was not found");
    }

    #[test]
    fn a_launch_of_a_running_vm_shows_it_instead_of_waiting_for_it() {
        assert_eq!(
            launch_of_running_vm("Dev Box", Some(VmNow::Running { frozen: true })),
            SecondLaunch::ShowRunningVm {
                message: "Dev Box is already running.".into(),
                warn: false
            }
        );
        // Started from VirtualBox without a snapshot: never a silent "fine".
        match launch_of_running_vm("Dev Box", Some(VmNow::Running { frozen: false })) {
            SecondLaunch::ShowRunningVm { message, warn } => assert!(
                warn && message.contains("writes straight into its base disk")
                    && message.contains("start it from this shortcut"),
                "{message}"
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(
            launch_of_running_vm("Dev Box", Some(VmNow::NotRunning)),
            SecondLaunch::Fail
        );
        assert_eq!(launch_of_running_vm("Dev Box", None), SecondLaunch::Fail);
    }

    #[test]
    fn run_doctor_keeps_a_console_open_with_quoted_arguments() {
        use clap::Parser;
        let plain = crate::cli::Cli::try_parse_from(["vblaunchw", "launch", "x"]).unwrap();
        assert_eq!(
            doctor_command_line(
                r"C:\Program Files\vblaunch\vblaunch.exe",
                &console_args(&plain.global, "doctor", "Dev \"Box\"")
            ),
            r#"/s /k ""C:\Program Files\vblaunch\vblaunch.exe" doctor -- "Dev \"Box\""""#
        );
        // The doctor looks at the launch's VirtualBox and configuration.
        let cli = crate::cli::Cli::try_parse_from([
            "vblaunchw",
            "--config",
            r"C:\v b.toml",
            "--vboxmanage",
            r"D:\VB\VBoxManage.exe",
            "launch",
            "--",
            "-x",
        ])
        .unwrap();
        assert_eq!(
            doctor_command_line(
                r"C:\v\vblaunch.exe",
                &console_args(&cli.global, "doctor", "-x")
            ),
            r#"/s /k "C:\v\vblaunch.exe --config "C:\v b.toml" --vboxmanage D:\VB\VBoxManage.exe doctor -- -x""#
        );
    }
}
