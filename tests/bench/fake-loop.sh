#!/usr/bin/env bash
# The floor for vblaunch's own overhead: exactly the VBoxManage calls one
# `vblaunch fold VM` makes (one read, take, its record,
# delete; it verifies from the settings file, no call) and `startvm` for a launch, made by a trivial shell
# loop against the same VBoxManage (the fake, answering instantly), with no
# parsing beyond pulling the VM's UUID out of the read and the current
# snapshot's out of its .vbox (found through VirtualBox.xml) with bash builtins.
#
#   fake-loop.sh VBOXMANAGE VM RUNS [fold|launch]
#
# Prints one line per run: the run's wall time in microseconds (EPOCHREALTIME,
# no fork for timing). For `launch`, the VM is set back to poweroff with the
# fake's (unlogged) control call before each run, outside the timed part.
set -euo pipefail
F=$1 VM=$2 RUNS=$3 MODE=${4:-fold}
. "${BASH_SOURCE[0]%/*}/vbox-lookup.sh"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
desc="vblaunch: taken 2026-01-01T00:00:00Z by vblaunch 0.1.0. It is merged into its parent at the next launch; do not rename or delete it by hand."
us() { local t=${1/./}; echo "$((10#$t))"; }
for ((i = 0; i < RUNS; i++)); do
    if [ "$MODE" = launch ]; then "$F" fake set-state "$VM" poweroff >/dev/null; "$F" fake session "$VM" - >/dev/null; fi
    t0=$EPOCHREALTIME
    "$F" list --multiple vms runningvms hdds >"$tmp" 2>/dev/null
    lookup "$VM" "$tmp"
    vm_uuid=$uuid
    new=$("$F" snapshot "$vm_uuid" take current "--description=$desc" 2>/dev/null)
    new=${new##*UUID: }
    "$F" setextradata "$vm_uuid" vblaunch/own "$snap $new" >/dev/null 2>&1
    "$F" snapshot "$vm_uuid" delete "$snap" >/dev/null 2>&1
    [ "$MODE" = launch ] && "$F" startvm "$vm_uuid" --type headless >/dev/null 2>&1
    t1=$EPOCHREALTIME
    echo $(($(us "$t1") - $(us "$t0")))
done
