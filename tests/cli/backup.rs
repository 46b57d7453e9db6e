//! The payoff, on real VirtualBox: an `after_fold` hook runs `restic backup`
//! of the VM's folder and base disk at each launch. The repository grows by
//! about what the VM changed, not by the size of the disk, and what restic
//! restores is exactly the live base disk.
use std::io::Write;
use std::process::Command;

use crate::support::*;

/// restic, with this world's repository.
fn restic(w: &World, args: &[&str]) -> std::process::Output {
    Command::new("restic")
        .args(args)
        .env("RESTIC_REPOSITORY", w.path("repo"))
        .env("RESTIC_PASSWORD", "vblaunch-test")
        .env("RESTIC_CACHE_DIR", w.path("restic-cache"))
        .output()
        .expect("restic (Debian package restic)")
}

fn dir_size(p: &std::path::Path) -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir(p).unwrap().flatten() {
        let md = e.metadata().unwrap();
        total += if md.is_dir() {
            dir_size(&e.path())
        } else {
            md.len()
        };
    }
    total
}

#[test]
fn real_restic_after_fold_backs_up_only_what_changed() {
    let Some(backend) = real_backend("real_restic_after_fold_backs_up_only_what_changed") else {
        return;
    };
    let has_restic = Command::new("restic").arg("version").output().is_ok();
    if !has_restic {
        if std::env::var_os("VBLAUNCH_REQUIRE_TOOLS").is_some_and(|v| v == "1") {
            panic!("VBLAUNCH_REQUIRE_TOOLS=1 but restic is not installed");
        }
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED real_restic_after_fold_backs_up_only_what_changed: restic is not installed"
        );
        return;
    }
    let w = World::new(backend);
    // A VM with a 256 MiB base full of data (not a sparse, empty disk),
    // built from a raw image by VBoxManage itself, so the .vdi is complete on
    // disk before the first backup reads it.
    let raw = w.path("base.raw");
    {
        let mut f = std::io::BufWriter::new(std::fs::File::create(&raw).unwrap());
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..(256u64 << 20) / 8 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            f.write_all(&x.to_le_bytes()).unwrap();
        }
    }
    let vm = w.create_vm_from_raw("Backed", &raw);
    std::fs::remove_file(&raw).unwrap();
    let base_size = std::fs::metadata(&vm.base).unwrap().len();
    let init = restic(&w, &["init"]);
    assert!(
        init.status.success(),
        "{}",
        String::from_utf8_lossy(&init.stderr)
    );
    w.write_config(
        "[hooks]\nafter_fold = [\"sh\", \"-c\", \"restic backup --quiet --host vblaunch-test \\\"$VBLAUNCH_VM_DIR\\\" \\\"$VBLAUNCH_BASE_DISKS\\\"\"]\ntimeout_secs = 600\n",
    );
    let env = [
        ("RESTIC_REPOSITORY", w.path("repo").into_os_string()),
        ("RESTIC_PASSWORD", "vblaunch-test".into()),
        ("RESTIC_CACHE_DIR", w.path("restic-cache").into_os_string()),
    ];
    let env: Vec<(&str, &std::ffi::OsStr)> = env.iter().map(|(k, v)| (*k, v.as_os_str())).collect();
    let mut rows = Vec::new();
    let mut before = dir_size(&w.path("repo"));
    for launch in 0..4u64 {
        if launch > 0 {
            // The session: ~4 MiB of new data written by the guest.
            w.fill_mib(&w.leaf(&vm.uuid), 16 * launch, 4);
        }
        let r = w.vblaunch_env(&["fold", "Backed"], &env);
        assert_eq!(r.code, 0, "{r}");
        assert!(!r.stderr.contains("hook failed"), "{r}");
        let after = dir_size(&w.path("repo"));
        rows.push((launch, after - before));
        before = after;
    }
    let snapshots = restic(&w, &["snapshots", "--json"]);
    let list: serde_json::Value = serde_json::from_slice(&snapshots.stdout).unwrap();
    assert_eq!(
        list.as_array().unwrap().len(),
        4,
        "one restic snapshot per launch"
    );
    // The first backup holds the whole disk; each later one about the 4 MiB changed.
    assert!(rows[0].1 > 200 << 20, "{rows:?}");
    for (launch, growth) in &rows[1..] {
        assert!(
            *growth < 24 << 20,
            "launch {launch}: the repository grew {growth} bytes for 4 MiB of changes"
        );
    }
    let mut report = String::from(
        "restic repository growth per launch (256 MiB base, ~4 MiB written per session):\n",
    );
    for (launch, growth) in &rows {
        report.push_str(&format!(
            "  launch {launch}: +{:.1} MiB (copying the whole .vdi: {:.1} MiB)\n",
            *growth as f64 / 1048576.0,
            base_size as f64 / 1048576.0
        ));
    }
    let _ = write!(std::io::stderr(), "{report}");
    std::fs::write(w.path("report.txt"), &report).unwrap();

    let check = restic(&w, &["check"]);
    assert!(
        check.status.success(),
        "restic check: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let target = w.path("restored");
    let restore = restic(
        &w,
        &["restore", "latest", "--target", target.to_str().unwrap()],
    );
    assert!(
        restore.status.success(),
        "{}",
        String::from_utf8_lossy(&restore.stderr)
    );
    let restored = target.join(vm.base.strip_prefix("/").unwrap());
    assert!(
        std::fs::read(&restored).unwrap() == std::fs::read(&vm.base).unwrap(),
        "the restored base .vdi differs from the live one"
    );
}
