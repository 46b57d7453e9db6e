//! Hardening (issue 13): one lock per VM identity, only vblaunch's own files
//! deleted, private files, no writing through planted links.
use std::os::unix::fs::PermissionsExt;

use crate::support::*;

fn spawn_vblaunch(w: &World, args: &[&str]) -> std::process::Child {
    let mut cmd = std::process::Command::new(VBLAUNCH);
    w.base_env_pub(&mut cmd);
    cmd.env("VBLAUNCH_VBOXMANAGE", w.vboxmanage_exe())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    cmd.spawn().unwrap()
}

/// Two runs for one VM, one by name and one by UUID, while the first read
/// answers late (as of when it was asked): exactly one proceeds, the other
/// is refused with exit 4 before it reads, and the VM ends folded once per
/// round. Before the fix, the run by name planned on a stale read after the
/// other had folded.
#[test]
fn runs_by_name_and_by_uuid_exclude_each_other_before_reading() {
    let w = World::fake();
    w.write_config("quick_read = \"never\"\n");
    let vm = w.create_vm("Mixed VM", 16);
    assert_eq!(w.vblaunch(&["fold", "Mixed VM"]).code, 0);
    for round in 0..8 {
        let before = w.info(&vm.uuid).current_snapshot.unwrap();
        // The first `showvminfo` of the round answers 1.5 s late.
        fault(&w, &["showvminfo", "delay", "1500"]);
        let (first, second) = if round % 2 == 0 {
            ("Mixed VM", vm.uuid.as_str())
        } else {
            (vm.uuid.as_str(), "Mixed VM")
        };
        let a = spawn_vblaunch(&w, &["fold", first]);
        let b = spawn_vblaunch(&w, &["fold", second]);
        let outs = [a.wait_with_output().unwrap(), b.wait_with_output().unwrap()];
        let mut codes: Vec<i32> = outs.iter().map(|o| o.status.code().unwrap_or(-1)).collect();
        codes.sort();
        let shown: Vec<String> = outs
            .iter()
            .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
            .collect();
        assert_eq!(codes, [0, 4], "round {round}: {shown:#?}");
        assert_folded(&w, &vm.uuid, "current");
        assert_ne!(w.info(&vm.uuid).current_snapshot.unwrap(), before);
        assert_eq!(w.info(&vm.uuid).snapshots.len(), 1, "{}", w.state(&vm.uuid));
    }
}

/// Two registered VMs with one name: refused (exit 7) naming both UUIDs,
/// nothing changed; each one by its UUID works.
#[test]
fn two_vms_with_one_name_are_refused_listing_both_uuids() {
    let w = World::fake();
    let a = w.create_vm("Twin", 16);
    let b = w.register_empty_vm("Twin", &w.path("vms2"));
    let before = w.state(&a.uuid);
    let r = w.vblaunch(&["fold", "Twin"]);
    assert_eq!(r.code, 7, "{r}");
    assert!(r.stderr.contains(&a.uuid) && r.stderr.contains(&b), "{r}");
    assert!(r.stderr.contains("pass its UUID"), "{r}");
    assert_eq!(w.state(&a.uuid), before);
    assert_eq!(w.vblaunch(&["fold", &a.uuid]).code, 0);
}

/// A VM name that looks like an option is never taken for one: an unknown
/// one is "not found" (exit 7), not a VBoxManage syntax error.
#[test]
fn a_name_like_an_option_is_a_name() {
    let w = World::fake();
    let r = w.vblaunch(&["fold", "--", "-x"]);
    assert_eq!(r.code, 7, "{r}");
    assert!(r.stderr.contains("no VM named '-x'"), "{r}");
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

/// After a fold, the data dir and its folders are 0700 and every file in it
/// is 0600 (the backups of the VM's 0600 `.vbox` too).
#[test]
fn the_data_dir_is_private() {
    let w = World::fake();
    let vm = w.create_vm("Private", 16);
    assert_eq!(w.vblaunch(&["fold", "Private"]).code, 0);
    assert_eq!(w.vblaunch(&["fold", "Private"]).code, 0);
    let data = w.path("data/vblaunch");
    let mut stack = vec![data.clone()];
    let mut files = 0;
    while let Some(d) = stack.pop() {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                files += 1;
                assert_eq!(mode(&p), 0o600, "{}", p.display());
            }
        }
    }
    assert!(files >= 4, "log, lock, state, journal, backups");
    assert!(data
        .join(format!("vms/{}/settings-backups", vm.uuid))
        .is_dir());
}

/// A link planted where vblaunch writes (the log, the VM's lock file, its
/// state folder) is refused with an error naming it; its target is not
/// written, truncated or created, and the VM is not changed.
#[test]
fn planted_links_are_refused_and_their_targets_untouched() {
    let w = World::fake();
    let vm = w.create_vm("Linked", 16);
    let data = w.path("data/vblaunch");
    let victim = w.path("victim.txt");
    std::fs::write(&victim, "precious").unwrap();
    let check = |link: &std::path::Path, code: i32| {
        let before = w.state(&vm.uuid);
        let r = w.vblaunch(&["fold", "Linked"]);
        assert_eq!(r.code, code, "{}: {r}", link.display());
        assert!(r.stderr.contains(&link.display().to_string()), "{r}");
        assert!(r.stderr.contains("symbolic link"), "{r}");
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
        if code != 0 {
            assert_eq!(w.state(&vm.uuid), before);
        }
        std::fs::remove_file(link).unwrap();
    };
    // The lock file (by UUID), dangling: its target must not be created.
    std::fs::create_dir_all(data.join("locks")).unwrap();
    let lock = data.join(format!("locks/{}.lock", vm.uuid));
    let ghost = w.path("ghost");
    std::os::unix::fs::symlink(&ghost, &lock).unwrap();
    check(&lock, 12);
    assert!(!ghost.exists());
    // The settings-backups folder, linked to a folder of the user's.
    let projects = w.path("projects");
    std::fs::create_dir_all(projects.join("2000-01-01T00-00-00Z")).unwrap();
    std::fs::write(projects.join("2000-01-01T00-00-00Z/a.vbox"), "mine").unwrap();
    let vmdir = data.join(format!("vms/{}", vm.uuid));
    std::fs::create_dir_all(&vmdir).unwrap();
    let backups = vmdir.join("settings-backups");
    std::os::unix::fs::symlink(&projects, &backups).unwrap();
    check(&backups, 12);
    assert!(projects.join("2000-01-01T00-00-00Z/a.vbox").exists());
    // The log: vblaunch goes on without it (saying so), never appending to
    // the target, and the error does not point at a log it did not write.
    let log = data.join("vblaunch.log");
    std::fs::remove_file(&log).unwrap();
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let r = w.vblaunch(&["fold", "NoSuchVM"]);
    assert_eq!(r.code, 7, "{r}");
    assert!(r.stderr.contains("continuing without a log file"), "{r}");
    assert!(r.stderr.contains(&log.display().to_string()), "{r}");
    assert!(!r.stderr.contains("(log file:"), "{r}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious");
}

/// Settings-backup pruning keeps what vblaunch did not make: a folder of
/// the user's in settings-backups survives more folds than `settings_backups`.
#[test]
fn pruning_keeps_folders_vblaunch_did_not_make() {
    let w = World::fake();
    w.write_config("settings_backups = 2\n");
    let vm = w.create_vm("Pruned", 16);
    let root = w.path(&format!("data/vblaunch/vms/{}/settings-backups", vm.uuid));
    std::fs::create_dir_all(root.join("0-my-notes")).unwrap();
    std::fs::write(root.join("0-my-notes/notes.txt"), "mine").unwrap();
    for _ in 0..4 {
        assert_eq!(w.vblaunch(&["fold", "Pruned"]).code, 0);
    }
    assert!(root.join("0-my-notes/notes.txt").exists());
    let n = std::fs::read_dir(&root).unwrap().count();
    assert!(n <= 3, "two backups and the user's folder: {n}");
}

/// A VM name that starts with `-`: the shortcut passes `launch -- <name>`,
/// and that command line works.
#[test]
fn a_shortcut_for_a_dash_name_passes_it_after_double_dash() {
    let w = World::fake();
    w.create_vm("-dash VM", 16);
    let dest = w.path("apps");
    let r = w.vblaunch(&[
        "shortcut",
        "--dest",
        dest.to_str().unwrap(),
        "--",
        "-dash VM",
    ]);
    assert_eq!(r.code, 0, "{r}");
    let file = std::fs::read_dir(&dest)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(" --pause-on-error launch -- \"-dash VM\"\n"),
        "{text}"
    );
    let r = w.vblaunch(&["--pause-on-error", "launch", "--", "-dash VM"]);
    assert_eq!(r.code, 0, "{r}");
}

/// Linux shortcut names that collided (`Dev Box` / `Dev_Box`, `Ü` / `é`)
/// are distinct, so one VM's shortcut never replaces another's.
#[test]
fn linux_shortcut_names_are_unique_per_vm() {
    let w = World::fake();
    let dest = w.path("apps");
    for name in ["Dev Box", "Dev_Box", "Ü", "é"] {
        w.create_vm(name, 16);
        let r = w.vblaunch(&["shortcut", "--dest", dest.to_str().unwrap(), "--", name]);
        assert_eq!(r.code, 0, "{name}: {r}");
    }
    assert_eq!(std::fs::read_dir(&dest).unwrap().count(), 4);
}

/// A VM name with a newline and an escape character: listed (escaped, on
/// one line), its log lines cannot pass for records of their own, and its
/// shortcut names it by UUID with a valid desktop entry.
#[test]
fn a_name_with_control_characters_is_listed_escaped_and_forges_nothing() {
    let w = World::fake();
    let name = "Evil\n2026-01-01T00:00:00Z [INFO] forged\u{1b}[2J";
    let vm = w.create_vm(name, 16);
    let r = w.vblaunch(&["list"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout
            .lines()
            .any(|l| l.starts_with("Evil\\n2026") && l.contains(&vm.uuid)),
        "{r}"
    );
    assert!(!r.stdout.contains('\u{1b}'), "{r}");
    let r = w.vblaunch(&["-v", "fold", &vm.uuid]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!r.stderr.contains('\u{1b}'), "{r}");
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(!log.contains('\u{1b}'));
    for line in log.lines() {
        assert!(
            line.starts_with("    ") || line.starts_with("20") || line.is_empty(),
            "a line that is neither a record nor a continuation: {line:?}"
        );
    }
    assert!(
        !log.lines().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "{log}"
    );
    let dest = w.path("apps");
    let r = w.vblaunch(&["shortcut", "--dest", dest.to_str().unwrap(), "--", name]);
    assert_eq!(r.code, 0, "{r}");
    let file = std::fs::read_dir(&dest)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&format!("launch -- {}\n", vm.uuid)), "{text}");
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert_eq!(text.lines().count(), 10, "no value spans lines: {text}");
}

/// A command-line error with --pause-on-error (a shortcut whose VM name
/// clap rejects) keeps the terminal window open until Enter.
#[test]
fn a_command_line_error_also_pauses() {
    let r = World::fake().vblaunch_in_terminal("--pause-on-error launch -x");
    assert!(
        r.stdout.contains("unexpected argument")
            && r.stdout.contains("Press Enter to close this window."),
        "{r}"
    );
    assert_eq!(r.code, 2, "{r}");
}

/// Output vblaunch cannot parse is a VBoxManage failure (exit 9) that shows
/// what was printed, not an internal error.
#[test]
fn garbage_from_vboxmanage_is_exit_9_showing_its_first_lines() {
    let w = World::fake();
    let script = w.path("garbage-vboxmanage");
    std::fs::write(
        &script,
        "#!/bin/sh\necho 'hello from a broken VBoxManage'\necho second\n",
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = w.vblaunch_env(
        &["fold", "18580ff3-3d30-4242-b9bf-6fe37f9ff5f1"],
        &[("VBLAUNCH_VBOXMANAGE", script.as_os_str())],
    );
    assert_eq!(r.code, 9, "{r}");
    assert!(r.stderr.contains("does not understand"), "{r}");
    assert!(r.stderr.contains("hello from a broken VBoxManage"), "{r}");
}

/// `fold` (which never starts the VM) does not say "the VM was not started".
#[test]
fn a_failed_fold_does_not_talk_about_starting() {
    let w = World::fake();
    let vm = w.create_vm("NoStart", 16);
    fault(
        &w,
        &["snapshot", "take", "fail", "1", "VBoxManage: error: boom"],
    );
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["fold", &vm.uuid]);
    assert_eq!(r.code, 9, "{r}");
    assert!(!r.stderr.contains("not started"), "{r}");
    fault(
        &w,
        &["snapshot", "take", "fail", "1", "VBoxManage: error: boom"],
    );
    let r = w.vblaunch(&["launch", &vm.uuid]);
    assert_eq!(r.code, 9, "{r}");
    assert!(r.stderr.contains("VM 'NoStart' was not started"), "{r}");
    // The failed take changed nothing, and "not started" is true.
    assert_eq!(w.state(&vm.uuid), before);
}

/// A journal in one VM's records that records another VM's unfinished step
/// is not reported as this VM's interrupted run.
#[test]
fn a_journal_of_another_vm_is_not_this_vms_interrupted_step() {
    let w = World::fake();
    let vm = w.create_vm("Own", 16);
    let dir = w.path(&format!("data/vblaunch/vms/{}", vm.uuid));
    std::fs::create_dir_all(&dir).unwrap();
    let journal = "run = \"fold\"\nstarted = \"2026-01-01T00:00:00Z\"\n\n[[entries]]\nstep = \"delete snapshot {x} ('current')\"\nvm = \"00000000-0000-0000-0000-000000000001\"\nstarted = \"2026-01-01T00:00:00Z\"\n";
    std::fs::write(dir.join("journal.toml"), journal).unwrap();
    let r = w.vblaunch(&["doctor", "Own"]);
    assert!(!r.stdout.contains("interrupted"), "{r}");
    let r = w.vblaunch(&["fold", "Own"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!r.stderr.contains("was interrupted"), "{r}");
}

/// A VBoxManage (here a wrapper script) that leaves a child running past
/// `call_timeout_secs`: vblaunch stops the whole call at the deadline and
/// does not wait for the child's pipes (it waited for the child before).
#[test]
fn a_call_timeout_kills_what_the_call_started_and_returns() {
    let w = World::fake();
    w.write_config("call_timeout_secs = 1\n");
    let script = w.path("slow-vboxmanage");
    let pidfile = w.path("child.pid");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nsleep 60 &\necho $! > '{}'\nwait\n",
            pidfile.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let started = std::time::Instant::now();
    let r = w.vblaunch_env(
        &["fold", "18580ff3-3d30-4242-b9bf-6fe37f9ff5f1"],
        &[("VBLAUNCH_VBOXMANAGE", script.as_os_str())],
    );
    let took = started.elapsed();
    assert_eq!(r.code, 9, "{r}");
    assert!(r.stderr.contains("did not finish within"), "{r}");
    assert!(took < std::time::Duration::from_secs(30), "{took:?}: {r}");
    let pid = std::fs::read_to_string(&pidfile).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    assert!(
        stat.is_empty()
            || stat
                .rsplit_once(") ")
                .is_some_and(|(_, r)| r.starts_with('Z')),
        "the call's child {pid} survived: {stat}"
    );
}
