//! `tune`: a grid search of the CCA's ridges, output dimensions and eigenvalue power on the
//! validation part of a partition — images and captions carved out of the training data, never
//! the test part.
//!
//! One CCA is fitted on the training pairs per (ridge_x, ridge_y); the dims and p axes reuse it
//! (see [`crate::fusion::tune`]). Each grid point is scored by the mean of R@1, R@5 and R@10 in
//! both directions on the validation images and captions. Writes `tune.json` (the grid, every
//! point's score, the winner) and `tune.md`; the winner is to be copied into `[fit]` by the
//! user, so that choosing stays a visible, reviewable step.

use std::fmt::Write as _;

use ndarray::Axis;
use serde::{Deserialize, Serialize};

use super::features::{load_image_features, load_split};
use super::fusion::{distinct_images, load_text_features, pairs_in};
use crate::data::Part;
use crate::error::Error;
use crate::fusion::CcaParams;
use crate::fusion::tune::{PairedViews, TuneGrid, mean_recall_scorer, tune};
use crate::matrix::FeatureMatrix;
use crate::pipeline::{Context, PipelineError, Stage, StageWriter};

/// Options of `tune`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuneParams {
    /// The partition whose training and validation parts are used (default: the first).
    pub partition: Option<String>,
    pub ridge_x: Vec<f64>,
    pub ridge_y: Vec<f64>,
    pub dims: Vec<usize>,
    pub eigen_power: Vec<f64>,
    /// PCA pre-reduction sizes tried (empty: `[fit] pca_dims`).
    pub pca_dims: Vec<usize>,
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
        }
    }
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
        let fit: CcaParams = ctx.config.section("fit")?;
        Ok(serde_json::json!({ "tune": tune, "fit": fit }))
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params: TuneParams = ctx.config.section("tune")?;
        let base: CcaParams = ctx.config.section("fit")?;
        let split = load_split(ctx, self.name())?;
        let partition = split.partition(params.partition.as_deref(), "tune", &ctx.config.path)?;
        let p = &partition.name;
        let (images, image_rows) = load_image_features(ctx, p)?;
        let (texts, _) = load_text_features(ctx, p)?;
        let train = pairs_in(&split, partition, &image_rows, Part::Train);
        let validation = pairs_in(&split, partition, &image_rows, Part::Validation);
        if validation.is_empty() {
            return Err(PipelineError::BadConfig {
                path: ctx.config.path.clone(),
                message: format!(
                    "partition {p} has no validation images: set [split] validation above 0"
                ),
            }
            .into());
        }
        // Validation: each image once, each caption pointing at its image's row.
        let (unique, text_image) = distinct_images(&validation);
        let val_images = FeatureMatrix::Dense(images.select(Axis(0), &unique));
        let val_texts = FeatureMatrix::Sparse(
            texts.select_rows(&validation.iter().map(|&(_, t)| t).collect::<Vec<_>>()),
        );
        let grid = TuneGrid {
            ridge_x: params.ridge_x.clone(),
            ridge_y: params.ridge_y.clone(),
            dims: params.dims.clone(),
            eigen_power: params.eigen_power.clone(),
            pca_dims: params.pca_dims.clone(),
            block_weights: Vec::new(),
        };
        let scorer = mean_recall_scorer(&val_images, &val_texts, &text_image);
        // No block-weight axis: the views are asked for once, and handed over without a copy.
        let train_views = std::cell::Cell::new(Some(PairedViews {
            x: FeatureMatrix::Dense(images),
            x_rows: train.iter().map(|&(r, _)| r).collect(),
            y: FeatureMatrix::Sparse(texts),
            y_rows: train.iter().map(|&(_, t)| t).collect(),
        }));
        let result = tune(
            &base,
            &grid,
            |_| {
                train_views
                    .take()
                    .ok_or_else(|| "training views asked for twice".to_string())
            },
            scorer,
        )?;
        let winner = result.winner().clone();
        let mut md = String::new();
        writeln!(
            md,
            "# CCA grid search — {} ({p}, validation part)",
            ctx.config.pipeline.name
        )
        .ok();
        writeln!(
            md,
            "\n{} training pairs, {} validation images, {} validation captions. Score: mean of R@1, R@5, R@10 over both directions.\n",
            train.len(),
            unique.len(),
            validation.len()
        )
        .ok();
        writeln!(
            md,
            "| pca_dims | ridge_x | ridge_y | dims | p | score |\n|---:|---:|---:|---:|---:|---:|"
        )
        .ok();
        for point in &result.points {
            let mark = if point == &winner { " **best**" } else { "" };
            writeln!(
                md,
                "| {} | {} | {} | {} | {} | {:.4}{mark} |",
                point.pca_dims,
                point.ridge_x,
                point.ridge_y,
                point.dims,
                point.eigen_power,
                point.score
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
            &serde_json::json!({ "partition": p, "grid": grid, "points": result.points, "winner": winner }),
            "the grid, every point's validation score, the winner",
        )?;
        out.summary("winner", &winner);
        Ok(())
    }
}
