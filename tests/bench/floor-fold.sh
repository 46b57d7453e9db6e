#!/usr/bin/env bash
# The floor for a safe fold: exactly the VBoxManage calls vblaunch makes, in
# a shell script with no checks: the one read before
# (`list --multiple vms runningvms hdds`; the VM's UUID from it, the current
# snapshot's UUID from the VM's .vbox, found through VirtualBox.xml, as
# vblaunch does), take the new snapshot, delete the old one by UUID.
# (vblaunch verifies from the settings file VirtualBox saved, which costs no
# call.) vblaunch's real-VirtualBox cost is measured against this.
#   VBOXMANAGE=/path/to/VBoxManage VBOX_USER_HOME=… floor-fold.sh VM
set -euo pipefail
V=$VBOXMANAGE vm=$1
uuid='' snap='' cfg=''
while IFS= read -r l; do
    case $l in
        "\"$vm\" {"*) uuid=${l##*\{}; uuid=${uuid%\}} ;;
    esac
done < <("$V" list --multiple vms runningvms hdds)
while IFS= read -r l; do
    case $l in
        *"MachineEntry uuid=\"{$uuid}\""*) cfg=${l#*src=\"}; cfg=${cfg%%\"*} ;;
    esac
done <"$VBOX_USER_HOME/VirtualBox.xml"
while IFS= read -r l; do
    case $l in
        *"<Machine "*currentSnapshot=*) snap=${l#*currentSnapshot=\"\{}; snap=${snap%%\}*} ;;
    esac
done <"$cfg"
"$V" snapshot "$uuid" take current >/dev/null
"$V" snapshot "$uuid" delete "$snap"
