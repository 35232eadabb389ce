//! `redist` turns NVIDIA's CUDA redistributable tarballs (`cuda_nvcc`,
//! `cuda_cudart`, `libcublas`, … as listed in `redistrib_<version>.json`)
//! into split, ready-to-use install trees, in one streaming pass.
//!
//! The data flows one way:
//!
//! ```text
//! Repository (manifest · mirror · verified cache)   or any input
//!        ─▶ decode (own thread; xz · gzip · zstd · tar by magic bytes)
//!        ─▶ unpack (tar entries, safety rules, root stripped) ─▶ Tree
//!        ─▶ layout (path ─▶ output: bin, lib, static, stubs, include, dev, …)
//!        ─▶ fixup (pkg-config paths, unversioned links, nvcc.profile: `toolkit`)
//!        ─▶ autopatch (RUNPATH and interpreter of every ELF file)
//!        ─▶ publish (staging directory renamed into place) ─▶ Report
//! ```
//!
//! The `Tree` (every entry, its output, kind, size, whether it is ELF) is
//! what the later phases read — the fixups, autopatch, [`install`]'s merge
//! and `--only` closure, the Nix builder's cross-output links — so nothing
//! re-derives it from the disk. See `docs/architecture.md` for the module
//! map.
//!
//! ```no_run
//! use redist::{unpack, Input, UnpackOptions, NoProgress};
//! let report = unpack(
//!     Input::Path("cuda_cudart-linux-x86_64-12.9.79-archive.tar.xz".into()),
//!     "cudart".as_ref(),
//!     &UnpackOptions::default(),
//!     &NoProgress,
//! )?;
//! println!("{} ELF files", report.elf_files.len());
//! # Ok::<(), redist::Error>(())
//! ```
//!
//! Nothing is published unless everything succeeded: the tree is built in a
//! staging directory next to the destination and renamed into place at the
//! end. Progress is reported through [`Progress`]; this crate never prints.

#![warn(missing_docs)]

mod autopatch;
mod decode;
mod error;
mod fixup;
mod install;
mod layout;
mod lock;
mod manifest;
pub mod nix;
mod placement;
mod publish;
mod report;
mod scratch;
mod source;
mod store;
mod toolkit;
mod unpack;

/// Crate-private functions the fuzz targets in `fuzz/` call; not an API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::fixup::rewrite_pkg_config_with as rewrite_pkg_config;
    pub use crate::toolkit::{rewrite_profile, ProfileDirs};
}

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub use autopatch::{
    AutopatchOptions, AutopatchReport, FileReport, Resolution, RunpathMode, SearchTag, SkippedFile,
};
pub use decode::{Format, LimitExceeded, Limits};
use error::write_error;
pub use error::{Error, Result, UnsafeRule};
pub use install::{
    install, installed_cuda, ComponentReport, InstallOptions, InstallReport, StoreAction, StoreUse,
};
pub use layout::{glob_set, Layout, Mode, OutputRule, RenameRule, Rules};
pub use lock::Reclaimed;
pub use manifest::{
    host_platform, Archive, Component, CudaVersion, Manifest, ManifestError, PlatformEntry,
    Selected, SetFile,
};
pub use placement::Placement;
pub use report::{NoProgress, OutputStats, Progress, Report, Reporter, Stage, Stages};
pub use scratch::{interrupted, remove_all as remove_unfinished};
pub use source::{
    Cache, Committer, Fetched, Fetcher, ListRow, Location, Opened, Origin, Product, Repository,
    SourceError, VariantRow, VerifyError,
};
pub use store::{
    EntryInfo, KeyInputs, LinkMode, Linked, Pruned, Store, StoreInfo, FORMAT as STORE_FORMAT,
};

/// Where the archive comes from.
pub enum Input {
    /// A file on disk.
    Path(PathBuf),
    /// Standard input (`-` on the command line).
    Stdin,
    /// Any reader, with a label for messages and an optional size.
    Reader {
        /// Its name in messages and reports.
        label: String,
        /// The bytes.
        reader: Box<dyn Read + Send>,
        /// Its size, when known (for progress).
        size: Option<u64>,
    },
}

impl Input {
    /// `-` is standard input, anything else a path.
    pub fn from_arg(arg: &Path) -> Input {
        if arg == Path::new("-") {
            Input::Stdin
        } else {
            Input::Path(arg.to_owned())
        }
    }

    fn open(self) -> Result<(String, Box<dyn Read + Send>, Option<u64>)> {
        match self {
            Input::Path(p) => {
                let label = p.display().to_string();
                let file = File::open(&p).map_err(|source| Error::Read {
                    archive: label.clone(),
                    source,
                })?;
                let meta = file.metadata().map_err(|source| Error::Read {
                    archive: label.clone(),
                    source,
                })?;
                if meta.is_dir() {
                    return Err(Error::Read {
                        archive: label,
                        source: io::Error::new(
                            io::ErrorKind::IsADirectory,
                            "is a directory, not an archive",
                        ),
                    });
                }
                Ok((label, Box::new(file), Some(meta.len())))
            }
            Input::Stdin => Ok(("<stdin>".into(), Box::new(io::stdin()), None)),
            Input::Reader {
                label,
                reader,
                size,
            } => Ok((label, reader, size)),
        }
    }
}

/// Threads to use when not told: every core.
pub fn default_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// How to unpack.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// The layout (rules and split/merged).
    pub layout: Layout,
    /// Threads for liblzma's multithreaded decoder.
    pub decoder_threads: u32,
    /// Give every file this mtime instead of the archive's (for
    /// reproducible builds).
    pub mtime: Option<u64>,
    /// Keep only entries whose path (top directory stripped) matches one of
    /// these globs; `None` keeps everything.
    pub only: Option<globset::GlobSet>,
    /// Where the tree will finally live, when it is not `out` (an installer
    /// that moves it afterwards); pkg-config paths point there.
    pub final_root: Option<PathBuf>,
    /// Where each output finally lives, when outputs go to separate
    /// directories (Nix store paths); needs the split layout.
    pub output_roots: Option<std::collections::BTreeMap<String, PathBuf>>,
    /// Write pkg-config paths relative to the `.pc` file (`${pcfiledir}/…`)
    /// so the tree can be moved.
    pub relocatable_pkgconfig: bool,
    /// Fix RUNPATH and interpreter of the ELF files written; `None` leaves
    /// them as they are.
    pub autopatch: Option<autopatch::AutopatchOptions>,
    /// Other components' trees this one is used with (cudart, crt, cccl
    /// and nvvm for `cuda_nvcc`): `nvcc.profile` points at their
    /// directories, and autopatch searches their libraries after the
    /// component's own and the `deps`.
    pub toolkit_deps: Vec<PathBuf>,
    /// Leave `bin/nvcc.profile` as shipped: the tree will be a merged
    /// prefix with the `.run` installer's `targets/` links.
    pub keep_nvcc_profile: bool,
    /// Flush the tree to disk before publishing it (one `syncfs`): off
    /// only where durability does not matter (tmpfs, benchmarks, a tree an
    /// installer publishes again itself).
    pub durable: bool,
    /// How far the archive may expand (decompression bombs).
    pub limits: Limits,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            layout: Layout::builtin(Mode::Split),
            decoder_threads: default_threads() as u32,
            mtime: None,
            only: None,
            final_root: None,
            output_roots: None,
            relocatable_pkgconfig: false,
            autopatch: Some(autopatch::AutopatchOptions::default()),
            toolkit_deps: Vec::new(),
            keep_nvcc_profile: false,
            durable: true,
            limits: Limits::default(),
        }
    }
}

/// Unpack `input` into `out`, split into outputs by the layout rules.
///
/// `out` must not exist or be an empty directory. On any error nothing
/// appears at `out` and the staging directory is removed.
pub fn unpack(
    input: Input,
    out: &Path,
    opts: &UnpackOptions,
    progress: &dyn Progress,
) -> Result<Report> {
    unpack_tree(input, out, opts, progress).map(|(report, _)| report)
}

/// [`unpack`], with the tree it wrote (every entry, its output and kind),
/// for the pipelines that continue from it without walking the disk.
pub(crate) fn unpack_tree(
    input: Input,
    out: &Path,
    opts: &UnpackOptions,
    progress: &dyn Progress,
) -> Result<(Report, unpack::Tree)> {
    let started = Instant::now();
    let out = std::path::absolute(out).map_err(write_error(out))?;
    if let Ok(mut entries) = std::fs::read_dir(&out) {
        if entries.next().is_some() {
            return Err(Error::OutputExists(out));
        }
    } else if out.exists() || out.is_symlink() {
        return Err(Error::OutputExists(out));
    }
    // What killed runs left beside the output (their staging copies).
    let reclaimed = publish::sweep_leftovers(&out);
    let (label, reader, size) = input.open()?;
    progress.begin(&label, size);
    let result = run(&label, reader, &out, opts, progress, started);
    progress.finish();
    result.map(|(mut report, tree)| {
        report.reclaimed = reclaimed;
        (report, tree)
    })
}

fn run(
    label: &str,
    reader: Box<dyn Read + Send>,
    out: &Path,
    opts: &UnpackOptions,
    progress: &dyn Progress,
    started: Instant,
) -> Result<(Report, unpack::Tree)> {
    // Dependencies are checked before anything is decoded or written.
    if let Some(ap) = &opts.autopatch {
        ap.check()?;
    }
    let mut toolkit_deps = toolkit::TreeDirs::default();
    for d in &opts.toolkit_deps {
        toolkit_deps.extend(toolkit::dep_tree(d, opts.layout.output_names())?);
    }
    let staging = publish::Staging::fresh(out)?;
    let final_root = opts.final_root.as_deref().unwrap_or(out);
    let placement = Placement {
        root: final_root.to_owned(),
        outputs: opts.output_roots.clone(),
    };
    let written = write(label, reader, staging.path(), final_root, opts, progress)?;
    let mut tree = written.tree;

    progress.stage("fixups");
    let fix_start = Instant::now();
    let fixups = fixup::apply(
        &mut tree,
        &opts.layout,
        staging.path(),
        &placement,
        opts.relocatable_pkgconfig,
    )?;
    let mut fixups = fixups;
    let mut warnings = Vec::new();
    if !opts.keep_nvcc_profile {
        nvcc_profiles(
            &tree,
            staging.path(),
            &placement,
            &opts.layout,
            &toolkit_deps,
            &mut fixups,
            &mut warnings,
        )?;
    }
    let fix_time = fix_start.elapsed();

    let patched = match &opts.autopatch {
        Some(ap) => {
            progress.stage("autopatch");
            let (candidates, files) = autopatch_inputs(&tree, &opts.layout);
            let mut ap = ap.clone();
            ap.deps.extend(toolkit_deps.libs.iter().cloned());
            Some(autopatch::run(
                staging.path(),
                &placement,
                &candidates,
                &files,
                &ap,
            )?)
        }
        None => None,
    };

    progress.stage("publish");
    staging.publish(out, opts.durable)?;

    let (outputs, elf_files) = outputs_and_elf_files(&tree, &opts.layout);
    let dstats = written.decode;
    let write_time = tree.busy.saturating_sub(written.waited);
    let report = Report {
        archive: label.to_owned(),
        format: written.format,
        layout: opts.layout.mode(),
        out_dir: out.to_owned(),
        root: match &tree.root {
            unpack::Root::Stripped(r) => Some(r.clone()),
            _ => None,
        },
        top_level: tree.top_level.clone(),
        outputs,
        elf_files,
        fixups,
        warnings,
        reclaimed: Reclaimed::default(),
        autopatch: patched.clone(),
        bytes_in: dstats.bytes_in,
        bytes_decoded: dstats.bytes_out,
        bytes_written: tree.bytes_written,
        decoder_threads: dstats.threads,
        stages: Stages {
            decode: Stage::new(dstats.busy, dstats.bytes_out),
            write: Stage::new(write_time, dstats.bytes_out),
            fixups: Stage::new(fix_time, 0),
            autopatch: Stage::new(
                std::time::Duration::from_secs_f64(patched.as_ref().map_or(0.0, |p| p.seconds)),
                0,
            ),
            total: Stage::new(started.elapsed(), dstats.bytes_out),
        },
    };
    Ok((report, tree))
}

/// What decoding and writing the archive gave.
struct Written {
    tree: unpack::Tree,
    decode: decode::DecodeStats,
    format: Format,
    /// Time the writer spent waiting for decoded bytes.
    waited: std::time::Duration,
}

/// Decode `reader` on its own thread and write its entries into `staging`;
/// the decoder's own error wins over what it made the writer see.
fn write(
    label: &str,
    reader: Box<dyn Read + Send>,
    staging: &Path,
    final_root: &Path,
    opts: &UnpackOptions,
    progress: &dyn Progress,
) -> Result<Written> {
    let decoder = decode::Decoder::spawn(label, reader, opts.decoder_threads, opts.limits)?;
    let (mut reader, handle, bytes_in, format) = decoder.into_parts();
    let mut writer = unpack::Writer::new(label, staging, final_root, &opts.layout, opts.mtime);
    if let Some(only) = &opts.only {
        writer = writer.only(only);
    }
    let mut tick = || progress.advance(bytes_in.load(Ordering::Relaxed));
    let written = writer.run(&mut reader, &mut tick).and_then(|tree| {
        // The tar reader stopped at a zero block (the end-of-archive
        // marker) or at the end of the stream (no marker: cut short).
        let marker = reader.ends_with_zero_block();
        // Past the marker: let the decoder reach its end (and verify its
        // checksum); what follows the marker is ignored, as GNU tar does.
        reader.drain().map_err(|_| Error::DecoderFailed)?;
        if !marker {
            return Err(Error::Truncated {
                archive: label.to_owned(),
                detail: "the tar stream ends without its end-of-archive marker".into(),
            });
        }
        Ok(tree)
    });
    let tree = match written {
        Ok(tree) => tree,
        Err(Error::DecoderFailed) => {
            drop(reader);
            return Err(match handle.join() {
                Err(e) => e,
                Ok(_) => Error::DecoderFailed,
            });
        }
        Err(e) => return Err(e),
    };
    let waited = reader.waited();
    drop(reader);
    let mut decode = handle.join()?;
    decode.bytes_in = bytes_in.load(Ordering::Relaxed);
    progress.advance(decode.bytes_in);
    Ok(Written {
        tree,
        decode,
        format,
        waited,
    })
}

/// Per-output counts and the ELF files of a written tree.
fn outputs_and_elf_files(
    tree: &unpack::Tree,
    layout: &Layout,
) -> (BTreeMap<String, OutputStats>, Vec<String>) {
    let mut outputs: BTreeMap<String, OutputStats> = BTreeMap::new();
    let mut elf_files = Vec::new();
    for (dest, node) in &tree.nodes {
        let s = outputs
            .entry(node.output.clone())
            .or_insert_with(|| OutputStats {
                dir: layout.output_dir(&node.output).to_owned(),
                ..OutputStats::default()
            });
        match node.kind {
            unpack::NodeKind::File => {
                s.files += 1;
                s.bytes += node.size;
            }
            unpack::NodeKind::Hardlink(_) => s.hardlinks += 1,
            unpack::NodeKind::Symlink { .. } => s.symlinks += 1,
        }
        if node.elf {
            elf_files.push(dest.clone());
        }
    }
    elf_files.sort();
    (outputs, elf_files)
}

/// Point every `bin/nvcc.profile` of the staged tree at the tree's own
/// directories, then the toolkit dependencies'. Directories of the tree
/// are written relative to the profile (`$(_HERE_)/…`) when the tree stays
/// whole, as final paths when its outputs go to separate places (Nix).
fn nvcc_profiles(
    tree: &unpack::Tree,
    staging: &Path,
    placement: &Placement,
    layout: &Layout,
    deps: &toolkit::TreeDirs,
    fixups: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<()> {
    let mut profiles: Vec<&String> = tree
        .nodes
        .iter()
        .filter(|(_, n)| n.kind == unpack::NodeKind::File && n.archive == "bin/nvcc.profile")
        .map(|(d, _)| d)
        .collect();
    profiles.sort();
    for dest in profiles {
        let mut dirs = toolkit::TreeDirs::probe(staging, layout.output_names());
        dirs.extend(deps.clone());
        let here = staging.join(unpack::parent(dest));
        let show = |p: &Path| -> String {
            match p.strip_prefix(staging) {
                Ok(_) if placement.outputs.is_none() => toolkit::here_relative(&here, p),
                Ok(rel) => placement.path(&rel.to_string_lossy()),
                Err(_) => p.display().to_string(),
            }
        };
        let profile_dirs = toolkit::ProfileDirs::new(&dirs, show);
        let shown = PathBuf::from(placement.path(dest));
        let staged = staging.join(dest);
        match toolkit::fix_profile(&staged, &staged, &shown, &profile_dirs)? {
            toolkit::ProfileFix::Rewritten => fixups.push(format!(
                "{dest}: include, library and NVVM paths point at the outputs{}",
                if deps.is_empty() {
                    ""
                } else {
                    " and the toolkit dependencies"
                }
            )),
            toolkit::ProfileFix::Unchanged => {}
            toolkit::ProfileFix::LeftAlone(why) => warnings.push(format!(
                "{dest} left as shipped: {why}; nvcc may not find headers or libraries"
            )),
        }
    }
    Ok(())
}

/// The ELF files of a tree (hard links are patched through their first
/// name) and every file and symlink, for autopatch's library index.
fn autopatch_inputs(
    tree: &unpack::Tree,
    layout: &Layout,
) -> (Vec<autopatch::Candidate>, Vec<autopatch::TreeFile>) {
    let mut candidates: Vec<autopatch::Candidate> = tree
        .nodes
        .iter()
        .filter(|(_, n)| n.elf)
        .map(|(dest, n)| autopatch::Candidate {
            path: dest.clone(),
            output_dir: layout.output_dir(&n.output).to_owned(),
        })
        .collect();
    candidates.sort_by(|a, b| a.path.cmp(&b.path));
    let files = tree
        .nodes
        .iter()
        .map(|(dest, n)| autopatch::TreeFile {
            path: dest.clone(),
            target: match &n.kind {
                unpack::NodeKind::Symlink { written, .. } => {
                    unpack::resolve(dest, written, &tree.nodes)
                }
                unpack::NodeKind::Hardlink(t) => Some(t.clone()),
                unpack::NodeKind::File => None,
            },
        })
        .collect();
    (candidates, files)
}

/// The outputs an archive would produce under `layout`, from its tar
/// headers alone (file data is read past, not written). This is what a Nix
/// expression must declare before the build runs.
pub fn outputs_of(
    input: Input,
    layout: &Layout,
    progress: &dyn Progress,
) -> Result<std::collections::BTreeSet<String>> {
    scan_archive(input, layout, progress, false).map(|f| f.outputs)
}

/// What decoding an archive to nowhere did ([`decode_only`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Decoded {
    /// The container format.
    pub format: Format,
    /// Compressed bytes read.
    pub bytes_in: u64,
    /// Decompressed (tar) bytes.
    pub bytes_out: u64,
    /// Decoder threads liblzma was allowed (1 for other formats).
    pub threads: u32,
}

/// Decode an archive and throw the bytes away: the decoder's own speed,
/// what `redist bench` compares with `xz -dc`. No size limits apply.
pub fn decode_only(input: Input, threads: u32, memory: Option<u64>) -> Result<Decoded> {
    let (label, reader, _) = input.open()?;
    let limits = Limits {
        memory,
        ..Limits::none()
    };
    let decoder = decode::Decoder::spawn(&label, reader, threads.max(1), limits)?;
    let (mut reader, handle, bytes_in, format) = decoder.into_parts();
    let drained = reader.drain();
    drop(reader);
    let stats = handle.join()?;
    drained.map_err(|_| Error::DecoderFailed)?;
    Ok(Decoded {
        format,
        bytes_in: bytes_in.load(Ordering::Relaxed).max(stats.bytes_in),
        bytes_out: stats.bytes_out,
        threads: stats.threads,
    })
}

/// What an archive provides and needs, for wiring a set of components:
/// its outputs, the libraries it ships (by file name, with the output each
/// lands in) and the libraries its ELF files need (`DT_NEEDED`,
/// `.note.dlopen`, and sonames named in their strings: what they may
/// `dlopen`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct ArchiveFacts {
    /// Outputs under the layout.
    pub outputs: std::collections::BTreeSet<String>,
    /// Library file name (`libcublasLt.so.13`) → output.
    pub provides: BTreeMap<String, String>,
    /// Libraries its ELF files need or name.
    pub needs: std::collections::BTreeSet<String>,
}

/// [`ArchiveFacts`] of an archive: one pass that reads the ELF files'
/// bytes (each at most 2 GiB) and skips the rest.
pub fn archive_facts(
    input: Input,
    layout: &Layout,
    progress: &dyn Progress,
) -> Result<ArchiveFacts> {
    scan_archive(input, layout, progress, true)
}

fn scan_archive(
    input: Input,
    layout: &Layout,
    progress: &dyn Progress,
    elf: bool,
) -> Result<ArchiveFacts> {
    let (label, reader, size) = input.open()?;
    progress.begin(&label, size);
    let decoder = decode::Decoder::spawn(&label, reader, 1, decode::Limits::default())?;
    let (mut reader, handle, bytes_in, _) = decoder.into_parts();
    let mut needs = std::collections::BTreeSet::new();
    let mut libraries: Vec<(String, Option<String>)> = Vec::new();
    let mut on_elf = |path: &str, data: &[u8]| {
        let Ok(info) = elfpatch::read_bytes(data) else {
            return;
        };
        needs.extend(info.needed.iter().cloned());
        needs.extend(info.dlopen.iter().flatten().cloned());
        if info.kind == elfpatch::FileKind::Dyn && info.interpreter.is_none() {
            needs.extend(autopatch::sonames_in(data));
            libraries.push((path.to_owned(), info.soname.clone()));
        }
    };
    let listed = list_paths(
        &label,
        &mut reader,
        &mut || progress.advance(bytes_in.load(Ordering::Relaxed)),
        if elf { Some(&mut on_elf) } else { None },
    )
    .and_then(|paths| {
        reader
            .drain()
            .map(|_| paths)
            .map_err(|_| Error::DecoderFailed)
    });
    drop(reader);
    let joined = handle.join();
    progress.finish();
    let paths = match (listed, joined) {
        (Ok(p), Ok(_)) => p,
        (_, Err(e)) | (Err(e), _) => return Err(e),
    };
    // The unpacker's top-directory rule, over the whole list.
    let mut root = unpack::Root::Undecided;
    for (p, dir) in &paths {
        root.place(p, *dir);
    }
    let strip = match root {
        unpack::Root::Stripped(top) => Some(top),
        _ => None,
    };
    let rel = |path: &str| -> String {
        match &strip {
            Some(top) => path[top.len()..].trim_start_matches('/').to_owned(),
            None => path.to_owned(),
        }
    };
    let mut facts = ArchiveFacts {
        needs,
        ..ArchiveFacts::default()
    };
    for (path, dir) in &paths {
        let rel = rel(path);
        if *dir || rel.is_empty() {
            continue;
        }
        facts.outputs.insert(layout.route(&rel).output.to_owned());
    }
    for (path, soname) in libraries {
        let rel = rel(&path);
        let output = layout.route(&rel).output.to_owned();
        let name = rel.rsplit('/').next().unwrap_or(&rel).to_owned();
        facts.provides.insert(name, output.clone());
        if let Some(soname) = soname {
            facts.provides.insert(soname, output);
        }
    }
    Ok(facts)
}

/// Called with each ELF file's path and bytes while listing an archive.
type OnElf<'a> = dyn FnMut(&str, &[u8]) + 'a;

/// Entry paths (cleaned of `.` and empty components) and whether each is a
/// directory. Names are held to the unpacker's rules (UTF-8, relative, no
/// `..`), so what this accepts, unpacking accepts.
fn list_paths(
    label: &str,
    tar: &mut impl Read,
    tick: &mut dyn FnMut(),
    mut on_elf: Option<&mut OnElf<'_>>,
) -> Result<Vec<(String, bool)>> {
    let ended = std::rc::Rc::new(std::cell::Cell::new(false));
    let mut archive = tar::Archive::new(unpack::EndSeen {
        inner: tar,
        ended: ended.clone(),
    });
    let mut out: Vec<(String, bool)> = Vec::new();
    let fail = |e: io::Error, out: &[(String, bool)]| {
        unpack::tar_failure(label, e, out.last().map(|(p, _)| p.as_str()), ended.get())
    };
    let refuse = |entry: &str, rule| Error::Unsafe {
        archive: label.to_owned(),
        entry: entry.to_owned(),
        rule,
    };
    for entry in archive.entries().map_err(|e| fail(e, &out))? {
        let mut entry = entry.map_err(|e| fail(e, &out))?;
        let kind = entry.header().entry_type();
        if unpack::is_extension(kind) {
            continue;
        }
        let name = unpack::entry_name(&entry.path_bytes()).map_err(|(n, r)| refuse(&n, r))?;
        if let Some(what) = unpack::special_kind(&mut entry).map_err(|e| fail(e, &out))? {
            return Err(refuse(&name, UnsafeRule::SpecialFile(what)));
        }
        let clean = unpack::clean(&name).map_err(|r| refuse(&name, r))?;
        if let Some(f) = on_elf.as_mut().filter(|_| kind.is_file()) {
            let size = entry.header().size().unwrap_or(0);
            if (4..=2 << 30).contains(&size) {
                let mut head = [0u8; 4];
                entry.read_exact(&mut head).map_err(|e| fail(e, &out))?;
                if elfpatch::is_elf(&head) {
                    let mut data = Vec::with_capacity(size as usize);
                    data.extend_from_slice(&head);
                    entry.read_to_end(&mut data).map_err(|e| fail(e, &out))?;
                    f(&clean, &data);
                }
            }
        }
        if !clean.is_empty() {
            out.push((clean, kind.is_dir()));
        }
        tick();
    }
    Ok(out)
}
