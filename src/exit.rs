//! Exit codes and the typed failure that carries one.
//!
//! Plumbing errors travel as `anyhow::Error`; where the caller (or a script
//! that runs vblaunch) must be able to tell one failure from another, the
//! error chain carries a [`Failure`] whose [`Code`] becomes the exit status.
//! Anything without one exits with [`Code::Internal`].
//!
//! The error vocabulary, top to bottom:
//! - an `anyhow::Error` carrying a [`Failure`] ends a run: its code is the
//!   exit status, its chain the message; a typed detail (a VBoxManage
//!   call's [`crate::vbox::errors::CallError`], a [`crate::process::RunError`])
//!   rides along for callers that must tell failures apart;
//! - a planner's [`crate::plan::Refusal`] is a typed value with its code;
//!   `?` turns it into such an error (it is no `std::error::Error`, so it
//!   cannot reach anyhow without its code);
//! - a `Result<_, String>` is only a reason that becomes a clause of a
//!   message ("why this path is not writable", "what the settings file does
//!   not confirm"), never an error that ends a run by itself.
use std::fmt;

/// Exit statuses, documented in `--help` and the README. Stable: scripts rely on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Code {
    Ok = 0,
    /// An unexpected error (a bug, or an I/O error vblaunch could not classify).
    Internal = 1,
    /// Bad command line or configuration file.
    Usage = 2,
    /// A VirtualBox front end is running (with `--no-wait`, or `--wait-timeout` ran out).
    VirtualBoxRunning = 3,
    /// Another vblaunch is working on this VM.
    LockHeld = 4,
    /// The VM's state does not allow a fold (running, paused, transient, session held).
    VmState = 5,
    /// The snapshot tree or the disks make a fold unsafe; nothing was changed.
    Refused = 6,
    /// The VM is not registered, or VirtualBox cannot read its settings.
    VmNotFound = 7,
    /// VBoxManage was not found.
    NoVBoxManage = 8,
    /// A VBoxManage call failed (or timed out).
    VBoxManageFailed = 9,
    /// After the fold, VirtualBox does not hold what vblaunch expected.
    Verification = 10,
    /// The fold succeeded but the VM did not start.
    StartFailed = 11,
    /// A file vblaunch would write (or remove) exists (or was changed), or a
    /// symbolic link sits where it would write; nothing was done.
    Exists = 12,
    /// A hook failed (a failing before_fold hook stops the launch before any change).
    HookFailed = 13,
}

impl Code {
    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The table printed at the end of `--help` and copied into the README.
pub const EXIT_CODES_HELP: &str = "\
Exit codes:
   0  success
   1  unexpected error
   2  bad command line or configuration file
   3  a VirtualBox window or VM process is running (--no-wait, or --wait-timeout ran out)
   4  another vblaunch is already working on this VM
   5  the VM's state does not allow a fold (running, paused, busy, locked by a session)
   6  the snapshots or disks make a fold unsafe; nothing was changed
   7  the VM is not registered or VirtualBox cannot read it
   8  VBoxManage was not found
   9  a VBoxManage command failed
  10  after the fold VirtualBox does not hold what vblaunch expected
  11  the VM did not start (the fold was kept)
  12  a file exists (or was changed) and --force was not given, or a symlink sits where vblaunch writes
  13  a hook failed (before_fold: nothing was changed)";

/// A failure the exit status must reflect.
#[derive(Debug)]
pub struct Failure {
    pub code: Code,
    pub message: String,
    /// A typed detail for callers that must tell failures apart (e.g. a
    /// `vbox::errors::CallError`); not printed, not a `source()`.
    pub detail: Option<Box<dyn std::error::Error + Send + Sync>>,
}

impl Failure {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// The same failure, carrying a typed detail.
    pub fn with_detail(mut self, detail: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.detail = Some(Box::new(detail));
        self
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// Shorthand: `return Err(fail(Code::Refused, "…"))`.
pub fn fail(code: Code, message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Failure::new(code, message))
}

/// The exit code of an error: the outermost [`Failure`] in its chain.
pub fn code_of(err: &anyhow::Error) -> Code {
    err.chain()
        .find_map(|e| e.downcast_ref::<Failure>())
        .map(|f| f.code)
        .unwrap_or(Code::Internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn code_survives_added_context() {
        let err = Err::<(), _>(fail(Code::LockHeld, "held"))
            .context("while launching")
            .unwrap_err();
        assert_eq!(code_of(&err), Code::LockHeld);
    }

    #[test]
    fn plain_errors_are_internal() {
        assert_eq!(code_of(&anyhow::anyhow!("boom")), Code::Internal);
    }

    #[test]
    fn help_table_lists_every_code() {
        for code in 0..=13u8 {
            assert!(
                EXIT_CODES_HELP.contains(&format!("{code:>4}  ")),
                "code {code} missing from the help table"
            );
        }
    }
}
