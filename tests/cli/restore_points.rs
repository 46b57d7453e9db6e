//! Restore points (keep = N), status, list and restore, against the fake
//! VBoxManage; the real-VirtualBox versions are in real_vbox.rs.
use crate::support::*;

fn fold(w: &World, vm: &str, extra: &[&str]) -> Run {
    let mut args = vec!["fold", vm];
    args.extend_from_slice(extra);
    let r = w.vblaunch(&args);
    assert_eq!(r.code, 0, "{r}");
    r
}

#[test]
fn keep_2_and_3_hold_that_many_snapshots_with_their_labels() {
    for keep in [2usize, 3] {
        let w = World::fake();
        let vm = w.create_vm("K", 16);
        w.write_config(&format!("keep = {keep}\n"));
        for i in 0..5 {
            let leaf = w.leaf(&vm.uuid);
            w.write_bytes(&leaf, 4096 * i as u64, &format!("launch {i}"));
            fold(&w, "K", &[]);
            assert_restore_points(&w, &vm.uuid, (i + 1).min(keep));
        }
    }
}

#[test]
fn changing_keep_down_folds_the_extras_and_says_so() {
    let w = World::fake();
    let vm = w.create_vm("K", 16);
    for _ in 0..4 {
        fold(&w, "K", &["--keep", "3"]);
    }
    assert_restore_points(&w, &vm.uuid, 3);
    let content = w.content(&w.leaf(&vm.uuid));
    let r = fold(&w, "K", &["--keep", "1"]);
    assert!(
        r.stderr.contains("more than keep = 1") && r.stderr.contains("merging the 2 oldest first"),
        "{r}"
    );
    assert_restore_points(&w, &vm.uuid, 1);
    assert_eq!(w.content(&vm.base), content);
    fold(&w, "K", &["--keep", "2"]);
    assert_restore_points(&w, &vm.uuid, 2);
}

#[test]
fn a_failed_take_leaves_every_restore_point_in_place() {
    let w = World::fake();
    let vm = w.create_vm("K", 16);
    for _ in 0..3 {
        fold(&w, "K", &["--keep", "3"]);
    }
    let before = w.state(&vm.uuid);
    w.vbox_ok(&[
        "fake",
        "fault",
        "snapshot",
        "take",
        "fail",
        "1",
        "VBoxManage: error: Failed to take snapshot",
    ]);
    let r = w.vblaunch(&["K", "--keep", "3"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(
        r.stderr.contains("Nothing was changed")
            && r.stderr.contains("every restore point is still there"),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before);
    // A failed rename (after the take) loses nothing either; the next run relabels.
    w.vbox_ok(&[
        "fake",
        "fault",
        "snapshot",
        "edit",
        "fail",
        "1",
        "VBoxManage: error: boom",
    ]);
    let r = w.vblaunch(&["K", "--keep", "3"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(r.stderr.contains("names are only labels"), "{r}");
    assert!(
        r.stderr.contains("} was taken"),
        "the take is reported: {r}"
    );
    fold(&w, "K", &["--keep", "3"]);
    assert_restore_points(&w, &vm.uuid, 3);
}

#[test]
fn restore_to_previous_brings_back_that_launch_and_keeps_the_chain_valid() {
    let w = World::fake();
    let vm = w.create_vm("R", 16);
    let mut at_launch = Vec::new();
    for i in 0..3u64 {
        let leaf = w.leaf(&vm.uuid);
        w.write_bytes(&leaf, 512 * i, &format!("session {i}"));
        fold(&w, "R", &["--keep", "3"]);
        at_launch.push(w.content(&w.leaf(&vm.uuid)));
    }
    w.write_bytes(&w.leaf(&vm.uuid), 9000, "unsaved work");

    // No terminal and no --yes: refused, nothing changed.
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["restore", "R", "--to", "previous"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains("will be gone") && r.stderr.contains("--yes"),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before);
    let r = w.vblaunch(&["restore", "R", "--to", "previous", "--dry-run"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(" restore "), "{r}");
    assert_eq!(w.state(&vm.uuid), before);

    let r = w.vblaunch(&["restore", "R", "--to", "previous", "--yes"]);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(
        w.content(&w.leaf(&vm.uuid)),
        at_launch[1],
        "the state at the launch before last"
    );
    assert_restore_points(&w, &vm.uuid, 2);
    // The next launch folds as usual.
    fold(&w, "R", &["--keep", "3"]);
    assert_restore_points(&w, &vm.uuid, 3);
    assert_eq!(w.content(&w.leaf(&vm.uuid)), at_launch[1]);
    // And restoring "current" discards what was written since the last launch.
    w.write_bytes(&w.leaf(&vm.uuid), 100, "oops");
    assert_eq!(w.vblaunch(&["restore", "R", "--yes"]).code, 0);
    assert_eq!(w.content(&w.leaf(&vm.uuid)), at_launch[1]);
}

#[test]
fn restore_names_the_available_points_for_a_bad_target() {
    let w = World::fake();
    w.create_vm("R", 16);
    fold(&w, "R", &[]);
    let r = w.vblaunch(&["restore", "R", "--to", "previous-4", "--yes"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        r.stderr.contains("no restore point 'previous-4'") && r.stderr.contains("current (0)"),
        "{r}"
    );
}

#[test]
fn status_json_reports_the_chain_the_fold_and_safety() {
    let w = World::fake();
    let vm = w.create_vm("S", 16);
    w.create_vm("Other", 16);
    w.write_bytes(&vm.base, 0, "base");
    fold(&w, "S", &["--keep", "2"]);
    w.write_bytes(&w.leaf(&vm.uuid), 0, "session data");
    fold(&w, "S", &["--keep", "2"]);
    let r = w.vblaunch(&["status", "S", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["schema"], 1);
    let s = &j["vms"][0];
    assert_eq!(s["uuid"], vm.uuid.as_str());
    assert_eq!(s["state"], "poweroff");
    assert_eq!(s["managed"], true);
    assert_eq!(s["restore_points"], 1);
    assert_eq!(s["safe_to_back_up"], true);
    assert_eq!(s["fold_in_progress"], false);
    assert_eq!(s["base_disks"][0]["path"], vm.base.to_str().unwrap());
    let chain = s["chain"].as_array().unwrap();
    assert_eq!(chain.len(), 2);
    assert_eq!(chain[0]["name"], "previous");
    assert_eq!(chain[1]["name"], "current");
    assert_eq!(chain[1]["current"], true);
    assert!(chain[0]["taken"].as_str().unwrap().ends_with('Z'));
    assert!(chain[0]["changes_bytes"].as_u64().unwrap() > 0);
    assert!(s["last_fold"]["finished"].as_str().unwrap().ends_with('Z'));
    assert_eq!(s["last_fold"]["restore_points"], 1);
    assert!(s["warnings"].as_array().unwrap().is_empty());
    // All VMs.
    let r = w.vblaunch(&["status", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["vms"].as_array().unwrap().len(), 2);
    // While running on vblaunch's diff: still safe; text form says why.
    w.vbox_ok(&["startvm", &vm.uuid, "--type", "headless"]);
    let r = w.vblaunch(&["status", "S"]);
    assert!(
        r.stdout
            .contains("safe to back up: yes, because the VM writes to the differencing image"),
        "{r}"
    );
    assert!(r.stdout.contains("restore point 'previous'"), "{r}");
}

#[test]
fn status_warns_about_a_missing_diff_instead_of_crashing() {
    let w = World::fake();
    let vm = w.create_vm("M", 16);
    fold(&w, "M", &[]);
    let leaf = w.leaf(&vm.uuid);
    std::fs::remove_file(&leaf).unwrap();
    let r = w.vblaunch(&["status", "M"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.contains("warning: disk image") && r.stdout.contains(leaf.to_str().unwrap()),
        "{r}"
    );
    assert!(r.stdout.contains("safe to back up: no"), "{r}");
}

#[test]
fn list_shows_managed_vms_and_their_restore_points() {
    let w = World::fake();
    w.create_vm("Managed", 16);
    w.create_vm("Plain", 16);
    fold(&w, "Managed", &["--keep", "3"]);
    fold(&w, "Managed", &["--keep", "3"]);
    let r = w.vblaunch(&["list"]);
    assert_eq!(r.code, 0, "{r}");
    let managed = r
        .stdout
        .lines()
        .find(|l| l.starts_with("Managed\t"))
        .unwrap();
    assert!(managed.ends_with("managed, 1 restore point"), "{managed}");
    let plain = r.stdout.lines().find(|l| l.starts_with("Plain\t")).unwrap();
    assert!(plain.ends_with("not managed"), "{plain}");
}

#[test]
fn status_names_running_virtualbox_front_ends() {
    let w = World::fake();
    w.create_vm("Fe", 16);
    // A name of its own: a real VM (or another test's fake front end) running
    // on the machine must not show up in this test's status.
    let own = format!("vblst{}", std::process::id());
    w.write_config(&format!("guard_processes = [\"{own}\"]\n"));
    let fe = KillOnDrop::spawn(&w.path(&own));
    let r = w.vblaunch(&["status", "Fe", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let running = j["front_ends_running"].as_array().unwrap();
    assert!(
        running
            .iter()
            .any(|f| f["pid"] == fe.id() && f["name"] == own.as_str()),
        "{running:?}"
    );
    let r = w.vblaunch(&["status", "Fe"]);
    assert!(
        r.stdout
            .contains(&format!("VirtualBox is running: {own} (pid {})", fe.id())),
        "{r}"
    );
}

/// A restore whose step fails reports what VirtualBox holds, checked, as a
/// fold does: "nothing was changed" only when that is what it found, and the
/// next step is the restore (a fold would refuse the discarded branch).
#[test]
fn a_failed_restore_says_what_it_found_and_how_to_finish() {
    let w = World::fake();
    let vm = w.create_vm("R", 16);
    for _ in 0..3 {
        fold(&w, "R", &["--keep", "3"]);
    }
    // VirtualBox refuses the restore itself: nothing changes.
    let before = w.state(&vm.uuid);
    w.vbox_ok(&[
        "fake",
        "fault",
        "snapshot",
        "restore",
        "fail",
        "1",
        "VBoxManage: error: Could not restore the snapshot",
    ]);
    let r = w.vblaunch(&["restore", "R", "--to", "previous", "--yes"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(
        r.stderr.contains("checked just now") && r.stderr.contains("Nothing was changed"),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before);

    // The restore worked, deleting the discarded restore point failed: the
    // report names the restore as the change, and the next step finishes it.
    w.vbox_ok(&[
        "fake",
        "fault",
        "snapshot",
        "delete",
        "fail",
        "1",
        "VBoxManage: error: Could not merge the snapshot",
    ]);
    let r = w.vblaunch(&["restore", "R", "--to", "previous", "--yes"]);
    assert_eq!(r.code, 9, "{r}");
    assert!(!r.stderr.contains("Nothing was changed"), "{r}");
    assert!(
        r.stderr.contains("the VM's current snapshot is now")
            && r.stderr.contains("vblaunch restore R --to current"),
        "{r}"
    );
    let r = w.vblaunch(&["restore", "R", "--to", "current", "--yes"]);
    assert_eq!(r.code, 0, "{r}");
    assert_restore_points(&w, &vm.uuid, 2);
}
