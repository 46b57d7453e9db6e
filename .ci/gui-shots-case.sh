#!/bin/sh
# gui-shots-case.sh NAME VM — runs inside the Windows chroot (via cargo-win --exec)
# for .ci/gui-shots.sh: builds the case's VM in the fake VBoxManage, then starts
# vblaunchw.exe as a shortcut would and waits for it (gui-shots.sh closes its
# dialog). Writes vblaunchw's pid to $CASE_DIR/pid and its exit code to $CASE_DIR/exit.
set -u
D=target/cargo-win/x86_64-pc-windows-gnu/debug
F="wine $D/examples/vblaunch-fake-vboxmanage.exe"
W="Z:$(pwd)/$CASE_DIR"; W=$(printf '%s' "$W" | tr / '\\')
case "$1" in
  not-registered) ;;
  start-fails)
    $F createvm --name "$2" --ostype Linux_64 --basefolder "$W\\vms" --register
    $F createmedium disk --filename "$W\\disk\\base.vdi" --size 64
    $F storagectl "$2" --name SATA --add sata
    $F storageattach "$2" --storagectl SATA --port 0 --device 0 --type hdd --medium "$W\\disk\\base.vdi"
    # A lock that stays (vblaunch tries startvm three times on this error).
    for _ in 1 2 3; do
      $F fake fault startvm fail 1 "VBoxManage: error: The machine '$2' is already locked for a session (or being unlocked)"
    done
    ;;
  *) echo "unknown case $1" >&2; exit 2 ;;
esac
wine $D/vblaunchw.exe --pause-on-error launch "$2" &
echo $! > "$CASE_DIR/pid"
wait $!
echo $? > "$CASE_DIR/exit"
