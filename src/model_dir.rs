//! Fitted models saved as folders: `.npy` arrays that numpy can load, JSON for parameters,
//! and plain text lists, written whole or not at all.
//!
//! Each fitted type has a `save(dir)` and a `load(dir)` ([`crate::image::FittedImageFeatures`],
//! [`crate::text::FittedTextFeatures`], [`crate::fusion::FittedCca`], the neural baselines');
//! they write through [`write_folder_atomically`], so a save that is interrupted or fails
//! leaves the previous folder as it was (or none), never a mix of old and new files.

use std::io::Write;
use std::path::{Path, PathBuf};

use ndarray::{Array2, ArrayBase, Data, Dimension};
use ndarray_npy::{ReadNpyExt, WritableElement, WriteNpyExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::IoError;
use crate::pipeline::artifacts::atomic_write;

/// Builds `dir` through `write`, which fills an empty staging folder beside it; then the staging
/// folder takes `dir`'s place (the old `dir`, if any, is moved aside first and removed after).
/// On an error from `write` the staging folder is removed and `dir` is left untouched.
pub fn write_folder_atomically<E>(
    dir: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<IoError>,
{
    let parent = match dir.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent).map_err(|e| IoError::new("creating", parent, e))?;
    let name = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".to_string());
    let staging = tempfile::Builder::new()
        .prefix(&format!(".{name}.saving-"))
        .tempdir_in(parent)
        .map_err(|e| IoError::new("creating a staging folder in", parent, e))?;
    write(staging.path())?;
    let old = if dir.exists() {
        let aside = tempfile::Builder::new()
            .prefix(&format!(".{name}.old-"))
            .tempdir_in(parent)
            .map_err(|e| IoError::new("creating a staging folder in", parent, e))?;
        let old = aside.path().join(&name);
        std::fs::rename(dir, &old).map_err(|e| IoError::new("moving aside", dir, e))?;
        Some((aside, old))
    } else {
        None
    };
    let staged = staging.keep();
    if let Err(e) = std::fs::rename(&staged, dir) {
        if let Some((_, old)) = &old {
            // Put the previous model back; the new one stays in the staging folder.
            let _ = std::fs::rename(old, dir);
        }
        return Err(IoError::new("renaming into", dir, e).into());
    }
    // `aside` (and the old model in it) is removed when dropped.
    drop(old);
    Ok(())
}

/// One array of a saved model: its file (relative to the model's folder, `/`-separated), the
/// array, and what it holds (the pipeline's manifests record this).
#[derive(Debug, Clone, PartialEq)]
pub struct ArrayFile {
    /// Path relative to the model's folder, `/`-separated (`kernel_x/block-0/mean.npy`).
    pub file: String,
    /// The array (vectors and scalars as `1 x d` and `1 x 1` matrices).
    pub array: Array2<f32>,
    /// What it holds.
    pub about: &'static str,
}

impl ArrayFile {
    /// An array and its file.
    pub fn new(file: impl Into<String>, array: Array2<f32>, about: &'static str) -> Self {
        Self {
            file: file.into(),
            array,
            about,
        }
    }

    /// Writes the array as `.npy` under `dir`, creating the sub-folders its file names.
    pub fn write_in(&self, dir: &Path) -> Result<(), IoError> {
        let path = dir.join(&self.file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| IoError::new("creating", parent, e))?;
        }
        write_npy(&path, &self.array)
    }
}

/// Writes an array as `.npy` (C order), atomically.
pub fn write_npy<S, D>(path: &Path, array: &ArrayBase<S, D>) -> Result<(), IoError>
where
    S: Data,
    S::Elem: WritableElement + Clone,
    D: Dimension,
{
    let standard = array.as_standard_layout();
    atomic_write(path, |w| {
        standard
            .write_npy(w)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
}

/// Reads a `.npy` array; a wrong dtype or number of dimensions is an error naming the file.
pub fn read_npy<A: ReadNpyExt>(path: &Path) -> Result<A, IoError> {
    let file = std::fs::File::open(path).map_err(|e| IoError::new("opening", path, e))?;
    A::read_npy(std::io::BufReader::new(file))
        .map_err(|e| IoError::new("reading", path, std::io::Error::other(e.to_string())))
}

/// Writes `value` as pretty-printed JSON, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<(), IoError> {
    atomic_write(path, |w| {
        serde_json::to_writer_pretty(&mut *w, value).map_err(std::io::Error::other)?;
        writeln!(w)
    })
}

/// Reads a JSON file into `T`; a malformed file or a missing field is an error naming the file.
pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T, IoError> {
    let text = std::fs::read_to_string(path).map_err(|e| IoError::new("reading", path, e))?;
    serde_json::from_str(&text)
        .map_err(|e| IoError::new("parsing", path, std::io::Error::other(e.to_string())))
}

/// Every file under `dir`, in its sub-folders too, sorted by path.
pub fn files_under(dir: &Path) -> Result<Vec<PathBuf>, IoError> {
    fn walk(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), IoError> {
        for entry in std::fs::read_dir(dir).map_err(|e| IoError::new("listing", dir, e))? {
            let path = entry.map_err(|e| IoError::new("listing", dir, e))?.path();
            if path.is_dir() {
                walk(&path, files)?;
            } else {
                files.push(path);
            }
        }
        Ok(())
    }
    let mut files = Vec::new();
    walk(dir, &mut files)?;
    files.sort();
    Ok(files)
}

/// The `.npy` files directly in `dir`, sorted by name, as `(name without .npy, path)`.
pub fn npy_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, IoError> {
    let mut files = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| IoError::new("listing", dir, e))?;
    for entry in entries {
        let path = entry.map_err(|e| IoError::new("listing", dir, e))?.path();
        let stem = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(".npy"))
            .map(str::to_owned);
        if let Some(stem) = stem {
            files.push((stem, path));
        }
    }
    files.sort();
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    #[test]
    fn a_saved_folder_replaces_the_old_one_whole() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        write_folder_atomically(&dir, |d| {
            write_npy(&d.join("a.npy"), &Array2::<f32>::eye(2))?;
            write_json(&d.join("old.json"), &1)
        })
        .unwrap();
        write_folder_atomically(&dir, |d| {
            write_npy(&d.join("b.npy"), &Array2::<f32>::eye(3))
        })
        .unwrap();
        // No file of the first save survives the second, and nothing is left beside the folder.
        assert_eq!(names_in(&dir), ["b.npy"]);
        assert_eq!(names_in(root.path()), ["model"]);
        let b: Array2<f32> = read_npy(&dir.join("b.npy")).unwrap();
        assert_eq!(b, Array2::<f32>::eye(3));
    }

    #[test]
    fn a_failed_save_leaves_the_old_folder_and_no_staging() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("model");
        write_folder_atomically(&dir, |d| write_json(&d.join("kept.json"), &7)).unwrap();
        let result = write_folder_atomically(&dir, |d| {
            write_json(&d.join("new.json"), &8)?;
            Err(IoError::new(
                "writing",
                d.join("broken.npy"),
                std::io::Error::other("disk full"),
            ))
        });
        assert!(result.unwrap_err().to_string().contains("broken.npy"));
        assert_eq!(names_in(&dir), ["kept.json"]);
        assert_eq!(names_in(root.path()), ["model"]);
        assert_eq!(read_json::<i32>(&dir.join("kept.json")).unwrap(), 7);
    }

    #[test]
    fn reading_a_wrong_shape_or_a_missing_file_names_the_file() {
        let root = tempfile::tempdir().unwrap();
        let path = root.path().join("vector.npy");
        write_npy(&path, &ndarray::Array1::<f32>::zeros(3)).unwrap();
        let err = read_npy::<Array2<f32>>(&path).unwrap_err().to_string();
        assert!(err.contains("vector.npy"), "{err}");
        let missing = root.path().join("missing.npy");
        let err = read_npy::<Array2<f32>>(&missing).unwrap_err().to_string();
        assert!(err.contains("missing.npy"), "{err}");
        std::fs::write(root.path().join("bad.json"), "{").unwrap();
        let err = read_json::<serde_json::Value>(&root.path().join("bad.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bad.json"), "{err}");
    }
}
