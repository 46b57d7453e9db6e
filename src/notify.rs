//! Tell the user about a failure when no terminal is watching (a shortcut
//! launch, or the end of a `--wait` session), or a shortcut launch's end
//! ([`note`]): a desktop notification where
//! that is the norm — `notify-send` on Linux desktops, Notification Center on
//! macOS. On Windows a shortcut starts `vblaunchw.exe`, which shows its own
//! failure dialog instead. Best effort: a missing notifier is only logged.
//! The notifier runs through [`crate::process`] with a deadline.
use std::time::Duration;

use crate::platform::Os;
use crate::process::{self, CommandLine, Deadline};

/// How a notification asks for attention.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Urgency {
    /// News the user need not act on (the end of a shortcut's session).
    Normal,
    /// A failure (stays until dismissed, where the desktop does that).
    Critical,
}

/// The notifier command for `os`, if one applies.
pub fn command(os: Os, urgency: Urgency, title: &str, body: &str) -> Option<(String, Vec<String>)> {
    let body: String = body.chars().take(1000).collect();
    match os {
        Os::Linux => {
            let mut args = vec!["--app-name=vblaunch".to_string()];
            if urgency == Urgency::Critical {
                args.push("--urgency=critical".into());
            }
            args.extend([title.to_string(), body]);
            Some(("notify-send".into(), args))
        }
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

/// Tell the desktop of a failure.
pub fn failure(title: &str, body: &str) {
    send(Urgency::Critical, title, body);
}

/// Tell the desktop something it need not act on (a shortcut launch's
/// face: "Dev Box: today's work is in the base disk").
pub fn note(title: &str, body: &str) {
    send(Urgency::Normal, title, body);
}

fn send(urgency: Urgency, title: &str, body: &str) {
    let Some((program, args)) = command(Os::current(), urgency, title, body) else {
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
        let (p, a) = command(Os::Linux, Urgency::Critical, "t", "b").unwrap();
        assert_eq!(p, "notify-send");
        assert_eq!(a, ["--app-name=vblaunch", "--urgency=critical", "t", "b"]);
        let (_, a) = command(Os::Linux, Urgency::Normal, "t", "b").unwrap();
        assert_eq!(a, ["--app-name=vblaunch", "t", "b"]);
        let (p, a) = command(Os::MacOs, Urgency::Critical, "vblaunch", "say \"hi\"").unwrap();
        assert_eq!(p, "osascript");
        assert_eq!(
            a[1],
            "display notification \"say \\\"hi\\\"\" with title \"vblaunch\""
        );
        assert!(command(Os::Windows, Urgency::Normal, "t", "b").is_none());
    }
}
