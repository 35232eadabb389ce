//! Typed errors. Every variant names the archive or file it is about and the
//! offending value, so the CLI can print it as is.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong while unpacking.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The archive (or standard input) could not be opened or read.
    #[error("cannot read {archive}: {source}")]
    Read {
        archive: String,
        #[source]
        source: io::Error,
    },

    /// The first bytes match none of the formats we decode.
    #[error(
        "{archive}: unknown archive format (first bytes: {magic}); expected xz, gzip, zstd or tar"
    )]
    UnknownFormat { archive: String, magic: String },

    /// The compressed stream is damaged or cut short.
    #[error("{archive}: corrupt {format} stream: {message}")]
    Corrupt {
        archive: String,
        format: &'static str,
        message: String,
    },

    /// The tar stream ended before the archive did.
    #[error("{archive}: truncated archive: {detail}")]
    Truncated { archive: String, detail: String },

    /// The tar structure itself is malformed (bad header, bad PAX record…).
    #[error("{archive}: malformed tar data{}: {message}", at.as_ref().map(|e| format!(" after entry `{e}`")).unwrap_or_default())]
    Tar {
        archive: String,
        at: Option<String>,
        message: String,
    },

    /// An entry breaks one of the safety rules; nothing is published.
    #[error("{archive}: refusing entry `{entry}`: {rule}")]
    Unsafe {
        archive: String,
        entry: String,
        rule: UnsafeRule,
    },

    /// Writing the output failed (disk full, permissions…).
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },

    /// The output directory is already there and holds something.
    #[error(
        "output directory {0} already exists and is not empty; remove it or choose another --out"
    )]
    OutputExists(PathBuf),

    /// The archive's bytes do not match the manifest.
    #[error("{archive}: {cause}")]
    Verify {
        archive: String,
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
        component: String,
        version: String,
        #[source]
        source: Box<Error>,
    },

    /// An install cannot go ahead (a conflict, a foreign prefix).
    #[error("{what}: {message}")]
    Install { what: String, message: String },

    /// Libraries no output, `--dep` directory or the system provides.
    #[error("unresolved libraries (add --dep DIR, or --ignore-missing GLOB to allow them):{}", pairs.iter().map(|(f, l)| format!("\n  {f}: {l}")).collect::<String>())]
    Unresolved { pairs: Vec<(String, String)> },

    /// A toolkit tree given to link against is not usable.
    #[error("toolkit dependency {path}: {message}")]
    ToolkitDep { path: PathBuf, message: String },

    /// Patching an ELF file failed.
    #[error("cannot patch {path}: {message}")]
    Patch { path: PathBuf, message: String },

    /// The Nix builder cannot go ahead (a missing attribute, an empty output).
    #[error("nix-builder: {message}")]
    Nix { message: String },

    /// The decoder thread failed; the pipeline replaces this with the
    /// thread's own error, which names the cause.
    #[error("the decoder thread failed")]
    DecoderFailed,

    /// A layout rules file could not be read or understood.
    #[error("invalid layout rules {origin}: {message}")]
    Rules { origin: String, message: String },
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
    #[error("absolute paths are not allowed")]
    AbsolutePath,
    #[error("`..` components are not allowed")]
    ParentComponent,
    #[error("entry names must be valid UTF-8")]
    NonUtf8,
    #[error("its path goes through the earlier symlink `{0}`")]
    ThroughSymlink(String),
    #[error("absolute symlink target `{0}` leaves the output")]
    AbsoluteSymlink(String),
    #[error("symlink target `{0}` climbs out of the output")]
    SymlinkEscapes(String),
    #[error("hardlink target `{0}` is not a regular file earlier in the archive")]
    HardlinkOutside(String),
    #[error("{0} entries are not allowed")]
    SpecialFile(&'static str),
    #[error("it would replace a {existing} with a {new}")]
    TypeChange {
        existing: &'static str,
        new: &'static str,
    },
}

/// Shorthand used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
