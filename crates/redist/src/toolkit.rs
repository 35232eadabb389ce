//! What makes unpacked components a toolkit that compiles: `nvcc.profile`
//! pointed at the directories the compiler needs, and the `.run`
//! installer's `targets/<triple>` tree in merged prefixes.
//!
//! NVIDIA's `bin/nvcc.profile` (in `cuda_nvcc`) tells `nvcc` where
//! everything else is, relative to `$(TOP)` (the directory above `bin`):
//!
//! ```text
//! TOP              = $(_HERE_)/..
//! CICC_PATH        = $(TOP)/nvvm/bin
//! NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice
//! INCLUDES        +=  "-I$(TOP)/$(_TARGET_DIR_)/include" $(_SPACE_)
//! SYSTEM_INCLUDES +=  "-isystem" "$(TOP)/$(_TARGET_DIR_)/include/cccl" $(_SPACE_)
//! LIBRARIES        =+ $(_SPACE_) "-L$(TOP)/$(_TARGET_DIR_)/lib$(_TARGET_SIZE_)/stubs" "-L$(TOP)/$(_TARGET_DIR_)/lib$(_TARGET_SIZE_)"
//! ```
//!
//! `$(_TARGET_DIR_)` is `targets/x86_64-linux` (`sbsa-linux`, …): the
//! `.run` installer's tree, which the redist archives do not have. Two ways
//! to satisfy it:
//!
//! - a merged prefix gets that tree ([`link_targets`]): `targets/<triple>/include`
//!   and `targets/<triple>/lib` link to the prefix's `include` and `lib`,
//!   `lib64` links to `lib`, and NVIDIA's profile stays as shipped;
//! - anywhere else (split outputs, one component unpacked on its own, Nix
//!   store paths) the profile is rewritten ([`rewrite_profile`]) to the real
//!   directories: the component's own outputs, then those of the trees it
//!   is given (cudart, crt, cccl, nvvm since CUDA 13 split the compiler).
//!
//! Lines the rewriter does not know are kept; a profile it cannot
//! understand is left as shipped, with a warning.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// The `.run` installer's `targets/` name for a manifest platform
/// (`linux-x86_64` → `x86_64-linux`).
pub fn target_triple(platform: &str) -> Option<&'static str> {
    Some(match platform {
        "linux-x86_64" => "x86_64-linux",
        "linux-sbsa" => "sbsa-linux",
        "linux-aarch64" => "aarch64-linux",
        "linux-ppc64le" => "ppc64le-linux",
        _ => return None,
    })
}

/// The components `component` compiles against, of those in `available`:
/// since CUDA 13 the compiler (`cuda_nvcc`) is split over `cuda_crt`
/// (include/crt), `libnvvm` (cicc, libdevice), `cuda_cccl` (include/cccl)
/// and `cuda_cudart` (headers and runtime libraries).
pub fn toolkit_deps_of<'a>(component: &str, available: &[&'a str]) -> Vec<&'a str> {
    const COMPILER: [&str; 4] = ["cuda_cudart", "cuda_crt", "cuda_cccl", "libnvvm"];
    if component != "cuda_nvcc" {
        return Vec::new();
    }
    COMPILER
        .iter()
        .filter_map(|c| available.iter().find(|a| *a == c).copied())
        .collect()
}

/// The directories one toolkit tree provides to a compiler.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TreeDirs {
    /// Header directories (`…/include`).
    pub includes: Vec<PathBuf>,
    /// Library directories, shared and static (`…/lib`).
    pub libs: Vec<PathBuf>,
    /// Link-time stub directories (`…/lib/stubs`).
    pub stubs: Vec<PathBuf>,
    /// The NVVM directory (`…/nvvm`, holding `bin/cicc` and `libdevice`).
    pub nvvm: Option<PathBuf>,
}

impl TreeDirs {
    /// Find the directories of a tree made by redist: split (`T/lib/lib`,
    /// `T/static/lib`, `T/include/include`, `T/out/nvvm`, …), merged
    /// (`T/lib`, `T/include`, `T/nvvm`), or one output (a Nix store path:
    /// `T/include`). `outputs` are the layout's output names.
    pub fn probe<'a>(root: &Path, outputs: impl IntoIterator<Item = &'a str>) -> TreeDirs {
        // Split when an output directory holds its own tree.
        let split = [
            "bin/bin",
            "lib/lib",
            "include/include",
            "static/lib",
            "stubs/lib",
            "out/nvvm",
        ]
        .iter()
        .any(|p| root.join(p).is_dir());
        let mut roots = Vec::new();
        if split {
            for o in outputs {
                let r = root.join(o);
                if r.is_dir() && !roots.contains(&r) {
                    roots.push(r);
                }
            }
        } else {
            roots.push(root.to_owned());
        }
        let mut dirs = TreeDirs::default();
        let add = |list: &mut Vec<PathBuf>, p: PathBuf| {
            if p.is_dir() && !list.contains(&p) {
                list.push(p);
            }
        };
        // A `lib` holding only `cmake/` or `pkgconfig/` (a dev output) is
        // no library directory.
        let has_files = |d: &Path| {
            std::fs::read_dir(d).is_ok_and(|mut es| {
                es.any(|e| e.is_ok_and(|e| e.file_type().is_ok_and(|t| !t.is_dir())))
            })
        };
        for r in &roots {
            add(&mut dirs.includes, r.join("include"));
            for lib in ["lib", "lib64"] {
                let d = r.join(lib);
                if has_files(&d) {
                    add(&mut dirs.libs, d);
                }
            }
            add(&mut dirs.stubs, r.join("lib/stubs"));
            add(&mut dirs.stubs, r.join("lib64/stubs"));
            let nvvm = r.join("nvvm");
            if dirs.nvvm.is_none() && (nvvm.join("bin").is_dir() || nvvm.join("libdevice").is_dir())
            {
                dirs.nvvm = Some(nvvm);
            }
        }
        dirs
    }

    /// Whether the tree provides nothing a compiler uses.
    pub fn is_empty(&self) -> bool {
        self.includes.is_empty() && self.libs.is_empty() && self.nvvm.is_none()
    }

    /// Append `other`'s directories after this tree's.
    pub fn extend(&mut self, other: TreeDirs) {
        for (mine, theirs) in [
            (&mut self.includes, other.includes),
            (&mut self.libs, other.libs),
            (&mut self.stubs, other.stubs),
        ] {
            for p in theirs {
                if !mine.contains(&p) {
                    mine.push(p);
                }
            }
        }
        if self.nvvm.is_none() {
            self.nvvm = other.nvvm;
        }
    }
}

/// A toolkit tree given on the command line (`--toolkit-dep`) or by a
/// derivation (`toolkitDeps`): checked to exist and to provide something.
pub fn dep_tree<'a>(root: &Path, outputs: impl IntoIterator<Item = &'a str>) -> Result<TreeDirs> {
    let bad = |message: &str| Error::ToolkitDep {
        path: root.to_owned(),
        message: message.to_owned(),
    };
    if !root.is_dir() {
        return Err(bad(if root.exists() {
            "is not a directory"
        } else {
            "does not exist"
        }));
    }
    let dirs = TreeDirs::probe(root, outputs);
    if dirs.is_empty() {
        return Err(bad(
            "has no include, lib or nvvm directory (give the directory `redist unpack --out` \
             or `redist install --prefix` made, or one of its outputs)",
        ));
    }
    Ok(dirs)
}

/// The profile's directories, as written into it: `$(_HERE_)/…` for
/// directories that move with the profile, absolute paths otherwise.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileDirs {
    /// `-I` directories.
    pub includes: Vec<String>,
    /// `-isystem` directories of CCCL (`…/include/cccl`).
    pub cccl: Vec<String>,
    /// `-L` directories.
    pub libs: Vec<String>,
    /// `-L` stub directories.
    pub stubs: Vec<String>,
    /// The NVVM directory.
    pub nvvm: Option<String>,
}

impl ProfileDirs {
    /// From the dirs of the trees (own first), written by `show`.
    pub fn new(dirs: &TreeDirs, show: impl Fn(&Path) -> String) -> ProfileDirs {
        let all = |v: &[PathBuf]| v.iter().map(|p| show(p)).collect::<Vec<_>>();
        let cccl: Vec<String> = dirs
            .includes
            .iter()
            .map(|i| i.join("cccl"))
            .filter(|c| c.is_dir())
            .map(|c| show(&c))
            .collect();
        ProfileDirs {
            includes: all(&dirs.includes),
            cccl,
            libs: all(&dirs.libs),
            stubs: all(&dirs.stubs),
            nvvm: dirs.nvvm.as_deref().map(&show),
        }
    }
}

/// What one path expression of the profile stands for.
enum Meaning<'a> {
    Includes,
    Cccl,
    Libs,
    Stubs,
    /// Below the NVVM directory (the rest of the path).
    Nvvm(&'a str),
    /// Something else under `$(TOP)`: left as it is.
    Other,
}

fn meaning(after_top: &str) -> Meaning<'_> {
    let p = after_top.trim_end_matches('/');
    match p {
        "/$(_TARGET_DIR_)/include" | "/include" => Meaning::Includes,
        "/$(_TARGET_DIR_)/include/cccl" | "/include/cccl" => Meaning::Cccl,
        "/$(_TARGET_DIR_)/lib$(_TARGET_SIZE_)" | "/lib" | "/lib64" => Meaning::Libs,
        "/$(_TARGET_DIR_)/lib$(_TARGET_SIZE_)/stubs" | "/lib/stubs" | "/lib64/stubs" => {
            Meaning::Stubs
        }
        _ => {
            for branch in ["/nvvm", "/$(_NVVM_BRANCH_)"] {
                if let Some(rest) = p.strip_prefix(branch) {
                    if rest.is_empty() || rest.starts_with('/') {
                        return Meaning::Nvvm(rest);
                    }
                }
            }
            Meaning::Other
        }
    }
}

/// Map one path piece (maybe quoted, maybe `-I`/`-L`-prefixed) to its new
/// pieces; `None` when it stays as it is. Counts what it understood.
fn map_piece(piece: &str, dirs: &ProfileDirs, understood: &mut usize) -> Option<Vec<String>> {
    let (quote, inner) = match piece.strip_prefix('"').and_then(|p| p.strip_suffix('"')) {
        Some(i) => ("\"", i),
        None => ("", piece),
    };
    let (flag, path) = ["-I", "-L"]
        .iter()
        .find_map(|f| inner.strip_prefix(f).map(|r| (*f, r)))
        .unwrap_or(("", inner));
    let after = path.strip_prefix("$(TOP)")?;
    let wrap = |d: &String| format!("{quote}{flag}{d}{quote}");
    let new: Vec<String> = match meaning(after) {
        Meaning::Includes => dirs.includes.iter().map(wrap).collect(),
        Meaning::Cccl => dirs.cccl.iter().map(wrap).collect(),
        Meaning::Libs => dirs.libs.iter().map(wrap).collect(),
        Meaning::Stubs => dirs.stubs.iter().map(wrap).collect(),
        Meaning::Nvvm(rest) => match &dirs.nvvm {
            Some(n) => vec![wrap(&format!("{n}{rest}"))],
            None => return None,
        },
        Meaning::Other => return None,
    };
    *understood += 1;
    Some(new)
}

/// Rewrite NVIDIA's `nvcc.profile` text so that every `$(TOP)` path it
/// uses points at `dirs`. `Ok(None)`: nothing to change. `Err`: the text is
/// not a profile this function understands (the caller keeps it as it is).
pub fn rewrite_profile(
    text: &str,
    dirs: &ProfileDirs,
) -> std::result::Result<Option<String>, String> {
    let mut out = String::with_capacity(text.len() + 512);
    let mut understood = 0usize;
    let mut uses_targets = false;
    for (n, line) in text.split_inclusive('\n').enumerate() {
        let body = line.trim_end_matches(['\n', '\r']);
        let eol = &line[body.len()..];
        let trimmed = body.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || !body.contains("$(TOP)") {
            out.push_str(line);
            continue;
        }
        let (head, value) = split_assignment(body)
            .ok_or_else(|| format!("line {}: `{trimmed}` is not `NAME = value`", n + 1))?;
        let name = head
            .trim_start()
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .next();
        if name == Some("TOP") {
            // `TOP = $(_HERE_)/..` itself.
            out.push_str(line);
            continue;
        }
        uses_targets |= value.contains("$(_TARGET_DIR_)");
        let tokens = tokenize(value)
            .ok_or_else(|| format!("line {}: unbalanced quotes in `{trimmed}`", n + 1))?;
        let mut new_tokens: Vec<String> = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            let t = tokens[i];
            let bare = t.trim_matches('"');
            // `"-isystem" "DIR"`, `-I DIR`: the flag goes with each new DIR.
            if matches!(bare, "-isystem" | "-I" | "-L") && i + 1 < tokens.len() {
                if let Some(new) = map_piece(tokens[i + 1], dirs, &mut understood) {
                    for d in new {
                        new_tokens.push(t.to_owned());
                        new_tokens.push(d);
                    }
                    i += 2;
                    continue;
                }
            }
            if !t.starts_with('"') && t.contains(':') {
                // A search path: `$(TOP)/lib:`, `$(CICC_PATH):$(_HERE_):`.
                let mut parts = Vec::new();
                for p in t.split(':') {
                    match map_piece(p, dirs, &mut understood) {
                        Some(new) => parts.extend(new),
                        None => parts.push(p.to_owned()),
                    }
                }
                new_tokens.push(parts.join(":"));
            } else {
                match map_piece(t, dirs, &mut understood) {
                    Some(new) => new_tokens.extend(new),
                    None => new_tokens.push(t.to_owned()),
                }
            }
            i += 1;
        }
        out.push_str(head);
        out.push_str(&new_tokens.join(" "));
        out.push_str(eol);
    }
    if understood == 0 || (!uses_targets && !text.contains("$(TOP)/include")) {
        return Err("it names no `$(TOP)/$(_TARGET_DIR_)` include or library directory".into());
    }
    Ok((out != text).then_some(out))
}

/// `NAME  += value` → (`NAME  += `, `value`).
fn split_assignment(body: &str) -> Option<(&str, &str)> {
    let start = body.len() - body.trim_start().len();
    let rest = &body[start..];
    let name_len = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    if name_len == 0 || rest.as_bytes()[0].is_ascii_digit() {
        return None;
    }
    let after_name = &rest[name_len..];
    let ws = after_name.len() - after_name.trim_start().len();
    let op_at = &after_name[ws..];
    let op = ["+=", "=+", "?=", "="]
        .iter()
        .find(|o| op_at.starts_with(*o))?;
    let after_op = &op_at[op.len()..];
    let ws2 = after_op.len() - after_op.trim_start().len();
    let head_len = start + name_len + ws + op.len() + ws2;
    Some((&body[..head_len], &body[head_len..]))
}

/// Whitespace-separated tokens; a double-quoted string is one token.
fn tokenize(value: &str) -> Option<Vec<&str>> {
    let mut tokens = Vec::new();
    let bytes = value.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut quoted = false;
        while i < bytes.len() && (quoted || !bytes[i].is_ascii_whitespace()) {
            if bytes[i] == b'"' {
                quoted = !quoted;
            }
            i += 1;
        }
        if quoted {
            return None;
        }
        tokens.push(&value[start..i]);
    }
    Some(tokens)
}

/// What [`fix_profile`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProfileFix {
    /// Rewritten to the given directories.
    Rewritten,
    /// Already pointing where it should.
    Unchanged,
    /// Not understood: left as shipped, for this reason.
    LeftAlone(String),
}

/// Rewrite the profile text read from `from` (the file as shipped) to
/// `dirs`, into the file at `path` (staged; `shown` names it in errors).
pub fn fix_profile(
    from: &Path,
    path: &Path,
    shown: &Path,
    dirs: &ProfileDirs,
) -> Result<ProfileFix> {
    let io = |source| Error::Write {
        path: shown.to_owned(),
        source,
    };
    let bytes = std::fs::read(from).map_err(crate::error::read_error(shown))?;
    let Ok(text) = String::from_utf8(bytes) else {
        return Ok(ProfileFix::LeftAlone("it is not UTF-8 text".into()));
    };
    match rewrite_profile(&text, dirs) {
        Ok(Some(new)) => {
            // Replace, not write in place: the file may be a hard link.
            let tmp = path.with_extension("profile.redist-tmp");
            std::fs::write(&tmp, new).map_err(io)?;
            if let Ok(meta) = std::fs::metadata(path) {
                let _ = std::fs::set_permissions(&tmp, meta.permissions());
            }
            std::fs::rename(&tmp, path).map_err(io)?;
            Ok(ProfileFix::Rewritten)
        }
        Ok(None) => Ok(ProfileFix::Unchanged),
        Err(why) => Ok(ProfileFix::LeftAlone(why)),
    }
}

/// `$(_HERE_)/rel` for `dir` seen from the profile's directory `here`
/// (both under the same root).
pub fn here_relative(here: &Path, dir: &Path) -> String {
    let h: Vec<_> = here.components().collect();
    let d: Vec<_> = dir.components().collect();
    let common = h.iter().zip(&d).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["$(_HERE_)".into()];
    parts.extend(std::iter::repeat_n("..".to_owned(), h.len() - common));
    parts.extend(
        d[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    parts.join("/")
}

/// The `.run` installer's tree in a merged prefix: `targets/<triple>/include`
/// → `include`, `targets/<triple>/lib` → `lib`, and `lib64` → `lib`, for
/// the directories that exist. Returns the links made (relative to `root`).
pub fn link_targets(root: &Path, triple: &str) -> Result<Vec<String>> {
    let io = |p: &Path| {
        let p = p.to_owned();
        move |source| Error::Write { path: p, source }
    };
    let mut made = Vec::new();
    let target = root.join("targets").join(triple);
    for (name, to) in [("include", "../../include"), ("lib", "../../lib")] {
        if !root.join(name).is_dir() {
            continue;
        }
        let link = target.join(name);
        if std::fs::symlink_metadata(&link).is_ok() {
            continue;
        }
        std::fs::create_dir_all(&target).map_err(io(&target))?;
        std::os::unix::fs::symlink(to, &link).map_err(io(&link))?;
        made.push(format!("targets/{triple}/{name}"));
    }
    let lib64 = root.join("lib64");
    if root.join("lib").is_dir() && std::fs::symlink_metadata(&lib64).is_err() {
        std::os::unix::fs::symlink("lib", &lib64).map_err(io(&lib64))?;
        made.push("lib64".into());
    }
    Ok(made)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `bin/nvcc.profile` of NVIDIA's cuda_nvcc 13 redist archive.
    const CUDA13: &str = include_str!("../../../testdata/cuda/nvcc.profile");

    /// CUDA 12.x (12.4 and later).
    const CUDA12: &str = r#"
TOP              = $(_HERE_)/..

CICC_PATH        = $(TOP)/nvvm/bin
CICC_NEXT_PATH   = $(TOP)/nvvm-next/bin
NVVMIR_LIBRARY_DIR = $(TOP)/nvvm/libdevice

LD_LIBRARY_PATH += $(TOP)/lib:
PATH            += $(CICC_PATH):$(_HERE_):

INCLUDES        +=  "-I$(TOP)/$(_TARGET_DIR_)/include" $(_SPACE_)

LIBRARIES        =+ $(_SPACE_) "-L$(TOP)/$(_TARGET_DIR_)/lib$(_TARGET_SIZE_)/stubs" "-L$(TOP)/$(_TARGET_DIR_)/lib$(_TARGET_SIZE_)"

CUDAFE_FLAGS    +=
PTXAS_FLAGS     +=
"#;

    /// Older releases (11.x, early 12.x) name the NVVM directory through
    /// `$(_NVVM_BRANCH_)`.
    const NVVM_BRANCH: &str = r#"
TOP              = $(_HERE_)/..

NVVMIR_LIBRARY_DIR = $(TOP)/$(_NVVM_BRANCH_)/libdevice

LD_LIBRARY_PATH += $(TOP)/lib:
PATH            += $(TOP)/$(_NVVM_BRANCH_)/bin:$(_HERE_):

INCLUDES        +=  "-I$(TOP)/$(_TARGET_DIR_)/include" $(_SPACE_)

LIBRARIES        =+ $(_SPACE_) "-L$(TOP)/$(_TARGET_DIR_)/lib$(_TARGET_SIZE_)/stubs" "-L$(TOP)/$(_TARGET_DIR_)/lib$(_TARGET_SIZE_)"

CUDAFE_FLAGS    +=
PTXAS_FLAGS     +=
"#;

    fn dirs() -> ProfileDirs {
        ProfileDirs {
            includes: vec![
                "$(_HERE_)/../../include/include".into(),
                "/c/include".into(),
            ],
            cccl: vec!["/cccl/include/cccl".into()],
            libs: vec!["/cudart/lib/lib".into(), "/cudart/static/lib".into()],
            stubs: vec!["/cudart/stubs/lib/stubs".into()],
            nvvm: Some("/nvvm/out/nvvm".into()),
        }
    }

    #[test]
    fn cuda13_profile_points_at_every_tree() {
        let new = rewrite_profile(CUDA13, &dirs()).unwrap().unwrap();
        assert_eq!(
            new,
            r#"
TOP              = $(_HERE_)/..

CICC_PATH        = /nvvm/out/nvvm/bin
NVVMIR_LIBRARY_DIR = /nvvm/out/nvvm/libdevice

LD_LIBRARY_PATH += /cudart/lib/lib:/cudart/static/lib:
PATH            += $(CICC_PATH):$(_HERE_):

INCLUDES        +=  "-I$(_HERE_)/../../include/include" "-I/c/include" $(_SPACE_)
SYSTEM_INCLUDES +=  "-isystem" "/cccl/include/cccl" $(_SPACE_)

LIBRARIES        =+ $(_SPACE_) "-L/cudart/stubs/lib/stubs" "-L/cudart/lib/lib" "-L/cudart/static/lib"

CUDAFE_FLAGS    +=
PTXAS_FLAGS     +=
"#
        );
        // A second pass finds nothing of NVIDIA's left to rewrite.
        assert!(rewrite_profile(&new, &dirs()).is_err());
    }

    #[test]
    fn cuda12_profile_keeps_unknown_lines() {
        let new = rewrite_profile(CUDA12, &dirs()).unwrap().unwrap();
        assert!(
            new.contains("CICC_NEXT_PATH   = $(TOP)/nvvm-next/bin\n"),
            "{new}"
        );
        assert!(
            new.contains("CICC_PATH        = /nvvm/out/nvvm/bin\n"),
            "{new}"
        );
        assert!(new.contains("TOP              = $(_HERE_)/..\n"), "{new}");
        assert!(new.contains("CUDAFE_FLAGS    +=\n"), "{new}");
        assert!(!new.contains("$(_TARGET_DIR_)"), "{new}");
    }

    #[test]
    fn nvvm_branch_form_is_understood() {
        let new = rewrite_profile(NVVM_BRANCH, &dirs()).unwrap().unwrap();
        assert!(
            new.contains("NVVMIR_LIBRARY_DIR = /nvvm/out/nvvm/libdevice\n"),
            "{new}"
        );
        assert!(
            new.contains("PATH            += /nvvm/out/nvvm/bin:$(_HERE_):\n"),
            "{new}"
        );
        assert!(!new.contains("_NVVM_BRANCH_"), "{new}");
    }

    #[test]
    fn missing_directories_drop_their_flags() {
        let only_own = ProfileDirs {
            includes: vec!["$(_HERE_)/../include".into()],
            ..Default::default()
        };
        let new = rewrite_profile(CUDA13, &only_own).unwrap().unwrap();
        assert!(
            new.contains("SYSTEM_INCLUDES +=  $(_SPACE_)\n"),
            "no cccl, no dangling -isystem: {new}"
        );
        assert!(new.contains("LIBRARIES        =+ $(_SPACE_)\n"), "{new}");
        // Without an NVVM directory, NVIDIA's own path stays.
        assert!(
            new.contains("CICC_PATH        = $(TOP)/nvvm/bin\n"),
            "{new}"
        );
    }

    #[test]
    fn profiles_not_understood_are_refused() {
        for text in [
            "garbage without an equals sign $(TOP)\n",
            "INCLUDES += \"-I$(TOP)/include\n",
            "# only a comment\nFOO = bar\n",
            "PATH += $(TOP)/somewhere/else\n",
        ] {
            assert!(rewrite_profile(text, &dirs()).is_err(), "{text}");
        }
    }

    #[test]
    fn triples_follow_the_run_installer() {
        assert_eq!(target_triple("linux-x86_64"), Some("x86_64-linux"));
        assert_eq!(target_triple("linux-sbsa"), Some("sbsa-linux"));
        assert_eq!(target_triple("linux-aarch64"), Some("aarch64-linux"));
        assert_eq!(target_triple("windows-x86_64"), None);
    }

    #[test]
    fn here_relative_paths() {
        assert_eq!(
            here_relative(Path::new("/t/bin/bin"), Path::new("/t/include/include")),
            "$(_HERE_)/../../include/include"
        );
        assert_eq!(
            here_relative(Path::new("/t/bin"), Path::new("/t/nvvm")),
            "$(_HERE_)/../nvvm"
        );
    }
}
