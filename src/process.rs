//! The one subprocess wrapper. argv only (never a shell string), stdin null,
//! stdout and stderr drained on threads while the child runs, a deadline or —
//! for merges, which VirtualBox cannot cancel — no deadline but a warning when
//! progress stalls. Progress (`0%...10%...`) on stderr is handed to a callback
//! as it arrives.
use std::ffi::OsString;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use wait_timeout::ChildExt;

/// How long a call may take.
#[derive(Debug, Clone, Copy)]
pub enum Deadline {
    /// Kill the child and fail after this long.
    After(Duration),
    /// Never kill (a snapshot merge must run to its end); call `on_stall`
    /// whenever no output arrived for this long.
    Never { stall_warning: Duration },
}

#[derive(Debug)]
pub struct Output {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub duration: Duration,
}

#[derive(Debug)]
pub enum Event<'a> {
    /// A new progress percentage seen on stderr.
    Progress(u32),
    /// No output for the stall-warning period (merges only).
    Stalled(Duration),
    /// Raw stderr text as it arrived.
    Stderr(&'a str),
}

/// A command line: program and arguments, displayed quoted for the user's shell.
#[derive(Debug, Clone)]
pub struct CommandLine {
    pub program: PathBuf,
    pub args: Vec<OsString>,
    pub env: Vec<(String, String)>,
    /// Run in a new process group, so that Ctrl-C in the terminal does not
    /// kill a VBoxManage that is merging a disk.
    pub detach_from_terminal_signals: bool,
}

impl CommandLine {
    pub fn new(program: &Path) -> Self {
        CommandLine {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            detach_from_terminal_signals: false,
        }
    }

    pub fn arg(mut self, a: impl Into<OsString>) -> Self {
        self.args.push(a.into());
        self
    }
}

impl std::fmt::Display for CommandLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", quote(&self.program.to_string_lossy()))?;
        for a in &self.args {
            write!(f, " {}", quote(&a.to_string_lossy()))?;
        }
        Ok(())
    }
}

/// Quote one word for display the way the user's shell would need it
/// (cmd.exe style on Windows, POSIX single quotes elsewhere).
pub fn quote(word: &str) -> String {
    let plain = !word.is_empty()
        && word.chars().all(|c| {
            c.is_alphanumeric() || "-_./:=@%+,{}".contains(c) || (cfg!(windows) && c == '\\')
        });
    if plain {
        word.to_string()
    } else if cfg!(windows) {
        format!("\"{}\"", word.replace('"', "\\\""))
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

#[derive(Debug)]
pub enum RunError {
    Spawn {
        command: String,
        source: std::io::Error,
    },
    TimedOut {
        command: String,
        after: Duration,
        stderr: String,
    },
}

impl std::fmt::Display for RunError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RunError::Spawn { command, source } => write!(f, "cannot run `{command}`: {source}"),
            RunError::TimedOut {
                command,
                after,
                stderr,
            } => {
                write!(
                    f,
                    "`{command}` did not finish within {} s and was stopped",
                    after.as_secs()
                )?;
                if !stderr.trim().is_empty() {
                    write!(f, "; it printed: {}", stderr.trim())?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for RunError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            RunError::Spawn { source, .. } => Some(source),
            RunError::TimedOut { .. } => None,
        }
    }
}

/// Extract complete `NN%` tokens from the stderr seen so far, beyond `seen`.
fn progress_values(stderr: &str) -> Vec<u32> {
    let mut out = Vec::new();
    let mut digits = String::new();
    for c in stderr.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else {
            if c == '%' && !digits.is_empty() {
                if let Ok(v) = digits.parse::<u32>() {
                    if v <= 100 {
                        out.push(v);
                    }
                }
            }
            digits.clear();
        }
    }
    out
}

enum Chunk {
    Err(Vec<u8>),
    ErrClosed,
}

/// The `Command` for a command line: argv and environment, stdin null,
/// stdout piped.
fn command(cmd: &CommandLine, stderr: Stdio) -> Command {
    let mut command = Command::new(&cmd.program);
    command
        .args(&cmd.args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr);
    for (k, v) in &cmd.env {
        command.env(k, v);
    }
    #[cfg(windows)]
    {
        use std::os::windows::process::CommandExt;
        command.creation_flags(no_window());
    }
    command
}

/// Without a console of its own (`vblaunchw.exe`, a shortcut launch), a
/// console child such as VBoxManage would open a console window each time:
/// `CREATE_NO_WINDOW` prevents that (its output is captured anyway). With a
/// console, children share it as before.
#[cfg(windows)]
fn no_window() -> u32 {
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;
    if crate::face::windows::has_console() {
        0
    } else {
        CREATE_NO_WINDOW
    }
}

/// Run the command to completion (or its deadline), reporting events.
pub fn run(
    cmd: &CommandLine,
    deadline: Deadline,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Output, RunError> {
    let shown = cmd.to_string();
    let mut command = command(cmd, Stdio::piped());
    if cmd.detach_from_terminal_signals {
        detach(&mut command);
    }
    let start = Instant::now();
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        command: shown.clone(),
        source,
    })?;

    let mut stdout_pipe = child.stdout.take().expect("piped stdout");
    let mut stderr_pipe = child.stderr.take().expect("piped stderr");
    let stdout_thread = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout_pipe.read_to_end(&mut buf);
        buf
    });
    let (tx, rx) = mpsc::channel();
    let stderr_thread = std::thread::spawn(move || {
        let mut buf = [0u8; 512];
        loop {
            match stderr_pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(Chunk::Err(buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
        let _ = tx.send(Chunk::ErrClosed);
    });

    let mut stderr_bytes = Vec::new();
    let mut reported = 0usize;
    let hard_deadline = match deadline {
        Deadline::After(d) => Some(start + d),
        Deadline::Never { .. } => None,
    };
    let tick = match deadline {
        Deadline::After(d) => d,
        Deadline::Never { stall_warning } => stall_warning,
    };
    let mut last_output = Instant::now();
    let mut timed_out = false;
    loop {
        let wait = match hard_deadline {
            Some(end) => match end.checked_duration_since(Instant::now()) {
                Some(left) => left.min(tick),
                None => {
                    timed_out = true;
                    break;
                }
            },
            None => tick
                .saturating_sub(last_output.elapsed())
                .max(Duration::from_millis(1)),
        };
        match rx.recv_timeout(wait) {
            Ok(Chunk::Err(bytes)) => {
                last_output = Instant::now();
                stderr_bytes.extend_from_slice(&bytes);
                let text = String::from_utf8_lossy(&stderr_bytes).into_owned();
                on_event(Event::Stderr(&String::from_utf8_lossy(&bytes)));
                let values = progress_values(&text);
                for v in values.iter().skip(reported) {
                    on_event(Event::Progress(*v));
                }
                reported = reported.max(values.len());
            }
            Ok(Chunk::ErrClosed) | Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if hard_deadline.is_none() && last_output.elapsed() >= tick {
                    on_event(Event::Stalled(last_output.elapsed()));
                    last_output = Instant::now();
                }
            }
        }
    }

    let status = if timed_out {
        None
    } else {
        match hard_deadline {
            Some(end) => {
                let left = end.saturating_duration_since(Instant::now());
                child.wait_timeout(left).ok().flatten()
            }
            None => child.wait().ok(),
        }
    };
    let Some(status) = status else {
        if cmd.detach_from_terminal_signals {
            kill_group(child.id());
        }
        let _ = child.kill();
        let _ = child.wait();
        let _ = stderr_thread.join();
        let _ = stdout_thread.join();
        return Err(RunError::TimedOut {
            command: shown,
            after: start.elapsed(),
            stderr: String::from_utf8_lossy(&stderr_bytes).into_owned(),
        });
    };
    let _ = stderr_thread.join();
    while let Ok(Chunk::Err(bytes)) = rx.try_recv() {
        stderr_bytes.extend_from_slice(&bytes);
    }
    let stdout = stdout_thread.join().unwrap_or_default();
    Ok(Output {
        status,
        stdout: String::from_utf8_lossy(&stdout).into_owned(),
        stderr: String::from_utf8_lossy(&stderr_bytes).into_owned(),
        duration: start.elapsed(),
    })
}

/// Kill a process group we created (the child is its leader), so that a
/// program killed at its deadline takes what it started with it.
#[cfg(unix)]
fn kill_group(pgid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", "--", &format!("-{pgid}")])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

#[cfg(not(unix))]
fn kill_group(_pgid: u32) {}

#[cfg(unix)]
fn detach(command: &mut Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
}

#[cfg(windows)]
fn detach(command: &mut Command) {
    use std::os::windows::process::CommandExt;
    const CREATE_NEW_PROCESS_GROUP: u32 = 0x0000_0200;
    command.creation_flags(CREATE_NEW_PROCESS_GROUP | no_window());
}

#[cfg(not(any(unix, windows)))]
fn detach(_command: &mut Command) {}

/// A long-running child that is killed (with its process group) when dropped.
pub struct Background {
    child: std::process::Child,
}

impl Background {
    /// Start `cmd` with stdout piped and wait until it prints its first line
    /// (proof that it is up), at most `within`. The rest of its output is
    /// discarded.
    pub fn start_and_wait_for_line(cmd: &CommandLine, within: Duration) -> Result<Self, RunError> {
        let shown = cmd.to_string();
        let mut command = command(cmd, Stdio::null());
        detach(&mut command);
        let mut child = command.spawn().map_err(|source| RunError::Spawn {
            command: shown.clone(),
            source,
        })?;
        let mut out = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 256];
            let mut sent = false;
            loop {
                match out.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => {
                        if !sent && buf[..n].contains(&b'\n') {
                            sent = true;
                            let _ = tx.send(());
                        }
                    }
                }
            }
        });
        let started = Instant::now();
        let bg = Background { child };
        match rx.recv_timeout(within) {
            Ok(()) => Ok(bg),
            Err(_) => Err(RunError::TimedOut {
                command: shown,
                after: started.elapsed(),
                stderr: String::new(),
            }),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        kill_group(self.child.id());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_tokens_are_read_from_vboxmanage_stderr() {
        assert_eq!(
            progress_values("0%...10%...20%...NS_ERROR_FAILURE 50% of 200%"),
            [0, 10, 20, 50]
        );
    }

    #[test]
    fn quoting_is_shell_safe() {
        if cfg!(windows) {
            assert_eq!(quote("My VM"), "\"My VM\"");
        } else {
            assert_eq!(quote("My VM"), "'My VM'");
            assert_eq!(quote("it's"), r"'it'\''s'");
        }
        assert_eq!(quote("--description=x"), "--description=x");
        assert_eq!(quote(""), if cfg!(windows) { "\"\"" } else { "''" });
    }

    #[cfg(unix)]
    #[test]
    fn captures_output_and_progress() {
        let cmd = CommandLine::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("printf out; printf '0%%...50%%...' >&2; printf '100%%\\n' >&2; exit 3");
        let mut seen = Vec::new();
        let out = run(&cmd, Deadline::After(Duration::from_secs(30)), &mut |e| {
            if let Event::Progress(p) = e {
                seen.push(p)
            }
        })
        .unwrap();
        assert_eq!(out.stdout, "out");
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(seen, [0, 50, 100]);
    }

    #[cfg(unix)]
    #[test]
    fn a_merge_is_never_killed_but_a_stall_is_reported() {
        // The child pauses longer than the stall period; without a deadline it
        // runs to its end and the pause is reported as a stall.
        let cmd = CommandLine::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("printf '0%%...' >&2; sleep 1; printf '100%%' >&2");
        let mut stalls = 0;
        let out = run(
            &cmd,
            Deadline::Never {
                stall_warning: Duration::from_millis(200),
            },
            &mut |e| {
                if let Event::Stalled(_) = e {
                    stalls += 1
                }
            },
        )
        .unwrap();
        assert!(out.status.success());
        assert!(stalls >= 1, "no stall reported");
        assert!(out.stderr.ends_with("100%"));
    }

    #[cfg(unix)]
    #[test]
    fn a_hanging_child_is_killed_at_its_deadline() {
        let cmd = CommandLine::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("echo started >&2; exec sleep 600");
        let err = run(
            &cmd,
            Deadline::After(Duration::from_millis(300)),
            &mut |_| {},
        )
        .unwrap_err();
        match err {
            RunError::TimedOut { stderr, .. } => assert!(stderr.contains("started")),
            other => panic!("expected a timeout, got {other}"),
        }
    }

    #[test]
    fn a_missing_program_is_a_spawn_error_naming_it() {
        let cmd = CommandLine::new(Path::new("/no/such/VBoxManage")).arg("list");
        let err = run(&cmd, Deadline::After(Duration::from_secs(5)), &mut |_| {}).unwrap_err();
        assert!(err.to_string().contains("/no/such/VBoxManage"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_background_child_is_up_after_its_first_line_and_gone_after_drop() {
        let dir = std::env::temp_dir().join(format!("vblaunch-bg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let marker = dir.join("child-pid");
        // The child writes its pid, then its first line, then sleeps.
        let cmd = CommandLine::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("echo $$ > \"$1\"; echo up; exec sleep 600")
            .arg("sh")
            .arg(&marker);
        let bg = Background::start_and_wait_for_line(&cmd, Duration::from_secs(10)).unwrap();
        let pid = std::fs::read_to_string(&marker).unwrap().trim().to_string();
        let alive = |pid: &str| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z "))
        };
        assert!(alive(&pid), "running while held");
        drop(bg);
        assert!(!alive(&pid), "killed and reaped on drop");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn a_background_child_that_prints_nothing_times_out() {
        let cmd = CommandLine::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("exec sleep 600");
        match Background::start_and_wait_for_line(&cmd, Duration::from_millis(300)) {
            Err(RunError::TimedOut { .. }) => {}
            Err(e) => panic!("expected a timeout, got {e}"),
            Ok(_) => panic!("expected a timeout"),
        }
    }
}
