//! Pure parser of `VBoxManage list hdds` and `showmediuminfo` output: blocks of
//! `Label:   value` lines separated by blank lines. Values start at column 16;
//! a line that does not look like a label (e.g. the `VD: error …` line under
//! `Access Error:`) continues the previous value. VBoxManage runs under an
//! English locale (see `vbox::locale`): localized builds translate the labels.
use std::path::PathBuf;

pub use super::state::MediumState;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Medium {
    pub uuid: String,
    /// None for a base medium (`Parent UUID: base`).
    pub parent: Option<String>,
    /// `created`, `inaccessible`, `locked read`, `locked write`, …
    pub state: MediumState,
    /// `normal (base)`, `normal (differencing)`, `immutable (base)`, …
    pub kind: String,
    pub location: PathBuf,
    pub format: String,
    pub capacity_mb: Option<u64>,
    pub access_error: Option<String>,
}

impl Medium {
    pub fn is_differencing(&self) -> bool {
        self.kind.contains("(differencing)") || self.parent.is_some()
    }

    /// Snapshots only protect `normal` hard disks: writethrough and shareable
    /// disks are left out of snapshots and keep changing under a backup.
    pub fn is_normal(&self) -> bool {
        self.kind.starts_with("normal")
    }

    pub fn is_accessible(&self) -> bool {
        self.state != MediumState::Inaccessible
    }

    /// Why this image cannot be used (None: accessible and its file is there).
    pub fn problem(&self) -> Option<super::errors::ErrorKind> {
        let exists = self.location.exists();
        (!self.is_accessible() || !exists)
            .then(|| super::errors::medium_problem(self.access_error.as_deref(), exists))
    }
}

const LABELS: &[&str] = &[
    "UUID",
    "Parent UUID",
    "State",
    "Access Error",
    "Type",
    "Auto-Reset",
    "Location",
    "Storage format",
    "Format variant",
    "Capacity",
    "Size on disk",
    "Encryption",
    "Property",
    "In use by VMs",
    "Child UUIDs",
    "Description",
];

fn field(line: &str) -> Option<(&str, &str)> {
    let (label, rest) = line.split_once(':')?;
    let value = rest.trim_start();
    let value_col = line.len() - value.len();
    (LABELS.contains(&label) || (value_col == 16 && !label.starts_with(' ')))
        .then_some((label, value.trim_end()))
}

/// Parse every block; blocks without a UUID are skipped.
pub fn parse(text: &str) -> Vec<Medium> {
    let mut out = Vec::new();
    let mut cur = Medium::default();
    let mut last_label = String::new();
    let mut flush = |cur: &mut Medium| {
        if !cur.uuid.is_empty() {
            out.push(std::mem::take(cur));
        } else {
            *cur = Medium::default();
        }
    };
    for line in text.lines() {
        if line.trim().is_empty() {
            flush(&mut cur);
            continue;
        }
        match field(line) {
            Some((label, value)) => {
                last_label = label.to_string();
                match label {
                    "UUID" => {
                        if !cur.uuid.is_empty() {
                            flush(&mut cur);
                        }
                        cur.uuid = value.to_string()
                    }
                    "Parent UUID" => {
                        cur.parent =
                            (value != "base" && !value.is_empty()).then(|| value.to_string())
                    }
                    "State" => cur.state = MediumState::parse(value),
                    "Type" => cur.kind = value.to_string(),
                    "Location" => cur.location = PathBuf::from(value),
                    "Storage format" => cur.format = value.to_string(),
                    "Capacity" => {
                        cur.capacity_mb =
                            value.split_whitespace().next().and_then(|n| n.parse().ok())
                    }
                    "Access Error" => cur.access_error = Some(value.to_string()),
                    _ => {}
                }
            }
            None if last_label == "Access Error" => {
                if let Some(e) = cur.access_error.as_mut() {
                    e.push('\n');
                    e.push_str(line.trim());
                }
            }
            None => {}
        }
    }
    flush(&mut cur);
    out
}

/// A `created`, `normal` medium for unit tests: a base without `parent`, a
/// diff with one.
#[cfg(test)]
pub(crate) fn test_medium(
    uuid: &str,
    parent: Option<&str>,
    location: impl Into<PathBuf>,
    capacity_mb: Option<u64>,
) -> Medium {
    Medium {
        uuid: uuid.into(),
        parent: parent.map(Into::into),
        state: "created".into(),
        kind: if parent.is_some() {
            "normal (differencing)"
        } else {
            "normal (base)"
        }
        .into(),
        location: location.into(),
        format: "VDI".into(),
        capacity_mb,
        access_error: None,
    }
}

/// The chain from `uuid` up to its base: `[uuid, parent, …, base]`. Stops
/// (without looping) at a medium missing from `media`; the caller checks
/// that the last element is a base.
pub fn chain<'a>(media: &'a [Medium], uuid: &str) -> Vec<Result<&'a Medium, String>> {
    let mut out = Vec::new();
    let mut next = Some(uuid.to_string());
    while let Some(u) = next.take() {
        if out.len() > media.len() {
            break; // a cycle would be a VirtualBox bug; do not spin
        }
        match media.iter().find(|m| m.uuid == u) {
            Some(m) => {
                next = m.parent.clone();
                out.push(Ok(m));
            }
            None => out.push(Err(u)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixture;

    #[test]
    fn parses_recorded_list_hdds_with_three_diffs() {
        let media = parse(&fixture("22-list-hdds-3-snapshots.stdout"));
        assert_eq!(media.len(), 4);
        assert_eq!(media[0].parent, None);
        assert_eq!(media[0].kind, "normal (base)");
        assert!(!media[0].is_differencing());
        assert_eq!(media[0].capacity_mb, Some(32));
        assert!(media[3].is_differencing());
        assert_eq!(
            media[3].parent.as_deref(),
            Some("7d072fae-bd84-4ada-92bd-38ef9d7978d6")
        );
        let c = chain(&media, "3462b2bb-99c9-4e73-acf7-3497dac9f1c7");
        let uuids: Vec<_> = c
            .iter()
            .map(|m| m.as_ref().unwrap().uuid.as_str())
            .collect();
        assert_eq!(
            uuids,
            [
                "3462b2bb-99c9-4e73-acf7-3497dac9f1c7",
                "7d072fae-bd84-4ada-92bd-38ef9d7978d6",
                "b17818fb-c219-4856-b58c-c771447f3fb2",
                "23efa5b1-d77e-4182-934e-73737e5ccb8b"
            ]
        );
    }

    #[test]
    fn marks_a_deleted_diff_inaccessible() {
        let media = parse(&fixture("35-diffgone-list-hdds.stdout"));
        let gone = media
            .iter()
            .find(|m| m.uuid == "3462b2bb-99c9-4e73-acf7-3497dac9f1c7")
            .unwrap();
        assert!(!gone.is_accessible());
        assert!(media.iter().filter(|m| m.is_accessible()).count() == 2);
    }

    #[test]
    fn showmediuminfo_access_error_keeps_its_continuation_line() {
        let media = parse(&fixture("36-diffgone-showmediuminfo.stdout"));
        assert_eq!(media.len(), 1);
        let err = media[0].access_error.as_deref().unwrap();
        assert!(err.starts_with("Could not open the medium"), "{err}");
        assert!(
            err.contains("VERR_FILE_NOT_FOUND opening image file"),
            "{err}"
        );
        assert_eq!(media[0].kind, "normal (differencing)");
    }

    #[test]
    fn chain_reports_a_parent_missing_from_the_registry() {
        let media = parse(&fixture("35-diffgone-list-hdds.stdout"));
        let only_leaf: Vec<Medium> = media.into_iter().skip(2).collect();
        let c = chain(&only_leaf, "3462b2bb-99c9-4e73-acf7-3497dac9f1c7");
        assert!(c[0].is_ok());
        assert_eq!(
            c[1].as_ref().unwrap_err(),
            "7d072fae-bd84-4ada-92bd-38ef9d7978d6"
        );
    }

    #[test]
    fn empty_output_is_no_media() {
        assert!(parse("").is_empty());
    }
}
