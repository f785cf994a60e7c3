//! The stages of the pipeline, in the order the data flows through them.
//!
//! `split` reads the dataset and fixes who is train, validation and test; the feature stages,
//! `fit`, `embed`, `rank` and `evaluate` follow. Each is a [`Stage`].

pub mod evaluate;
pub mod features;
pub mod fusion;
pub mod neural;
pub mod profiles;
pub mod split;
pub mod submit;
pub mod tune;

use super::Stage;

/// Every stage, in data-flow order.
pub fn all() -> Vec<Box<dyn Stage>> {
    vec![
        Box::new(split::SplitStage),
        Box::new(features::ImageFeaturesStage),
        Box::new(features::TextFeaturesStage),
        Box::new(tune::TuneStage),
        Box::new(fusion::FitStage),
        Box::new(fusion::EmbedStage),
        Box::new(evaluate::RankStage),
        Box::new(evaluate::EvaluateStage),
        Box::new(submit::SubmitStage),
        Box::new(neural::DualEncoderStage),
        Box::new(neural::MlpFusionStage),
        Box::new(profiles::ProfilesStage),
    ]
}
