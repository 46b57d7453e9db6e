//! Read-only outputs: `showvminfo --machinereadable`, `list hdds`,
//! `showmediuminfo`, snapshot sections.

use std::path::Path;

use crate::model::{State, Vm};

/// VirtualBox's machine-readable string escaping.
pub fn esc(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            c => o.push(c),
        }
    }
    o
}

/// Snapshot tree lines (names and descriptions raw, as VirtualBox prints them),
/// with the CurrentSnapshot* lines right after the current snapshot's own lines.
pub fn snapshot_lines(vm: &Vm) -> String {
    let mut o = String::new();
    for (i, p) in vm.dfs() {
        let s = &vm.snapshots[i];
        o.push_str(&format!("SnapshotName{p}=\"{}\"\n", s.name));
        o.push_str(&format!("SnapshotUUID{p}=\"{}\"\n", s.uuid));
        if !s.description.is_empty() {
            o.push_str(&format!("SnapshotDescription{p}=\"{}\"\n", s.description));
        }
        if vm.current_snapshot.as_deref() == Some(s.uuid.as_str()) {
            o.push_str(&format!("CurrentSnapshotName=\"{}\"\n", s.name));
            o.push_str(&format!("CurrentSnapshotUUID=\"{}\"\n", s.uuid));
            o.push_str(&format!("CurrentSnapshotNode=\"SnapshotName{p}\"\n"));
        }
    }
    o
}

fn ostype_desc(id: Option<&str>) -> String {
    match id {
        None | Some("Other") => "Other/Unknown".into(),
        Some("Other_64") => "Other/Unknown (64-bit)".into(),
        Some("Linux_64") => "Other Linux (64-bit)".into(),
        Some("Linux") => "Other Linux (32-bit)".into(),
        Some("Ubuntu_64") => "Ubuntu (64-bit)".into(),
        Some("Debian_64") => "Debian (64-bit)".into(),
        Some("Windows10_64") => "Windows 10 (64-bit)".into(),
        Some("Windows11_64") => "Windows 11 (64-bit)".into(),
        Some(o) => o.into(),
    }
}

pub fn showvminfo(st: &State, vm: &Vm) -> String {
    let dir = vm.vm_dir().to_string_lossy().into_owned();
    let base = vm.base_name();
    let linuxish = !matches!(vm.ostype.as_deref(), None | Some("Other"));
    let mut o = String::new();
    let mut kv = |k: &str, v: &str| o.push_str(&format!("{k}=\"{}\"\n", esc(v)));
    kv("name", &vm.name);
    kv("encryption", "disabled");
    kv("groups", "/");
    kv("platformArchitecture", "x86");
    kv("ostype", &ostype_desc(vm.ostype.as_deref()));
    kv("UUID", &vm.uuid);
    kv("CfgFile", &vm.cfg_file);
    kv("SnapFldr", &vm.snap_fldr());
    kv("LogFldr", &format!("{dir}/Logs"));
    kv("hardwareuuid", &vm.uuid);
    o.push_str(
        "memory=1024\npagefusion=\"off\"\nvram=8\ncpuexecutioncap=100\ncpu-profile=\"host\"\n\
chipset=\"piix3\"\nfirmware=\"BIOS\"\ncpus=1\nhpet=\"off\"\npae=\"on\"\nlongmode=\"on\"\n\
triplefaultreset=\"off\"\napic=\"on\"\n",
    );
    o.push_str(if linuxish {
        "x2apic=\"on\"\n"
    } else {
        "x2apic=\"off\"\n"
    });
    o.push_str(
        "nested-hw-virt=\"off\"\nhwvirtex=\"on\"\nnestedpaging=\"on\"\nlargepages=\"off\"\n\
vtxvpid=\"on\"\nvtxux=\"on\"\nvirtvmsavevmload=\"on\"\ncpuid-portability-level=0\n\
bootmenu=\"messageandmenu\"\nboot1=\"floppy\"\nboot2=\"dvd\"\nboot3=\"disk\"\nboot4=\"none\"\n\
acpi=\"on\"\nioapic=\"on\"\nbiosapic=\"apic\"\nbiossystemtimeoffset=0\n",
    );
    o.push_str(&format!(
        "NvramFile=\"{}\"\n",
        esc(&format!("{dir}/{base}.nvram"))
    ));
    o.push_str(if linuxish {
        "rtcuseutc=\"on\"\n"
    } else {
        "rtcuseutc=\"off\"\n"
    });
    o.push_str("iommu=\"none\"\nparavirtprovider=\"default\"\n");
    o.push_str(if linuxish {
        "effparavirtprovider=\"kvm\"\n"
    } else {
        "effparavirtprovider=\"none\"\n"
    });
    o.push_str(&format!("VMState=\"{}\"\n", esc(&vm.state)));
    o.push_str(&format!("VMStateChangeTime=\"{}\"\n", vm.state_change));
    if let Some(f) = &vm.state_file {
        o.push_str(&format!("VMStateFile=\"{}\"\n", esc(f)));
    }
    o.push_str(
        "graphicscontroller=\"vboxvga\"\nmonitorcount=1\naccelerate3d=\"off\"\nteleporterenabled=\"off\"\n\
teleporterport=0\nteleporteraddress=\"\"\nteleporterpassword=\"\"\ntracing-enabled=\"off\"\n\
tracing-allow-vm-access=\"off\"\ntracing-config=\"\"\nautostart-enabled=\"off\"\nautostart-delay=0\n\
defaultfrontend=\"\"\nvmprocpriority=\"default\"\n",
    );
    for (i, c) in vm.controllers.iter().enumerate() {
        let (ty, max, _) = c.kind();
        o.push_str(&format!("storagecontrollername{i}=\"{}\"\n", esc(&c.name)));
        o.push_str(&format!("storagecontrollertype{i}=\"{ty}\"\n"));
        o.push_str(&format!("storagecontrollerinstance{i}=\"0\"\n"));
        o.push_str(&format!("storagecontrollermaxportcount{i}=\"{max}\"\n"));
        o.push_str(&format!(
            "storagecontrollerportcount{i}=\"{}\"\n",
            c.ports()
        ));
        o.push_str(&format!("storagecontrollerbootable{i}=\"on\"\n"));
    }
    for c in &vm.controllers {
        let (_, _, devs) = c.kind();
        let n = esc(&c.name);
        for port in 0..c.ports() {
            for dev in 0..devs {
                let att = vm
                    .attachments
                    .iter()
                    .find(|a| a.controller == c.name && a.port == port && a.device == dev);
                match att {
                    None => o.push_str(&format!("\"{n}-{port}-{dev}\"=\"none\"\n")),
                    Some(a) => {
                        let loc = st
                            .medium(&a.medium)
                            .map(|m| m.location.clone())
                            .unwrap_or_default();
                        o.push_str(&format!("\"{n}-{port}-{dev}\"=\"{}\"\n", esc(&loc)));
                        o.push_str(&format!(
                            "\"{n}-ImageUUID-{port}-{dev}\"=\"{}\"\n",
                            a.medium
                        ));
                        o.push_str(&format!("\"{n}-hot-pluggable-{port}-{dev}\"=\"off\"\n"));
                        o.push_str(&format!("\"{n}-nonrotational-{port}-{dev}\"=\"off\"\n"));
                        o.push_str(&format!("\"{n}-discard-{port}-{dev}\"=\"off\"\n"));
                    }
                }
            }
        }
    }
    if linuxish {
        o.push_str(&format!(
            "natnet1=\"nat\"\nmacaddress1=\"{}\"\ncableconnected1=\"on\"\nnic1=\"nat\"\nnictype1=\"82540EM\"\n\
nicspeed1=\"0\"\nmtu=\"0\"\nsockSnd=\"64\"\nsockRcv=\"64\"\ntcpWndSnd=\"64\"\ntcpWndRcv=\"64\"\n\
localhostReachable=\"0\"\nforwardBroadcast=\"0\"\nenableTFTP=\"0\"\n",
            vm.mac
        ));
    } else {
        o.push_str("nic1=\"none\"\n");
    }
    o.push_str(
        "nic2=\"none\"\nnic3=\"none\"\nnic4=\"none\"\nnic5=\"none\"\nnic6=\"none\"\nnic7=\"none\"\n\
nic8=\"none\"\nhidpointing=\"ps2mouse\"\nhidkeyboard=\"ps2kbd\"\nuart1=\"off\"\nuart2=\"off\"\n\
uart3=\"off\"\nuart4=\"off\"\nlpt1=\"off\"\nlpt2=\"off\"\naudio=\"default\"\naudio_out=\"off\"\n\
audio_in=\"off\"\nclipboard=\"disabled\"\nclipboard_file_transfers=\"off\"\ndraganddrop=\"disabled\"\n",
    );
    if let Some(s) = &vm.session {
        o.push_str(&format!("SessionName=\"{}\"\n", esc(s)));
    }
    o.push_str(
        "vrde=\"off\"\nusb=\"off\"\nehci=\"off\"\nxhci=\"off\"\nrecording_started=\"off\"\n\
recording_enabled=\"off\"\nrecording_screens=1\n rec_screen0\nrec_screen_enabled=\"on\"\n\
rec_screen_id=0\nrec_screen_video_enabled=\"on\"\nrec_screen_audio_enabled=\"off\"\n\
rec_screen_dest=\"File\"\n",
    );
    o.push_str(&format!(
        "rec_screen_dest_filename=\"{}\"\n",
        esc(&format!("{dir}/{base}-screen0.webm"))
    ));
    o.push_str(
        "rec_screen_opts=\"ac_profile=med\"\nrec_screen_video_res_xy=\"1024x768\"\n\
rec_screen_video_rate_kbps=512\nrec_screen_video_fps=25\n",
    );
    o.push_str(&snapshot_lines(vm));
    o.push_str("GuestMemoryBalloon=0\n");
    o
}

/// Online states in which the current-state disks are locked by the VM process.
pub fn is_online(state: &str) -> bool {
    matches!(
        state,
        "running"
            | "paused"
            | "gurumeditation"
            | "livesnapshotting"
            | "onlinesnapshotting"
            | "teleporting"
            | "teleportingpausedvm"
            | "deletingsnapshotlive"
            | "deletingsnapshotlivepaused"
            | "starting"
            | "stopping"
            | "saving"
            | "restoring"
    )
}

fn medium_state(st: &State, idx: usize) -> &'static str {
    let m = &st.media[idx];
    if !Path::new(&m.location).is_file() {
        return "inaccessible";
    }
    for vm in st.vms.iter().filter(|v| is_online(&v.state)) {
        for a in &vm.attachments {
            let chain = st.chain(&a.medium);
            if chain.first() == Some(&idx) {
                return "locked write";
            }
            if chain.contains(&idx) {
                return "locked read";
            }
        }
    }
    "created"
}

pub fn list_hdds(st: &State) -> String {
    let mut o = String::new();
    for i in st.tree_order() {
        let m = &st.media[i];
        o.push_str(&format!("UUID:           {}\n", m.uuid));
        o.push_str(&format!(
            "Parent UUID:    {}\n",
            m.parent.as_deref().unwrap_or("base")
        ));
        o.push_str(&format!("State:          {}\n", medium_state(st, i)));
        o.push_str(&format!(
            "Type:           {}\n",
            if m.parent.is_some() {
                "normal (differencing)"
            } else {
                "normal (base)"
            }
        ));
        o.push_str(&format!("Location:       {}\n", m.location));
        o.push_str("Storage format: VDI\n");
        o.push_str(&format!("Capacity:       {} MBytes\n", m.capacity_mb));
        o.push_str("Encryption:     disabled\n\n");
    }
    o
}

pub fn showmediuminfo(st: &State, i: usize) -> String {
    let m = &st.media[i];
    let state = medium_state(st, i);
    let mut o = String::new();
    o.push_str(&format!("UUID:           {}\n", m.uuid));
    o.push_str(&format!(
        "Parent UUID:    {}\n",
        m.parent.as_deref().unwrap_or("base")
    ));
    o.push_str(&format!("State:          {state}\n"));
    if state == "inaccessible" {
        o.push_str(&format!(
            "Access Error:   Could not open the medium '{0}'.\nVD: error VERR_FILE_NOT_FOUND opening image file '{0}' (VERR_FILE_NOT_FOUND)\n",
            m.location
        ));
    }
    if m.parent.is_some() {
        o.push_str("Type:           normal (differencing)\nAuto-Reset:     off\n");
    } else {
        o.push_str("Type:           normal (base)\n");
    }
    o.push_str(&format!("Location:       {}\n", m.location));
    o.push_str("Storage format: VDI\n");
    o.push_str(if m.parent.is_some() {
        "Format variant: differencing default\n"
    } else {
        "Format variant: dynamic default\n"
    });
    o.push_str(&format!("Capacity:       {} MBytes\n", m.capacity_mb));
    o.push_str("Size on disk:   2 MBytes\n");
    o.push_str("Encryption:     disabled\n");
    o.push_str("Property:       AllocationBlockSize=1048576\n");
    let mut first = true;
    for vm in &st.vms {
        let in_cur = vm.attachments.iter().any(|a| a.medium == m.uuid);
        let snaps: Vec<usize> = vm
            .dfs()
            .into_iter()
            .map(|(s, _)| s)
            .filter(|&s| {
                vm.snapshots[s]
                    .attachments
                    .iter()
                    .any(|a| a.medium == m.uuid)
            })
            .collect();
        if !in_cur && snaps.is_empty() {
            continue;
        }
        o.push_str(if first {
            "In use by VMs:  "
        } else {
            "               "
        });
        first = false;
        o.push_str(&format!("{} (UUID: {})", vm.name, vm.uuid));
        for s in snaps {
            let s = &vm.snapshots[s];
            o.push_str(&format!(" [{} (UUID: {})]", s.name, s.uuid));
        }
        o.push('\n');
    }
    for (n, c) in st.children_of(&m.uuid).into_iter().enumerate() {
        o.push_str(if n == 0 {
            "Child UUIDs:    "
        } else {
            "                "
        });
        o.push_str(&st.media[c].uuid);
        o.push('\n');
    }
    o
}
