//! `search`, run by the real binary on the synthetic fixture in a temporary folder: a test
//! caption or image taken by id gets the very ranking `rank` wrote for it, under plain cosine,
//! CSLS and the inverted softmax; a caption typed in and an image given as a file rank the
//! gallery as their twins in the dataset do; bad queries are refused with what is wrong.

mod common;

use std::collections::HashMap;

use common::{LIGHT, Workspace, fails, ok};
use serde_json::Value;

/// `query_id -> [(result_id, score)]`, best first, from a `rank` CSV.
fn read_ranking(path: &std::path::Path) -> HashMap<String, Vec<(String, f64)>> {
    let mut ranking: HashMap<String, Vec<(String, f64)>> = HashMap::new();
    let mut reader = csv::Reader::from_path(path).unwrap();
    for row in reader.records() {
        let row = row.unwrap();
        ranking
            .entry(row[0].to_string())
            .or_default()
            .push((row[2].to_string(), row[3].parse().unwrap()));
    }
    ranking
}

/// The single result of a `search --json` run.
fn search_json(ws: &Workspace, args: &[&str]) -> Value {
    let mut all = vec!["-q", "search", "pipeline.toml", "--json"];
    all.extend_from_slice(args);
    let out = ok(ws.path(), &all);
    let report: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(report["results"].as_array().unwrap().len(), 1, "{report:#}");
    report
}

/// `(result id, score)` of every hit, best first (the caption id for captions).
fn hits(report: &Value) -> Vec<(String, f64)> {
    report["results"][0]["hits"]
        .as_array()
        .unwrap()
        .iter()
        .map(|hit| {
            let id = hit["text_id"]
                .as_str()
                .or(hit["image_id"].as_str())
                .unwrap();
            (id.to_string(), hit["score"].as_f64().unwrap())
        })
        .collect()
}

/// The two rankings agree: the same scores rank by rank, and each item the same score (to the
/// precision `rank` writes, 6 decimals), so only the order within a tie may differ.
fn assert_same_ranking(expected: &[(String, f64)], found: &[(String, f64)], what: &str) {
    assert!(found.len() >= expected.len(), "{what}: {found:?}");
    let score_of: HashMap<&str, f64> = found.iter().map(|(id, s)| (id.as_str(), *s)).collect();
    for (r, (id, score)) in expected.iter().enumerate() {
        assert!(
            (found[r].1 - score).abs() < 2e-5,
            "{what}: rank {} scores {} against {score}",
            r + 1,
            found[r].1
        );
        let at = score_of
            .get(id.as_str())
            .unwrap_or_else(|| panic!("{what}: {id} not found"));
        assert!(
            (at - score).abs() < 2e-5,
            "{what}: {id} {at} against {score}"
        );
    }
}

#[test]
fn search_ranks_as_rank_does_and_refuses_bad_queries() {
    let ws = Workspace::new(120, &[], LIGHT);
    ok(ws.path(), &["run", "pipeline.toml"]);
    let partition = std::fs::read_dir(ws.stage("rank"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_dir())
        .unwrap();

    for ranking in [
        None,
        Some("rank.csls_k=3"),
        Some("rank.inverted_softmax_temperature=0.2"),
    ] {
        let set: Vec<&str> = ranking.iter().flat_map(|s| ["--set", *s]).collect();
        let mut rank_args = vec!["rank", "pipeline.toml"];
        rank_args.extend_from_slice(&set);
        ok(ws.path(), &rank_args);
        let text_to_image = read_ranking(&partition.join("text_to_image.csv"));
        let image_to_text = read_ranking(&partition.join("image_to_text.csv"));
        for (ranked, flag) in [
            (&text_to_image, "--text-id"),
            (&image_to_text, "--image-id"),
        ] {
            let mut queries: Vec<&String> = ranked.keys().collect();
            queries.sort();
            for query in queries.into_iter().take(3) {
                let mut args = vec![flag, query.as_str(), "--part", "test", "-k", "10"];
                args.extend_from_slice(&set);
                let report = search_json(&ws, &args);
                let what = format!("{flag} {query} under {ranking:?}");
                assert_same_ranking(&ranked[query], &hits(&report), &what);
                let result = &report["results"][0];
                assert_eq!(result["by_id"], true);
                let true_rank = result["true_match_rank"].as_u64().unwrap() as usize;
                let marked: Vec<usize> = result["hits"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|h| h["relevant"] == true)
                    .map(|h| h["rank"].as_u64().unwrap() as usize)
                    .collect();
                if true_rank <= 10 {
                    assert_eq!(marked.first(), Some(&true_rank), "{what}: {result:#}");
                } else {
                    assert!(marked.is_empty(), "{what}: {result:#}");
                }
                assert!(
                    result["hits"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .all(|h| h["part"] == "test")
                );
            }
        }
    }

    // The gallery's side of each hubness correction is kept between searches (the loop above
    // ranked its second and third queries with what the first kept), inside `embed`'s folder:
    // doctored, a kept file changes the ranking, so it is read; after `embed` runs again it is
    // not, and it is replaced; `clean` of `embed` removes it.
    let kept_dir = ws
        .stage("embed")
        .join("search")
        .join(partition.file_name().unwrap().to_str().unwrap());
    let kept = || -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&kept_dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    let names = kept();
    assert_eq!(names.len(), 4, "two sides, two corrections: {names:?}");
    let doctored = kept_dir.join(
        names
            .iter()
            .find(|n| *n == "test-images-inverted-softmax-0.2.npy")
            .unwrap_or_else(|| panic!("{names:?}")),
    );
    let penalties: ndarray::Array2<f32> = ndarray_npy::read_npy(&doctored).unwrap();
    ndarray_npy::write_npy(&doctored, &penalties.mapv(|_| -1000.0f32)).unwrap();
    let text_query = read_ranking(&partition.join("text_to_image.csv"))
        .into_keys()
        .min()
        .unwrap();
    let softmax = [
        "--text-id",
        text_query.as_str(),
        "--part",
        "test",
        "--set",
        "rank.inverted_softmax_temperature=0.2",
    ];
    let top_score = |report: &Value| hits(report)[0].1;
    assert!(top_score(&search_json(&ws, &softmax)) > 900.0);
    ok(ws.path(), &["embed", "pipeline.toml", "--force"]);
    assert!(top_score(&search_json(&ws, &softmax)) < 10.0);
    // The search after `embed` ran kept its own penalties, not the doctored ones.
    let rekept: ndarray::Array2<f32> = ndarray_npy::read_npy(&doctored).unwrap();
    assert_eq!(rekept.dim(), penalties.dim());
    assert!(rekept.iter().all(|&v| v > -100.0), "{rekept}");
    ok(ws.path(), &["clean", "pipeline.toml", "embed"]);
    assert!(!kept_dir.exists());

    // A caption typed in ranks as its twin in the dataset, and an image file as its id does
    // (every item of the gallery compared, k = its size).
    let mut texts = csv::Reader::from_path(ws.stage("split").join("texts.csv")).unwrap();
    let (text_id, caption) = texts
        .records()
        .map(|r| r.unwrap())
        .map(|r| (r[0].to_string(), r[2].to_string()))
        .next()
        .unwrap();
    let mut images = csv::Reader::from_path(ws.stage("split").join("images.csv")).unwrap();
    let (image_id, image_path) = images
        .records()
        .map(|r| r.unwrap())
        .map(|r| (r[0].to_string(), r[1].to_string()))
        .next()
        .unwrap();
    let all = "100000";
    let by_id = search_json(&ws, &["--text-id", &text_id, "-k", all]);
    let typed = search_json(&ws, &["--text", &caption, "-k", all]);
    assert_eq!(typed["results"][0]["by_id"], false);
    assert!(typed["results"][0]["true_match_rank"].is_null());
    assert_same_ranking(&hits(&by_id), &hits(&typed), "typed caption");
    let gallery = typed["images"].as_u64().unwrap() as usize;
    assert_eq!(
        hits(&typed).len(),
        gallery,
        "k above the gallery lists it all"
    );
    let by_id = search_json(&ws, &["--image-id", &image_id, "-k", all]);
    // images.csv names each image inside the data folder.
    let image_path = format!("data/{image_path}");
    let file = search_json(&ws, &["--image", &image_path, "-k", all]);
    assert_same_ranking(&hits(&by_id), &hits(&file), "image file");

    // The text table: the header says what was searched and how, and each query's true match is
    // marked.
    let table = ok(
        ws.path(),
        &[
            "-q",
            "search",
            "pipeline.toml",
            "--text-id",
            &text_id,
            "-k",
            "3",
        ],
    );
    assert!(table.contains("ranked by cosine"), "{table}");
    assert!(table.contains(&format!("caption {text_id}")), "{table}");

    // Bad queries: what is wrong, named.
    let err = fails(
        ws.path(),
        &["search", "pipeline.toml", "--text-id", "no-such-caption"],
    );
    assert!(err.contains("\"no-such-caption\""), "{err}");
    let err = fails(
        ws.path(),
        &["search", "pipeline.toml", "--image", "pipeline.toml"],
    );
    assert!(err.contains("cannot describe image pipeline.toml"), "{err}");
    let err = fails(
        ws.path(),
        &["search", "pipeline.toml", "--text", "x", "-k", "0"],
    );
    assert!(err.contains("k must be at least 1, got 0"), "{err}");
    let err = fails(ws.path(), &["search", "pipeline.toml"]);
    assert!(err.contains("no query"), "{err}");
}
