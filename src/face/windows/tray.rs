//! The notification-area icon while vblaunch holds the session: a hidden
//! window of the face's UI thread owns it (Shell_NotifyIconW), shows the
//! model's tooltip, opens the model's menu on a click, and shows the final
//! balloon (NIF_INFO) before the icon goes away.
use std::time::{Duration, Instant};

use windows_sys::Win32::Foundation::{HWND, LPARAM, LRESULT, POINT, WPARAM};
use windows_sys::Win32::UI::Shell::{
    Shell_NotifyIconW, NIF_ICON, NIF_INFO, NIF_MESSAGE, NIF_TIP, NIIF_INFO, NIM_ADD, NIM_DELETE,
    NIM_MODIFY, NIN_BALLOONHIDE, NIN_BALLOONTIMEOUT, NIN_BALLOONUSERCLICK, NOTIFYICONDATAW,
};
use windows_sys::Win32::UI::WindowsAndMessaging::{
    AppendMenuW, CreatePopupMenu, CreateWindowExW, DefWindowProcW, DestroyMenu, DestroyWindow,
    GetCursorPos, LoadIconW, PostMessageW, SetForegroundWindow, TrackPopupMenu, IDI_INFORMATION,
    MF_STRING, TPM_RETURNCMD, TPM_RIGHTBUTTON, WM_APP, WM_COMMAND, WM_CONTEXTMENU, WM_LBUTTONUP,
    WM_NULL, WM_RBUTTONUP,
};

use super::ui;
use crate::face::model::{TrayItem, TrayView};

pub const CLASS: &str = "vblaunch.tray";
const CALLBACK: u32 = WM_APP + 1;
/// Control ids of the menu's items (clicks of the tray window).
pub const ID_STATUS: u16 = 201;
pub const ID_OPEN_LOG: u16 = 202;
pub const ID_STOP_WAITING: u16 = 203;
/// A click on the balloon, or its end.
pub const ID_BALLOON_DONE: u16 = 210;

pub fn item_id(item: TrayItem) -> u16 {
    match item {
        TrayItem::Status => ID_STATUS,
        TrayItem::OpenLog => ID_OPEN_LOG,
        TrayItem::StopWaiting => ID_STOP_WAITING,
    }
}

pub struct Tray {
    pub hwnd: HWND,
    view: Option<TrayView>,
    added: bool,
    balloon: Option<(String, Instant)>,
    balloon_done: bool,
}

fn copy_into(dst: &mut [u16], s: &str) {
    let max = dst.len() - 1;
    let w: Vec<u16> = s.encode_utf16().take(max).collect();
    dst[..w.len()].copy_from_slice(&w);
    dst[w.len()] = 0;
}

impl Tray {
    pub fn new() -> Option<Tray> {
        let class = ui::wide(CLASS);
        ui::register_class(&class, Some(tray_proc));
        let title = ui::wide("vblaunch");
        // A hidden top-level window (not message-only: the menu needs a
        // window that can be in the foreground).
        // SAFETY: registered class, NUL-terminated strings.
        let hwnd = unsafe {
            CreateWindowExW(
                ui::WS_EX_TOOLWINDOW,
                class.as_ptr(),
                title.as_ptr(),
                ui::WS_POPUP,
                0,
                0,
                0,
                0,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                ui::instance(),
                std::ptr::null(),
            )
        };
        if hwnd.is_null() {
            log::warn!("cannot create the notification icon's window");
            return None;
        }
        Some(Tray {
            hwnd,
            view: None,
            added: false,
            balloon: None,
            balloon_done: false,
        })
    }

    fn data(&self) -> NOTIFYICONDATAW {
        // SAFETY: NOTIFYICONDATAW is plain data; zero is its documented start.
        let mut d: NOTIFYICONDATAW = unsafe { std::mem::zeroed() };
        d.cbSize = std::mem::size_of::<NOTIFYICONDATAW>() as u32;
        d.hWnd = self.hwnd;
        d.uID = 1;
        d
    }

    /// Show the icon with `v`'s tooltip (and menu).
    pub fn show(&mut self, v: &TrayView) {
        if self.added && self.view.as_ref() == Some(v) {
            return;
        }
        let mut d = self.data();
        d.uFlags = NIF_ICON | NIF_MESSAGE | NIF_TIP;
        d.uCallbackMessage = CALLBACK;
        // SAFETY: a shared system icon.
        d.hIcon = unsafe { LoadIconW(std::ptr::null_mut(), IDI_INFORMATION) };
        copy_into(&mut d.szTip, &v.tooltip);
        // SAFETY: `d` is complete for these flags.
        let ok = unsafe { Shell_NotifyIconW(if self.added { NIM_MODIFY } else { NIM_ADD }, &d) };
        if ok == 0 && !self.added {
            log::warn!("the notification area did not take vblaunch's icon");
        }
        self.added = true;
        self.view = Some(v.clone());
    }

    /// Show `text` in a balloon (once per text).
    pub fn balloon(&mut self, title: &str, text: &str) {
        if self.balloon.as_ref().is_some_and(|(t, _)| t == text) {
            return;
        }
        if !self.added {
            self.show(&TrayView {
                tooltip: title.to_string(),
                menu: Vec::new(),
            });
        }
        let mut d = self.data();
        d.uFlags = NIF_INFO;
        copy_into(&mut d.szInfo, text);
        copy_into(&mut d.szInfoTitle, title);
        d.dwInfoFlags = NIIF_INFO;
        d.Anonymous.uTimeout = 10_000;
        // SAFETY: as in `show`.
        unsafe { Shell_NotifyIconW(NIM_MODIFY, &d) };
        self.balloon = Some((text.to_string(), Instant::now()));
        self.balloon_done = false;
    }

    pub fn balloon_done(&mut self) {
        self.balloon_done = true;
    }

    /// How long the balloon should still be given before the icon goes
    /// (zero: no balloon, or it is over).
    pub fn balloon_left(&self, at_least: Duration) -> Duration {
        match &self.balloon {
            Some((_, since)) if !self.balloon_done => at_least.saturating_sub(since.elapsed()),
            _ => Duration::ZERO,
        }
    }

    /// Pop up the menu at the cursor; returns the chosen item's id.
    pub fn menu(&self) -> Option<u16> {
        let items: Vec<TrayItem> = self.view.as_ref().map(|v| v.menu.clone())?;
        if items.is_empty() {
            return None;
        }
        // SAFETY: a menu we create and destroy here; our window owns it
        // while it shows (the foreground/WM_NULL dance is what the
        // documentation of TrackPopupMenu asks for notification icons).
        unsafe {
            let menu = CreatePopupMenu();
            for item in &items {
                let label = ui::wide(item.label());
                AppendMenuW(menu, MF_STRING, usize::from(item_id(*item)), label.as_ptr());
            }
            let mut pt = POINT { x: 0, y: 0 };
            GetCursorPos(&mut pt);
            SetForegroundWindow(self.hwnd);
            let chosen = TrackPopupMenu(
                menu,
                TPM_RETURNCMD | TPM_RIGHTBUTTON,
                pt.x,
                pt.y,
                0,
                self.hwnd,
                std::ptr::null(),
            );
            PostMessageW(self.hwnd, WM_NULL, 0, 0);
            DestroyMenu(menu);
            (chosen > 0).then_some(chosen as u16)
        }
    }

    /// Remove the icon (the window stays until drop).
    pub fn remove(&mut self) {
        if self.added {
            let d = self.data();
            // SAFETY: as in `show`.
            unsafe { Shell_NotifyIconW(NIM_DELETE, &d) };
            self.added = false;
            self.view = None;
        }
    }
}

impl Drop for Tray {
    fn drop(&mut self) {
        self.remove();
        // SAFETY: our window.
        unsafe { DestroyWindow(self.hwnd) };
    }
}

/// Mouse messages on the icon open the menu (handled by the UI loop, which
/// owns the state); the balloon's end is reported the same way.
/// `MENU` is a pseudo id: "open the menu now".
pub const ID_MENU: u16 = 220;

unsafe extern "system" fn tray_proc(
    hwnd: HWND,
    msg: u32,
    wparam: WPARAM,
    lparam: LPARAM,
) -> LRESULT {
    if msg == CALLBACK {
        match (lparam & 0xFFFF) as u32 {
            WM_LBUTTONUP | WM_RBUTTONUP | WM_CONTEXTMENU => ui::push_click(hwnd, ID_MENU),
            NIN_BALLOONTIMEOUT | NIN_BALLOONUSERCLICK | NIN_BALLOONHIDE => {
                ui::push_click(hwnd, ID_BALLOON_DONE)
            }
            _ => {}
        }
        return 0;
    }
    // A menu item's id sent as a command (what the menu itself sends without
    // TPM_RETURNCMD; the GUI tests send it to choose an item).
    if msg == WM_COMMAND {
        ui::push_click(hwnd, (wparam & 0xFFFF) as u16);
        return 0;
    }
    // SAFETY: the arguments are the ones Windows passed.
    unsafe { DefWindowProcW(hwnd, msg, wparam, lparam) }
}
