//! `rewriters`: the pkg-config and `nvcc.profile` rewriters on any text.
//!
//! Input: one selector byte (even: pkg-config, odd: `nvcc.profile`), then
//! the text (lossily UTF-8). Both rewriters
//!
//! - never panic;
//! - keep the number of lines and every line they do not own as it was;
//! - are a fixpoint: rewriting their own output changes nothing more.

use redist::fuzzing::{rewrite_pkg_config, rewrite_profile, ProfileDirs};

const CUDAROOT: &str = "/nix/store/x-dev";
const LIBDIR: &str = "/nix/store/x-lib/lib";
const INCLUDEDIR: &str = "/nix/store/x-include/include";

fn dirs() -> ProfileDirs {
    ProfileDirs {
        includes: vec!["$(_HERE_)/../include".into(), "/c/include".into()],
        cccl: vec!["/cccl/include/cccl".into()],
        libs: vec!["/cudart/lib".into(), "/cudart/static/lib".into()],
        stubs: vec!["/cudart/stubs/lib/stubs".into()],
        nvvm: Some("/nvvm/out/nvvm".into()),
    }
}

fn lines(s: &str) -> Vec<&str> {
    s.split_inclusive('\n').collect()
}

/// The property; panics with what broke.
pub fn check(data: &[u8]) {
    let Some((&selector, text)) = data.split_first() else {
        return;
    };
    let text = String::from_utf8_lossy(text);
    if selector % 2 == 0 {
        pkg_config(&text);
    } else {
        profile(&text);
    }
}

fn pkg_config(text: &str) {
    let rewrite = |t: &str| rewrite_pkg_config(t, CUDAROOT, LIBDIR, INCLUDEDIR);
    let Some(new) = rewrite(text) else { return };
    let (old_lines, new_lines) = (lines(text), lines(&new));
    assert_eq!(old_lines.len(), new_lines.len(), "line count");
    for (o, n) in old_lines.iter().zip(&new_lines) {
        let key = o.split_once('=').map(|(k, _)| k.trim());
        match key {
            Some("cudaroot") => assert!(n.starts_with(&format!("cudaroot={CUDAROOT}")), "{n:?}"),
            Some("libdir") => assert!(n.starts_with(&format!("libdir={LIBDIR}")), "{n:?}"),
            Some("includedir") => {
                assert!(n.starts_with(&format!("includedir={INCLUDEDIR}")), "{n:?}")
            }
            _ => assert_eq!(o, n, "a line that is not one of the three changed"),
        }
    }
    assert_eq!(rewrite(&new), None, "a second rewrite changed {new:?}");
}

fn profile(text: &str) {
    let d = dirs();
    let Ok(Some(new)) = rewrite_profile(text, &d) else {
        return;
    };
    let (old_lines, new_lines) = (lines(text), lines(&new));
    assert_eq!(old_lines.len(), new_lines.len(), "line count");
    for (o, n) in old_lines.iter().zip(&new_lines) {
        if !o.contains("$(TOP)") {
            assert_eq!(o, n, "a line without $(TOP) changed");
        }
    }
    if let Ok(Some(again)) = rewrite_profile(&new, &d) {
        panic!("a second rewrite changed\n{new}\ninto\n{again}");
    }
}
