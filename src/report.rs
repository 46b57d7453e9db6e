//! How a run that failed ends for its user: the error printed once (with
//! its causes and the log file's path) and recorded in the log file, and,
//! for a shortcut's window that would close, a pause or a desktop
//! notification so that a failure is never silent.
use crate::logging;
use crate::notify;

/// Print the error that ends a run once (with its causes and the log file's
/// path) and record it in the log file.
pub fn report_error(err: &anyhow::Error) {
    let mut text = format!("{err}");
    for cause in err.chain().skip(1) {
        text.push_str(&format!("\n  caused by: {cause}"));
    }
    log::error!(target: logging::FILE_ONLY, "{text}");
    eprintln!("vblaunch: error: {}", logging::sanitize(&text, "\n"));
    if logging::has_log_file() {
        eprintln!("(log file: {})", logging::log_file_path().display());
    }
}

/// After a failure with `--pause-on-error` (a shortcut launch): keep its
/// window open, or (no terminal at all) tell the desktop, so that a failure
/// is never silent.
pub fn after_failure(message: &str) {
    use std::io::IsTerminal;
    if std::io::stdin().is_terminal() {
        pause_for_enter();
    } else {
        notify::failure("vblaunch", message);
    }
}

/// After an error in a window that closes when vblaunch exits (a shortcut),
/// keep it open until the user has read it. Only when someone can answer.
pub fn pause_for_enter() {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return;
    }
    eprint!("Press Enter to close this window.");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    let _ = std::io::stdin().lock().read_line(&mut line);
}
