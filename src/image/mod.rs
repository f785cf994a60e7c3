//! TEMP
#![allow(dead_code)]
pub mod decode;
use decode::ImageFormat;
use std::path::PathBuf;
/// Errors of the image area. Decoding errors name the file; parameter errors the field.
#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("image file {} does not exist", path.display())]
    Missing { path: PathBuf },
    #[error("reading image file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("image file {} is empty (0 bytes)", path.display())]
    Empty { path: PathBuf },
    #[error("image file {} is not a supported image format (first bytes {magic})", path.display())]
    UnknownFormat { path: PathBuf, magic: String },
    #[error("image file {} ({format:?}) is truncated: {reason}", path.display())]
    Truncated {
        path: PathBuf,
        format: ImageFormat,
        reason: String,
    },
    #[error("image file {} ({format:?}) cannot be decoded: {reason}", path.display())]
    Undecodable {
        path: PathBuf,
        format: ImageFormat,
        reason: String,
    },
    #[error("image file {} ({width}x{height}) is too small to describe", path.display())]
    TooSmall {
        path: PathBuf,
        width: u32,
        height: u32,
    },
    #[error("OpenCV failed while {action}: {reason}")]
    OpenCv {
        action: &'static str,
        reason: String,
    },
    #[error("invalid image feature parameter {name}: {reason}")]
    InvalidParam { name: &'static str, reason: String },
    #[error("cannot fit {what}: {reason}")]
    Fit { what: String, reason: String },
    #[error("fitted image model array {name}: {reason}")]
    ModelArray { name: String, reason: String },
}
impl ImageError {
    pub(crate) fn opencv(action: &'static str, e: opencv::Error) -> Self {
        ImageError::OpenCv {
            action,
            reason: e.to_string(),
        }
    }

    pub(crate) fn param(name: &'static str, reason: impl Into<String>) -> Self {
        ImageError::InvalidParam {
            name,
            reason: reason.into(),
        }
    }
}
