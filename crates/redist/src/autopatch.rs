//! autopatch: give every ELF file written the RUNPATH (and interpreter) it
//! needs to run where it is installed, in one parallel pass.
//!
//! What nixpkgs does with `autoPatchelfHook` (a Python scan, then one
//! `patchelf` process per edit per file, then another pass for the driver
//! runpath), done in-process:
//!
//! 1. Candidates: the ELF files the unpacker noted as it wrote them.
//!    Skipped, with a reason: static executables, object files, other
//!    machines than the component's, incompatible OS/ABIs.
//! 2. Needs: `DT_NEEDED` plus `.note.dlopen` sonames.
//! 3. The driver's own libraries (`libcuda.so.1`, `libnvidia-ml.so.1`, …)
//!    resolve to the driver: never from stubs, `--dep`s or the build
//!    machine, never an error. Every other need resolves against the
//!    component's own files (all outputs; never stubs), then each `--dep`
//!    directory, then the file's own existing absolute RUNPATH/RPATH
//!    directories, matching file name and ELF machine. A library found in
//!    the libc directory of the loader the files will run with (the
//!    `--interpreter`'s, else this system's) is left to it unless
//!    `keep_libc`.
//! 4. New RUNPATH: the driver directory (`driver_runpath`) first, in every
//!    file (`libcudart` `dlopen`s `libcuda.so.1` without listing it); then
//!    the directories that satisfied a need, first-found order,
//!    de-duplicated; then the original `$ORIGIN` entries that still point
//!    inside the file's output (NVIDIA libraries `dlopen` siblings through
//!    them), kept `$ORIGIN`-relative in both modes; then `append_runpath`.
//!    Relative mode writes `$ORIGIN/…` (a movable tree), absolute mode final
//!    paths (what Nix scans for).
//! 5. Unresolved needs are one error listing every (file, library) pair,
//!    unless the library matches an `ignore_missing` glob.
//! 6. Every file is planned once and patched once, in parallel.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Instant;

use globset::GlobSet;
use rayon::prelude::*;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::unpack::{parent, relative};

/// How RUNPATH entries are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RunpathMode {
    /// `$ORIGIN/../lib`: the tree can be moved anywhere.
    #[default]
    Relative,
    /// `/nix/store/…-lib/lib`: final absolute paths.
    Absolute,
}

/// autopatch's options.
#[derive(Debug, Clone, Default)]
pub struct AutopatchOptions {
    /// Interpreter for executables that have one.
    pub interpreter: Option<String>,
    /// Library directories of dependencies, searched after the component.
    pub deps: Vec<PathBuf>,
    /// Entries appended to every RUNPATH written (`/run/opengl-driver/lib`).
    pub append_runpath: Vec<String>,
    /// Library names that may stay unresolved (globs).
    pub ignore_missing: Option<GlobSet>,
    /// `$ORIGIN`-relative or absolute entries.
    pub runpath: RunpathMode,
    /// Resolve libraries of the system's libc directory like any other
    /// (adding that directory to RUNPATH) instead of leaving them to it.
    pub keep_libc: bool,
    /// The directory the GPU driver's libraries live in at run time
    /// (`/run/opengl-driver/lib` on NixOS): first in every RUNPATH written.
    pub driver_runpath: Option<String>,
    /// Also link libraries a file names in its strings (what it may
    /// `dlopen`: cuDNN names libcublasLt) when another component provides
    /// them: always with `deps`, and where the tree holds several
    /// components (an install's prefix).
    pub dlopen_names: bool,
    /// Patch a file shared with other names (hard links into the store of
    /// unpacked trees, symlinks into it) through a private copy, so the
    /// other names keep their bytes.
    pub private_copies: bool,
}

/// One ELF file to consider.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// Path relative to the tree root.
    pub path: String,
    /// Root of its output, relative to the tree root (`lib` in a split
    /// unpack, `""` when merged): `$ORIGIN` entries must stay inside it.
    pub output_dir: String,
}

/// A file or symlink of the tree, for the library index.
#[derive(Debug, Clone)]
pub struct TreeFile {
    /// Path relative to the tree root.
    pub path: String,
    /// For symlinks: the path (relative to the root) they resolve to.
    pub target: Option<String>,
}

/// Where one need was found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "from", content = "dir", rename_all = "lowercase")]
pub enum Resolution {
    /// A directory of the tree (relative to its root).
    Own(String),
    /// A `--dep` directory.
    Dep(PathBuf),
    /// The file's own existing absolute RUNPATH/RPATH directory.
    Runpath(PathBuf),
    /// The system's libc directory, left to the loader.
    System(PathBuf),
    /// A library of the GPU driver: found at run time (`driver_runpath`).
    Driver,
    /// Unresolved but allowed by `ignore_missing`.
    Ignored,
}

/// What autopatch did to one file.
#[derive(Debug, Clone, Serialize)]
pub struct FileReport {
    /// Path relative to the tree root.
    pub path: String,
    /// Needs and where each resolved.
    pub needs: BTreeMap<String, Resolution>,
    /// The RUNPATH written (`None`: no RUNPATH).
    pub runpath: Option<String>,
    /// The interpreter written, if changed.
    pub interpreter: Option<String>,
    /// Which dynamic tag holds the search path afterwards (`None`: neither).
    pub tag: Option<SearchTag>,
    /// Whether the file's bytes changed.
    pub changed: bool,
}

/// The dynamic tag that holds a file's library search path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SearchTag {
    /// `DT_RUNPATH`: searched after `LD_LIBRARY_PATH`, not inherited.
    #[serde(rename = "DT_RUNPATH")]
    Runpath,
    /// `DT_RPATH`: searched before `LD_LIBRARY_PATH`, inherited by what the
    /// file loads.
    #[serde(rename = "DT_RPATH")]
    Rpath,
}

impl SearchTag {
    /// `DT_RUNPATH` or `DT_RPATH`.
    pub fn name(self) -> &'static str {
        match self {
            SearchTag::Runpath => "DT_RUNPATH",
            SearchTag::Rpath => "DT_RPATH",
        }
    }
}

/// A file left alone, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedFile {
    /// Path relative to the tree root.
    pub path: String,
    /// Why.
    pub reason: String,
}

/// What autopatch did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct AutopatchReport {
    /// Files planned and patched (changed or not).
    pub files: Vec<FileReport>,
    /// Files skipped.
    pub skipped: Vec<SkippedFile>,
    /// Unresolved needs allowed by `ignore_missing`: (file, library).
    pub ignored: Vec<(String, String)>,
    /// Seconds spent.
    pub seconds: f64,
}

/// A candidate as read: its dynamic-linking view, `.note.dlopen` needs
/// included.
type Scanned = (
    Candidate,
    std::result::Result<elfpatch::Info, elfpatch::Error>,
);

/// Machines that need nothing from us: not ELF-dynamic, or not this
/// component's.
fn skip_reason(info: &elfpatch::Info, machine: (u16, elfpatch::Class)) -> Option<String> {
    use elfpatch::FileKind;
    match info.kind {
        FileKind::Rel => return Some("relocatable object".into()),
        FileKind::Core | FileKind::Other(_) => return Some("not an executable or library".into()),
        _ => {}
    }
    if (info.machine, info.class) != machine {
        return Some(format!("other machine (e_machine {})", info.machine));
    }
    if !matches!(info.osabi, 0 | 3) {
        return Some(format!("incompatible OS/ABI {}", info.osabi));
    }
    if info.is_static {
        return Some("statically linked".into());
    }
    None
}

/// Whether a path lies in a stubs directory (never satisfies a need).
fn is_stub(path: &str) -> bool {
    path.starts_with("stubs/") || path.contains("/stubs/")
}

/// The GPU driver's own libraries: installed with the kernel driver, never
/// shipped in a toolkit (the toolkit's `stubs/libcuda.so` only serves the
/// link editor).
pub fn is_driver_library(name: &str) -> bool {
    const DRIVER: [&str; 5] = [
        "libcuda.so",
        "libcudadebugger.so",
        "libnvcuvid.so",
        "libnvoptix.so",
        "libnvidia-",
    ];
    // libGLX_nvidia.so.0, libEGL_nvidia.so.0, libGLESv2_nvidia.so.2.
    DRIVER.iter().any(|p| name.starts_with(p)) || name.contains("_nvidia.so")
}

/// libc's own libraries: left to the system loader unless asked.
fn is_libc_library(name: &str) -> bool {
    const LIBC: [&str; 12] = [
        "libc.so",
        "libm.so",
        "libdl.so",
        "libpthread.so",
        "librt.so",
        "libresolv.so",
        "libutil.so",
        "libanl.so",
        "libmvec.so",
        "libnsl.so",
        "libcrypt.so",
        "libBrokenLocale.so",
    ];
    name.starts_with("ld-linux")
        || name.starts_with("ld64.so")
        || LIBC.iter().any(|l| name.starts_with(l))
}

/// Patch the candidates of a tree staged at `root`; `placement` says where
/// each output finally lives (absolute RUNPATHs point there).
///
/// 1. every candidate is read once, in parallel;
/// 2. the component's machine is the most common among its dynamic files;
/// 3. each file's needs are resolved ([`Resolver`]) and its RUNPATH
///    composed ([`runpath_of`]); every unresolved need is collected;
/// 4. the files are patched in parallel ([`patch_one`]).
pub fn run(
    root: &Path,
    placement: &crate::Placement,
    candidates: &[Candidate],
    tree: &[TreeFile],
    opts: &AutopatchOptions,
) -> Result<AutopatchReport> {
    let started = Instant::now();
    let infos: Vec<Scanned> = candidates
        .par_iter()
        .map(|c| (c.clone(), elfpatch::read(&root.join(&c.path))))
        .collect();
    let mut report = AutopatchReport::default();
    let Some(machine) = component_machine(&infos) else {
        report.skipped = infos.iter().map(|(c, i)| no_machine(c, i)).collect();
        report.seconds = started.elapsed().as_secs_f64();
        return Ok(report);
    };
    let resolver = Resolver {
        index: Index::new(root, tree, &infos, machine),
        deps: DepDirs::new(&opts.deps, machine.0),
        system: match &opts.interpreter {
            Some(interp) => loader_libc_dir(Path::new(interp), machine.0),
            None => system_libc_dir(machine.0),
        },
        machine,
        opts,
    };
    // Libraries that `dlopen` others by name (cuDNN loads libcublasLt and
    // libnvrtc) say so only in their strings: found in a dependency, such a
    // library joins the RUNPATH; not found, it is nobody's business.
    let named: HashMap<String, Vec<String>> = if opts.deps.is_empty() && !opts.dlopen_names {
        HashMap::new()
    } else {
        infos
            .par_iter()
            .filter(|(_, i)| {
                i.as_ref()
                    .is_ok_and(|i| i.kind == elfpatch::FileKind::Dyn && i.interpreter.is_none())
            })
            .map(|(c, _)| (c.path.clone(), sonames_named(&root.join(&c.path))))
            .collect()
    };
    let mut plans = Vec::new();
    let mut missing: Vec<(String, String)> = Vec::new();
    for (c, info) in infos {
        let info = match info {
            Ok(i) => i,
            Err(e) => {
                report.skipped.push(SkippedFile {
                    path: c.path.clone(),
                    reason: format!("not patched: {}", crate::error::chain(&e)),
                });
                continue;
            }
        };
        if let Some(reason) = skip_reason(&info, machine) {
            report.skipped.push(SkippedFile {
                path: c.path.clone(),
                reason,
            });
            continue;
        }
        let (mut needs, mut dirs) = resolver.needs_of(&c, &info, &mut report.ignored, &mut missing);
        for name in named.get(&c.path).into_iter().flatten() {
            if needs.contains_key(name) || info.soname.as_ref() == Some(name) {
                continue;
            }
            // A directory of the tree (another component's, in a prefix),
            // else a dependency.
            let own = resolver.index.find(name).map(Resolution::Own);
            if let Some(r) = own.or_else(|| resolver.deps.find(name).map(Resolution::Dep)) {
                if !dirs.contains(&r) {
                    dirs.push(r.clone());
                }
                needs.insert(name.clone(), r);
            }
        }
        let runpath = runpath_of(&c, &info, &dirs, opts, placement);
        let interpreter = info.interpreter.as_ref().and(opts.interpreter.clone());
        plans.push(FilePlan {
            candidate: c,
            needs,
            runpath,
            interpreter,
            info,
        });
    }
    if !missing.is_empty() {
        missing.sort();
        return Err(Error::Unresolved { pairs: missing });
    }
    let results: Vec<Result<FileReport>> = plans
        .into_par_iter()
        .map(|p| patch_one(root, placement, p, opts.private_copies))
        .collect();
    for r in results {
        report.files.push(r?);
    }
    report.files.sort_by(|a, b| a.path.cmp(&b.path));
    report.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The sonames (`libcublasLt.so.13`) a file holds as C strings: what it
/// may `dlopen`. Empty when it cannot be read.
fn sonames_named(path: &Path) -> Vec<String> {
    match read_only_data(path) {
        Some(chunks) => {
            let mut names: Vec<String> = chunks.iter().flat_map(|c| sonames_in(c)).collect();
            names.sort();
            names.dedup();
            names
        }
        None => fs::read(path).map(|d| sonames_in(&d)).unwrap_or_default(),
    }
}

/// The bytes of a file's allocated, non-executable data sections (where C
/// string constants live), without the GPU code NVIDIA embeds
/// (`.nv_fatbin`, often most of the file); `None` when the file has no
/// usable section headers (then the whole file is read).
fn read_only_data(path: &Path) -> Option<Vec<Vec<u8>>> {
    use goblin::container::{Container, Ctx, Endian};
    use goblin::elf::section_header::{SHF_ALLOC, SHF_EXECINSTR, SHT_PROGBITS};
    use goblin::elf::SectionHeader;
    use std::os::unix::fs::FileExt;
    let f = fs::File::open(path).ok()?;
    let len = f.metadata().ok()?.len();
    let mut head = [0u8; 64];
    f.read_exact_at(&mut head, 0).ok()?;
    let h = goblin::elf::Elf::parse_header(&head).ok()?;
    let ctx = Ctx::new(
        if h.e_ident[4] == 2 {
            Container::Big
        } else {
            Container::Little
        },
        if h.e_ident[5] == 2 {
            Endian::Big
        } else {
            Endian::Little
        },
    );
    let count = usize::from(h.e_shnum);
    let size = count.checked_mul(usize::from(h.e_shentsize))?;
    if count == 0 || h.e_shoff.checked_add(size as u64)? > len {
        return None;
    }
    let mut table = vec![0u8; size];
    f.read_exact_at(&mut table, h.e_shoff).ok()?;
    let shdrs = SectionHeader::parse_from(&table, 0, count, ctx).ok()?;
    let names = shdrs.get(usize::from(h.e_shstrndx)).and_then(|s| {
        let mut b = vec![0u8; usize::try_from(s.sh_size).ok()?.min(1 << 20)];
        f.read_exact_at(&mut b, s.sh_offset).ok().map(|_| b)
    });
    let name = |s: &SectionHeader| -> &[u8] {
        let Some(n) = &names else { return b"" };
        let rest = n.get(s.sh_name..).unwrap_or(b"");
        &rest[..rest.iter().position(|&c| c == 0).unwrap_or(rest.len())]
    };
    let mut out = Vec::new();
    for s in &shdrs {
        let data = s.sh_type == SHT_PROGBITS
            && s.sh_flags & u64::from(SHF_ALLOC) != 0
            && s.sh_flags & u64::from(SHF_EXECINSTR) == 0
            && !name(s).starts_with(b".nv");
        if !data || s.sh_size == 0 || s.sh_offset.checked_add(s.sh_size)? > len {
            continue;
        }
        let mut b = vec![0u8; usize::try_from(s.sh_size).ok()?];
        f.read_exact_at(&mut b, s.sh_offset).ok()?;
        out.push(b);
    }
    Some(out)
}

/// The sonames (`libcublasLt.so.13`) `data` holds as C strings.
pub(crate) fn sonames_in(data: &[u8]) -> Vec<String> {
    use std::sync::OnceLock;
    static SONAME: OnceLock<regex::bytes::Regex> = OnceLock::new();
    let re = SONAME.get_or_init(|| {
        regex::bytes::Regex::new(r"lib[A-Za-z0-9_+\-]+(\.[A-Za-z0-9_+\-]+)*\.so(\.[0-9]+)+\x00")
            .expect("a valid pattern")
    });
    let mut names: Vec<String> = re
        .find_iter(data)
        .filter(|m| m.start() == 0 || !data[m.start() - 1].is_ascii_alphanumeric())
        .filter_map(|m| std::str::from_utf8(&m.as_bytes()[..m.len() - 1]).ok())
        .map(str::to_owned)
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The machine of a component: the most common among its dynamic files.
fn component_machine(infos: &[Scanned]) -> Option<(u16, elfpatch::Class)> {
    let mut counts: HashMap<(u16, elfpatch::Class), usize> = HashMap::new();
    for i in infos.iter().filter_map(|(_, i)| i.as_ref().ok()) {
        if !i.is_static && matches!(i.kind, elfpatch::FileKind::Dyn | elfpatch::FileKind::Exec) {
            *counts.entry((i.machine, i.class)).or_default() += 1;
        }
    }
    counts
        .into_iter()
        .max_by_key(|(m, n)| (*n, std::cmp::Reverse(m.0)))
        .map(|(m, _)| m)
}

/// Why a file of a component without dynamic files is skipped.
fn no_machine(
    c: &Candidate,
    info: &std::result::Result<elfpatch::Info, elfpatch::Error>,
) -> SkippedFile {
    SkippedFile {
        path: c.path.clone(),
        reason: match info {
            Err(e) => format!("unreadable: {}", crate::error::chain(e)),
            Ok(i) => {
                skip_reason(i, (u16::MAX, i.class)).unwrap_or_else(|| "no dynamic files".into())
            }
        },
    }
}

/// What one file will be patched with.
struct FilePlan {
    candidate: Candidate,
    needs: BTreeMap<String, Resolution>,
    runpath: Option<String>,
    interpreter: Option<String>,
    info: elfpatch::Info,
}

/// Where a component's needs are found, in order: the driver (left to the
/// system), libc (the loader's own directory), the component's outputs,
/// `--dep` directories, the file's own absolute search path, the system.
struct Resolver<'o> {
    index: Index,
    deps: DepDirs,
    system: Option<PathBuf>,
    machine: (u16, elfpatch::Class),
    opts: &'o AutopatchOptions,
}

impl Resolver<'_> {
    /// One library, by any of its names.
    fn find<'n>(
        &self,
        alternatives: &'n [String],
        own_dirs: &[PathBuf],
    ) -> Option<(&'n String, Resolution)> {
        alternatives.iter().find_map(|name| {
            if is_driver_library(name) {
                return Some((name, Resolution::Driver));
            }
            if !self.opts.keep_libc && is_libc_library(name) {
                return Some((name, Resolution::System(PathBuf::from("(libc)"))));
            }
            self.index
                .find(name)
                .map(Resolution::Own)
                .or_else(|| self.deps.find(name).map(Resolution::Dep))
                .or_else(|| {
                    own_dirs
                        .iter()
                        .find(|d| elfpatch::probe_machine(&d.join(name)) == Some(self.machine.0))
                        .map(|d| Resolution::Runpath(d.clone()))
                })
                .or_else(|| {
                    self.system
                        .as_ref()
                        .filter(|d| d.join(name).exists())
                        .map(|d| Resolution::System(d.clone()))
                })
                .map(|r| (name, r))
        })
    }

    /// Every need of one file (`DT_NEEDED` and `.note.dlopen`), and the
    /// directories that go into its RUNPATH, in order. Needs no one
    /// provides go to `ignored` (matching `--ignore-missing`) or `missing`.
    fn needs_of(
        &self,
        c: &Candidate,
        info: &elfpatch::Info,
        ignored: &mut Vec<(String, String)>,
        missing: &mut Vec<(String, String)>,
    ) -> (BTreeMap<String, Resolution>, Vec<Resolution>) {
        let mut needs: BTreeMap<String, Resolution> = BTreeMap::new();
        let mut dirs: Vec<Resolution> = Vec::new();
        let wanted = info
            .needed
            .iter()
            .map(|n| vec![n.clone()])
            .chain(info.dlopen.clone());
        // The file's own absolute search path, where it exists here: what
        // it was linked to find (an `/opt/ext` of its vendor).
        let own_dirs: Vec<PathBuf> = info
            .runpath
            .iter()
            .chain(info.rpath.iter())
            .flat_map(|r| r.split(':'))
            .filter(|e| e.starts_with('/'))
            .map(PathBuf::from)
            .filter(|d| d.is_dir())
            .collect();
        for alternatives in wanted {
            let Some(first) = alternatives.first() else {
                continue;
            };
            match self.find(&alternatives, &own_dirs) {
                Some((name, r)) => {
                    let in_runpath = match &r {
                        Resolution::Own(_) | Resolution::Dep(_) | Resolution::Runpath(_) => true,
                        Resolution::System(d) => self.opts.keep_libc && d.is_absolute(),
                        Resolution::Ignored | Resolution::Driver => false,
                    };
                    if in_runpath && !dirs.contains(&r) {
                        dirs.push(r.clone());
                    }
                    needs.insert(name.clone(), r);
                }
                None => match &self.opts.ignore_missing {
                    Some(g) if alternatives.iter().any(|a| g.is_match(a)) => {
                        ignored.push((c.path.clone(), first.clone()));
                        needs.insert(first.clone(), Resolution::Ignored);
                    }
                    _ => missing.push((c.path.clone(), alternatives.join(" or "))),
                },
            }
        }
        (needs, dirs)
    }
}

/// A file's new RUNPATH: `--driver-runpath`, the directories its needs
/// resolved to, its old `$ORIGIN` entries still inside its output, then
/// `--append-runpath`; `None` when empty.
fn runpath_of(
    c: &Candidate,
    info: &elfpatch::Info,
    dirs: &[Resolution],
    opts: &AutopatchOptions,
    placement: &crate::Placement,
) -> Option<String> {
    let file_dir = parent(&c.path).to_owned();
    let mut entries: Vec<String> = Vec::new();
    let mut push = |e: String| {
        if !e.is_empty() && !entries.contains(&e) {
            entries.push(e);
        }
    };
    if let Some(d) = &opts.driver_runpath {
        push(d.clone());
    }
    for d in dirs {
        match d {
            Resolution::Own(dir) => push(match opts.runpath {
                RunpathMode::Relative => origin(&relative(&file_dir, dir)),
                RunpathMode::Absolute => placement.path(dir),
            }),
            Resolution::Dep(dir) | Resolution::System(dir) | Resolution::Runpath(dir) => {
                push(dir.display().to_string())
            }
            Resolution::Ignored | Resolution::Driver => {}
        }
    }
    for old in info
        .runpath
        .iter()
        .chain(info.rpath.iter())
        .flat_map(|r| r.split(':'))
    {
        // Kept `$ORIGIN`-relative whatever the mode, as nixpkgs keeps
        // `$ORIGIN`: a library that `dlopen`s its siblings finds them
        // wherever the output is copied.
        if let Some(dir) = origin_target(&file_dir, old) {
            if inside(&dir, &c.output_dir) {
                push(origin(&relative(&file_dir, &dir)));
            }
        }
    }
    for a in &opts.append_runpath {
        push(a.clone());
    }
    (!entries.is_empty()).then(|| entries.join(":"))
}

/// Patch one file as planned and report what it holds now.
fn patch_one(
    root: &Path,
    placement: &crate::Placement,
    p: FilePlan,
    private: bool,
) -> Result<FileReport> {
    let FilePlan {
        candidate: c,
        needs,
        runpath,
        interpreter,
        info,
    } = p;
    let had_path = info.runpath.is_some() || info.rpath.is_some();
    let edits = elfpatch::Edits {
        interpreter: interpreter.clone(),
        runpath: match &runpath {
            Some(r) => elfpatch::RunpathEdit::Set(r.clone()),
            None if had_path => elfpatch::RunpathEdit::Remove,
            None => elfpatch::RunpathEdit::Keep,
        },
        ..Default::default()
    };
    let abs = root.join(&c.path);
    let patch_error = |e: elfpatch::Error| Error::Patch {
        path: PathBuf::from(placement.path(&c.path)),
        cause: e.into_kind(),
    };
    let outcome = if private {
        elfpatch::patch_file_private(&abs, &edits)
    } else {
        elfpatch::patch_file(&abs, &edits)
    }
    .map_err(patch_error)?;
    // What the file holds now, read back: the tag is the editor's
    // decision (a value already in place keeps its tag).
    let after = if outcome.changed {
        elfpatch::read(&abs).map_err(patch_error)?
    } else {
        info
    };
    let tag = match (&after.runpath, &after.rpath) {
        (Some(_), _) => Some(SearchTag::Runpath),
        (None, Some(_)) => Some(SearchTag::Rpath),
        (None, None) => None,
    };
    Ok(FileReport {
        path: c.path,
        needs,
        runpath,
        interpreter,
        tag,
        changed: outcome.changed,
    })
}

fn origin(rel: &str) -> String {
    if rel == "." {
        "$ORIGIN".into()
    } else {
        format!("$ORIGIN/{rel}")
    }
}

/// The tree directory an `$ORIGIN…` entry points at, lexically.
fn origin_target(file_dir: &str, entry: &str) -> Option<String> {
    let rest = entry
        .strip_prefix("$ORIGIN")
        .or_else(|| entry.strip_prefix("${ORIGIN}"))?;
    if !(rest.is_empty() || rest.starts_with('/')) {
        return None;
    }
    crate::unpack::join_lexically(file_dir, rest)
}

/// Whether `dir` is `output` or below it.
fn inside(dir: &str, output: &str) -> bool {
    output.is_empty() || dir == output || dir.starts_with(&format!("{output}/"))
}

/// File name → directories of the tree holding a library of that name (of
/// the component's machine), stubs excluded.
struct Index {
    by_name: HashMap<String, Vec<String>>,
}

impl Index {
    fn new(
        root: &Path,
        tree: &[TreeFile],
        infos: &[Scanned],
        machine: (u16, elfpatch::Class),
    ) -> Index {
        let known: HashMap<&str, (u16, elfpatch::Class)> = infos
            .iter()
            .filter_map(|(c, i)| {
                i.as_ref()
                    .ok()
                    .map(|i| (c.path.as_str(), (i.machine, i.class)))
            })
            .collect();
        let mut by_name: HashMap<String, Vec<String>> = HashMap::new();
        for f in tree {
            if is_stub(&f.path) {
                continue;
            }
            let name = f.path.rsplit('/').next().unwrap_or(&f.path);
            if !name.contains(".so") {
                continue;
            }
            let target = f.target.as_deref().unwrap_or(&f.path);
            let m = known.get(target).copied().or_else(|| {
                let abs = root.join(target);
                let info = elfpatch::read(&abs).ok()?;
                Some((info.machine, info.class))
            });
            if m == Some(machine) {
                by_name
                    .entry(name.to_owned())
                    .or_default()
                    .push(parent(&f.path).to_owned());
            }
        }
        for dirs in by_name.values_mut() {
            // Prefer the shallowest `lib` directory, then the first by name.
            dirs.sort_by_key(|d| (!d.ends_with("lib"), d.matches('/').count(), d.clone()));
        }
        Index { by_name }
    }

    fn find(&self, name: &str) -> Option<String> {
        self.by_name.get(name).and_then(|d| d.first().cloned())
    }
}

/// The `--dep` directories, searched in order.
struct DepDirs {
    dirs: Vec<PathBuf>,
    machine: u16,
}

impl AutopatchOptions {
    /// Refuse dependency directories that do not exist, before any work.
    pub fn check(&self) -> Result<()> {
        match self.deps.iter().find(|d| !d.is_dir()) {
            Some(d) => Err(Error::MissingDependency(d.clone())),
            None => Ok(()),
        }
    }
}

impl DepDirs {
    fn new(dirs: &[PathBuf], machine: u16) -> DepDirs {
        DepDirs {
            dirs: dirs.to_vec(),
            machine,
        }
    }

    fn find(&self, name: &str) -> Option<PathBuf> {
        self.dirs
            .iter()
            .find(|d| elfpatch::probe_machine(&d.join(name)) == Some(self.machine))
            .cloned()
    }
}

/// The libc directory of the loader `interpreter` (the directory its real
/// file is in, when that holds `libc.so.6` of `machine`): where "left to
/// the system" looks when the files will run with another glibc than this
/// machine's. `None` when the loader is not on this machine.
fn loader_libc_dir(interpreter: &Path, machine: u16) -> Option<PathBuf> {
    let real = std::fs::canonicalize(interpreter).ok()?;
    let dir = real.parent()?;
    for d in [interpreter.parent()?, dir] {
        if elfpatch::probe_machine(&d.join("libc.so.6")) == Some(machine) {
            return Some(d.to_owned());
        }
    }
    None
}

/// The directory of the system's libc for `machine`, if this system has one.
fn system_libc_dir(machine: u16) -> Option<PathBuf> {
    const DIRS: [&str; 12] = [
        "/lib/x86_64-linux-gnu",
        "/usr/lib/x86_64-linux-gnu",
        "/lib/aarch64-linux-gnu",
        "/usr/lib/aarch64-linux-gnu",
        "/lib/powerpc64le-linux-gnu",
        "/usr/lib/powerpc64le-linux-gnu",
        "/lib/i386-linux-gnu",
        "/usr/lib/i386-linux-gnu",
        "/lib64",
        "/usr/lib64",
        "/lib",
        "/usr/lib",
    ];
    DIRS.iter()
        .map(PathBuf::from)
        .find(|d| elfpatch::probe_machine(&d.join("libc.so.6")) == Some(machine))
}

/// `--only`: keep the paths matching `only` and everything they need —
/// symlink targets, and the libraries (`DT_NEEDED`, `.note.dlopen`) other
/// kept files load, found by name in any of the components — and remove
/// the rest, from `tmp/<component>/` and from the component's tree.
pub(crate) fn prune(
    tmp: &Path,
    trees: &mut [(&str, &mut crate::unpack::Tree)],
    only: &globset::GlobSet,
    layout: crate::layout::Mode,
) {
    use crate::unpack::NodeKind;
    use std::collections::HashSet;
    let all: Vec<(String, String)> = trees
        .iter()
        .flat_map(|(c, t)| t.nodes.keys().map(move |f| (c.to_string(), f.clone())))
        .collect();
    // Globs speak of paths inside an output (`bin/ptxas`), whatever the layout.
    let inner = |rel: &str| -> String {
        match layout {
            crate::layout::Mode::Merged => rel.to_owned(),
            crate::layout::Mode::Split => rel.split_once('/').map_or(rel, |(_, r)| r).to_owned(),
        }
    };
    let mut by_name: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (c, f) in &all {
        if !is_stub(f) {
            let name = f.rsplit('/').next().unwrap_or(f).to_owned();
            by_name
                .entry(name)
                .or_default()
                .push((c.clone(), f.clone()));
        }
    }
    let node = |c: &str, f: &str| {
        trees
            .iter()
            .find(|(k, _)| *k == c)
            .and_then(|(_, t)| t.nodes.get(f))
    };
    let mut keep: HashSet<(String, String)> = all
        .iter()
        .filter(|(_, f)| only.is_match(inner(f)))
        .cloned()
        .collect();
    let mut queue: Vec<(String, String)> = keep.iter().cloned().collect();
    while let Some((c, f)) = queue.pop() {
        let mut found: Vec<(String, String)> = Vec::new();
        match node(&c, &f).map(|n| (&n.kind, n.elf)) {
            Some((NodeKind::Symlink { written, .. }, _)) => {
                if let Some(t) = crate::unpack::join_lexically(parent(&f), written) {
                    found.push((c.clone(), t));
                }
            }
            Some((_, true)) => {
                if let Ok(info) = elfpatch::read(&tmp.join(&c).join(&f)) {
                    for name in info.needed.iter().chain(info.dlopen.iter().flatten()) {
                        found.extend(by_name.get(name).into_iter().flatten().cloned());
                    }
                }
            }
            _ => {}
        }
        for f in found {
            if keep.insert(f.clone()) {
                queue.push(f);
            }
        }
    }
    for (c, tree) in trees.iter_mut() {
        tree.nodes.retain(|f, _| {
            let kept = keep.contains(&(c.to_string(), f.clone()));
            if !kept {
                let _ = fs::remove_file(tmp.join(*c).join(f));
            }
            kept
        });
    }
}

impl TreeFile {
    /// `files` of the tree at `root` (paths redist recorded), symlinks with
    /// the path they point at, resolved lexically.
    pub(crate) fn of<'f>(root: &Path, files: impl Iterator<Item = &'f String>) -> Vec<TreeFile> {
        let mut out: Vec<TreeFile> = files
            .map(|path| TreeFile {
                // An absolute link is one into the store of unpacked trees
                // (`--link-mode symlink`): the loader opens it by this
                // name, so it counts as the file it points at.
                target: fs::read_link(root.join(path))
                    .ok()
                    .filter(|t| t.is_relative())
                    .and_then(|t| {
                        crate::unpack::join_lexically(parent(path), &t.to_string_lossy())
                    }),
                path: path.clone(),
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sonames a library names are read from its data, not from its
    /// code or NVIDIA's embedded GPU code (`.nv_fatbin`).
    #[test]
    fn named_sonames_come_from_the_data_sections() {
        let d = tempfile::tempdir().unwrap();
        let src = d.path().join("n.c");
        std::fs::write(
            &src,
            "const char real[] = \"libcublasLt.so.13\";\n\
             __attribute__((section(\".nv_fatbin\"), used)) const char gpu[] = \"libinfatbin.so.1\";\n\
             const char *pick(int i) { return i ? real : \"libother.so.2\"; }\n",
        )
        .unwrap();
        let lib = d.path().join("libn.so");
        let ok = std::process::Command::new("cc")
            .args(["-shared", "-fPIC", "-o"])
            .arg(&lib)
            .arg(&src)
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "cc failed");
        assert_eq!(sonames_named(&lib), ["libcublasLt.so.13", "libother.so.2"]);
        // The whole file says more: the fallback for files without sections.
        let all = sonames_in(&std::fs::read(&lib).unwrap());
        assert!(all.contains(&"libinfatbin.so.1".to_string()), "{all:?}");
        assert_eq!(
            sonames_in(b"xlibno.so.1\0 libyes.so.1.2\0libnull.so.3"),
            ["libyes.so.1.2"]
        );
    }

    #[test]
    fn origin_entries_resolve_lexically() {
        assert_eq!(
            origin_target("lib/lib", "$ORIGIN").as_deref(),
            Some("lib/lib")
        );
        assert_eq!(
            origin_target("lib/lib", "$ORIGIN/../../bin/bin").as_deref(),
            Some("bin/bin")
        );
        assert_eq!(
            origin_target("lib", "$ORIGIN/../../x"),
            None,
            "climbs out of the tree"
        );
        assert_eq!(origin_target("lib", "/usr/lib"), None);
        assert_eq!(
            origin_target("lib", "${ORIGIN}/x").as_deref(),
            Some("lib/x")
        );
        assert!(inside("lib/lib", "lib"));
        assert!(!inside("bin/bin", "lib"));
        assert!(inside("anything", ""));
    }

    #[test]
    fn driver_libraries_are_recognised() {
        for n in [
            "libcuda.so.1",
            "libcuda.so",
            "libnvidia-ml.so.1",
            "libnvidia-ptxjitcompiler.so.1",
            "libnvcuvid.so.1",
            "libnvidia-encode.so.1",
            "libnvidia-opticalflow.so.1",
            "libcudadebugger.so.1",
            "libnvoptix.so.1",
            "libGLX_nvidia.so.0",
            "libEGL_nvidia.so.0",
        ] {
            assert!(is_driver_library(n), "{n}");
        }
        for n in [
            "libcudart.so.13",
            "libcudnn.so.9",
            "libnvrtc.so.13",
            "libnvJitLink.so.13",
            "libnvvm.so.4",
            "libcublasLt.so.13",
        ] {
            assert!(!is_driver_library(n), "{n}");
        }
    }

    #[test]
    fn libc_family_is_recognised() {
        for n in [
            "libc.so.6",
            "libm.so.6",
            "libdl.so.2",
            "libpthread.so.0",
            "ld-linux-x86-64.so.2",
            "librt.so.1",
        ] {
            assert!(is_libc_library(n), "{n}");
        }
        for n in [
            "libstdc++.so.6",
            "libcudart.so.12",
            "libcuda.so.1",
            "libgcc_s.so.1",
        ] {
            assert!(!is_libc_library(n), "{n}");
        }
    }
}
