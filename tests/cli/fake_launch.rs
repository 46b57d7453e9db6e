//! vblaunch against the fake VBoxManage: exact call sequences, the start step
//! (which real VirtualBox cannot do here), refusals and injected failures.
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::*;

/// The calls the fake received, each as its argv joined by single spaces.
fn calls(w: &World) -> Vec<String> {
    let log = std::fs::read_to_string(w.path("vbox/fake-calls.log")).unwrap_or_default();
    log.lines()
        .map(|l| {
            l.split('\t')
                .map(|a| {
                    a.replace("\\t", "\t")
                        .replace("\\n", "\n")
                        .replace("\\\\", "\\")
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect()
}

fn clear_calls(w: &World) {
    let _ = std::fs::remove_file(w.path("vbox/fake-calls.log"));
}

/// Calls that change something (everything but showvminfo / list / --version).
fn mutations(w: &World) -> Vec<String> {
    calls(w)
        .into_iter()
        .filter(|c| {
            !(c.starts_with("showvminfo ") || c.starts_with("list ") || c.starts_with("--version"))
        })
        .collect()
}

fn last_start(w: &World) -> String {
    calls(w)
        .into_iter()
        .rev()
        .find(|c| c.starts_with("startvm"))
        .unwrap_or_default()
}

/// Whether a logged call is one of vblaunch's reads of the VM.
fn is_read(call: &str) -> bool {
    call.starts_with("showvminfo") || call.starts_with("list ")
}

/// A VM that has been folded once (so it has a marked "current").
fn adopted(w: &World, name: &str) -> Vm {
    let vm = w.create_vm(name, 32);
    let r = w.vblaunch(&["fold", name]);
    assert_eq!(r.code, 0, "{r}");
    clear_calls(w);
    vm
}

#[test]
fn first_launch_takes_current_by_uuid_verifies_and_starts() {
    let w = World::fake();
    let vm = w.create_vm("Dev Box", 32);
    clear_calls(&w);
    let r = w.vblaunch(&["Dev Box"]);
    assert_eq!(r.code, 0, "{r}");
    let c = calls(&w);
    // The name resolved to the VM's UUID from VirtualBox's files, no call
    // (the lock is by UUID, taken before the read the plan uses); then one
    // read (with the settings file), the take, its record in the VM's
    // extradata, the start: the result is verified from the settings file
    // VirtualBox saved, with no call.
    assert_eq!(c.len(), 4, "{c:#?}");
    assert_eq!(c[0], "list --multiple vms runningvms hdds");
    let prefix = format!(
        "snapshot {} take current --description=vblaunch: taken ",
        vm.uuid
    );
    assert!(c[1].starts_with(&prefix), "{c:#?}");
    let taken = w.info(&vm.uuid).current_snapshot.unwrap();
    assert_eq!(
        c[2],
        format!("setextradata {} vblaunch/own {taken}", vm.uuid)
    );
    assert_eq!(c[3], format!("startvm {} --type gui", vm.uuid));
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.info(&vm.uuid).state, "running");
    assert!(r.stderr.contains("no vblaunch snapshot yet"), "{r}");
    assert!(
        r.stderr
            .contains(&format!("safe to back up: {}", vm.base.display())),
        "{r}"
    );
}

#[test]
fn a_settings_file_that_lags_behind_is_checked_against_virtualbox_itself() {
    let w = World::fake();
    let vm = adopted(&w, "Lag");
    let old = w.info(&vm.uuid).current_snapshot.unwrap();
    clear_calls(&w);
    // The last step (deleting the old "current") works, but the settings
    // file still shows the tree before it.
    fault(&w, &["snapshot", "delete", "stale-settings"]);
    let r = w.vblaunch(&["fold", "Lag"]);
    assert_eq!(r.code, 0, "{r}");
    let c = calls(&w);
    // The file did not show the snapshot just taken, so VirtualBox was asked.
    assert_eq!(c.iter().filter(|l| is_read(l)).count(), 3, "{c:#?}");
    assert_eq!(c.len(), 6, "{c:#?}");
    assert_folded(&w, &vm.uuid, "current");
    assert_ne!(w.info(&vm.uuid).current_snapshot.unwrap(), old);

    // The file still lags: the next read sees that its disk chain is not
    // VirtualBox's, and reads the full way.
    clear_calls(&w);
    let r = w.vblaunch(&["fold", "Lag"]);
    assert_eq!(r.code, 0, "{r}");
    let c = calls(&w);
    assert_eq!(c[0], "list --multiple vms runningvms hdds", "{c:#?}");
    assert_eq!(
        c[1],
        format!("showvminfo {} --machinereadable", vm.uuid),
        "{c:#?}"
    );
    assert_eq!(c[2], "list hdds", "{c:#?}");
    assert!(log(&w).contains("differs from VirtualBox's"));
    assert_folded(&w, &vm.uuid, "current");
}

fn log(w: &World) -> String {
    std::fs::read_to_string(w.path("data/vblaunch/vblaunch.log")).unwrap()
}

#[test]
fn the_quick_read_is_used_only_when_it_can_be_trusted() {
    let w = World::fake();
    let vm = adopted(&w, "Q");
    let first_read = |w: &World| {
        clear_calls(w);
        let r = w.vblaunch(&["fold", "Q"]);
        assert_eq!(r.code, 0, "{r}");
        assert_folded(w, &vm.uuid, "current");
        let mut c = calls(w);
        c.remove(0)
    };
    assert_eq!(first_read(&w), "list --multiple vms runningvms hdds");
    assert!(log(&w).contains("read from one list call and the settings file"));
    // Turned off.
    w.write_config("quick_read = \"never\"\n");
    assert_eq!(
        first_read(&w),
        format!("showvminfo {} --machinereadable", vm.uuid)
    );
    // "auto" with a guard list that misses default front ends: the scan no
    // longer stands in for the states the quick read cannot see.
    w.write_config("quick_read = \"auto\"\n");
    assert_eq!(
        first_read(&w),
        format!("showvminfo {} --machinereadable", vm.uuid)
    );
    // An older VBoxManage without `list --multiple`: the full read.
    w.write_config("");
    fault(
        &w,
        &[
            "list",
            "--multiple",
            "fail",
            "2",
            "VBoxManage: error: Unknown option: --multiple",
        ],
    );
    clear_calls(&w);
    let r = w.vblaunch(&["fold", "Q"]);
    assert_eq!(r.code, 0, "{r}");
    let c = calls(&w);
    assert_eq!(
        c[..3],
        [
            "list --multiple vms runningvms hdds".to_string(),
            format!("showvminfo {} --machinereadable", vm.uuid),
            "list hdds".to_string()
        ],
        "{c:#?}"
    );
    assert!(log(&w).contains("`list --multiple vms runningvms hdds` failed"));
    // A settings file VirtualBox.xml does not register: the full read.
    // (Without VirtualBox.xml the name is resolved by VirtualBox: `list vms`.)
    std::fs::remove_file(w.path("vbox/VirtualBox.xml")).unwrap();
    assert_eq!(first_read(&w), "list vms");
    assert_eq!(calls(&w)[1], "list --multiple vms runningvms hdds");
    assert!(log(&w).contains("no VirtualBox.xml found"));
    assert!(calls(&w).iter().any(|c| c.starts_with("showvminfo")));
}

#[test]
fn a_result_neither_the_file_nor_virtualbox_confirms_is_exit_10_and_not_started() {
    let w = World::fake();
    let vm = adopted(&w, "Odd");
    fault(&w, &["snapshot", "take", "misname"]);
    let r = w.vblaunch(&["Odd"]);
    assert_eq!(r.code, 10, "{r}");
    assert!(
        r.stderr.contains("named 'current (2)', not 'current'")
            && r.stderr.contains("The VM was not started"),
        "{r}"
    );
    let c = calls(&w);
    // Checked in the file, then through VirtualBox, which confirms the problem.
    assert!(c[c.len() - 2..].iter().all(|l| is_read(l)), "{c:#?}");
    assert!(!c.iter().any(|l| l.starts_with("startvm")), "{c:#?}");
    assert_eq!(w.info(&vm.uuid).state, "poweroff");
}

#[test]
fn second_launch_deletes_the_old_current_by_uuid_and_keeps_the_data() {
    let w = World::fake();
    let vm = adopted(&w, "Dev Box");
    let old = w.info(&vm.uuid).current_snapshot.unwrap();
    let leaf = w.leaf(&vm.uuid);
    w.write_bytes(&leaf, 4096, "work of the day");
    let before = w.content(&leaf);
    let r = w.vblaunch(&["--type", "headless", "Dev Box"]);
    assert_eq!(r.code, 0, "{r}");
    let m = mutations(&w);
    assert_eq!(m.len(), 4, "{m:#?}");
    // The new snapshot first, so the base is never unprotected (recorded as
    // vblaunch's, with the one it had); then the merge.
    assert!(m[0].starts_with(&format!("snapshot {} take current --description=", vm.uuid)));
    let new = w.info(&vm.uuid).current_snapshot.unwrap();
    assert_eq!(
        m[1],
        format!("setextradata {} vblaunch/own {old} {new}", vm.uuid)
    );
    assert_eq!(m[2], format!("snapshot {} delete {old}", vm.uuid));
    assert_eq!(m[3], format!("startvm {} --type headless", vm.uuid));
    assert_folded(&w, &vm.uuid, "current");
    assert_ne!(w.info(&vm.uuid).current_snapshot.unwrap(), old);
    // The day's writes are now in the base disk, and the VM sees the same data.
    assert_eq!(w.content(&vm.base), before);
    assert_eq!(w.content(&w.leaf(&vm.uuid)), before);
    assert_eq!(w.snapshot_files(&vm.uuid).len(), 1);
    assert!(r.stderr.contains("0%...10%"), "progress is streamed: {r}");
}

#[test]
fn fold_does_not_start_and_dry_run_changes_nothing() {
    let w = World::fake();
    let vm = adopted(&w, "Dev Box");
    let r = w.vblaunch(&["fold", "Dev Box"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!mutations(&w).iter().any(|c| c.starts_with("startvm")));
    assert_eq!(w.info(&vm.uuid).state, "poweroff");

    let before = w.state(&vm.uuid);
    let cur = w.info(&vm.uuid).current_snapshot.unwrap();
    clear_calls(&w);
    let r = w.vblaunch(&["Dev Box", "--dry-run"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(mutations(&w).is_empty(), "{:#?}", calls(&w));
    assert_eq!(w.state(&vm.uuid), before);
    let exe = w.vboxmanage_exe();
    let lines: Vec<&str> = r.stdout.lines().map(str::trim).collect();
    assert_eq!(
        lines[2],
        format!("{} snapshot {} delete {cur}", exe.display(), vm.uuid),
        "{r}"
    );
    assert!(
        lines[1].starts_with(&format!(
            "{} snapshot {} take current '--description=vblaunch: taken ",
            exe.display(),
            vm.uuid
        )),
        "{r}"
    );
    assert_eq!(
        lines[3],
        format!("{} startvm {} --type gui", exe.display(), vm.uuid),
        "{r}"
    );
}

#[test]
fn names_with_spaces_quotes_and_non_ascii_and_uuids_work() {
    let w = World::fake();
    let name = "Ärger \"quoted\" VM's";
    let vm = w.create_vm(name, 16);
    for _ in 0..2 {
        let r = w.vblaunch(&["fold", name]);
        assert_eq!(r.code, 0, "{r}");
        assert_folded(&w, &vm.uuid, "current");
    }
    let r = w.vblaunch(&["fold", &vm.uuid]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
}

#[test]
fn start_quirk_exit_1_after_success_counts_as_started() {
    let w = World::fake();
    let vm = adopted(&w, "Q");
    fault(&w, &["startvm", "start-quirk"]);
    let r = w.vblaunch(&["Q"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(w.info(&vm.uuid).state, "running");
}

#[test]
fn start_failure_is_exit_11_with_virtualbox_words_and_the_fold_kept() {
    let w = World::fake();
    let vm = adopted(&w, "S");
    fault(&w, &["startvm", "fail", "1", "VBoxManage: error: The virtual machine 'S' has terminated unexpectedly during startup with exit code 1 (0x1)"]);
    let r = w.vblaunch(&["S"]);
    assert_eq!(r.code, 11, "{r}");
    assert!(
        r.stderr.contains("terminated unexpectedly during startup"),
        "{r}"
    );
    assert!(r.stderr.contains("The fold was kept"), "{r}");
    assert!(
        r.stderr.contains("VBox.log"),
        "advice names the next step: {r}"
    );
    assert_folded(&w, &vm.uuid, "current");
}

#[test]
fn refuses_running_paused_and_locked_vms_without_touching_them() {
    let w = World::fake();
    let vm = adopted(&w, "R");
    let refused = |state: &str, what: &str| {
        let before = w.state(&vm.uuid);
        clear_calls(&w);
        let r = w.vblaunch(&["R"]);
        assert_eq!(r.code, 5, "{state}: {r}");
        assert!(r.stderr.contains(what), "{state}: {r}");
        assert!(mutations(&w).is_empty(), "{state}");
        assert_eq!(w.state(&vm.uuid), before, "{state}");
        calls(&w)
    };
    // `list runningvms` shows running and paused VMs; the disks of a VM in
    // any online state (saving, starting, …) are `locked write`/`locked
    // read` in `list hdds`. Either way the quick read hands over to the full
    // read, which names the state.
    for state in ["running", "paused", "saving"] {
        w.vbox_ok(&["fake", "set-state", &vm.uuid, state]);
        let c = refused(state, &format!("state: {state}"));
        assert!(c[0].starts_with("list --multiple"), "{c:#?}");
        assert!(c.iter().any(|l| l.starts_with("showvminfo")), "{c:#?}");
    }
    assert!(log(&w).contains("'locked write' in VirtualBox"));
    // A session on a powered-off VM (the Manager's settings dialog) shows in
    // `showvminfo` only; the Manager's process is what the scan finds
    // (running_virtualbox_is_refused_…). The full read refuses it too:
    w.write_config("quick_read = \"never\"\n");
    w.vbox_ok(&[
        "fake",
        "set-state",
        &vm.uuid,
        "poweroff",
        "--session",
        "GUI/Qt",
    ]);
    refused("GUI/Qt", "GUI/Qt");
}

#[test]
fn saved_vm_is_folded_and_stays_saved() {
    let w = World::fake();
    let vm = adopted(&w, "Saved");
    let sav = w.path("state.sav");
    std::fs::write(&sav, "x").unwrap();
    w.vbox_ok(&["adoptstate", &vm.uuid, sav.to_str().unwrap()]);
    let r = w.vblaunch(&["fold", "Saved"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.info(&vm.uuid).state, "saved");
}

#[test]
fn user_snapshots_are_never_deleted_and_are_mentioned() {
    let w = World::fake();
    let vm = w.create_vm("U", 16);
    w.vbox_ok(&[
        "snapshot",
        &vm.uuid,
        "take",
        "before upgrade",
        "--description=mine",
    ]);
    for _ in 0..3 {
        let r = w.vblaunch(&["fold", "U"]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stderr.contains("'before upgrade'"), "{r}");
        let info = w.info(&vm.uuid);
        assert_eq!(info.snapshots.len(), 2);
        assert_eq!(info.snapshots[0].name, "before upgrade");
        assert_eq!(info.snapshots[0].description.as_deref(), Some("mine"));
        assert_folded(&w, &vm.uuid, "current");
    }
}

#[test]
fn unsafe_trees_are_refused_with_nothing_changed() {
    // Duplicate "current".
    let w = World::fake();
    let vm = adopted(&w, "T");
    w.vbox_ok(&["snapshot", &vm.uuid, "take", "current"]);
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["T"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stderr.contains("2 snapshots named 'current'"), "{r}");
    assert_eq!(w.state(&vm.uuid), before);

    // "current" not the current snapshot.
    let w = World::fake();
    let vm = adopted(&w, "T");
    w.vbox_ok(&["snapshot", &vm.uuid, "take", "mine"]);
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["T"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stderr.contains("which vblaunch did not take"), "{r}");
    assert_eq!(w.state(&vm.uuid), before);

    // A "current" vblaunch did not take: refused, then accepted with --adopt.
    let w = World::fake();
    let vm = w.create_vm("T", 16);
    w.vbox_ok(&["snapshot", &vm.uuid, "take", "current"]);
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["fold", "T"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stderr.contains("--adopt"), "{r}");
    assert_eq!(w.state(&vm.uuid), before);
    let r = w.vblaunch(&["fold", "T", "--adopt"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
}

#[test]
fn a_deleted_diff_file_is_refused_naming_it() {
    let w = World::fake();
    let vm = adopted(&w, "D");
    let leaf = w.leaf(&vm.uuid);
    std::fs::remove_file(&leaf).unwrap();
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["D"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stderr.contains(leaf.to_str().unwrap()), "{r}");
    assert!(mutations(&w).is_empty());
    assert_eq!(w.state(&vm.uuid), before);
}

#[test]
fn unknown_vm_lists_the_registered_ones() {
    let w = World::fake();
    w.create_vm("Alpha", 16);
    w.create_vm("Beta VM", 16);
    let r = w.vblaunch(&["alpha"]);
    assert_eq!(r.code, 7, "{r}");
    assert!(
        r.stderr.contains("no VM named 'alpha'")
            && r.stderr.contains("Alpha {")
            && r.stderr.contains("Beta VM {"),
        "{r}"
    );
}

#[test]
fn a_held_lock_is_exit_4_and_changes_nothing() {
    let w = World::fake();
    let vm = adopted(&w, "L");
    std::fs::create_dir_all(w.lock_dir()).unwrap();
    // The lock is the VM's identity (its UUID), whether the VM is named by
    // its name or its UUID; it is taken before the VM is read.
    let f = std::fs::File::create(w.lock_dir().join(format!("{}.lock", vm.uuid))).unwrap();
    f.try_lock().unwrap();
    for arg in ["L", vm.uuid.as_str()] {
        clear_calls(&w);
        let r = w.vblaunch(&[arg]);
        assert_eq!(r.code, 4, "{r}");
        assert!(
            r.stderr.contains(&format!("already working on VM '{arg}'")),
            "{r}"
        );
        assert!(
            calls(&w).is_empty(),
            "no call before the lock (the name is resolved from the files): {:#?}",
            calls(&w)
        );
    }
    drop(f);
    assert_eq!(w.vblaunch(&["fold", "L"]).code, 0);
    // No lock file for the name, nor for a mistyped one.
    assert_eq!(w.vblaunch(&["fold", "Typo"]).code, 7);
    assert_eq!(w.vblaunch(&["fold", ""]).code, 7);
    let mut files: Vec<String> = std::fs::read_dir(w.lock_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, [format!("{}.lock", vm.uuid)]);
}

/// A harmless process whose name is a VirtualBox front end's.
fn fake_front_end(w: &World, name: &str) -> KillOnDrop {
    KillOnDrop::spawn(&w.path(name))
}

#[cfg(target_os = "linux")]
#[test]
fn running_virtualbox_is_refused_with_no_wait_and_waited_for_otherwise() {
    let w = World::fake();
    let vm = adopted(&w, "G");
    // A name of its own: front ends other tests (or real VMs) run on the
    // machine must not change this test's result.
    let own = format!("vblfl{}", std::process::id());
    w.write_config(&format!("guard_processes = [\"{own}\"]\n"));
    let fe = fake_front_end(&w, &own);
    let before = w.state(&vm.uuid);
    clear_calls(&w);
    let r = w.vblaunch(&["G", "--no-wait"]);
    assert_eq!(r.code, 3, "{r}");
    assert!(
        r.stderr.contains(&format!("{own} (pid {})", fe.id())),
        "{r}"
    );
    // At most the read made alongside the process scan (its result unused).
    let c = calls(&w);
    assert!(
        c.iter().all(|l| is_read(l)),
        "only reads while VirtualBox runs: {c:#?}"
    );
    assert_eq!(w.state(&vm.uuid), before);

    let r = w.vblaunch(&["G", "--wait-timeout", "1"]);
    assert_eq!(r.code, 3, "{r}");
    assert!(r.stderr.contains("still running after 1 s"), "{r}");

    drop(fe);

    // Without --no-wait vblaunch waits; it goes on once the front end exits.
    // (A name of its own, so that parallel tests' front ends do not interfere.)
    let own = format!("vblwait{}", std::process::id());
    w.write_config(&format!("guard_processes = [\"{own}\"]\n"));
    let fe = fake_front_end(&w, &own);
    let mut cmd = Command::new(VBLAUNCH);
    cmd.env_clear()
        .env("HOME", w.path("home"))
        .env("XDG_CONFIG_HOME", w.path("config"))
        .env("XDG_DATA_HOME", w.path("data"))
        .env("VBOX_USER_HOME", w.path("vbox"))
        .env("VBLAUNCH_VBOXMANAGE", fake_vboxmanage())
        .args(["fold", "G"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut err = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    err.read_line(&mut line).unwrap();
    assert!(
        line.contains("Close VirtualBox to continue (Ctrl-C to abort)"),
        "{line}"
    );
    assert!(mutations(&w).is_empty());
    // While vblaunch waits, the user deletes its snapshot in VirtualBox: what
    // vblaunch read alongside its first scan is stale now, and must not be
    // acted on (deleting that snapshot again would fail).
    let old = w.info(&vm.uuid).current_snapshot.unwrap();
    w.vbox_ok(&["snapshot", &vm.uuid, "delete", &old]);
    drop(fe);
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut err, &mut rest).unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("VirtualBox is closed; continuing."), "{rest}");
    assert_folded(&w, &vm.uuid, "current");
    assert_ne!(w.info(&vm.uuid).current_snapshot.unwrap(), old);
}

#[test]
fn a_failed_merge_keeps_the_old_snapshot_and_the_next_run_repeats_it() {
    let w = World::fake();
    let vm = adopted(&w, "F");
    let old = w.info(&vm.uuid).current_snapshot.unwrap();
    let leaf = w.leaf(&vm.uuid);
    w.write_bytes(&leaf, 0, "keep me");
    let content = w.content(&leaf);
    fault(
        &w,
        &[
            "snapshot",
            "delete",
            "fail",
            "1",
            "VBoxManage: error: Unable to merge storage '/x.vdi'. Not enough free storage space",
        ],
    );
    let r = w.vblaunch(&["F"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(
        r.stderr.contains("Not enough free storage space"),
        "VirtualBox's words: {r}"
    );
    assert!(r.stderr.contains("Free space"), "the next step: {r}");
    // What happened, as re-read after the failure: the take, and no half-merge
    // (VirtualBox refused the merge before writing anything).
    assert!(
        r.stderr.contains("What vblaunch found after the failure")
            && r.stderr.contains("} was taken")
            && r.stderr.contains("The base disks are consistent"),
        "{r}"
    );
    assert!(!r.stderr.contains("Nothing was changed"), "{r}");
    assert!(
        !calls(&w).iter().any(|c| c.starts_with("startvm")),
        "not started after a failure"
    );
    // The new snapshot was taken first; the old one is still there, data intact.
    let info = w.info(&vm.uuid);
    assert_eq!(info.snapshots.len(), 2);
    assert_eq!(info.snapshots[0].uuid, old);
    assert_eq!(w.content(&w.leaf(&vm.uuid)), content);
    let r = w.vblaunch(&["fold", "F"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.info(&vm.uuid).snapshots.len(), 1);
    assert_eq!(w.content(&vm.base), content);
}

#[test]
fn a_failed_take_changes_nothing_and_the_next_run_folds() {
    let w = World::fake();
    let vm = adopted(&w, "F");
    let leaf = w.leaf(&vm.uuid);
    w.write_bytes(&leaf, 0, "keep me");
    let content = w.content(&leaf);
    let before = w.state(&vm.uuid);
    fault(
        &w,
        &[
            "snapshot",
            "take",
            "fail",
            "1",
            "VBoxManage: error: Failed to take snapshot",
        ],
    );
    let r = w.vblaunch(&["F"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(
        r.stderr.contains("taking snapshot 'current' failed")
            && r.stderr.contains(
                "Nothing was changed: VirtualBox holds the same snapshots and disk images as before"
            ),
        "{r}"
    );
    assert!(!calls(&w).iter().any(|c| c.starts_with("startvm")));
    let delete = format!("snapshot {} delete ", vm.uuid);
    assert!(
        !mutations(&w).iter().any(|c| c.starts_with(&delete)),
        "no merge after a failed take"
    );
    assert_eq!(w.state(&vm.uuid), before);
    let r = w.vblaunch(&["F"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.content(&vm.base), content);
}

#[test]
fn a_hanging_take_is_stopped_at_its_timeout() {
    let w = World::fake();
    let vm = w.create_vm("H", 16);
    w.write_config("call_timeout_secs = 1\n");
    fault(&w, &["snapshot", "take", "hang"]);
    let r = w.vblaunch(&["fold", "H"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(r.stderr.contains("did not finish within"), "{r}");
    let r = w.vblaunch(&["fold", "H"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
}

#[test]
fn a_client_killed_mid_merge_leaves_a_state_the_next_run_understands() {
    let w = World::fake();
    let vm = adopted(&w, "K");
    let leaf = w.leaf(&vm.uuid);
    w.write_bytes(&leaf, 512, "in flight");
    let content = w.content(&leaf);
    // VBoxSVC finished the merge, the VBoxManage client died before reporting.
    fault(&w, &["snapshot", "delete", "die-after"]);
    let r = w.vblaunch(&["K"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(!calls(&w).iter().any(|c| c.starts_with("startvm")));
    let r = w.vblaunch(&["K"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.content(&vm.base), content);

    // And a client that dies before VBoxSVC merged anything: the old
    // snapshot stays, the next run folds it.
    w.vbox_ok(&["controlvm", &vm.uuid, "poweroff"]);
    let old = w.info(&vm.uuid).current_snapshot.unwrap();
    fault(&w, &["snapshot", "delete", "die"]);
    let r = w.vblaunch(&["fold", "K"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(w.info(&vm.uuid).snapshot(&old).is_some());
    let r = w.vblaunch(&["fold", "K"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
    assert!(w.info(&vm.uuid).snapshot(&old).is_none());
    assert_eq!(w.content(&vm.base), content);
}

#[test]
fn configured_snapshot_name_and_start_type_are_used() {
    let w = World::fake();
    let vm = w.create_vm("C", 16);
    w.write_config("snapshot_name = \"vbl\"\n[vm.\"C\"]\nstart_type = \"separate\"\n");
    let r = w.vblaunch(&["C"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "vbl");
    assert_eq!(
        last_start(&w),
        format!("startvm {} --type separate", vm.uuid)
    );
    // The flag beats the config.
    w.vbox_ok(&["controlvm", &vm.uuid, "poweroff"]);
    let r = w.vblaunch(&["C", "--type", "headless"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        last_start(&w),
        format!("startvm {} --type headless", vm.uuid)
    );
}

#[test]
fn quiet_hides_progress_and_verbose_shows_commands() {
    let w = World::fake();
    adopted(&w, "V");
    let r = w.vblaunch(&["fold", "V", "-q"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.is_empty(), "{r}");
    let r = w.vblaunch(&["fold", "V", "-v"]);
    assert!(
        r.stderr.contains("run: ") && r.stderr.contains("snapshot "),
        "{r}"
    );
}

#[test]
fn an_inaccessible_vm_is_explained_by_name_and_by_uuid() {
    let w = World::fake();
    let vm = adopted(&w, "Broken");
    // The diff the current snapshot froze leaves the media registry (the
    // seed's "differencing image of snapshot … could not be found").
    let info = w.info(&vm.uuid);
    let media = w.hdds();
    let leaf = media
        .iter()
        .find(|m| m.uuid == info.attachments[0].image_uuid)
        .unwrap();
    let parent = leaf.parent.clone().unwrap();
    w.vbox_ok(&["fake", "unregister-medium", &parent]);
    let r = w.vblaunch(&["Broken"]);
    assert_eq!(r.code, 7, "{r}");
    // VirtualBox no longer knows its name; vblaunch finds it by its settings file.
    assert!(r.stderr.contains("is registered but inaccessible"), "{r}");
    assert!(r.stderr.contains(&vm.uuid), "{r}");
    assert!(r.stderr.contains("vblaunch doctor Broken"), "{r}");
    let r = w.vblaunch(&["fold", &vm.uuid]);
    assert_eq!(r.code, 7, "{r}");
    assert!(r.stderr.contains("cannot read the settings"), "{r}");
    assert!(mutations(&w).is_empty());
}

#[test]
fn a_vboxsvc_that_does_not_answer_once_is_retried() {
    let w = World::fake();
    let vm = w.create_vm("Svc", 16);
    fault(
        &w,
        &[
            "list",
            "fail",
            "1",
            "VBoxManage: error: Failed to create the VirtualBox object!\nVBoxManage: error: Code NS_ERROR_FAILURE (0x80004005) - Operation failed (extended info not available)\nVBoxManage: error: Most likely, the VirtualBox COM server is not running or failed to start.",
        ],
    );
    let r = w.vblaunch(&["fold", "Svc"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("did not answer (attempt 1)"), "{r}");
    assert_folded(&w, &vm.uuid, "current");
}

/// VirtualBox's service died in the middle of a merge (NS_ERROR_ABORT): the
/// base may be half-merged. vblaunch says so, `status` says it is not safe to
/// back up, and the next run completes that merge before it takes anything.
#[test]
fn a_merge_cut_off_half_way_is_never_called_safe_and_is_completed_first() {
    let w = World::fake();
    let vm = adopted(&w, "F");
    // The backup's moment (after_fold) must not come while a merge is half-done.
    let marker = w.path("after-fold-ran");
    w.write_config(&format!(
        "[hooks]\nafter_fold = [\"touch\", \"{}\"]\n",
        marker.display()
    ));
    let old = w.info(&vm.uuid).current_snapshot.unwrap();
    w.write_bytes(&w.leaf(&vm.uuid), 0, "keep me");
    let content = w.content(&w.leaf(&vm.uuid));
    fault(
        &w,
        &[
            "snapshot",
            "delete",
            "fail",
            "1",
            "VBoxManage: error: Snapshot operation failed\nVBoxManage: error: The object is not ready\nVBoxManage: error: Details: code NS_ERROR_ABORT (0x80004004), component SessionMachine, interface IMachine",
        ],
    );
    let r = w.vblaunch(&["F"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(
        r.stderr.contains(&format!("{{{old}}} did not complete"))
            && r.stderr.contains("Do not back up this VM")
            && r.stderr.contains("vblaunch fold F"),
        "{r}"
    );
    assert!(!r.stderr.contains("consistent (no merge"), "{r}");
    let status = w.vblaunch(&["status", "F", "--json"]);
    assert_eq!(status.code, 0, "{status}");
    let j: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let v = &j["vms"][0];
    assert_eq!(v["safe_to_back_up"], false, "{status}");
    assert!(
        v["safe_reason"]
            .as_str()
            .unwrap()
            .contains("did not complete"),
        "{status}"
    );
    assert_eq!(
        v["incomplete_merges"][0]["snapshot"],
        old.as_str(),
        "{status}"
    );
    let text = w.vblaunch(&["status", "F"]);
    assert!(text.stdout.contains("safe to back up: no"), "{text}");
    assert!(!marker.exists(), "after_fold ran after a half-done merge");
    // The next run merges the pending snapshot first, then takes.
    clear_calls(&w);
    let r = w.vblaunch(&["fold", "F"]);
    assert_eq!(r.code, 0, "{r}");
    let m = mutations(&w);
    let first_delete = m.iter().position(|c| c.contains(&format!("delete {old}")));
    let take = m.iter().position(|c| c.contains(" take "));
    assert!(first_delete < take && take.is_some(), "{m:?}");
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.info(&vm.uuid).snapshots.len(), 1, "no pile-up");
    assert_eq!(w.content(&vm.base), content);
    let status = w.vblaunch(&["status", "F", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(j["vms"][0]["safe_to_back_up"], true, "{status}");
    assert!(
        marker.exists(),
        "after_fold runs once the merge is complete"
    );
}

/// A merge that keeps failing adds no snapshot per run.
#[test]
fn a_merge_that_keeps_failing_does_not_pile_up_snapshots() {
    let w = World::fake();
    let vm = adopted(&w, "F");
    for _ in 0..3 {
        fault(
            &w,
            &[
                "snapshot",
                "delete",
                "fail",
                "1",
                "VBoxManage: error: Snapshot operation failed\nVBoxManage: error: Details: code NS_ERROR_ABORT (0x80004004)",
            ],
        );
    }
    for _ in 0..3 {
        let r = w.vblaunch(&["fold", "F"]);
        assert_eq!(r.code, 9, "{r}");
    }
    assert_eq!(
        w.info(&vm.uuid).snapshots.len(),
        2,
        "one take, then only merges"
    );
    let r = w.vblaunch(&["fold", "F"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
}

/// An installation without the program for the chosen start type (Debian
/// without virtualbox-qt has no VirtualBoxVM): refused before the fold,
/// saying what to install or which --type works.
#[test]
fn a_missing_front_end_is_refused_before_anything_changes() {
    let w = World::fake();
    let vm = adopted(&w, "F");
    let before = w.state(&vm.uuid);
    // An installation folder: VBoxManage and VBoxSVC, no VirtualBoxVM.
    let install = w.path("install");
    std::fs::create_dir_all(&install).unwrap();
    let exe = install.join("VBoxManage");
    std::fs::copy(fake_vboxmanage(), &exe).unwrap();
    std::fs::write(install.join("VBoxSVC"), "").unwrap();
    std::fs::write(install.join("VBoxHeadless"), "").unwrap();
    let r = w.vblaunch(&[OsStr::new("--vboxmanage"), exe.as_os_str(), OsStr::new("F")]);
    assert_eq!(r.code, 6, "{r}");
    assert!(
        r.stderr.contains("VirtualBoxVM, is not installed")
            && r.stderr.contains("virtualbox-qt")
            && r.stderr.contains("--type headless")
            && r.stderr.contains("Nothing was changed"),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before);
    assert!(mutations(&w).is_empty(), "{:?}", mutations(&w));
    // Headless has its program: the launch goes ahead.
    let r = w.vblaunch(&[
        OsStr::new("--vboxmanage"),
        exe.as_os_str(),
        OsStr::new("--type"),
        OsStr::new("headless"),
        OsStr::new("F"),
    ]);
    assert_eq!(r.code, 0, "{r}");
    w.vbox_ok(&["fake", "set-state", &vm.uuid, "poweroff"]);
    // `fold` starts nothing, so it does not care.
    let r = w.vblaunch(&[
        OsStr::new("--vboxmanage"),
        exe.as_os_str(),
        OsStr::new("fold"),
        OsStr::new("F"),
    ]);
    assert_eq!(r.code, 0, "{r}");
}

/// A note of the user's that merely starts like vblaunch's marker, and even a
/// copy of vblaunch's whole marker, are not vblaunch's: ownership needs the
/// record in the VM's own extradata (issue 13, item 9).
#[test]
fn a_forged_marker_is_never_taken_for_vblaunchs_snapshot() {
    let w = World::fake();
    let vm = adopted(&w, "F");
    let own = w.info(&vm.uuid).current_snapshot.unwrap();
    let marker = w.info(&vm.uuid).snapshots[0].description.clone().unwrap();
    // The user's own snapshot on top, with vblaunch's exact description.
    w.vbox_ok(&[
        "snapshot",
        &vm.uuid,
        "take",
        "mine",
        &format!("--description={marker}"),
    ]);
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["fold", "F"]);
    assert_eq!(
        r.code, 6,
        "not vblaunch's, so the tree is not its shape: {r}"
    );
    assert!(r.stderr.contains("which vblaunch did not take"), "{r}");
    assert_eq!(w.state(&vm.uuid), before);
    let s = w.vblaunch(&["status", "F", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    let chain = j["vms"][0]["chain"].as_array().unwrap().clone();
    assert_eq!(chain[0]["uuid"], own.as_str());
    assert_eq!(chain[0]["vblaunch"], true);
    assert_eq!(chain[1]["vblaunch"], false, "{s}");
    // A note that merely starts like the marker is no marker at all.
    let w = World::fake();
    let vm = w.create_vm("G", 16);
    w.vbox_ok(&[
        "snapshot",
        &vm.uuid,
        "take",
        "current",
        "--description=vblaunch: taken care of the printer driver",
    ]);
    let r = w.vblaunch(&["fold", "G"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stderr.contains("was not taken by vblaunch"), "{r}");
}

/// A VM managed by an older vblaunch (marked snapshots, no record) is
/// recognised by its marker once, and recorded at the next take.
#[test]
fn snapshots_of_an_older_vblaunch_are_recorded_at_the_next_take() {
    let w = World::fake();
    let vm = adopted(&w, "Old");
    let old = w.info(&vm.uuid).current_snapshot.unwrap();
    // As an older vblaunch left it: no record.
    w.vbox_ok(&["setextradata", &vm.uuid, "vblaunch/own"]);
    let r = w.vblaunch(&["fold", "Old", "--keep", "2"]);
    assert_eq!(r.code, 0, "{r}");
    let new = w.info(&vm.uuid).current_snapshot.unwrap();
    let cfg = std::fs::read_to_string(w.info(&vm.uuid).cfg_file.unwrap()).unwrap();
    assert!(
        cfg.contains(&format!("name=\"vblaunch/own\" value=\"{old} {new}\"")),
        "{cfg}"
    );
    assert_restore_points(&w, &vm.uuid, 2);
}

/// A take whose record failed (or a run killed right after the take): the
/// journal knows the take, so the next run still knows the snapshot as
/// vblaunch's and records it.
#[test]
fn a_take_whose_record_failed_is_still_known_as_vblaunchs() {
    let w = World::fake();
    let vm = adopted(&w, "Rec");
    fault(
        &w,
        &["setextradata", "fail", "1", "VBoxManage: error: boom"],
    );
    let r = w.vblaunch(&["fold", "Rec"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(
        r.stderr.contains("recording it as vblaunch's failed"),
        "{r}"
    );
    let taken = w.info(&vm.uuid).current_snapshot.unwrap();
    let r = w.vblaunch(&["fold", "Rec"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
    assert!(
        w.info(&vm.uuid).snapshot(&taken).is_none(),
        "folded as vblaunch's"
    );
}

/// The take went through in VirtualBox but vblaunch never learned the new
/// snapshot's UUID (its VBoxManage killed after the take: as when vblaunch
/// itself is killed mid-take). The journal wrote the marker's time before
/// the take, so the next run knows the snapshot as vblaunch's, records it at
/// once, and folds (measured on real VirtualBox: without that, a kill -9 in
/// that window left a "current" vblaunch refused as not its own).
#[test]
fn a_take_vblaunch_never_heard_back_from_is_still_its_own() {
    let w = World::fake();
    let vm = adopted(&w, "Mid");
    fault(&w, &["snapshot", "take", "die-after"]);
    let r = w.vblaunch(&["fold", "Mid"]);
    assert_ne!(r.code, 0, "{r}");
    let info = w.info(&vm.uuid);
    assert_eq!(info.snapshots.len(), 2, "VirtualBox completed the take");
    let unrecorded = info.current_snapshot.clone().unwrap();
    // status already counts it as vblaunch's (from the journal).
    let s = w.vblaunch(&["status", "Mid", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
    let chain = j["vms"][0]["chain"].as_array().unwrap().clone();
    assert!(
        chain.iter().all(|c| c["vblaunch"] == true) && chain.len() == 2,
        "{s}"
    );
    let r = w.vblaunch(&["fold", "Mid"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stderr
            .contains(&format!("Recording snapshot(s) {unrecorded} as vblaunch's")),
        "{r}"
    );
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.info(&vm.uuid).snapshots.len(), 1);
}

/// A merge VirtualBox refused up front (no room) after an earlier one of the
/// same snapshot was cut off half-way: the refusal wrote nothing, but the disk
/// is still half-merged from before, so the report does not call it consistent.
#[test]
fn a_refused_retry_of_a_half_done_merge_is_not_called_consistent() {
    let w = World::fake();
    adopted(&w, "F");
    let died = "VBoxManage: error: Snapshot operation failed\nVBoxManage: error: Details: code NS_ERROR_ABORT (0x80004004)";
    fault(&w, &["snapshot", "delete", "fail", "1", died]);
    assert_eq!(w.vblaunch(&["fold", "F"]).code, 9);
    fault(
        &w,
        &[
            "snapshot",
            "delete",
            "fail",
            "1",
            "VBoxManage: error: Unable to merge storage '/x.vdi'. Not enough free storage space",
        ],
    );
    let r = w.vblaunch(&["fold", "F"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(
        r.stderr.contains("an earlier merge did not complete")
            && r.stderr.contains("Do not back up this VM")
            && !r.stderr.contains("The base disks are consistent"),
        "{r}"
    );
}

/// The ownership record travels with the VM: with vblaunch's own records
/// gone (a VM folder restored onto a new machine), its snapshots are still
/// known as its own from the VM's settings alone, and folded.
#[test]
fn vblaunchs_snapshots_are_known_from_the_vms_own_files_alone() {
    let w = World::fake();
    let vm = adopted(&w, "Moved");
    let info = w.info(&vm.uuid);
    let own = info.current_snapshot.unwrap();
    // The record is in the VM's own settings file, not in vblaunch's data.
    assert_eq!(
        vblaunch::vbox::settings::recorded_own(&info.cfg_file.unwrap()),
        Some(vec![own.clone()])
    );
    std::fs::remove_dir_all(w.path("data/vblaunch")).unwrap();
    let r = w.vblaunch(&["fold", "Moved"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        w.info(&vm.uuid).snapshot(&own).is_none(),
        "folded as vblaunch's"
    );
    assert_folded(&w, &vm.uuid, "current");
}
