//! `cargo xtask …`: the project's repeated chores, so nobody keeps shell
//! recipes in their head.
//!
//! - `demo`  — build a small redist-shaped mirror from our own fixtures and
//!   unpack a component of it with `redist`, printing the tree.
//! - `bench` — unpack throughput against `xz -dc` and `tar -xJf`, same run.
//! - `e2e`   — real NVIDIA binaries (`../shared/tools/nvidia-wheel-mirror`).
//! - `dist`  — a statically linked `redist`, what a Nix builder needs.
//! - `e2e-nix` — real `nix-build` in the sandbox with that binary.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod demo;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (task, rest) = match args.split_first() {
        Some((t, r)) => (t.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match task {
        "demo" => demo::run(rest),
        "bench" => bench(rest),
        "e2e" => e2e(rest),
        "dist" => dist().map(|p| println!("{}", p.display())),
        "e2e-nix" => e2e_nix(rest),
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 demo               build a small redist-shaped mirror (target/demo) and unpack it\n  \
                 bench [ARGS…]      unpack vs xz -dc and tar -xJf, patch vs patchelf (see `cargo xtask bench --help`)\n  \
                 bench scaling      divan: elfpatch edit cost at 100 KiB, 10 MiB, 100 MiB\n  \
                 e2e                unpack real NVIDIA archives built by ../shared/tools/nvidia-wheel-mirror\n  \
                 dist               a statically linked redist (glibc crt-static), for Nix builders\n  \
                 e2e-nix            real sandboxed nix-build of generated expressions (installs nix-bin if missing)"
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
    let release = build_release(&["redist-cli", "redist-benches"])?;
    sh(Command::new(release.join("redist-bench"))
        .args(args)
        .env("REDIST_BIN", release.join("redist")))
}

/// Where the NVIDIA mirror is built (cached between runs).
fn nvidia_mirror() -> Result<PathBuf> {
    let tool = std::env::var_os("REDIST_NVIDIA_MIRROR_TOOL")
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("../shared/tools/nvidia-wheel-mirror"));
    if !tool.exists() {
        return Err(format!(
            "{} not found: the e2e suite needs the shared tools (set REDIST_NVIDIA_MIRROR_TOOL)",
            tool.display()
        ));
    }
    let dir = root().join("target/nvidia-mirror");
    let components = "cuda_nvcc,cuda_cudart,cuda_nvrtc";
    let stamp = dir.join(format!(".done-{components}"));
    if !stamp.exists() {
        eprintln!(
            "xtask e2e: building the NVIDIA mirror in {} (downloads ~180 MB from PyPI once)",
            dir.display()
        );
        let _ = std::fs::remove_dir_all(&dir);
        sh(Command::new(&tool)
            .arg(&dir)
            .args(["--components", components, "--xz-threads", "1"]))?;
        std::fs::write(&stamp, "").map_err(|e| e.to_string())?;
    }
    Ok(dir)
}

fn e2e(_args: &[String]) -> Result {
    let mirror = nvidia_mirror()?;
    let cargo = cargo();
    sh(Command::new(cargo)
        .current_dir(root())
        .args([
            "test",
            "--release",
            "-p",
            "redist-cli",
            "--test",
            "nvidia_mirror",
            "--",
            "--ignored",
            "--test-threads",
            "1",
        ])
        .env("REDIST_NVIDIA_MIRROR", &mirror))
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
    let mirror = nvidia_mirror().ok();
    let cargo = cargo();
    let mut cmd = Command::new(cargo);
    cmd.current_dir(root())
        .args([
            "test",
            "--release",
            "-p",
            "redist-cli",
            "--test",
            "nix",
            "--",
            "--ignored",
            "--test-threads",
            "1",
        ])
        .env("REDIST_STATIC", &redist);
    if let Some(m) = mirror {
        cmd.env("REDIST_NVIDIA_MIRROR", m);
    }
    sh(&mut cmd)
}
