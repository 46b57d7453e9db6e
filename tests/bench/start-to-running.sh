#!/usr/bin/env bash
# Scenario 2.8 (not a test): the seed's pre-launch script (tests/bench/seed-launch.sh:
# delete "current", take "current", start) next to `vblaunch <VM>`, on two identical
# VMs whose guest writes 8 KiB and powers off (tests/cli/real_vm.asm). Measures the
# wall time from the double-click (the command starting) to VirtualBox reporting the
# VM `running`, alternating which side goes first. Real VirtualBox, real running VMs.
#
#   bash tests/bench/start-to-running.sh [RUNS]     (as root; default 5 runs a side)
#
# Needs the sandboxed VirtualBox (.ci/setup-real-vbox.sh; run it first, or set
# VBOXMANAGE to a real VBoxManage), Xvfb and nasm. Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
[ "${BASH_VERSINFO[0]}" -ge 5 ] || { echo "bash 5 or newer is needed (EPOCHREALTIME)" >&2; exit 1; }
export VBOXMANAGE=${VBOXMANAGE:-/usr/local/bin/vboxmanage-chroot}
[ -x "$VBOXMANAGE" ] || { echo "no VBoxManage at $VBOXMANAGE: run 'bash .ci/setup-real-vbox.sh' as root first" >&2; exit 1; }
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --locked --bin vblaunch >&2
VBL=$PWD/target/release/vblaunch
W=$(mktemp -d /tmp/vblaunch-bench-start.XXXXXX)
export VBOX_USER_HOME=$W/vbox XDG_CONFIG_HOME=$W/config VBLAUNCH_DATA_DIR=$W/data VBLAUNCH_VBOXMANAGE=$VBOXMANAGE
mkdir -p "$VBOX_USER_HOME" "$XDG_CONFIG_HOME/vblaunch" "$W/vms"
# Only the real front end in the guard list (other processes on a shared machine
# must not stall a side); the quick read as with the default list.
printf 'guard_processes = ["VirtualBoxVM"]\nquick_read = "always"\n' >"$XDG_CONFIG_HOME/vblaunch/vblaunch.toml"
XVFB_PID=
cleanup() {
    for vm in Seed Vbl; do "$VBOXMANAGE" controlvm "$vm" poweroff >/dev/null 2>&1 || true; done
    [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true
    [ "${BENCH_KEEP:-0}" = 1 ] || rm -rf "$W"
}
trap cleanup EXIT
exec 9< <(Xvfb -displayfd 1 -screen 0 640x480x24 -nolisten tcp 2>/dev/null & echo "pid $!")
read -r _ XVFB_PID <&9
read -r n <&9
export DISPLAY=:$n

nasm -f bin -DLBA=4096 -DCOUNT=16 -DCALLS=1 -DCOUNTER=1 -DCOUNTER_LBA=1 -DWAIT_KEY=0 \
    '-DPATTERN="bench session #"' -o "$W/guest.bin" tests/cli/real_vm.asm
truncate -s 4M "$W/disk.raw"
dd if="$W/guest.bin" of="$W/disk.raw" conv=notrunc status=none
for vm in Seed Vbl; do
    "$VBOXMANAGE" createvm --name $vm --ostype Other --basefolder "$W/vms" --register >/dev/null
    "$VBOXMANAGE" convertfromraw "$W/disk.raw" "$W/vms/$vm/$vm.vdi" --format VDI >/dev/null
    "$VBOXMANAGE" storagectl $vm --name IDE --add ide
    "$VBOXMANAGE" storageattach $vm --storagectl IDE --port 0 --device 0 --type hdd --medium "$W/vms/$vm/$vm.vdi"
    "$VBOXMANAGE" modifyvm $vm --memory 16 --vram 9 --graphicscontroller vboxvga --audio-enabled off
    "$VBOXMANAGE" setextradata $vm VBoxInternal/HM/FallbackToIEM 1
done
"$VBOXMANAGE" snapshot Seed take current >/dev/null # the seed's script expects one
"$VBL" fold Vbl >/dev/null 2>&1                     # vblaunch adopts its VM

state() { "$VBOXMANAGE" showvminfo "$1" --machinereadable 2>/dev/null | sed -n 's/^VMState="\(.*\)"$/\1/p'; }
declare -A UUID
for vm in Seed Vbl; do UUID[$vm]=$("$VBOXMANAGE" showvminfo $vm --machinereadable | sed -n 's/^UUID="\(.*\)"$/\1/p'); done
front_end() { # is a VirtualBoxVM process running this VM?
    local uuid=${UUID[$1]}
    for p in /proc/[0-9]*; do
        [ "$(cat "$p/comm" 2>/dev/null)" = VirtualBoxVM ] && tr '\0' '\n' <"$p/cmdline" 2>/dev/null | grep -qx "$uuid" && return 0
    done
    return 1
}
one() { # one launch; prints the seconds from the command's start to `running`
    local vm=$1 t0 t1
    t0=$EPOCHREALTIME
    if [ "$vm" = Seed ]; then sh tests/bench/seed-launch.sh Seed >/dev/null 2>&1; else "$VBL" Vbl >/dev/null 2>&1; fi
    until [ "$(state "$vm")" = running ]; do :; done
    t1=$EPOCHREALTIME
    # The guest writes and powers off by itself; wait until its process is gone.
    until [ "$(state "$vm")" = poweroff ] && ! front_end "$vm"; do sleep 0.2; done
    echo "$t0 $t1" | awk '{ printf "%.3f\n", $2 - $1 }'
}
declare -a seed vbl
for ((i = 0; i < RUNS; i++)); do
    if ((i % 2 == 0)); then seed+=("$(one Seed)"); vbl+=("$(one Vbl)"); else vbl+=("$(one Vbl)"); seed+=("$(one Seed)"); fi
    echo "[start-to-running] run $((i + 1))/$RUNS: seed ${seed[-1]} s, vblaunch ${vbl[-1]} s" >&2
done
stats() { printf '%s\n' "$@" | sort -n | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f | %.2f | %.2f", m, a[1], a[NR] }'; }
echo "### 5. Real running VMs: double-click to \`running\` (seed script vs. vblaunch)"
echo
echo "$RUNS runs a side, alternating which goes first; VirtualBox $("$VBOXMANAGE" --version), guests in IEM (no vboxdrv)."
echo
echo "| contender | median s | min s | max s |"
echo "|---|---|---|---|"
echo "| seed script (delete, take, startvm) | $(stats "${seed[@]}") |"
echo "| vblaunch <VM> | $(stats "${vbl[@]}") |"
