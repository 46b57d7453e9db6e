#!/bin/sh
# The seed's plain fold script, the baseline vblaunch is measured against:
# delete (merge) the snapshot "current", take a fresh one. Nothing else: no
# checks, no verification, the snapshot addressed by name.
#   VBOXMANAGE=/path/to/VBoxManage seed-fold.sh VM
set -e
"$VBOXMANAGE" snapshot "$1" delete current
"$VBOXMANAGE" snapshot "$1" take current
