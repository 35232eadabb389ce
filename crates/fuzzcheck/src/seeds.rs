//! Seed inputs for each target, built from the project's fixtures: ELF
//! files compiled by `cc` (with control bytes in front), the real NVIDIA
//! manifests under `testdata/manifests`, NVIDIA's `nvcc.profile` and
//! pkg-config files, and manifest locations as users write them.

use std::fs;

use redist_fixtures::{elves, linked, nvidia_pc, testdata, with_machine};

/// Edits to try on each ELF seed: keep, set, add, remove the RUNPATH with
/// and without an interpreter, SONAME, DT_NEEDED and flag edits.
const CONTROLS: [[u8; 4]; 6] = [
    [0x01, 10, 0, 0],
    [0x05, 90, 0x0d, 120],
    [0x1a, 3, 0x11, 0],
    [0x23, 0, 0x02, 0],
    [0x8d, 40, 0x24, 8],
    [0x59, 200, 0x3f, 200],
];

/// `(name, bytes)` of every seed of `target`.
pub fn seeds(target: &str) -> Vec<(String, Vec<u8>)> {
    match target {
        "elf_edit" => elf(),
        "archive_policy" => (0u8..8)
            .map(|i| {
                let bytes: Vec<u8> = (0..64u32)
                    .map(|j| (j * 37 + u32::from(i) * 11) as u8)
                    .collect();
                (format!("bytes-{i}"), bytes)
            })
            .collect(),
        "manifest" => {
            let mut v: Vec<(String, Vec<u8>)> = fs::read_dir(testdata().join("manifests"))
                .expect("testdata/manifests")
                .map(|e| {
                    let p = e.unwrap().path();
                    (
                        p.file_name().unwrap().to_string_lossy().into_owned(),
                        fs::read(&p).unwrap(),
                    )
                })
                .collect();
            v.sort();
            v.push(("variants.json".into(), VARIANTS.as_bytes().to_vec()));
            v
        }
        "rewriters" => {
            let mut profile = vec![1u8];
            profile.extend(fs::read(testdata().join("cuda/nvcc.profile")).unwrap());
            let mut pc = vec![0u8];
            pc.extend(nvidia_pc("cudart", "cudart", "12.9").into_bytes());
            vec![("nvcc.profile".into(), profile), ("cudart.pc".into(), pc)]
        }
        "location" => LOCATIONS
            .iter()
            .enumerate()
            .map(|(i, l)| (format!("location-{i}"), l.as_bytes().to_vec()))
            .collect(),
        _ => panic!("no target {target}"),
    }
}

fn elf() -> Vec<(String, Vec<u8>)> {
    let e = elves();
    let l = linked();
    let mut images = vec![
        ("exe", e.exe.clone()),
        ("lib", e.lib.clone()),
        ("aarch64-lib", with_machine(&e.lib, 183)),
    ];
    images.extend([
        ("app", l.app.clone()),
        ("libuser", l.libuser.clone()),
        ("libcudauser", l.cudauser.clone()),
        ("dlopener", l.dlopener.clone()),
        ("static-app", l.static_app.clone()),
        ("object", l.object.clone()),
    ]);
    let mut out = Vec::new();
    for (name, image) in images {
        for (i, c) in CONTROLS.iter().enumerate() {
            let mut v = c.to_vec();
            v.extend_from_slice(&image);
            out.push((format!("{name}-{i}"), v));
        }
    }
    out
}

const VARIANTS: &str = r#"{
  "release_date": "2025-06-01", "release_label": "9.13.0", "release_product": "cudnn",
  "cudnn": {
    "name": "NVIDIA CUDA Deep Neural Network library", "license": "cudnn", "version": "9.13.0.50",
    "cuda_variant": ["12", "13"],
    "linux-x86_64": {
      "cuda12": {"relative_path": "cudnn/linux-x86_64/cudnn-linux-x86_64-9.13.0.50_cuda12-archive.tar.xz",
                 "sha256": "0000000000000000000000000000000000000000000000000000000000000000", "md5": "0", "size": "1"},
      "cuda13": {"relative_path": "cudnn/linux-x86_64/cudnn-linux-x86_64-9.13.0.50_cuda13-archive.tar.xz",
                 "sha256": "1111111111111111111111111111111111111111111111111111111111111111", "md5": "1", "size": 2}
    },
    "source": {"relative_path": "cudnn/source/x.tar.gz", "sha256": "2222222222222222222222222222222222222222222222222222222222222222", "size": 3}
  }
}"#;

const LOCATIONS: [&str; 5] = [
    "https://developer.download.nvidia.com/compute/cuda/redist/redistrib_12.9.1.json\0cuda_nvcc/linux-x86_64/cuda_nvcc-linux-x86_64-12.9.86-archive.tar.xz",
    "file:///srv/mirror%20one/redistrib_13.0.0.json\0libcublas/linux-sbsa/x.tar.xz",
    "/srv/mirror/redistrib.json\0x/./y.tar.xz",
    "http://127.0.0.1:8080\0a..b/c",
    "redistrib.json\0cudnn/source/x.tar.gz",
];
