//! Neural baselines, trained here beside the classical pipeline so that the comparison is on
//! the same data, split and metric.
//!
//! Two models, both dual encoders trained with the symmetric InfoNCE loss of CLIP (Radford et
//! al. 2021; van den Oord et al. 2018, "Representation Learning with Contrastive Predictive
//! Coding") with a learnable temperature:
//! - [`dual_encoder`]: a small CNN over raw pixels (64 px by default) and an embedding bag over
//!   words and character bigrams followed by an MLP — what a neural model learns from the
//!   training pairs alone, without pretraining;
//! - [`mlp_fusion`]: MLP towers over our own classical feature matrices (the same PCA-reduced
//!   inputs CCA sees) — a learned non-linear fusion in place of the linear CCA.
//!
//! Both run on the CPU through candle (`candle-core`, `candle-nn`; see docs/comparison.md for
//! why candle and not burn). candle's CPU random generator cannot be seeded, so every weight
//! is initialised from our own seeded generator ([`contrastive::seeded_init`]) and batches are
//! drawn from it too: a run is reproducible for a fixed seed.

pub mod contrastive;
pub mod dual_encoder;
pub mod mlp_fusion;
pub mod pixels;
pub mod towers;
pub mod vocab;

use std::path::PathBuf;

/// Errors of the neural baselines.
#[derive(Debug, thiserror::Error)]
pub enum NeuralError {
    /// A hyper-parameter is out of its range, or the pixels were stored at another size than
    /// `stored_size`.
    #[error("{name} must be {expected}, got {value}")]
    InvalidParam {
        /// The parameter at fault, e.g. `batch_size`.
        name: &'static str,
        /// The value given, as text.
        value: String,
        /// What the value must be, e.g. `>= 2`.
        expected: &'static str,
    },
    /// Too few training pairs to fit, or (in `contrastive training`) too few distinct images
    /// with a caption to contrast.
    #[error("{what}: {got} {counted}, need at least {need}")]
    TooFewPairs {
        /// What was being trained: `dual encoder`, `MLP fusion` or `contrastive training`.
        what: &'static str,
        /// What `got` counts: `training pairs`, or `images with a caption`.
        counted: &'static str,
        /// How many there are.
        got: usize,
        /// The fewest accepted.
        need: usize,
    },
    /// A feature matrix to embed has a different number of columns from the one fitted on.
    #[error("input has {got} columns, the model expects {expected}")]
    InputWidth {
        /// Columns given.
        got: usize,
        /// Columns the model was fitted on.
        expected: usize,
    },
    /// A model file could not be read, parsed or written, or has an unsupported format.
    #[error("model file {}: {message}", path.display())]
    Model {
        /// The file at fault.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The dual encoder's word segmenter (jieba, its default dictionary) could not be built.
    #[error("building the word segmenter: {0}")]
    Segmenter(crate::text::TextError),
    /// The MLP fusion's PCA of a view failed to fit or to transform.
    #[error("PCA of a view: {0}")]
    Pca(crate::fusion::FusionError),
    /// Creating a model's folder, or moving it into place, failed while saving.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// A candle operation failed (building, training or running a model, or writing its
    /// `model.safetensors`).
    #[error("candle: {0}")]
    Candle(candle_core::Error),
}

// By hand rather than `#[from]`, which would also make candle's error the `source()`: its text
// is already in the message, and a chain printed with `{:#}` would say it twice.
impl From<candle_core::Error> for NeuralError {
    fn from(e: candle_core::Error) -> Self {
        NeuralError::Candle(e)
    }
}

pub use contrastive::{TrainLog, TrainParams};
pub use dual_encoder::{DualEncoderParams, FittedDualEncoder};
pub use mlp_fusion::{FittedMlpFusion, MlpFusionParams};
