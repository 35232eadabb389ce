//! The system's own shared libraries as a corpus: every ELF file named
//! `*.so*` at the top of `/usr/lib/x86_64-linux-gnu` is copied and given a
//! 200-character RUNPATH with `patch_file`, then, on top of that, two new
//! `DT_NEEDED` entries and a longer SONAME (which grows `.dynamic`).
//!
//! After each step the loader judges (what `dlopen(RTLD_NOW)`ed before still
//! does), Debian's `patchelf` reads the new values back, and `eu-elflint`
//! finds nothing it did not find in the original.
//!
//! The test fails on any failure it cannot explain; run it with
//! `--nocapture` to see the figures.

mod common;

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::*;
use elfpatch::{patch_file, read, Edits, ErrorKind, RunpathEdit, Unsupported};

const CORPUS: &str = "/usr/lib/x86_64-linux-gnu";
/// Larger files are skipped, to keep the run short.
const MAX_SIZE: u64 = 200 << 20;
/// How long one `dlopen` may take (constructors run).
const DLOPEN_TIMEOUT: Duration = Duration::from_secs(20);
/// At most this many libraries are copied, patched and loaded at a time.
const WORKERS: usize = 2;
/// Added by the second step: glibc libraries every system has.
const EXTRA_NEEDED: &[&str] = &["libm.so.6", "libdl.so.2"];

/// Exactly 200 characters of directories that do not exist, so the
/// libraries' dependencies still resolve through the default paths.
fn runpath_200() -> String {
    let mut s = String::new();
    let mut i = 0;
    while s.len() < 200 {
        if !s.is_empty() {
            s.push(':');
        }
        write!(s, "/nonexistent/elfpatch-corpus/directory-{i:02}").unwrap();
        i += 1;
    }
    s.truncate(200);
    s
}

/// What `dlopen` made of a library.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Load {
    Ok,
    Failed(String),
    TimedOut,
}

/// One edit of one library and what the oracles said.
#[derive(Debug)]
struct Step {
    patched: Result<(), elfpatch::Error>,
    /// `dlopen` afterwards, for libraries that loaded before.
    after: Option<Load>,
    /// What `patchelf` printed, or why it failed.
    printed: Result<String, String>,
    /// What it should have printed.
    expected: String,
    /// `eu-elflint` messages the original did not have.
    new_lint: Vec<String>,
}

/// What happened to one library.
#[derive(Debug)]
struct Record {
    name: String,
    before: Load,
    /// `patchelf --print-rpath` of the original, when it failed after.
    printed_original: Option<Result<String, String>>,
    runpath: Step,
    /// Needed libraries and SONAME, after the RUNPATH (when that worked).
    needed: Option<Step>,
}

/// Picks one step of a record.
type StepOf = fn(&Record) -> Option<&Step>;

/// Runs `dlopen_check LIB` with a time limit, `LD_LIBRARY_PATH` unset.
fn dlopen(check: &Path, lib: &Path) -> Load {
    let mut child = Command::new(check)
        .arg(lib)
        .env_remove("LD_LIBRARY_PATH")
        .env_remove("LD_PRELOAD")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > DLOPEN_TIMEOUT {
            child.kill().ok();
            child.wait().ok();
            return Load::TimedOut;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .ok();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .ok();
    if status.success() && stdout == "ok\n" {
        Load::Ok
    } else {
        Load::Failed(format!("{status}: {}", stderr.trim()))
    }
}

/// `patchelf --print-WHAT FILE` for each `what`, joined by `;`.
fn patchelf(what: &[&str], file: &Path) -> Result<String, String> {
    let mut printed = Vec::new();
    for w in what {
        let out = Command::new("patchelf")
            .arg(format!("--print-{w}"))
            .arg(file)
            .output()
            .unwrap();
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).trim().to_owned());
        }
        printed.push(String::from_utf8_lossy(&out.stdout).trim_end().to_owned());
    }
    Ok(printed.join(";"))
}

/// The regular files named `*.so*` that start like ELF files, and the
/// number skipped for their size.
fn corpus() -> (Vec<PathBuf>, usize) {
    let dir = Path::new(CORPUS);
    assert!(
        dir.is_dir(),
        "{CORPUS} is missing: this test needs an x86-64 Debian system"
    );
    let mut files = Vec::new();
    let mut too_big = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        let meta = entry.metadata().unwrap();
        if !meta.file_type().is_file() || !name.contains(".so") {
            continue;
        }
        let mut head = [0u8; 4];
        let is_elf = fs::File::open(entry.path())
            .and_then(|mut f| f.read_exact(&mut head))
            .is_ok()
            && elfpatch::is_elf(&head);
        if !is_elf {
            continue;
        }
        if meta.len() > MAX_SIZE {
            too_big += 1;
            continue;
        }
        files.push(entry.path());
    }
    files.sort();
    (files, too_big)
}

/// Patches `copy` with `edits` and asks the oracles.
fn step(
    copy: &Path,
    edits: &Edits,
    load_after: bool,
    check: &Path,
    lint_before: &BTreeSet<String>,
    print: &[&str],
    expected: String,
) -> Step {
    let patched = patch_file(copy, edits).map(|_| ());
    let ok = patched.is_ok();
    Step {
        patched,
        after: (ok && load_after).then(|| dlopen(check, copy)),
        printed: if ok {
            patchelf(print, copy)
        } else {
            Err("not patched".into())
        },
        expected,
        new_lint: if ok {
            elflint(copy).difference(lint_before).cloned().collect()
        } else {
            Vec::new()
        },
    }
}

fn examine(lib: &Path, work: &Path, check: &Path, runpath: &str) -> Record {
    let name = lib.file_name().unwrap().to_string_lossy().into_owned();
    let copy = work.join(&name);
    fs::copy(lib, &copy).unwrap();
    let before = dlopen(check, &copy);
    let loads = before == Load::Ok;
    let lint_before = elflint(lib);
    let original = read(lib).ok();

    let edits = Edits {
        runpath: RunpathEdit::Set(runpath.into()),
        ..Default::default()
    };
    let first = step(
        &copy,
        &edits,
        loads,
        check,
        &lint_before,
        &["rpath"],
        runpath.to_owned(),
    );
    let printed_original = first.printed.is_err().then(|| patchelf(&["rpath"], lib));

    let needed = match (&first.patched, original) {
        (Ok(()), Some(info)) => {
            let soname = format!(
                "{}-renamed-with-a-longer-soname",
                info.soname.as_deref().unwrap_or(&name)
            );
            let mut want: Vec<String> = EXTRA_NEEDED
                .iter()
                .filter(|n| !info.needed.iter().any(|m| m == *n))
                .map(|n| n.to_string())
                .collect();
            want.extend(info.needed.iter().cloned());
            let edits = Edits {
                add_needed: EXTRA_NEEDED.iter().map(|n| n.to_string()).collect(),
                soname: Some(soname.clone()),
                ..Default::default()
            };
            Some(step(
                &copy,
                &edits,
                loads,
                check,
                &lint_before,
                &["needed", "soname", "rpath"],
                format!("{};{soname};{runpath}", want.join("\n")),
            ))
        }
        _ => None,
    };
    fs::remove_file(&copy).unwrap();
    Record {
        name,
        before,
        printed_original,
        runpath: first,
        needed,
    }
}

/// Why a step is a failure we cannot explain, if it is one.
fn unexplained_step(s: &Step, patchelf_reads_original: bool) -> Option<String> {
    match &s.patched {
        // Nothing to put a RUNPATH in: not a dynamic library at all.
        Err(e) if matches!(e.kind(), ErrorKind::Unsupported(Unsupported::NoDynamic)) => {
            return None
        }
        Err(e) => return Some(format!("not patched: {e}")),
        Ok(()) => {}
    }
    if let Some(after) = &s.after {
        if *after != Load::Ok {
            return Some(format!("loaded before, not after: {after:?}"));
        }
    }
    if !s.new_lint.is_empty() {
        return Some(format!("new eu-elflint messages: {:?}", s.new_lint));
    }
    match &s.printed {
        Ok(p) if *p == s.expected => None,
        // patchelf's own limits: it cannot read the original either.
        Err(_) if !patchelf_reads_original => None,
        printed => Some(format!(
            "patchelf printed {printed:?}, expected {:?}",
            s.expected
        )),
    }
}

fn unexplained(r: &Record) -> Vec<String> {
    let reads = !matches!(r.printed_original, Some(Err(_)));
    let mut why = Vec::new();
    if let Some(w) = unexplained_step(&r.runpath, reads) {
        why.push(format!("{}: RUNPATH: {w}", r.name));
    }
    if let Some(w) = r.needed.as_ref().and_then(|s| unexplained_step(s, reads)) {
        why.push(format!("{}: DT_NEEDED and SONAME: {w}", r.name));
    }
    why
}

#[test]
fn every_system_library_takes_a_200_character_runpath_new_needed_entries_and_still_loads() {
    require("cc", "gcc");
    require("patchelf", "patchelf");
    require("eu-elflint", "elfutils");
    let d = tempfile::tempdir().unwrap();
    let check = d.path().join("dlopen_check");
    let out = Command::new("cc")
        .arg(testdata("dlopen_check.c"))
        .arg("-ldl")
        .arg("-o")
        .arg(&check)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let runpath = runpath_200();
    assert_eq!(runpath.len(), 200);
    let (files, too_big) = corpus();
    let next = AtomicUsize::new(0);
    let records = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for w in 0..WORKERS {
            let work = d.path().join(format!("work-{w}"));
            fs::create_dir_all(&work).unwrap();
            let (files, next, records, check, runpath) =
                (&files, &next, &records, &check, &runpath);
            s.spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(lib) = files.get(i) else { break };
                let r = examine(lib, &work, check, runpath);
                records.lock().unwrap().push(r);
            });
        }
    });
    let mut records = records.into_inner().unwrap();
    records.sort_by(|a, b| a.name.cmp(&b.name));

    let count = |f: &dyn Fn(&Record) -> bool| records.iter().filter(|r| f(r)).count();
    let loaded_before = count(&|r| r.before == Load::Ok);
    let mut report = format!(
        "{CORPUS}: {} libraries tried ({too_big} skipped as larger than {} MiB), \
         {loaded_before} loaded before patching\n",
        records.len(),
        MAX_SIZE >> 20,
    );
    for (what, get) in [
        ("200-character RUNPATH", (|r| Some(&r.runpath)) as StepOf),
        ("then 2 DT_NEEDED and a SONAME", |r| r.needed.as_ref()),
    ] {
        let c = |f: &dyn Fn(&Step) -> bool| count(&|r| get(r).is_some_and(f));
        writeln!(
            report,
            "  {what}: {} patched, {} loaded after, {} read back by patchelf, \
             {} with new eu-elflint messages",
            c(&|s| s.patched.is_ok()),
            c(&|s| s.after == Some(Load::Ok)),
            c(&|s| s.printed.as_deref() == Ok(s.expected.as_str())),
            c(&|s| !s.new_lint.is_empty()),
        )
        .unwrap();
    }
    for r in &records {
        if let Err(e) = &r.runpath.patched {
            writeln!(report, "  not patched: {}: {e}", r.name).unwrap();
        }
        let why = match &r.before {
            Load::Ok => continue,
            Load::Failed(why) => why.as_str(),
            Load::TimedOut => "timed out",
        };
        writeln!(report, "  does not load before patching: {}: {why}", r.name).unwrap();
    }
    let failures: Vec<String> = records.iter().flat_map(unexplained).collect();
    println!("{report}");
    assert!(
        failures.is_empty(),
        "{} unexplained failures:\n{}\n\n{report}",
        failures.len(),
        failures.join("\n")
    );
    assert!(
        records.len() >= 20 && loaded_before >= 10,
        "the corpus is too small to mean anything:\n{report}"
    );
}
