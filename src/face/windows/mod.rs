//! Native Windows faces (compiled only for Windows; the texts come from
//! [`super::model`], which every OS tests).
//!
//! The failure dialog is a `MessageBoxW` for now: it needs nothing but
//! user32, while `TaskDialogIndirect` (custom buttons *Open log*, *Run
//! doctor*, *Copy details*, a progress bar) needs comctl32 v6, i.e. an
//! application manifest embedded in the .exe — the next step.
use windows_sys::Win32::UI::WindowsAndMessaging::{
    MessageBoxW, IDRETRY, MB_ICONERROR, MB_ICONINFORMATION, MB_OK, MB_RETRYCANCEL,
    MB_SETFOREGROUND, MB_TOPMOST,
};

use super::model::{Button, FailureDialog};

fn wide(s: &str) -> Vec<u16> {
    s.encode_utf16().chain(std::iter::once(0)).collect()
}

/// What the user chose in a failure dialog.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Retry,
    Close,
}

/// Show the failure dialog and wait for the user.
pub fn show_failure(d: &FailureDialog) -> Choice {
    let retry = d.buttons.contains(&Button::Retry);
    let style = if retry { MB_RETRYCANCEL } else { MB_OK };
    let text = wide(&d.message_text());
    let caption = wide(&d.title);
    // SAFETY: both strings are NUL-terminated UTF-16 that outlive the call;
    // a null owner window is allowed.
    let id = unsafe {
        MessageBoxW(
            std::ptr::null_mut(),
            text.as_ptr(),
            caption.as_ptr(),
            style | MB_ICONERROR | MB_SETFOREGROUND | MB_TOPMOST,
        )
    };
    if retry && id == IDRETRY {
        Choice::Retry
    } else {
        Choice::Close
    }
}

/// A short note (the single-instance case: "Dev Box is already running.").
pub fn show_info(title: &str, text: &str) {
    let text = wide(text);
    let caption = wide(title);
    // SAFETY: as in `show_failure`.
    unsafe {
        MessageBoxW(
            std::ptr::null_mut(),
            text.as_ptr(),
            caption.as_ptr(),
            MB_OK | MB_ICONINFORMATION | MB_SETFOREGROUND,
        );
    }
}

/// Whether this process has a console window (`vblaunchw.exe` has none, and
/// then its children must not open one each).
pub fn has_console() -> bool {
    // SAFETY: no arguments; returns a window handle or null.
    !unsafe { windows_sys::Win32::System::Console::GetConsoleWindow() }.is_null()
}
