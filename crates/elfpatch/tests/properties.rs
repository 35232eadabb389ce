//! Random sequences of edits, applied one after the other with
//! `patch_bytes` to real fixtures (executables and libraries, with and
//! without section headers, ELF32, big endian).
//!
//! After every step the image must parse again, read back exactly what a
//! model of the edits predicts, keep the layout invariants (PT_LOADs sorted
//! and disjoint after page rounding, `p_offset ≡ p_vaddr`, PT_PHDR first and
//! mapped, `.dynamic` writable), stay within a bounded size, and be left
//! byte-identical by an edit that sets the values it already has. Finally
//! the last file of a few sequences is run by the loader.

mod common;

use std::fs;
use std::path::Path;
use std::sync::OnceLock;

use common::*;
use elfpatch::{patch_bytes, read_bytes, Edits, Info, RunpathEdit};
use proptest::prelude::*;
use proptest::sample::select;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};

/// The fixtures, built once per test process.
struct Fixture {
    name: &'static str,
    bytes: Vec<u8>,
    /// Whether it has a `PT_INTERP` to edit.
    exe: bool,
}

fn fixtures() -> &'static [Fixture] {
    static FIXTURES: OnceLock<Vec<Fixture>> = OnceLock::new();
    FIXTURES.get_or_init(|| {
        let d = Dir::new();
        d.greet_lib("lib/libgreet.so", &[]);
        let lib = |name: &'static str, flags: &[&str], sstrip: bool| {
            let f = d.greet_lib(&format!("{name}/libgreet.so"), flags);
            if sstrip {
                drop_section_headers(&f);
            }
            Fixture {
                name,
                bytes: fs::read(f).unwrap(),
                exe: false,
            }
        };
        let exe = |name: &'static str, flags: &[&str], sstrip: bool| {
            let f = d.main_exe(&format!("bin/{name}"), flags);
            if sstrip {
                drop_section_headers(&f);
            }
            Fixture {
                name,
                bytes: fs::read(f).unwrap(),
                exe: true,
            }
        };
        let plain = lib("lib", &[], false);
        let early = Fixture {
            name: "lib-shifted-for-its-program-headers",
            bytes: fs::read(d.early_rodata_lib("early/libgreet.so", &[])).unwrap(),
            exe: false,
        };
        let big_endian = Fixture {
            name: "lib-big-endian",
            bytes: to_big_endian(&plain.bytes, None),
            exe: false,
        };
        let elf32 = Fixture {
            name: "elf32-lib",
            bytes: fs::read(elf32_library(
                &d,
                "elf32/libbump.so",
                &["-rpath", "/opt/lib32"],
            ))
            .unwrap(),
            exe: false,
        };
        vec![
            plain,
            lib(
                "lib-rpath",
                &["-Wl,-rpath,/opt/old,--disable-new-dtags"],
                false,
            ),
            lib("lib-64k-pages", &["-Wl,-z,max-page-size=65536"], false),
            lib("lib-without-section-headers", &[], true),
            lib("lib-sysv-hash", &["-Wl,--hash-style=sysv"], false),
            lib("lib-noseparate-code", &["-Wl,-z,noseparate-code"], false),
            early,
            big_endian,
            elf32,
            exe(
                "exe-pie",
                &["-Wl,-rpath,/opt/old,--enable-new-dtags"],
                false,
            ),
            exe("exe-no-pie", &["-no-pie"], false),
            exe("exe-pie-without-section-headers", &[], true),
            exe(
                "exe-no-pie-noseparate-code",
                &["-no-pie", "-Wl,-z,noseparate-code"],
                false,
            ),
            exe("exe-no-build-id", &["-Wl,--build-id=none"], false),
        ]
    })
}

fn fixture(name: &str) -> &'static Fixture {
    fixtures().iter().find(|f| f.name == name).unwrap()
}

const PAGE: u64 = 4096;

/// Libraries the sequences add, remove and rename; never the ones the
/// fixtures need, so the final files still run.
const POOL: &[&str] = &[
    "libextra0.so",
    "libextra1.so",
    "libextra2.so",
    "libextra3.so",
    "libextra-with-a-much-longer-file-name-than-the-others-0.so",
    "libextra-with-a-much-longer-file-name-than-the-others-1.so",
];

const CHARS: &[char] = &['a', 'b', 'z', '0', '9', '_', '-', '.', '/', '$'];

/// A string of `CHARS` with a length in `len`.
fn text(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    prop::collection::vec(select(CHARS), len).prop_map(|c| c.into_iter().collect())
}

/// A colon-separated list of 0 to 5 directories, absolute or
/// `$ORIGIN`-relative, up to ~450 bytes.
fn path_list() -> impl Strategy<Value = String> {
    let dir = prop_oneof![
        3 => text(0..80).prop_map(|s| format!("/{s}")),
        1 => text(0..10).prop_map(|s| format!("$ORIGIN/{s}")),
    ];
    prop::collection::vec(dir, 0..6).prop_map(|dirs| dirs.join(":"))
}

fn runpath_edit() -> impl Strategy<Value = RunpathEdit> {
    prop_oneof![
        2 => Just(RunpathEdit::Keep),
        4 => path_list().prop_map(RunpathEdit::Set),
        2 => path_list().prop_map(RunpathEdit::Add),
        1 => Just(RunpathEdit::Remove),
        // No random directory holds a needed library: only the relative
        // entries stay.
        1 => Just(RunpathEdit::Shrink { allowed_prefixes: Vec::new() }),
    ]
}

fn pool_name() -> impl Strategy<Value = String> {
    select(POOL).prop_map(str::to_owned)
}

/// One step: any combination of edits, planned together.
fn edits(exe: bool) -> impl Strategy<Value = Edits> {
    let interp = if exe {
        prop::option::weighted(0.3, text(1..200).prop_map(|s| format!("/{s}"))).boxed()
    } else {
        Just(None).boxed()
    };
    (
        runpath_edit(),
        prop::bool::weighted(0.15),
        prop::collection::vec(pool_name(), 0..4),
        prop::collection::vec(pool_name(), 0..3),
        prop::collection::vec((pool_name(), pool_name()), 0..2),
        prop::option::weighted(0.3, text(1..120)),
        interp,
        prop::option::weighted(0.1, select(&[4096u64, 16384, 65536][..])),
    )
        .prop_map(
            |(
                runpath,
                force_rpath,
                add_needed,
                remove_needed,
                replace_needed,
                soname,
                interpreter,
                page_size,
            )| {
                Edits {
                    interpreter,
                    runpath,
                    force_rpath,
                    add_needed,
                    remove_needed,
                    replace_needed,
                    soname,
                    page_size,
                    ..Default::default()
                }
            },
        )
}

fn sequence(exe: bool) -> impl Strategy<Value = Vec<Edits>> {
    prop::collection::vec(edits(exe), 1..8)
}

fn split_path(s: &str) -> Vec<&str> {
    if s.is_empty() {
        Vec::new()
    } else {
        s.split(':').collect()
    }
}

/// What `read_bytes` must report after each step, following the documented
/// semantics of [`Edits`] (which are patchelf's).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Model {
    runpath: Option<String>,
    rpath: Option<String>,
    needed: Vec<String>,
    soname: Option<String>,
    interpreter: Option<String>,
}

impl Model {
    fn of(info: &Info) -> Model {
        Model {
            runpath: info.runpath.clone(),
            rpath: info.rpath.clone(),
            needed: info.needed.clone(),
            soname: info.soname.clone(),
            interpreter: info.interpreter.clone(),
        }
    }

    fn apply(&mut self, e: &Edits) {
        for (old, new) in &e.replace_needed {
            for n in self.needed.iter_mut().filter(|n| *n == old) {
                n.clone_from(new);
            }
        }
        self.needed.retain(|n| !e.remove_needed.contains(n));
        let mut added: Vec<String> = Vec::new();
        for n in &e.add_needed {
            if !self.needed.contains(n) && !added.contains(n) {
                added.push(n.clone());
            }
        }
        added.append(&mut self.needed);
        self.needed = added;
        if let Some(s) = &e.soname {
            self.soname = Some(s.clone());
        }
        if let Some(i) = &e.interpreter {
            self.interpreter = Some(i.clone());
        }
        self.apply_runpath(e);
    }

    fn apply_runpath(&mut self, e: &Edits) {
        let current = self.runpath.clone().or_else(|| self.rpath.clone());
        let new = match &e.runpath {
            RunpathEdit::Keep => return,
            RunpathEdit::Shrink { .. } => {
                let Some(old) = &current else { return };
                let kept: Vec<&str> = split_path(old)
                    .into_iter()
                    .filter(|d| !d.starts_with('/'))
                    .collect();
                kept.join(":")
            }
            RunpathEdit::Remove => {
                self.runpath = None;
                self.rpath = None;
                return;
            }
            RunpathEdit::Set(s) => s.clone(),
            RunpathEdit::Add(s) => {
                if split_path(s).is_empty() {
                    return;
                }
                let old = current.clone().unwrap_or_default();
                let mut parts = split_path(&old);
                for p in split_path(s) {
                    if !parts.contains(&p) {
                        parts.push(p);
                    }
                }
                parts.join(":")
            }
        };
        if current.unwrap_or_default() == new {
            // patchelf 0.19: the tag still converts.
            match (e.force_rpath, self.runpath.is_some(), self.rpath.is_some()) {
                (false, false, true) => self.runpath = self.rpath.take(),
                (true, true, _) => self.rpath = self.runpath.take(),
                _ => {}
            }
            return;
        }
        match (e.force_rpath, self.runpath.is_some(), self.rpath.is_some()) {
            (false, true, has_rpath) => {
                self.runpath = Some(new.clone());
                if has_rpath {
                    self.rpath = Some(new);
                }
            }
            (false, false, _) => {
                self.rpath = None;
                self.runpath = Some(new);
            }
            (true, _, _) => {
                self.runpath = None;
                self.rpath = Some(new);
            }
        }
    }
}

/// Total bytes of the strings the file must hold now.
fn string_bytes(m: &Model) -> u64 {
    let opt = |s: &Option<String>| s.as_ref().map_or(0, |s| s.len() as u64 + 1);
    opt(&m.runpath)
        + opt(&m.rpath)
        + opt(&m.soname)
        + opt(&m.interpreter)
        + m.needed.iter().map(|n| n.len() as u64 + 1).sum::<u64>()
}

/// The largest `p_align` of the PT_LOADs (how far a new segment may be
/// pushed for alignment).
fn max_align(bytes: &[u8]) -> u64 {
    goblin::elf::Elf::parse(bytes)
        .unwrap()
        .program_headers
        .iter()
        .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
        .map(|p| p.p_align)
        .fold(PAGE, u64::max)
}

/// Applies `steps` to `fix`, checking every property after each one;
/// returns the final image.
fn run_sequence(fix: &Fixture, steps: &[Edits]) -> Result<Vec<u8>, TestCaseError> {
    let orig = &fix.bytes;
    let info = read_bytes(orig).unwrap();
    let mut model = Model::of(&info);
    let orig_strings = string_bytes(&model);
    let mut align = max_align(orig);
    let mut bytes = orig.clone();
    for (i, e) in steps.iter().enumerate() {
        align = align.max(e.page_size.unwrap_or(PAGE));
        let out = patch_bytes(&bytes, e);
        prop_assert!(out.is_ok(), "{} step {i}: {:?}", fix.name, out.err());
        bytes = out.unwrap();
        model.apply(e);

        let info = read_bytes(&bytes);
        prop_assert!(info.is_ok(), "{} step {i}: {:?}", fix.name, info.err());
        prop_assert_eq!(
            Model::of(&info.unwrap()),
            model.clone(),
            "{} step {}",
            fix.name,
            i
        );
        let layout = layout_invariants(&bytes, PAGE);
        prop_assert!(layout.is_ok(), "{} step {i}: {:?}", fix.name, layout.err());

        // One tail, rebuilt: the file holds at most the original, a copy of
        // the tables that moved and today's strings, plus alignment (and a
        // shift by a page, once, when the program headers cannot grow).
        let bound = 2 * orig.len() as u64 / 3
            + orig.len() as u64
            + 3 * align
            + 2 * (orig_strings + string_bytes(&model))
            + 4096;
        prop_assert!(
            (bytes.len() as u64) <= bound,
            "{} step {i}: {} bytes, more than {bound}",
            fix.name,
            bytes.len()
        );

        // Setting the values the file has changes nothing.
        let same = Edits {
            runpath: match (&model.runpath, &model.rpath) {
                (Some(r), _) | (None, Some(r)) => RunpathEdit::Set(r.clone()),
                (None, None) => RunpathEdit::Keep,
            },
            // The tag is part of the value: a DT_RPATH stays one only when forced.
            force_rpath: model.runpath.is_none() && model.rpath.is_some(),
            soname: model.soname.clone(),
            interpreter: model.interpreter.clone(),
            add_needed: model.needed.clone(),
            ..Default::default()
        };
        let again = patch_bytes(&bytes, &same);
        prop_assert!(
            again.as_ref().is_ok_and(|a| *a == bytes),
            "{} step {i}: a no-op edit changed the file",
            fix.name
        );
    }
    Ok(bytes)
}

/// 64 cases per property unless `PROPTEST_CASES` asks for more.
fn config() -> Config {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64);
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn library_edit_sequences_keep_values_and_layout_valid(
        which in select(&[
            "lib",
            "lib-rpath",
            "lib-64k-pages",
            "lib-without-section-headers",
            "lib-sysv-hash",
            "lib-noseparate-code",
            "lib-shifted-for-its-program-headers",
        ][..]),
        steps in sequence(false),
    ) {
        run_sequence(fixture(which), &steps)?;
    }

    #[test]
    fn executable_edit_sequences_keep_values_and_layout_valid(
        which in select(&[
            "exe-pie",
            "exe-no-pie",
            "exe-pie-without-section-headers",
            "exe-no-pie-noseparate-code",
            "exe-no-build-id",
        ][..]),
        steps in sequence(true),
    ) {
        run_sequence(fixture(which), &steps)?;
    }

    #[test]
    fn elf32_and_big_endian_edit_sequences_keep_values_and_layout_valid(
        which in select(&["elf32-lib", "lib-big-endian"][..]),
        steps in sequence(false),
    ) {
        run_sequence(fixture(which), &steps)?;
    }
}

/// The last step of a loader check: a RUNPATH and interpreter the loader can
/// use, whatever the sequence left.
fn make_runnable(libdir: &Path, exe: bool) -> Edits {
    Edits {
        runpath: RunpathEdit::Set(format!(
            "/nonexistent/after/random/edits:{}",
            libdir.display()
        )),
        interpreter: exe.then(|| LOADER.to_owned()),
        ..Default::default()
    }
}

#[test]
fn final_files_of_random_sequences_still_run_and_dlopen() {
    let d = Dir::new();
    d.greet_lib("lib/libgreet.so", &[]);
    for name in POOL {
        d.greet_lib(&format!("lib/{name}"), &[]);
    }
    let libdir = d.path("lib");
    let expected = "hello from libgreet\n";
    let mut runner = TestRunner::deterministic();
    for name in [
        "exe-pie",
        "exe-no-pie",
        "exe-pie-without-section-headers",
        "lib",
        "lib-64k-pages",
        "lib-without-section-headers",
        "lib-shifted-for-its-program-headers",
    ] {
        let fix = fixture(name);
        for n in 0..3 {
            let mut steps = sequence(fix.exe).new_tree(&mut runner).unwrap().current();
            steps.push(make_runnable(&libdir, fix.exe));
            let bytes = run_sequence(fix, &steps).unwrap_or_else(|e| panic!("{name}: {e}"));
            let file = d.path(&format!("final/{name}-{n}"));
            fs::create_dir_all(file.parent().unwrap()).unwrap();
            fs::write(&file, &bytes).unwrap();
            if fix.exe {
                use std::os::unix::fs::PermissionsExt;
                fs::set_permissions(&file, fs::Permissions::from_mode(0o755)).unwrap();
                assert_eq!(
                    runs(&file).as_deref(),
                    Ok(expected),
                    "{name} after {steps:#?}"
                );
            } else {
                d.assert_dlopens(&file);
            }
        }
    }
}
