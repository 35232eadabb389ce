//! Killed and starved runs of `redist unpack` and `redist nix-builder`
//! (installs have theirs in `install.rs`): SIGKILL at points spread over a
//! whole run, and a disk that fills up.
//!
//! After a kill the output is absent or complete, never half-made, and the
//! next run succeeds and removes what the killed one left. A full disk is
//! a clear error, and nothing the run made remains.

mod common;

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use redist_fixtures::mirror::Component;
use redist_fixtures::{cudart_like, redist_archive};

/// An archive that takes a while to unpack: 3 000 small files in `lib/`
/// and `include/`, 6 MiB of incompressible data, ELF files to patch.
fn slow_archive(d: &Dir) -> PathBuf {
    let e = elves();
    let mut items = vec![
        Item::exe("bin/hello", e.exe.clone()),
        Item::file("lib/libdemo.so.1.0", e.lib.clone()),
        Item::link("lib/libdemo.so.1", "libdemo.so.1.0"),
    ];
    for i in 0..1500 {
        items.push(Item::file(
            &format!("include/h{i}.h"),
            format!("#define H{i} {i}\n"),
        ));
        items.push(Item::file(&format!("lib/data{i}.bin"), vec![i as u8; 200]));
    }
    items.push(Item::file("lib/noise.bin", noise(6 << 20)));
    d.archive(&redist_archive("slow", "1.0", items), Compression::Xz)
}

/// `len` bytes xz cannot shrink.
fn noise(len: usize) -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Names beside `out` that a run of redist left (staging directories).
fn staging_beside(out: &Path) -> Vec<String> {
    std::fs::read_dir(out.parent().unwrap())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".redist-"))
        .collect()
}

/// One whole run of `spawn()`'s process, which must succeed; how long it
/// took (machines differ: kills are spread over this).
fn timed(spawn: &dyn Fn() -> std::process::Child) -> Duration {
    let started = Instant::now();
    let o = spawn().wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    started.elapsed()
}

/// Kill `spawn()`'s process at `runs` points spread over `span`; `check`
/// looks at what is left after each. Returns how many died mid-way.
fn kill_spread(
    runs: u64,
    span: Duration,
    spawn: &dyn Fn() -> std::process::Child,
    check: &mut dyn FnMut(u64),
) -> usize {
    let span = span.as_millis().max(20) as u64;
    let mut killed = 0;
    for i in 0..runs {
        let mut child = spawn();
        std::thread::sleep(Duration::from_millis(1 + i * span / runs));
        let _ = child.kill();
        let status = child.wait().unwrap();
        killed += usize::from(status.signal() == Some(9));
        check(i);
    }
    killed
}

#[test]
fn sigkill_during_unpack_leaves_no_output_or_the_whole_tree() {
    let d = Dir::new();
    let archive = slow_archive(&d);
    let out = d.join("out");
    let spawn = || {
        redist()
            .args(["unpack", "-q"])
            .arg(&archive)
            .arg("--out")
            .arg(&out)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    // The reference: whole runs, timed; the faster of two, so that a run
    // slowed by a busy machine does not spread the kills past the end of
    // later, quicker runs.
    let span = timed(&spawn);
    std::fs::remove_dir_all(&out).unwrap();
    let span = span.min(timed(&spawn));
    let whole = snapshot(&out);
    assert!(whole.len() > 3000, "{}", whole.len());
    std::fs::remove_dir_all(&out).unwrap();
    let killed = kill_spread(15, span, &spawn, &mut |i| {
        if out.exists() {
            assert!(snapshot(&out) == whole, "run {i}: a half-made output");
            std::fs::remove_dir_all(&out).unwrap();
        }
    });
    assert!(killed >= 4, "only {killed} of 15 runs were killed mid-way");
    // The next run succeeds and removes the killed runs' staging copies.
    let o = unpack(&archive, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(snapshot(&out) == whole);
    assert_eq!(staging_beside(&out), Vec::<String>::new());
}

/// A Nix build's environment for `redist nix-builder`: outputs under
/// `store`, the build directory `top`.
fn nix_env(cmd: &mut Command, src: &Path, store: &Path, top: &Path) {
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("src", src)
        .env("outputs", "out bin lib")
        .env("NIX_BUILD_TOP", top)
        .env("NIX_BUILD_CORES", "2");
    for o in ["out", "bin", "lib"] {
        cmd.env(o, store.join(format!("x-slow-1.0-{o}")));
    }
}

fn outputs_of(store: &Path) -> BTreeMap<String, BTreeMap<String, Found>> {
    std::fs::read_dir(store)
        .unwrap()
        .flatten()
        .map(|e| {
            (
                e.file_name().to_string_lossy().into_owned(),
                snapshot(&e.path()),
            )
        })
        .collect()
}

#[test]
fn sigkill_during_nix_builder_leaves_each_output_absent_or_whole() {
    let d = Dir::new();
    let archive = slow_archive(&d);
    let (store, top) = (d.join("store"), d.join("build"));
    let spawn = || {
        std::fs::create_dir_all(&store).unwrap();
        std::fs::create_dir_all(&top).unwrap();
        let mut cmd = redist();
        cmd.arg("nix-builder");
        nix_env(&mut cmd, &archive, &store, &top);
        cmd.stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let span = timed(&spawn);
    let whole = outputs_of(&store);
    assert_eq!(whole.len(), 3, "{:?}", whole.keys());
    // Nix removes a failed build's outputs and build directory; so does
    // this loop, after checking them.
    let reset = || {
        std::fs::remove_dir_all(&store).unwrap();
        std::fs::remove_dir_all(&top).unwrap();
    };
    reset();
    let killed = kill_spread(15, span, &spawn, &mut |i| {
        for (name, tree) in outputs_of(&store) {
            assert!(
                whole.get(&name) == Some(&tree),
                "run {i}: output {name} half-made"
            );
        }
        reset();
    });
    assert!(killed >= 4, "only {killed} of 15 runs were killed mid-way");
    let o = spawn().wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(outputs_of(&store) == whole);
}

#[test]
fn a_full_disk_fails_an_install_and_keeps_the_old_prefix() {
    let big = redist_archive(
        "cuda_big",
        "1.0",
        vec![Item::file("lib/libbig.so.1", noise(1 << 20))],
    );
    let m = Mirror::new(&[
        Component::new("cuda_cudart", "12.9.79", cudart_like()),
        Component::new("cuda_big", "1.0", big),
    ]);
    // How much the first component takes, then a disk with a little more.
    assert!(m.install(&["cuda_cudart"]).status.success());
    let used = du(&m.prefix());
    std::fs::remove_dir_all(m.prefix()).unwrap();
    let Some(fs) = SmallFs::mount(m.prefix(), &format!("{}k", used / 1024 + 96)) else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    // The prefix is the mount point itself: install into a directory on it.
    let prefix = fs.0.join("cuda");
    let install = |c: &str| {
        let mut cmd = redist();
        cmd.args([
            "install",
            "--manifest",
            &m.url(),
            "--platform",
            "linux-x86_64",
        ])
        .arg("--cache-dir")
        .arg(m.cache())
        .arg("--prefix")
        .arg(&prefix)
        .arg(c);
        cmd.output().unwrap()
    };
    let o = install("cuda_cudart");
    assert!(o.status.success(), "{}", stderr(&o));
    let before = snapshot(&prefix);
    let o = install("cuda_big");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("No space left on device"),
        "{}",
        stderr(&o)
    );
    assert!(snapshot(&prefix) == before, "the prefix changed");
    let left: Vec<String> = std::fs::read_dir(&fs.0)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n != "cuda" && n != ".cuda.redist-lock")
        .collect();
    assert!(left.is_empty(), "left on the full disk: {left:?}");
}

#[test]
fn a_full_disk_fails_nix_builder_and_leaves_no_output() {
    let d = Dir::new();
    let archive = slow_archive(&d);
    // The build directory has room; the store does not (a copy across
    // filesystems that fails half-way), and then both are short.
    let Some(store) = SmallFs::mount(d.join("store"), "1m") else {
        eprintln!("SKIPPED: cannot mount a tmpfs here (not root?)");
        return;
    };
    for top in [d.join("build"), store.0.join("build")] {
        std::fs::create_dir_all(&top).unwrap();
        let mut cmd = redist();
        cmd.arg("nix-builder");
        nix_env(&mut cmd, &archive, &store.0, &top);
        let o = cmd.output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("No space left on device"),
            "{}",
            stderr(&o)
        );
        let outputs: Vec<String> = std::fs::read_dir(&store.0)
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("x-slow"))
            .collect();
        assert!(outputs.is_empty(), "outputs left: {outputs:?}");
        let _ = std::fs::remove_dir_all(&top);
    }
}

/// Bytes of the files under `dir` (as a tmpfs counts them: whole pages).
fn du(dir: &Path) -> u64 {
    let o = Command::new("du").arg("-sb").arg(dir).output().unwrap();
    String::from_utf8_lossy(&o.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .parse()
        .unwrap()
}
