//! `profiles`: the similarity-profile baseline ([`crate::fusion::profiles`]) as an optional
//! stage (not part of `run`; name it, or run `comparison`).
//!
//! Per partition it takes the training pairs' images as anchors, describes every image and
//! caption by its standardised similarities to them, and writes what `embed` writes
//! (`<p>/image_embeddings.npy` with `<p>/image_rows.txt`, `<p>/text_embeddings.npy` with
//! `text_ids.txt`) and the anchors' ids (`<p>/model/anchor_ids.txt`). It scores the embeddings
//! exactly as `evaluate` does, on the test part and on the validation part when there is one,
//! like the neural baselines. Nothing is learnt: the row in `comparison` says how much of the
//! CCA's recall the training pairs give by similarity alone.

use std::collections::HashMap;
use std::time::Instant;

use super::features::{image_block_widths, load_image_features, load_split};
use super::fusion::{Embeddings, load_text_features, pairs_in};
use super::neural::{Costs, evaluate_params_json, per_item_ms, write_embeddings, write_evaluation};
use crate::data::Part;
use crate::error::Error;
use crate::fusion::ProfileParams;
use crate::pipeline::{Context, Stage, StageWriter};

/// The `profiles` stage.
pub struct ProfilesStage;

impl Stage for ProfilesStage {
    fn name(&self) -> &'static str {
        "profiles"
    }
    fn about(&self) -> &'static str {
        "score the no-learning baseline: similarity profiles over the training pairs"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split", "image-features", "text-features"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["profiles", "evaluate", "rank"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let params: ProfileParams = ctx.config.section("profiles")?;
        let rank: super::evaluate::RankStageParams = ctx.config.section("rank")?;
        Ok(rank.rank.with_hubness(serde_json::json!({
            "profiles": params,
            "image_block_widths": image_block_widths(ctx)?,
            "evaluate": evaluate_params_json(ctx)?,
        }))?)
    }
    fn in_full_run(&self) -> bool {
        false
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params = ctx.config.section::<ProfileParams>("profiles")?.check()?;
        let widths = image_block_widths(ctx)?;
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
            let pairs = pairs_in(&split, partition, &image_rows, Part::Train);
            let start = Instant::now();
            let fitted = params.fit(&images.view(), &widths, &texts, &pairs)?;
            let train_seconds = start.elapsed().as_secs_f64();
            log::info!(
                "profiles {p}: {} anchors from {} training pairs (sample seed {})",
                fitted.anchors(),
                pairs.len(),
                params.seed
            );
            let anchor_ids: Vec<&str> = fitted
                .anchor_rows()
                .iter()
                .map(|&r| image_rows[r].as_str())
                .collect();
            out.ids(
                &format!("{p}/model/anchor_ids.txt"),
                &anchor_ids,
                "the training images whose similarities are the embedding's columns, in order",
            )?;
            let start = Instant::now();
            let image_embeddings = fitted.embed_images(&images.view())?;
            let embed_ms_per_image = per_item_ms(start, images.nrows());
            let start = Instant::now();
            let text_embeddings = fitted.embed_texts(&texts)?;
            let embed_ms_per_text = per_item_ms(start, texts.n_rows());
            let e = Embeddings {
                images: image_embeddings,
                image_rows,
                texts: text_embeddings,
            };
            write_embeddings(out, p, &e)?;
            out.summary(&format!("{p}_anchors"), fitted.anchors());
            embeddings.insert(p.clone(), e);
            costs.push(Costs {
                train_seconds,
                embed_ms_per_image,
                embed_ms_per_text,
                parameters: 0,
                model_bytes: fitted.size_bytes(),
                anchors: fitted.anchors(),
            });
        }
        write_evaluation(
            ctx,
            out,
            &split,
            &embeddings,
            &costs,
            "similarity profiles over the training pairs (nothing learnt)",
        )
    }
}
