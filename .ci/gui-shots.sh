#!/usr/bin/env bash
# gui-shots.sh — vblaunchw.exe's windows under Wine on an Xvfb display (root;
# it first builds vblaunchw.exe and the fake VBoxManage, a Cargo example, with
# `cargo-win build`). For each case it starts vblaunchw.exe against the
# fake VBoxManage, waits until a window titled "<VM> — vblaunch" appears in the
# X window tree, fails unless it is there and no other program's window (a
# console) is, and saves target/gui-shots/<case>.png and <case>/windows.txt.
# Then it closes the dialog by ending that vblaunchw.exe (by its pid).
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
OUT=target/gui-shots
DISP=${GUI_SHOTS_DISPLAY:-97}
command -v Xvfb >/dev/null && command -v xwininfo >/dev/null ||
    { echo "gui-shots: needs Xvfb and xwininfo (x11-utils)" >&2; exit 1; }
bash .ci/cargo-win build --locked --bin vblaunchw --example vblaunch-fake-vboxmanage
rm -rf "$OUT"; mkdir -p "$OUT/fb"
Xvfb ":$DISP" -ac -listen tcp -nolisten unix -fbdir "$OUT/fb" -screen 0 1024x640x24 \
    >"$OUT/xvfb.log" 2>&1 &
XPID=$!
trap 'kill $XPID 2>/dev/null || true' EXIT
export DISPLAY=127.0.0.1:$DISP
for _ in $(seq 100); do xwininfo -root >/dev/null 2>&1 && break; sleep 0.1; done

shot() { # shot CASE VM
    local name=$1 vm=$2 dir=$OUT/$1 job found=
    mkdir -p "$dir/vbox"
    local fake data vbox
    fake=Z:$(pwd -P)/target/cargo-win/x86_64-pc-windows-gnu/debug/examples/vblaunch-fake-vboxmanage.exe
    data=Z:$(pwd -P)/$dir/data vbox=Z:$(pwd -P)/$dir/vbox
    VBLAUNCH_VBOXMANAGE=${fake//\//\\} VBLAUNCH_DATA_DIR=${data//\//\\} VBOX_USER_HOME=${vbox//\//\\} \
    CASE_DIR=$dir CARGO_WIN_KEEP_WINE=1 \
    CARGO_WIN_PASS_ENV="DISPLAY VBLAUNCH_VBOXMANAGE VBLAUNCH_DATA_DIR VBOX_USER_HOME CASE_DIR" \
        bash .ci/cargo-win --exec sh .ci/gui-shots-case.sh "$name" "$vm" >"$dir/run.log" 2>&1 &
    job=$!
    for _ in $(seq 1200); do   # up to 2 min (Wine's first start is slow)
        if xwininfo -root -tree 2>/dev/null | grep -qF "\"$vm — vblaunch\": (\"vblaunchw.exe\""; then
            found=1; break
        fi
        kill -0 "$job" 2>/dev/null || break
        sleep 0.1
    done
    xwininfo -root -tree >"$dir/windows.txt" 2>&1 || true
    [ -n "$found" ] || { echo "gui-shots: $name: no window '$vm — vblaunch'" >&2; cat "$dir/run.log" >&2; exit 1; }
    # Only vblaunchw's own windows (and Wine's desktop helpers): no console.
    if grep -E '^ +0x[0-9a-f]+ "' "$dir/windows.txt" | grep -vE '\("(vblaunchw|explorer)\.exe"' >&2; then
        echo "gui-shots: $name: another window appeared (above)" >&2; exit 1
    fi
    sleep 1   # let the dialog paint before the picture (cosmetic only)
    python3 .ci/xwd2png.py "$OUT/fb/Xvfb_screen0" "$OUT/$name.png" >/dev/null
    kill "$(cat "$dir/pid")"
    wait "$job" || true
    echo "gui-shots: $name: window '$vm — vblaunch' shown; $OUT/$name.png"
}

shot not-registered "Dev Box"   # exit 7: the heading, the message, the log
shot start-fails "Dev Box"      # exit 11: What this means / What to do / Details
