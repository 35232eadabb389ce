//! `redist`: flags in, library calls, text out. All the work is in the
//! `redist` library; this crate only parses arguments and prints.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

mod bench;
mod commands;
mod errors;
mod patchelf;
mod progress;
mod reference;
mod table;

/// Unpack NVIDIA CUDA redistributable tarballs into split, ready-to-use trees.
///
/// redist replaces the monolithic `.run` installer with the component
/// tarballs NVIDIA lists in its redistrib_<version>.json manifests. It streams
/// each archive once, verifies it on the way, splits it into outputs (bin,
/// lib, static, stubs, include, dev, doc, …), fixes pkg-config paths, and
/// rewrites the interpreter and RUNPATH of every ELF file so the result runs
/// where it lands.
///
/// Start here:
///   M=https://developer.download.nvidia.com/compute/cuda/redist/redistrib_12.9.1.json
///   redist list --manifest $M
///   redist install --manifest $M cuda_nvcc cuda_cudart --prefix ~/cuda
///   redist unpack cuda_cudart-linux-x86_64-12.9.79-archive.tar.xz --out cudart
///
/// `redist <command> --help` explains each command, with examples.
#[derive(Parser)]
#[command(
    verbatim_doc_comment,
    name = "redist",
    version,
    propagate_version = true,
    max_term_width = 100
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// More detail: for `unpack` and `install`, every library each ELF file
    /// needs and where it was found
    #[arg(short, long, global = true)]
    verbose: bool,
}

#[derive(Subcommand)]
enum Command {
    /// Unpack one archive into DIR, split into outputs
    ///
    /// The format (xz, gzip, zstd or plain tar) is chosen by the archive's
    /// first bytes, not its name. The archive's single top directory
    /// (`<name>-<platform>-<version>-archive/`) is stripped, and every path
    /// is routed by the layout rules (see `redist rules`): with the default
    /// split layout, `lib/libcudart.so.12` lands in DIR/lib/lib/ and
    /// `pkg-config/cudart-12.9.pc` in DIR/dev/share/pkgconfig/.
    ///
    /// Every ELF file written is then linked (see "Linking" below): each
    /// library it needs is looked up in the outputs and --dep directories,
    /// and its RUNPATH (and, with --interpreter, its interpreter) rewritten.
    ///
    /// The tree is built in a staging directory next to DIR and renamed into
    /// place at the end: on any error (corrupt or truncated archive, unsafe
    /// entry, disk full) or Ctrl-C, DIR gets nothing and the staging
    /// directory is removed.
    ///
    /// Examples:
    ///   redist unpack cuda_cudart-linux-x86_64-12.9.79-archive.tar.xz --out cudart
    ///   redist unpack cuda_nvcc.tar.xz --out /opt/cuda --layout merged
    ///   redist unpack cuda_nvcc-linux-x86_64-13.0.48-archive.tar.xz --out nvcc \
    ///     --toolkit-dep cudart --toolkit-dep crt --toolkit-dep cccl --toolkit-dep nvvm
    ///   curl -sL "$URL" | redist unpack - --out nvcc --json
    #[command(verbatim_doc_comment)]
    Unpack(UnpackArgs),

    /// List a manifest's components for a platform
    ///
    /// Examples:
    ///   redist list --manifest \
    ///     https://developer.download.nvidia.com/compute/cuda/redist/redistrib_12.9.1.json
    ///   redist list --manifest redistrib_9.13.0.json --platform linux-sbsa --json
    #[command(verbatim_doc_comment)]
    List(ListArgs),

    /// Download and verify archives into the cache, without unpacking
    ///
    /// The sha256 and size of each archive are checked while it streams in;
    /// a verified archive goes into the content-addressed cache (what a later
    /// `install` uses, also with --offline) or, with --out DIR, into DIR under
    /// its manifest file name.
    ///
    /// Examples:
    ///   redist fetch --manifest redistrib_12.9.1.json cuda_nvcc cuda_cudart
    ///   redist fetch --manifest redistrib_12.9.1.json libcublas --out ./archives
    #[command(verbatim_doc_comment)]
    Fetch(FetchArgs),

    /// Install components from a manifest into a prefix (the `.run` installer's job)
    ///
    /// Download, verify, unpack, split or merge, and link — atomically.
    ///
    /// Archives are verified (sha256 and size) while they stream into the
    /// unpacker, kept in a content-addressed cache, and installed several at
    /// a time. A failure (or Ctrl-C) leaves the prefix as it was; installing
    /// what is already installed does nothing; adding components to a prefix
    /// works. Each finished tree is kept in the store of unpacked trees (in
    /// the cache directory): installing it again, into any prefix, links it
    /// instead of decoding (--link-mode; `redist cache info|prune`).
    ///
    /// Examples:
    ///   redist install --manifest redistrib_12.9.1.json cuda_nvcc cuda_cudart \
    ///     --prefix /opt/cuda-12.9
    ///   redist install --manifest redistrib_12.9.1.json cuda_nvcc --only 'bin/ptxas' \
    ///     --prefix ./ptxas
    ///   redist install --manifest redistrib_9.13.0.json cudnn --variant cuda12 \
    ///     --prefix cudnn --layout split
    #[command(verbatim_doc_comment)]
    Install(InstallArgs),

    /// Print the outputs each component's archive produces, as JSON
    ///
    /// Read from the archive's tar headers (the archive is streamed, through
    /// the cache): what a Nix expression must declare as `outputs`.
    ///
    /// Example:
    ///   redist features --manifest redistrib_12.9.1.json cuda_nvcc cuda_cudart
    #[command(verbatim_doc_comment)]
    Features(FeaturesArgs),

    /// Print the built-in layout rules, the starting point for a --rules file
    ///
    /// The rules decide which output each path of an archive goes to, and
    /// how paths are renamed on the way (lib64/ to lib/, …). The first
    /// output rule whose globs match wins.
    ///
    /// Examples:
    ///   redist rules > my-rules.toml
    ///   redist unpack cuda_cudart-linux-x86_64-12.9.79-archive.tar.xz --out cudart \
    ///     --rules my-rules.toml
    #[command(verbatim_doc_comment)]
    Rules,

    /// Print a shell's completion script for redist
    ///
    /// Examples:
    ///   redist generate-shell-completion bash > ~/.local/share/bash-completion/completions/redist
    ///   redist generate-shell-completion zsh > "${fpath[1]}/_redist"
    ///   redist generate-shell-completion fish > ~/.config/fish/completions/redist.fish
    #[command(verbatim_doc_comment)]
    GenerateShellCompletion {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Write the reference: a man page per command and docs/cli.md
    #[command(hide = true)]
    GenerateReference {
        /// Directory for the man pages (`redist.1`, `redist-install.1`, …).
        #[arg(long, value_name = "DIR")]
        man: Option<PathBuf>,
        /// The Markdown reference to write (every command's --help).
        #[arg(long, value_name = "FILE")]
        markdown: Option<PathBuf>,
    },

    /// Measure unpacking on this machine: decode, unpack, the full job
    ///
    /// Per archive: the decoder alone (against `xz -dc`, `zstd -dc` or
    /// `gzip -dc`), unpacking without patching and the whole job (against
    /// `tar -xf`), each a warm-up run then --runs timed runs in a child
    /// process, on tmpfs unless --dir says otherwise. Prints min and median
    /// times, MB/s of compressed and decompressed bytes, peak memory and
    /// the ratio to the baseline (above 1: redist is faster).
    ///
    /// Examples:
    ///   redist bench libcublas-linux-x86_64-13.0.0.19-archive.tar.xz
    ///   redist bench --runs 5 --threads 16 --json *.tar.xz > bench.json
    #[command(verbatim_doc_comment)]
    Bench(bench::Args),

    /// One `redist bench` stage: decode an archive, discard the bytes
    #[command(hide = true)]
    BenchDecode {
        archive: std::path::PathBuf,
        #[arg(long)]
        threads: Option<u32>,
        #[arg(long, value_parser = parse_size)]
        memory_limit: Option<u64>,
    },

    /// Manage the archive cache
    ///
    /// Verified archives and the store of unpacked trees that installs link
    /// from live in $REDIST_CACHE_DIR, else $XDG_CACHE_HOME/redist, else
    /// ~/.cache/redist.
    ///
    /// Examples:
    ///   redist cache info
    ///   redist cache prune --json
    #[command(subcommand, verbatim_doc_comment)]
    Cache(CacheCommand),

    /// Be the builder of a Nix derivation (see docs/nix.md)
    ///
    /// The derivation's builder is a static redist and its args are
    /// [ "nix-builder" ]. Reads src, outputs, dynamicLinker, libDeps,
    /// appendRunpaths, ignoreMissing, component and rules from the
    /// derivation (environment or structured attrs).
    ///
    /// Not run by hand: `redist nix-expr` writes derivations that use it,
    /// and nix-build runs them.
    ///
    /// Example:
    ///   redist nix-expr --manifest redistrib_12.9.1.json \
    ///     --builder /nix/store/…-redist > cuda.nix
    ///   nix-build cuda.nix -A cuda_nvcc.bin
    #[command(verbatim_doc_comment)]
    NixBuilder,
    /// The builder of a generated expression's `join` derivations
    /// (`cudatoolkit`): `$out` as one tree of symlinks to the files of the
    /// store paths in `$paths`.
    #[command(hide = true)]
    NixJoin,

    /// Print a Nix file with one derivation per component of a manifest
    ///
    /// Each derivation fetches its archive (fixed-output, the manifest's
    /// sha256) and is built by `redist nix-builder`; its outputs come from
    /// `redist features`.
    ///
    /// Example:
    ///   redist nix-expr --manifest redistrib_12.9.1.json \
    ///     --builder /nix/store/…-redist/bin/redist > cuda.nix
    ///   nix-build cuda.nix -A cuda_nvcc --arg libDeps '[ "/nix/store/…-glibc" ]'
    #[command(verbatim_doc_comment)]
    NixExpr(NixExprArgs),

    /// Edit ELF interpreter, RUNPATH, DT_NEEDED and SONAME, like patchelf
    ///
    /// Takes patchelf's flags; the binary behaves as `redist patchelf` when
    /// invoked as `patchelf` (a symlink).
    ///
    /// Examples:
    ///   redist patchelf --print-rpath --print-needed lib/libcudnn_adv.so.9
    ///   redist patchelf --set-rpath '$ORIGIN/../lib' --set-interpreter \
    ///     /lib64/ld-linux-x86-64.so.2 bin/ptxas
    ///   redist patchelf --replace-needed libfoo.so.1 libfoo.so.2 bin/app --output app2
    #[command(verbatim_doc_comment)]
    Patchelf(patchelf::Args),
}

/// Where the manifest and archives come from.
#[derive(clap::Args)]
struct SourceArgs {
    /// Manifest: a path, file:// or http(s):// URL (redistrib_<version>.json).
    /// Repeat it for a set of products installed as one (CUDA with cuDNN,
    /// cuTENSOR, …): add-ons take the variant built for the set's CUDA.
    #[arg(
        long,
        short = 'm',
        value_name = "PATH|URL",
        required_unless_present = "set"
    )]
    manifest: Vec<String>,

    /// A set file (TOML): `manifests = ["…/redistrib_13.0.2.json",
    /// "…/cudnn/redist/redistrib_9.14.0.json"]` and, optionally,
    /// `components = ["cuda_cudart", "libcublas", "cudnn"]` (used when none
    /// are named on the command line). Paths are relative to the file.
    #[arg(long, value_name = "FILE", conflicts_with = "manifest")]
    set: Option<PathBuf>,

    /// Take archives from here instead of the manifest's directory (URL or directory).
    #[arg(long, value_name = "URL|DIR")]
    mirror: Option<String>,

    /// Platform: linux-x86_64, linux-sbsa, linux-aarch64 (Jetson), linux-ppc64le;
    /// default: this host's.
    #[arg(long, value_name = "PLATFORM")]
    platform: Option<String>,

    /// CUDA variant for manifests that have them (cuDNN): cuda12, cuda13 (or 12, 13).
    /// Default: the one built for the set's CUDA (see --cuda).
    #[arg(long, value_name = "VARIANT")]
    variant: Option<String>,

    /// The CUDA version add-ons' variants are chosen for (13.0.2, 13.1).
    /// Default: the set's cuda manifest, else what the prefix records.
    #[arg(long, value_name = "VERSION")]
    cuda: Option<String>,

    /// Cache directory (default: $XDG_CACHE_HOME/redist, or ~/.cache/redist).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,

    /// Do not keep downloaded archives in the cache.
    #[arg(long)]
    no_cache: bool,

    /// Use only the cache; never download.
    #[arg(long)]
    offline: bool,

    /// Give up on a download after this many seconds without data.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    timeout: u64,
}

impl SourceArgs {
    /// The manifests (and default components) to use: `--manifest`s, or
    /// the set file's.
    fn manifests(&self) -> Result<(Vec<String>, Vec<String>), redist::Error> {
        match &self.set {
            Some(path) => {
                let set = redist::SetFile::load(path)?;
                Ok((set.manifests, set.components))
            }
            None => Ok((self.manifest.clone(), Vec::new())),
        }
    }

    fn open(&self) -> Result<redist::Repository, redist::Error> {
        let (manifests, _) = self.manifests()?;
        let cache = (!self.no_cache).then(|| {
            redist::Cache::new(
                self.cache_dir
                    .clone()
                    .unwrap_or_else(redist::Cache::default_dir),
            )
        });
        let fetcher = redist::Fetcher::new(std::time::Duration::from_secs(self.timeout.max(1)));
        redist::Repository::open(
            &manifests,
            self.mirror.as_deref(),
            fetcher,
            cache,
            self.offline,
        )
    }

    fn platform(&self) -> Result<String, redist::Error> {
        match &self.platform {
            Some(p) => Ok(p.clone()),
            None => Ok(redist::host_platform()?.to_owned()),
        }
    }

    /// The CUDA version variants are chosen for: `--cuda`, the set's cuda
    /// manifest, or what `prefix` records.
    fn cuda(
        &self,
        source: &redist::Repository,
        prefix: Option<&std::path::Path>,
    ) -> Result<Option<redist::CudaVersion>, redist::Error> {
        if let Some(c) = &self.cuda {
            return redist::CudaVersion::parse(c, "--cuda")
                .map(Some)
                .ok_or_else(|| redist::ManifestError::BadCudaVersion { value: c.clone() }.into());
        }
        if let Some(c) = source.cuda() {
            return Ok(Some(c));
        }
        match prefix {
            Some(p) => redist::installed_cuda(p),
            None => Ok(None),
        }
    }

    /// Open the source and pick `components` (or every one, with `all`;
    /// or the set file's) for the chosen platform, CUDA and variant.
    fn select(
        &self,
        components: &[String],
        all: bool,
        prefix: Option<&std::path::Path>,
    ) -> Result<(redist::Repository, Vec<redist::Selected>), redist::Error> {
        let source = self.open()?;
        let platform = self.platform()?;
        let cuda = self.cuda(&source, prefix)?;
        let (_, from_set) = self.manifests()?;
        let (names, all) = if components.is_empty() && !from_set.is_empty() {
            (from_set, false)
        } else {
            (components.to_vec(), all)
        };
        let selected = source.select(
            &names,
            all,
            &platform,
            self.variant.as_deref(),
            cuda.as_ref(),
        )?;
        Ok((source, selected))
    }
}

#[derive(clap::Args)]
struct ListArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct FetchArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Components (manifest keys, e.g. cuda_nvcc).
    #[arg(required_unless_present_any = ["all", "set"])]
    components: Vec<String>,
    /// Every component with an archive for the platform.
    #[arg(long)]
    all: bool,
    /// Copy the verified archives here too (named as on the mirror).
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Print JSON.
    #[arg(long)]
    json: bool,
    /// No progress, no summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct InstallArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Components (manifest keys, e.g. cuda_nvcc cuda_cudart).
    #[arg(required_unless_present_any = ["all", "set"])]
    components: Vec<String>,
    /// Every component with an archive for the platform.
    #[arg(long)]
    all: bool,
    /// The prefix to install into.
    #[arg(long, short, value_name = "DIR")]
    prefix: PathBuf,
    /// `merged`: one tree like the .run installer's; `split`: PREFIX/<component>/<output>/.
    #[arg(long, value_enum, default_value_t = LayoutArg::Merged)]
    layout: LayoutArg,
    /// Layout rules file replacing the built-in table.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// Keep only paths matching this glob (repeatable), e.g. 'bin/ptxas'.
    #[arg(long, value_name = "GLOB")]
    only: Vec<String>,
    /// Components installed at once (default: cores).
    #[arg(long, short, value_name = "N")]
    jobs: Option<usize>,
    /// When another install into PREFIX is running, fail instead of waiting
    /// for it (installs into one prefix take turns).
    #[arg(long)]
    no_wait: bool,
    /// Do not flush the new tree to disk before publishing it (one
    /// syncfs): for tmpfs and benchmarks. After a power loss the tree may
    /// then hold empty files.
    #[arg(long)]
    no_fsync: bool,
    /// How files get from the store of unpacked trees (in the cache
    /// directory) into PREFIX: `hardlink` shares them, read-only (copies,
    /// with a note, when the store is on another filesystem); `clone`
    /// makes copy-on-write clones (btrfs, XFS; copies elsewhere); `copy`;
    /// `symlink` points into the store (programs are copied), so the
    /// prefix breaks when the store is pruned.
    #[arg(
        long,
        value_enum,
        value_name = "MODE",
        env = "REDIST_LINK_MODE",
        default_value_t = LinkModeArg::Hardlink
    )]
    link_mode: LinkModeArg,
    /// The memory budget of all decoders together (K, M, G suffixes),
    /// shared by the components unpacked at once: multi-block xz decodes
    /// on fewer threads to fit, an archive that needs more on one thread
    /// is refused. Default: a quarter of the machine's memory per decoder.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<u64>,
    /// Unpack every archive, neither linking from the store of unpacked
    /// trees nor adding to it.
    #[arg(long)]
    no_store: bool,
    #[command(flatten)]
    patch: PatchArgs,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// No progress, no summary.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LinkModeArg {
    Hardlink,
    Clone,
    Copy,
    Symlink,
}

impl From<LinkModeArg> for redist::LinkMode {
    fn from(m: LinkModeArg) -> redist::LinkMode {
        match m {
            LinkModeArg::Hardlink => redist::LinkMode::Hardlink,
            LinkModeArg::Clone => redist::LinkMode::Clone,
            LinkModeArg::Copy => redist::LinkMode::Copy,
            LinkModeArg::Symlink => redist::LinkMode::Symlink,
        }
    }
}

#[derive(clap::Args)]
struct NixExprArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Components; default: every component with an archive for the platform.
    components: Vec<String>,
    /// The redist the derivations use as builder: a store path of a static
    /// redist (`cargo xtask dist`), or a path Nix copies into the store.
    #[arg(long, value_name = "PATH")]
    builder: String,
    /// Nix system of the derivations.
    #[arg(long, default_value = "x86_64-linux")]
    system: String,
    /// No progress on standard error.
    #[arg(long, short)]
    quiet: bool,
}

#[derive(clap::Args)]
struct FeaturesArgs {
    #[command(flatten)]
    source: SourceArgs,
    /// Components; default: every component with an archive for the platform.
    components: Vec<String>,
    /// Layout rules file replacing the built-in table.
    #[arg(long, value_name = "FILE")]
    rules: Option<PathBuf>,
    /// No progress on standard error.
    #[arg(long, short)]
    quiet: bool,
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

    /// Another component's tree this one is used with (repeatable): a
    /// directory `redist unpack` made (split or merged), an install prefix,
    /// or one output of either. For cuda_nvcc give cuda_cudart, cuda_crt,
    /// cuda_cccl and libnvvm: bin/nvcc.profile then points at their
    /// include, lib and nvvm directories, and their libraries are found.
    #[arg(long, value_name = "DIR")]
    toolkit_dep: Vec<PathBuf>,

    /// Do not flush the new tree to disk before publishing it (one
    /// syncfs): for tmpfs and benchmarks. After a power loss the tree may
    /// then hold empty files.
    #[arg(long)]
    no_fsync: bool,

    /// Refuse an archive that decompresses to more than SIZE (K, M, G, T
    /// suffixes; default 1T): a decompression bomb stops early.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_size: Option<u64>,

    /// Refuse an archive that expands more than N times (default 1000,
    /// checked past the first 16 MiB; NVIDIA's archives expand 3-10x).
    #[arg(long, value_name = "N")]
    max_ratio: Option<u64>,

    /// Neither limit.
    #[arg(long, conflicts_with_all = ["max_size", "max_ratio"])]
    no_limits: bool,

    /// The decoder's memory budget (K, M, G suffixes). A multi-block xz
    /// archive is decoded on fewer threads to stay within it; an archive
    /// that needs more even on one thread (its dictionary or zstd window)
    /// is refused. Default: the threaded decoder may use a quarter of the
    /// machine's memory, like `xz -T0`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    memory_limit: Option<u64>,

    #[command(flatten)]
    patch: PatchArgs,

    /// Print the report as JSON on standard output (on failure, a JSON
    /// object with the error).
    #[arg(long)]
    json: bool,

    /// No progress bar, no summary (errors are still printed).
    #[arg(long, short)]
    quiet: bool,
}

/// autopatch: how ELF files get their RUNPATH and interpreter.
#[derive(clap::Args)]
#[command(next_help_heading = "Linking (autopatch)")]
struct PatchArgs {
    /// Interpreter (dynamic loader) for executables that have one,
    /// e.g. /lib64/ld-linux-x86-64.so.2 or a Nix glibc's. Libraries of that
    /// loader's own directory are then left to it (not this machine's).
    #[arg(long, value_name = "PATH")]
    interpreter: Option<String>,

    /// Library directory of a dependency, searched after the component's
    /// own outputs (repeatable, in order).
    #[arg(long = "dep", value_name = "DIR")]
    deps: Vec<PathBuf>,

    /// Where the GPU driver's libraries (libcuda.so.1, libnvidia-ml.so.1, …)
    /// are at run time, put first in every RUNPATH written, e.g.
    /// /run/opengl-driver/lib on NixOS. Driver libraries are never an
    /// unresolved error: they come from the driver, not from this tree.
    #[arg(long, value_name = "DIR")]
    driver_runpath: Option<String>,

    /// Entry appended to every RUNPATH written (repeatable).
    #[arg(long, value_name = "DIR")]
    append_runpath: Vec<String>,

    /// Libraries that may stay unresolved (glob on the name, repeatable),
    /// e.g. 'libcuda.so*'.
    #[arg(long, value_name = "GLOB")]
    ignore_missing: Vec<String>,

    /// `relative`: $ORIGIN/… entries, the tree can move; `absolute`: final
    /// paths (what Nix's reference scanner needs).
    #[arg(long, value_enum, default_value_t = RunpathArg::Relative)]
    runpath: RunpathArg,

    /// Resolve libc's own libraries (and whatever the system libc directory
    /// provides) into RUNPATH instead of leaving them to the system.
    #[arg(long)]
    keep_libc: bool,

    /// Leave ELF files exactly as they are in the archive.
    #[arg(long)]
    no_patch: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum RunpathArg {
    Relative,
    Absolute,
}

impl PatchArgs {
    fn options(&self) -> Result<Option<redist::AutopatchOptions>, redist::Error> {
        if self.no_patch {
            return Ok(None);
        }
        let ignore_missing = redist::glob_set(&self.ignore_missing, "--ignore-missing")?;
        let deps = self
            .deps
            .iter()
            .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
            .collect();
        Ok(Some(redist::AutopatchOptions {
            interpreter: self.interpreter.clone(),
            deps,
            append_runpath: self.append_runpath.clone(),
            ignore_missing,
            runpath: match self.runpath {
                RunpathArg::Relative => redist::RunpathMode::Relative,
                RunpathArg::Absolute => redist::RunpathMode::Absolute,
            },
            keep_libc: self.keep_libc,
            driver_runpath: self.driver_runpath.clone().filter(|d| !d.is_empty()),
            dlopen_names: false,
            private_copies: false,
        }))
    }
}

/// `1048576`, `512K`, `1M`, `2G`, `1T` (powers of 1024).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let (num, shift) = match s.as_bytes().last() {
        Some(b'K' | b'k') => (&s[..s.len() - 1], 10),
        Some(b'M' | b'm') => (&s[..s.len() - 1], 20),
        Some(b'G' | b'g') => (&s[..s.len() - 1], 30),
        Some(b'T' | b't') => (&s[..s.len() - 1], 40),
        _ => (s, 0),
    };
    num.parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(1u64 << shift))
        .ok_or_else(|| format!("`{s}` is not a size (a number, optionally with K, M, G or T)"))
}

#[derive(clap::Args)]
struct CacheDirArg {
    /// Cache directory (default: $REDIST_CACHE_DIR, $XDG_CACHE_HOME/redist, or ~/.cache/redist).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Print the result as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum CacheCommand {
    /// Print the cache directory.
    ///
    /// Example:
    ///   du -sh "$(redist cache dir)"
    #[command(verbatim_doc_comment)]
    Dir {
        /// Cache directory (default: $REDIST_CACHE_DIR, $XDG_CACHE_HOME/redist, or ~/.cache/redist).
        #[arg(long, value_name = "DIR")]
        cache_dir: Option<PathBuf>,
    },
    /// What the cache holds: verified archives, and the store of unpacked
    /// trees that installs link from (each entry, its size, and the
    /// prefixes that use it).
    ///
    /// Example:
    ///   redist cache info
    #[command(verbatim_doc_comment)]
    Info(CacheDirArg),
    /// Remove what nothing needs: store entries no installed prefix uses
    /// (prefixes that were removed no longer count), and what killed runs
    /// left (partial downloads, half-written entries). Archives stay. Waits
    /// for running installs; a running download is never touched.
    /// `install` also removes the leftovers of killed runs.
    ///
    /// Example:
    ///   redist cache prune
    #[command(verbatim_doc_comment)]
    Prune(CacheDirArg),
    /// Remove everything in the cache: archives and the store. Prefixes
    /// installed with hard links, clones or copies keep working; those
    /// installed with `--link-mode symlink` break. Waits for running
    /// installs; a running download is never touched.
    ///
    /// Example:
    ///   redist cache clean
    #[command(verbatim_doc_comment)]
    Clean(CacheDirArg),
}

#[derive(Clone, Copy, ValueEnum)]
enum LayoutArg {
    Split,
    Merged,
}

impl From<LayoutArg> for redist::Mode {
    fn from(l: LayoutArg) -> redist::Mode {
        match l {
            LayoutArg::Split => redist::Mode::Split,
            LayoutArg::Merged => redist::Mode::Merged,
        }
    }
}

fn main() -> ExitCode {
    // `redist list | head`: when the reader goes away, end quietly as other
    // Unix tools do (killed by SIGPIPE) instead of panicking in println!.
    // SAFETY: restoring a signal's default action, before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    // Invoked through a `patchelf` symlink: be patchelf.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let invoked_as = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name().map(|n| n.to_owned()));
    if invoked_as.is_some_and(|n| n == "patchelf") {
        args.insert(1, "patchelf".into());
        args[0] = "redist".into();
    }
    let cli = Cli::parse_from(args);
    if matches!(
        cli.command,
        Command::Unpack(_)
            | Command::Fetch(_)
            | Command::Install(_)
            | Command::Features(_)
            | Command::NixExpr(_)
    ) {
        clean_up_on_signals();
    }
    let json = match &cli.command {
        Command::Unpack(a) => a.json,
        Command::Install(a) => a.json,
        Command::Fetch(a) => a.json,
        Command::List(a) => a.json,
        _ => false,
    };
    let result = match cli.command {
        Command::Unpack(args) => unpack(args, cli.verbose),
        Command::List(args) => commands::list(args),
        Command::Fetch(args) => commands::fetch(args),
        Command::Install(args) => commands::install(args, cli.verbose),
        Command::Features(args) => commands::features(args),
        Command::NixBuilder => commands::nix_builder(),
        Command::NixJoin => commands::nix_join(),
        Command::NixExpr(args) => commands::nix_expr(args),
        Command::Patchelf(args) => return ExitCode::from(patchelf::run(args)),
        Command::Bench(args) => {
            return match bench::run(args) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    anstream::eprintln!("{}{e}", errors::ERROR);
                    ExitCode::FAILURE
                }
            }
        }
        Command::BenchDecode {
            archive,
            threads,
            memory_limit,
        } => bench::decode(&archive, threads, memory_limit),
        Command::GenerateShellCompletion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "redist", &mut std::io::stdout());
            Ok(())
        }
        Command::GenerateReference { man, markdown } => {
            match reference::write(Cli::command(), man.as_deref(), markdown.as_deref()) {
                Ok(()) => Ok(()),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::FAILURE;
                }
            }
        }
        Command::Rules => {
            print!("{}", redist::Rules::builtin_source());
            Ok(())
        }
        Command::Cache(CacheCommand::Dir { cache_dir }) => {
            println!(
                "{}",
                cache_dir
                    .unwrap_or_else(redist::Cache::default_dir)
                    .display()
            );
            Ok(())
        }
        Command::Cache(CacheCommand::Info(a)) => commands::cache_info(a.cache_dir, a.json),
        Command::Cache(CacheCommand::Prune(a)) => commands::cache_prune(a.cache_dir, a.json),
        Command::Cache(CacheCommand::Clean(a)) => commands::cache_clean(a.cache_dir, a.json),
    };
    if redist::interrupted() {
        // The signal thread is cleaning up and ends the process with the
        // signal; an error now is only its files vanishing under us.
        loop {
            std::thread::park();
        }
    }
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errors::print(&e);
            let lines = errors::lines(&e);
            if json {
                // Scripts reading standard output get the failure too.
                let obj = serde_json::json!({ "error": lines[0], "causes": lines[1..] });
                let mut stdout = std::io::stdout().lock();
                let _ = serde_json::to_writer_pretty(&mut stdout, &obj);
                let _ = writeln!(stdout);
            }
            ExitCode::FAILURE
        }
    }
}

/// On SIGINT, SIGTERM or SIGHUP: remove every staging directory and partial
/// file (destinations are only ever renamed into place, so they stay as they
/// were), then die of the signal as if it had not been caught.
fn clean_up_on_signals() {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let Ok(mut signals) = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP]) else {
        return;
    };
    std::thread::spawn(move || {
        if let Some(signal) = signals.forever().next() {
            let removed = redist::remove_unfinished();
            let name = signal_hook::low_level::signal_name(signal).unwrap_or("a signal");
            eprintln!("\nredist: interrupted by {name}; removed {removed} unfinished path(s)");
            let _ = signal_hook::low_level::emulate_default_handler(signal);
            std::process::exit(128 + signal);
        }
    });
}

fn unpack(args: UnpackArgs, verbose: bool) -> Result<(), redist::Error> {
    let mode = args.layout.into();
    let layout = redist::Layout::new(&redist::Rules::load(args.rules.as_deref())?, mode)?;
    let mut opts = redist::UnpackOptions {
        layout,
        autopatch: args.patch.options()?,
        toolkit_deps: args
            .toolkit_dep
            .iter()
            .map(|d| std::path::absolute(d).unwrap_or_else(|_| d.clone()))
            .collect(),
        durable: !args.no_fsync,
        limits: if args.no_limits {
            redist::Limits {
                memory: args.memory_limit,
                ..redist::Limits::none()
            }
        } else {
            let d = redist::Limits::default();
            redist::Limits {
                max_bytes: args.max_size.unwrap_or(d.max_bytes),
                max_ratio: args.max_ratio.unwrap_or(d.max_ratio),
                memory: args.memory_limit,
            }
        },
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
        if let (true, Some(ap)) = (verbose, &report.autopatch) {
            let _ = write!(stdout, "{}", table::needs(ap));
        }
    }
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    let r = report.reclaimed;
    if r.entries > 0 && !args.quiet {
        eprintln!(
            "removed what killed runs left behind: {} files and directories, {}",
            r.entries,
            table::size(r.bytes)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The command lines after `Example:`, `Examples:` or `Start here:` in
    /// a help text, continuation lines joined.
    fn examples(help: &str) -> Vec<String> {
        let mut out = Vec::new();
        let mut in_block = false;
        let mut current = String::new();
        for line in help.lines() {
            let t = line.trim();
            if matches!(t, "Example:" | "Examples:" | "Start here:") {
                in_block = true;
                continue;
            }
            if !in_block {
                continue;
            }
            if t.is_empty() || !line.starts_with("  ") {
                in_block = false;
                continue;
            }
            match t.strip_suffix('\\') {
                Some(start) => current.push_str(start),
                None => {
                    current.push_str(t);
                    out.push(std::mem::take(&mut current));
                }
            }
        }
        out
    }

    /// The `redist …` invocations of a shell line: each side of a pipe,
    /// inside `"$(…)"`, without redirections.
    fn invocations(line: &str) -> Vec<String> {
        line.split('|')
            .map(|part| {
                let part = part.trim().trim_start_matches("du -sh ");
                let part = part.trim_start_matches("\"$(").trim_end_matches(")\"");
                part.split(" > ").next().unwrap_or("").trim().to_owned()
            })
            .filter(|p| p.starts_with("redist "))
            .collect()
    }

    /// Shell words: blanks separate, single and double quotes group.
    fn words(line: &str) -> Vec<String> {
        let (mut out, mut cur, mut quote) = (Vec::new(), String::new(), None);
        let mut started = false;
        for c in line.chars() {
            match (quote, c) {
                (None, '\'' | '"') => {
                    quote = Some(c);
                    started = true;
                }
                (Some(q), c) if c == q => quote = None,
                (None, c) if c.is_whitespace() => {
                    if started {
                        out.push(std::mem::take(&mut cur));
                        started = false;
                    }
                }
                (_, c) => {
                    cur.push(c);
                    started = true;
                }
            }
        }
        if started {
            out.push(cur);
        }
        out
    }

    #[test]
    fn every_example_in_the_help_parses() {
        let mut cli = Cli::command();
        cli.build();
        let mut helps = vec![("redist".to_owned(), cli.render_long_help().to_string())];
        for sub in cli.get_subcommands_mut() {
            if sub.is_hide_set() || sub.get_name() == "help" {
                continue;
            }
            let name = sub.get_name().to_owned();
            helps.push((name.clone(), sub.render_long_help().to_string()));
            for nested in sub.get_subcommands_mut() {
                if nested.get_name() != "help" {
                    let n = format!("{name} {}", nested.get_name());
                    helps.push((n, nested.render_long_help().to_string()));
                }
            }
        }
        let mut parsed = 0;
        for (name, help) in &helps {
            let calls: Vec<String> = examples(help).iter().flat_map(|l| invocations(l)).collect();
            assert!(!calls.is_empty(), "`redist {name} --help` shows no example");
            for call in calls {
                if let Err(e) = Cli::try_parse_from(words(&call)) {
                    panic!("the example `{call}` of `redist {name} --help` does not parse:\n{e}");
                }
                parsed += 1;
            }
        }
        assert!(parsed >= 30, "{parsed} examples");
    }

    #[test]
    fn shell_words() {
        assert_eq!(
            words(r#"redist patchelf --set-rpath '$ORIGIN/../lib' "a b" c"#),
            [
                "redist",
                "patchelf",
                "--set-rpath",
                "$ORIGIN/../lib",
                "a b",
                "c"
            ]
        );
        assert_eq!(
            invocations(r#"curl -sL "$URL" | redist unpack - --out nvcc > r.json"#),
            ["redist unpack - --out nvcc"]
        );
    }
}
