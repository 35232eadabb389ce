//! Where a staged tree will finally live: under one root (`DIR/lib/lib/…`,
//! an install prefix), or one directory per output (Nix store paths:
//! `$lib/lib/…`, `$dev/share/pkgconfig/…`). pkg-config fixups and absolute
//! RUNPATHs name final paths, so they ask a `Placement`.

use std::collections::BTreeMap;
use std::path::PathBuf;

/// The final location of a tree staged elsewhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The root the tree's relative paths are under.
    pub root: PathBuf,
    /// When set, the first component of a relative path names an output,
    /// which lives at this directory instead of `root/<output>`.
    pub outputs: Option<BTreeMap<String, PathBuf>>,
}

impl Placement {
    /// A tree that ends up under `root` as it is.
    pub fn root(root: impl Into<PathBuf>) -> Placement {
        Placement {
            root: root.into(),
            outputs: None,
        }
    }

    /// The final absolute path of `rel` (relative to the staged tree's root).
    pub fn path(&self, rel: &str) -> String {
        if let Some(outputs) = &self.outputs {
            let (first, rest) = rel.split_once('/').unwrap_or((rel, ""));
            if let Some(dir) = outputs.get(first) {
                return if rest.is_empty() {
                    dir.display().to_string()
                } else {
                    dir.join(rest).display().to_string()
                };
            }
        }
        if rel.is_empty() {
            self.root.display().to_string()
        } else {
            self.root.join(rel).display().to_string()
        }
    }

    /// The output directory `rel` lies in, when outputs are separate.
    pub fn output_of<'a>(&self, rel: &'a str) -> Option<&'a str> {
        let first = rel.split('/').next()?;
        self.outputs.as_ref()?.contains_key(first).then_some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outputs_map_to_their_own_directories() {
        let p = Placement {
            root: "/build/tree".into(),
            outputs: Some(BTreeMap::from([(
                "lib".into(),
                "/nix/store/aaa-x-lib".into(),
            )])),
        };
        assert_eq!(
            p.path("lib/lib/libx.so"),
            "/nix/store/aaa-x-lib/lib/libx.so"
        );
        assert_eq!(p.path("lib"), "/nix/store/aaa-x-lib");
        assert_eq!(p.path("bin/bin/x"), "/build/tree/bin/bin/x");
        assert_eq!(Placement::root("/p").path(""), "/p");
        assert_eq!(p.output_of("lib/lib/x"), Some("lib"));
        assert_eq!(p.output_of("bin/x"), None);
    }
}
