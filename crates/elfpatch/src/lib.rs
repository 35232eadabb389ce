//! `elfpatch` edits the dynamic-linking metadata of ELF files — interpreter,
//! RUNPATH/RPATH, `DT_NEEDED`, SONAME — writing only the bytes that change.
//!
//! It knows ELF and nothing about CUDA, archives or layouts.
//!
//! # Concepts
//!
//! The work is split in three steps, each a module:
//!
//! - [`view`]: a read-only, bounds-checked parse of the parts that matter
//!   (ELF header, program and section headers, `PT_INTERP`, the dynamic
//!   section and its string table). Only those ranges are read, with
//!   positioned reads, so a 100 MB library costs what a 100 KB one does.
//! - [`plan`]: a pure planner turning a view plus [`Edits`] into a
//!   [`Plan`]: byte writes, an optional new tail and the new file length.
//!   All edits of one file are planned together; the file's layout changes
//!   at most once.
//! - [`apply`]: the plan onto the file (`pwrite` + `set_len`) or onto a
//!   `Vec<u8>`.
//!
//! The rules the planner follows are those of patchelf 0.19, with the ELF
//! specification's constraints kept: a string is overwritten in place only
//! when no other reference shares its bytes (linkers tail-merge strings),
//! otherwise it goes into a copy of `.dynstr`; a `.dynamic` that must grow
//! uses its spare `DT_NULL` slots or moves; moved bytes go into one tail
//! `PT_LOAD` at the end of the file, which later edits rebuild instead of
//! appending another; the program header table grows in place, by moving
//! the small tables right after it into the tail. Only when what follows it
//! cannot move, and only for a shared library (the kernel wants an
//! executable's table in its first segment), the whole file is shifted up
//! by whole pages — addresses unchanged — to make room for a larger table
//! at its start; that is the one case where a file is rewritten.
//! ELF32 and ELF64, little and big endian, `ET_EXEC` and `ET_DYN` share one
//! code path. A no-op edit leaves the file untouched, byte for byte.
//!
//! # Example
//!
//! ```
//! use std::path::Path;
//!
//! // Reading: what the dynamic loader will look at.
//! let info = elfpatch::read(Path::new("/proc/self/exe")).unwrap();
//! assert!(info.interpreter.is_some() || info.is_static || info.kind == elfpatch::FileKind::Dyn);
//!
//! // Patching: one call, all edits planned together.
//! let dir = tempfile::tempdir().unwrap();
//! let copy = dir.path().join("exe");
//! std::fs::copy("/proc/self/exe", &copy).unwrap();
//! let edits = elfpatch::Edits {
//!     runpath: elfpatch::RunpathEdit::Set("$ORIGIN/../lib".into()),
//!     ..Default::default()
//! };
//! if info.needed.iter().any(|n| n.starts_with("libc.so")) {
//!     let outcome = elfpatch::patch_file(&copy, &edits).unwrap();
//!     assert!(outcome.changed);
//!     let after = elfpatch::read(&copy).unwrap();
//!     assert_eq!(after.runpath.as_deref(), Some("$ORIGIN/../lib"));
//!     // The same edit again changes nothing.
//!     assert!(!elfpatch::patch_file(&copy, &edits).unwrap().changed);
//! }
//! ```

#![warn(missing_docs)]

pub mod apply;
mod codec;
mod error;
pub mod ldcache;
pub mod notes;
pub mod plan;
mod segments;
mod strtab;
mod symbols;
pub mod view;

use std::fs::{File, OpenOptions};
use std::path::Path;

use goblin::elf::dynamic::{DF_1_PIE, DT_FLAGS_1, DT_NEEDED, DT_RPATH, DT_RUNPATH, DT_SONAME};
use goblin::elf::header::{ET_CORE, ET_DYN, ET_EXEC, ET_REL};

pub use error::{Error, ErrorKind, Malformed, Unsupported};
pub use plan::{default_page_size, Edits, Plan, RunpathEdit};
pub use view::{ByteSource, FileBytes, View};

/// The four bytes every ELF file starts with.
pub const ELF_MAGIC: [u8; 4] = *b"\x7fELF";

/// Whether `head` (the first bytes of a file) starts like an ELF file.
///
/// ```
/// assert!(elfpatch::is_elf(b"\x7fELF\x02\x01\x01"));
/// assert!(!elfpatch::is_elf(b"#!/bin/sh"));
/// ```
pub fn is_elf(head: &[u8]) -> bool {
    head.starts_with(&ELF_MAGIC)
}

/// ELF class: 32- or 64-bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Class {
    /// `ELFCLASS32`.
    Elf32,
    /// `ELFCLASS64`.
    Elf64,
}

/// Byte order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endian {
    /// `ELFDATA2LSB`.
    Little,
    /// `ELFDATA2MSB`.
    Big,
}

/// `e_type`: what kind of ELF file this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileKind {
    /// `ET_REL`: an object file.
    Rel,
    /// `ET_EXEC`: a position-dependent executable.
    Exec,
    /// `ET_DYN`: a shared library or a position-independent executable.
    Dyn,
    /// `ET_CORE`: a core dump.
    Core,
    /// Anything else.
    Other(u16),
}

/// What the dynamic loader sees of a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Info {
    /// 32- or 64-bit.
    pub class: Class,
    /// Byte order.
    pub endian: Endian,
    /// `e_machine` (62 for x86-64, 183 for AArch64, …).
    pub machine: u16,
    /// `EI_OSABI`.
    pub osabi: u8,
    /// `e_type`.
    pub kind: FileKind,
    /// The `PT_INTERP` path.
    pub interpreter: Option<String>,
    /// `DT_RUNPATH`.
    pub runpath: Option<String>,
    /// `DT_RPATH` (ignored by the loader when `DT_RUNPATH` is present).
    pub rpath: Option<String>,
    /// `DT_NEEDED` entries, in order.
    pub needed: Vec<String>,
    /// `DT_SONAME`.
    pub soname: Option<String>,
    /// No interpreter and nothing to link dynamically: no `PT_DYNAMIC`, or a
    /// static PIE (`DF_1_PIE` with no `DT_NEEDED`).
    pub is_static: bool,
    /// A `PT_DYNAMIC` whose bytes are not in the file (p_filesz 0, as
    /// `strip --only-keep-debug` leaves it): no dynamic section to read or
    /// edit, like patchelf.
    pub empty_dynamic: bool,
    /// `PF_X` of `PT_GNU_STACK` (`None`: no such header).
    pub execstack: Option<bool>,
    /// `DF_1_NODEFLIB` is set in `DT_FLAGS_1`.
    pub no_default_lib: bool,
    /// The libraries the FDO `.note.dlopen` says the file `dlopen`s: one
    /// list of alternative sonames per entry (see [`notes`]).
    pub dlopen: Vec<Vec<String>>,
}

impl Info {
    fn from_view(v: &View<'_>) -> Info {
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let first = |tag| v.dyn_strings(tag).first().map(|s| text(s));
        let needed: Vec<String> = v.dyn_strings(DT_NEEDED).into_iter().map(text).collect();
        let flags_1 = v
            .dynamic
            .as_ref()
            .and_then(|d| d.get(DT_FLAGS_1))
            .unwrap_or(0);
        let static_pie = flags_1 & DF_1_PIE != 0 && needed.is_empty();
        Info {
            class: if v.is_64() {
                Class::Elf64
            } else {
                Class::Elf32
            },
            endian: if v.is_big_endian() {
                Endian::Big
            } else {
                Endian::Little
            },
            machine: v.machine(),
            osabi: v.osabi(),
            kind: match v.file_type() {
                ET_REL => FileKind::Rel,
                ET_EXEC => FileKind::Exec,
                ET_DYN => FileKind::Dyn,
                ET_CORE => FileKind::Core,
                t => FileKind::Other(t),
            },
            interpreter: v.interp.as_ref().map(|i| text(&i.value)),
            runpath: first(DT_RUNPATH),
            rpath: first(DT_RPATH),
            soname: first(DT_SONAME),
            is_static: v.interp.is_none() && (v.dynamic.is_none() || static_pie),
            empty_dynamic: v.empty_dynamic,
            execstack: v
                .phdrs
                .iter()
                .find(|p| p.p_type == goblin::elf::program_header::PT_GNU_STACK)
                .map(|p| p.p_flags & goblin::elf::program_header::PF_X != 0),
            no_default_lib: flags_1 & goblin::elf::dynamic::DF_1_NODEFLIB != 0,
            dlopen: v.dlopen_sonames(),
            needed,
        }
    }
}

/// What [`patch_file`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    /// Whether the file was written at all (false for no-op edits).
    pub changed: bool,
    /// Length before.
    pub old_len: u64,
    /// Length after.
    pub new_len: u64,
    /// Bytes written, tail included.
    pub bytes_written: u64,
    /// Why [`Edits::resolution_cache`] wrote no note.
    pub cache_skipped: Option<ldcache::Skipped>,
}

impl Outcome {
    fn of(plan: &Plan) -> Outcome {
        Outcome {
            changed: !plan.is_empty(),
            old_len: plan.old_len,
            new_len: plan.new_len,
            bytes_written: plan.bytes_written(),
            cache_skipped: plan.cache_skipped,
        }
    }
}

const MEMORY: &str = "<memory>";

/// Reads the dynamic-linking metadata of the ELF file at `path`.
pub fn read(path: &Path) -> Result<Info, Error> {
    let at = |k: ErrorKind| Error::new(path, k);
    let file = File::open(path).map_err(|e| at(e.into()))?;
    let src = FileBytes::new(file).map_err(|e| at(e.into()))?;
    let view = View::parse(&src).map_err(at)?;
    Ok(Info::from_view(&view))
}

/// Reads the dynamic-linking metadata of an ELF image in memory.
pub fn read_bytes(data: &[u8]) -> Result<Info, Error> {
    let view = View::parse(&data).map_err(|k| Error::new(MEMORY, k))?;
    Ok(Info::from_view(&view))
}

/// The `e_machine` of the ELF file at `path`, if it is one. This is how
/// [`RunpathEdit::Shrink`] decides whether a directory provides a library.
pub fn probe_machine(path: &Path) -> Option<u16> {
    let file = File::open(path).ok()?;
    if !file.metadata().ok()?.is_file() {
        return None;
    }
    let mut head = [0u8; 20];
    std::os::unix::fs::FileExt::read_exact_at(&file, &mut head, 0).ok()?;
    if !is_elf(&head) {
        return None;
    }
    let m = [head[18], head[19]];
    match head[5] {
        1 => Some(u16::from_le_bytes(m)),
        2 => Some(u16::from_be_bytes(m)),
        _ => None,
    }
}

/// Applies `edits` to the file at `path`, writing only the bytes that change
/// (plus a new tail when something must move). A no-op edit does not open
/// the file for writing. On any error the file is left untouched.
pub fn patch_file(path: &Path, edits: &Edits) -> Result<Outcome, Error> {
    let at = |k: ErrorKind| Error::new(path, k);
    let (plan, outcome) = plan_file(path, edits)?;
    if plan.is_empty() {
        return Ok(outcome);
    }
    let out = OpenOptions::new()
        .read(plan.shift > 0)
        .write(true)
        .open(path)
        .map_err(|e| at(e.into()))?;
    let len = out.metadata().map_err(|e| at(e.into()))?.len();
    if len != plan.old_len {
        return Err(at(std::io::Error::other(
            "the file changed size while it was being patched",
        )
        .into()));
    }
    apply::to_file(&out, &plan).map_err(|e| at(e.into()))?;
    Ok(outcome)
}

/// Like [`patch_file`], for a file that other names may share: when `path`
/// is a symlink or has other hard links, and the edit changes something,
/// the edit is applied to a private copy beside it (owner-writable), which
/// then replaces `path` by a rename. The other names keep the old bytes —
/// what a tree hard-linked to a store of unpacked files needs. A no-op
/// edit copies nothing.
pub fn patch_file_private(path: &Path, edits: &Edits) -> Result<Outcome, Error> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let at = |k: ErrorKind| Error::new(path, k);
    let meta = std::fs::symlink_metadata(path).map_err(|e| at(e.into()))?;
    if !meta.file_type().is_symlink() && meta.nlink() <= 1 {
        return patch_file(path, edits);
    }
    let (plan, outcome) = plan_file(path, edits)?;
    if plan.is_empty() {
        return Ok(outcome);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let copy = path.with_file_name(format!(".{name}.elfpatch-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let len = std::fs::copy(path, &copy)?;
        if len != plan.old_len {
            return Err(std::io::Error::other(
                "the file changed size while it was being patched",
            ));
        }
        let mode = std::fs::metadata(&copy)?.permissions().mode();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(mode | 0o200))?;
        let out = OpenOptions::new()
            .read(plan.shift > 0)
            .write(true)
            .open(&copy)?;
        apply::to_file(&out, &plan)?;
        std::fs::rename(&copy, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&copy);
        return Err(at(e.into()));
    }
    Ok(outcome)
}

/// The plan of `edits` for the file at `path`, read through its headers.
fn plan_file(path: &Path, edits: &Edits) -> Result<(Plan, Outcome), Error> {
    let at = |k: ErrorKind| Error::new(path, k);
    let file = File::open(path).map_err(|e| at(e.into()))?;
    let src = FileBytes::new(file).map_err(|e| at(e.into()))?;
    let view = View::parse(&src).map_err(at)?;
    let plan = plan::plan(&view, edits, &plan::Host).map_err(at)?;
    let outcome = Outcome::of(&plan);
    Ok((plan, outcome))
}

/// Applies `edits` to an ELF image in memory and returns the new image.
pub fn patch_bytes(data: &[u8], edits: &Edits) -> Result<Vec<u8>, Error> {
    patch_image(data, edits).map(|(image, _)| image)
}

/// Like [`patch_bytes`], with what [`patch_file`] would report.
pub fn patch_image(data: &[u8], edits: &Edits) -> Result<(Vec<u8>, Outcome), Error> {
    let at = |k: ErrorKind| Error::new(MEMORY, k);
    let view = View::parse(&data).map_err(at)?;
    let plan = plan::plan(&view, edits, &plan::Host).map_err(at)?;
    Ok((apply::to_vec(data, &plan), Outcome::of(&plan)))
}
