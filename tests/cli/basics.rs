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

    let p = w.write_config("guard_processes = [\"x\"]\n[vm.\"Dev Box\"]\nsnapshot_nam = \"x\"\n");
    let r = w.vblaunch(&["config", "check"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(r.stderr.contains(&format!("{}:3:1:", p.display())), "{r}");
    assert!(r.stderr.contains("snapshot_nam"), "{r}");
    // A bad config stops a launch too, before anything runs.
    let r = w.vblaunch(&["SomeVM"]);
    assert_eq!(r.code, 2, "{r}");
    assert!(
        !w.path("vbox/fake-calls.log").exists(),
        "no VBoxManage call may happen"
    );
}

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
    assert!(
        log.contains("showvminfo NoSuchVM --machinereadable"),
        "{log}"
    );
}
