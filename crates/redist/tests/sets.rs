//! Sets of products chosen as one, on NVIDIA's real manifests (the
//! project's copies in `testdata/manifests`): CUDA 12.9.1, 13.0.2 and
//! 13.1.1, cuDNN 9.13.0 and 9.14.0, cuSPARSELt 0.10.0 (cuda13 only),
//! cuTENSOR 2.3.0.

use std::path::PathBuf;
use std::time::Duration;

use redist::{CudaVersion, Error, Fetcher, ManifestError, Repository, Selected};

fn manifest(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../testdata/manifests")
        .join(name)
        .display()
        .to_string()
}

fn set(names: &[&str]) -> Repository {
    let paths: Vec<String> = names.iter().map(|n| manifest(n)).collect();
    Repository::open(
        &paths,
        None,
        Fetcher::new(Duration::from_secs(5)),
        None,
        false,
    )
    .unwrap()
}

fn pick(
    r: &Repository,
    names: &[&str],
    cuda: Option<&CudaVersion>,
) -> Result<Vec<Selected>, Error> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    r.select(&names, false, "linux-x86_64", None, cuda)
}

#[test]
fn the_cuda_manifest_picks_each_add_on_variant() {
    for (cuda, cudnn, want) in [
        (
            "cuda_redistrib_13.0.2.json",
            "cudnn_redistrib_9.14.0.json",
            "cuda13",
        ),
        (
            "cuda_redistrib_12.9.1.json",
            "cudnn_redistrib_9.13.0.json",
            "cuda12",
        ),
        (
            "cuda_redistrib_12.9.1.json",
            "cudnn_redistrib_9.14.0.json",
            "cuda12",
        ),
    ] {
        let r = set(&[cuda, cudnn, "cutensor_redistrib_2.3.0.json"]);
        let c = r.cuda().unwrap();
        let got = pick(
            &r,
            &["cuda_cudart", "libcublas", "cudnn", "libcutensor"],
            Some(&c),
        )
        .unwrap();
        let by: Vec<(&str, Option<&str>, &str)> = got
            .iter()
            .map(|s| {
                (
                    s.component.as_str(),
                    s.variant.as_deref(),
                    s.product.as_str(),
                )
            })
            .collect();
        assert_eq!(
            by,
            [
                ("cuda_cudart", None, "cuda"),
                ("libcublas", None, "cuda"),
                ("cudnn", Some(want), "cudnn"),
                ("libcutensor", Some(want), "cutensor"),
            ],
            "{cuda} + {cudnn}"
        );
        let why = got[2].variant_reason.as_deref().unwrap();
        assert!(why.starts_with(&format!("CUDA {}", c.label)), "{why}");
        assert!(got[2]
            .archive
            .relative_path
            .contains(&format!("_{want}-archive")));
        // Archives come from each manifest's own directory.
        assert!(r
            .location(&got[2])
            .to_string()
            .ends_with(&got[2].archive.relative_path));
    }
}

#[test]
fn a_minor_variant_is_taken_before_the_major_one_and_only_for_its_minor() {
    // CUDA 13.1.1's cuda_compat comes only as `cuda13.1`.
    let r = set(&["cuda_redistrib_13.1.1.json"]);
    let c = r.cuda().unwrap();
    assert_eq!((c.major, c.minor), (13, 1));
    let got = pick(&r, &["cuda_compat"], Some(&c)).unwrap();
    assert_eq!(got[0].variant.as_deref(), Some("cuda13.1"));
    // For CUDA 13.0 it does not fit, and the error names both.
    let old = CudaVersion::parse("13.0.2", "--cuda").unwrap();
    let err = pick(&r, &["cuda_compat"], Some(&old))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("cuda_compat 590.48.01 is built for cuda13.1, not for CUDA 13.0.2 (--cuda)"),
        "{err}"
    );
    assert!(err.contains("--variant"), "{err}");
    // The matching rules themselves.
    assert!(c.matches("cuda13") && c.matches("13") && c.matches("cuda13.1") && c.matches("13.1"));
    assert!(!c.matches("cuda13.0") && !c.matches("cuda12") && !c.matches("cudax"));
}

#[test]
fn an_add_on_not_built_for_the_set_cuda_is_an_error_naming_both() {
    // cuSPARSELt 0.10.0 is built for CUDA 13 only.
    let r = set(&[
        "cuda_redistrib_12.9.1.json",
        "cusparselt_redistrib_0.10.0.json",
    ]);
    let c = r.cuda().unwrap();
    let err = pick(&r, &["libcusparse_lt"], Some(&c)).unwrap_err();
    let Error::Manifest(ManifestError::VariantMismatch {
        cuda,
        choices,
        from,
        ..
    }) = &err
    else {
        panic!("{err:?}");
    };
    assert_eq!((cuda.as_str(), choices.as_str()), ("12.9.1", "cuda13"));
    assert_eq!(from, "the set's cuda manifest 12.9.1");
    // --variant still overrides: the user knows best.
    let names = vec!["libcusparse_lt".to_string()];
    let got = r
        .select(&names, false, "linux-x86_64", Some("13"), Some(&c))
        .unwrap();
    assert_eq!(got[0].variant.as_deref(), Some("cuda13"));
    assert_eq!(got[0].variant_reason.as_deref(), Some("--variant"));
    // With `all`, what does not fit is left out rather than failing.
    let all = r.select(&[], true, "linux-x86_64", None, Some(&c)).unwrap();
    assert!(all.iter().any(|s| s.component == "cuda_nvcc"));
    assert!(!all.iter().any(|s| s.component == "libcusparse_lt"));
}

#[test]
fn without_a_cuda_version_several_variants_need_choosing() {
    let r = set(&["cudnn_redistrib_9.14.0.json"]);
    assert_eq!(r.cuda(), None);
    let err = pick(&r, &["cudnn"], None).unwrap_err().to_string();
    assert!(
        err.contains("choose one with --variant (cuda12, cuda13)"),
        "{err}"
    );
    // A single variant needs no choosing (cuSPARSELt 0.10.0: cuda13).
    let r = set(&["cusparselt_redistrib_0.10.0.json"]);
    let got = pick(&r, &["libcusparse_lt"], None).unwrap();
    assert_eq!(got[0].variant_reason.as_deref(), Some("the only variant"));
}

#[test]
fn names_are_bare_or_product_qualified() {
    let r = set(&["cuda_redistrib_13.0.2.json", "cudnn_redistrib_9.14.0.json"]);
    let c = r.cuda();
    let got = pick(&r, &["cudnn:cudnn", "cuda:cuda_nvcc"], c.as_ref()).unwrap();
    assert_eq!(got[0].product, "cudnn");
    assert_eq!(got[1].product, "cuda");
    let err = pick(&r, &["cutensor:libcutensor"], c.as_ref())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the set has no manifest of product `cutensor`")
            && err.contains("cuda, cudnn"),
        "{err}"
    );
    let err = pick(&r, &["nonesuch"], c.as_ref()).unwrap_err().to_string();
    assert!(err.contains("has no component `nonesuch`"), "{err}");
    // Two manifests of one product are not a set.
    let paths = vec![
        manifest("cuda_redistrib_12.9.1.json"),
        manifest("cuda_redistrib_13.0.2.json"),
    ];
    let err = Repository::open(
        &paths,
        None,
        Fetcher::new(Duration::from_secs(5)),
        None,
        false,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(err.contains("two manifests of product `cuda`"), "{err}");
}

#[test]
fn a_name_two_products_share_must_be_qualified() {
    let d = tempfile::tempdir().unwrap();
    let write = |product: &str| {
        let p = d.path().join(format!("{product}.json"));
        let json = format!(
            r#"{{"release_product": "{product}", "release_label": "1.0",
                "libshared": {{"version": "1", "linux-x86_64": {{"relative_path": "{product}/x.tar.xz",
                "sha256": "{}", "size": 1}}}}}}"#,
            "0".repeat(64)
        );
        std::fs::write(&p, json).unwrap();
        p.display().to_string()
    };
    let paths = vec![write("alpha"), write("beta")];
    let r = Repository::open(
        &paths,
        None,
        Fetcher::new(Duration::from_secs(5)),
        None,
        false,
    )
    .unwrap();
    let err = pick(&r, &["libshared"], None).unwrap_err().to_string();
    assert!(
        err.contains("`libshared` is in several manifests of the set; name one: alpha:libshared, beta:libshared"),
        "{err}"
    );
    let got = pick(&r, &["beta:libshared"], None).unwrap();
    assert!(r.location(&got[0]).to_string().ends_with("beta/x.tar.xz"));
}

#[test]
fn list_says_which_variant_each_takes_and_why() {
    let r = set(&["cuda_redistrib_13.0.2.json", "cudnn_redistrib_9.14.0.json"]);
    let c = r.cuda();
    let rows = r.list("linux-x86_64", None, c.as_ref());
    let cudnn = rows.iter().find(|r| r.component == "cudnn").unwrap();
    assert_eq!(cudnn.product, "cudnn");
    assert_eq!(cudnn.variant.as_deref(), Some("cuda13"));
    assert_eq!(
        cudnn.why.as_deref(),
        Some("CUDA 13.0.2 (the set's cuda manifest 13.0.2)")
    );
    let nvcc = rows.iter().find(|r| r.component == "cuda_nvcc").unwrap();
    assert_eq!(
        (nvcc.product.as_str(), nvcc.variant.as_deref()),
        ("cuda", None)
    );
}

#[test]
fn set_files_name_manifests_relative_to_themselves() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("sets");
    std::fs::create_dir(&dir).unwrap();
    let f = dir.join("cuda13.toml");
    std::fs::write(
        &f,
        format!(
            "manifests = [\"{}\", \"../x/redistrib_9.json\", \"https://example.com/r.json\"]\ncomponents = [\"cudnn\"]\n",
            manifest("cuda_redistrib_13.0.2.json")
        ),
    )
    .unwrap();
    let set = redist::SetFile::load(&f).unwrap();
    assert_eq!(
        set.manifests[1],
        dir.join("../x/redistrib_9.json").display().to_string()
    );
    assert_eq!(set.manifests[2], "https://example.com/r.json");
    assert_eq!(set.components, ["cudnn"]);
    std::fs::write(&f, "manifest = []\n").unwrap();
    let err = redist::SetFile::load(&f).unwrap_err().to_string();
    assert!(
        err.contains("cuda13.toml") && err.contains("unknown field `manifest`"),
        "{err}"
    );
}
