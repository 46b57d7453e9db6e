//! What vblaunch remembers per VM, under `<data dir>/vms/<VM UUID>/`:
//! - `state.toml`: the last successful fold;
//! - `journal.toml`: the steps of the last run that changed the VM, each
//!   recorded before it starts and marked when it ends, so an interrupted run
//!   (power cut, kill) is noticed and reported by the next one;
//! - `settings-backups/<time>/`: copies of the VM's `.vbox` (and `.vbox-prev`)
//!   taken before the first change of each run (VirtualBox keeps only one
//!   previous version).
//!
//! Files are written atomically (temp file, fsync, rename), so a power cut
//! leaves the old or the new file, never a torn one.
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct VmState {
    pub last_fold: Option<LastFold>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LastFold {
    /// When the fold finished (ISO 8601, UTC).
    pub finished: String,
    pub duration_ms: u64,
    /// Size on disk of the differencing images merged by this fold.
    pub bytes_merged: u64,
    /// The snapshot the VM runs on since.
    pub snapshot: String,
    pub restore_points: usize,
}

pub fn dir(data_dir: &Path, vm_uuid: &str) -> PathBuf {
    data_dir
        .join("vms")
        .join(crate::lock::file_name(vm_uuid).trim_end_matches(".lock"))
}

pub fn load(data_dir: &Path, vm_uuid: &str) -> Result<VmState> {
    let path = dir(data_dir, vm_uuid).join("state.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} is damaged", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(VmState::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Write `bytes` to `path` atomically, as a private file (see `files`).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::files::write_atomic(path, bytes)
}

pub fn save(data_dir: &Path, vm_uuid: &str, state: &VmState) -> Result<()> {
    let path = dir(data_dir, vm_uuid).join("state.toml");
    write_atomic(&path, toml::to_string(state)?.as_bytes())
}

/// The kind of a journalled step that merges a snapshot into its parent
/// (VirtualBox's `snapshot delete`): the only kind that writes into a disk
/// image another snapshot or the base depends on.
pub const MERGE: &str = "merge";

/// One step of a run that changes the VM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// What the step does, e.g. `delete snapshot {uuid} ('current')`.
    pub step: String,
    /// [`MERGE`], `take`, `rename`, `restore`; empty in journals written
    /// before the kind was recorded (their merges say `merge snapshot …`).
    #[serde(default)]
    pub kind: String,
    pub vm: String,
    pub snapshot: Option<String>,
    pub started: String,
    /// `ok`, `failed: …`, or `refused: …` (VirtualBox refused before it
    /// changed anything); absent while the step runs (or if the run died).
    pub outcome: Option<String>,
    /// For a take: the time its snapshot's marker carries, written before
    /// the take starts, so that a run killed during the take (VirtualBox
    /// completes it; vblaunch never learns the UUID) still knows the
    /// snapshot as its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<String>,
}

impl JournalEntry {
    pub fn is_merge(&self) -> bool {
        self.kind == MERGE || (self.kind.is_empty() && self.step.starts_with("merge snapshot"))
    }

    fn failed(&self) -> bool {
        self.outcome
            .as_deref()
            .is_some_and(|o| o.starts_with("failed"))
    }
}

/// A merge that started and did not complete: it was interrupted, or
/// VirtualBox failed in the middle of it. VirtualBox merges in place and
/// removes the snapshot only at the very end, so until a later merge of the
/// same snapshot completes (or the snapshot is gone), the disk it merged into
/// may hold part of the snapshot's data: not a consistent disk to back up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncompleteMerge {
    pub snapshot: String,
    /// The journal's step text (names the snapshot).
    pub step: String,
    pub started: String,
    /// `interrupted`, or the failure.
    pub outcome: String,
}

#[derive(Debug, Default, Clone, PartialEq, Serialize, Deserialize)]
pub struct Journal {
    /// `fold`, `restore`, …
    pub run: String,
    pub started: String,
    #[serde(default)]
    pub entries: Vec<JournalEntry>,
    /// Incomplete merges of earlier runs, carried into each new journal until
    /// a merge of the same snapshot completes or the snapshot is gone.
    #[serde(default)]
    pub incomplete_merges: Vec<IncompleteMerge>,
}

impl Journal {
    /// The step a previous run started but never finished.
    pub fn unfinished(&self) -> Option<&JournalEntry> {
        self.entries.iter().find(|e| e.outcome.is_none())
    }

    /// The first step that failed.
    pub fn failed(&self) -> Option<&JournalEntry> {
        self.entries.iter().find(|e| e.failed())
    }

    /// Merges that started and did not complete, of this run and carried
    /// from earlier ones, in the order they started; a later successful
    /// merge of the same snapshot clears one. Callers also drop those whose
    /// snapshot VirtualBox no longer has (VirtualBox removes it last).
    pub fn incomplete_merges(&self) -> Vec<IncompleteMerge> {
        let mut out = self.incomplete_merges.clone();
        for e in self.entries.iter().filter(|e| e.is_merge()) {
            let Some(snap) = &e.snapshot else { continue };
            if e.outcome.as_deref() == Some("ok") {
                out.retain(|m| &m.snapshot != snap);
            } else if e.outcome.is_none() || e.failed() {
                out.retain(|m| &m.snapshot != snap);
                out.push(IncompleteMerge {
                    snapshot: snap.clone(),
                    step: e.step.clone(),
                    started: e.started.clone(),
                    outcome: e
                        .outcome
                        .clone()
                        .unwrap_or_else(|| "interrupted".to_string()),
                });
            }
            // Refused before any change: an earlier incomplete merge of the
            // same snapshot (if any) stays incomplete.
        }
        out
    }
}

/// What the VM's journal knows of the snapshots vblaunch took, for a run
/// that died before it could record one in the VM's extradata: the UUIDs of
/// completed takes, and the marker times of takes that never reported back
/// (a take killed half-way may still have been completed by VirtualBox).
pub fn journal_takes(data_dir: &Path, vm_uuid: &str) -> (Vec<String>, Vec<String>) {
    let Ok(j) = load_journal(data_dir, vm_uuid) else {
        return Default::default();
    };
    let takes = || {
        j.entries
            .iter()
            .filter(move |e| e.kind == "take" && e.vm == vm_uuid)
    };
    (
        takes()
            .filter(|e| e.outcome.as_deref() == Some("ok"))
            .filter_map(|e| e.snapshot.clone())
            .collect(),
        // Only takes that did not report back: a completed take is known by
        // its UUID (a copy of its marker on another snapshot stays foreign).
        takes()
            .filter(|e| e.outcome.as_deref() != Some("ok"))
            .filter_map(|e| e.taken_at.clone())
            .collect(),
    )
}

/// The incomplete merges recorded for a VM whose snapshots VirtualBox still
/// has (`exists`); a journal that cannot be read counts as none, with a
/// warning (vblaunch then relies on what VirtualBox holds).
pub fn incomplete_merges(
    data_dir: &Path,
    vm_uuid: &str,
    exists: &dyn Fn(&str) -> bool,
) -> Vec<IncompleteMerge> {
    match load_journal(data_dir, vm_uuid) {
        Ok(j) => j
            .incomplete_merges()
            .into_iter()
            .filter(|m| exists(&m.snapshot))
            .collect(),
        Err(e) => {
            log::warn!("{e:#}");
            Vec::new()
        }
    }
}

/// An error in one line for the journal: VirtualBox's first words when a
/// VBoxManage call failed (the whole error is in the log), else the first line.
fn summary(e: &anyhow::Error) -> String {
    let text = e.root_cause().to_string();
    let mut lines = text.lines();
    let first = lines.next().unwrap_or_default().to_string();
    match text.split_once("VirtualBox said:\n") {
        Some((_, rest)) => rest.lines().next().unwrap_or_default().trim().to_string(),
        None => first,
    }
}

fn now() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

pub fn load_journal(data_dir: &Path, vm_uuid: &str) -> Result<Journal> {
    let path = dir(data_dir, vm_uuid).join("journal.toml");
    match std::fs::read_to_string(&path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("{} is damaged", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Journal::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// The journal of the current run, saved at every change.
pub struct JournalWriter {
    path: PathBuf,
    journal: Journal,
    /// A step's success is recorded in memory and written with the next
    /// write (the next step's intent, or on drop): nothing changes the VM
    /// between the two, so one write says both, and a crash in between reads
    /// as "interrupted in that step", which the next run checks anyway.
    unsaved: bool,
    /// The marker time for the next step (a take), see [`JournalEntry::taken_at`].
    next_taken_at: Option<String>,
}

impl JournalWriter {
    /// A journal for a new run. Nothing is written until the first step
    /// begins: a run that changes nothing leaves the previous journal. The
    /// previous journal's incomplete merges whose snapshot still `exists`
    /// are carried into the new one.
    pub fn start(
        data_dir: &Path,
        vm_uuid: &str,
        run: &str,
        exists: &dyn Fn(&str) -> bool,
    ) -> Result<JournalWriter> {
        Ok(JournalWriter {
            path: dir(data_dir, vm_uuid).join("journal.toml"),
            journal: Journal {
                run: run.to_string(),
                started: now(),
                entries: Vec::new(),
                incomplete_merges: incomplete_merges(data_dir, vm_uuid, exists),
            },
            unsaved: false,
            next_taken_at: None,
        })
    }

    /// The next step is a take whose snapshot's marker carries this time.
    pub fn next_take_marks(&mut self, taken_at: &str) {
        self.next_taken_at = Some(taken_at.to_string());
    }

    fn save(&mut self) -> Result<()> {
        write_atomic(&self.path, toml::to_string(&self.journal)?.as_bytes())?;
        self.unsaved = false;
        Ok(())
    }

    /// Run `f` as one journalled step: recorded before it starts, its outcome
    /// after it ends (a failure to write the journal stops the run first).
    ///
    /// `kind` is [`MERGE`] for a merge. A failure that `changed_nothing`
    /// judges a refusal before any change is recorded as `refused: …`,
    /// every other one as `failed: …` (for a merge: incomplete).
    pub fn step<T>(
        &mut self,
        kind: &str,
        step: String,
        vm: &str,
        snapshot: Option<&str>,
        f: impl FnOnce() -> Result<T>,
        changed_nothing: &dyn Fn(&anyhow::Error) -> bool,
    ) -> Result<T> {
        self.begin(kind, step, vm, snapshot)?;
        let result = f();
        match &result {
            Ok(_) => {
                self.set_outcome("ok");
                self.unsaved = true;
            }
            Err(e) if changed_nothing(e) => self.end(&format!("refused: {}", summary(e)))?,
            Err(e) => self.end(&format!("failed: {}", summary(e)))?,
        }
        result
    }

    /// Name the snapshot the last step made (a take's new UUID); written
    /// with the next write, which comes before the next step starts.
    pub fn set_snapshot(&mut self, uuid: &str) {
        if let Some(e) = self.journal.entries.last_mut() {
            e.snapshot = Some(uuid.to_string());
            self.unsaved = true;
        }
    }

    fn set_outcome(&mut self, outcome: &str) {
        if let Some(e) = self.journal.entries.last_mut() {
            e.outcome = Some(outcome.to_string());
        }
    }

    /// Record a step before it runs.
    pub fn begin(
        &mut self,
        kind: &str,
        step: String,
        vm: &str,
        snapshot: Option<&str>,
    ) -> Result<()> {
        self.journal.entries.push(JournalEntry {
            step,
            kind: kind.to_string(),
            vm: vm.to_string(),
            snapshot: snapshot.map(str::to_string),
            started: now(),
            outcome: None,
            taken_at: self.next_taken_at.take(),
        });
        self.save()
    }

    /// Record how the last step ended.
    pub fn end(&mut self, outcome: &str) -> Result<()> {
        self.set_outcome(outcome);
        self.save()
    }
}

impl Drop for JournalWriter {
    fn drop(&mut self) {
        if self.unsaved {
            if let Err(e) = self.save() {
                log::warn!(
                    "could not record the end of the last step in {}: {e:#} (the next run \
                     will re-check what VirtualBox holds)",
                    self.path.display()
                );
            }
        }
    }
}

/// The name of a backup folder vblaunch made: `YYYY-MM-DDTHH-MM-SSZ`, then
/// optionally `-doctor`, then optionally `-N` (N ≥ 2, a second one in the
/// same second). Returns the sort key (time, doctor, N), so that `…Z-10`
/// sorts after `…Z-9`.
fn backup_name_key(name: &str) -> Option<(String, bool, u32)> {
    let b = name.as_bytes();
    if b.len() < 20 {
        return None;
    }
    let stamp_ok = b[..20].iter().enumerate().all(|(i, c)| match i {
        4 | 7 | 13 | 16 => *c == b'-',
        10 => *c == b'T',
        19 => *c == b'Z',
        _ => c.is_ascii_digit(),
    });
    if !stamp_ok {
        return None;
    }
    let mut rest = &name[20..];
    let doctor = match rest.strip_prefix("-doctor") {
        Some(r) => {
            rest = r;
            true
        }
        None => false,
    };
    let n = match rest.strip_prefix('-') {
        None if rest.is_empty() => 1,
        Some(d) if !d.is_empty() && d.len() <= 4 && d.bytes().all(|c| c.is_ascii_digit()) => {
            d.parse().ok().filter(|n| *n >= 2)?
        }
        _ => return None,
    };
    Some((name[..20].to_string(), doctor, n))
}

/// Whether a file in a backup folder is one vblaunch writes there: a copy of
/// a settings file (`.vbox`, `.vbox-prev`, `.vbox-tmp`) or of the global
/// registry (`VirtualBox.xml`, `-prev`), as a regular file.
fn is_backup_file(e: &std::fs::DirEntry) -> bool {
    let name = e.file_name();
    let name = name.to_string_lossy();
    let known = [".vbox", ".vbox-prev", ".vbox-tmp", ".xml", ".xml-prev"]
        .iter()
        .any(|s| name.ends_with(s));
    known && e.file_type().is_ok_and(|t| t.is_file())
}

/// The backup folders in `root` that are vblaunch's own, oldest first: a
/// real folder (not a link) with a name vblaunch gives, holding only copies
/// vblaunch makes. Anything else there is the user's, and never touched.
fn own_backups(root: &Path) -> Vec<PathBuf> {
    if crate::files::is_link(root) {
        return Vec::new();
    }
    let Ok(rd) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut all: Vec<((String, bool, u32), PathBuf)> = rd
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| {
            let key = backup_name_key(&e.file_name().to_string_lossy())?;
            let only_ours = std::fs::read_dir(e.path())
                .ok()?
                .all(|f| f.is_ok_and(|f| is_backup_file(&f)));
            only_ours.then(|| (key, e.path()))
        })
        .collect();
    all.sort();
    all.into_iter().map(|(_, p)| p).collect()
}

/// Delete a backup folder vblaunch made: its files one by one, then the
/// folder (never recursively: what is not vblaunch's stays).
fn remove_backup(dir: &Path) {
    if let Ok(rd) = std::fs::read_dir(dir) {
        for f in rd.flatten() {
            if is_backup_file(&f) {
                let _ = std::fs::remove_file(f.path());
            }
        }
    }
    if let Err(e) = std::fs::remove_dir(dir) {
        log::debug!("kept {}: {e}", dir.display());
    }
}

/// The folder the VM's settings backups go in, created private (a link
/// there is refused).
pub fn backups_root(data_dir: &Path, vm_uuid: &str) -> Result<PathBuf> {
    let vms = data_dir.join("vms");
    let root = dir(data_dir, vm_uuid).join("settings-backups");
    crate::files::private_dir(data_dir)?;
    for d in [vms.as_path(), root.parent().unwrap_or(&vms), root.as_path()] {
        crate::files::private_dir(d)?;
    }
    Ok(root)
}

/// Copy the VM's settings files into a new timestamped backup folder and
/// keep only the newest `keep` of vblaunch's folders. Returns the folder.
/// The copies keep their source's permissions, never wider than 0600.
pub fn backup_settings(
    data_dir: &Path,
    vm_uuid: &str,
    cfg_file: &Path,
    keep: usize,
) -> Result<PathBuf> {
    let root = backups_root(data_dir, vm_uuid)?;
    let stamp = now().replace(':', "-");
    let mut target = root.join(&stamp);
    let mut n = 1;
    while std::fs::symlink_metadata(&target).is_ok() {
        n += 1;
        target = root.join(format!("{stamp}-{n}"));
    }
    crate::files::create_dir(&target)?;
    let mut copied = 0;
    for suffix in ["", "-prev"] {
        let mut name = cfg_file
            .file_name()
            .context("settings file has a name")?
            .to_os_string();
        name.push(suffix);
        let src = cfg_file.with_file_name(&name);
        if src.is_file() {
            let data =
                std::fs::read(&src).with_context(|| format!("cannot read {}", src.display()))?;
            #[cfg(unix)]
            let mode = {
                use std::os::unix::fs::PermissionsExt;
                std::fs::metadata(&src).map_or(0o600, |m| m.permissions().mode() & 0o600)
            };
            #[cfg(not(unix))]
            let mode = 0o600;
            crate::files::write_atomic_mode(&target.join(&name), &data, mode | 0o400)?;
            copied += 1;
        }
    }
    if copied == 0 {
        let _ = std::fs::remove_dir(&target);
        anyhow::bail!(
            "the VM's settings file {} does not exist; nothing to back up",
            cfg_file.display()
        );
    }
    let all = own_backups(&root);
    let excess = all.len().saturating_sub(keep.max(1));
    for old in &all[..excess] {
        remove_backup(old);
    }
    Ok(target)
}

/// vblaunch's settings backups of a VM, oldest first.
pub fn settings_backups(data_dir: &Path, vm_uuid: &str) -> Vec<PathBuf> {
    own_backups(&dir(data_dir, vm_uuid).join("settings-backups"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NEVER: fn(&anyhow::Error) -> bool = |_| false;

    fn merge(j: &mut JournalWriter, snap: &str, ok: bool, refused: bool) {
        let r = j.step(
            MERGE,
            format!("merge snapshot {{{snap}}} 'current'"),
            "vm",
            Some(snap),
            || {
                if ok {
                    Ok(())
                } else {
                    anyhow::bail!("NS_ERROR_ABORT")
                }
            },
            &|_| refused,
        );
        assert_eq!(r.is_ok(), ok);
    }

    #[test]
    fn an_incomplete_merge_is_carried_until_a_merge_of_it_completes() {
        let d = tempfile::tempdir().unwrap();
        let all = |_: &str| true;
        // Run 1: the merge of s1 fails half-way.
        let mut j = JournalWriter::start(d.path(), "vm", "fold", &all).unwrap();
        merge(&mut j, "s1", false, false);
        drop(j);
        let m = incomplete_merges(d.path(), "vm", &all);
        assert_eq!(m.len(), 1, "{m:?}");
        assert_eq!(m[0].snapshot, "s1");
        assert!(m[0].outcome.contains("NS_ERROR_ABORT"), "{m:?}");
        // Run 2 changes something else (a take): s1 stays incomplete.
        let mut j = JournalWriter::start(d.path(), "vm", "fold", &all).unwrap();
        j.step("take", "take".into(), "vm", None, || Ok(()), &NEVER)
            .unwrap();
        drop(j);
        assert_eq!(incomplete_merges(d.path(), "vm", &all).len(), 1);
        // Run 3: VirtualBox refuses before any change: still incomplete.
        let mut j = JournalWriter::start(d.path(), "vm", "fold", &all).unwrap();
        merge(&mut j, "s1", false, true);
        drop(j);
        let j3 = load_journal(d.path(), "vm").unwrap();
        assert!(j3.entries[0]
            .outcome
            .as_deref()
            .unwrap()
            .starts_with("refused"));
        assert_eq!(incomplete_merges(d.path(), "vm", &all).len(), 1);
        // Run 4 completes it.
        let mut j = JournalWriter::start(d.path(), "vm", "fold", &all).unwrap();
        merge(&mut j, "s1", true, false);
        drop(j);
        assert!(incomplete_merges(d.path(), "vm", &all).is_empty());
    }

    #[test]
    fn an_incomplete_merge_whose_snapshot_is_gone_is_dropped() {
        let d = tempfile::tempdir().unwrap();
        let mut j = JournalWriter::start(d.path(), "vm", "fold", &|_| true).unwrap();
        // Killed during the merge: no outcome.
        j.begin(
            MERGE,
            "merge snapshot {s1} 'current'".into(),
            "vm",
            Some("s1"),
        )
        .unwrap();
        drop(j);
        assert_eq!(
            incomplete_merges(d.path(), "vm", &|_| true)[0].outcome,
            "interrupted"
        );
        // VirtualBox completed it after all (the snapshot is gone).
        assert!(incomplete_merges(d.path(), "vm", &|s| s != "s1").is_empty());
        let j = JournalWriter::start(d.path(), "vm", "fold", &|s| s != "s1").unwrap();
        assert!(j.journal.incomplete_merges.is_empty());
    }

    #[test]
    fn old_journals_without_kinds_still_show_their_merges() {
        let text = "run = \"fold\"\nstarted = \"t\"\n[[entries]]\nstep = \"merge snapshot {s} 'current'\"\nvm = \"vm\"\nsnapshot = \"s\"\nstarted = \"t\"\noutcome = \"failed: x\"\n";
        let j: Journal = toml::from_str(text).unwrap();
        assert_eq!(j.incomplete_merges().len(), 1);
        assert_eq!(j.failed().unwrap().snapshot.as_deref(), Some("s"));
    }

    #[test]
    fn state_round_trips_and_starts_empty() {
        let d = tempfile::tempdir().unwrap();
        assert_eq!(load(d.path(), "u-1").unwrap(), VmState::default());
        let s = VmState {
            last_fold: Some(LastFold {
                finished: "2026-11-26T07:00:00Z".into(),
                duration_ms: 1234,
                bytes_merged: 4 << 20,
                snapshot: "s".into(),
                restore_points: 1,
            }),
        };
        save(d.path(), "u-1", &s).unwrap();
        assert_eq!(load(d.path(), "u-1").unwrap(), s);
        assert!(!dir(d.path(), "u-1").join("state.tmp").exists());
    }

    #[test]
    fn journal_records_unfinished_steps() {
        let d = tempfile::tempdir().unwrap();
        let mut j = JournalWriter::start(d.path(), "vm", "fold", &|_| true).unwrap();
        let out = j
            .step("take", "take".into(), "vm", None, || Ok(7), &NEVER)
            .unwrap();
        assert_eq!(out, 7);
        let failed = j.step(
            "rename",
            "rename".into(),
            "vm",
            None,
            || -> Result<()> { anyhow::bail!("boom") },
            &NEVER,
        );
        assert!(failed.is_err());
        j.begin(MERGE, "delete snapshot {s}".into(), "vm", Some("s"))
            .unwrap();
        // The process dies here: the next run reads the journal.
        let read = load_journal(d.path(), "vm").unwrap();
        assert_eq!(read.run, "fold");
        assert_eq!(read.entries[0].outcome.as_deref(), Some("ok"));
        assert_eq!(read.entries[1].outcome.as_deref(), Some("failed: boom"));
        assert_eq!(read.unfinished().unwrap().snapshot.as_deref(), Some("s"));
        j.end("ok").unwrap();
        assert!(load_journal(d.path(), "vm").unwrap().unfinished().is_none());
    }

    #[test]
    fn the_last_steps_success_is_written_when_the_writer_goes() {
        let d = tempfile::tempdir().unwrap();
        let mut j = JournalWriter::start(d.path(), "vm", "fold", &|_| true).unwrap();
        j.step("take", "take".into(), "vm", None, || Ok(()), &NEVER)
            .unwrap();
        j.step(MERGE, "delete".into(), "vm", Some("s"), || Ok(()), &NEVER)
            .unwrap();
        // Each step's intent is on disk before it runs.
        let mid = load_journal(d.path(), "vm").unwrap();
        assert_eq!(mid.entries.len(), 2);
        assert_eq!(mid.entries[0].outcome.as_deref(), Some("ok"));
        drop(j);
        let read = load_journal(d.path(), "vm").unwrap();
        assert!(read.unfinished().is_none(), "{read:?}");
    }

    #[test]
    fn settings_backups_copy_both_files_and_keep_the_newest() {
        let d = tempfile::tempdir().unwrap();
        let vmdir = d.path().join("My VM");
        std::fs::create_dir_all(&vmdir).unwrap();
        let cfg = vmdir.join("My VM.vbox");
        std::fs::write(&cfg, "settings").unwrap();
        std::fs::write(vmdir.join("My VM.vbox-prev"), "previous").unwrap();
        let mut made = Vec::new();
        for _ in 0..4 {
            made.push(backup_settings(d.path(), "vm", &cfg, 3).unwrap());
        }
        let all = settings_backups(d.path(), "vm");
        assert_eq!(all.len(), 3);
        assert_eq!(all.last(), made.last());
        let newest = all.last().unwrap();
        assert_eq!(
            std::fs::read_to_string(newest.join("My VM.vbox")).unwrap(),
            "settings"
        );
        assert_eq!(
            std::fs::read_to_string(newest.join("My VM.vbox-prev")).unwrap(),
            "previous"
        );
        assert!(!made[0].exists(), "the oldest was pruned");
        assert!(backup_settings(d.path(), "vm", &vmdir.join("none.vbox"), 3).is_err());
    }

    fn vm_files(d: &Path) -> PathBuf {
        let vmdir = d.join("My VM");
        std::fs::create_dir_all(&vmdir).unwrap();
        let cfg = vmdir.join("My VM.vbox");
        std::fs::write(&cfg, "settings").unwrap();
        cfg
    }

    #[test]
    fn pruning_deletes_only_vblaunchs_own_backups() {
        let d = tempfile::tempdir().unwrap();
        let cfg = vm_files(d.path());
        let root = dir(d.path(), "vm").join("settings-backups");
        std::fs::create_dir_all(&root).unwrap();
        // The user's folders: a foreign name, and a vblaunch-like name with
        // a file vblaunch never writes.
        let notes = root.join("0-my-notes");
        std::fs::create_dir(&notes).unwrap();
        std::fs::write(notes.join("todo.txt"), "mine").unwrap();
        let lookalike = root.join("2000-01-01T00-00-00Z");
        std::fs::create_dir(&lookalike).unwrap();
        std::fs::write(lookalike.join("photo.jpg"), "mine").unwrap();
        for _ in 0..5 {
            backup_settings(d.path(), "vm", &cfg, 2).unwrap();
        }
        assert!(notes.join("todo.txt").exists());
        assert!(lookalike.join("photo.jpg").exists());
        assert_eq!(settings_backups(d.path(), "vm").len(), 2);
    }

    #[test]
    fn backups_sort_by_time_then_number() {
        assert!(
            backup_name_key("2026-12-01T14-14-50Z-10") > backup_name_key("2026-12-01T14-14-50Z-9")
        );
        assert!(backup_name_key("2026-12-01T14-14-50Z-doctor").is_some());
        assert!(backup_name_key("2026-12-01T14-14-50Z-doctor-3").is_some());
        for bad in [
            "0-my-notes",
            "2026-12-01T14-14-50Z-1",
            "2026-12-01T14-14-50Zx",
            "2026-12-01T14-14-50Z-",
        ] {
            assert_eq!(backup_name_key(bad), None, "{bad}");
        }
    }

    #[cfg(unix)]
    #[test]
    fn a_linked_backup_folder_is_refused_and_what_it_points_at_kept() {
        let d = tempfile::tempdir().unwrap();
        let cfg = vm_files(d.path());
        let projects = d.path().join("projects");
        for p in ["2000-01-01T00-00-00Z", "2000-01-01T00-00-01Z"] {
            std::fs::create_dir_all(projects.join(p)).unwrap();
            std::fs::write(projects.join(p).join("x.vbox"), "a project").unwrap();
        }
        let vmdir = dir(d.path(), "vm");
        std::fs::create_dir_all(&vmdir).unwrap();
        let root = vmdir.join("settings-backups");
        std::os::unix::fs::symlink(&projects, &root).unwrap();
        let err = backup_settings(d.path(), "vm", &cfg, 1).unwrap_err();
        assert!(
            format!("{err:#}").contains(&root.display().to_string()),
            "{err:#}"
        );
        assert_eq!(std::fs::read_dir(&projects).unwrap().count(), 2);
        assert!(settings_backups(d.path(), "vm").is_empty());
    }

    #[cfg(unix)]
    #[test]
    fn backups_are_private_and_never_wider_than_the_source() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let cfg = vm_files(d.path());
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o644)).unwrap();
        let b = backup_settings(d.path(), "vm", &cfg, 1).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&b.join("My VM.vbox")), 0o600);
        assert_eq!(mode(&b), 0o700);
        assert_eq!(mode(&dir(d.path(), "vm")), 0o700);
        std::fs::set_permissions(&cfg, std::fs::Permissions::from_mode(0o400)).unwrap();
        let b = backup_settings(d.path(), "vm", &cfg, 1).unwrap();
        assert_eq!(mode(&b.join("My VM.vbox")), 0o400);
    }
}
