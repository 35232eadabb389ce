//! The human summary of a [`redist::Report`].

use std::fmt::Write;

use redist::Report;

/// `1.4 MiB`, `312 B`.
pub fn size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// The report as a few aligned tables.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "unpacked {} ({}, {}) into {}",
        r.archive,
        r.format,
        size(r.bytes_in),
        r.out_dir.display()
    );
    match &r.root {
        Some(root) => {
            let _ = writeln!(s, "  stripped top directory {root}/");
        }
        None if !r.top_level.is_empty() => {
            let _ = writeln!(
                s,
                "  no single top directory; kept: {}",
                r.top_level.join(", ")
            );
        }
        None => {}
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  {:<10} {:>6} {:>8} {:>9} {:>10}  dir",
        "output", "files", "symlinks", "hardlinks", "bytes"
    );
    for (name, o) in &r.outputs {
        let dir = if o.dir.is_empty() {
            ".".to_owned()
        } else {
            o.dir.clone()
        };
        let _ = writeln!(
            s,
            "  {:<10} {:>6} {:>8} {:>9} {:>10}  {}",
            name,
            o.files,
            o.symlinks,
            o.hardlinks,
            size(o.bytes),
            dir
        );
    }
    let _ = writeln!(s);
    let _ = writeln!(s, "  ELF files: {}", r.elf_files.len());
    for f in &r.elf_files {
        let _ = writeln!(s, "    {f}");
    }
    if !r.fixups.is_empty() {
        let _ = writeln!(s, "  fixups:");
        for f in &r.fixups {
            let _ = writeln!(s, "    {f}");
        }
    }
    if let Some(ap) = &r.autopatch {
        let changed = ap.files.iter().filter(|f| f.changed).count();
        let _ = writeln!(
            s,
            "  autopatch: {} ELF files linked ({changed} changed), {} skipped",
            ap.files.len(),
            ap.skipped.len()
        );
        for f in ap.files.iter().filter(|f| f.changed) {
            let _ = writeln!(
                s,
                "    {}: {} {}",
                f.path,
                f.tag.map_or("RUNPATH", |t| match t {
                    redist::SearchTag::Runpath => "RUNPATH",
                    redist::SearchTag::Rpath => "RPATH",
                }),
                f.runpath.as_deref().unwrap_or("(none)")
            );
        }
        for f in ap.files.iter().filter(|f| !f.changed) {
            if f.tag == Some(redist::SearchTag::Rpath) {
                let _ = writeln!(
                    s,
                    "    {}: unchanged, keeps DT_RPATH {}",
                    f.path,
                    f.runpath.as_deref().unwrap_or("")
                );
            }
        }
        let driver: Vec<&str> = ap
            .files
            .iter()
            .flat_map(|f| {
                f.needs
                    .iter()
                    .filter(|(_, r)| **r == redist::Resolution::Driver)
                    .map(|(n, _)| n.as_str())
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        if !driver.is_empty() {
            let _ = writeln!(
                s,
                "    from the GPU driver at run time: {}",
                driver.join(", ")
            );
        }
        for k in &ap.skipped {
            let _ = writeln!(s, "    {}: skipped, {}", k.path, k.reason);
        }
        for (file, lib) in &ap.ignored {
            let _ = writeln!(
                s,
                "    warning: {file}: {lib} left unresolved (--ignore-missing)"
            );
        }
    }
    let _ = writeln!(s);
    let _ = writeln!(
        s,
        "  {} in, {} decoded, {} written ({} decoder thread{})",
        size(r.bytes_in),
        size(r.bytes_decoded),
        size(r.bytes_written),
        r.decoder_threads,
        if r.decoder_threads == 1 { "" } else { "s" }
    );
    let _ = writeln!(s, "  {:<8} {:>9} {:>10}", "stage", "seconds", "MiB/s");
    let st = &r.stages;
    for (name, stage) in [
        ("decode", &st.decode),
        ("write", &st.write),
        ("fixups", &st.fixups),
        ("total", &st.total),
    ] {
        let rate = if stage.mib_per_s > 0.0 {
            format!("{:.1}", stage.mib_per_s)
        } else {
            "-".into()
        };
        let _ = writeln!(s, "  {:<8} {:>9.3} {:>10}", name, stage.seconds, rate);
    }
    s
}

/// `-v`: each ELF file's RUNPATH, and every library it needs with where
/// it was found.
pub fn needs(ap: &redist::AutopatchReport) -> String {
    let mut s = String::from("  how each ELF file finds its libraries:\n");
    for f in &ap.files {
        let _ = writeln!(
            s,
            "    {}: RUNPATH {}{}",
            f.path,
            f.runpath.as_deref().unwrap_or("(none)"),
            f.interpreter
                .as_deref()
                .map(|i| format!(", interpreter {i}"))
                .unwrap_or_default()
        );
        for (lib, found) in &f.needs {
            let from = match found {
                redist::Resolution::Own(dir) => format!("its own tree: {dir}"),
                redist::Resolution::Dep(dir) => format!("--dep {}", dir.display()),
                redist::Resolution::Runpath(dir) => {
                    format!("its own RUNPATH: {}", dir.display())
                }
                redist::Resolution::System(dir) => format!("the system: {}", dir.display()),
                redist::Resolution::Driver => "the GPU driver, at run time".to_owned(),
                redist::Resolution::Ignored => "unresolved (--ignore-missing)".to_owned(),
            };
            let _ = writeln!(s, "      {lib:<32} {from}");
        }
    }
    for k in &ap.skipped {
        let _ = writeln!(s, "    {}: skipped ({})", k.path, k.reason);
    }
    s
}
