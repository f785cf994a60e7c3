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
    /// The pipeline file does not parse, or one of its values is refused by a stage.
    #[error("{}: {message}", path.display())]
    BadConfig {
        /// The pipeline file (for an extra dataset with no images in its parts, its folder).
        path: PathBuf,
        /// What is wrong, with the section and key where there is one.
        message: String,
    },
    /// A `--set section.key=value` override is malformed or sets a key that cannot be set.
    #[error("--set {assignment:?}: {message}")]
    BadOverride {
        /// The assignment, as given.
        assignment: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file in a work folder (or one given to `inspect`) is malformed or not what was expected.
    #[error("{}: {message}", path.display())]
    BadArtifact {
        /// The file at fault.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// A stage's manifest has a format version newer than this build reads.
    #[error(
        "{} has format version {found}, newer than this crossmodal's {supported}: upgrade crossmodal or run `crossmodal clean`",
        path.display()
    )]
    NewerFormat {
        /// The manifest file.
        path: PathBuf,
        /// Its format version.
        found: u64,
        /// The newest format version this build reads.
        supported: u32,
    },
    /// A stage was asked for by a name the pipeline has no stage of.
    #[error("unknown stage {name:?}; stages are: {known}")]
    UnknownStage {
        /// The name asked for.
        name: String,
        /// The pipeline's stage names, comma-separated.
        known: String,
    },
    /// The pipeline file has a section that no stage (and no tool such as `comparison`) reads.
    #[error("unknown section [{name}] in {}; sections are: {known}", path.display())]
    UnknownSection {
        /// The section's name.
        name: String,
        /// The pipeline file.
        path: PathBuf,
        /// The sections that are read, sorted and comma-separated.
        known: String,
    },
    /// A stage needs an upstream stage's output, and that stage's folder has no manifest this
    /// build reads (it has not run, or ran with an older format).
    #[error(
        "stage `{stage}` needs `{upstream}`, which has not run: run `crossmodal {upstream}` first"
    )]
    MissingUpstream {
        /// The stage that needs it.
        stage: String,
        /// The stage it needs.
        upstream: String,
    },
    /// Inputs that do not fit together (named in the message).
    #[error("{0}")]
    Invalid(String),
    /// Reading, writing or moving a file or folder failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
}
