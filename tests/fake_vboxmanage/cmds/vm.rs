//! The VM commands besides `startvm` and `list`: `createvm`, `showvminfo`,
//! `setextradata`, `unregistervm`, and the state changes `controlvm`,
//! `adoptstate` and `discardstate`.

use std::fs;

use anyhow::Result;

use super::{
    abs_path, drop_saved_state, err, find_vm, long_state, lookup_vm, parse, s, strip_braces,
    vm_index_any, Lookup, Site, D_INVALID_VM_STATE, D_MACHINE_LOCKED, D_NOT_FOUND,
};
use crate::info;
use crate::model::{is_uuid, new_uuid, now_stamp, State, Vm};
use crate::{unsupported, Out, PROGRESS};

/// `showvminfo -y --machinereadable`: a VM name that starts with `-` before
/// `--` is an unknown option (exit 2).
const SHOWVMINFO_UNKNOWN_OPTION_49: &str =
    include_str!("../../fixtures/49-dash-name-showvminfo-unknown-option.stderr");

const SHOWVMINFO: Site = Site {
    find: "\"FindMachine(Bstr(VMNameOrUuid).raw(), machine.asOutParam())\" at line 3248 of file VBoxManageInfo.cpp",
    lock: "\"LockMachine(a->session, LockType_Shared)\" at line 3328 of file VBoxManageInfo.cpp",
};
const CONTROLVM: Site = Site {
    find: "\"FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())\" at line 363 of file VBoxManageControlVM.cpp",
    lock: "\"LockMachine(a->session, LockType_Shared)\" at line 375 of file VBoxManageControlVM.cpp",
};
const ADOPTSTATE: Site = Site {
    find: "\"FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())\" at line 1309 of file VBoxManageMisc.cpp",
    lock: "\"LockMachine(a->session, LockType_Write)\" at line 1315 of file VBoxManageMisc.cpp",
};
const DISCARDSTATE: Site = Site {
    find: "\"FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())\" at line 1262 of file VBoxManageMisc.cpp",
    lock: "\"LockMachine(a->session, LockType_Write)\" at line 1268 of file VBoxManageMisc.cpp",
};
const UNREGISTERVM: Site = Site {
    find: "\"FindMachine(Bstr(VMName).raw(), machine.asOutParam())\" at line 228 of file VBoxManageMisc.cpp",
    lock: "\"Unregister(CleanupMode_DetachAllReturnHardDisksOnly, ComSafeArrayAsOutParam(aMedia))\" at line 232 of file VBoxManageMisc.cpp",
};

pub(super) fn createvm(st: &mut State, args: &[String]) -> Result<Out> {
    let p = match parse(
        args,
        &[
            "--name",
            "--ostype",
            "--basefolder",
            "--uuid",
            "--groups",
            "--platform-architecture",
        ],
        &["--register"],
    ) {
        Ok(p) => p,
        Err(o) => return Ok(o),
    };
    if !p.pos.is_empty() {
        return Ok(unsupported(&format!("createvm argument {:?}", p.pos[0])));
    }
    let Some(name) = p.get("--name") else {
        return Ok(unsupported("createvm without --name"));
    };
    let Some(base) = p.get("--basefolder") else {
        return Ok(unsupported("createvm without --basefolder"));
    };
    let uuid = match p.get("--uuid") {
        Some(u) if is_uuid(strip_braces(u)) => strip_braces(u).to_lowercase(),
        Some(u) => return Ok(unsupported(&format!("createvm --uuid {u:?}"))),
        None => new_uuid(),
    };
    let san = sanitize(name);
    let dir = abs_path(base).join(&san);
    let cfg = dir.join(format!("{san}.vbox"));
    let cfg_s = cfg.to_string_lossy().into_owned();
    if cfg.exists() {
        return Ok(err(vec![
            format!("Machine settings file '{cfg_s}' already exists"),
            s("Details: code VBOX_E_FILE_ERROR (0x80bb0004), component MachineWrap, interface IMachine, callee nsISupports"),
            s("Context: \"CreateMachine(bstrSettingsFile.raw(), bstrName.raw(), platformArch, ComSafeArrayAsInParam(groups), bstrOsTypeId.raw(), createFlags.raw(), bstrCipher.raw(), bstrPasswordId.raw(), Bstr(strPassword).raw(), machine.asOutParam())\" at line 429 of file VBoxManageMisc.cpp"),
        ]));
    }
    if p.has("--register") && st.vms.iter().any(|v| v.uuid == uuid) {
        return Ok(unsupported("createvm with the uuid of a registered VM"));
    }
    fs::create_dir_all(&dir)?;
    fs::write(
        &cfg,
        format!("<!-- fake VBoxManage settings file for {name} ({uuid}); the state lives in fake-vbox.toml -->\n"),
    )?;
    let register = p.has("--register");
    if register {
        st.vms.push(Vm {
            name: name.to_string(),
            uuid: uuid.clone(),
            ostype: p.get("--ostype").map(str::to_string),
            cfg_file: cfg_s.clone(),
            state: s("poweroff"),
            state_change: now_stamp(),
            state_file: None,
            session: None,
            session_closing: 0,
            mac: random_mac(),
            current_snapshot: None,
            extradata: Default::default(),
            controllers: vec![],
            attachments: vec![],
            snapshots: vec![],
        });
    }
    let mut out = Out::ok();
    out.out(&format!(
        "Virtual machine '{name}' is created{}.\nUUID: {uuid}\nSettings file: '{cfg_s}'\n",
        if register { " and registered" } else { "" }
    ));
    Ok(out)
}

fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            '"' | '/' | '\\' | ':' | '*' | '?' | '<' | '>' | '|' => '_',
            c if c.is_control() => '_',
            c => c,
        })
        .collect()
}

fn random_mac() -> String {
    let u = new_uuid().replace('-', "").to_uppercase();
    format!("080027{}", &u[..6])
}

pub(super) fn showvminfo(st: &mut State, args: &[String]) -> Out {
    let before_dd = args.iter().take_while(|a| *a != "--");
    if let Some(opt) = before_dd
        .into_iter()
        .find(|a| a.starts_with('-') && !a.starts_with("--"))
    {
        return Out {
            stdout: String::new(),
            stderr: SHOWVMINFO_UNKNOWN_OPTION_49.replace("-y\n", &format!("{opt}\n")),
            code: 2,
        };
    }
    let p = match parse(args, &[], &["--machinereadable"]) {
        Ok(p) => p,
        Err(o) => return o,
    };
    if !p.has("--machinereadable") || p.pos.len() != 1 {
        return unsupported("showvminfo without exactly <vm> --machinereadable");
    }
    let vi = match find_vm(st, &p.pos[0], &SHOWVMINFO) {
        Ok(i) => i,
        Err(o) => return o,
    };
    // A session that is closing after a power-off (fixture 49).
    match st.vms[vi].session_closing {
        0 => {}
        2 => st.vms[vi].session_closing = 1,
        _ => {
            st.vms[vi].session_closing = 0;
            st.vms[vi].session = None;
            return err(vec![
                s("Failed to get a console object from the direct session (VBOX_E_INVALID_OBJECT_STATE)"),
                s("Details: code VBOX_E_VM_ERROR (0x80bb0003), component MachineWrap, interface IMachine, callee nsISupports"),
                format!("Context: {}", SHOWVMINFO.lock),
            ]);
        }
    }
    let mut out = Out::ok();
    out.out(&info::showvminfo(st, &st.vms[vi]));
    out
}

/// `setextradata <vm> <key> [<value>]`: no value deletes the key (as real
/// VirtualBox, which saves the settings file at once).
pub(super) fn setextradata(st: &mut State, args: &[String]) -> Out {
    let (vmarg, key, value) = match args {
        [vm, key] => (vm, key, None),
        [vm, key, value] => (vm, key, Some(value)),
        _ => return unsupported("setextradata <vm> <key> [<value>]"),
    };
    let vi = match lookup_vm(st, vmarg) {
        Lookup::Found(i) => i,
        Lookup::Limited => return unsupported("setextradata on an inaccessible VM"),
        Lookup::NotFound(msg) => return err(vec![msg, s(D_NOT_FOUND)]),
    };
    match value {
        Some(v) => {
            st.vms[vi].extradata.insert(key.clone(), v.clone());
        }
        None => {
            st.vms[vi].extradata.remove(key);
        }
    }
    Out::ok()
}

pub(super) fn unregistervm(st: &mut State, args: &[String]) -> Out {
    let p = match parse(args, &[], &["--delete", "--delete-all"]) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let [vmarg] = p.pos.as_slice() else {
        return unsupported("unregistervm needs one VM");
    };
    let vi = match lookup_vm(st, vmarg) {
        Lookup::Found(i) => i,
        Lookup::Limited => match vm_index_any(st, vmarg) {
            Some(i) => i,
            None => return unsupported("unregistervm lookup"),
        },
        Lookup::NotFound(msg) => {
            return err(vec![
                msg,
                s(D_NOT_FOUND),
                format!("Context: {}", UNREGISTERVM.find),
            ])
        }
    };
    let vm = st.vms[vi].clone();
    if vm.session.is_some() || info::is_online(&vm.state) {
        return err(vec![
            format!(
                "Cannot unregister the machine '{}' while it is locked",
                vm.name
            ),
            s(D_MACHINE_LOCKED),
            format!("Context: {}", UNREGISTERVM.lock),
        ]);
    }
    st.vms.remove(vi);
    let mut out = Out::ok();
    if p.has("--delete") || p.has("--delete-all") {
        // Delete every medium the VM used (leaves first), its saved states,
        // its settings file and its (then empty) folders.
        let mut used = vm.referenced_media();
        used.dedup();
        loop {
            let leaf = used.iter().position(|u| {
                st.medium_idx(u).is_some()
                    && st.children_of(u).is_empty()
                    && !st.vms.iter().any(|v| v.referenced_media().contains(u))
            });
            let Some(k) = leaf else { break };
            let u = used.remove(k);
            if let Some(i) = st.medium_idx(&u) {
                let _ = fs::remove_file(&st.media[i].location);
                st.media.remove(i);
            }
        }
        if let Some(f) = &vm.state_file {
            let _ = fs::remove_file(f);
        }
        for s in &vm.snapshots {
            if let Some(f) = &s.state_file {
                let _ = fs::remove_file(f);
            }
        }
        let _ = fs::remove_file(&vm.cfg_file);
        let _ = fs::remove_dir(vm.snap_fldr());
        let _ = fs::remove_dir(vm.vm_dir());
        out.err(PROGRESS);
    }
    out
}

pub(super) fn adoptstate(st: &mut State, args: &[String]) -> Out {
    let [vmarg, file] = args else {
        return unsupported("adoptstate needs <vm> <file>");
    };
    let vi = match find_vm(st, vmarg, &ADOPTSTATE) {
        Ok(i) => i,
        Err(o) => return o,
    };
    let path = abs_path(file);
    if !path.is_file() {
        return unsupported(&format!("adoptstate with a missing file {file:?}"));
    }
    let vm = &mut st.vms[vi];
    if !matches!(vm.state.as_str(), "poweroff" | "aborted" | "teleported") {
        return err(vec![
            format!(
                "Cannot adopt the saved machine state as the machine is not in Powered Off, Teleported or Aborted state (machine state: {})",
                long_state(&vm.state)
            ),
            s(D_INVALID_VM_STATE),
            s("Context: \"AdoptSavedState(Bstr(szStateFileAbs).raw())\" at line 1323 of file VBoxManageMisc.cpp"),
        ]);
    }
    vm.state = s("saved");
    vm.state_file = Some(path.to_string_lossy().into_owned());
    vm.state_change = now_stamp();
    Out::ok()
}

pub(super) fn discardstate(st: &mut State, args: &[String]) -> Out {
    let [vmarg] = args else {
        return unsupported("discardstate needs <vm>");
    };
    let vi = match find_vm(st, vmarg, &DISCARDSTATE) {
        Ok(i) => i,
        Err(o) => return o,
    };
    let vm = &mut st.vms[vi];
    if !matches!(vm.state.as_str(), "saved" | "aborted-saved") {
        return err(vec![
            format!(
                "Cannot discard the saved state as the machine is not in the Saved state (machine state: {})",
                long_state(&vm.state)
            ),
            s(D_INVALID_VM_STATE),
            s("Context: \"DiscardSavedState(true)\" at line 1274 of file VBoxManageMisc.cpp"),
        ]);
    }
    drop_saved_state(vm);
    vm.state = s(if vm.state == "aborted-saved" {
        "aborted"
    } else {
        "poweroff"
    });
    vm.state_change = now_stamp();
    Out::ok()
}

pub(super) fn controlvm(st: &mut State, args: &[String]) -> Result<Out> {
    let (Some(vmarg), Some(action)) = (args.first(), args.get(1)) else {
        return Ok(unsupported("controlvm without <vm> <action>"));
    };
    if args.len() > 2
        || !matches!(
            action.as_str(),
            "poweroff" | "savestate" | "pause" | "resume"
        )
    {
        return Ok(unsupported(&format!("controlvm {}", args[1..].join(" "))));
    }
    let vi = match find_vm(st, vmarg, &CONTROLVM) {
        Ok(i) => i,
        Err(o) => return Ok(o),
    };
    let linger = st.linger_session;
    let vm = &mut st.vms[vi];
    if !info::is_online(&vm.state) {
        return Ok(err(vec![format!(
            "Machine '{}' is not currently running.",
            vm.name
        )]));
    }
    let mut out = Out::ok();
    match action.as_str() {
        "poweroff" => {
            vm.state = s("poweroff");
            if linger {
                vm.session_closing = 2;
            } else {
                vm.session = None;
            }
            out.err(PROGRESS);
        }
        "savestate" => {
            if !matches!(vm.state.as_str(), "running" | "paused") {
                return Ok(err(vec![
                    format!(
                        "Machine in invalid state {} -- {}",
                        vm.state,
                        long_state(&vm.state)
                    ),
                    s(D_INVALID_VM_STATE),
                ]));
            }
            let stamp = now_stamp().replace([':', '.'], "-");
            let dir = vm.snap_fldr();
            fs::create_dir_all(&dir)?;
            let f = format!("{dir}/{stamp}Z.sav");
            fs::write(&f, "fake saved state\n")?;
            vm.state = s("saved");
            vm.state_file = Some(f);
            vm.session = None;
            out.err(PROGRESS);
        }
        "pause" => {
            if vm.state == "running" {
                vm.state = s("paused");
            }
        }
        "resume" => {
            if vm.state == "paused" {
                vm.state = s("running");
            }
        }
        _ => unreachable!(),
    }
    vm.state_change = now_stamp();
    Ok(out)
}
