//! `cargo xtask mirror`: a local mirror in the layout of NVIDIA's CUDA redist
//! server, made from NVIDIA's own binaries as published in PyPI wheels.
//!
//! ```text
//! <mirror>/<component>/linux-x86_64/<component>-linux-x86_64-<version>-archive.tar.xz
//!     <component>-linux-x86_64-<version>-archive/{bin,lib,include,nvvm,pkg-config,LICENSE}
//! <mirror>/redistrib_<label>.json
//! ```
//!
//! This is the project's own port of `shared/tools/nvidia-wheel-mirror` and
//! writes the same output: the same component tables, the same tar members
//! (GNU format, as Python's `tarfile` writes it, byte for byte), the same xz
//! container (one block with `--xz-threads 1`, liblzma's multithreaded
//! encoder otherwise, as `xz -T<n>` does), and the same manifests. Wheels are
//! downloaded with `python3 -m pip download` into the cache the Python tool
//! uses (`~/.cache/redist-fixtures/wheels`), so either reuses the other's.
//!
//! `--cuda 12` (default): cuda_nvcc (ptxas + nvvm only) cuda_cudart
//! cuda_cupti cuda_nvrtc libnvjitlink cuda_cuobjdump; label 12.9.0-wheels.
//!
//! `--cuda 13`: a toolkit that compiles: cuda_nvcc (with NVIDIA's redist
//! `bin/nvcc.profile`), cuda_crt, libnvvm, cuda_cccl, cuda_cudart, cuda_nvrtc
//! by default; libcublas and cudnn (its own cuDNN-shaped manifest with a
//! `cuda13` variant) only when named; label 13-wheels.

use std::collections::BTreeSet;
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use liblzma::stream::{Check, MtStreamBuilder, Stream};
use liblzma::write::XzEncoder;
use md5::Md5;
use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};
use sha2::{Digest, Sha256};
use tar::{Builder, EntryType, Header};

use crate::Result;

pub const PLATFORM: &str = "linux-x86_64";

/// The mtime of every tar member.
const MTIME: u64 = 1_700_000_000;

/// Python's `tarfile` pads the archive to a multiple of its record size.
const RECORD_SIZE: u64 = 20 * 512;

const USAGE: &str = "usage: cargo xtask mirror OUT_DIR [--cuda 12|13] [--components a,b,...]
                          [--xz-threads N] [--xz-level 0-9] [--wheel-cache DIR] [--label L]

Builds a local NVIDIA-style redist mirror out of NVIDIA's own PyPI wheels
(the same output as shared/tools/nvidia-wheel-mirror).

  --cuda 12|13       component set (default 12)
  --components a,b   components to build (default: all of CUDA 12; for 13
                     cuda_nvcc,cuda_crt,libnvvm,cuda_cccl,cuda_cudart,cuda_nvrtc;
                     libcublas and cudnn only when named)
  --xz-threads N     1 gives one xz block (like a plain `xz`), >1 a multi-block file (default 1)
  --xz-level 0-9     xz preset (default 6, xz's own default; 0-1 are several times faster)
  --wheel-cache DIR  default ~/.cache/redist-fixtures/wheels
  --label L          manifest label (default 12.9.0-wheels / 13-wheels)";

/// One redist component and where its files are in its wheel.
struct Component {
    name: &'static str,
    /// The wheel's name on PyPI.
    wheel: &'static str,
    /// The wheel's package directory.
    prefix: &'static str,
    /// (path inside the package directory, path inside the archive); a
    /// source ending in `/` is a directory prefix, otherwise one file.
    rules: &'static [(&'static str, &'static str)],
}

const LIB_INCLUDE: &[(&str, &str)] = &[("lib/", "lib/"), ("include/", "include/")];

const COMPONENTS_12: &[Component] = &[
    Component {
        name: "cuda_nvcc",
        wheel: "nvidia-cuda-nvcc-cu12",
        prefix: "nvidia/cuda_nvcc/",
        rules: &[
            ("bin/", "bin/"),
            ("include/", "include/"),
            ("nvvm/", "nvvm/"),
        ],
    },
    Component {
        name: "cuda_cudart",
        wheel: "nvidia-cuda-runtime-cu12",
        prefix: "nvidia/cuda_runtime/",
        rules: LIB_INCLUDE,
    },
    Component {
        name: "cuda_cupti",
        wheel: "nvidia-cuda-cupti-cu12",
        prefix: "nvidia/cuda_cupti/",
        rules: LIB_INCLUDE,
    },
    Component {
        name: "cuda_nvrtc",
        wheel: "nvidia-cuda-nvrtc-cu12",
        prefix: "nvidia/cuda_nvrtc/",
        rules: LIB_INCLUDE,
    },
    Component {
        name: "libnvjitlink",
        wheel: "nvidia-nvjitlink-cu12",
        prefix: "nvidia/nvjitlink/",
        rules: LIB_INCLUDE,
    },
    Component {
        name: "cuda_cuobjdump",
        wheel: "nvidia-cuda-cuobjdump",
        prefix: "nvidia/cu13/",
        rules: &[("bin/cuobjdump", "bin/cuobjdump")],
    },
];

/// CUDA 13 wheels share one `nvidia/cu13/` tree; each wheel holds one component.
const COMPONENTS_13: &[Component] = &[
    Component {
        name: "cuda_nvcc",
        wheel: "nvidia-cuda-nvcc",
        prefix: "nvidia/cu13/",
        rules: &[("bin/", "bin/"), ("include/", "include/")],
    },
    Component {
        name: "cuda_crt",
        wheel: "nvidia-cuda-crt",
        prefix: "nvidia/cu13/",
        rules: &[("include/", "include/")],
    },
    Component {
        name: "libnvvm",
        wheel: "nvidia-nvvm",
        prefix: "nvidia/cu13/",
        rules: &[("nvvm/", "nvvm/"), ("lib/", "nvvm/lib64/")],
    },
    Component {
        name: "cuda_cccl",
        wheel: "nvidia-cuda-cccl",
        prefix: "nvidia/cu13/",
        rules: &[("include/", "include/"), ("cccl/lib/", "lib/")],
    },
    Component {
        name: "cuda_cudart",
        wheel: "nvidia-cuda-runtime",
        prefix: "nvidia/cu13/",
        rules: LIB_INCLUDE,
    },
    Component {
        name: "cuda_nvrtc",
        wheel: "nvidia-cuda-nvrtc",
        prefix: "nvidia/cu13/",
        rules: LIB_INCLUDE,
    },
    Component {
        name: "libcublas",
        wheel: "nvidia-cublas",
        prefix: "nvidia/cu13/",
        rules: LIB_INCLUDE,
    },
    Component {
        name: "cudnn",
        wheel: "nvidia-cudnn-cu13",
        prefix: "nvidia/cudnn/",
        rules: LIB_INCLUDE,
    },
];

const DEFAULT_13: &[&str] = &[
    "cuda_nvcc",
    "cuda_crt",
    "libnvvm",
    "cuda_cccl",
    "cuda_cudart",
    "cuda_nvrtc",
];

/// `bin/nvcc.profile` as NVIDIA's redist archive of cuda_nvcc 13 ships it:
/// the wheel's copy drops `$(_TARGET_DIR_)` and `$(_TARGET_SIZE_)`, the
/// archive keeps them.
const NVCC_PROFILE_13: &str = include_str!("../../testdata/cuda/nvcc.profile");

const LICENSE_TEXT: &str =
    "Test fixture repacked from NVIDIA's PyPI wheels; see the wheel's own license.\n";

const RELEASE_DATE: &str = "2025-06-05";

/// NVIDIA's pkg-config file for a library of the toolkit `mm` (major.minor).
fn pkg_config(mm: &str, name: &str, desc: &str, lib: &str) -> String {
    format!(
        "cudaroot=/usr/local/cuda-{mm}\n\
         libdir=${{cudaroot}}/targets/x86_64-linux/lib\n\
         includedir=${{cudaroot}}/targets/x86_64-linux/include\n\
         \n\
         Name: {name}\n\
         Description: {desc}\n\
         Version: {mm}\n\
         Libs: -L${{libdir}} -l{lib}\n\
         Cflags: -I${{includedir}}\n"
    )
}

/// The CUDA major version a mirror is built for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cuda {
    V12,
    V13,
}

impl Cuda {
    pub fn parse(s: &str) -> Result<Cuda> {
        match s {
            "12" => Ok(Cuda::V12),
            "13" => Ok(Cuda::V13),
            _ => Err(format!("invalid CUDA version {s:?} (choose from 12, 13)")),
        }
    }

    fn table(self) -> &'static [Component] {
        match self {
            Cuda::V12 => COMPONENTS_12,
            Cuda::V13 => COMPONENTS_13,
        }
    }

    /// The components built when none are named.
    pub fn default_components(self) -> Vec<&'static str> {
        match self {
            Cuda::V12 => COMPONENTS_12.iter().map(|c| c.name).collect(),
            Cuda::V13 => DEFAULT_13.to_vec(),
        }
    }

    pub fn default_label(self) -> &'static str {
        match self {
            Cuda::V12 => "12.9.0-wheels",
            Cuda::V13 => "13-wheels",
        }
    }

    fn component(self, name: &str) -> Result<&'static Component> {
        self.table().iter().find(|c| c.name == name).ok_or_else(|| {
            let known: Vec<&str> = self.table().iter().map(|c| c.name).collect();
            format!("unknown component {name}; known: {}", known.join(", "))
        })
    }
}

impl fmt::Display for Cuda {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Cuda::V12 => "12",
            Cuda::V13 => "13",
        })
    }
}

/// What to build, as `cargo xtask mirror` takes it.
#[derive(Clone, Debug)]
pub struct Options {
    pub out: PathBuf,
    pub cuda: Cuda,
    /// Empty: the defaults of `cuda`.
    pub components: Vec<String>,
    /// 1: one xz block; more: liblzma's multithreaded encoder with that many
    /// threads; 0: as many threads as there are CPUs.
    pub xz_threads: u32,
    pub xz_level: u32,
    pub wheel_cache: PathBuf,
    /// None: the default label of `cuda`.
    pub label: Option<String>,
}

impl Options {
    pub fn new(out: &Path, cuda: Cuda) -> Result<Options> {
        Ok(Options {
            out: out.to_owned(),
            cuda,
            components: Vec::new(),
            xz_threads: 1,
            xz_level: 6,
            wheel_cache: default_wheel_cache()?,
            label: None,
        })
    }

    fn component_names(&self) -> Vec<String> {
        if self.components.is_empty() {
            self.cuda
                .default_components()
                .into_iter()
                .map(String::from)
                .collect()
        } else {
            self.components.clone()
        }
    }
}

/// The manifests a build wrote.
#[derive(Clone, Debug, Default)]
pub struct Built {
    /// `redistrib_<label>.json`, unless no component other than cudnn was
    /// built (or listed there before).
    pub manifest: Option<PathBuf>,
    /// `redistrib_cudnn_<version>-wheels.json`, when cudnn was built.
    pub cudnn_manifest: Option<PathBuf>,
}

/// The wheel cache shared with `nvidia-wheel-mirror`.
pub fn default_wheel_cache() -> Result<PathBuf> {
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .ok_or("HOME is not set: pass --wheel-cache")?;
    Ok(PathBuf::from(home).join(".cache/redist-fixtures/wheels"))
}

/// `cargo xtask mirror ARGS…`
pub fn run(args: &[String]) -> Result {
    let Some(opts) = parse_args(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    build(&opts).map(|_| ())
}

/// None: `--help`.
fn parse_args(args: &[String]) -> Result<Option<Options>> {
    let mut out = None;
    let mut cuda = Cuda::V12;
    let mut components = None;
    let mut xz_threads = 1;
    let mut xz_level = 6;
    let mut wheel_cache = None;
    let mut label = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        if arg == "-h" || arg == "--help" {
            return Ok(None);
        }
        if !arg.starts_with("--") || arg == "--" {
            if out.is_some() {
                return Err(format!("unexpected argument {arg:?}\n{USAGE}"));
            }
            out = Some(PathBuf::from(arg));
            continue;
        }
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f, Some(v.to_owned())),
            None => (arg.as_str(), None),
        };
        let mut value = || {
            inline
                .clone()
                .or_else(|| it.next().cloned())
                .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))
        };
        match flag {
            "--cuda" => cuda = Cuda::parse(&value()?)?,
            "--components" => components = Some(value()?),
            "--xz-threads" => {
                let v = value()?;
                xz_threads = v
                    .parse()
                    .map_err(|_| format!("--xz-threads: not a thread count: {v:?}"))?;
            }
            "--xz-level" => {
                let v = value()?;
                xz_level = match v.parse::<u32>() {
                    Ok(n) if n <= 9 => n,
                    _ => return Err(format!("--xz-level: invalid choice {v:?} (choose 0-9)")),
                };
            }
            "--wheel-cache" => wheel_cache = Some(PathBuf::from(value()?)),
            "--label" => label = Some(value()?),
            _ => return Err(format!("unknown option {arg:?}\n{USAGE}")),
        }
    }
    let out = out.ok_or_else(|| format!("OUT_DIR is missing\n{USAGE}"))?;
    let wheel_cache = match wheel_cache {
        Some(w) => w,
        None => default_wheel_cache()?,
    };
    Ok(Some(Options {
        out,
        cuda,
        // An empty --components means the defaults, as in the Python tool.
        components: components
            .unwrap_or_default()
            .split(',')
            .filter(|c| !c.is_empty())
            .map(String::from)
            .collect(),
        xz_threads,
        xz_level,
        wheel_cache,
        label: label.filter(|l| !l.is_empty()),
    }))
}

/// Build the mirror `opts.out`: each component's archive, then the
/// manifests (merged with a `redistrib_<label>.json` already there).
pub fn build(opts: &Options) -> Result<Built> {
    let label = opts
        .label
        .clone()
        .unwrap_or_else(|| opts.cuda.default_label().to_owned());
    let comps = opts
        .component_names()
        .iter()
        .map(|c| opts.cuda.component(c))
        .collect::<Result<Vec<_>>>()?;
    if opts.xz_level > 9 {
        return Err(format!("xz level {} is not 0-9", opts.xz_level));
    }
    fs::create_dir_all(&opts.out).map_err(|e| format!("{}: {e}", opts.out.display()))?;

    let mut built = Built::default();
    let mut manifest = vec![
        ("release_date".to_owned(), Json::from(RELEASE_DATE)),
        ("release_label".to_owned(), Json::from(label.as_str())),
        ("release_product".to_owned(), Json::from("cuda")),
    ];
    for comp in comps {
        let wheel = pip_download(comp.wheel, &opts.wheel_cache)?;
        if comp.name == "cudnn" {
            // cuDNN has its own product manifest, with per-CUDA-major variants.
            let (version, entry) = build_component(opts, comp, &wheel, Some("cuda13"))?;
            let cudnn = Json::Obj(vec![
                ("release_date".into(), Json::from(RELEASE_DATE)),
                ("release_label".into(), Json::from(version.as_str())),
                ("release_product".into(), Json::from("cudnn")),
                (
                    "cudnn".into(),
                    Json::Obj(vec![
                        (
                            "name".into(),
                            Json::from(
                                "NVIDIA CUDA Deep Neural Network library (repacked from PyPI wheel)",
                            ),
                        ),
                        ("license".into(), Json::from("cudnn")),
                        ("license_path".into(), Json::from("cudnn/LICENSE.txt")),
                        ("version".into(), Json::from(version.as_str())),
                        ("cuda_variant".into(), Json::Arr(vec![Json::from("13")])),
                        (
                            PLATFORM.into(),
                            Json::Obj(vec![("cuda13".into(), entry.to_json())]),
                        ),
                    ]),
                ),
            ]);
            let path = opts
                .out
                .join(format!("redistrib_cudnn_{version}-wheels.json"));
            write_json(&path, &cudnn)?;
            println!(
                "{} {version} {} {} bytes ({})",
                comp.name,
                entry.relative_path,
                entry.size,
                path.display()
            );
            built.cudnn_manifest = Some(path);
            continue;
        }
        let (version, entry) = build_component(opts, comp, &wheel, None)?;
        let c = comp.name;
        manifest.push((
            c.to_owned(),
            Json::Obj(vec![
                (
                    "name".into(),
                    Json::from(format!("CUDA {c} (repacked from PyPI wheel)").as_str()),
                ),
                ("license".into(), Json::from("CUDA Toolkit")),
                (
                    "license_path".into(),
                    Json::from(format!("{c}/LICENSE.txt").as_str()),
                ),
                ("version".into(), Json::from(version.as_str())),
                (PLATFORM.into(), entry.to_json()),
            ]),
        ));
        println!("{c} {version} {} {} bytes", entry.relative_path, entry.size);
    }

    let path = opts.out.join(format!("redistrib_{label}.json"));
    if path.exists() {
        // Components built earlier into the same mirror stay listed.
        let text = fs::read_to_string(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let old: Json = serde_json::from_str(&text)
            .map_err(|e| format!("{}: not a manifest: {e}", path.display()))?;
        let Json::Obj(old) = old else {
            return Err(format!("{}: not a JSON object", path.display()));
        };
        let (head, new): (Vec<_>, Vec<_>) = manifest.into_iter().partition(|(_, v)| !v.is_obj());
        let mut merged = Vec::new();
        let kept = old.into_iter().filter(|(_, v)| v.is_obj());
        for (k, v) in head.into_iter().chain(kept).chain(new) {
            insert(&mut merged, k, v);
        }
        manifest = merged;
    }
    if !manifest.iter().any(|(_, v)| v.is_obj()) {
        return Ok(built);
    }
    write_json(&path, &Json::Obj(manifest))?;
    println!("{}", path.display());
    built.manifest = Some(path);
    Ok(built)
}

/// Build the mirror into `dir` unless a stamp file says it was built there
/// already with these components; a `dir` without the stamp (a half-built
/// one) is removed first. `components` empty: the defaults of `cuda` ("12"
/// or "13"). Returns the manifest: `redistrib_<label>.json`, or cuDNN's own
/// when only cudnn was asked for.
pub fn ensure(
    dir: &Path,
    cuda: &str,
    components: &[&str],
    xz_threads: u32,
    xz_level: u32,
) -> Result<PathBuf> {
    let mut opts = Options::new(dir, Cuda::parse(cuda)?)?;
    opts.components = components.iter().map(|c| c.to_string()).collect();
    opts.xz_threads = xz_threads;
    opts.xz_level = xz_level;
    let names = opts.component_names();
    for c in &names {
        opts.cuda.component(c)?;
    }
    let stamp = dir.join(format!(".done-{}-{}", opts.cuda, names.join(",")));
    // The stamp holds the manifest's file name.
    if let Ok(name) = fs::read_to_string(&stamp) {
        let manifest = dir.join(name.trim());
        if !name.trim().is_empty() && manifest.is_file() {
            return Ok(manifest);
        }
    }
    eprintln!(
        "xtask mirror: building the CUDA {} mirror ({}) in {}",
        opts.cuda,
        names.join(","),
        dir.display()
    );
    match fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("removing {}: {e}", dir.display())),
    }
    let built = build(&opts)?;
    let manifest = built
        .manifest
        .or(built.cudnn_manifest)
        .ok_or_else(|| format!("{}: no manifest was written", dir.display()))?;
    let name = manifest
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    fs::write(&stamp, name).map_err(|e| format!("{}: {e}", stamp.display()))?;
    Ok(manifest)
}

/// The newest cached wheel of `wheel`, downloaded with pip when none is.
fn pip_download(wheel: &str, cache: &Path) -> Result<PathBuf> {
    fs::create_dir_all(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    if let Some(w) = cached_wheel(wheel, cache)? {
        return Ok(w);
    }
    let mut cmd = Command::new("python3");
    cmd.args([
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--python-version",
        "3.11",
        "--platform",
        "manylinux_2_28_x86_64",
        "--platform",
        "manylinux_2_27_x86_64",
        "--platform",
        "manylinux2014_x86_64",
        "--platform",
        "manylinux_2_17_x86_64",
        "--platform",
        "manylinux2010_x86_64",
        "--platform",
        "manylinux_2_12_x86_64",
        "-q",
        "-d",
    ])
    .arg(cache)
    .arg(wheel);
    let status = cmd
        .status()
        .map_err(|e| format!("pip download {wheel}: running python3: {e}"))?;
    if !status.success() {
        return Err(format!("pip download {wheel} failed with {status}"));
    }
    cached_wheel(wheel, cache)?.ok_or_else(|| format!("pip produced no wheel for {wheel}"))
}

/// `<wheel with _ for ->-*.whl` in `cache`, the last in name order.
fn cached_wheel(wheel: &str, cache: &Path) -> Result<Option<PathBuf>> {
    let prefix = format!("{}-", wheel.replace('-', "_"));
    let entries = fs::read_dir(cache).map_err(|e| format!("{}: {e}", cache.display()))?;
    let mut best: Option<String> = None;
    for e in entries {
        let e = e.map_err(|e| format!("{}: {e}", cache.display()))?;
        let Ok(name) = e.file_name().into_string() else {
            continue;
        };
        if name.starts_with(&prefix)
            && name.ends_with(".whl")
            && best.as_ref().is_none_or(|b| name > *b)
        {
            best = Some(name);
        }
    }
    Ok(best.map(|n| cache.join(n)))
}

/// A manifest's `linux-x86_64` entry.
struct Entry {
    relative_path: String,
    sha256: String,
    md5: String,
    size: u64,
}

impl Entry {
    fn to_json(&self) -> Json {
        Json::Obj(vec![
            (
                "relative_path".into(),
                Json::from(self.relative_path.as_str()),
            ),
            ("sha256".into(), Json::from(self.sha256.as_str())),
            ("md5".into(), Json::from(self.md5.as_str())),
            ("size".into(), Json::from(self.size.to_string().as_str())),
        ])
    }
}

/// Where a member's bytes come from.
enum Source {
    /// Entry `index` of the wheel, `size` bytes.
    Zip {
        index: usize,
        size: u64,
    },
    Bytes(Vec<u8>),
}

struct Member {
    path: String,
    source: Source,
    mode: u32,
}

fn is_elf(head: &[u8]) -> bool {
    head.starts_with(b"\x7fELF")
}

/// Repack one component's wheel into its redist archive; returns the
/// wheel's version and the manifest entry.
fn build_component(
    opts: &Options,
    comp: &Component,
    wheel_path: &Path,
    variant: Option<&str>,
) -> Result<(String, Entry)> {
    let wheel_name = wheel_path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let version = wheel_name
        .split('-')
        .nth(1)
        .ok_or_else(|| format!("{}: no version in the wheel's name", wheel_path.display()))?
        .to_owned();
    let mm = version.split('.').take(2).collect::<Vec<_>>().join(".");
    let root = format!(
        "{}-{PLATFORM}-{version}{}-archive",
        comp.name,
        variant.map(|v| format!("_{v}")).unwrap_or_default()
    );
    let rel = format!("{}/{PLATFORM}/{root}.tar.xz", comp.name);
    let dest = opts.out.join(&rel);
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }

    let wheel_err = |what: &str, e: &dyn fmt::Display| format!("{wheel_name}: {what}: {e}");
    let file = File::open(wheel_path).map_err(|e| format!("{}: {e}", wheel_path.display()))?;
    let mut zip =
        zip::ZipArchive::new(BufReader::new(file)).map_err(|e| wheel_err("not a wheel", &e))?;
    let mut entries = Vec::with_capacity(zip.len());
    for index in 0..zip.len() {
        let f = zip
            .by_index_raw(index)
            .map_err(|e| wheel_err(&format!("entry {index}"), &e))?;
        entries.push((f.name().to_owned(), index, f.size()));
    }
    entries.sort_by(|a, b| a.0.cmp(&b.0));

    let mut members = Vec::new();
    for (name, index, size) in entries {
        if name.ends_with('/') {
            continue;
        }
        let Some(inner) = name.strip_prefix(comp.prefix) else {
            continue;
        };
        if inner.ends_with("__init__.py") {
            continue;
        }
        let Some((src, dst)) = comp
            .rules
            .iter()
            .find(|(src, _)| inner == *src || (src.ends_with('/') && inner.starts_with(src)))
        else {
            continue;
        };
        let path = format!("{dst}{}", &inner[src.len()..]);
        let (source, elf) = if path == "bin/nvcc.profile" && opts.cuda == Cuda::V13 {
            let data = NVCC_PROFILE_13.as_bytes().to_vec();
            let elf = is_elf(&data);
            (Source::Bytes(data), elf)
        } else {
            let mut head = Vec::with_capacity(4);
            zip.by_index(index)
                .and_then(|f| Ok(f.take(4).read_to_end(&mut head)?))
                .map_err(|e| wheel_err(&name, &e))?;
            (Source::Zip { index, size }, is_elf(&head))
        };
        let mode = if path.starts_with("bin/") || elf {
            0o755
        } else {
            0o644
        };
        members.push((Member { path, source, mode }, elf));
    }

    // Real redist archives ship libfoo.so.X.Y.Z with libfoo.so.X and
    // libfoo.so links.
    let mut links: Vec<(String, String)> = Vec::new();
    let mut renamed = Vec::with_capacity(members.len());
    for (mut m, elf) in members {
        let (d, base) = match m.path.rsplit_once('/') {
            Some((d, b)) => (d.to_owned(), b.to_owned()),
            None => (String::new(), m.path.clone()),
        };
        if let (true, Some((stem, _))) = (elf, base.split_once(".so.")) {
            if m.path.starts_with("lib/") && base.matches('.').count() == 2 {
                let full = format!("{stem}.so.{version}");
                links.push((format!("{d}/{base}"), full.clone()));
                links.push((format!("{d}/{stem}.so"), base.clone()));
                m.path = format!("{d}/{full}");
            } else if m.path.starts_with("nvvm/lib64/") {
                links.push((format!("{d}/{stem}.so"), base.clone()));
            }
        }
        renamed.push(m);
    }
    let mut members = renamed;

    let pcs: &[(&str, &str, &str)] = match comp.name {
        "cuda_cudart" => &[("cudart", "CUDA Runtime Library", "cudart")],
        "cuda_nvrtc" => &[(
            "nvrtc",
            "A runtime compilation library for CUDA C++",
            "nvrtc",
        )],
        _ => &[],
    };
    for (name, desc, lib) in pcs {
        members.push(Member {
            path: format!("pkg-config/{name}-{mm}.pc"),
            source: Source::Bytes(pkg_config(&mm, name, desc, lib).into_bytes()),
            mode: 0o644,
        });
    }
    members.push(Member {
        path: "LICENSE".into(),
        source: Source::Bytes(LICENSE_TEXT.as_bytes().to_vec()),
        mode: 0o644,
    });

    let mut dirs = BTreeSet::new();
    for path in members
        .iter()
        .map(|m| &m.path)
        .chain(links.iter().map(|l| &l.0))
    {
        let mut at = 0;
        while let Some(i) = path[at..].find('/') {
            dirs.insert(path[..at + i].to_owned());
            at += i + 1;
        }
    }
    members.sort_by(|a, b| a.path.cmp(&b.path));
    links.sort();
    links.dedup();

    let part = PathBuf::from(format!("{}.part", dest.display()));
    let file = File::create(&part).map_err(|e| format!("{}: {e}", part.display()))?;
    let hashed = HashWriter::new(BufWriter::with_capacity(1 << 20, file));
    let stream = xz_stream(opts.xz_threads, opts.xz_level)?;
    let mut tar = Builder::new(XzEncoder::new_stream(hashed, stream));
    let io_err = |e: io::Error| format!("{}: {e}", part.display());

    append(
        &mut tar,
        &root,
        EntryType::Directory,
        0o755,
        0,
        "",
        &mut io::empty(),
    )
    .map_err(io_err)?;
    for d in &dirs {
        let name = format!("{root}/{d}");
        append(
            &mut tar,
            &name,
            EntryType::Directory,
            0o755,
            0,
            "",
            &mut io::empty(),
        )
        .map_err(io_err)?;
    }
    for m in &members {
        let name = format!("{root}/{}", m.path);
        match &m.source {
            Source::Bytes(data) => append(
                &mut tar,
                &name,
                EntryType::Regular,
                m.mode,
                data.len() as u64,
                "",
                &mut &data[..],
            )
            .map_err(io_err)?,
            Source::Zip { index, size } => {
                let f = zip.by_index(*index).map_err(|e| wheel_err(&m.path, &e))?;
                let mut counted = CountingReader { inner: f, count: 0 };
                append(
                    &mut tar,
                    &name,
                    EntryType::Regular,
                    m.mode,
                    *size,
                    "",
                    &mut counted,
                )
                .map_err(|e| wheel_err(&m.path, &e))?;
                if counted.count != *size {
                    return Err(format!(
                        "{wheel_name}: {}: {} bytes instead of the {size} its zip entry says",
                        m.path, counted.count
                    ));
                }
            }
        }
    }
    for (path, target) in &links {
        let name = format!("{root}/{path}");
        append(
            &mut tar,
            &name,
            EntryType::Symlink,
            0o777,
            0,
            target,
            &mut io::empty(),
        )
        .map_err(io_err)?;
    }
    // tarfile's end of archive: two zero blocks (into_inner writes them),
    // then zeros up to a whole record.
    let mut xz = tar.into_inner().map_err(io_err)?;
    let pad = (RECORD_SIZE - xz.total_in() % RECORD_SIZE) % RECORD_SIZE;
    io::copy(&mut io::repeat(0).take(pad), &mut xz).map_err(io_err)?;
    let hashed = xz.finish().map_err(io_err)?;
    let (file, sha256, md5, size) = hashed.finish();
    let file = file.into_inner().map_err(|e| io_err(e.into_error()))?;
    file.sync_all().map_err(io_err)?;
    drop(file);
    fs::rename(&part, &dest).map_err(|e| format!("{}: {e}", dest.display()))?;

    let entry = Entry {
        relative_path: rel,
        sha256,
        md5,
        size,
    };
    Ok((version, entry))
}

/// One block (`xz -T1`), or liblzma's multithreaded encoder (`xz -T<n>`):
/// blocks of 3× the dictionary size, sizes in the block headers.
fn xz_stream(threads: u32, level: u32) -> Result<Stream> {
    let threads = if threads == 0 {
        std::thread::available_parallelism().map_or(1, |n| n.get() as u32)
    } else {
        threads
    };
    let stream = if threads > 1 {
        MtStreamBuilder::new()
            .threads(threads)
            .preset(level)
            .check(Check::Crc64)
            .encoder()
    } else {
        Stream::new_easy_encoder(level, Check::Crc64)
    };
    stream.map_err(|e| format!("xz encoder (preset {level}, {threads} threads): {e}"))
}

/// Append one member as Python's `tarfile` writes it in GNU format,
/// preceded by `././@LongLink` members for a name or link target longer
/// than 100 bytes.
fn append<W: Write>(
    tar: &mut Builder<W>,
    name: &str,
    kind: EntryType,
    mode: u32,
    size: u64,
    link: &str,
    data: &mut dyn Read,
) -> io::Result<()> {
    // tarfile gives directory names a trailing slash.
    let name = if kind == EntryType::Directory && !name.ends_with('/') {
        format!("{name}/")
    } else {
        name.to_owned()
    };
    for (long, kind) in [
        (link, EntryType::GNULongLink),
        (name.as_str(), EntryType::GNULongName),
    ] {
        if long.len() > 100 {
            let mut payload = long.as_bytes().to_vec();
            payload.push(0);
            let h = gnu_header(b"././@LongLink", kind, 0, payload.len() as u64, 0, b"");
            tar.append(&h, &payload[..])?;
        }
    }
    let h = gnu_header(name.as_bytes(), kind, mode, size, MTIME, link.as_bytes());
    tar.append(&h, data)
}

/// A GNU header block byte for byte as `tarfile` (Python 3.11) makes it:
/// uid/gid 0, empty user and group names, names cut at 100 bytes, the
/// checksum as six octal digits, NUL, space.
fn gnu_header(
    name: &[u8],
    kind: EntryType,
    mode: u32,
    size: u64,
    mtime: u64,
    link: &[u8],
) -> Header {
    let mut h = Header::new_gnu();
    h.set_mode(mode);
    h.set_uid(0);
    h.set_gid(0);
    h.set_size(size);
    h.set_mtime(mtime);
    h.set_entry_type(kind);
    let b = h.as_mut_bytes();
    let n = name.len().min(100);
    b[..n].copy_from_slice(&name[..n]);
    let l = link.len().min(100);
    b[157..157 + l].copy_from_slice(&link[..l]);
    b[148..156].fill(b' ');
    let sum: u32 = b.iter().map(|&x| u32::from(x)).sum();
    b[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

struct CountingReader<R> {
    inner: R,
    count: u64,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.count += n as u64;
        Ok(n)
    }
}

/// sha256, md5 and size of what goes through.
struct HashWriter<W> {
    inner: W,
    sha256: Sha256,
    md5: Md5,
    size: u64,
}

impl<W> HashWriter<W> {
    fn new(inner: W) -> Self {
        HashWriter {
            inner,
            sha256: Sha256::new(),
            md5: Md5::new(),
            size: 0,
        }
    }

    /// (writer, sha256 hex, md5 hex, size)
    fn finish(self) -> (W, String, String, u64) {
        (
            self.inner,
            format!("{:x}", self.sha256.finalize()),
            format!("{:x}", self.md5.finalize()),
            self.size,
        )
    }
}

impl<W: Write> Write for HashWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.sha256.update(&buf[..n]);
        self.md5.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// A JSON value that keeps the order of object keys, as Python's `json`
/// does (serde_json's `Value` sorts them without its `preserve_order`
/// feature, which would change the other crates' output too).
#[derive(Clone, Debug, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(serde_json::Number),
    Str(String),
    Arr(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl From<&str> for Json {
    fn from(s: &str) -> Json {
        Json::Str(s.to_owned())
    }
}

impl Json {
    fn is_obj(&self) -> bool {
        matches!(self, Json::Obj(_))
    }
}

/// Python's dict assignment: a new key goes last, an existing one keeps its
/// place and takes the new value.
fn insert(obj: &mut Vec<(String, Json)>, key: String, value: Json) {
    match obj.iter_mut().find(|(k, _)| *k == key) {
        Some(slot) => slot.1 = value,
        None => obj.push((key, value)),
    }
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Json::Null => s.serialize_unit(),
            Json::Bool(b) => s.serialize_bool(*b),
            Json::Num(n) => n.serialize(s),
            Json::Str(v) => s.serialize_str(v),
            Json::Arr(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for i in items {
                    seq.serialize_element(i)?;
                }
                seq.end()
            }
            Json::Obj(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Json, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E>(self) -> std::result::Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E>(self) -> std::result::Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<Json, E> {
                Ok(Json::Bool(v))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<Json, E> {
                Ok(Json::Num(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<Json, E> {
                Ok(Json::Num(v.into()))
            }
            fn visit_f64<E: serde::de::Error>(self, v: f64) -> std::result::Result<Json, E> {
                serde_json::Number::from_f64(v)
                    .map(Json::Num)
                    .ok_or_else(|| E::custom("not a finite number"))
            }
            fn visit_str<E>(self, v: &str) -> std::result::Result<Json, E> {
                Ok(Json::Str(v.to_owned()))
            }
            fn visit_string<E>(self, v: String) -> std::result::Result<Json, E> {
                Ok(Json::Str(v))
            }
            fn visit_seq<A: SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> std::result::Result<Json, A::Error> {
                let mut items = Vec::new();
                while let Some(i) = seq.next_element()? {
                    items.push(i);
                }
                Ok(Json::Arr(items))
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> std::result::Result<Json, A::Error> {
                let mut entries = Vec::new();
                while let Some((k, v)) = map.next_entry::<String, Json>()? {
                    insert(&mut entries, k, v);
                }
                Ok(Json::Obj(entries))
            }
        }
        d.deserialize_any(V)
    }
}

/// `json.dump(value, f, indent=4)` plus a newline: 4-space indentation and
/// (`ensure_ascii`) every character outside printable ASCII escaped.
fn to_json_text(value: &Json) -> Result<String> {
    let mut buf = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(
        &mut buf,
        serde_json::ser::PrettyFormatter::with_indent(b"    "),
    );
    value
        .serialize(&mut ser)
        .map_err(|e| format!("writing JSON: {e}"))?;
    let text = String::from_utf8(buf).map_err(|e| format!("writing JSON: {e}"))?;
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.chars() {
        // serde_json has escaped the control characters already; the others
        // can only be inside strings.
        if c.is_ascii() && c != '\x7f' {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for u in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{u:04x}"));
            }
        }
    }
    out.push('\n');
    Ok(out)
}

fn write_json(path: &Path, value: &Json) -> Result {
    fs::write(path, to_json_text(value)?).map_err(|e| format!("{}: {e}", path.display()))
}
