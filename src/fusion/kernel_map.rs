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
//! any view.
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

use super::FusionError;
use super::ops::{self, Centred};
use super::pca::{self, PcaMethod, PcaParams};
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
    /// `γ = gamma_scale / median squared distance between landmarks`.
    pub gamma_scale: f64,
    /// Seed of the landmark draw and of the randomized PCA.
    pub seed: u64,
}

impl Default for KernelMapParams {
    fn default() -> Self {
        Self {
            landmarks: 0,
            input_dims: 512,
            gamma_scale: 1.0,
            seed: 0,
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
        }
        Ok(KernelMapValidParams(self))
    }
}

/// Checked [`KernelMapParams`]; only this type can fit.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelMapValidParams(KernelMapParams);

/// A fitted kernel map: `x ↦ exp(-γ ‖unit((x - μ) V) - lⱼ‖²)` for each landmark `lⱼ`.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedKernelMap {
    /// `d` column means of the view.
    pub mean: Array1<f32>,
    /// `d x k` PCA basis (`None`: the identity, the view had at most `input_dims` columns).
    pub basis: Option<Array2<f32>>,
    /// `m x k` landmarks, unit rows.
    pub landmarks: Array2<f32>,
    pub gamma: f32,
}

impl KernelMapValidParams {
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
        let p = &self.0;
        let n = x.n_rows();
        if n < 3 {
            return Err(FusionError::TooFewRows { rows: n, needed: 3 });
        }
        ops::check_finite(x, view)?;
        let mean = ops::column_means(x);
        let centred = Centred::new(x, mean);
        let basis = if x.n_cols() > p.input_dims {
            let pca = PcaParams {
                components: p.input_dims,
                method: PcaMethod::Auto,
                exact_max: 2048,
                power_iters: 2,
                oversample: 64,
                seed: p.seed,
            };
            Some(pca::fit_centred(&centred, &pca, progress)?.components)
        } else {
            None
        };
        let reduced = reduce(&centred.mean, basis.as_ref(), x);
        let m = p.landmarks.min(n);
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut chosen = sample(&mut rng, n, m).into_vec();
        chosen.sort_unstable();
        let landmarks = reduced.select(Axis(0), &chosen);
        let median = median_squared_distance(&landmarks, &mut rng);
        if median <= 0.0 {
            return Err(FusionError::NoVariance { view });
        }
        Ok(FittedKernelMap {
            mean: centred.mean,
            basis,
            landmarks,
            gamma: (p.gamma_scale / median) as f32,
        })
    }
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

/// Median of the squared distances between up to 20,000 random pairs of distinct rows.
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
    d2[d2.len() / 2]
}

impl FittedKernelMap {
    /// Input columns `d`.
    pub fn input_dims(&self) -> usize {
        self.mean.len()
    }

    /// Output columns `m`.
    pub fn output_dims(&self) -> usize {
        self.landmarks.nrows()
    }

    /// `φ(x)`: `n x m` kernel values against the landmarks.
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
        let z = reduce(&self.mean, self.basis.as_ref(), x);
        let mut k = ops::dense_dot(&z.view(), &self.landmarks.t());
        let gamma = self.gamma;
        k.axis_iter_mut(Axis(0))
            .into_par_iter()
            .zip(z.axis_iter(Axis(0)).into_par_iter())
            .for_each(|(mut row, zr)| {
                let zz = zr.dot(&zr);
                // ‖z - l‖² = ‖z‖² + 1 - 2 z·l for unit landmarks (clamped: rounding).
                row.mapv_inplace(|s| (-gamma * (zz + 1.0 - 2.0 * s).max(0.0)).exp());
            });
        Ok(k)
    }

    /// Checks shapes and values of arrays loaded from disk.
    pub fn from_parts(
        mean: Array1<f32>,
        basis: Option<Array2<f32>>,
        landmarks: Array2<f32>,
        gamma: f32,
    ) -> Result<Self, FusionError> {
        let k = basis.as_ref().map_or(mean.len(), |b| b.ncols());
        let basis_ok = basis.as_ref().is_none_or(|b| b.nrows() == mean.len());
        if !basis_ok || landmarks.ncols() != k || !(gamma.is_finite() && gamma > 0.0) {
            return Err(FusionError::BadArrays(format!(
                "kernel map: mean {}, basis {:?}, landmarks {:?}, gamma {gamma}",
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::ops::gaussian;

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
            },
            &x,
        );
        assert!(map.basis.is_none());
        assert_eq!(map.output_dims(), 10);
        let phi = map
            .transform(&FeatureMatrix::Dense(x.clone()), "x")
            .unwrap();
        let mean = x.mean_axis(Axis(0)).unwrap();
        for i in [0, 17, 39] {
            let mut z = &x.row(i) - &mean;
            z /= z.dot(&z).sqrt();
            for j in 0..10 {
                let d2: f32 = (&z - &map.landmarks.row(j)).mapv(|v| v * v).sum();
                let want = (-map.gamma * d2).exp();
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
        };
        let a = fit(p.clone(), &x);
        let b = fit(p.clone(), &x);
        assert_eq!(a, b);
        assert_eq!(a.basis.as_ref().unwrap().dim(), (30, 10));
        let doubled = fit(
            KernelMapParams {
                gamma_scale: 2.0,
                ..p
            },
            &x,
        );
        assert!((doubled.gamma / a.gamma - 2.0).abs() < 1e-5);
        // Unit rows: squared distances lie in [0, 4], so γ ≥ 1/4.
        assert!(a.gamma >= 0.25, "{}", a.gamma);
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
