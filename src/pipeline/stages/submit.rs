//! `submit`: the contest flow end to end — `result1.csv` and `result2.csv`, scored when the
//! answers are known.
//!
//! When the data folder holds the contest's attachments 2 and 3 (`附件2`/`attachment2`, …),
//! their queries and galleries are described with the fitted models of one partition
//! (`[submit] partition`, default the first), projected by its CCA and ranked; the two result
//! files are written in the template's format (UTF-8, header, 5 rows per query, ranks 1–5, every
//! query present). Otherwise — the official test attachments are not public — a contest-shaped
//! test set is carved out of that partition's held-out pairs into `contest/` (see
//! [`crate::data::contest`]), run through the same flow from its files, and the result files are
//! scored against the gold pairs kept apart (`score.json`).

use ndarray::{Array2, Axis};
use serde::{Deserialize, Serialize};

use super::features::{load_image_model, load_split, load_text_model};
use super::fusion::{PROJECT_ROWS, distinct_images, load_cca, load_embeddings, pairs_in};
use crate::data::contest::{HeldOutImage, carve};
use crate::data::teddy::{load_attachment2, load_attachment3};
use crate::data::{ImageEntry, Layout, Part, TextEntry};
use crate::error::Error;
use crate::image::{FittedImageFeatures, Orientation, SkippedImage};
use crate::matrix::FeatureMatrix;
use crate::pipeline::manifest::{InputFingerprint, data_folder_inputs};
use crate::pipeline::{Context, PipelineError, Stage, StageWriter};
use crate::retrieval::RankParams;
use crate::retrieval::score::score_files;
use crate::retrieval::submit::{RESULTS_PER_QUERY, write_result1, write_result2};

/// Options of `submit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default, deny_unknown_fields)]
pub struct SubmitParams {
    /// The partition whose fitted models are used (default: the first one).
    pub partition: Option<String>,
    /// Seed of the order of the carved text ids.
    pub seed: u64,
    /// Copy the held-out images into `contest/` instead of linking them.
    pub copy_images: bool,
}

/// The `submit` stage.
pub struct SubmitStage;

/// Describes images with the fitted model and projects them, [`PROJECT_ROWS`] at a time; rows
/// of images that cannot be described are zero (they then rank nothing first and are ranked
/// last), and those images are returned, with why.
pub(crate) fn embed_images(
    ctx: &Context,
    model: &FittedImageFeatures,
    cca: &crate::fusion::FittedCca,
    images: &[ImageEntry],
    label: &str,
) -> Result<(Array2<f32>, Vec<SkippedImage>), Error> {
    let paths: Vec<_> = images.iter().map(|i| i.path.clone()).collect();
    let bar = ctx.bar(paths.len() as u64, label);
    let mut all = Array2::<f32>::zeros((images.len(), cca.dims()));
    // Each chunk's combined rows wait here until PROJECT_ROWS of them are projected together.
    let mut pending_rows: Vec<usize> = Vec::new();
    let mut pending: Vec<Array2<f32>> = Vec::new();
    let mut project =
        |rows: &mut Vec<usize>, pending: &mut Vec<Array2<f32>>| -> Result<(), Error> {
            if rows.is_empty() {
                return Ok(());
            }
            let views: Vec<_> = pending.iter().map(|m| m.view()).collect();
            let combined = ndarray::concatenate(Axis(0), &views).expect("rows of one width");
            let projected = cca.embed_x(&FeatureMatrix::Dense(combined))?;
            for (row, &index) in rows.iter().enumerate() {
                all.row_mut(index).assign(&projected.row(row));
            }
            rows.clear();
            pending.clear();
            Ok(())
        };
    let skipped = model.transform_chunked(&paths, Orientation::AsIs, &bar, |chunk| {
        pending.push(model.combine(&chunk.blocks));
        pending_rows.extend(chunk.rows);
        if pending_rows.len() >= PROJECT_ROWS {
            project(&mut pending_rows, &mut pending)?;
        }
        Ok::<(), Error>(())
    })?;
    project(&mut pending_rows, &mut pending)?;
    bar.finish_and_clear();
    Ok((all, skipped))
}

/// Describes captions with the fitted model and projects them (rows of unit length).
pub(crate) fn embed_texts(
    ctx: &Context,
    model: &crate::text::FittedTextFeatures,
    cca: &crate::fusion::FittedCca,
    texts: &[TextEntry],
    label: &str,
) -> Result<Array2<f32>, Error> {
    let captions: Vec<String> = texts.iter().map(|t| t.caption.clone()).collect();
    let bar = ctx.bar(captions.len() as u64, label);
    let features = model.transform(&captions, &bar);
    bar.finish_and_clear();
    Ok(cca.embed_y(&FeatureMatrix::Sparse(features.combined))?)
}

impl Stage for SubmitStage {
    fn name(&self) -> &'static str {
        "submit"
    }
    fn about(&self) -> &'static str {
        "write result1.csv and result2.csv (carving a scored test set when the contest's is absent)"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split", "image-features", "text-features", "fit", "embed"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["submit", "rank"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let submit: SubmitParams = ctx.config.section("submit")?;
        let rank: super::evaluate::RankStageParams = ctx.config.section("rank")?;
        Ok(rank
            .rank
            .with_hubness(serde_json::json!({ "submit": submit }))?)
    }

    fn inputs(&self, ctx: &Context) -> Result<Vec<InputFingerprint>, Error> {
        let mut inputs = Vec::new();
        if ctx.config.pipeline.layout == Layout::Teddy {
            if let Some(task) = load_attachment2(&ctx.data_dir)? {
                let paths: Vec<_> = task.gallery.iter().map(|i| i.path.clone()).collect();
                inputs.extend(data_folder_inputs(
                    &ctx.data_dir,
                    &task.source_files,
                    "attachment 2 images",
                    &paths,
                )?);
            }
            if let Some(task) = load_attachment3(&ctx.data_dir)? {
                let paths: Vec<_> = task.queries.iter().map(|i| i.path.clone()).collect();
                inputs.extend(data_folder_inputs(
                    &ctx.data_dir,
                    &task.source_files,
                    "attachment 3 images",
                    &paths,
                )?);
            }
        }
        Ok(inputs)
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params: SubmitParams = ctx.config.section("submit")?;
        let rank: super::evaluate::RankStageParams = ctx.config.section("rank")?;
        let split = load_split(ctx, self.name())?;
        let partition = split.partition(params.partition.as_deref(), "submit", &ctx.config.path)?;
        let p = &partition.name;

        let embeddings = load_embeddings(ctx, p)?;

        // The contest's own test attachments, or a carved rehearsal of them.
        let official = if ctx.config.pipeline.layout == Layout::Teddy {
            match (
                load_attachment2(&ctx.data_dir)?,
                load_attachment3(&ctx.data_dir)?,
            ) {
                (Some(t1), Some(t2)) => Some((t1, t2)),
                _ => None,
            }
        } else {
            None
        };
        let (task1, task2, gold) = match official {
            Some((t1, t2)) => {
                out.summary("source", "the contest's attachments 2 and 3");
                (t1, t2, None)
            }
            None => {
                let pairs = pairs_in(&split, partition, &embeddings.image_rows, Part::Test);
                if pairs.is_empty() {
                    return Err(PipelineError::Invalid(format!(
                        "partition {p}: no contest attachments 2 and 3 (附件2/ and 附件3/, or \
                         attachment2/ and attachment3/) in {}, and no held-out test images to \
                         carve a rehearsal of them from ([split] test = 0); add the \
                         attachments, or hold some images out",
                        ctx.data_dir.display()
                    ))
                    .into());
                }
                let (_, at) = distinct_images(&pairs);
                let mut images: Vec<HeldOutImage> = Vec::new();
                let mut captions = Vec::new();
                for (&(_, t), &image_at) in pairs.iter().zip(&at) {
                    if image_at == images.len() {
                        let image = split.text_image[t];
                        images.push(HeldOutImage {
                            id: split.image_ids[image].clone(),
                            path: split.image_paths[image].clone(),
                        });
                    }
                    captions.push((split.captions[t].clone(), image_at));
                }
                let carved = carve(
                    &out.path("contest"),
                    &images,
                    &captions,
                    !params.copy_images,
                    params.seed,
                )?;
                for file in [
                    "contest/附件2/word_test.csv",
                    "contest/附件2/image_data.csv",
                    "contest/附件3/image_test.csv",
                    "contest/附件3/word_data.csv",
                ] {
                    out.record(file, "csv", "carved contest input")?;
                }
                out.record(
                    "contest/gold/result1_gold.csv",
                    "csv",
                    "answers of task 1: text_id,image_id",
                )?;
                out.record(
                    "contest/gold/result2_gold.csv",
                    "csv",
                    "answers of task 2: image_id,text_id",
                )?;
                out.summary(
                    "source",
                    format!("carved from the test part of partition {p}"),
                );
                let root = out.path("contest");
                let t1 = load_attachment2(&root)?.expect("just carved");
                let t2 = load_attachment3(&root)?.expect("just carved");
                (t1, t2, Some((carved.task1_gold, carved.task2_gold)))
            }
        };
        for (id, path) in &task1.missing_images {
            out.skip(
                id,
                Some(path),
                "missing: listed but the file does not exist; left out of the gallery",
            );
        }
        // Every query of task 2 is answered, one whose file is missing as an undecodable one
        // is (with arbitrary texts): a result file without it would score as a miss anyway,
        // and the contest's template lists every query.
        let mut task2 = task2;
        for (id, path) in std::mem::take(&mut task2.missing_images) {
            task2.queries.push(ImageEntry { id, path });
        }

        let image_model = load_image_model(ctx, p)?;
        let text_model = load_text_model(ctx, p)?;
        let cca = load_cca(ctx, p)?;
        let train_pairs = pairs_in(&split, partition, &embeddings.image_rows, Part::Train);
        let train_image_rows: Vec<usize> = train_pairs
            .iter()
            .map(|&(r, _)| r)
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let train_images = embeddings.images.select(Axis(0), &train_image_rows);
        let train_text_rows: Vec<usize> = train_pairs.iter().map(|&(_, t)| t).collect();
        let train_texts = embeddings.texts.select(Axis(0), &train_text_rows);
        let rank_params: &RankParams = &rank.rank;

        // Task 1: text queries against the image gallery (undescribable images left out).
        let query_texts = embed_texts(ctx, &text_model, &cca, &task1.queries, "task 1 texts")?;
        let (gallery, skipped) =
            embed_images(ctx, &image_model, &cca, &task1.gallery, "task 1 images")?;
        let skipped: Vec<usize> = skipped.iter().map(|s| s.index).collect();
        for &i in &skipped {
            out.skip(
                &task1.gallery[i].id,
                Some(&task1.gallery[i].path),
                "undecodable: left out of the gallery",
            );
        }
        let usable: Vec<usize> = (0..task1.gallery.len())
            .filter(|i| !skipped.contains(i))
            .collect();
        if usable.len() < RESULTS_PER_QUERY {
            return Err(PipelineError::Invalid(format!(
                "task 1's gallery has {} usable images of {} listed ({} missing, {} undecodable; \
                 see the skipped list of this stage's manifest): result1.csv needs {} per query",
                usable.len(),
                task1.gallery.len() + task1.missing_images.len(),
                task1.missing_images.len(),
                skipped.len(),
                RESULTS_PER_QUERY
            ))
            .into());
        }
        let gallery = gallery.select(Axis(0), &usable);
        let gallery_ids: Vec<String> = usable
            .iter()
            .map(|&i| task1.gallery[i].id.clone())
            .collect();
        let top1 = rank_params.top_k(
            &query_texts.view(),
            &gallery.view(),
            RESULTS_PER_QUERY,
            Some((&train_texts.view(), &train_images.view())),
        )?;
        let query_ids: Vec<String> = task1.queries.iter().map(|t| t.id.clone()).collect();
        write_result1(&out.path(""), &query_ids, &gallery_ids, &top1)?;
        out.record(
            "result1.csv",
            "csv",
            "task 1: text_id,similarity_ranking,result_image_id",
        )?;

        // Task 2: image queries against the text gallery (every query answered).
        let (query_images, skipped) =
            embed_images(ctx, &image_model, &cca, &task2.queries, "task 2 images")?;
        for query in skipped.iter().map(|s| &task2.queries[s.index]) {
            let class = if query.path.exists() {
                "undecodable"
            } else {
                "missing"
            };
            out.skip(
                &query.id,
                Some(&query.path),
                &format!("{class}: query answered with arbitrary texts"),
            );
        }
        if task2.gallery.len() < RESULTS_PER_QUERY {
            return Err(PipelineError::Invalid(format!(
                "task 2's gallery (word_data.csv) has {} captions: result2.csv needs {} per query",
                task2.gallery.len(),
                RESULTS_PER_QUERY
            ))
            .into());
        }
        let gallery_texts = embed_texts(ctx, &text_model, &cca, &task2.gallery, "task 2 texts")?;
        let top2 = rank_params.top_k(
            &query_images.view(),
            &gallery_texts.view(),
            RESULTS_PER_QUERY,
            Some((&train_images.view(), &train_texts.view())),
        )?;
        let image_ids: Vec<String> = task2.queries.iter().map(|i| i.id.clone()).collect();
        let text_ids: Vec<String> = task2.gallery.iter().map(|t| t.id.clone()).collect();
        write_result2(&out.path(""), &image_ids, &text_ids, &top2)?;
        out.record(
            "result2.csv",
            "csv",
            "task 2: image_id,similarity_ranking,result_text_id",
        )?;

        if let Some((gold1, gold2)) = gold {
            let score1 = score_files(&out.path("result1.csv"), &gold1)?;
            let score2 = score_files(&out.path("result2.csv"), &gold2)?;
            let scores = serde_json::json!({ "result1": &score1, "result2": &score2 });
            out.json(
                "score.json",
                &scores,
                "R@1/5/10 of the result files against the carved gold",
            )?;
            out.summary("result1_recall", &score1.recall);
            out.summary("result2_recall", &score2.recall);
        }
        out.summary("partition", p);
        out.summary("task1_queries", task1.queries.len());
        out.summary("task2_queries", task2.queries.len());
        Ok(())
    }
}
