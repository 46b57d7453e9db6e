//! The command line itself: help, version, config, exit codes for bad input.
use crate::support::*;

#[test]
fn help_shows_examples_and_exit_codes() {
    let w = World::fake();
    let r = w.vblaunch(&["--help"]);
    assert_eq!(r.code, 0, "{r}");
    for needle in [
        "Examples:",
        "vblaunch fold \"Dev Box\"",
        "Exit codes:",
        "11  the VM did not start",
        "--dry-run",
        "--no-wait",
    ] {
        assert!(
            r.stdout.contains(needle),
            "help lacks {needle:?}:\n{}",
            r.stdout
        );
    }
    let r = w.vblaunch(&["--version"]);
    assert_eq!(
        r.stdout.trim(),
        format!("vblaunch {}", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn no_arguments_prints_help_and_fails_as_usage() {
    let r = World::fake().vblaunch::<&str>(&[]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains("Usage:"), "{r}");
}

#[cfg(unix)] // the default location on Windows is the user's AppData
#[test]
fn config_path_follows_precedence() {
    let w = World::fake();
    w.remove_config();
    let r = w.vblaunch(&["config", "path"]);
    assert_eq!(
        r.stdout.trim(),
        w.path("config/vblaunch/vblaunch.toml").to_str().unwrap(),
        "{r}"
    );
    let r = w.vblaunch_env(
        &["config", "path"],
        &[("VBLAUNCH_CONFIG", w.path("env.toml").as_os_str())],
    );
    // An explicit file must exist.
    assert_eq!(r.code, 2, "{r}");
    std::fs::write(w.path("env.toml"), "").unwrap();
    std::fs::write(w.path("flag.toml"), "").unwrap();
    let r = w.vblaunch_env(
        &["config", "path"],
        &[("VBLAUNCH_CONFIG", w.path("env.toml").as_os_str())],
    );
    assert_eq!(r.stdout.trim(), w.path("env.toml").to_str().unwrap(), "{r}");
    let flag = w.path("flag.toml");
    let r = w.vblaunch_env(
        &["config", "path", "--config", flag.to_str().unwrap()],
        &[("VBLAUNCH_CONFIG", w.path("env.toml").as_os_str())],
    );
    assert_eq!(r.stdout.trim(), flag.to_str().unwrap(), "{r}");
}

#[test]
fn config_check_accepts_the_shipped_example_and_names_bad_lines() {
    let w = World::fake();
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/config/vblaunch.example.toml");
    let r = w.vblaunch(&["config", "check", "--config", example]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains(": ok"), "{r}");

    let p = w.write_config(
        "guard_processes = [\"x\"]\nquick_read = \"auto\"\n[vm.\"Dev Box\"]\nsnapshot_nam = \"x\"\n",
    );
    let r = w.vblaunch(&["config", "check", "--config", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains(&format!("{}:4:1:", p.display())), "{r}");
    assert!(r.stderr.contains("snapshot_nam"), "{r}");
    // A bad config stops a launch too, before anything runs.
    let r = w.vblaunch(&["SomeVM", "--config", p.to_str().unwrap()]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        !w.path("vbox/fake-calls.log").exists(),
        "no VBoxManage call may happen"
    );
}

#[cfg(unix)]
#[test]
fn config_check_without_a_file_says_defaults_apply() {
    let w = World::fake();
    w.remove_config();
    let r = w.vblaunch(&["config", "check"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("built-in defaults"), "{r}");
}

#[test]
fn missing_vboxmanage_is_exit_8_naming_the_path_and_how_to_set_it() {
    let w = World::fake();
    let r = w.vblaunch_env(
        &["fold", "X"],
        &[("VBLAUNCH_VBOXMANAGE", w.path("nope/VBoxManage").as_os_str())],
    );
    assert_eq!(r.code, 8, "{r}");
    assert!(
        r.stderr.contains("nope/VBoxManage") && r.stderr.contains("VBLAUNCH_VBOXMANAGE"),
        "{r}"
    );
    assert!(
        r.stderr.contains("log file:"),
        "the log file is named with every error: {r}"
    );
}

#[test]
fn errors_are_written_to_the_log_file() {
    let w = World::fake();
    let r = w.vblaunch(&["fold", "NoSuchVM"]);
    assert_eq!(r.code, 7, "{r}");
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(log.contains("[ERROR]") && log.contains("NoSuchVM"), "{log}");
    assert!(log.contains("run: ") && log.contains(" list vms"), "{log}");
}

#[cfg(windows)]
#[test]
fn finds_vboxmanage_through_vbox_msi_install_path() {
    let w = World::fake();
    let dir = w.path("Oracle VirtualBox");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(fake_vboxmanage(), dir.join("VBoxManage.exe")).unwrap();
    // As the installer sets it: with a trailing backslash, possibly several dirs.
    let msi = format!("C:\\does-not-exist\\;{}\\", dir.display());
    let empty = std::ffi::OsString::new();
    let r = w.vblaunch_env(
        &["-v", "fold", "NoSuchVM"],
        &[
            ("VBLAUNCH_VBOXMANAGE", empty.as_os_str()),
            ("VBOX_MSI_INSTALL_PATH", std::ffi::OsStr::new(&msi)),
        ],
    );
    assert!(
        r.stderr.contains(&format!(
            "using VBoxManage at {}\\VBoxManage.exe",
            dir.display()
        )),
        "{r}"
    );
}

#[test]
fn completions_and_man_page_come_from_the_cli_definition() {
    let w = World::fake();
    let r = w.vblaunch(&["completions", "bash"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.contains("complete")
            && r.stdout.contains("--dry-run")
            && r.stdout.contains("shortcut"),
        "{}",
        r.stdout
    );
    let r = w.vblaunch(&["completions", "powershell"]);
    assert!(r.stdout.contains("Register-ArgumentCompleter"), "{r}");
    let r = w.vblaunch(&["completions", "nushell"]);
    assert_eq!(r.code, 2, "an unknown shell is a usage error: {r}");
    let r = w.vblaunch(&["manpage"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(
        r.stdout.starts_with(".ie") || r.stdout.contains(".TH vblaunch"),
        "{}",
        &r.stdout[..200.min(r.stdout.len())]
    );
    assert!(
        r.stdout.contains("Exit codes"),
        "the man page carries the exit-code table"
    );
}

#[test]
fn pause_on_error_does_not_block_without_a_terminal() {
    // Shortcuts pass --pause-on-error; with no terminal to answer, vblaunch
    // must still exit (stdin is null here).
    let w = World::fake();
    let r = w.vblaunch(&[
        "--pause-on-error",
        "--vboxmanage",
        w.path("nope").to_str().unwrap(),
        "fold",
        "X",
    ]);
    assert_eq!(r.code, 8, "{r}");
    assert!(!r.stderr.contains("Press Enter"), "{r}");
}

#[cfg(target_os = "linux")]
#[test]
fn pause_on_error_waits_for_enter_in_a_terminal() {
    // `script` gives vblaunch a terminal; the newline we send answers the prompt.
    let r = World::fake()
        .vblaunch_in_terminal("--pause-on-error --vboxmanage /nonexistent/VBoxManage fold X");
    assert!(
        r.stdout.contains("VBoxManage not found")
            && r.stdout.contains("Press Enter to close this window."),
        "{r}"
    );
    assert_eq!(r.code, 8, "{r}");
}
