//! The writer: tar entries → files, symlinks and hardlinks in a staging tree.
//!
//! It writes files itself from the `tar` crate's entry stream rather than
//! calling `Archive::unpack` (which `readlink`s every path component of
//! every entry): 1 MiB writes, a cache of created directories, and every
//! regular file's first bytes checked for the ELF magic as it is written, so
//! the fixups and autopatch know every file without walking the tree.
//!
//! Safety is decided here, entry by entry, in archive space and in output
//! space; see [`UnsafeRule`] for the rules.

use std::collections::{HashMap, HashSet};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::time::{Duration, SystemTime};

use tar::EntryType;

use crate::decode::{is_decoder_failure, CHUNK};
use crate::error::{Error, Result, UnsafeRule};
use crate::layout::Layout;

/// What a written path is.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NodeKind {
    /// A regular file with its own data.
    File,
    /// A hard link to the file at this destination path.
    Hardlink(String),
    /// A symlink; the target as an archive path and the relative target
    /// actually written.
    Symlink { target: String, written: String },
}

impl NodeKind {
    fn noun(&self) -> &'static str {
        match self {
            NodeKind::File | NodeKind::Hardlink(_) => "file",
            NodeKind::Symlink { .. } => "symlink",
        }
    }
}

/// One path written into the tree.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Node {
    /// The entry's archive path, top directory stripped.
    pub archive: String,
    /// The output it was routed to.
    pub output: String,
    /// File, hardlink or symlink.
    pub kind: NodeKind,
    /// Bytes of data (regular files only).
    pub size: u64,
    /// Whether the data starts with the ELF magic.
    pub elf: bool,
}

/// How the archive's top directory was treated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Root {
    /// No entry seen yet.
    Undecided,
    /// Every entry sits under this directory; it was stripped.
    Stripped(String),
    /// Entries are kept as they are (several top-level entries).
    Kept,
}

/// Where [`Root::place`] puts an entry.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Placed {
    /// Under the stripped root: the rest of its path.
    Inside(String),
    /// The root directory's own entry.
    TheRoot,
    /// Kept as it is; `gave_up` names the root given up just now (what
    /// was written so far must move under it).
    Kept { gave_up: Option<String> },
}

impl Root {
    /// The archive-root rule, applied entry by entry (cleaned paths): the
    /// first entry proposes its first component as the root (when it is a
    /// directory or has more below it); an entry outside it, or a file of
    /// that very name, keeps every path as it is. `unpack` and
    /// `outputs_of` both decide with this.
    pub(crate) fn place(&mut self, full: &str, is_dir: bool) -> Placed {
        let (top, rest) = match full.split_once('/') {
            Some((t, r)) => (t, Some(r)),
            None => (full, None),
        };
        if *self == Root::Undecided {
            *self = if rest.is_some() || is_dir {
                Root::Stripped(top.to_owned())
            } else {
                Root::Kept
            };
        }
        if let Root::Stripped(root) = self {
            if top == root.as_str() {
                match rest {
                    Some(r) => return Placed::Inside(r.to_owned()),
                    None if is_dir => return Placed::TheRoot,
                    None => {}
                }
            }
            let root = std::mem::take(root);
            *self = Root::Kept;
            return Placed::Kept {
                gave_up: Some(root),
            };
        }
        Placed::Kept { gave_up: None }
    }
}

/// Everything the writer produced, keyed by destination path relative to
/// the unpack root (`lib/lib/libcudart.so.12`).
#[derive(Debug)]
pub struct Tree {
    /// Destination path → node.
    pub nodes: HashMap<String, Node>,
    /// How the top directory was handled.
    pub root: Root,
    /// Top-level names when the root was kept.
    pub top_level: Vec<String>,
    /// Bytes of file data written.
    pub bytes_written: u64,
    /// Time spent writing (excludes waiting for the decoder).
    pub busy: Duration,
}

/// Writes one archive into `staging`.
pub struct Writer<'a> {
    archive: &'a str,
    staging: &'a Path,
    final_root: &'a Path,
    layout: &'a Layout,
    mtime: Option<u64>,
    root: Root,
    nodes: HashMap<String, Node>,
    by_archive: HashMap<String, String>,
    dirs: HashSet<String>,
    archive_dirs: HashSet<String>,
    top_level: Vec<String>,
    bytes_written: u64,
    buf: Vec<u8>,
    only: Option<&'a globset::GlobSet>,
    /// Set once the tar stream has ended: a tar error after that is a
    /// truncated archive, whatever the `tar` crate calls it.
    ended: std::rc::Rc<std::cell::Cell<bool>>,
}

/// Extension headers the `tar` crate has already applied to the entry
/// after them.
pub(crate) fn is_extension(kind: EntryType) -> bool {
    matches!(
        kind,
        EntryType::XGlobalHeader
            | EntryType::XHeader
            | EntryType::GNULongName
            | EntryType::GNULongLink
    )
}

/// What kind of entry this is when it is one we refuse: devices, fifos,
/// and sparse files in any encoding (GNU's `S` type, and PAX 0.0, 0.1 and
/// 1.0, whose `GNU.sparse.*` records a plain reader would write as a
/// small map-and-data file under the wrong name).
pub(crate) fn special_kind<R: Read>(
    entry: &mut tar::Entry<'_, R>,
) -> io::Result<Option<&'static str>> {
    Ok(match entry.header().entry_type() {
        EntryType::Char => Some("character device"),
        EntryType::Block => Some("block device"),
        EntryType::Fifo => Some("fifo"),
        EntryType::GNUSparse => Some("GNU sparse"),
        _ => {
            let mut sparse = false;
            if let Some(pax) = entry.pax_extensions()? {
                for ext in pax {
                    sparse |= ext?.key_bytes().starts_with(b"GNU.sparse.");
                }
            }
            sparse.then_some("PAX sparse")
        }
    })
}

/// An entry's name, which must be UTF-8 (else its lossy form and the rule).
pub(crate) fn entry_name(bytes: &[u8]) -> std::result::Result<String, (String, UnsafeRule)> {
    match std::str::from_utf8(bytes) {
        Ok(s) => Ok(s.to_owned()),
        Err(_) => Err((
            String::from_utf8_lossy(bytes).into_owned(),
            UnsafeRule::NonUtf8,
        )),
    }
}

/// Lexically clean an entry path: no absolute paths, no `..`, `.` and
/// empty components dropped.
pub(crate) fn clean(path: &str) -> std::result::Result<String, UnsafeRule> {
    if path.starts_with('/') {
        return Err(UnsafeRule::AbsolutePath);
    }
    let mut out = String::with_capacity(path.len());
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => return Err(UnsafeRule::ParentComponent),
            c => {
                if !out.is_empty() {
                    out.push('/');
                }
                out.push_str(c);
            }
        }
    }
    Ok(out)
}

/// What a `tar` read error means: the decoder's failure, a truncated
/// archive (the stream had `ended`), or malformed tar data after `at`.
pub(crate) fn tar_failure(archive: &str, e: io::Error, at: Option<&str>, ended: bool) -> Error {
    if is_decoder_failure(&e) {
        return Error::DecoderFailed;
    }
    if e.kind() == io::ErrorKind::UnexpectedEof || ended {
        return Error::Truncated {
            archive: archive.to_owned(),
            detail: match at {
                Some(at) => format!("the tar stream ends inside the entry after `{at}`"),
                None => "the tar stream ends inside the first header".into(),
            },
        };
    }
    Error::Tar {
        archive: archive.to_owned(),
        at: at.map(str::to_owned),
        cause: e,
    }
}

/// A reader that records when its stream ends.
pub(crate) struct EndSeen<R> {
    pub inner: R,
    pub ended: std::rc::Rc<std::cell::Cell<bool>>,
}

impl<R: Read> Read for EndSeen<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if n == 0 && !buf.is_empty() {
            self.ended.set(true);
        }
        Ok(n)
    }
}

/// Called after each entry with nothing; the pipeline reads its own
/// counters. Kept as a closure so the writer stays free of progress types.
pub type Tick<'a> = &'a mut dyn FnMut();

impl<'a> Writer<'a> {
    /// A writer for `archive` (its label in errors) into `staging`, whose
    /// contents will end up at `final_root`.
    pub fn new(
        archive: &'a str,
        staging: &'a Path,
        final_root: &'a Path,
        layout: &'a Layout,
        mtime: Option<u64>,
    ) -> Writer<'a> {
        Writer {
            archive,
            staging,
            final_root,
            layout,
            mtime,
            root: Root::Undecided,
            nodes: HashMap::new(),
            by_archive: HashMap::new(),
            dirs: HashSet::from([String::new()]),
            archive_dirs: HashSet::new(),
            top_level: Vec::new(),
            bytes_written: 0,
            buf: vec![0; CHUNK],
            only: None,
            ended: Default::default(),
        }
    }

    /// Write only entries whose path matches `globs` (others are read past).
    pub fn only(mut self, globs: &'a globset::GlobSet) -> Self {
        self.only = Some(globs);
        self
    }

    /// Read every entry of `tar` and write it.
    pub fn run<R: Read>(mut self, tar: R, tick: Tick<'_>) -> Result<Tree> {
        let started = std::time::Instant::now();
        let mut archive = tar::Archive::new(EndSeen {
            inner: tar,
            ended: self.ended.clone(),
        });
        let mut last: Option<String> = None;
        let entries = archive
            .entries()
            .map_err(|e| self.tar_error(e, last.as_deref()))?;
        for entry in entries {
            let mut entry = entry.map_err(|e| self.tar_error(e, last.as_deref()))?;
            let name = self.entry_name(&entry)?;
            self.entry(&mut entry, &name)?;
            last = Some(name);
            tick();
        }
        let busy = started.elapsed();
        let top_level = match &self.root {
            Root::Kept => {
                let mut v = self.top_level.clone();
                v.sort();
                v.dedup();
                v
            }
            _ => Vec::new(),
        };
        Ok(Tree {
            nodes: self.nodes,
            root: self.root,
            top_level,
            bytes_written: self.bytes_written,
            busy,
        })
    }

    fn entry_name<R: Read>(&self, entry: &tar::Entry<'_, R>) -> Result<String> {
        entry_name(&entry.path_bytes()).map_err(|(name, rule)| self.unsafe_entry(&name, rule))
    }

    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>, name: &str) -> Result<()> {
        let kind = entry.header().entry_type();
        if is_extension(kind) {
            return Ok(());
        }
        let special = special_kind(entry).map_err(|e| self.tar_error(e, Some(name)))?;
        if let Some(what) = special {
            return Err(self.unsafe_entry(name, UnsafeRule::SpecialFile(what)));
        }
        let full = self.clean(name, name)?;
        if full.is_empty() {
            return Ok(()); // "./"
        }
        let Some(path) = self.strip(&full, kind.is_dir())? else {
            return Ok(()); // the top directory itself
        };
        self.check_archive_ancestors(name, &path)?;
        if let Some(only) = self.only {
            if !kind.is_dir() && !only.is_match(&path) {
                self.note_archive_dirs(&path, false);
                return Ok(());
            }
        }
        match kind {
            EntryType::Directory => self.directory(name, &path),
            EntryType::Regular | EntryType::Continuous => self.file(entry, name, &path),
            EntryType::Symlink => {
                let target = self.link_name(entry, name)?;
                self.symlink(name, &path, &target)
            }
            EntryType::Link => {
                let target = self.link_name(entry, name)?;
                self.hardlink(name, &path, &target)
            }
            _ => Err(self.unsafe_entry(name, UnsafeRule::SpecialFile("unknown-type"))),
        }
    }

    fn clean(&self, entry: &str, path: &str) -> Result<String> {
        clean(path).map_err(|rule| self.unsafe_entry(entry, rule))
    }

    /// Strip the archive's single top directory. Returns `None` for the top
    /// directory's own entry.
    fn strip(&mut self, full: &str, is_dir: bool) -> Result<Option<String>> {
        match self.root.place(full, is_dir) {
            Placed::Inside(rest) => Ok(Some(rest)),
            Placed::TheRoot => Ok(None),
            Placed::Kept { gave_up } => {
                if let Some(root) = gave_up {
                    self.keep_root(root)?;
                }
                let top = full.split('/').next().unwrap_or(full);
                self.top_level.push(top.to_owned());
                Ok(Some(full.to_owned()))
            }
        }
    }

    /// A later entry is outside the directory we took for the archive's
    /// root: keep every path as it is after all, moving what was written.
    fn keep_root(&mut self, root: String) -> Result<()> {
        self.top_level.push(root.clone());
        let aside = self.staging.with_extension("relocating");
        fs::rename(self.staging, &aside).map_err(|e| self.write_error("", e))?;
        fs::create_dir(self.staging).map_err(|e| self.write_error("", e))?;
        let mut old: Vec<(String, Node)> = std::mem::take(&mut self.nodes).into_iter().collect();
        // Files before the links that point at them.
        old.sort_by_key(|(_, n)| {
            matches!(n.kind, NodeKind::Symlink { .. } | NodeKind::Hardlink(_))
        });
        self.by_archive.clear();
        self.dirs = HashSet::from([String::new()]);
        self.archive_dirs = self
            .archive_dirs
            .iter()
            .map(|d| format!("{root}/{d}"))
            .collect();
        self.archive_dirs.insert(root.clone());
        let mut moved: HashMap<String, String> = HashMap::new();
        for (old_dest, node) in old {
            let archive = format!("{root}/{}", node.archive);
            let (output, dest) = self.destination(&archive, false);
            self.ensure_parent(&archive, &dest)?;
            let kind = match node.kind {
                NodeKind::Symlink { target, .. } => {
                    let target = format!("{root}/{target}");
                    self.place_symlink(&archive, &archive, output, dest, target)?;
                    continue;
                }
                NodeKind::Hardlink(t) => NodeKind::Hardlink(moved.get(&t).cloned().unwrap_or(t)),
                NodeKind::File => NodeKind::File,
            };
            fs::rename(aside.join(&old_dest), self.staging.join(&dest))
                .map_err(|e| self.write_error(&dest, e))?;
            moved.insert(old_dest, dest.clone());
            self.insert(
                dest,
                Node {
                    archive,
                    output,
                    kind,
                    ..node
                },
            );
        }
        fs::remove_dir_all(&aside).map_err(|e| self.write_error("", e))?;
        Ok(())
    }

    fn check_archive_ancestors(&self, entry: &str, path: &str) -> Result<()> {
        for (i, _) in path.match_indices('/') {
            let ancestor = &path[..i];
            if let Some(dest) = self.by_archive.get(ancestor) {
                if let Some(Node {
                    kind: NodeKind::Symlink { .. },
                    ..
                }) = self.nodes.get(dest)
                {
                    return Err(
                        self.unsafe_entry(entry, UnsafeRule::ThroughSymlink(ancestor.to_owned()))
                    );
                }
            }
        }
        Ok(())
    }

    /// Output and destination path (relative to the unpack root).
    fn destination(&self, path: &str, is_dir: bool) -> (String, String) {
        let route = if is_dir {
            self.layout.route_dir(path)
        } else {
            self.layout.route(path)
        };
        let dir = self.layout.output_dir(route.output);
        let dest = join(dir, &route.path);
        (route.output.to_owned(), dest)
    }

    fn directory(&mut self, entry: &str, path: &str) -> Result<()> {
        // Directories are created when something is written into them; an
        // empty directory in the archive creates no output.
        let (_, dest) = self.destination(path, true);
        if let Some(existing) = self.nodes.get(&dest) {
            return Err(self.unsafe_entry(
                entry,
                UnsafeRule::TypeChange {
                    existing: existing.kind.noun(),
                    new: "directory",
                },
            ));
        }
        self.note_archive_dirs(path, true);
        Ok(())
    }

    /// An entry may not replace a directory the archive made (explicitly,
    /// or implicitly by a path below it), even an empty one.
    fn not_a_directory(&self, entry: &str, path: &str, new: &'static str) -> Result<()> {
        if self.archive_dirs.contains(path) {
            return Err(self.unsafe_entry(
                entry,
                UnsafeRule::TypeChange {
                    existing: "directory",
                    new,
                },
            ));
        }
        Ok(())
    }

    fn note_archive_dirs(&mut self, path: &str, itself: bool) {
        if itself {
            self.archive_dirs.insert(path.to_owned());
        }
        for (i, _) in path.match_indices('/') {
            if !self.archive_dirs.contains(&path[..i]) {
                self.archive_dirs.insert(path[..i].to_owned());
            }
        }
    }

    /// Make room for a new node at `dest`: parents exist and are real
    /// directories we made; an older node of the same type is replaced.
    fn prepare(&mut self, entry: &str, dest: &str, new: &NodeKind) -> Result<()> {
        if self.dirs.contains(dest) {
            return Err(self.unsafe_entry(
                entry,
                UnsafeRule::TypeChange {
                    existing: "directory",
                    new: new.noun(),
                },
            ));
        }
        if let Some(old) = self.nodes.get(dest) {
            if old.kind.noun() != new.noun() {
                return Err(self.unsafe_entry(
                    entry,
                    UnsafeRule::TypeChange {
                        existing: old.kind.noun(),
                        new: new.noun(),
                    },
                ));
            }
            // Like tar: a later entry replaces an earlier one of the same type.
            fs::remove_file(self.staging.join(dest)).map_err(|e| self.write_error(dest, e))?;
            let old = self.nodes.remove(dest);
            if let Some(old) = old {
                self.by_archive.remove(&old.archive);
            }
        }
        self.ensure_parent(entry, dest)
    }

    fn ensure_parent(&mut self, entry: &str, dest: &str) -> Result<()> {
        let parent = parent(dest);
        if self.dirs.contains(parent) {
            return Ok(());
        }
        for (i, _) in dest.match_indices('/') {
            let ancestor = &dest[..i];
            if let Some(node) = self.nodes.get(ancestor) {
                return Err(self.unsafe_entry(
                    entry,
                    match node.kind {
                        NodeKind::Symlink { .. } => {
                            UnsafeRule::ThroughSymlink(node.archive.clone())
                        }
                        _ => UnsafeRule::TypeChange {
                            existing: "file",
                            new: "directory",
                        },
                    },
                ));
            }
        }
        // One level at a time, never `create_dir_all`: if the staging
        // directory was removed under us (an interrupt), this fails instead
        // of bringing it back.
        for (i, _) in dest.match_indices('/') {
            let ancestor = &dest[..i];
            if self.dirs.contains(ancestor) {
                continue;
            }
            match fs::create_dir(self.staging.join(ancestor)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(self.write_error(ancestor, e)),
            }
            self.dirs.insert(ancestor.to_owned());
        }
        Ok(())
    }

    fn insert(&mut self, dest: String, node: Node) {
        self.by_archive.insert(node.archive.clone(), dest.clone());
        self.nodes.insert(dest, node);
    }

    fn file<R: Read>(
        &mut self,
        entry: &mut tar::Entry<'_, R>,
        name: &str,
        path: &str,
    ) -> Result<()> {
        self.not_a_directory(name, path, "file")?;
        let (output, dest) = self.destination(path, false);
        self.prepare(name, &dest, &NodeKind::File)?;
        let header = entry.header();
        let mode = header.mode().unwrap_or(0o644) & 0o775;
        let mtime = self.mtime.or_else(|| header.mtime().ok());
        let size = entry.size();
        let abs = self.staging.join(&dest);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&abs)
            .map_err(|e| self.write_error(&dest, e))?;
        let mut written = 0u64;
        let mut elf = false;
        loop {
            let n = crate::decode::fill(entry, &mut self.buf)
                .map_err(|e| self.tar_error(e, Some(name)))?;
            if n == 0 {
                break;
            }
            if written == 0 {
                elf = elfpatch::is_elf(&self.buf[..n]);
            }
            file.write_all(&self.buf[..n])
                .map_err(|e| self.write_error(&dest, e))?;
            written += n as u64;
        }
        if written != size {
            return Err(Error::Truncated {
                archive: self.archive.to_owned(),
                detail: format!(
                    "the archive ends inside entry `{name}` ({written} of its {size} bytes)"
                ),
            });
        }
        finish_file(&file, mode, mtime).map_err(|e| self.write_error(&dest, e))?;
        self.bytes_written += written;
        self.note_archive_dirs(path, false);
        self.insert(
            dest,
            Node {
                archive: path.to_owned(),
                output,
                kind: NodeKind::File,
                size,
                elf,
            },
        );
        Ok(())
    }

    fn link_name<R: Read>(&self, entry: &tar::Entry<'_, R>, name: &str) -> Result<String> {
        let Some(bytes) = entry.link_name_bytes() else {
            return Err(Error::Tar {
                archive: self.archive.to_owned(),
                at: Some(name.to_owned()),
                cause: io::Error::new(io::ErrorKind::InvalidData, "link entry without a target"),
            });
        };
        match std::str::from_utf8(&bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(_) => Err(self.unsafe_entry(name, UnsafeRule::NonUtf8)),
        }
    }

    fn symlink(&mut self, name: &str, path: &str, target: &str) -> Result<()> {
        if target.starts_with('/') {
            return Err(self.unsafe_entry(name, UnsafeRule::AbsoluteSymlink(target.to_owned())));
        }
        self.not_a_directory(name, path, "symlink")?;
        // Resolve lexically from the link's directory; the rewritten target
        // never contains `..` after a normal component, so no chain of
        // links can climb out of the output.
        let resolved = join_lexically(parent(path), target).ok_or_else(|| {
            self.unsafe_entry(name, UnsafeRule::SymlinkEscapes(target.to_owned()))
        })?;
        let (output, dest) = self.destination(path, false);
        self.place_symlink(name, path, output, dest, resolved)?;
        self.note_archive_dirs(path, false);
        Ok(())
    }

    fn place_symlink(
        &mut self,
        name: &str,
        path: &str,
        output: String,
        dest: String,
        target: String,
    ) -> Result<()> {
        let target_dest = if target.is_empty() {
            String::new() // the unpack root itself
        } else {
            self.destination(&target, self.archive_dirs.contains(&target))
                .1
        };
        let written = relative(parent(&dest), &target_dest);
        let kind = NodeKind::Symlink {
            target,
            written: written.clone(),
        };
        self.prepare(name, &dest, &kind)?;
        std::os::unix::fs::symlink(&written, self.staging.join(&dest))
            .map_err(|e| self.write_error(&dest, e))?;
        self.insert(dest, link_node(path, output, kind));
        Ok(())
    }

    fn hardlink(&mut self, name: &str, path: &str, target: &str) -> Result<()> {
        self.not_a_directory(name, path, "file")?;
        let outside = || UnsafeRule::HardlinkOutside(target.to_owned());
        let cleaned = self
            .clean(name, target)
            .map_err(|_| self.unsafe_entry(name, outside()))?;
        let stripped = match &self.root {
            Root::Stripped(root) => cleaned
                .strip_prefix(root.as_str())
                .and_then(|r| r.strip_prefix('/'))
                .map(str::to_owned),
            _ => Some(cleaned),
        };
        let target_dest = stripped
            .and_then(|t| self.by_archive.get(&t).cloned())
            .filter(|d| matches!(self.nodes.get(d).map(|n| &n.kind), Some(NodeKind::File)))
            .ok_or_else(|| self.unsafe_entry(name, outside()))?;
        let (output, dest) = self.destination(path, false);
        if dest == target_dest {
            return Ok(());
        }
        let kind = NodeKind::Hardlink(target_dest.clone());
        self.prepare(name, &dest, &kind)?;
        fs::hard_link(self.staging.join(&target_dest), self.staging.join(&dest))
            .map_err(|e| self.write_error(&dest, e))?;
        self.note_archive_dirs(path, false);
        self.insert(dest, link_node(path, output, kind));
        Ok(())
    }

    fn unsafe_entry(&self, entry: &str, rule: UnsafeRule) -> Error {
        Error::Unsafe {
            archive: self.archive.to_owned(),
            entry: entry.to_owned(),
            rule,
        }
    }

    fn write_error(&self, dest: &str, source: io::Error) -> Error {
        Error::Write {
            path: self.final_root.join(dest),
            source,
        }
    }

    fn tar_error(&self, e: io::Error, at: Option<&str>) -> Error {
        tar_failure(self.archive, e, at, self.ended.get())
    }
}

fn finish_file(file: &File, mode: u32, mtime: Option<u64>) -> io::Result<()> {
    file.set_permissions(fs::Permissions::from_mode(mode))?;
    if let Some(t) = mtime {
        file.set_modified(SystemTime::UNIX_EPOCH + Duration::from_secs(t))?;
    }
    Ok(())
}

/// The node of a symlink or hardlink from archive path `path`.
fn link_node(path: &str, output: String, kind: NodeKind) -> Node {
    Node {
        archive: path.to_owned(),
        output,
        kind,
        size: 0,
        elf: false,
    }
}

/// `a/b` + `c` = `a/b/c`, with an empty side dropped.
pub(crate) fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

/// The directory part of a relative path (`""` for a top-level name).
pub(crate) fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

/// `rel` (a symlink target, an `$ORIGIN` path) followed from directory
/// `dir`, both relative to one root, lexically: `.` and empty components
/// dropped, `..` removing one. `None` when it climbs above the root. The
/// one place this rule lives: symlinks while unpacking, their chains, the
/// Nix placement, autopatch's `$ORIGIN` entries.
pub fn join_lexically(dir: &str, rel: &str) -> Option<String> {
    let mut parts: Vec<&str> = dir.split('/').filter(|c| !c.is_empty()).collect();
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            c => parts.push(c),
        }
    }
    Some(parts.join("/"))
}

/// The relative path from directory `from` to `to` (both relative to the
/// same root, both without `..`).
pub(crate) fn relative(from: &str, to: &str) -> String {
    let f: Vec<&str> = from.split('/').filter(|c| !c.is_empty()).collect();
    let t: Vec<&str> = to.split('/').filter(|c| !c.is_empty()).collect();
    let common = f.iter().zip(&t).take_while(|(a, b)| a == b).count();
    let mut out: Vec<&str> = vec![".."; f.len() - common];
    out.extend(&t[common..]);
    if out.is_empty() {
        ".".into()
    } else {
        out.join("/")
    }
}

/// Follow a symlink chain inside the tree: the path (relative to the root)
/// of the file `dest` → `written` finally names, if it is in `nodes`.
pub fn resolve(dest: &str, written: &str, nodes: &HashMap<String, Node>) -> Option<String> {
    let mut at = dest.to_owned();
    let mut target = written.to_owned();
    for _ in 0..40 {
        let next = join_lexically(parent(&at), &target)?;
        match nodes.get(&next).map(|n| &n.kind) {
            Some(NodeKind::Symlink { written, .. }) => {
                target = written.clone();
                at = next;
            }
            Some(NodeKind::Hardlink(t)) => return Some(t.clone()),
            Some(NodeKind::File) => return Some(next),
            None => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_root_rule_strips_one_shared_directory_and_gives_it_up_otherwise() {
        let run = |entries: &[(&str, bool)]| {
            let mut root = Root::Undecided;
            let placed: Vec<Placed> = entries.iter().map(|(p, d)| root.place(p, *d)).collect();
            (root, placed)
        };
        let (root, placed) = run(&[("x", true), ("x/lib", true), ("x/lib/a.so", false)]);
        assert_eq!(root, Root::Stripped("x".into()));
        assert_eq!(placed[0], Placed::TheRoot);
        assert_eq!(placed[2], Placed::Inside("lib/a.so".into()));
        let (root, placed) = run(&[("x/a", false), ("y/b", false)]);
        assert_eq!(root, Root::Kept);
        assert_eq!(
            placed[1],
            Placed::Kept {
                gave_up: Some("x".into())
            }
        );
        // A file named like the root, and a first entry that is a file.
        assert_eq!(run(&[("x/a", false), ("x", false)]).0, Root::Kept);
        assert_eq!(run(&[("README", false), ("README/x", false)]).0, Root::Kept);
    }

    #[test]
    fn relative_paths_between_outputs() {
        assert_eq!(
            relative("lib/lib", "lib/lib/libcudart.so.12"),
            "libcudart.so.12"
        );
        assert_eq!(
            relative("bin/bin", "lib/lib/libfoo.so"),
            "../../lib/lib/libfoo.so"
        );
        assert_eq!(relative("", "a"), "a");
        assert_eq!(relative("a/b", "a"), "..");
        assert_eq!(relative("a", "a"), ".");
    }
}
