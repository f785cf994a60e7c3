//! Principal component analysis of a dense or sparse view, exact or randomized.
//!
//! CCA needs every view whitened, which costs an eigendecomposition of its `d x d` covariance:
//! for 4,096-dimensional bag-of-words views or 100,000-column TF-IDF that is too slow or too big.
//! A PCA pre-reduction to a few hundred dimensions first keeps the CCA small, and when `d` exceeds
//! the number of samples it is also what makes the problem well posed (at most `n - 1`
//! components carry variance). Two solvers:
//! - exact: the centred Gram matrix (blocked, see `super::ops`) and a LAPACK `syevd` (`eigh`);
//! - randomized: the range finder with power iterations of Halko, Martinsson and Tropp, "Finding
//!   structure with randomness", SIAM Review 53 (2011), Algorithms 4.4 and 5.1, using only products
//!   with `X - 1μᵀ` (sparse products for sparse input, never densified).
//!
//! `PcaParams::new(k).method(..)` → `.check()?` → `.fit(&x)?` → [`FittedPca`] with `transform`.

use indicatif::ProgressBar;
use ndarray::{Array1, Array2, Axis, s};
use ndarray_linalg::{Eigh, JobSvd, QRInto, SVDDC, UPLO};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::FusionError;
use super::ops::{self, Centred, CentredProducts};
use crate::matrix::FeatureMatrix;

/// How the principal axes are computed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum PcaMethod {
    /// Exact when `d <= exact_max`, randomized otherwise.
    #[default]
    Auto,
    /// Covariance + symmetric eigendecomposition (`O(n d² + d³)`, `d x d` memory).
    Exact,
    /// Randomized range finder (`O(n d (k + oversample) (2 q + 2))`).
    Randomized,
}

/// Hyper-parameters of [`FittedPca`] (unchecked).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PcaParams {
    /// Number of components kept (clamped to `min(n - 1, d)`).
    pub components: usize,
    /// Exact, randomized, or chosen by `d` ([`PcaMethod::Auto`]).
    pub method: PcaMethod,
    /// Largest `d` solved exactly under [`PcaMethod::Auto`].
    pub exact_max: usize,
    /// Power iterations `q` of the randomized solver.
    pub power_iters: usize,
    /// Extra random directions `p` of the randomized solver.
    pub oversample: usize,
    /// Seed of the randomized solver.
    pub seed: u64,
}

impl Default for PcaParams {
    fn default() -> Self {
        Self {
            components: 512,
            method: PcaMethod::Auto,
            exact_max: 2048,
            power_iters: 2,
            oversample: 64,
            seed: 0,
        }
    }
}

/// Checked [`PcaParams`]; only this type can fit.
#[derive(Debug, Clone, PartialEq)]
pub struct PcaValidParams(PcaParams);

impl PcaParams {
    /// The defaults, keeping `components` components.
    pub fn new(components: usize) -> Self {
        Self {
            components,
            ..Self::default()
        }
    }
    /// Sets [`Self::method`].
    pub fn method(mut self, method: PcaMethod) -> Self {
        self.method = method;
        self
    }
    /// Sets [`Self::exact_max`].
    pub fn exact_max(mut self, d: usize) -> Self {
        self.exact_max = d;
        self
    }
    /// Sets [`Self::power_iters`].
    pub fn power_iters(mut self, q: usize) -> Self {
        self.power_iters = q;
        self
    }
    /// Sets [`Self::oversample`].
    pub fn oversample(mut self, p: usize) -> Self {
        self.oversample = p;
        self
    }
    /// Sets [`Self::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Checks the values; errors name the value.
    pub fn check(self) -> Result<PcaValidParams, FusionError> {
        if self.components == 0 {
            return Err(FusionError::InvalidParam {
                name: "pca components",
                value: "0".into(),
                expected: ">= 1",
            });
        }
        if self.power_iters > 20 {
            return Err(FusionError::InvalidParam {
                name: "power_iters",
                value: self.power_iters.to_string(),
                expected: "in [0, 20]",
            });
        }
        Ok(PcaValidParams(self))
    }
}

/// A fitted PCA: mean, orthonormal principal axes (`d x k`, by decreasing variance) and the
/// variance along each.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedPca {
    /// `d` column means.
    pub mean: Array1<f32>,
    /// `d x k` principal axes, orthonormal columns, by decreasing variance.
    pub components: Array2<f32>,
    /// `k` variances along the axes.
    pub explained_variance: Array1<f64>,
    /// `tr(C)` of the full covariance (all `d` directions).
    pub total_variance: f64,
}

impl PcaValidParams {
    /// The checked parameters.
    pub fn params(&self) -> &PcaParams {
        &self.0
    }

    /// Fits on the rows of `x`, dense or sparse.
    pub fn fit(&self, x: &FeatureMatrix) -> Result<FittedPca, FusionError> {
        self.fit_with_progress(x, &ProgressBar::hidden())
    }

    /// [`Self::fit`], reporting to `progress`.
    pub fn fit_with_progress(
        &self,
        x: &FeatureMatrix,
        progress: &ProgressBar,
    ) -> Result<FittedPca, FusionError> {
        if x.n_rows() < 2 {
            return Err(FusionError::TooFewRows {
                rows: x.n_rows(),
                needed: 2,
            });
        }
        ops::check_finite(x, "input")?;
        let mean = ops::column_means(x);
        let view = Centred::new(x, mean);
        fit_centred(&view, &self.0, progress)
    }
}

/// Fits on a prepared centred view (shared with CCA, which keeps the view for its products).
pub(crate) fn fit_centred(
    view: &impl CentredProducts,
    p: &PcaParams,
    progress: &ProgressBar,
) -> Result<FittedPca, FusionError> {
    let (n, d) = (view.n_rows(), view.n_cols());
    let k = p.components.min(d).min(n - 1).max(1);
    let total_variance = view.total_variance()?;
    let exact = match p.method {
        PcaMethod::Exact => true,
        PcaMethod::Randomized => false,
        PcaMethod::Auto => d <= p.exact_max || k + p.oversample >= d,
    };
    let (components, explained_variance) = if exact {
        exact_pca(view, k)?
    } else {
        randomized_pca(view, k, p, progress)?
    };
    progress.inc(1);
    Ok(FittedPca {
        mean: view.mean().clone(),
        components,
        explained_variance,
        total_variance,
    })
}

fn exact_pca(
    view: &impl CentredProducts,
    k: usize,
) -> Result<(Array2<f32>, Array1<f64>), FusionError> {
    let n = view.n_rows();
    let cov = view.gram()? / (n - 1) as f64;
    let (values, vectors) = cov.eigh(UPLO::Lower).map_err(|e| {
        FusionError::Linalg(format!("eigh of the {0}x{0} covariance: {e}", cov.nrows()))
    })?;
    // Ascending → take the last k, reversed.
    let d = values.len();
    let order: Vec<usize> = (d - k..d).rev().collect();
    let comps = vectors.select(Axis(1), &order).mapv(|v| v as f32);
    let vars = values.select(Axis(0), &order).mapv(|v| v.max(0.0));
    Ok((comps, vars))
}

/// An orthonormal basis of the column space of `a` (`n x l`), as the range finder needs between
/// its products. Short matrices go through LAPACK's Householder QR. Tall ones (`n >= 4l`: the
/// `n x l` sketches of a large view, where Householder QR of 50,000 x 576 took 6.3 s and
/// dominated the fit) through two passes of Gram-matrix orthonormalisation: `G = AᵀA` in `f64`
/// (one matrix product), `G = VΛVᵀ`, `Q = A V Λ^{-1/2}`. One pass loses orthogonality like
/// `κ(A)²`; the second, on an almost orthonormal `Q`, restores it — the idea of CholeskyQR2
/// (Fukaya et al., 2014), with a symmetric eigensolver in place of Cholesky so that directions
/// with no variance (eigenvalue below 1e-12 of the largest) are dropped as zero columns instead
/// of failing. A zero column adds nothing to the range, which is all the finder uses.
fn orthonormal_columns(a: Array2<f32>) -> Result<Array2<f32>, FusionError> {
    if a.nrows() < 4 * a.ncols() {
        let (q, _) = a
            .qr_into()
            .map_err(|e| FusionError::Linalg(format!("QR in the randomized range finder: {e}")))?;
        return Ok(q);
    }
    gram_orthonormalise(&gram_orthonormalise(&a)?)
}

/// One pass of `A ↦ A V Λ^{-1/2}` (see [`orthonormal_columns`]).
fn gram_orthonormalise(a: &Array2<f32>) -> Result<Array2<f32>, FusionError> {
    let gram = ops::cross_gram(&a.view(), &a.view());
    let (values, vectors) = gram.eigh(UPLO::Lower).map_err(|e| {
        FusionError::Linalg(format!(
            "eigh of the {0}x{0} Gram matrix in the randomized range finder: {e}",
            gram.nrows()
        ))
    })?;
    let top = values.iter().cloned().fold(0.0f64, f64::max);
    let mut scale = vectors;
    for (mut col, &value) in scale.columns_mut().into_iter().zip(values.iter()) {
        if top > 0.0 && value > 1e-12 * top {
            col /= value.sqrt();
        } else {
            col.fill(0.0);
        }
    }
    Ok(ops::dense_dot(&a.view(), &scale.mapv(|v| v as f32).view()))
}

fn randomized_pca(
    view: &impl CentredProducts,
    k: usize,
    p: &PcaParams,
    progress: &ProgressBar,
) -> Result<(Array2<f32>, Array1<f64>), FusionError> {
    let (n, d) = (view.n_rows(), view.n_cols());
    let l = (k + p.oversample).min(d).min(n);
    let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
    let omega = ops::gaussian(d, l, &mut rng);
    let mut q = orthonormal_columns(view.dot(&omega.view())?)?;
    for _ in 0..p.power_iters {
        let z = orthonormal_columns(view.t_dot(&q.view())?)?;
        q = orthonormal_columns(view.dot(&z.view())?)?;
        progress.tick();
    }
    // Bᵀ = (X - 1μᵀ)ᵀ Q (d x l); its left singular vectors are the principal axes.
    let bt = view.t_dot(&q.view())?.mapv(|v| v as f64);
    let (u, sigma, _) = bt
        .svddc(JobSvd::Some)
        .map_err(|e| FusionError::Linalg(format!("SVD of the {d}x{l} sketch: {e}")))?;
    let u = u.ok_or_else(|| FusionError::Linalg("SVD returned no U".into()))?;
    let comps = u.slice(s![.., ..k]).mapv(|v| v as f32);
    let vars = sigma.slice(s![..k]).mapv(|s| s * s / (n - 1) as f64);
    Ok((comps, vars))
}

impl FittedPca {
    /// `(X - 1μᵀ) V`: the scores of `x` on the kept axes.
    pub fn transform(&self, x: &FeatureMatrix) -> Result<Array2<f32>, FusionError> {
        if x.n_cols() != self.mean.len() {
            return Err(FusionError::DimMismatch {
                view: "input",
                expected: self.mean.len(),
                got: x.n_cols(),
            });
        }
        Ok(ops::centred_dot(
            x,
            &self.mean.view(),
            &self.components.view(),
        ))
    }

    /// Number of components kept `k`.
    pub fn n_components(&self) -> usize {
        self.components.ncols()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::CsrMatrix;
    use rand::Rng;

    /// Data with a known spectrum: scores with variances 100, 25, 9, 4 along a random rotation
    /// of R^6, plus small isotropic noise.
    fn planted(n: usize, seed: u64) -> (Array2<f32>, Array2<f32>) {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let g = ops::gaussian(6, 6, &mut rng);
        let (basis, _) = g.qr_into().unwrap();
        let stds = [10.0f32, 5.0, 3.0, 2.0];
        let z = ops::gaussian(n, 4, &mut rng);
        let mut x = Array2::<f32>::zeros((n, 6));
        for i in 0..n {
            for (j, s) in stds.iter().enumerate() {
                x.row_mut(i).scaled_add(z[[i, j]] * s, &basis.column(j));
            }
            for v in x.row_mut(i).iter_mut() {
                *v += 0.01 * (rng.r#gen::<f32>() - 0.5) + 3.0;
            }
        }
        (x, basis)
    }

    #[test]
    fn exact_and_randomized_find_the_planted_axes() {
        let (x, basis) = planted(4000, 7);
        let fm = FeatureMatrix::Dense(x);
        let fit = |method| {
            PcaParams::new(3)
                .method(method)
                .oversample(2)
                .seed(1)
                .check()
                .unwrap()
                .fit(&fm)
                .unwrap()
        };
        let (exact, randomized) = (fit(PcaMethod::Exact), fit(PcaMethod::Randomized));
        for pca in [&exact, &randomized] {
            // Sample axes of 4,000 draws are within a few degrees of the planted ones.
            for j in 0..3 {
                let cos = pca.components.column(j).dot(&basis.column(j)).abs();
                assert!(cos > 0.99, "axis {j}: |cos| = {cos}");
            }
            let v = &pca.explained_variance;
            // Sample variances of 4000 draws are within a few percent of 100, 25, 9.
            for (got, want) in v.iter().zip([100.0, 25.0, 9.0]) {
                assert!((got / want - 1.0).abs() < 0.08, "{v}");
            }
            // Scores are centred and uncorrelated.
            let t = pca.transform(&fm).unwrap();
            let c = t.t().dot(&t) / 3999.0;
            assert!(t.mean_axis(Axis(0)).unwrap().iter().all(|m| m.abs() < 1e-3));
            assert!((c[[0, 1]] / c[[0, 0]]).abs() < 1e-3, "{c}");
        }
        // The randomized solver matches the exact one on the same sample.
        for j in 0..3 {
            let cos = exact
                .components
                .column(j)
                .dot(&randomized.components.column(j))
                .abs();
            assert!(cos > 0.9999, "axis {j}: |cos| = {cos}");
            let rel = randomized.explained_variance[j] / exact.explained_variance[j] - 1.0;
            assert!(rel.abs() < 1e-4, "variance {j}: {rel}");
        }
    }

    #[test]
    fn sparse_input_gives_the_same_axes_as_dense() {
        // 24 columns, ~15% filled, column c scaled by 2^(c/2): well separated eigenvalues.
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let mut rows: Vec<Vec<(u32, f32)>> = Vec::new();
        for _ in 0..2000 {
            let mut row = Vec::new();
            for c in 0..24u32 {
                if rng.r#gen::<f32>() < 0.15 {
                    row.push((c, rng.r#gen::<f32>() * 2f32.powf(c as f32 / 2.0)));
                }
            }
            rows.push(row);
        }
        let sp = CsrMatrix::from_rows(rows, 24);
        let dense = FeatureMatrix::Dense(sp.to_dense());
        let sparse = FeatureMatrix::Sparse(sp);
        let a = PcaParams::new(4)
            .method(PcaMethod::Exact)
            .check()
            .unwrap()
            .fit(&dense)
            .unwrap();
        for method in [PcaMethod::Exact, PcaMethod::Randomized] {
            let b = PcaParams::new(4)
                .method(method)
                .power_iters(6)
                .oversample(20)
                .check()
                .unwrap()
                .fit(&sparse)
                .unwrap();
            for j in 0..2 {
                let cos = a.components.column(j).dot(&b.components.column(j)).abs();
                assert!(cos > 0.99, "{method:?} axis {j}: {cos}");
                let rel = (a.explained_variance[j] / b.explained_variance[j] - 1.0).abs();
                assert!(rel < 1e-3, "{method:?} variance {j}: {rel}");
            }
            assert!((a.total_variance / b.total_variance - 1.0).abs() < 1e-5);
        }
    }

    #[test]
    fn tall_orthonormal_columns_span_the_input_even_when_ill_conditioned_or_deficient() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        // 2,000 x 12, column scales from 1 to 1e-4, and two columns copies of others.
        let mut a = ops::gaussian(2000, 12, &mut rng);
        for (j, mut col) in a.columns_mut().into_iter().enumerate() {
            col *= 10f32.powf(-(j as f32) / 3.0);
        }
        let copy = a.column(0).to_owned();
        a.column_mut(10).assign(&copy);
        let copy = a.column(3).to_owned();
        a.column_mut(11).assign(&copy);
        let q = orthonormal_columns(a.clone()).unwrap();
        assert_eq!(q.dim(), (2000, 12));
        let qtq = q.t().dot(&q);
        let norms: Vec<f32> = (0..12).map(|j| qtq[[j, j]]).collect();
        let kept = norms.iter().filter(|&&v| (v - 1.0).abs() < 1e-4).count();
        let zero = norms.iter().filter(|&&v| v.abs() < 1e-6).count();
        assert_eq!((kept, zero), (10, 2), "{norms:?}");
        for i in 0..12 {
            for j in 0..12 {
                if i != j {
                    assert!(qtq[[i, j]].abs() < 1e-4, "QᵀQ[{i},{j}] = {}", qtq[[i, j]]);
                }
            }
        }
        // Every column of A lies in the span: A - Q Qᵀ A is small relative to A.
        let residual = &a - &q.dot(&q.t().dot(&a));
        for j in 0..12 {
            let r = residual.column(j).mapv(|v| v * v).sum().sqrt();
            let n = a.column(j).mapv(|v| v * v).sum().sqrt();
            assert!(r < 1e-3 * n, "column {j}: residual {r} of {n}");
        }
    }

    #[test]
    fn rejects_bad_input() {
        assert!(PcaParams::new(0).check().is_err());
        let x = FeatureMatrix::Dense(ndarray::array![[1.0f32, f32::NAN], [0.0, 1.0]]);
        let err = PcaParams::new(1).check().unwrap().fit(&x).unwrap_err();
        assert!(err.to_string().contains("row 0"), "{err}");
    }
}
