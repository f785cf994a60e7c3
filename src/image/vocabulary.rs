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

/// Rows per block of the nearest-centre search: one block's products (`ASSIGN_BLOCK` × k
/// floats, 512 KiB at k = 512) stay in the core's cache instead of an n × k matrix in memory.
const ASSIGN_BLOCK: usize = 256;

/// `a · b` by `matrixmultiply` (single-threaded, any strides, so transposed views are free).
///
/// Per-image products run inside rayon workers, where OpenBLAS (which ndarray's `dot` calls)
/// may start threads of its own and oversubscribe the cores; matrixmultiply stays on the
/// calling thread. On the (heavily shared) dev machine the switch took the Fisher block from
/// 10.7 to 20.1 images/s wall, the whole stage only from 5.6 to 7.9: it is not the main cost.
pub fn mm(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
    let (m, n) = (a.nrows(), b.ncols());
    let mut c = Array2::<f32>::zeros((m, n));
    if let Some(out) = c.as_slice_mut() {
        mm_into(a, b, out);
    }
    c
}

/// `a · b` written into `c` (row-major m × n, `c.len() == m * n`), whose old contents are
/// ignored; see [`mm`].
pub fn mm_into(a: ArrayView2<f32>, b: ArrayView2<f32>, c: &mut [f32]) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert_eq!(k, k2, "mm_into: inner dimensions differ");
    assert_eq!(c.len(), m * n, "mm_into: output has the wrong length");
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        c.fill(0.0);
        return;
    }
    let (rsa, csa) = (a.strides()[0], a.strides()[1]);
    let (rsb, csb) = (b.strides()[0], b.strides()[1]);
    // SAFETY: the pointers and strides come from live views of the stated shapes, and `c` is a
    // contiguous m × n slice; with beta = 0 its old contents are not read.
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
}

/// Sum of squares with eight independent accumulators, so that it vectorises (a plain
/// `iter().sum()` must add in order and stays scalar).
#[inline(always)]
pub fn sum_sq(d: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = d.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v * v;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().map(|v| v * v).sum::<f32>()
}

/// Index and value of the first smallest entry (`(0, ∞)` when none is below ∞), as a
/// sequential scan with `<` would find it, but over eight lanes (each keeping its first
/// minimum and where it was) so that it vectorises.
#[inline(always)]
fn argmin(row: &[f32]) -> (usize, f32) {
    let mut val = [f32::INFINITY; 8];
    let mut at = [0u32; 8];
    let chunks = row.chunks_exact(8);
    let rest = chunks.remainder();
    for (ci, c) in chunks.enumerate() {
        let ci = ci as u32;
        for ((l, a), &v) in val.iter_mut().zip(at.iter_mut()).zip(c) {
            let lt = v < *l;
            *l = if lt { v } else { *l };
            *a = if lt { ci } else { *a };
        }
    }
    let mut best = (0usize, f32::INFINITY);
    for (lane, (&v, &a)) in val.iter().zip(&at).enumerate() {
        let j = a as usize * 8 + lane;
        if v < best.1 || (v == best.1 && v < f32::INFINITY && j < best.0) {
            best = (j, v);
        }
    }
    let base = row.len() - rest.len();
    for (j, &v) in rest.iter().enumerate() {
        if v < best.1 {
            best = (base + j, v);
        }
    }
    best
}

/// Sum over eight lanes (vectorises; the order of the additions is fixed).
#[inline(always)]
pub fn sum8(d: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = d.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, v) in acc.iter_mut().zip(c) {
            *a += v;
        }
    }
    acc.iter().sum::<f32>() + rest.iter().sum::<f32>()
}

/// Largest entry (−∞ for an empty slice; NaNs are passed over), over eight lanes.
#[inline(always)]
fn max8(d: &[f32]) -> f32 {
    let mut acc = [f32::NEG_INFINITY; 8];
    let chunks = d.chunks_exact(8);
    let rest = chunks.remainder();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a = if v > *a { v } else { *a };
        }
    }
    acc.iter()
        .chain(rest)
        .fold(f32::NEG_INFINITY, |m, &v| if v > m { v } else { m })
}

/// `exp(x)` to about 2 ulp (Cephes' `expf`: x = n·ln 2 + r, a degree-6 polynomial in r, times
/// 2ⁿ), without branches so that loops over it vectorise; inputs below −87.3 give about 1e-38.
#[inline(always)]
pub fn fast_exp(x: f32) -> f32 {
    let x = x.clamp(-87.3, 88.3);
    // round to nearest by adding and subtracting 1.5·2²³
    let t = x * std::f32::consts::LOG2_E;
    let z = t + 12_582_912.0;
    let n = z - 12_582_912.0;
    let r = x - n * 0.693_359_4 - n * -2.121_944_4e-4;
    let mut p = 1.987_569_1e-4;
    p = p * r + 1.398_2e-3;
    p = p * r + 8.333_452e-3;
    p = p * r + 4.166_579_6e-2;
    p = p * r + 0.166_666_65;
    p = p * r + 0.5;
    let y = p * r * r + r + 1.0;
    // z's low mantissa bits hold n (offset by 0x40_0000): 2ⁿ is (n + 127) << 23
    let pow2 = (z.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127)) << 23;
    y * f32::from_bits(pow2)
}

fn sq_norm(r: ndarray::ArrayView1<f32>) -> f32 {
    match r.as_slice() {
        Some(v) => sum_sq(v),
        None => r.iter().map(|v| v * v).sum(),
    }
}

/// A k-means codebook with the squared norms of its centres.
#[derive(Debug, Clone, PartialEq)]
pub struct Codebook {
    /// The centres, one per row (k × descriptor length).
    pub centroids: Array2<f32>,
    /// Squared L2 norm of each centre, in row order.
    pub sq_norms: Array1<f32>,
}

impl Codebook {
    /// A codebook of the rows of `centroids`, with their squared norms computed.
    pub fn new(centroids: Array2<f32>) -> Self {
        let sq_norms = centroids.rows().into_iter().map(sq_norm).collect();
        Self {
            centroids,
            sq_norms,
        }
    }

    /// Number of centres (k).
    pub fn k(&self) -> usize {
        self.centroids.nrows()
    }

    /// Length of each centre (the descriptor length).
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
            let mut out = Vec::with_capacity(end - start);
            self.assign_into(x.slice(s![start..end, ..]), &mut out);
            out
        };
        if starts.len() <= 1 {
            return starts.into_iter().flat_map(one).collect();
        }
        let parts: Vec<Vec<(usize, f32)>> = starts.into_par_iter().map(one).collect();
        parts.into_iter().flatten().collect()
    }

    /// [`Self::assign`] on the calling thread, appending to `out`: blocks of
    /// [`ASSIGN_BLOCK`] rows, one matrix product each into a reused buffer, then per row the
    /// clamped squared distances ‖x‖² − 2x·c + ‖c‖² and their first minimum.
    fn assign_into(&self, x: ArrayView2<f32>, out: &mut Vec<(usize, f32)>) {
        #[cfg(target_arch = "x86_64")]
        if std::arch::is_x86_feature_detected!("avx2") {
            // SAFETY: the CPU has AVX2, checked just above.
            return unsafe { self.assign_into_avx2(x, out) };
        }
        self.assign_into_body(x, out)
    }

    /// [`Self::assign_into`] compiled for AVX2 (the same operations in the same order).
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    unsafe fn assign_into_avx2(&self, x: ArrayView2<f32>, out: &mut Vec<(usize, f32)>) {
        self.assign_into_body(x, out)
    }

    #[inline(always)]
    fn assign_into_body(&self, x: ArrayView2<f32>, out: &mut Vec<(usize, f32)>) {
        let (n, k) = (x.nrows(), self.k());
        let norms: Vec<f32> = self.sq_norms.to_vec();
        let mut buf = vec![0f32; ASSIGN_BLOCK.min(n) * k];
        for start in (0..n).step_by(ASSIGN_BLOCK) {
            let end = (start + ASSIGN_BLOCK).min(n);
            let xb = x.slice(s![start..end, ..]);
            let block = &mut buf[..(end - start) * k];
            mm_into(xb, self.centroids.t(), block);
            for (row, xr) in block.chunks_exact_mut(k.max(1)).zip(xb.rows()) {
                let xn = sq_norm(xr);
                for (v, &cn) in row.iter_mut().zip(&norms) {
                    let d = xn - 2.0 * *v + cn;
                    *v = if d > 0.0 { d } else { 0.0 };
                }
                out.push(argmin(row));
            }
        }
    }
}

/// Settings of [`kmeans`].
#[derive(Debug, Clone, Copy)]
pub struct KMeansSettings {
    /// Number of centres; [`kmeans`] fails when it is 0 or above the number of rows.
    pub k: usize,
    /// Most Lloyd iterations (at least one is run).
    pub max_iter: usize,
    /// Stop when the relative decrease of the inertia is below this.
    pub tol: f64,
    /// k-means++ runs on at most this many points.
    pub init_sample: usize,
    /// Seed of the k-means++ seeding (its subsample and its picks).
    pub seed: u64,
}

/// Lloyd k-means with BLAS assignment and k-means++ init; returns the codebook and the inertia
/// (sum of squared distances) of the last assignment, made before the last update of the
/// centres (so at most that of the returned codebook's own assignment).
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
    /// Mean of the input rows (length `d_in`), subtracted before projecting.
    pub mean: Array1<f32>,
    /// The principal directions as columns (`d_in × d_out`); [`Pca::fit`] orders them by
    /// decreasing variance.
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

    /// `(x - mean) · components`, computed as `x · components - mean · components` so that no
    /// centred copy of `x` is made.
    pub fn transform(&self, x: ArrayView2<f32>) -> Array2<f32> {
        let shift = self.mean.dot(&self.components);
        let mut y = mm(x, self.components.view());
        y -= &shift;
        y
    }
}

/// A Gaussian mixture with diagonal covariances.
#[derive(Debug, Clone, PartialEq)]
pub struct DiagGmm {
    /// Mixing weight of each component (length k).
    pub weights: Array1<f32>,
    /// Mean of each component, one per row (k × d).
    pub means: Array2<f32>,
    /// Per-dimension variances of each component, one row per component (k × d).
    pub variances: Array2<f32>,
}

impl DiagGmm {
    /// Number of components (k).
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
        // log p = const - 0.5 Σ x²/σ² + Σ x μ/σ², as one product [x, x²] · [μ/σ²; -1/(2σ²)]ᵀ
        let n = x.nrows();
        let mut xx = Array2::<f32>::zeros((n, 2 * d));
        xx.slice_mut(s![.., ..d]).assign(&x);
        xx.slice_mut(s![.., d..])
            .zip_mut_with(&x, |o, &v| *o = v * v);
        let mut w = Array2::<f32>::zeros((2 * d, k));
        w.slice_mut(s![..d, ..]).assign(&mu_inv.t());
        w.slice_mut(s![d.., ..])
            .zip_mut_with(&inv.t(), |o, &v| *o = -0.5 * v);
        let mut lp = mm(xx.view(), w.view());
        softmax_rows(&mut lp, &consts);
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

/// Per row of `lp`: add `consts`, then a softmax (exp of the difference to the row maximum,
/// normalised to sum 1). Compiled for AVX2 where the CPU has it.
fn softmax_rows(lp: &mut Array2<f32>, consts: &[f32]) {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2, checked just above.
        return unsafe { softmax_rows_avx2(lp, consts) };
    }
    softmax_rows_body(lp, consts)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn softmax_rows_avx2(lp: &mut Array2<f32>, consts: &[f32]) {
    softmax_rows_body(lp, consts)
}

#[inline(always)]
fn softmax_rows_body(lp: &mut Array2<f32>, consts: &[f32]) {
    for mut row in lp.rows_mut() {
        let Some(row) = row.as_slice_mut() else {
            unreachable!("a fresh array's rows are contiguous");
        };
        for (v, c) in row.iter_mut().zip(consts) {
            *v += c;
        }
        let mx = max8(row);
        for v in row.iter_mut() {
            *v = fast_exp(*v - mx);
        }
        let sum = sum8(row);
        row.iter_mut().for_each(|v| *v /= sum);
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
    fn argmin_is_the_first_minimum_of_a_sequential_scan() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        for len in [1usize, 7, 8, 9, 31, 64, 513] {
            for _ in 0..50 {
                // few distinct values, so ties are common
                let row: Vec<f32> = (0..len).map(|_| rng.gen_range(0..6) as f32).collect();
                let mut best = (0, f32::INFINITY);
                for (j, &v) in row.iter().enumerate() {
                    if v < best.1 {
                        best = (j, v);
                    }
                }
                assert_eq!(argmin(&row), best, "{row:?}");
            }
        }
        assert_eq!(argmin(&[f32::INFINITY; 9]), (0, f32::INFINITY));
        assert_eq!(argmin(&[f32::NAN, 2.0, f32::NAN, 1.0]), (3, 1.0));
    }

    #[test]
    fn assign_matches_brute_force_across_blocks() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let x = Array2::from_shape_fn((ASSIGN_BLOCK * 2 + 37, 16), |_| rng.gen_range(-1.0..1.0));
        let c = Array2::from_shape_fn((40, 16), |_| rng.gen_range(-1.0..1.0));
        let book = Codebook::new(c.clone());
        let a = book.assign(x.view());
        assert_eq!(a.len(), x.nrows());
        for (r, &(j, d)) in x.rows().into_iter().zip(&a) {
            let dist: Vec<f32> = c
                .rows()
                .into_iter()
                .map(|cr| r.iter().zip(cr).map(|(p, q)| (p - q) * (p - q)).sum())
                .collect();
            let best = dist.iter().cloned().fold(f32::INFINITY, f32::min);
            assert!(
                dist[j] <= best + 1e-5,
                "row assigned {j} at {}, best {best}",
                dist[j]
            );
            assert!((d - dist[j]).abs() < 1e-4);
        }
    }

    #[test]
    fn fast_exp_is_close_to_exp() {
        let mut x = -90.0f32;
        while x < 20.0 {
            let (a, b) = (fast_exp(x), x.exp());
            if x > -87.0 {
                assert!((a - b).abs() <= 4e-7 * b, "exp({x}): {a} vs {b}");
            } else {
                assert!(a < 1e-37, "exp({x}) = {a}");
            }
            x += 0.013;
        }
        assert_eq!(fast_exp(0.0), 1.0);
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
