//! Fixups applied to the staged tree after unpacking, before publishing.
//!
//! - pkg-config files: `cudaroot=`, `libdir=` and `includedir=` point at
//!   the real output directories, and `cudart.pc` is added as a link to
//!   `cudart-12.9.pc`.
//! - `lib/stubs/libcuda.so.1` → `libcuda.so`: programs record the SONAME
//!   `libcuda.so.1`, so linking against the stub needs that name too.
//!
//! Path moves (`pkg-config/` → `share/pkgconfig/`, `lib64/` and `lib/<major>/`
//! → `lib/`) are layout rename rules, applied while writing.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};
use crate::layout::Layout;
use crate::unpack::{join, parent, relative, Node, NodeKind, Tree};

/// Apply every fixup to `tree`, staged at `staging`; `placement` says where
/// each output finally lives. Returns one line per change, for the report.
///
/// With `relocatable`, pkg-config paths are written relative to the `.pc`
/// file's own directory (`${pcfiledir}/../../lib`), so the tree can move.
pub fn apply(
    tree: &mut Tree,
    layout: &Layout,
    staging: &Path,
    placement: &crate::Placement,
    relocatable: bool,
) -> Result<Vec<String>> {
    let mut done = Vec::new();
    let mut pcs: Vec<String> = tree
        .nodes
        .iter()
        .filter(|(d, n)| d.ends_with(".pc") && n.kind == NodeKind::File)
        .map(|(d, _)| d.clone())
        .collect();
    pcs.sort();
    let dir_of = |dir: &str| {
        let r = layout.route_dir(dir);
        join(layout.output_dir(r.output), &r.path)
    };
    // cudaroot is the output holding the .pc files (nixpkgs: the dev output).
    let targets = [
        layout
            .output_dir(layout.route_dir("share/pkgconfig").output)
            .to_owned(),
        dir_of("lib"),
        dir_of("include"),
    ];
    for dest in &pcs {
        let [cudaroot, libdir, includedir] = targets.clone().map(|rel| {
            if relocatable {
                format!("${{pcfiledir}}/{}", relative(parent(dest), &rel))
            } else {
                placement.path(&rel)
            }
        });
        let values = PkgConfigDirs {
            cudaroot,
            libdir,
            includedir,
        };
        let abs = staging.join(dest);
        let shown = placement.root.join(dest);
        let text = fs::read_to_string(&abs).map_err(crate::error::read_error(&shown))?;
        if let Some(new) = rewrite_pkg_config(&text, &values) {
            fs::write(&abs, new).map_err(crate::error::write_error(&shown))?;
            done.push(format!(
                "{dest}: cudaroot, libdir and includedir point at the outputs"
            ));
        }
        if let Some(link) = unversioned_pc(dest) {
            if !tree.nodes.contains_key(&link) {
                add_symlink(tree, staging, &placement.root, dest, &link)?;
                done.push(format!("{link} -> {}", relative(parent(&link), dest)));
            }
        }
    }
    let stubs: Vec<String> = tree
        .nodes
        .keys()
        .filter(|d| d.ends_with("/stubs/libcuda.so"))
        .cloned()
        .collect();
    for stub in stubs {
        let link = format!("{stub}.1");
        if !tree.nodes.contains_key(&link) {
            add_symlink(tree, staging, &placement.root, &stub, &link)?;
            done.push(format!("{link} -> libcuda.so"));
        }
    }
    Ok(done)
}

/// Absolute directories written into pkg-config files.
struct PkgConfigDirs {
    cudaroot: String,
    libdir: String,
    includedir: String,
}

/// Rewrite the three variables; `None` when nothing changes.
fn rewrite_pkg_config(text: &str, dirs: &PkgConfigDirs) -> Option<String> {
    let mut out = String::with_capacity(text.len() + 256);
    let mut changed = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let eol = &line[body.len()..];
        let key = body.split_once('=').map(|(k, _)| k.trim());
        let value = match key {
            Some("cudaroot") => Some(&dirs.cudaroot),
            Some("libdir") => Some(&dirs.libdir),
            Some("includedir") => Some(&dirs.includedir),
            _ => None,
        };
        match (key, value) {
            (Some(k), Some(v)) => {
                let new = format!("{k}={v}");
                changed |= new != body;
                out.push_str(&new);
                out.push_str(eol);
            }
            _ => out.push_str(line),
        }
    }
    changed.then_some(out)
}

/// [`rewrite_pkg_config`] with the three values given one by one (for the
/// fuzz targets).
#[cfg(feature = "fuzzing")]
pub fn rewrite_pkg_config_with(
    text: &str,
    cudaroot: &str,
    libdir: &str,
    includedir: &str,
) -> Option<String> {
    let dirs = PkgConfigDirs {
        cudaroot: cudaroot.to_owned(),
        libdir: libdir.to_owned(),
        includedir: includedir.to_owned(),
    };
    rewrite_pkg_config(text, &dirs)
}

/// `…/cudart-12.9.pc` → `…/cudart.pc`.
fn unversioned_pc(dest: &str) -> Option<String> {
    let stem = dest.strip_suffix(".pc")?;
    let (name, version) = stem.rsplit_once('-')?;
    let versioned = !version.is_empty()
        && version
            .split('.')
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()));
    (versioned && !name.ends_with('/')).then(|| format!("{name}.pc"))
}

fn add_symlink(
    tree: &mut Tree,
    staging: &Path,
    final_root: &Path,
    target: &str,
    link: &str,
) -> Result<()> {
    let written = relative(parent(link), target);
    std::os::unix::fs::symlink(&written, staging.join(link)).map_err(|source| Error::Write {
        path: final_root.join(link),
        source,
    })?;
    let output = tree
        .nodes
        .get(target)
        .map(|n| n.output.clone())
        .unwrap_or_default();
    tree.nodes.insert(
        link.to_owned(),
        Node {
            archive: String::new(),
            output,
            kind: NodeKind::Symlink {
                target: target.to_owned(),
                written,
            },
            size: 0,
            elf: false,
        },
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkg_config_variables_point_at_outputs() {
        let text = "cudaroot=/usr/local/cuda-12.9\nlibdir=${cudaroot}/targets/x86_64-linux/lib\nincludedir=${cudaroot}/targets/x86_64-linux/include\n\nName: cudart\nLibs: -L${libdir} -lcudart\n";
        let dirs = PkgConfigDirs {
            cudaroot: "/o/dev".into(),
            libdir: "/o/lib/lib".into(),
            includedir: "/o/include/include".into(),
        };
        assert_eq!(
            rewrite_pkg_config(text, &dirs).unwrap(),
            "cudaroot=/o/dev\nlibdir=/o/lib/lib\nincludedir=/o/include/include\n\nName: cudart\nLibs: -L${libdir} -lcudart\n"
        );
        assert_eq!(rewrite_pkg_config("Name: x\n", &dirs), None);
    }

    #[test]
    fn unversioned_names() {
        assert_eq!(
            unversioned_pc("dev/share/pkgconfig/cudart-12.9.pc").as_deref(),
            Some("dev/share/pkgconfig/cudart.pc")
        );
        assert_eq!(
            unversioned_pc("a/nvjitlink-12.pc").as_deref(),
            Some("a/nvjitlink.pc")
        );
        assert_eq!(unversioned_pc("a/cudart.pc"), None);
        assert_eq!(unversioned_pc("a/foo-bar.pc"), None);
    }
}
