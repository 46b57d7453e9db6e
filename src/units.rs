//! Sizes in the words messages use: one formatter for every size vblaunch
//! prints (status, doctor, restore, the pre-flight, the GUI).

/// `1.3 GiB`, `12.0 MiB`, `512 KiB`.
pub fn human(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
    } else if bytes >= 1 << 20 {
        mib(bytes, 1)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}

/// [`human`], or "size unknown".
pub fn human_or_unknown(bytes: Option<u64>) -> String {
    bytes
        .map(human)
        .unwrap_or_else(|| "size unknown".to_string())
}

/// In MiB with `decimals` digits: `208 MiB`, `1.5 MiB`.
pub fn mib(bytes: u64, decimals: usize) -> String {
    format!("{:.*} MiB", decimals, bytes as f64 / (1u64 << 20) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(human(0), "0 KiB");
        assert_eq!(human(1536), "2 KiB");
        assert_eq!(human(512 << 10), "512 KiB");
        assert_eq!(human(12 << 20), "12.0 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human_or_unknown(None), "size unknown");
        assert_eq!(mib(208 << 20, 0), "208 MiB");
        assert_eq!(mib(3 << 19, 1), "1.5 MiB");
    }
}
