//! Small Win32 helpers shared by vblaunch's windows: UTF-16 strings, the
//! system's message font, text measuring, child controls, window classes,
//! and the clicks a window procedure hands back to the code that owns the
//! window (so that all decisions are made outside the window procedure).
use std::cell::RefCell;

use windows_sys::Win32::Foundation::{HWND, LPARAM, LRESULT, RECT, SIZE, WPARAM};
use windows_sys::Win32::Graphics::Gdi::{
    CreateFontIndirectW, DrawTextW, GetDC, GetSysColorBrush, GetTextExtentPoint32W, ReleaseDC,
    SelectObject, COLOR_BTNFACE, DT_CALCRECT, DT_EDITCONTROL, DT_NOPREFIX, DT_WORDBREAK, HFONT,
    LOGFONTW,
};
use windows_sys::Win32::System::LibraryLoader::GetModuleHandleW;
use windows_sys::Win32::UI::WindowsAndMessaging::{
    CreateWindowExW, GetWindowTextLengthW, GetWindowTextW, LoadCursorW, RegisterClassExW,
    SendMessageW, SetWindowTextW, SystemParametersInfoW, HMENU, IDC_ARROW, NONCLIENTMETRICSW,
    SPI_GETNONCLIENTMETRICS, WM_SETFONT, WNDCLASSEXW, WNDPROC,
};

pub const WS_CHILD: u32 = 0x4000_0000;
pub const WS_VISIBLE: u32 = 0x1000_0000;
pub const WS_TABSTOP: u32 = 0x0001_0000;
pub const WS_VSCROLL: u32 = 0x0020_0000;
pub const WS_CAPTION: u32 = 0x00C0_0000;
pub const WS_SYSMENU: u32 = 0x0008_0000;
pub const WS_MINIMIZEBOX: u32 = 0x0002_0000;
pub const WS_POPUP: u32 = 0x8000_0000;
pub const WS_EX_CLIENTEDGE: u32 = 0x0000_0200;
pub const WS_EX_APPWINDOW: u32 = 0x0004_0000;
pub const WS_EX_DLGMODALFRAME: u32 = 0x0000_0001;
pub const WS_EX_CONTROLPARENT: u32 = 0x0001_0000;
pub const WS_EX_TOPMOST: u32 = 0x0000_0008;
pub const WS_EX_TOOLWINDOW: u32 = 0x0000_0080;
pub const SS_NOPREFIX: u32 = 0x80;
pub const SS_EDITCONTROL: u32 = 0x2000;
pub const SS_ICON: u32 = 0x3;
pub const SS_RIGHT: u32 = 0x2;
pub const BS_PUSHBUTTON: u32 = 0x0;
pub const BS_DEFPUSHBUTTON: u32 = 0x1;
pub const ES_MULTILINE: u32 = 0x4;
pub const ES_READONLY: u32 = 0x800;
pub const ES_AUTOVSCROLL: u32 = 0x40;
/// The id Windows sends for Esc / the close box in a dialog-like window.
pub const IDCANCEL: u16 = 2;

pub fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// A Windows control's text: line breaks as CR LF (edit controls show a
/// bare LF as nothing).
pub fn crlf(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\n', "\r\n")
}

pub fn instance() -> windows_sys::Win32::Foundation::HINSTANCE {
    // SAFETY: null asks for this executable's own module handle.
    unsafe { GetModuleHandleW(std::ptr::null()) }
}

/// The fonts a window uses: the system's message font (what dialogs and task
/// dialogs use), a larger bold one for headings, a fixed-pitch one for
/// VirtualBox's and `status`'s own text.
pub struct Fonts {
    pub normal: HFONT,
    pub heading: HFONT,
    pub mono: HFONT,
}

impl Fonts {
    pub fn new() -> Fonts {
        // SAFETY: NONCLIENTMETRICSW is plain data, filled by the call; the
        // LOGFONTWs are read only; CreateFontIndirectW copies what it needs.
        unsafe {
            let mut m: NONCLIENTMETRICSW = std::mem::zeroed();
            m.cbSize = std::mem::size_of::<NONCLIENTMETRICSW>() as u32;
            let ok = SystemParametersInfoW(
                SPI_GETNONCLIENTMETRICS,
                m.cbSize,
                (&mut m as *mut NONCLIENTMETRICSW).cast(),
                0,
            );
            let mut base: LOGFONTW = m.lfMessageFont;
            if ok == 0 || base.lfHeight == 0 {
                base = std::mem::zeroed();
                base.lfHeight = -12;
                for (i, c) in "Segoe UI".encode_utf16().enumerate() {
                    base.lfFaceName[i] = c;
                }
            }
            let mut heading = base;
            heading.lfHeight = base.lfHeight * 4 / 3;
            heading.lfWeight = 700;
            let mut mono = base;
            mono.lfFaceName = [0; 32];
            for (i, c) in "Consolas".encode_utf16().enumerate() {
                mono.lfFaceName[i] = c;
            }
            mono.lfPitchAndFamily = 1 | (3 << 4); // FIXED_PITCH | FF_MODERN
            Fonts {
                normal: CreateFontIndirectW(&base),
                heading: CreateFontIndirectW(&heading),
                mono: CreateFontIndirectW(&mono),
            }
        }
    }
}

impl Drop for Fonts {
    fn drop(&mut self) {
        use windows_sys::Win32::Graphics::Gdi::DeleteObject;
        // SAFETY: our fonts; their windows are gone by now (owners drop the
        // fonts after destroying the window).
        unsafe {
            DeleteObject(self.normal);
            DeleteObject(self.heading);
            DeleteObject(self.mono);
        }
    }
}

/// The height `text` takes in `font`, wrapped at `width` pixels.
pub fn text_height(font: HFONT, text: &str, width: i32) -> i32 {
    if text.is_empty() {
        return 0;
    }
    let w = wide(text);
    let mut r = RECT {
        left: 0,
        top: 0,
        right: width,
        bottom: 0,
    };
    // SAFETY: a screen DC, released below; `w` is NUL-terminated (-1).
    unsafe {
        let dc = GetDC(std::ptr::null_mut());
        let old = SelectObject(dc, font);
        DrawTextW(
            dc,
            w.as_ptr(),
            -1,
            &mut r,
            DT_CALCRECT | DT_WORDBREAK | DT_EDITCONTROL | DT_NOPREFIX,
        );
        SelectObject(dc, old);
        ReleaseDC(std::ptr::null_mut(), dc);
    }
    r.bottom - r.top
}

/// The width of one line of `text` in `font`.
pub fn text_width(font: HFONT, text: &str) -> i32 {
    let w: Vec<u16> = text.encode_utf16().collect();
    let mut size = SIZE { cx: 0, cy: 0 };
    // SAFETY: as in `text_height`; the length is given.
    unsafe {
        let dc = GetDC(std::ptr::null_mut());
        let old = SelectObject(dc, font);
        GetTextExtentPoint32W(dc, w.as_ptr(), w.len() as i32, &mut size);
        SelectObject(dc, old);
        ReleaseDC(std::ptr::null_mut(), dc);
    }
    size.cx
}

/// Register a window class (once per process; a second registration of the
/// same name fails harmlessly).
pub fn register_class(name: &[u16], proc_: WNDPROC) {
    // SAFETY: the class name is a NUL-terminated static-lifetime-enough
    // buffer (RegisterClassExW copies it); the rest is plain data.
    unsafe {
        let wc = WNDCLASSEXW {
            cbSize: std::mem::size_of::<WNDCLASSEXW>() as u32,
            style: 0,
            lpfnWndProc: proc_,
            cbClsExtra: 0,
            cbWndExtra: 0,
            hInstance: instance(),
            hIcon: std::ptr::null_mut(),
            hCursor: LoadCursorW(std::ptr::null_mut(), IDC_ARROW),
            hbrBackground: GetSysColorBrush(COLOR_BTNFACE),
            lpszMenuName: std::ptr::null(),
            lpszClassName: name.as_ptr(),
            hIconSm: std::ptr::null_mut(),
        };
        RegisterClassExW(&wc);
    }
}

/// A child control of `parent` with `id`, in `font`.
pub fn child(
    parent: HWND,
    class: &str,
    text: &str,
    style: u32,
    ex_style: u32,
    id: u16,
    font: HFONT,
) -> HWND {
    let class = wide(class);
    let text = wide(text);
    // SAFETY: NUL-terminated strings that outlive the call; `parent` is a
    // window of this thread.
    unsafe {
        let h = CreateWindowExW(
            ex_style,
            class.as_ptr(),
            text.as_ptr(),
            WS_CHILD | WS_VISIBLE | style,
            0,
            0,
            10,
            10,
            parent,
            id as usize as HMENU,
            instance(),
            std::ptr::null(),
        );
        SendMessageW(h, WM_SETFONT, font as WPARAM, 1 as LPARAM);
        h
    }
}

pub fn set_text(hwnd: HWND, text: &str) {
    if get_text(hwnd) == text {
        return; // no flicker when nothing changed
    }
    let w = wide(text);
    // SAFETY: NUL-terminated, outlives the call.
    unsafe { SetWindowTextW(hwnd, w.as_ptr()) };
}

pub fn get_text(hwnd: HWND) -> String {
    // SAFETY: the buffer holds len + 1 UTF-16 units, as told.
    unsafe {
        let len = GetWindowTextLengthW(hwnd).max(0) as usize;
        let mut buf = vec![0u16; len + 1];
        let n = GetWindowTextW(hwnd, buf.as_mut_ptr(), buf.len() as i32).max(0) as usize;
        String::from_utf16_lossy(&buf[..n])
    }
}

thread_local! {
    /// Clicks (window, control id) that window procedures of this thread
    /// saw and that the code running the window has not handled yet.
    static CLICKS: RefCell<Vec<(HWND, u16)>> = const { RefCell::new(Vec::new()) };
}

/// For a window procedure: remember that `id` was chosen in `hwnd`.
pub fn push_click(hwnd: HWND, id: u16) {
    CLICKS.with(|c| c.borrow_mut().push((hwnd, id)));
}

/// The clicks in `hwnd` since the last call.
pub fn take_clicks(hwnd: HWND) -> Vec<u16> {
    CLICKS.with(|c| {
        let mut all = c.borrow_mut();
        let mine = all
            .iter()
            .filter(|(h, _)| *h == hwnd)
            .map(|(_, id)| *id)
            .collect();
        all.retain(|(h, _)| *h != hwnd);
        mine
    })
}

/// The usual window procedure of vblaunch's windows: a button click or Esc /
/// the close box becomes a click for the owner to handle.
pub unsafe extern "system" fn clicks_proc(
    hwnd: HWND,
    msg: u32,
    wparam: WPARAM,
    lparam: LPARAM,
) -> LRESULT {
    use windows_sys::Win32::UI::WindowsAndMessaging::{DefWindowProcW, WM_CLOSE, WM_COMMAND};
    match msg {
        WM_COMMAND => {
            // BN_CLICKED is notification code 0 (the high word).
            if (wparam >> 16) & 0xFFFF == 0 {
                push_click(hwnd, (wparam & 0xFFFF) as u16);
            }
            0
        }
        WM_CLOSE => {
            push_click(hwnd, IDCANCEL);
            0
        }
        // SAFETY: the arguments are the ones Windows passed.
        _ => unsafe { DefWindowProcW(hwnd, msg, wparam, lparam) },
    }
}

/// Where a window of `w` × `h` is centred on the primary screen's work area.
pub fn centred(w: i32, h: i32) -> (i32, i32) {
    use windows_sys::Win32::UI::WindowsAndMessaging::{GetSystemMetrics, SM_CXSCREEN, SM_CYSCREEN};
    // SAFETY: plain queries.
    let (sw, sh) = unsafe { (GetSystemMetrics(SM_CXSCREEN), GetSystemMetrics(SM_CYSCREEN)) };
    (((sw - w) / 2).max(0), ((sh - h) / 3).max(0))
}

/// The outer size of a window whose client area is `w` × `h`.
pub fn outer_size(w: i32, h: i32, style: u32, ex_style: u32) -> (i32, i32) {
    use windows_sys::Win32::UI::WindowsAndMessaging::AdjustWindowRectEx;
    let mut r = RECT {
        left: 0,
        top: 0,
        right: w,
        bottom: h,
    };
    // SAFETY: plain data.
    unsafe { AdjustWindowRectEx(&mut r, style, 0, ex_style) };
    (r.right - r.left, r.bottom - r.top)
}
