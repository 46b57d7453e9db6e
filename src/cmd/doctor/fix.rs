//! The repairs `vblaunch doctor --fix` performs: what each one will do (the
//! text shown before asking) and doing it. Each repair first checks that no
//! other vblaunch holds the VM and VirtualBox is closed, and backs up the
//! settings file it changes into a new `<time>-doctor` folder of vblaunch's
//! settings backups. Nothing here prints: the result (or the error) goes
//! back to `run`, which says it.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use super::checks::{join_paths, Fix};
use super::facts::Target;
use crate::exit::{fail, Code};
use crate::vbox::{VBoxManage, VmInfo};
use crate::Context;

/// What `fix` will do, shown before asking.
pub fn describe(fix: &Fix, t: &Target) -> String {
    let cfg = t
        .cfg
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    match fix {
        Fix::MoveTmp { tmp } => format!(
            "move the half-written {} into vblaunch's settings backups (nothing is deleted)",
            tmp.display()
        ),
        Fix::OpenMedia { paths } => format!(
            "back up {cfg}, open {} with VirtualBox so that its media registry holds {} again, \
             and let VirtualBox save the VM's settings",
            join_paths(paths),
            if paths.len() == 1 { "it" } else { "them" }
        ),
        Fix::Relink {
            controller,
            port,
            device,
            orphan,
            missing,
        } => format!(
            "back up {cfg}, attach {} (the VM's real current state) to slot {controller}-{port}-{device} \
             in place of the missing image {{{missing}}}, and forget the missing one",
            orphan.display()
        ),
        Fix::RestoreSettings { from } => format!(
            "back up {cfg} and put {} in its place (VirtualBox re-reads it: unregistervm, registervm)",
            from.display()
        ),
        Fix::Fold => "finish the interrupted run: `vblaunch fold` re-reads the VM and continues".to_string(),
    }
}

/// Perform one repair on the VM `t` (VirtualBox's view `vm`, if it can read
/// it). Ok: what was done, for the user.
pub fn apply(
    ctx: &Context,
    vm_arg: &str,
    t: &Target,
    vm: Option<&VmInfo>,
    fix: &Fix,
) -> Result<String> {
    let uuid = t.uuid.clone().ok_or_else(|| {
        anyhow::anyhow!(
            "vblaunch cannot find this VM's UUID, so it fixes nothing; run doctor with the \
                 VM's UUID (`VBoxManage list vms` shows it)"
        )
    })?;
    if let Fix::Fold = fix {
        let locked = crate::engine::open(ctx, vm_arg)?;
        crate::engine::fold(ctx, &locked, crate::engine::Start::No)?;
        return Ok("the fold finished".to_string());
    }
    // Preconditions: no other vblaunch, VirtualBox's windows closed.
    // The VM's identity is its UUID (the lock every vblaunch takes).
    let _lock = crate::lock::acquire(&ctx.locks_dir(), &uuid, &t.label)?;
    let eff = ctx.effective(&[vm_arg, &uuid]);
    let running = crate::guard::Scanner::new()?.scan(&eff.guard_processes)?;
    if !running.is_empty() {
        return Err(fail(
            Code::VirtualBoxRunning,
            format!(
                "VirtualBox is running ({}); close it and run `vblaunch doctor {} --fix` again. Nothing was changed.",
                crate::guard::describe(&running),
                crate::process::quote(vm_arg)
            ),
        ));
    }
    if let Some(vm) = vm {
        if !vm.state.allows_fold() || vm.session_name.is_some() {
            return Err(fail(
                Code::VmState,
                format!(
                    "VM '{}' is {}; power it off first. Nothing was changed.",
                    vm.name, vm.state
                ),
            ));
        }
    }
    let vb = ctx.vbox(&eff)?;
    let cfg = t.cfg.as_deref();
    match fix {
        Fix::MoveTmp { tmp } => move_tmp(ctx, &uuid, cfg, tmp),
        Fix::OpenMedia { paths } => open_media(ctx, &vb, &uuid, settings(cfg)?, paths),
        Fix::Relink {
            controller,
            port,
            device,
            orphan,
            missing,
        } => {
            let slot = (controller.as_str(), *port, *device);
            relink(ctx, &vb, &uuid, settings(cfg)?, slot, orphan, missing)
        }
        Fix::RestoreSettings { from } => restore_settings(ctx, &vb, &uuid, settings(cfg)?, from),
        Fix::Fold => unreachable!("handled above"),
    }
}

fn settings(cfg: Option<&Path>) -> Result<&Path> {
    cfg.context("the settings file is unknown")
}

/// Move `<vm>.vbox-tmp` into a doctor backup folder (with the settings file).
fn move_tmp(ctx: &Context, uuid: &str, cfg: Option<&Path>, tmp: &Path) -> Result<String> {
    let dir = doctor_backup_dir(ctx, uuid)?;
    if let Some(cfg) = cfg {
        if cfg.is_file() {
            back_up(cfg, &dir)?;
        }
    }
    let to = dir.join(tmp.file_name().context("a file name")?);
    if std::fs::rename(tmp, &to).is_err() {
        back_up(tmp, &dir)?;
        std::fs::remove_file(tmp).with_context(|| format!("cannot remove {}", tmp.display()))?;
    }
    Ok(format!("moved {} to {}", tmp.display(), to.display()))
}

/// Open the images VirtualBox's registry lost, until VirtualBox reads the
/// VM again and has saved its settings.
fn open_media(
    ctx: &Context,
    vb: &VBoxManage,
    uuid: &str,
    cfg: &Path,
    paths: &[PathBuf],
) -> Result<String> {
    let dir = doctor_backup_dir(ctx, uuid)?;
    let saved = back_up(cfg, &dir)?;
    // VirtualBox keeps an opened image in memory only, and VBoxSVC
    // exits a few seconds after its last client. Measured on 7.2: if
    // it exits after the image was opened but before the VM was
    // loaded again, it drops the VM from its registry. So one client
    // holds VBoxSVC for the whole repair, and each attempt repeats
    // the idempotent steps: list the VMs (VirtualBox retries loading
    // an inaccessible one), open the image(s), list again, read the
    // VM, and have VirtualBox save its settings (registry included).
    let _service = vb.hold_service()?;
    let mut attempt = 0;
    let info = loop {
        match reopen_and_save(vb, uuid, paths) {
            Ok(info) => break info,
            Err(e) if attempt >= 4 => {
                return Err(e.context(
                    "VirtualBox still cannot read the VM after opening the image(s); \
                     its settings file was not changed",
                ))
            }
            Err(e) => log::debug!("not repaired yet (attempt {}): {e:#}", attempt + 1),
        }
        attempt += 1;
        // Give a VBoxSVC that is shutting down time to go.
        std::thread::sleep(std::time::Duration::from_millis(250 << attempt));
    };
    Ok(format!(
        "VM '{}' is accessible again and VirtualBox saved its settings (the previous file is in {})",
        info.name,
        saved.display()
    ))
}

/// Attach `orphan` to `slot` (controller, port, device) in place of the
/// missing image `missing`, and forget that one.
fn relink(
    ctx: &Context,
    vb: &VBoxManage,
    uuid: &str,
    cfg: &Path,
    (controller, port, device): (&str, u32, u32),
    orphan: &Path,
    missing: &str,
) -> Result<String> {
    let dir = doctor_backup_dir(ctx, uuid)?;
    let saved = back_up(cfg, &dir)?;
    vb.attach_hdd(uuid, controller, port, device, orphan)?;
    if let Err(e) = vb.close_medium(missing) {
        log::warn!("could not forget the missing image {{{missing}}}: {e:#}");
    }
    let info = vb.show_vm_info(uuid)?;
    Ok(format!(
        "VM '{}' writes to {} again (the previous settings file is in {})",
        info.name,
        orphan.display(),
        saved.display()
    ))
}

/// One attempt of the "open the missing images" repair; see [`open_media`].
fn reopen_and_save(vb: &VBoxManage, uuid: &str, paths: &[PathBuf]) -> Result<VmInfo> {
    // Listing the VMs makes VirtualBox retry loading an inaccessible one: the
    // first time it registers the images of the VM's own media registry (the
    // parent of the missing image among them); after the open, it succeeds.
    let _ = vb.list_vms();
    for p in paths {
        let m = vb.open_medium(p)?;
        log::info!("VirtualBox opened {} {{{}}}", p.display(), m.uuid);
    }
    let _ = vb.list_vms();
    let info = vb.show_vm_info(uuid)?;
    let key = "vblaunch/doctor";
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string();
    vb.set_extra_data(uuid, key, Some(&stamp))?;
    vb.set_extra_data(uuid, key, None)?;
    Ok(info)
}

/// Put the settings copy `from` in place of `cfg` and have VirtualBox
/// re-read it; if it cannot, put back what was there.
fn restore_settings(
    ctx: &Context,
    vb: &VBoxManage,
    uuid: &str,
    cfg: &Path,
    from: &Path,
) -> Result<String> {
    let dir = doctor_backup_dir(ctx, uuid)?;
    let saved = if cfg.is_file() {
        Some(back_up(cfg, &dir)?)
    } else {
        None
    };
    let good = std::fs::read(from).with_context(|| format!("cannot read {}", from.display()))?;
    let registered = vb
        .list_vms()
        .map(|v| v.iter().any(|(_, u)| u == uuid))
        .unwrap_or(false);
    if registered {
        vb.unregister_vm(uuid)?;
    }
    crate::files::write_atomic_mode(cfg, &good, crate::files::FILE_MODE)?;
    let result = vb.register_vm(cfg).and_then(|_| vb.show_vm_info(uuid));
    match result {
        Ok(info) => Ok(format!(
            "VM '{}' uses {} again (the replaced file is in {})",
            info.name,
            from.display(),
            saved
                .map(|p| p.display().to_string())
                .unwrap_or_else(|| "(none)".into())
        )),
        Err(e) => {
            // Put back what was there.
            if let Some(s) = &saved {
                let _ = vb.unregister_vm(uuid);
                if let Ok(old) = std::fs::read(s) {
                    let _ = crate::files::write_atomic_mode(cfg, &old, crate::files::FILE_MODE);
                }
                let _ = vb.register_vm(cfg);
            }
            Err(e.context("the restored settings did not work; the previous file was put back"))
        }
    }
}

/// A new folder in the VM's settings backups for what doctor replaces.
fn doctor_backup_dir(ctx: &Context, uuid: &str) -> Result<PathBuf> {
    let root = crate::state::backups_root(&ctx.data_dir, uuid)?;
    let stamp = humantime::format_rfc3339_seconds(std::time::SystemTime::now())
        .to_string()
        .replace(':', "-");
    let mut target = root.join(format!("{stamp}-doctor"));
    let mut n = 1;
    while std::fs::symlink_metadata(&target).is_ok() {
        n += 1;
        target = root.join(format!("{stamp}-doctor-{n}"));
    }
    crate::files::create_dir(&target)?;
    Ok(target)
}

/// Copy a file into the backup folder (atomically, same name).
fn back_up(file: &Path, dir: &Path) -> Result<PathBuf> {
    let data = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let to = dir.join(file.file_name().context("a file name")?);
    crate::state::write_atomic(&to, &data)?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fix_says_what_it_will_change_before_asking() {
        let t = Target {
            label: "Dev Box".into(),
            uuid: Some("u".into()),
            cfg: Some(PathBuf::from("/vms/Dev Box/Dev Box.vbox")),
            access_error: None,
        };
        let tmp = PathBuf::from("/vms/Dev Box/Dev Box.vbox-tmp");
        assert_eq!(
            describe(&Fix::MoveTmp { tmp }, &t),
            "move the half-written /vms/Dev Box/Dev Box.vbox-tmp into vblaunch's settings \
             backups (nothing is deleted)"
        );
        let one = vec![PathBuf::from("/s/{a}.vdi")];
        let two = vec![PathBuf::from("/s/{a}.vdi"), PathBuf::from("/s/{b}.vdi")];
        assert!(describe(&Fix::OpenMedia { paths: one }, &t).starts_with(
            "back up /vms/Dev Box/Dev Box.vbox, open /s/{a}.vdi with VirtualBox so that its \
             media registry holds it again"
        ));
        assert!(describe(&Fix::OpenMedia { paths: two }, &t)
            .contains("open /s/{a}.vdi, /s/{b}.vdi with VirtualBox so that its media registry holds them again"));
        let relink = Fix::Relink {
            controller: "SATA".into(),
            port: 1,
            device: 0,
            orphan: PathBuf::from("/s/{o}.vdi"),
            missing: "m".into(),
        };
        assert!(describe(&relink, &t)
            .contains("attach /s/{o}.vdi (the VM's real current state) to slot SATA-1-0 in place of the missing image {m}"));
        let restore = Fix::RestoreSettings {
            from: PathBuf::from("/b/Dev Box.vbox"),
        };
        assert!(describe(&restore, &t)
            .starts_with("back up /vms/Dev Box/Dev Box.vbox and put /b/Dev Box.vbox in its place"));
        assert!(describe(&Fix::Fold, &t).starts_with("finish the interrupted run"));
    }
}
