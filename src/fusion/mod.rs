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
    /// A parameter is out of its range, or does not fit the data or the other parameters.
    #[error("{name} must be {expected}, got {value}")]
    InvalidParam {
        /// The parameter at fault, e.g. `ridge_x` (for block widths, the view's name).
        name: &'static str,
        /// The value given, as text (with the context that makes it wrong, where there is one).
        value: String,
        /// What the value must be, e.g. `in [-8, 8]`.
        expected: &'static str,
    },
    /// The two views of a paired fit have different numbers of rows (or of pair rows).
    #[error(
        "the two views must have the same number of rows (paired samples), got x: {x} and y: {y}"
    )]
    RowMismatch {
        /// Rows of view x.
        x: usize,
        /// Rows of view y.
        y: usize,
    },
    /// Too few rows (pairs, or distinct anchor images for the profiles) to fit.
    #[error("need at least {needed} rows to fit, got {rows}")]
    TooFewRows {
        /// Rows given.
        rows: usize,
        /// The fewest the fit accepts (3 for the CCA and the kernel maps, 2 for PCA and profiles).
        needed: usize,
    },
    /// A view holds a NaN or an infinite value.
    #[error("view {view} has a non-finite value at row {row}, column {col}")]
    NonFinite {
        /// The view: `"x"` or `"y"`, or `"input"` for a PCA of one view.
        view: &'static str,
        /// 0-based row of the value.
        row: usize,
        /// 0-based column of the value.
        col: usize,
    },
    /// A view to transform has a different number of columns from the one the model was fitted on.
    #[error("view {view} has {got} columns but the model was fitted on {expected}")]
    DimMismatch {
        /// The view: `"x"` or `"y"`, or `"input"` for a PCA of one view.
        view: &'static str,
        /// Columns the model was fitted on.
        expected: usize,
        /// Columns given.
        got: usize,
    },
    /// A training pair names a row past the end of its view.
    #[error("view {view}: pair row {row} is out of range (the view has {rows} rows)")]
    RowOutOfRange {
        /// The view, `"x"` or `"y"`.
        view: &'static str,
        /// The row named (0-based).
        row: usize,
        /// Rows the view has.
        rows: usize,
    },
    /// Whitening a view left no positive eigenvalue.
    #[error("view {view} has no variance left after whitening (constant or empty features)")]
    NoVariance {
        /// The view, `"x"` or `"y"`.
        view: &'static str,
    },
    /// The landmarks of a kernel map (or of one of its blocks) are all the same row, so the
    /// Gaussian's width, set from their distances, cannot be set.
    #[error(
        "view {view}: the landmarks of its kernel map are all the same row (constant features), \
         so the kernel's width cannot be set"
    )]
    EqualLandmarks {
        /// The view, `"x"` or `"y"`.
        view: &'static str,
    },
    /// A CCA model's arrays or kernel maps (given, or read from a saved folder) disagree in
    /// shape or hold bad values, or a saved folder lacks `cca.json` or has another format; the
    /// text names the array or file.
    #[error("bad CCA model: {0}")]
    BadArrays(String),
    /// An eigendecomposition, SVD or QR failed; the text names the step and the solver's error.
    #[error("linear algebra failed: {0}")]
    Linalg(String),
    /// An axis of the tuning grid that needs a value is empty; holds the axis's name.
    #[error("tuning grid is empty or has an empty axis: {0}")]
    EmptyGrid(&'static str),
    /// The tuner's view or score hook failed (its message), or folds to average are missing
    /// or ran different grids.
    #[error("scoring a grid point failed: {0}")]
    Score(String),
    /// Reading, writing or parsing a file of a saved model failed.
    #[error(transparent)]
    Io(#[from] crate::error::IoError),
    /// Reading a column block of a view from disk failed.
    #[error("reading columns {start}..{end} of a view")]
    Read {
        /// First column of the block.
        start: usize,
        /// One past the block's last column.
        end: usize,
        /// The reader's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}
