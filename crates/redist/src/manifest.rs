//! NVIDIA's `redistrib_<version>.json` manifests.
//!
//! ```json
//! { "release_date": "2025-06-05", "release_label": "12.9.1", "release_product": "cuda",
//!   "cuda_nvcc": { "name": "…", "license": "…", "license_path": "…", "version": "12.9.86",
//!     "linux-x86_64": { "relative_path": "cuda_nvcc/linux-x86_64/…-archive.tar.xz",
//!                       "sha256": "…", "md5": "…", "size": "28925764" } },
//!   "cudnn": { …, "cuda_variant": ["12", "13"],
//!     "linux-x86_64": { "cuda12": { "relative_path": … }, "cuda13": { … } } } }
//! ```
//!
//! Every shape seen in NVIDIA's manifests parses: plain and per-CUDA-variant
//! platform entries, `linux-all` and `source` platforms, Windows `.zip`
//! archives. Unknown fields are kept in `extra`, never fatal. Archive names
//! do not always follow the component key (`imex` → `nvidia-imex-…`), so
//! only `relative_path` is ever used.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::Value;

/// Errors about manifests and choosing from them.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The manifest is not JSON of the expected shape.
    #[error("invalid manifest {origin}{}", what.as_ref().map(|w| format!(": {w}")).unwrap_or_default())]
    Invalid {
        /// Where it came from (a path, URL or `built-in`).
        origin: String,
        /// What about its shape is wrong.
        what: Option<String>,
        /// The JSON parser's error, when it is not JSON at all.
        #[source]
        cause: Option<serde_json::Error>,
    },
    /// No component by that name.
    #[error("{origin} has no component `{name}`; it has: {available}")]
    UnknownComponent {
        /// Where it came from (a path, URL or `built-in`).
        origin: String,
        /// The name asked for.
        name: String,
        /// What the manifest has instead.
        available: String,
    },
    /// The component has no archive for the platform.
    #[error("{component} {version} has no archive for {platform}; it has: {available}")]
    NoPlatform {
        /// The component's key in the manifest.
        component: String,
        /// The component's version.
        version: String,
        /// The platform asked for.
        platform: String,
        /// What the manifest has instead.
        available: String,
    },
    /// The component comes in CUDA variants and none was chosen.
    #[error("{component} {version} comes in several CUDA variants; choose one with --variant ({choices})")]
    VariantNeeded {
        /// The component's key in the manifest.
        component: String,
        /// The component's version.
        version: String,
        /// The variants there are.
        choices: String,
    },
    /// The chosen variant does not exist.
    #[error("{component} {version} has no variant `{variant}`; choose one of: {choices}")]
    UnknownVariant {
        /// The component's key in the manifest.
        component: String,
        /// The component's version.
        version: String,
        /// The variant asked for.
        variant: String,
        /// The variants there are.
        choices: String,
    },
    /// No variant of the component is built for the set's CUDA.
    #[error("{component} {version} is built for {choices}, not for CUDA {cuda} ({from}){}", hint(.choices))]
    VariantMismatch {
        /// The component's key in the manifest.
        component: String,
        /// The component's version.
        version: String,
        /// The CUDA version of the set or prefix.
        cuda: String,
        /// Where that version comes from.
        from: String,
        /// The variants there are.
        choices: String,
    },
    /// A bare component name that several manifests of the set have.
    #[error("`{name}` is in several manifests of the set; name one: {candidates}")]
    Ambiguous {
        /// The name asked for.
        name: String,
        /// `product:component` for each.
        candidates: String,
    },
    /// `product:component` naming a product the set does not have.
    #[error(
        "the set has no manifest of product `{product}` (asked for `{name}`); it has: {available}"
    )]
    UnknownProduct {
        /// The product asked for.
        product: String,
        /// The whole name asked for.
        name: String,
        /// The products there are.
        available: String,
    },
    /// A set file that cannot be used.
    #[error("set file {path}: {message}")]
    InvalidSet {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A `--cuda` value that is not a version.
    #[error("--cuda {value}: not a CUDA version (13.0.2, 13.1 or 12)")]
    BadCudaVersion {
        /// As given.
        value: String,
    },
    /// Two manifests of one product in a set.
    #[error("two manifests of product `{product}` in one set: {first} and {second}")]
    DuplicateProduct {
        /// The product.
        product: String,
        /// One manifest.
        first: String,
        /// The other.
        second: String,
    },
    /// Windows archives are `.zip` files, which redist does not install.
    #[error("{component} {version} for {platform} is a Windows .zip archive ({path}); redist installs Linux tarballs only")]
    WindowsZip {
        /// The component's key in the manifest.
        component: String,
        /// The component's version.
        version: String,
        /// The platform asked for.
        platform: String,
        /// The file or directory concerned.
        path: String,
    },
    /// The host's architecture has no NVIDIA platform name.
    #[error("cannot tell the platform of this host ({arch}); pass --platform (linux-x86_64, linux-sbsa, linux-aarch64, linux-ppc64le)")]
    UnknownHost {
        /// The host's architecture.
        arch: String,
    },
}

type Result<T> = std::result::Result<T, ManifestError>;

/// What to do about a variant mismatch, said after the error.
fn hint(choices: &str) -> String {
    format!("; install the add-on release built for this CUDA, or choose a variant with --variant ({choices}) if you know it is compatible")
}

/// The CUDA version a set of products is built around: from the set's
/// `cuda` manifest, or from what a prefix records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CudaVersion {
    /// As written (`13.0.2`).
    pub label: String,
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Where it comes from, for messages (`the cuda manifest`, `PREFIX`).
    pub from: String,
}

impl CudaVersion {
    /// `13.0.2` (or `13.1`, `13`, `13-wheels`), said to come from `from`.
    pub fn parse(label: &str, from: &str) -> Option<CudaVersion> {
        // The version is what the label starts with (`13-wheels` is 13).
        let numeric: &str = label
            .trim()
            .split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()
            .unwrap_or("");
        let mut parts = numeric.trim_end_matches('.').split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().map_or(Some(0), |m| m.parse().ok())?;
        Some(CudaVersion {
            label: label.trim().to_owned(),
            major,
            minor,
            from: from.to_owned(),
        })
    }

    /// Whether a variant (`cuda13`, `13`, `cuda13.1`, `13.1`) is built
    /// for this version: the same major, and the same minor when it names
    /// one.
    pub fn matches(&self, variant: &str) -> bool {
        let v = variant.strip_prefix("cuda").unwrap_or(variant);
        let mut parts = v.split('.');
        let major = parts.next().and_then(|m| m.parse::<u32>().ok());
        let minor = parts.next().map(|m| m.parse::<u32>().ok());
        match (major, minor) {
            (Some(ma), None) => ma == self.major,
            (Some(ma), Some(Some(mi))) => ma == self.major && mi == self.minor,
            _ => false,
        }
    }

    /// The variant keys to look for, most specific first: `cuda13.1`,
    /// `cuda13`.
    fn candidates(&self) -> [String; 2] {
        [
            format!("cuda{}.{}", self.major, self.minor),
            format!("cuda{}", self.major),
        ]
    }
}

/// A parsed manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// `release_date`, e.g. `2025-06-05`.
    pub release_date: Option<String>,
    /// `release_label`, e.g. `12.9.1`.
    pub release_label: Option<String>,
    /// `release_product`, e.g. `cuda`, `cudnn`.
    pub release_product: Option<String>,
    /// Components by key (`cuda_nvcc`).
    pub components: BTreeMap<String, Component>,
    /// Top-level fields we do not know, kept as they are.
    pub extra: BTreeMap<String, Value>,
}

/// One component of a manifest.
#[derive(Debug, Clone, Serialize)]
pub struct Component {
    /// The manifest key (`cuda_nvcc`, `imex`).
    pub key: String,
    /// Display name.
    pub name: Option<String>,
    /// License name.
    pub license: Option<String>,
    /// Path of the license on the server.
    pub license_path: Option<String>,
    /// Version, e.g. `12.9.86`.
    pub version: String,
    /// `cuda_variant` as written (`["12", "13"]`).
    pub cuda_variant: Vec<String>,
    /// Platform name → archive, or variant name → archive.
    pub platforms: BTreeMap<String, PlatformEntry>,
    /// Fields we do not know.
    pub extra: BTreeMap<String, Value>,
}

/// What a platform key holds.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum PlatformEntry {
    /// One archive.
    Archive(Archive),
    /// One archive per CUDA variant (`cuda12`, `cuda13`).
    Variants(BTreeMap<String, Archive>),
}

/// A downloadable archive.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Archive {
    /// Path relative to the manifest's directory.
    pub relative_path: String,
    /// Expected SHA-256, lower-case hex.
    pub sha256: String,
    /// MD5 as published (not used for verification).
    pub md5: Option<String>,
    /// Size in bytes.
    pub size: u64,
    /// Fields we do not know.
    pub extra: BTreeMap<String, Value>,
}

/// A component chosen for one platform (and variant).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Selected {
    /// Component key.
    pub component: String,
    /// Component version.
    pub version: String,
    /// Platform whose archive was chosen (`linux-all` or `source` when the
    /// component has no archive of the requested platform's own).
    pub platform: String,
    /// CUDA variant, for variant manifests.
    pub variant: Option<String>,
    /// Why that variant: `--variant`, `the only variant`, `CUDA 13.0.2 (the
    /// cuda manifest)`.
    pub variant_reason: Option<String>,
    /// The product of the manifest it is from (`cuda`, `cudnn`), when the
    /// manifest says.
    pub product: String,
    /// The archive.
    pub archive: Archive,
}

const COMPONENT_FIELDS: [&str; 5] = ["name", "license", "license_path", "version", "cuda_variant"];

impl Manifest {
    /// Parse manifest text; `origin` names it in errors.
    pub fn parse(text: &str, origin: &str) -> Result<Manifest> {
        let invalid = |what: String| ManifestError::Invalid {
            origin: origin.to_owned(),
            what: Some(what),
            cause: None,
        };
        let root: Value = serde_json::from_str(text).map_err(|e| ManifestError::Invalid {
            origin: origin.to_owned(),
            what: None,
            cause: Some(e),
        })?;
        let Value::Object(root) = root else {
            return Err(invalid("the top level is not a JSON object".into()));
        };
        let mut m = Manifest {
            release_date: None,
            release_label: None,
            release_product: None,
            components: BTreeMap::new(),
            extra: BTreeMap::new(),
        };
        for (key, value) in root {
            match (key.as_str(), value) {
                ("release_date", Value::String(s)) => m.release_date = Some(s),
                ("release_label", Value::String(s)) => m.release_label = Some(s),
                ("release_product", Value::String(s)) => m.release_product = Some(s),
                (_, Value::Object(obj)) if obj.contains_key("version") => {
                    let c = parse_component(&key, obj)
                        .map_err(|e| invalid(format!("component `{key}`: {e}")))?;
                    m.components.insert(key, c);
                }
                (_, other) => {
                    m.extra.insert(key, other);
                }
            }
        }
        Ok(m)
    }

    /// A label for messages: `cuda 12.9.1`.
    pub fn label(&self) -> String {
        match (&self.release_product, &self.release_label) {
            (Some(p), Some(l)) => format!("{p} {l}"),
            (None, Some(l)) => l.clone(),
            _ => "manifest".into(),
        }
    }

    /// Choose `component`'s archive for `platform` and `variant`.
    pub fn select(
        &self,
        component: &str,
        platform: &str,
        variant: Option<&str>,
    ) -> Result<Selected> {
        self.select_for(component, platform, variant, None)
    }

    /// [`Manifest::select`], with the variant chosen for `cuda` when none
    /// is asked for (see [`Component::select_for`]).
    pub fn select_for(
        &self,
        component: &str,
        platform: &str,
        variant: Option<&str>,
        cuda: Option<&CudaVersion>,
    ) -> Result<Selected> {
        let c = self
            .components
            .get(component)
            .ok_or_else(|| ManifestError::UnknownComponent {
                origin: self.label(),
                name: component.to_owned(),
                available: self
                    .components
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", "),
            })?;
        let mut sel = c.select_for(platform, variant, cuda)?;
        sel.product = self.release_product.clone().unwrap_or_default();
        Ok(sel)
    }
}

impl Component {
    /// Platforms this component has archives for.
    pub fn platform_names(&self) -> Vec<&str> {
        self.platforms.keys().map(String::as_str).collect()
    }

    /// The platform entry used for `platform`: its own, else `linux-all`
    /// (for Linux platforms), else `source` (platform-independent).
    pub fn platform_for<'a>(&'a self, platform: &str) -> Option<(&'a str, &'a PlatformEntry)> {
        let get = |p: &str| {
            self.platforms
                .get_key_value(p)
                .map(|(k, v)| (k.as_str(), v))
        };
        get(platform)
            .or_else(|| {
                if platform.starts_with("linux-") {
                    get("linux-all")
                } else {
                    None
                }
            })
            .or_else(|| get("source"))
    }

    /// Choose the archive for `platform` and `variant` (`cuda12` or `12`).
    pub fn select(&self, platform: &str, variant: Option<&str>) -> Result<Selected> {
        self.select_for(platform, variant, None)
    }

    /// Choose the archive for `platform`. The variant is the one asked for;
    /// else the only one; else, with `cuda` known, the one built for it
    /// (`cuda13.1` before `cuda13`). A component whose variants (or
    /// `cuda_variant` list) do not include `cuda` is an error naming both.
    pub fn select_for(
        &self,
        platform: &str,
        variant: Option<&str>,
        cuda: Option<&CudaVersion>,
    ) -> Result<Selected> {
        let (used, entry) =
            self.platform_for(platform)
                .ok_or_else(|| ManifestError::NoPlatform {
                    component: self.key.clone(),
                    version: self.version.clone(),
                    platform: platform.to_owned(),
                    available: self.platform_names().join(", "),
                })?;
        let mismatch = |cuda: &CudaVersion, choices: String| ManifestError::VariantMismatch {
            component: self.key.clone(),
            version: self.version.clone(),
            cuda: cuda.label.clone(),
            from: cuda.from.clone(),
            choices,
        };
        let (variant, reason, archive) = match entry {
            PlatformEntry::Archive(a) => {
                // Built for listed CUDA versions, without per-variant archives.
                if let (None, Some(cuda)) = (variant, cuda) {
                    if !self.cuda_variant.is_empty()
                        && !self.cuda_variant.iter().any(|v| cuda.matches(v))
                    {
                        let listed: Vec<String> = self
                            .cuda_variant
                            .iter()
                            .map(|v| format!("cuda{}", v.trim_start_matches("cuda")))
                            .collect();
                        return Err(mismatch(cuda, listed.join(", ")));
                    }
                }
                (None, None, a)
            }
            PlatformEntry::Variants(vs) => {
                let choices = vs.keys().cloned().collect::<Vec<_>>().join(", ");
                let (name, reason) = if let Some(v) = variant {
                    let name = if v.starts_with("cuda") {
                        v.to_owned()
                    } else {
                        format!("cuda{v}")
                    };
                    (name, "--variant".to_owned())
                } else if let Some(cuda) = cuda {
                    let found = cuda.candidates().into_iter().find(|c| vs.contains_key(c));
                    let Some(name) = found else {
                        return Err(mismatch(cuda, choices));
                    };
                    (name, format!("CUDA {} ({})", cuda.label, cuda.from))
                } else if vs.len() == 1 {
                    // A component with a single variant needs no choosing.
                    let only = vs.keys().next().cloned().unwrap_or_default();
                    (only, "the only variant".to_owned())
                } else {
                    return Err(ManifestError::VariantNeeded {
                        component: self.key.clone(),
                        version: self.version.clone(),
                        choices,
                    });
                };
                let a = vs.get(&name).ok_or_else(|| ManifestError::UnknownVariant {
                    component: self.key.clone(),
                    version: self.version.clone(),
                    variant: variant.unwrap_or(&name).to_owned(),
                    choices,
                })?;
                (Some(name), Some(reason), a)
            }
        };
        if used.starts_with("windows") || archive.relative_path.ends_with(".zip") {
            return Err(ManifestError::WindowsZip {
                component: self.key.clone(),
                version: self.version.clone(),
                platform: used.to_owned(),
                path: archive.relative_path.clone(),
            });
        }
        Ok(Selected {
            component: self.key.clone(),
            version: self.version.clone(),
            platform: used.to_owned(),
            variant,
            variant_reason: reason,
            product: String::new(),
            archive: archive.clone(),
        })
    }
}

fn parse_component(
    key: &str,
    obj: serde_json::Map<String, Value>,
) -> std::result::Result<Component, String> {
    let mut c = Component {
        key: key.to_owned(),
        name: None,
        license: None,
        license_path: None,
        version: String::new(),
        cuda_variant: Vec::new(),
        platforms: BTreeMap::new(),
        extra: BTreeMap::new(),
    };
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("version", Value::String(s)) => c.version = s,
            ("version", _) => return Err("`version` is not a string".into()),
            ("name", Value::String(s)) => c.name = Some(s),
            ("license", Value::String(s)) => c.license = Some(s),
            ("license_path", Value::String(s)) => c.license_path = Some(s),
            ("cuda_variant", Value::Array(a)) => {
                c.cuda_variant = a
                    .into_iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect()
            }
            (_, Value::Object(p)) if !COMPONENT_FIELDS.contains(&k.as_str()) => {
                let entry = if p.contains_key("relative_path") {
                    PlatformEntry::Archive(
                        parse_archive(p).map_err(|e| format!("platform `{k}`: {e}"))?,
                    )
                } else {
                    let mut vs = BTreeMap::new();
                    for (vk, vv) in p {
                        let Value::Object(vo) = vv else {
                            return Err(format!("platform `{k}`: variant `{vk}` is not an object"));
                        };
                        vs.insert(
                            vk.clone(),
                            parse_archive(vo)
                                .map_err(|e| format!("platform `{k}` variant `{vk}`: {e}"))?,
                        );
                    }
                    PlatformEntry::Variants(vs)
                };
                c.platforms.insert(k, entry);
            }
            (_, other) => {
                c.extra.insert(k, other);
            }
        }
    }
    Ok(c)
}

fn parse_archive(obj: serde_json::Map<String, Value>) -> std::result::Result<Archive, String> {
    let mut a = Archive {
        relative_path: String::new(),
        sha256: String::new(),
        md5: None,
        size: 0,
        extra: BTreeMap::new(),
    };
    let mut have_size = false;
    for (k, v) in obj {
        match (k.as_str(), v) {
            ("relative_path", Value::String(s)) => a.relative_path = s,
            ("sha256", Value::String(s)) => a.sha256 = s.to_ascii_lowercase(),
            ("md5", Value::String(s)) => a.md5 = Some(s),
            ("size", Value::String(s)) => {
                a.size = s
                    .trim()
                    .parse()
                    .map_err(|_| format!("size `{s}` is not a number"))?;
                have_size = true;
            }
            ("size", Value::Number(n)) => {
                a.size = n
                    .as_u64()
                    .ok_or_else(|| format!("size `{n}` is not a byte count"))?;
                have_size = true;
            }
            (_, other) => {
                a.extra.insert(k, other);
            }
        }
    }
    if a.relative_path.is_empty() {
        return Err("no `relative_path`".into());
    }
    if a.relative_path.starts_with('/') || a.relative_path.split('/').any(|c| c == "..") {
        return Err(format!(
            "`relative_path` {} leaves the mirror",
            a.relative_path
        ));
    }
    if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(format!(
            "`sha256` of {} is not 64 hex digits",
            a.relative_path
        ));
    }
    if !have_size {
        return Err(format!("no `size` for {}", a.relative_path));
    }
    Ok(a)
}

/// NVIDIA's name for the host's platform: x86_64 → `linux-x86_64`,
/// aarch64 → `linux-sbsa` (servers; Jetson is `linux-aarch64`, choose it
/// with `--platform`), ppc64le → `linux-ppc64le`.
pub fn host_platform() -> std::result::Result<&'static str, ManifestError> {
    match std::env::consts::ARCH {
        "x86_64" => Ok("linux-x86_64"),
        "aarch64" => Ok("linux-sbsa"),
        "powerpc64" if cfg!(target_endian = "little") => Ok("linux-ppc64le"),
        arch => Err(ManifestError::UnknownHost {
            arch: arch.to_owned(),
        }),
    }
}

/// A set file: the manifests of a set of products and, optionally, the
/// components to take from them.
///
/// ```toml
/// manifests = [
///   "https://developer.download.nvidia.com/compute/cuda/redist/redistrib_13.0.2.json",
///   "https://developer.download.nvidia.com/compute/cudnn/redist/redistrib_9.14.0.json",
/// ]
/// components = ["cuda_cudart", "libcublas", "cudnn"]
/// ```
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetFile {
    /// Manifest locations; relative paths are relative to the file.
    pub manifests: Vec<String>,
    /// Components (`cudnn` or `cudnn:cudnn`); empty: as the command says.
    #[serde(default)]
    pub components: Vec<String>,
}

impl SetFile {
    /// Read and check the set file at `path`.
    pub fn load(path: &std::path::Path) -> Result<SetFile> {
        let invalid = |message: String| ManifestError::InvalidSet {
            path: path.to_owned(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        let mut set: SetFile = toml::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if set.manifests.is_empty() {
            return Err(invalid("`manifests` is empty".into()));
        }
        let dir = path.parent().unwrap_or(std::path::Path::new("."));
        for m in &mut set.manifests {
            let relative = !m.contains("://") && !m.starts_with('/');
            if relative {
                *m = dir.join(&*m).display().to_string();
            }
        }
        Ok(set)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: &str = r#"{
        "release_date": "2026-01-01", "release_label": "1.0", "release_product": "cuda",
        "future_field": [1, 2],
        "plain": { "name": "Plain", "license": "L", "license_path": "plain/LICENSE.txt", "version": "1.2.3",
            "new_component_field": true,
            "linux-x86_64": { "relative_path": "plain/linux-x86_64/plain-linux-x86_64-1.2.3-archive.tar.xz",
                "sha256": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "md5": "m", "size": "10", "new": 1 },
            "windows-x86_64": { "relative_path": "plain/windows-x86_64/plain-windows-x86_64-1.2.3-archive.zip",
                "sha256": "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", "size": "11" } },
        "variant": { "version": "9.0", "cuda_variant": ["12", "13"],
            "linux-sbsa": {
                "cuda12": { "relative_path": "v/a12.tar.xz", "sha256": "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc", "size": "1" },
                "cuda13": { "relative_path": "v/a13.tar.xz", "sha256": "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd", "size": 2 } } },
        "anywhere": { "version": "3", "linux-all": { "relative_path": "any.tar.xz", "sha256": "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee", "size": "3" } }
    }"#;

    #[test]
    fn parses_every_shape_and_keeps_unknown_fields() {
        let m = Manifest::parse(SMALL, "small.json").unwrap();
        assert_eq!(m.label(), "cuda 1.0");
        assert_eq!(m.extra["future_field"], serde_json::json!([1, 2]));
        let plain = &m.components["plain"];
        assert_eq!(plain.extra["new_component_field"], Value::Bool(true));
        let s = m.select("plain", "linux-x86_64", None).unwrap();
        assert_eq!(s.archive.size, 10);
        assert_eq!(
            s.archive.sha256,
            "a".repeat(64),
            "sha256 is normalised to lower case"
        );
        assert_eq!(s.archive.extra["new"], serde_json::json!(1));
        assert_eq!(m.components["variant"].cuda_variant, ["12", "13"]);
    }

    #[test]
    fn variants_are_chosen_by_name_or_number() {
        let m = Manifest::parse(SMALL, "small.json").unwrap();
        assert_eq!(
            m.select("variant", "linux-sbsa", Some("cuda13"))
                .unwrap()
                .archive
                .size,
            2
        );
        assert_eq!(
            m.select("variant", "linux-sbsa", Some("12"))
                .unwrap()
                .variant
                .as_deref(),
            Some("cuda12")
        );
        let e = m
            .select("variant", "linux-sbsa", None)
            .unwrap_err()
            .to_string();
        assert_eq!(e, "variant 9.0 comes in several CUDA variants; choose one with --variant (cuda12, cuda13)");
        let e = m
            .select("variant", "linux-sbsa", Some("cuda11"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "variant 9.0 has no variant `cuda11`; choose one of: cuda12, cuda13"
        );
    }

    #[test]
    fn platform_fallbacks_and_refusals() {
        let m = Manifest::parse(SMALL, "small.json").unwrap();
        assert_eq!(
            m.select("anywhere", "linux-sbsa", None).unwrap().platform,
            "linux-all"
        );
        let e = m
            .select("plain", "windows-x86_64", None)
            .unwrap_err()
            .to_string();
        assert!(e.contains("is a Windows .zip archive (plain/windows-x86_64/plain-windows-x86_64-1.2.3-archive.zip)"), "{e}");
        let e = m
            .select("plain", "linux-sbsa", None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "plain 1.2.3 has no archive for linux-sbsa; it has: linux-x86_64, windows-x86_64"
        );
        let e = m
            .select("nope", "linux-sbsa", None)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "cuda 1.0 has no component `nope`; it has: anywhere, plain, variant"
        );
    }

    #[test]
    fn malformed_manifests_name_the_problem() {
        let e = Manifest::parse("[1]", "m.json").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid manifest m.json: the top level is not a JSON object"
        );
        let e = Manifest::parse(r#"{"c": {"version": "1", "linux-x86_64": {"relative_path": "../x", "sha256": "", "size": "1"}}}"#, "m.json")
            .unwrap_err()
            .to_string();
        assert_eq!(e, "invalid manifest m.json: component `c`: platform `linux-x86_64`: `relative_path` ../x leaves the mirror");
        let e = Manifest::parse(r#"{"c": {"version": "1", "linux-x86_64": {"relative_path": "x", "sha256": "abc", "size": "1"}}}"#, "m.json")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("`sha256` of x is not 64 hex digits"), "{e}");
        let e = Manifest::parse(r#"{"c": {"version": "1", "linux-x86_64": {"relative_path": "x", "sha256": "%s", "size": "big"}}}"#.replace("%s", &"a".repeat(64)).as_str(), "m.json")
            .unwrap_err()
            .to_string();
        assert!(e.ends_with("size `big` is not a number"), "{e}");
    }
}
