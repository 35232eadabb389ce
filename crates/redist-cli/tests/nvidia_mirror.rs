//! Real NVIDIA archives, made by `cargo xtask mirror --cuda 12` from
//! NVIDIA's own PyPI wheels. Run with `cargo xtask e2e`, which builds the
//! mirror once (about 180 MB from PyPI) and sets `REDIST_NVIDIA_MIRROR`.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

fn mirror() -> PathBuf {
    PathBuf::from(
        std::env::var_os("REDIST_NVIDIA_MIRROR")
            .expect("REDIST_NVIDIA_MIRROR is set by `cargo xtask e2e`"),
    )
}

/// The archive of `component` per the mirror's manifest.
fn archive(component: &str) -> PathBuf {
    let dir = mirror();
    let manifest = std::fs::read_dir(&dir)
        .expect("mirror dir")
        .map(|e| e.expect("entry").path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("redistrib_"))
        })
        .expect("a redistrib_*.json manifest");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest).unwrap()).unwrap();
    let rel = m[component]["linux-x86_64"]["relative_path"]
        .as_str()
        .expect("relative_path");
    dir.join(rel)
}

fn unpack_component(d: &Dir, component: &str) -> (PathBuf, serde_json::Value) {
    let out = d.join(component);
    let report = ok_json(&unpack(&archive(component), &out, &["--json"]));
    (out, report)
}

fn is_elf(p: &Path) -> bool {
    std::fs::read(p)
        .map(|d| d.starts_with(b"\x7fELF"))
        .unwrap_or(false)
}

/// Compile testdata/c/dlopen_version.c once.
fn dlopen_version(d: &Dir) -> PathBuf {
    let exe = d.join("dlopen_version");
    let src = redist_fixtures::testdata().join("c/dlopen_version.c");
    let st = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-ldl")
        .status()
        .expect("cc");
    assert!(st.success());
    exe
}

#[test]
#[ignore = "needs the NVIDIA mirror: cargo xtask e2e"]
fn nvcc_ptxas_runs_from_the_bin_output() {
    let d = Dir::new();
    let (out, report) = unpack_component(&d, "cuda_nvcc");
    assert_eq!(report["root"], "cuda_nvcc-linux-x86_64-12.9.86-archive");
    let ptxas = out.join("bin/bin/ptxas");
    assert!(is_elf(&ptxas));
    let v = Command::new(&ptxas)
        .arg("--version")
        .output()
        .expect("run ptxas");
    assert!(v.status.success());
    assert!(String::from_utf8_lossy(&v.stdout).contains("Cuda compilation tools, release 12.9"));
    assert!(is_elf(&out.join("out/nvvm/lib64/libnvvm.so")));
    assert!(out.join("out/nvvm/libdevice/libdevice.10.bc").is_file());
    assert!(out.join("include/include/crt/host_config.h").is_file());
    let elves: Vec<&str> = report["elf_files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        elves.contains(&"bin/bin/ptxas") && elves.contains(&"out/nvvm/lib64/libnvvm.so"),
        "{elves:?}"
    );
}

#[test]
#[ignore = "needs the NVIDIA mirror: cargo xtask e2e"]
fn cudart_splits_and_loads() {
    let d = Dir::new();
    let (out, report) = unpack_component(&d, "cuda_cudart");
    let lib = out.join("lib/lib");
    assert_eq!(
        std::fs::read_link(lib.join("libcudart.so")).unwrap(),
        Path::new("libcudart.so.12")
    );
    assert_eq!(
        std::fs::read_link(lib.join("libcudart.so.12")).unwrap(),
        Path::new("libcudart.so.12.9.79")
    );
    assert!(is_elf(&lib.join("libcudart.so.12.9.79")));
    assert!(out.join("static/lib/libcudart_static.a").is_file());
    assert!(out.join("include/include/cuda_runtime.h").is_file());
    let pc = std::fs::read_to_string(out.join("dev/share/pkgconfig/cudart.pc"))
        .expect("cudart.pc link resolves");
    assert!(pc.contains(&format!("libdir={}\n", lib.display())), "{pc}");
    assert_eq!(report["outputs"]["lib"]["symlinks"], 2);
    let v = Command::new(dlopen_version(&d))
        .arg(lib.join("libcudart.so"))
        .arg("cudaRuntimeGetVersion")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        "cudaRuntimeGetVersion rc=0 12090 -1\n"
    );
}

#[test]
#[ignore = "needs the NVIDIA mirror: cargo xtask e2e"]
fn nvrtc_splits_and_loads() {
    let d = Dir::new();
    let (out, report) = unpack_component(&d, "cuda_nvrtc");
    let lib = out.join("lib/lib");
    for name in [
        "libnvrtc.so.12.9.86",
        "libnvrtc-builtins.so.12.9",
        "libnvrtc.alt.so.12",
        "libnvrtc-builtins.alt.so.12.9",
    ] {
        assert!(is_elf(&lib.join(name)), "{name}");
    }
    assert_eq!(report["elf_files"].as_array().unwrap().len(), 4);
    let v = Command::new(dlopen_version(&d))
        .arg(lib.join("libnvrtc.so"))
        .arg("nvrtcVersion")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        "nvrtcVersion rc=0 12 9\n",
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
}

#[test]
#[ignore = "needs the NVIDIA mirror: cargo xtask e2e"]
fn install_over_loopback_http_gives_a_working_merged_prefix() {
    let d = Dir::new();
    let server = redist_fixtures::http::Server::start(mirror());
    let manifest = std::fs::read_dir(mirror())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("redistrib_"))
        .unwrap();
    let prefix = d.join("cuda");
    let cache = d.join("cache");
    let url = server.url(&manifest);
    let o = run(
        &[
            "install".as_ref(),
            "--manifest".as_ref(),
            url.as_ref(),
            "--cache-dir".as_ref(),
            cache.as_os_str(),
            "--prefix".as_ref(),
            prefix.as_os_str(),
            "cuda_nvcc".as_ref(),
            "cuda_cudart".as_ref(),
            "cuda_nvrtc".as_ref(),
            "--json".as_ref(),
        ],
        None,
    );
    let report = ok_json(&o);
    assert_eq!(report["components"].as_array().unwrap().len(), 3);
    let v = Command::new(prefix.join("bin/ptxas"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&v.stdout).contains("Cuda compilation tools, release 12.9"));
    assert!(prefix.join("nvvm/lib64/libnvvm.so").is_file());
    let v = Command::new(dlopen_version(&d))
        .arg(prefix.join("lib/libnvrtc.so"))
        .arg("nvrtcVersion")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&v.stdout),
        "nvrtcVersion rc=0 12 9\n"
    );
    for doc in ["cuda_nvcc", "cuda_cudart", "cuda_nvrtc"] {
        assert!(
            prefix.join("share/doc").join(doc).join("LICENSE").is_file(),
            "{doc}"
        );
    }
}

#[test]
#[ignore = "needs the NVIDIA mirror: cargo xtask e2e"]
fn autopatched_nvidia_binaries_run_with_a_long_interpreter() {
    let d = Dir::new();
    let loader = elfpatch::read(Path::new("/bin/sh"))
        .unwrap()
        .interpreter
        .expect("a system loader");
    let dir = d.join(&format!(
        "{}/{}",
        "nix-store-like-".repeat(5),
        "glibc-2.40-66/lib64"
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let interp = dir.join("ld-linux-x86-64.so.2");
    std::os::unix::fs::symlink(&loader, &interp).unwrap();
    assert!(interp.to_str().unwrap().len() > 100);
    let i = interp.to_str().unwrap();
    let mut reports = Vec::new();
    for c in ["cuda_nvcc", "cuda_cudart", "cuda_nvrtc"] {
        let out = d.join(c);
        reports.push(ok_json(&unpack(
            &archive(c),
            &out,
            &["--json", "--interpreter", i],
        )));
    }
    let ptxas = d.join("cuda_nvcc/bin/bin/ptxas");
    assert_eq!(
        elfpatch::read(&ptxas).unwrap().interpreter.as_deref(),
        Some(i)
    );
    let v = Command::new(&ptxas).arg("--version").output().unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("Cuda compilation tools, release 12.9"),
        "{}",
        String::from_utf8_lossy(&v.stderr)
    );
    // libnvrtc keeps its $ORIGIN RUNPATH (it dlopens libnvrtc-builtins).
    let nvrtc = d.join("cuda_nvrtc/lib/lib/libnvrtc.so.12.9.86");
    assert_eq!(
        elfpatch::read(&nvrtc).unwrap().runpath.as_deref(),
        Some("$ORIGIN")
    );
    let exe = d.join("nvrtc_compile");
    let src = redist_fixtures::testdata().join("c/nvrtc_compile.c");
    assert!(Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&exe)
        .arg("-ldl")
        .status()
        .unwrap()
        .success());
    let o = Command::new(&exe)
        .arg(d.join("cuda_nvrtc/lib/lib/libnvrtc.so"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(
        String::from_utf8_lossy(&o.stdout).starts_with("ptx has .entry saxpy"),
        "{}",
        String::from_utf8_lossy(&o.stdout)
    );
    let patched: usize = reports
        .iter()
        .map(|r| r["autopatch"]["files"].as_array().unwrap().len())
        .sum();
    assert!(patched >= 6, "{patched}");
}
