#!/usr/bin/env bash
# vblaunch benchmark: `sudo bash tests/bench/run.sh` (about 12 minutes here).
#
# Builds the release binaries, installs what it needs (GNU time; real
# VirtualBox 7.2 in a chroot through .ci/setup-real-vbox.sh, idempotent), then
# runs tests/bench/bench.py and prints one results document, also written to
# tests/bench/results.md. Not a test: nothing here runs in CI.
#
# Environment (all optional):
#   BENCH_QUICK=1          a quick subset (~2 min): 3 real runs per case, no 1 GiB,
#                          20 fake runs
#   BENCH_SECTIONS=…       comma list of calls,overhead,real,scaling (default: all)
#   BENCH_REAL=0           no real VirtualBox (calls + overhead only; no root needed)
#   BENCH_VBOXMANAGE=PATH  the real VBoxManage to use (default: set up the chroot
#                          wrapper /usr/local/bin/vboxmanage-chroot, needs root)
#   BENCH_RUNS=10          real runs per side, empty and 64 MiB diff
#   BENCH_RUNS_1G=10       real runs per side with a 1 GiB diff (0: skip; ~23 s a run)
#   BENCH_RUNS_SCALING=10  runs per scaling case
#   BENCH_FAKE_RUNS=50     runs per fake-VBoxManage measurement
#   BENCH_PROCS=500        extra processes for the process-scan measurement
#   BENCH_OUT=FILE         results file (default tests/bench/results.md)
#   BENCH_KEEP=1           keep the temp dirs under /tmp
#   BENCH_NOTE=…           a note for the results header (e.g. the commit measured)
set -euo pipefail
cd "$(dirname "$0")/../.."
say() { printf '[bench %s] %s\n' "$(date +%T)" "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
is_root() { [ "$(id -u)" = 0 ]; }

# 1. host tools
command -v cargo >/dev/null || die "cargo not found: install Rust (https://rustup.rs)"
PY=/usr/bin/python3
need=()
[ -x "$PY" ] || need+=(python3)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    is_root || die "missing ${need[*]}: install them (apt-get install ${need[*]}) or run as root"
    say "installing ${need[*]}"
    apt-get -o DPkg::Lock::Timeout=300 update -qq
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${need[@]}" >/dev/null
fi
[ "${BASH_VERSINFO[0]}" -ge 5 ] || die "bash 5 or newer is needed (EPOCHREALTIME)"

# 2. release binaries
say "cargo build --release"
cargo build --release --bin vblaunch --example vblaunch-fake-vboxmanage >&2
target=$(cargo metadata --format-version 1 --no-deps | "$PY" -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
VBLAUNCH=$target/release/vblaunch
FAKE=$target/release/examples/vblaunch-fake-vboxmanage

# 3. real VirtualBox
real_args=()
note=""
if [ "${BENCH_REAL:-1}" = 0 ]; then
    say "BENCH_REAL=0: skipping real VirtualBox"
elif [ -n "${BENCH_VBOXMANAGE:-}" ]; then
    real_args=(--vboxmanage "$BENCH_VBOXMANAGE")
elif is_root; then
    export WRAPPER_OUT=${WRAPPER_OUT:-/usr/local/bin/vboxmanage-chroot}
    say "setting up real VirtualBox (.ci/setup-real-vbox.sh; idempotent, ~70 s the first time)"
    bash .ci/setup-real-vbox.sh >&2
    real_args=(--vboxmanage "$WRAPPER_OUT")
    note="VirtualBox from Debian sid in a chroot, no kernel driver; each call goes through unshare+chroot"
else
    say "not root: skipping real VirtualBox (run 'sudo bash tests/bench/run.sh', or set BENCH_VBOXMANAGE)"
fi

# 4. run
if [ "${BENCH_QUICK:-0}" = 1 ]; then
    : "${BENCH_RUNS:=3}" "${BENCH_RUNS_1G:=0}" "${BENCH_RUNS_SCALING:=3}" "${BENCH_FAKE_RUNS:=20}"
fi
out=${BENCH_OUT:-tests/bench/results.md}
args=(
    --vblaunch "$VBLAUNCH" --fake "$FAKE" "${real_args[@]}"
    --sections "${BENCH_SECTIONS:-calls,overhead,real,scaling}"
    --runs "${BENCH_RUNS:-10}" --runs-1g "${BENCH_RUNS_1G:-10}"
    --runs-scaling "${BENCH_RUNS_SCALING:-10}" --fake-runs "${BENCH_FAKE_RUNS:-50}"
    --procs "${BENCH_PROCS:-500}" --out "$out"
)
commit=$(git rev-parse --short HEAD 2>/dev/null || true)
[ -n "$commit" ] && note="commit $commit${note:+; $note}"
[ -n "${BENCH_NOTE:-}" ] && note="$BENCH_NOTE${note:+; $note}"
[ -n "$note" ] && args+=(--note "$note")
[ "${BENCH_KEEP:-0}" = 1 ] && args+=(--keep)
say "running tests/bench/bench.py (results: $out)"
exec "$PY" tests/bench/bench.py "${args[@]}"
