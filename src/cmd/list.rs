//! `vblaunch list`: the registered VMs, one line each, with whether vblaunch
//! manages them and how many restore points they have.
use anyhow::Result;

use crate::snapshots;
use crate::Context;

pub fn run(ctx: &Context) -> Result<()> {
    let eff = ctx.effective(&[]);
    let vb = ctx.vbox(&eff)?;
    let vms = vb.list_vms()?;
    if vms.is_empty() {
        log::info!("VirtualBox has no registered VMs.");
    }
    for (name, uuid) in vms {
        match vb.show_vm_info(&uuid) {
            Ok(vm) => {
                let eff = ctx.effective(&[&vm.name, &vm.uuid]);
                let (own, _) = snapshots::own_snapshots(&vm, &eff.snapshot_name, false);
                let managed = if own.is_empty() {
                    "not managed".to_string()
                } else {
                    let n = own.len() - 1;
                    format!(
                        "managed, {n} restore point{}",
                        if n == 1 { "" } else { "s" }
                    )
                };
                // One line per VM: a name's tabs and newlines are escaped.
                let name = crate::logging::escape(&vm.name);
                println!("{name}\t{{{}}}\t{}\t{managed}", vm.uuid, vm.state);
            }
            Err(_) => println!(
                "{}\t{{{uuid}}}\tinaccessible\tunknown",
                crate::logging::escape(&name)
            ),
        }
    }
    Ok(())
}
