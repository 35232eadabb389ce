//! `redist patchelf` — and the same binary invoked as `patchelf` — a
//! stand-in for NixOS patchelf: the same flags, the same stdout for the
//! print operations, exit code 1 with `patchelf: <message>` on errors.
//! Several files are patched in parallel; output stays in file order.

use std::io::Write;
use std::path::PathBuf;

use rayon::prelude::*;

/// Edit the interpreter, RUNPATH, DT_NEEDED, SONAME, OS ABI and stack flags of ELF files, like patchelf.
///
/// Prints happen before edits and show the file as it was. Any option that
/// takes a string also takes @FILE, meaning the contents of FILE.
///
/// Examples:
///   redist patchelf --set-rpath '$ORIGIN/../lib' --force-rpath bin/tool
///   redist patchelf --set-interpreter /lib64/ld-linux-x86-64.so.2 --print-rpath a.out
///   ln -s "$(command -v redist)" patchelf && ./patchelf --print-needed lib*.so
#[derive(clap::Args, Debug, Default)]
#[command(verbatim_doc_comment)]
pub struct Args {
    /// Set the program interpreter (PT_INTERP).
    #[arg(long, visible_alias = "interpreter", value_name = "FILENAME")]
    set_interpreter: Option<String>,
    /// Print the program interpreter.
    #[arg(long)]
    print_interpreter: bool,
    /// Page size for new segments (default: from the ELF machine).
    #[arg(long, value_name = "SIZE")]
    page_size: Option<u64>,
    /// Print DT_SONAME (nothing when there is none).
    #[arg(long)]
    print_soname: bool,
    /// Set DT_SONAME (added when missing).
    #[arg(long, value_name = "SONAME")]
    set_soname: Option<String>,
    /// Replace the RUNPATH (or RPATH) with RPATH (colon-separated).
    #[arg(long, value_name = "RPATH")]
    set_rpath: Option<String>,
    /// Append entries to the RUNPATH (or RPATH).
    #[arg(long, value_name = "RPATH")]
    add_rpath: Option<String>,
    /// Remove DT_RUNPATH and DT_RPATH.
    #[arg(long)]
    remove_rpath: bool,
    /// Keep only RPATH entries that provide a needed library (and $ORIGIN ones).
    #[arg(long)]
    shrink_rpath: bool,
    /// With --shrink-rpath: drop absolute entries not starting with one of these (colon-separated).
    #[arg(long, value_name = "PREFIXES")]
    allowed_rpath_prefixes: Option<String>,
    /// Print the RUNPATH (or RPATH); an empty line when there is none.
    #[arg(long)]
    print_rpath: bool,
    /// Write DT_RPATH instead of converting it to DT_RUNPATH.
    #[arg(long)]
    force_rpath: bool,
    /// Add a DT_NEEDED entry (repeatable).
    #[arg(long, value_name = "LIBRARY")]
    add_needed: Vec<String>,
    /// Remove DT_NEEDED entries of this name (repeatable).
    #[arg(long, value_name = "LIBRARY")]
    remove_needed: Vec<String>,
    /// Rename a DT_NEEDED entry (repeatable).
    #[arg(long, num_args = 2, value_names = ["LIBRARY", "NEW_LIBRARY"])]
    replace_needed: Vec<String>,
    /// Print the DT_NEEDED entries, one per line.
    #[arg(long)]
    print_needed: bool,
    /// Write the result here instead of editing in place (one input file only).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// Print EI_OSABI: System V, Linux, FreeBSD, … (0xNN when unnamed).
    #[arg(long)]
    print_os_abi: bool,
    /// Set EI_OSABI: system-v (sysv), hp-ux, netbsd, linux (gnu), gnu-hurd
    /// (hurd), solaris, aix, irix, freebsd, tru64, openbsd, openvms.
    #[arg(long, value_name = "ABI")]
    set_os_abi: Option<String>,
    /// Print `execstack: X` (executable stack), `-` (not) or `?` (no PT_GNU_STACK).
    #[arg(long)]
    print_execstack: bool,
    /// Clear PF_X of PT_GNU_STACK: a non-executable stack.
    #[arg(long)]
    clear_execstack: bool,
    /// Set PF_X of PT_GNU_STACK: an executable stack.
    #[arg(long)]
    set_execstack: bool,
    /// Set DF_1_NODEFLIB: the loader skips its default directories for this
    /// file's dependencies.
    #[arg(long)]
    no_default_lib: bool,
    /// Add a DT_DEBUG entry when there is none.
    #[arg(long)]
    add_debug_tag: bool,
    /// Drop the version requirement of this dynamic symbol (repeatable):
    /// its .gnu.version entry becomes "global".
    #[arg(long, value_name = "SYMBOL")]
    clear_symbol_version: Vec<String>,
    /// Rename dynamic symbols: NAME_MAP_FILE has one `OLD NEW` pair per
    /// line (reading stops at the first blank line); the hash tables are
    /// rebuilt. Repeatable.
    #[arg(long, value_name = "NAME_MAP_FILE")]
    rename_dynamic_symbols: Vec<PathBuf>,
    /// Record where the run path finds each needed library in a
    /// `.note.nixos.ldcache` note (PT_NOTE), which NixOS's patched loader
    /// reads instead of searching. `$ORIGIN`-style and glibc-hwcaps
    /// directories are recorded as directories to search. Built after the
    /// other edits; later RUNPATH/needed edits remove it. Not with
    /// --force-rpath.
    #[arg(long)]
    build_resolution_cache: bool,
    /// Accepted for compatibility; redist never sorts sections or headers.
    #[arg(long)]
    no_sort: bool,
    /// Say on standard error which file is patched and what is written.
    #[arg(long)]
    debug: bool,
    /// The ELF files.
    #[arg(required = true, value_name = "FILENAME")]
    files: Vec<PathBuf>,
}

/// A value, or the contents of the file after `@`.
fn value(v: &str) -> Result<String, String> {
    match v.strip_prefix('@') {
        Some(path) => std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the argument file @{path}: {e}")),
        None => Ok(v.to_owned()),
    }
}

fn opt(v: &Option<String>) -> Result<Option<String>, String> {
    v.as_deref().map(value).transpose()
}

fn edits(a: &Args) -> Result<elfpatch::Edits, String> {
    use elfpatch::RunpathEdit;
    let runpath = if let Some(r) = opt(&a.set_rpath)? {
        RunpathEdit::Set(r)
    } else if let Some(r) = opt(&a.add_rpath)? {
        RunpathEdit::Add(r)
    } else if a.remove_rpath {
        RunpathEdit::Remove
    } else if a.shrink_rpath {
        let prefixes = opt(&a.allowed_rpath_prefixes)?.unwrap_or_default();
        RunpathEdit::Shrink {
            allowed_prefixes: prefixes
                .split(':')
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect(),
        }
    } else {
        RunpathEdit::Keep
    };
    let list = |v: &[String]| v.iter().map(|s| value(s)).collect::<Result<Vec<_>, _>>();
    let replace = list(&a.replace_needed)?;
    Ok(elfpatch::Edits {
        interpreter: opt(&a.set_interpreter)?,
        runpath,
        force_rpath: a.force_rpath,
        add_needed: list(&a.add_needed)?,
        remove_needed: list(&a.remove_needed)?,
        replace_needed: replace
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].clone()))
            .collect(),
        soname: opt(&a.set_soname)?,
        page_size: a.page_size,
        os_abi: opt(&a.set_os_abi)?.map(|v| os_abi(&v)).transpose()?,
        // Like patchelf: print beats clear, which beats set.
        execstack: match (a.print_execstack, a.clear_execstack, a.set_execstack) {
            (true, _, _) | (false, false, false) => None,
            (false, true, _) => Some(false),
            (false, false, true) => Some(true),
        },
        no_default_lib: a.no_default_lib,
        add_debug_tag: a.add_debug_tag,
        clear_symbol_versions: list(&a.clear_symbol_version)?,
        rename_symbols: rename_map(&a.rename_dynamic_symbols)?,
        resolution_cache: a.build_resolution_cache,
    })
}

/// The `OLD NEW` pairs of `--rename-dynamic-symbols` files, as patchelf
/// reads them: whitespace-separated, extra words ignored, the first blank
/// line ends the file; a name may be renamed once, without `@VERSION`.
fn rename_map(files: &[PathBuf]) -> Result<Vec<(String, String)>, String> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| format!("cannot open map file {}: {e}", f.display()))?;
        for (n, line) in text.lines().enumerate() {
            let at = format!("{}:{}", f.display(), n + 1);
            let mut words = line.split_whitespace();
            let Some(from) = words.next() else { break };
            let to = words
                .next()
                .ok_or_else(|| format!("{at}: map file line is missing the second name"))?;
            if from.contains('@') || to.contains('@') {
                return Err(format!(
                    "{at}: name pair contains a version tag: {from} {to}"
                ));
            }
            if pairs.iter().any(|(f, _)| f == from) {
                return Err(format!(
                    "{at}: name '{from}' appears twice in the map files"
                ));
            }
            pairs.push((from.to_owned(), to.to_owned()));
        }
    }
    Ok(pairs)
}

/// EI_OSABI values and their names, as patchelf prints and accepts them.
const OS_ABIS: &[(u8, &str, &[&str])] = &[
    (0, "System V", &["system v", "system-v", "sysv"]),
    (1, "HP-UX", &["hp-ux"]),
    (2, "NetBSD", &["netbsd"]),
    (3, "Linux", &["linux", "gnu"]),
    (4, "GNU Hurd", &["gnu hurd", "gnu-hurd", "hurd"]),
    (6, "Solaris", &["solaris"]),
    (7, "AIX", &["aix"]),
    (8, "IRIX", &["irix"]),
    (9, "FreeBSD", &["freebsd"]),
    (10, "Tru64", &["tru64"]),
    (12, "OpenBSD", &["openbsd"]),
    (13, "OpenVMS", &["openvms"]),
];

/// `--set-os-abi`: a name, any case, surrounding blanks ignored.
fn os_abi(name: &str) -> Result<u8, String> {
    let want = name.trim().to_lowercase();
    OS_ABIS
        .iter()
        .find(|(_, _, names)| names.contains(&want.as_str()))
        .map(|(v, _, _)| *v)
        .ok_or_else(|| {
            format!(
                "unrecognized OS ABI `{}`; one of: {}",
                name.trim(),
                OS_ABIS
                    .iter()
                    .map(|(_, _, n)| n[0])
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        })
}

fn os_abi_name(v: u8) -> String {
    OS_ABIS
        .iter()
        .find(|(x, _, _)| *x == v)
        .map_or_else(|| format!("0x{v:02X}"), |(_, n, _)| (*n).to_owned())
}

/// What one file printed, what it warned of, why it failed.
struct Done {
    out: String,
    warning: Option<String>,
    err: Option<String>,
}

fn one(a: &Args, edits: &elfpatch::Edits, file: &PathBuf) -> Done {
    let (out, result) = print_and_edit(a, edits, file);
    match result {
        Ok(skipped) => Done {
            out,
            warning: skipped.map(|s| s.to_string()),
            err: None,
        },
        Err(e) => Done {
            out,
            warning: None,
            err: Some(e),
        },
    }
}

type Edited = Result<Option<elfpatch::ldcache::Skipped>, String>;

fn print_and_edit(a: &Args, edits: &elfpatch::Edits, file: &PathBuf) -> (String, Edited) {
    let mut out = String::new();
    let prints = a.print_interpreter
        || a.print_soname
        || a.print_rpath
        || a.print_needed
        || a.print_os_abi
        || a.print_execstack;
    if a.debug && !prints {
        eprintln!("patching ELF file '{}'", file.display());
    }
    if prints {
        let info = match elfpatch::read(file) {
            Ok(i) => i,
            Err(e) => return (out, Err(crate::errors::one_line(&e))),
        };
        if a.print_interpreter {
            match &info.interpreter {
                Some(i) => out.push_str(&format!("{i}\n")),
                None => {
                    return (out, Err("cannot find section '.interp'. The input file is most likely statically linked".into()))
                }
            }
        }
        if a.print_os_abi {
            out.push_str(&format!("{}\n", os_abi_name(info.osabi)));
        }
        let dynamic = !(info.is_static
            && info.needed.is_empty()
            && info.runpath.is_none()
            && info.rpath.is_none()
            && info.soname.is_none());
        if a.print_soname {
            if let Some(s) = &info.soname {
                out.push_str(&format!("{s}\n"));
            }
        }
        if (a.print_rpath || a.print_needed) && !dynamic && info.interpreter.is_none() {
            return (out, Err("cannot find section '.dynamic'. The input file is most likely statically linked".into()));
        }
        // An empty PT_DYNAMIC (a debug-only file) has no search path to
        // print, and patchelf prints nothing at all for it.
        if a.print_rpath && !info.empty_dynamic {
            out.push_str(
                info.runpath
                    .as_deref()
                    .or(info.rpath.as_deref())
                    .unwrap_or(""),
            );
            out.push('\n');
        }
        if a.print_execstack {
            let x = match info.execstack {
                Some(true) => "X",
                Some(false) => "-",
                None => "?",
            };
            out.push_str(&format!("execstack: {x}\n"));
        }
        if a.print_needed {
            for n in &info.needed {
                out.push_str(&format!("{n}\n"));
            }
        }
    }
    if let Some(dest) = &a.output {
        return (out, write_output(file, dest, edits));
    }
    // Like patchelf, the file is read and checked even when nothing is
    // asked of it.
    if edits.is_empty() {
        if !prints {
            if let Err(e) = elfpatch::read(file) {
                return (out, Err(crate::errors::one_line(&e)));
            }
        }
        return (out, Ok(None));
    }
    match elfpatch::patch_file(file, edits) {
        Ok(o) => (out, Ok(o.cache_skipped)),
        Err(e) => (out, Err(crate::errors::one_line(&e))),
    }
}

/// `--output DEST`: the edited bytes go to `DEST` only once they are
/// complete — through a file beside it renamed into place, or straight
/// into a device such as `/dev/null` — and nothing is ever read back from
/// `DEST`. On failure `DEST` is left as it was.
fn write_output(file: &PathBuf, dest: &PathBuf, edits: &elfpatch::Edits) -> Edited {
    use std::io::Write as _;
    use std::os::unix::fs::PermissionsExt;
    let data = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let (result, skipped) = if edits.is_empty() {
        elfpatch::read_bytes(&data).map_err(|e| in_file(file, e))?;
        (data, None)
    } else {
        let (image, outcome) = elfpatch::patch_image(&data, edits).map_err(|e| in_file(file, e))?;
        (image, outcome.cache_skipped)
    };
    let cannot = |e: std::io::Error| format!("cannot write {}: {e}", dest.display());
    let special = std::fs::metadata(dest).is_ok_and(|m| !m.is_file() && !m.is_dir());
    if special {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .open(dest)
            .map_err(cannot)?;
        return f.write_all(&result).map_err(cannot).map(|()| skipped);
    }
    let dir = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".patchelf-output-")
        .tempfile_in(&dir)
        .map_err(cannot)?;
    tmp.write_all(&result).map_err(cannot)?;
    let mode = std::fs::metadata(file).map_or(0o755, |m| m.permissions().mode() & 0o7777);
    tmp.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(cannot)?;
    tmp.persist(dest).map_err(|e| cannot(e.error))?;
    Ok(skipped)
}

/// An error about an in-memory image, said of `file`.
fn in_file(file: &std::path::Path, e: elfpatch::Error) -> String {
    format!("{}: {}", file.display(), crate::errors::one_line(e.kind()))
}

/// Run; returns the exit code.
pub fn run(a: Args) -> u8 {
    let fail = |msg: &str| {
        eprintln!("patchelf: {msg}");
        1
    };
    if a.output.is_some() && a.files.len() > 1 {
        return fail("--output takes a single input file");
    }
    if a.build_resolution_cache && a.force_rpath {
        return fail("--build-resolution-cache cannot be combined with --force-rpath");
    }
    // Like patchelf: one search-path edit at a time.
    if a.set_rpath.is_some() && a.add_rpath.is_some() {
        return fail("--set-rpath and --add-rpath cannot be combined");
    }
    let edits = match edits(&a) {
        Ok(e) => e,
        Err(e) => return fail(&e),
    };
    let results: Vec<Done> = a.files.par_iter().map(|f| one(&a, &edits, f)).collect();
    let mut stdout = std::io::stdout().lock();
    for Done { out, warning, err } in results {
        let _ = stdout.write_all(out.as_bytes());
        if let Some(w) = warning {
            let _ = stdout.flush();
            eprintln!("warning: --build-resolution-cache: {w}");
        }
        if let Some(e) = err {
            let _ = stdout.flush();
            return fail(&e);
        }
    }
    0
}
