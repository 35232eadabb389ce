//! The reference, generated from the command line's own definition: a man
//! page per command (`clap_mangen`) and `docs/cli.md`, every command's
//! `--help` (a test keeps the committed file current).

use std::path::Path;

/// Write man pages into `man` and the Markdown reference to `markdown`.
pub fn write(
    cmd: clap::Command,
    man: Option<&Path>,
    markdown: Option<&Path>,
) -> Result<(), String> {
    let mut cmd = cmd.term_width(100);
    cmd.build();
    if let Some(dir) = man {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        write_man(&cmd, "redist", dir)?;
        for (words, sub) in commands(&cmd, &[]) {
            let name = format!("redist-{}", words.join("-"));
            let page = sub
                .clone()
                .name(name.clone())
                .bin_name(format!("redist {}", words.join(" ")));
            write_man(&page, &name, dir)?;
        }
    }
    if let Some(path) = markdown {
        std::fs::write(path, markdown_of(&mut cmd))
            .map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Every visible command below `cmd`, depth first, with the words that
/// name it (`["cache", "prune"]`); clap's own `help` is left out.
fn commands<'c>(cmd: &'c clap::Command, above: &[String]) -> Vec<(Vec<String>, &'c clap::Command)> {
    let mut out = Vec::new();
    for sub in cmd.get_subcommands() {
        if sub.is_hide_set() || sub.get_name() == "help" {
            continue;
        }
        let mut words = above.to_vec();
        words.push(sub.get_name().to_owned());
        out.push((words.clone(), sub));
        out.extend(commands(sub, &words));
    }
    out
}

fn write_man(cmd: &clap::Command, name: &str, dir: &Path) -> Result<(), String> {
    let path = dir.join(format!("{name}.1"));
    let mut out = Vec::new();
    clap_mangen::Man::new(cmd.clone())
        .render(&mut out)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    std::fs::write(&path, out).map_err(|e| format!("{}: {e}", path.display()))
}

/// `docs/cli.md`: the top-level help, then each command's long help.
pub fn markdown_of(cmd: &mut clap::Command) -> String {
    let mut s = String::from(
        "# Command-line reference\n\n\
         Generated from redist's own definition of its command line \
         (`redist generate-reference --markdown docs/cli.md`; a test fails \
         when this file is out of date). Man pages with the same text come \
         with `cargo xtask dist`.\n\n\
         Exit codes: 0 success, 1 failure (the error says what and why), \
         2 a usage error (unknown flag, missing argument).\n\n",
    );
    s.push_str("## redist\n\n```text\n");
    s.push_str(&cmd.render_long_help().to_string());
    s.push_str("```\n");
    for (words, sub) in commands(cmd, &[]) {
        let mut sub = sub.clone().bin_name(format!("redist {}", words.join(" ")));
        s.push_str(&format!("\n## redist {}\n\n```text\n", words.join(" ")));
        s.push_str(&sub.render_long_help().to_string());
        s.push_str("```\n");
    }
    // Trailing spaces of clap's blank help lines would not survive editors.
    s.lines().map(str::trim_end).collect::<Vec<_>>().join("\n") + "\n"
}
