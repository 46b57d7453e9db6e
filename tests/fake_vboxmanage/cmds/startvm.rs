//! `startvm <vm> [--type gui|separate|headless|sdl]`: refuses a machine that
//! has a session or is not at rest (off, saved, aborted, teleported), fails as
//! VirtualBox's VM process does when a disk file is missing, and otherwise
//! leaves the VM running with the front end's session name (its saved state
//! consumed).

use super::media::missing_file;
use super::{drop_saved_state, err, find_vm, is_offline_stable, parse, s, Site, D_MACHINE_LOCKED};
use crate::model::{now_stamp, State};
use crate::{unsupported, Out};

const STARTVM: Site = Site {
    find: "\"FindMachine(Bstr(pszVM).raw(), machine.asOutParam())\" at line 907 of file VBoxManageMisc.cpp",
    lock: "\"LaunchVMProcess(a->session, sessionType.raw(), ComSafeArrayAsInParam(aBstrEnv), progress.asOutParam())\" at line 920 of file VBoxManageMisc.cpp",
};

pub(super) fn startvm(st: &mut State, args: &[String]) -> Out {
    let Some((vmarg, rest)) = args.split_first() else {
        return unsupported("startvm without a VM");
    };
    let p = match parse(rest, &["--type"], &[]) {
        Ok(p) => p,
        Err(o) => return o,
    };
    if !p.pos.is_empty() {
        return unsupported(&format!("startvm argument {:?}", p.pos[0]));
    }
    let vi = match find_vm(st, vmarg, &STARTVM) {
        Ok(i) => i,
        Err(o) => return o,
    };
    let ty = p.get("--type").unwrap_or("gui");
    let session = match ty {
        "gui" | "separate" => "GUI/Qt",
        "headless" => "headless",
        "sdl" => "GUI/SDL",
        other => {
            return err(vec![
                format!("Invalid frontend name: '{other}'"),
                s("Details: code NS_ERROR_INVALID_ARG (0x80070057), component MachineWrap, interface IMachine, callee nsISupports"),
                format!("Context: {}", STARTVM.lock),
            ])
        }
    };
    let vm = &st.vms[vi];
    if vm.session.is_some() || !is_offline_stable(&vm.state) {
        return err(vec![
            format!(
                "The machine '{}' is already locked by a session (or being locked or unlocked)",
                vm.name
            ),
            s(D_MACHINE_LOCKED),
            format!("Context: {}", STARTVM.lock),
        ]);
    }
    let mut out = Out::ok();
    out.out(&format!("Waiting for VM \"{}\" to power on...\n", vm.name));
    if missing_file(st, &vm.attachments).is_some() {
        return out.vbox_error(&[
            format!(
                "The virtual machine '{}' has terminated unexpectedly during startup with exit code 1 (0x1)",
                vm.name
            ),
            s("Details: code NS_ERROR_FAILURE (0x80004005), component MachineWrap, interface IMachine"),
        ]);
    }
    out.out(&format!(
        "VM \"{}\" has been successfully started.\n",
        vm.name
    ));
    let vm = &mut st.vms[vi];
    drop_saved_state(vm);
    vm.state = s("running");
    vm.session = Some(session.to_string());
    vm.state_change = now_stamp();
    out
}
