//! vblaunch killed (SIGKILL) in every window of a launch: the next run says
//! the last one was interrupted and converges to the expected chain, with no
//! user snapshot or restore point lost and the disk content unchanged.
use crate::support::*;

/// A VM with a user snapshot under two vblaunch snapshots (keep 2), and data.
fn setup(w: &World) -> (Vm, String) {
    let vm = w.create_vm("Crash", 16);
    w.write_bytes(&vm.base, 0, "base");
    w.vbox_ok(&["snapshot", &vm.uuid, "take", "mine"]);
    for i in 0..2 {
        w.write_bytes(&w.leaf(&vm.uuid), 4096 * i, "session");
        assert_eq!(w.vblaunch(&["fold", "Crash", "--keep", "2"]).code, 0);
    }
    let user = w.info(&vm.uuid).snapshots[0].uuid.clone();
    (vm, user)
}

fn converges(w: &World, vm: &Vm, user: &str, content: &[u8]) {
    let r = w.vblaunch(&["fold", "Crash", "--keep", "2"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stderr.contains("was interrupted during"),
        "the interruption is reported: {r}"
    );
    let info = w.info(&vm.uuid);
    assert_eq!(info.snapshots[0].uuid, user, "the user's snapshot survives");
    let (own, off) = vblaunch::snapshots::own_snapshots(&info, "current", false);
    assert_eq!(own.len(), 2, "{}", w.state(&vm.uuid));
    assert!(off.is_empty());
    assert_folded(w, &vm.uuid, "current");
    assert_eq!(w.content(&w.leaf(&vm.uuid)), content);
    // And the run after that is an ordinary one.
    let r = w.vblaunch(&["fold", "Crash", "--keep", "2"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!r.stderr.contains("interrupted"), "{r}");
}

#[test]
fn killed_during_the_take_the_rename_or_the_merge_the_next_run_converges() {
    // Each marker: the step's own log line, then the "0%..." the hanging
    // fake VBoxManage prints once it runs.
    for (pattern, marker) in [
        (&["snapshot", "take"][..], &["Keeping", "0%..."][..]),
        (&["snapshot", "edit"][..], &["Took snapshot", "0%..."][..]),
        (
            &["snapshot", "delete"][..],
            &["Merging snapshot", "0%..."][..],
        ),
    ] {
        let w = World::fake();
        let (vm, user) = setup(&w);
        w.write_bytes(&w.leaf(&vm.uuid), 8192, "unsaved at crash");
        let content = w.content(&w.leaf(&vm.uuid));
        let mut spec = pattern.to_vec();
        spec.push("hang");
        fault(&w, &spec);
        kill_vblaunch(&w, &["fold", "Crash", "--keep", "2"], marker, None, true);
        let journal =
            std::fs::read_to_string(w.path(&format!("data/vblaunch/vms/{}/journal.toml", vm.uuid)))
                .unwrap();
        assert!(journal.contains("fold"), "{journal}");
        converges(&w, &vm, &user, &content);
    }
}

#[test]
fn a_client_dying_mid_merge_or_after_it_converges() {
    for action in ["die", "die-after"] {
        let w = World::fake();
        let (vm, user) = setup(&w);
        let content = w.content(&w.leaf(&vm.uuid));
        fault(&w, &["snapshot", "delete", action]);
        let r = w.vblaunch(&["fold", "Crash", "--keep", "2"]);
        assert_eq!(r.code, 9, "{r}");
        // A failed step is not an interrupted run: the next fold just converges.
        let r = w.vblaunch(&["fold", "Crash", "--keep", "2"]);
        assert_eq!(r.code, 0, "{r}");
        assert_eq!(w.info(&vm.uuid).snapshots[0].uuid, user);
        assert_restore_points_with_user(&w, &vm.uuid);
        assert_eq!(w.content(&w.leaf(&vm.uuid)), content);
    }
}

fn assert_restore_points_with_user(w: &World, vm: &str) {
    let info = w.info(vm);
    let (own, off) = vblaunch::snapshots::own_snapshots(&info, "current", false);
    assert_eq!(own.len(), 2, "{}", w.state(vm));
    assert!(off.is_empty());
}

#[test]
fn settings_are_backed_up_before_the_first_change() {
    let w = World::fake();
    let vm = w.create_vm("B", 16);
    assert_eq!(w.vblaunch(&["fold", "B"]).code, 0);
    let backups = w.path(&format!("data/vblaunch/vms/{}/settings-backups", vm.uuid));
    let dirs: Vec<_> = std::fs::read_dir(&backups).unwrap().flatten().collect();
    assert_eq!(dirs.len(), 1);
    let cfg = w.info(&vm.uuid).cfg_file.unwrap();
    let copy = dirs[0].path().join(cfg.file_name().unwrap());
    assert!(copy.is_file(), "{copy:?}");
    // A dry run or a refusal backs up nothing.
    assert_eq!(w.vblaunch(&["fold", "B", "--dry-run"]).code, 0);
    assert_eq!(std::fs::read_dir(&backups).unwrap().count(), 1);
}

#[test]
fn not_enough_free_space_is_refused_with_both_numbers_and_nothing_changes() {
    let w = World::fake();
    let vm = w.create_vm("Full", 16);
    assert_eq!(w.vblaunch(&["fold", "Full"]).code, 0);
    w.write_bytes(&w.leaf(&vm.uuid), 0, "data");
    // A margin larger than any disk: the check must refuse.
    w.write_config("merge_free_space_margin_mb = 1000000000\n");
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["fold", "Full"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(
        r.stderr.contains("Not enough free space")
            && r.stderr.contains(" needs ")
            && r.stderr.contains(" free."),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before);
}

#[test]
fn a_leftover_settings_tmp_file_is_refused() {
    let w = World::fake();
    let vm = w.create_vm("Tmp", 16);
    assert_eq!(w.vblaunch(&["fold", "Tmp"]).code, 0);
    let cfg = w.info(&vm.uuid).cfg_file.unwrap();
    let tmp = cfg.with_file_name(format!(
        "{}-tmp",
        cfg.file_name().unwrap().to_str().unwrap()
    ));
    std::fs::write(&tmp, "half").unwrap();
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["fold", "Tmp"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(
        r.stderr.contains(tmp.to_str().unwrap()) && r.stderr.contains("doctor"),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before);
}
