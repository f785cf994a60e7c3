//! The text side: Chinese captions → sparse TF-IDF blocks and dense sentence vectors.
//!
//! Captions are normalised ([`normalize`](mod@normalize): NFKC, half-width, lower-case Latin, `<人名>` kept as
//! one token, mojibake dropped), segmented with jieba ([`segment`]), and turned into
//! * TF-IDF of words and of character n-grams ([`tfidf`], Salton & Buckley 1988, with the
//!   scikit-learn conventions for smoothing and normalisation), and
//! * fastText-style subword skip-gram vectors ([`subword`], Mikolov et al. 2013, Bojanowski et
//!   al. 2017) pooled into sentence vectors with SIF weights and first-component removal
//!   (Arora, Liang & Ma, ICLR 2017).
//!
//! [`features`] ties them together in the linfa style: [`TextFeatureParams`] → `check()` →
//! `fit()` → [`FittedTextFeatures`] → `transform()` → [`TextFeatures`].

pub mod features;
pub mod normalize;
pub mod segment;
pub mod subword;
pub mod tfidf;

#[cfg(test)]
mod real_data_tests;

pub use features::{FittedTextFeatures, TextFeatureParams, TextFeatureValidParams, TextFeatures};
pub use normalize::{NormalizeParams, normalize};
pub use segment::{SegmentParams, Segmenter};
pub use subword::{FittedSentenceEncoder, SubwordParams, WordVectors};
pub use tfidf::{FittedTfidf, TfidfParams};

use std::path::PathBuf;

use crate::error::IoError;

/// Errors of the text area. Messages name the offending parameter, value, file or line.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    /// A parameter is out of its range.
    #[error("text parameter `{name}` = {value} is invalid: {reason}")]
    InvalidParam {
        /// The parameter, e.g. `subword.dim` or `min_df`.
        name: &'static str,
        /// Its value, as text.
        value: String,
        /// The range or rule it breaks.
        reason: &'static str,
    },
    /// `fit` was given no training caption.
    #[error("no training captions: the vocabularies and IDF are fitted on at least one")]
    NoTrainingTexts,
    /// A TF-IDF vocabulary came out empty.
    #[error(
        "the {block} vocabulary is empty after filtering (min_df = {min_df}, max_df = {max_df}, \
         {n_docs} training documents)"
    )]
    EmptyVocabulary {
        /// The TF-IDF block: `word` or `char`.
        block: &'static str,
        /// The block's `min_df` (documents).
        min_df: usize,
        /// The block's `max_df` (fraction of the documents).
        max_df: f32,
        /// Number of training documents.
        n_docs: usize,
    },
    /// Every enabled block was switched off or weighted 0.
    #[error("no text feature block is enabled (word, char and sentence are all off)")]
    NoBlock,
    /// A jieba user dictionary could not be parsed.
    #[error("user dictionary {}: {message}", path.display())]
    UserDict {
        /// The user dictionary file.
        path: PathBuf,
        /// jieba's error message.
        message: String,
    },
    /// A fastText `.vec` file of word vectors is malformed.
    #[error("{}, line {line}: {message}", path.display())]
    BadFile {
        /// The file, as given.
        path: PathBuf,
        /// 1-based line of the file (the header is line 1).
        line: usize,
        /// What is wrong.
        message: String,
    },
    /// The subword model could not be trained, saved or loaded.
    #[error("fastText {action}: {cause}")]
    FastText {
        /// What was being done: `training`, `saving` or `loading`.
        action: &'static str,
        /// The `fasttext` crate's error.
        cause: fasttext::FastTextError,
    },
    /// A saved model's `params.json` does not parse (or could not be written), or its files
    /// disagree (a vocabulary and its vectors of different lengths). A missing file is
    /// [`TextError::Io`].
    #[error("saved text model {}: {message}", path.display())]
    BadModel {
        /// The model folder (while saving, the staging folder it is written to).
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Reading, writing, creating or renaming a file or folder failed (a malformed `.npy` file
    /// counts as a failed read).
    #[error(transparent)]
    Io(#[from] IoError),
}
