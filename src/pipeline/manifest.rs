//! The manifest each stage writes last, and the fingerprints that decide freshness.
//!
//! `manifest.json` records the format version, the tool version, the stage's parameters, the
//! fingerprints of its input files and of its upstream stages, its outputs (file, kind, dtype,
//! shape, bytes), what it skipped and why, and its wall time. A stage's `fingerprint` is a
//! BLAKE3 hash of everything that determines its outputs (format version, stage name,
//! parameters, inputs, upstream fingerprints); a stage is fresh when the fingerprint it would
//! have now equals the one in its manifest and its outputs are all there (make's rule, with
//! content hashes in place of timestamps where inputs are small, as in Bazel's action keys).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::IoError;
use crate::pipeline::PipelineError;

/// The on-disk format version of stage folders. Bump on any incompatible change.
pub const FORMAT_VERSION: u32 = 1;

/// File name of the manifest inside a stage folder.
pub const MANIFEST_FILE: &str = "manifest.json";

/// The fingerprint of one input: a file, or a collection of files summarised in one digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFingerprint {
    /// The file, or a description of the collection (`ImageData/ (998 files)`).
    pub path: String,
    pub bytes: u64,
    /// BLAKE3 of the content (files) or of names, sizes and modification times (collections).
    pub digest: String,
}

impl InputFingerprint {
    /// Hashes a file's content.
    pub fn of_file(path: &Path) -> Result<Self, IoError> {
        let bytes = std::fs::read(path).map_err(|e| IoError::new("reading", path, e))?;
        Ok(Self {
            path: path.display().to_string(),
            bytes: bytes.len() as u64,
            digest: blake3::hash(&bytes).to_hex().to_string(),
        })
    }

    /// Summarises many files (images) by name, size and modification time, without reading
    /// them: `stat` of 50,000 files is fast, hashing 5 GB is not. Missing files count as such.
    pub fn of_collection(label: &str, paths: &[PathBuf]) -> Self {
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        for path in paths {
            hasher.update(path.as_os_str().as_encoded_bytes());
            match std::fs::metadata(path) {
                Ok(meta) => {
                    total += meta.len();
                    hasher.update(&meta.len().to_le_bytes());
                    let modified = meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                        .map(|d| d.as_nanos())
                        .unwrap_or(0);
                    hasher.update(&modified.to_le_bytes());
                }
                Err(_) => {
                    hasher.update(b"missing");
                }
            }
        }
        Self {
            path: format!("{label} ({} files)", paths.len()),
            bytes: total,
            digest: hasher.finalize().to_hex().to_string(),
        }
    }
}

/// One file a stage wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// Path relative to the stage folder.
    pub file: String,
    /// `dense`, `sparse`, `ids`, `json`, `csv`, `text`, `png`, `html`, ...
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape: Vec<usize>,
    pub bytes: u64,
    /// The ids file giving the rows of this matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// One item a stage left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipRecord {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub reason: String,
}

/// What a stage folder holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format_version: u32,
    pub tool_version: String,
    pub pipeline: String,
    pub stage: String,
    pub fingerprint: String,
    pub params: serde_json::Value,
    pub inputs: Vec<InputFingerprint>,
    /// Upstream stage name → its fingerprint when this stage ran.
    pub upstream: BTreeMap<String, String>,
    pub outputs: Vec<OutputRecord>,
    /// Items left out, by reason (counts), and the items themselves.
    pub skipped_counts: BTreeMap<String, usize>,
    pub skipped: Vec<SkipRecord>,
    /// Stage-specific figures (counts, timings, sizes).
    pub summary: serde_json::Map<String, serde_json::Value>,
    pub wall_seconds: f64,
    /// Seconds since the Unix epoch when the stage finished.
    pub finished_at: u64,
}

impl Manifest {
    /// Reads the manifest of `stage_dir`, `Ok(None)` when there is none. Refuses a manifest
    /// written by a newer format, with a message that says what to do.
    pub fn load(stage_dir: &Path) -> Result<Option<Self>, PipelineError> {
        let path = stage_dir.join(MANIFEST_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(IoError::new("reading", &path, e).into()),
        };
        let probe: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| PipelineError::BadArtifact {
                path: path.clone(),
                message: e.to_string(),
            })?;
        let version = probe
            .get("format_version")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        if version > FORMAT_VERSION as u64 {
            return Err(PipelineError::NewerFormat {
                path,
                found: version,
                supported: FORMAT_VERSION,
            });
        }
        if version < FORMAT_VERSION as u64 {
            // An older layout: treat the stage as never run; it will be rebuilt.
            return Ok(None);
        }
        serde_json::from_value(probe)
            .map(Some)
            .map_err(|e| PipelineError::BadArtifact {
                path,
                message: e.to_string(),
            })
    }

    /// The output record for `file`, if the stage wrote it.
    pub fn output(&self, file: &str) -> Option<&OutputRecord> {
        self.outputs.iter().find(|o| o.file == file)
    }
}

/// The fingerprint of a stage run from its determining parts.
pub fn fingerprint(
    stage: &str,
    params: &serde_json::Value,
    inputs: &[InputFingerprint],
    upstream: &BTreeMap<String, String>,
) -> String {
    let mut hasher = blake3::Hasher::new();
    hasher.update(&FORMAT_VERSION.to_le_bytes());
    hasher.update(stage.as_bytes());
    hasher.update(&[0]);
    // serde_json's maps are sorted by key, so this text is canonical.
    hasher.update(params.to_string().as_bytes());
    hasher.update(&[0]);
    for input in inputs {
        hasher.update(input.path.as_bytes());
        hasher.update(&[0]);
        hasher.update(input.digest.as_bytes());
    }
    hasher.update(&[0]);
    for (name, print) in upstream {
        hasher.update(name.as_bytes());
        hasher.update(&[0]);
        hasher.update(print.as_bytes());
    }
    hasher.finalize().to_hex()[..32].to_string()
}

/// The parameter paths (`a.b.c`) whose values differ between two JSON values.
pub fn changed_params(old: &serde_json::Value, new: &serde_json::Value) -> Vec<String> {
    fn walk(prefix: &str, old: &serde_json::Value, new: &serde_json::Value, out: &mut Vec<String>) {
        match (old, new) {
            (serde_json::Value::Object(a), serde_json::Value::Object(b)) => {
                let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
                for key in keys {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    match (a.get(key), b.get(key)) {
                        (Some(x), Some(y)) => walk(&path, x, y, out),
                        _ => out.push(path),
                    }
                }
            }
            (a, b) if a != b => out.push(prefix.to_string()),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk("", old, new, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changed_params_names_nested_paths() {
        let old = json!({"sift": {"step": 6, "scales": 3}, "k": 256});
        let new = json!({"sift": {"step": 4, "scales": 3}, "k": 256, "extra": true});
        assert_eq!(changed_params(&old, &new), vec!["extra", "sift.step"]);
    }

    #[test]
    fn fingerprint_depends_on_each_part() {
        let params = json!({"a": 1});
        let up = BTreeMap::from([("split".to_string(), "abc".to_string())]);
        let base = fingerprint("s", &params, &[], &up);
        assert_ne!(base, fingerprint("t", &params, &[], &up));
        assert_ne!(base, fingerprint("s", &json!({"a": 2}), &[], &up));
        let up2 = BTreeMap::from([("split".to_string(), "abd".to_string())]);
        assert_ne!(base, fingerprint("s", &params, &[], &up2));
        assert_eq!(base, fingerprint("s", &params, &[], &up));
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), r#"{"format_version": 99}"#).unwrap();
        let err = Manifest::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("format version 99"), "{err}");
    }
}
