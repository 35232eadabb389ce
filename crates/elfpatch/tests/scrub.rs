//! Edits leave no stale bytes: Nix finds a store path's references by
//! scanning every byte of an output for store hashes, so an old
//! `/nix/store/<hash>-…` left behind in an abandoned string, `.interp` or
//! `.dynstr` would become a false runtime dependency.

mod common;

use std::path::Path;

use common::*;
use elfpatch::{patch_file, Edits, RunpathEdit};

const HASH: &str = "0123456789abcdfghijklmnpqrsvwxyz";

fn occurrences(file: &Path, needle: &str) -> usize {
    let data = std::fs::read(file).unwrap();
    data.windows(needle.len())
        .filter(|w| *w == needle.as_bytes())
        .count()
}

/// A program whose RUNPATH names a fake store path before the real one.
fn exe_with_store_runpath(d: &Dir, name: &str, flags: &[&str]) -> (std::path::PathBuf, String) {
    d.greet_lib("lib/libgreet.so", &[]);
    let store = format!("/nix/store/{HASH}-fake-1.0/lib");
    let rpath = format!("-Wl,-rpath,{store}:{}", d.path("lib").display());
    let mut all = vec![rpath.as_str()];
    all.extend_from_slice(flags);
    let exe = d.main_exe(name, &all);
    assert_eq!(
        occurrences(&exe, HASH),
        1,
        "the fixture holds the store path once"
    );
    (exe, store)
}

#[test]
fn a_longer_runpath_leaves_no_old_path_behind() {
    let d = Dir::new();
    let (exe, _) = exe_with_store_runpath(&d, "bin/main", &["-Wl,--enable-new-dtags"]);
    let expected = run(&exe, None);
    let rp = format!(
        "/a/much/longer/list/of/directories/than/before/so/that/dynstr/moves:{}",
        d.path("lib").display()
    );
    let edits = Edits {
        runpath: RunpathEdit::Set(rp.clone()),
        ..Default::default()
    };
    assert!(patch_file(&exe, &edits).unwrap().changed);
    assert_eq!(readelf_runpath(&exe), Some(rp));
    assert_eq!(occurrences(&exe, HASH), 0, "old RUNPATH still in the file");
    assert_eq!(run(&exe, None), expected);
}

#[test]
fn a_shorter_runpath_in_place_leaves_no_old_path_behind() {
    let d = Dir::new();
    let (exe, _) = exe_with_store_runpath(&d, "bin/main", &["-Wl,--enable-new-dtags"]);
    let expected = run(&exe, None);
    let rp = d.path("lib").display().to_string();
    let edits = Edits {
        runpath: RunpathEdit::Set(rp.clone()),
        ..Default::default()
    };
    let out = patch_file(&exe, &edits).unwrap();
    assert!(out.changed);
    assert_eq!(readelf_runpath(&exe), Some(rp));
    assert_eq!(occurrences(&exe, HASH), 0);
    assert_eq!(run(&exe, None), expected);
}

#[test]
fn a_moved_interpreter_leaves_no_old_path_behind() {
    let d = Dir::new();
    let (exe, _) = exe_with_store_runpath(&d, "bin/main", &[]);
    let expected = run(&exe, None);
    let loader = readelf_interp(&exe).unwrap();
    // A longer interpreter path (a link to the real loader) must move.
    let long_dir = d.path(&format!("{}/{}", "l".repeat(80), "d".repeat(80)));
    std::fs::create_dir_all(&long_dir).unwrap();
    let link = long_dir.join("ld.so");
    std::os::unix::fs::symlink(&loader, &link).unwrap();
    let before = occurrences(&exe, &loader);
    assert!(before >= 1);
    let edits = Edits {
        interpreter: Some(link.display().to_string()),
        runpath: RunpathEdit::Set(d.path("lib").display().to_string()),
        ..Default::default()
    };
    assert!(patch_file(&exe, &edits).unwrap().changed);
    assert_eq!(readelf_interp(&exe), Some(link.display().to_string()));
    assert_eq!(
        occurrences(&exe, &loader),
        before - 1,
        "old .interp cleared"
    );
    assert_eq!(occurrences(&exe, HASH), 0);
    assert_eq!(run(&exe, None), expected);
}

#[test]
fn strings_others_still_use_are_kept() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let exe = d.main_exe(
        "bin/main",
        &[&format!("-Wl,-rpath,{}", d.path("lib").display())],
    );
    let expected = run(&exe, None);
    let needed = readelf_needed(&exe);
    // Move .dynstr with a long RUNPATH: every needed name and symbol still
    // resolves, so the loader runs the program.
    let rp = format!("{}:{}", "/x".repeat(200), d.path("lib").display());
    patch_file(
        &exe,
        &Edits {
            runpath: RunpathEdit::Set(rp),
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(readelf_needed(&exe), needed);
    assert_eq!(run(&exe, None), expected);
    assert_no_new_lint(&d.copy(&exe, "x"), &exe);
}

mod sequences {
    //! Random sequences of string edits with store-path-like values: after
    //! every step, no value the file stopped using is left anywhere in it.

    use super::*;
    use elfpatch::{patch_bytes, read_bytes};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};

    #[derive(Debug, Clone)]
    enum Step {
        Runpath(String),
        Soname(String),
        Interpreter(String),
        Needed(String),
    }

    /// A value holding a unique store hash (the part Nix scans for).
    fn value(kind: &'static str) -> impl Strategy<Value = String> {
        ("[a-z0-9]{32}", 0usize..80)
            .prop_map(move |(h, pad)| format!("/nix/store/{h}-{kind}{}/lib", "x".repeat(pad)))
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            value("rpath").prop_map(Step::Runpath),
            value("soname").prop_map(|v| Step::Soname(v.replace('/', "_"))),
            value("interp").prop_map(Step::Interpreter),
            value("needed").prop_map(|v| Step::Needed(v.replace('/', "_"))),
        ]
    }

    /// The 32-character hash after `store/` (or `store_` in names).
    fn hash_of(v: &str) -> &str {
        let start = v.find("store").map_or(0, |i| i + 6).min(v.len());
        &v[start..(start + 32).min(v.len())]
    }

    #[test]
    fn abandoned_values_never_survive() {
        // The program starts with a store path in its RUNPATH, in the
        // linker's own .dynstr.
        let d = Dir::new();
        let (path, _) = exe_with_store_runpath(&d, "bin/main", &["-Wl,--enable-new-dtags"]);
        let exe = std::fs::read(path).unwrap();
        let first = read_bytes(&exe).unwrap().runpath.unwrap();
        let cases = std::env::var("PROPTEST_CASES")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(48);
        let mut runner = TestRunner::new(Config {
            cases,
            failure_persistence: None,
            ..Config::default()
        });
        runner
            .run(&prop::collection::vec(step(), 1..12), |steps| {
                let mut bytes = exe.clone();
                let mut needed = "libgreet.so".to_owned();
                let mut used: Vec<String> = vec![first.clone()];
                for (i, s) in steps.iter().enumerate() {
                    let edits = match s {
                        Step::Runpath(v) => Edits {
                            runpath: elfpatch::RunpathEdit::Set(v.clone()),
                            ..Default::default()
                        },
                        Step::Soname(v) => Edits {
                            soname: Some(v.clone()),
                            ..Default::default()
                        },
                        Step::Interpreter(v) => Edits {
                            interpreter: Some(v.clone()),
                            ..Default::default()
                        },
                        Step::Needed(v) => {
                            let e = Edits {
                                replace_needed: vec![(needed.clone(), v.clone())],
                                ..Default::default()
                            };
                            needed = v.clone();
                            e
                        }
                    };
                    let out = patch_bytes(&bytes, &edits);
                    prop_assert!(out.is_ok(), "step {i} {s:?}: {:?}", out.err());
                    bytes = out.unwrap();
                    let info = read_bytes(&bytes).unwrap();
                    let current: Vec<String> = [
                        info.runpath.clone(),
                        info.soname.clone(),
                        info.interpreter.clone(),
                    ]
                    .into_iter()
                    .flatten()
                    .chain(info.needed.iter().cloned())
                    .collect();
                    used.push(match s {
                        Step::Runpath(v)
                        | Step::Soname(v)
                        | Step::Interpreter(v)
                        | Step::Needed(v) => v.clone(),
                    });
                    for old in used
                        .iter()
                        .filter(|u| !current.iter().any(|c| c.contains(u.as_str())))
                    {
                        let h = hash_of(old);
                        let hits = bytes
                            .windows(h.len())
                            .filter(|w| *w == h.as_bytes())
                            .count();
                        prop_assert_eq!(hits, 0, "step {} {:?}: {} still in the file", i, s, old);
                    }
                }
                Ok(())
            })
            .unwrap();
    }
}
