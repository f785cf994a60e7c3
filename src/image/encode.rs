//! Encodings of an image's local descriptors over a spatial pyramid, and block normalisation.
//!
//! - bag of visual words, hard or soft (kernel codebook, van Gemert et al. 2008) assignment:
//!   each region's histogram sums to 1;
//! - VLAD (Jégou et al. 2010) with intra-normalisation (Arandjelović & Zisserman 2013), then
//!   signed square root and L2 per region;
//! - Fisher vectors (Perronnin, Sánchez & Mensink 2010, "improved": signed sqrt + L2 per region)
//!   with mean and variance gradients, 2·K·D values per region;
//! - spatial pyramid (Lazebnik, Schmid & Ponce 2006): level g splits the image into g×g cells,
//!   regions ordered level by level, row-major within a level;
//! - block normalisation: Hellinger (signed sqrt) then L2, optionally the explicit additive χ²
//!   feature map of Vedaldi & Zisserman (2012), so a linear method sees a χ² kernel.

use ndarray::{Array1, Array2, ArrayView2, Axis, s};
use serde::{Deserialize, Serialize};

use super::vocabulary::{Codebook, DiagGmm, Pca, mm};

/// Region index lists of a spatial pyramid: for each region (level by level, row-major), the
/// descriptor rows whose centre falls in it.
pub fn pyramid_regions(
    xy: &[[f32; 2]],
    width: usize,
    height: usize,
    levels: &[u32],
) -> Vec<Vec<usize>> {
    let mut regions = Vec::new();
    for &g in levels {
        let g = g.max(1) as usize;
        let mut cells = vec![Vec::new(); g * g];
        for (i, p) in xy.iter().enumerate() {
            let cx = ((p[0] * g as f32 / width.max(1) as f32) as usize).min(g - 1);
            let cy = ((p[1] * g as f32 / height.max(1) as f32) as usize).min(g - 1);
            cells[cy * g + cx].push(i);
        }
        regions.extend(cells);
    }
    regions
}

/// Number of regions of a pyramid.
pub fn n_regions(levels: &[u32]) -> usize {
    levels.iter().map(|&g| (g.max(1) * g.max(1)) as usize).sum()
}

/// How descriptors vote in a bag of words.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Assignment {
    /// Nearest word only.
    Hard,
    /// The `neighbours` nearest words, weights ∝ exp(−beta · d²) normalised to 1.
    Soft {
        /// Nearest words sharing each descriptor's vote (at least 1; more than k counts as k).
        neighbours: usize,
        /// Sharpness of the weights, per unit of squared distance (> 0).
        beta: f32,
    },
}

/// Bag-of-words histograms per region (each sums to 1, or is all zero when empty).
pub fn bow(
    desc: ArrayView2<f32>,
    regions: &[Vec<usize>],
    book: &Codebook,
    assignment: Assignment,
) -> Vec<f32> {
    let k = book.k();
    // per-descriptor sparse votes
    let votes: Vec<Vec<(usize, f32)>> = match assignment {
        Assignment::Hard => book
            .assign(desc)
            .into_iter()
            .map(|(j, _)| vec![(j, 1.0)])
            .collect(),
        Assignment::Soft { neighbours, beta } => {
            let d = book.sq_distances(desc);
            let r = neighbours.clamp(1, k);
            d.rows()
                .into_iter()
                .map(|row| {
                    let mut idx: Vec<usize> = (0..k).collect();
                    idx.select_nth_unstable_by(r - 1, |&a, &b| row[a].total_cmp(&row[b]));
                    idx.truncate(r);
                    let dmin = idx.iter().map(|&j| row[j]).fold(f32::INFINITY, f32::min);
                    let mut v: Vec<(usize, f32)> = idx
                        .iter()
                        .map(|&j| (j, (-beta * (row[j] - dmin)).exp()))
                        .collect();
                    let s: f32 = v.iter().map(|p| p.1).sum();
                    v.iter_mut().for_each(|p| p.1 /= s);
                    v
                })
                .collect()
        }
    };
    let mut out = vec![0f32; k * regions.len()];
    for (ri, rows) in regions.iter().enumerate() {
        let h = &mut out[ri * k..(ri + 1) * k];
        for &i in rows {
            for &(j, w) in &votes[i] {
                h[j] += w;
            }
        }
        let s: f32 = h.iter().sum();
        if s > 0.0 {
            h.iter_mut().for_each(|v| *v /= s);
        }
    }
    out
}

/// VLAD per region: residual sums per word, intra-normalised, signed sqrt, L2 (k·d per region).
pub fn vlad(desc: ArrayView2<f32>, regions: &[Vec<usize>], book: &Codebook) -> Vec<f32> {
    let (k, d) = (book.k(), book.dim());
    let assign = book.assign(desc);
    let mut out = vec![0f32; k * d * regions.len()];
    // plain slices, so that the residual sums vectorise
    let desc = desc.as_standard_layout();
    let centroids = book.centroids.as_standard_layout();
    let (Some(xs), Some(cs)) = (desc.as_slice(), centroids.as_slice()) else {
        unreachable!("standard-layout arrays are contiguous");
    };
    for (ri, rows) in regions.iter().enumerate() {
        let v = &mut out[ri * k * d..(ri + 1) * k * d];
        for &i in rows {
            let j = assign[i].0;
            let acc = &mut v[j * d..(j + 1) * d];
            for ((a, x), cc) in acc
                .iter_mut()
                .zip(&xs[i * d..(i + 1) * d])
                .zip(&cs[j * d..(j + 1) * d])
            {
                *a += x - cc;
            }
        }
        for j in 0..k {
            l2_normalise(&mut v[j * d..(j + 1) * d]);
        }
        signed_sqrt(v);
        l2_normalise(v);
    }
    out
}

/// A PCA projection plus a diagonal GMM, the model of Fisher vectors.
#[derive(Debug, Clone, PartialEq)]
pub struct FisherModel {
    /// Projection applied to the descriptors before the GMM.
    pub pca: Pca,
    /// Diagonal GMM over the projected descriptors.
    pub gmm: DiagGmm,
}

impl FisherModel {
    /// Length per region: 2·K·D.
    pub fn region_dim(&self) -> usize {
        2 * self.gmm.k() * self.gmm.means.ncols()
    }
}

/// Groups the descriptors of a pyramid by the set of regions that hold them ("atoms": with
/// levels 1 and 2, the four cells of level 2). Returns the descriptor order (atom by atom),
/// the start of each atom in it (plus the end), and for each region the atoms it holds.
fn pyramid_atoms(regions: &[Vec<usize>], n: usize) -> (Vec<usize>, Vec<usize>, Vec<Vec<usize>>) {
    // each descriptor's regions as a bit set of `words` words
    let words = regions.len().div_ceil(64).max(1);
    let mut member = vec![0u64; n * words];
    for (ri, rows) in regions.iter().enumerate() {
        for &i in rows {
            member[i * words + ri / 64] |= 1 << (ri % 64);
        }
    }
    let mut ids: std::collections::HashMap<&[u64], usize> = std::collections::HashMap::new();
    let mut atom_of = vec![usize::MAX; n];
    let mut signatures: Vec<&[u64]> = Vec::new();
    for (i, m) in member.chunks_exact(words).enumerate() {
        if m.iter().all(|&b| b == 0) {
            continue;
        }
        let next = signatures.len();
        let a = *ids.entry(m).or_insert(next);
        if a == next {
            signatures.push(m);
        }
        atom_of[i] = a;
    }
    let mut order: Vec<usize> = (0..n).filter(|&i| atom_of[i] != usize::MAX).collect();
    order.sort_by_key(|&i| atom_of[i]);
    let mut starts = vec![0usize; signatures.len() + 1];
    for &i in &order {
        starts[atom_of[i] + 1] += 1;
    }
    for a in 0..signatures.len() {
        starts[a + 1] += starts[a];
    }
    let mut holds = vec![Vec::new(); regions.len()];
    for (a, sig) in signatures.iter().enumerate() {
        for (ri, held) in holds.iter_mut().enumerate() {
            if sig[ri / 64] >> (ri % 64) & 1 == 1 {
                held.push(a);
            }
        }
    }
    (order, starts, holds)
}

/// Improved Fisher vectors per region (mean then variance gradients; signed sqrt + L2).
///
/// The descriptors are PCA-projected and their posteriors computed once. The zeroth, first and
/// second order statistics are computed by matrix products once per pyramid atom (see
/// `pyramid_atoms`), and each region's statistics are the sum of its atoms', so a
/// descriptor enters the products once however many levels hold it.
pub fn fisher(desc: ArrayView2<f32>, regions: &[Vec<usize>], model: &FisherModel) -> Vec<f32> {
    let gmm = &model.gmm;
    let (k, d) = (gmm.k(), gmm.means.ncols());
    let per = 2 * k * d;
    let mut out = vec![0f32; per * regions.len()];
    if desc.nrows() == 0 {
        return out;
    }
    let (order, starts, holds) = pyramid_atoms(regions, desc.nrows());
    let x = model.pca.transform(desc).select(Axis(0), &order);
    let gamma = gmm.posteriors(x.view());
    let x2 = x.mapv(|v| v * v);
    let n_atoms = starts.len() - 1;
    let mut a0 = Array2::<f32>::zeros((n_atoms, k));
    let mut a1 = Vec::with_capacity(n_atoms);
    let mut a2 = Vec::with_capacity(n_atoms);
    for a in 0..n_atoms {
        let r = starts[a]..starts[a + 1];
        let g = gamma.slice(s![r.clone(), ..]);
        a0.row_mut(a).assign(&g.sum_axis(Axis(0)));
        a1.push(mm(g.t(), x.slice(s![r.clone(), ..])));
        a2.push(mm(g.t(), x2.slice(s![r, ..])));
    }
    let sd = gmm.variances.mapv(f32::sqrt);
    let mut s0 = Array1::<f32>::zeros(k);
    let mut s1 = Array2::<f32>::zeros((k, d));
    let mut s2 = Array2::<f32>::zeros((k, d));
    for (ri, rows) in regions.iter().enumerate() {
        if rows.is_empty() {
            continue;
        }
        s0.fill(0.0);
        s1.fill(0.0);
        s2.fill(0.0);
        for &a in &holds[ri] {
            s0 += &a0.row(a);
            s1 += &a1[a];
            s2 += &a2[a];
        }
        let n = rows.len() as f32;
        let v = &mut out[ri * per..(ri + 1) * per];
        for j in 0..k {
            let w = gmm.weights[j].max(1e-12);
            let cu = 1.0 / (n * w.sqrt());
            let cv = 1.0 / (n * (2.0 * w).sqrt());
            for t in 0..d {
                let mu = gmm.means[[j, t]];
                let sig = sd[[j, t]];
                let var = sig * sig;
                v[j * d + t] = cu * (s1[[j, t]] - mu * s0[j]) / sig;
                v[k * d + j * d + t] =
                    cv * ((s2[[j, t]] - 2.0 * mu * s1[[j, t]] + mu * mu * s0[j]) / var - s0[j]);
            }
        }
        signed_sqrt(v);
        l2_normalise(v);
    }
    out
}

/// How a block is normalised as a whole.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BlockNorm {
    /// Signed square root (Hellinger for histograms) before L2.
    pub sqrt: bool,
    /// L2-normalise the whole block.
    pub l2: bool,
    /// Order n of the explicit additive χ² map (0: none); multiplies the width by 2n+1.
    /// When set, the signed square root is not applied (the χ² map wants the raw histogram):
    /// the map, then L2.
    pub chi2_order: usize,
}

impl Default for BlockNorm {
    fn default() -> Self {
        Self {
            sqrt: true,
            l2: true,
            chi2_order: 0,
        }
    }
}

impl BlockNorm {
    /// Output width for an input of width `dim`.
    pub fn out_dim(&self, dim: usize) -> usize {
        dim * (2 * self.chi2_order + 1)
    }

    /// Normalises `v` (χ² map first when asked, in place of the sqrt), returning the new vector.
    pub fn apply(&self, mut v: Vec<f32>) -> Vec<f32> {
        if self.chi2_order > 0 {
            v = chi2_map(&v, self.chi2_order);
        } else if self.sqrt {
            signed_sqrt(&mut v);
        }
        if self.l2 {
            l2_normalise(&mut v);
        }
        v
    }
}

/// Explicit additive χ² map (Vedaldi & Zisserman 2012) of order `n` with vlfeat's sampling
/// step L = 2π / (5.86·√n + 3.65) (the period being 5.86·√n + 3.65): ψ(x)·ψ(y) ≈ 2xy/(x+y)
/// for x, y ≥ 0. Negative inputs use
/// |x| with the sign carried on every component.
pub fn chi2_map(v: &[f32], n: usize) -> Vec<f32> {
    let period = 5.86 * (n as f64).sqrt() + 3.65;
    let l = std::f64::consts::TAU / period;
    let kappa = |lambda: f64| 1.0 / (std::f64::consts::PI * lambda).cosh(); // sech(πλ)
    let mut out = vec![0f32; v.len() * (2 * n + 1)];
    for (i, &x) in v.iter().enumerate() {
        let o = &mut out[i * (2 * n + 1)..(i + 1) * (2 * n + 1)];
        let ax = x.abs() as f64;
        if ax <= 0.0 {
            continue;
        }
        let sign = x.signum() as f64;
        let lx = ax.ln();
        o[0] = (sign * (ax * l * kappa(0.0)).sqrt()) as f32;
        for j in 1..=n {
            let a = (2.0 * ax * l * kappa(j as f64 * l)).sqrt();
            o[2 * j - 1] = (sign * a * (j as f64 * l * lx).cos()) as f32;
            o[2 * j] = (sign * a * (j as f64 * l * lx).sin()) as f32;
        }
    }
    out
}

/// Replaces each value x by sign(x)·√|x|, in place.
pub fn signed_sqrt(v: &mut [f32]) {
    v.iter_mut().for_each(|x| *x = x.signum() * x.abs().sqrt());
}

/// Scales `v` in place to unit L2 norm; an all-zero vector is left as it is.
pub fn l2_normalise(v: &mut [f32]) {
    let n = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if n > 0.0 {
        v.iter_mut().for_each(|x| *x /= n);
    }
}

/// Test helper: a matrix from a list of rows.
#[cfg(test)]
fn mat(rows: &[&[f32]]) -> ndarray::Array2<f32> {
    let d = rows[0].len();
    ndarray::Array2::from_shape_vec(
        (rows.len(), d),
        rows.iter().flat_map(|r| r.iter().copied()).collect(),
    )
    .unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, array};

    fn book() -> Codebook {
        Codebook::new(array![[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    }

    #[test]
    fn pyramid_layout_is_level_then_row_major() {
        // 100x100 image: points in the four quadrants
        let xy = [
            [10.0, 10.0],
            [90.0, 10.0],
            [10.0, 90.0],
            [90.0, 90.0],
            [60.0, 20.0],
        ];
        let r = pyramid_regions(&xy, 100, 100, &[1, 2]);
        assert_eq!(r.len(), 5);
        assert_eq!(n_regions(&[1, 2]), 5);
        assert_eq!(r[0], vec![0, 1, 2, 3, 4]);
        assert_eq!(r[1], vec![0]); // top-left
        assert_eq!(r[2], vec![1, 4]); // top-right
        assert_eq!(r[3], vec![2]); // bottom-left
        assert_eq!(r[4], vec![3]); // bottom-right
    }

    #[test]
    fn hard_bow_counts_and_sums_to_one() {
        let x = mat(&[&[0.1, 0.0], &[9.0, 1.0], &[11.0, 0.0], &[1.0, 9.0]]);
        let regions = vec![vec![0, 1, 2, 3], vec![1, 2], vec![]];
        let h = bow(x.view(), &regions, &book(), Assignment::Hard);
        assert_eq!(h.len(), 9);
        assert_eq!(&h[0..3], &[0.25, 0.5, 0.25]);
        assert_eq!(&h[3..6], &[0.0, 1.0, 0.0]);
        assert_eq!(&h[6..9], &[0.0, 0.0, 0.0]);
    }

    #[test]
    fn soft_bow_spreads_votes_and_sums_to_one() {
        // exactly between words 0 and 1 -> equal split of that descriptor
        let x = mat(&[&[5.0, 0.0]]);
        let h = bow(
            x.view(),
            &[vec![0]],
            &book(),
            Assignment::Soft {
                neighbours: 2,
                beta: 0.1,
            },
        );
        assert!(
            (h[0] - 0.5).abs() < 1e-5 && (h[1] - 0.5).abs() < 1e-5 && h[2] == 0.0,
            "{h:?}"
        );
    }

    #[test]
    fn vlad_dimension_and_norms() {
        let x = mat(&[&[1.0, 0.0], &[0.0, 2.0], &[9.0, 1.0], &[1.0, 12.0]]);
        let regions = vec![vec![0, 1, 2, 3], vec![0], vec![]];
        let v = vlad(x.view(), &regions, &book());
        assert_eq!(v.len(), 3 * 2 * 3);
        let norm = |s: &[f32]| s.iter().map(|a| a * a).sum::<f32>().sqrt();
        assert!((norm(&v[0..6]) - 1.0).abs() < 1e-5);
        assert!((norm(&v[6..12]) - 1.0).abs() < 1e-5);
        assert_eq!(norm(&v[12..18]), 0.0);
        // region 1: descriptor (1,0) -> word 0, residual (1,0): intra-norm (1,0), sqrt, L2
        assert_eq!(&v[6..12], &[1.0, 0.0, 0.0, 0.0, 0.0, 0.0]);
    }

    /// Fisher vectors straight from the definition (per region, dense posteriors with `exp`).
    fn fisher_reference(
        desc: &ndarray::Array2<f32>,
        regions: &[Vec<usize>],
        m: &FisherModel,
    ) -> Vec<f32> {
        let (k, d) = (m.gmm.k(), m.gmm.means.ncols());
        let mut out = Vec::new();
        for rows in regions {
            let mut v = vec![0f32; 2 * k * d];
            let n = rows.len() as f32;
            for &i in rows {
                let x: Vec<f32> = (0..d)
                    .map(|t| {
                        (0..desc.ncols())
                            .map(|c| (desc[[i, c]] - m.pca.mean[c]) * m.pca.components[[c, t]])
                            .sum()
                    })
                    .collect();
                let lp: Vec<f32> = (0..k)
                    .map(|j| {
                        m.gmm.weights[j].ln()
                            - 0.5
                                * (0..d)
                                    .map(|t| {
                                        let var = m.gmm.variances[[j, t]];
                                        (std::f32::consts::TAU * var).ln()
                                            + (x[t] - m.gmm.means[[j, t]]).powi(2) / var
                                    })
                                    .sum::<f32>()
                    })
                    .collect();
                let mx = lp.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = lp.iter().map(|l| (l - mx).exp()).collect();
                let z: f32 = e.iter().sum();
                for j in 0..k {
                    let g = e[j] / z;
                    let w = m.gmm.weights[j];
                    for t in 0..d {
                        let sd = m.gmm.variances[[j, t]].sqrt();
                        let u = (x[t] - m.gmm.means[[j, t]]) / sd;
                        v[j * d + t] += g * u / (n * w.sqrt());
                        v[k * d + j * d + t] += g * (u * u - 1.0) / (n * (2.0 * w).sqrt());
                    }
                }
            }
            signed_sqrt(&mut v);
            l2_normalise(&mut v);
            out.extend(v);
        }
        out
    }

    #[test]
    fn fisher_over_pyramid_atoms_matches_the_definition() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(11);
        let n = 90;
        let desc = ndarray::Array2::from_shape_fn((n, 6), |_| rng.gen_range(-1.0f32..1.0));
        let xy: Vec<[f32; 2]> = (0..n)
            .map(|_| [rng.gen_range(0.0..100.0), rng.gen_range(0.0..80.0)])
            .collect();
        let k = 3;
        let model = FisherModel {
            pca: Pca {
                mean: Array1::from_shape_fn(6, |_| rng.gen_range(-0.2f32..0.2)),
                components: ndarray::Array2::from_shape_fn((6, 4), |_| rng.gen_range(-0.5f32..0.5)),
            },
            gmm: DiagGmm {
                weights: array![0.5, 0.3, 0.2],
                means: ndarray::Array2::from_shape_fn((k, 4), |_| rng.gen_range(-0.5f32..0.5)),
                variances: ndarray::Array2::from_shape_fn((k, 4), |_| rng.gen_range(0.05f32..0.3)),
            },
        };
        for levels in [vec![1, 2], vec![1, 2, 3], vec![2]] {
            let regions = pyramid_regions(&xy, 100, 80, &levels);
            let got = fisher(desc.view(), &regions, &model);
            let want = fisher_reference(&desc, &regions, &model);
            assert_eq!(got.len(), want.len());
            for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                assert!(
                    (a - b).abs() < 2e-4,
                    "levels {levels:?}, value {i}: {a} vs {b}"
                );
            }
        }
    }

    #[test]
    fn fisher_dimension_norm_and_hand_value() {
        // one Gaussian, 1-D, mean 0 var 1, identity PCA: u = mean(x), v = (mean(x²) - 1)/√2
        let model = FisherModel {
            pca: Pca {
                mean: Array1::zeros(1),
                components: array![[1.0]],
            },
            gmm: DiagGmm {
                weights: array![1.0],
                means: array![[0.0]],
                variances: array![[1.0]],
            },
        };
        assert_eq!(model.region_dim(), 2);
        let x = mat(&[&[1.0], &[3.0]]);
        let f = fisher(x.view(), &[vec![0, 1]], &model);
        // u = 2, v = (5 - 1)/√2 = 2√2; signed sqrt: (√2, √(2√2)); L2
        let (a, b) = (2f32.sqrt(), (2.0 * 2f32.sqrt()).sqrt());
        let n = (a * a + b * b).sqrt();
        assert!(
            (f[0] - a / n).abs() < 1e-5 && (f[1] - b / n).abs() < 1e-5,
            "{f:?}"
        );
    }

    #[test]
    fn block_norm_sqrt_then_l2() {
        let v = BlockNorm::default().apply(vec![0.25, 0.0, 0.75, -4.0]);
        let expect = [0.5f32, 0.0, 0.75f32.sqrt(), -2.0];
        let n = expect.iter().map(|a| a * a).sum::<f32>().sqrt();
        for (a, b) in v.iter().zip(expect) {
            assert!((a - b / n).abs() < 1e-6);
        }
        let plain = BlockNorm {
            sqrt: false,
            l2: false,
            chi2_order: 0,
        };
        assert_eq!(plain.apply(vec![3.0, 4.0]), vec![3.0, 4.0]);
    }

    #[test]
    fn chi2_map_approximates_chi2_kernel() {
        for (x, y) in [(0.2f32, 0.3f32), (0.05, 0.5), (0.7, 0.7), (0.01, 0.02)] {
            let px = chi2_map(&[x], 3);
            let py = chi2_map(&[y], 3);
            assert_eq!(px.len(), 7);
            let dot: f32 = px.iter().zip(&py).map(|(a, b)| a * b).sum();
            let k = 2.0 * x * y / (x + y);
            assert!(
                (dot - k).abs() < 0.02 * k + 1e-3,
                "x={x} y={y}: {dot} vs {k}"
            );
        }
        assert_eq!(
            BlockNorm {
                chi2_order: 1,
                ..Default::default()
            }
            .out_dim(10),
            30
        );
    }
}
