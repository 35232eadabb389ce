//! Layout rules: where each archive path goes.
//!
//! Rules are data — a built-in TOML table (`default-rules.toml`), replaceable
//! by a user file — compiled once into regexes and glob sets. Routing is a
//! pure function of the path, so a symlink's target can be routed before the
//! target itself has been seen.

use std::borrow::Cow;
use std::path::Path;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};
use regex::Regex;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const BUILTIN: &str = include_str!("default-rules.toml");

/// The rules as written in a rules file.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    /// Path rewrites applied, in order, before routing.
    #[serde(default)]
    pub rename: Vec<RenameRule>,
    /// Outputs tried in order; the first whose globs match wins.
    #[serde(default)]
    pub output: Vec<OutputRule>,
    /// The output for paths no rule matches.
    pub default: String,
    /// Where the rules came from (a file's path, or `built-in`), for
    /// messages about them.
    #[serde(skip)]
    pub origin: String,
}

/// A regex rewrite of entry paths.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RenameRule {
    /// Regular expression matched against the path.
    pub pattern: String,
    /// Replacement (`$1` refers to capture groups).
    pub replace: String,
}

/// An output and the globs that route paths to it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct OutputRule {
    /// Output name; also its directory name in a split layout.
    pub name: String,
    /// Globs over the renamed path.
    #[serde(rename = "match")]
    pub globs: Vec<String>,
}

impl Rules {
    /// The built-in, nixpkgs-compatible table.
    pub fn builtin() -> Rules {
        Rules::parse_toml(BUILTIN, "built-in").expect("the built-in rules parse")
    }

    /// The built-in table as TOML, as `redist rules` prints it.
    pub fn builtin_source() -> &'static str {
        BUILTIN
    }

    /// The rules file at `path`, or the built-in table: what every command
    /// and the Nix builder use.
    pub fn load(path: Option<&Path>) -> Result<Rules> {
        match path {
            Some(p) => Rules::from_file(p),
            None => Ok(Rules::builtin()),
        }
    }

    /// Read a rules file: JSON when it ends in `.json`, TOML otherwise.
    pub fn from_file(path: &Path) -> Result<Rules> {
        let origin = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| rules_error(&origin, None, e))?;
        if path.extension().is_some_and(|e| e == "json") {
            let mut rules: Rules =
                serde_json::from_str(&text).map_err(|e| rules_error(&origin, None, e))?;
            rules.origin = origin;
            Ok(rules)
        } else {
            Rules::parse_toml(&text, &origin)
        }
    }

    fn parse_toml(text: &str, origin: &str) -> Result<Rules> {
        let mut rules: Rules = toml::from_str(text).map_err(|e| rules_error(origin, None, e))?;
        rules.origin = origin.to_owned();
        Ok(rules)
    }
}

/// One tree per output (`DIR/lib/...`, `DIR/bin/...`) or everything in one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `DIR/<output>/<path>`.
    #[default]
    Split,
    /// `DIR/<path>`: what the `.run` installer would have produced.
    Merged,
}

impl Mode {
    /// The name `--layout` and the reports use.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Merged => "merged",
            Mode::Split => "split",
        }
    }
}

/// Compiled rules, ready to route paths.
#[derive(Debug, Clone)]
pub struct Layout {
    renames: Vec<(Regex, String)>,
    outputs: Vec<(String, GlobSet)>,
    default: String,
    mode: Mode,
}

/// Where one path goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route<'a> {
    /// Output name (`lib`, `bin`, …).
    pub output: &'a str,
    /// Path inside that output.
    pub path: String,
}

impl Layout {
    /// Compile `rules`, checking every regex, glob and output name.
    pub fn new(rules: &Rules, mode: Mode) -> Result<Layout> {
        let origin = rules.origin.as_str();
        let bad = |what: String| Error::Rules {
            origin: origin.to_owned(),
            what: Some(what),
            cause: None,
        };
        let mut renames = Vec::new();
        for r in &rules.rename {
            let re = Regex::new(&r.pattern).map_err(|e| {
                rules_error(origin, Some(format!("rename pattern `{}`", r.pattern)), e)
            })?;
            renames.push((re, r.replace.clone()));
        }
        let mut outputs = Vec::new();
        for o in &rules.output {
            check_output_name(&o.name).map_err(&bad)?;
            let mut set = GlobSetBuilder::new();
            for g in &o.globs {
                let glob = GlobBuilder::new(g)
                    .literal_separator(true)
                    .build()
                    .map_err(|e| {
                        rules_error(origin, Some(format!("output `{}`: glob `{g}`", o.name)), e)
                    })?;
                set.add(glob);
            }
            let set = set
                .build()
                .map_err(|e| rules_error(origin, Some(format!("output `{}`", o.name)), e))?;
            outputs.push((o.name.clone(), set));
        }
        check_output_name(&rules.default).map_err(&bad)?;
        Ok(Layout {
            renames,
            outputs,
            default: rules.default.clone(),
            mode,
        })
    }

    /// The built-in rules in the given mode.
    pub fn builtin(mode: Mode) -> Layout {
        Layout::new(&Rules::builtin(), mode).expect("the built-in rules compile")
    }

    /// Split or merged.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Every output name the rules can produce, in rule order.
    pub fn output_names(&self) -> impl Iterator<Item = &str> {
        self.outputs
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(std::iter::once(self.default.as_str()))
    }

    /// The directory of an output relative to the unpack root: its name when
    /// split, the root itself when merged.
    pub fn output_dir<'a>(&self, output: &'a str) -> &'a str {
        match self.mode {
            Mode::Split => output,
            Mode::Merged => "",
        }
    }

    /// Route a file path (archive root already stripped).
    pub fn route(&self, path: &str) -> Route<'_> {
        let mut path = Cow::Borrowed(path);
        for (re, replace) in &self.renames {
            if let Cow::Owned(s) = re.replace(&path, replace.as_str()) {
                path = Cow::Owned(s);
            }
        }
        let output = self
            .outputs
            .iter()
            .find(|(_, set)| set.is_match(path.as_ref()))
            .map(|(n, _)| n.as_str())
            .unwrap_or(&self.default);
        Route {
            output,
            path: path.into_owned(),
        }
    }

    /// Route a directory: where its contents would go (`lib` → the lib
    /// output's `lib`), used for symlinks that point at directories.
    pub fn route_dir(&self, dir: &str) -> Route<'_> {
        let Route { output, path } = self.route(&format!("{dir}/\u{1}"));
        let path = match path.strip_suffix("/\u{1}") {
            Some(p) => p.to_owned(),
            None => path,
        };
        Route { output, path }
    }
}

/// Compile user globs (`--only`, `--ignore-missing`, `ignoreMissing`);
/// `None` when there are none. `origin` names the flag in errors.
/// `*` stays within one path component.
pub fn glob_set(patterns: &[String], origin: &str) -> Result<Option<GlobSet>> {
    if patterns.is_empty() {
        return Ok(None);
    }
    let mut set = GlobSetBuilder::new();
    for g in patterns {
        let glob = GlobBuilder::new(g)
            .literal_separator(true)
            .build()
            .map_err(|e| rules_error(origin, Some(format!("glob `{g}`")), e))?;
        set.add(glob);
    }
    set.build()
        .map(Some)
        .map_err(|e| rules_error(origin, None, e))
}

/// A rules error caused by a parser's (or the file system's) error.
fn rules_error(
    origin: &str,
    what: Option<String>,
    cause: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    Error::Rules {
        origin: origin.to_owned(),
        what,
        cause: Some(Box::new(cause)),
    }
}

fn check_output_name(name: &str) -> std::result::Result<(), String> {
    let ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "output name `{name}` must be letters, digits, `_` or `-`"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> (String, String) {
        let l = Layout::builtin(Mode::Split);
        let r = l.route(path);
        (r.output.to_owned(), r.path)
    }

    #[test]
    fn builtin_rules_route_like_nixpkgs() {
        let cases = [
            ("bin/nvcc", "bin", "bin/nvcc"),
            ("lib/libcudart.so.12", "lib", "lib/libcudart.so.12"),
            ("lib64/libcupti.so", "lib", "lib/libcupti.so"),
            ("lib/12/libcutensor.so", "lib", "lib/libcutensor.so"),
            ("lib/libcudart_static.a", "static", "lib/libcudart_static.a"),
            ("lib/stubs/libcuda.so", "stubs", "lib/stubs/libcuda.so"),
            (
                "pkg-config/cudart-12.9.pc",
                "dev",
                "share/pkgconfig/cudart-12.9.pc",
            ),
            (
                "lib/cmake/foo/foo-config.cmake",
                "dev",
                "lib/cmake/foo/foo-config.cmake",
            ),
            ("include/cuda.h", "include", "include/cuda.h"),
            (
                "include/crt/host_config.h",
                "include",
                "include/crt/host_config.h",
            ),
            ("share/doc/x/README", "doc", "share/doc/x/README"),
            ("LICENSE", "doc", "LICENSE"),
            ("samples/a/b.cu", "samples", "samples/a/b.cu"),
            (
                "python/foo-1.0-py3-none-any.whl",
                "python",
                "python/foo-1.0-py3-none-any.whl",
            ),
            ("nvvm/lib64/libnvvm.so", "out", "nvvm/lib64/libnvvm.so"),
            (
                "nvvm/libdevice/libdevice.10.bc",
                "out",
                "nvvm/libdevice/libdevice.10.bc",
            ),
            ("version.json", "out", "version.json"),
        ];
        for (path, output, inner) in cases {
            assert_eq!(route(path), (output.into(), inner.into()), "{path}");
        }
    }

    #[test]
    fn directories_route_by_their_contents() {
        let l = Layout::builtin(Mode::Split);
        let r = l.route_dir("lib64");
        assert_eq!((r.output, r.path.as_str()), ("lib", "lib"));
    }

    #[test]
    fn bad_rules_name_the_problem() {
        let rules = Rules {
            rename: vec![],
            output: vec![OutputRule {
                name: "../x".into(),
                globs: vec![],
            }],
            default: "out".into(),
            origin: "r.toml".into(),
        };
        let e = Layout::new(&rules, Mode::Split).unwrap_err();
        assert!(e.to_string().contains("output name `../x`"), "{e}");
        let rules = Rules {
            rename: vec![RenameRule {
                pattern: "(".into(),
                replace: String::new(),
            }],
            output: vec![],
            default: "out".into(),
            origin: "r.toml".into(),
        };
        let e = Layout::new(&rules, Mode::Split).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("invalid layout rules r.toml: rename pattern `(`"),
            "{e}"
        );
    }
}
