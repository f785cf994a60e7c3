//! Fusion of the image and text views by regularized linear CCA.
//!
//! Canonical correlation analysis (Hotelling 1936) finds paired projections of two views whose
//! projected coordinates are maximally correlated; retrieval then ranks by cosine in the shared
//! space (Hardoon, Szedmak and Shawe-Taylor 2004; Gong, Ke, Isard and Lazebnik, "A multi-view
//! embedding space for modeling internet images, tags, and their semantics", IJCV 2014, whose
//! eigenvalue weighting of the projected dimensions is implemented here). [`cca`] is the closed
//! form, [`pca`] the per-view pre-reduction (exact or randomized, Halko et al. 2011) that keeps
//! high-dimensional and sparse views tractable, [`kernel_map`] an optional Gaussian-kernel map of a
//! view before the CCA (Nyström landmarks; kernel CCA as Hodosh et al. 2013 used it, approximated),
//! and [`tune`] a grid search on a validation split.

pub mod cca;
pub mod kernel_map;
pub(crate) mod ops;
pub mod pca;
pub mod profiles;
pub mod saved;
pub mod tune;

pub use cca::{CcaArrays, CcaParams, CcaValidParams, FittedCca, MappedPairs};
pub use kernel_map::{BlockWeighting, FittedKernelMap, GaussianMap, KernelMapParams};
pub use pca::{FittedPca, PcaMethod, PcaParams, PcaValidParams};
pub use profiles::{FittedProfiles, ProfileParams};

use std::borrow::Cow;

use ndarray::{Axis, s};

use crate::matrix::FeatureMatrix;

/// A view that hands over its columns a block at a time, to the kernel maps, which work on one
/// block at a time (`[fit.kernel_x] per_block`). A matrix in memory is one; the `fit` stage
/// passes a reader of the image features on disk, so that the CCA never holds the whole image
/// view: at the contest's 50,000 images it is 10 GB, and its widest block, a Fisher vector,
/// 4 GB.
pub trait ColumnBlocks: Sync {
    /// Rows of the view.
    fn n_rows(&self) -> usize;
    /// Columns of the view.
    fn n_cols(&self) -> usize;
    /// Columns `start..start + width` of the rows `rows`, in that order (repeats included).
    /// The caller keeps the rows below [`Self::n_rows`] and the columns within
    /// [`Self::n_cols`].
    fn block(
        &self,
        rows: &[usize],
        start: usize,
        width: usize,
    ) -> Result<Cow<'_, FeatureMatrix>, FusionError>;

    /// A column block of the rows asked for larger than this many bytes (as `f32`) is not read
    /// whole: the kernel map reads it a block of rows at a time for each product of its PCA
    /// (several passes over the block, a few MiB held), see `ops::StreamedCentred`. `None`, the
    /// default: every block is read whole (a matrix in memory has nothing to save).
    fn stream_above_bytes(&self) -> Option<usize> {
        None
    }

    /// The whole view.
    fn whole(&self) -> Result<Cow<'_, FeatureMatrix>, FusionError> {
        let rows: Vec<usize> = (0..self.n_rows()).collect();
        self.block(&rows, 0, self.n_cols())
    }
}

impl ColumnBlocks for FeatureMatrix {
    fn n_rows(&self) -> usize {
        FeatureMatrix::n_rows(self)
    }

    fn n_cols(&self) -> usize {
        FeatureMatrix::n_cols(self)
    }

    /// Borrowed when that is every row in order and every column, else a copy of the block
    /// alone.
    fn block(
        &self,
        rows: &[usize],
        start: usize,
        width: usize,
    ) -> Result<Cow<'_, FeatureMatrix>, FusionError> {
        let every_row =
            rows.len() == self.n_rows() && rows.iter().enumerate().all(|(i, &r)| i == r);
        Ok(match (every_row, self) {
            (true, _) if start == 0 && width == self.n_cols() => Cow::Borrowed(self),
            (true, _) => Cow::Owned(self.column_range(start, width)),
            (false, FeatureMatrix::Dense(m)) => Cow::Owned(FeatureMatrix::Dense(
                m.slice(s![.., start..start + width]).select(Axis(0), rows),
            )),
            (false, FeatureMatrix::Sparse(m)) => Cow::Owned(FeatureMatrix::Sparse(
                m.select_rows(rows).column_range(start, width),
            )),
        })
    }
}

/// Errors of the fusion area.
#[derive(Debug, thiserror::Error)]
pub enum FusionError {
    #[error("{name} must be {expected}, got {value}")]
    InvalidParam {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error(
        "the two views must have the same number of rows (paired samples), got x: {x} and y: {y}"
    )]
    RowMismatch { x: usize, y: usize },
    #[error("need at least {needed} rows to fit, got {rows}")]
    TooFewRows { rows: usize, needed: usize },
    #[error("view {view} has a non-finite value at row {row}, column {col}")]
    NonFinite {
        view: &'static str,
        row: usize,
        col: usize,
    },
    #[error("view {view} has {got} columns but the model was fitted on {expected}")]
    DimMismatch {
        view: &'static str,
        expected: usize,
        got: usize,
    },
    #[error("view {view}: pair row {row} is out of range (the view has {rows} rows)")]
    RowOutOfRange {
        view: &'static str,
        row: usize,
        rows: usize,
    },
    #[error("view {view} has no variance left after whitening (constant or empty features)")]
    NoVariance { view: &'static str },
    #[error("inconsistent CCA arrays: {0}")]
    BadArrays(String),
    #[error("linear algebra failed: {0}")]
    Linalg(String),
    #[error("tuning grid is empty or has an empty axis: {0}")]
    EmptyGrid(&'static str),
    #[error("scoring a grid point failed: {0}")]
    Score(String),
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    #[error("reading columns {start}..{end} of a view")]
    Read {
        start: usize,
        end: usize,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
