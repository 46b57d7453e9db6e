//! Test harness shared by the fake and the real VirtualBox tests: a temp world
//! (HOME, XDG dirs, VBOX_USER_HOME), a VBoxManage backend to build VMs with,
//! and the vblaunch binary run with a cleared environment.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::SystemTime;

use vblaunch::vbox::media::{self, Medium};
use vblaunch::vbox::vminfo::{self, VmInfo};

pub const VBLAUNCH: &str = env!("CARGO_BIN_EXE_vblaunch");

/// How to build the fake, for the messages below.
const BUILD_FAKE: &str = "build it with `cargo build --example vblaunch-fake-vboxmanage` \
(with the tests' --release/--target, if any; a plain `cargo test` builds it, \
`cargo test NAME` and `cargo test --test cli` do not)";

/// The fake VBoxManage (tests/fake_vboxmanage). It is a Cargo example, so
/// that release builds and `cargo install` leave it out; cargo builds it into
/// `<target>/<profile>/examples/`, next to this test binary's
/// `<target>/<profile>/deps/`. Missing, or older than one of its own sources
/// (the files under tests/ its dep-info names: its modules and the fixtures
/// it includes; it does not use the library), it fails the test, saying how
/// to build it: a filtered `cargo test` does not build examples, and must not
/// run a stale fake.
pub fn fake_vboxmanage() -> &'static Path {
    static FAKE: OnceLock<PathBuf> = OnceLock::new();
    FAKE.get_or_init(|| {
        let exe = std::env::current_exe().expect("the test binary's path");
        let examples = exe
            .parent()
            .and_then(Path::parent)
            .expect("the test binary lies in <target>/<profile>/deps")
            .join("examples");
        let name = "vblaunch-fake-vboxmanage";
        let fake = examples.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        let Ok(built) = std::fs::metadata(&fake).and_then(|m| m.modified()) else {
            panic!("no fake VBoxManage at {}: {BUILD_FAKE}", fake.display());
        };
        let dep_info = std::fs::read_to_string(examples.join(format!("{name}.d")));
        let own = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests");
        if let Some(src) = dep_info.ok().and_then(|d| newer_source(&d, &own, built)) {
            panic!(
                "the fake VBoxManage {} is older than {}: {BUILD_FAKE}",
                fake.display(),
                src.display()
            );
        }
        fake
    })
}

/// The first source under `dir` listed in a Makefile-style dep-info text
/// (`target: src src…`, a space in a path written `\ `) that changed after
/// `built`.
fn newer_source(dep_info: &str, dir: &Path, built: SystemTime) -> Option<PathBuf> {
    let first = dep_info.lines().next()?;
    let (_, sources) = first.split_once(": ")?;
    let mut paths = vec![String::new()];
    let mut chars = sources.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&' ') => paths.last_mut()?.push(chars.next()?),
            ' ' => paths.push(String::new()),
            c => paths.last_mut()?.push(c),
        }
    }
    paths
        .into_iter()
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .find(|p| {
            // A source that cannot be read any more is not counted: cargo will
            // rebuild when the files that named it change.
            std::fs::metadata(p)
                .and_then(|m| m.modified())
                .is_ok_and(|m| m > built)
        })
}

#[derive(Clone, Debug, PartialEq)]
pub enum Backend {
    Fake,
    /// The real VBoxManage (the chroot wrapper), from VBLAUNCH_TEST_VBOXMANAGE.
    Real(PathBuf),
}

/// The real VBoxManage for tests, or None after telling the terminal that the
/// test is skipped (written to the real stderr, past libtest's capture, so a
/// skipped test is never silent). With VBLAUNCH_REQUIRE_REAL=1 (CI) a missing
/// VirtualBox fails the test instead.
pub fn real_backend(test: &str) -> Option<Backend> {
    match std::env::var_os("VBLAUNCH_TEST_VBOXMANAGE").filter(|v| !v.is_empty()) {
        Some(p) => Some(Backend::Real(PathBuf::from(p))),
        None => {
            if std::env::var_os("VBLAUNCH_REQUIRE_REAL").is_some_and(|v| v == "1") {
                panic!("{test}: VBLAUNCH_REQUIRE_REAL=1 but VBLAUNCH_TEST_VBOXMANAGE is not set");
            }
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: real VirtualBox test (set VBLAUNCH_TEST_VBOXMANAGE to a real VBoxManage, e.g. after .ci/setup-real-vbox.sh)"
            );
            None
        }
    }
}

pub struct World {
    pub dir: tempfile::TempDir,
    pub backend: Backend,
}

pub struct Vm {
    pub name: String,
    pub uuid: String,
    pub base: PathBuf,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    /// vblaunch's output (UTF-8 on every OS).
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: text(&o.stdout),
            stderr: text(&o.stderr),
        }
    }

    /// VBoxManage's output, decoded as vblaunch decodes it (UTF-8; the ANSI
    /// code page on Windows).
    fn from_vbox(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: vblaunch::process::decode(&o.stdout),
            stderr: vblaunch::process::decode(&o.stderr),
        }
    }
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.stdout, self.stderr
        )
    }
}

impl World {
    pub fn new(backend: Backend) -> World {
        // Under /tmp: the real VirtualBox runs in a chroot that sees only /tmp-like dirs.
        let dir = tempfile::Builder::new()
            .prefix("vblaunch-test")
            .tempdir_in("/tmp")
            .unwrap();
        for d in ["home", "config", "data", "vbox", "vms", "disks"] {
            std::fs::create_dir_all(dir.path().join(d)).unwrap();
        }
        let w = World { dir, backend };
        w.write_config("");
        w
    }

    pub fn fake() -> World {
        World::new(Backend::Fake)
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn vboxmanage_exe(&self) -> PathBuf {
        match &self.backend {
            Backend::Fake => fake_vboxmanage().to_path_buf(),
            Backend::Real(p) => p.clone(),
        }
    }

    pub fn base_env_pub(&self, cmd: &mut Command) {
        self.base_env(cmd)
    }

    fn base_env(&self, cmd: &mut Command) {
        cmd.env_clear()
            .env("HOME", self.path("home"))
            .env("XDG_CONFIG_HOME", self.path("config"))
            .env("XDG_DATA_HOME", self.path("data"))
            .env("VBLAUNCH_DATA_DIR", self.path("data/vblaunch"))
            .env("VBOX_USER_HOME", self.path("vbox"))
            .env("PATH", std::env::var_os("PATH").unwrap_or_default());
        // Windows programs need these to start at all.
        for v in [
            "SystemRoot",
            "windir",
            "TEMP",
            "TMP",
            "USERPROFILE",
            "APPDATA",
            "LOCALAPPDATA",
        ] {
            if let Some(val) = std::env::var_os(v) {
                cmd.env(v, val);
            }
        }
        if let Some(c) = std::env::var_os("VBOX_CHROOT") {
            cmd.env("VBOX_CHROOT", c);
        }
    }

    /// Run the backend VBoxManage directly (to build and inspect VMs).
    /// The test's own calls run under a UTF-8 locale (an installed VirtualBox
    /// under `C` cannot take or print non-ASCII names: see vbox::locale).
    pub fn vbox<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        let mut cmd = Command::new(self.vboxmanage_exe());
        self.base_env(&mut cmd);
        cmd.env("LC_ALL", "C.UTF-8").args(args);
        Run::from_vbox(cmd.output().unwrap())
    }

    pub fn vbox_ok<S: AsRef<OsStr>>(&self, args: &[S]) -> String {
        let r = self.vbox(args);
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect();
        assert_eq!(r.code, 0, "VBoxManage {shown:?} failed:\n{r}");
        r.stdout
    }

    /// Run vblaunch with a clean environment pointing at this world.
    pub fn vblaunch<S: AsRef<OsStr>>(&self, args: &[S]) -> Run {
        self.vblaunch_env(args, &[])
    }

    /// vblaunch under the user's locale `LC_ALL=C` unless `env` says
    /// otherwise (an empty value unsets a variable for the C library): the
    /// hardest case, since VBoxManage under `C` is ASCII-only.
    pub fn vblaunch_env<S: AsRef<OsStr>>(&self, args: &[S], env: &[(&str, &OsStr)]) -> Run {
        let mut cmd = Command::new(VBLAUNCH);
        self.base_env(&mut cmd);
        cmd.env("VBLAUNCH_VBOXMANAGE", self.vboxmanage_exe())
            .env("LC_ALL", "C");
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.args(args).stdin(std::process::Stdio::null());
        Run::from(cmd.output().unwrap())
    }

    /// Run `vblaunch <args>` (a shell word list) in a terminal of its own
    /// (`script` from util-linux), with this world's clean environment, and
    /// answer its first prompt with Enter. The terminal's output is in
    /// `stdout`.
    #[cfg(target_os = "linux")]
    pub fn vblaunch_in_terminal(&self, args: &str) -> Run {
        use std::process::Stdio;
        let mut cmd = Command::new("script");
        self.base_env(&mut cmd);
        cmd.env("LC_ALL", "C")
            .args(["-qec", &format!("'{VBLAUNCH}' {args}"), "/dev/null"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("script(1) from util-linux");
        child.stdin.take().unwrap().write_all(b"\n").unwrap();
        Run::from(child.wait_with_output().unwrap())
    }

    pub fn log_file(&self) -> PathBuf {
        self.path("data/vblaunch/vblaunch.log")
    }

    pub fn lock_dir(&self) -> PathBuf {
        self.path("data/vblaunch/locks")
    }

    /// Create and register a VM with one dynamically allocated disk of `mb` MiB.
    pub fn create_vm(&self, name: &str, mb: u32) -> Vm {
        self.create_vm_with(name, |base| {
            vec![
                "createmedium".into(),
                "disk".into(),
                "--filename".into(),
                base.display().to_string(),
                "--size".into(),
                mb.to_string(),
                "--format".into(),
                "VDI".into(),
            ]
        })
    }

    /// Create and register a VM whose disk is made from a raw image
    /// (`convertfromraw`: VBoxManage writes the whole .vdi before it exits).
    pub fn create_vm_from_raw(&self, name: &str, raw: &Path) -> Vm {
        self.create_vm_with(name, |base| {
            vec![
                "convertfromraw".into(),
                raw.display().to_string(),
                base.display().to_string(),
                "--format".into(),
                "VDI".into(),
            ]
        })
    }

    /// Register a VM, make its disk with the VBoxManage command `make_disk`
    /// returns for the disk's path, and attach it to a SATA controller.
    /// Add a controller `ctl` (`SATA` or `IDE`) to the VM and attach `medium`
    /// as the hard disk on its port 0.
    pub fn attach_disk(&self, vm: &str, ctl: &str, medium: &Path) {
        self.vbox_ok(&[
            "storagectl",
            vm,
            "--name",
            ctl,
            "--add",
            &ctl.to_lowercase(),
        ]);
        self.vbox_ok(&[
            "storageattach",
            vm,
            "--storagectl",
            ctl,
            "--port",
            "0",
            "--device",
            "0",
            "--type",
            "hdd",
            "--medium",
            medium.to_str().unwrap(),
        ]);
    }

    /// Create and register a VM with no disk in `basefolder`; its UUID.
    pub fn register_empty_vm(&self, name: &str, basefolder: &Path) -> String {
        std::fs::create_dir_all(basefolder).unwrap();
        let out = self.vbox_ok(&[
            "createvm",
            "--name",
            name,
            "--ostype",
            "Linux_64",
            "--basefolder",
            basefolder.to_str().unwrap(),
            "--register",
        ]);
        out.lines()
            .find_map(|l| l.strip_prefix("UUID: "))
            .unwrap_or_else(|| panic!("no UUID in createvm output: {out}"))
            .trim()
            .to_string()
    }

    fn create_vm_with(&self, name: &str, make_disk: impl FnOnce(&Path) -> Vec<String>) -> Vm {
        self.create_vm_in(name, "vms", None, make_disk)
    }

    /// A VM of `mb` MiB whose folder is under `folder` (relative to the
    /// world) and whose disk is `disks/<disk>` (e.g. non-ASCII paths).
    pub fn create_vm_at(&self, name: &str, folder: &str, disk: &str, mb: u32) -> Vm {
        std::fs::create_dir_all(self.path(folder)).unwrap();
        self.create_vm_in(name, folder, Some(disk), |base| {
            vec![
                "createmedium".into(),
                "disk".into(),
                "--filename".into(),
                base.display().to_string(),
                "--size".into(),
                mb.to_string(),
                "--format".into(),
                "VDI".into(),
            ]
        })
    }

    fn create_vm_in(
        &self,
        name: &str,
        folder: &str,
        disk: Option<&str>,
        make_disk: impl FnOnce(&Path) -> Vec<String>,
    ) -> Vm {
        let uuid = self.register_empty_vm(name, &self.path(folder));
        let base = match disk {
            Some(d) => self.path(&format!("disks/{d}")),
            None => self.path(&format!("disks/{uuid}.vdi")),
        };
        self.vbox_ok(&make_disk(&base));
        self.attach_disk(&uuid, "SATA", &base);
        Vm {
            name: name.to_string(),
            uuid,
            base,
        }
    }

    pub fn info(&self, vm: &str) -> VmInfo {
        vminfo::parse(&self.vbox_ok(&["showvminfo", vm, "--machinereadable"])).unwrap()
    }

    pub fn hdds(&self) -> Vec<Medium> {
        media::parse(&self.vbox_ok(&["list", "hdds"]))
    }

    /// The current-state medium of the VM's first disk.
    pub fn leaf(&self, vm: &str) -> PathBuf {
        self.info(vm).attachments[0].location.clone()
    }

    /// Write `data` at `offset` into a medium (the current diff, usually).
    pub fn write_bytes(&self, medium: &Path, offset: u64, data: &str) {
        match &self.backend {
            Backend::Fake => {
                self.vbox_ok(&[
                    "fake",
                    "write",
                    medium.to_str().unwrap(),
                    &offset.to_string(),
                    data,
                ]);
            }
            Backend::Real(_) => self.real_writer(&[
                OsStr::new("write"),
                medium.as_os_str(),
                OsStr::new(&offset.to_string()),
                OsStr::new(data),
            ]),
        }
    }

    /// Fill `mib` MiB of a medium with fresh pseudo-random data (real VirtualBox).
    pub fn fill_mib(&self, medium: &Path, start_mib: u64, mib: u64) {
        self.real_writer(&[
            OsStr::new("fill"),
            medium.as_os_str(),
            OsStr::new(&start_mib.to_string()),
            OsStr::new(&mib.to_string()),
        ]);
    }

    /// Run .ci/vbox-write-bytes.py in the real VirtualBox's environment.
    fn real_writer(&self, args: &[&OsStr]) {
        let r = Run::from(self.writer_command(args).output().unwrap());
        assert_eq!(r.code, 0, "vbox-write-bytes.py {args:?} failed:\n{r}");
    }

    fn writer_command(&self, args: &[&OsStr]) -> Command {
        let Backend::Real(exe) = &self.backend else {
            panic!("only with real VirtualBox");
        };
        let script = self.path("vbox-write-bytes.py");
        if !script.exists() {
            std::fs::copy(
                concat!(env!("CARGO_MANIFEST_DIR"), "/.ci/vbox-write-bytes.py"),
                &script,
            )
            .unwrap();
        }
        let mut cmd = Command::new(exe);
        self.base_env(&mut cmd);
        cmd.env("VBOX_WRAPPER_PROG", "/usr/bin/python3")
            .arg(&script)
            .args(args);
        cmd
    }

    /// Keep `medium` open for reading through the API (VirtualBox lists it
    /// `locked read`) until the returned guard is dropped. Returns once the
    /// helper says it holds the medium.
    pub fn hold_medium(&self, medium: &Path) -> Holder {
        let mut child = self
            .writer_command(&[OsStr::new("hold"), medium.as_os_str(), OsStr::new("0")])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert!(line.starts_with("holding "), "hold {medium:?}: {line:?}");
        Holder(child)
    }

    /// The content of a medium's whole chain, comparable across runs.
    pub fn content(&self, medium: &Path) -> Vec<u8> {
        match &self.backend {
            Backend::Fake => self
                .vbox_ok(&["fake", "content", medium.to_str().unwrap()])
                .into_bytes(),
            Backend::Real(_) => {
                let raw = self.path("content.raw");
                let _ = std::fs::remove_file(&raw);
                self.vbox_ok(&[
                    "clonemedium",
                    medium.to_str().unwrap(),
                    raw.to_str().unwrap(),
                    "--format",
                    "RAW",
                ]);
                // clonemedium registers the copy; forget it again (keep the file).
                let _ = self.vbox(&["closemedium", "disk", raw.to_str().unwrap()]);
                let bytes = std::fs::read(&raw).unwrap();
                std::fs::remove_file(&raw).unwrap();
                bytes
            }
        }
    }

    /// The .vdi files in the VM's Snapshots folder.
    pub fn snapshot_files(&self, vm: &str) -> Vec<PathBuf> {
        let dir = self.info(vm).snapshot_folder.unwrap();
        let mut files: Vec<PathBuf> = match std::fs::read_dir(&dir) {
            Ok(rd) => rd
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "vdi"))
                .collect(),
            Err(_) => Vec::new(),
        };
        files.sort();
        files
    }

    /// A snapshot of what VirtualBox holds, for "nothing changed" assertions.
    pub fn state(&self, vm: &str) -> String {
        let info = self.info(vm);
        let snaps: Vec<String> = info
            .snapshots
            .iter()
            .map(|s| format!("{} {} {:?} {:?}", s.name, s.uuid, s.parent, s.description))
            .collect();
        let media: Vec<String> = self
            .hdds()
            .iter()
            .map(|m| {
                format!(
                    "{} {:?} {} {}",
                    m.uuid,
                    m.parent,
                    m.state,
                    m.location.display()
                )
            })
            .collect();
        format!(
            "state={} current={:?} disks={:?}\nsnapshots={snaps:#?}\nmedia={media:#?}\nfiles={:#?}",
            info.state,
            info.current_snapshot,
            info.attachments,
            self.snapshot_files(vm)
        )
    }

    /// Write the default-location config. Unless `text` sets guard_processes,
    /// the guard watches a process name no test runs: tests run in parallel,
    /// and one test's fake `VBoxHeadless` must not stall the others. Tests
    /// that need a front end found run one under a name of their own (at most
    /// 15 characters, the kernel's comm) and list only that name; the real-VM
    /// tests (`real_vm`), whose front end is always `VirtualBoxVM`, run one
    /// at a time and are the only tests that list it. Unless
    /// it sets quick_read, the quick read is on.
    pub fn write_config(&self, text: &str) -> PathBuf {
        let p = self.config_file();
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        let isolation = if text.contains("guard_processes") {
            ""
        } else {
            "guard_processes = [\"no-such-front-end-in-tests\"]\n"
        };
        // That list is narrower than the defaults, which would turn the quick
        // read off; the tests use it as users get it (see `quick_read`).
        let quick = if text.contains("quick_read") {
            ""
        } else {
            "quick_read = \"always\"\n"
        };
        std::fs::write(&p, format!("{isolation}{quick}{text}")).unwrap();
        p
    }

    pub fn config_file(&self) -> PathBuf {
        self.path("config/vblaunch/vblaunch.toml")
    }

    /// Use the built-in defaults (no config file), guard list included.
    pub fn remove_config(&self) {
        let _ = std::fs::remove_file(self.config_file());
    }
}

/// A helper holding a medium open; closing its stdin ends it (see
/// [`World::hold_medium`]).
pub struct Holder(std::process::Child);

impl Drop for Holder {
    fn drop(&mut self) {
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// A child process killed (and reaped) when dropped, even when a test fails:
/// `sleep` under the given name, with no inherited pipes.
#[cfg(unix)]
pub struct KillOnDrop(pub std::process::Child);

#[cfg(unix)]
impl KillOnDrop {
    pub fn spawn(exe: &Path) -> KillOnDrop {
        // A symlink, not a copy: the process name is the link's name, and a
        // freshly written executable can fail with ETXTBSY while parallel
        // tests fork.
        std::os::unix::fs::symlink("/bin/sleep", exe).unwrap();
        let child = Command::new(exe)
            .arg("600")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        KillOnDrop(child)
    }

    pub fn id(&self) -> u32 {
        self.0.id()
    }
}

#[cfg(unix)]
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Inject a fault into the fake VBoxManage (`fake fault <spec…>`; see
/// tests/fake_vboxmanage).
pub fn fault(w: &World, spec: &[&str]) {
    let mut args = vec!["fake", "fault"];
    args.extend_from_slice(spec);
    w.vbox_ok(&args);
}

/// Assert the steady state after a fold: one snapshot named `name`, current,
/// a leaf, taken by vblaunch; the disk is a differencing image; all media created.
pub fn assert_folded(w: &World, vm: &str, name: &str) {
    let info = w.info(vm);
    let managed: Vec<_> = info.snapshots.iter().filter(|s| s.name == name).collect();
    assert_eq!(managed.len(), 1, "{}", w.state(vm));
    let cur = info.current().expect("a current snapshot");
    assert_eq!(cur.uuid, managed[0].uuid);
    assert!(cur.children.is_empty());
    assert!(
        cur.description
            .as_deref()
            .unwrap_or("")
            .starts_with(vblaunch::snapshots::MARKER),
        "{:?}",
        cur.description
    );
    let media = w.hdds();
    let leaf = media
        .iter()
        .find(|m| m.uuid == info.attachments[0].image_uuid)
        .unwrap();
    assert!(leaf.is_differencing(), "{}", w.state(vm));
    // A running VM holds its media locked; otherwise every medium is plain "created".
    let ok: &[&str] = if info.state == "running" {
        &["created", "locked read", "locked write"]
    } else {
        &["created"]
    };
    for m in &media {
        assert!(ok.contains(&m.state.as_str()), "{}", w.state(vm));
    }
}

/// After a fold with restore points: `own` vblaunch snapshots on a linear
/// path, labelled current, previous, previous-2, … (newest first), the newest
/// current; one differencing image per snapshot in Snapshots/.
pub fn assert_restore_points(w: &World, vm: &str, own: usize) {
    assert_folded(w, vm, "current");
    let info = w.info(vm);
    let path = vblaunch::snapshots::current_path(&info);
    let (mine, off) = vblaunch::snapshots::own_snapshots(&info, "current", false);
    assert!(off.is_empty(), "{}", w.state(vm));
    assert_eq!(mine.len(), own, "{}", w.state(vm));
    for (age, &i) in mine.iter().rev().enumerate() {
        assert_eq!(
            info.snapshots[i].name,
            vblaunch::snapshots::label(age, "current"),
            "{}",
            w.state(vm)
        );
    }
    assert_eq!(
        path.len(),
        info.snapshots.len(),
        "a linear chain: {}",
        w.state(vm)
    );
    assert_eq!(
        w.snapshot_files(vm).len(),
        info.snapshots.len(),
        "{}",
        w.state(vm)
    );
}

/// Every process whose environment names this world's VBOX_USER_HOME (so
/// started for this world, never another test's): its PID and its name.
#[cfg(target_os = "linux")]
pub fn world_procs(w: &World) -> Vec<(u32, String)> {
    let needle = format!("VBOX_USER_HOME={}", w.path("vbox").display());
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        if let Ok(env) = std::fs::read(e.path().join("environ")) {
            if env.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
                let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
                out.push((pid, comm.trim_end().to_string()));
            }
        }
    }
    out
}

/// Processes started for this world that are still running, other than
/// VirtualBox's own lingering service processes.
#[cfg(target_os = "linux")]
pub fn world_processes(w: &World) -> Vec<u32> {
    world_procs(w)
        .into_iter()
        .filter(|(_, comm)| comm != "VBoxSVC" && comm != "VBoxXPCOMIPCD")
        .map(|(pid, _)| pid)
        .collect()
}

/// Start vblaunch with `args` (stdout to `stdout`) and read its stderr until
/// `markers` have appeared in this order (e.g. a step's log line, then the
/// progress its VBoxManage call prints: the call is then running); returns
/// the child, the rest of its stderr, and what was read.
#[cfg(target_os = "linux")]
pub fn spawn_until(
    w: &World,
    args: &[&str],
    markers: &[&str],
    stdout: std::process::Stdio,
) -> (std::process::Child, std::process::ChildStderr, Vec<u8>) {
    use std::io::Read;
    let mut cmd = Command::new(VBLAUNCH);
    w.base_env_pub(&mut cmd);
    cmd.env("VBLAUNCH_VBOXMANAGE", w.vboxmanage_exe())
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(stdout)
        .stderr(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut err = child.stderr.take().unwrap();
    let mut seen = Vec::new();
    let found = |text: &str| {
        let mut at = 0;
        markers.iter().all(|m| match text[at..].find(m) {
            Some(i) => {
                at += i + m.len();
                true
            }
            None => false,
        })
    };
    let mut buf = [0u8; 256];
    while !markers.is_empty() && !found(&String::from_utf8_lossy(&seen)) {
        let n = err.read(&mut buf).unwrap();
        if std::env::var_os("VBLAUNCH_TEST_DEBUG").is_some() {
            eprintln!(
                "[spawn_until] read {n}: {:?}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        assert!(
            n > 0,
            "vblaunch ended before {markers:?}: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    (child, err, seen)
}

/// Run vblaunch and SIGKILL it once its stderr contains `marker` (or, with
/// `after`, that long after it started). VBoxManage calls it started keep
/// running (they are in their own process group, as after a real crash of
/// the launcher); `orphans` says whether to kill them too (a hanging fake)
/// or wait for them to finish (real VirtualBox).
#[cfg(target_os = "linux")]
pub fn kill_vblaunch(
    w: &World,
    args: &[&str],
    marker: &[&str],
    after: Option<std::time::Duration>,
    kill_orphans: bool,
) -> String {
    let (mut child, _err, seen) = spawn_until(w, args, marker, std::process::Stdio::null());
    if let Some(d) = after {
        // The interruption point itself, not a synchronisation.
        std::thread::sleep(d);
    }
    let _ = child.kill();
    let _ = child.wait();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let left = world_processes(w);
        if left.is_empty() {
            break;
        }
        if std::env::var_os("VBLAUNCH_TEST_DEBUG").is_some() {
            for pid in &left {
                let comm =
                    std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                eprintln!("[kill_vblaunch] left {pid}: {comm:?}");
            }
        }
        if kill_orphans {
            for pid in &left {
                let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "orphaned VBoxManage calls did not end: {left:?}"
        );
        // Waiting for processes that are not our children to exit: poll.
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    String::from_utf8_lossy(&seen).into_owned()
}
