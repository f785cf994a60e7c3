//! Similarity profiles over the training pairs: a cross-modal baseline that learns nothing.
//!
//! The training pairs are the only bridge between the two modalities, and the simplest way to
//! cross it is by similarity alone: an image is described by its cosine similarities to the
//! training images (the *anchors*), a caption by its similarities to the anchors' captions
//! (averaged per anchor when an image has several). Because the anchors are pairs, both
//! profiles have one coordinate per anchor, and an image and a caption are scored by the
//! correlation of their profiles: a caption whose nearest training captions belong to the
//! training images that look like a gallery image ranks that image high. This is
//! nearest-neighbour transfer (Ordonez, Kulkarni and Berg, "Im2Text", NIPS 2011, transfer the
//! captions of the visually nearest training images) made symmetric and soft.
//!
//! Each profile is standardised over the anchors (zero mean, unit variance), so the cosine of
//! two profiles is their Pearson correlation. The image side standardises each feature block's
//! similarities before summing them (as the CCA's per-block kernel maps do), so that no block
//! dominates by the spread of its cosines; image blocks are centred on the anchors' mean first.
//! Captions (sparse TF-IDF) are compared as they are, through an inverted index of the anchors'
//! captions, never densified.
//!
//! Nothing is fitted beyond the anchors' means, so `crossmodal comparison` shows with this row
//! how much the CCA learns beyond what the training pairs give by similarity.
//!
//! `ProfileParams::default()` → `.check()?` → `.fit(&images, &widths, &texts, &pairs)?` →
//! `FittedProfiles::{embed_images, embed_texts}`.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1, Axis, s};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rand_chacha::rand_core::SeedableRng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::FusionError;
use super::ops::{BLOCK, by_row_blocks, check_finite_dense, check_finite_sparse, transpose_csr};
use crate::sparse::CsrMatrix;

/// Settings of the similarity profiles (unchecked). A pipeline file's `[profiles]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProfileParams {
    /// Standardise each image block's similarities before summing them (`true`), or take one
    /// cosine over the whole image row.
    pub image_per_block: bool,
    /// At most this many training images serve as anchors; when there are more, a seeded random
    /// sample of them. Each embedding has one dimension per anchor.
    pub max_anchors: usize,
    /// Seed of that sample.
    pub seed: u64,
}

impl Default for ProfileParams {
    fn default() -> Self {
        Self {
            image_per_block: true,
            max_anchors: 8192,
            seed: 2024,
        }
    }
}

impl ProfileParams {
    /// Checks the ranges: `max_anchors` in [2, 65536].
    pub fn check(self) -> Result<Self, FusionError> {
        if !(2..=65_536).contains(&self.max_anchors) {
            return Err(FusionError::InvalidParam {
                name: "max_anchors",
                value: self.max_anchors.to_string(),
                expected: "in [2, 65536]",
            });
        }
        Ok(self)
    }

    /// Takes the anchors from the training `pairs` (image row, caption row).
    ///
    /// `images` holds every image's features, `block_widths` the widths of its blocks in
    /// column order (ignored, one block, when empty or when `image_per_block` is false);
    /// `texts` every caption's features. Only the rows named by `pairs` are read here.
    pub fn fit(
        &self,
        images: &ArrayView2<f32>,
        block_widths: &[usize],
        texts: &CsrMatrix,
        pairs: &[(usize, usize)],
    ) -> Result<FittedProfiles, FusionError> {
        check_finite_dense(images, "x")?;
        check_finite_sparse(texts, "y")?;
        let d = images.ncols();
        let widths: Vec<usize> = if self.image_per_block && !block_widths.is_empty() {
            block_widths.iter().copied().filter(|&w| w > 0).collect()
        } else {
            vec![d]
        };
        let total: usize = widths.iter().sum();
        if total != d {
            return Err(FusionError::InvalidParam {
                name: "x",
                value: format!("block_widths = {widths:?} (sum {total}, the view has {d} columns)"),
                expected: "block widths adding up to the view's columns",
            });
        }
        for &(image, caption) in pairs {
            if image >= images.nrows() {
                return Err(FusionError::RowOutOfRange {
                    view: "x",
                    row: image,
                    rows: images.nrows(),
                });
            }
            if caption >= texts.n_rows() {
                return Err(FusionError::RowOutOfRange {
                    view: "y",
                    row: caption,
                    rows: texts.n_rows(),
                });
            }
        }
        let mut anchor_rows: Vec<usize> = pairs.iter().map(|&(image, _)| image).collect();
        anchor_rows.sort_unstable();
        anchor_rows.dedup();
        if anchor_rows.len() > self.max_anchors {
            let mut rng = ChaCha8Rng::seed_from_u64(self.seed);
            anchor_rows.shuffle(&mut rng);
            anchor_rows.truncate(self.max_anchors);
            anchor_rows.sort_unstable();
        }
        if anchor_rows.len() < 2 {
            return Err(FusionError::TooFewRows {
                rows: anchor_rows.len(),
                needed: 2,
            });
        }
        let anchor_of = |row: usize| anchor_rows.binary_search(&row).ok();

        let mut blocks = Vec::with_capacity(widths.len());
        let mut start = 0;
        for &width in &widths {
            let anchor_block = images
                .slice(s![.., start..start + width])
                .select(Axis(0), &anchor_rows);
            let mean = anchor_block
                .mean_axis(Axis(0))
                .expect("at least two anchors");
            let mut anchors = anchor_block - &mean;
            anchors
                .axis_iter_mut(Axis(0))
                .for_each(|r| normalise(r, 1e-12));
            blocks.push(ImageBlock {
                start,
                mean,
                anchors,
            });
            start += width;
        }

        let mut caption_rows = Vec::new();
        let mut caption_anchor = Vec::new();
        for &(image, caption) in pairs {
            if let Some(a) = anchor_of(image) {
                caption_rows.push(caption);
                caption_anchor.push(a);
            }
        }
        let mut anchor_captions = vec![0usize; anchor_rows.len()];
        for &a in &caption_anchor {
            anchor_captions[a] += 1;
        }
        let mut captions = texts.select_rows(&caption_rows);
        for i in 0..captions.n_rows() {
            let values = captions.row_values_mut(i);
            let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                values.iter_mut().for_each(|v| *v /= norm);
            }
        }
        Ok(FittedProfiles {
            image_columns: d,
            blocks,
            captions_by_term: transpose_csr(&captions),
            caption_anchor,
            anchor_captions,
            anchor_rows,
        })
    }
}

/// One image block: where it starts, the anchors' mean, and the anchors' centred rows scaled to
/// unit length.
#[derive(Debug, Clone)]
struct ImageBlock {
    start: usize,
    mean: Array1<f32>,
    anchors: Array2<f32>,
}

/// The anchors' features, ready to profile new images and captions against.
#[derive(Debug, Clone)]
pub struct FittedProfiles {
    image_columns: usize,
    blocks: Vec<ImageBlock>,
    /// The anchors' captions, rows scaled to unit length, transposed (term → captions): the
    /// inverted index a caption is scored against.
    captions_by_term: CsrMatrix,
    /// For each anchor caption, its anchor.
    caption_anchor: Vec<usize>,
    /// For each anchor, how many captions it has.
    anchor_captions: Vec<usize>,
    anchor_rows: Vec<usize>,
}

impl FittedProfiles {
    /// The number of anchors: the dimension of every embedding.
    pub fn anchors(&self) -> usize {
        self.anchor_rows.len()
    }

    /// The image rows (of the matrix given to `fit`) that are anchors, in embedding order.
    pub fn anchor_rows(&self) -> &[usize] {
        &self.anchor_rows
    }

    /// The bytes the anchors' features take in memory (block means, centred anchor rows, the
    /// captions' inverted index): what this baseline keeps in place of a model.
    pub fn size_bytes(&self) -> u64 {
        let floats: usize = self
            .blocks
            .iter()
            .map(|b| b.mean.len() + b.anchors.len())
            .sum();
        let index = &self.captions_by_term;
        let entries = index.nnz() * 8 + (index.n_rows() + 1) * 8;
        let maps = (self.caption_anchor.len() + self.anchor_captions.len()) * 8;
        (floats * 4 + entries + maps) as u64
    }

    /// The standardised profiles of `images` (rows as in `fit`), scaled to unit length.
    pub fn embed_images(&self, images: &ArrayView2<f32>) -> Result<Array2<f32>, FusionError> {
        if images.ncols() != self.image_columns {
            return Err(FusionError::DimMismatch {
                view: "x",
                expected: self.image_columns,
                got: images.ncols(),
            });
        }
        check_finite_dense(images, "x")?;
        let many_blocks = self.blocks.len() > 1;
        let out = by_row_blocks(images.nrows(), self.anchors(), |start, mut out| {
            let end = start + out.nrows();
            for block in &self.blocks {
                let width = block.mean.len();
                let mut rows =
                    &images.slice(s![start..end, block.start..block.start + width]) - &block.mean;
                rows.axis_iter_mut(Axis(0))
                    .for_each(|r| normalise(r, 1e-12));
                let mut similarities = rows.dot(&block.anchors.t());
                similarities.axis_iter_mut(Axis(0)).for_each(standardise);
                out += &similarities;
            }
            if many_blocks {
                out.axis_iter_mut(Axis(0)).for_each(standardise);
            }
            out.axis_iter_mut(Axis(0)).for_each(|r| normalise(r, 0.0));
        });
        Ok(out)
    }

    /// The standardised profiles of `texts` (columns as in `fit`), scaled to unit length.
    pub fn embed_texts(&self, texts: &CsrMatrix) -> Result<Array2<f32>, FusionError> {
        if texts.n_cols() != self.captions_by_term.n_rows() {
            return Err(FusionError::DimMismatch {
                view: "y",
                expected: self.captions_by_term.n_rows(),
                got: texts.n_cols(),
            });
        }
        check_finite_sparse(texts, "y")?;
        let n_captions = self.caption_anchor.len();
        let mut out = Array2::<f32>::zeros((texts.n_rows(), self.anchors()));
        out.axis_chunks_iter_mut(Axis(0), BLOCK)
            .into_par_iter()
            .enumerate()
            .for_each(|(b, mut chunk)| {
                let mut to_captions = vec![0f32; n_captions];
                for (r, mut profile) in chunk.axis_iter_mut(Axis(0)).enumerate() {
                    let (terms, values) = texts.row(b * BLOCK + r);
                    let norm = values.iter().map(|v| v * v).sum::<f32>().sqrt();
                    to_captions.iter_mut().for_each(|v| *v = 0.0);
                    if norm > 0.0 {
                        for (&term, &value) in terms.iter().zip(values) {
                            let (captions, weights) = self.captions_by_term.row(term as usize);
                            for (&c, &w) in captions.iter().zip(weights) {
                                to_captions[c as usize] += value / norm * w;
                            }
                        }
                    }
                    for (c, &similarity) in to_captions.iter().enumerate() {
                        profile[self.caption_anchor[c]] += similarity;
                    }
                    for (p, &count) in profile.iter_mut().zip(&self.anchor_captions) {
                        *p /= count.max(1) as f32;
                    }
                    standardise(profile.view_mut());
                    normalise(profile, 0.0);
                }
            });
        Ok(out)
    }
}

/// Scales `row` to unit length unless its norm is at most `floor`.
fn normalise(mut row: ArrayViewMut1<f32>, floor: f32) {
    let norm = row.dot(&row).sqrt();
    if norm > floor {
        row /= norm;
    }
}

/// Subtracts the mean and divides by the standard deviation; a constant row becomes zeros.
fn standardise(mut row: ArrayViewMut1<f32>) {
    let n = row.len().max(1) as f32;
    let mean = row.sum() / n;
    row -= mean;
    let sd = (row.dot(&row) / n).sqrt();
    if sd > 1e-12 {
        row /= sd;
    } else {
        row.fill(0.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;
    use rand::Rng;

    fn csr_of(dense: &Array2<f32>) -> CsrMatrix {
        let rows = dense
            .rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|(_, v)| **v != 0.0)
                    .map(|(c, &v)| (c as u32, v))
                    .collect()
            })
            .collect();
        CsrMatrix::from_rows(rows, dense.ncols())
    }

    /// Two views of the same latent topics: image = topic pattern + noise in two blocks,
    /// caption = sparse topic words + noise.
    fn synthetic(n: usize, topics: usize, seed: u64) -> (Array2<f32>, Array2<f32>, Vec<usize>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let image_patterns = Array2::from_shape_fn((topics, 12), |_| rng.r#gen::<f32>());
        let topic_of: Vec<usize> = (0..n).map(|_| rng.gen_range(0..topics)).collect();
        let images = Array2::from_shape_fn((n, 12), |(i, j)| {
            image_patterns[[topic_of[i], j]] * if j < 4 { 10.0 } else { 1.0 }
                + 0.3 * rng.r#gen::<f32>()
        });
        let texts = Array2::from_shape_fn((n, 3 * topics), |(i, j)| {
            if j / 3 == topic_of[i] && rng.r#gen::<f32>() < 0.7 {
                1.0
            } else if rng.r#gen::<f32>() < 0.05 {
                0.5
            } else {
                0.0
            }
        });
        (images, texts, topic_of)
    }

    /// Text → image among the `held_out` items: how many caption queries find an image of
    /// their own topic first.
    fn same_topic_top1(
        images: &Array2<f32>,
        texts: &Array2<f32>,
        topic: &[usize],
        held_out: std::ops::Range<usize>,
    ) -> usize {
        let gallery = images.slice(s![held_out.clone(), ..]);
        held_out
            .clone()
            .filter(|&q| {
                let scores = gallery.dot(&texts.row(q));
                let best = scores
                    .iter()
                    .enumerate()
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .unwrap()
                    .0;
                topic[held_out.start + best] == topic[q]
            })
            .count()
    }

    #[test]
    fn profiles_are_standardised_unit_rows_over_the_anchors() {
        let (images, texts, _) = synthetic(60, 4, 1);
        let texts = csr_of(&texts);
        let pairs: Vec<(usize, usize)> = (0..40).map(|i| (i, i)).collect();
        let fitted = ProfileParams::default()
            .check()
            .unwrap()
            .fit(&images.view(), &[4, 8], &texts, &pairs)
            .unwrap();
        assert_eq!(fitted.anchors(), 40);
        let embedded_images = fitted.embed_images(&images.view()).unwrap();
        let embedded_texts = fitted.embed_texts(&texts).unwrap();
        assert_eq!(embedded_images.dim(), (60, 40));
        assert_eq!(embedded_texts.dim(), (60, 40));
        for row in embedded_images
            .rows()
            .into_iter()
            .chain(embedded_texts.rows())
        {
            let norm = row.dot(&row);
            if norm > 0.0 {
                assert!((norm - 1.0).abs() < 1e-4, "norm² {norm}");
                assert!(row.sum().abs() < 1e-3, "mean {}", row.sum());
            }
        }
    }

    #[test]
    fn a_caption_profile_equals_the_dense_computation() {
        let (images, texts, _) = synthetic(30, 3, 2);
        let sparse = csr_of(&texts);
        // Two captions per anchor image for the first 10 images (captions i and i + 10).
        let pairs: Vec<(usize, usize)> = (0..10).flat_map(|i| [(i, i), (i, i + 10)]).collect();
        let fitted = ProfileParams::default()
            .fit(&images.view(), &[], &sparse, &pairs)
            .unwrap();
        let got = fitted.embed_texts(&sparse).unwrap();
        let unit = |r: ndarray::ArrayView1<f32>| {
            let n = r.dot(&r).sqrt();
            if n > 0.0 {
                r.to_owned() / n
            } else {
                r.to_owned()
            }
        };
        for q in 0..30 {
            let query = unit(texts.row(q));
            let mut profile = Array1::<f32>::zeros(10);
            for a in 0..10 {
                let s1 = query.dot(&unit(texts.row(a)));
                let s2 = query.dot(&unit(texts.row(a + 10)));
                profile[a] = (s1 + s2) / 2.0;
            }
            standardise(profile.view_mut());
            normalise(profile.view_mut(), 0.0);
            for a in 0..10 {
                assert!(
                    (got[[q, a]] - profile[a]).abs() < 1e-4,
                    "query {q}, anchor {a}: {} vs {}",
                    got[[q, a]],
                    profile[a]
                );
            }
        }
    }

    #[test]
    fn per_block_standardising_keeps_a_loud_block_from_dominating() {
        // Block 0 is loud noise (scale 100), block 1 a faint topic indicator: a cosine over
        // the whole row hears only the noise, one standardised profile per block hears both.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let n = 80;
        let topic: Vec<usize> = (0..n).map(|i| i % 4).collect();
        let images = Array2::from_shape_fn((n, 20), |(i, j)| {
            if j < 16 {
                100.0 * rng.r#gen::<f32>()
            } else {
                (if j - 16 == topic[i] { 1.0 } else { 0.0 }) + 0.05 * rng.r#gen::<f32>()
            }
        });
        let texts = csr_of(&Array2::from_shape_fn((n, 4), |(i, j)| {
            if j == topic[i] { 1.0 } else { 0.0 }
        }));
        let pairs: Vec<(usize, usize)> = (0..60).map(|i| (i, i)).collect();
        let hits = |per_block: bool| {
            let fitted = ProfileParams {
                image_per_block: per_block,
                ..ProfileParams::default()
            }
            .fit(&images.view(), &[16, 4], &texts, &pairs)
            .unwrap();
            let im = fitted.embed_images(&images.view()).unwrap();
            let tx = fitted.embed_texts(&texts).unwrap();
            same_topic_top1(&im, &tx, &topic, 60..n)
        };
        let per_block = hits(true);
        let whole_row = hits(false);
        assert!(per_block >= 18, "per block: {per_block} of 20");
        assert!(
            whole_row < per_block,
            "whole row {whole_row}, per block {per_block}"
        );
    }

    #[test]
    fn retrieval_through_the_anchors_beats_chance_on_held_out_pairs() {
        let (images, texts, topic) = synthetic(200, 8, 4);
        let texts = csr_of(&texts);
        let pairs: Vec<(usize, usize)> = (0..150).map(|i| (i, i)).collect();
        let fitted = ProfileParams::default()
            .fit(&images.view(), &[4, 8], &texts, &pairs)
            .unwrap();
        let im = fitted.embed_images(&images.view()).unwrap();
        let tx = fitted.embed_texts(&texts).unwrap();
        let hits = same_topic_top1(&im, &tx, &topic, 150..200);
        // Chance is about 1 in 8 (about 6 of 50).
        assert!(hits >= 30, "{hits} of 50");
    }

    #[test]
    fn anchors_are_sampled_with_the_seed_and_bad_input_is_named() {
        let (images, texts, _) = synthetic(50, 3, 5);
        let texts = csr_of(&texts);
        let pairs: Vec<(usize, usize)> = (0..50).map(|i| (i, i)).collect();
        let params = ProfileParams {
            max_anchors: 10,
            ..ProfileParams::default()
        }
        .check()
        .unwrap();
        let a = params.fit(&images.view(), &[], &texts, &pairs).unwrap();
        let b = params.fit(&images.view(), &[], &texts, &pairs).unwrap();
        assert_eq!(a.anchors(), 10);
        assert_eq!(a.anchor_rows(), b.anchor_rows());
        let err = ProfileParams {
            max_anchors: 1,
            ..ProfileParams::default()
        }
        .check()
        .unwrap_err();
        assert_eq!(err.to_string(), "max_anchors must be in [2, 65536], got 1");
        let err = params
            .fit(&images.view(), &[4, 4], &texts, &pairs)
            .unwrap_err();
        assert!(err.to_string().contains("the view has 12 columns"), "{err}");
        let err = params
            .fit(&images.view(), &[], &texts, &[(0, 0), (50, 1)])
            .unwrap_err();
        assert!(err.to_string().contains("pair row 50"), "{err}");
        let err = a.embed_images(&images.slice(s![.., ..5])).unwrap_err();
        assert!(err.to_string().contains("5 columns"), "{err}");
        let mut broken = images.clone();
        broken[[7, 3]] = f32::NAN;
        for err in [
            params.fit(&broken.view(), &[], &texts, &pairs).unwrap_err(),
            a.embed_images(&broken.view()).unwrap_err(),
        ] {
            assert!(
                matches!(
                    err,
                    FusionError::NonFinite {
                        view: "x",
                        row: 7,
                        col: 3
                    }
                ),
                "{err}"
            );
        }
    }
}
