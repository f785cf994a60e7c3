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
        name: &'static str,
        value: String,
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
        block: &'static str,
        min_df: usize,
        max_df: f32,
        n_docs: usize,
    },
    /// Every enabled block was switched off or weighted 0.
    #[error("no text feature block is enabled (word, char and sentence are all off)")]
    NoBlock,
    /// A jieba user dictionary could not be parsed.
    #[error("user dictionary {}: {message}", path.display())]
    UserDict { path: PathBuf, message: String },
    /// A fastText `.vec` file (or a saved vocabulary file) is malformed.
    #[error("{}, line {line}: {message}", path.display())]
    BadFile {
        path: PathBuf,
        line: usize,
        message: String,
    },
    /// The subword model could not be trained, saved or loaded.
    #[error("fastText {action}: {source}")]
    FastText {
        action: &'static str,
        #[source]
        source: fasttext::FastTextError,
    },
    /// A saved model directory misses a file or does not match its parameters.
    #[error("saved text model {}: {message}", path.display())]
    BadModel { path: PathBuf, message: String },
    #[error(transparent)]
    Io(#[from] IoError),
}
