//! The VBoxManage commands the fake models. `dispatch` hands each call to its
//! command's module; this module holds what those share: RTGetOpt-style
//! argument parsing, the VM lookup with VirtualBox's "not found" and "limited"
//! errors, machine-state names, saved-state cleanup and path resolution. A
//! command the fake does not model exits 2 (`unsupported`, so tests notice);
//! a word that is no VBoxManage command at all gets real VBoxManage's usage
//! text.

mod list;
mod media;
mod snapshot;
mod startvm;
mod storage;
mod vm;

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::model::{is_uuid, State, Vm};
use crate::{unsupported, Ctx, Out};

pub use snapshot::deleting_line;

use list::list;
use media::{closemedium, createmedium, showmediuminfo};
use snapshot::snapshot;
use startvm::startvm;
use storage::{storageattach, storagectl};
use vm::{adoptstate, controlvm, createvm, discardstate, setextradata, showvminfo, unregistervm};

const USAGE_33: &str = include_str!("../../fixtures/33-invalid-command.stderr");

const D_NOT_FOUND: &str =
    "Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component VirtualBoxWrap, interface IVirtualBox, callee nsISupports";
const D_LIMITED: &str =
    "Details: code E_ACCESSDENIED (0x80070005), component MachineWrap, interface IMachine, callee nsISupports";
const D_INVALID_VM_STATE: &str =
    "Details: code VBOX_E_INVALID_VM_STATE (0x80bb0002), component SessionMachine, interface IMachine, callee nsISupports";
const D_SESSION_NOT_FOUND: &str =
    "Details: code VBOX_E_OBJECT_NOT_FOUND (0x80bb0001), component SessionMachine, interface IMachine, callee nsISupports";
const D_MACHINE_LOCKED: &str =
    "Details: code VBOX_E_INVALID_OBJECT_STATE (0x80bb0007), component MachineWrap, interface IMachine, callee nsISupports";

/// Where each command looks its VM up (the `Context:` line of a failed FindMachine).
struct Site {
    find: &'static str,
    lock: &'static str,
}

fn s(x: impl Into<String>) -> String {
    x.into()
}

fn err(lines: Vec<String>) -> Out {
    Out::ok().vbox_error(&lines)
}

// ---------------------------------------------------------------------------

/// Runs one VBoxManage call (`args` without the program name) on the model.
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

// ---------------------------------------------------------------------------
// Machine states, saved states, paths

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

fn is_offline_stable(state: &str) -> bool {
    matches!(
        state,
        "poweroff" | "saved" | "aborted" | "aborted-saved" | "teleported"
    )
}

/// Forgets the VM's saved state and deletes its file, unless a snapshot
/// keeps that file (a snapshot taken while the VM was saved).
fn drop_saved_state(vm: &mut Vm) {
    if let Some(f) = vm.state_file.take() {
        if !vm
            .snapshots
            .iter()
            .any(|s| s.state_file.as_deref() == Some(f.as_str()))
        {
            let _ = fs::remove_file(f);
        }
    }
}

fn abs_path(p: &str) -> PathBuf {
    let p = Path::new(p);
    if p.is_absolute() {
        p.to_path_buf()
    } else {
        std::env::current_dir().unwrap_or_default().join(p)
    }
}
