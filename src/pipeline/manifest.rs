//! The manifest each stage writes last, and the fingerprints that decide freshness.
//!
//! `manifest.json` records the format version, the tool version, the stage's parameters, the
//! fingerprints of its input files and of its upstream stages, its outputs (file, kind, dtype,
//! shape, bytes), what it skipped and why, its wall time, and the machine that ran it ([`Machine`]:
//! results computed on two CPUs can differ at rounding level). A stage's `fingerprint` is a
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
///
/// A file's digest is BLAKE3 of its content. A collection (the images of a dataset: 50,000
/// files, gigabytes) is first summarised by `stat` alone: BLAKE3 of names, sizes and
/// modification times, which costs no reading. Its `digest`, the one the stage fingerprint
/// covers, is of names, sizes and contents, and is only computed when `stat` differs from what
/// the stage recorded, or nothing is recorded yet ([`Self::resolve`]). So a copy of the data
/// that only changed modification times (a new disk, a fresh checkout) does not make every
/// stage stale, and a collection whose `stat` is unchanged is not read at all.
///
/// Files are named relative to the data folder they were read from (`root`), so the data can
/// move to another folder, or be named by another path, and still be the same input.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct InputFingerprint {
    /// The file relative to the data folder, or a description of the collection
    /// (`images (998 files)`).
    pub path: String,
    /// Size in bytes: the file's, or the total of the collection's files that exist.
    pub bytes: u64,
    /// BLAKE3 of the content (files), or of names, sizes and contents (collections; in
    /// manifests written before `stat` existed, of names, sizes and modification times).
    pub digest: String,
    /// Collections: BLAKE3 of names, sizes and modification times.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stat: Option<String>,
    /// Collections: the files, to read when the content must be checked (not saved).
    #[serde(skip)]
    files: Vec<PathBuf>,
    /// Collections: the data folder the files' names are taken relative to (not saved).
    #[serde(skip)]
    root: PathBuf,
}

/// Two fingerprints are the same input when label, size and digest agree (`stat` is a cache).
impl PartialEq for InputFingerprint {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.bytes == other.bytes && self.digest == other.digest
    }
}

impl Eq for InputFingerprint {}

impl InputFingerprint {
    /// Hashes a file's content; the file is named relative to the data folder `root`.
    pub fn of_file(root: &Path, path: &Path) -> Result<Self, IoError> {
        let bytes = std::fs::read(path).map_err(|e| IoError::new("reading", path, e))?;
        Ok(Self {
            path: relative_to(root, path).display().to_string(),
            bytes: bytes.len() as u64,
            digest: blake3::hash(&bytes).to_hex().to_string(),
            stat: None,
            files: Vec::new(),
            root: PathBuf::new(),
        })
    }

    /// Summarises many files (images) by name, size and modification time, without reading
    /// them: `stat` of 50,000 files is fast, hashing 5 GB is not. Missing files count as such.
    /// The digest is provisional until [`Self::resolve`]. The names hashed are relative to the
    /// data folder `root`.
    pub fn of_collection(label: &str, root: &Path, paths: &[PathBuf]) -> Self {
        let mut hasher = blake3::Hasher::new();
        let mut total = 0u64;
        for path in paths {
            hasher.update(relative_to(root, path).as_os_str().as_encoded_bytes());
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
        let stat = hasher.finalize().to_hex().to_string();
        Self {
            path: format!("{label} ({} files)", paths.len()),
            bytes: total,
            digest: stat.clone(),
            stat: Some(stat),
            files: paths.to_vec(),
            root: root.to_path_buf(),
        }
    }

    /// Settles a collection's digest against `recorded`, the same input as the stage's
    /// manifest has it: when `stat` agrees (or, for a manifest from before `stat`, its digest
    /// does), the recorded digest is taken as it is; otherwise the files are read and hashed.
    /// Files are left alone. Returns whether only `stat` differs from `recorded` (the content
    /// is the same: the manifest may take the new `stat`).
    pub fn resolve(&mut self, recorded: Option<&InputFingerprint>) -> bool {
        let Some(stat) = self.stat.clone() else {
            return false;
        };
        if let Some(old) = recorded.filter(|old| old.path == self.path && old.bytes == self.bytes) {
            let unchanged = match &old.stat {
                Some(old_stat) => *old_stat == stat,
                None => old.digest == stat,
            };
            if unchanged {
                self.digest = old.digest.clone();
                // An old manifest's digest is of modification times: keep the record in that
                // form, so that `stat` is only ever saved beside a digest of the content.
                self.stat = old.stat.clone();
                return false;
            }
        }
        self.digest = content_digest(&self.root, &self.files);
        recorded.is_some_and(|old| old.stat.is_some() && old == self)
    }
}

/// The inputs a stage reads from the data folder `root`: each of `files` (CSV lists, caption
/// files) by its content, then `images` as one collection labelled `label`.
pub fn data_folder_inputs(
    root: &Path,
    files: &[PathBuf],
    label: &str,
    images: &[PathBuf],
) -> Result<Vec<InputFingerprint>, IoError> {
    let mut inputs = files
        .iter()
        .map(|file| InputFingerprint::of_file(root, file))
        .collect::<Result<Vec<_>, _>>()?;
    inputs.push(InputFingerprint::of_collection(label, root, images));
    Ok(inputs)
}

/// `path` as named inside the data folder `root`; a path outside it as it is.
pub fn relative_to<'a>(root: &Path, path: &'a Path) -> &'a Path {
    path.strip_prefix(root).unwrap_or(path)
}

/// BLAKE3 of the names (relative to `root`), sizes and contents of `paths`, in order (each
/// file hashed in parallel; a missing or unreadable file counts as such).
fn content_digest(root: &Path, paths: &[PathBuf]) -> String {
    use rayon::prelude::*;
    let per_file: Vec<Option<(u64, blake3::Hash)>> = paths
        .par_iter()
        .map(|path| {
            let bytes = std::fs::read(path).ok()?;
            Some((bytes.len() as u64, blake3::hash(&bytes)))
        })
        .collect();
    let mut hasher = blake3::Hasher::new();
    for (path, file) in paths.iter().zip(&per_file) {
        hasher.update(relative_to(root, path).as_os_str().as_encoded_bytes());
        match file {
            Some((len, hash)) => {
                hasher.update(&len.to_le_bytes());
                hasher.update(hash.as_bytes());
            }
            None => {
                hasher.update(b"missing");
            }
        }
    }
    format!("content:{}", hasher.finalize().to_hex())
}

/// One file a stage wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputRecord {
    /// Path relative to the stage folder.
    pub file: String,
    /// `dense`, `sparse`, `ids`, `json`, `csv`, `text`, `png`, `html`, ...
    pub kind: String,
    /// Element type of a matrix (`float32`); `None` for other kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dtype: Option<String>,
    /// `[rows, columns]` of a matrix, `[ids]` of an ids file; empty for other kinds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shape: Vec<usize>,
    /// Size of the file as written; another size makes the stage stale.
    pub bytes: u64,
    /// The ids file giving the rows of this matrix.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rows: Option<String>,
    /// What the file holds, in a few words (may be empty).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// One item a stage left out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkipRecord {
    /// Id of the item left out.
    pub id: String,
    /// The item's file, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Why, as `class: detail`; the class, before the first `:`, is what `skipped_counts` counts.
    pub reason: String,
}

/// The machine a stage ran on: its CPU, the cores the process could use, and the BLAS kernels.
///
/// OpenBLAS picks its kernels by the CPU, and kernels for different instruction sets add the
/// same products in different orders, so a stage run on two machines can write files that differ
/// at rounding level, and a ranking can then differ by a few near-ties. Recorded so that a figure
/// can be traced to the machine that computed it; it is not part of the fingerprint, so a work
/// folder moved to another machine stays fresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Machine {
    /// The CPU's model name (`/proc/cpuinfo`), or the architecture where there is none.
    pub cpu: String,
    /// Cores the process could use (`available_parallelism`; 1 where unknown).
    pub cores: usize,
    /// [`crate::blas::kernels`].
    pub blas: String,
}

impl Machine {
    /// The machine this process runs on.
    pub fn this() -> Self {
        let model_name = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .filter_map(|line| line.split_once(':'))
                    .find(|(key, _)| key.trim() == "model name")
                    .map(|(_, value)| value.trim().to_string())
            })
            .filter(|name| !name.is_empty());
        Self {
            cpu: model_name.unwrap_or_else(|| std::env::consts::ARCH.to_string()),
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            blas: crate::blas::kernels(),
        }
    }
}

impl std::fmt::Display for Machine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let cores = if self.cores == 1 { "core" } else { "cores" };
        write!(f, "{}, {} {cores}, {}", self.cpu, self.cores, self.blas)
    }
}

/// What a stage folder holds and how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the code that wrote it.
    pub format_version: u32,
    /// Version of crossmodal that ran the stage.
    pub tool_version: String,
    /// Name of the pipeline (`[pipeline] name`).
    pub pipeline: String,
    /// Name of the stage.
    pub stage: String,
    /// The stage's [`fingerprint()`] when it ran (32 hex digits).
    pub fingerprint: String,
    /// The stage's parameters, defaults filled in, as fingerprinted.
    pub params: serde_json::Value,
    /// Fingerprints of the external files it read.
    pub inputs: Vec<InputFingerprint>,
    /// Upstream stage name → its fingerprint when this stage ran.
    pub upstream: BTreeMap<String, String>,
    /// The files it wrote.
    pub outputs: Vec<OutputRecord>,
    /// Items left out, by reason (counts), and the items themselves.
    pub skipped_counts: BTreeMap<String, usize>,
    /// Every item left out, in the order the stage noted them.
    pub skipped: Vec<SkipRecord>,
    /// Stage-specific figures (counts, timings, sizes).
    pub summary: serde_json::Map<String, serde_json::Value>,
    /// Wall-clock seconds the stage's run took.
    pub wall_seconds: f64,
    /// Seconds since the Unix epoch when the stage finished.
    pub finished_at: u64,
    /// Where the stage ran; absent in manifests written before it was recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine: Option<Machine>,
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
    fn the_machine_is_recorded_and_older_manifests_without_it_still_load() {
        let dir = tempfile::tempdir().unwrap();
        let machine = Machine::this();
        assert!(machine.cores >= 1 && !machine.cpu.is_empty(), "{machine:?}");
        let mut manifest = Manifest {
            format_version: FORMAT_VERSION,
            tool_version: "0.1.0".into(),
            pipeline: "p".into(),
            stage: "fit".into(),
            fingerprint: "f".into(),
            params: json!({"dims": 8}),
            inputs: Vec::new(),
            upstream: BTreeMap::new(),
            outputs: Vec::new(),
            skipped_counts: BTreeMap::new(),
            skipped: Vec::new(),
            summary: serde_json::Map::new(),
            wall_seconds: 1.5,
            finished_at: 7,
            machine: Some(machine),
        };
        let path = dir.path().join(MANIFEST_FILE);
        std::fs::write(&path, serde_json::to_string(&manifest).unwrap()).unwrap();
        assert_eq!(
            Manifest::load(dir.path()).unwrap().as_ref(),
            Some(&manifest)
        );
        // Written before the machine was recorded: it loads, and the key stays out when saved.
        manifest.machine = None;
        let text = serde_json::to_string(&manifest).unwrap();
        assert!(!text.contains("machine"), "{text}");
        std::fs::write(&path, text).unwrap();
        assert_eq!(Manifest::load(dir.path()).unwrap(), Some(manifest));
    }

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

    /// Sets a file's modification time to `secs` after the epoch.
    fn set_mtime(path: &Path, secs: u64) {
        let file = std::fs::File::options().write(true).open(path).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
            .unwrap();
    }

    #[test]
    fn collections_are_checked_by_content_only_when_their_stat_changed() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..3)
            .map(|i| dir.path().join(format!("{i}.jpg")))
            .collect();
        for (i, path) in paths.iter().enumerate() {
            std::fs::write(path, format!("image {i}")).unwrap();
            set_mtime(path, 1_000_000);
        }
        let mut first = InputFingerprint::of_collection("images", dir.path(), &paths);
        assert!(!first.resolve(None));
        assert!(first.digest.starts_with("content:"), "{first:?}");

        // Unchanged stat: the recorded digest is taken without reading.
        let mut same = InputFingerprint::of_collection("images", dir.path(), &paths);
        assert!(!same.resolve(Some(&first)));
        assert_eq!(same, first);

        // New modification times, same bytes: the same input, and the new stat may be kept.
        for path in &paths {
            set_mtime(path, 2_000_000);
        }
        let mut touched = InputFingerprint::of_collection("images", dir.path(), &paths);
        assert_ne!(touched.stat, first.stat);
        assert!(touched.resolve(Some(&first)));
        assert_eq!(touched, first);

        // Same size, other content: changed.
        std::fs::write(&paths[1], "image 9").unwrap();
        let mut edited = InputFingerprint::of_collection("images", dir.path(), &paths);
        assert!(!edited.resolve(Some(&touched)));
        assert_ne!(edited, touched);
        assert_eq!(edited.bytes, touched.bytes);

        // A manifest from before `stat`: its digest was the stat; unchanged, it stays fresh.
        let mut legacy = InputFingerprint::of_collection("images", dir.path(), &paths);
        legacy.digest = legacy.stat.take().unwrap();
        let json = serde_json::to_string(&legacy).unwrap();
        assert!(!json.contains("stat"), "{json}");
        let legacy: InputFingerprint = serde_json::from_str(&json).unwrap();
        let mut now = InputFingerprint::of_collection("images", dir.path(), &paths);
        assert!(!now.resolve(Some(&legacy)));
        assert_eq!(now, legacy);
        assert_eq!(now.stat, None, "kept in the old form");
    }

    #[test]
    fn the_same_files_in_another_folder_are_the_same_input() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let write = |root: &Path, second: &str| {
            std::fs::create_dir_all(root.join("img")).unwrap();
            std::fs::write(root.join("list.csv"), "id\n1\n").unwrap();
            for (name, text) in [("img/1.jpg", "one"), ("img/2.jpg", second)] {
                std::fs::write(root.join(name), text).unwrap();
            }
            let paths = vec![root.join("img/1.jpg"), root.join("img/2.jpg")];
            let mut images = InputFingerprint::of_collection("images", root, &paths);
            images.resolve(None);
            let list = InputFingerprint::of_file(root, &root.join("list.csv")).unwrap();
            (list, images)
        };
        let (list_a, images_a) = write(a.path(), "two");
        let (list_b, images_b) = write(b.path(), "two");
        assert_eq!(list_a.path, "list.csv");
        assert_eq!(list_a, list_b);
        assert_eq!(images_a, images_b);
        let params = json!({});
        let print =
            |inputs: &[InputFingerprint]| fingerprint("split", &params, inputs, &BTreeMap::new());
        assert_eq!(
            print(&[list_a.clone(), images_a.clone()]),
            print(&[list_b, images_b])
        );
        // Content still counts: the copy with one image changed is another input.
        let (_, images_c) = write(b.path(), "TWO");
        assert_ne!(images_a, images_c);
        // A file outside the data folder keeps its whole path.
        let outside = InputFingerprint::of_file(&a.path().join("img"), &a.path().join("list.csv"));
        assert_eq!(
            outside.unwrap().path,
            a.path().join("list.csv").display().to_string()
        );
    }

    #[test]
    fn newer_format_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(MANIFEST_FILE), r#"{"format_version": 99}"#).unwrap();
        let err = Manifest::load(dir.path()).unwrap_err();
        assert!(err.to_string().contains("format version 99"), "{err}");
    }
}
