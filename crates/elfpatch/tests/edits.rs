//! Edits on real executables and libraries; the dynamic loader is the judge.
//!
//! Every test compiles its fixtures from `testdata/elf/` with `cc`, patches
//! them through the public API, and then checks the result with the loader
//! (the program runs, the library `dlopen`s), with `readelf` and `patchelf`
//! (the new value reads back), with `eu-elflint` (nothing new to complain
//! about) and with `strip` (a stripped copy still loads).

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use common::*;
use elfpatch::{patch_file, read, Edits, RunpathEdit};

fn set_runpath(path: &str) -> Edits {
    Edits {
        runpath: RunpathEdit::Set(path.into()),
        ..Default::default()
    }
}

/// A long RUNPATH that ends with `dir`, so the program finds its library.
fn long_runpath(dir: &Path) -> String {
    format!(
        "/nonexistent/a/very/long/directory/name/that/does/not/fit/in/place:/another/one/for/good/measure:{}",
        dir.display()
    )
}

/// Executable flavours: (name, cc flags, strip section headers afterwards).
const EXE_FLAVOURS: &[(&str, &[&str], bool)] = &[
    ("pie", &[], false),
    ("no-pie", &["-no-pie"], false),
    ("max-page-size-64k", &["-Wl,-z,max-page-size=65536"], false),
    ("separate-code", &["-Wl,-z,separate-code"], false),
    ("noseparate-code", &["-Wl,-z,noseparate-code"], false),
    (
        "no-pie-noseparate-code",
        &["-no-pie", "-Wl,-z,noseparate-code"],
        false,
    ),
    ("sysv-hash", &["-Wl,--hash-style=sysv"], false),
    // .note.ABI-tag (and the __abi_tag symbol in it) moves for the new header.
    ("no-build-id", &["-Wl,--build-id=none"], false),
    ("pie-without-section-headers", &[], true),
    ("no-pie-without-section-headers", &["-no-pie"], true),
];

/// Library flavours: (name, cc flags, strip section headers afterwards).
const LIB_FLAVOURS: &[(&str, &[&str], bool)] = &[
    ("plain", &[], false),
    (
        "runpath",
        &["-Wl,-rpath,/opt/old/lib,--enable-new-dtags"],
        false,
    ),
    (
        "rpath",
        &["-Wl,-rpath,/opt/old/lib,--disable-new-dtags"],
        false,
    ),
    ("max-page-size-64k", &["-Wl,-z,max-page-size=65536"], false),
    ("separate-code", &["-Wl,-z,separate-code"], false),
    ("noseparate-code", &["-Wl,-z,noseparate-code"], false),
    ("sysv-hash", &["-Wl,--hash-style=sysv"], false),
    ("without-section-headers", &[], true),
];

/// Builds `lib/libgreet.so` and `bin/<name>` in `d`; returns the executable
/// and what it prints.
fn exe_fixture(d: &Dir, name: &str, flags: &[&str], sstrip: bool) -> (PathBuf, String) {
    if !d.path("lib/libgreet.so").exists() {
        d.greet_lib("lib/libgreet.so", &[]);
    }
    let exe = d.main_exe(&format!("bin/{name}"), flags);
    if sstrip {
        drop_section_headers(&exe);
    }
    let out = run(&exe, Some(&d.path("lib")));
    (exe, out)
}

/// The checks every patched executable must pass.
fn assert_exe_healthy(d: &Dir, orig: &Path, exe: &Path, expected: &str, page: u64) {
    assert_eq!(runs(exe).as_deref(), Ok(expected), "{}", exe.display());
    assert_layout_invariants(exe, page);
    if interp_precedes_loads(orig) {
        assert!(
            interp_precedes_loads(exe),
            "PT_INTERP must precede the PT_LOADs"
        );
    }
    assert_no_new_lint(orig, exe);
    // `strip` refuses files without section headers.
    if has_section_headers(exe) {
        let s = stripped_copy(exe, d.root());
        assert_eq!(
            runs(&s).as_deref(),
            Ok(expected),
            "stripped copy of {}",
            exe.display()
        );
    }
}

/// The checks every patched library must pass.
fn assert_lib_healthy(d: &Dir, orig: &Path, lib: &Path, page: u64) {
    d.assert_dlopens(lib);
    assert_layout_invariants(lib, page);
    assert_no_new_lint(orig, lib);
    if has_section_headers(lib) {
        let s = stripped_copy(lib, d.root());
        d.assert_dlopens(&s);
    }
}

fn page_of(flags: &[&str]) -> u64 {
    if flags.iter().any(|f| f.contains("max-page-size=65536")) {
        65536
    } else {
        4096
    }
}

#[test]
fn runpath_longer_than_old_appends_new_segment() {
    let d = Dir::new();
    for &(name, flags, sstrip) in EXE_FLAVOURS {
        let (exe, expected) = exe_fixture(&d, name, flags, sstrip);
        let orig = d.copy(&exe, &format!("orig/{name}"));
        let before = loads(&exe).len();

        let rp = long_runpath(&d.path("lib"));
        let out = patch_file(&exe, &set_runpath(&rp)).unwrap();
        assert!(out.changed, "{name}");
        assert!(out.new_len > out.old_len, "{name}");
        assert_eq!(loads(&exe).len(), before + 1, "{name}: one new PT_LOAD");

        assert_eq!(
            read(&exe).unwrap().runpath.as_deref(),
            Some(rp.as_str()),
            "{name}"
        );
        assert_eq!(
            readelf_runpath(&exe).as_deref(),
            Some(rp.as_str()),
            "{name}"
        );
        if !sstrip {
            // patchelf needs section headers.
            assert_eq!(patchelf_print("rpath", &exe), rp, "{name}");
        }
        assert_exe_healthy(&d, &orig, &exe, &expected, page_of(flags));
    }
}

#[test]
fn library_runpath_soname_and_needed_edits_keep_it_loadable() {
    let d = Dir::new();
    for &(name, flags, sstrip) in LIB_FLAVOURS {
        let lib = d.greet_lib(&format!("{name}/libgreet.so"), flags);
        if sstrip {
            drop_section_headers(&lib);
        }
        let orig = d.copy(&lib, &format!("orig/{name}.so"));
        let rp = long_runpath(&d.path("lib"));
        let soname = "libgreet-with-a-much-longer-soname-than-before.so.12.3.4";
        let edits = Edits {
            runpath: RunpathEdit::Set(rp.clone()),
            soname: Some(soname.into()),
            add_needed: vec!["libm.so.6".into()],
            ..Default::default()
        };
        assert!(patch_file(&lib, &edits).unwrap().changed, "{name}");

        let info = read(&lib).unwrap();
        assert_eq!(info.runpath.as_deref(), Some(rp.as_str()), "{name}");
        assert_eq!(info.rpath, None, "{name}: DT_RPATH becomes DT_RUNPATH");
        assert_eq!(info.soname.as_deref(), Some(soname), "{name}");
        assert_eq!(
            info.needed.first().map(String::as_str),
            Some("libm.so.6"),
            "{name}"
        );
        assert_eq!(
            readelf_runpath(&lib).as_deref(),
            Some(rp.as_str()),
            "{name}"
        );
        assert_eq!(readelf_rpath(&lib), None, "{name}");
        assert_eq!(readelf_soname(&lib).as_deref(), Some(soname), "{name}");
        assert_eq!(readelf_needed(&lib), info.needed, "{name}");
        if !sstrip {
            // patchelf needs section headers.
            assert_eq!(patchelf_print("rpath", &lib), rp, "{name}");
            assert_eq!(patchelf_print("soname", &lib), soname, "{name}");
            assert_eq!(
                patchelf_print("needed", &lib).lines().next(),
                Some("libm.so.6"),
                "{name}"
            );
        }
        assert_lib_healthy(&d, &orig, &lib, page_of(flags));
    }
}

#[test]
fn runpath_shorter_than_old_is_written_in_place() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let rp = long_runpath(&d.path("lib"));
    let flag = format!("-Wl,-rpath,{rp},--enable-new-dtags");
    let exe = d.main_exe("bin/main", &[&flag]);
    let expected = run(&exe, None);
    let orig = d.copy(&exe, "orig/main");
    let len = fs::metadata(&exe).unwrap().len();

    let short = d.path("lib").display().to_string();
    let out = patch_file(&exe, &set_runpath(&short)).unwrap();
    assert!(out.changed);
    assert_eq!(out.new_len, len, "no growth");
    assert!(
        out.bytes_written <= rp.len() as u64 + 1,
        "only the string is rewritten"
    );
    assert_eq!(readelf_runpath(&exe), Some(short.clone()));
    assert_eq!(patchelf_print("rpath", &exe), short);
    assert_eq!(loads(&exe), loads(&orig), "no layout change");
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);
}

#[test]
fn rpath_is_converted_to_runpath_unless_forced() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let libdir = d.path("lib").display().to_string();
    let flag = format!("-Wl,-rpath,{libdir},--disable-new-dtags");
    let exe = d.main_exe("bin/main", &[&flag]);
    let expected = run(&exe, None);
    let orig = d.copy(&exe, "orig/main");
    assert_eq!(readelf_rpath(&exe), Some(libdir.clone()));

    // The same value still converts the tag, like patchelf 0.19 …
    let same_orig = d.copy(&exe, "orig/same");
    let out = patch_file(&exe, &set_runpath(&libdir)).unwrap();
    assert!(out.changed);
    assert_eq!(readelf_rpath(&exe), None);
    assert_eq!(readelf_runpath(&exe), Some(libdir.clone()));
    assert!(out.bytes_written <= 8, "only the tag: {out:?}");
    assert_eq!(run(&exe, None), expected);
    // … and back with force_rpath; then the same value under the same tag
    // is no change at all.
    let forced_same = Edits {
        force_rpath: true,
        ..set_runpath(&libdir)
    };
    assert!(patch_file(&exe, &forced_same).unwrap().changed);
    assert_eq!(readelf_rpath(&exe), Some(libdir.clone()));
    assert_eq!(readelf_runpath(&exe), None);
    assert_eq!(
        std::fs::read(&exe).unwrap(),
        std::fs::read(&same_orig).unwrap()
    );
    assert!(!patch_file(&exe, &forced_same).unwrap().changed);

    // A new value converts DT_RPATH to DT_RUNPATH.
    let new = format!("/opt/x:{libdir}");
    assert!(patch_file(&exe, &set_runpath(&new)).unwrap().changed);
    assert_eq!(readelf_rpath(&exe), None);
    assert_eq!(readelf_runpath(&exe), Some(new));
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);

    // Forced: back to DT_RPATH, with a longer value.
    let rp = long_runpath(&d.path("lib"));
    let forced = Edits {
        force_rpath: true,
        ..set_runpath(&rp)
    };
    assert!(patch_file(&exe, &forced).unwrap().changed);
    assert_eq!(readelf_runpath(&exe), None);
    assert_eq!(readelf_rpath(&exe), Some(rp.clone()));
    let info = read(&exe).unwrap();
    assert_eq!(
        (info.rpath.as_deref(), info.runpath),
        (Some(rp.as_str()), None)
    );
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);

    // Forced on a file without any: a new DT_RPATH.
    let fresh = d.main_exe("bin/fresh", &[]);
    let fresh_orig = d.copy(&fresh, "orig/fresh");
    patch_file(&fresh, &forced).unwrap();
    assert_eq!(readelf_rpath(&fresh), Some(rp));
    assert_exe_healthy(&d, &fresh_orig, &fresh, &expected, 4096);
}

#[test]
fn remove_runpath_drops_both_tags() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let flag = format!("-Wl,-rpath,{},--enable-new-dtags", d.path("lib").display());
    let exe = d.main_exe("bin/main", &[&flag]);
    let expected = run(&exe, None);
    let orig = d.copy(&exe, "orig/main");
    let edits = Edits {
        runpath: RunpathEdit::Remove,
        ..Default::default()
    };
    assert!(patch_file(&exe, &edits).unwrap().changed);
    assert_eq!(readelf_runpath(&exe), None);
    assert_eq!(patchelf_print("rpath", &exe), "");
    assert!(
        runs(&exe).is_err(),
        "without RUNPATH the library is not found"
    );
    assert_eq!(run(&exe, Some(&d.path("lib"))), expected);
    assert_no_new_lint(&orig, &exe);
    assert!(
        !patch_file(&exe, &edits).unwrap().changed,
        "removing twice is a no-op"
    );
}

#[test]
fn add_runpath_appends_missing_entries() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let exe = d.main_exe("bin/main", &["-Wl,-rpath,/opt/first,--enable-new-dtags"]);
    let expected = run(&exe, Some(&d.path("lib")));
    let orig = d.copy(&exe, "orig/main");
    let libdir = d.path("lib").display().to_string();
    let edits = Edits {
        runpath: RunpathEdit::Add(format!("/opt/first:{libdir}")),
        ..Default::default()
    };
    assert!(patch_file(&exe, &edits).unwrap().changed);
    let want = format!("/opt/first:{libdir}");
    assert_eq!(readelf_runpath(&exe), Some(want.clone()));
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);
    assert!(
        !patch_file(&exe, &edits).unwrap().changed,
        "adding present entries is a no-op"
    );
    assert_eq!(readelf_runpath(&exe), Some(want));
}

#[test]
fn shrink_runpath_keeps_origin_and_directories_that_provide_needed_libraries() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    fs::create_dir_all(d.path("empty")).unwrap();
    let libdir = d.path("lib").display().to_string();
    let empty = d.path("empty").display().to_string();
    let rp = format!("/nonexistent:{empty}:$ORIGIN/../lib:{libdir}:/usr/share");
    let flag = format!("-Wl,-rpath,{rp},--enable-new-dtags");
    let exe = d.main_exe("bin/main", &[&flag]);
    let expected = run(&exe, None);
    let orig = d.copy(&exe, "orig/main");

    let shrink = Edits {
        runpath: RunpathEdit::Shrink {
            allowed_prefixes: Vec::new(),
        },
        ..Default::default()
    };
    assert!(patch_file(&exe, &shrink).unwrap().changed);
    assert_eq!(
        readelf_runpath(&exe),
        Some(format!("$ORIGIN/../lib:{libdir}"))
    );
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);

    let only_opt = Edits {
        runpath: RunpathEdit::Shrink {
            allowed_prefixes: vec!["/opt".into()],
        },
        ..Default::default()
    };
    patch_file(&exe, &only_opt).unwrap();
    assert_eq!(readelf_runpath(&exe).as_deref(), Some("$ORIGIN/../lib"));
}

/// A symlink to the real loader whose path is about 150 characters long.
fn long_loader_link(d: &Dir) -> String {
    let mut dir = d.path("ld");
    while dir.display().to_string().len() < 130 {
        dir = dir.join("a-rather-long-directory");
    }
    fs::create_dir_all(&dir).unwrap();
    let link = dir.join("ld-linux-x86-64.so.2");
    symlink(LOADER, &link).unwrap();
    link.display().to_string()
}

#[test]
fn interpreter_longer_than_old_moves_into_the_tail() {
    let d = Dir::new();
    let interp = long_loader_link(&d);
    assert!(interp.len() >= 150, "{interp}");
    for &(name, flags, sstrip) in EXE_FLAVOURS {
        let (exe, expected) = exe_fixture(&d, name, flags, sstrip);
        let orig = d.copy(&exe, &format!("orig/{name}"));
        let edits = Edits {
            interpreter: Some(interp.clone()),
            runpath: RunpathEdit::Set(d.path("lib").display().to_string()),
            ..Default::default()
        };
        assert!(patch_file(&exe, &edits).unwrap().changed, "{name}");
        assert_eq!(
            read(&exe).unwrap().interpreter.as_deref(),
            Some(interp.as_str()),
            "{name}"
        );
        assert_eq!(
            readelf_interp(&exe).as_deref(),
            Some(interp.as_str()),
            "{name}"
        );
        if !sstrip {
            assert_eq!(patchelf_print("interpreter", &exe), interp, "{name}");
        }
        assert_exe_healthy(&d, &orig, &exe, &expected, page_of(flags));
    }
}

#[test]
fn interpreter_that_fits_is_written_in_place() {
    let d = Dir::new();
    fs::create_dir_all(d.path("l")).unwrap();
    let short = d.path("l/ld.so");
    symlink(LOADER, &short).unwrap();
    let short = short.display().to_string();
    assert!(
        short.len() < LOADER.len() + 20,
        "tempdir path too long for this test: {short}"
    );
    // Make room: start from a long interpreter, then shorten it.
    let (exe, expected) = exe_fixture(&d, "main", &[], false);
    let runpath = RunpathEdit::Set(d.path("lib").display().to_string());
    let long = long_loader_link(&d);
    let first = Edits {
        interpreter: Some(long),
        runpath: runpath.clone(),
        ..Default::default()
    };
    patch_file(&exe, &first).unwrap();
    let orig = d.copy(&exe, "orig/main");
    let len = fs::metadata(&exe).unwrap().len();
    let second = Edits {
        interpreter: Some(short.clone()),
        ..Default::default()
    };
    let out = patch_file(&exe, &second).unwrap();
    assert!(out.changed);
    assert_eq!(out.new_len, len);
    assert_eq!(loads(&exe), loads(&orig), "no layout change");
    assert_eq!(readelf_interp(&exe), Some(short));
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);
}

#[test]
fn no_op_edits_leave_the_file_untouched() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let libdir = d.path("lib").display().to_string();
    let flag = format!("-Wl,-rpath,{libdir},--enable-new-dtags");
    let exe = d.main_exe("bin/main", &[&flag]);
    let lib = d.greet_lib("lib2/libgreet.so", &[]);
    let before_exe = snapshot(&exe);
    let before_lib = snapshot(&lib);
    std::thread::sleep(std::time::Duration::from_millis(20));

    let same = Edits {
        interpreter: Some(LOADER.into()),
        runpath: RunpathEdit::Set(libdir.clone()),
        add_needed: vec!["libc.so.6".into()],
        remove_needed: vec!["libnot-there.so".into()],
        replace_needed: vec![("libnot-there.so".into(), "libother.so".into())],
        ..Default::default()
    };
    let out = patch_file(&exe, &same).unwrap();
    assert!(!out.changed);
    assert_eq!(out.bytes_written, 0);
    assert_eq!(snapshot(&exe), before_exe);
    let add_same = Edits {
        runpath: RunpathEdit::Add(libdir),
        ..Default::default()
    };
    assert!(!patch_file(&exe, &add_same).unwrap().changed);
    assert_eq!(snapshot(&exe), before_exe);

    let soname = Edits {
        soname: Some("libgreet.so".into()),
        ..Default::default()
    };
    assert!(!patch_file(&lib, &soname).unwrap().changed);
    assert!(!patch_file(&lib, &Edits::default()).unwrap().changed);
    assert_eq!(snapshot(&lib), before_lib);
}

#[test]
fn alternating_runpath_edits_grow_the_file_by_at_most_a_few_pages() {
    let d = Dir::new();
    let (exe, expected) = exe_fixture(&d, "main", &[], false);
    let orig = d.copy(&exe, "orig/main");
    let len = fs::metadata(&exe).unwrap().len();
    let libdir = d.path("lib").display().to_string();
    for i in 0..100 {
        let rp = if i % 2 == 0 {
            format!("/a/long/entry/number/{i}/{}:{libdir}", "x".repeat(i * 3))
        } else {
            libdir.clone()
        };
        patch_file(&exe, &set_runpath(&rp)).unwrap();
        assert_eq!(readelf_runpath(&exe), Some(rp));
    }
    let grown = fs::metadata(&exe).unwrap().len() - len;
    assert!(grown <= 3 * 4096, "grew by {grown} bytes");
    assert_eq!(
        loads(&exe).len(),
        loads(&orig).len() + 1,
        "one tail segment, reused"
    );
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);
}

#[test]
fn add_needed_uses_spare_dynamic_slots() {
    let d = Dir::new();
    let (exe, expected) = exe_fixture(&d, "main", &["-Wl,--no-as-needed"], false);
    let orig = d.copy(&exe, "orig/main");
    let dynamic_before = dynamic_segment(&exe);
    let edits = Edits {
        add_needed: vec!["libm.so.6".into()],
        runpath: RunpathEdit::Set(d.path("lib").display().to_string()),
        ..Default::default()
    };
    assert!(patch_file(&exe, &edits).unwrap().changed);
    assert_eq!(
        dynamic_segment(&exe),
        dynamic_before,
        ".dynamic did not move"
    );
    assert_eq!(
        readelf_needed(&exe),
        ["libm.so.6", "libgreet.so", "libc.so.6"]
    );
    assert_eq!(
        patchelf_print("needed", &exe),
        "libm.so.6\nlibgreet.so\nlibc.so.6"
    );
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);
}

/// (offset, vaddr, filesz) of PT_DYNAMIC.
fn dynamic_segment(file: &Path) -> (u64, u64, u64) {
    let bytes = fs::read(file).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let p = elf
        .program_headers
        .iter()
        .find(|p| p.p_type == goblin::elf::program_header::PT_DYNAMIC)
        .unwrap();
    (p.p_offset, p.p_vaddr, p.p_filesz)
}

#[test]
fn add_needed_beyond_spare_slots_moves_dynamic_to_a_writable_segment() {
    let d = Dir::new();
    for &(name, flags, sstrip) in &EXE_FLAVOURS[..3] {
        let (exe, expected) = exe_fixture(&d, name, flags, sstrip);
        let orig = d.copy(&exe, &format!("orig/{name}"));
        let mut extra = Vec::new();
        for i in 0..12 {
            let lib = format!("libextra{i}.so");
            if !d.path(&format!("lib/{lib}")).exists() {
                d.greet_lib(&format!("lib/{lib}"), &[]);
            }
            extra.push(lib);
        }
        let before = dynamic_segment(&exe);
        let edits = Edits {
            add_needed: extra.clone(),
            runpath: RunpathEdit::Set(d.path("lib").display().to_string()),
            ..Default::default()
        };
        assert!(patch_file(&exe, &edits).unwrap().changed);
        let after = dynamic_segment(&exe);
        assert_ne!(after.0, before.0, "{name}: .dynamic moved");
        assert!(after.2 > before.2, "{name}: .dynamic grew");
        let needed = readelf_needed(&exe);
        assert_eq!(&needed[..12], &extra[..], "{name}");
        assert_exe_healthy(&d, &orig, &exe, &expected, page_of(flags));

        // Removing them again works on the moved .dynamic.
        let remove = Edits {
            remove_needed: extra,
            ..Default::default()
        };
        assert!(patch_file(&exe, &remove).unwrap().changed);
        assert_eq!(readelf_needed(&exe), ["libgreet.so", "libc.so.6"], "{name}");
        assert_exe_healthy(&d, &orig, &exe, &expected, page_of(flags));
    }
}

#[test]
fn remove_needed_drops_the_entry() {
    let d = Dir::new();
    let (exe, expected) = exe_fixture(&d, "main", &["-Wl,--no-as-needed", "-lm"], false);
    let orig = d.copy(&exe, "orig/main");
    assert!(readelf_needed(&exe).contains(&"libm.so.6".to_string()));
    let edits = Edits {
        remove_needed: vec!["libm.so.6".into()],
        runpath: RunpathEdit::Set(d.path("lib").display().to_string()),
        ..Default::default()
    };
    assert!(patch_file(&exe, &edits).unwrap().changed);
    assert_eq!(readelf_needed(&exe), ["libgreet.so", "libc.so.6"]);
    assert_eq!(read(&exe).unwrap().needed, ["libgreet.so", "libc.so.6"]);
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);
}

#[test]
fn replace_needed_renames_the_entry_and_its_version_requirements() {
    let d = Dir::new();
    let (exe, expected) = exe_fixture(&d, "main", &[], false);
    let orig = d.copy(&exe, "orig/main");
    // A second name for libgreet, and for libc (whose symbols are versioned).
    d.copy(
        &d.path("lib/libgreet.so"),
        "lib/libgreet-renamed-for-the-test.so",
    );
    let libc = fs::canonicalize("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
    symlink(&libc, d.path("lib/libc-alias-for-the-test.so.6")).unwrap();

    let edits = Edits {
        replace_needed: vec![
            (
                "libgreet.so".into(),
                "libgreet-renamed-for-the-test.so".into(),
            ),
            ("libc.so.6".into(), "libc-alias-for-the-test.so.6".into()),
        ],
        runpath: RunpathEdit::Set(d.path("lib").display().to_string()),
        ..Default::default()
    };
    assert!(patch_file(&exe, &edits).unwrap().changed);
    assert_eq!(
        readelf_needed(&exe),
        [
            "libgreet-renamed-for-the-test.so",
            "libc-alias-for-the-test.so.6"
        ]
    );
    let versions = readelf(&["-V"], &exe);
    assert!(
        versions.contains("File: libc-alias-for-the-test.so.6"),
        "{versions}"
    );
    assert!(!versions.contains("File: libc.so.6"), "{versions}");
    // The old file name is gone: the program must use the new ones.
    fs::rename(d.path("lib/libgreet.so"), d.path("lib/libgreet.so.moved")).unwrap();
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);
    fs::rename(d.path("lib/libgreet.so.moved"), d.path("lib/libgreet.so")).unwrap();
}

#[test]
fn tail_merged_runpath_string_is_not_overwritten() {
    let d = Dir::new();
    // GNU ld stores "libgreet.so" (SONAME) as the tail of the RUNPATH
    // "/opt/libgreet.so": one string, two references.
    let lib = d.greet_lib(
        "lib/libgreet.so",
        &["-Wl,-rpath,/opt/libgreet.so,--enable-new-dtags"],
    );
    let dynamic = goblin_dynamic(&lib);
    let val = |tag| dynamic.iter().find(|e| e.0 == tag).map(|e| e.1).unwrap();
    let (runpath, soname) = (val(29), val(14));
    assert_eq!(
        soname,
        runpath + "/opt/".len() as u64,
        "the linker merged the strings"
    );
    let orig = d.copy(&lib, "orig/libgreet.so");

    // Shorter: would fit in place, but must not clobber the SONAME.
    assert!(patch_file(&lib, &set_runpath("/x")).unwrap().changed);
    assert_eq!(readelf_runpath(&lib).as_deref(), Some("/x"));
    assert_eq!(readelf_soname(&lib).as_deref(), Some("libgreet.so"));
    assert_eq!(patchelf_print("soname", &lib), "libgreet.so");
    assert_lib_healthy(&d, &orig, &lib, 4096);

    // And the other way round: a new SONAME must not change the RUNPATH.
    let lib2 = d.greet_lib(
        "lib2/libgreet.so",
        &["-Wl,-rpath,/opt/libgreet.so,--enable-new-dtags"],
    );
    let orig2 = d.copy(&lib2, "orig/lib2.so");
    let edits = Edits {
        soname: Some("libg.so".into()),
        ..Default::default()
    };
    assert!(patch_file(&lib2, &edits).unwrap().changed);
    assert_eq!(readelf_soname(&lib2).as_deref(), Some("libg.so"));
    assert_eq!(readelf_runpath(&lib2).as_deref(), Some("/opt/libgreet.so"));
    assert_lib_healthy(&d, &orig2, &lib2, 4096);
}

#[test]
fn library_with_many_symbols_copies_only_its_dynamic_tables() {
    let d = Dir::new();
    let lib = d.many_symbols_lib(
        "big/libmany.so",
        4000,
        &["-Wl,-rpath,/opt/a/b/c,--enable-new-dtags"],
    );
    let orig = d.copy(&lib, "orig/libmany.so");
    let len = fs::metadata(&lib).unwrap().len();
    let dynstr = dynstr_size(&lib);
    assert!(dynstr > 100_000, "a big .dynstr ({dynstr} bytes)");

    // Fits: a few bytes.
    let out = patch_file(&lib, &set_runpath("/opt/x")).unwrap();
    assert!(out.bytes_written < 64, "{out:?}");
    assert_eq!(out.new_len, len);
    assert_lib_healthy(&d, &orig, &lib, 4096);

    // Does not fit: a copy of .dynstr, the tables in front of the program
    // headers' growth (build-id note, .gnu.hash), their old places cleared
    // (nothing stale stays behind), and headers.
    let gnu_hash = section_size(&lib, ".gnu.hash");
    let rp = long_runpath(&d.path("lib"));
    let out = patch_file(&lib, &set_runpath(&rp)).unwrap();
    assert!(
        out.bytes_written < 2 * (dynstr + gnu_hash) + 4096,
        "{out:?}"
    );
    assert!(
        out.new_len - out.old_len < dynstr + gnu_hash + 4096,
        "{out:?}"
    );
    assert_eq!(readelf_runpath(&lib), Some(rp));
    assert_lib_healthy(&d, &orig, &lib, 4096);
}

fn section_size(file: &Path, name: &str) -> u64 {
    let bytes = fs::read(file).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    elf.section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(name))
        .map(|s| s.sh_size)
        .unwrap()
}

/// Counts the bytes read through it.
struct Counting {
    file: elfpatch::FileBytes,
    read: std::cell::Cell<u64>,
}

impl elfpatch::ByteSource for Counting {
    fn size(&self) -> u64 {
        self.file.size()
    }
    fn read_exact_at(&self, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
        self.read.set(self.read.get() + buf.len() as u64);
        self.file.read_exact_at(buf, offset)
    }
}

#[test]
fn patching_a_huge_library_reads_and_writes_only_metadata() {
    let d = Dir::new();
    let c = d.path("huge.c");
    fs::write(
        &c,
        "const char huge_blob[64 << 20] = {1};\nint answer(void) { return 42; }\n",
    )
    .unwrap();
    let lib = d.cc(
        "huge/libhuge.so",
        &["-shared", "-fPIC", c.to_str().unwrap()],
    );
    let orig = d.copy(&lib, "orig/libhuge.so");
    let len = fs::metadata(&lib).unwrap().len();
    assert!(len > 64 << 20);

    let edits = Edits {
        runpath: RunpathEdit::Set(long_runpath(&d.path("lib"))),
        soname: Some("libhuge-with-a-new-and-longer-soname.so.1".into()),
        add_needed: vec!["libm.so.6".into()],
        ..Default::default()
    };
    let src = Counting {
        file: elfpatch::FileBytes::new(fs::File::open(&lib).unwrap()).unwrap(),
        read: Default::default(),
    };
    let view = elfpatch::View::parse(&src).unwrap();
    let plan = elfpatch::plan::plan(&view, &edits, &elfpatch::plan::Host).unwrap();
    assert!(
        src.read.get() < 64 << 10,
        "read {} bytes of {len}",
        src.read.get()
    );
    assert!(
        plan.bytes_written() < 16 << 10,
        "writes {} bytes",
        plan.bytes_written()
    );
    drop(view);

    let f = fs::OpenOptions::new().write(true).open(&lib).unwrap();
    elfpatch::apply::to_file(&f, &plan).unwrap();
    drop(f);
    assert_eq!(read(&lib).unwrap().needed, ["libm.so.6"]);
    d.assert_dlopens(&lib);
    assert_layout_invariants(&lib, 4096);
    assert_no_new_lint(&orig, &lib);
}

fn dynstr_size(file: &Path) -> u64 {
    goblin_dynamic(file)
        .iter()
        .find(|e| e.0 == 10)
        .map(|e| e.1)
        .unwrap()
}

#[test]
fn soname_is_added_when_missing() {
    let d = Dir::new();
    let src = testdata("greet.c");
    let lib = d.cc(
        "lib/libnosoname.so",
        &["-shared", "-fPIC", src.to_str().unwrap()],
    );
    let orig = d.copy(&lib, "orig/libnosoname.so");
    assert_eq!(read(&lib).unwrap().soname, None);
    let edits = Edits {
        soname: Some("libnosoname.so.1".into()),
        ..Default::default()
    };
    assert!(patch_file(&lib, &edits).unwrap().changed);
    assert_eq!(readelf_soname(&lib).as_deref(), Some("libnosoname.so.1"));
    assert_eq!(patchelf_print("soname", &lib), "libnosoname.so.1");
    assert_lib_healthy(&d, &orig, &lib, 4096);
}

#[test]
fn read_reports_what_the_loader_sees() {
    let d = Dir::new();
    let (exe, _) = exe_fixture(
        &d,
        "main",
        &["-Wl,-rpath,/opt/r,--disable-new-dtags"],
        false,
    );
    let info = read(&exe).unwrap();
    assert_eq!(info.class, elfpatch::Class::Elf64);
    assert_eq!(info.endian, elfpatch::Endian::Little);
    assert_eq!(info.machine, 62);
    assert_eq!(info.kind, elfpatch::FileKind::Dyn);
    assert_eq!(info.interpreter.as_deref(), Some(LOADER));
    assert_eq!(info.rpath.as_deref(), Some("/opt/r"));
    assert_eq!(info.runpath, None);
    assert_eq!(info.needed, ["libgreet.so", "libc.so.6"]);
    assert!(!info.is_static);

    let nopie = d.main_exe("bin/nopie", &["-no-pie"]);
    assert_eq!(read(&nopie).unwrap().kind, elfpatch::FileKind::Exec);

    let src = testdata("main.c");
    let greet = testdata("greet.c");
    let stat = d.cc(
        "bin/static",
        &["-static", src.to_str().unwrap(), greet.to_str().unwrap()],
    );
    let info = read(&stat).unwrap();
    assert!(info.is_static);
    assert_eq!(info.interpreter, None);
    let err = patch_file(&stat, &set_runpath("/x")).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            elfpatch::ErrorKind::Unsupported(elfpatch::Unsupported::NoDynamic)
        ),
        "{err}"
    );
}

#[test]
fn successive_different_edits_reuse_one_tail_segment() {
    let d = Dir::new();
    let interp = long_loader_link(&d);
    for &(name, flags, sstrip) in &[EXE_FLAVOURS[0], EXE_FLAVOURS[1], EXE_FLAVOURS[8]] {
        let (exe, expected) = exe_fixture(&d, name, flags, sstrip);
        let orig = d.copy(&exe, &format!("orig/{name}"));
        let libdir = d.path("lib").display().to_string();
        let extra: Vec<String> = (0..10).map(|i| format!("libextra{i}.so")).collect();
        for lib in &extra {
            if !d.path(&format!("lib/{lib}")).exists() {
                d.greet_lib(&format!("lib/{lib}"), &[]);
            }
        }
        let steps = [
            set_runpath(&long_runpath(&d.path("lib"))),
            Edits {
                add_needed: extra.clone(),
                ..Default::default()
            },
            Edits {
                interpreter: Some(interp.clone()),
                soname: Some("main-gets-a-soname".into()),
                ..Default::default()
            },
            Edits {
                remove_needed: extra[..5].to_vec(),
                runpath: RunpathEdit::Set(format!("{libdir}:/opt/{}", "y".repeat(200))),
                ..Default::default()
            },
            Edits {
                interpreter: Some(LOADER.into()),
                runpath: RunpathEdit::Set(libdir.clone()),
                ..Default::default()
            },
        ];
        for (i, edits) in steps.iter().enumerate() {
            assert!(patch_file(&exe, edits).unwrap().changed, "{name} step {i}");
            assert_eq!(
                loads(&exe).len(),
                loads(&orig).len() + 1,
                "{name} step {i}: one tail segment"
            );
            assert_exe_healthy(&d, &orig, &exe, &expected, 4096);
        }
        let info = read(&exe).unwrap();
        assert_eq!(info.interpreter.as_deref(), Some(LOADER));
        assert_eq!(info.runpath, Some(libdir));
        assert_eq!(info.soname.as_deref(), Some("main-gets-a-soname"));
        assert_eq!(info.needed.len(), 7, "{:?}", info.needed);
    }
}

#[test]
fn spare_pt_null_entry_takes_the_new_segment() {
    let d = Dir::new();
    let (exe, expected) = exe_fixture(&d, "main", &[], false);
    // Turn PT_GNU_EH_FRAME (only needed to unwind) into PT_NULL.
    let mut bytes = fs::read(&exe).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    let i = elf
        .program_headers
        .iter()
        .position(|p| p.p_type == goblin::elf::program_header::PT_GNU_EH_FRAME)
        .unwrap();
    let (phoff, phnum) = (elf.header.e_phoff as usize, elf.header.e_phnum);
    drop(elf);
    bytes[phoff + i * 56..phoff + i * 56 + 4].fill(0);
    fs::write(&exe, &bytes).unwrap();
    let orig = d.copy(&exe, "orig/main");

    patch_file(&exe, &set_runpath(&long_runpath(&d.path("lib")))).unwrap();
    let after = goblin::elf::Elf::parse_header(&fs::read(&exe).unwrap()).unwrap();
    assert_eq!(after.e_phnum, phnum, "the table did not grow");
    assert_eq!(loads(&exe).len(), loads(&orig).len() + 1);
    assert_exe_healthy(&d, &orig, &exe, &expected, 4096);
}

#[test]
fn patch_bytes_and_patch_file_agree() {
    let d = Dir::new();
    let (exe, _) = exe_fixture(&d, "main", &[], false);
    let before = fs::read(&exe).unwrap();
    let edits = Edits {
        runpath: RunpathEdit::Set(long_runpath(&d.path("lib"))),
        add_needed: vec!["libm.so.6".into()],
        ..Default::default()
    };
    let in_memory = elfpatch::patch_bytes(&before, &edits).unwrap();
    patch_file(&exe, &edits).unwrap();
    assert_eq!(fs::read(&exe).unwrap(), in_memory);
}

#[test]
fn files_patched_by_patchelf_before_are_patched_again() {
    let d = Dir::new();
    let (exe, expected) = exe_fixture(&d, "main", &[], false);
    let lib = d.greet_lib("other/libgreet.so", &[]);
    for file in [&exe, &lib] {
        let out = output(
            std::process::Command::new("patchelf")
                .args([
                    "--set-rpath",
                    "/opt/patchelf/was/here/with/a/rather/long/path",
                ])
                .arg(file),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let orig_exe = d.copy(&exe, "orig/main");
    let orig_lib = d.copy(&lib, "orig/libgreet.so");
    let edits = Edits {
        runpath: RunpathEdit::Set(format!(
            "{}:{}",
            long_runpath(&d.path("lib")),
            "z".repeat(300)
        )),
        add_needed: (0..8).map(|i| format!("libextra{i}.so")).collect(),
        ..Default::default()
    };
    for i in 0..8 {
        d.greet_lib(&format!("lib/libextra{i}.so"), &[]);
    }
    patch_file(&exe, &edits).unwrap();
    assert_exe_healthy(&d, &orig_exe, &exe, &expected, 4096);
    patch_file(&lib, &edits).unwrap();
    // dlopen finds the extra libraries through the new RUNPATH.
    assert_lib_healthy(&d, &orig_lib, &lib, 4096);
}

#[test]
fn new_segment_leaves_room_for_the_largest_symbol_so_elflint_sees_no_text_relocation() {
    // eu-elflint takes a PLT relocation to cover its function's whole size:
    // a read-only segment right after `.got.plt` would be "modified".
    let d = Dir::new();
    let mut src = String::from("int big(volatile int x) {\n");
    for i in 0..3000 {
        src.push_str(&format!("  x = x * 3 + {i};\n"));
    }
    src.push_str("  return x;\n}\nint call_big(int x) { return big(x) + 1; }\n");
    let c = d.path("big.c");
    fs::write(&c, src).unwrap();
    let lib = d.cc(
        "lib/libbig.so",
        &["-O0", "-shared", "-fPIC", c.to_str().unwrap()],
    );
    let orig = d.copy(&lib, "orig/libbig.so");
    patch_file(&lib, &set_runpath(&format!("/opt/{}", "x".repeat(100)))).unwrap();
    assert_lib_healthy(&d, &orig, &lib, 4096);
}

/// The first section after the program header table, by file offset.
fn first_section_offset(file: &Path) -> u64 {
    let bytes = fs::read(file).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).unwrap();
    elf.section_headers
        .iter()
        .skip(1)
        .map(|s| s.sh_offset)
        .min()
        .unwrap()
}

#[test]
fn library_whose_program_headers_cannot_grow_is_shifted_by_whole_pages_and_still_loads() {
    let d = Dir::new();
    let lib = d.early_rodata_lib("lib/libgreet.so", &[]);
    let orig = d.copy(&lib, "orig/libgreet.so");
    let before = fs::read(&lib).unwrap();
    let old_first = first_section_offset(&lib);
    let old_loads = loads(&lib);
    let runpath = long_runpath(&d.path("lib"));
    let edits = Edits {
        runpath: RunpathEdit::Set(runpath.clone()),
        soname: Some("libgreet-renamed-with-a-longer-soname.so.1".into()),
        add_needed: vec!["libm.so.6".into()],
        ..Default::default()
    };
    let in_memory = elfpatch::patch_bytes(&before, &edits).unwrap();
    let out = patch_file(&lib, &edits).unwrap();
    assert!(out.changed);
    assert_eq!(fs::read(&lib).unwrap(), in_memory, "patch_bytes agrees");

    // Everything moved up one page; addresses did not change.
    assert_eq!(first_section_offset(&lib), old_first + 4096);
    let new_loads = loads(&lib);
    assert_eq!(
        new_loads.len(),
        old_loads.len() + 2,
        "header and tail segments"
    );
    for (old, new) in old_loads.iter().zip(&new_loads) {
        assert_eq!((new.0, new.1, new.2), (old.0 + 4096, old.1, old.2));
    }
    let header = new_loads.iter().find(|l| l.0 == 0).unwrap();
    assert!(
        header.1 > old_loads.last().unwrap().1,
        "mapped above the rest"
    );
    let info = read(&lib).unwrap();
    assert_eq!(info.runpath.as_deref(), Some(runpath.as_str()));
    assert_eq!(info.soname, edits.soname);
    assert_eq!(info.needed[0], "libm.so.6");
    assert_eq!(patchelf_print("rpath", &lib), runpath);
    assert_eq!(readelf_soname(&lib), edits.soname);
    assert_lib_healthy(&d, &orig, &lib, 4096);

    // The linker accepts it, and a program linked against it runs.
    let exe = d.main_exe("bin/main", &[]);
    assert_eq!(
        readelf_needed(&exe)[0],
        "libgreet-renamed-with-a-longer-soname.so.1"
    );
    symlink(
        "libgreet.so",
        d.path("lib/libgreet-renamed-with-a-longer-soname.so.1"),
    )
    .unwrap();
    assert_eq!(run(&exe, Some(&d.path("lib"))), "hello from libgreet\n");

    // Later edits rebuild the tail; the file moves no more.
    let len = fs::metadata(&lib).unwrap().len();
    let more = Edits {
        runpath: RunpathEdit::Set(format!("{runpath}:/opt/{}", "z".repeat(300))),
        add_needed: vec!["libdl.so.2".into()],
        ..Default::default()
    };
    let out = patch_file(&lib, &more).unwrap();
    assert!(out.bytes_written < len / 2, "{out:?}");
    assert_eq!(loads(&lib).len(), new_loads.len());
    assert_eq!(first_section_offset(&lib), old_first + 4096);
    assert_lib_healthy(&d, &orig, &lib, 4096);
}

#[test]
fn executable_whose_program_headers_cannot_grow_is_refused_and_left_untouched() {
    // The kernel (before Linux 5.18) wants an executable's program headers
    // in its first segment: no shifting for executables.
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let script = format!("-Wl,-T,{}", testdata("early_rodata_exe.ld").display());
    let src = testdata("early_rodata.c");
    let exe = d.main_exe("bin/main", &[src.to_str().unwrap(), script.as_str()]);
    assert_eq!(run(&exe, Some(&d.path("lib"))), "hello from libgreet\n");
    let before = snapshot(&exe);
    let err = patch_file(&exe, &set_runpath(&long_runpath(&d.path("lib")))).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            elfpatch::ErrorKind::Unsupported(elfpatch::Unsupported::NoRoomForProgramHeader(_))
        ),
        "{err}"
    );
    assert_eq!(snapshot(&exe), before);
}

/// Retypes the file's PT_GNU_STACK (ELF64 LE) to `to`.
fn retype_gnu_stack(file: &Path, to: u32) {
    let mut b = fs::read(file).unwrap();
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(b[0x20..0x28].try_into().unwrap()) as usize;
    let (size, n) = (u16_at(&b, 0x36), u16_at(&b, 0x38));
    let at = (0..n)
        .map(|i| phoff + i * size)
        .find(|&at| b[at..at + 4] == 0x6474_e551u32.to_le_bytes())
        .expect("PT_GNU_STACK");
    b[at..at + 4].copy_from_slice(&to.to_le_bytes());
    fs::write(file, b).unwrap();
}

#[test]
fn execstack_adds_a_missing_gnu_stack_header() {
    let execstack = |exec| Edits {
        execstack: Some(exec),
        ..Default::default()
    };
    // No PT_GNU_STACK and no spare entry (retyped to PT_LOOS, which the
    // loader ignores): the table grows by one.
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let rpath = format!("-Wl,-rpath,{}", d.path("lib").display());
    let exe = d.main_exe("bin/main", &[&rpath]);
    let expected = run(&exe, None);
    retype_gnu_stack(&exe, 0x6000_0000);
    assert_eq!(read(&exe).unwrap().execstack, None);
    assert!(patch_file(&exe, &execstack(false)).unwrap().changed);
    assert_eq!(read(&exe).unwrap().execstack, Some(false));
    assert!(readelf(&["-lW"], &exe)
        .lines()
        .any(|l| l.contains("GNU_STACK") && l.contains(" RW ")));
    // (eu-elflint rightly dislikes the fixture's PT_LOOS entry, so the
    // loader and the layout invariants judge.)
    assert_eq!(runs(&exe).as_deref(), Ok(expected.as_str()));
    assert_layout_invariants(&exe, 4096);
    // Again: the header is there now, only its flag changes.
    assert!(patch_file(&exe, &execstack(true)).unwrap().changed);
    assert_eq!(read(&exe).unwrap().execstack, Some(true));
    assert_eq!(runs(&exe).as_deref(), Ok(expected.as_str()));

    let lib = d.greet_lib("lib2/libgreet.so", &[]);
    retype_gnu_stack(&lib, 0x6000_0000);
    assert!(patch_file(&lib, &execstack(false)).unwrap().changed);
    assert_eq!(read(&lib).unwrap().execstack, Some(false));
    d.assert_dlopens(&lib);
    assert_layout_invariants(&lib, 4096);

    // A library whose table cannot grow in place is shifted by whole
    // pages, with room for the new entry too.
    let early = d.early_rodata_lib("lib3/libgreet.so", &[]);
    retype_gnu_stack(&early, 0x6000_0000);
    let before = fs::metadata(&early).unwrap().len();
    assert!(patch_file(&early, &execstack(false)).unwrap().changed);
    assert!(fs::metadata(&early).unwrap().len() > before);
    assert_eq!(read(&early).unwrap().execstack, Some(false));
    d.assert_dlopens(&early);
    assert_layout_invariants(&early, 4096);

    // A PT_NULL entry becomes the header: nothing else moves.
    let spare = d.main_exe("bin/spare", &[&rpath]);
    retype_gnu_stack(&spare, 0);
    let len = fs::metadata(&spare).unwrap().len();
    let out = patch_file(&spare, &execstack(false)).unwrap();
    assert_eq!(
        (out.new_len, read(&spare).unwrap().execstack),
        (len, Some(false))
    );
    assert!(out.bytes_written <= 64, "{out:?}");
    assert_eq!(runs(&spare).as_deref(), Ok(expected.as_str()));
}
