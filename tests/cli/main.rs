//! The one integration-test binary: vblaunch run as a program against a fake
//! VBoxManage (every path, including VM starts and injected failures) and,
//! when VBLAUNCH_TEST_VBOXMANAGE is set, against real VirtualBox 7.2.
mod support;

mod basics;
mod fake_fidelity;
mod fake_launch;
mod real_vbox;
