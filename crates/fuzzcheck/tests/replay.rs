//! Every seed, and every input a fuzzer once failed on
//! (`fuzz/regressions/<target>/`), through the target's property. Runs on
//! stable with the rest of the suite; `cargo xtask fuzz` is what explores.

use std::fs;
use std::path::Path;

use redist_fuzzcheck::{seeds::seeds, TARGETS};

fn regressions(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/regressions")
        .join(target);
    let Ok(rd) = fs::read_dir(&dir) else {
        return vec![];
    };
    let mut v: Vec<_> = rd
        .map(|e| {
            let p = e.unwrap().path();
            (p.display().to_string(), fs::read(&p).unwrap())
        })
        .collect();
    v.sort();
    v
}

fn replay(target: &str) {
    let check = TARGETS.iter().find(|(t, _)| *t == target).unwrap().1;
    let inputs: Vec<_> = seeds(target)
        .into_iter()
        .chain(regressions(target))
        .collect();
    assert!(!inputs.is_empty());
    for (name, bytes) in inputs {
        eprintln!("{target}: {name}");
        check(&bytes);
    }
}

#[test]
fn elf_edit() {
    replay("elf_edit");
}

#[test]
fn archive_policy() {
    replay("archive_policy");
}

#[test]
fn manifest() {
    replay("manifest");
}

#[test]
fn rewriters() {
    replay("rewriters");
}

#[test]
fn location() {
    replay("location");
}

/// The seeds do reach the interesting paths: the ELF seeds are edited,
/// the manifests parse, the profile and pkg-config file are rewritten.
#[test]
fn seeds_exercise_the_code() {
    let edited = seeds("elf_edit")
        .iter()
        .filter(|(_, b)| elfpatch::read_bytes(&b[4..]).is_ok())
        .count();
    assert!(edited >= 40, "{edited} ELF seeds readable");
    for (name, text) in seeds("manifest") {
        redist::Manifest::parse(std::str::from_utf8(&text).unwrap(), &name).unwrap();
    }
}
