//! Grid search of CCA hyper-parameters on a validation split given by the caller, or (run
//! once per fold and averaged by [`TuneResult::mean_over_folds`]) by k-fold cross-validation.
//!
//! The grid covers the relative ridges of both views, the output dimensions and the eigenvalue
//! weighting power `p` of Gong et al. (IJCV 2014), plus an optional list of per-block feature
//! weights handled through a caller hook (the caller rebuilds its views for each weighting; with
//! one kernel map per image block, a block weighted 0 leaves the map's blocks too). One
//! CCA is fitted per (weights, ridge_x, ridge_y); the dims and `p` axes reuse it, since canonical
//! directions are nested (the first k of a larger fit are the k-dimensional solution) and `p`
//! only rescales columns. Kernel maps (`kernel_x`, `kernel_y`) depend on none of the axes: they
//! are fitted once per weighting ([`crate::fusion::CcaValidParams::map_pairs`]), and
//! [`mean_recall_scorer`] maps each validation matrix once per map ([`MeanRecall`] once per
//! weighting and map, for image rows built per weighting), reading the image rows from disk a
//! block of rows at a time when the caller hands them over as [`ScoredRows::Read`]. The
//! validation split must be carved out of the TRAINING data: the test split never chooses a
//! default.

use std::cell::RefCell;
use std::rc::Rc;

use serde::{Deserialize, Serialize};

use super::cca::{CcaParams, FittedCca};
use super::kernel_map::FittedKernelMap;
use super::{ColumnBlocks, FusionError};
use crate::matrix::FeatureMatrix;
use crate::retrieval::evaluate::{EvalOptions, evaluate};
use crate::retrieval::rank::Hubness;
use ndarray::{Array2, s};

/// The axes of the grid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TuneGrid {
    /// Relative ridges of view x tried (must not be empty; default 0.01, 0.1, 1).
    pub ridge_x: Vec<f64>,
    /// Relative ridges of view y tried (must not be empty; default 0.01, 0.1, 1).
    pub ridge_y: Vec<f64>,
    /// Output dimensions tried (must not be empty; default 64, 128, 256).
    pub dims: Vec<usize>,
    /// Eigenvalue weighting powers `p` tried (must not be empty; default 0, 1, 2, 4).
    pub eigen_power: Vec<f64>,
    /// PCA pre-reduction sizes tried (empty: the base parameters' `pca_dims`).
    pub pca_dims: Vec<usize>,
    /// Candidate block weightings handed to the caller's view hook (empty: one run, no weights).
    pub block_weights: Vec<Vec<f32>>,
    /// CSLS neighbourhood sizes tried when ranking (0: plain cosine; empty: 0 only).
    pub csls_k: Vec<usize>,
    /// Inverted softmax temperatures tried when ranking, beside the `csls_k` points.
    pub inverted_softmax: Vec<f32>,
}

impl Default for TuneGrid {
    fn default() -> Self {
        Self {
            ridge_x: vec![0.01, 0.1, 1.0],
            ridge_y: vec![0.01, 0.1, 1.0],
            dims: vec![64, 128, 256],
            eigen_power: vec![0.0, 1.0, 2.0, 4.0],
            pca_dims: Vec::new(),
            block_weights: Vec::new(),
            csls_k: Vec::new(),
            inverted_softmax: Vec::new(),
        }
    }
}

/// One evaluated grid point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GridPoint {
    /// Relative ridge of view x.
    pub ridge_x: f64,
    /// Relative ridge of view y.
    pub ridge_y: f64,
    /// Output dimensions.
    pub dims: usize,
    /// Eigenvalue weighting power `p`.
    pub eigen_power: f64,
    /// PCA pre-reduction size.
    pub pca_dims: usize,
    /// Index into `TuneGrid::block_weights`, if any.
    pub block_weights: Option<usize>,
    /// CSLS neighbourhood size at ranking (0: plain cosine).
    #[serde(default)]
    pub csls_k: usize,
    /// Inverted softmax temperature at ranking (0: off).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub inverted_softmax_temperature: f32,
    /// The validation score; with cross-validation, the mean over the folds.
    pub score: f64,
    /// With cross-validation, the score on each fold (empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fold_scores: Vec<f64>,
}

fn is_zero(t: &f32) -> bool {
    *t == 0.0
}

impl GridPoint {
    /// The hubness correction this point ranked with.
    pub fn hubness(&self) -> Hubness {
        if self.inverted_softmax_temperature > 0.0 {
            Hubness::InvertedSoftmax(self.inverted_softmax_temperature)
        } else {
            Hubness::csls(self.csls_k)
        }
    }

    /// The same parameters (the score aside).
    fn same_setting(&self, other: &GridPoint) -> bool {
        (
            self.ridge_x,
            self.ridge_y,
            self.dims,
            self.eigen_power,
            self.pca_dims,
            self.block_weights,
            self.csls_k,
            self.inverted_softmax_temperature,
        ) == (
            other.ridge_x,
            other.ridge_y,
            other.dims,
            other.eigen_power,
            other.pca_dims,
            other.block_weights,
            other.csls_k,
            other.inverted_softmax_temperature,
        )
    }
}

/// Every grid point with its score, and the index of the best (first best on ties, in grid
/// order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TuneResult {
    /// Every point, in grid order.
    pub points: Vec<GridPoint>,
    /// Index in `points` of the best score.
    pub best: usize,
}

impl TuneResult {
    /// The best point, `points[best]`; panics if `best` is not an index of `points`.
    pub fn winner(&self) -> &GridPoint {
        &self.points[self.best]
    }

    /// Every point scored by its mean over `folds`, runs of the same grid, one per
    /// cross-validation fold (each fold's score kept in `fold_scores`). One validation part of a
    /// few hundred images is noisy: scores 0.01 apart there did not predict the test set, and k
    /// folds average k times as many validation queries.
    pub fn mean_over_folds(folds: Vec<TuneResult>) -> Result<TuneResult, FusionError> {
        let Some(first) = folds.first() else {
            return Err(FusionError::Score("no folds to average".into()));
        };
        let mut points = first.points.clone();
        for (f, fold) in folds.iter().enumerate() {
            if fold.points.len() != points.len()
                || fold
                    .points
                    .iter()
                    .zip(&points)
                    .any(|(a, b)| !a.same_setting(b))
            {
                return Err(FusionError::Score(format!(
                    "fold {f} ran a different grid from fold 0"
                )));
            }
        }
        for (i, point) in points.iter_mut().enumerate() {
            point.fold_scores = folds.iter().map(|fold| fold.points[i].score).collect();
            point.score = point.fold_scores.iter().sum::<f64>() / folds.len() as f64;
        }
        let best = best_of(&points);
        Ok(TuneResult { points, best })
    }
}

/// The index of the highest score (the first on ties, in grid order).
fn best_of(points: &[GridPoint]) -> usize {
    points
        .iter()
        .enumerate()
        .fold(0, |b, (i, p)| if p.score > points[b].score { i } else { b })
}

/// Training pairs as rows of two views: pair `i` is (`x[x_rows[i]]`, `y[y_rows[i]]`) (see
/// [`crate::fusion::CcaValidParams::fit_paired`]).
pub struct PairedViews {
    /// The image view: a matrix, or a reader that hands over its column blocks from disk.
    pub x: Box<dyn ColumnBlocks>,
    /// Row of `x` of each pair.
    pub x_rows: Vec<usize>,
    /// The text view.
    pub y: FeatureMatrix,
    /// Row of `y` of each pair.
    pub y_rows: Vec<usize>,
}

/// Runs the grid. `views(w)` returns the training pairs for block weights `w` (`None` when the
/// grid has none); `score(model, w, hubness)` returns the validation score (higher is better)
/// when ranking with the hubness correction `hubness` (the grid's `csls_k` points, then its
/// `inverted_softmax` points).
pub fn tune<V, S>(
    base: &CcaParams,
    grid: &TuneGrid,
    views: V,
    score: S,
) -> Result<TuneResult, FusionError>
where
    V: Fn(Option<&[f32]>) -> Result<PairedViews, String>,
    S: Fn(&FittedCca, Option<&[f32]>, Hubness) -> Result<f64, String>,
{
    for (name, empty) in [
        ("ridge_x", grid.ridge_x.is_empty()),
        ("ridge_y", grid.ridge_y.is_empty()),
        ("dims", grid.dims.is_empty()),
        ("eigen_power", grid.eigen_power.is_empty()),
    ] {
        if empty {
            return Err(FusionError::EmptyGrid(name));
        }
    }
    if let Some(&t) = grid
        .inverted_softmax
        .iter()
        .find(|&&t| !(t > 0.0 && t.is_finite()))
    {
        return Err(FusionError::InvalidParam {
            name: "inverted_softmax temperature",
            expected: "positive and finite",
            value: t.to_string(),
        });
    }
    // Each point's dims and power as CcaParams::check would take them (the grid truncates and
    // re-weights one fit rather than checking a CcaParams per point).
    if let Some(&d) = grid.dims.iter().find(|&&d| d == 0) {
        return Err(FusionError::InvalidParam {
            name: "dims",
            expected: "at least 1",
            value: d.to_string(),
        });
    }
    if let Some(&p) = grid
        .eigen_power
        .iter()
        .find(|&&p| !(p.is_finite() && (-8.0..=8.0).contains(&p)))
    {
        return Err(FusionError::InvalidParam {
            name: "eigen_power",
            expected: "in [-8, 8]",
            value: p.to_string(),
        });
    }
    let max_dims = *grid.dims.iter().max().unwrap_or(&1);
    let weight_sets: Vec<Option<usize>> = if grid.block_weights.is_empty() {
        vec![None]
    } else {
        (0..grid.block_weights.len()).map(Some).collect()
    };
    let pca_sizes = if grid.pca_dims.is_empty() {
        vec![base.pca_dims]
    } else {
        grid.pca_dims.clone()
    };
    let csls_sizes = if grid.csls_k.is_empty() {
        vec![0]
    } else {
        grid.csls_k.clone()
    };
    let rankings: Vec<Hubness> = csls_sizes
        .iter()
        .map(|&k| Hubness::csls(k))
        .chain(
            grid.inverted_softmax
                .iter()
                .map(|&t| Hubness::InvertedSoftmax(t)),
        )
        .collect();
    let mut points = Vec::new();
    for wi in weight_sets {
        let w = wi.map(|i| grid.block_weights[i].as_slice());
        let base = params_for_weights(base, w)?;
        let v = views(w).map_err(FusionError::Score)?;
        // The kernel maps do not depend on the grid's axes: fitted once per view set.
        let hidden = indicatif::ProgressBar::hidden();
        let mapped =
            base.clone()
                .check()?
                .map_pairs(v.x.as_ref(), &v.x_rows, &v.y, &v.y_rows, &hidden)?;
        for &k in &pca_sizes {
            for &rx in &grid.ridge_x {
                for &ry in &grid.ridge_y {
                    let full = CcaParams {
                        dims: max_dims,
                        pca_dims: k,
                        ..base.clone()
                    }
                    .ridge_x(rx)
                    .ridge_y(ry)
                    .check()?
                    .fit_mapped(&mapped, &hidden)?;
                    for &d in &grid.dims {
                        for &p in &grid.eigen_power {
                            let model = full.truncated(d).with_eigen_power(p);
                            for &h in &rankings {
                                let s = score(&model, w, h).map_err(FusionError::Score)?;
                                log::debug!(
                                    "tune: w {wi:?} pca {k} rx {rx} ry {ry} dims {d} p {p} {h} → {s:.4}"
                                );
                                let (csls_k, inverted_softmax_temperature) = h.options();
                                points.push(GridPoint {
                                    ridge_x: rx,
                                    ridge_y: ry,
                                    dims: d,
                                    eigen_power: p,
                                    pca_dims: k,
                                    block_weights: wi,
                                    csls_k,
                                    inverted_softmax_temperature,
                                    score: s,
                                    fold_scores: Vec::new(),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    let best = best_of(&points);
    Ok(TuneResult { points, best })
}

/// The base parameters for block weights `w`. With one kernel map per image block
/// (`kernel_x.block_widths`, one width per weight), a block of weight 0 is left out of the
/// views by the caller, so it is left out of the map's blocks too; the other weights leave the
/// widths as they are (each block is scaled to unit length after its own PCA, so its weight
/// does not reach the map).
fn params_for_weights(base: &CcaParams, w: Option<&[f32]>) -> Result<CcaParams, FusionError> {
    let widths = &base.kernel_x.block_widths;
    let w = match w {
        Some(w) if !widths.is_empty() => w,
        _ => return Ok(base.clone()),
    };
    if widths.len() != w.len() {
        return Err(FusionError::InvalidParam {
            name: "block weights",
            expected: "one weight per block of the image kernel map",
            value: format!("{} weights for {} blocks", w.len(), widths.len()),
        });
    }
    let kept: Vec<usize> = widths
        .iter()
        .zip(w)
        .filter(|(_, weight)| **weight != 0.0)
        .map(|(&width, _)| width)
        .collect();
    if kept.is_empty() {
        return Err(FusionError::InvalidParam {
            name: "block weights",
            expected: "at least one block weighted above 0",
            value: format!("{w:?}"),
        });
    }
    let mut params = base.clone();
    params.kernel_x.block_widths = kept;
    Ok(params)
}

/// Rows a scorer projects: a matrix in memory, or rows of a [`ColumnBlocks`] read
/// `rows_per_read` at a time and projected as they come, so that only their projections are
/// held whole. At the contest's size the validation images of a `tune` round are 10,006 rows of
/// 50,048 float32 (1.9 GiB); read this way, one read of 1,024 rows (0.2 GiB) is held at a time.
#[derive(Clone, Copy)]
pub enum ScoredRows<'a> {
    /// Every row, in memory, projected at once.
    Held(&'a FeatureMatrix),
    /// Rows read from `source` `rows_per_read` at a time.
    Read {
        /// The view the rows are read from.
        source: &'a dyn ColumnBlocks,
        /// Rows of `source`, in the order of the output.
        rows: &'a [usize],
        /// Rows read (and projected) at a time; 0 is taken as 1.
        rows_per_read: usize,
    },
}

impl ScoredRows<'_> {
    /// `project` applied to the rows; read rows are projected a read at a time and the outputs
    /// stacked. Each row's output depends on that row alone, so the result does not depend on
    /// how the rows are read.
    fn project(
        &self,
        project: impl Fn(&FeatureMatrix) -> Result<Array2<f32>, FusionError>,
    ) -> Result<Array2<f32>, FusionError> {
        let (source, rows, rows_per_read) = match *self {
            ScoredRows::Held(matrix) => return project(matrix),
            ScoredRows::Read {
                source,
                rows,
                rows_per_read,
            } => (source, rows, rows_per_read.max(1)),
        };
        if rows.len() <= rows_per_read {
            let block = source.block(rows, 0, source.n_cols())?;
            return project(&block);
        }
        let mut out: Option<Array2<f32>> = None;
        for (i, chunk) in rows.chunks(rows_per_read).enumerate() {
            let block = source.block(chunk, 0, source.n_cols())?;
            let part = project(&block)?;
            let out = out.get_or_insert_with(|| Array2::zeros((rows.len(), part.ncols())));
            let start = i * rows_per_read;
            out.slice_mut(s![start..start + chunk.len(), ..])
                .assign(&part);
        }
        Ok(out.expect("more than one read"))
    }
}

/// A scorer for [`tune`]: the mean of R@1, R@5, R@10 over both directions on validation data
/// (`val_images` one row per image, `val_texts` one row per caption, `text_image[t]` the image
/// row of caption `t`). CSLS takes its neighbourhoods from `references`, the training images
/// and captions, as `evaluate` does; the inverted softmax takes the validation queries as its
/// bank, as `evaluate` takes the test queries. A caller whose image rows change with the block
/// weights scores through [`MeanRecall`] instead.
pub fn mean_recall_scorer<'a>(
    val_images: ScoredRows<'a>,
    val_texts: &'a FeatureMatrix,
    text_image: &'a [usize],
    references: Option<(ScoredRows<'a>, &'a FeatureMatrix)>,
) -> impl Fn(&FittedCca, Option<&[f32]>, Hubness) -> Result<f64, String> + 'a {
    let (ref_images, ref_texts) = references.unzip();
    let scoring = MeanRecall::new(val_texts, text_image, ref_texts);
    move |model, _, hubness| scoring.score(model, None, hubness, val_images, ref_images)
}

/// The score of [`mean_recall_scorer`], with the image rows handed over at each call, so that a
/// caller can build them for each block weighting (and drop them at the next) while grid points
/// go on sharing their kernel maps: each matrix is mapped once per (weighting, map), not once
/// per point (the map, a PCA of up to 20,480 columns per image block, costs more than the CCA).
pub struct MeanRecall<'a> {
    val_texts: &'a FeatureMatrix,
    text_image: &'a [usize],
    ref_texts: Option<&'a FeatureMatrix>,
    /// Validation images, validation captions, reference images, reference captions.
    caches: [MapCache; 4],
}

impl<'a> MeanRecall<'a> {
    /// Scores against the captions `val_texts` (`text_image[t]` the image row of caption `t`),
    /// with `ref_texts` the training captions CSLS takes its neighbourhoods from.
    pub fn new(
        val_texts: &'a FeatureMatrix,
        text_image: &'a [usize],
        ref_texts: Option<&'a FeatureMatrix>,
    ) -> Self {
        Self {
            val_texts,
            text_image,
            ref_texts,
            caches: Default::default(),
        }
    }

    /// The mean recall of `model` on the validation images `val_images` (one row per image),
    /// built with the block weights `weights`, CSLS taking its image neighbourhoods from
    /// `ref_images`. An image matrix mapped earlier is reused only for the same weights and the
    /// same kernel map.
    pub fn score(
        &self,
        model: &FittedCca,
        weights: Option<&[f32]>,
        hubness: Hubness,
        val_images: ScoredRows,
        ref_images: Option<ScoredRows>,
    ) -> Result<f64, String> {
        let [val_x, val_y, ref_x, ref_y] = &self.caches;
        let xi = val_x.transform_x(model, weights, val_images)?;
        let yt = val_y.transform_y(model, self.val_texts)?;
        // CSLS ranks against the training items, mapped by this model; the other corrections
        // need none (without references, CSLS is refused by `Hubness::penalties`).
        let mapped_references = match (hubness, ref_images, self.ref_texts) {
            (Hubness::Csls(_), Some(ref_images), Some(ref_texts)) => Some((
                ref_x.transform_x(model, weights, ref_images)?,
                ref_y.transform_y(model, ref_texts)?,
            )),
            _ => None,
        };
        let views = mapped_references
            .as_ref()
            .map(|(ri, rt)| (ri.view(), rt.view()));
        let penalties = |q: &Array2<f32>, g: &Array2<f32>, refs| {
            hubness
                .penalties(&q.view(), &g.view(), refs)
                .map_err(|e| e.to_string())
        };
        let csls_t2i = penalties(&yt, &xi, views.as_ref().map(|(ri, rt)| (rt, ri)))?;
        let csls_i2t = penalties(&xi, &yt, views.as_ref().map(|(ri, rt)| (ri, rt)))?;
        let options = EvalOptions {
            csls_text_to_image: csls_t2i.as_ref(),
            csls_image_to_text: csls_i2t.as_ref(),
            ..EvalOptions::default()
        };
        let e = evaluate(&xi.view(), &yt.view(), self.text_image, &options)
            .map_err(|e| e.to_string())?;
        let sum: f64 = [&e.text_to_image, &e.image_to_text]
            .iter()
            .flat_map(|d| [1, 5, 10].map(|k| d.recall.get(&k).copied().unwrap_or(0.0)))
            .sum();
        Ok(sum / 6.0)
    }
}

/// The last (block weights, kernel map) one matrix went through, with its output. The weights
/// say which image rows went in: the rows of one weighting are not those of another, even where
/// the two maps came out equal.
#[derive(Default)]
struct MapCache(RefCell<Option<MappedRows>>);

/// A [`MapCache`] entry: the weights and map, and the mapped rows.
type MappedRows = ((Option<Vec<f32>>, FittedKernelMap), Rc<FeatureMatrix>);

impl MapCache {
    /// `model.transform_x(x)`, `x` built with block weights `weights`; the kernel map applied
    /// only when the weights or the map differ from the last ones.
    fn transform_x(
        &self,
        model: &FittedCca,
        weights: Option<&[f32]>,
        x: ScoredRows,
    ) -> Result<Array2<f32>, String> {
        match model.kernel_x() {
            None => x.project(|x| model.transform_x(x)),
            Some(map) => self
                .mapped(weights, map, x, "x")
                .and_then(|mapped| model.transform_mapped_x(&mapped)),
        }
        .map_err(|e| e.to_string())
    }

    /// `model.transform_y(y)`, the same way (captions have no block weights).
    fn transform_y(&self, model: &FittedCca, y: &FeatureMatrix) -> Result<Array2<f32>, String> {
        match model.kernel_y() {
            None => model.transform_y(y),
            Some(map) => self
                .mapped(None, map, ScoredRows::Held(y), "y")
                .and_then(|mapped| model.transform_mapped_y(&mapped)),
        }
        .map_err(|e| e.to_string())
    }

    fn mapped(
        &self,
        weights: Option<&[f32]>,
        map: &FittedKernelMap,
        x: ScoredRows,
        view: &'static str,
    ) -> Result<Rc<FeatureMatrix>, FusionError> {
        let mut cache = self.0.borrow_mut();
        if let Some(((cached_weights, cached_map), out)) = cache.as_ref()
            && cached_weights.as_deref() == weights
            && cached_map == map
        {
            return Ok(Rc::clone(out));
        }
        // The last output is let go before the next is built.
        *cache = None;
        let out = Rc::new(FeatureMatrix::Dense(x.project(|x| map.transform(x, view))?));
        *cache = Some(((weights.map(<[f32]>::to_vec), map.clone()), Rc::clone(&out)));
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::ops::gaussian;
    use ndarray::Array2;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    /// Training and validation views of `n_train` and `n_val` pairs sharing 3 latent factors,
    /// the x view squashed by tanh (so not linear in them).
    fn tanh_views(seed: u64, n_train: usize, n_val: usize) -> [(Array2<f32>, Array2<f32>); 2] {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mx = gaussian(3, 8, &mut rng);
        let my = gaussian(3, 6, &mut rng);
        [n_train, n_val].map(|n| {
            let z = gaussian(n, 3, &mut rng);
            let x = (z.dot(&mx) + gaussian(n, 8, &mut rng) * 0.5).mapv(f32::tanh);
            let y = z.dot(&my) + gaussian(n, 6, &mut rng) * 0.5;
            (x, y)
        })
    }

    /// Every row of `x` paired with the same row of `y`, for [`tune`]'s `views`.
    fn row_pairs(
        x: &FeatureMatrix,
        y: &FeatureMatrix,
    ) -> impl Fn(Option<&[f32]>) -> Result<PairedViews, String> {
        move |_| {
            let rows: Vec<usize> = (0..x.n_rows()).collect();
            Ok(PairedViews {
                x: Box::new(x.clone()),
                x_rows: rows.clone(),
                y: y.clone(),
                y_rows: rows,
            })
        }
    }

    #[test]
    fn kernel_grid_scores_equal_one_fit_and_one_scorer_per_point() {
        // The grid maps the views once and its scorer maps each matrix once per map: every
        // point must score what a model fitted on its own, scored afresh, scores.
        let [(tx, ty), (vx, vy)] =
            tanh_views(8, 300, 80).map(|(x, y)| (FeatureMatrix::Dense(x), FeatureMatrix::Dense(y)));
        let text_image: Vec<usize> = (0..80).collect();
        let base = CcaParams {
            kernel_x: crate::fusion::KernelMapParams {
                landmarks: 60,
                input_dims: 4,
                ..Default::default()
            },
            kernel_y: crate::fusion::KernelMapParams {
                landmarks: 60,
                input_dims: 4,
                block_widths: vec![3, 3],
                ..Default::default()
            },
            ..CcaParams::new(4)
        };
        let grid = TuneGrid {
            ridge_x: vec![0.1, 1.0],
            ridge_y: vec![0.1, 1.0],
            dims: vec![2, 4],
            eigen_power: vec![1.0],
            pca_dims: Vec::new(),
            block_weights: Vec::new(),
            csls_k: vec![0, 3],
            inverted_softmax: vec![0.1],
        };
        let rows: Vec<usize> = (0..300).collect();
        let views = row_pairs(&tx, &ty);
        let scorer = mean_recall_scorer(
            ScoredRows::Held(&vx),
            &vy,
            &text_image,
            Some((ScoredRows::Held(&tx), &ty)),
        );
        let res = tune(&base, &grid, views, &scorer).unwrap();
        assert_eq!(res.points.len(), 24);
        assert!(
            res.points.iter().any(|p| p.score != res.points[0].score),
            "the points must differ for the check to mean anything: {res:?}"
        );
        for point in &res.points {
            let alone = CcaParams {
                dims: 4,
                ..base.clone()
            }
            .ridge_x(point.ridge_x)
            .ridge_y(point.ridge_y)
            .check()
            .unwrap()
            .fit_paired(&tx, &rows, &ty, &rows, &indicatif::ProgressBar::hidden())
            .unwrap()
            .truncated(point.dims)
            .with_eigen_power(point.eigen_power);
            let fresh = mean_recall_scorer(
                ScoredRows::Held(&vx),
                &vy,
                &text_image,
                Some((ScoredRows::Held(&tx), &ty)),
            );
            assert_eq!(
                fresh(&alone, None, point.hubness()).unwrap(),
                point.score,
                "{point:?}"
            );
        }
    }

    #[test]
    fn a_block_weighted_0_leaves_the_per_block_kernel_map() {
        // x has two blocks of 4 columns, each with its own kernel map. The views hook leaves a
        // block of weight 0 out of the matrices, as `tune`'s stage does: the map must then
        // have only the other block, and score what a model fitted on that block alone scores.
        let [(tx, ty), (vx, vy)] = tanh_views(5, 240, 60);
        let keep = |m: &Array2<f32>, w: Option<&[f32]>| -> FeatureMatrix {
            let w = w.unwrap_or(&[1.0, 1.0]);
            let cols: Vec<usize> = (0..8).filter(|&c| w[c / 4] != 0.0).collect();
            FeatureMatrix::Dense(m.select(ndarray::Axis(1), &cols))
        };
        let ty = FeatureMatrix::Dense(ty);
        let vy = FeatureMatrix::Dense(vy);
        let text_image: Vec<usize> = (0..60).collect();
        let rows: Vec<usize> = (0..240).collect();
        let base = CcaParams {
            kernel_x: crate::fusion::KernelMapParams {
                landmarks: 60,
                input_dims: 3,
                block_widths: vec![4, 4],
                ..Default::default()
            },
            ..CcaParams::new(3)
        };
        let grid = TuneGrid {
            ridge_x: vec![0.3],
            ridge_y: vec![0.3],
            dims: vec![3],
            eigen_power: vec![1.0],
            pca_dims: Vec::new(),
            block_weights: vec![vec![1.0, 1.0], vec![0.0, 1.0], vec![1.0, 0.0]],
            csls_k: Vec::new(),
            inverted_softmax: Vec::new(),
        };
        let views = |w: Option<&[f32]>| {
            Ok(PairedViews {
                x: Box::new(keep(&tx, w)),
                x_rows: rows.clone(),
                y: ty.clone(),
                y_rows: rows.clone(),
            })
        };
        let score = |m: &FittedCca, w: Option<&[f32]>, h: Hubness| {
            let val = keep(&vx, w);
            mean_recall_scorer(ScoredRows::Held(&val), &vy, &text_image, None)(m, w, h)
        };
        let res = tune(&base, &grid, views, score).unwrap();
        assert_eq!(res.points.len(), 3);
        for (point, w) in res.points.iter().zip(&grid.block_weights) {
            let widths: Vec<usize> = w.iter().filter(|&&w| w != 0.0).map(|_| 4).collect();
            let alone = CcaParams {
                kernel_x: crate::fusion::KernelMapParams {
                    block_widths: widths,
                    ..base.kernel_x.clone()
                },
                ..base.clone()
            }
            .ridge_x(0.3)
            .ridge_y(0.3)
            .check()
            .unwrap()
            .fit_paired(
                &keep(&tx, Some(w)),
                &rows,
                &ty,
                &rows,
                &indicatif::ProgressBar::hidden(),
            )
            .unwrap()
            .with_eigen_power(1.0);
            assert_eq!(
                score(&alone, Some(w), Hubness::None).unwrap(),
                point.score,
                "{w:?}"
            );
        }
        assert_ne!(res.points[1].score, res.points[2].score, "{res:?}");
        for (weights, wanted) in [
            (vec![vec![1.0, 1.0, 1.0]], "3 weights for 2 blocks"),
            (vec![vec![0.0, 0.0]], "at least one block weighted above 0"),
        ] {
            let bad = TuneGrid {
                block_weights: weights,
                ..grid.clone()
            };
            let err = tune(&base, &bad, views, score).unwrap_err().to_string();
            assert!(err.contains(wanted), "{err}");
        }
    }

    #[test]
    fn a_shared_scorer_maps_the_rows_of_each_weighting_anew() {
        // `tune`'s stage hands one `MeanRecall` the image rows of each block weighting in turn.
        // Under one model, so one kernel map, the rows of weighting [1, 0] (the second block's
        // columns zeroed) must not be scored as the mapped rows of [1, 1]: every call must score
        // what a fresh scorer scores.
        let [(tx, ty), (vx, vy)] = tanh_views(8, 200, 50);
        let rows: Vec<usize> = (0..200).collect();
        let model = CcaParams {
            kernel_x: crate::fusion::KernelMapParams {
                landmarks: 50,
                input_dims: 4,
                ..Default::default()
            },
            ..CcaParams::new(3)
        }
        .ridge_x(0.3)
        .ridge_y(0.3)
        .check()
        .unwrap()
        .fit_paired(
            &FeatureMatrix::Dense(tx),
            &rows,
            &FeatureMatrix::Dense(ty),
            &rows,
            &indicatif::ProgressBar::hidden(),
        )
        .unwrap();
        let mut first_block_only = vx.clone();
        first_block_only.slice_mut(s![.., 4..]).fill(0.0);
        let vy = FeatureMatrix::Dense(vy);
        let text_image: Vec<usize> = (0..50).collect();
        let shared = MeanRecall::new(&vy, &text_image, None);
        let weightings = [
            (vec![1.0, 1.0], FeatureMatrix::Dense(vx)),
            (vec![1.0, 0.0], FeatureMatrix::Dense(first_block_only)),
        ];
        let mut scores = Vec::new();
        for (weights, images) in weightings.iter().chain(&weightings) {
            let got = shared
                .score(
                    &model,
                    Some(weights),
                    Hubness::None,
                    ScoredRows::Held(images),
                    None,
                )
                .unwrap();
            let fresh = mean_recall_scorer(ScoredRows::Held(images), &vy, &text_image, None)(
                &model,
                None,
                Hubness::None,
            )
            .unwrap();
            assert_eq!(got, fresh, "{weights:?}");
            scores.push(got);
        }
        assert_ne!(
            scores[0], scores[1],
            "the weightings must score apart: {scores:?}"
        );
    }

    #[test]
    fn rows_read_a_block_at_a_time_score_as_rows_held() {
        // The validation and reference images read from a larger matrix, out of order and a
        // few rows at a time, must give every grid point the score it gets from the matrices
        // themselves, with kernel maps and without.
        let [(tx, ty), (vx, vy)] = tanh_views(21, 200, 50);
        let (ty, vy) = (FeatureMatrix::Dense(ty), FeatureMatrix::Dense(vy));
        // The source: the validation rows upside down, then the training rows.
        let source = FeatureMatrix::Dense(
            ndarray::concatenate(ndarray::Axis(0), &[vx.slice(s![..;-1, ..]), tx.view()]).unwrap(),
        );
        let val_rows: Vec<usize> = (0..50).rev().collect();
        let ref_rows: Vec<usize> = (50..250).collect();
        let (tx, vx) = (FeatureMatrix::Dense(tx), FeatureMatrix::Dense(vx));
        let text_image: Vec<usize> = (0..50).collect();
        let grid = TuneGrid {
            ridge_x: vec![0.1, 1.0],
            ridge_y: vec![0.1],
            dims: vec![2, 4],
            eigen_power: vec![1.0],
            pca_dims: Vec::new(),
            block_weights: Vec::new(),
            csls_k: vec![0, 3],
            inverted_softmax: vec![0.1],
        };
        let kernel = crate::fusion::KernelMapParams {
            landmarks: 40,
            input_dims: 4,
            ..Default::default()
        };
        for base in [
            CcaParams::new(4),
            CcaParams {
                kernel_x: kernel.clone(),
                kernel_y: kernel,
                ..CcaParams::new(4)
            },
        ] {
            let views = row_pairs(&tx, &ty);
            let held = mean_recall_scorer(
                ScoredRows::Held(&vx),
                &vy,
                &text_image,
                Some((ScoredRows::Held(&tx), &ty)),
            );
            let held = tune(&base, &grid, &views, &held).unwrap();
            assert!(
                held.points.iter().any(|p| p.score != held.points[0].score),
                "the points must differ for the check to mean anything: {held:?}"
            );
            for rows_per_read in [1, 7, 50, 64] {
                let read = |rows| ScoredRows::Read {
                    source: &source,
                    rows,
                    rows_per_read,
                };
                let scorer = mean_recall_scorer(
                    read(&val_rows),
                    &vy,
                    &text_image,
                    Some((read(&ref_rows), &ty)),
                );
                let read = tune(&base, &grid, &views, &scorer).unwrap();
                let scores = |r: &TuneResult| r.points.iter().map(|p| p.score).collect::<Vec<_>>();
                assert_eq!(
                    scores(&read),
                    scores(&held),
                    "{rows_per_read} rows per read, kernel maps: {}",
                    base.kernel_x.landmarks > 0
                );
            }
        }
    }

    #[test]
    fn grid_covers_every_point_and_picks_the_best() {
        // Views sharing 3 latent factors; validation = fresh draws of the same model.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mx = gaussian(3, 8, &mut rng);
        let my = gaussian(3, 6, &mut rng);
        let mut draw = |n: usize| {
            let z = gaussian(n, 3, &mut rng);
            let x = z.dot(&mx) + gaussian(n, 8, &mut rng) * 0.5;
            let y = z.dot(&my) + gaussian(n, 6, &mut rng) * 0.5;
            (x, y)
        };
        let (tx, ty) = draw(600);
        let (vx, vy): (Array2<f32>, Array2<f32>) = draw(100);
        let (vx, vy) = (FeatureMatrix::Dense(vx), FeatureMatrix::Dense(vy));
        let text_image: Vec<usize> = (0..100).collect();
        let grid = TuneGrid {
            ridge_x: vec![0.01, 1000.0],
            ridge_y: vec![0.01],
            dims: vec![1, 3],
            eigen_power: vec![0.0, 1.0],
            pca_dims: Vec::new(),
            block_weights: vec![vec![1.0], vec![0.0]],
            csls_k: vec![0, 5],
            inverted_softmax: vec![0.05],
        };
        let views = |w: Option<&[f32]>| {
            // Weight 0 destroys the x view's signal (keeps a tiny constant-free noise).
            let s = w.map_or(1.0, |w| w[0]);
            Ok(PairedViews {
                x: Box::new(FeatureMatrix::Dense(
                    &tx * s + &(gaussian(600, 8, &mut ChaCha8Rng::seed_from_u64(9)) * (1.0 - s)),
                )),
                x_rows: (0..600).collect(),
                y: FeatureMatrix::Dense(ty.clone()),
                y_rows: (0..600).collect(),
            })
        };
        let (rx, ry) = (
            FeatureMatrix::Dense(tx.clone()),
            FeatureMatrix::Dense(ty.clone()),
        );
        let scorer = mean_recall_scorer(
            ScoredRows::Held(&vx),
            &vy,
            &text_image,
            Some((ScoredRows::Held(&rx), &ry)),
        );
        let score = |m: &FittedCca, w: Option<&[f32]>, c: Hubness| {
            if w == Some(&[0.0][..]) {
                Ok(0.0)
            } else {
                scorer(m, w, c)
            }
        };
        let res = tune(&CcaParams::new(3), &grid, views, score).unwrap();
        assert_eq!(res.points.len(), 2 * 2 * 2 * 2 * 3);
        // The ranking axis is innermost (cosine, CSLS, inverted softmax), and it changes the
        // ranking, hence (here) the score.
        let rankings: Vec<Hubness> = res.points[..3].iter().map(|p| p.hubness()).collect();
        assert_eq!(
            rankings,
            [
                Hubness::None,
                Hubness::Csls(5),
                Hubness::InvertedSoftmax(0.05)
            ]
        );
        assert!(
            res.points.chunks(3).any(|c| c[0].score != c[1].score),
            "{res:?}"
        );
        assert!(
            res.points.chunks(3).any(|c| c[0].score != c[2].score),
            "{res:?}"
        );
        let best = res.winner();
        assert!(res.points.iter().all(|p| p.score <= best.score));
        assert_eq!(best.block_weights, Some(0));
        assert_eq!(best.dims, 3, "{res:?}");
        assert!(best.score > 0.5, "{res:?}");
        let empty = TuneGrid {
            dims: vec![],
            ..grid
        };
        assert!(matches!(
            tune(
                &CcaParams::new(3),
                &empty,
                |_| Err("unused".into()),
                |_, _, _| Ok(0.0)
            ),
            Err(FusionError::EmptyGrid("dims"))
        ));
        let cold = TuneGrid {
            dims: vec![1],
            inverted_softmax: vec![0.1, -1.0],
            ..empty
        };
        let err = tune(
            &CcaParams::new(3),
            &cold,
            |_| Err("unused".into()),
            |_, _, _| Ok(0.0),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("temperature") && err.contains("got -1"),
            "{err}"
        );
        // Every grid value is checked, not only the largest dims and the base power.
        for (dims, powers, named) in [
            (vec![0, 4], vec![1.0], "dims"),
            (vec![4], vec![2.0, f64::NAN], "eigen_power"),
        ] {
            let grid = TuneGrid {
                dims,
                eigen_power: powers,
                inverted_softmax: vec![],
                ..cold.clone()
            };
            let err = tune(
                &CcaParams::new(3),
                &grid,
                |_| Err("unused".into()),
                |_, _, _| Ok(0.0),
            )
            .unwrap_err()
            .to_string();
            assert!(err.contains(named), "{err}");
        }
    }

    #[test]
    fn folds_average_point_by_point_and_the_mean_picks_the_winner() {
        let point = |dims: usize, score: f64| GridPoint {
            ridge_x: 0.1,
            ridge_y: 1.0,
            dims,
            eigen_power: 2.0,
            pca_dims: 512,
            block_weights: None,
            csls_k: 0,
            inverted_softmax_temperature: 0.0,
            score,
            fold_scores: Vec::new(),
        };
        // Fold 0 alone would pick dims 64; the mean over both folds picks 128.
        let folds = vec![
            TuneResult {
                points: vec![point(64, 0.30), point(128, 0.28)],
                best: 0,
            },
            TuneResult {
                points: vec![point(64, 0.10), point(128, 0.20)],
                best: 1,
            },
        ];
        let mean = TuneResult::mean_over_folds(folds.clone()).unwrap();
        assert_eq!(mean.best, 1);
        assert!((mean.points[0].score - 0.20).abs() < 1e-12);
        assert!((mean.points[1].score - 0.24).abs() < 1e-12);
        assert_eq!(mean.points[1].fold_scores, vec![0.28, 0.20]);
        let mut other_grid = folds;
        other_grid[1].points[0].dims = 32;
        let err = TuneResult::mean_over_folds(other_grid).unwrap_err();
        assert!(err.to_string().contains("fold 1"), "{err}");
        assert!(TuneResult::mean_over_folds(Vec::new()).is_err());
    }
}
