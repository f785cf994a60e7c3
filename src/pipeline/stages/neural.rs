//! `dual-encoder` and `mlp-fusion`: the neural baselines ([`crate::neural`]) as optional stages
//! (not part of `run`; name them, or run `comparison`).
//!
//! Each trains per partition on the same training pairs as `fit`, writes what `embed` writes
//! (`<p>/image_embeddings.npy` with `<p>/image_rows.txt`, `<p>/text_embeddings.npy` with
//! `text_ids.txt`), the model in `<p>/model/`, the loss per epoch in `<p>/training.json`, and
//! scores the embeddings exactly as `evaluate` does, on the test part (`report.json`,
//! `report.md`, `recall_curve.png`) and on the validation part when there is one
//! (`validation/report.*`, for choosing the models' settings without looking at test; one
//! training serves both, so `[evaluate] part` does not retrain them). `report.json` adds
//! training time, time to embed one item, parameter count and model size.

use std::collections::HashMap;
use std::time::Instant;

use ndarray::Array2;
use serde::Serialize;

use super::evaluate::{
    EvaluateParams, RankStageParams, evaluate_partition, record_reports, report_extra,
};
use super::features::{load_image_features, load_split};
use super::fusion::{Embeddings, load_text_features, pairs_in};
use super::split::SplitArtifacts;
use crate::data::Part;
use crate::error::{Error, IoError};
use crate::matrix::FeatureMatrix;
use crate::neural::pixels::{PixelSet, load_rgb};
use crate::neural::{DualEncoderParams, MlpFusionParams, NeuralError, TrainLog};
use crate::pipeline::{Context, Stage, StageWriter};
use crate::retrieval::evaluate::Summary;
use crate::retrieval::report::write_reports;

/// What one trained model cost, for the comparison.
#[derive(Debug, Clone, Default, Serialize)]
pub(super) struct Costs {
    pub train_seconds: f64,
    pub embed_ms_per_image: f64,
    pub embed_ms_per_text: f64,
    pub parameters: usize,
    pub model_bytes: u64,
    /// Training images the model keeps as anchors (the similarity profiles; 0 for the others).
    pub anchors: usize,
}

/// Writes the embeddings of partition `p`.
pub(super) fn write_embeddings(
    out: &mut StageWriter,
    p: &str,
    embeddings: &Embeddings,
) -> Result<(), Error> {
    let rows_file = format!("{p}/image_rows.txt");
    out.ids(
        &rows_file,
        &embeddings.image_rows,
        "ids of the image embedding rows",
    )?;
    out.dense(
        &format!("{p}/image_embeddings.npy"),
        &embeddings.images,
        Some(&rows_file),
        "images in the shared space, L2-normalised",
    )?;
    out.dense(
        &format!("{p}/text_embeddings.npy"),
        &embeddings.texts,
        Some("text_ids.txt"),
        "captions in the shared space, L2-normalised",
    )?;
    Ok(())
}

/// Records every file of `<p>/model/` and returns their total size.
fn record_model(out: &mut StageWriter, p: &str) -> Result<u64, Error> {
    let dir = out.path(&format!("{p}/model"));
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|e| IoError::new("listing", &dir, e))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .collect();
    names.sort();
    let mut bytes = 0;
    for name in names {
        let file = format!("{p}/model/{name}");
        bytes += std::fs::metadata(out.path(&file))
            .map_err(|e| IoError::new("reading metadata of", out.path(&file), e))?
            .len();
        out.record(&file, "model", "trained model")?;
    }
    Ok(bytes)
}

/// Evaluates every partition's embeddings as `evaluate` does and writes the reports, with the
/// model's costs (mean over partitions) in `report.json`.
pub(super) fn write_evaluation(
    ctx: &Context,
    out: &mut StageWriter,
    split: &SplitArtifacts,
    embeddings: &HashMap<String, Embeddings>,
    costs: &[Costs],
    model: &str,
) -> Result<(), Error> {
    let rank: RankStageParams = ctx.config.section("rank")?;
    for part in [Part::Test, Part::Validation] {
        let has_part = split.partitions.iter().all(|p| p.parts.contains(&part));
        if !has_part {
            continue;
        }
        let params = EvaluateParams {
            part,
            ..ctx.config.section("evaluate")?
        };
        let prefix = match part {
            Part::Validation => "validation/",
            _ => "",
        };
        write_part_evaluation(
            ctx, out, split, embeddings, costs, model, &params, &rank, prefix,
        )?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn write_part_evaluation(
    ctx: &Context,
    out: &mut StageWriter,
    split: &SplitArtifacts,
    embeddings: &HashMap<String, Embeddings>,
    costs: &[Costs],
    model: &str,
    params: &EvaluateParams,
    rank: &RankStageParams,
    prefix: &str,
) -> Result<(), Error> {
    let mut evaluations = Vec::new();
    let mut per_partition = serde_json::Map::new();
    for partition in &split.partitions {
        let (evaluation, detail) = evaluate_partition(
            split,
            partition,
            &embeddings[&partition.name],
            params,
            &rank.rank,
        )?;
        per_partition.insert(partition.name.clone(), detail);
        evaluations.push(evaluation);
    }
    let summary = Summary::from_folds(&evaluations)?;
    let mut extra = report_extra(&ctx.config.pipeline.name, split, per_partition, params.part);
    extra.insert("model".into(), model.into());
    let n = costs.len().max(1) as f64;
    let mean = |f: &dyn Fn(&Costs) -> f64| costs.iter().map(f).sum::<f64>() / n;
    let mut cost_json = serde_json::json!({
        "train_seconds": mean(&|c| c.train_seconds),
        "embed_ms_per_image": mean(&|c| c.embed_ms_per_image),
        "embed_ms_per_text": mean(&|c| c.embed_ms_per_text),
        "parameters": costs.first().map(|c| c.parameters).unwrap_or(0),
        "model_bytes": costs.first().map(|c| c.model_bytes).unwrap_or(0),
    });
    if costs.iter().any(|c| c.anchors > 0) {
        cost_json["anchors"] = (mean(&|c| c.anchors as f64).round() as u64).into();
    }
    extra.insert("costs".into(), cost_json);
    let title = format!(
        "crossmodal — {} — {model} ({} part)",
        ctx.config.pipeline.name,
        params.part.as_str()
    );
    let dir = out.path(prefix);
    std::fs::create_dir_all(&dir).map_err(|e| IoError::new("creating", &dir, e))?;
    write_reports(&dir, &summary, &title, Some(&extra))?;
    let part = params.part.as_str();
    record_reports(
        out,
        prefix,
        &format!("R@K, median and mean rank on the {part} part, both directions; costs"),
        &summary,
        &format!("{part}_"),
    )?;
    Ok(())
}

/// What the neural stages' fingerprints cover of `[evaluate]`: everything but `part`, since
/// they score both parts.
pub(super) fn evaluate_params_json(ctx: &Context) -> Result<serde_json::Value, Error> {
    let params = EvaluateParams {
        part: Part::Test,
        ..ctx.config.section("evaluate")?
    };
    Ok(serde_json::to_value(params).expect("serialisable"))
}

pub(super) fn per_item_ms(start: Instant, items: usize) -> f64 {
    start.elapsed().as_secs_f64() * 1e3 / items.max(1) as f64
}

fn write_training_log(out: &mut StageWriter, p: &str, log: &TrainLog) -> Result<(), Error> {
    out.json(
        &format!("{p}/training.json"),
        log,
        "mean InfoNCE loss per epoch, steps, seconds, final temperature",
    )?;
    Ok(())
}

/// Computes one side's embeddings (rows L2-normalised).
type EmbedFn<'a> = Box<dyn FnOnce() -> Result<Array2<f32>, NeuralError> + 'a>;

/// Saves the model trained on partition `p` into `<p>/model/`, embeds every image and
/// caption with it (timed; each closure returns the rows), writes the embeddings and the
/// training log, and returns what `write_evaluation` needs.
fn commit_partition(
    out: &mut StageWriter,
    p: &str,
    log: &TrainLog,
    parameters: usize,
    save: impl FnOnce(&std::path::Path) -> Result<(), NeuralError>,
    embed: [EmbedFn<'_>; 2],
    image_rows: Vec<String>,
) -> Result<(Embeddings, Costs), Error> {
    let model_dir = out.path(&format!("{p}/model"));
    save(&model_dir)?;
    let model_bytes = record_model(out, p)?;
    write_training_log(out, p, log)?;
    let [embed_images, embed_texts] = embed;
    let start = Instant::now();
    let images = embed_images()?;
    let embed_ms_per_image = per_item_ms(start, images.nrows());
    let start = Instant::now();
    let texts = embed_texts()?;
    let embed_ms_per_text = per_item_ms(start, texts.nrows());
    let embeddings = Embeddings {
        images,
        image_rows,
        texts,
    };
    write_embeddings(out, p, &embeddings)?;
    out.summary(&format!("{p}_final_loss"), log.epoch_loss.last().copied());
    out.summary(&format!("{p}_train_seconds"), log.seconds);
    Ok((
        embeddings,
        Costs {
            train_seconds: log.seconds,
            embed_ms_per_image,
            embed_ms_per_text,
            parameters,
            model_bytes,
            anchors: 0,
        },
    ))
}

/// The `dual-encoder` stage.
pub struct DualEncoderStage;

impl Stage for DualEncoderStage {
    fn name(&self) -> &'static str {
        "dual-encoder"
    }
    fn about(&self) -> &'static str {
        "train a neural dual encoder (CNN over pixels, bag of tokens over captions) and score it"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["dual_encoder", "evaluate", "rank"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let params: DualEncoderParams = ctx.config.section("dual_encoder")?;
        let rank: RankStageParams = ctx.config.section("rank")?;
        Ok(rank.rank.with_hubness(serde_json::json!({
            "dual_encoder": params,
            "evaluate": evaluate_params_json(ctx)?,
        }))?)
    }
    fn in_full_run(&self) -> bool {
        false
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params = ctx
            .config
            .section::<DualEncoderParams>("dual_encoder")?
            .check()?;
        let split = load_split(ctx, self.name())?;
        // Decode every image once, small; an unreadable one is reported and left out.
        let bar = ctx.bar(split.image_ids.len() as u64, "decoding");
        let decoded: Vec<Result<Vec<u8>, crate::image::ImageError>> = {
            use rayon::prelude::*;
            split
                .image_paths
                .par_iter()
                .map(|path| {
                    let r = load_rgb(path, params.stored_size);
                    bar.inc(1);
                    r
                })
                .collect()
        };
        bar.finish_and_clear();
        let mut pixels = Vec::new();
        let mut image_rows = Vec::new();
        for (i, result) in decoded.into_iter().enumerate() {
            match result {
                Ok(bytes) => {
                    pixels.push(bytes);
                    image_rows.push(split.image_ids[i].clone());
                }
                Err(e) => out.skip(
                    &split.image_ids[i],
                    Some(&split.image_paths[i]),
                    &format!("undecodable: {e}"),
                ),
            }
        }
        let pixels = PixelSet {
            size: params.stored_size,
            pixels,
        };
        out.ids(
            "text_ids.txt",
            &split.text_ids,
            "ids of the text embedding rows",
        )?;
        let mut embeddings = HashMap::new();
        let mut costs = Vec::new();
        for partition in &split.partitions {
            let p = &partition.name;
            let pairs = pairs_in(&split, partition, &image_rows, Part::Train);
            log::info!(
                "dual-encoder {p}: training on {} pairs, seed {}",
                pairs.len(),
                params.train.seed
            );
            let bar = ctx.bar(0, "dual encoder");
            let (model, log) = params.fit(&pixels, &split.captions, &pairs, &bar)?;
            let all: Vec<usize> = (0..pixels.pixels.len()).collect();
            let (e, cost) = commit_partition(
                out,
                p,
                &log,
                model.parameter_count(),
                |dir| model.save(dir),
                [
                    Box::new(|| model.embed_images(&pixels, &all)),
                    Box::new(|| model.embed_texts(&split.captions)),
                ],
                image_rows.clone(),
            )?;
            embeddings.insert(p.clone(), e);
            costs.push(cost);
            out.summary(&format!("{p}_vocabulary"), model.vocabulary_len());
        }
        write_evaluation(
            ctx,
            out,
            &split,
            &embeddings,
            &costs,
            "dual encoder (CNN + bag of tokens)",
        )
    }
}

/// The `mlp-fusion` stage.
pub struct MlpFusionStage;

impl Stage for MlpFusionStage {
    fn name(&self) -> &'static str {
        "mlp-fusion"
    }
    fn about(&self) -> &'static str {
        "train MLP towers over the classical feature matrices (InfoNCE) and score them"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split", "image-features", "text-features"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["mlp_fusion", "evaluate", "rank"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let params: MlpFusionParams = ctx.config.section("mlp_fusion")?;
        let rank: RankStageParams = ctx.config.section("rank")?;
        Ok(rank.rank.with_hubness(serde_json::json!({
            "mlp_fusion": params,
            "evaluate": evaluate_params_json(ctx)?,
        }))?)
    }
    fn in_full_run(&self) -> bool {
        false
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params = ctx
            .config
            .section::<MlpFusionParams>("mlp_fusion")?
            .check()?;
        let split = load_split(ctx, self.name())?;
        out.ids(
            "text_ids.txt",
            &split.text_ids,
            "ids of the text embedding rows",
        )?;
        let mut embeddings = HashMap::new();
        let mut costs = Vec::new();
        for partition in &split.partitions {
            let p = &partition.name;
            let (images, image_rows) = load_image_features(ctx, p)?;
            let (texts, _) = load_text_features(ctx, p)?;
            let images = FeatureMatrix::Dense(images);
            let texts = FeatureMatrix::Sparse(texts);
            let pairs = pairs_in(&split, partition, &image_rows, Part::Train);
            log::info!(
                "mlp-fusion {p}: training on {} pairs, seed {}",
                pairs.len(),
                params.train.seed
            );
            let bar = ctx.bar(0, "MLP fusion");
            let (model, log) = params.fit(&images, &texts, &pairs, &bar)?;
            let (e, cost) = commit_partition(
                out,
                p,
                &log,
                model.parameter_count(),
                |dir| model.save(dir),
                [
                    Box::new(|| model.embed_images(&images)),
                    Box::new(|| model.embed_texts(&texts)),
                ],
                image_rows,
            )?;
            embeddings.insert(p.clone(), e);
            costs.push(cost);
        }
        write_evaluation(
            ctx,
            out,
            &split,
            &embeddings,
            &costs,
            "MLP fusion over classical features",
        )
    }
}
