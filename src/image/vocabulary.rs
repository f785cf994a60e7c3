//! Visual vocabularies: k-means codebooks, PCA and diagonal Gaussian mixtures.
//!
//! linfa's `KMeans` with its defaults (10 runs, k-means|| init) does not finish on a million
//! descriptors, so this is our own Lloyd k-means (Lloyd 1982) whose assignment step is one BLAS
//! matrix product per chunk (‖x‖² − 2x·c + ‖c‖²), seeded by k-means++ (Arthur & Vassilvitskii
//! 2007) on a subsample; empty clusters are re-seeded from the points farthest from their centre.
//! Fisher vectors (Perronnin, Sánchez & Mensink 2010) need a diagonal GMM, fitted by EM
//! (Dempster et al. 1977) with a variance floor, on PCA-reduced descriptors; the GMM starts from
//! k-means. All randomness comes from an explicit seed (ChaCha8).

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::ImageError;

/// Rows per chunk of the assignment step (bounds the n×k distance matrix).
const CHUNK: usize = 4096;

/// `a · b` by `matrixmultiply` (single-threaded, any strides, so transposed views are free).
///
/// Per-image products run inside rayon workers, where OpenBLAS (which ndarray's `dot` calls)
/// may start threads of its own and oversubscribe the cores; matrixmultiply stays on the
/// calling thread. On the (heavily shared) dev machine the switch took the Fisher block from
/// 10.7 to 20.1 images/s wall, the whole stage only from 5.6 to 7.9: it is not the main cost.
pub fn mm(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    debug_assert_eq!(k, k2);
    let mut c = Array2::<f32>::zeros((m, n));
    if m == 0 || n == 0 || k == 0 || k != k2 {
        return c;
    }
    let (rsa, csa) = (a.strides()[0], a.strides()[1]);
    let (rsb, csb) = (b.strides()[0], b.strides()[1]);
    // SAFETY: the pointers and strides come from live views of the stated shapes, and `c` is a
    // fresh contiguous m × n array.
    unsafe {
        matrixmultiply::sgemm(
            m,
            k,
            n,
            1.0,
            a.as_ptr(),
            rsa,
            csa,
            b.as_ptr(),
            rsb,
            csb,
            0.0,
            c.as_mut_ptr(),
            n as isize,
            1,
        );
    }
    c
}

fn sq_norm(r: ndarray::ArrayView1<f32>) -> f32 {
    r.iter().map(|v| v * v).sum()
}

/// A k-means codebook with the squared norms of its centres.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    pub centroids: Array2<f32>,
    pub sq_norms: Array1<f32>,
}

impl Codebook {
    pub fn new(centroids: Array2<f32>) -> Self {
        let sq_norms = centroids.rows().into_iter().map(sq_norm).collect();
        Self {
            centroids,
            sq_norms,
        }
    }

    pub fn k(&self) -> usize {
        self.centroids.nrows()
    }

    pub fn dim(&self) -> usize {
        self.centroids.ncols()
    }

    /// Squared distances of every row of `x` to every centre (n × k), clamped at 0.
    pub fn sq_distances(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let mut d = mm(x, self.centroids.t());
        for (mut row, xr) in d.rows_mut().into_iter().zip(x.rows()) {
            let xn = sq_norm(xr);
            for (v, cn) in row.iter_mut().zip(&self.sq_norms) {
                *v = (xn - 2.0 * *v + cn).max(0.0);
            }
        }
        d
    }

    /// Index of the nearest centre and its squared distance, for each row of `x`.
    /// Chunks of rows are processed in parallel (rayon) when there are several.
    pub fn assign(&self, x: ArrayView2<f32>) -> Vec<(usize, f32)> {
        use rayon::prelude::*;
        let starts: Vec<usize> = (0..x.nrows()).step_by(CHUNK).collect();
        let one = |start: usize| -> Vec<(usize, f32)> {
            let end = (start + CHUNK).min(x.nrows());
            let d = self.sq_distances(x.slice(s![start..end, ..]));
            d.rows()
                .into_iter()
                .map(|row| {
                    let mut best = (0, f32::INFINITY);
                    for (j, &v) in row.iter().enumerate() {
                        if v < best.1 {
                            best = (j, v);
                        }
                    }
                    best
                })
                .collect()
        };
        if starts.len() <= 1 {
            return starts.into_iter().flat_map(one).collect();
        }
        let parts: Vec<Vec<(usize, f32)>> = starts.into_par_iter().map(one).collect();
        parts.into_iter().flatten().collect()
    }
}

/// Settings of [`kmeans`].
#[derive(Debug, Clone, Copy)]
pub struct KMeansSettings {
    pub k: usize,
    pub max_iter: usize,
    /// Stop when the relative decrease of the inertia is below this.
    pub tol: f64,
    /// k-means++ runs on at most this many points.
    pub init_sample: usize,
    pub seed: u64,
}

/// Lloyd k-means with BLAS assignment and k-means++ init; returns the codebook and the final
/// inertia (sum of squared distances).
pub fn kmeans(x: ArrayView2<f32>, s: &KMeansSettings) -> Result<(Codebook, f64), ImageError> {
    let (n, d) = x.dim();
    if s.k < 1 || n < s.k {
        return Err(ImageError::Fit {
            what: format!("k-means with k = {}", s.k),
            reason: format!("needs at least k descriptors, got {n}"),
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(s.seed);
    let centroids = kmeans_pp(x, s.k, s.init_sample, &mut rng);
    let mut book = Codebook::new(centroids);
    let mut prev = f64::INFINITY;
    let mut inertia = f64::INFINITY;
    for _ in 0..s.max_iter.max(1) {
        let assign = book.assign(x);
        inertia = assign.iter().map(|a| a.1 as f64).sum();
        let mut sums = Array2::<f64>::zeros((s.k, d));
        let mut counts = vec![0usize; s.k];
        for (row, &(j, _)) in x.rows().into_iter().zip(&assign) {
            counts[j] += 1;
            let mut srow = sums.row_mut(j);
            for (a, &v) in srow.iter_mut().zip(row) {
                *a += v as f64;
            }
        }
        // empty clusters take the points farthest from their centre
        let empties: Vec<usize> = (0..s.k).filter(|&j| counts[j] == 0).collect();
        let mut far: Vec<usize> = Vec::new();
        if !empties.is_empty() {
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| assign[b].1.total_cmp(&assign[a].1).then(a.cmp(&b)));
            far = order.into_iter().take(empties.len()).collect();
        }
        let mut c = Array2::<f32>::zeros((s.k, d));
        for (j, &count) in counts.iter().enumerate() {
            if count > 0 {
                let inv = 1.0 / count as f64;
                for (o, &v) in c.row_mut(j).iter_mut().zip(sums.row(j)) {
                    *o = (v * inv) as f32;
                }
            }
        }
        for (&j, &i) in empties.iter().zip(&far) {
            c.row_mut(j).assign(&x.row(i));
        }
        book = Codebook::new(c);
        if empties.is_empty() && prev.is_finite() && (prev - inertia) <= s.tol * prev.abs() {
            break;
        }
        prev = inertia;
    }
    Ok((book, inertia))
}

/// k-means++ seeding on a random subsample of at most `sample` rows.
fn kmeans_pp(x: ArrayView2<f32>, k: usize, sample: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    let n = x.nrows();
    let m = sample.max(k).min(n);
    let idx = rand::seq::index::sample(rng, n, m).into_vec();
    let sub = x.select(Axis(0), &idx);
    let mut centres = Array2::<f32>::zeros((k, x.ncols()));
    let first = rng.gen_range(0..m);
    centres.row_mut(0).assign(&sub.row(first));
    let mut dmin: Vec<f32> = sub
        .rows()
        .into_iter()
        .map(|r| {
            sqd(
                r.as_slice().unwrap_or(&r.to_vec()),
                &centres.row(0).to_vec(),
            )
        })
        .collect();
    for c in 1..k {
        let total: f64 = dmin.iter().map(|&v| v as f64).sum();
        let pick = if total <= 0.0 {
            rng.gen_range(0..m)
        } else {
            let mut t = rng.gen_range(0.0..total);
            let mut chosen = m - 1;
            for (i, &v) in dmin.iter().enumerate() {
                t -= v as f64;
                if t < 0.0 {
                    chosen = i;
                    break;
                }
            }
            chosen
        };
        centres.row_mut(c).assign(&sub.row(pick));
        let cv = centres.row(c).to_vec();
        for (dm, r) in dmin.iter_mut().zip(sub.rows()) {
            let v = r
                .iter()
                .zip(&cv)
                .map(|(a, b)| (a - b) * (a - b))
                .sum::<f32>();
            if v < *dm {
                *dm = v;
            }
        }
    }
    centres
}

fn sqd(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum()
}

/// A PCA projection: `(x - mean) · components` (components are `d_in × d_out` columns).
#[derive(Debug, Clone, PartialEq)]
pub struct Pca {
    pub mean: Array1<f32>,
    pub components: Array2<f32>,
}

impl Pca {
    /// Fits the top `dim` principal directions of the rows of `x`.
    pub fn fit(x: ArrayView2<f32>, dim: usize) -> Result<Self, ImageError> {
        use ndarray_linalg::{Eigh, UPLO};
        let (n, d) = x.dim();
        if dim == 0 || dim > d || n < 2 {
            return Err(ImageError::Fit {
                what: format!("PCA to {dim} dimensions"),
                reason: format!("needs 1 <= dim <= {d} and at least 2 descriptors, got {n}"),
            });
        }
        let xd = x.mapv(|v| v as f64);
        let mean = xd.mean_axis(Axis(0)).ok_or_else(|| ImageError::Fit {
            what: "PCA".into(),
            reason: "no rows".into(),
        })?;
        let c = &xd - &mean;
        let cov = c.t().dot(&c) / (n - 1) as f64;
        let (vals, vecs) = cov.eigh(UPLO::Upper).map_err(|e| ImageError::Fit {
            what: "PCA".into(),
            reason: e.to_string(),
        })?;
        let mut order: Vec<usize> = (0..d).collect();
        order.sort_by(|&a, &b| vals[b].total_cmp(&vals[a]));
        let mut comps = Array2::<f32>::zeros((d, dim));
        for (j, &o) in order.iter().take(dim).enumerate() {
            // deterministic sign: largest-magnitude entry positive
            let col = vecs.column(o);
            let big = col
                .iter()
                .fold(0.0f64, |a, &v| if v.abs() > a.abs() { v } else { a });
            let sign = if big < 0.0 { -1.0 } else { 1.0 };
            for i in 0..d {
                comps[[i, j]] = (col[i] * sign) as f32;
            }
        }
        Ok(Self {
            mean: mean.mapv(|v| v as f32),
            components: comps,
        })
    }

    pub fn transform(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let c = &x - &self.mean;
        mm(c.view(), self.components.view())
    }
}

/// A Gaussian mixture with diagonal covariances.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagGmm {
    pub weights: Array1<f32>,
    pub means: Array2<f32>,
    pub variances: Array2<f32>,
}

impl DiagGmm {
    pub fn k(&self) -> usize {
        self.weights.len()
    }

    /// Posteriors γ (n × k) of each component for each row, computed stably in log space.
    pub fn posteriors(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let k = self.k();
        let d = self.means.ncols();
        let inv = self.variances.mapv(|v| 1.0 / v);
        let mu_inv = &self.means * &inv;
        let consts: Vec<f32> = (0..k)
            .map(|j| {
                let logdet: f32 = self.variances.row(j).iter().map(|v| v.ln()).sum();
                let m2: f32 = self
                    .means
                    .row(j)
                    .iter()
                    .zip(mu_inv.row(j))
                    .map(|(a, b)| a * b)
                    .sum();
                self.weights[j].max(1e-30).ln()
                    - 0.5 * (logdet + m2 + d as f32 * (std::f32::consts::TAU).ln())
            })
            .collect();
        let x2 = x.mapv(|v| v * v);
        // log p = const - 0.5 Σ x²/σ² + Σ x μ/σ²
        let mut lp = mm(x, mu_inv.t()) - mm(x2.view(), inv.t()) * 0.5;
        for mut row in lp.rows_mut() {
            let mut mx = f32::NEG_INFINITY;
            for (v, c) in row.iter_mut().zip(&consts) {
                *v += c;
                mx = mx.max(*v);
            }
            let mut sum = 0.0;
            for v in row.iter_mut() {
                *v = (*v - mx).exp();
                sum += *v;
            }
            row.iter_mut().for_each(|v| *v /= sum);
        }
        lp
    }

    /// Fits by EM starting from k-means; `var_floor` is relative to the mean data variance.
    pub fn fit(
        x: ArrayView2<f32>,
        k: usize,
        iters: usize,
        var_floor: f32,
        seed: u64,
    ) -> Result<Self, ImageError> {
        let (n, d) = x.dim();
        let km = KMeansSettings {
            k,
            max_iter: 10,
            tol: 1e-4,
            init_sample: 20_000,
            seed,
        };
        let (book, _) = kmeans(x, &km)?;
        let global_var = x.var_axis(Axis(0), 0.0);
        let floor = (global_var.mean().unwrap_or(1.0) * var_floor).max(1e-8);
        let mut gmm = DiagGmm {
            weights: Array1::from_elem(k, 1.0 / k as f32),
            means: book.centroids.clone(),
            variances: Array2::from_shape_fn((k, d), |(_, j)| global_var[j].max(floor)),
        };
        for _ in 0..iters.max(1) {
            let mut s0 = Array1::<f32>::zeros(k);
            let mut s1 = Array2::<f32>::zeros((k, d));
            let mut s2 = Array2::<f32>::zeros((k, d));
            for start in (0..n).step_by(CHUNK) {
                let end = (start + CHUNK).min(n);
                let xs = x.slice(s![start..end, ..]);
                let g = gmm.posteriors(xs);
                s0 += &g.sum_axis(Axis(0));
                s1 += &mm(g.t(), xs);
                s2 += &mm(g.t(), xs.mapv(|v| v * v).view());
            }
            for j in 0..k {
                let nj = s0[j].max(1e-10);
                gmm.weights[j] = (s0[j] / n as f32).max(1e-8);
                for t in 0..d {
                    let m = s1[[j, t]] / nj;
                    gmm.means[[j, t]] = m;
                    gmm.variances[[j, t]] = (s2[[j, t]] / nj - m * m).max(floor);
                }
            }
            let total = gmm.weights.sum();
            gmm.weights /= total;
        }
        Ok(gmm)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Three tight clusters around far-apart centres in 4-D, shuffled.
    fn blobs(seed: u64) -> (Array2<f32>, Vec<usize>) {
        let centres = [
            [0.0, 0.0, 0.0, 0.0],
            [10.0, 0.0, 5.0, 0.0],
            [0.0, -10.0, 0.0, 8.0],
        ];
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = 300;
        let mut x = Array2::zeros((n, 4));
        let mut labels = Vec::new();
        for i in 0..n {
            let c = rng.gen_range(0..3);
            labels.push(c);
            for j in 0..4 {
                x[[i, j]] = centres[c][j] + rng.gen_range(-0.5..0.5);
            }
        }
        (x, labels)
    }

    #[test]
    fn kmeans_recovers_separated_clusters() {
        let (x, labels) = blobs(1);
        let s = KMeansSettings {
            k: 3,
            max_iter: 50,
            tol: 1e-6,
            init_sample: 1000,
            seed: 5,
        };
        let (book, inertia) = kmeans(x.view(), &s).unwrap();
        let a = book.assign(x.view());
        // same partition: every true cluster maps to exactly one found cluster
        let mut map = [usize::MAX; 3];
        for (l, (j, _)) in labels.iter().zip(&a) {
            if map[*l] == usize::MAX {
                map[*l] = *j;
            }
            assert_eq!(map[*l], *j);
        }
        assert_ne!(map[0], map[1]);
        assert_ne!(map[1], map[2]);
        assert_ne!(map[0], map[2]);
        // inertia of uniform(-0.5,0.5) noise: 300 * 4 * 1/12 = 100
        assert!(inertia < 120.0, "{inertia}");
    }

    #[test]
    fn kmeans_is_deterministic_for_a_seed() {
        let (x, _) = blobs(2);
        let s = KMeansSettings {
            k: 5,
            max_iter: 20,
            tol: 0.0,
            init_sample: 100,
            seed: 11,
        };
        let (a, _) = kmeans(x.view(), &s).unwrap();
        let (b, _) = kmeans(x.view(), &s).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn kmeans_rejects_too_few_points() {
        let x = Array2::<f32>::zeros((2, 3));
        let s = KMeansSettings {
            k: 4,
            max_iter: 5,
            tol: 0.0,
            init_sample: 10,
            seed: 0,
        };
        assert!(kmeans(x.view(), &s).is_err());
    }

    #[test]
    fn sq_distances_match_brute_force() {
        let (x, _) = blobs(3);
        let c = x.slice(s![0..7, ..]).to_owned();
        let book = Codebook::new(c.clone());
        let d = book.sq_distances(x.view());
        for i in 0..x.nrows() {
            for j in 0..7 {
                let b = sqd(&x.row(i).to_vec(), &c.row(j).to_vec());
                assert!((d[[i, j]] - b).abs() < 1e-3 * (1.0 + b));
            }
        }
    }

    #[test]
    fn pca_finds_dominant_axis() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let x = Array2::from_shape_fn((500, 3), |(_, j)| {
            let s = [5.0, 1.0, 0.1][j];
            rng.gen_range(-1.0f32..1.0) * s
        });
        let p = Pca::fit(x.view(), 1).unwrap();
        assert!(p.components[[0, 0]].abs() > 0.99, "{:?}", p.components);
        assert_eq!(p.transform(x.view()).dim(), (500, 1));
    }

    #[test]
    fn gmm_fits_separated_clusters() {
        let (x, _) = blobs(5);
        let g = DiagGmm::fit(x.view(), 3, 20, 1e-3, 1).unwrap();
        let mut w: Vec<f32> = g.weights.to_vec();
        w.sort_by(f32::total_cmp);
        assert!((g.weights.sum() - 1.0).abs() < 1e-4);
        assert!(w[0] > 0.2, "{w:?}");
        // variance of uniform(-0.5, 0.5) is 1/12
        for v in g.variances.iter() {
            assert!((*v - 1.0 / 12.0).abs() < 0.04, "{v}");
        }
        let p = g.posteriors(x.view());
        for r in p.rows() {
            assert!((r.sum() - 1.0).abs() < 1e-4);
            assert!(r.iter().cloned().fold(0.0, f32::max) > 0.99);
        }
    }
}
