//! macOS: a `.command` file, which Finder opens in Terminal (so a failed
//! launch stays on screen). Double-clickable from the Desktop, the Dock or
//! ~/Applications.

/// POSIX single-quote one word.
pub fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

pub fn render(argv: &[&str], vm: &str) -> String {
    let cmd = argv
        .iter()
        .map(|a| sh_quote(a))
        .collect::<Vec<_>>()
        .join(" ");
    let vm_line = vm.replace(['\n', '\r'], " ");
    format!("#!/bin/sh\n# Starts the VirtualBox VM \"{vm_line}\" with vblaunch (made by `vblaunch shortcut`).\nexec {cmd}\n")
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn command_file_runs_the_exact_argv() {
        // Run the script with `echo` as the program and compare what it got.
        let argv = [
            "/bin/echo",
            "--pause-on-error",
            "launch",
            "It's \"Dev\" $Box é",
        ];
        let script = render(&argv, argv[3]);
        let out = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "--pause-on-error launch It's \"Dev\" $Box é\n"
        );
    }
}
