//! VirtualBox's states as types, parsed once where VirtualBox's text is read
//! (`showvminfo`'s `VMState`, `list hdds`' `State`, a settings file's
//! machine attributes): every question about a state ("may it be folded?",
//! "is the VM running?") is a method here, so a new state is added in this
//! one file. The text VirtualBox printed is kept for messages. Also the one
//! test for "this argument is a UUID".
use std::fmt;

/// A VM's state (`VMState=` of `showvminfo --machinereadable`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum VmState {
    PowerOff,
    Aborted,
    Saved,
    /// Aborted with a saved state (`aborted-saved`; `abortedsaved` in some versions).
    AbortedSaved,
    Teleported,
    Running,
    Paused,
    /// Guru meditation (`gurumeditation`; the API calls it Stuck).
    Stuck,
    Starting,
    Stopping,
    Saving,
    Restoring,
    /// Any other state VirtualBox prints (snapshotting, teleporting, …):
    /// VirtualBox is changing the VM.
    Busy(String),
    /// No `VMState` was read.
    #[default]
    Unknown,
}

impl VmState {
    pub fn parse(text: &str) -> VmState {
        match text {
            "poweroff" => VmState::PowerOff,
            "aborted" => VmState::Aborted,
            "saved" => VmState::Saved,
            "aborted-saved" | "abortedsaved" => VmState::AbortedSaved,
            "teleported" => VmState::Teleported,
            "running" => VmState::Running,
            "paused" => VmState::Paused,
            "gurumeditation" | "stuck" => VmState::Stuck,
            "starting" => VmState::Starting,
            "stopping" => VmState::Stopping,
            "saving" => VmState::Saving,
            "restoring" => VmState::Restoring,
            "" => VmState::Unknown,
            other => VmState::Busy(other.to_string()),
        }
    }

    /// As VirtualBox prints it.
    pub fn as_str(&self) -> &str {
        match self {
            VmState::PowerOff => "poweroff",
            VmState::Aborted => "aborted",
            VmState::Saved => "saved",
            VmState::AbortedSaved => "aborted-saved",
            VmState::Teleported => "teleported",
            VmState::Running => "running",
            VmState::Paused => "paused",
            VmState::Stuck => "gurumeditation",
            VmState::Starting => "starting",
            VmState::Stopping => "stopping",
            VmState::Saving => "saving",
            VmState::Restoring => "restoring",
            VmState::Busy(s) => s,
            VmState::Unknown => "unknown",
        }
    }

    /// Offline and settled: no VM process writes to its disks, so an offline
    /// fold may run (never an online merge).
    pub fn allows_fold(&self) -> bool {
        matches!(
            self,
            VmState::PowerOff | VmState::Aborted | VmState::Saved | VmState::AbortedSaved
        )
    }

    /// Shut down without a saved state (a restore or a fold on exit needs this).
    pub fn is_shut_down(&self) -> bool {
        matches!(self, VmState::PowerOff | VmState::Aborted)
    }

    /// The VM has a saved state (a restore would throw it away).
    pub fn has_saved_state(&self) -> bool {
        matches!(self, VmState::Saved | VmState::AbortedSaved)
    }

    /// A VM process runs the guest (it may write to the current state's disks).
    pub fn is_running(&self) -> bool {
        matches!(self, VmState::Running | VmState::Paused | VmState::Stuck)
    }

    /// What the VM is doing, in plain words, for a state that forbids a fold.
    pub fn doing(&self) -> &'static str {
        match self {
            VmState::Running => "running",
            VmState::Paused => "paused",
            VmState::Starting | VmState::Restoring => "starting",
            VmState::Stopping | VmState::Saving => "shutting down",
            VmState::Stuck => "stuck (guru meditation)",
            _ => "busy",
        }
    }
}

impl fmt::Display for VmState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for VmState {
    fn from(s: &str) -> VmState {
        VmState::parse(s)
    }
}

impl PartialEq<&str> for VmState {
    fn eq(&self, other: &&str) -> bool {
        *self == VmState::parse(other)
    }
}

/// A medium's state (`State:` of `list hdds`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum MediumState {
    #[default]
    Created,
    Inaccessible,
    /// `locked read` / `locked write`: VirtualBox works on it (a merge, a
    /// clone, a running VM).
    Locked(String),
    /// Any other state (`not created`, `creating`, `deleting`).
    Other(String),
}

impl MediumState {
    pub fn parse(text: &str) -> MediumState {
        match text {
            "created" => MediumState::Created,
            "inaccessible" => MediumState::Inaccessible,
            s if s.starts_with("locked") => MediumState::Locked(s.to_string()),
            s => MediumState::Other(s.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            MediumState::Created => "created",
            MediumState::Inaccessible => "inaccessible",
            MediumState::Locked(s) | MediumState::Other(s) => s,
        }
    }

    pub fn is_locked(&self) -> bool {
        matches!(self, MediumState::Locked(_))
    }

    /// Neither in use nor being changed (`created` or `inaccessible`).
    pub fn is_idle(&self) -> bool {
        matches!(self, MediumState::Created | MediumState::Inaccessible)
    }
}

impl fmt::Display for MediumState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for MediumState {
    fn from(s: &str) -> MediumState {
        MediumState::parse(s)
    }
}

impl PartialEq<&str> for MediumState {
    fn eq(&self, other: &&str) -> bool {
        *self == MediumState::parse(other)
    }
}

/// Whether `s` is a UUID (`xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`, hex, braces allowed).
pub fn is_uuid(s: &str) -> bool {
    let s = s.trim_matches(|c| c == '{' || c == '}');
    s.len() == 36
        && s.char_indices().all(|(i, c)| {
            if [8, 13, 18, 23].contains(&i) {
                c == '-'
            } else {
                c.is_ascii_hexdigit()
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_printed_vm_state_round_trips_and_is_judged() {
        for (text, fold, running) in [
            ("poweroff", true, false),
            ("aborted", true, false),
            ("saved", true, false),
            ("aborted-saved", true, false),
            ("running", false, true),
            ("paused", false, true),
            ("gurumeditation", false, true),
            ("starting", false, false),
            ("livesnapshotting", false, false),
            ("deletingsnapshot", false, false),
        ] {
            let s = VmState::parse(text);
            assert_eq!(s.as_str(), text);
            assert_eq!(s.allows_fold(), fold, "{text}");
            assert_eq!(s.is_running(), running, "{text}");
        }
        assert!(VmState::parse("abortedsaved").allows_fold());
        assert_eq!(VmState::parse(""), VmState::Unknown);
        assert_eq!(VmState::parse("livesnapshotting").doing(), "busy");
        assert!(VmState::Saved.has_saved_state() && !VmState::Saved.is_shut_down());
    }

    #[test]
    fn medium_states() {
        assert!(MediumState::parse("locked write").is_locked());
        assert!(MediumState::parse("locked read").is_locked());
        assert!(!MediumState::parse("locked write").is_idle());
        assert!(MediumState::parse("inaccessible").is_idle());
        assert_eq!(MediumState::parse("not created").as_str(), "not created");
    }

    #[test]
    fn uuids() {
        assert!(is_uuid("6e4c8e5a-2f61-4b7a-9d0e-3c1f2a4b5c6d"));
        assert!(is_uuid("{6E4C8E5A-2F61-4B7A-9D0E-3C1F2A4B5C6D}"));
        assert!(!is_uuid("Dev Box"));
        assert!(!is_uuid("6e4c8e5a-2f61-4b7a-9d0e-3c1f2a4b5c6"));
    }
}
