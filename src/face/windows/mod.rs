//! The native Windows face of `vblaunchw.exe` (compiled only for Windows;
//! what it shows comes from [`super::model`], which every OS tests).
//!
//! [`WindowsFace`] runs its own UI thread with a message loop. The engine's
//! events update the model ([`Launch`]); every 200 ms (and at each event)
//! the UI thread asks the model what to show and draws it: nothing during
//! the first second, then the progress window ([`progress`]); the
//! notification-area icon while vblaunch holds the session ([`tray`]); the
//! balloon when the session ended. Failures are shown by `gui_main` in the
//! failure dialog ([`dialog`]) once the run is over.
//!
//! With `VBLAUNCH_GUI_TRANSCRIPT` set (tests), no window is made: each
//! screen that differs from the one before is appended to that file, as
//! [`super::model::Screen::transcript`] writes it.
//!
//! All windows are plain Win32 (user32, gdi32 and comctl32's progress bar,
//! shell32 for the icon): no task dialog, so nothing needs more than
//! comctl32 v5 (the embedded manifest asks for v6, for themed controls and
//! the marquee bar), and every text is readable through the window tree.
pub mod dialog;
pub mod progress;
pub mod tray;
mod ui;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{HWND, LPARAM};
use windows_sys::Win32::System::Threading::GetCurrentThreadId;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    DispatchMessageW, EnumWindows, GetMessageW, IsDialogMessageW, IsIconic, IsWindowVisible,
    KillTimer, PeekMessageW, PostThreadMessageW, SetForegroundWindow, SetTimer, ShowWindow,
    TranslateMessage, MSG, PM_NOREMOVE, PM_REMOVE, SW_RESTORE, SW_SHOWNORMAL, WM_APP, WM_QUIT,
    WM_TIMER,
};

use super::model::{self, Button, FailureDialog, Launch, Screen};
use super::{Event, Face};

/// How often the UI thread asks the model (the elapsed time ticks).
const TICK: Duration = Duration::from_millis(200);
/// How long the final balloon is given before the icon goes away.
const BALLOON: Duration = Duration::from_secs(6);
/// Posted to the UI thread: an event arrived, draw now.
const WM_WAKE: u32 = WM_APP + 2;

/// What the run's face shares with its UI thread.
struct Shared {
    launch: Mutex<Launch>,
    start: Instant,
    cancelled: AtomicBool,
    closing: AtomicBool,
    /// The UI thread's id (for PostThreadMessageW); 0 in transcript mode.
    ui_thread: AtomicU32,
    wake: (Mutex<bool>, Condvar),
    actions: Actions,
}

/// The native face of a shortcut launch (see the module doc).
pub struct WindowsFace {
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl WindowsFace {
    /// Start the UI thread for a run on `vm`.
    pub fn start(vm: &str, global: &crate::cli::Global) -> WindowsFace {
        let log_file = crate::logging::log_file_path();
        let shared = Arc::new(Shared {
            launch: Mutex::new(Launch::new(vm, &log_file.display().to_string())),
            start: Instant::now(),
            cancelled: AtomicBool::new(false),
            closing: AtomicBool::new(false),
            ui_thread: AtomicU32::new(0),
            wake: (Mutex::new(false), Condvar::new()),
            actions: Actions::new(vm, global),
        });
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let s = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("vblaunch-ui".into())
            .spawn(move || ui_main(&s, ready_tx))
            .map_err(|e| log::warn!("no progress window: cannot start its thread: {e}"))
            .ok();
        if thread.is_some() {
            // Wait until its message queue exists (PostThreadMessageW needs it).
            let _ = ready_rx.recv_timeout(Duration::from_secs(5));
        }
        WindowsFace {
            shared,
            thread: Mutex::new(thread),
        }
    }

    fn wake(&self) {
        let tid = self.shared.ui_thread.load(Ordering::SeqCst);
        if tid != 0 {
            // SAFETY: posting to a thread id; fails harmlessly if it is gone.
            unsafe { PostThreadMessageW(tid, WM_WAKE, 0, 0) };
        }
        let (m, c) = &self.shared.wake;
        *m.lock().unwrap_or_else(|e| e.into_inner()) = true;
        c.notify_all();
    }
}

impl Face for WindowsFace {
    fn event(&self, event: &Event) {
        self.shared
            .launch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .apply(event);
        self.wake();
    }

    fn cancelled(&self) -> bool {
        self.shared.cancelled.load(Ordering::SeqCst)
    }
}

impl Drop for WindowsFace {
    /// The run is over: draw the last screen (a balloon gets its few
    /// seconds), close every window, remove the icon.
    fn drop(&mut self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        let tid = self.shared.ui_thread.load(Ordering::SeqCst);
        if tid != 0 {
            // SAFETY: as in `wake`.
            unsafe { PostThreadMessageW(tid, WM_QUIT, 0, 0) };
        }
        self.wake();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// The UI thread's state: the windows it shows and the last screen's text.
struct Ui {
    native: bool,
    progress: Option<progress::ProgressWindow>,
    tray: Option<tray::Tray>,
    last: Option<String>,
    /// The last screen was the icon of a held session (Stop waiting is
    /// meant only then: not during the fold on exit that may follow).
    holding: bool,
}

fn ui_main(shared: &Shared, ready: std::sync::mpsc::Sender<()>) {
    let native = !super::transcript_on();
    let mut ui = Ui {
        native,
        progress: None,
        tray: None,
        last: None,
        holding: false,
    };
    if !native {
        let _ = ready.send(());
        loop {
            ui.tick(shared);
            if shared.closing.load(Ordering::SeqCst) {
                break;
            }
            let (m, c) = &shared.wake;
            let mut woken = m.lock().unwrap_or_else(|e| e.into_inner());
            if !*woken {
                woken = c
                    .wait_timeout(woken, TICK)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *woken = false;
        }
        ui.tick(shared);
        return;
    }
    // SAFETY: the usual message loop of a UI thread; every window it
    // touches is created and destroyed on this thread.
    unsafe {
        let mut msg: MSG = std::mem::zeroed();
        // Make the thread's message queue before anyone posts to it.
        PeekMessageW(&mut msg, std::ptr::null_mut(), WM_APP, WM_APP, PM_NOREMOVE);
        shared
            .ui_thread
            .store(GetCurrentThreadId(), Ordering::SeqCst);
        let _ = ready.send(());
        let timer = SetTimer(std::ptr::null_mut(), 0, TICK.as_millis() as u32, None);
        ui.tick(shared);
        while !shared.closing.load(Ordering::SeqCst)
            && GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) > 0
        {
            ui.dispatch(&msg);
            ui.handle_clicks(shared);
            if msg.hwnd.is_null() && (msg.message == WM_TIMER || msg.message == WM_WAKE) {
                ui.tick(shared);
            }
        }
        KillTimer(std::ptr::null_mut(), timer);
        ui.tick(shared);
        // The session's balloon: give it its time, then the icon goes.
        let until = Instant::now()
            + ui.tray
                .as_ref()
                .map_or(Duration::ZERO, |t| t.balloon_left(BALLOON));
        while Instant::now() < until
            && ui
                .tray
                .as_ref()
                .is_some_and(|t| !t.balloon_left(BALLOON).is_zero())
        {
            while PeekMessageW(&mut msg, std::ptr::null_mut(), 0, 0, PM_REMOVE) != 0 {
                if msg.message != WM_QUIT {
                    ui.dispatch(&msg);
                }
            }
            ui.handle_clicks(shared);
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    shared.ui_thread.store(0, Ordering::SeqCst);
    // Dropping `ui` closes the progress window and removes the icon.
}

impl Ui {
    /// Ask the model what to show now, and show it.
    fn tick(&mut self, shared: &Shared) {
        let screen = shared
            .launch
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .screen(shared.start.elapsed());
        self.holding = matches!(screen, Screen::Tray(_));
        let entry = screen.transcript();
        if entry != self.last {
            if let Some(e) = &entry {
                log::debug!("shown: {}", e.replace('\n', " | "));
                if !self.native {
                    super::transcript(e);
                }
            }
            self.last = entry;
        }
        if self.native {
            self.draw(&screen);
        }
    }

    fn draw(&mut self, screen: &Screen) {
        match screen {
            Screen::Progress(v) => {
                if let Some(t) = &mut self.tray {
                    t.remove();
                }
                if self.progress.is_none() {
                    self.progress = progress::ProgressWindow::new(&v.title);
                }
                if let Some(p) = &mut self.progress {
                    p.show(v);
                }
            }
            Screen::Nothing | Screen::Failure(_) => {
                self.progress = None;
                if let Some(t) = &mut self.tray {
                    t.remove();
                }
            }
            Screen::Tray(v) => {
                self.progress = None;
                if self.tray.is_none() {
                    self.tray = tray::Tray::new();
                }
                if let Some(t) = &mut self.tray {
                    t.show(v);
                }
            }
            Screen::Toast(text) => {
                self.progress = None;
                if self.tray.is_none() {
                    self.tray = tray::Tray::new();
                }
                if let Some(t) = &mut self.tray {
                    t.balloon("vblaunch", text);
                }
            }
        }
    }

    fn dispatch(&self, msg: &MSG) {
        // SAFETY: a message this thread received; the progress window (if
        // any) is this thread's.
        unsafe {
            let dialog = self.progress.as_ref().map(|p| p.hwnd);
            if dialog.is_some_and(|h| IsDialogMessageW(h, msg) != 0) {
                return;
            }
            TranslateMessage(msg);
            DispatchMessageW(msg);
        }
    }

    fn handle_clicks(&mut self, shared: &Shared) {
        if let Some(p) = &mut self.progress {
            for id in ui::take_clicks(p.hwnd) {
                // Cancel, Esc or the close box: only while Cancel is offered
                // (a merge cannot be stopped; its window says why).
                if id == ui::IDCANCEL && p.offers_cancel() {
                    log::info!("Cancel pressed: stopping before any change");
                    shared.cancelled.store(true, Ordering::SeqCst);
                    p.set_cancelling();
                }
            }
        }
        let Some(t) = &mut self.tray else { return };
        for id in ui::take_clicks(t.hwnd) {
            let chosen = match id {
                tray::ID_MENU => t.menu(),
                tray::ID_BALLOON_DONE => {
                    t.balloon_done();
                    None
                }
                id => Some(id),
            };
            match chosen {
                Some(tray::ID_STATUS) => shared.actions.status(),
                Some(tray::ID_OPEN_LOG) => shared.actions.open_log(),
                Some(tray::ID_STOP_WAITING) if !self.holding => {
                    log::info!("Stop waiting chosen after the session ended; ignored");
                }
                Some(tray::ID_STOP_WAITING) => {
                    log::info!(
                        "Stopped waiting at the user's request: VM '{}' keeps running; the \
                         next launch folds its session (as after Ctrl-C).",
                        shared.actions.vm
                    );
                    t.remove();
                    std::process::exit(0);
                }
                _ => {}
            }
        }
    }
}

/// What the buttons of the dialogs and the icon's menu do.
struct Actions {
    vm: String,
    /// `vblaunch status` with the launch's `--config` / `--vboxmanage`.
    status_args: Vec<OsString>,
}

impl Actions {
    fn new(vm: &str, global: &crate::cli::Global) -> Actions {
        Actions {
            vm: vm.to_string(),
            status_args: model::console_args(global, "status", vm),
        }
    }

    fn open_log(&self) {
        open_log(std::ptr::null_mut());
    }

    /// Show what `vblaunch status "<VM>"` prints, in a dialog of its own
    /// thread (the call takes a moment; the icon's menu stays responsive).
    fn status(&self) {
        let vm = self.vm.clone();
        let args = self.status_args.clone();
        let spawned = std::thread::Builder::new()
            .name("vblaunch-status".into())
            .spawn(move || {
                let printed = run_console(&args);
                let d = model::status_dialog(&vm, printed);
                let spec = dialog::Spec {
                    title: &d.title,
                    icon: dialog::Icon::Information,
                    heading: &d.heading,
                    paragraphs: Vec::new(),
                    boxed: Some(("vblaunch status says:".into(), d.text.clone(), true)),
                    footer: None,
                    buttons: vec![(BTN_CLOSE, "Close")],
                    default: BTN_CLOSE,
                    cancel: BTN_CLOSE,
                    topmost: false,
                    width: dialog::WIDE,
                };
                dialog::run(&spec, &mut |_, id| id == BTN_CLOSE);
            });
        if let Err(e) = spawned {
            log::warn!("cannot show the status: {e}");
        }
    }
}

/// `vblaunch.exe` next to this executable (the console program: *Run
/// doctor* and *Status* run it).
fn console_exe() -> Option<PathBuf> {
    let me = std::env::current_exe().ok()?;
    let exe = me.with_file_name("vblaunch.exe");
    exe.is_file().then_some(exe)
}

/// Run `vblaunch.exe ARGS` without a console window; its output, or why
/// there is none.
fn run_console(args: &[OsString]) -> Result<String, String> {
    use crate::process::{self, CommandLine, Deadline};
    let exe = console_exe().ok_or_else(|| {
        "vblaunch.exe was not found next to vblaunchw.exe; run `vblaunch status` in a console"
            .to_string()
    })?;
    let mut cmd = CommandLine::new(&exe);
    cmd.args = args.to_vec();
    match process::run(&cmd, Deadline::After(Duration::from_secs(120)), &mut |_| {}) {
        Ok(out) if out.status.success() => Ok(out.stdout),
        Ok(out) => Err(format!("{}{}", out.stdout, out.stderr)),
        Err(e) => Err(e.to_string()),
    }
}

/// Open the log file in the user's editor (ShellExecuteW "open").
fn open_log(owner: HWND) {
    use windows_sys::Win32::UI::Shell::ShellExecuteW;
    let log = crate::logging::log_file_path();
    log::info!("opening the log file {}", log.display());
    let op = ui::wide("open");
    let file: Vec<u16> = path_wide(&log);
    // SAFETY: NUL-terminated strings that outlive the call.
    let r = unsafe {
        ShellExecuteW(
            owner,
            op.as_ptr(),
            file.as_ptr(),
            std::ptr::null(),
            std::ptr::null(),
            SW_SHOWNORMAL,
        )
    };
    // Per the documentation, a value above 32 is success.
    if (r as usize) <= 32 {
        show_info(
            "vblaunch",
            &format!(
                "Windows could not open the log file {} (error {}).",
                log.display(),
                r as usize
            ),
        );
    }
}

fn path_wide(p: &Path) -> Vec<u16> {
    use std::os::windows::ffi::OsStrExt;
    p.as_os_str()
        .encode_wide()
        .chain(std::iter::once(0))
        .collect()
}

/// *Run doctor*: a new console window running `vblaunch ARGS` (`doctor --
/// <VM>` with the launch's options, [`model::console_args`]), kept open
/// (`cmd /k`).
fn run_doctor(args: &[OsString]) {
    use std::os::windows::process::CommandExt;
    const CREATE_NEW_CONSOLE: u32 = 0x0000_0010;
    let Some(exe) = console_exe() else {
        show_info(
            "vblaunch",
            "vblaunch.exe was not found next to vblaunchw.exe, so the doctor cannot run. \
             Run `vblaunch doctor` in a console.",
        );
        return;
    };
    let line = model::doctor_command_line(&exe.display().to_string(), args);
    log::info!("running the doctor: cmd.exe {line}");
    let spawned = std::process::Command::new("cmd.exe")
        .raw_arg(&line)
        .creation_flags(CREATE_NEW_CONSOLE)
        .spawn();
    if let Err(e) = spawned {
        show_info("vblaunch", &format!("Cannot start the doctor: {e}"));
    }
}

/// Put `text` on the clipboard as Unicode text.
fn copy_to_clipboard(owner: HWND, text: &str) -> bool {
    use windows_sys::Win32::System::DataExchange::{
        CloseClipboard, EmptyClipboard, OpenClipboard, SetClipboardData,
    };
    use windows_sys::Win32::System::Memory::{
        GlobalAlloc, GlobalLock, GlobalUnlock, GMEM_MOVEABLE,
    };
    use windows_sys::Win32::System::Ole::CF_UNICODETEXT;
    let w = ui::wide(&ui::crlf(text));
    // SAFETY: the documented sequence: the clipboard owns the global memory
    // once SetClipboardData succeeds; the copy stays within its size.
    unsafe {
        if OpenClipboard(owner) == 0 {
            return false;
        }
        EmptyClipboard();
        let mem = GlobalAlloc(GMEM_MOVEABLE, w.len() * 2);
        let mut ok = false;
        if !mem.is_null() {
            let p = GlobalLock(mem) as *mut u16;
            if !p.is_null() {
                std::ptr::copy_nonoverlapping(w.as_ptr(), p, w.len());
                GlobalUnlock(mem);
                ok = !SetClipboardData(u32::from(CF_UNICODETEXT), mem).is_null();
            }
        }
        CloseClipboard();
        ok
    }
}

/// What the user chose in a failure dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Retry,
    Close,
}

const BTN_OPEN_LOG: u16 = 150;
const BTN_RUN_DOCTOR: u16 = 151;
const BTN_COPY: u16 = 152;
const BTN_CLOSE: u16 = 153;
const BTN_RETRY: u16 = 154;
const BTN_CANCEL: u16 = 155;

fn button_id(b: Button) -> u16 {
    match b {
        Button::OpenLog => BTN_OPEN_LOG,
        Button::RunDoctor => BTN_RUN_DOCTOR,
        Button::CopyDetails => BTN_COPY,
        Button::Close => BTN_CLOSE,
        Button::Retry => BTN_RETRY,
        Button::Cancel => BTN_CANCEL,
    }
}

/// Show the failure dialog and wait for the user: *Open log*, *Run doctor*
/// and *Copy details* act and leave it open; *Close*, *Retry* and *Cancel*
/// close it. `doctor`: the arguments *Run doctor* runs `vblaunch.exe` with.
pub fn show_failure(d: &FailureDialog, doctor: &[OsString]) -> Choice {
    let mut paragraphs = Vec::new();
    if !d.body.is_empty() {
        paragraphs.push(d.body.clone());
    }
    if let Some(m) = &d.meaning {
        paragraphs.push(format!("What this means: {m}"));
    }
    if let Some(t) = &d.what_to_do {
        paragraphs.push(format!("What to do: {t}"));
    }
    let buttons: Vec<(u16, &str)> = d
        .buttons
        .iter()
        .map(|b| (button_id(*b), b.label()))
        .collect();
    let cancel = if d.buttons.contains(&Button::Cancel) {
        BTN_CANCEL
    } else {
        BTN_CLOSE
    };
    let spec = dialog::Spec {
        title: &d.title,
        icon: dialog::Icon::Error,
        heading: &d.heading,
        paragraphs,
        boxed: d
            .details
            .as_ref()
            .map(|t| ("Details — VirtualBox said:".to_string(), t.clone(), true)),
        footer: Some(d.footer.clone()),
        buttons,
        default: button_id(d.default_button),
        cancel,
        topmost: true,
        width: dialog::WIDTH,
    };
    let full = d.full_text();
    let chosen = dialog::run(&spec, &mut |hwnd, id| match id {
        BTN_OPEN_LOG => {
            open_log(hwnd);
            false
        }
        BTN_RUN_DOCTOR => {
            run_doctor(doctor);
            false
        }
        BTN_COPY => {
            let ok = copy_to_clipboard(hwnd, &full);
            // SAFETY: the dialog's own button.
            let b = unsafe {
                windows_sys::Win32::UI::WindowsAndMessaging::GetDlgItem(hwnd, i32::from(BTN_COPY))
            };
            ui::set_text(b, if ok { "Copied" } else { "Copy failed" });
            false
        }
        _ => true,
    });
    if chosen == BTN_RETRY {
        Choice::Retry
    } else {
        Choice::Close
    }
}

/// A short note (the single-instance case: "Dev Box is already running.";
/// `--help`): its first line as the heading, the rest in a box.
pub fn show_info(title: &str, text: &str) {
    let text = text.trim_end();
    let (heading, rest) = text.split_once('\n').unwrap_or((text, ""));
    let spec = dialog::Spec {
        title,
        icon: dialog::Icon::Information,
        heading: heading.trim(),
        paragraphs: Vec::new(),
        boxed: (!rest.trim().is_empty()).then(|| (String::new(), rest.to_string(), true)),
        footer: None,
        buttons: vec![(BTN_CLOSE, "OK")],
        default: BTN_CLOSE,
        cancel: BTN_CLOSE,
        topmost: false,
        width: if rest.trim().is_empty() {
            dialog::WIDTH
        } else {
            dialog::WIDE
        },
    };
    dialog::run(&spec, &mut |_, id| id == BTN_CLOSE);
}

/// Bring `vm`'s own VirtualBox window to the front (a second launch of a VM
/// that runs); returns its title, or `None` when there is no such window.
pub fn bring_vm_window_to_front(vm: &str) -> Option<String> {
    unsafe extern "system" fn collect(hwnd: HWND, lparam: LPARAM) -> i32 {
        // SAFETY: `lparam` is the Vec passed below, alive during EnumWindows.
        let found = unsafe { &mut *(lparam as *mut Vec<(HWND, String)>) };
        // SAFETY: a window handle Windows gave us.
        if unsafe { IsWindowVisible(hwnd) } != 0 {
            found.push((hwnd, ui::get_text(hwnd)));
        }
        1
    }
    let mut found: Vec<(HWND, String)> = Vec::new();
    // SAFETY: the callback only pushes into `found`, which outlives the call.
    unsafe { EnumWindows(Some(collect), &mut found as *mut _ as LPARAM) };
    let (hwnd, title) = found
        .into_iter()
        .find(|(_, t)| model::is_vm_window(t, vm))?;
    // SAFETY: a top-level window that existed a moment ago (if it is gone,
    // the calls fail harmlessly).
    unsafe {
        if IsIconic(hwnd) != 0 {
            ShowWindow(hwnd, SW_RESTORE);
        }
        SetForegroundWindow(hwnd);
    }
    Some(title)
}
