//! Test helper for the GUI tests under Wine (.ci/gui-shots.sh): reads the
//! window tree the way a user sees it, and clicks where a user would.
//!
//!   gui_windows list [TITLE PART]      every visible top-level window (with
//!                                      that in its title), then its controls:
//!                                      class, text, a progress bar's position
//!   gui_windows click CLASS ID         send WM_COMMAND ID to the (possibly
//!                                      hidden) top-level window of class CLASS
//!                                      (a button, or a notification icon's
//!                                      menu item)
//!   gui_windows icon-menu CLASS        right-click the notification icon of the
//!                                      hidden window of class CLASS (its menu
//!                                      opens); `gui_windows close-menu` closes
//!                                      an open menu (Esc)
//!   gui_windows clipboard              print the clipboard's Unicode text
//!   gui_windows close TITLE PART       close (WM_CLOSE) each visible top-level
//!                                      window with that in its title
//!   gui_windows window TITLE SECS      show a window titled TITLE (a stand-in
//!                                      for a VM's VirtualBox window), then
//!                                      another one in front of it; after SECS
//!                                      print which is in the foreground
//!
//! Windows only; elsewhere it says so.
#[cfg(windows)]
fn main() -> std::process::ExitCode {
    win::main()
}

#[cfg(not(windows))]
fn main() -> std::process::ExitCode {
    eprintln!("gui_windows: Windows only");
    std::process::ExitCode::from(2)
}

#[cfg(windows)]
mod win {
    use std::process::ExitCode;

    use windows_sys::Win32::Foundation::{HWND, LPARAM};
    use windows_sys::Win32::UI::WindowsAndMessaging::{
        EnumChildWindows, EnumWindows, GetClassNameW, GetWindowTextW, IsWindowVisible,
        PostMessageW, SendMessageW, WM_COMMAND, WM_GETTEXT,
    };

    const PBM_GETPOS: u32 = 0x0408;

    fn text(h: HWND) -> String {
        let mut buf = vec![0u16; 4096];
        // SAFETY: the buffer's length is given.
        let n = unsafe { GetWindowTextW(h, buf.as_mut_ptr(), buf.len() as i32) }.max(0);
        String::from_utf16_lossy(&buf[..n as usize])
    }

    /// A control's text: GetWindowTextW does not read another process's
    /// controls (an edit box comes back empty), WM_GETTEXT does.
    fn control_text(h: HWND) -> String {
        let mut buf = vec![0u16; 16384];
        // SAFETY: the buffer's length is given; Windows marshals WM_GETTEXT.
        let n = unsafe { SendMessageW(h, WM_GETTEXT, buf.len(), buf.as_mut_ptr() as LPARAM) };
        String::from_utf16_lossy(&buf[..(n.max(0) as usize).min(buf.len())])
    }

    fn class(h: HWND) -> String {
        let mut buf = vec![0u16; 256];
        // SAFETY: as above.
        let n = unsafe { GetClassNameW(h, buf.as_mut_ptr(), buf.len() as i32) }.max(0);
        String::from_utf16_lossy(&buf[..n as usize])
    }

    unsafe extern "system" fn push(h: HWND, l: LPARAM) -> i32 {
        // SAFETY: `l` is the Vec the caller passed; alive during the call.
        unsafe { (*(l as *mut Vec<HWND>)).push(h) };
        1
    }

    fn top_level() -> Vec<HWND> {
        let mut v: Vec<HWND> = Vec::new();
        // SAFETY: the callback only pushes into `v`.
        unsafe { EnumWindows(Some(push), &mut v as *mut _ as LPARAM) };
        v
    }

    fn children(h: HWND) -> Vec<HWND> {
        let mut v: Vec<HWND> = Vec::new();
        // SAFETY: as above.
        unsafe { EnumChildWindows(h, Some(push), &mut v as *mut _ as LPARAM) };
        v
    }

    fn visible(h: HWND) -> bool {
        // SAFETY: a handle from EnumWindows.
        unsafe { IsWindowVisible(h) != 0 }
    }

    fn make_window(title: &str) -> HWND {
        use windows_sys::Win32::UI::WindowsAndMessaging::{
            CreateWindowExW, WS_OVERLAPPEDWINDOW, WS_VISIBLE,
        };
        let class: Vec<u16> = "STATIC\0".encode_utf16().collect();
        let t: Vec<u16> = title.encode_utf16().chain(Some(0)).collect();
        // SAFETY: a predefined class, NUL-terminated strings.
        unsafe {
            CreateWindowExW(
                0,
                class.as_ptr(),
                t.as_ptr(),
                WS_OVERLAPPEDWINDOW | WS_VISIBLE,
                40,
                40,
                400,
                200,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null(),
            )
        }
    }

    fn pump() {
        use windows_sys::Win32::UI::WindowsAndMessaging::{
            DispatchMessageW, PeekMessageW, TranslateMessage, MSG, PM_REMOVE,
        };
        // SAFETY: the usual message pump of this thread's windows.
        unsafe {
            let mut msg: MSG = std::mem::zeroed();
            while PeekMessageW(&mut msg, std::ptr::null_mut(), 0, 0, PM_REMOVE) != 0 {
                TranslateMessage(&msg);
                DispatchMessageW(&msg);
            }
        }
    }

    pub fn main() -> ExitCode {
        let args: Vec<String> = std::env::args().skip(1).collect();
        match args.first().map(String::as_str) {
            Some("list") => {
                let part = args.get(1).cloned().unwrap_or_default();
                for w in top_level() {
                    let title = text(w);
                    if !visible(w) || !title.contains(&part) {
                        continue;
                    }
                    println!("window {:?} class={}", title, class(w));
                    for c in children(w) {
                        if !visible(c) {
                            continue;
                        }
                        let cls = class(c);
                        let t = control_text(c).replace("\r\n", "\n").replace('\n', "\\n");
                        if cls.eq_ignore_ascii_case("msctls_progress32") {
                            // SAFETY: a progress bar answers PBM_GETPOS.
                            let pos = unsafe { SendMessageW(c, PBM_GETPOS, 0, 0) };
                            println!("  {cls} pos={pos}");
                        } else {
                            println!("  {cls} {t:?}");
                        }
                    }
                }
                ExitCode::SUCCESS
            }
            Some("click") if args.len() == 3 => {
                let Ok(id) = args[2].parse::<usize>() else {
                    eprintln!("gui_windows: bad id {}", args[2]);
                    return ExitCode::from(2);
                };
                for w in top_level() {
                    if class(w) == args[1] {
                        // SAFETY: posting a command to a window of the class asked.
                        unsafe { PostMessageW(w, WM_COMMAND, id, 0) };
                        println!("clicked {id} in {:?}", text(w));
                        return ExitCode::SUCCESS;
                    }
                }
                eprintln!("gui_windows: no window of class {}", args[1]);
                ExitCode::from(1)
            }
            Some("icon-menu") if args.len() == 2 => {
                // vblaunch's icon callback (WM_APP + 1) with WM_RBUTTONUP.
                const WM_APP: u32 = 0x8000;
                const WM_RBUTTONUP: isize = 0x0205;
                for w in top_level() {
                    if class(w) == args[1] {
                        // SAFETY: posting to a window of the class asked.
                        unsafe { PostMessageW(w, WM_APP + 1, 1, WM_RBUTTONUP) };
                        return ExitCode::SUCCESS;
                    }
                }
                eprintln!("gui_windows: no window of class {}", args[1]);
                ExitCode::from(1)
            }
            Some("close-menu") => {
                const WM_KEYDOWN: u32 = 0x0100;
                const VK_ESCAPE: usize = 0x1B;
                for w in top_level() {
                    if class(w) == "#32768" && visible(w) {
                        // SAFETY: posting a key to the menu window.
                        unsafe { PostMessageW(w, WM_KEYDOWN, VK_ESCAPE, 0) };
                        return ExitCode::SUCCESS;
                    }
                }
                eprintln!("gui_windows: no menu open");
                ExitCode::from(1)
            }
            Some("clipboard") => {
                use windows_sys::Win32::System::DataExchange::{
                    CloseClipboard, GetClipboardData, OpenClipboard,
                };
                use windows_sys::Win32::System::Memory::{GlobalLock, GlobalUnlock};
                // SAFETY: the documented read sequence; the text is read up
                // to its NUL while the memory is locked.
                unsafe {
                    if OpenClipboard(std::ptr::null_mut()) == 0 {
                        eprintln!("gui_windows: cannot open the clipboard");
                        return ExitCode::from(1);
                    }
                    let h = GetClipboardData(13); // CF_UNICODETEXT
                    let mut text = String::new();
                    if !h.is_null() {
                        let p = GlobalLock(h) as *const u16;
                        if !p.is_null() {
                            let mut n = 0;
                            while *p.add(n) != 0 {
                                n += 1;
                            }
                            text = String::from_utf16_lossy(std::slice::from_raw_parts(p, n));
                            GlobalUnlock(h);
                        }
                    }
                    CloseClipboard();
                    println!("{}", text.replace("\r\n", "\n"));
                }
                ExitCode::SUCCESS
            }
            Some("close") if args.len() == 2 => {
                const WM_CLOSE: u32 = 0x0010;
                let mut n = 0;
                for w in top_level() {
                    if visible(w) && text(w).contains(&args[1]) {
                        // SAFETY: posting to a window found above.
                        unsafe { PostMessageW(w, WM_CLOSE, 0, 0) };
                        n += 1;
                    }
                }
                println!("closed {n}");
                ExitCode::SUCCESS
            }
            Some("window") if args.len() == 3 => {
                let secs: u64 = args[2].parse().unwrap_or(10);
                let vm = make_window(&args[1]);
                let other = make_window("another program");
                // SAFETY: our windows.
                unsafe {
                    windows_sys::Win32::UI::WindowsAndMessaging::SetForegroundWindow(other);
                }
                println!("shown {:?}", args[1]);
                let until = std::time::Instant::now() + std::time::Duration::from_secs(secs);
                while std::time::Instant::now() < until {
                    pump();
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                // SAFETY: a plain query.
                let fg =
                    unsafe { windows_sys::Win32::UI::WindowsAndMessaging::GetForegroundWindow() };
                println!(
                    "foreground: {:?}",
                    if fg == vm { args[1].clone() } else { text(fg) }
                );
                ExitCode::SUCCESS
            }
            _ => {
                eprintln!(
                    "usage: gui_windows list [TITLE PART] | click CLASS ID | icon-menu CLASS | \
                     close-menu | clipboard | close TITLE | window TITLE SECS"
                );
                ExitCode::from(2)
            }
        }
    }
}
