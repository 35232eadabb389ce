//! What an unpack did, for people (the CLI's table) and scripts (`--json`),
//! and the [`Progress`] trait through which long work reports as it goes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::decode::Format;
use crate::layout::Mode;
use crate::manifest::Selected;
use crate::source::Origin;

/// Receives progress while an archive is unpacked. Every method has a
/// default that does nothing; the CLI draws bars, tests record calls.
pub trait Progress: Sync {
    /// Unpacking of `archive` begins; `total` is its size when known.
    fn begin(&self, _archive: &str, _total: Option<u64>) {}
    /// `bytes` of the archive have been read so far.
    fn advance(&self, _bytes: u64) {}
    /// A new stage (`"fixups"`, `"publish"`) starts.
    fn stage(&self, _name: &str) {}
    /// The work is over, successfully or not.
    fn finish(&self) {}
}

/// A [`Progress`] that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoProgress;

impl Progress for NoProgress {}

/// The outcome of one unpack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The archive as the user named it (`<stdin>` for standard input).
    pub archive: String,
    /// Detected container format.
    pub format: Format,
    /// Split or merged.
    pub layout: Mode,
    /// Where the tree was published.
    pub out_dir: PathBuf,
    /// The top directory that was stripped, if there was a single one.
    pub root: Option<String>,
    /// Top-level names kept as they were when there was no single root.
    pub top_level: Vec<String>,
    /// Per output: where it is and what it holds.
    pub outputs: BTreeMap<String, OutputStats>,
    /// ELF files written, relative to `out_dir`, sorted.
    pub elf_files: Vec<String>,
    /// One line per fixup applied.
    pub fixups: Vec<String>,
    /// Things the user should know (a file left as shipped, and why).
    pub warnings: Vec<String>,
    /// Staging directories of killed runs beside the output, removed first.
    pub reclaimed: crate::Reclaimed,
    /// What autopatch did (absent with `--no-patch`).
    #[serde(skip_deserializing)]
    pub autopatch: Option<crate::autopatch::AutopatchReport>,
    /// Compressed bytes read.
    pub bytes_in: u64,
    /// Decompressed (tar) bytes.
    pub bytes_decoded: u64,
    /// File data written.
    pub bytes_written: u64,
    /// Threads liblzma's decoder was allowed.
    pub decoder_threads: u32,
    /// Time and throughput per stage.
    pub stages: Stages,
}

/// Counts for one output.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutputStats {
    /// Its directory relative to `out_dir` (`""` when merged).
    pub dir: String,
    /// Regular files.
    pub files: u64,
    /// Symbolic links.
    pub symlinks: u64,
    /// Hard links to files written earlier.
    pub hardlinks: u64,
    /// Bytes of file data.
    pub bytes: u64,
}

/// Per-stage timings. Decode and write overlap (they run on two threads), so
/// they do not add up to the total.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stages {
    /// Reading and decompressing, on the decoder thread.
    pub decode: Stage,
    /// Parsing tar and writing files, not counting waits for the decoder.
    pub write: Stage,
    /// Fixups on the staged tree.
    pub fixups: Stage,
    /// RUNPATH and interpreter edits.
    pub autopatch: Stage,
    /// Wall-clock, start to published.
    pub total: Stage,
}

/// One stage: time, and throughput over the bytes it handled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Stage {
    /// Seconds.
    pub seconds: f64,
    /// MiB per second, over the decompressed bytes (0 when not meaningful).
    pub mib_per_s: f64,
}

impl Stage {
    /// A stage that took `d` to handle `bytes`.
    pub fn new(d: Duration, bytes: u64) -> Stage {
        let seconds = d.as_secs_f64();
        let mib_per_s = if seconds > 0.0 && bytes > 0 {
            bytes as f64 / (1 << 20) as f64 / seconds
        } else {
            0.0
        };
        Stage { seconds, mib_per_s }
    }
}

/// Receives per-component progress; the CLI draws one bar per component.
pub trait Reporter: Sync {
    /// Progress for one component's archive.
    fn component(&self, sel: &Selected, origin: Origin) -> Box<dyn Progress + '_>;
    /// A line worth telling the user (a retry, a skipped component).
    fn note(&self, _message: &str) {}
}
