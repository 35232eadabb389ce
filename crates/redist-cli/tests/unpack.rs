//! `redist unpack` on archives in the real redist shapes, in every format.

mod common;

use common::*;
use redist_fixtures::{
    ar_archive, cudart_like, lib64_like, lib_major_like, nvcc_like, nvidia_pc, redist_archive,
};

/// What `cudart_like()` must become, byte for byte, in the split layout.
fn cudart_split(out: &std::path::Path) -> std::collections::BTreeMap<String, Found> {
    let lib = elves().lib.clone();
    let pc = nvidia_pc("cudart", "cudart", "12.9")
        .replace(
            "cudaroot=/usr/local/cuda-12.9",
            &format!("cudaroot={}/dev", out.display()),
        )
        .replace(
            "libdir=${cudaroot}/targets/x86_64-linux/lib",
            &format!("libdir={}/lib/lib", out.display()),
        )
        .replace(
            "includedir=${cudaroot}/targets/x86_64-linux/include",
            &format!("includedir={}/include/include", out.display()),
        );
    tree(vec![
        ("doc/LICENSE", file(0o644, "fixture license\n")),
        (
            "include/include/cuda_runtime_api.h",
            file(0o644, "#pragma once\nint cudaGetDeviceCount(int *);\n"),
        ),
        (
            "include/include/cuda_runtime.h",
            file(0o644, "#include \"cuda_runtime_api.h\"\n"),
        ),
        ("lib/lib/libcudart.so.12.9.79", file(0o755, lib.clone())),
        ("lib/lib/libcudart.so.12", link("libcudart.so.12.9.79")),
        ("lib/lib/libcudart.so", link("libcudart.so.12")),
        (
            "static/lib/libcudart_static.a",
            file(0o644, ar_archive("cudart_static.o")),
        ),
        (
            "static/lib/libcudadevrt.a",
            file(0o644, ar_archive("cudadevrt.o")),
        ),
        ("stubs/lib/stubs/libcuda.so", file(0o755, lib)),
        ("stubs/lib/stubs/libcuda.so.1", link("libcuda.so")),
        ("dev/share/pkgconfig/cudart-12.9.pc", file(0o644, pc)),
        ("dev/share/pkgconfig/cudart.pc", link("cudart-12.9.pc")),
    ])
}

#[test]
fn cudart_splits_identically_from_every_format() {
    for c in Compression::ALL {
        let d = Dir::new();
        let archive = d.archive(&cudart_like(), c);
        let out = d.join("out");
        let report = ok_json(&unpack(&archive, &out, &["--json"]));
        assert_tree(&snapshot(&out), &cudart_split(&out));
        assert_eq!(
            report["root"], "cuda_cudart-linux-x86_64-12.9.79-archive",
            "{c:?}"
        );
        let format = match c {
            Compression::None => "tar",
            Compression::Xz | Compression::XzMultiBlock => "xz",
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
        };
        assert_eq!(report["format"], format);
        assert_eq!(
            report["elf_files"],
            serde_json::json!(["lib/lib/libcudart.so.12.9.79", "stubs/lib/stubs/libcuda.so"])
        );
        assert_eq!(report["outputs"]["lib"]["files"], 1);
        assert_eq!(report["outputs"]["lib"]["symlinks"], 2);
        assert_eq!(report["outputs"]["lib"]["bytes"], elves().lib.len());
        assert!(
            report["outputs"].get("bin").is_none(),
            "no empty outputs in the report"
        );
        assert!(!out.join("bin").exists(), "empty outputs are not created");
        assert_eq!(
            d.leftovers(&[&archive, &out]),
            Vec::<String>::new(),
            "staging directory removed"
        );
    }
}

#[test]
fn symlink_chain_resolves_inside_the_output() {
    let d = Dir::new();
    let out = d.join("out");
    assert!(
        unpack(&d.archive(&cudart_like(), Compression::Xz), &out, &[])
            .status
            .success()
    );
    let via_chain = std::fs::read(out.join("lib/lib/libcudart.so")).expect("chain resolves");
    assert_eq!(via_chain, elves().lib);
    let canonical = std::fs::canonicalize(out.join("lib/lib/libcudart.so")).unwrap();
    assert_eq!(
        canonical,
        std::fs::canonicalize(out.join("lib/lib/libcudart.so.12.9.79")).unwrap()
    );
}

/// Unpack `a` (as `c`) into `d`/out and expect exactly the tree `want`.
fn unpacks_to(d: &Dir, a: &Archive, c: Compression, want: Vec<(&str, Found)>) {
    let out = d.join("out");
    ok_json(&unpack(&d.archive(a, c), &out, &["--json"]));
    assert_tree(&snapshot(&out), &tree(want));
}

#[test]
fn nvcc_keeps_nvvm_and_crt_headers() {
    let d = Dir::new();
    let exe = elves().exe.clone();
    let lib = elves().lib.clone();
    unpacks_to(
        &d,
        &nvcc_like(),
        Compression::Xz,
        vec![
            ("doc/LICENSE", file(0o644, "fixture license\n")),
            ("bin/bin/nvcc", file(0o755, exe.clone())),
            ("bin/bin/ptxas", file(0o755, exe)),
            (
                "bin/bin/nvcc.profile",
                file(
                    0o644,
                    "TOP = $(_HERE_)/..\nPATH += $(TOP)/nvvm/bin:$(_HERE_):\n",
                ),
            ),
            ("out/nvvm/lib64/libnvvm.so.4.0.0", file(0o755, lib)),
            ("out/nvvm/lib64/libnvvm.so.4", link("libnvvm.so.4.0.0")),
            ("out/nvvm/lib64/libnvvm.so", link("libnvvm.so.4")),
            (
                "out/nvvm/libdevice/libdevice.10.bc",
                file(0o644, vec![0x42, 0x43, 0xc0, 0xde, 1, 2, 3]),
            ),
            (
                "include/include/crt/host_config.h",
                file(0o644, "#pragma once\n"),
            ),
            (
                "include/include/fatbinary_section.h",
                file(0o644, "#pragma once\n"),
            ),
        ],
    );
}

#[test]
fn lib64_merges_into_lib() {
    let d = Dir::new();
    unpacks_to(
        &d,
        &lib64_like(),
        Compression::Gzip,
        vec![
            (
                "lib/lib/libcupti.so.12.8.90",
                file(0o755, elves().lib.clone()),
            ),
            ("lib/lib/libcupti.so.12", link("libcupti.so.12.8.90")),
            ("lib/lib/libcupti.so", link("libcupti.so.12")),
            (
                "static/lib/libcupti_static.a",
                file(0o644, ar_archive("cupti.o")),
            ),
            ("include/include/cupti.h", file(0o644, "#pragma once\n")),
        ],
    );
}

#[test]
fn lib_major_is_flattened() {
    let d = Dir::new();
    unpacks_to(
        &d,
        &lib_major_like(),
        Compression::Zstd,
        vec![
            (
                "lib/lib/libcutensor.so.2.2.0",
                file(0o755, elves().lib.clone()),
            ),
            ("lib/lib/libcutensor.so.2", link("libcutensor.so.2.2.0")),
            ("lib/lib/libcutensor.so", link("libcutensor.so.2")),
            (
                "static/lib/libcutensor_static.a",
                file(0o644, ar_archive("cutensor.o")),
            ),
            ("include/include/cutensor.h", file(0o644, "#pragma once\n")),
        ],
    );
}

#[test]
fn merged_layout_is_one_tree() {
    let d = Dir::new();
    let out = d.join("out");
    let report = ok_json(&unpack(
        &d.archive(&cudart_like(), Compression::Xz),
        &out,
        &["--json", "--layout", "merged"],
    ));
    assert_eq!(report["layout"], "merged");
    let got = snapshot(&out);
    let keys: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "LICENSE",
            "include/cuda_runtime.h",
            "include/cuda_runtime_api.h",
            "lib/libcudadevrt.a",
            "lib/libcudart.so",
            "lib/libcudart.so.12",
            "lib/libcudart.so.12.9.79",
            "lib/libcudart_static.a",
            "lib/stubs/libcuda.so",
            "lib/stubs/libcuda.so.1",
            "share/pkgconfig/cudart-12.9.pc",
            "share/pkgconfig/cudart.pc",
        ]
    );
    let pc = std::fs::read_to_string(out.join("share/pkgconfig/cudart-12.9.pc")).unwrap();
    assert!(
        pc.starts_with(&format!(
            "cudaroot={0}\nlibdir={0}/lib\nincludedir={0}/include\n",
            out.display()
        )),
        "{pc}"
    );
}

#[test]
fn format_is_chosen_by_magic_not_name() {
    let d = Dir::new();
    let xz = d.archive(&cudart_like(), Compression::Xz);
    let lying = d.join("really-xz.tar.gz");
    std::fs::rename(&xz, &lying).unwrap();
    let out = d.join("out");
    let report = ok_json(&unpack(&lying, &out, &["--json"]));
    assert_eq!(report["format"], "xz");
    assert_tree(&snapshot(&out), &cudart_split(&out));
}

#[test]
fn reads_standard_input() {
    let d = Dir::new();
    let out = d.join("out");
    let data = cudart_like().archive(Compression::Zstd);
    let o = run(
        &[
            "unpack".as_ref(),
            "-".as_ref(),
            "--out".as_ref(),
            out.as_os_str(),
            "--json".as_ref(),
        ],
        Some(data),
    );
    let report = ok_json(&o);
    assert_eq!(report["archive"], "<stdin>");
    assert_tree(&snapshot(&out), &cudart_split(&out));
}

#[test]
fn multi_block_xz_decodes_on_several_threads() {
    let d = Dir::new();
    let out = d.join("out");
    let report = ok_json(&unpack(
        &d.archive(&cudart_like(), Compression::XzMultiBlock),
        &out,
        &["--json", "--threads", "2"],
    ));
    assert_eq!(report["decoder_threads"], 2);
    let out1 = d.join("out1");
    let report = ok_json(&unpack(
        &d.archive(&cudart_like(), Compression::XzMultiBlock),
        &out1,
        &["--json", "--threads", "1"],
    ));
    assert_eq!(report["decoder_threads"], 1);
    assert_eq!(snapshot(&out), cudart_split(&out));
}

#[test]
fn modes_drop_setuid_and_world_write() {
    let d = Dir::new();
    let a = redist_archive(
        "x",
        "1.0",
        vec![
            Item::File("bin/suid".into(), b"#!/bin/sh\n".to_vec(), 0o4755),
            Item::File("bin/sgid".into(), b"#!/bin/sh\n".to_vec(), 0o2775),
            Item::File("share/open".into(), b"x".to_vec(), 0o666),
            Item::File("share/sticky".into(), b"x".to_vec(), 0o1644),
            Item::File("share/readonly".into(), b"x".to_vec(), 0o444),
        ],
    );
    unpacks_to(
        &d,
        &a,
        Compression::None,
        vec![
            ("bin/bin/suid", file(0o755, "#!/bin/sh\n")),
            ("bin/bin/sgid", file(0o775, "#!/bin/sh\n")),
            ("out/share/open", file(0o664, "x")),
            ("out/share/sticky", file(0o644, "x")),
            ("out/share/readonly", file(0o444, "x")),
        ],
    );
}

#[test]
fn hardlinks_stay_hardlinks() {
    use std::os::unix::fs::MetadataExt;
    let d = Dir::new();
    let out = d.join("out");
    let a = redist_archive(
        "x",
        "1.0",
        vec![
            Item::exe("bin/tool", elves().exe.clone()),
            Item::Hardlink("bin/tool-alias".into(), "bin/tool".into()),
        ],
    );
    let report = ok_json(&unpack(&d.archive(&a, Compression::Xz), &out, &["--json"]));
    let a = std::fs::metadata(out.join("bin/bin/tool")).unwrap();
    let b = std::fs::metadata(out.join("bin/bin/tool-alias")).unwrap();
    assert_eq!((a.dev(), a.ino()), (b.dev(), b.ino()));
    assert_eq!(a.nlink(), 2);
    assert_eq!(report["outputs"]["bin"]["hardlinks"], 1);
    assert_eq!(
        report["elf_files"],
        serde_json::json!(["bin/bin/tool"]),
        "a hardlink is not a second ELF file"
    );
}

#[test]
fn symlinks_across_outputs_get_correct_relative_targets() {
    let d = Dir::new();
    let out = d.join("out");
    let a = redist_archive(
        "x",
        "1.0",
        vec![
            Item::exe("lib/libdemo.so.1", elves().lib.clone()),
            Item::link("bin/libdemo.so", "../lib/libdemo.so.1"),
            Item::link("lib/libdemo_static.a", "libdemo.a"),
            Item::file("lib/libdemo.a", ar_archive("demo.o")),
            Item::link("include/lib", "../lib"),
        ],
    );
    ok_json(&unpack(&d.archive(&a, Compression::Xz), &out, &["--json"]));
    let got = snapshot(&out);
    assert_eq!(
        got["bin/bin/libdemo.so"],
        link("../../lib/lib/libdemo.so.1")
    );
    assert_eq!(got["static/lib/libdemo_static.a"], link("libdemo.a"));
    assert_eq!(
        got["include/include/lib"],
        link("../../lib/lib"),
        "a directory target routes by its contents"
    );
    assert_eq!(
        std::fs::read(out.join("bin/bin/libdemo.so")).unwrap(),
        elves().lib
    );
    assert_eq!(
        std::fs::read(out.join("static/lib/libdemo_static.a")).unwrap(),
        ar_archive("demo.o")
    );
}

#[test]
fn several_top_level_entries_are_kept() {
    let d = Dir::new();
    let out = d.join("out");
    // The first entry looks like a root directory; a later one proves it is not.
    let a = Archive {
        items: vec![
            Item::Dir("first/".into()),
            Item::exe("first/bin/tool", elves().exe.clone()),
            Item::link("first/bin/tool2", "tool"),
            Item::file("first/lib/libx.a", ar_archive("x.o")),
            Item::file("second/README", "hi\n"),
            Item::file("LICENSE", "l\n"),
        ],
    };
    let o = unpack(&d.archive(&a, Compression::Xz), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("no single top directory; kept: LICENSE, first, second"),
        "{}",
        stdout(&o)
    );
    assert_tree(
        &snapshot(&out),
        &tree(vec![
            ("out/first/bin/tool", file(0o755, elves().exe.clone())),
            ("out/first/bin/tool2", link("tool")),
            ("static/first/lib/libx.a", file(0o644, ar_archive("x.o"))),
            ("out/second/README", file(0o644, "hi\n")),
            ("doc/LICENSE", file(0o644, "l\n")),
        ]),
    );
}

#[test]
fn rules_file_replaces_the_builtin_table() {
    let d = Dir::new();
    let out = d.join("out");
    let rules = redist_fixtures::testdata().join("rules/everything-in-lib.toml");
    let o = unpack(
        &d.archive(&lib64_like(), Compression::Xz),
        &out,
        &["--rules", rules.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let keys: Vec<String> = snapshot(&out).into_keys().collect();
    assert_eq!(
        keys,
        [
            "headers/include/cupti.h",
            "lib/lib64/libcupti.so",
            "lib/lib64/libcupti.so.12",
            "lib/lib64/libcupti.so.12.8.90",
            "lib/lib64/libcupti_static.a"
        ]
    );
}

#[test]
fn bad_rules_file_is_a_clear_error() {
    let d = Dir::new();
    let rules = d.join("rules.toml");
    std::fs::write(
        &rules,
        "default = \"out\"\n[[output]]\nname = \"lib\"\nmatch = [\"lib/[\"]\n",
    )
    .unwrap();
    let out = d.join("out");
    let o = unpack(
        &d.archive(&lib64_like(), Compression::Xz),
        &out,
        &["--rules", rules.to_str().unwrap()],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains(&format!(
            "invalid layout rules {}: output `lib`: glob `lib/[`",
            rules.display()
        )),
        "{}",
        stderr(&o)
    );
    assert!(!out.exists());
}

#[test]
fn existing_nonempty_output_is_refused_and_untouched() {
    let d = Dir::new();
    let out = d.join("out");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("keep"), "mine").unwrap();
    let o = unpack(&d.archive(&cudart_like(), Compression::Xz), &out, &[]);
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("already exists and is not empty"),
        "{}",
        stderr(&o)
    );
    assert_tree(&snapshot(&out), &tree(vec![("keep", file(0o644, "mine"))]));
    // An empty directory is fine.
    let empty = d.join("empty");
    std::fs::create_dir(&empty).unwrap();
    assert!(
        unpack(&d.archive(&cudart_like(), Compression::Xz), &empty, &[])
            .status
            .success()
    );
    assert_eq!(snapshot(&empty), cudart_split(&empty));
}

#[test]
fn human_summary_names_outputs_and_stages() {
    let d = Dir::new();
    let out = d.join("out");
    let o = unpack(&d.archive(&cudart_like(), Compression::Xz), &out, &[]);
    let text = stdout(&o);
    assert!(
        text.contains("stripped top directory cuda_cudart-linux-x86_64-12.9.79-archive/"),
        "{text}"
    );
    for needle in [
        "output",
        "lib ",
        "stubs",
        "ELF files: 2",
        "decode",
        "write",
        "fixups",
        "total",
        "dev/share/pkgconfig/cudart.pc -> cudart-12.9.pc",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn rules_command_prints_the_builtin_table() {
    let o = run(&["rules".as_ref()], None);
    assert!(o.status.success());
    let text = stdout(&o);
    assert!(text.contains("[[output]]\nname = \"stubs\""), "{text}");
    assert!(text.contains("pattern = \"^lib64/\""), "{text}");
}

/// The system calls `redist ARGS` makes among `calls` (strace).
fn traced(calls: &str, args: &[&std::ffi::OsStr]) -> String {
    let trace = tempfile::NamedTempFile::new().unwrap();
    let st = std::process::Command::new("strace")
        .args(["-f", "-e", &format!("trace={calls}"), "-o"])
        .arg(trace.path())
        .arg(env!("CARGO_BIN_EXE_redist"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("strace is needed by this test: apt-get install strace");
    assert!(st.success());
    std::fs::read_to_string(trace.path()).unwrap()
}

#[test]
fn the_tree_is_flushed_before_it_is_published_unless_told_not_to() {
    let d = Dir::new();
    let archive = d.archive(&cudart_like(), Compression::Xz);
    for (out, extra, flushed) in [("a", None, true), ("b", Some("--no-fsync"), false)] {
        let out = d.join(out);
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "unpack".as_ref(),
            archive.as_os_str(),
            "--out".as_ref(),
            out.as_os_str(),
            "-q".as_ref(),
        ];
        args.extend(extra.map(std::ffi::OsStr::new));
        let log = traced("syncfs,fsync,rename", &args);
        let syncfs = log.find("syncfs(");
        let rename = log.find("rename(");
        assert!(rename.is_some(), "{log}");
        if flushed {
            // syncfs, then the rename, then the parent directory's fsync.
            assert!(syncfs.is_some_and(|s| s < rename.unwrap()), "{log}");
            assert!(log[rename.unwrap()..].contains("fsync("), "{log}");
        } else {
            assert!(syncfs.is_none(), "{log}");
        }
        assert!(out.join("lib").is_dir());
    }
}
