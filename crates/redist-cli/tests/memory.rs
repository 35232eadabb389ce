//! `--memory-limit`: the decoder's memory budget. An archive whose
//! dictionary (xz) or window (zstd) needs more than the budget is refused
//! before anything is written; one that fits unpacks; install splits the
//! budget between the components it unpacks at once.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;

/// `b.tar` (20 MiB: 1 MiB of noise, 20 times) compressed by `xz` with a
/// 32 MiB dictionary and by `zstd` with a 32 MiB window.
fn archives(d: &Dir) -> (PathBuf, PathBuf) {
    let mut noise = Vec::with_capacity(1 << 20);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    while noise.len() < 1 << 20 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        noise.extend_from_slice(&x.to_le_bytes());
    }
    let data: Vec<u8> = noise.repeat(20);
    let archive = redist_fixtures::Archive {
        items: vec![
            redist_fixtures::Item::Dir("b/".into()),
            redist_fixtures::Item::file("b/big.bin", data),
        ],
    };
    let tar = d.archive(&archive, redist_fixtures::Compression::None);
    let xz = d.join("b.tar.xz");
    let zst = d.join("b.tar.zst");
    let ok = |c: &mut Command| assert!(c.status().unwrap().success(), "{c:?}");
    ok(Command::new("xz")
        .args(["--lzma2=preset=0,dict=32MiB", "-k", "-c"])
        .arg(&tar)
        .stdout(std::fs::File::create(&xz).unwrap()));
    ok(Command::new("zstd")
        .args(["-q", "-1", "--long=25", "-c"])
        .arg(&tar)
        .stdout(std::fs::File::create(&zst).unwrap()));
    (xz, zst)
}

fn unpacked_ok(out: &Path) {
    let data = std::fs::read(out.join("big.bin")).unwrap();
    assert_eq!(data.len(), 20 << 20);
}

#[test]
fn an_archive_needing_more_than_the_budget_is_refused_before_writing() {
    let d = Dir::new();
    let (xz, zst) = archives(&d);
    for a in [&xz, &zst] {
        let out = d.join("out");
        let o = unpack(a, &out, &["--memory-limit", "16M", "--no-patch"]);
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!(
                "{}: refusing to unpack: decoding it needs more memory than --memory-limit allows (16 MiB)",
                a.display()
            )),
            "{}",
            stderr(&o)
        );
        assert!(!out.exists());
        let tar = d.join("fixture.tar");
        assert_eq!(d.leftovers(&[&xz, &zst, &tar]), Vec::<String>::new());
        // Within the budget (and without one) it unpacks.
        for extra in [&["--memory-limit", "40M"][..], &[]] {
            let out = d.join("fits");
            let o = unpack(
                a,
                &out,
                &[extra, &["--no-patch", "--layout", "merged"]].concat(),
            );
            assert!(o.status.success(), "{}", stderr(&o));
            unpacked_ok(&out);
            std::fs::remove_dir_all(&out).unwrap();
        }
    }
}

#[test]
fn a_multi_block_archive_decodes_on_fewer_threads_within_the_budget() {
    // Multi-block (as `xz -T` writes it): each block thread needs its own
    // buffers; a budget that fits one thread still unpacks it.
    let d = Dir::new();
    let archive = redist_fixtures::Archive {
        items: vec![
            redist_fixtures::Item::Dir("m/".into()),
            redist_fixtures::Item::file("m/a.bin", vec![7u8; 6 << 20]),
            redist_fixtures::Item::file("m/b.bin", vec![9u8; 6 << 20]),
        ],
    };
    let multi = d.archive(&archive, redist_fixtures::Compression::XzMultiBlock);
    for limit in ["12M", "1G"] {
        let out = d.join(&format!("out-{limit}"));
        let o = unpack(
            &multi,
            &out,
            &[
                "--memory-limit",
                limit,
                "--threads",
                "2",
                "--no-patch",
                "--layout",
                "merged",
            ],
        );
        assert!(o.status.success(), "{limit}: {}", stderr(&o));
        assert_eq!(
            std::fs::read(out.join("a.bin")).unwrap(),
            vec![7u8; 6 << 20]
        );
    }
}

#[test]
fn install_refuses_an_archive_over_its_share_of_the_budget() {
    let d = Dir::new();
    let (xz, _) = archives(&d);
    // A mirror of one component whose archive is the big-dictionary one.
    let root = d.join("mirror");
    let rel = "comp/linux-x86_64/comp-linux-x86_64-1-archive.tar.xz";
    std::fs::create_dir_all(root.join("comp/linux-x86_64")).unwrap();
    std::fs::copy(&xz, root.join(rel)).unwrap();
    let data = std::fs::read(&xz).unwrap();
    use sha2::Digest;
    let sha: String = sha2::Sha256::digest(&data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let manifest = root.join("redistrib_1.json");
    std::fs::write(
        &manifest,
        serde_json::json!({
            "release_label": "1",
            "comp": {"name": "comp", "version": "1", "linux-x86_64": {
                "relative_path": rel, "sha256": sha, "md5": "", "size": data.len().to_string()
            }}
        })
        .to_string(),
    )
    .unwrap();
    let install = |limit: &str, prefix: &Path| {
        let cache = d.join("cache");
        run(
            &[
                "install".as_ref(),
                "--manifest".as_ref(),
                manifest.as_os_str(),
                "--cache-dir".as_ref(),
                cache.as_os_str(),
                "--platform".as_ref(),
                "linux-x86_64".as_ref(),
                "--prefix".as_ref(),
                prefix.as_os_str(),
                "--memory-limit".as_ref(),
                limit.as_ref(),
                "--no-patch".as_ref(),
                "comp".as_ref(),
            ],
            None,
        )
    };
    let p = d.join("prefix");
    let o = install("16M", &p);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("decoding it needs more memory than --memory-limit allows (16 MiB)"),
        "{}",
        stderr(&o)
    );
    assert!(!p.exists());
    let o = install("64M", &p);
    assert!(o.status.success(), "{}", stderr(&o));
    unpacked_ok(&p);
}
