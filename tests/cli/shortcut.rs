//! `vblaunch shortcut`: the file it writes on this OS, refusing to overwrite,
//! removing exactly what it made. The renderers for the other OSes are unit
//! tested in src/shortcut/.
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use crate::support::*;

#[cfg(target_os = "linux")]
/// Whether a helper program exists; else SKIPPED on the terminal (or a
/// failure when VBLAUNCH_REQUIRE_TOOLS=1, as in CI).
fn tool(name: &str, test: &str) -> bool {
    let found = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(name).is_file()))
        .unwrap_or(false);
    if !found {
        if std::env::var_os("VBLAUNCH_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
            panic!("{test}: VBLAUNCH_REQUIRE_TOOLS=1 but {name} is not installed");
        }
        use std::io::Write;
        let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {name} is not installed");
    }
    found
}

fn only_file(dir: &Path) -> PathBuf {
    let files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

/// vblaunch without a VBoxManage (the shortcut is made with a warning).
fn no_vbox(w: &World) -> [(&'static str, std::ffi::OsString); 1] {
    [(
        "VBLAUNCH_VBOXMANAGE",
        w.path("no-vboxmanage").into_os_string(),
    )]
}

fn run(w: &World, args: &[&str], env: &[(&'static str, std::ffi::OsString)]) -> Run {
    let env: Vec<(&str, &OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    w.vblaunch_env(args, &env)
}

#[test]
fn refuses_to_overwrite_and_removes_exactly_what_it_made() {
    let w = World::fake();
    let env = no_vbox(&w);
    let dest = w.path("shortcuts");
    let d = dest.to_str().unwrap();
    let r = run(&w, &["shortcut", "Dev Box", "--dest", d], &env);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stderr.contains("check the VM name"),
        "warns that the VM was not checked: {r}"
    );
    let file = only_file(&dest);
    assert_eq!(r.stdout.trim(), file.to_str().unwrap());
    let first = std::fs::read(&file).unwrap();

    // Never overwritten without --force.
    std::fs::write(&file, b"mine").unwrap();
    let r = run(&w, &["shortcut", "Dev Box", "--dest", d], &env);
    assert_eq!(r.code, 12, "{r}");
    assert!(r.stderr.contains("--force"), "{r}");
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    // A file changed since vblaunch wrote it is not removed either.
    let r = run(&w, &["shortcut", "Dev Box", "--dest", d, "--remove"], &env);
    assert_eq!(r.code, 12, "{r}");
    assert!(file.exists());
    let r = run(&w, &["shortcut", "Dev Box", "--dest", d, "--force"], &env);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(std::fs::read(&file).unwrap(), first);

    let r = run(&w, &["shortcut", "Dev Box", "--dest", d, "--remove"], &env);
    assert_eq!(r.code, 0, "{r}");
    assert!(!file.exists());
    let r = run(&w, &["shortcut", "Dev Box", "--dest", d, "--remove"], &env);
    assert_eq!(r.code, 2, "nothing left to remove: {r}");
}

#[test]
fn remove_leaves_other_vms_and_files_alone() {
    let w = World::fake();
    let env = no_vbox(&w);
    let dest = w.path("shortcuts");
    let d = dest.to_str().unwrap();
    assert_eq!(run(&w, &["shortcut", "A", "--dest", d], &env).code, 0);
    assert_eq!(run(&w, &["shortcut", "B", "--dest", d], &env).code, 0);
    std::fs::write(dest.join("unrelated.txt"), "x").unwrap();
    assert_eq!(
        run(&w, &["shortcut", "A", "--dest", d, "--remove"], &env).code,
        0
    );
    let left: Vec<String> = std::fs::read_dir(&dest)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.contains(&"unrelated.txt".to_string()));
}

#[cfg(target_os = "linux")]
#[test]
fn linux_desktop_entry_is_valid_and_runs_vblaunch_for_the_vm() {
    let w = World::fake();
    let name = "Dev \"Box\" $HOME é";
    w.create_vm(name, 16);
    let dest = w.path("apps");
    // No zenity or kdialog on PATH: the terminal entry (tests/cli/desktop.rs
    // has the other one).
    let empty = w.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = run(
        &w,
        &["shortcut", name, "--dest", dest.to_str().unwrap()],
        &[("PATH", empty.into_os_string())],
    );
    assert_eq!(r.code, 0, "{r}");
    let file = only_file(&dest);
    assert!(file.to_string_lossy().ends_with(".desktop"));
    let text = std::fs::read_to_string(&file).unwrap();
    let exe = std::fs::canonicalize(VBLAUNCH).unwrap();
    let exec = text.lines().find_map(|l| l.strip_prefix("Exec=")).unwrap();
    assert_eq!(
        exec,
        format!(
            "{} --pause-on-error launch -- \"Dev \\\\\"Box\\\\\" \\\\$HOME é\"",
            exe.display()
        ),
        "{text}"
    );
    assert!(
        text.contains("\nIcon=virtualbox\n") && text.contains("\nTerminal=true\n"),
        "{text}"
    );
    if tool(
        "desktop-file-validate",
        "linux_desktop_entry_is_valid_and_runs_vblaunch_for_the_vm",
    ) {
        let out = std::process::Command::new("desktop-file-validate")
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout.is_empty(),
            "desktop-file-validate: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[cfg(unix)]
#[test]
fn an_unknown_vm_gets_no_shortcut() {
    let w = World::fake();
    w.create_vm("Known", 16);
    let dest = w.path("apps");
    let r = w.vblaunch(&["shortcut", "Unknown", "--dest", dest.to_str().unwrap()]);
    assert_eq!(r.code, 7, "{r}");
    assert!(!dest.exists() || std::fs::read_dir(&dest).unwrap().next().is_none());
}

#[cfg(windows)]
#[test]
fn windows_lnk_targets_the_gui_exe_with_quoted_arguments() {
    let w = World::fake();
    let env = no_vbox(&w);
    let dest = w.path("links");
    let r = run(
        &w,
        &[
            "shortcut",
            "Dev \"Box\" é",
            "--dest",
            dest.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(r.code, 0, "{r}");
    let file = only_file(&dest);
    assert!(file.to_string_lossy().ends_with(".lnk"));
    let link = lnk::ShellLink::open(&file, lnk::encoding::WINDOWS_1252).unwrap();
    // The GUI executable next to this one (cargo builds it too): no console.
    let exe = std::fs::canonicalize(VBLAUNCH).unwrap();
    let exe = exe.with_file_name("vblaunchw.exe");
    assert!(exe.is_file(), "{}", exe.display());
    let exe = exe.to_string_lossy();
    let exe = exe.strip_prefix(r"\\?\").unwrap_or(&exe);
    assert_eq!(link.link_target().as_deref(), Some(exe));
    assert_eq!(
        link.string_data().command_line_arguments().as_deref(),
        Some(r#"--pause-on-error launch -- "Dev \"Box\" é""#)
    );
}
