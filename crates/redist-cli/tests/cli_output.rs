//! What `redist` prints, snapshot-tested (`insta`): help texts, tables,
//! reports and error messages. A change in wording shows up as a reviewed
//! diff of `tests/snapshots/` (`cargo insta review`, or
//! `INSTA_UPDATE=always cargo test` and `git diff`).
//!
//! Temporary paths, server ports, sizes and timings are replaced by
//! placeholders, so the snapshots hold only the wording and the structure.

mod common;

use std::path::Path;

use common::*;
use redist_fixtures::{cudart_like, redist_archive};

/// Run `redist` with a fixed terminal width; stdout and stderr, labelled.
fn output(args: &[&str], dir: Option<&Path>) -> String {
    let o = redist()
        .args(args)
        .env("COLUMNS", "100")
        .env_remove("XDG_CACHE_HOME")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run redist");
    let mut text = format!("exit: {:?}\n", o.status.code());
    for (name, bytes) in [("stdout", &o.stdout), ("stderr", &o.stderr)] {
        if !bytes.is_empty() {
            text.push_str(&format!("--- {name}\n{}", String::from_utf8_lossy(bytes)));
        }
    }
    match dir {
        Some(d) => text.replace(&d.display().to_string(), "[DIR]"),
        None => text,
    }
}

/// Compare `text` with the snapshot `name`. `volatile`: sizes, timings,
/// thread counts, ports and checksums, which vary between runs and
/// compilers, are replaced by placeholders.
fn snapshot(name: &str, text: String, volatile: bool) {
    let mut settings = insta::Settings::clone_current();
    settings.set_prepend_module_to_snapshot(false);
    if volatile {
        // With the padding before it, whose width follows the number's.
        settings.add_filter(r" *\d+(\.\d+)? (B|KiB|MiB|GiB)\b", " [size]");
        settings.add_filter(r"(?m)^(  (decode|write|fixups|total)) .*$", "$1 [time]");
        settings.add_filter(r"\d+ decoder threads?", "[n] decoder threads");
        settings.add_filter(r"127\.0\.0\.1:\d+", "[server]");
        settings.add_filter(r"\b[0-9a-f]{64}\b", "[sha256]");
    }
    settings.bind(|| insta::assert_snapshot!(name, text));
}

#[test]
fn help_texts_teach_each_command() {
    let commands = [
        "",
        "unpack",
        "list",
        "fetch",
        "install",
        "features",
        "rules",
        "nix-builder",
        "nix-expr",
        "patchelf",
    ];
    for command in commands {
        let mut args: Vec<&str> = command.split_whitespace().collect();
        args.push("--help");
        let name = format!(
            "help-{}",
            if command.is_empty() {
                "redist"
            } else {
                command
            }
        );
        snapshot(&name, output(&args, None), false);
    }
}

fn real_manifest(name: &str) -> String {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/manifests")
        .join(name)
        .display()
        .to_string()
}

#[test]
fn list_tables_of_the_real_manifests() {
    let cuda = real_manifest("cuda_redistrib_12.9.1.json");
    let cudnn = real_manifest("cudnn_redistrib_9.13.0.json");
    let dir = Path::new(&cuda).parent().unwrap().to_owned();
    for (name, args) in [
        (
            "list-cuda-12.9.1-x86_64",
            vec!["list", "--manifest", &cuda, "--platform", "linux-x86_64"],
        ),
        (
            "list-cudnn-9.13.0-sbsa",
            vec!["list", "--manifest", &cudnn, "--platform", "linux-sbsa"],
        ),
        (
            "list-cuda-12.9.1-windows",
            vec!["list", "--manifest", &cuda, "--platform", "windows-x86_64"],
        ),
    ] {
        snapshot(name, output(&args, Some(&dir)), false);
    }
}

#[test]
fn unpack_report_names_outputs_elf_files_and_fixups() {
    let d = Dir::new();
    let archive = d.archive(&cudart_like(), Compression::Xz);
    let out = d.join("cudart");
    let args = [
        "unpack",
        archive.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ];
    snapshot("unpack-report", output(&args, Some(d.path())), true);
}

#[test]
fn errors_name_the_file_and_the_cause() {
    let d = Dir::new();
    let out = d.join("out");
    let out = out.to_str().unwrap();

    let evil = redist_archive("x", "1.0", vec![Item::link("lib/escape", "../../../etc")]);
    let evil = d.archive(&evil, Compression::Gzip);
    let truncated = d.join("truncated.tar.xz");
    let whole = cudart_like().archive(Compression::Xz);
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let not_an_archive = d.join("notes.txt");
    std::fs::write(&not_an_archive, "these are notes, not a tarball\n").unwrap();

    let cases: [(&str, Vec<&str>); 5] = [
        (
            "error-missing-archive",
            vec!["unpack", "missing.tar.xz", "--out", out],
        ),
        (
            "error-unsafe-symlink",
            vec!["unpack", evil.to_str().unwrap(), "--out", out],
        ),
        (
            "error-truncated-xz",
            vec!["unpack", truncated.to_str().unwrap(), "--out", out],
        ),
        (
            "error-not-an-archive",
            vec!["unpack", not_an_archive.to_str().unwrap(), "--out", out],
        ),
        (
            "error-missing-manifest",
            vec!["list", "--manifest", "missing.json"],
        ),
    ];
    for (name, args) in cases {
        snapshot(name, output(&args, Some(d.path())), true);
    }
}

#[test]
fn install_errors_name_the_component_and_the_cause() {
    let m = Mirror::demo();
    let show = |o: std::process::Output| {
        let text = format!(
            "exit: {:?}\n--- stderr\n{}",
            o.status.code(),
            String::from_utf8_lossy(&o.stderr)
        );
        text.replace(&m.dir.path().display().to_string(), "[DIR]")
    };
    snapshot(
        "install-unknown-component",
        show(m.install(&["cuda_nope"])),
        true,
    );
    m.tamper("cuda_nvcc", "sha256", "0".repeat(64).into());
    snapshot(
        "install-wrong-sha256",
        show(m.install(&["cuda_nvcc"])),
        true,
    );
}

/// `docs/cli.md` is what `redist generate-reference` writes now.
#[test]
fn the_cli_reference_is_current() {
    let d = Dir::new();
    let fresh = d.join("cli.md");
    let o = run(
        &[
            "generate-reference".as_ref(),
            "--markdown".as_ref(),
            fresh.as_os_str(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let committed = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/cli.md");
    assert!(
        std::fs::read_to_string(&committed).unwrap() == std::fs::read_to_string(&fresh).unwrap(),
        "docs/cli.md is out of date: run `cargo run -p redist-cli -- generate-reference --markdown docs/cli.md`"
    );
}

/// A man page per command, and completion scripts that bash accepts.
#[test]
fn man_pages_and_completions_are_generated() {
    let d = Dir::new();
    let man = d.join("man");
    let o = run(
        &[
            "generate-reference".as_ref(),
            "--man".as_ref(),
            man.as_os_str(),
        ],
        None,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    for page in [
        "redist.1",
        "redist-install.1",
        "redist-unpack.1",
        "redist-cache-prune.1",
        "redist-patchelf.1",
    ] {
        let text = std::fs::read_to_string(man.join(page)).unwrap();
        assert!(
            text.starts_with(".ie"),
            "{page}: {}",
            &text[..40.min(text.len())]
        );
        assert!(text.contains(".SH NAME"), "{page}");
    }
    for shell in ["bash", "zsh", "fish"] {
        let o = run(
            &["generate-shell-completion".as_ref(), shell.as_ref()],
            None,
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stdout(&o).contains("redist"), "{shell}");
        assert!(
            stdout(&o).contains("link-mode"),
            "{shell}: flags are completed"
        );
    }
    let o = run(
        &["generate-shell-completion".as_ref(), "bash".as_ref()],
        None,
    );
    let script = d.join("redist.bash");
    std::fs::write(&script, &o.stdout).unwrap();
    let checked = std::process::Command::new("bash")
        .arg("-n")
        .arg(&script)
        .status()
        .unwrap();
    assert!(checked.success(), "bash -n rejects the completion script");
}

/// Runs `redist ARGS` on a pseudo-terminal (util-linux `script`), with
/// `env` added; what the terminal showed.
fn on_a_terminal(args: &[&str], env: &[(&str, &str)]) -> String {
    let bin = env!("CARGO_BIN_EXE_redist");
    let line = std::iter::once(bin)
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = std::process::Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env("TERM", "xterm-256color");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let o = cmd.output().expect("script (util-linux)");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Whether `text` has an SGR escape (a colour, bold).
fn has_colour(text: &str) -> bool {
    text.split("\x1b[").skip(1).any(|rest| {
        let code: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == ';')
            .collect();
        rest[code.len()..].starts_with('m')
    })
}

#[test]
fn colours_only_on_a_terminal_and_never_with_no_color() {
    let d = Dir::new();
    let missing = d.join("missing.tar.xz");
    let missing = missing.to_str().unwrap();
    let out = d.join("out");
    let out = out.to_str().unwrap();
    // Our own errors and clap's help and usage errors.
    for args in [
        vec!["unpack", missing, "--out", out],
        vec!["--help"],
        vec!["instal"],
    ] {
        let tty = on_a_terminal(&args, &[]);
        assert!(
            has_colour(&tty),
            "{args:?} on a terminal has no colour:\n{tty}"
        );
        let plain = on_a_terminal(&args, &[("NO_COLOR", "1")]);
        assert!(
            !has_colour(&plain),
            "{args:?} with NO_COLOR has colour:\n{plain:?}"
        );
        let piped = redist()
            .args(&args)
            .env_remove("NO_COLOR")
            .output()
            .unwrap();
        for bytes in [&piped.stdout, &piped.stderr] {
            let text = String::from_utf8_lossy(bytes);
            assert!(!has_colour(&text), "{args:?} piped has colour:\n{text:?}");
        }
    }
    let tty = on_a_terminal(&["unpack", missing, "--out", out], &[("NO_COLOR", "1")]);
    assert!(tty.contains("error: cannot read"), "{tty}");
}

#[test]
fn progress_bars_only_on_a_terminal() {
    let d = Dir::new();
    // 8 MiB that do not compress: the bar is drawn while it decodes.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let data: Vec<u8> = (0..8 << 20)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (x >> 56) as u8
        })
        .collect();
    let a = redist_fixtures::Archive {
        items: vec![redist_fixtures::Item::file(
            "big-1.0-archive/lib/libbig.a",
            data,
        )],
    };
    let archive = d.archive(&a, redist_fixtures::Compression::Gzip);
    let tty = on_a_terminal(
        &[
            "unpack",
            archive.to_str().unwrap(),
            "--out",
            d.join("tty").to_str().unwrap(),
            "--no-fsync",
        ],
        &[],
    );
    assert!(tty.contains("B/s"), "no progress bar on a terminal:\n{tty}");
    let piped = unpack(&archive, &d.join("piped"), &["--no-fsync"]);
    assert!(piped.status.success());
    assert!(!stderr(&piped).contains("B/s"), "{}", stderr(&piped));
    let quiet = on_a_terminal(
        &[
            "unpack",
            archive.to_str().unwrap(),
            "--out",
            d.join("quiet").to_str().unwrap(),
            "-q",
        ],
        &[],
    );
    assert!(!quiet.contains("B/s"), "a bar with --quiet:\n{quiet}");
}

#[test]
fn verbose_says_where_each_library_was_found() {
    let mut components = redist_fixtures::mirror::demo_components();
    components.push(redist_fixtures::mirror::app_component());
    components.push(redist_fixtures::mirror::libs_component("comp_lib"));
    let m = Mirror::new(&components);
    let o = m.install(&["comp_app", "comp_lib", "-v"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("how each ELF file finds its libraries:"),
        "{text}"
    );
    let app = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("bin/app:"))
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    assert!(app.contains("RUNPATH $ORIGIN/../lib"), "{text}");
    assert!(app.contains("its own tree: lib"), "{text}");
    // Without -v, none of it.
    let quiet = m.run_with_cache(
        &m.cache(),
        "install",
        &["comp_app", "--prefix", m.dir.join("p2").to_str().unwrap()],
    );
    assert!(
        !stdout(&quiet).contains("finds its libraries"),
        "{}",
        stdout(&quiet)
    );
}

#[test]
fn a_reader_that_goes_away_ends_it_quietly() {
    use std::os::unix::process::ExitStatusExt;
    // `redist list … | head -0`: the reader is gone before redist writes.
    let manifest = real_manifest("cuda_redistrib_12.9.1.json");
    let mut child = redist()
        .args([
            "list",
            "--manifest",
            &manifest,
            "--platform",
            "linux-x86_64",
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.is_empty(), "{err}");
    assert_eq!(o.status.signal(), Some(libc::SIGPIPE), "{:?}", o.status);
}
