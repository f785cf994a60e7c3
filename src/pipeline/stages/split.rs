//! `split`: read the dataset, check every image decodes, and fix the split.
//!
//! Outputs: `images.csv` (the usable images: id, path, format, size), `texts.csv` (every
//! caption of a usable image, with its image id), `partitions.csv` (each image's part in each
//! partition: `main`, or `fold-0` … `fold-<k-1>`), and the ids files. Missing and undecodable
//! images are reported by id and reason and left out, with their captions; the manifest counts
//! them. Every later stage reads these files, so every stage and every user sees the same split.

use std::path::{Path, PathBuf};

use rayon::prelude::*;
use serde::Serialize;

use crate::data::split::{Partition, SplitParams, partitions};
use crate::data::{self, Dataset, Layout, Part};
use crate::error::{Error, IoError};
use crate::pipeline::artifacts::atomic_write;
use crate::pipeline::manifest::InputFingerprint;
use crate::pipeline::{Context, PipelineError, Stage, StageWriter};

/// The `split` stage.
pub struct SplitStage;

/// The parameters the fingerprint covers.
#[derive(Debug, Serialize)]
struct SplitStageParams {
    layout: Layout,
    captions: Option<String>,
    split: SplitParams,
}

fn load_dataset(ctx: &Context) -> Result<Dataset, Error> {
    let pipeline = &ctx.config.pipeline;
    Ok(match pipeline.layout {
        Layout::Teddy => data::teddy::load_attachment1(&ctx.data_dir)?,
        Layout::Flickr8k => {
            data::flickr8k::load(&ctx.data_dir, pipeline.captions.as_deref().unwrap_or("zhc"))?
        }
    })
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
        &["split"]
    }
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error> {
        let split: SplitParams = ctx.config.section("split")?;
        split.check()?;
        let params = SplitStageParams {
            layout: ctx.config.pipeline.layout,
            captions: ctx.config.pipeline.captions.clone(),
            split,
        };
        Ok(serde_json::to_value(params).expect("serialisable"))
    }

    fn inputs(&self, ctx: &Context) -> Result<Vec<InputFingerprint>, Error> {
        let dataset = load_dataset(ctx)?;
        let mut inputs = dataset
            .source_files
            .iter()
            .map(|p| InputFingerprint::of_file(p))
            .collect::<Result<Vec<_>, _>>()?;
        let mut paths: Vec<PathBuf> = dataset.images.iter().map(|i| i.path.clone()).collect();
        paths.extend(dataset.missing_images.iter().map(|(_, p)| p.clone()));
        inputs.push(InputFingerprint::of_collection("images", &paths));
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

        // Keep the images that decode; renumber the pairs.
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

        let partitions = partitions(&kept, &split)?;
        write_split(out, &kept, &kept_checks, &partitions)?;

        let mut formats = std::collections::BTreeMap::<String, usize>::new();
        for check in &kept_checks {
            *formats.entry(check.format.clone()).or_default() += 1;
        }
        out.summary("captions_read", dataset.texts.len());
        out.summary(
            "images_listed",
            dataset.images.len() + dataset.missing_images.len(),
        );
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

fn csv_error(path: &Path, e: csv::Error) -> std::io::Error {
    std::io::Error::other(format!("{}: {e}", path.display()))
}

fn write_split(
    out: &mut StageWriter,
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
                &image.path.display().to_string(),
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
        "usable images: id, path, format, original size",
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
    pub image_ids: Vec<String>,
    pub image_paths: Vec<PathBuf>,
    pub text_ids: Vec<String>,
    pub captions: Vec<String>,
    /// The image index of each text.
    pub text_image: Vec<usize>,
    pub partitions: Vec<Partition>,
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

    /// Reads the artifacts of a committed `split` folder.
    pub fn load(dir: &Path) -> Result<Self, PipelineError> {
        let bad = |path: &Path, message: String| PipelineError::BadArtifact {
            path: path.to_path_buf(),
            message,
        };
        let read = |name: &str| -> Result<(PathBuf, csv::Reader<std::fs::File>), PipelineError> {
            let path = dir.join(name);
            let file = std::fs::File::open(&path).map_err(|e| IoError::new("opening", &path, e))?;
            Ok((path, csv::Reader::from_reader(file)))
        };
        let (path, mut images) = read("images.csv")?;
        let mut image_ids = Vec::new();
        let mut image_paths = Vec::new();
        for record in images.records() {
            let record = record.map_err(|e| bad(&path, e.to_string()))?;
            image_ids.push(record[0].to_string());
            image_paths.push(PathBuf::from(&record[1]));
        }
        let index: std::collections::HashMap<&str, usize> = image_ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let (path, mut texts) = read("texts.csv")?;
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
        let (path, mut parts) = read("partitions.csv")?;
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
        Ok(Self {
            image_ids,
            image_paths,
            text_ids,
            captions,
            text_image,
            partitions,
        })
    }
}
