//! Pure classification of VBoxManage error text into plain words and the next
//! step. VirtualBox's own text is always shown beneath; this only adds the
//! "what it means / what to do" a user needs at 8 am before work.

/// What vblaunch can tell the user about a VBoxManage failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    pub meaning: &'static str,
    pub next_step: &'static str,
}

struct Rule {
    /// Every needle must occur in the error text.
    needles: &'static [&'static str],
    advice: Advice,
}

const RULES: &[Rule] = &[
    Rule {
        needles: &["cannot be directly attached", "differencing child"],
        advice: Advice {
            meaning: "The VM's settings file and VirtualBox's list of disks disagree, usually after an interrupted snapshot operation or a power loss.",
            next_step: "Close VirtualBox, then restore the previous settings file: copy '<VM>.vbox-prev' (next to '<VM>.vbox') over '<VM>.vbox', and run vblaunch again.",
        },
    },
    Rule {
        needles: &["differencing image of snapshot", "could not be found"],
        advice: Advice {
            meaning: "A snapshot's disk image is missing from VirtualBox's media registry (moved or deleted, or a backup was restored without the Snapshots folder).",
            next_step: "Put the missing .vdi back into the VM's Snapshots folder (from your backup) and run vblaunch again. Do not delete snapshots: that could lose data.",
        },
    },
    Rule {
        needles: &["Not enough free storage space"],
        advice: Advice {
            meaning: "The disk holding the VM is too full to merge the snapshot.",
            next_step: "Free space on that disk (at least the size of the snapshot's .vdi), then run vblaunch again; the merge can safely be repeated.",
        },
    },
    Rule {
        needles: &["VERR_FILE_NOT_FOUND"],
        advice: Advice {
            meaning: "A disk image file of this VM is missing on disk.",
            next_step: "Restore the named .vdi file from your backup to exactly that path, then run vblaunch again. Do not delete or restore snapshots until the file is back.",
        },
    },
    Rule {
        needles: &["is locked for writing by another task"],
        advice: Advice {
            meaning: "Another VirtualBox operation is using the disk right now.",
            next_step: "Wait until it finishes (or close the program using the VM), then run vblaunch again.",
        },
    },
    Rule {
        needles: &["is already locked for a session"],
        advice: Advice {
            meaning: "A VirtualBox window or another program has the VM open.",
            next_step: "Close the VirtualBox window (and any VBoxManage or front end using this VM), then run vblaunch again.",
        },
    },
    Rule {
        needles: &["while it is changing the state"],
        advice: Advice {
            meaning: "The VM is in the middle of starting, stopping or saving.",
            next_step: "Wait until the VM is powered off or saved, then run vblaunch again.",
        },
    },
    Rule {
        needles: &["VERR_NO_LOW_MEMORY"],
        advice: Advice {
            meaning: "The host ran short of low memory (a known VirtualBox issue on Linux hosts).",
            next_step: "Wait a minute and run vblaunch again; close memory-hungry programs if it repeats.",
        },
    },
    Rule {
        needles: &["Could not find a registered machine"],
        advice: Advice {
            meaning: "VirtualBox has no VM with that name or UUID.",
            next_step: "Check the spelling (names are case-sensitive) or use the VM's UUID; 'VBoxManage list vms' lists them.",
        },
    },
    Rule {
        needles: &["The object functionality is limited"],
        advice: Advice {
            meaning: "VirtualBox cannot read this VM's settings (the VM is inaccessible).",
            next_step: "Open the VirtualBox Manager to see the exact error for this VM; restoring '<VM>.vbox-prev' or a missing disk file usually fixes it.",
        },
    },
    Rule {
        needles: &["terminated unexpectedly during startup"],
        advice: Advice {
            meaning: "VirtualBox could not start the VM process.",
            next_step: "Look at the VM's log (VBox.log in its Logs folder). On Linux check that the vboxdrv kernel module is loaded ('sudo /sbin/vboxconfig').",
        },
    },
    Rule {
        needles: &["Failed to create the VirtualBox object"],
        advice: Advice {
            meaning: "VirtualBox's background service (VBoxSVC) did not start or answer.",
            next_step: "Run vblaunch again in a moment; if it keeps failing, log out and in (or reboot) so that VBoxSVC restarts, and check VBoxSVC.log.",
        },
    },
    Rule {
        needles: &["VERR_NO_TRANSLATION"],
        advice: Advice {
            meaning: "VBoxManage could not convert a name or path for the current locale (its character set cannot represent a character of it).",
            next_step: "Run vblaunch from a UTF-8 locale (e.g. LANG=C.UTF-8; install one with your system's 'locales' package), or give the VM by its UUID ('VBoxManage list vms' shows it).",
        },
    },
    Rule {
        needles: &["Snapshot operation failed"],
        advice: Advice {
            meaning: "VirtualBox refused the snapshot operation, often because of the shape of the snapshot tree.",
            next_step: "Look at the snapshot tree in the VirtualBox Manager and at VBoxSVC.log; nothing was deleted, so vblaunch can be run again once the cause is fixed.",
        },
    },
];

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

/// Advice for the first rule whose needles all occur in `text`.
pub fn classify(text: &str) -> Option<&'static Advice> {
    RULES
        .iter()
        .find(|r| r.needles.iter().all(|n| text.contains(n)))
        .map(|r| &r.advice)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    #[test]
    fn recorded_failures_get_advice() {
        for (file, expect) in [
            (
                "37-diffgone-snapshot-delete-current.stderr",
                "missing on disk",
            ),
            ("38-diffgone-snapshot-take.stderr", "missing on disk"),
            (
                "31-showvminfo-nonexistent-vm.stderr",
                "no VM with that name",
            ),
            ("45-regmissing-showvminfo-by-uuid.stderr", "inaccessible"),
            (
                "43-regmissing-list-vms-long.stderr",
                "missing from VirtualBox's media registry",
            ),
            ("32-startvm-headless.stderr", "could not start"),
            (
                "50-lc-c-showvminfo-non-ascii-name.stderr",
                "could not convert a name or path for the current locale",
            ),
        ] {
            let advice = classify(&fixture(file)).unwrap_or_else(|| panic!("{file}: no advice"));
            assert!(
                advice.meaning.contains(expect),
                "{file}: {}",
                advice.meaning
            );
        }
    }

    #[test]
    fn seed_gallery_of_horrors_is_explained() {
        let attached = "Hard disk '/v/x.vdi' with UUID {1} cannot be directly attached to the virtual machine 'X' because it has 1 differencing child hard disks";
        assert!(classify(attached).unwrap().next_step.contains(".vbox-prev"));
        for text in [
            "Unable to merge storage '/v/x.vdi'. Not enough free storage space",
            "Medium '/v/x.vdi' is locked for writing by another task",
            "The machine 'X' is already locked for a session (or being unlocked)",
            "Progress state: E_FAIL\nSnapshot operation failed",
            "VERR_NO_LOW_MEMORY",
            "Cannot delete a snapshot of the machine while it is changing the state (machine state: Saving)",
        ] {
            assert!(classify(text).is_some(), "{text}");
        }
        assert!(classify("something new").is_none());
    }

    #[test]
    fn error_lines_strip_the_prefix_on_every_os() {
        let lines = error_lines("0%...\nVBoxManage: error: A\nnoise\nVBoxManage.exe: error: B\n");
        assert_eq!(lines, ["A", "B"]);
    }
}
