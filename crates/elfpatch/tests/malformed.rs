//! Malformed input is an error naming the problem, never a panic, and the
//! file is left untouched.

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use common::*;
use elfpatch::{
    patch_bytes, patch_file, read, read_bytes, Edits, ErrorKind, Malformed, RunpathEdit,
};

fn edits() -> Edits {
    Edits {
        runpath: RunpathEdit::Set("/a/new/and/rather/long/runpath/that/needs/a/new/segment".into()),
        soname: Some("libx.so".into()),
        ..Default::default()
    }
}

/// A fresh shared library to damage.
fn library(d: &Dir) -> PathBuf {
    d.greet_lib(
        "lib/libgreet.so",
        &["-Wl,-rpath,/opt/lib,--enable-new-dtags"],
    )
}

/// Damages `file` with `f`, then checks that reading and patching fail with a
/// malformed-input error for which `expect` holds, and that the file is
/// untouched.
fn assert_rejected(file: &Path, f: impl FnOnce(&mut Vec<u8>), expect: impl Fn(&Malformed) -> bool) {
    let before = damage(file, f);
    check_errors(
        file,
        [
            read(file).unwrap_err(),
            patch_file(file, &edits()).unwrap_err(),
        ],
        &expect,
    );
    assert_eq!(snapshot(file), before, "the file was modified");
}

/// Applies `f` to `file`'s bytes; returns the damaged file's snapshot.
fn damage(file: &Path, f: impl FnOnce(&mut Vec<u8>)) -> (Vec<u8>, std::time::SystemTime) {
    let mut bytes = fs::read(file).unwrap();
    f(&mut bytes);
    fs::write(file, &bytes).unwrap();
    snapshot(file)
}

/// Each error is a malformed-input error about `file` for which `expect` holds.
fn check_errors(
    file: &Path,
    errors: impl IntoIterator<Item = elfpatch::Error>,
    expect: &dyn Fn(&Malformed) -> bool,
) {
    for err in errors {
        assert_eq!(err.path(), file);
        match err.kind() {
            ErrorKind::Malformed(m) => assert!(expect(m), "unexpected problem: {m:?}"),
            other => panic!("expected a malformed-input error, got {other:?}"),
        }
        assert!(
            err.to_string().starts_with(&file.display().to_string()),
            "{err}"
        );
    }
}

fn header(bytes: &[u8]) -> goblin::elf::Header {
    goblin::elf::Elf::parse_header(bytes).unwrap()
}

/// File offset of field `field_off` of program header `index`.
fn phdr_field(bytes: &[u8], index: usize, field_off: usize) -> usize {
    header(bytes).e_phoff as usize + index * 56 + field_off
}

fn phdr_index(bytes: &[u8], p_type: u32) -> usize {
    let elf = goblin::elf::Elf::parse(bytes).unwrap();
    elf.program_headers
        .iter()
        .position(|p| p.p_type == p_type)
        .unwrap()
}

#[test]
fn rejects_files_that_are_not_elf() {
    let d = Dir::new();
    let f = d.path("script.sh");
    fs::write(&f, "#!/bin/sh\necho hi\n").unwrap();
    assert_rejected(&f, |_| {}, |m| *m == Malformed::NotElf);
    let empty = d.path("empty");
    fs::write(&empty, "").unwrap();
    assert_rejected(&empty, |_| {}, |m| *m == Malformed::NotElf);
}

#[test]
fn rejects_truncated_elf_header() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| b.truncate(40),
        |m| {
            matches!(
                m,
                Malformed::OutOfBounds {
                    what: "ELF header",
                    ..
                }
            )
        },
    );
}

#[test]
fn rejects_truncated_program_headers() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| b.truncate(100),
        |m| {
            matches!(
                m,
                Malformed::OutOfBounds {
                    what: "program header table",
                    ..
                }
            )
        },
    );
}

#[test]
fn rejects_program_header_offset_out_of_bounds() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            let bad = (b.len() as u64 + 10).to_le_bytes();
            b[32..40].copy_from_slice(&bad);
        },
        |m| {
            matches!(
                m,
                Malformed::OutOfBounds {
                    what: "program header table",
                    ..
                }
            )
        },
    );
    let lib2 = d.greet_lib("lib2/libgreet.so", &[]);
    assert_rejected(
        &lib2,
        |b| b[32..40].copy_from_slice(&u64::MAX.to_le_bytes()),
        |m| matches!(m, Malformed::OutOfBounds { .. }),
    );
}

#[test]
fn rejects_dynamic_offset_out_of_bounds() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            let i = phdr_index(b, goblin::elf::program_header::PT_DYNAMIC);
            let at = phdr_field(b, i, 8);
            let bad = (b.len() as u64 - 8).to_le_bytes();
            b[at..at + 8].copy_from_slice(&bad);
        },
        |m| {
            matches!(
                m,
                Malformed::OutOfBounds {
                    what: "PT_DYNAMIC segment",
                    ..
                }
            )
        },
    );
}

#[test]
fn rejects_string_table_without_nul() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            let elf = goblin::elf::Elf::parse(b).unwrap();
            let strtab = elf.dynamic.as_ref().unwrap().info.strtab as u64;
            let strsz = elf.dynamic.as_ref().unwrap().info.strsz as u64;
            let load = elf
                .program_headers
                .iter()
                .find(|p| p.p_type == 1 && p.p_vaddr <= strtab && strtab < p.p_vaddr + p.p_filesz)
                .unwrap();
            let last = (load.p_offset + strtab - load.p_vaddr + strsz - 1) as usize;
            drop(elf);
            b[last] = b'x';
        },
        |m| {
            matches!(
                m,
                Malformed::UnterminatedString {
                    table: ".dynstr",
                    ..
                }
            )
        },
    );
}

/// Found by `cargo xtask fuzz` (elf_edit): a section-name table whose
/// bytes are the section header table's own. Any edit rewrites section
/// headers, so the names would change under it.
#[test]
fn rejects_section_names_overlapping_the_section_headers() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            let h = header(b);
            let at = h.e_shoff as usize + h.e_shstrndx as usize * h.e_shentsize as usize;
            // sh_offset of .shstrtab: the section header table itself.
            b[at + 24..at + 32].copy_from_slice(&h.e_shoff.to_le_bytes());
        },
        |m| {
            matches!(
                m,
                Malformed::OverlapsHeaders {
                    what: "section name table",
                    ..
                }
            )
        },
    );
}

#[test]
fn rejects_string_offsets_past_the_string_table() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            // DT_RUNPATH's value: far past DT_STRSZ.
            let elf = goblin::elf::Elf::parse(b).unwrap();
            let p = elf.program_headers.iter().find(|p| p.p_type == 2).unwrap();
            let dynamic = p.p_offset as usize;
            let n = elf.dynamic.as_ref().unwrap().dyns.len();
            drop(elf);
            for i in 0..n {
                let at = dynamic + 16 * i;
                if u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) == 29 {
                    b[at + 8..at + 16].copy_from_slice(&0x7fff_0000u64.to_le_bytes());
                }
            }
        },
        |m| {
            matches!(
                m,
                Malformed::StringOutOfBounds {
                    what: "DT_RUNPATH",
                    ..
                }
            )
        },
    );
}

#[test]
fn rejects_dynamic_section_without_terminator() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            let elf = goblin::elf::Elf::parse(b).unwrap();
            let p = elf.program_headers.iter().find(|p| p.p_type == 2).unwrap();
            let (off, size) = (p.p_offset as usize, p.p_filesz as usize);
            drop(elf);
            // Turn every DT_NULL into DT_DEBUG.
            for at in (off..off + size).step_by(16) {
                if b[at..at + 8] == [0; 8] {
                    b[at] = 21;
                }
            }
        },
        |m| matches!(m, Malformed::UnterminatedDynamic { .. }),
    );
}

#[test]
fn rejects_overlapping_loadable_segments() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            let elf = goblin::elf::Elf::parse(b).unwrap();
            let loads: Vec<usize> = (0..elf.program_headers.len())
                .filter(|&i| elf.program_headers[i].p_type == 1)
                .collect();
            let first_vaddr = elf.program_headers[loads[0]].p_vaddr;
            drop(elf);
            // The second PT_LOAD now claims the first one's addresses.
            let at = phdr_field(b, loads[1], 16);
            b[at..at + 8].copy_from_slice(&first_vaddr.to_le_bytes());
        },
        |m| matches!(m, Malformed::OverlappingSegments { .. }),
    );
}

#[test]
fn rejects_section_headers_that_disagree_with_the_dynamic_section() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            let elf = goblin::elf::Elf::parse(b).unwrap();
            let i = elf
                .section_headers
                .iter()
                .position(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(".dynstr"))
                .unwrap();
            let at = elf.header.e_shoff as usize + i * 64 + 24;
            drop(elf);
            let off = u64::from_le_bytes(b[at..at + 8].try_into().unwrap()) + 1;
            b[at..at + 8].copy_from_slice(&off.to_le_bytes());
        },
        |m| {
            matches!(
                m,
                Malformed::Inconsistent {
                    what: ".dynstr offset",
                    ..
                }
            )
        },
    );
}

#[test]
fn rejects_bad_class_and_byte_order() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(&lib, |b| b[4] = 7, |m| *m == Malformed::BadClass(7));
    let lib2 = d.greet_lib("lib2/libgreet.so", &[]);
    assert_rejected(&lib2, |b| b[5] = 9, |m| *m == Malformed::BadEndian(9));
}

#[test]
fn unsupported_edits_are_errors_that_leave_the_file_alone() {
    let d = Dir::new();
    let lib = library(&d);
    let before = snapshot(&lib);
    let interp = Edits {
        interpreter: Some("/lib/ld.so".into()),
        ..Default::default()
    };
    let err = patch_file(&lib, &interp).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Unsupported(elfpatch::Unsupported::NoInterpreter)
        ),
        "{err}"
    );
    let nul = Edits {
        soname: Some("lib\0x.so".into()),
        ..Default::default()
    };
    let err = patch_file(&lib, &nul).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Unsupported(elfpatch::Unsupported::BadValue { .. })
        ),
        "{err}"
    );
    let page = Edits {
        page_size: Some(3000),
        ..edits()
    };
    let err = patch_file(&lib, &page).unwrap_err();
    assert!(
        matches!(
            err.kind(),
            ErrorKind::Unsupported(elfpatch::Unsupported::BadPageSize(3000))
        ),
        "{err}"
    );
    assert_eq!(snapshot(&lib), before);
}

/// A tiny deterministic generator for the mutation test.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn random_damage_to_headers_and_tables_never_panics() {
    let d = Dir::new();
    let lib = library(&d);
    d.greet_lib("lib/libgreet.so", &[]);
    let exe = d.main_exe("bin/main", &[]);
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for file in [lib, exe] {
        let original = fs::read(&file).unwrap();
        // The interesting bytes: headers, the first page of tables, .dynamic.
        let elf = goblin::elf::Elf::parse(&original).unwrap();
        let dynamic = elf.program_headers.iter().find(|p| p.p_type == 2).unwrap();
        let ranges = [
            (0usize, 0x1000usize.min(original.len())),
            (
                dynamic.p_offset as usize,
                (dynamic.p_offset + dynamic.p_filesz) as usize,
            ),
        ];
        for _ in 0..1500 {
            let mut b = original.clone();
            for _ in 0..1 + rng.next() % 4 {
                let (s, e) = ranges[(rng.next() % 2) as usize];
                let at = s + (rng.next() as usize) % (e - s);
                b[at] = rng.next() as u8;
            }
            if rng.next() % 8 == 0 {
                let len = (rng.next() as usize) % b.len();
                b.truncate(len);
            }
            // Either outcome is fine; a panic is not.
            let _ = read_bytes(&b);
            if let Ok(out) = patch_bytes(&b, &edits()) {
                // What we wrote must parse again.
                read_bytes(&out).unwrap();
            }
        }
    }
}

#[test]
fn extreme_values_in_every_header_field_never_panic() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    let exe = d.main_exe("bin/main", &[]);
    let lib32 = elf32_library(&d, "lib32/libbump.so", &["-rpath", "/opt/lib32"]);
    for file in [exe, d.path("lib/libgreet.so"), lib32] {
        extreme_values_never_panic(&fs::read(&file).unwrap());
    }
}

/// Sets every field of the ELF header, the program and section headers and
/// the dynamic entries to extreme values, one at a time, and patches.
fn extreme_values_never_panic(original: &[u8]) {
    let len = original.len() as u64;
    let elf = goblin::elf::Elf::parse(original).unwrap();
    let is64 = elf.is_64;
    let values = [
        0,
        1,
        8,
        0x1000,
        len - 1,
        len,
        len + 1,
        u64::from(u32::MAX),
        u64::MAX / 2,
        u64::MAX,
    ];
    let w = if is64 { 8 } else { 4 };
    // (offset, size) of each field.
    let mut fields: Vec<(usize, usize)> = if is64 {
        vec![
            (24, 8),
            (32, 8),
            (40, 8),
            (54, 2),
            (56, 2),
            (58, 2),
            (60, 2),
            (62, 2),
        ]
    } else {
        vec![
            (24, 4),
            (28, 4),
            (32, 4),
            (42, 2),
            (44, 2),
            (46, 2),
            (48, 2),
            (50, 2),
        ]
    };
    let (ph, sh) = (phdr_fields(is64), shdr_fields(is64));
    let (phsz, shsz) = header_sizes(is64);
    let phoff = elf.header.e_phoff as usize;
    for i in 0..elf.program_headers.len() {
        fields.extend(ph.iter().map(|&(o, s)| (phoff + i * phsz + o, s)));
    }
    let shoff = elf.header.e_shoff as usize;
    for i in 0..elf.section_headers.len() {
        fields.extend(sh.iter().map(|&(o, s)| (shoff + i * shsz + o, s)));
    }
    let dynamic = elf.program_headers.iter().find(|p| p.p_type == 2).unwrap();
    for i in 0..(dynamic.p_filesz / (2 * w as u64)) as usize {
        fields.push((dynamic.p_offset as usize + 2 * w * i, w));
        fields.push((dynamic.p_offset as usize + 2 * w * i + w, w));
    }
    for (at, size) in fields {
        for v in values {
            let mut b = original.to_vec();
            b[at..at + size].copy_from_slice(&v.to_le_bytes()[..size]);
            let _ = read_bytes(&b);
            if let Ok(out) = patch_bytes(&b, &edits()) {
                read_bytes(&out).unwrap();
            }
        }
    }
}

/// Damages `file` with `f`; reading still works (patchelf reads such files
/// too), but every edit — even one that would fit in place — is refused
/// with a malformed-input error for which `expect` holds, the file untouched.
fn assert_edit_rejected(
    file: &Path,
    f: impl FnOnce(&mut Vec<u8>),
    expect: impl Fn(&Malformed) -> bool,
) {
    let before = damage(file, f);
    read(file).expect("reading is fine");
    let small = Edits {
        runpath: RunpathEdit::Set("/o".into()),
        ..Default::default()
    };
    let errors = [edits(), small].map(|e| patch_file(file, &e).unwrap_err());
    check_errors(file, errors, &expect);
    assert_eq!(snapshot(file), before, "the file was modified");
}

/// (offset, size) of the section called `name`.
fn section(bytes: &[u8], name: &str) -> (usize, usize) {
    let elf = goblin::elf::Elf::parse(bytes).unwrap();
    let s = elf
        .section_headers
        .iter()
        .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(name))
        .unwrap_or_else(|| panic!("no {name}"));
    (s.sh_offset as usize, s.sh_size as usize)
}

#[test]
fn version_need_naming_a_file_outside_dynstr_is_refused() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    // A program: it needs versions of libc's symbols.
    let exe = d.main_exe("bin/main", &[]);
    assert_edit_rejected(
        &exe,
        |b| {
            let (off, _) = section(b, ".gnu.version_r");
            // vn_file is the second word of the first Elf_Verneed.
            b[off + 4..off + 8].copy_from_slice(&0x00ff_ffffu32.to_le_bytes());
        },
        |m| matches!(m, Malformed::StringOutOfBounds { what, .. } if what.contains("vn_file")),
    );
}

#[test]
fn gnu_hash_without_buckets_is_refused() {
    let d = Dir::new();
    let lib = library(&d);
    assert_edit_rejected(
        &lib,
        |b| {
            let (off, _) = section(b, ".gnu.hash");
            b[off..off + 4].copy_from_slice(&0u32.to_le_bytes());
        },
        |m| matches!(m, Malformed::BadField { field, value: 0 } if field.contains("GNU_HASH")),
    );
}

#[test]
fn unterminated_section_name_table_is_refused() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            let (off, size) = section(b, ".shstrtab");
            b[off + size - 1] = b'x';
        },
        |m| matches!(m, Malformed::UnterminatedString { table, .. } if table.contains("section name")),
    );
}

#[test]
fn section_name_past_its_table_is_refused() {
    let d = Dir::new();
    let lib = library(&d);
    assert_rejected(
        &lib,
        |b| {
            let h = header(b);
            // sh_name of section 1.
            let at = h.e_shoff as usize + h.e_shentsize as usize;
            b[at..at + 4].copy_from_slice(&0x0fff_ffffu32.to_le_bytes());
        },
        |m| {
            matches!(
                m,
                Malformed::StringOutOfBounds {
                    what: "sh_name",
                    ..
                }
            )
        },
    );
}
