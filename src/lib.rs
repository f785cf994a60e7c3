//! # crossmodal
//!
//! Image–text retrieval with classical, CNN-free features fused by canonical correlation
//! analysis (CCA), built for the 2024 Teddy Cup problem B and for Flickr8k-CN.
//!
//! The data flows through stages, each a folder of this crate:
//! [`data`] (datasets, CSV and image decoding, splits) → [`image`] and [`text`] (features) →
//! [`fusion`] (CCA) → [`retrieval`] (ranking, R@K, result files). [`pipeline`] runs them as
//! make-like stages whose matrices land on disk as `.npy` files numpy can load.

pub mod blas;
pub mod data;
pub mod error;
pub mod fusion;
pub mod image;
pub mod matrix;
pub mod neural;
pub mod pipeline;
pub mod retrieval;
pub mod sparse;
pub mod text;

pub use error::{Error, Result};

// Links OpenBLAS (BLAS + LAPACK) for ndarray and ndarray-linalg.
use openblas_src as _;
