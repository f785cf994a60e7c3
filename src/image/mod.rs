//! The image side of crossmodal: CNN-free image features for image–text retrieval.
//!
//! Images are decoded by content ([`decode`]), described by dense RootSIFT and HOG patch
//! descriptors ([`dsift`], Lowe 2004; Arandjelović & Zisserman 2012; Dalal & Triggs 2005, computed
//! the way vlfeat's `dsift` does: Vedaldi & Fulkerson 2010), by HSV colour histograms and a
//! GIST-like Gabor energy descriptor ([`global`], Oliva & Torralba 2001), and optionally by dense
//! local colour statistics ([`colour`], Perronnin et al. 2010). Local descriptors are
//! quantised against vocabularies learnt on training images ([`vocabulary`]: k-means, PCA,
//! diagonal GMM) and encoded over a spatial pyramid ([`encode`]: bag of words, Lazebnik et al.
//! 2006; VLAD, Jégou et al. 2010; Fisher vectors, Perronnin et al. 2010), each block normalised
//! on its own (Hellinger/L2, optional additive χ² map of Vedaldi & Zisserman 2012).
//! [`features`] ties it together in linfa style:
//! [`ImageFeatureParams`] → `check()` → `fit()` → [`FittedImageFeatures`] → `transform()`.

pub mod colour;
pub mod decode;
pub mod dsift;
pub mod encode;
pub mod faces;
pub mod features;
pub mod geometry;
pub mod global;
pub mod vocabulary;

use std::path::PathBuf;

pub use decode::{DecodedImage, ImageFormat, decode_image, sniff_format};
pub use features::{
    Colour, FittedImageFeatures, Hog, ImageFeatureChunk, ImageFeatureParams,
    ImageFeatureValidParams, ImageFeatures, LocalParams, Orientation, Sift, SkippedImage,
};

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
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
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
