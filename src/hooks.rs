//! Hooks: programs the user configures to run at points of a launch —
//! `before_fold`, `after_fold` (the base disks are consistent now: the place
//! for `restic backup`, `robocopy`, a CrashPlan/Backblaze trigger),
//! `after_start`, `after_exit`. Each is an argv array, never a shell string
//! (write `["sh", "-c", "…"]` to get a shell). Each gets `VBLAUNCH_VM`,
//! `VBLAUNCH_VM_UUID`, `VBLAUNCH_VM_DIR`, `VBLAUNCH_BASE_DISKS` (paths joined
//! with the OS path-list separator; see [`env()`] for the forms that survive a
//! path containing it) and `VBLAUNCH_EVENT`, runs with a timeout
//! (killed with its children when it runs out), and its output goes to the
//! log. A failing `before_fold` aborts the launch; the others warn. Hooks run
//! while vblaunch holds the VM's lock, so no other fold changes the base
//! under an `after_fold` backup.
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::exit::{fail, Code};
use crate::process::{self, CommandLine, Deadline};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    BeforeFold,
    AfterFold,
    AfterStart,
    AfterExit,
}

impl Event {
    pub fn name(self) -> &'static str {
        match self {
            Event::BeforeFold => "before_fold",
            Event::AfterFold => "after_fold",
            Event::AfterStart => "after_start",
            Event::AfterExit => "after_exit",
        }
    }
}

/// What a hook is told about the VM.
#[derive(Debug, Clone)]
pub struct Vm {
    pub name: String,
    pub uuid: String,
    pub dir: PathBuf,
    pub base_disks: Vec<PathBuf>,
}

/// The environment a hook gets (besides vblaunch's own). The base disks
/// come three ways: `VBLAUNCH_BASE_DISKS` (joined with the OS path-list
/// separator, `:` or `;`: empty, with a warning, when a path contains that
/// separator), and, surviving any path, `VBLAUNCH_BASE_DISK_COUNT` with
/// `VBLAUNCH_BASE_DISK_1` … `_N`, and `VBLAUNCH_BASE_DISKS_JSON` (a JSON
/// array of strings).
pub fn env(event: Event, vm: &Vm) -> Vec<(String, String)> {
    let disks = match std::env::join_paths(&vm.base_disks) {
        Ok(s) => s.to_string_lossy().into_owned(),
        Err(_) => {
            let sep = if cfg!(windows) { ';' } else { ':' };
            let bad = vm
                .base_disks
                .iter()
                .find(|p| p.to_string_lossy().contains(sep))
                .map(|p| p.display().to_string())
                .unwrap_or_default();
            log::warn!(
                "VBLAUNCH_BASE_DISKS is empty for this hook: the path {} contains '{sep}', the \
                 separator of that list. Use VBLAUNCH_BASE_DISK_1 … VBLAUNCH_BASE_DISK_COUNT or \
                 VBLAUNCH_BASE_DISKS_JSON instead.",
                crate::logging::escape(&bad)
            );
            String::new()
        }
    };
    let list: Vec<String> = vm
        .base_disks
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    let mut env: Vec<(String, String)> = vec![
        ("VBLAUNCH_EVENT".into(), event.name().into()),
        ("VBLAUNCH_VM".into(), vm.name.clone()),
        ("VBLAUNCH_VM_UUID".into(), vm.uuid.clone()),
        ("VBLAUNCH_VM_DIR".into(), vm.dir.display().to_string()),
        ("VBLAUNCH_BASE_DISKS".into(), disks),
        (
            "VBLAUNCH_BASE_DISKS_JSON".into(),
            serde_json::to_string(&list).unwrap_or_else(|_| "[]".into()),
        ),
        ("VBLAUNCH_BASE_DISK_COUNT".into(), list.len().to_string()),
    ];
    for (i, p) in list.into_iter().enumerate() {
        env.push((format!("VBLAUNCH_BASE_DISK_{}", i + 1), p));
    }
    env
}

/// Run one hook. Ok when it exits 0 in time.
pub fn run(event: Event, argv: &[String], vm: &Vm, timeout: Duration) -> Result<()> {
    let Some((program, args)) = argv.split_first() else {
        return Ok(());
    };
    let mut cmd = CommandLine::new(std::path::Path::new(program));
    cmd.args = args.iter().map(Into::into).collect();
    cmd.env = env(event, vm);
    // Its own process group: a timeout kills the hook and everything it started.
    cmd.detach_from_terminal_signals = true;
    log::info!("Running {} hook: {cmd}", event.name());
    let started = std::time::Instant::now();
    let out = process::run(&cmd, Deadline::After(timeout), &mut |_| {}).map_err(|e| {
        fail(
            Code::HookFailed,
            format!("the {} hook failed: {e}", event.name()),
        )
    })?;
    for line in out.stdout.lines().chain(out.stderr.lines()) {
        log::debug!("{} hook: {line}", event.name());
    }
    if !out.status.success() {
        let tail: Vec<&str> = out.stderr.lines().rev().take(5).collect();
        return Err(fail(
            Code::HookFailed,
            format!(
                "the {} hook `{cmd}` failed ({}){}",
                event.name(),
                match out.status.code() {
                    Some(c) => format!("exit code {c}"),
                    None => "killed by a signal".into(),
                },
                if tail.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; it said:\n  {}",
                        tail.into_iter().rev().collect::<Vec<_>>().join("\n  ")
                    )
                }
            ),
        ));
    }
    log::info!(
        "The {} hook finished in {:.1} s.",
        event.name(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn vm() -> Vm {
        Vm {
            name: "Dev Box".into(),
            uuid: "u-1".into(),
            dir: "/vms/Dev Box".into(),
            base_disks: vec!["/d/a.vdi".into(), "/d/b b.vdi".into()],
        }
    }

    #[test]
    fn a_hook_gets_the_vm_in_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("env.txt");
        let argv: Vec<String> = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!(
                "printf '%s|%s|%s|%s|%s' \"$VBLAUNCH_EVENT\" \"$VBLAUNCH_VM\" \"$VBLAUNCH_VM_UUID\" \"$VBLAUNCH_VM_DIR\" \"$VBLAUNCH_BASE_DISKS\" > '{}'",
                out.display()
            ),
        ];
        run(Event::AfterFold, &argv, &vm(), Duration::from_secs(30)).unwrap();
        assert_eq!(
            std::fs::read_to_string(&out).unwrap(),
            "after_fold|Dev Box|u-1|/vms/Dev Box|/d/a.vdi:/d/b b.vdi"
        );
    }

    #[test]
    fn a_failing_hook_is_an_error_with_its_words() {
        let argv: Vec<String> = vec![
            "/bin/sh".into(),
            "-c".into(),
            "echo nope >&2; exit 3".into(),
        ];
        let err = run(Event::BeforeFold, &argv, &vm(), Duration::from_secs(30)).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("before_fold") && msg.contains("exit code 3") && msg.contains("nope"),
            "{msg}"
        );
        assert_eq!(crate::exit::code_of(&err), Code::HookFailed);
    }

    #[test]
    fn a_hanging_hook_and_its_children_are_killed_at_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("child.pid");
        // The shell starts a child that would outlive it.
        let argv: Vec<String> = vec![
            "/bin/sh".into(),
            "-c".into(),
            format!("sleep 600 & echo $! > '{}'; wait", pidfile.display()),
        ];
        let err = run(Event::AfterFold, &argv, &vm(), Duration::from_millis(500)).unwrap_err();
        assert!(
            format!("{err:#}").contains("did not finish within"),
            "{err:#}"
        );
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let alive = std::path::Path::new(&format!("/proc/{}", pid.trim())).exists()
            && !std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
                .unwrap_or_default()
                .contains(") Z ");
        assert!(!alive, "the hook's child {pid} survived the timeout");
    }

    #[test]
    fn base_disks_survive_a_path_with_the_list_separator() {
        let mut v = vm();
        v.base_disks = vec!["/d/a:b.vdi".into(), "/d/c.vdi".into()];
        let env: std::collections::HashMap<String, String> =
            env(Event::AfterFold, &v).into_iter().collect();
        assert_eq!(
            env["VBLAUNCH_BASE_DISKS"], "",
            "cannot be split right: empty"
        );
        assert_eq!(env["VBLAUNCH_BASE_DISK_COUNT"], "2");
        assert_eq!(env["VBLAUNCH_BASE_DISK_1"], "/d/a:b.vdi");
        assert_eq!(env["VBLAUNCH_BASE_DISK_2"], "/d/c.vdi");
        let json: Vec<String> = serde_json::from_str(&env["VBLAUNCH_BASE_DISKS_JSON"]).unwrap();
        assert_eq!(json, ["/d/a:b.vdi", "/d/c.vdi"]);
    }
}
