//! `createmedium` (`createhd`), `showmediuminfo` (`showhdinfo`) and
//! `closemedium` on the media registry, and the medium helpers other commands
//! use: "medium not found" errors, a differencing chain's missing file, and the
//! medium files themselves (which hold only the medium's written bytes).

use std::fs;
use std::path::Path;

use anyhow::Result;

use super::{abs_path, err, parse, s, strip_braces, Parsed};
use crate::info;
use crate::model::{self, is_uuid, new_uuid, Attachment, Medium, State};
use crate::{unsupported, Out, PROGRESS};

const D_MEDIUM_FILE: &str =
    "Details: code VBOX_E_FILE_ERROR (0x80bb0004), component MediumWrap, interface IMedium, callee nsISupports";
const D_MEDIUM_IN_USE: &str =
    "Details: code VBOX_E_OBJECT_IN_USE (0x80bb000c), component MediumWrap, interface IMedium, callee nsISupports";
const OPEN_MEDIUM_CTX: &str = "Context: \"OpenMedium(Bstr(pszFilenameOrUuid).raw(), enmDevType, enmAccessMode, fForceNewUuidOnOpen, pMedium.asOutParam())\" at line 197 of file VBoxManageDisk.cpp";
const CLOSE_CTX: &str = "Context: \"Close()\" at line 1877 of file VBoxManageDisk.cpp";

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

pub(super) fn medium_not_found(arg: &str) -> Out {
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

pub(super) fn showmediuminfo(st: &State, args: &[String]) -> Out {
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

pub(super) fn createmedium(st: &mut State, legacy: bool, args: &[String]) -> Result<Out> {
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

pub(super) fn closemedium(st: &mut State, args: &[String]) -> Out {
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

/// The first missing file in the chain of a medium (leaf to base).
pub(super) fn missing_in_chain(st: &State, uuid: &str) -> Option<String> {
    st.chain(uuid)
        .into_iter()
        .map(|i| st.media[i].location.clone())
        .find(|loc| !Path::new(loc).is_file())
}

/// The first missing file in the chains of `atts`' media: a VM (or a
/// snapshot) with it cannot be started, snapshotted or restored.
pub(super) fn missing_file(st: &State, atts: &[Attachment]) -> Option<String> {
    atts.iter().find_map(|a| missing_in_chain(st, &a.medium))
}

/// VirtualBox's error lines for a medium file it could not open.
pub(super) fn could_not_open(path: &str) -> Vec<String> {
    vec![
        format!("Could not open the medium '{path}'."),
        format!("VD: error VERR_FILE_NOT_FOUND opening image file '{path}' (VERR_FILE_NOT_FOUND)"),
        s("Details: code NS_ERROR_FAILURE (0x80004005), component MediumWrap, interface IMedium"),
    ]
}

/// A new medium file with nothing written on it yet.
pub(super) fn create_empty_medium(path: &str) -> Result<()> {
    model::write_blocks(path, &model::Blocks::new())
}

/// How many bytes were written on a medium (its file holds just those).
pub(super) fn written_size(path: &str) -> usize {
    model::read_blocks(path).map(|b| b.len()).unwrap_or(0)
}
