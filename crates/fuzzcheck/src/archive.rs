//! `archive_policy`: the path and link policy of unpacking, end to end.
//!
//! The fuzzer's bytes become a list of tar entries (names built from
//! components like `..`, `.`, an absolute path into the sentinel, empty
//! ones and raw bytes; files, directories, symlinks, hard links, fifos and
//! devices; long names as GNU or PAX records; any mode), written with raw
//! headers, and unpacked by `redist::unpack` into `ROOT/out` beside a
//! sentinel `ROOT/outside/secret`. Whatever the archive, either
//!
//! - the unpack fails, and `ROOT` holds exactly what it held before; or
//! - it succeeds, and `ROOT` holds the sentinel unchanged and `out`, in
//!   which every entry is a regular file, a directory or a symlink whose
//!   target stays inside `out`, with no setuid, setgid, sticky or
//!   world-writable bit.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use arbitrary::{Arbitrary, Unstructured};
use redist::{Input, Layout, Limits, Mode, NoProgress, UnpackOptions};
use redist_fixtures::hostile::RawTar;

/// One path component.
#[derive(Arbitrary, Debug)]
enum Part {
    Top,
    Lib,
    Include,
    Bin,
    A,
    B,
    Dot,
    DotDot,
    Empty,
    /// The sentinel directory, absolute (a name or link target that is
    /// absolute points at something this check watches).
    Outside,
    Raw(Vec<u8>),
}

#[derive(Arbitrary, Debug)]
enum Kind {
    File(Vec<u8>),
    Dir,
    Symlink(Vec<Part>),
    Hardlink(Vec<Part>),
    Fifo,
    CharDevice,
    Raw(u8),
}

#[derive(Arbitrary, Debug)]
enum LongName {
    /// In the header (cut at 100 bytes).
    Header,
    /// A GNU `L` record before the entry.
    Gnu,
    /// A PAX `path` record before the entry.
    Pax,
}

#[derive(Arbitrary, Debug)]
struct Entry {
    name: Vec<Part>,
    kind: Kind,
    mode: u16,
    long: LongName,
}

#[derive(Arbitrary, Debug)]
struct Archive {
    entries: Vec<Entry>,
    merged: bool,
}

fn path(parts: &[Part], outside: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b'/');
        }
        out.extend_from_slice(match p {
            Part::Top => b"x-1.0",
            Part::Lib => b"lib",
            Part::Include => b"include",
            Part::Bin => b"bin",
            Part::A => b"a",
            Part::B => b"b",
            Part::Dot => b".",
            Part::DotDot => b"..",
            Part::Empty => b"",
            Part::Outside => outside.as_os_str().as_encoded_bytes(),
            Part::Raw(r) => r,
        });
    }
    out
}

fn build(archive: &Archive, outside: &Path) -> Vec<u8> {
    let mut tar = RawTar::default();
    for e in &archive.entries {
        let name = path(&e.name, outside);
        let (kind, data, link) = match &e.kind {
            Kind::File(d) => (b'0', d.clone(), vec![]),
            Kind::Dir => (b'5', vec![], vec![]),
            Kind::Symlink(t) => (b'2', vec![], path(t, outside)),
            Kind::Hardlink(t) => (b'1', vec![], path(t, outside)),
            Kind::Fifo => (b'6', vec![], vec![]),
            Kind::CharDevice => (b'3', vec![], vec![]),
            Kind::Raw(k) => (*k, vec![], vec![]),
        };
        tar = match e.long {
            LongName::Header => tar,
            LongName::Gnu => {
                let mut n = name.clone();
                n.push(0);
                tar.entry(b"././@LongLink", b'L', &n, b"", 0o644)
            }
            LongName::Pax => tar.pax(&[("path", &name)]),
        };
        tar = tar.entry(&name, kind, &data, &link, u32::from(e.mode) & 0o7777);
    }
    tar.end()
}

/// Every entry below `dir` (not following links), sorted.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap_or_else(|e| panic!("{}: {e}", d.display())) {
            let p = e.unwrap().path();
            if fs::symlink_metadata(&p).unwrap().is_dir() {
                stack.push(p.clone());
            }
            out.push(p);
        }
    }
    out.sort();
    out
}

/// `link`'s target, resolved lexically from its directory, stays in `out`.
fn inside(out: &Path, link: &Path, target: &Path) -> bool {
    if target.is_absolute() {
        return false;
    }
    let mut at: Vec<Component> = link
        .parent()
        .unwrap()
        .strip_prefix(out)
        .unwrap()
        .components()
        .collect();
    for c in target.components() {
        match c {
            Component::ParentDir => {
                if at.pop().is_none() {
                    return false;
                }
            }
            Component::CurDir => {}
            c => at.push(c),
        }
    }
    true
}

/// The property; panics with what broke.
pub fn check(data: &[u8]) {
    let Ok(archive) = Archive::arbitrary_take_rest(Unstructured::new(data)) else {
        return;
    };
    let tmp = tempfile::Builder::new()
        .prefix("fuzz-archive-")
        .tempdir_in(scratch())
        .unwrap();
    let root = tmp.path();
    let outside = root.join("outside");
    fs::create_dir(&outside).unwrap();
    fs::write(outside.join("secret"), b"secret").unwrap();
    let bytes = build(&archive, &outside);
    let out = root.join("out");
    let opts = UnpackOptions {
        layout: Layout::builtin(if archive.merged {
            Mode::Merged
        } else {
            Mode::Split
        }),
        decoder_threads: 1,
        autopatch: None,
        durable: false,
        limits: Limits {
            max_bytes: 64 << 20,
            ..Limits::default()
        },
        ..UnpackOptions::default()
    };
    let input = Input::Reader {
        label: "fuzz.tar".into(),
        size: Some(bytes.len() as u64),
        reader: Box::new(std::io::Cursor::new(bytes)),
    };
    let result = redist::unpack(input, &out, &opts, &NoProgress);
    assert_eq!(
        fs::read(outside.join("secret")).unwrap(),
        b"secret",
        "the sentinel changed"
    );
    assert_eq!(
        walk(&outside),
        vec![outside.join("secret")],
        "written outside"
    );
    let top: Vec<PathBuf> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    match result {
        Err(_) => assert_eq!(top, vec![outside.clone()], "a failed unpack left {top:?}"),
        Ok(_) => {
            let mut want = vec![out.clone(), outside.clone()];
            want.sort();
            let mut top = top;
            top.sort();
            assert_eq!(top, want, "beside the output");
            for p in walk(&out) {
                let meta = fs::symlink_metadata(&p).unwrap();
                let t = meta.file_type();
                if t.is_symlink() {
                    let target = fs::read_link(&p).unwrap();
                    assert!(
                        inside(&out, &p, &target),
                        "{} -> {} leaves the output",
                        p.display(),
                        target.display()
                    );
                    // Followed for real, through every link on the way.
                    if let Ok(real) = fs::canonicalize(&p) {
                        assert!(
                            real.starts_with(fs::canonicalize(&out).unwrap()),
                            "{} resolves to {}",
                            p.display(),
                            real.display()
                        );
                    }
                } else {
                    assert!(t.is_file() || t.is_dir(), "{} is {t:?}", p.display());
                    let mode = meta.permissions().mode();
                    assert_eq!(mode & 0o7002, 0, "{} has mode {mode:o}", p.display());
                }
            }
        }
    }
}

/// Where each run unpacks: a tmpfs when there is one.
fn scratch() -> PathBuf {
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        shm.to_owned()
    } else {
        std::env::temp_dir()
    }
}
