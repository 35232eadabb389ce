//! A tiny harness: run the real `redist` binary in temporary directories.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[allow(unused_imports)]
pub use redist_fixtures::{elves, snapshot, Archive, Compression, Found, Item};

/// A scratch directory, removed on drop.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self) -> &Path {
        self.tmp.path()
    }

    pub fn join(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    /// Write a fixture archive here.
    pub fn archive(&self, a: &Archive, c: Compression) -> PathBuf {
        a.write_to(self.path(), "fixture", c)
    }

    /// Names in this directory other than `keep`: leftovers of a failed run.
    pub fn leftovers(&self, keep: &[&Path]) -> Vec<String> {
        std::fs::read_dir(self.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .filter(|p| !keep.contains(&p.as_path()))
            .map(|p| p.display().to_string())
            .collect()
    }
}

pub fn redist() -> Command {
    Command::new(env!("CARGO_BIN_EXE_redist"))
}

/// Run and return the output; stdin closed unless given.
pub fn run(args: &[&std::ffi::OsStr], stdin: Option<Vec<u8>>) -> Output {
    let mut cmd = redist();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("spawn redist");
    if let Some(data) = stdin {
        use std::io::Write;
        let mut s = child.stdin.take().expect("stdin");
        std::thread::spawn(move || {
            let _ = s.write_all(&data);
        });
    }
    child.wait_with_output().expect("wait redist")
}

/// `redist unpack ARCHIVE --out OUT [extra…]`.
pub fn unpack(archive: &Path, out: &Path, extra: &[&str]) -> Output {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "unpack".as_ref(),
        archive.as_os_str(),
        "--out".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(|s| std::ffi::OsStr::new(*s)));
    run(&args, None)
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Assert success and return the JSON report.
pub fn ok_json(o: &Output) -> serde_json::Value {
    assert!(o.status.success(), "redist failed: {}", stderr(o));
    serde_json::from_slice(&o.stdout).expect("JSON report")
}

/// Build an expected tree from `(path, Found)` pairs.
pub fn tree(items: Vec<(&str, Found)>) -> BTreeMap<String, Found> {
    items.into_iter().map(|(p, f)| (p.to_owned(), f)).collect()
}

pub fn file(mode: u32, data: impl Into<Vec<u8>>) -> Found {
    Found::File(mode, data.into())
}

pub fn link(target: &str) -> Found {
    Found::Link(target.to_owned())
}

/// Compare trees and show the difference readably.
pub fn assert_tree(got: &BTreeMap<String, Found>, want: &BTreeMap<String, Found>) {
    let show = |m: &BTreeMap<String, Found>| -> Vec<String> {
        m.iter()
            .map(|(k, v)| match v {
                Found::File(mode, d) => format!("{k} file {mode:o} {} bytes", d.len()),
                Found::Link(t) => format!("{k} -> {t}"),
                Found::EmptyDir => format!("{k}/"),
            })
            .collect()
    };
    assert_eq!(show(got), show(want), "tree listing differs");
    assert_eq!(got, want, "file contents differ");
}

/// Files (not directories) under `dir`, recursively; 0 when absent.
pub fn count_files(dir: &Path) -> usize {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return 0;
    };
    rd.flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => count_files(&e.path()),
            _ => 1,
        })
        .sum()
}

/// Wait (up to 30 s) until `ready()`, send `signal` (a `kill -s` name) to
/// `child`, and collect its output.
pub fn interrupt_when(
    mut child: std::process::Child,
    ready: impl Fn() -> bool,
    signal: &str,
) -> Output {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !ready() {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("redist exited ({status}) before it was interrupted");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "redist never got to the point of interruption"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let killed = Command::new("kill")
        .args(["-s", signal, &child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(killed.success());
    child.wait_with_output().expect("wait for redist")
}
