//! (placeholder) The fusion stage of the pipeline; filled in by its issue.

/// Errors of the fusion area.
#[derive(Debug, thiserror::Error)]
pub enum FusionError {
    #[error("{0}")]
    Invalid(String),
}
