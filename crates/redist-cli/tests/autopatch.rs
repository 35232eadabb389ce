//! autopatch through `redist unpack`: real ELF files from `cc`, resolved
//! across outputs and dependency directories; the dynamic loader decides
//! whether the result works.

mod common;

use std::path::{Path, PathBuf};

use common::*;
use redist_fixtures::{linked, redist_archive, with_machine};

/// A component shaped like NVIDIA's: an app in bin/, its libraries in lib/.
fn app_component(with_dep: bool) -> Archive {
    let l = linked();
    let mut items = vec![
        Item::exe("bin/app", l.app.clone()),
        Item::exe("lib/libuser.so.1.0", l.libuser.clone()),
        Item::link("lib/libuser.so.1", "libuser.so.1.0"),
        Item::link("lib/libuser.so", "libuser.so.1"),
    ];
    if with_dep {
        items.push(Item::exe("lib/libdep.so.1", l.libdep.clone()));
    }
    redist_archive("cuda_app", "1.0", items)
}

fn runpath(p: &Path) -> Option<String> {
    elfpatch::read(p).unwrap().runpath
}

#[test]
fn relative_tree_runs_after_being_moved() {
    let d = Dir::new();
    let out = d.join("out");
    let report = ok_json(&unpack(
        &d.archive(&app_component(true), Compression::Xz),
        &out,
        &["--json"],
    ));
    assert_eq!(
        runpath(&out.join("bin/bin/app")).as_deref(),
        Some("$ORIGIN/../../lib/lib")
    );
    assert_eq!(
        runpath(&out.join("lib/lib/libuser.so.1.0")).as_deref(),
        Some("$ORIGIN")
    );
    let files = &report["autopatch"]["files"];
    let app = files
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "bin/bin/app")
        .unwrap();
    assert_eq!(
        app["needs"]["libuser.so.1"],
        serde_json::json!({"from": "own", "dir": "lib/lib"})
    );
    // Move the whole tree elsewhere; no LD_LIBRARY_PATH.
    let moved = d.join("elsewhere/deeper");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&out, &moved).unwrap();
    runs_app(&moved.join("bin/bin/app"));
}

#[test]
fn absolute_mode_writes_output_paths() {
    let d = Dir::new();
    let out = d.join("out");
    ok_json(&unpack(
        &d.archive(&app_component(true), Compression::Xz),
        &out,
        &["--json", "--runpath", "absolute"],
    ));
    let lib = out.join("lib/lib").display().to_string();
    assert_eq!(runpath(&out.join("bin/bin/app")), Some(lib.clone()));
    assert_eq!(runpath(&out.join("lib/lib/libuser.so.1.0")), Some(lib));
    runs_app(&out.join("bin/bin/app"));
}

#[test]
fn dependency_dirs_are_searched_and_foreign_machines_skipped() {
    let d = Dir::new();
    let foreign = d.join("foreign");
    let real = d.join("real");
    std::fs::create_dir_all(&foreign).unwrap();
    std::fs::create_dir_all(&real).unwrap();
    // Same name, AArch64: must not be chosen.
    std::fs::write(
        foreign.join("libdep.so.1"),
        with_machine(&linked().libdep, 183),
    )
    .unwrap();
    std::fs::write(real.join("libdep.so.1"), &linked().libdep).unwrap();
    let out = d.join("out");
    let o = unpack(
        &d.archive(&app_component(false), Compression::Xz),
        &out,
        &[
            "--json",
            "--dep",
            foreign.to_str().unwrap(),
            "--dep",
            real.to_str().unwrap(),
        ],
    );
    ok_json(&o);
    assert_eq!(
        runpath(&out.join("lib/lib/libuser.so.1.0")),
        Some(real.display().to_string())
    );
    runs_app(&out.join("bin/bin/app"));
}

#[test]
fn unresolved_needs_list_every_file_and_library() {
    let d = Dir::new();
    let out = d.join("out");
    let o = unpack(
        &d.archive(&app_component(false), Compression::Xz),
        &out,
        &[],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("unresolved libraries (add --dep DIR, or --ignore-missing GLOB to allow them):\n  lib/lib/libuser.so.1.0: libdep.so.1"), "{err}");
    assert!(!out.exists(), "nothing published");
}

/// A component with a libcuda stub and a library that needs libcuda.so.1.
fn cuda_component() -> Archive {
    let l = linked();
    redist_archive(
        "cuda_thing",
        "1.0",
        vec![
            Item::exe("lib/libcudauser.so", l.cudauser.clone()),
            Item::exe("lib/stubs/libcuda.so", l.cudastub.clone()),
        ],
    )
}

/// Load a shared library with the real dynamic loader (`dlopen`, RTLD_NOW).
fn dlopens(lib: &Path) -> std::process::Output {
    std::process::Command::new("python3")
        .args([
            "-c",
            "import ctypes, sys; ctypes.CDLL(sys.argv[1], mode=ctypes.RTLD_GLOBAL); print('loaded')",
        ])
        .arg(lib)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .expect("python3 runs")
}

/// The autopatch report of one file.
fn file_report(report: &serde_json::Value, path: &str) -> serde_json::Value {
    report["autopatch"]["files"]
        .as_array()
        .expect("autopatch files")
        .iter()
        .find(|f| f["path"] == path)
        .unwrap_or_else(|| panic!("{path} not in the report"))
        .clone()
}

/// `bytes` with edits made by elfpatch (a RUNPATH, a DT_NEEDED), as a
/// vendor's linker would have left them.
fn edited(bytes: &[u8], edits: elfpatch::Edits) -> Vec<u8> {
    elfpatch::patch_bytes(bytes, &edits).expect("fixture edit")
}

/// `bytes` with this search path (DT_RPATH when `force_rpath`).
fn with_runpath(bytes: &[u8], runpath: &str, force_rpath: bool) -> Vec<u8> {
    edited(
        bytes,
        elfpatch::Edits {
            runpath: elfpatch::RunpathEdit::Set(runpath.into()),
            force_rpath,
            ..Default::default()
        },
    )
}

#[test]
fn driver_libraries_come_from_the_driver() {
    let d = Dir::new();
    let out = d.join("out");
    // libcuda.so.1 is nowhere but in stubs: no error, and the stub is not used.
    let report = ok_json(&unpack(
        &d.archive(&cuda_component(), Compression::Xz),
        &out,
        &["--json"],
    ));
    let user = file_report(&report, "lib/lib/libcudauser.so");
    assert_eq!(
        user["needs"]["libcuda.so.1"],
        serde_json::json!({"from": "driver"})
    );
    assert_eq!(runpath(&out.join("lib/lib/libcudauser.so")), None);
    assert!(out.join("stubs/lib/stubs/libcuda.so.1").is_symlink());
    // Without a driver on this machine, the library does not load …
    assert!(!dlopens(&out.join("lib/lib/libcudauser.so"))
        .status
        .success());

    // … and with the driver's directory first in every RUNPATH, it does.
    let driver = d.join("driver");
    std::fs::create_dir_all(&driver).unwrap();
    std::fs::write(driver.join("libcuda.so.1"), &linked().cudastub).unwrap();
    let out2 = d.join("out2");
    let report = ok_json(&unpack(
        &d.archive(&cuda_component(), Compression::Xz),
        &out2,
        &["--json", "--driver-runpath", driver.to_str().unwrap()],
    ));
    let driver_s = driver.display().to_string();
    for f in report["autopatch"]["files"].as_array().unwrap() {
        let p = out2.join(f["path"].as_str().unwrap());
        let rp = runpath(&p).unwrap_or_default();
        assert!(
            rp.split(':').next() == Some(driver_s.as_str()),
            "{}: RUNPATH {rp} does not start with the driver directory",
            p.display()
        );
        assert_eq!(f["tag"], "DT_RUNPATH");
    }
    let o = dlopens(&out2.join("lib/lib/libcudauser.so"));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn a_files_own_absolute_runpath_is_searched_and_kept() {
    let d = Dir::new();
    let ext = d.join("opt/ext");
    std::fs::create_dir_all(&ext).unwrap();
    std::fs::write(ext.join("libdep.so.1"), &linked().libdep).unwrap();
    let l = linked();
    let libuser = with_runpath(&l.libuser, &format!("$ORIGIN:{}", ext.display()), false);
    let a = redist_archive(
        "cuda_app",
        "1.0",
        vec![
            Item::exe("bin/app", l.app.clone()),
            Item::exe("lib/libuser.so.1", libuser),
        ],
    );
    let out = d.join("out");
    let report = ok_json(&unpack(&d.archive(&a, Compression::Xz), &out, &["--json"]));
    assert_eq!(
        runpath(&out.join("lib/lib/libuser.so.1")),
        Some(format!("{}:$ORIGIN", ext.display())),
        "the directory that satisfied the need, then the archive's $ORIGIN"
    );
    let f = file_report(&report, "lib/lib/libuser.so.1");
    assert_eq!(
        f["needs"]["libdep.so.1"],
        serde_json::json!({"from": "runpath", "dir": ext.display().to_string()})
    );
    runs_app(&out.join("bin/bin/app"));
}

#[test]
fn absolute_mode_keeps_origin_entries_inside_the_output() {
    let d = Dir::new();
    let l = linked();
    let dlopener = with_runpath(
        &l.dlopener,
        "$ORIGIN/plugins:$ORIGIN/../../elsewhere",
        false,
    );
    let a = redist_archive(
        "x",
        "1",
        vec![
            Item::exe("lib/libdlopener.so", dlopener),
            Item::exe("lib/plugins/libplugin.so.1", l.plugin.clone()),
        ],
    );
    let out = d.join("out");
    ok_json(&unpack(
        &d.archive(&a, Compression::Xz),
        &out,
        &["--json", "--runpath", "absolute"],
    ));
    let plugins = out.join("lib/lib/plugins").display().to_string();
    assert_eq!(
        runpath(&out.join("lib/lib/libdlopener.so")),
        Some(format!("{plugins}:$ORIGIN/plugins")),
        "found directories absolute; the archive's $ORIGIN entry inside the output kept as written"
    );
    // Copied elsewhere, the library still finds its plugin through $ORIGIN.
    let copy = d.join("copy");
    std::fs::create_dir_all(copy.join("plugins")).unwrap();
    std::fs::copy(
        out.join("lib/lib/libdlopener.so"),
        copy.join("libdlopener.so"),
    )
    .unwrap();
    std::fs::copy(
        out.join("lib/lib/plugins/libplugin.so.1"),
        copy.join("plugins/libplugin.so.1"),
    )
    .unwrap();
    std::fs::remove_dir_all(&out).unwrap();
    let o = dlopens(&copy.join("libdlopener.so"));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn interpreter_decides_what_the_system_provides() {
    let d = Dir::new();
    let l = linked();
    // libuser also needs libz.so.1, which this machine has and the other
    // glibc's directory does not.
    let libuser = edited(
        &l.libuser,
        elfpatch::Edits {
            add_needed: vec!["libz.so.1".into()],
            ..Default::default()
        },
    );
    let a = redist_archive(
        "cuda_app",
        "1.0",
        vec![
            Item::exe("bin/app", l.app.clone()),
            Item::exe("lib/libuser.so.1", libuser),
            Item::exe("lib/libdep.so.1", l.libdep.clone()),
        ],
    );
    let archive = d.archive(&a, Compression::Xz);
    // Without --interpreter, libz is left to this machine's loader.
    let report = ok_json(&unpack(&archive, &d.join("host"), &["--json"]));
    let user = file_report(&report, "lib/lib/libuser.so.1");
    assert_eq!(user["needs"]["libz.so.1"]["from"], "system");

    // Another glibc: a directory with the loader and libc, no libz.
    let loader = elfpatch::read(Path::new("/bin/sh"))
        .unwrap()
        .interpreter
        .expect("the system has a loader");
    let glibc = d.join("glibc/lib");
    std::fs::create_dir_all(&glibc).unwrap();
    let name = Path::new(&loader).file_name().unwrap();
    std::os::unix::fs::symlink(&loader, glibc.join(name)).unwrap();
    let libc = std::fs::canonicalize(&loader)
        .unwrap()
        .parent()
        .unwrap()
        .join("libc.so.6");
    std::os::unix::fs::symlink(&libc, glibc.join("libc.so.6")).unwrap();
    let interp = glibc.join(name);
    let o = unpack(
        &archive,
        &d.join("other"),
        &["--interpreter", interp.to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("lib/lib/libuser.so.1: libz.so.1"),
        "{}",
        stderr(&o)
    );
    // Given the library's directory, it resolves there.
    let zdir = std::fs::canonicalize(&libc)
        .unwrap()
        .parent()
        .unwrap()
        .to_owned();
    let report = ok_json(&unpack(
        &archive,
        &d.join("other2"),
        &[
            "--json",
            "--interpreter",
            interp.to_str().unwrap(),
            "--dep",
            zdir.to_str().unwrap(),
        ],
    ));
    let user = file_report(&report, "lib/lib/libuser.so.1");
    assert_eq!(user["needs"]["libz.so.1"]["from"], "dep");
    assert_eq!(user["needs"]["libdep.so.1"]["from"], "own");
}

#[test]
fn rpath_files_end_with_runpath_like_nixpkgs() {
    // A library linked with DT_RPATH $ORIGIN (what nixpkgs' patchelf 0.19
    // --set-rpath turns into DT_RUNPATH, even for the same value).
    let d = Dir::new();
    let l = linked();
    let libuser = with_runpath(&l.libuser, "$ORIGIN", true);
    assert_eq!(
        elfpatch::read_bytes(&libuser).unwrap().rpath.as_deref(),
        Some("$ORIGIN")
    );
    let a = redist_archive(
        "cuda_app",
        "1.0",
        vec![
            Item::exe("lib/libuser.so.1", libuser),
            Item::exe("lib/libdep.so.1", l.libdep.clone()),
        ],
    );
    let out = d.join("out");
    let o = unpack(&d.archive(&a, Compression::Xz), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("lib/lib/libuser.so.1: RUNPATH $ORIGIN"),
        "{}",
        stdout(&o)
    );
    let out2 = d.join("out2");
    let report = ok_json(&unpack(&d.archive(&a, Compression::Xz), &out2, &["--json"]));
    let user = file_report(&report, "lib/lib/libuser.so.1");
    assert_eq!(user["tag"], "DT_RUNPATH");
    assert_eq!(user["changed"], true);
    let info = elfpatch::read(&out2.join("lib/lib/libuser.so.1")).unwrap();
    assert_eq!(
        (info.runpath.as_deref(), info.rpath),
        (Some("$ORIGIN"), None)
    );
}

#[test]
fn json_failures_print_a_json_error() {
    let d = Dir::new();
    let out = d.join("out");
    let o = unpack(
        &d.archive(&app_component(false), Compression::Xz),
        &out,
        &["--json"],
    );
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).expect("JSON on stdout");
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("lib/lib/libuser.so.1.0: libdep.so.1"),
        "{v}"
    );
    assert!(v["causes"].is_array());
}

#[test]
fn dependency_directory_that_does_not_exist_is_an_error() {
    let d = Dir::new();
    let out = d.join("out");
    // The library it needs sits in `deps`; the user typed `dpes`.
    let o = unpack(
        &d.archive(&app_component(true), Compression::Xz),
        &out,
        &["--dep", d.join("dpes").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o).trim(),
        format!(
            "error: dependency directory {} does not exist; check the directory given to --dep (in Nix, libDeps)",
            d.join("dpes").display()
        )
    );
    assert!(!out.exists());
}

#[test]
fn toolkit_dependency_that_does_not_exist_is_an_error() {
    let d = Dir::new();
    let out = d.join("out");
    let o = unpack(
        &d.archive(&app_component(true), Compression::Xz),
        &out,
        &["--toolkit-dep", d.join("nope").to_str().unwrap()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("toolkit dependency") && stderr(&o).contains("nope: does not exist"),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn dlopen_notes_are_needs() {
    let d = Dir::new();
    let l = linked();
    let a = redist_archive(
        "x",
        "1",
        vec![
            Item::exe("lib/libdlopener.so", l.dlopener.clone()),
            Item::exe("lib/plugins/libplugin.so.1", l.plugin.clone()),
        ],
    );
    let out = d.join("out");
    let report = ok_json(&unpack(&d.archive(&a, Compression::Xz), &out, &["--json"]));
    assert_eq!(
        runpath(&out.join("lib/lib/libdlopener.so")).as_deref(),
        Some("$ORIGIN/plugins")
    );
    let f = &report["autopatch"]["files"][0];
    assert_eq!(
        f["needs"]["libplugin.so.1"],
        serde_json::json!({"from": "own", "dir": "lib/lib/plugins"})
    );
    // Without the plugin, the note makes it an unresolved need.
    let a = redist_archive(
        "x",
        "1",
        vec![Item::exe("lib/libdlopener.so", l.dlopener.clone())],
    );
    let o = unpack(&d.archive(&a, Compression::Xz), &d.join("out2"), &[]);
    assert!(
        stderr(&o).contains("lib/lib/libdlopener.so: libplugin.so.1"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn static_object_and_foreign_files_are_skipped_with_reasons() {
    let d = Dir::new();
    let l = linked();
    let a = redist_archive(
        "x",
        "1",
        vec![
            Item::exe("bin/app", l.app.clone()),
            Item::exe("bin/static_app", l.static_app.clone()),
            Item::file("lib/libdep.o", l.object.clone()),
            Item::exe("lib/libuser.so.1", l.libuser.clone()),
            Item::exe("lib/libdep.so.1", l.libdep.clone()),
            Item::exe("lib/aarch64/libforeign.so", with_machine(&l.libdep, 183)),
        ],
    );
    let out = d.join("out");
    let report = ok_json(&unpack(&d.archive(&a, Compression::Xz), &out, &["--json"]));
    let skipped: Vec<(String, String)> = report["autopatch"]["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["path"].as_str().unwrap().to_owned(),
                s["reason"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        skipped,
        [
            (
                "bin/bin/static_app".to_owned(),
                "statically linked".to_owned()
            ),
            (
                "lib/lib/aarch64/libforeign.so".to_owned(),
                "other machine (e_machine 183)".to_owned()
            ),
            (
                "lib/lib/libdep.o".to_owned(),
                "relocatable object".to_owned()
            ),
        ]
    );
    assert_eq!(
        std::fs::read(out.join("bin/bin/static_app")).unwrap(),
        l.static_app,
        "skipped files are untouched"
    );
    runs_app(&out.join("bin/bin/app"));
}

#[test]
fn long_interpreter_path_runs() {
    let d = Dir::new();
    let loader = elfpatch::read(Path::new("/bin/sh"))
        .unwrap()
        .interpreter
        .expect("the system has a loader");
    let long_dir: PathBuf = d.join(&format!("{}/{}", "i".repeat(60), "n".repeat(60)));
    std::fs::create_dir_all(&long_dir).unwrap();
    let link = long_dir.join("ld-linux-long-name-for-testing.so.2");
    std::os::unix::fs::symlink(&loader, &link).unwrap();
    assert!(link.to_str().unwrap().len() > 150);
    let out = d.join("out");
    let report = ok_json(&unpack(
        &d.archive(&app_component(true), Compression::Xz),
        &out,
        &["--json", "--interpreter", link.to_str().unwrap()],
    ));
    let app = out.join("bin/bin/app");
    assert_eq!(
        elfpatch::read(&app).unwrap().interpreter.as_deref(),
        Some(link.to_str().unwrap())
    );
    runs_app(&app);
    // Libraries have no PT_INTERP and get none.
    assert_eq!(
        elfpatch::read(&out.join("lib/lib/libuser.so.1.0"))
            .unwrap()
            .interpreter,
        None
    );
    let files = report["autopatch"]["files"].as_array().unwrap();
    assert!(files
        .iter()
        .any(|f| f["path"] == "bin/bin/app" && f["interpreter"] == link.to_str().unwrap()));
}

#[test]
fn no_patch_leaves_files_byte_identical() {
    let d = Dir::new();
    let out = d.join("out");
    let report = ok_json(&unpack(
        &d.archive(&app_component(false), Compression::Xz),
        &out,
        &["--json", "--no-patch"],
    ));
    assert_eq!(report["autopatch"], serde_json::Value::Null);
    assert_eq!(
        std::fs::read(out.join("bin/bin/app")).unwrap(),
        linked().app
    );
}
