//! (placeholder) The image stage of the pipeline; filled in by its issue.

/// Errors of the image area.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("{0}")]
    Invalid(String),
}
