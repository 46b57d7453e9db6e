//! vblaunchw: vblaunch for shortcuts. The same program as `vblaunch`; on
//! Windows a GUI-subsystem .exe, so starting it opens no console window, and
//! a failure shows in a native dialog instead of a console that waits for
//! Enter. Elsewhere it behaves like `vblaunch`.
#![windows_subsystem = "windows"]

fn main() -> std::process::ExitCode {
    vblaunch::gui::gui_main()
}
