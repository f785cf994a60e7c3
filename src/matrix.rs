//! Feature matrices that are either dense or sparse.
//!
//! Image features are dense (`ndarray::Array2<f32>`, one row per image); text TF-IDF blocks are
//! sparse ([`CsrMatrix`]). Fusion and ranking accept either through [`FeatureMatrix`], so sparse
//! text never has to be densified whole.

use ndarray::Array2;

use crate::sparse::CsrMatrix;

/// One row per item, either dense or sparse.
#[derive(Debug, Clone)]
pub enum FeatureMatrix {
    Dense(Array2<f32>),
    Sparse(CsrMatrix),
}

impl FeatureMatrix {
    pub fn n_rows(&self) -> usize {
        match self {
            FeatureMatrix::Dense(m) => m.nrows(),
            FeatureMatrix::Sparse(m) => m.n_rows(),
        }
    }

    pub fn n_cols(&self) -> usize {
        match self {
            FeatureMatrix::Dense(m) => m.ncols(),
            FeatureMatrix::Sparse(m) => m.n_cols(),
        }
    }
}

impl From<Array2<f32>> for FeatureMatrix {
    fn from(m: Array2<f32>) -> Self {
        FeatureMatrix::Dense(m)
    }
}

impl From<CsrMatrix> for FeatureMatrix {
    fn from(m: CsrMatrix) -> Self {
        FeatureMatrix::Sparse(m)
    }
}
