//! `vblaunchw` on a Linux desktop: its windows drawn by zenity or kdialog.
//! Fake `zenity`, `kdialog`, `qdbus`, `xdg-open`, `xclip` and `notify-send`
//! scripts are the only programs on PATH; each records its argv (and its
//! input) in the world's `desktop/` folder and answers as the test says:
//! `answers` holds one line per dialog, "<exit code> [<printed button>]".
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::*;

const VBLAUNCHW: &str = env!("CARGO_BIN_EXE_vblaunchw");

/// Record argv (NUL-separated) in `$D/<pid>.args` and the call in `$D/order`.
const RECORD: &str = r#"D="$FAKE_DESKTOP"
printf '%s\0' "$@" > "$D/$$.args"
printf '%s %s\n' "$$" "${0##*/}" >> "$D/order"
"#;

/// The next line of `$D/answers` (consumed): exit with its code, print its
/// button; with none left, `$CLOSED` (the window closed).
const ANSWER: &str = r#"answer=$CLOSED; rest=""
if [ -f "$D/answers" ]; then
    { IFS= read -r answer; while IFS= read -r l; do rest="$rest$l
"; done; } < "$D/answers"
    printf '%s' "$rest" > "$D/answers"
fi
code=${answer%% *}
case "$answer" in *" "*) printf '%s\n' "${answer#* }" ;; esac
exit "${code:-0}"
"#;

fn zenity_script() -> String {
    format!(
        r#"#!/bin/sh
CLOSED=1
{RECORD}progress=""; cancel=1
for a in "$@"; do
    case "$a" in
        --progress) progress=1 ;;
        --no-cancel) cancel="" ;;
        --filename=*) while IFS= read -r l; do printf '%s\n' "$l"; done < "${{a#--filename=}}" > "$D/$$.report" ;;
    esac
done
if [ -n "$progress" ]; then
    # The user's Cancel, at once, where it is offered.
    if [ -n "$cancel" ] && [ -n "$FAKE_CANCEL" ]; then exit 1; fi
    while IFS= read -r line; do printf '%s\n' "$line" >> "$D/$$.stdin"; done
    exit 0
fi
{ANSWER}"#
    )
}

fn kdialog_script() -> String {
    format!(
        r#"#!/bin/sh
CLOSED=2
{RECORD}for a in "$@"; do
    if [ "$a" = --progressbar ]; then
        printf 'org.kde.kdialog-%s /ProgressDialog\n' "$$"
        exit 0
    fi
done
{ANSWER}"#
    )
}

/// Record and print what `wasCancelled` should answer (qdbus).
fn qdbus_script() -> String {
    format!(
        "#!/bin/sh\n{RECORD}for a in \"$@\"; do [ \"$a\" = wasCancelled ] && echo false; done\nexit 0\n"
    )
}

/// Record, and keep stdin in `$D/clipboard` (xclip).
fn clipboard_script() -> String {
    format!(
        "#!/bin/sh\n{RECORD}{{ while IFS= read -r l; do printf '%s\\n' \"$l\"; done; printf '%s' \"$l\"; }} >> \"$D/clipboard\"\nexit 0\n"
    )
}

fn recorder_script() -> String {
    format!("#!/bin/sh\n{RECORD}exit 0\n")
}

/// The fake desktop: a `bin/` with the named programs, a `desktop/` record.
struct Desktop {
    bin: PathBuf,
    rec: PathBuf,
}

impl Desktop {
    fn new(w: &World, programs: &[&str]) -> Desktop {
        let bin = w.path("bin");
        let rec = w.path("desktop");
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&rec).unwrap();
        for p in programs {
            let text = match *p {
                "zenity" => zenity_script(),
                "kdialog" => kdialog_script(),
                "qdbus" => qdbus_script(),
                "xclip" => clipboard_script(),
                _ => recorder_script(),
            };
            write_script(&bin.join(p), &text);
        }
        Desktop { bin, rec }
    }

    fn answers(&self, lines: &[&str]) {
        std::fs::write(self.rec.join("answers"), format!("{}\n", lines.join("\n"))).unwrap();
    }

    /// The recorded calls in order: (program, argv).
    fn calls(&self) -> Vec<Call> {
        let order = std::fs::read_to_string(self.rec.join("order")).unwrap_or_default();
        order
            .lines()
            .map(|l| {
                let (pid, program) = l.split_once(' ').unwrap();
                let args = std::fs::read(self.rec.join(format!("{pid}.args"))).unwrap();
                let args = String::from_utf8(args).unwrap();
                let read =
                    |ext: &str| std::fs::read_to_string(self.rec.join(format!("{pid}.{ext}")));
                Call {
                    program: program.to_string(),
                    args: args.split_terminator('\0').map(str::to_string).collect(),
                    stdin: read("stdin").unwrap_or_default(),
                    report: read("report").unwrap_or_default(),
                }
            })
            .collect()
    }

    fn of(&self, program: &str) -> Vec<Call> {
        self.calls()
            .into_iter()
            .filter(|c| c.program == program)
            .collect()
    }
}

#[derive(Debug)]
struct Call {
    program: String,
    args: Vec<String>,
    stdin: String,
    report: String,
}

impl Call {
    fn has(&self, arg: &str) -> bool {
        self.args.iter().any(|a| a == arg)
    }

    /// The value of `--name=value`.
    fn opt(&self, name: &str) -> Option<&str> {
        self.args
            .iter()
            .find_map(|a| a.strip_prefix(&format!("{name}=")))
    }
}

/// A script written whole and then renamed, so that no test forks while it
/// is open for writing (ETXTBSY).
fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// vblaunchw from the shortcut: no terminal, a display, only the fake
/// desktop's programs on PATH.
fn vblaunchw(w: &World, d: &Desktop, display: bool, env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut cmd = Command::new(VBLAUNCHW);
    w.base_env_pub(&mut cmd);
    cmd.env("VBLAUNCH_VBOXMANAGE", w.vboxmanage_exe())
        .env("PATH", &d.bin)
        .env("FAKE_DESKTOP", &d.rec)
        .env("LC_ALL", "C.UTF-8")
        .args(args)
        .stdin(Stdio::null());
    if display {
        cmd.env("DISPLAY", ":99");
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// A VM folded once (it has vblaunch's snapshot, so a launch merges it).
fn adopted(w: &World, name: &str) -> Vm {
    let vm = w.create_vm(name, 16);
    let r = w.vblaunch(&["fold", name]);
    assert_eq!(r.code, 0, "{r}");
    vm
}

/// The percentages a progress window was fed, in order.
fn percentages(c: &Call) -> Vec<u8> {
    let first = c.opt("--percentage").map(|p| p.parse().unwrap());
    first
        .into_iter()
        .chain(c.stdin.lines().filter_map(|l| l.parse().ok()))
        .collect()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const LAUNCH: [&str; 4] = ["--pause-on-error", "launch", "--", "Dev Box"];

#[test]
fn a_slow_fold_shows_zenitys_progress_window_with_rising_percentages() {
    let w = World::fake();
    adopted(&w, "Dev Box");
    let d = Desktop::new(&w, &["zenity", "xdg-open", "notify-send"]);
    fault(&w, &["snapshot", "delete", "slow-progress", "300"]);
    let out = vblaunchw(&w, &d, true, &[], &LAUNCH);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let windows = d.of("zenity");
    assert_eq!(windows.len(), 1, "one progress window: {windows:#?}");
    let p = &windows[0];
    assert!(p.has("--progress") && p.has("--auto-close"), "{p:#?}");
    assert_eq!(p.opt("--title"), Some("Dev Box — vblaunch"));
    let text = p.opt("--text").unwrap();
    assert!(
        text.starts_with("Merging the last session (") && text.contains("into the base disk"),
        "{text}"
    );
    assert!(text.contains("Elapsed 0:0"), "{text}");
    // A merge cannot be cancelled.
    assert!(p.has("--no-cancel"), "{p:#?}");
    let pct = percentages(p);
    assert!(pct.windows(2).all(|w| w[0] <= w[1]), "rising: {pct:?}");
    assert!(pct.len() >= 3 && pct[0] < pct[pct.len() - 1], "{pct:?}");
    assert!(
        pct.iter().all(|&x| x <= 99),
        "100 would close it early: {pct:?}"
    );
    // The text follows the elapsed time, one `#` line each.
    assert!(p
        .stdin
        .lines()
        .any(|l| l.starts_with("# Merging the last session")));
    assert!(!p.stdin.contains("Elapsed 0:00"), "{}", p.stdin);
    // Everything still goes to the log.
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(log.contains("Started VM 'Dev Box'"), "{log}");
}

#[test]
fn a_fast_launch_spawns_no_zenity_at_all() {
    let w = World::fake();
    adopted(&w, "Dev Box");
    let d = Desktop::new(&w, &["zenity", "xdg-open", "notify-send"]);
    let t = std::time::Instant::now();
    let out = vblaunchw(&w, &d, true, &[], &LAUNCH);
    let took = t.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(w.info("Dev Box").state, "running");
    // A launch done within the first second shows no window (the model's
    // rule); a machine too loaded to launch that fast proves nothing here.
    if took < std::time::Duration::from_millis(900) {
        assert!(d.calls().is_empty(), "{:#?}", d.calls());
    } else {
        eprintln!("(the launch took {took:?}: not a fast launch on this machine)");
    }
}

#[test]
fn a_failing_launch_shows_zenitys_error_dialog_and_keeps_the_exit_code() {
    let w = World::fake();
    adopted(&w, "Dev Box");
    let d = Desktop::new(&w, &["zenity", "xdg-open", "xclip", "notify-send"]);
    // The start fails all three tries, with VirtualBox's recorded words.
    for _ in 0..3 {
        fault(&w, &["startvm", "real", "frontend-missing"]);
    }
    // Open log, Copy details, Run doctor, then Close.
    d.answers(&["1 Open log", "1 Copy details", "1 Run doctor", "0", "0"]);
    let out = vblaunchw(&w, &d, true, &[], &LAUNCH);
    // The code vblaunch gives: 11, the VM did not start.
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    let z = d.of("zenity");
    let dialogs: Vec<&Call> = z.iter().filter(|c| c.has("--error")).collect();
    assert_eq!(dialogs.len(), 4, "shown again after each action: {z:#?}");
    let e = dialogs[0];
    assert_eq!(e.opt("--title"), Some("Dev Box — vblaunch"));
    assert!(e.has("--no-markup"));
    let text = e.opt("--text").unwrap();
    for part in [
        "The VM did not start (the fold was kept; the base disk is safe)",
        "What this means: The VirtualBox program that shows the VM is not installed",
        "What to do: ",
        "Details — VirtualBox said:\n",
        "Exit code 11 · log: ",
    ] {
        assert!(text.contains(part), "{part:?} missing from:\n{text}");
    }
    assert_eq!(e.opt("--ok-label"), Some("Close"));
    let extras: Vec<&str> = e
        .args
        .iter()
        .filter_map(|a| a.strip_prefix("--extra-button="))
        .collect();
    assert_eq!(extras, ["Open log", "Run doctor", "Copy details"]);
    // Open log: xdg-open with the log file.
    let opened = d.of("xdg-open");
    assert_eq!(opened.len(), 1, "{opened:#?}");
    assert_eq!(opened[0].args, [w.log_file().display().to_string()]);
    // Copy details: the dialog's whole text on the clipboard.
    let clip = std::fs::read_to_string(d.rec.join("clipboard")).unwrap();
    assert!(
        clip.starts_with("Dev Box — vblaunch\n\nThe VM did not start"),
        "{clip}"
    );
    assert!(clip.contains("Exit code 11"), "{clip}");
    assert_eq!(d.of("xclip")[0].args, ["-selection", "clipboard"]);
    // Run doctor: its report in a text window.
    let report: Vec<&Call> = z.iter().filter(|c| c.has("--text-info")).collect();
    assert_eq!(report.len(), 1, "{z:#?}");
    assert_eq!(report[0].opt("--title"), Some("vblaunch doctor — Dev Box"));
    assert!(
        report[0].report.contains("doctor -- 'Dev Box'"),
        "{}",
        report[0].report
    );
    assert!(report[0].report.contains("Dev Box"), "{}", report[0].report);
    // No progress window (the launch was fast), no notification.
    assert!(!z.iter().any(|c| c.has("--progress")), "{z:#?}");
    assert!(d.of("notify-send").is_empty());
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(log.contains("did not start"), "{log}");
}

/// The fake's record of the calls that change something.
fn mutations(w: &World) -> Vec<String> {
    std::fs::read_to_string(w.path("vbox/fake-calls.log"))
        .unwrap_or_default()
        .lines()
        .filter(|l| {
            !(l.starts_with("showvminfo") || l.starts_with("list") || l.starts_with("--version"))
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn cancel_while_virtualbox_is_open_stops_with_exit_3_and_changes_nothing() {
    let w = World::fake();
    let vm = adopted(&w, "Dev Box");
    // A front end under a name of this test's own (see World::write_config).
    let own = format!("vbldesk{}", std::process::id());
    w.write_config(&format!("guard_processes = [\"{own}\"]\n"));
    let fe = KillOnDrop::spawn(&w.path(&own));
    let before = w.state(&vm.uuid);
    let _ = std::fs::remove_file(w.path("vbox/fake-calls.log"));
    let d = Desktop::new(&w, &["zenity", "xdg-open", "notify-send"]);
    let out = vblaunchw(&w, &d, true, &[("FAKE_CANCEL", "1")], &LAUNCH);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(w.state(&vm.uuid), before);
    assert!(mutations(&w).is_empty(), "{:#?}", mutations(&w));
    // One window, at once: waiting, with Cancel; no failure dialog after it.
    let z = d.of("zenity");
    assert_eq!(z.len(), 1, "{z:#?}");
    let p = &z[0];
    assert!(
        p.has("--progress") && p.has("--pulsate") && !p.has("--no-cancel"),
        "{p:#?}"
    );
    let text = p.opt("--text").unwrap();
    assert!(
        text.starts_with("Waiting for VirtualBox to close…"),
        "{text}"
    );
    assert!(text.contains(&format!("{own} (pid {})", fe.id())), "{text}");
    let log = std::fs::read_to_string(w.log_file()).unwrap();
    assert!(log.contains("the user chose Cancel"), "{log}");
    assert!(log.contains("You stopped waiting for VirtualBox"), "{log}");
}

#[test]
fn a_held_session_ends_with_a_notification_after_the_checked_fold_on_exit() {
    let w = World::fake();
    w.create_vm("Dev Box", 16);
    w.write_config("wait = true\nfold_on_exit = true\nwait_poll_ms = 50\n");
    let d = Desktop::new(&w, &["zenity", "notify-send"]);
    let mut cmd = Command::new(VBLAUNCHW);
    w.base_env_pub(&mut cmd);
    let mut child = cmd
        .env("VBLAUNCH_VBOXMANAGE", w.vboxmanage_exe())
        .env("VBLAUNCH_CONFIG", w.config_file())
        .env("PATH", &d.bin)
        .env("FAKE_DESKTOP", &d.rec)
        .env("LC_ALL", "C.UTF-8")
        .env("DISPLAY", ":99")
        .args(LAUNCH)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(90);
    let holding = || {
        std::fs::read_to_string(w.log_file()).is_ok_and(|l| l.contains("Waiting for VM 'Dev Box'"))
    };
    while !holding() {
        assert!(child.try_wait().unwrap().is_none(), "vblaunchw ended early");
        assert!(
            std::time::Instant::now() < deadline,
            "never held the session"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(d.of("notify-send").is_empty(), "{:#?}", d.calls());
    w.vbox_ok(&["fake", "set-state", "Dev Box", "poweroff"]);
    w.vbox_ok(&["fake", "session", "Dev Box", "-"]);
    assert_eq!(child.wait().unwrap().code(), Some(0));
    // The session was folded (and checked) on exit, then said so, once, as
    // news rather than a failure.
    assert!(w.info("Dev Box").snapshots.is_empty());
    let n = d.of("notify-send");
    assert_eq!(n.len(), 1, "{:#?}", d.calls());
    assert_eq!(
        n[0].args,
        [
            "--app-name=vblaunch",
            "Dev Box — vblaunch",
            "Dev Box: today's work is in the base disk"
        ]
    );
}

#[test]
fn without_zenity_or_kdialog_or_a_display_the_old_behaviour_stays() {
    let w = World::fake();
    // No dialog program: the failure goes to a notification, as before.
    let d = Desktop::new(&w, &["notify-send", "xdg-open"]);
    let args = ["--pause-on-error", "launch", "--", "No Such VM"];
    let out = vblaunchw(&w, &d, true, &[], &args);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    let n = d.of("notify-send");
    assert_eq!(n.len(), 1, "{:#?}", d.calls());
    assert!(n[0].args.iter().any(|a| a.contains("No Such VM")), "{n:#?}");
    assert_eq!(d.calls().len(), 1);
    // zenity there, but no display: the same.
    let w = World::fake();
    let d = Desktop::new(&w, &["zenity", "notify-send"]);
    let out = vblaunchw(&w, &d, false, &[], &args);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(d.of("zenity").is_empty(), "{:#?}", d.calls());
    assert_eq!(d.of("notify-send").len(), 1);
}

#[test]
fn kdialog_shows_progress_over_qdbus_and_the_failure_with_its_three_buttons() {
    let w = World::fake();
    adopted(&w, "Dev Box");
    let d = Desktop::new(&w, &["kdialog", "qdbus", "xdg-open", "xclip"]);
    fault(&w, &["snapshot", "delete", "slow-progress", "250"]);
    for _ in 0..3 {
        fault(&w, &["startvm", "real", "frontend-missing"]);
    }
    // Close (kdialog's Cancel button).
    d.answers(&["2"]);
    let out = vblaunchw(&w, &d, true, &[("XDG_CURRENT_DESKTOP", "KDE")], &LAUNCH);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    let k = d.of("kdialog");
    assert_eq!(k.len(), 2, "the bar, then the dialog: {k:#?}");
    assert_eq!(
        k[0].args[..3],
        ["--title", "Dev Box — vblaunch", "--progressbar"]
    );
    assert!(
        k[0].args[3].starts_with("Merging the last session"),
        "{k:#?}"
    );
    let service = format!("org.kde.kdialog-{}", {
        let order = std::fs::read_to_string(d.rec.join("order")).unwrap();
        order
            .lines()
            .find(|l| l.ends_with(" kdialog"))
            .unwrap()
            .split(' ')
            .next()
            .unwrap()
            .to_string()
    });
    let q = d.of("qdbus");
    assert!(
        q.iter()
            .all(|c| c.args[..2] == [service.as_str(), "/ProgressDialog"]),
        "{q:#?}"
    );
    let values: Vec<u8> = q
        .iter()
        .filter(|c| c.args.len() == 6 && c.args[2..5] == ["Set", "", "value"])
        .map(|c| c.args[5].parse().unwrap())
        .collect();
    assert!(
        values.len() >= 2 && values.windows(2).all(|v| v[0] < v[1]),
        "{values:?}"
    );
    assert!(q.iter().any(|c| c.args[2] == "setLabelText"), "{q:#?}");
    assert_eq!(
        q.last().unwrap().args[2],
        "close",
        "closed before the dialog"
    );
    let e = &k[1];
    assert_eq!(
        e.args[..3],
        ["--title", "Dev Box — vblaunch", "--warningyesnocancel"]
    );
    assert!(
        e.args[3].contains("What this means: The VirtualBox program"),
        "{e:#?}"
    );
    assert_eq!(
        e.args[4..],
        [
            "--yes-label",
            "Open log",
            "--no-label",
            "Run doctor",
            "--cancel-label",
            "Close"
        ]
    );
}

#[test]
fn the_desktop_entry_needs_no_terminal_when_zenity_can_show_vblaunchw() {
    let w = World::fake();
    w.create_vm("Dev Box", 16);
    let d = Desktop::new(&w, &["zenity"]);
    let apps = w.path("apps");
    let bin = d.bin.clone().into_os_string();
    let r = w.vblaunch_env(
        &["shortcut", "Dev Box", "--dest", apps.to_str().unwrap()],
        &[("PATH", bin.as_os_str())],
    );
    assert_eq!(r.code, 0, "{r}");
    let file = apps.join("vblaunch-Dev_20Box.desktop");
    let text = std::fs::read_to_string(&file).unwrap();
    let gui = std::fs::canonicalize(VBLAUNCH)
        .unwrap()
        .with_file_name("vblaunchw");
    assert!(
        text.contains(&format!(
            "\nExec={} --pause-on-error launch -- \"Dev Box\"\n",
            gui.display()
        )),
        "{text}"
    );
    assert!(text.contains("\nTerminal=false\n"), "{text}");
    validate(&file);

    // Without zenity or kdialog: vblaunch in a terminal, as before.
    let w = World::fake();
    w.create_vm("Dev Box", 16);
    let empty = w.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let apps = w.path("apps");
    let r = w.vblaunch_env(
        &["shortcut", "Dev Box", "--dest", apps.to_str().unwrap()],
        &[("PATH", empty.as_os_str())],
    );
    assert_eq!(r.code, 0, "{r}");
    let file = apps.join("vblaunch-Dev_20Box.desktop");
    let text = std::fs::read_to_string(&file).unwrap();
    let console = std::fs::canonicalize(VBLAUNCH).unwrap();
    assert!(
        text.contains(&format!("\nExec={} --pause-on-error", console.display())),
        "{text}"
    );
    assert!(text.contains("\nTerminal=true\n"), "{text}");
    validate(&file);
}

/// desktop-file-validate, where it is installed (CI installs it).
fn validate(file: &Path) {
    let Ok(out) = Command::new("desktop-file-validate").arg(file).output() else {
        if std::env::var_os("VBLAUNCH_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
            panic!("VBLAUNCH_REQUIRE_TOOLS=1 but desktop-file-validate is not installed");
        }
        eprintln!("SKIPPED desktop-file-validate: not installed");
        return;
    };
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "desktop-file-validate: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
