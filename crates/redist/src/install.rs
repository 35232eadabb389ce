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

use crate::error::{Error, Result};
use crate::layout::{Layout, Mode};
use crate::manifest::Selected;
use crate::report::{Report, Reporter};
use crate::scratch::Scratch;
use crate::source::{Origin, Repository};
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
    pub autopatch: Option<crate::autopatch::Options>,
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
    pub autopatch: Option<crate::autopatch::Report>,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// `<prefix>/.redist/installed.json`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct State {
    layout: Option<Mode>,
    components: BTreeMap<String, Installed>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Installed {
    version: String,
    sha256: String,
    files: Vec<String>,
}

const STATE: &str = ".redist/installed.json";

fn io_err(path: &Path) -> impl Fn(io::Error) -> Error + '_ {
    move |source| Error::Write {
        path: path.to_owned(),
        source,
    }
}

/// One component's unpack result, by its index in the work list.
type Unpacked = (usize, Result<(Report, Origin)>);

/// Install `selected` from `source` into `opts.prefix`.
pub fn install(
    source: &Repository,
    selected: &[Selected],
    opts: &InstallOptions,
    reporter: &dyn Reporter,
) -> Result<InstallReport> {
    let started = Instant::now();
    let prefix = if opts.prefix.is_absolute() {
        opts.prefix.clone()
    } else {
        std::env::current_dir()
            .map_err(io_err(&opts.prefix))?
            .join(&opts.prefix)
    };
    let state = read_state(&prefix)?;
    if let Some(existing) = state.layout {
        if existing != opts.layout && !state.components.is_empty() {
            return Err(Error::Install {
                what: prefix.display().to_string(),
                message: format!(
                    "the prefix was installed with --layout {}; use the same layout",
                    mode_name(existing)
                ),
            });
        }
    }
    let todo: Vec<&Selected> = selected
        .iter()
        .filter(|s| {
            state
                .components
                .get(&s.component)
                .is_none_or(|i| i.sha256 != s.archive.sha256 || opts.only.is_some())
        })
        .collect();
    let mut reports: BTreeMap<String, ComponentReport> = BTreeMap::new();
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

    let staging = Staging::create(&prefix)?;
    let tmp = staging.path.join(".redist/tmp");
    fs::create_dir_all(&tmp).map_err(io_err(&tmp))?;
    let layout = Layout::new(&opts.rules, opts.layout, "rules")?;

    // Download, verify and unpack, `jobs` components at a time.
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
                    Mode::Merged => prefix.clone(),
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
                };
                let out = tmp.join(&sel.component);
                let r = source.with_archive(sel, |opened| {
                    let _ = fs::remove_dir_all(&out);
                    let progress = reporter.component(sel, opened.origin);
                    let (input, committer) = opened.into_input();
                    let report = crate::unpack(input, &out, &unpack_opts, progress.as_ref())?;
                    committer.commit()?;
                    Ok(report)
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
        let (report, origin) = r?;
        unpacked.push((todo[i], report, origin));
    }
    if let Some(only) = &opts.only {
        let keys: Vec<&str> = unpacked
            .iter()
            .map(|(s, _, _)| s.component.as_str())
            .collect();
        prune(&tmp, &keys, only, opts.layout);
        for (sel, report, _) in &mut unpacked {
            let dir = tmp.join(&sel.component);
            report.elf_files.retain(|f| dir.join(f).exists());
        }
    }

    // Merge into the staged prefix.
    let mut state = state;
    state.layout = Some(opts.layout);
    for (sel, report, origin) in unpacked {
        if let Some(old) = state.components.remove(&sel.component) {
            remove_files(&staging.path, &old.files);
        }
        let from = tmp.join(&sel.component);
        let files = match opts.layout {
            Mode::Merged => merge(&from, &staging.path, sel, &state)?,
            Mode::Split => {
                let to = staging.path.join(&sel.component);
                let _ = fs::remove_dir_all(&to);
                fs::rename(&from, &to).map_err(io_err(&to))?;
                let mut files = Vec::new();
                list_files(&to, &staging.path, &mut files);
                files
            }
        };
        let n = files.len();
        state.components.insert(
            sel.component.clone(),
            Installed {
                version: sel.version.clone(),
                sha256: sel.archive.sha256.clone(),
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
                sha256: sel.archive.sha256.clone(),
                origin: Some(origin),
                unpack: Some(report),
                files: n,
            },
        );
    }
    let _ = fs::remove_dir_all(&tmp);

    // A toolkit that compiles: the `.run` layout's `targets/<triple>` tree
    // (merged), or nvcc.profile pointed at the other components (split).
    let toolkit = match opts.layout {
        Mode::Merged => {
            let platform = selected.first().map_or("", |s| s.platform.as_str());
            match crate::toolkit::target_triple(platform) {
                Some(triple) => crate::toolkit::link_targets(&staging.path, triple)?,
                None => Vec::new(),
            }
        }
        Mode::Split => {
            let fresh: Vec<&str> = reports.keys().map(String::as_str).collect();
            split_profiles(&staging.path, &state, &fresh, &layout)?
        }
    };

    // Link the new components against the whole prefix: in a merged tree,
    // a program finds libraries of other components.
    let patched = match &opts.autopatch {
        Some(ap) => {
            let mut candidates = Vec::new();
            for r in reports.values() {
                let Some(u) = &r.unpack else { continue };
                for elf in &u.elf_files {
                    candidates.push(match opts.layout {
                        Mode::Merged => crate::autopatch::Candidate {
                            path: elf.clone(),
                            output_dir: String::new(),
                        },
                        Mode::Split => crate::autopatch::Candidate {
                            path: format!("{}/{elf}", r.component),
                            output_dir: format!(
                                "{}/{}",
                                r.component,
                                elf.split('/').next().unwrap_or("")
                            ),
                        },
                    });
                }
            }
            let files = tree_files(&staging.path);
            Some(crate::autopatch::run(
                &staging.path,
                &crate::Placement::root(&prefix),
                &candidates,
                &files,
                ap,
            )?)
        }
        None => None,
    };
    let state_path = staging.path.join(STATE);
    let json = serde_json::to_vec_pretty(&state).map_err(|e| Error::Write {
        path: state_path.clone(),
        source: io::Error::other(e),
    })?;
    fs::write(&state_path, json).map_err(io_err(&state_path))?;
    staging.publish(&prefix)?;

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
                    fs::create_dir_all(dir).map_err(io_err(dir))?;
                }
                let _ = fs::remove_file(&shipped);
                fs::copy(&staged, &shipped).map_err(io_err(&shipped))?;
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

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Merged => "merged",
        Mode::Split => "split",
    }
}

fn already(s: &Selected, state: &State) -> ComponentReport {
    ComponentReport {
        component: s.component.clone(),
        version: s.version.clone(),
        platform: s.platform.clone(),
        variant: s.variant.clone(),
        sha256: s.archive.sha256.clone(),
        origin: None,
        unpack: None,
        files: state
            .components
            .get(&s.component)
            .map_or(0, |i| i.files.len()),
    }
}

fn read_state(prefix: &Path) -> Result<State> {
    let path = prefix.join(STATE);
    match fs::read(&path) {
        Ok(data) => serde_json::from_slice(&data).map_err(|e| Error::Install {
            what: path.display().to_string(),
            message: format!("unreadable install record: {e}"),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if prefix.is_dir()
                && fs::read_dir(prefix)
                    .map_err(io_err(prefix))?
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

/// Files (and symlinks) under `dir`, relative to `root`, sorted.
fn list_files(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let mut entries: Vec<_> = fs::read_dir(dir).into_iter().flatten().flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let p = e.path();
        match e.file_type() {
            Ok(t) if t.is_dir() => list_files(&p, root, out),
            Ok(_) => out.push(
                p.strip_prefix(root)
                    .unwrap_or(&p)
                    .to_string_lossy()
                    .into_owned(),
            ),
            Err(_) => {}
        }
    }
}

/// `--only`: keep the paths matching `only` and everything they need —
/// symlink targets, and the libraries (DT_NEEDED, `.note.dlopen`) other
/// kept files load, found by name in any of the components — and remove
/// the rest from the unpacked trees in `tmp/<component>/`.
fn prune(tmp: &Path, components: &[&str], only: &globset::GlobSet, layout: Mode) {
    use std::collections::{HashMap, HashSet};
    let mut all: Vec<(String, String)> = Vec::new();
    for c in components {
        let mut files = Vec::new();
        list_files(&tmp.join(c), &tmp.join(c), &mut files);
        all.extend(files.into_iter().map(|f| (c.to_string(), f)));
    }
    // Globs speak of paths inside an output (`bin/ptxas`), whatever the layout.
    let inner = |rel: &str| -> String {
        match layout {
            Mode::Merged => rel.to_owned(),
            Mode::Split => rel.split_once('/').map_or(rel, |(_, r)| r).to_owned(),
        }
    };
    let mut by_name: HashMap<String, Vec<(String, String)>> = HashMap::new();
    for (c, f) in &all {
        if !(f.starts_with("stubs/") || f.contains("/stubs/")) {
            let name = f.rsplit('/').next().unwrap_or(f).to_owned();
            by_name
                .entry(name)
                .or_default()
                .push((c.clone(), f.clone()));
        }
    }
    let mut keep: HashSet<(String, String)> = all
        .iter()
        .filter(|(_, f)| only.is_match(inner(f)))
        .cloned()
        .collect();
    let mut queue: Vec<(String, String)> = keep.iter().cloned().collect();
    while let Some((c, f)) = queue.pop() {
        let root = tmp.join(&c);
        let abs = root.join(&f);
        let mut found: Vec<(String, String)> = Vec::new();
        if fs::symlink_metadata(&abs).is_ok_and(|m| m.file_type().is_symlink()) {
            if let (Ok(t), Ok(r)) = (fs::canonicalize(&abs), fs::canonicalize(&root)) {
                if let Ok(rel) = t.strip_prefix(&r) {
                    found.push((c.clone(), rel.to_string_lossy().into_owned()));
                }
            }
        } else if let Ok(info) = elfpatch::read(&abs) {
            for name in info.needed.iter().chain(info.dlopen.iter().flatten()) {
                found.extend(by_name.get(name).into_iter().flatten().cloned());
            }
        }
        for f in found {
            if keep.insert(f.clone()) {
                queue.push(f);
            }
        }
    }
    for (c, f) in &all {
        if !keep.contains(&(c.clone(), f.clone())) {
            let _ = fs::remove_file(tmp.join(c).join(f));
        }
    }
}

/// Every file and symlink of the staged prefix, symlinks with the file
/// they resolve to, for autopatch's library index.
fn tree_files(root: &Path) -> Vec<crate::autopatch::TreeFile> {
    let mut files = Vec::new();
    list_files(root, root, &mut files);
    let canonical_root = fs::canonicalize(root).unwrap_or_else(|_| root.to_owned());
    files
        .into_iter()
        .filter(|f| !f.starts_with(".redist/"))
        .map(|path| {
            let abs = root.join(&path);
            let target = fs::symlink_metadata(&abs)
                .ok()
                .filter(|m| m.file_type().is_symlink())
                .and_then(|_| {
                    let t = fs::canonicalize(&abs).ok()?;
                    Some(
                        t.strip_prefix(&canonical_root)
                            .ok()?
                            .to_string_lossy()
                            .into_owned(),
                    )
                });
            crate::autopatch::TreeFile { path, target }
        })
        .collect()
}

fn remove_files(root: &Path, files: &[String]) {
    for f in files {
        let _ = fs::remove_file(root.join(f));
    }
}

/// Move `from`'s files into `to`; a component's top-level `LICENSE` goes
/// to `share/doc/<component>/`. Returns the paths added.
fn merge(from: &Path, to: &Path, sel: &Selected, state: &State) -> Result<Vec<String>> {
    let mut files = Vec::new();
    list_files(from, from, &mut files);
    let mut added = Vec::new();
    for rel in files {
        let dest_rel = match rel.as_str() {
            "LICENSE" | "EULA.txt" | "LICENSE.txt" => format!("share/doc/{}/{rel}", sel.component),
            _ => rel.clone(),
        };
        let src = from.join(&rel);
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
            crate::scratch::create_dirs_below(to, parent).map_err(io_err(&to.join(parent)))?;
        }
        fs::rename(&src, &dest).map_err(io_err(&dest))?;
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

/// The new prefix, built beside the old one; removed unless published
/// (also by [`crate::scratch::remove_all`] when the process is interrupted).
struct Staging {
    path: PathBuf,
    scratch: Scratch,
}

impl Staging {
    fn create(prefix: &Path) -> Result<Staging> {
        let parent = prefix.parent().unwrap_or(Path::new("/"));
        fs::create_dir_all(parent).map_err(io_err(parent))?;
        let name = prefix
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let path = parent.join(format!(".{name}.redist-install-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        let scratch = Scratch::new(path.clone());
        if prefix.is_dir() {
            link_tree(prefix, &path)?;
        } else {
            fs::create_dir(&path).map_err(io_err(&path))?;
        }
        Ok(Staging { path, scratch })
    }

    /// Swap the staging directory with the prefix in one step.
    fn publish(self, prefix: &Path) -> Result<()> {
        if prefix.exists() {
            exchange(&self.path, prefix).map_err(io_err(prefix))?;
            // The scratch path now holds the old prefix; dropping removes it.
        } else {
            fs::rename(&self.path, prefix).map_err(io_err(prefix))?;
            self.scratch.keep();
        }
        Ok(())
    }
}

/// A copy of `from` at `to` made of hard links (and recreated symlinks).
fn link_tree(from: &Path, to: &Path) -> Result<()> {
    fs::create_dir(to).map_err(io_err(to))?;
    for e in fs::read_dir(from).map_err(io_err(from))? {
        let e = e.map_err(io_err(from))?;
        let (src, dst) = (e.path(), to.join(e.file_name()));
        let t = e.file_type().map_err(io_err(&src))?;
        if t.is_dir() {
            link_tree(&src, &dst)?;
        } else if t.is_symlink() {
            let target = fs::read_link(&src).map_err(io_err(&src))?;
            std::os::unix::fs::symlink(target, &dst).map_err(io_err(&dst))?;
        } else {
            fs::hard_link(&src, &dst).map_err(io_err(&dst))?;
        }
    }
    Ok(())
}

/// `renameat2(a, b, RENAME_EXCHANGE)`: both names swap atomically.
fn exchange(a: &Path, b: &Path) -> io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let ca = CString::new(a.as_os_str().as_bytes()).map_err(io::Error::other)?;
    let cb = CString::new(b.as_os_str().as_bytes()).map_err(io::Error::other)?;
    // SAFETY: both are valid NUL-terminated paths; AT_FDCWD is always valid.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            ca.as_ptr(),
            libc::AT_FDCWD,
            cb.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
