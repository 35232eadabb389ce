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
