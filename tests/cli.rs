//! The real binary on the synthetic fixture, in a temporary folder: stages run once, skip when
//! fresh, rerun when a parameter changes, survive an interrupted write; `inspect` and `status`
//! say what is there; bad input gets a clear error.

mod common;

use common::{Workspace, binary, fails, ok};

#[test]
fn split_reports_bad_images_and_skips_when_fresh() {
    let ws = Workspace::new(40, &[], "");
    let first = ok(ws.path(), &["split", "pipeline.toml"]);
    assert!(first.contains("split: running (never run)"), "{first}");
    let manifest = ws.manifest("split");
    let counts = &manifest["skipped_counts"];
    assert_eq!(counts["missing"], 1, "{manifest:#}");
    assert_eq!(counts["truncated"], 1, "{manifest:#}");
    assert_eq!(counts["empty"], 1, "{manifest:#}");
    let formats = &manifest["summary"]["formats"];
    assert_eq!(formats["Gif"], 1, "the GIF named .jpg decodes: {formats}");
    assert_eq!(formats["Png"], 1, "the PNG named .jpg decodes: {formats}");
    assert_eq!(manifest["summary"]["images_usable"], 37);
    assert_eq!(manifest["summary"]["captions_read"], 40);

    let second = ok(ws.path(), &["split", "pipeline.toml"]);
    assert!(second.contains("split: up to date"), "{second}");
    let status = ok(ws.path(), &["status", "pipeline.toml"]);
    assert!(status.contains("split            fresh"), "{status}");
}

#[test]
fn the_data_folder_spelled_another_way_or_moved_is_the_same_input() {
    let ws = Workspace::new(12, &["--no-bad-cases"], common::LIGHT);
    ok(ws.path(), &["split", "pipeline.toml"]);
    let images = std::fs::read_to_string(ws.stage("split").join("images.csv")).unwrap();
    assert!(
        images
            .lines()
            .skip(1)
            .all(|row| row.contains(",ImageData/")),
        "images.csv names each image inside the data folder: {images}"
    );
    let canonical = ws.path().canonicalize().unwrap().join("data");
    let canonical = canonical.display().to_string();
    let work = ws.path().join("work").display().to_string();
    for (dir, pipeline, data) in [
        (ws.path().to_path_buf(), "pipeline.toml", "./data/"),
        (ws.path().to_path_buf(), "pipeline.toml", canonical.as_str()),
        (ws.path().join("data"), "../pipeline.toml", "."),
    ] {
        let args = ["split", pipeline, "--data", data, "--work", &work];
        let again = ok(&dir, &args);
        assert!(
            again.contains("split: up to date"),
            "--data {data}: {again}"
        );
    }

    // Moved (new modification times too): the split stays, and the next stage reads the
    // images where they are now.
    common::copy_folder(&ws.path().join("data"), &ws.path().join("moved"));
    std::fs::remove_dir_all(ws.path().join("data")).unwrap();
    let features = ok(
        ws.path(),
        &["image-features", "pipeline.toml", "--data", "moved"],
    );
    assert!(features.contains("split: up to date"), "{features}");
    let manifest = ws.manifest("image-features");
    assert_eq!(manifest["skipped"], serde_json::json!([]), "{manifest:#}");
}

#[test]
fn changed_parameter_reruns_the_stage() {
    let ws = Workspace::new(30, &["--no-bad-cases"], "");
    ok(ws.path(), &["split", "pipeline.toml"]);
    let before = std::fs::read_to_string(ws.stage("split").join("partitions.csv")).unwrap();
    let status = ok(
        ws.path(),
        &["status", "pipeline.toml", "--set", "split.seed=99"],
    );
    assert!(
        status.contains("stale: parameter split.seed changed"),
        "{status}"
    );
    let rerun = ok(
        ws.path(),
        &["split", "pipeline.toml", "--set", "split.seed=99"],
    );
    assert!(
        rerun.contains("split: running (parameter split.seed changed)"),
        "{rerun}"
    );
    let after = std::fs::read_to_string(ws.stage("split").join("partitions.csv")).unwrap();
    assert_ne!(before, after, "another seed gives another split");
}

#[test]
fn interrupted_stage_leaves_previous_artifacts() {
    let ws = Workspace::new(30, &["--no-bad-cases"], "");
    ok(ws.path(), &["split", "pipeline.toml"]);
    let dir = ws.stage("split");
    let before: Vec<(String, Vec<u8>)> =
        ["manifest.json", "images.csv", "texts.csv", "partitions.csv"]
            .iter()
            .map(|f| (f.to_string(), std::fs::read(dir.join(f)).unwrap()))
            .collect();
    // Kill the rerun (another seed) right after its second output file.
    let out = common::binary()
        .args(["split", "pipeline.toml", "--set", "split.seed=5"])
        .current_dir(ws.path())
        .env("CROSSMODAL_ABORT_AFTER_WRITES", "2")
        .output()
        .unwrap();
    assert!(!out.status.success(), "the run was aborted");
    for (file, bytes) in &before {
        assert_eq!(
            &std::fs::read(dir.join(file)).unwrap(),
            bytes,
            "{file} is the previous one"
        );
    }
    // The next start cleans the staging folder, and the old artifacts are still fresh.
    let status = ok(ws.path(), &["status", "pipeline.toml"]);
    assert!(status.contains("split            fresh"), "{status}");
    let leftovers: Vec<String> = std::fs::read_dir(ws.path().join("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert_eq!(
        leftovers,
        vec!["split".to_string()],
        "no staging folder is left"
    );
}

#[test]
fn gbk_csv_is_detected_and_reported() {
    let ws = Workspace::new(20, &["--gbk", "--no-bad-cases"], "");
    ok(ws.path(), &["split", "pipeline.toml"]);
    let manifest = ws.manifest("split");
    assert_eq!(manifest["summary"]["encoding"], "GB18030", "{manifest:#}");
    let texts = std::fs::read_to_string(ws.stage("split").join("texts.csv")).unwrap();
    assert!(
        texts
            .chars()
            .any(|c| ('\u{4e00}'..='\u{9fff}').contains(&c)),
        "captions decode to Chinese"
    );
}

/// The manifest names the kernels OpenBLAS runs, not only the CPU: told to use others
/// (`OPENBLAS_CORETYPE`, honoured by OpenBLAS builds with DYNAMIC_ARCH, such as Debian's),
/// the stage records those.
#[test]
fn the_manifest_names_the_kernels_openblas_was_told_to_use() {
    let build = crossmodal::blas::kernels();
    if !cfg!(target_arch = "x86_64") || !build.contains("DYNAMIC_ARCH") {
        eprintln!("skipped: OpenBLAS cannot be told its kernels here ({build})");
        return;
    }
    let ws = Workspace::new(10, &["--no-bad-cases"], "");
    let out = binary()
        .args(["split", "pipeline.toml"])
        .current_dir(ws.path())
        .env_remove("RUST_LOG")
        .env("OPENBLAS_CORETYPE", "Sandybridge")
        .output()
        .expect("the binary runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = ws.manifest("split");
    let blas = manifest["machine"]["blas"].as_str().unwrap_or_default();
    assert!(blas.starts_with("Sandybridge kernels ("), "{manifest:#}");
}

#[test]
fn inspect_prints_shape_statistics_and_rows() {
    let ws = Workspace::new(10, &["--no-bad-cases"], "");
    let path = ws.path().join("m.npy");
    let m = ndarray::array![[1.0f32, 0.0, 3.0], [3.0, 0.0, 5.0]];
    crossmodal::pipeline::artifacts::write_dense(&path, &m).unwrap();
    let out = ok(ws.path(), &["inspect", "m.npy", "--csv", "m.csv"]);
    assert!(out.contains("shape: 2 x 3"), "{out}");
    assert!(out.contains("dense, 33.33% zeros"), "{out}");
    assert!(
        out.contains("     0:     1.0000     2.0000     3.0000"),
        "column 0 min/mean/max: {out}"
    );
    assert!(
        out.contains("     2:     3.0000     4.0000     5.0000"),
        "column 2 min/mean/max: {out}"
    );
    assert!(out.contains("  -: [1.0000, 0.0000, 3.0000]"), "{out}");
    let csv = std::fs::read_to_string(ws.path().join("m.csv")).unwrap();
    assert_eq!(csv, "id,c0,c1,c2\n\"0\",1,0,3\n\"1\",3,0,5\n");

    ok(ws.path(), &["split", "pipeline.toml"]);
    let out = ok(ws.path(), &["inspect", "work/split"]);
    assert!(out.contains("stage `split` of pipeline `t`"), "{out}");
    assert!(out.contains("partitions.csv"), "{out}");
    // The machine that ran the stage, with the BLAS build whose kernels it used.
    let manifest = ws.manifest("split");
    let machine = &manifest["machine"];
    assert!(
        machine["cores"].as_u64().is_some_and(|n| n >= 1),
        "{machine}"
    );
    let blas = machine["blas"].as_str().unwrap_or_default();
    assert!(blas.contains("OpenBLAS"), "{machine}");
    let cpu = machine["cpu"].as_str().unwrap_or_default();
    assert!(!cpu.is_empty(), "{machine}");
    assert!(out.contains(&format!("ran on {cpu}, ")), "{out}");
    assert!(out.contains(blas), "{out}");
    // A folder without a manifest (a model the library saved): its files, each .npy's dtype
    // and shape from its header, small JSON files in full; and a JSON file by itself.
    let model = ws.path().join("model");
    std::fs::create_dir_all(model.join("kernel_x")).unwrap();
    crossmodal::model_dir::write_npy(&model.join("kernel_x/landmarks.npy"), &m).unwrap();
    let json = serde_json::json!({ "dims": 2 });
    crossmodal::model_dir::write_json(&model.join("cca.json"), &json).unwrap();
    let out = ok(ws.path(), &["inspect", "model"]);
    assert!(out.contains("2 files"), "{out}");
    assert!(
        out.contains("kernel_x/landmarks.npy") && out.contains("<f4 2 x 3"),
        "{out}"
    );
    assert!(out.contains(r#"{"dims":2}"#), "{out}");
    let out = ok(ws.path(), &["inspect", "model/cca.json"]);
    assert!(out.contains(r#""dims": 2"#), "{out}");
    let err = fails(ws.path(), &["inspect", "pipeline.toml"]);
    assert!(
        err.contains("pipeline.toml") && err.contains("not something inspect reads"),
        "{err}"
    );

    // The optional stages are told apart from stale ones.
    let status = ok(ws.path(), &["status", "pipeline.toml"]);
    assert!(
        status.contains("dual-encoder     not run (optional: `crossmodal dual-encoder` runs it")
            && status.contains("image-features   stale: never run"),
        "{status}"
    );
}

#[test]
fn bad_input_gives_a_clear_error_and_nonzero_exit() {
    let ws = Workspace::new(10, &["--no-bad-cases"], "");
    let err = fails(ws.path(), &["split", "pipeline.toml", "--data", "nowhere"]);
    assert!(err.contains("data folder nowhere does not exist"), "{err}");
    std::fs::write(ws.path().join("a-file"), "").unwrap();
    let err = fails(ws.path(), &["split", "pipeline.toml", "--data", "a-file"]);
    assert!(err.contains("data folder a-file is not a folder"), "{err}");
    // Refused before anything is trained: the plot, <out>.svg, would overwrite the table.
    let err = fails(
        ws.path(),
        &["comparison", "pipeline.toml", "--out", "table.svg"],
    );
    assert!(
        err.contains("--out table.svg would be overwritten"),
        "{err}"
    );
    assert!(!ws.path().join("work").exists(), "nothing ran");
    let err = fails(
        ws.path(),
        &["split", "pipeline.toml", "--set", "split.test=1.5"],
    );
    assert!(
        err.contains("split fractions must be in [0, 1) and sum to less than 1, got validation 0.1 and test 1.5"),
        "{err}"
    );
    let err = fails(ws.path(), &["split", "missing.toml"]);
    assert!(
        err.starts_with("error: loading pipeline missing.toml: reading missing.toml"),
        "{err}"
    );
    assert_eq!(
        err.matches("os error 2").count(),
        1,
        "the operating system's message is said once: {err}"
    );
    // A mistake in a later stage's section is caught before the first stage runs, and names
    // the key inside the section.
    for (set, expected) in [
        ("fit.ridgex=0.1", "[fit] ridgex: unknown field `ridgex`"),
        (
            "fit.dims=\"many\"",
            "[fit] dims: invalid type: string \"many\"",
        ),
        (
            "image_features.sift.bow.kk=3",
            "[image_features] sift.bow.kk: unknown field `kk`",
        ),
        ("evaluate.ks=[0]", "every K must be at least 1"),
    ] {
        let err = fails(ws.path(), &["run", "pipeline.toml", "--set", set]);
        assert!(err.contains(expected), "{set}: {err}");
        assert!(
            !ws.path().join("work").exists(),
            "{set}: no stage ran before the error"
        );
    }
    let err = fails(ws.path(), &["make-fixture", "data", "--images", "20"]);
    assert!(
        err.contains("ImageData already holds images"),
        "no fixture is written over another: {err}"
    );
    std::fs::write(
        ws.path().join("data/ImageWordData.csv"),
        "image_id,text\na.jpg,x\n",
    )
    .unwrap();
    let err = fails(ws.path(), &["split", "pipeline.toml"]);
    assert!(err.contains("missing column `caption`"), "{err}");
}

#[test]
fn clean_removes_the_stage() {
    let ws = Workspace::new(10, &["--no-bad-cases"], "");
    ok(ws.path(), &["split", "pipeline.toml"]);
    // Cleaning needs the work folder only, not the data.
    let out = ok(ws.path(), &["clean", "pipeline.toml", "--data", "nowhere"]);
    assert!(out.contains("removed"), "{out}");
    assert!(!ws.stage("split").exists());
}
