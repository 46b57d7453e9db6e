# Sourced by floor-fold.sh and fake-loop.sh: what vblaunch reads besides its
# one VBoxManage call, with bash builtins only (no fork).
#
# lookup NAME LISTING sets
#   uuid: the VM's UUID, from the `list --multiple vms runningvms hdds` output
#         in the file LISTING;
#   snap: its current snapshot's UUID, from its .vbox, which
#         $VBOX_USER_HOME/VirtualBox.xml registers.
lookup() {
    local name=$1 listing=$2 l cfg=''
    uuid='' snap=''
    while IFS= read -r l; do
        case $l in
            "\"$name\" {"*) uuid=${l##*\{}; uuid=${uuid%\}} ;;
        esac
    done <"$listing"
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
}
