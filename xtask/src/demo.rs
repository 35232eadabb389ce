//! `cargo xtask demo`: a redist-shaped mirror built from our own fixtures
//! (real tar.xz archives, real ELF files from `cc`), then unpacked.

use std::fs;
use std::path::Path;
use std::process::Command;

use redist_fixtures::mirror;

use crate::{build_release, root, sh, Result};

pub fn run(_args: &[String]) -> Result {
    let release = build_release(&["redist-cli"])?;
    let demo = root().join("target/demo");
    let _ = fs::remove_dir_all(&demo);
    let mirror_dir = demo.join("mirror");
    mirror::write(&mirror_dir, "demo", &mirror::demo_components());
    println!("demo mirror: {}", mirror_dir.display());
    let archive = mirror_dir.join(mirror::relative_path("cuda_cudart", "12.9.79"));
    let out = demo.join("cuda_cudart");
    println!(
        "$ redist unpack {} --out {}\n",
        archive.display(),
        out.display()
    );
    sh(Command::new(release.join("redist"))
        .arg("unpack")
        .arg(&archive)
        .arg("--out")
        .arg(&out))?;
    println!("\n$ tree {}", out.display());
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
