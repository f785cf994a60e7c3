//! The Flickr8k-CN layout (Li et al., "Adding Chinese Captions to Images", ICMR 2016).
//!
//! `images/<name>.jpg`; caption files with lines `<name>.jpg#<tag>#<k> <caption>`
//! (`flickr8kzhc.caption.txt`: written by native Chinese speakers, 5 per image;
//! `flickr8kenc.caption.txt`: the original English; `flickr8kzhmtest.captions.txt`: human
//! translations of the test captions); split lists `flickr8k{train,val,test}.txt` with one image
//! name (without `.jpg`) per line — the standard Hodosh et al. (2013) split. Images listed in a
//! split but absent from `images/` are reported and left out.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::{DataError, Dataset, ImageEntry, Part, TextEntry};
use crate::error::IoError;

/// Which caption file to read.
pub fn caption_file_name(tag: &str) -> String {
    match tag {
        "zhmtest" | "zhm" => "flickr8kzhmtest.captions.txt".to_string(),
        other => format!("flickr8k{other}.caption.txt"),
    }
}

fn read_to_string(path: &Path) -> Result<String, DataError> {
    let bytes = std::fs::read(path).map_err(|e| IoError::new("reading", path, e))?;
    let text = String::from_utf8(bytes).map_err(|e| DataError::BadFile {
        path: path.to_path_buf(),
        message: format!(
            "not UTF-8 (first bad byte at offset {})",
            e.utf8_error().valid_up_to()
        ),
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(&text).to_string())
}

/// Parses one caption line `<name>.jpg#<tag>#<k> <caption>` into `(text id, image name, caption)`.
fn parse_caption_line(line: &str) -> Option<(&str, &str, &str)> {
    let line = line.trim_end_matches(['\r', '\n']);
    let (id, caption) = line.split_once([' ', '\t'])?;
    let image = id.split('#').next()?;
    let image = image.strip_suffix(".jpg").unwrap_or(image);
    Some((id, image, caption.trim()))
}

/// Reads Flickr8k-CN under `root` with the captions tagged `tag`: `zhc` (written by native
/// Chinese speakers, 5 per image), `enc` (the original English) or `zhmtest` (human
/// translations of the test captions).
///
/// The images are those of the three split lists whose file exists, in list order (train,
/// validation, test); [`Dataset::predefined`] gives each one's part. Listed images without a
/// file are in [`Dataset::missing_images`] and their captions' ids in [`Dataset::orphan_texts`];
/// unlike Teddy's loader, this one does not keep such captions in [`Dataset::texts`]. Captions
/// of images in no list are left out too. Every caption left out is counted in
/// [`Dataset::warnings`].
pub fn load(root: &Path, tag: &str) -> Result<Dataset, DataError> {
    super::check_root(root)?;
    let caption_path = root.join(caption_file_name(tag));
    if !caption_path.is_file() {
        return Err(DataError::NotFound {
            what: "caption file",
            dir: root.to_path_buf(),
            tried: caption_file_name(tag),
        });
    }
    let image_dir = root.join("images");
    let mut dataset = Dataset {
        encoding: "UTF-8".to_string(),
        source_files: vec![caption_path.clone()],
        ..Dataset::default()
    };

    // The standard split lists; an image in none of them is not used.
    let mut parts: Vec<Part> = Vec::new();
    let mut image_index: HashMap<String, usize> = HashMap::new();
    let mut missing_by_part: HashMap<Part, usize> = HashMap::new();
    for (part, file) in [
        (Part::Train, "flickr8ktrain.txt"),
        (Part::Validation, "flickr8kval.txt"),
        (Part::Test, "flickr8ktest.txt"),
    ] {
        let path = root.join(file);
        if !path.is_file() {
            dataset.warnings.push(format!(
                "{}: split list absent, no {} images",
                path.display(),
                part.as_str()
            ));
            continue;
        }
        dataset.source_files.push(path.clone());
        for (line_no, line) in read_to_string(&path)?.lines().enumerate() {
            let name = line.trim();
            if name.is_empty() {
                continue;
            }
            let name = name.strip_suffix(".jpg").unwrap_or(name);
            if image_index.contains_key(name) {
                return Err(DataError::BadLine {
                    path: path.clone(),
                    line: line_no as u64 + 1,
                    message: format!("image {name} is listed twice in the split lists"),
                });
            }
            let file = image_dir.join(format!("{name}.jpg"));
            if file.is_file() {
                image_index.insert(name.to_string(), dataset.images.len());
                dataset.images.push(ImageEntry {
                    id: name.to_string(),
                    path: file,
                });
                parts.push(part);
            } else {
                *missing_by_part.entry(part).or_default() += 1;
                dataset.missing_images.push((name.to_string(), file));
            }
        }
    }
    for (part, count) in {
        let mut v: Vec<_> = missing_by_part.into_iter().collect();
        v.sort();
        v
    } {
        dataset.warnings.push(format!(
            "{count} {} images listed in the split lists are absent from {} and left out",
            part.as_str(),
            image_dir.display()
        ));
    }

    let missing: HashSet<&str> = dataset
        .missing_images
        .iter()
        .map(|(name, _)| name.as_str())
        .collect();
    let mut orphan_texts = Vec::new();
    let mut unused_captions = 0usize;
    // Caption ids name a caption everywhere downstream (search --text-id, compare's rows).
    let mut first_line_of: HashMap<String, u64> = HashMap::new();
    for (line_no, line) in read_to_string(&caption_path)?.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let Some((id, image, caption)) = parse_caption_line(line) else {
            return Err(DataError::BadLine {
                path: caption_path.clone(),
                line: line_no as u64 + 1,
                message: format!("expected `<name>.jpg#<tag>#<k> <caption>`, got {line:?}"),
            });
        };
        if let Some(&first_line) = first_line_of.get(id) {
            return Err(DataError::DuplicateId {
                path: caption_path.clone(),
                line: line_no as u64 + 1,
                first_line,
                column: "caption id".into(),
                id: id.to_string(),
            });
        }
        first_line_of.insert(id.to_string(), line_no as u64 + 1);
        let Some(&image) = image_index.get(image) else {
            if missing.contains(image) {
                orphan_texts.push(id.to_string());
            }
            unused_captions += 1;
            continue;
        };
        if caption.is_empty() {
            dataset.warnings.push(format!(
                "{}:{}: empty caption for {id}, left out",
                caption_path.display(),
                line_no + 1
            ));
            continue;
        }
        dataset.pairs.push((image, dataset.texts.len()));
        dataset.texts.push(TextEntry {
            id: id.to_string(),
            caption: caption.to_string(),
        });
    }
    dataset.orphan_texts = orphan_texts;
    if unused_captions > 0 {
        dataset.warnings.push(format!(
            "{unused_captions} captions belong to images that are absent or in no split list; left out"
        ));
    }
    let by_image = dataset.texts_by_image();
    for (image, texts) in dataset.images.iter().zip(&by_image) {
        if texts.is_empty() {
            dataset.warnings.push(format!(
                "image {} has no caption in {}",
                image.id,
                caption_path.display()
            ));
        }
    }
    dataset.predefined = Some(parts);
    Ok(dataset)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_caption_lines() {
        assert_eq!(
            parse_caption_line("667626_18933d713e.jpg#zhc#0 一个穿着泳装的女人躺在海水里。"),
            Some((
                "667626_18933d713e.jpg#zhc#0",
                "667626_18933d713e",
                "一个穿着泳装的女人躺在海水里。"
            ))
        );
        assert_eq!(parse_caption_line("no-caption-here"), None);
    }

    #[test]
    fn captions_of_missing_images_are_orphans_and_unlisted_ones_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("images")).unwrap();
        std::fs::write(root.join("images/a.jpg"), b"present").unwrap();
        std::fs::write(root.join("images/c.jpg"), b"in no list").unwrap();
        std::fs::write(root.join("flickr8ktrain.txt"), "a.jpg\nb.jpg\n").unwrap();
        std::fs::write(
            root.join("flickr8kzhc.caption.txt"),
            "a.jpg#zhc#0 一只狗\nb.jpg#zhc#0 一只猫\nb.jpg#zhc#1 两只猫\nc.jpg#zhc#0 一条鱼\n",
        )
        .unwrap();
        let dataset = load(root, "zhc").unwrap();
        let ids = |v: &[TextEntry]| v.iter().map(|t| t.id.clone()).collect::<Vec<_>>();
        assert_eq!(dataset.images.len(), 1);
        assert_eq!(dataset.images[0].id, "a");
        assert_eq!(ids(&dataset.texts), ["a.jpg#zhc#0"]);
        assert_eq!(dataset.pairs, [(0, 0)]);
        assert_eq!(dataset.predefined, Some(vec![Part::Train]));
        assert_eq!(dataset.missing_images.len(), 1);
        assert_eq!(dataset.missing_images[0].0, "b");
        assert_eq!(dataset.orphan_texts, ["b.jpg#zhc#0", "b.jpg#zhc#1"]);
        assert!(
            dataset
                .warnings
                .iter()
                .any(|w| w.starts_with("3 captions belong to images")),
            "{:?}",
            dataset.warnings
        );
        // A caption id given twice (files concatenated) is refused with both lines.
        std::fs::write(
            root.join("flickr8kzhc.caption.txt"),
            "a.jpg#zhc#0 一只狗\nb.jpg#zhc#0 一只猫\na.jpg#zhc#0 一只狗\n",
        )
        .unwrap();
        let err = load(root, "zhc").unwrap_err().to_string();
        assert!(
            err.contains("line 3: duplicate `caption id` \"a.jpg#zhc#0\" (first seen on line 1)"),
            "{err}"
        );
    }
}
