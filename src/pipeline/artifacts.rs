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
use std::ops::Range;
use std::path::Path;

use ndarray::{Array1, Array2, ArrayViewMut2};
use ndarray_npy::{ReadNpyExt, WriteNpyExt};

use crate::error::IoError;
use crate::pipeline::PipelineError;
use crate::sparse::CsrMatrix;

/// A temporary file in `dir`, to be renamed over an artifact. It is created with the mode an
/// ordinary new file gets (0666 less the umask, so usually 0644) rather than the 0600 of a
/// temporary file, which the rename would otherwise pass on to every artifact.
pub fn temporary_file_in(dir: &Path) -> Result<tempfile::NamedTempFile, IoError> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .map_err(|e| IoError::new("creating a temporary file in", dir, e))
}

/// A temporary file in the folder `path` will be in (created if need be), to be renamed over
/// it.
fn temporary_file_beside(path: &Path) -> Result<tempfile::NamedTempFile, IoError> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| IoError::new("creating", parent, e))?;
    temporary_file_in(parent)
}

/// Writes `path` through `write`, atomically: a temporary file in the same folder (created if
/// need be), flushed and synced, then renamed into place. Every area's writers share it: their
/// error enums all take an [`IoError`].
pub fn atomic_write<F>(path: &Path, write: F) -> Result<(), IoError>
where
    F: FnOnce(&mut BufWriter<&mut File>) -> std::io::Result<()>,
{
    let mut temp = temporary_file_beside(path)?;
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
    Ok(crate::model_dir::write_npy(path, matrix)?)
}

/// Length of the `.npy` header [`DenseRowWriter`] writes: magic, version, header length and the
/// dictionary padded with spaces, 128 bytes in all (a multiple of 64, as the format asks), room
/// for any row and column count.
const ROW_WRITER_HEADER_BYTES: usize = 128;

/// A dense float32 `.npy` matrix written a block of rows at a time, so that a matrix larger than
/// memory is never held whole (the image features of 50,000 images are about 10 GB). The rows go
/// to a temporary file in the destination folder; [`DenseRowWriter::finish`] writes the row
/// count into the header, syncs and renames, so an interrupted stage never leaves a
/// half-written matrix under the final name.
pub struct DenseRowWriter {
    path: std::path::PathBuf,
    temp: tempfile::NamedTempFile,
    writer: BufWriter<File>,
    cols: usize,
    rows: usize,
    bytes: Vec<u8>,
}

impl DenseRowWriter {
    /// Starts `path`, a matrix of `cols` columns.
    pub fn create(path: &Path, cols: usize) -> Result<Self, PipelineError> {
        let temp = temporary_file_beside(path)?;
        let file = temp
            .as_file()
            .try_clone()
            .map_err(|e| IoError::new("opening", temp.path(), e))?;
        let mut writer = BufWriter::with_capacity(1 << 20, file);
        writer
            .write_all(&npy_header(0, cols))
            .map_err(|e| IoError::new("writing", path, e))?;
        Ok(Self {
            path: path.to_path_buf(),
            temp,
            writer,
            cols,
            rows: 0,
            bytes: Vec::new(),
        })
    }

    /// Appends the rows of `block`, which must have the matrix's column count.
    pub fn append(&mut self, block: &Array2<f32>) -> Result<(), PipelineError> {
        if block.ncols() != self.cols {
            return Err(npy_error(
                &self.path,
                format!(
                    "a block of {} columns appended to a matrix of {}",
                    block.ncols(),
                    self.cols
                ),
            ));
        }
        self.bytes.clear();
        self.bytes.reserve(block.len() * 4);
        for v in block.iter() {
            self.bytes.extend_from_slice(&v.to_le_bytes());
        }
        self.writer
            .write_all(&self.bytes)
            .map_err(|e| IoError::new("writing", &self.path, e))?;
        self.rows += block.nrows();
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Writes the header with the final shape, syncs and renames into place; returns the shape.
    pub fn finish(self) -> Result<(usize, usize), PipelineError> {
        use std::io::{Seek, SeekFrom};
        let Self {
            path,
            temp,
            writer,
            cols,
            rows,
            ..
        } = self;
        let mut file = writer
            .into_inner()
            .map_err(|e| IoError::new("writing", &path, e.into_error()))?;
        file.seek(SeekFrom::Start(0))
            .and_then(|_| file.write_all(&npy_header(rows, cols)))
            .and_then(|()| file.sync_data())
            .map_err(|e| IoError::new("writing", &path, e))?;
        temp.persist(&path)
            .map_err(|e| IoError::new("renaming into", &path, e.error))?;
        Ok((rows, cols))
    }
}

/// The `.npy` (version 1.0) header of a little-endian float32 C-order matrix, padded to
/// [`ROW_WRITER_HEADER_BYTES`].
fn npy_header(rows: usize, cols: usize) -> Vec<u8> {
    let mut dict =
        format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    let room = ROW_WRITER_HEADER_BYTES - 10 - 1;
    assert!(dict.len() <= room, "npy header too long: {dict}");
    dict.extend(std::iter::repeat_n(' ', room - dict.len()));
    dict.push('\n');
    let mut header = Vec::with_capacity(ROW_WRITER_HEADER_BYTES);
    header.extend_from_slice(b"\x93NUMPY\x01\x00");
    header.extend_from_slice(&((ROW_WRITER_HEADER_BYTES - 10) as u16).to_le_bytes());
    header.extend_from_slice(dict.as_bytes());
    header
}

/// Reads a dense float32 matrix from `.npy`.
pub fn read_dense(path: &Path) -> Result<Array2<f32>, PipelineError> {
    let file = File::open(path).map_err(|e| IoError::new("opening", path, e))?;
    Array2::<f32>::read_npy(BufReader::new(file)).map_err(|e| npy_error(path, e))
}

/// Reads only `rows` of a dense float32 `.npy` matrix (as [`write_dense`] and
/// [`DenseRowWriter`] write it: little-endian, C order), in the order given, seeking to each, so
/// that a stage that needs a subset of a matrix larger than memory never reads it whole.
pub fn read_dense_rows(path: &Path, rows: &[usize]) -> Result<Array2<f32>, PipelineError> {
    read_dense_block(path, rows, None)
}

/// Shape (rows, columns) of a dense float32 `.npy` matrix, from its header alone.
pub fn dense_shape(path: &Path) -> Result<(usize, usize), PipelineError> {
    let npy = open_dense(path)?;
    Ok((npy.n_rows, npy.n_cols))
}

/// Columns `columns` (all of them with `None`) of `rows` of a dense float32 `.npy` matrix, in
/// the order given, seeking to each: [`read_dense_rows`] for one column block, so that a fit
/// that works on one block of the image features at a time never holds the rest.
pub fn read_dense_block(
    path: &Path,
    rows: &[usize],
    columns: Option<Range<usize>>,
) -> Result<Array2<f32>, PipelineError> {
    let mut npy = open_dense(path)?;
    let columns = columns.unwrap_or(0..npy.n_cols);
    let mut out = Array2::<f32>::zeros((rows.len(), columns.len()));
    npy.read_block_into(path, rows, columns, 1.0, out.view_mut())?;
    Ok(out)
}

/// [`read_dense_block`] into `out` (a row per entry of `rows`, a column per column of
/// `columns`), each value times `weight`: how the combined image features are put together from
/// the files of their blocks without a second copy of any block in memory.
pub fn read_dense_block_into(
    path: &Path,
    rows: &[usize],
    columns: Range<usize>,
    weight: f32,
    out: ArrayViewMut2<f32>,
) -> Result<(), PipelineError> {
    open_dense(path)?.read_block_into(path, rows, columns, weight, out)
}

/// A dense float32 `.npy` matrix opened and its header read.
struct DenseNpy {
    reader: BufReader<File>,
    /// The byte where the data start.
    data_start: u64,
    n_rows: usize,
    n_cols: usize,
}

impl DenseNpy {
    /// Columns `columns` of `rows`, each value times `weight`, into `out`; a seek only where a
    /// row does not follow the one before, so that reading whole rows in order streams the file.
    fn read_block_into(
        &mut self,
        path: &Path,
        rows: &[usize],
        columns: Range<usize>,
        weight: f32,
        mut out: ArrayViewMut2<f32>,
    ) -> Result<(), PipelineError> {
        use std::io::{Seek, SeekFrom};
        let n_cols = self.n_cols;
        if columns.start > columns.end || columns.end > n_cols {
            return Err(npy_error(
                path,
                format!("columns {columns:?} asked of a matrix of {n_cols} columns"),
            ));
        }
        if let Some(&bad) = rows.iter().find(|&&r| r >= self.n_rows) {
            return Err(npy_error(
                path,
                format!("row {bad} asked of a matrix of {} rows", self.n_rows),
            ));
        }
        assert_eq!(
            out.dim(),
            (rows.len(), columns.len()),
            "the output has a row per row asked and a column per column asked"
        );
        let io = |e| IoError::new("reading", path, e);
        let mut bytes = vec![0u8; columns.len() * 4];
        // Where the reader stands: the data's first byte after the header.
        let mut position = self.data_start;
        for (mut target, &row) in out.rows_mut().into_iter().zip(rows) {
            let start = self.data_start + ((row * n_cols + columns.start) * 4) as u64;
            if start != position {
                self.reader.seek(SeekFrom::Start(start)).map_err(io)?;
            }
            self.reader.read_exact(&mut bytes).map_err(io)?;
            position = start + bytes.len() as u64;
            for (value, chunk) in target.iter_mut().zip(bytes.chunks_exact(4)) {
                *value = f32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]) * weight;
            }
        }
        Ok(())
    }
}

/// The header of a `.npy` file: its dict (`{'descr': '<f4', 'fortran_order': False, 'shape':
/// (2, 3), }`), where its data starts, and the reader standing there.
pub(crate) struct NpyHeader {
    pub(crate) dict: String,
    pub(crate) data_start: u64,
    pub(crate) reader: BufReader<File>,
}

impl NpyHeader {
    /// Reads the header of the `.npy` file at `path`, checking its magic string.
    pub(crate) fn read(path: &Path) -> Result<Self, PipelineError> {
        let file = File::open(path).map_err(|e| IoError::new("opening", path, e))?;
        let mut reader = BufReader::new(file);
        let io = |e| IoError::new("reading", path, e);
        let mut preamble = [0u8; 8];
        reader.read_exact(&mut preamble).map_err(io)?;
        if &preamble[..6] != b"\x93NUMPY" {
            return Err(npy_error(path, "not a .npy file (no magic string)"));
        }
        // Version 1 stores the header's length in 2 bytes, versions 2 and 3 in 4.
        let length_bytes = if preamble[6] == 1 { 2 } else { 4 };
        let mut length = [0u8; 4];
        reader.read_exact(&mut length[..length_bytes]).map_err(io)?;
        let header_len = u32::from_le_bytes(length) as usize;
        let mut header = vec![0u8; header_len];
        reader.read_exact(&mut header).map_err(io)?;
        Ok(Self {
            dict: String::from_utf8_lossy(&header).into_owned(),
            data_start: (preamble.len() + length_bytes + header_len) as u64,
            reader,
        })
    }

    /// The dtype (`'descr'`, e.g. `<f4`), if the dict names one.
    pub(crate) fn descr(&self) -> Option<&str> {
        let (_, rest) = self.dict.split_once("'descr': '")?;
        Some(rest.split_once('\'')?.0)
    }

    /// The shape (empty for a scalar), if the dict gives one that parses.
    pub(crate) fn shape(&self) -> Option<Vec<usize>> {
        let (_, rest) = self.dict.split_once("'shape': (")?;
        rest.split_once(')')?
            .0
            .split(',')
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(|d| d.parse().ok())
            .collect()
    }
}

/// Opens a dense float32 `.npy` matrix and reads its header.
fn open_dense(path: &Path) -> Result<DenseNpy, PipelineError> {
    let header = NpyHeader::read(path)?;
    let dict = &header.dict;
    if !dict.contains("'descr': '<f4'") || !dict.contains("'fortran_order': False") {
        return Err(npy_error(
            path,
            format!("expected little-endian float32 in C order, got the header {dict:?}"),
        ));
    }
    let shape = header.shape().unwrap_or_default();
    let [n_rows, n_cols] = shape[..] else {
        return Err(npy_error(
            path,
            format!("expected a 2-d shape, got {dict:?}"),
        ));
    };
    Ok(DenseNpy {
        reader: header.reader,
        data_start: header.data_start,
        n_rows,
        n_cols,
    })
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
    })?;
    Ok(())
}

/// Reads row ids written by [`write_ids`].
pub fn read_ids(path: &Path) -> Result<Vec<String>, PipelineError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::new("reading", path, e))?;
    Ok(text.lines().map(str::to_string).collect())
}

/// Writes a value as pretty JSON.
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T) -> Result<(), PipelineError> {
    Ok(crate::model_dir::write_json(path, value)?)
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
    })?;
    Ok(())
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
    fn dense_rows_written_in_blocks_read_back_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        let m = Array2::from_shape_fn((7, 3), |(i, j)| (i * 3 + j) as f32 - 4.5);
        let mut writer = DenseRowWriter::create(&path, 3).unwrap();
        for rows in [0..2, 2..2, 2..7] {
            writer
                .append(&m.slice(ndarray::s![rows, ..]).to_owned())
                .unwrap();
        }
        assert_eq!(writer.rows(), 7);
        assert!(!path.exists(), "nothing under the final name before finish");
        assert_eq!(writer.finish().unwrap(), (7, 3));
        assert_eq!(read_dense(&path).unwrap(), m);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // The header is the advertised length, aligned to 64 bytes.
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(bytes.len(), ROW_WRITER_HEADER_BYTES + 7 * 3 * 4);
        assert_eq!(bytes[ROW_WRITER_HEADER_BYTES - 1], b'\n');

        // No rows at all is a valid 0 x 3 matrix.
        let empty = dir.path().join("empty.npy");
        DenseRowWriter::create(&empty, 3).unwrap().finish().unwrap();
        assert_eq!(read_dense(&empty).unwrap().dim(), (0, 3));
    }

    #[test]
    fn dense_rows_refuse_a_block_of_another_width_and_leave_nothing_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.npy");
        let mut writer = DenseRowWriter::create(&path, 3).unwrap();
        let err = writer.append(&Array2::zeros((2, 4))).unwrap_err();
        assert!(
            err.to_string().contains("4 columns") && err.to_string().contains("m.npy"),
            "{err}"
        );
        writer.append(&Array2::zeros((2, 3))).unwrap();
        drop(writer);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            0,
            "an unfinished matrix leaves no file"
        );
    }

    #[cfg(unix)]
    #[test]
    fn artifacts_get_the_mode_of_an_ordinary_new_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let ordinary = dir.path().join("ordinary");
        std::fs::write(&ordinary, b"x").unwrap();
        let expected = std::fs::metadata(&ordinary).unwrap().permissions().mode() & 0o777;
        write_dense(&dir.path().join("m.npy"), &Array2::zeros((1, 1))).unwrap();
        let mut rows = DenseRowWriter::create(&dir.path().join("r.npy"), 1).unwrap();
        rows.append(&Array2::zeros((1, 1))).unwrap();
        rows.finish().unwrap();
        for file in ["m.npy", "r.npy"] {
            let mode = std::fs::metadata(dir.path().join(file))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, expected, "{file}: {mode:o} against {expected:o}");
        }
    }

    #[test]
    fn chosen_rows_read_back_in_the_order_asked() {
        let dir = tempfile::tempdir().unwrap();
        let m = Array2::from_shape_fn((6, 3), |(i, j)| (10 * i + j) as f32);
        let chosen = [4, 0, 5, 4];
        let expected = m.select(ndarray::Axis(0), &chosen);
        // Both writers' headers (numpy's own padding and the row writer's fixed one).
        let whole = dir.path().join("whole.npy");
        write_dense(&whole, &m).unwrap();
        let by_rows = dir.path().join("rows.npy");
        let mut writer = DenseRowWriter::create(&by_rows, 3).unwrap();
        writer.append(&m).unwrap();
        writer.finish().unwrap();
        for path in [&whole, &by_rows] {
            assert_eq!(read_dense_rows(path, &chosen).unwrap(), expected);
            assert_eq!(read_dense_rows(path, &[]).unwrap().dim(), (0, 3));
            let err = read_dense_rows(path, &[6]).unwrap_err().to_string();
            assert!(err.contains("row 6") && err.contains("6 rows"), "{err}");
            let columns = read_dense_block(path, &chosen, Some(1..3)).unwrap();
            assert_eq!(columns, expected.slice(ndarray::s![.., 1..3]));
            assert_eq!(dense_shape(path).unwrap(), (6, 3));
            let err = read_dense_block(path, &chosen, Some(2..4))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("columns 2..4") && err.contains("3 columns"),
                "{err}"
            );
        }
        // A header whose shape does not parse is refused, not trusted.
        let mut bytes = std::fs::read(&by_rows).unwrap();
        let at = bytes.windows(4).position(|w| w == b"(6, ").unwrap();
        bytes[at + 1] = b'x';
        std::fs::write(&by_rows, &bytes).unwrap();
        let err = read_dense_rows(&by_rows, &[0]).unwrap_err().to_string();
        assert!(err.contains("expected a 2-d shape"), "{err}");
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
