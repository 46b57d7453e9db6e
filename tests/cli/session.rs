//! The whole session: --wait, fold_on_exit, hooks, notifications (fake VBoxManage).
use std::io::Read;
use std::process::{Command, Stdio};

use crate::support::*;

fn calls(w: &World) -> Vec<String> {
    std::fs::read_to_string(w.path("vbox/fake-calls.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.replace('\t', " "))
        .collect()
}

/// Start `vblaunch args` with stderr piped; return it once `marker` was printed.
fn spawn_until(
    w: &World,
    args: &[&str],
    marker: &str,
    extra_path: Option<&std::path::Path>,
    env: &[(&str, &std::path::Path)],
) -> (std::process::Child, String) {
    spawn_until_in(w, args, marker, extra_path, env, false)
}

/// [`spawn_until`], optionally as the leader of a new process group (like a
/// command a terminal runs in the foreground).
fn spawn_until_in(
    w: &World,
    args: &[&str],
    marker: &str,
    extra_path: Option<&std::path::Path>,
    env: &[(&str, &std::path::Path)],
    own_group: bool,
) -> (std::process::Child, String) {
    let mut cmd = Command::new(VBLAUNCH);
    if own_group {
        use std::os::unix::process::CommandExt;
        cmd.process_group(0);
    }
    w.base_env_pub(&mut cmd);
    cmd.env("VBLAUNCH_VBOXMANAGE", fake_vboxmanage());
    if let Some(p) = extra_path {
        let path = format!(
            "{}:{}",
            p.display(),
            std::env::var("PATH").unwrap_or_default()
        );
        cmd.env("PATH", path);
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let err = child.stderr.as_mut().unwrap();
    while !String::from_utf8_lossy(&seen).contains(marker) {
        let n = err.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "vblaunch ended before {marker:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    (child, String::from_utf8_lossy(&seen).into_owned())
}

fn finish(mut child: std::process::Child, mut seen: String) -> (i32, String) {
    let mut rest = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    seen.push_str(&rest);
    (child.wait().unwrap().code().unwrap_or(-1), seen)
}

const HOOKS: &str = r#"
[hooks]
before_fold = ["sh", "-c", "echo \"before_fold $VBLAUNCH_EVENT|$VBLAUNCH_VM|$VBLAUNCH_VM_UUID|$VBLAUNCH_BASE_DISKS\" >> \"$HOOK_LOG\""]
after_fold = ["sh", "-c", "echo \"after_fold $VBLAUNCH_EVENT|$VBLAUNCH_VM_DIR\" >> \"$HOOK_LOG\""]
after_start = ["sh", "-c", "echo after_start >> \"$HOOK_LOG\""]
after_exit = ["sh", "-c", "echo after_exit >> \"$HOOK_LOG\""]
"#;

#[test]
fn wait_returns_when_the_vm_powers_off_and_fold_on_exit_merges_the_session() {
    let w = World::fake();
    let vm = w.create_vm("Session", 16);
    w.write_config(&format!(
        "wait = true\nfold_on_exit = true\nwait_poll_ms = 20\n{HOOKS}"
    ));
    // Hooks get vblaunch's environment: HOOK_LOG tells them where to write.
    let hook_log = w.path("hooks.log");
    let (child, seen) = spawn_until(
        &w,
        &["Session"],
        "Waiting for VM 'Session' to shut down",
        None,
        &[("HOOK_LOG", &hook_log)],
    );
    assert_eq!(w.info(&vm.uuid).state, "running");
    // The guest writes, then shuts down.
    w.write_bytes(&w.leaf(&vm.uuid), 0, "today's work");
    let today = w.content(&w.leaf(&vm.uuid));
    w.vbox_ok(&["controlvm", &vm.uuid, "poweroff"]);
    let (code, out) = finish(child, seen);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("has stopped") && out.contains("folded on exit"),
        "{out}"
    );
    // The session is in the base now, and no snapshot is left.
    let info = w.info(&vm.uuid);
    assert!(info.snapshots.is_empty(), "{}", w.state(&vm.uuid));
    assert_eq!(w.content(&vm.base), today);
    let c = calls(&w);
    let start = c.iter().position(|l| l.starts_with("startvm")).unwrap();
    assert!(c[start..].iter().any(|l| l.contains(" delete ")), "{c:#?}");
    assert!(
        !c[start..].iter().any(|l| l.contains(" take ")),
        "no snapshot is taken on exit: {c:#?}"
    );
    // Hooks ran in order, with the VM in their environment.
    let log = std::fs::read_to_string(&hook_log).unwrap();
    let events: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap()).collect();
    assert_eq!(
        events,
        [
            "before_fold",
            "after_fold",
            "after_start",
            "after_exit",
            "before_fold",
            "after_fold"
        ],
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "before_fold before_fold|Session|{}|{}",
            vm.uuid,
            vm.base.display()
        )),
        "{log}"
    );
    // The next launch takes a fresh snapshot before starting.
    w.write_config("");
    let r = w.vblaunch(&["Session"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
}

/// Ctrl-C in the terminal (SIGINT to vblaunch's whole process group) stops
/// Real VirtualBox ends a session in steps after a power-off (fixture 49):
/// `poweroff` with the session name still set, then one `showvminfo` that
/// fails ("Failed to get a console object from the direct session"), then
/// the session is gone. The wait must ride that out and still fold on exit.
#[test]
fn wait_rides_out_the_session_closing_after_a_power_off() {
    let w = World::fake();
    let vm = w.create_vm("Closing", 16);
    w.vbox_ok(&["fake", "linger", "on"]);
    w.write_config("wait = true\nfold_on_exit = true\nwait_poll_ms = 20\n");
    let (child, seen) = spawn_until(
        &w,
        &["Closing"],
        "Waiting for VM 'Closing' to shut down",
        None,
        &[],
    );
    w.write_bytes(&w.leaf(&vm.uuid), 0, "session work");
    let today = w.content(&w.leaf(&vm.uuid));
    w.vbox_ok(&["controlvm", &vm.uuid, "poweroff"]);
    let (code, out) = finish(child, seen);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("folded on exit"), "{out}");
    assert!(
        w.info(&vm.uuid).snapshots.is_empty(),
        "{}",
        w.state(&vm.uuid)
    );
    assert_eq!(w.content(&vm.base), today);
    // The fake went through the steps (the transient failure included).
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(
        log.contains("the VM's session is closing; asking again"),
        "{log}"
    );
}

/// The fake's closing session, step by step, matches the recording.
#[test]
fn fake_session_closes_in_the_steps_real_virtualbox_takes() {
    let w = World::fake();
    let vm = w.create_vm("W", 16);
    w.vbox_ok(&["fake", "linger", "on"]);
    w.vbox_ok(&["startvm", "W"]);
    w.vbox_ok(&["controlvm", "W", "poweroff"]);
    let first = w.info("W");
    assert_eq!(
        (first.state.as_str(), first.session_name.as_deref()),
        ("poweroff", Some("GUI/Qt"))
    );
    let r = w.vbox(&["showvminfo", "W", "--machinereadable"]);
    let fx = |ext: &str| {
        std::fs::read_to_string(
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/fixtures/49-showvminfo-session-closing."
            )
            .to_string()
                + ext,
        )
        .unwrap()
    };
    assert_eq!(r.stderr, fx("stderr"));
    assert_eq!(r.stdout, fx("stdout"));
    assert_eq!(r.code.to_string(), fx("exit").trim());
    let last = w.info(&vm.uuid);
    assert_eq!((last.state.as_str(), last.session_name), ("poweroff", None));
}

/// the waiting, never the VM: no call that could stop it, the VM still
/// running, the lock released.
#[test]
fn ctrl_c_while_waiting_stops_vblaunch_not_the_vm() {
    let w = World::fake();
    let vm = w.create_vm("Interrupted", 16);
    w.write_config("wait = true\nfold_on_exit = true\nwait_poll_ms = 20\n");
    let (child, seen) = spawn_until_in(
        &w,
        &["Interrupted"],
        "Waiting for VM 'Interrupted'",
        None,
        &[],
        true,
    );
    let started = calls(&w).len();
    let pgid = child.id();
    let st = Command::new("kill")
        .args(["-INT", "--", &format!("-{pgid}")])
        .status()
        .unwrap();
    assert!(st.success());
    let (code, out) = finish(child, seen);
    assert_ne!(code, 0, "{out}");
    assert_eq!(w.info(&vm.uuid).state, "running", "{out}");
    let c = calls(&w);
    assert!(
        c[started..]
            .iter()
            .all(|l| l.starts_with("showvminfo") || l.starts_with("list")),
        "only reads after the start: {c:#?}"
    );
    // The lock went with the process: the next run gets as far as the VM's
    // state (running: refused, exit 5), not "another vblaunch runs" (4).
    let r = w.vblaunch(&["fold", "Interrupted", "--no-wait"]);
    assert_eq!(r.code, 5, "{r}");
}

#[test]
fn a_saved_session_is_not_folded_on_exit() {
    let w = World::fake();
    let vm = w.create_vm("Saved", 16);
    w.write_config("wait = true\nfold_on_exit = true\nwait_poll_ms = 20\n");
    let (child, seen) = spawn_until(&w, &["Saved"], "Waiting for VM", None, &[]);
    w.vbox_ok(&["controlvm", &vm.uuid, "savestate"]);
    let (code, out) = finish(child, seen);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("was not shut down (state: saved)"), "{out}");
    assert_eq!(w.info(&vm.uuid).snapshots.len(), 1);
}

#[test]
fn a_failing_before_fold_hook_stops_the_launch_with_nothing_changed() {
    let w = World::fake();
    let vm = w.create_vm("Hooked", 16);
    assert_eq!(w.vblaunch(&["fold", "Hooked"]).code, 0);
    w.write_config(
        "[hooks]\nbefore_fold = [\"sh\", \"-c\", \"echo disk check failed >&2; exit 4\"]\n",
    );
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["Hooked"]);
    assert_eq!(r.code, 13, "{r}");
    assert!(
        r.stderr.contains("before_fold")
            && r.stderr.contains("disk check failed")
            && r.stderr.contains("nothing was changed"),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before);
    assert!(!calls(&w).iter().any(|c| c.starts_with("startvm")));
}

#[test]
fn a_hanging_hook_is_killed_at_its_timeout_and_the_launch_goes_on() {
    let w = World::fake();
    let vm = w.create_vm("Slow", 16);
    w.write_config("[hooks]\nafter_fold = [\"sleep\", \"600\"]\ntimeout_secs = 1\n");
    let t = std::time::Instant::now();
    let r = w.vblaunch(&["Slow"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(t.elapsed() < std::time::Duration::from_secs(60));
    assert!(
        r.stderr.contains("after_fold hook failed") && r.stderr.contains("did not finish within"),
        "{r}"
    );
    assert_eq!(w.info(&vm.uuid).state, "running");
}

#[test]
fn a_failure_after_a_wait_session_is_notified_on_the_desktop() {
    let w = World::fake();
    let vm = w.create_vm("Notify", 16);
    w.write_config("wait = true\nfold_on_exit = true\nwait_poll_ms = 20\n");
    // A stand-in notify-send that records what it was asked to show.
    let bin = w.path("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let record = w.path("notified.txt");
    let script = bin.join("notify-send");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nprintf '%s\\n' \"$@\" > '{}'\n",
            record.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (child, seen) = spawn_until(&w, &["Notify"], "Waiting for VM", Some(&bin), &[]);
    w.vbox_ok(&[
        "fake",
        "fault",
        "snapshot",
        "delete",
        "fail",
        "1",
        "VBoxManage: error: Unable to merge storage '/x'. Not enough free storage space",
    ]);
    w.vbox_ok(&["controlvm", &vm.uuid, "poweroff"]);
    let (code, out) = finish(child, seen);
    assert_eq!(code, 9, "{out}");
    let shown = std::fs::read_to_string(&record).expect("notify-send was called");
    assert!(
        shown.contains("vblaunch: VM 'Notify'") && shown.contains("Not enough free storage space"),
        "{shown}"
    );
}
