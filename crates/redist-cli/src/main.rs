//! `redist`: flags in, library calls, text out. All the work is in the
//! `redist` library; this crate only parses arguments and prints.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

mod progress;
mod table;

/// Unpack NVIDIA CUDA redistributable tarballs into split, ready-to-use trees.
///
/// redist replaces the monolithic `.run` installer with the component
/// tarballs NVIDIA lists in its redistrib_<version>.json manifests. It streams
/// each archive once, splits it into outputs (bin, lib, static, stubs,
/// include, dev, doc, …) and fixes pkg-config paths on the way.
#[derive(Parser)]
#[command(
    name = "redist",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Unpack one archive into DIR, split into outputs.
    ///
    /// The format (xz, gzip, zstd or plain tar) is chosen by the archive's
    /// first bytes, not its name. The archive's single top directory
    /// (`<name>-<platform>-<version>-archive/`) is stripped, and every path
    /// is routed by the layout rules (see `redist rules`): with the default
    /// split layout, `lib/libcudart.so.12` lands in DIR/lib/lib/ and
    /// `pkg-config/cudart-12.9.pc` in DIR/dev/share/pkgconfig/.
    ///
    /// The tree is built in a staging directory next to DIR and renamed into
    /// place at the end: on any error (corrupt or truncated archive, unsafe
    /// entry, disk full) DIR gets nothing.
    ///
    /// Examples:
    ///   redist unpack cuda_cudart-linux-x86_64-12.9.79-archive.tar.xz --out cudart
    ///   redist unpack cuda_nvcc.tar.xz --out /opt/cuda --layout merged
    ///   curl -sL "$URL" | redist unpack - --out nvcc --json
    #[command(verbatim_doc_comment)]
    Unpack(UnpackArgs),

    /// Print the built-in layout rules, the starting point for a --rules file.
    Rules,
}

#[derive(clap::Args)]
struct UnpackArgs {
    /// The archive (`.tar.xz`, `.tar.gz`, `.tar.zst`, `.tar`), or `-` for standard input.
    archive: PathBuf,

    /// Directory to create; must not exist or be empty.
    #[arg(long, short, value_name = "DIR")]
    out: PathBuf,

    /// `split`: one directory per output (DIR/bin, DIR/lib, …);
    /// `merged`: a single tree, like the `.run` installer's.
    #[arg(long, value_enum, default_value_t = LayoutArg::Split)]
    layout: LayoutArg,

    /// Layout rules file (TOML, or JSON when it ends in .json) replacing the
    /// built-in table; print that with `redist rules`.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,

    /// Threads for the xz decoder (multi-block archives decode in parallel);
    /// default: all cores.
    #[arg(long, value_name = "N")]
    threads: Option<u32>,

    /// Print the report as JSON on standard output.
    #[arg(long)]
    json: bool,

    /// No progress bar, no summary (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Split,
    Merged,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Unpack(args) => unpack(args),
        Command::Rules => {
            print!("{}", redist::Rules::builtin_source());
            Ok(())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            let mut msg = format!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!("\n  caused by: {s}"));
                source = s.source();
            }
            eprintln!("{msg}");
            ExitCode::FAILURE
        }
    }
}

fn unpack(args: UnpackArgs) -> Result<(), redist::Error> {
    let mode = match args.layout {
        LayoutArg::Split => redist::Mode::Split,
        LayoutArg::Merged => redist::Mode::Merged,
    };
    let layout = match &args.rules {
        Some(path) => redist::Layout::new(
            &redist::Rules::from_file(path)?,
            mode,
            &path.display().to_string(),
        )?,
        None => redist::Layout::builtin(mode),
    };
    let mut opts = redist::UnpackOptions {
        layout,
        ..Default::default()
    };
    if let Some(t) = args.threads {
        opts.decoder_threads = t.max(1);
    }
    let bar = progress::Bar::new(!args.quiet && std::io::stderr().is_terminal());
    let report = redist::unpack(
        redist::Input::from_arg(&args.archive),
        &args.out,
        &opts,
        &bar,
    )?;
    let mut stdout = std::io::stdout().lock();
    if args.json {
        let _ = serde_json::to_writer_pretty(&mut stdout, &report);
        let _ = writeln!(stdout);
    } else if !args.quiet {
        let _ = write!(stdout, "{}", table::render(&report));
    }
    Ok(())
}
