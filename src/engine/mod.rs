//! The engine: applies a plan to a VM. `cmd/` opens the VM ([`mod@open`]),
//! the planners in [`crate::plan`] decide the steps, and this module runs
//! them: the before_fold hook, the settings backup, the journal, each
//! [`Step`] as one VBoxManage call ([`steps`]), then the read-back and the
//! check of what VirtualBox holds, the record of the fold, the start, and
//! the hooks after. A failed step is reported as checked ([`failure`]).
//!
//! Order of a launch, each step guarding the next:
//! 1–4. [`open::open`]: lock, wait for VirtualBox to close, read the VM and
//!    the media registry (one call and the settings file, or two calls when
//!    they cannot be trusted: `vbox::quick`);
//! 5. plan (pure) and pre-flight — or refuse, having changed nothing;
//! 6. execute by UUID: merge own snapshots left over beyond `keep`, take
//!    the new snapshot, record it as vblaunch's, relabel the kept ones,
//!    merge the oldest beyond `keep` into their parents;
//! 7. verify: from the settings file VirtualBox saved (no call), or through
//!    VirtualBox when the file does not confirm it; record the fold;
//! 8. start the VM (launch only); with `wait`, stay until it shuts down,
//!    then fold on exit.
//!
//! Every intermediate state is one the next run understands, because the
//! planner knows vblaunch's snapshots by their marker and record, not their
//! names: after the take, the newest own snapshot is current (labels are
//! repaired next time); a merge that did not finish leaves its snapshot in
//! place (VirtualBox removes it last), and the next run folds it again.
pub mod failure;
pub mod open;
pub mod steps;

use std::time::{Instant, SystemTime};

use anyhow::{Context as _, Result};

use crate::exit::{fail, Code};
use crate::face::Event;
use crate::hooks;
use crate::plan::{self, Plan, RestorePlan, Step};
use crate::snapshots;
use crate::vbox::{Medium, StartType, VBoxManage, VmInfo};
use crate::Context;
use failure::{verified_failure, Run};
pub use open::{open, LockedVm};

/// Whether a fold is followed by starting the VM (a launch) or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    Yes,
    No,
}

fn file_size(p: &std::path::Path) -> Option<u64> {
    std::fs::metadata(p).ok().map(|m| m.len())
}

fn hook_vm(vm: &VmInfo, media: &[Medium]) -> hooks::Vm {
    hooks::Vm {
        name: vm.name.clone(),
        uuid: vm.uuid.clone(),
        dir: vm
            .cfg_file
            .as_ref()
            .and_then(|p| p.parent())
            .map(std::path::Path::to_path_buf)
            .unwrap_or_default(),
        base_disks: snapshots::base_disks(vm, media),
    }
}

/// Run a hook; a failure is a warning (the caller decides for before_fold).
fn hook(eff: &crate::config::Effective, event: hooks::Event, vm: &hooks::Vm) -> Result<()> {
    match eff.hooks.get(event) {
        Some(argv) => hooks::run(event, argv, vm, eff.hooks.timeout),
        None => Ok(()),
    }
}

fn hook_warn(eff: &crate::config::Effective, event: hooks::Event, vm: &hooks::Vm) {
    if let Err(e) = hook(eff, event, vm) {
        log::warn!("{e:#}");
    }
}

/// Wait for the VM's session to end: its state leaves running/paused/…
/// and no process holds its session. Polls, slower as time goes by; rides
/// out a few failures in a row while the VM process closes its session
/// ([`crate::vbox::errors::ErrorKind::SessionClosing`]).
pub fn wait_for_exit(vb: &VBoxManage, uuid: &str, first: std::time::Duration) -> Result<VmInfo> {
    let mut pause = first;
    let mut closing = 0;
    loop {
        let vm = match vb.show_vm_info(uuid) {
            Ok(vm) => vm,
            Err(e)
                if closing < 10
                    && crate::vbox::errors::diagnosis_of(&e).is_some_and(|d| {
                        d.kind == crate::vbox::errors::ErrorKind::SessionClosing
                    }) =>
            {
                closing += 1;
                log::debug!("the VM's session is closing; asking again: {e:#}");
                std::thread::sleep(first);
                continue;
            }
            Err(e) => return Err(e),
        };
        closing = 0;
        if vm.state.allows_fold() && vm.session_name.is_none() {
            return Ok(vm);
        }
        std::thread::sleep(pause);
        pause = (pause * 3 / 2).min(std::time::Duration::from_secs(15));
    }
}

pub fn wait_and_exit(
    ctx: &Context,
    vb: &VBoxManage,
    vm: &VmInfo,
    eff: &crate::config::Effective,
    hook_vm: Option<hooks::Vm>,
) -> Result<()> {
    log::info!(
        "Waiting for VM '{}' to shut down (Ctrl-C stops waiting; the VM keeps running)…",
        vm.name
    );
    ctx.face.event(&Event::Holding);
    let ended = wait_for_exit(vb, &vm.uuid, eff.wait_poll)?;
    log::info!("VM '{}' has stopped (state: {}).", vm.name, ended.state);
    if let Some(h) = &hook_vm {
        hook_warn(eff, hooks::Event::AfterExit, h);
    }
    let folded = eff.fold_on_exit && exit_fold(ctx, &vm.uuid)?;
    ctx.face.event(&Event::SessionEnded { folded });
    Ok(())
}

/// `fold_on_exit`: merge the session into the base right away (no new
/// snapshot). Returns whether it did (and checked it): it skips a VM that
/// was saved, or keeps restore points.
pub fn exit_fold(ctx: &Context, uuid: &str) -> Result<bool> {
    let session = open::open(ctx, uuid)?;
    let LockedVm { vm, media, eff, .. } = &session;
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let policy = plan::Policy::of(eff, &now, false);
    let plan = match plan::plan_exit_fold(vm, media, &policy, &crate::vbox::file_exists) {
        Ok(p) => p,
        Err(r) if r.code() == Code::VmState || policy.keep > 1 => {
            log::info!("{r}");
            return Ok(false);
        }
        Err(r) => return Err(r.into()),
    };
    check_space(vm, media, &plan, eff)?;
    for note in &plan.notes {
        log::info!("{note}");
    }
    let no_own_left = |after: &VmInfo, _: &[Medium], _: Option<&str>| {
        let (own, off) = snapshots::own_snapshots(after, &eff.snapshot_name, false);
        match own.len() + off.len() {
            0 => Ok(()),
            n => Err(format!("{n} vblaunch snapshot(s) remain")),
        }
    };
    let Applied {
        verdict,
        after,
        media_after,
        merged_bytes,
        started: t,
        ..
    } = apply(ctx, &session, &plan, "fold on exit", &no_own_left)?;
    if let Err(problems) = verdict {
        return Err(fail(
            Code::Verification,
            format!(
                "after folding VM '{}' on exit, {problems}; the next launch will look at them again",
                vm.name,
            ),
        ));
    }
    record_fold(ctx, vm, t, merged_bytes, "", 0);
    let h = hook_vm(&after, &media_after);
    log::info!(
        "VM '{}' folded on exit in {:.1} s: its base disk(s) hold today's work: {}",
        vm.name,
        t.elapsed().as_secs_f64(),
        h.base_disks
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    hook_warn(eff, hooks::Event::AfterFold, &h);
    Ok(true)
}

/// What executing a plan left behind, and the caller's check on it.
struct Applied {
    verdict: Result<(), String>,
    taken: Option<String>,
    after: VmInfo,
    media_after: Vec<Medium>,
    merged_bytes: u64,
    started: Instant,
}

/// A caller's verification of the VM after the steps.
/// Its arguments: the VM and media read back, and the UUID of the snapshot
/// the steps took (if any).
type Check<'a> = &'a dyn Fn(&VmInfo, &[Medium], Option<&str>) -> Result<(), String>;

/// Execute a checked plan: the before_fold hook (its failure stops here,
/// nothing changed), the settings backup, the journalled steps, then read
/// the result back and run the caller's `check` on it (see [`read_after`]).
fn apply(
    ctx: &Context,
    session: &LockedVm,
    plan: &Plan,
    run: &str,
    check: Check,
) -> Result<Applied> {
    let LockedVm {
        vb, vm, media, eff, ..
    } = session;
    hook(eff, hooks::Event::BeforeFold, &hook_vm(vm, media)).map_err(|e| {
        e.context(format!(
            "VM '{}': stopping here; nothing was changed",
            vm.name
        ))
    })?;
    let merged = plan.merged();
    let merged_bytes = snapshots::diffs_after(vm, media, &|u| merged.contains(&u))
        .map(|ms| snapshots::bytes_on_disk(&ms, &file_size))
        .unwrap_or(0);
    let started = Instant::now();
    backup_settings(ctx, vm, eff.settings_backups)?;
    let mut journal = crate::state::JournalWriter::start(&ctx.data_dir, &vm.uuid, run, &|u| {
        vm.snapshot(u).is_some()
    })?;
    let taken = execute(ctx, vb, vm, media, plan, &mut journal)?;
    let (after, media_after, verdict) = read_after(vb, vm, check, taken.as_deref())?;
    Ok(Applied {
        verdict,
        taken,
        after,
        media_after,
        merged_bytes,
        started,
    })
}

/// Read back what the steps left and check it. First from the settings file
/// VirtualBox saved before its calls returned (no VBoxManage call: the file
/// is also what survives a power cut); if the file cannot be read, does not
/// hold every attached disk's chain, or fails the check, from VirtualBox
/// itself (one read round), whose verdict then stands.
fn read_after(
    vb: &VBoxManage,
    vm: &VmInfo,
    check: Check,
    taken: Option<&str>,
) -> Result<(VmInfo, Vec<Medium>, Result<(), String>)> {
    let from_file = vm.cfg_file.as_deref().map(|cfg| {
        crate::vbox::settings::read(cfg).and_then(|s| {
            s.complete()?;
            if s.vm.uuid != vm.uuid {
                return Err(format!("the file describes VM {{{}}}", s.vm.uuid));
            }
            Ok(s)
        })
    });
    match from_file {
        Some(Ok(s)) => match check(&s.vm, &s.media, taken) {
            Ok(()) => {
                log::debug!("verified from the settings file");
                return Ok((s.vm, s.media, Ok(())));
            }
            Err(e) => log::info!(
                "the settings file does not show the expected result ({e}); asking VirtualBox"
            ),
        },
        Some(Err(e)) => log::info!("verifying through VirtualBox: {e}"),
        None => log::info!("verifying through VirtualBox: the settings file is unknown"),
    }
    let (after, media) = vb
        .read_vm(&vm.uuid)
        .context("re-reading the VM after the fold")?;
    let verdict = check(&after, &media, taken);
    Ok((after, media, verdict))
}

fn check_space(
    vm: &VmInfo,
    media: &[Medium],
    plan: &Plan,
    eff: &crate::config::Effective,
) -> Result<()> {
    for note in preflight(vm, media, plan, eff)? {
        log::warn!("{note}");
    }
    Ok(())
}

/// The pre-flight checks of a plan against the real file system (see
/// [`plan::preflight`]).
pub fn preflight(
    vm: &VmInfo,
    media: &[Medium],
    plan: &Plan,
    eff: &crate::config::Effective,
) -> Result<Vec<String>, plan::Refusal> {
    let space = plan::Space {
        free: &crate::disk::free,
        writable: &crate::disk::writable,
        size: &file_size,
        margin: eff.merge_margin,
    };
    let leftover = leftover_settings(vm);
    plan::preflight(vm, media, plan, &space, leftover.as_deref())
}

fn record_fold(
    ctx: &Context,
    vm: &VmInfo,
    t: Instant,
    bytes: u64,
    snapshot: &str,
    restore_points: usize,
) {
    let record = crate::state::VmState {
        last_fold: Some(crate::state::LastFold {
            finished: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
            duration_ms: t.elapsed().as_millis() as u64,
            bytes_merged: bytes,
            snapshot: snapshot.to_string(),
            restore_points,
        }),
    };
    if let Err(e) = crate::state::save(&ctx.data_dir, &vm.uuid, &record) {
        log::warn!("could not record the fold for `vblaunch status`: {e:#}");
    }
}

/// The launch's fold (and start). Returns what hooks need to know of the VM
/// after the fold (None for a dry run).
pub fn fold(ctx: &Context, session: &LockedVm, start: Start) -> Result<Option<hooks::Vm>> {
    let start = start == Start::Yes;
    let t0 = Instant::now();
    let LockedVm {
        vb, vm, media, eff, ..
    } = session;
    let now = humantime::format_rfc3339_seconds(SystemTime::now()).to_string();
    let policy = plan::Policy::of(eff, &now, ctx.global.adopt);
    report_interrupted_run(ctx, vm);
    warn_of_known_bugs(ctx);
    let plan = plan::plan(vm, media, &policy, &crate::vbox::file_exists)?;
    check_space(vm, media, &plan, eff)?;
    for note in &plan.notes {
        log::info!("{note}");
    }
    let start_type = eff.start_type;
    if start {
        check_front_end(vb, vm, start_type)?;
    }

    if ctx.global.dry_run {
        steps::print_dry_run(
            &format!(
                "Dry run for VM '{}' {{{}}}: vblaunch would run",
                vm.name, vm.uuid
            ),
            vb,
            vm,
            &plan.steps,
            start.then(|| vb.start_command(&vm.uuid, start_type)),
        );
        return Ok(None);
    }
    let verify = |after: &VmInfo, media: &[Medium], taken: Option<&str>| match taken {
        Some(t) => plan::verify(after, media, t, &eff.snapshot_name, plan.own_after()),
        None => Err("the plan took no snapshot".to_string()),
    };
    let Applied {
        verdict,
        taken,
        after,
        media_after,
        merged_bytes,
        started: t_exec,
    } = apply(ctx, session, &plan, "fold", &verify).map_err(|e| {
        if start {
            e.context(format!("VM '{}' was not started", vm.name))
        } else {
            e
        }
    })?;
    let taken =
        taken.ok_or_else(|| anyhow::anyhow!("internal error: the plan took no snapshot"))?;
    if let Err(problems) = verdict {
        return Err(fail(
            Code::Verification,
            format!(
                "after the fold, VirtualBox does not hold what vblaunch expected for VM '{}': \
                 {problems}.{} Run `vblaunch fold` again to see what it makes of this \
                 state, or look at the snapshot tree in the VirtualBox Manager.",
                vm.name,
                if start {
                    " The VM was not started."
                } else {
                    ""
                }
            ),
        ));
    }
    record_fold(ctx, vm, t_exec, merged_bytes, &taken, plan.own_after() - 1);
    let bases: Vec<String> = snapshots::base_disks(&after, &media_after)
        .iter()
        .map(|p| p.display().to_string())
        .collect();
    log::info!(
        "Folded in {:.1} s. VM '{}' now writes to snapshot '{}' {{{taken}}}; its base disk{} \
         stay{} frozen and safe to back up: {}",
        t0.elapsed().as_secs_f64(),
        vm.name,
        eff.snapshot_name,
        if bases.len() == 1 { "" } else { "s" },
        if bases.len() == 1 { "s" } else { "" },
        bases.join(", ")
    );
    let h = hook_vm(&after, &media_after);
    // The base disks are consistent now and the lock is held: the backup's moment.
    hook_warn(eff, hooks::Event::AfterFold, &h);

    if start {
        ctx.face.event(&Event::Starting);
        vb.start_vm(&vm.uuid, start_type).map_err(|e| {
            fail(
                Code::StartFailed,
                format!(
                    "VM '{}' did not start. The fold was kept: the base disks are consistent and \
                     safe to back up.\n{e:#}",
                    vm.name
                ),
            )
        })?;
        log::info!("Started VM '{}' ({}).", vm.name, start_type.as_str());
        ctx.face.event(&Event::Started {
            start_type: start_type.as_str().to_string(),
        });
        hook_warn(eff, hooks::Event::AfterStart, &h);
    }
    Ok(Some(h))
}

/// Run the plan's steps; returns the UUID of the snapshot taken. When a step
/// fails, the error says what VirtualBox and the files hold now (see
/// [`verified_failure`]), never what the plan hoped.
fn execute(
    ctx: &Context,
    vb: &VBoxManage,
    vm: &VmInfo,
    media: &[Medium],
    plan: &Plan,
    journal: &mut crate::state::JournalWriter,
) -> Result<Option<String>> {
    let mut taken = None;
    for step in &plan.steps {
        let (kind, what) = steps::journal(step);
        if let Some(uuid) = step.merges() {
            let bytes = snapshots::diffs_after(vm, media, &|u| u == uuid)
                .map(|ms| snapshots::bytes_on_disk(&ms, &file_size));
            ctx.face.event(&Event::Merging { bytes });
        }
        if let Step::Take { description, .. } = step {
            if let Some(t) = snapshots::marker_time(description) {
                journal.next_take_marks(t);
            }
        }
        let result = journal.step(
            kind,
            what,
            &vm.uuid,
            step.snapshot(),
            || steps::run(vb, vm, step),
            &crate::vbox::changed_nothing,
        );
        match result {
            Ok(Some(uuid)) => {
                journal.set_snapshot(&uuid);
                if let Err(e) = record_own(vb, vm, plan, &uuid, journal) {
                    return Err(verified_failure(ctx, vb, vm, None, Run::Fold, e));
                }
                taken = Some(uuid);
            }
            Ok(None) => {}
            Err(e) => {
                return Err(verified_failure(ctx, vb, vm, step.merges(), Run::Fold, e));
            }
        }
    }
    Ok(taken)
}

/// Record vblaunch's own snapshots in the VM's extradata right after a take
/// (one journalled `setextradata`): those it had, less those this run has
/// already merged, plus the new one. Kept in the VM's `.vbox`, the record
/// travels with the VM folder, so a snapshot is vblaunch's only when it
/// carries the marker and is recorded (see [`snapshots::is_own`]); a UUID of a
/// snapshot merged later stays until the next record (harmless).
fn record_own(
    vb: &VBoxManage,
    vm: &VmInfo,
    plan: &Plan,
    taken: &str,
    journal: &mut crate::state::JournalWriter,
) -> Result<()> {
    let merged_before: Vec<&str> = plan
        .steps
        .iter()
        .take_while(|s| !matches!(s, Step::Take { .. }))
        .filter_map(Step::merges)
        .collect();
    let mut own: Vec<&str> = plan
        .own_before
        .iter()
        .map(String::as_str)
        .filter(|u| !merged_before.contains(u))
        .collect();
    own.push(taken);
    let value = own.join(" ");
    journal.step(
        "record",
        format!("record vblaunch's snapshots: {value}"),
        &vm.uuid,
        Some(taken),
        || {
            vb.set_extra_data(&vm.uuid, crate::vbox::settings::OWN_KEY, Some(&value))
                .map_err(|e| {
                    e.context(format!(
                        "VM '{}': snapshot {{{taken}}} was taken, but recording it as \
                         vblaunch's failed (the next run knows it from vblaunch's journal)",
                        vm.name
                    ))
                })
        },
        &crate::vbox::changed_nothing,
    )
}

/// `<VM>.vbox-tmp`: VirtualBox's half-written settings after an interrupted save.
pub fn leftover_settings(vm: &VmInfo) -> Option<std::path::PathBuf> {
    crate::vbox::settings::leftover_tmp(vm.cfg_file.as_deref()?)
}

/// Before any change: the program VirtualBox starts the VM with is
/// installed (a fold followed by a start that cannot work helps nobody).
/// Only judged where VirtualBox's installation folder is known.
fn check_front_end(vb: &VBoxManage, vm: &VmInfo, start: StartType) -> Result<()> {
    use crate::platform::Os;
    use crate::vbox::locate;
    let os = Os::current();
    let Some(dir) = locate::install_dir(&vb.exe, os) else {
        log::debug!("VirtualBox's installation folder is unknown; the front end is not checked");
        return Ok(());
    };
    let program = locate::front_end(start, os);
    if dir.join(&program).is_file() {
        return Ok(());
    }
    let (other, package) = match start {
        StartType::Headless => ("gui", "VirtualBox's own installer, which includes it"),
        StartType::Gui | StartType::Separate => (
            "headless",
            "on Debian/Ubuntu the package virtualbox-qt, elsewhere VirtualBox's own installer",
        ),
    };
    Err(fail(
        Code::Refused,
        format!(
            "VM '{}' cannot start with --type {}: VirtualBox's program for it, {}, is not \
             installed in {} (VirtualBox would fail with VERR_FILE_NOT_FOUND after the fold). \
             Install it ({package}), or start the VM another way: `vblaunch --type {other} {}`. \
             Nothing was changed.",
            vm.name,
            start.as_str(),
            program,
            dir.display(),
            crate::process::quote(&vm.name)
        ),
    ))
}

/// Warn when the running VirtualBox has a known defect that can lose data
/// (see [`crate::vbox::known_bugs`]); costs a small file read, no call.
fn warn_of_known_bugs(ctx: &Context) {
    let homes = crate::vbox::locate::user_homes(&|v| ctx.env(v));
    match crate::vbox::known_bugs::running_version(&homes) {
        Some(v) => match crate::vbox::known_bugs::warning(&v) {
            Some(w) => log::warn!("{w}"),
            None => log::debug!("VirtualBox {v}: no known defect"),
        },
        None => log::debug!("VirtualBox's version is unknown here (no VBoxSVC.log)"),
    }
}

/// Say so when the previous run on this VM died in the middle of a step; the
/// plan is made from what VirtualBox holds now, so nothing is repeated blindly.
pub fn report_interrupted_run(ctx: &Context, vm: &VmInfo) {
    match crate::state::load_journal(&ctx.data_dir, &vm.uuid) {
        Ok(j) => {
            // A journal that records another VM (copied, or left by an old
            // version) is not this VM's interrupted step.
            if let Some(e) = j.unfinished().filter(|e| e.vm != vm.uuid) {
                log::warn!(
                    "ignoring the journal of VM {} found in the records of VM '{}' (step \"{}\")",
                    crate::logging::escape(&e.vm),
                    vm.name,
                    e.step
                );
            } else if let Some(e) = j.unfinished() {
                log::warn!(
                    "The last vblaunch {} on VM '{}' was interrupted during \"{}\" (started {}). \
                     vblaunch has re-read what VirtualBox holds and continues from there.",
                    j.run,
                    vm.name,
                    e.step,
                    e.started
                );
            }
        }
        Err(e) => log::warn!("{e:#}"),
    }
}

/// Copy the settings files before the first change of the run.
pub fn backup_settings(ctx: &Context, vm: &VmInfo, keep: usize) -> Result<()> {
    let Some(cfg) = &vm.cfg_file else {
        return Ok(());
    };
    let dir = crate::state::backup_settings(&ctx.data_dir, &vm.uuid, cfg, keep)
        .context("backing up the VM's settings before changing it")?;
    log::debug!("settings backed up to {}", dir.display());
    Ok(())
}

/// Apply a confirmed restore plan: the settings backup, then each step
/// journalled (see [`plan::restore`]).
pub fn restore(ctx: &Context, session: &LockedVm, plan: &RestorePlan) -> Result<()> {
    let LockedVm { vb, vm, eff, .. } = session;
    report_interrupted_run(ctx, vm);
    backup_settings(ctx, vm, eff.settings_backups)?;
    let mut journal =
        crate::state::JournalWriter::start(&ctx.data_dir, &vm.uuid, "restore", &|u| {
            vm.snapshot(u).is_some()
        })?;
    for step in &plan.steps {
        let (kind, what) = steps::journal(step);
        journal
            .step(
                kind,
                what,
                &vm.uuid,
                step.snapshot(),
                || steps::run(vb, vm, step).map(|_| ()),
                &crate::vbox::changed_nothing,
            )
            // What the failed step left, checked, as for a fold.
            .map_err(|e| verified_failure(ctx, vb, vm, step.merges(), Run::Restore, e))?;
    }
    log::info!(
        "VM '{}' is back at '{}' (taken {}); the next launch folds as usual.",
        vm.name,
        plan.target_name,
        plan.taken.as_deref().unwrap_or("unknown")
    );
    Ok(())
}
