//! Errors: one [`Error`] per failed call, naming the file and the problem.

use std::io;
use std::path::{Path, PathBuf};

/// A failed read or patch: which file, and what was wrong with it.
#[derive(Debug, thiserror::Error)]
#[error("{}", path.display())]
pub struct Error {
    path: PathBuf,
    #[source]
    kind: ErrorKind,
}

impl Error {
    /// Attaches a file name to a problem.
    pub fn new(path: impl Into<PathBuf>, kind: ErrorKind) -> Self {
        Error {
            path: path.into(),
            kind,
        }
    }

    /// The file the problem is about (`<memory>` for in-memory images).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What went wrong.
    pub fn kind(&self) -> &ErrorKind {
        &self.kind
    }

    /// What went wrong, owned.
    pub fn into_kind(self) -> ErrorKind {
        self.kind
    }

    /// Whether the input was rejected as malformed ELF (as opposed to an I/O
    /// failure, an unsupported request or a layout we cannot edit).
    pub fn is_malformed(&self) -> bool {
        matches!(self.kind, ErrorKind::Malformed(_))
    }
}

/// The kinds of failure, each carrying the offending values.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ErrorKind {
    /// Reading or writing the file failed.
    #[error("I/O error")]
    Io(#[from] io::Error),
    /// The input is not well-formed ELF.
    #[error("malformed ELF")]
    Malformed(#[from] Malformed),
    /// The requested edit is not possible for this file.
    #[error("cannot edit")]
    Unsupported(#[from] Unsupported),
}

/// A structural problem in the input, found while parsing. The file is never
/// written when one of these is reported.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Malformed {
    /// The file does not start with `\x7fELF`.
    #[error("not an ELF file (bad magic)")]
    NotElf,
    /// `EI_CLASS` is neither 32- nor 64-bit.
    #[error("unknown ELF class {0}")]
    BadClass(u8),
    /// `EI_DATA` is neither little nor big endian.
    #[error("unknown ELF data encoding {0}")]
    BadEndian(u8),
    /// A header field has a value that makes no sense.
    #[error("bad {field}: {value}")]
    BadField {
        /// The field, e.g. `e_phentsize`.
        field: &'static str,
        /// Its value.
        value: u64,
    },
    /// A range read from the file lies (partly) outside it.
    #[error(
        "{what} at offset {offset:#x}, size {size:#x} lies outside the file ({file_len:#x} bytes)"
    )]
    OutOfBounds {
        /// What was being read.
        what: &'static str,
        /// Its offset in the file.
        offset: u64,
        /// Its size.
        size: u64,
        /// The file's size.
        file_len: u64,
    },
    /// A virtual address is not backed by file bytes of any `PT_LOAD`.
    #[error("{what} at address {addr:#x} (size {size:#x}) is not inside any loadable segment")]
    Unmapped {
        /// What the address is for, e.g. `DT_STRTAB`.
        what: &'static str,
        /// The address.
        addr: u64,
        /// The size needed there.
        size: u64,
    },
    /// Two loadable segments claim the same addresses.
    #[error("loadable segments {first} and {second} overlap in memory")]
    OverlappingSegments {
        /// Index of the first program header.
        first: usize,
        /// Index of the second program header.
        second: usize,
    },
    /// A table overlaps the ELF header or the program/section header tables.
    #[error("{what} at offset {offset:#x} overlaps the ELF, program or section headers")]
    OverlapsHeaders {
        /// Which table.
        what: &'static str,
        /// Its offset.
        offset: u64,
    },
    /// Two tables the dynamic section points at share bytes: editing one
    /// would change the other.
    #[error("{first} and {second} overlap (at offset {offset:#x})")]
    OverlappingTables {
        /// One table.
        first: &'static str,
        /// The other.
        second: &'static str,
        /// Where the later one starts.
        offset: u64,
    },
    /// Section headers and the dynamic section disagree.
    #[error("{what}: the section header says {section:#x}, the dynamic section says {dynamic:#x}")]
    Inconsistent {
        /// What disagrees.
        what: &'static str,
        /// The section header's value.
        section: u64,
        /// The program header's or dynamic entry's value.
        dynamic: u64,
    },
    /// The file has more than one `PT_DYNAMIC` or `PT_INTERP`.
    #[error("more than one {0} program header")]
    Duplicate(&'static str),
    /// The dynamic section has no terminating `DT_NULL`.
    #[error("dynamic section at offset {offset:#x} has no DT_NULL terminator")]
    UnterminatedDynamic {
        /// Offset of the dynamic section.
        offset: u64,
    },
    /// A dynamic section without `DT_STRTAB` or `DT_STRSZ` but with strings.
    #[error("dynamic section has {0} but no string table")]
    MissingStrtab(&'static str),
    /// A string table whose last byte is not NUL, or a string running off it.
    #[error("{table}: string at offset {offset:#x} is not NUL-terminated")]
    UnterminatedString {
        /// Which table, e.g. `.dynstr`.
        table: &'static str,
        /// Offset of the string inside the table.
        offset: u64,
    },
    /// A string offset past the end of its table.
    #[error(
        "{what}: string offset {offset:#x} is past the end of the string table ({size:#x} bytes)"
    )]
    StringOutOfBounds {
        /// Who refers to the string, e.g. `DT_NEEDED`.
        what: &'static str,
        /// The offset.
        offset: u64,
        /// The table's size.
        size: u64,
    },
    /// The version sections (`.gnu.version_r`, `.gnu.version_d`) are broken.
    #[error("{what}: {problem}")]
    BadVersionTable {
        /// Which table.
        what: &'static str,
        /// What is wrong.
        problem: &'static str,
    },
}

/// An edit that cannot be made to this (well-formed) file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Unsupported {
    /// The edit needs a dynamic section and the file has none.
    #[error("the file has no dynamic section (statically linked or not a program)")]
    NoDynamic,
    /// Setting the interpreter of a file without `PT_INTERP`.
    #[error("the file has no PT_INTERP to replace")]
    NoInterpreter,
    /// Changing the stack's executability of a file without
    /// `PT_GNU_STACK` (patchelf adds one; its stack is then executable by
    /// default, which a new header would have to say explicitly).
    #[error("the file has no PT_GNU_STACK program header (its stack's executability is the loader's default) and none is added")]
    NoGnuStack,
    /// Adding a `PT_GNU_STACK` to a file with no program headers at all
    /// (an object file): there is no table to add it to.
    #[error("the file has no program headers (an object file?), so no PT_GNU_STACK can be added")]
    NoProgramHeaders,
    /// Clearing symbol versions of a file without `.gnu.version` or a
    /// readable symbol table.
    #[error(
        "the file has no symbol version table (.gnu.version) or no readable dynamic symbol table"
    )]
    NoSymbolVersions,
    /// Renaming symbols of a file whose dynamic symbol table cannot be read
    /// whole (its extent unknown).
    #[error("the file's dynamic symbol table cannot be read whole (no section header or hash table gives its size)")]
    NoSymbolTable,
    /// Renaming reorders the hashed symbols, and their relocations cannot be
    /// renumbered here.
    #[error(
        "renaming reorders the dynamic symbols, and their relocations cannot be renumbered: {0}"
    )]
    RenameNeedsReorder(&'static str),
    /// A requested string contains a NUL byte or is empty where it may not be.
    #[error("invalid {what} {value:?}: {why}")]
    BadValue {
        /// Which value.
        what: &'static str,
        /// The value as given.
        value: String,
        /// Why it is rejected.
        why: &'static str,
    },
    /// The program header table cannot grow in place.
    #[error("no room to add a program header: {0}")]
    NoRoomForProgramHeader(String),
    /// A new offset or address does not fit the file's class.
    #[error("{what} {value:#x} does not fit in a 32-bit ELF file")]
    TooLarge {
        /// Which value.
        what: &'static str,
        /// The value.
        value: u64,
    },
    /// Two requested edits that do not go together.
    #[error("{0}")]
    Combination(&'static str),
    /// The file already has a resolution-cache note that the edits would
    /// leave stale.
    #[error("a resolution cache note (.note.nixos.ldcache) is already present and differs from what the file needs now; rebuild it from an unpatched file")]
    StaleCache,
    /// The page size given is not a power of two.
    #[error("page size {0} is not a power of two")]
    BadPageSize(u64),
}

/// Shorthand used inside the crate before a path is attached.
pub(crate) type Result<T, E = ErrorKind> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    //! Every error elfpatch can return, as `redist patchelf` prints it
    //! (`patchelf: FILE: KIND: DETAIL`). The matches have no wildcard, so a
    //! new variant does not compile until it has a sample here.

    use super::*;
    use crate::ldcache::Skipped;

    macro_rules! walk {
        ($ty:ty; $($pat:pat => $sample:expr),+ $(,)?) => {{
            fn variant(e: &$ty) -> &'static str {
                match e { $($pat => stringify!($pat)),+ }
            }
            let samples: Vec<(&'static str, $ty)> = vec![$((stringify!($pat), $sample)),+];
            for (name, e) in &samples {
                assert_eq!(variant(e), *name, "the sample listed for {name} is another variant");
            }
            samples
        }};
    }

    #[test]
    fn every_error_variant_reads_well() {
        let kinds = walk!(ErrorKind;
            ErrorKind::Io(_) => ErrorKind::Io(io::Error::from_raw_os_error(13)),
            ErrorKind::Malformed(_) => ErrorKind::Malformed(Malformed::NotElf),
            ErrorKind::Unsupported(_) => ErrorKind::Unsupported(Unsupported::NoDynamic),
        );
        let malformed = walk!(Malformed;
            Malformed::NotElf => Malformed::NotElf,
            Malformed::BadClass(_) => Malformed::BadClass(7),
            Malformed::BadEndian(_) => Malformed::BadEndian(9),
            Malformed::BadField { .. } => Malformed::BadField { field: "e_phentsize", value: 12 },
            Malformed::OutOfBounds { .. } => Malformed::OutOfBounds {
                what: "program header table",
                offset: 0x40,
                size: 0x1c0,
                file_len: 0x100,
            },
            Malformed::Unmapped { .. } => Malformed::Unmapped { what: "DT_STRTAB", addr: 0x9000, size: 0x200 },
            Malformed::OverlappingSegments { .. } => Malformed::OverlappingSegments { first: 2, second: 3 },
            Malformed::OverlapsHeaders { .. } => Malformed::OverlapsHeaders { what: ".dynstr", offset: 0x40 },
            Malformed::OverlappingTables { .. } => Malformed::OverlappingTables {
                first: ".dynstr",
                second: ".dynsym",
                offset: 0x3f8,
            },
            Malformed::Inconsistent { .. } => Malformed::Inconsistent {
                what: ".dynstr",
                section: 0x3f8,
                dynamic: 0x400,
            },
            Malformed::Duplicate(_) => Malformed::Duplicate("PT_INTERP"),
            Malformed::UnterminatedDynamic { .. } => Malformed::UnterminatedDynamic { offset: 0x2e10 },
            Malformed::MissingStrtab(_) => Malformed::MissingStrtab("DT_NEEDED"),
            Malformed::UnterminatedString { .. } => Malformed::UnterminatedString { table: ".dynstr", offset: 0x1f },
            Malformed::StringOutOfBounds { .. } => Malformed::StringOutOfBounds {
                what: "DT_RUNPATH",
                offset: 0x5000,
                size: 0x300,
            },
            Malformed::BadVersionTable { .. } => Malformed::BadVersionTable {
                what: ".gnu.version_r",
                problem: "vn_file names a string outside .dynstr",
            },
        );
        let unsupported = walk!(Unsupported;
            Unsupported::NoDynamic => Unsupported::NoDynamic,
            Unsupported::NoInterpreter => Unsupported::NoInterpreter,
            Unsupported::NoGnuStack => Unsupported::NoGnuStack,
            Unsupported::NoProgramHeaders => Unsupported::NoProgramHeaders,
            Unsupported::NoSymbolVersions => Unsupported::NoSymbolVersions,
            Unsupported::NoSymbolTable => Unsupported::NoSymbolTable,
            Unsupported::RenameNeedsReorder(_) => Unsupported::RenameNeedsReorder("the .rela.plt section has no section header"),
            Unsupported::BadValue { .. } => Unsupported::BadValue {
                what: "--set-os-abi",
                value: "plan9".into(),
                why: "not an OS/ABI patchelf knows",
            },
            Unsupported::NoRoomForProgramHeader(_) => Unsupported::NoRoomForProgramHeader(
                "the executable's first PT_LOAD starts at file offset 0 and is not relocatable".into(),
            ),
            Unsupported::TooLarge { .. } => Unsupported::TooLarge { what: "new segment offset", value: 0x1_0000_0000 },
            Unsupported::Combination(_) => Unsupported::Combination("--build-resolution-cache cannot be combined with --force-rpath"),
            Unsupported::StaleCache => Unsupported::StaleCache,
            Unsupported::BadPageSize(_) => Unsupported::BadPageSize(3000),
        );
        let skipped = walk!(Skipped;
            Skipped::NoDynamic => Skipped::NoDynamic,
            Skipped::NothingToResolve => Skipped::NothingToResolve,
            Skipped::NothingResolved => Skipped::NothingResolved,
        );
        let mut text = String::new();
        let mut add = |name: &str, kind: ErrorKind| {
            let e = Error::new("lib/libcudart.so.13", kind);
            // The file, the kind, the detail: two levels of causes.
            let detail = std::error::Error::source(e.kind())
                .map(|d| format!(": {d}"))
                .unwrap_or_default();
            text.push_str(&format!(
                "# {name}\npatchelf: {e}: {}{detail}\n\n",
                e.kind()
            ));
        };
        for (name, k) in kinds {
            add(name, k);
        }
        for (name, m) in malformed {
            add(name, ErrorKind::Malformed(m));
        }
        for (name, u) in unsupported {
            add(name, ErrorKind::Unsupported(u));
        }
        for (name, s) in skipped {
            text.push_str(&format!("# {name}\nwarning: lib/libcudart.so.13: {s}\n\n"));
        }
        insta::assert_snapshot!("every-error", text);
    }
}
