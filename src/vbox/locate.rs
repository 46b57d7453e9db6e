//! Find VBoxManage: `--vboxmanage PATH` > env `VBLAUNCH_VBOXMANAGE` > config
//! `vboxmanage` > platform defaults. An explicit choice that does not exist is
//! an error (never silently replaced by another VirtualBox); the defaults are
//! tried in order and, when none exists, the error lists every place looked at.
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::exit::{fail, Code};
use crate::platform::Os;

/// Where the explicit choices came from.
pub struct Explicit {
    pub flag: Option<PathBuf>,
    pub env: Option<PathBuf>,
    pub config: Option<(PathBuf, String)>, // path, and where it was configured
}

/// Default locations for `os`, in order. `var` reads an environment variable.
pub fn default_candidates(os: Os, var: &dyn Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    let mut out = Vec::new();
    match os {
        Os::Windows => {
            for name in ["VBOX_MSI_INSTALL_PATH", "VBOX_INSTALL_PATH"] {
                if let Some(v) = var(name) {
                    for dir in v.to_string_lossy().split(';') {
                        let dir = dir.trim().trim_matches('"');
                        if !dir.is_empty() {
                            out.push(win_join(dir, "VBoxManage.exe"));
                        }
                    }
                }
            }
            if let Some(pf) = var("ProgramFiles") {
                out.push(win_join(
                    &pf.to_string_lossy(),
                    r"Oracle\VirtualBox\VBoxManage.exe",
                ));
            }
            out.push(PathBuf::from(
                r"C:\Program Files\Oracle\VirtualBox\VBoxManage.exe",
            ));
        }
        Os::MacOs => {
            out.push(PathBuf::from(
                "/Applications/VirtualBox.app/Contents/MacOS/VBoxManage",
            ));
            out.push(PathBuf::from("/usr/local/bin/VBoxManage"));
            out.extend(on_path(var, &["VBoxManage"], ':'));
        }
        Os::Linux => {
            // The real binary first: Debian's /usr/bin/VBoxManage is a shell
            // script that may print a vboxdrv WARNING on stdout, which would
            // corrupt --machinereadable output.
            out.push(PathBuf::from("/usr/lib/virtualbox/VBoxManage"));
            out.push(PathBuf::from("/opt/VirtualBox/VBoxManage"));
            out.extend(on_path(var, &["VBoxManage", "vboxmanage"], ':'));
        }
    }
    let mut seen = std::collections::HashSet::new();
    out.retain(|p| seen.insert(p.clone()));
    out
}

/// Where VirtualBox keeps VirtualBox.xml: VBOX_USER_HOME, or the platform
/// default(s), most likely first.
pub fn user_homes(var: &dyn Fn(&str) -> Option<OsString>) -> Vec<PathBuf> {
    if let Some(h) = var("VBOX_USER_HOME").filter(|v| !v.is_empty()) {
        return vec![PathBuf::from(h)];
    }
    let home = var("HOME")
        .or_else(|| var("USERPROFILE"))
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let Some(home) = home else { return Vec::new() };
    if cfg!(target_os = "macos") {
        vec![home.join("Library/VirtualBox"), home.join(".VirtualBox")]
    } else if cfg!(windows) {
        vec![home.join(".VirtualBox")]
    } else {
        vec![home.join(".config/VirtualBox"), home.join(".VirtualBox")]
    }
}

/// Join with a backslash whatever OS runs the code (the path is for Windows).
fn win_join(dir: &str, file: &str) -> PathBuf {
    let dir = dir.trim_end_matches(['\\', '/']);
    PathBuf::from(format!("{dir}\\{file}"))
}

fn on_path(var: &dyn Fn(&str) -> Option<OsString>, names: &[&str], sep: char) -> Vec<PathBuf> {
    let Some(path) = var("PATH") else {
        return Vec::new();
    };
    let path = path.to_string_lossy().into_owned();
    path.split(sep)
        .filter(|d| !d.is_empty())
        .flat_map(|d| names.iter().map(move |n| Path::new(d).join(n)))
        .collect()
}

/// Resolve the VBoxManage to use. `exists` is the file test (a seam for tests).
pub fn locate(
    explicit: &Explicit,
    defaults: &[PathBuf],
    exists: &dyn Fn(&Path) -> bool,
) -> anyhow::Result<PathBuf> {
    let chosen = [
        explicit
            .flag
            .clone()
            .map(|p| (p, "--vboxmanage".to_string())),
        explicit.env.clone().map(|p| {
            (
                p,
                "the environment variable VBLAUNCH_VBOXMANAGE".to_string(),
            )
        }),
        explicit.config.clone(),
    ];
    if let Some((path, source)) = chosen.into_iter().flatten().next() {
        if exists(&path) {
            return Ok(path);
        }
        return Err(fail(
            Code::NoVBoxManage,
            format!(
                "VBoxManage not found at {} (set by {source}). Fix that path, or remove it to let vblaunch search the usual install locations.",
                path.display()
            ),
        ));
    }
    if let Some(p) = defaults.iter().find(|p| exists(p)) {
        return Ok(p.clone());
    }
    let looked: Vec<String> = defaults
        .iter()
        .map(|p| format!("  {}", p.display()))
        .collect();
    Err(fail(
        Code::NoVBoxManage,
        format!(
            "VBoxManage not found. Is VirtualBox installed? vblaunch looked in:\n{}\n\
             Tell vblaunch where it is with --vboxmanage PATH, the environment variable \
             VBLAUNCH_VBOXMANAGE, or `vboxmanage = \"PATH\"` in the config file.",
            looked.join("\n")
        ),
    ))
}

/// VirtualBox's installation folder: the folder of `exe` (as given, then
/// with links resolved) that also holds VBoxSVC. None when `exe` is a
/// wrapper or a script elsewhere (e.g. Debian's /usr/bin/VBoxManage), then
/// the usual folders of the OS are tried.
pub fn install_dir(exe: &Path, os: Os) -> Option<PathBuf> {
    let svc = if os == Os::Windows {
        "VBoxSVC.exe"
    } else {
        "VBoxSVC"
    };
    let given = exe.parent().map(Path::to_path_buf);
    let real = std::fs::canonicalize(exe)
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let usual: &[&str] = match os {
        Os::Linux => &["/usr/lib/virtualbox", "/opt/VirtualBox"],
        Os::MacOs => &["/Applications/VirtualBox.app/Contents/MacOS"],
        Os::Windows => &[],
    };
    // The usual folders count only for a VBoxManage that is not a binary
    // of an installation (a script or wrapper on PATH).
    let from_exe = [given, real]
        .into_iter()
        .flatten()
        .find(|d| d.join(svc).is_file());
    from_exe.or_else(|| {
        usual
            .iter()
            .map(PathBuf::from)
            .find(|d| d.join(svc).is_file() && d.join(exe_name("VBoxManage", os)).is_file())
    })
}

fn exe_name(name: &str, os: Os) -> String {
    if os == Os::Windows {
        format!("{name}.exe")
    } else {
        name.to_string()
    }
}

/// The program VBoxSVC starts for a VM of this start type.
pub fn front_end(start: super::StartType, os: Os) -> String {
    match start {
        super::StartType::Headless => exe_name("VBoxHeadless", os),
        super::StartType::Gui | super::StartType::Separate => exe_name("VirtualBoxVM", os),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_install_dir_holds_vboxsvc_and_names_the_front_end() {
        use super::super::StartType;
        let d = tempfile::tempdir().unwrap();
        let exe = d.path().join("VBoxManage");
        std::fs::write(&exe, "").unwrap();
        assert_eq!(
            install_dir(&exe, Os::MacOs),
            None,
            "no VBoxSVC: not an installation"
        );
        std::fs::write(d.path().join("VBoxSVC"), "").unwrap();
        assert_eq!(install_dir(&exe, Os::Linux).as_deref(), Some(d.path()));
        assert_eq!(front_end(StartType::Gui, Os::Linux), "VirtualBoxVM");
        assert_eq!(
            front_end(StartType::Separate, Os::Windows),
            "VirtualBoxVM.exe"
        );
        assert_eq!(front_end(StartType::Headless, Os::Linux), "VBoxHeadless");
    }

    use super::*;
    use std::collections::HashMap;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let m: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).map(OsString::from)
    }

    #[test]
    fn vbox_user_home_wins_else_the_platform_defaults() {
        let h = user_homes(&vars(&[("VBOX_USER_HOME", "/vb"), ("HOME", "/u")]));
        assert_eq!(h, [PathBuf::from("/vb")]);
        // Set but empty counts as unset, as VirtualBox does.
        let h = user_homes(&vars(&[("VBOX_USER_HOME", ""), ("HOME", "/u")]));
        let first = if cfg!(target_os = "macos") {
            "/u/Library/VirtualBox"
        } else if cfg!(windows) {
            "/u/.VirtualBox"
        } else {
            "/u/.config/VirtualBox"
        };
        assert_eq!(h[0], PathBuf::from("/u").join(&first[3..]));
        assert!(h.contains(&PathBuf::from("/u").join(".VirtualBox")));
        assert!(user_homes(&vars(&[])).is_empty());
    }

    #[test]
    fn windows_reads_msi_install_path_with_several_dirs() {
        let c = default_candidates(
            Os::Windows,
            &vars(&[
                ("VBOX_MSI_INSTALL_PATH", r"D:\VBox\;E:\Other VBox"),
                ("VBOX_INSTALL_PATH", r"F:\old\"),
                ("ProgramFiles", r"C:\Program Files"),
            ]),
        );
        let c: Vec<String> = c.iter().map(|p| p.to_string_lossy().into_owned()).collect();
        assert_eq!(
            c,
            [
                r"D:\VBox\VBoxManage.exe",
                r"E:\Other VBox\VBoxManage.exe",
                r"F:\old\VBoxManage.exe",
                r"C:\Program Files\Oracle\VirtualBox\VBoxManage.exe",
            ]
        );
    }

    #[test]
    fn linux_prefers_the_real_binary_over_the_wrapper_script() {
        let c = default_candidates(Os::Linux, &vars(&[("PATH", "/usr/bin:/bin")]));
        assert_eq!(c[0], PathBuf::from("/usr/lib/virtualbox/VBoxManage"));
        assert!(c.contains(&PathBuf::from("/usr/bin/VBoxManage")));
    }

    #[test]
    fn macos_looks_in_the_app_bundle_first() {
        let c = default_candidates(Os::MacOs, &vars(&[]));
        assert_eq!(
            c[0],
            PathBuf::from("/Applications/VirtualBox.app/Contents/MacOS/VBoxManage")
        );
    }

    #[test]
    fn precedence_is_flag_env_config_defaults() {
        let all = |_: &Path| true;
        let e = Explicit {
            flag: Some("/flag".into()),
            env: Some("/env".into()),
            config: Some(("/cfg".into(), "config".into())),
        };
        let d = [PathBuf::from("/default")];
        assert_eq!(locate(&e, &d, &all).unwrap(), PathBuf::from("/flag"));
        let e = Explicit { flag: None, ..e };
        assert_eq!(locate(&e, &d, &all).unwrap(), PathBuf::from("/env"));
        let e = Explicit { env: None, ..e };
        assert_eq!(locate(&e, &d, &all).unwrap(), PathBuf::from("/cfg"));
        let e = Explicit { config: None, ..e };
        assert_eq!(locate(&e, &d, &all).unwrap(), PathBuf::from("/default"));
    }

    #[test]
    fn a_missing_explicit_path_is_an_error_naming_it_and_its_source() {
        let e = Explicit {
            flag: None,
            env: Some("/nope/VBoxManage".into()),
            config: None,
        };
        let err = locate(&e, &[PathBuf::from("/default")], &|p| {
            p == Path::new("/default")
        })
        .unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("/nope/VBoxManage") && msg.contains("VBLAUNCH_VBOXMANAGE"),
            "{msg}"
        );
        assert_eq!(crate::exit::code_of(&err), Code::NoVBoxManage);
    }

    #[test]
    fn not_found_lists_every_place_looked() {
        let e = Explicit {
            flag: None,
            env: None,
            config: None,
        };
        let d = [
            PathBuf::from("/a/VBoxManage"),
            PathBuf::from("/b/VBoxManage"),
        ];
        let msg = format!("{:#}", locate(&e, &d, &|_| false).unwrap_err());
        assert!(
            msg.contains("/a/VBoxManage") && msg.contains("/b/VBoxManage"),
            "{msg}"
        );
        assert!(msg.contains("--vboxmanage"), "{msg}");
    }
}
