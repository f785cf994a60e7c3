//! (placeholder) The text stage of the pipeline; filled in by its issue.

/// Errors of the text area.
#[derive(Debug, thiserror::Error)]
pub enum TextError {
    #[error("{0}")]
    Invalid(String),
}
