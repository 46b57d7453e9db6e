//! The guard: no VirtualBox front end may run while vblaunch folds. The
//! matching is pure (names with or without `.exe`, any case); the scan reads
//! process names only: on Linux straight from `/proc/<pid>/comm` (one small
//! read per process, ~4 ms for 500 processes), elsewhere a sysinfo refresh.
//! sysinfo on Linux also reads every `/proc/<pid>/status`, which made the scan
//! ~20 ms with 500 processes (tests/bench). The names are the same: sysinfo
//! takes them from the comm field of `/proc/<pid>/stat`. If the process list
//! cannot be read, the guard refuses: it fails closed.
use std::time::{Duration, Instant};

use anyhow::Result;
#[cfg(not(target_os = "linux"))]
use sysinfo::{ProcessRefreshKind, ProcessesToUpdate, System};

use crate::exit::{fail, Code};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FrontEnd {
    pub pid: u32,
    pub name: String,
}

fn normalize(name: &str) -> String {
    let lower = name.trim().to_lowercase();
    lower
        .strip_suffix(".exe")
        .map(str::to_string)
        .unwrap_or(lower)
}

/// The processes (pid, name) whose name is one of `wanted`, ignoring `own_pid`.
pub fn matching<'a>(
    processes: impl IntoIterator<Item = (u32, &'a str)>,
    wanted: &[String],
    own_pid: u32,
) -> Vec<FrontEnd> {
    let wanted: Vec<String> = wanted.iter().map(|w| normalize(w)).collect();
    let mut out: Vec<FrontEnd> = processes
        .into_iter()
        .filter(|(pid, name)| *pid != own_pid && wanted.contains(&normalize(name)))
        .map(|(pid, name)| FrontEnd {
            pid,
            name: name.to_string(),
        })
        .collect();
    out.sort_by_key(|f| f.pid);
    out
}

/// Whether `wanted` includes every default front end (the VM processes and
/// the Manager, whose settings dialog locks a VM). Only then does a scan that
/// finds none of them also rule out a VM that is starting, saving or open in
/// the Manager, which the quick read relies on (`vbox::quick`).
pub fn covers_defaults(wanted: &[String]) -> bool {
    let wanted: Vec<String> = wanted.iter().map(|w| normalize(w)).collect();
    crate::config::DEFAULT_GUARD_PROCESSES
        .iter()
        .all(|d| wanted.contains(&normalize(d)))
}

/// (pid, comm) of each pid still running; in two threads if `split`.
#[cfg(target_os = "linux")]
fn read_comms(pids: &[u32], split: bool) -> Result<Vec<(u32, String)>> {
    // open + one read + close: comm is at most 16 bytes (fs::read would add
    // a statx and a second read per process).
    let comm = |pid: &u32| -> Option<(u32, String)> {
        let mut buf = [0u8; 64];
        let n = std::fs::File::open(format!("/proc/{pid}/comm"))
            .and_then(|mut f| std::io::Read::read(&mut f, &mut buf))
            .ok()?;
        let comm = buf[..n].strip_suffix(b"\n").unwrap_or(&buf[..n]);
        Some((*pid, String::from_utf8_lossy(comm).into_owned()))
    };
    if !split {
        return Ok(pids.iter().filter_map(comm).collect());
    }
    let (first, second) = pids.split_at(pids.len() / 2);
    std::thread::scope(|s| {
        let other = s.spawn(|| second.iter().filter_map(comm).collect::<Vec<_>>());
        let mut out: Vec<_> = first.iter().filter_map(comm).collect();
        out.extend(
            other
                .join()
                .map_err(|_| unreadable("the scanning thread panicked"))?,
        );
        Ok(out)
    })
}

pub struct Scanner {
    #[cfg(not(target_os = "linux"))]
    sys: System,
    own: u32,
}

fn unreadable(e: impl std::fmt::Display) -> anyhow::Error {
    fail(
        Code::VirtualBoxRunning,
        format!("cannot read the process list ({e}); vblaunch refuses to fold without knowing whether VirtualBox runs"),
    )
}

impl Scanner {
    pub fn new() -> Result<Scanner> {
        Ok(Scanner {
            #[cfg(not(target_os = "linux"))]
            sys: System::new().map_err(unreadable)?,
            own: std::process::id(),
        })
    }

    /// Front ends running now. Fails closed when the list is unreadable (our
    /// own process must be in it).
    pub fn scan(&mut self, wanted: &[String]) -> Result<Vec<FrontEnd>> {
        let t = std::time::Instant::now();
        let names = self.processes()?;
        log::debug!(
            "process scan: {} processes in {:.2} ms",
            names.len(),
            t.elapsed().as_secs_f64() * 1000.0
        );
        if !names.iter().any(|(pid, _)| *pid == self.own) {
            return Err(fail(
                Code::VirtualBoxRunning,
                "cannot read the process list, so vblaunch cannot tell whether VirtualBox is \
                 running; it refuses to fold. Run it as the user who runs VirtualBox.",
            ));
        }
        Ok(matching(
            names.iter().map(|(p, n)| (*p, n.as_str())),
            wanted,
            self.own,
        ))
    }

    /// (pid, name) of every process. A process that exits while the list is
    /// read is skipped; an unreadable /proc is an error.
    #[cfg(target_os = "linux")]
    fn processes(&mut self) -> Result<Vec<(u32, String)>> {
        let mut pids = Vec::new();
        for entry in std::fs::read_dir("/proc").map_err(unreadable)? {
            let entry = entry.map_err(unreadable)?;
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                pids.push(pid);
            }
        }
        // With hundreds of processes the reads take milliseconds (~7 us
        // each); a second thread cuts that by about a third (measured with
        // 564 processes: median 4.0 -> 2.9 ms).
        read_comms(&pids, pids.len() >= 256)
    }

    #[cfg(not(target_os = "linux"))]
    fn processes(&mut self) -> Result<Vec<(u32, String)>> {
        self.sys.refresh_processes_specifics(
            ProcessesToUpdate::All,
            true,
            ProcessRefreshKind::nothing().without_tasks(),
        );
        Ok(self
            .sys
            .processes()
            .iter()
            .map(|(pid, p)| (pid.as_u32(), p.name().to_string_lossy().into_owned()))
            .collect())
    }
}

pub struct WaitPolicy {
    pub no_wait: bool,
    /// None: wait as long as it takes (Ctrl-C aborts; nothing has changed yet).
    pub timeout: Option<Duration>,
    pub poll: Duration,
}

/// "VBoxHeadless (pid 42), VirtualBox (pid 7)": for messages.
pub fn describe(found: &[FrontEnd]) -> String {
    found
        .iter()
        .map(|f| format!("{} (pid {})", f.name, f.pid))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What [`wait_until_closed`] tells its watcher (the run's face).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Waiting<'a> {
    /// These front ends are open (`describe`'s words); asked at every poll.
    Running(&'a str),
    /// They closed; the run goes on.
    Closed,
}

/// The watcher's answer: keep waiting, or stop (nothing is changed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    Waiting,
    Cancel,
}

/// Return once no front end of `wanted` runs; or fail per the policy. The
/// watcher hears each poll and may cancel (nothing is changed then).
pub fn wait_until_closed(
    scanner: &mut Scanner,
    wanted: &[String],
    policy: &WaitPolicy,
    watch: &dyn Fn(Waiting) -> Keep,
) -> Result<()> {
    let start = Instant::now();
    let mut shown: Vec<FrontEnd> = Vec::new();
    loop {
        let found = scanner.scan(wanted)?;
        if found.is_empty() {
            if !shown.is_empty() {
                log::info!("VirtualBox is closed; continuing.");
                watch(Waiting::Closed);
            }
            return Ok(());
        }
        let no_wait = policy.no_wait || policy.timeout == Some(Duration::ZERO);
        if no_wait {
            return Err(fail(
                Code::VirtualBoxRunning,
                format!(
                    "VirtualBox is running: {}. Close it (and any VM windows) and run vblaunch \
                     again. Nothing was changed.",
                    describe(&found)
                ),
            ));
        }
        if let Some(t) = policy.timeout {
            if start.elapsed() >= t {
                return Err(fail(
                    Code::VirtualBoxRunning,
                    format!(
                        "VirtualBox is still running after {} s: {}. Close it and run vblaunch \
                         again. Nothing was changed.",
                        t.as_secs(),
                        describe(&found)
                    ),
                ));
            }
        }
        if found != shown {
            log::warn!(
                "VirtualBox is running: {}. Close VirtualBox to continue (Ctrl-C to abort).",
                describe(&found)
            );
            shown = found;
        }
        if watch(Waiting::Running(&describe(&shown))) == Keep::Cancel {
            return Err(fail(
                Code::VirtualBoxRunning,
                format!(
                    "You stopped waiting for VirtualBox to close ({}). Nothing was changed.",
                    describe(&shown)
                ),
            ));
        }
        let mut pause = policy.poll;
        if let Some(t) = policy.timeout {
            pause = pause.min(t.saturating_sub(start.elapsed()));
        }
        std::thread::sleep(pause);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> Vec<String> {
        crate::config::DEFAULT_GUARD_PROCESSES
            .iter()
            .map(|s| s.to_string())
            .collect()
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn both_halves_of_a_split_scan_are_read() {
        // Processes whose names cannot change under the test: pid 1 and this
        // one (a freshly spawned child could still carry our thread's name
        // until its exec). u32::MAX does not exist and is skipped.
        let own = std::process::id();
        let pids = [1, own, u32::MAX];
        let one = read_comms(&pids, false).unwrap();
        let two = read_comms(&pids, true).unwrap();
        assert_eq!(one, two);
        let name = |pid: u32| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .unwrap()
                .trim_end()
                .to_string()
        };
        assert_eq!(two, [(1, name(1)), (own, name(own))]);
    }

    #[test]
    fn only_a_list_with_every_default_covers_the_defaults() {
        assert!(covers_defaults(&defaults()));
        let mut more = defaults();
        more.push("MyFrontEnd".into());
        assert!(covers_defaults(&more));
        let upper: Vec<String> = defaults()
            .iter()
            .map(|d| format!("{}.EXE", d.to_uppercase()))
            .collect();
        assert!(covers_defaults(&upper));
        let fewer: Vec<String> = defaults()
            .into_iter()
            .filter(|d| d != "VirtualBox")
            .collect();
        assert!(!covers_defaults(&fewer));
        assert!(!covers_defaults(&[]));
    }

    #[test]
    fn matches_front_ends_with_or_without_exe_in_any_case() {
        let procs = [
            (10, "VirtualBox.exe"),
            (11, "virtualboxvm"),
            (12, "VBoxHeadless"),
            (13, "VBOXSDL.EXE"),
            (14, "VBoxSVC"),
            (15, "VBoxSVC.exe"),
            (16, "VirtualBoxVMx"),
            (17, "bash"),
        ];
        let found = matching(procs, &defaults(), 1);
        let pids: Vec<u32> = found.iter().map(|f| f.pid).collect();
        assert_eq!(pids, [10, 11, 12, 13], "VBoxSVC is not a front end");
    }

    #[test]
    fn own_process_and_configured_list_are_respected() {
        let procs = [(5, "VBoxHeadless"), (6, "MyFrontEnd.EXE")];
        assert!(matching(procs, &defaults(), 5).is_empty());
        let found = matching(procs, &["myfrontend".into()], 0);
        assert_eq!(
            found,
            [FrontEnd {
                pid: 6,
                name: "MyFrontEnd.EXE".into()
            }]
        );
    }

    #[test]
    fn live_scan_sees_this_process_list() {
        // The scan must not fail closed on a readable /proc, and must not
        // report the test runner itself.
        let mut s = Scanner::new().unwrap();
        let own_name = std::env::current_exe().unwrap();
        let own_name = own_name.file_name().unwrap().to_string_lossy();
        assert!(s.scan(&[own_name.into_owned()]).unwrap().is_empty());
    }
}
