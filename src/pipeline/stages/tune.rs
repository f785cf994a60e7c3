//! `tune`: a grid search of the CCA's ridges, output dimensions and eigenvalue power on the
//! validation part of a partition — images and captions carved out of the training data, never
//! the test part — or, with `folds = k`, by k-fold cross-validation over the training and
//! validation images together (k models, every such image validated once, scores averaged).
//!
//! One CCA is fitted on the training pairs per (ridge_x, ridge_y); the dims and p axes reuse it
//! (see [`crate::fusion::tune`]). Each grid point is scored by the mean of R@1, R@5 and R@10 in
//! both directions on the validation images and captions. Writes `tune.json` (the grid, every
//! point's score, the winner) and `tune.md`; the winner is to be copied into `[fit]` by the
//! user, so that choosing stays a visible, reviewable step.

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use ndarray::{Array2, Axis};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::features::{
    ImageFeatureRows, image_block_file, load_image_feature_rows, load_image_row_ids, load_split,
};
use super::fusion::{
    FitSection, PROJECT_ROWS, compact_pairs, distinct_images, load_text_features, mirrored_pairs,
    pairs_in, stack_mirrored,
};
use crate::data::Part;
use crate::error::Error;
use crate::fusion::ColumnBlocks;
use crate::fusion::tune::{MeanRecall, PairedViews, ScoredRows, TuneGrid, TuneResult, tune};
use crate::image::ImageFeatureParams;
use crate::matrix::FeatureMatrix;
use crate::pipeline::artifacts::{read_dense, read_dense_rows};
use crate::pipeline::{Context, PipelineError, Stage, StageWriter};
use crate::retrieval::Hubness;
use crate::sparse::CsrMatrix;

/// Options of `tune`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuneParams {
    /// The partition whose training and validation parts are used (default: the first).
    pub partition: Option<String>,
    /// Relative ridges of the image view tried (`[fit] ridge_x`; not empty; default 0.1, 1).
    pub ridge_x: Vec<f64>,
    /// Relative ridges of the text view tried (`[fit] ridge_y`; not empty; default 0.1, 1).
    pub ridge_y: Vec<f64>,
    /// Output dimensions tried (`[fit] dims`; not empty; default 64, 128, 256).
    pub dims: Vec<usize>,
    /// Eigenvalue weighting powers tried (`[fit] eigen_power`; not empty; default 0, 1, 2).
    pub eigen_power: Vec<f64>,
    /// PCA pre-reduction sizes tried (empty: `[fit] pca_dims`).
    pub pca_dims: Vec<usize>,
    /// Image block weightings tried, each a map from block name (`sift_bow`, `sift_vlad`,
    /// `sift_fisher`, `hog_bow`, `hsv`, `gist`, ...) to its weight; blocks a candidate does not
    /// name keep their `[image_features]` weight. Empty: the combined matrix as written.
    pub image_block_weights: Vec<std::collections::BTreeMap<String, f32>>,
    /// 0: score on the partition's validation part. k >= 2: k-fold cross-validation over the
    /// training and validation images together (each image in one fold with all its captions;
    /// each fold scored by a model learned on the others), scores averaged over the folds.
    pub folds: usize,
    /// Seed of the draw of the folds.
    pub seed: u64,
    /// CSLS neighbourhood sizes tried when ranking (`[rank] csls_k`; 0: plain cosine; empty:
    /// 0 only). Neighbourhoods come from the round's training images and captions.
    pub csls_k: Vec<usize>,
    /// Inverted softmax temperatures tried when ranking (`[rank]
    /// inverted_softmax_temperature`), beside the `csls_k` points; the bank is the round's
    /// validation queries. Left out of the saved parameters when empty.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub inverted_softmax: Vec<f32>,
}

impl Default for TuneParams {
    fn default() -> Self {
        Self {
            partition: None,
            ridge_x: vec![0.1, 1.0],
            ridge_y: vec![0.1, 1.0],
            dims: vec![64, 128, 256],
            eigen_power: vec![0.0, 1.0, 2.0],
            pca_dims: Vec::new(),
            image_block_weights: Vec::new(),
            folds: 0,
            seed: 0,
            csls_k: Vec::new(),
            inverted_softmax: Vec::new(),
        }
    }
}

/// Rows `rows` of the image blocks of partition `p` as `image-features` wrote them (each
/// normalised on its own, not yet weighted), in layout order, with their configured weights;
/// the mirrored copies of every image (if any) stacked under them.
fn load_image_blocks(
    ctx: &Context,
    p: &str,
    rows: &[usize],
) -> Result<Vec<(String, f32, Array2<f32>)>, Error> {
    let params: ImageFeatureParams = ctx.config.section("image_features")?;
    let layout = params.clone().check()?.block_layout();
    let dir = ctx.stage_dir("image-features").join(p);
    layout
        .into_iter()
        .map(|(name, _, weight)| {
            let file = image_block_file(&name);
            let mut m = read_dense_rows(&dir.join(&file), rows)?;
            if params.hflip_training {
                // Stacked like `with_mirrored` stacks the combined features.
                let mirrored = read_dense(&dir.join("hflip").join(&file))?;
                m = ndarray::concatenate(Axis(0), &[m.view(), mirrored.view()]).map_err(|e| {
                    PipelineError::Invalid(format!("{p}: stacking mirrored block {name}: {e}"))
                })?;
            }
            Ok((name, weight, m))
        })
        .collect()
}

/// Each candidate of `image_block_weights` as one weight per block, in layout order. With one
/// kernel map per image block (`per_block_maps`) a block's weight does not reach its map (each
/// block is scaled to unit length after its own PCA), so a candidate may only leave blocks out
/// (weight 0) or name their configured weight.
fn block_weight_sets(
    ctx: &Context,
    blocks: &[(String, f32, Array2<f32>)],
    candidates: &[std::collections::BTreeMap<String, f32>],
    per_block_maps: bool,
) -> Result<Vec<Vec<f32>>, Error> {
    let names: Vec<&str> = blocks.iter().map(|(n, _, _)| n.as_str()).collect();
    let bad = |message: String| -> Error {
        PipelineError::BadConfig {
            path: ctx.config.path.clone(),
            message,
        }
        .into()
    };
    candidates
        .iter()
        .map(|candidate| {
            if let Some(unknown) = candidate.keys().find(|k| !names.contains(&k.as_str())) {
                return Err(bad(format!(
                    "[tune] image_block_weights names block {unknown:?}; the image blocks are {}",
                    names.join(", ")
                )));
            }
            if per_block_maps {
                let rescaled = blocks.iter().find_map(|(name, configured, _)| {
                    candidate
                        .get(name)
                        .filter(|&&w| w != 0.0 && w != *configured)
                        .map(|w| (name, w))
                });
                if let Some((name, w)) = rescaled {
                    return Err(bad(format!(
                        "[tune] image_block_weights gives {name} = {w}, which would change \
                         nothing: with one kernel map per image block ([fit.kernel_x] \
                         per_block) each block is scaled to unit length after its own PCA, so a \
                         weight can only leave a block out (0); to weight the blocks' kernels, \
                         set fit.kernel_x.block_weighting = \"alignment\""
                    )));
                }
            }
            Ok(blocks
                .iter()
                .map(|(name, weight, _)| candidate.get(name).copied().unwrap_or(*weight))
                .collect())
        })
        .collect()
}

/// The rows `rows` of the concatenation of `blocks`, each times its weight (weight-0 blocks
/// left out).
fn combine_blocks(
    blocks: &[(String, f32, Array2<f32>)],
    weights: &[f32],
    rows: &[usize],
) -> Array2<f32> {
    let kept: Vec<(f32, &Array2<f32>)> = blocks
        .iter()
        .zip(weights)
        .filter(|(_, w)| **w != 0.0)
        .map(|((_, _, m), &w)| (w, m))
        .collect();
    let width: usize = kept.iter().map(|(_, m)| m.ncols()).sum();
    let mut out = Array2::zeros((rows.len(), width.max(1)));
    let mut col = 0;
    for (w, m) in kept {
        let part = m.select(Axis(0), rows) * w;
        out.slice_mut(ndarray::s![.., col..col + m.ncols()])
            .assign(&part);
        col += m.ncols();
    }
    out
}

/// The (training pairs, validation pairs) of each round of the search, as (image row, caption
/// row): with `folds` 0, one round, the partition's training part against its validation part;
/// with `folds` = k, k rounds of cross-validation over the training and validation images
/// together, each image (with all its captions) in exactly one validation fold, folds drawn
/// with `seed`. Pairs of `[extra_training]` images are never held out: they join the training
/// pairs of every round.
fn validation_rounds(
    config: &Path,
    split: &super::split::SplitArtifacts,
    params: &TuneParams,
    train: Vec<(usize, usize)>,
    validation: Vec<(usize, usize)>,
) -> Result<Vec<Round>, Error> {
    if params.folds == 0 {
        return Ok(vec![(train, validation)]);
    }
    let (extra, pool): (Vec<_>, Vec<_>) = train
        .into_iter()
        .chain(validation)
        .partition(|&(_, t)| split.is_extra_training(split.text_image[t]));
    let mut images: Vec<usize> = pool.iter().map(|&(_, t)| split.text_image[t]).collect();
    images.sort_unstable();
    images.dedup();
    if params.folds < 2 || params.folds > images.len() {
        return Err(PipelineError::BadConfig {
            path: config.to_path_buf(),
            message: format!(
                "[tune] folds must be 0 (the validation part) or in [2, {}] (the training and validation images), got {}",
                images.len(),
                params.folds
            ),
        }
        .into());
    }
    images.shuffle(&mut ChaCha8Rng::seed_from_u64(params.seed));
    let fold_of: HashMap<usize, usize> = images
        .iter()
        .enumerate()
        .map(|(i, &image)| (image, i % params.folds))
        .collect();
    let fold = |t: usize| fold_of[&split.text_image[t]];
    Ok((0..params.folds)
        .map(|f| {
            let (held_out, mut rest): (Vec<_>, Vec<_>) =
                pool.iter().partition(|&&(_, t)| fold(t) == f);
            rest.extend(&extra);
            (rest, held_out)
        })
        .collect())
}

/// One round's training pairs and validation pairs.
type Round = (Vec<(usize, usize)>, Vec<(usize, usize)>);

/// The grid on one round: a CCA per (weights, pca, ridges) fitted on `train`, each grid point
/// scored on the images and captions of `validation`. Rows of `images` from `unmirrored` on
/// are mirrored copies; `on_disk` has the rows below `unmirrored`, read from the feature files,
/// from which the validation images (and CSLS's training images) are projected a read of
/// [`PROJECT_ROWS`] rows at a time, never held whole.
#[allow(clippy::too_many_arguments)]
fn tune_round(
    base: &crate::fusion::CcaParams,
    grid: &TuneGrid,
    blocks: &[(String, f32, Array2<f32>)],
    images: Box<dyn ColumnBlocks>,
    on_disk: &ImageFeatureRows,
    unmirrored: usize,
    texts: &CsrMatrix,
    train: &[(usize, usize)],
    validation: &[(usize, usize)],
) -> Result<TuneResult, Error> {
    let read = |rows| ScoredRows::Read {
        source: on_disk,
        rows,
        rows_per_read: PROJECT_ROWS,
    };
    // Validation: each image once, each caption pointing at its image's row.
    let (unique, text_image) = distinct_images(validation);
    let val_texts = FeatureMatrix::Sparse(
        texts.select_rows(&validation.iter().map(|&(_, t)| t).collect::<Vec<_>>()),
    );
    // CSLS references: the round's training images (not their mirrored copies) and captions.
    let wants_csls = grid.csls_k.iter().any(|&k| k > 0);
    let (ref_rows, ref_captions) = if wants_csls {
        let originals: Vec<(usize, usize)> = train
            .iter()
            .copied()
            .filter(|&(r, _)| r < unmirrored)
            .collect();
        let rows = distinct_images(&originals).0;
        let captions: Vec<usize> = originals.iter().map(|&(_, t)| t).collect();
        (rows, captions)
    } else {
        (Vec::new(), Vec::new())
    };
    let ref_texts = FeatureMatrix::Sparse(texts.select_rows(&ref_captions));
    let scoring = MeanRecall::new(&val_texts, &text_image, wants_csls.then_some(&ref_texts));
    // With a block-weight axis (which holds every block in memory already), the validation and
    // reference rows of the weighting being scored, combined once per weighting: `tune` scores
    // every point of one weighting before the next, and `scoring` maps them once per map.
    let combined: RefCell<Option<(Vec<f32>, [FeatureMatrix; 2])>> = RefCell::new(None);
    let scorer = |model: &crate::fusion::FittedCca, w: Option<&[f32]>, hubness: Hubness| {
        let Some(w) = w else {
            let references = wants_csls.then(|| read(&ref_rows));
            return scoring.score(model, None, hubness, read(&unique), references);
        };
        let mut combined = combined.borrow_mut();
        if combined
            .as_ref()
            .is_none_or(|(built_for, _)| built_for != w)
        {
            *combined = None;
            let rows = [&unique, &ref_rows]
                .map(|rows| FeatureMatrix::Dense(combine_blocks(blocks, w, rows)));
            *combined = Some((w.to_vec(), rows));
        }
        let (_, [images, ref_images]) = combined.as_ref().expect("built above");
        let references = wants_csls.then_some(ScoredRows::Held(ref_images));
        scoring.score(
            model,
            Some(w),
            hubness,
            ScoredRows::Held(images),
            references,
        )
    };
    let x_rows: Vec<usize> = train.iter().map(|&(r, _)| r).collect();
    let y_rows: Vec<usize> = train.iter().map(|&(_, t)| t).collect();
    // Without a block-weight axis the views are asked for once, and handed over uncopied.
    // Every row, mirrored copies included.
    let all_rows: Vec<usize> = (0..images.n_rows()).collect();
    let images = std::cell::Cell::new(Some(images));
    Ok(tune(
        base,
        grid,
        |w| {
            // The last weighting's rows are let go before this one's views are built.
            combined.borrow_mut().take();
            let x: Box<dyn ColumnBlocks> = match w {
                Some(w) => Box::new(FeatureMatrix::Dense(combine_blocks(blocks, w, &all_rows))),
                None => images
                    .take()
                    .ok_or_else(|| "training views asked for twice".to_string())?,
            };
            Ok(PairedViews {
                x,
                x_rows: x_rows.clone(),
                y: FeatureMatrix::Sparse(texts.clone()),
                y_rows: y_rows.clone(),
            })
        },
        scorer,
    )?)
}

/// The `tune` stage.
pub struct TuneStage;

impl Stage for TuneStage {
    fn name(&self) -> &'static str {
        "tune"
    }
    fn about(&self) -> &'static str {
        "grid search of the CCA parameters on the validation part of the training data"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split", "image-features", "text-features"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["tune", "fit"]
    }
    fn in_full_run(&self) -> bool {
        false
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let tune: TuneParams = ctx.config.section("tune")?;
        let fit = FitSection::load(ctx)?.cca_json();
        Ok(serde_json::json!({ "tune": tune, "fit": fit }))
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params: TuneParams = ctx.config.section("tune")?;
        // Tuning always learns on the training part alone: `include_validation` is for the
        // final model.
        let fit = FitSection::load(ctx)?;
        let split = load_split(ctx, self.name())?;
        let partition = split.partition(params.partition.as_deref(), "tune", &ctx.config.path)?;
        let p = &partition.name;
        let base = fit.cca_for(ctx, p)?;
        let all_image_rows = load_image_row_ids(ctx, p)?;
        let (texts, _) = load_text_features(ctx, p)?;
        let train = pairs_in(&split, partition, &all_image_rows, Part::Train);
        let validation = pairs_in(&split, partition, &all_image_rows, Part::Validation);
        // Only the training and validation images' rows are read, never the test part's (the
        // matrix of every image is 10 GB at the contest's 50,000), and the pairs renumbered to
        // point into them.
        let n_train = train.len();
        let (rows, mut train) = compact_pairs(train.into_iter().chain(validation).collect());
        let validation = train.split_off(n_train);
        let image_rows: Vec<String> = rows.iter().map(|&r| all_image_rows[r].clone()).collect();
        drop(all_image_rows);
        if validation.is_empty() {
            return Err(PipelineError::BadConfig {
                path: ctx.config.path.clone(),
                message: format!(
                    "partition {p} has no validation images: set [split] validation above 0"
                ),
            }
            .into());
        }
        let rounds = validation_rounds(&ctx.config.path, &split, &params, train, validation)?;
        let blocks = if params.image_block_weights.is_empty() {
            Vec::new()
        } else {
            load_image_blocks(ctx, p, &rows)?
        };
        let grid = TuneGrid {
            ridge_x: params.ridge_x.clone(),
            ridge_y: params.ridge_y.clone(),
            dims: params.dims.clone(),
            eigen_power: params.eigen_power.clone(),
            pca_dims: params.pca_dims.clone(),
            block_weights: block_weight_sets(
                ctx,
                &blocks,
                &params.image_block_weights,
                !base.kernel_x.block_widths.is_empty(),
            )?,
            csls_k: params.csls_k.clone(),
            inverted_softmax: params.inverted_softmax.clone(),
        };
        // Mirrored copies (if any) are stacked under the images: validation rows keep their
        // indices, and only training images gain pairs, round by round. Each round reads the
        // rows afresh rather than copying them, so that one copy is held at a time.
        // Without mirrored copies the rows are read from disk a column block at a time, as
        // `fit` reads them; the validation rows, a block of rows at a time, as `embed` reads
        // them (`on_disk`).
        let unmirrored = image_rows.len();
        let mirrored = ctx
            .config
            .section::<ImageFeatureParams>("image_features")?
            .hflip_training;
        let read_images = || -> Result<(Box<dyn ColumnBlocks>, _), Error> {
            if mirrored {
                let (images, mirrored_rows) =
                    stack_mirrored(ctx, p, load_image_feature_rows(ctx, p, &rows)?)?;
                Ok((Box::new(FeatureMatrix::Dense(images)), mirrored_rows))
            } else {
                Ok((
                    Box::new(ImageFeatureRows::open(ctx, p, rows.clone())?),
                    None,
                ))
            }
        };
        let on_disk = ImageFeatureRows::open(ctx, p, rows.clone())?;
        let mut results = Vec::new();
        let n_rounds = rounds.len();
        for (i, (train, validation)) in rounds.iter().enumerate() {
            if n_rounds > 1 {
                log::info!(
                    "tune: fold {}/{n_rounds}: {} training pairs, {} validation pairs",
                    i + 1,
                    train.len(),
                    validation.len()
                );
            }
            let (round_images, mirrored_rows) = read_images()?;
            let train = match &mirrored_rows {
                Some(mirrored_rows) => mirrored_pairs(train.clone(), &image_rows, mirrored_rows),
                None => train.clone(),
            };
            results.push(tune_round(
                &base,
                &grid,
                &blocks,
                round_images,
                &on_disk,
                unmirrored,
                &texts,
                &train,
                validation,
            )?);
        }
        let result = if n_rounds == 1 {
            results.pop().expect("one round")
        } else {
            TuneResult::mean_over_folds(results)?
        };
        let winner = result.winner().clone();
        let mut md = String::new();
        let how = if params.folds == 0 {
            "validation part".to_string()
        } else {
            format!("{}-fold cross-validation", params.folds)
        };
        writeln!(
            md,
            "# CCA grid search — {} ({p}, {how})",
            ctx.config.pipeline.name
        )
        .ok();
        for (i, (train, validation)) in rounds.iter().enumerate() {
            let round = if n_rounds == 1 {
                String::new()
            } else {
                format!("Fold {}: ", i + 1)
            };
            writeln!(
                md,
                "\n{round}{} training pairs (mirrored copies not counted), {} validation images, {} validation captions.",
                train.len(),
                distinct_images(validation).0.len(),
                validation.len()
            )
            .ok();
        }
        let per_fold = if n_rounds == 1 {
            "score"
        } else {
            "score (mean) | per fold"
        };
        writeln!(
            md,
            "\nScore: mean of R@1, R@5, R@10 over both directions.\n\n| image blocks | pca_dims | ridge_x | ridge_y | dims | p | ranking | {per_fold} |\n|---|---:|---:|---:|---:|---:|---|---:|{}",
            if n_rounds == 1 { "" } else { "---|" }
        )
        .ok();
        for point in &result.points {
            let mark = if point == &winner { " **best**" } else { "" };
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {:.4}{mark} |{}",
                point
                    .block_weights
                    .map(|i| {
                        blocks
                            .iter()
                            .zip(&grid.block_weights[i])
                            .map(|((n, _, _), w)| format!("{n}={w}"))
                            .collect::<Vec<_>>()
                            .join(" ")
                    })
                    .unwrap_or_else(|| "as configured".into()),
                point.pca_dims,
                point.ridge_x,
                point.ridge_y,
                point.dims,
                point.eigen_power,
                point.hubness(),
                point.score,
                if point.fold_scores.is_empty() {
                    String::new()
                } else {
                    format!(
                        " {} |",
                        point
                            .fold_scores
                            .iter()
                            .map(|s| format!("{s:.4}"))
                            .collect::<Vec<_>>()
                            .join(" / ")
                    )
                }
            )
            .ok();
        }
        let path = out.path("tune.md");
        crate::pipeline::artifacts::atomic_write(&path, |w| {
            std::io::Write::write_all(w, md.as_bytes())
        })?;
        out.record("tune.md", "text", "the grid and its scores, as a table")?;
        out.json(
            "tune.json",
            &serde_json::json!({ "partition": p, "folds": params.folds, "grid": grid, "points": result.points, "winner": winner }),
            "the grid, every point's validation score, the winner",
        )?;
        out.summary("winner", &winner);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::split::Partition;

    #[test]
    fn extra_training_pairs_are_in_every_rounds_training_and_never_held_out() {
        // Images 0-5 from the main dataset (0-3 training, 4-5 validation), 6-7 extra; one
        // caption per image, caption t of image t.
        let split = super::super::split::SplitArtifacts {
            image_ids: (0..8).map(|i| format!("img{i}")).collect(),
            image_paths: Vec::new(),
            text_ids: (0..8).map(|i| format!("txt{i}")).collect(),
            captions: vec![String::new(); 8],
            text_image: (0..8).collect(),
            partitions: vec![Partition {
                name: "main".into(),
                parts: Vec::new(),
            }],
            extra_training_images: 2,
        };
        let train: Vec<(usize, usize)> = [0, 1, 2, 3, 6, 7].iter().map(|&i| (i, i)).collect();
        let validation = vec![(4, 4), (5, 5)];
        let params = TuneParams {
            folds: 3,
            ..TuneParams::default()
        };
        let rounds =
            validation_rounds(Path::new("p.toml"), &split, &params, train, validation).unwrap();
        assert_eq!(rounds.len(), 3);
        let mut held_out: Vec<usize> = Vec::new();
        for (round_train, round_validation) in &rounds {
            assert!(round_train.contains(&(6, 6)) && round_train.contains(&(7, 7)));
            assert_eq!(round_train.len() + round_validation.len(), 8);
            held_out.extend(round_validation.iter().map(|&(_, t)| t));
        }
        held_out.sort_unstable();
        assert_eq!(
            held_out,
            [0, 1, 2, 3, 4, 5],
            "each main image held out once, no extra one"
        );
    }
}
