//! One typed classifier for VBoxManage failures: (operation, VirtualBox's
//! `error:` lines, the `Context:` line, the result code, the exit status) →
//! an [`ErrorKind`] with its meaning in plain words, the next step and the
//! exit code. VirtualBox's own text is always shown beneath.
//!
//! The rule (issue 11): the FIRST line of VirtualBox's message decides.
//! `Context:` lines (which name the API call, e.g. `LaunchVMProcess`) and
//! `Details:` lines never do. Generic headers ("Snapshot operation failed",
//! "Failed to take snapshot", "Cannot lock hard disk … when deleting a
//! snapshot", "Could not open the medium …") are skipped: they say *that*
//! something failed, never *why*; the first line after them decides. When
//! nothing but headers is left, the result code does (NS_ERROR_ABORT: the
//! service died mid-call).

use crate::exit::Code;

/// The VBoxManage call that failed; decides whether it may have changed something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// showvminfo, list, showmediuminfo: never changes anything.
    Read,
    /// `snapshot take`.
    Take,
    /// `snapshot edit --name`.
    Rename,
    /// `snapshot delete` (a merge).
    Delete,
    /// `snapshot restore`.
    Restore,
    /// `startvm`.
    Start,
    Other,
}

/// VirtualBox's message, split into its parts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VBoxError {
    pub op: Op,
    /// The message lines (`VBoxManage: error: ` removed), without `Details:`,
    /// `Context:`, source-location and `--------` lines, in order. A
    /// `VBoxManage: fatal error: …` line counts as a message line.
    pub lines: Vec<String>,
    /// The `Context:` line (without `Context: `), e.g. `"LaunchVMProcess(…)" at line 920 of …`.
    pub context: Option<String>,
    /// The first result code VirtualBox named (`Details: code X`, `Code X`,
    /// `Progress object failure: X`, `0%...X`), e.g. `NS_ERROR_ABORT`.
    pub result_code: Option<String>,
    /// The exit status (None: killed by a signal or unknown).
    pub exit: Option<i32>,
}

/// What went wrong, as far as VirtualBox's text tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A disk image file is not where VirtualBox expects it.
    DiskMissing,
    /// A disk image the VM's settings name is not in VirtualBox's media registry.
    DiskNotRegistered,
    /// A disk image file is there but damaged (header, block table, short file).
    ImageDamaged,
    /// The file at a disk's path is another image (its UUID differs from the registry's).
    ImageForeign,
    /// The program that shows the VM (VirtualBoxVM / VBoxHeadless) is not installed.
    FrontEndMissing,
    /// The VM's settings file (.vbox) is missing.
    SettingsFileMissing,
    /// VBoxSVC is not running or did not answer.
    ServiceUnreachable,
    /// VBoxSVC died during the call (NS_ERROR_ABORT).
    ServiceDied,
    /// VirtualBox.xml is damaged or unreadable.
    RegistryDamaged,
    /// The VM's settings file and the media registry disagree (a diff attached directly).
    RegistryMismatch,
    /// The Snapshots folder cannot be written.
    SnapshotsFolderNotWritable,
    /// The VM folder cannot be written (the .vbox-tmp).
    VmFolderNotWritable,
    /// The filesystem is mounted read-only.
    ReadOnlyFilesystem,
    /// The .vbox could not be replaced by the new .vbox-tmp.
    SettingsNotReplaceable,
    /// The disk became full.
    DiskFull,
    /// VirtualBox's own free-space check before a merge.
    NotEnoughMergeSpace,
    /// Another session (a VM window, VBoxManage, a front end) holds the VM.
    LockedBySession,
    /// Another task has a disk open for reading.
    LockedForReading,
    /// Another task has a disk open for writing.
    LockedForWriting,
    /// The VM's disks could not be locked.
    MediaLockFailed,
    /// The VM is starting, stopping, saving or merging.
    ChangingState,
    /// The VM process is closing its session after a power-off: a read
    /// fails for a moment, then works (only ever retried; reads only).
    SessionClosing,
    /// The disk a merge would write into has more than one child.
    SharedParent,
    /// The host ran short of low memory.
    LowMemory,
    /// No VM with that name or UUID.
    VmNotFound,
    /// The VM is registered but VirtualBox cannot read its settings.
    Inaccessible,
    /// The VM process ended during startup.
    StartupTerminated,
    /// VBoxManage could not convert a name or path for the current locale.
    NoTranslation,
    /// Nothing vblaunch recognises.
    Unknown,
}

/// A classified failure: the kind and the parsed message it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnosis {
    pub kind: ErrorKind,
    pub error: VBoxError,
}

impl Diagnosis {
    /// Whether the failed call may have changed something (see [`ErrorKind::may_have_changed`]).
    pub fn may_have_changed(&self) -> bool {
        self.kind.may_have_changed(self.error.op)
    }
}

/// Lines that say that something failed, never why.
const HEADERS: &[&str] = &[
    "Snapshot operation failed",
    "Failed to take snapshot",
    "Failed to restore snapshot",
    "Failed to delete snapshot",
    "Progress state: ",
    "Cannot lock hard disk '",
    "Could not open the medium '",
    "Could not create the differencing medium storage unit",
    "Failed to create the VirtualBox object",
];

fn is_header(line: &str) -> bool {
    HEADERS.iter().any(|h| line.starts_with(h))
}

impl VBoxError {
    /// Split VBoxManage's stderr into message lines, context and result code.
    pub fn parse(op: Op, stderr: &str, exit: Option<i32>) -> VBoxError {
        let mut lines = Vec::new();
        let mut context = None;
        let mut result_code = None;
        let mut code = |c: &str| {
            if result_code.is_none() {
                let c = c.split([' ', '(']).next().unwrap_or("").trim();
                if !c.is_empty()
                    && c.chars()
                        .all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit() || ch == '_')
                {
                    result_code = Some(c.to_string());
                }
            }
        };
        for raw in stderr.lines() {
            let raw = raw.trim_end();
            if let Some(rest) = prefixed(raw, "error: ") {
                if let Some(c) = rest.strip_prefix("Context: ") {
                    context.get_or_insert_with(|| c.to_string());
                } else if let Some(d) = rest.strip_prefix("Details: code ") {
                    code(d);
                } else if let Some(d) = rest.strip_prefix("Code ") {
                    // "Code NS_ERROR_ABORT (0x80004004) - Operation aborted (…)"
                    code(d);
                } else if rest.trim_start_matches('-').is_empty() || is_source_location(rest) {
                } else {
                    lines.push(rest.to_string());
                }
            } else if let Some(rest) = prefixed(raw, "fatal error: ") {
                lines.push(rest.to_string());
            } else if let Some(c) = raw.strip_prefix("Progress object failure: ") {
                code(c);
            } else if raw.contains("%...") {
                // "0%...10%...NS_ERROR_FAILURE": the progress, then the result.
                code(raw.rsplit("...").next().unwrap_or(""));
            }
        }
        VBoxError {
            op,
            lines,
            context,
            result_code,
            exit,
        }
    }

    /// The line that decides: the first that is not a generic header.
    pub fn deciding_line(&self) -> Option<&str> {
        self.lines
            .iter()
            .map(String::as_str)
            .find(|l| !is_header(l))
    }
}

/// `VBoxManage: error: X` / `VBoxManage.exe: error: X` → X (also mid-line,
/// after VirtualBox's `0%...` progress).
fn prefixed<'a>(line: &'a str, what: &str) -> Option<&'a str> {
    ["VBoxManage: ", "VBoxManage.exe: "].iter().find_map(|p| {
        let (_, rest) = line.split_once(&format!("{p}{what}"))?;
        Some(rest)
    })
}

/// `/build/…/MachineImpl.cpp[9918] (nsresult Machine::i_saveSettings(…))`
fn is_source_location(line: &str) -> bool {
    let Some((file, _)) = line.split_once('[') else {
        return false;
    };
    (file.ends_with(".cpp") || file.ends_with(".h")) && !file.contains(' ')
}

/// Classify one message line; None: not evidence of anything.
fn kind_of_line(line: &str) -> Option<ErrorKind> {
    use ErrorKind::*;
    let has = |n: &str| line.contains(n);
    let kind = if has("VERR_NO_TRANSLATION") {
        NoTranslation
    } else if has("Could not launch the VM process") {
        if has("VERR_FILE_NOT_FOUND") || has("VERR_PATH_NOT_FOUND") {
            FrontEndMissing
        } else {
            StartupTerminated
        }
    } else if has("terminated unexpectedly during startup") {
        StartupTerminated
    } else if has("does not match the value") && has("stored in the media registry") {
        ImageForeign
    } else if has("VERR_VD_VDI_INVALID_HEADER")
        || has("VERR_VD_VDI_INVALID_SIGNATURE")
        || has("VERR_VD_READ_OUT_OF_RANGE")
        || has("VERR_VD_BLOCK_FREE")
        || has("invalid pre-header")
        || has("Error reading the block table")
        || (has("opening image file") && has("VERR_EOF"))
    {
        ImageDamaged
    } else if has("VERR_DISK_FULL") {
        DiskFull
    } else if has("Not enough free storage space") {
        NotEnoughMergeSpace
    } else if has("VERR_WRITE_PROTECT") {
        ReadOnlyFilesystem
    } else if has("Failed to replace '") {
        SettingsNotReplaceable
    } else if has(".vbox-tmp") && has("VERR_ACCESS_DENIED") {
        VmFolderNotWritable
    } else if has("cannot create image") && has("VERR_ACCESS_DENIED") {
        SnapshotsFolderNotWritable
    } else if (has("VERR_FILE_NOT_FOUND") || has("VERR_PATH_NOT_FOUND"))
        && (has(".vbox'") || has(".vbox ") || line.ends_with(".vbox"))
    {
        SettingsFileMissing
    } else if has("VERR_FILE_NOT_FOUND opening image file") {
        DiskMissing
    } else if (has("differencing image of snapshot") && has("could not be found"))
        || has("Could not find an open hard disk with UUID")
    {
        DiskNotRegistered
    } else if has("cannot be directly attached") && has("differencing child") {
        RegistryMismatch
    } else if has("is already locked by a session") || has("is already locked for a session") {
        LockedBySession
    } else if has("is locked for reading by another task") {
        LockedForReading
    } else if has("is locked for writing by another task") {
        LockedForWriting
    } else if has("Locking of attached media failed") {
        MediaLockFailed
    } else if has("while it is changing the state") || has("while it is changing state") {
        ChangingState
    } else if has("has more than one child hard disk") {
        SharedParent
    } else if has("VERR_NO_LOW_MEMORY") {
        LowMemory
    } else if has("Could not find a registered machine") {
        VmNotFound
    } else if has("The object functionality is limited") {
        Inaccessible
    } else if has("COM server is not running") {
        ServiceUnreachable
    } else {
        return None;
    };
    Some(kind)
}

/// Classify a parsed message (see the module doc for the rule).
pub fn diagnose(error: VBoxError) -> Diagnosis {
    let kind = kind_of(&error);
    Diagnosis { kind, error }
}

fn kind_of(e: &VBoxError) -> ErrorKind {
    // "Failed to create the VirtualBox object!": the service was not reached
    // only when VirtualBox says so; otherwise (an XML error, access denied)
    // the global settings could not be loaded.
    if e.lines
        .first()
        .is_some_and(|l| l.starts_with("Failed to create the VirtualBox object"))
    {
        return match e.deciding_line() {
            Some(l) if l.contains("COM server is not running") => ErrorKind::ServiceUnreachable,
            Some(_) => ErrorKind::RegistryDamaged,
            None => ErrorKind::ServiceUnreachable,
        };
    }
    // A read while the VM process closes its session after a power-off
    // (tests/fixtures/49-showvminfo-session-closing; the second seen in a
    // real-VM test run, "Context: COMGETTER(RemoteUSBDevices)"). Only a
    // read: the same "not ready" in a merge is VBoxSVC dying mid-way.
    if e.op == Op::Read
        && e.deciding_line().is_some_and(|l| {
            l.contains("Failed to get a console object from the direct session")
                || l.contains("The object is not ready")
        })
    {
        return ErrorKind::SessionClosing;
    }
    if let Some(kind) = e.deciding_line().and_then(kind_of_line) {
        return kind;
    }
    // Only headers (or an unknown first line): the result code may still tell.
    match e.result_code.as_deref() {
        Some("NS_ERROR_ABORT") | Some("NS_ERROR_CALL_FAILED") => ErrorKind::ServiceDied,
        _ => ErrorKind::Unknown,
    }
}

/// The operation of a VBoxManage command line (its arguments, without the program).
pub fn op_of_args<S: AsRef<str>>(args: &[S]) -> Op {
    let a: Vec<&str> = args.iter().map(AsRef::as_ref).collect();
    match a.as_slice() {
        ["snapshot", _, "take", ..] => Op::Take,
        ["snapshot", _, "delete", ..] => Op::Delete,
        ["snapshot", _, "restore", ..] | ["snapshot", _, "restorecurrent", ..] => Op::Restore,
        ["snapshot", _, "edit", ..] => Op::Rename,
        ["snapshot", _, "list", ..] | ["snapshot", _, "showvminfo", ..] => Op::Read,
        ["startvm", ..] => Op::Start,
        [first, ..]
            if matches!(
                *first,
                "showvminfo" | "list" | "showmediuminfo" | "--version" | "-v" | "mediumio"
            ) =>
        {
            Op::Read
        }
        _ => Op::Other,
    }
}

/// Parse and classify VBoxManage's stderr.
pub fn classify(op: Op, stderr: &str, exit: Option<i32>) -> Diagnosis {
    diagnose(VBoxError::parse(op, stderr, exit))
}

impl ErrorKind {
    /// What it means, in plain words.
    pub fn meaning(&self) -> &'static str {
        use ErrorKind::*;
        match self {
            DiskMissing => "A disk image file of this VM is missing on disk.",
            DiskNotRegistered => "A snapshot's disk image is missing from VirtualBox's media registry (moved or deleted, or a backup was restored without the Snapshots folder).",
            ImageDamaged => "A disk image file of this VM is there but damaged (VirtualBox cannot read its header or its data).",
            ImageForeign => "The file at one of this VM's disk paths is a different disk image: its UUID does not match the one VirtualBox has registered (a file copied or restored over it).",
            FrontEndMissing => "The VirtualBox program that shows the VM is not installed (VirtualBoxVM for a window, VBoxHeadless for --type headless).",
            SettingsFileMissing => "The VM's settings file (.vbox) is missing.",
            ServiceUnreachable => "VirtualBox's background service (VBoxSVC) did not start or answer.",
            ServiceDied => "VirtualBox's background service (VBoxSVC) stopped in the middle of the operation (it crashed or was killed), so the operation may have been done in part.",
            RegistryDamaged => "VirtualBox cannot read its global settings file (VirtualBox.xml): it is damaged or not readable.",
            RegistryMismatch => "The VM's settings file and VirtualBox's list of disks disagree, usually after an interrupted snapshot operation or a power loss.",
            SnapshotsFolderNotWritable => "VirtualBox cannot create a file in the VM's Snapshots folder (no permission, or the folder is marked immutable).",
            VmFolderNotWritable => "VirtualBox cannot write the VM's folder, so it cannot save the VM's settings (.vbox-tmp).",
            ReadOnlyFilesystem => "The VM's files are on a read-only filesystem.",
            SettingsNotReplaceable => "VirtualBox wrote the new settings (.vbox-tmp) but could not replace the VM's .vbox file with it (the file is protected or marked immutable); the .vbox-tmp is left over from this failure, not an interrupted save.",
            DiskFull => "The disk holding the VM became full during the operation.",
            NotEnoughMergeSpace => "The disk holding the VM is too full to merge the snapshot.",
            LockedBySession => "A VirtualBox window or another program has the VM open.",
            LockedForReading => "Another program or VirtualBox task has one of the VM's disks open for reading.",
            LockedForWriting => "Another VirtualBox operation is using the disk right now.",
            MediaLockFailed => "VirtualBox could not lock the VM's disks; another VM or task is using one of them.",
            ChangingState => "The VM is in the middle of starting, stopping, saving or a snapshot operation.",
            SessionClosing => "The VM's process was closing its session (the VM had just shut down) when VirtualBox was asked about it.",
            SharedParent => "The disk the snapshot would be merged into has more than one child image: it is shared (with another VM or another snapshot branch), so VirtualBox will not merge into it.",
            LowMemory => "The host ran short of low memory (a known VirtualBox issue on Linux hosts).",
            VmNotFound => "VirtualBox has no VM with that name or UUID.",
            Inaccessible => "VirtualBox cannot read this VM's settings (the VM is inaccessible).",
            StartupTerminated => "VirtualBox could not start the VM process.",
            NoTranslation => "VBoxManage could not convert a name or path for the current locale (non-ASCII text under a C/POSIX locale).",
            Unknown => "vblaunch does not recognise this VirtualBox error.",
        }
    }

    /// The one next step.
    pub fn next_step(&self) -> &'static str {
        use ErrorKind::*;
        match self {
            DiskMissing => "Restore the named .vdi file from your backup to exactly that path, then run vblaunch again. Do not delete or restore snapshots until the file is back.",
            DiskNotRegistered => "Put the missing .vdi back into the VM's Snapshots folder (from your backup) and run vblaunch again, or run `vblaunch doctor <VM>`. Do not delete snapshots: that could lose data.",
            ImageDamaged => "Do not delete or restore snapshots. Restore the named .vdi file from your backup (the whole VM folder, to be sure), then run vblaunch again; `vblaunch doctor <VM>` shows the state.",
            ImageForeign => "Put the right image back at that path (from your backup), or, if this file is the one you want, re-attach it in the VirtualBox Manager; then run vblaunch again.",
            FrontEndMissing => "Install VirtualBox's GUI package (on Debian/Ubuntu: virtualbox-qt) for a window, or use --type headless (VBoxHeadless), then run vblaunch again.",
            SettingsFileMissing => "Restore the VM's .vbox file from your backup (or copy '<VM>.vbox-prev' to '<VM>.vbox'), or run `vblaunch doctor <VM> --fix`.",
            ServiceUnreachable => "Run vblaunch again in a moment; if it keeps failing, log out and in (or reboot) so that VBoxSVC restarts, and check VBoxSVC.log.",
            ServiceDied => "Run `vblaunch doctor <VM>` to see what VirtualBox holds now, then run vblaunch again: a merge that was cut short is completed by the next fold. Check VBoxSVC.log for why the service stopped.",
            RegistryDamaged => "Close VirtualBox and restore 'VirtualBox.xml-prev' over 'VirtualBox.xml' in VirtualBox's settings folder (or fix the file's owner and permissions), then run vblaunch again. Retrying does not help.",
            RegistryMismatch => "Close VirtualBox, then restore the previous settings file: copy '<VM>.vbox-prev' (next to '<VM>.vbox') over '<VM>.vbox', and run vblaunch again.",
            SnapshotsFolderNotWritable => "Make the VM's Snapshots folder writable for your user (check its owner, permissions and `lsattr`), then run vblaunch again.",
            VmFolderNotWritable => "Make the VM's folder writable for your user (check its owner, permissions and `lsattr`), then run vblaunch again.",
            ReadOnlyFilesystem => "Remount the filesystem read-write (or move the VM to a writable disk), then run vblaunch again.",
            SettingsNotReplaceable => "Make the VM's .vbox file writable (check its owner, permissions and `lsattr`), delete the left-over .vbox-tmp, then run vblaunch again.",
            DiskFull => "Free space on the disk holding the VM, then run `vblaunch doctor <VM>` (it checks and, with --fix, repairs the VM's settings file) before running vblaunch again.",
            NotEnoughMergeSpace => "Free space on that disk (at least the size of the snapshot's .vdi), then run vblaunch again; the merge can safely be repeated.",
            LockedBySession => "Close the VirtualBox window (and any VBoxManage or front end using this VM), then run vblaunch again.",
            LockedForReading => "Close the program that has the disk open (a clone, export or backup tool; `VBoxManage list hdds` shows the lock), then run vblaunch again.",
            LockedForWriting => "Wait until it finishes (or close the program using the VM), then run vblaunch again.",
            MediaLockFailed => "Close other VMs or programs that use this VM's disks (`VBoxManage list hdds` shows the locks), then run vblaunch again.",
            ChangingState => "Wait until the VM is powered off or saved and no other snapshot operation runs, then run vblaunch again.",
            SessionClosing => "Run vblaunch again in a moment: the VM has finished shutting down by then.",
            SharedParent => "Find the other VM or snapshot that uses this disk (`VBoxManage list hdds` shows the children) and detach it or give it its own copy, then run vblaunch again.",
            LowMemory => "Wait a minute and run vblaunch again; close memory-hungry programs if it repeats.",
            VmNotFound => "Check the spelling (names are case-sensitive) or use the VM's UUID; 'VBoxManage list vms' lists them.",
            Inaccessible => "Run `vblaunch doctor <VM>` to see why; restoring '<VM>.vbox-prev' or a missing disk file usually fixes it.",
            StartupTerminated => "Look at the VM's log (VBox.log in its Logs folder). On Linux check that the vboxdrv kernel module is loaded ('sudo /sbin/vboxconfig').",
            NoTranslation => "vblaunch runs VBoxManage under a UTF-8 locale when one is installed: install one (Debian/Ubuntu: the 'locales' package), or give the VM by its UUID ('VBoxManage list vms' shows it).",
            Unknown => "Read VirtualBox's message above and VBoxSVC.log; `vblaunch doctor <VM>` shows what VirtualBox holds now.",
        }
    }

    /// The exit status vblaunch ends with when this is why it stops.
    pub fn code(&self) -> Code {
        use ErrorKind::*;
        match self {
            VmNotFound | Inaccessible => Code::VmNotFound,
            LockedBySession | ChangingState => Code::VmState,
            SharedParent => Code::Refused,
            FrontEndMissing | StartupTerminated => Code::StartFailed,
            _ => Code::VBoxManageFailed,
        }
    }

    /// Whether a call of `op` that failed this way may have changed something
    /// (then the caller must re-read before it says "nothing was changed").
    pub fn may_have_changed(&self, op: Op) -> bool {
        use ErrorKind::*;
        if op == Op::Read {
            return false;
        }
        match self {
            // Refused before any change.
            VmNotFound | Inaccessible | LockedBySession | LockedForReading | LockedForWriting
            | MediaLockFailed | ChangingState | SessionClosing | SharedParent
            | NotEnoughMergeSpace | ServiceUnreachable | RegistryDamaged | NoTranslation
            | FrontEndMissing | SettingsFileMissing | ImageForeign | DiskMissing
            | DiskNotRegistered | RegistryMismatch => false,
            // Failed part-way: a diff may exist, a merge may be half done, the
            // .vbox may be rewritten, truncated or left as .vbox-tmp.
            ServiceDied
            | ImageDamaged
            | DiskFull
            | ReadOnlyFilesystem
            | SnapshotsFolderNotWritable
            | VmFolderNotWritable
            | SettingsNotReplaceable
            | LowMemory
            | StartupTerminated
            | Unknown => op != Op::Start || matches!(self, Unknown | ServiceDied),
        }
    }
}

/// Why a registered disk image cannot be used: from its `Access Error:` text
/// (`showmediuminfo`; `list hdds` often shows none) and whether its file
/// exists. `DiskMissing`, `ImageDamaged`, `ImageForeign`, or `Unknown` (the
/// file is there but VirtualBox did not say why it cannot read it).
pub fn medium_problem(access_error: Option<&str>, file_exists: bool) -> ErrorKind {
    let said = access_error
        .map(|t| {
            let lines: Vec<String> = t.lines().map(|l| l.trim().to_string()).collect();
            kind_of(&VBoxError {
                op: Op::Read,
                lines,
                context: None,
                result_code: None,
                exit: None,
            })
        })
        .unwrap_or(ErrorKind::Unknown);
    match said {
        ErrorKind::DiskMissing | ErrorKind::ImageDamaged | ErrorKind::ImageForeign => said,
        _ if !file_exists => ErrorKind::DiskMissing,
        _ => ErrorKind::Unknown,
    }
}

impl ErrorKind {
    /// How a disk image with this problem is named in a list: "MISSING",
    /// "DAMAGED", … (only for [`medium_problem`]'s kinds; others "UNREADABLE").
    pub fn medium_label(&self) -> &'static str {
        match self {
            ErrorKind::DiskMissing => "MISSING",
            ErrorKind::ImageDamaged => "DAMAGED (the file is there but unreadable)",
            ErrorKind::ImageForeign => {
                "a DIFFERENT IMAGE (its UUID does not match VirtualBox's registry)"
            }
            _ => "UNREADABLE (the file is there)",
        }
    }
}

/// A failed VBoxManage call: the exit status's [`Code`] comes from
/// [`crate::exit::Failure`]; this is reachable beside it in the error chain
/// (see [`diagnosis_of`]).
#[derive(Debug)]
pub struct CallError {
    pub command: String,
    pub diagnosis: Diagnosis,
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} ({})", self.diagnosis.kind, self.command)
    }
}

impl std::error::Error for CallError {}

/// The diagnosis of the VBoxManage failure in an error chain, if it is one:
/// lets a caller ask "did this Delete fail with ServiceDied?".
pub fn diagnosis_of(err: &anyhow::Error) -> Option<&Diagnosis> {
    err.chain()
        .filter_map(|e| e.downcast_ref::<crate::exit::Failure>())
        .find_map(|f| f.detail.as_ref()?.downcast_ref::<CallError>())
        .map(|c| &c.diagnosis)
}

/// The `VBoxManage: error: …` lines (prefix removed), in order.
pub fn error_lines(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter_map(|l| {
            let (_, rest) = l
                .split_once("VBoxManage: error: ")
                .or_else(|| l.split_once("VBoxManage.exe: error: "))?;
            Some(rest)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;
    use ErrorKind::*;

    fn of(name: &str, op: Op) -> Diagnosis {
        let exit = fixture(&format!("{name}.exit")).trim().parse().ok();
        classify(op, &fixture(&format!("{name}.stderr")), exit)
    }

    /// Every recorded real failure (tests/fixtures, VirtualBox 7.2.22; the
    /// 49+ ones by record-faults.sh) → its kind.
    #[test]
    fn not_ready_is_a_closing_session_only_for_a_read() {
        let text = "VBoxManage: error: The object is not ready\nVBoxManage: error: Details: code NS_ERROR_ABORT (0x80004004)\n";
        assert_eq!(
            classify(Op::Read, text, Some(1)).kind,
            ErrorKind::SessionClosing
        );
        // In a merge it is VBoxSVC dying mid-way: may have changed something.
        let d = classify(Op::Delete, text, Some(1));
        assert_eq!(d.kind, ErrorKind::ServiceDied);
        assert!(d.may_have_changed());
    }

    #[test]
    fn every_recorded_failure_gets_its_kind() {
        for (name, op, kind) in [
            ("07-snapshot-list-none", Op::Read, Unknown),
            ("27-snapshot-delete-nonexistent", Op::Delete, Unknown),
            ("28-snapshot-take-nonexistent-vm", Op::Take, VmNotFound),
            ("29-snapshot-delete-nonexistent-vm", Op::Delete, VmNotFound),
            ("30-snapshot-list-nonexistent-vm", Op::Read, VmNotFound),
            ("31-showvminfo-nonexistent-vm", Op::Read, VmNotFound),
            ("32-startvm-headless", Op::Start, StartupTerminated),
            ("33-invalid-command", Op::Other, Unknown),
            (
                "37-diffgone-snapshot-delete-current",
                Op::Delete,
                DiskMissing,
            ),
            ("38-diffgone-snapshot-take", Op::Take, DiskMissing),
            // "Code NS_ERROR_FAILURE … Operation failed": a code, no message.
            ("39-diffgone-mediumio-cat", Op::Read, Unknown),
            ("40-diffgone-startvm", Op::Start, StartupTerminated),
            ("41-diffgone-closemedium", Op::Other, Unknown),
            // Exit 0, but an error line: a snapshot's image is not registered.
            ("43-regmissing-list-vms-long", Op::Read, DiskNotRegistered),
            ("44-regmissing-showvminfo-by-name", Op::Read, VmNotFound),
            ("45-regmissing-showvminfo-by-uuid", Op::Read, Inaccessible),
            (
                "46-regmissing-snapshot-list-by-uuid",
                Op::Read,
                Inaccessible,
            ),
            ("49-startvm-frontend-missing", Op::Start, FrontEndMissing),
            ("50-svckill-snapshot-delete", Op::Delete, ServiceDied),
            ("52-truncated-snapshot-delete", Op::Delete, ImageDamaged),
            ("54-shared-base-snapshot-delete-a", Op::Delete, SharedParent),
            ("56-corrupt-vbox-showvminfo-by-name", Op::Read, VmNotFound),
            ("57-corrupt-vbox-showvminfo-by-uuid", Op::Read, Inaccessible),
            ("58-corrupt-vbox-snapshot-take", Op::Take, Inaccessible),
            ("59-session-startvm", Op::Start, LockedBySession),
            ("62-readlock-diff-startvm", Op::Start, StartupTerminated),
            (
                "63-readlock-base-snapshot-delete",
                Op::Delete,
                LockedForReading,
            ),
            (
                "65-readlock-diff-snapshot-delete",
                Op::Delete,
                LockedForReading,
            ),
            ("66-changing-state-snapshot-take", Op::Take, ChangingState),
            ("49-showvminfo-session-closing", Op::Read, SessionClosing),
            (
                "67-changing-state-snapshot-delete",
                Op::Delete,
                ChangingState,
            ),
            (
                "68-virtualbox-xml-damaged-list-vms",
                Op::Read,
                RegistryDamaged,
            ),
            ("70-bad-header-snapshot-delete", Op::Delete, ImageDamaged),
            ("73-foreign-uuid-snapshot-delete", Op::Delete, ImageForeign),
            (
                "74-snapshots-immutable-snapshot-take",
                Op::Take,
                SnapshotsFolderNotWritable,
            ),
            (
                "75-vm-folder-immutable-snapshot-take",
                Op::Take,
                VmFolderNotWritable,
            ),
            (
                "77-vbox-immutable-snapshot-take",
                Op::Take,
                SettingsNotReplaceable,
            ),
            (
                "78-read-only-fs-snapshot-take",
                Op::Take,
                ReadOnlyFilesystem,
            ),
            ("79-read-only-fs-snapshot-delete", Op::Delete, ServiceDied),
            ("80-disk-full-snapshot-take", Op::Take, DiskFull),
            (
                "82-merge-full-snapshot-delete",
                Op::Delete,
                NotEnoughMergeSpace,
            ),
            ("83-no-translation-showvminfo", Op::Read, NoTranslation),
            ("50-lc-c-showvminfo-non-ascii-name", Op::Read, NoTranslation),
            ("85-truncated-data-snapshot-delete", Op::Delete, ServiceDied),
            ("86-registervm-missing-vbox", Op::Other, SettingsFileMissing),
            ("87-media-lock-startvm", Op::Start, MediaLockFailed),
            ("88-writelock-snapshot-delete", Op::Delete, LockedForWriting),
            ("89-writelock-snapshot-take", Op::Take, MediaLockFailed),
            (
                "90-service-unreachable-list-vms",
                Op::Read,
                ServiceUnreachable,
            ),
        ] {
            let d = of(name, op);
            assert_eq!(d.kind, kind, "{name}: {:#?}", d.error);
        }
    }

    /// The old classifier's mistakes (issue 11), now right.
    #[test]
    fn the_old_misreadings_are_fixed() {
        // VERR_FILE_NOT_FOUND of LaunchVMProcess: the front end, not a disk.
        let d = of("49-startvm-frontend-missing", Op::Start);
        assert_eq!(d.kind, FrontEndMissing);
        assert!(d
            .error
            .context
            .as_deref()
            .unwrap()
            .contains("LaunchVMProcess"));
        assert!(!d.kind.meaning().contains("disk image"));
        // "Snapshot operation failed" + NS_ERROR_ABORT: the service died, and
        // the merge may have been done in part.
        let d = of("50-svckill-snapshot-delete", Op::Delete);
        assert_eq!(d.error.result_code.as_deref(), Some("NS_ERROR_ABORT"));
        assert_eq!(d.error.exit, Some(133));
        assert!(d.may_have_changed());
        assert!(!d.kind.meaning().contains("shape"));
        // A damaged VirtualBox.xml is not "the service is not running", and
        // is not worth a retry.
        assert_eq!(
            of("68-virtualbox-xml-damaged-list-vms", Op::Read).kind,
            RegistryDamaged
        );
        // "locked by a session", not only "locked for a session".
        assert_eq!(of("59-session-startvm", Op::Start).kind, LockedBySession);
        // A damaged header or a foreign image is not "missing".
        assert_eq!(
            of("70-bad-header-snapshot-delete", Op::Delete).kind,
            ImageDamaged
        );
        assert_eq!(
            of("73-foreign-uuid-snapshot-delete", Op::Delete).kind,
            ImageForeign
        );
    }

    #[test]
    fn context_lines_never_decide() {
        // The context names LaunchVMProcess and VERR_FILE_NOT_FOUND; the message does not.
        let text = "VBoxManage: error: Something new happened\n\
                    VBoxManage: error: Details: code NS_ERROR_FAILURE (0x80004005), component X\n\
                    VBoxManage: error: Context: \"LaunchVMProcess(VERR_FILE_NOT_FOUND is already locked by a session)\" at line 1 of file X.cpp\n";
        let d = classify(Op::Start, text, Some(1));
        assert_eq!(d.kind, Unknown);
        assert!(d.error.context.unwrap().starts_with("\"LaunchVMProcess"));
        assert_eq!(d.error.result_code.as_deref(), Some("NS_ERROR_FAILURE"));
        assert_eq!(d.error.lines, ["Something new happened"]);
    }

    #[test]
    fn the_first_line_decides_not_a_later_one() {
        let text = "VBoxManage: error: Medium '/v/a.vdi' is locked for reading by another task\n\
                    VBoxManage: error: VD: error VERR_FILE_NOT_FOUND opening image file '/v/b.vdi'\n";
        assert_eq!(classify(Op::Delete, text, Some(1)).kind, LockedForReading);
    }

    #[test]
    fn headers_alone_are_not_evidence() {
        for code in ["NS_ERROR_FAILURE", "E_FAIL"] {
            let text = format!("0%...{code}\nVBoxManage: error: Snapshot operation failed\nVBoxManage: error: Progress state: E_FAIL\n");
            assert_eq!(classify(Op::Delete, &text, Some(1)).kind, Unknown, "{code}");
        }
        let d = classify(
            Op::Delete,
            "0%...NS_ERROR_ABORT\nVBoxManage: error: Snapshot operation failed\n",
            Some(1),
        );
        assert_eq!(d.kind, ServiceDied);
    }

    #[test]
    fn service_not_running_is_unreachable() {
        let text = "VBoxManage: error: Failed to create the VirtualBox object!\n\
                    VBoxManage: error: Code NS_ERROR_ABORT (0x80004004) - Operation aborted (extended info not available)\n\
                    VBoxManage: error: Most likely, the VirtualBox COM server is not running or failed to start.\n";
        assert_eq!(classify(Op::Read, text, Some(1)).kind, ServiceUnreachable);
        let denied = "VBoxManage: error: Failed to create the VirtualBox object!\n\
                      VBoxManage: error: Could not load the settings file '/h/VirtualBox.xml' (VERR_ACCESS_DENIED).\n";
        assert_eq!(classify(Op::Read, denied, Some(1)).kind, RegistryDamaged);
    }

    #[test]
    fn seed_gallery_of_horrors_is_explained() {
        for (text, kind) in [
            ("Hard disk '/v/x.vdi' with UUID {1} cannot be directly attached to the virtual machine 'X' because it has 1 differencing child hard disks", RegistryMismatch),
            ("Unable to merge storage '/v/x.vdi'. Not enough free storage space", NotEnoughMergeSpace),
            ("Medium '/v/x.vdi' is locked for writing by another task", LockedForWriting),
            ("The machine 'X' is already locked for a session (or being unlocked)", LockedBySession),
            ("VERR_NO_LOW_MEMORY", LowMemory),
            ("Cannot delete a snapshot of the machine while it is changing the state (machine state: Saving)", ChangingState),
            ("Locking of attached media failed. A possible reason is that one of the media is attached to a running VM", MediaLockFailed),
            ("A differencing image of snapshot {1} could not be found", DiskNotRegistered),
        ] {
            let d = classify(Op::Delete, &format!("VBoxManage: error: {text}\n"), Some(1));
            assert_eq!(d.kind, kind, "{text}");
        }
        assert_eq!(classify(Op::Delete, "something new", Some(1)).kind, Unknown);
    }

    #[test]
    fn may_have_changed_follows_the_operation() {
        assert!(ServiceDied.may_have_changed(Op::Delete));
        assert!(DiskFull.may_have_changed(Op::Take));
        assert!(!LockedBySession.may_have_changed(Op::Delete));
        assert!(!SharedParent.may_have_changed(Op::Delete));
        assert!(!ServiceDied.may_have_changed(Op::Read));
        assert!(!FrontEndMissing.may_have_changed(Op::Start));
    }

    #[test]
    fn every_kind_has_words_and_a_code() {
        for k in [
            DiskMissing,
            DiskNotRegistered,
            ImageDamaged,
            ImageForeign,
            FrontEndMissing,
            SettingsFileMissing,
            ServiceUnreachable,
            ServiceDied,
            RegistryDamaged,
            RegistryMismatch,
            SnapshotsFolderNotWritable,
            VmFolderNotWritable,
            ReadOnlyFilesystem,
            SettingsNotReplaceable,
            DiskFull,
            NotEnoughMergeSpace,
            LockedBySession,
            LockedForReading,
            LockedForWriting,
            MediaLockFailed,
            ChangingState,
            SessionClosing,
            SharedParent,
            LowMemory,
            VmNotFound,
            Inaccessible,
            StartupTerminated,
            NoTranslation,
            Unknown,
        ] {
            assert!(
                k.meaning().ends_with('.') && k.next_step().len() > 20,
                "{k:?}"
            );
            let _ = k.code();
        }
        assert_eq!(LockedBySession.code(), Code::VmState);
        assert_eq!(VmNotFound.code(), Code::VmNotFound);
        assert_eq!(DiskFull.code(), Code::VBoxManageFailed);
    }

    #[test]
    fn operations_are_read_from_the_arguments() {
        assert_eq!(op_of_args(&["snapshot", "u", "delete", "s"]), Op::Delete);
        assert_eq!(op_of_args(&["snapshot", "u", "take", "current"]), Op::Take);
        assert_eq!(
            op_of_args(&["snapshot", "u", "edit", "s", "--name=x"]),
            Op::Rename
        );
        assert_eq!(op_of_args(&["snapshot", "u", "restore", "s"]), Op::Restore);
        assert_eq!(op_of_args(&["startvm", "u", "--type", "gui"]), Op::Start);
        assert_eq!(op_of_args(&["showvminfo", "u"]), Op::Read);
        assert_eq!(op_of_args(&["registervm", "x"]), Op::Other);
    }

    /// The `Access Error:` of a recorded `showmediuminfo` (no prefix, several lines).
    #[test]
    fn media_problems_are_told_apart() {
        let access = |f: &str| {
            crate::vbox::media::parse(&fixture(f))[0]
                .access_error
                .clone()
                .unwrap()
        };
        let missing = access("36-diffgone-showmediuminfo.stdout");
        assert_eq!(medium_problem(Some(&missing), false), DiskMissing);
        let header = access("69-bad-header-showmediuminfo.stdout");
        assert_eq!(medium_problem(Some(&header), true), ImageDamaged);
        let foreign = access("72-foreign-uuid-showmediuminfo.stdout");
        assert_eq!(medium_problem(Some(&foreign), true), ImageForeign);
        // `list hdds` gives no reason: only the file's presence tells.
        assert_eq!(medium_problem(None, false), DiskMissing);
        assert_eq!(medium_problem(None, true), Unknown);
        assert!(!medium_problem(None, true)
            .medium_label()
            .contains("MISSING"));
    }

    #[test]
    fn error_lines_strip_the_prefix_on_every_os() {
        let lines = error_lines("0%...\nVBoxManage: error: A\nnoise\nVBoxManage.exe: error: B\n");
        assert_eq!(lines, ["A", "B"]);
    }

    #[test]
    fn the_diagnosis_travels_with_the_error() {
        let d = classify(
            Op::Delete,
            &fixture("50-svckill-snapshot-delete.stderr"),
            Some(133),
        );
        let err = anyhow::Error::new(crate::exit::Failure::new(d.kind.code(), "x").with_detail(
            CallError {
                command: "VBoxManage snapshot u delete s".into(),
                diagnosis: d,
            },
        ))
        .context("folding");
        let got = diagnosis_of(&err).unwrap();
        assert_eq!((got.kind, got.error.op), (ServiceDied, Op::Delete));
        assert_eq!(crate::exit::code_of(&err), Code::VBoxManageFailed);
    }
}
