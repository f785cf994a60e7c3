//! Subword word vectors (fastText) and SIF sentence vectors.
//!
//! Word vectors are trained with skip-gram (or CBOW) and negative sampling (Mikolov et al.,
//! "Distributed Representations of Words and Phrases", NIPS 2013) where a word is the sum of
//! its own vector and those of its character n-grams hashed into buckets (Bojanowski et al.,
//! "Enriching Word Vectors with Subword Information", TACL 2017), so a word never seen in
//! training still gets a vector from its characters. Training uses the `fasttext` crate, a
//! pure-Rust port of Facebook's fastText (Hogwild SGD on several threads; deterministic with
//! one thread and a fixed seed). Vectors can also come from a pretrained fastText `.vec` file
//! (a plain table: no subwords, so out-of-vocabulary words get none).
//!
//! Sentences are the SIF-weighted average of their word vectors, `a / (a + p(w))` with `p`
//! the unigram probability on the fitting texts, minus the projection on the first principal
//! component of the training sentences (Arora, Liang & Ma, "A Simple but Tough-to-Beat
//! Baseline for Sentence Embeddings", ICLR 2017).

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use fasttext::FastText;
use fasttext::args::{Args, ModelName};
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::TextError;
use crate::error::IoError;
use crate::model_dir::{read_npy, write_npy};

/// The word fastText adds at the end of each line; never a neighbour.
const EOS: &str = "</s>";

/// Skip-gram or CBOW.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubwordModel {
    /// Skip-gram: each word predicts the words around it.
    Skipgram,
    /// CBOW: the words around a word predict it.
    Cbow,
}

/// Options of the word vectors and the sentence pooling.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SubwordParams {
    /// Skip-gram or CBOW.
    pub model: SubwordModel,
    /// Vector dimension.
    pub dim: usize,
    /// Passes over the texts.
    pub epoch: usize,
    /// Initial learning rate (decays linearly to 0).
    pub lr: f64,
    /// Context window (words each side, sampled uniformly in 1..=window).
    pub window: usize,
    /// Negative samples per positive one.
    pub neg: usize,
    /// Words seen fewer times get no own vector (subwords still cover them).
    pub min_count: usize,
    /// Shortest character n-gram of the subwords (characters, word boundaries included).
    pub minn: usize,
    /// Longest character n-gram of the subwords; 0 turns subwords off.
    pub maxn: usize,
    /// Hash buckets for the n-grams.
    pub bucket: usize,
    /// Subsampling threshold of frequent words.
    pub subsample: f64,
    /// SIF's `a` in `a / (a + p(w))`.
    pub sif_a: f32,
    /// Remove the first principal component of the training sentence vectors.
    pub remove_first_pc: bool,
    /// L2-normalise each sentence vector (after the component removal).
    pub l2_normalize: bool,
    /// Use these pretrained vectors (fastText `.vec` text format) instead of training.
    pub pretrained_vec: Option<PathBuf>,
}

impl Default for SubwordParams {
    fn default() -> Self {
        Self {
            model: SubwordModel::Skipgram,
            dim: 100,
            epoch: 10,
            lr: 0.05,
            window: 5,
            neg: 5,
            min_count: 2,
            minn: 1,
            maxn: 2,
            bucket: 200_000,
            subsample: 1e-4,
            sif_a: 1e-3,
            remove_first_pc: true,
            l2_normalize: true,
            pretrained_vec: None,
        }
    }
}

fn invalid(name: &'static str, value: impl ToString, reason: &'static str) -> TextError {
    TextError::InvalidParam {
        name,
        value: value.to_string(),
        reason,
    }
}

impl SubwordParams {
    /// Checks the ranges.
    pub fn check(&self) -> Result<(), TextError> {
        if !(1..=2048).contains(&self.dim) {
            return Err(invalid("subword.dim", self.dim, "must be in [1, 2048]"));
        }
        if self.epoch == 0 || self.epoch > 1000 {
            return Err(invalid("subword.epoch", self.epoch, "must be in [1, 1000]"));
        }
        if !(self.lr > 0.0 && self.lr <= 10.0) {
            return Err(invalid("subword.lr", self.lr, "must be in (0, 10]"));
        }
        if self.window == 0 || self.window > 100 {
            return Err(invalid(
                "subword.window",
                self.window,
                "must be in [1, 100]",
            ));
        }
        if self.neg == 0 || self.neg > 100 {
            return Err(invalid("subword.neg", self.neg, "must be in [1, 100]"));
        }
        if self.min_count == 0 {
            return Err(invalid("subword.min_count", 0, "must be at least 1"));
        }
        if self.maxn > 0 && (self.minn == 0 || self.minn > self.maxn || self.maxn > 10) {
            return Err(invalid(
                "subword.minn",
                format!("{}..={}", self.minn, self.maxn),
                "needs 1 <= minn <= maxn <= 10 (or maxn = 0 for no subwords)",
            ));
        }
        if self.maxn > 0 && (self.bucket == 0 || self.bucket > 20_000_000) {
            return Err(invalid(
                "subword.bucket",
                self.bucket,
                "must be in [1, 2e7]",
            ));
        }
        if !(self.subsample > 0.0 && self.subsample <= 1.0) {
            return Err(invalid(
                "subword.subsample",
                self.subsample,
                "must be in (0, 1]",
            ));
        }
        if !(self.sif_a > 0.0 && self.sif_a.is_finite()) {
            return Err(invalid("subword.sif_a", self.sif_a, "must be positive"));
        }
        Ok(())
    }
}

/// Word vectors: a trained fastText model (with subwords) or a plain table read from `.vec`.
pub enum WordVectors {
    /// A fastText model; any word, seen or not, gets a vector from its subwords.
    Subword(Box<FastText>),
    /// A table; words outside it have no vector.
    Table {
        /// The words, in the row order of `vectors`.
        words: Vec<String>,
        /// Row of `vectors` for each word.
        index: HashMap<String, usize>,
        /// One vector per row (words × dimension).
        vectors: Array2<f32>,
    },
}

impl std::fmt::Debug for WordVectors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WordVectors::Subword(m) => write!(
                f,
                "WordVectors::Subword({} words, dim {})",
                m.dict().nwords(),
                m.get_dimension()
            ),
            WordVectors::Table { words, vectors, .. } => {
                write!(
                    f,
                    "WordVectors::Table({} words, dim {})",
                    words.len(),
                    vectors.ncols()
                )
            }
        }
    }
}

fn ft_err(action: &'static str) -> impl FnOnce(fasttext::FastTextError) -> TextError {
    move |cause| TextError::FastText { action, cause }
}

impl WordVectors {
    /// Trains subword vectors on tokenised sentences (one sentence per caption).
    /// `threads` = 1 gives the same vectors for the same seed on every run.
    pub fn train(
        params: &SubwordParams,
        sentences: &[Vec<String>],
        seed: u64,
        threads: usize,
    ) -> Result<Self, TextError> {
        params.check()?;
        let dir = tempfile::tempdir()
            .map_err(|e| IoError::new("creating a temporary folder", std::env::temp_dir(), e))?;
        let input = dir.path().join("corpus.txt");
        {
            let file =
                std::fs::File::create(&input).map_err(|e| IoError::new("writing", &input, e))?;
            let mut w = std::io::BufWriter::new(file);
            for s in sentences.iter().filter(|s| !s.is_empty()) {
                writeln!(w, "{}", s.join(" ")).map_err(|e| IoError::new("writing", &input, e))?;
            }
            w.flush().map_err(|e| IoError::new("writing", &input, e))?;
        }
        let args = Args {
            input,
            model: match params.model {
                SubwordModel::Skipgram => ModelName::SkipGram,
                SubwordModel::Cbow => ModelName::Cbow,
            },
            dim: params.dim as i32,
            epoch: params.epoch as i32,
            lr: params.lr,
            ws: params.window as i32,
            neg: params.neg as i32,
            min_count: params.min_count as i32,
            minn: if params.maxn == 0 {
                0
            } else {
                params.minn as i32
            },
            maxn: params.maxn as i32,
            bucket: if params.maxn == 0 {
                0
            } else {
                params.bucket as i32
            },
            t: params.subsample,
            thread: threads.max(1) as i32,
            seed: (seed & 0x7fff_ffff) as i32,
            verbose: 0,
            ..Args::default()
        };
        let model = FastText::train(args).map_err(ft_err("training"))?;
        Ok(WordVectors::Subword(Box::new(model)))
    }

    /// Reads pretrained vectors in fastText's `.vec` text format: a header `count dim`, then
    /// one `word v1 … vdim` line per word.
    pub fn load_vec(path: &Path) -> Result<Self, TextError> {
        let file = std::fs::File::open(path).map_err(|e| IoError::new("reading", path, e))?;
        let bad = |line: usize, message: String| TextError::BadFile {
            path: path.to_path_buf(),
            line,
            message,
        };
        let mut lines = BufReader::new(file).lines();
        let header = lines
            .next()
            .ok_or_else(|| bad(1, "empty file, expected a `count dim` header".into()))?
            .map_err(|e| IoError::new("reading", path, e))?;
        let fields: Vec<&str> = header
            .trim_start_matches('\u{feff}')
            .split_whitespace()
            .collect();
        let parse = |s: &str| s.parse::<usize>().ok();
        let (count, dim) = match fields.as_slice() {
            [c, d] => match (parse(c), parse(d)) {
                (Some(c), Some(d)) if d > 0 => (c, d),
                _ => {
                    return Err(bad(
                        1,
                        format!("bad header `{header}`, expected `count dim`"),
                    ));
                }
            },
            _ => {
                return Err(bad(
                    1,
                    format!("bad header `{header}`, expected `count dim`"),
                ));
            }
        };
        // The header is only a promise (checked at the end): a typo in it must not reserve
        // terabytes, so what is reserved up front is capped.
        let mut words = Vec::with_capacity(count.min(1 << 20));
        let mut data = Vec::with_capacity(count.min(1 << 20).saturating_mul(dim.min(1024)));
        for (i, line) in lines.enumerate() {
            let line_no = i + 2;
            let line = line.map_err(|e| IoError::new("reading", path, e))?;
            if line.trim().is_empty() {
                continue;
            }
            let mut parts = line.split(' ').filter(|p| !p.is_empty());
            let word = parts.next().unwrap_or_default().to_owned();
            let before = data.len();
            for p in parts {
                let v: f32 = p
                    .trim()
                    .parse()
                    .map_err(|_| bad(line_no, format!("`{p}` is not a number")))?;
                data.push(v);
            }
            if data.len() - before != dim {
                return Err(bad(
                    line_no,
                    format!(
                        "word `{word}` has {} values, header says {dim}",
                        data.len() - before
                    ),
                ));
            }
            words.push(word);
        }
        if words.len() != count {
            // The header's count is what disagrees, so its line is named.
            return Err(bad(
                1,
                format!("header says {count} words, file has {}", words.len()),
            ));
        }
        let vectors =
            Array2::from_shape_vec((words.len(), dim), data).map_err(|e| bad(1, e.to_string()))?;
        Ok(Self::table(words, vectors))
    }

    /// A table of vectors, row `i` for `words[i]`.
    pub fn table(words: Vec<String>, vectors: Array2<f32>) -> Self {
        let index = words
            .iter()
            .enumerate()
            .map(|(i, w)| (w.clone(), i))
            .collect();
        WordVectors::Table {
            words,
            index,
            vectors,
        }
    }

    /// Vector dimension.
    pub fn dim(&self) -> usize {
        match self {
            WordVectors::Subword(m) => m.get_dimension() as usize,
            WordVectors::Table { vectors, .. } => vectors.ncols(),
        }
    }

    /// The in-vocabulary words (fastText's end-of-line token excluded).
    pub fn vocabulary(&self) -> Vec<String> {
        match self {
            WordVectors::Subword(m) => m.get_vocab().0.into_iter().filter(|w| w != EOS).collect(),
            WordVectors::Table { words, .. } => words.clone(),
        }
    }

    /// Whether `word` has its own vector (not only subwords).
    pub fn contains(&self, word: &str) -> bool {
        match self {
            WordVectors::Subword(m) => m.get_word_id(word).is_some(),
            WordVectors::Table { index, .. } => index.contains_key(word),
        }
    }

    /// The vector of `word`; for subword models also of unseen words (from their n-grams),
    /// `None` for a table's unseen words or a word with no known n-gram.
    pub fn vector(&self, word: &str) -> Option<Vec<f32>> {
        match self {
            WordVectors::Subword(m) => {
                let v = m.get_word_vector(word);
                v.iter().any(|&x| x != 0.0).then_some(v)
            }
            WordVectors::Table { index, vectors, .. } => {
                index.get(word).map(|&i| vectors.row(i).to_vec())
            }
        }
    }

    /// The `k` in-vocabulary words nearest to `word` by cosine (the word itself excluded).
    pub fn nearest(&self, word: &str, k: usize) -> Vec<(String, f32)> {
        let Some(q) = self.vector(word) else {
            return Vec::new();
        };
        let qn = norm(&q);
        if qn == 0.0 {
            return Vec::new();
        }
        let vocab = self.vocabulary();
        let mut scored: Vec<(String, f32)> = vocab
            .into_par_iter()
            .filter(|w| w != word)
            .filter_map(|w| {
                let v = self.vector(&w)?;
                let n = norm(&v);
                (n > 0.0).then(|| {
                    let dot: f32 = q.iter().zip(&v).map(|(a, b)| a * b).sum();
                    (w, dot / (qn * n))
                })
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        scored.truncate(k);
        scored
    }

    /// Cosine similarity of two words' vectors (0 when either has none).
    pub fn similarity(&self, a: &str, b: &str) -> f32 {
        match (self.vector(a), self.vector(b)) {
            (Some(x), Some(y)) => {
                let d = norm(&x) * norm(&y);
                if d == 0.0 {
                    0.0
                } else {
                    x.iter().zip(&y).map(|(p, q)| p * q).sum::<f32>() / d
                }
            }
            _ => 0.0,
        }
    }

    /// Writes the vectors to `dir`: `subword.bin` (fastText binary model, for subword models),
    /// `word_vectors.npy` (words × dim, numpy-readable) and `word_vectors.vocab.txt`.
    pub fn save(&self, dir: &Path) -> Result<(), TextError> {
        if let WordVectors::Subword(m) = self {
            m.save_model(dir.join("subword.bin"))
                .map_err(ft_err("saving"))?;
        }
        let words = self.vocabulary();
        let dim = self.dim();
        let mut table = Array2::<f32>::zeros((words.len(), dim));
        for (i, w) in words.iter().enumerate() {
            if let Some(v) = self.vector(w) {
                table.row_mut(i).assign(&Array1::from(v));
            }
        }
        write_npy(&dir.join("word_vectors.npy"), &table)?;
        write_lines(&dir.join("word_vectors.vocab.txt"), &words)
    }

    /// Reads vectors written by [`Self::save`].
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let bin = dir.join("subword.bin");
        if bin.exists() {
            let m = FastText::load_model(&bin).map_err(ft_err("loading"))?;
            return Ok(WordVectors::Subword(Box::new(m)));
        }
        let vectors: Array2<f32> = read_npy(&dir.join("word_vectors.npy"))?;
        let words = read_lines(&dir.join("word_vectors.vocab.txt"))?;
        if words.len() != vectors.nrows() {
            return Err(TextError::BadModel {
                path: dir.to_path_buf(),
                message: format!(
                    "word_vectors.vocab.txt has {} words but word_vectors.npy {} rows",
                    words.len(),
                    vectors.nrows()
                ),
            });
        }
        Ok(Self::table(words, vectors))
    }
}

fn norm(v: &[f32]) -> f32 {
    v.iter().map(|x| x * x).sum::<f32>().sqrt()
}

/// Writes one string per line.
pub(crate) fn write_lines(path: &Path, lines: &[String]) -> Result<(), TextError> {
    let mut text = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(path, text).map_err(|e| IoError::new("writing", path, e).into())
}

/// Reads one string per line.
pub(crate) fn read_lines(path: &Path) -> Result<Vec<String>, TextError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::new("reading", path, e))?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// Word vectors plus the SIF weights and principal component fitted on training sentences.
#[derive(Debug)]
pub struct FittedSentenceEncoder {
    vectors: WordVectors,
    /// Unigram probabilities on the fitting texts.
    probs: HashMap<String, f32>,
    sif_a: f32,
    /// The first principal component (unit vector) to remove, if enabled.
    pc: Option<Array1<f32>>,
    l2_normalize: bool,
}

impl FittedSentenceEncoder {
    /// Counts word frequencies on `fit_sentences` (tokens as given to [`Self::encode`]) and
    /// fits the first principal component on the SIF averages of `train_sentences`.
    pub fn fit(
        params: &SubwordParams,
        vectors: WordVectors,
        fit_sentences: &[Vec<String>],
        train_sentences: &[Vec<String>],
    ) -> Self {
        let mut counts: HashMap<String, usize> = HashMap::new();
        let mut total = 0usize;
        for s in fit_sentences {
            for t in s {
                *counts.entry(t.clone()).or_default() += 1;
                total += 1;
            }
        }
        let probs = counts
            .into_iter()
            .map(|(w, c)| (w, c as f32 / total.max(1) as f32))
            .collect();
        let mut enc = Self {
            vectors,
            probs,
            sif_a: params.sif_a,
            pc: None,
            l2_normalize: params.l2_normalize,
        };
        if params.remove_first_pc {
            let x = enc.weighted_average(train_sentences);
            enc.pc = first_component(&x);
        }
        enc
    }

    /// Rebuilds an encoder from saved parts.
    pub fn from_parts(
        vectors: WordVectors,
        probs: HashMap<String, f32>,
        sif_a: f32,
        pc: Option<Array1<f32>>,
        l2_normalize: bool,
    ) -> Self {
        Self {
            vectors,
            probs,
            sif_a,
            pc,
            l2_normalize,
        }
    }

    /// The word vectors.
    pub fn vectors(&self) -> &WordVectors {
        &self.vectors
    }
    /// The unigram probabilities used for the SIF weights.
    pub fn probabilities(&self) -> &HashMap<String, f32> {
        &self.probs
    }
    /// The removed principal component, if any.
    pub fn principal_component(&self) -> Option<&Array1<f32>> {
        self.pc.as_ref()
    }
    /// SIF's `a`.
    pub fn sif_a(&self) -> f32 {
        self.sif_a
    }
    /// Whether rows are L2-normalised.
    pub fn l2_normalize(&self) -> bool {
        self.l2_normalize
    }

    /// SIF weight of a word (`a / (a + p)`, `p` = 0 for words unseen when fitting).
    pub fn weight(&self, word: &str) -> f32 {
        let p = self.probs.get(word).copied().unwrap_or(0.0);
        self.sif_a / (self.sif_a + p)
    }

    fn weighted_average(&self, sentences: &[Vec<String>]) -> Array2<f32> {
        let dim = self.vectors.dim();
        let rows: Vec<Vec<f32>> = sentences
            .par_iter()
            .map(|s| {
                let mut acc = vec![0.0f32; dim];
                let mut n = 0usize;
                for t in s {
                    if let Some(v) = self.vectors.vector(t) {
                        let w = self.weight(t);
                        acc.iter_mut().zip(&v).for_each(|(a, x)| *a += w * x);
                        n += 1;
                    }
                }
                if n > 0 {
                    acc.iter_mut().for_each(|a| *a /= n as f32);
                }
                acc
            })
            .collect();
        let mut out = Array2::<f32>::zeros((sentences.len(), dim));
        for (i, r) in rows.into_iter().enumerate() {
            out.row_mut(i).assign(&Array1::from(r));
        }
        out
    }

    /// Sentence vectors of tokenised sentences, one row each (a sentence without any known
    /// word is a zero row).
    pub fn encode(&self, sentences: &[Vec<String>]) -> Array2<f32> {
        let mut x = self.weighted_average(sentences);
        for mut row in x.rows_mut() {
            if let Some(pc) = &self.pc {
                let proj = row.dot(pc);
                row.scaled_add(-proj, pc);
            }
            if self.l2_normalize {
                let n = row.dot(&row).sqrt();
                if n > 0.0 {
                    row.mapv_inplace(|v| v / n);
                }
            }
        }
        x
    }
}

/// The first right singular vector of `x` (uncentred, as in Arora et al.'s code), by power
/// iteration on `xᵀx` from a fixed start; `None` when `x` is all zeros.
pub fn first_component(x: &Array2<f32>) -> Option<Array1<f32>> {
    let d = x.ncols();
    if d == 0 || x.nrows() == 0 {
        return None;
    }
    let xd = x.mapv(f64::from);
    let gram = xd.t().dot(&xd);
    let mut v = Array1::<f64>::from_elem(d, 1.0 / (d as f64).sqrt());
    // Break symmetry deterministically in case the all-ones start is orthogonal to the top
    // component.
    for (i, e) in v.iter_mut().enumerate() {
        *e += 1e-3 * ((i % 7) as f64 - 3.0);
    }
    for _ in 0..300 {
        let w = gram.dot(&v);
        let n = w.dot(&w).sqrt();
        if n == 0.0 || !n.is_finite() {
            return None;
        }
        let next = w / n;
        let delta = (&next - &v).mapv(f64::abs).sum();
        v = next;
        if delta < 1e-10 {
            break;
        }
    }
    Some(v.mapv(|e| e as f32))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    /// A small synthetic corpus where 狗/小狗/狗狗 and 猫/小猫 share contexts.
    fn corpus() -> Vec<Vec<String>> {
        let mut out = Vec::new();
        let animals = ["狗", "小狗", "猫", "小猫", "狗狗"];
        let things = ["自行车", "汽车", "火车"];
        let mut k = 0usize;
        for rep in 0..60 {
            for (i, a) in animals.iter().enumerate() {
                let line = format!(
                    "一只 {a} 在 草地 上 {} 玩耍 叫",
                    ["跑", "跳", "睡觉"][(rep + i) % 3]
                );
                out.push(line.split(' ').map(str::to_owned).collect());
            }
            for t in things {
                k += 1;
                let line = format!(
                    "一辆 {t} 在 马路 上 {} 行驶",
                    ["快速", "慢慢", "停下"][k % 3]
                );
                out.push(line.split(' ').map(str::to_owned).collect());
            }
        }
        out
    }

    fn small_params() -> SubwordParams {
        SubwordParams {
            dim: 16,
            epoch: 20,
            min_count: 1,
            bucket: 5000,
            subsample: 1.0,
            ..Default::default()
        }
    }

    #[test]
    fn one_thread_is_deterministic_under_a_seed() {
        let c = corpus();
        let a = WordVectors::train(&small_params(), &c, 7, 1).unwrap();
        let b = WordVectors::train(&small_params(), &c, 7, 1).unwrap();
        let d = WordVectors::train(&small_params(), &c, 8, 1).unwrap();
        for w in ["狗", "自行车", "没见过的词"] {
            assert_eq!(a.vector(w), b.vector(w), "{w}");
        }
        assert_ne!(a.vector("狗"), d.vector("狗"));
    }

    #[test]
    fn oov_word_gets_a_vector_near_a_word_sharing_its_characters() {
        let c = corpus();
        let m = WordVectors::train(&small_params(), &c, 1, 1).unwrap();
        let oov = "小狗狗"; // never in the corpus
        assert!(!m.contains(oov));
        assert!(m.vector(oov).is_some());
        let near = m.similarity(oov, "小狗");
        let far = m.similarity(oov, "汽车");
        assert!(
            near > far + 0.2,
            "sim(小狗狗, 小狗) = {near}, sim(小狗狗, 汽车) = {far}"
        );
        // Context works too: 狗 is nearer to 猫 than to 汽车.
        assert!(m.similarity("狗", "猫") > m.similarity("狗", "汽车"));
    }

    #[test]
    fn save_and_load_round_trip() {
        let c = corpus();
        let m = WordVectors::train(&small_params(), &c, 3, 1).unwrap();
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let back = WordVectors::load(dir.path()).unwrap();
        assert_eq!(m.vector("狗"), back.vector("狗"));
        assert_eq!(m.vector("未知词"), back.vector("未知词"));
        let table: Array2<f32> = read_npy(&dir.path().join("word_vectors.npy")).unwrap();
        assert_eq!(table.nrows(), m.vocabulary().len());
        assert_eq!(table.ncols(), 16);
    }

    #[test]
    fn vec_file_is_read_and_errors_name_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v.vec");
        std::fs::write(&path, "2 3\n狗 1 0 0\n猫 0.5 0.5 0\n").unwrap();
        let v = WordVectors::load_vec(&path).unwrap();
        assert_eq!(v.dim(), 3);
        assert_eq!(v.vector("猫"), Some(vec![0.5, 0.5, 0.0]));
        assert_eq!(v.vector("鱼"), None);
        assert!((v.similarity("狗", "猫") - 0.5f32.sqrt()).abs() < 1e-6);
        std::fs::write(&path, "2 3\n狗 1 0 0\n猫 0.5 x 0\n").unwrap();
        let err = WordVectors::load_vec(&path).unwrap_err().to_string();
        assert!(err.contains("line 3") && err.contains("`x`"), "{err}");
        std::fs::write(&path, "2 3\n狗 1 0\n").unwrap();
        let err = WordVectors::load_vec(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("2 values"), "{err}");
        std::fs::write(&path, "\u{feff}2 3\n狗 1 0 0\n猫 0.5 0.5 0\n").unwrap();
        assert_eq!(
            WordVectors::load_vec(&path).unwrap().dim(),
            3,
            "behind a byte-order mark"
        );
        // A count far beyond the file (a typo) is an error, not an allocation that aborts.
        std::fs::write(&path, "30000000000 3\n狗 1 0 0\n").unwrap();
        let err = WordVectors::load_vec(&path).unwrap_err().to_string();
        assert!(
            err.contains("header says 30000000000 words, file has 1"),
            "{err}"
        );
        std::fs::write(&path, "3 3\n\n狗 1 0 0\n\n猫 0.5 0.5 0\n").unwrap();
        let err = WordVectors::load_vec(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("header says 3 words, file has 2"),
            "{err}"
        );
    }

    #[test]
    fn sif_weights_and_component_removal_by_hand() {
        let words = vec!["a".to_owned(), "b".to_owned()];
        let vectors = WordVectors::table(words, array![[1.0f32, 0.0], [0.0, 1.0]]);
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        // p(a) = 3/4, p(b) = 1/4.
        let fit = vec![s(&["a", "a", "a", "b"])];
        let params = SubwordParams {
            sif_a: 0.25,
            remove_first_pc: false,
            l2_normalize: false,
            ..Default::default()
        };
        let enc = FittedSentenceEncoder::fit(&params, vectors, &fit, &fit);
        assert!((enc.weight("a") - 0.25).abs() < 1e-6);
        assert!((enc.weight("b") - 0.5).abs() < 1e-6);
        assert!((enc.weight("zzz") - 1.0).abs() < 1e-6);
        let x = enc.encode(&[s(&["a", "b"]), s(&["zzz"])]);
        assert!((x[[0, 0]] - 0.125).abs() < 1e-6 && (x[[0, 1]] - 0.25).abs() < 1e-6);
        assert_eq!(x.row(1).to_vec(), vec![0.0, 0.0]);
        // The first component of rows along (1, 1) is (1, 1)/√2, and removing it leaves the
        // orthogonal part.
        let pc = first_component(&array![[1.0f32, 1.0], [2.0, 2.1], [-1.0, -0.9]]).unwrap();
        assert!(
            (pc[0].abs() - pc[1].abs()).abs() < 0.05 && pc[0] * pc[1] > 0.0,
            "{pc}"
        );
        assert!((pc.dot(&pc) - 1.0).abs() < 1e-5);
    }
}
