//! The NixOS resolution cache (`Edits::resolution_cache`, patchelf 0.19's
//! `--build-resolution-cache`): a `.note.nixos.ldcache` note saying where
//! the run path finds each needed library, judged by the loader (the file
//! still runs), `readelf`, `eu-elflint` and Debian's patchelf; removed and
//! cleared when later edits make it stale.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use common::*;
use elfpatch::ldcache::{Skipped, NT_NIXOS_LD_CACHE, SECTION_NAME};
use elfpatch::{patch_file, Edits, RunpathEdit};

fn cache() -> Edits {
    Edits {
        resolution_cache: true,
        ..Default::default()
    }
}

/// The descriptors of every resolution-cache note a `PT_NOTE` names, and
/// whether a section of that name exists.
fn notes(file: &Path) -> (Vec<Vec<u8>>, bool) {
    let bytes = std::fs::read(file).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let mut found = Vec::new();
    for n in elf.iter_note_headers(&bytes).into_iter().flatten() {
        let n = n.unwrap();
        if n.n_type == NT_NIXOS_LD_CACHE && n.name == "NixOS" {
            found.push(n.desc.to_vec());
        }
    }
    let section = elf
        .section_headers
        .iter()
        .any(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(SECTION_NAME));
    (found, section)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `eu-elflint` without its remark that it does not know the note type
/// (it says the same of patchelf's notes).
fn lint(file: &Path) -> BTreeSet<String> {
    elflint(file)
        .into_iter()
        .filter(|l| !l.contains("unknown object file note type"))
        .collect()
}

/// `eu-elflint` finds nothing in `patched` it did not find in `original`
/// (the note type aside).
fn assert_lint_clean(original: &Path, patched: &Path) {
    let new: Vec<_> = lint(patched)
        .difference(&elflint(original))
        .cloned()
        .collect();
    assert!(new.is_empty(), "eu-elflint: {new:#?}");
}

fn assert_sound(original: &Path, patched: &Path) {
    assert_lint_clean(original, patched);
    assert_layout_invariants(patched, 0x1000);
    // Debian's patchelf reads what we wrote.
    assert_eq!(
        patchelf_print("needed", patched),
        readelf_needed(patched).join("\n")
    );
}

struct Fixture {
    d: Dir,
    exe: PathBuf,
    original: PathBuf,
    hw: PathBuf,
}

/// `bin/main` needing `libgreet.so` (in `lib/`) and libc, with RUNPATH
/// `$ORIGIN/../nowhere:<lib>:<hw>`, where `<hw>` has a `glibc-hwcaps`.
fn fixture() -> Fixture {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let hw = d.path("hw");
    std::fs::create_dir_all(hw.join("glibc-hwcaps")).unwrap();
    let rpath = format!(
        "-Wl,-rpath,$ORIGIN/../nowhere:{}:{}",
        d.path("lib").display(),
        hw.display()
    );
    let exe = d.main_exe("bin/main", &[rpath.as_str(), "-Wl,--enable-new-dtags"]);
    let original = d.copy(&exe, "original");
    Fixture {
        d,
        exe,
        original,
        hw,
    }
}

fn expected_desc(f: &Fixture) -> String {
    let lib = f.d.path("lib/libgreet.so");
    let hw = f.hw.display();
    format!(
        "libc.so.6\0?$ORIGIN/../nowhere:?{hw}\0\
         libgreet.so\0?$ORIGIN/../nowhere:={}:?{hw}\0\0",
        lib.display()
    )
}

#[test]
fn the_note_says_where_the_run_path_finds_each_library() {
    let f = fixture();
    let before = run(&f.exe, None);
    let out = patch_file(&f.exe, &cache()).unwrap();
    assert!(out.changed);
    assert_eq!(out.cache_skipped, None);
    let (found, section) = notes(&f.exe);
    assert_eq!(found.len(), 1, "one PT_NOTE names the note");
    assert!(section, "a {SECTION_NAME} section describes it");
    assert_eq!(text(&found[0]), expected_desc(&f));
    // readelf finds it through the section and the segment alike.
    let n = readelf(&["-n"], &f.exe);
    assert!(
        n.contains(".note.nixos.ldcache") && n.contains("NixOS"),
        "{n}"
    );
    assert_eq!(run(&f.exe, None), before);
    assert_sound(&f.original, &f.exe);
    // The table grew: what moved out from behind it (`.interp` among it)
    // left no copy behind.
    let loader = readelf_interp(&f.exe).unwrap();
    let data = std::fs::read(&f.exe).unwrap();
    let copies = data
        .windows(loader.len())
        .filter(|w| *w == loader.as_bytes())
        .count();
    assert_eq!(copies, 1, "{loader} is in the file {copies} times");
}

#[test]
fn building_it_again_changes_nothing() {
    let f = fixture();
    patch_file(&f.exe, &cache()).unwrap();
    let (bytes, mtime) = snapshot(&f.exe);
    let out = patch_file(&f.exe, &cache()).unwrap();
    assert!(!out.changed);
    assert_eq!(snapshot(&f.exe), (bytes, mtime));
}

#[test]
fn edits_that_change_the_needs_or_the_path_remove_it_and_clear_its_bytes() {
    let f = fixture();
    patch_file(&f.exe, &cache()).unwrap();
    let lib = f.d.path("lib").display().to_string();
    let hw = f.hw.display().to_string();
    let cases: Vec<(&str, Edits)> = vec![
        (
            "a different run path",
            Edits {
                runpath: RunpathEdit::Set(format!("{lib}:{hw}")),
                ..Default::default()
            },
        ),
        (
            "a longer run path (the tail is rebuilt)",
            Edits {
                runpath: RunpathEdit::Set(format!("/some/much/longer/directory/list:{lib}:{hw}")),
                ..Default::default()
            },
        ),
        (
            "no run path",
            Edits {
                runpath: RunpathEdit::Remove,
                ..Default::default()
            },
        ),
        (
            "a needed library added",
            Edits {
                add_needed: vec!["libm.so.6".into()],
                ..Default::default()
            },
        ),
        (
            "a needed library renamed",
            Edits {
                replace_needed: vec![("libgreet.so".into(), "libgreet.so".into())],
                remove_needed: vec!["libnothing.so".into()],
                runpath: RunpathEdit::Add(lib.clone()),
                ..Default::default()
            },
        ),
    ];
    let mut removed = 0;
    for (what, edits) in cases {
        let copy = f.d.copy(&f.exe, &format!("case/{removed}"));
        let out = patch_file(&copy, &edits).unwrap();
        let (found, section) = notes(&copy);
        let untouched = what == "a needed library renamed";
        if untouched {
            // Nothing about the needs or the path changed: the note stays.
            assert!(!out.changed, "{what}");
            assert_eq!(found.len(), 1, "{what}");
            continue;
        }
        assert!(
            found.is_empty() && !section,
            "{what}: the note is still there"
        );
        let data = std::fs::read(&copy).unwrap();
        let resolved = format!("={}", f.d.path("lib/libgreet.so").display());
        assert!(
            !data
                .windows(resolved.len())
                .any(|w| w == resolved.as_bytes()),
            "{what}: the old descriptor is still in the file"
        );
        let libs = f.d.path("lib");
        assert_eq!(run(&copy, Some(&libs)), run(&f.original, None), "{what}");
        assert_sound(&f.original, &copy);
        removed += 1;
    }
    assert_eq!(removed, 4);
}

#[test]
fn an_edit_and_a_build_together_replace_it() {
    let f = fixture();
    patch_file(&f.exe, &cache()).unwrap();
    let lib = f.d.path("lib").display().to_string();
    let edits = Edits {
        runpath: RunpathEdit::Set(lib.clone()),
        resolution_cache: true,
        ..Default::default()
    };
    patch_file(&f.exe, &edits).unwrap();
    let (found, section) = notes(&f.exe);
    assert!(section);
    assert_eq!(
        found.iter().map(|d| text(d)).collect::<Vec<_>>(),
        [format!(
            "libgreet.so\0={}\0\0",
            f.d.path("lib/libgreet.so").display()
        )]
    );
    let old_hint = format!("?{}", f.hw.display());
    let data = std::fs::read(&f.exe).unwrap();
    assert!(!data
        .windows(old_hint.len())
        .any(|w| w == old_hint.as_bytes()));
    run(&f.exe, None);
    assert_sound(&f.original, &f.exe);
}

#[test]
fn a_note_that_went_stale_is_an_error_and_the_file_stays_as_it_was() {
    let f = fixture();
    patch_file(&f.exe, &cache()).unwrap();
    // A libc.so.6 now sits in a directory the path lists.
    std::fs::write(f.d.path("lib/libc.so.6"), "").unwrap();
    let before = snapshot(&f.exe);
    let err = message(&patch_file(&f.exe, &cache()).unwrap_err());
    assert!(
        err.contains("already present") && err.contains("main"),
        "{err}"
    );
    assert_eq!(snapshot(&f.exe), before);
}

#[test]
fn nothing_to_record_is_reported_and_changes_nothing() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let no_path = d.main_exe("bin/no-path", &[]);
    let empty_dir = format!("-Wl,-rpath,{}", d.path("empty").display());
    let nothing_found = d.main_exe("bin/nothing-found", &[empty_dir.as_str()]);
    let fully_static = d.cc(
        "bin/static",
        &[
            "-static",
            testdata("nolibc.c").to_str().unwrap(),
            "-nostdlib",
        ],
    );
    for (file, why) in [
        (no_path, Skipped::NothingToResolve),
        (nothing_found, Skipped::NothingResolved),
        (fully_static, Skipped::NoDynamic),
    ] {
        let before = snapshot(&file);
        let out = patch_file(&file, &cache()).unwrap();
        assert_eq!(out.cache_skipped, Some(why), "{}", file.display());
        assert!(!out.changed);
        assert_eq!(snapshot(&file), before);
    }
}

#[test]
fn force_rpath_is_refused() {
    let f = fixture();
    let before = snapshot(&f.exe);
    let edits = Edits {
        force_rpath: true,
        resolution_cache: true,
        ..Default::default()
    };
    let err = message(&patch_file(&f.exe, &edits).unwrap_err());
    assert!(err.contains("--force-rpath"), "{err}");
    assert_eq!(snapshot(&f.exe), before);
}

#[test]
fn shared_libraries_and_elf32_files_get_one_too() {
    let d = Dir::new();
    d.greet_lib("dep/libgreet.so", &[]);
    let rp = format!("-Wl,-rpath,{}", d.path("dep").display());
    let lgreet = format!("-L{}", d.path("dep").display());
    let src = testdata("main.c");
    let lib = d.cc(
        "lib/libuser.so",
        &[
            "-shared",
            "-fPIC",
            src.to_str().unwrap(),
            &lgreet,
            "-lgreet",
            &rp,
        ],
    );
    let original = d.copy(&lib, "original.so");
    patch_file(&lib, &cache()).unwrap();
    let (found, section) = notes(&lib);
    assert!(section);
    assert_eq!(
        found.iter().map(|d| text(d)).collect::<Vec<_>>(),
        [format!(
            "libgreet.so\0={}/libgreet.so\0\0",
            d.path("dep").display()
        )]
    );
    d.assert_dlopens(&lib);
    assert_sound(&original, &lib);

    // ELF32: a library whose path holds itself (it needs nothing but a
    // name it provides).
    let dir32 = d.path("lib32");
    let rp32 = format!("-rpath={}", dir32.display());
    let lib32 = elf32_library(&d, "lib32/libnolibc.so", &[&rp32, "--no-as-needed"]);
    let needy = d.copy(&lib32, "lib32/libneedy.so");
    patch_file(
        &needy,
        &Edits {
            add_needed: vec!["libnolibc.so".into()],
            ..Default::default()
        },
    )
    .unwrap();
    let copy = d.copy(&needy, "lib32/before.so");
    patch_file(&needy, &cache()).unwrap();
    let (found, section) = notes(&needy);
    assert!(section);
    assert_eq!(
        found.iter().map(|d| text(d)).collect::<Vec<_>>(),
        [format!(
            "libnolibc.so\0={}/libnolibc.so\0\0",
            dir32.display()
        )]
    );
    assert_lint_clean(&copy, &needy);
    // And a later edit takes it away again.
    patch_file(
        &needy,
        &Edits {
            runpath: RunpathEdit::Remove,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(notes(&needy), (Vec::new(), false));
    assert_lint_clean(&copy, &needy);
}
