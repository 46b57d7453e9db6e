//! `list vms|runningvms|hdds`, one list at a time or several with
//! `list --multiple …`.

use crate::info;
use crate::model::State;
use crate::{unsupported, Out};

pub(super) fn list(st: &State, args: &[String]) -> Out {
    // `list --multiple a b …` (7.x): each list under a `[a]` header, the
    // headers after the first preceded by a blank line (recorded: 48-).
    if let Some((flag, whats)) = args.split_first() {
        if flag == "--multiple" || flag == "-m" {
            let mut out = Out::ok();
            for (i, what) in whats.iter().enumerate() {
                let one = list(st, std::slice::from_ref(what));
                if one.code != 0 {
                    return one;
                }
                let sep = if i == 0 { "" } else { "\n" };
                out.out(&format!("{sep}[{what}]\n{}", one.stdout));
            }
            return out;
        }
    }
    let mut out = Out::ok();
    match args {
        [what] if what == "vms" => {
            for vm in &st.vms {
                if st.vm_accessible(vm) {
                    out.out(&format!("\"{}\" {{{}}}\n", vm.name, vm.uuid));
                } else {
                    out.out(&format!("\"<inaccessible>\" {{{}}}\n", vm.uuid));
                }
            }
        }
        [what] if what == "runningvms" => {
            for vm in st.vms.iter().filter(|v| st.vm_accessible(v)) {
                if matches!(
                    vm.state.as_str(),
                    "running"
                        | "paused"
                        | "teleporting"
                        | "livesnapshotting"
                        | "teleportingpausedvm"
                ) {
                    out.out(&format!("\"{}\" {{{}}}\n", vm.name, vm.uuid));
                }
            }
        }
        [what] if what == "hdds" => out.out(&info::list_hdds(st)),
        _ => return unsupported(&format!("list {}", args.join(" "))),
    }
    out
}
