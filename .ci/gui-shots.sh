#!/usr/bin/env bash
# gui-shots.sh — vblaunchw.exe's windows under Wine on an Xvfb display (root;
# builds what it needs with cargo-win). For each case it starts vblaunchw.exe
# against the fake VBoxManage as a shortcut would, waits until a window titled
# "<VM> — vblaunch" appears in the X window tree, fails unless it is there and
# no other program's window (a console) is, reads the window's texts back
# through the Windows window tree (examples/gui_windows.rs: EnumWindows,
# EnumChildWindows, GetWindowTextW, a progress bar's position) and checks them,
# and saves target/gui-shots/<case>.png with <case>/{windows,texts}.txt.
# A failure dialog is then closed with its Close button (a WM_COMMAND, as a
# click sends), and the exit code must be vblaunch's for that failure.
set -euo pipefail
cd "$(git rev-parse --show-toplevel)"
OUT=target/gui-shots
DISP=${GUI_SHOTS_DISPLAY:-97}
D=target/cargo-win/x86_64-pc-windows-gnu/debug
command -v Xvfb >/dev/null && command -v xwininfo >/dev/null ||
    { echo "gui-shots: needs Xvfb and xwininfo (x11-utils)" >&2; exit 1; }
bash .ci/cargo-win build --locked --bins --example gui_windows --example vblaunch-fake-vboxmanage >/dev/null 2>&1 ||
    bash .ci/cargo-win build --locked --bins --example gui_windows --example vblaunch-fake-vboxmanage
rm -rf "$OUT"; mkdir -p "$OUT/fb"
Xvfb ":$DISP" -ac -listen tcp -nolisten unix -fbdir "$OUT/fb" -screen 0 1024x640x24 \
    >"$OUT/xvfb.log" 2>&1 &
XPID=$!
trap 'kill $XPID 2>/dev/null || true' EXIT
export DISPLAY=127.0.0.1:$DISP
for _ in $(seq 100); do xwininfo -root >/dev/null 2>&1 && break; sleep 0.1; done

# wine ARGS… in the chroot, on this display, sharing the cases' wineserver.
win() { CARGO_WIN_KEEP_WINE=1 CARGO_WIN_PASS_ENV="DISPLAY ${PASS:-}" bash .ci/cargo-win --exec wine "$@"; }
fail() { echo "gui-shots: $NAME: $*" >&2; exit 1; }
# What the Windows window tree says of vblaunch's windows.
texts() { win "$D/examples/gui_windows.exe" list "$VM — vblaunch" 2>/dev/null | tr -d '\r'; }
# the texts must contain each argument
expect() {
    local t=$DIR/texts.txt s
    for s in "$@"; do grep -qF -- "$s" "$t" || { cat "$t" >&2; fail "no '$s' in the window's texts"; }; done
}

start() { # start CASE VM: build the case's VM and start vblaunchw.exe (in the background)
    NAME=$1 VM=$2 DIR=$OUT/$1
    mkdir -p "$DIR/vbox"
    local fake data vbox
    fake=Z:$(pwd -P)/$D/examples/vblaunch-fake-vboxmanage.exe
    data=Z:$(pwd -P)/$DIR/data vbox=Z:$(pwd -P)/$DIR/vbox
    VBLAUNCH_VBOXMANAGE=${fake//\//\\} VBLAUNCH_DATA_DIR=${data//\//\\} VBOX_USER_HOME=${vbox//\//\\} \
    CASE_DIR=$DIR CARGO_WIN_KEEP_WINE=1 \
    CARGO_WIN_PASS_ENV="DISPLAY VBLAUNCH_VBOXMANAGE VBLAUNCH_DATA_DIR VBOX_USER_HOME CASE_DIR" \
        bash .ci/cargo-win --exec sh .ci/gui-shots-case.sh "$NAME" "$VM" >"$DIR/run.log" 2>&1 &
    JOB=$!
}

wait_window() { # until the X window "<VM> — vblaunch" of vblaunchw.exe is there
    local found=
    for _ in $(seq 1200); do   # up to 2 min (Wine's first start is slow)
        if xwininfo -root -tree 2>/dev/null | grep -qF "\"$VM — vblaunch\": (\"vblaunchw.exe\""; then
            found=1; break
        fi
        kill -0 "$JOB" 2>/dev/null || break
        sleep 0.1
    done
    [ -n "$found" ] || { cat "$DIR/run.log" >&2; fail "no window '$VM — vblaunch'"; }
    no_console
}

no_console() { # only vblaunchw's own windows (and Wine's desktop helpers): no console
    xwininfo -root -tree >"$DIR/windows.txt" 2>&1 || true
    if grep -E '^ +0x[0-9a-f]+ "' "$DIR/windows.txt" | grep -vE '\("(vblaunchw|explorer)\.exe"' >&2; then
        fail "another window appeared (above)"
    fi
}

shot() { # shot [SUFFIX]: the screen as it is now -> $OUT/$NAME[-SUFFIX].png
    local png=$OUT/$NAME${1:+-$1}.png
    sleep "${SHOT_DELAY:-0.5}"   # let the window paint (cosmetic only)
    python3 .ci/xwd2png.py "$OUT/fb/Xvfb_screen0" "$png" >/dev/null
    echo "gui-shots: $NAME: $png"
}

finish() { # finish EXIT: vblaunchw.exe must end with EXIT, and its windows with it
    local code
    for _ in $(seq 600); do kill -0 "$JOB" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$JOB" 2>/dev/null && { kill "$(cat "$DIR/pid")" || true; fail "vblaunchw.exe did not exit"; }
    wait "$JOB" || true
    code=$(cat "$DIR/exit" 2>/dev/null || echo none)
    [ "$code" = "$1" ] || { cat "$DIR/run.log" >&2; fail "exit code $code, expected $1"; }
    ! xwininfo -root -tree 2>/dev/null | grep -F "\"$VM — vblaunch\"" >&2 || fail "a window outlived vblaunchw.exe"
    echo "gui-shots: $NAME: checked, exit $code"
}

failure_dialog() { # failure_dialog CASE EXIT TEXT…: a failing launch's dialog
    start "$1" "Dev Box"; local code=$2; shift 2
    wait_window
    for _ in $(seq 50); do texts >"$DIR/texts.txt"; grep -qF '"Close"' "$DIR/texts.txt" && break; sleep 0.2; done
    expect "window \"$VM — vblaunch\" class=vblaunch.dialog" \
        '"Open log"' '"Run doctor"' '"Copy details"' '"Close"' "Exit code $code · log: " "$@"
    shot
    # Copy details: the whole text on the clipboard; the dialog stays.
    win "$D/examples/gui_windows.exe" click vblaunch.dialog 152 >/dev/null
    for _ in $(seq 50); do texts >"$DIR/texts.txt"; grep -qF '"Copied"' "$DIR/texts.txt" && break; sleep 0.2; done
    expect '"Copied"'
    win "$D/examples/gui_windows.exe" clipboard | tr -d '\r' >"$DIR/clipboard.txt"
    grep -qF "$VM — vblaunch" "$DIR/clipboard.txt" && grep -qF "Exit code $code · log: " "$DIR/clipboard.txt" ||
        { cat "$DIR/clipboard.txt" >&2; fail "Copy details did not copy the dialog's text"; }
    # Run doctor: a console window running `vblaunch doctor -- "<VM>"` (with the launch's options), kept open.
    win "$D/examples/gui_windows.exe" click vblaunch.dialog 151 >/dev/null
    local doc=
    for _ in $(seq 150); do
        xwininfo -root -tree >"$DIR/doctor-windows.txt" 2>&1 || true
        grep -vF '"vblaunchw.exe"' "$DIR/doctor-windows.txt" | grep -qiE '"[^"]*(cmd|doctor|vblaunch)[^"]*": \(' && { doc=1; break; }
        sleep 0.2
    done
    [ -n "$doc" ] || { cat "$DIR/doctor-windows.txt" >&2; fail "Run doctor opened no console"; }
    for _ in $(seq 100); do
        grep -qF '"doctor", "--", "Dev Box"]' "$DIR/data/vblaunch.log" && break; sleep 0.2
    done
    grep -qF '"doctor", "--", "Dev Box"]' "$DIR/data/vblaunch.log" || fail "the doctor did not run"
    # (Wine maps no console window without a window manager: the picture
    # shows the dialog, its Copy details button saying "Copied".)
    shot buttons
    win "$D/examples/gui_windows.exe" click vblaunch.dialog 153 >/dev/null   # Close
    finish "$code"
}

# exit 7: the heading, the message, the log; Close ends it with vblaunch's code
failure_dialog not-registered 7 '"VirtualBox does not know this VM"' "VirtualBox has no VM named 'Dev Box'"
# exit 11: What this means / What to do / VirtualBox's own words under Details
failure_dialog start-fails 11 '"The VM did not start (the fold was kept; the base disk is safe)"' \
    '"What this means: ' '"What to do: ' '"Details — VirtualBox said:"' 'is already locked for a session'

# A slow fold: no window in the first second, then the progress window with
# the merge's heading and percentage; no Cancel; it closes when the VM starts.
start slow-fold "Dev Box"
wait_window
pct=
for _ in $(seq 100); do
    texts >"$DIR/texts.txt"
    if grep -qE 'msctls_progress32 pos=([1-9][0-9]*)' "$DIR/texts.txt" &&
        grep -qE '"[1-9][0-9]*%"' "$DIR/texts.txt"; then pct=1; break; fi
    sleep 0.2
done
[ -n "$pct" ] || { cat "$DIR/texts.txt" >&2; fail "no percentage in the progress window"; }
expect "window \"$VM — vblaunch\" class=vblaunch.progress" \
    '"Merging the last session (' 'into the base disk — it cannot be cancelled"' \
    'so there is no Cancel' '"Elapsed 0:0'
grep -qF '"Cancel"' "$DIR/texts.txt" && fail "a merge offers Cancel"
shot
finish 0
# Everything still goes to the log file, what was shown included.
LOG=$DIR/data/vblaunch.log
grep -qF "shown: $VM — vblaunch |  | Merging the last session" "$LOG" ||
    fail "the log does not say what was shown"

# the fake VBoxManage of the current case (to change the VM from outside)
fake() {
    local vbox=Z:$(pwd -P)/$DIR/vbox
    VBOX_USER_HOME=${vbox//\//\\} PASS=VBOX_USER_HOME win "$D/examples/vblaunch-fake-vboxmanage.exe" "$@"
}
until_logged() { # until_logged TEXT: vblaunchw's log says it (30 s at most)
    for _ in $(seq 300); do grep -qF -- "$1" "$DIR/data/vblaunch.log" 2>/dev/null && return; sleep 0.1; done
    cat "$DIR/run.log" >&2; fail "the log never said '$1'"
}

# VirtualBox is open: the window says so at once and offers Cancel; Cancel
# stops the launch (exit 3) and nothing was changed.
start virtualbox-open "Dev Box"
wait_window
for _ in $(seq 50); do texts >"$DIR/texts.txt"; grep -qF '"Cancel"' "$DIR/texts.txt" && break; sleep 0.2; done
expect "window \"$VM — vblaunch\" class=vblaunch.progress" '"Waiting for VirtualBox to close…"' \
    'Close the VirtualBox window (VirtualBox.exe (pid ' 'Cancel stops here; nothing was changed.' \
    '"Working…"' '"Cancel"'
shot
win "$D/examples/gui_windows.exe" click vblaunch.progress 2 >/dev/null   # Cancel
finish 3
grep -qF "Cancel pressed" "$DIR/data/vblaunch.log" || fail "the log does not say Cancel was pressed"
! grep -q "snapshot" "$DIR/vbox/fake-calls.log" || fail "a snapshot call ran after Cancel"

# wait = true: the notification icon (its window is hidden; Wine shows no
# notification area without a tray manager) and its menu's Stop waiting:
# exit 0, the VM keeps running.
start held "Dev Box"
until_logged "shown: notification icon: $VM is running — its base disk is frozen and safe to back up | menu: [Status] [Open log] [Stop waiting]"
shot
no_console
win "$D/examples/gui_windows.exe" icon-menu vblaunch.tray >/dev/null   # the icon's menu
SHOT_DELAY=1 shot menu
win "$D/examples/gui_windows.exe" close-menu >/dev/null || true
win "$D/examples/gui_windows.exe" click vblaunch.tray 201 >/dev/null   # Status
for _ in $(seq 150); do
    texts >"$DIR/texts.txt"; grep -qF 'vblaunch status says:' "$DIR/texts.txt" && break; sleep 0.2
done
expect "window \"$VM — vblaunch status\" class=vblaunch.dialog" "\"$VM is running\"" \
    '"vblaunch status says:"' 'safe to back up: ' '"Close"'
no_console   # vblaunch.exe status ran without a console window
shot status
win "$D/examples/gui_windows.exe" click vblaunch.dialog 153 >/dev/null   # its Close
win "$D/examples/gui_windows.exe" click vblaunch.tray 203 >/dev/null   # Stop waiting
finish 0
grep -qF "Stopped waiting at the user's request: VM '$VM' keeps running" "$DIR/data/vblaunch.log" ||
    fail "the log does not say that vblaunch stopped waiting"
[ "$(fake showvminfo "$VM" --machinereadable | tr -d '\r' | grep '^VMState=')" = 'VMState="running"' ] ||
    fail "the VM did not keep running"

# The VM shuts down: the session is folded, the balloon says so, the icon goes.
start session-ends "Dev Box"
until_logged "shown: notification icon: $VM is running"
fake fake set-state "$VM" poweroff >/dev/null
fake fake session "$VM" - >/dev/null
until_logged "shown: balloon: $VM: today's work is in the base disk"
SHOT_DELAY=2 shot
no_console
finish 0

# A double-click on the shortcut of a VM that runs: its window comes to the
# front (from behind another program's), exit 0, no window of vblaunch's.
start running-vm "Dev Box"
finish 0
until_logged "brought the window '$VM [Running] - Oracle VirtualBox' to the front"
for _ in $(seq 150); do grep -q foreground "$DIR/vm-window.txt" && break; sleep 0.1; done
grep -qF "foreground: \"$VM [Running] - Oracle VirtualBox\"" "$DIR/vm-window.txt" ||
    { cat "$DIR/vm-window.txt" >&2; fail "the VM's window is not in the foreground"; }
echo "gui-shots: $NAME: the VM's window was brought to the front"
