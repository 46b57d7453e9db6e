//! The progress window: a small native window titled "<VM> — vblaunch" with
//! the model's heading and text, a progress bar (the merge's percentage, or
//! a marquee while no percentage is known), the percentage, the elapsed
//! time, and *Cancel* only when the model offers it. It lives on the face's
//! UI thread; [`ProgressWindow::show`] redraws it from a [`ProgressView`].
use windows_sys::Win32::Foundation::HWND;
use windows_sys::Win32::UI::Controls::{
    InitCommonControlsEx, ICC_PROGRESS_CLASS, INITCOMMONCONTROLSEX, PBM_SETMARQUEE, PBM_SETPOS,
    PBM_SETRANGE32, PBS_MARQUEE,
};
use windows_sys::Win32::UI::Input::KeyboardAndMouse::EnableWindow;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DestroyWindow, GetWindowLongPtrW, MoveWindow, SendMessageW, SetWindowLongPtrW,
    ShowWindow, GWL_STYLE, SW_HIDE, SW_SHOW, SW_SHOWNORMAL,
};

use super::ui::{self, Fonts};
use crate::face::model::ProgressView;

pub const CLASS: &str = "vblaunch.progress";
const WIDTH: i32 = 520;
const MARGIN: i32 = 16;
const BAR_H: i32 = 18;
const BUTTON_W: i32 = 96;
const BUTTON_H: i32 = 28;

const ID_HEADING: u16 = 101;
const ID_TEXT: u16 = 102;
const ID_BAR: u16 = 103;
const ID_PERCENT: u16 = 104;
const ID_ELAPSED: u16 = 105;

pub struct ProgressWindow {
    pub hwnd: HWND,
    heading: HWND,
    text: HWND,
    bar: HWND,
    percent: HWND,
    elapsed: HWND,
    cancel: HWND,
    fonts: Fonts,
    /// What the window shows now (None: not yet drawn).
    shown: Option<ProgressView>,
    /// The user pressed Cancel (the button then says so until the run stops).
    cancelling: bool,
}

const STYLE: u32 = ui::WS_CAPTION | ui::WS_SYSMENU | ui::WS_MINIMIZEBOX | ui::WS_POPUP;
const EX_STYLE: u32 = ui::WS_EX_APPWINDOW | ui::WS_EX_CONTROLPARENT;

impl ProgressWindow {
    pub fn new(title: &str) -> Option<ProgressWindow> {
        // SAFETY: plain data; registers the progress bar class.
        unsafe {
            let icc = INITCOMMONCONTROLSEX {
                dwSize: std::mem::size_of::<INITCOMMONCONTROLSEX>() as u32,
                dwICC: ICC_PROGRESS_CLASS,
            };
            InitCommonControlsEx(&icc);
        }
        let class = ui::wide(CLASS);
        ui::register_class(&class, Some(ui::clicks_proc));
        let t = ui::wide(title);
        // SAFETY: registered class, NUL-terminated strings.
        let hwnd = unsafe {
            CreateWindowExW(
                EX_STYLE,
                class.as_ptr(),
                t.as_ptr(),
                STYLE,
                0,
                0,
                WIDTH,
                160,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                ui::instance(),
                std::ptr::null(),
            )
        };
        if hwnd.is_null() {
            log::warn!("cannot create the progress window");
            return None;
        }
        let fonts = Fonts::new();
        let flags = ui::SS_NOPREFIX | ui::SS_EDITCONTROL;
        let heading = ui::child(hwnd, "STATIC", "", flags, 0, ID_HEADING, fonts.heading);
        let text = ui::child(hwnd, "STATIC", "", flags, 0, ID_TEXT, fonts.normal);
        let bar = ui::child(hwnd, "msctls_progress32", "", 0, 0, ID_BAR, fonts.normal);
        let percent = ui::child(
            hwnd,
            "STATIC",
            "",
            ui::SS_NOPREFIX,
            0,
            ID_PERCENT,
            fonts.normal,
        );
        let elapsed = ui::child(
            hwnd,
            "STATIC",
            "",
            ui::SS_NOPREFIX | ui::SS_RIGHT,
            0,
            ID_ELAPSED,
            fonts.normal,
        );
        let cancel = ui::child(
            hwnd,
            "BUTTON",
            "Cancel",
            ui::WS_TABSTOP | ui::BS_PUSHBUTTON,
            0,
            ui::IDCANCEL,
            fonts.normal,
        );
        // SAFETY: our control.
        unsafe { SendMessageW(bar, PBM_SETRANGE32, 0, 100) };
        Some(ProgressWindow {
            hwnd,
            heading,
            text,
            bar,
            percent,
            elapsed,
            cancel,
            fonts,
            shown: None,
            cancelling: false,
        })
    }

    /// Draw `v` (laying the window out again only when its texts changed).
    pub fn show(&mut self, v: &ProgressView) {
        let first = self.shown.is_none();
        let relayout = self
            .shown
            .as_ref()
            .is_none_or(|s| s.heading != v.heading || s.text != v.text || s.cancel != v.cancel);
        ui::set_text(self.hwnd, &v.title);
        ui::set_text(self.heading, &v.heading);
        ui::set_text(self.text, &v.text);
        ui::set_text(self.elapsed, &v.elapsed);
        ui::set_text(self.percent, &v.percent_label());
        self.set_bar(v.percent, self.shown.as_ref().map(|s| s.percent));
        if !v.cancel {
            self.cancelling = false;
        }
        ui::set_text(
            self.cancel,
            if self.cancelling {
                "Cancelling…"
            } else {
                "Cancel"
            },
        );
        // SAFETY: our controls.
        unsafe {
            EnableWindow(self.cancel, i32::from(!self.cancelling));
            ShowWindow(self.cancel, if v.cancel { SW_SHOW } else { SW_HIDE });
        }
        if relayout {
            self.lay_out(v, first);
        }
        if first {
            // SAFETY: our window.
            unsafe { ShowWindow(self.hwnd, SW_SHOWNORMAL) };
        }
        self.shown = Some(v.clone());
    }

    /// Whether Cancel is on screen (and so means something).
    pub fn offers_cancel(&self) -> bool {
        self.shown.as_ref().is_some_and(|s| s.cancel)
    }

    /// The user pressed Cancel: say so until the run stops.
    pub fn set_cancelling(&mut self) {
        self.cancelling = true;
        ui::set_text(self.cancel, "Cancelling…");
        // SAFETY: our control.
        unsafe { EnableWindow(self.cancel, 0) };
    }

    fn set_bar(&self, percent: Option<u8>, before: Option<Option<u8>>) {
        // SAFETY: our control; style bits as documented for msctls_progress32.
        unsafe {
            let style = GetWindowLongPtrW(self.bar, GWL_STYLE) as u32;
            match percent {
                None => {
                    if before != Some(None) {
                        SetWindowLongPtrW(self.bar, GWL_STYLE, (style | PBS_MARQUEE) as isize);
                        SendMessageW(self.bar, PBM_SETMARQUEE, 1, 30);
                    }
                }
                Some(p) => {
                    if style & PBS_MARQUEE != 0 {
                        SendMessageW(self.bar, PBM_SETMARQUEE, 0, 0);
                        SetWindowLongPtrW(self.bar, GWL_STYLE, (style & !PBS_MARQUEE) as isize);
                        SendMessageW(self.bar, PBM_SETRANGE32, 0, 100);
                    }
                    SendMessageW(self.bar, PBM_SETPOS, usize::from(p), 0);
                }
            }
        }
    }

    fn lay_out(&self, v: &ProgressView, first: bool) {
        let w = WIDTH - 2 * MARGIN;
        let mut y = MARGIN;
        let hh = ui::text_height(self.fonts.heading, &v.heading, w);
        let th = ui::text_height(self.fonts.normal, &v.text, w);
        let line = ui::text_height(self.fonts.normal, "Ag", w).max(12);
        // SAFETY: our controls and window.
        unsafe {
            MoveWindow(self.heading, MARGIN, y, w, hh, 1);
            y += hh + 8;
            MoveWindow(self.text, MARGIN, y, w, th, 1);
            if th > 0 {
                y += th + 10;
            }
            MoveWindow(self.bar, MARGIN, y, w, BAR_H, 1);
            y += BAR_H + 6;
            MoveWindow(self.percent, MARGIN, y, w / 2, line, 1);
            MoveWindow(self.elapsed, MARGIN + w / 2, y, w / 2, line, 1);
            y += line + 10;
            if v.cancel {
                MoveWindow(
                    self.cancel,
                    WIDTH - MARGIN - BUTTON_W,
                    y,
                    BUTTON_W,
                    BUTTON_H,
                    1,
                );
                y += BUTTON_H;
            }
            y += MARGIN;
            let (ow, oh) = ui::outer_size(WIDTH, y, STYLE, EX_STYLE);
            if first {
                let (x, top) = ui::centred(ow, oh);
                MoveWindow(self.hwnd, x, top, ow, oh, 1);
            } else {
                let mut r = std::mem::zeroed();
                windows_sys::Win32::UI::WindowsAndMessaging::GetWindowRect(self.hwnd, &mut r);
                MoveWindow(self.hwnd, r.left, r.top, ow, oh, 1);
            }
        }
    }
}

impl Drop for ProgressWindow {
    fn drop(&mut self) {
        // SAFETY: our window (its controls go with it); the fonts are
        // dropped after this.
        unsafe { DestroyWindow(self.hwnd) };
    }
}
