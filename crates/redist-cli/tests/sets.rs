//! `redist list` and `redist install` over a set of products served on
//! 127.0.0.1: a cuda manifest (CUDA 13.0.2: `libdep`, `libplugin`) and an add-on
//! product (`addon`, built for cuda12 and cuda13; its library needs
//! `libdep.so.1` from the cuda product). Selection on NVIDIA's real
//! manifests is tested in `crates/redist/tests/sets.rs`.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use redist_fixtures::http::Server;
use redist_fixtures::mirror::{self, Component};
use redist_fixtures::{linked, redist_archive};
use sha2::Digest;

struct Set {
    dir: Dir,
    server: Server,
}

/// An archive's bytes, written under the mirror at `rel`, and its manifest
/// entry.
fn entry(root: &Path, rel: &str, archive: &redist_fixtures::Archive) -> serde_json::Value {
    let data = archive.archive(Compression::Xz);
    let path = root.join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, &data).unwrap();
    let sha: String = sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({ "relative_path": rel, "sha256": sha, "md5": "0", "size": data.len().to_string() })
}

impl Set {
    fn new() -> Set {
        let dir = Dir::new();
        let root = dir.join("mirror");
        let l = linked();
        // The cuda product: CUDA 13.0.2 with libdep; and CUDA 12.9.1.
        for (label, sub) in [("13.0.2", "cuda"), ("12.9.1", "cuda12")] {
            mirror::write(
                &root.join(sub),
                label,
                &[
                    Component::new(
                        "libdep",
                        "1.0",
                        redist_archive(
                            "libdep",
                            "1.0",
                            vec![Item::file("lib/libdep.so.1", l.libdep.clone())],
                        ),
                    ),
                    Component::new(
                        "libplugin",
                        "1.0",
                        redist_archive(
                            "libplugin",
                            "1.0",
                            vec![Item::file("lib/libplugin.so.1", l.plugin.clone())],
                        ),
                    ),
                ],
            );
        }
        // The add-on: one archive per CUDA major, told apart by a file.
        let addon = |major: &str| {
            redist_archive(
                "addon",
                "2.0",
                vec![
                    Item::file("lib/libuser.so.1", l.libuser.clone()),
                    Item::file("lib/libnamer.so.1", l.namer.clone()),
                    Item::file(&format!("share/built-for-cuda{major}"), major),
                ],
            )
        };
        let a = root.join("addon");
        let manifest = serde_json::json!({
            "release_date": "2026-01-01",
            "release_label": "2.0",
            "release_product": "addon",
            "addon": {
                "name": "an add-on built per CUDA major",
                "version": "2.0",
                "cuda_variant": ["12", "13"],
                "linux-x86_64": {
                    "cuda12": entry(&a, "addon/linux-x86_64/addon-2.0_cuda12-archive.tar.xz", &addon("12")),
                    "cuda13": entry(&a, "addon/linux-x86_64/addon-2.0_cuda13-archive.tar.xz", &addon("13")),
                }
            },
            "only13": {
                "version": "1.0",
                "cuda_variant": ["13"],
                "linux-x86_64": {
                    "cuda13": entry(
                        &a,
                        "only13/linux-x86_64/only13-1.0_cuda13-archive.tar.xz",
                        &redist_archive("only13", "1.0", vec![Item::file("share/only13", "13")]),
                    ),
                }
            }
        });
        std::fs::write(
            a.join("redistrib_2.0.json"),
            serde_json::to_vec_pretty(&manifest).unwrap(),
        )
        .unwrap();
        let server = Server::start(root);
        Set { dir, server }
    }

    fn cuda(&self) -> String {
        self.server.url("cuda/redistrib_13.0.2.json")
    }

    fn cuda12(&self) -> String {
        self.server.url("cuda12/redistrib_12.9.1.json")
    }

    fn addon(&self) -> String {
        self.server.url("addon/redistrib_2.0.json")
    }

    fn prefix(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// `redist <cmd> -m M… <args> --cache-dir … --platform linux-x86_64`.
    fn run(&self, cmd: &str, manifests: &[String], args: &[&str]) -> std::process::Output {
        let cache = self.dir.join("cache");
        let mut all: Vec<std::ffi::OsString> = vec![cmd.into()];
        for m in manifests {
            all.push("-m".into());
            all.push(m.into());
        }
        all.extend(args.iter().map(std::ffi::OsString::from));
        all.extend(["--cache-dir".into(), cache.into_os_string()]);
        all.extend(["--platform".into(), "linux-x86_64".into()]);
        let refs: Vec<&std::ffi::OsStr> = all.iter().map(|a| a.as_os_str()).collect();
        run(&refs, None)
    }
}

#[test]
fn list_shows_each_component_with_the_variant_it_takes_and_why() {
    let s = Set::new();
    let o = s.run("list", &[s.cuda(), s.addon()], &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("cuda 13.0.2 + addon 2.0 for linux-x86_64: 4 components; add-ons for CUDA 13.0.2 (the set's cuda manifest 13.0.2)"),
        "{out}"
    );
    let addon = out
        .lines()
        .find(|l| l.starts_with("addon:addon "))
        .expect(&out);
    assert!(
        addon.contains("takes cuda13: CUDA 13.0.2 (the set's cuda manifest 13.0.2)"),
        "{addon}"
    );
    assert!(out.lines().any(|l| l.starts_with("cuda:libdep ")), "{out}");
    // For CUDA 12, `only13` says why it cannot be installed.
    let o = s.run("list", &[s.cuda12(), s.addon()], &["--json"]);
    let j = ok_json(&o);
    let only13 = j["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == "only13")
        .unwrap();
    assert_eq!(only13["variant"], serde_json::Value::Null);
    assert!(
        only13["why"]
            .as_str()
            .unwrap()
            .contains("is built for cuda13, not for CUDA 12.9.1"),
        "{only13}"
    );
    assert_eq!(j["cuda"]["label"], "12.9.1");
}

#[test]
fn a_set_installs_in_one_command_with_each_variant_chosen_and_linked_across_products() {
    let s = Set::new();
    for layout in ["merged", "split"] {
        let p = s.prefix(layout);
        let o = s.run(
            "install",
            &[s.cuda(), s.addon()],
            &[
                "libdep",
                "libplugin",
                "addon",
                "--layout",
                layout,
                "--json",
                "--prefix",
                p.to_str().unwrap(),
            ],
        );
        let r = ok_json(&o);
        assert_eq!(r["components"][2]["variant"], "cuda13", "{layout}");
        assert_eq!(r["components"][2]["product"], "addon", "{layout}");
        assert_eq!(
            r["components"][2]["variant_reason"],
            "CUDA 13.0.2 (the set's cuda manifest 13.0.2)"
        );
        // libnamer `dlopen`s libplugin.so.1 of the other product by name:
        // loaded for real, it finds it.
        let namer = if layout == "merged" {
            p.join("lib/libnamer.so.1")
        } else {
            p.join("addon/lib/lib/libnamer.so.1")
        };
        let o = std::process::Command::new("python3")
            .arg("-c")
            .arg("import ctypes, sys; print(ctypes.CDLL(sys.argv[1]).namer())")
            .arg(&namer)
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .unwrap();
        assert_eq!(stdout(&o).trim(), "3", "{layout}: {}", stderr(&o));
        let built = if layout == "merged" {
            p.join("share/built-for-cuda13")
        } else {
            p.join("addon/out/share/built-for-cuda13")
        };
        assert!(built.exists(), "{layout}: {}", built.display());
        // The add-on's library finds libdep.so.1 of the other product.
        let needs = r["autopatch"]["files"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["path"].as_str().unwrap().ends_with("libuser.so.1"))
            .unwrap_or_else(|| panic!("{layout}: {}", r["autopatch"]))["needs"]
            .clone();
        assert!(needs.get("libdep.so.1").is_some(), "{layout}: {needs}");
        let state: serde_json::Value =
            serde_json::from_slice(&std::fs::read(p.join(".redist/installed.json")).unwrap())
                .unwrap();
        assert_eq!(state["cuda"], "13.0.2", "{layout}");
        assert_eq!(state["components"]["addon"]["product"], "addon");
        assert_eq!(state["components"]["addon"]["variant"], "cuda13");
    }
}

#[test]
fn an_add_on_alone_takes_the_cuda_of_the_prefix() {
    let s = Set::new();
    let p = s.prefix("p");
    let ps = p.to_str().unwrap();
    let o = s.run("install", &[s.cuda12()], &["libdep", "--prefix", ps]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Only the add-on's manifest now: the prefix says CUDA 12.9.1.
    let o = s.run(
        "install",
        &[s.addon()],
        &["addon", "--prefix", ps, "--json"],
    );
    let r = ok_json(&o);
    assert_eq!(r["components"][0]["variant"], "cuda12");
    assert!(p.join("share/built-for-cuda12").exists());
    // What is not built for it is an error naming both, and the prefix
    // stays as it was.
    let before = snapshot(&p);
    let o = s.run("install", &[s.addon()], &["only13", "--prefix", ps]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.contains(&format!(
            "only13 1.0 is built for cuda13, not for CUDA 12.9.1 (installed in {ps})"
        )),
        "{err}"
    );
    assert!(snapshot(&p) == before);
    // A CUDA 13 set does not go into a CUDA 12 prefix.
    let o = s.run(
        "install",
        &[s.cuda(), s.addon()],
        &["addon", "--prefix", ps],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("it holds CUDA 12.9.1, and this set is CUDA 13.0.2"),
        "{}",
        stderr(&o)
    );
    // --variant overrides, for who knows better.
    let o = s.run(
        "install",
        &[s.addon()],
        &["only13", "--variant", "13", "--prefix", ps, "--json"],
    );
    assert_eq!(ok_json(&o)["components"][0]["variant"], "cuda13");
}

#[test]
fn a_set_file_names_the_manifests_and_the_components() {
    let s = Set::new();
    let file = s.dir.join("cuda13.toml");
    std::fs::write(
        &file,
        format!(
            "# CUDA 13 with the add-on\nmanifests = [\"{}\", \"{}\"]\ncomponents = [\"libdep\", \"addon:addon\"]\n",
            s.cuda(),
            s.addon()
        ),
    )
    .unwrap();
    let p = s.prefix("from-file");
    let cache = s.dir.join("cache");
    let o = run(
        &[
            "install".as_ref(),
            "--set".as_ref(),
            file.as_os_str(),
            "--prefix".as_ref(),
            p.as_os_str(),
            "--cache-dir".as_ref(),
            cache.as_os_str(),
            "--platform".as_ref(),
            "linux-x86_64".as_ref(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(p.join("lib/libdep.so.1").exists() && p.join("share/built-for-cuda13").exists());
    // Names two products share must be qualified; unknown products are named.
    let o = s.run(
        "install",
        &[s.cuda(), s.addon()],
        &["nope:addon", "--prefix", p.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the set has no manifest of product `nope` (asked for `nope:addon`); it has: cuda, addon"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn features_and_fetch_take_a_set_too() {
    let s = Set::new();
    let o = s.run("features", &[s.cuda(), s.addon()], &["libdep", "addon"]);
    let j = ok_json(&o);
    assert_eq!(
        j["cuda:libdep"]["outputs"],
        serde_json::json!(["lib"]),
        "{j}"
    );
    assert_eq!(
        j["addon:addon"]["outputs"],
        serde_json::json!(["lib", "out"]),
        "{j}"
    );
    let out = s.dir.join("fetched");
    let o = s.run(
        "fetch",
        &[s.cuda(), s.addon()],
        &["addon", "--out", out.to_str().unwrap(), "--json"],
    );
    let j = ok_json(&o);
    assert!(out.join("addon-2.0_cuda13-archive.tar.xz").is_file(), "{j}");
}
