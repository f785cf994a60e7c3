//! Retrieval metrics: recall@K, median and mean rank, in both directions, over folds.
//!
//! The protocol is the one of image–caption retrieval since Hodosh, Young and Hockenmaier,
//! "Framing image description as a ranking task", JAIR 47 (2013): a text query hits if its own
//! image is among the top K images; an image query hits if ANY of its captions is among the top K
//! texts; the rank of a query is the position (1-based) of its first relevant item. Ranks are
//! computed exactly from blocked score matrices (see [`super::rank`]) by counting the items that
//! rank above the best relevant one (ties broken by gallery index, as in the top-K), so no full
//! sort and no full score matrix is needed. Results over several folds (e.g. the 5 x 1,000 image
//! protocol) are reported as mean ± sample standard deviation.

use std::collections::BTreeMap;

use ndarray::ArrayView2;
use serde::{Deserialize, Serialize};

use super::RetrievalError;
use super::rank::{self, Csls};

/// Recall levels always reported (the keys of `report.json`).
pub const STANDARD_KS: [usize; 3] = [1, 5, 10];

/// Metrics of one direction (queries of one kind against a gallery of the other).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionMetrics {
    /// Recall@K (fraction of queries whose first relevant item has rank <= K).
    pub recall: BTreeMap<usize, f64>,
    /// Recall@K of a random ranking, averaged over queries.
    pub chance: BTreeMap<usize, f64>,
    /// Median 1-based rank of each query's first relevant item.
    pub median_rank: f64,
    /// Mean 1-based rank of each query's first relevant item.
    pub mean_rank: f64,
    /// Number of queries.
    pub queries: usize,
    /// Number of items each query ranks.
    pub gallery: usize,
    /// Recall@K for K = 1..=curve.len() (for the recall curve).
    pub curve: Vec<f64>,
    /// Chance recall for the same K.
    pub chance_curve: Vec<f64>,
}

/// Both directions of one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// Captions as queries, images as the gallery.
    pub text_to_image: DirectionMetrics,
    /// Images as queries, captions as the gallery.
    pub image_to_text: DirectionMetrics,
}

/// 1-based rank of the best relevant item of each query; `positives[i]` lists the gallery
/// indices relevant to query `i` (at least one).
pub fn first_relevant_ranks(
    queries: &ArrayView2<f32>,
    gallery: &ArrayView2<f32>,
    positives: &[Vec<usize>],
    block_rows: usize,
    csls: Option<&Csls>,
) -> Result<Vec<usize>, RetrievalError> {
    if positives.len() != queries.nrows() {
        return Err(RetrievalError::LengthMismatch {
            what: "relevance lists",
            expected: queries.nrows(),
            got: positives.len(),
        });
    }
    for (i, p) in positives.iter().enumerate() {
        if p.is_empty() {
            return Err(RetrievalError::NoRelevant { query: i });
        }
        if let Some(&j) = p.iter().find(|&&j| j >= gallery.nrows()) {
            return Err(RetrievalError::IndexOutOfRange {
                query: i,
                index: j,
                gallery: gallery.nrows(),
            });
        }
    }
    let blocks = rank::for_each_block(queries, gallery, block_rows, csls, |start, s| {
        s.rows()
            .into_iter()
            .enumerate()
            .map(|(i, row)| {
                let best = positives[start + i]
                    .iter()
                    .map(|&j| (row[j], j as u32))
                    .reduce(|a, b| if rank::better(a, b) { a } else { b })
                    .unwrap_or((f32::NEG_INFINITY, u32::MAX));
                1 + row
                    .iter()
                    .enumerate()
                    .filter(|&(j, &v)| rank::better((v, j as u32), best))
                    .count()
            })
            .collect::<Vec<_>>()
    })?;
    Ok(blocks.into_iter().flatten().collect())
}

/// Chance recall@K of a query with `c` relevant items among `n`: `1 - C(n-c, K) / C(n, K)`.
pub fn chance_recall(n: usize, c: usize, k: usize) -> f64 {
    if k >= n || c >= n {
        return 1.0;
    }
    let mut miss = 1.0f64;
    for i in 0..k {
        let num = n.saturating_sub(c + i) as f64;
        miss *= num / (n - i) as f64;
        if miss == 0.0 {
            break;
        }
    }
    1.0 - miss
}

/// Metrics of one direction from its ranks; `positives_per_query` gives `c` for the chance level.
pub fn direction_metrics(
    ranks: &[usize],
    positives_per_query: &[usize],
    gallery: usize,
    ks: &[usize],
    curve_max: usize,
) -> DirectionMetrics {
    let q = ranks.len();
    let frac = |k: usize| {
        if q == 0 {
            0.0
        } else {
            ranks.iter().filter(|&&r| r <= k).count() as f64 / q as f64
        }
    };
    let chance = |k: usize| {
        if q == 0 {
            0.0
        } else {
            positives_per_query
                .iter()
                .map(|&c| chance_recall(gallery, c, k))
                .sum::<f64>()
                / q as f64
        }
    };
    let mut all_ks: Vec<usize> = ks.iter().chain(STANDARD_KS.iter()).copied().collect();
    all_ks.sort_unstable();
    all_ks.dedup();
    let mut sorted = ranks.to_vec();
    sorted.sort_unstable();
    let median_rank = match q {
        0 => 0.0,
        _ if q % 2 == 1 => sorted[q / 2] as f64,
        _ => (sorted[q / 2 - 1] + sorted[q / 2]) as f64 / 2.0,
    };
    let mean_rank = if q == 0 {
        0.0
    } else {
        ranks.iter().sum::<usize>() as f64 / q as f64
    };
    let curve_max = curve_max.min(gallery).max(1);
    DirectionMetrics {
        recall: all_ks.iter().map(|&k| (k, frac(k))).collect(),
        chance: all_ks.iter().map(|&k| (k, chance(k))).collect(),
        median_rank,
        mean_rank,
        queries: q,
        gallery,
        curve: (1..=curve_max).map(frac).collect(),
        chance_curve: (1..=curve_max).map(chance).collect(),
    }
}

/// Options of [`evaluate`].
#[derive(Debug, Clone)]
pub struct EvalOptions<'a> {
    /// Extra K levels (1, 5, 10 are always included).
    pub ks: Vec<usize>,
    /// Length of the recall curve.
    pub curve_max: usize,
    /// Queries scored per matrix product (bounds memory: block_rows x gallery scores).
    pub block_rows: usize,
    /// CSLS penalties for text→image (queries: texts, gallery: images).
    pub csls_text_to_image: Option<&'a Csls>,
    /// CSLS penalties for image→text.
    pub csls_image_to_text: Option<&'a Csls>,
}

impl Default for EvalOptions<'_> {
    fn default() -> Self {
        Self {
            ks: STANDARD_KS.to_vec(),
            curve_max: 100,
            block_rows: 256,
            csls_text_to_image: None,
            csls_image_to_text: None,
        }
    }
}

/// Evaluates both directions. `text_image[t]` is the row in `images` of text `t`'s image; an
/// image with several captions appears once in `images` (one caption per image is the case of
/// `text_image` being a permutation). Every image must have at least one text. The scores are
/// cosines, so the rows need not be of unit length (`FittedCca::transform_x` and `embed_x` rank
/// alike); a text query hits when its image is retrieved, an image query when any of its texts
/// is.
pub fn evaluate(
    images: &ArrayView2<f32>,
    texts: &ArrayView2<f32>,
    text_image: &[usize],
    opts: &EvalOptions<'_>,
) -> Result<Evaluation, RetrievalError> {
    if text_image.len() != texts.nrows() {
        return Err(RetrievalError::LengthMismatch {
            what: "text_image",
            expected: texts.nrows(),
            got: text_image.len(),
        });
    }
    let n_img = images.nrows();
    let mut captions: Vec<Vec<usize>> = vec![Vec::new(); n_img];
    for (t, &i) in text_image.iter().enumerate() {
        if i >= n_img {
            return Err(RetrievalError::IndexOutOfRange {
                query: t,
                index: i,
                gallery: n_img,
            });
        }
        captions[i].push(t);
    }
    let t2i_pos: Vec<Vec<usize>> = text_image.iter().map(|&i| vec![i]).collect();
    let t2i = first_relevant_ranks(
        texts,
        images,
        &t2i_pos,
        opts.block_rows,
        opts.csls_text_to_image,
    )?;
    let i2t = first_relevant_ranks(
        images,
        texts,
        &captions,
        opts.block_rows,
        opts.csls_image_to_text,
    )?;
    let ones = vec![1; t2i.len()];
    let counts: Vec<usize> = captions.iter().map(Vec::len).collect();
    Ok(Evaluation {
        text_to_image: direction_metrics(&t2i, &ones, n_img, &opts.ks, opts.curve_max),
        image_to_text: direction_metrics(&i2t, &counts, texts.nrows(), &opts.ks, opts.curve_max),
    })
}

/// Mean and sample standard deviation of a metric over folds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MeanStd {
    /// Mean over the folds.
    pub mean: f64,
    /// Sample standard deviation over the folds (0 with one fold).
    pub std: f64,
}

impl MeanStd {
    /// Mean and sample standard deviation of `values` (both 0 when empty).
    pub fn of(values: &[f64]) -> Self {
        let n = values.len();
        if n == 0 {
            return Self {
                mean: 0.0,
                std: 0.0,
            };
        }
        let mean = values.iter().sum::<f64>() / n as f64;
        let std = if n < 2 {
            0.0
        } else {
            (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt()
        };
        Self { mean, std }
    }
}

/// One direction summarised over folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectionSummary {
    /// Recall@K, mean ± std over the folds.
    pub recall: BTreeMap<usize, MeanStd>,
    /// Chance Recall@K, the mean over the folds.
    pub chance: BTreeMap<usize, f64>,
    /// Median rank, mean ± std over the folds.
    pub median_rank: MeanStd,
    /// Mean rank, mean ± std over the folds.
    pub mean_rank: MeanStd,
    /// Queries per fold (of the first fold; folds are normally equal).
    pub queries: usize,
    /// Gallery size per fold (of the first fold).
    pub gallery: usize,
    /// Recall@K for K = 1..=curve.len(), the mean over the folds.
    pub curve: Vec<f64>,
    /// Chance recall for the same K, the mean over the folds.
    pub chance_curve: Vec<f64>,
}

/// Both directions over `folds` folds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Captions as queries, images as the gallery.
    pub text_to_image: DirectionSummary,
    /// Images as queries, captions as the gallery.
    pub image_to_text: DirectionSummary,
    /// Number of folds summarised.
    pub folds: usize,
}

fn summarise(ds: &[&DirectionMetrics]) -> DirectionSummary {
    let first = ds[0];
    let avg_vec = |f: &dyn Fn(&DirectionMetrics) -> &Vec<f64>| {
        let len = ds.iter().map(|d| f(d).len()).min().unwrap_or(0);
        (0..len)
            .map(|i| ds.iter().map(|d| f(d)[i]).sum::<f64>() / ds.len() as f64)
            .collect::<Vec<f64>>()
    };
    DirectionSummary {
        recall: first
            .recall
            .keys()
            .map(|&k| {
                let v: Vec<f64> = ds
                    .iter()
                    .map(|d| d.recall.get(&k).copied().unwrap_or(0.0))
                    .collect();
                (k, MeanStd::of(&v))
            })
            .collect(),
        chance: first
            .chance
            .keys()
            .map(|&k| {
                let v: f64 = ds
                    .iter()
                    .map(|d| d.chance.get(&k).copied().unwrap_or(0.0))
                    .sum();
                (k, v / ds.len() as f64)
            })
            .collect(),
        median_rank: MeanStd::of(&ds.iter().map(|d| d.median_rank).collect::<Vec<_>>()),
        mean_rank: MeanStd::of(&ds.iter().map(|d| d.mean_rank).collect::<Vec<_>>()),
        queries: first.queries,
        gallery: first.gallery,
        curve: avg_vec(&|d| &d.curve),
        chance_curve: avg_vec(&|d| &d.chance_curve),
    }
}

impl Summary {
    /// Mean ± std over folds (one fold gives std 0).
    pub fn from_folds(folds: &[Evaluation]) -> Result<Self, RetrievalError> {
        if folds.is_empty() {
            return Err(RetrievalError::NoFolds);
        }
        let t2i: Vec<&DirectionMetrics> = folds.iter().map(|e| &e.text_to_image).collect();
        let i2t: Vec<&DirectionMetrics> = folds.iter().map(|e| &e.image_to_text).collect();
        Ok(Self {
            text_to_image: summarise(&t2i),
            image_to_text: summarise(&i2t),
            folds: folds.len(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, array};

    /// 4 images (one-hot), 8 texts (2 per image); texts equal their image's vector (perfect),
    /// or point away from it (reversed).
    fn setup(reversed: bool) -> (Array2<f32>, Array2<f32>, Vec<usize>) {
        let images = Array2::<f32>::eye(4);
        let text_image = vec![0, 0, 1, 1, 2, 2, 3, 3];
        let texts = Array2::from_shape_fn((8, 4), |(t, j)| {
            let own = text_image[t] == j;
            if reversed {
                if own { -1.0 } else { 0.0 }
            } else if own {
                1.0
            } else {
                0.0
            }
        });
        (images, texts, text_image)
    }

    #[test]
    fn perfect_ranking_scores_one_and_reversed_zero() {
        let opts = EvalOptions {
            ks: vec![1, 2, 3],
            ..Default::default()
        };
        let (im, tx, ti) = setup(false);
        let e = evaluate(&im.view(), &tx.view(), &ti, &opts).unwrap();
        for d in [&e.text_to_image, &e.image_to_text] {
            assert!(d.recall.values().all(|&r| r == 1.0), "{d:?}");
            assert_eq!(d.median_rank, 1.0);
            assert_eq!(d.mean_rank, 1.0);
        }
        let (im, tx, ti) = setup(true);
        let e = evaluate(&im.view(), &tx.view(), &ti, &opts).unwrap();
        // Text → image: own image scores -1, the 3 others 0 → rank 4 of 4.
        assert_eq!(e.text_to_image.recall[&1], 0.0);
        assert_eq!(e.text_to_image.recall[&3], 0.0);
        assert_eq!(e.text_to_image.mean_rank, 4.0);
        // Image → text: its 2 captions are the last 2 of 8 → first relevant rank 7.
        assert_eq!(e.image_to_text.recall[&5], 0.0);
        assert_eq!(e.image_to_text.median_rank, 7.0);
        assert_eq!(e.text_to_image.queries, 8);
        assert_eq!(e.image_to_text.queries, 4);
    }

    #[test]
    fn any_caption_counts_for_image_queries() {
        // Image 0's first caption is bad, its second perfect → rank 1 for the image query.
        let images = array![[1.0f32, 0.0], [0.0, 1.0]];
        let texts = array![[0.0f32, 1.0], [1.0, 0.0], [0.0, 1.0]];
        let e = evaluate(
            &images.view(),
            &texts.view(),
            &[0, 0, 1],
            &EvalOptions::default(),
        )
        .unwrap();
        let ranks = first_relevant_ranks(
            &images.view(),
            &texts.view(),
            &[vec![0, 1], vec![2]],
            1,
            None,
        )
        .unwrap();
        // Image 1: texts 0 and 2 tie at 1.0; index 0 comes first → rank 2.
        assert_eq!(ranks, vec![1, 2]);
        assert_eq!(e.image_to_text.recall[&1], 0.5);
        // Text → image: text 0 ranks image 1 first → rank 2.
        assert_eq!(e.text_to_image.recall[&1], 2.0 / 3.0);
    }

    #[test]
    fn recall_is_monotone_and_one_at_gallery_size() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let images = Array2::from_shape_fn((30, 6), |_| rng.r#gen::<f32>() - 0.5);
        let text_image: Vec<usize> = (0..90).map(|t| t % 30).collect();
        let texts = Array2::from_shape_fn((90, 6), |_| rng.r#gen::<f32>() - 0.5);
        let opts = EvalOptions {
            ks: (1..=90).collect(),
            curve_max: 200,
            ..Default::default()
        };
        let e = evaluate(&images.view(), &texts.view(), &text_image, &opts).unwrap();
        for (d, n) in [(&e.text_to_image, 30), (&e.image_to_text, 90)] {
            let r: Vec<f64> = d.recall.values().copied().collect();
            assert!(r.windows(2).all(|w| w[0] <= w[1]), "{r:?}");
            assert_eq!(d.recall[&n], 1.0);
            assert_eq!(d.curve.len(), n);
            assert_eq!(*d.curve.last().unwrap(), 1.0);
            assert!((d.chance_curve[n - 1] - 1.0).abs() < 1e-12);
        }
        // Chance: one relevant of 30 → K/30.
        assert!((e.text_to_image.chance[&3] - 0.1).abs() < 1e-12);
        // Three relevant of 90 at K = 1 → 3/90.
        assert!((e.image_to_text.chance[&1] - 3.0 / 90.0).abs() < 1e-12);
    }

    #[test]
    fn folds_mean_and_std() {
        let (im, tx, ti) = setup(false);
        let good = evaluate(&im.view(), &tx.view(), &ti, &EvalOptions::default()).unwrap();
        let (im, tx, ti) = setup(true);
        let bad = evaluate(&im.view(), &tx.view(), &ti, &EvalOptions::default()).unwrap();
        let s = Summary::from_folds(&[good, bad]).unwrap();
        assert_eq!(s.folds, 2);
        let r1 = s.text_to_image.recall[&1];
        assert_eq!(r1.mean, 0.5);
        assert!((r1.std - 0.5f64.sqrt()).abs() < 1e-12);
        assert_eq!(s.text_to_image.mean_rank.mean, 2.5);
        assert!(Summary::from_folds(&[]).is_err());
    }

    #[test]
    fn rejects_bad_relevance() {
        let images = Array2::<f32>::eye(2);
        let texts = Array2::<f32>::eye(2);
        let err = evaluate(
            &images.view(),
            &texts.view(),
            &[0, 5],
            &EvalOptions::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains('5'), "{err}");
        // Image 1 has no caption.
        let err = evaluate(
            &images.view(),
            &texts.view(),
            &[0, 0],
            &EvalOptions::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, RetrievalError::NoRelevant { query: 1 }),
            "{err}"
        );
    }
}
