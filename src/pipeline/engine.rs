//! The stage engine: freshness, staging folders, atomic commits.
//!
//! A [`Stage`] declares its upstream stages, its parameters and its external inputs, and writes
//! its outputs through a [`StageWriter`] into a private staging folder. When it succeeds the
//! engine writes `manifest.json` there last, then swaps the staging folder into
//! `work/<pipeline>/<stage>/` with two renames; the previous good folder is removed only after
//! the new one is in place, so an interrupted run leaves either the old or the new artifacts,
//! never a mix (leftovers of an interrupted swap are recovered on the next start).
//!
//! A stage is fresh when the fingerprint it would have now (see [`manifest::fingerprint`])
//! matches its manifest and every output it recorded is there; otherwise it reruns, and since
//! the fingerprint of every downstream stage includes its upstream fingerprints, so does
//! everything downstream of it — make's rule.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use ndarray::Array2;
use serde::Serialize;

use super::PipelineError;
use super::artifacts;
use super::config::PipelineConfig;
use super::manifest::{
    self, FORMAT_VERSION, InputFingerprint, MANIFEST_FILE, Machine, Manifest, OutputRecord,
    SkipRecord,
};
use crate::error::{Error, IoError};
use crate::sparse::CsrMatrix;

/// Environment variable, for tests of interrupted runs: abort the process (as a kill would)
/// right after the N-th output file of a stage has been written.
pub const ABORT_AFTER_WRITES_ENV: &str = "CROSSMODAL_ABORT_AFTER_WRITES";

/// Pipeline-file sections read by commands rather than stages (`comparison`).
pub const TOOL_SECTIONS: &[&str] = &["comparison"];

/// What every stage gets to read: the configuration, folders and a progress bar factory.
#[derive(Debug, Clone)]
pub struct Context {
    /// The pipeline's configuration, whose sections the stages read.
    pub config: PipelineConfig,
    /// The data folder; [`Pipeline::new`] replaces it by its canonical path where it exists.
    pub data_dir: PathBuf,
    /// The work folder; each stage's artifacts are in the sub-folder of its name.
    pub work_dir: PathBuf,
    /// Whether progress bars are drawn (the caller decides; the library never prints).
    pub show_progress: bool,
}

impl Context {
    /// The folder of `stage`'s committed artifacts.
    pub fn stage_dir(&self, stage: &str) -> PathBuf {
        self.work_dir.join(stage)
    }

    /// The manifest of an upstream stage, which must have run.
    pub fn upstream_manifest(
        &self,
        stage: &str,
        upstream: &str,
    ) -> Result<Manifest, PipelineError> {
        Manifest::load(&self.stage_dir(upstream))?.ok_or_else(|| PipelineError::MissingUpstream {
            stage: stage.to_string(),
            upstream: upstream.to_string(),
        })
    }

    /// A progress bar over `len` items, drawn only when progress is shown.
    pub fn bar(&self, len: u64, message: &str) -> ProgressBar {
        if !self.show_progress {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(len);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:>18} [{bar:30}] {pos}/{len} {per_sec:>12} ETA {eta}",
            )
            .expect("valid template")
            .progress_chars("=> "),
        );
        bar.set_message(message.to_string());
        bar
    }
}

/// One stage of a pipeline.
pub trait Stage: Send + Sync {
    /// The stage's name: its subcommand and its folder.
    fn name(&self) -> &'static str;
    /// One line saying what it does.
    fn about(&self) -> &'static str;
    /// The stages whose artifacts it reads.
    fn upstream(&self) -> &'static [&'static str];
    /// The pipeline-file sections it reads.
    fn sections(&self) -> &'static [&'static str];
    /// Its parameters with defaults filled in: what the fingerprint covers.
    fn params(&self, ctx: &Context) -> Result<serde_json::Value, Error>;
    /// External files it reads (upstream artifacts are covered by upstream fingerprints).
    fn inputs(&self, _ctx: &Context) -> Result<Vec<InputFingerprint>, Error> {
        Ok(Vec::new())
    }
    /// Computes the outputs.
    fn run(&self, ctx: &Context, out: &mut StageWriter) -> Result<(), Error>;
    /// Whether `run` (every stage) includes it; optional stages run only when named.
    fn in_full_run(&self) -> bool {
        true
    }
}

/// Where a stage writes: a staging folder, plus the records that go into its manifest.
#[derive(Debug)]
pub struct StageWriter {
    dir: PathBuf,
    outputs: Vec<OutputRecord>,
    skipped: Vec<SkipRecord>,
    summary: serde_json::Map<String, serde_json::Value>,
    abort_after: Option<usize>,
}

impl StageWriter {
    fn new(dir: PathBuf) -> Self {
        let abort_after = std::env::var(ABORT_AFTER_WRITES_ENV)
            .ok()
            .and_then(|v| v.parse().ok());
        Self {
            dir,
            outputs: Vec::new(),
            skipped: Vec::new(),
            summary: serde_json::Map::new(),
            abort_after,
        }
    }

    /// The path of `file` in the staging folder, for outputs written by other means; call
    /// [`StageWriter::record`] once written.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn push(&mut self, mut record: OutputRecord) -> Result<(), PipelineError> {
        let path = self.dir.join(&record.file);
        record.bytes = std::fs::metadata(&path)
            .map_err(|e| IoError::new("reading metadata of", &path, e))?
            .len();
        self.outputs.retain(|o| o.file != record.file);
        self.outputs.push(record);
        if self.abort_after == Some(self.outputs.len()) {
            // Simulates a kill in the middle of a stage, for the tests of interrupted runs.
            std::process::abort();
        }
        Ok(())
    }

    /// Records a file already written into the staging folder.
    pub fn record(
        &mut self,
        file: &str,
        kind: &str,
        description: &str,
    ) -> Result<(), PipelineError> {
        self.push(OutputRecord {
            file: file.to_string(),
            kind: kind.to_string(),
            dtype: None,
            shape: Vec::new(),
            bytes: 0,
            rows: None,
            description: description.to_string(),
        })
    }

    /// Writes a dense float32 matrix; `rows` names the ids file of its rows.
    pub fn dense(
        &mut self,
        file: &str,
        matrix: &Array2<f32>,
        rows: Option<&str>,
        description: &str,
    ) -> Result<(), PipelineError> {
        artifacts::write_dense(&self.dir.join(file), matrix)?;
        self.record_dense(file, [matrix.nrows(), matrix.ncols()], rows, description)
    }

    /// Records a dense float32 matrix of `shape` written to `file`.
    fn record_dense(
        &mut self,
        file: &str,
        shape: [usize; 2],
        rows: Option<&str>,
        description: &str,
    ) -> Result<(), PipelineError> {
        self.push(OutputRecord {
            file: file.to_string(),
            kind: "dense".to_string(),
            dtype: Some("float32".to_string()),
            shape: shape.to_vec(),
            bytes: 0,
            rows: rows.map(str::to_string),
            description: description.to_string(),
        })
    }

    /// Starts a dense float32 matrix of `cols` columns to be written a block of rows at a time
    /// (for matrices too large to hold whole); hand it back to [`StageWriter::finish_dense`].
    pub fn dense_rows(
        &self,
        file: &str,
        cols: usize,
    ) -> Result<artifacts::DenseRowWriter, PipelineError> {
        artifacts::DenseRowWriter::create(&self.dir.join(file), cols)
    }

    /// Finishes a matrix started with [`StageWriter::dense_rows`] and records it, as
    /// [`StageWriter::dense`] does.
    pub fn finish_dense(
        &mut self,
        file: &str,
        writer: artifacts::DenseRowWriter,
        rows: Option<&str>,
        description: &str,
    ) -> Result<(), PipelineError> {
        let (n, cols) = writer.finish()?;
        self.record_dense(file, [n, cols], rows, description)
    }

    /// Writes a sparse matrix in scipy's CSR `.npz` layout.
    pub fn sparse(
        &mut self,
        file: &str,
        matrix: &CsrMatrix,
        rows: Option<&str>,
        description: &str,
    ) -> Result<(), PipelineError> {
        artifacts::write_sparse(&self.dir.join(file), matrix)?;
        self.push(OutputRecord {
            file: file.to_string(),
            kind: "sparse".to_string(),
            dtype: Some("float32".to_string()),
            shape: vec![matrix.n_rows(), matrix.n_cols()],
            bytes: 0,
            rows: rows.map(str::to_string),
            description: description.to_string(),
        })
    }

    /// Writes row ids, one per line.
    pub fn ids<S: AsRef<str>>(
        &mut self,
        file: &str,
        ids: &[S],
        description: &str,
    ) -> Result<(), PipelineError> {
        artifacts::write_ids(&self.dir.join(file), ids)?;
        self.push(OutputRecord {
            file: file.to_string(),
            kind: "ids".to_string(),
            dtype: None,
            shape: vec![ids.len()],
            bytes: 0,
            rows: None,
            description: description.to_string(),
        })
    }

    /// Writes a JSON document.
    pub fn json<T: Serialize>(
        &mut self,
        file: &str,
        value: &T,
        description: &str,
    ) -> Result<(), PipelineError> {
        artifacts::write_json(&self.dir.join(file), value)?;
        self.record(file, "json", description)
    }

    /// Notes an item left out, with a short reason class (`missing`, `truncated`, ...) and detail.
    pub fn skip(&mut self, id: &str, path: Option<&Path>, reason: &str) {
        self.skipped.push(SkipRecord {
            id: id.to_string(),
            path: path.map(|p| p.display().to_string()),
            reason: reason.to_string(),
        });
    }

    /// Adds a figure to the manifest's summary.
    pub fn summary<T: Serialize>(&mut self, key: &str, value: T) {
        self.summary.insert(
            key.to_string(),
            serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
        );
    }
}

/// Whether a stage needs to run, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    /// Its committed artifacts are what it would compute now; it need not run.
    Fresh,
    /// It must run, for these reasons (`never run`, `parameter dims changed`, ...).
    Stale(Vec<String>),
}

/// The status of one stage.
#[derive(Debug, Clone)]
pub struct StageStatus {
    /// The stage's name.
    pub name: &'static str,
    /// Whether it is fresh, or why not.
    pub freshness: Freshness,
}

/// What happened to one stage in a `make`.
#[derive(Debug, Clone)]
pub struct StageReport {
    /// The stage's name.
    pub name: &'static str,
    /// `None` when the stage was fresh and skipped; the reasons it ran otherwise.
    pub ran_because: Option<Vec<String>>,
    /// Its manifest: the one it just wrote, or the committed one when it was fresh.
    pub manifest: Manifest,
}

/// A pipeline: its stages in data-flow order, over one context.
pub struct Pipeline {
    ctx: Context,
    stages: Vec<Box<dyn Stage>>,
}

/// What a stage's fingerprint is made of, computed before it runs.
struct Planned {
    params: serde_json::Value,
    inputs: Vec<InputFingerprint>,
    upstream: BTreeMap<String, String>,
    fingerprint: String,
    /// The stage's committed manifest, if it has run (read once, for planning and freshness).
    recorded: Option<Manifest>,
    /// A collection input whose files only changed modification times: the manifest may
    /// record the new `stat` (see [`InputFingerprint::resolve`]).
    stat_refreshed: bool,
}

impl Pipeline {
    /// Builds a pipeline; refuses sections of the pipeline file that no stage reads, and
    /// recovers from a swap that an interrupted run left half done.
    ///
    /// The data folder is taken by its canonical path when it exists, so that `../data`,
    /// `./data/` and `/home/me/project/data` name the same inputs: the paths the stages record
    /// (and fingerprint) do not depend on how the folder was spelled or where the command ran.
    pub fn new(mut ctx: Context, stages: Vec<Box<dyn Stage>>) -> Result<Self, PipelineError> {
        if let Ok(canonical) = ctx.data_dir.canonicalize() {
            ctx.data_dir = canonical;
        }
        let known: Vec<&str> = stages
            .iter()
            .flat_map(|s| s.sections().iter().copied())
            .chain(TOOL_SECTIONS.iter().copied())
            .collect();
        if let Some(name) = ctx
            .config
            .sections
            .keys()
            .find(|n| !known.contains(&n.as_str()))
        {
            let mut known = known.clone();
            known.sort_unstable();
            known.dedup();
            return Err(PipelineError::UnknownSection {
                name: name.clone(),
                path: ctx.config.path.clone(),
                known: known.join(", "),
            });
        }
        let pipeline = Self { ctx, stages };
        pipeline.recover()?;
        Ok(pipeline)
    }

    /// The context the stages run with.
    pub fn context(&self) -> &Context {
        &self.ctx
    }

    /// The stages, in order.
    pub fn stages(&self) -> impl Iterator<Item = &dyn Stage> {
        self.stages.iter().map(|s| s.as_ref())
    }

    fn stage(&self, name: &str) -> Result<&dyn Stage, PipelineError> {
        self.stages()
            .find(|s| s.name() == name)
            .ok_or_else(|| PipelineError::UnknownStage {
                name: name.to_string(),
                known: self
                    .stages()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// Removes staging folders of interrupted runs; puts back a previous folder whose swap
    /// was interrupted between its two renames.
    fn recover(&self) -> Result<(), PipelineError> {
        let Ok(entries) = std::fs::read_dir(&self.ctx.work_dir) else {
            return Ok(());
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_string();
            let path = entry.path();
            if let Some(rest) = name.strip_prefix('.') {
                if rest.contains(".staging-") {
                    std::fs::remove_dir_all(&path)
                        .map_err(|e| IoError::new("removing", &path, e))?;
                } else if let Some((stage, _)) = rest.split_once(".old-") {
                    let live = self.ctx.stage_dir(stage);
                    if live.exists() {
                        std::fs::remove_dir_all(&path)
                            .map_err(|e| IoError::new("removing", &path, e))?;
                    } else {
                        std::fs::rename(&path, &live)
                            .map_err(|e| IoError::new("restoring", &live, e))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Computes what `stage` would be fingerprinted as, given the fingerprints of its upstream
    /// stages (`None` for an upstream that is stale).
    fn plan(
        &self,
        stage: &dyn Stage,
        prints: &BTreeMap<&str, Option<String>>,
    ) -> Result<Result<Planned, Vec<String>>, Error> {
        let params = stage.params(&self.ctx)?;
        let mut stale_upstream = Vec::new();
        let mut upstream = BTreeMap::new();
        for &up in stage.upstream() {
            match prints.get(up).cloned().flatten() {
                Some(print) => {
                    upstream.insert(up.to_string(), print);
                }
                None => stale_upstream.push(format!("upstream `{up}` is stale")),
            }
        }
        if !stale_upstream.is_empty() {
            return Ok(Err(stale_upstream));
        }
        let mut inputs = stage.inputs(&self.ctx)?;
        let recorded = Manifest::load(&self.ctx.stage_dir(stage.name()))?;
        let mut stat_refreshed = false;
        for input in &mut inputs {
            let old = recorded
                .as_ref()
                .and_then(|m| m.inputs.iter().find(|old| old.path == input.path));
            stat_refreshed |= input.resolve(old);
        }
        let fingerprint = manifest::fingerprint(stage.name(), &params, &inputs, &upstream);
        Ok(Ok(Planned {
            params,
            inputs,
            upstream,
            fingerprint,
            recorded,
            stat_refreshed,
        }))
    }

    /// Why the committed artifacts of `stage` do not match `planned` (empty when fresh).
    fn stale_reasons(
        &self,
        stage: &dyn Stage,
        planned: &Planned,
    ) -> Result<Vec<String>, PipelineError> {
        let dir = self.ctx.stage_dir(stage.name());
        let Some(manifest) = &planned.recorded else {
            return Ok(vec!["never run".to_string()]);
        };
        let mut reasons = Vec::new();
        if manifest.fingerprint != planned.fingerprint {
            for key in manifest::changed_params(&manifest.params, &planned.params) {
                reasons.push(format!("parameter {key} changed"));
            }
            for input in &planned.inputs {
                if !manifest.inputs.iter().any(|old| old == input) {
                    reasons.push(format!("input {} changed", input.path));
                }
            }
            for (up, print) in &planned.upstream {
                if manifest.upstream.get(up) != Some(print) {
                    reasons.push(format!("upstream `{up}` changed"));
                }
            }
            if reasons.is_empty() {
                reasons.push("fingerprint changed".to_string());
            }
        }
        for output in &manifest.outputs {
            let path = dir.join(&output.file);
            match std::fs::metadata(&path) {
                Ok(meta) if meta.len() == output.bytes => {}
                Ok(_) => reasons.push(format!("output {} was modified", output.file)),
                Err(_) => reasons.push(format!("output {} is missing", output.file)),
            }
        }
        Ok(reasons)
    }

    /// The status of every stage, in order, as `make -n` would see it.
    pub fn status(&self) -> Result<Vec<StageStatus>, Error> {
        let mut prints: BTreeMap<&str, Option<String>> = BTreeMap::new();
        let mut out = Vec::new();
        for stage in self.stages() {
            let freshness = match self.plan(stage, &prints)? {
                Err(reasons) => Freshness::Stale(reasons),
                Ok(planned) => {
                    let reasons = self.stale_reasons(stage, &planned)?;
                    if reasons.is_empty() {
                        prints.insert(stage.name(), Some(planned.fingerprint));
                        Freshness::Fresh
                    } else {
                        Freshness::Stale(reasons)
                    }
                }
            };
            if freshness != Freshness::Fresh {
                prints.insert(stage.name(), None);
            }
            out.push(StageStatus {
                name: stage.name(),
                freshness,
            });
        }
        Ok(out)
    }

    /// The stages `target` needs, itself included, in order (all stages for `None`).
    fn closure(&self, target: Option<&str>) -> Result<Vec<&dyn Stage>, PipelineError> {
        let Some(target) = target else {
            return Ok(self.stages().filter(|s| s.in_full_run()).collect());
        };
        let mut needed = vec![self.stage(target)?.name()];
        let mut i = 0;
        while i < needed.len() {
            for &up in self.stage(needed[i])?.upstream() {
                if !needed.contains(&up) {
                    needed.push(up);
                }
            }
            i += 1;
        }
        Ok(self
            .stages()
            .filter(|s| needed.contains(&s.name()))
            .collect())
    }

    /// Runs every stale stage that `target` needs, then `target` (for `None`, every stage but
    /// the optional ones).
    /// `force` reruns `target` (or, for `None`, every stage) even when fresh. `on_start` is
    /// called before a stage runs, with its name and the reasons.
    pub fn make(
        &self,
        target: Option<&str>,
        force: bool,
        on_start: impl FnMut(&str, &[String]),
    ) -> Result<Vec<StageReport>, Error> {
        self.make_with(target, force, on_start, |_| {})
    }

    /// [`Self::make`], with `on_finish` called as each stage is made or found up to date, so
    /// that a caller can report it at once rather than after the last stage. Every stage's
    /// parameters are checked before the first one runs: a typo in `[fit]` is reported before
    /// hours of image features, not after.
    pub fn make_with(
        &self,
        target: Option<&str>,
        force: bool,
        mut on_start: impl FnMut(&str, &[String]),
        mut on_finish: impl FnMut(&StageReport),
    ) -> Result<Vec<StageReport>, Error> {
        let stages = self.closure(target)?;
        for stage in &stages {
            stage.params(&self.ctx)?;
        }
        let mut prints: BTreeMap<&str, Option<String>> = BTreeMap::new();
        let mut reports = Vec::new();
        for stage in stages {
            let mut planned = self
                .plan(stage, &prints)?
                .expect("upstream stages have just been made");
            let mut reasons = self.stale_reasons(stage, &planned)?;
            if force && (target.is_none() || target == Some(stage.name())) && reasons.is_empty() {
                reasons.push("forced".to_string());
            }
            let manifest = if reasons.is_empty() {
                let mut manifest = planned
                    .recorded
                    .take()
                    .expect("a fresh stage has a manifest");
                if planned.stat_refreshed {
                    let dir = self.ctx.stage_dir(stage.name());
                    // Same content, new modification times: record them, so that the next
                    // check does not read the files again. The fingerprint does not change.
                    manifest.inputs = planned.inputs.clone();
                    artifacts::write_json(&dir.join(MANIFEST_FILE), &manifest)?;
                }
                manifest
            } else {
                on_start(stage.name(), &reasons);
                self.run_stage(stage, &planned)?
            };
            prints.insert(stage.name(), Some(manifest.fingerprint.clone()));
            let report = StageReport {
                name: stage.name(),
                ran_because: (!reasons.is_empty()).then_some(reasons),
                manifest,
            };
            on_finish(&report);
            reports.push(report);
        }
        Ok(reports)
    }

    fn run_stage(&self, stage: &dyn Stage, planned: &Planned) -> Result<Manifest, Error> {
        let work = &self.ctx.work_dir;
        std::fs::create_dir_all(work).map_err(|e| IoError::new("creating", work, e))?;
        let staging = work.join(format!(".{}.staging-{}", stage.name(), std::process::id()));
        if staging.exists() {
            std::fs::remove_dir_all(&staging).map_err(|e| IoError::new("removing", &staging, e))?;
        }
        std::fs::create_dir_all(&staging).map_err(|e| IoError::new("creating", &staging, e))?;
        let started = Instant::now();
        let mut writer = StageWriter::new(staging.clone());
        let result = stage.run(&self.ctx, &mut writer);
        if let Err(e) = result {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
        let mut skipped_counts = BTreeMap::new();
        for skip in &writer.skipped {
            let class = skip
                .reason
                .split(':')
                .next()
                .unwrap_or("")
                .trim()
                .to_string();
            *skipped_counts.entry(class).or_insert(0) += 1;
        }
        let manifest = Manifest {
            format_version: FORMAT_VERSION,
            tool_version: env!("CARGO_PKG_VERSION").to_string(),
            pipeline: self.ctx.config.pipeline.name.clone(),
            stage: stage.name().to_string(),
            fingerprint: planned.fingerprint.clone(),
            params: planned.params.clone(),
            inputs: planned.inputs.clone(),
            upstream: planned.upstream.clone(),
            outputs: writer.outputs,
            skipped_counts,
            skipped: writer.skipped,
            summary: writer.summary,
            wall_seconds: started.elapsed().as_secs_f64(),
            finished_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0),
            machine: Some(Machine::this()),
        };
        artifacts::write_json(&staging.join(MANIFEST_FILE), &manifest)?;
        self.commit(stage.name(), &staging)?;
        Ok(manifest)
    }

    /// Swaps the staging folder into place: old → `.old-<pid>`, staging → live, remove old.
    fn commit(&self, name: &str, staging: &Path) -> Result<(), PipelineError> {
        let live = self.ctx.stage_dir(name);
        if live.exists() {
            let old = self
                .ctx
                .work_dir
                .join(format!(".{name}.old-{}", std::process::id()));
            std::fs::rename(&live, &old).map_err(|e| IoError::new("moving aside", &live, e))?;
            std::fs::rename(staging, &live).map_err(|e| IoError::new("committing", &live, e))?;
            std::fs::remove_dir_all(&old).map_err(|e| IoError::new("removing", &old, e))?;
        } else {
            std::fs::rename(staging, &live).map_err(|e| IoError::new("committing", &live, e))?;
        }
        Ok(())
    }

    /// Removes the artifacts of `stage` and of every stage downstream of it (all for `None`);
    /// returns the folders removed.
    pub fn clean(&self, stage: Option<&str>) -> Result<Vec<PathBuf>, PipelineError> {
        let mut doomed: Vec<&str> = match stage {
            None => self.stages().map(|s| s.name()).collect(),
            Some(name) => vec![self.stage(name)?.name()],
        };
        for s in self.stages() {
            if s.upstream().iter().any(|u| doomed.contains(u)) && !doomed.contains(&s.name()) {
                doomed.push(s.name());
            }
        }
        let mut removed = Vec::new();
        for name in doomed {
            let dir = self.ctx.stage_dir(name);
            if dir.exists() {
                std::fs::remove_dir_all(&dir).map_err(|e| IoError::new("removing", &dir, e))?;
                removed.push(dir);
            }
        }
        Ok(removed)
    }
}
