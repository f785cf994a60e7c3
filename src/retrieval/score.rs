//! Scores contest result files (`result1.csv`, `result2.csv`) against gold pairs.
//!
//! A gold file is a CSV with a header whose first two columns are a query id and an id relevant
//! to it (one row per pair; several rows per query when several items are relevant, as for an
//! image with five captions). A query hits at K if any relevant id is among its results whose
//! rank (the file's second column, not the row order) is at most K (the recall@K of Hodosh et
//! al. 2013). Gold queries absent from the result file count as misses and are listed; result
//! queries absent from the gold file are listed and ignored. R@K is reported only for the K the
//! results reach: the contest's files hold 5 per query, so they give R@1 and R@5, and R@10 is
//! left out rather than reported equal to R@5. A result file that answers none of the gold
//! queries is refused: it is the wrong file, not a score of 0.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::RetrievalError;
use crate::error::IoError;

/// Relevant ids per query, in the order queries first appear in the gold file.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Gold {
    /// Query ids, each once, in the order they first appear.
    pub queries: Vec<String>,
    /// The ids relevant to each query.
    pub relevant: HashMap<String, HashSet<String>>,
}

impl Gold {
    /// Builds from `(query, relevant)` pairs.
    pub fn from_pairs<I, A, B>(pairs: I) -> Self
    where
        I: IntoIterator<Item = (A, B)>,
        A: Into<String>,
        B: Into<String>,
    {
        let mut g = Gold::default();
        for (q, r) in pairs {
            let q = q.into();
            if !g.relevant.contains_key(&q) {
                g.queries.push(q.clone());
            }
            g.relevant.entry(q).or_default().insert(r.into());
        }
        g
    }

    /// The same pairs with query and relevant swapped (text→image gold for image→text).
    pub fn reversed(&self) -> Self {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for q in &self.queries {
            let mut rel: Vec<&String> = self.relevant[q].iter().collect();
            rel.sort();
            pairs.extend(rel.into_iter().map(|r| (r.clone(), q.clone())));
        }
        Gold::from_pairs(pairs)
    }
}

/// Results per query: (rank, id), by increasing rank.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Results {
    /// Query ids, each once, in the order they first appear in the file.
    pub queries: Vec<String>,
    /// Each query's `(rank, result id)` rows, by increasing rank.
    pub ranked: HashMap<String, Vec<(usize, String)>>,
}

impl Results {
    /// The deepest rank of any query: R@K is measurable for K up to it.
    pub fn depth(&self) -> usize {
        self.ranked
            .values()
            .filter_map(|v| v.last().map(|(rank, _)| *rank))
            .max()
            .unwrap_or(0)
    }
}

/// R@K of a result file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreReport {
    /// R@K for each asked K up to the results' depth.
    pub recall: BTreeMap<usize, f64>,
    /// The deepest rank in the result file (5 for the contest's files).
    pub depth: usize,
    /// Asked K beyond `depth`: not measurable from these results, so not in `recall`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub beyond_depth: Vec<usize>,
    /// Gold queries scored (the denominator).
    pub queries: usize,
    /// Gold queries with no result rows (counted as misses).
    pub missing: Vec<String>,
    /// Result queries not in the gold file (ignored).
    pub unknown: Vec<String>,
}

fn open_csv(path: &Path) -> Result<csv::Reader<std::fs::File>, RetrievalError> {
    let file = std::fs::File::open(path).map_err(|e| IoError::new("opening", path, e))?;
    Ok(csv::ReaderBuilder::new()
        .has_headers(true)
        .flexible(false)
        .from_reader(file))
}

fn bad(path: &Path, line: u64, message: String) -> RetrievalError {
    RetrievalError::BadFile {
        path: path.to_path_buf(),
        line,
        message,
    }
}

fn records(path: &Path, min_fields: usize) -> Result<Vec<(u64, Vec<String>)>, RetrievalError> {
    let mut rdr = open_csv(path)?;
    let mut out = Vec::new();
    for rec in rdr.records() {
        let rec = rec.map_err(|e| {
            let line = e.position().map_or(0, |p| p.line());
            bad(path, line, e.to_string())
        })?;
        let line = rec.position().map_or(0, |p| p.line());
        if rec.len() < min_fields {
            return Err(bad(
                path,
                line,
                format!("expected {min_fields} fields, got {}", rec.len()),
            ));
        }
        // Strip a UTF-8 BOM a spreadsheet may have left on the first field.
        let fields: Vec<String> = rec
            .iter()
            .map(|f| f.trim_start_matches('\u{feff}').trim().to_string())
            .collect();
        out.push((line, fields));
    }
    Ok(out)
}

/// Reads a gold CSV (header; columns: query id, relevant id).
pub fn read_gold(path: &Path) -> Result<Gold, RetrievalError> {
    let mut pairs = Vec::new();
    for (line, f) in records(path, 2)? {
        if f[0].is_empty() || f[1].is_empty() {
            return Err(bad(path, line, "empty id".into()));
        }
        pairs.push((f[0].clone(), f[1].clone()));
    }
    Ok(Gold::from_pairs(pairs))
}

/// Reads a result CSV (header; columns: query id, rank, result id). Ranks must be integers
/// from 1, unique per query.
pub fn read_results(path: &Path) -> Result<Results, RetrievalError> {
    // A file written without its header would lose its first row to it, unnoticed.
    let header = open_csv(path)?
        .headers()
        .map_err(|e| bad(path, 1, e.to_string()))?
        .clone();
    if header
        .get(1)
        .is_some_and(|rank| rank.trim().parse::<usize>().is_ok())
    {
        return Err(bad(
            path,
            1,
            format!(
                "the first line is a result row ({:?}), not a header: a result file starts \
                 with one (text_id,similarity_ranking,result_image_id or \
                 image_id,similarity_ranking,result_text_id)",
                header.iter().collect::<Vec<_>>().join(",")
            ),
        ));
    }
    let mut by_query: HashMap<String, Vec<(usize, String)>> = HashMap::new();
    let mut order = Vec::new();
    for (line, f) in records(path, 3)? {
        let rank: usize = f[1].parse().ok().filter(|&r| r >= 1).ok_or_else(|| {
            bad(
                path,
                line,
                format!("rank must be an integer >= 1, got {:?}", f[1]),
            )
        })?;
        let entry = by_query.entry(f[0].clone()).or_insert_with(|| {
            order.push(f[0].clone());
            Vec::new()
        });
        if entry.iter().any(|(r, _)| *r == rank) {
            return Err(bad(
                path,
                line,
                format!("query {:?} has rank {rank} twice", f[0]),
            ));
        }
        entry.push((rank, f[2].clone()));
    }
    let ranked = by_query
        .into_iter()
        .map(|(q, mut v)| {
            v.sort_by_key(|(r, _)| *r);
            (q, v)
        })
        .collect();
    Ok(Results {
        queries: order,
        ranked,
    })
}

/// Recall@K for `ks` of `results` against `gold`; K beyond the results' depth are listed in
/// [`ScoreReport::beyond_depth`] instead.
pub fn score(results: &Results, gold: &Gold, ks: &[usize]) -> ScoreReport {
    let mut missing = Vec::new();
    let mut first_hit: Vec<Option<usize>> = Vec::with_capacity(gold.queries.len());
    for q in &gold.queries {
        match results.ranked.get(q) {
            None => {
                missing.push(q.clone());
                first_hit.push(None);
            }
            Some(list) => {
                let rel = &gold.relevant[q];
                first_hit.push(
                    list.iter()
                        .find(|(_, id)| rel.contains(id))
                        .map(|(rank, _)| *rank),
                );
            }
        }
    }
    let unknown = results
        .queries
        .iter()
        .filter(|q| !gold.relevant.contains_key(*q))
        .cloned()
        .collect();
    let n = gold.queries.len();
    let depth = results.depth();
    let (measurable, beyond_depth): (Vec<usize>, Vec<usize>) =
        ks.iter().partition(|&&k| k <= depth);
    let recall = measurable
        .iter()
        .map(|&k| {
            let hits = first_hit
                .iter()
                .filter(|h| h.is_some_and(|r| r <= k))
                .count();
            (k, if n == 0 { 0.0 } else { hits as f64 / n as f64 })
        })
        .collect();
    ScoreReport {
        recall,
        depth,
        beyond_depth,
        queries: n,
        missing,
        unknown,
    }
}

/// Reads both files and scores R@1, R@5, R@10 (those the results reach). Refuses an empty gold
/// file, and a result file that answers none of its queries (the wrong pair of files).
pub fn score_files(results: &Path, gold: &Path) -> Result<ScoreReport, RetrievalError> {
    let answers = read_results(results)?;
    let truth = read_gold(gold)?;
    if truth.queries.is_empty() {
        return Err(bad(
            gold,
            0,
            "the gold file has no (query, relevant) rows".into(),
        ));
    }
    let report = score(&answers, &truth, &[1, 5, 10]);
    if report.missing.len() == report.queries {
        let example = |ids: &[String]| ids.first().map_or("none".to_string(), |q| format!("{q:?}"));
        return Err(RetrievalError::NothingToScore {
            results: results.to_path_buf(),
            gold: gold.to_path_buf(),
            result_example: example(&answers.queries),
            gold_example: example(&truth.queries),
        });
    }
    Ok(report)
}

/// Paths of the two result files in `dir`.
pub fn result_paths(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("result1.csv"), dir.join("result2.csv"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::rank::top_k;
    use crate::retrieval::submit::write_result1;
    use ndarray::Array2;
    use rand::{Rng, SeedableRng};

    #[test]
    fn submit_then_score_round_trip() {
        // 20 texts against 12 images in 4-d; gold = each text's image. R@K from the files must
        // equal R@K computed directly from the top-K.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
        let images = Array2::from_shape_fn((12, 4), |_| rng.r#gen::<f32>() - 0.5);
        let truth: Vec<usize> = (0..20).map(|t| (t * 7) % 12).collect();
        let texts = Array2::from_shape_fn((20, 4), |(t, j)| {
            images[[truth[t], j]] + 0.6 * (rng.r#gen::<f32>() - 0.5)
        });
        let top = top_k(&texts.view(), &images.view(), 5, 4, None).unwrap();
        let text_ids: Vec<String> = (0..20).map(|t| format!("T{t:03}")).collect();
        let image_ids: Vec<String> = (0..12).map(|i| format!("Image1000{i:04}.jpg")).collect();
        let dir = tempfile::tempdir().unwrap();
        let res = write_result1(dir.path(), &text_ids, &image_ids, &top).unwrap();
        let gold_path = dir.path().join("gold.csv");
        let mut gold = String::from("text_id,image_id\n");
        for (t, &i) in truth.iter().enumerate() {
            gold.push_str(&format!("{},{}\n", text_ids[t], image_ids[i]));
        }
        gold.push_str("T999,Image10000000.jpg\n"); // a query the results lack
        std::fs::write(&gold_path, gold).unwrap();
        let report = score_files(&res, &gold_path).unwrap();
        for k in [1, 5] {
            let direct = (0..20)
                .filter(|&t| {
                    top.indices
                        .row(t)
                        .iter()
                        .take(k)
                        .any(|&g| g as usize == truth[t])
                })
                .count() as f64
                / 21.0;
            assert!(
                (report.recall[&k] - direct).abs() < 1e-12,
                "R@{k}: {report:?}"
            );
        }
        assert!(report.recall[&5] > report.recall[&1]);
        assert_eq!(report.depth, 5);
        assert_eq!(
            report.beyond_depth,
            vec![10],
            "R@10 is not measurable from top-5 files"
        );
        assert!(!report.recall.contains_key(&10));
        assert_eq!(report.queries, 21);
        assert_eq!(report.missing, vec!["T999".to_string()]);
        assert!(report.unknown.is_empty());
    }

    #[test]
    fn any_relevant_counts_and_reversal() {
        let gold = Gold::from_pairs([("t1", "a"), ("t2", "a"), ("t3", "b")]);
        let rev = gold.reversed();
        assert_eq!(rev.queries, vec!["a", "b"]);
        let results = Results {
            queries: vec!["a".into(), "b".into(), "zz".into()],
            ranked: [
                (
                    "a".to_string(),
                    vec![(1, "t9".to_string()), (2, "t2".to_string())],
                ),
                ("b".to_string(), vec![(1, "t1".to_string())]),
                ("zz".to_string(), vec![]),
            ]
            .into_iter()
            .collect(),
        };
        let r = score(&results, &rev, &[1, 2]);
        assert_eq!(r.recall[&1], 0.0);
        assert_eq!(r.recall[&2], 0.5);
        assert_eq!(r.unknown, vec!["zz".to_string()]);
    }

    #[test]
    fn the_rank_column_counts_not_the_row_order() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.csv");
        let gold = dir.path().join("g.csv");
        std::fs::write(&gold, "text_id,image_id\nt1,a\nt2,b\n").unwrap();
        // t1's only row is its right answer at rank 7; t2's rows come in reverse order.
        std::fs::write(
            &results,
            "text_id,similarity_ranking,result_image_id\nt1,7,a\nt2,3,b\nt2,2,x\nt2,1,y\n",
        )
        .unwrap();
        let report = score_files(&results, &gold).unwrap();
        assert_eq!(report.depth, 7);
        assert_eq!(report.recall[&1], 0.0);
        assert_eq!(report.recall[&5], 0.5, "t2 hits at rank 3");
        assert_eq!(report.beyond_depth, vec![10]);
        let report = score(
            &read_results(&results).unwrap(),
            &read_gold(&gold).unwrap(),
            &[7],
        );
        assert_eq!(report.recall[&7], 1.0);
    }

    #[test]
    fn results_that_answer_no_gold_query_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let results = dir.path().join("r.csv");
        let gold = dir.path().join("g.csv");
        std::fs::write(
            &results,
            "text_id,similarity_ranking,result_image_id\nt1,1,a\n",
        )
        .unwrap();
        std::fs::write(&gold, "image_id,text_id\na,t1\n").unwrap();
        let err = score_files(&results, &gold).unwrap_err().to_string();
        assert!(
            err.contains("r.csv")
                && err.contains("g.csv")
                && err.contains("\"t1\"")
                && err.contains("\"a\""),
            "{err}"
        );
        std::fs::write(&gold, "image_id,text_id\n").unwrap();
        let err = score_files(&results, &gold).unwrap_err().to_string();
        assert!(
            err.ends_with("g.csv: the gold file has no (query, relevant) rows"),
            "a problem of the whole file names no line: {err}"
        );
    }

    #[test]
    fn malformed_files_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("r.csv");
        std::fs::write(
            &p,
            "text_id,similarity_ranking,result_image_id\nt1,1,a\nt1,x,b\n",
        )
        .unwrap();
        let err = read_results(&p).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("\"x\""), "{err}");
        std::fs::write(
            &p,
            "text_id,similarity_ranking,result_image_id\nt1,1,a\nt1,1,b\n",
        )
        .unwrap();
        assert!(
            read_results(&p)
                .unwrap_err()
                .to_string()
                .contains("rank 1 twice")
        );
        let err = read_results(&dir.path().join("none.csv"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("none.csv"), "{err}");
        // Without its header the first row would have been taken for it.
        std::fs::write(&p, "t1,1,a\nt1,2,b\n").unwrap();
        let err = read_results(&p).unwrap_err().to_string();
        assert!(
            err.contains("line 1: the first line is a result row (\"t1,1,a\"), not a header"),
            "{err}"
        );
    }
}
