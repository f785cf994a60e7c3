//! Feature matrices that are either dense or sparse.
//!
//! Image features are dense (`ndarray::Array2<f32>`, one row per image); text TF-IDF blocks are
//! sparse ([`CsrMatrix`]). Fusion and ranking accept either through [`FeatureMatrix`], so sparse
//! text never has to be densified whole.

use ndarray::{Array2, ArrayView2};

use crate::sparse::CsrMatrix;

/// One row per item, either dense or sparse.
#[derive(Debug, Clone)]
pub enum FeatureMatrix {
    /// Dense rows (image features, projections).
    Dense(Array2<f32>),
    /// Sparse rows in CSR form (text TF-IDF).
    Sparse(CsrMatrix),
}

impl FeatureMatrix {
    /// Number of rows (items).
    pub fn n_rows(&self) -> usize {
        match self {
            FeatureMatrix::Dense(m) => m.nrows(),
            FeatureMatrix::Sparse(m) => m.n_rows(),
        }
    }

    /// Number of columns (features).
    pub fn n_cols(&self) -> usize {
        match self {
            FeatureMatrix::Dense(m) => m.ncols(),
            FeatureMatrix::Sparse(m) => m.n_cols(),
        }
    }

    /// Columns `start..start + width` of every row, as a copy (`start + width` at most
    /// [`Self::n_cols`]).
    pub fn column_range(&self, start: usize, width: usize) -> FeatureMatrix {
        match self {
            FeatureMatrix::Dense(m) => {
                FeatureMatrix::Dense(m.slice(ndarray::s![.., start..start + width]).to_owned())
            }
            FeatureMatrix::Sparse(m) => FeatureMatrix::Sparse(m.column_range(start, width)),
        }
    }

    /// Row and column of the first NaN or infinity in row order (for a sparse matrix, among
    /// the stored values), or `None` when every value is finite.
    pub fn first_non_finite(&self) -> Option<(usize, usize)> {
        match self {
            FeatureMatrix::Dense(m) => first_non_finite(&m.view()),
            FeatureMatrix::Sparse(m) => m.first_non_finite(),
        }
    }
}

/// Row and column of the first NaN or infinity of `m` in row order, or `None` when every value
/// is finite. The fusion and ranking stages use it to name the offending entry in their errors.
pub fn first_non_finite(m: &ArrayView2<f32>) -> Option<(usize, usize)> {
    m.rows()
        .into_iter()
        .enumerate()
        .find_map(|(i, row)| Some((i, row.iter().position(|v| !v.is_finite())?)))
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

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn first_non_finite_names_the_first_entry_in_row_order() {
        let dense = array![
            [1.0, 2.0, 3.0],
            [4.0, 5.0, f32::INFINITY],
            [f32::NAN, 0.0, 0.0]
        ];
        assert_eq!(first_non_finite(&dense.view()), Some((1, 2)));
        assert_eq!(first_non_finite(&array![[0.0f32, 1.0]].view()), None);
        // Sparse: the column is the stored entry's column, not its position in the row.
        let sparse = CsrMatrix::from_rows(vec![vec![(4, 1.0)], vec![(1, 2.0), (3, f32::NAN)]], 5);
        assert_eq!(FeatureMatrix::from(sparse).first_non_finite(), Some((1, 3)));
        assert_eq!(FeatureMatrix::from(dense).first_non_finite(), Some((1, 2)));
    }
}
