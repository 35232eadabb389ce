//! `cargo xtask …`: the project's repeated chores, so nobody keeps shell
//! recipes in their head.
//!
//! - `demo`  — build a small redist-shaped mirror from our own fixtures and
//!   unpack a component of it with `redist`, printing the tree.
//! - `bench` — unpack throughput against `xz -dc` and `tar -xJf`, same run.
//! - `test`  — the whole suite on a fresh machine: installs what the tests
//!   need (Debian packages as root, CMake from PyPI, NVIDIA's mirrors),
//!   then `cargo test --workspace`, `e2e` and `e2e-nix`.
//! - `e2e`   — real NVIDIA binaries (mirrors built by `mirror`, cached under
//!   `target/`): CUDA 12 tools, the CUDA 13 compiler compiling with nvcc and
//!   CMake, cuDNN.
//! - `dist`  — a statically linked `redist`, what a Nix builder needs.
//! - `e2e-nix` — real `nix-build` in the sandbox with that binary.
//! - `mirror` — an NVIDIA-style redist mirror made from NVIDIA's PyPI wheels.
//! - `docs-check` — every shell block of the README, the guide and nix.md
//!   run against local mirrors (see `docs_check.rs`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod demo;
mod docs_check;
mod fuzz;
mod mirror;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match task {
        "demo" => demo::run(rest),
        "docs-check" => docs_check::run(rest),
        "bench" => bench(rest),
        "elf-corpus" => elf_corpus(rest),
        "fuzz" => fuzz::run(rest),
        "hostile" => sh(Command::new(cargo())
            .current_dir(root())
            .args([
                "run",
                "-q",
                "-p",
                "redist-fixtures",
                "--bin",
                "hostile",
                "--",
            ])
            .args(rest)),
        "test" => test(rest),
        "e2e" => e2e(rest),
        "dist" => dist().map(|p| println!("{}", p.display())),
        "e2e-nix" => e2e_nix(rest),
        "mirror" => mirror::run(rest),
        "set-mirror" => set_mirror().map(|p| println!("{}", p.display())),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 test [ARGS…]       the whole suite: installs what the tests need, cargo test --workspace, e2e, e2e-nix\n  \
                 demo               a mirror of our own fixtures installed into a prefix, and a program from it run\n  \
                 docs-check [FILE…] run every shell block of README.md, docs/guide.md, docs/nix.md (NVIDIA's URLs served from local mirrors)\n  \
                 bench [ARGS…]      unpack vs xz -dc and tar -xJf, patch vs patchelf (see `cargo xtask bench --help`)\n  \
                 bench scaling      divan: elfpatch edit cost at 100 KiB, 10 MiB, 100 MiB\n  \
                 bench install      cold installs against installs linked from the store (NVIDIA mirrors)\n  \
                 bench big          generated 0.5/1.5/3 GB archives (xz, multi-block xz, gzip, zstd) through `redist bench`; table into docs/benchmarks.md\n  \
                 hostile DIR [--large]  write the hostile archives (and EXPECTED.txt) the tests unpack\n  \
                 elf-corpus [DIR…]  every ELF file under /usr read, RUNPATH/interpreter edited, checked (part of test)\n  \
                 fuzz [--time SECS] [TARGET…]  the cargo-fuzz targets in fuzz/ (nightly; installs cargo-fuzz), 600 s each\n  \
                 e2e                real NVIDIA archives (cargo xtask mirror): CUDA 12 tools, the CUDA 13 compiler, cuDNN\n  \
                 dist               a statically linked redist (glibc crt-static), for Nix builders\n  \
                 e2e-nix            real sandboxed nix-build of generated expressions (installs nix-bin if missing)\n  \
                 set-mirror         target/cuda13-set-mirror: cudart + libcublas (cuda) and cuDNN (cudnn), two manifests\n  \
                 mirror OUT_DIR [--cuda 12|13] [--components a,b] [--xz-threads N] [--xz-level 0-9]\n                     \
                 [--wheel-cache DIR] [--label L]\n                     \
                 an NVIDIA-style redist mirror from NVIDIA's PyPI wheels (see `cargo xtask mirror --help`)"
            );
            return if task == "help" || task == "--help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

pub type Result<T = ()> = std::result::Result<T, String>;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is in the workspace")
        .to_owned()
}

/// The cargo that runs xtask (`$CARGO`), or `cargo`.
pub fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

/// Run a command, failing with its name on a non-zero exit.
pub fn sh(cmd: &mut Command) -> Result {
    let status = cmd.status().map_err(|e| format!("running {cmd:?}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{cmd:?} failed with {status}"))
    }
}

/// `cargo build --release` of the given packages; returns target/release.
pub fn build_release(packages: &[&str]) -> Result<PathBuf> {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root())
        .args(["build", "--release", "--quiet"]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    sh(&mut cmd)?;
    Ok(root().join("target/release"))
}

fn bench(args: &[String]) -> Result {
    if args.first().map(String::as_str) == Some("scaling") {
        // The divan benchmark of elfpatch: edit cost against file size.
        return sh(Command::new(cargo())
            .current_dir(root())
            .args(["bench", "-p", "elfpatch", "--bench", "scaling", "--"])
            .args(&args[1..]));
    }
    let mut args = args.to_vec();
    if args.first().map(String::as_str) == Some("install")
        && !args.iter().any(|a| a == "--manifest")
    {
        // NVIDIA's CUDA 12 components and the CUDA 13 compiler set.
        for dir in [nvidia_mirror()?, cuda13_mirror()?] {
            let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with("redistrib_") && name.ends_with(".json") {
                    args.push("--manifest".into());
                    args.push(e.path().to_string_lossy().into_owned());
                }
            }
        }
    }
    if args.first().map(String::as_str) == Some("big") {
        if !args.iter().any(|a| a == "--cache") {
            args.push("--cache".into());
            args.push(
                root()
                    .join("target/bench-archives")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        if !args.iter().any(|a| a == "--doc") {
            args.push("--doc".into());
            args.push(
                root()
                    .join("docs/benchmarks.md")
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    let release = build_release(&["redist-cli", "redist-benches"])?;
    sh(Command::new(release.join("redist-bench"))
        .args(&args)
        .env("REDIST_BIN", release.join("redist")))
}

/// The CUDA 12 NVIDIA mirror (ptxas, cudart, nvrtc), built once under
/// `target/` by `cargo xtask mirror` from NVIDIA's PyPI wheels.
fn nvidia_mirror() -> Result<PathBuf> {
    let dir = root().join("target/nvidia-mirror");
    mirror::ensure(
        &dir,
        "12",
        &["cuda_nvcc", "cuda_cudart", "cuda_nvrtc"],
        1,
        6,
    )?;
    Ok(dir)
}

/// The CUDA 13 compiler set (nvcc, crt, nvvm, cccl, cudart, nvrtc).
fn cuda13_mirror() -> Result<PathBuf> {
    let dir = root().join("target/cuda13-mirror");
    mirror::ensure(&dir, "13", &[], 2, 6)?;
    Ok(dir)
}

/// cuDNN for CUDA 13 with its own manifest (~500 MB of wheel; xz preset 1,
/// the tests measure no decoding).
fn cudnn_mirror() -> Result<PathBuf> {
    let dir = root().join("target/cudnn-mirror");
    mirror::ensure(&dir, "13", &["cudnn"], 2, 1)?;
    Ok(dir)
}

/// A set of two products for CUDA 13: a cuda manifest with cudart and
/// libcublas, and cuDNN's own manifest (cuDNN `dlopen`s cuBLASLt).
fn set_mirror() -> Result<PathBuf> {
    let dir = root().join("target/cuda13-set-mirror");
    mirror::ensure(&dir, "13", &["cuda_cudart", "libcublas", "cudnn"], 2, 1)?;
    Ok(dir)
}

/// A CMake new enough for CUDA 13 (`project(… LANGUAGES CUDA)`): the one
/// on `PATH` when it is 3.24 or newer, else CMake from PyPI in a virtual
/// environment under `target/`.
fn cmake() -> Result<PathBuf> {
    if let Ok(o) = Command::new("cmake").arg("--version").output() {
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let version: Vec<u32> = text
            .split_whitespace()
            .nth(2)
            .unwrap_or("")
            .split('.')
            .filter_map(|p| p.parse().ok())
            .collect();
        if version.as_slice() >= [3, 24].as_slice() {
            return Ok(PathBuf::from("cmake"));
        }
    }
    let venv = root().join("target/tools/venv");
    let cmake = venv.join("bin/cmake");
    if !cmake.exists() {
        eprintln!("xtask: installing cmake from PyPI into {}", venv.display());
        sh(Command::new("python3").args(["-m", "venv"]).arg(&venv))?;
        sh(Command::new(venv.join("bin/pip")).args(["install", "--quiet", "cmake"]))?;
    }
    Ok(cmake)
}

/// Debian packages the tests use as oracles and tools.
const DEBIAN_PACKAGES: &[&str] = &[
    "xz-utils",
    "zstd",
    "tar",
    "gcc",
    "g++",
    "libc6-dev",
    "binutils",
    "patchelf",
    "elfutils",
    "python3-pip",
    "python3-venv",
    "gcc-12-multilib",
    "lib32gcc-12-dev",
    "libc6-dev-i386",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "gcc-powerpc64-linux-gnu",
    "libc6-dev-ppc64-cross",
    "qemu-user",
    "nix-bin",
    "strace",
    "xfsprogs",
];

/// Commands the tests run, and the package that brings each.
const NEEDED: &[(&str, &str)] = &[
    ("xz", "xz-utils"),
    ("zstd", "zstd"),
    ("cc", "gcc"),
    ("g++", "g++"),
    ("readelf", "binutils"),
    ("patchelf", "patchelf"),
    ("eu-elflint", "elfutils"),
    ("aarch64-linux-gnu-gcc", "gcc-aarch64-linux-gnu"),
    ("powerpc64-linux-gnu-gcc", "gcc-powerpc64-linux-gnu"),
    ("qemu-aarch64", "qemu-user"),
    ("nix-build", "nix-bin"),
    ("strace", "strace"),
    ("mkfs.xfs", "xfsprogs"),
];

fn on_path(cmd: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
}

/// Install what the tests need: Debian's packages when running as root
/// (else the one command to run), NVIDIA's mirrors (cached), CMake.
fn setup() -> Result {
    let missing: Vec<&str> = NEEDED
        .iter()
        .filter(|(c, _)| !on_path(c))
        .map(|(_, p)| *p)
        .collect();
    if !missing.is_empty() {
        let root_user = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.trim_ascii() == b"0");
        if root_user && on_path("apt-get") {
            eprintln!("xtask test: installing Debian packages for the tests");
            sh(Command::new("apt-get")
                .args(["update", "-qq"])
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
            sh(Command::new("apt-get")
                .args(["install", "-y", "-qq", "--no-install-recommends"])
                .args(DEBIAN_PACKAGES)
                .env("DEBIAN_FRONTEND", "noninteractive"))?;
        } else {
            return Err(format!(
                "the tests need {} ; install them with:
  sudo apt-get install --no-install-recommends {}",
                missing.join(", "),
                DEBIAN_PACKAGES.join(" ")
            ));
        }
    }
    Ok(())
}

/// The whole suite on a fresh machine: set-up, unit and integration
/// tests, the real-NVIDIA end-to-end tests and the Nix builds.
fn test(args: &[String]) -> Result {
    setup()?;
    sh(Command::new(cargo())
        .current_dir(root())
        .args(["test", "--workspace"])
        .args(args))?;
    e2e(&[])?;
    e2e_nix(&[])?;
    elf_corpus(&[])
}

/// Every ELF file under `/usr` (or the directories given) read, edited in
/// memory and checked (`crates/elfpatch/examples/corpus.rs`).
fn elf_corpus(dirs: &[String]) -> Result {
    sh(Command::new(cargo())
        .current_dir(root())
        .args([
            "run",
            "--release",
            "-q",
            "-p",
            "elfpatch",
            "--example",
            "corpus",
            "--",
        ])
        .args(dirs))
}

/// `cargo test --release` of one of redist-cli's test files, running its
/// `#[ignore]`d tests (those that need mirrors, Nix or a static binary)
/// one at a time.
fn ignored_suite(suite: &str) -> Command {
    let mut cmd = Command::new(cargo());
    cmd.current_dir(root()).args([
        "test",
        "--release",
        "-p",
        "redist-cli",
        "--test",
        suite,
        "--",
        "--ignored",
        "--test-threads",
        "1",
    ]);
    cmd
}

fn e2e(_args: &[String]) -> Result {
    let mirror = nvidia_mirror()?;
    let cuda13 = cuda13_mirror()?;
    let cudnn = cudnn_mirror()?;
    let set = set_mirror()?;
    let cmake = cmake()?;
    for suite in ["nvidia_mirror", "toolkit"] {
        sh(ignored_suite(suite)
            .env("REDIST_NVIDIA_MIRROR", &mirror)
            .env("REDIST_CUDA13_MIRROR", &cuda13)
            .env("REDIST_CUDNN_MIRROR", &cudnn)
            .env("REDIST_SET_MIRROR", &set)
            .env("REDIST_CMAKE", &cmake))?;
    }
    Ok(())
}

/// `redist` linked statically against glibc: runs in a Nix sandbox with
/// nothing else. Prints its path.
fn dist() -> Result<PathBuf> {
    let target = "x86_64-unknown-linux-gnu";
    let cargo = cargo();
    sh(Command::new(cargo)
        .current_dir(root())
        .args([
            "build",
            "--release",
            "--quiet",
            "--target",
            target,
            "-p",
            "redist-cli",
        ])
        .env("RUSTFLAGS", "-C target-feature=+crt-static"))?;
    let bin = root().join("target").join(target).join("release/redist");
    let out = Command::new("ldd")
        .arg(&bin)
        .output()
        .map_err(|e| format!("ldd: {e}"))?;
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    if !text.contains("not a dynamic executable") && !text.contains("statically linked") {
        return Err(format!("{} is not static:\n{text}", bin.display()));
    }
    // Man pages and shell completions next to it.
    let dir = bin.parent().expect("in a directory").to_owned();
    sh(Command::new(&bin)
        .arg("generate-reference")
        .arg("--man")
        .arg(dir.join("man")))?;
    let completions = dir.join("completions");
    std::fs::create_dir_all(&completions).map_err(|e| format!("{}: {e}", completions.display()))?;
    for (shell, file) in [
        ("bash", "redist.bash"),
        ("zsh", "_redist"),
        ("fish", "redist.fish"),
    ] {
        let o = Command::new(&bin)
            .args(["generate-shell-completion", shell])
            .output()
            .map_err(|e| format!("{}: {e}", bin.display()))?;
        if !o.status.success() {
            return Err(format!("redist generate-shell-completion {shell} failed"));
        }
        std::fs::write(completions.join(file), o.stdout).map_err(|e| format!("{file}: {e}"))?;
    }
    Ok(bin)
}

fn e2e_nix(_args: &[String]) -> Result {
    if Command::new("nix-build").arg("--version").output().is_err() {
        eprintln!("xtask e2e-nix: installing Debian's nix-bin");
        sh(Command::new("apt-get")
            .args(["install", "-y", "-qq", "nix-bin"])
            .env("DEBIAN_FRONTEND", "noninteractive"))?;
    }
    let redist = dist()?;
    let mirror = nvidia_mirror()?;
    let cuda13 = cuda13_mirror()?;
    let set = set_mirror()?;
    let mut cmd = ignored_suite("nix");
    cmd.env("REDIST_STATIC", &redist)
        .env("REDIST_NVIDIA_MIRROR", &mirror)
        .env("REDIST_CUDA13_MIRROR", &cuda13)
        .env("REDIST_SET_MIRROR", &set);
    sh(&mut cmd)
}
