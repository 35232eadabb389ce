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
use std::sync::Mutex;

/// Every live scratch path, in registration order.
static LIVE: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

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

/// Remove a file or a whole directory; absent is fine.
fn remove(path: &Path) {
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => {
            // A worker may still be creating entries: try again until gone.
            for _ in 0..3 {
                if fs::remove_dir_all(path).is_ok() || !path.exists() {
                    break;
                }
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
    let live = live();
    // Newest first: nested paths go before the directories holding them.
    for path in live.iter().rev() {
        remove(path);
    }
    live.len()
}

#[cfg(test)]
mod tests {
    use super::*;

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
