//! Linux desktops (any Unix with an X11 or Wayland display): the shortcut
//! launch's progress window and failure dialog, drawn by `zenity` (GNOME's,
//! also on most other desktops) or `kdialog` (KDE's), each started with an
//! argv (never a shell string). What they show is the model's
//! ([`super::model`]); this module only turns a view into an argv and the
//! lines fed to the program, as pure functions tested on every OS, and runs
//! them.
//!
//! Which program: zenity, except on KDE Plasma when kdialog can show the
//! progress there (it needs `qdbus` or `dbus-send` to drive its bar): zenity
//! takes its progress on stdin and reports Cancel by its exit status, and its
//! failure dialog has room for every button; kdialog looks native on KDE but
//! a message box has three buttons at most (*Copy details* is left out) and
//! its progress bar is a D-Bus object. Without `qdbus`/`dbus-send`, kdialog
//! shows no progress window, only the failure dialog.
//!
//! - Progress: after the model says so (not in the first second), one
//!   `zenity --progress` fed `# text` and percentage lines as the screen
//!   changes; a thread refreshes it every 250 ms (the elapsed time). Its
//!   Cancel (only offered while vblaunch waits for VirtualBox) makes
//!   [`Face::cancelled`] true. kdialog: `--progressbar`, then D-Bus calls.
//! - Failure: `zenity --error` (or `--question` with *Retry*) with extra
//!   buttons: *Open log* (`xdg-open`), *Run doctor* (`vblaunch doctor` run by
//!   vblaunch, its report shown in a text window: a terminal would close the
//!   moment doctor ends, and terminals have no common "stay open" option),
//!   *Copy details* (`wl-copy`, `xclip` or `xsel`; no button without one).
//! - A toast (the end of a `--wait` session) is a `notify-send`
//!   ([`crate::notify::note`]); the
//!   notification-area icon of a held session is not drawn here (neither
//!   program has one that a running launch can update).
use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use super::model::{self, Button, FailureDialog, ProgressView, Screen};
use super::{Event, Face};
use crate::process::{self, CommandLine, Deadline};

use crate::shortcut::GUI_BIN;

/// How often the progress window is refreshed (its elapsed time).
const TICK: Duration = Duration::from_millis(250);

/// Which program draws the windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialogs {
    Zenity,
    Kdialog,
}

/// What drives kdialog's progress bar (a D-Bus object).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bus {
    Qdbus(PathBuf),
    DbusSend(PathBuf),
}

/// The desktop's programs vblaunch uses.
#[derive(Debug, Clone)]
pub struct Kit {
    pub dialogs: Dialogs,
    /// zenity or kdialog.
    pub program: PathBuf,
    /// kdialog's progress: None = no progress window.
    pub bus: Option<Bus>,
    /// `xdg-open`, for *Open log*.
    pub opener: Option<PathBuf>,
    /// A program that puts its stdin on the clipboard, with its arguments.
    pub clipboard: Option<Vec<OsString>>,
    /// `vblaunch doctor -- <VM>` with the run's `--config`/`--vboxmanage`
    /// (None: no *Run doctor*, e.g. for a command-line error).
    pub doctor: Option<Vec<OsString>>,
}

/// A program on `path` (a `PATH` value), as the shell would find it.
pub fn on_path(name: &str, path: Option<&OsStr>) -> Option<PathBuf> {
    std::env::split_paths(path?)
        .filter(|d| d.is_absolute())
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

fn non_empty(env: &dyn Fn(&str) -> Option<OsString>, name: &str) -> Option<OsString> {
    env(name).filter(|v| !v.is_empty())
}

/// Whether a graphical session is there to show windows on.
pub fn has_display(env: &dyn Fn(&str) -> Option<OsString>) -> bool {
    non_empty(env, "DISPLAY").is_some() || non_empty(env, "WAYLAND_DISPLAY").is_some()
}

/// The dialog program to use (see the module doc), given how programs are
/// found and the environment; None without a display or either program.
pub fn choose(
    find: &dyn Fn(&str) -> Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Option<(Dialogs, PathBuf, Option<Bus>)> {
    if !has_display(env) {
        return None;
    }
    let zenity = find("zenity");
    let kdialog = find("kdialog");
    let bus = || {
        ["qdbus", "qdbus6", "qdbus-qt6", "qdbus-qt5"]
            .iter()
            .find_map(|n| find(n))
            .map(Bus::Qdbus)
            .or_else(|| find("dbus-send").map(Bus::DbusSend))
    };
    let kde = non_empty(env, "XDG_CURRENT_DESKTOP").is_some_and(|d| {
        d.to_string_lossy()
            .split(':')
            .any(|p| p.eq_ignore_ascii_case("KDE"))
    });
    match (zenity, kdialog) {
        (Some(z), Some(k)) => match bus() {
            Some(b) if kde => Some((Dialogs::Kdialog, k, Some(b))),
            _ => Some((Dialogs::Zenity, z, None)),
        },
        (Some(z), None) => Some((Dialogs::Zenity, z, None)),
        (None, Some(k)) => Some((Dialogs::Kdialog, k, bus())),
        (None, None) => None,
    }
}

/// The clipboard writer: `wl-copy` on Wayland, else `xclip` or `xsel`.
pub fn clipboard(
    find: &dyn Fn(&str) -> Option<PathBuf>,
    env: &dyn Fn(&str) -> Option<OsString>,
) -> Option<Vec<OsString>> {
    let wayland = non_empty(env, "WAYLAND_DISPLAY").is_some();
    let with = |p: PathBuf, args: &[&str]| {
        std::iter::once(p.into_os_string())
            .chain(args.iter().map(OsString::from))
            .collect::<Vec<_>>()
    };
    let wl = || find("wl-copy").map(|p| with(p, &[]));
    let x11 = || {
        find("xclip")
            .map(|p| with(p, &["-selection", "clipboard"]))
            .or_else(|| find("xsel").map(|p| with(p, &["--clipboard", "--input"])))
    };
    if wayland {
        wl().or_else(x11)
    } else {
        x11()
    }
}

/// The program a Linux shortcut starts: `vblaunchw` next to `exe` when a
/// dialog program is there to show its windows (the entry then needs no
/// terminal), else `exe` itself.
pub fn shortcut_exe(
    exe: &Path,
    is_file: &dyn Fn(&Path) -> bool,
    find: &dyn Fn(&str) -> Option<PathBuf>,
) -> PathBuf {
    let gui = exe.with_file_name(GUI_BIN);
    if is_file(&gui) && (find("zenity").is_some() || find("kdialog").is_some()) {
        gui
    } else {
        exe.to_path_buf()
    }
}

/// `vblaunch doctor -- <VM>` for the run's options, with the console program
/// next to `exe` (or `exe` itself).
pub fn doctor_argv(exe: &Path, global: &crate::cli::Global, vm: &str) -> Vec<OsString> {
    let console = exe.with_file_name("vblaunch");
    let program = if console.is_file() {
        console
    } else {
        exe.to_path_buf()
    };
    std::iter::once(program.into_os_string())
        .chain(model::console_args(global, "doctor", vm))
        .collect()
}

static KIT: OnceLock<Option<Kit>> = OnceLock::new();

/// Look for the desktop's programs once per process: None when a terminal
/// is watching (stdin is one: vblaunchw then does what `vblaunch
/// --pause-on-error` does), without a display, or without zenity and
/// kdialog. `doctor`: [`doctor_argv`] for the launch's VM.
pub fn init(doctor: Option<Vec<OsString>>) -> Option<&'static Kit> {
    KIT.get_or_init(|| detect(doctor)).as_ref()
}

/// The kit [`init`] found (or found now, without *Run doctor*).
pub fn kit() -> Option<&'static Kit> {
    init(None)
}

fn detect(doctor: Option<Vec<OsString>>) -> Option<Kit> {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        return None;
    }
    let path = std::env::var_os("PATH");
    let find = |n: &str| on_path(n, path.as_deref());
    let env = |n: &str| std::env::var_os(n);
    let (dialogs, program, bus) = choose(&find, &env)?;
    let kit = Kit {
        dialogs,
        program,
        bus,
        opener: find("xdg-open"),
        clipboard: clipboard(&find, &env),
        doctor,
    };
    log::debug!("desktop dialogs: {kit:?}");
    Some(kit)
}

// ---------------------------------------------------------------------------
// Texts

/// The progress window's text: heading, text, elapsed time.
pub fn progress_label(v: &ProgressView) -> String {
    [v.heading.as_str(), v.text.as_str(), v.elapsed.as_str()]
        .iter()
        .filter(|s| !s.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// Control characters a label cannot show become U+FFFD (newlines and tabs stay).
fn printable(c: char) -> Option<char> {
    match c {
        '\n' | '\t' => Some(c),
        c if c.is_control() => Some('\u{FFFD}'),
        c => Some(c),
    }
}

/// `s` for zenity's `--text` of a progress window, which is Pango markup
/// after `g_strcompress` (backslash escapes).
pub fn zenity_markup(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().filter_map(printable) {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\\' => out.push_str("\\\\"),
            c => out.push(c),
        }
    }
    out
}

/// `s` as one `#` line of zenity's progress input: plain text after
/// `g_strcompress`, so newlines travel as `\n`.
pub fn zenity_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    for c in s.chars().filter_map(printable) {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// The percentage zenity is told: at 100 `--auto-close` would close the
/// window while the launch goes on (the window is closed by closing its
/// input instead), so a finished merge shows as 99.
pub fn shown_percent(p: u8) -> u8 {
    p.min(99)
}

/// `zenity --progress` for a view (the program itself not included).
pub fn zenity_progress_argv(v: &ProgressView) -> Vec<String> {
    let mut a = vec![
        "--progress".to_string(),
        format!("--title={}", v.title),
        format!("--text={}", zenity_markup(&progress_label(v))),
        "--width=480".to_string(),
    ];
    match v.percent {
        Some(p) => a.push(format!("--percentage={}", shown_percent(p))),
        None => a.push("--pulsate".to_string()),
    }
    if !v.cancel {
        a.push("--no-cancel".to_string());
    }
    a.push("--auto-close".to_string());
    a
}

/// What a progress window shows now (to send only what changed).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Shown {
    pub label: String,
    pub percent: Option<u8>,
}

impl Shown {
    pub fn of(v: &ProgressView) -> Shown {
        Shown {
            label: progress_label(v),
            percent: v.percent,
        }
    }
}

/// The lines that take zenity's progress window from `shown` to `v`.
pub fn zenity_updates(v: &ProgressView, shown: &mut Shown) -> Vec<String> {
    let now = Shown::of(v);
    let mut lines = Vec::new();
    if now.label != shown.label {
        lines.push(format!("# {}", zenity_line(&now.label)));
    }
    match (shown.percent, now.percent) {
        (before, Some(p)) if before != Some(p) => {
            if before.is_none() {
                lines.push("pulsate:false".to_string());
            }
            lines.push(shown_percent(p).to_string());
        }
        (Some(_), None) => lines.push("pulsate:true".to_string()),
        _ => {}
    }
    *shown = now;
    lines
}

/// The extra buttons that can work here, in the model's order.
pub fn available(d: &FailureDialog, kit: &Kit) -> Vec<Button> {
    d.buttons
        .iter()
        .copied()
        .filter(|b| match b {
            Button::OpenLog => kit.opener.is_some(),
            Button::RunDoctor => kit.doctor.is_some(),
            Button::CopyDetails => kit.clipboard.is_some() && kit.dialogs == Dialogs::Zenity,
            Button::Close | Button::Retry | Button::Cancel => true,
        })
        .collect()
}

fn retry(d: &FailureDialog) -> bool {
    d.buttons.contains(&Button::Retry)
}

/// `zenity --error` (or `--question` with *Retry*/*Cancel*) for the failure
/// dialog: plain text (`--no-markup`), *Close* as its OK button, the other
/// buttons as extra ones. `buttons`: those [`available`].
pub fn zenity_failure_argv(d: &FailureDialog, buttons: &[Button]) -> Vec<String> {
    let text: String = d.message_text().chars().filter_map(printable).collect();
    let mut a = vec![
        if retry(d) { "--question" } else { "--error" }.to_string(),
        format!("--title={}", d.title),
        format!("--text={text}"),
        "--no-markup".to_string(),
        "--width=600".to_string(),
    ];
    if retry(d) {
        a.push(format!("--ok-label={}", Button::Retry.label()));
        a.push(format!("--cancel-label={}", Button::Cancel.label()));
    } else {
        a.push(format!("--ok-label={}", Button::Close.label()));
        for b in buttons {
            if !matches!(b, Button::Close | Button::Retry | Button::Cancel) {
                a.push(format!("--extra-button={}", b.label()));
            }
        }
    }
    a
}

/// The button the user chose in a zenity failure dialog: OK is exit 0, an
/// extra button prints its label and exits 1, closing the window exits 1 (or
/// 5, a timeout) with nothing printed.
pub fn zenity_choice(d: &FailureDialog, code: Option<i32>, stdout: &str) -> Button {
    let printed = stdout.trim_end_matches(['\n', '\r']);
    if let Some(b) = d.buttons.iter().find(|b| b.label() == printed) {
        return *b;
    }
    match (retry(d), code) {
        (true, Some(0)) => Button::Retry,
        (true, _) => Button::Cancel,
        (false, _) => Button::Close,
    }
}

/// The extra buttons kdialog gets: a message box has Yes, No and Cancel.
fn kdialog_extras(buttons: &[Button]) -> Vec<Button> {
    buttons
        .iter()
        .copied()
        .filter(|b| matches!(b, Button::OpenLog | Button::RunDoctor))
        .take(2)
        .collect()
}

/// `kdialog` for the failure dialog: `--warningcontinuecancel` with *Retry*,
/// else `--warningyesnocancel` with up to two extra buttons and *Close*
/// (`--sorry` when there is none).
pub fn kdialog_failure_argv(d: &FailureDialog, buttons: &[Button]) -> Vec<String> {
    let text: String = d.message_text().chars().filter_map(printable).collect();
    let mut a = vec!["--title".to_string(), d.title.clone()];
    if retry(d) {
        a.extend([
            "--warningcontinuecancel".to_string(),
            text,
            "--continue-label".to_string(),
            Button::Retry.label().to_string(),
        ]);
        return a;
    }
    let extras = kdialog_extras(buttons);
    match extras.as_slice() {
        [] => a.extend(["--sorry".to_string(), text]),
        [one] => a.extend([
            "--warningcontinuecancel".to_string(),
            text,
            "--continue-label".to_string(),
            one.label().to_string(),
            "--cancel-label".to_string(),
            Button::Close.label().to_string(),
        ]),
        [yes, no, ..] => a.extend([
            "--warningyesnocancel".to_string(),
            text,
            "--yes-label".to_string(),
            yes.label().to_string(),
            "--no-label".to_string(),
            no.label().to_string(),
            "--cancel-label".to_string(),
            Button::Close.label().to_string(),
        ]),
    }
    a
}

/// The button chosen in a kdialog failure dialog (Yes/Continue 0, No 1,
/// Cancel 2).
pub fn kdialog_choice(d: &FailureDialog, buttons: &[Button], code: Option<i32>) -> Button {
    if retry(d) {
        return if code == Some(0) {
            Button::Retry
        } else {
            Button::Cancel
        };
    }
    let extras = kdialog_extras(buttons);
    match code {
        Some(0) => extras.first().copied().unwrap_or(Button::Close),
        Some(1) if extras.len() == 2 => extras[1],
        _ => Button::Close,
    }
}

/// `kdialog --progressbar` for a view (it prints the bar's D-Bus reference).
pub fn kdialog_progress_argv(v: &ProgressView) -> Vec<String> {
    let label: String = progress_label(v).chars().filter_map(printable).collect();
    vec![
        "--title".to_string(),
        v.title.clone(),
        "--progressbar".to_string(),
        label,
        "100".to_string(),
    ]
}

/// A call on kdialog's progress bar.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BarCall {
    Label(String),
    /// `None`: busy (maximum 0).
    Percent(Option<u8>),
    ShowCancel(bool),
    WasCancelled,
    Close,
}

/// The argv (program first) of a call on the bar at `reference` ("service
/// path", as `kdialog --progressbar` printed it).
pub fn bar_argv(bus: &Bus, reference: &str, call: &BarCall) -> Option<Vec<Vec<String>>> {
    let mut it = reference.split_whitespace();
    let (service, path) = (it.next()?.to_string(), it.next()?.to_string());
    const IFACE: &str = "org.kde.kdialog.ProgressDialog";
    Some(match bus {
        Bus::Qdbus(q) => {
            let q = q.to_string_lossy().into_owned();
            let base = [q, service, path];
            let with = |rest: &[&str]| {
                base.iter()
                    .cloned()
                    .chain(rest.iter().map(|s| s.to_string()))
                    .collect::<Vec<_>>()
            };
            match call {
                BarCall::Label(t) => vec![with(&["setLabelText", t])],
                BarCall::Percent(Some(p)) => vec![
                    with(&["Set", "", "maximum", "100"]),
                    with(&["Set", "", "value", &p.to_string()]),
                ],
                BarCall::Percent(None) => vec![with(&["Set", "", "maximum", "0"])],
                BarCall::ShowCancel(on) => {
                    vec![with(&[
                        "showCancelButton",
                        if *on { "true" } else { "false" },
                    ])]
                }
                BarCall::WasCancelled => vec![with(&["wasCancelled"])],
                BarCall::Close => vec![with(&["close"])],
            }
        }
        Bus::DbusSend(d) => {
            let d = d.to_string_lossy().into_owned();
            let base = [
                d,
                "--session".to_string(),
                "--print-reply".to_string(),
                format!("--dest={service}"),
                path,
            ];
            let with = |rest: &[String]| {
                base.iter()
                    .cloned()
                    .chain(rest.iter().cloned())
                    .collect::<Vec<_>>()
            };
            let method = |m: &str| format!("{IFACE}.{m}");
            let set = |prop: &str, v: u8| {
                with(&[
                    "org.freedesktop.DBus.Properties.Set".to_string(),
                    format!("string:{IFACE}"),
                    format!("string:{prop}"),
                    format!("variant:int32:{v}"),
                ])
            };
            match call {
                BarCall::Label(t) => vec![with(&[method("setLabelText"), format!("string:{t}")])],
                BarCall::Percent(Some(p)) => vec![set("maximum", 100), set("value", *p)],
                BarCall::Percent(None) => vec![set("maximum", 0)],
                BarCall::ShowCancel(on) => {
                    vec![with(&[method("showCancelButton"), format!("boolean:{on}")])]
                }
                BarCall::WasCancelled => vec![with(&[method("wasCancelled")])],
                BarCall::Close => vec![with(&[method("close")])],
            }
        }
    })
}

/// Whether a `wasCancelled` answer (qdbus: `true`; dbus-send: `boolean true`) says so.
pub fn answered_true(stdout: &str) -> bool {
    stdout
        .split_whitespace()
        .last()
        .is_some_and(|w| w == "true")
}

/// The window that shows doctor's report (`file` holds it).
pub fn report_argv(kit: &Kit, title: &str, file: &Path) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    match kit.dialogs {
        Dialogs::Zenity => {
            a.push("--text-info".into());
            a.push(format!("--title={title}").into());
            let mut f = OsString::from("--filename=");
            f.push(file);
            a.push(f);
            a.push("--width=760".into());
            a.push("--height=520".into());
        }
        Dialogs::Kdialog => {
            a.push("--title".into());
            a.push(title.into());
            a.push("--textbox".into());
            a.push(file.into());
            a.push("760".into());
            a.push("520".into());
        }
    }
    a
}

// ---------------------------------------------------------------------------
// The face

struct Shared {
    kit: Kit,
    title: String,
    started: Instant,
    model: Mutex<Model>,
    wake: Condvar,
    cancelled: AtomicBool,
}

struct Model {
    launch: model::Launch,
    dirty: bool,
    stop: bool,
}

/// The face of a shortcut launch on a Linux desktop (see the module doc).
pub struct DesktopFace {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl DesktopFace {
    /// A face for launching `vm`; its window thread starts now (the model
    /// counts the first second from here).
    pub fn new(kit: &Kit, vm: &str, log_file: &str) -> DesktopFace {
        let shared = Arc::new(Shared {
            kit: kit.clone(),
            title: format!("{vm} — vblaunch"),
            started: Instant::now(),
            model: Mutex::new(Model {
                launch: model::Launch::new(vm, log_file),
                dirty: true,
                stop: false,
            }),
            wake: Condvar::new(),
            cancelled: AtomicBool::new(false),
        });
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vblaunch-window".into())
            .spawn(move || windows_thread(&s))
            .map_err(|e| log::warn!("no progress window: {e}"))
            .ok();
        DesktopFace {
            shared,
            thread: Mutex::new(thread),
        }
    }

    /// Close the progress window and stop its thread (before a dialog).
    pub fn close(&self) {
        {
            let mut m = lock(&self.shared.model);
            m.stop = true;
        }
        self.shared.wake.notify_all();
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Face for DesktopFace {
    fn event(&self, event: &Event) {
        {
            let mut m = lock(&self.shared.model);
            m.launch.apply(event);
            m.dirty = true;
        }
        self.shared.wake.notify_all();
        if matches!(event, Event::Failed(_)) {
            // The failure dialog comes next: the progress window goes first.
            self.close();
        }
    }

    fn cancelled(&self) -> bool {
        self.shared.cancelled.load(Ordering::SeqCst)
    }
}

impl Drop for DesktopFace {
    fn drop(&mut self) {
        self.close();
    }
}

/// The window thread: shows what the model says, at each event and every
/// [`TICK`]; owns the progress window.
fn windows_thread(s: &Shared) {
    let mut ui = Ui::default();
    loop {
        let screen = {
            let mut m = lock(&s.model);
            if !m.dirty && !m.stop {
                m = s
                    .wake
                    .wait_timeout(m, TICK)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            if m.stop {
                // The run's last event may not be drawn yet: the end of a
                // session still gets its toast (no window opens now).
                if let last @ Screen::Toast(_) = m.launch.screen(s.started.elapsed()) {
                    drop(m);
                    ui.show(s, last);
                }
                break;
            }
            m.dirty = false;
            let at = s.started.elapsed();
            m.launch.screen(at)
        };
        ui.show(s, screen);
    }
    ui.close(s);
}

#[derive(Default)]
struct Ui {
    window: Option<Window>,
    /// The window could not be shown, or went away by itself: not again.
    gave_up: bool,
    toasted: Option<String>,
}

enum Window {
    Zenity {
        child: Child,
        stdin: Option<ChildStdin>,
        cancel: bool,
        shown: Shown,
    },
    Kdialog {
        bus: Bus,
        reference: String,
        cancel: bool,
        shown: Shown,
    },
}

impl Window {
    fn cancel(&self) -> bool {
        match self {
            Window::Zenity { cancel, .. } | Window::Kdialog { cancel, .. } => *cancel,
        }
    }
}

impl Ui {
    fn show(&mut self, s: &Shared, screen: Screen) {
        match screen {
            Screen::Progress(v) => self.progress(s, &v),
            Screen::Toast(text) => {
                self.close(s);
                if self.toasted.as_ref() != Some(&text) {
                    crate::notify::note(&s.title, &text);
                    self.toasted = Some(text);
                }
            }
            Screen::Nothing | Screen::Tray(_) | Screen::Failure(_) => self.close(s),
        }
    }

    fn progress(&mut self, s: &Shared, v: &ProgressView) {
        if self.gave_up || s.cancelled.load(Ordering::SeqCst) {
            return;
        }
        if self.window_gone(s) {
            return;
        }
        if self.window.as_ref().is_some_and(|w| w.cancel() != v.cancel) {
            // Cancel comes or goes: zenity fixes its buttons at the start.
            self.close(s);
        }
        match &mut self.window {
            None => match open(&s.kit, v) {
                Ok(Some(w)) => self.window = Some(w),
                Ok(None) => self.gave_up = true,
                Err(e) => {
                    log::warn!("cannot show the progress window: {e}");
                    self.gave_up = true;
                }
            },
            Some(Window::Zenity { stdin, shown, .. }) => {
                let lines = zenity_updates(v, shown);
                if let Some(pipe) = stdin {
                    for l in lines {
                        if pipe.write_all(format!("{l}\n").as_bytes()).is_err() {
                            break;
                        }
                    }
                    let _ = pipe.flush();
                }
            }
            Some(Window::Kdialog {
                bus,
                reference,
                shown,
                ..
            }) => {
                let now = Shown::of(v);
                if now.label != shown.label {
                    bar(bus, reference, &BarCall::Label(now.label.clone()));
                }
                if now.percent != shown.percent {
                    bar(bus, reference, &BarCall::Percent(now.percent));
                }
                *shown = now;
            }
        }
    }

    /// Whether the window ended by itself (the user's Cancel, or it could
    /// not run); then it is forgotten.
    fn window_gone(&mut self, s: &Shared) -> bool {
        let gone = match &mut self.window {
            None => return false,
            Some(Window::Zenity { child, cancel, .. }) => match child.try_wait() {
                Ok(Some(status)) => {
                    if *cancel && !status.success() {
                        log::info!("the user chose Cancel in the progress window");
                        s.cancelled.store(true, Ordering::SeqCst);
                    } else {
                        log::info!("the progress window closed by itself ({status})");
                        self.gave_up = true;
                    }
                    true
                }
                Ok(None) => false,
                Err(_) => true,
            },
            Some(Window::Kdialog {
                bus,
                reference,
                cancel,
                ..
            }) => {
                if !*cancel {
                    return false;
                }
                match bar(bus, reference, &BarCall::WasCancelled) {
                    Some(out) if answered_true(&out) => {
                        log::info!("the user chose Cancel in the progress window");
                        s.cancelled.store(true, Ordering::SeqCst);
                        bar(bus, reference, &BarCall::Close);
                        true
                    }
                    Some(_) => false,
                    None => {
                        self.gave_up = true;
                        true
                    }
                }
            }
        };
        if gone {
            self.window = None;
        }
        gone
    }

    fn close(&mut self, _s: &Shared) {
        match self.window.take() {
            None => {}
            Some(Window::Zenity {
                mut child, stdin, ..
            }) => {
                // End of input: zenity (--auto-close) closes the window.
                drop(stdin);
                reap(move || {
                    if child.wait_timeout_or_kill(Duration::from_secs(5)).is_none() {
                        log::debug!("the progress window did not close; stopped it");
                    }
                });
            }
            Some(Window::Kdialog { bus, reference, .. }) => {
                bar(&bus, &reference, &BarCall::Close);
            }
        }
    }
}

/// Wait for a child off the calling thread (a window closes at its own pace).
fn reap(f: impl FnOnce() + Send + 'static) {
    let _ = std::thread::Builder::new()
        .name("vblaunch-reap".into())
        .spawn(f);
}

trait WaitOrKill {
    fn wait_timeout_or_kill(&mut self, d: Duration) -> Option<std::process::ExitStatus>;
}

impl WaitOrKill for Child {
    fn wait_timeout_or_kill(&mut self, d: Duration) -> Option<std::process::ExitStatus> {
        use wait_timeout::ChildExt;
        match self.wait_timeout(d) {
            Ok(Some(s)) => Some(s),
            _ => {
                let _ = self.kill();
                let _ = self.wait();
                None
            }
        }
    }
}

/// Start the progress window for `v` (Ok(None): this kit has none).
fn open(kit: &Kit, v: &ProgressView) -> std::io::Result<Option<Window>> {
    match kit.dialogs {
        Dialogs::Zenity => {
            let mut child = Command::new(&kit.program)
                .args(zenity_progress_argv(v))
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()?;
            log::debug!("progress window: {} --progress", kit.program.display());
            let stdin = child.stdin.take();
            Ok(Some(Window::Zenity {
                child,
                stdin,
                cancel: v.cancel,
                shown: Shown::of(v),
            }))
        }
        Dialogs::Kdialog => {
            let Some(bus) = kit.bus.clone() else {
                log::info!(
                    "no progress window: kdialog's needs qdbus or dbus-send, and neither is installed"
                );
                return Ok(None);
            };
            let mut cmd = CommandLine::new(&kit.program);
            cmd.args = kdialog_progress_argv(v)
                .into_iter()
                .map(Into::into)
                .collect();
            let out = process::run(&cmd, Deadline::After(Duration::from_secs(10)), &mut |_| {})
                .map_err(std::io::Error::other)?;
            let reference = out.stdout.trim().to_string();
            if !out.status.success() || reference.split_whitespace().count() != 2 {
                return Err(std::io::Error::other(format!(
                    "kdialog --progressbar answered {:?} ({})",
                    reference, out.status
                )));
            }
            // The bar starts at 0 of 100, with a Cancel button.
            bar(&bus, &reference, &BarCall::ShowCancel(v.cancel));
            if v.percent != Some(0) {
                bar(&bus, &reference, &BarCall::Percent(v.percent));
            }
            Ok(Some(Window::Kdialog {
                bus,
                reference,
                cancel: v.cancel,
                shown: Shown::of(v),
            }))
        }
    }
}

/// Make a call on kdialog's bar; its stdout, None when it failed.
fn bar(bus: &Bus, reference: &str, call: &BarCall) -> Option<String> {
    let mut stdout = String::new();
    for argv in bar_argv(bus, reference, call)? {
        let (program, args) = argv.split_first()?;
        let mut cmd = CommandLine::new(Path::new(program));
        cmd.args = args.iter().map(Into::into).collect();
        match process::run(&cmd, Deadline::After(Duration::from_secs(5)), &mut |_| {}) {
            Ok(out) if out.status.success() => stdout.push_str(&out.stdout),
            Ok(out) => {
                log::debug!("{cmd}: {} {}", out.status, out.stderr.trim());
                return None;
            }
            Err(e) => {
                log::debug!("{e}");
                return None;
            }
        }
    }
    Some(stdout)
}

// ---------------------------------------------------------------------------
// Dialogs

/// Show the failure dialog until the user closes it (or chooses *Retry*,
/// then true); *Open log*, *Run doctor* and *Copy details* act and show it
/// again.
pub fn show_failure(kit: &Kit, d: &FailureDialog) -> bool {
    let buttons = available(d, kit);
    // Bounded: a dialog program that answers without a user cannot spin.
    for _ in 0..100 {
        let argv = match kit.dialogs {
            Dialogs::Zenity => zenity_failure_argv(d, &buttons),
            Dialogs::Kdialog => kdialog_failure_argv(d, &buttons),
        };
        let out = Command::new(&kit.program)
            .args(&argv)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .output();
        let out = match out {
            Ok(o) => o,
            Err(e) => {
                log::warn!(
                    "cannot show the failure dialog with {}: {e}",
                    kit.program.display()
                );
                crate::notify::failure("vblaunch", &d.full_text());
                return false;
            }
        };
        let code = out.status.code();
        let choice = match kit.dialogs {
            Dialogs::Zenity => zenity_choice(d, code, &String::from_utf8_lossy(&out.stdout)),
            Dialogs::Kdialog => kdialog_choice(d, &buttons, code),
        };
        log::debug!("failure dialog: {}", choice.label());
        match choice {
            Button::Retry => return true,
            Button::Close | Button::Cancel => return false,
            Button::OpenLog => open_log(kit),
            Button::RunDoctor => run_doctor(kit, d),
            Button::CopyDetails => copy(kit, &d.full_text()),
        }
    }
    false
}

/// A short note in a dialog ("Dev Box is already running.").
pub fn show_info(kit: &Kit, title: &str, text: &str) {
    let argv: Vec<String> = match kit.dialogs {
        Dialogs::Zenity => vec![
            "--info".into(),
            format!("--title={title}"),
            format!("--text={text}"),
            "--no-markup".into(),
        ],
        Dialogs::Kdialog => vec![
            "--title".into(),
            title.into(),
            "--msgbox".into(),
            text.into(),
        ],
    };
    if let Err(e) = Command::new(&kit.program)
        .args(argv)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        log::warn!("cannot show a dialog: {e}");
    }
}

fn open_log(kit: &Kit) {
    let Some(opener) = &kit.opener else { return };
    let log = crate::logging::log_file_path();
    match Command::new(opener)
        .arg(&log)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    {
        Ok(mut child) => reap(move || {
            let _ = child.wait();
        }),
        Err(e) => log::warn!("cannot open {}: {e}", log.display()),
    }
}

/// Run `vblaunch doctor` and show what it says in a text window.
fn run_doctor(kit: &Kit, d: &FailureDialog) {
    let Some((program, args)) = kit.doctor.as_ref().and_then(|a| a.split_first()) else {
        return;
    };
    let mut cmd = CommandLine::new(Path::new(program));
    cmd.args = args.to_vec();
    log::info!("running {cmd}");
    let report = match process::run(&cmd, Deadline::After(Duration::from_secs(120)), &mut |_| {}) {
        Ok(out) => format!(
            "$ {cmd}\n\n{}{}\n(exit code {})\n\nTo apply the repairs it suggests, run in a terminal: {cmd} --fix\n",
            out.stdout,
            out.stderr,
            out.status.code().unwrap_or(-1)
        ),
        Err(e) => format!("$ {cmd}\n\n{e}\n"),
    };
    let file = match tempfile::Builder::new()
        .prefix("vblaunch-doctor-")
        .suffix(".txt")
        .tempfile()
        .and_then(|mut f| f.write_all(report.as_bytes()).map(|()| f))
    {
        Ok(f) => f,
        Err(e) => {
            log::warn!("cannot write doctor's report: {e}");
            return;
        }
    };
    let title = format!(
        "vblaunch doctor — {}",
        d.title.trim_end_matches(" — vblaunch")
    );
    let _ = Command::new(&kit.program)
        .args(report_argv(kit, &title, file.path()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn copy(kit: &Kit, text: &str) {
    let Some((program, args)) = kit.clipboard.as_ref().and_then(|a| a.split_first()) else {
        return;
    };
    // The clipboard programs stay behind to serve the text: no pipes held.
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    match child {
        Ok(mut child) => {
            if let Some(mut pipe) = child.stdin.take() {
                let _ = pipe.write_all(text.as_bytes());
            }
            if child
                .wait_timeout_or_kill(Duration::from_secs(10))
                .is_none()
            {
                log::warn!(
                    "{} did not finish; stopped it",
                    Path::new(program).display()
                );
            }
        }
        Err(e) => log::warn!("cannot copy to the clipboard: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::exit::{fail, Code};
    use crate::face::model::{failure_dialog, Launch, Report};

    const LOG: &str = "/home/me/.local/share/vblaunch/vblaunch.log";

    fn found(names: &'static [&'static str]) -> impl Fn(&str) -> Option<PathBuf> {
        move |n| {
            names
                .contains(&n)
                .then(|| PathBuf::from(format!("/usr/bin/{n}")))
        }
    }

    fn env(vars: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<OsString> {
        move |n| {
            vars.iter()
                .find(|(k, _)| *k == n)
                .map(|(_, v)| OsString::from(v))
        }
    }

    fn kit(dialogs: Dialogs) -> Kit {
        Kit {
            dialogs,
            program: PathBuf::from("/usr/bin/zenity"),
            bus: None,
            opener: Some("/usr/bin/xdg-open".into()),
            clipboard: Some(vec!["/usr/bin/xclip".into()]),
            doctor: Some(vec!["/usr/bin/vblaunch".into(), "doctor".into()]),
        }
    }

    fn merging_view(at_ms: u64, percent: u8) -> ProgressView {
        let mut l = Launch::new("Dev Box", LOG);
        l.apply(&Event::Merging {
            bytes: Some(3 << 20),
        });
        l.apply(&Event::Progress { percent });
        match l.screen(Duration::from_millis(at_ms)) {
            Screen::Progress(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn zenity_unless_kde_with_a_bus_and_nothing_without_a_display() {
        let x11 = env(&[("DISPLAY", ":0")]);
        let kde = env(&[
            ("WAYLAND_DISPLAY", "wayland-0"),
            ("XDG_CURRENT_DESKTOP", "KDE"),
        ]);
        let none = env(&[("DISPLAY", "")]);
        let pick = |f: &dyn Fn(&str) -> Option<PathBuf>, e: &dyn Fn(&str) -> Option<OsString>| {
            choose(f, e).map(|(d, p, b)| (d, p.display().to_string(), b.is_some()))
        };
        let both = found(&["zenity", "kdialog", "qdbus"]);
        assert_eq!(
            pick(&both, &x11),
            Some((Dialogs::Zenity, "/usr/bin/zenity".into(), false))
        );
        assert_eq!(
            pick(&both, &kde),
            Some((Dialogs::Kdialog, "/usr/bin/kdialog".into(), true))
        );
        // On KDE without a way to drive kdialog's bar, zenity shows progress.
        let no_bus = found(&["zenity", "kdialog"]);
        assert_eq!(pick(&no_bus, &kde).unwrap().0, Dialogs::Zenity);
        let only_k = found(&["kdialog", "dbus-send"]);
        assert_eq!(
            choose(&only_k, &x11).unwrap().2,
            Some(Bus::DbusSend("/usr/bin/dbus-send".into()))
        );
        assert!(!pick(&found(&["kdialog"]), &x11).unwrap().2);
        assert_eq!(pick(&both, &none), None, "no display");
        assert_eq!(pick(&found(&["xclip"]), &x11), None, "no dialog program");
    }

    #[test]
    fn the_clipboard_program_fits_the_session() {
        let all = found(&["wl-copy", "xclip", "xsel"]);
        let first = |f: &dyn Fn(&str) -> Option<PathBuf>, e: &dyn Fn(&str) -> Option<OsString>| {
            clipboard(f, e).map(|a| {
                a.iter()
                    .map(|s| s.to_string_lossy().into_owned())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
        };
        assert_eq!(
            first(&all, &env(&[("WAYLAND_DISPLAY", "w")])).as_deref(),
            Some("/usr/bin/wl-copy")
        );
        assert_eq!(
            first(&all, &env(&[("DISPLAY", ":0")])).as_deref(),
            Some("/usr/bin/xclip -selection clipboard")
        );
        assert_eq!(
            first(&found(&["xsel"]), &env(&[("DISPLAY", ":0")])).as_deref(),
            Some("/usr/bin/xsel --clipboard --input")
        );
        assert_eq!(first(&found(&[]), &env(&[("DISPLAY", ":0")])), None);
    }

    #[test]
    fn a_slow_fold_becomes_a_zenity_progress_window_without_cancel() {
        let v = merging_view(1500, 30);
        assert_eq!(
            zenity_progress_argv(&v),
            [
                "--progress",
                "--title=Dev Box — vblaunch",
                "--text=Merging the last session (3.0 MiB) into the base disk — it cannot be \
                 cancelled\n\nStopping a merge half-way could damage the disk, so there is no \
                 Cancel. You can keep working in other programs.\n\nElapsed 0:01",
                "--width=480",
                "--percentage=30",
                "--no-cancel",
                "--auto-close",
            ]
        );
    }

    #[test]
    fn waiting_for_virtualbox_pulsates_and_offers_cancel() {
        let mut l = Launch::new("Dev <Box> & \\co", LOG);
        l.apply(&Event::WaitingForVirtualBox {
            front_ends: "VirtualBox (pid 7)".into(),
        });
        let Screen::Progress(v) = l.screen(Duration::ZERO) else {
            panic!()
        };
        let a = zenity_progress_argv(&v);
        assert!(a.contains(&"--pulsate".to_string()), "{a:?}");
        assert!(!a.contains(&"--no-cancel".to_string()), "{a:?}");
        // The title is plain; the text is markup after backslash escapes.
        assert_eq!(a[1], "--title=Dev <Box> & \\co — vblaunch");
        assert!(a[2].starts_with("--text=Waiting for VirtualBox to close…\n\nClose"));
        assert_eq!(
            zenity_markup("a<b>&c\\n\u{7}"),
            "a&lt;b&gt;&amp;c\\\\n\u{FFFD}"
        );
    }

    #[test]
    fn zenity_is_fed_only_what_changed_as_the_fold_goes_on() {
        let v0 = merging_view(1000, 0);
        let mut shown = Shown::of(&v0);
        // The same second, the same percentage: nothing to send.
        assert!(zenity_updates(&merging_view(1200, 0), &mut shown).is_empty());
        let lines = zenity_updates(&merging_view(2100, 40), &mut shown);
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("# Merging the last session (3.0 MiB)"));
        assert!(lines[0].ends_with("\\n\\nElapsed 0:02"), "{}", lines[0]);
        assert!(!lines[0].contains('\n'));
        assert_eq!(lines[1], "40");
        assert_eq!(zenity_updates(&merging_view(2200, 70), &mut shown), ["70"]);
        // 100 would close the window (--auto-close) while the start goes on.
        assert_eq!(zenity_updates(&merging_view(2300, 100), &mut shown), ["99"]);
        // Starting: no percentage any more.
        let mut l = Launch::new("Dev Box", LOG);
        l.apply(&Event::Starting);
        let Screen::Progress(start) = l.screen(Duration::from_millis(2300)) else {
            panic!()
        };
        let lines = zenity_updates(&start, &mut shown);
        assert_eq!(
            lines,
            ["# Starting Dev Box…\\n\\nElapsed 0:02", "pulsate:true"]
        );
        // And back to a percentage.
        assert_eq!(
            zenity_updates(&merging_view(2300, 5), &mut shown)[1..],
            ["pulsate:false", "5"]
        );
        assert_eq!(zenity_line("a\\b\nc\td\u{1b}"), "a\\\\b\\nc\\td\u{FFFD}");
    }

    fn vbox_failure() -> FailureDialog {
        let err = fail(
            Code::VBoxManageFailed,
            "VBoxManage failed (exit code 1): VBoxManage snapshot Dev delete {abc}\n\
             VirtualBox said:\n  VBoxManage: error: Not enough free storage space\n\
             What to do: Free space on that disk, then run vblaunch again.",
        );
        failure_dialog("Dev Box", &Report::from_error(&err), LOG)
    }

    #[test]
    fn the_failure_dialog_is_zenity_error_with_its_buttons() {
        let d = vbox_failure();
        let k = kit(Dialogs::Zenity);
        let b = available(&d, &k);
        let a = zenity_failure_argv(&d, &b);
        assert_eq!(a[0], "--error");
        assert_eq!(a[1], "--title=Dev Box — vblaunch");
        assert_eq!(a[2], format!("--text={}", d.message_text()));
        assert!(a[2].contains("What to do: Free space"), "{}", a[2]);
        assert!(a[2].contains("Not enough free storage space"), "{}", a[2]);
        assert_eq!(
            a[3..],
            [
                "--no-markup",
                "--width=600",
                "--ok-label=Close",
                "--extra-button=Open log",
                "--extra-button=Run doctor",
                "--extra-button=Copy details",
            ]
        );
        assert_eq!(zenity_choice(&d, Some(0), ""), Button::Close);
        assert_eq!(zenity_choice(&d, Some(1), "Open log\n"), Button::OpenLog);
        assert_eq!(
            zenity_choice(&d, Some(1), "Copy details\n"),
            Button::CopyDetails
        );
        assert_eq!(
            zenity_choice(&d, Some(1), ""),
            Button::Close,
            "window closed"
        );
        // Without a clipboard program or xdg-open, those buttons are left out.
        let bare = Kit {
            opener: None,
            clipboard: None,
            ..k
        };
        let a = zenity_failure_argv(&d, &available(&d, &bare));
        assert_eq!(
            a.iter().filter(|x| x.starts_with("--extra-button")).count(),
            1
        );
        assert!(a.contains(&"--extra-button=Run doctor".to_string()));
    }

    #[test]
    fn virtualbox_open_asks_with_retry_and_cancel() {
        let err = fail(
            Code::VirtualBoxRunning,
            "VirtualBox is running: VirtualBox (pid 7).",
        );
        let d = failure_dialog("Dev Box", &Report::from_error(&err), LOG);
        let k = kit(Dialogs::Zenity);
        let a = zenity_failure_argv(&d, &available(&d, &k));
        assert_eq!(a[0], "--question");
        assert!(a.contains(&"--ok-label=Retry".to_string()));
        assert!(a.contains(&"--cancel-label=Cancel".to_string()));
        assert!(!a.iter().any(|x| x.starts_with("--extra-button")));
        assert_eq!(zenity_choice(&d, Some(0), ""), Button::Retry);
        assert_eq!(zenity_choice(&d, Some(1), ""), Button::Cancel);
        let k = kit(Dialogs::Kdialog);
        let a = kdialog_failure_argv(&d, &available(&d, &k));
        assert_eq!(
            [&a[..3], &a[4..]].concat(),
            [
                "--title",
                "Dev Box — vblaunch",
                "--warningcontinuecancel",
                "--continue-label",
                "Retry"
            ]
        );
        assert_eq!(kdialog_choice(&d, &[], Some(0)), Button::Retry);
        assert_eq!(kdialog_choice(&d, &[], Some(2)), Button::Cancel);
    }

    #[test]
    fn kdialog_has_three_buttons_so_copy_details_is_left_out() {
        let d = vbox_failure();
        let k = kit(Dialogs::Kdialog);
        let b = available(&d, &k);
        assert!(!b.contains(&Button::CopyDetails));
        let a = kdialog_failure_argv(&d, &b);
        assert_eq!(a[2], "--warningyesnocancel");
        assert_eq!(a[3], d.message_text());
        assert_eq!(
            a[4..],
            [
                "--yes-label",
                "Open log",
                "--no-label",
                "Run doctor",
                "--cancel-label",
                "Close"
            ]
        );
        assert_eq!(kdialog_choice(&d, &b, Some(0)), Button::OpenLog);
        assert_eq!(kdialog_choice(&d, &b, Some(1)), Button::RunDoctor);
        assert_eq!(kdialog_choice(&d, &b, Some(2)), Button::Close);
        let none = Kit {
            opener: None,
            doctor: None,
            ..k
        };
        let a = kdialog_failure_argv(&d, &available(&d, &none));
        assert_eq!(a[2..], ["--sorry".to_string(), d.message_text()]);
    }

    #[test]
    fn kdialog_progress_is_driven_over_dbus() {
        let v = merging_view(1500, 30);
        let a = kdialog_progress_argv(&v);
        assert_eq!(a[..3], ["--title", "Dev Box — vblaunch", "--progressbar"]);
        assert_eq!(a[3], progress_label(&v));
        assert_eq!(a[4], "100");
        let r = "org.kde.kdialog-4242 /ProgressDialog";
        let q = Bus::Qdbus("/usr/bin/qdbus".into());
        assert_eq!(
            bar_argv(&q, r, &BarCall::Percent(Some(30))).unwrap(),
            [
                vec![
                    "/usr/bin/qdbus",
                    "org.kde.kdialog-4242",
                    "/ProgressDialog",
                    "Set",
                    "",
                    "maximum",
                    "100"
                ],
                vec![
                    "/usr/bin/qdbus",
                    "org.kde.kdialog-4242",
                    "/ProgressDialog",
                    "Set",
                    "",
                    "value",
                    "30"
                ],
            ]
        );
        assert_eq!(
            bar_argv(&q, r, &BarCall::WasCancelled).unwrap(),
            [vec![
                "/usr/bin/qdbus",
                "org.kde.kdialog-4242",
                "/ProgressDialog",
                "wasCancelled"
            ]]
        );
        let d = Bus::DbusSend("/usr/bin/dbus-send".into());
        assert_eq!(
            bar_argv(&d, r, &BarCall::Label("a b".into())).unwrap(),
            [vec![
                "/usr/bin/dbus-send",
                "--session",
                "--print-reply",
                "--dest=org.kde.kdialog-4242",
                "/ProgressDialog",
                "org.kde.kdialog.ProgressDialog.setLabelText",
                "string:a b"
            ]]
        );
        assert_eq!(
            bar_argv(&d, r, &BarCall::Percent(None)).unwrap()[0][5..],
            [
                "org.freedesktop.DBus.Properties.Set",
                "string:org.kde.kdialog.ProgressDialog",
                "string:maximum",
                "variant:int32:0"
            ]
        );
        assert!(bar_argv(&d, "garbage", &BarCall::Close).is_none());
        assert!(answered_true("true\n"));
        assert!(answered_true(
            "method return time=1 sender=:1.2\n   boolean true\n"
        ));
        assert!(!answered_true("   boolean false\n"));
    }

    #[test]
    fn the_linux_shortcut_starts_vblaunchw_only_where_its_windows_can_show() {
        let exe = Path::new("/usr/bin/vblaunch");
        let gui = Path::new("/usr/bin/vblaunchw");
        let has_gui = |p: &Path| p == gui;
        assert_eq!(shortcut_exe(exe, &has_gui, &found(&["zenity"])), gui);
        assert_eq!(shortcut_exe(exe, &has_gui, &found(&["kdialog"])), gui);
        assert_eq!(shortcut_exe(exe, &has_gui, &found(&["xclip"])), exe);
        assert_eq!(shortcut_exe(exe, &|_| false, &found(&["zenity"])), exe);
    }

    #[test]
    fn doctor_runs_with_the_launchs_config_and_vboxmanage() {
        use clap::Parser;
        let cli = crate::cli::Cli::try_parse_from([
            "vblaunchw",
            "--config",
            "/etc/v.toml",
            "--vboxmanage",
            "/opt/VBoxManage",
            "launch",
            "--",
            "-x",
        ])
        .unwrap();
        let a = doctor_argv(Path::new("/nonexistent/vblaunchw"), &cli.global, "-x");
        let a: Vec<String> = a.iter().map(|s| s.to_string_lossy().into_owned()).collect();
        assert_eq!(
            a,
            [
                "/nonexistent/vblaunchw",
                "--config",
                "/etc/v.toml",
                "--vboxmanage",
                "/opt/VBoxManage",
                "doctor",
                "--",
                "-x"
            ]
        );
    }

    #[test]
    fn the_deb_ships_vblaunchw_and_the_template_stays_the_terminal_entry() {
        let cargo = include_str!("../../Cargo.toml");
        assert!(cargo.contains(r#"["target/release/vblaunchw", "usr/bin/", "755"]"#));
        let build = include_str!("../../packaging/build.sh");
        assert!(build.contains("cargo build --release --locked --bin vblaunch --bin vblaunchw"));
        let t = include_str!("../../packaging/linux/vblaunch.desktop.template");
        assert!(
            t.contains("\nExec=vblaunch --pause-on-error launch "),
            "{t}"
        );
        assert!(t.contains("\nTerminal=true\n"), "{t}");
    }

    #[test]
    fn programs_are_found_on_path_only_when_executable() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("zenity");
        std::fs::write(&p, "#!/bin/sh\n").unwrap();
        let path = std::env::join_paths([Path::new("relative"), dir.path()]).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(on_path("zenity", Some(&path)), None, "not executable");
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        assert_eq!(on_path("zenity", Some(&path)), Some(p));
        assert_eq!(on_path("kdialog", Some(&path)), None);
        assert_eq!(on_path("zenity", None), None);
    }
}
