//! `cargo xtask demo`: the main job on a mirror built from our own fixtures
//! (real tar.xz archives, real ELF files from `cc`, a manifest with real
//! sha256s): list it, install three components into a prefix, run a program
//! from the prefix, install again into a second prefix (from the store of
//! unpacked trees), and unpack one archive into split outputs.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use redist_fixtures::mirror;

use crate::{build_release, root, sh, Result};

pub fn run(_args: &[String]) -> Result {
    let release = build_release(&["redist-cli"])?;
    let redist = release.join("redist");
    let demo = root().join("target/demo");
    let _ = fs::remove_dir_all(&demo);
    let mirror_dir = demo.join("mirror");
    let mut components = mirror::demo_components();
    components.push(mirror::app_component());
    components.push(mirror::libs_component("comp_lib"));
    let manifest = mirror::write(&mirror_dir, "demo", &components);
    let cache = demo.join("cache");
    let step = |what: &str, args: &[&std::ffi::OsStr]| -> Result {
        let shown: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        println!("\n# {what}\n$ redist {}", shown.join(" "));
        sh(Command::new(&redist)
            .args(args)
            .env("REDIST_CACHE_DIR", &cache))
    };
    let m = manifest.as_os_str();
    step(
        "what the manifest offers",
        &["list".as_ref(), "--manifest".as_ref(), m],
    )?;
    let prefix: PathBuf = demo.join("prefix");
    let install = |p: &Path| -> Vec<std::ffi::OsString> {
        ["install", "--manifest"]
            .iter()
            .map(Into::into)
            .chain([m.to_owned()])
            .chain(
                ["comp_app", "comp_lib", "cuda_cudart", "--prefix"]
                    .iter()
                    .map(Into::into),
            )
            .chain([p.as_os_str().to_owned()])
            .collect()
    };
    let args = install(&prefix);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    step(
        "verify, unpack, merge and link three components into a prefix",
        &args,
    )?;
    let app = prefix.join("bin/app");
    println!(
        "\n# a program from the prefix finds its libraries (RUNPATH $ORIGIN/../lib)\n$ {}",
        app.display()
    );
    sh(Command::new(&app).env_remove("LD_LIBRARY_PATH"))?;
    let again = install(&demo.join("prefix2"));
    let again: Vec<&std::ffi::OsStr> = again.iter().map(|a| a.as_os_str()).collect();
    step(
        "the same into a second prefix: linked from the store, nothing decoded",
        &again,
    )?;
    let archive = mirror_dir.join(mirror::relative_path("cuda_cudart", "12.9.79"));
    let out = demo.join("cuda_cudart");
    step(
        "one archive into split outputs (bin, lib, static, dev, include, …)",
        &[
            "unpack".as_ref(),
            archive.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "-q".as_ref(),
        ],
    )?;
    println!("$ tree {}", out.display());
    print_tree(&out, "");
    Ok(())
}

fn print_tree(dir: &Path, indent: &str) {
    let mut entries: Vec<_> = fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok()).collect())
        .unwrap_or_default();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let name = e.file_name().to_string_lossy().into_owned();
        match fs::read_link(&path) {
            Ok(target) => println!("{indent}{name} -> {}", target.display()),
            Err(_) if path.is_dir() => {
                println!("{indent}{name}/");
                print_tree(&path, &format!("{indent}  "));
            }
            Err(_) => println!("{indent}{name}"),
        }
    }
}
