//! `bin/nvcc.profile` through `redist unpack` and `install`, with archives
//! shaped like NVIDIA's cuda_nvcc 13 and the components it compiles
//! against (the real compiler runs in `tests/toolkit.rs`).

mod common;

use std::path::Path;

use common::*;
use redist_fixtures::mirror::Component;
use redist_fixtures::redist_archive;

/// `bin/nvcc.profile` as NVIDIA's cuda_nvcc 13 redist archive ships it.
const PROFILE: &str = include_str!("../../../testdata/cuda/nvcc.profile");

fn nvcc(profile: &str) -> Archive {
    redist_archive(
        "cuda_nvcc",
        "13.0.1",
        vec![
            Item::file("bin/nvcc.profile", profile.to_owned()),
            Item::file("include/fatbinary_section.h", "/* nvcc's own */\n"),
            Item::file(
                "lib/libnvptxcompiler_static.a",
                redist_fixtures::ar_archive("p.o"),
            ),
        ],
    )
}

fn cudart() -> Archive {
    redist_archive(
        "cuda_cudart",
        "13.0.1",
        vec![
            Item::file("include/cuda_runtime.h", "/* runtime */\n"),
            Item::file("lib/libcudart_static.a", redist_fixtures::ar_archive("c.o")),
            Item::file("lib/libcudadevrt.a", redist_fixtures::ar_archive("d.o")),
        ],
    )
}

fn cccl() -> Archive {
    redist_archive(
        "cuda_cccl",
        "13.0.1",
        vec![
            Item::file("include/cccl/cuda/std/version", "// cccl\n"),
            Item::file("lib/cmake/cccl/cccl-config.cmake", "# cmake\n"),
        ],
    )
}

fn nvvm() -> Archive {
    redist_archive(
        "libnvvm",
        "13.0.1",
        vec![
            Item::exe("nvvm/bin/cicc", b"#!/bin/sh\n".to_vec()),
            Item::file("nvvm/libdevice/libdevice.10.bc", "bc"),
        ],
    )
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn unpacked_nvcc_profile_points_at_its_outputs_and_toolkit_deps() {
    let d = Dir::new();
    let mut deps = Vec::new();
    for (name, a, layout) in [
        ("cudart", cudart(), "split"),
        ("cccl", cccl(), "merged"),
        ("nvvm", nvvm(), "split"),
    ] {
        let out = d.join(name);
        ok_json(&unpack(
            &d.archive(&a, Compression::Xz),
            &out,
            &["--json", "--layout", layout],
        ));
        deps.push(out);
    }
    let out = d.join("nvcc");
    let mut args = vec!["--json".to_owned()];
    for dep in &deps {
        args.extend(["--toolkit-dep".to_owned(), dep.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let report = ok_json(&unpack(
        &d.archive(&nvcc(PROFILE), Compression::Xz),
        &out,
        &args,
    ));
    assert_eq!(
        report["fixups"][0],
        "bin/bin/nvcc.profile: include, library and NVVM paths point at the outputs and the toolkit dependencies"
    );
    let (cudart, cccl, nvvm) = (&deps[0], &deps[1], &deps[2]);
    let want = format!(
        r#"
TOP              = $(_HERE_)/..

CICC_PATH        = {nvvm}/out/nvvm/bin
NVVMIR_LIBRARY_DIR = {nvvm}/out/nvvm/libdevice

LD_LIBRARY_PATH += $(_HERE_)/../../static/lib:{cudart}/static/lib:
PATH            += $(CICC_PATH):$(_HERE_):

INCLUDES        +=  "-I$(_HERE_)/../../include/include" "-I{cudart}/include/include" "-I{cccl}/include" $(_SPACE_)
SYSTEM_INCLUDES +=  "-isystem" "{cccl}/include/cccl" $(_SPACE_)

LIBRARIES        =+ $(_SPACE_) "-L$(_HERE_)/../../static/lib" "-L{cudart}/static/lib"

CUDAFE_FLAGS    +=
PTXAS_FLAGS     +=
"#,
        nvvm = nvvm.display(),
        cudart = cudart.display(),
        cccl = cccl.display(),
    );
    assert_eq!(read(&out.join("bin/bin/nvcc.profile")), want);
}

#[test]
fn a_profile_not_understood_is_left_as_shipped_with_a_warning() {
    let d = Dir::new();
    let odd = "# a profile from the future\nCOMPILER_ROOT := $(TOP)/elsewhere\n";
    let out = d.join("nvcc");
    let o = unpack(&d.archive(&nvcc(odd), Compression::Xz), &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: bin/bin/nvcc.profile left as shipped: line 2:"),
        "{}",
        stderr(&o)
    );
    assert_eq!(read(&out.join("bin/bin/nvcc.profile")), odd);
}

#[test]
fn merged_install_keeps_nvidias_profile_and_adds_the_targets_tree() {
    let m = Mirror::new(&[
        Component::new("cuda_nvcc", "13.0.1", nvcc(PROFILE)),
        Component::new("cuda_cudart", "13.0.1", cudart()),
    ]);
    let report = ok_json(&m.install(&["cuda_nvcc", "--json"]));
    assert_eq!(
        report["toolkit"],
        serde_json::json!([
            "targets/x86_64-linux/include",
            "targets/x86_64-linux/lib",
            "lib64"
        ])
    );
    let p = m.prefix();
    assert_eq!(read(&p.join("bin/nvcc.profile")), PROFILE);
    assert!(p
        .join("targets/x86_64-linux/include/fatbinary_section.h")
        .exists());
    // A later component lands in the same tree, reachable through the links.
    ok_json(&m.install(&["cuda_cudart", "--json"]));
    for f in [
        "include/cuda_runtime.h",
        "lib/libcudadevrt.a",
        "lib/libnvptxcompiler_static.a",
    ] {
        assert!(p.join("targets/x86_64-linux").join(f).exists(), "{f}");
    }
    assert!(p.join("lib64/libcudadevrt.a").exists());
}

#[test]
fn split_install_repoints_the_profile_after_each_install() {
    let m = Mirror::new(&[
        Component::new("cuda_nvcc", "13.0.1", nvcc(PROFILE)),
        Component::new("cuda_cudart", "13.0.1", cudart()),
        Component::new("libnvvm", "13.0.1", nvvm()),
    ]);
    ok_json(&m.install(&["cuda_nvcc", "--layout", "split", "--json"]));
    let profile = m.prefix().join("cuda_nvcc/bin/bin/nvcc.profile");
    assert!(!read(&profile).contains("cuda_cudart"));
    ok_json(&m.install(&["cuda_cudart", "libnvvm", "--layout", "split", "--json"]));
    let text = read(&profile);
    assert!(
        text.contains("\"-I$(_HERE_)/../../../cuda_cudart/include/include\""),
        "{text}"
    );
    assert!(
        text.contains("CICC_PATH        = $(_HERE_)/../../../libnvvm/out/nvvm/bin\n"),
        "{text}"
    );
    assert!(
        text.contains("\"-L$(_HERE_)/../../../cuda_cudart/static/lib\""),
        "{text}"
    );
    // The prefix moves as a whole: every path is relative to the profile.
    assert!(!text.contains(&m.prefix().display().to_string()), "{text}");
}
