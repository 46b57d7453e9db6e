#!/usr/bin/env bash
# The floor for a safe fold: exactly the VBoxManage calls vblaunch makes, in
# a shell script with no checks: the two reads before (one after the other,
# as vblaunch makes them), take the new snapshot, delete the old one by UUID. (vblaunch verifies from the
# settings file VirtualBox saved, which costs no call.) vblaunch's
# real-VirtualBox cost is measured against this.
#   VBOXMANAGE=/path/to/VBoxManage floor-fold.sh VM
set -euo pipefail
V=$VBOXMANAGE vm=$1
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$V" showvminfo "$vm" --machinereadable >"$tmp"
"$V" list hdds >/dev/null
uuid='' snap=''
while IFS= read -r l; do
    case $l in
        UUID=*) uuid=${l#UUID=\"}; uuid=${uuid%\"} ;;
        CurrentSnapshotUUID=*) snap=${l#CurrentSnapshotUUID=\"}; snap=${snap%\"} ;;
    esac
done <"$tmp"
"$V" snapshot "$uuid" take current >/dev/null
"$V" snapshot "$uuid" delete "$snap"
