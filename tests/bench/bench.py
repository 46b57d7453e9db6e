#!/usr/bin/env python3
"""vblaunch benchmark driver (run through tests/bench/run.sh, which builds the
binaries and sets up real VirtualBox first).

Sections (each can be selected with --sections):
  calls    VBoxManage invocations per `vblaunch fold` / `vblaunch VM`, counted
           in the fake's call log; sequential rounds from vblaunch's own log
  overhead vblaunch against the instant fake vs. the same calls in a shell
           loop; the process scan alone with 500+ processes; peak RSS
  real     real VirtualBox: `vblaunch fold` vs. the seed's script on an
           identical VM, alternating, with an empty / 64 MiB / 1 GiB diff
  scaling  real VirtualBox: 8 MiB diff on a 32 MiB vs. a 2 GiB base; diffs of
           8 / 64 / 256 MiB

Prints one Markdown table per section and writes them all to --out.
Only the standard library; every path given to VBoxManage is under /tmp.
"""
import argparse
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))
# VBoxManage inside the chroot that setup-real-vbox.sh builds.
NATIVE_VBM = "/usr/lib/virtualbox/VBoxManage"
MiB = 1024 * 1024

# Why each VBoxManage call of one steady-state `vblaunch fold VM` is made (the
# seed script makes only the two mutating ones). The read before is one call
# checked against the VM's .vbox (src/vbox/quick.rs); showvminfo + list hdds
# (one after the other: concurrent clients can hang 10 s) only when they
# disagree, the VM runs, or the guard list is narrowed.
CALL_REASONS = [
    ("list --multiple vms runningvms hdds", "read before",
     "VBoxSVC's live view: the VM is registered (name → UUID, unambiguous), not running, and every disk "
     "of its chain exists, is accessible and `normal` (`inaccessible` for a deleted diff); the tree, "
     "attachments and saved state come from its .vbox, which must agree"),
    ("showvminfo VM --machinereadable", "read before, only if the quick read cannot be trusted",
     "state (poweroff/saved/aborted, no session), snapshot tree, attached disks"),
    ("list hdds", "read before, with that showvminfo",
     "the media registry: showvminfo alone exits 0 for a deleted diff"),
    ("snapshot VM-UUID delete SNAP-UUID", "seed's call",
     "the fold (merge); by UUID, never by name"),
    ("snapshot VM-UUID take current --description=…", "seed's call",
     "the fresh snapshot; the description carries vblaunch's marker"),
    ("setextradata VM-UUID vblaunch/own", "after the take",
     "records the snapshots vblaunch took (UUIDs) in the VM's .vbox: a snapshot is vblaunch's only "
     "with its marker and this record, and the record travels with the VM folder"),
    ("startvm VM-UUID --type …", "launch only", "starts the VM"),
]


def log(msg):
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def median(xs):
    return statistics.median(xs) if xs else float("nan")


def fmt_ms(x):
    return f"{x:.0f}" if x >= 100 else f"{x:.1f}"


class Failed(Exception):
    pass


class World:
    """A temp HOME / XDG dirs / VBOX_USER_HOME under /tmp, and a VBoxManage."""

    def __init__(self, root, vboxmanage, vblaunch, name):
        self.dir = tempfile.mkdtemp(prefix=f"vblaunch-bench-{name}-", dir="/tmp")
        for d in ("home", "config", "data", "vbox", "vms", "disks"):
            os.makedirs(os.path.join(self.dir, d))
        self.vbm = vboxmanage
        self.vblaunch = vblaunch
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.p("home"),
            "XDG_CONFIG_HOME": self.p("config"),
            "XDG_DATA_HOME": self.p("data"),
            "VBOX_USER_HOME": self.p("vbox"),
            "VBLAUNCH_VBOXMANAGE": vboxmanage,
            "LC_ALL": "C",
        }
        if os.environ.get("VBOX_CHROOT"):
            self.env["VBOX_CHROOT"] = os.environ["VBOX_CHROOT"]

    def p(self, rel):
        return os.path.join(self.dir, rel)

    def run(self, argv, env=None, check=True):
        e = dict(self.env, **(env or {}))
        r = subprocess.run(argv, env=e, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        if check and r.returncode != 0:
            raise Failed(f"{' '.join(argv)} failed (exit {r.returncode}):\n{r.stdout}\n{r.stderr}")
        return r

    def vbox(self, *args, check=True):
        return self.run([self.vbm, *args], check=check).stdout

    def timed(self, argv, env=None, expect=0):
        """Wall ms of one run, and its rusage (ru_maxrss covers its descendants)."""
        e = dict(self.env, **(env or {}))
        t0 = time.perf_counter()
        p = subprocess.Popen(argv, env=e, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        err = p.stderr.read()
        _, status, ru = os.wait4(p.pid, 0)
        ms = (time.perf_counter() - t0) * 1000
        p.returncode = os.waitstatus_to_exitcode(status)
        p.stderr.close()
        if p.returncode != expect:
            raise Failed(f"{' '.join(argv)}: exit {p.returncode}, expected {expect}:\n{err.decode(errors='replace')}")
        return ms, ru

    def create_vm(self, name, mb):
        out = self.vbox("createvm", "--name", name, "--ostype", "Linux_64",
                        "--basefolder", self.p("vms"), "--register")
        uuid = re.search(r"^UUID: (\S+)", out, re.M).group(1)
        base = self.p(f"disks/{name}.vdi")
        self.vbox("createmedium", "disk", "--filename", base, "--size", str(mb), "--format", "VDI")
        self.vbox("storagectl", uuid, "--name", "SATA", "--add", "sata")
        self.vbox("storageattach", uuid, "--storagectl", "SATA", "--port", "0", "--device", "0",
                  "--type", "hdd", "--medium", base)
        return uuid, base

    def leaf(self, vm):
        out = self.vbox("showvminfo", vm, "--machinereadable")
        return re.search(r'^"SATA-0-0"="(.*)"$', out, re.M).group(1)

    def write_config(self, guard="VBoxBenchFE"):
        """vblaunch's config: the guard watches a front-end name only this
        benchmark uses. The scan still reads every process (its cost is the
        same), but a VBoxHeadless started by something else on the machine (a
        parallel `cargo test`) cannot make a timed run wait. That narrowed list
        would turn the quick read off ("auto"); users with the default list
        get it, so the benchmark turns it on."""
        path = self.p("config/vblaunch/vblaunch.toml")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(f'guard_processes = ["{guard}"]\nquick_read = "always"\n')

    def log_file(self):
        return self.p("data/vblaunch/vblaunch.log")

    def cleanup(self, keep):
        if keep:
            log(f"kept {self.dir}")
        else:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------
# vblaunch's log: when each VBoxManage call started and ended

TS = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?Z \[(\w+)\] (.*)$")


def parse_ts(date, frac):
    t = datetime.strptime(date, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc).timestamp()
    return t + (float("0." + frac) if frac else 0.0)


def call_intervals(log_text):
    """[(start, end, command)] of the VBoxManage calls in a vblaunch log."""
    open_, out = {}, []
    for line in log_text.splitlines():
        m = TS.match(line)
        if not m:
            continue
        t, msg = parse_ts(m.group(1), m.group(2)), m.group(4)
        if msg.startswith("run: "):
            open_[msg[5:]] = t
        else:
            m2 = re.match(r"(?:exit code -?\d+|killed by a signal) after \d+ ms: (.*)$", msg)
            if m2 and m2.group(1) in open_:
                out.append((open_.pop(m2.group(1)), t, m2.group(1)))
    return sorted(out)


def rounds(intervals):
    """Sequential rounds: groups of calls that overlap in time."""
    n, end = 0, None
    for s, e, _ in intervals:
        if end is None or s >= end:
            n += 1
            end = e
        else:
            end = max(end, e)
    return n


def read_calls(path):
    with open(path) as f:
        return [line.rstrip("\n").split("\t") for line in f if line.strip()]


def short(call, vm_uuid):
    words = []
    for w in call:
        if w.startswith("--description="):
            w = "--description=…"
        elif w == vm_uuid:
            w = "VM-UUID"
        elif re.fullmatch(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", w):
            w = "SNAP-UUID"
        words.append(w)
    return " ".join(words)


# --------------------------------------------------------------------------
# Sections against the fake

def fake_world(a):
    w = World("/tmp", a.fake, a.vblaunch, "fake")
    w.write_config()
    uuid, _ = w.create_vm("Bench", 32)
    w.run([a.vblaunch, "fold", "Bench"])   # first run: adopt (take only)
    w.run([a.vblaunch, "fold", "Bench"])   # steady state from here on
    return w, uuid


def section_calls(a, out):
    w, uuid = fake_world(a)
    try:
        calls_log = w.p("vbox/fake-calls.log")
        res = {}
        for what, argv in (("fold", [a.vblaunch, "fold", "Bench"]),
                           ("launch", [a.vblaunch, "--type", "headless", "Bench"])):
            open(calls_log, "w").close()
            open(w.log_file(), "w").close()
            w.run(argv)
            calls = read_calls(calls_log)
            with open(w.log_file()) as f:
                iv = call_intervals(f.read())
            res[what] = (calls, rounds(iv))
            if what == "launch":
                poweroff(w)
        fold_calls, fold_rounds = res["fold"]
        launch_calls, launch_rounds = res["launch"]
        seed_fold, seed_launch = 2, 3
        target_fold, target_launch = seed_fold + 2, seed_launch + 2
        lines = [
            "### 2. VBoxManage invocations (fake VBoxManage call log)",
            "",
            "| run | seed script | vblaunch: invocations | vblaunch: sequential rounds | target (seed + 2 reads [+ startvm]) | met |",
            "|---|---:|---:|---:|---:|---|",
            f"| `vblaunch fold VM` (steady state) | {seed_fold} | {len(fold_calls)} | {fold_rounds} | {target_fold} | "
            f"{'yes' if fold_rounds <= target_fold else 'NO'} |",
            f"| `vblaunch VM` (launch) | {seed_launch} | {len(launch_calls)} | {launch_rounds} | {target_launch} | "
            f"{'yes' if launch_rounds <= target_launch else 'NO'} |",
            "",
            "Rounds: calls that run concurrently (overlapping in vblaunch's log) count once. The read",
            "before is one call plus the VM's .vbox; `showvminfo` + `list hdds` replace it only when the",
            "two disagree (see `src/vbox/quick.rs`).",
            "",
            "Calls of one launch, in order:",
            "",
            "| # | call (from the fake's log) | why |",
            "|---:|---|---|",
        ]
        reasons = {r[0]: r for r in CALL_REASONS}
        for i, c in enumerate(launch_calls, 1):
            s = short(c, uuid)
            key = s.replace("Bench", "VM").replace("headless", "…")
            # Exact, else by prefix (a call whose tail holds UUIDs).
            key_r = reasons.get(key) or next(
                (r for r in CALL_REASONS if key.startswith(r[0] + " ")), None
            )
            why = f"{key_r[1]}: {key_r[2]}" if key_r else "?"
            lines.append(f"| {i} | `{s}` | {why} |")
        out.append("\n".join(lines))
        log(f"calls: fold {len(fold_calls)} in {fold_rounds} rounds, launch {len(launch_calls)} in {launch_rounds} rounds")
    finally:
        w.cleanup(a.keep)


def poweroff(w):
    """Undo a fake launch (unlogged control calls)."""
    w.vbox("fake", "set-state", "Bench", "poweroff")
    w.vbox("fake", "session", "Bench", "-")


def spawn_sleepers(n, where):
    procs = []
    for _ in range(n):
        procs.append(subprocess.Popen(["sleep", "600"], stdin=subprocess.DEVNULL,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    front = os.path.join(where, "VBoxBenchFE")  # the guard's name (write_config)
    shutil.copy("/bin/sleep", front)
    procs.append(subprocess.Popen([front, "600"], stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return procs


def stop(procs):
    for p in procs:
        p.kill()
    for p in procs:
        p.wait()


SCAN = re.compile(r"process scan: (\d+) processes in ([0-9.]+) ms")


def scan_gap_ms(log_text):
    """The process scan's own time, as vblaunch logs it (the first scan of the run)."""
    for line in log_text.splitlines():
        m = SCAN.search(line)
        if m:
            return float(m.group(2))
    return float("nan")


def peak_rss_kb(w, argv, expect=0):
    """Peak RSS of one run of argv, from GNU time (a small parent: a child forked
    from this Python process would inherit Python's RSS high-water mark)."""
    f = w.p("time.out")
    w.timed(["/usr/bin/time", "-f", "%M", "-o", f, *argv], expect=expect)
    with open(f) as fh:
        return int(fh.read().split()[-1])


def overhead_pair(a, w, argv, mode, n, chunk=1):
    """vblaunch runs and the shell loop's runs, strictly alternating so that
    background load hits both alike. Returns (vblaunch ms, loop ms, vblaunch
    CPU ms, loop CPU ms, paired differences vblaunch − loop) lists."""
    loop = ["bash", os.path.join(HERE, "fake-loop.sh"), a.fake, "Bench"]
    v, l, vcpu, lcpu, diffs = [], [], [], [], []
    while len(v) < n:
        k = min(chunk, n - len(v))
        for _ in range(k):
            if mode == "launch":
                poweroff(w)
            ms, ru = w.timed(argv)
            v.append(ms)
            vcpu.append((ru.ru_utime + ru.ru_stime) * 1000)
        if mode == "launch":
            poweroff(w)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        l += [int(x) / 1000 for x in w.run(loop + [str(k), mode]).stdout.split()]
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1000
        lcpu += [cpu / k] * k
        diffs.append(median(v[-k:]) - median(l[-k:]))
    if mode == "launch":
        poweroff(w)
    return v, l, vcpu, lcpu, diffs


def section_overhead(a, out):
    w, uuid = fake_world(a)
    procs = []
    try:
        n = a.fake_runs
        fold = [a.vblaunch, "fold", "Bench"]
        launch = [a.vblaunch, "--type", "headless", "Bench"]
        for _ in range(3):  # warm the page cache
            w.timed(fold)
        load = os.getloadavg()[0]
        v_fold, l_fold, vc_fold, lc_fold, d_fold = overhead_pair(a, w, fold, "fold", n)
        v_launch, l_launch, vc_launch, lc_launch, d_launch = overhead_pair(a, w, launch, "launch", n)
        fake_ms = [w.timed([a.fake, "showvminfo", "Bench", "--machinereadable"])[0] for _ in range(n)]
        # Start-up alone: a vblaunch run that neither scans nor calls VBoxManage.
        start_ms = [w.timed([a.vblaunch, "config", "path"])[0] for _ in range(n)]

        # The process scan alone: a VirtualBox front end runs, and --no-wait makes
        # vblaunch refuse right after the scan (exit 3; the read it ran alongside
        # the scan is dropped). Its log gives the scan's own time.
        refuse = [a.vblaunch, "--no-wait", "fold", "Bench"]

        def refusal():
            walls, gaps = [], []
            for _ in range(n):
                open(w.log_file(), "w").close()
                walls.append(w.timed(refuse, expect=3)[0])
                with open(w.log_file()) as f:
                    gaps.append(scan_gap_ms(f.read()))
            return median(walls), median(gaps)

        def nprocs():
            return sum(1 for d in os.listdir("/proc") if d.isdigit())

        procs = spawn_sleepers(0, w.dir)
        few_n = nprocs()
        r_few = refusal()
        stop(procs)
        procs = spawn_sleepers(a.procs, w.dir)
        time.sleep(1)
        many_n = nprocs()
        r_many = refusal()
        rss_refuse = peak_rss_kb(w, refuse, expect=3)
        # Whole runs with that many processes (the front end gone, the sleepers stay).
        stop(procs[-1:])
        procs = procs[:-1]
        mv_fold, ml_fold, _, _, md_fold = overhead_pair(a, w, fold, "fold", n)
        mv_launch, ml_launch, _, _, md_launch = overhead_pair(a, w, launch, "launch", n)
        rss_fold = max(peak_rss_kb(w, fold) for _ in range(5))
        poweroff(w)
        rss_launch = 0
        for _ in range(5):
            rss_launch = max(rss_launch, peak_rss_kb(w, launch))
            poweroff(w)
        rss_fake = max(peak_rss_kb(w, [a.fake, "list", "hdds"]) for _ in range(5))
        stop(procs)
        procs = []

        own_fold, own_launch = median(d_fold), median(d_launch)
        own_fold_many, own_launch_many = median(md_fold), median(md_launch)
        peak = max(rss_refuse, rss_fold, rss_launch)
        worst_own = max(own_launch, own_launch_many)
        lines = [
            "### 3. Own overhead (fake VBoxManage answering instantly)",
            "",
            f"Median of {n} runs each. The shell loop (`tests/bench/fake-loop.sh`) makes exactly the same",
            "calls, sequentially, timed inside bash; vblaunch and the loop strictly alternate",
            f"(load average at the start: {load:.2f}). Own time = median of the paired differences vblaunch − loop.",
            "",
            f"| measurement | {few_n} processes | {many_n} processes |",
            "|---|---:|---:|",
            f"| `vblaunch fold VM` (3 calls), ms | {fmt_ms(median(v_fold))} | {fmt_ms(median(mv_fold))} |",
            f"| the same 3 calls in a shell loop, ms | {fmt_ms(median(l_fold))} | {fmt_ms(median(ml_fold))} |",
            f"| **vblaunch's own time per fold**, ms | **{fmt_ms(own_fold)}** | **{fmt_ms(own_fold_many)}** |",
            f"| `vblaunch VM` launch (4 calls), ms | {fmt_ms(median(v_launch))} | {fmt_ms(median(mv_launch))} |",
            f"| the same 4 calls in a shell loop, ms | {fmt_ms(median(l_launch))} | {fmt_ms(median(ml_launch))} |",
            f"| **vblaunch's own time per launch**, ms | **{fmt_ms(own_launch)}** | **{fmt_ms(own_launch_many)}** |",
            f"| CPU (user+sys, with the fake children) per launch: vblaunch / loop, ms | {fmt_ms(median(vc_launch))} / {fmt_ms(median(lc_launch))} | |",
            f"| refusal after the scan (scan + the read run alongside it), wall, ms | {fmt_ms(r_few[0])} | {fmt_ms(r_many[0])} |",
            f"| process scan alone (vblaunch's log), ms | {fmt_ms(r_few[1])} | **{fmt_ms(r_many[1])}** |",
            f"| vblaunch start-up alone (`vblaunch config path`), ms | {fmt_ms(median(start_ms))} | |",
            f"| one fake VBoxManage call (`showvminfo`), for scale, ms | {fmt_ms(median(fake_ms))} | |",
            f"| peak RSS of vblaunch alone (the refusal: no child), MB | | {rss_refuse / 1024:.1f} |",
            f"| peak RSS of `vblaunch fold` / `vblaunch VM` (incl. the fake child, GNU time), MB | | {rss_fold / 1024:.1f} / {rss_launch / 1024:.1f} |",
            f"| peak RSS of the fake VBoxManage alone, MB | | {rss_fake / 1024:.1f} |",
            "",
            f"Targets: own time ≤ 10 ms per launch — {'met' if worst_own <= 10 else 'MISSED'} "
            f"(worst {fmt_ms(worst_own)} ms); peak RSS ≤ 15 MB — {'met' if peak / 1024 <= 15 else 'MISSED'} "
            f"({peak / 1024:.1f} MB, of which the fake child may be the larger part).",
        ]
        out.append("\n".join(lines))
        log(f"overhead: fold {median(v_fold):.1f} vs loop {median(l_fold):.1f} ms; launch {median(v_launch):.1f} vs {median(l_launch):.1f}; "
            f"with {many_n} procs launch {median(mv_launch):.1f} vs {median(ml_launch):.1f}; scan {r_many[1]:.1f} ms; rss {peak} kB")
    finally:
        stop(procs)
        w.cleanup(a.keep)


# --------------------------------------------------------------------------
# Real VirtualBox

class Real:
    def __init__(self, a):
        self.a = a
        self.w = World("/tmp", a.vboxmanage, a.vblaunch, "real")
        self.fill = self.w.p("vbox-fill.py")
        shutil.copy(os.path.join(HERE, "vbox-fill.py"), self.fill)
        self.fill_secs = []
        log(f"real VirtualBox: {self.w.vbox('--version').strip()} in {self.w.dir}")
        self.w.write_config()
        # Keep VBoxSVC warm for the whole run (see vbox-keepalive.py).
        keep = self.w.p("vbox-keepalive.py")
        shutil.copy(os.path.join(HERE, "vbox-keepalive.py"), keep)
        self.keeper = subprocess.Popen([a.vboxmanage, keep], env=dict(self.w.env, VBOX_WRAPPER_PROG="/usr/bin/python3"),
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.keeper.stdout.readline()
        if not line.startswith("holding"):
            raise Failed(f"could not start the VBoxSVC keep-alive client ({line!r})")
        self.w.vbox("list", "vms")
        self.vms = {}
        self.call_ms = {}
        # Native mode: the contender runs INSIDE the chroot (one wrapper
        # entry per fold, paid by both contenders alike) and calls VBoxManage
        # directly, as on a machine with VirtualBox installed. The binaries go
        # under the world's folder (/tmp is shared with the chroot).
        self.native_ok = a.vboxmanage.endswith("vboxmanage-chroot")
        if self.native_ok:
            nb = self.w.p("native")
            os.makedirs(nb)
            for src in (a.vblaunch, os.path.join(HERE, "seed-fold.sh"), os.path.join(HERE, "floor-fold.sh"),
                        os.path.join(HERE, "vbox-lookup.sh")):
                shutil.copy(src, nb)
            e = dict(self.w.env, VBLAUNCH_VBOXMANAGE=NATIVE_VBM, VBOXMANAGE=NATIVE_VBM, PATH="/usr/bin:/bin")
            e.pop("VBOX_CHROOT", None)
            self.native_env = "export " + " ".join(f"{k}={shlex.quote(v)}" for k, v in sorted(e.items())) + '; exec "$@"'

    def vm(self, name, mb, managed):
        """A VM in steady state: vblaunch-managed (two folds done) or seed-managed."""
        if name not in self.vms:
            uuid, base = self.w.create_vm(name, mb)
            if managed:
                self.w.run([self.a.vblaunch, "fold", name])
                self.w.run([self.a.vblaunch, "fold", name])
            else:
                self.w.vbox("snapshot", name, "take", "current")
                self.w.run(["sh", os.path.join(HERE, "seed-fold.sh"), name],
                           env={"VBOXMANAGE": self.a.vboxmanage})
            self.vms[name] = base
        return self.vms[name]

    def prepare(self, name, mib):
        """Write `mib` MiB into the VM's current diff (untimed), then sync."""
        leaf = self.w.leaf(name)  # also keeps VBoxSVC warm, the same for every fold
        if mib:
            t0 = time.perf_counter()
            self.w.run([self.a.vboxmanage, self.fill, leaf, str(mib)],
                       env={"VBOX_WRAPPER_PROG": "/usr/bin/python3"})
            self.fill_secs.append((mib, time.perf_counter() - t0))
        # The merge reads the diff from disk, as after a day of guest writes,
        # not from the page cache this benchmark just filled: write back, then
        # drop the diff's and the base's cached pages (nothing else is evicted).
        os.sync()
        for path in (leaf, self.vms[name]):
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)

    def inside(self, argv):
        """`argv` run inside the chroot with the world's environment."""
        return [self.a.vboxmanage, "-c", self.native_env, "sh", *argv]

    def native_path(self, tool):
        return os.path.join(self.w.p("native"), os.path.basename(tool))

    def timed_as(self, argv, native, env=None):
        if native:
            return self.w.timed(self.inside(argv), env={"VBOX_WRAPPER_PROG": "/bin/sh"})[0]
        return self.w.timed(argv, env=env)[0]

    def fold_vblaunch(self, name, native=False, adopt=False):
        open(self.w.log_file(), "w").close()
        exe = self.native_path(self.a.vblaunch) if native else self.a.vblaunch
        ms = self.timed_as([exe, "fold", name] + (["--adopt"] if adopt else []), native)
        with open(self.w.log_file()) as f:
            iv = call_intervals(f.read())
        for s_, e_, cmd in iv:
            w_ = cmd.split()[1:]
            kind = {"list": " ".join(w_[:2]), "snapshot": " ".join(w_[:1] + w_[2:3])}.get(w_[0], w_[0])
            self.call_ms.setdefault(kind, []).append((e_ - s_) * 1000)
        return ms

    def fold_floor(self, name, native=False):
        script = self.native_path("floor-fold.sh") if native else os.path.join(HERE, "floor-fold.sh")
        return self.timed_as(["bash", script, name], native, env={"VBOXMANAGE": self.a.vboxmanage})

    def fold_seed(self, name, native=False):
        script = self.native_path("seed-fold.sh") if native else os.path.join(HERE, "seed-fold.sh")
        return self.timed_as(["sh", script, name], native, env={"VBOXMANAGE": self.a.vboxmanage})

    def compare(self, mib, runs, floor, native=False):
        """vblaunch / seed script [/ floor script] folds on twin VMs, `mib` MiB
        written before each, in rotating order."""
        self.vm("BenchV", 2048, True)
        self.vm("BenchS", 2048, False)
        # vblaunch folds with --adopt: the twin it gets may carry the seed's
        # unmarked "current" (same calls, same checks otherwise).
        who = [("v", lambda n: self.fold_vblaunch(n, native, adopt=True)),
               ("s", lambda n: self.fold_seed(n, native))]
        vms = ["BenchV", "BenchS"]
        if floor:
            self.vm("BenchF", 2048, False)
            who.append(("f", lambda n: self.fold_floor(n, native)))
            vms.append("BenchF")
        res = {k: [] for k, _ in who}
        for i in range(runs):
            # The twins rotate among the contenders too, so that a difference
            # between their disk files (layout, fragmentation) hits all alike.
            order = [(k, vms[(j + i) % len(vms)], fold) for j, (k, fold) in enumerate(who)]
            order = order[i % len(order):] + order[:i % len(order)]
            if i % 2:
                order.reverse()
            for k, name, fold in order:
                self.prepare(name, mib)
                res[k].append(fold(name))
            log(f"  {'native ' if native else ''}{mib} MiB run {i + 1}/{runs}: " + ", ".join(f"{k} {v[-1]:.0f} ms" for k, v in res.items()))
        return res["v"], res["s"], res.get("f", [])

    def call_costs(self, n=9):
        """Cost of one call through this VBoxManage, for the breakdown."""
        wrapper = []
        if self.a.vboxmanage.endswith("vboxmanage-chroot"):
            wrapper = [self.w.timed([self.a.vboxmanage], env={"VBOX_WRAPPER_PROG": "/bin/true"})[0] for _ in range(n)]
        version = [self.w.timed([self.a.vboxmanage, "--version"])[0] for _ in range(n)]
        return median(wrapper) if wrapper else None, median(version)

    def series(self, name, mb, mib, runs):
        self.vm(name, mb, True)
        xs = []
        for _ in range(runs):
            self.prepare(name, mib)
            xs.append(self.fold_vblaunch(name))
        log(f"  {name} ({mb} MiB base), {mib} MiB diff: median {median(xs):.0f} ms")
        return xs

    def close(self):
        for name in list(self.vms):
            self.w.vbox("unregistervm", name, "--delete", check=False)
        self.keeper.stdin.close()
        try:
            self.keeper.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.keeper.kill()
            self.keeper.wait()
        self.w.cleanup(self.a.keep)


def section_real(a, out, real):
    load = os.getloadavg()[0]
    rows = []
    cases = [(0, a.runs, True, False), (64, a.runs, True, False)]
    if a.runs_1g > 0:
        cases.append((1024, a.runs_1g, False, False))
    if real.native_ok:
        cases += [(0, a.runs, True, True)]
        if a.runs_1g > 0:
            cases.append((1024, a.runs_1g, False, True))
    calls = {}
    for mib, runs, floor, native in cases:
        log(f"real: {mib} MiB diff, {runs} runs each, rotating order{', native calls' if native else ''}")
        real.call_ms = {}
        v, s, f = real.compare(mib, runs, floor, native)
        if mib == 0:
            calls["native" if native else "wrapper"] = {k: median(x) for k, x in real.call_ms.items()}
        rows.append((mib, runs, v, s, f, native))
    wrapper, version = real.call_costs()
    lines = [
        "### 1. Real VirtualBox: `vblaunch fold` vs. the seed's script and the floor",
        "",
        "Twin VMs (2 GiB dynamically allocated base, one SATA disk) in one VBoxSVC; the contenders take",
        "turns on each twin (vblaunch with `--adopt`, as a twin may hold the seed's unmarked snapshot). Each run writes the",
        "diff first (untimed, through IMediumIO.write; then `sync` and the diff and base evicted from",
        "the page cache, so the merge reads from disk), then times the fold; the order of",
        "the contenders rotates every run. Median wall time. *Seed script*: `snapshot VM delete current;",
        "snapshot VM take current` (`tests/bench/seed-fold.sh`). *Floor*: the three calls vblaunch makes",
        "(`list --multiple vms runningvms hdds`, take, delete; the snapshot UUID from the .vbox), in a",
        "shell script without any checks (`tests/bench/floor-fold.sh`).",
        "*Calls*: `wrapper` = every VBoxManage call goes through the unshare+chroot wrapper (what",
        "the tests use); `native` = the contender itself runs inside the chroot and calls VBoxManage",
        "directly, as on a machine with VirtualBox installed (each run enters the chroot once, both",
        "contenders alike).",
        "",
        f"Load average at the start: {load:.2f}. Slowest single run in brackets.",
        "",
        "| diff written before each fold | calls | runs each | vblaunch, ms | seed script, ms | floor script, ms | added vs. seed, ms | vblaunch − floor, ms | ratio vblaunch/seed | target | met |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---|---|",
    ]
    for mib, runs, v, s, f, native in rows:
        mv, ms_ = median(v), median(s)
        mf = median(f) if f else None
        added, ratio = mv - ms_, mv / ms_
        if mib == 0:
            target, ok = "added ≤ 80 ms", added <= 80
        elif mib >= 1024:
            target, ok = "ratio ≤ 1.1", ratio <= 1.1
        else:
            target, ok = "—", None
        label = "empty" if mib == 0 else (f"{mib // 1024} GiB" if mib >= 1024 else f"{mib} MiB")
        lines.append(
            f"| {label} | {'native' if native else 'wrapper'} | {runs} | {fmt_ms(mv)} [{max(v):.0f}] | {fmt_ms(ms_)} [{max(s):.0f}] | "
            f"{f'{fmt_ms(mf)} [{max(f):.0f}]' if f else '—'} | {added:+.0f} | "
            f"{f'{mv - mf:+.0f}' if f else '—'} | {ratio:.2f} | {target} | {'—' if ok is None else ('yes' if ok else 'NO')} |")
    lines += ["", "Where vblaunch's time goes (empty diff; median duration of each call in vblaunch's log):", "",
              "| call | through the wrapper, ms | native, ms |", "|---|---:|---:|"]
    if wrapper is not None:
        lines.append(f"| the chroot wrapper alone (`VBOX_WRAPPER_PROG=/bin/true`) | {fmt_ms(wrapper)} | — |")
    lines.append(f"| `VBoxManage --version` (no VBoxSVC round trip) | {fmt_ms(version)} | — |")
    cw, cn = calls.get("wrapper", {}), calls.get("native", {})
    for k in ("list --multiple", "showvminfo", "list hdds", "snapshot delete", "snapshot take"):
        if k in cw or k in cn:
            lines.append(f"| `{k}` | {fmt_ms(cw[k]) if k in cw else '—'} | {fmt_ms(cn[k]) if k in cn else '—'} |")
    if real.fill_secs:
        per = {}
        for mib, sec in real.fill_secs:
            per.setdefault(mib, []).append(sec)
        lines += ["", "Writing the diff (untimed, for reference): " + ", ".join(
            f"{m} MiB in {median(x):.1f} s" for m, x in sorted(per.items()))]
    out.append("\n".join(lines))
    return rows


def section_scaling(a, out, real):
    runs = a.runs_scaling
    log(f"scaling: 8 MiB diff on a 32 MiB and a 2 GiB base, {runs} runs each")
    # The two bases alternate run by run, so that background load hits both alike.
    real.vm("BenchSmall", 32, True)
    real.vm("BenchV", 2048, True)
    small, big = [], []
    for _ in range(runs):
        for name, xs in (("BenchSmall", small), ("BenchV", big)):
            real.prepare(name, 8)
            xs.append(real.fold_vblaunch(name))
    log(f"  8 MiB diff: 32 MiB base {median(small):.0f} ms, 2 GiB base {median(big):.0f} ms")
    big_alloc = os.path.getsize(real.vms["BenchV"]) / MiB
    small_alloc = os.path.getsize(real.vms["BenchSmall"]) / MiB
    diffs = [(8, big)]
    for mib in (64, 256):
        log(f"scaling: {mib} MiB diff on the 2 GiB base, {runs} runs")
        diffs.append((mib, real.series("BenchV", 2048, mib, runs)))
    lines = [
        "### 4. Scaling (real VirtualBox, `vblaunch fold`)",
        "",
        f"Median of {runs} runs; diff and base evicted from the page cache before each fold; "
        f"load average at the start {os.getloadavg()[0]:.2f}.",
        "",
        "| base disk (capacity, allocated) | diff | vblaunch fold, ms |",
        "|---|---:|---:|",
        f"| 32 MiB ({small_alloc:.0f} MiB file) | 8 MiB | {fmt_ms(median(small))} |",
        f"| 2 GiB ({big_alloc:.0f} MiB file) | 8 MiB | {fmt_ms(median(big))} |",
        f"| ratio 2 GiB / 32 MiB base | | **{median(big) / median(small):.2f}** |",
        "",
        "| diff written before the fold (2 GiB base) | vblaunch fold, ms | ms per MiB above the 8 MiB case |",
        "|---:|---:|---:|",
    ]
    d8 = median(big)
    for mib, xs in diffs:
        per = "—" if mib == 8 else f"{(median(xs) - d8) / (mib - 8):.1f}"
        lines.append(f"| {mib} MiB | {fmt_ms(median(xs))} | {per} |")
    out.append("\n".join(lines))


# --------------------------------------------------------------------------

def machine():
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1024 ** 3
    return f"{os.cpu_count()} CPUs ({cpu}), {mem:.0f} GiB RAM, Linux {platform.release()}"


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--vblaunch", required=True)
    ap.add_argument("--fake", required=True)
    ap.add_argument("--vboxmanage", help="the real VBoxManage (omit: skip real VirtualBox)")
    ap.add_argument("--sections", default="calls,overhead,real,scaling")
    ap.add_argument("--runs", type=int, default=10, help="real runs per case (empty, 64 MiB)")
    ap.add_argument("--runs-1g", type=int, default=10, help="real runs per side at 1 GiB (0: skip)")
    ap.add_argument("--runs-scaling", type=int, default=10)
    ap.add_argument("--fake-runs", type=int, default=50)
    ap.add_argument("--procs", type=int, default=500, help="extra processes for the scan test")
    ap.add_argument("--out", required=True)
    ap.add_argument("--note", default="", help="a line for the results header")
    ap.add_argument("--keep", action="store_true", help="keep the temp dirs")
    a = ap.parse_args()
    secs = set(a.sections.split(","))
    t0 = time.time()
    out = []
    try:
        if "calls" in secs:
            section_calls(a, out)
        if "overhead" in secs:
            section_overhead(a, out)
        if secs & {"real", "scaling"}:
            if not a.vboxmanage:
                out.append("### 1. / 4. Real VirtualBox\n\nSKIPPED: no real VBoxManage (see run.sh).")
            else:
                real = Real(a)
                try:
                    if "real" in secs:
                        section_real(a, out, real)
                    if "scaling" in secs:
                        section_scaling(a, out, real)
                finally:
                    real.close()
    except Failed as e:
        log(f"FAILED: {e}")
        sys.exit(1)
    head = [
        "## vblaunch benchmark results",
        "",
        f"- date: {time.strftime('%Y-%m-%d %H:%M %Z')}; total benchmark time {time.time() - t0:.0f} s",
        f"- machine: {machine()}",
        f"- vblaunch: `{a.vblaunch}`; real VBoxManage: `{a.vboxmanage or 'none'}`"
        + (f" ({a.note})" if a.note else ""),
        f"- command: `{' '.join(sys.argv[1:])}`",
    ]
    text = "\n".join(head) + "\n\n" + "\n\n".join(out) + "\n"
    order = {s: i for i, s in enumerate(["### 1.", "### 2.", "### 3.", "### 4."])}
    # Sections in the order (1, 2, 3, 4) whatever order they ran in.
    blocks = sorted(out, key=lambda b: next((i for k, i in order.items() if b.startswith(k)), 9))
    text = "\n".join(head) + "\n\n" + "\n\n".join(blocks) + "\n"
    with open(a.out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    main()
