//! TF-IDF of tokens (words or character n-grams) as sparse CSR rows.
//!
//! Term weighting after Salton & Buckley (1988), with scikit-learn's `TfidfVectorizer`
//! conventions so results can be checked against it: `tf` is the raw count (or `1 + ln tf`
//! when sublinear), `idf = ln((1 + n) / (1 + df)) + 1` when smoothed (`ln(n / df) + 1`
//! otherwise), rows are L2-normalised, columns are the vocabulary in sorted order. Vocabulary
//! and IDF are fitted on the training documents only; a term seen only at transform time has
//! no column and is ignored. Output is always a [`CsrMatrix`], never a dense `n × vocab` matrix.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::TextError;
use super::normalize::token_of;
use crate::sparse::CsrMatrix;

/// Options of one TF-IDF block (scikit-learn's names and defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TfidfParams {
    /// Keep terms in at least this many training documents.
    pub min_df: usize,
    /// Drop terms in more than this fraction of training documents (1.0 keeps all).
    pub max_df: f32,
    /// Keep only the most frequent terms (by total count over the training documents).
    pub max_features: Option<usize>,
    /// Use `1 + ln(tf)` instead of `tf`.
    pub sublinear_tf: bool,
    /// Add one to document frequencies, as if one extra document held every term.
    pub smooth_idf: bool,
    /// L2-normalise each row.
    pub l2_norm: bool,
}

impl Default for TfidfParams {
    fn default() -> Self {
        Self {
            min_df: 1,
            max_df: 1.0,
            max_features: None,
            sublinear_tf: false,
            smooth_idf: true,
            l2_norm: true,
        }
    }
}

impl TfidfParams {
    /// Checks the ranges.
    pub fn check(&self) -> Result<(), TextError> {
        if self.min_df == 0 {
            return Err(TextError::InvalidParam {
                name: "min_df",
                value: "0".into(),
                reason: "must be at least 1",
            });
        }
        if !(self.max_df > 0.0 && self.max_df <= 1.0) {
            return Err(TextError::InvalidParam {
                name: "max_df",
                value: self.max_df.to_string(),
                reason: "must be in (0, 1]",
            });
        }
        if self.max_features == Some(0) {
            return Err(TextError::InvalidParam {
                name: "max_features",
                value: "0".into(),
                reason: "must be at least 1 when set",
            });
        }
        Ok(())
    }

    /// Fits the vocabulary and IDF on tokenised training documents.
    pub fn fit(&self, block: &'static str, docs: &[Vec<String>]) -> Result<FittedTfidf, TextError> {
        self.check()?;
        let n_docs = docs.len();
        if n_docs == 0 {
            return Err(TextError::NoTrainingTexts);
        }
        // term -> (document frequency, total count)
        let mut stats: HashMap<&str, (usize, usize)> = HashMap::new();
        for doc in docs {
            let mut seen: HashMap<&str, usize> = HashMap::new();
            for t in doc {
                *seen.entry(t.as_str()).or_default() += 1;
            }
            for (t, c) in seen {
                let e = stats.entry(t).or_default();
                e.0 += 1;
                e.1 += c;
            }
        }
        let max_df_docs = (self.max_df as f64 * n_docs as f64).floor() as usize;
        let mut kept: Vec<(&str, usize, usize)> = stats
            .into_iter()
            .filter(|&(_, (df, _))| df >= self.min_df && df <= max_df_docs.max(1))
            .map(|(t, (df, count))| (t, df, count))
            .collect();
        if let Some(max) = self.max_features {
            // Most frequent first, ties by term, as scikit-learn.
            kept.sort_unstable_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(b.0)));
            kept.truncate(max);
        }
        if kept.is_empty() {
            return Err(TextError::EmptyVocabulary {
                block,
                min_df: self.min_df,
                max_df: self.max_df,
                n_docs,
            });
        }
        kept.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let n = n_docs as f64;
        let vocab: Vec<String> = kept.iter().map(|k| k.0.to_owned()).collect();
        let idf: Vec<f32> = kept
            .iter()
            .map(|&(_, df, _)| {
                let df = df as f64;
                let v = if self.smooth_idf {
                    ((1.0 + n) / (1.0 + df)).ln() + 1.0
                } else {
                    (n / df).ln() + 1.0
                };
                v as f32
            })
            .collect();
        Ok(FittedTfidf::from_parts(self.clone(), vocab, idf))
    }
}

/// A fitted TF-IDF block: the sorted vocabulary and one IDF per column.
#[derive(Debug, Clone, PartialEq)]
pub struct FittedTfidf {
    params: TfidfParams,
    vocab: Vec<String>,
    index: HashMap<String, u32>,
    idf: Vec<f32>,
}

impl FittedTfidf {
    /// Rebuilds a fitted block from its parts (e.g. read back from disk).
    pub fn from_parts(params: TfidfParams, vocab: Vec<String>, idf: Vec<f32>) -> Self {
        let index = vocab
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        Self {
            params,
            vocab,
            index,
            idf,
        }
    }

    /// The terms, in column order.
    pub fn vocabulary(&self) -> &[String] {
        &self.vocab
    }
    /// One IDF per column.
    pub fn idf(&self) -> &[f32] {
        &self.idf
    }
    /// The column of `term`, if it is in the vocabulary.
    pub fn column(&self, term: &str) -> Option<usize> {
        self.index.get(term).map(|&c| c as usize)
    }
    /// The number of columns.
    pub fn n_features(&self) -> usize {
        self.vocab.len()
    }

    /// The TF-IDF row of one tokenised document as `(column, value)` pairs, sorted.
    pub fn transform_one(&self, doc: &[String]) -> Vec<(u32, f32)> {
        let mut counts: HashMap<u32, u32> = HashMap::new();
        for t in doc {
            if let Some(&c) = self.index.get(t.as_str()) {
                *counts.entry(c).or_default() += 1;
            }
        }
        let mut row: Vec<(u32, f32)> = counts
            .into_iter()
            .map(|(c, n)| {
                let tf = if self.params.sublinear_tf {
                    1.0 + (n as f32).ln()
                } else {
                    n as f32
                };
                (c, tf * self.idf[c as usize])
            })
            .collect();
        row.sort_unstable_by_key(|&(c, _)| c);
        if self.params.l2_norm {
            let norm = row.iter().map(|&(_, v)| v * v).sum::<f32>().sqrt();
            if norm > 0.0 {
                row.iter_mut().for_each(|(_, v)| *v /= norm);
            }
        }
        row
    }

    /// The TF-IDF matrix of tokenised documents, one row each.
    pub fn transform(&self, docs: &[Vec<String>]) -> CsrMatrix {
        let rows = docs.iter().map(|d| self.transform_one(d)).collect();
        CsrMatrix::from_rows(rows, self.n_features())
    }
}

/// Character n-grams of a normalised caption, `min_n ..= max_n` characters, never spanning a
/// piece separator; a placeholder sentinel counts as one character and is written as its token.
pub fn char_ngrams(normalized: &str, min_n: usize, max_n: usize) -> Vec<String> {
    let mut out = Vec::new();
    for piece in normalized.split(' ').filter(|p| !p.is_empty()) {
        let units: Vec<String> = piece
            .chars()
            .map(|c| token_of(c).map_or_else(|| c.to_string(), str::to_owned))
            .collect();
        for n in min_n..=max_n {
            if n == 0 || n > units.len() {
                continue;
            }
            for w in units.windows(n) {
                out.push(w.concat());
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn docs(v: &[&str]) -> Vec<Vec<String>> {
        v.iter()
            .map(|d| d.split_whitespace().map(str::to_owned).collect())
            .collect()
    }

    #[test]
    fn matches_hand_computed_values() {
        // n = 3 documents. df: a = 2, b = 1, c = 2.
        let train = docs(&["a b", "a c c", "c"]);
        let fitted = TfidfParams::default().fit("word", &train).unwrap();
        assert_eq!(fitted.vocabulary(), ["a", "b", "c"]);
        // smooth idf = ln(4 / (1 + df)) + 1
        let idf_a = (4.0f32 / 3.0).ln() + 1.0; // 1.287682
        let idf_b = (4.0f32 / 2.0).ln() + 1.0; // 1.693147
        assert!((fitted.idf()[0] - idf_a).abs() < 1e-6);
        assert!((fitted.idf()[1] - idf_b).abs() < 1e-6);
        assert!((fitted.idf()[0] - 1.287_682).abs() < 1e-6);
        let m = fitted.transform(&train).to_dense();
        // Row 1 = "a c c": raw (1.287682, 0, 2 * 1.287682), L2-normalised = (1, 0, 2) / sqrt 5.
        let s5 = 5.0f32.sqrt();
        assert!((m[[1, 0]] - 1.0 / s5).abs() < 1e-6);
        assert_eq!(m[[1, 1]], 0.0);
        assert!((m[[1, 2]] - 2.0 / s5).abs() < 1e-6);
        // Row 0 = "a b": (1.287682, 1.693147) / norm.
        let norm = (idf_a * idf_a + idf_b * idf_b).sqrt();
        assert!((m[[0, 0]] - idf_a / norm).abs() < 1e-6);
        assert!((m[[0, 1]] - idf_b / norm).abs() < 1e-6);
        // Row 2 = "c": a unit vector.
        assert!((m[[2, 2]] - 1.0).abs() < 1e-6);
    }

    #[test]
    fn sublinear_and_unsmoothed_variants() {
        let train = docs(&["a b", "a c c", "c"]);
        let params = TfidfParams {
            sublinear_tf: true,
            smooth_idf: false,
            l2_norm: false,
            ..Default::default()
        };
        let fitted = params.fit("word", &train).unwrap();
        let m = fitted.transform(&train).to_dense();
        // idf_c = ln(3 / 2) + 1; tf for "c c" = 1 + ln 2.
        let want = (1.0 + 2.0f32.ln()) * ((1.5f32).ln() + 1.0);
        assert!((m[[1, 2]] - want).abs() < 1e-6, "{}", m[[1, 2]]);
        // idf_b = ln 3 + 1 for the single "b".
        assert!((m[[0, 1]] - (3.0f32.ln() + 1.0)).abs() < 1e-6);
    }

    #[test]
    fn idf_is_fitted_on_train_only() {
        let train = docs(&["狗 跑", "猫 跑"]);
        let fitted = TfidfParams::default().fit("word", &train).unwrap();
        let test = docs(&["狗 自行车 自行车"]);
        let m = fitted.transform(&test);
        assert_eq!(m.n_cols(), 3);
        assert!(fitted.column("自行车").is_none());
        // Only 狗 has a column; after L2 norm its value is 1.
        assert_eq!(m.row(0).0, [fitted.column("狗").unwrap() as i32]);
        assert!((m.row(0).1[0] - 1.0).abs() < 1e-6);
        // A test document of unseen words is an empty row.
        assert_eq!(fitted.transform(&docs(&["飞机"])).nnz(), 0);
    }

    #[test]
    fn min_df_max_df_and_max_features_filter() {
        let train = docs(&["a b", "a c", "a c d"]);
        let p = TfidfParams {
            min_df: 2,
            ..Default::default()
        };
        assert_eq!(p.fit("word", &train).unwrap().vocabulary(), ["a", "c"]);
        let p = TfidfParams {
            max_df: 0.9,
            ..Default::default()
        };
        assert_eq!(p.fit("word", &train).unwrap().vocabulary(), ["b", "c", "d"]);
        let p = TfidfParams {
            max_features: Some(2),
            ..Default::default()
        };
        assert_eq!(p.fit("word", &train).unwrap().vocabulary(), ["a", "c"]);
        let p = TfidfParams {
            min_df: 5,
            ..Default::default()
        };
        let err = p.fit("word", &train).unwrap_err().to_string();
        assert!(err.contains("min_df = 5"), "{err}");
    }

    #[test]
    fn char_ngrams_stay_inside_pieces_and_keep_placeholders() {
        let n = format!("小狗{} 跑", super::super::normalize::PERSON);
        let grams = char_ngrams(&n, 1, 2);
        assert_eq!(grams, ["小", "狗", "<人名>", "小狗", "狗<人名>", "跑"]);
        assert_eq!(char_ngrams("abc", 2, 3), ["ab", "bc", "abc"]);
    }
}
