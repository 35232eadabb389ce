//! Paths that exist only while work is in flight: staging directories,
//! partial downloads, partial cache entries.
//!
//! Each is held by a [`Scratch`]: removed when dropped unless kept (because
//! it was published, renamed away, or committed), and listed in one
//! process-wide registry so that a process about to die of a signal can
//! remove every one of them first ([`remove_all`]). With that, an
//! interrupted `redist` leaves the destination as it was and nothing beside
//! it.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// Every live scratch path, in registration order.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// Set by [`remove_all`] before it removes anything.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

fn live() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic while holding the lock leaves a plain Vec: still usable.
    LIVE.lock().unwrap_or_else(|e| e.into_inner())
}

/// A path that is removed when dropped unless [`Scratch::keep`] was called.
#[derive(Debug)]
pub struct Scratch {
    path: PathBuf,
    kept: bool,
}

impl Scratch {
    /// Register `path` (it need not exist yet: register, then create, so a
    /// signal between the two cannot leave it behind).
    pub fn new(path: PathBuf) -> Scratch {
        live().push(path.clone());
        Scratch { path, kept: false }
    }

    /// The registered path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path is no longer scratch (published or committed): forget it
    /// without removing whatever is there now.
    pub fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.kept {
            remove(&self.path);
        }
        let mut live = live();
        if let Some(i) = live.iter().rposition(|p| *p == self.path) {
            live.remove(i);
        }
    }
}

/// Create the directories of `rel` below `root`, one level at a time.
/// Unlike `create_dir_all`, this fails when `root` itself is gone (removed
/// by an interrupt) instead of bringing it back.
pub fn create_dirs_below(root: &Path, rel: &Path) -> std::io::Result<()> {
    let mut dir = root.to_owned();
    for part in rel.components() {
        dir.push(part);
        match fs::create_dir(&dir) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// Remove a file or a whole directory; absent is fine.
fn remove(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            // A worker may still be creating entries (a directory that
            // gains one while being emptied fails with ENOTEMPTY): try
            // again until it is gone. Workers cannot bring back a removed
            // directory (see `create_dirs_below`), so this ends quickly.
            for _ in 0..1000 {
                if fs::remove_dir_all(path).is_ok() || !path.exists() {
                    break;
                }
                std::thread::yield_now();
            }
        }
        Ok(_) => {
            let _ = fs::remove_file(path);
        }
        Err(_) => {}
    }
}

/// Remove every live scratch path now; returns how many were registered.
///
/// For a process about to exit (a signal handler's thread): the scratch
/// values stay registered and their owners may still be running, so call
/// this last, then exit.
pub fn remove_all() -> usize {
    INTERRUPTED.store(true, Ordering::SeqCst);
    let live = live();
    // Newest first: nested paths go before the directories holding them.
    for path in live.iter().rev() {
        remove(path);
    }
    live.len()
}

/// Whether [`remove_all`] has started. Work failing from then on may fail
/// only because its files were removed under it: its error is not the
/// cause, and the process is about to end anyway.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dirs_below_a_missing_root_are_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        assert!(create_dirs_below(&root, Path::new("a/b")).is_err());
        assert!(!root.exists());
        fs::create_dir(&root).unwrap();
        create_dirs_below(&root, Path::new("a/b")).unwrap();
        create_dirs_below(&root, Path::new("a/b")).unwrap();
        assert!(root.join("a/b").is_dir());
    }

    #[test]
    fn dropped_scratch_is_removed_and_kept_scratch_stays() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        {
            let s = Scratch::new(a.clone());
            fs::create_dir_all(s.path().join("x/y")).unwrap();
            fs::write(s.path().join("x/y/f"), b"data").unwrap();
        }
        assert!(!a.exists());
        let s = Scratch::new(b.clone());
        fs::write(&b, b"kept").unwrap();
        s.keep();
        assert_eq!(fs::read(&b).unwrap(), b"kept");
        assert!(!live().contains(&b));
    }
}
