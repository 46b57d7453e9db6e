//! Tell the user about a failure when no terminal is watching (a shortcut
//! launch, or the end of a `--wait` session): a desktop notification where
//! that is the norm — `notify-send` on Linux desktops, Notification Center on
//! macOS. On Windows a shortcut starts `vblaunchw.exe`, which shows its own
//! failure dialog instead. Best effort: a missing notifier is only logged.
//! The notifier runs through [`crate::process`] with a deadline.
use std::time::Duration;

use crate::platform::Os;
use crate::process::{self, CommandLine, Deadline};

/// The notifier command for `os`, if one applies.
pub fn command(os: Os, title: &str, body: &str) -> Option<(String, Vec<String>)> {
    let body: String = body.chars().take(1000).collect();
    match os {
        Os::Linux => Some((
            "notify-send".into(),
            vec![
                "--app-name=vblaunch".into(),
                "--urgency=critical".into(),
                title.into(),
                body,
            ],
        )),
        Os::MacOs => Some((
            "osascript".into(),
            vec![
                "-e".into(),
                format!(
                    "display notification {} with title {}",
                    applescript_string(&body),
                    applescript_string(title)
                ),
            ],
        )),
        Os::Windows => None,
    }
}

fn applescript_string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

pub fn failure(title: &str, body: &str) {
    let Some((program, args)) = command(Os::current(), title, body) else {
        return;
    };
    let mut cmd = CommandLine::new(std::path::Path::new(&program));
    cmd.args = args.into_iter().map(Into::into).collect();
    // Through the one subprocess wrapper: a notifier that hangs (no session
    // bus) is stopped, never holds up vblaunch's exit.
    match process::run(&cmd, Deadline::After(Duration::from_secs(10)), &mut |_| {}) {
        Ok(out) if out.status.success() => log::debug!("notified the desktop with {program}"),
        Ok(out) => log::debug!("{program} failed ({})", out.status),
        Err(e) => log::debug!("no desktop notification: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifier_per_os() {
        let (p, a) = command(Os::Linux, "t", "b").unwrap();
        assert_eq!(p, "notify-send");
        assert_eq!(a[2..], ["t".to_string(), "b".to_string()]);
        let (p, a) = command(Os::MacOs, "vblaunch", "say \"hi\"").unwrap();
        assert_eq!(p, "osascript");
        assert_eq!(
            a[1],
            "display notification \"say \\\"hi\\\"\" with title \"vblaunch\""
        );
        assert!(command(Os::Windows, "t", "b").is_none());
    }
}
