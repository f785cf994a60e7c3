//! `split`: read the dataset, check every image decodes, and fix the split.
//!
//! Outputs: `images.csv` (the usable images: id, path relative to the data folder, format,
//! size; so the data can move without rerunning the split), `texts.csv` (every
//! caption of a usable image, with its image id), `partitions.csv` (each image's part in each
//! partition: `main`, or `fold-0` … `fold-<k-1>`), and the ids files. Missing and undecodable
//! images are reported by id and reason and left out, with their captions; the manifest counts
//! them. Every later stage reads these files, so every stage and every user sees the same split.
//!
//! `[extra_training]` adds the pairs of a second dataset (e.g. Flickr8k-CN's training images to
//! the Teddy pipeline) to the training part of every partition, never to validation or test.
//! The main dataset's split is fixed first, so it is the same with and without them; their ids
//! get a prefix (`<prefix>/<id>`) so they cannot clash with the main dataset's.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::data::split::{Partition, SplitParams, partitions};
use crate::data::{self, Dataset, Layout, Part};
use crate::error::{Error, IoError};
use crate::pipeline::artifacts::atomic_write;
use crate::pipeline::manifest::{InputFingerprint, data_folder_inputs, relative_to};
use crate::pipeline::{Context, PipelineError, Stage, StageWriter};

/// The `split` stage.
pub struct SplitStage;

/// The parameters the fingerprint covers.
#[derive(Debug, Serialize)]
struct SplitStageParams {
    layout: Layout,
    captions: Option<String>,
    split: SplitParams,
    /// Left out when there is none, so that work folders from before it stay fresh.
    #[serde(skip_serializing_if = "Option::is_none")]
    extra_training: Option<ExtraTraining>,
}

/// `[extra_training]`: a second dataset whose pairs join the training part of every partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ExtraTraining {
    /// How its files are laid out (default `flickr8k`).
    pub layout: Layout,
    /// Its folder, relative to the working directory (like `[pipeline] data`).
    pub data: PathBuf,
    /// Its caption set, for Flickr8k (`zhc`, the native Chinese captions, when not given).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub captions: Option<String>,
    /// The parts of its own split whose images are taken (all its images when it has none).
    /// Only `train` by default, so that its test images stay unseen.
    pub parts: Vec<Part>,
    /// At most this many captions per image, the first in its file order (0: all).
    pub captions_per_image: usize,
    /// Its ids become `<prefix>/<id>`.
    pub prefix: String,
}

impl Default for ExtraTraining {
    fn default() -> Self {
        Self {
            layout: Layout::Flickr8k,
            data: PathBuf::new(),
            captions: None,
            parts: vec![Part::Train],
            captions_per_image: 0,
            prefix: "extra".into(),
        }
    }
}

impl ExtraTraining {
    /// The section, when the pipeline has one; its fields checked.
    fn from_config(ctx: &Context) -> Result<Option<Self>, Error> {
        if !ctx.config.sections.contains_key("extra_training") {
            return Ok(None);
        }
        let mut extra: Self = ctx.config.section("extra_training")?;
        // By its canonical path, as the main data folder (`Pipeline::new`): the parameters
        // record it, so its spelling must not make the split stale.
        if let Ok(canonical) = extra.data.canonicalize() {
            extra.data = canonical;
        }
        let bad = |message: String| PipelineError::BadConfig {
            path: ctx.config.path.clone(),
            message: format!("[extra_training] {message}"),
        };
        if extra.data.as_os_str().is_empty() {
            return Err(bad("data: the folder of the extra dataset is required".into()).into());
        }
        if extra.parts.is_empty() {
            return Err(bad("parts: name at least one of train, validation, test".into()).into());
        }
        if extra.prefix.is_empty() || extra.prefix.contains(['/', ',', '\n']) {
            return Err(bad(format!(
                "prefix must be non-empty, without '/', ',' or newlines, got {:?}",
                extra.prefix
            ))
            .into());
        }
        Ok(Some(extra))
    }

    fn load(&self) -> Result<Dataset, Error> {
        load(self.layout, &self.data, self.captions.as_deref())
    }
}

fn load(layout: Layout, dir: &Path, captions: Option<&str>) -> Result<Dataset, Error> {
    Ok(match layout {
        Layout::Teddy => data::teddy::load_attachment1(dir)?,
        Layout::Flickr8k => data::flickr8k::load(dir, captions.unwrap_or("zhc"))?,
    })
}

fn load_dataset(ctx: &Context) -> Result<Dataset, Error> {
    let pipeline = &ctx.config.pipeline;
    load(pipeline.layout, &ctx.data_dir, pipeline.captions.as_deref())
}

/// The fingerprinted inputs of a dataset read from the folder `root`: its source files and its
/// image files, named relative to `root`.
fn dataset_inputs(
    dataset: &Dataset,
    root: &Path,
    name: &str,
) -> Result<Vec<InputFingerprint>, Error> {
    let mut paths: Vec<PathBuf> = dataset.images.iter().map(|i| i.path.clone()).collect();
    paths.extend(dataset.missing_images.iter().map(|(_, p)| p.clone()));
    Ok(data_folder_inputs(
        root,
        &dataset.source_files,
        name,
        &paths,
    )?)
}

/// One image that decodes: what the split records of it.
struct Checked {
    format: String,
    width: u32,
    height: u32,
}

/// Decodes `path` to check it is usable, at the smallest size the decoder allows.
fn check_image(path: &Path) -> Result<Checked, String> {
    let decoded = crate::image::decode::decode_image(path, 64).map_err(|e| e.to_string())?;
    Ok(Checked {
        format: format!("{:?}", decoded.format),
        width: decoded.original_width,
        height: decoded.original_height,
    })
}

/// The reason class of a decode error message, for the manifest's counts.
fn reason_class(message: &str) -> &'static str {
    let lower = message.to_lowercase();
    if lower.contains("missing") || lower.contains("no such file") {
        "missing"
    } else if lower.contains("empty") {
        "empty"
    } else if lower.contains("truncated") {
        "truncated"
    } else {
        "undecodable"
    }
}

impl Stage for SplitStage {
    fn name(&self) -> &'static str {
        "split"
    }
    fn about(&self) -> &'static str {
        "read the dataset, check every image, write the train/validation/test split"
    }
    fn upstream(&self) -> &'static [&'static str] {
        &[]
    }
    fn sections(&self) -> &'static [&'static str] {
        &["split", "extra_training"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let split: SplitParams = ctx.config.section("split")?;
        split.check()?;
        let params = SplitStageParams {
            layout: ctx.config.pipeline.layout,
            captions: ctx.config.pipeline.captions.clone(),
            split,
            extra_training: ExtraTraining::from_config(ctx)?,
        };
        Ok(serde_json::to_value(params).expect("serialisable"))
    }

    fn inputs(&self, ctx: &Context) -> Result<Vec<InputFingerprint>, Error> {
        let mut inputs = dataset_inputs(&load_dataset(ctx)?, &ctx.data_dir, "images")?;
        if let Some(extra) = ExtraTraining::from_config(ctx)? {
            let extra_inputs =
                dataset_inputs(&extra.load()?, &extra.data, "extra training images")?;
            inputs.extend(extra_inputs);
        }
        Ok(inputs)
    }

    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error> {
        let split: SplitParams = ctx.config.section("split")?;
        let dataset = load_dataset(ctx)?;
        log::info!(
            "split: read {} captions and {} listed images from {} ({})",
            dataset.texts.len(),
            dataset.images.len() + dataset.missing_images.len(),
            ctx.data_dir.display(),
            dataset.encoding
        );
        for warning in &dataset.warnings {
            log::warn!("{warning}");
        }
        for (id, path) in &dataset.missing_images {
            out.skip(
                id,
                Some(path),
                "missing: listed but the file does not exist",
            );
        }

        let (mut kept, mut kept_checks) = keep_usable(ctx, &dataset, out);
        let mut partitions = partitions(&kept, &split)?;
        if let Some(extra) = ExtraTraining::from_config(ctx)? {
            let extra_dataset = extra.load()?;
            for warning in &extra_dataset.warnings {
                log::warn!("extra training data: {warning}");
            }
            let chosen = extra.select(extra_dataset)?;
            log::info!(
                "split: {} extra training images with {} captions from {}",
                chosen.images.len(),
                chosen.pairs.len(),
                extra.data.display()
            );
            let (usable, checks) = keep_usable(ctx, &chosen, out);
            out.summary(
                "extra_training",
                serde_json::json!({
                    "data": extra.data.display().to_string(),
                    "images_usable": usable.images.len(),
                    "texts_usable": usable.pairs.len(),
                }),
            );
            let (image_offset, text_offset) = (kept.images.len(), kept.texts.len());
            kept.images.extend(usable.images);
            kept.texts.extend(usable.texts);
            kept.pairs.extend(
                usable
                    .pairs
                    .iter()
                    .map(|&(image, text)| (image + image_offset, text + text_offset)),
            );
            kept_checks.extend(checks);
            if let Some(predefined) = &mut kept.predefined {
                predefined.resize(kept.images.len(), Part::Train);
            }
            for partition in &mut partitions {
                partition.parts.resize(kept.images.len(), Part::Train);
            }
        }
        write_split(out, &ctx.data_dir, &kept, &kept_checks, &partitions)?;

        let mut formats = std::collections::BTreeMap::<String, usize>::new();
        for check in &kept_checks {
            *formats.entry(check.format.clone()).or_default() += 1;
        }
        out.summary("captions_read", dataset.texts.len());
        out.summary(
            "images_listed",
            dataset.images.len() + dataset.missing_images.len(),
        );
        // Usable images and texts count the extra training ones too (also counted apart, under
        // `extra_training`).
        out.summary("images_usable", kept.images.len());
        out.summary("texts_usable", kept.pairs.len());
        out.summary("encoding", &dataset.encoding);
        out.summary("formats", formats);
        out.summary("warnings", &dataset.warnings);
        let counts: serde_json::Map<String, serde_json::Value> = partitions
            .iter()
            .map(|p| {
                (
                    p.name.clone(),
                    serde_json::json!({
                        "train": p.count(Part::Train),
                        "validation": p.count(Part::Validation),
                        "test": p.count(Part::Test),
                    }),
                )
            })
            .collect();
        out.summary("partitions", counts);
        Ok(())
    }
}

/// The images of `dataset` that decode (each checked at the smallest size the decoder allows),
/// with their pairs renumbered; the others are reported through `out.skip` and left out with
/// their captions.
fn keep_usable(ctx: &Context, dataset: &Dataset, out: &mut StageWriter) -> (Dataset, Vec<Checked>) {
    let bar = ctx.bar(dataset.images.len() as u64, "checking images");
    let checks: Vec<Result<Checked, String>> = dataset
        .images
        .par_iter()
        .map(|image| {
            let result = check_image(&image.path);
            bar.inc(1);
            result
        })
        .collect();
    bar.finish_and_clear();

    let mut kept = Dataset {
        texts: dataset.texts.clone(),
        ..Dataset::default()
    };
    let mut new_index = vec![None; dataset.images.len()];
    let mut kept_checks = Vec::new();
    let mut predefined = Vec::new();
    for (i, (image, check)) in dataset.images.iter().zip(checks).enumerate() {
        match check {
            Ok(checked) => {
                new_index[i] = Some(kept.images.len());
                kept.images.push(image.clone());
                kept_checks.push(checked);
                if let Some(parts) = &dataset.predefined {
                    predefined.push(parts[i]);
                }
            }
            Err(message) => {
                let class = reason_class(&message);
                out.skip(&image.id, Some(&image.path), &format!("{class}: {message}"));
            }
        }
    }
    kept.predefined = dataset.predefined.as_ref().map(|_| predefined);
    kept.pairs = dataset
        .pairs
        .iter()
        .filter_map(|&(image, text)| new_index[image].map(|i| (i, text)))
        .collect();
    (kept, kept_checks)
}

impl ExtraTraining {
    /// The images of `dataset` in [`Self::parts`] (all, when it has no split of its own), each
    /// with at most [`Self::captions_per_image`] captions, ids prefixed.
    fn select(&self, dataset: Dataset) -> Result<Dataset, Error> {
        let by_image = dataset.texts_by_image();
        let mut chosen = Dataset {
            encoding: dataset.encoding.clone(),
            ..Dataset::default()
        };
        for (i, image) in dataset.images.iter().enumerate() {
            let in_parts = dataset
                .predefined
                .as_ref()
                .is_none_or(|parts| self.parts.contains(&parts[i]));
            if !in_parts {
                continue;
            }
            let image_index = chosen.images.len();
            chosen.images.push(data::ImageEntry {
                id: format!("{}/{}", self.prefix, image.id),
                path: image.path.clone(),
            });
            let texts = &by_image[i];
            let take = match self.captions_per_image {
                0 => texts.len(),
                cap => cap.min(texts.len()),
            };
            for &text in &texts[..take] {
                chosen.pairs.push((image_index, chosen.texts.len()));
                let entry = &dataset.texts[text];
                chosen.texts.push(data::TextEntry {
                    id: format!("{}/{}", self.prefix, entry.id),
                    caption: entry.caption.clone(),
                });
            }
        }
        if chosen.images.is_empty() {
            let parts: Vec<&str> = self.parts.iter().map(|p| p.as_str()).collect();
            return Err(PipelineError::BadConfig {
                path: self.data.clone(),
                message: format!(
                    "[extra_training] no images of {} are in the parts {parts:?}",
                    self.data.display()
                ),
            }
            .into());
        }
        Ok(chosen)
    }
}

fn csv_error(path: &Path, e: csv::Error) -> std::io::Error {
    std::io::Error::other(format!("{}: {e}", path.display()))
}

/// Writes `images.csv`, `texts.csv` and `partitions.csv`; image paths inside `data_dir` are
/// written relative to it ([`SplitArtifacts::load`] joins them to the data folder of its run).
fn write_split(
    out: &mut StageWriter,
    data_dir: &Path,
    dataset: &Dataset,
    checks: &[Checked],
    partitions: &[Partition],
) -> Result<(), PipelineError> {
    let path = out.path("images.csv");
    atomic_write(&path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["image_id", "path", "format", "width", "height"])
            .map_err(|e| csv_error(&path, e))?;
        for (image, check) in dataset.images.iter().zip(checks) {
            csv.write_record([
                image.id.as_str(),
                &relative_to(data_dir, &image.path).display().to_string(),
                &check.format,
                &check.width.to_string(),
                &check.height.to_string(),
            ])
            .map_err(|e| csv_error(&path, e))?;
        }
        csv.flush()
    })?;
    out.record(
        "images.csv",
        "csv",
        "usable images: id, path (relative to the data folder), format, original size",
    )?;
    let image_ids: Vec<&str> = dataset.images.iter().map(|i| i.id.as_str()).collect();
    out.ids(
        "image_ids.txt",
        &image_ids,
        "usable image ids, in dataset order",
    )?;

    let path = out.path("texts.csv");
    let mut text_ids = Vec::with_capacity(dataset.pairs.len());
    atomic_write(&path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["text_id", "image_id", "caption"])
            .map_err(|e| csv_error(&path, e))?;
        for &(image, text) in &dataset.pairs {
            let entry = &dataset.texts[text];
            text_ids.push(entry.id.clone());
            csv.write_record([entry.id.as_str(), &dataset.images[image].id, &entry.caption])
                .map_err(|e| csv_error(&path, e))?;
        }
        csv.flush()
    })?;
    out.record(
        "texts.csv",
        "csv",
        "captions of usable images: text id, image id, caption",
    )?;
    out.ids("text_ids.txt", &text_ids, "text ids, in texts.csv order")?;

    let path = out.path("partitions.csv");
    atomic_write(&path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        let mut header = vec!["image_id".to_string()];
        header.extend(partitions.iter().map(|p| p.name.clone()));
        csv.write_record(&header).map_err(|e| csv_error(&path, e))?;
        for (i, id) in image_ids.iter().enumerate() {
            let mut row = vec![id.to_string()];
            row.extend(partitions.iter().map(|p| p.parts[i].as_str().to_string()));
            csv.write_record(&row).map_err(|e| csv_error(&path, e))?;
        }
        csv.flush()
    })?;
    out.record(
        "partitions.csv",
        "csv",
        "each image's part (train/validation/test) in each partition",
    )
}

/// The split as later stages read it back.
#[derive(Debug, Clone)]
pub struct SplitArtifacts {
    /// Image ids, in `images.csv` order.
    pub image_ids: Vec<String>,
    /// Each image's file, in the same order; a relative path is taken inside this run's data
    /// folder.
    pub image_paths: Vec<PathBuf>,
    /// Caption ids, in `texts.csv` order.
    pub text_ids: Vec<String>,
    /// Each caption's text, in the same order.
    pub captions: Vec<String>,
    /// The image index of each text.
    pub text_image: Vec<usize>,
    /// The partitions, in the column order of `partitions.csv`: each image's part in each.
    pub partitions: Vec<Partition>,
    /// How many of the last images are `[extra_training]` images (in every training part).
    pub extra_training_images: usize,
}

impl SplitArtifacts {
    /// The partition named `name` (the first one for `None`); `section` names the pipeline-file
    /// section that asked, for the error message.
    pub fn partition(
        &self,
        name: Option<&str>,
        section: &str,
        config: &Path,
    ) -> Result<&Partition, PipelineError> {
        let Some(name) = name else {
            return Ok(&self.partitions[0]);
        };
        self.partitions
            .iter()
            .find(|p| p.name == name)
            .ok_or_else(|| PipelineError::BadConfig {
                path: config.to_path_buf(),
                message: format!(
                    "[{section}] partition {name:?} does not exist; partitions are: {}",
                    self.partitions
                        .iter()
                        .map(|p| p.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// Whether image `index` comes from `[extra_training]`.
    pub fn is_extra_training(&self, index: usize) -> bool {
        index + self.extra_training_images >= self.image_ids.len()
    }

    /// Reads the artifacts of a committed `split` folder; relative image paths are taken
    /// inside `data_dir`, the data folder of this run (the data may have moved since the split).
    pub fn load(dir: &Path, data_dir: &Path) -> Result<Self, PipelineError> {
        let bad = |path: &Path, message: String| PipelineError::BadArtifact {
            path: path.to_path_buf(),
            message,
        };
        // Each file with at least `columns` columns; the reader then refuses a row with another
        // number of fields than the header, so a row's first `columns` fields can be indexed.
        let read = |name: &str,
                    columns: usize|
         -> Result<(PathBuf, csv::Reader<std::fs::File>), PipelineError> {
            let path = dir.join(name);
            let file = std::fs::File::open(&path).map_err(|e| IoError::new("opening", &path, e))?;
            let mut reader = csv::Reader::from_reader(file);
            let found = reader
                .headers()
                .map_err(|e| bad(&path, e.to_string()))?
                .len();
            if found < columns {
                return Err(bad(
                    &path,
                    format!("the header has {found} columns, expected at least {columns}"),
                ));
            }
            Ok((path, reader))
        };
        let (path, mut images) = read("images.csv", 2)?;
        let mut image_ids = Vec::new();
        let mut image_paths = Vec::new();
        for record in images.records() {
            let record = record.map_err(|e| bad(&path, e.to_string()))?;
            image_ids.push(record[0].to_string());
            image_paths.push(data_dir.join(&record[1]));
        }
        let index: std::collections::HashMap<&str, usize> = image_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let (path, mut texts) = read("texts.csv", 3)?;
        let (mut text_ids, mut captions, mut text_image) = (Vec::new(), Vec::new(), Vec::new());
        for record in texts.records() {
            let record = record.map_err(|e| bad(&path, e.to_string()))?;
            let image = *index.get(&record[1]).ok_or_else(|| {
                bad(
                    &path,
                    format!("text {} names unknown image {}", &record[0], &record[1]),
                )
            })?;
            text_ids.push(record[0].to_string());
            text_image.push(image);
            captions.push(record[2].to_string());
        }
        let (path, mut parts) = read("partitions.csv", 2)?;
        let names: Vec<String> = parts
            .headers()
            .map_err(|e| bad(&path, e.to_string()))?
            .iter()
            .skip(1)
            .map(str::to_string)
            .collect();
        let mut partitions: Vec<Partition> = names
            .into_iter()
            .map(|name| Partition {
                name,
                parts: Vec::with_capacity(image_ids.len()),
            })
            .collect();
        for record in parts.records() {
            let record = record.map_err(|e| bad(&path, e.to_string()))?;
            for (p, value) in partitions.iter_mut().zip(record.iter().skip(1)) {
                p.parts
                    .push(value.parse().map_err(|e: String| bad(&path, e))?);
            }
        }
        if let Some(p) = partitions.iter().find(|p| p.parts.len() != image_ids.len()) {
            return Err(bad(
                &path,
                format!(
                    "partition {} has {} rows, images.csv {}",
                    p.name,
                    p.parts.len(),
                    image_ids.len()
                ),
            ));
        }
        // The extra training images are the last rows; the manifest counts them.
        let extra_training_images = match crate::pipeline::manifest::Manifest::load(dir)? {
            Some(manifest) => manifest
                .summary
                .get("extra_training")
                .and_then(|extra| extra["images_usable"].as_u64())
                .unwrap_or(0) as usize,
            None => 0,
        };
        if extra_training_images > image_ids.len() {
            return Err(bad(
                &dir.join("manifest.json"),
                format!(
                    "counts {extra_training_images} extra training images, but images.csv has {}",
                    image_ids.len()
                ),
            ));
        }
        Ok(Self {
            image_ids,
            image_paths,
            text_ids,
            captions,
            text_image,
            partitions,
            extra_training_images,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::{ImageEntry, TextEntry};

    /// Three images with a split of their own (train, test, train), two captions each.
    fn dataset() -> Dataset {
        let mut d = Dataset {
            predefined: Some(vec![Part::Train, Part::Test, Part::Train]),
            ..Dataset::default()
        };
        for i in 0..3 {
            d.images.push(ImageEntry {
                id: format!("img{i}"),
                path: PathBuf::from(format!("img{i}.jpg")),
            });
            for c in 0..2 {
                d.pairs.push((i, d.texts.len()));
                d.texts.push(TextEntry {
                    id: format!("img{i}#{c}"),
                    caption: format!("caption {c} of image {i}"),
                });
            }
        }
        d
    }

    #[test]
    fn select_takes_the_named_parts_caps_the_captions_and_prefixes_the_ids() {
        let extra = ExtraTraining {
            prefix: "more".into(),
            captions_per_image: 1,
            ..ExtraTraining::default()
        };
        let chosen = extra.select(dataset()).unwrap();
        let ids: Vec<&str> = chosen.images.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(ids, ["more/img0", "more/img2"], "the test image stays out");
        let texts: Vec<&str> = chosen.texts.iter().map(|t| t.id.as_str()).collect();
        assert_eq!(texts, ["more/img0#0", "more/img2#0"]);
        assert_eq!(chosen.pairs, [(0, 0), (1, 1)]);
        assert_eq!(chosen.texts[1].caption, "caption 0 of image 2");

        let all = ExtraTraining {
            parts: vec![Part::Train, Part::Test],
            ..ExtraTraining::default()
        };
        let chosen = all.select(dataset()).unwrap();
        assert_eq!(chosen.images.len(), 3);
        assert_eq!(
            chosen.pairs.len(),
            6,
            "captions_per_image 0 keeps every caption"
        );

        let none = ExtraTraining {
            data: PathBuf::from("elsewhere"),
            parts: vec![Part::Validation],
            ..ExtraTraining::default()
        };
        let err = none.select(dataset()).unwrap_err().to_string();
        assert!(
            err.contains("elsewhere") && err.contains("validation"),
            "{err}"
        );
    }

    #[test]
    fn load_reads_the_split_and_names_a_file_cut_short() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write(
            "images.csv",
            "image_id,path,format,width,height\na,a.jpg,jpeg,8,8\nb,b.jpg,png,8,8\n",
        );
        write(
            "texts.csv",
            "text_id,image_id,caption\nt0,a,一只猫\nt1,b,\"two, words\"\n",
        );
        write("partitions.csv", "image_id,main\na,train\nb,test\n");
        let split = SplitArtifacts::load(dir.path(), Path::new("data")).unwrap();
        assert_eq!(split.image_paths[1], Path::new("data").join("b.jpg"));
        assert_eq!(split.text_image, [0, 1]);
        assert_eq!(split.captions[1], "two, words");
        assert_eq!(split.partitions[0].parts, [Part::Train, Part::Test]);

        // A texts.csv without its caption column used to panic on the row's third field.
        write("texts.csv", "text_id,image_id\nt0,a\n");
        let err = SplitArtifacts::load(dir.path(), Path::new("data"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("texts.csv") && err.contains("the header has 2 columns"),
            "{err}"
        );
        write("texts.csv", "text_id,image_id,caption\nt0,a,x\n");
        // A partitions.csv without a partition column (indexed later), or with a row missing.
        write("partitions.csv", "image_id\na\nb\n");
        let err = SplitArtifacts::load(dir.path(), Path::new("data"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("the header has 1 columns"), "{err}");
        write("partitions.csv", "image_id,main\na,train\n");
        let err = SplitArtifacts::load(dir.path(), Path::new("data"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("partitions.csv")
                && err.contains("partition main has 1 rows, images.csv 2"),
            "{err}"
        );
    }
}
