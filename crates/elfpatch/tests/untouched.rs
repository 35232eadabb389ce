//! What an edit must leave alone (the design's invariants that no other
//! test checks by themselves): `DT_INIT`/`DT_FINI` and the init and fini
//! arrays, bytes after the last section, and `PT_GNU_PROPERTY`, which must
//! follow its note when the whole contents move.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use elfpatch::{patch_file, Edits, RunpathEdit};
use goblin::elf::Elf;

const PT_GNU_PROPERTY: u32 = 0x6474_e553;

fn runpath(d: &Dir) -> String {
    format!(
        "/nonexistent/a/directory/name/far/too/long/to/fit/where/the/old/one/was:{}",
        d.path("lib").display()
    )
}

/// Edits that need more program headers than an `early_rodata_lib` has
/// room for: the library's contents move up a page.
fn shifting(d: &Dir) -> Edits {
    Edits {
        runpath: RunpathEdit::Set(runpath(d)),
        soname: Some("libgreet-renamed-with-a-longer-soname.so.1".into()),
        add_needed: vec!["libm.so.6".into()],
        ..Default::default()
    }
}

/// The dynamic entries that say what runs at load and exit.
fn init_and_fini(file: &Path) -> Vec<(u64, u64)> {
    const KEEP: [u64; 6] = [12, 13, 25, 26, 27, 28]; // INIT, FINI, INIT_ARRAY, FINI_ARRAY and their sizes
    goblin_dynamic(file)
        .into_iter()
        .filter(|(tag, _)| KEEP.contains(tag))
        .collect()
}

#[test]
fn init_and_fini_entries_stay_and_still_run() {
    let d = Dir::new();
    let src = d.path("initfini.c");
    fs::write(
        &src,
        r#"#include <stdio.h>
void lib_init(void) { puts("DT_INIT"); }
void lib_fini(void) { puts("DT_FINI"); }
__attribute__((constructor)) static void ctor(void) { puts("init_array"); }
__attribute__((destructor)) static void dtor(void) { puts("fini_array"); }
const char *greet(void) { return "hello"; }
"#,
    )
    .unwrap();
    let lib = d.cc(
        "lib/libgreet.so",
        &[
            "-shared",
            "-fPIC",
            src.to_str().unwrap(),
            "-Wl,-soname,libgreet.so",
            "-Wl,-init,lib_init",
            "-Wl,-fini,lib_fini",
        ],
    );
    let exe = d.main_exe("bin/main", &[]);
    let before = init_and_fini(&lib);
    assert_eq!(
        before.len(),
        6,
        "the library has DT_INIT, DT_FINI and both arrays: {before:?}"
    );
    let printed = run(&exe, Some(&d.path("lib")));
    for what in ["DT_INIT", "init_array", "hello", "fini_array", "DT_FINI"] {
        assert!(printed.contains(what), "{printed}");
    }

    // A RUNPATH and a needed entry that do not fit: the dynamic section
    // and its strings move.
    let edits = Edits {
        runpath: RunpathEdit::Set(runpath(&d)),
        add_needed: vec!["libm.so.6".into()],
        ..Default::default()
    };
    assert!(patch_file(&lib, &edits).unwrap().changed);
    assert_eq!(init_and_fini(&lib), before);
    // The program loads it and everything runs, in the same order.
    assert_eq!(run(&exe, Some(&d.path("lib"))), printed);
    assert_layout_invariants(&lib, 4096);
}

/// Appends 4 KiB after everything the linker wrote; returns them and
/// where they start.
fn append_trailer(file: &Path) -> (usize, Vec<u8>) {
    let mut bytes = fs::read(file).unwrap();
    let at = bytes.len();
    let trailer: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    bytes.extend_from_slice(&trailer);
    fs::write(file, &bytes).unwrap();
    (at, trailer)
}

#[test]
fn bytes_after_the_last_section_survive() {
    let d = Dir::new();
    // In place: the trailer keeps its offset.
    let lib = d.greet_lib("lib/libgreet.so", &[]);
    let (at, trailer) = append_trailer(&lib);
    let edits = Edits {
        runpath: RunpathEdit::Set(runpath(&d)),
        ..Default::default()
    };
    assert!(patch_file(&lib, &edits).unwrap().changed);
    let after = fs::read(&lib).unwrap();
    assert_eq!(&after[at..at + trailer.len()], &trailer[..]);
    d.assert_dlopens(&lib);

    // Shifted by a page (the program header table cannot grow in place):
    // the trailer moves with everything else.
    let lib = d.early_rodata_lib("shifted/libgreet.so", &[]);
    let old_first = loads(&lib)[0].0;
    let (at, trailer) = append_trailer(&lib);
    assert!(patch_file(&lib, &shifting(&d)).unwrap().changed);
    // The original segments keep their order and addresses, one page up.
    let shift = loads(&lib)[0].0 - old_first;
    let after = fs::read(&lib).unwrap();
    assert_eq!(shift, 4096, "the contents moved a page");
    let moved = at + shift as usize;
    assert_eq!(&after[moved..moved + trailer.len()], &trailer[..]);
    d.assert_dlopens(&lib);
}

/// `PT_GNU_PROPERTY`'s (offset, address, size), and the bytes it covers.
fn gnu_property(file: &Path) -> ((u64, u64, u64), Vec<u8>) {
    let bytes = fs::read(file).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    let p = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == PT_GNU_PROPERTY)
        .unwrap_or_else(|| panic!("{} has no PT_GNU_PROPERTY", file.display()));
    let range = p.p_offset as usize..(p.p_offset + p.p_filesz) as usize;
    ((p.p_offset, p.p_vaddr, p.p_filesz), bytes[range].to_vec())
}

#[test]
fn gnu_property_follows_its_note_when_the_contents_shift() {
    let d = Dir::new();
    // IBT and SHSTK marked, so the linker writes .note.gnu.property and
    // PT_GNU_PROPERTY; the table cannot grow in place.
    let lib = d.early_rodata_lib("lib/libgreet.so", &["-Wl,-z,ibt", "-Wl,-z,shstk"]);
    let ((offset, vaddr, size), note) = gnu_property(&lib);
    let properties = readelf(&["-n"], &lib);
    assert!(properties.contains("IBT, SHSTK"), "{properties}");
    assert!(patch_file(&lib, &shifting(&d)).unwrap().changed);
    let ((new_offset, new_vaddr, new_size), new_note) = gnu_property(&lib);
    assert_eq!(new_offset, offset + 4096, "moved with the contents");
    assert_eq!(
        (new_vaddr, new_size),
        (vaddr, size),
        "same address and size"
    );
    assert_eq!(new_note, note, "it covers the same note");
    assert!(readelf(&["-n"], &lib).contains("IBT, SHSTK"));
    assert_layout_invariants(&lib, 4096);
    d.assert_dlopens(&lib);
}
