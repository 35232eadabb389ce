//! Staging and publishing: every tree redist writes is built in a
//! directory beside its destination and appears there in one rename, so a
//! failure (or a kill) never leaves a half-written destination.
//!
//! - [`Staging::fresh`]: an empty directory, for `redist unpack`;
//!   [`Staging::publish`] renames it onto an absent or empty destination
//!   (never over anything else).
//! - [`Staging::copy_of`]: a hard-linked copy of an existing prefix (cheap,
//!   nothing copied), for `redist install`; [`Staging::replace`] swaps it
//!   with the prefix in one `renameat2(RENAME_EXCHANGE)`.
//!
//! Until published, the directory is removed when dropped, and by
//! [`crate::scratch::remove_all`] when the process is interrupted.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use crate::error::{write_error, Error, Result};
use crate::lock::Reclaimed;
use crate::scratch::Scratch;

/// A directory beside its destination, removed unless published.
pub struct Staging {
    dir: Scratch,
    /// Where the unpacker moves what it wrote when it must keep the
    /// archive's root (removed with the staging directory).
    _aside: Scratch,
}

impl Staging {
    /// An empty `.<name>.redist-staging-<pid>-<n>` beside `out`.
    pub fn fresh(out: &Path) -> Result<Staging> {
        let parent = parent_of(out);
        fs::create_dir_all(&parent).map_err(write_error(&parent))?;
        for n in 0..1000 {
            let what = format!("{STAGING}{}-{n}", std::process::id());
            let path = sibling(out, &what);
            let dir = Scratch::new(path);
            match fs::create_dir(dir.path()) {
                Ok(()) => return Ok(Staging::at(dir)),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => dir.keep(),
                Err(source) => {
                    let path = dir.path().to_owned();
                    dir.keep();
                    return Err(Error::Write { path, source });
                }
            }
        }
        Err(Error::Write {
            path: parent,
            source: io::Error::other("could not create a staging directory"),
        })
    }

    /// A copy of `prefix` made of hard links (and recreated symlinks), or
    /// an empty directory when there is no prefix yet.
    pub fn copy_of(prefix: &Path) -> Result<Staging> {
        let staging = Staging::fresh(prefix)?;
        if prefix.is_dir() {
            let path = staging.path();
            fs::remove_dir(path).map_err(write_error(path))?;
            copy_tree(prefix, path, FileCopy::HardLink)?;
        }
        Ok(staging)
    }

    fn at(dir: Scratch) -> Staging {
        let aside = Scratch::new(dir.path().with_extension("relocating"));
        Staging { dir, _aside: aside }
    }

    /// The staging directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Rename the staged tree to `out`, which must be absent or an empty
    /// directory (anything else there is never touched: the rename fails).
    ///
    /// With `durable`, the staged files reach the disk before the rename,
    /// and the rename before this returns: a power loss leaves the old state
    /// or the whole new tree, never names with empty files.
    pub fn publish(self, out: &Path, durable: bool) -> Result<()> {
        if durable {
            sync_filesystem(self.dir.path())?;
        }
        fs::rename(self.dir.path(), out).map_err(write_error(out))?;
        self.dir.keep();
        if durable {
            sync_parent(out)?;
        }
        Ok(())
    }

    /// Swap the staged tree with `prefix` in one step (a rename when there
    /// is no prefix yet); the old tree is removed afterwards. `durable` as
    /// for [`Staging::publish`].
    pub fn replace(self, prefix: &Path, durable: bool) -> Result<()> {
        if !prefix.exists() {
            return self.publish(prefix, durable);
        }
        if durable {
            sync_filesystem(self.dir.path())?;
        }
        exchange(self.dir.path(), prefix).map_err(write_error(prefix))?;
        // The staging path now holds the old tree; dropping removes it.
        if durable {
            sync_parent(prefix)?;
        }
        Ok(())
    }
}

/// `syncfs(2)` on the filesystem holding `dir`: every file written there
/// reaches the disk, in one call however many files there are.
fn sync_filesystem(dir: &Path) -> Result<()> {
    use std::os::fd::AsRawFd;
    let d = fs::File::open(dir).map_err(write_error(dir))?;
    // SAFETY: a valid open file descriptor.
    if unsafe { libc::syncfs(d.as_raw_fd()) } != 0 {
        return Err(write_error(dir)(io::Error::last_os_error()));
    }
    Ok(())
}

/// `fsync` the directory holding `path`, so a rename in it is on disk.
fn sync_parent(path: &Path) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(parent)
        .and_then(|d| d.sync_all())
        .map_err(write_error(parent))
}

/// The directory holding `path` (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// `.<name>.<what>` beside `path`: where redist keeps what belongs to it
/// (staging directories, the install lock).
pub(crate) fn sibling(path: &Path, what: &str) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}.{what}"))
}

/// What staging directories are called after `.<name>.`.
const STAGING: &str = "redist-staging-";

/// Remove the staging directories of killed runs beside `prefix`:
/// `.<name>.redist-staging-<pid>-<n>` (and its `.relocating` twin) and the
/// older `.<name>.redist-install-<pid>`, when process `<pid>` is gone.
pub(crate) fn sweep_leftovers(prefix: &Path) -> Reclaimed {
    let Some(name) = prefix.file_name() else {
        return Reclaimed::default();
    };
    let ours = format!(".{}.", name.to_string_lossy());
    crate::lock::sweep_dead(&parent_of(prefix), |n| {
        let rest = n.strip_prefix(&ours)?;
        let r = rest
            .strip_prefix(STAGING)
            .or_else(|| rest.strip_prefix("redist-install-"))?;
        r.split(['-', '.']).next()?.parse().ok()
    })
}

/// How [`copy_tree`] makes each file.
#[derive(Clone, Copy)]
pub(crate) enum FileCopy {
    /// A hard link (same filesystem, nothing copied).
    HardLink,
    /// A copy of the data and permissions.
    Data,
}

/// A copy of the tree `from` at `to` (directories created, symlinks
/// recreated as they are, files per `how`), in name order. An error names
/// the path it is about.
pub(crate) fn copy_tree(from: &Path, to: &Path, how: FileCopy) -> Result<()> {
    fs::create_dir(to).map_err(write_error(to))?;
    let mut entries: Vec<fs::DirEntry> = fs::read_dir(from)
        .map_err(write_error(from))?
        .collect::<io::Result<_>>()
        .map_err(write_error(from))?;
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type().map_err(write_error(&src))?;
        if t.is_dir() {
            copy_tree(&src, &dst, how)?;
        } else if t.is_symlink() {
            let target = fs::read_link(&src).map_err(crate::error::read_error(&src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(write_error(&dst))?;
        } else {
            match how {
                FileCopy::HardLink => fs::hard_link(&src, &dst).map(|_| 0),
                FileCopy::Data => fs::copy(&src, &dst),
            }
            .map_err(write_error(&dst))?;
        }
    }
    Ok(())
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: both names swap atomically.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let cb = CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD is always valid.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_copy_is_published_by_exchange_and_the_old_tree_goes() {
        let d = tempfile::tempdir().unwrap();
        let prefix = d.path().join("prefix");
        fs::create_dir_all(prefix.join("lib")).unwrap();
        fs::write(prefix.join("lib/old"), "old").unwrap();
        let staging = Staging::copy_of(&prefix).unwrap();
        assert_eq!(
            fs::read_to_string(staging.path().join("lib/old")).unwrap(),
            "old"
        );
        fs::write(staging.path().join("lib/new"), "new").unwrap();
        let staged = staging.path().to_owned();
        staging.replace(&prefix, true).unwrap();
        assert!(prefix.join("lib/new").is_file() && prefix.join("lib/old").is_file());
        assert!(!staged.exists(), "the old tree is removed");
        let names: Vec<_> = fs::read_dir(d.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["prefix"]);
    }

    #[test]
    fn copy_tree_copies_or_links_files_and_recreates_symlinks() {
        use std::os::unix::fs::MetadataExt;
        let d = tempfile::tempdir().unwrap();
        let from = d.path().join("from");
        fs::create_dir_all(from.join("lib")).unwrap();
        fs::write(from.join("lib/a.so.1"), "a").unwrap();
        std::os::unix::fs::symlink("a.so.1", from.join("lib/a.so")).unwrap();
        for (name, how, shared) in [
            ("linked", FileCopy::HardLink, true),
            ("copied", FileCopy::Data, false),
        ] {
            let to = d.path().join(name);
            copy_tree(&from, &to, how).unwrap();
            assert_eq!(fs::read_to_string(to.join("lib/a.so")).unwrap(), "a");
            assert_eq!(
                fs::read_link(to.join("lib/a.so")).unwrap(),
                Path::new("a.so.1")
            );
            let ino = |p: &Path| fs::metadata(p).unwrap().ino();
            assert_eq!(
                ino(&to.join("lib/a.so.1")) == ino(&from.join("lib/a.so.1")),
                shared,
                "{name}"
            );
        }
    }

    #[test]
    fn a_fresh_tree_is_renamed_onto_an_empty_destination_never_over_files() {
        let d = tempfile::tempdir().unwrap();
        let out = d.path().join("out");
        fs::create_dir(&out).unwrap();
        let staging = Staging::fresh(&out).unwrap();
        fs::write(staging.path().join("f"), "x").unwrap();
        staging.publish(&out, true).unwrap();
        assert_eq!(fs::read_to_string(out.join("f")).unwrap(), "x");
        let again = Staging::fresh(&out).unwrap();
        let err = again.publish(&out, false).unwrap_err();
        assert!(err.to_string().contains("cannot write"), "{err}");
        assert_eq!(fs::read_to_string(out.join("f")).unwrap(), "x");
        let dropped = Staging::fresh(&d.path().join("other")).unwrap();
        let path = dropped.path().to_owned();
        drop(dropped);
        assert!(!path.exists());
    }
}
