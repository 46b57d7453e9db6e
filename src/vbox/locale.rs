//! Which locale VBoxManage runs under (Linux, macOS), and how its output is
//! decoded (Windows).
//!
//! Sharp edge: IPRT (VirtualBox's runtime) converts VBoxManage's argv from,
//! and its stdout/stderr to, the *current code set*. On Linux/macOS that is
//! the code set of `LC_CTYPE`. Under `C`/`POSIX` it is ASCII, and measured on
//! 7.2.22 (tests/fixtures/49-…54-): a non-ASCII argument fails with
//! `VBoxManage: fatal error: RTR3Init: VERR_NO_TRANSLATION` (exit 3), and a
//! non-ASCII byte in the output ends the output right there, with exit 0.
//! So vblaunch never runs VBoxManage under the user's `C` locale, and never
//! under a translated one either (`list hdds` labels are translated):
//! 1. `LC_ALL=C.UTF-8` (English, UTF-8), else `LC_ALL=en_US.UTF-8`, if the C
//!    library here can load it;
//! 2. else the user's own locale if its code set is UTF-8, for `LC_CTYPE`
//!    only, with `LC_MESSAGES=C` and `LANGUAGE=C` (English messages);
//! 3. else `LC_ALL=C` (ASCII), and a VM name or path that is not ASCII is
//!    refused with a message that names the locale (see [`Choice::Ascii`]).
//!
//! How "can load it" is checked: `newlocale(3)`, the same C-library lookup
//! (locale archive, `/usr/lib/locale/<name>`, `LOCPATH`) that VBoxManage's own
//! `setlocale` does on an installed VirtualBox, where VBoxManage runs on this
//! very system and inherits this environment. It costs a few microseconds
//! (no process, no `locale -a`), once per run. (In the tests VBoxManage runs in
//! a chroot through a wrapper; that chroot has `C.utf8` like the host, and the
//! "native" tests run vblaunch inside the chroot, so the check is made where
//! VBoxManage runs.) glibc normalises the code set part, so `C.UTF-8` also
//! finds `C.utf8`; on macOS `en_US.UTF-8` always exists.
use std::sync::OnceLock;

/// The environment VBoxManage gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// `LC_ALL=<name>`: an English UTF-8 locale.
    All(String),
    /// `LC_ALL` removed, `LC_CTYPE=<name>` (the user's UTF-8 locale),
    /// `LC_MESSAGES=C`, `LANGUAGE=C`.
    Ctype(String),
    /// No UTF-8 locale: `LC_ALL=C`. Non-ASCII names and paths cannot pass.
    Ascii,
}

impl Choice {
    /// (set, remove) for the child's environment.
    pub fn env(&self) -> (Vec<(String, String)>, Vec<String>) {
        match self {
            Choice::All(name) => (vec![("LC_ALL".into(), name.clone())], vec![]),
            Choice::Ctype(name) => (
                vec![
                    ("LC_CTYPE".into(), name.clone()),
                    ("LC_MESSAGES".into(), "C".into()),
                    ("LANGUAGE".into(), "C".into()),
                ],
                vec!["LC_ALL".into()],
            ),
            Choice::Ascii => (vec![("LC_ALL".into(), "C".into())], vec![]),
        }
    }
}

/// English UTF-8 locales to try, best first.
pub const CANDIDATES: [&str; 2] = ["C.UTF-8", "en_US.UTF-8"];

/// Whether a locale name (`de_DE.UTF-8`, `ja_JP.utf8@x`) says UTF-8.
pub fn names_utf8(name: &str) -> bool {
    let Some((_, codeset)) = name.split_once('.') else {
        return false;
    };
    let codeset = codeset.split('@').next().unwrap_or("");
    codeset.eq_ignore_ascii_case("utf-8") || codeset.eq_ignore_ascii_case("utf8")
}

/// The user's `LC_CTYPE` as the C library resolves it: `LC_ALL`, else
/// `LC_CTYPE`, else `LANG` (the first that is set and not empty).
pub fn user_ctype(get: impl Fn(&str) -> Option<String>) -> Option<String> {
    ["LC_ALL", "LC_CTYPE", "LANG"]
        .iter()
        .find_map(|k| get(k).filter(|v| !v.is_empty()))
}

/// Pure: the choice, given which locales load and the user's `LC_CTYPE`.
pub fn choose(loads: impl Fn(&str) -> bool, user: Option<&str>) -> Choice {
    if let Some(c) = CANDIDATES.iter().find(|c| loads(c)) {
        return Choice::All(c.to_string());
    }
    match user {
        Some(u) if names_utf8(u) && loads(u) => Choice::Ctype(u.to_string()),
        _ => Choice::Ascii,
    }
}

#[cfg(unix)]
fn loads(name: &str) -> bool {
    let Ok(c) = std::ffi::CString::new(name) else {
        return false;
    };
    // SAFETY: newlocale reads a NUL-terminated name and returns a new locale
    // object (or null); we free what it returns and use nothing else.
    unsafe {
        let loc = libc::newlocale(libc::LC_CTYPE_MASK, c.as_ptr(), std::ptr::null_mut());
        if loc.is_null() {
            return false;
        }
        libc::freelocale(loc);
    }
    true
}

/// The choice for this run (computed once).
pub fn current() -> &'static Choice {
    static CHOICE: OnceLock<Choice> = OnceLock::new();
    CHOICE.get_or_init(|| {
        #[cfg(unix)]
        {
            let user = user_ctype(|k| std::env::var(k).ok());
            // Test seam: a system with no UTF-8 locale at all (glibc 2.35+
            // always has C.UTF-8, so the tests cannot make one otherwise).
            let none = std::env::var_os("VBLAUNCH_TEST_NO_UTF8_LOCALE").is_some_and(|v| v == "1");
            let c = if none {
                choose(|_| false, user.as_deref())
            } else {
                choose(loads, user.as_deref())
            };
            log::debug!("VBoxManage locale: {c:?} (user's LC_CTYPE: {user:?})");
            c
        }
        #[cfg(not(unix))]
        {
            // Windows: IPRT uses the ANSI code page whatever the environment
            // says; output is decoded with it (crate::process).
            Choice::All("C".into())
        }
    })
}

/// What to tell the user when no UTF-8 locale exists here.
pub fn ascii_only_advice() -> String {
    let user = user_ctype(|k| std::env::var(k).ok()).unwrap_or_else(|| "C".into());
    format!(
        "No UTF-8 locale is installed on this system (vblaunch tried {} and your locale \
         '{user}'), so VBoxManage can only pass ASCII names and paths: it stops its output at \
         the first other character. Install a UTF-8 locale (Debian/Ubuntu: the 'locales' \
         package, then 'sudo dpkg-reconfigure locales'; Fedora: glibc-langpack-en), or \
         rename the VM / move its files to an ASCII path.",
        CANDIDATES.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_english_utf8_locale_is_preferred_to_the_users() {
        let all = |_: &str| true;
        assert_eq!(
            choose(all, Some("de_DE.UTF-8")),
            Choice::All("C.UTF-8".into())
        );
        let no_c = |n: &str| n != "C.UTF-8";
        assert_eq!(choose(no_c, Some("C")), Choice::All("en_US.UTF-8".into()));
    }

    #[test]
    fn the_users_utf8_locale_is_used_for_ctype_only() {
        let only = |n: &str| n == "de_DE.utf8";
        let c = choose(only, Some("de_DE.utf8"));
        assert_eq!(c, Choice::Ctype("de_DE.utf8".into()));
        let (set, remove) = c.env();
        assert!(set.contains(&("LC_MESSAGES".into(), "C".into())));
        assert!(set.contains(&("LANGUAGE".into(), "C".into())));
        assert_eq!(remove, ["LC_ALL"]);
    }

    #[test]
    fn without_any_utf8_locale_the_choice_is_ascii() {
        let none = |n: &str| n == "de_DE.ISO-8859-1" || n == "C";
        assert_eq!(choose(none, Some("de_DE.ISO-8859-1")), Choice::Ascii);
        assert_eq!(choose(none, Some("C")), Choice::Ascii);
        assert_eq!(choose(none, None), Choice::Ascii);
        // A UTF-8 name that does not load is no use either.
        assert_eq!(choose(|_| false, Some("xx_YY.UTF-8")), Choice::Ascii);
        assert_eq!(
            Choice::Ascii.env().0,
            [("LC_ALL".to_string(), "C".to_string())]
        );
    }

    #[test]
    fn locale_names_and_precedence() {
        assert!(names_utf8("en_US.UTF-8"));
        assert!(names_utf8("ja_JP.utf8@x"));
        assert!(!names_utf8("C"));
        assert!(!names_utf8("POSIX"));
        assert!(!names_utf8("de_DE.ISO-8859-15"));
        let env = |k: &str| match k {
            "LC_ALL" => Some(String::new()),
            "LC_CTYPE" => Some("fr_FR.UTF-8".to_string()),
            _ => Some("C".to_string()),
        };
        assert_eq!(user_ctype(env).as_deref(), Some("fr_FR.UTF-8"));
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_c_library_is_asked_whether_a_locale_exists() {
        // Every glibc system here has C.UTF-8 (Debian: since 2.13; upstream 2.35).
        assert!(loads("C") && loads("POSIX"));
        assert!(!loads("xx_NOSUCH.UTF-8"));
    }
}
