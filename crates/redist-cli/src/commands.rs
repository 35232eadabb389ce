//! `list`, `fetch`, `install`, `features`: flags → library calls → output.

use std::io::Write;

use redist::install::{self, InstallOptions, Reporter};
use redist::manifest::PlatformEntry;
use redist::{Error, Layout, Mode, Rules};

use crate::table::size;
use crate::{FeaturesArgs, FetchArgs, InstallArgs, LayoutArg, ListArgs, NixExprArgs};

fn rules(path: &Option<std::path::PathBuf>) -> Result<Rules, Error> {
    Rules::load(path.as_deref())
}

fn print_json(v: &impl serde::Serialize) {
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer_pretty(&mut out, v);
    let _ = writeln!(out);
}

pub fn list(args: ListArgs) -> Result<(), Error> {
    let source = args.source.open()?;
    let platform = args.source.platform()?;
    let mut rows = Vec::new();
    for c in source.manifest.components.values() {
        let Some((used, entry)) = c.platform_for(&platform) else {
            continue;
        };
        let (size, variants) = match entry {
            PlatformEntry::Archive(a) => (Some(a.size), Vec::new()),
            PlatformEntry::Variants(vs) => {
                (None, vs.iter().map(|(k, a)| (k.clone(), a.size)).collect())
            }
        };
        let zip = match entry {
            PlatformEntry::Archive(a) => a.relative_path.ends_with(".zip"),
            PlatformEntry::Variants(vs) => vs.values().any(|a| a.relative_path.ends_with(".zip")),
        };
        rows.push(serde_json::json!({
            "component": c.key, "name": c.name, "version": c.version, "platform": used,
            "size": size, "variants": variants.iter().map(|(k, s)| serde_json::json!({"variant": k, "size": s})).collect::<Vec<_>>(),
            "installable": !zip,
        }));
    }
    if args.json {
        print_json(
            &serde_json::json!({ "manifest": source.manifest.label(), "platform": platform, "components": rows }),
        );
        return Ok(());
    }
    println!(
        "{} for {platform}: {} components",
        source.manifest.label(),
        rows.len()
    );
    println!(
        "{:<28} {:<14} {:>10}  notes",
        "component", "version", "size"
    );
    for r in &rows {
        let mut notes = Vec::new();
        if r["platform"] != platform.as_str() {
            notes.push(format!("from {}", r["platform"].as_str().unwrap_or("")));
        }
        let variants = r["variants"].as_array().cloned().unwrap_or_default();
        if !variants.is_empty() {
            notes.push(format!(
                "variants: {}",
                variants
                    .iter()
                    .map(|v| format!(
                        "{} ({})",
                        v["variant"].as_str().unwrap_or(""),
                        size(v["size"].as_u64().unwrap_or(0))
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if r["installable"] == false {
            notes.push("Windows .zip: not installable".into());
        }
        let sz = r["size"].as_u64().map(size).unwrap_or_else(|| "-".into());
        println!(
            "{:<28} {:<14} {:>10}  {}",
            r["component"].as_str().unwrap_or(""),
            r["version"].as_str().unwrap_or(""),
            sz,
            notes.join("; ")
        );
    }
    Ok(())
}

pub fn fetch(args: FetchArgs) -> Result<(), Error> {
    let (source, selected) = args.source.select(&args.components, args.all)?;
    let reporter = crate::progress::Components::new(args.quiet || args.json);
    if let Some(dir) = &args.out {
        std::fs::create_dir_all(dir).map_err(|source| Error::Write {
            path: dir.clone(),
            source,
        })?;
    }
    let mut rows = Vec::new();
    for sel in &selected {
        let wrap = |e: Error| Error::Component {
            component: sel.component.clone(),
            version: sel.version.clone(),
            source: Box::new(e),
        };
        let name = sel
            .archive
            .relative_path
            .rsplit('/')
            .next()
            .unwrap_or(&sel.archive.relative_path)
            .to_owned();
        let ((), origin) = source
            .with_archive(sel, |opened| {
                let progress = reporter.component(sel, opened.origin);
                let label = opened.label.clone();
                progress.begin(&label, Some(opened.size));
                let (input, committer) = opened.into_input();
                let redist::Input::Reader { mut reader, .. } = input else {
                    unreachable!("into_input gives a reader")
                };
                let result = copy_verified(
                    &mut reader,
                    args.out.as_ref().map(|d| d.join(&name)),
                    progress.as_ref(),
                    &label,
                );
                progress.finish();
                result?;
                committer.commit()
            })
            .map_err(wrap)?;
        rows.push(serde_json::json!({
            "component": sel.component, "version": sel.version, "sha256": sel.archive.sha256, "size": sel.archive.size,
            "origin": origin, "cache": source.cache.as_ref().map(|c| c.path(&sel.archive.sha256)),
            "out": args.out.as_ref().map(|d| d.join(&name)),
        }));
    }
    if args.json {
        print_json(&rows);
    } else if !args.quiet {
        for r in &rows {
            let at = r["out"]
                .as_str()
                .or(r["cache"].as_str())
                .unwrap_or("(verified, not kept)");
            println!(
                "{} {}: verified ({}) {}",
                r["component"].as_str().unwrap_or(""),
                r["version"].as_str().unwrap_or(""),
                size(r["size"].as_u64().unwrap_or(0)),
                at
            );
        }
    }
    Ok(())
}

/// Read all of a verified reader, into `out` when given (renamed into
/// place only once the last byte verified).
fn copy_verified(
    reader: &mut dyn std::io::Read,
    out: Option<std::path::PathBuf>,
    progress: &dyn redist::Progress,
    label: &str,
) -> Result<(), Error> {
    let mut buf = vec![0u8; 1 << 20];
    let mut total = 0u64;
    let mut file = match &out {
        Some(path) => {
            let partial = redist::scratch::Scratch::new(path.with_extension("partial"));
            let f = std::fs::File::create(partial.path()).map_err(|source| Error::Write {
                path: partial.path().to_owned(),
                source,
            })?;
            Some((f, partial))
        }
        None => None,
    };
    let fail = |e: std::io::Error| redist::decode::source_failure(label, e);
    let result = (|| {
        loop {
            let n = reader.read(&mut buf).map_err(fail)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            progress.advance(total);
            if let Some((f, p)) = &mut file {
                f.write_all(&buf[..n]).map_err(|source| Error::Write {
                    path: p.path().to_owned(),
                    source,
                })?;
            }
        }
        Ok(())
    })();
    match (result, file, out) {
        (Ok(()), Some((_, partial)), Some(path)) => {
            std::fs::rename(partial.path(), &path)
                .map_err(|source| Error::Write { path, source })?;
            partial.keep();
            Ok(())
        }
        // A failure drops the partial file, which removes it.
        (r, _, _) => r,
    }
}

pub fn install(args: InstallArgs) -> Result<(), Error> {
    let (source, selected) = args.source.select(&args.components, args.all)?;
    let only = redist::layout::glob_set(&args.only, "--only")?;
    let opts = InstallOptions {
        prefix: args.prefix.clone(),
        layout: match args.layout {
            LayoutArg::Merged => Mode::Merged,
            LayoutArg::Split => Mode::Split,
        },
        rules: rules(&args.rules)?,
        only,
        jobs: args.jobs.unwrap_or_else(redist::default_threads),
        decoder_threads: redist::default_threads() as u32,
        autopatch: args.patch.options()?,
    };
    let reporter = crate::progress::Components::new(args.quiet || args.json);
    let report = install::install(&source, &selected, &opts, &reporter)?;
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
                Some(install::Origin::Cache) => "from the cache",
                Some(install::Origin::Download) => "downloaded",
                Some(install::Origin::Local) => "from the mirror directory",
                None => "already installed",
            };
            println!(
                "  {:<28} {:<14} {:>6} files  {how}",
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
    }
    Ok(())
}

pub fn features(args: FeaturesArgs) -> Result<(), Error> {
    let (source, selected) = args
        .source
        .select(&args.components, args.components.is_empty())?;
    let layout = Layout::new(&rules(&args.rules)?, Mode::Split, "rules")?;
    let outputs = components_outputs(&source, &selected, &layout, args.quiet)?;
    let mut out = serde_json::Map::new();
    for (sel, outputs) in selected.iter().zip(outputs) {
        out.insert(
            sel.component.clone(),
            serde_json::json!({ "version": sel.version, "outputs": outputs }),
        );
    }
    print_json(&out);
    Ok(())
}

/// Per component: the outputs its archive produces (verified, cached), in
/// the order of `selected`. Archives are streamed several at a time; the
/// first failure is returned.
fn components_outputs(
    source: &install::Source,
    selected: &[redist::manifest::Selected],
    layout: &Layout,
    quiet: bool,
) -> Result<Vec<std::collections::BTreeSet<String>>, Error> {
    use rayon::prelude::*;
    use redist::install::Reporter;
    let reporter = crate::progress::Components::reading(quiet);
    selected
        .par_iter()
        .map(|sel| {
            source
                .with_archive(sel, |opened| {
                    let progress = reporter.component(sel, opened.origin);
                    let (input, committer) = opened.into_input();
                    let outputs = redist::outputs_of(input, layout, progress.as_ref())?;
                    committer.commit()?;
                    Ok(outputs)
                })
                .map(|(o, _)| o)
                .map_err(|e| Error::Component {
                    component: sel.component.clone(),
                    version: sel.version.clone(),
                    source: Box::new(e),
                })
        })
        .collect()
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
    let (source, selected) = args
        .source
        .select(&args.components, args.components.is_empty())?;
    let layout = Layout::new(&Rules::builtin(), Mode::Split, "rules")?;
    let outputs = components_outputs(&source, &selected, &layout, args.quiet)?;
    let mut components = Vec::new();
    for (sel, outputs) in selected.iter().zip(outputs) {
        let url = match source.location(sel) {
            redist::source::Location::Url(u) => u,
            redist::source::Location::Path(p) => {
                format!("file://{}", std::path::absolute(&p).unwrap_or(p).display())
            }
        };
        components.push(redist::nix::ExprComponent {
            pname: sel.component.clone(),
            version: sel.version.clone(),
            url,
            sha256: sel.archive.sha256.clone(),
            outputs,
        });
    }
    print!(
        "{}",
        redist::nix::expression(
            &source.manifest.label(),
            &args.builder,
            &args.system,
            &components
        )
    );
    Ok(())
}
