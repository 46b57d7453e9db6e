//! Typed VBoxManage facade: every VBoxManage call vblaunch makes goes through
//! here. Snapshots are always addressed by UUID. A `VBoxManage: error:` line
//! counts as failure even with exit 0; `startvm`'s known quirk (exit 1 after
//! "has been successfully started") counts as success. VBoxManage runs under
//! an English UTF-8 locale ([`locale`]), and a read whose text is cut off or
//! did not decode is refused, never parsed.
pub mod errors;
pub mod known_bugs;
pub mod locale;
pub mod locate;
pub mod lossy;
pub mod media;
pub mod quick;
pub mod settings;
pub mod state;
pub mod vminfo;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Result;

use crate::exit::{fail, Code, Failure};
use crate::process::{self, CommandLine, Deadline, Event, Output};
pub use media::Medium;
pub use vminfo::VmInfo;

/// How `startvm` shows the VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum StartType {
    /// A normal VirtualBox window.
    Gui,
    /// No window (use VRDE or SSH to reach the VM).
    Headless,
    /// A window whose VM process is detached from the GUI process.
    Separate,
}

impl StartType {
    pub fn as_str(self) -> &'static str {
        match self {
            StartType::Gui => "gui",
            StartType::Headless => "headless",
            StartType::Separate => "separate",
        }
    }
}

/// Which kind of call, for timeouts and terminal output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Read,
    Mutate,
    /// `snapshot delete`: a merge; never killed, progress shown.
    Merge,
}

pub struct VBoxManage {
    pub exe: PathBuf,
    pub call_timeout: Duration,
    pub stall_warning: Duration,
    /// Told how each mutating call goes (for the face that shows it: the
    /// console's progress text or bar, a progress window); None: nobody.
    pub progress: Option<ProgressSink>,
}

/// How a mutating call goes, as it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallProgress {
    /// A mutating call began; `merge`: a snapshot merge (it can take minutes).
    Began { merge: bool },
    /// VBoxManage's progress output (`0%...10%...`) reached this.
    Percent(u8),
    /// The call ended (success or not).
    Ended,
}

/// Where [`CallProgress`] goes.
pub type ProgressSink = std::sync::Arc<dyn Fn(CallProgress) + Send + Sync>;

/// A failed VBoxManage call, with VirtualBox's own words and advice. The
/// exit code is the classified kind's; the [`errors::Diagnosis`] rides along
/// (see [`errors::diagnosis_of`]).
fn call_failed(cmd: &CommandLine, out: &Output) -> anyhow::Error {
    let diagnosis = diagnose(cmd, out);
    call_failed_as(cmd, out, diagnosis)
}

/// The classification of a finished call (the operation read from its arguments).
fn diagnose(cmd: &CommandLine, out: &Output) -> errors::Diagnosis {
    let args: Vec<String> = cmd
        .args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    errors::classify(errors::op_of_args(&args), &out.stderr, out.status.code())
}

fn call_failed_as(cmd: &CommandLine, out: &Output, diagnosis: errors::Diagnosis) -> anyhow::Error {
    let errors = errors::error_lines(&out.stderr);
    let text = if errors.is_empty() {
        let raw = out.stderr.trim();
        if raw.is_empty() {
            out.stdout.trim().to_string()
        } else {
            raw.to_string()
        }
    } else {
        errors.join("\n")
    };
    let mut msg = format!(
        "VBoxManage failed ({}): {cmd}\nVirtualBox said:\n{}",
        describe_status(&out.status),
        indent(&text)
    );
    let kind = diagnosis.kind;
    if kind != errors::ErrorKind::Unknown {
        msg.push_str(&format!(
            "\nWhat this means: {}\nWhat to do: {}",
            kind.meaning(),
            kind.next_step()
        ));
    }
    anyhow::Error::new(
        Failure::new(kind.code(), msg).with_detail(errors::CallError {
            command: cmd.to_string(),
            diagnosis,
        }),
    )
}

/// The call that could not be run or did not finish, when that is why `err`
/// ended the run (VBoxManage never answered: no classification).
pub fn run_error_of(err: &anyhow::Error) -> Option<&process::RunError> {
    err.chain()
        .filter_map(|e| e.downcast_ref::<Failure>())
        .find_map(|f| f.detail.as_ref()?.downcast_ref::<process::RunError>())
}

/// Whether a failed call was refused by VirtualBox before it changed
/// anything, as the classifier judges VirtualBox's first error line
/// ([`errors::ErrorKind::may_have_changed`]), or because VBoxManage could
/// not even be started. Any other error (a timeout, an unclassified failure)
/// counts as "may have changed something".
pub fn changed_nothing(err: &anyhow::Error) -> bool {
    matches!(run_error_of(err), Some(process::RunError::Spawn { .. }))
        || errors::diagnosis_of(err).is_some_and(|d| !d.may_have_changed())
}

fn describe_status(s: &std::process::ExitStatus) -> String {
    match s.code() {
        Some(c) => format!("exit code {c}"),
        None => "killed by a signal".to_string(),
    }
}

/// The first `n` lines of `text`, each cut at 200 characters.
fn first_lines(text: &str, n: usize) -> String {
    let mut lines: Vec<String> = text
        .lines()
        .take(n)
        .map(|l| crate::logging::escape(&l.chars().take(200).collect::<String>()).into_owned())
        .collect();
    if text.lines().count() > n {
        lines.push("…".into());
    }
    if lines.is_empty() {
        lines.push("(nothing)".into());
    }
    lines.join("\n")
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A read's text, whole, or an error that names the encoding as the cause
/// (see [`vminfo::incomplete`]): never parse output VBoxManage cut off.
fn require_whole_text(cmd: &CommandLine, out: &Output) -> Result<()> {
    let Some(why) = vminfo::incomplete(&out.stdout) else {
        return Ok(());
    };
    let mut msg = format!(
        "cannot read what `{cmd}` printed: {why}. A name or path of a VM or disk that \
         VirtualBox knows has such a character. vblaunch changed nothing."
    );
    if *locale::current() == locale::Choice::Ascii {
        msg.push('\n');
        msg.push_str(&locale::ascii_only_advice());
    } else if cfg!(windows) {
        msg.push_str(&format!(
            "\nVBoxManage wrote in Windows' ANSI code page {}. Rename the VM or move its files so \
             that their names use only characters of that code page, or turn on Windows' \
             \"Beta: Use Unicode UTF-8 for worldwide language support\" (Region settings).",
            process::output_code_page()
        ));
    }
    Err(fail(Code::VBoxManageFailed, msg))
}

/// Windows: names and paths VBoxManage printed with `?` for characters the
/// ANSI code page lacks are taken from the VM's settings file (see
/// [`lossy`]); elsewhere `?` is an ordinary character and nothing happens.
fn repair_lossy(info: VmInfo, media: Vec<Medium>) -> Result<(VmInfo, Vec<Medium>)> {
    if !cfg!(windows) || !lossy::any_damaged(&info, &media) {
        return Ok((info, media));
    }
    let homes = locate::user_homes(&|v| std::env::var_os(v));
    let file = quick::settings_path(&homes, &info.uuid)
        .and_then(|p| settings::read(&p))
        .map_err(|e| log::debug!("no settings file to repair the read from: {e}"))
        .ok();
    lossy::repair(info, media, file.as_ref()).map_err(|e| {
        fail(
            Code::VBoxManageFailed,
            format!(
                "{e}. Rename the VM or move its files so that their names use only characters \
                 of that code page, or turn on Windows' \"Beta: Use Unicode UTF-8 for worldwide \
                 language support\" (Region settings). vblaunch changed nothing."
            ),
        )
    })
}

fn has_error_line(out: &Output) -> bool {
    !errors::error_lines(&out.stderr).is_empty()
}

impl VBoxManage {
    fn command<I, S>(&self, args: I) -> CommandLine
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let mut cmd = CommandLine::new(&self.exe);
        cmd.args = args.into_iter().map(Into::into).collect();
        // Not the user's locale: labels in `list hdds` are translated in
        // localized builds. Not `C` either: IPRT converts argv and output
        // through the locale's code set, and under `C` (ASCII) a non-ASCII VM
        // name fails (VERR_NO_TRANSLATION) and a non-ASCII path cuts the
        // output off. An English UTF-8 locale; see `locale` for the choice.
        let (set, remove) = locale::current().env();
        cmd.env = set;
        cmd.env_remove = remove;
        cmd
    }

    /// With no UTF-8 locale on this system a non-ASCII argument cannot reach
    /// VirtualBox: refuse it before running anything.
    fn refuse_unencodable(&self, cmd: &CommandLine) -> Result<()> {
        if *locale::current() != locale::Choice::Ascii {
            return Ok(());
        }
        match cmd
            .args
            .iter()
            .find(|a| a.to_str().is_none_or(|a| !a.is_ascii()))
        {
            Some(a) => Err(fail(
                Code::VBoxManageFailed,
                format!(
                    "cannot pass '{}' to VBoxManage: it is not ASCII. {} vblaunch changed nothing.",
                    a.to_string_lossy(),
                    locale::ascii_only_advice()
                ),
            )),
            None => Ok(()),
        }
    }

    /// Run a call; returns its output whatever the exit status (callers judge).
    fn run(&self, mut cmd: CommandLine, kind: Kind) -> Result<Output> {
        log::debug!("run: {cmd}");
        self.refuse_unencodable(&cmd)?;
        let deadline = match kind {
            Kind::Merge => Deadline::Never {
                stall_warning: self.stall_warning,
            },
            _ => Deadline::After(self.call_timeout),
        };
        cmd.detach_from_terminal_signals = kind != Kind::Read;
        let sink = self.progress.as_ref().filter(|_| kind != Kind::Read);
        if let Some(tell) = sink {
            tell(CallProgress::Began {
                merge: kind == Kind::Merge,
            });
        }
        let result = process::run(&cmd, deadline, &mut |e| {
            match e {
            Event::Progress(p) => {
                log::debug!("progress {p}%");
                if let Some(tell) = sink {
                    tell(CallProgress::Percent(p.min(100) as u8));
                }
            }
            Event::Stalled(for_) => log::warn!(
                "VBoxManage has shown no progress for {} s. A snapshot merge cannot be cancelled \
                 safely: let it run. If it never ends, see VBoxSVC.log in VirtualBox's settings folder.",
                for_.as_secs()
            ),
            Event::Stderr(_) => {}
        }
        });
        if let Some(tell) = sink {
            tell(CallProgress::Ended);
        }
        // The typed error rides along (see [`run_error_of`]): a timeout and a
        // program that could not be started stay distinguishable.
        let out = result.map_err(|e| {
            log::debug!("{e}");
            anyhow::Error::new(Failure::new(Code::VBoxManageFailed, e.to_string()).with_detail(e))
        })?;
        log::debug!(
            "{} after {} ms: {cmd}",
            describe_status(&out.status),
            out.duration.as_millis()
        );
        if !out.stderr.trim().is_empty() {
            log::debug!("stderr: {}", out.stderr.trim_end());
        }
        Ok(out)
    }

    /// Run a call; when the client could not even reach VBoxSVC ("Failed to
    /// create the VirtualBox object": the service was starting or stopping),
    /// nothing was done, so try again a few times before giving up.
    fn run_retrying(&self, cmd: CommandLine, kind: Kind) -> Result<Output> {
        self.run_retrying_on(cmd, kind, &[])
    }

    /// [`Self::run_retrying`], also trying again on the passing failures in
    /// `also` (kind, attempts in all, what to log). One loop for every retry
    /// vblaunch makes; the pause doubles from half a second.
    fn run_retrying_on(
        &self,
        cmd: CommandLine,
        kind: Kind,
        also: &[(errors::ErrorKind, u32, &str)],
    ) -> Result<Output> {
        // Only a service that was not reached (never a damaged VirtualBox.xml,
        // where retrying cannot help).
        let always = [(
            errors::ErrorKind::ServiceUnreachable,
            4,
            "VirtualBox's service did not answer",
        )];
        let mut pause = Duration::from_millis(500);
        for attempt in 1.. {
            let out = self.run(cmd.clone(), kind)?;
            if out.status.success() && !has_error_line(&out) {
                return Ok(out);
            }
            let found = diagnose(&cmd, &out).kind;
            let Some((_, attempts, what)) = always.iter().chain(also).find(|(k, _, _)| *k == found)
            else {
                return Ok(out);
            };
            if attempt >= *attempts {
                return Ok(out);
            }
            log::warn!(
                "{what} (attempt {attempt}); trying again in {} ms",
                pause.as_millis()
            );
            std::thread::sleep(pause);
            pause *= 2;
        }
        unreachable!()
    }

    /// Run and require success (exit 0 and no error line).
    fn run_ok(&self, cmd: CommandLine, kind: Kind) -> Result<Output> {
        let out = self.run_retrying(cmd.clone(), kind)?;
        if !out.status.success() || has_error_line(&out) {
            return Err(call_failed(&cmd, &out));
        }
        Ok(out)
    }

    pub fn version(&self) -> Result<String> {
        let out = self.run_ok(self.command(["--version"]), Kind::Read)?;
        Ok(out.stdout.trim().to_string())
    }

    /// `showvminfo <vm> --machinereadable`. An unknown VM becomes a
    /// [`Code::VmNotFound`] failure listing the registered VMs.
    pub fn show_vm_info(&self, vm: &str) -> Result<VmInfo> {
        // A name that starts with `-` goes after `--` (VBoxManage 7.2 reads
        // it as an option otherwise; fixtures 49-51). Names are resolved to
        // UUIDs before the commands that change a VM.
        let cmd = if vm.starts_with('-') {
            self.command(["showvminfo", "--machinereadable", "--", vm])
        } else {
            self.command(["showvminfo", vm, "--machinereadable"])
        };
        let out = self.run_retrying(cmd.clone(), Kind::Read)?;
        if !out.status.success() || has_error_line(&out) {
            let diagnosis = diagnose(&cmd, &out);
            match diagnosis.kind {
                errors::ErrorKind::VmNotFound => {
                    let known = match self.list_vms() {
                        Ok(vms) => describe_registered(&vms),
                        Err(e) => format!("(could not list the registered VMs: {e})"),
                    };
                    return Err(anyhow::Error::new(
                        Failure::new(
                            Code::VmNotFound,
                            format!("VirtualBox has no VM named '{vm}' (names are case-sensitive; a UUID works too). {known}"),
                        )
                        .with_detail(errors::CallError {
                            command: cmd.to_string(),
                            diagnosis,
                        }),
                    ));
                }
                errors::ErrorKind::Inaccessible => {
                    return Err(anyhow::Error::new(
                        Failure::new(
                        Code::VmNotFound,
                        format!(
                            "VirtualBox cannot read the settings of VM '{vm}' (it is inaccessible): a \
                             missing disk file or a damaged .vbox file is the usual cause. Run \
                             `vblaunch doctor {vm}` to see why. vblaunch changed nothing.\n{}",
                            call_failed_as(&cmd, &out, diagnosis.clone())
                        ),
                        )
                        .with_detail(errors::CallError {
                            command: cmd.to_string(),
                            diagnosis,
                        }),
                    ));
                }
                _ => {}
            }
            return Err(call_failed(&cmd, &out));
        }
        require_whole_text(&cmd, &out)?;
        let info = vminfo::parse(&out.stdout).map_err(|e| {
            fail(
                Code::VBoxManageFailed,
                format!(
                    "VBoxManage printed something vblaunch does not understand for VM '{}' \
                     ({e}); nothing was changed. `{cmd}` printed:\n{}",
                    crate::logging::escape(vm),
                    indent(&first_lines(&out.stdout, 5))
                ),
            )
        })?;
        let (mut info, _) = repair_lossy(info, Vec::new())?;
        // showvminfo does not print extradata; the settings file holds it.
        info.recorded_own = info.cfg_file.as_deref().and_then(settings::recorded_own);
        if !info.accessible {
            return Err(fail(
                Code::VmNotFound,
                format!(
                    "VM '{vm}' ({}) is inaccessible: VirtualBox cannot read its settings. Run \
                     `vblaunch doctor {vm}` to see why. vblaunch changed nothing.",
                    info.uuid
                ),
            ));
        }
        Ok(info)
    }

    /// `list vms` → (name, uuid).
    pub fn list_vms(&self) -> Result<Vec<(String, String)>> {
        let cmd = self.command(["list", "vms"]);
        let out = self.run_ok(cmd.clone(), Kind::Read)?;
        require_whole_text(&cmd, &out)?;
        Ok(parse_list_vms(&out.stdout))
    }

    /// The VM, then the media registry. One after the other, on purpose:
    /// measured on VirtualBox 7.2, two VBoxManage clients that start at the
    /// same instant make one of them (here always `list hdds`) hang for 10 s
    /// in about 1 of 40 rounds (8 in 300); one after the other, or 30 ms
    /// apart, never did (0 in 450). Sequential costs `list hdds` (~30 ms) on
    /// every launch; the race cost 10 s on some.
    pub fn read_vm(&self, vm: &str) -> Result<(VmInfo, Vec<Medium>)> {
        let info = self.show_vm_info(vm)?;
        repair_lossy(info, self.list_hdds()?)
    }

    /// The read before a fold: one `list --multiple` call and the VM's
    /// settings file, when they agree (see [`quick`]); otherwise, or when
    /// that call fails, the full [`Self::read_vm`]. `homes`: where
    /// VirtualBox.xml may be (VBOX_USER_HOME or the platform defaults).
    pub fn read_vm_quick(&self, vm: &str, homes: &[PathBuf]) -> Result<(VmInfo, Vec<Medium>)> {
        let cmd = self.command(quick::ARGS);
        let out = self.run_retrying(cmd.clone(), Kind::Read)?;
        let why = if !out.status.success() || has_error_line(&out) {
            format!("`{}` failed", quick::ARGS.join(" "))
        } else {
            require_whole_text(&cmd, &out)?;
            match quick::assess(vm, &out.stdout, homes) {
                Ok(read) => {
                    log::debug!("read from one list call and the settings file");
                    return Ok(read);
                }
                Err(why) => why,
            }
        };
        log::debug!("full read (showvminfo, list hdds): {why}");
        self.read_vm(vm)
    }

    pub fn list_hdds(&self) -> Result<Vec<Medium>> {
        let cmd = self.command(["list", "hdds"]);
        let out = self.run_ok(cmd.clone(), Kind::Read)?;
        require_whole_text(&cmd, &out)?;
        Ok(media::parse(&out.stdout))
    }

    /// The command line of a step, for logs and `--dry-run`.
    pub fn take_command(&self, vm_uuid: &str, name: &str, description: &str) -> CommandLine {
        self.command([
            "snapshot".to_string(),
            vm_uuid.to_string(),
            "take".to_string(),
            name.to_string(),
            format!("--description={description}"),
        ])
    }

    pub fn rename_command(&self, vm_uuid: &str, snapshot_uuid: &str, name: &str) -> CommandLine {
        self.command([
            "snapshot".to_string(),
            vm_uuid.to_string(),
            "edit".to_string(),
            snapshot_uuid.to_string(),
            format!("--name={name}"),
        ])
    }

    /// Relabel a snapshot (by UUID). Changes no data.
    pub fn snapshot_rename(&self, vm_uuid: &str, snapshot_uuid: &str, name: &str) -> Result<()> {
        self.run_ok(
            self.rename_command(vm_uuid, snapshot_uuid, name),
            Kind::Mutate,
        )?;
        Ok(())
    }

    pub fn restore_command(&self, vm_uuid: &str, snapshot_uuid: &str) -> CommandLine {
        self.command(["snapshot", vm_uuid, "restore", snapshot_uuid])
    }

    /// Make a snapshot current again, discarding the current state.
    pub fn snapshot_restore(&self, vm_uuid: &str, snapshot_uuid: &str) -> Result<()> {
        self.run_ok(self.restore_command(vm_uuid, snapshot_uuid), Kind::Mutate)?;
        Ok(())
    }

    pub fn delete_command(&self, vm_uuid: &str, snapshot_uuid: &str) -> CommandLine {
        self.command(["snapshot", vm_uuid, "delete", snapshot_uuid])
    }

    pub fn start_command(&self, vm_uuid: &str, start: StartType) -> CommandLine {
        self.command(["startvm", vm_uuid, "--type", start.as_str()])
    }

    /// Take a snapshot; returns its UUID.
    pub fn snapshot_take(&self, vm_uuid: &str, name: &str, description: &str) -> Result<String> {
        let cmd = self.take_command(vm_uuid, name, description);
        let out = self.run_ok(cmd.clone(), Kind::Mutate)?;
        parse_taken_uuid(&out.stdout).ok_or_else(|| {
            fail(
                Code::VBoxManageFailed,
                format!(
                    "`{cmd}` succeeded but did not print the new snapshot's UUID; it printed: {}",
                    out.stdout.trim()
                ),
            )
        })
    }

    /// Delete (merge) a snapshot by UUID. Never killed by a timeout.
    pub fn snapshot_delete(&self, vm_uuid: &str, snapshot_uuid: &str) -> Result<()> {
        self.run_ok(self.delete_command(vm_uuid, snapshot_uuid), Kind::Merge)?;
        Ok(())
    }

    /// Start the VM. Success is judged by both exit code and text (see module doc).
    ///
    /// "Already locked by a session" is tried again twice: the launch has just
    /// checked that no front end runs and no session is open, and measured on
    /// 7.2.22 another client's `showvminfo` at the same moment (it takes a
    /// shared lock) makes startvm fail that way.
    pub fn start_vm(&self, vm_uuid: &str, start: StartType) -> Result<()> {
        let cmd = self.start_command(vm_uuid, start);
        let out = self.run_retrying_on(
            cmd.clone(),
            Kind::Mutate,
            &[(
                errors::ErrorKind::LockedBySession,
                3,
                "VirtualBox says the VM is locked by a session; another program was reading it \
                 at that moment",
            )],
        )?;
        let started = out.stdout.contains("has been successfully started");
        if started && !out.status.success() {
            log::debug!("startvm reported success with a failing exit code; VirtualBox does that, treating it as started");
        }
        if started || (out.status.success() && !has_error_line(&out)) {
            return Ok(());
        }
        Err(call_failed(&cmd, &out))
    }
}

/// The registered VMs for an error message; inaccessible ones are called out,
/// since VirtualBox no longer knows their names.
pub fn describe_registered(vms: &[(String, String)]) -> String {
    if vms.is_empty() {
        return "VirtualBox has no registered VMs.".to_string();
    }
    let list: Vec<String> = vms.iter().map(|(n, u)| format!("  {n} {{{u}}}")).collect();
    let mut text = format!("Registered VMs:\n{}", list.join("\n"));
    let broken = vms.iter().filter(|(n, _)| n == "<inaccessible>").count();
    if broken > 0 {
        text.push_str(&format!(
            "\n{broken} of them {} inaccessible: VirtualBox cannot read {} settings, so it no \
             longer knows {} name. If your VM is among them, run `vblaunch doctor <name>` \
             (it finds the VM by its settings file's name) to see why (a missing disk file or a \
             damaged .vbox file is the usual cause).",
            if broken == 1 { "is" } else { "are" },
            if broken == 1 { "its" } else { "their" },
            if broken == 1 { "its" } else { "their" },
        ));
    }
    text
}

/// `"name" {uuid}` lines; names may contain quotes and braces, so split at the last ` {`.
/// A name is printed raw: one with a newline spans several lines, so lines
/// are joined until one ends with ` {<uuid>}`.
pub fn parse_list_vms(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for l in text.lines() {
        if !pending.is_empty() {
            pending.push('\n');
        }
        pending.push_str(l);
        let entry = pending.rsplit_once(" {").and_then(|(name, uuid)| {
            let uuid = uuid.strip_suffix('}')?;
            let name = name.strip_prefix('"')?.strip_suffix('"')?;
            crate::vbox::state::is_uuid(uuid).then(|| (name.to_string(), uuid.to_string()))
        });
        if let Some(e) = entry {
            out.push(e);
            pending.clear();
        } else if !pending.starts_with('"') {
            pending.clear();
        }
    }
    out
}

/// `Snapshot taken. UUID: <uuid>`.
pub fn parse_taken_uuid(stdout: &str) -> Option<String> {
    stdout.lines().find_map(|l| {
        let u = l.trim().strip_prefix("Snapshot taken. UUID:")?.trim();
        (!u.is_empty()).then(|| u.to_string())
    })
}

/// Whether `path` names an existing file (a seam kept in one place).
pub fn file_exists(path: &Path) -> bool {
    path.is_file()
}

/// Calls used by `vblaunch doctor` to diagnose and repair a VM that
/// VirtualBox may not be able to read.
impl VBoxManage {
    /// `list vms --long`: (stdout, stderr) whatever the exit status. For an
    /// inaccessible VM it prints `Name: <inaccessible!>`, its UUID and
    /// `Config file:`, and the access error on stderr.
    pub fn list_vms_long(&self) -> Result<(String, String)> {
        let cmd = self.command(["list", "vms", "--long"]);
        let out = self.run(cmd.clone(), Kind::Read)?;
        require_whole_text(&cmd, &out)?;
        Ok((out.stdout, out.stderr))
    }

    /// Keep VirtualBox's service (VBoxSVC) running until the returned guard is
    /// dropped, by holding one client connected to it (`metrics collect` runs
    /// until stopped and changes nothing). VBoxSVC exits a few seconds after
    /// its last client, forgetting what was opened in memory only; a repair
    /// that opens an image and then has the VM's settings saved must not span
    /// two VBoxSVC lifetimes (see doctor).
    pub fn hold_service(&self) -> Result<process::Background> {
        let cmd = self.command([
            "metrics",
            "collect",
            // The first line comes after the first period.
            "--period",
            "1",
            "--samples",
            "1",
            "host",
            "CPU/Load/User",
        ]);
        log::debug!("hold: {cmd}");
        process::Background::start_and_wait_for_line(&cmd, self.call_timeout)
            .map_err(|e| fail(Code::VBoxManageFailed, e.to_string()))
    }

    /// `showmediuminfo disk <path>`: opens (registers) the image if VirtualBox
    /// did not know it, in memory only. Changes no file.
    pub fn open_medium(&self, path: &Path) -> Result<Medium> {
        let cmd = self.command([
            OsString::from("showmediuminfo"),
            OsString::from("disk"),
            path.as_os_str().to_os_string(),
        ]);
        let out = self.run_ok(cmd.clone(), Kind::Read)?;
        require_whole_text(&cmd, &out)?;
        media::parse(&out.stdout).into_iter().next().ok_or_else(|| {
            fail(
                Code::VBoxManageFailed,
                format!("`{cmd}` printed no medium: {}", out.stdout.trim()),
            )
        })
    }

    /// `setextradata <vm> <key> [<value>]` (no value deletes the key). VirtualBox
    /// saves the VM's settings file (and its media registry) at once.
    pub fn set_extra_data(&self, vm: &str, key: &str, value: Option<&str>) -> Result<()> {
        let mut args = vec!["setextradata", vm, key];
        args.extend(value);
        self.run_ok(self.command(args), Kind::Mutate)?;
        Ok(())
    }

    /// `storageattach <vm> --storagectl <ctl> --port P --device D --type hdd --medium <path>`.
    pub fn attach_hdd(
        &self,
        vm: &str,
        controller: &str,
        port: u32,
        device: u32,
        medium: &Path,
    ) -> Result<()> {
        let cmd = self.command([
            OsString::from("storageattach"),
            vm.into(),
            "--storagectl".into(),
            controller.into(),
            "--port".into(),
            port.to_string().into(),
            "--device".into(),
            device.to_string().into(),
            "--type".into(),
            "hdd".into(),
            "--medium".into(),
            medium.as_os_str().to_os_string(),
        ]);
        self.run_ok(cmd, Kind::Mutate)?;
        Ok(())
    }

    /// `closemedium disk <uuid>`: forget a medium (never deletes its file).
    pub fn close_medium(&self, uuid: &str) -> Result<()> {
        self.run_ok(self.command(["closemedium", "disk", uuid]), Kind::Mutate)?;
        Ok(())
    }

    /// `unregistervm <vm>` (without --delete: every file stays).
    pub fn unregister_vm(&self, vm: &str) -> Result<()> {
        self.run_ok(self.command(["unregistervm", vm]), Kind::Mutate)?;
        Ok(())
    }

    /// `registervm <settings file>`.
    pub fn register_vm(&self, cfg: &Path) -> Result<()> {
        let cmd = self.command([OsString::from("registervm"), cfg.as_os_str().to_os_string()]);
        self.run_ok(cmd, Kind::Mutate)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_program_that_cannot_start_keeps_its_typed_error() {
        let vb = VBoxManage {
            exe: PathBuf::from("/nonexistent/VBoxManage"),
            call_timeout: Duration::from_secs(5),
            stall_warning: Duration::from_secs(5),
            progress: None,
        };
        let e = vb.version().unwrap_err();
        assert_eq!(crate::exit::code_of(&e), Code::VBoxManageFailed);
        assert!(
            matches!(run_error_of(&e), Some(process::RunError::Spawn { .. })),
            "{e:#}"
        );
        assert!(errors::diagnosis_of(&e).is_none());
        assert!(changed_nothing(&e), "it never ran: it changed nothing");
    }

    #[cfg(unix)]
    #[test]
    fn a_call_that_timed_out_may_have_changed_something() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let exe = dir.path().join("VBoxManage");
        std::fs::write(&exe, "#!/bin/sh\nexec sleep 5\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let vb = VBoxManage {
            exe,
            call_timeout: Duration::from_millis(200),
            stall_warning: Duration::from_secs(5),
            progress: None,
        };
        let e = vb.version().unwrap_err();
        assert_eq!(crate::exit::code_of(&e), Code::VBoxManageFailed);
        assert!(
            matches!(run_error_of(&e), Some(process::RunError::TimedOut { .. })),
            "{e:#}"
        );
        assert!(
            !changed_nothing(&e),
            "stopped mid-way: it may have done something"
        );
    }

    #[test]
    fn parses_recorded_list_vms_and_take_output() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let vms = parse_list_vms(
            &std::fs::read_to_string(format!("{dir}/tests/fixtures/15-list-vms.stdout")).unwrap(),
        );
        assert_eq!(
            vms,
            [(
                "TestVM".to_string(),
                "18580ff3-3d30-4242-b9bf-6fe37f9ff5f1".to_string()
            )]
        );
        let take = std::fs::read_to_string(format!("{dir}/tests/fixtures/10-snapshot-take.stdout"))
            .unwrap();
        assert_eq!(
            parse_taken_uuid(&take).as_deref(),
            Some("8c80fd17-eeb7-4ea4-b4bd-146d4ffda522")
        );
        assert_eq!(parse_taken_uuid("nothing"), None);
    }

    #[test]
    fn registered_list_calls_out_inaccessible_vms() {
        let dir = env!("CARGO_MANIFEST_DIR");
        let vms = parse_list_vms(
            &std::fs::read_to_string(format!(
                "{dir}/tests/fixtures/42-regmissing-list-vms.stdout"
            ))
            .unwrap(),
        );
        let text = describe_registered(&vms);
        assert!(
            text.contains("<inaccessible> {18580ff3-3d30-4242-b9bf-6fe37f9ff5f1}"),
            "{text}"
        );
        assert!(text.contains("1 of them is inaccessible"), "{text}");
        assert_eq!(
            describe_registered(&[]),
            "VirtualBox has no registered VMs."
        );
    }

    #[test]
    fn lists_cut_off_by_the_locale_are_never_parsed() {
        // Real 7.2.22 under LC_ALL=C, a VM "Dev Box ü" and a disk in
        // ".../jürgen/...": each list stops at the first non-ASCII byte, exit 0.
        // Parsed, `list vms` would silently lose that VM and every later one.
        for f in [
            "51-lc-c-list-vms.stdout",
            "52-lc-c-list-multiple.stdout",
            "53-lc-c-list-hdds.stdout",
        ] {
            let text = crate::fixture(f);
            assert!(vminfo::incomplete(&text).is_some(), "{f} taken as whole");
        }
        for f in [
            "15-list-vms.stdout",
            "48-real-list-multiple.stdout",
            "47-real-settings-listhdds.stdout",
            "47-real-settings-showvminfo.stdout",
            "02-list-vms-empty.stdout",
        ] {
            assert_eq!(vminfo::incomplete(&crate::fixture(f)), None, "{f}");
        }
    }

    #[test]
    fn only_up_front_refusals_changed_nothing() {
        let err = |stderr: &str| {
            let out = Output {
                status: fake_status(1),
                stdout: String::new(),
                stderr: stderr.to_string(),
                duration: Duration::ZERO,
            };
            let mut cmd = CommandLine::new(Path::new("VBoxManage"));
            cmd.args = ["snapshot", "vm", "delete", "s"]
                .map(OsString::from)
                .to_vec();
            call_failed(&cmd, &out)
        };
        let space = "VBoxManage: error: Snapshot operation failed\nVBoxManage: error: Unable to merge storage '/v/b.vdi'. Not enough free storage space\n";
        assert!(changed_nothing(&err(space)));
        let died = "VBoxManage: error: Snapshot operation failed\nVBoxManage: error: The object is not ready\nVBoxManage: error: Details: code NS_ERROR_ABORT (0x80004004)\n";
        assert!(!changed_nothing(&err(died)));
        let gone = crate::fixture("37-diffgone-snapshot-delete-current.stderr");
        assert!(
            changed_nothing(&err(&gone)),
            "a missing disk fails the merge's lock, before any change"
        );
        assert!(!changed_nothing(&anyhow::anyhow!("boom")));
    }

    fn fake_status(code: i32) -> std::process::ExitStatus {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            std::process::ExitStatus::from_raw(code << 8)
        }
        #[cfg(windows)]
        {
            use std::os::windows::process::ExitStatusExt;
            std::process::ExitStatus::from_raw(code as u32)
        }
    }

    #[test]
    fn list_vms_names_with_quotes_and_braces() {
        let vms = parse_list_vms("\"My \"VM\" {x}\" {ab408727-e82f-4444-a90f-c1f1f761d25b}\n");
        assert_eq!(vms[0].0, "My \"VM\" {x}");
        assert_eq!(vms[0].1, "ab408727-e82f-4444-a90f-c1f1f761d25b");
    }
}
