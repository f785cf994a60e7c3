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
    /// Two matrices to be compared row by row (queries and gallery, or a bank or reference set
    /// and the rows it is compared with) differ in width.
    #[error("{first} rows have {first_cols} columns but {second} rows have {second_cols}")]
    DimMismatch {
        /// The first matrix: `"query"`, `"query bank"`, or the rows a CSLS penalty is for.
        first: &'static str,
        /// Its columns.
        first_cols: usize,
        /// The second matrix: `"gallery"`, or a CSLS reference set.
        second: &'static str,
        /// Its columns.
        second_cols: usize,
    },
    /// A matrix to rank or to rank against holds a NaN or an infinite value.
    #[error("{what} row {row} has a non-finite value at column {col}")]
    NonFinite {
        /// The matrix, named as in [`RetrievalError::DimMismatch`].
        what: &'static str,
        /// 0-based row of the value.
        row: usize,
        /// 0-based column of the value.
        col: usize,
    },
    /// The number of results asked for per query is 0 or larger than the gallery.
    #[error("k must be in [1, gallery size = {gallery}], got {k}")]
    BadK {
        /// The `k` asked for.
        k: usize,
        /// Number of gallery items.
        gallery: usize,
    },
    /// Hubness penalties handed to a ranking do not have one entry per query and gallery item.
    #[error(
        "CSLS penalties have {got_queries} query and {got_gallery} gallery entries, expected {queries} and {gallery}"
    )]
    CslsShape {
        /// Number of queries.
        queries: usize,
        /// Number of gallery items.
        gallery: usize,
        /// Entries of the query penalty.
        got_queries: usize,
        /// Entries of the gallery penalty.
        got_gallery: usize,
    },
    /// CSLS's neighbourhood size is 0 or more than a reference set's rows.
    #[error(
        "CSLS's k must be in [1, {rows}] (the rows of the {reference}, e.g. the training \
         items), got {k}"
    )]
    CslsK {
        /// The `k` asked for (`csls_k`).
        k: usize,
        /// The reference set: `gallery-side reference` or `query-side reference`.
        reference: &'static str,
        /// Its rows.
        rows: usize,
    },
    /// CSLS was asked for without the reference sets its penalties are taken from.
    #[error("CSLS needs reference sets (query side and gallery side), none given")]
    CslsNeedsReference,
    /// The inverted softmax's temperature (held) is zero, negative, NaN or infinite.
    #[error("inverted softmax temperature must be positive and finite, got {0}")]
    BadTemperature(f32),
    /// The ranking options set both `csls_k` and `inverted_softmax_temperature`.
    #[error(
        "[rank] csls_k = {csls_k} and inverted_softmax_temperature = {temperature}: choose one hubness correction"
    )]
    TwoHubnessCorrections {
        /// The `csls_k` configured.
        csls_k: usize,
        /// The `inverted_softmax_temperature` configured.
        temperature: f32,
    },
    /// A list given beside the matrices or ids does not have one entry per row it goes with.
    #[error("{what} has {got} entries, expected {expected}")]
    LengthMismatch {
        /// The list, e.g. `text_image` or `query ids`.
        what: &'static str,
        /// Entries it should have.
        expected: usize,
        /// Entries it has.
        got: usize,
    },
    /// A query has no relevant gallery item (e.g. an image that no text belongs to).
    #[error("query {query} has no relevant item")]
    NoRelevant {
        /// 0-based index of the query.
        query: usize,
    },
    /// A relevance list, `text_image` or a top-K names an item past the end of the gallery.
    #[error("query {query} lists gallery index {index}, but the gallery has {gallery} items")]
    IndexOutOfRange {
        /// 0-based index of the query (or text) that names it.
        query: usize,
        /// The gallery index named.
        index: usize,
        /// Number of gallery items.
        gallery: usize,
    },
    /// [`Summary::from_folds`] was given no folds.
    #[error("no folds to summarise")]
    NoFolds,
    /// A top-K has fewer results per query than a result file holds.
    #[error("result files need {needed} results per query, got top-{got}")]
    TooFewResults {
        /// Results a result file needs per query ([`submit::RESULTS_PER_QUERY`]).
        needed: usize,
        /// Results per query in the top-K given.
        got: usize,
    },
    /// A result or gold CSV is malformed, or a result file cannot be written (e.g. a query id
    /// appears twice).
    #[error("{}: {}{message}", path.display(), at_line(*line))]
    BadFile {
        /// The CSV file.
        path: PathBuf,
        /// 1-based line of the offending record; 0 where no line applies.
        line: u64,
        /// What is wrong.
        message: String,
    },
    /// No gold query has a row in the result file (e.g. the gold file of the other task).
    #[error(
        "none of the queries of {} is in {} (results ask about e.g. {result_example}, the gold file about e.g. {gold_example}): is it the gold file of the other task?",
        results.display(),
        gold.display()
    )]
    NothingToScore {
        /// The result file.
        results: PathBuf,
        /// The gold file.
        gold: PathBuf,
        /// The result file's first query id, quoted, or `none` when it has no rows.
        result_example: String,
        /// The gold file's first query id, quoted.
        gold_example: String,
    },
    /// Reading or writing a file failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// Encoding the recall curve as PNG failed; holds the encoder's message.
    #[error("drawing the recall curve: {0}")]
    Image(String),
}

/// `line N: ` for [`RetrievalError::BadFile`]'s message, nothing for line 0 (a problem of the
/// whole file, such as a repeated query id or an empty gold file).
fn at_line(line: u64) -> String {
    if line == 0 {
        String::new()
    } else {
        format!("line {line}: ")
    }
}
