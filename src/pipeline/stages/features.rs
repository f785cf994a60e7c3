//! `image-features` and `text-features`: the two views, fitted on each partition's training
//! images or captions only, then computed for every item.
//!
//! Per partition `<p>` (`main`, or `fold-<i>`):
//! - image side: `<p>/image_features.npy` (the weighted concatenation of the blocks; rows in
//!   `<p>/image_rows.txt`), one `<p>/block_<name>.npy` per block, and the fitted vocabularies
//!   in `<p>/model/<array>.npy`; with `hflip_training`, the same for every image outside the
//!   test part mirrored left to right in `<p>/hflip/` (extra training pairs);
//! - text side: `<p>/text_features.npz` (sparse, scipy CSR; rows in `text_ids.txt`), the blocks
//!   `<p>/block_word_tfidf.npz`, `<p>/block_char_tfidf.npz`, `<p>/block_sentence.npy`, the
//!   fitted model in `<p>/model/`, and in the manifest's summary `<p>_combined_layout`, the
//!   column range of each block in the combined matrix (those weighted above 0).
//!
//! Vocabularies, IDF and word vectors never see a test caption or image: that is why they are
//! fitted once per partition.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::split::SplitArtifacts;
use crate::data::teddy::{load_attachment2, load_attachment3};
use crate::data::{Layout, Part};
use crate::error::{Error, IoError};
use crate::fusion::{ColumnBlocks, FusionError};
use crate::image::{FittedImageFeatures, ImageFeatureParams, Orientation, SkippedImage};
use crate::matrix::FeatureMatrix;
use crate::pipeline::artifacts::{
    dense_shape, read_dense, read_dense_block, read_dense_rows, read_ids,
};
use crate::pipeline::manifest::InputFingerprint;
use crate::pipeline::{Context, PipelineError, Stage, StageWriter};
use crate::text::{FittedTextFeatures, TextFeatureParams};

/// Reads the committed split.
pub fn load_split(ctx: &Context, stage: &str) -> Result<SplitArtifacts, PipelineError> {
    ctx.upstream_manifest(stage, "split")?;
    SplitArtifacts::load(&ctx.stage_dir("split"))
}

/// The `image-features` stage.
pub struct ImageFeaturesStage;

impl Stage for ImageFeaturesStage {
    fn name(&self) -> &'static str {
        "image-features"
    }
    fn about(&self) -> &'static str {
        "fit visual vocabularies on the training images and describe every image"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["image_features"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let params: ImageFeatureParams = ctx.config.section("image_features")?;
        params.clone().check()?;
        Ok(serde_json::to_value(params).expect("serialisable"))
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params: ImageFeatureParams = ctx.config.section("image_features")?;
        let checked = params.clone().check()?;
        let split = load_split(ctx, self.name())?;
        let mut skipped: BTreeMap<usize, String> = BTreeMap::new();
        let mut throughput = Vec::new();
        for partition in &split.partitions {
            let p = &partition.name;
            let train: Vec<PathBuf> = partition
                .images_in(Part::Train)
                .into_iter()
                .map(|i| split.image_paths[i].clone())
                .collect();
            let bar = ctx.bar(train.len() as u64, &format!("{p}: vocabulary"));
            let fitted = checked.fit(&train, &bar)?;
            bar.finish_and_clear();
            let bar = ctx.bar(split.image_paths.len() as u64, &format!("{p}: describing"));
            let started = std::time::Instant::now();
            let described = describe_to_disk(
                out,
                &fitted,
                &split.image_paths,
                Orientation::AsIs,
                &bar,
                p,
                |i| &split.image_ids[i],
                "",
            )?;
            bar.finish_and_clear();
            throughput.push(split.image_paths.len() as f64 / started.elapsed().as_secs_f64());
            for skip in &described.skipped {
                skipped
                    .entry(skip.index)
                    .or_insert_with(|| skip.reason.clone());
            }
            for (name, array) in fitted.to_arrays() {
                out.dense(
                    &format!("{p}/model/{name}.npy"),
                    &array,
                    None,
                    "fitted image model",
                )?;
            }
            out.summary(&format!("{p}_dims"), described.dims);
            out.summary(&format!("{p}_rows"), described.rows);
            if params.hflip_training {
                let outside_test: Vec<usize> = (0..split.image_paths.len())
                    .filter(|&i| partition.parts[i] != Part::Test)
                    .collect();
                let paths: Vec<PathBuf> = outside_test
                    .iter()
                    .map(|&i| split.image_paths[i].clone())
                    .collect();
                let bar = ctx.bar(paths.len() as u64, &format!("{p}: describing mirrored"));
                let mirrored = describe_to_disk(
                    out,
                    &fitted,
                    &paths,
                    Orientation::Mirrored,
                    &bar,
                    &format!("{p}/hflip"),
                    |r| &split.image_ids[outside_test[r]],
                    "non-test images mirrored left to right: ",
                )?;
                bar.finish_and_clear();
                out.summary(&format!("{p}_mirrored_rows"), mirrored.rows);
            }
        }
        for (index, reason) in skipped {
            out.skip(
                &split.image_ids[index],
                Some(&split.image_paths[index]),
                &format!("undecodable: {reason}"),
            );
        }
        out.summary("images_per_second", throughput);
        Ok(())
    }
}

/// What [`describe_to_disk`] wrote.
struct Described {
    rows: usize,
    dims: usize,
    skipped: Vec<SkippedImage>,
}

/// Describes `paths` with `fitted` and writes `<dir>/image_features.npy` (the blocks, each times
/// its weight), one `<dir>/block_<name>.npy` per block and `<dir>/image_rows.txt` (`id_of` each
/// described path's index), a chunk of images at a time: memory holds one chunk, never the
/// whole matrix (10 GB for the 50,000 images of the contest's attachment 1, twice that with
/// the blocks). `what` prefixes each artifact's description.
#[allow(clippy::too_many_arguments)]
fn describe_to_disk<'a>(
    out: &mut StageWriter,
    fitted: &FittedImageFeatures,
    paths: &[PathBuf],
    orientation: Orientation,
    bar: &indicatif::ProgressBar,
    dir: &str,
    id_of: impl Fn(usize) -> &'a str,
    what: &str,
) -> Result<Described, Error> {
    let layout = fitted.block_layout();
    let dims: usize = layout.iter().map(|(_, width, _)| width).sum();
    let combined_file = format!("{dir}/image_features.npy");
    let block_files: Vec<String> = layout
        .iter()
        .map(|(name, _, _)| format!("{dir}/block_{name}.npy"))
        .collect();
    let mut combined = out.dense_rows(&combined_file, dims)?;
    let mut blocks = layout
        .iter()
        .zip(&block_files)
        .map(|((_, width, _), file)| out.dense_rows(file, *width))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids: Vec<&str> = Vec::new();
    let skipped = fitted.transform_chunked(paths, orientation, bar, |chunk| {
        combined.append(&fitted.combine(&chunk.blocks))?;
        for (writer, block) in blocks.iter_mut().zip(&chunk.blocks) {
            writer.append(block)?;
        }
        ids.extend(chunk.rows.iter().map(|&i| id_of(i)));
        Ok::<(), Error>(())
    })?;
    let rows_file = format!("{dir}/image_rows.txt");
    out.ids(
        &rows_file,
        &ids,
        &format!("{what}ids of the image feature rows"),
    )?;
    out.finish_dense(
        &combined_file,
        combined,
        Some(&rows_file),
        &format!("{what}all blocks, each times its weight"),
    )?;
    for (((name, _, _), file), writer) in layout.iter().zip(&block_files).zip(blocks) {
        out.finish_dense(
            file,
            writer,
            Some(&rows_file),
            &format!("{what}block {name}, normalised on its own"),
        )?;
    }
    Ok(Described {
        rows: ids.len(),
        dims,
        skipped,
    })
}

/// Loads the fitted image model of partition `p` from a committed `image-features` folder.
pub fn load_image_model(ctx: &Context, p: &str) -> Result<FittedImageFeatures, Error> {
    let params: ImageFeatureParams = ctx.config.section("image_features")?;
    let dir = ctx.stage_dir("image-features").join(p).join("model");
    let mut arrays = Vec::new();
    let entries = std::fs::read_dir(&dir).map_err(|e| IoError::new("listing", &dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| IoError::new("listing", &dir, e))?.path();
        if let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".npy"))
        {
            arrays.push((name.to_string(), read_dense(&path)?));
        }
    }
    arrays.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(FittedImageFeatures::from_arrays(params, arrays)?)
}

/// A feature matrix and the ids of its rows.
pub type RowsWithIds = (Array2<f32>, Vec<String>);

/// The mirrored training images of partition `p` (combined features and row ids), when the
/// pipeline asks for them (`[image_features] hflip_training`).
pub fn load_mirrored_image_features(ctx: &Context, p: &str) -> Result<Option<RowsWithIds>, Error> {
    let params: ImageFeatureParams = ctx.config.section("image_features")?;
    if !params.hflip_training {
        return Ok(None);
    }
    let dir = ctx.stage_dir("image-features").join(p).join("hflip");
    Ok(Some(read_image_features(&dir)?))
}

/// The widths of the image blocks, in the column order of the combined image features, as the
/// pipeline's `[image_features]` lays them out.
pub fn image_block_widths(ctx: &Context) -> Result<Vec<usize>, Error> {
    let images: ImageFeatureParams = ctx.config.section("image_features")?;
    Ok(images
        .check()?
        .block_layout()
        .into_iter()
        .map(|(_, width, _)| width)
        .collect())
}

/// The combined image features of partition `p` and their row ids.
pub fn load_image_features(ctx: &Context, p: &str) -> Result<RowsWithIds, PipelineError> {
    read_image_features(&ctx.stage_dir("image-features").join(p))
}

/// The row ids of partition `p`'s image features.
pub fn load_image_row_ids(ctx: &Context, p: &str) -> Result<Vec<String>, PipelineError> {
    read_ids(
        &ctx.stage_dir("image-features")
            .join(p)
            .join("image_rows.txt"),
    )
}

/// Rows `rows` (indices into [`load_image_row_ids`]) of partition `p`'s image features, read
/// without reading the rest.
pub fn load_image_feature_rows(
    ctx: &Context,
    p: &str,
    rows: &[usize],
) -> Result<Array2<f32>, PipelineError> {
    read_dense_rows(&image_features_file(ctx, p), rows)
}

/// Partition `p`'s combined image features, `image_features.npy`.
fn image_features_file(ctx: &Context, p: &str) -> PathBuf {
    ctx.stage_dir("image-features")
        .join(p)
        .join("image_features.npy")
}

/// Rows `rows` (indices into [`load_image_row_ids`]) of partition `p`'s image features, handed
/// to the CCA a column block at a time and read from disk block by block
/// ([`ColumnBlocks`]): a kernel map per image block then holds one block of the training
/// images, never all of them (at the contest's 50,000 images, 4 GB for the widest block
/// against 10 GB for the whole matrix).
pub struct ImageFeatureRows {
    path: PathBuf,
    rows: Vec<usize>,
    n_cols: usize,
}

impl ImageFeatureRows {
    /// Reads the file's header alone; a row it does not hold is refused when a block is read.
    pub fn open(ctx: &Context, p: &str, rows: Vec<usize>) -> Result<Self, PipelineError> {
        let path = image_features_file(ctx, p);
        let (_, n_cols) = dense_shape(&path)?;
        Ok(Self { path, rows, n_cols })
    }
}

/// A column block of the image rows larger than this is read a block of rows at a time by the
/// kernel map's PCA ([`ColumnBlocks::stream_above_bytes`]): 512 MiB, well above the Teddy and
/// Flickr8k-CN pipelines' widest blocks (65 and 287 MB), well below the contest's (3.1 GiB).
pub const STREAM_ABOVE_BYTES: usize = 512 << 20;

impl ColumnBlocks for ImageFeatureRows {
    fn n_rows(&self) -> usize {
        self.rows.len()
    }

    fn stream_above_bytes(&self) -> Option<usize> {
        Some(STREAM_ABOVE_BYTES)
    }

    fn n_cols(&self) -> usize {
        self.n_cols
    }

    fn block(
        &self,
        rows: &[usize],
        start: usize,
        width: usize,
    ) -> Result<Cow<'_, FeatureMatrix>, FusionError> {
        let file_rows: Vec<usize> = rows.iter().map(|&r| self.rows[r]).collect();
        read_dense_block(&self.path, &file_rows, Some(start..start + width))
            .map(|m| Cow::Owned(FeatureMatrix::Dense(m)))
            .map_err(|e| FusionError::Read {
                start,
                end: start + width,
                source: Box::new(e),
            })
    }
}

/// What [`describe_to_disk`] wrote in `dir`: the combined features and their row ids.
fn read_image_features(dir: &Path) -> Result<RowsWithIds, PipelineError> {
    Ok((
        read_dense(&dir.join("image_features.npy"))?,
        read_ids(&dir.join("image_rows.txt"))?,
    ))
}

/// The `text-features` stage.
pub struct TextFeaturesStage;

impl Stage for TextFeaturesStage {
    fn name(&self) -> &'static str {
        "text-features"
    }
    fn about(&self) -> &'static str {
        "fit TF-IDF and word vectors on the training captions and describe every caption"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["text_features"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let params: TextFeatureParams = ctx.config.section("text_features")?;
        params.clone().check()?;
        Ok(serde_json::to_value(params).expect("serialisable"))
    }

    fn inputs(&self, ctx: &Context) -> Result<Vec<InputFingerprint>, Error> {
        Ok(unlabelled_caption_files(ctx)?
            .iter()
            .map(|p| InputFingerprint::of_file(p))
            .collect::<Result<_, _>>()?)
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let params: TextFeatureParams = ctx.config.section("text_features")?;
        let checked = params.check()?;
        let split = load_split(ctx, self.name())?;
        let unlabelled = unlabelled_captions(ctx)?;
        out.summary("unlabelled_captions", unlabelled.len());
        out.ids(
            "text_ids.txt",
            &split.text_ids,
            "ids of the text feature rows",
        )?;
        for partition in &split.partitions {
            let p = &partition.name;
            let train: Vec<String> = (0..split.text_ids.len())
                .filter(|&t| partition.parts[split.text_image[t]] == Part::Train)
                .map(|t| split.captions[t].clone())
                .collect();
            let bar = ctx.bar(train.len() as u64, &format!("{p}: fitting"));
            let fitted = checked.fit(&train, &unlabelled, &bar)?;
            bar.finish_and_clear();
            let bar = ctx.bar(split.captions.len() as u64, &format!("{p}: describing"));
            let features = fitted.transform(&split.captions, &bar);
            bar.finish_and_clear();
            out.sparse(
                &format!("{p}/text_features.npz"),
                &features.combined,
                Some("text_ids.txt"),
                "all blocks, each times its weight (scipy CSR)",
            )?;
            if features.word_tfidf.n_cols() > 0 {
                out.sparse(
                    &format!("{p}/block_word_tfidf.npz"),
                    &features.word_tfidf,
                    Some("text_ids.txt"),
                    "jieba word TF-IDF",
                )?;
            }
            if features.char_tfidf.n_cols() > 0 {
                out.sparse(
                    &format!("{p}/block_char_tfidf.npz"),
                    &features.char_tfidf,
                    Some("text_ids.txt"),
                    "character n-gram TF-IDF",
                )?;
            }
            if let Some(sentence) = &features.sentence {
                out.dense(
                    &format!("{p}/block_sentence.npy"),
                    sentence,
                    Some("text_ids.txt"),
                    "SIF sentence vectors from subword word vectors",
                )?;
            }
            let model_dir = format!("{p}/model");
            fitted.save(&out.path(&model_dir))?;
            record_tree(out, &model_dir)?;
            // Which columns of the combined matrix each block holds (what `fit` needs for one
            // kernel map per text block).
            let layout: Vec<serde_json::Value> = fitted
                .combined_layout()
                .into_iter()
                .map(|(block, cols)| {
                    serde_json::json!({ "block": block, "start": cols.start, "end": cols.end })
                })
                .collect();
            out.summary(&format!("{p}_combined_layout"), layout);
            out.summary(&format!("{p}_dims"), features.combined.n_cols());
            out.summary(&format!("{p}_density"), features.combined.density());
            out.summary(&format!("{p}_train_captions"), train.len());
        }
        Ok(())
    }
}

/// The caption files of the contest's test attachments, when the data folder has them: their
/// texts are unlabelled captions the task provides (`word_test.csv`, `word_data.csv`), which
/// the word vectors may learn from (never their answers, which are not there).
fn unlabelled_caption_files(ctx: &Context) -> Result<Vec<PathBuf>, Error> {
    if ctx.config.pipeline.layout != Layout::Teddy {
        return Ok(Vec::new());
    }
    let mut files = Vec::new();
    if let Some(task) = load_attachment2(&ctx.data_dir)? {
        files.push(task.source_files[0].clone());
    }
    if let Some(task) = load_attachment3(&ctx.data_dir)? {
        files.push(task.source_files[1].clone());
    }
    Ok(files)
}

fn unlabelled_captions(ctx: &Context) -> Result<Vec<String>, Error> {
    let mut captions = Vec::new();
    if ctx.config.pipeline.layout != Layout::Teddy {
        return Ok(captions);
    }
    if let Some(task) = load_attachment2(&ctx.data_dir)? {
        captions.extend(task.queries.into_iter().map(|t| t.caption));
    }
    if let Some(task) = load_attachment3(&ctx.data_dir)? {
        captions.extend(task.gallery.into_iter().map(|t| t.caption));
    }
    Ok(captions)
}

/// Records every file under `dir` (relative to the staging folder) as a model file.
fn record_tree(out: &mut StageWriter, dir: &str) -> Result<(), PipelineError> {
    let root = out.path(dir);
    let mut files = Vec::new();
    collect_files(&root, &mut files)?;
    files.sort();
    for file in files {
        let relative = file
            .strip_prefix(out.path(""))
            .expect("under the staging folder")
            .to_string_lossy()
            .to_string();
        out.record(&relative, "model", "fitted text model")?;
    }
    Ok(())
}

fn collect_files(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), PipelineError> {
    for entry in std::fs::read_dir(dir).map_err(|e| IoError::new("listing", dir, e))? {
        let path = entry.map_err(|e| IoError::new("listing", dir, e))?.path();
        if path.is_dir() {
            collect_files(&path, files)?;
        } else {
            files.push(path);
        }
    }
    Ok(())
}

/// Loads the fitted text model of partition `p`.
pub fn load_text_model(ctx: &Context, p: &str) -> Result<FittedTextFeatures, Error> {
    Ok(FittedTextFeatures::load(
        &ctx.stage_dir("text-features").join(p).join("model"),
    )?)
}
