//! The manifest parser over NVIDIA's real manifests (testdata/manifests).

use redist::{Manifest, PlatformEntry};

fn load(name: &str) -> Manifest {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/manifests")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    Manifest::parse(&text, name).unwrap()
}

#[test]
fn cuda_12_9_1_parses_completely() {
    let m = load("cuda_redistrib_12.9.1.json");
    assert_eq!(m.label(), "cuda 12.9.1");
    assert_eq!(m.release_date.as_deref(), Some("2025-06-05"));
    // 52 top-level keys: three release fields and 49 components.
    assert_eq!(m.components.len(), 49);
    let nvcc = m.select("cuda_nvcc", "linux-x86_64", None).unwrap();
    assert_eq!(nvcc.version, "12.9.86");
    assert!(nvcc
        .archive
        .relative_path
        .ends_with("cuda_nvcc-linux-x86_64-12.9.86-archive.tar.xz"));
    assert!(nvcc.archive.size > 1 << 20);
    // Archive names need not follow the key.
    let imex = m.select("imex", "linux-sbsa", None).unwrap();
    assert_eq!(
        imex.archive.relative_path,
        "imex/linux-sbsa/nvidia-imex-linux-sbsa-575.57.08-archive.tar.xz"
    );
    // linux-all serves every Linux platform.
    assert_eq!(
        m.select("driver_assistant", "linux-x86_64", None)
            .unwrap()
            .platform,
        "linux-all"
    );
    // Windows archives are listed but refused.
    assert!(m.components["cuda_cudart"]
        .platforms
        .contains_key("windows-x86_64"));
    assert!(m.select("cuda_cudart", "windows-x86_64", None).is_err());
    for c in m.components.values() {
        for entry in c.platforms.values() {
            assert!(
                matches!(entry, PlatformEntry::Archive(_)),
                "{} has no variants",
                c.key
            );
        }
    }
}

#[test]
fn cudnn_9_13_0_variants_and_source() {
    let m = load("cudnn_redistrib_9.13.0.json");
    let c = &m.components["cudnn"];
    assert_eq!(c.cuda_variant, ["12", "13"]);
    let e = m
        .select("cudnn", "linux-x86_64", None)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("choose one with --variant (cuda12, cuda13)"),
        "{e}"
    );
    let s = m.select("cudnn", "linux-x86_64", Some("cuda12")).unwrap();
    assert_eq!(
        s.archive.relative_path,
        "cudnn/linux-x86_64/cudnn-linux-x86_64-9.13.0.50_cuda12-archive.tar.xz"
    );
    assert_eq!(s.archive.size, 873_944_756);
    assert_eq!(
        m.select("cudnn", "linux-sbsa", Some("13"))
            .unwrap()
            .variant
            .as_deref(),
        Some("cuda13")
    );
    let samples = m.select("cudnn_samples", "linux-x86_64", None).unwrap();
    assert_eq!(samples.platform, "source");
}
