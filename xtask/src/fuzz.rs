//! `cargo xtask fuzz [--time SECS] [TARGET…]`: run the cargo-fuzz targets
//! in `fuzz/` (all five by default), each for SECS seconds (default 600),
//! from seeds built from the fixtures, and print executions per target.
//!
//! Installs what it needs: the nightly toolchain (rustup) and cargo-fuzz.
//! A crash stops nothing: the fuzzer keeps going (`-fork=1
//! -ignore_crashes=1`), the inputs land in `fuzz/artifacts/<target>/`, and
//! the command fails at the end naming them. Once fixed, copy each into
//! `fuzz/regressions/<target>/`, where `cargo test -p redist-fuzzcheck`
//! replays it.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use crate::{cargo, root, sh, Result};

const TARGETS: [&str; 5] = [
    "elf_edit",
    "archive_policy",
    "manifest",
    "rewriters",
    "location",
];

const USAGE: &str = "usage: cargo xtask fuzz [--time SECS] [TARGET…]

Runs each target (default: all of elf_edit archive_policy manifest rewriters
location) for SECS seconds (default 600; CI's smoke run uses 30), starting
from seeds built from the fixtures (fuzz/corpus/<target>, kept between runs).
Crashing inputs go to fuzz/artifacts/<target>/ and make the command fail.";

pub fn run(args: &[String]) -> Result {
    let mut secs = 600u64;
    let mut targets: Vec<String> = Vec::new();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--time" => {
                secs = it
                    .next()
                    .and_then(|s| s.parse().ok())
                    .ok_or("--time needs a number of seconds")?
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            t if TARGETS.contains(&t) => targets.push(t.to_owned()),
            other => return Err(format!("unknown target or option {other:?}\n\n{USAGE}")),
        }
    }
    if targets.is_empty() {
        targets = TARGETS.map(String::from).to_vec();
    }
    tools()?;
    let root = root();
    let fuzz = root.join("fuzz");
    sh(Command::new(cargo())
        .current_dir(&root)
        .args([
            "run",
            "-q",
            "-p",
            "redist-fuzzcheck",
            "--bin",
            "seeds",
            "--",
        ])
        .arg(fuzz.join("corpus")))?;
    sh(Command::new("cargo")
        .current_dir(&fuzz)
        .args(["+nightly", "fuzz", "build", "-O"]))?;
    let mut crashes = Vec::new();
    for t in &targets {
        let artifacts = fuzz.join("artifacts").join(t);
        let before = count(&artifacts);
        let start = Instant::now();
        let out = Command::new("cargo")
            .current_dir(&fuzz)
            .args(["+nightly", "fuzz", "run", "-O", t])
            .arg(fuzz.join("corpus").join(t))
            .args([
                "--",
                &format!("-max_total_time={secs}"),
                "-fork=1",
                "-ignore_crashes=1",
                "-rss_limit_mb=4096",
                "-timeout=30",
                "-print_final_stats=1",
            ])
            .output()
            .map_err(|e| format!("running cargo fuzz: {e}"))?;
        let log = String::from_utf8_lossy(&out.stderr);
        let execs = executions(&log);
        let took = start.elapsed().as_secs_f64();
        let found = count(&artifacts) - before;
        if found > 0 {
            crashes.push(format!("{t}: {found} new in {}", artifacts.display()));
        }
        println!(
            "{t:<16} {took:>6.0} s  {execs:>11} executions  {:>8.0}/s  corpus {:>5}  crashes {found}",
            execs as f64 / took,
            count(&fuzz.join("corpus").join(t)),
        );
    }
    if crashes.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the fuzzers found crashes:\n  {}",
            crashes.join("\n  ")
        ))
    }
}

/// Files in `dir` (0 when it does not exist).
fn count(dir: &Path) -> usize {
    std::fs::read_dir(dir).map_or(0, |rd| rd.count())
}

/// Executions libFuzzer reports: the sum over fork-mode jobs of
/// `stat::number_of_executed_units`, or the last `#N` status line.
fn executions(log: &str) -> u64 {
    let stats: u64 = log
        .lines()
        .filter_map(|l| l.strip_prefix("stat::number_of_executed_units:"))
        .filter_map(|v| v.trim().parse::<u64>().ok())
        .sum();
    let last_status = log
        .lines()
        .rev()
        .find_map(|l| {
            let rest = l.strip_prefix('#')?;
            rest.split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse::<u64>()
                .ok()
        })
        .unwrap_or(0);
    stats.max(last_status)
}

/// nightly and cargo-fuzz, installed when missing.
fn tools() -> Result {
    let has_nightly = Command::new("rustup")
        .args(["run", "nightly", "rustc", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_nightly {
        eprintln!("xtask fuzz: installing the nightly toolchain");
        sh(Command::new("rustup").args([
            "toolchain",
            "install",
            "nightly",
            "--profile",
            "minimal",
        ]))?;
    }
    let has_fuzz = Command::new("cargo")
        .args(["+nightly", "fuzz", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_fuzz {
        eprintln!("xtask fuzz: installing cargo-fuzz");
        sh(Command::new("cargo").args(["install", "cargo-fuzz", "--locked"]))?;
    }
    Ok(())
}
