//! The text feature extractor the pipeline calls: captions → sparse feature rows.
//!
//! Three switchable, weighted blocks (see the parent module for the papers):
//! word TF-IDF over jieba tokens, character n-gram TF-IDF (1–2 grams by default; a Python
//! exploration on Flickr8k-CN found it the best single text view) and SIF sentence vectors from
//! subword skip-gram vectors. Vocabularies, IDF, word vectors and the SIF component are fitted
//! on the training captions only (the word vectors and SIF frequencies may also use unlabelled
//! captions the caller passes); `transform` then maps any caption.
//!
//! linfa style: [`TextFeatureParams`] (serde, a pipeline TOML section) → [`check`] →
//! [`TextFeatureValidParams::fit`] → [`FittedTextFeatures`] → [`FittedTextFeatures::transform`]
//! → [`TextFeatures`]. A fitted model saves to and loads from a directory whose matrices are
//! `.npy` files (numpy) and whose vocabularies are text files, one term per line.
//!
//! [`check`]: TextFeatureParams::check

use std::path::Path;

use indicatif::ProgressBar;
use ndarray::{Array1, Array2};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::TextError;
use super::normalize::{NormalizeParams, normalize};
use super::segment::{SegmentParams, Segmenter};
use super::subword::{FittedSentenceEncoder, SubwordParams, WordVectors, read_lines, write_lines};
use super::tfidf::{FittedTfidf, TfidfParams, char_ngrams};
use crate::error::IoError;
use crate::model_dir::{read_npy, write_npy};
use crate::sparse::CsrMatrix;

/// The word TF-IDF block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WordBlockParams {
    /// Whether the block is computed (off by default).
    pub enabled: bool,
    /// Multiplies the block's (L2-normalised) rows in the combined matrix.
    pub weight: f32,
    /// TF-IDF settings of the word block.
    pub tfidf: TfidfParams,
}

impl Default for WordBlockParams {
    /// Off by default: on a validation part of the Flickr8k-CN training split, words added
    /// nothing to character 1–2 grams (see `benches/text_features.rs`).
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
            tfidf: TfidfParams::default(),
        }
    }
}

/// The character n-gram TF-IDF block.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CharBlockParams {
    /// Whether the block is computed.
    pub enabled: bool,
    /// Multiplies the block's (L2-normalised) rows in the combined matrix.
    pub weight: f32,
    /// Shortest n-gram, in characters.
    pub min_n: usize,
    /// Longest n-gram, in characters.
    pub max_n: usize,
    /// TF-IDF settings of the character n-gram block.
    pub tfidf: TfidfParams,
}

impl Default for CharBlockParams {
    fn default() -> Self {
        Self {
            enabled: true,
            weight: 1.0,
            min_n: 1,
            max_n: 2,
            tfidf: TfidfParams::default(),
        }
    }
}

/// The sentence-vector block (subword vectors pooled with SIF).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SentenceBlockParams {
    /// Whether the block is computed (off by default).
    pub enabled: bool,
    /// Multiplies the block's (L2-normalised) rows in the combined matrix.
    pub weight: f32,
    /// The fastText-style subword model the word vectors come from.
    pub subword: SubwordParams,
}

impl Default for SentenceBlockParams {
    /// Off by default: on a validation part of the Flickr8k-CN training split, the SIF
    /// sentence vectors were weaker than character 1–2 grams and did not add to them at weight
    /// 1 (see `benches/text_features.rs`).
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
            subword: SubwordParams::default(),
        }
    }
}

/// Every option of the text features; a pipeline TOML `[text]` section deserialises into it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TextFeatureParams {
    /// Caption clean-up before segmentation (`<人名>` kept whole, mojibake dropped).
    pub normalize: NormalizeParams,
    /// jieba segmentation and stop words.
    pub segment: SegmentParams,
    /// TF-IDF of the segmented words.
    pub word: WordBlockParams,
    /// TF-IDF of character n-grams.
    pub char: CharBlockParams,
    /// SIF-weighted sentence vectors from subword word vectors.
    pub sentence: SentenceBlockParams,
    /// Seed of the word-vector training.
    pub seed: u64,
    /// Threads for segmentation and word-vector training; 0 = rayon's pool size. Word vectors
    /// are reproducible only with 1 (Hogwild SGD races otherwise), the default.
    pub threads: usize,
}

impl Default for TextFeatureParams {
    fn default() -> Self {
        Self {
            normalize: NormalizeParams::default(),
            segment: SegmentParams::default(),
            word: WordBlockParams::default(),
            char: CharBlockParams::default(),
            sentence: SentenceBlockParams::default(),
            seed: 0,
            threads: 1,
        }
    }
}

impl TextFeatureParams {
    /// The defaults: only the character 1–2-gram block on (weight 1), seed 0, 1 thread.
    pub fn new() -> Self {
        Self::default()
    }
    /// Switches the word TF-IDF block and sets its weight.
    pub fn word_block(mut self, enabled: bool, weight: f32) -> Self {
        self.word.enabled = enabled;
        self.word.weight = weight;
        self
    }
    /// Switches the character n-gram block and sets its weight.
    pub fn char_block(mut self, enabled: bool, weight: f32) -> Self {
        self.char.enabled = enabled;
        self.char.weight = weight;
        self
    }
    /// Character n-gram lengths.
    pub fn char_ngrams(mut self, min_n: usize, max_n: usize) -> Self {
        self.char.min_n = min_n;
        self.char.max_n = max_n;
        self
    }
    /// Switches the sentence-vector block and sets its weight.
    pub fn sentence_block(mut self, enabled: bool, weight: f32) -> Self {
        self.sentence.enabled = enabled;
        self.sentence.weight = weight;
        self
    }
    /// Subword-vector options.
    pub fn subword(mut self, subword: SubwordParams) -> Self {
        self.sentence.subword = subword;
        self
    }
    /// Seed of the word-vector training.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    /// Threads (0 = rayon's pool size).
    pub fn threads(mut self, threads: usize) -> Self {
        self.threads = threads;
        self
    }

    /// Checks every option.
    pub fn check(self) -> Result<TextFeatureValidParams, TextError> {
        self.check_ref()?;
        Ok(TextFeatureValidParams(self))
    }

    fn check_ref(&self) -> Result<(), TextError> {
        for (name, w) in [
            ("word.weight", self.word.weight),
            ("char.weight", self.char.weight),
            ("sentence.weight", self.sentence.weight),
        ] {
            if !(w.is_finite() && w >= 0.0) {
                return Err(TextError::InvalidParam {
                    name,
                    value: w.to_string(),
                    reason: "must be finite and >= 0",
                });
            }
        }
        if self.char.enabled
            && !(1 <= self.char.min_n && self.char.min_n <= self.char.max_n && self.char.max_n <= 6)
        {
            return Err(TextError::InvalidParam {
                name: "char.min_n..=char.max_n",
                value: format!("{}..={}", self.char.min_n, self.char.max_n),
                reason: "needs 1 <= min_n <= max_n <= 6",
            });
        }
        if self.word.enabled {
            self.word.tfidf.check()?;
        }
        if self.char.enabled {
            self.char.tfidf.check()?;
        }
        if self.sentence.enabled {
            self.sentence.subword.check()?;
        }
        let any = (self.word.enabled && self.word.weight > 0.0)
            || (self.char.enabled && self.char.weight > 0.0)
            || (self.sentence.enabled && self.sentence.weight > 0.0);
        if !any {
            return Err(TextError::NoBlock);
        }
        if self.threads > 1024 {
            return Err(TextError::InvalidParam {
                name: "threads",
                value: self.threads.to_string(),
                reason: "must be at most 1024 (0 = rayon's pool size)",
            });
        }
        Ok(())
    }
}

/// Checked [`TextFeatureParams`], ready to fit.
#[derive(Debug, Clone, PartialEq)]
pub struct TextFeatureValidParams(TextFeatureParams);

impl TextFeatureValidParams {
    /// The checked options.
    pub fn params(&self) -> &TextFeatureParams {
        &self.0
    }

    /// Fits the enabled blocks: vocabularies and IDF on `train`, word vectors and SIF
    /// frequencies on `train` + `unlabelled`, the SIF component on `train`. `progress` gets one
    /// `inc` per caption of `train` and `unlabelled` (segmentation); its length is left alone.
    pub fn fit(
        &self,
        train: &[String],
        unlabelled: &[String],
        progress: &ProgressBar,
    ) -> Result<FittedTextFeatures, TextError> {
        let p = &self.0;
        if train.is_empty() {
            return Err(TextError::NoTrainingTexts);
        }
        let segmenter = Segmenter::new(&p.segment)?;
        let threads = effective_threads(p.threads);
        let all: Vec<&String> = train.iter().chain(unlabelled).collect();
        let prepared: Vec<Prepared> = in_pool(threads, || {
            all.par_iter()
                .map(|t| {
                    let r = prepare(p, &segmenter, t);
                    progress.inc(1);
                    r
                })
                .collect()
        });
        let n_train = train.len();
        let word = if p.word.enabled {
            let docs: Vec<Vec<String>> = prepared[..n_train]
                .iter()
                .map(|x| x.content.clone())
                .collect();
            Some(p.word.tfidf.fit("word", &docs)?)
        } else {
            None
        };
        let char = if p.char.enabled {
            let docs: Vec<Vec<String>> = prepared[..n_train]
                .iter()
                .map(|x| char_ngrams(&x.normalized, p.char.min_n, p.char.max_n))
                .collect();
            Some(p.char.tfidf.fit("char", &docs)?)
        } else {
            None
        };
        let sentence = if p.sentence.enabled {
            let sp = &p.sentence.subword;
            let vectors = match &sp.pretrained_vec {
                Some(path) => WordVectors::load_vec(path)?,
                None => {
                    let corpus: Vec<Vec<String>> =
                        prepared.iter().map(|x| x.tokens.clone()).collect();
                    WordVectors::train(sp, &corpus, p.seed, threads)?
                }
            };
            let fit_sentences: Vec<Vec<String>> =
                prepared.iter().map(|x| x.content.clone()).collect();
            let encoder =
                FittedSentenceEncoder::fit(sp, vectors, &fit_sentences, &fit_sentences[..n_train]);
            Some(encoder)
        } else {
            None
        };
        Ok(FittedTextFeatures {
            params: p.clone(),
            segmenter,
            word,
            char,
            sentence,
        })
    }
}

fn effective_threads(threads: usize) -> usize {
    if threads == 0 {
        rayon::current_num_threads()
    } else {
        threads
    }
}

/// Runs `f` in a rayon pool of `threads` threads (the global pool if that fails).
fn in_pool<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
    match rayon::ThreadPoolBuilder::new().num_threads(threads).build() {
        Ok(pool) => pool.install(f),
        Err(e) => {
            log::warn!("could not build a {threads}-thread pool ({e}); using the global one");
            f()
        }
    }
}

/// One caption after normalisation and segmentation.
#[derive(Debug, Clone)]
struct Prepared {
    normalized: String,
    /// All tokens (word-vector training).
    tokens: Vec<String>,
    /// Tokens without stop words (word TF-IDF, SIF).
    content: Vec<String>,
}

fn prepare(p: &TextFeatureParams, segmenter: &Segmenter, text: &str) -> Prepared {
    let normalized = normalize(text, &p.normalize);
    let tokens = segmenter.tokens(&normalized);
    let content = if p.segment.remove_stopwords {
        tokens
            .iter()
            .filter(|t| !segmenter.is_stopword(t))
            .cloned()
            .collect()
    } else {
        tokens.clone()
    };
    Prepared {
        normalized,
        tokens,
        content,
    }
}

/// Features of a batch of captions, one row per caption in every block.
#[derive(Debug, Clone)]
pub struct TextFeatures {
    /// Word TF-IDF (L2 rows by default); `n × 0` when the block is off.
    pub word_tfidf: CsrMatrix,
    /// Character n-gram TF-IDF; `n × 0` when the block is off.
    pub char_tfidf: CsrMatrix,
    /// SIF sentence vectors, when the block is on.
    pub sentence: Option<Array2<f32>>,
    /// `[word · w_word | char · w_char | sentence · w_sentence]`, blocks that are off or
    /// weighted 0 left out; the dense sentence block is stored as sparse columns.
    pub combined: CsrMatrix,
}

/// Fitted text features; see [`TextFeatureValidParams::fit`].
#[derive(Debug)]
pub struct FittedTextFeatures {
    params: TextFeatureParams,
    segmenter: Segmenter,
    word: Option<FittedTfidf>,
    char: Option<FittedTfidf>,
    sentence: Option<FittedSentenceEncoder>,
}

impl FittedTextFeatures {
    /// The options it was fitted with.
    pub fn params(&self) -> &TextFeatureParams {
        &self.params
    }
    /// The segmenter (normalised text → tokens).
    pub fn segmenter(&self) -> &Segmenter {
        &self.segmenter
    }
    /// The word TF-IDF block, if on.
    pub fn word_tfidf(&self) -> Option<&FittedTfidf> {
        self.word.as_ref()
    }
    /// The character n-gram TF-IDF block, if on.
    pub fn char_tfidf(&self) -> Option<&FittedTfidf> {
        self.char.as_ref()
    }
    /// The sentence encoder (word vectors + SIF), if on.
    pub fn sentence_encoder(&self) -> Option<&FittedSentenceEncoder> {
        self.sentence.as_ref()
    }
    /// The word vectors, if the sentence block is on.
    pub fn word_vectors(&self) -> Option<&WordVectors> {
        self.sentence.as_ref().map(FittedSentenceEncoder::vectors)
    }

    /// Column ranges of the blocks in [`TextFeatures::combined`], in order, by name
    /// (`"word"`, `"char"`, `"sentence"`).
    pub fn combined_layout(&self) -> Vec<(&'static str, std::ops::Range<usize>)> {
        let mut out = Vec::new();
        let mut at = 0;
        for (name, width, weight) in self.blocks() {
            if weight > 0.0 {
                out.push((name, at..at + width));
                at += width;
            }
        }
        out
    }

    fn blocks(&self) -> Vec<(&'static str, usize, f32)> {
        let mut out = Vec::new();
        if let Some(w) = &self.word {
            out.push(("word", w.n_features(), self.params.word.weight));
        }
        if let Some(c) = &self.char {
            out.push(("char", c.n_features(), self.params.char.weight));
        }
        if let Some(s) = &self.sentence {
            out.push(("sentence", s.vectors().dim(), self.params.sentence.weight));
        }
        out
    }

    /// Features of `texts`; `progress` gets one `inc` per caption.
    pub fn transform(&self, texts: &[String], progress: &ProgressBar) -> TextFeatures {
        let p = &self.params;
        let threads = effective_threads(p.threads);
        let prepared: Vec<Prepared> = in_pool(threads, || {
            texts
                .par_iter()
                .map(|t| {
                    let r = prepare(p, &self.segmenter, t);
                    progress.inc(1);
                    r
                })
                .collect()
        });
        let n = texts.len();
        let word_tfidf = match &self.word {
            Some(w) => {
                let docs: Vec<Vec<String>> = prepared.iter().map(|x| x.content.clone()).collect();
                w.transform(&docs)
            }
            None => CsrMatrix::from_rows(vec![Vec::new(); n], 0),
        };
        let char_tfidf = match &self.char {
            Some(c) => {
                let docs: Vec<Vec<String>> = prepared
                    .iter()
                    .map(|x| char_ngrams(&x.normalized, p.char.min_n, p.char.max_n))
                    .collect();
                c.transform(&docs)
            }
            None => CsrMatrix::from_rows(vec![Vec::new(); n], 0),
        };
        let sentence = self.sentence.as_ref().map(|enc| {
            let docs: Vec<Vec<String>> = prepared.iter().map(|x| x.content.clone()).collect();
            in_pool(threads, || enc.encode(&docs))
        });
        let combined = self.combine(&word_tfidf, &char_tfidf, sentence.as_ref());
        TextFeatures {
            word_tfidf,
            char_tfidf,
            sentence,
            combined,
        }
    }

    fn combine(
        &self,
        word: &CsrMatrix,
        char: &CsrMatrix,
        sentence: Option<&Array2<f32>>,
    ) -> CsrMatrix {
        let p = &self.params;
        let n = word.n_rows();
        let mut rows: Vec<Vec<(u32, f32)>> = vec![Vec::new(); n];
        let mut offset = 0usize;
        fn add_sparse(
            m: &CsrMatrix,
            weight: f32,
            offset: &mut usize,
            rows: &mut [Vec<(u32, f32)>],
        ) {
            if weight > 0.0 && m.n_cols() > 0 {
                for (i, row) in rows.iter_mut().enumerate() {
                    let (cols, vals) = m.row(i);
                    let at = *offset;
                    row.extend(
                        cols.iter()
                            .zip(vals)
                            .map(|(&c, &v)| ((at + c as usize) as u32, v * weight)),
                    );
                }
                *offset += m.n_cols();
            }
        }
        if self.word.is_some() {
            add_sparse(word, p.word.weight, &mut offset, &mut rows);
        }
        if self.char.is_some() {
            add_sparse(char, p.char.weight, &mut offset, &mut rows);
        }
        if let Some(s) = sentence.filter(|_| p.sentence.weight > 0.0) {
            let w = p.sentence.weight;
            for (i, row) in rows.iter_mut().enumerate() {
                row.extend(
                    s.row(i)
                        .iter()
                        .enumerate()
                        .filter(|&(_, &v)| v != 0.0)
                        .map(|(j, &v)| ((offset + j) as u32, v * w)),
                );
            }
            offset += s.ncols();
        }
        CsrMatrix::from_rows(rows, offset)
    }

    /// Saves the fitted model to `dir` (created if needed): `params.json`, `stopwords.txt`,
    /// `user_dict.txt` (if any), `{word,char}_vocab.txt` + `{word,char}_idf.npy`, and for the
    /// sentence block `subword.bin` (fastText model) or the vector table, `word_vectors.npy` +
    /// `word_vectors.vocab.txt`, `sif_vocab.txt` + `sif_probs.npy`, `sif_pc.npy`.
    /// The folder is written whole or not at all; an existing one is replaced.
    pub fn save(&self, dir: &Path) -> Result<(), TextError> {
        crate::model_dir::write_folder_atomically(dir, |staging| self.write_files(staging))
    }

    /// Writes the files of [`Self::save`] into the empty folder `dir`.
    fn write_files(&self, dir: &Path) -> Result<(), TextError> {
        let json = serde_json::to_string_pretty(&self.params).map_err(|e| TextError::BadModel {
            path: dir.to_path_buf(),
            message: format!("serialising params: {e}"),
        })?;
        write_file(&dir.join("params.json"), &json)?;
        let stop: Vec<String> = self
            .segmenter
            .stopwords_sorted()
            .into_iter()
            .map(str::to_owned)
            .collect();
        write_lines(&dir.join("stopwords.txt"), &stop)?;
        if let Some(text) = self.segmenter.user_dict_text() {
            write_file(&dir.join("user_dict.txt"), text)?;
        }
        for (name, block) in [("word", &self.word), ("char", &self.char)] {
            if let Some(b) = block {
                write_lines(&dir.join(format!("{name}_vocab.txt")), b.vocabulary())?;
                write_npy(
                    &dir.join(format!("{name}_idf.npy")),
                    &Array1::from(b.idf().to_vec()),
                )?;
            }
        }
        if let Some(enc) = &self.sentence {
            enc.vectors().save(dir)?;
            let mut words: Vec<(&String, &f32)> = enc.probabilities().iter().collect();
            words.sort_unstable_by(|a, b| a.0.cmp(b.0));
            let vocab: Vec<String> = words.iter().map(|w| w.0.clone()).collect();
            let probs = Array1::from(words.iter().map(|w| *w.1).collect::<Vec<f32>>());
            write_lines(&dir.join("sif_vocab.txt"), &vocab)?;
            write_npy(&dir.join("sif_probs.npy"), &probs)?;
            if let Some(pc) = enc.principal_component() {
                write_npy(&dir.join("sif_pc.npy"), pc)?;
            }
        }
        Ok(())
    }

    /// Loads a model written by [`Self::save`].
    pub fn load(dir: &Path) -> Result<Self, TextError> {
        let bad = |message: String| TextError::BadModel {
            path: dir.to_path_buf(),
            message,
        };
        let json = read_file(&dir.join("params.json"))?;
        let params: TextFeatureParams =
            serde_json::from_str(&json).map_err(|e| bad(format!("params.json: {e}")))?;
        params.check_ref()?;
        let stop = read_file(&dir.join("stopwords.txt"))?;
        let user_path = dir.join("user_dict.txt");
        let user = if user_path.exists() {
            Some(read_file(&user_path)?)
        } else {
            None
        };
        let segmenter = Segmenter::from_parts(
            &params.segment,
            user.as_deref().map(|t| (t, user_path.as_path())),
            &stop,
        )?;
        let load_block = |name: &str, tfidf: &TfidfParams| -> Result<FittedTfidf, TextError> {
            let vocab = read_lines(&dir.join(format!("{name}_vocab.txt")))?;
            let idf: Array1<f32> = read_npy(&dir.join(format!("{name}_idf.npy")))?;
            if vocab.len() != idf.len() {
                return Err(bad(format!(
                    "{name}_vocab.txt has {} terms but {name}_idf.npy {} values",
                    vocab.len(),
                    idf.len()
                )));
            }
            Ok(FittedTfidf::from_parts(tfidf.clone(), vocab, idf.to_vec()))
        };
        let word = if params.word.enabled {
            Some(load_block("word", &params.word.tfidf)?)
        } else {
            None
        };
        let char = if params.char.enabled {
            Some(load_block("char", &params.char.tfidf)?)
        } else {
            None
        };
        let sentence = if params.sentence.enabled {
            let vectors = WordVectors::load(dir)?;
            let vocab = read_lines(&dir.join("sif_vocab.txt"))?;
            let probs: Array1<f32> = read_npy(&dir.join("sif_probs.npy"))?;
            if vocab.len() != probs.len() {
                return Err(bad(format!(
                    "sif_vocab.txt has {} words but sif_probs.npy {} values",
                    vocab.len(),
                    probs.len()
                )));
            }
            let pc_path = dir.join("sif_pc.npy");
            let pc: Option<Array1<f32>> = if params.sentence.subword.remove_first_pc {
                if pc_path.exists() {
                    Some(read_npy(&pc_path)?)
                } else {
                    None
                }
            } else {
                None
            };
            if let Some(len) = pc.as_ref().map(Array1::len).filter(|&l| l != vectors.dim()) {
                return Err(bad(format!(
                    "sif_pc.npy has {len} values, the word vectors {} dimensions",
                    vectors.dim()
                )));
            }
            let sp = &params.sentence.subword;
            Some(FittedSentenceEncoder::from_parts(
                vectors,
                vocab.into_iter().zip(probs.iter().copied()).collect(),
                sp.sif_a,
                pc,
                sp.l2_normalize,
            ))
        } else {
            None
        };
        Ok(Self {
            params,
            segmenter,
            word,
            char,
            sentence,
        })
    }
}

fn write_file(path: &Path, text: &str) -> Result<(), TextError> {
    std::fs::write(path, text).map_err(|e| IoError::new("writing", path, e).into())
}

fn read_file(path: &Path) -> Result<String, TextError> {
    std::fs::read_to_string(path).map_err(|e| IoError::new("reading", path, e).into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captions(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    fn small() -> TextFeatureParams {
        TextFeatureParams::new()
            .word_block(true, 1.0)
            .sentence_block(true, 1.0)
            .subword(SubwordParams {
                dim: 8,
                epoch: 5,
                min_count: 1,
                bucket: 1000,
                ..Default::default()
            })
    }

    fn train_texts() -> Vec<String> {
        let mut v = Vec::new();
        for i in 0..30 {
            v.push(format!("一只小狗在草地上奔跑{}", ["。", "!", ""][i % 3]));
            v.push("两个孩子在海滩上玩球。".to_owned());
            v.push("一个男人骑着自行车。".to_owned());
        }
        v
    }

    #[test]
    fn transform_shapes_and_combined_layout() {
        let fitted = small()
            .check()
            .unwrap()
            .fit(&train_texts(), &[], &ProgressBar::hidden())
            .unwrap();
        let test = captions(&["一只小狗骑自行车", "飞机"]);
        let f = fitted.transform(&test, &ProgressBar::hidden());
        let nw = fitted.word_tfidf().unwrap().n_features();
        let nc = fitted.char_tfidf().unwrap().n_features();
        assert_eq!(f.word_tfidf.shape(), (2, nw));
        assert_eq!(f.char_tfidf.shape(), (2, nc));
        assert_eq!(f.sentence.as_ref().unwrap().dim(), (2, 8));
        assert_eq!(f.combined.shape(), (2, nw + nc + 8));
        let layout = fitted.combined_layout();
        assert_eq!(layout[1], ("char", nw..nw + nc));
        // 飞/机 are in no training caption: no word or char entries.
        assert_eq!(f.word_tfidf.row(1).0.len(), 0);
        assert_eq!(f.char_tfidf.row(1).0.len(), 0);
        // The combined row is the blocks side by side.
        let dense = f.combined.to_dense();
        let wd = f.word_tfidf.to_dense();
        let cd = f.char_tfidf.to_dense();
        for j in 0..nw {
            assert_eq!(dense[[0, j]], wd[[0, j]]);
        }
        for j in 0..nc {
            assert_eq!(dense[[0, nw + j]], cd[[0, j]]);
        }
        let s = f.sentence.as_ref().unwrap();
        for j in 0..8 {
            assert_eq!(dense[[0, nw + nc + j]], s[[0, j]]);
        }
    }

    #[test]
    fn weights_scale_blocks_and_switched_off_blocks_are_empty() {
        let params = small()
            .word_block(false, 1.0)
            .char_block(true, 0.5)
            .sentence_block(false, 1.0);
        let fitted = params
            .check()
            .unwrap()
            .fit(&train_texts(), &[], &ProgressBar::hidden())
            .unwrap();
        let f = fitted.transform(&captions(&["小狗"]), &ProgressBar::hidden());
        assert_eq!(f.word_tfidf.n_cols(), 0);
        assert!(f.sentence.is_none());
        let c = f.char_tfidf.to_dense();
        let m = f.combined.to_dense();
        assert_eq!(m.shape(), c.shape());
        for (a, b) in m.iter().zip(c.iter()) {
            assert!((a - 0.5 * b).abs() < 1e-7);
        }
    }

    #[test]
    fn check_rejects_bad_options_by_name() {
        let err = small().char_ngrams(3, 2).check().unwrap_err().to_string();
        assert!(err.contains("3..=2"), "{err}");
        let err = small()
            .word_block(true, -1.0)
            .check()
            .unwrap_err()
            .to_string();
        assert!(err.contains("word.weight") && err.contains("-1"), "{err}");
        let off = small()
            .word_block(false, 1.0)
            .char_block(false, 1.0)
            .sentence_block(true, 0.0);
        assert!(matches!(off.check(), Err(TextError::NoBlock)));
        let none: Vec<String> = Vec::new();
        let err = small()
            .check()
            .unwrap()
            .fit(&none, &[], &ProgressBar::hidden())
            .unwrap_err();
        assert!(matches!(err, TextError::NoTrainingTexts));
    }

    #[test]
    fn toml_section_round_trips_and_rejects_unknown_keys() {
        let p: TextFeatureParams = toml::from_str(
            "seed = 3\n[char]\nmax_n = 3\nweight = 2.0\n[sentence]\nenabled = false\n",
        )
        .unwrap();
        assert_eq!(p.char.max_n, 3);
        assert_eq!(p.char.min_n, 1);
        assert!(!p.sentence.enabled);
        assert!(toml::from_str::<TextFeatureParams>("[char]\nmax_gram = 3\n").is_err());
        // An empty section gives the defaults: character 1–2 grams only, one thread.
        let d: TextFeatureParams = toml::from_str("").unwrap();
        assert_eq!(d, TextFeatureParams::new());
        assert!(d.char.enabled && !d.word.enabled && !d.sentence.enabled);
        assert_eq!((d.char.min_n, d.char.max_n, d.threads), (1, 2, 1));
    }

    #[test]
    fn save_load_gives_the_same_features() {
        let fitted = small()
            .seed(5)
            .check()
            .unwrap()
            .fit(
                &train_texts(),
                &captions(&["一只猫"]),
                &ProgressBar::hidden(),
            )
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        fitted.save(dir.path()).unwrap();
        let back = FittedTextFeatures::load(dir.path()).unwrap();
        let test = captions(&["一只小狗骑自行车", "孩子在玩球<人名>"]);
        let a = fitted.transform(&test, &ProgressBar::hidden());
        let b = back.transform(&test, &ProgressBar::hidden());
        assert_eq!(a.combined, b.combined);
        assert_eq!(a.sentence, b.sentence);
        // The matrices are numpy-readable.
        let idf: Array1<f32> = read_npy(&dir.path().join("char_idf.npy")).unwrap();
        assert_eq!(idf.len(), fitted.char_tfidf().unwrap().n_features());
    }

    #[test]
    fn unlabelled_texts_feed_word_vectors_but_not_the_vocabularies() {
        let unlabelled = captions(&["一架飞机飞过天空", "一架飞机飞过天空"]);
        let fitted = small()
            .check()
            .unwrap()
            .fit(&train_texts(), &unlabelled, &ProgressBar::hidden())
            .unwrap();
        assert!(fitted.word_tfidf().unwrap().column("飞机").is_none());
        assert!(fitted.char_tfidf().unwrap().column("飞").is_none());
        // The word vectors did see the unlabelled captions (min_count 1).
        assert!(fitted.word_vectors().unwrap().contains("飞机"));
        let f = fitted.transform(&captions(&["飞机"]), &ProgressBar::hidden());
        assert_eq!(f.word_tfidf.nnz() + f.char_tfidf.nnz(), 0);
    }

    #[test]
    fn progress_counts_captions() {
        let pb = ProgressBar::hidden();
        let fitted = small()
            .check()
            .unwrap()
            .fit(&train_texts(), &captions(&["一只猫"]), &pb)
            .unwrap();
        assert_eq!(pb.position(), 91);
        let pb = ProgressBar::hidden();
        fitted.transform(&captions(&["a", "b", "c"]), &pb);
        assert_eq!(pb.position(), 3);
    }
}
