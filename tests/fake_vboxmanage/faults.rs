//! `fake fault <cmd words…> real <case>`: the call fails with the text real
//! VirtualBox 7.2.22 printed for that fault (tests/fixtures, recorded by
//! record-faults.sh), with the recorded VM's name, folder, base disk and
//! VBOX_USER_HOME replaced by this call's. Nothing in the model changes,
//! except where the real fault leaves a mark on disk that vblaunch must see:
//! `disk-full` leaves the VM's .vbox at 0 bytes, `vbox-not-replaceable`
//! leaves a .vbox-tmp next to it. (The partial work of a dead service, e.g.
//! a half-done merge, is not modelled: use real VirtualBox for that.)
use std::path::Path;

use crate::cmds;
use crate::model::State;

struct Case {
    name: &'static str,
    stderr: &'static str,
    exit: i32,
    /// The recorded VM's name and the folder that held it.
    vm: &'static str,
    parent: &'static str,
    /// The recorded home (VBOX_USER_HOME).
    home: &'static str,
}

macro_rules! case {
    ($name:literal, $file:literal, $exit:literal, $vm:literal, $parent:literal, $home:literal) => {
        Case {
            name: $name,
            stderr: include_str!(concat!("../fixtures/", $file, ".stderr")),
            exit: $exit,
            vm: $vm,
            parent: $parent,
            home: $home,
        }
    };
}

const W: &str = "/tmp/vbl-faults";

const CASES: &[Case] = &[
    case!(
        "frontend-missing",
        "49-startvm-frontend-missing",
        1,
        "FeVM",
        "frontend/vms",
        "frontend/home"
    ),
    case!(
        "service-died",
        "50-svckill-snapshot-delete",
        133,
        "KillVM",
        "svckill/vms",
        "svckill/home"
    ),
    case!(
        "truncated",
        "52-truncated-snapshot-delete",
        1,
        "TruncVM",
        "truncated/vms",
        "truncated/home"
    ),
    case!(
        "shared-parent",
        "54-shared-base-snapshot-delete-a",
        1,
        "ShareA",
        "shared/vms",
        "shared/home"
    ),
    case!(
        "locked-by-session",
        "59-session-startvm",
        1,
        "LockVM",
        "session/vms",
        "session/home"
    ),
    case!(
        "locked-for-reading",
        "63-readlock-base-snapshot-delete",
        1,
        "ReadVM",
        "readlock/vms",
        "readlock/home"
    ),
    case!(
        "changing-state-take",
        "66-changing-state-snapshot-take",
        1,
        "BusyVM",
        "changing/vms",
        "changing/home"
    ),
    case!(
        "changing-state-delete",
        "67-changing-state-snapshot-delete",
        1,
        "BusyVM",
        "changing/vms",
        "changing/home"
    ),
    case!(
        "registry-damaged",
        "68-virtualbox-xml-damaged-list-vms",
        1,
        "XmlVM",
        "xml/vms",
        "xml/home"
    ),
    case!(
        "bad-header",
        "70-bad-header-snapshot-delete",
        1,
        "HdrVM",
        "header/vms",
        "header/home"
    ),
    case!(
        "foreign-uuid",
        "73-foreign-uuid-snapshot-delete",
        1,
        "ForVM",
        "foreign/vms",
        "foreign/home"
    ),
    case!(
        "snapshots-not-writable",
        "74-snapshots-immutable-snapshot-take",
        1,
        "SnapVM",
        "snapsro/vms",
        "snapsro/home"
    ),
    case!(
        "vm-folder-not-writable",
        "75-vm-folder-immutable-snapshot-take",
        1,
        "DirVM",
        "vmro/vms",
        "vmro/home"
    ),
    case!(
        "vbox-not-replaceable",
        "77-vbox-immutable-snapshot-take",
        1,
        "FileVM",
        "vboxro/vms",
        "vboxro/home"
    ),
    case!(
        "read-only-fs",
        "78-read-only-fs-snapshot-take",
        1,
        "RoVM",
        "writeprotect/fs",
        "writeprotect/home"
    ),
    case!(
        "disk-full",
        "80-disk-full-snapshot-take",
        1,
        "FullVM",
        "diskfull/fs",
        "diskfull/home"
    ),
    case!(
        "media-lock-start",
        "87-media-lock-startvm",
        1,
        "MediaVM",
        "medialock/vms",
        "medialock/home"
    ),
    case!(
        "locked-for-writing",
        "88-writelock-snapshot-delete",
        1,
        "WriteVM",
        "writelock/vms",
        "writelock/home"
    ),
    case!(
        "media-lock-take",
        "89-writelock-snapshot-take",
        1,
        "WriteVM",
        "writelock/vms",
        "writelock/home"
    ),
    case!(
        "service-unreachable",
        "90-service-unreachable-list-vms",
        1,
        "-",
        "svcunreachable/vms",
        "svcunreachable/home"
    ),
    case!(
        "merge-space",
        "82-merge-full-snapshot-delete",
        1,
        "MergeVM",
        "mergefull/fs",
        "mergefull/home"
    ),
];

pub fn names() -> Vec<&'static str> {
    CASES.iter().map(|c| c.name).collect()
}

pub fn known(name: &str) -> bool {
    CASES.iter().any(|c| c.name == name)
}

/// The VM a call names (its second word), if the fake knows it.
fn vm_of<'a>(st: &'a State, args: &[String]) -> Option<&'a crate::model::Vm> {
    let arg = args.get(1)?;
    st.vms
        .iter()
        .find(|v| v.name == *arg || v.uuid.eq_ignore_ascii_case(arg.trim_matches(['{', '}'])))
}

/// The base (root) disk of a VM's first attachment.
fn base_of(st: &State, vm: &crate::model::Vm) -> Option<String> {
    let mut m = st.medium(&vm.attachments.first()?.medium)?;
    while let Some(p) = m.parent.as_deref().and_then(|p| st.medium(p)) {
        m = p;
    }
    Some(m.location.clone())
}

/// (stdout, stderr, exit) of `case` for this call; None for an unknown case.
pub fn fire(case: &str, st: &State, home: &Path, args: &[String]) -> Option<(String, String, i32)> {
    let c = CASES.iter().find(|c| c.name == case)?;
    let mut text = c.stderr.to_string();
    let rec_dir = format!("{W}/{}/{}", c.parent, c.vm);
    if let Some(vm) = vm_of(st, args) {
        if let Some(base) = base_of(st, vm) {
            text = text.replace(&format!("{rec_dir}/{}.vdi", c.vm), &base);
        }
        text = text.replace(&rec_dir, &vm.vm_dir().display().to_string());
        text = text.replace(&format!("'{}'", c.vm), &format!("'{}'", vm.name));
        side_effect(case, vm);
    }
    text = text.replace(&format!("{W}/{}", c.home), &home.display().to_string());
    let stdout = cmds::deleting_line(st, args).unwrap_or_default();
    Some((stdout, text, c.exit))
}

fn side_effect(case: &str, vm: &crate::model::Vm) {
    let cfg = Path::new(&vm.cfg_file);
    match case {
        "disk-full" if cfg.exists() => {
            let _ = std::fs::write(cfg, b"");
        }
        "vbox-not-replaceable" => {
            if let Ok(text) = std::fs::read(cfg) {
                let _ = std::fs::write(format!("{}-tmp", vm.cfg_file), text);
            }
        }
        _ => {}
    }
}
