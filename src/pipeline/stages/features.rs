//! `image-features` and `text-features`: the two views, fitted on each partition's training
//! images or captions only, then computed for every item.
//!
//! Per partition `<p>` (`main`, or `fold-<i>`):
//! - image side: one `<p>/block_<name>.npy` per block (rows in `<p>/image_rows.txt`), in the
//!   manifest's summary `<p>_combined_layout`, the columns and weight of each block in the
//!   combined matrix that `fit` and `embed` read (put together from the blocks as it is read,
//!   [`CombinedImageFeatures`], rather than written a second time), and the fitted vocabularies
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
use std::ops::Range;
use std::path::{Path, PathBuf};

use ndarray::Array2;

use super::split::SplitArtifacts;
use crate::data::teddy::{load_attachment2, load_attachment3};
use crate::data::{Layout, Part};
use crate::error::Error;
use crate::fusion::{ColumnBlocks, FusionError};
use crate::image::{FittedImageFeatures, ImageFeatureParams, Orientation, SkippedImage};
use crate::matrix::FeatureMatrix;
use crate::pipeline::artifacts::{dense_shape, read_dense_block_into, read_ids};
use crate::pipeline::manifest::InputFingerprint;
use crate::pipeline::{Context, PipelineError, Stage, StageWriter};
use crate::text::{FittedTextFeatures, TextFeatureParams};

/// Reads the committed split.
pub fn load_split(ctx: &Context, stage: &str) -> Result<SplitArtifacts, PipelineError> {
    ctx.upstream_manifest(stage, "split")?;
    SplitArtifacts::load(&ctx.stage_dir("split"), &ctx.data_dir)
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

/// Describes `paths` with `fitted` and writes one `<dir>/block_<name>.npy` per block and
/// `<dir>/image_rows.txt` (`id_of` each described path's index), a chunk of images at a time:
/// memory holds one chunk, never the whole matrix (10 GB for the 50,000 images of the contest's
/// attachment 1). The combined matrix, each block times its weight, is not written: readers put
/// it together from the blocks ([`CombinedImageFeatures`]). `what` prefixes each artifact's
/// description.
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
    let block_files: Vec<String> = layout
        .iter()
        .map(|(name, _, _)| format!("{dir}/{}", image_block_file(name)))
        .collect();
    let mut blocks = layout
        .iter()
        .zip(&block_files)
        .map(|((_, width, _), file)| out.dense_rows(file, *width))
        .collect::<Result<Vec<_>, _>>()?;
    let mut ids: Vec<&str> = Vec::new();
    let skipped = fitted.transform_chunked(paths, orientation, bar, |chunk| {
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
    for (((name, _, _), file), writer) in layout.iter().zip(&block_files).zip(blocks) {
        out.finish_dense(
            file,
            writer,
            Some(&rows_file),
            &format!("{what}block {name}, normalised on its own"),
        )?;
    }
    // Where each block goes in the combined matrix that `fit` and `embed` read, and its
    // weight: what a numpy user needs to put it together (docs/pipelines.md).
    let mut start = 0;
    let combined: Vec<serde_json::Value> = layout
        .iter()
        .map(|(name, width, weight)| {
            let entry = serde_json::json!({
                "block": name, "start": start, "end": start + width, "weight": weight
            });
            start += width;
            entry
        })
        .collect();
    out.summary(&format!("{dir}_combined_layout"), combined);
    Ok(Described {
        rows: ids.len(),
        dims,
        skipped,
    })
}

/// The file of image block `name` in a partition's folder: `block_<name>.npy`.
pub fn image_block_file(name: &str) -> String {
    format!("block_{name}.npy")
}

/// Loads the fitted image model of partition `p` from a committed `image-features` folder.
pub fn load_image_model(ctx: &Context, p: &str) -> Result<FittedImageFeatures, Error> {
    let params: ImageFeatureParams = ctx.config.section("image_features")?;
    let dir = ctx.stage_dir("image-features").join(p).join("model");
    Ok(FittedImageFeatures::read_arrays(&dir, params)?)
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
    Ok(Some(read_image_features(&dir, &params)?))
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
pub fn load_image_features(ctx: &Context, p: &str) -> Result<RowsWithIds, Error> {
    let params: ImageFeatureParams = ctx.config.section("image_features")?;
    read_image_features(&ctx.stage_dir("image-features").join(p), &params)
}

/// The row ids of partition `p`'s image features.
pub fn load_image_row_ids(ctx: &Context, p: &str) -> Result<Vec<String>, PipelineError> {
    read_ids(
        &ctx.stage_dir("image-features")
            .join(p)
            .join("image_rows.txt"),
    )
}

/// Rows `rows` (indices into [`load_image_row_ids`]) of partition `p`'s combined image
/// features, read without reading the rest.
pub fn load_image_feature_rows(
    ctx: &Context,
    p: &str,
    rows: &[usize],
) -> Result<Array2<f32>, Error> {
    Ok(CombinedImageFeatures::open(ctx, p)?.read_rows(rows)?)
}

/// The combined image features of one folder that `describe_to_disk` wrote: every block side
/// by side, each times its weight, in [`FittedImageFeatures::block_layout`] order. Only the
/// blocks are on disk (`block_<name>.npy`); the combined rows are put together from them as
/// they are read, to the same bits as the product `FittedImageFeatures::combine` computes, so
/// that the stage does not write every value twice (10 GB at the contest's 50,000 images).
pub struct CombinedImageFeatures {
    blocks: Vec<BlockFile>,
    n_rows: usize,
    n_cols: usize,
}

/// One block's file and where its columns go in the combined matrix.
struct BlockFile {
    path: PathBuf,
    start: usize,
    width: usize,
    weight: f32,
}

impl CombinedImageFeatures {
    /// Partition `p`'s image features, as the pipeline's `[image_features]` lays them out.
    pub fn open(ctx: &Context, p: &str) -> Result<Self, Error> {
        let params: ImageFeatureParams = ctx.config.section("image_features")?;
        Self::open_dir(&ctx.stage_dir("image-features").join(p), &params)
    }

    /// The blocks in `dir`, from their headers alone; a file whose shape does not fit the
    /// layout of `params` is named.
    fn open_dir(dir: &Path, params: &ImageFeatureParams) -> Result<Self, Error> {
        let layout = params.clone().check()?.block_layout();
        let (mut blocks, mut n_rows, mut n_cols) = (Vec::with_capacity(layout.len()), None, 0);
        for (name, width, weight) in layout {
            let path = dir.join(image_block_file(&name));
            let (rows, cols) = dense_shape(&path)?;
            if cols != width || n_rows.is_some_and(|n| n != rows) {
                return Err(PipelineError::Invalid(format!(
                    "{}: {rows} x {cols}, but block {name} of [image_features] is {width} \
                     columns wide{}",
                    path.display(),
                    n_rows.map_or(String::new(), |n| format!(
                        " and the blocks before it have {n} rows"
                    ))
                ))
                .into());
            }
            n_rows = Some(rows);
            blocks.push(BlockFile {
                path,
                start: n_cols,
                width,
                weight,
            });
            n_cols += width;
        }
        Ok(Self {
            blocks,
            n_rows: n_rows.unwrap_or(0),
            n_cols,
        })
    }

    /// Rows `rows` (in the order given) of the combined matrix, every column.
    pub fn read_rows(&self, rows: &[usize]) -> Result<Array2<f32>, PipelineError> {
        self.read(rows, 0..self.n_cols)
    }

    /// Columns `columns` of `rows` (in the order given) of the combined matrix, each block's
    /// part read from its own file.
    pub fn read(
        &self,
        rows: &[usize],
        columns: Range<usize>,
    ) -> Result<Array2<f32>, PipelineError> {
        if columns.start > columns.end || columns.end > self.n_cols {
            return Err(PipelineError::Invalid(format!(
                "columns {columns:?} asked of image features of {} columns",
                self.n_cols
            )));
        }
        let mut out = Array2::<f32>::zeros((rows.len(), columns.len()));
        for block in &self.blocks {
            let (lo, hi) = (
                columns.start.max(block.start),
                columns.end.min(block.start + block.width),
            );
            if lo >= hi {
                continue;
            }
            read_dense_block_into(
                &block.path,
                rows,
                lo - block.start..hi - block.start,
                block.weight,
                out.slice_mut(ndarray::s![.., lo - columns.start..hi - columns.start]),
            )?;
        }
        Ok(out)
    }
}

/// Rows `rows` (indices into [`load_image_row_ids`]) of partition `p`'s image features, handed
/// to the CCA a column block at a time and read from disk block by block
/// ([`ColumnBlocks`]): a kernel map per image block then holds one block of the training
/// images, never all of them (at the contest's 50,000 images, 4 GB for the widest block
/// against 10 GB for the whole matrix).
pub struct ImageFeatureRows {
    files: CombinedImageFeatures,
    rows: Vec<usize>,
}

impl ImageFeatureRows {
    /// Reads the files' headers alone; a row they do not hold is refused when a block is read.
    pub fn open(ctx: &Context, p: &str, rows: Vec<usize>) -> Result<Self, Error> {
        Ok(Self {
            files: CombinedImageFeatures::open(ctx, p)?,
            rows,
        })
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
        self.files.n_cols
    }

    fn block(
        &self,
        rows: &[usize],
        start: usize,
        width: usize,
    ) -> Result<Cow<'_, FeatureMatrix>, FusionError> {
        let file_rows: Vec<usize> = rows.iter().map(|&r| self.rows[r]).collect();
        self.files
            .read(&file_rows, start..start + width)
            .map(|m| Cow::Owned(FeatureMatrix::Dense(m)))
            .map_err(|e| FusionError::Read {
                start,
                end: start + width,
                source: Box::new(e),
            })
    }
}

/// What [`describe_to_disk`] wrote in `dir`: the combined features and their row ids.
fn read_image_features(dir: &Path, params: &ImageFeatureParams) -> Result<RowsWithIds, Error> {
    let files = CombinedImageFeatures::open_dir(dir, params)?;
    let all: Vec<usize> = (0..files.n_rows).collect();
    Ok((
        files.read_rows(&all)?,
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
            .map(|p| InputFingerprint::of_file(&ctx.data_dir, p))
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
    for file in crate::model_dir::files_under(&out.path(dir))? {
        let relative = file
            .strip_prefix(out.path(""))
            .expect("under the staging folder")
            .to_string_lossy()
            .to_string();
        out.record(&relative, "model", "fitted text model")?;
    }
    Ok(())
}

/// Loads the fitted text model of partition `p`.
pub fn load_text_model(ctx: &Context, p: &str) -> Result<FittedTextFeatures, Error> {
    Ok(FittedTextFeatures::load(
        &ctx.stage_dir("text-features").join(p).join("model"),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::artifacts::write_dense;

    /// Blocks of the default layout filled with distinct values, written to `dir`, and the
    /// combined matrix they stand for, computed by `FittedImageFeatures::combine`'s rule.
    fn written_blocks(dir: &Path, params: &ImageFeatureParams, rows: usize) -> Array2<f32> {
        let layout = params.clone().check().unwrap().block_layout();
        let n_cols: usize = layout.iter().map(|(_, width, _)| width).sum();
        let mut combined = Array2::<f32>::zeros((rows, n_cols));
        let mut start = 0;
        for (b, (name, width, weight)) in layout.iter().enumerate() {
            let block = Array2::from_shape_fn((rows, *width), |(r, c)| {
                ((r * 7919 + c * 31 + b * 101) % 1000) as f32 / 997.0 - 0.3
            });
            write_dense(&dir.join(format!("block_{name}.npy")), &block).unwrap();
            combined
                .slice_mut(ndarray::s![.., start..start + width])
                .zip_mut_with(&block, |c, &v| *c = v * weight);
            start += width;
        }
        combined
    }

    #[test]
    fn combined_features_are_read_from_the_blocks_to_the_bit() {
        let dir = tempfile::tempdir().unwrap();
        let mut params = ImageFeatureParams::default();
        params.sift.bow.weight = 0.5;
        params.hog.bow.weight = 2.0;
        let combined = written_blocks(dir.path(), &params, 6);
        let files = CombinedImageFeatures::open_dir(dir.path(), &params).unwrap();
        assert_eq!((files.n_rows, files.n_cols), combined.dim());
        assert!(files.blocks.len() >= 3, "a layout of several blocks");
        let n = files.n_cols;
        let second = files.blocks[1].start;
        // Whole rows, rows out of order and repeated, ranges within a block and across several.
        for (rows, columns) in [
            (vec![0, 1, 2, 3, 4, 5], 0..n),
            (vec![5, 0, 3, 3], 0..n),
            (vec![4, 1], second - 3..second + 5),
            (vec![2], second + 1..n - 1),
            (vec![1, 2], second..second),
        ] {
            let read = files.read(&rows, columns.clone()).unwrap();
            let expected = combined.select(ndarray::Axis(0), &rows);
            let expected = expected.slice(ndarray::s![.., columns.clone()]);
            assert_eq!(read.dim(), expected.dim());
            assert!(
                read.iter()
                    .zip(expected.iter())
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "rows {rows:?}, columns {columns:?}"
            );
        }
        assert!(files.read(&[0], 0..n + 1).is_err());
        assert!(files.read(&[6], 0..1).is_err());
    }

    #[test]
    fn a_block_that_does_not_fit_the_layout_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let params = ImageFeatureParams::default();
        written_blocks(dir.path(), &params, 4);
        let (name, width, _) = params.clone().check().unwrap().block_layout()[1].clone();
        let file = dir.path().join(format!("block_{name}.npy"));
        write_dense(&file, &Array2::zeros((3, width))).unwrap();
        let err = CombinedImageFeatures::open_dir(dir.path(), &params)
            .err()
            .expect("three rows among blocks of four")
            .to_string();
        assert!(
            err.contains(&format!("block_{name}.npy")) && err.contains("4 rows"),
            "{err}"
        );
    }
}
