//! `redist` turns NVIDIA's CUDA redistributable tarballs (`cuda_nvcc`,
//! `cuda_cudart`, `libcublas`, … as listed in `redistrib_<version>.json`)
//! into split, ready-to-use install trees, in one streaming pass.
//!
//! The data flows one way:
//!
//! ```text
//! source ─▶ decode (own thread; xz · gzip · zstd · tar by magic bytes)
//!        ─▶ unpack (tar entries, safety rules, root stripped)
//!        ─▶ layout (path ─▶ output: bin, lib, static, stubs, include, dev, …)
//!        ─▶ fixup (pkg-config paths, unversioned links)
//!        ─▶ publish (staging directory renamed into place) ─▶ report
//! ```
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

pub mod decode;
pub mod error;
pub mod fixup;
pub mod layout;
pub mod manifest;
pub mod report;
pub mod source;
pub mod unpack;

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Instant;

pub use decode::Format;
pub use error::{Error, Result, UnsafeRule};
pub use layout::{Layout, Mode, Rules};
pub use report::{NoProgress, OutputStats, Progress, Report, Stage, Stages};

/// Where the archive comes from.
pub enum Input {
    /// A file on disk.
    Path(PathBuf),
    /// Standard input (`-` on the command line).
    Stdin,
    /// Any reader, with a label for messages and an optional size.
    Reader {
        label: String,
        reader: Box<dyn Read + Send>,
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
}

impl Default for UnpackOptions {
    fn default() -> Self {
        UnpackOptions {
            layout: Layout::builtin(Mode::Split),
            decoder_threads: std::thread::available_parallelism().map_or(1, |n| n.get() as u32),
            mtime: None,
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
    let started = Instant::now();
    let out = absolute(out)?;
    if let Ok(mut entries) = std::fs::read_dir(&out) {
        if entries.next().is_some() {
            return Err(Error::OutputExists(out));
        }
    } else if out.exists() || out.is_symlink() {
        return Err(Error::OutputExists(out));
    }
    let (label, reader, size) = input.open()?;
    progress.begin(&label, size);
    let result = run(&label, reader, &out, opts, progress, started);
    progress.finish();
    result
}

fn run(
    label: &str,
    reader: Box<dyn Read + Send>,
    out: &Path,
    opts: &UnpackOptions,
    progress: &dyn Progress,
    started: Instant,
) -> Result<Report> {
    let decoder = decode::Decoder::spawn(label, reader, opts.decoder_threads)?;
    let staging = unpack::Staging::create(out)?;
    let (mut reader, handle, bytes_in, format) = decoder.into_parts();
    let writer = unpack::Writer::new(label, staging.path(), out, &opts.layout, opts.mtime);
    let mut tick = || progress.advance(bytes_in.load(Ordering::Relaxed));
    let written = writer.run(&mut reader, &mut tick).and_then(|tree| {
        // Past the end-of-archive marker: let the decoder reach its end
        // (and verify its checksum).
        reader.drain().map_err(|_| Error::DecoderFailed)?;
        if !reader.ends_with_zero_block() {
            return Err(Error::Truncated {
                archive: label.to_owned(),
                detail: "the tar stream ends without its end-of-archive marker".into(),
            });
        }
        Ok(tree)
    });
    let mut tree = match written {
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
    let mut dstats = handle.join()?;
    dstats.bytes_in = bytes_in.load(Ordering::Relaxed);
    progress.advance(dstats.bytes_in);

    progress.stage("fixups");
    let fix_start = Instant::now();
    let fixups = fixup::apply(&mut tree, &opts.layout, staging.path(), out)?;
    let fix_time = fix_start.elapsed();

    progress.stage("publish");
    staging.publish(out)?;

    let mut outputs: BTreeMap<String, OutputStats> = BTreeMap::new();
    let mut elf_files = Vec::new();
    for (dest, node) in &tree.nodes {
        let s = outputs
            .entry(node.output.clone())
            .or_insert_with(|| OutputStats {
                dir: opts.layout.output_dir(&node.output).to_owned(),
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
    let write_time = tree.busy.saturating_sub(waited);
    Ok(Report {
        archive: label.to_owned(),
        format,
        layout: opts.layout.mode(),
        out_dir: out.to_owned(),
        root: match &tree.root {
            unpack::Root::Stripped(r) => Some(r.clone()),
            _ => None,
        },
        top_level: tree.top_level,
        outputs,
        elf_files,
        fixups,
        bytes_in: dstats.bytes_in,
        bytes_decoded: dstats.bytes_out,
        bytes_written: tree.bytes_written,
        decoder_threads: dstats.threads,
        stages: Stages {
            decode: Stage::new(dstats.busy, dstats.bytes_out),
            write: Stage::new(write_time, dstats.bytes_out),
            fixups: Stage::new(fix_time, 0),
            total: Stage::new(started.elapsed(), dstats.bytes_out),
        },
    })
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        return Ok(p.to_owned());
    }
    let cwd = std::env::current_dir().map_err(|source| Error::Write {
        path: p.to_owned(),
        source,
    })?;
    Ok(cwd.join(p))
}
