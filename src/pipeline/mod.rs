//! Make-like stages: each writes its matrices to disk and skips itself when up to date.
//!
//! - [`config`]: the declarative pipeline files (`pipeline/*.toml`);
//! - [`artifacts`]: `.npy` / scipy-CSR `.npz` / ids files, written atomically;
//! - [`manifest`]: what each stage folder holds and the fingerprints that decide freshness;
//! - [`engine`]: the [`Stage`] trait, the staging folders and the make logic;
//! - [`stages`]: the stages themselves, in the order data flows through them.

pub mod artifacts;
pub mod compare;
pub mod config;
pub mod engine;
pub mod inspect;
pub mod manifest;
pub mod search;
pub mod stages;

use std::path::PathBuf;

pub use config::PipelineConfig;
pub use engine::{Context, Freshness, Pipeline, Stage, StageReport, StageStatus, StageWriter};
pub use manifest::Manifest;

/// Errors of the stage engine and of artifacts on disk.
#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error("{}: {message}", path.display())]
    BadConfig { path: PathBuf, message: String },
    #[error("--set {assignment:?}: {message}")]
    BadOverride { assignment: String, message: String },
    #[error("{}: {message}", path.display())]
    BadArtifact { path: PathBuf, message: String },
    #[error(
        "{} has format version {found}, newer than this crossmodal's {supported}: upgrade crossmodal or run `crossmodal clean`",
        path.display()
    )]
    NewerFormat {
        path: PathBuf,
        found: u64,
        supported: u32,
    },
    #[error("unknown stage {name:?}; stages are: {known}")]
    UnknownStage { name: String, known: String },
    #[error("unknown section [{name}] in {}; sections are: {known}", path.display())]
    UnknownSection {
        name: String,
        path: PathBuf,
        known: String,
    },
    #[error(
        "stage `{stage}` needs `{upstream}`, which has not run: run `crossmodal {upstream}` first"
    )]
    MissingUpstream { stage: String, upstream: String },
    /// Inputs that do not fit together (named in the message).
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
}
