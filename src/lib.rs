//! # crossmodal
//!
//! Image–text retrieval with classical, CNN-free features fused by canonical correlation
//! analysis (CCA), built for the 2024 Teddy Cup problem B and for Flickr8k-CN.
//!
//! The data flows through stages, each a folder of this crate:
//! [`data`] (datasets, CSV and image decoding, splits) → [`image`] and [`text`] (features) →
//! [`fusion`] (CCA) → [`retrieval`] (ranking, R@K, result files). [`pipeline`] runs them as
//! make-like stages whose matrices land on disk as `.npy` files numpy can load.
//!
//! Each stage is also a type of its own, in linfa's shape: `Params` → `check()` → `fit()` →
//! fitted model → `transform()`. `examples/library.rs` runs every stage that way, from a
//! dataset's files to R@K, without the pipeline engine. The fusion and ranking on matrices of
//! your own, two views of the same 300 items that share one hidden signal:
//!
//! ```
//! use crossmodal::fusion::CcaParams;
//! use crossmodal::matrix::FeatureMatrix;
//! use crossmodal::ndarray::Array2;
//! use crossmodal::retrieval::top_k;
//! use rand::{Rng, SeedableRng};
//!
//! let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
//! let signal: Vec<f32> = (0..300).map(|_| rng.gen_range(-1.0..1.0)).collect();
//! let mut noise = || rng.gen_range(-1.0f32..1.0);
//! let images = Array2::from_shape_fn((300, 16), |(i, j)| match j {
//!     0 => signal[i] + 0.1 * noise(),
//!     _ => noise(),
//! });
//! let texts = Array2::from_shape_fn((300, 8), |(i, j)| match j {
//!     3 => -2.0 * signal[i] + 0.1 * noise(),
//!     _ => noise(),
//! });
//! let (x, y) = (FeatureMatrix::Dense(images), FeatureMatrix::Dense(texts));
//!
//! let cca = CcaParams::new(4).ridge(0.01).check()?.fit(&x, &y)?;
//! assert!(cca.correlations()[0] > 0.9, "{:?}", cca.correlations());
//!
//! // Both views in the shared space (unit rows), then each caption's 5 best images.
//! let (image_space, text_space) = (cca.embed_x(&x)?, cca.embed_y(&y)?);
//! let top = top_k(&text_space.view(), &image_space.view(), 5, 256, None)?;
//! assert_eq!(top.indices.dim(), (300, 5));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

// Every public item has a doc comment: CI runs clippy with `-D warnings`, so a new public
// item without one fails it.
#![warn(missing_docs)]

pub mod blas;
pub mod data;
pub mod error;
pub mod fusion;
pub mod image;
pub mod matrix;
pub mod model_dir;
pub mod neural;
pub mod pipeline;
pub mod retrieval;
pub mod sparse;
pub mod text;

pub use error::{Error, Result};

// Crates of the public API, re-exported so that callers use the versions this crate was built
// with: arrays (`ndarray`, `.npy` files with `ndarray_npy`) and the progress bars that fitting
// and transforming take (`indicatif::ProgressBar::hidden()` for none).
pub use indicatif;
pub use ndarray;
pub use ndarray_npy;

// Links OpenBLAS (BLAS + LAPACK) for ndarray and ndarray-linalg.
use openblas_src as _;
