//! VBoxManage's output in Windows' ANSI code page (fake VBoxManage; runs on
//! every OS, and under Wine in CI, where the fake writes like VBoxManage.exe:
//! the ANSI code page, `?` for a character it lacks). "開発" is outside CP1252
//! (the Western code page), so on such a Windows VBoxManage prints "??" and
//! vblaunch must take the name and paths from the UTF-8 settings file; on a
//! Japanese Windows (code page 932, Shift_JIS) it is the 'ü' that is lost.
//! CI runs this under Wine twice: code page 1252 and, with
//! LC_ALL=ja_JP.UTF-8, 932.
use crate::support::*;

const NAME: &str = "Jürgen 開発";

#[test]
fn a_name_outside_the_ansi_code_page_is_read_from_the_settings_file() {
    let w = World::fake();
    let vm = w.create_vm_at(NAME, "vms/Jürgen 開発 dir", "Dïsk 開発.vdi", 8);
    // What the fake (like VBoxManage) prints, as bytes.
    let mut c = std::process::Command::new(fake_vboxmanage());
    w.base_env_pub(&mut c);
    let raw = c
        .env("LC_ALL", "C.UTF-8")
        .args(["showvminfo", &vm.uuid, "--machinereadable"])
        .output()
        .unwrap();
    assert_eq!(raw.status.code(), Some(0));
    let printed = vblaunch::process::decode(&raw.stdout);
    let name_line = printed.lines().find(|l| l.starts_with("name=")).unwrap();
    let cp = vblaunch::process::output_code_page();
    eprintln!("ANSI code page {cp}: {name_line}");
    if cfg!(windows) {
        // As VBoxManage.exe: the ANSI code page, '?' for what it lacks.
        let want = match cp {
            1252 => "name=\"Jürgen ??\"",
            932 => "name=\"J?rgen 開発\"",
            other => panic!("run this test with code page 1252 or 932, not {other}"),
        };
        assert_eq!(name_line, want, "code page {cp}");
        assert!(vblaunch::vbox::lossy::matches(
            &name_line[6..name_line.len() - 1],
            NAME
        ));
    } else {
        assert_eq!(name_line, format!("name=\"{NAME}\""));
    }
    for i in 0..2 {
        let r = w.vblaunch(&["fold", NAME]);
        assert_eq!(r.code, 0, "fold {i}: {r}");
        assert_folded(&w, &vm.uuid, "current");
    }
    let r = w.vblaunch(&["status", NAME, "--json"]);
    assert_eq!(r.code, 0, "{r}");
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(j["vms"][0]["name"], NAME, "{r}");
    assert_eq!(j["vms"][0]["safe_to_back_up"], true, "{r}");
}
