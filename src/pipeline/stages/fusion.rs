//! `fit` and `embed`: regularised CCA learned on each partition's training pairs, then both
//! views of every item projected into the shared space.
//!
//! `fit` writes, per partition `<p>`, the model as `.npy` files: `<p>/mean_x.npy`,
//! `<p>/mean_y.npy` (1 x d), `<p>/proj_x.npy`, `<p>/proj_y.npy` (d x k, unweighted) and
//! `<p>/correlations.npy` (1 x k, decreasing); the eigenvalue power is in the manifest's
//! parameters. With a kernel map on a view (`[fit.kernel_x]`, `[fit.kernel_y]`), also
//! `<p>/kernel_x/` (or `kernel_y/`): `mean.npy`, `basis.npy`, `landmarks.npy`, `gamma.npy`, and
//! that view's `mean_*`/`proj_*` then start from the map's output (with one map per image
//! block, `[fit.kernel_x] per_block`, those four files per block in `kernel_x/block-<i>/`; the
//! same for text blocks with `[fit.kernel_y] per_block`, in `kernel_y/block-<i>/`; with
//! `block_weighting = "alignment"`, each block's `weight.npy` and `alignment.npy` as well).
//! `[fit] include_validation` adds the validation part's pairs. `[fit] pairs_fraction` (below 1)
//! keeps only that fraction of the training images and their captions, drawn by a keyed hash of
//! the image id (`pairs_seed`), the same subset in every partition and each smaller fraction's
//! images among a larger one's: a learning curve of the fusion (the features' vocabularies
//! still see every training image). An image with several
//! captions gives one training pair per caption; with `[image_features] hflip_training`, each
//! mirrored copy of a training image gives the same pairs again.
//! `embed` writes `<p>/image_embeddings.npy` (rows `<p>/image_rows.txt`) and
//! `<p>/text_embeddings.npy` (rows `text_ids.txt`), each row L2-normalised, so cosine
//! similarity is a dot product.

use std::collections::HashMap;

use ndarray::{Array2, Axis};

use super::features::{
    CombinedImageFeatures, ImageFeatureRows, image_block_widths, load_image_features,
    load_image_row_ids, load_mirrored_image_features, load_split,
};
use crate::data::Part;
use crate::data::split::unit_hash;
use crate::error::Error;
use crate::fusion::cca::first_use_order;
use crate::fusion::saved::CCA_JSON;
use crate::fusion::{CcaParams, ColumnBlocks, FittedCca};
use crate::image::ImageFeatureParams;
use crate::matrix::FeatureMatrix;
use crate::pipeline::artifacts::{read_dense, read_ids, read_sparse};
use crate::pipeline::{Context, PipelineError, Stage, StageWriter};
use crate::sparse::CsrMatrix;

/// The combined text features of partition `p` and their row ids.
pub fn load_text_features(
    ctx: &Context,
    p: &str,
) -> Result<(CsrMatrix, Vec<String>), PipelineError> {
    let dir = ctx.stage_dir("text-features");
    Ok((
        read_sparse(&dir.join(p).join("text_features.npz"))?,
        read_ids(&dir.join("text_ids.txt"))?,
    ))
}

/// Column widths of the blocks of partition `p`'s combined text features, in their order
/// there, as the text-features stage recorded them (`<p>_combined_layout` in its manifest).
pub fn text_block_widths(ctx: &Context, p: &str) -> Result<Vec<usize>, Error> {
    let manifest = ctx.upstream_manifest("fit", "text-features")?;
    let key = format!("{p}_combined_layout");
    let bad = |message: String| PipelineError::BadArtifact {
        path: ctx.stage_dir("text-features").join("manifest.json"),
        message,
    };
    let layout = manifest
        .summary
        .get(&key)
        .and_then(|v| v.as_array())
        .ok_or_else(|| {
            bad(format!(
                "has no {key}: text-features folders from before it recorded its layout lack it; rerun that stage (`crossmodal text-features <pipeline file> --force`)"
            ))
        })?;
    let widths = layout
        .iter()
        .map(
            |block| match (block["start"].as_u64(), block["end"].as_u64()) {
                (Some(start), Some(end)) if end > start => Ok((end - start) as usize),
                _ => Err(bad(format!(
                    "{key}: a block without a valid column range: {block}"
                ))),
            },
        )
        .collect::<Result<Vec<_>, _>>()?;
    Ok(widths)
}

/// Training pairs of a partition: `(image feature row, text feature row)` for every caption
/// whose image is in the training part and was described.
pub fn pairs_in(
    split: &super::split::SplitArtifacts,
    partition: &crate::data::split::Partition,
    image_rows: &[String],
    part: Part,
) -> Vec<(usize, usize)> {
    let row_of: HashMap<&str, usize> = image_rows
        .iter()
        .enumerate()
        .map(|(r, id)| (id.as_str(), r))
        .collect();
    (0..split.text_ids.len())
        .filter_map(|t| {
            let image = split.text_image[t];
            if partition.parts[image] != part {
                return None;
            }
            row_of.get(split.image_ids[image].as_str()).map(|&r| (r, t))
        })
        .collect()
}

/// Image features (one row per image or mirrored copy) and the (image row, caption row) pairs.
pub type ViewsAndPairs = (Array2<f32>, Vec<(usize, usize)>);

/// The image rows `pairs` use, in order of first use ([`first_use_order`], the order the CCA
/// takes them in), and the pairs with their image index replaced by its position in that list.
pub(crate) fn compact_pairs(pairs: Vec<(usize, usize)>) -> (Vec<usize>, Vec<(usize, usize)>) {
    let images: Vec<usize> = pairs.iter().map(|&(image, _)| image).collect();
    let (rows, at) = first_use_order(&images);
    let pairs = at
        .into_iter()
        .zip(pairs)
        .map(|(image, (_, text))| (image, text))
        .collect();
    (rows, pairs)
}

/// The training views of a partition with the mirrored images appended: the image features
/// stacked over their mirrored copies (when the pipeline has them, `[image_features]
/// hflip_training`), and `pairs` extended by one pair per caption of each mirrored image.
pub fn with_mirrored(
    ctx: &Context,
    p: &str,
    images: Array2<f32>,
    image_rows: &[String],
    pairs: Vec<(usize, usize)>,
) -> Result<ViewsAndPairs, Error> {
    let (stacked, mirrored_rows) = stack_mirrored(ctx, p, images)?;
    let pairs = match mirrored_rows {
        Some(mirrored_rows) => mirrored_pairs(pairs, image_rows, &mirrored_rows),
        None => pairs,
    };
    Ok((stacked, pairs))
}

/// The image features of partition `p` stacked over their mirrored copies, with the copies'
/// ids (for [`mirrored_pairs`]); as they are, and `None`, when the pipeline has no copies.
pub fn stack_mirrored(
    ctx: &Context,
    p: &str,
    images: Array2<f32>,
) -> Result<(Array2<f32>, Option<Vec<String>>), Error> {
    let Some((mirrored, mirrored_rows)) = load_mirrored_image_features(ctx, p)? else {
        return Ok((images, None));
    };
    let stacked =
        ndarray::concatenate(Axis(0), &[images.view(), mirrored.view()]).map_err(|e| {
            PipelineError::Invalid(format!("{p}: stacking the mirrored image features: {e}"))
        })?;
    Ok((stacked, Some(mirrored_rows)))
}

/// `pairs` followed by, for each pair whose image has a mirrored copy, the same caption paired
/// with the copy; copy `m` is row `image_rows.len() + m` of the stacked views.
pub fn mirrored_pairs(
    mut pairs: Vec<(usize, usize)>,
    image_rows: &[String],
    mirrored_rows: &[String],
) -> Vec<(usize, usize)> {
    let copy_of: HashMap<&str, usize> = mirrored_rows
        .iter()
        .enumerate()
        .map(|(m, id)| (id.as_str(), image_rows.len() + m))
        .collect();
    let extra: Vec<(usize, usize)> = pairs
        .iter()
        .filter_map(|&(r, t)| copy_of.get(image_rows[r].as_str()).map(|&c| (c, t)))
        .collect();
    pairs.extend(extra);
    pairs
}

/// The distinct image rows of `pairs`, in first-seen order, and for each pair the position of
/// its image among them: what a gallery of each image once, with several captions each, needs.
pub fn distinct_images(pairs: &[(usize, usize)]) -> (Vec<usize>, Vec<usize>) {
    let mut distinct = Vec::new();
    let mut position: HashMap<usize, usize> = HashMap::new();
    let at = pairs
        .iter()
        .map(|&(row, _)| {
            *position.entry(row).or_insert_with(|| {
                distinct.push(row);
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, at)
}

/// The `[fit]` section: the CCA's parameters, and whether the model also learns on the
/// validation part.
#[derive(Debug, Clone, PartialEq)]
pub struct FitSection {
    /// The CCA's parameters: the rest of `[fit]`, `kernel_x.per_block` turned into the image
    /// blocks' widths.
    pub cca: CcaParams,
    /// `include_validation = true`: learn on the training and the validation part (the final
    /// model, once `tune` has chosen the settings on validation). `evaluate` then refuses to
    /// score the validation part, which the model has seen.
    pub include_validation: bool,
    /// `kernel_y.per_block = true`: one Gaussian map per text block (word TF-IDF, character
    /// n-grams, sentence vectors, those weighted above 0). Their widths depend on each
    /// partition's vocabulary, so [`FitSection::cca_for`] fills them in.
    pub text_per_block: bool,
    /// `pairs_fraction` in (0, 1]: the fraction of the training images (with their captions)
    /// the model learns on; 1 keeps them all.
    pub pairs_fraction: f64,
    /// `pairs_seed`: the key of the hash that draws them.
    pub pairs_seed: u64,
}

impl FitSection {
    /// Reads `[fit]`; `include_validation` is taken out before the rest is read as the CCA's
    /// parameters, and `kernel_x.per_block = true` becomes the image blocks' widths
    /// (`kernel_x.block_widths`, from `[image_features]`). `kernel_y.per_block` is kept for
    /// [`FitSection::cca_for`].
    pub fn load(ctx: &Context) -> Result<Self, Error> {
        let mut table: toml::Table = ctx.config.section("fit")?;
        let bad = |message: String| PipelineError::BadConfig {
            path: ctx.config.path.clone(),
            message: format!("[fit]: {message}"),
        };
        let flag = |table: &mut toml::Table, key: &str| match table.remove(key) {
            None => Ok(false),
            Some(toml::Value::Boolean(b)) => Ok(b),
            Some(other) => Err(bad(format!("{key} must be true or false, got {other}"))),
        };
        let include_validation = flag(&mut table, "include_validation")?;
        let pairs_fraction = match table.remove("pairs_fraction") {
            None => 1.0,
            Some(toml::Value::Float(f)) => f,
            Some(toml::Value::Integer(i)) => i as f64,
            Some(other) => {
                return Err(bad(format!("pairs_fraction must be a number, got {other}")).into());
            }
        };
        if !(pairs_fraction > 0.0 && pairs_fraction <= 1.0) {
            return Err(bad(format!(
                "pairs_fraction must be in (0, 1], got {pairs_fraction}"
            ))
            .into());
        }
        let pairs_seed = match table.remove("pairs_seed") {
            None => 0,
            Some(toml::Value::Integer(i)) if i >= 0 => i as u64,
            Some(other) => {
                return Err(bad(format!(
                    "pairs_seed must be a non-negative integer, got {other}"
                ))
                .into());
            }
        };
        let mut per_block = false;
        if let Some(toml::Value::Table(kernel_x)) = table.get_mut("kernel_x") {
            per_block = flag(kernel_x, "per_block")?;
        }
        let mut text_per_block = false;
        if let Some(toml::Value::Table(kernel_y)) = table.get_mut("kernel_y") {
            text_per_block = flag(kernel_y, "per_block")?;
        }
        let mut cca: CcaParams =
            crate::pipeline::config::deserialize_section("fit", toml::Value::Table(table))
                .map_err(|message| PipelineError::BadConfig {
                    path: ctx.config.path.clone(),
                    message,
                })?;
        if per_block {
            if !cca.kernel_x.block_widths.is_empty() {
                return Err(
                    bad("kernel_x: give per_block or block_widths, not both".into()).into(),
                );
            }
            cca.kernel_x.block_widths = image_block_widths(ctx)?;
        }
        if text_per_block && !cca.kernel_y.block_widths.is_empty() {
            return Err(bad("kernel_y: give per_block or block_widths, not both".into()).into());
        }
        Ok(Self {
            cca,
            include_validation,
            text_per_block,
            pairs_fraction,
            pairs_seed,
        })
    }

    /// The CCA's parameters for partition `p`: with `kernel_y.per_block`, the widths of the
    /// text blocks in that partition's combined text features.
    pub fn cca_for(&self, ctx: &Context, p: &str) -> Result<CcaParams, Error> {
        let mut cca = self.cca.clone();
        if self.text_per_block {
            cca.kernel_y.block_widths = text_block_widths(ctx, p)?;
        }
        Ok(cca)
    }

    /// The parts whose pairs the model learns on.
    pub fn training_parts(&self) -> &'static [Part] {
        if self.include_validation {
            &[Part::Train, Part::Validation]
        } else {
            &[Part::Train]
        }
    }

    /// Whether the model learns on the pairs of image `id` (always, unless `pairs_fraction`
    /// is below 1).
    pub fn learns_on(&self, id: &str) -> bool {
        self.pairs_fraction >= 1.0
            || unit_hash(self.pairs_seed, "pairs-fraction", id) < self.pairs_fraction
    }

    /// The stage parameters recorded in the manifest (`include_validation` and the pairs'
    /// fraction only when set, so that older work folders stay fresh).
    fn to_json(&self) -> serde_json::Value {
        let mut value = self.cca_json();
        if self.include_validation {
            value["include_validation"] = true.into();
        }
        if self.pairs_fraction < 1.0 {
            value["pairs_fraction"] = self.pairs_fraction.into();
            value["pairs_seed"] = self.pairs_seed.into();
        }
        value
    }

    /// The CCA's parameters as recorded in manifests (`kernel_y.per_block` only when set).
    pub fn cca_json(&self) -> serde_json::Value {
        let mut value = serde_json::to_value(&self.cca).expect("serialisable");
        if self.text_per_block {
            value["kernel_y"]["per_block"] = true.into();
        }
        value
    }
}

/// The `fit` stage.
pub struct FitStage;

impl Stage for FitStage {
    fn name(&self) -> &'static str {
        "fit"
    }
    fn about(&self) -> &'static str {
        "learn the CCA projections on the training pairs"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split", "image-features", "text-features"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["fit"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let section = FitSection::load(ctx)?;
        section.cca.clone().check()?;
        Ok(section.to_json())
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let section = FitSection::load(ctx)?;
        section.cca.clone().check()?;
        let split = load_split(ctx, self.name())?;
        for partition in &split.partitions {
            let p = &partition.name;
            let checked = section.cca_for(ctx, p)?.check()?;
            let image_rows = load_image_row_ids(ctx, p)?;
            let (texts, _) = load_text_features(ctx, p)?;
            let pairs: Vec<(usize, usize)> = section
                .training_parts()
                .iter()
                .flat_map(|&part| pairs_in(&split, partition, &image_rows, part))
                .filter(|&(r, _)| section.learns_on(&image_rows[r]))
                .collect();
            let (images, pairs): (Box<dyn ColumnBlocks>, _) = if ctx
                .config
                .section::<ImageFeatureParams>("image_features")?
                .hflip_training
            {
                let (images, _) = load_image_features(ctx, p)?;
                let (images, pairs) = with_mirrored(ctx, p, images, &image_rows, pairs)?;
                (Box::new(FeatureMatrix::Dense(images)), pairs)
            } else {
                // Only the training images' rows are read (in order of first use, which is the
                // order the CCA takes them in), and with a kernel map per image block only one
                // block of them at a time: the matrix of every image is 10 GB at the contest's
                // 50,000.
                let (rows, pairs) = compact_pairs(pairs);
                (Box::new(ImageFeatureRows::open(ctx, p, rows)?), pairs)
            };
            let x_rows: Vec<usize> = pairs.iter().map(|&(r, _)| r).collect();
            let y_rows: Vec<usize> = pairs.iter().map(|&(_, t)| t).collect();
            let y = FeatureMatrix::Sparse(texts);
            let bar = ctx.bar(0, &format!("{p}: CCA"));
            let fitted = checked.fit_paired(images.as_ref(), &x_rows, &y, &y_rows, &bar)?;
            bar.finish_and_clear();
            for file in fitted.array_files() {
                out.dense(&format!("{p}/{}", file.file), &file.array, None, file.about)?;
            }
            out.json(
                &format!("{p}/{CCA_JSON}"),
                &fitted.cca_json(),
                "eigen power, dims and format: FittedCca::load reads the folder",
            )?;
            out.summary(&format!("{p}_pairs"), pairs.len());
            out.summary(&format!("{p}_dims"), fitted.dims());
            let top: Vec<f32> = fitted.correlations().iter().take(5).copied().collect();
            out.summary(&format!("{p}_top_correlations"), top);
        }
        Ok(())
    }
}

/// Loads the CCA of partition `p` from a committed `fit` folder (the eigenvalue power is the
/// pipeline file's, which the manifest records, not a file of the folder).
pub fn load_cca(ctx: &Context, p: &str) -> Result<FittedCca, Error> {
    let params = FitSection::load(ctx)?.cca;
    let dir = ctx.stage_dir("fit").join(p);
    Ok(FittedCca::read_arrays(&dir, params.eigen_power)?)
}

/// How many image rows are projected at once, by `embed` and `submit`: enough for the matrix
/// products to run at speed, few enough that a gallery of 50,000 images is never held as
/// features (10 GB) but only as projections.
pub const PROJECT_ROWS: usize = 1024;

/// The `embed` stage.
pub struct EmbedStage;

impl Stage for EmbedStage {
    fn name(&self) -> &'static str {
        "embed"
    }
    fn about(&self) -> &'static str {
        "project every image and caption into the shared space"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &["split", "image-features", "text-features", "fit"]
    }
    fn sections(&self) -> &'static [&'static str] {
        &[]
    }
    fn params(&self, _ctx: &Context) -> Result<serde_json::Value, Error> {
        Ok(serde_json::json!({ "normalise": "l2" }))
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let split = load_split(ctx, self.name())?;
        out.ids(
            "text_ids.txt",
            &split.text_ids,
            "ids of the text embedding rows",
        )?;
        for partition in &split.partitions {
            let p = &partition.name;
            let cca = load_cca(ctx, p)?;
            let image_rows = load_image_row_ids(ctx, p)?;
            let rows_file = format!("{p}/image_rows.txt");
            out.ids(&rows_file, &image_rows, "ids of the image embedding rows")?;
            // The image features are read and projected PROJECT_ROWS at a time, so that only
            // the model and one batch of them are ever in memory.
            let embeddings_file = format!("{p}/image_embeddings.npy");
            let mut image_embeddings = out.dense_rows(&embeddings_file, cca.dims())?;
            let features = CombinedImageFeatures::open(ctx, p)?;
            let all_rows: Vec<usize> = (0..image_rows.len()).collect();
            for rows in all_rows.chunks(PROJECT_ROWS) {
                let images = features.read_rows(rows)?;
                image_embeddings.append(&cca.embed_x(&FeatureMatrix::Dense(images))?)?;
            }
            out.finish_dense(
                &embeddings_file,
                image_embeddings,
                Some(&rows_file),
                "images in the shared space, L2-normalised",
            )?;
            let (texts, _) = load_text_features(ctx, p)?;
            let text_embeddings = cca.embed_y(&FeatureMatrix::Sparse(texts))?;
            out.dense(
                &format!("{p}/text_embeddings.npy"),
                &text_embeddings,
                Some("text_ids.txt"),
                "captions in the shared space, L2-normalised",
            )?;
        }
        Ok(())
    }
}

/// The embeddings of one partition, as `embed` wrote them.
pub struct Embeddings {
    /// One row per image in the shared space, L2-normalised.
    pub images: Array2<f32>,
    /// The ids of the rows of `images`.
    pub image_rows: Vec<String>,
    /// One row per caption, in split order.
    pub texts: Array2<f32>,
}

/// Loads the embeddings of partition `p`.
pub fn load_embeddings(ctx: &Context, p: &str) -> Result<Embeddings, PipelineError> {
    let dir = ctx.stage_dir("embed").join(p);
    Ok(Embeddings {
        images: read_dense(&dir.join("image_embeddings.npy"))?,
        image_rows: read_ids(&dir.join("image_rows.txt"))?,
        texts: read_dense(&dir.join("text_embeddings.npy"))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_smaller_pairs_fraction_keeps_a_subset_of_a_larger_ones_images() {
        let section = |pairs_fraction| FitSection {
            cca: CcaParams::default(),
            include_validation: false,
            text_per_block: false,
            pairs_fraction,
            pairs_seed: 7,
        };
        let ids: Vec<String> = (0..2000).map(|i| format!("img-{i}")).collect();
        let kept = |f| -> Vec<bool> { ids.iter().map(|id| section(f).learns_on(id)).collect() };
        let (quarter, half, all) = (kept(0.25), kept(0.5), kept(1.0));
        assert!(all.iter().all(|&k| k));
        assert!(quarter.iter().zip(&half).all(|(&q, &h)| !q || h));
        let share = |k: &[bool]| k.iter().filter(|&&b| b).count() as f64 / ids.len() as f64;
        assert!((share(&quarter) - 0.25).abs() < 0.04, "{}", share(&quarter));
        assert!((share(&half) - 0.5).abs() < 0.04, "{}", share(&half));
    }

    #[test]
    fn mirrored_pairs_repeat_each_caption_for_the_copy() {
        let image_rows: Vec<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
        // Copies of c and a (b, say a test image, has none), stacked after the 3 rows.
        let mirrored_rows: Vec<String> = ["c", "a"].iter().map(|s| s.to_string()).collect();
        let pairs = vec![(0, 10), (0, 11), (1, 12), (2, 13)];
        let all = mirrored_pairs(pairs.clone(), &image_rows, &mirrored_rows);
        assert_eq!(&all[..4], &pairs[..]);
        assert_eq!(&all[4..], &[(4, 10), (4, 11), (3, 13)]);
    }
}
