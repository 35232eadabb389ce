//! `cargo xtask …`: the project's repeated chores, so nobody keeps shell
//! recipes in their head.
//!
//! - `demo`  — build a small redist-shaped mirror from our own fixtures and
//!   unpack a component of it with `redist`, printing the tree.
//! - `bench` — unpack throughput against `xz -dc` and `tar -xJf`, same run.
//! - `e2e`   — real NVIDIA binaries (`../shared/tools/nvidia-wheel-mirror`).

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
        _ => {
            eprintln!(
                "usage: cargo xtask <task>\n\n\
                 tasks:\n  \
                 demo               build a small redist-shaped mirror (target/demo) and unpack it\n  \
                 bench [ARGS…]      unpack throughput vs xz -dc and tar -xJf (see `cargo xtask bench --help`)\n  \
                 e2e                unpack real NVIDIA archives built by ../shared/tools/nvidia-wheel-mirror"
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
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root())
        .args(["build", "--release", "--quiet"]);
    for p in packages {
        cmd.args(["-p", p]);
    }
    sh(&mut cmd)?;
    Ok(root().join("target/release"))
}

fn bench(args: &[String]) -> Result {
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
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
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
