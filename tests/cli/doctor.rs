//! `vblaunch doctor`: diagnosis (ok/warn/FAIL with evidence and the recovery)
//! and `--fix`, against the fake VBoxManage and real VirtualBox 7.2.
use std::path::{Path, PathBuf};

use crate::support::*;

macro_rules! real_world {
    ($name:expr) => {
        match real_backend($name) {
            Some(b) => World::new(b),
            None => return,
        }
    };
}

/// A VM folded once (vblaunch's `current`, settings backups, a journal).
fn adopted(w: &World, name: &str) -> Vm {
    let vm = w.create_vm(name, 16);
    let r = w.vblaunch(&["fold", name]);
    assert_eq!(r.code, 0, "{r}");
    vm
}

fn cfg_file(w: &World, vm: &str) -> PathBuf {
    w.info(vm).cfg_file.unwrap()
}

fn vm_data(w: &World, uuid: &str) -> PathBuf {
    w.path(&format!("data/vblaunch/vms/{uuid}"))
}

fn lines_with<'a>(r: &'a Run, prefix: &str) -> Vec<&'a str> {
    r.stdout.lines().filter(|l| l.starts_with(prefix)).collect()
}

#[test]
fn healthy_vm_is_all_ok_and_exits_0() {
    let w = World::fake();
    let vm = adopted(&w, "Healthy");
    let r = w.vblaunch(&["doctor", "Healthy"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(lines_with(&r, "FAIL").is_empty(), "{r}");
    assert!(lines_with(&r, "warn").is_empty(), "{r}");
    for check in [
        "ok   VBoxManage: ",
        "ok   VM registered and accessible: 'Healthy'",
        "ok   state: poweroff",
        "ok   media chain: SATA-0-0: ",
        "ok   snapshots: 1 of vblaunch's",
        "ok   settings backups: ",
        "ok   journal: ",
        "ok   free space: ",
        "ok   VirtualBox processes: ",
        "ok   last fold: ",
    ] {
        assert!(r.stdout.contains(check), "missing {check:?}:\n{r}");
    }
    assert!(r.stdout.contains(&vm.uuid), "{r}");
    assert!(
        r.stdout.contains(vm.base.to_str().unwrap()),
        "the chain names the base disk: {r}"
    );
}

#[test]
fn unknown_vm_fails_naming_the_registered_ones() {
    let w = World::fake();
    w.create_vm("Known", 8);
    let r = w.vblaunch(&["doctor", "Unknown"]);
    // The exit-code table: 7 = the VM is not registered.
    assert_eq!(r.code, 7, "{r}");
    assert!(r.stdout.contains("FAIL VM registered"), "{r}");
    assert!(r.stdout.contains("'Known'"), "{r}");
    assert!(r.stdout.contains("registervm"), "{r}");
}

/// A managed VM with a half-written `<vm>.vbox-tmp` beside its settings file
/// (what a crash in VirtualBox's save leaves): (the VM, the -tmp file).
fn with_leftover_tmp(w: &World, name: &str) -> (Vm, PathBuf) {
    let vm = adopted(w, name);
    let cfg = cfg_file(w, &vm.uuid);
    let tmp = PathBuf::from(format!("{}-tmp", cfg.display()));
    std::fs::write(&tmp, "half-written settings").unwrap();
    (vm, tmp)
}

/// A fix that cannot be done says why and points at the by-hand steps.
#[cfg(target_os = "linux")]
#[test]
fn a_fix_refused_while_virtualbox_runs_says_what_to_do_and_changes_nothing() {
    let w = World::fake();
    let (_, tmp) = with_leftover_tmp(&w, "Busy VM");
    let own = format!("vbldoc{}", std::process::id());
    w.write_config(&format!("guard_processes = [\"{own}\"]\n"));
    let _fe = KillOnDrop::spawn(&w.path(&own));
    let r = w.vblaunch(&["doctor", "Busy VM", "--fix", "--yes"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(
        r.stdout.contains("the fix failed: VirtualBox is running")
            && r.stdout
                .contains("close it and run `vblaunch doctor 'Busy VM' --fix` again"),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("To recover by hand, follow the \"fix:\" steps printed above"),
        "{r}"
    );
    assert!(tmp.exists(), "nothing was moved");
}

#[test]
fn leftover_vbox_tmp_fails_and_fix_moves_it_into_the_backups() {
    let w = World::fake();
    let (vm, tmp) = with_leftover_tmp(&w, "Tmp VM");
    // A fold refuses and points at doctor.
    let r = w.vblaunch(&["fold", "Tmp VM"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stderr.contains("doctor"), "{r}");

    let r = w.vblaunch(&["doctor", "Tmp VM"]);
    assert_eq!(r.code, 6, "{r}");
    let fails = lines_with(&r, "FAIL");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(fails[0].contains(tmp.to_str().unwrap()), "{r}");
    assert!(r.stdout.contains("  fix: "), "{r}");
    assert!(r.stdout.contains("--fix"), "{r}");

    // --fix without a terminal and without --yes only says what it would do.
    let r = w.vblaunch(&["doctor", "Tmp VM", "--fix"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(r.stdout.contains("not done"), "{r}");
    assert!(tmp.exists());

    let r = w.vblaunch(&["doctor", "Tmp VM", "--fix", "--yes"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!tmp.exists(), "{r}");
    let moved: Vec<PathBuf> = std::fs::read_dir(vm_data(&w, &vm.uuid).join("settings-backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.to_string_lossy().ends_with("-doctor"))
        .map(|d| d.join(tmp.file_name().unwrap()))
        .filter(|p| p.is_file())
        .collect();
    assert_eq!(moved.len(), 1, "{r}");
    assert_eq!(
        std::fs::read_to_string(&moved[0]).unwrap(),
        "half-written settings"
    );
    let r = w.vblaunch(&["fold", "Tmp VM"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
}

#[test]
fn an_interrupted_merge_fails_with_the_step_and_fix_finishes_the_fold() {
    let w = World::fake();
    let vm = adopted(&w, "Journal VM");
    let snap = w.info(&vm.uuid).current_snapshot.unwrap();
    let journal = vm_data(&w, &vm.uuid).join("journal.toml");
    std::fs::write(
        &journal,
        format!(
            "run = \"fold\"\nstarted = \"2026-11-26T07:00:00Z\"\n\n[[entries]]\n\
             step = \"merge snapshot {{{snap}}} 'current'\"\nvm = \"{}\"\nsnapshot = \"{snap}\"\n\
             started = \"2026-11-26T07:00:01Z\"\n",
            vm.uuid
        ),
    )
    .unwrap();
    let r = w.vblaunch(&["doctor", "Journal VM"]);
    // The merge may have written part of its data: a failure, not a warning.
    assert_eq!(r.code, 6, "{r}");
    let fails = lines_with(&r, "FAIL journal");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(
        fails[0].contains(&format!("merge snapshot {{{snap}}}"))
            && fails[0].contains("did not complete")
            && fails[0].contains("not safe to back up"),
        "{r}"
    );
    let status = w.vblaunch(&["status", "Journal VM"]);
    assert!(status.stdout.contains("safe to back up: no"), "{status}");
    assert!(r.stdout.contains("vblaunch fold"), "{r}");

    let r = w.vblaunch(&["doctor", "Journal VM", "--fix", "--yes"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("fixed: the fold finished"), "{r}");
    assert!(r.stdout.contains("ok   journal"), "{r}");
    assert_folded(&w, &vm.uuid, "current");
    let status = w.vblaunch(&["status", "Journal VM"]);
    assert!(status.stdout.contains("safe to back up: yes"), "{status}");
}

#[test]
fn a_failed_step_is_reported_by_doctor() {
    let w = World::fake();
    let vm = adopted(&w, "Failed VM");
    w.vbox_ok(&[
        "fake",
        "fault",
        "snapshot",
        "take",
        "fail",
        "1",
        "VBoxManage: error: Failed to take snapshot",
    ]);
    let r = w.vblaunch(&["fold", "Failed VM"]);
    assert_eq!(r.code, 9, "{r}");
    let r = w.vblaunch(&["doctor", "Failed VM"]);
    let warns = lines_with(&r, "warn journal");
    assert_eq!(warns.len(), 1, "{r}");
    assert!(
        warns[0].contains("failed at step \"take snapshot 'current'\"")
            && warns[0].contains("Failed to take snapshot"),
        "{r}"
    );
    let _ = vm;
}

#[test]
fn missing_diff_fails_naming_the_path_and_the_recovery() {
    let w = World::fake();
    let vm = adopted(&w, "Gone");
    let leaf = w.leaf(&vm.uuid);
    w.write_bytes(&leaf, 0, "precious");
    let before = w.content(&leaf);
    let saved = w.path("backup-of-leaf.vdi");
    std::fs::copy(&leaf, &saved).unwrap();
    std::fs::remove_file(&leaf).unwrap();

    let r = w.vblaunch(&["doctor", "Gone"]);
    assert_eq!(r.code, 6, "{r}");
    let fails = lines_with(&r, "FAIL media chain");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(fails[0].contains(leaf.to_str().unwrap()), "{r}");
    assert!(fails[0].contains("MISSING"), "{r}");
    assert!(
        r.stdout.contains("restore the file from your backup"),
        "{r}"
    );
    // No automatic fix for lost data; --fix changes nothing.
    let r = w.vblaunch(&["doctor", "Gone", "--fix", "--yes"]);
    assert_eq!(r.code, 6, "{r}");
    assert!(!leaf.exists());

    // The printed steps: put the file back, check again.
    std::fs::copy(&saved, &leaf).unwrap();
    let r = w.vblaunch(&["doctor", "Gone"]);
    assert_eq!(r.code, 0, "{r}");
    let r = w.vblaunch(&["fold", "Gone"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        w.content(&w.leaf(&vm.uuid)) == before,
        "the fold kept the restored bytes"
    );
}

#[test]
fn inaccessible_vm_is_found_by_name_through_vblaunchs_records() {
    let w = World::fake();
    let vm = adopted(&w, "Lost Reg");
    let leaf_uuid = w.info(&vm.uuid).attachments[0].image_uuid.clone();
    w.vbox_ok(&["fake", "unregister-medium", &leaf_uuid]);
    let r = w.vblaunch(&["doctor", "Lost Reg"]);
    assert_eq!(r.code, 6, "{r}");
    let fails = lines_with(&r, "FAIL VM registered and accessible");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(fails[0].contains(&vm.uuid), "{r}");
    assert!(r.stdout.contains("ok   settings backups"), "{r}");
}

// ---------------------------------------------------------------------------
// Real VirtualBox

/// Wait until this world's VBoxSVC has exited (it lingers ~5-7 s after the
/// last call and re-reads settings files only when it starts). The chroot
/// wrapper gives each VBOX_USER_HOME its own VBOX_IPC_SOCKETID.
fn wait_for_vboxsvc_exit(w: &World) {
    let home = w.path("vbox");
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("printf '%s' \"$1\" | md5sum | cut -c1-16")
        .arg("sh")
        .arg(&home)
        .output()
        .unwrap();
    let id = format!(
        "VBOX_IPC_SOCKETID=vbw-{}",
        String::from_utf8_lossy(&out.stdout).trim()
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let alive = std::fs::read_dir("/proc").unwrap().flatten().any(|e| {
            std::fs::read(e.path().join("environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|kv| kv == id.as_bytes()))
        });
        if !alive {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "VBoxSVC did not exit within 60 s"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Write known bytes into the VM's current state; returns its content.
fn write_and_read(w: &World, vm: &str, text: &str) -> Vec<u8> {
    let leaf = w.leaf(vm);
    w.write_bytes(&leaf, 1_048_576 + 4096, text);
    let content = w.content(&leaf);
    assert!(String::from_utf8_lossy(&content).contains(text));
    content
}

/// After a repair: VirtualBox reads the VM (also after VBoxSVC restarts,
/// i.e. the repair is in the files), a fold succeeds, the bytes are there.
fn assert_recovered(w: &World, vm: &Vm, before: &[u8]) {
    wait_for_vboxsvc_exit(w);
    let list = w.vbox_ok(&["list", "vms"]);
    assert!(
        list.contains(&format!("\"{}\" {{{}}}", vm.name, vm.uuid)),
        "the VM is accessible from its files: {list}"
    );
    assert!(
        w.content(&w.leaf(&vm.uuid)) == before,
        "the VM sees its data"
    );
    let r = w.vblaunch(&["fold", &vm.name]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(w, &vm.uuid, "current");
    assert!(
        w.content(&w.leaf(&vm.uuid)) == before,
        "the fold kept every byte"
    );
    assert!(w.content(&vm.base) == before, "the base holds the data");
    let r = w.vblaunch(&["doctor", &vm.name]);
    assert_eq!(r.code, 0, "{r}");
}

#[test]
fn real_doctor_deleted_diff_names_the_file_and_the_printed_steps_recover() {
    let w = real_world!("real_doctor_deleted_diff_names_the_file_and_the_printed_steps_recover");
    let vm = adopted(&w, "Doc Gone");
    let before = write_and_read(&w, &vm.uuid, "written before the diff was deleted");
    let leaf = w.leaf(&vm.uuid);
    let backup = w.path("user-backup.vdi");
    std::fs::copy(&leaf, &backup).unwrap();
    std::fs::remove_file(&leaf).unwrap();

    let r = w.vblaunch(&["doctor", "Doc Gone"]);
    assert_eq!(r.code, 6, "{r}");
    let fails = lines_with(&r, "FAIL media chain");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(
        fails[0].contains(leaf.to_str().unwrap()) && fails[0].contains("MISSING"),
        "{r}"
    );
    assert!(
        r.stdout
            .contains("restore the file from your backup to exactly"),
        "{r}"
    );

    // The printed steps: restore the file to exactly that path.
    std::fs::copy(&backup, &leaf).unwrap();
    assert_recovered(&w, &vm, &before);
}

/// Remove the entry of `uuid` from the `<MediaRegistry>` of a settings file
/// (the seed's "differencing image ... could not be found").
fn drop_registry_entry(cfg: &Path, uuid: &str) {
    let text = std::fs::read_to_string(cfg).unwrap();
    let needle = format!("<HardDisk uuid=\"{{{uuid}}}\"");
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains(&needle)).collect();
    assert_eq!(
        kept.len() + 1,
        text.lines().count(),
        "one line removed:\n{text}"
    );
    std::fs::write(cfg, kept.join("\n") + "\n").unwrap();
}

/// A managed VM whose current diff (with known bytes) VirtualBox's registry
/// lost: (the VM, what it saw, the diff's UUID, the diff's file).
fn lose_current_diff(w: &World, name: &str) -> (Vm, Vec<u8>, String, PathBuf) {
    let vm = adopted(w, name);
    assert_eq!(w.vblaunch(&["fold", name]).code, 0);
    let before = write_and_read(w, &vm.uuid, "written before the registry lost the diff");
    let leaf_uuid = w.info(&vm.uuid).attachments[0].image_uuid.clone();
    let leaf = w.leaf(&vm.uuid);
    let cfg = cfg_file(w, &vm.uuid);
    wait_for_vboxsvc_exit(w);
    drop_registry_entry(&cfg, &leaf_uuid);
    (vm, before, leaf_uuid, leaf)
}

#[test]
fn real_doctor_unregistered_diff_is_repaired_by_fix() {
    let w = real_world!("real_doctor_unregistered_diff_is_repaired_by_fix");
    let (vm, before, leaf_uuid, leaf) = lose_current_diff(&w, "Doc Reg");
    let r = w.vbox(&["showvminfo", "Doc Reg", "--machinereadable"]);
    assert_ne!(r.code, 0, "the VM is inaccessible now: {r}");

    let r = w.vblaunch(&["doctor", "Doc Reg"]);
    assert_eq!(r.code, 6, "{r}");
    let fails = lines_with(&r, "FAIL VM registered and accessible");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(
        fails[0].contains("INACCESSIBLE") && fails[0].contains(&vm.uuid),
        "{r}"
    );
    assert!(fails[0].contains(&leaf_uuid), "names the image: {r}");
    assert!(
        fails[0].contains(leaf.to_str().unwrap()),
        "names the file: {r}"
    );

    let r = w.vblaunch(&["doctor", "Doc Reg", "--fix", "--yes"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("fixed: "), "{r}");
    // What was replaced is kept.
    let kept = std::fs::read_dir(vm_data(&w, &vm.uuid).join("settings-backups"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|d| d.to_string_lossy().ends_with("-doctor"))
        .count();
    assert_eq!(kept, 1, "{r}");
    assert_recovered(&w, &vm, &before);
}

/// The by-hand recovery doctor prints works as printed: one command line.
#[test]
fn real_doctor_unregistered_diff_manual_recovery_works() {
    let w = real_world!("real_doctor_unregistered_diff_manual_recovery_works");
    let (vm, before, _, leaf) = lose_current_diff(&w, "Doc Hand");

    let r = w.vblaunch(&["doctor", "Doc Hand"]);
    assert_eq!(r.code, 6, "{r}");
    let line = r
        .stdout
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("VBoxManage list vms && "))
        .unwrap_or_else(|| panic!("a one-line recovery: {r}"));
    assert!(line.contains(leaf.to_str().unwrap()), "{r}");
    let script = format!("VBoxManage() {{ \"$VBM\" \"$@\"; }}\n{line}\n");
    let mut sh = std::process::Command::new("sh");
    w.base_env_pub(&mut sh);
    sh.arg("-c").arg(&script).env("VBM", w.vboxmanage_exe());
    let out = sh.output().unwrap();
    assert!(out.status.success(), "{line}\n{out:?}");
    assert_recovered(&w, &vm, &before);
}

#[test]
fn real_doctor_stale_settings_file_is_repaired_by_fix() {
    let w = real_world!("real_doctor_stale_settings_file_is_repaired_by_fix");
    let vm = adopted(&w, "Doc Stale");
    write_and_read(&w, &vm.uuid, "first session");
    let cfg = cfg_file(&w, &vm.uuid);
    let stale = std::fs::read(&cfg).unwrap();
    assert_eq!(w.vblaunch(&["fold", "Doc Stale"]).code, 0);
    let before = write_and_read(&w, &vm.uuid, "second session, after the copy was made");
    // Put the old copy back the way a user restoring the VM folder would,
    // with VirtualBox re-reading it: unregister, replace, register.
    w.vbox_ok(&["unregistervm", &vm.uuid]);
    std::fs::write(&cfg, &stale).unwrap();
    w.vbox_ok(&["registervm", cfg.to_str().unwrap()]);

    let r = w.vblaunch(&["doctor", "Doc Stale"]);
    assert_eq!(r.code, 6, "{r}");
    let fails = lines_with(&r, "FAIL media chain");
    assert_eq!(fails.len(), 1, "{r}");
    assert!(fails[0].contains("STALE"), "{r}");
    let leaf = w.leaf(&vm.uuid);
    assert!(fails[0].contains(leaf.to_str().unwrap()), "{r}");
    // A fold refuses meanwhile.
    assert_eq!(w.vblaunch(&["fold", "Doc Stale"]).code, 6);

    let r = w.vblaunch(&["doctor", "Doc Stale", "--fix", "--yes"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("fixed: "), "{r}");
    assert_recovered(&w, &vm, &before);
}

/// VirtualBox bug 850 (a 1 MiB zero write lost across a fold) on a version
/// before the fix: doctor fails naming it, every launch warns.
#[test]
fn a_virtualbox_version_with_a_known_data_loss_defect_is_named() {
    let w = World::fake();
    let vm = adopted(&w, "Old VBox");
    let r = w.vblaunch(&["doctor", "Old VBox"]);
    assert!(
        r.stdout
            .contains("ok   known VirtualBox defects: none known in 7.2.22"),
        "{r}"
    );
    let r = w.vblaunch(&["fold", "Old VBox"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(!r.stderr.contains("known defect"), "{r}");
    // VBoxSVC 7.2.16 is the one running (its log says so).
    std::fs::write(
        w.path("vbox/VBoxSVC.log"),
        "00:00:00.000839 main     VirtualBox XPCOM Server 7.2.16_Ubuntu r168000 linux.amd64 (Jan 1 2026) release log\n",
    )
    .unwrap();
    let r = w.vblaunch(&["fold", "Old VBox"]);
    assert_eq!(r.code, 0, "a warning, not a refusal: {r}");
    assert!(
        r.stderr
            .contains("VirtualBox 7.2.16_Ubuntu has a known defect")
            && r.stderr.contains("bug 850")
            && r.stderr.contains("Upgrade VirtualBox to 7.2.18"),
        "{r}"
    );
    assert_folded(&w, &vm.uuid, "current");
    let r = w.vblaunch(&["doctor", "Old VBox"]);
    assert_eq!(r.code, 6, "{r}");
    let fails = lines_with(&r, "FAIL known VirtualBox defects");
    assert!(fails.len() == 1 && fails[0].contains("bug 850"), "{r}");
}
