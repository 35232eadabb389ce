//! Foreign machines and ELF32, judged by a real loader: i386 executables
//! built with `gcc -m32` run natively, AArch64 and big-endian PPC64 ones
//! under `qemu-user` with the cross toolchain's sysroot. Libraries are
//! `dlopen`ed by a harness built for the same machine.
//!
//! Each test builds its fixtures with the machine's compiler, patches them
//! through the public API, reads the values back with `read`, `readelf` and
//! Debian's `patchelf`, asks `eu-elflint` whether anything new is wrong,
//! checks the layout invariants with the machine's page size (64 KiB on
//! AArch64 and PPC64) and then runs the result, also after `strip`.

mod common;

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use elfpatch::{patch_file, read, Class, Edits, Endian, RunpathEdit};

/// A machine we build for and run on.
struct Arch {
    name: &'static str,
    /// The compiler and the arguments that select the machine.
    cc: &'static [&'static str],
    /// The Debian packages that provide the compiler and its libc.
    cc_packages: &'static str,
    strip: &'static str,
    /// The Debian package that provides `strip`.
    strip_package: &'static str,
    /// `qemu-user` binary and sysroot, for machines that are not this one.
    qemu: Option<(&'static str, &'static str)>,
    /// The dynamic loader of the machine (the target of our long symlink).
    loader: &'static str,
    /// Where the machine's own shared libraries are (libc and friends).
    libdir: &'static str,
    page: u64,
    machine: u16,
    class: Class,
    endian: Endian,
}

const I386: Arch = Arch {
    name: "i386",
    cc: &["cc", "-m32"],
    // gcc-multilib would do, but Debian 12 makes it conflict with the
    // cross compilers below; gcc-12-multilib does not.
    cc_packages: "gcc-12-multilib",
    strip: "strip",
    strip_package: "binutils",
    qemu: None,
    loader: "/lib/ld-linux.so.2",
    libdir: "/usr/lib32",
    page: 4096,
    machine: 3,
    class: Class::Elf32,
    endian: Endian::Little,
};

const AARCH64: Arch = Arch {
    name: "aarch64",
    cc: &["aarch64-linux-gnu-gcc"],
    cc_packages: "gcc-aarch64-linux-gnu libc6-dev-arm64-cross",
    strip: "aarch64-linux-gnu-strip",
    strip_package: "binutils-aarch64-linux-gnu",
    qemu: Some(("qemu-aarch64", "/usr/aarch64-linux-gnu")),
    loader: "/usr/aarch64-linux-gnu/lib/ld-linux-aarch64.so.1",
    libdir: "/usr/aarch64-linux-gnu/lib",
    page: 65536,
    machine: 183,
    class: Class::Elf64,
    endian: Endian::Little,
};

const PPC64: Arch = Arch {
    name: "ppc64",
    cc: &["powerpc64-linux-gnu-gcc"],
    cc_packages: "gcc-powerpc64-linux-gnu libc6-dev-ppc64-cross",
    strip: "powerpc64-linux-gnu-strip",
    strip_package: "binutils-powerpc64-linux-gnu",
    qemu: Some(("qemu-ppc64", "/usr/powerpc64-linux-gnu")),
    loader: "/usr/powerpc64-linux-gnu/lib/ld64.so.1",
    libdir: "/usr/powerpc64-linux-gnu/lib",
    page: 65536,
    machine: 21,
    class: Class::Elf64,
    endian: Endian::Big,
};

/// The library every fixture gains as `DT_NEEDED`: present on every machine.
const EXTRA_NEEDED: &str = "libm.so.6";

impl Arch {
    /// Fails with the packages to install when the toolchain cannot build
    /// and run a dynamically linked program for this machine.
    fn require(&self, d: &Dir) {
        if let Some((qemu, _)) = self.qemu {
            require(qemu, "qemu-user");
        }
        let src = d.path(&format!("probe-{}.c", self.name));
        fs::write(&src, "int main(void) { return 0; }\n").unwrap();
        let exe = d.path(&format!("probe-{}", self.name));
        let built = Command::new(self.cc[0])
            .args(&self.cc[1..])
            .arg(&src)
            .arg("-o")
            .arg(&exe)
            .output();
        let ok = matches!(&built, Ok(o) if o.status.success());
        assert!(
            ok,
            "building for {} needs `{}`: install it with `apt-get install {}` ({})",
            self.name,
            self.cc.join(" "),
            self.cc_packages,
            match &built {
                Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                Err(e) => e.to_string(),
            }
        );
        require(self.strip, self.strip_package);
        let ran = self.run(&exe, None);
        assert!(
            ran.is_ok(),
            "{}: cannot run a program built with `{}` (install `apt-get install {}{}`): {ran:?}",
            self.name,
            self.cc.join(" "),
            self.cc_packages,
            if self.qemu.is_some() {
                " qemu-user"
            } else {
                ""
            },
        );
    }

    /// Runs `self.cc ARGS -o OUT` in `d`.
    fn cc(&self, d: &Dir, out: &str, args: &[&str]) -> PathBuf {
        let out = d.path(out);
        fs::create_dir_all(out.parent().unwrap()).unwrap();
        let o = Command::new(self.cc[0])
            .args(&self.cc[1..])
            .args(args)
            .arg("-o")
            .arg(&out)
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{} {args:?} failed: {}",
            self.cc.join(" "),
            String::from_utf8_lossy(&o.stderr)
        );
        out
    }

    /// Runs `exe` (under qemu for foreign machines) without
    /// `LD_LIBRARY_PATH` unless given; its stdout, or why it failed.
    fn run(&self, exe: &Path, ld_library_path: Option<&Path>) -> Result<String, String> {
        self.run_with(exe, &[], ld_library_path)
    }

    fn run_with(
        &self,
        exe: &Path,
        args: &[&Path],
        ld_library_path: Option<&Path>,
    ) -> Result<String, String> {
        let mut c = match self.qemu {
            Some((qemu, sysroot)) => {
                let mut c = Command::new(qemu);
                c.arg("-L").arg(sysroot).arg(exe);
                c
            }
            None => Command::new(exe),
        };
        c.args(args)
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("QEMU_LD_PREFIX");
        if let Some(p) = ld_library_path {
            c.env("LD_LIBRARY_PATH", p);
        }
        let out = output(&mut c);
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(format!(
                "{} exited with {}: {}",
                exe.display(),
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ))
        }
    }

    /// A symlink to the machine's loader whose path is over 150 characters.
    fn long_loader_link(&self, d: &Dir) -> String {
        let mut dir = d.path(&format!("ld-{}", self.name));
        while dir.display().to_string().len() < 140 {
            dir = dir.join("a-rather-long-directory");
        }
        fs::create_dir_all(&dir).unwrap();
        let link = dir.join(Path::new(self.loader).file_name().unwrap());
        symlink(self.loader, &link).unwrap();
        link.display().to_string()
    }

    /// `lib/libgreet.so`, linked with an old RUNPATH; from early_rodata.c
    /// (data right after the program header table) when `early`.
    fn greet_lib(&self, d: &Dir, early: bool) -> PathBuf {
        let src = testdata(if early { "early_rodata.c" } else { "greet.c" });
        let script = format!("-Wl,-T,{}", testdata("early_rodata.ld").display());
        let mut args = vec![
            "-shared",
            "-fPIC",
            src.to_str().unwrap(),
            "-Wl,-soname,libgreet.so",
            "-Wl,-rpath,/opt/old/lib,--enable-new-dtags",
        ];
        if early {
            args.extend([script.as_str(), "-Wl,--build-id=none"]);
        }
        self.cc(d, &format!("{}/lib/libgreet.so", self.name), &args)
    }

    fn lib_dir(&self, d: &Dir) -> PathBuf {
        d.path(&format!("{}/lib", self.name))
    }

    /// `dlopen_check` built for this machine.
    fn dlopen_check(&self, d: &Dir) -> PathBuf {
        let src = testdata("dlopen_check.c");
        let rel = format!("{}/tools/dlopen_check", self.name);
        if d.path(&rel).exists() {
            return d.path(&rel);
        }
        self.cc(d, &rel, &[src.to_str().unwrap(), "-ldl"])
    }

    fn dlopen(&self, d: &Dir, lib: &Path) -> Result<String, String> {
        let check = self.dlopen_check(d);
        self.run_with(&check, &[lib], None)
    }

    fn assert_dlopens(&self, d: &Dir, lib: &Path) {
        assert_eq!(
            self.dlopen(d, lib).as_deref(),
            Ok("ok\n"),
            "{}: dlopen({})",
            self.name,
            lib.display()
        );
    }

    /// A copy of `file` stripped with the machine's `strip`.
    fn stripped_copy(&self, d: &Dir, file: &Path) -> PathBuf {
        let to = d.path(&format!(
            "{}/stripped/{}",
            self.name,
            file.file_name().unwrap().to_str().unwrap()
        ));
        fs::create_dir_all(to.parent().unwrap()).unwrap();
        fs::copy(file, &to).unwrap();
        let out = Command::new(self.strip).arg(&to).output().unwrap();
        assert!(
            out.status.success(),
            "{} {}: {}",
            self.strip,
            to.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        to
    }
}

/// A RUNPATH longer than any the fixtures were linked with, ending in `dir`.
fn long_runpath(dir: &Path) -> String {
    format!(
        "/nonexistent/a/very/long/directory/name/that/does/not/fit/in/place:/another/one/for/good/measure:{}",
        dir.display()
    )
}

/// Executable flavours: (name, compiler flags, drop the section headers).
const EXE_FLAVOURS: &[(&str, &[&str], bool)] = &[
    ("pie", &["-pie", "-fPIE"], false),
    ("no-pie", &["-no-pie", "-fno-PIE"], false),
    ("pie-without-section-headers", &["-pie", "-fPIE"], true),
];

/// Patches executables of every flavour with a longer RUNPATH, a long
/// interpreter path and a new `DT_NEEDED`, and runs them.
fn executables_run_after_edits(arch: &Arch) {
    let d = Dir::new();
    arch.require(&d);
    arch.greet_lib(&d, false);
    let libdir = arch.lib_dir(&d);
    let interp = arch.long_loader_link(&d);
    assert!(interp.len() > 150, "{interp}");
    let main = testdata("main.c");
    let l = format!("-L{}", libdir.display());
    for &(flavour, flags, sstrip) in EXE_FLAVOURS {
        let what = format!("{} {flavour}", arch.name);
        let mut args = vec![
            main.to_str().unwrap(),
            l.as_str(),
            "-lgreet",
            "-Wl,-rpath,/opt/old,--enable-new-dtags",
        ];
        args.extend_from_slice(flags);
        let exe = arch.cc(&d, &format!("{}/bin/{flavour}", arch.name), &args);
        if sstrip {
            drop_section_headers(&exe);
        }
        let expected = arch.run(&exe, Some(&libdir)).unwrap();
        assert_eq!(expected, "hello from libgreet\n", "{what}");
        let orig = d.copy(&exe, &format!("{}/orig/{flavour}", arch.name));
        let info = read(&exe).unwrap();
        assert_eq!(
            (info.class, info.endian, info.machine),
            (arch.class, arch.endian, arch.machine),
            "{what}"
        );
        assert_eq!(info.runpath.as_deref(), Some("/opt/old"), "{what}");

        let runpath = long_runpath(&libdir);
        let edits = Edits {
            runpath: RunpathEdit::Set(runpath.clone()),
            interpreter: Some(interp.clone()),
            add_needed: vec![EXTRA_NEEDED.into()],
            ..Default::default()
        };
        assert!(patch_file(&exe, &edits).unwrap().changed, "{what}");

        let after = read(&exe).unwrap();
        assert_eq!(after.runpath.as_deref(), Some(runpath.as_str()), "{what}");
        assert_eq!(
            after.interpreter.as_deref(),
            Some(interp.as_str()),
            "{what}"
        );
        assert_eq!(after.needed[0], EXTRA_NEEDED, "{what}");
        assert_eq!(&after.needed[1..], &info.needed[..], "{what}");
        assert_eq!(readelf_runpath(&exe), after.runpath, "{what}");
        assert_eq!(readelf_interp(&exe), after.interpreter, "{what}");
        assert_eq!(readelf_needed(&exe), after.needed, "{what}");
        if !sstrip {
            assert_eq!(patchelf_print("rpath", &exe), runpath, "{what}");
            assert_eq!(patchelf_print("interpreter", &exe), interp, "{what}");
            assert_eq!(
                patchelf_print("needed", &exe),
                after.needed.join("\n"),
                "{what}"
            );
        }
        assert_layout_invariants(&exe, arch.page);
        assert_no_new_lint(&orig, &exe);

        // The loader finds libgreet through the new RUNPATH alone.
        assert_eq!(
            arch.run(&exe, None).as_deref(),
            Ok(expected.as_str()),
            "{what}"
        );
        if !sstrip {
            let s = arch.stripped_copy(&d, &exe);
            assert_eq!(
                arch.run(&s, None).as_deref(),
                Ok(expected.as_str()),
                "{what}, stripped"
            );
        }
    }
}

/// Patches a library (longer RUNPATH, new SONAME, new `DT_NEEDED`), loads
/// it with `dlopen`, and links a program against the patched file. With
/// `early`, data follows the program header table, and the file must be
/// shifted by whole pages to make room for the new segment's header.
fn library_loads_after_edits(arch: &Arch, early: bool) {
    let d = Dir::new();
    arch.require(&d);
    let lib = arch.greet_lib(&d, early);
    let orig = d.copy(&lib, &format!("{}/orig/libgreet.so", arch.name));
    arch.assert_dlopens(&d, &lib);
    let old_loads = loads(&lib);

    let runpath = long_runpath(Path::new("/opt/new/lib"));
    let soname = "libgreet-renamed-with-a-longer-soname.so.1";
    let edits = Edits {
        runpath: RunpathEdit::Set(runpath.clone()),
        soname: Some(soname.into()),
        add_needed: vec![EXTRA_NEEDED.into()],
        ..Default::default()
    };
    assert!(patch_file(&lib, &edits).unwrap().changed);
    let new_loads = loads(&lib);
    if early {
        let shift = new_loads[0].0 - old_loads[0].0;
        assert!(shift > 0 && shift % arch.page == 0, "shifted by {shift:#x}");
        assert_eq!(new_loads.len(), old_loads.len() + 2);
    } else {
        assert_eq!(new_loads[..old_loads.len()], old_loads[..]);
    }
    let info = read(&lib).unwrap();
    assert_eq!(info.runpath.as_deref(), Some(runpath.as_str()));
    assert_eq!(info.soname.as_deref(), Some(soname));
    assert_eq!(info.needed[0], EXTRA_NEEDED);
    assert_eq!(readelf_runpath(&lib), info.runpath);
    assert_eq!(readelf_soname(&lib), info.soname);
    assert_eq!(readelf_needed(&lib), info.needed);
    assert_eq!(patchelf_print("rpath", &lib), runpath);
    assert_eq!(patchelf_print("soname", &lib), soname);
    assert_eq!(patchelf_print("needed", &lib), info.needed.join("\n"));
    assert_layout_invariants(&lib, arch.page);
    assert_no_new_lint(&orig, &lib);

    arch.assert_dlopens(&d, &lib);
    let s = arch.stripped_copy(&d, &lib);
    arch.assert_dlopens(&d, &s);

    // The linker accepts the patched library and records its new SONAME.
    let main = testdata("main.c");
    let l = format!("-L{}", arch.lib_dir(&d).display());
    let exe = arch.cc(
        &d,
        &format!("{}/bin/linked-against-patched", arch.name),
        &[main.to_str().unwrap(), l.as_str(), "-lgreet"],
    );
    assert_eq!(readelf_needed(&exe)[0], soname);
    symlink("libgreet.so", arch.lib_dir(&d).join(soname)).unwrap();
    assert_eq!(
        arch.run(&exe, Some(&arch.lib_dir(&d))).as_deref(),
        Ok("hello from libgreet\n")
    );
}

#[test]
fn i386_executables_run_natively_after_runpath_interpreter_and_needed_edits() {
    executables_run_after_edits(&I386);
}

#[test]
fn i386_library_with_new_soname_runpath_and_needed_dlopens_from_a_32_bit_harness() {
    library_loads_after_edits(&I386, false);
}

#[test]
fn i386_library_shifted_to_grow_its_program_headers_dlopens() {
    library_loads_after_edits(&I386, true);
}

#[test]
fn aarch64_executables_run_under_qemu_after_longer_runpath_and_interpreter() {
    executables_run_after_edits(&AARCH64);
}

#[test]
fn aarch64_library_dlopens_under_qemu_after_edits() {
    library_loads_after_edits(&AARCH64, false);
}

#[test]
fn aarch64_library_shifted_by_64k_pages_to_grow_its_program_headers_dlopens() {
    library_loads_after_edits(&AARCH64, true);
}

#[test]
fn big_endian_ppc64_executables_run_under_qemu_after_longer_runpath_and_interpreter() {
    executables_run_after_edits(&PPC64);
}

#[test]
fn big_endian_ppc64_library_dlopens_under_qemu_after_edits() {
    library_loads_after_edits(&PPC64, false);
}

#[test]
fn big_endian_ppc64_library_shifted_to_grow_its_program_headers_dlopens() {
    library_loads_after_edits(&PPC64, true);
}

/// Every shared library of the machine's own library directory (libc,
/// libm, libstdc++, the sanitizers, …) takes a 200-character RUNPATH, a new
/// `DT_NEEDED` and a longer SONAME, and what `dlopen`ed before still does.
fn system_libraries_load_after_edits(arch: &Arch) {
    let d = Dir::new();
    arch.require(&d);
    let runpath = format!("/nonexistent/{}", "r".repeat(187));
    assert_eq!(runpath.len(), 200);
    let mut tried = 0;
    let mut loaded = 0;
    let mut failures = Vec::new();
    let mut names: Vec<PathBuf> = fs::read_dir(arch.libdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    names.sort();
    for lib in names {
        let name = lib.file_name().unwrap().to_string_lossy().into_owned();
        let meta = fs::symlink_metadata(&lib).unwrap();
        let bytes = fs::read(&lib).unwrap_or_default();
        if !meta.is_file() || !name.contains(".so") || !elfpatch::is_elf(&bytes) {
            continue;
        }
        tried += 1;
        let copy = d.copy(&lib, &format!("{}/system/{name}", arch.name));
        let before = arch.dlopen(&d, &copy).is_ok();
        let edits = Edits {
            runpath: RunpathEdit::Set(runpath.clone()),
            add_needed: vec![EXTRA_NEEDED.into()],
            soname: Some(format!("{name}-renamed-with-a-longer-soname")),
            ..Default::default()
        };
        if let Err(e) = patch_file(&copy, &edits) {
            failures.push(format!("{name}: not patched: {e}"));
            continue;
        }
        if let Err(e) = layout_invariants(&fs::read(&copy).unwrap(), arch.page) {
            failures.push(format!("{name}: {e}"));
        }
        if patchelf_print("rpath", &copy) != runpath {
            failures.push(format!("{name}: patchelf does not read the RUNPATH back"));
        }
        let new_lint: Vec<_> = elflint(&copy).difference(&elflint(&lib)).cloned().collect();
        if !new_lint.is_empty() {
            failures.push(format!("{name}: new eu-elflint messages {new_lint:?}"));
        }
        if before {
            loaded += 1;
            if let Err(e) = arch.dlopen(&d, &copy) {
                failures.push(format!("{name}: loaded before, not after: {e}"));
            }
        }
    }
    println!(
        "{}: {tried} libraries patched, {loaded} loaded before and after",
        arch.libdir
    );
    assert!(
        failures.is_empty(),
        "{}: {tried} libraries, {loaded} loaded before; failures:\n{}",
        arch.libdir,
        failures.join("\n")
    );
    assert!(
        loaded >= 5,
        "{}: only {loaded} of {tried} libraries load at all",
        arch.libdir
    );
}

#[test]
fn i386_system_libraries_still_dlopen_after_edits() {
    system_libraries_load_after_edits(&I386);
}

#[test]
fn aarch64_system_libraries_still_dlopen_under_qemu_after_edits() {
    system_libraries_load_after_edits(&AARCH64);
}

#[test]
fn big_endian_ppc64_system_libraries_still_dlopen_under_qemu_after_edits() {
    system_libraries_load_after_edits(&PPC64);
}
