//! The read before a fold in ONE VBoxManage call, checked against the VM's
//! settings file; anything unusual falls back to the full read
//! (`showvminfo` + `list hdds`).
//!
//! Why: `showvminfo --machinereadable` is VirtualBox's most expensive read
//! (70–90 ms here, a few hundred IPC round trips: every setting and every
//! port of every controller), and the fold needs little of it. The snapshot
//! tree, the attachments, the saved/aborted state and the VM's media registry
//! are in its `.vbox` file, which VirtualBox saves before every snapshot call
//! returns. What only VBoxSVC knows comes from
//! `list --multiple vms runningvms hdds` (about 30 ms, like a bare call):
//! - `vms`: the VM is registered, and which one a name means (a name that two
//!   VMs share, or an inaccessible VM, sends the read down the full path);
//! - `runningvms`: a running or paused VM goes the full path, which refuses
//!   it with its exact state;
//! - `hdds`: every disk's live state and chain, which must equal the file's
//!   chain, with the attached image a leaf (after any later snapshot call a
//!   stale file fails this). A disk that is `inaccessible` (a deleted diff)
//!   goes on to the plan, which refuses it by name; one that is `locked
//!   write`/`locked read` sends the read down the full path: VirtualBox
//!   locks a VM's disks while the VM is in any online state (starting,
//!   saving, …) and while it works on them offline (a merge that outlived a
//!   killed vblaunch, a clone), and the full read names that state.
//!
//! What this read does not see: a session held on a powered-off VM with no
//! operation running (`SessionName`, e.g. the Manager's settings dialog).
//! The Manager and every VM front end are what the process scan looks for,
//! so "auto" uses the quick read only when that scan watched every default
//! front end and found none. A plain API client's lock shows in neither
//! read: measured on 7.2.22, `showvminfo` prints no `SessionName` for a
//! Python client holding the write lock, and `snapshot take` succeeds.
use std::path::PathBuf;

use super::media::{self, Medium};
use super::settings::Settings;
use super::vminfo::VmInfo;

/// The one call: `VBoxManage list --multiple vms runningvms hdds`.
pub const ARGS: [&str; 5] = ["list", "--multiple", "vms", "runningvms", "hdds"];

/// VBoxSVC's answer to [`ARGS`].
#[derive(Debug)]
pub struct Listing {
    /// Registered VMs, (name, uuid); an unreadable one is named `<inaccessible>`.
    pub vms: Vec<(String, String)>,
    /// UUIDs of running or paused VMs.
    pub running: Vec<String>,
    pub media: Vec<Medium>,
}

/// Split the `[vms]`, `[runningvms]`, `[hdds]` sections (each exactly once,
/// in that order). A line in `vms`/`runningvms` that is not `"name" {uuid}`
/// (a name with a line break in it) makes the whole listing unusable.
pub fn parse(text: &str) -> Result<Listing, String> {
    if let Some(why) = super::vminfo::incomplete(text) {
        return Err(why);
    }
    let mut sections: Vec<(&str, Vec<&str>)> = Vec::new();
    for line in text.lines() {
        match line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            Some(h) if !h.is_empty() && h.bytes().all(|b| b.is_ascii_lowercase()) => {
                sections.push((h, Vec::new()))
            }
            _ => match sections.last_mut() {
                Some((_, lines)) => lines.push(line),
                None => return Err(format!("text before the first section: {line:?}")),
            },
        }
    }
    let names: Vec<&str> = sections.iter().map(|(h, _)| *h).collect();
    if names != ["vms", "runningvms", "hdds"] {
        return Err(format!("sections {names:?}, not [vms, runningvms, hdds]"));
    }
    let vm_lines = |lines: &[&str]| -> Result<Vec<(String, String)>, String> {
        lines
            .iter()
            .filter(|l| !l.is_empty())
            .map(|l| {
                let v = super::parse_list_vms(l);
                match v.as_slice() {
                    [(name, uuid)] if crate::vbox::state::is_uuid(uuid) => {
                        Ok((name.clone(), uuid.to_ascii_lowercase()))
                    }
                    _ => Err(format!("not a VM line: {l:?}")),
                }
            })
            .collect()
    };
    Ok(Listing {
        vms: vm_lines(&sections[0].1)?,
        running: vm_lines(&sections[1].1)?
            .into_iter()
            .map(|(_, u)| u)
            .collect(),
        media: media::parse(&sections[2].1.join("\n")),
    })
}

impl Listing {
    /// (name, uuid) of the VM `arg` means, as `VBoxManage` would pick it: by
    /// UUID, else by name. Only an unambiguous answer counts.
    pub fn resolve(&self, arg: &str) -> Result<(String, String), String> {
        if crate::vbox::state::is_uuid(arg) {
            let u = arg
                .trim_matches(|c| c == '{' || c == '}')
                .to_ascii_lowercase();
            return match self.vms.iter().find(|(_, v)| *v == u) {
                Some(vm) => Ok(vm.clone()),
                None => Err(format!("no registered VM has the UUID {u}")),
            };
        }
        if self.vms.iter().any(|(n, _)| n == "<inaccessible>") {
            return Err("an inaccessible VM is registered (its name is unknown)".into());
        }
        let mut hits = self.vms.iter().filter(|(n, _)| n == arg);
        match (hits.next(), hits.next()) {
            (Some(vm), None) => Ok(vm.clone()),
            (None, _) => Err(format!("no registered VM is named '{arg}'")),
            (Some(_), Some(_)) => Err(format!("more than one VM is named '{arg}'")),
        }
    }

    /// The VM as its settings file describes it, with the live media, if
    /// the file and VBoxSVC agree on everything the fold depends on.
    pub fn confirm(
        &self,
        name: &str,
        uuid: &str,
        s: Settings,
    ) -> Result<(VmInfo, Vec<Medium>), String> {
        if s.vm.uuid != uuid || s.vm.name != name {
            return Err(format!(
                "the settings file describes '{}' {{{}}}, VirtualBox lists '{name}' {{{uuid}}}",
                s.vm.name, s.vm.uuid
            ));
        }
        if self.running.iter().any(|u| u == uuid) {
            return Err("VirtualBox lists the VM as running".into());
        }
        s.complete()?;
        for a in &s.vm.attachments {
            let file = media::chain(&s.media, &a.image_uuid);
            let live = media::chain(&self.media, &a.image_uuid);
            let same = file.len() == live.len()
                && file.iter().zip(&live).all(|(f, l)| match (f, l) {
                    (Ok(f), Ok(l)) => {
                        f.uuid == l.uuid && f.parent == l.parent && f.location == l.location
                    }
                    _ => false,
                });
            if !same {
                return Err(format!(
                    "the disk chain of slot {} in the settings file differs from VirtualBox's",
                    a.slot()
                ));
            }
            // `locked write`/`locked read`: VBoxSVC is working on the disk (a
            // merge that outlived a killed vblaunch, a clone). The VM is then
            // in a transient state that only the full read shows.
            if let Some(m) = live.iter().flatten().find(|m| !m.state.is_idle()) {
                return Err(format!(
                    "disk {} is '{}' in VirtualBox (an operation is in progress)",
                    m.location.display(),
                    m.state
                ));
            }
            if self
                .media
                .iter()
                .any(|m| m.parent.as_deref() == Some(a.image_uuid.as_str()))
            {
                return Err(format!(
                    "the image attached at slot {} has a child in VirtualBox's registry \
                     (the settings file may be older than VirtualBox's view)",
                    a.slot()
                ));
            }
        }
        Ok((s.vm, self.media.clone()))
    }
}

/// The settings file VirtualBox.xml registers for `uuid`.
pub fn settings_path(homes: &[PathBuf], uuid: &str) -> Result<PathBuf, String> {
    super::settings::machine_registry(homes)?
        .ok_or("no VirtualBox.xml found")?
        .into_iter()
        .find(|(u, _)| u == uuid)
        .map(|(_, p)| p)
        .ok_or_else(|| format!("VirtualBox.xml has no entry for {{{uuid}}}"))
}

/// Every step of the quick read after the call: resolve, locate, read, confirm.
pub fn assess(
    arg: &str,
    listing_text: &str,
    homes: &[PathBuf],
) -> Result<(VmInfo, Vec<Medium>), String> {
    let listing = parse(listing_text)?;
    let (name, uuid) = listing.resolve(arg)?;
    let path = settings_path(homes, &uuid)?;
    let settings = super::settings::read(&path)?;
    listing.confirm(&name, &uuid, settings)
}

#[cfg(test)]
mod tests {
    use super::*;

    use std::path::Path;

    use crate::fixture;

    const RICH_UUID: &str = "6a98fdef-0c74-412b-81ee-1b99ad77b9d0";
    const RICH_NAME: &str = "Rich \"VM\" \u{fc}";

    fn rich_settings() -> Settings {
        let cfg = Path::new("/tmp/exp/vms2/Rich _VM_ \u{fc}/Rich _VM_ \u{fc}.vbox");
        super::super::settings::parse(&fixture("47-real-settings.vbox"), cfg).unwrap()
    }

    /// A real 7.2.22 recording of the one call, made with the VM of the
    /// 47- fixtures registered, at the same moment as its settings file.
    #[test]
    fn the_quick_read_equals_the_full_read_on_a_real_vm() {
        let l = parse(&fixture("48-real-list-multiple.stdout")).unwrap();
        assert_eq!(l.vms, [(RICH_NAME.to_string(), RICH_UUID.to_string())]);
        assert!(l.running.is_empty());
        let (name, uuid) = l.resolve(RICH_NAME).unwrap();
        assert_eq!(l.resolve(&uuid.to_uppercase()).unwrap().0, name);
        let (vm, media) = l.confirm(&name, &uuid, rich_settings()).unwrap();

        let full =
            super::super::vminfo::parse(&fixture("47-real-settings-showvminfo.stdout")).unwrap();
        let full_media = media::parse(&fixture("47-real-settings-listhdds.stdout"));
        assert_eq!(media, full_media);
        assert_eq!(vm.snapshots, full.snapshots);
        assert_eq!(vm.current_snapshot, full.current_snapshot);
        assert_eq!(vm.attachments, full.attachments);
        assert_eq!(vm.state, full.state);
        assert_eq!((vm.name, vm.uuid), (full.name, full.uuid));
    }

    #[test]
    fn a_listing_cut_off_by_the_locale_is_not_read() {
        // Real 7.2.22 under LC_ALL=C: `"Dev Box ` and nothing after it.
        let e = parse(&fixture("52-lc-c-list-multiple.stdout")).unwrap_err();
        assert!(e.contains("cut off after `\"Dev Box `"), "{e}");
    }

    #[test]
    fn virtualbox_xml_locates_the_settings_file() {
        let home = std::env::temp_dir().join(format!("vblaunch-quick-{}", std::process::id()));
        std::fs::create_dir_all(&home).unwrap();
        std::fs::write(
            home.join("VirtualBox.xml"),
            fixture("48-real-VirtualBox.xml"),
        )
        .unwrap();
        let missing = home.join("missing");
        let homes = [missing.clone(), home.clone()];
        // On Windows a path without a drive is on the home's drive: join
        // gives exactly that (and the path itself elsewhere).
        let src = Path::new("/tmp/exp/vms2/Rich _VM_ \u{fc}/Rich _VM_ \u{fc}.vbox");
        assert_eq!(settings_path(&homes, RICH_UUID).unwrap(), home.join(src));
        let e = settings_path(&homes, "00000000-0000-0000-0000-000000000000").unwrap_err();
        assert!(e.contains("has no entry"), "{e}");
        assert!(settings_path(&[missing], RICH_UUID).is_err());
        std::fs::remove_dir_all(&home).unwrap();
    }

    fn listing(vms: &str, running: &str, hdds: &str) -> String {
        format!("[vms]\n{vms}\n[runningvms]\n{running}\n[hdds]\n{hdds}")
    }

    #[test]
    fn a_malformed_listing_is_refused() {
        let hdds = fixture("47-real-settings-listhdds.stdout");
        let vm = format!("\"{RICH_NAME}\" {{{RICH_UUID}}}\n");
        assert!(parse(&listing(&vm, "", &hdds)).is_ok());
        // An older VBoxManage without --multiple prints one list, no sections.
        assert!(parse(&hdds).is_err());
        assert!(parse(&format!("[vms]\n{vm}\n[hdds]\n{hdds}")).is_err());
        assert!(parse(&format!("{}[vms]\n", listing(&vm, "", &hdds))).is_err());
        // A name with a line break splits its line.
        assert!(parse(&listing(
            "\"a\nb\" {6a98fdef-0c74-412b-81ee-1b99ad77b9d0}\n",
            "",
            &hdds
        ))
        .is_err());
    }

    #[test]
    fn only_an_unambiguous_vm_is_resolved() {
        let u1 = "11111111-1111-1111-1111-111111111111";
        let u2 = "22222222-2222-2222-2222-222222222222";
        let l = parse(&listing(
            &format!("\"A\" {{{u1}}}\n\"A\" {{{u2}}}\n\"B\" {{{u2}}}\n"),
            "",
            "",
        ))
        .unwrap();
        assert!(l.resolve("A").unwrap_err().contains("more than one"));
        assert_eq!(
            l.resolve(&format!("{{{u1}}}")).unwrap(),
            ("A".into(), u1.into())
        );
        assert!(l.resolve("C").unwrap_err().contains("no registered VM"));
        assert!(l.resolve("33333333-3333-3333-3333-333333333333").is_err());
        let l = parse(&listing(
            &format!("\"B\" {{{u1}}}\n\"<inaccessible>\" {{{u2}}}\n"),
            "",
            "",
        ))
        .unwrap();
        assert!(l.resolve("B").unwrap_err().contains("inaccessible"));
        assert_eq!(l.resolve(u1).unwrap().0, "B");
    }

    #[test]
    fn every_disagreement_with_virtualbox_sends_the_read_down_the_full_path() {
        let hdds = fixture("47-real-settings-listhdds.stdout");
        let vm = format!("\"{RICH_NAME}\" {{{RICH_UUID}}}\n");
        let ok = parse(&listing(&vm, "", &hdds)).unwrap();
        assert!(ok.confirm(RICH_NAME, RICH_UUID, rich_settings()).is_ok());

        let running = parse(&listing(&vm, &vm, &hdds)).unwrap();
        let e = running
            .confirm(RICH_NAME, RICH_UUID, rich_settings())
            .unwrap_err();
        assert!(e.contains("running"), "{e}");

        let e = ok.confirm("Other", RICH_UUID, rich_settings()).unwrap_err();
        assert!(e.contains("describes"), "{e}");

        // VirtualBox's media changed in one way; what does confirm say?
        let attached = rich_settings().vm.attachments[0].image_uuid.clone();
        let live = |change: &dyn Fn(&mut Vec<Medium>)| {
            let mut media = ok.media.clone();
            change(&mut media);
            let l = Listing {
                media,
                ..parse(&listing(&vm, "", "")).unwrap()
            };
            l.confirm(RICH_NAME, RICH_UUID, rich_settings()).map(|_| ())
        };
        let of = |media: &mut Vec<Medium>| -> usize {
            media.iter().position(|m| m.uuid == attached).unwrap()
        };
        // The file is older than VirtualBox's view: the attached image has
        // since got a child (a later `snapshot take`)…
        let e = live(&|m| {
            let mut child = m[0].clone();
            child.uuid = "99999999-9999-9999-9999-999999999999".into();
            child.parent = Some(attached.clone());
            m.push(child);
        })
        .unwrap_err();
        assert!(e.contains("has a child"), "{e}");
        // …or was merged away, or moved.
        let e = live(&|m| m.retain(|x| x.uuid != attached)).unwrap_err();
        assert!(e.contains("differs"), "{e}");
        let e = live(&|m| {
            let i = of(m);
            m[i].location = "/elsewhere.vdi".into();
        })
        .unwrap_err();
        assert!(e.contains("differs"), "{e}");
        // VirtualBox is working on the disk.
        let e = live(&|m| {
            let i = of(m);
            m[i].state = "locked write".into();
        })
        .unwrap_err();
        assert!(e.contains("'locked write'"), "{e}");
        // A deleted diff is for the plan to refuse by name.
        live(&|m| {
            let i = of(m);
            m[i].state = "inaccessible".into();
        })
        .unwrap();
    }
}
