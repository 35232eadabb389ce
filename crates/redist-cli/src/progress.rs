//! The terminal side of [`redist::Progress`]: an indicatif bar over the
//! archive's compressed bytes, drawn only when stderr is a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A progress bar, or nothing when `enabled` is false.
pub struct Bar {
    bar: Option<ProgressBar>,
}

impl Bar {
    pub fn new(enabled: bool) -> Bar {
        let bar = enabled.then(|| {
            let b = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix:.bold} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
                )
                .expect("static template")
                .progress_chars("=> "),
            );
            b
        });
        Bar { bar }
    }
}

impl redist::Progress for Bar {
    fn begin(&self, archive: &str, total: Option<u64>) {
        if let Some(b) = &self.bar {
            let name = archive.rsplit('/').next().unwrap_or(archive);
            b.set_prefix(name.to_owned());
            match total {
                Some(t) => b.set_length(t),
                None => b.set_style(
                    ProgressStyle::with_template(
                        "{prefix:.bold} {spinner} {bytes} {bytes_per_sec} {msg}",
                    )
                    .expect("static template"),
                ),
            }
        }
    }

    fn advance(&self, bytes: u64) {
        if let Some(b) = &self.bar {
            b.set_position(bytes);
        }
    }

    fn stage(&self, name: &str) {
        if let Some(b) = &self.bar {
            b.set_message(name.to_owned());
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Per-component progress for installs: one bar each on a terminal, plain
/// log lines on stderr otherwise.
pub struct Components {
    multi: Option<indicatif::MultiProgress>,
    quiet: bool,
    /// Notes (a fallback, a damaged store entry) are printed unless `-q`,
    /// also with `--json` (they go to stderr).
    notes: bool,
    /// What is done with the bytes: "unpacking", or "reading" (headers only).
    verb: &'static str,
}

impl Components {
    /// For archives that are unpacked (install, fetch).
    pub fn new(quiet: bool) -> Components {
        let tty = !quiet && std::io::IsTerminal::is_terminal(&std::io::stderr());
        Components {
            multi: tty.then(indicatif::MultiProgress::new),
            quiet,
            notes: !quiet,
            verb: "unpacking",
        }
    }

    /// Notes printed (on stderr) even when progress is not: `--json`.
    pub fn with_notes(self, notes: bool) -> Components {
        Components { notes, ..self }
    }

    /// For archives whose headers are read (features, nix-expr).
    pub fn reading(quiet: bool) -> Components {
        Components {
            verb: "reading",
            ..Components::new(quiet)
        }
    }
}

fn origin_word(origin: redist::Origin) -> &'static str {
    match origin {
        redist::Origin::Cache => "cache",
        redist::Origin::Download => "download",
        redist::Origin::Local => "local",
        redist::Origin::Store => "store",
    }
}

impl redist::Reporter for Components {
    fn component(
        &self,
        sel: &redist::Selected,
        origin: redist::Origin,
    ) -> Box<dyn redist::Progress + '_> {
        let name = format!("{} {}", sel.component, sel.version);
        match &self.multi {
            Some(multi) => {
                let bar = multi.add(ProgressBar::new(sel.archive.size));
                bar.set_style(
                    ProgressStyle::with_template(
                        "{prefix:<28!} {msg:<8} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                    )
                    .expect("static template")
                    .progress_chars("=> "),
                );
                bar.set_prefix(name);
                bar.set_message(origin_word(origin));
                Box::new(Bar { bar: Some(bar) })
            }
            None => Box::new(LogLine {
                name,
                origin,
                quiet: self.quiet,
                size: sel.archive.size,
                verb: self.verb,
            }),
        }
    }

    fn note(&self, message: &str) {
        if self.notes {
            match &self.multi {
                Some(m) => {
                    let _ = m.println(message);
                }
                None => eprintln!("{message}"),
            }
        }
    }
}

/// Progress as two log lines, for logs and CI.
struct LogLine {
    name: String,
    origin: redist::Origin,
    quiet: bool,
    size: u64,
    verb: &'static str,
}

impl redist::Progress for LogLine {
    fn begin(&self, _archive: &str, _total: Option<u64>) {
        if !self.quiet {
            let (verb, size) = (self.verb, crate::table::size(self.size));
            match self.origin {
                redist::Origin::Cache => {
                    eprintln!("{}: {verb} from the cache ({size})", self.name)
                }
                redist::Origin::Download => {
                    eprintln!("{}: downloading and {verb} ({size})", self.name)
                }
                redist::Origin::Local => {
                    eprintln!("{}: {verb} from the mirror directory ({size})", self.name)
                }
                redist::Origin::Store => {
                    eprintln!("{}: linking from the store", self.name)
                }
            }
        }
    }
}
