#!/bin/sh
# gui-shots-case.sh NAME VM — runs inside the Windows chroot (via cargo-win --exec)
# for .ci/gui-shots.sh: builds the case's VM in the fake VBoxManage, then starts
# vblaunchw.exe as a shortcut would and waits for it (gui-shots.sh closes its
# dialog). Writes vblaunchw's pid to $CASE_DIR/pid and its exit code to $CASE_DIR/exit.
set -u
D=target/cargo-win/x86_64-pc-windows-gnu/debug
F="wine $D/examples/vblaunch-fake-vboxmanage.exe"
W="Z:$(pwd)/$CASE_DIR"; W=$(printf '%s' "$W" | tr / '\\')
vm_with_disk() {
    $F createvm --name "$1" --ostype Linux_64 --basefolder "$W\\vms" --register
    $F createmedium disk --filename "$W\\disk\\base.vdi" --size 64
    $F storagectl "$1" --name SATA --add sata
    $F storageattach "$1" --storagectl SATA --port 0 --device 0 --type hdd --medium "$W\\disk\\base.vdi"
}
case "$1" in
  not-registered) ;;
  start-fails)
    vm_with_disk "$2"
    # A lock that stays (vblaunch tries startvm three times on this error).
    for _ in 1 2 3; do
      $F fake fault startvm fail 1 "VBoxManage: error: The machine '$2' is already locked for a session (or being unlocked)"
    done
    ;;
  slow-fold)
    vm_with_disk "$2"
    # Yesterday's launch (the console program): takes the snapshot 'current'.
    wine $D/vblaunch.exe launch "$2" || exit 1
    $F fake set-state "$2" poweroff
    $F fake session "$2" -
    # Today's: merging it prints its progress a step every 700 ms (~8 s).
    $F fake fault snapshot delete slow-progress 700
    ;;
  virtualbox-open)
    vm_with_disk "$2"
    # A program named VirtualBox.exe runs (the fake, copied, in a call that
    # hangs): the launch waits for it to close.
    mkdir -p "$CASE_DIR/bin"; cp $D/examples/vblaunch-fake-vboxmanage.exe "$CASE_DIR/bin/VirtualBox.exe"
    $F fake fault showvminfo the-manager-window hang
    wine "$CASE_DIR/bin/VirtualBox.exe" showvminfo the-manager-window 2>/dev/null &
    echo $! > "$CASE_DIR/virtualbox.pid"
    ;;
  held|session-ends)
    vm_with_disk "$2"
    # wait = true: vblaunch holds the session while the VM runs.
    printf 'wait = true\nfold_on_exit = true\nwait_poll_ms = 200\n' > "$CASE_DIR/vblaunch.toml"
    export VBLAUNCH_CONFIG="$W\\vblaunch.toml"
    ;;
  running-vm)
    vm_with_disk "$2"
    # On its snapshot (frozen): the window comes forward and nothing else shows.
    $F snapshot "$2" take current >/dev/null
    $F fake set-state "$2" running
    # The VM's own VirtualBox window, behind another program's.
    wine $D/examples/gui_windows.exe window "$2 [Running] - Oracle VirtualBox" 12 > "$CASE_DIR/vm-window.txt" &
    echo $! > "$CASE_DIR/vm-window.pid"
    sleep 3
    ;;
  *) echo "unknown case $1" >&2; exit 2 ;;
esac
wine $D/vblaunchw.exe --pause-on-error launch "$2" &
echo $! > "$CASE_DIR/pid"
wait $!
echo $? > "$CASE_DIR/exit"
[ -f "$CASE_DIR/virtualbox.pid" ] && kill "$(cat "$CASE_DIR/virtualbox.pid")" 2>/dev/null
[ -f "$CASE_DIR/vm-window.pid" ] && wait "$(cat "$CASE_DIR/vm-window.pid")"
exit 0
