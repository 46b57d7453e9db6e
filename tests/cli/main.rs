//! The one integration-test binary: vblaunch run as a program against a fake
//! VBoxManage (every path, including VM starts and injected failures) and,
//! when VBLAUNCH_TEST_VBOXMANAGE is set, against real VirtualBox 7.2.
mod support;

// Everything runs on Linux; the Windows build (under Wine in CI) runs the
// modules that do not depend on Unix processes and paths.
#[cfg(target_os = "linux")]
mod backup;
mod basics;
#[cfg(target_os = "linux")]
mod crash;
#[cfg(unix)]
mod doctor;
#[cfg(unix)]
mod fake_fidelity;
#[cfg(unix)]
mod fake_launch;
mod gui;
#[cfg(unix)]
mod real_vbox;
#[cfg(unix)]
mod restore_points;
#[cfg(target_os = "linux")]
mod session;
mod shortcut;
