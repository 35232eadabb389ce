//! `cargo bench -p elfpatch`: the cost of one RUNPATH edit does not grow
//! with file size.
//!
//! Shared libraries of 100 KiB, 10 MiB and 100 MiB (a `.data` array of that
//! size, compiled with `cc` once per run) get a RUNPATH edit that alternates
//! between a long and a short value, so each iteration plans and writes a
//! real change (the long one goes to the tail, the short one fits in place
//! or reuses the tail). The file is edited in place: what is measured is
//! `read` (header, program headers, dynamic section, string table), plan and
//! `pwrite`, never a copy of the file. The comparison against Debian's
//! `patchelf` lives in `cargo xtask bench patch`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use elfpatch::{Edits, RunpathEdit};

fn main() {
    divan::main();
}

const SIZES: &[usize] = &[100 << 10, 10 << 20, 100 << 20];

/// Work directory kept for the whole run; fixtures compiled once per size.
fn work() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("tempdir"))
        .path()
}

fn library(bytes: usize) -> PathBuf {
    let dir = work();
    let lib = dir.join(format!("libbig{bytes}.so"));
    if lib.exists() {
        return lib;
    }
    let src = dir.join(format!("big{bytes}.c"));
    std::fs::write(
        &src,
        format!("char big_data[{bytes}] = {{1}};\nint big_first(void) {{ return big_data[0]; }}\n"),
    )
    .expect("write C source");
    let status = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&lib)
        .arg(&src)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc could not build {}", lib.display());
    lib
}

fn runpath(long: bool) -> Edits {
    let value = if long {
        format!("/{}", "r".repeat(199))
    } else {
        "$ORIGIN".to_owned()
    };
    Edits {
        runpath: RunpathEdit::Set(value),
        ..Default::default()
    }
}

#[divan::bench(args = SIZES, sample_count = 50)]
fn set_runpath(bencher: divan::Bencher, bytes: usize) {
    let lib = library(bytes);
    let len = std::fs::metadata(&lib).expect("stat").len();
    let mut long = false;
    bencher
        .with_inputs(|| {
            long = !long;
            runpath(long)
        })
        .bench_local_refs(|edits| {
            let outcome = elfpatch::patch_file(&lib, edits).expect("patch");
            assert!(outcome.changed);
        });
    // Alternating edits reuse the tail: the file grew by a few pages at most.
    let grown = std::fs::metadata(&lib).expect("stat").len() - len;
    assert!(grown <= 4 * 4096, "{} grew by {grown} bytes", lib.display());
}

#[divan::bench(args = SIZES, sample_count = 50)]
fn read(bencher: divan::Bencher, bytes: usize) {
    let lib = library(bytes);
    bencher.bench(|| elfpatch::read(&lib).expect("read"));
}
