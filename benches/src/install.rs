//! `redist-bench install`: what the store of unpacked trees buys, side by
//! side in one run, per manifest (`--manifest FILE`, repeatable; every
//! component of each is installed):
//!
//! - cold, `--no-store`: every archive decoded from the archive cache (how
//!   redist installed before the store);
//! - cold: the same, with the store empty, so each tree is also kept there;
//! - warm: a new prefix, every tree linked from the store (hard links; and
//!   `--link-mode copy`).
//!
//! Archives are always in the archive cache first: the comparison is
//! decoding against linking, not downloading.

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use crate::{best, default_work, redist_bin, reset};

struct Args {
    manifests: Vec<PathBuf>,
    runs: usize,
    work: PathBuf,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut a = Args {
        manifests: Vec::new(),
        runs: 3,
        work: default_work(),
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--manifest" => a.manifests.push(value()?.into()),
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--work" => a.work = value()?.into(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if a.manifests.is_empty() {
        return Err("redist-bench install: give --manifest FILE (cargo xtask bench install builds the NVIDIA mirrors)".into());
    }
    Ok(a)
}

pub fn run(args: Vec<String>) -> Result<(), String> {
    let a = parse(args)?;
    let redist = redist_bin();
    let work = a.work.join("install");
    reset(&work, true);
    let cache = work.join("cache");
    let prefix = work.join("prefix");
    println!(
        "install: best of {} runs, {} cores, tmpfs {}",
        a.runs,
        std::thread::available_parallelism().map_or(1, |n| n.get()),
        work.display()
    );
    println!(
        "  {:<34} {:>10} {:>10} {:>10} {:>10} {:>9}",
        "manifest", "no store", "cold", "warm", "warm copy", "cold/warm"
    );
    for manifest in &a.manifests {
        let install = |extra: &[&str]| {
            let mut c = Command::new(&redist);
            c.arg("install")
                .arg("--manifest")
                .arg(manifest)
                .arg("--cache-dir")
                .arg(&cache)
                .arg("--prefix")
                .arg(&prefix)
                .args(["--all", "--no-fsync", "-q"])
                .args(extra);
            c
        };
        // The archives into the cache, once.
        let fetched = Command::new(&redist)
            .arg("fetch")
            .arg("--manifest")
            .arg(manifest)
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--all", "-q"])
            .status()
            .map_err(|e| format!("{}: {e}", redist.display()))?;
        if !fetched.success() {
            return Err(format!("fetching {} failed", manifest.display()));
        }
        let store = cache.join("store");
        let no_store = best(
            a.runs,
            || reset(&prefix, false),
            || install(&["--no-store"]),
        )?;
        let cold = best(
            a.runs,
            || {
                reset(&prefix, false);
                reset(&store, false);
            },
            || install(&[]),
        )?;
        let warm = best(a.runs, || reset(&prefix, false), || install(&[]))?;
        let copy = best(
            a.runs,
            || reset(&prefix, false),
            || install(&["--link-mode", "copy"]),
        )?;
        let name = manifest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        println!(
            "  {:<34} {:>10} {:>10} {:>10} {:>10} {:>8.1}x",
            name,
            secs(no_store),
            secs(cold),
            secs(warm),
            secs(copy),
            cold.as_secs_f64() / warm.as_secs_f64()
        );
        reset(&prefix, false);
        reset(&store, false);
    }
    reset(&work, false);
    Ok(())
}

fn secs(d: Duration) -> String {
    format!("{:.3} s", d.as_secs_f64())
}
