//! `patch_file_private`: a file other names share (hard links into a store
//! of unpacked trees, symlinks into it) is edited through a private copy;
//! the other names keep their bytes, and a no-op edit copies nothing.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::*;
use elfpatch::{patch_file_private, Edits, RunpathEdit};

fn set_runpath(r: &str) -> Edits {
    Edits {
        runpath: RunpathEdit::Set(r.into()),
        ..Default::default()
    }
}

#[test]
fn a_hard_linked_file_gets_a_private_copy_and_the_other_name_keeps_its_bytes() {
    let d = Dir::new();
    let stored = d.greet_lib("store/libgreet.so", &["-Wl,-rpath,/old"]);
    // The store's copy is read-only, as the store keeps it.
    std::fs::set_permissions(&stored, std::fs::Permissions::from_mode(0o555)).unwrap();
    std::fs::create_dir_all(d.path("prefix")).unwrap();
    let linked = d.path("prefix/libgreet.so");
    std::fs::hard_link(&stored, &linked).unwrap();
    let before = std::fs::read(&stored).unwrap();

    // The same value: nothing is written, the link stays a link.
    let same = patch_file_private(&linked, &set_runpath("/old")).unwrap();
    assert!(!same.changed);
    assert_eq!(
        std::fs::metadata(&linked).unwrap().ino(),
        std::fs::metadata(&stored).unwrap().ino()
    );

    let out = patch_file_private(&linked, &set_runpath("$ORIGIN/../lib")).unwrap();
    assert!(out.changed);
    let (s, l) = (
        std::fs::metadata(&stored).unwrap(),
        std::fs::metadata(&linked).unwrap(),
    );
    assert_ne!(
        s.ino(),
        l.ino(),
        "the prefix's name is a file of its own now"
    );
    assert_eq!((s.nlink(), l.nlink()), (1, 1));
    assert_eq!(
        std::fs::read(&stored).unwrap(),
        before,
        "the store's bytes changed"
    );
    assert_eq!(readelf_runpath(&stored).as_deref(), Some("/old"));
    assert_eq!(readelf_runpath(&linked).as_deref(), Some("$ORIGIN/../lib"));
    // The private copy keeps the mode, writable by its owner.
    assert_eq!(l.permissions().mode() & 0o777, 0o755);
    d.assert_dlopens(&linked);
    // Nothing left beside it.
    let names: Vec<_> = std::fs::read_dir(d.path("prefix"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, ["libgreet.so"]);
}

#[test]
fn a_symlink_is_replaced_by_a_patched_copy_of_its_target() {
    let d = Dir::new();
    let stored = d.greet_lib("store/libgreet.so", &["-Wl,-rpath,/old"]);
    std::fs::create_dir_all(d.path("prefix")).unwrap();
    let linked = d.path("prefix/libgreet.so");
    std::os::unix::fs::symlink(&stored, &linked).unwrap();
    let before = std::fs::read(&stored).unwrap();
    assert!(
        patch_file_private(&linked, &set_runpath("/new"))
            .unwrap()
            .changed
    );
    assert!(std::fs::symlink_metadata(&linked).unwrap().is_file());
    assert_eq!(std::fs::read(&stored).unwrap(), before);
    assert_eq!(readelf_runpath(&linked).as_deref(), Some("/new"));
}

#[test]
fn a_file_of_its_own_is_patched_in_place() {
    let d = Dir::new();
    let lib = d.greet_lib("libgreet.so", &["-Wl,-rpath,/old"]);
    let ino = std::fs::metadata(&lib).unwrap().ino();
    assert!(
        patch_file_private(&lib, &set_runpath("/new"))
            .unwrap()
            .changed
    );
    assert_eq!(std::fs::metadata(&lib).unwrap().ino(), ino);
    assert_eq!(readelf_runpath(&lib).as_deref(), Some("/new"));
}
