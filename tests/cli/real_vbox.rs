//! vblaunch against REAL VirtualBox 7.2 (the chroot set up by
//! .ci/setup-real-vbox.sh; no kernel driver, so VMs cannot boot but every
//! snapshot and medium operation is real). Run when VBLAUNCH_TEST_VBOXMANAGE
//! points at it; otherwise each test says it was skipped.
use crate::support::*;

macro_rules! real_world {
    ($name:expr) => {
        match real_backend($name) {
            Some(b) => World::new(b),
            None => return,
        }
    };
}

#[test]
fn real_five_folds_keep_one_current_and_every_byte() {
    let w = real_world!("real_five_folds_keep_one_current_and_every_byte");
    let vm = w.create_vm("Fold Five", 16);
    for i in 0..5u64 {
        let leaf = w.leaf(&vm.uuid);
        w.write_bytes(
            &leaf,
            1_048_576 * i + 4096,
            &format!("launch {i}: known bytes"),
        );
        let before = w.content(&leaf);
        assert!(
            String::from_utf8_lossy(&before).contains(&format!("launch {i}: known bytes")),
            "the test wrote into the disk"
        );
        let r = w.vblaunch(&["fold", "Fold Five"]);
        assert_eq!(r.code, 0, "fold {i}: {r}");
        // VirtualBox's saved settings file confirmed the fold on its own.
        let log = std::fs::read_to_string(w.path("data/vblaunch/vblaunch.log")).unwrap();
        assert_eq!(
            log.matches("verified from the settings file").count(),
            i as usize + 1,
            "fold {i}"
        );
        // …and the read before it came from one call and that file.
        assert_eq!(
            log.matches("read from one list call and the settings file")
                .count(),
            i as usize + 1,
            "fold {i}: {log}"
        );
        assert_folded(&w, &vm.uuid, "current");
        assert_eq!(w.info(&vm.uuid).snapshots.len(), 1);
        let files = w.snapshot_files(&vm.uuid);
        assert_eq!(files.len(), 1, "exactly one diff after fold {i}: {files:?}");
        assert_eq!(w.leaf(&vm.uuid), files[0]);
        assert!(
            w.content(&w.leaf(&vm.uuid)) == before,
            "fold {i} changed what the VM sees"
        );
        assert!(
            w.content(&vm.base) == before,
            "fold {i}: the base does not hold the data"
        );
    }
}

#[test]
fn real_names_with_spaces_and_non_ascii() {
    let w = real_world!("real_names_with_spaces_and_non_ascii");
    let name = "Entwicklung Ä \"q\" 'x'";
    let vm = w.create_vm(name, 8);
    for _ in 0..2 {
        let r = w.vblaunch(&["fold", name]);
        assert_eq!(r.code, 0, "{r}");
        assert_folded(&w, &vm.uuid, "current");
    }
}

#[test]
fn real_user_snapshot_under_current_survives() {
    let w = real_world!("real_user_snapshot_under_current_survives");
    let vm = w.create_vm("User Snap", 8);
    w.write_bytes(&vm.base, 0, "base data");
    w.vbox_ok(&[
        "snapshot",
        &vm.uuid,
        "take",
        "before upgrade",
        "--description=mine",
    ]);
    let user = w.info(&vm.uuid).snapshots[0].uuid.clone();
    for i in 0..3 {
        let leaf = w.leaf(&vm.uuid);
        w.write_bytes(&leaf, 8192, &format!("session {i}"));
        let before = w.content(&leaf);
        let r = w.vblaunch(&["fold", "User Snap"]);
        assert_eq!(r.code, 0, "{r}");
        assert!(r.stderr.contains("'before upgrade'"), "{r}");
        let info = w.info(&vm.uuid);
        assert_eq!(info.snapshots.len(), 2);
        assert_eq!(info.snapshots[0].uuid, user);
        assert_eq!(info.snapshots[0].description.as_deref(), Some("mine"));
        assert_folded(&w, &vm.uuid, "current");
        assert!(w.content(&w.leaf(&vm.uuid)) == before);
    }
    // The user's snapshot still freezes the base as it was when it was taken.
    assert!(String::from_utf8_lossy(&w.content(&vm.base)).contains("base data"));
    assert!(!String::from_utf8_lossy(&w.content(&vm.base)).contains("session 0"));
}

#[test]
fn real_duplicate_current_is_refused_and_nothing_changes() {
    let w = real_world!("real_duplicate_current_is_refused_and_nothing_changes");
    let vm = w.create_vm("Dup", 8);
    assert_eq!(w.vblaunch(&["fold", "Dup"]).code, 0);
    w.vbox_ok(&["snapshot", &vm.uuid, "take", "current"]);
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["Dup"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stderr.contains("2 snapshots named 'current'"), "{r}");
    assert_eq!(w.state(&vm.uuid), before);
}

#[test]
fn real_deleted_diff_is_refused_naming_the_file() {
    let w = real_world!("real_deleted_diff_is_refused_naming_the_file");
    let vm = w.create_vm("Gone", 8);
    assert_eq!(w.vblaunch(&["fold", "Gone"]).code, 0);
    let leaf = w.leaf(&vm.uuid);
    std::fs::remove_file(&leaf).unwrap();
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["Gone"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stderr.contains(leaf.to_str().unwrap()), "{r}");
    assert_eq!(w.state(&vm.uuid), before);
}

/// VirtualBox locks a VM's disks while it works on them (a merge that
/// outlived a killed vblaunch, a clone, a running VM). A disk held open
/// through the API stands in for that here. The quick read must see the
/// lock and hand over to the full read; the VM is powered off, so the plan
/// itself refuses the locked disk before any change (without that check,
/// measured: the take succeeded and VirtualBox refused the merge half-way).
#[test]
fn real_locked_disk_is_refused_before_any_change() {
    let w = real_world!("real_locked_disk_is_refused_before_any_change");
    let vm = w.create_vm("Held", 8);
    assert_eq!(w.vblaunch(&["fold", "Held"]).code, 0);
    let leaf = w.leaf(&vm.uuid);
    w.write_bytes(&leaf, 4096, "session bytes");
    let before = w.state(&vm.uuid);
    let content = w.content(&leaf);
    let held = w.hold_medium(&leaf);
    let r = w.vblaunch(&["fold", "Held"]);
    drop(held);
    assert_eq!(r.code, 6, "{r}");
    assert!(
        r.stderr.contains("in use by another task")
            && r.stderr.contains("'locked read'")
            && r.stderr.contains(leaf.to_str().unwrap()),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before);
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(
        log.contains("is 'locked read' in VirtualBox (an operation is in progress)"),
        "{log}"
    );
    // The full read, by UUID (the name was resolved to it before the lock).
    assert!(
        log.contains(&format!("showvminfo {} --machinereadable", vm.uuid)),
        "{log}"
    );
    // Released: the next fold goes ahead and keeps every byte.
    assert_eq!(w.vblaunch(&["fold", "Held"]).code, 0);
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.content(&w.leaf(&vm.uuid)), content);
}

#[cfg(target_os = "linux")]
#[test]
fn real_running_front_end_with_no_wait_is_refused() {
    let w = real_world!("real_running_front_end_with_no_wait_is_refused");
    let vm = w.create_vm("Guarded", 8);
    assert_eq!(w.vblaunch(&["fold", "Guarded"]).code, 0);
    // A name of its own: the real VMs of other tests must not change this result.
    let own = format!("vblrf{}", std::process::id());
    w.write_config(&format!("guard_processes = [\"{own}\"]\n"));
    let fe = KillOnDrop::spawn(&w.path(&own));
    let before = w.state(&vm.uuid);
    let r = w.vblaunch(&["Guarded", "--no-wait"]);
    assert_eq!(r.code, 3, "{r}");
    assert!(
        r.stderr.contains(&format!("{own} (pid {})", fe.id())),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before);
}

#[test]
fn real_launch_reports_the_start_failure_and_keeps_the_fold() {
    let w = real_world!("real_launch_reports_the_start_failure_and_keeps_the_fold");
    let vm = w.create_vm("No Driver", 8);
    let r = w.vblaunch(&["No Driver", "--type", "headless"]);
    assert_eq!(r.code, 11, "{r}");
    assert!(r.stderr.contains("did not start"), "{r}");
    assert!(
        r.stderr.contains("terminated unexpectedly during startup"),
        "VirtualBox's own words: {r}"
    );
    assert!(r.stderr.contains("The fold was kept"), "{r}");
    assert_folded(&w, &vm.uuid, "current");
}

#[test]
fn real_saved_vm_is_folded_and_keeps_its_saved_state() {
    let w = real_world!("real_saved_vm_is_folded_and_keeps_its_saved_state");
    let vm = w.create_vm("Saved", 8);
    assert_eq!(w.vblaunch(&["fold", "Saved"]).code, 0);
    let sav = w.path("any.sav");
    std::fs::write(&sav, b"saved state").unwrap();
    w.vbox_ok(&["adoptstate", &vm.uuid, sav.to_str().unwrap()]);
    assert_eq!(w.info(&vm.uuid).state, "saved");
    let leaf = w.leaf(&vm.uuid);
    w.write_bytes(&leaf, 0, "saved session");
    let before = w.content(&leaf);
    let r = w.vblaunch(&["fold", "Saved"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
    let info = w.info(&vm.uuid);
    assert_eq!(info.state, "saved");
    assert!(info.state_file.is_some());
    assert!(w.content(&w.leaf(&vm.uuid)) == before);
}

#[test]
fn real_unknown_vm_lists_registered_vms() {
    let w = real_world!("real_unknown_vm_lists_registered_vms");
    w.create_vm("Known VM", 8);
    let r = w.vblaunch(&["fold", "Unknown VM"]);
    assert_eq!(r.code, 7, "{r}");
    assert!(r.stderr.contains("Known VM {"), "{r}");
}

#[test]
fn real_ten_folds_keep_n_restore_points_and_restore_brings_back_the_bytes() {
    let w = real_world!("real_ten_folds_keep_n_restore_points_and_restore_brings_back_the_bytes");
    for keep in [2usize, 3] {
        let name = format!("Keep {keep}");
        let vm = w.create_vm(&name, 16);
        let mut at_launch = Vec::new();
        for i in 0..10u64 {
            let leaf = w.leaf(&vm.uuid);
            w.write_bytes(&leaf, 65536 * i + 4096, &format!("keep {keep} launch {i}"));
            let r = w.vblaunch(&["fold", &name, "--keep", &keep.to_string()]);
            assert_eq!(r.code, 0, "keep {keep} fold {i}: {r}");
            assert_restore_points(&w, &vm.uuid, (i as usize + 1).min(keep));
            at_launch.push(w.content(&w.leaf(&vm.uuid)));
        }
        // Work after the last launch, then back to the launch before it.
        w.write_bytes(&w.leaf(&vm.uuid), 1_000_000, "unsaved");
        let r = w.vblaunch(&["restore", &name, "--to", "previous", "--yes"]);
        assert_eq!(r.code, 0, "{r}");
        assert!(
            w.content(&w.leaf(&vm.uuid)) == at_launch[8],
            "restore --to previous: wrong bytes"
        );
        assert_restore_points(&w, &vm.uuid, keep - 1);
        let r = w.vblaunch(&["fold", &name, "--keep", &keep.to_string()]);
        assert_eq!(r.code, 0, "{r}");
        assert_restore_points(&w, &vm.uuid, keep);
        assert!(w.content(&w.leaf(&vm.uuid)) == at_launch[8]);
    }
}

#[test]
fn real_status_json_on_a_managed_vm() {
    let w = real_world!("real_status_json_on_a_managed_vm");
    let vm = w.create_vm("Stat", 8);
    for _ in 0..2 {
        assert_eq!(w.vblaunch(&["fold", "Stat", "--keep", "2"]).code, 0);
    }
    let r = w.vblaunch(&["status", "Stat", "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["vms"][0]["uuid"], vm.uuid.as_str());
    assert_eq!(j["vms"][0]["restore_points"], 1);
    assert_eq!(j["vms"][0]["safe_to_back_up"], true);
    assert_eq!(j["vms"][0]["chain"].as_array().unwrap().len(), 2);
}

/// Kill vblaunch (SIGKILL) at pseudo-random moments of `fold --keep 2`,
/// `rounds` times; after each kill the next fold must converge: exit 0, a
/// linear chain of vblaunch snapshots, and the disk content unchanged.
#[cfg(target_os = "linux")]
fn kill_rounds(test: &str, rounds: u64) {
    let Some(backend) = real_backend(test) else {
        return;
    };
    let w = World::new(backend);
    let vm = w.create_vm("Killed", 16);
    assert_eq!(w.vblaunch(&["fold", "Killed", "--keep", "2"]).code, 0);
    let seed: u64 = std::env::var("VBLAUNCH_KILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0x5eed);
    let mut x = seed | 1;
    for round in 0..rounds {
        // xorshift64: reproducible "random" kill times (print the seed to replay).
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let delay = std::time::Duration::from_millis(x % 700);
        let leaf = w.leaf(&vm.uuid);
        w.write_bytes(&leaf, 4096 * (round % 200), &format!("round {round}"));
        let content = w.content(&leaf);
        kill_vblaunch(
            &w,
            &["fold", "Killed", "--keep", "2"],
            &[],
            Some(delay),
            false,
        );
        let r = w.vblaunch(&["fold", "Killed", "--keep", "2"]);
        let ctx = format!("seed {seed}, round {round}, killed after {delay:?}");
        assert_eq!(r.code, 0, "{ctx}: {r}");
        let info = w.info(&vm.uuid);
        let (own, off) = vblaunch::snapshots::own_snapshots(&info, "current", false);
        assert!(
            off.is_empty() && (1..=2).contains(&own.len()),
            "{ctx}: {}",
            w.state(&vm.uuid)
        );
        assert_eq!(
            vblaunch::snapshots::current_path(&info).len(),
            info.snapshots.len(),
            "{ctx}"
        );
        assert_folded(&w, &vm.uuid, "current");
        assert!(
            w.content(&w.leaf(&vm.uuid)) == content,
            "{ctx}: the disk content changed"
        );
    }
}

#[cfg(target_os = "linux")]
#[test]
fn real_kill_9_at_random_moments_converges() {
    let rounds = std::env::var("VBLAUNCH_KILL_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(6);
    kill_rounds("real_kill_9_at_random_moments_converges", rounds);
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "long: 50 randomized kills; run with `cargo test -- --ignored`"]
fn real_kill_9_fifty_times_long() {
    kill_rounds("real_kill_9_fifty_times_long", 50);
}

/// One .vdi attached to two VMs, each with its own "current" (measured on
/// 7.2.22: attaching a base that already has a child gives B an image of its
/// own on it, B's snapshots sit above that, and the base has two children).
/// Before: `fold B` said "its base disk stays frozen and safe to back up:
/// <base>" while B's work went into B's own image, and `fold A` failed
/// half-way in VirtualBox. Now B's fold names both images a backup needs,
/// and A's fold, whose merge would have to write into the shared base, is
/// refused before any change, naming B's image; doctor shows the same.
#[test]
fn real_a_base_shared_by_two_vms_is_never_called_safe_alone() {
    let w = real_world!("real_a_base_shared_by_two_vms_is_never_called_safe_alone");
    let a = w.create_vm("Share A", 8);
    assert_eq!(w.vblaunch(&["fold", "Share A"]).code, 0);
    let b = w.register_empty_vm("Share B", &w.path("vms"));
    w.attach_disk(&b, "SATA", &a.base);
    // B got an image of its own on the shared base at the attach.
    assert_ne!(w.leaf(&b), a.base);
    assert_eq!(w.vblaunch(&["fold", "Share B"]).code, 0);
    w.write_bytes(&w.leaf(&b), 8192, "B's work");
    let base_bytes = w.content(&a.base);
    let r = w.vblaunch(&["fold", "Share B"]);
    assert_eq!(r.code, 0, "{r}");
    // The image under B's current snapshot (VirtualBox merges a diff forward,
    // so it is not the one made at the attach) holds B's session.
    let hdds = w.hdds();
    let leaf = w.leaf(&b);
    let parent = hdds
        .iter()
        .find(|m| m.location == leaf)
        .and_then(|m| m.parent.clone())
        .unwrap();
    let b_own = hdds
        .iter()
        .find(|m| m.uuid == parent)
        .unwrap()
        .location
        .clone();
    assert!(
        b_own.starts_with(w.path("vms/Share B")),
        "{}",
        b_own.display()
    );
    assert!(
        r.stderr.contains(&format!(
            "safe to back up: {}, {}",
            a.base.display(),
            b_own.display()
        )),
        "both images a backup of B needs ({}): {r}",
        b_own.display()
    );
    assert!(
        String::from_utf8_lossy(&w.content(&b_own)).contains("B's work"),
        "B's session is in B's own image"
    );
    assert_eq!(
        w.content(&a.base),
        base_bytes,
        "the shared base is untouched"
    );

    // A's merge would write into the shared base: refused, nothing changed.
    let before_a = w.state(&a.uuid);
    let r = w.vblaunch(&["fold", "Share A"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(
        r.stderr.contains(a.base.to_str().unwrap())
            && r.stderr.contains("another child image")
            && r.stderr.contains(b_own.to_str().unwrap())
            && r.stderr.contains("Nothing was changed"),
        "{r}"
    );
    assert_eq!(w.state(&a.uuid), before_a);
    assert_eq!(w.content(&a.base), base_bytes);
    let r = w.vblaunch(&["doctor", "Share A"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(
        r.stdout.contains("FAIL pre-flight") && r.stdout.contains("another child image"),
        "{r}"
    );
}

/// Names VirtualBox accepts that a command line can misread: one starting
/// with `-` (VBoxManage 7.2.22 takes it for an option unless it follows
/// `--`), and one name shared by two registered VMs (VirtualBox picks the
/// first; vblaunch refuses, exit 7, listing both).
#[test]
fn real_dash_names_and_shared_names() {
    let w = real_world!("real_dash_names_and_shared_names");
    let dash = w.create_vm("-dash VM", 8);
    let r = w.vblaunch(&["fold", "--", "-dash VM"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &dash.uuid, "current");
    let r = w.vblaunch(&["fold", "--", "-no such VM"]);
    assert_eq!(r.code, 7, "{r}");
    let r = w.vblaunch(&["doctor", "--", "-no such VM"]);
    assert_eq!(r.code, 7, "{r}");
    let a = w.create_vm("Twin", 8);
    let b = w.register_empty_vm("Twin", &w.path("vms2"));
    let before = w.state(&a.uuid);
    let r = w.vblaunch(&["fold", "Twin"]);
    assert_eq!(r.code, 7, "{r}");
    assert!(r.stderr.contains(&a.uuid) && r.stderr.contains(&b), "{r}");
    assert_eq!(w.state(&a.uuid), before);
}
