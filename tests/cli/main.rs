//! The one integration-test binary: vblaunch run as a program against a fake
//! VBoxManage (every path, including VM starts and injected failures) and,
//! when VBLAUNCH_TEST_VBOXMANAGE is set, against real VirtualBox 7.2.
mod support;

// Everything runs on Linux; the Windows build (under Wine in CI) runs the
// modules that do not depend on Unix processes and paths.
#[cfg(target_os = "linux")]
mod backup;
mod basics;
mod code_page;
#[cfg(target_os = "linux")]
mod crash;
#[cfg(target_os = "linux")]
mod desktop;
#[cfg(unix)]
mod doctor;
#[cfg(unix)]
mod fake_fidelity;
#[cfg(unix)]
mod fake_launch;
#[cfg(target_os = "linux")]
mod faults;
mod gui;
#[cfg(target_os = "linux")]
mod hardening;
#[cfg(unix)]
mod names;
#[cfg(unix)]
mod real_vbox;
#[cfg(target_os = "linux")]
mod real_vm;
#[cfg(unix)]
mod restore_points;
#[cfg(target_os = "linux")]
mod session;
mod shortcut;
