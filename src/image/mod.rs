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
    /// The image file does not exist.
    #[error("image file {} does not exist", path.display())]
    Missing {
        /// The image file, as given.
        path: PathBuf,
    },
    /// Reading the image file failed for a reason other than its absence.
    #[error("reading image file {}: {cause}", path.display())]
    Read {
        /// The image file, as given.
        path: PathBuf,
        /// The operating system's error.
        cause: std::io::Error,
    },
    /// The image file has 0 bytes.
    #[error("image file {} is empty (0 bytes)", path.display())]
    Empty {
        /// The image file, as given.
        path: PathBuf,
    },
    /// The file's first bytes match none of the formats of [`ImageFormat`].
    #[error("image file {} is not a supported image format (first bytes {magic})", path.display())]
    UnknownFormat {
        /// The image file, as given.
        path: PathBuf,
        /// Its first bytes (at most 8) in hexadecimal, separated by spaces.
        magic: String,
    },
    /// A JPEG has no start-of-scan or end-of-image marker, or a PNG ends before its IEND chunk.
    #[error("image file {} ({format:?}) is truncated: {reason}", path.display())]
    Truncated {
        /// The image file, as given.
        path: PathBuf,
        /// The format sniffed from its first bytes.
        format: ImageFormat,
        /// What is missing or cut short.
        reason: String,
    },
    /// The format was recognised but the pixels could not be decoded or resized (a garbled PNG
    /// chunk, a JPEG without its size, a decoder error or an empty result).
    #[error("image file {} ({format:?}) cannot be decoded: {reason}", path.display())]
    Undecodable {
        /// The image file, as given.
        path: PathBuf,
        /// The format sniffed from its first bytes.
        format: ImageFormat,
        /// The decoder's or the check's message.
        reason: String,
    },
    /// The decoded image's shorter side, after shrinking to `max_side`, is under 8 pixels.
    #[error(
        "image file {} is too small to describe: {width}x{height} once shrunk to max_side \
         (a side under 8 pixels)",
        path.display()
    )]
    TooSmall {
        /// The image file, as given.
        path: PathBuf,
        /// Width in pixels after decoding and shrinking.
        width: u32,
        /// Height in pixels after decoding and shrinking.
        height: u32,
    },
    /// An OpenCV call returned an error.
    #[error("OpenCV failed while {action}: {reason}")]
    OpenCv {
        /// What was being done, e.g. `converting to grey`.
        action: &'static str,
        /// OpenCV's error message.
        reason: String,
    },
    /// A feature parameter is out of range, or the face cascade is missing or unreadable.
    #[error("invalid image feature parameter {name}: {reason}")]
    InvalidParam {
        /// The parameter or group of parameters, e.g. `max_side`, `sift` or `faces.cascade`.
        name: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// A fitting or describing step failed: no usable training image, too few descriptors for
    /// k-means, PCA, or an array of the wrong shape or type.
    #[error("cannot fit {what}: {reason}")]
    Fit {
        /// The step, e.g. `image vocabularies` or `k-means with k = 512`.
        what: String,
        /// Why it failed.
        reason: String,
    },
    /// An array given to [`FittedImageFeatures::from_arrays`] is missing, not expected, of the
    /// wrong shape, not finite, or (for GMM variances) not positive.
    #[error("fitted image model array {name}: {reason}")]
    ModelArray {
        /// Name of the array, e.g. `sift.bow.centroids`.
        name: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Reading or writing a file failed.
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
