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
    #[error("{name} must be {expected}, got {value}")]
    InvalidParam {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{what}: {got} training pairs, need at least {need}")]
    TooFewPairs {
        what: &'static str,
        got: usize,
        need: usize,
    },
    #[error("input has {got} columns, the model expects {expected}")]
    InputWidth { got: usize, expected: usize },
    #[error("model file {}: {message}", path.display())]
    Model { path: PathBuf, message: String },
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
}

pub use contrastive::{TrainLog, TrainParams};
pub use dual_encoder::{DualEncoderParams, FittedDualEncoder};
pub use mlp_fusion::{FittedMlpFusion, MlpFusionParams};
