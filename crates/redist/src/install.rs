//! `redist install`: components from a manifest into one prefix, atomically.
//!
//! 1. Choose the components (platform, variant) from the manifest.
//! 2. Build the new prefix in a staging directory beside it: a hard-linked
//!    copy of the existing prefix (cheap, nothing copied), plus each new
//!    component, downloaded (or taken from the cache), verified while it
//!    streams, and unpacked — several at a time.
//! 3. Merge: `merged` puts every component into one tree (`bin/`, `lib/`,
//!    `include/`, …; each `LICENSE` goes to `share/doc/<component>/`); two
//!    components that ship different files at one path are a conflict.
//!    `split` puts each into `<prefix>/<component>/<output>/`.
//! 4. Record what is installed in `<prefix>/.redist/installed.json` and swap
//!    the staging directory with the prefix in one `renameat2(RENAME_EXCHANGE)`.
//!
//! A failure anywhere leaves the prefix as it was. Installing what is
//! already installed (same sha256) does nothing.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::error::{write_error, Error, Result};
use crate::layout::{Layout, Mode};
use crate::lock::PrefixLock;
use crate::manifest::Selected;
use crate::publish::Staging;
use crate::report::{Report, Reporter};
use crate::source::{Origin, Repository};
use crate::unpack::Tree;
use crate::UnpackOptions;

/// How to install.
pub struct InstallOptions {
    /// The prefix.
    pub prefix: PathBuf,
    /// `merged` (one tree) or `split` (`<prefix>/<component>/<output>`).
    pub layout: Mode,
    /// Layout rules (the built-in table unless given).
    pub rules: crate::layout::Rules,
    /// Keep only matching paths (`bin/ptxas`).
    pub only: Option<globset::GlobSet>,
    /// Components unpacked at once.
    pub jobs: usize,
    /// xz decoder threads per component.
    pub decoder_threads: u32,
    /// Link the new components' ELF files across the whole prefix.
    pub autopatch: Option<crate::autopatch::AutopatchOptions>,
    /// When another install into the prefix is running: wait for it
    /// (`true`) or fail with [`Error::Busy`].
    pub wait: bool,
    /// Flush the new prefix to disk before it replaces the old one.
    pub durable: bool,
}

/// What one component's install did.
#[derive(Debug, Clone, Serialize)]
pub struct ComponentReport {
    /// Component key.
    pub component: String,
    /// Version.
    pub version: String,
    /// Platform used.
    pub platform: String,
    /// Variant, if any.
    pub variant: Option<String>,
    /// Why that variant (`CUDA 13.0.2 (the set's cuda manifest 13.0.2)`).
    pub variant_reason: Option<String>,
    /// The product of its manifest (`cuda`, `cudnn`).
    pub product: String,
    /// Archive sha256.
    pub sha256: String,
    /// `null` when it was already installed.
    pub origin: Option<Origin>,
    /// The unpack report (absent when already installed).
    pub unpack: Option<Report>,
    /// Files (and links) it added to the prefix.
    pub files: usize,
}

/// What an install did.
#[derive(Debug, Clone, Serialize)]
pub struct InstallReport {
    /// The prefix.
    pub prefix: PathBuf,
    /// Merged or split.
    pub layout: Mode,
    /// Per component, in the order asked.
    pub components: Vec<ComponentReport>,
    /// True when everything asked for was already installed.
    pub unchanged: bool,
    /// What made the prefix a toolkit: `targets/<triple>` links (merged),
    /// nvcc.profile files pointed at the other components (split).
    pub toolkit: Vec<String>,
    /// What autopatch did to the new components.
    pub autopatch: Option<crate::autopatch::AutopatchReport>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// `<prefix>/.redist/installed.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    layout: Option<Mode>,
    /// The CUDA version of the toolkit installed here (the `release_label`
    /// of the cuda manifest its components came from): what add-ons'
    /// variants are chosen by.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cuda: Option<String>,
    components: BTreeMap<String, Installed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Installed {
    version: String,
    sha256: String,
    /// The product of its manifest (`cuda`, `cudnn`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    product: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    variant: Option<String>,
    files: Vec<String>,
}

const STATE: &str = ".redist/installed.json";

/// One component's unpack result, by its index in the work list.
type Unpacked = (usize, Result<((Report, Tree), Origin)>);

/// A component unpacked into `tmp/<component>`: its report, where its
/// bytes came from, and the tree the unpacker wrote (what every later
/// phase reads instead of the disk).
struct Component<'s> {
    sel: &'s Selected,
    report: Report,
    origin: Origin,
    tree: Tree,
}

/// Install `selected` from `source` into `opts.prefix`.
pub fn install(
    source: &Repository,
    selected: &[Selected],
    opts: &InstallOptions,
    reporter: &dyn Reporter,
) -> Result<InstallReport> {
    let started = Instant::now();
    let prefix = std::path::absolute(&opts.prefix).map_err(write_error(&opts.prefix))?;
    if let Some(ap) = &opts.autopatch {
        ap.check()?;
    }
    // One install at a time per prefix; what killed runs left is ours to
    // clear once we hold the lock.
    let _lock = PrefixLock::acquire(&prefix, opts.wait, &|m| reporter.note(m))?;
    let mut reclaimed = crate::publish::sweep_leftovers(&prefix);
    if let Some(cache) = &source.cache {
        reclaimed.add(cache.sweep());
    }
    if reclaimed.entries > 0 {
        reporter.note(&format!(
            "removed what killed runs left behind: {} files and directories, {:.1} MiB",
            reclaimed.entries,
            reclaimed.bytes as f64 / (1 << 20) as f64
        ));
    }
    let state = read_state(&prefix)?;
    check_layout(&prefix, &state, opts.layout)?;
    check_cuda(&prefix, &state, source)?;
    let todo: Vec<&Selected> = selected
        .iter()
        .filter(|s| {
            state
                .components
                .get(&s.component)
                .is_none_or(|i| i.sha256 != s.archive.sha256 || opts.only.is_some())
        })
        .collect();
    if todo.is_empty() {
        return Ok(InstallReport {
            prefix,
            layout: opts.layout,
            components: selected.iter().map(|s| already(s, &state)).collect(),
            unchanged: true,
            toolkit: Vec::new(),
            autopatch: None,
            seconds: started.elapsed().as_secs_f64(),
        });
    }

    let staging = Staging::copy_of(&prefix)?;
    let tmp = staging.path().join(".redist/tmp");
    fs::create_dir_all(&tmp).map_err(write_error(&tmp))?;
    let layout = Layout::new(&opts.rules, opts.layout)?;

    let mut unpacked = unpack_all(source, &todo, opts, &layout, &prefix, &tmp, reporter)?;
    if let Some(only) = &opts.only {
        let mut trees: Vec<(&str, &mut Tree)> = unpacked
            .iter_mut()
            .map(|c| (c.sel.component.as_str(), &mut c.tree))
            .collect();
        crate::autopatch::prune(&tmp, &mut trees, only, opts.layout);
        for c in &mut unpacked {
            let tree = &c.tree;
            c.report.elf_files.retain(|f| tree.nodes.contains_key(f));
        }
    }

    let mut state = state;
    if todo.iter().any(|s| s.product == "cuda") {
        if let Some(cuda) = source.cuda() {
            state.cuda = Some(cuda.label);
        }
    }
    let mut reports = merge_all(unpacked, staging.path(), &tmp, &mut state, opts.layout)?;
    let _ = fs::remove_dir_all(&tmp);

    let toolkit = toolkit_layout(staging.path(), selected, &state, &reports, &layout)?;

    let patched = match &opts.autopatch {
        Some(ap) => Some(link_new(
            staging.path(),
            &prefix,
            &state,
            &reports,
            opts.layout,
            ap,
        )?),
        None => None,
    };
    let state_path = staging.path().join(STATE);
    let json = serde_json::to_vec_pretty(&state).map_err(|e| Error::Write {
        path: state_path.clone(),
        source: io::Error::other(e),
    })?;
    // A new file renamed over the old name: the staged record is a hard
    // link to the live prefix's, which must not change before the swap.
    let fresh = state_path.with_extension("json.new");
    fs::write(&fresh, json).map_err(write_error(&fresh))?;
    fs::rename(&fresh, &state_path).map_err(write_error(&state_path))?;
    staging.replace(&prefix, opts.durable)?;

    let components = selected
        .iter()
        .map(|s| {
            reports
                .remove(&s.component)
                .unwrap_or_else(|| already(s, &state))
        })
        .collect();
    Ok(InstallReport {
        prefix,
        layout: opts.layout,
        components,
        unchanged: false,
        toolkit,
        autopatch: patched,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// A prefix keeps the layout it was first installed with.
fn check_layout(prefix: &Path, state: &State, layout: Mode) -> Result<()> {
    if let Some(existing) = state.layout {
        if existing != layout && !state.components.is_empty() {
            return Err(Error::Install {
                what: prefix.display().to_string(),
                message: format!(
                    "the prefix was installed with --layout {}; use the same layout",
                    existing.name()
                ),
            });
        }
    }
    Ok(())
}

/// Download, verify and unpack `todo` into `tmp/<component>`, `jobs`
/// components at a time; the first failure stops the others.
fn unpack_all<'s>(
    source: &Repository,
    todo: &[&'s Selected],
    opts: &InstallOptions,
    layout: &Layout,
    prefix: &Path,
    tmp: &Path,
    reporter: &dyn Reporter,
) -> Result<Vec<Component<'s>>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let results: Mutex<Vec<Unpacked>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..opts.jobs.clamp(1, todo.len()) {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= todo.len() || failed.load(Ordering::SeqCst) {
                    return;
                }
                let sel = todo[i];
                let final_root = match opts.layout {
                    Mode::Merged => prefix.to_owned(),
                    Mode::Split => prefix.join(&sel.component),
                };
                let unpack_opts = UnpackOptions {
                    layout: layout.clone(),
                    decoder_threads: opts.decoder_threads,
                    mtime: None,
                    only: None,
                    final_root: Some(final_root),
                    relocatable_pkgconfig: true,
                    output_roots: None,
                    autopatch: None,
                    toolkit_deps: Vec::new(),
                    // Merged: the `targets/` links satisfy NVIDIA's profile.
                    // Split: rewritten below, once every component is in.
                    keep_nvcc_profile: true,
                    // Published into the staging prefix, which is what
                    // gets flushed.
                    durable: false,
                    limits: crate::Limits::default(),
                };
                let out = tmp.join(&sel.component);
                let r = source.with_archive(sel, |opened| {
                    let _ = fs::remove_dir_all(&out);
                    let progress = reporter.component(sel, opened.origin);
                    let (input, committer) = opened.into_input();
                    let unpacked =
                        crate::unpack_tree(input, &out, &unpack_opts, progress.as_ref())?;
                    committer.commit()?;
                    Ok(unpacked)
                });
                let r = r.map_err(|e| Error::component("install", sel, e));
                if r.is_err() {
                    failed.store(true, Ordering::SeqCst);
                }
                results
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push((i, r));
            });
        }
    });
    let mut results = results.into_inner().unwrap_or_else(|p| p.into_inner());
    results.sort_by_key(|(i, _)| *i);
    let mut unpacked = Vec::new();
    for (i, r) in results {
        let ((report, tree), origin) = r?;
        unpacked.push(Component {
            sel: todo[i],
            report,
            origin,
            tree,
        });
    }
    Ok(unpacked)
}

/// Move each unpacked component into the staged prefix (merged into one
/// tree, or under its own directory), recording its files in `state`.
fn merge_all(
    unpacked: Vec<Component<'_>>,
    staging: &Path,
    tmp: &Path,
    state: &mut State,
    layout: Mode,
) -> Result<BTreeMap<String, ComponentReport>> {
    let mut reports = BTreeMap::new();
    state.layout = Some(layout);
    for Component {
        sel,
        report,
        origin,
        tree,
    } in unpacked
    {
        if let Some(old) = state.components.remove(&sel.component) {
            remove_files(staging, &old.files);
        }
        let from = tmp.join(&sel.component);
        let mut paths: Vec<&String> = tree.nodes.keys().collect();
        paths.sort();
        let files = match layout {
            Mode::Merged => merge(&from, staging, &paths, sel, state)?,
            Mode::Split => {
                let to = staging.join(&sel.component);
                let _ = fs::remove_dir_all(&to);
                fs::rename(&from, &to).map_err(write_error(&to))?;
                paths
                    .iter()
                    .map(|p| format!("{}/{p}", sel.component))
                    .collect()
            }
        };
        let n = files.len();
        state.components.insert(
            sel.component.clone(),
            Installed {
                version: sel.version.clone(),
                sha256: sel.archive.sha256.clone(),
                product: sel.product.clone(),
                variant: sel.variant.clone(),
                files,
            },
        );
        reports.insert(
            sel.component.clone(),
            ComponentReport {
                component: sel.component.clone(),
                version: sel.version.clone(),
                platform: sel.platform.clone(),
                variant: sel.variant.clone(),
                variant_reason: sel.variant_reason.clone(),
                product: sel.product.clone(),
                sha256: sel.archive.sha256.clone(),
                origin: Some(origin),
                unpack: Some(report),
                files: n,
            },
        );
    }
    Ok(reports)
}

/// A toolkit that compiles: the `.run` layout's `targets/<triple>` tree
/// (merged), or nvcc.profile pointed at the other components (split).
fn toolkit_layout(
    staging: &Path,
    selected: &[Selected],
    state: &State,
    reports: &BTreeMap<String, ComponentReport>,
    layout: &Layout,
) -> Result<Vec<String>> {
    Ok(match layout.mode() {
        Mode::Merged => {
            let platform = selected.first().map_or("", |s| s.platform.as_str());
            match crate::toolkit::target_triple(platform) {
                Some(triple) => crate::toolkit::link_targets(staging, triple)?,
                None => Vec::new(),
            }
        }
        Mode::Split => {
            let fresh: Vec<&str> = reports.keys().map(String::as_str).collect();
            split_profiles(staging, state, &fresh, layout)?
        }
    })
}

/// Link the new components against the whole prefix: in a merged tree, a
/// program finds the libraries of other components.
fn link_new(
    staging: &Path,
    prefix: &Path,
    state: &State,
    reports: &BTreeMap<String, ComponentReport>,
    layout: Mode,
    ap: &crate::AutopatchOptions,
) -> Result<crate::AutopatchReport> {
    let mut candidates = Vec::new();
    for r in reports.values() {
        let Some(u) = &r.unpack else { continue };
        for elf in &u.elf_files {
            candidates.push(match layout {
                Mode::Merged => crate::autopatch::Candidate {
                    path: elf.clone(),
                    output_dir: String::new(),
                },
                Mode::Split => crate::autopatch::Candidate {
                    path: format!("{}/{elf}", r.component),
                    output_dir: format!("{}/{}", r.component, elf.split('/').next().unwrap_or("")),
                },
            });
        }
    }
    let files =
        crate::autopatch::TreeFile::of(staging, state.components.values().flat_map(|i| &i.files));
    // A library `dlopen`ing another component's (cuDNN and cuBLASLt) needs
    // that directory in its RUNPATH.
    let ap = crate::AutopatchOptions {
        dlopen_names: true,
        ..ap.clone()
    };
    crate::autopatch::run(
        staging,
        &crate::Placement::root(prefix),
        &candidates,
        &files,
        &ap,
    )
}

/// Where a split prefix keeps each `nvcc.profile` as shipped, so that it
/// can be pointed at the components of every later install.
const SHIPPED: &str = ".redist/shipped";

/// In a split prefix (`<component>/<output>/…`), point every component's
/// `nvcc.profile` at the directories of all components, relative to the
/// profile (`$(_HERE_)/../../../cuda_cudart/include/include`).
fn split_profiles(
    staging: &Path,
    state: &State,
    fresh: &[&str],
    layout: &Layout,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    for (component, installed) in &state.components {
        for file in installed
            .files
            .iter()
            .filter(|f| f.ends_with("bin/nvcc.profile"))
        {
            let staged = staging.join(file);
            let shipped = staging.join(SHIPPED).join(file);
            if fresh.contains(&component.as_str()) || !shipped.exists() {
                if let Some(dir) = shipped.parent() {
                    fs::create_dir_all(dir).map_err(write_error(dir))?;
                }
                let _ = fs::remove_file(&shipped);
                fs::copy(&staged, &shipped).map_err(write_error(&shipped))?;
            }
            let mut dirs =
                crate::toolkit::TreeDirs::probe(&staging.join(component), layout.output_names());
            for other in state.components.keys().filter(|c| *c != component) {
                dirs.extend(crate::toolkit::TreeDirs::probe(
                    &staging.join(other),
                    layout.output_names(),
                ));
            }
            let here = staged.parent().unwrap_or(staging).to_owned();
            let profile_dirs = crate::toolkit::ProfileDirs::new(&dirs, |p| {
                crate::toolkit::here_relative(&here, p)
            });
            match crate::toolkit::fix_profile(&shipped, &staged, &staged, &profile_dirs)? {
                crate::toolkit::ProfileFix::LeftAlone(why) => {
                    done.push(format!("{file} left as shipped: {why}"))
                }
                _ => done.push(format!("{file} points at the prefix's components")),
            }
        }
    }
    Ok(done)
}

fn already(s: &Selected, state: &State) -> ComponentReport {
    ComponentReport {
        component: s.component.clone(),
        version: s.version.clone(),
        platform: s.platform.clone(),
        variant: s.variant.clone(),
        variant_reason: s.variant_reason.clone(),
        product: s.product.clone(),
        sha256: s.archive.sha256.clone(),
        origin: None,
        unpack: None,
        files: state
            .components
            .get(&s.component)
            .map_or(0, |i| i.files.len()),
    }
}

/// A set of another CUDA major than the prefix's toolkit does not go in.
fn check_cuda(prefix: &Path, state: &State, source: &Repository) -> Result<()> {
    let (Some(have), Some(set)) = (state.cuda.as_deref(), source.cuda()) else {
        return Ok(());
    };
    match crate::CudaVersion::parse(have, "") {
        Some(h) if h.major != set.major => Err(Error::Install {
            what: prefix.display().to_string(),
            message: format!(
                "it holds CUDA {have}, and this set is CUDA {}; install CUDA {} into another prefix",
                set.label, set.label
            ),
        }),
        _ => Ok(()),
    }
}

/// The CUDA version `prefix` records (from the cuda manifest its toolkit
/// was installed from), if it holds one.
pub fn installed_cuda(prefix: &Path) -> Result<Option<crate::CudaVersion>> {
    if !prefix.join(STATE).exists() {
        return Ok(None);
    }
    let state = read_state(prefix)?;
    Ok(state
        .cuda
        .and_then(|c| crate::CudaVersion::parse(&c, &format!("installed in {}", prefix.display()))))
}

fn read_state(prefix: &Path) -> Result<State> {
    let path = prefix.join(STATE);
    match fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|cause| Error::InstallRecord {
            path: path.clone(),
            cause,
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if prefix.is_dir()
                && fs::read_dir(prefix)
                    .map_err(write_error(prefix))?
                    .next()
                    .is_some()
            {
                return Err(Error::Install {
                    what: prefix.display().to_string(),
                    message: "the prefix exists, is not empty and was not made by redist install"
                        .into(),
                });
            }
            Ok(State::default())
        }
        Err(e) => Err(Error::Write { path, source: e }),
    }
}

fn remove_files(root: &Path, files: &[String]) {
    for f in files {
        let _ = fs::remove_file(root.join(f));
    }
}

/// Move the `files` of `from` (as its tree lists them) into `to`; a
/// component's top-level `LICENSE` goes to `share/doc/<component>/`.
/// Returns the paths added.
fn merge(
    from: &Path,
    to: &Path,
    files: &[&String],
    sel: &Selected,
    state: &State,
) -> Result<Vec<String>> {
    let mut added = Vec::new();
    for &rel in files {
        let dest_rel = match rel.as_str() {
            "LICENSE" | "EULA.txt" | "LICENSE.txt" => format!("share/doc/{}/{rel}", sel.component),
            _ => rel.clone(),
        };
        let src = from.join(rel);
        let dest = to.join(&dest_rel);
        if fs::symlink_metadata(&dest).is_ok() {
            if same_content(&src, &dest) {
                continue;
            }
            let owner = state
                .components
                .iter()
                .find(|(_, i)| i.files.contains(&dest_rel))
                .map_or_else(|| "another component".to_owned(), |(k, _)| k.clone());
            return Err(Error::Install {
                what: format!("{} {}", sel.component, sel.version),
                message: format!("{dest_rel} is also installed by {owner}, with different content"),
            });
        }
        if let Some(parent) = Path::new(&dest_rel).parent() {
            crate::scratch::create_dirs_below(to, parent).map_err(write_error(&to.join(parent)))?;
        }
        fs::rename(&src, &dest).map_err(write_error(&dest))?;
        added.push(dest_rel);
    }
    Ok(added)
}

fn same_content(a: &Path, b: &Path) -> bool {
    match (fs::read_link(a), fs::read_link(b)) {
        (Ok(x), Ok(y)) => x == y,
        (Err(_), Err(_)) => match (fs::metadata(a), fs::metadata(b)) {
            (Ok(ma), Ok(mb)) if ma.len() == mb.len() => fs::read(a).ok() == fs::read(b).ok(),
            _ => false,
        },
        _ => false,
    }
}
