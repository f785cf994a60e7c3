//! `inspect`: what a matrix on disk holds, in words a person can check.
//!
//! For a `.npy` (dense) or scipy-CSR `.npz` (sparse) artifact: shape, dtype, sparsity,
//! non-finite values, per-column min/mean/max (summarised across columns for wide matrices),
//! and the first rows with their ids (from the manifest's `rows` entry). For a stage folder or
//! a `manifest.json`: the manifest's outputs, skips and summary. For a folder without a
//! manifest (a model the library saved, a stage's partition): its files, with each `.npy`'s
//! dtype and shape. A JSON file: its contents. Optionally a CSV export.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayView1};

use super::PipelineError;
use super::artifacts::{NpyHeader, atomic_write, read_dense, read_ids, read_sparse};
use super::manifest::{MANIFEST_FILE, Manifest};

/// Options of an inspection.
#[derive(Debug, Clone)]
pub struct InspectOptions {
    /// How many rows to print.
    pub rows: usize,
    /// How many columns of each printed row.
    pub columns: usize,
    /// Where to export the matrix as CSV (first column the id), if anywhere.
    pub export_csv: Option<PathBuf>,
}

impl Default for InspectOptions {
    fn default() -> Self {
        Self {
            rows: 5,
            columns: 8,
            export_csv: None,
        }
    }
}

/// Describes the artifact at `path` (a matrix, a stage folder or a manifest).
pub fn inspect(path: &Path, options: &InspectOptions) -> Result<String, PipelineError> {
    if path.is_dir() {
        if !path.join(MANIFEST_FILE).exists() {
            return describe_folder(path);
        }
        return describe_stage(path);
    }
    if path.file_name().is_some_and(|n| n == MANIFEST_FILE) {
        return describe_stage(path.parent().unwrap_or(Path::new(".")));
    }
    if path.extension().is_some_and(|e| e == "json") {
        let value: serde_json::Value = crate::model_dir::read_json(path)?;
        let pretty = serde_json::to_string_pretty(&value).expect("a JSON value serialises");
        return Ok(format!("{}\n{pretty}\n", path.display()));
    }
    let ids = row_ids(path);
    let (matrix, kind, extra) = match path.extension().and_then(|e| e.to_str()) {
        Some("npz") => {
            let sparse = read_sparse(path)?;
            let extra = format!(
                "sparse CSR, {} stored values, density {:.4}%",
                sparse.nnz(),
                100.0 * sparse.density()
            );
            // Only the printed statistics need the dense rows; sparse columns are summarised
            // from the stored values to keep memory small.
            (
                SparseOrDense::Sparse(sparse),
                "float32 (scipy CSR .npz)",
                extra,
            )
        }
        Some("npy") => {
            let dense = read_dense(path)?;
            let zeros = dense.iter().filter(|&&v| v == 0.0).count();
            let extra = format!(
                "dense, {:.2}% zeros",
                100.0 * zeros as f64 / dense.len().max(1) as f64
            );
            (
                SparseOrDense::Dense(dense),
                "float32 (.npy, C order)",
                extra,
            )
        }
        _ => {
            return Err(PipelineError::BadArtifact {
                path: path.to_path_buf(),
                message: "not something inspect reads: give a .npy or .npz matrix, a JSON file, a stage folder or a saved model's folder".into(),
            });
        }
    };
    let mut out = String::new();
    let (n_rows, n_cols) = matrix.shape();
    writeln!(out, "{}", path.display()).ok();
    writeln!(out, "shape: {n_rows} x {n_cols}").ok();
    writeln!(out, "dtype: {kind}").ok();
    writeln!(out, "layout: {extra}").ok();
    let non_finite = matrix.values().filter(|v| !v.is_finite()).count();
    writeln!(out, "non-finite values: {non_finite}").ok();
    if let Some(ids) = &ids {
        if ids.len() != n_rows {
            writeln!(out, "warning: {} ids for {n_rows} rows", ids.len()).ok();
        }
    }
    let stats = column_stats(&matrix);
    if n_cols <= 12 {
        writeln!(out, "columns (min / mean / max):").ok();
        for (j, s) in stats.iter().enumerate() {
            writeln!(out, "  {j:>4}: {:>10.4} {:>10.4} {:>10.4}", s.0, s.1, s.2).ok();
        }
    } else {
        let summarise = |f: &dyn Fn(&(f32, f32, f32)) -> f32| {
            let mut v: Vec<f32> = stats.iter().map(f).collect();
            v.sort_by(f32::total_cmp);
            (v[0], v[v.len() / 2], v[v.len() - 1])
        };
        writeln!(
            out,
            "columns: {n_cols}; across columns (lowest / median / highest):"
        )
        .ok();
        for (label, f) in [
            (
                "min ",
                &(|s: &(f32, f32, f32)| s.0) as &dyn Fn(&(f32, f32, f32)) -> f32,
            ),
            ("mean", &|s: &(f32, f32, f32)| s.1),
            ("max ", &|s: &(f32, f32, f32)| s.2),
        ] {
            let (lo, mid, hi) = summarise(f);
            writeln!(out, "  column {label}: {lo:>10.4} {mid:>10.4} {hi:>10.4}").ok();
        }
        let constant = stats.iter().filter(|s| s.0 == s.2).count();
        writeln!(out, "  constant columns: {constant}").ok();
    }
    let norms = matrix.row_norms();
    if !norms.is_empty() {
        let mut sorted = norms.clone();
        sorted.sort_by(f32::total_cmp);
        writeln!(
            out,
            "row L2 norms: min {:.4}, median {:.4}, max {:.4}",
            sorted[0],
            sorted[sorted.len() / 2],
            sorted[sorted.len() - 1]
        )
        .ok();
    }
    let shown = options.rows.min(n_rows);
    if shown > 0 {
        writeln!(out, "first {shown} rows:").ok();
        for i in 0..shown {
            let row = matrix.row(i);
            let id = ids
                .as_ref()
                .and_then(|ids| ids.get(i))
                .map(String::as_str)
                .unwrap_or("-");
            let values: Vec<String> = row
                .iter()
                .take(options.columns)
                .map(|v| format!("{v:.4}"))
                .collect();
            let more = if n_cols > options.columns { " …" } else { "" };
            writeln!(out, "  {id}: [{}{more}]", values.join(", ")).ok();
        }
    }
    if let Some(csv_path) = &options.export_csv {
        atomic_write(csv_path, |w| {
            use std::io::Write;
            write!(w, "id")?;
            for j in 0..n_cols {
                write!(w, ",c{j}")?;
            }
            writeln!(w)?;
            for i in 0..n_rows {
                let id = ids
                    .as_ref()
                    .and_then(|ids| ids.get(i))
                    .cloned()
                    .unwrap_or_else(|| i.to_string());
                write!(w, "\"{}\"", id.replace('"', "\"\""))?;
                for v in matrix.row(i) {
                    write!(w, ",{v}")?;
                }
                writeln!(w)?;
            }
            Ok(())
        })?;
        writeln!(out, "exported {n_rows} rows to {}", csv_path.display()).ok();
    }
    Ok(out)
}

enum SparseOrDense {
    Dense(Array2<f32>),
    Sparse(crate::sparse::CsrMatrix),
}

impl SparseOrDense {
    fn shape(&self) -> (usize, usize) {
        match self {
            SparseOrDense::Dense(m) => (m.nrows(), m.ncols()),
            SparseOrDense::Sparse(m) => m.shape(),
        }
    }
    fn values(&self) -> Box<dyn Iterator<Item = f32> + '_> {
        match self {
            SparseOrDense::Dense(m) => Box::new(m.iter().copied()),
            SparseOrDense::Sparse(m) => Box::new(m.data().iter().copied()),
        }
    }
    fn row(&self, i: usize) -> Vec<f32> {
        match self {
            SparseOrDense::Dense(m) => m.row(i).to_vec(),
            SparseOrDense::Sparse(m) => {
                let mut row = vec![0.0; m.n_cols()];
                let (cols, values) = m.row(i);
                for (&c, &v) in cols.iter().zip(values) {
                    row[c as usize] = v;
                }
                row
            }
        }
    }
    fn row_norms(&self) -> Vec<f32> {
        let norm = |r: ArrayView1<f32>| r.dot(&r).sqrt();
        match self {
            SparseOrDense::Dense(m) => m.rows().into_iter().map(norm).collect(),
            SparseOrDense::Sparse(m) => (0..m.n_rows())
                .map(|i| m.row(i).1.iter().map(|v| v * v).sum::<f32>().sqrt())
                .collect(),
        }
    }
}

/// Per-column (min, mean, max), with the implicit zeros of a sparse matrix counted.
fn column_stats(matrix: &SparseOrDense) -> Vec<(f32, f32, f32)> {
    let (n_rows, n_cols) = matrix.shape();
    let mut min = vec![f32::INFINITY; n_cols];
    let mut max = vec![f32::NEG_INFINITY; n_cols];
    let mut sum = vec![0f64; n_cols];
    match matrix {
        SparseOrDense::Dense(m) => {
            for row in m.rows() {
                for (j, &v) in row.iter().enumerate() {
                    min[j] = min[j].min(v);
                    max[j] = max[j].max(v);
                    sum[j] += v as f64;
                }
            }
        }
        SparseOrDense::Sparse(m) => {
            let mut stored = vec![0usize; n_cols];
            for i in 0..n_rows {
                let (cols, values) = m.row(i);
                for (&c, &v) in cols.iter().zip(values) {
                    let j = c as usize;
                    min[j] = min[j].min(v);
                    max[j] = max[j].max(v);
                    sum[j] += v as f64;
                    stored[j] += 1;
                }
            }
            for j in 0..n_cols {
                if stored[j] < n_rows {
                    min[j] = min[j].min(0.0);
                    max[j] = max[j].max(0.0);
                }
            }
        }
    }
    (0..n_cols)
        .map(|j| {
            if n_rows == 0 {
                (0.0, 0.0, 0.0)
            } else {
                (min[j], (sum[j] / n_rows as f64) as f32, max[j])
            }
        })
        .collect()
}

/// The ids of the rows of a matrix: from its stage manifest's `rows` entry, if there is one.
fn row_ids(path: &Path) -> Option<Vec<String>> {
    let dir = path.parent()?;
    // The manifest lives in the stage folder, possibly one level up (fold sub-folders).
    for (stage_dir, prefix) in [
        (dir, String::new()),
        (
            dir.parent()?,
            format!("{}/", dir.file_name()?.to_string_lossy()),
        ),
    ] {
        if let Ok(Some(manifest)) = Manifest::load(stage_dir) {
            let file = format!("{prefix}{}", path.file_name()?.to_string_lossy());
            let rows = manifest.output(&file)?.rows.clone()?;
            return read_ids(&stage_dir.join(rows)).ok();
        }
    }
    None
}

/// A folder without a manifest (a saved model, or one partition of a stage folder): every file
/// under it with its size, each `.npy` with its dtype and shape from its header, and each small
/// JSON file in full.
fn describe_folder(dir: &Path) -> Result<String, PipelineError> {
    let files = crate::model_dir::files_under(dir)?;
    let mut lines = Vec::new();
    let mut total = 0;
    for file in &files {
        let bytes = std::fs::metadata(file)
            .map_err(|e| crate::error::IoError::new("reading the size of", file, e))?
            .len();
        total += bytes;
        let what = match file.extension().and_then(|e| e.to_str()) {
            Some("npy") => npy_header_summary(file)?,
            Some("json") if bytes <= 1024 => {
                let value: serde_json::Value = crate::model_dir::read_json(file)?;
                value.to_string()
            }
            _ => String::new(),
        };
        let relative = file.strip_prefix(dir).unwrap_or(file).display();
        lines.push(format!("  {relative:<36} {bytes:>12} bytes  {what}"));
    }
    let mut out = format!(
        "{}: {} files, {total} bytes (no {MANIFEST_FILE}: a saved model, or a partition of a \
         stage folder)\n",
        dir.display(),
        files.len()
    );
    for line in lines {
        writeln!(out, "{}", line.trim_end()).ok();
    }
    Ok(out)
}

/// `dtype, shape` of a `.npy` file, from its header alone (`<f4 803 x 256`).
fn npy_header_summary(path: &Path) -> Result<String, PipelineError> {
    let header = NpyHeader::read(path)?;
    let bad = |what: &str| PipelineError::BadArtifact {
        path: path.to_path_buf(),
        message: format!("no {what} in the header {:?}", header.dict),
    };
    let descr = header.descr().ok_or_else(|| bad("'descr'"))?;
    let shape = header.shape().ok_or_else(|| bad("'shape'"))?;
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    Ok(match dims.as_slice() {
        [] => format!("{descr} scalar"),
        _ => format!("{descr} {}", dims.join(" x ")),
    })
}

fn describe_stage(dir: &Path) -> Result<String, PipelineError> {
    let manifest = Manifest::load(dir)?.ok_or_else(|| PipelineError::BadArtifact {
        path: dir.join(MANIFEST_FILE),
        message: "no manifest: not a stage folder, or the stage has not run".to_string(),
    })?;
    let mut out = String::new();
    writeln!(
        out,
        "stage `{}` of pipeline `{}`",
        manifest.stage, manifest.pipeline
    )
    .ok();
    writeln!(
        out,
        "format {}, crossmodal {}, fingerprint {}, {:.2} s",
        manifest.format_version, manifest.tool_version, manifest.fingerprint, manifest.wall_seconds
    )
    .ok();
    if let Some(machine) = &manifest.machine {
        writeln!(out, "ran on {machine}").ok();
    }
    writeln!(out, "outputs:").ok();
    for o in &manifest.outputs {
        let shape = if o.shape.is_empty() {
            String::new()
        } else {
            format!(
                " {}",
                o.shape
                    .iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(" x ")
            )
        };
        writeln!(
            out,
            "  {:<32} {:<6}{shape} ({} bytes) {}",
            o.file, o.kind, o.bytes, o.description
        )
        .ok();
    }
    if !manifest.skipped.is_empty() {
        writeln!(out, "skipped {} items:", manifest.skipped.len()).ok();
        for (reason, count) in &manifest.skipped_counts {
            writeln!(out, "  {reason}: {count}").ok();
        }
        for s in manifest.skipped.iter().take(20) {
            writeln!(out, "  {} — {}", s.id, s.reason).ok();
        }
    }
    if !manifest.summary.is_empty() {
        writeln!(out, "summary:").ok();
        for (key, value) in &manifest.summary {
            writeln!(out, "  {key}: {value}").ok();
        }
    }
    Ok(out)
}
