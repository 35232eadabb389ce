//! Where archives come from, and the proof that they are the right ones.
//!
//! - [`Location`]: a path, a `file://` URL or an `http(s)://` URL; archive
//!   locations are the manifest's directory (or a `--mirror`) joined with the
//!   manifest's `relative_path`.
//! - [`Verified`]: a reader that computes SHA-256 and counts bytes as they
//!   pass on their way to the decoder — download, verification and
//!   unpacking are one pass. A mismatch is an error at the end of the
//!   stream (or as soon as there are too many bytes), before anything is
//!   published.
//! - [`Cache`]: verified archives by SHA-256 under `$XDG_CACHE_HOME/redist`,
//!   written while they stream (a [`Tee`]) and committed only once verified.

mod repository;

pub use repository::{
    Committer, Fetched, ListRow, Opened, Origin, Product, Repository, VariantRow,
};

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use crate::manifest::Archive;
use crate::scratch::Scratch;

/// Errors of fetching and verifying.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// An HTTP request failed (status, connection, timeout).
    #[error("cannot download {url}{}", what.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    Http {
        /// The URL.
        url: String,
        /// What we know went wrong (`HTTP 404`, an idle timeout, a broken
        /// transfer).
        what: Option<String>,
        /// The HTTP client's or the connection's error.
        #[source]
        cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
    /// A local file could not be read.
    #[error("cannot read {path}")]
    File {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `--offline` and the archive is not in the cache.
    #[error("{what} is not in the cache ({path}) and --offline forbids downloading it; run once without --offline, or give --cache-dir a cache that has it")]
    NotCached {
        /// What was asked for.
        what: String,
        /// The file or directory concerned.
        path: PathBuf,
    },
    /// The cache directory could not be written.
    #[error("cannot write the cache {path}")]
    Cache {
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

/// A mismatch between the bytes received and the manifest.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The SHA-256 differs.
    #[error("sha256 mismatch: the manifest says {expected}, the archive is {actual}")]
    Sha256 {
        /// What the manifest says.
        expected: String,
        /// What the archive is.
        actual: String,
    },
    /// Fewer bytes than the manifest's size.
    #[error("size mismatch: the manifest says {expected} bytes, the archive has {actual}")]
    TooShort {
        /// What the manifest says.
        expected: u64,
        /// What the archive is.
        actual: u64,
    },
    /// More bytes than the manifest's size.
    #[error("size mismatch: the manifest says {expected} bytes, the archive has more")]
    TooLong {
        /// What the manifest says.
        expected: u64,
    },
}

/// A place: a local path or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A local path (also what `file://` URLs become).
    Path(PathBuf),
    /// An `http://` or `https://` URL.
    Url(String),
}

impl Location {
    /// `http(s)://…` is a URL, `file://…` and anything else a path.
    pub fn parse(s: &str) -> Location {
        if s.starts_with("http://") || s.starts_with("https://") {
            Location::Url(s.to_owned())
        } else if let Some(p) = s.strip_prefix("file://") {
            Location::Path(percent_decode(p))
        } else {
            Location::Path(PathBuf::from(s))
        }
    }

    /// The directory this location is in (the manifest's base).
    pub fn parent(&self) -> Location {
        match self {
            Location::Path(p) => Location::Path(p.parent().map(Path::to_owned).unwrap_or_default()),
            Location::Url(u) => Location::Url(match u.rfind('/') {
                Some(i) if i > u.find("://").map_or(0, |j| j + 2) => u[..=i].to_owned(),
                _ => format!("{u}/"),
            }),
        }
    }

    /// This location, as a directory, joined with a relative path.
    pub fn join(&self, rel: &str) -> Location {
        match self {
            Location::Path(p) => Location::Path(p.join(rel)),
            Location::Url(u) if u.ends_with('/') => Location::Url(format!("{u}{rel}")),
            Location::Url(u) => Location::Url(format!("{u}/{rel}")),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Path(p) => write!(f, "{}", p.display()),
            Location::Url(u) => f.write_str(u),
        }
    }
}

/// A `file://` URL's path: `%XX` escapes decoded to bytes (a path need
/// not be UTF-8); a `%` not followed by two hex digits stays as it is.
fn percent_decode(s: &str) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    let bytes: Vec<u8> = percent_encoding::percent_decode_str(s).collect();
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

/// Opens locations for reading; one HTTP agent shared by all downloads.
#[derive(Clone)]
pub struct Fetcher {
    agent: ureq::Agent,
    idle: Duration,
}

impl Fetcher {
    /// A fetcher whose reads give up after `idle` without a byte.
    pub fn new(idle: Duration) -> Fetcher {
        let agent = ureq::Agent::config_builder()
            .timeout_connect(Some(Duration::from_secs(30)))
            .timeout_per_read(Some(idle))
            .http_status_as_error(true)
            .user_agent(concat!("redist/", env!("CARGO_PKG_VERSION")))
            .build()
            .new_agent();
        Fetcher { agent, idle }
    }

    /// Open `loc`: a reader and its length when known.
    pub fn open(&self, loc: &Location) -> Result<(Box<dyn Read + Send>, Option<u64>), SourceError> {
        match loc {
            Location::Path(p) => {
                let file = File::open(p).map_err(|source| SourceError::File {
                    path: p.clone(),
                    source,
                })?;
                let len = file.metadata().ok().map(|m| m.len());
                Ok((Box::new(file), len))
            }
            Location::Url(url) => {
                let resp = self
                    .agent
                    .get(url)
                    .call()
                    .map_err(|e| http_error(url, e, self.idle))?;
                let len = resp.body().content_length();
                let reader = resp.into_body().into_reader();
                Ok((
                    Box::new(HttpBody {
                        url: url.clone(),
                        inner: reader,
                        idle: self.idle,
                    }),
                    len,
                ))
            }
        }
    }

    /// Read a whole (small) location, e.g. a manifest.
    pub fn read_to_string(&self, loc: &Location) -> Result<String, SourceError> {
        let (mut r, _) = self.open(loc)?;
        let mut s = String::new();
        r.read_to_string(&mut s).map_err(|e| match loc {
            Location::Path(p) => SourceError::File {
                path: p.clone(),
                source: e,
            },
            Location::Url(u) => SourceError::Http {
                url: u.clone(),
                what: None,
                cause: Some(Box::new(e)),
            },
        })?;
        Ok(s)
    }
}

/// A failed request: its status or timeout said in our words, anything
/// else kept as the client's error.
fn http_error(url: &str, e: ureq::Error, idle: Duration) -> SourceError {
    let (what, cause) = match e {
        ureq::Error::StatusCode(code) => (Some(format!("HTTP {code}")), None),
        ureq::Error::Timeout(_) => (Some(timed_out(idle)), None),
        other => (
            None,
            Some(Box::new(other) as Box<dyn std::error::Error + Send + Sync>),
        ),
    };
    SourceError::Http {
        url: url.to_owned(),
        what,
        cause,
    }
}

fn timed_out(idle: Duration) -> String {
    format!("timed out: no data for {} s (--timeout)", idle.as_secs())
}

/// Whether a body read gave up on its idle timeout: ureq wraps its own
/// `Error::Timeout` in an `io::Error` of kind `Other`.
fn is_timeout(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

/// Names the URL in body read errors (connection closed mid-stream, idle
/// timeout), so the user learns which download failed and why.
struct HttpBody<R> {
    url: String,
    inner: R,
    idle: Duration,
}

impl<R: Read> Read for HttpBody<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).map_err(|e| {
            let kind = e.kind();
            let (what, cause) = if is_timeout(&e) {
                (timed_out(self.idle), None)
            } else {
                let cause: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
                ("the download broke off".to_owned(), Some(cause))
            };
            io::Error::new(
                kind,
                SourceError::Http {
                    url: self.url.clone(),
                    what: Some(what),
                    cause,
                },
            )
        })
    }
}

/// A reader that checks size and SHA-256 against the manifest as bytes pass.
pub struct Verified<R> {
    inner: R,
    hasher: Sha256,
    seen: u64,
    expected_size: u64,
    expected_sha256: String,
}

impl<R: Read> Verified<R> {
    /// Verify `inner` against `archive`'s size and sha256.
    pub fn new(inner: R, archive: &Archive) -> Verified<R> {
        Verified {
            inner,
            hasher: Sha256::new(),
            seen: 0,
            expected_size: archive.size,
            expected_sha256: archive.sha256.clone(),
        }
    }
}

impl<R: Read> Read for Verified<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 {
            if self.seen != self.expected_size {
                return Err(verify(VerifyError::TooShort {
                    expected: self.expected_size,
                    actual: self.seen,
                }));
            }
            let actual = hex(&self.hasher.clone().finalize());
            if actual != self.expected_sha256 {
                return Err(verify(VerifyError::Sha256 {
                    expected: self.expected_sha256.clone(),
                    actual,
                }));
            }
            return Ok(0);
        }
        self.seen += n as u64;
        if self.seen > self.expected_size {
            return Err(verify(VerifyError::TooLong {
                expected: self.expected_size,
            }));
        }
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

fn verify(e: VerifyError) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// Lower-case hex of a digest.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Copies every byte read into a file (a cache entry being written).
pub struct Tee<R> {
    inner: R,
    file: File,
    path: PathBuf,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.file.write_all(&buf[..n]).map_err(|e| {
            io::Error::new(
                e.kind(),
                SourceError::Cache {
                    path: self.path.clone(),
                    source: e,
                },
            )
        })?;
        Ok(n)
    }
}

/// Verified archives by SHA-256: `<dir>/sha256/<hex>`.
#[derive(Debug, Clone)]
pub struct Cache {
    dir: PathBuf,
}

impl Cache {
    /// A cache in `dir`.
    pub fn new(dir: PathBuf) -> Cache {
        Cache { dir }
    }

    /// `$REDIST_CACHE_DIR`, else `$XDG_CACHE_HOME/redist`, else `~/.cache/redist`.
    pub fn default_dir() -> PathBuf {
        if let Some(d) = std::env::var_os("REDIST_CACHE_DIR") {
            return d.into();
        }
        if let Some(d) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
            return PathBuf::from(d).join("redist");
        }
        let home = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        home.join(".cache/redist")
    }

    /// The cache's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the archive with this sha256 lives.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join("sha256").join(sha256)
    }

    /// The cached copy of `archive`, if there is one of the right size. A
    /// wrong-size entry (a partial or corrupt file) is removed. The caller
    /// still verifies the content while reading it.
    pub fn lookup(&self, archive: &Archive) -> Option<PathBuf> {
        let p = self.path(&archive.sha256);
        match fs::metadata(&p) {
            Ok(m) if m.is_file() && m.len() == archive.size => Some(p),
            Ok(_) => {
                let _ = fs::remove_file(&p);
                None
            }
            Err(_) => None,
        }
    }

    /// Whether the entry for `archive` is there with the right size and hash
    /// (reads it whole: used only after something went wrong).
    pub fn is_intact(&self, archive: &Archive) -> bool {
        let Ok(file) = File::open(self.path(&archive.sha256)) else {
            return false;
        };
        io::copy(&mut Verified::new(file, archive), &mut io::sink()).is_ok()
    }

    /// Forget an entry that turned out to be corrupt.
    pub fn evict(&self, sha256: &str) {
        let _ = fs::remove_file(self.path(sha256));
    }

    /// Remove the partial downloads (`.<sha256>.partial-<pid>-<n>`) of
    /// processes that are gone — killed runs; a running download's file is
    /// never touched.
    pub fn sweep(&self) -> crate::lock::Reclaimed {
        crate::lock::sweep_dead(&self.dir.join("sha256"), |name| {
            let (_, rest) = name.split_once(".partial-")?;
            rest.split('-').next()?.parse().ok()
        })
    }

    /// (archives, bytes) of the complete entries.
    pub fn archives(&self) -> (usize, u64) {
        let mut n = (0, 0);
        for e in fs::read_dir(self.dir.join("sha256"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            if let Ok(m) = e.metadata() {
                n.0 += 1;
                n.1 += m.len();
            }
        }
        n
    }

    /// Remove every archive, and partial downloads of processes that are
    /// gone; a running download's file is never touched.
    pub fn clean(&self) -> crate::lock::Reclaimed {
        let mut reclaimed = self.sweep();
        for e in fs::read_dir(self.dir.join("sha256"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if !e.file_name().to_string_lossy().starts_with('.') {
                reclaimed.add(crate::lock::remove(&e.path()));
            }
        }
        reclaimed
    }

    /// Start writing an entry: wrap `reader` so every byte also goes to a
    /// partial file; [`Pending::commit`] makes it the entry once verified.
    pub(crate) fn tee<R: Read>(
        &self,
        sha256: &str,
        reader: R,
    ) -> Result<(Tee<R>, Pending), SourceError> {
        let dir = self.dir.join("sha256");
        fs::create_dir_all(&dir).map_err(|source| SourceError::Cache {
            path: dir.clone(),
            source,
        })?;
        let partial = dir.join(format!(
            ".{sha256}.partial-{}-{}",
            std::process::id(),
            unique()
        ));
        let scratch = Scratch::new(partial.clone());
        let file = File::create(&partial).map_err(|source| SourceError::Cache {
            path: partial.clone(),
            source,
        })?;
        let tee = Tee {
            inner: reader,
            file,
            path: partial,
        };
        Ok((
            tee,
            Pending {
                partial: scratch,
                entry: self.path(sha256),
            },
        ))
    }
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

/// A cache entry being written; removed unless committed (also by
/// [`crate::scratch::remove_all`] when the process is interrupted).
#[derive(Debug)]
pub struct Pending {
    partial: Scratch,
    entry: PathBuf,
}

impl Pending {
    /// The bytes were verified: make the partial file the cache entry.
    pub fn commit(self) -> Result<PathBuf, SourceError> {
        fs::rename(self.partial.path(), &self.entry).map_err(|source| SourceError::Cache {
            path: self.entry.clone(),
            source,
        })?;
        self.partial.keep();
        Ok(self.entry)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn archive(data: &[u8]) -> Archive {
        Archive {
            relative_path: "x".into(),
            sha256: hex(&Sha256::digest(data)),
            md5: None,
            size: data.len() as u64,
            extra: Default::default(),
        }
    }

    fn read_all(r: impl Read) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        let mut r = r;
        r.read_to_end(&mut v).map(|_| v)
    }

    fn cause(e: io::Error) -> VerifyError {
        e.into_inner()
            .and_then(|i| i.downcast::<VerifyError>().ok())
            .map(|b| *b)
            .expect("a VerifyError")
    }

    #[test]
    fn file_urls_decode_escapes_to_bytes_and_keep_broken_ones() {
        use std::os::unix::ffi::OsStrExt;
        let path = |s: &str| match Location::parse(s) {
            Location::Path(p) => p,
            Location::Url(u) => panic!("{u} is not a path"),
        };
        assert_eq!(path("file:///tmp/a%20b"), Path::new("/tmp/a b"));
        assert_eq!(path("file:///m/%E2%82%AC.json"), Path::new("/m/€.json"));
        // Not UTF-8 once decoded: the bytes are kept, not replaced.
        assert_eq!(path("file:///x/%ff").as_os_str().as_bytes(), b"/x/\xff");
        // Not an escape (used to panic, slicing inside the '€').
        assert_eq!(path("file:///x/%a€"), Path::new("/x/%a€"));
        assert_eq!(path("file:///x/100%"), Path::new("/x/100%"));
    }

    #[test]
    fn verified_passes_the_right_bytes() {
        let data = b"hello archive".to_vec();
        assert_eq!(
            read_all(Verified::new(&data[..], &archive(&data))).unwrap(),
            data
        );
    }

    #[test]
    fn verified_catches_every_mismatch() {
        let data = b"hello archive";
        let a = archive(data);
        assert_eq!(
            cause(read_all(Verified::new(&b"hello archivX"[..], &a)).unwrap_err()),
            VerifyError::Sha256 {
                expected: a.sha256.clone(),
                actual: hex(&Sha256::digest(b"hello archivX"))
            }
        );
        assert_eq!(
            cause(read_all(Verified::new(&data[..5], &a)).unwrap_err()),
            VerifyError::TooShort {
                expected: 13,
                actual: 5
            }
        );
        assert_eq!(
            cause(read_all(Verified::new(&b"hello archive and more"[..], &a)).unwrap_err()),
            VerifyError::TooLong { expected: 13 }
        );
    }

    #[test]
    fn locations_join_like_nvidia_mirrors() {
        let m = Location::parse(
            "https://developer.download.example/compute/cuda/redist/redistrib_12.9.1.json",
        );
        assert_eq!(
            m.parent().join("cuda_nvcc/linux-x86_64/a.tar.xz").to_string(),
            "https://developer.download.example/compute/cuda/redist/cuda_nvcc/linux-x86_64/a.tar.xz"
        );
        assert_eq!(
            Location::parse("file:///srv/mirror/r.json").parent(),
            Location::Path("/srv/mirror".into())
        );
        assert_eq!(
            Location::parse("file:///srv/my%20mirror"),
            Location::Path("/srv/my mirror".into())
        );
        assert_eq!(
            Location::parse("http://127.0.0.1:8000")
                .join("a/b")
                .to_string(),
            "http://127.0.0.1:8000/a/b"
        );
    }

    #[test]
    fn cache_commits_only_verified_entries() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().to_owned());
        let data = b"archive bytes".to_vec();
        let a = archive(&data);
        {
            let (tee, _pending) = cache.tee(&a.sha256, &data[..]).unwrap();
            let _ = read_all(Verified::new(tee, &a)).unwrap();
            // dropped without commit: nothing in the cache
        }
        assert_eq!(cache.lookup(&a), None);
        assert_eq!(
            fs::read_dir(dir.path().join("sha256")).unwrap().count(),
            0,
            "partial removed"
        );
        let (tee, pending) = cache.tee(&a.sha256, &data[..]).unwrap();
        read_all(Verified::new(tee, &a)).unwrap();
        pending.commit().unwrap();
        assert_eq!(cache.lookup(&a), Some(cache.path(&a.sha256)));
        // A truncated entry is noticed by its size and removed.
        fs::write(cache.path(&a.sha256), &data[..3]).unwrap();
        assert_eq!(cache.lookup(&a), None);
        assert!(!cache.path(&a.sha256).exists());
    }
}
