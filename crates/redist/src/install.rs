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
use crate::store::{KeyInputs, LinkMode, Linked, Lookup, Store};
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
    /// Link components from the store of unpacked trees (under the
    /// archive cache) when it has them, and keep what this install
    /// unpacks there.
    pub store: bool,
    /// How files get from the store into the prefix.
    pub link_mode: LinkMode,
    /// Memory budget of all decoders together (split between the
    /// components unpacked at once); `None`: each decoder's default.
    pub memory_limit: Option<u64>,
}

/// What the store of unpacked trees did for one component.
#[derive(Debug, Clone, Serialize)]
pub struct StoreUse {
    /// The entry's key.
    pub key: String,
    /// What happened.
    pub action: StoreAction,
    /// How the files were linked (`linked` only).
    pub linked: Option<Linked>,
    /// Seconds spent linking or storing.
    pub seconds: f64,
}

/// What the store did for one component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StoreAction {
    /// Linked from the store: nothing decoded.
    Linked,
    /// Unpacked, and its finished tree kept in the store.
    Stored,
    /// Unpacked; another install stored the same tree first.
    AlreadyStored,
    /// Unpacked, not stored (`--only` kept part of it; or storing failed,
    /// said in a note).
    NotStored,
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
    /// What the store of unpacked trees did (absent without a store, for
    /// a tree that depends on its destination, and when already installed).
    pub store: Option<StoreUse>,
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
    /// The key of its entry in the store of unpacked trees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    store: Option<String>,
    files: Vec<String>,
}

const STATE: &str = ".redist/installed.json";

/// One component's unpack result, by its index in the work list.
type Unpacked = (usize, Result<Unpack>);

/// What unpacking (or linking from the store) one component gave.
struct Unpack {
    report: Report,
    origin: Origin,
    tree: Tree,
    /// Its store key's inputs, when the store is used for it.
    inputs: Option<KeyInputs>,
    /// Set when it was linked from the store.
    store: Option<StoreUse>,
}

/// A component unpacked into `tmp/<component>`: its report, where its
/// bytes came from, and the tree the unpacker wrote (what every later
/// phase reads instead of the disk).
struct Component<'s> {
    sel: &'s Selected,
    unpack: Unpack,
}

/// A component unpacked from its archive that goes into the store once
/// the prefix is finished.
struct ToStore {
    component: String,
    version: String,
    inputs: KeyInputs,
    report: Report,
    nodes: BTreeMap<String, crate::unpack::Node>,
}

/// The store an install uses, with what its keys are made of.
struct StoreCtx {
    store: Store,
    rules: String,
    patch: String,
    /// Set once the user was told that files were copied.
    told_copies: AtomicBool,
}

impl StoreCtx {
    fn inputs(&self, sel: &Selected, layout: Mode) -> KeyInputs {
        KeyInputs {
            format: crate::store::FORMAT,
            archive_sha256: sel.archive.sha256.clone(),
            layout,
            rules: self.rules.clone(),
            patch: self.patch.clone(),
        }
    }
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
    // Installs share the store; `prune` waits for them to end.
    let store = match (&source.cache, opts.store) {
        (Some(cache), true) => {
            // The key names the options the trees are linked with.
            let linking = opts.autopatch.as_ref().map(linking_options);
            crate::store::patch_inputs(linking.as_ref()).and_then(|patch| {
                let store = Store::new(cache.dir());
                match store.lock(false) {
                    Ok(lock) => Some((
                        StoreCtx {
                            store,
                            rules: crate::store::rules_digest(&opts.rules),
                            patch,
                            told_copies: AtomicBool::new(false),
                        },
                        lock,
                    )),
                    Err(e) => {
                        reporter.note(&format!(
                            "not using the store in {}: {e}",
                            store.dir().display()
                        ));
                        None
                    }
                }
            })
        }
        _ => None,
    };
    let (store, _store_lock) = match store {
        Some((s, l)) => (Some(s), Some(l)),
        None => (None, None),
    };
    if let Some(ctx) = &store {
        reclaimed.add(ctx.store.sweep());
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

    let mut unpacked = unpack_all(
        source,
        &todo,
        opts,
        &layout,
        &prefix,
        &tmp,
        store.as_ref(),
        reporter,
    )?;
    // What was unpacked (not linked) goes into the store once the prefix
    // is finished: the whole tree, so not with `--only`.
    let mut to_store: Vec<ToStore> = Vec::new();
    let mut partial: Vec<(String, String)> = Vec::new();
    for c in &unpacked {
        if let (Some(inputs), None) = (&c.unpack.inputs, &c.unpack.store) {
            if opts.only.is_some() {
                partial.push((c.sel.component.clone(), inputs.key()));
            } else {
                to_store.push(ToStore {
                    component: c.sel.component.clone(),
                    version: c.sel.version.clone(),
                    inputs: inputs.clone(),
                    report: c.unpack.report.clone(),
                    nodes: c
                        .unpack
                        .tree
                        .nodes
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                });
            }
        }
    }
    if let Some(only) = &opts.only {
        let mut trees: Vec<(&str, &mut Tree)> = unpacked
            .iter_mut()
            .map(|c| (c.sel.component.as_str(), &mut c.unpack.tree))
            .collect();
        crate::autopatch::prune(&tmp, &mut trees, only, opts.layout);
        for c in &mut unpacked {
            let tree = &c.unpack.tree;
            c.unpack
                .report
                .elf_files
                .retain(|f| tree.nodes.contains_key(f));
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
    for (component, key) in partial {
        if let Some(r) = reports.get_mut(&component) {
            r.store = Some(StoreUse {
                key,
                action: StoreAction::NotStored,
                linked: None,
                seconds: 0.0,
            });
        }
    }
    if let Some(ctx) = &store {
        keep_in_store(
            ctx,
            staging.path(),
            to_store,
            &mut state,
            &mut reports,
            opts.layout,
            reporter,
        );
        if state.components.values().any(|i| i.store.is_some()) {
            if let Err(e) = ctx.store.register(&prefix) {
                reporter.note(&format!(
                    "could not record {} in the store ({e}): `redist cache prune` may remove what it links",
                    prefix.display()
                ));
            }
        }
    }
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

/// Link from the store, or download, verify and unpack, `todo` into
/// `tmp/<component>`, `jobs` components at a time; the first failure stops
/// the others.
#[allow(clippy::too_many_arguments)]
fn unpack_all<'s>(
    source: &Repository,
    todo: &[&'s Selected],
    opts: &InstallOptions,
    layout: &Layout,
    prefix: &Path,
    tmp: &Path,
    store: Option<&StoreCtx>,
    reporter: &dyn Reporter,
) -> Result<Vec<Component<'s>>> {
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let jobs = opts.jobs.clamp(1, todo.len().max(1));
    let limits = crate::Limits {
        memory: opts.memory_limit.map(|m| m / jobs as u64),
        ..crate::Limits::default()
    };
    let results: Mutex<Vec<Unpacked>> = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..jobs {
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
                    limits,
                };
                let out = tmp.join(&sel.component);
                let inputs = store.map(|ctx| ctx.inputs(sel, opts.layout));
                if let (Some(ctx), Some(inputs)) = (store, &inputs) {
                    if let Some(linked) = from_store(ctx, inputs, sel, &out, opts, reporter) {
                        results
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push((i, Ok(linked)));
                        continue;
                    }
                }
                let r = source.with_archive(sel, |opened| {
                    let _ = fs::remove_dir_all(&out);
                    let progress = reporter.component(sel, opened.origin);
                    let (input, committer) = opened.into_input();
                    let unpacked =
                        crate::unpack_tree(input, &out, &unpack_opts, progress.as_ref())?;
                    committer.commit()?;
                    Ok(unpacked)
                });
                let r = r
                    .map(|((report, tree), origin)| Unpack {
                        report,
                        origin,
                        tree,
                        inputs: inputs.clone(),
                        store: None,
                    })
                    .map_err(|e| Error::component("install", sel, e));
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
        unpacked.push(Component {
            sel: todo[i],
            unpack: r?,
        });
    }
    Ok(unpacked)
}

/// `sel`'s tree linked from the store into `out`, when the store holds it
/// intact; `None` (said in a note when something was wrong) to unpack the
/// archive instead.
fn from_store(
    ctx: &StoreCtx,
    inputs: &KeyInputs,
    sel: &Selected,
    out: &Path,
    opts: &InstallOptions,
    reporter: &dyn Reporter,
) -> Option<Unpack> {
    let started = Instant::now();
    let key = inputs.key();
    let entry = match ctx.store.lookup(&key) {
        Lookup::Hit(entry) => entry,
        Lookup::Miss => return None,
        Lookup::Damaged(why) => {
            reporter.note(&format!(
                "{}: its entry in the store was damaged ({why}); removed it, unpacking the archive again",
                sel.component
            ));
            return None;
        }
    };
    let progress = reporter.component(sel, Origin::Store);
    progress.begin(&sel.component, None);
    progress.stage("link");
    let _ = fs::remove_dir_all(out);
    let linked = ctx.store.link_into(&entry, out, opts.link_mode);
    progress.finish();
    let linked = match linked {
        Ok(l) => l,
        Err(e) => {
            let _ = fs::remove_dir_all(out);
            reporter.note(&format!(
                "{}: could not link from the store ({e}); unpacking the archive",
                sel.component
            ));
            return None;
        }
    };
    if let Some(why) = &linked.fell_back {
        if !ctx.told_copies.swap(true, Ordering::SeqCst) {
            reporter.note(&format!(
                "copying files from the store instead of {} them: {why} ({}); \
                 --link-mode copy does the same without this note",
                match opts.link_mode {
                    LinkMode::Clone => "cloning",
                    _ => "hard-linking",
                },
                ctx.store.dir().display()
            ));
        }
    }
    let elapsed = started.elapsed();
    let mut report = entry.report();
    report.out_dir = match opts.layout {
        Mode::Merged => opts.prefix.clone(),
        Mode::Split => opts.prefix.join(&sel.component),
    };
    report.bytes_in = 0;
    report.bytes_decoded = 0;
    report.bytes_written = 0;
    report.decoder_threads = 0;
    report.reclaimed = crate::Reclaimed::default();
    report.autopatch = None;
    let zero = crate::Stage::new(std::time::Duration::ZERO, 0);
    report.stages = crate::Stages {
        decode: zero.clone(),
        write: zero.clone(),
        fixups: zero.clone(),
        autopatch: zero,
        total: crate::Stage::new(elapsed, 0),
    };
    Some(Unpack {
        report,
        origin: Origin::Store,
        tree: entry.tree(),
        inputs: Some(inputs.clone()),
        store: Some(StoreUse {
            key,
            action: StoreAction::Linked,
            linked: Some(linked),
            seconds: elapsed.as_secs_f64(),
        }),
    })
}

/// Keep the finished trees of what this install unpacked in the store,
/// taking each file from the staged prefix (hard links, so nothing is
/// copied on one filesystem). A failure is a note: the install goes on.
fn keep_in_store(
    ctx: &StoreCtx,
    staging: &Path,
    to_store: Vec<ToStore>,
    state: &mut State,
    reports: &mut BTreeMap<String, ComponentReport>,
    layout: Mode,
    reporter: &dyn Reporter,
) {
    for t in to_store {
        let started = Instant::now();
        let component = t.component.clone();
        let source = |rel: &str| -> PathBuf {
            match layout {
                Mode::Merged => staging.join(merged_path(rel, &component)),
                // nvcc.profile is rewritten for this prefix's components:
                // the store keeps it as shipped.
                Mode::Split if rel.ends_with("bin/nvcc.profile") => {
                    let shipped = staging.join(SHIPPED).join(&component).join(rel);
                    if shipped.exists() {
                        shipped
                    } else {
                        staging.join(&component).join(rel)
                    }
                }
                Mode::Split => staging.join(&component).join(rel),
            }
        };
        let stored = ctx.store.add(
            &t.inputs,
            &t.component,
            &t.version,
            &t.report,
            &t.nodes,
            &source,
        );
        let action = match stored {
            Ok(true) => StoreAction::Stored,
            Ok(false) => StoreAction::AlreadyStored,
            Err(e) => {
                reporter.note(&format!(
                    "{}: not kept in the store {}: {e}",
                    t.component,
                    ctx.store.dir().display()
                ));
                StoreAction::NotStored
            }
        };
        let key = t.inputs.key();
        if action != StoreAction::NotStored {
            if let Some(i) = state.components.get_mut(&t.component) {
                i.store = Some(key.clone());
            }
        }
        if let Some(r) = reports.get_mut(&t.component) {
            r.store = Some(StoreUse {
                key,
                action,
                linked: None,
                seconds: started.elapsed().as_secs_f64(),
            });
        }
    }
}

/// Where a component's path goes in a merged prefix: its top-level
/// licence goes to `share/doc/<component>/`.
fn merged_path(rel: &str, component: &str) -> String {
    match rel {
        "LICENSE" | "EULA.txt" | "LICENSE.txt" => format!("share/doc/{component}/{rel}"),
        _ => rel.to_owned(),
    }
}

/// The store keys `prefix`'s components link from (what `redist cache
/// prune` keeps); empty when it is gone or not an install.
/// What an install links its prefix with: the caller's options, with
/// `dlopen` names resolved (a library `dlopen`ing another component's, as
/// cuDNN does cuBLASLt, needs that directory in its RUNPATH) and files
/// linked from the store patched through private copies.
fn linking_options(ap: &crate::AutopatchOptions) -> crate::AutopatchOptions {
    crate::AutopatchOptions {
        dlopen_names: true,
        private_copies: true,
        ..ap.clone()
    }
}

pub(crate) fn store_keys(prefix: &Path) -> Vec<String> {
    let Ok(data) = fs::read(prefix.join(STATE)) else {
        return Vec::new();
    };
    let Ok(state) = serde_json::from_slice::<State>(&data) else {
        return Vec::new();
    };
    state
        .components
        .into_values()
        .filter_map(|i| i.store)
        .collect()
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
    for Component { sel, unpack } in unpacked {
        let Unpack {
            report,
            origin,
            tree,
            store,
            ..
        } = unpack;
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
                store: store.as_ref().map(|s| s.key.clone()),
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
                store,
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
    let ap = linking_options(ap);
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
        store: None,
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
                    message: "the prefix exists, is not empty and was not made by redist install; \
                              choose a new or empty --prefix (redist does not install over files it did not write)"
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
        let dest_rel = merged_path(rel, &sel.component);
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
                message: format!(
                    "{dest_rel} is also installed by {owner}, with different content; \
                     install them with --layout split, or into separate prefixes"
                ),
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
    let same_files = || match (fs::metadata(a), fs::metadata(b)) {
        (Ok(ma), Ok(mb)) if ma.is_file() && mb.is_file() && ma.len() == mb.len() => {
            fs::read(a).ok() == fs::read(b).ok()
        }
        _ => false,
    };
    match (fs::read_link(a), fs::read_link(b)) {
        (Ok(x), Ok(y)) => x == y || (x.is_absolute() && y.is_absolute() && same_files()),
        (Err(_), Err(_)) => same_files(),
        _ => false,
    }
}
