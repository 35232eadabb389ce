//! Where archives come from: a manifest, the mirror its archives are on,
//! and the verified cache, with the policy that ties them together (cache
//! first, a corrupt cached copy evicted and fetched again, `--offline`).
//! What `fetch`, `features` and `install` read archives through.

use std::collections::BTreeSet;
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;

use super::{Cache, Fetcher, Location, Pending, SourceError, Verified};
use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::manifest::{CudaVersion, Manifest, ManifestError, PlatformEntry, Selected};
use crate::report::{Progress, Reporter};
use crate::Input;

/// Where an archive's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The verified cache.
    Cache,
    /// An HTTP(S) mirror (and written to the cache on the way).
    Download,
    /// A mirror on this machine: a directory or `file://` URL (and written
    /// to the cache on the way).
    Local,
    /// The store of unpacked trees: linked, not decoded.
    Store,
}

/// One manifest of a set and where its archives are.
pub struct Product {
    /// Its `release_product` (`cuda`, `cudnn`), or a name made from the
    /// manifest's file name when it has none.
    pub name: String,
    /// The parsed manifest.
    pub manifest: Manifest,
    /// Base location archives' `relative_path`s are joined to.
    pub base: Location,
}

/// One or several manifests (a set: CUDA with cuDNN, cuTENSOR, …) and
/// where their archives are.
pub struct Repository {
    /// The manifests, in the order given.
    pub products: Vec<Product>,
    /// Downloads.
    pub fetcher: Fetcher,
    /// The cache, if used.
    pub cache: Option<Cache>,
    /// Never download; only the cache.
    pub offline: bool,
}

impl Repository {
    /// Load the manifests at `manifests`; archives come from `mirror` or
    /// each manifest's own directory.
    pub fn open(
        manifests: &[String],
        mirror: Option<&str>,
        fetcher: Fetcher,
        cache: Option<Cache>,
        offline: bool,
    ) -> Result<Repository> {
        let mut products: Vec<Product> = Vec::new();
        for (i, m) in manifests.iter().enumerate() {
            let loc = Location::parse(m);
            let text = fetcher.read_to_string(&loc)?;
            let manifest = Manifest::parse(&text, &loc.to_string())?;
            let base = match mirror {
                Some(m) => Location::parse(m),
                None => loc.parent(),
            };
            let name = manifest.release_product.clone().unwrap_or_else(|| {
                product_of_file(m).unwrap_or_else(|| format!("manifest{}", i + 1))
            });
            if let Some(other) = products.iter().find(|p| p.name == name) {
                return Err(ManifestError::DuplicateProduct {
                    product: name,
                    first: other.manifest.label(),
                    second: loc.to_string(),
                }
                .into());
            }
            products.push(Product {
                name,
                manifest,
                base,
            });
        }
        Ok(Repository {
            products,
            fetcher,
            cache,
            offline,
        })
    }

    /// `cuda 13.0.2`, or `cuda 13.0.2 + cudnn 9.14.0` for a set.
    pub fn label(&self) -> String {
        self.products
            .iter()
            .map(|p| p.manifest.label())
            .collect::<Vec<_>>()
            .join(" + ")
    }

    /// The CUDA version of the set: the `release_label` of its `cuda`
    /// manifest.
    pub fn cuda(&self) -> Option<CudaVersion> {
        let p = self.products.iter().find(|p| p.name == "cuda")?;
        let label = p.manifest.release_label.as_deref()?;
        CudaVersion::parse(label, &format!("the set's cuda manifest {label}"))
    }

    /// The product and component a name stands for: `cudnn` (in whichever
    /// manifest has it) or `cudnn:cudnn` (product, then component).
    fn find(&self, name: &str) -> Result<(&Product, String)> {
        if let Some((product, component)) = name.split_once(':') {
            let p = self
                .products
                .iter()
                .find(|p| p.name == product)
                .ok_or_else(|| ManifestError::UnknownProduct {
                    product: product.to_owned(),
                    name: name.to_owned(),
                    available: self.product_names(),
                })?;
            return Ok((p, component.to_owned()));
        }
        let having: Vec<&Product> = self
            .products
            .iter()
            .filter(|p| p.manifest.components.contains_key(name))
            .collect();
        match having.as_slice() {
            [one] => Ok((one, name.to_owned())),
            [] if self.products.len() == 1 => Ok((&self.products[0], name.to_owned())),
            [] => Err(ManifestError::UnknownComponent {
                origin: self.label(),
                name: name.to_owned(),
                available: self
                    .products
                    .iter()
                    .flat_map(|p| p.manifest.components.keys().cloned())
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into()),
            many => Err(ManifestError::Ambiguous {
                name: name.to_owned(),
                candidates: many
                    .iter()
                    .map(|p| format!("{}:{name}", p.name))
                    .collect::<Vec<_>>()
                    .join(", "),
            }
            .into()),
        }
    }

    fn product_names(&self) -> String {
        self.products
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Choose components: the named ones, or every one with an archive for
    /// the platform (`all`). Variants: `variant` when given, else the one
    /// built for `cuda` (see [`crate::Component::select_for`]).
    pub fn select(
        &self,
        names: &[String],
        all: bool,
        platform: &str,
        variant: Option<&str>,
        cuda: Option<&CudaVersion>,
    ) -> Result<Vec<Selected>> {
        if all {
            let mut out = Vec::new();
            for p in &self.products {
                for c in p.manifest.components.values() {
                    match c.select_for(platform, variant, cuda) {
                        Ok(mut s) => {
                            s.product.clone_from(&p.name);
                            out.push(s)
                        }
                        Err(
                            ManifestError::NoPlatform { .. }
                            | ManifestError::WindowsZip { .. }
                            | ManifestError::VariantMismatch { .. },
                        ) => {}
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            return Ok(out);
        }
        names
            .iter()
            .map(|n| {
                let (p, component) = self.find(n)?;
                let mut s = p.manifest.select_for(&component, platform, variant, cuda)?;
                s.product.clone_from(&p.name);
                Ok(s)
            })
            .collect()
    }

    /// Where `sel`'s archive is on the mirror.
    pub fn location(&self, sel: &Selected) -> Location {
        let p = self
            .products
            .iter()
            .find(|p| p.name == sel.product)
            .unwrap_or(&self.products[0]);
        p.base.join(&sel.archive.relative_path)
    }

    /// Open `sel`'s archive for one verified pass: from the cache when it
    /// is there, else from the mirror, written to the cache on the way
    /// (committed by [`Committer::commit`] once the pass succeeded).
    pub fn open_archive(&self, sel: &Selected, prefer_cache: bool) -> Result<Opened> {
        // Messages about the bytes name where they come from; the caller
        // adds the component ("failed to install cuda_nvcc 12.9.86").
        let what = format!("{} {}", sel.component, sel.version);
        let location = self.location(sel);
        let label = location.to_string();
        let fetched = match location {
            Location::Path(_) => Origin::Local,
            Location::Url(_) => Origin::Download,
        };
        if let Some(cache) = &self.cache {
            if prefer_cache {
                if let Some(path) = cache.lookup(&sel.archive) {
                    let label = format!("{} (cached)", path.display());
                    let file = fs::File::open(&path).map_err(|source| SourceError::File {
                        path: path.clone(),
                        source,
                    })?;
                    let reader = Box::new(Verified::new(file, &sel.archive));
                    return Ok(Opened {
                        label,
                        reader,
                        size: sel.archive.size,
                        origin: Origin::Cache,
                        pending: None,
                    });
                }
            }
            if self.offline {
                return Err(SourceError::NotCached {
                    what,
                    path: cache.path(&sel.archive.sha256),
                }
                .into());
            }
            let (body, _) = self.fetcher.open(&location)?;
            let (tee, pending) = cache.tee(&sel.archive.sha256, body)?;
            let reader = Box::new(Verified::new(tee, &sel.archive));
            return Ok(Opened {
                label,
                reader,
                size: sel.archive.size,
                origin: fetched,
                pending: Some(pending),
            });
        }
        if self.offline {
            return Err(SourceError::NotCached {
                what,
                path: PathBuf::from("(no cache)"),
            }
            .into());
        }
        let (body, _) = self.fetcher.open(&location)?;
        let reader = Box::new(Verified::new(body, &sel.archive));
        Ok(Opened {
            label,
            reader,
            size: sel.archive.size,
            origin: fetched,
            pending: None,
        })
    }

    /// Run `pass` over `sel`'s verified bytes. A cached copy that fails
    /// verification is evicted and the archive downloaded again (once).
    pub fn with_archive<T>(
        &self,
        sel: &Selected,
        mut pass: impl FnMut(Opened) -> Result<T>,
    ) -> Result<(T, Origin)> {
        let mut prefer_cache = true;
        loop {
            let opened = self.open_archive(sel, prefer_cache)?;
            let origin = opened.origin;
            let result = pass(opened);
            // A failure reading a cached copy may be the copy's fault: check
            // its hash; a bad entry is evicted and never used again.
            let bad_cache = match &result {
                Err(Error::Verify { .. }) => origin == Origin::Cache,
                Err(_) if origin == Origin::Cache => self
                    .cache
                    .as_ref()
                    .is_some_and(|c| !c.is_intact(&sel.archive)),
                _ => false,
            };
            match result {
                Err(e) if bad_cache => {
                    if let Some(cache) = &self.cache {
                        cache.evict(&sel.archive.sha256);
                    }
                    if self.offline {
                        return Err(match e {
                            Error::Verify { archive, cause } => Error::Verify {
                                archive: format!(
                                    "{archive} (cached copy, now removed; run without --offline)"
                                ),
                                cause,
                            },
                            other => Error::CorruptCache {
                                what: format!("{} {}", sel.component, sel.version),
                                cause: Box::new(other),
                            },
                        });
                    }
                    prefer_cache = false;
                }
                other => return other.map(|t| (t, origin)),
            }
        }
    }
}

/// An archive opened for one verified pass.
pub struct Opened {
    /// Where the bytes come from (URL, path, or cache entry), for messages.
    pub label: String,
    /// Verified bytes.
    pub reader: Box<dyn Read + Send>,
    /// Expected size.
    pub size: u64,
    /// Cache or download.
    pub origin: Origin,
    pending: Option<Pending>,
}

impl Opened {
    /// Split into the unpack input and what commits the cache entry.
    pub fn into_input(self) -> (Input, Committer) {
        (
            Input::Reader {
                label: self.label,
                reader: self.reader,
                size: Some(self.size),
            },
            Committer(self.pending),
        )
    }

    /// Split into the verified bytes and what commits the cache entry.
    pub fn into_reader(self) -> (Box<dyn Read + Send>, Committer) {
        (self.reader, Committer(self.pending))
    }
}

/// Makes a downloaded archive a cache entry once its pass succeeded.
pub struct Committer(Option<Pending>);

impl Committer {
    /// The pass verified the bytes: keep them in the cache.
    pub fn commit(self) -> Result<()> {
        if let Some(p) = self.0 {
            p.commit()?;
        }
        Ok(())
    }
}

/// One component of a manifest as `redist list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ListRow {
    /// The product of its manifest (`cuda`, `cudnn`).
    pub product: String,
    /// Manifest key.
    pub component: String,
    /// Human-readable name.
    pub name: Option<String>,
    /// Version.
    pub version: String,
    /// The platform whose archive is used (`linux-all` for some).
    pub platform: String,
    /// Archive size, when there is one archive.
    pub size: Option<u64>,
    /// Variants (`cuda12`, `cuda13`, …) and their sizes.
    pub variants: Vec<VariantRow>,
    /// The variant an install would take.
    pub variant: Option<String>,
    /// Why that variant (or why none fits).
    pub why: Option<String>,
    /// Whether it can be installed (not a Windows `.zip`).
    pub installable: bool,
}

/// One variant of a [`ListRow`].
#[derive(Debug, Clone, Serialize)]
pub struct VariantRow {
    /// Its name.
    pub variant: String,
    /// Archive size.
    pub size: u64,
}

/// What [`Repository::fetch`] verified and kept.
#[derive(Debug, Clone, Serialize)]
pub struct Fetched {
    /// Manifest key.
    pub component: String,
    /// Version.
    pub version: String,
    /// SHA-256 the bytes matched.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    /// Where the bytes came from.
    pub origin: Origin,
    /// The cache entry, when a cache is used.
    pub cache: Option<PathBuf>,
    /// The copy written to the output directory, if asked for.
    pub out: Option<PathBuf>,
}

impl Repository {
    /// Every component with an archive for `platform` (or one that serves
    /// every platform), manifest by manifest, each with the variant it
    /// would take (given `variant` or `cuda`) and why.
    pub fn list(
        &self,
        platform: &str,
        variant: Option<&str>,
        cuda: Option<&CudaVersion>,
    ) -> Vec<ListRow> {
        let mut rows = Vec::new();
        for p in &self.products {
            for c in p.manifest.components.values() {
                let Some((used, entry)) = c.platform_for(platform) else {
                    continue;
                };
                let (size, variants, installable) = match entry {
                    PlatformEntry::Archive(a) => {
                        (Some(a.size), Vec::new(), !a.relative_path.ends_with(".zip"))
                    }
                    PlatformEntry::Variants(vs) => (
                        None,
                        vs.iter()
                            .map(|(k, a)| VariantRow {
                                variant: k.clone(),
                                size: a.size,
                            })
                            .collect(),
                        !vs.values().any(|a| a.relative_path.ends_with(".zip")),
                    ),
                };
                let (chosen, why) = match c.select_for(platform, variant, cuda) {
                    Ok(s) => (s.variant, s.variant_reason),
                    Err(e @ ManifestError::VariantMismatch { .. }) => (None, Some(e.to_string())),
                    Err(ManifestError::VariantNeeded { .. }) => (
                        None,
                        Some("pick one with --variant, or name the CUDA with --cuda or a cuda manifest".into()),
                    ),
                    Err(_) => (None, None),
                };
                rows.push(ListRow {
                    product: p.name.clone(),
                    component: c.key.clone(),
                    name: c.name.clone(),
                    version: c.version.clone(),
                    platform: used.to_owned(),
                    size,
                    variants,
                    variant: chosen,
                    why,
                    installable,
                });
            }
        }
        rows
    }

    /// Download (or read from the cache) and verify `sel`'s archive; with
    /// `out_dir`, a copy named like the archive is written there, renamed
    /// into place only once the last byte verified.
    pub fn fetch(
        &self,
        sel: &Selected,
        out_dir: Option<&Path>,
        reporter: &dyn Reporter,
    ) -> Result<Fetched> {
        let name = sel
            .archive
            .relative_path
            .rsplit('/')
            .next()
            .unwrap_or(&sel.archive.relative_path);
        let out = out_dir.map(|d| d.join(name));
        let ((), origin) = self
            .with_archive(sel, |opened| {
                let progress = reporter.component(sel, opened.origin);
                let label = opened.label.clone();
                progress.begin(&label, Some(opened.size));
                let (mut reader, committer) = opened.into_reader();
                let result = copy_verified(&mut reader, out.as_deref(), progress.as_ref(), &label);
                progress.finish();
                result?;
                committer.commit()
            })
            .map_err(|e| Error::component("fetch", sel, e))?;
        Ok(Fetched {
            component: sel.component.clone(),
            version: sel.version.clone(),
            sha256: sel.archive.sha256.clone(),
            size: sel.archive.size,
            origin,
            cache: self.cache.as_ref().map(|c| c.path(&sel.archive.sha256)),
            out,
        })
    }

    /// Per component: the outputs its archive produces under `layout`
    /// (verified, cached), in the order of `selected`. Archives are
    /// streamed several at a time; the first failure is returned.
    pub fn outputs(
        &self,
        selected: &[Selected],
        layout: &Layout,
        reporter: &dyn Reporter,
    ) -> Result<Vec<BTreeSet<String>>> {
        self.scan(selected, reporter, |input, progress| {
            crate::outputs_of(input, layout, progress)
        })
    }

    /// Per component: its [`crate::ArchiveFacts`] under `layout` (outputs,
    /// libraries shipped, libraries needed), in the order of `selected`.
    pub fn facts(
        &self,
        selected: &[Selected],
        layout: &Layout,
        reporter: &dyn Reporter,
    ) -> Result<Vec<crate::ArchiveFacts>> {
        self.scan(selected, reporter, |input, progress| {
            crate::archive_facts(input, layout, progress)
        })
    }

    /// One verified pass of `read` over each archive, several at a time.
    fn scan<T: Send>(
        &self,
        selected: &[Selected],
        reporter: &dyn Reporter,
        read: impl Fn(Input, &dyn Progress) -> Result<T> + Sync,
    ) -> Result<Vec<T>> {
        use rayon::prelude::*;
        selected
            .par_iter()
            .map(|sel| {
                self.with_archive(sel, |opened| {
                    let progress = reporter.component(sel, opened.origin);
                    let (input, committer) = opened.into_input();
                    let t = read(input, progress.as_ref())?;
                    committer.commit()?;
                    Ok(t)
                })
                .map(|(t, _)| t)
                .map_err(|e| Error::component("read", sel, e))
            })
            .collect()
    }
}

/// Read all of a verified reader, into `out` when given (renamed into
/// place only once the last byte verified; nothing left on failure).
fn copy_verified(
    reader: &mut dyn Read,
    out: Option<&Path>,
    progress: &dyn Progress,
    label: &str,
) -> Result<()> {
    let write_error = |path: &Path| {
        let path = path.to_owned();
        move |source| Error::Write { path, source }
    };
    let mut file = match out {
        Some(path) => {
            let partial = crate::scratch::Scratch::new(path.with_extension("partial"));
            let f = fs::File::create(partial.path()).map_err(write_error(partial.path()))?;
            Some((f, partial))
        }
        None => None,
    };
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    loop {
        let n = reader
            .read(&mut buf)
            .map_err(|e| crate::decode::source_failure(label, e))?;
        if n == 0 {
            break;
        }
        total += n as u64;
        progress.advance(total);
        if let Some((f, p)) = &mut file {
            f.write_all(&buf[..n]).map_err(write_error(p.path()))?;
        }
    }
    if let (Some((_, partial)), Some(path)) = (file, out) {
        fs::rename(partial.path(), path).map_err(write_error(path))?;
        partial.keep();
    }
    Ok(())
}

/// `cudnn` from `…/cudnn_redistrib_9.14.0.json` (how the project's copies of
/// NVIDIA's manifests are named); `None` for NVIDIA's own `redistrib_*`.
fn product_of_file(manifest: &str) -> Option<String> {
    let file = manifest.rsplit('/').next()?;
    let (product, _) = file.split_once("_redistrib")?;
    (!product.is_empty()).then(|| product.to_owned())
}
