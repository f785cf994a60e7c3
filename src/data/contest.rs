//! A contest-shaped test set carved out of held-out pairs.
//!
//! The official attachments 2 and 3 of the Teddy Cup are not public, so the contest flow is
//! rehearsed on pairs that training never saw: [`carve`] writes them in the contest's layout
//! (`附件2/word_test.csv` + `image_data.csv` + `ImageData/`, `附件3/image_test.csv` +
//! `word_data.csv` + `ImageData/`), with text ids renamed as the contest numbers them
//! (`Word-1000000000` … for task 1, `Word-1000050001` … for task 2) in a seeded shuffled order so
//! that no id leaks its image, and the answers kept apart in `gold/result1_gold.csv`
//! (`text_id,image_id`) and `gold/result2_gold.csv` (`image_id,text_id`).

use std::path::{Path, PathBuf};

use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;

use super::DataError;
use crate::error::IoError;

/// First text id of task 1's queries, as in the contest.
pub const TASK1_FIRST_TEXT_ID: u64 = 1_000_000_000;
/// First text id of task 2's gallery, as in the contest.
pub const TASK2_FIRST_TEXT_ID: u64 = 1_000_050_001;

/// What [`carve`] wrote.
#[derive(Debug, Clone)]
pub struct CarvedContest {
    /// The folder written under (`out`, as given).
    pub root: PathBuf,
    /// `gold/result1_gold.csv`: `text_id,image_id` for each task 1 query, in id order.
    pub task1_gold: PathBuf,
    /// `gold/result2_gold.csv`: `image_id,text_id` for each task 2 caption, sorted by image id.
    pub task2_gold: PathBuf,
    /// Number of images, in each of `附件2` and `附件3`.
    pub images: usize,
    /// Number of captions, in each of `word_test.csv` and `word_data.csv`.
    pub texts: usize,
}

/// One held-out image: its id and file.
#[derive(Debug, Clone)]
pub struct HeldOutImage {
    /// The image id, also its file name under each `ImageData/`.
    pub id: String,
    /// The original file, linked to or copied.
    pub path: PathBuf,
}

fn write_csv(path: &Path, header: &[&str], rows: &[Vec<String>]) -> Result<(), DataError> {
    let mut writer = csv::Writer::from_path(path).map_err(|e| DataError::CsvWrite {
        path: path.to_path_buf(),
        cause: e,
    })?;
    let fail = |e: csv::Error| DataError::CsvWrite {
        path: path.to_path_buf(),
        cause: e,
    };
    writer.write_record(header).map_err(fail)?;
    for row in rows {
        writer.write_record(row).map_err(fail)?;
    }
    writer
        .flush()
        .map_err(|e| IoError::new("writing", path, e))?;
    Ok(())
}

fn place_image(from: &Path, to: &Path, link: bool) -> Result<(), DataError> {
    if to.exists() || to.symlink_metadata().is_ok() {
        std::fs::remove_file(to).map_err(|e| IoError::new("replacing", to, e))?;
    }
    if link {
        let target = std::fs::canonicalize(from).map_err(|e| IoError::new("resolving", from, e))?;
        #[cfg(unix)]
        return std::os::unix::fs::symlink(&target, to)
            .map_err(|e| IoError::new("linking", to, e).into());
    }
    std::fs::copy(from, to).map_err(|e| IoError::new("copying into", to, e))?;
    Ok(())
}

/// Writes a contest-shaped test set under `out` from held-out `images` and their `captions`
/// (`(caption, index into images)`). Images are symbolic links to the originals when `link`
/// on Unix (copies otherwise, and on other systems); `seed` fixes the order of the text ids.
pub fn carve(
    out: &Path,
    images: &[HeldOutImage],
    captions: &[(String, usize)],
    link: bool,
    seed: u64,
) -> Result<CarvedContest, DataError> {
    let task1 = out.join("附件2");
    let task2 = out.join("附件3");
    let gold = out.join("gold");
    for dir in [
        task1.join("ImageData"),
        task2.join("ImageData"),
        gold.clone(),
    ] {
        std::fs::create_dir_all(&dir).map_err(|e| IoError::new("creating", &dir, e))?;
    }
    for image in images {
        place_image(&image.path, &task1.join("ImageData").join(&image.id), link)?;
        place_image(&image.path, &task2.join("ImageData").join(&image.id), link)?;
    }
    let image_rows: Vec<Vec<String>> = images.iter().map(|i| vec![i.id.clone()]).collect();
    write_csv(&task1.join("image_data.csv"), &["image_id"], &image_rows)?;
    write_csv(&task2.join("image_test.csv"), &["image_id"], &image_rows)?;

    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..captions.len()).collect();
    order.shuffle(&mut rng);
    let mut words1 = Vec::new();
    let mut gold1 = Vec::new();
    let mut words2 = Vec::new();
    let mut gold2 = Vec::new();
    for (n, &c) in order.iter().enumerate() {
        let (caption, image) = &captions[c];
        let id1 = format!("Word-{}", TASK1_FIRST_TEXT_ID + n as u64);
        let id2 = format!("Word-{}", TASK2_FIRST_TEXT_ID + n as u64);
        words1.push(vec![id1.clone(), caption.clone()]);
        gold1.push(vec![id1, images[*image].id.clone()]);
        words2.push(vec![id2.clone(), caption.clone()]);
        gold2.push(vec![images[*image].id.clone(), id2]);
    }
    write_csv(
        &task1.join("word_test.csv"),
        &["text_id", "caption"],
        &words1,
    )?;
    write_csv(
        &task2.join("word_data.csv"),
        &["text_id", "caption"],
        &words2,
    )?;
    gold2.sort();
    let task1_gold = gold.join("result1_gold.csv");
    let task2_gold = gold.join("result2_gold.csv");
    write_csv(&task1_gold, &["text_id", "image_id"], &gold1)?;
    write_csv(&task2_gold, &["image_id", "text_id"], &gold2)?;
    Ok(CarvedContest {
        root: out.to_path_buf(),
        task1_gold,
        task2_gold,
        images: images.len(),
        texts: captions.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carved_set_has_the_contest_layout_and_hides_the_answers() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("src");
        std::fs::create_dir(&source).unwrap();
        let images: Vec<HeldOutImage> = (0..3)
            .map(|i| {
                let path = source.join(format!("Image{i}.jpg"));
                std::fs::write(&path, [i as u8]).unwrap();
                HeldOutImage {
                    id: format!("Image{i}.jpg"),
                    path,
                }
            })
            .collect();
        let captions = vec![
            ("一只猫".to_string(), 0),
            ("一条狗".to_string(), 1),
            ("两条狗".to_string(), 1),
            ("鸟".to_string(), 2),
        ];
        let out = dir.path().join("contest");
        let carved = carve(&out, &images, &captions, true, 7).unwrap();
        let t1 = crate::data::teddy::load_attachment2(&out).unwrap().unwrap();
        let t2 = crate::data::teddy::load_attachment3(&out).unwrap().unwrap();
        assert_eq!(t1.queries.len(), 4);
        assert_eq!(t1.gallery.len(), 3);
        assert_eq!(t2.queries.len(), 3);
        assert_eq!(t2.gallery.len(), 4);
        assert_eq!(t1.queries[0].id, "Word-1000000000");
        assert_eq!(t2.gallery[0].id, "Word-1000050001");
        assert!(t1.missing_images.is_empty() && t2.missing_images.is_empty());
        // The gold pairs say which image each query text shows.
        let gold = std::fs::read_to_string(&carved.task1_gold).unwrap();
        for query in &t1.queries {
            let line = gold
                .lines()
                .find(|l| l.starts_with(&format!("{},", query.id)))
                .unwrap();
            let image = line.split(',').nth(1).unwrap();
            let expected = captions
                .iter()
                .find(|(c, _)| *c == query.caption)
                .unwrap()
                .1;
            assert_eq!(image, images[expected].id);
        }
        let gold2 = std::fs::read_to_string(&carved.task2_gold).unwrap();
        assert_eq!(
            gold2
                .lines()
                .filter(|l| l.starts_with("Image1.jpg,"))
                .count(),
            2
        );
    }
}
