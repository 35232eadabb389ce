//! The library API on its own: progress reporting through the trait, any
//! reader as input, typed errors.

use std::sync::Mutex;

use redist::{unpack, Error, Input, Progress, UnpackOptions, UnsafeRule};
use redist_fixtures::{cudart_like, redist_archive, Compression, Item};

#[derive(Default)]
struct Recorder {
    calls: Mutex<Vec<String>>,
    last: Mutex<u64>,
}

impl Progress for Recorder {
    fn begin(&self, archive: &str, total: Option<u64>) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("begin {archive} {total:?}"));
    }
    fn advance(&self, bytes: u64) {
        let mut last = self.last.lock().unwrap();
        assert!(bytes >= *last, "progress never goes backwards");
        *last = bytes;
    }
    fn stage(&self, name: &str) {
        self.calls.lock().unwrap().push(format!("stage {name}"));
    }
    fn finish(&self) {
        self.calls.lock().unwrap().push("finish".into());
    }
}

#[test]
fn progress_reports_every_compressed_byte_and_the_stages() {
    let dir = tempfile::tempdir().unwrap();
    let archive = cudart_like().write_to(dir.path(), "cudart", Compression::Xz);
    let size = std::fs::metadata(&archive).unwrap().len();
    let rec = Recorder::default();
    let report = unpack(
        Input::Path(archive.clone()),
        &dir.path().join("out"),
        &UnpackOptions::default(),
        &rec,
    )
    .unwrap();
    assert_eq!(
        *rec.calls.lock().unwrap(),
        [
            format!("begin {} Some({size})", archive.display()),
            "stage fixups".into(),
            "stage autopatch".into(),
            "stage publish".into(),
            "finish".into()
        ]
    );
    assert_eq!(*rec.last.lock().unwrap(), size);
    assert_eq!(report.bytes_in, size);
    assert_eq!(report.bytes_decoded, cudart_like().tar().len() as u64);
}

#[test]
fn any_reader_is_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let data = cudart_like().archive(Compression::Gzip);
    let input = Input::Reader {
        label: "in-memory".into(),
        reader: Box::new(std::io::Cursor::new(data)),
        size: None,
    };
    let report = unpack(
        input,
        &dir.path().join("out"),
        &UnpackOptions::default(),
        &redist::NoProgress,
    )
    .unwrap();
    assert_eq!(report.archive, "in-memory");
    assert_eq!(report.elf_files.len(), 2);
}

#[test]
fn unsafe_entries_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let a = redist_archive("x", "1", vec![Item::link("lib/up", "../../../etc")]);
    let input = Input::Reader {
        label: "a".into(),
        reader: Box::new(std::io::Cursor::new(a.tar())),
        size: None,
    };
    let out = dir.path().join("out");
    match unpack(input, &out, &UnpackOptions::default(), &redist::NoProgress) {
        Err(Error::Unsafe {
            entry,
            rule: UnsafeRule::SymlinkEscapes(t),
            ..
        }) => {
            assert_eq!(entry, "x-linux-x86_64-1-archive/lib/up");
            assert_eq!(t, "../../../etc");
        }
        other => panic!("expected an unsafe-entry error, got {other:?}"),
    }
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "no staging directory left"
    );
}

/// `tar` with the same-length `from` in one header name replaced by `to`
/// (bytes the `tar` crate refuses to write), checksum fixed.
fn rename_raw(mut tar: Vec<u8>, from: &[u8], to: &[u8]) -> Vec<u8> {
    let pos = tar.windows(from.len()).position(|w| w == from).unwrap();
    tar[pos..pos + to.len()].copy_from_slice(to);
    let start = pos - pos % 512;
    let mut h = tar::Header::new_old();
    h.as_mut_bytes().copy_from_slice(&tar[start..start + 512]);
    h.set_cksum();
    tar[start..start + 512].copy_from_slice(h.as_bytes());
    tar
}

#[test]
fn listing_outputs_refuses_what_unpacking_refuses() {
    let layout = redist::Layout::builtin(redist::Mode::Split);
    let a = redist_archive("x", "1", vec![Item::file("lib/xx/f", "data")]);
    for (to, want) in [
        (&b"\xff\xfe"[..], UnsafeRule::NonUtf8),
        (b"..", UnsafeRule::ParentComponent),
    ] {
        let tar = rename_raw(a.tar(), b"lib/xx/f", &[b"lib/", to, b"/f"].concat());
        let input = || Input::Reader {
            label: "a".into(),
            reader: Box::new(std::io::Cursor::new(tar.clone())),
            size: None,
        };
        let dir = tempfile::tempdir().unwrap();
        let unpacked = unpack(
            input(),
            &dir.path().join("out"),
            &UnpackOptions::default(),
            &redist::NoProgress,
        );
        let listed = redist::outputs_of(input(), &layout, &redist::NoProgress);
        for (what, r) in [
            ("unpack", unpacked.map(|_| ())),
            ("outputs_of", listed.map(|_| ())),
        ] {
            match r {
                Err(Error::Unsafe { rule, .. }) => assert_eq!(rule, want, "{what}"),
                other => panic!("{what}: expected {want:?}, got {other:?}"),
            }
        }
    }
}

#[test]
fn the_nix_builder_makes_links_between_outputs_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let a = redist_archive(
        "x",
        "1.0",
        vec![
            Item::file("lib/libdemo.so.1", "not ELF"),
            Item::link("bin/libdemo.so", "../lib/libdemo.so.1"),
            Item::link("lib/libdemo.so", "libdemo.so.1"),
            Item::link("include/lib", "../lib"),
        ],
    );
    let src = dir.path().join("x.tar.xz");
    std::fs::write(&src, a.archive(Compression::Xz)).unwrap();
    let store = dir.path().join("store");
    let top = dir.path().join("build");
    std::fs::create_dir_all(&top).unwrap();
    let path = |o: &str| store.join(format!("h-x-{o}"));
    let vars: Vec<(String, String)> = vec![
        ("src".into(), src.display().to_string()),
        ("outputs".into(), "out bin lib include".into()),
        ("out".into(), path("out").display().to_string()),
        ("bin".into(), path("bin").display().to_string()),
        ("lib".into(), path("lib").display().to_string()),
        ("include".into(), path("include").display().to_string()),
        ("NIX_BUILD_TOP".into(), top.display().to_string()),
    ];
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let b = redist::nix::Builder::from_vars(&get).unwrap();
    redist::nix::build(&b, &redist::NoProgress).unwrap();
    let link = |p: std::path::PathBuf| std::fs::read_link(p).unwrap();
    // Across outputs: absolute, into the other store path.
    assert_eq!(
        link(path("bin").join("bin/libdemo.so")),
        path("lib").join("lib/libdemo.so.1")
    );
    assert_eq!(
        link(path("include").join("include/lib")),
        path("lib").join("lib")
    );
    // Within one output: left relative.
    assert_eq!(
        link(path("lib").join("lib/libdemo.so")),
        std::path::PathBuf::from("libdemo.so.1")
    );
    assert_eq!(
        std::fs::read_to_string(path("bin").join("bin/libdemo.so")).unwrap(),
        "not ELF"
    );
}

#[test]
fn a_nix_lib_dep_that_is_not_in_the_build_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let a = redist_archive("x", "1.0", vec![Item::file("lib/libdemo.so.1", "not ELF")]);
    let src = dir.path().join("x.tar.xz");
    std::fs::write(&src, a.archive(Compression::Xz)).unwrap();
    let missing = dir.path().join("store/h-dep-not-an-input");
    let vars: Vec<(String, String)> = vec![
        ("src".into(), src.display().to_string()),
        ("outputs".into(), "out".into()),
        (
            "out".into(),
            dir.path().join("store/h-x").display().to_string(),
        ),
        ("libDeps".into(), missing.display().to_string()),
        ("NIX_BUILD_TOP".into(), dir.path().display().to_string()),
    ];
    let get = |k: &str| vars.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let b = redist::nix::Builder::from_vars(&get).unwrap();
    match redist::nix::build(&b, &redist::NoProgress) {
        Err(Error::MissingDependency(p)) => assert_eq!(p, missing),
        other => panic!("expected MissingDependency, got {other:?}"),
    }
    assert!(!dir.path().join("store/h-x").exists());
}
