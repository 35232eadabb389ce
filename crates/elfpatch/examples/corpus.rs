//! `cargo xtask elf-corpus [DIR…]` (default `/usr`): every ELF file under
//! the directories — executables, libraries, objects, kernel modules, cross
//! sysroots — read, given a 200-character RUNPATH (and, when it has one, a
//! longer interpreter) in memory, and checked:
//!
//! - reading never panics; a refusal is counted with its reason;
//! - the edited image parses again and reads back exactly what was asked;
//! - its `PT_LOAD`s are sorted, congruent (`p_offset ≡ p_vaddr` modulo
//!   `p_align`), inside the file and not overlapping in the file;
//! - bytes outside the plan's writes did not change, every write changes
//!   a byte, and the image only grows (when the contents do not shift);
//! - Debian's `patchelf --print-rpath` (and `--print-interpreter`) reads the
//!   same values from the edited file, when `patchelf` is installed.
//!
//! - it still runs (x86_64 hosts): each x86_64 library of at most 32 MiB
//!   is loaded with `dlopen(RTLD_NOW)`, and each of a list of well-known
//!   programs in `/usr/bin` is run with `--version`, as an unedited copy
//!   and as a copy given a longer RUNPATH (its own plus a long directory)
//!   and a longer spelling of its own interpreter, side by side in
//!   directories of the same depth. Whatever the unedited copy does (load,
//!   print, exit), the edited one must do too.
//!
//! Prints the counts and every file that broke an invariant; exits 1 if
//! any did.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use goblin::elf::program_header::PT_LOAD;

const RUNPATH: &str = "/nix/store/00000000000000000000000000000000-corpus-runpath/lib:/opt/corpus/a/much/longer/list/of/directories/that/does/not/exist/so/that/dynstr/must/move:/usr/lib/x86_64-linux-gnu/corpus/lib/extra/dirs/x";
const INTERP: &str =
    "/nix/store/00000000000000000000000000000000-glibc-corpus-2.40/lib/ld-linux-x86-64.so.2";

#[derive(Default)]
struct Tally {
    elf: usize,
    patched: usize,
    refused: BTreeMap<String, Vec<PathBuf>>,
    broken: Vec<(PathBuf, String)>,
    patchelf_checked: usize,
    /// Files Debian's patchelf cannot read after the edit (with its words).
    patchelf_failed: Vec<(PathBuf, String)>,
    bytes: u64,
    /// Libraries loaded with `dlopen`, both copies.
    dlopened: usize,
    /// Programs run with `--version`, both copies.
    ran: usize,
}

/// Programs whose `--version` only prints (run as root in CI: nothing
/// that could act on the machine).
const SAFE: &[&str] = &[
    "ar",
    "as",
    "awk",
    "bash",
    "c++filt",
    "cat",
    "cmake",
    "cp",
    "curl",
    "date",
    "diff",
    "du",
    "eu-elflint",
    "eu-readelf",
    "file",
    "find",
    "g++",
    "gawk",
    "gcc",
    "gdb",
    "git",
    "grep",
    "gzip",
    "ld.bfd",
    "ld.gold",
    "ls",
    "make",
    "md5sum",
    "nm",
    "objcopy",
    "objdump",
    "openssl",
    "patchelf",
    "perl",
    "python3",
    "qemu-aarch64",
    "qemu-i386",
    "readelf",
    "sed",
    "sha256sum",
    "sort",
    "strace",
    "strip",
    "tar",
    "valgrind",
    "wget",
    "xz",
    "zstd",
];

fn files(dirs: &[PathBuf]) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack: Vec<PathBuf> = dirs.to_vec();
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            let Ok(t) = e.file_type() else { continue };
            if t.is_dir() {
                stack.push(e.path());
            } else if t.is_file() {
                out.push(e.path());
            }
        }
    }
    out.sort();
    out
}

fn is_elf(p: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 4];
    std::fs::File::open(p)
        .and_then(|mut f| f.read_exact(&mut head))
        .is_ok()
        && elfpatch::is_elf(&head)
}

/// The load-segment invariants of an image; `Err` says which broke.
fn loads_sound(data: &[u8]) -> Result<(), String> {
    let elf = goblin::elf::Elf::parse(data).map_err(|e| format!("goblin cannot parse: {e}"))?;
    let loads: Vec<_> = elf
        .program_headers
        .iter()
        .filter(|p| p.p_type == PT_LOAD)
        .collect();
    for w in loads.windows(2) {
        if w[1].p_vaddr < w[0].p_vaddr {
            return Err("PT_LOADs not sorted by address".into());
        }
        if w[0].p_filesz > 0
            && w[1].p_filesz > 0
            && w[0].p_offset + w[0].p_filesz > w[1].p_offset
            && w[1].p_offset >= w[0].p_offset
        {
            // Overlap in the file is legal only where both map the same
            // bytes at the same distance (shared pages of adjacent segments).
            let d0 = w[0].p_vaddr.wrapping_sub(w[0].p_offset);
            let d1 = w[1].p_vaddr.wrapping_sub(w[1].p_offset);
            if d0 != d1 && (w[0].p_offset + w[0].p_filesz) / 4096 > w[1].p_offset / 4096 + 1 {
                return Err("PT_LOADs overlap in the file".into());
            }
        }
    }
    for p in &loads {
        if p.p_align > 1 && p.p_offset % p.p_align != p.p_vaddr % p.p_align {
            return Err(format!(
                "PT_LOAD at {:#x} not congruent to its alignment",
                p.p_vaddr
            ));
        }
        if p.p_offset.saturating_add(p.p_filesz) > data.len() as u64 {
            return Err("PT_LOAD beyond the end of the file".into());
        }
    }
    Ok(())
}

fn check(
    index: usize,
    path: &Path,
    tally: &Mutex<Tally>,
    work: &Path,
    patchelf: bool,
    runner: Option<&Path>,
) {
    let Ok(data) = std::fs::read(path) else {
        return;
    };
    let info = match elfpatch::read_bytes(&data) {
        Ok(i) => i,
        Err(e) => {
            let mut t = tally.lock().unwrap();
            t.elf += 1;
            t.refused
                .entry(format!("read: {}", reason(&e)))
                .or_default()
                .push(path.to_owned());
            return;
        }
    };
    let edits = elfpatch::Edits {
        runpath: elfpatch::RunpathEdit::Set(RUNPATH.into()),
        interpreter: info.interpreter.as_ref().map(|_| INTERP.to_owned()),
        ..Default::default()
    };
    let mut t_broken = None;
    let mut checked_patchelf = false;
    let mut patchelf_failed = None;
    let mut refused = None;
    match elfpatch::patch_bytes(&data, &edits) {
        Err(e) => refused = Some(format!("patch: {}", reason(&e))),
        Ok(out) => match elfpatch::read_bytes(&out) {
            Err(e) => t_broken = Some(format!("the edited image does not parse: {e}")),
            Ok(after) => {
                let rp = after.runpath.as_deref().or(after.rpath.as_deref());
                if rp != Some(RUNPATH) {
                    t_broken = Some(format!("RUNPATH reads back as {rp:?}"));
                } else if info.interpreter.is_some() && after.interpreter.as_deref() != Some(INTERP)
                {
                    t_broken = Some(format!("interpreter reads back as {:?}", after.interpreter));
                } else if after.needed != info.needed {
                    t_broken = Some("DT_NEEDED changed".into());
                } else if let Err(why) = loads_sound(&out) {
                    t_broken = Some(why);
                } else if let Err(why) = untouched_outside_writes(&data, &edits, &out) {
                    t_broken = Some(why);
                } else if patchelf {
                    // One name per file: two threads may edit two `libc.so.6`.
                    let name = work.join(format!("{}-{index}", std::process::id()));
                    let _ = std::fs::create_dir_all(name.parent().unwrap());
                    if std::fs::write(&name, &out).is_ok() {
                        let o = Command::new("patchelf")
                            .arg("--print-rpath")
                            .arg(&name)
                            .output();
                        if let Ok(o) = o {
                            if !o.status.success() {
                                patchelf_failed =
                                    Some(String::from_utf8_lossy(&o.stderr).trim().to_owned());
                            } else {
                                checked_patchelf = true;
                                let got = String::from_utf8_lossy(&o.stdout).trim_end().to_owned();
                                if got != RUNPATH {
                                    t_broken = Some(format!("patchelf --print-rpath says {got:?}"));
                                }
                            }
                        }
                        let _ = std::fs::remove_file(&name);
                    }
                }
            }
        },
    }
    let mut ran = (0, 0);
    if t_broken.is_none() && refused.is_none() {
        if let Some(helper) = runner {
            match still_runs(index, path, &data, &info, work, helper) {
                Ok(r) => ran = r,
                Err(why) => t_broken = Some(why),
            }
        }
    }
    let mut t = tally.lock().unwrap();
    t.dlopened += ran.0;
    t.ran += ran.1;
    t.elf += 1;
    t.bytes += data.len() as u64;
    t.patchelf_checked += usize::from(checked_patchelf);
    if let Some(why) = patchelf_failed {
        t.patchelf_failed.push((path.to_owned(), why));
    }
    match (refused, t_broken) {
        (Some(r), _) => t.refused.entry(r).or_default().push(path.to_owned()),
        (None, Some(b)) => t.broken.push((path.to_owned(), b)),
        (None, None) => t.patched += 1,
    }
}

/// The edited image is the original outside the plan's writes (when the
/// contents do not shift), each write changes at least one byte, and the
/// image does not shrink.
fn untouched_outside_writes(
    data: &[u8],
    edits: &elfpatch::Edits,
    out: &[u8],
) -> Result<(), String> {
    let view = elfpatch::View::parse(&data).map_err(|e| e.to_string())?;
    let plan =
        elfpatch::plan::plan(&view, edits, &elfpatch::plan::Host).map_err(|e| e.to_string())?;
    if out.len() < data.len() {
        return Err(format!(
            "the image shrank from {} to {} bytes",
            data.len(),
            out.len()
        ));
    }
    if plan.shift != 0 {
        return Ok(());
    }
    let mut from = 0usize;
    for w in &plan.writes {
        let start = (w.offset as usize).min(data.len());
        let end = (start + w.bytes.len()).min(data.len());
        if start < end && data[start..end] == w.bytes[..end - start] {
            return Err(format!(
                "the write at {start:#x} ({} bytes) changes nothing",
                end - start
            ));
        }
        if let Some(i) = (from..start).find(|&i| out[i] != data[i]) {
            return Err(format!("byte {i:#x} changed outside the plan's writes"));
        }
        from = from.max(end);
    }
    match (from..data.len()).find(|&i| out[i] != data[i]) {
        Some(i) => Err(format!("byte {i:#x} changed outside the plan's writes")),
        None => Ok(()),
    }
}

/// Run or load the unedited and an edited copy of an x86_64 file: `Err`
/// when only the unedited one works; `Ok((dlopened, ran))` counts what was
/// compared.
fn still_runs(
    index: usize,
    path: &Path,
    data: &[u8],
    info: &elfpatch::Info,
    work: &Path,
    dlopen_check: &Path,
) -> Result<(usize, usize), String> {
    const EM_X86_64: u16 = 62;
    if info.machine != EM_X86_64 || info.class != elfpatch::Class::Elf64 {
        return Ok((0, 0));
    }
    let name = path.file_name().unwrap().to_string_lossy().into_owned();
    let program = info.interpreter.is_some()
        && path.parent() == Some(Path::new("/usr/bin"))
        && SAFE.contains(&name.as_str());
    let library = info.interpreter.is_none()
        && info.kind == elfpatch::FileKind::Dyn
        && info.soname.is_some()
        && data.len() <= 32 << 20;
    if !program && !library {
        return Ok((0, 0));
    }
    let own = info.runpath.as_deref().or(info.rpath.as_deref());
    let runpath = match own {
        Some(r) if !r.is_empty() => format!("{r}:/opt/corpus/{}", "x".repeat(150)),
        _ => format!("/opt/corpus/{}", "x".repeat(150)),
    };
    // The same loader, spelled longer: `/lib64/././././ld-linux-x86-64.so.2`.
    let interpreter = info.interpreter.as_ref().map(|i| match i.rsplit_once('/') {
        Some((dir, file)) => format!("{dir}{}/{file}", "/.".repeat(8)),
        None => i.clone(),
    });
    let edits = elfpatch::Edits {
        runpath: elfpatch::RunpathEdit::Set(runpath),
        force_rpath: info.runpath.is_none() && info.rpath.is_some(),
        interpreter,
        ..Default::default()
    };
    let edited = elfpatch::patch_bytes(data, &edits).map_err(|e| format!("run edit: {e}"))?;
    let dir = work.join(format!("run-{}-{index}", std::process::id()));
    let result = (|| {
        let mut outcomes = Vec::new();
        for (which, bytes) in [("plain", data), ("edited", &edited[..])] {
            let d = dir.join(which);
            std::fs::create_dir_all(&d).map_err(|e| e.to_string())?;
            let f = d.join(&name);
            std::fs::write(&f, bytes).map_err(|e| e.to_string())?;
            std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755))
                .map_err(|e| e.to_string())?;
            let mut cmd = Command::new("timeout");
            cmd.arg("20")
                .current_dir(&d)
                .stdin(std::process::Stdio::null());
            if program {
                cmd.arg(format!("./{name}")).arg("--version");
            } else {
                cmd.arg(dlopen_check).arg(format!("./{name}"));
            }
            // Another thread's child may hold the new file open for a
            // moment between its fork and exec ("Text file busy"): retry.
            let mut o = cmd.output().map_err(|e| e.to_string())?;
            for _ in 0..20 {
                if o.status.code() != Some(126) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(50));
                o = cmd.output().map_err(|e| e.to_string())?;
            }
            outcomes.push((o.status.code(), o.stdout));
        }
        let (plain, edited) = (&outcomes[0], &outcomes[1]);
        if plain.0 == Some(124) {
            return Ok((0, 0)); // the unedited copy hangs: nothing to compare
        }
        if plain != edited {
            return Err(format!(
                "the edited copy behaves differently: {} exits {:?} (plain {:?}), prints {:?} (plain {:?})",
                if program { "--version" } else { "dlopen" },
                edited.0,
                plain.0,
                String::from_utf8_lossy(&edited.1).lines().next().unwrap_or(""),
                String::from_utf8_lossy(&plain.1).lines().next().unwrap_or(""),
            ));
        }
        // Counted when the unedited copy works (a library that cannot be
        // loaded alone fails alike in both, and counts for nothing).
        Ok(match (plain.0 == Some(0), program) {
            (false, _) => (0, 0),
            (true, true) => (0, 1),
            (true, false) => (1, 0),
        })
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result
}

/// `cc testdata/elf/dlopen_check.c` into `work`, when this is an x86_64
/// host with a C compiler.
fn dlopen_helper(work: &Path) -> Option<PathBuf> {
    if !cfg!(target_arch = "x86_64") {
        return None;
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/elf/dlopen_check.c");
    std::fs::create_dir_all(work).ok()?;
    let out = work.join("dlopen_check");
    let ok = Command::new("cc")
        .arg(&src)
        .arg("-o")
        .arg(&out)
        .arg("-ldl")
        .status()
        .is_ok_and(|s| s.success());
    ok.then_some(out)
}

/// A refusal's reason without the values that differ per file.
fn reason(e: &elfpatch::Error) -> String {
    let mut s = e.kind().to_string();
    let mut cur = std::error::Error::source(e.kind());
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s.split(|c: char| c.is_ascii_digit())
        .next()
        .unwrap_or("")
        .trim_end_matches(['(', ' ', ':'])
        .to_owned()
}

fn main() {
    let args: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    let dirs = if args.is_empty() {
        vec![PathBuf::from("/usr")]
    } else {
        args
    };
    let started = std::time::Instant::now();
    let all: Vec<PathBuf> = files(&dirs).into_iter().filter(|p| is_elf(p)).collect();
    let patchelf = Command::new("patchelf").arg("--version").output().is_ok();
    let work = std::env::temp_dir().join("elf-corpus");
    let runner = dlopen_helper(&work);
    let tally = Mutex::new(Tally::default());
    let next = std::sync::atomic::AtomicUsize::new(0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let Some(p) = all.get(i) else { return };
                check(i, p, &tally, &work, patchelf, runner.as_deref());
            });
        }
    });
    let _ = std::fs::remove_dir_all(&work);
    let t = tally.into_inner().unwrap();
    println!(
        "{} ELF files ({:.1} GiB) under {}: {} patched and sound, {} refused, {} broken; patchelf read back {} ({:.0} s)",
        t.elf,
        t.bytes as f64 / (1u64 << 30) as f64,
        dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(" "),
        t.patched,
        t.refused.values().map(Vec::len).sum::<usize>(),
        t.broken.len(),
        t.patchelf_checked,
        started.elapsed().as_secs_f64()
    );
    if runner.is_some() {
        println!(
            "  still run after an edit: {} x86_64 libraries loaded with dlopen, {} programs ran --version and printed what their unedited copies print",
            t.dlopened, t.ran
        );
    }
    for (why, files) in &t.refused {
        println!(
            "  refused ({}): {why}  e.g. {}",
            files.len(),
            files[0].display()
        );
    }
    for (f, why) in &t.patchelf_failed {
        println!("  patchelf cannot read the edit of {}: {why}", f.display());
    }
    for (f, why) in &t.broken {
        println!("  BROKEN {}: {why}", f.display());
    }
    if !t.broken.is_empty() {
        std::process::exit(1);
    }
}
