//! Non-ASCII VM names and paths, whatever the user's locale: against real
//! VirtualBox 7.2 (through the chroot wrapper, which passes the locale on as
//! an installed VirtualBox sees it, and with vblaunch itself inside the
//! chroot calling /usr/lib/virtualbox/VBoxManage directly) and the fake,
//! which cuts its output off under a non-UTF-8 locale as IPRT does.
use std::ffi::OsStr;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use crate::support::*;

/// A name, a folder and a disk file name with Latin-1 and CJK characters.
const NAME: &str = "Büro-PC 開発";
const FOLDER: &str = "vms/jürgen";
const DISK: &str = "Dïsk ü 開発.vdi";
/// A snapshot description with non-ASCII characters and a line break.
const DESCRIPTION: &str = "Größe ändern\n開発 – vor dem Update";

macro_rules! real_world {
    ($name:expr) => {
        match real_backend($name) {
            Some(b) => World::new(b),
            None => return,
        }
    };
}

fn os(s: &str) -> &OsStr {
    OsStr::new(s)
}

/// The user's locale variables for a run; an empty value unsets one.
type Locale<'a> = &'a [(&'a str, &'a str)];

const USER_C: Locale = &[("LC_ALL", "C")];
const USER_POSIX: Locale = &[("LC_ALL", ""), ("LANG", "POSIX")];
const USER_UTF8: Locale = &[("LC_ALL", ""), ("LANG", "C.UTF-8")];

fn run(w: &World, args: &[&str], locale: Locale) -> Run {
    let env: Vec<(&str, &OsStr)> = locale.iter().map(|(k, v)| (*k, os(v))).collect();
    w.vblaunch_env(args, &env)
}

/// A VM with a non-ASCII name, in a non-ASCII folder, with a non-ASCII disk
/// file name, and a user snapshot with a non-ASCII description.
fn non_ascii_vm(w: &World) -> (Vm, String) {
    let vm = w.create_vm_at(NAME, FOLDER, DISK, 8);
    assert!(vm.base.to_string_lossy().contains("ü 開発"));
    w.write_bytes(&vm.base, 0, "base data");
    w.vbox_ok(&[
        "snapshot",
        &vm.uuid,
        "take",
        "Vor dem Ürlaub",
        &format!("--description={DESCRIPTION}"),
    ]);
    let user = w.info(&vm.uuid).snapshots[0].uuid.clone();
    (vm, user)
}

/// fold (twice), status, list, doctor and restore on the VM, as the user
/// with `locale`; every byte and the user's snapshot kept.
fn every_command_works(w: &World, locale: Locale) {
    let (vm, user) = non_ascii_vm(w);
    let mut at_launch = Vec::new();
    for i in 0..3u64 {
        let leaf = w.leaf(&vm.uuid);
        w.write_bytes(&leaf, 65536 * i + 4096, &format!("session {i}"));
        let r = run(w, &["fold", NAME, "--keep", "2"], locale);
        assert_eq!(r.code, 0, "fold {i}: {r}");
        assert!(r.stderr.contains("'Vor dem Ürlaub'"), "{r}");
        let info = w.info(&vm.uuid);
        assert_eq!(info.snapshots[0].uuid, user);
        assert_eq!(info.snapshots[0].description.as_deref(), Some(DESCRIPTION));
        assert!(info.cfg_file.unwrap().to_string_lossy().contains("jürgen"));
        at_launch.push(w.content(&w.leaf(&vm.uuid)));
    }
    let r = run(w, &["status", NAME, "--json"], locale);
    assert_eq!(r.code, 0, "{r}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["vms"][0]["name"], NAME, "{r}");
    assert_eq!(j["vms"][0]["uuid"], vm.uuid.as_str());
    assert_eq!(j["vms"][0]["safe_to_back_up"], true, "{r}");
    let r = run(w, &["status", NAME], locale);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(NAME), "{r}");

    let r = run(w, &["list"], locale);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(NAME), "{r}");

    let r = run(w, &["doctor", NAME], locale);
    assert_eq!(r.code, 0, "{r}");

    w.write_bytes(&w.leaf(&vm.uuid), 1_000_000, "unsaved");
    let r = run(w, &["restore", NAME, "--to", "previous", "--yes"], locale);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        w.content(&w.leaf(&vm.uuid)) == at_launch[1],
        "restore --to previous: wrong bytes"
    );
    let r = run(w, &["fold", NAME, "--keep", "2"], locale);
    assert_eq!(r.code, 0, "{r}");
    assert_eq!(w.info(&vm.uuid).snapshots[0].uuid, user);
}

#[test]
fn real_non_ascii_vm_name_folder_disk_and_description_under_the_users_c_locale() {
    let w =
        real_world!("real_non_ascii_vm_name_folder_disk_and_description_under_the_users_c_locale");
    every_command_works(&w, USER_C);
    // The read before each fold came from one list call and the settings
    // file: that listing was whole, not cut off at the first 'ü'.
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(
        log.contains("read from one list call and the settings file"),
        "{log}"
    );
}

#[test]
fn real_non_ascii_vm_under_the_users_posix_and_utf8_locales() {
    let w = real_world!("real_non_ascii_vm_under_the_users_posix_and_utf8_locales");
    let (vm, _) = non_ascii_vm(&w);
    for locale in [USER_POSIX, USER_UTF8] {
        let r = run(&w, &["fold", NAME], locale);
        assert_eq!(r.code, 0, "{locale:?}: {r}");
        assert_folded(&w, &vm.uuid, "current");
        let r = run(&w, &["status", NAME], locale);
        assert_eq!(r.code, 0, "{locale:?}: {r}");
    }
}

#[test]
fn fake_non_ascii_vm_name_folder_disk_and_description_under_the_users_c_locale() {
    every_command_works(&World::fake(), USER_C);
}

/// No UTF-8 locale on the system: a non-ASCII name is refused before any
/// call; an ASCII-named VM in a non-ASCII folder makes VBoxManage cut its
/// output off, which is refused naming the encoding; nothing is changed.
fn without_a_utf8_locale_refuses_naming_the_locale(w: &World) {
    let (vm, _) = non_ascii_vm(w);
    let plain = w.create_vm_at("Plain", FOLDER, "plain.vdi", 8);
    let before = (w.state(&vm.uuid), w.state(&plain.uuid));
    let no_utf8: Locale = &[("LC_ALL", "C"), ("VBLAUNCH_TEST_NO_UTF8_LOCALE", "1")];

    // Refused either before the call that names it or at the first listing
    // that includes it (cut off there).
    for args in [&["fold", NAME][..], &["status", &vm.uuid][..]] {
        let r = run(w, args, no_utf8);
        assert_eq!(r.code, 9, "{r}");
        assert!(
            r.stderr.contains(&format!("cannot pass '{NAME}'")) || r.stderr.contains("cut off"),
            "{r}"
        );
        assert!(r.stderr.contains("No UTF-8 locale is installed"), "{r}");
    }

    for args in [&["fold", "Plain"][..], &["status", "Plain"][..]] {
        let r = run(w, args, no_utf8);
        assert_eq!(r.code, 9, "{args:?}: {r}");
        assert!(r.stderr.contains("cut off after `"), "{args:?}: {r}");
        assert!(r.stderr.contains("character set of its locale"), "{r}");
        assert!(r.stderr.contains("No UTF-8 locale is installed"), "{r}");
        assert!(!r.stderr.contains("busy"), "{r}");
        assert!(!r.stderr.contains("unknown"), "{r}");
    }
    assert_eq!((w.state(&vm.uuid), w.state(&plain.uuid)), before);
    // With a UTF-8 locale, the same VM folds.
    assert_eq!(run(w, &["fold", "Plain"], USER_C).code, 0);
}

#[test]
fn real_without_a_utf8_locale_non_ascii_is_refused_naming_the_locale() {
    let w = real_world!("real_without_a_utf8_locale_non_ascii_is_refused_naming_the_locale");
    without_a_utf8_locale_refuses_naming_the_locale(&w);
}

#[test]
fn fake_without_a_utf8_locale_non_ascii_is_refused_naming_the_locale() {
    without_a_utf8_locale_refuses_naming_the_locale(&World::fake());
}

/// The fake answers like real VBoxManage under LC_ALL=C (fixtures 49, 50).
#[test]
fn fake_cuts_its_output_off_under_a_non_utf8_locale_like_real_vboxmanage() {
    let w = World::fake();
    let vm = w.create_vm_at("Plain", FOLDER, "plain.vdi", 8);
    w.create_vm(NAME, 8);
    let fake = |args: &[&str]| {
        let mut c = Command::new(fake_vboxmanage());
        w.base_env_pub(&mut c);
        c.env("LC_ALL", "C").args(args);
        c.output().unwrap()
    };
    let o = fake(&["showvminfo", "Plain", "--machinereadable"]);
    assert_eq!(o.status.code(), Some(0));
    let out = String::from_utf8(o.stdout).unwrap();
    assert!(
        out.ends_with(&format!("UUID=\"{}\"\nCfgFile=\"", vm.uuid)),
        "{out}"
    );
    let o = fake(&["showvminfo", NAME, "--machinereadable"]);
    assert_eq!(o.status.code(), Some(3));
    assert!(o.stdout.is_empty());
    assert_eq!(
        String::from_utf8(o.stderr).unwrap(),
        "VBoxManage: fatal error: RTR3Init: VERR_NO_TRANSLATION\n"
    );
}

/// `vblaunch --wait` (launch, wait for the session, fold on exit) on the
/// non-ASCII VM, on the fake: real VMs cannot run in this branch's tests.
#[test]
fn fake_launch_with_wait_on_a_non_ascii_vm() {
    let w = World::fake();
    let (vm, user) = non_ascii_vm(&w);
    w.write_config("wait = true\nfold_on_exit = true\nwait_poll_ms = 20\n");
    let mut cmd = Command::new(VBLAUNCH);
    w.base_env_pub(&mut cmd);
    cmd.env("VBLAUNCH_VBOXMANAGE", fake_vboxmanage())
        .env("LC_ALL", "C")
        .arg(NAME)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let marker = format!("Waiting for VM '{NAME}' to shut down");
    let mut seen = Vec::new();
    let mut buf = [0u8; 256];
    let err = child.stderr.as_mut().unwrap();
    while !String::from_utf8_lossy(&seen).contains(&marker) {
        let n = err.read(&mut buf).unwrap();
        assert!(n > 0, "ended early: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
    }
    assert_eq!(w.info(&vm.uuid).state, "running");
    w.write_bytes(&w.leaf(&vm.uuid), 0, "today's work");
    let today = w.content(&w.leaf(&vm.uuid));
    w.vbox_ok(&["controlvm", &vm.uuid, "poweroff"]);
    let mut rest = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut rest)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{rest}");
    assert!(rest.contains("folded on exit"), "{rest}");
    let info = w.info(&vm.uuid);
    assert_eq!(info.snapshots.len(), 1, "{}", w.state(&vm.uuid));
    assert_eq!(info.snapshots[0].uuid, user);
    assert_eq!(w.content(&w.leaf(&vm.uuid)), today);
}

/// vblaunch inside the chroot, calling /usr/lib/virtualbox/VBoxManage
/// directly with the user's own environment (LC_ALL=C): nothing stands
/// between it and VBoxManage, as on an installed system.
fn native(w: &World, args: &[&str]) -> Run {
    let Backend::Real(wrapper) = &w.backend else {
        panic!("native runs need the real VirtualBox");
    };
    let exe: PathBuf = w.path("native/vblaunch");
    if !exe.exists() {
        std::fs::create_dir_all(w.path("native")).unwrap();
        std::fs::copy(VBLAUNCH, &exe).unwrap();
    }
    let env = [
        ("HOME", w.path("home")),
        ("XDG_CONFIG_HOME", w.path("config")),
        ("XDG_DATA_HOME", w.path("data")),
        ("VBLAUNCH_DATA_DIR", w.path("data/vblaunch")),
        ("VBOX_USER_HOME", w.path("vbox")),
        (
            "VBLAUNCH_VBOXMANAGE",
            PathBuf::from("/usr/lib/virtualbox/VBoxManage"),
        ),
        ("PATH", PathBuf::from("/usr/bin:/bin")),
        ("LANG", PathBuf::from("C")),
        ("LC_ALL", PathBuf::from("C")),
    ];
    let script = format!(
        "export {}; exec \"$@\"",
        env.iter()
            .map(|(k, v)| format!("{k}='{}'", v.display()))
            .collect::<Vec<_>>()
            .join(" ")
    );
    let mut cmd = Command::new(wrapper);
    w.base_env_pub(&mut cmd);
    cmd.env("VBOX_WRAPPER_PROG", "/bin/sh")
        .args(["-c", &script, "sh"])
        .arg(&exe)
        .args(args)
        .stdin(Stdio::null());
    let o = cmd.output().unwrap();
    Run {
        code: o.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

#[test]
fn real_native_vblaunch_in_the_chroot_folds_a_non_ascii_vm_under_lc_all_c() {
    let w = real_world!("real_native_vblaunch_in_the_chroot_folds_a_non_ascii_vm_under_lc_all_c");
    let (vm, user) = non_ascii_vm(&w);
    for i in 0..2u64 {
        let leaf = w.leaf(&vm.uuid);
        w.write_bytes(&leaf, 8192 * (i + 1), &format!("native session {i}"));
        let before = w.content(&leaf);
        let r = native(&w, &["fold", NAME]);
        assert_eq!(r.code, 0, "fold {i}: {r}");
        assert_folded(&w, &vm.uuid, "current");
        let info = w.info(&vm.uuid);
        assert_eq!(info.snapshots[0].uuid, user);
        assert_eq!(info.snapshots[0].description.as_deref(), Some(DESCRIPTION));
        assert!(w.content(&w.leaf(&vm.uuid)) == before);
    }
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(log.contains("/usr/lib/virtualbox/VBoxManage"), "{log}");
    assert!(log.contains("VBoxManage locale: All(\"C.UTF-8\")"), "{log}");
    for args in [&["status", NAME][..], &["list"][..], &["doctor", NAME][..]] {
        let r = native(&w, args);
        assert_eq!(r.code, 0, "{args:?}: {r}");
    }
    assert!(native(&w, &["list"]).stdout.contains(NAME));
    // A whole launch: fold, then start. VirtualBox cannot start a headless VM
    // without its kernel driver; its words, with the VM's name in them, reach
    // the user intact, and the fold is kept.
    let r = native(&w, &[NAME, "--type", "headless"]);
    assert_eq!(r.code, 11, "{r}");
    assert!(
        r.stderr.contains(&format!(
            "'{NAME}' has terminated unexpectedly during startup"
        )),
        "VirtualBox's own words: {r}"
    );
    assert!(r.stderr.contains("The fold was kept"), "{r}");
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.info(&vm.uuid).snapshots[0].uuid, user);
}
