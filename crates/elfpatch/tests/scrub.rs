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
