//! Logging: the terminal (stderr) at info (`-v` debug, `-vv` trace, `-q` warn,
//! `-qq` error) and a log file under the platform data dir at debug, with every
//! VBoxManage command line, its duration, exit status and stderr. A launch from
//! a shortcut has no terminal: the log file is where its story is kept.
use std::io::IsTerminal;
use std::path::Path;

use simplelog::{
    ColorChoice, CombinedLogger, ConfigBuilder, LevelFilter, SharedLogger, TermLogger,
    TerminalMode, WriteLogger,
};

/// Records with this target go to the log file only (the final error, which
/// main prints to the terminal itself).
pub const FILE_ONLY: &str = "vblaunch::logfile";

const MAX_LOG_BYTES: u64 = 5 * 1024 * 1024;

fn term_level(verbosity: i8) -> LevelFilter {
    match verbosity {
        i8::MIN..=-2 => LevelFilter::Error,
        -1 => LevelFilter::Warn,
        0 => LevelFilter::Info,
        1 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// Set up both loggers. Returns an error text when the log file could not be
/// opened (vblaunch goes on: the terminal still shows what happens).
pub fn init(verbosity: i8, log_file: &Path) -> Result<(), String> {
    let term_cfg = ConfigBuilder::new()
        .set_time_level(LevelFilter::Off)
        .set_thread_level(LevelFilter::Off)
        .set_target_level(LevelFilter::Off)
        .set_location_level(LevelFilter::Off)
        // simplelog prints the level tag for levels at or above this one; the
        // terminal shows plain sentences, the log file keeps the tags.
        .set_max_level(LevelFilter::Off)
        .add_filter_ignore_str(FILE_ONLY)
        .add_filter_allow_str("vblaunch")
        .build();
    let mut loggers: Vec<Box<dyn SharedLogger>> = vec![Box::new(Sanitized {
        inner: TermLogger::new(
            term_level(verbosity),
            term_cfg,
            TerminalMode::Stderr,
            if std::io::stderr().is_terminal() {
                ColorChoice::Auto
            } else {
                ColorChoice::Never
            },
        ),
        continuation: "\n",
    })];
    let file_result = open_log(log_file).map(|file| {
        let file_cfg = ConfigBuilder::new()
            .set_time_format_rfc3339()
            .set_thread_level(LevelFilter::Off)
            .set_target_level(LevelFilter::Off)
            .add_filter_allow_str("vblaunch")
            .build();
        // simplelog writes a record in many small pieces (measured: ~1000
        // write calls per fold, a few ms). A LineWriter makes that one write
        // per line, still each complete line on disk at once.
        loggers.push(Box::new(Sanitized {
            inner: WriteLogger::new(LevelFilter::Debug, file_cfg, std::io::LineWriter::new(file)),
            continuation: "\n    ",
        }));
    });
    let _ = CombinedLogger::init(loggers);
    file_result
}

/// A name (VM, snapshot, path) made safe to show in one line of a message or
/// the log: control characters (newlines included) become escapes like
/// `\n` or `\u{1b}`, so a name cannot forge log lines or move the cursor.
///
/// ```
/// assert_eq!(vblaunch::logging::escape("a\nb\u{1b}[2J"), "a\\nb\\u{1b}[2J");
/// assert_eq!(vblaunch::logging::escape("Dev Box ü"), "Dev Box ü");
/// ```
pub fn escape(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A message made safe for one record: control characters escaped (see
/// [`escape`]) except line breaks, and every line break followed by
/// `continuation`. In the log file that is an indent, so a line of a record
/// can never pass for a record of its own (each starts with its time).
pub fn sanitize<'a>(msg: &'a str, continuation: &str) -> std::borrow::Cow<'a, str> {
    let unsafe_char = |c: char| c.is_control() && c != '\t' && (c != '\n' || continuation != "\n");
    if !msg.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(msg);
    }
    let mut out = String::with_capacity(msg.len() + 16);
    for c in msg.chars() {
        match c {
            '\n' => out.push_str(continuation),
            '\t' => out.push('\t'),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A logger that passes every record through [`sanitize`]: names from
/// VirtualBox or the command line (VM, snapshot, path) cannot forge log
/// lines or send terminal escape sequences.
struct Sanitized<L> {
    inner: Box<L>,
    continuation: &'static str,
}

impl<L: SharedLogger + 'static> log::Log for Sanitized<L> {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        self.inner.enabled(metadata)
    }

    fn log(&self, record: &log::Record<'_>) {
        if !self.inner.enabled(record.metadata()) {
            return;
        }
        let text = record.args().to_string();
        let clean = sanitize(&text, self.continuation);
        self.inner.log(
            &log::Record::builder()
                .args(format_args!("{clean}"))
                .metadata(record.metadata().clone())
                .module_path(record.module_path())
                .file(record.file())
                .line(record.line())
                .build(),
        );
    }

    fn flush(&self) {
        self.inner.flush()
    }
}

impl<L: SharedLogger + 'static> SharedLogger for Sanitized<L> {
    fn level(&self) -> LevelFilter {
        self.inner.level()
    }

    fn config(&self) -> Option<&simplelog::Config> {
        self.inner.config()
    }

    fn as_log(self: Box<Self>) -> Box<dyn log::Log> {
        self
    }
}

/// Whether the log file was opened (so that an error can point at it).
static LOG_FILE_OPEN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether this run writes a log file.
pub fn has_log_file() -> bool {
    LOG_FILE_OPEN.load(std::sync::atomic::Ordering::Relaxed)
}

/// Open the log (0600, in a 0700 folder, never through a link).
fn open_log(path: &Path) -> Result<std::fs::File, String> {
    let file = open_log_file(path).map_err(|e| format!("{e:#}"))?;
    LOG_FILE_OPEN.store(true, std::sync::atomic::Ordering::Relaxed);
    Ok(file)
}

fn open_log_file(path: &Path) -> anyhow::Result<std::fs::File> {
    if let Some(dir) = path.parent() {
        crate::files::private_dir(dir)?;
    }
    crate::files::refuse_link(path)?;
    // Keep the log bounded: one previous generation.
    if std::fs::metadata(path)
        .map(|m| m.len() > MAX_LOG_BYTES)
        .unwrap_or(false)
    {
        let _ = std::fs::rename(path, path.with_extension("log.1"));
    }
    crate::files::open_append(path)
}

/// The log file's path (also printed with every error).
pub fn log_file_path() -> std::path::PathBuf {
    crate::platform::data_dir().join("vblaunch.log")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verbosity_maps_to_levels() {
        assert_eq!(term_level(0), LevelFilter::Info);
        assert_eq!(term_level(1), LevelFilter::Debug);
        assert_eq!(term_level(5), LevelFilter::Trace);
        assert_eq!(term_level(-1), LevelFilter::Warn);
        assert_eq!(term_level(-3), LevelFilter::Error);
    }

    #[test]
    fn a_name_cannot_forge_a_log_record_or_move_the_cursor() {
        let msg = "reading VM 'x\n2026-01-01T00:00:00Z [INFO] forged\u{1b}[2J'";
        let file = sanitize(msg, "\n    ");
        assert_eq!(
            file,
            "reading VM 'x\n    2026-01-01T00:00:00Z [INFO] forged\\u{1b}[2J'"
        );
        assert!(file.lines().skip(1).all(|l| l.starts_with("    ")));
        let term = sanitize(msg, "\n");
        assert!(!term.contains('\u{1b}') && term.contains('\n'));
        assert!(matches!(
            sanitize("plain\tline", "\n    "),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
