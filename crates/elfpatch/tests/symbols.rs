//! Renaming dynamic symbols: the hash tables are rebuilt, the hashed
//! symbols put back in bucket order, their versions and every relocation
//! against them renumbered. The loader judges: a chain of functions that
//! call each other through the PLT must still compute the right values,
//! found by their new names.

mod common;

use std::fs;
use std::process::Command;

use common::*;
use elfpatch::{patch_file, read, Edits};

const N: usize = 120;

fn name(i: usize) -> String {
    format!("chain_{i}")
}

fn renamed(i: usize) -> String {
    format!("renamed_link_number_{i}_of_the_chain")
}

/// `chain_i(x) = chain_{i-1}(x) + 1` through the PLT, so `chain_i(0) == i`.
fn chain_lib(d: &Dir, extra: &[&str]) -> std::path::PathBuf {
    let mut src = String::from("int chain_0(int x) { return x; }\n");
    for i in 1..N {
        src.push_str(&format!(
            "int {}(int x);\nint {}(int x) {{ return {}(x) + 1; }}\n",
            name(i - 1),
            name(i),
            name(i - 1)
        ));
    }
    let c = d.path("chain.c");
    fs::write(&c, src).unwrap();
    let mut args = vec!["-shared", "-fPIC", "-O0", c.to_str().unwrap()];
    args.extend_from_slice(extra);
    d.cc("lib/libchain.so", &args)
}

/// A program that looks every function up by `names[i]` and checks
/// `f(0) == i`.
fn checker(d: &Dir, names: &[String]) -> std::path::PathBuf {
    let mut src = String::from(
        "#include <dlfcn.h>\n#include <stdio.h>\nint main(int c, char **v) {\n\
         void *h = dlopen(v[1], RTLD_NOW);\n\
         if (!h) { printf(\"dlopen: %s\\n\", dlerror()); return 1; }\n\
         int (*f)(int);\n",
    );
    for (i, n) in names.iter().enumerate() {
        src.push_str(&format!(
            "f = (int (*)(int))dlsym(h, \"{n}\");\n\
             if (!f) {{ printf(\"missing {n}\\n\"); return 1; }}\n\
             if (f(0) != {i}) {{ printf(\"{n}(0) = %d, not {i}\\n\", f(0)); return 1; }}\n"
        ));
    }
    src.push_str("printf(\"ok\\n\"); return 0; }\n");
    let c = d.path("check.c");
    fs::write(&c, src).unwrap();
    d.cc("bin/check", &[c.to_str().unwrap(), "-ldl"])
}

fn check(exe: &std::path::Path, lib: &std::path::Path) -> String {
    let o = Command::new(exe).arg(lib).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn rename_every_third(lib: &std::path::Path) -> Vec<String> {
    let edits = Edits {
        rename_symbols: (0..N)
            .filter(|i| i % 3 == 0)
            .map(|i| (name(i), renamed(i)))
            .collect(),
        ..Default::default()
    };
    assert!(patch_file(lib, &edits).unwrap().changed);
    (0..N)
        .map(|i| if i % 3 == 0 { renamed(i) } else { name(i) })
        .collect()
}

#[test]
fn renamed_symbols_are_found_and_plt_calls_still_reach_them() {
    for (flavour, flags) in [
        ("gnu", &["-Wl,--hash-style=gnu"][..]),
        ("sysv", &["-Wl,--hash-style=sysv"][..]),
        ("both", &["-Wl,--hash-style=both"][..]),
    ] {
        let d = Dir::new();
        let lib = chain_lib(&d, flags);
        let original: Vec<String> = (0..N).map(name).collect();
        assert_eq!(check(&checker(&d, &original), &lib), "ok\n", "{flavour}");
        let names = rename_every_third(&lib);
        let d2 = Dir::new();
        assert_eq!(
            check(&checker(&d2, &names), &lib),
            "ok\n",
            "{flavour}: renamed"
        );
        // The old names are gone from the lookup.
        let d3 = Dir::new();
        let out = check(&checker(&d3, &original), &lib);
        assert!(out.starts_with("missing chain_0"), "{flavour}: {out}");
        assert!(read(&lib).is_ok());
        assert_no_new_lint(&chain_lib(&Dir::new(), flags), &lib);
    }
}

#[test]
fn renaming_nothing_changes_nothing() {
    let d = Dir::new();
    let lib = chain_lib(&d, &[]);
    let before = fs::read(&lib).unwrap();
    let edits = Edits {
        rename_symbols: vec![("no_such_symbol".into(), "x".into())],
        ..Default::default()
    };
    assert!(!patch_file(&lib, &edits).unwrap().changed);
    assert_eq!(fs::read(&lib).unwrap(), before);
}
