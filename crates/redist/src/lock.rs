//! One install at a time per prefix, and the leftovers of killed runs.
//!
//! The lock is `.<name>.redist-lock` beside the prefix (the prefix itself is
//! swapped by `renameat2`, so a lock inside it would move), held with
//! `flock` for the whole install: a second install into the same prefix
//! waits (or, asked not to, fails) instead of publishing a prefix that
//! drops the first one's components. The holder writes its pid into the
//! file, for the waiting message.
//!
//! Under the lock no other install into this prefix runs, so staging
//! directories beside it whose process is gone are leftovers of a killed
//! run: `publish::sweep_leftovers` removes them. Partial cache downloads are swept
//! by the cache the same way (see `Cache::sweep`).

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{write_error, Error, Result};

/// An exclusive lock on a prefix, released when dropped.
pub(crate) struct PrefixLock {
    _file: File,
}

impl PrefixLock {
    /// Take the lock on `prefix`. When another process holds it: with
    /// `wait`, say so through `waiting` and block until it is released;
    /// without, fail with [`Error::Busy`].
    pub(crate) fn acquire(prefix: &Path, wait: bool, waiting: &dyn Fn(&str)) -> Result<PrefixLock> {
        let path = lock_path(prefix);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(write_error(parent))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(write_error(&path))?;
        if !flock(&file, libc::LOCK_EX | libc::LOCK_NB).map_err(write_error(&path))? {
            let holder = holder(&mut file);
            if !wait {
                return Err(Error::Busy {
                    prefix: prefix.to_owned(),
                    pid: holder,
                });
            }
            waiting(&format!(
                "waiting for another redist install into {}{}",
                prefix.display(),
                holder.map(|p| format!(" (pid {p})")).unwrap_or_default()
            ));
            flock(&file, libc::LOCK_EX).map_err(write_error(&path))?;
        }
        // Ours now: say who holds it.
        let _ = file.set_len(0);
        let _ = file.rewind();
        let _ = write!(file, "{}", std::process::id());
        Ok(PrefixLock { _file: file })
    }
}

/// `.<name>.redist-lock` beside `prefix`.
fn lock_path(prefix: &Path) -> PathBuf {
    crate::publish::sibling(prefix, "redist-lock")
}

/// The pid the current holder wrote, if any.
fn holder(file: &mut File) -> Option<u32> {
    let mut s = String::new();
    file.rewind().ok()?;
    file.read_to_string(&mut s).ok()?;
    s.trim().parse().ok()
}

/// `flock(2)`; `Ok(false)` when non-blocking and already held.
pub(crate) fn flock(file: &File, op: libc::c_int) -> std::io::Result<bool> {
    loop {
        // SAFETY: a valid open file descriptor and a valid operation.
        if unsafe { libc::flock(file.as_raw_fd(), op) } == 0 {
            return Ok(true);
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => continue,
            Some(libc::EWOULDBLOCK) => return Ok(false),
            _ => return Err(e),
        }
    }
}

/// Whether process `pid` is gone (so what it left behind is garbage).
pub(crate) fn is_gone(pid: u32) -> bool {
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

/// Remove the entries of `dir` that belong to processes that are gone:
/// `pid_of` reads the pid from an entry's name (`None`: not a leftover).
/// A running process's entries are never touched.
pub(crate) fn sweep_dead(dir: &Path, pid_of: impl Fn(&str) -> Option<u32>) -> Reclaimed {
    let mut reclaimed = Reclaimed::default();
    for e in fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = e.file_name();
        if name.to_str().and_then(&pid_of).is_some_and(is_gone) {
            reclaimed.add(remove(&e.path()));
        }
    }
    reclaimed
}

/// What a sweep removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Reclaimed {
    /// Files and directories removed.
    pub entries: usize,
    /// Bytes they held.
    pub bytes: u64,
}

impl Reclaimed {
    /// Adds another sweep's figures.
    pub fn add(&mut self, other: Reclaimed) {
        self.entries += other.entries;
        self.bytes += other.bytes;
    }
}

/// Remove a file or a tree, counting what it held.
pub(crate) fn remove(path: &Path) -> Reclaimed {
    let size = size_of(path);
    let entries = size.0;
    let removed = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path).is_ok(),
        Ok(_) => fs::remove_file(path).is_ok(),
        Err(_) => false,
    };
    if removed {
        Reclaimed {
            entries,
            bytes: size.1,
        }
    } else {
        Reclaimed::default()
    }
}

/// (entries, bytes) under `path`, `path` itself included.
fn size_of(path: &Path) -> (usize, u64) {
    let Ok(m) = fs::symlink_metadata(path) else {
        return (0, 0);
    };
    if !m.is_dir() {
        return (1, m.len());
    }
    let mut total = (1, 0);
    for e in fs::read_dir(path).into_iter().flatten().flatten() {
        let (n, b) = size_of(&e.path());
        total.0 += n;
        total.1 += b;
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_without_waiting_and_names_the_holder() {
        let d = tempfile::tempdir().unwrap();
        let prefix = d.path().join("cuda");
        let held = PrefixLock::acquire(&prefix, false, &|_| {}).unwrap();
        match PrefixLock::acquire(&prefix, false, &|_| {}) {
            Err(Error::Busy { pid, .. }) => assert_eq!(pid, Some(std::process::id())),
            other => panic!("expected Busy, got {:?}", other.err()),
        }
        drop(held);
        PrefixLock::acquire(&prefix, false, &|_| {}).unwrap();
    }

    #[test]
    fn only_leftovers_of_gone_processes_are_swept() {
        let d = tempfile::tempdir().unwrap();
        let prefix = d.path().join("cuda");
        // pid_max on Linux is at most 2^22: this one is never running.
        let dead = d.path().join(".cuda.redist-staging-4194304-0");
        let live = d
            .path()
            .join(format!(".cuda.redist-staging-{}-0", std::process::id()));
        let other = d.path().join(".other.redist-staging-4194304-0");
        for p in [&dead, &live, &other] {
            fs::create_dir_all(p.join("lib")).unwrap();
            fs::write(p.join("lib/f"), "12345").unwrap();
        }
        let r = crate::publish::sweep_leftovers(&prefix);
        assert_eq!(
            r,
            Reclaimed {
                entries: 3,
                bytes: 5
            }
        );
        assert!(!dead.exists() && live.exists() && other.exists());
    }
}
