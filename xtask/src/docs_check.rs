//! `cargo xtask docs-check [FILE…]`: every shell block of README.md,
//! docs/guide.md and docs/nix.md runs, in order, one shell per file, as a
//! reader would type it — against local copies of NVIDIA's server.
//!
//! - NVIDIA's address (`https://developer.download.nvidia.com/`) is
//!   rewritten to a file server on 127.0.0.1 that serves the manifests the
//!   docs name (`compute/cuda/redist/redistrib_12.9.1.json`,
//!   `…/redistrib_13.0.2.json`, `compute/cudnn/redist/redistrib_9.14.0.json`)
//!   made from the mirrors of NVIDIA's wheels (`cargo xtask mirror`).
//! - `HOME` is a fresh directory under `target/docs-check`, so `~/cuda-13`
//!   and the cache stay there; each document starts in a directory of its
//!   own in it (`~/readme`, `~/guide`, `~/nix`); `redist` is this
//!   checkout's release build.
//! - With `nix-build` on `PATH`, `<nixpkgs>` is a stand-in whose `glibc`
//!   (and `stdenv.cc.cc.lib`) is the system's loader and runtime libraries
//!   added to the store; the local store is used, sandboxed, without
//!   substituters.
//!
//! A comment before a block changes what happens to it:
//!
//! - `<!-- docs-check: file NAME -->` writes the block to `NAME` (in the
//!   shell's directory at that point) instead of running it;
//! - `<!-- docs-check: repo -->` runs it in the repository root;
//! - `<!-- docs-check: gpu -->` runs it only where a GPU is (`nvidia-smi -L`);
//! - `<!-- docs-check: skip REASON -->` does not run it; the reason is printed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use redist_fixtures::http::Server;
use serde_json::Value;

use crate::{build_release, cmake, cuda13_mirror, nvidia_mirror, root, set_mirror, Result};

const DOCS: [&str; 3] = ["README.md", "docs/guide.md", "docs/nix.md"];
const NVIDIA: &str = "https://developer.download.nvidia.com/";

/// One fenced block of a document.
#[derive(Debug, PartialEq)]
pub struct Block {
    /// 1-based line of the opening fence.
    pub line: usize,
    pub lang: String,
    pub text: String,
    pub directive: Directive,
}

#[derive(Debug, PartialEq)]
pub enum Directive {
    None,
    File(String),
    Repo,
    Gpu,
    Skip(String),
}

impl Block {
    fn is_shell(&self) -> bool {
        matches!(self.lang.as_str(), "sh" | "bash" | "shell" | "console")
    }
}

/// The fenced blocks of a Markdown text, each with the directive comment
/// that came before it.
pub fn blocks(text: &str) -> std::result::Result<Vec<Block>, String> {
    let mut out = Vec::new();
    let mut pending: Option<(usize, Directive)> = None;
    let mut open: Option<(usize, String, String)> = None;
    for (i, line) in text.lines().enumerate() {
        let n = i + 1;
        if let Some((start, lang, mut body)) = open.take() {
            if line.trim_start().starts_with("```") {
                let directive = pending.take().map(|(_, d)| d).unwrap_or(Directive::None);
                out.push(Block {
                    line: start,
                    lang,
                    text: body,
                    directive,
                });
            } else {
                body.push_str(line);
                body.push('\n');
                open = Some((start, lang, body));
            }
            continue;
        }
        let trimmed = line.trim();
        if let Some(fence) = trimmed.strip_prefix("```") {
            open = Some((n, fence.trim().to_owned(), String::new()));
        } else if let Some(rest) = trimmed.strip_prefix("<!-- docs-check:") {
            let words = rest
                .strip_suffix("-->")
                .ok_or(format!(
                    "line {n}: a docs-check comment ends on its line with -->"
                ))?
                .trim();
            let (verb, arg) = words.split_once(' ').unwrap_or((words, ""));
            let d = match (verb, arg.trim()) {
                ("file", name) if !name.is_empty() => Directive::File(name.to_owned()),
                ("repo", "") => Directive::Repo,
                ("gpu", "") => Directive::Gpu,
                ("skip", why) if !why.is_empty() => Directive::Skip(why.to_owned()),
                _ => {
                    return Err(format!(
                        "line {n}: unknown docs-check comment `{words}` (file NAME, repo, gpu, skip REASON)"
                    ))
                }
            };
            if let Some((at, _)) = pending {
                return Err(format!(
                    "line {at}: a docs-check comment with no block after it"
                ));
            }
            pending = Some((n, d));
        }
    }
    if let Some((start, ..)) = open {
        return Err(format!("line {start}: a block that is never closed"));
    }
    if let Some((at, _)) = pending {
        return Err(format!(
            "line {at}: a docs-check comment with no block after it"
        ));
    }
    Ok(out)
}

/// The shell script that runs a document's blocks in order, and the
/// blocks it leaves out with the reason.
pub fn script(doc: &str, blocks: &[Block], base: &str, gpu: bool) -> (String, Vec<String>) {
    let mut s = String::from(
        "set -e\n\
         trap '__rc=$?; { set +x; } 2>/dev/null; echo \"docs-check: $__where failed (exit $__rc) at line $((LINENO - __start)) of the block\" >&2' ERR\n",
    );
    // Each document starts in a directory of its own under HOME.
    let stem = Path::new(doc)
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    s.push_str(&format!(
        "mkdir -p \"$HOME/{stem}\" && cd \"$HOME/{stem}\"\n"
    ));
    let mut skipped = Vec::new();
    for b in blocks {
        let where_ = format!("{doc}:{}", b.line);
        let text = b.text.replace(NVIDIA, base);
        match &b.directive {
            Directive::Skip(why) => {
                if b.is_shell() {
                    skipped.push(format!("{where_}: {why}"));
                }
                continue;
            }
            Directive::File(name) => {
                s.push_str(&format!(
                    "cat > '{name}' <<'DOCS_CHECK_EOF'\n{text}DOCS_CHECK_EOF\n"
                ));
                continue;
            }
            Directive::Gpu if !gpu => {
                skipped.push(format!("{where_}: needs a GPU (none here)"));
                continue;
            }
            _ if !b.is_shell() => continue,
            _ => {}
        }
        let repo = b.directive == Directive::Repo;
        // The block's first line is the script's line `__start + 1`.
        let start = s.lines().count() + 3 + usize::from(repo);
        s.push_str(&format!(
            "__where='{where_}'; __start={start}\nprintf '\\n## %s\\n' '{where_}' >&2\n"
        ));
        if repo {
            s.push_str("pushd \"$REPO\" >/dev/null\n");
        }
        // Echo each command as the reader would see it.
        s.push_str("set -x\n");
        s.push_str(&text);
        s.push_str("{ set +x; } 2>/dev/null\n");
        if repo {
            s.push_str("popd >/dev/null\n");
        }
    }
    (s, skipped)
}

pub fn run(args: &[String]) -> Result {
    let docs: Vec<String> = if args.is_empty() {
        DOCS.iter().map(|d| d.to_string()).collect()
    } else {
        args.to_vec()
    };
    let repo = root();
    let release = build_release(&["redist-cli"])?;
    let sandbox = repo.join("target/docs-check");
    if sandbox.exists() {
        make_writable(&sandbox);
        fs::remove_dir_all(&sandbox).map_err(|e| format!("{}: {e}", sandbox.display()))?;
    }
    let home = sandbox.join("home");
    let www = sandbox.join("www");
    fs::create_dir_all(&home).map_err(|e| e.to_string())?;
    let cuda12 = nvidia_mirror()?;
    let cuda13 = cuda13_mirror()?;
    let set = set_mirror()?;
    let cuda = "compute/cuda/redist";
    serve_manifest(&www, cuda, "12.9.1", &[manifest_of(&cuda12, "cuda")?])?;
    serve_manifest(
        &www,
        cuda,
        "13.0.2",
        &[manifest_of(&cuda13, "cuda")?, manifest_of(&set, "cuda")?],
    )?;
    serve_manifest(
        &www,
        "compute/cudnn/redist",
        "9.14.0",
        &[manifest_of(&set, "cudnn")?],
    )?;
    let server = Server::start(www);
    let base = server.url("");
    eprintln!("docs-check: {NVIDIA} is {base} (the mirrors of NVIDIA's wheels)");

    let cmake = cmake()?;
    let mut path = vec![sandbox.join("cargo/bin"), release.clone()];
    if let Some(dir) = cmake.parent().filter(|d| !d.as_os_str().is_empty()) {
        path.push(dir.to_owned());
    }
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(path).map_err(|e| e.to_string())?;
    let real_home = PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/root".into()));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home.join(".cargo"));
    let rustup_home = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| real_home.join(".rustup"));
    let nixpkgs = if crate::on_path("nix-build") {
        Some(nixpkgs_stand_in(&sandbox)?)
    } else {
        None
    };
    let gpu = Command::new("nvidia-smi")
        .arg("-L")
        .output()
        .is_ok_and(|o| o.status.success());

    let mut skipped = Vec::new();
    let mut ran = 0;
    for doc in &docs {
        let text = fs::read_to_string(repo.join(doc)).map_err(|e| format!("{doc}: {e}"))?;
        let blocks = blocks(&text).map_err(|e| format!("{doc}: {e}"))?;
        let needs_nix = blocks
            .iter()
            .any(|b| b.is_shell() && b.text.contains("nix-"));
        if needs_nix && nixpkgs.is_none() {
            return Err(format!(
                "{doc} runs Nix: install nix-bin (apt-get install nix-bin)"
            ));
        }
        let (script, left_out) = script(doc, &blocks, &base, gpu);
        ran += blocks.iter().filter(|b| b.is_shell()).count() - left_out.len();
        skipped.extend(left_out);
        let file = sandbox.join(format!("{}.sh", doc.replace('/', "_")));
        fs::write(&file, &script).map_err(|e| format!("{}: {e}", file.display()))?;
        eprintln!("\ndocs-check: {doc} ({})", file.display());
        let mut cmd = Command::new("bash");
        cmd.arg(&file)
            .env("HOME", &home)
            .env("PATH", &path)
            .env("REPO", &repo)
            .env("CARGO_HOME", &cargo_home)
            .env("RUSTUP_HOME", &rustup_home)
            .env("CARGO_TARGET_DIR", repo.join("target"))
            .env("CARGO_INSTALL_ROOT", sandbox.join("cargo"))
            .env_remove("XDG_CACHE_HOME")
            .env_remove("REDIST_CACHE_DIR")
            .env_remove("REDIST_LINK_MODE")
            .env_remove("CUDA_HOME")
            .env_remove("LD_LIBRARY_PATH");
        if let Some(nixpkgs) = &nixpkgs {
            cmd.env("NIX_REMOTE", "")
                .env("NIX_PATH", format!("nixpkgs={}", nixpkgs.display()))
                .env(
                    "NIX_CONFIG",
                    "sandbox = true\nsubstituters =\nbuild-users-group =\n",
                );
        }
        crate::sh(&mut cmd).map_err(|_| format!("a block of {doc} failed (above)"))?;
    }
    eprintln!(
        "\ndocs-check: {ran} blocks ran, {} left out:",
        skipped.len()
    );
    for s in &skipped {
        eprintln!("  {s}");
    }
    make_writable(&sandbox);
    let _ = fs::remove_dir_all(&sandbox);
    Ok(())
}

/// The mirror's manifest of `product` (`cuda`, `cudnn`).
fn manifest_of(mirror: &Path, product: &str) -> Result<(PathBuf, Value)> {
    for e in fs::read_dir(mirror).map_err(|e| format!("{}: {e}", mirror.display()))? {
        let path = e.map_err(|e| e.to_string())?.path();
        if path.extension().is_some_and(|x| x == "json") {
            let v: Value = serde_json::from_slice(&fs::read(&path).map_err(|e| e.to_string())?)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            if v["release_product"] == product {
                return Ok((mirror.to_owned(), v));
            }
        }
    }
    Err(format!("{}: no {product} manifest", mirror.display()))
}

/// `www/DIR/redistrib_VERSION.json`: the components of the given mirrors'
/// manifests (the first one's where two have the same), their archives
/// linked at the manifest's relative paths.
fn serve_manifest(www: &Path, dir: &str, version: &str, from: &[(PathBuf, Value)]) -> Result {
    let mut merged = serde_json::Map::new();
    for (mirror, manifest) in from {
        let Value::Object(m) = manifest else {
            return Err(format!("{}: a manifest is an object", mirror.display()));
        };
        for (k, v) in m {
            if merged.contains_key(k) {
                continue;
            }
            let mut paths = Vec::new();
            relative_paths(v, &mut paths);
            for rel in paths {
                let link = www.join(dir).join(&rel);
                fs::create_dir_all(link.parent().expect("a file")).map_err(|e| e.to_string())?;
                std::os::unix::fs::symlink(mirror.join(&rel), &link)
                    .map_err(|e| format!("{}: {e}", link.display()))?;
            }
            merged.insert(k.clone(), v.clone());
        }
    }
    merged.insert("release_label".into(), version.into());
    let file = www.join(dir).join(format!("redistrib_{version}.json"));
    fs::create_dir_all(file.parent().expect("a file")).map_err(|e| e.to_string())?;
    fs::write(&file, serde_json::to_vec_pretty(&merged).expect("JSON"))
        .map_err(|e| format!("{}: {e}", file.display()))
}

fn relative_paths(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(p)) = m.get("relative_path") {
                out.push(p.clone());
            }
            m.values().for_each(|v| relative_paths(v, out));
        }
        Value::Array(a) => a.iter().for_each(|v| relative_paths(v, out)),
        _ => {}
    }
}

/// A `<nixpkgs>` with what docs/nix.md takes from it: `glibc` and
/// `stdenv.cc.cc.lib`, both the system's loader and runtime libraries
/// added to the store (there is no nixpkgs without the network).
fn nixpkgs_stand_in(sandbox: &Path) -> Result<PathBuf> {
    let glibc = sandbox.join("glibc");
    redist_fixtures::glibc_tree(&glibc).map_err(|e| e.to_string())?;
    let o = Command::new("nix-store")
        .arg("--add")
        .arg(&glibc)
        .env("NIX_REMOTE", "")
        .output()
        .map_err(|e| format!("nix-store: {e}"))?;
    if !o.status.success() {
        return Err(format!(
            "nix-store --add {}: {}",
            glibc.display(),
            String::from_utf8_lossy(&o.stderr)
        ));
    }
    let store_path = String::from_utf8_lossy(&o.stdout).trim().to_owned();
    let dir = sandbox.join("nixpkgs");
    fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    fs::write(
        dir.join("default.nix"),
        format!(
            "# A stand-in for nixpkgs (docs-check): the system's glibc and libstdc++ as one store path.\n\
             {{ ... }}: let glibc = builtins.storePath \"{store_path}\"; in {{\n  \
             inherit glibc;\n  stdenv.cc.cc.lib = glibc;\n}}\n"
        ),
    )
    .map_err(|e| e.to_string())?;
    Ok(dir)
}

/// Store entries are read-only: make a tree removable.
fn make_writable(dir: &Path) {
    let _ = Command::new("chmod").arg("-R").arg("u+w").arg(dir).status();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_and_directives() {
        let md =
            "text\n```sh\necho a\n```\n<!-- docs-check: file x.cu -->\n```cuda\nint main;\n```\n\
                  <!-- docs-check: skip needs ssh -->\n\n```sh\nssh x\n```\n```text\nout\n```\n";
        let b = blocks(md).unwrap();
        assert_eq!(b.len(), 4);
        assert_eq!(
            (b[0].line, b[0].lang.as_str(), b[0].text.as_str()),
            (2, "sh", "echo a\n")
        );
        assert_eq!(b[1].directive, Directive::File("x.cu".into()));
        assert_eq!(b[2].directive, Directive::Skip("needs ssh".into()));
        assert_eq!(b[3].directive, Directive::None);
        let (s, skipped) = script("d.md", &b, "http://127.0.0.1:1/", false);
        assert!(s.contains("echo a\n"));
        assert!(s.contains("cat > 'x.cu' <<'DOCS_CHECK_EOF'\nint main;\nDOCS_CHECK_EOF\n"));
        assert!(!s.contains("ssh x") && !s.contains("\nout\n"));
        assert_eq!(skipped, ["d.md:11: needs ssh"]);
    }

    #[test]
    fn bad_comments_are_errors() {
        assert!(blocks("<!-- docs-check: skip -->\n```sh\nx\n```\n").is_err());
        assert!(blocks("<!-- docs-check: file a -->\n").is_err());
        assert!(blocks("```sh\nx\n").is_err());
        assert!(blocks("<!-- docs-check: frobnicate -->\n```sh\nx\n```\n").is_err());
    }

    #[test]
    fn the_address_is_rewritten() {
        let b = blocks("```sh\nredist list --manifest https://developer.download.nvidia.com/compute/x.json\n```\n").unwrap();
        let (s, _) = script("d.md", &b, "http://127.0.0.1:9/", false);
        assert!(s.contains("--manifest http://127.0.0.1:9/compute/x.json"));
    }
}
