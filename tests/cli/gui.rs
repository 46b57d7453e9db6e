//! `vblaunchw`, the program the shortcuts start: a failure goes to its dialog
//! (here read back through `VBLAUNCH_GUI_TRANSCRIPT`, since no one clicks in
//! CI) with the texts and the exit code `vblaunch` would give. On Windows
//! (under Wine in CI) this runs the GUI-subsystem .exe itself.
use std::path::Path;
use std::process::{Command, Output, Stdio};

use crate::support::*;

const VBLAUNCHW: &str = env!("CARGO_BIN_EXE_vblaunchw");

/// vblaunchw with what its windows show going to `transcript`.
fn vblaunchw_cmd(w: &World, transcript: &Path, args: &[&str]) -> Command {
    let mut cmd = Command::new(VBLAUNCHW);
    w.base_env_pub(&mut cmd);
    cmd.env("VBLAUNCH_VBOXMANAGE", w.vboxmanage_exe())
        .env("VBLAUNCH_CONFIG", w.config_file())
        .env("VBLAUNCH_GUI_TRANSCRIPT", transcript)
        .args(args)
        .stdin(Stdio::null());
    cmd
}

fn vblaunchw(w: &World, transcript: &Path, args: &[&str]) -> Output {
    vblaunchw_cmd(w, transcript, args).output().unwrap()
}

/// The transcript's entries, in the order they were shown.
#[cfg(windows)]
fn entries(transcript: &Path) -> Vec<String> {
    std::fs::read_to_string(transcript)
        .unwrap_or_default()
        .split("\n---\n")
        .filter(|e| !e.is_empty())
        .map(str::to_string)
        .collect()
}

/// A slow merge (the fake prints its progress a step every 250 ms): the
/// progress window says what happens, that it cannot be cancelled, and the
/// merge's percentages as they rise; no failure dialog.
#[cfg(windows)]
#[test]
fn a_slow_fold_shows_the_merge_and_its_percentages_without_cancel() {
    let w = World::fake();
    w.create_vm("Dev Box", 16);
    let shown = w.path("shown.txt");
    let args = ["--pause-on-error", "launch", "Dev Box"];
    // Yesterday's launch: takes the snapshot the next launch merges.
    let out = vblaunchw(&w, &shown, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert!(entries(&shown).iter().all(|e| !e.contains("Merging")));
    std::fs::remove_file(&shown).ok();
    w.vbox_ok(&["fake", "set-state", "Dev Box", "poweroff"]);
    w.vbox_ok(&["fake", "session", "Dev Box", "-"]);
    w.vbox_ok(&[
        "fake",
        "fault",
        "snapshot",
        "delete",
        "slow-progress",
        "250",
    ]);

    let out = vblaunchw(&w, &shown, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let all = entries(&shown);
    let merging: Vec<&String> = all.iter().filter(|e| e.contains("Merging")).collect();
    assert!(merging.len() >= 3, "{all:#?}");
    for e in &merging {
        assert!(
            e.starts_with("Dev Box — vblaunch\n\nMerging the last session ("),
            "{e}"
        );
        assert!(
            e.contains("into the base disk — it cannot be cancelled\n"),
            "{e}"
        );
        assert!(e.ends_with("[no Cancel]"), "{e}");
    }
    let percents: Vec<u8> = merging
        .iter()
        .filter_map(|e| {
            e.lines().find_map(|l| {
                l.strip_prefix("progress: ")?
                    .strip_suffix('%')?
                    .parse::<u8>()
                    .ok()
            })
        })
        .collect();
    assert!(percents.windows(2).all(|p| p[0] < p[1]), "{percents:?}");
    assert!(
        percents.iter().any(|p| (10..100).contains(p)),
        "{percents:?}"
    );
    assert!(all.iter().all(|e| !e.contains("[Close]")), "{all:#?}");
}

/// `wait = true`: the notification icon while the VM runs, then (the VM
/// shut down, the session folded) the balloon; exit 0.
#[cfg(windows)]
#[test]
fn a_held_session_shows_the_icon_then_the_balloon() {
    let w = World::fake();
    w.create_vm("Dev Box", 16);
    w.write_config("wait = true\nfold_on_exit = true\nwait_poll_ms = 50\n");
    let shown = w.path("shown.txt");
    let mut child = vblaunchw_cmd(&w, &shown, &["--pause-on-error", "launch", "Dev Box"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    while !entries(&shown)
        .iter()
        .any(|e| e.starts_with("notification icon: "))
    {
        assert!(
            child.try_wait().unwrap().is_none(),
            "{:#?}",
            entries(&shown)
        );
        assert!(
            std::time::Instant::now() < deadline,
            "{:#?}",
            entries(&shown)
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(w.info("Dev Box").state, "running");
    w.vbox_ok(&["fake", "set-state", "Dev Box", "poweroff"]);
    w.vbox_ok(&["fake", "session", "Dev Box", "-"]);
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{:#?}", entries(&shown));
    let all = entries(&shown);
    let icon = all.iter().position(|e| {
        e == "notification icon: Dev Box is running — its base disk is frozen and safe to \
              back up\nmenu: [Status] [Open log] [Stop waiting]"
    });
    let balloon = all
        .iter()
        .position(|e| e == "balloon: Dev Box: today's work is in the base disk");
    assert!(icon.is_some() && icon < balloon, "{all:#?}");
    // The session was folded on exit: vblaunch's snapshot is gone.
    assert!(w.info("Dev Box").snapshots.is_empty(), "{all:#?}");
}

/// A second launch from the shortcut while vblaunch holds the VM: if the VM
/// runs, a note and exit 0; if not (a fold in progress), the lock dialog.
#[cfg(unix)]
#[test]
fn a_second_launch_of_a_held_running_vm_says_it_runs_and_exits_0() {
    let w = World::fake();
    let vm = w.create_vm("Dev Box", 16);
    std::fs::create_dir_all(w.lock_dir()).unwrap();
    // vblaunch locks a VM by its UUID.
    let lock = std::fs::File::create(w.lock_dir().join(format!("{}.lock", vm.uuid))).unwrap();
    lock.try_lock().unwrap();
    let shown = w.path("dialogs.txt");
    let args = ["--pause-on-error", "launch", "Dev Box"];

    // Held, VM powered off: the usual "already working" failure, exit 4.
    let out = vblaunchw(&w, &shown, &args);
    assert_eq!(out.status.code(), Some(4), "{out:?}");
    let text = std::fs::read_to_string(&shown).unwrap();
    assert!(
        text.contains("vblaunch is already working on this VM"),
        "{text}"
    );
    std::fs::remove_file(&shown).unwrap();

    // Held, VM running (on its snapshot): no error.
    w.vbox_ok(&["snapshot", "Dev Box", "take", "current"]);
    w.vbox_ok(&["fake", "set-state", "Dev Box", "running"]);
    let out = vblaunchw(&w, &shown, &args);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(&shown).unwrap();
    assert_eq!(
        text,
        "Dev Box — vblaunch\n\nDev Box is already running.\n[OK]\n---\n"
    );
    drop(lock);
}

/// A double-click on the shortcut of a VM that already runs (started from
/// VirtualBox, or by a launch that waits for it): no wait for its window to
/// close, nothing folded or started; its window comes to the front, or (none
/// found, as here) a note says it runs; exit 0.
#[test]
fn a_launch_of_a_running_vm_shows_it_and_changes_nothing() {
    let w = World::fake();
    w.create_vm("Dev Box", 16);
    w.vbox_ok(&["snapshot", "Dev Box", "take", "current"]);
    w.vbox_ok(&["fake", "set-state", "Dev Box", "running"]);
    let shown = w.path("dialogs.txt");
    let out = vblaunchw(&w, &shown, &["--pause-on-error", "launch", "Dev Box"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    assert_eq!(
        std::fs::read_to_string(&shown).unwrap(),
        "Dev Box — vblaunch\n\nDev Box is already running.\n[OK]\n---\n"
    );
    assert_eq!(
        w.info("Dev Box").snapshots.len(),
        1,
        "nothing taken or merged"
    );
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(log.contains("Dev Box is already running."), "{log}");
}

/// The same for a VM started from VirtualBox without a snapshot: it writes
/// into its base disk, and the note says so (never a silent "it runs").
#[test]
fn a_launch_of_a_vm_running_without_a_snapshot_says_its_base_is_not_frozen() {
    let w = World::fake();
    w.create_vm("Dev Box", 16);
    w.vbox_ok(&["fake", "set-state", "Dev Box", "running"]);
    let shown = w.path("dialogs.txt");
    let out = vblaunchw(&w, &shown, &["--pause-on-error", "launch", "Dev Box"]);
    assert_eq!(out.status.code(), Some(0), "{out:?}");
    let text = std::fs::read_to_string(&shown).unwrap();
    assert!(
        text.contains("without a snapshot")
            && text.contains("writes straight into its base disk")
            && text.contains("start it from this shortcut"),
        "{text}"
    );
    assert!(w.info("Dev Box").snapshots.is_empty(), "nothing taken");
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(log.contains("writes straight into its base disk"), "{log}");
}

#[test]
fn gui_failure_shows_the_dialog_texts_and_keeps_the_exit_code() {
    let w = World::fake();
    let transcript = w.path("dialogs.txt");
    let out = vblaunchw(
        &w,
        &transcript,
        &["--pause-on-error", "launch", "No Such VM"],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The same exit code as vblaunch: 7, the VM is not registered.
    assert_eq!(out.status.code(), Some(7), "{stderr}");
    let shown = std::fs::read_to_string(&transcript).expect("a dialog was shown");
    assert_eq!(shown.matches("\n---\n").count(), 1, "one dialog:\n{shown}");
    for part in [
        "No Such VM — vblaunch",
        "VirtualBox does not know this VM",
        "No Such VM",
        "Exit code 7 · log: ",
        "[Open log] [Run doctor] [Copy details] [Close]",
    ] {
        assert!(shown.contains(part), "{part:?} missing from:\n{shown}");
    }
    // Everything still goes to the log file.
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(log.contains("No Such VM"), "{log}");
}

/// A failure with no VM to diagnose (a command-line error) offers no *Run
/// doctor*: `vblaunch doctor` needs a VM, and the program name is not one.
#[test]
fn a_command_line_error_shows_the_dialog_without_run_doctor() {
    let w = World::fake();
    let transcript = w.path("dialogs.txt");
    let out = vblaunchw(&w, &transcript, &["--no-such-option", "launch", "Dev Box"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = std::fs::read_to_string(&transcript).expect("a dialog was shown");
    assert!(
        shown.contains("Exit code 2 · log: ")
            && shown.contains("[Open log] [Copy details] [Close]"),
        "{shown}"
    );
    assert!(!shown.contains("Run doctor"), "{shown}");
}

/// The PE optional header's Subsystem field: 2 = GUI (no console is made
/// when it starts), 3 = console.
#[cfg(windows)]
fn pe_subsystem(exe: &str) -> u16 {
    let b = std::fs::read(exe).unwrap();
    let pe = u32::from_le_bytes(b[0x3C..0x40].try_into().unwrap()) as usize;
    assert_eq!(&b[pe..pe + 4], b"PE\0\0", "{exe} is not a PE file");
    // signature (4) + COFF header (20) + Subsystem's offset in the optional header (68)
    let at = pe + 4 + 20 + 68;
    u16::from_le_bytes(b[at..at + 2].try_into().unwrap())
}

#[cfg(windows)]
#[test]
fn vblaunchw_is_a_gui_exe_and_vblaunch_stays_a_console_one() {
    assert_eq!(
        pe_subsystem(VBLAUNCHW),
        2,
        "vblaunchw.exe must open no console"
    );
    assert_eq!(
        pe_subsystem(VBLAUNCH),
        3,
        "vblaunch.exe stays a console program"
    );
}
