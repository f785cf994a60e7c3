//! The `split` stage on the real data in `../shared/data`, when it is there (the tests say
//! clearly that they skipped otherwise). Outputs go to a temporary folder, never under
//! `../shared`.

mod common;

use common::{ok, shared_data};

fn pipeline_file(name: &str) -> String {
    format!("{}/pipeline/{name}", env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn teddy_split_reports_missing_images_and_decodes_odd_formats() {
    let Some(data) = shared_data("teddy_split_reports_missing_images_and_decodes_odd_formats")
    else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let data_dir = data.join("teddy/attachment1");
    let out = ok(
        work.path(),
        &[
            "split",
            &pipeline_file("teddy.toml"),
            "--data",
            data_dir.to_str().unwrap(),
            "--work",
            "w",
        ],
    );
    assert!(
        out.contains("Image14001001-2540.jpg"),
        "missing image reported by id: {out}"
    );
    assert!(
        out.contains("Image14001005-3174.jpg"),
        "missing image reported by id: {out}"
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("w/split/manifest.json")).unwrap(),
    )
    .unwrap();
    let summary = &manifest["summary"];
    assert_eq!(summary["captions_read"], 1000);
    assert_eq!(summary["images_usable"], 998);
    assert_eq!(summary["formats"]["Gif"], 10, "{summary}");
    assert_eq!(summary["formats"]["Png"], 1, "{summary}");
    assert_eq!(manifest["skipped_counts"]["missing"], 2);
    // The PNG carries a miswritten sRGB colour profile, which libpng would warn about on
    // stderr; the decoder drops the profile first.
    assert!(!out.contains("libpng"), "{out}");
    // Embedded newlines are read whole; the split folder holds 998 captions.
    let texts = std::fs::read_to_string(work.path().join("w/split/text_ids.txt")).unwrap();
    assert_eq!(texts.lines().count(), 998);
    let out = ok(work.path(), &["inspect", "w/split"]);
    assert!(out.contains("fold-4"), "{out}");
}

#[test]
fn flickr8k_split_keeps_the_standard_test_images() {
    let Some(data) = shared_data("flickr8k_split_keeps_the_standard_test_images") else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    let data_dir = data.join("flickr8k");
    ok(
        work.path(),
        &[
            "split",
            &pipeline_file("flickr8k-cn.toml"),
            "--data",
            data_dir.to_str().unwrap(),
            "--work",
            "w",
        ],
    );
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(work.path().join("w/split/manifest.json")).unwrap(),
    )
    .unwrap();
    let summary = &manifest["summary"];
    assert_eq!(summary["images_usable"], 4500);
    assert_eq!(summary["texts_usable"], 22500);
    assert_eq!(summary["partitions"]["main"]["test"], 1000);
    assert_eq!(
        manifest["skipped_counts"]["missing"], 3500,
        "2,500 train + 1,000 val images are not shipped"
    );
    let status = ok(
        work.path(),
        &[
            "status",
            &pipeline_file("flickr8k-cn.toml"),
            "--data",
            data_dir.to_str().unwrap(),
            "--work",
            "w",
        ],
    );
    assert!(status.contains("split            fresh"), "{status}");
}
