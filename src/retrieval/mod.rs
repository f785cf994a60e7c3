//! Retrieval in the shared space: ranking, metrics, reports and contest result files.
//!
//! [`rank`] is exact blocked cosine top-K (with optional CSLS hubness correction, Conneau et al.
//! 2018), [`evaluate`](mod@evaluate) the recall@K / median-rank protocol of Hodosh et al.
//! (2013) in both directions, [`report`] writes `report.json`, `report.md`, a recall curve PNG
//! and an HTML page of examples, [`submit`] the contest's `result1.csv` / `result2.csv`, and
//! [`score`] scores such files against gold pairs.

use std::path::PathBuf;

pub mod evaluate;
pub mod rank;
pub mod report;
pub mod score;
pub mod submit;

pub use evaluate::{DirectionMetrics, EvalOptions, Evaluation, Summary, evaluate};
pub use rank::{Csls, Hubness, RankParams, TopK, l2_normalize_rows, top_k};

/// Errors of the retrieval area.
#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    #[error("queries have {queries} columns but the gallery has {gallery}")]
    DimMismatch { queries: usize, gallery: usize },
    #[error("{what} row {row} has a non-finite value at column {col}")]
    NonFinite {
        what: &'static str,
        row: usize,
        col: usize,
    },
    #[error("k must be in [1, gallery size = {gallery}], got {k}")]
    BadK { k: usize, gallery: usize },
    #[error(
        "CSLS penalties have {got_queries} query and {got_gallery} gallery entries, expected {queries} and {gallery}"
    )]
    CslsShape {
        queries: usize,
        gallery: usize,
        got_queries: usize,
        got_gallery: usize,
    },
    #[error("CSLS needs reference sets (query side and gallery side), none given")]
    CslsNeedsReference,
    #[error("inverted softmax temperature must be positive and finite, got {0}")]
    BadTemperature(f32),
    #[error(
        "[rank] csls_k = {csls_k} and inverted_softmax_temperature = {temperature}: choose one hubness correction"
    )]
    TwoHubnessCorrections { csls_k: usize, temperature: f32 },
    #[error("{what} has {got} entries, expected {expected}")]
    LengthMismatch {
        what: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("query {query} has no relevant item")]
    NoRelevant { query: usize },
    #[error("query {query} lists gallery index {index}, but the gallery has {gallery} items")]
    IndexOutOfRange {
        query: usize,
        index: usize,
        gallery: usize,
    },
    #[error("no folds to summarise")]
    NoFolds,
    #[error("result files need {needed} results per query, got top-{got}")]
    TooFewResults { needed: usize, got: usize },
    #[error("{}: line {line}: {message}", path.display())]
    BadFile {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error(
        "none of the queries of {} is in {} (results ask about e.g. {result_example}, the gold file about e.g. {gold_example}): is it the gold file of the other task?",
        results.display(),
        gold.display()
    )]
    NothingToScore {
        results: PathBuf,
        gold: PathBuf,
        result_example: String,
        gold_example: String,
    },
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    #[error("drawing the recall curve: {0}")]
    Image(String),
}
