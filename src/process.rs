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
    /// Variables removed from the child's environment (before `env` is set).
    pub env_remove: Vec<String>,
    /// Kept for callers' intent: every command now runs in a new process
    /// group (Windows: a job object), so that Ctrl-C in the terminal does not
    /// kill a VBoxManage that is merging a disk, and a deadline kills the
    /// command with everything it started.
    pub detach_from_terminal_signals: bool,
}

impl CommandLine {
    pub fn new(program: &Path) -> Self {
        CommandLine {
            program: program.to_path_buf(),
            args: Vec::new(),
            env: Vec::new(),
            env_remove: Vec::new(),
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
    Out(Vec<u8>),
    Err(Vec<u8>),
    OutClosed,
    ErrClosed,
}

/// Read a pipe to its end on a thread, sending what arrives. The thread is
/// never joined: a process the child left behind may hold the pipe open
/// past the deadline, and vblaunch does not wait for it.
fn drain(
    mut pipe: impl Read + Send + 'static,
    tx: mpsc::Sender<Chunk>,
    wrap: fn(Vec<u8>) -> Chunk,
    closed: Chunk,
) {
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send(wrap(buf[..n].to_vec())).is_err() {
                        return;
                    }
                }
            }
        }
        let _ = tx.send(closed);
    });
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
    for k in &cmd.env_remove {
        command.env_remove(k);
    }
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

/// How long the pipes may stay open after the child exited (a process it
/// left behind holds them): then its output so far is taken as all of it.
const PIPE_GRACE: Duration = Duration::from_secs(2);

/// Without a console of its own (`vblaunchw.exe`, a shortcut launch), a
/// console child such as VBoxManage would open a console window each time:
/// `CREATE_NO_WINDOW` prevents that (its output is captured anyway). With a
/// console, children share it as before.
#[cfg(windows)]
fn no_window() -> u32 {
    const CREATE_NO_WINDOW: u32 = 0x0800_0000;
    if crate::platform::has_console() {
        0
    } else {
        CREATE_NO_WINDOW
    }
}

/// Run the command to completion (or its deadline), reporting events.
///
/// The child runs in its own process group (Windows: a job object), so that
/// at the deadline it is killed with everything it started; vblaunch then
/// returns at once, never waiting for pipes a leftover process holds.
pub fn run(
    cmd: &CommandLine,
    deadline: Deadline,
    on_event: &mut dyn FnMut(Event<'_>),
) -> Result<Output, RunError> {
    let shown = cmd.to_string();
    let mut command = command(cmd, Stdio::piped());
    // Always a group of its own (see `detach_from_terminal_signals`).
    detach(&mut command);
    let start = Instant::now();
    let mut child = command.spawn().map_err(|source| RunError::Spawn {
        command: shown.clone(),
        source,
    })?;
    let group = Group::new(&child);

    let (tx, rx) = mpsc::channel();
    drain(
        child.stdout.take().expect("piped stdout"),
        tx.clone(),
        Chunk::Out,
        Chunk::OutClosed,
    );
    drain(
        child.stderr.take().expect("piped stderr"),
        tx,
        Chunk::Err,
        Chunk::ErrClosed,
    );

    let mut stdout_bytes = Vec::new();
    let mut stderr_bytes = Vec::new();
    let mut reported = 0usize;
    let hard_deadline = match deadline {
        Deadline::After(d) => start.checked_add(d),
        Deadline::Never { .. } => None,
    };
    let tick = match deadline {
        Deadline::After(d) => d,
        Deadline::Never { stall_warning } => stall_warning,
    };
    // Check on the child this often while its pipes are open.
    let poll = Duration::from_millis(100);
    let mut last_output = Instant::now();
    let (mut out_open, mut err_open) = (true, true);
    let mut exited: Option<(ExitStatus, Instant)> = None;
    let mut timed_out = false;
    while out_open || err_open {
        let now = Instant::now();
        if let Some((_, at)) = exited {
            if now.duration_since(at) >= PIPE_GRACE {
                log::debug!("`{shown}` exited; a process it left holds its output open");
                break;
            }
        }
        let mut wait = match hard_deadline {
            Some(end) => match end.checked_duration_since(now) {
                Some(left) if !left.is_zero() => left.min(tick),
                _ => {
                    timed_out = true;
                    break;
                }
            },
            None => tick
                .saturating_sub(last_output.elapsed())
                .max(Duration::from_millis(1)),
        };
        wait = wait.min(poll);
        match rx.recv_timeout(wait) {
            Ok(Chunk::Out(bytes)) => stdout_bytes.extend_from_slice(&bytes),
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
            Ok(Chunk::OutClosed) => out_open = false,
            Ok(Chunk::ErrClosed) => err_open = false,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                if hard_deadline.is_none() && last_output.elapsed() >= tick {
                    on_event(Event::Stalled(last_output.elapsed()));
                    last_output = Instant::now();
                }
                if exited.is_none() {
                    if let Ok(Some(status)) = child.try_wait() {
                        exited = Some((status, Instant::now()));
                    }
                }
            }
        }
    }

    let status = match (timed_out, exited) {
        (true, _) => None,
        (false, Some((status, _))) => Some(status),
        (false, None) => match hard_deadline {
            Some(end) => {
                let left = end.saturating_duration_since(Instant::now());
                child.wait_timeout(left).ok().flatten()
            }
            None => child.wait().ok(),
        },
    };
    let Some(status) = status else {
        group.kill();
        let _ = child.kill();
        let _ = child.wait();
        return Err(RunError::TimedOut {
            command: shown,
            after: start.elapsed(),
            stderr: String::from_utf8_lossy(&stderr_bytes).into_owned(),
        });
    };
    // What arrived between the last read and the exit.
    while let Ok(chunk) = rx.try_recv() {
        match chunk {
            Chunk::Out(b) => stdout_bytes.extend_from_slice(&b),
            Chunk::Err(b) => stderr_bytes.extend_from_slice(&b),
            _ => {}
        }
    }
    Ok(Output {
        status,
        stdout: decode(&stdout_bytes),
        stderr: decode(&stderr_bytes),
        duration: start.elapsed(),
    })
}

/// A child's output as text. VBoxManage (IPRT) writes in the *current code
/// set*: UTF-8 on Linux/macOS (vblaunch picks a UTF-8 locale, see
/// `vbox::locale`), the ANSI code page on Windows (through a pipe; IPRT
/// `stream.cpp`, `fCurrentCodeSet`): CP1252 for "Jürgen" on a German
/// Windows, Shift_JIS (932) on a Japanese one. Bytes that do not decode
/// become U+FFFD, which the parsers refuse (never a guess).
pub fn decode(bytes: &[u8]) -> String {
    decode_code_page(output_code_page(), bytes)
}

/// The code page VBoxManage's output is in: Windows' ANSI code page, or
/// 65001 (UTF-8) elsewhere.
pub fn output_code_page() -> u32 {
    #[cfg(windows)]
    {
        // SAFETY: GetACP takes no arguments and only returns a number.
        unsafe { windows_sys::Win32::Globalization::GetACP() }
    }
    #[cfg(not(windows))]
    {
        65001
    }
}

/// Decode `bytes` written in Windows code page `cp` (65001 is UTF-8). A code
/// page encoding_rs does not know is read as UTF-8 (and so what is not UTF-8
/// becomes U+FFFD).
pub fn decode_code_page(cp: u32, bytes: &[u8]) -> String {
    let enc = u16::try_from(cp)
        .ok()
        .and_then(codepage::to_encoding)
        .unwrap_or(encoding_rs::UTF_8);
    enc.decode_without_bom_handling(bytes).0.into_owned()
}

/// The child and everything it starts: its process group on Unix (the
/// child leads it), a job object on Windows. Killing it kills them all.
struct Group {
    #[cfg(unix)]
    pgid: i32,
    #[cfg(windows)]
    job: Option<windows_job::Job>,
}

impl Group {
    fn new(child: &std::process::Child) -> Group {
        #[cfg(unix)]
        {
            Group {
                pgid: child.id() as i32,
            }
        }
        #[cfg(windows)]
        {
            Group {
                job: windows_job::Job::for_child(child),
            }
        }
        #[cfg(not(any(unix, windows)))]
        {
            let _ = child;
            Group {}
        }
    }

    /// SIGKILL the whole group, then wait (briefly) until it is gone.
    fn kill(&self) {
        #[cfg(unix)]
        kill_group(self.pgid as u32);
        #[cfg(windows)]
        if let Some(job) = &self.job {
            job.terminate();
        }
    }
}

/// Kill a process group we created (the child is its leader), so that a
/// program killed at its deadline takes what it started with it. Waits up
/// to a second for the group's processes to be gone (a killed process is
/// not gone the instant the signal is sent).
#[cfg(unix)]
fn kill_group(pgid: u32) {
    let Ok(pgid) = i32::try_from(pgid) else {
        return;
    };
    if pgid <= 1 {
        return;
    }
    // SAFETY: kill(2) with a negative pid signals that process group only.
    unsafe {
        libc::kill(-pgid, libc::SIGKILL);
    }
    let until = Instant::now() + Duration::from_secs(1);
    while Instant::now() < until && group_has_live_members(pgid) {
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Whether a process group still has a member that is not a zombie (a
/// zombie is dead; only its parent's wait removes it). Linux reads /proc;
/// elsewhere signal 0 answers (zombies count as alive there).
#[cfg(unix)]
fn group_has_live_members(pgid: i32) -> bool {
    #[cfg(target_os = "linux")]
    {
        let Ok(rd) = std::fs::read_dir("/proc") else {
            return false;
        };
        rd.flatten().any(|e| {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
                return false;
            };
            // pid (comm) state ppid pgrp …; comm may contain spaces and ')'.
            let Some((_, rest)) = stat.rsplit_once(") ") else {
                return false;
            };
            let mut f = rest.split(' ');
            let state = f.next().unwrap_or("");
            let pgrp = f.nth(1).and_then(|p| p.parse::<i32>().ok());
            pgrp == Some(pgid) && state != "Z" && state != "X"
        })
    }
    #[cfg(not(target_os = "linux"))]
    {
        // SAFETY: signal 0 only checks for existence.
        unsafe { libc::kill(-pgid, 0) == 0 }
    }
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

/// A job object holding a child and its descendants (Windows): terminating
/// it ends them all; closing it (drop) leaves them running.
#[cfg(windows)]
mod windows_job {
    use std::os::windows::io::AsRawHandle;
    use windows_sys::Win32::Foundation::{CloseHandle, HANDLE};
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, TerminateJobObject,
    };

    pub struct Job(HANDLE);

    // SAFETY: a job handle may be used from any thread.
    unsafe impl Send for Job {}

    impl Job {
        /// A new job with the child in it (None if Windows refuses; then only
        /// the child itself is killed at a deadline).
        pub fn for_child(child: &std::process::Child) -> Option<Job> {
            // SAFETY: plain Win32 calls on handles we own or borrow.
            unsafe {
                let job = CreateJobObjectW(std::ptr::null(), std::ptr::null());
                if job.is_null() {
                    return None;
                }
                if AssignProcessToJobObject(job, child.as_raw_handle() as HANDLE) == 0 {
                    CloseHandle(job);
                    return None;
                }
                Some(Job(job))
            }
        }

        pub fn terminate(&self) {
            // SAFETY: the handle is ours and open.
            unsafe {
                TerminateJobObject(self.0, 1);
            }
        }
    }

    impl Drop for Job {
        fn drop(&mut self) {
            // SAFETY: closed once, here.
            unsafe {
                CloseHandle(self.0);
            }
        }
    }
}

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
    fn ansi_code_page_output_is_decoded_with_its_code_page() {
        // "Jürgen" as VBoxManage.exe prints it on a German Windows (CP1252),
        // and "開発" on a Japanese one (Shift_JIS, code page 932).
        assert_eq!(decode_code_page(1252, b"J\xfcrgen"), "Jürgen");
        assert_eq!(decode_code_page(932, b"\x8aJ\x94\xad"), "開発");
        assert_eq!(decode_code_page(65001, "Jürgen".as_bytes()), "Jürgen");
        // Bytes that are not valid in the code page are never dropped silently.
        assert!(decode_code_page(65001, b"J\xfcrgen").contains('\u{fffd}'));
        assert!(decode_code_page(932, b"J\xfc").contains('\u{fffd}'));
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

    /// Whether a process is alive (not a zombie).
    #[cfg(target_os = "linux")]
    fn alive(pid: &str) -> bool {
        std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
            .is_ok_and(|s| !s.rsplit_once(") ").is_some_and(|(_, r)| r.starts_with('Z')))
    }

    /// A wrapper script that runs a long child (not `exec`): at the deadline
    /// the whole group dies and run returns at once, not when the child's
    /// child would have closed the pipes.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_deadline_kills_the_childs_children_and_does_not_wait_for_their_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let cmd = CommandLine::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("sleep 30 & echo $! > \"$1\"; wait; true")
            .arg("sh")
            .arg(&pidfile);
        let started = Instant::now();
        let err = run(
            &cmd,
            Deadline::After(Duration::from_millis(500)),
            &mut |_| {},
        )
        .unwrap_err();
        assert!(matches!(err, RunError::TimedOut { .. }), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        assert!(!alive(&pid), "the grandchild {pid} survived");
    }

    /// A child that exits leaving a process that holds its output open: its
    /// result is taken shortly after it exits, and the process is left alone.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_child_that_exits_is_done_even_if_its_leftover_holds_the_pipes() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        let cmd = CommandLine::new(Path::new("/bin/sh"))
            .arg("-c")
            .arg("sleep 30 & echo $! > \"$1\"; echo done")
            .arg("sh")
            .arg(&pidfile);
        let started = Instant::now();
        let out = run(&cmd, Deadline::After(Duration::from_secs(20)), &mut |_| {}).unwrap();
        let pid = std::fs::read_to_string(&pidfile).unwrap();
        let _ = Command::new("kill").arg(pid.trim()).status();
        assert!(out.status.success());
        assert_eq!(out.stdout, "done\n");
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{:?}",
            started.elapsed()
        );
    }
}
