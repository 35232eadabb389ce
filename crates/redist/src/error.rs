//! Typed errors. Every variant names the archive or file it is about and the
//! offending value, so the CLI can print it as is.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while unpacking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive (or standard input) could not be opened or read.
    #[error("cannot read {archive}")]
    Read {
        /// The archive's label (its path, URL or `<stdin>`).
        archive: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The first bytes match none of the formats we decode.
    #[error(
        "{archive}: unknown archive format (first bytes: {magic}); expected xz, gzip, zstd or tar"
    )]
    UnknownFormat {
        /// The archive's label (its path, URL or `<stdin>`).
        archive: String,
        /// The first bytes, in hex.
        magic: String,
    },

    /// The compressed stream is damaged or cut short.
    #[error("{archive}: corrupt {format} stream")]
    Corrupt {
        /// The archive's label (its path, URL or `<stdin>`).
        archive: String,
        /// The container format.
        format: &'static str,
        /// The decoder's error.
        #[source]
        cause: io::Error,
    },

    /// The archive expands beyond a limit ([`crate::Limits`]).
    #[error("{archive}: refusing to unpack: {limit}")]
    TooLarge {
        /// The archive's label (its path, URL or `<stdin>`).
        archive: String,
        /// The limit it broke.
        limit: crate::decode::LimitExceeded,
    },

    /// The tar stream ended before the archive did.
    #[error("{archive}: truncated archive: {detail}; the file is incomplete: download it again")]
    Truncated {
        /// The archive's label (its path, URL or `<stdin>`).
        archive: String,
        /// Where the stream ends.
        detail: String,
    },

    /// The tar structure itself is malformed (bad header, bad PAX record…).
    #[error("{archive}: malformed tar data{}", at.as_ref().map(|e| format!(" after entry `{e}`")).unwrap_or_default())]
    Tar {
        /// The archive's label (its path, URL or `<stdin>`).
        archive: String,
        /// The last entry read before the fault.
        at: Option<String>,
        /// What the `tar` reader said.
        #[source]
        cause: io::Error,
    },

    /// An entry breaks one of the safety rules; nothing is published.
    #[error("{archive}: refusing entry `{entry}`: {rule}")]
    Unsafe {
        /// The archive's label (its path, URL or `<stdin>`).
        archive: String,
        /// The entry's name in the archive.
        entry: String,
        /// The rule it broke.
        rule: UnsafeRule,
    },

    /// Reading a file of the tree being built (or of a dependency) failed.
    #[error("cannot read {path}")]
    ReadFile {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// Writing the output failed (disk full, permissions…).
    #[error("cannot write {path}")]
    Write {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// The output directory is already there and holds something.
    #[error(
        "output directory {0} already exists and is not empty; remove it or choose another --out"
    )]
    OutputExists(PathBuf),

    /// The archive's bytes do not match the manifest.
    #[error("{archive}: {cause}; the download or the mirror's copy is damaged, or the manifest does not describe this file")]
    Verify {
        /// The archive's label (its path, URL or `<stdin>`).
        archive: String,
        /// The mismatch.
        cause: crate::source::VerifyError,
    },

    /// Downloading or reading a source failed.
    #[error(transparent)]
    Source(#[from] crate::source::SourceError),

    /// A manifest could not be read or a component chosen.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::ManifestError),

    /// One component of an install, fetch or listing failed.
    #[error("failed to {action} {component} {version}")]
    Component {
        /// What was asked: `install`, `fetch`, `read`.
        action: &'static str,
        /// The component's key in the manifest.
        component: String,
        /// The component's version.
        version: String,
        /// The underlying error.
        #[source]
        source: Box<Error>,
    },

    /// Another install into the same prefix is running and waiting was not
    /// allowed (`--no-wait`).
    #[error("another redist install into {} is running{}; not waiting (--no-wait): run again when it has finished, or without --no-wait to wait for it", prefix.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Busy {
        /// The prefix.
        prefix: PathBuf,
        /// The process holding it, when it said.
        pid: Option<u32>,
    },

    /// A prefix's `.redist/installed.json` cannot be understood.
    #[error("{path}: unreadable install record")]
    InstallRecord {
        /// The record.
        path: PathBuf,
        /// The JSON parser's error.
        #[source]
        cause: serde_json::Error,
    },

    /// A cached archive failed while `--offline` forbids fetching it again
    /// (the bad copy is removed).
    #[error("{what}: the cached copy was corrupt and is now removed; run without --offline")]
    CorruptCache {
        /// The component and version.
        what: String,
        /// How the cached copy failed.
        #[source]
        cause: Box<Error>,
    },

    /// An install cannot go ahead (a conflict, a foreign prefix).
    #[error("{what}: {message}")]
    Install {
        /// What was asked for.
        what: String,
        /// What went wrong.
        message: String,
    },

    /// Libraries no output, `--dep` directory or the system provides.
    #[error("unresolved libraries (add --dep DIR, or --ignore-missing GLOB to allow them):{}", pairs.iter().map(|(f, l)| format!("\n  {f}: {l}")).collect::<String>())]
    Unresolved {
        /// Each (file, library) that nothing provides.
        pairs: Vec<(String, String)>,
    },

    /// A dependency directory (`--dep`, Nix `libDeps`) is not there: its
    /// libraries would silently go unresolved.
    #[error("dependency directory {0} does not exist; check the directory given to --dep (in Nix, libDeps)")]
    MissingDependency(PathBuf),

    /// A toolkit tree given to link against is not usable.
    #[error("toolkit dependency {path}: {message}")]
    ToolkitDep {
        /// The file or directory concerned.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },

    /// Patching an ELF file failed.
    #[error("cannot patch {path}")]
    Patch {
        /// The file, where it will be installed.
        path: PathBuf,
        /// What `elfpatch` found.
        #[source]
        cause: elfpatch::ErrorKind,
    },

    /// The Nix builder cannot go ahead (a missing attribute, an empty output).
    #[error("nix-builder: {message}")]
    Nix {
        /// What went wrong.
        message: String,
        /// The error behind it (reading or parsing the attributes).
        #[source]
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },

    /// The decoder thread failed; the pipeline replaces this with the
    /// thread's own error, which names the cause.
    #[error("the decoder thread failed")]
    DecoderFailed,

    /// A layout rules file could not be read or understood.
    #[error("invalid layout rules {origin}{}", what.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    Rules {
        /// Where it came from (a path, URL or `built-in`).
        origin: String,
        /// Which part of it, or what is wrong with it.
        what: Option<String>,
        /// The parser's error.
        #[source]
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// `Error::Write` for `path`, as a `map_err` argument.
pub(crate) fn write_error(path: &std::path::Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// `Error::ReadFile` for `path`, as a `map_err` argument.
pub(crate) fn read_error(path: &std::path::Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::ReadFile {
        path: path.to_owned(),
        source,
    }
}

/// An error and all its causes on one line, joined with ": " (for
/// reports and messages that quote an error).
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push_str(": ");
        out.push_str(&s.to_string());
        cur = s.source();
    }
    out
}

impl Error {
    /// `cause`, said to have happened while doing `action` to `sel`.
    pub fn component(action: &'static str, sel: &crate::manifest::Selected, cause: Error) -> Error {
        Error::Component {
            action,
            component: sel.component.clone(),
            version: sel.version.clone(),
            source: Box::new(cause),
        }
    }
}

/// The safety rule an entry broke. Displayed as the reason in
/// [`Error::Unsafe`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnsafeRule {
    /// An absolute entry path.
    #[error("absolute paths are not allowed")]
    AbsolutePath,
    /// A `..` component in an entry path.
    #[error("`..` components are not allowed")]
    ParentComponent,
    /// A name that is not UTF-8.
    #[error("entry names must be valid UTF-8")]
    NonUtf8,
    /// A path through a symlink the archive made (which could point anywhere).
    #[error("its path goes through the earlier symlink `{0}`")]
    ThroughSymlink(String),
    /// A symlink to an absolute path.
    #[error("absolute symlink target `{0}` leaves the output")]
    AbsoluteSymlink(String),
    /// A symlink whose target climbs out of the output.
    #[error("symlink target `{0}` climbs out of the output")]
    SymlinkEscapes(String),
    /// A hardlink to anything but a regular file earlier in the archive.
    #[error("hardlink target `{0}` is not a regular file earlier in the archive")]
    HardlinkOutside(String),
    /// A device, fifo, sparse or unknown entry.
    #[error("{0} entries are not allowed")]
    SpecialFile(&'static str),
    /// An entry that would change what an earlier one made (a file into a directory…).
    #[error("it would replace a {existing} with a {new}")]
    TypeChange {
        /// What the path holds already.
        existing: &'static str,
        /// What the entry would make it.
        new: &'static str,
    },
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
