//! `redist bench ARCHIVE…`: how fast redist unpacks these archives on this
//! machine, against the tools everyone has, measured in the same run.
//!
//! Per archive, three stages, each a child process timed with its peak
//! memory (`wait4`'s `ru_maxrss`), a warm-up run, then `--runs` runs:
//!
//! - `decode`: the decoder alone, bytes thrown away; baseline `xz -T N -dc`
//!   (N: redist's decoder threads, `--threads` or every core), `zstd -dc`
//!   or `gzip -dc`;
//! - `unpack`: the tree written, no ELF patching; baseline `tar -xf`
//!   (`tar -I 'xz -T N' -xf` for xz);
//! - `full`: what `redist unpack` does by default; the same baseline.
//!
//! The work directory is a fresh directory on tmpfs (`/dev/shm`) unless
//! `--dir` says otherwise, removed at the end; disks measure the
//! filesystem, not the unpacker.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::table::size;

/// `redist bench` arguments.
#[derive(clap::Args)]
pub struct Args {
    /// Archives (.tar.xz, .tar.gz, .tar.zst, .tar).
    #[arg(required = true)]
    archives: Vec<PathBuf>,
    /// Timed runs of each stage, after the warm-up runs.
    #[arg(long, default_value_t = 3, value_name = "N")]
    runs: usize,
    /// Untimed runs before them (0 for archives already in the page cache
    /// and too large to run twice).
    #[arg(long, default_value_t = 1, value_name = "N")]
    warmup: usize,
    /// Where trees are written (default: a new directory on /dev/shm, or
    /// the temporary directory; removed at the end).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Decoder threads (default: every core), also given to `xz -T`.
    #[arg(long, value_name = "N")]
    threads: Option<u32>,
    /// The decoder's memory budget (K, M, G suffixes), as `redist unpack
    /// --memory-limit`: multi-block xz decodes on fewer threads to fit.
    #[arg(long, value_name = "SIZE", value_parser = crate::parse_size)]
    memory_limit: Option<u64>,
    /// Print the figures as JSON.
    #[arg(long)]
    json: bool,
}

/// One command's timings.
#[derive(Debug, Clone, Serialize)]
struct Timing {
    /// The command, as a user would type it.
    command: String,
    /// Seconds of each run.
    seconds: Vec<f64>,
    min_s: f64,
    median_s: f64,
    /// Peak resident memory of the largest run, bytes.
    peak_rss: u64,
}

#[derive(Debug, Clone, Serialize)]
struct Stage {
    name: &'static str,
    redist: Timing,
    /// MB/s (10^6 bytes) of compressed and decompressed bytes, at the
    /// fastest run.
    mb_s_in: f64,
    mb_s_out: f64,
    /// The same job by the usual tool, when it is installed.
    baseline: Option<Timing>,
    /// Baseline time over redist's (above 1: redist is faster).
    ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
struct ArchiveBench {
    archive: PathBuf,
    format: redist::Format,
    bytes_in: u64,
    bytes_out: u64,
    decoder_threads: u32,
    runs: usize,
    stages: Vec<Stage>,
}

/// Run `cmd` to its end: wall time, peak RSS in bytes, success.
fn measure(cmd: &mut Command) -> std::io::Result<(Duration, u64, bool)> {
    cmd.stdin(Stdio::null()).stdout(Stdio::null());
    let started = Instant::now();
    let child = cmd.spawn()?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waits for our own child, with valid out-pointers.
    let rc = unsafe { libc::wait4(child.id() as libc::pid_t, &mut status, 0, &mut usage) };
    let took = started.elapsed();
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    let ok = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    Ok((took, (usage.ru_maxrss.max(0) as u64) * 1024, ok))
}

/// A warm-up run, then `runs` runs of `make()`; `reset` runs before each.
fn time(
    label: String,
    (warmup, runs): (usize, usize),
    make: &dyn Fn() -> Command,
    reset: &dyn Fn(),
) -> Result<Timing, String> {
    let mut seconds = Vec::new();
    let mut peak = 0;
    for i in 0..warmup + runs {
        reset();
        let (took, rss, ok) =
            measure(&mut make()).map_err(|e| format!("cannot run {label}: {e}"))?;
        if !ok {
            // Run it again with its errors shown, for the message.
            let o = make().output().map_err(|e| e.to_string())?;
            return Err(format!(
                "{label} failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
        }
        if i >= warmup {
            seconds.push(took.as_secs_f64());
            peak = peak.max(rss);
        }
    }
    let mut sorted = seconds.clone();
    sorted.sort_by(f64::total_cmp);
    Ok(Timing {
        command: label,
        min_s: sorted[0],
        median_s: sorted[sorted.len() / 2],
        seconds,
        peak_rss: peak,
    })
}

fn installed(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// The work directory: `--dir`, else a new one on tmpfs.
fn work_dir(asked: Option<&Path>) -> Result<(PathBuf, bool), String> {
    if let Some(d) = asked {
        std::fs::create_dir_all(d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
        return Ok((d.to_owned(), false));
    }
    let base = Path::new("/dev/shm");
    let base = if base.is_dir() {
        base.to_owned()
    } else {
        std::env::temp_dir()
    };
    let d = base.join(format!("redist-bench-{}", std::process::id()));
    std::fs::create_dir_all(&d).map_err(|e| format!("cannot create {}: {e}", d.display()))?;
    Ok((d, true))
}

fn bench_one(exe: &Path, archive: &Path, work: &Path, args: &Args) -> Result<ArchiveBench, String> {
    let threads = args
        .threads
        .unwrap_or_else(|| redist::default_threads() as u32);
    let memory = args.memory_limit.map(|m| m.to_string());
    // The sizes, from a decode in a child: this process stays small, and
    // children start from its peak memory (Linux keeps it across exec).
    let o = Command::new(exe)
        .arg("bench-decode")
        .arg(archive)
        .args(["--threads", &threads.to_string()])
        .args(memory.iter().flat_map(|m| ["--memory-limit", m.as_str()]))
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !o.status.success() {
        return Err(String::from_utf8_lossy(&o.stderr)
            .trim()
            .trim_start_matches("error: ")
            .to_owned());
    }
    let decoded: Decoded = serde_json::from_slice(&o.stdout)
        .map_err(|e| format!("bench-decode printed something else: {e}"))?;
    let out = work.join("out");
    let reset = || {
        let _ = std::fs::remove_dir_all(&out);
    };
    let shown = archive.display().to_string();
    let t = threads.to_string();
    let redist_cmd = |extra: &[&str]| {
        let mut c = Command::new(exe);
        c.args(extra).arg(archive).args(["--threads", &t]);
        if let Some(m) = &memory {
            c.args(["--memory-limit", m]);
        }
        c
    };
    let mut stages = Vec::new();
    let decode = time(
        format!("redist bench-decode {shown}"),
        (args.warmup, args.runs),
        &|| redist_cmd(&["bench-decode"]),
        &|| {},
    )?;
    let (tool, tool_args): (&str, Vec<String>) = match decoded.format {
        redist::Format::Xz => (
            "xz",
            // As many threads as redist's decoder: a multi-block archive
            // decodes in parallel in both.
            vec![format!("-T{threads}"), "-dc".into()],
        ),
        redist::Format::Zstd => ("zstd", vec!["-dc".into()]),
        redist::Format::Gzip => ("gzip", vec!["-dc".into()]),
        redist::Format::Tar => ("cat", vec![]),
    };
    let decode_base = if installed(tool) {
        Some(time(
            format!("{tool} {} {shown}", tool_args.join(" ")),
            (args.warmup, args.runs),
            &|| {
                let mut c = Command::new(tool);
                c.args(&tool_args).arg(archive);
                c
            },
            &|| {},
        )?)
    } else {
        None
    };
    stages.push(stage("decode", decode, decode_base, &decoded));
    // One tar baseline serves both tree-writing stages; for xz, tar runs
    // `xz` with the same threads.
    let xz_program = format!("xz -T{threads}");
    let tar_args: Vec<&str> = match decoded.format {
        redist::Format::Xz => vec!["-I", &xz_program, "-xf"],
        _ => vec!["-xf"],
    };
    let tar = if installed("tar") {
        Some(time(
            format!("tar {} {shown} -C DIR", tar_args.join(" ")),
            (args.warmup, args.runs),
            &|| {
                let _ = std::fs::create_dir_all(&out);
                let mut c = Command::new("tar");
                c.args(&tar_args).arg(archive).arg("-C").arg(&out);
                c
            },
            &reset,
        )?)
    } else {
        None
    };
    let o = out.display().to_string();
    let unpack = time(
        format!("redist unpack --no-patch --no-fsync {shown}"),
        (args.warmup, args.runs),
        &|| redist_cmd(&["unpack", "-q", "--no-patch", "--no-fsync", "--out", &o]),
        &reset,
    )?;
    stages.push(stage("unpack", unpack, tar.clone(), &decoded));
    let full = time(
        format!("redist unpack --no-fsync {shown}"),
        (args.warmup, args.runs),
        &|| redist_cmd(&["unpack", "-q", "--no-fsync", "--out", &o]),
        &reset,
    )?;
    stages.push(stage("full", full, tar, &decoded));
    reset();
    Ok(ArchiveBench {
        archive: archive.to_owned(),
        format: decoded.format,
        bytes_in: decoded.bytes_in,
        bytes_out: decoded.bytes_out,
        decoder_threads: decoded.threads,
        runs: args.runs,
        stages,
    })
}

fn stage(name: &'static str, redist: Timing, baseline: Option<Timing>, d: &Decoded) -> Stage {
    let mb = |bytes: u64| bytes as f64 / 1e6 / redist.min_s.max(1e-9);
    Stage {
        name,
        mb_s_in: mb(d.bytes_in),
        mb_s_out: mb(d.bytes_out),
        ratio: baseline.as_ref().map(|b| b.min_s / redist.min_s.max(1e-9)),
        baseline,
        redist,
    }
}

pub fn run(args: Args) -> Result<(), String> {
    if args.runs == 0 {
        return Err("--runs must be at least 1".into());
    }
    let exe = std::env::current_exe().map_err(|e| format!("cannot find redist itself: {e}"))?;
    let (work, made) = work_dir(args.dir.as_deref())?;
    let mut results = Vec::new();
    let mut failed = None;
    for a in &args.archives {
        if !args.json {
            eprintln!(
                "redist bench: {} ({} runs of each stage)…",
                a.display(),
                args.runs
            );
        }
        match bench_one(&exe, a, &work, &args) {
            Ok(r) => {
                if !args.json {
                    print!("{}", render(&r));
                }
                results.push(r);
            }
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    if made {
        let _ = std::fs::remove_dir_all(&work);
    }
    if let Some(e) = failed {
        return Err(e);
    }
    if args.json {
        let mut out = std::io::stdout().lock();
        let _ = serde_json::to_writer_pretty(&mut out, &results);
        let _ = writeln!(out);
    }
    Ok(())
}

fn render(r: &ArchiveBench) -> String {
    let mut s = format!(
        "{} ({}, {} → {}, {} decoder thread{})\n{:<7} {:>9} {:>9} {:>9} {:>9} {:>9}  {:<28} {:>9} {:>9} {:>7}\n",
        r.archive.display(),
        r.format,
        size(r.bytes_in),
        size(r.bytes_out),
        r.decoder_threads,
        if r.decoder_threads == 1 { "" } else { "s" },
        "stage",
        "min",
        "median",
        "MB/s in",
        "MB/s out",
        "peak RSS",
        "baseline",
        "min",
        "peak RSS",
        "ratio",
    );
    for st in &r.stages {
        let (bname, bmin, brss, ratio) = match (&st.baseline, st.ratio) {
            (Some(b), Some(x)) => {
                let tool: String = b
                    .command
                    .split(' ')
                    .take_while(|w| !w.contains('/'))
                    .collect::<Vec<_>>()
                    .join(" ");
                (
                    tool,
                    format!("{:.3} s", b.min_s),
                    size(b.peak_rss),
                    format!("{x:.2}×"),
                )
            }
            _ => ("(not installed)".into(), "-".into(), "-".into(), "-".into()),
        };
        s.push_str(&format!(
            "{:<7} {:>9} {:>9} {:>9.0} {:>9.0} {:>9}  {:<28} {:>9} {:>9} {:>7}\n",
            st.name,
            format!("{:.3} s", st.redist.min_s),
            format!("{:.3} s", st.redist.median_s),
            st.mb_s_in,
            st.mb_s_out,
            size(st.redist.peak_rss),
            bname,
            bmin,
            brss,
            ratio
        ));
    }
    s.push_str("ratio: the baseline's fastest run over redist's (above 1: redist is faster)\n");
    s
}

/// What `bench-decode` prints.
#[derive(serde::Deserialize)]
struct Decoded {
    format: redist::Format,
    bytes_in: u64,
    bytes_out: u64,
    threads: u32,
}

/// The hidden `bench-decode` stage: decode and discard; print the sizes.
pub fn decode(
    archive: &Path,
    threads: Option<u32>,
    memory: Option<u64>,
) -> Result<(), redist::Error> {
    let t = threads.unwrap_or_else(|| redist::default_threads() as u32);
    let d = redist::decode_only(redist::Input::Path(archive.to_owned()), t, memory)?;
    println!("{}", serde_json::to_string(&d).unwrap_or_default());
    Ok(())
}
