//! Opening a VM for a run that changes it: find its UUID, lock it, wait
//! until no VirtualBox front end runs, read the VM and its media. The result
//! ([`LockedVm`]) is where every mutating command starts.
use anyhow::Result;

use crate::config::{Effective, QuickRead};
use crate::exit::{fail, Code};
use crate::face::Event;
use crate::guard::{self, Scanner, WaitPolicy};
use crate::lock::{self, VmLock};
use crate::vbox::{Medium, VBoxManage, VmInfo};
use crate::Context;

/// A VM read under its locks, with VirtualBox closed: the start of every
/// command that changes a VM.
pub struct LockedVm {
    pub vb: VBoxManage,
    pub vm: VmInfo,
    pub media: Vec<Medium>,
    pub eff: Effective,
    _locks: Vec<VmLock>,
}

impl LockedVm {
    /// Let other vblaunch runs work on the VM again (e.g. while `--wait` waits).
    pub fn release(self) -> (VBoxManage, VmInfo, Effective) {
        (self.vb, self.vm, self.eff)
    }
}

fn guard_policy(ctx: &Context, eff: &Effective) -> WaitPolicy {
    WaitPolicy {
        no_wait: ctx.global.no_wait,
        timeout: eff.wait_timeout,
        poll: std::time::Duration::from_millis(1000),
    }
}

/// The VM's identity: its UUID, for a name or a UUID. A UUID is taken as
/// given (normalized); a name is looked up in `list vms`, and refused when
/// two registered VMs have it (VirtualBox would silently pick the first).
/// An unknown name is [`Code::VmNotFound`] listing the registered VMs, and
/// no VBoxManage call ever sees it as an option (`-x`).
pub fn resolve_uuid(
    vb: &VBoxManage,
    vm_arg: &str,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Result<String> {
    if crate::vbox::state::is_uuid(vm_arg) {
        return Ok(vm_arg
            .trim_matches(|c| c == '{' || c == '}')
            .to_ascii_lowercase());
    }
    let vms = vb.list_vms()?;
    let mut matches: Vec<&(String, String)> = vms.iter().filter(|(n, _)| n == vm_arg).collect();
    if matches.is_empty() {
        // Windows: VBoxManage prints `?` for a character the ANSI code page
        // lacks ("Jürgen 開発" → "Jürgen ??"). Such a name is the VM's only
        // if its settings file (UTF-8) says so.
        matches = vms
            .iter()
            .filter(|(n, u)| {
                n.contains('?')
                    && crate::vbox::lossy::matches(n, vm_arg)
                    && settings_name(u, env).as_deref() == Some(vm_arg)
            })
            .collect();
    }
    match matches.as_slice() {
        [(_, uuid)] => Ok(uuid.clone()),
        [] => Err(fail(
            Code::VmNotFound,
            match inaccessible_named(&vms, vm_arg, env) {
                Some((uuid, cfg)) => inaccessible_message(vm_arg, &uuid, &cfg),
                None => format!(
                    "VirtualBox has no VM named '{}' (names are case-sensitive; a UUID works too). {}",
                    crate::logging::escape(vm_arg),
                    crate::vbox::describe_registered(&vms)
                ),
            },
        )),
        many => {
            let list: Vec<String> = many.iter().map(|(_, u)| format!("  {u}")).collect();
            Err(fail(
                Code::VmNotFound,
                format!(
                    "{} registered VMs are named '{}':\n{}\nvblaunch does not guess which one \
                     you mean; pass its UUID instead (e.g. `vblaunch fold {}`). Nothing was changed.",
                    many.len(),
                    crate::logging::escape(vm_arg),
                    list.join("\n"),
                    many[0].1
                ),
            ))
        }
    }
}

/// Add to `vm.recorded_own` the marked snapshots vblaunch's journal knows it
/// took but could not record (a completed take's UUID, or the marker time
/// of a take that never reported back); returns those added. A VM without
/// any record (an older vblaunch) is left as it is.
pub fn add_journal_takes(data_dir: &std::path::Path, vm: &mut VmInfo) -> Vec<String> {
    let Some(recorded) = vm.recorded_own.clone() else {
        return Vec::new();
    };
    let (uuids, times) = crate::state::journal_takes(data_dir, &vm.uuid);
    let missing: Vec<String> = vm
        .snapshots
        .iter()
        .filter(|s| {
            crate::snapshots::is_marked(s)
                && !recorded.contains(&s.uuid)
                && (uuids.contains(&s.uuid)
                    || crate::snapshots::taken_at(s).is_some_and(|t| times.iter().any(|x| x == t)))
        })
        .map(|s| s.uuid.clone())
        .collect();
    if !missing.is_empty() {
        vm.recorded_own = Some(
            recorded
                .into_iter()
                .chain(missing.iter().cloned())
                .collect(),
        );
    }
    missing
}

/// The UUID of the one registered VM named `name`, from VirtualBox.xml's
/// registry and each VM's settings file, without a VBoxManage call. None
/// (then `list vms` decides) unless every registered VM's file could be read
/// and exactly one has that name: an unreadable file could be that VM, or a
/// second one with the same name.
fn resolve_from_files(
    name: &str,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<String> {
    let homes = crate::vbox::locate::user_homes(env);
    let registry = crate::vbox::settings::machine_registry(&homes).ok()??;
    let mut found = None;
    for (uuid, cfg) in registry {
        let s = crate::vbox::settings::read(&cfg).ok()?;
        if s.vm.name == name {
            if found.is_some() {
                return None;
            }
            found = Some(uuid);
        }
    }
    found
}

/// The VM's name as its settings file holds it (found through VirtualBox.xml).
fn settings_name(uuid: &str, env: &dyn Fn(&str) -> Option<std::ffi::OsString>) -> Option<String> {
    let homes = crate::vbox::locate::user_homes(env);
    let cfg = crate::vbox::quick::settings_path(&homes, &uuid.to_ascii_lowercase()).ok()?;
    crate::vbox::settings::read(&cfg).ok().map(|s| s.vm.name)
}

/// VM `name` {`uuid`} is registered, but VirtualBox cannot load it.
fn inaccessible_message(name: &str, uuid: &str, cfg: &std::path::Path) -> String {
    format!(
        "VM '{}' {{{uuid}}} is registered but inaccessible: VirtualBox cannot load its settings \
         {} (the file is damaged or missing, or a disk image it names cannot be found), so it no \
         longer knows the VM's name. Run `vblaunch doctor {}` to see why and what restores it. \
         Nothing was changed.",
        crate::logging::escape(name),
        cfg.display(),
        crate::process::quote(name)
    )
}

/// An inaccessible registered VM whose settings file is named after `name`
/// (VirtualBox names it `<VM name>.vbox`), from VirtualBox.xml's registry:
/// the VM the user means when VirtualBox no longer knows its name.
fn inaccessible_named(
    vms: &[(String, String)],
    name: &str,
    env: &dyn Fn(&str) -> Option<std::ffi::OsString>,
) -> Option<(String, std::path::PathBuf)> {
    let broken: Vec<&str> = vms
        .iter()
        .filter(|(n, _)| n == "<inaccessible>")
        .map(|(_, u)| u.as_str())
        .collect();
    if broken.is_empty() {
        return None;
    }
    let homes = crate::vbox::locate::user_homes(env);
    let registry = crate::vbox::settings::machine_registry(&homes).ok()??;
    registry.into_iter().find(|(uuid, cfg)| {
        broken.iter().any(|b| b.eq_ignore_ascii_case(uuid))
            && cfg.file_stem().is_some_and(|s| s == name)
    })
}

/// 1. find the VM's UUID and lock it: a second vblaunch for the same VM,
///    named either way, exits at once. The lock comes before the read that
///    the plan uses, so no run plans on what another one is changing;
/// 2. guard: wait until no VirtualBox front end runs (a dry run only warns);
/// 3. read the VM (by UUID) and the media registry (concurrently with the
///    first scan of step 2; used only if that scan found VirtualBox closed).
pub fn open(ctx: &Context, vm_arg: &str) -> Result<LockedVm> {
    let eff0 = ctx.effective(&[vm_arg]);
    let vb = ctx.vbox(&eff0)?;
    let env = |v: &str| ctx.env(v);
    // A name is resolved from the files VirtualBox keeps (no VBoxManage call)
    // when they answer it unambiguously; else by `list vms`.
    let by_name = (!crate::vbox::state::is_uuid(vm_arg)).then_some(vm_arg);
    let uuid = match by_name.and_then(|n| resolve_from_files(n, &env)) {
        Some(u) => u,
        None => resolve_uuid(&vb, vm_arg, &env)?,
    };
    let locks = vec![lock::acquire(&ctx.locks_dir(), &uuid, vm_arg)?];
    let vm_arg = uuid.as_str();
    let mut scanner = Scanner::new()?;
    let check = |scanner: &mut Scanner, eff: &Effective| -> Result<()> {
        if ctx.global.dry_run {
            let running = scanner.scan(&eff.guard_processes)?;
            if !running.is_empty() {
                log::warn!(
                    "VirtualBox is running ({}); a real run would wait for it to close.",
                    crate::guard::describe(&running)
                );
            }
            Ok(())
        } else {
            let watch = |w: guard::Waiting| {
                ctx.face.event(&match w {
                    guard::Waiting::Running(front_ends) => Event::WaitingForVirtualBox {
                        front_ends: front_ends.to_string(),
                    },
                    guard::Waiting::Closed => Event::VirtualBoxClosed,
                });
                if ctx.face.cancelled() {
                    guard::Keep::Cancel
                } else {
                    guard::Keep::Waiting
                }
            };
            guard::wait_until_closed(
                scanner,
                &eff.guard_processes,
                &guard_policy(ctx, eff),
                &watch,
            )
        }
    };
    // The quick read (one call + the settings file, `vbox::quick`) leaves an
    // idle session on a powered-off VM to the scan, so it is used only with a
    // scan that watched every default front end and found none: the scan
    // that runs alongside it, or the wait before it, both with `eff0`'s list.
    // (A VM's own table found later may watch fewer; that does not undo
    // what this scan saw.)
    let homes = crate::vbox::locate::user_homes(&|v| ctx.env(v));
    let quick = |eff: &Effective| match eff.quick_read {
        QuickRead::Auto => guard::covers_defaults(&eff.guard_processes),
        QuickRead::Always => true,
        QuickRead::Never => false,
    };
    let read = |eff: &Effective| {
        if quick(eff) {
            vb.read_vm_quick(vm_arg, &homes)
        } else {
            vb.read_vm(vm_arg)
        }
    };
    // The first scan and the read are independent and read-only, so they run
    // concurrently (the scan takes a few ms with hundreds of processes). The
    // read counts only if that scan found no front end; otherwise it is
    // dropped, and made again once VirtualBox is closed.
    let (scan, early) = std::thread::scope(|s| {
        let read = s.spawn(|| read(&eff0));
        let scan = scanner.scan(&eff0.guard_processes);
        (scan, read.join())
    });
    let early = early.map_err(|_| anyhow::anyhow!("internal error: the read thread panicked"))?;
    // Resolved by name from the files: an inaccessible VM is named as asked.
    let named = |e: anyhow::Error| match by_name {
        Some(name)
            if crate::vbox::errors::diagnosis_of(&e)
                .is_some_and(|d| d.kind == crate::vbox::errors::ErrorKind::Inaccessible) =>
        {
            let homes = crate::vbox::locate::user_homes(&env);
            match crate::vbox::quick::settings_path(&homes, &uuid) {
                Ok(cfg) => fail(Code::VmNotFound, inaccessible_message(name, &uuid, &cfg)),
                Err(_) => e,
            }
        }
        _ => e,
    };
    let (vm, media) = match scan {
        Ok(running) if running.is_empty() => early.map_err(named)?,
        _ => {
            check(&mut scanner, &eff0)?;
            if ctx.global.dry_run {
                // A dry run does not wait: VirtualBox may still be open.
                vb.read_vm(vm_arg).map_err(named)?
            } else {
                read(&eff0).map_err(named)?
            }
        }
    };
    let keys = [vm_arg, vm.name.as_str(), vm.uuid.as_str()];
    let eff = ctx.effective(&keys);
    if let Some((name, _)) = ctx.config.vm_table(&keys) {
        log::debug!("using [vm.\"{name}\"] from {}", ctx.config_path.display());
    }
    if vm.uuid != uuid {
        anyhow::bail!(
            "VirtualBox answered for VM {{{}}} when asked for {{{uuid}}}; nothing was changed",
            vm.uuid
        );
    }
    if let Some(name) = by_name.filter(|n| *n != vm.name) {
        // The files said {uuid} is named so; VirtualBox says otherwise (renamed
        // meanwhile). The lock is on the wrong VM's identity: stop.
        return Err(fail(
            Code::LockHeld,
            format!(
                "VM {{{uuid}}} was renamed from '{}' to '{}' while vblaunch started; nothing was \
                 changed. Run vblaunch again.",
                crate::logging::escape(name),
                crate::logging::escape(&vm.name)
            ),
        ));
    }
    // Takes vblaunch's journal knows count as recorded: a run that died
    // between a take and its record (see fold::record_own).
    let mut vm = vm;
    let missing = add_journal_takes(&ctx.data_dir, &mut vm);
    // Repair the record now (before any step of this run), so that a second
    // interruption cannot lose what the journal knew.
    if !missing.is_empty() && !ctx.global.dry_run {
        let own: Vec<&str> = vm
            .snapshots
            .iter()
            .filter(|s| crate::snapshots::is_own(&vm, s))
            .map(|s| s.uuid.as_str())
            .collect();
        log::info!(
            "Recording snapshot(s) {} as vblaunch's: an earlier run took them and was \
             interrupted before it could record them.",
            missing.join(", ")
        );
        vb.set_extra_data(
            &vm.uuid,
            crate::vbox::settings::OWN_KEY,
            Some(&own.join(" ")),
        )?;
    }
    // A per-VM table found only by the VM's real name/UUID may name other front ends.
    if eff.guard_processes != eff0.guard_processes {
        check(&mut scanner, &eff)?;
    }
    Ok(LockedVm {
        vb,
        vm,
        media,
        eff,
        _locks: locks,
    })
}
