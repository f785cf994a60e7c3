//! Reading and writing the matrices stages leave on disk, atomically.
//!
//! - dense matrices: `.npy` (float32, C order, one row per item), as `numpy.load` reads them;
//! - sparse matrices: `.npz` holding the arrays of scipy's CSR layout (`data` float32,
//!   `indices` int32, `indptr` int64, `shape` int64, `format` = b"csr"), as
//!   `scipy.sparse.load_npz` reads them;
//! - row ids: a sibling text file, one id per line, in row order.
//!
//! Every write goes to a temporary file in the destination folder, is flushed, and is renamed
//! into place, so a reader never sees a half-written file (tantivy does the same with its
//! `meta.json`).

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

use ndarray::{Array1, Array2};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::error::IoError;
use crate::pipeline::PipelineError;
use crate::sparse::CsrMatrix;

/// Writes `path` through `write`, atomically: temporary file in the same folder, then rename.
pub fn atomic_write<F>(path: &Path, write: F) -> Result<(), PipelineError>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> std::io::Result<()>,
{
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| IoError::new("creating", parent, e))?;
    let mut temp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(parent)
        .map_err(|e| IoError::new("creating a temporary file in", parent, e))?;
    {
        let mut writer = BufWriter::new(temp.as_file_mut());
        write(&mut writer)
            .and_then(|()| writer.flush())
            .map_err(|e| IoError::new("writing", path, e))?;
    }
    temp.as_file()
        .sync_data()
        .map_err(|e| IoError::new("syncing", path, e))?;
    temp.persist(path)
        .map_err(|e| IoError::new("renaming into", path, e.error))?;
    Ok(())
}

fn npy_error(path: &Path, message: impl std::fmt::Display) -> PipelineError {
    PipelineError::BadArtifact {
        path: path.to_path_buf(),
        message: message.to_string(),
    }
}

/// Writes a dense float32 matrix as `.npy` (C order).
pub fn write_dense(path: &Path, matrix: &Array2<f32>) -> Result<(), PipelineError> {
    let standard = matrix.as_standard_layout();
    atomic_write(path, |w| {
        standard
            .write_npy(w)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}

/// Reads a dense float32 matrix from `.npy`.
pub fn read_dense(path: &Path) -> Result<Array2<f32>, PipelineError> {
    let file = File::open(path).map_err(|e| IoError::new("opening", path, e))?;
    Array2::<f32>::read_npy(BufReader::new(file)).map_err(|e| npy_error(path, e))
}

/// Writes row ids, one per line. Ids may not contain line breaks.
pub fn write_ids<S: AsRef<str>>(path: &Path, ids: &[S]) -> Result<(), PipelineError> {
    if let Some(bad) = ids.iter().find(|id| id.as_ref().contains(['\n', '\r'])) {
        return Err(npy_error(
            path,
            format!("id {:?} contains a line break", bad.as_ref()),
        ));
    }
    atomic_write(path, |w| {
        for id in ids {
            writeln!(w, "{}", id.as_ref())?;
        }
        Ok(())
    })
}

/// Reads row ids written by [`write_ids`].
pub fn read_ids(path: &Path) -> Result<Vec<String>, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::new("reading", path, e))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// Writes a value as pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), PipelineError> {
    atomic_write(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        writeln!(w)
    })
}

/// The `.npy` bytes of a 0-d byte-string array (numpy dtype `|S<n>`), as scipy stores `format`.
fn npy_bytes_scalar(value: &[u8]) -> Vec<u8> {
    let header = format!(
        "{{'descr': '|S{}', 'fortran_order': False, 'shape': (), }}",
        value.len()
    );
    // magic (6) + version (2) + header length (2) + header + padding + '\n', a multiple of 64.
    let unpadded = 10 + header.len() + 1;
    let padding = (64 - unpadded % 64) % 64;
    let header_len = header.len() + padding + 1;
    let mut out = Vec::with_capacity(10 + header_len + value.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(b' ', padding));
    out.push(b'\n');
    out.extend_from_slice(value);
    out
}

fn npy_bytes<A: WriteNpyExt>(array: &A) -> std::io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    array
        .write_npy(&mut bytes)
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    Ok(bytes)
}

/// Writes a CSR matrix as scipy's `.npz` layout (uncompressed).
pub fn write_sparse(path: &Path, matrix: &CsrMatrix) -> Result<(), PipelineError> {
    let (rows, cols) = matrix.shape();
    let encode =
        |result: std::io::Result<Vec<u8>>| result.map_err(|e| IoError::new("encoding", path, e));
    let members: [(&str, Vec<u8>); 5] = [
        (
            "data.npy",
            encode(npy_bytes(&Array1::from(matrix.data().to_vec())))?,
        ),
        (
            "indices.npy",
            encode(npy_bytes(&Array1::from(matrix.indices().to_vec())))?,
        ),
        (
            "indptr.npy",
            encode(npy_bytes(&Array1::from(matrix.indptr().to_vec())))?,
        ),
        (
            "shape.npy",
            encode(npy_bytes(&Array1::from(vec![rows as i64, cols as i64])))?,
        ),
        ("format.npy", npy_bytes_scalar(b"csr")),
    ];
    atomic_write(path, |w| {
        let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .large_file(
                members.iter().map(|(_, b)| b.len()).sum::<usize>() > u32::MAX as usize / 2,
            );
        for (name, bytes) in &members {
            zip.start_file(*name, options)
                .map_err(std::io::Error::other)?;
            zip.write_all(bytes)?;
        }
        let cursor = zip.finish().map_err(std::io::Error::other)?;
        w.write_all(cursor.get_ref())
    })
}

fn zip_member(
    archive: &mut zip::ZipArchive<BufReader<File>>,
    path: &Path,
    name: &str,
) -> Result<Vec<u8>, PipelineError> {
    let mut member = archive
        .by_name(name)
        .map_err(|e| npy_error(path, format!("member {name}: {e}")))?;
    let mut bytes = Vec::new();
    member
        .read_to_end(&mut bytes)
        .map_err(|e| IoError::new("reading", path, e))?;
    Ok(bytes)
}

/// Reads a CSR matrix written by [`write_sparse`] (or by `scipy.sparse.save_npz(compressed=False)`
/// with int32 indices).
pub fn read_sparse(path: &Path) -> Result<CsrMatrix, PipelineError> {
    let file = File::open(path).map_err(|e| IoError::new("opening", path, e))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(|e| npy_error(path, e))?;
    let data = Array1::<f32>::read_npy(&zip_member(&mut archive, path, "data.npy")?[..])
        .map_err(|e| npy_error(path, format!("data.npy: {e}")))?;
    let indices = Array1::<i32>::read_npy(&zip_member(&mut archive, path, "indices.npy")?[..])
        .map_err(|e| npy_error(path, format!("indices.npy: {e}")))?;
    let indptr = Array1::<i64>::read_npy(&zip_member(&mut archive, path, "indptr.npy")?[..])
        .map_err(|e| npy_error(path, format!("indptr.npy: {e}")))?;
    let shape = Array1::<i64>::read_npy(&zip_member(&mut archive, path, "shape.npy")?[..])
        .map_err(|e| npy_error(path, format!("shape.npy: {e}")))?;
    if shape.len() != 2 || shape[0] < 0 || shape[1] < 0 {
        return Err(npy_error(
            path,
            format!("shape must be two non-negative numbers, got {shape}"),
        ));
    }
    CsrMatrix::new(
        shape[0] as usize,
        shape[1] as usize,
        indptr.to_vec(),
        indices.to_vec(),
        data.to_vec(),
    )
    .map_err(|e| npy_error(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn dense_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        let m = array![[1.0f32, 2.0, 3.0], [4.0, 5.0, 6.0]];
        write_dense(&path, &m).unwrap();
        assert_eq!(read_dense(&path).unwrap(), m);
        // Only the artifact is left: no temporary file.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn sparse_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npz");
        let m = CsrMatrix::from_rows(vec![vec![(1, 0.5)], vec![], vec![(0, 1.0), (3, -2.0)]], 4);
        write_sparse(&path, &m).unwrap();
        assert_eq!(read_sparse(&path).unwrap(), m);
    }

    #[test]
    fn scalar_npy_header_is_aligned() {
        let bytes = npy_bytes_scalar(b"csr");
        assert_eq!((bytes.len() - 3) % 64, 0);
        assert!(bytes.ends_with(b"\ncsr"));
    }

    #[test]
    fn ids_with_line_breaks_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_ids(&dir.path().join("ids.txt"), &["a\nb"]).unwrap_err();
        assert!(err.to_string().contains("a\\nb"), "{err}");
    }

    #[test]
    fn failed_write_leaves_previous_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.txt");
        atomic_write(&path, |w| w.write_all(b"good")).unwrap();
        let result = atomic_write(&path, |w| {
            w.write_all(b"half")?;
            Err(std::io::Error::other("interrupted"))
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "good");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
