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
//!
//! The data flows one way, and each step has its file:
//! 1. [`facts`] reads everything (VBoxManage, settings files, VDI headers,
//!    folders, vblaunch's records, free space, processes, locks) into
//!    [`facts::Facts`], without judging;
//! 2. [`checks`] judges those facts with pure functions into a list of
//!    [`checks::Check`]s, each with its level, evidence, recovery and the
//!    [`checks::Fix`] that repairs it, if any;
//! 3. this file prints the checks and everything else doctor says, and
//!    with `--fix` asks before each repair;
//! 4. [`fix`] performs a confirmed repair and returns what it did (or the
//!    error) for this file to print; finishing an interrupted fold runs
//!    `vblaunch fold`, which reports as it always does. After any repair,
//!    doctor gathers the facts again and prints the new checks.
mod checks;
mod facts;
mod fix;

use std::io::{BufRead, IsTerminal, Write};

use anyhow::Result;

use checks::{Check, Fix, Level};
use facts::Facts;

use crate::cli::DoctorArgs;
use crate::exit::{fail, Code};
use crate::Context;

pub fn run(ctx: &Context, args: DoctorArgs) -> Result<()> {
    let (checks, facts) = diagnose(ctx, &args.vm);
    let fixable: Vec<&Check> = checks.iter().filter(|c| c.fix.is_some()).collect();
    if args.fix && !fixable.is_empty() {
        let done = fix_all(ctx, &args, &checks, &facts)?;
        if done > 0 {
            println!();
            println!("Checking again after {done} fix(es):");
            let (again, _) = diagnose(ctx, &args.vm);
            return finish(&again, &args.vm);
        }
    } else if !args.fix && !fixable.is_empty() {
        println!(
            "`vblaunch doctor {} --fix` can repair {} of these without risking data (it asks first).",
            crate::process::quote(&args.vm),
            fixable.len()
        );
    }
    if facts.target.uuid.is_none() && facts.vm.is_none() {
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

/// Gather the facts, judge them, print the checks.
fn diagnose(ctx: &Context, vm_arg: &str) -> (Vec<Check>, Facts) {
    let facts = facts::gather(ctx, vm_arg);
    let checks = checks::all(&facts);
    for c in &checks {
        print_check(c);
    }
    (checks, facts)
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

/// Offer each fix in turn and perform those confirmed; how many succeeded.
fn fix_all(ctx: &Context, args: &DoctorArgs, checks: &[Check], facts: &Facts) -> Result<usize> {
    // Failures that the fold itself repairs (an incomplete merge) do not
    // stop the fold; any other failure does.
    let blocking = checks
        .iter()
        .filter(|c| c.level == Level::Fail && !matches!(c.fix, Some(Fix::Fold)))
        .count();
    let mut done = 0;
    for c in checks {
        let Some(fix) = &c.fix else { continue };
        if matches!(fix, Fix::Fold) && blocking > 0 {
            println!(
                "not finishing the interrupted fold: fix the failures above first, then run `vblaunch fold {}`",
                crate::process::quote(&args.vm)
            );
            continue;
        }
        println!();
        println!("{}: {}", c.name, fix::describe(fix, &facts.target));
        if !confirm(args)? {
            continue;
        }
        let vm = facts.vm.as_ref().map(|v| &v.info);
        match fix::apply(ctx, &args.vm, &facts.target, vm, fix) {
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
    Ok(done)
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
fn confirm(args: &DoctorArgs) -> Result<bool> {
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
