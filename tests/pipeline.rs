//! The whole pipeline, run by the real binary on a small synthetic fixture in a temporary
//! folder: every stage runs once, a second run skips them all, changing one parameter reruns
//! exactly that stage and those downstream, and the outputs have the shapes users rely on.

mod common;

use common::{LIGHT, Workspace, fails, ok};

const STAGES: [&str; 8] = [
    "split",
    "image-features",
    "text-features",
    "fit",
    "embed",
    "rank",
    "evaluate",
    "submit",
];

fn ran(log: &str) -> Vec<&'static str> {
    STAGES
        .iter()
        .copied()
        .filter(|s| log.contains(&format!("{s}: running")))
        .collect()
}

#[test]
fn full_pipeline_runs_skips_and_reruns_downstream_only() {
    let ws = Workspace::new(150, &[], LIGHT);
    let first = ok(ws.path(), &["run", "pipeline.toml"]);
    assert_eq!(ran(&first), STAGES.to_vec(), "{first}");
    assert!(
        !first.contains("tune: running"),
        "`run` leaves the optional grid search out"
    );

    // report.json in the shape scripts rely on, with a real signal above chance.
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.stage("evaluate").join("report.json")).unwrap(),
    )
    .unwrap();
    for direction in ["text_to_image", "image_to_text"] {
        for key in ["r1", "r5", "r10", "median_rank", "mean_rank"] {
            assert!(
                report[direction][key].is_f64(),
                "{direction}.{key}: {report:#}"
            );
        }
        let queries = report[direction]["queries"].as_u64().unwrap();
        assert!(queries >= 15, "{direction}: {queries} test queries");
        let r5 = report[direction]["r5"].as_f64().unwrap();
        let chance = report[direction]["chance_at"]["5"].as_f64().unwrap();
        assert!(
            r5 > 2.0 * chance,
            "{direction}: R@5 {r5} is not well above chance {chance}"
        );
    }
    assert_eq!(report["folds"], 1);
    for file in ["report.md", "recall_curve.png", "report.html"] {
        assert!(ws.stage("evaluate").join(file).is_file(), "{file} written");
    }

    // The `fit` folder is a saved model: the library's one call loads it, and the loaded CCA
    // embeds the captions exactly as the `embed` stage did.
    let cca = crossmodal::fusion::FittedCca::load(&ws.stage("fit").join("main")).unwrap();
    let texts = crossmodal::pipeline::artifacts::read_sparse(
        &ws.stage("text-features").join("main/text_features.npz"),
    )
    .unwrap();
    let embedded = crossmodal::pipeline::artifacts::read_dense(
        &ws.stage("embed").join("main/text_embeddings.npy"),
    )
    .unwrap();
    let texts = crossmodal::matrix::FeatureMatrix::Sparse(texts);
    assert_eq!(cca.embed_y(&texts).unwrap(), embedded);

    // A copy of the data in another folder is the same input: only `evaluate` reruns, because
    // report.html links its thumbnails into the data folder; the links follow the data.
    let html = || std::fs::read_to_string(ws.stage("evaluate").join("report.html")).unwrap();
    assert!(html().contains("src=\"../../data/ImageData/"), "{}", html());
    common::copy_folder(&ws.path().join("data"), &ws.path().join("copy"));
    let moved = ok(ws.path(), &["run", "pipeline.toml", "--data", "copy"]);
    assert_eq!(ran(&moved), vec!["evaluate"], "{moved}");
    assert!(html().contains("src=\"../../copy/ImageData/"), "{}", html());
    let back = ok(ws.path(), &["run", "pipeline.toml"]);
    assert_eq!(ran(&back), vec!["evaluate"], "{back}");

    // The result files follow the template: header, 5 rows per query, ranks 1-5, all queries.
    let words =
        std::fs::read_to_string(ws.stage("submit").join("contest/附件2/word_test.csv")).unwrap();
    let queries: Vec<&str> = words
        .lines()
        .skip(1)
        .map(|l| l.split(',').next().unwrap())
        .collect();
    let result1 = std::fs::read_to_string(ws.stage("submit").join("result1.csv")).unwrap();
    let mut lines = result1.lines();
    assert_eq!(
        lines.next(),
        Some("text_id,similarity_ranking,result_image_id")
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 5 * queries.len());
    for (i, query) in queries.iter().enumerate() {
        for rank in 0..5 {
            let row = &rows[5 * i + rank];
            assert_eq!(row[0], *query);
            assert_eq!(row[1], (rank + 1).to_string());
            assert!(row[2].starts_with("Image"), "{row:?}");
        }
    }
    let score: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.stage("submit").join("score.json")).unwrap(),
    )
    .unwrap();
    let scored = score["result1"]["recall"]["5"].as_f64().unwrap();
    let evaluated = report["text_to_image"]["r5"].as_f64().unwrap();
    assert!(
        (scored - evaluated).abs() < 1e-9,
        "the contest flow from files scores as evaluate does: {scored} vs {evaluated}"
    );

    // Nothing changed: everything is skipped.
    let second = ok(ws.path(), &["run", "pipeline.toml"]);
    assert!(ran(&second).is_empty(), "{second}");

    // The images copied anew (same bytes, new modification times): still nothing to run, and
    // the split records the new times so that the next check need not read the images.
    let split_before = ws.manifest("split");
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    for entry in std::fs::read_dir(ws.path().join("data/ImageData")).unwrap() {
        let path = entry.unwrap().path();
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(later).unwrap();
    }
    let status = ok(ws.path(), &["status", "pipeline.toml"]);
    for stage in STAGES {
        assert!(
            status.contains(&format!("{stage:<16} fresh")),
            "{stage}: {status}"
        );
    }
    let touched = ok(ws.path(), &["run", "pipeline.toml"]);
    assert!(ran(&touched).is_empty(), "{touched}");
    let split_after = ws.manifest("split");
    assert_eq!(split_after["fingerprint"], split_before["fingerprint"]);
    let images_input = |m: &serde_json::Value| {
        m["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["path"].as_str().unwrap().starts_with("images"))
            .unwrap()
            .clone()
    };
    let (before, after) = (images_input(&split_before), images_input(&split_after));
    assert_eq!(before["digest"], after["digest"]);
    assert_ne!(before["stat"], after["stat"], "{after}");

    // One CCA parameter changed: fit and what follows rerun, the features do not.
    let status = ok(
        ws.path(),
        &["status", "pipeline.toml", "--set", "fit.dims=24"],
    );
    assert!(status.contains("image-features   fresh"), "{status}");
    assert!(
        status.contains("fit              stale: parameter dims changed"),
        "{status}"
    );
    let third = ok(ws.path(), &["run", "pipeline.toml", "--set", "fit.dims=24"]);
    assert_eq!(
        ran(&third),
        vec!["fit", "embed", "rank", "evaluate", "submit"],
        "{third}"
    );

    // Kernel maps before the CCA: saved beside the projections, read back by `embed`, and the
    // rest of the run goes on with them.
    let kernel = [
        "run",
        "pipeline.toml",
        "--set",
        "fit.kernel_x.landmarks=40",
        "--set",
        "fit.kernel_y.landmarks=40",
        "--set",
        "fit.kernel_y.input_dims=16",
    ];
    let fourth = ok(ws.path(), &kernel);
    assert_eq!(
        ran(&fourth),
        vec!["fit", "embed", "rank", "evaluate", "submit"],
        "{fourth}"
    );
    for file in ["mean", "basis", "landmarks", "gamma"] {
        let path = ws.stage("fit").join(format!("main/kernel_y/{file}.npy"));
        assert!(path.exists(), "{} missing", path.display());
    }
    let landmarks = ok(
        ws.path(),
        &["inspect", "work/fit/main/kernel_x/landmarks.npy"],
    );
    assert!(landmarks.contains("40 x"), "{landmarks}");
    let report: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.stage("evaluate").join("report.json")).unwrap(),
    )
    .unwrap();
    assert!(
        report["text_to_image"]["r10"].as_f64().unwrap() > 0.0,
        "{report:#}"
    );

    // The inverted softmax over the queries instead of plain cosine: only the ranking stages
    // rerun; asking for CSLS as well is refused before anything runs.
    let inverted = [
        &kernel[..],
        &["--set", "rank.inverted_softmax_temperature=0.1"],
    ]
    .concat();
    let log = ok(ws.path(), &inverted);
    assert_eq!(ran(&log), vec!["rank", "evaluate", "submit"], "{log}");
    let both = [&inverted[..], &["--set", "rank.csls_k=5"]].concat();
    let err = common::fails(ws.path(), &both);
    assert!(
        err.contains("choose one hubness correction") && err.contains("csls_k = 5"),
        "{err}"
    );

    // One Gaussian map per image block, their kernels summed: one folder per block, read back
    // by `embed` and `submit`.
    let per_block = [&kernel[..], &["--set", "fit.kernel_x.per_block=true"]].concat();
    let log = ok(ws.path(), &per_block);
    assert_eq!(
        ran(&log),
        vec!["fit", "embed", "rank", "evaluate", "submit"],
        "{log}"
    );
    let fit_dir = ws.stage("fit").join("main/kernel_x");
    let blocks = (0..)
        .take_while(|i| fit_dir.join(format!("block-{i}/landmarks.npy")).exists())
        .count();
    assert_eq!(blocks, 6, "one map per image block");
    assert!(!fit_dir.join("landmarks.npy").exists());
    assert!(!fit_dir.join("weight.npy").exists() && !fit_dir.join("block-0/weight.npy").exists());
    // The blocks' kernels weighted by their alignment with the captions' kernel: each block's
    // weight and alignment saved, the weights adding up to the number of blocks, and the
    // weighted map read back by `embed` and `submit`.
    let aligned = [
        &per_block[..],
        &["--set", "fit.kernel_x.block_weighting=\"alignment\""],
    ]
    .concat();
    let log = ok(ws.path(), &aligned);
    assert_eq!(
        ran(&log),
        vec!["fit", "embed", "rank", "evaluate", "submit"],
        "{log}"
    );
    assert!(log.contains("kernel_x: block alignments"), "{log}");
    let scalar = |path: std::path::PathBuf| -> f32 {
        let a: ndarray::Array2<f32> =
            ndarray_npy::read_npy(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        a[[0, 0]]
    };
    let weights: Vec<f32> = (0..blocks)
        .map(|i| scalar(fit_dir.join(format!("block-{i}/weight.npy"))))
        .collect();
    let total: f32 = weights.iter().sum();
    assert!((total - blocks as f32).abs() < 1e-3, "{weights:?}");
    assert!(weights.iter().all(|&w| w >= 0.0), "{weights:?}");
    for i in 0..blocks {
        let a = scalar(fit_dir.join(format!("block-{i}/alignment.npy")));
        assert!((-1.0..=1.0).contains(&a), "block {i}: alignment {a}");
    }
    // The same on the text side: with the word TF-IDF weighted in beside the character
    // n-grams, one map per text block, each as wide as that partition's vocabulary.
    let text_blocks = [
        &per_block[..],
        &[
            "--set",
            "text_features.word.enabled=true",
            "--set",
            "text_features.word.weight=1.0",
            "--set",
            "fit.kernel_y.per_block=true",
        ],
    ]
    .concat();
    let log = ok(ws.path(), &text_blocks);
    assert_eq!(
        ran(&log),
        vec![
            "text-features",
            "fit",
            "embed",
            "rank",
            "evaluate",
            "submit"
        ],
        "{log}"
    );
    let text_dir = ws.stage("fit").join("main/kernel_y");
    let widths: Vec<usize> = (0..2)
        .map(|i| {
            let mean = text_dir.join(format!("block-{i}/mean.npy"));
            let shown = ok(ws.path(), &["inspect", mean.to_str().unwrap()]);
            shown
                .split_whitespace()
                .skip_while(|w| *w != "x")
                .nth(1)
                .and_then(|w| w.trim_end_matches(',').parse().ok())
                .unwrap_or_else(|| panic!("no width in {shown}"))
        })
        .collect();
    assert!(!text_dir.join("block-2").exists(), "two text blocks");
    let word = ok(
        ws.path(),
        &["inspect", "work/text-features/main/block_word_tfidf.npz"],
    );
    assert!(
        word.contains(&format!("x {}", widths[0])),
        "word block {} wide: {word}",
        widths[0]
    );
    // The widths come from the layout the text-features stage records in its manifest.
    let manifest_path = ws.stage("text-features").join("manifest.json");
    let original = std::fs::read_to_string(&manifest_path).unwrap();
    let mut manifest: serde_json::Value = serde_json::from_str(&original).unwrap();
    let layout = manifest["summary"]["main_combined_layout"].clone();
    assert_eq!(layout[0]["block"], "word", "{layout}");
    assert_eq!(layout[1]["block"], "char", "{layout}");
    assert_eq!(layout[0]["end"], layout[1]["start"], "{layout}");
    assert_eq!(
        layout[0]["end"].as_u64().unwrap() as usize,
        widths[0],
        "{layout}"
    );
    // A text-features folder from before the layout was recorded: a clear message.
    manifest["summary"]
        .as_object_mut()
        .unwrap()
        .remove("main_combined_layout");
    std::fs::write(&manifest_path, manifest.to_string()).unwrap();
    let mut refit = [&text_blocks[..], &["--force"]].concat();
    refit[0] = "fit";
    let err = fails(ws.path(), &refit);
    assert!(
        err.contains("main_combined_layout") && err.contains("--force"),
        "{err}"
    );
    std::fs::write(&manifest_path, original).unwrap();

    // The image features are on disk once, as their blocks; the manifest says where each goes
    // in the combined matrix, in order and without gaps, and with what weight.
    let images = ws.stage("image-features");
    assert!(!images.join("main/image_features.npy").exists());
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(images.join("manifest.json")).unwrap())
            .unwrap();
    let layout = manifest["summary"]["main_combined_layout"]
        .as_array()
        .expect("main_combined_layout in the summary");
    let mut end = 0;
    for block in layout {
        assert_eq!(block["start"], end, "{block}");
        assert!(block["weight"].is_f64(), "{block}");
        let file = format!("main/block_{}.npy", block["block"].as_str().unwrap());
        assert!(images.join(&file).exists(), "{file}");
        end = block["end"].as_u64().unwrap();
    }
    assert_eq!(manifest["summary"]["main_dims"], end);

    // inspect shows an image block with its ids.
    let inspect = ok(
        ws.path(),
        &["inspect", "work/image-features/main/block_sift_fisher.npy"],
    );
    assert!(inspect.contains("non-finite values: 0"), "{inspect}");
    assert!(
        inspect.contains(": [") && inspect.contains("Image19990001-"),
        "rows shown with ids: {inspect}"
    );
    let inspect = ok(
        ws.path(),
        &["inspect", "work/text-features/main/text_features.npz"],
    );
    assert!(inspect.contains("sparse CSR"), "{inspect}");

    // The contest layout: 附件1 (training data) beside 附件2 and 附件3 (here the carved ones,
    // without their gold). `submit` answers them; with no answers at hand, nothing is scored.
    let contest = ws.path().join("contest");
    std::fs::create_dir(&contest).unwrap();
    std::os::unix::fs::symlink(ws.path().join("data"), contest.join("附件1")).unwrap();
    let carved = ws.stage("submit").join("contest");
    std::os::unix::fs::symlink(carved.join("附件2"), contest.join("附件2")).unwrap();
    // 附件3 with one more query image listed whose file is missing: it is answered too.
    let third = contest.join("附件3");
    std::fs::create_dir(&third).unwrap();
    for linked in ["ImageData", "word_data.csv"] {
        std::os::unix::fs::symlink(carved.join("附件3").join(linked), third.join(linked)).unwrap();
    }
    let listed = std::fs::read_to_string(carved.join("附件3/image_test.csv")).unwrap();
    std::fs::write(
        third.join("image_test.csv"),
        format!("{}\nImage-missing.jpg\n", listed.trim_end()),
    )
    .unwrap();
    let log = ok(
        ws.path(),
        &[
            "submit",
            "pipeline.toml",
            "--data",
            "contest",
            "--work",
            "work2",
        ],
    );
    assert!(log.contains("submit: done"), "{log}");
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.path().join("work2/submit/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["summary"]["source"],
        "the contest's attachments 2 and 3"
    );
    assert!(!ws.path().join("work2/submit/score.json").exists());
    let answered = std::fs::read_to_string(ws.path().join("work2/submit/result2.csv")).unwrap();
    let images = std::fs::read_to_string(third.join("image_test.csv")).unwrap();
    assert_eq!(
        answered.lines().count() - 1,
        5 * (images.lines().count() - 1),
        "every query image answered, the missing one too"
    );
    assert_eq!(
        answered
            .lines()
            .filter(|l| l.starts_with("Image-missing.jpg,"))
            .count(),
        5
    );
    let skipped = manifest["skipped"].as_array().unwrap();
    assert!(
        skipped.iter().any(|s| s["id"] == "Image-missing.jpg"
            && s["reason"] == "missing: query answered with arbitrary texts"),
        "{skipped:?}"
    );
    // For the contest itself, a model trained on every pair: no test part held out
    // (`split.test = 0`). `submit` answers the attachments; `rank` has nothing to rank and says
    // what to run instead; without the attachments there is nothing to answer or carve.
    let every_pair = ["--work", "work3", "--set", "split.test=0"];
    let log = ok(
        ws.path(),
        &[
            &["submit", "pipeline.toml", "--data", "contest"],
            &every_pair[..],
        ]
        .concat(),
    );
    assert!(log.contains("submit: done"), "{log}");
    let split: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.path().join("work3/split/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(split["summary"]["partitions"]["main"]["test"], 0, "{split}");
    let answered_by_all =
        std::fs::read_to_string(ws.path().join("work3/submit/result2.csv")).unwrap();
    assert_eq!(answered_by_all.lines().count(), answered.lines().count());
    let err = fails(
        ws.path(),
        &[
            &["rank", "pipeline.toml", "--data", "contest"],
            &every_pair[..],
        ]
        .concat(),
    );
    assert!(
        err.contains("the test part has no images") && err.contains("crossmodal submit"),
        "{err}"
    );
    let err = fails(
        ws.path(),
        &[&["submit", "pipeline.toml"], &every_pair[..]].concat(),
    );
    assert!(err.contains("no contest attachments 2 and 3"), "{err}");
    let text_manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(ws.path().join("work2/text-features/manifest.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        text_manifest["summary"]["unlabelled_captions"]
            .as_u64()
            .unwrap() as usize,
        2 * queries.len(),
        "the contest's captions feed the word vectors"
    );

    // The grid search runs on the validation part when asked, and names a winner of its grid.
    let log = ok(
        ws.path(),
        &[
            "tune",
            "pipeline.toml",
            "--set",
            "tune.ridge_x=[0.1]",
            "--set",
            "tune.ridge_y=[0.1, 1.0]",
        ],
    );
    assert!(log.contains("tune: running"), "{log}");
    let tuned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.stage("tune").join("tune.json")).unwrap())
            .unwrap();
    let points = tuned["points"].as_array().unwrap();
    assert_eq!(points.len(), 2 * 3 * 3, "ridge_y x dims x p");
    let best = points
        .iter()
        .map(|p| p["score"].as_f64().unwrap())
        .fold(f64::MIN, f64::max);
    assert_eq!(tuned["winner"]["score"].as_f64().unwrap(), best);

    // Image block weightings are a grid axis too, rebuilt from the written blocks.
    ok(
        ws.path(),
        &[
            "tune",
            "pipeline.toml",
            "--set",
            "tune.ridge_x=[0.1]",
            "--set",
            "tune.ridge_y=[0.1]",
            "--set",
            "tune.image_block_weights=[{hsv = 0.0}, {gist = 2.0, hog_bow = 0.5}]",
        ],
    );
    let tuned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.stage("tune").join("tune.json")).unwrap())
            .unwrap();
    let points = tuned["points"].as_array().unwrap();
    assert_eq!(points.len(), 2 * 3 * 3, "weightings x dims x p");
    assert_eq!(points[0]["block_weights"], 0);
    assert_eq!(points[17]["block_weights"], 1);
    let md = std::fs::read_to_string(ws.stage("tune").join("tune.md")).unwrap();
    assert!(md.contains("hsv=0"), "{md}");
    let err = common::fails(
        ws.path(),
        &[
            "tune",
            "pipeline.toml",
            "--set",
            "tune.image_block_weights=[{colour = 0.0}]",
        ],
    );
    assert!(
        err.contains("\"colour\"") && err.contains("sift_bow"),
        "{err}"
    );
    // With one kernel map per image block, a block weighted 0 leaves its map too; any other
    // weight would not reach the map, so it is refused.
    let per_block_tune = [
        "tune",
        "pipeline.toml",
        "--set",
        "tune.ridge_x=[0.1]",
        "--set",
        "tune.ridge_y=[0.1]",
        "--set",
        "tune.dims=[8]",
        "--set",
        "tune.eigen_power=[1.0]",
        "--set",
        "fit.kernel_x.landmarks=40",
        "--set",
        "fit.kernel_x.per_block=true",
    ];
    ok(
        ws.path(),
        &[
            &per_block_tune[..],
            &[
                "--set",
                "tune.image_block_weights=[{}, {hsv = 0.0}, {gist = 0.0}]",
            ],
        ]
        .concat(),
    );
    let tuned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.stage("tune").join("tune.json")).unwrap())
            .unwrap();
    assert_eq!(tuned["points"].as_array().unwrap().len(), 3, "{tuned:#}");
    let err = common::fails(
        ws.path(),
        &[
            &per_block_tune[..],
            &["--set", "tune.image_block_weights=[{hsv = 2.0}]"],
        ]
        .concat(),
    );
    assert!(
        err.contains("hsv = 2") && err.contains("only leave a block out"),
        "{err}"
    );

    // k-fold cross-validation over the training and validation images: each point scored on
    // every fold, its score the mean; the ranking (CSLS, inverted softmax) is a grid axis.
    let log = ok(
        ws.path(),
        &[
            "tune",
            "pipeline.toml",
            "--set",
            "tune.ridge_x=[0.1]",
            "--set",
            "tune.ridge_y=[0.1]",
            "--set",
            "tune.dims=[24]",
            "--set",
            "tune.eigen_power=[1.0, 2.0]",
            "--set",
            "tune.folds=3",
            "--set",
            "tune.csls_k=[0, 3]",
            "--set",
            "tune.inverted_softmax=[0.1]",
        ],
    );
    assert!(log.contains("tune: running"), "{log}");
    let tuned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.stage("tune").join("tune.json")).unwrap())
            .unwrap();
    assert_eq!(tuned["folds"], 3);
    let csls: Vec<u64> = tuned["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["csls_k"].as_u64().unwrap())
        .collect();
    assert_eq!(
        csls,
        [0, 3, 0, 0, 3, 0],
        "p x ranking, the ranking innermost"
    );
    let temperatures: Vec<f64> = tuned["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["inverted_softmax_temperature"].as_f64().unwrap_or(0.0))
        .collect();
    assert_eq!(
        temperatures,
        [0.0, 0.0, 0.1f32 as f64, 0.0, 0.0, 0.1f32 as f64]
    );
    for point in tuned["points"].as_array().unwrap() {
        let folds: Vec<f64> = point["fold_scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert_eq!(folds.len(), 3, "{point}");
        let mean = folds.iter().sum::<f64>() / 3.0;
        assert!(
            (point["score"].as_f64().unwrap() - mean).abs() < 1e-12,
            "{point}"
        );
    }
    let md = std::fs::read_to_string(ws.stage("tune").join("tune.md")).unwrap();
    assert!(
        md.contains("3-fold cross-validation") && md.contains("Fold 3:"),
        "{md}"
    );
    let err = common::fails(
        ws.path(),
        &["tune", "pipeline.toml", "--set", "tune.folds=1"],
    );
    assert!(
        err.contains("folds must be 0") && err.contains("got 1"),
        "{err}"
    );

    // The final model learns on train + validation; validation can then no longer be scored.
    let pairs = |ws: &Workspace| -> u64 {
        let manifest: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(ws.stage("fit").join("manifest.json")).unwrap(),
        )
        .unwrap();
        manifest["summary"]["main_pairs"].as_u64().unwrap()
    };
    let train_only = pairs(&ws);
    let refit = [
        "run",
        "pipeline.toml",
        "--set",
        "fit.include_validation=true",
    ];
    let log = ok(ws.path(), &refit);
    assert_eq!(
        ran(&log),
        vec!["fit", "embed", "rank", "evaluate", "submit"],
        "{log}"
    );
    let with_validation = pairs(&ws);
    assert!(
        with_validation > train_only,
        "{with_validation} vs {train_only}"
    );
    let err = common::fails(
        ws.path(),
        &[
            "evaluate",
            "pipeline.toml",
            "--set",
            "fit.include_validation=true",
            "--set",
            "evaluate.part=validation",
        ],
    );
    assert!(err.contains("include_validation"), "{err}");

    // A learning curve: the model learns on about half the images (with their captions).
    let half = [&refit[..], &["--set", "fit.pairs_fraction=0.5"]].concat();
    let log = ok(ws.path(), &half);
    assert_eq!(
        ran(&log),
        vec!["fit", "embed", "rank", "evaluate", "submit"],
        "{log}"
    );
    let halved = pairs(&ws);
    assert!(
        halved > with_validation / 4 && halved < with_validation * 3 / 4,
        "{halved} of {with_validation}"
    );
    let err = fails(
        ws.path(),
        &["fit", "pipeline.toml", "--set", "fit.pairs_fraction=1.5"],
    );
    assert!(
        err.contains("pairs_fraction must be in (0, 1], got 1.5"),
        "{err}"
    );

    // Mirrored copies of every image outside the test part: one more pair per caption (one
    // caption per image here), and the block-weight search stacks them too.
    let hflip = [&refit[..], &["--set", "image_features.hflip_training=true"]].concat();
    let log = ok(ws.path(), &hflip);
    assert!(log.contains("image-features: running"), "{log}");
    assert!(!log.contains("text-features: running"), "{log}");
    assert_eq!(pairs(&ws), 2 * with_validation);
    let mirrored =
        std::fs::read_to_string(ws.stage("image-features").join("main/hflip/image_rows.txt"))
            .unwrap();
    assert_eq!(mirrored.lines().count() as u64, with_validation);
    let tune_mirrored = [
        "tune",
        "pipeline.toml",
        "--set",
        "image_features.hflip_training=true",
        "--set",
        "tune.ridge_x=[0.1]",
        "--set",
        "tune.ridge_y=[0.1]",
        "--set",
        "tune.dims=[24]",
        "--set",
        "tune.eigen_power=[1.0]",
    ];
    ok(
        ws.path(),
        &[
            &tune_mirrored[..],
            &["--set", "tune.image_block_weights=[{hsv = 0.0}]"],
        ]
        .concat(),
    );
    // The same with 3-fold cross-validation (the rows and their copies read again each round).
    ok(
        ws.path(),
        &[&tune_mirrored[..], &["--set", "tune.folds=3"]].concat(),
    );
    let tuned: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ws.stage("tune").join("tune.json")).unwrap())
            .unwrap();
    let folds = tuned["points"][0]["fold_scores"].as_array().unwrap();
    assert_eq!(folds.len(), 3, "{tuned:#}");
}

#[test]
fn extra_training_pairs_join_every_training_part_and_nothing_else() {
    let ws = Workspace::new(60, &[], LIGHT);
    ok(
        ws.path(),
        &["make-fixture", "more", "--images", "30", "--seed", "7"],
    );
    ok(ws.path(), &["evaluate", "pipeline.toml"]);
    let read =
        |stage: &str, file: &str| std::fs::read_to_string(ws.stage(stage).join(file)).unwrap();
    let plain_partitions = read("split", "partitions.csv");
    let plain_report: serde_json::Value =
        serde_json::from_str(&read("evaluate", "report.json")).unwrap();

    let extra = [
        "--set",
        "extra_training.layout=\"teddy\"",
        "--set",
        "extra_training.data=\"more\"",
        "--set",
        "extra_training.prefix=\"more\"",
        "--set",
        "extra_training.captions_per_image=1",
    ];
    let mut args = vec!["evaluate", "pipeline.toml"];
    args.extend(extra);
    let log = ok(ws.path(), &args);
    assert_eq!(
        ran(&log),
        [
            "split",
            "image-features",
            "text-features",
            "fit",
            "embed",
            "evaluate"
        ],
        "{log}"
    );

    // The main images keep their parts; the extra ones follow, in the training part only.
    let partitions = read("split", "partitions.csv");
    let plain: Vec<&str> = plain_partitions.lines().collect();
    let lines: Vec<&str> = partitions.lines().collect();
    assert_eq!(lines[..plain.len()], plain[..]);
    let added = &lines[plain.len()..];
    for line in added {
        assert!(line.starts_with("more/"), "{line}");
        assert!(line.ends_with(",train"), "{line}");
    }
    let split = ws.manifest("split");
    let summary = &split["summary"]["extra_training"];
    assert_eq!(summary["images_usable"], added.len(), "{split:#}");
    // The fixture's bad cases are reported under the prefixed ids, and left out.
    assert!(
        added.len() < 30
            && split["skipped"]
                .as_array()
                .unwrap()
                .iter()
                .any(|s| s["id"].as_str().unwrap().starts_with("more/")),
        "{split:#}"
    );
    let texts = read("split", "texts.csv");
    let extra_texts = texts.lines().filter(|l| l.starts_with("more/")).count();
    assert_eq!(extra_texts, added.len(), "one caption per extra image");
    assert_eq!(summary["texts_usable"], extra_texts);

    // The test queries are the main dataset's, as before.
    let report: serde_json::Value = serde_json::from_str(&read("evaluate", "report.json")).unwrap();
    for direction in ["text_to_image", "image_to_text"] {
        assert_eq!(
            report[direction]["queries"], plain_report[direction]["queries"],
            "{direction}"
        );
    }

    // A section without parts is refused, naming the field.
    let mut args = vec!["split", "pipeline.toml"];
    args.extend(extra);
    args.extend(["--set", "extra_training.parts=[]"]);
    let err = fails(ws.path(), &args);
    assert!(err.contains("[extra_training] parts"), "{err}");
}
