//! The store of unpacked trees: a second install of the same archives links
//! the finished trees instead of decoding; a damaged entry is rebuilt, never
//! linked; link modes across filesystems; concurrent installs sharing one
//! store; `redist cache info|prune|clean|dir`. Real archives over a real
//! HTTP server on 127.0.0.1, real programs run from the prefixes.

mod common;

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};

use common::*;
use redist_fixtures::mirror::Component;

/// `comp_app` (bin/app) and `comp_lib` (the libraries it loads), the demo
/// components, and `comp_lib2`: the same libraries under another name.
fn mirror() -> Mirror {
    // cuda_nvcc with NVIDIA's own nvcc.profile, which a split install
    // points at the other components.
    let mut components: Vec<Component> = redist_fixtures::mirror::demo_components()
        .into_iter()
        .filter(|c| c.key != "cuda_nvcc")
        .collect();
    components.push(Component::new(
        "cuda_nvcc",
        "13.0.1",
        redist_fixtures::redist_archive(
            "cuda_nvcc",
            "13.0.1",
            vec![
                redist_fixtures::Item::file("bin/nvcc.profile", PROFILE),
                redist_fixtures::Item::file("include/fatbinary_section.h", "/* nvcc's own */\n"),
            ],
        ),
    ));
    components.push(redist_fixtures::mirror::app_component());
    components.push(redist_fixtures::mirror::libs_component("comp_lib"));
    components.push(redist_fixtures::mirror::libs_component("comp_lib2"));
    Mirror::new(&components)
}

/// `bin/nvcc.profile` as NVIDIA's cuda_nvcc 13 redist archive ships it.
const PROFILE: &str = include_str!("../../../testdata/cuda/nvcc.profile");

const SOME: [&str; 4] = ["comp_app", "comp_lib", "cuda_cudart", "cuda_nvcc"];

fn install_into(m: &Mirror, prefix: &Path, args: &[&str]) -> std::process::Output {
    let mut all = vec!["--prefix", prefix.to_str().unwrap(), "--json"];
    all.extend_from_slice(args);
    m.run("install", &all)
}

fn installed(m: &Mirror, prefix: &Path, args: &[&str]) -> serde_json::Value {
    ok_json(&install_into(m, prefix, args))
}

/// component → (origin, store action).
fn actions(report: &serde_json::Value) -> BTreeMap<String, (String, String)> {
    report["components"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["component"].as_str().unwrap().to_owned(),
                (
                    c["origin"].as_str().unwrap_or("-").to_owned(),
                    c["store"]["action"].as_str().unwrap_or("-").to_owned(),
                ),
            )
        })
        .collect()
}

/// The tree without `.redist/`, with modes as a user sees them apart from
/// the write bits (the store's files are read-only).
fn content(prefix: &Path) -> BTreeMap<String, Found> {
    snapshot(prefix)
        .into_iter()
        .filter(|(k, _)| !k.starts_with(".redist"))
        .map(|(k, v)| match v {
            Found::File(mode, data) => (k, Found::File(mode & !0o222, data)),
            other => (k, other),
        })
        .collect()
}

fn store_entries(m: &Mirror) -> Vec<String> {
    let dir = m.cache().join("store/v1");
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|r| {
            r.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != "refs" && n != ".lock")
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// The store's copy of `rel` for the only entry that has it.
fn stored(m: &Mirror, rel: &str) -> PathBuf {
    let found: Vec<PathBuf> = store_entries(m)
        .iter()
        .map(|k| m.cache().join("store/v1").join(k).join("tree").join(rel))
        .filter(|p| p.symlink_metadata().is_ok())
        .collect();
    assert_eq!(found.len(), 1, "{rel} in the store: {found:?}");
    found.into_iter().next().unwrap()
}

#[test]
fn a_second_prefix_is_linked_from_the_store_and_equals_an_unpacked_one() {
    let m = mirror();
    let (a, b, c) = (m.dir.join("a"), m.dir.join("b"), m.dir.join("c"));
    let first = installed(&m, &a, &SOME);
    for (comp, (origin, action)) in actions(&first) {
        assert_eq!(
            (origin.as_str(), action.as_str()),
            ("download", "stored"),
            "{comp}"
        );
    }
    assert_eq!(store_entries(&m).len(), 4);
    let second = installed(&m, &b, &SOME);
    for (comp, (origin, action)) in actions(&second) {
        assert_eq!(
            (origin.as_str(), action.as_str()),
            ("store", "linked"),
            "{comp}"
        );
    }
    // Nothing was patched: the stored trees are already linked for a prefix.
    let changed: Vec<&serde_json::Value> = second["autopatch"]["files"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["changed"] == true)
        .collect();
    assert!(changed.is_empty(), "{changed:?}");
    // The same tree as an install that unpacks everything.
    installed(&m, &c, &[&SOME[..], &["--no-store"]].concat());
    assert_eq!(content(&b), content(&c));
    assert_eq!(content(&a), content(&c));
    // Hard links into the store, read-only there; the program runs.
    let app = b.join("bin/app");
    let in_store = stored(&m, "bin/app");
    assert_eq!(
        app.metadata().unwrap().ino(),
        in_store.metadata().unwrap().ino()
    );
    assert_eq!(in_store.metadata().unwrap().permissions().mode() & 0o222, 0);
    runs_app(&app);
    // The store is not where the prefix's record says: a moved prefix runs.
    let moved = m.dir.join("moved");
    std::fs::rename(&b, &moved).unwrap();
    runs_app(&moved.join("bin/app"));
    // --no-store touched nothing in the store, and its files are its own.
    assert_eq!(c.join("bin/app").metadata().unwrap().nlink(), 1);
}

#[test]
fn split_prefixes_are_linked_too_and_keep_their_own_nvcc_profiles() {
    let m = mirror();
    let (a, b) = (m.dir.join("a"), m.dir.join("b"));
    installed(&m, &a, &[&SOME[..], &["--layout", "split"]].concat());
    let second = installed(&m, &b, &[&SOME[..], &["--layout", "split"]].concat());
    for (comp, (_, action)) in actions(&second) {
        assert_eq!(action, "linked", "{comp}");
    }
    assert_eq!(content(&a), content(&b));
    runs_app(&b.join("comp_app/bin/bin/app"));
    // The profile points at this prefix's components; the store keeps the
    // shipped one (the prefix's is its own file).
    let profile = b.join("cuda_nvcc/bin/bin/nvcc.profile");
    let text = std::fs::read_to_string(&profile).unwrap();
    assert!(text.contains("cuda_cudart/include/include"), "{text}");
    let shipped = stored(&m, "bin/bin/nvcc.profile");
    assert_eq!(std::fs::read_to_string(&shipped).unwrap(), PROFILE);
    assert_eq!(profile.metadata().unwrap().nlink(), 1);
}

#[test]
fn a_file_patched_for_another_prefix_gets_a_private_copy() {
    let m = mirror();
    let (a, b) = (m.dir.join("a"), m.dir.join("b"));
    installed(&m, &a, &["comp_app", "comp_lib", "--layout", "split"]);
    // Here the libraries come from comp_lib2: the stored app (linked to
    // comp_lib) is patched for this prefix through a copy of its own.
    let r = installed(&m, &b, &["comp_app", "comp_lib2", "--layout", "split"]);
    assert_eq!(actions(&r)["comp_app"].1, "linked");
    let app_b = b.join("comp_app/bin/bin/app");
    assert_eq!(
        elfpatch::read(&app_b).unwrap().runpath.as_deref(),
        Some("$ORIGIN/../../../comp_lib2/lib/lib")
    );
    assert_eq!(app_b.metadata().unwrap().nlink(), 1);
    let app_a = a.join("comp_app/bin/bin/app");
    assert_eq!(
        elfpatch::read(&app_a).unwrap().runpath.as_deref(),
        Some("$ORIGIN/../../../comp_lib/lib/lib")
    );
    runs_app(&app_a);
    runs_app(&app_b);
}

#[test]
fn a_damaged_entry_is_rebuilt_and_never_linked() {
    let m = mirror();
    installed(&m, &m.dir.join("a"), &["comp_app", "comp_lib"]);
    // Edited through a hard link (as root can), grown by a byte.
    let lib = stored(&m, "lib/libuser.so.1.0");
    let good = std::fs::read(&lib).unwrap();
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut bad = good.clone();
    bad.push(0);
    std::fs::write(&lib, &bad).unwrap();
    let b = m.dir.join("b");
    let o = install_into(&m, &b, &["comp_app", "comp_lib"]);
    let r = ok_json(&o);
    assert!(
        stderr(&o).contains(&format!(
            "comp_lib: its entry in the store was damaged (lib/libuser.so.1.0 has {} bytes, {} when stored); removed it, unpacking the archive again",
            bad.len(),
            good.len()
        )),
        "{}",
        stderr(&o)
    );
    let a = actions(&r);
    assert_eq!(a["comp_lib"], ("cache".into(), "stored".into()));
    assert_eq!(a["comp_app"].1, "linked");
    assert_eq!(std::fs::read(b.join("lib/libuser.so.1.0")).unwrap(), good);
    runs_app(&b.join("bin/app"));

    // Same size, modified: the mtime tells. Then a file gone, then a
    // corrupt entry.json.
    let lib = stored(&m, "lib/libuser.so.1.0");
    let mut same_size = good.clone();
    let last = same_size.len() - 1;
    same_size[last] ^= 0xff;
    std::fs::set_permissions(&lib, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&lib, &same_size).unwrap();
    let o = install_into(&m, &m.dir.join("c"), &["comp_app", "comp_lib"]);
    assert!(
        stderr(&o).contains("(lib/libuser.so.1.0 was modified after it was stored)"),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        std::fs::read(m.dir.join("c/lib/libuser.so.1.0")).unwrap(),
        good
    );

    std::fs::remove_file(stored(&m, "lib/libdep.so.1")).unwrap();
    let o = install_into(&m, &m.dir.join("d"), &["comp_app", "comp_lib"]);
    assert!(
        stderr(&o).contains("(lib/libdep.so.1: No such file"),
        "{}",
        stderr(&o)
    );
    runs_app(&m.dir.join("d/bin/app"));

    let entry = stored(&m, "lib/libdep.so.1");
    let json = entry.ancestors().nth(3).unwrap().join("entry.json");
    std::fs::write(&json, "{").unwrap();
    let o = install_into(&m, &m.dir.join("e"), &["comp_app", "comp_lib"]);
    assert!(
        stderr(&o).contains("(entry.json: EOF while parsing"),
        "{}",
        stderr(&o)
    );
    runs_app(&m.dir.join("e/bin/app"));
    assert_eq!(store_entries(&m).len(), 2, "{:?}", store_entries(&m));
}

/// A change made to an `entry.json`.
type Edit = Box<dyn Fn(&mut serde_json::Value)>;

#[test]
fn an_entry_naming_paths_outside_its_tree_is_damaged_and_nothing_escapes() {
    let m = mirror();
    installed(&m, &m.dir.join("a"), &["comp_app", "comp_lib"]);
    let json = stored(&m, "lib/libdep.so.1")
        .ancestors()
        .nth(3)
        .unwrap()
        .join("entry.json");
    let original: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let tamper = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut v = original.clone();
        edit(&mut v);
        std::fs::write(&json, serde_json::to_vec(&v).unwrap()).unwrap();
    };
    let cases: Vec<(&str, Edit)> = vec![
        (
            "\"../../escape\" is not a path inside the tree",
            Box::new(|v| {
                v["nodes"]["../../escape"] = v["nodes"]["lib/libdep.so.1"].clone();
                let f = serde_json::json!({"path": "../../escape", "size": 1, "mtime_ns": 0});
                v["files"].as_array_mut().unwrap().push(f);
            }),
        ),
        (
            "lib/libuser.so points at \"../../../etc\", outside the tree",
            Box::new(|v| {
                v["nodes"]["lib/libuser.so"]["kind"]["symlink"]["written"] = "../../../etc".into();
            }),
        ),
        (
            "3 files, 2 with a recorded size and mtime",
            Box::new(|v| {
                v["files"].as_array_mut().unwrap().pop();
            }),
        ),
    ];
    for (i, (why, edit)) in cases.iter().enumerate() {
        // Put the entry back as stored (each case removes it), then tamper.
        if !json.exists() {
            installed(
                &m,
                &m.dir.join(&format!("again{i}")),
                &["comp_app", "comp_lib"],
            );
        }
        tamper(edit.as_ref());
        let p = m.dir.join(&format!("p{i}"));
        let o = install_into(&m, &p, &["comp_app", "comp_lib"]);
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(
                "comp_lib: its entry in the store was damaged (entry.json: {why})"
            )),
            "{}",
            stderr(&o)
        );
        runs_app(&p.join("bin/app"));
        assert!(
            !m.dir.join("escape").exists()
                && !m.dir.path().parent().unwrap().join("escape").exists()
        );
    }
}

#[test]
fn link_modes_on_one_filesystem_and_across_two() {
    let m = mirror();
    installed(&m, &m.dir.join("a"), &SOME);
    let linked = |r: &serde_json::Value, comp: &str| -> serde_json::Value {
        r["components"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["component"] == comp)
            .unwrap()["store"]["linked"]
            .clone()
    };
    // Copies: nothing shared.
    let r = installed(
        &m,
        &m.dir.join("copy"),
        &[&SOME[..], &["--link-mode", "copy"]].concat(),
    );
    assert_eq!(linked(&r, "comp_lib")["copied"], 3);
    assert_eq!(linked(&r, "comp_lib")["hardlinked"], 0);
    let lib = m.dir.join("copy/lib/libuser.so.1.0");
    assert_eq!(lib.metadata().unwrap().nlink(), 1);
    assert_eq!(lib.metadata().unwrap().permissions().mode() & 0o200, 0o200);
    runs_app(&m.dir.join("copy/bin/app"));

    // Symlinks into the store; the program is a copy (the loader takes a
    // program's $ORIGIN from where its symlink points).
    let r = installed(
        &m,
        &m.dir.join("sym"),
        &[&SOME[..], &["--link-mode", "symlink"]].concat(),
    );
    assert_eq!(linked(&r, "comp_lib")["symlinked"], 3);
    let lib = m.dir.join("sym/lib/libuser.so.1.0");
    assert_eq!(
        std::fs::read_link(&lib).unwrap(),
        stored(&m, "lib/libuser.so.1.0")
    );
    assert!(m
        .dir
        .join("sym/bin/app")
        .symlink_metadata()
        .unwrap()
        .is_file());
    runs_app(&m.dir.join("sym/bin/app"));

    // Clones: copies with a note where the filesystem has no reflinks.
    let o = install_into(
        &m,
        &m.dir.join("clone"),
        &[&SOME[..], &["--link-mode", "clone"]].concat(),
    );
    let r = ok_json(&o);
    let l = linked(&r, "comp_lib");
    assert_eq!(
        l["cloned"].as_u64().unwrap() + l["copied"].as_u64().unwrap(),
        3
    );
    if l["copied"] == 3 {
        assert_eq!(
            stderr(&o)
                .matches("copying files from the store instead of cloning them")
                .count(),
            1,
            "{}",
            stderr(&o)
        );
    }
    runs_app(&m.dir.join("clone/bin/app"));

    // A prefix on another filesystem (a second tmpfs, root only): hard
    // links cannot cross it, so files are copied, said once.
    let Some(fs) = SmallFs::mount(m.dir.join("other"), "64m") else {
        eprintln!("not root: the cross-filesystem part is skipped");
        return;
    };
    let o = install_into(&m, &fs.0.join("p"), &SOME);
    let r = ok_json(&o);
    assert_eq!(
        stderr(&o)
            .matches("copying files from the store instead of hard-linking them: the store is on another filesystem")
            .count(),
        1,
        "{}",
        stderr(&o)
    );
    assert_eq!(linked(&r, "comp_lib")["copied"], 3);
    assert_eq!(
        linked(&r, "comp_lib")["fell_back"],
        "the store is on another filesystem"
    );
    runs_app(&fs.0.join("p/bin/app"));
    // `--link-mode copy` copies without the note.
    let o = install_into(
        &m,
        &fs.0.join("q"),
        &[&SOME[..], &["--link-mode", "copy"]].concat(),
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!stderr(&o).contains("copying files"), "{}", stderr(&o));
    // And a store on that filesystem, with the prefix back on the first:
    // the store's entries are copied in, the prefix is linked from it.
    let cache2 = fs.0.join("cache");
    let pfx = m.dir.join("via-other-cache");
    for p in [m.dir.join("first-of-other-cache"), pfx.clone()] {
        let args = [
            "--prefix",
            p.to_str().unwrap(),
            "-q",
            "comp_app",
            "comp_lib",
        ];
        let o = m.run_with_cache(&cache2, "install", &args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    runs_app(&pfx.join("bin/app"));
    drop(fs);
}

/// An XFS filesystem with reflinks in a file, loop-mounted (root, with
/// `mkfs.xfs` from xfsprogs); unmounted on drop.
struct Xfs {
    at: PathBuf,
    image: PathBuf,
}

impl Xfs {
    fn mount(dir: &Path) -> Option<Xfs> {
        let image = dir.join("xfs.img");
        let at = dir.join("xfs");
        std::fs::create_dir_all(&at).ok()?;
        std::fs::File::create(&image)
            .ok()?
            .set_len(320 << 20)
            .ok()?;
        let ok = |c: &mut std::process::Command| c.status().is_ok_and(|s| s.success());
        let made = ok(std::process::Command::new("mkfs.xfs")
            .args(["-q", "-m", "reflink=1"])
            .arg(&image))
            && ok(std::process::Command::new("mount")
                .args(["-o", "loop"])
                .arg(&image)
                .arg(&at));
        made.then_some(Xfs { at, image })
    }
}

impl Drop for Xfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.at).status();
        let _ = std::fs::remove_file(&self.image);
    }
}

#[test]
fn clone_mode_makes_copy_on_write_clones_on_xfs() {
    let m = mirror();
    let Some(xfs) = Xfs::mount(m.dir.path()) else {
        eprintln!("no loop-mounted XFS here (root and xfsprogs needed): skipped");
        return;
    };
    let cache = xfs.at.join("cache");
    let install = |prefix: &Path, extra: &[&str]| {
        let mut args = vec![
            "--prefix",
            prefix.to_str().unwrap(),
            "--json",
            "comp_app",
            "comp_lib",
        ];
        args.extend_from_slice(extra);
        m.run_with_cache(&cache, "install", &args)
    };
    ok_json(&install(&xfs.at.join("a"), &[]));
    let b = xfs.at.join("b");
    let o = install(&b, &["--link-mode", "clone"]);
    let r = ok_json(&o);
    assert!(!stderr(&o).contains("copying files"), "{}", stderr(&o));
    let lib = r["components"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["component"] == "comp_lib")
        .unwrap()["store"]["linked"]
        .clone();
    assert_eq!(
        (lib["cloned"].as_u64(), lib["copied"].as_u64()),
        (Some(3), Some(0)),
        "{lib}"
    );
    // A file of its own (writable), with the store's bytes.
    let mine = b.join("lib/libuser.so.1.0");
    let theirs = xfs.at.join("a/lib/libuser.so.1.0");
    assert_ne!(
        mine.metadata().unwrap().ino(),
        theirs.metadata().unwrap().ino()
    );
    assert_eq!(
        std::fs::read(&mine).unwrap(),
        std::fs::read(&theirs).unwrap()
    );
    assert_eq!(mine.metadata().unwrap().permissions().mode() & 0o200, 0o200);
    runs_app(&b.join("bin/app"));
    drop(xfs);
}

#[test]
fn concurrent_installs_share_one_store() {
    let m = mirror();
    // Fetch first, so that the race is over the store, not the downloads.
    assert!(m.run("fetch", &SOME).status.success());
    let url = m.url();
    let cache = m.cache();
    let children: Vec<(PathBuf, std::process::Child)> = (0..4)
        .map(|i| {
            let p = m.dir.join(&format!("p{i}"));
            let child = redist()
                .args([
                    "install",
                    "--manifest",
                    &url,
                    "--platform",
                    "linux-x86_64",
                    "--json",
                ])
                .arg("--cache-dir")
                .arg(&cache)
                .arg("--prefix")
                .arg(&p)
                .args(SOME)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (p, child)
        })
        .collect();
    let mut stored_by: BTreeMap<String, usize> = BTreeMap::new();
    for (p, child) in children {
        let o = child.wait_with_output().unwrap();
        let r = ok_json(&o);
        for (comp, (_, action)) in actions(&r) {
            assert!(
                ["stored", "already_stored", "linked"].contains(&action.as_str()),
                "{comp}: {action}"
            );
            if action == "stored" {
                *stored_by.entry(comp).or_default() += 1;
            }
        }
        runs_app(&p.join("bin/app"));
    }
    // Each tree went in once; nothing half-written is left.
    assert!(stored_by.values().all(|&n| n == 1), "{stored_by:?}");
    let entries = store_entries(&m);
    assert_eq!(entries.len(), 4, "{entries:?}");
    assert!(entries.iter().all(|e| !e.starts_with('.')), "{entries:?}");
}

#[test]
fn what_depends_on_its_destination_or_asks_for_no_store_is_not_stored() {
    let m = mirror();
    let r = installed(
        &m,
        &m.dir.join("abs"),
        &["comp_app", "comp_lib", "--runpath", "absolute"],
    );
    assert!(actions(&r).values().all(|(_, a)| a == "-"), "{r}");
    let r = installed(
        &m,
        &m.dir.join("none"),
        &["comp_app", "comp_lib", "--no-store"],
    );
    assert!(actions(&r).values().all(|(_, a)| a == "-"), "{r}");
    // `--only` links from the store but keeps nothing there.
    let r = installed(
        &m,
        &m.dir.join("only"),
        &["comp_app", "comp_lib", "--only", "bin/app"],
    );
    assert!(actions(&r).values().all(|(_, a)| a == "not_stored"), "{r}");
    assert!(store_entries(&m).is_empty(), "{:?}", store_entries(&m));
    runs_app(&m.dir.join("only/bin/app"));
}

fn cache_cmd(m: &Mirror, args: &[&str]) -> std::process::Output {
    let cache = m.cache();
    let mut all: Vec<&std::ffi::OsStr> = vec!["cache".as_ref()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    all.extend(["--cache-dir".as_ref(), cache.as_os_str()]);
    run(&all, None)
}

#[test]
fn cache_info_prune_and_clean() {
    let m = mirror();
    let (a, b) = (m.dir.join("a"), m.dir.join("b"));
    installed(&m, &a, &["comp_app", "comp_lib"]);
    installed(&m, &b, &["comp_app", "comp_lib", "cuda_cudart"]);
    let info = ok_json(&cache_cmd(&m, &["info", "--json"]));
    assert_eq!(info["archives"]["count"], 3);
    let entries = info["store"]["entries"].as_array().unwrap();
    let used: BTreeMap<&str, usize> = entries
        .iter()
        .map(|e| {
            (
                e["component"].as_str().unwrap(),
                e["prefixes"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        used,
        BTreeMap::from([("comp_app", 2), ("comp_lib", 2), ("cuda_cudart", 1)])
    );
    let text = stdout(&cache_cmd(&m, &["info"]));
    assert!(text.contains("store     3 unpacked trees"), "{text}");

    // Nothing to prune while both prefixes exist.
    let o = cache_cmd(&m, &["prune"]);
    assert!(
        stdout(&o).contains("nothing to remove (3 store entries in use"),
        "{}",
        stdout(&o)
    );
    // b removed: its cudart entry is used by nothing; a half-written entry
    // of a killed run goes too, a running one's stays.
    std::fs::remove_dir_all(&b).unwrap();
    let store = m.cache().join("store/v1");
    let dead = store.join(".abc.building-4194304-0");
    std::fs::create_dir_all(dead.join("tree")).unwrap();
    std::fs::write(dead.join("tree/f"), "12345").unwrap();
    let live = store.join(format!(".abd.building-{}-0", std::process::id()));
    std::fs::create_dir_all(&live).unwrap();
    let pruned = ok_json(&cache_cmd(&m, &["prune", "--json"]));
    assert_eq!(pruned["removed"].as_array().unwrap().len(), 1);
    assert_eq!(pruned["kept"], 2);
    assert_eq!(pruned["leftovers"]["entries"], 3);
    assert!(!dead.exists() && live.exists());
    std::fs::remove_dir_all(&live).unwrap();
    runs_app(&a.join("bin/app"));

    // A new install sweeps a killed run's half-written entry as well.
    std::fs::create_dir_all(&dead).unwrap();
    let o = install_into(&m, &m.dir.join("c"), &["comp_app", "comp_lib"]);
    assert!(
        stderr(&o).contains("removed what killed runs left behind"),
        "{}",
        stderr(&o)
    );
    assert!(!dead.exists());

    // `dir` says where; `clean` removes everything; a hard-linked prefix
    // still runs.
    assert_eq!(
        stdout(&cache_cmd(&m, &["dir"])).trim(),
        m.cache().to_str().unwrap()
    );
    let cleaned = ok_json(&cache_cmd(&m, &["clean", "--json"]));
    assert!(
        cleaned["archives"]["entries"].as_u64().unwrap() >= 3,
        "{cleaned}"
    );
    assert!(cleaned["store"]["bytes"].as_u64().unwrap() > 0, "{cleaned}");
    assert!(store_entries(&m).is_empty());
    assert!(m.cache_files().is_empty(), "{:?}", m.cache_files());
    runs_app(&a.join("bin/app"));
    let o = cache_cmd(&m, &["clean"]);
    assert!(stdout(&o).contains("already empty"), "{}", stdout(&o));
}
