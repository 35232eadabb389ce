//! `redist-bench` (run it through `cargo xtask bench`): unpack throughput of
//! `redist` against the baselines it must beat, measured in the same run on
//! the same files: `xz -dc > /dev/null` (the single-threaded floor),
//! `xz -T0 -dc` (for multi-block archives) and `tar -xJf`.
//!
//! Work happens on tmpfs (`/dev/shm`) when there is one: on ext4, deleting
//! and re-creating trees is dominated by the filesystem, not by us.
//!
//! Archives: `--archive FILE` (repeatable), `--mirror DIR` (every `.tar.xz`
//! under a mirror made by `nvidia-wheel-mirror`), or by default a synthetic
//! redist-shaped archive in single- and multi-block xz.
//!
//! `redist-bench patch …`: RUNPATH edits against `patchelf`; see `patch.rs`.
//! `redist-bench install …`: cold installs against the store; see `install.rs`.
//! `redist-bench big …`: generated 0.5/1.5/3 GB archives through `redist bench`; see `big.rs`.

mod big;
mod install;
mod patch;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use redist_fixtures::{compress, Archive, Compression, Item};

const USAGE: &str = "usage: redist-bench unpack [--archive FILE]... [--mirror DIR] [--runs N] [--synthetic-mib N] [--work DIR]
       redist-bench patch [--corpus DIR] [--runs N] [--work DIR]
       redist-bench install --manifest FILE... [--runs N] [--work DIR]
       redist-bench big [--sizes 0.5,1.5,3] [--formats xz,xz-multiblock,gzip,zstd] [--cache DIR] [--runs N] [--threads N] [--doc FILE]
       redist-bench            (both, with defaults)

Prints, per archive, the best of N runs of each command and the ratio of
redist's time to each baseline's (above 1.0 = redist is faster).";

struct Args {
    archives: Vec<PathBuf>,
    runs: usize,
    synthetic_mib: usize,
    work: PathBuf,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut a = Args {
        archives: Vec::new(),
        runs: 3,
        synthetic_mib: 96,
        work: default_work(),
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value\n{USAGE}"));
        match flag.as_str() {
            "--archive" => a.archives.push(value()?.into()),
            "--mirror" => {
                let dir = PathBuf::from(value()?);
                let mut found = Vec::new();
                find_archives(&dir, &mut found);
                found.sort();
                a.archives.extend(found);
            }
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--synthetic-mib" => {
                a.synthetic_mib = value()?
                    .parse()
                    .map_err(|e| format!("--synthetic-mib: {e}"))?
            }
            "--work" => a.work = value()?.into(),
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(a)
}

fn find_archives(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            find_archives(&p, out);
        } else if p.to_string_lossy().ends_with(".tar.xz") {
            out.push(p);
        }
    }
}

/// A redist-shaped archive of about `mib` MiB of text-like, compressible
/// data (xz ratio about 3–4, like NVIDIA's libraries).
fn synthetic(mib: usize) -> Archive {
    const WORDS: [&str; 16] = [
        "cuda",
        "kernel",
        "__global__",
        "ptx",
        "sm_90",
        "float4",
        "memcpy",
        "stream",
        "0x7f3a",
        "launch",
        "grid",
        "block",
        "shared",
        "atomicAdd",
        "libcudart",
        "\n",
    ];
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut items = vec![Item::Dir("bench-linux-x86_64-1.0-archive/".into())];
    let file_size = 2 << 20;
    for i in 0..(mib / 2).max(1) {
        let mut data = Vec::with_capacity(file_size + 64);
        while data.len() < file_size {
            let r = next();
            data.extend_from_slice(WORDS[(r & 15) as usize].as_bytes());
            data.push(b' ');
            if r & 0x300 == 0 {
                data.extend_from_slice(&r.to_le_bytes()[2..6]);
            }
        }
        let dir = ["lib", "include", "bin", "nvvm/lib64"][i % 4];
        items.push(Item::exe(
            &format!("bench-linux-x86_64-1.0-archive/{dir}/file{i}.so"),
            data,
        ));
    }
    Archive { items }
}

/// Best of `runs` wall-clock times; `prepare` runs untimed before each.
pub fn best(
    runs: usize,
    mut prepare: impl FnMut(),
    mut cmd: impl FnMut() -> Command,
) -> Result<Duration, String> {
    let mut best = Duration::MAX;
    for _ in 0..runs {
        prepare();
        let mut c = cmd();
        c.stdout(Stdio::null());
        let start = Instant::now();
        let status = c.status().map_err(|e| format!("{c:?}: {e}"))?;
        let t = start.elapsed();
        if !status.success() {
            return Err(format!("{c:?} failed with {status}"));
        }
        best = best.min(t);
    }
    Ok(best)
}

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let which = match args.first().map(String::as_str) {
        Some("unpack") | Some("patch") | Some("install") | Some("big") => args.remove(0),
        _ => "all".into(),
    };
    let result = match which.as_str() {
        "unpack" => unpack(args),
        "patch" => patch::run(args),
        "install" => install::run(args),
        "big" => big::run(args),
        _ => unpack(args).and_then(|()| patch::run(Vec::new())),
    };
    if let Err(e) = result {
        eprintln!("redist-bench: {e}");
        std::process::exit(1);
    }
}

/// The `redist` binary under test.
pub fn redist_bin() -> PathBuf {
    std::env::var_os("REDIST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| "redist".into())
}

/// The scratch directory: tmpfs when there is one.
pub fn default_work() -> PathBuf {
    if Path::new("/dev/shm").is_dir() {
        "/dev/shm/redist-bench".into()
    } else {
        std::env::temp_dir().join("redist-bench")
    }
}

fn unpack(args: Vec<String>) -> Result<(), String> {
    let args = parse(args)?;
    let redist = redist_bin();
    std::fs::create_dir_all(&args.work).map_err(|e| format!("{}: {e}", args.work.display()))?;
    let mut archives = args.archives.clone();
    if archives.is_empty() {
        eprintln!(
            "redist-bench: generating a {} MiB synthetic archive (single- and multi-block xz)…",
            args.synthetic_mib
        );
        let tar = synthetic(args.synthetic_mib).tar();
        for (name, c) in [
            ("synthetic-1block.tar.xz", Compression::Xz),
            ("synthetic-multiblock.tar.xz", Compression::XzMultiBlock),
        ] {
            let p = args.work.join(name);
            std::fs::write(&p, compress(&tar, c)).map_err(|e| format!("{}: {e}", p.display()))?;
            archives.push(p);
        }
    }
    let xz_version = Command::new("xz")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .unwrap_or_else(|_| "xz not found".into());
    println!(
        "unpack benchmark: best of {} runs, work dir {} ({}; {} cores)",
        args.runs,
        args.work.display(),
        xz_version,
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!();
    println!(
        "{:<52} {:>8} {:>8} | {:>8} {:>8} {:>8} {:>8} | {:>9} {:>9} {:>9} {:>8}",
        "archive",
        "xz MiB",
        "tar MiB",
        "xz -dc",
        "xz -T0",
        "tar -xJf",
        "redist",
        "vs xz-dc",
        "vs xz-T0",
        "vs tar",
        "MiB/s"
    );
    let tar_dir = args.work.join("tar-out");
    let red_dir = args.work.join("redist-out");
    let mut results = Vec::new();
    for archive in &archives {
        let size_in = std::fs::metadata(archive)
            .map_err(|e| format!("{}: {e}", archive.display()))?
            .len();
        let xz1 = best(
            args.runs,
            || {},
            || {
                let mut c = Command::new("xz");
                c.args(["-T1", "-dc"]).arg(archive);
                c
            },
        )?;
        let xzn = best(
            args.runs,
            || {},
            || {
                let mut c = Command::new("xz");
                c.args(["-T0", "-dc"]).arg(archive);
                c
            },
        )?;
        let tar = best(
            args.runs,
            || reset(&tar_dir, true),
            || {
                let mut c = Command::new("tar");
                c.arg("-xJf").arg(archive).arg("-C").arg(&tar_dir);
                c
            },
        )?;
        let red = best(
            args.runs,
            || reset(&red_dir, false),
            || {
                let mut c = Command::new(&redist);
                // Like `tar -x`, no flush to disk (`--no-fsync`).
                c.arg("unpack")
                    .arg(archive)
                    .arg("--out")
                    .arg(&red_dir)
                    .arg("--no-fsync")
                    .arg("-q");
                c
            },
        )?;
        reset(&red_dir, false);
        let report = Command::new(&redist)
            .arg("unpack")
            .arg(archive)
            .arg("--out")
            .arg(&red_dir)
            .arg("--json")
            .output()
            .map_err(|e| e.to_string())?;
        let report: serde_json::Value =
            serde_json::from_slice(&report.stdout).map_err(|e| format!("redist --json: {e}"))?;
        let decoded = report["bytes_decoded"].as_u64().unwrap_or(0);
        let mib = |b: u64| b as f64 / (1 << 20) as f64;
        let name = archive
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "{:<52} {:>8.1} {:>8.1} | {:>7.2}s {:>7.2}s {:>7.2}s {:>7.2}s | {:>8.2}x {:>8.2}x {:>8.2}x {:>8.0}",
            name,
            mib(size_in),
            mib(decoded),
            xz1.as_secs_f64(),
            xzn.as_secs_f64(),
            tar.as_secs_f64(),
            red.as_secs_f64(),
            xz1.as_secs_f64() / red.as_secs_f64(),
            xzn.as_secs_f64() / red.as_secs_f64(),
            tar.as_secs_f64() / red.as_secs_f64(),
            mib(decoded) / red.as_secs_f64(),
        );
        results.push(serde_json::json!({
            "archive": archive, "bytes_in": size_in, "bytes_decoded": decoded,
            "seconds": { "xz_dc": xz1.as_secs_f64(), "xz_T0_dc": xzn.as_secs_f64(), "tar_xJf": tar.as_secs_f64(), "redist": red.as_secs_f64() },
        }));
    }
    reset(&tar_dir, false);
    reset(&red_dir, false);
    println!("\nratios: baseline time / redist time (above 1.00x = redist faster); MiB/s over decompressed bytes");
    let json = args.work.join("unpack-bench.json");
    let _ = std::fs::write(
        &json,
        serde_json::to_string_pretty(&results).unwrap_or_default(),
    );
    println!("raw figures: {}", json.display());
    Ok(())
}

pub fn reset(dir: &Path, create: bool) {
    let _ = std::fs::remove_dir_all(dir);
    if create {
        let _ = std::fs::create_dir_all(dir);
    }
}
