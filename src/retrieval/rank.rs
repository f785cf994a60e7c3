//! Exact cosine top-K retrieval, blocked and parallel, with optional hubness correction (CSLS or
//! the inverted softmax).
//!
//! Every query is scored against the whole gallery by matrix products of a block of query rows
//! with the gallery (`ndarray::dot`), one block per rayon task, so memory stays at
//! `block_rows x gallery` scores per thread (never the full queries x gallery matrix). Cosine is
//! computed as `q·g / (|q| |g|)` from norms taken once (a zero row scores 0 against everything).
//! Ties are broken by the smaller gallery index, so results are deterministic whatever the
//! blocking and thread count. CSLS (Conneau, Lample, Ranzato, Denoyer and Jégou, "Word
//! translation without parallel data", ICLR 2018) replaces `cos(q, g)` by
//! `2 cos(q, g) − r_q − r_g`, where `r_q` (`r_g`) is the mean cosine of `q` (`g`) to its `k`
//! nearest neighbours in a reference set of the other side (e.g. the training items), which
//! demotes "hub" items that are close to everything. The inverted softmax (Smith et al. 2017,
//! [`Csls::inverted_softmax`]) demotes them by how close the other queries find them instead,
//! and needs no reference set; its top-K is taken in one pass blocked over the gallery
//! ([`top_k_inverted_softmax`]), where each item's scores against every query, all its penalty
//! needs, are at hand.

use ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::RetrievalError;
use crate::matrix::first_non_finite;

/// Options of the ranking (serializable, for a pipeline TOML section).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RankParams {
    /// Query rows scored per block (memory per thread: `block_rows x gallery x 4` bytes); under
    /// the inverted softmax, gallery rows per block (`queries x block_rows x 4` bytes).
    pub block_rows: usize,
    /// Use CSLS with this many neighbours (0 = plain cosine).
    pub csls_k: usize,
    /// Rank by the inverted softmax over the queries at this temperature (0 = off; exclusive
    /// with `csls_k`; see [`Csls::inverted_softmax`]). Stages record it only when on
    /// ([`RankParams::with_hubness`]), so that work folders from before this option stay fresh.
    pub inverted_softmax_temperature: f32,
}

impl Default for RankParams {
    fn default() -> Self {
        Self {
            block_rows: 256,
            csls_k: 0,
            inverted_softmax_temperature: 0.0,
        }
    }
}

/// How scores are corrected for hubness before ranking.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Hubness {
    /// Plain cosine.
    None,
    /// CSLS over this many neighbours in the training items.
    Csls(usize),
    /// The inverted softmax over the queries at this temperature.
    InvertedSoftmax(f32),
}

impl std::fmt::Display for Hubness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Hubness::None => write!(f, "cosine"),
            Hubness::Csls(k) => write!(f, "CSLS k = {k}"),
            Hubness::InvertedSoftmax(t) => write!(f, "inverted softmax T = {t}"),
        }
    }
}

impl Hubness {
    /// CSLS over `k` neighbours, or plain cosine for `k = 0` (as `csls_k` is configured).
    pub fn csls(k: usize) -> Self {
        match k {
            0 => Hubness::None,
            k => Hubness::Csls(k),
        }
    }

    /// The options that ask for this correction, as they are configured and recorded:
    /// `(csls_k, inverted_softmax_temperature)`, each 0 where off.
    pub fn options(self) -> (usize, f32) {
        match self {
            Hubness::None => (0, 0.0),
            Hubness::Csls(k) => (k, 0.0),
            Hubness::InvertedSoftmax(t) => (0, t),
        }
    }

    /// The correction's penalties for `queries` against `gallery`; CSLS takes its
    /// neighbourhoods from `references`, `(query_side_reference, gallery_side_reference)`.
    pub fn penalties(
        self,
        queries: &ArrayView2<f32>,
        gallery: &ArrayView2<f32>,
        references: Option<(&ArrayView2<f32>, &ArrayView2<f32>)>,
    ) -> Result<Option<Csls>, RetrievalError> {
        match self {
            Hubness::None => Ok(None),
            Hubness::Csls(k) => {
                let (qref, gref) = references.ok_or(RetrievalError::CslsNeedsReference)?;
                Csls::fit(queries, gallery, qref, gref, k).map(Some)
            }
            Hubness::InvertedSoftmax(t) => {
                Csls::inverted_softmax(queries, gallery, queries, t).map(Some)
            }
        }
    }
}

/// The `k` best gallery items of each query, best first.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// `queries x k` gallery indices.
    pub indices: Array2<u32>,
    /// `queries x k` scores (cosine, or the corrected score: CSLS, or the inverted softmax in
    /// CSLS form).
    pub scores: Array2<f32>,
}

impl TopK {
    /// The `queries x k` arrays of each query's list of `(score, index)`, best first.
    fn from_lists(
        lists: impl IntoIterator<Item = Vec<(f32, u32)>>,
        queries: usize,
        k: usize,
    ) -> Self {
        let mut indices = Array2::<u32>::zeros((queries, k));
        let mut scores = Array2::<f32>::zeros((queries, k));
        for (i, list) in lists.into_iter().enumerate() {
            for (j, (s, idx)) in list.into_iter().enumerate() {
                indices[[i, j]] = idx;
                scores[[i, j]] = s;
            }
        }
        TopK { indices, scores }
    }
}

/// `k` must be in `[1, gallery]`.
fn check_k(k: usize, gallery: usize) -> Result<(), RetrievalError> {
    if k == 0 || k > gallery {
        Err(RetrievalError::BadK { k, gallery })
    } else {
        Ok(())
    }
}

/// Hubness penalties, `r` of each query and of each gallery item, subtracted from twice the
/// cosine: CSLS's ([`Csls::fit`]) or the inverted softmax's in the same form
/// ([`Csls::inverted_softmax`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Csls {
    /// `r_q` of each query (all 0 under the inverted softmax).
    pub query_penalty: Array1<f32>,
    /// `r_g` of each gallery item.
    pub gallery_penalty: Array1<f32>,
}

impl Csls {
    /// `r_q` from `gallery_side_reference` (items of the gallery's kind, e.g. training images
    /// when queries are texts) and `r_g` from `query_side_reference`.
    pub fn fit(
        queries: &ArrayView2<f32>,
        gallery: &ArrayView2<f32>,
        query_side_reference: &ArrayView2<f32>,
        gallery_side_reference: &ArrayView2<f32>,
        k: usize,
    ) -> Result<Self, RetrievalError> {
        Ok(Self {
            query_penalty: Self::csls_query_penalty(queries, gallery_side_reference, k)?,
            gallery_penalty: Self::csls_gallery_penalty(gallery, query_side_reference, k)?,
        })
    }

    /// `r_q` of [`Csls::fit`]: each query's mean cosine to its `k` nearest items of the
    /// gallery's kind in the reference.
    pub fn csls_query_penalty(
        queries: &ArrayView2<f32>,
        gallery_side_reference: &ArrayView2<f32>,
        k: usize,
    ) -> Result<Array1<f32>, RetrievalError> {
        check_inputs(
            ("query", queries),
            ("gallery-side reference", gallery_side_reference),
        )?;
        check_csls_k(k, "gallery-side reference", gallery_side_reference.nrows())?;
        mean_knn_similarity(queries, gallery_side_reference, k, 256)
    }

    /// `r_g` of [`Csls::fit`]: each gallery item's mean cosine to its `k` nearest items of the
    /// queries' kind in the reference. It does not depend on the queries, so a caller that
    /// ranks the same gallery again may keep it (`search` does).
    pub fn csls_gallery_penalty(
        gallery: &ArrayView2<f32>,
        query_side_reference: &ArrayView2<f32>,
        k: usize,
    ) -> Result<Array1<f32>, RetrievalError> {
        check_inputs(
            ("gallery", gallery),
            ("query-side reference", query_side_reference),
        )?;
        check_csls_k(k, "query-side reference", query_side_reference.nrows())?;
        mean_knn_similarity(gallery, query_side_reference, k, 256)
    }

    /// The inverted softmax of Smith, Turban, Hamblin and Hammerla ("Offline bilingual word
    /// vectors, orthogonal transformations and the inverted softmax", ICLR 2017) in CSLS form:
    /// each gallery item `g` is scored for query `q` by `exp(cos(q, g) / T)` over its sum over a
    /// bank of queries, and the ranking of that equals the ranking of `2 cos(q, g) − r_g` with
    /// `r_g = 2 T log Σ_{q'} exp(cos(q', g) / T)` (`r_q` = 0). With the queries themselves as the
    /// bank, a gallery item that every query finds close is demoted.
    pub fn inverted_softmax(
        queries: &ArrayView2<f32>,
        gallery: &ArrayView2<f32>,
        query_bank: &ArrayView2<f32>,
        temperature: f32,
    ) -> Result<Self, RetrievalError> {
        check_temperature(temperature)?;
        let lse = gallery_log_sum_exp(query_bank, gallery, temperature, 512)?;
        Ok(Self {
            query_penalty: Array1::zeros(queries.nrows()),
            gallery_penalty: lse.mapv(|v| 2.0 * temperature * v),
        })
    }
}

/// A temperature of the inverted softmax must be positive and finite.
fn check_temperature(temperature: f32) -> Result<(), RetrievalError> {
    if temperature > 0.0 && temperature.is_finite() {
        Ok(())
    } else {
        Err(RetrievalError::BadTemperature(temperature))
    }
}

/// `log Σ_q exp(cos(q, g) / T)` over the rows `q` of `bank`, for every gallery row `g`. Blocked
/// over the gallery, so that each block of items has its scores against the whole bank at hand
/// (`gallery_block`).
pub fn gallery_log_sum_exp(
    bank: &ArrayView2<f32>,
    gallery: &ArrayView2<f32>,
    temperature: f32,
    block_rows: usize,
) -> Result<Array1<f32>, RetrievalError> {
    check_inputs(("query bank", bank), ("gallery", gallery))?;
    let _blas = crate::blas::one_thread_per_product();
    let inv_t = 1.0 / temperature;
    let inv_bank = inverse_norms(bank);
    let inv_g = inverse_norms(gallery);
    let block_rows = block_rows.max(1);
    let blocks: Vec<Vec<f32>> = gallery
        .axis_chunks_iter(Axis(0), block_rows)
        .into_par_iter()
        .enumerate()
        .map(|(b, gb)| {
            let start = b * block_rows;
            let inv_gb = inv_g.slice(ndarray::s![start..start + gb.nrows()]);
            gallery_block(bank, &gb, &inv_bank, &inv_gb, inv_t).1
        })
        .collect();
    Ok(blocks.into_iter().flatten().collect())
}

/// `exp(x)` for `x ≤ 0` in f32: within one unit in the last place for `x ≥ −87` (0.74 at worst
/// against the exact value, over every 1,000th f32 there); below, where `exp` underflows, at
/// most 2⁻¹²⁶ instead of a subnormal or 0. Written without calls or branches so that the
/// compiler vectorises the loop around it: the inverted softmax takes one exponential per
/// score, 250 million of them for 5,000 queries against 50,000 items, and a call to the
/// library's `exp` per value keeps that loop scalar.
///
/// `exp(x) = 2ⁿ · exp(r)` with `n` the integer nearest `x / ln 2` and `|r| ≲ ln 2 / 2`; `exp(r)`
/// by its Taylor polynomial of degree 7 (truncation error below 2⁻²⁵ relative), `2ⁿ` built in the
/// exponent bits.
#[inline(always)]
fn exp_nonpositive(x: f32) -> f32 {
    // Adding 1.5 · 2²³ rounds to the nearest integer, which then sits in the low mantissa bits.
    const ROUNDER: f32 = 12_582_912.0;
    let x = x.max(-87.0);
    let shifted = x * std::f32::consts::LOG2_E + ROUNDER;
    let n = shifted - ROUNDER;
    // ln 2 in two parts (Cody and Waite): `n · LN2_HIGH` is exact, so `r` keeps its low bits.
    const LN2_HIGH: f32 = 0.693_359_4;
    const LN2_LOW: f32 = -2.121_944_4e-4;
    let r = (x - n * LN2_HIGH) - n * LN2_LOW;
    let poly = 1.0
        + r * (1.0
            + r * (1.0 / 2.0
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let n_bits = shifted.to_bits().wrapping_sub(ROUNDER.to_bits()) as i32;
    let two_to_n = f32::from_bits(((n_bits + 127) as u32) << 23);
    poly * two_to_n
}

/// Mean cosine of each row of `points` to its `k` nearest rows of `reference`.
pub fn mean_knn_similarity(
    points: &ArrayView2<f32>,
    reference: &ArrayView2<f32>,
    k: usize,
    block_rows: usize,
) -> Result<Array1<f32>, RetrievalError> {
    let top = top_k(points, reference, k, block_rows, None)?;
    Ok(top.scores.map_axis(Axis(1), |r| r.mean().unwrap_or(0.0)))
}

/// Scales each row to unit L2 norm (zero rows stay zero).
pub fn l2_normalize_rows(m: &mut Array2<f32>) {
    m.axis_iter_mut(Axis(0)).into_par_iter().for_each(|mut r| {
        let norm = r.dot(&r).sqrt();
        if norm > 0.0 {
            r /= norm;
        }
    });
}

pub(crate) fn inverse_norms(m: &ArrayView2<f32>) -> Array1<f32> {
    m.map_axis(Axis(1), |r| {
        let n = r.dot(&r).sqrt();
        if n > 0.0 { 1.0 / n } else { 0.0 }
    })
}

/// `k` of CSLS against a reference set of `rows` rows.
fn check_csls_k(k: usize, reference: &'static str, rows: usize) -> Result<(), RetrievalError> {
    if k == 0 || k > rows {
        return Err(RetrievalError::CslsK { k, reference, rows });
    }
    Ok(())
}

/// Checks that two matrices compared row by row have the same width and finite values; errors
/// name them as `first` and `second` (`"query"` and `"gallery"` for a ranking).
pub(crate) fn check_inputs(
    (first, a): (&'static str, &ArrayView2<f32>),
    (second, b): (&'static str, &ArrayView2<f32>),
) -> Result<(), RetrievalError> {
    if a.ncols() != b.ncols() {
        return Err(RetrievalError::DimMismatch {
            first,
            first_cols: a.ncols(),
            second,
            second_cols: b.ncols(),
        });
    }
    for (what, m) in [(first, a.view()), (second, b.view())] {
        if let Some((row, col)) = first_non_finite(&m) {
            return Err(RetrievalError::NonFinite { what, row, col });
        }
    }
    Ok(())
}

/// Scores every query block against the gallery in parallel and hands each block's cosine (or
/// CSLS) scores to `f(first_query_row, scores)`; returns the results in query order.
pub(crate) fn for_each_block<R, F>(
    queries: &ArrayView2<f32>,
    gallery: &ArrayView2<f32>,
    block_rows: usize,
    csls: Option<&Csls>,
    f: F,
) -> Result<Vec<R>, RetrievalError>
where
    R: Send,
    F: Fn(usize, ArrayView2<f32>) -> R + Sync,
{
    check_inputs(("query", queries), ("gallery", gallery))?;
    if let Some(c) = csls {
        if c.query_penalty.len() != queries.nrows() || c.gallery_penalty.len() != gallery.nrows() {
            return Err(RetrievalError::CslsShape {
                queries: queries.nrows(),
                gallery: gallery.nrows(),
                got_queries: c.query_penalty.len(),
                got_gallery: c.gallery_penalty.len(),
            });
        }
    }
    let block_rows = block_rows.max(1);
    let inv_q = inverse_norms(queries);
    let inv_g = inverse_norms(gallery);
    let gt = gallery.t();
    let _blas = crate::blas::one_thread_per_product();
    Ok(queries
        .axis_chunks_iter(Axis(0), block_rows)
        .into_par_iter()
        .enumerate()
        .map(|(b, qb)| {
            let start = b * block_rows;
            let mut s = qb.dot(&gt);
            for (i, mut row) in s.rows_mut().into_iter().enumerate() {
                let iq = inv_q[start + i];
                match csls {
                    None => row.zip_mut_with(&inv_g, |v, &ig| *v *= iq * ig),
                    Some(c) => {
                        let rq = c.query_penalty[start + i];
                        ndarray::Zip::from(&mut row)
                            .and(&inv_g)
                            .and(&c.gallery_penalty)
                            .for_each(|v, &ig, &rg| *v = 2.0 * *v * iq * ig - rq - rg);
                    }
                }
            }
            f(start, s.view())
        })
        .collect())
}

/// `a` ranks before `b`: higher score, then smaller index. NaN never occurs (inputs are checked).
#[inline]
pub(crate) fn better(a: (f32, u32), b: (f32, u32)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

/// Keeps `item` in `buf`, the `k` best `(score, index)` so far, best first, if it is among
/// them. A sorted buffer: most items lose against the current k-th and cost one comparison.
#[inline]
fn offer(buf: &mut Vec<(f32, u32)>, k: usize, item: (f32, u32)) {
    if buf.len() == k && !better(item, buf[k - 1]) {
        return;
    }
    let pos = buf.partition_point(|&e| better(e, item));
    buf.insert(pos, item);
    buf.truncate(k);
}

/// How many scores [`offer_all`] checks at a time against the current k-th.
const OFFER_CHUNK: usize = 64;

/// Offers `(scores[j], first + j)` for every `j` to `buf` ([`offer`]). Once `buf` is full, a
/// chunk of scores that all fall below the k-th is passed over after one pass of comparisons
/// that vectorises, instead of a branch per item; a chunk with a score level with the k-th or
/// above goes through `offer` item by item, which breaks ties by index.
#[inline]
fn offer_all(buf: &mut Vec<(f32, u32)>, k: usize, scores: &[f32], first: usize) {
    for (c, chunk) in scores.chunks(OFFER_CHUNK).enumerate() {
        if buf.len() == k {
            let kth = buf[k - 1].0;
            if !chunk.iter().fold(false, |reaches, &s| reaches | (s >= kth)) {
                continue;
            }
        }
        let base = first + c * OFFER_CHUNK;
        for (j, &s) in chunk.iter().enumerate() {
            offer(buf, k, (s, (base + j) as u32));
        }
    }
}

/// The `k` best `(score, index)` of one score row, best first.
pub(crate) fn select_top(row: ArrayView1<f32>, k: usize) -> Vec<(f32, u32)> {
    let k = k.min(row.len());
    if k == 0 {
        return Vec::new();
    }
    if k <= 64 {
        let mut buf: Vec<(f32, u32)> = Vec::with_capacity(k + 1);
        match row.as_slice() {
            Some(scores) => offer_all(&mut buf, k, scores, 0),
            None => {
                for (j, &s) in row.iter().enumerate() {
                    offer(&mut buf, k, (s, j as u32));
                }
            }
        }
        buf
    } else {
        let mut all: Vec<(f32, u32)> = row
            .iter()
            .enumerate()
            .map(|(j, &s)| (s, j as u32))
            .collect();
        let cmp = |a: &(f32, u32), b: &(f32, u32)| {
            b.0.partial_cmp(&a.0)
                .unwrap_or(std::cmp::Ordering::Equal)
                .then(a.1.cmp(&b.1))
        };
        if k < all.len() {
            all.select_nth_unstable_by(k - 1, cmp);
            all.truncate(k);
        }
        all.sort_unstable_by(cmp);
        all
    }
}

/// The `k` most similar gallery rows of every query row (cosine, or CSLS when `csls` is given).
pub fn top_k(
    queries: &ArrayView2<f32>,
    gallery: &ArrayView2<f32>,
    k: usize,
    block_rows: usize,
    csls: Option<&Csls>,
) -> Result<TopK, RetrievalError> {
    check_k(k, gallery.nrows())?;
    let blocks = for_each_block(queries, gallery, block_rows, csls, |_, s| {
        s.rows()
            .into_iter()
            .map(|r| select_top(r, k))
            .collect::<Vec<_>>()
    })?;
    Ok(TopK::from_lists(
        blocks.into_iter().flatten(),
        queries.nrows(),
        k,
    ))
}

/// [`top_k`] under the inverted softmax with the queries as their own bank
/// ([`Csls::inverted_softmax`] with `query_bank = queries`), in one pass of matrix products
/// instead of two. Blocked over the gallery: a block of gallery rows against every query gives
/// each of those items its scores against the whole bank, so its penalty is known within the
/// block, and each query keeps its best `k` so far (memory: `queries x block_rows` scores per
/// thread, and `queries x k` kept items per rayon task). The same ranking as `top_k` with the
/// two-pass penalties but for near-ties, and the same scores up to float rounding (the dot
/// products come out of matrix products of other shapes); about 1.25 s against 1.9 s for the
/// two passes at the contest's size (docs/benchmarks.md).
pub fn top_k_inverted_softmax(
    queries: &ArrayView2<f32>,
    gallery: &ArrayView2<f32>,
    k: usize,
    block_rows: usize,
    temperature: f32,
) -> Result<TopK, RetrievalError> {
    check_k(k, gallery.nrows())?;
    check_temperature(temperature)?;
    check_inputs(("query", queries), ("gallery", gallery))?;
    let _blas = crate::blas::one_thread_per_product();
    let inv_t = 1.0 / temperature;
    let inv_q = inverse_norms(queries);
    let inv_g = inverse_norms(gallery);
    let block_rows = block_rows.max(1);
    let nq = queries.nrows();
    // Each rayon task walks its share of the gallery blocks and keeps every query's best `k`
    // so far (so most items cost one comparison, as in `top_k`); the tasks' lists are merged.
    let no_items = || vec![Vec::<(f32, u32)>::with_capacity(k + 1); nq];
    let best = gallery
        .axis_chunks_iter(Axis(0), block_rows)
        .into_par_iter()
        .enumerate()
        .fold(no_items, |mut best, (b, gb)| {
            let start = b * block_rows;
            let inv_gb = inv_g.slice(ndarray::s![start..start + gb.nrows()]);
            let (dots, lse) = gallery_block(queries, &gb, &inv_q, &inv_gb, inv_t);
            let penalty: Vec<f32> = lse.into_iter().map(|v| 2.0 * temperature * v).collect();
            let mut corrected = vec![0.0f32; gb.nrows()];
            for ((i, row), buf) in dots.rows().into_iter().enumerate().zip(&mut best) {
                let iq = inv_q[i];
                // The formula of `for_each_block` with penalties, r_q being 0.
                for (((c, &v), &ig), &rg) in
                    corrected.iter_mut().zip(row).zip(&inv_gb).zip(&penalty)
                {
                    *c = 2.0 * v * iq * ig - rg;
                }
                offer_all(buf, k, &corrected, start);
            }
            best
        })
        .reduce(no_items, |mut a, b| {
            for (buf, other) in a.iter_mut().zip(b) {
                for item in other {
                    offer(buf, k, item);
                }
            }
            a
        });
    Ok(TopK::from_lists(best, nq, k))
}

/// The raw dot products of every row of `bank` with the block `gb` of gallery rows, row by row
/// in memory (a product of views may come out column-major), and each of those gallery items'
/// `log Σ_q exp(cos(q, g) / T)` over the bank ([`block_log_sum_exp`]).
fn gallery_block(
    bank: &ArrayView2<f32>,
    gb: &ArrayView2<f32>,
    inv_bank: &Array1<f32>,
    inv_gb: &ArrayView1<f32>,
    inv_t: f32,
) -> (Array2<f32>, Vec<f32>) {
    let dots = bank.dot(&gb.t());
    let dots = if dots.is_standard_layout() {
        dots
    } else {
        dots.as_standard_layout().into_owned()
    };
    let lse = block_log_sum_exp(&dots, inv_bank, inv_gb, inv_t);
    (dots, lse)
}

/// `log Σ_q exp(cos(q, g) / T)` of each gallery item `g` (column) of `dots`, the raw dot
/// products of every query of the bank (row) with a block of the gallery: the column maxima,
/// then the sums of `exp((cos − max) / T)` (the maxima keep them finite). Both are accumulated
/// per column down the rows, so that the loops run along contiguous rows and vectorise; the
/// sums in f32 over at most `LANE_ROWS` rows at a time (terms in (0, 1]), then in f64.
/// `dots` must be in standard layout.
fn block_log_sum_exp(
    dots: &Array2<f32>,
    inv_q: &Array1<f32>,
    inv_g: &ArrayView1<f32>,
    inv_t: f32,
) -> Vec<f32> {
    const LANE_ROWS: usize = 256;
    let n = dots.ncols();
    let inv_g = inv_g.to_vec();
    let cos_row = |i: usize, out: &mut [f32]| {
        let iq = inv_q[i];
        let row = dots.row(i);
        let row = row
            .to_slice()
            .expect("gallery_block hands over scores in standard layout");
        for ((c, &v), &ig) in out.iter_mut().zip(row).zip(&inv_g) {
            *c = v * (iq * ig);
        }
    };
    let mut cos = vec![0.0f32; n];
    let mut max = vec![f32::NEG_INFINITY; n];
    for i in 0..dots.nrows() {
        cos_row(i, &mut cos);
        for (m, &c) in max.iter_mut().zip(&cos) {
            *m = if c > *m { c } else { *m };
        }
    }
    let mut total = vec![0.0f64; n];
    let mut partial = vec![0.0f32; n];
    for (i0, i1) in (0..dots.nrows())
        .step_by(LANE_ROWS)
        .map(|i0| (i0, (i0 + LANE_ROWS).min(dots.nrows())))
    {
        partial.iter_mut().for_each(|p| *p = 0.0);
        for i in i0..i1 {
            cos_row(i, &mut cos);
            for ((p, &m), &c) in partial.iter_mut().zip(&max).zip(&cos) {
                *p += exp_nonpositive((c - m) * inv_t);
            }
        }
        for (t, &p) in total.iter_mut().zip(&partial) {
            *t += f64::from(p);
        }
    }
    max.iter()
        .zip(&total)
        .map(|(&m, &t)| {
            if t > 0.0 {
                m * inv_t + t.ln() as f32
            } else {
                0.0
            }
        })
        .collect()
}

impl RankParams {
    /// The hubness correction these options ask for; both corrections at once is an error.
    pub fn hubness(&self) -> Result<Hubness, RetrievalError> {
        let t = self.inverted_softmax_temperature;
        if t == 0.0 {
            return Ok(Hubness::csls(self.csls_k));
        }
        check_temperature(t)?;
        if self.csls_k > 0 {
            return Err(RetrievalError::TwoHubnessCorrections {
                csls_k: self.csls_k,
                temperature: t,
            });
        }
        Ok(Hubness::InvertedSoftmax(t))
    }

    /// `record` (a stage's parameters, a JSON object) with what of these options changes a
    /// ranking: `csls_k`, and the temperature when the inverted softmax is on. Checks them.
    pub fn with_hubness(
        &self,
        mut record: serde_json::Value,
    ) -> Result<serde_json::Value, RetrievalError> {
        self.hubness()?;
        if let Some(map) = record.as_object_mut() {
            map.insert("csls_k".into(), self.csls_k.into());
            if self.inverted_softmax_temperature > 0.0 {
                map.insert(
                    "inverted_softmax_temperature".into(),
                    self.inverted_softmax_temperature.into(),
                );
            }
        }
        Ok(record)
    }

    /// Top-K with these options; CSLS (when `csls_k > 0`) needs the reference sets.
    pub fn top_k(
        &self,
        queries: &ArrayView2<f32>,
        gallery: &ArrayView2<f32>,
        k: usize,
        references: Option<(&ArrayView2<f32>, &ArrayView2<f32>)>,
    ) -> Result<TopK, RetrievalError> {
        match self.hubness()? {
            Hubness::InvertedSoftmax(t) => {
                top_k_inverted_softmax(queries, gallery, k, self.block_rows, t)
            }
            hubness => {
                let penalties = hubness.penalties(queries, gallery, references)?;
                top_k(queries, gallery, k, self.block_rows, penalties.as_ref())
            }
        }
    }

    /// The penalties of the hubness correction these options call for, if any. `references`
    /// is `(query_side_reference, gallery_side_reference)`.
    pub fn penalties(
        &self,
        queries: &ArrayView2<f32>,
        gallery: &ArrayView2<f32>,
        references: Option<(&ArrayView2<f32>, &ArrayView2<f32>)>,
    ) -> Result<Option<Csls>, RetrievalError> {
        self.hubness()?.penalties(queries, gallery, references)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;
    use proptest::prelude::*;

    fn brute(q: &Array2<f32>, g: &Array2<f32>, k: usize) -> (Vec<Vec<u32>>, Vec<Vec<f32>>) {
        let mut idx = Vec::new();
        let mut sc = Vec::new();
        for qr in q.rows() {
            let mut all: Vec<(f32, u32)> = g
                .rows()
                .into_iter()
                .enumerate()
                .map(|(j, gr)| {
                    // The same float formula as the ranking (cosine = dot · (1/|q| · 1/|g|)), so
                    // that ties in exact arithmetic round the same way in both.
                    let inv = |v: f32| if v > 0.0 { 1.0 / v } else { 0.0 };
                    let d = qr.dot(&gr) * (inv(qr.dot(&qr).sqrt()) * inv(gr.dot(&gr).sqrt()));
                    (d, j as u32)
                })
                .collect();
            // Plain full sort: score descending, index ascending.
            all.sort_by(|a, b| b.0.partial_cmp(&a.0).unwrap().then(a.1.cmp(&b.1)));
            idx.push(all.iter().take(k).map(|x| x.1).collect());
            sc.push(all.iter().take(k).map(|x| x.0).collect());
        }
        (idx, sc)
    }

    proptest! {
        #[test]
        // Galleries of up to 300: several chunks of `offer_all` per row, most passed over.
        fn top_k_equals_full_sort(
            nq in 1usize..12, ng in 1usize..300, d in 1usize..5, k in 1usize..80,
            block in 1usize..6, seed in any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            // Small integers: many exact ties, and some zero rows.
            let mut draw = |r, c| Array2::from_shape_fn((r, c), |_| rng.gen_range(-2i32..=2) as f32);
            let q = draw(nq, d);
            let g = draw(ng, d);
            let k = k.min(ng);
            let top = top_k(&q.view(), &g.view(), k, block, None).unwrap();
            let (idx, sc) = brute(&q, &g, k);
            for i in 0..nq {
                prop_assert_eq!(top.indices.row(i).to_vec(), idx[i].clone());
                for (a, b) in top.scores.row(i).iter().zip(&sc[i]) {
                    prop_assert!((a - b).abs() < 1e-5);
                }
            }
        }
    }

    #[test]
    fn exp_nonpositive_is_within_two_ulp_of_the_exact_exp() {
        // Every 1,000th f32 in [−87, 0], and the ends.
        let mut worst = 0.0f32;
        let mut x = 0.0f32;
        while x >= -87.0 {
            let (fast, exact) = (exp_nonpositive(x), f64::from(x).exp());
            let relative = ((f64::from(fast) - exact) / exact).abs() as f32;
            assert!(
                relative < 2.0 * f32::EPSILON,
                "exp({x}) = {fast}, expected {exact}"
            );
            worst = worst.max(relative);
            x = f32::from_bits(x.to_bits() + 1_000).min(-f32::MIN_POSITIVE);
        }
        assert_eq!(exp_nonpositive(0.0), 1.0);
        // Below the range: tiny and positive, never NaN or negative.
        for x in [-88.0f32, -200.0, -1e30] {
            let e = exp_nonpositive(x);
            assert!(e > 0.0 && e < 1e-37, "exp({x}) = {e}");
        }
        assert!(worst > 0.0, "the comparison compared nothing");
    }

    #[test]
    fn ties_go_to_the_smaller_index_and_zero_rows_score_zero() {
        let g = array![[1.0f32, 0.0], [0.0, 0.0], [2.0, 0.0], [0.0, 1.0]];
        let q = array![[3.0f32, 0.0], [0.0, 0.0]];
        let top = top_k(&q.view(), &g.view(), 3, 1, None).unwrap();
        assert_eq!(top.indices, array![[0u32, 2, 1], [0, 1, 2]]);
        assert_eq!(top.scores, array![[1.0f32, 1.0, 0.0], [0.0, 0.0, 0.0]]);
    }

    #[test]
    fn csls_demotes_a_hub() {
        // Gallery item 0 is close to every reference query (a hub); plain cosine ranks it first
        // for q, CSLS ranks item 1 first.
        let g = array![[1.0f32, 1.0, 1.0], [1.0, 0.0, 0.0]];
        let q = array![[1.0f32, 0.5, 0.5]];
        let plain = top_k(&q.view(), &g.view(), 2, 8, None).unwrap();
        assert_eq!(plain.indices.row(0).to_vec(), vec![0, 1]);
        let qref = array![[1.0f32, 1.0, 1.0], [1.0, 1.0, 0.9], [0.9, 1.0, 1.0]];
        let csls = Csls::fit(&q.view(), &g.view(), &qref.view(), &g.view(), 1).unwrap();
        // r_g of item 1: its best reference cosine is 1/sqrt(2.81); of item 0 it is 1.
        assert!((csls.gallery_penalty[0] - 1.0).abs() < 1e-6);
        assert!((csls.gallery_penalty[1] - 1.0 / 2.81f32.sqrt()).abs() < 1e-6);
        let corrected = top_k(&q.view(), &g.view(), 2, 8, Some(&csls)).unwrap();
        assert_eq!(corrected.indices.row(0).to_vec(), vec![1, 0]);
        let cos1 = 1.0 / 1.5f32.sqrt();
        let expected = 2.0 * cos1 - csls.query_penalty[0] - csls.gallery_penalty[1];
        assert!((corrected.scores[[0, 0]] - expected).abs() < 1e-6);
    }

    proptest! {
        #[test]
        fn gallery_log_sum_exp_equals_the_plain_sum(
            // Banks past `LANE_ROWS` (256) too: the f32 partial sums carried into f64.
            nq in 1usize..300, ng in 1usize..12, block in 1usize..7, t in 0.01f32..1.0,
            seed in any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut draw = |r| Array2::from_shape_fn((r, 3), |_| rng.gen_range(-1.0f32..1.0));
            let (q, g) = (draw(nq), draw(ng));
            let lse = gallery_log_sum_exp(&q.view(), &g.view(), t, block).unwrap();
            let cos = |a: ArrayView1<f32>, b: ArrayView1<f32>| {
                let n = (a.dot(&a) * b.dot(&b)).sqrt();
                if n > 0.0 { f64::from(a.dot(&b) / n) } else { 0.0 }
            };
            for (j, gr) in g.rows().into_iter().enumerate() {
                let plain: f64 = q.rows().into_iter().map(|qr| (cos(qr, gr) / f64::from(t)).exp()).sum();
                let got = f64::from(lse[j]);
                prop_assert!((got - plain.ln()).abs() < 1e-5 * plain.ln().abs().max(1.0), "{} {}", got, plain.ln());
            }
        }
    }

    proptest! {
        #[test]
        fn one_pass_inverted_softmax_equals_the_two_passes(
            nq in 1usize..40, ng in 1usize..60, d in 2usize..6, k in 1usize..12,
            block in 1usize..9, t in 0.02f32..1.0, duplicate in any::<bool>(),
            column_major in any::<bool>(), seed in any::<u64>(),
        ) {
            use rand::{Rng, SeedableRng};
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let q = Array2::from_shape_fn((nq, d), |_| rng.gen_range(-1.0f32..1.0));
            let mut g = Array2::from_shape_fn((ng, d), |_| rng.gen_range(-1.0f32..1.0));
            if duplicate && ng > 1 {
                // An exact tie: the smaller index must come first in both.
                let first = g.row(0).to_owned();
                g.row_mut(ng - 1).assign(&first);
            }
            // Column-major queries (as some products leave them) give column-major scores.
            let q = if column_major {
                use ndarray::ShapeBuilder;
                Array2::from_shape_fn((nq, d).f(), |(i, j)| q[[i, j]])
            } else {
                q
            };
            let k = k.min(ng);
            let penalties = Csls::inverted_softmax(&q.view(), &g.view(), &q.view(), t).unwrap();
            let two = top_k(&q.view(), &g.view(), k, block, Some(&penalties)).unwrap();
            let one = top_k_inverted_softmax(&q.view(), &g.view(), k, block, t).unwrap();
            // The same items, in the same order, but for near-ties: the penalties are summed in
            // another order, so two items a float step or two apart may swap.
            let corrected = |i: usize, j: u32| {
                let (qr, gr) = (q.row(i), g.row(j as usize));
                let cos = qr.dot(&gr) / (qr.dot(&qr) * gr.dot(&gr)).sqrt();
                2.0 * cos - penalties.gallery_penalty[j as usize]
            };
            for i in 0..nq {
                for (&a, &b) in one.indices.row(i).iter().zip(two.indices.row(i)) {
                    if a != b {
                        let (sa, sb) = (corrected(i, a), corrected(i, b));
                        prop_assert!((sa - sb).abs() < 1e-5, "query {}: {} ({}) against {} ({})", i, a, sa, b, sb);
                    }
                }
            }
            for (a, b) in one.scores.iter().zip(&two.scores) {
                prop_assert!((a - b).abs() < 1e-5, "{} {}", a, b);
            }
        }
    }

    #[test]
    fn one_pass_inverted_softmax_refuses_a_bad_k_or_temperature() {
        let g = array![[1.0f32, 0.0], [0.0, 1.0]];
        let q = array![[1.0f32, 0.5]];
        assert!(matches!(
            top_k_inverted_softmax(&q.view(), &g.view(), 3, 8, 0.2),
            Err(RetrievalError::BadK { k: 3, gallery: 2 })
        ));
        assert!(matches!(
            top_k_inverted_softmax(&q.view(), &g.view(), 1, 8, 0.0),
            Err(RetrievalError::BadTemperature(_))
        ));
    }

    #[test]
    fn inverted_softmax_ranks_as_the_softmax_over_the_query_bank() {
        // Gallery item 0 is close to both queries (a hub); item 1 only to query 0, and a little
        // less than item 0 is. Plain cosine gives query 0 item 0; the inverted softmax, which
        // divides by how close every query is to an item, gives it item 1.
        let g = array![[1.0f32, 1.0, 0.0], [1.0, 0.0, 0.0]];
        let q = array![[1.0f32, 0.6, 0.0], [0.2, 1.0, 0.0]];
        let plain = top_k(&q.view(), &g.view(), 2, 8, None).unwrap();
        assert_eq!(plain.indices.row(0).to_vec(), vec![0, 1]);
        let t = 0.1;
        let ism = Csls::inverted_softmax(&q.view(), &g.view(), &q.view(), t).unwrap();
        let corrected = top_k(&q.view(), &g.view(), 2, 1, Some(&ism)).unwrap();
        assert_eq!(corrected.indices.row(0).to_vec(), vec![1, 0]);
        // The same order as the probabilities exp(cos / T) / Σ_q' exp(cos(q', g) / T).
        let cos =
            |a: ArrayView1<f32>, b: ArrayView1<f32>| a.dot(&b) / (a.dot(&a) * b.dot(&b)).sqrt();
        for (i, qr) in q.rows().into_iter().enumerate() {
            let prob: Vec<f32> = g
                .rows()
                .into_iter()
                .map(|gr| {
                    let bank: f32 = q.rows().into_iter().map(|b| (cos(b, gr) / t).exp()).sum();
                    (cos(qr, gr) / t).exp() / bank
                })
                .collect();
            let best = if prob[0] >= prob[1] { 0 } else { 1 };
            assert_eq!(corrected.indices[[i, 0]], best, "query {i}: {prob:?}");
        }
        let err = Csls::inverted_softmax(&q.view(), &g.view(), &q.view(), 0.0).unwrap_err();
        assert!(err.to_string().contains("got 0"), "{err}");
    }

    #[test]
    fn one_hubness_correction_at_a_time_and_recorded_only_when_on() {
        let plain = RankParams::default();
        assert_eq!(plain.hubness().unwrap(), Hubness::None);
        let record = plain.with_hubness(serde_json::json!({"k": 5})).unwrap();
        assert_eq!(record, serde_json::json!({"k": 5, "csls_k": 0}));
        let inverted = RankParams {
            inverted_softmax_temperature: 0.2,
            ..RankParams::default()
        };
        assert_eq!(inverted.hubness().unwrap(), Hubness::InvertedSoftmax(0.2));
        let record = inverted.with_hubness(serde_json::json!({})).unwrap();
        assert_eq!(
            record["inverted_softmax_temperature"].as_f64(),
            Some(0.2f32 as f64)
        );
        let both = RankParams {
            csls_k: 10,
            ..inverted.clone()
        };
        let err = both.hubness().unwrap_err().to_string();
        assert!(
            err.contains("csls_k = 10") && err.contains("= 0.2"),
            "{err}"
        );
        let negative = RankParams {
            inverted_softmax_temperature: -1.0,
            ..RankParams::default()
        };
        let err = negative.with_hubness(serde_json::json!({})).unwrap_err();
        assert!(err.to_string().contains("got -1"), "{err}");
        // The options a correction records give back that correction.
        for h in [
            Hubness::None,
            Hubness::Csls(7),
            Hubness::InvertedSoftmax(0.2),
        ] {
            let (csls_k, inverted_softmax_temperature) = h.options();
            let params = RankParams {
                csls_k,
                inverted_softmax_temperature,
                ..RankParams::default()
            };
            assert_eq!(params.hubness().unwrap(), h);
        }
        // The inverted softmax needs no reference set.
        let g = array![[1.0f32, 0.0], [0.0, 1.0]];
        let top = inverted.top_k(&g.view(), &g.view(), 1, None).unwrap();
        assert_eq!(top.indices.column(0).to_vec(), vec![0, 1]);
    }

    #[test]
    fn rejects_bad_input() {
        let g = array![[1.0f32, 0.0]];
        let q = array![[1.0f32, 0.0, 0.0]];
        let err = top_k(&q.view(), &g.view(), 1, 4, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "query rows have 3 columns but gallery rows have 2"
        );
        assert!(matches!(
            top_k(&g.view(), &g.view(), 2, 4, None),
            Err(RetrievalError::BadK { k: 2, gallery: 1 })
        ));
        let bad = array![[f32::NAN, 0.0]];
        let err = top_k(&bad.view(), &g.view(), 1, 4, None).unwrap_err();
        assert_eq!(
            err.to_string(),
            "query row 0 has a non-finite value at column 0"
        );
        // A reference set or a bank is named as what it is, not as the queries or the gallery.
        let two = array![[1.0f32, 0.0], [0.0, 1.0]];
        let err = Csls::fit(&two.view(), &two.view(), &two.view(), &bad.view(), 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gallery-side reference row 0 has a non-finite value at column 0"
        );
        let err = Csls::fit(&two.view(), &two.view(), &q.view(), &two.view(), 1).unwrap_err();
        assert_eq!(
            err.to_string(),
            "gallery rows have 2 columns but query-side reference rows have 3"
        );
        let err = Csls::fit(&two.view(), &two.view(), &two.view(), &two.view(), 3).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CSLS's k must be in [1, 2] (the rows of the gallery-side reference, e.g. the \
             training items), got 3"
        );
        let err = Csls::inverted_softmax(&two.view(), &two.view(), &bad.view(), 0.1).unwrap_err();
        assert!(err.to_string().starts_with("query bank row 0"), "{err}");
    }

    #[test]
    fn normalize_rows() {
        let mut m = array![[3.0f32, 4.0], [0.0, 0.0]];
        l2_normalize_rows(&mut m);
        assert_eq!(m, array![[0.6f32, 0.8], [0.0, 0.0]]);
    }
}
