//! (placeholder) The retrieval stage of the pipeline; filled in by its issue.

/// Errors of the retrieval area.
#[derive(Debug, thiserror::Error)]
pub enum RetrievalError {
    #[error("{0}")]
    Invalid(String),
}
