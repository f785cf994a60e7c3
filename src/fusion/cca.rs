//! Regularized linear canonical correlation analysis in closed form.
//!
//! Given paired views `X` (n x dx) and `Y` (n x dy) (the caller repeats an image's row once per
//! caption), CCA finds `A`, `B` maximising the correlation of `XA` and `YB` column by column
//! (Hotelling 1936). With centred data and covariances `Cxx`, `Cyy`, `Cxy`, the closed form is an
//! SVD of the whitened cross-covariance `Wxᵀ Cxy Wy` with `Wxᵀ (Cxx + cx I) Wx = I`
//! (Hardoon, Szedmak and Shawe-Taylor, Neural Computation 16, 2004). Choices made here:
//! - ridge relative to the scale of each view: `Cxx + r · tr(Cxx)/dx · I`, so one `r` suits
//!   histograms and TF-IDF alike (an absolute ridge of 0.1 over-regularised our views 10–20x);
//! - per-view PCA pre-reduction (see [`super::pca`]) when `d > pca_dims`: the ridge keeps its
//!   full-space meaning because `Vᵀ(C + cI)V = VᵀCV + cI` for orthonormal `V`; when `d` exceeds
//!   `n` this is also what replaces the dual (kernel) form, as at most `n - 1` directions carry
//!   variance;
//! - whitening by a symmetric eigendecomposition of the (reduced) covariance, dropping directions
//!   whose regularized variance is below `1e-10` of the largest (rank-deficient views, `r = 0`);
//! - each canonical pair's sign (arbitrary in an SVD, and chosen differently by different
//!   BLAS kernels) is fixed by its training variates: the sign under which their third moment
//!   is positive, so saved projections compare across machines;
//! - the projected dimensions are weighted by `σᵢ^p`, the canonical correlations to the power
//!   `p` (Gong et al., IJCV 2014, eq. 6; `p = 0` is plain CCA);
//! - optionally (`topics = K`, off by default), Gong et al.'s third view built without
//!   supervision (ibid.: clusters of the text as "topics"): the captions are clustered into `K`
//!   topics by spherical k-means on their reduced rows, and the clusters' indicators join the
//!   CCA as a third view. The three whitened views' block matrix of cross-covariances is then
//!   eigendecomposed, as in their three-view CCA, instead of the SVD of one cross-covariance;
//!   the image and text parts of each eigenvector become the projections (each scaled to unit
//!   variance), and the eigenvalues take the place of the correlations in the weighting
//!   `σᵢ^p`. Unlike Gong et al.'s, they are taken without the identity their generalised form
//!   adds, and divided by the largest they can reach, so that they lie in [0, 1] and become
//!   the two-view correlations as the topic view fades. `topic_weight = w` scales the topic
//!   view's cross-covariances (`ρxy + w (ρxz + ρyz)`; `w = 1` is Gong et al.'s sum).
//!
//! `CcaParams::new(dims).ridge_x(r).ridge_y(r).eigen_power(p)` → `.check()?` → `.fit(&x, &y)?`
//! → [`FittedCca`] with `transform_x`, `transform_y` (canonical coordinates), `embed_x`,
//! `embed_y` (the same, rows scaled to unit length, as they are ranked), `correlations`,
//! `save`/`load` (a folder of `.npy` files, [`super::saved`]), `to_arrays`/`from_arrays` (the
//! arrays themselves).

use std::borrow::Cow;

use indicatif::ProgressBar;
use ndarray::{Array1, Array2, Axis, s};
use ndarray_linalg::{Eigh, JobSvd, SVDDC, UPLO};
use serde::{Deserialize, Serialize};

use super::kernel_map::{
    BlockWeighting, FittedKernelMap, GaussianMap, KernelMapParams, KernelMapValidParams,
    centred_alignment,
};
use super::ops::{self, Centred, ViewName};
use super::pca::{self, PcaMethod, PcaParams};
use super::{ColumnBlocks, FusionError};
use crate::matrix::FeatureMatrix;

/// Hyper-parameters of [`FittedCca`] (unchecked). Deserializable from a pipeline TOML section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CcaParams {
    /// Output dimensions (clamped to the rank available after whitening).
    pub dims: usize,
    /// Relative ridge `r` of view x: `Cxx + r · tr(Cxx)/dx · I`.
    pub ridge_x: f64,
    /// Relative ridge of view y.
    pub ridge_y: f64,
    /// Power `p` of the eigenvalue weighting `σ^p` of projected dimensions (0 = none).
    pub eigen_power: f64,
    /// A view with more columns than this is first reduced by PCA to this many.
    pub pca_dims: usize,
    /// PCA solver for the pre-reduction.
    pub pca_method: PcaMethod,
    /// Largest `d` reduced by exact PCA under [`PcaMethod::Auto`].
    pub pca_exact_max: usize,
    /// Power iterations of the randomized PCA.
    pub power_iters: usize,
    /// Oversampling of the randomized PCA.
    pub oversample: usize,
    /// Seed of the randomized PCA.
    pub seed: u64,
    /// Gaussian-kernel map of the image view before the CCA ([`super::kernel_map`]; off by
    /// default: `landmarks = 0`).
    pub kernel_x: KernelMapParams,
    /// Gaussian-kernel map of the text view before the CCA.
    pub kernel_y: KernelMapParams,
    /// Clusters of the captions that join the CCA as a third view (Gong et al. 2014); 0 is
    /// off (two-view CCA), else at least 2. The topic view's ridge is `ridge_y`.
    #[serde(skip_serializing_if = "is_zero")]
    pub topics: usize,
    /// Weight `w` of the topic view's cross-covariances in the three-view objective
    /// `ρxy + w (ρxz + ρyz)`: 1 is Gong et al.'s sum; towards 0, two-view CCA.
    #[serde(skip_serializing_if = "is_one")]
    pub topic_weight: f64,
}

/// Off by default, and then left out of manifests (older work folders stay fresh).
fn is_zero(v: &usize) -> bool {
    *v == 0
}

/// The default, left out of manifests.
fn is_one(v: &f64) -> bool {
    *v == 1.0
}

impl Default for CcaParams {
    fn default() -> Self {
        Self {
            dims: 256,
            ridge_x: 0.1,
            ridge_y: 0.1,
            eigen_power: 1.0,
            pca_dims: 512,
            pca_method: PcaMethod::Auto,
            pca_exact_max: 2048,
            power_iters: 2,
            oversample: 64,
            seed: 0,
            kernel_x: KernelMapParams::default(),
            kernel_y: KernelMapParams::default(),
            topics: 0,
            topic_weight: 1.0,
        }
    }
}

impl CcaParams {
    /// The defaults, with `dims` output dimensions.
    pub fn new(dims: usize) -> Self {
        Self {
            dims,
            ..Self::default()
        }
    }
    /// Sets [`Self::ridge_x`], the image view's relative ridge.
    pub fn ridge_x(mut self, r: f64) -> Self {
        self.ridge_x = r;
        self
    }
    /// Sets [`Self::ridge_y`], the text view's relative ridge.
    pub fn ridge_y(mut self, r: f64) -> Self {
        self.ridge_y = r;
        self
    }
    /// Sets both ridges.
    pub fn ridge(self, r: f64) -> Self {
        self.ridge_x(r).ridge_y(r)
    }
    /// Sets [`Self::eigen_power`], the power `p` of the weighting `σ^p`.
    pub fn eigen_power(mut self, p: f64) -> Self {
        self.eigen_power = p;
        self
    }
    /// Sets [`Self::pca_dims`]: wider views are first reduced to `k` columns by PCA.
    pub fn pca_dims(mut self, k: usize) -> Self {
        self.pca_dims = k;
        self
    }
    /// Sets [`Self::pca_method`].
    pub fn pca_method(mut self, m: PcaMethod) -> Self {
        self.pca_method = m;
        self
    }
    /// Sets [`Self::pca_exact_max`].
    pub fn pca_exact_max(mut self, d: usize) -> Self {
        self.pca_exact_max = d;
        self
    }
    /// Sets [`Self::power_iters`] of the randomized PCA.
    pub fn power_iters(mut self, q: usize) -> Self {
        self.power_iters = q;
        self
    }
    /// Sets [`Self::oversample`] of the randomized PCA.
    pub fn oversample(mut self, p: usize) -> Self {
        self.oversample = p;
        self
    }
    /// Sets [`Self::seed`] of the randomized PCA.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Clusters of the captions as a third view (0 = off).
    pub fn topics(mut self, k: usize) -> Self {
        self.topics = k;
        self
    }
    /// Weight of the topic view in the three-view objective.
    pub fn topic_weight(mut self, w: f64) -> Self {
        self.topic_weight = w;
        self
    }

    /// Checks every value (and the kernel maps' parameters); errors name the value.
    pub fn check(self) -> Result<CcaValidParams, FusionError> {
        let bad = |name, value: String, expected| {
            Err(FusionError::InvalidParam {
                name,
                value,
                expected,
            })
        };
        if self.dims == 0 {
            return bad("CCA dims", "0".into(), ">= 1");
        }
        for (name, r) in [("ridge_x", self.ridge_x), ("ridge_y", self.ridge_y)] {
            if !(r.is_finite() && r >= 0.0) {
                return bad(name, r.to_string(), "finite and >= 0");
            }
        }
        if !(self.eigen_power.is_finite() && (-8.0..=8.0).contains(&self.eigen_power)) {
            return bad("eigen_power", self.eigen_power.to_string(), "in [-8, 8]");
        }
        if self.pca_dims == 0 {
            return bad("pca_dims", "0".into(), ">= 1");
        }
        if self.topics == 1 {
            return bad("topics", "1".into(), "0 (off) or >= 2");
        }
        if !(self.topic_weight.is_finite() && self.topic_weight > 0.0) {
            return bad(
                "topic_weight",
                self.topic_weight.to_string(),
                "finite and > 0",
            );
        }
        PcaParams::new(self.pca_dims)
            .power_iters(self.power_iters)
            .check()?;
        let kernel_x = self.kernel_x.clone().check("kernel_x")?;
        let kernel_y = self.kernel_y.clone().check("kernel_y")?;
        Ok(CcaValidParams {
            params: self,
            kernel_x,
            kernel_y,
        })
    }
}

/// Checked [`CcaParams`]; only this type can fit.
#[derive(Debug, Clone, PartialEq)]
pub struct CcaValidParams {
    params: CcaParams,
    /// `params.kernel_x`, checked.
    kernel_x: KernelMapValidParams,
    /// `params.kernel_y`, checked.
    kernel_y: KernelMapValidParams,
}

/// A fitted CCA. Transforms map a view to `(X - 1μᵀ) A · diag(σ^p)`.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedCca {
    mean_x: Array1<f32>,
    mean_y: Array1<f32>,
    proj_x: Array2<f32>,
    proj_y: Array2<f32>,
    correlations: Array1<f32>,
    eigen_power: f64,
    kernel_x: Option<FittedKernelMap>,
    kernel_y: Option<FittedKernelMap>,
}

/// The arrays of a [`FittedCca`], to rebuild it with [`FittedCca::from_arrays`]; a kernel map is
/// rebuilt from its [`GaussianMap`] blocks' fields with [`GaussianMap::from_parts`] and
/// [`FittedKernelMap::from_blocks`]. To save a model to disk and load it back,
/// [`FittedCca::save`] and [`FittedCca::load`] do all of it.
#[derive(Debug, Clone, PartialEq)]
pub struct CcaArrays {
    /// Column means of the image view (of its kernel map's output, when it has one).
    pub mean_x: Array1<f32>,
    /// Column means of the text view (of its kernel map's output, when it has one).
    pub mean_y: Array1<f32>,
    /// `dx x k`, unweighted.
    pub proj_x: Array2<f32>,
    /// `dy x k`, unweighted.
    pub proj_y: Array2<f32>,
    /// `k` regularized canonical correlations, decreasing.
    pub correlations: Array1<f32>,
    /// The power `p` of the weighting `σ^p` applied by the transforms.
    pub eigen_power: f64,
    /// The image view's kernel map, when one was fitted (`proj_x` then starts from its output).
    pub kernel_x: Option<FittedKernelMap>,
    /// The text view's kernel map.
    pub kernel_y: Option<FittedKernelMap>,
}

/// One view reduced and whitened: `Z` (n x k) and the map `d x k'` from the raw centred view to
/// its whitened coordinates.
struct Whitened {
    scores: Array2<f32>,
    /// PCA basis (`d x k`) or `None` for the identity.
    basis: Option<Array2<f32>>,
    /// `k x k'` whitening of the reduced covariance.
    white: Array2<f64>,
    mean: Array1<f32>,
}

impl CcaValidParams {
    /// The checked parameters.
    pub fn params(&self) -> &CcaParams {
        &self.params
    }

    /// Fits on paired rows of `x` and `y`.
    pub fn fit(&self, x: &FeatureMatrix, y: &FeatureMatrix) -> Result<FittedCca, FusionError> {
        self.fit_with_progress(x, y, &ProgressBar::hidden())
    }

    /// Fits on pairs given as row indices into the views: pair `i` is
    /// (`x[x_rows[i]]`, `y[y_rows[i]]`). The same as [`Self::fit`] on the expanded matrices, but
    /// a dense view whose rows repeat (an image with five captions) is reduced by PCA on its
    /// distinct rows weighted by their multiplicity — the same covariance, so the same result,
    /// at a fraction of the cost and memory.
    ///
    /// A view with a kernel map is taken a column block at a time ([`ColumnBlocks`]), so one
    /// read from disk is never held whole; a view without a map is taken whole.
    pub fn fit_paired(
        &self,
        x: &dyn ColumnBlocks,
        x_rows: &[usize],
        y: &dyn ColumnBlocks,
        y_rows: &[usize],
        progress: &ProgressBar,
    ) -> Result<FittedCca, FusionError> {
        let mapped = self.map_pairs(x, x_rows, y, y_rows, progress)?;
        self.fit_mapped(&mapped, progress)
    }

    /// The first half of [`Self::fit_paired`]: each view's kernel map fitted on its training
    /// rows and applied (a view without a map is kept as it is). The maps depend only on the
    /// `kernel_x` / `kernel_y` parameters, so a grid over ridges, PCA sizes and dims maps the
    /// views once and calls [`Self::fit_mapped`] per grid point.
    pub fn map_pairs<'a>(
        &self,
        x: &'a dyn ColumnBlocks,
        x_rows: &[usize],
        y: &'a dyn ColumnBlocks,
        y_rows: &[usize],
        progress: &ProgressBar,
    ) -> Result<MappedPairs<'a>, FusionError> {
        if x_rows.len() != y_rows.len() {
            return Err(FusionError::RowMismatch {
                x: x_rows.len(),
                y: y_rows.len(),
            });
        }
        let n = x_rows.len();
        if n < 3 {
            return Err(FusionError::TooFewRows { rows: n, needed: 3 });
        }
        let mut fitted_x = fit_view(&self.kernel_x, x, x_rows, "x", progress)?;
        let mut fitted_y = fit_view(&self.kernel_y, y, y_rows, "y", progress)?;
        let aligned = |k: &KernelMapValidParams| {
            k.params().enabled() && k.params().block_weighting == BlockWeighting::Alignment
        };
        if aligned(&self.kernel_x) || aligned(&self.kernel_y) {
            let pairs = alignment_sample(n, self.kernel_x.params().seed);
            if aligned(&self.kernel_x) {
                align_blocks(&mut fitted_x, &fitted_y, "kernel_x", &pairs)?;
            }
            if aligned(&self.kernel_y) {
                align_blocks(&mut fitted_y, &fitted_x, "kernel_y", &pairs)?;
            }
        }
        Ok(MappedPairs {
            x: fitted_x.into_mapped(),
            y: fitted_y.into_mapped(),
            kernel_params: (
                self.kernel_x.params().clone(),
                self.kernel_y.params().clone(),
            ),
        })
    }

    /// The second half of [`Self::fit_paired`]: the CCA of views mapped by
    /// [`Self::map_pairs`] with the same kernel parameters (others are refused).
    pub fn fit_mapped(
        &self,
        mapped: &MappedPairs<'_>,
        progress: &ProgressBar,
    ) -> Result<FittedCca, FusionError> {
        let kernels = (
            self.kernel_x.params().clone(),
            self.kernel_y.params().clone(),
        );
        if kernels != mapped.kernel_params {
            return Err(FusionError::InvalidParam {
                name: "kernel_x / kernel_y",
                value: format!("{kernels:?}"),
                expected: "the kernel parameters the views were mapped with",
            });
        }
        let p = &self.params;
        let wx = whiten_paired(&mapped.x.view, &mapped.x.rows, "x", p.ridge_x, p, progress)?;
        progress.inc(1);
        let wy = whiten_paired(&mapped.y.view, &mapped.y.rows, "y", p.ridge_y, p, progress)?;
        progress.inc(1);
        let fitted = self.finish(wx, wy, mapped.x.rows.len(), progress)?;
        Ok(FittedCca {
            kernel_x: mapped.x.map.clone(),
            kernel_y: mapped.y.map.clone(),
            ..fitted
        })
    }

    /// As [`Self::fit`], ticking `progress` once per step (5 steps).
    pub fn fit_with_progress(
        &self,
        x: &FeatureMatrix,
        y: &FeatureMatrix,
        progress: &ProgressBar,
    ) -> Result<FittedCca, FusionError> {
        let p = &self.params;
        if x.n_rows() != y.n_rows() {
            return Err(FusionError::RowMismatch {
                x: x.n_rows(),
                y: y.n_rows(),
            });
        }
        let n = x.n_rows();
        if n < 3 {
            return Err(FusionError::TooFewRows { rows: n, needed: 3 });
        }
        ops::check_finite(x, "x")?;
        ops::check_finite(y, "y")?;
        if p.kernel_x.enabled() || p.kernel_y.enabled() {
            let rows: Vec<usize> = (0..n).collect();
            return self.fit_paired(x, &rows, y, &rows, progress);
        }
        let wx = whiten(x, "x", p.ridge_x, p, progress)?;
        progress.inc(1);
        let wy = whiten(y, "y", p.ridge_y, p, progress)?;
        progress.inc(1);
        self.finish(wx, wy, n, progress)
    }

    /// The SVD of the whitened cross-covariance (or, with topics, the eigendecomposition of
    /// the three views' block matrix) and the projections.
    fn finish(
        &self,
        wx: Whitened,
        wy: Whitened,
        n: usize,
        progress: &ProgressBar,
    ) -> Result<FittedCca, FusionError> {
        let p = &self.params;
        let (u, v, sigma) = if p.topics == 0 {
            two_view_directions(&wx, &wy, n)?
        } else {
            topic_view_directions(&wx, &wy, n, p)?
        };
        progress.inc(1);
        let k = p.dims.min(sigma.len());
        if k < p.dims {
            log::warn!(
                "CCA dims {} clamped to the {} available after whitening",
                p.dims,
                k
            );
        }
        let mut u = u.slice(s![.., ..k]).to_owned();
        let mut v = v.slice(s![.., ..k]).to_owned();
        orient_by_skew(&wx, &wy, &mut u, &mut v);
        let proj_x = full_projection(&wx, &u);
        let proj_y = full_projection(&wy, &v);
        progress.inc(1);
        let correlations = sigma.slice(s![..k]).mapv(|v| v.clamp(0.0, 1.0) as f32);
        progress.inc(1);
        Ok(FittedCca {
            mean_x: wx.mean,
            mean_y: wy.mean,
            proj_x,
            proj_y,
            correlations,
            eigen_power: p.eigen_power,
            kernel_x: None,
            kernel_y: None,
        })
    }
}

/// Directions in whitened coordinates (`U`, `V`, one column per canonical dimension) and
/// their weights, decreasing.
type Directions = (Array2<f64>, Array2<f64>, Array1<f64>);

/// The whitened cross-covariance `Waᵀ Cab Wb` of two views over the same `n` pairs.
fn whitened_cross(a: &Whitened, b: &Whitened, n: usize) -> Array2<f64> {
    let cab = ops::cross_gram(&a.scores.view(), &b.scores.view()) / (n - 1) as f64;
    a.white.t().dot(&cab).dot(&b.white)
}

/// Two-view CCA: the SVD of the whitened cross-covariance.
fn two_view_directions(wx: &Whitened, wy: &Whitened, n: usize) -> Result<Directions, FusionError> {
    let t = whitened_cross(wx, wy, n);
    let (u, sigma, vt) = t.svddc(JobSvd::Some).map_err(|e| {
        FusionError::Linalg(format!(
            "SVD of the {}x{} whitened cross-covariance: {e}",
            t.nrows(),
            t.ncols()
        ))
    })?;
    let u = u.ok_or_else(|| FusionError::Linalg("SVD returned no U".into()))?;
    let vt = vt.ok_or_else(|| FusionError::Linalg("SVD returned no Vᵀ".into()))?;
    Ok((u, vt.t().to_owned(), sigma))
}

/// Gong et al.'s three-view CCA with the captions' clusters as the third view: the top
/// eigenvectors of the whitened views' block matrix `[[0, Txy, wTxz], [Tyx, 0, wTyz], [wTzx,
/// wTzy, 0]]` (`w` the topic weight), their image and text parts scaled to unit length (unit
/// variance of each projected training variate, up to the ridge), and as weights the
/// eigenvalues over the largest they can reach, `(1 + √(1 + 8w²)) / 2` (the top eigenvalue of
/// `[[0, 1, w], [1, 0, w], [w, w, 0]]`; 2 at `w = 1`).
fn topic_view_directions(
    wx: &Whitened,
    wy: &Whitened,
    n: usize,
    p: &CcaParams,
) -> Result<Directions, FusionError> {
    let labels = caption_topics(&wy.scores, p.topics, p.seed)?;
    let wz = topic_view(&labels, p.topics, p.ridge_y)?;
    let (kx, ky, kz) = (wx.white.ncols(), wy.white.ncols(), wz.white.ncols());
    let mut block = Array2::<f64>::zeros((kx + ky + kz, kx + ky + kz));
    let (x, y, z) = (0..kx, kx..kx + ky, kx + ky..kx + ky + kz);
    let w = p.topic_weight;
    for (a, b, ra, rb, weight) in [
        (wx, wy, x.clone(), y.clone(), 1.0),
        (wx, &wz, x.clone(), z.clone(), w),
        (wy, &wz, y.clone(), z, w),
    ] {
        let t = whitened_cross(a, b, n) * weight;
        block.slice_mut(s![ra.clone(), rb.clone()]).assign(&t);
        block.slice_mut(s![rb, ra]).assign(&t.t());
    }
    let (values, vectors) = block.eigh(UPLO::Lower).map_err(|e| {
        FusionError::Linalg(format!(
            "eigh of the {0}x{0} three-view block matrix: {e}",
            block.nrows()
        ))
    })?;
    let k = kx.min(ky);
    let top: Vec<usize> = (0..values.len()).rev().take(k).collect();
    let unit_columns = |rows: std::ops::Range<usize>| {
        let mut m = vectors.slice(s![rows, ..]).select(Axis(1), &top);
        for mut col in m.columns_mut() {
            let norm = col.dot(&col).sqrt();
            if norm > 1e-12 {
                col /= norm;
            }
        }
        m
    };
    let largest = (1.0 + (1.0 + 8.0 * w * w).sqrt()) / 2.0;
    let weights = top.iter().map(|&i| values[i].max(0.0) / largest).collect();
    Ok((unit_columns(x), unit_columns(y), weights))
}

/// The topic of each pair's caption: spherical k-means (Lloyd, k-means++ seeded by `seed`)
/// on the caption's reduced row scaled to unit length.
fn caption_topics(scores: &Array2<f32>, k: usize, seed: u64) -> Result<Vec<usize>, FusionError> {
    let mut rows = scores.clone();
    crate::retrieval::l2_normalize_rows(&mut rows);
    let settings = crate::image::vocabulary::KMeansSettings {
        k,
        max_iter: 100,
        tol: 1e-6,
        init_sample: rows.nrows(),
        seed,
    };
    let (codebook, _) = crate::image::vocabulary::kmeans(rows.view(), &settings).map_err(|e| {
        FusionError::InvalidParam {
            name: "topics",
            value: format!("{k} ({e})"),
            expected: "at most the number of training captions",
        }
    })?;
    Ok(codebook
        .assign(rows.view())
        .into_iter()
        .map(|(c, _)| c)
        .collect())
}

/// The topic view: each pair's centred cluster indicator, whitened with the relative ridge
/// `ridge`.
fn topic_view(labels: &[usize], k: usize, ridge: f64) -> Result<Whitened, FusionError> {
    let n = labels.len();
    let mut share = Array1::<f32>::zeros(k);
    for &l in labels {
        share[l] += 1.0 / n as f32;
    }
    let mut scores = Array2::from_shape_fn((n, k), |(_, j)| -share[j]);
    for (i, &l) in labels.iter().enumerate() {
        scores[[i, l]] += 1.0;
    }
    let total = share.iter().map(|&q| (q * (1.0 - q)) as f64).sum::<f64>() * n as f64
        / (n - 1).max(1) as f64;
    whiten_scores(scores, None, share, total, k, "topics", ridge)
}

/// One view of the pairs, whitened by `whiten_paired`; when its kernel map is on, the map is
/// first fitted on the view's distinct training rows and the whitening runs on their images
/// under it (returned with the map).
/// Training pairs with each view passed through its kernel map (fitted here), ready for
/// [`CcaValidParams::fit_mapped`].
pub struct MappedPairs<'a> {
    x: MappedView<'a>,
    y: MappedView<'a>,
    kernel_params: (KernelMapParams, KernelMapParams),
}

/// One view of [`MappedPairs`]: the rows the pairs point to, and the map if there is one.
struct MappedView<'a> {
    /// With a map: its output on the distinct training rows; without: the view itself.
    view: Cow<'a, FeatureMatrix>,
    /// Each pair's row in `view`.
    rows: Vec<usize>,
    map: Option<FittedKernelMap>,
}

/// A view's kernel map fitted on the distinct rows of the pairs, its output not yet computed,
/// so that the blocks' weights can be set first; without a map, the view as it is.
struct FittedView<'a> {
    /// Each pair's row: among the distinct rows when there is a map, else in the view.
    rows: Vec<usize>,
    fitted: ViewOrMap<'a>,
}

enum ViewOrMap<'a> {
    /// No map: the view itself.
    View(Cow<'a, FeatureMatrix>),
    /// The map (every block's weight 1 until [`align_blocks`]) and each block's distinct
    /// training rows reduced.
    Map(FittedKernelMap, Vec<Array2<f32>>),
}

fn fit_view<'a>(
    kernel: &KernelMapValidParams,
    x: &'a dyn ColumnBlocks,
    rows: &[usize],
    view: ViewName,
    progress: &ProgressBar,
) -> Result<FittedView<'a>, FusionError> {
    if !kernel.params().enabled() {
        return Ok(FittedView {
            rows: rows.to_vec(),
            fitted: ViewOrMap::View(x.whole()?),
        });
    }
    let rows = DistinctRows::of(rows, x.n_rows(), view)?;
    // The map takes the distinct rows a column block at a time: a view that holds exactly
    // them, in order of first use (as `fit` hands over the image view), is not copied whole.
    let (map, reduced) = kernel.fit_reduced_rows(x, &rows.distinct, view, progress)?;
    Ok(FittedView {
        rows: rows.at,
        fitted: ViewOrMap::Map(map, reduced),
    })
}

impl<'a> FittedView<'a> {
    /// The map's output on the distinct training rows (with the blocks' weights as set).
    fn into_mapped(self) -> MappedView<'a> {
        match self.fitted {
            ViewOrMap::View(view) => MappedView {
                view,
                rows: self.rows,
                map: None,
            },
            ViewOrMap::Map(map, reduced) => MappedView {
                view: Cow::Owned(FeatureMatrix::Dense(map.values_of_reduced(&reduced))),
                rows: self.rows,
                map: Some(map),
            },
        }
    }

    /// The map and each block's reduced rows; `None` without a map.
    fn map(&self) -> Option<(&FittedKernelMap, &[Array2<f32>])> {
        match &self.fitted {
            ViewOrMap::View(_) => None,
            ViewOrMap::Map(map, reduced) => Some((map, reduced)),
        }
    }

    /// Each block of the map with its kernel (unweighted) between the rows of the pairs
    /// `pairs`, one block at a time; nothing without a map.
    fn block_grams<'s>(
        &'s self,
        pairs: &[usize],
    ) -> impl Iterator<Item = (&'s GaussianMap, Array2<f64>)> + 's {
        let rows: Vec<usize> = pairs.iter().map(|&p| self.rows[p]).collect();
        self.map()
            .into_iter()
            .flat_map(|(map, reduced)| map.blocks.iter().zip(reduced))
            .map(move |(block, z)| (block, block.gram_of_reduced(&z.select(Axis(0), &rows))))
    }

    /// The map's kernel (its blocks' weighted sum) between the rows of the pairs `pairs`;
    /// `None` without a map.
    fn gram(&self, pairs: &[usize]) -> Option<Array2<f64>> {
        self.block_grams(pairs)
            .map(|(block, gram)| gram * block.weight as f64)
            .reduce(|sum, g| sum + g)
    }
}

/// At most this many training pairs, drawn with the image view's kernel map's seed
/// (`kernel_x.seed`, for either view's weights), are used to compute the blocks' alignments
/// (`s x s` kernel matrices, one block at a time).
const ALIGNMENT_PAIRS: usize = 2000;

/// The pairs the alignments are computed on: all of them, or a seeded draw of
/// [`ALIGNMENT_PAIRS`], in increasing order.
fn alignment_sample(n: usize, seed: u64) -> Vec<usize> {
    use rand::SeedableRng;
    if n <= ALIGNMENT_PAIRS {
        return (0..n).collect();
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut pairs = rand::seq::index::sample(&mut rng, n, ALIGNMENT_PAIRS).into_vec();
    pairs.sort_unstable();
    pairs
}

/// `block_weighting = "alignment"`: weights the blocks of `view`'s map by the centred alignment
/// of each block's kernel with `other`'s kernel on the pairs `pairs`
/// ([`FittedKernelMap::set_alignment_weights`]). A map of one block is left as it is. With both
/// views weighted, the image view goes first, against the text kernel with its blocks equal;
/// the text view then aligns with the weighted image kernel.
fn align_blocks(
    view: &mut FittedView<'_>,
    other: &FittedView<'_>,
    name: &'static str,
    pairs: &[usize],
) -> Result<(), FusionError> {
    let blocks = view.map().map_or(0, |(map, _)| map.blocks.len());
    if blocks < 2 {
        return Ok(());
    }
    let target = other.gram(pairs).ok_or(FusionError::InvalidParam {
        name,
        value: "block_weighting = \"alignment\", and the other view has no kernel map".into(),
        expected: "a kernel map on the other view (its landmarks > 0)",
    })?;
    let alignments: Vec<f64> = view
        .block_grams(pairs)
        .map(|(_, gram)| centred_alignment(&gram, &target).unwrap_or(0.0))
        .collect();
    let ViewOrMap::Map(map, _) = &mut view.fitted else {
        unreachable!("a map of several blocks")
    };
    map.set_alignment_weights(&alignments);
    log::info!(
        "{name}: block alignments {:?}, weights {:?}",
        alignments
            .iter()
            .map(|a| format!("{a:.4}"))
            .collect::<Vec<_>>(),
        map.blocks
            .iter()
            .map(|b| format!("{:.3}", b.weight))
            .collect::<Vec<_>>()
    );
    Ok(())
}

/// The distinct values of `rows` in order of first use, and for each entry of `rows` its
/// position among them. The CCA takes a view's training rows in this order, so a caller that
/// hands over a matrix of exactly these rows (as `fit` does with the image view) spares the CCA
/// a copy of it.
pub fn first_use_order(rows: &[usize]) -> (Vec<usize>, Vec<usize>) {
    let mut position = std::collections::HashMap::new();
    let mut distinct = Vec::new();
    let at = rows
        .iter()
        .map(|&r| {
            *position.entry(r).or_insert_with(|| {
                distinct.push(r);
                distinct.len() - 1
            })
        })
        .collect();
    (distinct, at)
}

/// The distinct rows among pair rows, in first-seen order, with each pair's position among
/// them and each distinct row's multiplicity.
struct DistinctRows {
    distinct: Vec<usize>,
    at: Vec<usize>,
    weight: Vec<f64>,
}

impl DistinctRows {
    /// Checks every row is below `n_rows` (the view's height).
    fn of(rows: &[usize], n_rows: usize, view: ViewName) -> Result<Self, FusionError> {
        if let Some(&bad) = rows.iter().find(|&&r| r >= n_rows) {
            return Err(FusionError::RowOutOfRange {
                view,
                row: bad,
                rows: n_rows,
            });
        }
        let (distinct, at) = first_use_order(rows);
        let mut weight = vec![0.0f64; distinct.len()];
        for &i in &at {
            weight[i] += 1.0;
        }
        Ok(Self {
            distinct,
            at,
            weight,
        })
    }
}

/// The rows `rows` of a view, in that order (repeats included).
fn select_rows(x: &FeatureMatrix, rows: &[usize]) -> FeatureMatrix {
    match x {
        FeatureMatrix::Dense(m) => FeatureMatrix::Dense(m.select(Axis(0), rows)),
        FeatureMatrix::Sparse(m) => FeatureMatrix::Sparse(m.select_rows(rows)),
    }
}

fn pca_params(p: &CcaParams) -> PcaParams {
    PcaParams {
        components: p.pca_dims,
        method: p.pca_method,
        exact_max: p.pca_exact_max,
        power_iters: p.power_iters,
        oversample: p.oversample,
        seed: p.seed,
    }
}

fn whiten(
    x: &FeatureMatrix,
    view: ViewName,
    ridge: f64,
    p: &CcaParams,
    progress: &ProgressBar,
) -> Result<Whitened, FusionError> {
    let n = x.n_rows();
    let d = x.n_cols();
    let mean = ops::column_means(x);
    let centred = Centred::new(x, mean);
    let (scores, basis) = if d <= p.pca_dims {
        (centred.dense_centred_block(0, n), None)
    } else {
        let fitted = pca::fit_centred(&centred, &pca_params(p), progress)?;
        let scores = centred.dot(&fitted.components.view());
        (scores, Some(fitted.components))
    };
    let total = ops::total_variance(x, &centred.mean.view());
    whiten_scores(scores, basis, centred.mean, total, d, view, ridge)
}

/// [`whiten`] of the rows `rows` of `x` (with repeats), without expanding a dense view whose
/// rows repeat: its PCA runs on the distinct rows scaled by the square root of their
/// multiplicity, whose Gram matrix equals the expanded one's.
fn whiten_paired(
    x: &FeatureMatrix,
    rows: &[usize],
    view: ViewName,
    ridge: f64,
    p: &CcaParams,
    progress: &ProgressBar,
) -> Result<Whitened, FusionError> {
    let n = rows.len();
    let d = x.n_cols();
    let DistinctRows {
        distinct,
        at,
        weight,
    } = DistinctRows::of(rows, x.n_rows(), view)?;
    let repeats = distinct.len() < n;
    let (FeatureMatrix::Dense(dense), true, true) = (x, repeats, d > p.pca_dims) else {
        let expanded = select_rows(x, rows);
        ops::check_finite(&expanded, view)?;
        return whiten(&expanded, view, ridge, p, progress);
    };
    let mut weighted = dense.select(Axis(0), &distinct);
    ops::check_finite(&FeatureMatrix::Dense(weighted.clone()), view)?;
    // The mean over pairs: Σ w_i x_i / n.
    let mut mean64 = Array1::<f64>::zeros(d);
    for (row, &w) in weighted.rows().into_iter().zip(&weight) {
        for (m, &v) in mean64.iter_mut().zip(row.iter()) {
            *m += w * v as f64;
        }
    }
    let mean = mean64.mapv(|m| (m / n as f64) as f32);
    let mut sum_sq = 0f64;
    for (mut row, &w) in weighted.rows_mut().into_iter().zip(&weight) {
        let scale = w.sqrt() as f32;
        for (v, &mu) in row.iter_mut().zip(mean.iter()) {
            *v = (*v - mu) * scale;
            sum_sq += (*v as f64) * (*v as f64);
        }
    }
    let weighted = FeatureMatrix::Dense(weighted);
    let centred = Centred::new(&weighted, Array1::zeros(d));
    let fitted = pca::fit_centred(&centred, &pca_params(p), progress)?;
    let mut distinct_scores = centred.dot(&fitted.components.view());
    for (mut row, &w) in distinct_scores.rows_mut().into_iter().zip(&weight) {
        row /= w.sqrt() as f32;
    }
    let scores = distinct_scores.select(Axis(0), &at);
    let total = sum_sq / (n - 1).max(1) as f64;
    whiten_scores(scores, Some(fitted.components), mean, total, d, view, ridge)
}

/// The ridge-regularised whitening of reduced `scores` (n x k) whose full view has total
/// variance `total` over `d` columns.
fn whiten_scores(
    scores: Array2<f32>,
    basis: Option<Array2<f32>>,
    mean: Array1<f32>,
    total: f64,
    d: usize,
    view: ViewName,
    ridge: f64,
) -> Result<Whitened, FusionError> {
    let n = scores.nrows();
    // Ridge relative to the full covariance: r · tr(C)/d.
    let shift = ridge * total / d.max(1) as f64;
    let mut cov = ops::cross_gram(&scores.view(), &scores.view()) / (n - 1) as f64;
    for i in 0..cov.nrows() {
        cov[[i, i]] += shift;
    }
    let (values, vectors) = cov.eigh(UPLO::Lower).map_err(|e| {
        FusionError::Linalg(format!(
            "eigh of the {0}x{0} covariance of view {view}: {e}",
            cov.nrows()
        ))
    })?;
    let top = values.iter().cloned().fold(0.0f64, f64::max);
    if top <= 0.0 {
        return Err(FusionError::NoVariance { view });
    }
    let kept: Vec<usize> = (0..values.len())
        .rev()
        .filter(|&i| values[i] > 1e-10 * top)
        .collect();
    let mut white = vectors.select(Axis(1), &kept);
    for (mut col, &i) in white.columns_mut().into_iter().zip(&kept) {
        col /= values[i].sqrt();
    }
    Ok(Whitened {
        scores,
        basis,
        white,
        mean,
    })
}

/// Gives each canonical pair (column `j` of `U` and of `V`, flipped together, which leaves
/// every cross-view score unchanged) the sign under which its training variates lean positive:
/// `Σₜ (x̃ₜ·aⱼ)³ + (ỹₜ·bⱼ)³ ≥ 0` over the centred training pairs. An SVD or eigendecomposition
/// fixes a direction only up to its sign, and the sign it returns depends on the BLAS and
/// LAPACK kernels and on the internal bases (PCA, whitening) the fit went through. The variates
/// depend on neither, so the same data gives the same saved projections on any machine, up to
/// rounding, rather than up to a sign per column. (scikit-learn's `svd_flip` makes the largest
/// coefficient positive instead; that depends on how the features are scaled.) A pair whose
/// variates are symmetric, third moment zero to rounding, is the one case left to rounding.
fn orient_by_skew(wx: &Whitened, wy: &Whitened, u: &mut Array2<f64>, v: &mut Array2<f64>) {
    let third_moments = |w: &Whitened, dirs: &Array2<f64>| {
        ops::column_third_moments(&w.scores.dot(&w.white.dot(dirs).mapv(|v| v as f32)))
    };
    let lean = third_moments(wx, u) + third_moments(wy, v);
    for (j, &m) in lean.iter().enumerate() {
        if m < 0.0 {
            u.column_mut(j).mapv_inplace(|a| -a);
            v.column_mut(j).mapv_inplace(|b| -b);
        }
    }
}

/// `V W U` (or `W U` without PCA): from the raw centred view to canonical coordinates.
fn full_projection(w: &Whitened, u: &Array2<f64>) -> Array2<f32> {
    let wu = w.white.dot(u).mapv(|v| v as f32);
    match &w.basis {
        Some(v) => v.dot(&wu),
        None => wu,
    }
}

impl FittedCca {
    /// Canonical coordinates of image-side rows, weighted by `σ^p`.
    pub fn transform_x(&self, x: &FeatureMatrix) -> Result<Array2<f32>, FusionError> {
        self.transform(x, "x", self.kernel_x.as_ref(), &self.mean_x, &self.proj_x)
    }

    /// Canonical coordinates of text-side rows, weighted by `σ^p`.
    pub fn transform_y(&self, y: &FeatureMatrix) -> Result<Array2<f32>, FusionError> {
        self.transform(y, "y", self.kernel_y.as_ref(), &self.mean_y, &self.proj_y)
    }

    /// Image-side rows in the shared space where they are ranked: [`Self::transform_x`],
    /// then each row scaled to unit length (cosine becomes a dot product).
    pub fn embed_x(&self, x: &FeatureMatrix) -> Result<Array2<f32>, FusionError> {
        let mut z = self.transform_x(x)?;
        crate::retrieval::l2_normalize_rows(&mut z);
        Ok(z)
    }

    /// Text-side rows in the shared space: [`Self::transform_y`], rows scaled to unit length.
    pub fn embed_y(&self, y: &FeatureMatrix) -> Result<Array2<f32>, FusionError> {
        let mut z = self.transform_y(y)?;
        crate::retrieval::l2_normalize_rows(&mut z);
        Ok(z)
    }

    /// As [`Self::transform_x`] for rows already passed through this model's image-side
    /// kernel map (its output, [`FittedKernelMap::transform`]): a grid whose models share
    /// one map applies it once.
    pub fn transform_mapped_x(&self, mapped: &FeatureMatrix) -> Result<Array2<f32>, FusionError> {
        self.transform(mapped, "x", None, &self.mean_x, &self.proj_x)
    }

    /// As [`Self::transform_y`] for rows already through the text-side kernel map.
    pub fn transform_mapped_y(&self, mapped: &FeatureMatrix) -> Result<Array2<f32>, FusionError> {
        self.transform(mapped, "y", None, &self.mean_y, &self.proj_y)
    }

    /// `x` through the view's kernel map (if any), centred, projected and weighted.
    fn transform(
        &self,
        x: &FeatureMatrix,
        view: ViewName,
        kernel: Option<&FittedKernelMap>,
        mean: &Array1<f32>,
        proj: &Array2<f32>,
    ) -> Result<Array2<f32>, FusionError> {
        if let Some(map) = kernel {
            let mapped = FeatureMatrix::Dense(map.transform(x, view)?);
            return self.transform(&mapped, view, None, mean, proj);
        }
        if x.n_cols() != mean.len() {
            return Err(FusionError::DimMismatch {
                view,
                expected: mean.len(),
                got: x.n_cols(),
            });
        }
        ops::check_finite(x, view)?;
        let mut out = ops::centred_dot(x, &mean.view(), &proj.view());
        let weights = self.weights();
        out *= &weights.view().insert_axis(Axis(0));
        Ok(out)
    }

    /// The per-dimension weights `σᵢ^p` applied by the transforms.
    pub fn weights(&self) -> Array1<f32> {
        self.correlations.mapv(|s| {
            if self.eigen_power == 0.0 {
                1.0
            } else {
                (s as f64).powf(self.eigen_power) as f32
            }
        })
    }

    /// Regularized canonical correlations, decreasing.
    pub fn correlations(&self) -> &Array1<f32> {
        &self.correlations
    }

    /// Number of output dimensions `k`.
    pub fn dims(&self) -> usize {
        self.correlations.len()
    }

    /// The power `p` of the weighting `σ^p`.
    pub fn eigen_power(&self) -> f64 {
        self.eigen_power
    }

    /// Changes the weighting power without refitting (the projections do not depend on it).
    pub fn with_eigen_power(mut self, p: f64) -> Self {
        self.eigen_power = p;
        self
    }

    /// Keeps only the first `k` canonical dimensions (no refit needed: they are nested).
    pub fn truncated(&self, k: usize) -> Self {
        let k = k.min(self.dims());
        Self {
            mean_x: self.mean_x.clone(),
            mean_y: self.mean_y.clone(),
            proj_x: self.proj_x.slice(s![.., ..k]).to_owned(),
            proj_y: self.proj_y.slice(s![.., ..k]).to_owned(),
            correlations: self.correlations.slice(s![..k]).to_owned(),
            eigen_power: self.eigen_power,
            kernel_x: self.kernel_x.clone(),
            kernel_y: self.kernel_y.clone(),
        }
    }

    /// A copy of the model's arrays, [`Self::from_arrays`]'s input: what to save to rebuild it.
    pub fn to_arrays(&self) -> CcaArrays {
        CcaArrays {
            mean_x: self.mean_x.clone(),
            mean_y: self.mean_y.clone(),
            proj_x: self.proj_x.clone(),
            proj_y: self.proj_y.clone(),
            correlations: self.correlations.clone(),
            eigen_power: self.eigen_power,
            kernel_x: self.kernel_x.clone(),
            kernel_y: self.kernel_y.clone(),
        }
    }

    /// The kernel map of the image view, if any.
    pub fn kernel_x(&self) -> Option<&FittedKernelMap> {
        self.kernel_x.as_ref()
    }

    /// The kernel map of the text view, if any.
    pub fn kernel_y(&self) -> Option<&FittedKernelMap> {
        self.kernel_y.as_ref()
    }

    /// Rebuilds a model from saved arrays, checking their shapes agree.
    pub fn from_arrays(a: CcaArrays) -> Result<Self, FusionError> {
        let k = a.correlations.len();
        let maps_fit = |map: &Option<FittedKernelMap>, mean: &Array1<f32>| {
            map.as_ref().is_none_or(|m| m.output_dims() == mean.len())
        };
        let checks = [
            (
                maps_fit(&a.kernel_x, &a.mean_x),
                "kernel_x landmarks != mean_x length",
            ),
            (
                maps_fit(&a.kernel_y, &a.mean_y),
                "kernel_y landmarks != mean_y length",
            ),
            (
                a.proj_x.nrows() == a.mean_x.len(),
                "proj_x rows != mean_x length",
            ),
            (
                a.proj_y.nrows() == a.mean_y.len(),
                "proj_y rows != mean_y length",
            ),
            (
                a.proj_x.ncols() == k,
                "proj_x columns != number of correlations",
            ),
            (
                a.proj_y.ncols() == k,
                "proj_y columns != number of correlations",
            ),
            (a.eigen_power.is_finite(), "eigen_power is not finite"),
            (
                a.correlations.iter().all(|c| c.is_finite() && *c >= 0.0),
                "correlations must be finite and >= 0",
            ),
        ];
        for (ok, msg) in checks {
            if !ok {
                return Err(FusionError::BadArrays(format!(
                    "{msg} (mean_x {}, mean_y {}, proj_x {:?}, proj_y {:?}, correlations {k})",
                    a.mean_x.len(),
                    a.mean_y.len(),
                    a.proj_x.dim(),
                    a.proj_y.dim()
                )));
            }
        }
        Ok(Self {
            mean_x: a.mean_x,
            mean_y: a.mean_y,
            proj_x: a.proj_x,
            proj_y: a.proj_y,
            correlations: a.correlations,
            eigen_power: a.eigen_power,
            kernel_x: a.kernel_x,
            kernel_y: a.kernel_y,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::CsrMatrix;
    use ndarray_linalg::QRInto;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    const RHO: [f32; 3] = [0.9, 0.6, 0.3];

    /// Paired views with population canonical correlations exactly `RHO` (then 0): latent pairs
    /// `(s_i, ρ_i s_i + √(1-ρ_i²) e_i)` plus independent noise coordinates, each view mixed by
    /// a random invertible matrix (CCA is invariant to invertible linear maps of a view) and
    /// shifted by a constant.
    fn planted(n: usize, dx: usize, dy: usize, seed: u64) -> (Array2<f32>, Array2<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let s = ops::gaussian(n, 3, &mut rng);
        let e = ops::gaussian(n, 3, &mut rng);
        let mut lx = ops::gaussian(n, dx, &mut rng);
        let mut ly = ops::gaussian(n, dy, &mut rng);
        for (j, &rho) in RHO.iter().enumerate() {
            lx.column_mut(j).assign(&s.column(j));
            let c = (1.0 - rho * rho).sqrt();
            ly.column_mut(j)
                .assign(&(&s.column(j) * rho + &e.column(j) * c));
        }
        let mx = ops::gaussian(dx, dx, &mut rng) + Array2::<f32>::eye(dx) * 2.0;
        let my = ops::gaussian(dy, dy, &mut rng) + Array2::<f32>::eye(dy) * 2.0;
        (lx.dot(&mx) + 5.0, ly.dot(&my) - 1.0)
    }

    fn cov(a: &Array2<f32>, b: &Array2<f32>) -> Array2<f64> {
        let n = a.nrows() as f64;
        let ac = a - &a.mean_axis(Axis(0)).unwrap().insert_axis(Axis(0));
        let bc = b - &b.mean_axis(Axis(0)).unwrap().insert_axis(Axis(0));
        ac.t().dot(&bc).mapv(|v| v as f64) / (n - 1.0)
    }

    #[test]
    fn recovers_planted_correlations_and_whitens() {
        // Tolerance 0.02: with n = 20,000 the sampling error of a correlation is below
        // (1 - ρ²)/√n ≈ 0.007, and the small ridge 1e-6 moves them by ~1e-6.
        let (x, y) = planted(20_000, 6, 5, 11);
        let cca = CcaParams::new(4)
            .ridge(1e-6)
            .eigen_power(0.0)
            .check()
            .unwrap()
            .fit(&x.clone().into(), &y.clone().into())
            .unwrap();
        let c = cca.correlations();
        for (got, want) in c.iter().zip(RHO) {
            assert!((got - want).abs() < 0.02, "{c}");
        }
        assert!(c[3] < 0.06, "{c}");
        let u = cca.transform_x(&x.into()).unwrap();
        let v = cca.transform_y(&y.into()).unwrap();
        // Training variates: identity covariance within each view, diag(σ) across (1e-3).
        let (cuu, cvv, cuv) = (cov(&u, &u), cov(&v, &v), cov(&u, &v));
        for i in 0..4 {
            for j in 0..4 {
                let id = if i == j { 1.0 } else { 0.0 };
                assert!((cuu[[i, j]] - id).abs() < 1e-3, "{cuu}");
                assert!((cvv[[i, j]] - id).abs() < 1e-3, "{cvv}");
                let cross = if i == j { c[i] as f64 } else { 0.0 };
                assert!((cuv[[i, j]] - cross).abs() < 1e-3, "{cuv}");
            }
        }
    }

    #[test]
    fn eigen_power_weights_columns_by_correlation() {
        let (x, y) = planted(3000, 5, 5, 2);
        let (x, y): (FeatureMatrix, FeatureMatrix) = (x.into(), y.into());
        let fit = |p| {
            CcaParams::new(3)
                .eigen_power(p)
                .check()
                .unwrap()
                .fit(&x, &y)
                .unwrap()
        };
        let (p0, p1) = (fit(0.0), fit(1.0));
        assert_eq!(p0.correlations(), p1.correlations());
        let (a, b) = (p0.transform_x(&x).unwrap(), p1.transform_x(&x).unwrap());
        for j in 0..3 {
            let s = p0.correlations()[j];
            let diff = (&a.column(j) * s - b.column(j)).mapv(f32::abs);
            assert!(diff.iter().all(|&d| d < 1e-4), "column {j}");
        }
    }

    #[test]
    fn a_rotated_view_gives_the_same_variates_signs_included() {
        // With a relative ridge, CCA is invariant to an orthogonal map `Q` of a view (`tr(C)`
        // and the ridge do not change), so `X` and `XQ` have the same training variates. The
        // whitening inside the two fits differs, and with it the signs the SVD (or, with a
        // topic view, the eigendecomposition) returns; orienting each pair by its variates
        // makes them agree, and every pair leans positive on the training pairs.
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let (x, y) = planted(3000, 6, 5, 17);
        let rotation = ops::gaussian(6, 6, &mut rng).qr_into().unwrap().0;
        let rotated: FeatureMatrix = x.dot(&rotation).into();
        let (x, y): (FeatureMatrix, FeatureMatrix) = (x.into(), y.into());
        for topics in [0, 4] {
            let params = CcaParams::new(4).ridge(0.1).topics(topics).check().unwrap();
            let (a, b) = (
                params.fit(&x, &y).unwrap(),
                params.fit(&rotated, &y).unwrap(),
            );
            let (ua, ub) = (a.transform_x(&x).unwrap(), b.transform_x(&rotated).unwrap());
            let scale = ua.iter().fold(0f32, |m, v| m.max(v.abs()));
            for ((j, p), q) in ua.indexed_iter().zip(ub.iter()) {
                assert!(
                    (p - q).abs() < 1e-3 * scale,
                    "topics {topics}, {j:?}: {p} vs {q}"
                );
            }
            let va = a.transform_y(&y).unwrap();
            let lean = ops::column_third_moments(&ua) + ops::column_third_moments(&va);
            for (j, &m) in lean.iter().enumerate() {
                assert!(m > 0.0, "topics {topics}, pair {j}: {m}");
            }
        }
    }

    #[test]
    fn relative_ridge_is_scale_invariant() {
        // Multiplying a view by 1000 must not change the fitted correlations: the ridge scales
        // with tr(C)/d (an absolute ridge would not).
        let (x, y) = planted(2000, 5, 4, 5);
        let params = CcaParams::new(3).ridge(0.5).check().unwrap();
        let a = params.fit(&x.clone().into(), &y.clone().into()).unwrap();
        let b = params.fit(&(x * 1000.0).into(), &y.into()).unwrap();
        for (p, q) in a.correlations().iter().zip(b.correlations()) {
            assert!((p - q).abs() < 1e-4, "{p} vs {q}");
        }
        // And a large ridge shrinks them.
        let (x, y) = planted(2000, 5, 4, 5);
        let plain = CcaParams::new(3)
            .ridge(0.0)
            .check()
            .unwrap()
            .fit(&x.into(), &y.into())
            .unwrap();
        assert!(
            a.correlations()[0] < plain.correlations()[0] - 0.02,
            "{} vs {}",
            a.correlations(),
            plain.correlations()
        );
    }

    #[test]
    fn sparse_and_dense_inputs_agree_with_and_without_pca() {
        let (x, y) = planted(1500, 12, 6, 9);
        let ys = CsrMatrix::from_rows(
            y.rows()
                .into_iter()
                .map(|r| r.iter().enumerate().map(|(j, &v)| (j as u32, v)).collect())
                .collect(),
            6,
        );
        let (xd, yd, ysp): (FeatureMatrix, FeatureMatrix, FeatureMatrix) =
            (x.into(), y.into(), ys.into());
        for pca_dims in [64, 10, 4] {
            for method in [PcaMethod::Exact, PcaMethod::Randomized] {
                let params = CcaParams::new(3)
                    .ridge(1e-3)
                    .pca_dims(pca_dims)
                    .pca_method(method)
                    .power_iters(4)
                    .oversample(4)
                    .check()
                    .unwrap();
                let a = params.fit(&xd, &yd).unwrap();
                let b = params.fit(&xd, &ysp).unwrap();
                for (p, q) in a.correlations().iter().zip(b.correlations()) {
                    assert!(
                        (p - q).abs() < 1e-3,
                        "pca {pca_dims} {method:?}: {p} vs {q}"
                    );
                }
                let ta = a.transform_y(&yd).unwrap();
                let tb = b.transform_y(&ysp).unwrap();
                // Signs included: each pair is oriented by its training variates.
                for (p, q) in ta.iter().zip(tb.iter()) {
                    assert!((p - q).abs() < 1e-2, "{p} vs {q}");
                }
            }
        }
    }

    #[test]
    fn pca_reduction_keeps_the_planted_signal() {
        // 3 correlated latent directions in a 300-dim view dominated by 300 noise dims of lower
        // variance; PCA to 32 dims keeps the high-variance correlated part.
        let n = 4000;
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (x, y) = planted(n, 4, 4, 21);
        let basis = ops::gaussian(300, 4, &mut rng).qr_into().unwrap().0;
        let noise = ops::gaussian(n, 300, &mut rng) * 0.05;
        let x_high = x.dot(&basis.t()) + noise;
        let cca = CcaParams::new(3)
            .ridge(1e-4)
            .pca_dims(32)
            .pca_method(PcaMethod::Randomized)
            .seed(3)
            .check()
            .unwrap()
            .fit(&x_high.into(), &y.into())
            .unwrap();
        for (got, want) in cca.correlations().iter().zip(RHO) {
            assert!((got - want).abs() < 0.03, "{}", cca.correlations());
        }
    }

    #[test]
    fn arrays_round_trip_and_validation() {
        let (x, y) = planted(500, 4, 3, 1);
        let (x, y): (FeatureMatrix, FeatureMatrix) = (x.into(), y.into());
        let cca = CcaParams::new(2).check().unwrap().fit(&x, &y).unwrap();
        let back = FittedCca::from_arrays(cca.to_arrays()).unwrap();
        assert_eq!(back, cca);
        let mut bad = cca.to_arrays();
        bad.mean_x = Array1::zeros(7);
        assert!(
            FittedCca::from_arrays(bad)
                .unwrap_err()
                .to_string()
                .contains("mean_x 7")
        );
        let err = cca.transform_x(&y).unwrap_err();
        assert!(err.to_string().contains("3 columns"), "{err}");
    }

    #[test]
    fn kernel_maps_find_a_nonlinear_relation_and_round_trip() {
        use crate::fusion::KernelMapParams;
        use rand::Rng;
        // y's columns are even functions of a latent angle that x holds as (cos, sin): every
        // linear correlation between the views is near zero, a kernel map recovers it.
        let mut rng = ChaCha8Rng::seed_from_u64(21);
        let draw = |n: usize, rng: &mut ChaCha8Rng| {
            let t: Vec<f32> = (0..n)
                .map(|_| rng.gen_range(0.0..std::f32::consts::TAU))
                .collect();
            let noise = |rng: &mut ChaCha8Rng| rng.gen_range(-0.05f32..0.05);
            let x =
                Array2::from_shape_fn((n, 2), |(i, j)| [t[i].cos(), t[i].sin()][j] + noise(rng));
            let y = Array2::from_shape_fn((n, 2), |(i, j)| {
                [(2.0 * t[i]).cos(), (2.0 * t[i]).sin()][j] + noise(rng)
            });
            (FeatureMatrix::Dense(x), FeatureMatrix::Dense(y))
        };
        let (x, y) = draw(600, &mut rng);
        let linear = CcaParams::new(1).ridge(0.01).check().unwrap();
        let kernel = KernelMapParams {
            landmarks: 100,
            input_dims: 8,
            gamma_scale: 2.0,
            seed: 1,
            block_widths: Vec::new(),
            block_weighting: crate::fusion::BlockWeighting::Equal,
        };
        let mapped = CcaParams {
            kernel_x: kernel.clone(),
            kernel_y: kernel,
            ..CcaParams::new(1).ridge(0.01)
        }
        .check()
        .unwrap();
        let lin = linear.fit(&x, &y).unwrap();
        let ker = mapped.fit(&x, &y).unwrap();
        // On fresh draws: the correlation of the first canonical pair.
        let (xt, yt) = draw(400, &mut rng);
        let first = |m: &FittedCca| {
            let a = m.transform_x(&xt).unwrap();
            let b = m.transform_y(&yt).unwrap();
            cov(&a, &b)[[0, 0]] / (cov(&a, &a)[[0, 0]] * cov(&b, &b)[[0, 0]]).sqrt()
        };
        let (r_lin, r_ker) = (first(&lin).abs(), first(&ker).abs());
        assert!(r_lin < 0.2, "linear CCA held-out correlation {r_lin}");
        assert!(
            r_ker > 0.8,
            "kernel-mapped CCA held-out correlation {r_ker}"
        );
        assert_eq!(ker.kernel_x().unwrap().output_dims(), 100);
        let back = FittedCca::from_arrays(ker.to_arrays()).unwrap();
        assert_eq!(back, ker);
        let mut bad = ker.to_arrays();
        // A map with 7 landmarks cannot feed a projection fitted on 100.
        bad.kernel_y = ker.kernel_y().cloned().map(|mut k| {
            k.blocks[0].landmarks = k.blocks[0].landmarks.slice(s![..7, ..]).to_owned();
            k
        });
        let err = FittedCca::from_arrays(bad).unwrap_err().to_string();
        assert!(err.contains("kernel_y landmarks"), "{err}");

        // Views mapped once and fitted at two ridges (what `tune` does) give the models that
        // fit_paired gives at each ridge; other kernel parameters are refused.
        let rows: Vec<usize> = (0..600).collect();
        let with_ridge = |r: f64| mapped.params().clone().ridge(r).check().unwrap();
        let hidden = ProgressBar::hidden();
        let once = with_ridge(0.01)
            .map_pairs(&x, &rows, &y, &rows, &hidden)
            .unwrap();
        for r in [0.01, 0.5] {
            assert_eq!(
                with_ridge(r).fit_mapped(&once, &hidden).unwrap(),
                with_ridge(r)
                    .fit_paired(&x, &rows, &y, &rows, &hidden)
                    .unwrap(),
                "ridge {r}"
            );
        }
        let mut other = mapped.params().clone();
        other.kernel_y.gamma_scale = 1.0;
        let err = other
            .check()
            .unwrap()
            .fit_mapped(&once, &hidden)
            .unwrap_err();
        assert!(err.to_string().contains("mapped with"), "{err}");
    }

    #[test]
    fn alignment_weighting_favours_the_block_that_shares_the_signal() {
        use crate::fusion::{BlockWeighting, KernelMapParams};
        // x = [the planted view | as many columns of noise, independent of y]: the first
        // block's kernel agrees with y's, the second's with nothing.
        let n = 400;
        let (signal, y) = planted(n, 4, 4, 5);
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let noise = ops::gaussian(n, 4, &mut rng);
        let x = FeatureMatrix::Dense(ndarray::concatenate![Axis(1), signal, noise]);
        let y = FeatureMatrix::Dense(y);
        let kernel_x = KernelMapParams {
            landmarks: 100,
            input_dims: 8,
            gamma_scale: 1.0,
            seed: 2,
            block_widths: vec![4, 4],
            block_weighting: BlockWeighting::Alignment,
        };
        let kernel_y = KernelMapParams {
            block_widths: Vec::new(),
            block_weighting: BlockWeighting::Equal,
            ..kernel_x.clone()
        };
        let params = CcaParams {
            kernel_x: kernel_x.clone(),
            kernel_y,
            ..CcaParams::new(2).ridge(0.1)
        }
        .check()
        .unwrap();
        let rows: Vec<usize> = (0..n).collect();
        let mapped = params
            .map_pairs(&x, &rows, &y, &rows, &ProgressBar::hidden())
            .unwrap();
        let map = mapped.x.map.as_ref().unwrap();
        let (shared, unrelated) = (&map.blocks[0], &map.blocks[1]);
        let (a_shared, a_unrelated) = (shared.alignment.unwrap(), unrelated.alignment.unwrap());
        assert!(a_shared > 0.1, "alignment of the shared block {a_shared}");
        assert!(
            a_unrelated.abs() < 0.05,
            "alignment of the noise {a_unrelated}"
        );
        assert!(shared.weight > 1.7 && unrelated.weight < 0.3, "{map:?}");
        assert!((shared.weight + unrelated.weight - 2.0).abs() < 1e-5);
        // The fit learns on the weighted kernel values, and the model applies the same map.
        let again = map.transform(&x, "x").unwrap();
        let FeatureMatrix::Dense(values) = mapped.x.view.as_ref() else {
            panic!("a mapped view is dense")
        };
        let worst = (&again - values)
            .mapv(f32::abs)
            .fold(0.0f32, |a, &b| a.max(b));
        assert!(worst < 1e-5, "largest difference {worst}");
        let fitted = params.fit_mapped(&mapped, &ProgressBar::hidden()).unwrap();
        assert_eq!(fitted.kernel_x(), Some(map));
        assert_eq!(FittedCca::from_arrays(fitted.to_arrays()).unwrap(), fitted);
        // The other view without a kernel map: refused, naming the view and the setting.
        let err = CcaParams {
            kernel_x,
            ..CcaParams::new(2)
        }
        .check()
        .unwrap()
        .fit(&x, &y)
        .unwrap_err();
        assert!(err.to_string().contains("kernel_x"), "{err}");
        assert!(err.to_string().contains("alignment"), "{err}");
    }

    #[test]
    fn a_view_read_a_column_block_at_a_time_fits_the_same_model() {
        use crate::fusion::{BlockWeighting, ColumnBlocks, KernelMapParams};
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        /// Hands over its matrix's blocks as copies, as a reader from disk does, and records
        /// the widest block asked for; with `stream_above` set, asks for blocks above that
        /// many bytes to be read a block of rows at a time.
        struct BlocksOnly {
            matrix: FeatureMatrix,
            stream_above: Option<usize>,
            widest: AtomicUsize,
        }
        impl BlocksOnly {
            fn new(matrix: &FeatureMatrix, stream_above: Option<usize>) -> Self {
                Self {
                    matrix: matrix.clone(),
                    stream_above,
                    widest: AtomicUsize::new(0),
                }
            }
        }
        impl ColumnBlocks for BlocksOnly {
            fn n_rows(&self) -> usize {
                self.matrix.n_rows()
            }
            fn n_cols(&self) -> usize {
                self.matrix.n_cols()
            }
            fn block(
                &self,
                rows: &[usize],
                start: usize,
                width: usize,
            ) -> Result<Cow<'_, FeatureMatrix>, FusionError> {
                self.widest.fetch_max(width, Relaxed);
                let block = self.matrix.block(rows, start, width)?;
                Ok(Cow::Owned(block.into_owned()))
            }
            fn stream_above_bytes(&self) -> Option<usize> {
                self.stream_above
            }
        }
        let n = 300;
        let (signal, y) = planted(n, 4, 4, 7);
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let noise = ops::gaussian(n, 6, &mut rng);
        let x = FeatureMatrix::Dense(ndarray::concatenate![Axis(1), signal, noise]);
        let y = FeatureMatrix::Dense(y);
        // Pairs out of order, most images twice, one never: the rows the maps see are the
        // distinct ones in order of first use.
        let x_rows: Vec<usize> = (0..2 * n - 40).map(|i| (7 * i + 3) % (n - 1)).collect();
        let y_rows: Vec<usize> = (0..x_rows.len()).map(|i| i % n).collect();
        let kernel = KernelMapParams {
            landmarks: 80,
            input_dims: 3,
            gamma_scale: 1.0,
            seed: 4,
            block_widths: vec![4, 2, 4],
            block_weighting: BlockWeighting::Alignment,
        };
        let params = CcaParams {
            kernel_x: kernel.clone(),
            kernel_y: KernelMapParams {
                block_widths: Vec::new(),
                block_weighting: BlockWeighting::Equal,
                ..kernel
            },
            ..CcaParams::new(3).ridge(0.1)
        }
        .check()
        .unwrap();
        let hidden = ProgressBar::hidden();
        let in_memory = params
            .fit_paired(&x, &x_rows, &y, &y_rows, &hidden)
            .unwrap();
        let blocks = BlocksOnly::new(&x, None);
        let by_blocks = params
            .fit_paired(&blocks, &x_rows, &y, &y_rows, &hidden)
            .unwrap();
        assert_eq!(by_blocks, in_memory);
        assert_eq!(
            blocks.widest.load(Relaxed),
            4,
            "the widest block, not the whole view"
        );
        // Without a kernel map the view is taken whole.
        let linear = CcaParams::new(3).ridge(0.1).check().unwrap();
        assert_eq!(
            linear
                .fit_paired(&blocks, &x_rows, &y, &y_rows, &hidden)
                .unwrap(),
            linear
                .fit_paired(&x, &x_rows, &y, &y_rows, &hidden)
                .unwrap()
        );
        assert_eq!(blocks.widest.load(Relaxed), 10);

        // Blocks of more than 3,000 bytes (the two 4-column ones, 299 rows x 16 bytes; not
        // the 2-column one) read a block of rows at a time: the same model, to the bit.
        let streamed = BlocksOnly::new(&x, Some(3_000));
        assert_eq!(
            params
                .fit_paired(&streamed, &x_rows, &y, &y_rows, &hidden)
                .unwrap(),
            in_memory
        );
    }

    #[test]
    fn rejects_bad_params_and_inputs() {
        assert!(CcaParams::new(0).check().is_err());
        assert!(CcaParams::new(2).ridge_x(-1.0).check().is_err());
        assert!(CcaParams::new(2).eigen_power(f64::NAN).check().is_err());
        assert!(CcaParams::new(2).topics(1).check().is_err());
        let p = CcaParams::new(2).check().unwrap();
        let x: FeatureMatrix = Array2::<f32>::zeros((5, 2)).into();
        let y: FeatureMatrix = Array2::<f32>::ones((4, 2)).into();
        assert!(matches!(
            p.fit(&x, &y),
            Err(FusionError::RowMismatch { x: 5, y: 4 })
        ));
        let y: FeatureMatrix = Array2::<f32>::ones((5, 2)).into();
        assert!(matches!(
            p.fit(&x, &y),
            Err(FusionError::NoVariance { view: "x" })
        ));
    }

    /// Pairs with a continuous shared signal (`x0`, `y0`: correlation 0.8) and, weaker across
    /// the views but plain in the captions, 4 topics (`x1, x2` the topic's corner plus noise,
    /// correlation about 0.64 with `y1, y2`, the corner scaled by 3 plus little noise).
    fn with_topics(n: usize, seed: u64) -> (Array2<f32>, Array2<f32>) {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let noise = ops::gaussian(n, 8, &mut rng);
        let mut x = Array2::<f32>::zeros((n, 4));
        let mut y = Array2::<f32>::zeros((n, 4));
        for i in 0..n {
            let topic = rng.gen_range(0..4);
            let corner = [
                if topic & 1 == 0 { 1.0 } else { -1.0 },
                if topic & 2 == 0 { 1.0 } else { -1.0 },
            ];
            let shared = noise[[i, 0]];
            x[[i, 0]] = shared;
            y[[i, 0]] = 0.8 * shared + 0.6 * noise[[i, 1]];
            for j in 0..2 {
                x[[i, 1 + j]] = corner[j] + 1.2 * noise[[i, 2 + j]];
                y[[i, 1 + j]] = 3.0 * corner[j] + 0.3 * noise[[i, 4 + j]];
            }
            x[[i, 3]] = noise[[i, 6]];
            y[[i, 3]] = noise[[i, 7]];
        }
        (x, y)
    }

    fn correlation(a: ndarray::ArrayView1<f32>, b: ndarray::ArrayView1<f32>) -> f64 {
        let (a, b) = (
            a.to_owned().insert_axis(Axis(1)),
            b.to_owned().insert_axis(Axis(1)),
        );
        let c = cov(&a, &b)[[0, 0]];
        c / (cov(&a, &a)[[0, 0]] * cov(&b, &b)[[0, 0]]).sqrt()
    }

    #[test]
    fn a_topic_view_puts_the_captions_clusters_first_with_unit_variance() {
        let (x, y) = with_topics(4000, 3);
        let (xm, ym): (FeatureMatrix, FeatureMatrix) = (x.clone().into(), y.into());
        let fit_weighted = |topics, weight| {
            CcaParams::new(3)
                .ridge(1e-6)
                .eigen_power(0.0)
                .topics(topics)
                .topic_weight(weight)
                .check()
                .unwrap()
                .fit(&xm, &ym)
                .unwrap()
        };
        let (two, three) = (fit_weighted(0, 1.0), fit_weighted(4, 1.0));
        // Two views: the strongest correlation, the continuous signal, comes first.
        let first = two.transform_x(&xm).unwrap();
        let r = correlation(first.column(0), x.column(0));
        assert!(r.abs() > 0.9, "two-view first dimension against x0: {r}");
        // Three views: the topics, shared by all three, come first.
        let u = three.transform_x(&xm).unwrap();
        let r = correlation(u.column(0), x.column(0));
        assert!(r.abs() < 0.3, "three-view first dimension against x0: {r}");
        // Each projected training variate has unit variance (ridge 1e-6; tolerance 1e-3),
        // and the weights decrease within [0, 1].
        let v = three.transform_y(&ym).unwrap();
        let (cuu, cvv) = (cov(&u, &u), cov(&v, &v));
        for i in 0..3 {
            assert!((cuu[[i, i]] - 1.0).abs() < 1e-3, "{cuu}");
            assert!((cvv[[i, i]] - 1.0).abs() < 1e-3, "{cvv}");
        }
        let w = three.correlations();
        assert!(w.iter().all(|&c| (0.0..=1.0).contains(&c)), "{w}");
        assert!(w.windows(2).into_iter().all(|p| p[0] >= p[1]), "{w}");
        // A light topic view (w = 0.05) leaves the two-view order: the continuous signal first.
        let light = fit_weighted(4, 0.05).transform_x(&xm).unwrap();
        let r = correlation(light.column(0), x.column(0));
        assert!(
            r.abs() > 0.9,
            "first dimension at topic weight 0.05 against x0: {r}"
        );
        assert!(CcaParams::new(2).topic_weight(0.0).check().is_err());
        // More topics than captions is refused, naming the parameter.
        let few: FeatureMatrix = x.slice(s![..5, ..]).to_owned().into();
        let err = CcaParams::new(2)
            .topics(8)
            .check()
            .unwrap()
            .fit(&few, &few)
            .unwrap_err();
        assert!(err.to_string().contains("topics"), "{err}");
    }

    #[test]
    fn paired_fit_with_repeated_rows_equals_the_expanded_fit() {
        use rand::Rng;
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        // 40 "images" (dense, 60 columns), each with 3 "captions" (dense, 20 columns).
        let images = Array2::from_shape_fn((40, 60), |_| rng.gen_range(0.0f32..1.0));
        let captions = Array2::from_shape_fn((120, 20), |_| rng.gen_range(0.0f32..1.0));
        let x_rows: Vec<usize> = (0..120).map(|i| i / 3).collect();
        let y_rows: Vec<usize> = (0..120).collect();
        let params = CcaParams::new(8)
            .ridge(0.5)
            .pca_dims(16)
            .pca_method(PcaMethod::Exact)
            .check()
            .unwrap();
        let paired = params
            .fit_paired(
                &FeatureMatrix::Dense(images.clone()),
                &x_rows,
                &FeatureMatrix::Dense(captions.clone()),
                &y_rows,
                &ProgressBar::hidden(),
            )
            .unwrap();
        let expanded = params
            .fit(
                &FeatureMatrix::Dense(images.select(Axis(0), &x_rows)),
                &FeatureMatrix::Dense(captions),
            )
            .unwrap();
        for (a, b) in paired.correlations.iter().zip(expanded.correlations.iter()) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
        // Same projections, signs included, though the two fits reduce the images by PCA of
        // different matrices (distinct rows weighted, or every pair's row).
        let probe = FeatureMatrix::Dense(images);
        let pa = paired.transform_x(&probe).unwrap();
        let pb = expanded.transform_x(&probe).unwrap();
        for j in 0..pa.ncols() {
            let dot: f32 = pa
                .column(j)
                .iter()
                .zip(pb.column(j))
                .map(|(a, b)| a * b)
                .sum();
            let na: f32 = pa.column(j).iter().map(|a| a * a).sum::<f32>().sqrt();
            let nb: f32 = pb.column(j).iter().map(|b| b * b).sum::<f32>().sqrt();
            assert!((dot / (na * nb) - 1.0).abs() < 1e-3, "direction {j}");
        }
        let err = params
            .fit_paired(
                &probe,
                &[0, 1, 99],
                &probe,
                &[0, 1, 2],
                &ProgressBar::hidden(),
            )
            .unwrap_err()
            .to_string();
        assert!(err.contains("99") && err.contains("40"), "{err}");
    }
}
