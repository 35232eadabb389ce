//! `location`: source URL and path parsing, and joining a manifest's
//! `relative_path` to the manifest's location.
//!
//! Input: the manifest location, a NUL byte, the relative path. For any
//! location, `Location::parse` never panics, keeps an `http(s)://` URL as
//! written, and its parent is a prefix of it. For any relative path the
//! manifest parser accepts, the archive's location is below the
//! manifest's directory.

use redist::{Location, Manifest};

/// The property; panics with what broke.
pub fn check(data: &[u8]) {
    let (base, rel) = match data.iter().position(|&b| b == 0) {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (data, &b""[..]),
    };
    let base = String::from_utf8_lossy(base);
    let rel = String::from_utf8_lossy(rel);
    let loc = Location::parse(&base);
    let dir = loc.parent();
    match (&loc, &dir) {
        (Location::Url(u), Location::Url(d)) => {
            assert_eq!(u, &*base, "a URL is kept as written");
            assert!(d.ends_with('/'), "{d:?} is not a directory");
            assert!(
                format!("{u}/").starts_with(d.as_str()),
                "{d:?} is not a prefix of {u:?}"
            );
        }
        (Location::Path(p), Location::Path(d)) => {
            assert!(
                p.starts_with(d),
                "{} not below {}",
                p.display(),
                d.display()
            );
        }
        _ => panic!("{loc:?} and its parent {dir:?} are of different kinds"),
    }
    if !accepted(&rel) {
        return;
    }
    match (&dir, dir.join(&rel)) {
        (Location::Url(d), Location::Url(a)) => {
            assert!(a.starts_with(d.as_str()), "{a:?} not below {d:?}");
        }
        (Location::Path(d), Location::Path(a)) => {
            assert!(
                a.starts_with(d),
                "{} not below {}",
                a.display(),
                d.display()
            );
            let climbs = a
                .strip_prefix(d)
                .unwrap()
                .components()
                .any(|c| c == std::path::Component::ParentDir);
            assert!(!climbs, "{} climbs out of {}", a.display(), d.display());
        }
        (d, a) => panic!("{d:?} joined to {a:?} changed kind"),
    }
}

/// Whether the manifest parser takes `rel` as an archive's path.
fn accepted(rel: &str) -> bool {
    let quoted: String = rel
        .chars()
        .flat_map(|c| match c {
            '"' | '\\' => vec!['\\', c],
            c if (c as u32) < 0x20 => format!("\\u{:04x}", c as u32).chars().collect(),
            c => vec![c],
        })
        .collect();
    let json = format!(
        r#"{{"c": {{"version": "1", "linux-x86_64": {{"relative_path": "{quoted}", "sha256": "{}", "size": 1}}}}}}"#,
        "0".repeat(64)
    );
    match Manifest::parse(&json, "fuzz") {
        Ok(_) => true,
        Err(e) => {
            let why = format!("{e:?}");
            assert!(
                why.contains("relative_path"),
                "the probe manifest was refused for another reason: {why}"
            );
            false
        }
    }
}
