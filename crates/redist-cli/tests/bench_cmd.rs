//! `redist bench`: every stage measured against its baseline, in a work
//! directory it removes, for each container format.

mod common;

use common::*;
use redist_fixtures::cudart_like;

#[test]
fn bench_measures_each_stage_against_its_baseline() {
    let d = Dir::new();
    let mut archives = Vec::new();
    for c in [Compression::Xz, Compression::Gzip, Compression::Zstd] {
        archives.push(cudart_like().write_to(d.path(), "cudart", c));
    }
    let work = d.join("work");
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "bench".as_ref(),
        "--runs".as_ref(),
        "2".as_ref(),
        "--json".as_ref(),
        "--dir".as_ref(),
        work.as_os_str(),
    ];
    args.extend(archives.iter().map(|a| a.as_os_str()));
    let j = ok_json(&run(&args, None));
    let results = j.as_array().unwrap();
    assert_eq!(results.len(), 3);
    for (r, tool) in results.iter().zip(["xz", "gzip", "zstd"]) {
        assert!(
            r["bytes_out"].as_u64().unwrap() > r["bytes_in"].as_u64().unwrap(),
            "{r}"
        );
        let stages: Vec<&str> = r["stages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(stages, ["decode", "unpack", "full"]);
        for s in r["stages"].as_array().unwrap() {
            assert_eq!(s["redist"]["seconds"].as_array().unwrap().len(), 2, "{s}");
            assert!(s["redist"]["min_s"].as_f64().unwrap() > 0.0);
            assert!(s["redist"]["peak_rss"].as_u64().unwrap() > 1 << 20, "{s}");
            assert!(s["mb_s_out"].as_f64().unwrap() > 0.0);
            let base = &s["baseline"];
            if !base.is_null() {
                assert!(s["ratio"].as_f64().unwrap() > 0.0, "{s}");
            }
        }
        // xz with as many threads as redist's decoder, in both baselines.
        let threads = r["decoder_threads"].as_u64().unwrap();
        let (decode_cmd, tar_cmd) = match tool {
            "xz" => (
                format!("xz -T{threads} -dc"),
                format!("tar -I xz -T{threads} -xf"),
            ),
            t => (format!("{t} -dc"), "tar -xf".to_owned()),
        };
        let decode = &r["stages"][0]["baseline"]["command"];
        if !decode.is_null() {
            assert!(
                decode.as_str().unwrap().starts_with(&decode_cmd),
                "{decode}"
            );
        }
        let tar = &r["stages"][2]["baseline"]["command"];
        if !tar.is_null() {
            assert!(tar.as_str().unwrap().starts_with(&tar_cmd), "{tar}");
        }
    }
    // What it wrote is gone; the directory it was given stays.
    assert_eq!(std::fs::read_dir(&work).unwrap().count(), 0);
}

#[test]
fn bench_of_what_is_not_an_archive_says_so() {
    let d = Dir::new();
    let f = d.join("notes.txt");
    std::fs::write(&f, "not an archive").unwrap();
    let o = run(&["bench".as_ref(), f.as_os_str()], None);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("notes.txt: unknown archive format"),
        "{}",
        stderr(&o)
    );
}
