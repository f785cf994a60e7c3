//! Blocked, parallel and centring-aware products of a [`FeatureMatrix`] with dense matrices.
//!
//! CCA and PCA only ever need a view `X` (n x d) through products with thin dense matrices
//! (`(X - 1μᵀ) W`, `(X - 1μᵀ)ᵀ Q`) and, for small `d`, its centred Gram matrix. This module does
//! these in row blocks over rayon, so a dense view is never copied whole and a sparse view
//! (`crate::sparse::CsrMatrix`) is never densified whole: sparse products go through the CSR rows
//! and a CSR copy of `Xᵀ` (a transpose costs `nnz`, not `n·d`). A dense view too large to hold
//! is read from disk a block of rows at a time for each product instead ([`StreamedCentred`]).
//! The blocks' partial sums are added in one fixed order ([`tree_sum`]), so a result does not
//! depend on the scheduling. Dense blocks are centred before the product, which avoids the
//! cancellation of `XᵀX - n·μμᵀ` in `f32` for non-negative features (bag-of-words histograms).
//! The randomized range finder these serve is the one of Halko, Martinsson and Tropp, "Finding
//! structure with randomness", SIAM Review 53 (2011).

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewMut2, Axis, s};
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::FusionError;
use crate::matrix::{FeatureMatrix, first_non_finite};
use crate::sparse::CsrMatrix;

/// Rows per block of the blocked products: large enough for good GEMM throughput, small enough
/// that a centred dense copy of a block (`BLOCK x d` floats) stays a few MiB.
pub(crate) const BLOCK: usize = 1024;

/// The sum of `leaf(i)` over the blocks `0..blocks`, added in a fixed tree: the blocks are
/// halved at their midpoint, each half summed (in parallel, `rayon::join`), the halves added
/// left to right. rayon's own `reduce` groups the additions by how the work happened to be
/// split and stolen, so the last bits of a sum of many blocks moved from run to run (the fit
/// at 50,000 pairs differed in most of its files between two runs of one binary) and with the
/// number of threads; this order depends on neither. rayon also halves at the midpoint, but
/// adds the blocks of a leaf it stopped splitting one after the other: where no leaf holds more
/// than two blocks (up to 8 blocks on 2 threads), the two orders are the same. `None` for no
/// blocks.
pub(crate) fn tree_sum<T: Send>(
    blocks: usize,
    leaf: &(impl Fn(usize) -> T + Sync),
    add: &(impl Fn(T, T) -> T + Sync),
) -> Option<T> {
    fn range<T: Send>(
        start: usize,
        end: usize,
        leaf: &(impl Fn(usize) -> T + Sync),
        add: &(impl Fn(T, T) -> T + Sync),
    ) -> T {
        if end - start == 1 {
            return leaf(start);
        }
        let mid = start + (end - start) / 2;
        let (left, right) = rayon::join(
            || range(start, mid, leaf, add),
            || range(mid, end, leaf, add),
        );
        add(left, right)
    }
    (blocks > 0).then(|| range(0, blocks, leaf, add))
}

/// How many blocks of [`BLOCK`] rows `n` rows make.
fn blocks_of(n: usize) -> usize {
    n.div_ceil(BLOCK)
}

/// The rows of block `b` among `n` rows.
fn block_rows(b: usize, n: usize) -> std::ops::Range<usize> {
    b * BLOCK..((b + 1) * BLOCK).min(n)
}

/// Which view an error is about ("x" or "y", or "input" for single-view PCA).
pub(crate) type ViewName = &'static str;

/// Checks that every stored value is finite; names the first offending row and column.
pub(crate) fn check_finite(x: &FeatureMatrix, view: ViewName) -> Result<(), FusionError> {
    non_finite_error(x.first_non_finite(), view)
}

/// [`check_finite`] for a dense view.
pub(crate) fn check_finite_dense(m: &ArrayView2<f32>, view: ViewName) -> Result<(), FusionError> {
    non_finite_error(first_non_finite(m), view)
}

/// [`check_finite`] for a sparse matrix (only the stored values can be non-finite).
pub(crate) fn check_finite_sparse(m: &CsrMatrix, view: ViewName) -> Result<(), FusionError> {
    non_finite_error(m.first_non_finite(), view)
}

fn non_finite_error(at: Option<(usize, usize)>, view: ViewName) -> Result<(), FusionError> {
    match at {
        Some((row, col)) => Err(FusionError::NonFinite { view, row, col }),
        None => Ok(()),
    }
}

/// The column sums of a block of dense rows, in `f64`: one leaf of [`column_means`].
fn column_sums(rows: &ArrayView2<f32>) -> Vec<f64> {
    let mut acc = vec![0f64; rows.ncols()];
    for row in rows.rows() {
        for (a, &v) in acc.iter_mut().zip(row.iter()) {
            *a += v as f64;
        }
    }
    acc
}

/// `Σ (x - μ)²` over a block of dense rows, in `f64`: one leaf of [`total_variance`].
fn centred_square_sum(rows: &ArrayView2<f32>, mean: &ArrayView1<f32>) -> f64 {
    let mut acc = 0f64;
    for row in rows.rows() {
        for (&v, &mu) in row.iter().zip(mean.iter()) {
            let c = (v - mu) as f64;
            acc += c * c;
        }
    }
    acc
}

/// Turns `Xᵀ Q` into `(X - 1μᵀ)ᵀ Q` by subtracting `μ (1ᵀQ)`.
fn subtract_mean_term(xt_q: &mut Array2<f32>, mean: &ArrayView1<f32>, q: &ArrayView2<f32>) {
    let col_sums = q.sum_axis(Axis(0));
    for (mut row, &mu) in xt_q.rows_mut().into_iter().zip(mean.iter()) {
        row.scaled_add(-mu, &col_sums);
    }
}

/// Column means in `f64` accumulation, returned as `f32`.
pub(crate) fn column_means(x: &FeatureMatrix) -> Array1<f32> {
    let n = x.n_rows().max(1) as f64;
    let d = x.n_cols();
    let sums: Vec<f64> = match x {
        FeatureMatrix::Dense(m) => tree_sum(
            blocks_of(m.nrows()),
            &|b| column_sums(&m.slice(s![block_rows(b, m.nrows()), ..])),
            &add_vecs,
        )
        .unwrap_or_else(|| vec![0f64; d]),
        FeatureMatrix::Sparse(m) => {
            let mut acc = vec![0f64; d];
            for (&c, &v) in m.indices().iter().zip(m.data()) {
                acc[c as usize] += v as f64;
            }
            acc
        }
    };
    sums.into_iter().map(|s| (s / n) as f32).collect()
}

fn add_vecs(mut a: Vec<f64>, b: Vec<f64>) -> Vec<f64> {
    for (x, y) in a.iter_mut().zip(b) {
        *x += y;
    }
    a
}

/// `tr(C)` of the sample covariance `C = (X - 1μᵀ)ᵀ(X - 1μᵀ) / (n - 1)`: the total variance.
pub(crate) fn total_variance(x: &FeatureMatrix, mean: &ArrayView1<f32>) -> f64 {
    let n = x.n_rows();
    if n < 2 {
        return 0.0;
    }
    let ss: f64 = match x {
        FeatureMatrix::Dense(m) => tree_sum(
            blocks_of(n),
            &|b| centred_square_sum(&m.slice(s![block_rows(b, n), ..]), mean),
            &|a, b| a + b,
        )
        .unwrap_or(0.0),
        FeatureMatrix::Sparse(m) => {
            // Σ_ij (x_ij - μ_j)² = Σ_ij x_ij² - n Σ_j μ_j² (in f64: the terms are moderate).
            let sq: f64 = m.data().iter().map(|&v| (v as f64) * (v as f64)).sum();
            let mu2: f64 = mean.iter().map(|&v| (v as f64) * (v as f64)).sum();
            (sq - n as f64 * mu2).max(0.0)
        }
    };
    ss / (n - 1) as f64
}

/// A view prepared for repeated centred products: the matrix, its column means and, when sparse,
/// a CSR copy of its transpose.
pub(crate) struct Centred<'a> {
    pub x: &'a FeatureMatrix,
    pub mean: Array1<f32>,
    transpose: Option<CsrMatrix>,
}

impl<'a> Centred<'a> {
    pub fn new(x: &'a FeatureMatrix, mean: Array1<f32>) -> Self {
        let transpose = match x {
            FeatureMatrix::Sparse(m) => Some(transpose_csr(m)),
            FeatureMatrix::Dense(_) => None,
        };
        Self { x, mean, transpose }
    }

    pub fn n_rows(&self) -> usize {
        self.x.n_rows()
    }

    pub fn n_cols(&self) -> usize {
        self.x.n_cols()
    }

    /// `(X - 1μᵀ) W` for `W` of shape `(d, k)`.
    pub fn dot(&self, w: &ArrayView2<f32>) -> Array2<f32> {
        centred_dot(self.x, &self.mean.view(), w)
    }

    /// `(X - 1μᵀ)ᵀ Q` for `Q` of shape `(n, k)`.
    pub fn t_dot(&self, q: &ArrayView2<f32>) -> Array2<f32> {
        let k = q.ncols();
        let d = self.n_cols();
        let mut out = match (self.x, &self.transpose) {
            (FeatureMatrix::Dense(m), _) => tree_sum(
                blocks_of(m.nrows()),
                &|b| {
                    let rows = block_rows(b, m.nrows());
                    let xb = m.slice(s![rows.clone(), ..]);
                    xb.t().dot(&q.slice(s![rows, ..]))
                },
                &|a, b| a + b,
            )
            .unwrap_or_else(|| Array2::zeros((d, k))),
            (FeatureMatrix::Sparse(_), Some(t)) => sparse_dot(t, q),
            (FeatureMatrix::Sparse(m), None) => sparse_dot(&transpose_csr(m), q),
        };
        subtract_mean_term(&mut out, &self.mean.view(), q);
        out
    }

    /// The centred Gram matrix `(X - 1μᵀ)ᵀ(X - 1μᵀ)` in `f64` (`d x d`; only for small `d`).
    pub fn gram(&self) -> Array2<f64> {
        let d = self.n_cols();
        let n = self.n_rows();
        let g32 = tree_sum(
            blocks_of(n),
            &|b| {
                let rows = block_rows(b, n);
                let xb = self.dense_centred_block(rows.start, rows.end);
                xb.t().dot(&xb)
            },
            &|a, b| a + b,
        )
        .unwrap_or_else(|| Array2::zeros((d, d)));
        g32.mapv(|v| v as f64)
    }

    /// Rows `start..end`, densified and centred.
    pub fn dense_centred_block(&self, start: usize, end: usize) -> Array2<f32> {
        let mut b = match self.x {
            FeatureMatrix::Dense(m) => m.slice(s![start..end, ..]).to_owned(),
            FeatureMatrix::Sparse(m) => {
                let mut b = Array2::<f32>::zeros((end - start, m.n_cols()));
                for (r, i) in (start..end).enumerate() {
                    let (cols, values) = m.row(i);
                    for (&c, &v) in cols.iter().zip(values) {
                        b[[r, c as usize]] = v;
                    }
                }
                b
            }
        };
        b -= &self.mean.view().insert_axis(Axis(0));
        b
    }
}

/// The centred products a PCA needs, from a view held in memory ([`Centred`]) or read from disk
/// a block of rows at a time ([`StreamedCentred`]).
pub(crate) trait CentredProducts {
    fn n_rows(&self) -> usize;
    fn n_cols(&self) -> usize;
    /// The column means `μ`.
    fn mean(&self) -> &Array1<f32>;
    /// `tr(C)` of the sample covariance (see [`total_variance`]).
    fn total_variance(&self) -> Result<f64, FusionError>;
    /// `(X - 1μᵀ) W` for `W` of shape `(d, k)`.
    fn dot(&self, w: &ArrayView2<f32>) -> Result<Array2<f32>, FusionError>;
    /// `(X - 1μᵀ)ᵀ Q` for `Q` of shape `(n, k)`.
    fn t_dot(&self, q: &ArrayView2<f32>) -> Result<Array2<f32>, FusionError>;
    /// The centred Gram matrix in `f64` (`d x d`; only for small `d`).
    fn gram(&self) -> Result<Array2<f64>, FusionError>;
}

impl CentredProducts for Centred<'_> {
    fn n_rows(&self) -> usize {
        Centred::n_rows(self)
    }
    fn n_cols(&self) -> usize {
        Centred::n_cols(self)
    }
    fn mean(&self) -> &Array1<f32> {
        &self.mean
    }
    fn total_variance(&self) -> Result<f64, FusionError> {
        Ok(total_variance(self.x, &self.mean.view()))
    }
    fn dot(&self, w: &ArrayView2<f32>) -> Result<Array2<f32>, FusionError> {
        Ok(Centred::dot(self, w))
    }
    fn t_dot(&self, q: &ArrayView2<f32>) -> Result<Array2<f32>, FusionError> {
        Ok(Centred::t_dot(self, q))
    }
    fn gram(&self) -> Result<Array2<f64>, FusionError> {
        Ok(Centred::gram(self))
    }
}

/// Reads rows `start..end` of a dense view.
pub(crate) type ReadRows<'a> = dyn Fn(usize, usize) -> Result<Array2<f32>, FusionError> + Sync + 'a;

/// A dense view too large to hold, read from disk [`BLOCK`] rows at a time, once per product:
/// the kernel maps of `fit` and `tune` take their widest image blocks so at the contest's size
/// (a Fisher vector of 20,480 columns is 3.1 GiB over 40,000 training images). Every product
/// reads and computes the same blocks of rows as [`Centred`] slices out of a matrix in memory,
/// and adds them in the same tree ([`tree_sum`]), so the results are the same to the bit.
pub(crate) struct StreamedCentred<'a> {
    n: usize,
    d: usize,
    read: &'a ReadRows<'a>,
    pub mean: Array1<f32>,
}

/// The leftmost error of two partial results, or their sum.
fn add_results<T>(
    a: Result<T, FusionError>,
    b: Result<T, FusionError>,
    add: impl Fn(T, T) -> T,
) -> Result<T, FusionError> {
    Ok(add(a?, b?))
}

impl<'a> StreamedCentred<'a> {
    /// Reads the view once to check that every value is finite (naming the first offending row
    /// and column, as [`check_finite`] does) and to take its column means (as
    /// [`column_means`]).
    pub fn new(
        n: usize,
        d: usize,
        read: &'a ReadRows<'a>,
        view: ViewName,
    ) -> Result<Self, FusionError> {
        let sums = tree_sum(
            blocks_of(n),
            &|b| {
                let rows = block_rows(b, n);
                let chunk = read(rows.start, rows.end)?;
                if let Some((row, col)) = first_non_finite(&chunk.view()) {
                    return Err(FusionError::NonFinite {
                        view,
                        row: rows.start + row,
                        col,
                    });
                }
                Ok(column_sums(&chunk.view()))
            },
            &|a, b| add_results(a, b, add_vecs),
        )
        .unwrap_or_else(|| Ok(vec![0f64; d]))?;
        let count = n.max(1) as f64;
        let mean = sums.into_iter().map(|s| (s / count) as f32).collect();
        Ok(Self { n, d, read, mean })
    }

    /// The block of rows that starts at row `start`, centred.
    fn centred_block(&self, start: usize) -> Result<Array2<f32>, FusionError> {
        let rows = block_rows(start / BLOCK, self.n);
        let mut chunk = (self.read)(rows.start, rows.end)?;
        chunk -= &self.mean.view().insert_axis(Axis(0));
        Ok(chunk)
    }

    /// `X - 1μᵀ`, whole (for a view of few columns).
    pub fn centred(&self) -> Result<Array2<f32>, FusionError> {
        try_by_row_blocks(self.n, self.d, |start, mut o| {
            o.assign(&self.centred_block(start)?);
            Ok(())
        })
    }
}

impl CentredProducts for StreamedCentred<'_> {
    fn n_rows(&self) -> usize {
        self.n
    }
    fn n_cols(&self) -> usize {
        self.d
    }
    fn mean(&self) -> &Array1<f32> {
        &self.mean
    }

    fn total_variance(&self) -> Result<f64, FusionError> {
        if self.n < 2 {
            return Ok(0.0);
        }
        let ss = tree_sum(
            blocks_of(self.n),
            &|b| {
                let rows = block_rows(b, self.n);
                let chunk = (self.read)(rows.start, rows.end)?;
                Ok(centred_square_sum(&chunk.view(), &self.mean.view()))
            },
            &|a, b| add_results(a, b, |a, b| a + b),
        )
        .unwrap_or(Ok(0.0))?;
        Ok(ss / (self.n - 1) as f64)
    }

    fn dot(&self, w: &ArrayView2<f32>) -> Result<Array2<f32>, FusionError> {
        try_by_row_blocks(self.n, w.ncols(), |start, mut o| {
            o.assign(&self.centred_block(start)?.dot(w));
            Ok(())
        })
    }

    fn t_dot(&self, q: &ArrayView2<f32>) -> Result<Array2<f32>, FusionError> {
        let (d, k) = (self.d, q.ncols());
        let mut out = tree_sum(
            blocks_of(self.n),
            &|b| {
                let rows = block_rows(b, self.n);
                let chunk = (self.read)(rows.start, rows.end)?;
                Ok(chunk.t().dot(&q.slice(s![rows, ..])))
            },
            &|a, b| add_results(a, b, |a, b| a + b),
        )
        .unwrap_or_else(|| Ok(Array2::zeros((d, k))))?;
        subtract_mean_term(&mut out, &self.mean.view(), q);
        Ok(out)
    }

    fn gram(&self) -> Result<Array2<f64>, FusionError> {
        let d = self.d;
        let g32 = tree_sum(
            blocks_of(self.n),
            &|b| {
                let xb = self.centred_block(b * BLOCK)?;
                Ok(xb.t().dot(&xb))
            },
            &|a, b| add_results(a, b, |a, b| a + b),
        )
        .unwrap_or_else(|| Ok(Array2::zeros((d, d))))?;
        Ok(g32.mapv(|v| v as f64))
    }
}

/// `(X - 1μᵀ) W` for any view; parallel over row blocks.
pub(crate) fn centred_dot(
    x: &FeatureMatrix,
    mean: &ArrayView1<f32>,
    w: &ArrayView2<f32>,
) -> Array2<f32> {
    match x {
        FeatureMatrix::Dense(m) => by_row_blocks(m.nrows(), w.ncols(), |start, mut o| {
            let end = start + o.nrows();
            let mut xb = m.slice(s![start..end, ..]).to_owned();
            xb -= &mean.insert_axis(Axis(0));
            o.assign(&xb.dot(w));
        }),
        FeatureMatrix::Sparse(m) => {
            let shift = mean.dot(w);
            by_row_blocks(m.n_rows(), w.ncols(), |start, mut o| {
                sparse_rows_dot(m, start, &mut o, w);
                o -= &shift.view().insert_axis(Axis(0));
            })
        }
    }
}

/// An `n x k` matrix whose blocks of [`BLOCK`] rows are filled in parallel by
/// `fill(first row, block)`: the loop every blocked product here shares.
pub(crate) fn by_row_blocks(
    n: usize,
    k: usize,
    fill: impl Fn(usize, ArrayViewMut2<f32>) + Sync + Send,
) -> Array2<f32> {
    let filled = try_by_row_blocks(n, k, |start, o| {
        fill(start, o);
        Ok::<(), std::convert::Infallible>(())
    });
    match filled {
        Ok(out) => out,
        Err(never) => match never {},
    }
}

/// [`by_row_blocks`] with a `fill` that can fail (a block read from disk): the first error met.
pub(crate) fn try_by_row_blocks<E: Send>(
    n: usize,
    k: usize,
    fill: impl Fn(usize, ArrayViewMut2<f32>) -> Result<(), E> + Sync + Send,
) -> Result<Array2<f32>, E> {
    let mut out = Array2::<f32>::zeros((n, k));
    out.axis_chunks_iter_mut(Axis(0), BLOCK)
        .into_par_iter()
        .enumerate()
        .try_for_each(|(b, o)| fill(b * BLOCK, o))?;
    Ok(out)
}

/// Adds rows `start..` of sparse `a`, times dense `w`, into the rows of `out`.
fn sparse_rows_dot(a: &CsrMatrix, start: usize, out: &mut ArrayViewMut2<f32>, w: &ArrayView2<f32>) {
    for (r, mut orow) in out.rows_mut().into_iter().enumerate() {
        let (cols, values) = a.row(start + r);
        for (&c, &v) in cols.iter().zip(values) {
            orow.scaled_add(v, &w.row(c as usize));
        }
    }
}

/// `A B` for sparse `A` and dense `B`, parallel over row blocks of `A`.
pub(crate) fn sparse_dot(a: &CsrMatrix, b: &ArrayView2<f32>) -> Array2<f32> {
    by_row_blocks(a.n_rows(), b.ncols(), |start, mut o| {
        sparse_rows_dot(a, start, &mut o, b)
    })
}

/// The transpose of a CSR matrix, as CSR (a counting sort of the entries by column).
pub(crate) fn transpose_csr(m: &CsrMatrix) -> CsrMatrix {
    let (n, d) = m.shape();
    let mut counts = vec![0i64; d + 1];
    for &c in m.indices() {
        counts[c as usize + 1] += 1;
    }
    for j in 0..d {
        counts[j + 1] += counts[j];
    }
    let indptr = counts.clone();
    let mut next = counts;
    let mut indices = vec![0i32; m.nnz()];
    let mut data = vec![0f32; m.nnz()];
    for i in 0..n {
        let (cols, values) = m.row(i);
        for (&c, &v) in cols.iter().zip(values) {
            let p = next[c as usize] as usize;
            indices[p] = i as i32;
            data[p] = v;
            next[c as usize] += 1;
        }
    }
    // Rows are visited in order, so the new column indices are sorted and unique.
    CsrMatrix::new(d, n, indptr, indices, data).expect("transpose of a valid CSR matrix is valid")
}

/// `A W` for dense `A`, parallel over row blocks of `A` (ndarray's own product is one thread).
pub(crate) fn dense_dot(a: &ArrayView2<f32>, w: &ArrayView2<f32>) -> Array2<f32> {
    by_row_blocks(a.nrows(), w.ncols(), |start, mut o| {
        let end = start + o.nrows();
        o.assign(&a.slice(s![start..end, ..]).dot(w));
    })
}

/// `AᵀB` of two dense, equally tall matrices, in `f64`; parallel over row blocks.
pub(crate) fn cross_gram(a: &ArrayView2<f32>, b: &ArrayView2<f32>) -> Array2<f64> {
    let n = a.nrows();
    tree_sum(
        blocks_of(n),
        &|block| {
            let rows = block_rows(block, n);
            a.slice(s![rows.clone(), ..])
                .t()
                .dot(&b.slice(s![rows, ..]))
                .mapv(|v| v as f64)
        },
        &|x, y| x + y,
    )
    .unwrap_or_else(|| Array2::zeros((a.ncols(), b.ncols())))
}

/// `Σᵢ zᵢⱼ³`, the third moment of each column of `z`, in `f64`. Its sign orients directions
/// that a decomposition returns only up to their sign (canonical pairs, PCA components): it
/// depends on the coordinates of the data along the direction, not on the basis the
/// decomposition worked in or on the BLAS kernels it ran on.
pub(crate) fn column_third_moments(z: &Array2<f32>) -> Array1<f64> {
    z.map_axis(Axis(0), |col| col.iter().map(|&v| (v as f64).powi(3)).sum())
}

/// A `rows x cols` matrix of standard normal draws (Box–Muller), from a seeded generator.
pub(crate) fn gaussian(rows: usize, cols: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    Array2::from_shape_simple_fn((rows, cols), || {
        let u1: f64 = rng.r#gen::<f64>().max(f64::MIN_POSITIVE);
        let u2: f64 = rng.r#gen::<f64>();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn tree_sum_adds_in_one_order_whatever_the_threads() {
        // One large value among small ones: added to it one at a time, the small ones vanish
        // (f32 steps are 8 apart at 1e8); summed among themselves first, they do not.
        let values: Vec<f32> = (0..37)
            .map(|i| if i == 0 { 1e8 } else { (i % 5) as f32 + 0.5 })
            .collect();
        fn midpoint(v: &[f32]) -> f32 {
            if v.len() == 1 {
                return v[0];
            }
            let (left, right) = v.split_at(v.len() / 2);
            midpoint(left) + midpoint(right)
        }
        let expected = midpoint(&values);
        let left_to_right = values.iter().fold(0f32, |a, &b| a + b);
        assert_ne!(
            expected.to_bits(),
            left_to_right.to_bits(),
            "the values must be ones where the order shows"
        );
        assert!(tree_sum(0, &|i| values[i], &|a, b| a + b).is_none());
        for threads in [1, 2, 3, 8] {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            for _ in 0..20 {
                let sum = pool.install(|| tree_sum(values.len(), &|i| values[i], &|a, b| a + b));
                let sum = sum.expect("37 blocks");
                assert_eq!(sum.to_bits(), expected.to_bits(), "{threads} threads");
            }
        }
    }

    #[test]
    fn a_view_read_a_block_of_rows_at_a_time_gives_the_products_to_the_bit() {
        use rand::SeedableRng;
        use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
        // Three blocks of rows (the last one short), non-negative like bag-of-words columns.
        let n = 2 * BLOCK + 300;
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let m = gaussian(n, 37, &mut rng).mapv(|v| v.abs() * 10.0);
        let most_rows = AtomicUsize::new(0);
        let read = |start: usize, end: usize| {
            most_rows.fetch_max(end - start, Relaxed);
            Ok(m.slice(s![start..end, ..]).to_owned())
        };
        let streamed = StreamedCentred::new(n, 37, &read, "x").unwrap();
        let x = FeatureMatrix::Dense(m.clone());
        let whole = Centred::new(&x, column_means(&x));
        assert_eq!(streamed.mean, whole.mean);
        let w = gaussian(37, 5, &mut rng);
        let q = gaussian(n, 6, &mut rng);
        let a = (
            streamed.total_variance().unwrap(),
            streamed.dot(&w.view()).unwrap(),
            streamed.t_dot(&q.view()).unwrap(),
            streamed.gram().unwrap(),
        );
        let b = (
            total_variance(&x, &whole.mean.view()),
            whole.dot(&w.view()),
            whole.t_dot(&q.view()),
            whole.gram(),
        );
        assert_eq!(a, b);
        assert_eq!(
            streamed.centred().unwrap(),
            &m - &whole.mean.view().insert_axis(Axis(0))
        );
        assert_eq!(
            most_rows.load(Relaxed),
            BLOCK,
            "never more than a block of rows"
        );

        // A NaN in the third block is named by its row in the whole view.
        let mut bad = m.clone();
        bad[[2 * BLOCK + 7, 4]] = f32::NAN;
        let read_bad = |start: usize, end: usize| Ok(bad.slice(s![start..end, ..]).to_owned());
        assert!(matches!(
            StreamedCentred::new(n, 37, &read_bad, "x"),
            Err(FusionError::NonFinite { view: "x", row, col: 4 }) if row == 2 * BLOCK + 7
        ));
    }

    fn sample_sparse() -> CsrMatrix {
        CsrMatrix::from_rows(
            vec![
                vec![(0, 1.0), (3, 2.0)],
                vec![(1, -1.0)],
                vec![],
                vec![(0, 0.5), (1, 4.0), (2, 3.0)],
            ],
            4,
        )
    }

    #[test]
    fn transpose_matches_dense() {
        let m = sample_sparse();
        assert_eq!(transpose_csr(&m).to_dense(), m.to_dense().t().to_owned());
    }

    #[test]
    fn centred_products_match_dense_for_both_storages() {
        let sp = sample_sparse();
        let dense = sp.to_dense();
        let w = array![[1.0f32, 0.5], [2.0, -1.0], [0.0, 3.0], [-1.0, 1.0]];
        let q = array![[1.0f32, 0.0], [0.0, 1.0], [2.0, 2.0], [-1.0, 0.5]];
        let mean = dense.mean_axis(Axis(0)).unwrap();
        let xc = &dense - &mean.view().insert_axis(Axis(0));
        for fm in [
            FeatureMatrix::Sparse(sp.clone()),
            FeatureMatrix::Dense(dense.clone()),
        ] {
            let mu = column_means(&fm);
            for (a, b) in mu.iter().zip(mean.iter()) {
                assert!((a - b).abs() < 1e-6);
            }
            let c = Centred::new(&fm, mu);
            let d1 = c.dot(&w.view()) - xc.dot(&w);
            let d2 = c.t_dot(&q.view()) - xc.t().dot(&q);
            let d3 = c.gram() - xc.t().dot(&xc).mapv(|v| v as f64);
            assert!(d1.iter().all(|v| v.abs() < 1e-5), "{d1}");
            assert!(d2.iter().all(|v| v.abs() < 1e-5), "{d2}");
            assert!(d3.iter().all(|v| v.abs() < 1e-5), "{d3}");
            let tv = total_variance(&fm, &c.mean.view());
            let expected: f64 = xc.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / 3.0;
            assert!((tv - expected).abs() < 1e-5, "{tv} vs {expected}");
        }
    }
}
