//! `redist install`, `fetch`, `list`, `features` against a real HTTP server on
//! 127.0.0.1 serving a mirror built at test time, with real faults.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use redist_fixtures::http::Fault;
use redist_fixtures::mirror::Component;

fn fails_with(o: &std::process::Output, needles: &[&str]) {
    let err = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected failure:\n{err}");
    for n in needles {
        assert!(err.contains(n), "expected {n:?} in:\n{err}");
    }
}

fn tree_of(p: &Path) -> std::collections::BTreeMap<String, Found> {
    snapshot(p)
}

#[test]
fn installs_two_components_merged() {
    let m = Mirror::demo();
    let o = m.install(&["cuda_cudart", "cuda_nvcc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let p = m.prefix();
    let got = tree_of(&p);
    for path in [
        "bin/nvcc",
        "bin/ptxas",
        "lib/libcudart.so.12.9.79",
        "lib/libcudart_static.a",
        "lib/stubs/libcuda.so",
        "include/cuda_runtime.h",
        "include/crt/host_config.h",
        "nvvm/lib64/libnvvm.so.4.0.0",
        "share/doc/cuda_cudart/LICENSE",
        "share/doc/cuda_nvcc/LICENSE",
        "share/pkgconfig/cudart-12.9.pc",
        ".redist/installed.json",
    ] {
        assert!(
            got.contains_key(path),
            "missing {path} in {:?}",
            got.keys().collect::<Vec<_>>()
        );
    }
    assert_eq!(got["lib/libcudart.so"], link("libcudart.so.12"));
    assert_eq!(got["share/pkgconfig/cudart.pc"], link("cudart-12.9.pc"));
    let pc = std::fs::read_to_string(p.join("share/pkgconfig/cudart-12.9.pc")).unwrap();
    assert!(pc.starts_with("cudaroot=${pcfiledir}/../..\nlibdir=${pcfiledir}/../../lib\nincludedir=${pcfiledir}/../../include\n"), "{pc}");
    let run = std::process::Command::new(p.join("bin/nvcc"))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&run.stdout),
        "hello from a redist fixture\n"
    );
    // Nothing left beside the prefix but its lock file.
    let lock = m.dir.join(".prefix.redist-lock");
    assert_eq!(
        m.dir
            .leftovers(&[&m.dir.join("mirror"), &m.cache(), &p, &lock]),
        Vec::<String>::new()
    );
}

#[test]
fn installs_split_per_component_and_output() {
    let m = Mirror::demo();
    let o = m.install(&["cuda_cudart", "cuda_cupti", "--layout", "split", "--json"]);
    let report = ok_json(&o);
    assert_eq!(report["layout"], "split");
    let p = m.prefix();
    assert_eq!(
        std::fs::read_link(p.join("cuda_cudart/lib/lib/libcudart.so.12")).unwrap(),
        Path::new("libcudart.so.12.9.79")
    );
    assert!(
        p.join("cuda_cupti/lib/lib/libcupti.so.12.8.90").is_file(),
        "lib64 merged into lib"
    );
    assert!(p.join("cuda_cupti/static/lib/libcupti_static.a").is_file());
    let pc =
        std::fs::read_to_string(p.join("cuda_cudart/dev/share/pkgconfig/cudart-12.9.pc")).unwrap();
    assert!(
        pc.contains("libdir=${pcfiledir}/../../../lib/lib\n"),
        "{pc}"
    );
    // Mixing layouts in one prefix is refused.
    fails_with(
        &m.install(&["cuda_nvcc"]),
        &["installed with --layout split"],
    );
}

#[test]
fn second_install_is_a_no_op_and_adding_a_component_works() {
    let m = Mirror::demo();
    assert!(m.install(&["cuda_cudart"]).status.success());
    let before = tree_of(&m.prefix());
    let requests = m.server.total_requests();
    let o = m.install(&["cuda_cudart"]);
    assert!(stdout(&o).contains("nothing to do"), "{}", stdout(&o));
    assert_eq!(
        m.server.total_requests(),
        requests + 1,
        "only the manifest was fetched"
    );
    assert_eq!(tree_of(&m.prefix()), before);
    let o = m.install(&["cuda_cudart", "cuda_nvcc", "--json"]);
    let report = ok_json(&o);
    assert_eq!(
        report["components"][0]["origin"],
        serde_json::Value::Null,
        "cudart was already there"
    );
    assert_eq!(report["components"][1]["origin"], "download");
    let after = tree_of(&m.prefix());
    for (k, v) in before.iter().filter(|(k, _)| !k.starts_with(".redist")) {
        assert_eq!(after.get(k), Some(v), "{k} kept");
    }
    assert!(after.contains_key("bin/ptxas"));
}

#[test]
fn cache_is_reused_and_offline_works() {
    let m = Mirror::demo();
    assert!(m.install(&["cuda_cudart"]).status.success());
    let rel = m.archive_path("cuda_cudart", "12.9.79");
    assert_eq!(m.server.requests(&rel), 1);
    std::fs::remove_dir_all(m.prefix()).unwrap();
    // (Not from the store of unpacked trees: this is about the archives.)
    let report = ok_json(&m.install(&["cuda_cudart", "--offline", "--json", "--no-store"]));
    assert_eq!(report["components"][0]["origin"], "cache");
    assert_eq!(m.server.requests(&rel), 1, "no second download");
    assert!(m.prefix().join("lib/libcudart.so.12.9.79").is_file());
    let o = m.install(&["cuda_nvcc", "--offline"]);
    fails_with(
        &o,
        &[
            "failed to install cuda_nvcc 12.9.86",
            "cuda_nvcc 12.9.86 is not in the cache",
            "--offline forbids downloading it",
        ],
    );
}

#[test]
fn wrong_sha256_fails_and_leaves_nothing() {
    let m = Mirror::demo();
    m.tamper("cuda_nvcc", "sha256", "0".repeat(64).into());
    fails_with(
        &m.install(&["cuda_cudart", "cuda_nvcc"]),
        &[
            "failed to install cuda_nvcc 12.9.86",
            "sha256 mismatch: the manifest says 0000",
        ],
    );
    // The error says what was asked.
    fails_with(
        &m.run("fetch", &["cuda_nvcc"]),
        &["failed to fetch cuda_nvcc 12.9.86", "sha256 mismatch"],
    );
    fails_with(
        &m.run("features", &["cuda_nvcc"]),
        &["failed to read cuda_nvcc 12.9.86", "sha256 mismatch"],
    );
    assert!(!m.prefix().exists(), "prefix not created");
    let cached = m.cache_files();
    assert!(
        cached.iter().all(|f| !f.starts_with('.')),
        "no partial files: {cached:?}"
    );
    assert!(
        !cached.contains(&"0".repeat(64)),
        "the bad archive is not cached"
    );
}

#[test]
fn wrong_size_fails() {
    let m = Mirror::demo();
    m.tamper("cuda_cudart", "size", "100".into());
    fails_with(
        &m.install(&["cuda_cudart"]),
        &[
            "failed to install cuda_cudart 12.9.79",
            "size mismatch: the manifest says 100 bytes, the archive has more",
        ],
    );
    assert!(!m.prefix().exists());
}

#[test]
fn not_found_names_the_url() {
    let m = Mirror::demo();
    let rel = m.archive_path("cuda_nvcc", "12.9.86");
    m.server.fault(&rel, Some(Fault::NotFound));
    fails_with(
        &m.install(&["cuda_nvcc"]),
        &[
            "failed to install cuda_nvcc 12.9.86",
            &format!("cannot download {}: HTTP 404", m.server.url(&rel)),
        ],
    );
    assert!(!m.prefix().exists());
}

#[test]
fn connection_closed_mid_stream_leaves_prefix_and_cache_intact() {
    let m = Mirror::demo();
    assert!(m.install(&["cuda_cudart"]).status.success());
    let before = tree_of(&m.prefix());
    let cache_before = m.cache_files();
    let rel = m.archive_path("cuda_nvcc", "12.9.86");
    m.server.fault(&rel, Some(Fault::CloseAfter(2000)));
    let o = m.install(&["cuda_nvcc"]);
    fails_with(
        &o,
        &["failed to install cuda_nvcc 12.9.86", &m.server.url(&rel)],
    );
    assert_eq!(tree_of(&m.prefix()), before, "prefix unchanged");
    assert_eq!(m.cache_files(), cache_before, "cache not poisoned");
    // The next attempt, with the server healthy, works.
    m.server.fault(&rel, None);
    assert!(m.install(&["cuda_nvcc"]).status.success());
    assert!(m.prefix().join("bin/ptxas").is_file());
}

#[test]
fn slow_server_still_completes() {
    let m = Mirror::demo();
    let rel = m.archive_path("cuda_nvcc", "12.9.86");
    m.server
        .fault(&rel, Some(Fault::Slow(Duration::from_millis(30))));
    let o = m.install(&["cuda_nvcc", "--timeout", "5"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(m.prefix().join("bin/ptxas").is_file());
}

#[test]
fn stalled_server_times_out() {
    let m = Mirror::demo();
    let rel = m.archive_path("cuda_nvcc", "12.9.86");
    m.server.fault(&rel, Some(Fault::Stall));
    let started = std::time::Instant::now();
    let o = m.install(&["cuda_nvcc", "--timeout", "1"]);
    fails_with(
        &o,
        &[
            "failed to install cuda_nvcc 12.9.86",
            "cannot download",
            "timed out",
        ],
    );
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(!m.prefix().exists());
}

/// SIGTERM while a download stalls, over an existing prefix: the prefix is
/// as it was, and neither the staging prefix nor the partial cache entry is
/// left behind.
#[test]
fn terminated_install_leaves_prefix_and_cache_as_they_were() {
    use std::os::unix::process::ExitStatusExt;
    let m = Mirror::demo();
    assert!(m.install(&["cuda_cudart"]).status.success());
    let (before, cache_before) = (tree_of(&m.prefix()), m.cache_files());
    let rel = m.archive_path("cuda_nvcc", "12.9.86");
    m.server.fault(&rel, Some(Fault::Stall));
    let (url, cache, prefix) = (m.url(), m.cache(), m.prefix());
    let child = redist()
        .args([
            "install",
            "--manifest",
            &url,
            "--platform",
            "linux-x86_64",
            "--cache-dir",
        ])
        .arg(&cache)
        .arg("--prefix")
        .arg(&prefix)
        .arg("cuda_nvcc")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let downloading = || m.cache_files().iter().any(|f| f.contains(".partial-"));
    let o = interrupt_when(child, downloading, "TERM");
    assert_eq!(o.status.signal(), Some(15), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("interrupted by SIGTERM"),
        "{}",
        stderr(&o)
    );
    assert_eq!(tree_of(&m.prefix()), before, "prefix unchanged");
    assert_eq!(m.cache_files(), cache_before, "no partial cache entry");
    let beside: Vec<String> = std::fs::read_dir(m.dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("redist-") && !n.ends_with(".redist-lock"))
        .collect();
    assert_eq!(beside, Vec::<String>::new(), "no staging prefix left");
}

#[test]
fn truncated_or_corrupt_cache_entries_are_replaced() {
    let m = Mirror::demo();
    assert!(m.install(&["cuda_cudart"]).status.success());
    let rel = m.archive_path("cuda_cudart", "12.9.79");
    let entry = m.cache().join("sha256").join(&m.cache_files()[0]);
    // Truncated: noticed by size, downloaded again.
    let data = std::fs::read(&entry).unwrap();
    std::fs::write(&entry, &data[..data.len() / 2]).unwrap();
    std::fs::remove_dir_all(m.prefix()).unwrap();
    let report = ok_json(&m.install(&["cuda_cudart", "--json", "--no-store"]));
    assert_eq!(report["components"][0]["origin"], "download");
    assert_eq!(m.server.requests(&rel), 2);
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        data,
        "entry replaced by the verified archive"
    );
    // Same size, one byte flipped: caught by the sha256 while streaming,
    // evicted, downloaded again.
    let mut bad = data.clone();
    let mid = bad.len() / 2;
    bad[mid] ^= 1;
    std::fs::write(&entry, &bad).unwrap();
    std::fs::remove_dir_all(m.prefix()).unwrap();
    let report = ok_json(&m.install(&["cuda_cudart", "--json", "--no-store"]));
    assert_eq!(report["components"][0]["origin"], "download");
    assert_eq!(m.server.requests(&rel), 3);
    assert_eq!(std::fs::read(&entry).unwrap(), data);
    // Offline with a corrupt entry: a clear error, and the entry is gone.
    std::fs::write(&entry, &bad).unwrap();
    std::fs::remove_dir_all(m.prefix()).unwrap();
    fails_with(
        &m.install(&["cuda_cudart", "--offline", "--no-store"]),
        &["the cached copy was corrupt and is now removed; run without --offline"],
    );
    assert!(!entry.exists());
    assert!(!m.prefix().exists());
}

#[test]
fn conflicting_files_between_components_are_refused() {
    let clash = |content: &str| {
        redist_fixtures::redist_archive(
            "x",
            "1",
            vec![redist_fixtures::Item::file("include/common.h", content)],
        )
    };
    let m = Mirror::new(&[
        Component::new("comp_a", "1", clash("a\n")),
        Component::new("comp_b", "1", clash("b\n")),
    ]);
    assert!(m.install(&["comp_a"]).status.success());
    let before = tree_of(&m.prefix());
    fails_with(
        &m.install(&["comp_b"]),
        &["comp_b 1: include/common.h is also installed by comp_a, with different content"],
    );
    assert_eq!(tree_of(&m.prefix()), before);
}

#[test]
fn only_keeps_just_the_asked_paths() {
    let m = Mirror::demo();
    let o = m.install(&["cuda_nvcc", "--only", "bin/ptxas"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let keys: Vec<String> = tree_of(&m.prefix())
        .into_keys()
        .filter(|k| !k.starts_with(".redist"))
        .collect();
    assert_eq!(keys, ["bin/ptxas"]);
    let run = std::process::Command::new(m.prefix().join("bin/ptxas"))
        .output()
        .unwrap();
    assert!(run.status.success());
}

#[test]
fn manifest_from_a_file_url_and_mirror_dir() {
    let m = Mirror::demo();
    let prefix = m.prefix();
    let url = format!("file://{}", m.manifest.display());
    let o = run(
        &[
            "install".as_ref(),
            "--manifest".as_ref(),
            url.as_ref(),
            "--cache-dir".as_ref(),
            m.cache().as_os_str(),
            "--platform".as_ref(),
            "linux-x86_64".as_ref(),
            "--prefix".as_ref(),
            prefix.as_os_str(),
            "cuda_cudart".as_ref(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(m.server.total_requests(), 0);
    assert!(prefix.join("lib/libcudart.so.12.9.79").is_file());
    assert!(
        stderr(&o).contains("cuda_cudart 12.9.79: unpacking from the mirror directory"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn unknown_component_lists_the_choices() {
    let m = Mirror::demo();
    fails_with(
        &m.install(&["cuda_nope"]),
        &["has no component `cuda_nope`; it has: cuda_cudart, cuda_cupti, cuda_nvcc"],
    );
}

#[test]
fn fetch_verifies_into_the_cache_and_out_dir() {
    let m = Mirror::demo();
    let out = m.dir.join("archives");
    let o = m.run(
        "fetch",
        &[
            "cuda_cudart",
            "cuda_nvcc",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    let rows = ok_json(&o);
    assert_eq!(rows.as_array().unwrap().len(), 2);
    let name = "cuda_cudart-linux-x86_64-12.9.79-archive.tar.xz";
    let fetched = std::fs::read(out.join(name)).unwrap();
    assert_eq!(
        fetched,
        std::fs::read(
            m.dir
                .join("mirror")
                .join(m.archive_path("cuda_cudart", "12.9.79"))
        )
        .unwrap()
    );
    assert_eq!(m.cache_files().len(), 2);
    // A bad checksum leaves no file in --out.
    m.tamper("cuda_cupti", "sha256", "1".repeat(64).into());
    fails_with(
        &m.run("fetch", &["cuda_cupti", "--out", out.to_str().unwrap()]),
        &["sha256 mismatch"],
    );
    assert!(!out
        .join("cuda_cupti-linux-x86_64-12.8.90-archive.tar.xz")
        .exists());
    assert!(!std::fs::read_dir(&out)
        .unwrap()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().contains("partial")));
}

#[test]
fn features_lists_outputs_from_headers() {
    let m = Mirror::demo();
    let o = m.run("features", &[]);
    let f = ok_json(&o);
    let outputs = |k: &str| {
        f[k]["outputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        outputs("cuda_cudart"),
        ["dev", "doc", "include", "lib", "static", "stubs"]
    );
    assert_eq!(outputs("cuda_nvcc"), ["bin", "doc", "include", "out"]);
    assert_eq!(outputs("cuda_cupti"), ["include", "lib", "static"]);
}

#[test]
fn list_shows_components_and_refuses_windows_zips() {
    let dir = Dir::new();
    let manifest = dir.join("redistrib_x.json");
    std::fs::write(
        &manifest,
        format!(
            r#"{{"release_label": "9.0", "release_product": "cudnn",
               "cudnn": {{"version": "9.0.1", "cuda_variant": ["12", "13"],
                 "linux-x86_64": {{"cuda12": {{"relative_path": "a12.tar.xz", "sha256": "{a}", "size": "1048576"}},
                                   "cuda13": {{"relative_path": "a13.tar.xz", "sha256": "{a}", "size": "2097152"}}}},
                 "windows-x86_64": {{"relative_path": "w.zip", "sha256": "{a}", "size": "10"}}}}}}"#,
            a = "a".repeat(64)
        ),
    )
    .unwrap();
    let o = run(
        &[
            "list".as_ref(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
            "--platform".as_ref(),
            "linux-x86_64".as_ref(),
        ],
        None,
    );
    let text = stdout(&o);
    assert!(
        text.contains("cudnn                        9.0.1"),
        "{text}"
    );
    assert!(
        text.contains("variants: cuda12 (1.0 MiB), cuda13 (2.0 MiB)"),
        "{text}"
    );
    let o = run(
        &[
            "list".as_ref(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
            "--platform".as_ref(),
            "windows-x86_64".as_ref(),
            "--json".as_ref(),
        ],
        None,
    );
    let j = ok_json(&o);
    assert_eq!(j["components"][0]["installable"], false);
    let prefix = dir.join("p");
    let o = run(
        &[
            "install".as_ref(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
            "--platform".as_ref(),
            "linux-x86_64".as_ref(),
            "--prefix".as_ref(),
            prefix.as_os_str(),
            "cudnn".as_ref(),
        ],
        None,
    );
    fails_with(&o, &["cudnn 9.0.1 comes in several CUDA variants; choose one with --variant (cuda12, cuda13)"]);
    let o = run(
        &[
            "install".as_ref(),
            "--manifest".as_ref(),
            manifest.as_os_str(),
            "--platform".as_ref(),
            "windows-x86_64".as_ref(),
            "--prefix".as_ref(),
            prefix.as_os_str(),
            "cudnn".as_ref(),
        ],
        None,
    );
    fails_with(
        &o,
        &["is a Windows .zip archive (w.zip); redist installs Linux tarballs only"],
    );
}

/// `comp_app` has bin/app; `comp_lib` has the libraries it needs.
fn app_and_libs() -> Mirror {
    Mirror::new(&[
        redist_fixtures::mirror::app_component(),
        redist_fixtures::mirror::libs_component("comp_lib"),
    ])
}

#[test]
fn merged_install_links_programs_to_other_components_libraries() {
    let m = app_and_libs();
    let report = ok_json(&m.install(&["comp_app", "comp_lib", "--json"]));
    let p = m.prefix();
    assert_eq!(
        elfpatch::read(&p.join("bin/app"))
            .unwrap()
            .runpath
            .as_deref(),
        Some("$ORIGIN/../lib")
    );
    assert_eq!(report["autopatch"]["files"].as_array().unwrap().len(), 3);
    // Relocatable: move the prefix and run.
    let moved = m.dir.join("moved");
    std::fs::rename(&p, &moved).unwrap();
    runs_app(&moved.join("bin/app"));
}

#[test]
fn split_install_links_across_component_directories() {
    let m = app_and_libs();
    ok_json(&m.install(&["comp_app", "comp_lib", "--layout", "split", "--json"]));
    let app = m.prefix().join("comp_app/bin/bin/app");
    assert_eq!(
        elfpatch::read(&app).unwrap().runpath.as_deref(),
        Some("$ORIGIN/../../../comp_lib/lib/lib")
    );
    runs_app(&app);
}

#[test]
fn only_keeps_the_paths_and_what_they_need() {
    let m = app_and_libs();
    let o = m.install(&["comp_app", "comp_lib", "--only", "bin/app"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let keys: Vec<String> = tree_of(&m.prefix())
        .into_keys()
        .filter(|k| !k.starts_with(".redist"))
        .collect();
    assert_eq!(
        keys,
        [
            "bin/app",
            "lib/libdep.so.1",
            "lib/libuser.so.1",
            "lib/libuser.so.1.0",
            "lib64",
            "targets/x86_64-linux/lib"
        ]
    );
    runs_app(&m.prefix().join("bin/app"));
}

#[test]
fn a_missing_dependency_directory_stops_the_install_before_any_download() {
    let m = Mirror::demo();
    let rel = m.archive_path("cuda_cudart", "12.9.79");
    let o = m.install(&["cuda_cudart", "--dep", "/nonexistent/redist-dep"]);
    fails_with(
        &o,
        &["dependency directory /nonexistent/redist-dep does not exist"],
    );
    assert_eq!(m.server.requests(&rel), 0, "nothing downloaded");
    assert!(!m.prefix().exists());
}

/// `redist install … --prefix P ARGS` started in the background.
fn spawn_install(m: &Mirror, args: &[&str]) -> std::process::Child {
    let url = m.url();
    let (cache, prefix) = (m.cache(), m.prefix());
    redist()
        .args(["install", "--manifest", &url, "--platform", "linux-x86_64"])
        .arg("--cache-dir")
        .arg(&cache)
        .arg("--prefix")
        .arg(&prefix)
        .args(args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn redist install")
}

/// Waits until the server has seen a request for `rel` (the first install
/// holds the prefix's lock by then).
fn wait_for_request(m: &Mirror, rel: &str) {
    for _ in 0..500 {
        if m.server.requests(rel) > 0 {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("no request for {rel}");
}

/// An install of `cuda_nvcc` over a slowed download, started in the
/// background and holding the prefix's lock by the time this returns.
fn install_holding_the_prefix(m: &Mirror) -> std::process::Child {
    let rel = m.archive_path("cuda_nvcc", "12.9.86");
    m.server
        .fault(&rel, Some(Fault::Slow(Duration::from_millis(40))));
    let first = spawn_install(m, &["cuda_nvcc"]);
    wait_for_request(m, &rel);
    first
}

#[test]
fn concurrent_installs_into_one_prefix_take_turns_and_lose_nothing() {
    let m = Mirror::demo();
    let first = install_holding_the_prefix(&m);
    // The second one waits for the first, then adds to what it installed.
    let second = m.install(&["cuda_cudart", "cuda_cupti"]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert!(
        stderr(&second).contains("waiting for another redist install into"),
        "{}",
        stderr(&second)
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    for f in ["bin/ptxas", "lib/libcudart.so.12.9.79"] {
        assert!(m.prefix().join(f).exists(), "{f} lost");
    }
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(m.prefix().join(".redist/installed.json")).unwrap())
            .unwrap();
    let keys: Vec<&str> = state["components"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["cuda_cudart", "cuda_cupti", "cuda_nvcc"]);
}

#[test]
fn no_wait_fails_while_another_install_holds_the_prefix() {
    let m = Mirror::demo();
    let first = install_holding_the_prefix(&m);
    let o = m.install(&["cuda_cudart", "--no-wait"]);
    fails_with(
        &o,
        &[
            "another redist install into",
            &format!("is running (pid {})", first.id()),
            "not waiting (--no-wait)",
        ],
    );
    let first = first.wait_with_output().unwrap();
    assert!(first.status.success(), "{}", stderr(&first));
    assert!(!m.prefix().join("lib/libcudart.so.12.9.79").exists());
}

#[test]
fn leftovers_of_killed_installs_are_swept_and_said() {
    let m = Mirror::demo();
    assert!(m.install(&["cuda_cudart"]).status.success());
    // What a SIGKILLed run leaves: a staging copy beside the prefix and a
    // partial download in the cache (pid 4194304 is above Linux's pid_max).
    let parent = m.prefix().parent().unwrap().to_owned();
    let staging = parent.join(".prefix.redist-staging-4194304-0");
    std::fs::create_dir_all(staging.join("lib")).unwrap();
    std::fs::write(staging.join("lib/big"), vec![7u8; 1 << 20]).unwrap();
    let partial = m.cache().join("sha256/.abc.partial-4194304-3");
    std::fs::write(&partial, vec![1u8; 1 << 20]).unwrap();
    // A running download's partial file is not touched.
    let live = m
        .cache()
        .join(format!("sha256/.abd.partial-{}-0", std::process::id()));
    std::fs::write(&live, "x").unwrap();
    let o = m.install(&["cuda_cupti"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o)
            .contains("removed what killed runs left behind: 4 files and directories, 2.0 MiB"),
        "{}",
        stderr(&o)
    );
    assert!(!staging.exists() && !partial.exists() && live.exists());
    // `redist cache prune` says when there is nothing (left) to do.
    std::fs::write(&partial, "y").unwrap();
    let cache = m.cache();
    let o = run(
        &[
            "cache".as_ref(),
            "prune".as_ref(),
            "--cache-dir".as_ref(),
            cache.as_os_str(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("removed what killed runs left behind: 1 files and directories (1 B)"),
        "{}",
        stdout(&o)
    );
    let o = run(
        &[
            "cache".as_ref(),
            "prune".as_ref(),
            "--cache-dir".as_ref(),
            cache.as_os_str(),
        ],
        None,
    );
    assert!(
        stdout(&o).contains(
            "nothing to remove (2 store entries in use, none left behind by killed runs)"
        ),
        "{}",
        stdout(&o)
    );
}

/// Every complete cache entry is named by the sha256 of its bytes.
fn assert_cache_verified(m: &Mirror) {
    use sha2::Digest;
    for name in m.cache_files() {
        if name.starts_with('.') {
            continue; // a partial download, not an entry
        }
        let data = std::fs::read(m.cache().join("sha256").join(&name)).unwrap();
        let sum: String = sha2::Sha256::digest(&data)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(sum, name, "an unverified archive in the cache");
    }
}

#[test]
fn sigkill_at_any_point_leaves_the_old_prefix_or_the_new_one() {
    use std::os::unix::process::ExitStatusExt;
    let m = Mirror::demo();
    assert!(m.install(&["cuda_cudart"]).status.success());
    let old = tree_of(&m.prefix());
    let rel = m.archive_path("cuda_nvcc", "12.9.86");
    m.server
        .fault(&rel, Some(Fault::Slow(Duration::from_millis(25))));
    // How long a whole install takes here (machines differ): the kills are
    // spread over that time — download, decode, write and publish.
    let started = std::time::Instant::now();
    let full = spawn_install(&m, &["cuda_nvcc", "--no-cache"]);
    assert!(full.wait_with_output().unwrap().status.success());
    let span = started.elapsed().as_millis() as u64;
    std::fs::remove_dir_all(m.prefix()).unwrap();
    assert!(m.install(&["cuda_cudart"]).status.success());
    let mut killed = 0;
    for i in 0..20u64 {
        let mut child = spawn_install(&m, &["cuda_nvcc", "--no-cache"]);
        std::thread::sleep(Duration::from_millis(2 + i * span.max(20) / 20));
        let _ = child.kill();
        let status = child.wait().unwrap();
        killed += usize::from(status.signal() == Some(9));
        let now = tree_of(&m.prefix());
        let has_new = now.contains_key("bin/ptxas");
        if has_new {
            // The complete new prefix: the old one's files and all of nvcc's.
            for (k, v) in old.iter().filter(|(k, _)| !k.starts_with(".redist")) {
                assert_eq!(now.get(k), Some(v), "run {i}: {k} after a kill");
            }
            assert!(now.contains_key("bin/nvcc.profile"), "run {i}");
            // Back to the old one for the next round.
            std::fs::remove_dir_all(m.prefix()).unwrap();
            assert!(m.install(&["cuda_cudart"]).status.success());
        } else {
            assert_eq!(now, old, "run {i}: a half-made prefix after a kill");
        }
        assert_cache_verified(&m);
    }
    assert!(killed >= 5, "only {killed} of 20 runs were killed mid-way");
    // A re-run succeeds and clears what the killed runs left.
    let o = m.install(&["cuda_nvcc"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(m.prefix().join("bin/ptxas").is_file());
    let parent = m.prefix().parent().unwrap().to_owned();
    let leftovers: Vec<String> = std::fs::read_dir(&parent)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("redist-staging") || n.contains("relocating"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(
        !m.cache_files().iter().any(|n| n.contains(".partial-")),
        "{:?}",
        m.cache_files()
    );
    assert_cache_verified(&m);
}
