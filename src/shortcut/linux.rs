//! freedesktop.org `.desktop` entries (Desktop Entry Specification 1.5).
//! vblaunch is called with `--pause-on-error`, so a failed launch stays on
//! screen: the entry that starts `vblaunch` opens a terminal
//! (`Terminal=true`); the one that starts `vblaunchw` (made where zenity or
//! kdialog can show its windows, see `face::desktop`) needs none.

/// Quote one argument for `Exec=` per the spec: arguments with reserved
/// characters go in double quotes, inside which `"`, `` ` ``, `$` and `\` are
/// backslash-escaped; `%` is doubled (field codes).
pub fn exec_arg(arg: &str) -> String {
    const RESERVED: &[char] = &[
        ' ', '\t', '\n', '"', '\'', '\\', '>', '<', '~', '|', '&', ';', '$', '*', '?', '#', '(',
        ')', '`', '=',
    ];
    let arg = arg.replace('%', "%%");
    if !arg.is_empty() && !arg.contains(RESERVED) {
        return arg;
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        if matches!(c, '"' | '`' | '$' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// Escape a string value (the spec's `\s \n \t \r \\` rules). The spec
/// allows no other control characters in a value and has no escape for
/// them: they become U+FFFD (vblaunch never puts one in `Exec=`: a VM name
/// with one is passed by UUID).
fn value(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '\\' => "\\\\".to_string(),
            '\n' => "\\n".to_string(),
            '\t' => "\\t".to_string(),
            '\r' => "\\r".to_string(),
            c if c.is_control() => '\u{FFFD}'.to_string(),
            c => c.to_string(),
        })
        .collect()
}

pub struct Entry<'a> {
    pub name: &'a str,
    pub comment: &'a str,
    /// Program and its arguments, unquoted.
    pub argv: &'a [&'a str],
    pub icon: &'a str,
    pub vm: &'a str,
    /// Whether the program needs a terminal (the console `vblaunch`).
    pub terminal: bool,
}

pub fn render(e: &Entry<'_>) -> String {
    let exec = e
        .argv
        .iter()
        .map(|a| exec_arg(a))
        .collect::<Vec<_>>()
        .join(" ");
    format!(
        "[Desktop Entry]\n\
         Type=Application\n\
         Version=1.0\n\
         Name={}\n\
         Comment={}\n\
         Exec={}\n\
         Icon={}\n\
         Terminal={}\n\
         Categories=System;Emulator;\n\
         X-Vblaunch-VM={}\n",
        value(e.name),
        value(e.comment),
        value(&exec),
        value(e.icon),
        e.terminal,
        value(e.vm)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The reverse of the spec's rules: unescape the value, then split the
    /// command line honouring double quotes and backslash escapes.
    fn parse_exec(line: &str) -> Vec<String> {
        let mut v = String::new();
        let mut it = line.chars();
        while let Some(c) = it.next() {
            if c == '\\' {
                match it.next() {
                    Some('s') => v.push(' '),
                    Some('n') => v.push('\n'),
                    Some('t') => v.push('\t'),
                    Some('r') => v.push('\r'),
                    Some('\\') => v.push('\\'),
                    Some(o) => {
                        v.push('\\');
                        v.push(o)
                    }
                    None => v.push('\\'),
                }
            } else {
                v.push(c);
            }
        }
        let mut args = Vec::new();
        let mut cur = String::new();
        let mut quoted = false;
        let mut have = false;
        let mut it = v.chars().peekable();
        while let Some(c) = it.next() {
            match c {
                '"' => {
                    quoted = !quoted;
                    have = true
                }
                '\\' if quoted => {
                    if let Some(n) = it.next() {
                        cur.push(n)
                    }
                }
                ' ' if !quoted => {
                    if have {
                        args.push(std::mem::take(&mut cur));
                        have = false;
                    }
                }
                '%' if it.peek() == Some(&'%') => {
                    it.next();
                    cur.push('%');
                    have = true
                }
                o => {
                    cur.push(o);
                    have = true
                }
            }
        }
        if have {
            args.push(cur);
        }
        args
    }

    #[test]
    fn exec_line_round_trips_awkward_vm_names() {
        for name in [
            "Dev Box",
            "a\"b",
            "$HOME `x`",
            "back\\slash",
            "100% ü",
            "k=v",
            "plain",
        ] {
            let argv = ["/opt/my tools/vblaunch", "--pause-on-error", "launch", name];
            let text = render(&Entry {
                name: "n",
                comment: "c",
                argv: &argv,
                icon: "virtualbox",
                vm: name,
                terminal: true,
            });
            let exec = text.lines().find_map(|l| l.strip_prefix("Exec=")).unwrap();
            assert_eq!(parse_exec(exec), argv, "{exec}");
        }
    }

    #[test]
    fn entry_has_the_required_keys() {
        let text = render(&Entry {
            name: "Dev Box (vblaunch)",
            comment: "Start it",
            argv: &["/usr/bin/vblaunch", "launch", "Dev Box"],
            icon: "virtualbox",
            vm: "Dev Box",
            terminal: true,
        });
        assert!(text.starts_with("[Desktop Entry]\nType=Application\n"));
        assert!(
            text.contains("\nExec=/usr/bin/vblaunch launch \"Dev Box\"\n"),
            "{text}"
        );
        assert!(text.contains("\nIcon=virtualbox\n") && text.contains("\nTerminal=true\n"));
    }
}
