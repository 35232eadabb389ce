//! `list`, `fetch`, `install`, `features`: flags → library calls → output.

use std::io::Write;

use redist::{Error, InstallOptions, Layout, Mode, Origin, Rules};

use crate::table::size;
use crate::{FeaturesArgs, FetchArgs, InstallArgs, ListArgs, NixExprArgs};

fn print_json(v: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

pub fn list(args: ListArgs) -> Result<(), Error> {
    let source = args.source.open()?;
    let platform = args.source.platform()?;
    let cuda = args.source.cuda(&source, None)?;
    let rows = source.list(&platform, args.source.variant.as_deref(), cuda.as_ref());
    if args.json {
        print_json(&serde_json::json!({
            "manifest": source.label(),
            "products": source.products.iter().map(|p| &p.name).collect::<Vec<_>>(),
            "cuda": cuda,
            "platform": platform,
            "components": sorted(&rows),
        }));
        return Ok(());
    }
    println!(
        "{} for {platform}: {} components{}",
        source.label(),
        rows.len(),
        cuda.as_ref()
            .filter(|_| source.products.len() > 1 || source.cuda().is_none())
            .map(|c| format!("; add-ons for CUDA {} ({})", c.label, c.from))
            .unwrap_or_default()
    );
    let set = source.products.len() > 1;
    let name = |r: &redist::ListRow| {
        if set {
            format!("{}:{}", r.product, r.component)
        } else {
            r.component.clone()
        }
    };
    let width = rows
        .iter()
        .map(|r| name(r).len())
        .max()
        .unwrap_or(0)
        .max(28);
    println!(
        "{:<width$} {:<14} {:>10}  notes",
        "component", "version", "size"
    );
    for r in &rows {
        let mut notes = Vec::new();
        if r.platform != platform {
            notes.push(format!("from {}", r.platform));
        }
        if !r.variants.is_empty() {
            let variants: Vec<String> = r
                .variants
                .iter()
                .map(|v| format!("{} ({})", v.variant, size(v.size)))
                .collect();
            notes.push(format!("variants: {}", variants.join(", ")));
        }
        match (&r.variant, &r.why) {
            (Some(v), Some(why)) => notes.push(format!("takes {v}: {why}")),
            (None, Some(why)) => notes.push(why.clone()),
            _ => {}
        }
        if !r.installable {
            notes.push("Windows .zip: not installable".into());
        }
        let sz = r.size.map(size).unwrap_or_else(|| "-".into());
        println!(
            "{:<width$} {:<14} {:>10}  {}",
            name(r),
            r.version,
            sz,
            notes.join("; ")
        );
    }
    Ok(())
}

/// `v` as JSON with its keys sorted, as every `--json` output has them.
fn sorted(v: &impl serde::Serialize) -> serde_json::Value {
    serde_json::to_value(v).unwrap_or_default()
}

pub fn fetch(args: FetchArgs) -> Result<(), Error> {
    let (source, selected) = args.source.select(&args.components, args.all, None)?;
    let reporter = crate::progress::Components::new(args.quiet || args.json);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
    }
    let mut rows = Vec::new();
    for sel in &selected {
        rows.push(source.fetch(sel, args.out.as_deref(), &reporter)?);
    }
    if args.json {
        print_json(&sorted(&rows));
    } else if !args.quiet {
        for r in &rows {
            let at = r
                .out
                .as_ref()
                .or(r.cache.as_ref())
                .map_or("(verified, not kept)".into(), |p| p.display().to_string());
            println!(
                "{} {}: verified ({}) {}",
                r.component,
                r.version,
                size(r.size),
                at
            );
        }
    }
    Ok(())
}

pub fn install(args: InstallArgs, verbose: bool) -> Result<(), Error> {
    let (source, selected) = args
        .source
        .select(&args.components, args.all, Some(&args.prefix))?;
    let only = redist::glob_set(&args.only, "--only")?;
    let opts = InstallOptions {
        prefix: args.prefix.clone(),
        layout: args.layout.into(),
        rules: Rules::load(args.rules.as_deref())?,
        only,
        jobs: args.jobs.unwrap_or_else(redist::default_threads),
        decoder_threads: redist::default_threads() as u32,
        autopatch: args.patch.options()?,
        wait: !args.no_wait,
        durable: !args.no_fsync,
        store: !args.no_store,
        link_mode: args.link_mode.into(),
        memory_limit: args.memory_limit,
    };
    let reporter =
        crate::progress::Components::new(args.quiet || args.json).with_notes(!args.quiet);
    let report = redist::install(&source, &selected, &opts, &reporter)?;
    if args.json {
        print_json(&report);
    } else if !args.quiet {
        if report.unchanged {
            println!(
                "already installed in {}: nothing to do",
                report.prefix.display()
            );
        } else {
            println!(
                "installed into {} ({:.2}s)",
                report.prefix.display(),
                report.seconds
            );
        }
        for c in &report.components {
            let how = match c.origin {
                Some(Origin::Cache) => "from the cache",
                Some(Origin::Download) => "downloaded",
                Some(Origin::Local) => "from the mirror directory",
                Some(Origin::Store) => "linked from the store",
                None => "already installed",
            };
            let how = match &c.store {
                Some(s) if s.action == redist::StoreAction::Linked => match &s.linked {
                    Some(l) if l.mode != redist::LinkMode::Hardlink || l.copied > 0 => {
                        format!("{how} ({})", linked_words(l))
                    }
                    _ => how.to_owned(),
                },
                Some(s) if s.action == redist::StoreAction::Stored => {
                    format!("{how}, kept in the store")
                }
                _ => how.to_owned(),
            };
            let variant = match (&c.variant, &c.variant_reason) {
                (Some(v), Some(why)) => format!("; variant {v}: {why}"),
                (Some(v), None) => format!("; variant {v}"),
                _ => String::new(),
            };
            println!(
                "  {:<28} {:<14} {:>6} files  {how}{variant}",
                c.component, c.version, c.files
            );
        }
        match report.layout {
            Mode::Merged if !report.toolkit.is_empty() => println!(
                "  the .run installer's layout: {} (links)",
                report.toolkit.join(", ")
            ),
            _ => {
                for t in &report.toolkit {
                    println!("  {t}");
                }
            }
        }
        if let (true, Some(ap)) = (verbose, &report.autopatch) {
            print!("{}", crate::table::needs(ap));
        }
    }
    Ok(())
}

pub fn features(args: FeaturesArgs) -> Result<(), Error> {
    let (source, selected) =
        args.source
            .select(&args.components, args.components.is_empty(), None)?;
    let layout = Layout::new(&Rules::load(args.rules.as_deref())?, Mode::Split)?;
    let reporter = crate::progress::Components::reading(args.quiet);
    let outputs = source.outputs(&selected, &layout, &reporter)?;
    let mut out = serde_json::Map::new();
    let set = source.products.len() > 1;
    for (sel, outputs) in selected.iter().zip(outputs) {
        // Keys as the user names them: `product:component` in a set.
        let key = if set {
            format!("{}:{}", sel.product, sel.component)
        } else {
            sel.component.clone()
        };
        out.insert(
            key,
            serde_json::json!({ "version": sel.version, "outputs": outputs }),
        );
    }
    print_json(&out);
    Ok(())
}

/// Rows as left-aligned columns, two spaces apart, indented by two.
fn print_columns(rows: &[Vec<String>]) {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..cols)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|v| v.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    for r in rows {
        let mut line = String::from(" ");
        for (c, v) in r.iter().enumerate() {
            line.push(' ');
            line.push_str(v);
            if c + 1 < r.len() {
                line.push_str(&" ".repeat(widths[c] - v.chars().count() + 1));
            }
        }
        println!("{line}");
    }
}

/// `1200 hard links, 3 copies`.
fn linked_words(l: &redist::Linked) -> String {
    let mut parts = Vec::new();
    for (n, word) in [
        (l.hardlinked, "hard links"),
        (l.cloned, "clones"),
        (l.copied, "copies"),
        (l.symlinked, "symlinks"),
    ] {
        if n > 0 {
            parts.push(format!("{n} {word}"));
        }
    }
    if parts.is_empty() {
        "no files".into()
    } else {
        parts.join(", ")
    }
}

pub fn cache_info(dir: Option<std::path::PathBuf>, json: bool) -> Result<(), Error> {
    let dir = dir.unwrap_or_else(redist::Cache::default_dir);
    let (archives, archive_bytes) = redist::Cache::new(dir.clone()).archives();
    let store = redist::Store::new(&dir).info();
    if json {
        print_json(&serde_json::json!({
            "cache": dir,
            "archives": { "count": archives, "bytes": archive_bytes },
            "store": store,
        }));
        return Ok(());
    }
    println!("{}", dir.display());
    println!("  archives  {archives} verified, {}", size(archive_bytes));
    println!(
        "  store     {} unpacked tree{}, {} (files hard-linked into prefixes count once, here)",
        store.entries.len(),
        if store.entries.len() == 1 { "" } else { "s" },
        size(store.bytes)
    );
    if !store.entries.is_empty() {
        let unused = store
            .entries
            .iter()
            .filter(|e| e.prefixes.is_empty())
            .count();
        println!();
        let mut rows = vec![vec![
            "component".to_owned(),
            "version".into(),
            "layout".into(),
            "files".into(),
            "size".into(),
            "used by".into(),
        ]];
        for e in &store.entries {
            rows.push(vec![
                e.component
                    .clone()
                    .unwrap_or_else(|| format!("(damaged {})", &e.key[..12])),
                e.version.clone().unwrap_or_default(),
                e.layout.map(|l| l.name().to_owned()).unwrap_or_default(),
                e.files.to_string(),
                size(e.bytes),
                match e.prefixes.len() {
                    0 => "nothing (prune removes it)".to_owned(),
                    1 => e.prefixes[0].display().to_string(),
                    n => format!("{n} prefixes"),
                },
            ]);
        }
        print_columns(&rows);
        if unused > 0 {
            println!();
            println!("`redist cache prune` removes the {unused} that nothing uses");
        }
    }
    Ok(())
}

pub fn cache_prune(dir: Option<std::path::PathBuf>, json: bool) -> Result<(), Error> {
    let dir = dir.unwrap_or_else(redist::Cache::default_dir);
    let partial = redist::Cache::new(dir.clone()).sweep();
    let store = redist::Store::new(&dir);
    let pruned = store.prune().map_err(|source| Error::Write {
        path: store.dir().to_owned(),
        source,
    })?;
    let mut leftovers = partial;
    leftovers.add(pruned.leftovers);
    if json {
        print_json(&serde_json::json!({
            "cache": dir,
            "removed": pruned.removed,
            "bytes": pruned.reclaimed.bytes,
            "kept": pruned.kept,
            "leftovers": leftovers,
        }));
        return Ok(());
    }
    if pruned.removed.is_empty() && leftovers.entries == 0 {
        println!(
            "{}: nothing to remove ({} store entr{} in use, none left behind by killed runs)",
            dir.display(),
            pruned.kept,
            if pruned.kept == 1 { "y" } else { "ies" }
        );
        return Ok(());
    }
    println!("{}:", dir.display());
    if !pruned.removed.is_empty() {
        println!(
            "  removed {} store entr{} nothing uses ({}); kept {}",
            pruned.removed.len(),
            if pruned.removed.len() == 1 {
                "y"
            } else {
                "ies"
            },
            size(pruned.reclaimed.bytes),
            pruned.kept
        );
    }
    if leftovers.entries > 0 {
        println!(
            "  removed what killed runs left behind: {} files and directories ({})",
            leftovers.entries,
            size(leftovers.bytes)
        );
    }
    Ok(())
}

pub fn cache_clean(dir: Option<std::path::PathBuf>, json: bool) -> Result<(), Error> {
    let dir = dir.unwrap_or_else(redist::Cache::default_dir);
    let store = redist::Store::new(&dir);
    let stored = store.clean().map_err(|source| Error::Write {
        path: store.dir().to_owned(),
        source,
    })?;
    let archives = redist::Cache::new(dir.clone()).clean();
    if json {
        print_json(&serde_json::json!({
            "cache": dir,
            "archives": archives,
            "store": stored,
        }));
    } else if archives.entries + stored.entries == 0 {
        println!("{}: already empty", dir.display());
    } else {
        println!(
            "{}: removed {} ({} in archives, {} in the store)",
            dir.display(),
            size(archives.bytes + stored.bytes),
            size(archives.bytes),
            size(stored.bytes)
        );
    }
    Ok(())
}

pub fn nix_join() -> Result<(), Error> {
    let paths: Vec<std::path::PathBuf> = std::env::var("paths")
        .unwrap_or_default()
        .split_whitespace()
        .map(std::path::PathBuf::from)
        .collect();
    let out = std::env::var_os("out").ok_or_else(|| Error::Nix {
        cause: None,
        message: "nix-join: `$out` is not set (run it as a derivation's builder)".into(),
    })?;
    let n = redist::nix::join(&paths, std::path::Path::new(&out))?;
    eprintln!(
        "redist nix-join: {} links to {} store paths in {}",
        n,
        paths.len(),
        std::path::Path::new(&out).display()
    );
    Ok(())
}

pub fn nix_builder() -> Result<(), Error> {
    let b = redist::nix::Builder::from_env()?;
    if b.cores > 0 {
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(b.cores)
            .build_global();
    }
    eprintln!(
        "redist nix-builder: {} -> {}",
        b.src.display(),
        b.outputs
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    );
    let r = redist::nix::build(&b, &redist::NoProgress)?;
    for (name, path) in &r.outputs {
        let s = r.unpack.outputs.get(name);
        eprintln!(
            "  {name:<8} {} ({} files, {} symlinks)",
            path.display(),
            s.map_or(0, |s| s.files),
            s.map_or(0, |s| s.symlinks)
        );
    }
    if let Some(ap) = &r.unpack.autopatch {
        eprintln!(
            "  autopatch: {} ELF files linked, {} skipped",
            ap.files.len(),
            ap.skipped.len()
        );
        for f in &ap.files {
            eprintln!(
                "    {}: RUNPATH {}",
                f.path,
                f.runpath.as_deref().unwrap_or("(none)")
            );
        }
        for (file, lib) in &ap.ignored {
            eprintln!("    warning: {file}: {lib} left unresolved (ignoreMissing)");
        }
    }
    eprintln!("  {:.3}s", r.unpack.stages.total.seconds);
    Ok(())
}

pub fn nix_expr(args: NixExprArgs) -> Result<(), Error> {
    let (source, selected) =
        args.source
            .select(&args.components, args.components.is_empty(), None)?;
    let layout = Layout::new(&Rules::builtin(), Mode::Split)?;
    let reporter = crate::progress::Components::reading(args.quiet);
    // One pass over each archive: its outputs, and which of the set's
    // other components provide the libraries its ELF files need.
    let facts = source.facts(&selected, &layout, &reporter)?;
    let names: Vec<String> = selected.iter().map(|s| s.component.clone()).collect();
    let wiring = redist::nix::wire(&names, &facts);
    let mut components = Vec::new();
    for ((sel, facts), lib_deps) in selected.iter().zip(facts).zip(wiring) {
        let url = match source.location(sel) {
            redist::Location::Url(u) => u,
            redist::Location::Path(p) => {
                format!("file://{}", std::path::absolute(&p).unwrap_or(p).display())
            }
        };
        components.push(redist::nix::ExprComponent {
            pname: sel.component.clone(),
            version: sel.version.clone(),
            url,
            sha256: sel.archive.sha256.clone(),
            outputs: facts.outputs,
            lib_deps,
            product: sel.product.clone(),
        });
    }
    print!(
        "{}",
        redist::nix::expression(&source.label(), &args.builder, &args.system, &components)
    );
    Ok(())
}
