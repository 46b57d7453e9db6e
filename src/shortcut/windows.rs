//! Windows `.lnk` shortcuts (MS-SHLLINK), rendered as bytes on any OS so that
//! Linux CI writes them and parses them back.
//!
//! Written here rather than with a crate: the crates.io writers either omit
//! the link target altogether (`lnk` 0.6 saves neither LinkTargetIDList nor
//! LinkInfo) or build it by splitting the path with the *host's* path rules
//! and unwrapping (`mslnk`), so neither can produce a valid Windows link on
//! Linux. The subset needed is small and fixed: a header, a LinkInfo with the
//! target's local path (ANSI and Unicode), and the string data. The tests
//! parse the result with the `lnk` crate.

/// What the shortcut does.
#[derive(Debug, Clone)]
pub struct Lnk<'a> {
    /// Absolute Windows path of the program, e.g. `C:\Tools\vblaunch.exe`.
    pub target: &'a str,
    /// The command line after the program, already quoted (see [`quote_args`]).
    pub arguments: &'a str,
    pub working_dir: &'a str,
    /// `path` of an .exe or .ico; icon index 0.
    pub icon: Option<&'a str>,
    /// Shown as the tooltip ("Comment").
    pub description: &'a str,
}

const HAS_LINK_INFO: u32 = 0x02;
const HAS_NAME: u32 = 0x04;
const HAS_WORKING_DIR: u32 = 0x10;
const HAS_ARGUMENTS: u32 = 0x20;
const HAS_ICON_LOCATION: u32 = 0x40;
const IS_UNICODE: u32 = 0x80;
const FILE_ATTRIBUTE_ARCHIVE: u32 = 0x20;
const SW_SHOWNORMAL: u32 = 1;
const DRIVE_FIXED: u32 = 3;
/// {00021401-0000-0000-C000-000000000046}, as stored.
const LINK_CLSID: [u8; 16] = [
    0x01, 0x14, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0xC0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x46,
];

fn u16le(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn u32le(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_le_bytes());
}

fn utf16(s: &str) -> Vec<u16> {
    s.encode_utf16().collect()
}

/// A StringData entry: character count, then UTF-16LE without terminator.
fn string_data(out: &mut Vec<u8>, s: &str) {
    let units = utf16(s);
    u16le(out, units.len() as u16);
    for u in units {
        u16le(out, u);
    }
}

/// The ANSI copy of a path in LinkInfo: readers prefer the Unicode one; keep
/// ASCII and replace anything else with '?'.
fn ansi(s: &str) -> Vec<u8> {
    s.chars()
        .map(|c| if c.is_ascii() { c as u8 } else { b'?' })
        .collect()
}

/// The `.lnk` file's bytes.
pub fn render(l: &Lnk<'_>) -> Vec<u8> {
    let mut flags = HAS_LINK_INFO | HAS_NAME | HAS_WORKING_DIR | HAS_ARGUMENTS | IS_UNICODE;
    if l.icon.is_some() {
        flags |= HAS_ICON_LOCATION;
    }
    let mut out = Vec::with_capacity(512);
    // ShellLinkHeader (0x4C bytes)
    u32le(&mut out, 0x4C);
    out.extend_from_slice(&LINK_CLSID);
    u32le(&mut out, flags);
    u32le(&mut out, FILE_ATTRIBUTE_ARCHIVE);
    out.extend_from_slice(&[0u8; 24]); // creation, access, write times
    u32le(&mut out, 0); // file size
    u32le(&mut out, 0); // icon index
    u32le(&mut out, SW_SHOWNORMAL);
    u16le(&mut out, 0); // hot key
    out.extend_from_slice(&[0u8; 10]); // reserved
    debug_assert_eq!(out.len(), 0x4C);

    // LinkInfo with a Unicode header (0x24): VolumeID + LocalBasePath.
    let header_size = 0x24u32;
    let mut volume = Vec::new();
    u32le(&mut volume, 0x11); // VolumeIDSize: 16 + empty label
    u32le(&mut volume, DRIVE_FIXED);
    u32le(&mut volume, 0); // serial number
    u32le(&mut volume, 0x10); // label offset
    volume.push(0); // empty label
    let mut base_ansi = ansi(l.target);
    base_ansi.push(0);
    let suffix_ansi = [0u8];
    let mut base_unicode = Vec::new();
    for u in utf16(l.target) {
        u16le(&mut base_unicode, u);
    }
    u16le(&mut base_unicode, 0);
    let suffix_unicode = [0u8, 0u8];

    let volume_off = header_size;
    let base_off = volume_off + volume.len() as u32;
    let suffix_off = base_off + base_ansi.len() as u32;
    let base_uni_off = suffix_off + suffix_ansi.len() as u32;
    let suffix_uni_off = base_uni_off + base_unicode.len() as u32;
    let size = suffix_uni_off + suffix_unicode.len() as u32;
    u32le(&mut out, size);
    u32le(&mut out, header_size);
    u32le(&mut out, 0x1); // VolumeIDAndLocalBasePath
    u32le(&mut out, volume_off);
    u32le(&mut out, base_off);
    u32le(&mut out, 0); // no network link
    u32le(&mut out, suffix_off);
    u32le(&mut out, base_uni_off);
    u32le(&mut out, suffix_uni_off);
    out.extend_from_slice(&volume);
    out.extend_from_slice(&base_ansi);
    out.extend_from_slice(&suffix_ansi);
    out.extend_from_slice(&base_unicode);
    out.extend_from_slice(&suffix_unicode);

    // StringData, in the order the format fixes.
    string_data(&mut out, l.description);
    string_data(&mut out, l.working_dir);
    string_data(&mut out, l.arguments);
    if let Some(icon) = l.icon {
        string_data(&mut out, icon);
    }
    // ExtraData: only the terminal block.
    u32le(&mut out, 0);
    out
}

/// Quote one argument so that `CommandLineToArgvW` (and Rust's own parser)
/// give it back unchanged.
pub fn quote_arg(arg: &str) -> String {
    if !arg.is_empty() && !arg.contains([' ', '\t', '\n', '"']) {
        return arg.to_string();
    }
    let mut out = String::from("\"");
    let mut backslashes = 0usize;
    for c in arg.chars() {
        match c {
            '\\' => backslashes += 1,
            '"' => {
                out.extend(std::iter::repeat_n('\\', backslashes * 2 + 1));
                out.push('"');
                backslashes = 0;
            }
            other => {
                out.extend(std::iter::repeat_n('\\', backslashes));
                out.push(other);
                backslashes = 0;
            }
        }
    }
    out.extend(std::iter::repeat_n('\\', backslashes * 2));
    out.push('"');
    out
}

pub fn quote_args(args: &[&str]) -> String {
    args.iter()
        .map(|a| quote_arg(a))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// CommandLineToArgvW's rules for arguments after the program name.
    fn split_windows(cmd: &str) -> Vec<String> {
        let mut args = Vec::new();
        let mut cur = String::new();
        let mut in_quotes = false;
        let mut have = false;
        let chars: Vec<char> = cmd.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\\' {
                let mut n = 0;
                while i < chars.len() && chars[i] == '\\' {
                    n += 1;
                    i += 1;
                }
                if i < chars.len() && chars[i] == '"' {
                    cur.extend(std::iter::repeat_n('\\', n / 2));
                    if n % 2 == 1 {
                        cur.push('"');
                        i += 1;
                    }
                } else {
                    cur.extend(std::iter::repeat_n('\\', n));
                }
                have = true;
                continue;
            }
            if c == '"' {
                in_quotes = !in_quotes;
                have = true;
            } else if (c == ' ' || c == '\t') && !in_quotes {
                if have {
                    args.push(std::mem::take(&mut cur));
                    have = false;
                }
            } else {
                cur.push(c);
                have = true;
            }
            i += 1;
        }
        if have {
            args.push(cur);
        }
        args
    }

    #[test]
    fn quoting_round_trips_through_windows_rules() {
        for name in [
            "Dev Box",
            "plain",
            "with \"quotes\"",
            "trailing\\",
            "C:\\dir with space\\",
            "back\\\\\"slash",
            "Ärger – ünïcödé",
            "",
            "a\tb",
        ] {
            let line = quote_args(&["--pause-on-error", "launch", name]);
            assert_eq!(
                split_windows(&line),
                ["--pause-on-error", "launch", name],
                "{line}"
            );
        }
    }

    fn parse(bytes: &[u8]) -> lnk::ShellLink {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.lnk");
        std::fs::write(&p, bytes).unwrap();
        lnk::ShellLink::open(&p, lnk::encoding::WINDOWS_1252).unwrap()
    }

    #[test]
    fn lnk_parses_back_with_target_arguments_icon_and_working_dir() {
        let args = quote_args(&["--pause-on-error", "launch", "Dev \"Box\" é"]);
        let bytes = render(&Lnk {
            target: r"C:\Program Files\vblaunch\vblaunch.exe",
            arguments: &args,
            working_dir: r"C:\Program Files\vblaunch",
            icon: Some(r"C:\Program Files\Oracle\VirtualBox\VirtualBox.exe"),
            description: "Start VM 'Dev \"Box\" é' with vblaunch",
        });
        let link = parse(&bytes);
        assert_eq!(
            link.link_target().as_deref(),
            Some(r"C:\Program Files\vblaunch\vblaunch.exe")
        );
        let sd = link.string_data();
        assert_eq!(sd.command_line_arguments().as_deref(), Some(args.as_str()));
        assert_eq!(
            sd.working_dir().as_deref(),
            Some(r"C:\Program Files\vblaunch")
        );
        assert_eq!(
            sd.icon_location().as_deref(),
            Some(r"C:\Program Files\Oracle\VirtualBox\VirtualBox.exe")
        );
        assert_eq!(
            sd.name_string().as_deref(),
            Some("Start VM 'Dev \"Box\" é' with vblaunch")
        );
        assert_eq!(
            split_windows(sd.command_line_arguments().as_ref().unwrap()),
            ["--pause-on-error", "launch", "Dev \"Box\" é"]
        );
    }

    #[test]
    fn non_ascii_targets_survive_in_the_unicode_path() {
        let bytes = render(&Lnk {
            target: r"C:\Users\Jürgen\bin\vblaunch.exe",
            arguments: "launch x",
            working_dir: r"C:\Users\Jürgen\bin",
            icon: None,
            description: "d",
        });
        let link = parse(&bytes);
        assert_eq!(
            link.link_target().as_deref(),
            Some(r"C:\Users\Jürgen\bin\vblaunch.exe")
        );
        assert_eq!(link.string_data().icon_location(), &None);
    }
}
