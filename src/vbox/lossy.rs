//! Windows: names and paths that VBoxManage could not print.
//!
//! VBoxManage.exe writes its output in the ANSI code page (see
//! `crate::process::decode`), and a character that code page lacks comes out
//! as `?` (a Japanese VM name on a German Windows: "開発" → "??"). vblaunch
//! addresses VMs and snapshots by UUID, so such a name cannot change *what*
//! it addresses; but a damaged path would be checked on disk and found
//! "missing". `?` cannot occur in a Windows file name, so a path with `?` in
//! it is known to be damaged. The VM's settings file (UTF-8 XML) has the
//! true text: where VBoxManage's text and the file's agree except at `?`,
//! the file's is taken; a path that stays damaged is refused by name.
use std::path::{Path, PathBuf};

use super::media::Medium;
use super::settings::Settings;
use super::vminfo::VmInfo;

/// Whether `printed` (VBoxManage's, with `?` for what it could not print)
/// can be `truth`.
pub fn matches(printed: &str, truth: &str) -> bool {
    printed.chars().count() == truth.chars().count()
        && printed
            .chars()
            .zip(truth.chars())
            .all(|(p, t)| p == t || (p == '?' && !t.is_ascii()))
}

fn damaged(p: &Path) -> bool {
    p.to_string_lossy().contains('?')
}

/// Windows takes `/` and `\` alike (a path resolved against the settings
/// file's folder may mix them).
fn same_path(printed: &Path, truth: &Path) -> bool {
    let norm = |p: &Path| p.to_string_lossy().replace('\\', "/");
    matches(&norm(printed), &norm(truth))
}

fn fix_path(printed: &mut PathBuf, truth: Option<&Path>) {
    if let Some(t) = truth {
        if damaged(printed) && same_path(printed, t) {
            *printed = t.to_path_buf();
        }
    }
}

/// Whether any name or path in the read came out damaged.
pub fn any_damaged(vm: &VmInfo, media: &[Medium]) -> bool {
    vm.name.contains('?')
        || vm.snapshots.iter().any(|s| s.name.contains('?'))
        || paths(vm).any(damaged)
        || media.iter().any(|m| damaged(&m.location))
}

fn paths(vm: &VmInfo) -> impl Iterator<Item = &Path> {
    [
        &vm.cfg_file,
        &vm.snapshot_folder,
        &vm.log_folder,
        &vm.state_file,
    ]
    .into_iter()
    .flatten()
    .map(PathBuf::as_path)
    .chain(vm.attachments.iter().map(|a| a.location.as_path()))
}

/// Take the file's text wherever VBoxManage's is damaged and agrees with it
/// otherwise (matched by UUID); an error names a path that stays damaged.
pub fn repair(
    mut vm: VmInfo,
    mut media: Vec<Medium>,
    file: Option<&Settings>,
) -> Result<(VmInfo, Vec<Medium>), String> {
    if let Some(s) = file.filter(|s| s.vm.uuid == vm.uuid) {
        let f = &s.vm;
        if vm.name.contains('?') && matches(&vm.name, &f.name) {
            vm.name = f.name.clone();
        }
        fix_path(vm.cfg_file.get_or_insert_default(), f.cfg_file.as_deref());
        for (mine, theirs) in [
            (&mut vm.snapshot_folder, &f.snapshot_folder),
            (&mut vm.log_folder, &f.log_folder),
            (&mut vm.state_file, &f.state_file),
        ] {
            if let Some(p) = mine {
                fix_path(p, theirs.as_deref());
            }
        }
        for a in &mut vm.attachments {
            let t = f.attachments.iter().find(|t| t.image_uuid == a.image_uuid);
            fix_path(&mut a.location, t.map(|t| t.location.as_path()));
        }
        for snap in &mut vm.snapshots {
            if let Some(t) = f.snapshots.iter().find(|t| t.uuid == snap.uuid) {
                if matches(&snap.name, &t.name) {
                    snap.name = t.name.clone();
                }
                if let (Some(d), Some(td)) = (&snap.description, &t.description) {
                    if matches(d, td) {
                        snap.description = Some(td.clone());
                    }
                }
            }
        }
        for m in &mut media {
            let t = s.media.iter().find(|t| t.uuid == m.uuid);
            fix_path(&mut m.location, t.map(|t| t.location.as_path()));
        }
    }
    if let Some(p) = paths(&vm).find(|p| damaged(p)) {
        return Err(format!(
            "VBoxManage printed the path '{}' of VM '{}' with characters that Windows' ANSI \
             code page ({}) cannot represent, and the VM's settings file does not say what they \
             are",
            p.display(),
            vm.name,
            crate::process::output_code_page()
        ));
    }
    // A damaged location of a disk in this VM's chains is refused too;
    // other VMs' disks are not this read's business.
    let own: Vec<&str> = vm
        .attachments
        .iter()
        .flat_map(|a| super::media::chain(&media, &a.image_uuid))
        .flatten()
        .map(|m| m.uuid.as_str())
        .collect();
    if let Some(m) = media
        .iter()
        .find(|m| own.contains(&m.uuid.as_str()) && damaged(&m.location))
    {
        return Err(format!(
            "VBoxManage printed the path '{}' of disk {{{}}} with characters that Windows' ANSI \
             code page ({}) cannot represent, and the VM's settings file does not say what they are",
            m.location.display(),
            m.uuid,
            crate::process::output_code_page()
        ));
    }
    Ok((vm, media))
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    #[test]
    fn question_marks_match_only_characters_the_code_page_lacked() {
        assert!(matches("J?rgen ??", "Jürgen 開発"));
        assert!(matches("Why?", "Why?"));
        assert!(!matches("J?rgen", "Jurgen"));
        assert!(!matches("J?rgen ?", "Jürgen 開発"));
        assert!(!matches("Other", "Jürgen"));
    }

    /// The real 47- recordings (VM "Rich \"VM\" ü" in ".../Rich _VM_ ü/"),
    /// damaged as a code page without 'ü' prints them.
    #[test]
    fn damaged_names_and_paths_are_taken_from_the_settings_file() {
        let cfg = Path::new("/tmp/exp/vms2/Rich _VM_ \u{fc}/Rich _VM_ \u{fc}.vbox");
        let file = super::super::settings::parse(&fixture("47-real-settings.vbox"), cfg).unwrap();
        let damage = |t: &str| t.replace('\u{fc}', "?");
        let vm =
            super::super::vminfo::parse(&damage(&fixture("47-real-settings-showvminfo.stdout")))
                .unwrap();
        let media =
            super::super::media::parse(&damage(&fixture("47-real-settings-listhdds.stdout")));
        assert!(any_damaged(&vm, &media));
        let (fixed, fixed_media) = repair(vm.clone(), media.clone(), Some(&file)).unwrap();
        let full =
            super::super::vminfo::parse(&fixture("47-real-settings-showvminfo.stdout")).unwrap();
        assert_eq!(fixed.name, full.name);
        assert_eq!(fixed.cfg_file, full.cfg_file);
        assert_eq!(fixed.attachments, full.attachments);
        assert_eq!(fixed.snapshots, full.snapshots);
        assert!(!any_damaged(&fixed, &fixed_media));
        // No settings file to ask: a damaged path is refused by name.
        let e = repair(vm, media, None).unwrap_err();
        assert!(
            e.contains("cannot represent") && e.contains("Rich _VM_ ?"),
            "{e}"
        );
    }
}
