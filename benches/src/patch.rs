//! `redist-bench patch`: RUNPATH edits against Debian's `patchelf`, same
//! run, same files.
//!
//! - Corpus: every shared library of `--corpus` (default
//!   `/usr/lib/x86_64-linux-gnu`, top level) that both tools can patch,
//!   given a 200-character RUNPATH: `redist patchelf` once for all files
//!   (parallel), `patchelf` once per file (how build scripts call it), and
//!   `patchelf` once with all files.
//! - One 128 MiB library (a big `.data` array, compiled with `cc`): patchelf
//!   rewrites the whole file, redist writes headers and a tail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::{best, default_work, redist_bin, reset};

struct Args {
    corpus: PathBuf,
    runs: usize,
    work: PathBuf,
}

fn parse(args: Vec<String>) -> Result<Args, String> {
    let mut a = Args {
        corpus: "/usr/lib/x86_64-linux-gnu".into(),
        runs: 3,
        work: default_work(),
    };
    let mut it = args.into_iter();
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--corpus" => a.corpus = value()?.into(),
            "--runs" => a.runs = value()?.parse().map_err(|e| format!("--runs: {e}"))?,
            "--work" => a.work = value()?.into(),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn copy_all(files: &[PathBuf], to: &Path) -> Vec<PathBuf> {
    reset(to, true);
    files
        .iter()
        .map(|f| {
            let dst = to.join(f.file_name().expect("a file name"));
            std::fs::copy(f, &dst).expect("copy corpus file");
            dst
        })
        .collect()
}

fn quiet(cmd: &mut Command) -> bool {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub fn run(args: Vec<String>) -> Result<(), String> {
    let args = parse(args)?;
    let redist = redist_bin();
    if !quiet(Command::new("patchelf").arg("--version")) {
        return Err("Debian's patchelf is the baseline: apt-get install patchelf".into());
    }
    let version = Command::new("patchelf")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    let work = args.work.join("patch");
    std::fs::create_dir_all(&work).map_err(|e| format!("{}: {e}", work.display()))?;
    let runpath = format!("/{}", "p".repeat(199));

    // The corpus: shared libraries both tools can patch.
    let mut libs: Vec<PathBuf> = std::fs::read_dir(&args.corpus)
        .map_err(|e| format!("{}: {e}", args.corpus.display()))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.contains(".so")
                && std::fs::symlink_metadata(p).is_ok_and(|m| m.is_file() && m.len() < 200 << 20)
                && std::fs::read(p)
                    .map(|d| d.starts_with(b"\x7fELF"))
                    .unwrap_or(false)
        })
        .collect();
    libs.sort();
    let probe = work.join("probe");
    let copies = copy_all(&libs, &probe);
    let ok: Vec<PathBuf> = libs
        .iter()
        .zip(&copies)
        .filter(|(_, c)| {
            quiet(
                Command::new(&redist)
                    .args(["patchelf", "--set-rpath", &runpath])
                    .arg(c),
            ) && quiet(
                Command::new("patchelf")
                    .args(["--set-rpath", &runpath])
                    .arg(c),
            )
        })
        .map(|(l, _)| l.clone())
        .collect();
    let bytes: u64 = ok
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "patch benchmark: best of {} runs, work dir {} ({version}; {} cores)",
        args.runs,
        work.display(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    println!(
        "corpus: {} of {} shared libraries in {} ({:.1} MiB) that both tools patch; RUNPATH of {} characters\n",
        ok.len(),
        libs.len(),
        args.corpus.display(),
        bytes as f64 / (1 << 20) as f64,
        runpath.len()
    );
    let dir = work.join("corpus");
    let files = |d: &Path| -> Vec<PathBuf> {
        ok.iter()
            .map(|f| d.join(f.file_name().expect("name")))
            .collect()
    };
    let ours = best(
        args.runs,
        || {
            copy_all(&ok, &dir);
        },
        || {
            let mut c = Command::new(&redist);
            c.args(["patchelf", "--set-rpath", &runpath])
                .args(files(&dir));
            c
        },
    )?;
    let theirs_all = best(
        args.runs,
        || {
            copy_all(&ok, &dir);
        },
        || {
            let mut c = Command::new("patchelf");
            c.args(["--set-rpath", &runpath]).args(files(&dir));
            c
        },
    )?;
    // One process per file, as build scripts do: timed as a shell loop.
    let script = work.join("per-file.sh");
    let body: String = files(&dir)
        .iter()
        .map(|f| {
            format!(
                "patchelf --set-rpath '{runpath}' '{}' || exit 1\n",
                f.display()
            )
        })
        .collect();
    std::fs::write(&script, body).map_err(|e| e.to_string())?;
    let theirs_each = best(
        args.runs,
        || {
            copy_all(&ok, &dir);
        },
        || {
            let mut c = Command::new("sh");
            c.arg(&script);
            c
        },
    )?;
    let rate = |d: Duration| ok.len() as f64 / d.as_secs_f64();
    println!(
        "{:<44} {:>9} {:>10} {:>12}",
        "command", "seconds", "files/s", "redist is"
    );
    println!(
        "{:<44} {:>8.3}s {:>10.0} {:>12}",
        "redist patchelf, one process, all files",
        ours.as_secs_f64(),
        rate(ours),
        "-"
    );
    println!(
        "{:<44} {:>8.3}s {:>10.0} {:>11.1}x",
        "patchelf, one process per file",
        theirs_each.as_secs_f64(),
        rate(theirs_each),
        theirs_each.as_secs_f64() / ours.as_secs_f64()
    );
    println!(
        "{:<44} {:>8.3}s {:>10.0} {:>11.1}x",
        "patchelf, one process, all files",
        theirs_all.as_secs_f64(),
        rate(theirs_all),
        theirs_all.as_secs_f64() / ours.as_secs_f64()
    );

    // One big library.
    let src = work.join("big.c");
    std::fs::write(
        &src,
        "char big_data[128 << 20] = {1};\nint big_first(void) { return big_data[0]; }\n",
    )
    .map_err(|e| e.to_string())?;
    let big = work.join("libbig.so");
    if !quiet(
        Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&big)
            .arg(&src),
    ) {
        return Err("cc could not build the 128 MiB library".into());
    }
    let size = std::fs::metadata(&big).map(|m| m.len()).unwrap_or(0);
    let target = work.join("libbig-copy.so");
    let prep = || {
        let _ = std::fs::copy(&big, &target);
    };
    let ours_big = best(args.runs, prep, || {
        let mut c = Command::new(&redist);
        c.args(["patchelf", "--set-rpath", &runpath]).arg(&target);
        c
    })?;
    let theirs_big = best(args.runs, prep, || {
        let mut c = Command::new("patchelf");
        c.args(["--set-rpath", &runpath]).arg(&target);
        c
    })?;
    println!(
        "\none {:.0} MiB library: redist {:.4}s, patchelf {:.4}s: redist is {:.0}x faster",
        size as f64 / (1 << 20) as f64,
        ours_big.as_secs_f64(),
        theirs_big.as_secs_f64(),
        theirs_big.as_secs_f64() / ours_big.as_secs_f64()
    );
    reset(&work, false);
    Ok(())
}
