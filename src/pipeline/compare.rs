//! `compare` and `comparison`: other models' embeddings scored on our split with our metric,
//! and the side-by-side table of every model (`docs/comparison.md` and a plot).
//!
//! `compare` takes an image matrix and a text matrix (`.npy`, one row per id of an ids file,
//! e.g. from Chinese-CLIP run elsewhere) and scores them with the very function `evaluate`
//! uses ([`super::stages::evaluate::evaluate_partition`]), so handed our own CCA embeddings it
//! gives exactly `evaluate`'s numbers. Its reports land in `work/<pipeline>/compare/<name>/`.
//!
//! `comparison` gathers the reports of CCA (`evaluate`), the neural baselines (`dual-encoder`,
//! `mlp-fusion`) and every `compare` run of one or more pipelines, with their costs read from
//! the stage manifests, adds published reference rows (marked as such), and renders a
//! Markdown table and an SVG bar chart.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use ndarray::Array2;
use serde_json::Value;

use super::artifacts::{atomic_write, read_dense, read_ids};
use super::manifest::Machine;
use super::stages::evaluate::{EvaluateParams, RankStageParams, evaluate_partition, report_extra};
use super::stages::fusion::Embeddings;
use super::stages::split::SplitArtifacts;
use super::{Context, Manifest, PipelineError};
use crate::data::Part;
use crate::error::Error;
use crate::matrix::first_non_finite;
use crate::retrieval::evaluate::Summary;
use crate::retrieval::l2_normalize_rows;
use crate::retrieval::report::write_reports;

/// Embeddings computed elsewhere: rows of `images` are `image_ids`, rows of `texts` are
/// `text_ids` (ids as in the split: image file names, caption ids).
#[derive(Debug, Clone)]
pub struct ExternalEmbeddings {
    /// Image embeddings, one row per entry of `image_ids`.
    pub images: Array2<f32>,
    /// Image ids, in row order.
    pub image_ids: Vec<String>,
    /// Text embeddings, one row per entry of `text_ids`, as many columns as `images`.
    pub texts: Array2<f32>,
    /// Caption ids, in row order.
    pub text_ids: Vec<String>,
    /// Where they came from, for the report.
    pub sources: Vec<String>,
}

impl ExternalEmbeddings {
    /// Reads the two matrices and their ids files; rows and ids must agree in number.
    pub fn load(
        images: &Path,
        image_ids: &Path,
        texts: &Path,
        text_ids: &Path,
    ) -> Result<Self, PipelineError> {
        let read =
            |matrix: &Path, ids: &Path| -> Result<(Array2<f32>, Vec<String>), PipelineError> {
                let m = read_dense(matrix)?;
                let ids_list = read_external_ids(ids)?;
                if m.nrows() != ids_list.len() {
                    return Err(PipelineError::Invalid(format!(
                        "{} has {} rows but {} lists {} ids",
                        matrix.display(),
                        m.nrows(),
                        ids.display(),
                        ids_list.len()
                    )));
                }
                if let Some((row, col)) = first_non_finite(&m.view()) {
                    return Err(PipelineError::Invalid(format!(
                        "{} row {row} (id {}) holds {} at column {col}",
                        matrix.display(),
                        ids_list[row],
                        m[[row, col]]
                    )));
                }
                let mut seen = std::collections::HashSet::new();
                if let Some(id) = ids_list.iter().find(|id| !seen.insert(id.as_str())) {
                    return Err(PipelineError::Invalid(format!(
                        "{} lists id {id} twice",
                        ids.display()
                    )));
                }
                Ok((m, ids_list))
            };
        let (images_m, image_ids_v) = read(images, image_ids)?;
        let (texts_m, text_ids_v) = read(texts, text_ids)?;
        if images_m.ncols() != texts_m.ncols() {
            return Err(PipelineError::Invalid(format!(
                "image embeddings have {} columns, text embeddings {}: they must share one space",
                images_m.ncols(),
                texts_m.ncols()
            )));
        }
        Ok(Self {
            images: images_m,
            image_ids: image_ids_v,
            texts: texts_m,
            text_ids: text_ids_v,
            sources: [images, image_ids, texts, text_ids]
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        })
    }

    /// The embeddings in the layout `evaluate` reads: images as given, texts in split order.
    /// Every caption of the evaluated part must have a row; others missing get a zero row
    /// (they only serve as CSLS references). Rows are L2-normalised. Also returns the images of
    /// the evaluated part (with a caption) that have no row: they are left out of the scores,
    /// as `evaluate` leaves out the images its features could not describe; when more than
    /// half are missing, the ids are taken to be of another kind and it is an error.
    fn aligned(
        &self,
        split: &SplitArtifacts,
        part: Part,
    ) -> Result<(Embeddings, Vec<String>), PipelineError> {
        let has_row: std::collections::HashSet<&str> =
            self.image_ids.iter().map(String::as_str).collect();
        let mut evaluated_images = vec![false; split.image_ids.len()];
        for &image in &split.text_image {
            evaluated_images[image] |= split.partitions.iter().any(|p| p.parts[image] == part);
        }
        let evaluated: Vec<&str> = (0..split.image_ids.len())
            .filter(|&i| evaluated_images[i])
            .map(|i| split.image_ids[i].as_str())
            .collect();
        let without_row: Vec<String> = evaluated
            .iter()
            .filter(|id| !has_row.contains(**id))
            .map(|id| id.to_string())
            .collect();
        if !evaluated.is_empty() && 2 * without_row.len() > evaluated.len() {
            return Err(PipelineError::Invalid(format!(
                "{} of the {} images of the {} part have no row in the image embeddings \
                 (first: {}; the image ids file lists e.g. {}): the ids must be the split's \
                 image ids (split/image_ids.txt)",
                without_row.len(),
                evaluated.len(),
                part.as_str(),
                without_row[..without_row.len().min(3)].join(", "),
                self.image_ids
                    .first()
                    .map_or("nothing".to_string(), |id| format!("{id:?}")),
            )));
        }
        let row_of: HashMap<&str, usize> = self
            .text_ids
            .iter()
            .enumerate()
            .map(|(r, id)| (id.as_str(), r))
            .collect();
        let mut texts = Array2::zeros((split.text_ids.len(), self.texts.ncols()));
        for (t, id) in split.text_ids.iter().enumerate() {
            match row_of.get(id.as_str()) {
                Some(&r) => texts.row_mut(t).assign(&self.texts.row(r)),
                None => {
                    let image = split.text_image[t];
                    if evaluated_images[image] {
                        return Err(PipelineError::Invalid(format!(
                            "caption {id} (of image {}, in the {} part) has no row in the text embeddings",
                            split.image_ids[image],
                            part.as_str()
                        )));
                    }
                }
            }
        }
        let mut images = self.images.clone();
        l2_normalize_rows(&mut images);
        l2_normalize_rows(&mut texts);
        let embeddings = Embeddings {
            images,
            image_rows: self.image_ids.clone(),
            texts,
        };
        Ok((embeddings, without_row))
    }
}

/// Reads an ids file written by another tool: one id a line, a byte-order mark and trailing
/// white space (a Windows line end included) taken off, blank lines at the end ignored.
fn read_external_ids(path: &Path) -> Result<Vec<String>, PipelineError> {
    let mut ids: Vec<String> = read_ids(path)?
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let id = if i == 0 {
                id.trim_start_matches('\u{feff}')
            } else {
                &id
            };
            id.trim_end().to_string()
        })
        .collect();
    while ids.last().is_some_and(String::is_empty) {
        ids.pop();
    }
    Ok(ids)
}

/// A CCA variant of a pipeline for the comparison: the pipeline with some parameters changed
/// (`set`, as `--set` takes them), run in `work/<pipeline>/variants/<name>/` on the same
/// split and features. A pipeline file's `[comparison] variants = [{ name = ..., set = [...] }]`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Variant {
    /// The variant's name: its folder under `variants/` and its label in the table.
    pub name: String,
    /// Overrides as `--set` takes them, `section.key=value`.
    pub set: Vec<String>,
}

/// The `[comparison]` section.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ComparisonParams {
    /// The CCA variants to add to the comparison (none by default).
    pub variants: Vec<Variant>,
}

impl Variant {
    /// Checks the name (a folder name).
    pub fn check(&self) -> Result<(), PipelineError> {
        check_name(&self.name)
    }
}

/// Makes `to/<stage>` a copy of `from/<stage>` made of hard links (plain copies where the file
/// system refuses), for each of `stages` that `from` has: replacing a different one when
/// `replace`, only where `to` has none otherwise. The engine never changes a file of a
/// committed stage folder in place (it swaps in a new folder, and rewrites a manifest through
/// a new file renamed over it), so the shared files never change under the other work folder;
/// a linked stage whose parameters differ in `to` is simply stale there.
pub fn link_stages(from: &Path, to: &Path, stages: &[&str], replace: bool) -> Result<(), Error> {
    fn link_tree(src: &Path, dst: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dst)?;
        for entry in std::fs::read_dir(src)? {
            let entry = entry?;
            let target = dst.join(entry.file_name());
            if entry.file_type()?.is_dir() {
                link_tree(&entry.path(), &target)?;
            } else if std::fs::hard_link(entry.path(), &target).is_err() {
                std::fs::copy(entry.path(), &target)?;
            }
        }
        Ok(())
    }
    for stage in stages {
        let src = from.join(stage);
        if !src.join(super::manifest::MANIFEST_FILE).is_file() {
            continue;
        }
        let dst = to.join(stage);
        if !replace && dst.exists() {
            continue;
        }
        let same = match (Manifest::load(&src)?, Manifest::load(&dst).ok().flatten()) {
            (Some(a), Some(b)) => a.fingerprint == b.fingerprint,
            _ => false,
        };
        if same {
            continue;
        }
        if dst.exists() {
            std::fs::remove_dir_all(&dst)
                .map_err(|e| crate::error::IoError::new("removing", &dst, e))?;
        }
        link_tree(&src, &dst).map_err(|e| crate::error::IoError::new("linking", &dst, e))?;
    }
    Ok(())
}

/// Checks a model name used as a folder name.
fn check_name(name: &str) -> Result<(), PipelineError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && !name.starts_with('.');
    if ok {
        Ok(())
    } else {
        Err(PipelineError::Invalid(format!(
            "model name {name:?} must be 1-64 of A-Z a-z 0-9 - _ . (not starting with .)"
        )))
    }
}

/// Scores external embeddings on the split of `ctx` (which must have run) exactly as
/// `evaluate` does; writes `compare/<name>/report.{json,md}` and `recall_curve.png`.
pub fn compare_embeddings(
    ctx: &Context,
    name: &str,
    external: &ExternalEmbeddings,
) -> Result<(Summary, PathBuf), Error> {
    check_name(name)?;
    let params: EvaluateParams = ctx.config.section("evaluate")?;
    let rank: RankStageParams = ctx.config.section("rank")?;
    let split = SplitArtifacts::load(&ctx.stage_dir("split"), &ctx.data_dir)?;
    let (embeddings, without_row) = external.aligned(&split, params.part)?;
    let mut evaluations = Vec::new();
    let mut per_partition = serde_json::Map::new();
    for partition in &split.partitions {
        let (evaluation, detail) =
            evaluate_partition(&split, partition, &embeddings, &params, &rank.rank)?;
        per_partition.insert(partition.name.clone(), detail);
        evaluations.push(evaluation);
    }
    let summary = Summary::from_folds(&evaluations)?;
    let mut extra = report_extra(
        &ctx.config.pipeline.name,
        &split,
        per_partition,
        params.part,
    );
    extra.insert("model".into(), name.into());
    extra.insert("sources".into(), external.sources.clone().into());
    extra.insert("images_without_rows".into(), without_row.len().into());
    let first: Vec<String> = without_row.iter().take(20).cloned().collect();
    extra.insert("images_without_rows_first".into(), first.into());
    let dir = ctx.work_dir.join("compare").join(name);
    std::fs::create_dir_all(&dir).map_err(|e| crate::error::IoError::new("creating", &dir, e))?;
    let title = format!("crossmodal — {} — {name}", ctx.config.pipeline.name);
    write_reports(&dir, &summary, &title, Some(&extra))?;
    Ok((summary, dir))
}

/// One line of the comparison table.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparisonRow {
    /// The method's name, the table's first column.
    pub method: String,
    /// R@1, R@5, R@10 in percent (means over folds).
    pub text_to_image: [f64; 3],
    /// The same for image → text.
    pub image_to_text: [f64; 3],
    /// Folds the report averages over (1 where it does not say).
    pub folds: usize,
    /// Seconds to train the fusion model, per partition, where known.
    pub train_seconds: Option<f64>,
    /// Milliseconds to bring one image / one caption from its file into the shared space.
    pub embed_ms_per_image: Option<f64>,
    /// Milliseconds to bring one caption from its file into the shared space, where known.
    pub embed_ms_per_text: Option<f64>,
    /// Bytes of the model's files for one partition, where known.
    pub model_bytes: Option<u64>,
    /// The notes column (parameters, or what the model learns).
    pub note: String,
}

fn read_json(path: &Path) -> Result<Option<Value>, PipelineError> {
    match std::fs::read_to_string(path) {
        Ok(text) => serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| PipelineError::Invalid(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(crate::error::IoError::new("reading", path, e).into()),
    }
}

fn recalls(report: &Value, direction: &str) -> [f64; 3] {
    let r = |k: &str| report[direction][k].as_f64().unwrap_or(f64::NAN) * 100.0;
    [r("r1"), r("r5"), r("r10")]
}

/// The manifest of `stage`, where the stage has run and its manifest reads.
fn stage_manifest(ctx: &Context, stage: &str) -> Option<Manifest> {
    Manifest::load(&ctx.stage_dir(stage)).ok().flatten()
}

fn stage_seconds(ctx: &Context, stage: &str) -> Option<f64> {
    stage_manifest(ctx, stage).map(|m| m.wall_seconds)
}

/// The machine `stage` ran on, where its manifest records one.
pub fn stage_machine(ctx: &Context, stage: &str) -> Option<Machine> {
    stage_manifest(ctx, stage).and_then(|m| m.machine)
}

fn stage_bytes(ctx: &Context, stage: &str, filter: &dyn Fn(&str) -> bool) -> Option<u64> {
    stage_manifest(ctx, stage).map(|m| {
        m.outputs
            .iter()
            .filter(|o| filter(&o.file))
            .map(|o| o.bytes)
            .sum()
    })
}

/// Milliseconds per image and per caption of the feature stages (decode, fit and describe),
/// per partition (the stages fit and describe once per partition).
fn feature_ms(ctx: &Context, split: &SplitArtifacts) -> (Option<f64>, Option<f64>) {
    let partitions = split.partitions.len().max(1);
    let per = |stage: &str, n: usize| {
        stage_seconds(ctx, stage).map(|s| s * 1e3 / (n * partitions).max(1) as f64)
    };
    (
        per("image-features", split.image_ids.len()),
        per("text-features", split.text_ids.len()),
    )
}

fn add(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? + b?)
}

/// The measured rows of one pipeline: CCA, the neural baselines and `compare` runs that
/// have reports in its work folder.
pub fn measured_rows(ctx: &Context) -> Result<Vec<ComparisonRow>, Error> {
    let split = SplitArtifacts::load(&ctx.stage_dir("split"), &ctx.data_dir)?;
    let (feat_image_ms, feat_text_ms) = feature_ms(ctx, &split);
    let mut rows = Vec::new();
    let row_of = |report: &Value, method: String| ComparisonRow {
        method,
        text_to_image: recalls(report, "text_to_image"),
        image_to_text: recalls(report, "image_to_text"),
        folds: report["folds"].as_u64().unwrap_or(1) as usize,
        train_seconds: None,
        embed_ms_per_image: None,
        embed_ms_per_text: None,
        model_bytes: None,
        note: String::new(),
    };
    if let Some(report) = read_json(&ctx.stage_dir("evaluate").join("report.json"))? {
        let mut row = row_of(&report, "CCA (classical features, this tool)".into());
        let partitions = split.partitions.len().max(1) as f64;
        row.train_seconds = stage_seconds(ctx, "fit").map(|s| s / partitions);
        let embed_s = stage_seconds(ctx, "embed").map(|s| s / partitions);
        let items = (split.image_ids.len() + split.text_ids.len()).max(1) as f64;
        let projection_ms = embed_s.map(|s| s * 1e3 / items);
        row.embed_ms_per_image = add(feat_image_ms, projection_ms);
        row.embed_ms_per_text = add(feat_text_ms, projection_ms);
        row.model_bytes = stage_bytes(ctx, "fit", &|_| true)
            .zip(stage_bytes(ctx, "image-features", &|f| {
                f.contains("/model/")
            }))
            .zip(stage_bytes(ctx, "text-features", &|f| {
                f.contains("/model/")
            }))
            .map(|((a, b), c)| (a + b + c) / partitions as u64);
        row.note = format!(
            "fit {}",
            describe_params(
                &report_params(ctx, "fit"),
                &[
                    "dims",
                    "ridge_x",
                    "ridge_y",
                    "eigen_power",
                    "include_validation"
                ]
            )
        );
        rows.push(row);
    }
    for (stage, uses_features) in [
        ("mlp-fusion", true),
        ("dual-encoder", false),
        ("profiles", true),
    ] {
        let Some(report) = read_json(&ctx.stage_dir(stage).join("report.json"))? else {
            continue;
        };
        let method = report["model"].as_str().unwrap_or(stage).to_string();
        let mut row = row_of(&report, method);
        let costs = &report["costs"];
        row.train_seconds = costs["train_seconds"].as_f64();
        row.embed_ms_per_image = costs["embed_ms_per_image"].as_f64();
        row.embed_ms_per_text = costs["embed_ms_per_text"].as_f64();
        if uses_features {
            row.embed_ms_per_image = add(row.embed_ms_per_image, feat_image_ms);
            row.embed_ms_per_text = add(row.embed_ms_per_text, feat_text_ms);
        }
        row.model_bytes = costs["model_bytes"].as_u64();
        row.note = match costs["anchors"].as_u64() {
            Some(anchors) => format!("nothing learnt; {anchors} training images as anchors"),
            None => format!(
                "{} parameters",
                costs["parameters"]
                    .as_u64()
                    .map(|n| n.to_string())
                    .unwrap_or_default()
            ),
        };
        rows.push(row);
    }
    let compare_dir = ctx.work_dir.join("compare");
    if let Ok(entries) = std::fs::read_dir(&compare_dir) {
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for dir in names {
            if let Some(report) = read_json(&dir.join("report.json"))? {
                let name = report["model"].as_str().unwrap_or("external").to_string();
                let mut row = row_of(&report, format!("{name} (external embeddings)"));
                row.note = "scored by `crossmodal compare`".into();
                rows.push(row);
            }
        }
    }
    Ok(rows)
}

fn report_params(ctx: &Context, stage: &str) -> Value {
    stage_manifest(ctx, stage)
        .map(|m| m.params)
        .unwrap_or(Value::Null)
}

fn describe_params(params: &Value, keys: &[&str]) -> String {
    keys.iter()
        .filter_map(|k| params.get(*k).map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A published result, quoted for scale (not measured here).
#[derive(Debug, Clone, PartialEq)]
pub struct PublishedRow {
    /// The model, as the source names it.
    pub model: &'static str,
    /// The dataset and part it was scored on.
    pub dataset: &'static str,
    /// How it was trained for that dataset (`zero-shot`, `fine-tuned`, ...).
    pub setting: &'static str,
    /// R@1, R@5, R@10 (percent); `None` where the source gives no figure.
    pub text_to_image: [Option<f64>; 3],
    /// The same for image → text.
    pub image_to_text: [Option<f64>; 3],
    /// Where the figures are published.
    pub source: &'static str,
}

/// Reference rows from the literature.
pub fn published_rows() -> Vec<PublishedRow> {
    vec![
        PublishedRow {
            model: "Chinese-CLIP ViT-H/14",
            dataset: "Flickr30K-CN test (1,000 images)",
            setting: "zero-shot",
            text_to_image: [Some(71.2), Some(91.4), Some(95.5)],
            image_to_text: [Some(81.6), Some(97.5), Some(98.8)],
            source: "Yang et al. 2022, arXiv:2211.01335; OFA-Sys/Chinese-CLIP README",
        },
        PublishedRow {
            model: "Chinese-CLIP ViT-H/14",
            dataset: "Flickr30K-CN test (1,000 images)",
            setting: "fine-tuned",
            text_to_image: [Some(83.8), Some(96.9), Some(98.6)],
            image_to_text: [Some(95.3), Some(99.7), Some(100.0)],
            source: "Yang et al. 2022, arXiv:2211.01335; OFA-Sys/Chinese-CLIP README",
        },
        PublishedRow {
            model: "Chinese-CLIP ViT-H/14",
            dataset: "MUGE validation (text → image only)",
            setting: "zero-shot",
            text_to_image: [Some(63.0), Some(84.1), Some(89.2)],
            image_to_text: [None, None, None],
            source: "Yang et al. 2022, arXiv:2211.01335; OFA-Sys/Chinese-CLIP README",
        },
        PublishedRow {
            model: "Chinese-CLIP RN50 (77M parameters)",
            dataset: "MUGE validation (text → image only)",
            setting: "zero-shot",
            text_to_image: [Some(42.6), Some(68.6), Some(77.9)],
            image_to_text: [None, None, None],
            source: "OFA-Sys/Chinese-CLIP Results.md",
        },
        PublishedRow {
            model: "Hodosh et al. 2013, kernel CCA",
            dataset: "Flickr8K test (1,000 images), English captions",
            setting: "trained on Flickr8K",
            text_to_image: [Some(7.6), Some(20.7), Some(30.1)],
            image_to_text: [Some(8.3), Some(21.6), Some(30.3)],
            source: "Hodosh, Young & Hockenmaier 2013, JAIR 47; figures as tabulated by Karpathy et al. 2014 (NIPS), Table 1",
        },
    ]
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.filter(|x| x.is_finite())
        .map(|x| format!("{x:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn bytes(v: Option<u64>) -> String {
    match v {
        None => "–".into(),
        Some(b) if b >= 1 << 20 => format!("{:.1} MiB", b as f64 / (1 << 20) as f64),
        Some(b) => format!("{:.0} KiB", b as f64 / 1024.0),
    }
}

/// One dataset's measured rows.
#[derive(Debug, Clone)]
pub struct DatasetRows {
    /// The heading of its table.
    pub title: String,
    /// How it was evaluated (split, folds, queries), one line.
    pub protocol: String,
    /// The measured rows, in table order.
    pub rows: Vec<ComparisonRow>,
}

/// The Markdown comparison: one table per dataset, then the published rows.
pub fn render_markdown(datasets: &[DatasetRows], command: &str, plot: Option<&str>) -> String {
    let mut s = String::new();
    s.push_str("# Comparison: classical CCA and neural baselines\n\n");
    let _ = writeln!(
        s,
        "Generated by `{command}` from the artifacts in the work folders; do not edit by hand.\n\
         Every measured row is scored by the same code on the same split (R@K in percent, mean over\n\
         folds where there are folds). Training time is the fusion model's, per partition (CCA fit,\n\
         MLP or dual-encoder training; for the similarity profiles, which learn nothing, taking\n\
         the anchors); the classical features' own fitting (vocabularies, TF-IDF) is counted in\n\
         the time to embed one item instead, which runs from the raw file to the shared space:\n\
         for CCA, the MLP fusion and the profiles the feature stages' time per item and\n\
         partition, vocabulary fitting included; for the dual encoder the forward pass, without\n\
         the one-off decode to 72 px. Timings are wall-clock on the machine that ran them, which\n\
         may have been running other jobs too: read them as upper bounds. Every row is\n\
         reproducible for a fixed seed on one machine. Matrix kernels are chosen for the CPU, so\n\
         on another CPU the products round differently: the neural rows can move a little, and a\n\
         CCA row by a query or two whose scores nearly tie (docs/results.md). Each dataset names\n\
         the machine its CCA fit ran on.\n"
    );
    if let Some(plot) = plot {
        let _ = writeln!(s, "![R@10 of every measured method]({plot})\n");
    }
    for d in datasets {
        let _ = writeln!(s, "## {}\n\n{}\n", d.title, d.protocol);
        s.push_str("| method | t→i R@1 | R@5 | R@10 | i→t R@1 | R@5 | R@10 | train s | embed ms/image | embed ms/caption | model | notes |\n");
        s.push_str("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n");
        for r in &d.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                r.method,
                opt(Some(r.text_to_image[0]), 2),
                opt(Some(r.text_to_image[1]), 2),
                opt(Some(r.text_to_image[2]), 2),
                opt(Some(r.image_to_text[0]), 2),
                opt(Some(r.image_to_text[1]), 2),
                opt(Some(r.image_to_text[2]), 2),
                opt(r.train_seconds, 1),
                opt(r.embed_ms_per_image, 2),
                opt(r.embed_ms_per_text, 3),
                bytes(r.model_bytes),
                r.note.replace('|', "/"),
            );
        }
        s.push('\n');
    }
    s.push_str("## Published results, for scale (not measured here)\n\n");
    s.push_str("Other datasets, larger training sets and pretrained models: these rows say where the field\nis, not how the methods above would fare on our splits.\n\n");
    s.push_str(
        "| model | dataset | setting | t→i R@1 | R@5 | R@10 | i→t R@1 | R@5 | R@10 | source |\n",
    );
    s.push_str("|---|---|---|---:|---:|---:|---:|---:|---:|---|\n");
    for r in published_rows() {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            r.model,
            r.dataset,
            r.setting,
            opt(r.text_to_image[0], 1),
            opt(r.text_to_image[1], 1),
            opt(r.text_to_image[2], 1),
            opt(r.image_to_text[0], 1),
            opt(r.image_to_text[1], 1),
            opt(r.image_to_text[2], 1),
            r.source
        );
    }
    s
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A horizontal bar chart of R@10 (both directions) of every measured row, as SVG.
pub fn render_svg(datasets: &[DatasetRows]) -> String {
    let bar_h = 12.0;
    let label_w = 330.0;
    let plot_w = 420.0;
    let max = datasets
        .iter()
        .flat_map(|d| d.rows.iter())
        .flat_map(|r| [r.text_to_image[2], r.image_to_text[2]])
        .filter(|v| v.is_finite())
        .fold(10.0f64, f64::max);
    let scale = plot_w / (max * 1.1);
    let mut body = String::new();
    let mut y = 40.0;
    for d in datasets {
        let _ = writeln!(
            body,
            r#"<text x="10" y="{y:.0}" font-weight="bold">{}</text>"#,
            xml(&d.title)
        );
        y += 10.0;
        for r in &d.rows {
            let _ = writeln!(
                body,
                r#"<text x="{:.0}" y="{:.0}" text-anchor="end">{}</text>"#,
                label_w - 6.0,
                y + bar_h + 3.0,
                xml(&r.method)
            );
            for (i, (v, colour)) in [
                (r.text_to_image[2], "#1f77b4"),
                (r.image_to_text[2], "#ff7f0e"),
            ]
            .into_iter()
            .enumerate()
            {
                let v = if v.is_finite() { v } else { 0.0 };
                let by = y + i as f64 * bar_h;
                let _ = writeln!(
                    body,
                    r#"<rect x="{label_w:.0}" y="{by:.0}" width="{:.1}" height="{:.0}" fill="{colour}"/><text x="{:.1}" y="{:.0}" font-size="10">{v:.1}</text>"#,
                    v * scale,
                    bar_h - 2.0,
                    label_w + v * scale + 4.0,
                    by + bar_h - 3.0
                );
            }
            y += 2.0 * bar_h + 8.0;
        }
        y += 16.0;
    }
    let height = y + 10.0;
    let width = label_w + plot_w + 60.0;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0}" height="{height:.0}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="18" font-size="14">R@10 (%): <tspan fill="#1f77b4">text → image</tspan>, <tspan fill="#ff7f0e">image → text</tspan></text>
{body}</svg>
"##
    )
}

/// Writes `text` to `path` atomically.
pub fn write_text(path: &Path, text: &str) -> Result<(), PipelineError> {
    atomic_write(path, |w| {
        use std::io::Write;
        w.write_all(text.as_bytes())
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(method: &str, r10: f64) -> ComparisonRow {
        ComparisonRow {
            method: method.into(),
            text_to_image: [1.0, 5.0, r10],
            image_to_text: [2.0, 6.0, r10 + 1.0],
            folds: 1,
            train_seconds: Some(3.5),
            embed_ms_per_image: None,
            embed_ms_per_text: Some(0.01),
            model_bytes: Some(3 << 20),
            note: "a|b".into(),
        }
    }

    #[test]
    fn markdown_lists_every_row_and_the_published_ones() {
        let d = DatasetRows {
            title: "Toy".into(),
            protocol: "one split".into(),
            rows: vec![row("CCA", 12.0), row("MLP <x>", 8.0)],
        };
        let md = render_markdown(
            std::slice::from_ref(&d),
            "crossmodal comparison",
            Some("c.svg"),
        );
        assert!(md.contains("| CCA | 1.00 | 5.00 | 12.00 | 2.00 | 6.00 | 13.00 | 3.5 | – | 0.010 | 3.0 MiB | a/b |"), "{md}");
        assert!(md.contains("Chinese-CLIP"));
        assert!(md.contains("not measured here"));
        let svg = render_svg(&[d]);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("MLP &lt;x&gt;"));
        assert_eq!(svg.matches("<rect x=").count(), 4);
    }

    #[test]
    fn model_names_are_checked() {
        assert!(check_name("cn-clip_vit-b.16").is_ok());
        for bad in ["", "../x", ".hidden", "a b", "x/y"] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
