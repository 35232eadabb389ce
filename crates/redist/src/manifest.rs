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
        c.select(platform, variant)
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
        let (used, entry) =
            self.platform_for(platform)
                .ok_or_else(|| ManifestError::NoPlatform {
                    component: self.key.clone(),
                    version: self.version.clone(),
                    platform: platform.to_owned(),
                    available: self.platform_names().join(", "),
                })?;
        let (variant, archive) = match entry {
            PlatformEntry::Archive(a) => (None, a),
            PlatformEntry::Variants(vs) => {
                let choices = vs.keys().cloned().collect::<Vec<_>>().join(", ");
                // A component with a single variant needs no choosing.
                let only = (vs.len() == 1).then(|| vs.keys().next()).flatten();
                let Some(v) = variant.or(only.map(String::as_str)) else {
                    return Err(ManifestError::VariantNeeded {
                        component: self.key.clone(),
                        version: self.version.clone(),
                        choices,
                    });
                };
                let name = if v.starts_with("cuda") {
                    v.to_owned()
                } else {
                    format!("cuda{v}")
                };
                let a = vs.get(&name).ok_or_else(|| ManifestError::UnknownVariant {
                    component: self.key.clone(),
                    version: self.version.clone(),
                    variant: v.to_owned(),
                    choices,
                })?;
                (Some(name), a)
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
