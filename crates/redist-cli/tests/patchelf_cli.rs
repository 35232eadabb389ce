//! `redist patchelf` against Debian's `patchelf` (the oracle, installed by
//! .ci/run): same stdout and exit codes for the print operations, the same
//! values read back after edits, and the loader still runs the results.

mod common;

use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;

fn oracle() -> &'static str {
    assert!(
        Command::new("patchelf")
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success()),
        "Debian's patchelf is needed as the oracle: apt-get install patchelf"
    );
    "patchelf"
}

/// Our binary under the name `patchelf` (a symlink), as Nix scripts call it.
fn ours(d: &Dir) -> PathBuf {
    let link = d.join("bin/patchelf");
    if !link.exists() {
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_redist"), &link).unwrap();
    }
    link
}

fn run_tool(tool: impl AsRef<std::ffi::OsStr>, args: &[&std::ffi::OsStr]) -> Output {
    Command::new(tool).args(args).output().expect("run tool")
}

/// Fixture files: a PIE, a non-PIE, a library with RUNPATH, one with RPATH,
/// one without any, and a static executable.
fn fixtures(d: &Dir) -> Vec<PathBuf> {
    let l = redist_fixtures::linked();
    let c = redist_fixtures::testdata().join("c");
    let mut files = vec![];
    let mut write = |name: &str, data: &[u8]| {
        let p = d.join(name);
        std::fs::write(&p, data).unwrap();
        let mut perm = std::fs::metadata(&p).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&p, perm).unwrap();
        files.push(p);
    };
    write("app", &l.app);
    write("libuser.so", &l.libuser);
    write("static_app", &l.static_app);
    let cc = |args: &[&str], out: &str| {
        let st = Command::new("cc")
            .args(args)
            .arg("-o")
            .arg(d.join(out))
            .status()
            .unwrap();
        assert!(st.success());
        d.join(out)
    };
    let hello = c.join("hello.c");
    let lib = c.join("libdemo.c");
    files.push(cc(&["-no-pie", hello.to_str().unwrap()], "nopie"));
    files.push(cc(
        &[
            "-shared",
            "-fPIC",
            "-Wl,-rpath,/opt/a:/opt/b",
            "-Wl,--enable-new-dtags",
            "-Wl,-soname,libr.so.1",
            lib.to_str().unwrap(),
        ],
        "librunpath.so",
    ));
    files.push(cc(
        &[
            "-shared",
            "-fPIC",
            "-Wl,-rpath,/opt/old",
            "-Wl,--disable-new-dtags",
            lib.to_str().unwrap(),
        ],
        "librpath.so",
    ));
    files
}

const PRINTS: [&str; 4] = [
    "--print-interpreter",
    "--print-soname",
    "--print-rpath",
    "--print-needed",
];

#[test]
fn print_operations_match_patchelf() {
    let d = Dir::new();
    let files = fixtures(&d);
    let me = ours(&d);
    for f in &files {
        for p in PRINTS {
            let a = run_tool(oracle(), &[p.as_ref(), f.as_os_str()]);
            let b = run_tool(&me, &[p.as_ref(), f.as_os_str()]);
            assert_eq!(
                (String::from_utf8_lossy(&b.stdout), b.status.code()),
                (String::from_utf8_lossy(&a.stdout), a.status.code()),
                "{p} {}: stderr ours {:?} theirs {:?}",
                f.display(),
                stderr(&b),
                stderr(&a)
            );
        }
        // All four at once: patchelf's fixed order.
        let all: Vec<&std::ffi::OsStr> = PRINTS
            .iter()
            .map(|p| p.as_ref())
            .chain([f.as_os_str()])
            .collect();
        let a = run_tool(oracle(), &all);
        let b = run_tool(&me, &all);
        assert_eq!(
            (b.stdout, b.status.code()),
            (a.stdout, a.status.code()),
            "{}",
            f.display()
        );
    }
}

fn copy(d: &Dir, from: &Path, to: &str) -> PathBuf {
    let p = d.join(to);
    std::fs::copy(from, &p).unwrap();
    p
}

fn print(tool: impl AsRef<std::ffi::OsStr>, what: &str, f: &Path) -> String {
    String::from_utf8_lossy(&run_tool(tool, &[what.as_ref(), f.as_os_str()]).stdout).into_owned()
}

#[test]
fn edits_read_back_the_same_through_both_tools() {
    let d = Dir::new();
    let me = ours(&d);
    let files = fixtures(&d);
    let long = format!("/{}/lib:$ORIGIN/../lib", "r".repeat(200));
    for f in files.iter().filter(|f| !f.ends_with("static_app")) {
        let mine = copy(&d, f, "mine");
        let theirs = copy(&d, f, "theirs");
        // Ours: both edits in one call (one layout change).
        let o = run_tool(
            &me,
            &[
                "--set-rpath".as_ref(),
                long.as_ref(),
                "--add-needed".as_ref(),
                "libextra.so.1".as_ref(),
                mine.as_os_str(),
            ],
        );
        assert!(o.status.success(), "{}: {}", f.display(), stderr(&o));
        // Debian's patchelf 0.14.3 writes a wrong RUNPATH offset when given
        // both in one call, so it gets one call per edit.
        for edit in [
            ["--set-rpath", long.as_str()],
            ["--add-needed", "libextra.so.1"],
        ] {
            let o = run_tool(
                oracle(),
                &[edit[0].as_ref(), edit[1].as_ref(), theirs.as_os_str()],
            );
            assert!(o.status.success(), "{}: {}", f.display(), stderr(&o));
        }
        let readelf = |p: &Path| {
            let o = Command::new("readelf").arg("-d").arg(p).output().unwrap();
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .filter(|l| l.contains("RUNPATH") || l.contains("RPATH") || l.contains("NEEDED"))
                .map(|l| l.split_once(')').map_or(l, |x| x.1).trim().to_owned())
                .collect::<Vec<_>>()
        };
        let mut a = readelf(&mine);
        let mut b = readelf(&theirs);
        a.sort();
        b.sort();
        assert_eq!(a, b, "readelf -d of {}", f.display());
        for what in [
            "--print-rpath",
            "--print-needed",
            "--print-soname",
            "--print-interpreter",
        ] {
            assert_eq!(
                print(oracle(), what, &mine),
                print(oracle(), what, &theirs),
                "{what} of {}",
                f.display()
            );
            assert_eq!(
                print(&me, what, &mine),
                print(oracle(), what, &mine),
                "{what} of {}",
                f.display()
            );
        }
    }
}

#[test]
fn patched_programs_still_run() {
    let d = Dir::new();
    let me = ours(&d);
    let files = fixtures(&d);
    for name in ["nopie", "app"] {
        let f = files.iter().find(|p| p.ends_with(name)).unwrap();
        let before = Command::new(f)
            .env("LD_LIBRARY_PATH", d.path())
            .output()
            .unwrap();
        let long_loader_dir = d.join(&"l".repeat(150));
        std::fs::create_dir_all(&long_loader_dir).unwrap();
        let loader = print(oracle(), "--print-interpreter", f).trim().to_owned();
        let link = long_loader_dir.join("ld.so");
        let _ = std::os::unix::fs::symlink(&loader, &link);
        let o = run_tool(
            &me,
            &[
                "--set-interpreter".as_ref(),
                link.as_os_str(),
                "--set-rpath".as_ref(),
                d.path().as_os_str(),
                f.as_os_str(),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let after = Command::new(f)
            .env_remove("LD_LIBRARY_PATH")
            .output()
            .unwrap();
        assert_eq!(
            after.stdout, before.stdout,
            "{name} prints what it printed before"
        );
        assert_eq!(
            print(oracle(), "--print-interpreter", f).trim(),
            link.to_str().unwrap()
        );
    }
}

#[test]
fn at_file_output_and_several_files() {
    let d = Dir::new();
    let me = ours(&d);
    let files = fixtures(&d);
    let lib = files.iter().find(|p| p.ends_with("librunpath.so")).unwrap();
    std::fs::write(d.join("rpath.txt"), "/from/a/file").unwrap();
    let out = d.join("out.so");
    let arg = format!("@{}", d.join("rpath.txt").display());
    let o = run_tool(
        &me,
        &[
            "--set-rpath".as_ref(),
            arg.as_ref(),
            "--output".as_ref(),
            out.as_os_str(),
            lib.as_os_str(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(print(oracle(), "--print-rpath", &out), "/from/a/file\n");
    assert_eq!(
        print(oracle(), "--print-rpath", lib),
        "/opt/a:/opt/b\n",
        "--output leaves the input alone"
    );
    // Several files at once; output in argument order.
    let a = copy(&d, lib, "a.so");
    let b = copy(
        &d,
        files.iter().find(|p| p.ends_with("librpath.so")).unwrap(),
        "b.so",
    );
    let o = run_tool(
        &me,
        &[
            "--print-rpath".as_ref(),
            "--set-rpath".as_ref(),
            "/new".as_ref(),
            a.as_os_str(),
            b.as_os_str(),
        ],
    );
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "/opt/a:/opt/b\n/opt/old\n",
        "prints show the files before the edit"
    );
    assert_eq!(print(oracle(), "--print-rpath", &a), "/new\n");
    assert_eq!(print(oracle(), "--print-rpath", &b), "/new\n");
    // `redist patchelf` is the same command.
    let o = run(
        &["patchelf".as_ref(), "--print-rpath".as_ref(), a.as_os_str()],
        None,
    );
    assert_eq!(stdout(&o), "/new\n");
}

#[test]
fn errors_exit_1_with_a_message() {
    let d = Dir::new();
    let me = ours(&d);
    std::fs::write(d.join("notelf"), "hello\n").unwrap();
    let o = run_tool(
        &me,
        &["--print-rpath".as_ref(), d.join("notelf").as_os_str()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with("patchelf: "), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("notelf"),
        "names the file: {}",
        stderr(&o)
    );
    let o = run_tool(
        &me,
        &["--print-rpath".as_ref(), d.join("missing").as_os_str()],
    );
    assert_eq!(o.status.code(), Some(1));
    let o = run_tool(&me, &["--print-rpath".as_ref()]);
    assert_eq!(o.status.code(), Some(2), "usage errors are clap's 2");
    // Like patchelf 0.19: the resolution cache and --force-rpath exclude
    // each other; nothing is written.
    let before = std::fs::read(d.join("notelf")).unwrap();
    let o = run_tool(
        &me,
        &[
            "--build-resolution-cache".as_ref(),
            "--force-rpath".as_ref(),
            d.join("notelf").as_os_str(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "patchelf: --build-resolution-cache cannot be combined with --force-rpath\n"
    );
    assert_eq!(std::fs::read(d.join("notelf")).unwrap(), before);
    // One search-path edit at a time, like patchelf.
    let o = run_tool(
        &me,
        &[
            "--set-rpath".as_ref(),
            "/a".as_ref(),
            "--add-rpath".as_ref(),
            "/b".as_ref(),
            d.join("notelf").as_os_str(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cannot be combined"), "{}", stderr(&o));
}

#[test]
fn output_is_written_whole_or_not_at_all() {
    let d = Dir::new();
    let me = ours(&d);
    let files = fixtures(&d);
    let lib = files.iter().find(|p| p.ends_with("librunpath.so")).unwrap();
    let before = std::fs::read(lib).unwrap();
    // A device: written to, never read back, never replaced.
    let o = run_tool(
        &me,
        &[
            "--set-rpath".as_ref(),
            "/x".as_ref(),
            "--output".as_ref(),
            "/dev/null".as_ref(),
            lib.as_os_str(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert_eq!(
        std::fs::read(lib).unwrap(),
        before,
        "the input is untouched"
    );

    // A failing edit leaves nothing at the output path.
    std::fs::write(d.join("notelf"), "hello\n").unwrap();
    let dest = d.join("out/never.so");
    std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
    let o = run_tool(
        &me,
        &[
            "--set-rpath".as_ref(),
            "/x".as_ref(),
            "--output".as_ref(),
            dest.as_os_str(),
            d.join("notelf").as_os_str(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!dest.exists());
    assert_eq!(
        std::fs::read_dir(dest.parent().unwrap()).unwrap().count(),
        0,
        "no temporary file left"
    );

    // Only --output: the file is checked and copied, like patchelf.
    let copy_out = d.join("out/copy.so");
    let o = run_tool(
        &me,
        &["--output".as_ref(), copy_out.as_os_str(), lib.as_os_str()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&copy_out).unwrap(), before);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&copy_out).unwrap().permissions().mode() & 0o777,
        0o755,
        "the input's mode"
    );
    let o = run_tool(
        &me,
        &[
            "--output".as_ref(),
            d.join("out/bad").as_os_str(),
            d.join("notelf").as_os_str(),
        ],
    );
    assert_eq!(o.status.code(), Some(1), "a corrupt input is an error");
    assert!(!d.join("out/bad").exists());
}

#[test]
fn no_edit_still_checks_the_file() {
    let d = Dir::new();
    let me = ours(&d);
    std::fs::write(d.join("notelf"), "hello\n").unwrap();
    let o = run_tool(&me, &[d.join("notelf").as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("notelf"), "{}", stderr(&o));
    let o = run_tool(oracle(), &[d.join("notelf").as_os_str()]);
    assert_eq!(o.status.code(), Some(1), "patchelf agrees");
}

/// Each print flag gives the same exit code and output from both tools.
fn prints_agree(me: &Path, file: &Path, flags: &[&str]) {
    for flag in flags {
        let theirs = run_tool(oracle(), &[flag.as_ref(), file.as_os_str()]);
        let mine = run_tool(me, &[flag.as_ref(), file.as_os_str()]);
        assert_eq!(
            (mine.status.code(), stdout(&mine)),
            (theirs.status.code(), stdout(&theirs)),
            "{flag}: {}",
            stderr(&mine)
        );
    }
}

/// `strip --only-keep-debug` output: PT_INTERP and PT_DYNAMIC with no bytes
/// in the file. patchelf treats it as a file without a dynamic section.
#[test]
fn debug_only_files_read_like_patchelf_and_take_an_interpreter() {
    let d = Dir::new();
    let me = ours(&d);
    let exe = fixtures(&d)
        .into_iter()
        .find(|p| p.ends_with("app"))
        .unwrap();
    let dbg = d.join("app.debug");
    let st = Command::new("strip")
        .arg("--only-keep-debug")
        .arg(&exe)
        .arg("-o")
        .arg(&dbg)
        .status()
        .expect("strip (binutils)");
    assert!(st.success());
    // (Debian's patchelf 0.14 reads the stripped `.dynamic` bytes from the
    // file anyway and prints whatever lies there for --print-needed: no
    // oracle for that one.)
    let mine = run_tool(&me, &["--print-needed".as_ref(), dbg.as_os_str()]);
    assert_eq!(
        (mine.status.code(), stdout(&mine)),
        (Some(0), String::new())
    );
    prints_agree(
        &me,
        &dbg,
        &["--print-rpath", "--print-interpreter", "--print-soname"],
    );
    let o = run_tool(
        &me,
        &[
            "--set-interpreter".as_ref(),
            "/lib64/ld-linux-x86-64.so.2".as_ref(),
            dbg.as_os_str(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        print(oracle(), "--print-interpreter", &dbg),
        "/lib64/ld-linux-x86-64.so.2\n"
    );
    // An edit of the dynamic section itself is refused clearly.
    let o = run_tool(
        &me,
        &["--set-rpath".as_ref(), "/x".as_ref(), dbg.as_os_str()],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("dynamic"), "{}", stderr(&o));
}

fn readelf_out(args: &[&str], f: &Path) -> String {
    let o = Command::new("readelf").args(args).arg(f).output().unwrap();
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// patchelf 0.18–0.19's OS ABI and stack flags (Debian's 0.14 has none of
/// them: readelf is the oracle).
#[test]
fn os_abi_and_execstack_like_patchelf_0_19() {
    let d = Dir::new();
    let me = ours(&d);
    let nopie = fixtures(&d)
        .into_iter()
        .find(|p| p.ends_with("nopie"))
        .unwrap();
    let orig = std::fs::read(&nopie).unwrap();
    let expected = Command::new(&nopie).output().unwrap().stdout;
    let p = |args: &[&str]| {
        let mut all: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
        all.push(nopie.as_os_str());
        run_tool(&me, &all)
    };

    assert_eq!(stdout(&p(&["--print-os-abi"])), "System V\n");
    assert!(p(&["--set-os-abi", "Linux"]).status.success());
    assert!(readelf_out(&["-h"], &nopie).contains("UNIX - GNU"));
    // Prints show the file before the edit.
    assert_eq!(
        stdout(&p(&["--print-os-abi", "--set-os-abi", " SyStEm-V "])),
        "Linux\n"
    );
    assert_eq!(std::fs::read(&nopie).unwrap(), orig, "back to the original");
    let o = p(&["--set-os-abi", "0x61"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("unrecognized OS ABI"), "{}", stderr(&o));

    assert_eq!(stdout(&p(&["--print-execstack"])), "execstack: -\n");
    assert!(p(&["--set-execstack"]).status.success());
    assert!(
        readelf_out(&["-lW"], &nopie)
            .lines()
            .any(|l| l.contains("GNU_STACK") && l.contains("RWE")),
        "{}",
        readelf_out(&["-lW"], &nopie)
    );
    assert_eq!(stdout(&p(&["--print-execstack"])), "execstack: X\n");
    assert_eq!(Command::new(&nopie).output().unwrap().stdout, expected);
    // Print beats clear, like patchelf: nothing changes.
    assert_eq!(
        stdout(&p(&["--print-execstack", "--clear-execstack"])),
        "execstack: X\n"
    );
    assert!(p(&["--clear-execstack"]).status.success());
    assert_eq!(std::fs::read(&nopie).unwrap(), orig);

    // No PT_GNU_STACK: told, file untouched.
    let lib = d.join("librunpath.so");
    let o = run_tool(&me, &["--print-execstack".as_ref(), lib.as_os_str()]);
    assert!(stdout(&o).starts_with("execstack: "), "{}", stdout(&o));
}

#[test]
fn no_default_lib_and_debug_tag() {
    let d = Dir::new();
    let me = ours(&d);
    let files = fixtures(&d);
    let lib = files.iter().find(|p| p.ends_with("librunpath.so")).unwrap();
    let ours_lib = copy(&d, lib, "ours.so");
    let theirs_lib = copy(&d, lib, "theirs.so");
    let o = run_tool(&me, &["--no-default-lib".as_ref(), ours_lib.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run_tool(
        oracle(),
        &["--no-default-lib".as_ref(), theirs_lib.as_os_str()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let flags = |f: &Path| {
        readelf_out(&["-d"], f)
            .lines()
            .find(|l| l.contains("(FLAGS_1)"))
            .map(|l| l.split("Flags:").nth(1).unwrap_or("").trim().to_owned())
    };
    assert_eq!(flags(&ours_lib), flags(&theirs_lib));
    assert!(flags(&ours_lib).unwrap().contains("NODEFLIB"));
    // Again: no change.
    let before = std::fs::read(&ours_lib).unwrap();
    run_tool(&me, &["--no-default-lib".as_ref(), ours_lib.as_os_str()]);
    assert_eq!(std::fs::read(&ours_lib).unwrap(), before);

    let o = run_tool(&me, &["--add-debug-tag".as_ref(), ours_lib.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let dynamic = readelf_out(&["-d"], &ours_lib);
    assert_eq!(dynamic.matches("(DEBUG)").count(), 1, "{dynamic}");
    let before = std::fs::read(&ours_lib).unwrap();
    run_tool(&me, &["--add-debug-tag".as_ref(), ours_lib.as_os_str()]);
    assert_eq!(
        std::fs::read(&ours_lib).unwrap(),
        before,
        "one DT_DEBUG only"
    );
    // Still a library the loader takes.
    let o = Command::new("python3")
        .args(["-c", "import ctypes,sys; ctypes.CDLL(sys.argv[1])"])
        .arg(&ours_lib)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    // --no-sort and --debug are accepted.
    let o = run_tool(
        &me,
        &[
            "--no-sort".as_ref(),
            "--debug".as_ref(),
            "--set-rpath".as_ref(),
            "/y".as_ref(),
            ours_lib.as_os_str(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("patching ELF file"), "{}", stderr(&o));
}

/// A library whose PT_DYNAMIC was turned into PT_NULL (a damaged program
/// header table; the section headers still describe `.dynamic`): patchelf
/// reads and edits it through the section headers, and so do we.
#[test]
fn dynamic_found_through_section_headers_without_pt_dynamic() {
    let d = Dir::new();
    let me = ours(&d);
    let files = fixtures(&d);
    let lib = files.iter().find(|p| p.ends_with("librunpath.so")).unwrap();
    let damaged = copy(&d, lib, "damaged.so");
    let mut bytes = std::fs::read(&damaged).unwrap();
    // ELF64 little endian: e_phoff at 0x20, e_phentsize at 0x36, e_phnum at 0x38.
    let u16_at = |b: &[u8], o: usize| u16::from_le_bytes([b[o], b[o + 1]]) as usize;
    let phoff = u64::from_le_bytes(bytes[0x20..0x28].try_into().unwrap()) as usize;
    let (entsize, phnum) = (u16_at(&bytes, 0x36), u16_at(&bytes, 0x38));
    let at = (0..phnum)
        .map(|i| phoff + i * entsize)
        .find(|&at| bytes[at..at + 4] == 2u32.to_le_bytes())
        .expect("PT_DYNAMIC");
    bytes[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
    std::fs::write(&damaged, &bytes).unwrap();
    prints_agree(
        &me,
        &damaged,
        &["--print-rpath", "--print-soname", "--print-needed"],
    );
    let o = run_tool(
        &me,
        &[
            "--set-rpath".as_ref(),
            "/a/much/longer/runpath/than/the/one/before".as_ref(),
            damaged.as_os_str(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        print(oracle(), "--print-rpath", &damaged),
        "/a/much/longer/runpath/than/the/one/before\n"
    );
}

#[test]
fn clear_symbol_version_matches_patchelf() {
    let d = Dir::new();
    let me = ours(&d);
    let app = fixtures(&d)
        .into_iter()
        .find(|p| p.ends_with("nopie"))
        .unwrap();
    let syms = readelf_out(&["--dyn-syms", "-W"], &app);
    let versioned: Vec<String> = syms
        .lines()
        .filter_map(|l| l.split_whitespace().nth(7))
        .filter(|n| n.contains('@'))
        .map(|n| n.split('@').next().unwrap().to_owned())
        .collect();
    let sym = versioned.first().expect("a versioned symbol").clone();
    let mine = copy(&d, &app, "mine");
    let theirs = copy(&d, &app, "theirs");
    for (tool, f) in [(me.as_os_str(), &mine), (oracle().as_ref(), &theirs)] {
        let o = run_tool(
            tool,
            &[
                "--clear-symbol-version".as_ref(),
                sym.as_ref(),
                f.as_os_str(),
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let after = readelf_out(&["--dyn-syms", "-W"], &mine);
    assert_eq!(after, readelf_out(&["--dyn-syms", "-W"], &theirs));
    assert_ne!(after, syms, "{sym} lost its version");
    assert_eq!(
        Command::new(&mine).output().unwrap().stdout,
        Command::new(&app).output().unwrap().stdout
    );
}

/// patchelf 0.19's --rename-dynamic-symbols (Debian's 0.14 has none): the
/// loader is the oracle. A library's export and the program's import are
/// both renamed; the program still runs, the old name is gone.
#[test]
fn rename_dynamic_symbols_keeps_programs_running() {
    let d = Dir::new();
    let me = ours(&d);
    let l = redist_fixtures::linked();
    let dir = d.join("rename");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, data) in [
        ("app", &l.app),
        ("libuser.so.1", &l.libuser),
        ("libdep.so.1", &l.libdep),
    ] {
        std::fs::write(dir.join(name), data).unwrap();
    }
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.join("app"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let runs = || {
        Command::new(dir.join("app"))
            .env("LD_LIBRARY_PATH", &dir)
            .output()
            .unwrap()
    };
    assert_eq!(stdout(&runs()), "app says 42\n");
    let map = d.join("names.map");
    std::fs::write(
        &map,
        "user_value   value_of_the_user_renamed_with_a_longer_name   extra words\n\nignored after a blank line\n",
    )
    .unwrap();
    for f in ["app", "libuser.so.1"] {
        let o = run_tool(
            &me,
            &[
                "--rename-dynamic-symbols".as_ref(),
                map.as_os_str(),
                dir.join(f).as_os_str(),
            ],
        );
        assert!(o.status.success(), "{f}: {}", stderr(&o));
    }
    let syms = readelf_out(&["--dyn-syms", "-W"], &dir.join("libuser.so.1"));
    assert!(
        syms.contains("value_of_the_user_renamed_with_a_longer_name"),
        "{syms}"
    );
    assert!(
        !syms.split_whitespace().any(|w| w == "user_value"),
        "{syms}"
    );
    let o = runs();
    assert_eq!(stdout(&o), "app says 42\n", "{}", stderr(&o));
    // A program still asking for the old name no longer finds it.
    std::fs::write(dir.join("app"), &l.app).unwrap();
    let o = runs();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("user_value"), "{}", stderr(&o));
    // Malformed map files are errors naming the line.
    std::fs::write(&map, "only_one\n").unwrap();
    let o = run_tool(
        &me,
        &[
            "--rename-dynamic-symbols".as_ref(),
            map.as_os_str(),
            dir.join("libdep.so.1").as_os_str(),
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("names.map:1: "), "{}", stderr(&o));
}

#[test]
fn build_resolution_cache_like_patchelf_0_19() {
    let d = Dir::new();
    let me = ours(&d);
    let files = fixtures(&d);
    let app = files.iter().find(|p| p.ends_with("app")).unwrap();
    let lib = d.join("libs");
    std::fs::create_dir_all(&lib).unwrap();
    let needed = print(&me, "--print-needed", app);
    let first = needed.lines().next().unwrap().to_owned();
    std::fs::write(lib.join(&first), "").unwrap();
    // The cache is built after the other edits of the same command, from
    // the run path they leave.
    let o = run_tool(
        &me,
        &[
            "--set-rpath".as_ref(),
            lib.as_os_str(),
            "--build-resolution-cache".as_ref(),
            app.as_os_str(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let notes = readelf_out(&["-n"], app);
    assert!(
        notes.contains("NixOS") && notes.contains("0x63a86cb6"),
        "{notes}"
    );
    let dump = readelf_out(&["-x", ".note.nixos.ldcache"], app);
    assert!(dump.contains("NixO"), "{dump}");
    // Nothing to resolve: patchelf's warning, exit 0, the file unchanged.
    let static_app = files.iter().find(|p| p.ends_with("static_app")).unwrap();
    let before = std::fs::read(static_app).unwrap();
    let o = run_tool(
        &me,
        &["--build-resolution-cache".as_ref(), static_app.as_os_str()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).starts_with("warning: --build-resolution-cache: "),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("no cache written"), "{}", stderr(&o));
    assert_eq!(std::fs::read(static_app).unwrap(), before);
    // A later edit of the run path takes the note away.
    let o = run_tool(
        &me,
        &[
            "--set-rpath".as_ref(),
            "/elsewhere".as_ref(),
            app.as_os_str(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!readelf_out(&["-n"], app).contains("NixOS"));
}
