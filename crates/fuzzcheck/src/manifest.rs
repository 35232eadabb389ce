//! `manifest`: the manifest parser and archive selection on any text.
//!
//! Parsing may refuse; it may not panic. Every archive it can select, for
//! any platform and variant named in the manifest, has a `relative_path`
//! that stays inside the mirror (relative, no `..`), a 64-digit lower-case
//! sha256, and belongs to the component asked for.

use redist::{Manifest, PlatformEntry};

/// The property; panics with what broke.
pub fn check(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(m) = Manifest::parse(text, "fuzz.json") else {
        return;
    };
    let _ = m.label();
    for (key, c) in &m.components {
        let mut platforms: Vec<String> = c.platform_names().iter().map(|p| p.to_string()).collect();
        platforms.extend(["linux-x86_64", "linux-sbsa", "windows-x86_64"].map(String::from));
        for p in &platforms {
            let mut variants: Vec<Option<String>> = vec![None, Some("12".into())];
            if let Some((_, PlatformEntry::Variants(vs))) = c.platform_for(p) {
                variants.extend(vs.keys().cloned().map(Some));
            }
            for v in &variants {
                let Ok(sel) = m.select(key, p, v.as_deref()) else {
                    continue;
                };
                assert_eq!(&sel.component, key);
                let rel = &sel.archive.relative_path;
                assert!(!rel.is_empty() && !rel.starts_with('/'), "{rel:?}");
                assert!(!rel.split('/').any(|c| c == ".."), "{rel:?} climbs");
                let sha = &sel.archive.sha256;
                assert!(
                    sha.len() == 64
                        && sha
                            .bytes()
                            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
                    "sha256 {sha:?}"
                );
            }
        }
    }
}
