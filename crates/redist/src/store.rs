//! The store of unpacked trees: what uv and conda do with packages.
//!
//! A cold install decodes each archive (a real `libcublas` is 0.9 GB of
//! single-block xz: 15 s of one core). Once a component is installed, its
//! finished tree — split or merged, fixups applied, patched with
//! `$ORIGIN`-relative RUNPATHs, so nothing in it depends on where it is —
//! is kept in the store, and the next install of the same archive with the
//! same options links it into the new prefix instead of decoding again.
//!
//! ```text
//! <cache>/store/v1/<key>/entry.json   what the entry holds, and each file's size and mtime
//! <cache>/store/v1/<key>/tree/…       the files (read-only)
//! <cache>/store/v1/.lock              installs hold it shared, prune exclusive
//! <cache>/store/v1/refs/<hash>        a prefix that links from the store
//! ```
//!
//! The key is the SHA-256 of everything that determines the tree's bytes
//! ([`KeyInputs`]): the archive's SHA-256, the layout and its rules, the
//! patch options and [`FORMAT`]. A tree whose bytes depend on its
//! destination (`--runpath absolute`) has no key and is not stored.
//!
//! An entry is written under a temporary name and renamed into place, so a
//! reader sees a whole entry or none, and two installs storing the same
//! key at once keep the first. Before an entry is linked, every file's size
//! and mtime are checked against `entry.json`: a damaged entry (a file
//! edited through a hard link, removed, or truncated) is removed and the
//! archive unpacked again — it is never linked.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::layout::Mode;
use crate::lock::Reclaimed;
use crate::report::Report;
use crate::scratch::Scratch;
use crate::unpack::{Node, NodeKind, Tree};

/// The store's format: raise it when what redist writes for the same
/// inputs changes, so that old entries are never linked again.
pub const FORMAT: u32 = 1;

/// How files get from the store into a prefix (uv's names).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkMode {
    /// Hard links: no data copied. The prefix and the store share the
    /// files (read-only); a file redist must patch for this prefix is
    /// replaced by a copy first. Needs one filesystem: otherwise copies.
    #[default]
    Hardlink,
    /// Copy-on-write clones (reflinks) where the filesystem has them
    /// (btrfs, XFS, bcachefs), copies otherwise.
    Clone,
    /// Plain copies: the prefix shares nothing with the store.
    Copy,
    /// Symbolic links into the store; programs are copied (the loader
    /// finds a program's `$ORIGIN` through its symlink). The prefix breaks
    /// when the store entry is pruned.
    Symlink,
}

impl LinkMode {
    /// The name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            LinkMode::Hardlink => "hardlink",
            LinkMode::Clone => "clone",
            LinkMode::Copy => "copy",
            LinkMode::Symlink => "symlink",
        }
    }
}

/// What determines a stored tree's bytes; its SHA-256 is the entry's key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyInputs {
    /// [`FORMAT`].
    pub format: u32,
    /// The archive's SHA-256.
    pub archive_sha256: String,
    /// Merged or split.
    pub layout: Mode,
    /// SHA-256 of the layout rules, as JSON.
    pub rules: String,
    /// The patch options, in words (`none` with `--no-patch`).
    pub patch: String,
}

impl KeyInputs {
    /// The entry's key: hex SHA-256 of the inputs as JSON.
    pub fn key(&self) -> String {
        let json = serde_json::to_vec(self).unwrap_or_default();
        crate::source::hex(&Sha256::digest(json))
    }
}

/// SHA-256 of the layout rules, for [`KeyInputs::rules`].
pub fn rules_digest(rules: &crate::layout::Rules) -> String {
    let json = serde_json::to_vec(rules).unwrap_or_default();
    crate::source::hex(&Sha256::digest(json))
}

/// The patch options in words for [`KeyInputs::patch`]; `None` when the
/// patched tree depends on where it is installed (absolute RUNPATHs).
pub fn patch_inputs(ap: Option<&crate::AutopatchOptions>) -> Option<String> {
    let Some(ap) = ap else {
        return Some("none".into());
    };
    if ap.runpath == crate::RunpathMode::Absolute {
        return None;
    }
    Some(format!(
        "interpreter={:?} deps={:?} append={:?} keep_libc={} driver={:?} dlopen_names={}",
        ap.interpreter,
        ap.deps,
        ap.append_runpath,
        ap.keep_libc,
        ap.driver_runpath,
        ap.dlopen_names
    ))
}

/// One regular file of an entry, as it was stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct StoredFile {
    path: String,
    size: u64,
    mtime_ns: i128,
}

/// `entry.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct EntryRecord {
    format: u32,
    key: String,
    inputs: KeyInputs,
    component: String,
    version: String,
    /// Seconds since the epoch.
    created: u64,
    /// The report of the unpack that made it.
    report: Report,
    nodes: BTreeMap<String, Node>,
    files: Vec<StoredFile>,
    /// Every directory of the tree (empty ones too).
    dirs: Vec<String>,
}

/// An entry found intact, ready to link.
#[derive(Debug)]
pub struct Entry {
    /// Its key.
    pub key: String,
    /// Its directory.
    pub dir: PathBuf,
    record: EntryRecord,
}

impl Entry {
    /// The tree the unpacker wrote, as every later phase of an install
    /// reads it.
    pub fn tree(&self) -> Tree {
        Tree {
            nodes: self.record.nodes.clone().into_iter().collect(),
            root: crate::unpack::Root::Kept,
            top_level: Vec::new(),
            bytes_written: 0,
            busy: std::time::Duration::ZERO,
        }
    }

    /// The report of the unpack that made the entry.
    pub fn report(&self) -> Report {
        self.record.report.clone()
    }

    /// Bytes of file data it holds.
    pub fn bytes(&self) -> u64 {
        self.record.files.iter().map(|f| f.size).sum()
    }
}

/// What [`Store::lookup`] found.
#[derive(Debug)]
pub enum Lookup {
    /// An intact entry.
    Hit(Box<Entry>),
    /// No entry for the key.
    Miss,
    /// There was one, damaged; it was removed. Why, in words.
    Damaged(String),
}

/// What linking an entry into a tree did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Linked {
    /// The mode asked for.
    pub mode: LinkMode,
    /// Files hard-linked to the store.
    pub hardlinked: u64,
    /// Files cloned (reflinks).
    pub cloned: u64,
    /// Files copied.
    pub copied: u64,
    /// Symbolic links into the store.
    pub symlinked: u64,
    /// Why some files were copied although another mode was asked for
    /// (`the store is on another filesystem`).
    pub fell_back: Option<String>,
}

/// The store under a cache directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

static UNIQUE: AtomicU64 = AtomicU64::new(0);

impl Store {
    /// The store of the cache in `cache_dir`.
    pub fn new(cache_dir: &Path) -> Store {
        Store {
            dir: cache_dir.join("store").join(format!("v{FORMAT}")),
        }
    }

    /// Its directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_dir(&self, key: &str) -> PathBuf {
        self.dir.join(key)
    }

    /// Take the store's lock: shared for installs (many at once), exclusive
    /// for `prune` and `clean`, which must not remove an entry an install
    /// is linking or has just stored.
    pub fn lock(&self, exclusive: bool) -> io::Result<StoreLock> {
        fs::create_dir_all(&self.dir)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(self.dir.join(".lock"))?;
        let op = if exclusive {
            libc::LOCK_EX
        } else {
            libc::LOCK_SH
        };
        crate::lock::flock(&file, op)?;
        Ok(StoreLock { _file: file })
    }

    /// The entry for `key`, checked file by file (size, mtime, kind); a
    /// damaged one is removed.
    pub fn lookup(&self, key: &str) -> Lookup {
        let dir = self.entry_dir(key);
        let record: EntryRecord = match fs::read(dir.join("entry.json")) {
            Ok(data) => match serde_json::from_slice(&data) {
                Ok(r) => r,
                Err(e) => return self.damaged(&dir, format!("entry.json: {e}")),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if dir.exists() {
                    return self.damaged(&dir, "entry.json is missing".into());
                }
                return Lookup::Miss;
            }
            Err(e) => return self.damaged(&dir, format!("entry.json: {e}")),
        };
        if record.format != FORMAT || record.key != key {
            return self.damaged(&dir, "entry.json is for another key".into());
        }
        if let Err(why) = check_record(&record) {
            return self.damaged(&dir, format!("entry.json: {why}"));
        }
        let tree = dir.join("tree");
        let bad = record.files.par_iter().find_map_any(|f| {
            let p = tree.join(&f.path);
            match fs::symlink_metadata(&p) {
                Ok(m) if !m.is_file() => Some(format!("{} is no longer a file", f.path)),
                Ok(m) if m.len() != f.size => Some(format!(
                    "{} has {} bytes, {} when stored",
                    f.path,
                    m.len(),
                    f.size
                )),
                Ok(m) if mtime_ns(&m) != f.mtime_ns => {
                    Some(format!("{} was modified after it was stored", f.path))
                }
                Ok(_) => None,
                Err(e) => Some(format!("{}: {e}", f.path)),
            }
        });
        let bad = bad.or_else(|| {
            record.nodes.iter().find_map(|(path, n)| match &n.kind {
                NodeKind::Symlink { written, .. } => match fs::read_link(tree.join(path)) {
                    Ok(t) if t == Path::new(written) => None,
                    _ => Some(format!("{path} is no longer the symlink stored")),
                },
                _ => None,
            })
        });
        match bad {
            Some(why) => self.damaged(&dir, why),
            None => Lookup::Hit(Box::new(Entry {
                key: key.to_owned(),
                dir,
                record,
            })),
        }
    }

    fn damaged(&self, dir: &Path, why: String) -> Lookup {
        // Renamed away first: no reader links from it while it is removed.
        let doomed = self.dir.join(format!(
            ".{}.damaged-{}-{}",
            dir.file_name().and_then(|n| n.to_str()).unwrap_or("entry"),
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        ));
        if fs::rename(dir, &doomed).is_ok() {
            crate::lock::remove(&doomed);
        }
        Lookup::Damaged(why)
    }

    /// Link `entry`'s tree into `dest` (which must not exist) with `mode`.
    pub fn link_into(&self, entry: &Entry, dest: &Path, mode: LinkMode) -> io::Result<Linked> {
        let src = entry.dir.join("tree");
        fs::create_dir(dest)?;
        for d in &entry.record.dirs {
            crate::scratch::create_dirs_below(dest, Path::new(d))?;
        }
        let nodes = &entry.record.nodes;
        let hardlink_failed = std::sync::OnceLock::<String>::new();
        let clone_failed = std::sync::OnceLock::<String>::new();
        let counts: Vec<Counted> = nodes
            .par_iter()
            .filter(|(_, n)| n.kind == NodeKind::File)
            .map(|(path, n)| {
                let from = src.join(path);
                let to = dest.join(path);
                match mode {
                    LinkMode::Hardlink => match fs::hard_link(&from, &to) {
                        Ok(()) => Ok(Counted::Hardlinked),
                        Err(e) => {
                            let why = match e.raw_os_error() {
                                Some(libc::EXDEV) => "the store is on another filesystem",
                                Some(libc::EMLINK) => {
                                    "a file has the most hard links its filesystem allows"
                                }
                                _ => return Err(e),
                            };
                            let _ = hardlink_failed.set(why.into());
                            copy_file(&from, &to).map(|_| Counted::Copied)
                        }
                    },
                    LinkMode::Clone => clone_file(&from, &to, &clone_failed),
                    LinkMode::Copy => copy_file(&from, &to).map(|_| Counted::Copied),
                    LinkMode::Symlink if n.elf && is_program(&from) => {
                        copy_file(&from, &to).map(|_| Counted::Copied)
                    }
                    LinkMode::Symlink => {
                        std::os::unix::fs::symlink(&from, &to).map(|_| Counted::Symlinked)
                    }
                }
            })
            .collect::<io::Result<_>>()?;
        // Hard links of the archive, then its symlinks: their targets exist.
        for (path, n) in nodes {
            match &n.kind {
                NodeKind::Hardlink(target) => {
                    let made = dest.join(target);
                    let linked = if fs::symlink_metadata(&made).is_ok_and(|m| m.is_file()) {
                        fs::hard_link(&made, dest.join(path))
                    } else {
                        copy_file(&src.join(path), &dest.join(path)).map(|_| ())
                    };
                    linked?;
                }
                NodeKind::Symlink { written, .. } => {
                    std::os::unix::fs::symlink(written, dest.join(path))?;
                }
                NodeKind::File => {}
            }
        }
        let mut linked = Linked {
            mode,
            fell_back: hardlink_failed
                .into_inner()
                .or_else(|| clone_failed.into_inner()),
            ..Linked::default()
        };
        for c in counts {
            match c {
                Counted::Hardlinked => linked.hardlinked += 1,
                Counted::Cloned => linked.cloned += 1,
                Counted::Copied => linked.copied += 1,
                Counted::Symlinked => linked.symlinked += 1,
            }
        }
        Ok(linked)
    }

    /// Store a finished tree under `key`: each path of `nodes` is taken
    /// from `source(path)` (hard-linked when on the store's filesystem,
    /// copied otherwise) and made read-only. Returns `false` when another
    /// process stored the key first (its entry is kept).
    pub fn add(
        &self,
        inputs: &KeyInputs,
        component: &str,
        version: &str,
        report: &Report,
        nodes: &BTreeMap<String, Node>,
        source: &(dyn Fn(&str) -> PathBuf + Sync),
    ) -> io::Result<bool> {
        let key = inputs.key();
        let final_dir = self.entry_dir(&key);
        if final_dir.exists() {
            return Ok(false);
        }
        fs::create_dir_all(&self.dir)?;
        let building = Scratch::new(self.dir.join(format!(
            ".{key}.building-{}-{}",
            std::process::id(),
            UNIQUE.fetch_add(1, Ordering::Relaxed)
        )));
        let tree = building.path().join("tree");
        fs::create_dir(building.path())?;
        fs::create_dir(&tree)?;
        let mut dirs: BTreeSet<String> = BTreeSet::new();
        for path in nodes.keys() {
            let mut p = Path::new(path).parent();
            while let Some(d) = p.filter(|d| !d.as_os_str().is_empty()) {
                if !dirs.insert(d.to_string_lossy().into_owned()) {
                    break;
                }
                p = d.parent();
            }
        }
        for d in &dirs {
            crate::scratch::create_dirs_below(&tree, Path::new(d))?;
        }
        let files: Vec<StoredFile> = nodes
            .par_iter()
            .filter(|(_, n)| n.kind == NodeKind::File)
            .map(|(path, _)| {
                let from = source(path);
                let to = tree.join(path);
                match fs::hard_link(&from, &to) {
                    Ok(()) => {}
                    Err(e)
                        if matches!(e.raw_os_error(), Some(libc::EXDEV) | Some(libc::EMLINK)) =>
                    {
                        copy_file(&from, &to)?;
                    }
                    Err(e) => return Err(e),
                }
                let m = fs::symlink_metadata(&to)?;
                if !m.is_file() {
                    return Err(io::Error::other(format!(
                        "{} is not a regular file",
                        from.display()
                    )));
                }
                let mode = m.permissions().mode();
                if mode & 0o222 != 0 {
                    fs::set_permissions(&to, fs::Permissions::from_mode(mode & !0o222))?;
                }
                Ok(StoredFile {
                    path: path.clone(),
                    size: m.len(),
                    mtime_ns: mtime_ns(&m),
                })
            })
            .collect::<io::Result<_>>()?;
        for (path, n) in nodes {
            match &n.kind {
                NodeKind::Hardlink(target)
                    if nodes.get(target).is_some_and(|t| t.kind == NodeKind::File) =>
                {
                    fs::hard_link(tree.join(target), tree.join(path))?;
                }
                NodeKind::Hardlink(_) => {
                    return Err(io::Error::other(format!(
                        "{path}: a hard link to a path that is not a file of the tree"
                    )))
                }
                NodeKind::Symlink { written, .. } => {
                    std::os::unix::fs::symlink(written, tree.join(path))?;
                }
                NodeKind::File => {}
            }
        }
        let record = EntryRecord {
            format: FORMAT,
            key: key.clone(),
            inputs: inputs.clone(),
            component: component.to_owned(),
            version: version.to_owned(),
            created: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            report: report.clone(),
            nodes: nodes.clone(),
            files,
            dirs: dirs.into_iter().collect(),
        };
        let json = serde_json::to_vec_pretty(&record).map_err(io::Error::other)?;
        fs::write(building.path().join("entry.json"), json)?;
        match fs::rename(building.path(), &final_dir) {
            Ok(()) => {
                building.keep();
                Ok(true)
            }
            // Stored by another install in the meantime: theirs stays.
            Err(e) if final_dir.exists() => {
                let _ = e;
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Note that `prefix` links from the store (what `prune` asks).
    pub fn register(&self, prefix: &Path) -> io::Result<()> {
        let refs = self.dir.join("refs");
        fs::create_dir_all(&refs)?;
        let text = prefix.to_string_lossy();
        let name = crate::source::hex(&Sha256::digest(text.as_bytes()));
        let path = refs.join(&name[..32]);
        if fs::read_to_string(&path).is_ok_and(|t| t == text) {
            return Ok(());
        }
        let tmp = refs.join(format!(".{}.{}", &name[..32], std::process::id()));
        fs::write(&tmp, text.as_bytes())?;
        fs::rename(&tmp, &path)
    }

    /// Every entry, with what uses it.
    pub fn info(&self) -> StoreInfo {
        let used = self.used();
        let mut entries = Vec::new();
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name == "refs" || !e.path().is_dir() {
                continue;
            }
            let record: Option<EntryRecord> = fs::read(e.path().join("entry.json"))
                .ok()
                .and_then(|d| serde_json::from_slice(&d).ok());
            let (bytes, files) = tree_size(&e.path().join("tree"));
            entries.push(EntryInfo {
                prefixes: used.by_key.get(&name).cloned().unwrap_or_default(),
                component: record.as_ref().map(|r| r.component.clone()),
                version: record.as_ref().map(|r| r.version.clone()),
                layout: record.as_ref().map(|r| r.inputs.layout),
                created: record.as_ref().map(|r| r.created),
                key: name,
                files,
                bytes,
            });
        }
        entries.sort_by(|a, b| {
            (&a.component, &a.version, &a.key).cmp(&(&b.component, &b.version, &b.key))
        });
        StoreInfo {
            dir: self.dir.clone(),
            bytes: entries.iter().map(|e| e.bytes).sum(),
            entries,
            prefixes: used.prefixes,
        }
    }

    /// The keys the registered prefixes use; registrations of prefixes
    /// that are gone (or no longer link from the store) are dropped.
    fn used(&self) -> Used {
        let mut used = Used::default();
        for e in fs::read_dir(self.dir.join("refs"))
            .into_iter()
            .flatten()
            .flatten()
        {
            if e.file_name().to_string_lossy().starts_with('.') {
                continue;
            }
            let Ok(prefix) = fs::read_to_string(e.path()) else {
                continue;
            };
            let keys = crate::install::store_keys(Path::new(&prefix));
            if keys.is_empty() {
                let _ = fs::remove_file(e.path());
                continue;
            }
            for k in keys {
                used.by_key
                    .entry(k)
                    .or_default()
                    .push(PathBuf::from(&prefix));
            }
            used.prefixes.push(PathBuf::from(prefix));
        }
        used.prefixes.sort();
        used
    }

    /// Remove entries no registered prefix uses, damaged entries, and what
    /// killed runs left (entries half-written by processes that are gone).
    /// Holds the store's lock: waits for running installs.
    pub fn prune(&self) -> io::Result<Pruned> {
        let _lock = self.lock(true)?;
        let used = self.used();
        let mut pruned = Pruned {
            leftovers: self.sweep(),
            ..Pruned::default()
        };
        for e in fs::read_dir(&self.dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name == "refs" || name.starts_with('.') {
                continue;
            }
            if used.by_key.contains_key(&name) {
                pruned.kept += 1;
                continue;
            }
            let r = crate::lock::remove(&e.path());
            pruned.removed.push(name);
            pruned.reclaimed.add(r);
        }
        Ok(pruned)
    }

    /// Remove what killed runs left: entries half-written (or half-removed)
    /// by processes that are gone, `.<key>.building-<pid>-<n>` and
    /// `.<key>.damaged-<pid>-<n>`; a running process's are never touched.
    pub fn sweep(&self) -> Reclaimed {
        crate::lock::sweep_dead(&self.dir, |name| {
            if !name.starts_with('.') {
                return None;
            }
            let (head, _) = name.rsplit_once('-')?;
            head.rsplit_once('-')?.1.parse().ok()
        })
    }

    /// Remove the whole store. Holds the store's lock.
    pub fn clean(&self) -> io::Result<Reclaimed> {
        if !self.dir.exists() {
            return Ok(Reclaimed::default());
        }
        let lock = self.lock(true)?;
        let mut r = Reclaimed::default();
        for e in fs::read_dir(&self.dir)?.flatten() {
            if e.file_name() != ".lock" {
                r.add(crate::lock::remove(&e.path()));
            }
        }
        drop(lock);
        Ok(r)
    }
}

/// The store's lock, released when dropped.
#[derive(Debug)]
pub struct StoreLock {
    _file: File,
}

#[derive(Default)]
struct Used {
    by_key: BTreeMap<String, Vec<PathBuf>>,
    prefixes: Vec<PathBuf>,
}

/// What the store holds (`redist cache info`).
#[derive(Debug, Clone, Serialize)]
pub struct StoreInfo {
    /// Its directory.
    pub dir: PathBuf,
    /// Bytes of all entries (a file hard-linked into prefixes counts once,
    /// here).
    pub bytes: u64,
    /// The entries.
    pub entries: Vec<EntryInfo>,
    /// Prefixes that link from it.
    pub prefixes: Vec<PathBuf>,
}

/// One entry of [`StoreInfo`].
#[derive(Debug, Clone, Serialize)]
pub struct EntryInfo {
    /// Its key.
    pub key: String,
    /// The component (absent for a damaged entry).
    pub component: Option<String>,
    /// Its version.
    pub version: Option<String>,
    /// Merged or split.
    pub layout: Option<Mode>,
    /// When it was stored, seconds since the epoch.
    pub created: Option<u64>,
    /// Files.
    pub files: u64,
    /// Bytes of file data.
    pub bytes: u64,
    /// Prefixes that use it; empty: `prune` removes it.
    pub prefixes: Vec<PathBuf>,
}

/// What [`Store::prune`] did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Pruned {
    /// Keys of the entries removed.
    pub removed: Vec<String>,
    /// What they held.
    pub reclaimed: Reclaimed,
    /// Entries kept (in use).
    pub kept: usize,
    /// Half-written entries of killed runs, removed.
    pub leftovers: Reclaimed,
}

enum Counted {
    Hardlinked,
    Cloned,
    Copied,
    Symlinked,
}

/// What an entry lists must stay inside the tree it is linked into, as the
/// unpacker's safety rules made it: relative paths without `..`, symlinks
/// whose targets resolve inside the tree, hard links to files of the entry.
fn check_record(r: &EntryRecord) -> Result<(), String> {
    let plain = |p: &str| {
        !p.is_empty()
            && !p.starts_with('/')
            && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
    };
    for (path, n) in &r.nodes {
        if !plain(path) {
            return Err(format!("{path:?} is not a path inside the tree"));
        }
        match &n.kind {
            NodeKind::File => {}
            NodeKind::Hardlink(target) => {
                if !r
                    .nodes
                    .get(target)
                    .is_some_and(|t| t.kind == NodeKind::File)
                {
                    return Err(format!(
                        "{path} links to {target:?}, not a file of the entry"
                    ));
                }
            }
            NodeKind::Symlink { written, .. } => {
                let parent = Path::new(path)
                    .parent()
                    .map_or(String::new(), |p| p.to_string_lossy().into_owned());
                let inside = !written.starts_with('/')
                    && crate::unpack::join_lexically(&parent, written).is_some();
                if !inside {
                    return Err(format!("{path} points at {written:?}, outside the tree"));
                }
            }
        }
    }
    for f in &r.files {
        if !r
            .nodes
            .get(&f.path)
            .is_some_and(|n| n.kind == NodeKind::File)
        {
            return Err(format!("{:?} is not a file of the entry", f.path));
        }
    }
    let files = r
        .nodes
        .values()
        .filter(|n| n.kind == NodeKind::File)
        .count();
    if files != r.files.len() {
        return Err(format!(
            "{files} files, {} with a recorded size and mtime",
            r.files.len()
        ));
    }
    if let Some(d) = r.dirs.iter().find(|d| !plain(d)) {
        return Err(format!("{d:?} is not a directory inside the tree"));
    }
    Ok(())
}

fn mtime_ns(m: &fs::Metadata) -> i128 {
    i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec())
}

/// Copy a file with its permission bits, made writable by its owner (what
/// a prefix file of its own should be).
fn copy_file(from: &Path, to: &Path) -> io::Result<u64> {
    let n = fs::copy(from, to)?;
    let mode = fs::metadata(to)?.permissions().mode();
    fs::set_permissions(to, fs::Permissions::from_mode(mode | 0o200))?;
    Ok(n)
}

fn clone_file(from: &Path, to: &Path, failed: &std::sync::OnceLock<String>) -> io::Result<Counted> {
    match reflink_copy::reflink(from, to) {
        Ok(()) => {
            let mode = fs::metadata(from)?.permissions().mode();
            fs::set_permissions(to, fs::Permissions::from_mode(mode | 0o200))?;
            Ok(Counted::Cloned)
        }
        Err(e) => {
            let _ = fs::remove_file(to);
            let _ = failed.set(format!("the filesystem cannot clone files ({e})"));
            copy_file(from, to).map(|_| Counted::Copied)
        }
    }
}

/// Whether an ELF file is a program (has an interpreter): the loader
/// finds its `$ORIGIN` through symlinks, so it cannot be one.
fn is_program(path: &Path) -> bool {
    elfpatch::read(path).is_ok_and(|i| i.interpreter.is_some())
}

/// (bytes, files) of the regular files under `dir`.
fn tree_size(dir: &Path) -> (u64, u64) {
    let mut total = (0, 0);
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let Ok(m) = e.metadata() else { continue };
        if m.is_dir() {
            let (b, f) = tree_size(&e.path());
            total.0 += b;
            total.1 += f;
        } else if m.is_file() {
            total.0 += m.len();
            total.1 += 1;
        }
    }
    total
}
