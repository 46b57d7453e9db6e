//! `vblaunch doctor <VM> [--fix] [--yes]`: a read-only diagnosis that prints
//! each check as `ok`, `warn` or `FAIL` with its evidence and, for each
//! failure, the exact recovery. `--fix` performs only repairs that cannot lose
//! data, each confirmed (`--yes`: without asking), each backing up the
//! settings file it changes first:
//! - a leftover `<vm>.vbox-tmp` is moved into vblaunch's settings backups;
//! - a differencing image missing from VirtualBox's media registry whose file
//!   is still in the Snapshots folder is opened again (`showmediuminfo`) and
//!   the VM's settings saved (`setextradata`), so VirtualBox records it;
//! - a stale settings file (its current-state image is gone, while an
//!   unregistered image in the Snapshots folder is the child of the same
//!   parent) gets that image attached back (`storageattach`);
//! - an inaccessible VM whose own fixes do not apply gets the newest settings
//!   copy (vblaunch's backups, `.vbox-prev`) whose every disk image exists and
//!   that leaves no image in the Snapshots folder unaccounted for;
//! - an interrupted fold is finished by running the fold again.
//!
//! A VM VirtualBox cannot read (inaccessible) is still diagnosed: its UUID and
//! settings file come from `list vms --long`, VirtualBox.xml, or vblaunch's
//! own data folder.
mod fix;

use std::io::{BufRead, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Result;

use crate::exit::{fail, Code};
use crate::vbox::media::{self, Medium};
use crate::vbox::settings::refs as settings_refs;
use crate::vbox::{VBoxManage, VmInfo};
use crate::Context;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// VM name or UUID
    pub vm: String,
    /// Perform the fixes that cannot lose data, each after confirmation (--yes: without asking)
    #[arg(long)]
    pub fix: bool,
    /// With --fix: do not ask before each fix
    #[arg(long)]
    pub yes: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Level {
    Ok,
    Warn,
    Fail,
}

/// A repair `--fix` may perform.
#[derive(Debug, Clone)]
enum Fix {
    /// Move `<vm>.vbox-tmp` into the settings backups.
    MoveTmp { tmp: PathBuf },
    /// Open images VirtualBox's registry lost, then save the VM's settings.
    OpenMedia { paths: Vec<PathBuf> },
    /// Attach an unregistered image (the real current state) in place of a
    /// missing one the stale settings name.
    Relink {
        controller: String,
        port: u32,
        device: u32,
        orphan: PathBuf,
        missing: String,
    },
    /// Put a good settings copy in place of the current settings file.
    RestoreSettings { from: PathBuf },
    /// Run the fold again.
    Fold,
}

#[derive(Debug, Clone)]
struct Check {
    level: Level,
    name: String,
    evidence: String,
    /// The exact recovery, printed under a warning or failure.
    recovery: Option<String>,
    fix: Option<Fix>,
}

fn check(level: Level, name: &str, evidence: impl Into<String>) -> Check {
    Check {
        level,
        name: name.to_string(),
        evidence: evidence.into(),
        recovery: None,
        fix: None,
    }
}

impl Check {
    fn recovery(mut self, text: impl Into<String>) -> Check {
        self.recovery = Some(text.into());
        self
    }
    fn fix(mut self, fix: Fix) -> Check {
        self.fix = Some(fix);
        self
    }
}

fn print_check(c: &Check) {
    let tag = match c.level {
        Level::Ok => "ok  ",
        Level::Warn => "warn",
        Level::Fail => "FAIL",
    };
    println!("{tag} {}: {}", c.name, c.evidence);
    if let Some(r) = &c.recovery {
        let mut lines = r.lines();
        if let Some(first) = lines.next() {
            println!("  fix: {first}");
        }
        for l in lines {
            println!("       {l}");
        }
    }
}

/// What is known about the VM, readable or not.
struct Target {
    /// The name the user gave (or VirtualBox's name when readable).
    label: String,
    uuid: Option<String>,
    cfg: Option<PathBuf>,
    /// VirtualBox's view when it can read the VM.
    info: Option<VmInfo>,
    /// Why VirtualBox cannot read it.
    access_error: Option<String>,
}

pub fn run(ctx: &Context, args: Args) -> Result<()> {
    let (checks, target) = diagnose(ctx, &args.vm)?;
    // Failures that the fold itself repairs (an incomplete merge) do not
    // stop the fold; any other failure does.
    let blocking = checks
        .iter()
        .filter(|c| c.level == Level::Fail && !matches!(c.fix, Some(Fix::Fold)))
        .count();
    let fixable: Vec<&Check> = checks.iter().filter(|c| c.fix.is_some()).collect();
    if args.fix && !fixable.is_empty() {
        let mut done = 0;
        for c in &fixable {
            let fix = c.fix.as_ref().expect("filtered");
            if matches!(fix, Fix::Fold) && blocking > 0 {
                println!(
                    "not finishing the interrupted fold: fix the failures above first, then run `vblaunch fold {}`",
                    crate::process::quote(&args.vm)
                );
                continue;
            }
            println!();
            println!("{}: {}", c.name, fix::describe(fix, &target));
            if !confirm(&args)? {
                continue;
            }
            match fix::apply(ctx, &args.vm, &target, target.info.as_ref(), fix) {
                Ok(msg) => {
                    println!("fixed: {msg}");
                    done += 1;
                }
                Err(e) => {
                    println!("the fix failed: {e:#}");
                    if c.recovery.is_some() {
                        println!(
                            "To recover by hand, follow the \"fix:\" steps printed above for \"{}\".",
                            c.name
                        );
                    }
                    log::warn!("doctor fix failed: {e:#}");
                }
            }
        }
        if done > 0 {
            println!();
            println!("Checking again after {done} fix(es):");
            let (again, _) = diagnose(ctx, &args.vm)?;
            return finish(&again, &args.vm);
        }
    } else if !args.fix && !fixable.is_empty() {
        println!(
            "`vblaunch doctor {} --fix` can repair {} of these without risking data (it asks first).",
            crate::process::quote(&args.vm),
            fixable.len()
        );
    }
    if target.uuid.is_none() && target.info.is_none() {
        return Err(fail(
            Code::VmNotFound,
            format!(
                "VirtualBox has no VM '{}' and vblaunch has no record of one; nothing to check \
                 (names are case-sensitive; `vblaunch list` shows the registered VMs)",
                crate::logging::escape(&args.vm)
            ),
        ));
    }
    finish(&checks, &args.vm)
}

fn finish(checks: &[Check], vm: &str) -> Result<()> {
    let fails = checks.iter().filter(|c| c.level == Level::Fail).count();
    if fails > 0 {
        return Err(fail(
            Code::Refused,
            format!(
                "vblaunch doctor found {fails} problem(s) with VM '{vm}'; each FAIL line above says how to recover"
            ),
        ));
    }
    Ok(())
}

/// Ask before a fix. Without a terminal and without --yes, only say what would be done.
fn confirm(args: &Args) -> Result<bool> {
    if args.yes {
        return Ok(true);
    }
    if !std::io::stdin().is_terminal() {
        println!("(not done: no terminal to ask; run with --yes to do it)");
        return Ok(false);
    }
    print!("Fix this? [y/N] ");
    std::io::stdout().flush()?;
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line)?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes"))
}

fn join_paths(paths: &[PathBuf]) -> String {
    paths
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

// ---------------------------------------------------------------------------
// Diagnosis

fn diagnose(ctx: &Context, vm_arg: &str) -> Result<(Vec<Check>, Target)> {
    let mut checks = Vec::new();
    let emit = |c: Check, checks: &mut Vec<Check>| {
        print_check(&c);
        checks.push(c);
    };
    let eff0 = ctx.config.effective(&[vm_arg]);
    let vb = match ctx.vbox(&eff0) {
        Ok(vb) => vb,
        Err(e) => {
            emit(
                check(Level::Fail, "VBoxManage", format!("{e:#}")).recovery(
                    "install VirtualBox, or point vblaunch at VBoxManage with --vboxmanage PATH, \
                     VBLAUNCH_VBOXMANAGE or `vboxmanage = \"…\"` in the config file",
                ),
                &mut checks,
            );
            let t = Target {
                label: vm_arg.to_string(),
                uuid: None,
                cfg: None,
                info: None,
                access_error: None,
            };
            return Ok((checks, t));
        }
    };
    match vb.version() {
        Ok(v) => {
            emit(
                check(
                    Level::Ok,
                    "VBoxManage",
                    format!("{} (version {v})", vb.exe.display()),
                ),
                &mut checks,
            );
            let c = match crate::vbox::known_bugs::warning(&v) {
                Some(w) => check(Level::Fail, "known VirtualBox defects", w)
                    .recovery("upgrade VirtualBox before the next launch"),
                None => check(
                    Level::Ok,
                    "known VirtualBox defects",
                    format!("none known in {v}"),
                ),
            };
            emit(c, &mut checks);
        }
        Err(e) => emit(
            check(
                Level::Fail,
                "VBoxManage",
                format!("{} does not run: {e:#}", vb.exe.display()),
            )
            .recovery("reinstall VirtualBox, or point --vboxmanage at a working VBoxManage"),
            &mut checks,
        ),
    }

    let target = locate(ctx, &vb, vm_arg);
    let eff = {
        let mut keys = vec![vm_arg];
        if let Some(i) = &target.info {
            keys.push(&i.name);
        }
        if let Some(u) = &target.uuid {
            keys.push(u);
        }
        ctx.config.effective(&keys)
    };
    let media = vb.list_hdds().unwrap_or_default();

    // Registered and accessible.
    match (&target.info, &target.uuid) {
        (Some(vm), _) => emit(
            check(
                Level::Ok,
                "VM registered and accessible",
                format!(
                    "'{}' {{{}}}, settings {}",
                    vm.name,
                    vm.uuid,
                    vm.cfg_file
                        .as_ref()
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "unknown".into())
                ),
            ),
            &mut checks,
        ),
        (None, Some(uuid)) => {
            let c = inaccessible_check(ctx, &vb, &target, uuid, &media);
            emit(c, &mut checks);
        }
        (None, None) => {
            let known = match vb.list_vms() {
                Ok(v) => v
                    .iter()
                    .map(|(n, u)| format!("'{n}' {{{u}}}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                Err(e) => format!("(could not list them: {e})"),
            };
            emit(
                check(
                    Level::Fail,
                    "VM registered",
                    format!(
                        "VirtualBox has no VM '{vm_arg}' and vblaunch has no record of one by that \
                         name. Registered VMs: {}",
                        if known.is_empty() { "none".into() } else { known }
                    ),
                )
                .recovery(format!(
                    "check the name (case-sensitive; a UUID works too). If the VM was removed from \
                     VirtualBox but its folder still exists, register it again: `VBoxManage \
                     registervm \"/path/to/{vm_arg}/{vm_arg}.vbox\"` (or Machine > Add in the \
                     VirtualBox Manager)"
                )),
                &mut checks,
            );
        }
    }

    if let Some(vm) = &target.info {
        for c in readable_checks(ctx, vm, &media, &eff) {
            emit(c, &mut checks);
        }
    }
    if let Some(uuid) = &target.uuid {
        for c in record_checks(ctx, &target, uuid, vm_arg, &eff) {
            emit(c, &mut checks);
        }
    }
    // VirtualBox processes and vblaunch locks.
    match crate::guard::Scanner::new().and_then(|mut s| s.scan(&eff.guard_processes)) {
        Ok(running) if running.is_empty() => emit(
            check(
                Level::Ok,
                "VirtualBox processes",
                format!("none of {} running", eff.guard_processes.join(", ")),
            ),
            &mut checks,
        ),
        Ok(running) => emit(
            check(
                Level::Warn,
                "VirtualBox processes",
                format!(
                    "running: {} (a launch waits for them; --fix needs them closed)",
                    crate::guard::describe(&running)
                ),
            ),
            &mut checks,
        ),
        Err(e) => emit(
            check(Level::Warn, "VirtualBox processes", format!("{e:#}")),
            &mut checks,
        ),
    }
    let mut keys = vec![vm_arg.to_string()];
    keys.extend(target.uuid.clone());
    if let Some(i) = &target.info {
        keys.push(i.name.clone());
    }
    if keys
        .iter()
        .any(|k| crate::lock::is_held(&ctx.locks_dir(), k))
    {
        emit(
            check(
                Level::Warn,
                "vblaunch lock",
                "another vblaunch is working on this VM right now; its checks may change under it",
            ),
            &mut checks,
        );
    }
    Ok((checks, target))
}

/// Find the VM: VirtualBox's view if it can read it, else its UUID and
/// settings file from `list vms --long`, VirtualBox.xml, or vblaunch's records.
fn locate(ctx: &Context, vb: &VBoxManage, vm_arg: &str) -> Target {
    let first_error = match vb.show_vm_info(vm_arg) {
        Ok(info) => {
            return Target {
                label: info.name.clone(),
                uuid: Some(info.uuid.clone()),
                cfg: info.cfg_file.clone(),
                info: Some(info),
                access_error: None,
            }
        }
        Err(e) => format!("{e:#}"),
    };
    let mut uuid = crate::config::looks_like_uuid(vm_arg)
        .then(|| vm_arg.trim_matches(['{', '}']).to_lowercase());
    let mut cfg = None;
    let mut access_error = None;
    // `list vms --long`: blocks of `Name:` / `UUID:` / `Config file:`.
    if let Ok((out, err)) = vb.list_vms_long() {
        for (u, c) in parse_long_vms(&out) {
            if uuid.as_deref() == Some(u.as_str())
                || (uuid.is_none() && c.file_stem().is_some_and(|s| s == vm_arg))
            {
                uuid = Some(u);
                cfg = Some(c);
                break;
            }
        }
        let errs = crate::vbox::errors::error_lines(&err);
        if !errs.is_empty() {
            access_error = Some(errs.join("\n"));
        }
    }
    // VirtualBox.xml's machine registry.
    if cfg.is_none() {
        for (u, c) in machine_entries(ctx) {
            if uuid.as_deref() == Some(u.as_str())
                || (uuid.is_none() && c.file_stem().is_some_and(|s| s == vm_arg))
            {
                uuid = Some(u);
                cfg = Some(c);
                break;
            }
        }
    }
    // vblaunch's own records: settings backups named after the VM.
    if uuid.is_none() {
        uuid = uuid_from_backups(ctx, vm_arg);
    }
    // Still registered (inaccessible) under that UUID?
    let registered = match (&uuid, vb.list_vms()) {
        (Some(u), Ok(vms)) => vms.iter().any(|(_, x)| x == u),
        _ => false,
    };
    if !registered && cfg.is_none() {
        // Not registered at all.
        return Target {
            label: vm_arg.to_string(),
            uuid: None,
            cfg: None,
            info: None,
            access_error: Some(first_error),
        };
    }
    if let (Some(u), None) = (&uuid, &cfg) {
        cfg = machine_entries(ctx)
            .into_iter()
            .find(|(x, _)| x == u)
            .map(|(_, c)| c);
    }
    Target {
        label: vm_arg.to_string(),
        uuid,
        cfg,
        info: None,
        access_error: access_error.or(Some(first_error)),
    }
}

fn parse_long_vms(text: &str) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    let mut uuid: Option<String> = None;
    for line in text.lines() {
        if let Some(v) = line.strip_prefix("UUID:") {
            uuid = Some(v.trim().to_lowercase());
        } else if let Some(v) = line.strip_prefix("Config file:") {
            if let Some(u) = uuid.take() {
                out.push((u, PathBuf::from(v.trim())));
            }
        }
    }
    out
}

/// `<MachineEntry uuid="{…}" src="…"/>` of VirtualBox.xml: (uuid, settings file).
fn machine_entries(ctx: &Context) -> Vec<(String, PathBuf)> {
    let homes = crate::vbox::locate::user_homes(&|v| ctx.env(v));
    crate::vbox::settings::machine_registry(&homes)
        .unwrap_or_else(|e| {
            log::warn!("{e}");
            None
        })
        .unwrap_or_default()
}

fn uuid_from_backups(ctx: &Context, vm_arg: &str) -> Option<String> {
    let file = format!("{vm_arg}.vbox");
    let rd = std::fs::read_dir(ctx.data_dir.join("vms")).ok()?;
    for e in rd.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if !crate::config::looks_like_uuid(&name) {
            continue;
        }
        if crate::state::settings_backups(&ctx.data_dir, &name)
            .iter()
            .any(|d| d.join(&file).is_file())
        {
            return Some(name);
        }
    }
    None
}

/// The `.vdi` files of a folder.
fn vdi_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("vdi")))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A VDI file's own UUID and its parent's (None for a base image).
type VdiIds = (String, Option<String>);

/// A VDI file's ids, from its header.
fn vdi_ids(path: &Path) -> Option<VdiIds> {
    let mut f = std::fs::File::open(path).ok()?;
    let mut h = [0u8; 0x1c8];
    f.read_exact(&mut h).ok()?;
    if h[0x40..0x44] != [0x7f, 0x10, 0xda, 0xbe] {
        return None;
    }
    let uuid = |o: usize| {
        let b = &h[o..o + 16];
        format!(
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3], b[2], b[1], b[0], b[5], b[4], b[7], b[6], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]
        )
    };
    let parent = uuid(0x1a8);
    let parent = (parent != "00000000-0000-0000-0000-000000000000").then_some(parent);
    Some((uuid(0x188), parent))
}

/// The failure for a VM VirtualBox cannot read, with the repair that fits.
fn inaccessible_check(
    ctx: &Context,
    vb: &VBoxManage,
    t: &Target,
    uuid: &str,
    media: &[Medium],
) -> Check {
    let name = "VM registered and accessible";
    let err = t.access_error.clone().unwrap_or_default();
    let Some(cfg) = &t.cfg else {
        return check(
            Level::Fail,
            name,
            format!("VM {{{uuid}}} is registered but inaccessible, and its settings file is unknown. VirtualBox said: {err}"),
        )
        .recovery("open the VirtualBox Manager: it shows the VM's settings file and why it cannot be read");
    };
    let text = match std::fs::read_to_string(cfg) {
        Ok(t) => t,
        Err(e) => {
            let mut c = check(
                Level::Fail,
                name,
                format!(
                    "VM {{{uuid}}} is inaccessible: its settings file {} cannot be read ({e})",
                    cfg.display()
                ),
            )
            .recovery(restore_steps(ctx, uuid, cfg));
            if let Some(from) = good_settings_copy(ctx, uuid, cfg, media) {
                c = c.fix(Fix::RestoreSettings { from });
            }
            return c;
        }
    };
    let refs = match settings_refs(&text, cfg) {
        Ok(r) => r,
        Err(e) => {
            let mut c = check(
                Level::Fail,
                name,
                format!("VM {{{uuid}}} is inaccessible: its settings file {e}"),
            )
            .recovery(restore_steps(ctx, uuid, cfg));
            if let Some(from) = good_settings_copy(ctx, uuid, cfg, media) {
                c = c.fix(Fix::RestoreSettings { from });
            }
            return c;
        }
    };
    let known: Vec<&str> = refs
        .registry
        .iter()
        .map(|(u, _)| u.as_str())
        .chain(media.iter().map(|m| m.uuid.as_str()))
        .collect();
    let missing: Vec<&String> = refs
        .attached
        .iter()
        .filter(|u| !known.contains(&u.as_str()))
        .collect();
    let mut found = Vec::new();
    let mut lost = Vec::new();
    for u in &missing {
        let by_name = refs.snapshot_folder.join(format!("{{{u}}}.vdi"));
        let hit = if vdi_ids(&by_name).is_some_and(|(x, _)| &x == *u) {
            Some(by_name)
        } else {
            vdi_files(&refs.snapshot_folder)
                .into_iter()
                .find(|p| vdi_ids(p).is_some_and(|(x, _)| &x == *u))
        };
        match hit {
            Some(p) => found.push(p),
            None => lost.push((*u).clone()),
        }
    }
    let head = format!(
        "VM {{{uuid}}} (settings {}) is registered but INACCESSIBLE. VirtualBox said: {}",
        cfg.display(),
        if err.is_empty() {
            "(nothing)".into()
        } else {
            err.replace('\n', " | ")
        }
    );
    if !missing.is_empty() && lost.is_empty() {
        return check(
            Level::Fail,
            name,
            format!(
                "{head}. The settings name disk image(s) missing from VirtualBox's media registry \
                 whose files still exist: {}",
                join_paths(&found)
            ),
        )
        .recovery(format!(
            "the data is intact; only VirtualBox's registry lost track of the image. \
             `vblaunch doctor {uuid} --fix` repairs it; by hand, with VirtualBox's windows closed:\n\
             1. back up {}\n\
             2. run this as ONE command line (VirtualBox forgets an opened image when its service \
             stops, a few seconds after the last command, and then drops the VM from its list):\n   \
             VBoxManage list vms && {} && VBoxManage list vms && \
             VBoxManage setextradata {uuid} vblaunch/repaired yes && \
             VBoxManage setextradata {uuid} vblaunch/repaired\n   \
             (opens the image(s), lets VirtualBox load the VM again and save its settings, registry included)",
            cfg.display(),
            found
                .iter()
                .map(|p| format!("VBoxManage showmediuminfo disk \"{}\"", p.display()))
                .collect::<Vec<_>>()
                .join(" && "),
        ))
        .fix(Fix::OpenMedia { paths: found });
    }
    if !lost.is_empty() {
        let mut c = check(
            Level::Fail,
            name,
            format!(
                "{head}. Disk image(s) {} are neither in VirtualBox's media registry nor in {}",
                lost.iter()
                    .map(|u| format!("{{{u}}}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                refs.snapshot_folder.display()
            ),
        )
        .recovery(format!(
            "restore {} from your backup into {} (a backup restored without its Snapshots \
             folder does this), then run `vblaunch doctor {uuid}` again.\n{}",
            lost.iter()
                .map(|u| format!("{{{u}}}.vdi"))
                .collect::<Vec<_>>()
                .join(", "),
            refs.snapshot_folder.display(),
            restore_steps(ctx, uuid, cfg)
        ));
        if let Some(from) = good_settings_copy(ctx, uuid, cfg, media) {
            c = c.fix(Fix::RestoreSettings { from });
        }
        let _ = vb;
        return c;
    }
    let mut c = check(Level::Fail, name, head).recovery(restore_steps(ctx, uuid, cfg));
    if let Some(from) = good_settings_copy(ctx, uuid, cfg, media) {
        c = c.fix(Fix::RestoreSettings { from });
    }
    c
}

/// How to put a settings copy back by hand.
fn restore_steps(ctx: &Context, uuid: &str, cfg: &Path) -> String {
    let backups = crate::state::settings_backups(&ctx.data_dir, uuid);
    let file = cfg
        .file_name()
        .map(|f| f.to_string_lossy().into_owned())
        .unwrap_or_default();
    let copy = backups
        .last()
        .map(|d| d.join(&file).display().to_string())
        .unwrap_or_else(|| format!("{}-prev", cfg.display()));
    format!(
        "if the settings file is damaged or stale: close VirtualBox; copy {cfg} aside; \
         `VBoxManage unregistervm {uuid}`; copy a good copy (newest first: {copy}, older folders \
         in {}) to {cfg}; `VBoxManage registervm \"{cfg}\"`; run `vblaunch doctor {uuid}` again",
        crate::state::dir(&ctx.data_dir, uuid)
            .join("settings-backups")
            .display(),
        cfg = cfg.display()
    )
}

/// The newest settings copy whose every image exists on disk and that
/// accounts for every image in the Snapshots folder.
fn good_settings_copy(ctx: &Context, uuid: &str, cfg: &Path, media: &[Medium]) -> Option<PathBuf> {
    let file = cfg.file_name()?.to_string_lossy().into_owned();
    let mut candidates = Vec::new();
    for d in crate::state::settings_backups(&ctx.data_dir, uuid)
        .iter()
        .rev()
    {
        candidates.push(d.join(&file));
        candidates.push(d.join(format!("{file}-prev")));
    }
    candidates.push(cfg.with_file_name(format!("{file}-prev")));
    let current = std::fs::read(cfg).ok();
    candidates.into_iter().find(|c| {
        let Ok(text) = std::fs::read_to_string(c) else {
            return false;
        };
        if current.as_deref() == Some(text.as_bytes()) {
            return false;
        }
        let Ok(refs) = settings_refs(&text, cfg) else {
            return false;
        };
        let all_exist = refs.registry.iter().all(|(_, p)| p.is_file());
        let known: Vec<&str> = refs
            .registry
            .iter()
            .map(|(u, _)| u.as_str())
            .chain(media.iter().map(|m| m.uuid.as_str()))
            .collect();
        let resolved = refs.attached.iter().all(|u| known.contains(&u.as_str()));
        let no_orphans = vdi_files(&refs.snapshot_folder).iter().all(|p| {
            refs.registry.iter().any(|(_, l)| l == p)
                || vdi_ids(p).is_some_and(|(u, _)| refs.registry.iter().any(|(x, _)| *x == u))
        });
        all_exist && resolved && no_orphans
    })
}

/// Checks on a VM VirtualBox can read.
fn readable_checks(
    ctx: &Context,
    vm: &VmInfo,
    media: &[Medium],
    eff: &crate::config::Effective,
) -> Vec<Check> {
    let mut out = Vec::new();
    // State.
    let st = if vm.state_allows_fold() && vm.session_name.is_none() {
        check(Level::Ok, "state", vm.state.clone())
    } else if let Some(s) = &vm.session_name {
        check(
            Level::Warn,
            "state",
            format!(
                "{} and open in '{s}' (a fold waits until it is closed)",
                vm.state
            ),
        )
    } else {
        check(
            Level::Warn,
            "state",
            format!("{} (a fold needs the VM powered off or saved)", vm.state),
        )
    };
    out.push(st);

    // Media chains.
    let registered: Vec<PathBuf> = media.iter().map(|m| m.location.clone()).collect();
    let snap_dir = vm.snapshot_folder.clone();
    let orphans: Vec<(PathBuf, Option<VdiIds>)> = snap_dir
        .as_deref()
        .map(vdi_files)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !registered.contains(p))
        .map(|p| {
            let ids = vdi_ids(&p);
            (p, ids)
        })
        .filter(|(_, ids)| {
            // A registered UUID under another path is not an orphan.
            !ids.as_ref()
                .is_some_and(|(u, _)| media.iter().any(|m| &m.uuid == u))
        })
        .collect();
    let mut chain_ok = true;
    let mut chains = Vec::new();
    let disks: Vec<_> = vm
        .attachments
        .iter()
        .filter(|a| media.iter().any(|m| m.uuid == a.image_uuid))
        .collect();
    if disks.is_empty() {
        out.push(check(
            Level::Warn,
            "media chain",
            "the VM has no hard disk attached",
        ));
    }
    for att in disks {
        let mut shown = Vec::new();
        for (depth, link) in media::chain(media, &att.image_uuid).into_iter().enumerate() {
            let m = match link {
                Ok(m) => m,
                Err(u) => {
                    chain_ok = false;
                    out.push(
                        check(
                            Level::Fail,
                            "media chain",
                            format!("slot {}: image {{{u}}} is not in VirtualBox's media registry", att.slot()),
                        )
                        .recovery(format!(
                            "put {{{u}}}.vdi back from your backup (into {}), then run `vblaunch doctor` again",
                            snap_dir.as_ref().map(|p| p.display().to_string()).unwrap_or_default()
                        )),
                    );
                    break;
                }
            };
            let size = std::fs::metadata(&m.location).ok().map(|md| md.len());
            shown.push(format!(
                "{}{}",
                m.location.display(),
                size.map(|s| format!(" ({})", human(s))).unwrap_or_default()
            ));
            if size.is_none() || !m.is_accessible() {
                chain_ok = false;
                // Stale settings: an unregistered image in the Snapshots
                // folder is a child of the same parent as the missing leaf.
                let sibling: Vec<&PathBuf> = orphans
                    .iter()
                    .filter(|(_, ids)| {
                        ids.as_ref()
                            .is_some_and(|(_, p)| p.is_some() && *p == m.parent)
                    })
                    .map(|(p, _)| p)
                    .collect();
                if depth == 0 && m.parent.is_some() && sibling.len() == 1 {
                    out.push(
                        check(
                            Level::Fail,
                            "media chain",
                            format!(
                                "slot {}: the current-state image {} does not exist, while {} (an \
                                 image VirtualBox does not know, child of the same parent) does: \
                                 the settings file is STALE (an older copy put back)",
                                att.slot(),
                                m.location.display(),
                                sibling[0].display()
                            ),
                        )
                        .recovery(format!(
                            "the VM's data is in {orphan}. `vblaunch doctor {u} --fix` attaches it \
                             again; by hand, with VirtualBox's windows closed:\n\
                             1. back up {cfg}\n\
                             2. VBoxManage storageattach {u} --storagectl \"{ctl}\" --port {port} --device {dev} --type hdd --medium \"{orphan}\"\n\
                             3. VBoxManage closemedium disk {missing}",
                            orphan = sibling[0].display(),
                            u = vm.uuid,
                            cfg = vm.cfg_file.as_ref().map(|p| p.display().to_string()).unwrap_or_default(),
                            ctl = att.controller,
                            port = att.port,
                            dev = att.device,
                            missing = m.uuid,
                        ))
                        .fix(Fix::Relink {
                            controller: att.controller.clone(),
                            port: att.port,
                            device: att.device,
                            orphan: sibling[0].clone(),
                            missing: m.uuid.clone(),
                        }),
                    );
                } else {
                    let owner = diff_owner(vm, media, &m.uuid);
                    out.push(
                        check(
                            Level::Fail,
                            "media chain",
                            format!(
                                "slot {}: disk image {} is {} (VirtualBox: {}){}",
                                att.slot(),
                                m.location.display(),
                                crate::vbox::errors::medium_problem(
                                    m.access_error.as_deref(),
                                    size.is_some()
                                )
                                .medium_label(),
                                m.state,
                                owner
                            ),
                        )
                        .recovery(format!(
                            "no automatic fix: the data in that file exists only in your backups.\n\
                             1. close VirtualBox and do not start or fold the VM;\n\
                             2. restore the file from your backup to exactly {};\n\
                             3. run `vblaunch doctor {}` again.\n\
                             vblaunch refuses to fold until the file is back.",
                            m.location.display(),
                            vm.uuid
                        )),
                    );
                }
                continue;
            }
            // Parent links: the file's header must agree with the registry.
            if let Some((u, p)) = vdi_ids(&m.location) {
                if u != m.uuid || p != m.parent {
                    chain_ok = false;
                    out.push(
                        check(
                            Level::Fail,
                            "media chain",
                            format!(
                                "{}: VirtualBox's registry says UUID {} parent {:?}, the file's header says {u} parent {p:?}",
                                m.location.display(),
                                m.uuid,
                                m.parent
                            ),
                        )
                        .recovery("do not fold; restore the VM folder and its disks from one consistent backup"),
                    );
                }
            }
            if !m.is_normal() {
                out.push(check(
                    Level::Warn,
                    "media chain",
                    format!(
                        "{} is of type '{}': snapshots do not freeze it",
                        m.location.display(),
                        m.kind
                    ),
                ));
            }
        }
        shown.reverse();
        chains.push(format!("{}: {}", att.slot(), shown.join(" <- ")));
    }
    if chain_ok && !chains.is_empty() {
        out.push(check(Level::Ok, "media chain", chains.join("; ")));
    }
    let stale_handled = out
        .iter()
        .any(|c| matches!(c.fix, Some(Fix::Relink { .. })));
    if !orphans.is_empty() && !stale_handled {
        out.push(check(
            Level::Warn,
            "media chain",
            format!(
                "image(s) in the Snapshots folder that VirtualBox does not know: {} (left over, or \
                 the settings file is older than the disks; vblaunch leaves them alone)",
                join_paths(&orphans.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>())
            ),
        ));
    }

    // Managed snapshots, and whether a fold would go ahead.
    let (own, off) = crate::plan::own_snapshots(vm, &eff.snapshot_name, false);
    let users = vm.snapshots.len() - own.len() - off.len();
    let now = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    let policy = crate::plan::Policy {
        snapshot_name: &eff.snapshot_name,
        keep: ctx.global.keep.map(|k| k as usize).unwrap_or(eff.keep),
        adopt: ctx.global.adopt,
        now_iso8601: &now,
    };
    let desc = match vm.current() {
        Some(c) => format!(
            "{} of vblaunch's, {users} of yours; current '{}' {{{}}}{}",
            own.len(),
            c.name,
            c.uuid,
            crate::plan::taken_at(c)
                .map(|t| format!(" taken {t}"))
                .unwrap_or_default()
        ),
        None => "no snapshots (the first launch takes vblaunch's)".to_string(),
    };
    let planned = crate::plan::plan(vm, media, &policy, &crate::vbox::file_exists);
    match &planned {
        Ok(_) if off.is_empty() => out.push(check(Level::Ok, "snapshots", desc)),
        Ok(_) => out.push(check(
            Level::Warn,
            "snapshots",
            format!(
                "{desc}; {} vblaunch snapshot(s) off the current path",
                off.len()
            ),
        )),
        Err(r) if chain_ok => out.push(
            check(
                Level::Fail,
                "snapshots",
                format!("{desc}; a fold would refuse"),
            )
            .recovery(r.reason.clone()),
        ),
        Err(_) => out.push(check(
            Level::Warn,
            "snapshots",
            format!("{desc}; a fold refuses until the media chain is repaired"),
        )),
    }

    // What the next fold's pre-flight says of the real folders and images
    // (writable, room, a merge target shared with another VM or clone).
    if let Ok(p) = &planned {
        match crate::cmd::fold::preflight(vm, media, p, eff) {
            Ok(_) => out.push(check(
                Level::Ok,
                "pre-flight",
                "the folders and images the next fold writes are writable and have room, and \
                 no merge target is shared",
            )),
            // A leftover settings file has its own check below.
            Err(_) if crate::cmd::fold::leftover_settings(vm).is_some() => {}
            Err(r) => out.push(
                check(Level::Fail, "pre-flight", "the next fold would refuse").recovery(r.reason),
            ),
        }
    }

    // Leftover settings.
    if let Some(tmp) = crate::cmd::fold::leftover_settings(vm) {
        out.push(
            check(
                Level::Fail,
                "settings file",
                format!(
                    "VirtualBox left a half-written {} behind (an interrupted save); vblaunch refuses to fold",
                    tmp.display()
                ),
            )
            .recovery(format!(
                "`vblaunch doctor {} --fix` moves it into vblaunch's settings backups; by hand: \
                 close VirtualBox and move it out of the VM's folder",
                crate::process::quote(&vm.name)
            ))
            .fix(Fix::MoveTmp { tmp }),
        );
    } else if let Some(cfg) = &vm.cfg_file {
        // VirtualBox may still hold the VM in memory while its file on disk
        // is empty or damaged (measured: VERR_DISK_FULL at a take leaves the
        // .vbox at 0 bytes); the VM is lost when VBoxSVC next starts.
        match crate::vbox::settings::check_file(cfg, &vm.uuid) {
            Ok(()) => out.push(check(
                Level::Ok,
                "settings file",
                format!("{} (well-formed, no leftover -tmp)", cfg.display()),
            )),
            Err(why) => {
                let mut c = check(
                    Level::Fail,
                    "settings file",
                    format!(
                        "{why}; VirtualBox still has the VM in memory, but it cannot load it \
                         again once its service restarts"
                    ),
                )
                .recovery(restore_steps(ctx, &vm.uuid, cfg));
                if let Some(from) = good_settings_copy(ctx, &vm.uuid, cfg, media) {
                    c = c.fix(Fix::RestoreSettings { from });
                }
                out.push(c);
            }
        }
    }

    // Free space for the next merge.
    let diff_bytes: u64 = crate::plan::path_diffs(vm, media)
        .map(|d| {
            d.iter()
                .flat_map(|(_, ms)| ms.iter())
                .filter_map(|m| std::fs::metadata(&m.location).ok().map(|md| md.len()))
                .sum()
        })
        .unwrap_or(0);
    let probe = media
        .iter()
        .find(|m| vm.attachments.iter().any(|a| a.image_uuid == m.uuid))
        .map(|m| m.location.clone())
        .or_else(|| vm.cfg_file.clone());
    if let Some(p) = probe {
        match crate::disk::free(&p) {
            Some(free) if free >= diff_bytes + eff.merge_margin => out.push(check(
                Level::Ok,
                "free space",
                format!(
                    "{} free where the disks are; the next merge needs about {}",
                    human(free),
                    human(diff_bytes)
                ),
            )),
            Some(free) => out.push(
                check(
                    Level::Warn,
                    "free space",
                    format!(
                        "{} free where the disks are; merging needs about {} plus a margin of {}",
                        human(free),
                        human(diff_bytes),
                        human(eff.merge_margin)
                    ),
                )
                .recovery("free some space on that volume before the next launch"),
            ),
            None => out.push(check(
                Level::Warn,
                "free space",
                format!("unknown for {}", p.display()),
            )),
        }
    }
    out
}

/// " (what snapshot '<name>' ... wrote)" for a differencing image, if known.
fn diff_owner(vm: &VmInfo, media: &[Medium], uuid: &str) -> String {
    let Some(diffs) = crate::plan::path_diffs(vm, media) else {
        return String::new();
    };
    for (i, ms) in diffs {
        if ms.iter().any(|m| m.uuid == uuid) {
            let s = &vm.snapshots[i];
            return format!(
                "; it holds what the VM wrote after snapshot '{}' {{{}}}{}",
                s.name,
                s.uuid,
                crate::plan::taken_at(s)
                    .map(|t| format!(" (taken {t})"))
                    .unwrap_or_default()
            );
        }
    }
    String::new()
}

/// Checks on what vblaunch records about the VM (readable or not).
fn record_checks(
    ctx: &Context,
    t: &Target,
    uuid: &str,
    vm_arg: &str,
    eff: &crate::config::Effective,
) -> Vec<Check> {
    let mut out = Vec::new();
    let backups = crate::state::settings_backups(&ctx.data_dir, uuid);
    let managed = t
        .info
        .as_ref()
        .map(|vm| {
            !crate::plan::own_snapshots(vm, &eff.snapshot_name, false)
                .0
                .is_empty()
        })
        .unwrap_or(true);
    match backups.last() {
        Some(newest) => out.push(check(
            Level::Ok,
            "settings backups",
            format!(
                "{} in {}, newest {}",
                backups.len(),
                newest.parent().unwrap_or(newest).display(),
                newest
                    .file_name()
                    .map(|f| f.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
        )),
        None if managed => out.push(check(
            Level::Warn,
            "settings backups",
            format!(
                "none in {} (vblaunch copies the settings before each fold)",
                crate::state::dir(&ctx.data_dir, uuid)
                    .join("settings-backups")
                    .display()
            ),
        )),
        None => out.push(check(
            Level::Ok,
            "settings backups",
            "none yet (the first fold makes one)",
        )),
    }
    if t.info.is_none() {
        if let Some(cfg) = &t.cfg {
            let mut tmp = cfg.file_name().unwrap_or_default().to_os_string();
            tmp.push("-tmp");
            let tmp = cfg.with_file_name(tmp);
            if tmp.exists() {
                out.push(
                    check(
                        Level::Fail,
                        "settings file",
                        format!(
                            "VirtualBox left a half-written {} behind (an interrupted save)",
                            tmp.display()
                        ),
                    )
                    .recovery("`vblaunch doctor --fix` moves it into vblaunch's settings backups")
                    .fix(Fix::MoveTmp { tmp }),
                );
            }
        }
    }
    match crate::state::load_journal(&ctx.data_dir, uuid) {
        // Only this VM's steps (a journal may record another VM's).
        Ok(j) => {
            let exists = |u: &str| t.info.as_ref().is_none_or(|vm| vm.snapshot(u).is_some());
            let incomplete: Vec<_> = j
                .incomplete_merges()
                .into_iter()
                .filter(|m| exists(&m.snapshot))
                .collect();
            let fold_line = format!(
                "run `vblaunch fold {}`: it re-reads what VirtualBox holds and finishes the \
                 step (a merge VirtualBox did not finish is repeated; nothing is lost)",
                crate::process::quote(vm_arg)
            );
            if let Some(m) = incomplete.first() {
                out.push(
                    check(
                        Level::Fail,
                        "journal",
                        format!(
                            "a merge did not complete: \"{}\" (started {}; {}). The disk it \
                             merges into may be partly merged: not safe to back up until a fold \
                             completes it",
                            m.step,
                            m.started,
                            m.outcome.lines().next().unwrap_or_default()
                        ),
                    )
                    .recovery(fold_line)
                    .fix(Fix::Fold),
                );
            } else if let Some(e) = j.unfinished().filter(|e| e.vm == uuid) {
                out.push(
                    check(
                        Level::Warn,
                        "journal",
                        format!(
                            "the last vblaunch {} was interrupted during step \"{}\" (started {})",
                            j.run, e.step, e.started
                        ),
                    )
                    .recovery(fold_line)
                    .fix(Fix::Fold),
                );
            } else if let Some(e) = j.failed().filter(|e| e.vm == uuid) {
                out.push(
                    check(
                        Level::Warn,
                        "journal",
                        format!(
                            "the last vblaunch {} (started {}) failed at step \"{}\": {}",
                            j.run,
                            j.started,
                            e.step,
                            e.outcome
                                .as_deref()
                                .unwrap_or_default()
                                .lines()
                                .next()
                                .unwrap_or_default()
                        ),
                    )
                    .recovery(fold_line),
                );
            } else {
                out.push(check(
                    Level::Ok,
                    "journal",
                    if j.run.is_empty() {
                        "no run recorded".to_string()
                    } else {
                        format!(
                            "the last {} (started {}) finished every step",
                            j.run, j.started
                        )
                    },
                ));
            }
        }
        Err(e) => out.push(check(Level::Warn, "journal", format!("{e:#}"))),
    }
    match crate::state::load(&ctx.data_dir, uuid) {
        Ok(s) => match s.last_fold {
            Some(f)
                if t.info.as_ref().is_some_and(|vm| vm.snapshot(&f.snapshot).is_none()) =>
            {
                out.push(check(
                    Level::Warn,
                    "last fold",
                    format!(
                        "{} left the VM on snapshot {{{}}}, which it no longer has (expected after \
                         `vblaunch restore`; otherwise the settings file is older than the last fold)",
                        f.finished, f.snapshot
                    ),
                ))
            }
            Some(f) => out.push(check(
                Level::Ok,
                "last fold",
                format!(
                    "{} ({:.1} s, {} merged, now on snapshot {{{}}})",
                    f.finished,
                    f.duration_ms as f64 / 1000.0,
                    human(f.bytes_merged),
                    f.snapshot
                ),
            )),
            None => out.push(check(Level::Ok, "last fold", "none recorded")),
        },
        Err(e) => out.push(check(Level::Warn, "last fold", format!("{e:#}"))),
    }
    out
}

fn human(b: u64) -> String {
    if b >= 1 << 30 {
        format!("{:.1} GiB", b as f64 / (1u64 << 30) as f64)
    } else if b >= 1 << 20 {
        format!("{:.1} MiB", b as f64 / (1u64 << 20) as f64)
    } else {
        format!("{:.0} KiB", b as f64 / 1024.0)
    }
}
