//! Does what redist installs work as a toolkit? NVIDIA's real CUDA 13
//! compiler (nvcc, crt, nvvm, cccl, cudart from NVIDIA's PyPI wheels, in
//! the redist archives' layout: `cargo xtask mirror --cuda 13`) compiles
//! and links a CUDA program against a merged prefix, a split prefix and
//! separately unpacked components, and CMake builds a CUDA project against
//! the prefix. Run with `cargo xtask e2e`, which builds the mirror once and
//! sets `REDIST_CUDA13_MIRROR` (and `REDIST_CUDNN_MIRROR` for cuDNN).
//!
//! On a machine with an NVIDIA GPU the compiled program also runs and must
//! compute the right answer; elsewhere it must load and report that there
//! is no device.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn mirror() -> PathBuf {
    PathBuf::from(
        std::env::var_os("REDIST_CUDA13_MIRROR")
            .expect("REDIST_CUDA13_MIRROR is set by `cargo xtask e2e`"),
    )
}

fn manifest() -> PathBuf {
    mirror().join("redistrib_13-wheels.json")
}

/// `component`'s archive per the mirror's manifest.
fn archive(component: &str) -> PathBuf {
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(manifest()).unwrap()).unwrap();
    let rel = m[component]["linux-x86_64"]["relative_path"]
        .as_str()
        .expect("relative_path");
    mirror().join(rel)
}

const SAXPY: &str = include_str!("../../../testdata/cuda/saxpy.cu");

fn saxpy_source(d: &Dir) -> PathBuf {
    let p = d.join("saxpy.cu");
    std::fs::write(&p, SAXPY).unwrap();
    p
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn ok(cmd: &mut Command) -> Output {
    let o = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(o.status.success(), "{cmd:?} failed:\n{}", text(&o));
    o
}

/// Run the compiled program: on a GPU it must print a zero error; without
/// one it must load (every library found) and say there is no device.
fn runs_saxpy(exe: &Path) {
    let o = Command::new(exe)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("run saxpy");
    let out = text(&o);
    if Path::new("/dev/nvidia0").exists() {
        assert!(o.status.success(), "{out}");
        assert!(out.contains("saxpy max error: 0.000000"), "{out}");
    } else {
        assert_eq!(o.status.code(), Some(2), "{out}");
        assert!(out.contains("no CUDA device"), "{out}");
    }
}

/// `nvcc -arch=sm_90` with the static runtime (nvcc's default) and with
/// `-cudart shared`; the shared program gets `rpath` as RUNPATH.
fn compiles_saxpy(nvcc: &Path, d: &Dir, rpath: &Path) {
    let src = saxpy_source(d);
    let exe = d.join("saxpy-static");
    ok(Command::new(nvcc)
        .args(["-arch=sm_90", "-o"])
        .arg(&exe)
        .arg(&src));
    let ldd = text(&ok(Command::new("ldd").arg(&exe)));
    assert!(!ldd.contains("libcudart"), "static runtime: {ldd}");
    runs_saxpy(&exe);

    let shared = d.join("saxpy-shared");
    ok(Command::new(nvcc)
        .args([
            "-arch=sm_90",
            "-cudart",
            "shared",
            "-Xlinker",
            "-rpath",
            "-Xlinker",
        ])
        .arg(rpath)
        .arg("-o")
        .arg(&shared)
        .arg(&src));
    let ldd = text(&ok(Command::new("ldd")
        .arg(&shared)
        .env_remove("LD_LIBRARY_PATH")));
    let line = ldd
        .lines()
        .find(|l| l.contains("libcudart.so.13"))
        .unwrap_or_else(|| panic!("no libcudart.so.13 in ldd:\n{ldd}"));
    let want = std::fs::canonicalize(rpath).unwrap();
    let got = line
        .split("=> ")
        .nth(1)
        .and_then(|r| r.split(" (").next())
        .map(|p| std::fs::canonicalize(p.trim()).unwrap_or_default())
        .unwrap_or_default();
    assert!(
        got.starts_with(&want),
        "{line} (want it from {})",
        want.display()
    );
    runs_saxpy(&shared);
}

fn install(prefix: &Path, cache: &Path, extra: &[&str]) -> Output {
    let mut cmd = redist();
    cmd.arg("install")
        .arg("--manifest")
        .arg(manifest())
        .arg("--prefix")
        .arg(prefix)
        .arg("--cache-dir")
        .arg(cache)
        .args(extra);
    cmd.output().expect("redist install")
}

#[test]
#[ignore = "needs the CUDA 13 mirror: cargo xtask e2e"]
fn merged_install_is_the_run_layout_and_nvcc_compiles() {
    let d = Dir::new();
    let prefix = d.join("cuda");
    let o = install(&prefix, &d.join("cache"), &["--all", "--json"]);
    let report = ok_json(&o);
    assert!(
        report["toolkit"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t == "targets/x86_64-linux/include"),
        "{report}"
    );
    // What a user of /usr/local/cuda expects resolves.
    for p in [
        "targets/x86_64-linux/include/cuda_runtime.h",
        "targets/x86_64-linux/include/crt/host_config.h",
        "targets/x86_64-linux/include/cccl/cuda/std/version",
        "targets/x86_64-linux/lib/libcudart.so.13",
        "targets/x86_64-linux/lib/libcudart_static.a",
        "targets/x86_64-linux/lib/libcudadevrt.a",
        "include/cuda_runtime.h",
        "lib64/libcudart.so",
        "lib/libcudart.so",
        "nvvm/bin/cicc",
        "nvvm/libdevice/libdevice.10.bc",
        "bin/nvcc.profile",
    ] {
        assert!(prefix.join(p).exists(), "{p} does not resolve");
    }
    // NVIDIA's profile as shipped: the targets/ tree satisfies it.
    let profile = std::fs::read_to_string(prefix.join("bin/nvcc.profile")).unwrap();
    assert!(
        profile.contains("$(TOP)/$(_TARGET_DIR_)/include"),
        "{profile}"
    );

    let nvcc = prefix.join("bin/nvcc");
    let v = text(&ok(Command::new(&nvcc).arg("--version")));
    assert!(v.contains("Cuda compilation tools, release 13"), "{v}");
    compiles_saxpy(&nvcc, &d, &prefix.join("lib"));

    // The prefix moves: the links are relative.
    let moved = d.join("moved/cuda");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&prefix, &moved).unwrap();
    let d2 = Dir::new();
    compiles_saxpy(&moved.join("bin/nvcc"), &d2, &moved.join("lib"));
}

#[test]
#[ignore = "needs the CUDA 13 mirror: cargo xtask e2e"]
fn components_added_later_keep_the_prefix_coherent() {
    let d = Dir::new();
    let prefix = d.join("cuda");
    let cache = d.join("cache");
    ok_json(&install(
        &prefix,
        &cache,
        &["cuda_nvcc", "libnvvm", "--json"],
    ));
    assert!(prefix.join("targets/x86_64-linux/include").is_symlink());
    assert!(!prefix
        .join("targets/x86_64-linux/include/cuda_runtime.h")
        .exists());
    // Without headers and the runtime nvcc cannot build a program …
    let src = saxpy_source(&d);
    let o = Command::new(prefix.join("bin/nvcc"))
        .args(["-arch=sm_90", "-o"])
        .arg(d.join("x"))
        .arg(&src)
        .output()
        .unwrap();
    assert!(!o.status.success());
    // … and after adding them it can.
    ok_json(&install(
        &prefix,
        &cache,
        &["cuda_crt", "cuda_cccl", "cuda_cudart", "--json"],
    ));
    assert!(prefix
        .join("targets/x86_64-linux/include/cuda_runtime.h")
        .exists());
    assert!(prefix
        .join("targets/x86_64-linux/lib/libcudart.so")
        .exists());
    compiles_saxpy(&prefix.join("bin/nvcc"), &d, &prefix.join("lib"));
}

#[test]
#[ignore = "needs the CUDA 13 mirror and cmake: cargo xtask e2e"]
fn cmake_builds_a_cuda_project_against_the_prefix() {
    let d = Dir::new();
    let prefix = d.join("cuda");
    ok_json(&install(&prefix, &d.join("cache"), &["--all", "--json"]));
    let src = d.join("project");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("saxpy.cu"), SAXPY).unwrap();
    std::fs::write(
        src.join("CMakeLists.txt"),
        include_str!("../../../testdata/cuda/CMakeLists.txt"),
    )
    .unwrap();
    let build = d.join("build");
    let cmake = std::env::var("REDIST_CMAKE").unwrap_or_else(|_| "cmake".into());
    let configure = ok(Command::new(&cmake)
        .arg("-S")
        .arg(&src)
        .arg("-B")
        .arg(&build)
        .arg(format!(
            "-DCMAKE_CUDA_COMPILER={}",
            prefix.join("bin/nvcc").display()
        ))
        .arg(format!("-DCUDAToolkit_ROOT={}", prefix.display()))
        .env("CUDA_HOME", &prefix));
    let log = text(&configure);
    assert!(log.contains("Found CUDAToolkit"), "{log}");
    ok(Command::new(&cmake).arg("--build").arg(&build));
    runs_saxpy(&build.join("saxpy"));
    // CUDA::cudart is the prefix's.
    let cache = std::fs::read_to_string(build.join("CMakeCache.txt")).unwrap();
    let root = std::fs::canonicalize(&prefix).unwrap();
    assert!(
        cache.contains(&format!(
            "CUDAToolkit_BIN_DIR:PATH={}/bin",
            prefix.display()
        )) || cache.contains(&format!("{}/bin", root.display())),
        "CMake found another toolkit"
    );
    let o = Command::new(build.join("saxpy_shared"))
        .env("LD_LIBRARY_PATH", prefix.join("lib"))
        .output()
        .unwrap();
    assert!(
        text(&o).contains("no CUDA device") || text(&o).contains("max error: 0"),
        "{}",
        text(&o)
    );
}

#[test]
#[ignore = "needs the CUDA 13 mirror: cargo xtask e2e"]
fn split_install_points_nvcc_at_the_other_components() {
    let d = Dir::new();
    let prefix = d.join("cuda");
    let cache = d.join("cache");
    ok_json(&install(
        &prefix,
        &cache,
        &[
            "cuda_nvcc",
            "libnvvm",
            "cuda_crt",
            "--layout",
            "split",
            "--json",
        ],
    ));
    ok_json(&install(
        &prefix,
        &cache,
        &["cuda_cccl", "cuda_cudart", "--layout", "split", "--json"],
    ));
    let profile = std::fs::read_to_string(prefix.join("cuda_nvcc/bin/bin/nvcc.profile")).unwrap();
    assert!(
        profile.contains("\"-I$(_HERE_)/../../../cuda_cudart/include/include\""),
        "{profile}"
    );
    assert!(!profile.contains("$(_TARGET_DIR_)"), "{profile}");
    compiles_saxpy(
        &prefix.join("cuda_nvcc/bin/bin/nvcc"),
        &d,
        &prefix.join("cuda_cudart/lib/lib"),
    );
}

#[test]
#[ignore = "needs the CUDA 13 mirror: cargo xtask e2e"]
fn nvcc_unpacked_alone_compiles_with_toolkit_deps() {
    let d = Dir::new();
    let mut deps = Vec::new();
    for (c, layout) in [
        ("cuda_cudart", "split"),
        ("cuda_crt", "merged"),
        ("cuda_cccl", "split"),
        ("libnvvm", "split"),
    ] {
        let out = d.join(c);
        ok_json(&unpack(&archive(c), &out, &["--json", "--layout", layout]));
        deps.push(out);
    }
    for layout in ["split", "merged"] {
        let out = d.join(&format!("nvcc-{layout}"));
        let mut args = vec!["--json".to_owned(), "--layout".into(), layout.into()];
        for dep in &deps {
            args.push("--toolkit-dep".into());
            args.push(dep.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let report = ok_json(&unpack(&archive("cuda_nvcc"), &out, &args));
        let fixups = report["fixups"].to_string();
        assert!(fixups.contains("nvcc.profile"), "{fixups}");
        assert_eq!(report["warnings"], serde_json::json!([]));
        let bin = if layout == "split" { "bin/bin" } else { "bin" };
        let dd = Dir::new();
        compiles_saxpy(
            &out.join(bin).join("nvcc"),
            &dd,
            &d.join("cuda_cudart/lib/lib"),
        );
    }
}

#[test]
#[ignore = "needs the cuDNN mirror: cargo xtask e2e"]
fn cudnn_unpacks_with_default_flags() {
    let dir = PathBuf::from(
        std::env::var_os("REDIST_CUDNN_MIRROR")
            .expect("REDIST_CUDNN_MIRROR is set by `cargo xtask e2e`"),
    );
    let manifest = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("redistrib_cudnn_"))
        })
        .expect("cuDNN manifest");
    let m: serde_json::Value = serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    assert_eq!(m["cudnn"]["cuda_variant"], serde_json::json!(["13"]));
    let rel = m["cudnn"]["linux-x86_64"]["cuda13"]["relative_path"]
        .as_str()
        .unwrap();
    let d = Dir::new();
    let out = d.join("cudnn");
    let report = ok_json(&unpack(&dir.join(rel), &out, &["--json"]));
    let files = report["autopatch"]["files"].as_array().unwrap();
    let rc = files
        .iter()
        .find(|f| {
            f["path"]
                .as_str()
                .unwrap()
                .contains("libcudnn_engines_runtime_compiled.so")
        })
        .expect("libcudnn_engines_runtime_compiled");
    assert_eq!(
        rc["needs"]["libcuda.so.1"],
        serde_json::json!({"from": "driver"})
    );

    // And installed from its own manifest, the only variant chosen.
    let prefix = d.join("prefix");
    let o = redist()
        .args(["install", "--manifest"])
        .arg(&manifest)
        .arg("cudnn")
        .arg("--prefix")
        .arg(&prefix)
        .arg("--cache-dir")
        .arg(d.join("cache"))
        .arg("--json")
        .output()
        .unwrap();
    let r = ok_json(&o);
    assert_eq!(r["components"][0]["variant"], "cuda13");
    assert!(prefix.join("include/cudnn.h").exists());
}

/// File by file, what nixpkgs' auto-patchelf and driver hook give every
/// NVIDIA ELF file: the driver directory first, every need found (or left
/// to the driver or the loader), the archive's own `$ORIGIN` entries kept
/// in absolute mode too.
#[test]
#[ignore = "needs the CUDA 13 and cuDNN mirrors: cargo xtask e2e"]
fn every_nvidia_elf_file_is_linked_like_nixpkgs_does() {
    let cudnn_dir = PathBuf::from(
        std::env::var_os("REDIST_CUDNN_MIRROR")
            .expect("REDIST_CUDNN_MIRROR is set by `cargo xtask e2e`"),
    );
    let cudnn = std::fs::read_dir(cudnn_dir.join("cudnn/linux-x86_64"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .next()
        .unwrap();
    let mut archives: Vec<(String, PathBuf)> = [
        "cuda_nvcc",
        "cuda_crt",
        "libnvvm",
        "cuda_cccl",
        "cuda_cudart",
        "cuda_nvrtc",
    ]
    .iter()
    .map(|c| (c.to_string(), archive(c)))
    .collect();
    archives.push(("cudnn".into(), cudnn));
    let driver = "/run/opengl-driver/lib";
    let mut checked = 0;
    for (name, path) in archives {
        let d = Dir::new();
        let orig = d.join("orig");
        ok_json(&unpack(&path, &orig, &["--json", "--no-patch"]));
        let out = d.join("out");
        let report = ok_json(&unpack(
            &path,
            &out,
            &[
                "--json",
                "--runpath",
                "absolute",
                "--driver-runpath",
                driver,
            ],
        ));
        let Some(files) = report["autopatch"]["files"].as_array() else {
            continue;
        };
        for f in files {
            let rel = f["path"].as_str().unwrap();
            let after = elfpatch::read(&out.join(rel)).unwrap();
            let before = elfpatch::read(&orig.join(rel)).unwrap();
            let rp = after.runpath.clone().unwrap_or_default();
            let entries: Vec<&str> = rp.split(':').collect();
            assert_eq!(entries[0], driver, "{name} {rel}: {rp}");
            assert_eq!(f["tag"], "DT_RUNPATH", "{name} {rel}");
            for (lib, how) in f["needs"].as_object().unwrap() {
                let from = how["from"].as_str().unwrap();
                assert!(
                    ["own", "system", "driver"].contains(&from),
                    "{name} {rel}: {lib} from {from}"
                );
                if lib.starts_with("libcuda.so") {
                    assert_eq!(from, "driver", "{name} {rel}");
                }
            }
            for old in before
                .runpath
                .iter()
                .chain(before.rpath.iter())
                .flat_map(|r| r.split(':'))
                .filter(|e| *e == "$ORIGIN")
            {
                assert!(entries.contains(&old), "{name} {rel}: {old} lost in {rp}");
            }
            checked += 1;
        }
        if name == "cudnn" {
            // The main library loads and answers.
            let exe = d.join("dlopen_version");
            ok(Command::new("cc")
                .arg(redist_fixtures::testdata().join("c/dlopen_version.c"))
                .arg("-o")
                .arg(&exe)
                .arg("-ldl"));
            let o = Command::new(&exe)
                .arg(out.join("lib/lib/libcudnn.so.9"))
                .arg("cudnnGetVersion")
                .output()
                .unwrap();
            assert!(text(&o).contains("cudnnGetVersion rc=9"), "{}", text(&o));
        }
    }
    assert!(checked > 20, "only {checked} ELF files checked");
}

/// CUDA 13 and cuDNN from their two manifests in one command: cuDNN takes
/// its cuda13 variant from the set's CUDA, and its libraries that `dlopen`
/// libcublasLt.so.13 find the set's cuBLAS, merged and split.
#[test]
#[ignore = "needs the CUDA 13 set mirror: cargo xtask e2e"]
fn a_cuda13_set_installs_in_one_command_with_cudnn_finding_the_sets_cublas() {
    let dir = PathBuf::from(
        std::env::var_os("REDIST_SET_MIRROR")
            .expect("REDIST_SET_MIRROR is set by `cargo xtask e2e`"),
    );
    let manifests: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy().into_owned();
            n.starts_with("redistrib_") && n.ends_with(".json")
        })
        .collect();
    assert_eq!(manifests.len(), 2, "{manifests:?}");
    let d = Dir::new();
    for layout in ["merged", "split"] {
        let prefix = d.join(layout);
        let mut cmd = redist();
        cmd.arg("install");
        for m in &manifests {
            cmd.arg("-m").arg(m);
        }
        let o = cmd
            .args([
                "cuda_cudart",
                "libcublas",
                "cudnn",
                "--layout",
                layout,
                "--json",
            ])
            .arg("--prefix")
            .arg(&prefix)
            .arg("--cache-dir")
            .arg(d.join("cache"))
            .output()
            .unwrap();
        let r = ok_json(&o);
        let cudnn = r["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["component"] == "cudnn")
            .unwrap();
        assert_eq!(cudnn["variant"], "cuda13", "{layout}");
        let files = r["autopatch"]["files"].as_array().unwrap();
        let engines = files
            .iter()
            .find(|f| {
                f["path"]
                    .as_str()
                    .unwrap()
                    .contains("libcudnn_engines_precompiled.so.")
            })
            .expect("libcudnn_engines_precompiled");
        let lt = &engines["needs"]["libcublasLt.so.13"];
        assert_eq!(lt["from"], "own", "{layout}: {engines}");
        let rp = engines["runpath"].as_str().unwrap();
        let path = engines["path"].as_str().unwrap();
        // Each RUNPATH entry, `$ORIGIN` resolved: one holds libcublasLt.
        let here = prefix.join(path);
        let found = rp.split(':').any(|e| {
            let e = e.replace("$ORIGIN", &here.parent().unwrap().display().to_string());
            Path::new(&e).join("libcublasLt.so.13").exists()
        });
        assert!(found, "{layout}: {rp}");
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(prefix.join(".redist/installed.json")).unwrap())
                .unwrap();
        assert!(state["cuda"].as_str().unwrap().starts_with("13"), "{state}");
    }
}
