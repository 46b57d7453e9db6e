#!/bin/sh
# The seed's own pre-launch script (what the author's shortcut ran): delete
# (merge) the snapshot "current", take a fresh one, start the VM. No checks.
#   VBOXMANAGE=/path/to/VBoxManage seed-launch.sh VM
set -e
"$VBOXMANAGE" snapshot "$1" delete current
"$VBOXMANAGE" snapshot "$1" take current
"$VBOXMANAGE" startvm "$1" --type gui
