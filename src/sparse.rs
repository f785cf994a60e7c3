//! Compressed sparse row (CSR) matrices of `f32`.
//!
//! Text features (TF-IDF over words and character n-grams) are sparse: a caption touches a few
//! dozen of tens of thousands of columns, so they are never densified whole. The layout is the
//! one of scipy's `csr_matrix` (`indptr`, `indices`, `data`), which is also how the artifacts
//! store them on disk (see `pipeline::artifacts`), so numpy/scipy users read them directly.

use ndarray::{Array2, ArrayView2};

/// A sparse matrix in CSR layout. Column indices are sorted and unique within each row.
#[derive(Debug, Clone, PartialEq)]
pub struct CsrMatrix {
    n_rows: usize,
    n_cols: usize,
    indptr: Vec<i64>,
    indices: Vec<i32>,
    data: Vec<f32>,
}

/// Why a set of CSR arrays is not a valid matrix.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CsrError {
    /// `indptr` does not have one entry more than the number of rows.
    #[error("indptr must have n_rows + 1 = {expected} entries, got {got}")]
    IndptrLength {
        /// The number of rows plus one.
        expected: usize,
        /// The length of the `indptr` given.
        got: usize,
    },
    /// `indptr` does not start at 0, decreases somewhere, or does not end at the number of values.
    #[error(
        "indptr must start at 0, be non-decreasing and end at nnz = {nnz}; \
         indptr[{entry}] = {value} breaks it"
    )]
    IndptrOrder {
        /// The 0-based index in `indptr` of the first entry found wrong (row `entry - 1` ends
        /// there, for an entry past the first).
        entry: usize,
        /// That entry's value.
        value: i64,
        /// The number of stored values (the length of `data`).
        nnz: usize,
    },
    /// `indices` and `data` differ in length.
    #[error("indices and data must have the same length, got {indices} and {data}")]
    LengthMismatch {
        /// The length of `indices`.
        indices: usize,
        /// The length of `data`.
        data: usize,
    },
    /// A column index is negative, not below the number of columns, or not greater than the
    /// previous one in its row.
    #[error("column {col} in row {row} is out of range for {n_cols} columns or not sorted/unique")]
    BadColumn {
        /// The 0-based row holding it.
        row: usize,
        /// The column index found.
        col: i64,
        /// The number of columns of the matrix.
        n_cols: usize,
    },
}

impl CsrMatrix {
    /// Builds a matrix from raw CSR arrays, checking every invariant.
    pub fn new(
        n_rows: usize,
        n_cols: usize,
        indptr: Vec<i64>,
        indices: Vec<i32>,
        data: Vec<f32>,
    ) -> Result<Self, CsrError> {
        if indptr.len() != n_rows + 1 {
            return Err(CsrError::IndptrLength {
                expected: n_rows + 1,
                got: indptr.len(),
            });
        }
        if indices.len() != data.len() {
            return Err(CsrError::LengthMismatch {
                indices: indices.len(),
                data: data.len(),
            });
        }
        let nnz = data.len();
        let order_error = |entry: usize| CsrError::IndptrOrder {
            entry,
            value: indptr[entry],
            nnz,
        };
        if indptr[0] != 0 {
            return Err(order_error(0));
        }
        if indptr[n_rows] != nnz as i64 {
            return Err(order_error(n_rows));
        }
        for row in 0..n_rows {
            let (start, end) = (indptr[row], indptr[row + 1]);
            if end < start || end as usize > nnz {
                return Err(order_error(row + 1));
            }
            let mut previous = -1i64;
            for &col in &indices[start as usize..end as usize] {
                let col = col as i64;
                if col <= previous || col >= n_cols as i64 {
                    return Err(CsrError::BadColumn { row, col, n_cols });
                }
                previous = col;
            }
        }
        Ok(Self {
            n_rows,
            n_cols,
            indptr,
            indices,
            data,
        })
    }

    /// Builds a matrix from per-row `(column, value)` lists; entries are sorted and duplicate
    /// columns summed. Panics if a column is out of range (a programming error, not bad input).
    pub fn from_rows(rows: Vec<Vec<(u32, f32)>>, n_cols: usize) -> Self {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        indptr.push(0i64);
        for mut row in rows {
            row.sort_unstable_by_key(|&(c, _)| c);
            for (col, value) in row {
                assert!((col as usize) < n_cols, "column {col} >= {n_cols}");
                if indices.last() == Some(&(col as i32))
                    && data.len() as i64 > *indptr.last().unwrap()
                {
                    *data.last_mut().unwrap() += value;
                } else {
                    indices.push(col as i32);
                    data.push(value);
                }
            }
            indptr.push(data.len() as i64);
        }
        Self {
            n_rows: indptr.len() - 1,
            n_cols,
            indptr,
            indices,
            data,
        }
    }

    /// Number of rows.
    pub fn n_rows(&self) -> usize {
        self.n_rows
    }
    /// Number of columns.
    pub fn n_cols(&self) -> usize {
        self.n_cols
    }
    /// `(rows, columns)`.
    pub fn shape(&self) -> (usize, usize) {
        (self.n_rows, self.n_cols)
    }
    /// Number of stored values.
    pub fn nnz(&self) -> usize {
        self.data.len()
    }
    /// Row pointers: row `i`'s values are `indptr[i]..indptr[i + 1]` of `indices` and `data`.
    pub fn indptr(&self) -> &[i64] {
        &self.indptr
    }
    /// Column of each stored value.
    pub fn indices(&self) -> &[i32] {
        &self.indices
    }
    /// The stored values.
    pub fn data(&self) -> &[f32] {
        &self.data
    }
    /// The stored values, to rescale in place (the structure stays).
    pub fn data_mut(&mut self) -> &mut [f32] {
        &mut self.data
    }

    /// The column indices and values of row `i`.
    pub fn row(&self, i: usize) -> (&[i32], &[f32]) {
        let (start, end) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        (&self.indices[start..end], &self.data[start..end])
    }

    /// Row and column of the first stored NaN or infinity in row order, or `None` when every
    /// stored value is finite (an absent entry is a zero, which is).
    pub fn first_non_finite(&self) -> Option<(usize, usize)> {
        (0..self.n_rows()).find_map(|i| {
            let (cols, values) = self.row(i);
            let p = values.iter().position(|v| !v.is_finite())?;
            Some((i, cols[p] as usize))
        })
    }

    /// Mutable values of row `i` (the sparsity pattern stays fixed).
    pub fn row_values_mut(&mut self, i: usize) -> &mut [f32] {
        let (start, end) = (self.indptr[i] as usize, self.indptr[i + 1] as usize);
        &mut self.data[start..end]
    }

    /// Fraction of entries that are stored.
    pub fn density(&self) -> f64 {
        let cells = self.n_rows as f64 * self.n_cols as f64;
        if cells == 0.0 {
            0.0
        } else {
            self.nnz() as f64 / cells
        }
    }

    /// The rows `rows`, in that order, as a new matrix.
    pub fn select_rows(&self, rows: &[usize]) -> Self {
        let mut indptr = Vec::with_capacity(rows.len() + 1);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        indptr.push(0);
        for &r in rows {
            let (cols, values) = self.row(r);
            indices.extend_from_slice(cols);
            data.extend_from_slice(values);
            indptr.push(data.len() as i64);
        }
        Self {
            n_rows: rows.len(),
            n_cols: self.n_cols,
            indptr,
            indices,
            data,
        }
    }

    /// Columns `start..start + width`, renumbered from 0, as a new matrix (a block of a
    /// combined feature matrix). Panics if the range passes the last column.
    pub fn column_range(&self, start: usize, width: usize) -> Self {
        let end = start + width;
        assert!(
            end <= self.n_cols,
            "columns {start}..{end} of {}",
            self.n_cols
        );
        let mut indptr = Vec::with_capacity(self.n_rows + 1);
        let mut indices = Vec::new();
        let mut data = Vec::new();
        indptr.push(0);
        for r in 0..self.n_rows {
            let (cols, values) = self.row(r);
            // Columns are sorted within a row: the block is one contiguous run.
            let from = cols.partition_point(|&c| (c as usize) < start);
            let to = cols.partition_point(|&c| (c as usize) < end);
            indices.extend(cols[from..to].iter().map(|&c| c - start as i32));
            data.extend_from_slice(&values[from..to]);
            indptr.push(data.len() as i64);
        }
        Self {
            n_rows: self.n_rows,
            n_cols: width,
            indptr,
            indices,
            data,
        }
    }

    /// `self · dense`, with `dense` of shape `(n_cols, k)`.
    pub fn dot_dense(&self, dense: &ArrayView2<f32>) -> Array2<f32> {
        assert_eq!(dense.nrows(), self.n_cols, "inner dimensions differ");
        let mut out = Array2::<f32>::zeros((self.n_rows, dense.ncols()));
        for (i, mut out_row) in out.rows_mut().into_iter().enumerate() {
            let (cols, values) = self.row(i);
            for (&c, &v) in cols.iter().zip(values) {
                out_row.scaled_add(v, &dense.row(c as usize));
            }
        }
        out
    }

    /// The dense copy of this matrix (only for small matrices and tests).
    pub fn to_dense(&self) -> Array2<f32> {
        let mut out = Array2::<f32>::zeros((self.n_rows, self.n_cols));
        for i in 0..self.n_rows {
            let (cols, values) = self.row(i);
            for (&c, &v) in cols.iter().zip(values) {
                out[[i, c as usize]] = v;
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn from_rows_sorts_and_sums_duplicates() {
        let m = CsrMatrix::from_rows(vec![vec![(2, 1.0), (0, 2.0), (2, 0.5)], vec![]], 3);
        assert_eq!(m.to_dense(), array![[2.0, 0.0, 1.5], [0.0, 0.0, 0.0]]);
        assert_eq!(m.nnz(), 2);
    }

    #[test]
    fn new_rejects_unsorted_columns() {
        let err = CsrMatrix::new(1, 3, vec![0, 2], vec![2, 1], vec![1.0, 1.0]).unwrap_err();
        assert_eq!(
            err,
            CsrError::BadColumn {
                row: 0,
                col: 1,
                n_cols: 3
            }
        );
        // Each broken indptr is named by its entry: the first, the last, one in between.
        let indptr_error = |indptr: Vec<i64>| {
            CsrMatrix::new(2, 3, indptr, vec![0, 1], vec![1.0, 1.0])
                .unwrap_err()
                .to_string()
        };
        assert!(indptr_error(vec![1, 1, 2]).ends_with("indptr[0] = 1 breaks it"));
        assert!(indptr_error(vec![0, 1, 3]).ends_with("indptr[2] = 3 breaks it"));
        let err = indptr_error(vec![0, 3, 2]);
        assert_eq!(
            err,
            "indptr must start at 0, be non-decreasing and end at nnz = 2; indptr[1] = 3 breaks it"
        );
    }

    #[test]
    fn column_range_is_the_dense_column_slice() {
        let m = CsrMatrix::from_rows(
            vec![
                vec![(0, 1.0), (2, 2.0), (4, 3.0)],
                vec![(1, -1.0), (3, 5.0)],
                vec![],
            ],
            5,
        );
        for (start, width) in [(0, 5), (1, 3), (2, 1), (4, 1), (5, 0)] {
            let block = m.column_range(start, width);
            assert_eq!(block.n_cols(), width);
            assert_eq!(
                block.to_dense(),
                m.to_dense().slice(ndarray::s![.., start..start + width]),
                "columns {start}..{}",
                start + width
            );
        }
    }

    #[test]
    fn dot_dense_matches_dense_product() {
        let m = CsrMatrix::from_rows(vec![vec![(0, 1.0), (2, 2.0)], vec![(1, -1.0)]], 3);
        let d = array![[1.0f32, 2.0], [3.0, 4.0], [5.0, 6.0]];
        assert_eq!(m.dot_dense(&d.view()), m.to_dense().dot(&d));
    }
}
