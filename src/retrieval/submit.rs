//! The contest's result files: `result1.csv` (text → image) and `result2.csv` (image → text).
//!
//! Format required by the 2024 Teddy Cup problem B: UTF-8 (no BOM), a header line, then for
//! every query exactly 5 rows `query_id,similarity_ranking,result_id` with ranks 1..=5, best
//! first. Headers: `text_id,similarity_ranking,result_image_id` and
//! `image_id,similarity_ranking,result_text_id`. The file is written to a temporary file in the
//! same directory and renamed over the target, so a crash never leaves a half-written result.

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::RetrievalError;
use super::rank::TopK;
use crate::error::IoError;
use crate::pipeline::artifacts::atomic_write;

/// Rows per query in the result files.
pub const RESULTS_PER_QUERY: usize = 5;

/// Which result file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResultKind {
    /// `result1.csv`: text queries, image results.
    TextToImage,
    /// `result2.csv`: image queries, text results.
    ImageToText,
}

impl ResultKind {
    /// The file's name: `result1.csv` or `result2.csv`.
    pub fn file_name(self) -> &'static str {
        match self {
            ResultKind::TextToImage => "result1.csv",
            ResultKind::ImageToText => "result2.csv",
        }
    }

    /// The three column names of the file's header line.
    pub fn header(self) -> [&'static str; 3] {
        match self {
            ResultKind::TextToImage => ["text_id", "similarity_ranking", "result_image_id"],
            ResultKind::ImageToText => ["image_id", "similarity_ranking", "result_text_id"],
        }
    }
}

/// Writes `path` from the top-K of every query (`top.indices` index `gallery_ids`).
pub fn write_results(
    path: &Path,
    kind: ResultKind,
    query_ids: &[String],
    gallery_ids: &[String],
    top: &TopK,
) -> Result<(), RetrievalError> {
    if top.indices.nrows() != query_ids.len() {
        return Err(RetrievalError::LengthMismatch {
            what: "query ids",
            expected: top.indices.nrows(),
            got: query_ids.len(),
        });
    }
    if top.indices.ncols() < RESULTS_PER_QUERY {
        return Err(RetrievalError::TooFewResults {
            needed: RESULTS_PER_QUERY,
            got: top.indices.ncols(),
        });
    }
    let mut seen = HashSet::new();
    for (i, id) in query_ids.iter().enumerate() {
        if !seen.insert(id.as_str()) {
            return Err(RetrievalError::BadFile {
                path: path.to_path_buf(),
                line: 0,
                message: format!("query id {id:?} (query {i}) appears twice"),
            });
        }
    }
    let mut body = Vec::with_capacity(query_ids.len() * RESULTS_PER_QUERY * 48);
    {
        let mut w = csv::WriterBuilder::new()
            .terminator(csv::Terminator::Any(b'\n'))
            .from_writer(&mut body);
        let err = |e: csv::Error| RetrievalError::BadFile {
            path: path.to_path_buf(),
            line: 0,
            message: e.to_string(),
        };
        w.write_record(kind.header()).map_err(err)?;
        for (qi, qid) in query_ids.iter().enumerate() {
            for r in 0..RESULTS_PER_QUERY {
                let g = top.indices[[qi, r]] as usize;
                let gid = gallery_ids.get(g).ok_or(RetrievalError::IndexOutOfRange {
                    query: qi,
                    index: g,
                    gallery: gallery_ids.len(),
                })?;
                w.write_record([qid.as_str(), &(r + 1).to_string(), gid.as_str()])
                    .map_err(err)?;
            }
        }
        w.flush().map_err(|e| IoError::new("writing", path, e))?;
    }
    atomic_write(path, |w| w.write_all(&body))?;
    Ok(())
}

/// Writes `dir/result1.csv` (text queries against images) and returns its path.
pub fn write_result1(
    dir: &Path,
    text_ids: &[String],
    image_ids: &[String],
    top: &TopK,
) -> Result<PathBuf, RetrievalError> {
    let path = dir.join(ResultKind::TextToImage.file_name());
    write_results(&path, ResultKind::TextToImage, text_ids, image_ids, top)?;
    Ok(path)
}

/// Writes `dir/result2.csv` (image queries against texts) and returns its path.
pub fn write_result2(
    dir: &Path,
    image_ids: &[String],
    text_ids: &[String],
    top: &TopK,
) -> Result<PathBuf, RetrievalError> {
    let path = dir.join(ResultKind::ImageToText.file_name());
    write_results(&path, ResultKind::ImageToText, image_ids, text_ids, top)?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::Array2;

    fn ids(prefix: &str, n: usize) -> Vec<String> {
        (0..n).map(|i| format!("{prefix}{i}")).collect()
    }

    #[test]
    fn writes_the_exact_format() {
        let dir = tempfile::tempdir().unwrap();
        let top = TopK {
            indices: Array2::from_shape_fn((2, 6), |(q, j)| ((q + j) % 6) as u32),
            scores: Array2::zeros((2, 6)),
        };
        let path = write_result1(dir.path(), &ids("t", 2), &ids("Image", 6), &top).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let expected = "text_id,similarity_ranking,result_image_id\n\
            t0,1,Image0\nt0,2,Image1\nt0,3,Image2\nt0,4,Image3\nt0,5,Image4\n\
            t1,1,Image1\nt1,2,Image2\nt1,3,Image3\nt1,4,Image4\nt1,5,Image5\n";
        assert_eq!(text, expected);
        // Only the result file is left in the directory (the temporary file was renamed).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let p2 = write_result2(dir.path(), &ids("i", 2), &ids("x", 6), &top).unwrap();
        assert!(
            std::fs::read_to_string(p2)
                .unwrap()
                .starts_with("image_id,similarity_ranking,result_text_id\ni0,1,x0\n")
        );
    }

    #[test]
    fn rejects_short_or_inconsistent_input() {
        let dir = tempfile::tempdir().unwrap();
        let top = TopK {
            indices: Array2::zeros((2, 4)),
            scores: Array2::zeros((2, 4)),
        };
        let err = write_result1(dir.path(), &ids("t", 2), &ids("i", 6), &top).unwrap_err();
        assert!(matches!(
            err,
            RetrievalError::TooFewResults { needed: 5, got: 4 }
        ));
        let top = TopK {
            indices: Array2::zeros((2, 5)),
            scores: Array2::zeros((2, 5)),
        };
        assert!(write_result1(dir.path(), &ids("t", 3), &ids("i", 6), &top).is_err());
        let dup = vec!["a".to_string(), "a".to_string()];
        let err = write_result1(dir.path(), &dup, &ids("i", 6), &top).unwrap_err();
        assert!(err.to_string().contains("\"a\""), "{err}");
        let top = TopK {
            indices: Array2::from_elem((2, 5), 9),
            scores: Array2::zeros((2, 5)),
        };
        assert!(write_result1(dir.path(), &ids("t", 2), &ids("i", 6), &top).is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
