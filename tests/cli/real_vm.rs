//! vblaunch with REAL running VMs: real VirtualBox 7.2 (the chroot of
//! .ci/setup-real-vbox.sh), the guest run by VirtualBox's own instruction
//! emulator (step 5b there: the Qt front end `VirtualBoxVM` in driverless
//! mode). The running half of a session: start, the guest writing and
//! powering off, `--wait`, fold on exit, a VM powered off, killed or saved
//! from outside. Run when VBLAUNCH_TEST_VBOXMANAGE is set (CI requires it).
//!
//! Guests are boot sectors assembled with nasm from `real_vm.asm` at test
//! time (no binary in the repository): a writer (a pattern the test chooses,
//! to sectors the test chooses, with a boot counter so that each session
//! writes its own pattern), an idle VM (a blank disk: the BIOS finds nothing
//! to boot and the VM stays running) and a zero-writer (one whole, 1 MiB
//! aligned MiB of zeros over data the base holds: VirtualBox bug 850).
//!
//! Hermeticity: a real VM's front end is always a process named
//! `VirtualBoxVM`, and a guard list with that name sees every VM on the
//! machine. So these tests are one serial group ([`SERIAL`]: one real VM at a
//! time in this test binary), and they are the only tests whose guard list
//! names `VirtualBoxVM`; every other test lists only process names of its own
//! (see `World::write_config`), so a VM running here changes no other test's
//! result. Each test starts its own Xvfb (the display number it picked comes
//! back through `-displayfd`) and stops it when done, and powers off (or kills
//! by PID) the VMs it started, also when it fails ([`Xvfb`], [`VmGuard`]).
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::support::*;

/// One real VM at a time (see the module doc).
static SERIAL: Mutex<()> = Mutex::new(());

/// How long a guest may take for anything (IEM is an emulator; a BIOS and a
/// boot sector take 1–3 s when the machine is idle).
const SLOW: Duration = Duration::from_secs(180);

/// The guard list of these tests: the real front end only.
const GUARD: &str = "guard_processes = [\"VirtualBoxVM\"]\nwait_poll_ms = 200\n";

macro_rules! real_vm_world {
    ($name:expr) => {{
        let Some(b) = real_backend($name) else {
            return;
        };
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        (serial, World::new(b), Xvfb::start())
    }};
}

/// An X server of the test's own (the VM window needs a display).
struct Xvfb {
    child: Child,
    display: String,
}

impl Xvfb {
    fn start() -> Xvfb {
        let mut child = Command::new("Xvfb")
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "640x480x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("Xvfb (host package xvfb, installed by .ci/setup-real-vbox.sh)");
        // Xvfb writes the display number it chose once it accepts clients.
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let n: u32 = line
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("Xvfb gave no display number: {line:?}"));
        Xvfb {
            child,
            display: format!(":{n}"),
        }
    }
}

impl Drop for Xvfb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a writer guest does (see real_vm.asm).
#[derive(Clone)]
struct Guest {
    /// Repeated over the written sectors; with `counter`, the last byte is
    /// replaced by the boot count.
    pattern: Vec<u8>,
    lba: u64,
    count: u32,
    calls: u32,
    counter: bool,
    wait_key: bool,
}

/// The boot counter's sector.
const COUNTER_LBA: u64 = 1;

impl Guest {
    /// 16 sectors of `text#` at 2 MiB, a boot counter, and a key press
    /// between the write and the power-off.
    fn writer(text: &str) -> Guest {
        Guest {
            pattern: format!("{text}#").into_bytes(),
            lba: 4096,
            count: 16,
            calls: 1,
            counter: true,
            wait_key: true,
        }
    }

    /// One MiB of zeros at 1 MiB (32 writes of 32 KiB), powering off by itself.
    fn zero_writer() -> Guest {
        Guest {
            pattern: vec![0],
            lba: 2048,
            count: 64,
            calls: 32,
            counter: false,
            wait_key: false,
        }
    }

    /// The 512-byte boot sector, assembled now.
    fn assemble(&self, w: &World) -> Vec<u8> {
        let src = w.path("guest.asm");
        std::fs::write(&src, include_str!("real_vm.asm")).unwrap();
        let bin = w.path("guest.bin");
        let pattern = self
            .pattern
            .iter()
            .map(|b| b.to_string())
            .collect::<Vec<_>>()
            .join(",");
        let out = Command::new("nasm")
            .arg("-f")
            .arg("bin")
            .arg(format!("-DLBA={}", self.lba))
            .arg(format!("-DCOUNT={}", self.count))
            .arg(format!("-DCALLS={}", self.calls))
            .arg(format!("-DCOUNTER={}", self.counter as u8))
            .arg(format!("-DCOUNTER_LBA={COUNTER_LBA}"))
            .arg(format!("-DWAIT_KEY={}", self.wait_key as u8))
            .arg(format!("-DPATTERN={pattern}"))
            .arg("-o")
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("nasm (host package nasm, installed by .ci/setup-real-vbox.sh)");
        assert!(
            out.status.success(),
            "nasm: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let b = std::fs::read(&bin).unwrap();
        assert_eq!(b.len(), 512);
        assert_eq!(&b[510..], [0x55, 0xaa]);
        b
    }

    /// The bytes at `offset()` after boot number `boot` (1 for the first).
    fn written(&self, boot: u8) -> Vec<u8> {
        let mut p = self.pattern.clone();
        if self.counter {
            *p.last_mut().unwrap() = boot;
        }
        let one: Vec<u8> = p
            .iter()
            .copied()
            .cycle()
            .take(self.count as usize * 512)
            .collect();
        one.repeat(self.calls as usize)
    }

    fn offset(&self) -> usize {
        self.lba as usize * 512
    }

    /// The number of 1 MiB VDI blocks its writes touch.
    fn blocks(&self) -> u32 {
        let first = self.offset() >> 20;
        let last = (self.offset() + self.written(1).len() - 1) >> 20;
        let mut n = (last - first + 1) as u32;
        if self.counter && (COUNTER_LBA as usize * 512) >> 20 != first {
            n += 1;
        }
        n
    }
}

/// A raw 4 MiB disk: `boot` in sector 0 (none: a blank disk) and, with
/// `base_data`, non-zero bytes over 1..2 MiB.
fn raw_disk(w: &World, boot: Option<&[u8]>, base_data: bool) -> PathBuf {
    let mut img = vec![0u8; 4 << 20];
    if let Some(b) = boot {
        img[..512].copy_from_slice(b);
    }
    if base_data {
        for (i, b) in img[1 << 20..2 << 20].iter_mut().enumerate() {
            *b = b"base data "[i % 10];
        }
    }
    let raw = w.path("disk.raw");
    std::fs::write(&raw, img).unwrap();
    raw
}

/// Register a VM that can run here: IDE boot disk made from `raw`, 16 MiB,
/// the emulator as fallback (see .ci/setup-real-vbox.sh, step 5b).
fn running_vm(w: &World, name: &str, raw: &Path) -> Vm {
    let out = w.vbox_ok(&[
        "createvm",
        "--name",
        name,
        "--ostype",
        "Other",
        "--basefolder",
        w.path("vms").to_str().unwrap(),
        "--register",
    ]);
    let uuid = out
        .lines()
        .find_map(|l| l.strip_prefix("UUID: "))
        .unwrap()
        .trim()
        .to_string();
    let base = w.path(&format!("disks/{uuid}.vdi"));
    w.vbox_ok(&[
        "convertfromraw",
        raw.to_str().unwrap(),
        base.to_str().unwrap(),
        "--format",
        "VDI",
    ]);
    w.attach_disk(&uuid, "IDE", &base);
    w.vbox_ok(&[
        "modifyvm",
        &uuid,
        "--memory",
        "16",
        "--vram",
        "9",
        "--graphicscontroller",
        "vboxvga",
        "--audio-enabled",
        "off",
    ]);
    w.vbox_ok(&["setextradata", &uuid, "VBoxInternal/HM/FallbackToIEM", "1"]);
    Vm {
        name: name.to_string(),
        uuid,
        base,
    }
}

/// The `VirtualBoxVM` processes running VM `uuid`.
fn vm_pids(uuid: &str) -> Vec<u32> {
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let comm = std::fs::read_to_string(e.path().join("comm")).unwrap_or_default();
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        if comm.trim() == "VirtualBoxVM" && cmdline.split(|b| *b == 0).any(|a| a == uuid.as_bytes())
        {
            out.push(pid);
        }
    }
    out
}

/// Poll `f` (VirtualBox's state, processes that are not our children) until
/// it holds; fail after [`SLOW`].
fn wait_until(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(t.elapsed() < SLOW, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Powers the VM off (and kills its front end by PID) when dropped.
struct VmGuard<'a> {
    w: &'a World,
    uuid: String,
}

impl Drop for VmGuard<'_> {
    fn drop(&mut self) {
        if !vm_pids(&self.uuid).is_empty() {
            let _ = self.w.vbox(&["controlvm", &self.uuid, "poweroff"]);
        }
        let t = Instant::now();
        loop {
            let left = vm_pids(&self.uuid);
            if left.is_empty() || t.elapsed() > Duration::from_secs(60) {
                break;
            }
            if t.elapsed() > Duration::from_secs(10) {
                for pid in left {
                    let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn guard<'a>(w: &'a World, vm: &Vm) -> VmGuard<'a> {
    VmGuard {
        w,
        uuid: vm.uuid.clone(),
    }
}

fn state(w: &World, vm: &Vm) -> String {
    w.info(&vm.uuid).state.to_string()
}

/// Blocks the current diff of `vm` has allocated (the VDI header's
/// cBlocksAllocated, which VirtualBox keeps up to date while the VM runs):
/// how the test knows the guest has written.
fn diff_blocks(w: &World, vm: &Vm) -> u32 {
    let leaf = w.leaf(&vm.uuid);
    let mut head = [0u8; 0x188];
    let mut f = std::fs::File::open(&leaf).unwrap();
    std::io::Read::read_exact(&mut f, &mut head).unwrap();
    u32::from_le_bytes(head[0x184..0x188].try_into().unwrap())
}

/// The guest's bytes in the base disk (read through VirtualBox).
fn base_region(w: &World, vm: &Vm, g: &Guest) -> Vec<u8> {
    let all = w.content(&vm.base);
    all[g.offset()..g.offset() + g.written(1).len()].to_vec()
}

/// vblaunch started in the background, its stderr in a file.
struct Bg {
    child: Child,
    err: PathBuf,
}

impl Bg {
    fn spawn(w: &World, args: &[&str], x: &Xvfb) -> Bg {
        let err = w.path(&format!(
            "vblaunch-{}.err",
            args.join("_").replace('/', "_")
        ));
        let mut cmd = Command::new(VBLAUNCH);
        // Its own process group, as a terminal runs a foreground command.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        w.base_env_pub(&mut cmd);
        cmd.env("VBLAUNCH_VBOXMANAGE", w.vboxmanage_exe())
            .env("DISPLAY", &x.display)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&err).unwrap());
        Bg {
            child: cmd.spawn().unwrap(),
            err,
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.err).unwrap_or_default()
    }

    /// Wait for vblaunch to exit (it waits for the VM): its exit code and stderr.
    fn finish(mut self) -> (i32, String) {
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, self.stderr())
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn launch(w: &World, x: &Xvfb, args: &[&str]) -> Run {
    w.vblaunch_env(args, &[("DISPLAY", std::ffi::OsStr::new(&x.display))])
}

/// Start `vm` with a writer guest and `vblaunch <VM>` (config `cfg`) in
/// the background; return once the VM runs and the guest has written.
fn start_writer<'a>(w: &'a World, x: &Xvfb, vm: &Vm, g: &Guest) -> (Bg, VmGuard<'a>) {
    let bg = Bg::spawn(w, &[&vm.name], x);
    let vg = guard(w, vm);
    // Not a showvminfo before vblaunch has started the VM: its shared
    // session lock makes a concurrent startvm fail ("already locked by a
    // session"), measured.
    wait_until("vblaunch to start the VM", || {
        let e = bg.stderr();
        e.contains("Started VM") || e.contains("error")
    });
    assert_eq!(state(w, vm), "running", "{}", bg.stderr());
    assert!(!vm_pids(&vm.uuid).is_empty(), "a VirtualBoxVM process runs");
    wait_until("the guest's writes", || diff_blocks(w, vm) >= g.blocks());
    (bg, vg)
}

/// Enter, for the guest's key wait: the make code only. The guest powers
/// off on the press, so a break code in the same call fails ("Failed to send
/// a scancode.": measured) once the VM is going down.
fn press_key(w: &World, vm: &Vm) {
    w.vbox_ok(&["controlvm", &vm.uuid, "keyboardputscancode", "1c"]);
}

/// assert_eq for disk bytes: on failure, the start of each, not a MiB.
macro_rules! bytes_eq {
    ($got:expr, $want:expr $(, $($msg:tt)+)?) => {{
        let (got, want): (&[u8], &[u8]) = (&$got, &$want);
        assert!(
            got == want,
            "bytes differ: got {:?}…, want {:?}… {}",
            show(got),
            show(want),
            String::new() $(+ &format!($($msg)+))?
        );
    }};
}

/// Whether `got` holds exactly `want` (without printing a MiB on failure).
fn same(got: &[u8], want: &[u8]) -> bool {
    got == want
}

fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(&b[..b.len().min(48)]).into_owned()
}

/// 2.1: `vblaunch <VM>` with wait and fold_on_exit on a guest that writes
/// and powers off by itself: the base does not change while the VM runs;
/// afterwards it holds the guest's bytes and no snapshot is left.
#[test]
fn real_vm_session_folds_the_guests_writes_into_the_base_on_exit() {
    let (_s, w, x) =
        real_vm_world!("real_vm_session_folds_the_guests_writes_into_the_base_on_exit");
    let g = Guest::writer("vblaunch 2.1 session ");
    let vm = running_vm(&w, "Writer", &raw_disk(&w, Some(&g.assemble(&w)), false));
    w.write_config(&format!("{GUARD}wait = true\nfold_on_exit = true\n"));
    let before = std::fs::read(&vm.base).unwrap();
    let (bg, _vg) = start_writer(&w, &x, &vm, &g);
    // The guest has written and waits for a key: the base file is untouched.
    assert!(
        std::fs::read(&vm.base).unwrap() == before,
        "the base .vdi changed while the VM ran"
    );
    assert!(
        !same(&base_region(&w, &vm, &g), &g.written(1)),
        "the base holds the session already"
    );
    press_key(&w, &vm);
    let (code, err) = bg.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("has stopped (state: poweroff)") && err.contains("folded on exit"),
        "{err}"
    );
    bytes_eq!(
        base_region(&w, &vm, &g),
        g.written(1),
        "the base holds the session"
    );
    let info = w.info(&vm.uuid);
    assert!(info.snapshots.is_empty(), "{}", w.state(&vm.uuid));
    assert!(
        w.snapshot_files(&vm.uuid).is_empty(),
        "{}",
        w.state(&vm.uuid)
    );
    // The next launch freezes the base again: exactly one diff.
    let r = w.vblaunch(&["fold", "Writer"]);
    assert_eq!(r.code, 0, "{r}");
    assert_folded(&w, &vm.uuid, "current");
    assert_eq!(w.snapshot_files(&vm.uuid).len(), 1);
}

/// 2.2: powered off from outside (`controlvm poweroff`): the session is folded.
#[test]
fn real_vm_powered_off_from_outside_is_folded_on_exit() {
    let (_s, w, x) = real_vm_world!("real_vm_powered_off_from_outside_is_folded_on_exit");
    let g = Guest::writer("vblaunch 2.2 power off ");
    let vm = running_vm(&w, "Off", &raw_disk(&w, Some(&g.assemble(&w)), false));
    w.write_config(&format!("{GUARD}wait = true\nfold_on_exit = true\n"));
    let (bg, _vg) = start_writer(&w, &x, &vm, &g);
    w.vbox_ok(&["controlvm", &vm.uuid, "poweroff"]);
    let (code, err) = bg.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("folded on exit"), "{err}");
    bytes_eq!(base_region(&w, &vm, &g), g.written(1));
    assert!(w.info(&vm.uuid).snapshots.is_empty());
}

/// Issue 12: a whole `--wait` session of a VM with a non-ASCII name, in a
/// folder with a non-ASCII name, while the user's own locale is `C` (the
/// World runs vblaunch under LC_ALL=C): start, the guest writes, the VM is
/// powered off, vblaunch sees it stop and folds the session into the base.
#[test]
fn real_vm_a_non_ascii_vm_under_the_c_locale_runs_a_whole_wait_session() {
    let (_s, w, x) =
        real_vm_world!("real_vm_a_non_ascii_vm_under_the_c_locale_runs_a_whole_wait_session");
    let g = Guest::writer("vblaunch non-ASCII session ");
    let vm = running_vm(
        &w,
        "Büro-PC 開発",
        &raw_disk(&w, Some(&g.assemble(&w)), false),
    );
    w.write_config(&format!("{GUARD}wait = true\nfold_on_exit = true\n"));
    let (bg, _vg) = start_writer(&w, &x, &vm, &g);
    w.vbox_ok(&["controlvm", &vm.uuid, "poweroff"]);
    let (code, err) = bg.finish();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("VM 'Büro-PC 開発' has stopped") && err.contains("folded on exit"),
        "{err}"
    );
    bytes_eq!(base_region(&w, &vm, &g), g.written(1));
    assert!(w.info(&vm.uuid).snapshots.is_empty());
}

/// 2.2: the window closed (SIGTERM to `VirtualBoxVM`): the VM is aborted;
/// fold on exit leaves the session alone, and the next launch folds it in.
#[test]
fn real_vm_window_closed_is_aborted_and_folded_at_the_next_launch() {
    let (_s, w, x) =
        real_vm_world!("real_vm_window_closed_is_aborted_and_folded_at_the_next_launch");
    let g = Guest::writer("vblaunch 2.2 sigterm ");
    let vm = running_vm(&w, "Closed", &raw_disk(&w, Some(&g.assemble(&w)), false));
    w.write_config(&format!("{GUARD}wait = true\nfold_on_exit = true\n"));
    let (bg, _vg) = start_writer(&w, &x, &vm, &g);
    for pid in vm_pids(&vm.uuid) {
        assert!(Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap()
            .success());
    }
    let (code, err) = bg.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("has stopped (state: aborted)"), "{err}");
    assert_eq!(state(&w, &vm), "aborted");
    // Measured on 7.2.22: the aborted VM's session is folded on exit too
    // (its writes had reached the diff); never lost.
    assert!(err.contains("folded on exit"), "{err}");
    let got = base_region(&w, &vm, &g);
    assert!(same(&got, &g.written(1)), "base: {:?}", show(&got));
    assert!(w.info(&vm.uuid).snapshots.is_empty());
    next_launch_folds_and_starts(&w, &x, &vm, &g);
}

/// The next `vblaunch <VM>` (no wait) folds the last session into the base
/// and starts the VM again; the guest writes its second boot's pattern into
/// the new diff.
fn next_launch_folds_and_starts(w: &World, x: &Xvfb, vm: &Vm, g: &Guest) {
    w.write_config(GUARD);
    let r = launch(w, x, &[&vm.name]);
    let _vg = guard(w, vm);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("Started VM"), "{r}");
    assert_eq!(state(w, vm), "running");
    wait_until("the second boot's writes", || {
        diff_blocks(w, vm) >= g.blocks()
    });
    press_key(w, vm);
    wait_until("the guest's power-off", || vm_pids(&vm.uuid).is_empty());
    bytes_eq!(
        base_region(w, vm, g),
        g.written(1),
        "the first session is in the base"
    );
    let leaf = w.content(&w.leaf(&vm.uuid));
    bytes_eq!(
        leaf[g.offset()..g.offset() + g.written(1).len()],
        g.written(2)
    );
    assert_folded(w, &vm.uuid, "current");
}

/// 2.4: `kill -9` of the front end mid-session (a host crash's stand-in):
/// aborted; the next launch folds (the writes are in the base) and starts.
#[test]
fn real_vm_killed_mid_session_is_folded_and_started_at_the_next_launch() {
    let (_s, w, x) =
        real_vm_world!("real_vm_killed_mid_session_is_folded_and_started_at_the_next_launch");
    let g = Guest::writer("vblaunch 2.4 kill -9 ");
    let vm = running_vm(&w, "Crash", &raw_disk(&w, Some(&g.assemble(&w)), false));
    w.write_config(GUARD);
    let r = launch(&w, &x, &["Crash"]);
    let _vg = guard(&w, &vm);
    assert_eq!(r.code, 0, "{r}");
    wait_until("the guest's writes", || diff_blocks(&w, &vm) >= g.blocks());
    for pid in vm_pids(&vm.uuid) {
        let _ = Command::new("kill").args(["-9", &pid.to_string()]).status();
    }
    wait_until("the VM to be aborted", || state(&w, &vm) == "aborted");
    wait_until("the front end to exit", || vm_pids(&vm.uuid).is_empty());
    next_launch_folds_and_starts(&w, &x, &vm, &g);
}

/// 2.5: `controlvm savestate`: the next launch folds, keeps the saved
/// state, and the VM resumes where it was (no cold boot: the resumed guest
/// writes nothing more, a booted one would write its boot counter again).
#[test]
fn real_vm_saved_state_is_kept_by_the_fold_and_the_vm_resumes() {
    let (_s, w, x) = real_vm_world!("real_vm_saved_state_is_kept_by_the_fold_and_the_vm_resumes");
    let g = Guest::writer("vblaunch 2.5 savestate ");
    let vm = running_vm(&w, "Saver", &raw_disk(&w, Some(&g.assemble(&w)), false));
    w.write_config(GUARD);
    let r = launch(&w, &x, &["Saver"]);
    let _vg = guard(&w, &vm);
    assert_eq!(r.code, 0, "{r}");
    wait_until("the guest's writes", || diff_blocks(&w, &vm) >= g.blocks());
    w.vbox_ok(&["controlvm", &vm.uuid, "savestate"]);
    wait_until("the front end to exit", || vm_pids(&vm.uuid).is_empty());
    assert_eq!(state(&w, &vm), "saved");
    let r = launch(&w, &x, &["Saver"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stderr.contains("Started VM"), "{r}");
    assert_eq!(state(&w, &vm), "running");
    bytes_eq!(
        base_region(&w, &vm, &g),
        g.written(1),
        "the session is in the base"
    );
    // The guest resumes in its key wait; on the key it powers off at once.
    press_key(&w, &vm);
    wait_until("the guest's power-off", || vm_pids(&vm.uuid).is_empty());
    assert_eq!(state(&w, &vm), "poweroff");
    assert_eq!(
        diff_blocks(&w, &vm),
        0,
        "a cold boot would have written again"
    );
    assert_folded(&w, &vm.uuid, "current");
}

/// 2.3: while the VM runs, every command that would change it refuses with
/// its exit code and changes nothing; status says running and why the base
/// is safe to back up.
#[test]
fn real_vm_running_refuses_changes_and_status_says_why() {
    let (_s, w, x) = real_vm_world!("real_vm_running_refuses_changes_and_status_says_why");
    let g = Guest::writer("vblaunch 2.3 running ");
    let vm = running_vm(&w, "Busy", &raw_disk(&w, Some(&g.assemble(&w)), false));
    w.write_config(GUARD);
    assert_eq!(w.vblaunch(&["fold", "Busy"]).code, 0);
    let r = launch(&w, &x, &["Busy"]);
    let _vg = guard(&w, &vm);
    assert_eq!(r.code, 0, "{r}");
    wait_until("the guest's writes", || diff_blocks(&w, &vm) >= g.blocks());
    let before = w.state(&vm.uuid);
    let pid = vm_pids(&vm.uuid)[0];
    let front = format!("VirtualBoxVM (pid {pid})");
    // The guard sees the VM's window …
    for args in [
        &["fold", "Busy", "--no-wait"][..],
        &["Busy", "--no-wait"],
        &["Busy", "--wait-timeout", "1"],
    ] {
        let r = launch(&w, &x, args);
        assert_eq!(r.code, 3, "{args:?}: {r}");
        assert!(r.stderr.contains(&front), "{args:?}: {r}");
    }
    // … and without it in the guard list, VirtualBox's state stops them.
    w.write_config("guard_processes = [\"vbl-none\"]\n");
    for args in [&["fold", "Busy"][..], &["Busy"]] {
        let r = launch(&w, &x, args);
        assert_eq!(r.code, 5, "{args:?}: {r}");
        assert!(r.stderr.contains("running"), "{args:?}: {r}");
    }
    let r = w.vblaunch(&["restore", "Busy", "--to", "current", "--yes"]);
    assert_eq!(r.code, 5, "restore: {r}");
    w.write_config(GUARD);
    let r = w.vblaunch(&["restore", "Busy", "--to", "current", "--yes", "--no-wait"]);
    assert_eq!(r.code, 3, "restore: {r}");
    // doctor --fix with something to fix (VirtualBox's half-written settings).
    let cfg = w.info(&vm.uuid).cfg_file.unwrap();
    let tmp = PathBuf::from(format!("{}-tmp", cfg.display()));
    std::fs::write(&tmp, "half-written settings").unwrap();
    let r = w.vblaunch(&["doctor", "Busy", "--fix", "--yes"]);
    std::fs::remove_file(&tmp).unwrap();
    assert_eq!(r.code, 6, "doctor: {r}");
    assert!(
        r.stdout.contains("the fix failed: VirtualBox is running"),
        "{r}"
    );
    assert_eq!(w.state(&vm.uuid), before, "nothing changed");
    // status: running, and the base is frozen under the snapshot.
    let r = w.vblaunch(&["status", "Busy"]);
    assert_eq!(r.code, 0, "{r}");
    assert!(r.stdout.contains("running"), "{r}");
    assert!(
        r.stdout
            .contains(&format!("VirtualBox is running: {front}")),
        "{r}"
    );
    let r = w.vblaunch(&["status", "Busy", "--json"]);
    let j: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let v = &j["vms"][0];
    assert_eq!(v["state"], "running", "{v}");
    assert_eq!(v["safe_to_back_up"], true, "{v}");
    assert!(v["safe_reason"].as_str().unwrap().contains("frozen"), "{v}");
    assert!(
        j["front_ends_running"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["pid"] == pid),
        "{j}"
    );
}

/// 2.6: `keep = 3` over four real sessions: the restore points rotate, and
/// `restore --to previous` on the powered-off VM brings back exactly the
/// disk of the launch before the last (the second session's pattern).
#[test]
fn real_vm_four_sessions_rotate_restore_points_and_restore_brings_back_a_session() {
    let (_s, w, x) = real_vm_world!(
        "real_vm_four_sessions_rotate_restore_points_and_restore_brings_back_a_session"
    );
    let g = Guest::writer("vblaunch 2.6 keep ");
    let vm = running_vm(&w, "Keep", &raw_disk(&w, Some(&g.assemble(&w)), false));
    w.write_config(&format!("{GUARD}wait = true\nkeep = 3\n"));
    let region = |w: &World| {
        let c = w.content(&w.leaf(&vm.uuid));
        c[g.offset()..g.offset() + g.written(1).len()].to_vec()
    };
    for boot in 1..=4u8 {
        let (bg, _vg) = start_writer(&w, &x, &vm, &g);
        press_key(&w, &vm);
        let (code, err) = bg.finish();
        assert_eq!(code, 0, "session {boot}: {err}");
        bytes_eq!(region(&w), g.written(boot), "session {boot}");
        assert_restore_points(&w, &vm.uuid, (boot as usize).min(3));
    }
    let r = w.vblaunch(&["restore", "Keep", "--to", "previous", "--yes"]);
    assert_eq!(r.code, 0, "{r}");
    bytes_eq!(
        region(&w),
        g.written(2),
        "the disk as it was at the third launch"
    );
    assert_restore_points(&w, &vm.uuid, 2);
}

/// 2.7: Ctrl-C (SIGINT) while `--wait` waits, on the idle VM (a blank
/// disk: the BIOS finds nothing to boot and the VM stays running): vblaunch
/// exits, the VM keeps running, and the base stays as it was.
#[test]
fn real_vm_ctrl_c_stops_the_wait_not_the_vm() {
    let (_s, w, x) = real_vm_world!("real_vm_ctrl_c_stops_the_wait_not_the_vm");
    let vm = running_vm(&w, "Idle", &raw_disk(&w, None, false));
    w.write_config(&format!("{GUARD}wait = true\nfold_on_exit = true\n"));
    let before = std::fs::read(&vm.base).unwrap();
    let bg = Bg::spawn(&w, &["--wait", "Idle"], &x);
    let _vg = guard(&w, &vm);
    wait_until("vblaunch to wait", || {
        let e = bg.stderr();
        e.contains("Waiting for VM 'Idle' to shut down") || e.contains("error")
    });
    assert_eq!(state(&w, &vm), "running", "{}", bg.stderr());
    let pids = vm_pids(&vm.uuid);
    assert!(!pids.is_empty());
    // Ctrl-C: SIGINT to the terminal's foreground process group.
    assert!(Command::new("kill")
        .args(["-INT", "--", &format!("-{}", bg.child.id())])
        .status()
        .unwrap()
        .success());
    let (code, err) = bg.finish();
    assert_ne!(code, 0, "interrupted: {err}");
    assert_eq!(state(&w, &vm), "running", "{err}");
    assert_eq!(vm_pids(&vm.uuid), pids, "the same VM process runs on");
    assert!(!err.contains("folded on exit"), "{err}");
    assert!(
        std::fs::read(&vm.base).unwrap() == before,
        "the base .vdi changed while the idle VM ran"
    );
}

/// 2.9: VirtualBox bug 850 canary: a guest writes one whole, 1 MiB aligned
/// MiB of zeros over data the base holds; after the session and the fold on
/// exit, the base must read back zeros there (on affected versions the old
/// data came back, and deleting the snapshot made that permanent).
#[test]
fn real_vm_a_mib_of_zeros_survives_the_fold_bug_850_canary() {
    let (_s, w, x) = real_vm_world!("real_vm_a_mib_of_zeros_survives_the_fold_bug_850_canary");
    let g = Guest::zero_writer();
    let vm = running_vm(&w, "Zeros", &raw_disk(&w, Some(&g.assemble(&w)), true));
    assert_eq!(g.written(1), vec![0u8; 1 << 20]);
    assert!(
        base_region(&w, &vm, &g).iter().all(|b| *b != 0),
        "base data first"
    );
    w.write_config(&format!("{GUARD}wait = true\nfold_on_exit = true\n"));
    let bg = Bg::spawn(&w, &["Zeros"], &x);
    let _vg = guard(&w, &vm);
    let (code, err) = bg.finish();
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("folded on exit"), "{err}");
    let version = w.vbox_ok(&["--version"]);
    assert!(
        base_region(&w, &vm, &g).iter().all(|b| *b == 0),
        "VirtualBox {} lost a 1 MiB all-zero write (bug 850): the base holds its old data",
        version.trim()
    );
}
