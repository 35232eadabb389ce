//! How errors are written: each error's own message, then its causes.
//! Causes join the line they explain with ": "; a context layer (which
//! component failed) ends its line, and what went wrong inside it follows
//! on a "caused by" line.

use std::error::Error;

/// `e` and all its causes on one line.
pub fn one_line(e: &(dyn Error + 'static)) -> String {
    lines(e).join(": ")
}

/// `e` and its causes, one line per context layer.
pub fn lines(e: &(dyn Error + 'static)) -> Vec<String> {
    let mut lines = vec![e.to_string()];
    let mut breaks = is_context(e);
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        match lines.last_mut() {
            Some(last) if !breaks => {
                last.push_str(": ");
                last.push_str(&text);
            }
            _ => lines.push(text),
        }
        breaks = is_context(s);
        cur = s.source();
    }
    lines
}

fn is_context(e: &(dyn Error + 'static)) -> bool {
    matches!(
        e.downcast_ref::<redist::Error>(),
        Some(redist::Error::Component { .. })
    )
}

/// `error: `, bold red as clap writes it; `anstream` drops the colour
/// when standard error is not a terminal or `NO_COLOR` is set.
pub const ERROR: StyledPrefix = StyledPrefix;

/// The `error: ` prefix (see [`ERROR`]).
pub struct StyledPrefix;

impl std::fmt::Display for StyledPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let style = anstyle::Style::new()
            .bold()
            .fg_color(Some(anstyle::AnsiColor::Red.into()));
        write!(f, "{style}error:{style:#} ")
    }
}

/// How `redist` prints a failure on standard error: `error: ` and the
/// lines of [`lines`], each cause on a `caused by:` line; the prefix is
/// coloured on a terminal.
pub fn print(e: &(dyn Error + 'static)) {
    anstream::eprintln!("{ERROR}{}", lines(e).join("\n  caused by: "));
}

#[cfg(test)]
mod tests {
    //! Every error a user can reach, printed as `redist` prints it. Each
    //! `walk!` lists one sample per variant and matches them without a
    //! wildcard, so a new variant does not compile until it has a sample
    //! here, and its message is then reviewed in the snapshot.

    use std::io;
    use std::path::PathBuf;

    use redist::{Error, LimitExceeded, ManifestError, SourceError, UnsafeRule, VerifyError};

    /// What [`super::print`] writes, without colour.
    fn render(e: &(dyn std::error::Error + 'static)) -> String {
        format!("error: {}", super::lines(e).join("\n  caused by: "))
    }

    /// `(variant, sample)` for each `pattern => sample`; the match over
    /// the patterns has no wildcard, and each sample must match its own.
    macro_rules! walk {
        ($ty:ty; $($pat:pat => $sample:expr),+ $(,)?) => {{
            fn variant(e: &$ty) -> &'static str {
                match e { $($pat => stringify!($pat)),+ }
            }
            let samples: Vec<(&'static str, $ty)> = vec![$((stringify!($pat), $sample)),+];
            for (name, e) in &samples {
                assert_eq!(variant(e), *name, "the sample listed for {name} is another variant");
            }
            samples
        }};
    }

    fn os(code: i32) -> io::Error {
        io::Error::from_raw_os_error(code)
    }

    fn json_error() -> serde_json::Error {
        serde_json::from_str::<serde_json::Value>("{\"cuda_nvcc\": ").unwrap_err()
    }

    const ARCHIVE: &str = "cuda_nvcc-linux-x86_64-13.0.88-archive.tar.xz";

    fn unsafe_rules() -> Vec<(&'static str, UnsafeRule)> {
        walk!(UnsafeRule;
            UnsafeRule::AbsolutePath => UnsafeRule::AbsolutePath,
            UnsafeRule::ParentComponent => UnsafeRule::ParentComponent,
            UnsafeRule::NonUtf8 => UnsafeRule::NonUtf8,
            UnsafeRule::ThroughSymlink(_) => UnsafeRule::ThroughSymlink("x/lib".into()),
            UnsafeRule::AbsoluteSymlink(_) => UnsafeRule::AbsoluteSymlink("/etc/passwd".into()),
            UnsafeRule::SymlinkEscapes(_) => UnsafeRule::SymlinkEscapes("../../etc/passwd".into()),
            UnsafeRule::HardlinkOutside(_) => UnsafeRule::HardlinkOutside("/etc/shadow".into()),
            UnsafeRule::SpecialFile(_) => UnsafeRule::SpecialFile("character device"),
            UnsafeRule::TypeChange { .. } => UnsafeRule::TypeChange { existing: "directory", new: "file" },
        )
    }

    fn limits() -> Vec<(&'static str, LimitExceeded)> {
        walk!(LimitExceeded;
            LimitExceeded::Size(_) => LimitExceeded::Size(1 << 40),
            LimitExceeded::Ratio(_) => LimitExceeded::Ratio(1000),
            LimitExceeded::Memory(_) => LimitExceeded::Memory(64 << 20),
        )
    }

    fn verify() -> Vec<(&'static str, VerifyError)> {
        walk!(VerifyError;
            VerifyError::Sha256 { .. } => VerifyError::Sha256 {
                expected: "5f8a…e1".into(),
                actual: "09c2…7b".into(),
            },
            VerifyError::TooShort { .. } => VerifyError::TooShort { expected: 32_838_160, actual: 1_048_576 },
            VerifyError::TooLong { .. } => VerifyError::TooLong { expected: 32_838_160 },
        )
    }

    fn source() -> Vec<(&'static str, SourceError)> {
        let url = "https://developer.download.nvidia.com/compute/cuda/redist/cuda_nvcc/linux-x86_64/cuda_nvcc-linux-x86_64-13.0.88-archive.tar.xz";
        walk!(SourceError;
            SourceError::Http { .. } => SourceError::Http {
                url: url.into(),
                what: Some("HTTP 404 Not Found".into()),
                cause: None,
            },
            SourceError::File { .. } => SourceError::File { path: "mirror/redistrib_13.0.2.json".into(), source: os(2) },
            SourceError::NotCached { .. } => SourceError::NotCached {
                what: "cuda_nvcc 13.0.88".into(),
                path: "/home/me/.cache/redist".into(),
            },
            SourceError::Cache { .. } => SourceError::Cache { path: "/home/me/.cache/redist/archives".into(), source: os(28) },
        )
    }

    fn manifest() -> Vec<(&'static str, ManifestError)> {
        let origin =
            "https://developer.download.nvidia.com/compute/cuda/redist/redistrib_13.0.2.json";
        walk!(ManifestError;
            ManifestError::Invalid { .. } => ManifestError::Invalid {
                origin: origin.into(),
                what: Some("not JSON".into()),
                cause: Some(json_error()),
            },
            ManifestError::UnknownComponent { .. } => ManifestError::UnknownComponent {
                origin: origin.into(),
                name: "cuda_nvc".into(),
                available: "cuda_cccl, cuda_crt, cuda_cudart, cuda_nvcc, libnvvm".into(),
            },
            ManifestError::NoPlatform { .. } => ManifestError::NoPlatform {
                component: "nsight_systems".into(),
                version: "2025.3.2".into(),
                platform: "linux-aarch64".into(),
                available: "linux-x86_64, linux-sbsa".into(),
            },
            ManifestError::VariantNeeded { .. } => ManifestError::VariantNeeded {
                component: "cudnn".into(),
                version: "9.14.0.64".into(),
                choices: "cuda12, cuda13".into(),
            },
            ManifestError::UnknownVariant { .. } => ManifestError::UnknownVariant {
                component: "cudnn".into(),
                version: "9.14.0.64".into(),
                variant: "cuda11".into(),
                choices: "cuda12, cuda13".into(),
            },
            ManifestError::VariantMismatch { .. } => ManifestError::VariantMismatch {
                component: "libcusparse_lt".into(),
                version: "0.10.0.12".into(),
                cuda: "12.9.1".into(),
                from: "the set's cuda manifest 12.9.1".into(),
                choices: "cuda13".into(),
            },
            ManifestError::Ambiguous { .. } => ManifestError::Ambiguous {
                name: "cuda_cudart".into(),
                candidates: "cuda:cuda_cudart, cutensor:cuda_cudart".into(),
            },
            ManifestError::UnknownProduct { .. } => ManifestError::UnknownProduct {
                product: "cudnn".into(),
                name: "cudnn:cudnn".into(),
                available: "cuda".into(),
            },
            ManifestError::InvalidSet { .. } => ManifestError::InvalidSet {
                path: "cuda-13.toml".into(),
                message: "`manifests` is missing".into(),
            },
            ManifestError::BadCudaVersion { .. } => ManifestError::BadCudaVersion { value: "thirteen".into() },
            ManifestError::DuplicateProduct { .. } => ManifestError::DuplicateProduct {
                product: "cuda".into(),
                first: "redistrib_13.0.2.json".into(),
                second: "redistrib_12.9.1.json".into(),
            },
            ManifestError::WindowsZip { .. } => ManifestError::WindowsZip {
                component: "cuda_nvcc".into(),
                version: "13.0.88".into(),
                platform: "windows-x86_64".into(),
                path: "cuda_nvcc/windows-x86_64/cuda_nvcc-windows-x86_64-13.0.88-archive.zip".into(),
            },
            ManifestError::UnknownHost { .. } => ManifestError::UnknownHost { arch: "riscv64".into() },
        )
    }

    fn errors() -> Vec<(&'static str, Error)> {
        let prefix = PathBuf::from("/opt/cuda-13");
        walk!(Error;
            Error::Read { .. } => Error::Read { archive: ARCHIVE.into(), source: os(2) },
            Error::UnknownFormat { .. } => Error::UnknownFormat {
                archive: "cuda_nvcc.zip".into(),
                magic: "50 4b 03 04 14 00 00 00".into(),
            },
            Error::Corrupt { .. } => Error::Corrupt {
                archive: ARCHIVE.into(),
                format: "xz",
                cause: io::Error::new(io::ErrorKind::InvalidData, "xz data is corrupt"),
            },
            Error::TooLarge { .. } => Error::TooLarge { archive: ARCHIVE.into(), limit: LimitExceeded::Ratio(1000) },
            Error::Truncated { .. } => Error::Truncated {
                archive: ARCHIVE.into(),
                detail: "the tar stream ends inside `bin/ptxas` (4096 of 31457280 bytes)".into(),
            },
            Error::Tar { .. } => Error::Tar {
                archive: ARCHIVE.into(),
                at: Some("bin/ptxas".into()),
                cause: io::Error::new(io::ErrorKind::InvalidData, "archive header checksum mismatch"),
            },
            Error::Unsafe { .. } => Error::Unsafe {
                archive: ARCHIVE.into(),
                entry: "cuda_nvcc/lib/up".into(),
                rule: UnsafeRule::SymlinkEscapes("../../etc/passwd".into()),
            },
            Error::ReadFile { .. } => Error::ReadFile { path: "/opt/cuda-13/lib/libcudart.so.13".into(), source: os(13) },
            Error::Write { .. } => Error::Write { path: "/opt/.cuda-13.redist-staging-4242-0/bin/ptxas".into(), source: os(28) },
            Error::OutputExists(_) => Error::OutputExists("nvcc".into()),
            Error::Verify { .. } => Error::Verify {
                archive: ARCHIVE.into(),
                cause: VerifyError::Sha256 { expected: "5f8a…e1".into(), actual: "09c2…7b".into() },
            },
            Error::Source(_) => Error::Source(SourceError::NotCached {
                what: "cuda_nvcc 13.0.88".into(),
                path: "/home/me/.cache/redist".into(),
            }),
            Error::Manifest(_) => Error::Manifest(ManifestError::BadCudaVersion { value: "thirteen".into() }),
            Error::Component { .. } => Error::Component {
                action: "install",
                component: "cuda_nvcc".into(),
                version: "13.0.88".into(),
                source: Box::new(Error::Verify {
                    archive: ARCHIVE.into(),
                    cause: VerifyError::TooShort { expected: 32_838_160, actual: 1_048_576 },
                }),
            },
            Error::Busy { .. } => Error::Busy { prefix: prefix.clone(), pid: Some(4242) },
            Error::InstallRecord { .. } => Error::InstallRecord {
                path: "/opt/cuda-13/.redist/installed.json".into(),
                cause: json_error(),
            },
            Error::CorruptCache { .. } => Error::CorruptCache {
                what: "cuda_nvcc 13.0.88".into(),
                cause: Box::new(Error::Corrupt {
                    archive: ARCHIVE.into(),
                    format: "xz",
                    cause: io::Error::new(io::ErrorKind::InvalidData, "xz data is corrupt"),
                }),
            },
            Error::Install { .. } => Error::Install {
                what: "cuda_nvcc 13.0.88".into(),
                message: "bin/nvcc.profile is also in cuda_crt 13.0.88 with other contents".into(),
            },
            Error::Unresolved { .. } => Error::Unresolved {
                pairs: vec![
                    ("lib/libcudnn_adv.so.9".into(), "libcublasLt.so.13".into()),
                    ("bin/app".into(), "libfoo.so.1".into()),
                ],
            },
            Error::MissingDependency(_) => Error::MissingDependency("/opt/glibc/lib".into()),
            Error::ToolkitDep { .. } => Error::ToolkitDep {
                path: "cuda_cudart".into(),
                message: "has no include, lib or nvvm directory: not a toolkit tree".into(),
            },
            Error::Patch { .. } => Error::Patch {
                path: "bin/ptxas".into(),
                cause: elfpatch::ErrorKind::Malformed(elfpatch::Malformed::Duplicate("PT_INTERP")),
            },
            Error::Nix { .. } => Error::Nix {
                message: "the attribute `src` is missing: the derivation must give the archive".into(),
                cause: None,
            },
            Error::DecoderFailed => Error::DecoderFailed,
            Error::Rules { .. } => Error::Rules {
                origin: "my-rules.toml".into(),
                what: Some("output rule 3 (`static`)".into()),
                cause: Some("invalid glob `**/*.[a`: unclosed character class".into()),
            },
        )
    }

    #[test]
    fn every_error_variant_reads_well() {
        let mut text = String::new();
        let mut add = |name: &str, e: &(dyn std::error::Error + 'static)| {
            text.push_str(&format!("# {name}\n{}\n\n", render(e)));
        };
        for (name, e) in errors() {
            add(name, &e);
        }
        // The inner enums, each inside the variant that carries it.
        for (name, rule) in unsafe_rules() {
            let e = Error::Unsafe {
                archive: ARCHIVE.into(),
                entry: "cuda_nvcc/x".into(),
                rule,
            };
            add(name, &e);
        }
        for (name, limit) in limits() {
            add(
                name,
                &Error::TooLarge {
                    archive: ARCHIVE.into(),
                    limit,
                },
            );
        }
        for (name, cause) in verify() {
            add(
                name,
                &Error::Verify {
                    archive: ARCHIVE.into(),
                    cause,
                },
            );
        }
        for (name, e) in source() {
            add(name, &Error::Source(e));
        }
        for (name, e) in manifest() {
            add(name, &Error::Manifest(e));
        }
        insta::assert_snapshot!("every-error", text);
    }
}
