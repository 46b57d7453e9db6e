//! A stateful, test-only fake of VirtualBox 7.2's `VBoxManage`, for vblaunch's
//! integration tests. Outputs mirror real VBoxManage 7.2.22 byte for byte where
//! recorded (tests/fixtures). State lives in `$VBOX_USER_HOME/fake-vbox.toml`.
//!
//! Fake-only control calls (`fake …`, not logged in `fake-calls.log`):
//!   fake fault [--nth N] <cmd words…> fail <exit> <stderr text…>
//!   fake fault [--nth N] <cmd words…> hang|die|die-after|start-quirk|stale-settings|misname
//!   fake fault [--nth N] <cmd words…> real <case>   (a recorded real fault, see faults.rs)
//!   fake fault [--nth N] <cmd words…> delay <ms>   (answers as of the call's start, <ms> late)
//!   fake fault [--nth N] <cmd words…> slow-progress <ms>   (its 0%...10%... one step every <ms>)
//!   fake set-state <vm> <state> [--session NAME]
//!   fake session <vm> <NAME|->
//!   fake linger on|off   (a power-off leaves the session closing, as real VirtualBox does)
//!   fake write <medium path|uuid> <offset> <text>
//!   fake content <medium path|uuid>
//!   fake unregister-medium <uuid>
//!   fake calls
//!
//! Encoding, as real VBoxManage (IPRT) does it (control calls excepted):
//! - Linux/macOS: output is converted to the code set of `LC_ALL` / `LC_CTYPE`
//!   / `LANG`. Under a locale that is not UTF-8 (`C`, `POSIX`, unset) that is
//!   ASCII: a non-ASCII argument fails with `VBoxManage: fatal error: RTR3Init:
//!   VERR_NO_TRANSLATION` (exit 3, nothing done), and stdout and stderr each
//!   end at their first non-ASCII character (exit unchanged), as recorded in
//!   tests/fixtures/49- to 54-.
//! - Windows: output is written in the ANSI code page (`GetACP`), a character
//!   that code page lacks as `?` (as `WideCharToMultiByte` does).

mod cmds;
mod faults;
mod info;
mod model;

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use model::State;

/// Output of one command, printed by `main` (or swallowed for `die-after`).
#[derive(Default)]
pub struct Out {
    pub stdout: String,
    pub stderr: String,
    pub code: i32,
}

impl Out {
    pub fn ok() -> Out {
        Out::default()
    }
    pub fn out(&mut self, s: &str) {
        self.stdout.push_str(s);
    }
    pub fn err(&mut self, s: &str) {
        self.stderr.push_str(s);
    }
    /// `VBoxManage: error: <line>` for each line, and exit 1.
    pub fn vbox_error(mut self, lines: &[String]) -> Out {
        for l in lines {
            self.stderr.push_str("VBoxManage: error: ");
            self.stderr.push_str(l);
            self.stderr.push('\n');
        }
        self.code = 1;
        self
    }
}

pub const PROGRESS: &str = "0%...10%...20%...30%...40%...50%...60%...70%...80%...90%...100%\n";

/// A command the fake does not model: exit 2, so tests notice.
pub fn unsupported(what: &str) -> Out {
    Out {
        stdout: String::new(),
        stderr: format!("fake VBoxManage: unsupported: {what}\n"),
        code: 2,
    }
}

pub struct Ctx {
    pub home: PathBuf,
}

fn main() {
    let code = match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("fake VBoxManage: internal error: {e:#}");
            3
        }
    };
    std::process::exit(code);
}

fn run() -> Result<i32> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let home = match std::env::var_os("VBOX_USER_HOME") {
        Some(h) if !h.is_empty() => PathBuf::from(h),
        _ => {
            eprintln!("fake VBoxManage: VBOX_USER_HOME must be set");
            return Ok(2);
        }
    };
    fs::create_dir_all(&home).with_context(|| format!("creating {}", home.display()))?;
    // Real VBoxSVC starts its log with its version (vblaunch reads it there).
    let svc_log = home.join("VBoxSVC.log");
    if !svc_log.exists() {
        fs::write(
            &svc_log,
            "00:00:00.000839 main     VirtualBox XPCOM Server 7.2.22_Fake r0 linux.amd64 (fake) release log\n",
        )?;
    }
    if matches!(args.first().map(String::as_str), Some("--version" | "-V")) && args.len() == 1 {
        log_call(&home, &args)?;
        // The fake's version is the one its VBoxSVC.log names (a test may
        // install an "older VirtualBox" by writing that log).
        let log = fs::read_to_string(&svc_log).unwrap_or_default();
        let v = log
            .split_once(" Server ")
            .and_then(|(_, r)| r.split_whitespace().next())
            .unwrap_or("7.2.22_Fake");
        println!("{v}");
        return Ok(0);
    }

    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(home.join("fake-vbox.lock"))
        .context("opening the lock file")?;
    lock.lock().context("locking the fake state")?;

    let state_path = home.join("fake-vbox.toml");
    let mut st = model::load(&state_path)?;
    let before = toml::to_string(&st)?;
    let ctx = Ctx { home: home.clone() };

    if args.first().map(String::as_str) == Some("fake") {
        let out = control(&ctx, &mut st, &args[1..])?;
        persist(&state_path, &st, &before)?;
        drop(lock);
        return Ok(emit_raw(out));
    }

    log_call(&home, &args)?;
    if !encoding::utf8_locale() && args.iter().any(|a| !a.is_ascii()) {
        drop(lock);
        return Ok(emit_raw(Out {
            stdout: String::new(),
            stderr: "VBoxManage: fatal error: RTR3Init: VERR_NO_TRANSLATION\n".into(),
            code: 3,
        }));
    }

    if let Some(fault) = take_fault(&mut st, &args) {
        return fire_fault(&ctx, st, &state_path, &before, lock, &args, fault);
    }

    let out = cmds::dispatch(&ctx, &mut st, &args)?;
    persist(&state_path, &st, &before)?;
    drop(lock);
    Ok(emit(out))
}

fn persist(path: &Path, st: &State, before: &str) -> Result<()> {
    if toml::to_string(st)? != before {
        model::save(path, st)?;
        model::write_settings(st, path.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

/// Print a command's output in the current code set (see the module doc).
fn emit(out: Out) -> i32 {
    let mut so = std::io::stdout();
    let _ = so.write_all(&encoding::current_code_set(&out.stdout));
    let _ = so.flush();
    let mut se = std::io::stderr();
    let _ = se.write_all(&encoding::current_code_set(&out.stderr));
    let _ = se.flush();
    out.code
}

/// Print UTF-8 as it is (control calls, which real VBoxManage does not have).
fn emit_raw(out: Out) -> i32 {
    let mut so = std::io::stdout();
    let _ = so.write_all(out.stdout.as_bytes());
    let _ = so.flush();
    let mut se = std::io::stderr();
    let _ = se.write_all(out.stderr.as_bytes());
    let _ = se.flush();
    out.code
}

mod encoding {
    /// Whether the locale's code set is UTF-8 (what IPRT's RTR3Init sees
    /// after `setlocale(LC_CTYPE, "")`). Always true on Windows, where argv
    /// arrives as UTF-16.
    pub fn utf8_locale() -> bool {
        if cfg!(windows) {
            return true;
        }
        let ctype = ["LC_ALL", "LC_CTYPE", "LANG"]
            .iter()
            .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()));
        ctype.is_some_and(|c| {
            let codeset = c.split_once('.').map(|(_, cs)| cs).unwrap_or("");
            let codeset = codeset.split('@').next().unwrap_or("");
            codeset.eq_ignore_ascii_case("utf-8") || codeset.eq_ignore_ascii_case("utf8")
        })
    }

    /// `text` as VBoxManage writes it to a pipe.
    pub fn current_code_set(text: &str) -> Vec<u8> {
        #[cfg(windows)]
        {
            // SAFETY: GetACP takes no arguments and only returns a number.
            let cp = unsafe { windows_sys::Win32::Globalization::GetACP() };
            in_code_page(cp, text)
        }
        #[cfg(not(windows))]
        {
            if utf8_locale() {
                text.as_bytes().to_vec()
            } else {
                ascii_cut_off(text).as_bytes().to_vec()
            }
        }
    }

    /// What IPRT prints of `text` under an ASCII locale, as measured on 7.2.22
    /// (fixtures 49-54): nothing after the first chunk it cannot convert.
    /// A `--machinereadable` value is one chunk (`CfgFile="` and the end);
    /// in list output the line ends right at the character (`"Dev Box `).
    #[cfg_attr(windows, allow(dead_code))]
    pub fn ascii_cut_off(text: &str) -> &str {
        let Some(bad) = text.find(|c: char| !c.is_ascii()) else {
            return text;
        };
        let line_start = text[..bad].rfind('\n').map_or(0, |i| i + 1);
        let line = &text[line_start..bad];
        let value = if line.starts_with('"') {
            line.find("\"=\"").map(|i| i + 3)
        } else {
            line.find("=\"").map(|i| i + 2)
        };
        &text[..line_start + value.unwrap_or(line.len())]
    }

    /// `text` in Windows code page `cp`, `?` for what it lacks.
    #[cfg(windows)]
    pub fn in_code_page(cp: u32, text: &str) -> Vec<u8> {
        use encoding_rs::EncoderResult;
        let enc = u16::try_from(cp)
            .ok()
            .and_then(codepage::to_encoding)
            .unwrap_or(encoding_rs::UTF_8);
        let mut encoder = enc.new_encoder();
        let mut out = Vec::with_capacity(text.len() * 2 + 16);
        let mut rest = text;
        loop {
            let mut buf = [0u8; 1024];
            let (res, read, written) =
                encoder.encode_from_utf8_without_replacement(rest, &mut buf, true);
            out.extend_from_slice(&buf[..written]);
            rest = &rest[read..];
            match res {
                EncoderResult::InputEmpty => return out,
                EncoderResult::OutputFull => {}
                EncoderResult::Unmappable(_) => out.push(b'?'),
            }
        }
    }
}

fn escape_arg(a: &str) -> String {
    let mut s = String::with_capacity(a.len());
    for c in a.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '\t' => s.push_str("\\t"),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

fn log_call(home: &Path, args: &[String]) -> Result<()> {
    let line = args
        .iter()
        .map(|a| escape_arg(a))
        .collect::<Vec<_>>()
        .join("\t");
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(home.join("fake-calls.log"))
        .context("opening fake-calls.log")?;
    f.write_all(format!("{line}\n").as_bytes())?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Faults

const ACTIONS: &[&str] = &[
    "fail",
    "real",
    "hang",
    "die",
    "die-after",
    "start-quirk",
    "stale-settings",
    "misname",
    "delay",
    "slow-progress",
];

fn fault_matches(words: &[String], args: &[String]) -> bool {
    let Some((first, rest)) = words.split_first() else {
        return false;
    };
    if args.first() != Some(first) {
        return false;
    }
    let mut it = args.iter().skip(1);
    rest.iter().all(|w| it.any(|a| a == w))
}

/// Counts this call against every matching fault; returns (and removes) the
/// first one whose turn has come.
fn take_fault(st: &mut State, args: &[String]) -> Option<model::Fault> {
    let mut fire = None;
    for (i, f) in st.faults.iter_mut().enumerate() {
        if !fault_matches(&f.words, args) {
            continue;
        }
        if f.skip > 0 {
            f.skip -= 1;
        } else if fire.is_none() {
            fire = Some(i);
        }
    }
    fire.map(|i| st.faults.remove(i))
}

fn is_snapshot_op(args: &[String]) -> bool {
    args.first().map(String::as_str) == Some("snapshot")
        && matches!(
            args.get(2).map(String::as_str),
            Some("take" | "delete" | "restore" | "restorecurrent")
        )
}

fn fire_fault(
    ctx: &Ctx,
    mut st: State,
    state_path: &Path,
    before: &str,
    lock: File,
    args: &[String],
    fault: model::Fault,
) -> Result<i32> {
    match fault.action.as_str() {
        // The call works, but the settings files keep their old text (as if
        // read before VirtualBox saved them).
        "stale-settings" => {
            let out = cmds::dispatch(ctx, &mut st, args)?;
            if toml::to_string(&st)? != before {
                model::save(state_path, &st)?;
            }
            drop(lock);
            Ok(emit(out))
        }
        // `snapshot <vm> take <name>` works but names the snapshot
        // "<name> (2)": a result vblaunch must refuse to start.
        "misname" => {
            let mut args = args.to_vec();
            if let Some(name) = args.get_mut(3) {
                name.push_str(" (2)");
            }
            let out = cmds::dispatch(ctx, &mut st, &args)?;
            persist(state_path, &st, before)?;
            drop(lock);
            Ok(emit(out))
        }
        // A slow answer: what VirtualBox held when the call began, printed
        // <ms> later (other calls run meanwhile).
        "delay" => {
            let out = cmds::dispatch(ctx, &mut st, args)?;
            persist(state_path, &st, before)?;
            drop(lock);
            let ms: u64 = fault
                .args
                .first()
                .and_then(|c| c.parse().ok())
                .unwrap_or(1000);
            std::thread::sleep(std::time::Duration::from_millis(ms));
            Ok(emit(out))
        }
        // A slow call (a long merge): it works, and prints its progress
        // (`0%...10%...`) one step every <ms>, as VirtualBox does as it goes.
        "slow-progress" => {
            let out = cmds::dispatch(ctx, &mut st, args)?;
            persist(state_path, &st, before)?;
            drop(lock);
            let ms: u64 = fault
                .args
                .first()
                .and_then(|c| c.parse().ok())
                .unwrap_or(500);
            let (progress, rest) = if out.stderr.starts_with("0%") {
                let end = out.stderr.find('\n').map_or(out.stderr.len(), |i| i + 1);
                out.stderr.split_at(end)
            } else {
                ("", out.stderr.as_str())
            };
            let mut so = std::io::stdout();
            let _ = so.write_all(&encoding::current_code_set(&out.stdout));
            let _ = so.flush();
            let mut se = std::io::stderr();
            for step in progress.split_inclusive("...") {
                let _ = se.write_all(step.as_bytes());
                let _ = se.flush();
                if step.ends_with("...") {
                    std::thread::sleep(std::time::Duration::from_millis(ms));
                }
            }
            let _ = se.write_all(&encoding::current_code_set(rest));
            let _ = se.flush();
            Ok(out.code)
        }
        "fail" => {
            persist(state_path, &st, before)?;
            drop(lock);
            let code: i32 = fault.args.first().and_then(|c| c.parse().ok()).unwrap_or(1);
            let text = fault.args.get(1..).map(|t| t.join(" ")).unwrap_or_default();
            let mut out = Out {
                code,
                ..Out::default()
            };
            if is_snapshot_op(args) {
                if let Some(line) = cmds::deleting_line(&st, args) {
                    out.out(&line);
                }
                out.err("0%...");
            }
            out.err(&text);
            if !text.is_empty() && !text.ends_with('\n') {
                out.err("\n");
            }
            Ok(emit(out))
        }
        "real" => {
            persist(state_path, &st, before)?;
            drop(lock);
            let case = fault.args.first().map(String::as_str).unwrap_or("");
            let (stdout, stderr, code) = faults::fire(case, &st, &ctx.home, args)
                .with_context(|| format!("unknown real fault {case:?}"))?;
            Ok(emit(Out {
                stdout,
                stderr,
                code,
            }))
        }
        "hang" => {
            persist(state_path, &st, before)?;
            drop(lock);
            eprint!("0%...");
            let _ = std::io::stderr().flush();
            loop {
                std::thread::sleep(std::time::Duration::from_secs(3600));
            }
        }
        "die" => {
            persist(state_path, &st, before)?;
            drop(lock);
            if let Some(line) = cmds::deleting_line(&st, args) {
                print!("{line}");
                let _ = std::io::stdout().flush();
            }
            eprint!("0%...10%...20%...");
            let _ = std::io::stderr().flush();
            std::process::abort();
        }
        "die-after" => {
            let out = cmds::dispatch(ctx, &mut st, args)?;
            persist(state_path, &st, before)?;
            drop(lock);
            // The client was killed before it could report: only the progress
            // that had been printed so far shows.
            if out.stderr.starts_with("0%") {
                eprint!("0%...10%...20%...");
            }
            Ok(137)
        }
        "start-quirk" => {
            let mut out = cmds::dispatch(ctx, &mut st, args)?;
            persist(state_path, &st, before)?;
            drop(lock);
            if out.code == 0 {
                out.code = 1;
            }
            Ok(emit(out))
        }
        other => bail!("unknown fault action {other:?}"),
    }
}

// ---------------------------------------------------------------------------
// Control calls

fn control(ctx: &Ctx, st: &mut State, args: &[String]) -> Result<Out> {
    let mut out = Out::ok();
    let usage = |m: &str| Out {
        stdout: String::new(),
        stderr: format!("fake VBoxManage: {m}\n"),
        code: 2,
    };
    match args.first().map(String::as_str) {
        Some("fault") => {
            let mut rest = &args[1..];
            let mut skip = 0u32;
            if rest.first().map(String::as_str) == Some("--nth") {
                let n: u32 = match rest.get(1).and_then(|n| n.parse().ok()) {
                    Some(n) if n >= 1 => n,
                    _ => return Ok(usage("fault: --nth needs a number >= 1")),
                };
                skip = n - 1;
                rest = &rest[2..];
            }
            let Some(pos) = rest.iter().position(|a| ACTIONS.contains(&a.as_str())) else {
                return Ok(usage(
                    "fault: no action (fail|real|hang|die|die-after|start-quirk|stale-settings|misname|delay|slow-progress)",
                ));
            };
            if pos == 0 {
                return Ok(usage("fault: empty command pattern"));
            }
            let words: Vec<String> = rest[..pos]
                .iter()
                .flat_map(|w| w.split_whitespace().map(str::to_string).collect::<Vec<_>>())
                .collect();
            let action = rest[pos].clone();
            let fargs = rest[pos + 1..].to_vec();
            if action == "fail" && fargs.first().and_then(|c| c.parse::<i32>().ok()).is_none() {
                return Ok(usage("fault: fail needs <exit> <stderr text>"));
            }
            if action == "real" && !fargs.first().is_some_and(|c| faults::known(c)) {
                return Ok(usage(&format!(
                    "fault: real needs one of: {}",
                    faults::names().join(" ")
                )));
            }
            st.faults.push(model::Fault {
                words,
                skip,
                action,
                args: fargs,
            });
        }
        Some("set-state") => {
            let (Some(vm), Some(state)) = (args.get(1), args.get(2)) else {
                return Ok(usage("set-state <vm> <state> [--session NAME]"));
            };
            let session = match args.get(3).map(String::as_str) {
                Some("--session") => match args.get(4) {
                    Some(s) => Some(s.clone()),
                    None => return Ok(usage("set-state: --session needs a name")),
                },
                Some(o) => return Ok(usage(&format!("set-state: unexpected {o:?}"))),
                None => None,
            };
            let Some(i) = cmds::vm_index_any(st, vm) else {
                return Ok(usage(&format!("no VM {vm:?}")));
            };
            let v = &mut st.vms[i];
            v.state = state.clone();
            v.state_change = model::now_stamp();
            if matches!(state.as_str(), "saved" | "aborted-saved") && v.state_file.is_none() {
                let f = Path::new(&v.snap_fldr()).join("fake-set-state.sav");
                fs::create_dir_all(v.snap_fldr()).ok();
                fs::write(&f, "fake saved state\n").ok();
                v.state_file = Some(f.to_string_lossy().into_owned());
            } else if matches!(state.as_str(), "poweroff" | "aborted") {
                v.state_file = None;
            }
            if let Some(s) = session {
                v.session = Some(s);
            }
        }
        Some("session") => {
            let (Some(vm), Some(name)) = (args.get(1), args.get(2)) else {
                return Ok(usage("session <vm> <NAME|->"));
            };
            let Some(i) = cmds::vm_index_any(st, vm) else {
                return Ok(usage(&format!("no VM {vm:?}")));
            };
            st.vms[i].session = if name == "-" {
                None
            } else {
                Some(name.clone())
            };
        }
        Some("linger") => match args.get(1).map(String::as_str) {
            Some("on") => st.linger_session = true,
            Some("off") => st.linger_session = false,
            _ => return Ok(usage("linger on|off")),
        },
        Some("write") => {
            let (Some(m), Some(off), Some(text)) = (args.get(1), args.get(2), args.get(3)) else {
                return Ok(usage("write <medium> <offset> <text>"));
            };
            let off: u64 = match off.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16),
                None => off.parse(),
            }
            .context("write: bad offset")?;
            let path = match st.find_medium(m) {
                Some(i) => st.media[i].location.clone(),
                None if Path::new(m).is_file() => m.clone(),
                None => return Ok(usage(&format!("write: no medium {m:?}"))),
            };
            let mut blocks = model::read_blocks(&path)?;
            for (k, b) in text.bytes().enumerate() {
                blocks.insert(off + k as u64, b);
            }
            model::write_blocks(&path, &blocks)?;
        }
        Some("content") => {
            let Some(m) = args.get(1) else {
                return Ok(usage("content <medium>"));
            };
            let paths: Vec<String> = match st.find_medium(m) {
                Some(i) => st
                    .chain(&st.media[i].uuid.clone())
                    .into_iter()
                    .map(|j| st.media[j].location.clone())
                    .collect(),
                None if Path::new(m).is_file() => vec![m.clone()],
                None => return Ok(usage(&format!("content: no medium {m:?}"))),
            };
            let mut blocks = model::Blocks::new();
            for p in paths.iter().rev() {
                if !Path::new(p).is_file() {
                    return Ok(Out {
                        stdout: String::new(),
                        stderr: format!("fake VBoxManage: medium file missing: {p}\n"),
                        code: 1,
                    });
                }
                blocks.extend(model::read_blocks(p)?);
            }
            out.out(&model::blocks_text(&blocks));
        }
        Some("unregister-medium") => {
            let Some(u) = args.get(1) else {
                return Ok(usage("unregister-medium <uuid>"));
            };
            match st.find_medium(u) {
                Some(i) => {
                    st.media.remove(i);
                }
                None => return Ok(usage(&format!("unregister-medium: no medium {u:?}"))),
            }
        }
        Some("calls") => {
            let text = fs::read_to_string(ctx.home.join("fake-calls.log")).unwrap_or_default();
            out.out(&text);
        }
        other => return Ok(usage(&format!("unknown control call {other:?}"))),
    }
    Ok(out)
}
