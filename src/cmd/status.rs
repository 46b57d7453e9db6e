//! `vblaunch status [VM] [--json]`: for one VM or all, what a user (or a
//! backup script) needs to know: the chain base → restore points → current,
//! sizes, the last fold, and whether the base disks may be copied right now.
//!
//! The report is built by a pure function from what VirtualBox says plus a
//! few facts vblaunch knows (lock held, state file, file sizes), so every
//! answer is tested without VirtualBox. `--json` prints the same report;
//! its field names are stable (`schema` changes if they ever must).
use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::cli::StatusArgs;
use crate::guard::{FrontEnd, Scanner};
use crate::snapshots;
use crate::state::LastFold;
use crate::vbox::media::{self, Medium};
use crate::vbox::VmInfo;
use crate::Context;

pub const SCHEMA: u32 = 1;

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: u32,
    pub vms: Vec<VmStatus>,
    /// VirtualBox front ends running now (vblaunch waits for them before a fold).
    pub front_ends_running: Vec<FrontEnd>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct Disk {
    pub path: String,
    pub size_bytes: Option<u64>,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct SnapshotStatus {
    pub name: String,
    pub uuid: String,
    /// Taken by vblaunch (carries its marker); otherwise the user's.
    pub vblaunch: bool,
    /// When vblaunch took it (ISO 8601), from its marker.
    pub taken: Option<String>,
    /// Size on disk of what was written after it was taken (all disks).
    pub changes_bytes: Option<u64>,
    pub current: bool,
}

#[derive(Debug, Serialize, PartialEq)]
pub struct VmStatus {
    pub name: String,
    pub uuid: String,
    pub state: String,
    /// vblaunch has snapshots on this VM.
    pub managed: bool,
    pub restore_points: usize,
    pub safe_to_back_up: bool,
    pub safe_reason: String,
    pub fold_in_progress: bool,
    /// Merges that started and did not complete (the disk they merge into
    /// may be partly merged until a fold completes them).
    pub incomplete_merges: Vec<crate::state::IncompleteMerge>,
    pub base_disks: Vec<Disk>,
    /// The snapshots from the oldest to the current one.
    pub chain: Vec<SnapshotStatus>,
    /// Snapshots not on the path to the current state (branches).
    pub other_snapshots: Vec<SnapshotStatus>,
    pub last_fold: Option<LastFold>,
    pub warnings: Vec<String>,
}

/// The report for one VM (pure).
pub fn vm_status(
    vm: &VmInfo,
    media: &[Medium],
    snapshot_name: &str,
    last_fold: Option<LastFold>,
    fold_in_progress: bool,
    incomplete_merges: &[crate::state::IncompleteMerge],
    size: &dyn Fn(&Path) -> Option<u64>,
) -> VmStatus {
    let mut warnings = Vec::new();
    let mut missing = Vec::new();
    let (own, off) = snapshots::own_snapshots(vm, snapshot_name, false);
    let path = snapshots::current_path(vm);
    let diffs = snapshots::path_diffs(vm, media);
    if diffs.is_none() && !path.is_empty() {
        warnings.push(
            "the disk chain does not match the snapshot tree; sizes are not shown".to_string(),
        );
    }
    let status_of = |i: usize| {
        let s = &vm.snapshots[i];
        let changes = diffs.as_ref().and_then(|d| {
            d.iter()
                .find(|(j, _)| *j == i)
                .map(|(_, ms)| ms.iter().filter_map(|m| size(&m.location)).sum())
        });
        SnapshotStatus {
            name: s.name.clone(),
            uuid: s.uuid.clone(),
            vblaunch: snapshots::is_own(vm, s),
            taken: snapshots::taken_at(s).map(str::to_string),
            changes_bytes: changes,
            current: vm.current_snapshot.as_deref() == Some(s.uuid.as_str()),
        }
    };
    let chain: Vec<SnapshotStatus> = path.iter().map(|&i| status_of(i)).collect();
    let other: Vec<SnapshotStatus> = (0..vm.snapshots.len())
        .filter(|i| !path.contains(i))
        .map(status_of)
        .collect();

    // Media: every disk's chain must be readable.
    let mut base_disks = Vec::new();
    let mut attached_diff = true;
    let mut disks = 0;
    for att in &vm.attachments {
        let Some(m) = media.iter().find(|m| m.uuid == att.image_uuid) else {
            continue;
        };
        disks += 1;
        attached_diff &= m.is_differencing();
        for link in media::chain(media, &m.uuid) {
            match link {
                Ok(x) if !x.is_accessible() || size(&x.location).is_none() => {
                    missing.push(x.location.display().to_string());
                    warnings.push(format!(
                    "disk image {} is missing or inaccessible (VirtualBox: {}); restore it from \
                     your backup before the next launch",
                    x.location.display(),
                    x.state
                ))
                }
                Ok(x) if x.parent.is_none() => base_disks.push(Disk {
                    path: x.location.display().to_string(),
                    size_bytes: size(&x.location),
                }),
                Ok(_) => {}
                Err(u) => warnings.push(format!(
                    "a disk image {{{u}}} of slot {} is not in VirtualBox's media registry",
                    att.slot()
                )),
            }
        }
    }
    let mut names: Vec<&str> = vm.snapshots.iter().map(|s| s.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    for n in names {
        let count = vm.snapshots.iter().filter(|s| s.name == n).count();
        if count > 1 {
            warnings.push(format!("{count} snapshots are named '{n}'"));
        }
    }
    if !off.is_empty() {
        warnings.push(format!(
            "{} vblaunch snapshot(s) are not on the path to the current state; the next launch will refuse",
            off.len()
        ));
    }
    let current_own = vm.current().is_some_and(|c| snapshots::is_own(vm, c));
    let incomplete: Vec<crate::state::IncompleteMerge> = incomplete_merges
        .iter()
        .filter(|m| vm.snapshot(&m.snapshot).is_some())
        .cloned()
        .collect();
    let (safe, reason) = if fold_in_progress {
        (
            false,
            "vblaunch is working on this VM right now (a fold or restore is in progress)"
                .to_string(),
        )
    } else if let Some(m) = incomplete.first() {
        let name = vm
            .snapshot(&m.snapshot)
            .map(|s| s.name.as_str())
            .unwrap_or("?");
        (
            false,
            format!(
                "a merge of snapshot '{name}' {{{}}} started {} and did not complete ({}): the \
                 disk it merges into may be partly merged. Run `vblaunch fold {}` to complete it",
                m.snapshot,
                m.started,
                m.outcome.lines().next().unwrap_or_default(),
                crate::process::quote(&vm.name)
            ),
        )
    } else if !missing.is_empty() {
        (
            false,
            format!(
                "disk image {} is missing or inaccessible; a backup would not hold the whole disk",
                missing.join(", ")
            ),
        )
    } else if disks == 0 {
        (false, "the VM has no hard disk".to_string())
    } else if vm.state.allows_fold() {
        (
            true,
            format!(
                "the VM is not running (state: {}), so nothing writes to its disks",
                vm.state
            ),
        )
    } else if vm.state.is_running() {
        if attached_diff && current_own {
            (
                true,
                "the VM writes to the differencing image of vblaunch's snapshot; the base disks are frozen".to_string(),
            )
        } else if attached_diff {
            (
                true,
                "the VM writes to a snapshot's differencing image; the base disks are frozen (the snapshot is not vblaunch's)".to_string(),
            )
        } else {
            (
                false,
                "the VM runs without a snapshot and writes straight into its base disk; start it with vblaunch".to_string(),
            )
        }
    } else {
        (
            false,
            format!(
                "VirtualBox is changing the VM right now (state: {})",
                vm.state
            ),
        )
    };
    VmStatus {
        name: vm.name.clone(),
        uuid: vm.uuid.clone(),
        state: vm.state.to_string(),
        managed: !own.is_empty(),
        restore_points: own.len().saturating_sub(1),
        safe_to_back_up: safe,
        safe_reason: reason,
        fold_in_progress,
        incomplete_merges: incomplete,
        base_disks,
        chain,
        other_snapshots: other,
        last_fold,
        warnings,
    }
}

pub fn render_text(r: &Report) -> String {
    let mut out = String::new();
    for v in &r.vms {
        out.push_str(&format!("VM '{}' {{{}}}: {}\n", v.name, v.uuid, v.state));
        out.push_str(&format!(
            "  safe to back up: {}, because {}\n",
            if v.safe_to_back_up { "yes" } else { "no" },
            v.safe_reason
        ));
        for d in &v.base_disks {
            out.push_str(&format!(
                "  base disk  {} ({})\n",
                d.path,
                crate::units::human_or_unknown(d.size_bytes)
            ));
        }
        for s in &v.chain {
            let who = if s.vblaunch {
                if s.current {
                    "current      "
                } else {
                    "restore point"
                }
            } else {
                "your snapshot"
            };
            let taken = s
                .taken
                .as_deref()
                .map(|t| format!(", taken {t}"))
                .unwrap_or_default();
            out.push_str(&format!(
                "  {who} '{}' {{{}}}{taken}, changes since: {}\n",
                s.name,
                s.uuid,
                crate::units::human_or_unknown(s.changes_bytes)
            ));
        }
        for s in &v.other_snapshots {
            out.push_str(&format!("  (other branch) '{}' {{{}}}\n", s.name, s.uuid));
        }
        if !v.managed {
            out.push_str(
                "  not managed by vblaunch yet (the first `vblaunch` run takes its snapshot)\n",
            );
        }
        match &v.last_fold {
            Some(f) => out.push_str(&format!(
                "  last fold: {} ({:.1} s, {} merged)\n",
                f.finished,
                f.duration_ms as f64 / 1000.0,
                crate::units::human(f.bytes_merged)
            )),
            None => out.push_str("  last fold: none recorded\n"),
        }
        for w in &v.warnings {
            out.push_str(&format!("  warning: {w}\n"));
        }
    }
    if !r.front_ends_running.is_empty() {
        out.push_str(&format!(
            "VirtualBox is running: {} (a launch waits for it to close)\n",
            crate::guard::describe(&r.front_ends_running)
        ));
    }
    out
}

pub fn run(ctx: &Context, args: StatusArgs) -> Result<()> {
    let key = args.vm.as_deref().unwrap_or("");
    let eff0 = ctx.effective(&[key]);
    let vb = ctx.vbox(&eff0)?;
    // One VM: its two reads. All VMs: the media registry once, then each VM
    // (an unreadable one is a warning, not the end).
    let (read, media): (Vec<(String, VmInfo)>, Vec<Medium>) = match &args.vm {
        Some(v) => {
            let (vm, media) = vb.read_vm(v)?;
            (vec![(v.clone(), vm)], media)
        }
        None => {
            let media = vb.list_hdds()?;
            let mut read = Vec::new();
            for (_, uuid) in vb.list_vms()? {
                match vb.show_vm_info(&uuid) {
                    Ok(vm) => read.push((uuid, vm)),
                    Err(e) => log::warn!("{e:#}"),
                }
            }
            (read, media)
        }
    };
    let mut vms = Vec::new();
    let read: Vec<(String, VmInfo)> = read
        .into_iter()
        .map(|(t, mut vm)| {
            // A take the journal knows but could not record is vblaunch's.
            crate::engine::open::add_journal_takes(&ctx.data_dir, &mut vm);
            (t, vm)
        })
        .collect();
    for (t, vm) in &read {
        let eff = ctx.effective(&[t, &vm.name, &vm.uuid]);
        let last = match crate::state::load(&ctx.data_dir, &vm.uuid) {
            Ok(s) => s.last_fold,
            Err(e) => {
                log::warn!("{e:#}");
                None
            }
        };
        let busy = crate::lock::is_held(&ctx.locks_dir(), &vm.uuid)
            || crate::lock::is_held(&ctx.locks_dir(), &vm.name);
        let incomplete =
            crate::state::incomplete_merges(&ctx.data_dir, &vm.uuid, &|u| vm.snapshot(u).is_some());
        vms.push(vm_status(
            vm,
            &media,
            &eff.snapshot_name,
            last,
            busy,
            &incomplete,
            &|p| std::fs::metadata(p).ok().map(|m| m.len()),
        ));
    }
    let running: Vec<FrontEnd> = Scanner::new()?.scan(&eff0.guard_processes)?;
    let report = Report {
        schema: SCHEMA,
        vms,
        front_ends_running: running,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{}", render_text(&report));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vbox::vminfo::{Attachment, Snapshot};

    fn m(uuid: &str, parent: Option<&str>) -> Medium {
        crate::vbox::media::test_medium(uuid, parent, format!("/v/{uuid}.vdi"), Some(64))
    }

    fn snap(name: &str, uuid: &str, parent: Option<usize>, marked: bool) -> Snapshot {
        Snapshot {
            name: name.into(),
            uuid: uuid.into(),
            description: marked.then(|| snapshots::description("2026-11-26T06:00:00Z")),
            node: String::new(),
            parent,
            children: vec![],
        }
    }

    /// base <- d1 (after 'previous') <- d2 (after 'current', the current state)
    fn vm(state: &str) -> (VmInfo, Vec<Medium>) {
        let mut s = vec![
            snap("previous", "p", None, true),
            snap("current", "c", Some(0), true),
        ];
        s[0].children.push(1);
        let vm = VmInfo {
            name: "Dev".into(),
            uuid: "vm".into(),
            accessible: true,
            state: state.into(),
            attachments: vec![Attachment {
                controller: "SATA".into(),
                port: 0,
                device: 0,
                location: "/v/d2.vdi".into(),
                image_uuid: "d2".into(),
            }],
            snapshots: s,
            current_snapshot: Some("c".into()),
            ..Default::default()
        };
        (
            vm,
            vec![m("b", None), m("d1", Some("b")), m("d2", Some("d1"))],
        )
    }

    fn sizes(p: &Path) -> Option<u64> {
        match p.to_str()? {
            "/v/b.vdi" => Some(1 << 30),
            "/v/d1.vdi" => Some(4 << 20),
            "/v/d2.vdi" => Some(2 << 20),
            _ => None,
        }
    }

    #[test]
    fn running_on_vblaunch_snapshot_is_safe_and_sizes_map_to_snapshots() {
        let (v, media) = vm("running");
        let s = vm_status(&v, &media, "current", None, false, &[], &sizes);
        assert!(s.safe_to_back_up, "{}", s.safe_reason);
        assert!(s.safe_reason.contains("base disks are frozen"));
        assert_eq!(s.restore_points, 1);
        assert_eq!(
            s.base_disks,
            [Disk {
                path: "/v/b.vdi".into(),
                size_bytes: Some(1 << 30)
            }]
        );
        assert_eq!(s.chain[0].changes_bytes, Some(4 << 20));
        assert_eq!(s.chain[1].changes_bytes, Some(2 << 20));
        assert!(s.chain[1].current && s.chain[1].vblaunch);
        assert_eq!(s.chain[0].taken.as_deref(), Some("2026-11-26T06:00:00Z"));
        assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    }

    #[test]
    fn off_is_safe_folding_is_not_and_running_on_the_base_is_not() {
        let (v, media) = vm("poweroff");
        assert!(vm_status(&v, &media, "current", None, false, &[], &sizes).safe_to_back_up);
        let s = vm_status(&v, &media, "current", None, true, &[], &sizes);
        assert!(!s.safe_to_back_up && s.safe_reason.contains("in progress"));
        let (mut v, media) = vm("running");
        v.snapshots.clear();
        v.current_snapshot = None;
        v.attachments[0].image_uuid = "b".into();
        let s = vm_status(&v, &media, "current", None, false, &[], &sizes);
        assert!(
            !s.safe_to_back_up && s.safe_reason.contains("straight into its base disk"),
            "{}",
            s.safe_reason
        );
        let (v, media) = vm("saving");
        assert!(!vm_status(&v, &media, "current", None, false, &[], &sizes).safe_to_back_up);
    }

    #[test]
    fn an_incomplete_merge_is_never_safe_whatever_the_state() {
        let m = crate::state::IncompleteMerge {
            snapshot: "p".into(),
            step: "merge snapshot {p} 'previous'".into(),
            started: "2026-12-01T08:00:00Z".into(),
            outcome: "failed: NS_ERROR_ABORT".into(),
        };
        for state in ["poweroff", "running", "saved"] {
            let (v, media) = vm(state);
            let s = vm_status(
                &v,
                &media,
                "current",
                None,
                false,
                std::slice::from_ref(&m),
                &sizes,
            );
            assert!(!s.safe_to_back_up, "{state}");
            assert!(
                s.safe_reason.contains("{p}")
                    && s.safe_reason.contains("did not complete")
                    && s.safe_reason.contains("vblaunch fold"),
                "{}",
                s.safe_reason
            );
            assert_eq!(s.incomplete_merges, std::slice::from_ref(&m));
        }
        // Its snapshot is gone: VirtualBox completed the merge.
        let gone = crate::state::IncompleteMerge {
            snapshot: "elsewhere".into(),
            ..m
        };
        let (v, media) = vm("poweroff");
        let s = vm_status(&v, &media, "current", None, false, &[gone], &sizes);
        assert!(
            s.safe_to_back_up && s.incomplete_merges.is_empty(),
            "{}",
            s.safe_reason
        );
    }

    #[test]
    fn a_missing_diff_file_is_a_warning_not_a_crash() {
        let (v, media) = vm("poweroff");
        let s = vm_status(&v, &media, "current", None, false, &[], &|p| {
            if p.ends_with("d2.vdi") {
                None
            } else {
                sizes(p)
            }
        });
        assert!(
            s.warnings
                .iter()
                .any(|w| w.contains("/v/d2.vdi") && w.contains("missing")),
            "{:?}",
            s.warnings
        );
        assert!(!s.safe_to_back_up);
        assert!(
            s.safe_reason.contains("/v/d2.vdi is missing")
                && !s.safe_reason.contains("nothing writes"),
            "the reason is the missing disk: {}",
            s.safe_reason
        );
        let text = render_text(&Report {
            schema: SCHEMA,
            vms: vec![s],
            front_ends_running: vec![],
        });
        assert!(text.contains("warning: disk image /v/d2.vdi"), "{text}");
    }

    #[test]
    fn json_fields_are_stable() {
        let (v, media) = vm("running");
        let s = vm_status(&v, &media, "current", None, false, &[], &sizes);
        let r = Report {
            schema: SCHEMA,
            vms: vec![s],
            front_ends_running: vec![],
        };
        let j: serde_json::Value = serde_json::to_value(&r).unwrap();
        assert_eq!(j["schema"], 1);
        let vm = &j["vms"][0];
        for key in [
            "name",
            "uuid",
            "state",
            "managed",
            "restore_points",
            "safe_to_back_up",
            "safe_reason",
            "fold_in_progress",
            "incomplete_merges",
            "base_disks",
            "chain",
            "other_snapshots",
            "last_fold",
            "warnings",
        ] {
            assert!(vm.get(key).is_some(), "missing {key}");
        }
        for key in [
            "name",
            "uuid",
            "vblaunch",
            "taken",
            "changes_bytes",
            "current",
        ] {
            assert!(vm["chain"][0].get(key).is_some(), "missing chain.{key}");
        }
        assert!(j["front_ends_running"].is_array());
    }
}
