//! Real Nix: `redist nix-expr` generates the expression, `nix-build` builds
//! it in the sandbox with the static `redist` as builder. Run by
//! `cargo xtask e2e-nix`, which builds that binary (`cargo xtask dist`) and
//! installs Debian's nix-bin.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use redist_fixtures::mirror::{self, Component};
use redist_fixtures::{linked, redist_archive};

fn nix(cmd: &str) -> Command {
    let mut c = Command::new(cmd);
    // The local store, as root, no daemon.
    c.env("NIX_REMOTE", "");
    c
}

const OPTS: [&str; 8] = [
    "--option",
    "sandbox",
    "true",
    "--option",
    "substituters",
    "",
    "--option",
    "build-users-group",
];

fn nix_build(file: &Path, attr: &str, extra: &[&str]) -> Output {
    let mut c = nix("nix-build");
    c.arg(file)
        .args(["-A", attr, "--no-out-link"])
        .args(OPTS)
        .arg("")
        .args(extra);
    c.output().expect("nix-build")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

/// `nix-store --add` of a path; returns the store path.
fn add(path: &Path) -> String {
    let o = nix("nix-store")
        .arg("--add")
        .arg(path)
        .output()
        .expect("nix-store --add");
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout).trim().to_owned()
}

/// A "glibc" store path: the system's loader and runtime libraries (and
/// zlib, which cuDNN needs).
fn glibc(d: &Dir) -> String {
    redist_fixtures::glibc_tree(&d.join("glibc")).unwrap();
    add(&d.join("glibc"))
}

fn outputs_of(file: &Path, attr: &str) -> Vec<(String, String)> {
    let drv = nix("nix-instantiate")
        .arg(file)
        .args(["-A", attr])
        .output()
        .unwrap();
    assert!(drv.status.success(), "{}", text(&drv));
    let drv = String::from_utf8_lossy(&drv.stdout).trim().to_owned();
    let o = nix("nix-store")
        .args(["-q", "--outputs"])
        .arg(&drv)
        .output()
        .unwrap();
    let show = nix("nix")
        .args([
            "--extra-experimental-features",
            "nix-command",
            "show-derivation",
        ])
        .arg(&drv)
        .output()
        .unwrap();
    let j: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap_or_default();
    let outs = &j[&drv]["outputs"];
    let paths: Vec<String> = String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect();
    paths
        .into_iter()
        .map(|p| {
            let name = outs
                .as_object()
                .and_then(|m| {
                    m.iter()
                        .find(|(_, v)| v["path"] == p.as_str())
                        .map(|(k, _)| k.clone())
                })
                .unwrap_or_default();
            (name, p)
        })
        .collect()
}

fn references(path: &str) -> Vec<String> {
    let o = nix("nix-store")
        .args(["-q", "--references", path])
        .output()
        .unwrap();
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

struct Setup {
    d: Dir,
    expr: PathBuf,
    glibc: String,
    // Fixed-output fetches run in the sandbox but reach the host's
    // loopback; the server lives as long as the test.
    _server: redist_fixtures::http::Server,
}

impl Setup {
    /// The store path of the static redist the generated expression uses.
    fn builder(&self) -> String {
        std::fs::read_to_string(self.d.join("redist.nix"))
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix("{ redist ? "))
            .unwrap()
            .trim_matches('"')
            .to_owned()
    }
}

fn setup() -> Setup {
    assert!(
        nix("nix-build").arg("--version").output().is_ok(),
        "nix-build is needed: apt-get install nix-bin"
    );
    let bin = PathBuf::from(
        std::env::var_os("REDIST_STATIC").expect("REDIST_STATIC is set by cargo xtask e2e-nix"),
    );
    let d = Dir::new();
    let l = linked();
    let comps = vec![
        Component::new(
            "comp_lib",
            "1.0",
            redist_archive(
                "comp_lib",
                "1.0",
                vec![
                    Item::exe("lib/libuser.so.1.0", l.libuser.clone()),
                    Item::link("lib/libuser.so.1", "libuser.so.1.0"),
                    Item::exe("lib/libdep.so.1", l.libdep.clone()),
                    Item::file(
                        "lib/libuser_static.a",
                        redist_fixtures::ar_archive("user.o"),
                    ),
                    Item::file("include/user.h", "int user_value(void);\n"),
                    Item::file(
                        "pkg-config/user-1.0.pc",
                        redist_fixtures::nvidia_pc("user", "user", "1.0"),
                    ),
                ],
            ),
        ),
        Component::new(
            "comp_app",
            "1.0",
            redist_archive("comp_app", "1.0", vec![Item::exe("bin/app", l.app.clone())]),
        ),
        Component::new("cuda_cudart", "12.9.79", redist_fixtures::cudart_like()),
    ];
    let manifest = mirror::write(&d.join("mirror"), "nixtest", &comps);
    let server = redist_fixtures::http::Server::start(d.join("mirror"));
    let url = server.url("");
    let store_redist = add(&bin);
    let glibc = glibc(&d);
    let o = run(
        &[
            "nix-expr".as_ref(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
            "--platform".as_ref(),
            "linux-x86_64".as_ref(),
            "--cache-dir".as_ref(),
            d.join("cache").as_os_str(),
            "--builder".as_ref(),
            store_redist.as_ref(),
            "--mirror".as_ref(),
            url.as_ref(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(d.join("redist.nix"), &o.stdout).unwrap();
    let expr = d.join("default.nix");
    std::fs::write(
        &expr,
        format!(
            "let\n  glibc = builtins.storePath \"{glibc}\";\n  pkgs = import ./redist.nix {{\n    dynamicLinker = \"${{glibc}}/lib/ld-linux-x86-64.so.2\";\n    libDeps = [ glibc ];\n    extraLibDeps = {{ comp_app = [ pkgs.comp_lib.lib ]; }};\n  }};\nin pkgs\n"
        ),
    )
    .unwrap();
    Setup {
        d,
        expr,
        glibc,
        _server: server,
    }
}

#[test]
#[ignore = "needs nix-bin and a static redist: cargo xtask e2e-nix"]
fn sandboxed_builds_link_outputs_and_run() {
    let s = setup();
    for attr in ["comp_lib", "comp_app", "cuda_cudart"] {
        let o = nix_build(&s.expr, attr, &[]);
        assert!(o.status.success(), "{attr}:\n{}", text(&o));
        for (name, path) in outputs_of(&s.expr, attr) {
            assert!(Path::new(&path).exists(), "{attr}.{name} at {path}");
            let v = nix("nix-store")
                .args(["--verify-path", &path])
                .output()
                .unwrap();
            assert!(v.status.success(), "verify {path}: {}", text(&v));
        }
    }
    let lib_outs = outputs_of(&s.expr, "comp_lib");
    let lib_out = lib_outs
        .iter()
        .find(|(n, _)| n == "lib")
        .map(|(_, p)| p.clone())
        .expect("comp_lib.lib");
    let app_outs = outputs_of(&s.expr, "comp_app");
    let bin_out = app_outs
        .iter()
        .find(|(n, _)| n == "bin")
        .map(|(_, p)| p.clone())
        .expect("comp_app.bin");
    // Reference scanning saw bin -> lib and -> the loader's store path.
    let refs = references(&bin_out);
    assert!(refs.contains(&lib_out), "{refs:?}");
    assert!(refs.contains(&s.glibc), "{refs:?}");
    // (The fixture libraries call nothing in libc, so they need no glibc.)
    // The patched executable runs from the store, without LD_LIBRARY_PATH.
    let o = Command::new(format!("{bin_out}/bin/app"))
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "app says 42\n",
        "{}",
        text(&o)
    );
    // out propagates the other outputs, like nixpkgs' CUDA packages.
    let out = app_outs.iter().find(|(n, _)| n == "out").unwrap().1.clone();
    let prop =
        std::fs::read_to_string(format!("{out}/nix-support/propagated-build-inputs")).unwrap();
    assert_eq!(prop.trim(), bin_out);
    // pkg-config points at the real store paths.
    let dev = lib_outs.iter().find(|(n, _)| n == "dev").unwrap().1.clone();
    let pc = std::fs::read_to_string(format!("{dev}/share/pkgconfig/user-1.0.pc")).unwrap();
    assert!(pc.contains(&format!("libdir={lib_out}/lib\n")), "{pc}");
    // A second build is a no-op; a rebuild is bit-for-bit the same.
    let again = nix_build(&s.expr, "comp_app", &[]);
    assert!(
        again.status.success() && !text(&again).contains("building '"),
        "{}",
        text(&again)
    );
    let check = nix_build(&s.expr, "comp_lib", &["--check"]);
    assert!(
        check.status.success(),
        "not deterministic:\n{}",
        text(&check)
    );
}

#[test]
#[ignore = "needs nix-bin and a static redist: cargo xtask e2e-nix"]
fn corrupt_src_and_empty_output_fail_with_our_error() {
    let s = setup();
    let data = redist_fixtures::cudart_like().archive(Compression::Xz);
    std::fs::write(s.d.join("corrupt.tar.xz"), &data[..data.len() / 2]).unwrap();
    let redist_line = std::fs::read_to_string(s.d.join("redist.nix")).unwrap();
    let builder = redist_line
        .lines()
        .find_map(|l| l.strip_prefix("{ redist ? "))
        .unwrap()
        .to_owned();
    let file = s.d.join("bad.nix");
    std::fs::write(
        &file,
        format!(
            "let r = builtins.storePath {builder}; g = builtins.storePath \"{glibc}\"; mk = outputs: src: derivation {{\n  name = \"bad\"; system = \"x86_64-linux\"; builder = r; args = [ \"nix-builder\" ];\n  inherit outputs src; libDeps = [ g ];\n}};\nin {{ corrupt = mk [ \"out\" \"lib\" ] ./corrupt.tar.xz; empty = mk [ \"out\" \"lib\" \"samples\" ] ./good.tar.xz; }}\n",
            glibc = s.glibc
        ),
    )
    .unwrap();
    std::fs::write(s.d.join("good.tar.xz"), &data).unwrap();
    let o = nix_build(&file, "corrupt", &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("truncated archive: the xz stream ends early"),
        "{}",
        text(&o)
    );
    let o = nix_build(&file, "empty", &[]);
    assert!(!o.status.success());
    assert!(
        text(&o).contains("declared output samples would be empty; the archive has:"),
        "{}",
        text(&o)
    );
}

#[test]
#[ignore = "needs nix-bin, a static redist and the NVIDIA mirror: cargo xtask e2e-nix"]
fn nvidia_components_build_under_nix() {
    let Some(mirror) = std::env::var_os("REDIST_NVIDIA_MIRROR").map(PathBuf::from) else {
        panic!("REDIST_NVIDIA_MIRROR is set by cargo xtask e2e-nix");
    };
    let s = setup();
    let nv_server = redist_fixtures::http::Server::start(mirror.clone());
    let nv_url = nv_server.url("");
    let manifest = std::fs::read_dir(&mirror)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("redistrib_"))
        .unwrap();
    let builder = s.builder();
    let o = run(
        &[
            "nix-expr".as_ref(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
            "--platform".as_ref(),
            "linux-x86_64".as_ref(),
            "--cache-dir".as_ref(),
            s.d.join("cache").as_os_str(),
            "--builder".as_ref(),
            builder.as_ref(),
            "--mirror".as_ref(),
            nv_url.as_ref(),
            "cuda_nvcc".as_ref(),
            "cuda_cudart".as_ref(),
            "cuda_nvrtc".as_ref(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::write(s.d.join("nvidia.nix"), &o.stdout).unwrap();
    let file = s.d.join("nv.nix");
    std::fs::write(&file, format!(
        "let glibc = builtins.storePath \"{}\"; in import ./nvidia.nix {{ dynamicLinker = \"${{glibc}}/lib/ld-linux-x86-64.so.2\"; libDeps = [ glibc ]; }}\n", s.glibc)).unwrap();
    let started = std::time::Instant::now();
    for attr in ["cuda_nvcc", "cuda_cudart", "cuda_nvrtc"] {
        let o = nix_build(&file, attr, &[]);
        assert!(o.status.success(), "{attr}:\n{}", text(&o));
    }
    eprintln!(
        "NVIDIA components under nix-build: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let bin = outputs_of(&file, "cuda_nvcc")
        .into_iter()
        .find(|(n, _)| n == "bin")
        .unwrap()
        .1;
    let v = Command::new(format!("{bin}/bin/ptxas"))
        .arg("--version")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&v.stdout).contains("Cuda compilation tools, release 12.9"),
        "{}",
        text(&v)
    );
    assert!(references(&bin).contains(&s.glibc));
}

#[test]
#[ignore = "needs nix-bin, a static redist and the CUDA 13 mirror: cargo xtask e2e-nix"]
fn cuda13_nvcc_from_the_store_compiles_against_its_toolkit_deps() {
    let Some(mirror) = std::env::var_os("REDIST_CUDA13_MIRROR").map(PathBuf::from) else {
        panic!("REDIST_CUDA13_MIRROR is set by cargo xtask e2e-nix");
    };
    let s = setup();
    let server = redist_fixtures::http::Server::start(mirror.clone());
    let url = server.url("");
    let builder = s.builder();
    let parts = [
        "cuda_nvcc",
        "cuda_cudart",
        "cuda_crt",
        "cuda_cccl",
        "libnvvm",
    ];
    let mut args: Vec<std::ffi::OsString> = vec![
        "nix-expr".into(),
        "--manifest".into(),
        mirror.join("redistrib_13-wheels.json").into(),
        "--platform".into(),
        "linux-x86_64".into(),
        "--cache-dir".into(),
        s.d.join("cache").into(),
        "--builder".into(),
        builder.into(),
        "--mirror".into(),
        url.into(),
    ];
    args.extend(parts.iter().map(|p| std::ffi::OsString::from(*p)));
    let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
    let o = run(&refs, None);
    assert!(o.status.success(), "{}", stderr(&o));
    let generated = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        generated.contains(
            "toolkitDeps = [ self.\"cuda_cudart\" self.\"cuda_crt\" self.\"cuda_cccl\" self.\"libnvvm\" ];"
        ),
        "{generated}"
    );
    std::fs::write(s.d.join("cuda13.nix"), &generated).unwrap();
    let file = s.d.join("c13.nix");
    std::fs::write(&file, format!(
        "let glibc = builtins.storePath \"{}\"; in import ./cuda13.nix {{ dynamicLinker = \"${{glibc}}/lib/ld-linux-x86-64.so.2\"; libDeps = [ glibc ]; }}\n", s.glibc)).unwrap();
    // Building nvcc builds what it compiles against.
    let o = nix_build(&file, "cuda_nvcc", &[]);
    assert!(o.status.success(), "cuda_nvcc:\n{}", text(&o));
    let outputs = |attr: &str| outputs_of(&file, attr);
    let bin = outputs("cuda_nvcc")
        .into_iter()
        .find(|(n, _)| n == "bin")
        .unwrap()
        .1;
    let profile = std::fs::read_to_string(format!("{bin}/bin/nvcc.profile")).unwrap();
    let refs = references(&bin);
    for (dep, output) in [
        ("cuda_cudart", "include"),
        ("cuda_cudart", "static"),
        ("cuda_crt", "include"),
        ("cuda_cccl", "include"),
        ("libnvvm", "out"),
    ] {
        let path = outputs(dep)
            .into_iter()
            .find(|(n, _)| n == output)
            .unwrap_or_else(|| panic!("{dep}.{output}"))
            .1;
        assert!(
            profile.contains(&path),
            "{dep}.{output} ({path}) not in:\n{profile}"
        );
        assert!(
            refs.contains(&path),
            "{dep}.{output} not a reference: {refs:?}"
        );
    }
    // Every absolute path the profile names is in the store.
    for word in profile.split(|c: char| c.is_whitespace() || c == '"' || c == ':') {
        let path = word.trim_start_matches("-I").trim_start_matches("-L");
        if path.starts_with('/') {
            assert!(path.starts_with("/nix/store/"), "{path} in:\n{profile}");
        }
    }
    assert!(!profile.contains("$(_TARGET_DIR_)"), "{profile}");

    // The store nvcc compiles and links a program (outside the sandbox:
    // it needs a host compiler).
    let src = s.d.join("saxpy.cu");
    std::fs::write(&src, include_str!("../../../testdata/cuda/saxpy.cu")).unwrap();
    let exe = s.d.join("saxpy");
    let o = Command::new(format!("{bin}/bin/nvcc"))
        .args(["-arch=sm_90", "-o"])
        .arg(&exe)
        .arg(&src)
        .output()
        .unwrap();
    assert!(o.status.success(), "store nvcc:\n{}", text(&o));
    let o = Command::new(&exe).output().unwrap();
    let out = text(&o);
    assert!(
        out.contains("no CUDA device") || out.contains("saxpy max error: 0.000000"),
        "{out}"
    );
    drop(server);
}

/// The two manifests of the CUDA 13 set mirror: cuda (cudart, libcublas)
/// and cuDNN's.
fn set_manifests(dir: &Path) -> (PathBuf, PathBuf) {
    let mut cuda = None;
    let mut cudnn = None;
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with("redistrib_cudnn_") && name.ends_with(".json") {
            cudnn = Some(p);
        } else if name.starts_with("redistrib_") && name.ends_with(".json") {
            cuda = Some(p);
        }
    }
    (cuda.expect("cuda manifest"), cudnn.expect("cuDNN manifest"))
}

#[test]
#[ignore = "needs nix-bin, a static redist and the CUDA 13 set mirror: cargo xtask e2e-nix"]
fn a_cuda13_set_is_one_attribute_set_and_cudnn_references_the_sets_cublas() {
    let Some(mirror) = std::env::var_os("REDIST_SET_MIRROR").map(PathBuf::from) else {
        panic!("REDIST_SET_MIRROR is set by cargo xtask e2e-nix");
    };
    let (cuda, cudnn) = set_manifests(&mirror);
    let s = setup();
    let server = redist_fixtures::http::Server::start(mirror.clone());
    let url = server.url("");
    let builder = s.builder();
    let cache = s.d.join("cache");
    let o = run(
        &[
            "nix-expr".as_ref(),
            "-m".as_ref(),
            cuda.as_os_str(),
            "-m".as_ref(),
            cudnn.as_os_str(),
            "--platform".as_ref(),
            "linux-x86_64".as_ref(),
            "--cache-dir".as_ref(),
            cache.as_os_str(),
            "--builder".as_ref(),
            builder.as_ref(),
            "--mirror".as_ref(),
            url.as_ref(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let generated = String::from_utf8_lossy(&o.stdout).into_owned();
    // One attribute per component of both manifests, cuDNN's variant chosen
    // for the set's CUDA, its libDeps wired from what its libraries name.
    for attr in [
        "\"cuda_cudart\" = component",
        "\"libcublas\" = component",
        "\"cudnn\" = component",
    ] {
        assert!(generated.contains(attr), "{attr}:\n{generated}");
    }
    assert!(generated.contains("_cuda13-archive.tar.xz"), "{generated}");
    let cudnn_block = &generated[generated.find("\"cudnn\" = component").unwrap()..];
    let cudnn_block = &cudnn_block[..cudnn_block.find("};").unwrap()];
    assert!(
        cudnn_block.contains("setLibDeps = [ self.\"libcublas\".\"lib\" ];"),
        "{cudnn_block}"
    );
    assert!(
        generated.contains(
            "cudatoolkit = join \"cudatoolkit\" [ self.\"cuda_cudart\" self.\"libcublas\" ];"
        ),
        "{generated}"
    );
    std::fs::write(s.d.join("set.nix"), &generated).unwrap();
    let file = s.d.join("s.nix");
    std::fs::write(&file, format!(
        "let glibc = builtins.storePath \"{}\"; in import ./set.nix {{ dynamicLinker = \"${{glibc}}/lib/ld-linux-x86-64.so.2\"; libDeps = [ glibc ]; }}\n", s.glibc)).unwrap();
    let started = std::time::Instant::now();
    for attr in ["cudnn", "cudatoolkit"] {
        let o = nix_build(&file, attr, &[]);
        assert!(o.status.success(), "{attr}:\n{}", text(&o));
    }
    eprintln!(
        "cuDNN + cuBLAS + cudart under nix-build: {:.1}s",
        started.elapsed().as_secs_f64()
    );
    let lib_of = |attr: &str| {
        outputs_of(&file, attr)
            .into_iter()
            .find(|(n, _)| n == "lib")
            .unwrap_or_else(|| panic!("{attr}.lib"))
            .1
    };
    let (cudnn_lib, cublas_lib) = (lib_of("cudnn"), lib_of("libcublas"));
    // Nix found cuBLAS's path in cuDNN's libraries: a run-time dependency.
    let refs = references(&cudnn_lib);
    assert!(refs.contains(&cublas_lib), "{cublas_lib} not in {refs:?}");
    // It is the RUNPATH of the library that dlopens libcublasLt.so.13.
    let engines = std::fs::read_dir(format!("{cudnn_lib}/lib"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("libcudnn_engines_precompiled.so.")
        })
        .unwrap();
    let rp = elfpatch::read(&engines)
        .unwrap()
        .runpath
        .unwrap_or_default();
    assert!(rp.contains(&format!("{cublas_lib}/lib")), "{rp}");
    assert!(Path::new(&format!("{cublas_lib}/lib/libcublasLt.so.13")).exists());
    // The joined toolkit has the set's cuda components in one tree.
    let tk = outputs_of(&file, "cudatoolkit")[0].1.clone();
    for f in [
        "lib/libcublasLt.so.13",
        "lib/libcudart.so.13",
        "include/cuda_runtime_api.h",
    ] {
        assert!(Path::new(&tk).join(f).exists(), "{tk}/{f}");
    }
}
