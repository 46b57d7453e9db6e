//! Windows: embed an application manifest in the executables. It asks for
//! version 6 of the common controls (themed buttons, the marquee progress
//! bar of vblaunchw's progress window) and says `asInvoker` (never a UAC
//! prompt). Nothing else: the ANSI code page, DPI awareness and long-path
//! behaviour stay the system's, so `vblaunch.exe` (which decodes
//! VBoxManage's output in that code page) behaves exactly as before.
//! Cargo applies it to every binary of the package (`rustc-link-arg-bins`);
//! the test executables get none and use comctl32 v5, which draws the same
//! windows unthemed.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("windows") {
        use embed_manifest::manifest::ExecutionLevel;
        use embed_manifest::{embed_manifest, empty_manifest, manifest::AssemblyIdentity};
        let manifest = empty_manifest()
            .name("vblaunch")
            .dependency(AssemblyIdentity::new(
                "Microsoft.Windows.Common-Controls",
                [6, 0, 0, 0],
                0x6595b64144ccf1df,
            ))
            .requested_execution_level(ExecutionLevel::AsInvoker);
        embed_manifest(manifest).expect("embedding the application manifest");
    }
}
