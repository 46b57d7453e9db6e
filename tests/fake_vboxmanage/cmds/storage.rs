//! `storagectl` and `storageattach`: a VM's storage controllers and the hard
//! disks attached to their ports, refused with VirtualBox's messages while the
//! machine is locked or running.

use super::media::medium_not_found;
use super::{
    err, find_vm, long_state, parse, s, Site, D_INVALID_VM_STATE, D_MACHINE_LOCKED,
    D_SESSION_NOT_FOUND,
};
use crate::info;
use crate::model::{Attachment, Controller, State, Vm};
use crate::{unsupported, Out};

const STORAGECTL: Site = Site {
    find: "\"FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())\" at line 1054 of file VBoxManageStorageController.cpp",
    lock: "\"LockMachine(a->session, LockType_Write)\" at line 1060 of file VBoxManageStorageController.cpp",
};
const STORAGEATTACH: Site = Site {
    find: "\"FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())\" at line 339 of file VBoxManageStorageController.cpp",
    lock: "\"LockMachine(a->session, LockType_Write)\" at line 345 of file VBoxManageStorageController.cpp",
};
const D_SESSION_IN_USE: &str =
    "Details: code VBOX_E_OBJECT_IN_USE (0x80bb000c), component SessionMachine, interface IMachine, callee nsISupports";
const ADD_CTL_CTX: &str = "Context: \"AddStorageController(Bstr(pszCtl).raw(), StorageBus_SATA, ctl.asOutParam())\" at line 1107 of file VBoxManageStorageController.cpp";

fn not_mutable(vm: &Vm, context: String) -> Option<Out> {
    if matches!(vm.state.as_str(), "poweroff" | "aborted" | "teleported") && vm.session.is_none() {
        return None;
    }
    if vm.session.is_some() && !info::is_online(&vm.state) {
        return Some(err(vec![
            format!(
                "The machine '{}' is already locked for a session (or being unlocked)",
                vm.name
            ),
            s(D_MACHINE_LOCKED),
            context,
        ]));
    }
    Some(err(vec![
        format!(
            "The machine is not mutable or running (state is {})",
            long_state(&vm.state)
        ),
        s(D_INVALID_VM_STATE),
        context,
    ]))
}

pub(super) fn storagectl(st: &mut State, args: &[String]) -> Out {
    let Some((vmarg, rest)) = args.split_first() else {
        return unsupported("storagectl without a VM");
    };
    let p = match parse(
        rest,
        &[
            "--name",
            "--add",
            "--controller",
            "--portcount",
            "--bootable",
            "--hostiocache",
        ],
        &["--remove"],
    ) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let vi = match find_vm(st, vmarg, &STORAGECTL) {
        Ok(i) => i,
        Err(o) => return o,
    };
    let Some(name) = p.get("--name") else {
        return unsupported("storagectl without --name");
    };
    if let Some(o) = not_mutable(&st.vms[vi], s(ADD_CTL_CTX)) {
        return o;
    }
    let vm = &mut st.vms[vi];
    if p.has("--remove") {
        if vm.attachments.iter().any(|a| a.controller == name) {
            return unsupported("storagectl --remove of a controller with attachments");
        }
        let before = vm.controllers.len();
        vm.controllers.retain(|c| c.name != name);
        if vm.controllers.len() == before {
            return err(vec![
                format!("Could not find a storage controller named '{name}'"),
                s(D_SESSION_NOT_FOUND),
                s("Context: \"RemoveStorageController(Bstr(pszCtl).raw())\" at line 1090 of file VBoxManageStorageController.cpp"),
            ]);
        }
        return Out::ok();
    }
    let Some(bus) = p.get("--add") else {
        return unsupported("storagectl without --add or --remove");
    };
    let bus = bus.to_lowercase();
    if !matches!(bus.as_str(), "sata" | "ide" | "scsi") {
        return unsupported(&format!("storagectl --add {bus}"));
    }
    if let Some(c) = p.get("--controller") {
        let ok = matches!(
            (bus.as_str(), c.to_lowercase().as_str()),
            ("sata", "intelahci") | ("ide", "piix4") | ("scsi", "lsilogic")
        );
        if !ok {
            return unsupported(&format!("storagectl --controller {c}"));
        }
    }
    if vm.controllers.iter().any(|c| c.name == name) {
        return err(vec![
            format!("Storage controller named '{name}' already exists"),
            s(D_SESSION_IN_USE),
            s(ADD_CTL_CTX),
        ]);
    }
    let port_count = match p.get("--portcount") {
        Some(n) => match n.parse::<u32>() {
            Ok(n) if n >= 1 => Some(n),
            _ => return unsupported(&format!("storagectl --portcount {n:?}")),
        },
        None => None,
    };
    vm.controllers.push(Controller {
        name: name.to_string(),
        bus,
        port_count,
    });
    Out::ok()
}

pub(super) fn storageattach(st: &mut State, args: &[String]) -> Out {
    let Some((vmarg, rest)) = args.split_first() else {
        return unsupported("storageattach without a VM");
    };
    let p = match parse(
        rest,
        &[
            "--storagectl",
            "--port",
            "--device",
            "--type",
            "--medium",
            "--nonrotational",
            "--discard",
            "--hotpluggable",
        ],
        &[],
    ) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let vi = match find_vm(st, vmarg, &STORAGEATTACH) {
        Ok(i) => i,
        Err(o) => return o,
    };
    if !p.pos.is_empty() {
        return unsupported(&format!("storageattach argument {:?}", p.pos[0]));
    }
    for (k, v) in [
        ("--nonrotational", "off"),
        ("--discard", "off"),
        ("--hotpluggable", "off"),
    ] {
        if p.get(k).is_some_and(|x| x != v) {
            return unsupported(&format!("storageattach {k} on"));
        }
    }
    let (Some(ctl), Some(medium)) = (p.get("--storagectl"), p.get("--medium")) else {
        return unsupported("storageattach without --storagectl and --medium");
    };
    if let Some(t) = p.get("--type") {
        if t != "hdd" {
            return unsupported(&format!("storageattach --type {t}"));
        }
    }
    let port: u32 = match p.get("--port").unwrap_or("0").parse() {
        Ok(n) => n,
        Err(_) => return unsupported("storageattach --port"),
    };
    let device: u32 = match p.get("--device").unwrap_or("0").parse() {
        Ok(n) => n,
        Err(_) => return unsupported("storageattach --device"),
    };
    // An attachment that is not at this controller, port and device.
    let elsewhere = |a: &Attachment| !(a.controller == ctl && a.port == port && a.device == device);
    let vm = &st.vms[vi];
    let Some(c) = vm.controllers.iter().find(|c| c.name == ctl) else {
        return err(vec![
            format!("Could not find a storage controller named '{ctl}'"),
            s(D_SESSION_NOT_FOUND),
            s("Context: \"GetStorageControllerByName(Bstr(pszCtl).raw(), storageCtl.asOutParam())\" at line 447 of file VBoxManageStorageController.cpp"),
        ]);
    };
    let (_, _, devs) = c.kind();
    if port >= c.ports() || device >= devs {
        return unsupported(&format!(
            "storageattach port {port} device {device} out of range"
        ));
    }
    if medium == "none" || medium == "emptydrive" {
        if let Some(o) = not_mutable(
            vm,
            s("Context: \"DetachDevice(Bstr(pszCtl).raw(), port, device)\" at line 413 of file VBoxManageStorageController.cpp"),
        ) {
            return o;
        }
        st.vms[vi].attachments.retain(elsewhere);
        return Out::ok();
    }
    let attach_ctx = s("Context: \"AttachDevice(Bstr(pszCtl).raw(), port, device, DeviceType_HardDisk, pMedium2Mount)\" at line 782 of file VBoxManageStorageController.cpp");
    let Some(mi) = st.find_medium(medium) else {
        return medium_not_found(medium);
    };
    if let Some(o) = not_mutable(vm, attach_ctx.clone()) {
        return o;
    }
    let m = &st.media[mi];
    let kids = st.children_of(&m.uuid).len();
    if kids > 0 {
        return err(vec![
            format!(
                "Hard disk '{}' with UUID {{{}}} cannot be directly attached to the virtual machine '{}' because it has {} differencing child hard disks",
                m.location, m.uuid, vm.name, kids
            ),
            s(D_SESSION_IN_USE),
            attach_ctx,
        ]);
    }
    let uuid = m.uuid.clone();
    let vm = &mut st.vms[vi];
    vm.attachments.retain(elsewhere);
    vm.attachments.push(Attachment {
        controller: ctl.to_string(),
        port,
        device,
        medium: uuid,
    });
    Out::ok()
}
