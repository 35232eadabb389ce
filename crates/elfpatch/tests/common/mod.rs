//! Test harness: compile the C fixtures in `testdata/elf/` into a temporary
//! directory, run the results, and ask the oracles (the dynamic loader,
//! `readelf`, `patchelf`, `eu-elflint`, `strip`) what they think.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The real x86-64 loader, for interpreter tests.
pub const LOADER: &str = "/lib64/ld-linux-x86-64.so.2";

/// Fails with a clear message when an oracle is missing.
pub fn require(tool: &str, package: &str) {
    let found = Command::new(tool).arg("--version").output().is_ok();
    assert!(
        found,
        "`{tool}` is needed by this test: install it with `apt-get install {package}`"
    );
}

/// All the oracles the loader tests use.
pub fn require_oracles() {
    require("cc", "gcc");
    require("readelf", "binutils");
    require("strip", "binutils");
    require("patchelf", "patchelf");
    require("eu-elflint", "elfutils");
}

/// A C source from `testdata/elf/`.
pub fn testdata(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/elf")
        .join(name)
}

fn check(what: &str, out: Output) -> Output {
    assert!(
        out.status.success(),
        "{what} failed ({}):\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A temporary directory holding the fixtures of one test.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        require_oracles();
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn root(&self) -> &Path {
        self.tmp.path()
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Runs `cc ARGS -o OUT`, creating OUT's directory.
    pub fn cc(&self, out: &str, args: &[&str]) -> PathBuf {
        let out = self.path(out);
        fs::create_dir_all(out.parent().unwrap()).unwrap();
        let o = Command::new("cc")
            .args(args)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        check(&format!("cc {args:?}"), o);
        out
    }

    /// `lib/libgreet.so` (or `dir/name`) from greet.c.
    pub fn greet_lib(&self, rel: &str, flags: &[&str]) -> PathBuf {
        let name = Path::new(rel)
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        let src = testdata("greet.c");
        let soname = format!("-Wl,-soname,{name}");
        let mut args = vec!["-shared", "-fPIC", src.to_str().unwrap(), soname.as_str()];
        args.extend_from_slice(flags);
        self.cc(rel, &args)
    }

    /// `bin/main` from main.c, linked against `lib/libgreet.so`.
    pub fn main_exe(&self, rel: &str, flags: &[&str]) -> PathBuf {
        let src = testdata("main.c");
        let libdir = self.path("lib");
        let l = format!("-L{}", libdir.display());
        let mut args = vec![src.to_str().unwrap(), l.as_str(), "-lgreet"];
        args.extend_from_slice(flags);
        self.cc(rel, &args)
    }

    /// `lib/libgreet.so` from early_rodata.c: read-only data right after
    /// the program header table, so the table cannot grow in place.
    pub fn early_rodata_lib(&self, rel: &str, flags: &[&str]) -> PathBuf {
        let src = testdata("early_rodata.c");
        let script = format!("-Wl,-T,{}", testdata("early_rodata.ld").display());
        let mut args = vec![
            "-shared",
            "-fPIC",
            src.to_str().unwrap(),
            script.as_str(),
            "-Wl,--build-id=none",
            "-Wl,-soname,libgreet.so",
        ];
        args.extend_from_slice(flags);
        self.cc(rel, &args)
    }

    /// A library with `n` exported functions (a large `.dynstr`).
    pub fn many_symbols_lib(&self, rel: &str, n: usize, flags: &[&str]) -> PathBuf {
        let mut src = String::new();
        for i in 0..n {
            src.push_str(&format!(
                "int a_rather_long_exported_function_name_number_{i}(int x) {{ return x + {i}; }}\n"
            ));
        }
        let c = self.path("many.c");
        fs::write(&c, src).unwrap();
        let mut args = vec!["-shared", "-fPIC", c.to_str().unwrap()];
        args.extend_from_slice(flags);
        self.cc(rel, &args)
    }

    /// The `dlopen_check` harness, built once per directory.
    pub fn dlopen_check(&self) -> PathBuf {
        let exe = self.path("tools/dlopen_check");
        if !exe.exists() {
            let src = testdata("dlopen_check.c");
            self.cc("tools/dlopen_check", &[src.to_str().unwrap(), "-ldl"]);
        }
        exe
    }

    /// Asserts that `lib` loads with `dlopen(RTLD_NOW)`.
    pub fn assert_dlopens(&self, lib: &Path) {
        let check = self.dlopen_check();
        let out = Command::new(&check)
            .arg(lib)
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stdout == b"ok\n",
            "dlopen({}) failed: {}",
            lib.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// A copy of `file` under a new name in this directory.
    pub fn copy(&self, file: &Path, rel: &str) -> PathBuf {
        let to = self.path(rel);
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(file, &to).unwrap();
        to
    }
}

/// `Command::output`, retried while the executable is "busy": another test
/// thread may be between `fork` and `exec` while holding a descriptor of a
/// file we just wrote (ETXTBSY).
pub fn output(c: &mut Command) -> Output {
    for _ in 0..50 {
        match c.output() {
            Err(e) if e.raw_os_error() == Some(26) => {
                std::thread::sleep(std::time::Duration::from_millis(20))
            }
            r => return r.unwrap(),
        }
    }
    c.output().unwrap()
}

/// Runs `exe` (with `LD_LIBRARY_PATH` when given) and returns its stdout.
pub fn run(exe: &Path, ld_library_path: Option<&Path>) -> String {
    let mut c = Command::new(exe);
    c.env_remove("LD_LIBRARY_PATH");
    if let Some(p) = ld_library_path {
        c.env("LD_LIBRARY_PATH", p);
    }
    let out = check(&format!("running {}", exe.display()), output(&mut c));
    String::from_utf8(out.stdout).unwrap()
}

/// Whether `exe` runs successfully without help.
pub fn runs(exe: &Path) -> Result<String, String> {
    let out = Command::new(exe)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// `readelf ARGS FILE` (wide output).
pub fn readelf(args: &[&str], file: &Path) -> String {
    let out = Command::new("readelf")
        .arg("-W")
        .args(args)
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8(check("readelf", out).stdout).unwrap()
}

/// `patchelf --print-X FILE`, trimmed.
pub fn patchelf_print(what: &str, file: &Path) -> String {
    let out = Command::new("patchelf")
        .arg(format!("--print-{what}"))
        .arg(file)
        .output()
        .unwrap();
    String::from_utf8(check(&format!("patchelf --print-{what}"), out).stdout)
        .unwrap()
        .trim_end()
        .to_owned()
}

/// `eu-elflint --gnu-ld` messages, with the file name taken out.
pub fn elflint(file: &Path) -> BTreeSet<String> {
    let out = Command::new("eu-elflint")
        .arg("--gnu-ld")
        .arg(file)
        .output()
        .unwrap();
    let name = file.display().to_string();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .map(|l| l.replace(&name, "FILE"))
        .filter(|l| !l.trim().is_empty() && l.trim() != "No errors")
        .collect()
}

/// Asserts that `eu-elflint` finds nothing in `patched` it did not find in
/// `original`.
pub fn assert_no_new_lint(original: &Path, patched: &Path) {
    let before = elflint(original);
    let after = elflint(patched);
    let new: Vec<_> = after.difference(&before).collect();
    assert!(
        new.is_empty(),
        "eu-elflint found new problems in {}: {new:#?}",
        patched.display()
    );
}

/// A stripped copy of `file` (`strip` on a copy).
pub fn stripped_copy(file: &Path, rel_dir: &Path) -> PathBuf {
    let to = rel_dir.join(format!(
        "{}.stripped",
        file.file_name().unwrap().to_str().unwrap()
    ));
    fs::copy(file, &to).unwrap();
    check("strip", Command::new("strip").arg(&to).output().unwrap());
    to
}

/// What `sstrip` does to the section headers: forget them (zero `e_shoff`,
/// `e_shnum`, `e_shstrndx`). Handles every class and byte order.
pub fn drop_section_headers(file: &Path) {
    let mut b = fs::read(file).unwrap();
    let is64 = b[4] == 2;
    let (shoff, shoff_len, shnum) = if is64 {
        (0x28, 8, 0x3c)
    } else {
        (0x20, 4, 0x30)
    };
    b[shoff..shoff + shoff_len].fill(0);
    // e_shnum and e_shstrndx are adjacent.
    b[shnum..shnum + 4].fill(0);
    fs::write(file, b).unwrap();
}

/// The RUNPATH line of `readelf -d`, if any.
pub fn readelf_runpath(file: &Path) -> Option<String> {
    dyn_line(file, "(RUNPATH)", "Library runpath: [")
}

/// The RPATH line of `readelf -d`, if any.
pub fn readelf_rpath(file: &Path) -> Option<String> {
    dyn_line(file, "(RPATH)", "Library rpath: [")
}

/// The SONAME of `readelf -d`, if any.
pub fn readelf_soname(file: &Path) -> Option<String> {
    dyn_line(file, "(SONAME)", "Library soname: [")
}

/// The NEEDED entries of `readelf -d`.
pub fn readelf_needed(file: &Path) -> Vec<String> {
    readelf(&["-d"], file)
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| bracketed(l, "Shared library: ["))
        .collect()
}

/// The interpreter `readelf -l` reports.
pub fn readelf_interp(file: &Path) -> Option<String> {
    readelf(&["-l"], file)
        .lines()
        .find_map(|l| bracketed(l, "[Requesting program interpreter: "))
}

fn dyn_line(file: &Path, tag: &str, prefix: &str) -> Option<String> {
    readelf(&["-d"], file)
        .lines()
        .find(|l| l.contains(tag))
        .and_then(|l| bracketed(l, prefix))
}

fn bracketed(line: &str, prefix: &str) -> Option<String> {
    let start = line.find(prefix)? + prefix.len();
    let end = line.rfind(']')?;
    Some(line[start..end].to_owned())
}

/// The raw dynamic entries (tag, value), parsed by goblin: an oracle
/// independent of the code under test.
pub fn goblin_dynamic(file: &Path) -> Vec<(u64, u64)> {
    let bytes = fs::read(file).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).expect("goblin parses the file");
    elf.dynamic
        .map(|d| d.dyns.iter().map(|e| (e.d_tag, e.d_val)).collect())
        .unwrap_or_default()
}

/// The PT_LOAD headers as (offset, vaddr, filesz, memsz, flags, align).
pub fn loads(file: &Path) -> Vec<(u64, u64, u64, u64, u32, u64)> {
    let bytes = fs::read(file).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).expect("goblin parses the file");
    elf.program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|p| {
            (
                p.p_offset, p.p_vaddr, p.p_filesz, p.p_memsz, p.p_flags, p.p_align,
            )
        })
        .collect()
}

/// Checks the invariants every patched file must keep: PT_LOADs sorted by
/// address, congruent offsets, no overlap after page rounding, PT_PHDR first
/// and inside a PT_LOAD, PT_DYNAMIC inside a writable PT_LOAD.
pub fn assert_layout_invariants(file: &Path, page: u64) {
    let bytes = fs::read(file).unwrap();
    if let Err(problem) = layout_invariants(&bytes, page) {
        panic!("{}: {problem}", file.display());
    }
}

/// The invariants of [`assert_layout_invariants`], on an image in memory:
/// the first one broken, if any.
pub fn layout_invariants(bytes: &[u8], page: u64) -> Result<(), String> {
    use goblin::elf::program_header::*;
    let elf = goblin::elf::Elf::parse(bytes).map_err(|e| format!("goblin: {e}"))?;
    let ph = &elf.program_headers;
    let loads: Vec<_> = ph.iter().filter(|p| p.p_type == PT_LOAD).collect();
    for w in loads.windows(2) {
        if w[0].p_vaddr >= w[1].p_vaddr {
            return Err(format!("PT_LOADs not sorted: {w:?}"));
        }
        let end = (w[0].p_vaddr + w[0].p_memsz).div_ceil(page) * page;
        let start = w[1].p_vaddr / page * page;
        if end > start {
            return Err(format!("PT_LOADs overlap after page rounding: {w:?}"));
        }
    }
    for l in &loads {
        if l.p_offset % page != l.p_vaddr % page {
            return Err(format!("offset/vaddr not congruent: {l:?}"));
        }
        if l.p_align > 1 && l.p_offset % l.p_align != l.p_vaddr % l.p_align {
            return Err(format!("not congruent mod p_align: {l:?}"));
        }
        if l.p_offset + l.p_filesz > bytes.len() as u64 {
            return Err(format!("PT_LOAD past end of file: {l:?}"));
        }
    }
    if let Some(i) = ph.iter().position(|p| p.p_type == PT_PHDR) {
        if i != 0 {
            return Err(format!("PT_PHDR is entry {i}, not the first"));
        }
        let p = &ph[0];
        let size = u64::from(elf.header.e_phnum) * u64::from(elf.header.e_phentsize);
        if p.p_offset != elf.header.e_phoff || p.p_filesz != size {
            return Err(format!(
                "PT_PHDR {p:?} does not describe the table ({:#x}, {size:#x} bytes)",
                elf.header.e_phoff
            ));
        }
        let covered = loads.iter().any(|l| {
            l.p_offset <= p.p_offset
                && p.p_offset + p.p_filesz <= l.p_offset + l.p_filesz
                && p.p_vaddr.wrapping_sub(l.p_vaddr) == p.p_offset - l.p_offset
        });
        if !covered {
            return Err(format!("PT_PHDR not covered by a PT_LOAD: {p:?}"));
        }
    }
    // What the loader reads through an address is what the file holds at
    // the segment's offset.
    for p in ph.iter().filter(|p| p.p_type != PT_LOAD && p.p_filesz > 0) {
        let home = loads
            .iter()
            .find(|l| l.p_vaddr <= p.p_vaddr && p.p_vaddr + p.p_filesz <= l.p_vaddr + l.p_filesz);
        if let Some(l) = home {
            if p.p_offset.wrapping_sub(l.p_offset) != p.p_vaddr - l.p_vaddr {
                return Err(format!(
                    "segment {p:?} has an offset that disagrees with its PT_LOAD {l:?}"
                ));
            }
        }
    }
    if let Some(d) = ph.iter().find(|p| p.p_type == PT_DYNAMIC) {
        let inside = loads.iter().any(|l| {
            l.p_flags & PF_W != 0
                && l.p_vaddr <= d.p_vaddr
                && d.p_vaddr + d.p_memsz <= l.p_vaddr + l.p_memsz
        });
        if !inside {
            return Err(format!("PT_DYNAMIC not inside a writable PT_LOAD: {d:?}"));
        }
    }
    Ok(())
}

/// Whether PT_INTERP comes before every PT_LOAD, as the ELF specification
/// asks (patchelf 0.14's own output does not always keep that).
pub fn interp_precedes_loads(file: &Path) -> bool {
    use goblin::elf::program_header::*;
    let bytes = fs::read(file).unwrap();
    let elf = goblin::elf::Elf::parse(&bytes).expect("goblin parses the file");
    let ph = &elf.program_headers;
    let interp = ph.iter().position(|p| p.p_type == PT_INTERP);
    let first_load = ph.iter().position(|p| p.p_type == PT_LOAD);
    match (interp, first_load) {
        (Some(i), Some(l)) => i < l,
        _ => true,
    }
}

/// File contents and mtime, to check a file was not touched.
pub fn snapshot(file: &Path) -> (Vec<u8>, std::time::SystemTime) {
    (
        fs::read(file).unwrap(),
        fs::metadata(file).unwrap().modified().unwrap(),
    )
}

/// Whether the file still has section headers (`strip` and `patchelf` need
/// them).
pub fn has_section_headers(file: &Path) -> bool {
    let bytes = fs::read(file).unwrap();
    goblin::elf::Elf::parse_header(&bytes).unwrap().e_shoff != 0
}

/// An ELF32 (i386) shared library built from `nolibc.c` with `cc -m32 -c`
/// and `ld -m elf_i386`: no 32-bit libc needed. `ld_flags` go to `ld`.
pub fn elf32_library(d: &Dir, rel: &str, ld_flags: &[&str]) -> PathBuf {
    let obj = d.path(&format!("{rel}.o"));
    fs::create_dir_all(obj.parent().unwrap()).unwrap();
    let src = testdata("nolibc.c");
    let out = Command::new("cc")
        .args(["-m32", "-fPIC", "-O1", "-c"])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .unwrap();
    check("cc -m32 -c", out);
    let lib = d.path(rel);
    let name = lib.file_name().unwrap().to_str().unwrap().to_owned();
    let out = Command::new("ld")
        .args([
            "-m",
            "elf_i386",
            "-shared",
            "--hash-style=both",
            "-soname",
            &name,
        ])
        .args(ld_flags)
        .arg(&obj)
        .arg("-o")
        .arg(&lib)
        .output()
        .unwrap();
    check("ld -m elf_i386", out);
    lib
}

/// (offset, size) of every field of a program header.
pub fn phdr_fields(is64: bool) -> &'static [(usize, usize)] {
    if is64 {
        &[
            (0, 4),
            (4, 4),
            (8, 8),
            (16, 8),
            (24, 8),
            (32, 8),
            (40, 8),
            (48, 8),
        ]
    } else {
        &[
            (0, 4),
            (4, 4),
            (8, 4),
            (12, 4),
            (16, 4),
            (20, 4),
            (24, 4),
            (28, 4),
        ]
    }
}

/// (offset, size) of every field of a section header.
pub fn shdr_fields(is64: bool) -> &'static [(usize, usize)] {
    if is64 {
        &[
            (0, 4),
            (4, 4),
            (8, 8),
            (16, 8),
            (24, 8),
            (32, 8),
            (40, 4),
            (44, 4),
            (48, 8),
            (56, 8),
        ]
    } else {
        &[
            (0, 4),
            (4, 4),
            (8, 4),
            (12, 4),
            (16, 4),
            (20, 4),
            (24, 4),
            (28, 4),
            (32, 4),
            (36, 4),
        ]
    }
}

/// Sizes of a program header and a section header.
pub fn header_sizes(is64: bool) -> (usize, usize) {
    if is64 {
        (56, 64)
    } else {
        (32, 40)
    }
}

/// Converts a little-endian ELF file to big endian: the ELF header, the
/// program and section headers, and the contents of the sections whose
/// layout is known (dynamic, symbols, hash tables, version tables,
/// relocations). Code and notes stay as they are — the result is for
/// parsers and patchers, not for running. `machine` replaces `e_machine`.
pub fn to_big_endian(le: &[u8], machine: Option<u16>) -> Vec<u8> {
    use goblin::elf::section_header::*;
    let elf = goblin::elf::Elf::parse(le).expect("goblin parses the file");
    assert!(elf.little_endian, "already big endian");
    let is64 = elf.is_64;
    let w = if is64 { 8 } else { 4 };
    let mut b = le.to_vec();
    let swap = |b: &mut Vec<u8>, at: usize, n: usize| b[at..at + n].reverse();
    let swap_all = |b: &mut Vec<u8>, at: usize, fields: &[(usize, usize)]| {
        for &(o, n) in fields {
            b[at + o..at + o + n].reverse();
        }
    };
    let le32 = |at: usize| u32::from_le_bytes(le[at..at + 4].try_into().unwrap()) as usize;
    let le16 = |at: usize| u16::from_le_bytes(le[at..at + 2].try_into().unwrap()) as usize;

    b[5] = 2;
    if let Some(m) = machine {
        b[18..20].copy_from_slice(&m.to_le_bytes());
    }
    let ehdr: &[(usize, usize)] = if is64 {
        &[
            (16, 2),
            (18, 2),
            (20, 4),
            (24, 8),
            (32, 8),
            (40, 8),
            (48, 4),
            (52, 2),
            (54, 2),
            (56, 2),
            (58, 2),
            (60, 2),
            (62, 2),
        ]
    } else {
        &[
            (16, 2),
            (18, 2),
            (20, 4),
            (24, 4),
            (28, 4),
            (32, 4),
            (36, 4),
            (40, 2),
            (42, 2),
            (44, 2),
            (46, 2),
            (48, 2),
            (50, 2),
        ]
    };
    swap_all(&mut b, 0, ehdr);
    let (ph, sh) = (phdr_fields(is64), shdr_fields(is64));
    let (phsz, shsz) = header_sizes(is64);
    for i in 0..elf.program_headers.len() {
        swap_all(&mut b, elf.header.e_phoff as usize + i * phsz, ph);
    }
    for i in 0..elf.section_headers.len() {
        swap_all(&mut b, elf.header.e_shoff as usize + i * shsz, sh);
    }
    let sym: &[(usize, usize)] = if is64 {
        &[(0, 4), (6, 2), (8, 8), (16, 8)]
    } else {
        &[(0, 4), (4, 4), (8, 4), (14, 2)]
    };
    for s in &elf.section_headers {
        let (off, size) = (s.sh_offset as usize, s.sh_size as usize);
        match s.sh_type {
            SHT_DYNAMIC | SHT_RELA | SHT_REL => {
                for at in (off..off + size).step_by(w) {
                    swap(&mut b, at, w);
                }
            }
            SHT_DYNSYM | SHT_SYMTAB => {
                let ent = if is64 { 24 } else { 16 };
                for at in (off..off + size).step_by(ent) {
                    swap_all(&mut b, at, sym);
                }
            }
            SHT_HASH => {
                for at in (off..off + size).step_by(4) {
                    swap(&mut b, at, 4);
                }
            }
            SHT_GNU_HASH => {
                let bloom = le32(off + 8);
                for i in 0..4 {
                    swap(&mut b, off + 4 * i, 4);
                }
                for i in 0..bloom {
                    swap(&mut b, off + 16 + i * w, w);
                }
                for at in (off + 16 + bloom * w..off + size).step_by(4) {
                    swap(&mut b, at, 4);
                }
            }
            SHT_GNU_VERSYM => {
                for at in (off..off + size).step_by(2) {
                    swap(&mut b, at, 2);
                }
            }
            SHT_GNU_VERNEED => {
                let mut at = off;
                for _ in 0..s.sh_info {
                    let (cnt, aux, next) = (le16(at + 2), le32(at + 8), le32(at + 12));
                    swap_all(&mut b, at, &[(0, 2), (2, 2), (4, 4), (8, 4), (12, 4)]);
                    let mut a = at + aux;
                    for _ in 0..cnt {
                        let n = le32(a + 12);
                        swap_all(&mut b, a, &[(0, 4), (4, 2), (6, 2), (8, 4), (12, 4)]);
                        a += n;
                    }
                    at += next;
                }
            }
            SHT_GNU_VERDEF => {
                let mut at = off;
                for _ in 0..s.sh_info {
                    let (cnt, aux, next) = (le16(at + 6), le32(at + 12), le32(at + 16));
                    swap_all(
                        &mut b,
                        at,
                        &[(0, 2), (2, 2), (4, 2), (6, 2), (8, 4), (12, 4), (16, 4)],
                    );
                    let mut a = at + aux;
                    for _ in 0..cnt {
                        let n = le32(a + 4);
                        swap_all(&mut b, a, &[(0, 4), (4, 4)]);
                        a += n;
                    }
                    at += next;
                }
            }
            _ => {}
        }
    }
    b
}

/// An error and its causes on one line, as a program would print it.
pub fn message(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}
