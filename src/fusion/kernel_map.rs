//! An explicit, approximate Gaussian-kernel feature map applied to a view before the CCA, so
//! that the linear CCA of the mapped views approximates kernel CCA.
//!
//! Kernel CCA (Lai and Fyfe 2000; Hardoon, Szedmak and Shawe-Taylor 2004) is what Hodosh, Young
//! and Hockenmaier (JAIR 47, 2013) used for their Flickr8k results; in its exact form it needs
//! `n x n` kernel matrices of the training pairs. The Nyström idea (Williams and Seeger 2001) is
//! to describe every row by its kernel values against `m` landmark rows of the training data:
//! `φ(x) = [k(x, l₁), …, k(x, lₘ)]`. CCA is invariant to an invertible linear map of a view, so
//! the usual `K_mm^{-1/2}` factor can be left to the CCA's own whitening (only its ridge and PCA
//! truncation see the difference).
//!
//! The map here: centre, reduce by PCA to `input_dims` (so the landmarks stay small enough to
//! save with the model), scale each row to unit length, and take the Gaussian kernel
//! `k(z, l) = exp(-γ ‖z - l‖²)` against `landmarks` training rows drawn with a fixed seed. `γ` is
//! `gamma_scale` over the median squared distance between landmarks, so `gamma_scale = 1` suits
//! any view (over the pairs that differ, when most landmarks are equal, as in a block that is the
//! same for most items). Each PCA component takes the sign under which the third moment of the
//! training rows along it is positive, so a saved basis compares across machines.
//!
//! With `block_widths`, the view is cut into column blocks (the image view's VLAD, Fisher, HSV,
//! … blocks) and each gets a map of its own (its own mean, PCA and γ; the same landmark rows);
//! the kernel values are summed. The Nyström features of a sum of kernels are the sum of each
//! kernel's features, and a sum of per-block Gaussians keeps one block's large distances from
//! drowning the others', which a single Gaussian over the whole row does not.
//!
//! By default every block's kernel counts once in the sum. With `block_weighting =
//! "alignment"` each block's kernel is weighted by its centred alignment with the other view's
//! kernel on the training pairs, the `align` method of Cortes, Mohri and Rostamizadeh
//! ("Algorithms for learning kernels based on centered alignment", JMLR 13, 2012): a block whose
//! similarities between training images agree with the similarities between their captions
//! counts for more, one that agrees with nothing drops out. The weights are learned from the
//! training pairs alone, with no grid to search; the CCA computes them
//! ([`super::cca::CcaValidParams::map_pairs`]), because it is the one that has both views.
//!
//! `KernelMapParams { landmarks, .. }` → `.check()?` → `.fit(&x)?` → [`FittedKernelMap`] with
//! `transform`; `from_parts` rebuilds one from saved arrays.

use indicatif::ProgressBar;
use ndarray::{Array1, Array2, Axis};
use rand::SeedableRng;
use rand::seq::index::sample;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::ops::{self, Centred, CentredProducts, StreamedCentred};
use super::pca::{self, PcaMethod, PcaParams};
use super::{ColumnBlocks, FusionError};
use crate::matrix::FeatureMatrix;

/// Hyper-parameters of a kernel map (unchecked). `landmarks = 0` means no map: the view goes
/// to the CCA as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KernelMapParams {
    /// Number of landmark rows `m` (0: no kernel map). At most the number of training rows
    /// are used.
    pub landmarks: usize,
    /// PCA size of the view before the map (a view with at most this many columns is only
    /// centred).
    pub input_dims: usize,
    /// `γ = gamma_scale / median squared distance between landmarks` (between those that differ,
    /// when most are equal).
    pub gamma_scale: f64,
    /// Seed of the landmark draw and of the randomized PCA.
    pub seed: u64,
    /// Column widths of consecutive blocks of the view, each mapped on its own (own mean,
    /// PCA and γ, the same landmark rows) and their kernel values summed: a sum of Gaussian
    /// kernels, one per block, instead of one Gaussian over the whole row. Empty: one block.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub block_widths: Vec<usize>,
    /// How the blocks' kernels are weighted in the sum (only read with several blocks).
    #[serde(skip_serializing_if = "BlockWeighting::is_equal")]
    pub block_weighting: BlockWeighting,
}

/// How the kernels of a map's blocks are weighted in their sum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BlockWeighting {
    /// Every block's kernel counts once.
    #[default]
    Equal,
    /// Each block's kernel weighted by its centred alignment with the other view's kernel on
    /// the training pairs (negative alignments count 0), the weights scaled to add up to the
    /// number of blocks. Needs a kernel map on the other view.
    Alignment,
}

impl BlockWeighting {
    fn is_equal(&self) -> bool {
        *self == Self::Equal
    }
}

impl Default for KernelMapParams {
    fn default() -> Self {
        Self {
            landmarks: 0,
            input_dims: 512,
            gamma_scale: 1.0,
            seed: 0,
            block_widths: Vec::new(),
            block_weighting: BlockWeighting::Equal,
        }
    }
}

impl KernelMapParams {
    /// Whether this map is switched on.
    pub fn enabled(&self) -> bool {
        self.landmarks > 0
    }

    /// Checks the values; `view` names the view in the error (`kernel_x`, `kernel_y`).
    pub fn check(self, view: &'static str) -> Result<KernelMapValidParams, FusionError> {
        if self.enabled() {
            if self.input_dims == 0 {
                return Err(FusionError::InvalidParam {
                    name: view,
                    value: "input_dims = 0".into(),
                    expected: "input_dims >= 1",
                });
            }
            if !(self.gamma_scale.is_finite() && self.gamma_scale > 0.0) {
                return Err(FusionError::InvalidParam {
                    name: view,
                    value: format!("gamma_scale = {}", self.gamma_scale),
                    expected: "gamma_scale finite and > 0",
                });
            }
            if self.block_widths.contains(&0) {
                return Err(FusionError::InvalidParam {
                    name: view,
                    value: format!("block_widths = {:?}", self.block_widths),
                    expected: "every block width >= 1",
                });
            }
        }
        Ok(KernelMapValidParams(self))
    }
}

/// Checked [`KernelMapParams`]; only this type can fit.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelMapValidParams(KernelMapParams);

/// A fitted kernel map: one [`GaussianMap`] per column block of the view, their kernel
/// values summed (one block: the Gaussian kernel of the whole row).
#[derive(Debug, Clone, PartialEq)]
pub struct FittedKernelMap {
    /// The blocks' maps, in column order; all have the same number of landmarks.
    pub blocks: Vec<GaussianMap>,
}

/// The map of one block: `x ↦ w · exp(-γ ‖unit((x - μ) V) - lⱼ‖²)` for each landmark `lⱼ`.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMap {
    /// `d` column means of the view.
    pub mean: Array1<f32>,
    /// `d x k` PCA basis (`None`: the identity, the view had at most `input_dims` columns).
    pub basis: Option<Array2<f32>>,
    /// `m x k` landmarks, unit rows.
    pub landmarks: Array2<f32>,
    /// The kernel's `γ`: `gamma_scale` over the median squared distance between landmarks.
    pub gamma: f32,
    /// The block's weight `w` in the sum of kernels (1 unless `block_weighting` set it).
    pub weight: f32,
    /// The centred alignment of the block's kernel with the other view's on the training
    /// pairs, when `block_weighting = "alignment"` computed it.
    pub alignment: Option<f32>,
}

impl KernelMapValidParams {
    /// The parameters that were checked.
    pub fn params(&self) -> &KernelMapParams {
        &self.0
    }

    /// Fits on the training rows `x` (each distinct row once).
    pub fn fit(
        &self,
        x: &FeatureMatrix,
        view: &'static str,
        progress: &ProgressBar,
    ) -> Result<FittedKernelMap, FusionError> {
        let (map, _) = self.fit_reduced(x, view, progress)?;
        Ok(map)
    }

    /// [`Self::fit`], and the map applied to `x` (what `transform(x)` gives), from the reduced
    /// rows the fit already computed.
    pub fn fit_transform(
        &self,
        x: &FeatureMatrix,
        view: &'static str,
        progress: &ProgressBar,
    ) -> Result<(FittedKernelMap, Array2<f32>), FusionError> {
        let (map, reduced) = self.fit_reduced(x, view, progress)?;
        let values = map.values_of_reduced(&reduced);
        Ok((map, values))
    }

    /// [`Self::fit`] (every block's weight 1), with each block's training rows reduced (unit
    /// rows of `(x - μ) V`), from which [`FittedKernelMap::values_of_reduced`] gives the map's
    /// output once the weights are set.
    pub fn fit_reduced(
        &self,
        x: &FeatureMatrix,
        view: &'static str,
        progress: &ProgressBar,
    ) -> Result<(FittedKernelMap, Vec<Array2<f32>>), FusionError> {
        let rows: Vec<usize> = (0..x.n_rows()).collect();
        self.fit_reduced_rows(x, &rows, view, progress)
    }

    /// [`Self::fit_reduced`] on the rows `rows` of `x` (distinct, each below its height),
    /// taking one column block of them at a time: a view handed over from disk
    /// ([`ColumnBlocks`]) is never held whole.
    pub fn fit_reduced_rows(
        &self,
        x: &dyn ColumnBlocks,
        rows: &[usize],
        view: &'static str,
        progress: &ProgressBar,
    ) -> Result<(FittedKernelMap, Vec<Array2<f32>>), FusionError> {
        let widths = block_widths(&self.0.block_widths, x.n_cols(), view)?;
        let mut maps = Vec::with_capacity(widths.len());
        let mut reduced = Vec::with_capacity(widths.len());
        let mut start = 0;
        for width in widths {
            let bytes = rows.len() * width * std::mem::size_of::<f32>();
            let (map, z) = match x.stream_above_bytes() {
                Some(limit) if bytes > limit => {
                    self.fit_block_streamed(x, rows, start, width, view, progress)?
                }
                _ => self.fit_block(&*x.block(rows, start, width)?, view, progress)?,
            };
            maps.push(map);
            reduced.push(z);
            start += width;
        }
        Ok((FittedKernelMap { blocks: maps }, reduced))
    }

    /// The map of one block. The same seed draws the same landmark rows in every block.
    fn fit_block(
        &self,
        x: &FeatureMatrix,
        view: &'static str,
        progress: &ProgressBar,
    ) -> Result<(GaussianMap, Array2<f32>), FusionError> {
        check_rows(x.n_rows())?;
        ops::check_finite(x, view)?;
        let mean = ops::column_means(x);
        let centred = Centred::new(x, mean);
        let mut basis = self.basis(&centred, progress)?;
        let mut reduced = reduce(&centred.mean, basis.as_ref(), x);
        orient_components(&mut basis, &mut reduced);
        self.gaussian_map(centred.mean, basis, reduced, view)
    }

    /// [`Self::fit_block`] for columns `start..start + width` of the rows `rows` of `x`, read
    /// a block of rows at a time for each pass instead of whole (see
    /// [`ColumnBlocks::stream_above_bytes`]): the same map and reduced rows, to the bit.
    fn fit_block_streamed(
        &self,
        x: &dyn ColumnBlocks,
        rows: &[usize],
        start: usize,
        width: usize,
        view: &'static str,
        progress: &ProgressBar,
    ) -> Result<(GaussianMap, Array2<f32>), FusionError> {
        check_rows(rows.len())?;
        let read = |first: usize, end: usize| {
            Ok(
                match x.block(&rows[first..end], start, width)?.into_owned() {
                    FeatureMatrix::Dense(m) => m,
                    FeatureMatrix::Sparse(m) => m.to_dense(),
                },
            )
        };
        let centred = StreamedCentred::new(rows.len(), width, &read, view)?;
        let mut basis = self.basis(&centred, progress)?;
        let mut reduced = match &basis {
            Some(v) => centred.dot(&v.view())?,
            None => centred.centred()?,
        };
        crate::retrieval::l2_normalize_rows(&mut reduced);
        orient_components(&mut basis, &mut reduced);
        self.gaussian_map(centred.mean, basis, reduced, view)
    }

    /// The PCA basis of a block's centred rows, when it has more than `input_dims` columns.
    fn basis(
        &self,
        centred: &impl CentredProducts,
        progress: &ProgressBar,
    ) -> Result<Option<Array2<f32>>, FusionError> {
        let p = &self.0;
        if centred.n_cols() <= p.input_dims {
            return Ok(None);
        }
        let pca = PcaParams {
            components: p.input_dims,
            method: PcaMethod::Auto,
            exact_max: 2048,
            power_iters: 2,
            oversample: 64,
            seed: p.seed,
        };
        Ok(Some(pca::fit_centred(centred, &pca, progress)?.components))
    }

    /// The map from a block's mean, basis and reduced training rows: the landmarks and the
    /// kernel's width.
    fn gaussian_map(
        &self,
        mean: Array1<f32>,
        basis: Option<Array2<f32>>,
        reduced: Array2<f32>,
        view: &'static str,
    ) -> Result<(GaussianMap, Array2<f32>), FusionError> {
        let p = &self.0;
        let n = reduced.nrows();
        let m = p.landmarks.min(n);
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut chosen = sample(&mut rng, n, m).into_vec();
        chosen.sort_unstable();
        let landmarks = reduced.select(Axis(0), &chosen);
        let median = median_squared_distance(&landmarks, &mut rng);
        if median <= 0.0 {
            return Err(FusionError::EqualLandmarks { view });
        }
        let map = GaussianMap {
            mean,
            basis,
            landmarks,
            gamma: (p.gamma_scale / median) as f32,
            weight: 1.0,
            alignment: None,
        };
        Ok((map, reduced))
    }
}

/// Gives each PCA component of a block the sign under which the third moment of the training
/// rows' reduced coordinates is positive, as the CCA does for its canonical pairs, so that
/// `basis.npy` and `landmarks.npy` come out the same on any machine up to rounding (LAPACK's
/// signs depend on the kernels). The kernel values depend only on distances, which negating a
/// coordinate of every row leaves exactly as they were.
fn orient_components(basis: &mut Option<Array2<f32>>, reduced: &mut Array2<f32>) {
    let Some(basis) = basis else { return };
    for (j, &moment) in ops::column_third_moments(reduced).iter().enumerate() {
        if moment < 0.0 {
            basis.column_mut(j).mapv_inplace(|v| -v);
            reduced.column_mut(j).mapv_inplace(|v| -v);
        }
    }
}

/// A map needs at least 3 rows (the median distance between distinct ones).
fn check_rows(n: usize) -> Result<(), FusionError> {
    if n < 3 {
        return Err(FusionError::TooFewRows { rows: n, needed: 3 });
    }
    Ok(())
}

/// The block widths of a view: `widths` when given (they must add up to its columns), else
/// one block.
fn block_widths(
    widths: &[usize],
    n_cols: usize,
    view: &'static str,
) -> Result<Vec<usize>, FusionError> {
    if widths.is_empty() {
        return Ok(vec![n_cols]);
    }
    let total: usize = widths.iter().sum();
    if total != n_cols {
        return Err(FusionError::InvalidParam {
            name: view,
            value: format!(
                "block_widths = {widths:?} (sum {total}, the view has {n_cols} columns)"
            ),
            expected: "block widths adding up to the view's columns",
        });
    }
    Ok(widths.to_vec())
}

/// Unit rows of `(x - μ) V` (rows that are all zero stay zero).
fn reduce(mean: &Array1<f32>, basis: Option<&Array2<f32>>, x: &FeatureMatrix) -> Array2<f32> {
    let mut z = match (basis, x) {
        (Some(v), _) => ops::centred_dot(x, &mean.view(), &v.view()),
        (None, FeatureMatrix::Dense(m)) => m - &mean.view().insert_axis(Axis(0)),
        (None, FeatureMatrix::Sparse(m)) => m.to_dense() - mean.view().insert_axis(Axis(0)),
    };
    crate::retrieval::l2_normalize_rows(&mut z);
    z
}

/// Median of the squared distances between up to 20,000 random pairs of distinct rows; where
/// that is 0, the median of the non-zero ones (0 only when every row drawn is the same).
fn median_squared_distance(rows: &Array2<f32>, rng: &mut ChaCha8Rng) -> f64 {
    use rand::Rng;
    let m = rows.nrows();
    if m < 2 {
        return 0.0;
    }
    let mut d2: Vec<f64> = (0..20_000)
        .filter_map(|_| {
            let (a, b) = (rng.gen_range(0..m), rng.gen_range(0..m));
            (a != b).then(|| {
                rows.row(a)
                    .iter()
                    .zip(rows.row(b).iter())
                    .map(|(u, v)| ((u - v) as f64).powi(2))
                    .sum::<f64>()
            })
        })
        .collect();
    if d2.is_empty() {
        return 0.0;
    }
    d2.sort_by(|a, b| a.total_cmp(b));
    let median = d2[d2.len() / 2];
    if median > 0.0 {
        return median;
    }
    // Over half the pairs are equal rows: a block that is the same for most items (no face
    // found, one file format). The width then comes from the pairs that differ.
    let differing = d2.partition_point(|&d| d <= 0.0);
    d2.get(differing + (d2.len() - differing) / 2)
        .copied()
        .unwrap_or(0.0)
}

impl FittedKernelMap {
    /// Input columns `d` (all blocks).
    pub fn input_dims(&self) -> usize {
        self.blocks.iter().map(GaussianMap::input_dims).sum()
    }

    /// Output columns `m`.
    pub fn output_dims(&self) -> usize {
        self.blocks.first().map_or(0, GaussianMap::output_dims)
    }

    /// `φ(x)`: `n x m` kernel values against the landmarks, summed over the blocks.
    pub fn transform(
        &self,
        x: &FeatureMatrix,
        view: &'static str,
    ) -> Result<Array2<f32>, FusionError> {
        if x.n_cols() != self.input_dims() {
            return Err(FusionError::DimMismatch {
                view,
                expected: self.input_dims(),
                got: x.n_cols(),
            });
        }
        ops::check_finite(x, view)?;
        if let [block] = self.blocks.as_slice() {
            return Ok(block.kernel_values(x));
        }
        let mut sum = Array2::<f32>::zeros((x.n_rows(), self.output_dims()));
        let mut start = 0;
        for block in &self.blocks {
            let width = block.input_dims();
            sum += &block.kernel_values(&x.column_range(start, width));
            start += width;
        }
        Ok(sum)
    }

    /// The map's output from each block's rows reduced by `reduce` (one array per block, as
    /// [`KernelMapValidParams::fit_reduced`] returns them): the blocks' weighted kernel values,
    /// summed.
    pub fn values_of_reduced(&self, reduced: &[Array2<f32>]) -> Array2<f32> {
        assert_eq!(
            reduced.len(),
            self.blocks.len(),
            "one reduced array per block"
        );
        let mut blocks = self.blocks.iter().zip(reduced);
        let (first, z) = blocks.next().expect("at least one block");
        let mut values = first.kernel_values_of_reduced(z);
        for (block, z) in blocks {
            values += &block.kernel_values_of_reduced(z);
        }
        values
    }

    /// Sets the blocks' weights from their alignments (one per block, in block order): each
    /// weight proportional to its alignment (a negative one counts 0), scaled so that the
    /// weights add up to the number of blocks. When no alignment is positive the weights stay
    /// equal. The alignments are kept with the blocks, to be saved and reported.
    pub fn set_alignment_weights(&mut self, alignments: &[f64]) {
        assert_eq!(
            alignments.len(),
            self.blocks.len(),
            "one alignment per block"
        );
        let total: f64 = alignments.iter().map(|a| a.max(0.0)).sum();
        let n = self.blocks.len() as f64;
        for (block, &a) in self.blocks.iter_mut().zip(alignments) {
            block.weight = if total > 0.0 {
                (a.max(0.0) * n / total) as f32
            } else {
                1.0
            };
            block.alignment = Some(a as f32);
        }
    }

    /// Checks that the blocks agree (same number of landmarks, at least one block).
    pub fn from_blocks(blocks: Vec<GaussianMap>) -> Result<Self, FusionError> {
        let m = blocks.first().map(GaussianMap::output_dims);
        if m.is_none() || blocks.iter().any(|b| Some(b.output_dims()) != m) {
            return Err(FusionError::BadArrays(format!(
                "kernel map: blocks with landmarks {:?}",
                blocks.iter().map(|b| b.output_dims()).collect::<Vec<_>>()
            )));
        }
        Ok(Self { blocks })
    }
}

impl GaussianMap {
    /// Input columns of the block.
    pub fn input_dims(&self) -> usize {
        self.mean.len()
    }

    /// Output columns `m`.
    pub fn output_dims(&self) -> usize {
        self.landmarks.nrows()
    }

    /// Kernel values of the rows of `x` (the block's columns, already checked).
    fn kernel_values(&self, x: &FeatureMatrix) -> Array2<f32> {
        self.kernel_values_of_reduced(&reduce(&self.mean, self.basis.as_ref(), x))
    }

    /// Weighted kernel values of rows already reduced by [`reduce`] with this block's mean and
    /// basis.
    fn kernel_values_of_reduced(&self, z: &Array2<f32>) -> Array2<f32> {
        let mut k = ops::dense_dot(&z.view(), &self.landmarks.t());
        let (gamma, weight) = (self.gamma, self.weight);
        k.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(z.axis_iter(Axis(0)).into_par_iter())
            .for_each(|(mut row, zr)| {
                let zz = zr.dot(&zr);
                // ‖z - l‖² = ‖z‖² + 1 - 2 z·l for unit landmarks (clamped: rounding).
                row.mapv_inplace(|s| weight * (-gamma * (zz + 1.0 - 2.0 * s).max(0.0)).exp());
            });
        k
    }

    /// The block's Gaussian kernel (unweighted) between the rows of `z`, reduced by
    /// `reduce`: an `s x s` Gram matrix, for the alignment of the blocks.
    pub fn gram_of_reduced(&self, z: &Array2<f32>) -> Array2<f64> {
        let dots = ops::dense_dot(&z.view(), &z.t());
        let norms: Vec<f64> = (0..z.nrows()).map(|i| dots[[i, i]] as f64).collect();
        let gamma = self.gamma as f64;
        Array2::from_shape_fn(dots.dim(), |(i, j)| {
            let d2 = (norms[i] + norms[j] - 2.0 * dots[[i, j]] as f64).max(0.0);
            (-gamma * d2).exp()
        })
    }

    /// Checks shapes and values of arrays loaded from disk (`weight` 1 and no alignment for an
    /// equally weighted block).
    pub fn from_parts(
        mean: Array1<f32>,
        basis: Option<Array2<f32>>,
        landmarks: Array2<f32>,
        gamma: f32,
        weight: f32,
        alignment: Option<f32>,
    ) -> Result<Self, FusionError> {
        let k = basis.as_ref().map_or(mean.len(), |b| b.ncols());
        let basis_ok = basis.as_ref().is_none_or(|b| b.nrows() == mean.len());
        let valid = basis_ok
            && landmarks.ncols() == k
            && gamma.is_finite()
            && gamma > 0.0
            && weight.is_finite()
            && weight >= 0.0;
        if !valid {
            return Err(FusionError::BadArrays(format!(
                "kernel map: mean {}, basis {:?}, landmarks {:?}, gamma {gamma}, weight {weight}",
                mean.len(),
                basis.as_ref().map(|b| b.dim()),
                landmarks.dim()
            )));
        }
        Ok(Self {
            mean,
            basis,
            landmarks,
            gamma,
            weight,
            alignment,
        })
    }
}

/// The centred alignment of two kernel matrices on the same rows (Cortes, Mohri and
/// Rostamizadeh 2012), taken off the diagonal: `⟨Kc, Lc⟩ / (‖Kc‖ ‖Lc‖)` over the entries
/// `i ≠ j`, with `Kc` the kernel's off-diagonal entries with their row and column means
/// removed (`centre_off_diagonal`). In [-1, 1]. The diagonal is left out because a narrow
/// Gaussian kernel is close to the identity, and two near-identity kernels align almost
/// perfectly whatever their off-diagonal entries, which are what ranks one item against
/// others. `None` when either centred kernel is zero (a kernel constant off the diagonal aligns
/// with nothing).
pub fn centred_alignment(k: &Array2<f64>, l: &Array2<f64>) -> Option<f64> {
    assert_eq!(k.dim(), l.dim(), "kernels on the same rows");
    let kc = centre_off_diagonal(k);
    let lc = centre_off_diagonal(l);
    let kl: f64 = kc.iter().zip(lc.iter()).map(|(a, b)| a * b).sum();
    let kk: f64 = kc.iter().map(|a| a * a).sum();
    let ll: f64 = lc.iter().map(|a| a * a).sum();
    let scale = (kk * ll).sqrt();
    (scale > 1e-12 * k.len() as f64).then(|| kl / scale)
}

/// A symmetric kernel matrix's off-diagonal entries with their means removed:
/// `K_ij - r_i - r_j + g` for `i ≠ j`, `r_i` the mean of row `i` off the diagonal and `g` the
/// mean of every off-diagonal entry; the diagonal set to 0. (A kernel that is constant off the
/// diagonal becomes 0.)
fn centre_off_diagonal(k: &Array2<f64>) -> Array2<f64> {
    let n = k.nrows();
    assert!(n >= 2, "at least two rows");
    let mut k = k.clone();
    k.diag_mut().fill(0.0);
    let rows = k.sum_axis(Axis(1)) / (n - 1) as f64;
    let all = rows.sum() / n as f64;
    let mut c = Array2::from_shape_fn(k.dim(), |(i, j)| k[[i, j]] - rows[i] - rows[j] + all);
    c.diag_mut().fill(0.0);
    c
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::ops::gaussian;
    use ndarray::s;

    fn fit(params: KernelMapParams, x: &Array2<f32>) -> FittedKernelMap {
        params
            .check("kernel_x")
            .unwrap()
            .fit(
                &FeatureMatrix::Dense(x.clone()),
                "x",
                &ProgressBar::hidden(),
            )
            .unwrap()
    }

    #[test]
    fn values_are_the_gaussian_kernel_of_the_reduced_unit_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let x = gaussian(40, 6, &mut rng);
        // input_dims above d: the view is only centred, so the map can be checked by hand.
        let map = fit(
            KernelMapParams {
                landmarks: 10,
                input_dims: 8,
                gamma_scale: 0.7,
                seed: 3,
                block_widths: Vec::new(),
                block_weighting: BlockWeighting::Equal,
            },
            &x,
        );
        assert!(map.blocks[0].basis.is_none());
        assert_eq!(map.output_dims(), 10);
        let phi = map
            .transform(&FeatureMatrix::Dense(x.clone()), "x")
            .unwrap();
        let mean = x.mean_axis(Axis(0)).unwrap();
        for i in [0, 17, 39] {
            let mut z = &x.row(i) - &mean;
            z /= z.dot(&z).sqrt();
            for j in 0..10 {
                let d2: f32 = (&z - &map.blocks[0].landmarks.row(j)).mapv(|v| v * v).sum();
                let want = (-map.blocks[0].gamma * d2).exp();
                assert!((phi[[i, j]] - want).abs() < 1e-5, "{i},{j}");
            }
        }
        // A landmark is a training row: its own kernel value is 1.
        let ones = (0..40)
            .filter(|&i| (0..10).any(|j| (phi[[i, j]] - 1.0).abs() < 1e-5))
            .count();
        assert_eq!(ones, 10);
    }

    #[test]
    fn gamma_is_scaled_by_the_median_distance_and_the_fit_is_seeded() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let x = gaussian(200, 30, &mut rng);
        let p = KernelMapParams {
            landmarks: 50,
            input_dims: 10,
            gamma_scale: 1.0,
            seed: 9,
            block_widths: Vec::new(),
            block_weighting: BlockWeighting::Equal,
        };
        let a = fit(p.clone(), &x);
        let b = fit(p.clone(), &x);
        assert_eq!(a, b);
        assert_eq!(a.blocks[0].basis.as_ref().unwrap().dim(), (30, 10));
        let doubled = fit(
            KernelMapParams {
                gamma_scale: 2.0,
                ..p
            },
            &x,
        );
        assert!((doubled.blocks[0].gamma / a.blocks[0].gamma - 2.0).abs() < 1e-5);
        // Unit rows: squared distances lie in [0, 4], so γ ≥ 1/4.
        assert!(a.blocks[0].gamma >= 0.25, "{}", a.blocks[0].gamma);
    }

    #[test]
    fn a_rotated_view_gives_the_same_landmarks_signs_included() {
        // PCA of `XQ` (`Q` orthogonal) finds the components of `X` turned by `Q`: the rows'
        // coordinates along them are the same, but the decomposition of a different matrix
        // returns them with other signs. Oriented by their third moments, the reduced
        // landmarks agree, and so do the kernel values.
        use ndarray_linalg::QRInto;
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        // Skewed columns (squared normals) with well-separated variances (ratio 2.25), so that
        // both the components and the signs of their third moments are well determined.
        let mut x = gaussian(300, 30, &mut rng).mapv(|v| v * v);
        for (j, mut col) in x.columns_mut().into_iter().enumerate() {
            col *= 1.5f32.powi(-(j as i32));
        }
        let rotation = gaussian(30, 30, &mut rng).qr_into().unwrap().0;
        let p = KernelMapParams {
            landmarks: 40,
            input_dims: 8,
            gamma_scale: 1.0,
            seed: 4,
            block_widths: Vec::new(),
            block_weighting: BlockWeighting::Equal,
        };
        let rotated = x.dot(&rotation);
        let (a, b) = (fit(p.clone(), &x), fit(p, &rotated));
        let (la, lb) = (&a.blocks[0].landmarks, &b.blocks[0].landmarks);
        for ((ij, u), v) in la.indexed_iter().zip(lb.iter()) {
            assert!(
                (u - v).abs() < 1e-3,
                "landmark coordinate {ij:?}: {u} vs {v}"
            );
        }
        let block = &a.blocks[0];
        let reduced = reduce(&block.mean, block.basis.as_ref(), &x.clone().into());
        let moments = ops::column_third_moments(&reduced);
        assert!(moments.iter().all(|&m| m > 0.0), "{moments}");
        let (ka, kb) = (
            a.transform(&FeatureMatrix::Dense(x), "x").unwrap(),
            b.transform(&FeatureMatrix::Dense(rotated), "x").unwrap(),
        );
        for (u, v) in ka.iter().zip(kb.iter()) {
            assert!((u - v).abs() < 1e-3, "{u} vs {v}");
        }
    }

    #[test]
    fn a_view_equal_for_most_rows_takes_its_width_from_the_rows_that_differ() {
        // 80 of 100 rows are one point, 20 another: the plain median squared distance is 0.
        let rows =
            Array2::from_shape_fn(
                (100, 2),
                |(i, j)| {
                    if i < 80 { [1.0, 0.0][j] } else { [0.0, 1.0][j] }
                },
            );
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        assert_eq!(median_squared_distance(&rows, &mut rng), 2.0);
        let same = Array2::from_elem((10, 2), 0.5f32);
        assert_eq!(median_squared_distance(&same, &mut rng), 0.0);
        // Rows all alike leave no distance to set the width from: an error naming the view.
        let err = KernelMapParams {
            landmarks: 5,
            ..Default::default()
        }
        .check("kernel_x")
        .unwrap()
        .fit(&FeatureMatrix::Dense(same), "x", &ProgressBar::hidden())
        .unwrap_err();
        assert!(
            matches!(err, FusionError::EqualLandmarks { view: "x" }),
            "{err}"
        );
    }

    #[test]
    fn block_maps_sum_the_kernels_of_their_blocks() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let x = gaussian(60, 9, &mut rng);
        let p = KernelMapParams {
            landmarks: 12,
            input_dims: 3,
            gamma_scale: 1.5,
            seed: 7,
            block_widths: vec![4, 5],
            block_weighting: BlockWeighting::Equal,
        };
        let map = fit(p.clone(), &x);
        assert_eq!(
            (map.blocks.len(), map.input_dims(), map.output_dims()),
            (2, 9, 12)
        );
        let phi = map
            .transform(&FeatureMatrix::Dense(x.clone()), "x")
            .unwrap();
        // Each block on its own, as a one-block map of its columns.
        let single = KernelMapParams {
            block_widths: Vec::new(),
            ..p.clone()
        };
        let left = fit(single.clone(), &x.slice(s![.., ..4]).to_owned());
        let right = fit(single, &x.slice(s![.., 4..]).to_owned());
        assert_eq!(left.blocks[0], map.blocks[0]);
        assert_eq!(right.blocks[0], map.blocks[1]);
        let sum = left
            .transform(&FeatureMatrix::Dense(x.slice(s![.., ..4]).to_owned()), "x")
            .unwrap()
            + right
                .transform(&FeatureMatrix::Dense(x.slice(s![.., 4..]).to_owned()), "x")
                .unwrap();
        assert!((&phi - &sum).mapv(f32::abs).iter().all(|&d| d < 1e-5));
        // fit_transform gives the same map and exactly what transform gives.
        let (refit, values) = p
            .clone()
            .check("kernel_x")
            .unwrap()
            .fit_transform(
                &FeatureMatrix::Dense(x.clone()),
                "x",
                &ProgressBar::hidden(),
            )
            .unwrap();
        assert_eq!(refit, map);
        assert_eq!(values, phi);
        // The same landmark rows in both blocks: a landmark's own value is 2 (1 per block).
        let twos = phi.iter().filter(|&&v| (v - 2.0).abs() < 1e-4).count();
        assert_eq!(twos, 12);
        // Widths that do not add up to the view, and a zero width, are named.
        let err = KernelMapParams {
            block_widths: vec![4, 4],
            ..p.clone()
        }
        .check("kernel_x")
        .unwrap()
        .fit(
            &FeatureMatrix::Dense(x.clone()),
            "x",
            &ProgressBar::hidden(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("sum 8, the view has 9"), "{err}");
        let err = KernelMapParams {
            block_widths: vec![9, 0],
            ..p
        }
        .check("kernel_x")
        .unwrap_err();
        assert!(err.to_string().contains("block_widths = [9, 0]"), "{err}");
    }

    #[test]
    fn centred_alignment_ignores_the_diagonal_and_the_scale() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let gram = |z: &Array2<f32>| {
            Array2::from_shape_fn((z.nrows(), z.nrows()), |(i, j)| {
                let d2: f32 = (&z.row(i) - &z.row(j)).mapv(|v| v * v).sum();
                (-0.5 * d2 as f64).exp()
            })
        };
        let z = gaussian(120, 3, &mut rng);
        let k = gram(&z);
        let same = centred_alignment(&k, &k).unwrap();
        assert!((same - 1.0).abs() < 1e-9, "{same}");
        // Scaled, with a different diagonal: the same off-diagonal ranking, alignment 1.
        let mut l = &k * 3.0;
        l.diag_mut().mapv_inplace(|v| v + 7.0);
        assert!((centred_alignment(&k, &l).unwrap() - 1.0).abs() < 1e-9);
        let opposite = centred_alignment(&k, &(-&k)).unwrap();
        assert!((opposite + 1.0).abs() < 1e-9, "{opposite}");
        // Two narrow kernels of unrelated points are both close to the identity; off the
        // diagonal they agree on nothing.
        let narrow = |z: &Array2<f32>| gram(z).mapv(|v| v.powi(40));
        let other = gaussian(120, 3, &mut rng);
        let unrelated = centred_alignment(&narrow(&z), &narrow(&other)).unwrap();
        assert!(unrelated.abs() < 0.1, "{unrelated}");
        // A kernel that is constant off the diagonal aligns with nothing.
        let flat = Array2::from_shape_fn((120, 120), |(i, j)| if i == j { 1.0 } else { 0.3 });
        assert_eq!(centred_alignment(&k, &flat), None);
    }

    #[test]
    fn alignment_weights_are_proportional_and_add_up_to_the_blocks() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let x = gaussian(50, 9, &mut rng);
        let p = KernelMapParams {
            landmarks: 10,
            input_dims: 3,
            gamma_scale: 1.0,
            seed: 1,
            block_widths: vec![3, 3, 3],
            block_weighting: BlockWeighting::Alignment,
        };
        let equal = fit(p, &x);
        let mut map = equal.clone();
        map.set_alignment_weights(&[0.2, 0.1, -0.1]);
        let weights: Vec<f32> = map.blocks.iter().map(|b| b.weight).collect();
        let want = [2.0, 1.0, 0.0];
        assert!(
            weights.iter().zip(want).all(|(w, v)| (w - v).abs() < 1e-6),
            "{weights:?}"
        );
        assert_eq!(map.blocks[2].alignment, Some(-0.1));
        // The weights are applied by transform: each block's kernel values times its weight.
        let view = FeatureMatrix::Dense(x.clone());
        let mut by_block = Vec::new();
        for (i, block) in equal.blocks.iter().enumerate() {
            let one = FittedKernelMap::from_blocks(vec![block.clone()]).unwrap();
            let cols = FeatureMatrix::Dense(x.slice(s![.., 3 * i..3 * i + 3]).to_owned());
            by_block.push(one.transform(&cols, "x").unwrap());
        }
        let expected = &by_block[0] * 2.0 + &by_block[1];
        let worst = (&map.transform(&view, "x").unwrap() - &expected)
            .mapv(f32::abs)
            .fold(0.0f32, |a, &b| a.max(b));
        assert!(worst < 1e-5, "largest difference {worst}");
        // No positive alignment: the weights stay equal.
        map.set_alignment_weights(&[-0.1, 0.0, -0.3]);
        assert!(map.blocks.iter().all(|b| b.weight == 1.0));
        // A negative weight read from disk is refused.
        let b = &equal.blocks[0];
        let err = GaussianMap::from_parts(
            b.mean.clone(),
            b.basis.clone(),
            b.landmarks.clone(),
            b.gamma,
            -1.0,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("weight -1"), "{err}");
    }

    #[test]
    fn block_maps_of_a_sparse_view_match_its_dense_copy() {
        // The text view is sparse: each block (word TF-IDF, character n-grams, …) is cut out
        // of the CSR matrix without densifying the whole view.
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let mut x = gaussian(40, 10, &mut rng);
        x.mapv_inplace(|v| if v > 0.3 { v } else { 0.0 });
        let rows: Vec<Vec<(u32, f32)>> = x
            .rows()
            .into_iter()
            .map(|r| {
                r.iter()
                    .enumerate()
                    .filter(|&(_, &v)| v != 0.0)
                    .map(|(j, &v)| (j as u32, v))
                    .collect()
            })
            .collect();
        let sparse = FeatureMatrix::Sparse(crate::sparse::CsrMatrix::from_rows(rows, 10));
        // One block reduced by PCA (7 columns > 4), one only centred (3 columns).
        let p = KernelMapParams {
            landmarks: 8,
            input_dims: 4,
            gamma_scale: 1.0,
            seed: 3,
            block_widths: vec![7, 3],
            block_weighting: BlockWeighting::Equal,
        };
        let dense_map = fit(p.clone(), &x);
        let (sparse_map, values) = p
            .check("kernel_y")
            .unwrap()
            .fit_transform(&sparse, "y", &ProgressBar::hidden())
            .unwrap();
        assert_eq!(sparse_map.blocks.len(), 2);
        let expected = dense_map
            .transform(&FeatureMatrix::Dense(x.clone()), "y")
            .unwrap();
        let worst = (&values - &expected)
            .mapv(f32::abs)
            .fold(0.0f32, |a, &b| a.max(b));
        assert!(worst < 1e-4, "largest difference {worst}");
        assert_eq!(sparse_map.transform(&sparse, "y").unwrap(), values);
    }

    #[test]
    fn bad_params_and_columns_are_named() {
        let err = KernelMapParams {
            landmarks: 5,
            gamma_scale: 0.0,
            ..Default::default()
        }
        .check("kernel_y")
        .unwrap_err();
        assert!(err.to_string().contains("kernel_y"), "{err}");
        assert!(err.to_string().contains("gamma_scale = 0"), "{err}");
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let map = fit(
            KernelMapParams {
                landmarks: 5,
                ..Default::default()
            },
            &gaussian(20, 4, &mut rng),
        );
        let err = map
            .transform(&FeatureMatrix::Dense(Array2::zeros((2, 5))), "y")
            .unwrap_err();
        assert!(err.to_string().contains("5 columns"), "{err}");
    }
}
