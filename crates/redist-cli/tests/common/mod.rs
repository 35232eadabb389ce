//! A tiny harness: run the real `redist` binary in temporary directories.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use redist_fixtures::http::Server;
use redist_fixtures::mirror::{self, Component};
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

/// A mirror built at test time, served over 127.0.0.1, with a cache and a
/// prefix beside it.
pub struct Mirror {
    pub dir: Dir,
    pub server: Server,
    pub manifest: PathBuf,
}

impl Mirror {
    pub fn new(components: &[Component]) -> Mirror {
        let dir = Dir::new();
        let root = dir.join("mirror");
        let manifest = mirror::write(&root, "test", components);
        let server = Server::start(root);
        Mirror {
            dir,
            server,
            manifest,
        }
    }

    pub fn demo() -> Mirror {
        Mirror::new(&mirror::demo_components())
    }

    pub fn url(&self) -> String {
        self.server.url("redistrib_test.json")
    }

    pub fn cache(&self) -> PathBuf {
        self.dir.join("cache")
    }

    pub fn prefix(&self) -> PathBuf {
        self.dir.join("prefix")
    }

    /// `redist <cmd> --manifest URL --cache-dir CACHE --platform linux-x86_64 <args>`.
    pub fn run(&self, cmd: &str, args: &[&str]) -> std::process::Output {
        self.run_with_cache(&self.cache(), cmd, args)
    }

    /// [`Mirror::run`] with another cache directory.
    pub fn run_with_cache(&self, cache: &Path, cmd: &str, args: &[&str]) -> std::process::Output {
        let url = self.url();
        let mut all: Vec<&std::ffi::OsStr> = vec![
            cmd.as_ref(),
            "--manifest".as_ref(),
            url.as_ref(),
            "--cache-dir".as_ref(),
            cache.as_os_str(),
            "--platform".as_ref(),
            "linux-x86_64".as_ref(),
        ];
        all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
        run(&all, None)
    }

    pub fn install(&self, args: &[&str]) -> std::process::Output {
        let prefix = self.prefix();
        let mut all = vec!["--prefix", prefix.to_str().unwrap()];
        all.extend_from_slice(args);
        self.run("install", &all)
    }

    pub fn archive_path(&self, key: &str, version: &str) -> String {
        mirror::relative_path(key, version)
    }

    /// Replace a field of a component's platform entry in the manifest.
    pub fn tamper(&self, key: &str, field: &str, value: serde_json::Value) {
        let mut m: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&self.manifest).unwrap()).unwrap();
        m[key]["linux-x86_64"][field] = value;
        std::fs::write(&self.manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    }

    /// Cache entries (and partial files) present.
    pub fn cache_files(&self) -> Vec<String> {
        let dir = self.cache().join("sha256");
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .map(|r| {
                r.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }
}

/// Run the fixture program `app` (what `redist_fixtures::linked` builds)
/// without LD_LIBRARY_PATH: it must find its libraries through RUNPATH and
/// print its greeting.
pub fn runs_app(app: &Path) {
    let o = Command::new(app)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", app.display()));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "app says 42\n",
        "{} printed to stderr:\n{}",
        app.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

/// A small tmpfs (`size` as mount takes it: `64k`) mounted for the test
/// (root only), unmounted on drop.
pub struct SmallFs(pub std::path::PathBuf);

impl SmallFs {
    pub fn mount(at: std::path::PathBuf, size: &str) -> Option<SmallFs> {
        std::fs::create_dir_all(&at).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallFs(at))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}
