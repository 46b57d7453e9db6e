//! VirtualBox defects that can cost a user data under vblaunch's way of
//! working (snapshots folded into the base), in one table, and the version
//! they were fixed in. `vblaunch doctor` fails and every launch warns on an
//! affected version.
//!
//! The version a launch judges is that of the VBoxSVC it talks to, read from
//! the first line of `VBoxSVC.log` in VirtualBox's home (VBoxSVC writes it
//! at every start; the launch's own first call starts it if needed), so the
//! check costs no VBoxManage call. doctor asks `VBoxManage --version`.

/// One known defect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KnownBug {
    /// How VirtualBox's tracker names it.
    pub id: &'static str,
    /// What happens, in plain words.
    pub what: &'static str,
    /// The first version that has the fix; every older one is treated as
    /// affected (where the defect began is not known).
    pub fixed_in: (u32, u32, u32),
}

pub const KNOWN_BUGS: &[KnownBug] = &[KnownBug {
    id: "VirtualBox bug 850",
    what: "with VDI disks and snapshots, a guest write of a whole, 1 MiB-aligned MiB of zeros \
           reads back as the parent image's old data after the VM powers off, and deleting the \
           snapshot (a fold) makes the old data permanent. Confirmed by Oracle on 7.2.16, fixed \
           in the next maintenance release; not present on 7.2.22 (tested)",
    fixed_in: (7, 2, 18),
}];

/// `7.2.22_Debian`, `7.2.22r175245`, `7.1.6_Ubuntu r167084` → (7, 2, 22).
pub fn parse_version(text: &str) -> Option<(u32, u32, u32)> {
    let digits: String = text
        .trim()
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let mut parts = digits.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// The known defects of a VirtualBox version.
pub fn affecting(version: (u32, u32, u32)) -> Vec<&'static KnownBug> {
    KNOWN_BUGS.iter().filter(|b| version < b.fixed_in).collect()
}

/// The warning for a version, if it has known defects.
pub fn warning(version_text: &str) -> Option<String> {
    let v = parse_version(version_text)?;
    let bugs = affecting(v);
    if bugs.is_empty() {
        return None;
    }
    let list: Vec<String> = bugs
        .iter()
        .map(|b| {
            format!(
                "{}: {} (fixed in {}.{}.{})",
                b.id, b.what, b.fixed_in.0, b.fixed_in.1, b.fixed_in.2
            )
        })
        .collect();
    let newest = bugs.iter().map(|b| b.fixed_in).max().expect("not empty");
    Some(format!(
        "VirtualBox {} has a known defect that can lose data: {}. Upgrade VirtualBox to {}.{}.{} \
         or newer (from virtualbox.org or your package manager).",
        version_text.trim(),
        list.join("; "),
        newest.0,
        newest.1,
        newest.2
    ))
}

/// The version in the first line of a `VBoxSVC.log`
/// (`… VirtualBox XPCOM Server 7.2.22_Debian r175245 linux.amd64 …`;
/// `COM Server` on Windows).
pub fn version_from_svc_log(first_line: &str) -> Option<String> {
    let (_, rest) = first_line.split_once(" Server ")?;
    let v = rest.split_whitespace().next()?;
    parse_version(v).map(|_| v.to_string())
}

/// The version of the VBoxSVC last started in one of VirtualBox's homes.
pub fn running_version(homes: &[std::path::PathBuf]) -> Option<String> {
    use std::io::Read;
    homes.iter().find_map(|h| {
        let mut head = [0u8; 512];
        let n = std::fs::File::open(h.join("VBoxSVC.log"))
            .and_then(|mut f| f.read(&mut head))
            .ok()?;
        let text = String::from_utf8_lossy(&head[..n]);
        version_from_svc_log(text.lines().next()?)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_before_the_fix_are_affected() {
        assert_eq!(parse_version("7.2.22_Debian"), Some((7, 2, 22)));
        assert_eq!(parse_version("7.2.16r168200"), Some((7, 2, 16)));
        assert_eq!(parse_version("7.0"), Some((7, 0, 0)));
        assert_eq!(parse_version("garbage"), None);
        assert!(affecting((7, 2, 22)).is_empty());
        assert!(affecting((7, 2, 18)).is_empty());
        assert_eq!(affecting((7, 2, 16))[0].id, "VirtualBox bug 850");
        assert_eq!(affecting((6, 1, 50)).len(), 1);
        let w = warning("7.2.16_Ubuntu").unwrap();
        assert!(
            w.contains("bug 850") && w.contains("Upgrade VirtualBox to 7.2.18"),
            "{w}"
        );
        assert_eq!(warning("7.2.22_Debian"), None);
    }

    #[test]
    fn the_version_is_read_from_vboxsvc_log() {
        let real = "00:00:00.000839 main     VirtualBox XPCOM Server 7.2.22_Debian r175245 linux.amd64 (Oct 22 2026 07:33:03) release log";
        assert_eq!(version_from_svc_log(real).as_deref(), Some("7.2.22_Debian"));
        let win = "00:00:00.002000 main     VirtualBox COM Server 7.2.16 r168200 win.amd64 (Feb 1 2026) release log";
        assert_eq!(version_from_svc_log(win).as_deref(), Some("7.2.16"));
        assert_eq!(version_from_svc_log("Log opened"), None);
        let d = tempfile::tempdir().unwrap();
        assert_eq!(running_version(&[d.path().to_path_buf()]), None);
        std::fs::write(d.path().join("VBoxSVC.log"), format!("{real}\nmore\n")).unwrap();
        assert_eq!(
            running_version(&[d.path().join("none"), d.path().to_path_buf()]).as_deref(),
            Some("7.2.22_Debian")
        );
    }
}
