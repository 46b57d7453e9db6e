#!/usr/bin/env bash
# Try vblaunch on a real, sandboxed VirtualBox in a few minutes, without
# installing VirtualBox: `bash packaging/try-it.sh [--dir DIR]`.
#
# As root it runs directly, otherwise through sudo. It
#   1. sets up real VirtualBox 7.2 in a chroot under /tmp (.ci/setup-real-vbox.sh,
#      the same setup CI uses; ~2 minutes and ~700 MB the first time),
#   2. builds vblaunch (cargo build --release),
#   3. creates a demo VM in DIR (default: a new /tmp/vblaunch-try.XXXXXX) whose
#      guest is a 512-byte boot sector (tests/cli/real_vm.asm, assembled now)
#      that writes a line to its disk and powers off,
#   4. runs the real flow and says what happens at each step.
# Your own VirtualBox (if any) is not touched: the demo has its own
# VBOX_USER_HOME, config and data folders in DIR.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        echo "[try-it] not root: re-running through sudo (the VirtualBox sandbox needs debootstrap and chroot)" >&2
        exec sudo --preserve-env=PATH,CARGO_HOME,RUSTUP_HOME bash "$0" "$@"
    fi
    echo "[try-it] needs root (debootstrap, chroot) and sudo is not installed: run it as root ('su -c \"bash $0\"')" >&2
    exit 1
fi
cd "$(dirname "$0")/.."
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

DIR=
while [ $# -gt 0 ]; do
    case $1 in
    --dir) DIR=${2:?--dir needs a folder}; shift 2 ;;
    -h | --help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "[try-it] unknown argument: $1 (usage: bash packaging/try-it.sh [--dir DIR])" >&2; exit 2 ;;
    esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
note() { printf '   %s\n' "$*"; }
show() { printf '   $'; printf ' %q' "$@"; printf '\n'; "$@"; }

if ! command -v cargo >/dev/null 2>&1; then
    echo "[try-it] cargo (Rust 1.89 or newer) is needed to build vblaunch: install it with rustup (https://rustup.rs), then run this again" >&2
    exit 1
fi

say "1/6 Real VirtualBox 7.2 in a sandbox (chroot under /tmp; idempotent)"
export WRAPPER_OUT=${WRAPPER_OUT:-/usr/local/bin/vboxmanage-chroot}
bash .ci/setup-real-vbox.sh
VBM=$WRAPPER_OUT
note "VirtualBox $("$VBM" --version) runs from the sandbox through $VBM"

say "2/6 Building vblaunch"
cargo build --release --locked --bin vblaunch
VBL=$PWD/target/release/vblaunch

# The demo's own world. VirtualBox runs in the chroot and sees only /tmp,
# /var/tmp, /home, /root, /mnt and /srv, so DIR must be under one of them.
if [ -z "$DIR" ]; then
    DIR=$(mktemp -d /tmp/vblaunch-try.XXXXXX)
else
    mkdir -p "$DIR"
    DIR=$(cd "$DIR" && pwd)
fi
case $DIR in
/tmp/* | /var/tmp/* | /home/* | /root/* | /mnt/* | /srv/*) ;;
*) echo "[try-it] --dir must be under /tmp, /var/tmp, /home, /root, /mnt or /srv (the sandboxed VirtualBox sees only those): $DIR" >&2; exit 2 ;;
esac
if [ -e "$DIR/vbox" ]; then
    echo "[try-it] $DIR already holds a demo; pick another --dir (or remove it, see the end of a run)" >&2
    exit 12
fi
export VBOX_USER_HOME=$DIR/vbox XDG_CONFIG_HOME=$DIR/config VBLAUNCH_DATA_DIR=$DIR/data VBLAUNCH_VBOXMANAGE=$VBM
mkdir -p "$VBOX_USER_HOME" "$XDG_CONFIG_HOME/vblaunch" "$DIR/vms"

# A display for the VM window (Xvfb picks a free display number and says which).
XVFB_PID=
cleanup() {
    [ -n "$XVFB_PID" ] && kill "$XVFB_PID" 2>/dev/null || true
    # A VM still running (an interrupted demo) is powered off.
    "$VBM" controlvm Demo poweroff >/dev/null 2>&1 || true
}
trap cleanup EXIT
exec 9< <(Xvfb -displayfd 1 -screen 0 640x480x24 -nolisten tcp 2>/dev/null & echo "pid $!")
read -r _ XVFB_PID <&9
read -r DISPLAY_NUM <&9 || { echo "[try-it] Xvfb did not start" >&2; exit 1; }
export DISPLAY=:$DISPLAY_NUM

say "3/6 A demo VM with a tiny guest"
OFFSET=$((4096 * 512)) # where the guest writes: 2 MiB into the disk
nasm -f bin -DLBA=4096 -DCOUNT=1 -DCALLS=1 -DCOUNTER=1 -DCOUNTER_LBA=1 -DWAIT_KEY=0 \
    "-DPATTERN=\"written by the demo guest at boot #\"" \
    -o "$DIR/guest.bin" tests/cli/real_vm.asm
truncate -s 4M "$DIR/disk.raw"
dd if="$DIR/guest.bin" of="$DIR/disk.raw" conv=notrunc status=none
# The guest's boot counter (sector 1, byte 0) starts at '0': it writes '1', '2', …
printf 0 | dd of="$DIR/disk.raw" bs=1 seek=512 conv=notrunc status=none
"$VBM" createvm --name Demo --ostype Other --basefolder "$DIR/vms" --register >/dev/null
BASE=$DIR/vms/Demo/Demo.vdi
"$VBM" convertfromraw "$DIR/disk.raw" "$BASE" --format VDI >/dev/null
"$VBM" storagectl Demo --name IDE --add ide
"$VBM" storageattach Demo --storagectl IDE --port 0 --device 0 --type hdd --medium "$BASE"
"$VBM" modifyvm Demo --memory 16 --vram 9 --graphicscontroller vboxvga --audio-enabled off
# No vboxdrv in the sandbox: VirtualBox runs the guest in its own emulator.
"$VBM" setextradata Demo VBoxInternal/HM/FallbackToIEM 1
note "VM 'Demo' in $DIR/vms; its disk $BASE holds a boot sector that writes"
note "\"written by the demo guest at boot N\" at offset $OFFSET, then powers the VM off."
cat >"$XDG_CONFIG_HOME/vblaunch/vblaunch.toml" <<'EOF'
# vblaunch waits for the VM to shut down and folds the session into the base.
wait = true
fold_on_exit = true
EOF
note "config $XDG_CONFIG_HOME/vblaunch/vblaunch.toml:"
sed 's/^/     /' "$XDG_CONFIG_HOME/vblaunch/vblaunch.toml"

guest_line() { # what the disk holds at OFFSET: the base alone, or the VM's current view
    "$VBM" mediumio --disk="$1" cat --offset=$OFFSET --size=35 2>/dev/null | tr -d '\0' | head -1
}
sha() { sha256sum "$BASE" | cut -c1-16; }

say "4/6 First launch: vblaunch adopts the VM, starts it, waits, folds on exit"
note "base disk sha256 before: $(sha)"
show "$VBL" Demo
note "The guest wrote and powered off; vblaunch folded the session into the base."
note "base disk now holds: \"$(guest_line "$BASE")\""
show "$VBL" status Demo

say "5/6 Second launch keeping a restore point: the base stays frozen while the VM runs"
cat >"$XDG_CONFIG_HOME/vblaunch/vblaunch.toml" <<'EOF'
wait = true
keep = 2
EOF
note "config now: wait = true, keep = 2 (no fold on exit: the session stays in 'current')"
before=$(sha)
show "$VBL" Demo
after=$(sha)
LEAF=$("$VBM" showvminfo Demo --machinereadable | sed -n 's/^"IDE-0-0"="\(.*\)"$/\1/p')
note "base disk sha256 before the session: $before, after: $after$([ "$before" = "$after" ] && echo '  (unchanged: frozen)')"
note "base disk holds:          \"$(guest_line "$BASE")\""
note "the VM's disk (snapshot): \"$(guest_line "$LEAF")\""
note "The guest's new line is in the snapshot 'current'; the base is safe to back up."

say "6/6 The next launch's fold: the last session becomes a restore point"
show "$VBL" fold Demo --keep 2
note "base disk holds now: \"$(guest_line "$BASE")\""
show "$VBL" status Demo
note "To go back to the disk as it was at the start of the second launch:"
note "  $VBL restore Demo --to previous"

say "Done. To clean up"
note "the demo:    VBOX_USER_HOME=$VBOX_USER_HOME $VBM unregistervm Demo --delete; rm -rf $DIR"
note "the sandbox: rm -rf ${VBOX_CHROOT:-/tmp/vbox-chroot} $WRAPPER_OUT   (shared with the project's tests)"
