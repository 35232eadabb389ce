//! `redist` as a Nix builder, and the Nix expressions that use it.
//!
//! A derivation whose `builder` is a (static) `redist` with
//! `args = [ "nix-builder" ]` gets its archive unpacked, split into the
//! derivation's declared outputs (each its own store path), pkg-config
//! files pointed at those paths, and every ELF file linked with absolute
//! RUNPATHs — so Nix's reference scanner sees `bin → lib → glibc`.
//!
//! Attributes (fixed names, so hand-written expressions work): `src`,
//! `outputs` (and each output's path), `dynamicLinker`, `libDeps` (store
//! paths whose `lib/` is searched), `toolkitDeps` (other components'
//! outputs `nvcc.profile` points at), `driverRunpath` (default
//! `/run/opengl-driver/lib`), `appendRunpaths`, `ignoreMissing`, and
//! optionally `component` and `rules`. With `__structuredAttrs = true`
//! they come from `$NIX_ATTRS_JSON_FILE` (or `.attrs.json`); otherwise from
//! the environment, lists space-separated.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use crate::error::{write_error, Error, Result};
use crate::layout::{Layout, Mode, Rules};
use crate::{autopatch, Input, Progress, Report, UnpackOptions};

/// What the derivation asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Builder {
    /// The archive.
    pub src: PathBuf,
    /// Declared outputs in order, with their store paths.
    pub outputs: Vec<(String, PathBuf)>,
    /// Interpreter for executables.
    pub dynamic_linker: Option<String>,
    /// Store paths whose `lib/` directories provide libraries.
    pub lib_deps: Vec<PathBuf>,
    /// Store paths of other components' outputs this one is used with
    /// (cudart, crt, cccl, nvvm for `cuda_nvcc`): `nvcc.profile` points at
    /// their directories, and their libraries are searched.
    pub toolkit_deps: Vec<PathBuf>,
    /// Where the GPU driver's libraries are at run time: first in every
    /// RUNPATH (`None`: not added).
    pub driver_runpath: Option<String>,
    /// Entries appended to every RUNPATH.
    pub append_runpaths: Vec<String>,
    /// Libraries allowed to stay unresolved.
    pub ignore_missing: Vec<String>,
    /// The component's name, for messages.
    pub component: Option<String>,
    /// A rules file replacing the built-in layout rules.
    pub rules: Option<PathBuf>,
    /// Threads (`NIX_BUILD_CORES`; 0 means all).
    pub cores: usize,
    /// Scratch space (`NIX_BUILD_TOP`, else `TMPDIR`).
    pub build_top: PathBuf,
}

/// `NIX_BUILD_CORES` (0: not set, use every core).
fn cores(get: &dyn Fn(&str) -> Option<String>) -> usize {
    get("NIX_BUILD_CORES")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

/// `NIX_BUILD_TOP`, else `TMPDIR`, else `/tmp`.
fn build_top(get: &dyn Fn(&str) -> Option<String>) -> PathBuf {
    get("NIX_BUILD_TOP")
        .or_else(|| get("TMPDIR"))
        .unwrap_or_else(|| "/tmp".into())
        .into()
}

fn missing(name: &str) -> Error {
    Error::Nix {
        cause: None,
        message: format!(
            "the derivation has no `{name}` attribute, which redist nix-builder needs"
        ),
    }
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_owned).collect()
}

/// Where NixOS puts the driver's libraries (nixpkgs' `addDriverRunpath`).
pub const DRIVER_RUNPATH: &str = "/run/opengl-driver/lib";

/// `driverRunpath`: absent means NixOS's directory, empty means none.
fn driver_runpath(attr: Option<String>) -> Option<String> {
    match attr {
        None => Some(DRIVER_RUNPATH.to_owned()),
        Some(s) if s.trim().is_empty() => None,
        Some(s) => Some(s.trim().to_owned()),
    }
}

impl Builder {
    /// Read the derivation: structured attributes when present, else the
    /// environment.
    pub fn from_env() -> Result<Builder> {
        let get = |k: &str| std::env::var(k).ok();
        let attrs = get("NIX_ATTRS_JSON_FILE").map(PathBuf::from).or_else(|| {
            let p = PathBuf::from(get("NIX_BUILD_TOP").unwrap_or_else(|| ".".into()))
                .join(".attrs.json");
            p.exists().then_some(p)
        });
        match attrs {
            Some(path) => {
                let text = fs::read_to_string(&path).map_err(|e| Error::Nix {
                    message: format!("cannot read {}", path.display()),
                    cause: Some(Box::new(e)),
                })?;
                let json: Value = serde_json::from_str(&text).map_err(|e| Error::Nix {
                    message: format!("{} is not JSON", path.display()),
                    cause: Some(Box::new(e)),
                })?;
                Builder::from_attrs(&json, &get)
            }
            None => Builder::from_vars(&get),
        }
    }

    /// From plain environment variables (`get` looks one up).
    pub fn from_vars(get: &dyn Fn(&str) -> Option<String>) -> Result<Builder> {
        let src = get("src")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| missing("src"))?;
        let names = words(&get("outputs").unwrap_or_else(|| "out".into()));
        let mut outputs = Vec::new();
        for n in names {
            let path = get(&n)
                .filter(|s| !s.is_empty())
                .ok_or_else(|| Error::Nix {
                    cause: None,
                    message: format!(
                        "output `{n}` is declared but `${n}` (its store path) is not set"
                    ),
                })?;
            outputs.push((n, PathBuf::from(path)));
        }
        Ok(Builder {
            src: src.into(),
            outputs,
            dynamic_linker: get("dynamicLinker").filter(|s| !s.is_empty()),
            lib_deps: words(&get("libDeps").unwrap_or_default())
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            toolkit_deps: words(&get("toolkitDeps").unwrap_or_default())
                .into_iter()
                .map(PathBuf::from)
                .collect(),
            driver_runpath: driver_runpath(get("driverRunpath")),
            append_runpaths: words(&get("appendRunpaths").unwrap_or_default()),
            ignore_missing: words(&get("ignoreMissing").unwrap_or_default()),
            component: get("component").filter(|s| !s.is_empty()),
            rules: get("rules").filter(|s| !s.is_empty()).map(PathBuf::from),
            cores: cores(get),
            build_top: build_top(get),
        })
    }

    /// From `.attrs.json` (`__structuredAttrs = true`).
    pub fn from_attrs(a: &Value, get: &dyn Fn(&str) -> Option<String>) -> Result<Builder> {
        let string = |k: &str| {
            a.get(k)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        let list = |k: &str| -> Vec<String> {
            match a.get(k) {
                Some(Value::Array(v)) => v
                    .iter()
                    .filter_map(|x| x.as_str().map(str::to_owned))
                    .collect(),
                Some(Value::String(s)) => words(s),
                _ => Vec::new(),
            }
        };
        let src = string("src").ok_or_else(|| missing("src"))?;
        let outputs = match a.get("outputs") {
            Some(Value::Object(o)) => o
                .iter()
                .filter_map(|(k, v)| Some((k.clone(), PathBuf::from(v.as_str()?))))
                .collect(),
            _ => return Err(missing("outputs")),
        };
        Ok(Builder {
            src: src.into(),
            outputs,
            dynamic_linker: string("dynamicLinker"),
            lib_deps: list("libDeps").into_iter().map(PathBuf::from).collect(),
            toolkit_deps: list("toolkitDeps").into_iter().map(PathBuf::from).collect(),
            driver_runpath: driver_runpath(
                a.get("driverRunpath")
                    .map(|v| v.as_str().unwrap_or_default().to_owned()),
            ),
            append_runpaths: list("appendRunpaths"),
            ignore_missing: list("ignoreMissing"),
            component: string("component"),
            rules: string("rules").map(PathBuf::from),
            cores: cores(get),
            build_top: build_top(get),
        })
    }

    fn label(&self) -> String {
        self.component
            .clone()
            .unwrap_or_else(|| self.src.display().to_string())
    }
}

/// What a Nix build did.
#[derive(Debug, Clone, Serialize)]
pub struct NixReport {
    /// Output name → store path.
    pub outputs: BTreeMap<String, PathBuf>,
    /// The unpack report.
    pub unpack: Report,
}

/// The layout rules with every output the derivation did not declare sent
/// to `out`, as nixpkgs does.
pub fn rules_for(rules: &Rules, declared: &BTreeSet<String>) -> Rules {
    let mut r = rules.clone();
    for o in &mut r.output {
        if !declared.contains(&o.name) {
            o.name = "out".into();
        }
    }
    if !declared.contains(&r.default) {
        r.default = "out".into();
    }
    r
}

/// Build: unpack, split, fix, link, and move each output to its store path.
pub fn build(b: &Builder, progress: &dyn Progress) -> Result<NixReport> {
    let declared: BTreeSet<String> = b.outputs.iter().map(|(n, _)| n.clone()).collect();
    if !declared.contains("out") {
        return Err(Error::Nix {
            cause: None,
            message: "the derivation must declare the `out` output".into(),
        });
    }
    let base = Rules::load(b.rules.as_deref())?;
    let layout = Layout::new(&rules_for(&base, &declared), Mode::Split)?;
    let layout_names: Vec<String> = layout.output_names().map(str::to_owned).collect();
    let roots: BTreeMap<String, PathBuf> = b.outputs.iter().cloned().collect();
    let tree = b.build_top.join("redist-tree");
    let ignore_missing = crate::layout::glob_set(&b.ignore_missing, "ignoreMissing")?;
    let threads = if b.cores == 0 {
        crate::default_threads()
    } else {
        b.cores
    };
    let opts = UnpackOptions {
        layout,
        decoder_threads: threads as u32,
        // Nix normalises mtimes to 1 too; doing it here keeps the build
        // reproducible outside Nix as well.
        mtime: Some(1),
        only: None,
        final_root: Some(tree.clone()),
        output_roots: Some(roots.clone()),
        relocatable_pkgconfig: false,
        autopatch: Some(autopatch::AutopatchOptions {
            interpreter: b.dynamic_linker.clone(),
            deps: lib_dirs(&b.lib_deps)?,
            append_runpath: b.append_runpaths.clone(),
            ignore_missing,
            runpath: autopatch::RunpathMode::Absolute,
            keep_libc: true,
            driver_runpath: b.driver_runpath.clone(),
            dlopen_names: false,
            private_copies: false,
        }),
        toolkit_deps: toolkit_deps(&b.toolkit_deps, &layout_names)?,
        keep_nvcc_profile: false,
        // An intermediate tree, moved into the outputs below; the store's
        // durability is Nix's to ensure when it registers them.
        durable: false,
        limits: crate::Limits::default(),
    };
    let (report, written) = crate::unpack_tree(Input::Path(b.src.clone()), &tree, &opts, progress)?;

    let empty: Vec<&str> = declared
        .iter()
        .filter(|n| *n != "out" && !report.outputs.contains_key(*n))
        .map(String::as_str)
        .collect();
    if !empty.is_empty() {
        let has = report
            .outputs
            .iter()
            .map(|(n, s)| format!("{n} ({} files, {} symlinks)", s.files, s.symlinks))
            .collect::<Vec<_>>()
            .join(", ");
        return Err(Error::Nix {
            cause: None,
            message: format!(
                "{}: declared output{} {} would be empty; the archive has: {}",
                b.label(),
                if empty.len() == 1 { "" } else { "s" },
                empty.join(", "),
                if has.is_empty() {
                    "nothing".into()
                } else {
                    has
                }
            ),
        });
    }
    absolute_cross_output_links(&written, &tree, &roots)?;
    // Outputs this build makes; on any failure from here on (a disk that
    // fills up while copying to another filesystem) none of them remains.
    let made: Vec<&PathBuf> = b
        .outputs
        .iter()
        .map(|(_, p)| p)
        .filter(|p| fs::symlink_metadata(p).is_err())
        .collect();
    let result = publish_outputs(b, &tree, &roots);
    if result.is_err() {
        for p in &made {
            let _ = fs::remove_dir_all(p);
        }
    }
    result?;
    let _ = fs::remove_dir_all(&tree);
    Ok(NixReport {
        outputs: roots,
        unpack: report,
    })
}

/// Move each staged output to its store path (or make it empty) and write
/// `out`'s `nix-support/propagated-build-inputs`.
fn publish_outputs(b: &Builder, tree: &Path, roots: &BTreeMap<String, PathBuf>) -> Result<()> {
    for (name, dest) in &b.outputs {
        let staged = tree.join(name);
        if staged.exists() {
            move_tree(&staged, dest)?;
        } else {
            fs::create_dir_all(dest).map_err(write_error(dest))?;
        }
    }
    let others: Vec<String> = b
        .outputs
        .iter()
        .filter(|(n, _)| n != "out")
        .map(|(_, p)| p.display().to_string())
        .collect();
    let support = roots["out"].join("nix-support");
    fs::create_dir_all(&support).map_err(write_error(&support))?;
    let file = support.join("propagated-build-inputs");
    fs::write(&file, format!("{}\n", others.join(" ")))
        .map_err(|source| Error::Write { path: file, source })
}

/// The `lib` directories of `libDeps`: a dependency that is not in the
/// build (not an input of the derivation) is an error naming it; one
/// without a `lib` directory has nothing to link against.
fn lib_dirs(deps: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut dirs = Vec::new();
    for d in deps {
        if !d.exists() {
            return Err(Error::MissingDependency(d.clone()));
        }
        let lib = d.join("lib");
        if lib.is_dir() {
            dirs.push(lib);
        }
    }
    Ok(dirs)
}

/// The `toolkitDeps` that provide something: a component's every output
/// is usually given (`drv.all`), and its `doc` or `out` has no directory a
/// compiler uses. A path that does not exist is an error.
fn toolkit_deps(paths: &[PathBuf], outputs: &[String]) -> Result<Vec<PathBuf>> {
    let mut useful = Vec::new();
    for p in paths {
        if !p.exists() {
            return Err(Error::Nix {
 cause: None,
                message: format!(
                    "toolkitDeps names {}, which does not exist in the build (is it an input of the derivation?)",
                    p.display()
                ),
            });
        }
        if !crate::toolkit::TreeDirs::probe(p, outputs.iter().map(String::as_str)).is_empty() {
            useful.push(p.clone());
        }
    }
    Ok(useful)
}

/// Relative symlinks that cross outputs break once outputs are separate
/// store paths: point them at the other output's absolute path. The
/// symlinks are those the unpacker wrote (`written`, rooted at `tree`).
fn absolute_cross_output_links(
    written: &crate::unpack::Tree,
    tree: &Path,
    roots: &BTreeMap<String, PathBuf>,
) -> Result<()> {
    for (dest, node) in &written.nodes {
        let crate::unpack::NodeKind::Symlink {
            written: target, ..
        } = &node.kind
        else {
            continue;
        };
        let (own, _) = dest.split_once('/').unwrap_or((dest, ""));
        // Unpacking refused links that climb out of the tree.
        let Some(joined) = crate::unpack::join_lexically(crate::unpack::parent(dest), target)
        else {
            continue;
        };
        let (first, rest) = joined.split_once('/').unwrap_or((&joined, ""));
        let Some(root) = roots.get(first).filter(|_| first != own) else {
            continue;
        };
        let abs = rest
            .split('/')
            .filter(|c| !c.is_empty())
            .fold(root.clone(), |acc, c| acc.join(c));
        let link = tree.join(dest);
        fs::remove_file(&link).map_err(write_error(&link))?;
        std::os::unix::fs::symlink(&abs, &link).map_err(write_error(&link))?;
    }
    Ok(())
}

/// Rename `from` to `to`, copying when they are on different filesystems
/// (the build directory and the store usually are).
fn move_tree(from: &Path, to: &Path) -> Result<()> {
    match fs::rename(from, to) {
        Ok(()) => return Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {}
        Err(source) => {
            return Err(Error::Write {
                path: to.to_owned(),
                source,
            })
        }
    }
    crate::publish::copy_tree(from, to, crate::publish::FileCopy::Data)
}

/// One component of a generated expression.
pub struct ExprComponent {
    /// Component key (`pname`).
    pub pname: String,
    /// Version.
    pub version: String,
    /// Where the fixed-output fetch gets the archive.
    pub url: String,
    /// Its sha256 (hex).
    pub sha256: String,
    /// Outputs its archive produces (`redist features`); `out` is added.
    pub outputs: BTreeSet<String>,
    /// Outputs of other components of the set whose libraries it needs:
    /// `(component, output)`, passed as `libDeps` (computed from the
    /// archives' ELF files by [`wire`]).
    pub lib_deps: Vec<(String, String)>,
    /// Its manifest's product (`cuda`, `cudnn`).
    pub product: String,
}

/// For each component (by its facts, in the same order as `names`), the
/// outputs of the others that provide a library it needs and does not
/// ship itself: what its `libDeps` are. The GPU driver's libraries and
/// stubs never count.
pub fn wire(names: &[String], facts: &[crate::ArchiveFacts]) -> Vec<Vec<(String, String)>> {
    facts
        .iter()
        .enumerate()
        .map(|(i, f)| {
            let mut deps: Vec<(String, String)> = Vec::new();
            for need in &f.needs {
                if f.provides.contains_key(need) || crate::autopatch::is_driver_library(need) {
                    continue;
                }
                let from = facts.iter().enumerate().find_map(|(j, g)| {
                    let output = g.provides.get(need)?;
                    (j != i && output != "stubs").then(|| (names[j].clone(), output.clone()))
                });
                if let Some(d) = from {
                    if !deps.contains(&d) {
                        deps.push(d);
                    }
                }
            }
            deps.sort();
            deps
        })
        .collect()
}

/// `redist nix-join`: `$out` as one tree of symlinks to every file of the
/// store paths in `paths` (like nixpkgs' `symlinkJoin`: directories are
/// merged, the first path providing a file wins; `nix-support` is left out).
pub fn join(paths: &[PathBuf], out: &Path) -> Result<usize> {
    /// Links the entries of `from` into `to`: directories merged (a file
    /// already there wins), other entries linked unless the name is taken.
    fn link_tree(from: &Path, to: &Path, top: bool, count: &mut usize) -> Result<()> {
        fs::create_dir_all(to).map_err(write_error(to))?;
        let mut entries: Vec<fs::DirEntry> = fs::read_dir(from)
            .map_err(crate::error::read_error(from))?
            .collect::<std::io::Result<_>>()
            .map_err(crate::error::read_error(from))?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            if top && e.file_name() == "nix-support" {
                continue;
            }
            let (src, dst) = (e.path(), to.join(e.file_name()));
            let t = e.file_type().map_err(crate::error::read_error(&src))?;
            let there = fs::symlink_metadata(&dst).ok();
            if t.is_dir() {
                if there.is_none_or(|m| m.is_dir()) {
                    link_tree(&src, &dst, false, count)?;
                }
            } else if there.is_none() {
                std::os::unix::fs::symlink(&src, &dst).map_err(write_error(&dst))?;
                *count += 1;
            }
        }
        Ok(())
    }
    let mut count = 0;
    fs::create_dir_all(out).map_err(write_error(out))?;
    for p in paths.iter().filter(|p| p.is_dir()) {
        link_tree(p, out, true, &mut count)?;
    }
    Ok(count)
}

fn nix_string(s: &str) -> String {
    let escaped = s
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace("${", "\\${");
    format!("\"{escaped}\"")
}

/// A Nix file with one derivation per component, built by `redist
/// nix-builder`. `builder` is the default for the `redist` argument (a store
/// path of a static `redist`); every knob is a function argument. A
/// component that compiles against others (`cuda_nvcc` against cudart,
/// crt, cccl and nvvm: the toolkit dependency rule) gets their
/// outputs as `toolkitDeps`, when they are in the set.
pub fn expression(
    label: &str,
    builder: &str,
    system: &str,
    components: &[ExprComponent],
) -> String {
    let mut s = String::new();
    s.push_str(&format!(
        "# Generated by `redist nix-expr` from {label}.\n\
         # Each attribute is one component, built by `redist nix-builder` into the\n\
         # outputs its archive provides. Build one with:\n\
         #   nix-build this.nix -A <component> --arg libDeps '[ <glibc> ]' --argstr dynamicLinker <ld.so>\n\
         # extraLibDeps = {{ <component> = [ <other>.lib ]; }} links one component to another.\n\
         # driverRunpath (first in every RUNPATH) is where the GPU driver's libraries are; \"\" for none.\n\
         {{ redist ? {builder}\n\
         , system ? {system}\n\
         , dynamicLinker ? null\n\
         , libDeps ? [ ]\n\
         , extraLibDeps ? {{ }}\n\
         , driverRunpath ? {driver}\n\
         , appendRunpaths ? [ ]\n\
         , ignoreMissing ? [ ]\n\
         }}:\n\
         let\n\
         \x20 fetchurl = import <nix/fetchurl.nix>;\n\
         \x20 # Plain strings naming store paths need their context back.\n\
         \x20 store = p: if builtins.isString p then builtins.storePath p else p;\n\
         \x20 component = {{ pname, version, url, sha256, outputs, toolkitDeps ? [ ], setLibDeps ? [ ] }}: derivation ({{\n\
         \x20   name = \"${{pname}}-${{version}}\";\n\
         \x20   inherit system outputs;\n\
         \x20   builder = store redist;\n\
         \x20   args = [ \"nix-builder\" ];\n\
         \x20   src = fetchurl {{ inherit url sha256; }};\n\
         \x20   component = pname;\n\
         \x20   # Outputs of the set's other components whose libraries it needs.\n\
         \x20   libDeps = map store (libDeps ++ setLibDeps ++ (extraLibDeps.${{pname}} or [ ]));\n\
         \x20   # Every output of each component nvcc.profile points at.\n\
         \x20   toolkitDeps = builtins.concatMap (d: d.all) toolkitDeps;\n\
         \x20   inherit driverRunpath appendRunpaths ignoreMissing;\n\
         \x20 }} // (if dynamicLinker == null then {{ }} else {{ inherit dynamicLinker; }}));\n\
         \x20 # One tree of symlinks to every output of the given components.\n\
         \x20 join = name: components: derivation {{\n\
         \x20   inherit name system;\n\
         \x20   builder = store redist;\n\
         \x20   args = [ \"nix-join\" ];\n\
         \x20   paths = builtins.concatMap (d: d.all) components;\n\
         \x20 }};\n\
         \x20 self = {{\n\
         \x20   inherit join;\n",
        label = label,
        builder = nix_string(builder),
        system = nix_string(system),
        driver = nix_string(DRIVER_RUNPATH),
    ));
    let names: Vec<&str> = components.iter().map(|c| c.pname.as_str()).collect();
    for c in components {
        let mut outputs: Vec<&str> = vec!["out"];
        outputs.extend(c.outputs.iter().map(String::as_str).filter(|o| *o != "out"));
        let outputs = outputs
            .iter()
            .map(|o| nix_string(o))
            .collect::<Vec<_>>()
            .join(" ");
        let deps = crate::toolkit::toolkit_deps_of(&c.pname, &names);
        let deps = if deps.is_empty() {
            String::new()
        } else {
            format!(
                "      toolkitDeps = [ {} ];\n",
                deps.iter()
                    .map(|d| format!("self.{}", nix_string(d)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        let set_deps = if c.lib_deps.is_empty() {
            String::new()
        } else {
            format!(
                "      setLibDeps = [ {} ];\n",
                c.lib_deps
                    .iter()
                    .map(|(d, o)| format!("self.{}.{}", nix_string(d), nix_string(o)))
                    .collect::<Vec<_>>()
                    .join(" ")
            )
        };
        s.push_str(&format!(
            "    {key} = component {{\n      pname = {pname};\n      version = {version};\n      url = {url};\n      sha256 = {sha};\n      outputs = [ {outputs} ];\n{deps}{set_deps}    }};\n",
            key = nix_string(&c.pname),
            pname = nix_string(&c.pname),
            version = nix_string(&c.version),
            url = nix_string(&c.url),
            sha = nix_string(&c.sha256),
        ));
    }
    // The toolkit as the `.run` installer made it: every component of the
    // set's cuda manifest joined in one tree.
    let toolkit: Vec<String> = components
        .iter()
        .filter(|c| c.product == "cuda")
        .map(|c| format!("self.{}", nix_string(&c.pname)))
        .collect();
    if !toolkit.is_empty() && !names.contains(&"cudatoolkit") {
        s.push_str(&format!(
            "    # Every component of the cuda manifest in one tree; join others with\n    # `join \"name\" [ self.cuda_cudart self.cudnn ]`.\n    cudatoolkit = join \"cudatoolkit\" [ {} ];\n",
            toolkit.join(" ")
        ));
    }
    s.push_str("  };\nin\nself\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn reads_plain_environment() {
        let get = vars(&[
            ("src", "/nix/store/a-src.tar.xz"),
            ("outputs", "out lib dev"),
            ("out", "/nix/store/b"),
            ("lib", "/nix/store/c-lib"),
            ("dev", "/nix/store/d-dev"),
            ("libDeps", "/nix/store/g /nix/store/h"),
            ("ignoreMissing", "libcuda.so*"),
            ("NIX_BUILD_CORES", "3"),
            ("NIX_BUILD_TOP", "/build"),
        ]);
        let b = Builder::from_vars(&get).unwrap();
        assert_eq!(
            b.outputs
                .iter()
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>(),
            ["out", "lib", "dev"]
        );
        assert_eq!(
            b.lib_deps,
            [PathBuf::from("/nix/store/g"), PathBuf::from("/nix/store/h")]
        );
        assert_eq!(b.ignore_missing, ["libcuda.so*"]);
        assert_eq!((b.cores, b.build_top.as_path()), (3, Path::new("/build")));
        assert_eq!(b.dynamic_linker, None);
    }

    #[test]
    fn driver_runpath_defaults_to_nixos_and_can_be_turned_off() {
        let base = [("src", "/s"), ("outputs", "out"), ("out", "/o")];
        let b = Builder::from_vars(&vars(&base)).unwrap();
        assert_eq!(b.driver_runpath.as_deref(), Some("/run/opengl-driver/lib"));
        let mut off = base.to_vec();
        off.push(("driverRunpath", ""));
        assert_eq!(
            Builder::from_vars(&vars(&off)).unwrap().driver_runpath,
            None
        );
        let mut other = base.to_vec();
        other.push(("driverRunpath", "/usr/lib/nvidia"));
        other.push((
            "toolkitDeps",
            "/nix/store/a-cudart-include /nix/store/b-crt-include",
        ));
        let b = Builder::from_vars(&vars(&other)).unwrap();
        assert_eq!(b.driver_runpath.as_deref(), Some("/usr/lib/nvidia"));
        assert_eq!(b.toolkit_deps.len(), 2);
        let a: Value = serde_json::json!({
            "src": "/s", "outputs": {"out": "/o"}, "driverRunpath": "",
            "toolkitDeps": ["/nix/store/a-cudart-include"]
        });
        let b = Builder::from_attrs(&a, &vars(&[])).unwrap();
        assert_eq!(b.driver_runpath, None);
        assert_eq!(
            b.toolkit_deps,
            [PathBuf::from("/nix/store/a-cudart-include")]
        );
    }

    #[test]
    fn join_links_every_file_of_the_paths_into_one_tree() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        for (root, lib, extra) in [(&a, "liba.so", "a.h"), (&b, "libb.so", "b.h")] {
            fs::create_dir_all(root.join("lib")).unwrap();
            fs::create_dir_all(root.join("include")).unwrap();
            fs::create_dir_all(root.join("nix-support")).unwrap();
            fs::write(root.join("lib").join(lib), lib).unwrap();
            fs::write(root.join("include").join(extra), extra).unwrap();
            fs::write(root.join("include/common.h"), root.display().to_string()).unwrap();
            fs::write(root.join("nix-support/propagated-build-inputs"), "x").unwrap();
        }
        let out = d.path().join("out");
        let n = join(&[a.clone(), b.clone(), d.path().join("missing")], &out).unwrap();
        assert_eq!(n, 5);
        assert_eq!(
            fs::read_link(out.join("lib/libb.so")).unwrap(),
            b.join("lib/libb.so")
        );
        // The first path providing a file wins.
        assert_eq!(
            fs::read_link(out.join("include/common.h")).unwrap(),
            a.join("include/common.h")
        );
        assert!(fs::symlink_metadata(out.join("lib")).unwrap().is_dir());
        assert!(!out.join("nix-support").exists());
    }

    #[test]
    fn libraries_needed_from_other_components_become_their_lib_deps() {
        let facts = |provides: &[(&str, &str)], needs: &[&str]| crate::ArchiveFacts {
            outputs: BTreeSet::new(),
            provides: provides
                .iter()
                .map(|(l, o)| (l.to_string(), o.to_string()))
                .collect(),
            needs: needs.iter().map(|n| n.to_string()).collect(),
        };
        let names: Vec<String> = ["cuda_cudart", "libcublas", "cudnn"]
            .map(String::from)
            .into();
        let wired = wire(
            &names,
            &[
                facts(
                    &[("libcudart.so.13", "lib"), ("libcuda.so.1", "stubs")],
                    &["libc.so.6", "libcuda.so.1"],
                ),
                facts(
                    &[("libcublas.so.13", "lib"), ("libcublasLt.so.13", "lib")],
                    &["libcublasLt.so.13", "libcudart.so.13"],
                ),
                // cuDNN names libcublasLt and libnvrtc (dlopened); the set
                // has no nvrtc: nothing to wire, nothing to complain about.
                facts(
                    &[("libcudnn.so.9", "lib")],
                    &[
                        "libcublasLt.so.13",
                        "libnvrtc.so.13",
                        "libcuda.so.1",
                        "libcudnn.so.9",
                    ],
                ),
            ],
        );
        assert_eq!(wired[0], Vec::<(String, String)>::new());
        assert_eq!(wired[1], [("cuda_cudart".to_string(), "lib".to_string())]);
        assert_eq!(wired[2], [("libcublas".to_string(), "lib".to_string())]);
        let c = |p: &str, product: &str, lib_deps: Vec<(String, String)>| ExprComponent {
            pname: p.into(),
            version: "1".into(),
            url: format!("file:///m/{p}.tar.xz"),
            sha256: "ab".into(),
            outputs: ["lib".to_string()].into_iter().collect(),
            lib_deps,
            product: product.into(),
        };
        let e = expression(
            "cuda 13.0.2 + cudnn 9.14.0",
            "/nix/store/r-redist",
            "x86_64-linux",
            &[
                c("cuda_cudart", "cuda", vec![]),
                c("libcublas", "cuda", wired[1].clone()),
                c("cudnn", "cudnn", wired[2].clone()),
            ],
        );
        assert!(
            e.contains("setLibDeps = [ self.\"libcublas\".\"lib\" ];"),
            "{e}"
        );
        assert!(
            e.contains(
                "cudatoolkit = join \"cudatoolkit\" [ self.\"cuda_cudart\" self.\"libcublas\" ];"
            ),
            "{e}"
        );
    }

    #[test]
    fn nvcc_gets_the_compiler_parts_of_the_set_as_toolkit_deps() {
        let c = |p: &str| ExprComponent {
            pname: p.into(),
            version: "13.0".into(),
            url: format!("file:///m/{p}.tar.xz"),
            sha256: "ab".into(),
            outputs: BTreeSet::new(),
            lib_deps: Vec::new(),
            product: "cuda".into(),
        };
        let e = expression(
            "cuda 13",
            "/nix/store/r-redist",
            "x86_64-linux",
            &[
                c("cuda_nvcc"),
                c("cuda_cudart"),
                c("libnvvm"),
                c("cuda_nvrtc"),
            ],
        );
        assert!(
            e.contains("toolkitDeps = [ self.\"cuda_cudart\" self.\"libnvvm\" ];"),
            "{e}"
        );
        assert_eq!(e.matches("toolkitDeps = [ self").count(), 1, "{e}");
        assert!(
            e.contains(", driverRunpath ? \"/run/opengl-driver/lib\"\n"),
            "{e}"
        );
    }

    #[test]
    fn missing_attributes_are_named() {
        let e = Builder::from_vars(&vars(&[("outputs", "out")]))
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "nix-builder: the derivation has no `src` attribute, which redist nix-builder needs"
        );
        let e = Builder::from_vars(&vars(&[
            ("src", "/s"),
            ("outputs", "out lib"),
            ("out", "/o"),
        ]))
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "nix-builder: output `lib` is declared but `$lib` (its store path) is not set"
        );
    }

    #[test]
    fn reads_structured_attrs() {
        let a: Value = serde_json::json!({
            "src": "/nix/store/a-src", "outputs": {"out": "/nix/store/o", "bin": "/nix/store/b"},
            "libDeps": ["/nix/store/g"], "dynamicLinker": "/nix/store/g/lib/ld.so", "appendRunpaths": ["/run/opengl-driver/lib"]
        });
        let b = Builder::from_attrs(&a, &vars(&[])).unwrap();
        assert_eq!(b.outputs.len(), 2);
        assert_eq!(b.dynamic_linker.as_deref(), Some("/nix/store/g/lib/ld.so"));
        assert_eq!(b.append_runpaths, ["/run/opengl-driver/lib"]);
    }

    #[test]
    fn undeclared_outputs_go_to_out() {
        let declared: BTreeSet<String> = ["out", "lib"].iter().map(|s| s.to_string()).collect();
        let r = rules_for(&Rules::builtin(), &declared);
        let l = Layout::new(&r, Mode::Split).unwrap();
        assert_eq!(l.route("lib/libx.so").output, "lib");
        assert_eq!(l.route("lib/libx.a").output, "out");
        assert_eq!(l.route("include/x.h").output, "out");
    }

    #[test]
    fn expression_escapes_strings() {
        let e = expression(
            "cuda 1.0",
            "/nix/store/r-redist",
            "x86_64-linux",
            &[ExprComponent {
                pname: "cuda_nvcc".into(),
                version: "1".into(),
                url: "file:///m/a${b}.tar.xz".into(),
                sha256: "ab".into(),
                outputs: ["bin".to_string(), "include".to_string()]
                    .into_iter()
                    .collect(),
                lib_deps: Vec::new(),
                product: String::new(),
            }],
        );
        assert!(
            e.contains("outputs = [ \"out\" \"bin\" \"include\" ];"),
            "{e}"
        );
        assert!(e.contains("url = \"file:///m/a\\${b}.tar.xz\";"), "{e}");
        assert!(e.contains("{ redist ? \"/nix/store/r-redist\""), "{e}");
    }
}
