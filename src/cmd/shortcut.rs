//! `vblaunch shortcut <VM> [--desktop] [--start-menu] [--dest DIR] [--remove] [--force]`.
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};

use crate::cli::ShortcutArgs;
use crate::exit::{fail, Code};
use crate::platform::Os;
use crate::shortcut::{self, Entry, Manifest, Target};
use crate::vbox::VBoxManage;
use crate::Context;

fn folders(os: Os, args: &ShortcutArgs) -> Result<Vec<PathBuf>> {
    if let Some(d) = &args.dest {
        return Ok(vec![d.clone()]);
    }
    let both = !args.desktop && !args.start_menu;
    let mut out = Vec::new();
    let no_home = || fail(Code::Usage, "cannot find your home folder; pass --dest DIR");
    if args.desktop || both {
        let user = directories::UserDirs::new().ok_or_else(no_home)?;
        let desktop = user
            .desktop_dir()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| user.home_dir().join("Desktop"));
        out.push(desktop);
    }
    if args.start_menu || both {
        let base = directories::BaseDirs::new().ok_or_else(no_home)?;
        out.push(match os {
            // %APPDATA%\Microsoft\Windows\Start Menu\Programs
            Os::Windows => base
                .data_dir()
                .join("Microsoft")
                .join("Windows")
                .join("Start Menu")
                .join("Programs"),
            Os::Linux => base.data_dir().join("applications"),
            Os::MacOs => base.home_dir().join("Applications"),
        });
    }
    Ok(out)
}

fn own_exe() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("cannot find vblaunch's own path")?;
    let exe = std::fs::canonicalize(&exe).unwrap_or(exe);
    // Windows canonical paths start with \\?\, which shortcuts do not want.
    let s = exe.to_string_lossy();
    Ok(match s.strip_prefix(r"\\?\") {
        Some(rest) => PathBuf::from(rest),
        None => exe,
    })
}

pub fn run(ctx: &Context, args: ShortcutArgs) -> Result<()> {
    let os = Os::current();
    let manifest_path = ctx.data_dir.join("shortcuts.toml");
    let mut manifest = Manifest::load(&manifest_path)?;
    let dirs = folders(os, &args)?;
    if args.remove {
        return remove(&args, &dirs, &mut manifest, &manifest_path);
    }

    // Check the VM exists when VirtualBox can be asked; take VirtualBox's icon.
    let eff = ctx.effective(&[&args.vm]);
    let mut icon = match os {
        Os::Linux => Some("virtualbox".to_string()),
        _ => None,
    };
    let mut uuid = None;
    match ctx.vboxmanage(&eff) {
        Ok(exe) => {
            let vb = VBoxManage {
                exe: exe.clone(),
                call_timeout: eff.call_timeout,
                stall_warning: eff.merge_stall_warning,
                progress: None,
            };
            // By UUID: VBoxManage never reads a name like `-x` as an option.
            let info =
                vb.show_vm_info(&crate::engine::open::resolve_uuid(&vb, &args.vm, &|v| {
                    ctx.env(v)
                })?)?;
            log::debug!(
                "shortcut for VM '{}' {{{}}}",
                crate::logging::escape(&info.name),
                info.uuid
            );
            uuid = Some(info.uuid);
            if os == Os::Windows {
                let gui = exe.with_file_name("VirtualBox.exe");
                if gui.is_file() {
                    icon = Some(gui.to_string_lossy().into_owned());
                }
            }
        }
        Err(e) => log::warn!("{e:#}\nThe shortcut is made anyway, but check the VM name."),
    }
    // A name with control characters cannot be written into every shortcut
    // format (a .desktop value allows none): the shortcut names the UUID.
    let (vm, name) = if args.vm.chars().any(char::is_control) {
        let Some(uuid) = uuid else {
            return Err(fail(
                Code::Usage,
                format!(
                    "the VM name '{}' contains control characters, which a shortcut cannot \
                     carry; pass the VM's UUID instead (`VBoxManage list vms` shows it)",
                    crate::logging::escape(&args.vm)
                ),
            ));
        };
        (uuid, Some(args.vm.clone()))
    } else {
        (args.vm.clone(), None)
    };
    let mut exe = own_exe()?;
    if os == Os::Windows {
        exe = crate::face::shortcut_exe(&exe, &|p| p.is_file());
    } else if os == Os::Linux {
        // vblaunchw, with no terminal, where zenity or kdialog can show its windows.
        let path = ctx.env("PATH");
        let find = |n: &str| crate::face::desktop::on_path(n, path.as_deref());
        exe = crate::face::desktop::shortcut_exe(&exe, &|p| p.is_file(), &find);
    }
    let target = Target {
        exe,
        vm,
        name,
        icon,
    };
    let (bytes, executable) = shortcut::render(os, &target);
    let name = shortcut::file_name(os, &args.vm);
    let paths: Vec<PathBuf> = dirs.iter().map(|d| d.join(&name)).collect();
    // Refuse before writing anything. Not even --force replaces the
    // shortcut vblaunch made for another VM.
    if let Some(e) = manifest
        .shortcut
        .iter()
        .find(|e| e.vm != args.vm && paths.contains(&e.path) && e.path.exists())
    {
        return Err(fail(
            Code::Exists,
            format!(
                "{} is vblaunch's shortcut for another VM ('{}'); not replacing it, even with \
                 --force. Remove that one first (`vblaunch shortcut --remove`), or pass --dest.",
                e.path.display(),
                crate::logging::escape(&e.vm)
            ),
        ));
    }
    if !args.force {
        if let Some(p) = paths.iter().find(|p| p.exists()) {
            return Err(fail(
                Code::Exists,
                format!(
                    "{} already exists; vblaunch does not overwrite files. Remove it, or run again with --force to replace it.",
                    p.display()
                ),
            ));
        }
    }
    for p in &paths {
        // Atomically, never through a link planted at the shortcut's path.
        let mode = if executable { 0o755 } else { 0o644 };
        crate::files::write_atomic_mode(p, &bytes, mode)?;
        manifest.shortcut.retain(|e| &e.path != p);
        manifest.shortcut.push(Entry {
            vm: args.vm.clone(),
            path: p.clone(),
            fingerprint: shortcut::fingerprint(&bytes),
        });
        manifest.save(&manifest_path)?;
        println!("{}", p.display());
        log::info!("Created shortcut {}", p.display());
    }
    if os == Os::Windows {
        log::info!(
            "To pin it to the taskbar: open the Start menu, right-click \"{}\" and choose \"Pin to taskbar\" (Windows does not let programs pin themselves).",
            target.title()
        );
    }
    Ok(())
}

fn remove(
    args: &ShortcutArgs,
    dirs: &[PathBuf],
    manifest: &mut Manifest,
    manifest_path: &Path,
) -> Result<()> {
    let explicit = args.dest.is_some() || args.desktop || args.start_menu;
    let mine: Vec<Entry> = manifest
        .shortcut
        .iter()
        .filter(|e| e.vm == args.vm)
        .filter(|e| !explicit || e.path.parent().is_some_and(|p| dirs.iter().any(|d| d == p)))
        .cloned()
        .collect();
    if mine.is_empty() {
        return Err(fail(
            Code::Usage,
            format!(
                "vblaunch has not created a shortcut for VM '{}' there; nothing to remove.",
                args.vm
            ),
        ));
    }
    for e in &mine {
        match std::fs::read(&e.path) {
            Ok(bytes) => {
                if shortcut::fingerprint(&bytes) != e.fingerprint && !args.force {
                    return Err(fail(
                        Code::Exists,
                        format!(
                            "{} was changed since vblaunch created it; not removing it. Delete it yourself, or use --force.",
                            e.path.display()
                        ),
                    ));
                }
                std::fs::remove_file(&e.path)
                    .with_context(|| format!("cannot remove {}", e.path.display()))?;
                println!("removed {}", e.path.display());
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                log::info!("{} is already gone", e.path.display());
            }
            Err(err) => {
                return Err(err).with_context(|| format!("cannot read {}", e.path.display()))
            }
        }
        manifest.shortcut.retain(|x| x != e);
        manifest.save(manifest_path)?;
    }
    Ok(())
}
