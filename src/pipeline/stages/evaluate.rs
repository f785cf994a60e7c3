//! `rank` and `evaluate`: the held-out images and captions of each partition ranked against
//! each other in the shared space, both directions, and scored.
//!
//! `rank` writes `<p>/text_to_image.csv` and `<p>/image_to_text.csv` (query id, rank, result
//! id, score) for the top K of every test query: exact cosine top-K as blocked matrix products,
//! ties broken by gallery order, optionally CSLS-corrected (Conneau et al. 2018) with neighbours
//! from the training items.
//! `evaluate` computes R@K, median and mean rank of the true match (Hodosh et al. 2013: a text
//! query hits its image; an image query hits when any of its captions is in the top K), per
//! partition and as mean ± std over folds, and writes `report.json`, `report.md`,
//! `recall_curve.png` and `report.html` (a seeded sample of queries with their top 5).

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use super::features::load_split;
use super::fusion::{Embeddings, FitSection, distinct_images, load_embeddings, pairs_in};
use super::split::SplitArtifacts;
use crate::data::Part;
use crate::data::split::Partition;
use crate::error::Error;
use crate::pipeline::artifacts::atomic_write;
use crate::pipeline::{Context, PipelineError, Stage, StageWriter};
use crate::retrieval::evaluate::{EvalOptions, Evaluation, Summary};
use crate::retrieval::report::{HtmlExamples, image_href, write_report_html, write_reports};
use crate::retrieval::{RankParams, TopK, evaluate};

/// The held-out (or training) items of one partition, in the shared space.
pub(crate) struct PartEmbeddings {
    /// Image rows, one per image with at least one caption in the part.
    pub(crate) images: Array2<f32>,
    pub(crate) image_ids: Vec<String>,
    pub(crate) image_paths: Vec<std::path::PathBuf>,
    pub(crate) texts: Array2<f32>,
    pub(crate) text_ids: Vec<String>,
    pub(crate) captions: Vec<String>,
    /// For each text, its image's row in `images`.
    pub(crate) text_image: Vec<usize>,
}

/// The embeddings of one part of a partition; an empty part is refused, with what emptied it
/// and what to do instead (a split with `test = 0` trains on every pair, for `submit`).
pub(crate) fn part_embeddings(
    split: &SplitArtifacts,
    partition: &Partition,
    embeddings: &Embeddings,
    part: Part,
) -> Result<PartEmbeddings, PipelineError> {
    let pairs = pairs_in(split, partition, &embeddings.image_rows, part);
    if pairs.is_empty() {
        let hint = match part {
            Part::Test => {
                "the split holds out no test images ([split] test = 0): nothing to rank or \
                 score. To evaluate, hold some out (test above 0, or folds); to answer the \
                 contest's attachments 2 and 3 with a model trained on every pair, run \
                 `crossmodal submit` alone, which does not need a test part"
            }
            Part::Validation => "set [split] validation above 0",
            Part::Train => "every image is held out",
        };
        return Err(PipelineError::Invalid(format!(
            "partition {}: the {} part has no images with captions; {hint}",
            partition.name,
            part.as_str()
        )));
    }
    Ok(pairs_embeddings(split, embeddings, &pairs))
}

/// The embeddings of the images and captions of `pairs` (`(image row, caption)`, as
/// [`pairs_in`] gives them): each image once, in order of first use, and every caption.
pub(crate) fn pairs_embeddings(
    split: &SplitArtifacts,
    embeddings: &Embeddings,
    pairs: &[(usize, usize)],
) -> PartEmbeddings {
    let (image_emb, image_rows, text_emb) = (
        &embeddings.images,
        &embeddings.image_rows,
        &embeddings.texts,
    );
    let (unique, text_image) = distinct_images(pairs);
    let texts: Vec<usize> = pairs.iter().map(|&(_, t)| t).collect();
    let image_index: std::collections::HashMap<&str, usize> = split
        .image_ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    PartEmbeddings {
        images: image_emb.select(Axis(0), &unique),
        image_ids: unique.iter().map(|&r| image_rows[r].clone()).collect(),
        image_paths: unique
            .iter()
            .map(|&r| split.image_paths[image_index[image_rows[r].as_str()]].clone())
            .collect(),
        texts: text_emb.select(Axis(0), &texts),
        text_ids: texts.iter().map(|&t| split.text_ids[t].clone()).collect(),
        captions: texts.iter().map(|&t| split.captions[t].clone()).collect(),
        text_image,
    }
}

/// Top-K both ways among the test items, with CSLS references from training when asked.
fn rank_both(
    rank: &RankParams,
    test: &PartEmbeddings,
    train: &PartEmbeddings,
    k: usize,
) -> Result<(TopK, TopK), Error> {
    let t2i = rank.top_k(
        &test.texts.view(),
        &test.images.view(),
        k.min(test.images.nrows()),
        Some((&train.texts.view(), &train.images.view())),
    )?;
    let i2t = rank.top_k(
        &test.images.view(),
        &test.texts.view(),
        k.min(test.texts.nrows()),
        Some((&train.images.view(), &train.texts.view())),
    )?;
    Ok((t2i, i2t))
}

/// Evaluates one partition's embeddings on `params.part` (CSLS references, when asked, from
/// the training items): the metrics, and the per-partition detail that `report.json` lists.
/// Every report of the project (`evaluate`, the neural baselines, `compare`) goes through it,
/// so their numbers are comparable by construction.
pub fn evaluate_partition(
    split: &SplitArtifacts,
    partition: &Partition,
    embeddings: &Embeddings,
    params: &EvaluateParams,
    rank: &RankParams,
) -> Result<(Evaluation, serde_json::Value), Error> {
    let test = part_embeddings(split, partition, embeddings, params.part)?;
    let train = part_embeddings(split, partition, embeddings, Part::Train)?;
    let csls_t2i = rank.penalties(
        &test.texts.view(),
        &test.images.view(),
        Some((&train.texts.view(), &train.images.view())),
    )?;
    let csls_i2t = rank.penalties(
        &test.images.view(),
        &test.texts.view(),
        Some((&train.images.view(), &train.texts.view())),
    )?;
    let options = EvalOptions {
        ks: params.ks.clone(),
        curve_max: params.curve_max.min(test.images.nrows()).max(1),
        block_rows: rank.block_rows,
        csls_text_to_image: csls_t2i.as_ref(),
        csls_image_to_text: csls_i2t.as_ref(),
    };
    let evaluation = evaluate(
        &test.images.view(),
        &test.texts.view(),
        &test.text_image,
        &options,
    )?;
    let detail = serde_json::json!({
        "text_to_image": {
            "recall": &evaluation.text_to_image.recall,
            "median_rank": evaluation.text_to_image.median_rank,
            "queries": evaluation.text_to_image.queries,
            "gallery": evaluation.text_to_image.gallery,
        },
        "image_to_text": {
            "recall": &evaluation.image_to_text.recall,
            "median_rank": evaluation.image_to_text.median_rank,
            "queries": evaluation.image_to_text.queries,
            "gallery": evaluation.image_to_text.gallery,
        },
    });
    Ok((evaluation, detail))
}

/// The fields every `report.json` carries besides the metrics.
pub fn report_extra(
    pipeline: &str,
    split: &SplitArtifacts,
    per_partition: serde_json::Map<String, serde_json::Value>,
    part: Part,
) -> serde_json::Map<String, serde_json::Value> {
    let mut extra = serde_json::Map::new();
    extra.insert("pipeline".into(), pipeline.into());
    extra.insert(
        "partitions".into(),
        split
            .partitions
            .iter()
            .map(|p| p.name.clone())
            .collect::<Vec<_>>()
            .into(),
    );
    extra.insert("per_partition".into(), per_partition.into());
    extra.insert("part".into(), part.as_str().into());
    extra
}

/// Records the `report.json`, `report.md` and `recall_curve.png` that `write_reports` wrote
/// under `prefix`, and puts R@1/5/10 of both directions into the manifest's summary (keys
/// `<key_prefix><direction>`).
pub(crate) fn record_reports(
    out: &mut StageWriter,
    prefix: &str,
    json_description: &str,
    summary: &Summary,
    key_prefix: &str,
) -> Result<(), Error> {
    out.record(&format!("{prefix}report.json"), "json", json_description)?;
    out.record(
        &format!("{prefix}report.md"),
        "text",
        "the same, as a table",
    )?;
    out.record(
        &format!("{prefix}recall_curve.png"),
        "png",
        "recall@K curves with chance level",
    )?;
    for (direction, d) in [
        ("text_to_image", &summary.text_to_image),
        ("image_to_text", &summary.image_to_text),
    ] {
        let r = |k: usize| d.recall.get(&k).map(|m| m.mean).unwrap_or(0.0);
        out.summary(
            &format!("{key_prefix}{direction}"),
            serde_json::json!({"r1": r(1), "r5": r(5), "r10": r(10)}),
        );
    }
    Ok(())
}

/// The `rank` stage.
pub struct RankStage;

/// Options of `rank`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankStageParams {
    /// How many results to keep per query.
    pub k: usize,
    /// How to rank; its keys sit in the same section (`[rank]`).
    #[serde(flatten)]
    pub rank: RankParams,
}

impl Default for RankStageParams {
    fn default() -> Self {
        Self {
            k: 10,
            rank: RankParams::default(),
        }
    }
}

fn write_top(
    out: &mut StageWriter,
    file: &str,
    query_ids: &[String],
    gallery_ids: &[String],
    top: &TopK,
) -> Result<(), Error> {
    let path = out.path(file);
    atomic_write(&path, |w| {
        use std::io::Write;
        writeln!(w, "query_id,rank,result_id,score")?;
        for (q, id) in query_ids.iter().enumerate() {
            for r in 0..top.indices.ncols() {
                let g = top.indices[[q, r]] as usize;
                writeln!(
                    w,
                    "{id},{},{},{:.6}",
                    r + 1,
                    gallery_ids[g],
                    top.scores[[q, r]]
                )?;
            }
        }
        Ok(())
    })?;
    out.record(
        file,
        "csv",
        "top results of each test query: query_id,rank,result_id,score",
    )?;
    Ok(())
}

impl Stage for RankStage {
    fn name(&self) -> &'static str {
        "rank"
    }
    fn about(&self) -> &'static str {
        "rank the test images for each test caption and the test captions for each test image"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split", "embed"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["rank"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let params: RankStageParams = ctx.config.section("rank")?;
        let record = serde_json::json!({ "k": params.k, "block_rows": params.rank.block_rows });
        Ok(params.rank.with_hubness(record)?)
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params: RankStageParams = ctx.config.section("rank")?;
        let split = load_split(ctx, self.name())?;
        for partition in &split.partitions {
            let p = &partition.name;
            let embeddings = load_embeddings(ctx, p)?;
            let test = part_embeddings(&split, partition, &embeddings, Part::Test)?;
            let train = part_embeddings(&split, partition, &embeddings, Part::Train)?;
            let (t2i, i2t) = rank_both(&params.rank, &test, &train, params.k)?;
            write_top(
                out,
                &format!("{p}/text_to_image.csv"),
                &test.text_ids,
                &test.image_ids,
                &t2i,
            )?;
            write_top(
                out,
                &format!("{p}/image_to_text.csv"),
                &test.image_ids,
                &test.text_ids,
                &i2t,
            )?;
        }
        Ok(())
    }
}

/// Refuses a K of 0, and scoring the validation part with a model that learnt on it; called
/// when the stage is planned, so `run` says so before any stage runs.
fn check_evaluate(ctx: &Context, params: &EvaluateParams) -> Result<(), Error> {
    let bad = |message: String| -> Error {
        PipelineError::BadConfig {
            path: ctx.config.path.clone(),
            message,
        }
        .into()
    };
    if params.ks.contains(&0) {
        return Err(bad(format!(
            "evaluate.ks: every K must be at least 1, got {:?}",
            params.ks
        )));
    }
    if params.part == Part::Validation && FitSection::load(ctx)?.include_validation {
        return Err(bad("evaluate.part = validation, but [fit] include_validation = true: the model has learnt on the validation part; set fit.include_validation=false to score it".into()));
    }
    Ok(())
}

/// Options of `evaluate`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EvaluateParams {
    /// K levels reported besides 1, 5 and 10.
    pub ks: Vec<usize>,
    /// Largest K of the recall curve.
    pub curve_max: usize,
    /// Queries shown per direction in report.html.
    pub html_samples: usize,
    /// Seed of the sample shown in report.html.
    pub seed: u64,
    /// The part evaluated: `test`, or `validation` while choosing parameters (never tune on
    /// test).
    pub part: Part,
}

impl Default for EvaluateParams {
    fn default() -> Self {
        Self {
            ks: vec![1, 5, 10],
            curve_max: 50,
            html_samples: 12,
            seed: 0,
            part: Part::Test,
        }
    }
}

/// The `evaluate` stage.
pub struct EvaluateStage;

impl Stage for EvaluateStage {
    fn name(&self) -> &'static str {
        "evaluate"
    }
    fn about(&self) -> &'static str {
        "R@K, median and mean rank on the held-out images and captions; report files"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split", "embed"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["evaluate", "rank"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let evaluate: EvaluateParams = ctx.config.section("evaluate")?;
        let rank: RankStageParams = ctx.config.section("rank")?;
        check_evaluate(ctx, &evaluate)?;
        let mut record = serde_json::json!({ "evaluate": evaluate });
        if evaluate.html_samples > 0 {
            // report.html links its thumbnails into the data folder, so the folder is part of
            // what the page says: data moved elsewhere reruns this stage (seconds), nothing else.
            record["report_images_in"] = serde_json::json!(ctx.data_dir.display().to_string());
        }
        Ok(rank.rank.with_hubness(record)?)
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params: EvaluateParams = ctx.config.section("evaluate")?;
        let rank: RankStageParams = ctx.config.section("rank")?;
        check_evaluate(ctx, &params)?;
        let split = load_split(ctx, self.name())?;
        let mut evaluations: Vec<Evaluation> = Vec::new();
        let mut per_partition = serde_json::Map::new();
        for (i, partition) in split.partitions.iter().enumerate() {
            let p = &partition.name;
            let embeddings = load_embeddings(ctx, p)?;
            let (evaluation, detail) =
                evaluate_partition(&split, partition, &embeddings, &params, &rank.rank)?;
            per_partition.insert(p.clone(), detail);
            if i == 0 && params.html_samples > 0 {
                let test = part_embeddings(&split, partition, &embeddings, params.part)?;
                let train = part_embeddings(&split, partition, &embeddings, Part::Train)?;
                let (t2i, i2t) = rank_both(&rank.rank, &test, &train, 5)?;
                let title = format!("{} — {p}", ctx.config.pipeline.name);
                let page = out.path("report.html");
                // The staging folder sits beside the stage's final folder, at the same depth,
                // so links relative to it stay right after the rename.
                let page_dir = page.parent().expect("a file in the staging folder");
                write_report_html(
                    &page,
                    &HtmlExamples {
                        title: &title,
                        image_ids: &test.image_ids,
                        image_hrefs: &test
                            .image_paths
                            .iter()
                            .map(|image| image_href(page_dir, image))
                            .collect::<Vec<_>>(),
                        text_ids: &test.text_ids,
                        texts: &test.captions,
                        text_image: &test.text_image,
                        text_to_image: &t2i,
                        image_to_text: &i2t,
                        samples: params.html_samples,
                        seed: params.seed,
                    },
                )?;
                out.record(
                    "report.html",
                    "html",
                    "a seeded sample of queries with their top 5",
                )?;
            }
            evaluations.push(evaluation);
        }
        let summary = Summary::from_folds(&evaluations)?;
        let extra = report_extra(
            &ctx.config.pipeline.name,
            &split,
            per_partition,
            params.part,
        );
        let title = format!("crossmodal — {}", ctx.config.pipeline.name);
        write_reports(&out.path(""), &summary, &title, Some(&extra))?;
        record_reports(
            out,
            "",
            "R@K, median and mean rank, both directions",
            &summary,
            "",
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::config::deserialize_section;

    #[test]
    fn the_rank_section_reads_its_keys_and_names_them_for_an_unknown_one() {
        let value: toml::Value = toml::from_str("k = 5\ncsls_k = 10").unwrap();
        let params: RankStageParams = deserialize_section("rank", value).unwrap();
        assert_eq!(params.k, 5);
        assert_eq!(params.rank.csls_k, 10);
        assert_eq!(params.rank.block_rows, RankParams::default().block_rows);
        // Written flat.
        let json = serde_json::to_value(&params).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"k": 5, "block_rows": 256, "csls_k": 10, "inverted_softmax_temperature": 0.0})
        );

        let typo: toml::Value = toml::from_str("cls_k = 10").unwrap();
        let message = deserialize_section::<RankStageParams>("rank", typo).unwrap_err();
        assert!(message.contains("cls_k"), "{message}");
        assert!(
            message.contains(
                "expected one of `block_rows`, `csls_k`, `inverted_softmax_temperature`, `k`"
            ),
            "{message}"
        );
    }
}
