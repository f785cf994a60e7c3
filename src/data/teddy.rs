//! The Teddy Cup 2024 problem B layout (attachments 1–3).
//!
//! Attachment 1 (`附件1` or `attachment1`, or the folder itself): `ImageWordData.csv`
//! (`image_id,caption`, one caption per image) and `ImageData/` with the files named by
//! `image_id`. Attachment 2 (task 1, text → image): `word_test.csv` (`text_id,caption`),
//! `image_data.csv` (`image_id`) and `ImageData/`. Attachment 3 (task 2, image → text):
//! `image_test.csv` (`image_id`), `word_data.csv` (`text_id,caption`) and `ImageData/`.
//! In attachment 1 a caption's text id is its image id.

use std::path::{Path, PathBuf};

use super::csv::{read_captions, read_ids};
use super::{DataError, Dataset, ImageEntry, TextEntry};

/// Folder names accepted for attachment `n` (the official Chinese names first).
fn attachment_dirs(n: u8) -> [String; 3] {
    [
        format!("附件{n}"),
        format!("attachment{n}"),
        format!("attachment_{n}"),
    ]
}

/// Finds the folder of attachment `n` holding `marker` under `root`, or `root` itself.
fn find_attachment(root: &Path, n: u8, marker: &str) -> Option<PathBuf> {
    if root.join(marker).is_file() {
        return Some(root.to_path_buf());
    }
    attachment_dirs(n)
        .iter()
        .map(|name| root.join(name))
        .find(|dir| dir.join(marker).is_file())
}

/// `marker` of attachment `n` is neither in `root` nor in any of its attachment folders.
fn attachment_not_found(root: &Path, n: u8, marker: &str) -> DataError {
    let mut tried = vec![marker.to_string()];
    tried.extend(
        attachment_dirs(n)
            .iter()
            .map(|dir| format!("{dir}/{marker}")),
    );
    DataError::NotFound {
        what: "caption file",
        dir: root.to_path_buf(),
        tried: tried.join(", "),
    }
}

/// The attachment folder `dir` lacks `file`, which goes with the file that identified it.
fn companion_not_found(dir: &Path, what: &'static str, file: &str) -> DataError {
    DataError::NotFound {
        what,
        dir: dir.to_path_buf(),
        tried: file.to_string(),
    }
}

/// Reads attachment 1 under `root`: every listed image whose file exists, every caption.
pub fn load_attachment1(root: &Path) -> Result<Dataset, DataError> {
    super::check_root(root)?;
    let dir = find_attachment(root, 1, "ImageWordData.csv")
        .ok_or_else(|| attachment_not_found(root, 1, "ImageWordData.csv"))?;
    let csv_path = dir.join("ImageWordData.csv");
    let captions = read_captions(&csv_path, "image_id")?;
    let image_dir = image_folder(&dir, "ImageWordData.csv")?;

    let mut dataset = Dataset {
        encoding: captions.encoding.to_string(),
        warnings: captions.warnings,
        source_files: vec![csv_path],
        ..Dataset::default()
    };
    for (id, caption) in captions.ids.into_iter().zip(captions.captions) {
        let path = image_dir.join(&id);
        let text_index = dataset.texts.len();
        dataset.texts.push(TextEntry {
            id: id.clone(),
            caption,
        });
        if path.is_file() {
            dataset.pairs.push((dataset.images.len(), text_index));
            dataset.images.push(ImageEntry { id, path });
        } else {
            dataset.orphan_texts.push(id.clone());
            dataset.missing_images.push((id, path));
        }
    }
    Ok(dataset)
}

/// Task 1 of the contest: rank the gallery images for each query text.
#[derive(Debug, Clone)]
pub struct TextToImageTask {
    /// The texts of `word_test.csv`.
    pub queries: Vec<TextEntry>,
    /// The images listed in `image_data.csv` whose file exists.
    pub gallery: Vec<ImageEntry>,
    /// Images listed but absent: `(id, expected path)`.
    pub missing_images: Vec<(String, PathBuf)>,
    /// The CSV files read: `word_test.csv`, then `image_data.csv`.
    pub source_files: Vec<PathBuf>,
}

/// Task 2 of the contest: rank the gallery texts for each query image.
#[derive(Debug, Clone)]
pub struct ImageToTextTask {
    /// The images listed in `image_test.csv` whose file exists.
    pub queries: Vec<ImageEntry>,
    /// The texts of `word_data.csv`.
    pub gallery: Vec<TextEntry>,
    /// Images listed but absent: `(id, expected path)`.
    pub missing_images: Vec<(String, PathBuf)>,
    /// The CSV files read: `image_test.csv`, then `word_data.csv`.
    pub source_files: Vec<PathBuf>,
}

/// `dir/ImageData`, or an error naming it and the folders `dir` does hold (a misspelt or nested
/// folder after unpacking would otherwise make every listed image "missing", one by one).
fn image_folder(dir: &Path, beside: &str) -> Result<PathBuf, DataError> {
    let image_dir = dir.join("ImageData");
    if image_dir.is_dir() {
        return Ok(image_dir);
    }
    let mut folders: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    folders.sort();
    let held = if folders.is_empty() {
        "it holds no folder".to_string()
    } else {
        format!("it holds {}", folders.join(", "))
    };
    Err(DataError::NotFound {
        what: "image folder",
        dir: dir.to_path_buf(),
        tried: format!("ImageData (beside {beside}); {held}"),
    })
}

/// Images listed but absent: `(id, expected path)`.
type MissingImages = Vec<(String, PathBuf)>;

/// The listed images under `dir/ImageData`: those whose file exists, and those missing.
fn image_entries(
    dir: &Path,
    beside: &str,
    ids: Vec<String>,
) -> Result<(Vec<ImageEntry>, MissingImages), DataError> {
    let image_dir = image_folder(dir, beside)?;
    let mut present = Vec::new();
    let mut missing = Vec::new();
    for id in ids {
        let path = image_dir.join(&id);
        if path.is_file() {
            present.push(ImageEntry { id, path });
        } else {
            missing.push((id, path));
        }
    }
    Ok((present, missing))
}

fn text_entries(ids: Vec<String>, captions: Vec<String>) -> Vec<TextEntry> {
    ids.into_iter()
        .zip(captions)
        .map(|(id, caption)| TextEntry { id, caption })
        .collect()
}

/// Reads attachment 2 under `root` when present (`Ok(None)` when it is not there).
pub fn load_attachment2(root: &Path) -> Result<Option<TextToImageTask>, DataError> {
    let Some(dir) = find_attachment(root, 2, "word_test.csv") else {
        return Ok(None);
    };
    let words = dir.join("word_test.csv");
    let images = dir.join("image_data.csv");
    if !images.is_file() {
        return Err(companion_not_found(
            &dir,
            "gallery image list (beside word_test.csv)",
            "image_data.csv",
        ));
    }
    let queries = read_captions(&words, "text_id")?;
    let (gallery, missing_images) =
        image_entries(&dir, "word_test.csv", read_ids(&images, "image_id")?.ids)?;
    Ok(Some(TextToImageTask {
        queries: text_entries(queries.ids, queries.captions),
        gallery,
        missing_images,
        source_files: vec![words, images],
    }))
}

/// Reads attachment 3 under `root` when present (`Ok(None)` when it is not there).
pub fn load_attachment3(root: &Path) -> Result<Option<ImageToTextTask>, DataError> {
    let Some(dir) = find_attachment(root, 3, "image_test.csv") else {
        return Ok(None);
    };
    let images = dir.join("image_test.csv");
    let words = dir.join("word_data.csv");
    if !words.is_file() {
        return Err(companion_not_found(
            &dir,
            "gallery caption file (beside image_test.csv)",
            "word_data.csv",
        ));
    }
    let (queries, missing_images) =
        image_entries(&dir, "image_test.csv", read_ids(&images, "image_id")?.ids)?;
    let gallery = read_captions(&words, "text_id")?;
    Ok(Some(ImageToTextTask {
        queries,
        gallery: text_entries(gallery.ids, gallery.captions),
        missing_images,
        source_files: vec![images, words],
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_file_is_named_with_every_place_tried() {
        let root = tempfile::tempdir().unwrap();
        let err = load_attachment1(root.path()).unwrap_err().to_string();
        assert!(
            err.contains(
                "tried ImageWordData.csv, 附件1/ImageWordData.csv, \
                 attachment1/ImageWordData.csv, attachment_1/ImageWordData.csv"
            ),
            "{err}"
        );

        // An attachment folder found by one file but lacking the other is named as such.
        let second = root.path().join("附件2");
        std::fs::create_dir(&second).unwrap();
        std::fs::write(second.join("word_test.csv"), "text_id,caption\nWord-1,猫\n").unwrap();
        let err = load_attachment2(root.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no gallery image list (beside word_test.csv) found in {}: tried image_data.csv",
                second.display()
            )
        );
        let third = root.path().join("attachment3");
        std::fs::create_dir(&third).unwrap();
        std::fs::write(third.join("image_test.csv"), "image_id\na.jpg\n").unwrap();
        let err = load_attachment3(root.path()).unwrap_err().to_string();
        assert!(
            err.contains("no gallery caption file (beside image_test.csv)")
                && err.ends_with("tried word_data.csv"),
            "{err}"
        );

        // Captions without their image folder (here nested one level down, as unpacking may
        // leave it): the folder is named, with what is there instead.
        let first = root.path().join("附件1");
        std::fs::create_dir_all(first.join("images/ImageData")).unwrap();
        std::fs::write(
            first.join("ImageWordData.csv"),
            "image_id,caption\na.jpg,猫\n",
        )
        .unwrap();
        let err = load_attachment1(root.path()).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no image folder found in {}: tried ImageData (beside ImageWordData.csv); \
                 it holds images",
                first.display()
            )
        );

        // A data folder that is a file, or nothing at all.
        let file = root.path().join("a-file");
        std::fs::write(&file, "").unwrap();
        let err = load_attachment1(&file).unwrap_err().to_string();
        assert!(err.ends_with("a-file is not a directory"), "{err}");
        let err = load_attachment1(&root.path().join("nowhere"))
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("nowhere does not exist"), "{err}");
    }
}
