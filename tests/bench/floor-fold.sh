#!/usr/bin/env bash
# The floor for a safe fold: exactly the VBoxManage calls vblaunch makes, in
# a shell script with no checks: the one read
# (`list --multiple vms runningvms hdds`; the VM's UUID from it, the current
# snapshot's UUID from the VM's .vbox, found through VirtualBox.xml, as
# vblaunch does), take the new snapshot, record it as vblaunch's
# (`setextradata`), delete the old one by UUID.
# (vblaunch verifies from the settings file VirtualBox saved, which costs no
# call.) vblaunch's real-VirtualBox cost is measured against this.
#   VBOXMANAGE=/path/to/VBoxManage VBOX_USER_HOME=… floor-fold.sh VM
set -euo pipefail
V=$VBOXMANAGE vm=$1
. "${BASH_SOURCE[0]%/*}/vbox-lookup.sh"
tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
"$V" list --multiple vms runningvms hdds >"$tmp"
lookup "$vm" "$tmp"
new=$("$V" snapshot "$uuid" take current)
new=${new##*UUID: }
"$V" setextradata "$uuid" vblaunch/own "$snap $new"
"$V" snapshot "$uuid" delete "$snap"
