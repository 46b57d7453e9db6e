//! The VBoxManage commands the fake models.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::info;
use crate::model::{
    self, is_uuid, new_uuid, now_stamp, Attachment, Controller, Medium, Snapshot, State, Vm,
};
use crate::{unsupported, Ctx, Out, PROGRESS};

const USAGE_33: &str = include_str!("../fixtures/33-invalid-command.stderr");
/// `showvminfo -y --machinereadable`: a VM name that starts with `-` before
/// `--` is an unknown option (exit 2).
const SHOWVMINFO_UNKNOWN_OPTION_49: &str =
    include_str!("../fixtures/49-dash-name-showvminfo-unknown-option.stderr");

const D_NOT_FOUND: &str =
    "Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component VirtualBoxWrap, interface IVirtualBox, callee nsISupports";
const D_LIMITED: &str =
    "Details: code E_ACCESSDENIED (0x80070005), component MachineWrap, interface IMachine, callee nsISupports";
const D_INVALID_VM_STATE: &str =
    "Details: code VBOX_E_INVALID_VM_STATE (0x80bb0002), component SessionMachine, interface IMachine, callee nsISupports";
const D_INVALID_OBJ_STATE: &str =
    "Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component SessionMachine, interface IMachine, callee nsISupports";
const D_MEDIUM_FILE: &str =
    "Details: code VBOX_E_FILE_ERROR (0x80bb0004), component MediumWrap, interface IMedium, callee nsISupports";
const D_MEDIUM_IN_USE: &str =
    "Details: code VBOX_E_OBJECT_IN_USE (0x80bb000c), component MediumWrap, interface IMedium, callee nsISupports";

/// Where each command looks its VM up (the `Context:` line of a failed FindMachine).
struct Site {
    find: &'static str,
    lock: &'static str,
}

const SNAPSHOT: Site = Site {
    find: "\"FindMachine(bstrMachine.raw(), pMachine.asOutParam())\" at line 344 of file VBoxManageSnapshot.cpp",
    lock: "\"LockMachine(a->session, LockType_Shared)\" at line 350 of file VBoxManageSnapshot.cpp",
};
const SHOWVMINFO: Site = Site {
    find: "\"FindMachine(Bstr(VMNameOrUuid).raw(), machine.asOutParam())\" at line 3248 of file VBoxManageInfo.cpp",
    lock: "\"LockMachine(a->session, LockType_Shared)\" at line 3328 of file VBoxManageInfo.cpp",
};
const STARTVM: Site = Site {
    find: "\"FindMachine(Bstr(pszVM).raw(), machine.asOutParam())\" at line 907 of file VBoxManageMisc.cpp",
    lock: "\"LaunchVMProcess(a->session, sessionType.raw(), ComSafeArrayAsInParam(aBstrEnv), progress.asOutParam())\" at line 920 of file VBoxManageMisc.cpp",
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
const STORAGECTL: Site = Site {
    find: "\"FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())\" at line 1054 of file VBoxManageStorageController.cpp",
    lock: "\"LockMachine(a->session, LockType_Write)\" at line 1060 of file VBoxManageStorageController.cpp",
};
const STORAGEATTACH: Site = Site {
    find: "\"FindMachine(Bstr(a->argv[0]).raw(), machine.asOutParam())\" at line 339 of file VBoxManageStorageController.cpp",
    lock: "\"LockMachine(a->session, LockType_Write)\" at line 345 of file VBoxManageStorageController.cpp",
};

const SNAP_FIND_ARGV2: &str =
    "Context: \"FindSnapshot(Bstr(a->argv[2]).raw(), pSnapshot.asOutParam())\" at line 537 of file VBoxManageSnapshot.cpp";
const SNAP_FIND_EDIT: &str =
    "Context: \"FindSnapshot(Bstr(Value.psz).raw(), pSnapshot.asOutParam())\" at line 618 of file VBoxManageSnapshot.cpp";
const SNAP_DELETE_CTX: &str =
    "Context: \"DeleteSnapshot(bstrSnapGuid.raw(), pProgress.asOutParam())\" at line 554 of file VBoxManageSnapshot.cpp";
const SNAP_TASK_DELETE_CTX: &str =
    "Context: \"RTEXITCODE handleSnapshot(HandlerArg*)\" at line 564 of file VBoxManageSnapshot.cpp";
const SNAP_TASK_TAKE_CTX: &str =
    "Context: \"RTEXITCODE handleSnapshot(HandlerArg*)\" at line 495 of file VBoxManageSnapshot.cpp";
const SNAP_TAKE_CTX: &str = "Context: \"TakeSnapshot(Bstr(pszName).raw(), Bstr(pszDescription).raw(), fPause, bstrSnapshotId.asOutParam(), progress.asOutParam())\" at line 484 of file VBoxManageSnapshot.cpp";
const SNAP_RESTORE_CTX: &str =
    "Context: \"RestoreSnapshot(pSnapshot, pProgress.asOutParam())\" at line 593 of file VBoxManageSnapshot.cpp";
const SNAP_TASK_RESTORE_CTX: &str =
    "Context: \"RTEXITCODE handleSnapshot(HandlerArg*)\" at line 603 of file VBoxManageSnapshot.cpp";
const OPEN_MEDIUM_CTX: &str = "Context: \"OpenMedium(Bstr(pszFilenameOrUuid).raw(), enmDevType, enmAccessMode, fForceNewUuidOnOpen, pMedium.asOutParam())\" at line 197 of file VBoxManageDisk.cpp";
const CLOSE_CTX: &str = "Context: \"Close()\" at line 1877 of file VBoxManageDisk.cpp";

fn s(x: impl Into<String>) -> String {
    x.into()
}

fn err(lines: Vec<String>) -> Out {
    Out::ok().vbox_error(&lines)
}

// ---------------------------------------------------------------------------
// Argument parsing (RTGetOpt style: `--opt value` and `--opt=value`)

struct Parsed {
    opts: Vec<(String, String)>,
    flags: Vec<String>,
    pos: Vec<String>,
}

impl Parsed {
    fn get(&self, k: &str) -> Option<&str> {
        self.opts
            .iter()
            .rev()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.as_str())
    }
    fn has(&self, k: &str) -> bool {
        self.flags.iter().any(|f| f == k)
    }
}

fn parse(args: &[String], with_value: &[&str], flags: &[&str]) -> Result<Parsed, Out> {
    let mut p = Parsed {
        opts: vec![],
        flags: vec![],
        pos: vec![],
    };
    let mut i = 0;
    while i < args.len() {
        let a = &args[i];
        if a == "--" {
            // Options end here (50-dash-name-showvminfo-after-double-dash).
            p.pos.extend(args[i + 1..].iter().cloned());
            break;
        }
        if a.starts_with("--") && a.len() > 2 {
            let (name, inline) = match a.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (a.clone(), None),
            };
            if with_value.contains(&name.as_str()) {
                let v = match inline {
                    Some(v) => v,
                    None => {
                        i += 1;
                        match args.get(i) {
                            Some(v) => v.clone(),
                            None => {
                                return Err(unsupported(&format!("option {name} without a value")))
                            }
                        }
                    }
                };
                p.opts.push((name, v));
            } else if flags.contains(&name.as_str()) && inline.is_none() {
                p.flags.push(name);
            } else {
                return Err(unsupported(&format!("option {a:?}")));
            }
        } else {
            p.pos.push(a.clone());
        }
        i += 1;
    }
    Ok(p)
}

// ---------------------------------------------------------------------------
// Lookups

enum Lookup {
    Found(usize),
    NotFound(String),
    Limited,
}

fn strip_braces(a: &str) -> &str {
    a.trim_start_matches('{').trim_end_matches('}')
}

fn lookup_vm(st: &State, arg: &str) -> Lookup {
    let u = strip_braces(arg);
    if is_uuid(u) {
        return match st.vms.iter().position(|v| v.uuid.eq_ignore_ascii_case(u)) {
            Some(i) if st.vm_accessible(&st.vms[i]) => Lookup::Found(i),
            Some(_) => Lookup::Limited,
            None => Lookup::NotFound(format!(
                "Could not find a registered machine with UUID {{{u}}}"
            )),
        };
    }
    match st
        .vms
        .iter()
        .position(|v| v.name == arg && st.vm_accessible(v))
    {
        Some(i) => Lookup::Found(i),
        None => Lookup::NotFound(format!("Could not find a registered machine named '{arg}'")),
    }
}

/// For control calls: by uuid or name, accessible or not.
pub fn vm_index_any(st: &State, arg: &str) -> Option<usize> {
    let u = strip_braces(arg);
    st.vms
        .iter()
        .position(|v| v.uuid.eq_ignore_ascii_case(u))
        .or_else(|| st.vms.iter().position(|v| v.name == arg))
}

fn find_vm(st: &State, arg: &str, site: &Site) -> Result<usize, Out> {
    match lookup_vm(st, arg) {
        Lookup::Found(i) => Ok(i),
        Lookup::NotFound(msg) => Err(err(vec![
            msg,
            s(D_NOT_FOUND),
            format!("Context: {}", site.find),
        ])),
        Lookup::Limited => Err(err(vec![
            s("The object functionality is limited"),
            s(D_LIMITED),
            format!("Context: {}", site.lock),
        ])),
    }
}

/// A snapshot by uuid, else the first name match depth-first.
fn find_snapshot(vm: &Vm, arg: &str, context: &str) -> Result<usize, Out> {
    let u = strip_braces(arg);
    if is_uuid(u) {
        return vm
            .snapshots
            .iter()
            .position(|s| s.uuid.eq_ignore_ascii_case(u))
            .ok_or_else(|| {
                err(vec![
                    format!("Could not find a snapshot with UUID {{{u}}}"),
                    s("Details: code NS_ERROR_FAILURE (0x80004005), component SessionMachine, interface IMachine, callee nsISupports"),
                    s(context),
                ])
            });
    }
    vm.dfs()
        .into_iter()
        .map(|(i, _)| i)
        .find(|&i| vm.snapshots[i].name == arg)
        .ok_or_else(|| {
            err(vec![
                format!("Could not find a snapshot named '{arg}'"),
                s("Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component SessionMachine, interface IMachine, callee nsISupports"),
                s(context),
            ])
        })
}

/// The stdout line a `snapshot <vm> delete|restore <snap>` prints before acting.
pub fn deleting_line(st: &State, args: &[String]) -> Option<String> {
    if args.first().map(String::as_str) != Some("snapshot") {
        return None;
    }
    let vm = match lookup_vm(st, args.get(1)?) {
        Lookup::Found(i) => &st.vms[i],
        _ => return None,
    };
    let verb = match args.get(2)?.as_str() {
        "delete" => "Deleting",
        "restore" => "Restoring",
        _ => return None,
    };
    let si = find_snapshot(vm, args.get(3)?, "").ok()?;
    let snap = &vm.snapshots[si];
    Some(format!("{verb} snapshot '{}' ({})\n", snap.name, snap.uuid))
}

/// VirtualBox's long state names (Global::stringifyMachineState).
fn long_state(short: &str) -> String {
    match short {
        "poweroff" => "PoweredOff",
        "saved" => "Saved",
        "aborted" => "Aborted",
        "aborted-saved" => "AbortedSaved",
        "teleported" => "Teleported",
        "running" => "Running",
        "paused" => "Paused",
        "gurumeditation" => "Stuck",
        "starting" => "Starting",
        "stopping" => "Stopping",
        "saving" => "Saving",
        "restoring" => "Restoring",
        "teleporting" => "Teleporting",
        "teleportingpausedvm" => "TeleportingPausedVM",
        "teleportingin" => "TeleportingIn",
        "livesnapshotting" => "LiveSnapshotting",
        "onlinesnapshotting" => "OnlineSnapshotting",
        "deletingsnapshot" => "DeletingSnapshot",
        "deletingsnapshotlive" => "DeletingSnapshotOnline",
        "deletingsnapshotlivepaused" => "DeletingSnapshotPaused",
        "restoringsnapshot" => "RestoringSnapshot",
        "settingup" => "SettingUp",
        "snapshotting" => "Snapshotting",
        other => other,
    }
    .to_string()
}

fn is_transient(state: &str) -> bool {
    matches!(
        state,
        "teleporting"
            | "livesnapshotting"
            | "starting"
            | "stopping"
            | "saving"
            | "restoring"
            | "teleportingpausedvm"
            | "teleportingin"
            | "deletingsnapshotlive"
            | "deletingsnapshotlivepaused"
            | "onlinesnapshotting"
            | "restoringsnapshot"
            | "deletingsnapshot"
            | "settingup"
            | "snapshotting"
    )
}

fn is_offline_stable(state: &str) -> bool {
    matches!(
        state,
        "poweroff" | "saved" | "aborted" | "aborted-saved" | "teleported"
    )
}

fn missing_in_chain(st: &State, uuid: &str) -> Option<String> {
    st.chain(uuid)
        .into_iter()
        .map(|i| st.media[i].location.clone())
        .find(|loc| !Path::new(loc).is_file())
}

fn could_not_open(path: &str) -> Vec<String> {
    vec![
        format!("Could not open the medium '{path}'."),
        format!("VD: error VERR_FILE_NOT_FOUND opening image file '{path}' (VERR_FILE_NOT_FOUND)"),
        s("Details: code NS_ERROR_FAILURE (0x80004005), component MediumWrap, interface IMedium"),
    ]
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

fn abs_path(p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}

fn create_empty_medium(path: &str) -> Result<()> {
    model::write_blocks(path, &model::Blocks::new())
}

fn written_size(path: &str) -> usize {
    model::read_blocks(path).map(|b| b.len()).unwrap_or(0)
}

// ---------------------------------------------------------------------------

pub fn dispatch(ctx: &Ctx, st: &mut State, args: &[String]) -> Result<Out> {
    let _ = ctx;
    let Some(cmd) = args.first() else {
        return Ok(unsupported("no command"));
    };
    let rest = &args[1..];
    Ok(match cmd.as_str() {
        "--version" | "-V" => Out {
            stdout: s("7.2.22_Fake\n"),
            ..Out::default()
        },
        "list" => list(st, rest),
        "showvminfo" => showvminfo(st, rest),
        "showmediuminfo" | "showhdinfo" => showmediuminfo(st, rest),
        "createvm" => createvm(st, rest)?,
        "createmedium" | "createhd" => createmedium(st, cmd == "createhd", rest)?,
        "storagectl" => storagectl(st, rest),
        "storageattach" => storageattach(st, rest),
        "snapshot" => snapshot(st, rest)?,
        "startvm" => startvm(st, rest),
        "controlvm" => controlvm(st, rest)?,
        "adoptstate" => adoptstate(st, rest),
        "discardstate" => discardstate(st, rest),
        "closemedium" => closemedium(st, rest),
        "unregistervm" => unregistervm(st, rest),
        "setextradata" => setextradata(st, rest),
        other => {
            if known_command(other) {
                unsupported(&format!("command {other:?}"))
            } else {
                Out {
                    stdout: String::new(),
                    stderr: USAGE_33.replace("'bogus-command'", &format!("'{other}'")),
                    code: 2,
                }
            }
        }
    })
}

/// Is `cmd` a real VBoxManage command (listed in the recorded usage text)?
fn known_command(cmd: &str) -> bool {
    USAGE_33.lines().any(|l| {
        l.strip_prefix("  VBoxManage ")
            .and_then(|r| r.split([' ', '[', '<']).next())
            .is_some_and(|w| w == cmd)
    })
}

fn list(st: &State, args: &[String]) -> Out {
    // `list --multiple a b …` (7.x): each list under a `[a]` header, the
    // headers after the first preceded by a blank line (recorded: 48-).
    if let Some((flag, whats)) = args.split_first() {
        if flag == "--multiple" || flag == "-m" {
            let mut out = Out::ok();
            for (i, what) in whats.iter().enumerate() {
                let one = list(st, std::slice::from_ref(what));
                if one.code != 0 {
                    return one;
                }
                let sep = if i == 0 { "" } else { "\n" };
                out.out(&format!("{sep}[{what}]\n{}", one.stdout));
            }
            return out;
        }
    }
    let mut out = Out::ok();
    match args {
        [what] if what == "vms" => {
            for vm in &st.vms {
                if st.vm_accessible(vm) {
                    out.out(&format!("\"{}\" {{{}}}\n", vm.name, vm.uuid));
                } else {
                    out.out(&format!("\"<inaccessible>\" {{{}}}\n", vm.uuid));
                }
            }
        }
        [what] if what == "runningvms" => {
            for vm in st.vms.iter().filter(|v| st.vm_accessible(v)) {
                if matches!(
                    vm.state.as_str(),
                    "running"
                        | "paused"
                        | "teleporting"
                        | "livesnapshotting"
                        | "teleportingpausedvm"
                ) {
                    out.out(&format!("\"{}\" {{{}}}\n", vm.name, vm.uuid));
                }
            }
        }
        [what] if what == "hdds" => out.out(&info::list_hdds(st)),
        _ => return unsupported(&format!("list {}", args.join(" "))),
    }
    out
}

fn showvminfo(st: &mut State, args: &[String]) -> Out {
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

fn medium_arg(args: &[String], flags: &[&str]) -> Result<(String, Parsed), Out> {
    let mut p = parse(args, &[], flags)?;
    if matches!(p.pos.first().map(String::as_str), Some("disk")) {
        p.pos.remove(0);
    } else if matches!(p.pos.first().map(String::as_str), Some("dvd" | "floppy")) {
        return Err(unsupported("dvd/floppy media"));
    }
    match p.pos.as_slice() {
        [m] => Ok((m.clone(), p)),
        _ => Err(unsupported("expected one medium argument")),
    }
}

fn medium_not_found(arg: &str) -> Out {
    if is_uuid(strip_braces(arg)) {
        return err(vec![
            format!("The given path '{arg}' is not fully qualified"),
            s(D_MEDIUM_FILE),
            s(OPEN_MEDIUM_CTX),
        ]);
    }
    if Path::new(arg).exists() {
        return unsupported(&format!("opening an unregistered medium {arg:?}"));
    }
    err(vec![
        format!(
            "Could not find file for the medium '{}' (VERR_FILE_NOT_FOUND)",
            abs_path(arg).display()
        ),
        s(D_MEDIUM_FILE),
        s(OPEN_MEDIUM_CTX),
    ])
}

fn showmediuminfo(st: &State, args: &[String]) -> Out {
    let (m, _) = match medium_arg(args, &[]) {
        Ok(x) => x,
        Err(o) => return o,
    };
    match st.find_medium(&m) {
        Some(i) => {
            let mut out = Out::ok();
            out.out(&info::showmediuminfo(st, i));
            out
        }
        None => medium_not_found(&m),
    }
}

fn createvm(st: &mut State, args: &[String]) -> Result<Out> {
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

fn createmedium(st: &mut State, legacy: bool, args: &[String]) -> Result<Out> {
    let mut p = match parse(
        args,
        &["--filename", "--size", "--format", "--variant"],
        &[],
    ) {
        Ok(p) => p,
        Err(o) => return Ok(o),
    };
    if !legacy && p.pos.first().map(String::as_str) == Some("disk") {
        p.pos.remove(0);
    }
    if !p.pos.is_empty() {
        return Ok(unsupported(&format!(
            "createmedium argument {:?}",
            p.pos[0]
        )));
    }
    if let Some(f) = p.get("--format") {
        if !f.eq_ignore_ascii_case("vdi") {
            return Ok(unsupported(&format!("createmedium --format {f}")));
        }
    }
    if let Some(v) = p.get("--variant") {
        if !v.eq_ignore_ascii_case("standard") {
            return Ok(unsupported(&format!("createmedium --variant {v}")));
        }
    }
    let (Some(file), Some(size)) = (p.get("--filename"), p.get("--size")) else {
        return Ok(unsupported("createmedium without --filename and --size"));
    };
    let Ok(size) = size.parse::<u64>() else {
        return Ok(unsupported(&format!("createmedium --size {size:?}")));
    };
    let mut path = abs_path(file);
    if path.extension().is_none() {
        path.set_extension("vdi");
    }
    let loc = path.to_string_lossy().into_owned();
    if path.exists() || st.media.iter().any(|m| m.location == loc) {
        let mut out = Out::ok();
        out.err("0%...VBOX_E_FILE_ERROR\n");
        return Ok(out.vbox_error(&[
            s("Failed to create medium"),
            format!("Could not create the medium storage unit '{loc}'."),
            format!("VDI: cannot create image '{loc}' (VERR_ALREADY_EXISTS)"),
            s("Details: code VBOX_E_FILE_ERROR (0x80bb0004), component MediumWrap, interface IMedium"),
            s("Context: \"RTEXITCODE handleCreateMedium(HandlerArg*)\" at line 630 of file VBoxManageDisk.cpp"),
        ]));
    }
    create_empty_medium(&loc)?;
    let uuid = new_uuid();
    st.media.push(Medium {
        uuid: uuid.clone(),
        parent: None,
        location: loc,
        capacity_mb: size,
    });
    let mut out = Out::ok();
    out.out(&format!("Medium created. UUID: {uuid}\n"));
    out.err(PROGRESS);
    Ok(out)
}

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
            s("Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports"),
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

fn storagectl(st: &mut State, args: &[String]) -> Out {
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
    if let Some(o) = not_mutable(
        &st.vms[vi],
        s("Context: \"AddStorageController(Bstr(pszCtl).raw(), StorageBus_SATA, ctl.asOutParam())\" at line 1107 of file VBoxManageStorageController.cpp"),
    ) {
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
                s("Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component SessionMachine, interface IMachine, callee nsISupports"),
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
            s("Details: code VBOX_E_OBJECT_IN_USE (0x80bb000c), component SessionMachine, interface IMachine, callee nsISupports"),
            s("Context: \"AddStorageController(Bstr(pszCtl).raw(), StorageBus_SATA, ctl.asOutParam())\" at line 1107 of file VBoxManageStorageController.cpp"),
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

fn storageattach(st: &mut State, args: &[String]) -> Out {
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
    let vm = &st.vms[vi];
    let Some(c) = vm.controllers.iter().find(|c| c.name == ctl) else {
        return err(vec![
            format!("Could not find a storage controller named '{ctl}'"),
            s("Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component SessionMachine, interface IMachine, callee nsISupports"),
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
        st.vms[vi]
            .attachments
            .retain(|a| !(a.controller == ctl && a.port == port && a.device == device));
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
            s("Details: code VBOX_E_OBJECT_IN_USE (0x80bb000c), component SessionMachine, interface IMachine, callee nsISupports"),
            attach_ctx,
        ]);
    }
    let uuid = m.uuid.clone();
    let vm = &mut st.vms[vi];
    vm.attachments
        .retain(|a| !(a.controller == ctl && a.port == port && a.device == device));
    vm.attachments.push(Attachment {
        controller: ctl.to_string(),
        port,
        device,
        medium: uuid,
    });
    Out::ok()
}

// ---------------------------------------------------------------------------
// snapshot

fn snapshot(st: &mut State, args: &[String]) -> Result<Out> {
    let (Some(vmarg), Some(sub)) = (args.first(), args.get(1)) else {
        return Ok(unsupported("snapshot without <vm> <subcommand>"));
    };
    let rest = &args[2..];
    if !matches!(
        sub.as_str(),
        "take" | "delete" | "restore" | "restorecurrent" | "edit" | "list"
    ) {
        return Ok(unsupported(&format!("snapshot subcommand {sub:?}")));
    }
    let vi = match find_vm(st, vmarg, &SNAPSHOT) {
        Ok(i) => i,
        Err(o) => return Ok(o),
    };
    match sub.as_str() {
        "take" => snap_take(st, vi, rest),
        "delete" => match rest {
            [target] => snap_delete(st, vi, target),
            _ => Ok(unsupported("snapshot delete needs exactly one snapshot")),
        },
        "restore" => match rest {
            [target] => {
                let si = match find_snapshot(&st.vms[vi], target, SNAP_FIND_ARGV2) {
                    Ok(i) => i,
                    Err(o) => return Ok(o),
                };
                snap_restore(st, vi, si)
            }
            _ => Ok(unsupported("snapshot restore needs exactly one snapshot")),
        },
        "restorecurrent" => {
            if !rest.is_empty() {
                return Ok(unsupported("snapshot restorecurrent takes no arguments"));
            }
            let cur = st.vms[vi].current_snapshot.clone();
            match cur.and_then(|c| st.vms[vi].snapshot_idx(&c)) {
                Some(si) => snap_restore(st, vi, si),
                None => Ok(err(vec![s("Could not find a current snapshot")])),
            }
        }
        "edit" => Ok(snap_edit(st, vi, rest)),
        "list" => {
            let p = match parse(rest, &[], &["--machinereadable"]) {
                Ok(p) => p,
                Err(o) => return Ok(o),
            };
            if !p.has("--machinereadable") || !p.pos.is_empty() {
                return Ok(unsupported("snapshot list without --machinereadable"));
            }
            let vm = &st.vms[vi];
            let mut out = Out::ok();
            if vm.snapshots.is_empty() {
                out.out("This machine does not have any snapshots\n");
                out.code = 1;
            } else {
                out.out(&info::snapshot_lines(vm));
            }
            Ok(out)
        }
        _ => unreachable!(),
    }
}

fn snap_take(st: &mut State, vi: usize, args: &[String]) -> Result<Out> {
    let p = match parse(args, &["--description"], &["--live", "--pause"]) {
        Ok(p) => p,
        Err(o) => return Ok(o),
    };
    let [name] = p.pos.as_slice() else {
        return Ok(unsupported("snapshot take needs exactly one name"));
    };
    let vm = &st.vms[vi];
    let state = vm.state.clone();
    if !is_offline_stable(&state) && !matches!(state.as_str(), "running" | "paused") {
        let msg = if is_transient(&state) {
            format!(
                "Cannot take a snapshot of the machine while it is changing the state (machine state: {})",
                long_state(&state)
            )
        } else {
            format!("Invalid machine state: {}", long_state(&state))
        };
        return Ok(err(vec![msg, s(D_INVALID_VM_STATE), s(SNAP_TAKE_CTX)]));
    }
    for a in &vm.attachments {
        if let Some(missing) = missing_in_chain(st, &a.medium) {
            let mut out = Out::ok();
            out.err("0%...NS_ERROR_FAILURE\n");
            let mut lines = vec![s("Failed to take snapshot")];
            lines.extend(could_not_open(&missing));
            lines.push(s(SNAP_TASK_TAKE_CTX));
            return Ok(out.vbox_error(&lines));
        }
    }
    let snap_uuid = new_uuid();
    let snap_fldr = vm.snap_fldr();
    fs::create_dir_all(&snap_fldr)?;
    let frozen = vm.attachments.clone();
    let mut new_atts = Vec::new();
    for a in &frozen {
        let diff = new_uuid();
        let loc = format!("{snap_fldr}/{{{diff}}}.vdi");
        create_empty_medium(&loc)?;
        let cap = st.medium(&a.medium).map(|m| m.capacity_mb).unwrap_or(0);
        st.media.push(Medium {
            uuid: diff.clone(),
            parent: Some(a.medium.clone()),
            location: loc,
            capacity_mb: cap,
        });
        new_atts.push(Attachment {
            medium: diff,
            ..a.clone()
        });
    }
    let vm = &mut st.vms[vi];
    vm.snapshots.push(Snapshot {
        uuid: snap_uuid.clone(),
        name: name.clone(),
        description: p.get("--description").unwrap_or("").to_string(),
        parent: vm.current_snapshot.clone(),
        state_file: vm.state_file.clone(),
        attachments: frozen,
    });
    vm.attachments = new_atts;
    vm.current_snapshot = Some(snap_uuid.clone());
    vm.state_change = now_stamp();
    let mut out = Out::ok();
    out.out(&format!("Snapshot taken. UUID: {snap_uuid}\n"));
    out.err(PROGRESS);
    Ok(out)
}

enum MergePlan {
    /// Merge `child` and `parent`; `backward` keeps the parent.
    Merge {
        parent: String,
        child: String,
        backward: bool,
    },
    /// A differencing medium without children: just delete it.
    Delete(String),
}

fn snap_delete(st: &mut State, vi: usize, target: &str) -> Result<Out> {
    let si = match find_snapshot(&st.vms[vi], target, SNAP_FIND_ARGV2) {
        Ok(i) => i,
        Err(o) => return Ok(o),
    };
    let vm = &st.vms[vi];
    let snap = vm.snapshots[si].clone();
    let mut out = Out::ok();
    out.out(&format!(
        "Deleting snapshot '{}' ({})\n",
        snap.name, snap.uuid
    ));
    let state = vm.state.clone();
    if is_transient(&state) {
        return Ok(out.vbox_error(&[
            format!(
                "Cannot delete a snapshot of the machine while it is changing the state (machine state: {})",
                long_state(&state)
            ),
            s(D_INVALID_VM_STATE),
            s(SNAP_DELETE_CTX),
        ]));
    }
    if !is_offline_stable(&state) && !matches!(state.as_str(), "running" | "paused") {
        return Ok(out.vbox_error(&[
            format!("Invalid machine state: {}", long_state(&state)),
            s(D_INVALID_VM_STATE),
            s(SNAP_DELETE_CTX),
        ]));
    }
    let kids = vm.children(Some(&snap.uuid));
    if kids.len() > 1 {
        return Ok(out.vbox_error(&[
            format!(
                "Snapshot '{}' of the machine '{}' cannot be deleted, because it has {} child snapshots, which is more than the one snapshot allowed for deletion",
                snap.name,
                vm.name,
                kids.len()
            ),
            s(D_INVALID_OBJ_STATE),
            s(SNAP_DELETE_CTX),
        ]));
    }
    if vm.current_snapshot.as_deref() == Some(snap.uuid.as_str()) && kids.len() == 1 {
        return Ok(out.vbox_error(&[
            format!(
                "Snapshot '{}' of the machine '{}' cannot be deleted, because it is the current snapshot and has one child snapshot",
                snap.name, vm.name
            ),
            s(D_INVALID_OBJ_STATE),
            s(SNAP_DELETE_CTX),
        ]));
    }

    // Plan every merge before changing anything (the task fails as a whole).
    let task_fail = |mut out: Out, lines: Vec<String>| {
        out.err("0%...NS_ERROR_FAILURE\n");
        let mut all = vec![s("Snapshot operation failed")];
        all.extend(lines);
        all.push(s(SNAP_TASK_DELETE_CTX));
        out.vbox_error(&all)
    };
    let mut plans = Vec::new();
    for a in &snap.attachments {
        let Some(p) = st.medium(&a.medium).cloned() else {
            continue;
        };
        let kids = st.children_of(&p.uuid);
        match kids.as_slice() {
            [] => {
                if p.parent.is_some() {
                    plans.push(MergePlan::Delete(p.uuid.clone()));
                }
            }
            [c] => {
                let c = st.media[*c].clone();
                if let Some(missing) = missing_in_chain(st, &c.uuid) {
                    let mut lines = vec![
                        format!("Cannot lock hard disk '{}' when deleting a snapshot", p.location),
                        s("Details: code NS_ERROR_FAILURE (0x80004005), component SessionMachine, interface IMachine"),
                        s("--------"),
                    ];
                    lines.extend(could_not_open(&missing));
                    return Ok(task_fail(out, lines));
                }
                // Medium::i_queryPreferredMergeDirection: a base always takes
                // its child back; otherwise merge the smaller into the larger
                // (equal sizes: forward, the child survives).
                let backward =
                    p.parent.is_none() || written_size(&p.location) > written_size(&c.location);
                plans.push(MergePlan::Merge {
                    parent: p.uuid.clone(),
                    child: c.uuid.clone(),
                    backward,
                });
            }
            many => {
                return Ok(task_fail(
                    out,
                    vec![
                        format!(
                            "Hard disk '{}' has more than one child hard disk ({})",
                            p.location,
                            many.len()
                        ),
                        s("Details: code NS_ERROR_FAILURE (0x80004005), component SessionMachine, interface IMachine"),
                    ],
                ));
            }
        }
    }

    for plan in plans {
        match plan {
            MergePlan::Delete(u) => {
                if let Some(i) = st.medium_idx(&u) {
                    let _ = fs::remove_file(&st.media[i].location);
                    st.media.remove(i);
                }
            }
            MergePlan::Merge {
                parent,
                child,
                backward,
            } => {
                let (Some(pi), Some(ci)) = (st.medium_idx(&parent), st.medium_idx(&child)) else {
                    continue;
                };
                let ploc = st.media[pi].location.clone();
                let cloc = st.media[ci].location.clone();
                let mut blocks = model::read_blocks(&ploc)?;
                blocks.extend(model::read_blocks(&cloc)?);
                if backward {
                    model::write_blocks(&ploc, &blocks)?;
                    let _ = fs::remove_file(&cloc);
                    for m in st.media.iter_mut() {
                        if m.parent.as_deref() == Some(child.as_str()) {
                            m.parent = Some(parent.clone());
                        }
                    }
                    st.media.retain(|m| m.uuid != child);
                    st.replace_medium_refs(&child, &parent);
                } else {
                    model::write_blocks(&cloc, &blocks)?;
                    let _ = fs::remove_file(&ploc);
                    let grand = st.media[pi].parent.clone();
                    st.media[ci].parent = grand;
                    st.media.retain(|m| m.uuid != parent);
                    st.replace_medium_refs(&parent, &child);
                }
            }
        }
    }

    // Remove the snapshot; its children move to the end of its parent's list.
    let vm = &mut st.vms[vi];
    let idx = vm.snapshot_idx(&snap.uuid).expect("snapshot still there");
    vm.snapshots.remove(idx);
    let mut moved = Vec::new();
    let mut k = 0;
    while k < vm.snapshots.len() {
        if vm.snapshots[k].parent.as_deref() == Some(snap.uuid.as_str()) {
            let mut c = vm.snapshots.remove(k);
            c.parent = snap.parent.clone();
            moved.push(c);
        } else {
            k += 1;
        }
    }
    vm.snapshots.extend(moved);
    if vm.current_snapshot.as_deref() == Some(snap.uuid.as_str()) {
        vm.current_snapshot = snap.parent.clone();
    }
    vm.state_change = now_stamp();
    out.err(PROGRESS);
    Ok(out)
}

fn snap_restore(st: &mut State, vi: usize, si: usize) -> Result<Out> {
    let vm = &st.vms[vi];
    let snap = vm.snapshots[si].clone();
    let mut out = Out::ok();
    out.out(&format!(
        "Restoring snapshot '{}' ({})\n",
        snap.name, snap.uuid
    ));
    if !is_offline_stable(&vm.state) {
        return Ok(out.vbox_error(&[
            format!(
                "Cannot delete the current state of the running machine (machine state: {})",
                long_state(&vm.state)
            ),
            s(D_INVALID_VM_STATE),
            s(SNAP_RESTORE_CTX),
        ]));
    }
    for a in &snap.attachments {
        if let Some(missing) = missing_in_chain(st, &a.medium) {
            out.err("0%...NS_ERROR_FAILURE\n");
            let mut lines = vec![s("Snapshot operation failed")];
            lines.extend(could_not_open(&missing));
            lines.push(s(SNAP_TASK_RESTORE_CTX));
            return Ok(out.vbox_error(&lines));
        }
    }
    // Discard the current state's own differencing media.
    let referenced_by_snapshots: Vec<String> = st
        .vms
        .iter()
        .flat_map(|v| v.snapshots.iter())
        .flat_map(|s| s.attachments.iter().map(|a| a.medium.clone()))
        .collect();
    for a in vm.attachments.clone() {
        let Some(mi) = st.medium_idx(&a.medium) else {
            continue;
        };
        if st.media[mi].parent.is_some()
            && st.children_of(&a.medium).is_empty()
            && !referenced_by_snapshots.contains(&a.medium)
        {
            let _ = fs::remove_file(&st.media[mi].location);
            st.media.remove(mi);
        }
    }
    let snap_fldr = st.vms[vi].snap_fldr();
    fs::create_dir_all(&snap_fldr)?;
    let mut new_atts = Vec::new();
    for a in &snap.attachments {
        let diff = new_uuid();
        let loc = format!("{snap_fldr}/{{{diff}}}.vdi");
        create_empty_medium(&loc)?;
        let cap = st.medium(&a.medium).map(|m| m.capacity_mb).unwrap_or(0);
        st.media.push(Medium {
            uuid: diff.clone(),
            parent: Some(a.medium.clone()),
            location: loc,
            capacity_mb: cap,
        });
        new_atts.push(Attachment {
            medium: diff,
            ..a.clone()
        });
    }
    let vm = &mut st.vms[vi];
    if let Some(f) = vm.state_file.take() {
        if snap.state_file.as_deref() != Some(f.as_str()) {
            let _ = fs::remove_file(f);
        }
    }
    vm.attachments = new_atts;
    vm.current_snapshot = Some(snap.uuid.clone());
    match &snap.state_file {
        Some(f) => {
            vm.state = s("saved");
            vm.state_file = Some(f.clone());
        }
        None => vm.state = s("poweroff"),
    }
    vm.state_change = now_stamp();
    out.err(PROGRESS);
    Ok(out)
}

fn snap_edit(st: &mut State, vi: usize, args: &[String]) -> Out {
    let p = match parse(args, &["--name", "--description"], &["--current"]) {
        Ok(p) => p,
        Err(o) => return o,
    };
    let vm = &st.vms[vi];
    let si = if p.has("--current") {
        if !p.pos.is_empty() {
            return unsupported("snapshot edit with both --current and a snapshot");
        }
        match vm
            .current_snapshot
            .as_deref()
            .and_then(|c| vm.snapshot_idx(c))
        {
            Some(i) => i,
            None => return err(vec![s("Could not find a current snapshot")]),
        }
    } else {
        let [target] = p.pos.as_slice() else {
            return unsupported("snapshot edit needs one snapshot or --current");
        };
        match find_snapshot(vm, target, SNAP_FIND_EDIT) {
            Ok(i) => i,
            Err(o) => return o,
        }
    };
    let snap = &mut st.vms[vi].snapshots[si];
    if let Some(n) = p.get("--name") {
        snap.name = n.to_string();
    }
    if let Some(d) = p.get("--description") {
        snap.description = d.to_string();
    }
    Out::ok()
}

// ---------------------------------------------------------------------------
// VM lifecycle

fn startvm(st: &mut State, args: &[String]) -> Out {
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
            s("Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports"),
            format!("Context: {}", STARTVM.lock),
        ]);
    }
    let mut out = Out::ok();
    out.out(&format!("Waiting for VM \"{}\" to power on...\n", vm.name));
    if vm
        .attachments
        .iter()
        .any(|a| missing_in_chain(st, &a.medium).is_some())
    {
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
    if let Some(f) = vm.state_file.take() {
        let referenced = vm
            .snapshots
            .iter()
            .any(|s| s.state_file.as_deref() == Some(f.as_str()));
        if !referenced {
            let _ = fs::remove_file(f);
        }
    }
    vm.state = s("running");
    vm.session = Some(session.to_string());
    vm.state_change = now_stamp();
    out
}

fn controlvm(st: &mut State, args: &[String]) -> Result<Out> {
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

fn adoptstate(st: &mut State, args: &[String]) -> Out {
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

fn discardstate(st: &mut State, args: &[String]) -> Out {
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
    if let Some(f) = vm.state_file.take() {
        if !vm
            .snapshots
            .iter()
            .any(|s| s.state_file.as_deref() == Some(f.as_str()))
        {
            let _ = fs::remove_file(f);
        }
    }
    vm.state = s(if vm.state == "aborted-saved" {
        "aborted"
    } else {
        "poweroff"
    });
    vm.state_change = now_stamp();
    Out::ok()
}

fn closemedium(st: &mut State, args: &[String]) -> Out {
    let (m, p) = match medium_arg(args, &["--delete"]) {
        Ok(x) => x,
        Err(o) => return o,
    };
    let Some(mi) = st.find_medium(&m) else {
        return medium_not_found(&m);
    };
    let med = st.media[mi].clone();
    let users = st
        .vms
        .iter()
        .filter(|v| v.referenced_media().contains(&med.uuid))
        .count();
    if users > 0 {
        return err(vec![
            format!(
                "Medium '{}' cannot be closed because it is still attached to {users} virtual machines",
                med.location
            ),
            s(D_MEDIUM_IN_USE),
            s(CLOSE_CTX),
        ]);
    }
    let kids = st.children_of(&med.uuid).len();
    if kids > 0 {
        return err(vec![
            format!(
                "Cannot close medium '{}' because it has {kids} child media",
                med.location
            ),
            s(D_MEDIUM_IN_USE),
            s(CLOSE_CTX),
        ]);
    }
    st.media.remove(mi);
    let mut out = Out::ok();
    if p.has("--delete") {
        let _ = fs::remove_file(&med.location);
        out.err(PROGRESS);
    }
    out
}

/// `setextradata <vm> <key> [<value>]`: no value deletes the key (as real
/// VirtualBox, which saves the settings file at once).
fn setextradata(st: &mut State, args: &[String]) -> Out {
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

fn unregistervm(st: &mut State, args: &[String]) -> Out {
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
            format!("Cannot unregister the machine '{}' while it is locked", vm.name),
            s("Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports"),
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
