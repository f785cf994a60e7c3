//! The neural baselines and the comparison, run by the real binary on the synthetic fixture:
//! both models learn (loss falls, retrieval well above chance), so does the similarity-profile
//! baseline that learns nothing, `compare` handed our own CCA
//! embeddings reproduces `evaluate` exactly, and `comparison` writes the table and the plot.

mod common;

use common::{LIGHT, Workspace, fails, ok};

/// Small models, so the debug build trains them in seconds (on top of `common::LIGHT`).
const NEURAL: &str = r#"
[dual_encoder]
image_size = 32
stored_size = 36
kernels = [4, 2, 2]
channels = [16, 32, 64]
text_hidden = [64]
embed_dim = 32
epochs = 40
batch_size = 32
learning_rate = 0.003

[comparison]
variants = [{ name = "plain", set = ["fit.eigen_power=0"] }]

[mlp_fusion]
pca_dims = 64
hidden = [128]
embed_dim = 32
epochs = 60
batch_size = 32
"#;

fn json(path: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// R@5 of a report, both directions, with chance.
fn r5(report: &serde_json::Value) -> Vec<(f64, f64)> {
    ["text_to_image", "image_to_text"]
        .iter()
        .map(|d| {
            (
                report[d]["r5"].as_f64().unwrap(),
                report[d]["chance_at"]["5"].as_f64().unwrap(),
            )
        })
        .collect()
}

#[test]
fn neural_baselines_learn_and_compare_reproduces_evaluate() {
    let ws = Workspace::new(300, &[], &format!("{LIGHT}{NEURAL}"));
    ok(ws.path(), &["evaluate", "pipeline.toml"]);
    let log = ok(ws.path(), &["run", "pipeline.toml"]);
    assert!(
        !log.contains("dual-encoder: running") && !log.contains("mlp-fusion: running"),
        "`run` leaves the neural baselines out: {log}"
    );

    // `compare` with our own CCA embeddings gives exactly evaluate's numbers.
    let embed = ws.stage("embed");
    let out = ok(
        ws.path(),
        &[
            "compare",
            "pipeline.toml",
            "--name",
            "cca-again",
            "--images",
            embed.join("main/image_embeddings.npy").to_str().unwrap(),
            "--image-ids",
            embed.join("main/image_rows.txt").to_str().unwrap(),
            "--texts",
            embed.join("main/text_embeddings.npy").to_str().unwrap(),
            "--text-ids",
            embed.join("text_ids.txt").to_str().unwrap(),
        ],
    );
    assert!(out.contains("R@5"), "{out}");
    let ours = json(&ws.stage("evaluate").join("report.json"));
    let theirs = json(&ws.path().join("work/compare/cca-again/report.json"));
    for direction in ["text_to_image", "image_to_text"] {
        for key in ["r1", "r5", "r10", "median_rank", "mean_rank", "queries"] {
            assert_eq!(
                ours[direction][key], theirs[direction][key],
                "{direction}.{key}"
            );
        }
    }
    // Mismatched inputs are refused with the files named.
    let rows = std::fs::read_to_string(embed.join("main/image_rows.txt")).unwrap();
    let short = ws.path().join("ten_ids.txt");
    std::fs::write(&short, rows.lines().take(10).collect::<Vec<_>>().join("\n")).unwrap();
    let err = fails(
        ws.path(),
        &[
            "compare",
            "pipeline.toml",
            "--name",
            "bad",
            "--images",
            embed.join("main/image_embeddings.npy").to_str().unwrap(),
            "--image-ids",
            short.to_str().unwrap(),
            "--texts",
            embed.join("main/text_embeddings.npy").to_str().unwrap(),
            "--text-ids",
            embed.join("text_ids.txt").to_str().unwrap(),
        ],
    );
    assert!(
        err.contains("image_embeddings.npy")
            && err.contains("ten_ids.txt")
            && err.contains("10 ids"),
        "{err}"
    );
    // Ids written by another tool (a byte-order mark, Windows line ends) read as the same ids;
    // ids of another kind (no file extension) are refused, not silently dropped.
    let compare_args = |name: &str, ids: &str| -> Vec<String> {
        let path = ws.path().join(format!("{name}.txt"));
        std::fs::write(&path, ids).unwrap();
        let (images, texts) = (
            embed.join("main/image_embeddings.npy"),
            embed.join("main/text_embeddings.npy"),
        );
        let text_ids = embed.join("text_ids.txt");
        [
            "compare",
            "pipeline.toml",
            "--name",
            name,
            "--images",
            images.to_str().unwrap(),
            "--image-ids",
            path.to_str().unwrap(),
            "--texts",
            texts.to_str().unwrap(),
            "--text-ids",
            text_ids.to_str().unwrap(),
        ]
        .map(String::from)
        .to_vec()
    };
    let windows = format!(
        "\u{feff}{}\r\n",
        rows.lines().collect::<Vec<_>>().join("\r\n")
    );
    let args = compare_args("windows-ids", &windows);
    ok(
        ws.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    let theirs = json(&ws.path().join("work/compare/windows-ids/report.json"));
    assert_eq!(ours["text_to_image"]["r5"], theirs["text_to_image"]["r5"]);
    assert_eq!(theirs["images_without_rows"], 0);
    let stems: Vec<&str> = rows.lines().map(|id| id.trim_end_matches(".jpg")).collect();
    let args = compare_args("stems", &stems.join("\n"));
    let err = fails(
        ws.path(),
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(err.contains("have no row in the image embeddings"), "{err}");

    for stage in ["mlp-fusion", "dual-encoder"] {
        ok(ws.path(), &[stage, "pipeline.toml"]);
        let training = json(&ws.stage(stage).join("main/training.json"));
        let losses: Vec<f64> = training["epoch_loss"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let (first, last) = (losses[0], *losses.last().unwrap());
        assert!(last < 0.8 * first, "{stage}: loss {first} -> {last}");
        let report = json(&ws.stage(stage).join("report.json"));
        for (r5, chance) in r5(&report) {
            assert!(r5 > 2.5 * chance, "{stage}: R@5 {r5} vs chance {chance}");
        }
        assert!(report["costs"]["train_seconds"].as_f64().unwrap() > 0.0);
        assert!(
            ws.stage(stage)
                .join("main/model/model.safetensors")
                .is_file()
        );
        let again = ok(ws.path(), &[stage, "pipeline.toml"]);
        assert!(again.contains(&format!("{stage}: up to date")), "{again}");
    }

    // The baseline that learns nothing: anchors are the training images, above chance on the
    // fixture's shared topics, and its costs say how many anchors it kept.
    ok(ws.path(), &["profiles", "pipeline.toml"]);
    let report = json(&ws.stage("profiles").join("report.json"));
    for (r5, chance) in r5(&report) {
        assert!(r5 > 2.5 * chance, "profiles: R@5 {r5} vs chance {chance}");
    }
    let anchors = std::fs::read_to_string(ws.stage("profiles").join("main/model/anchor_ids.txt"))
        .unwrap()
        .lines()
        .count();
    let split = std::fs::read_to_string(ws.stage("split").join("partitions.csv")).unwrap();
    let training = split.lines().filter(|l| l.ends_with(",train")).count();
    assert_eq!(anchors, training, "one anchor per training image");
    assert_eq!(report["costs"]["anchors"].as_u64(), Some(anchors as u64));
    let embeddings = ws.stage("profiles").join("main/image_embeddings.npy");
    assert!(embeddings.is_file());
    let again = ok(ws.path(), &["profiles", "pipeline.toml"]);
    assert!(again.contains("profiles: up to date"), "{again}");

    let md_path = ws.path().join("comparison.md");
    ok(
        ws.path(),
        &[
            "comparison",
            "pipeline.toml",
            "--out",
            md_path.to_str().unwrap(),
        ],
    );
    let md = std::fs::read_to_string(&md_path).unwrap();
    for row in [
        "CCA",
        "MLP fusion",
        "dual encoder",
        "similarity profiles",
        "training images as anchors",
        "cca-again",
        "Chinese-CLIP",
        "Hodosh",
    ] {
        assert!(md.contains(row), "{row} missing from:\n{md}");
    }
    // The machine the CCA fit ran on, as its manifest records it.
    let fit_manifest = ws.manifest("fit");
    let fit_machine = &fit_manifest["machine"];
    let cpu = fit_machine["cpu"].as_str().unwrap();
    assert!(
        md.contains(&format!("The CCA fit ran on {cpu}, ")),
        "{fit_machine} missing from:\n{md}"
    );
    let svg = std::fs::read_to_string(ws.path().join("comparison.svg")).unwrap();
    assert!(svg.starts_with("<svg"), "{svg}");
    // The variant ran on the main work folder's split and features, linked, not recomputed.
    let variant = ws.path().join("work/variants/plain");
    for stage in ["split", "image-features", "text-features"] {
        assert_eq!(
            std::fs::read_to_string(variant.join(stage).join("manifest.json")).unwrap(),
            std::fs::read_to_string(ws.stage(stage).join("manifest.json")).unwrap(),
            "{stage}"
        );
    }
    let fit: serde_json::Value = json(&variant.join("fit/manifest.json"));
    assert_eq!(fit["params"]["eigen_power"], 0.0);
}
