//! Every hostile archive of `redist_fixtures::hostile` (what `cargo xtask
//! hostile` writes), unpacked inside a sentinel tree: the expected outcome,
//! nothing outside the output created or changed, and no output at all
//! after a failure.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use redist_fixtures::hostile::{cases, Expect};

/// Every path under `root` with its type, mode and content.
fn snapshot_all(root: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![root.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).unwrap().display().to_string();
            let m = std::fs::symlink_metadata(&p).unwrap();
            use std::os::unix::fs::PermissionsExt;
            let desc = if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", m.permissions().mode())
            } else if m.file_type().is_symlink() {
                format!("link {}", std::fs::read_link(&p).unwrap().display())
            } else {
                format!(
                    "file {:o} {:?}",
                    m.permissions().mode(),
                    std::fs::read(&p).unwrap()
                )
            };
            out.insert(rel, desc);
        }
    }
    out
}

#[test]
fn every_hostile_archive_is_extracted_right_or_refused_and_nothing_leaks() {
    let cases = cases(2_000);
    assert!(cases.len() >= 40, "{} cases", cases.len());
    let mut failures = Vec::new();
    for case in cases {
        let d = Dir::new();
        // The sentinel tree around the output: siblings, the parent's
        // parent, and what a climbing path would reach.
        let work = d.join("a/b/c");
        std::fs::create_dir_all(&work).unwrap();
        for (p, data) in [
            ("a/sentinel", "s1"),
            ("a/b/sentinel", "s2"),
            ("a/b/c/sentinel", "s3"),
        ] {
            std::fs::write(d.join(p), data).unwrap();
        }
        std::fs::create_dir_all(d.join("a/b/share")).unwrap();
        let archive = d.join("a/b/c/archive");
        std::fs::write(&archive, &case.bytes).unwrap();
        let before = snapshot_all(d.path());
        let out = work.join("out");
        let o = unpack(&archive, &out, &["-q", "--layout", "merged"]);
        let mut after = snapshot_all(d.path());
        after.retain(|k, _| !k.starts_with("a/b/c/out"));
        if after != before {
            failures.push(format!("{}: the tree around the output changed", case.name));
        }
        match &case.expect {
            Expect::Refused(why) => {
                if o.status.code() != Some(1) || !stderr(&o).contains(why) {
                    failures.push(format!(
                        "{}: expected refusal with {why:?}, got {:?}: {}",
                        case.name,
                        o.status.code(),
                        stderr(&o)
                    ));
                }
                if out.exists() {
                    failures.push(format!("{}: output left after failure", case.name));
                }
            }
            Expect::Extracted(files) => {
                if !o.status.success() {
                    failures.push(format!("{}: expected success: {}", case.name, stderr(&o)));
                    continue;
                }
                for (p, data) in files {
                    match std::fs::read(out.join(p)) {
                        Ok(got) if &got == data => {}
                        other => failures.push(format!("{}: {p:?}: {other:?}", case.name)),
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn setuid_setgid_sticky_and_world_writable_bits_are_dropped() {
    use std::os::unix::fs::PermissionsExt;
    let case = cases(0)
        .into_iter()
        .find(|c| c.name == "setuid-setgid-sticky-world-writable")
        .unwrap();
    let d = Dir::new();
    let archive = d.join("a.tar");
    std::fs::write(&archive, &case.bytes).unwrap();
    let out = d.join("out");
    assert!(unpack(&archive, &out, &["-q", "--layout", "merged"])
        .status
        .success());
    let mode = std::fs::metadata(out.join("bin/bin/suid"))
        .or_else(|_| std::fs::metadata(out.join("bin/suid")))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o7777, 0o775);
}
