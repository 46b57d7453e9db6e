//! vblaunch's modal dialogs (the failure dialog, the status dialog, a note):
//! a plain Win32 window laid out from its texts — an icon, a bold heading,
//! paragraphs, a scrollable box for long or verbatim text (VirtualBox's own
//! words, `status`'s output), a footer and a row of buttons. Buttons that act
//! without closing (*Open log*, *Copy details*) are handled by the caller's
//! `on_click`. Plain controls (statics, buttons, an edit box) rather than a
//! task dialog: they need nothing beyond comctl32 v5, and every text stays
//! readable through the window tree (GetWindowTextW), which the tests use.
use windows_sys::Win32::Foundation::HWND;
use windows_sys::Win32::Graphics::Gdi::HFONT;
use windows_sys::Win32::UI::Input::KeyboardAndMouse::SetFocus;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, DestroyWindow, DispatchMessageW, GetMessageW, IsDialogMessageW, LoadIconW,
    MoveWindow, SendMessageW, SetForegroundWindow, ShowWindow, TranslateMessage, IDI_ERROR,
    IDI_INFORMATION, MSG, STM_SETICON, SW_SHOWNORMAL,
};

use super::ui::{self, Fonts};

pub const CLASS: &str = "vblaunch.dialog";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Icon {
    Error,
    Information,
}

/// What a dialog shows.
pub struct Spec<'a> {
    pub title: &'a str,
    pub icon: Icon,
    pub heading: &'a str,
    pub paragraphs: Vec<String>,
    /// A label and the text of a scrollable box; `mono`: fixed-pitch.
    pub boxed: Option<(String, String, bool)>,
    pub footer: Option<String>,
    /// (id, label); ids from 100 up (1 and 2 are Windows' IDOK/IDCANCEL).
    pub buttons: Vec<(u16, &'a str)>,
    pub default: u16,
    /// What Esc and the close box mean.
    pub cancel: u16,
    pub topmost: bool,
    /// The client area's width (wider for verbatim text).
    pub width: i32,
}

/// The usual width of a dialog's client area; [`WIDE`] for `status`'s text.
pub const WIDTH: i32 = 600;
pub const WIDE: i32 = 760;

const MARGIN: i32 = 14;
const ICON: i32 = 32;
const BUTTON_H: i32 = 28;
const GAP: i32 = 10;
/// Taller paragraphs scroll in a box of this height.
const MAX_STATIC_H: i32 = 220;
const BOX_LINES: i32 = 8;

/// Show the dialog and run its loop until a button closes it; returns that
/// button's id. `on_click(hwnd, id)` decides: `true` closes with `id`.
pub fn run(spec: &Spec, on_click: &mut dyn FnMut(HWND, u16) -> bool) -> u16 {
    let fonts = Fonts::new();
    let class = ui::wide(CLASS);
    ui::register_class(&class, Some(ui::clicks_proc));
    let style = ui::WS_CAPTION | ui::WS_SYSMENU | ui::WS_POPUP;
    let ex = ui::WS_EX_DLGMODALFRAME
        | ui::WS_EX_APPWINDOW
        | ui::WS_EX_CONTROLPARENT
        | if spec.topmost { ui::WS_EX_TOPMOST } else { 0 };
    let title = ui::wide(spec.title);
    // SAFETY: the class was registered above; strings are NUL-terminated.
    let hwnd = unsafe {
        CreateWindowExW(
            ex,
            class.as_ptr(),
            title.as_ptr(),
            style,
            0,
            0,
            spec.width,
            200,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
            ui::instance(),
            std::ptr::null(),
        )
    };
    if hwnd.is_null() {
        log::warn!(
            "cannot create the dialog window; choosing '{}'",
            spec.cancel
        );
        return spec.cancel;
    }
    let height = lay_out(hwnd, spec, &fonts);
    let (w, h) = ui::outer_size(spec.width, height, style, ex);
    let (x, y) = ui::centred(w, h);
    let mut result = spec.cancel;
    // SAFETY: `hwnd` is this thread's window until DestroyWindow below; the
    // loop is the usual GetMessage / IsDialogMessage / Dispatch loop.
    unsafe {
        MoveWindow(hwnd, x, y, w, h, 1);
        ShowWindow(hwnd, SW_SHOWNORMAL);
        SetForegroundWindow(hwnd);
        let default =
            windows_sys::Win32::UI::WindowsAndMessaging::GetDlgItem(hwnd, i32::from(spec.default));
        if !default.is_null() {
            SetFocus(default);
        }
        let mut msg: MSG = std::mem::zeroed();
        'outer: while GetMessageW(&mut msg, std::ptr::null_mut(), 0, 0) > 0 {
            // Enter on a focused button clicks it; Esc is IDCANCEL.
            if IsDialogMessageW(hwnd, &msg) == 0 {
                TranslateMessage(&msg);
                DispatchMessageW(&msg);
            }
            for id in ui::take_clicks(hwnd) {
                let id = match id {
                    ui::IDCANCEL => spec.cancel,
                    1 => spec.default, // IDOK: Enter with no button focused
                    id => id,
                };
                if on_click(hwnd, id) {
                    result = id;
                    break 'outer;
                }
            }
        }
        DestroyWindow(hwnd);
    }
    result
}

/// Create and place the controls; returns the client height.
fn lay_out(hwnd: HWND, spec: &Spec, fonts: &Fonts) -> i32 {
    let x = MARGIN + ICON + 12;
    let w = spec.width - x - MARGIN;
    // SAFETY: a system icon, shared (never destroyed).
    let icon = unsafe {
        LoadIconW(
            std::ptr::null_mut(),
            match spec.icon {
                Icon::Error => IDI_ERROR,
                Icon::Information => IDI_INFORMATION,
            },
        )
    };
    let pic = ui::child(hwnd, "STATIC", "", ui::SS_ICON, 0, 90, fonts.normal);
    // SAFETY: `pic` is our static control; the icon outlives it.
    unsafe {
        SendMessageW(pic, STM_SETICON, icon as usize, 0);
        MoveWindow(pic, MARGIN, MARGIN, ICON, ICON, 1);
    }
    let mut y = MARGIN;
    let place = |text: &str, font: HFONT, id: u16, y: &mut i32, gap: i32| {
        let h = ui::text_height(font, text, w);
        let ctl = if h > MAX_STATIC_H {
            boxed(hwnd, text, font, id, x, *y, w, MAX_STATIC_H)
        } else {
            let c = ui::child(
                hwnd,
                "STATIC",
                text,
                ui::SS_NOPREFIX | ui::SS_EDITCONTROL,
                0,
                id,
                font,
            );
            // SAFETY: our control.
            unsafe { MoveWindow(c, x, *y, w, h, 1) };
            c
        };
        let _ = ctl;
        *y += h.min(MAX_STATIC_H) + gap;
    };
    place(spec.heading, fonts.heading, 100, &mut y, GAP);
    for (i, p) in spec.paragraphs.iter().enumerate() {
        place(p, fonts.normal, 110 + i as u16, &mut y, GAP);
    }
    if let Some((label, text, mono)) = &spec.boxed {
        place(label, fonts.normal, 130, &mut y, 4);
        let font = if *mono { fonts.mono } else { fonts.normal };
        let line = ui::text_height(font, "Ag", w).max(12);
        let lines = text.lines().count().clamp(2, BOX_LINES as usize) as i32;
        let wrapped = ui::text_height(font, text, w - 24).min(line * BOX_LINES);
        let h = (line * lines).max(wrapped) + 8;
        boxed(hwnd, text, font, 131, x, y, w, h);
        y += h + GAP;
    }
    if let Some(f) = &spec.footer {
        place(f, fonts.normal, 140, &mut y, GAP);
    }
    // Buttons, right-aligned, in the order given.
    y += 4;
    let widths: Vec<i32> = spec
        .buttons
        .iter()
        .map(|(_, l)| (ui::text_width(fonts.normal, l) + 28).max(88))
        .collect();
    let mut bx = spec.width - MARGIN - widths.iter().sum::<i32>() - 8 * (widths.len() as i32 - 1);
    for ((id, label), bw) in spec.buttons.iter().zip(&widths) {
        let style = ui::WS_TABSTOP
            | if *id == spec.default {
                ui::BS_DEFPUSHBUTTON
            } else {
                ui::BS_PUSHBUTTON
            };
        let b = ui::child(hwnd, "BUTTON", label, style, 0, *id, fonts.normal);
        // SAFETY: our control.
        unsafe { MoveWindow(b, bx, y, *bw, BUTTON_H, 1) };
        bx += bw + 8;
    }
    y + BUTTON_H + MARGIN
}

/// A read-only, scrollable, selectable text box.
#[allow(clippy::too_many_arguments)]
fn boxed(hwnd: HWND, text: &str, font: HFONT, id: u16, x: i32, y: i32, w: i32, h: i32) -> HWND {
    let b = ui::child(
        hwnd,
        "EDIT",
        &ui::crlf(text),
        ui::ES_MULTILINE | ui::ES_READONLY | ui::ES_AUTOVSCROLL | ui::WS_VSCROLL | ui::WS_TABSTOP,
        ui::WS_EX_CLIENTEDGE,
        id,
        font,
    );
    // SAFETY: our control.
    unsafe { MoveWindow(b, x, y, w, h, 1) };
    b
}
