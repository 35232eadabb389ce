//! `cargo xtask demo`: a redist-shaped mirror built from our own fixtures
//! (real tar.xz archives, real ELF files from `cc`), then unpacked.

use std::fs;
use std::path::Path;
use std::process::Command;

use redist_fixtures::{
    cudart_like, lib64_like, nvcc_like, root as archive_root, Archive, Compression,
};
use sha2::{Digest, Sha256};

use crate::{build_release, root, sh, Result};

/// Components of the demo mirror: (key, version, archive).
fn components() -> Vec<(&'static str, &'static str, Archive)> {
    vec![
        ("cuda_cudart", "12.9.79", cudart_like()),
        ("cuda_nvcc", "12.9.86", nvcc_like()),
        ("cuda_cupti", "12.8.90", lib64_like()),
    ]
}

/// Write the mirror in NVIDIA's layout, with a `redistrib_demo.json` manifest.
pub fn write_mirror(dir: &Path) -> Result {
    let mut manifest = String::from(
        "{\n  \"release_date\": \"2026-01-01\",\n  \"release_label\": \"demo\",\n  \"release_product\": \"cuda\"",
    );
    for (key, version, archive) in components() {
        let rel = format!("{key}/linux-x86_64/{}.tar.xz", archive_root(key, version));
        let data = archive.archive(Compression::Xz);
        let path = dir.join(&rel);
        fs::create_dir_all(path.parent().expect("has a parent")).map_err(|e| e.to_string())?;
        fs::write(&path, &data).map_err(|e| format!("{}: {e}", path.display()))?;
        let sha = Sha256::digest(&data);
        let sha: String = sha.iter().map(|b| format!("{b:02x}")).collect();
        manifest.push_str(&format!(
            ",\n  \"{key}\": {{\n    \"name\": \"{key} (redist demo)\",\n    \"license\": \"demo\",\n    \"version\": \"{version}\",\n    \"linux-x86_64\": {{\n      \"relative_path\": \"{rel}\",\n      \"sha256\": \"{sha}\",\n      \"size\": \"{}\"\n    }}\n  }}",
            data.len()
        ));
    }
    manifest.push_str("\n}\n");
    fs::write(dir.join("redistrib_demo.json"), manifest).map_err(|e| e.to_string())
}

pub fn run(_args: &[String]) -> Result {
    let release = build_release(&["redist-cli"])?;
    let demo = root().join("target/demo");
    let _ = fs::remove_dir_all(&demo);
    let mirror = demo.join("mirror");
    write_mirror(&mirror)?;
    println!("demo mirror: {}", mirror.display());
    let archive = mirror
        .join("cuda_cudart/linux-x86_64")
        .join(format!("{}.tar.xz", archive_root("cuda_cudart", "12.9.79")));
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
