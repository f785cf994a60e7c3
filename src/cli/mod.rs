//! Command-line parsing and dispatch (clap derive).
//!
//! One subcommand per stage, each running its stale prerequisites first as make does; plus
//! `run`, `status`, `inspect`, `clean`, `search` and the data tools.

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

use crossmodal::data::Part;
use crossmodal::data::synthetic::{CsvEncoding, SyntheticParams, generate};
use crossmodal::pipeline::compare::{
    ComparisonParams, DatasetRows, ExternalEmbeddings, compare_embeddings, link_stages,
    measured_rows, render_markdown, render_svg, stage_machine, write_text,
};
use crossmodal::pipeline::inspect::{InspectOptions, inspect};
use crossmodal::pipeline::search::{SearchOptions, SearchQuery, search};
use crossmodal::pipeline::{Context, Freshness, Pipeline, PipelineConfig, stages};

/// Classical image–text retrieval: SIFT/HOG/colour features and Chinese text features fused by CCA.
#[derive(Debug, Parser)]
#[command(name = "crossmodal", version, about, propagate_version = true)]
struct Cli {
    /// More output (-v: debug messages); repeat for more.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,
    /// Less output: no progress bars, warnings and errors only.
    #[arg(short, long, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

/// Arguments every pipeline subcommand takes.
#[derive(Debug, Args)]
struct PipelineArgs {
    /// The pipeline file, e.g. pipeline/teddy.toml.
    pipeline: PathBuf,
    /// The dataset folder (overrides `data` in the pipeline file).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// The work folder (default: work/<pipeline name>).
    #[arg(long, value_name = "DIR")]
    work: Option<PathBuf>,
    /// Override a parameter: --set section.key=value (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    overrides: Vec<String>,
}

/// Arguments of the stage subcommands.
#[derive(Debug, Args)]
struct StageArgs {
    #[command(flatten)]
    pipeline: PipelineArgs,
    /// Rerun this stage even when it is up to date (with `run`: every stage).
    #[arg(long)]
    force: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read the dataset, check every image, write the train/validation/test split.
    Split(StageArgs),
    /// Fit visual vocabularies on the training images and describe every image.
    ImageFeatures(StageArgs),
    /// Fit TF-IDF and word vectors on the training captions and describe every caption.
    TextFeatures(StageArgs),
    /// Grid search of the CCA parameters on the validation part (writes tune.json / tune.md).
    Tune(StageArgs),
    /// Learn the CCA projections on the training pairs.
    Fit(StageArgs),
    /// Project every image and caption into the shared space.
    Embed(StageArgs),
    /// Rank the test images for each test caption and the test captions for each test image.
    Rank(StageArgs),
    /// R@K, median and mean rank on the held-out data; report.json, report.md, plot, report.html.
    Evaluate(StageArgs),
    /// Write result1.csv and result2.csv for the contest's attachments 2 and 3, or for a
    /// contest-shaped test set carved out of held-out pairs (then scored against its gold).
    Submit(StageArgs),
    /// Train the neural dual encoder (CNN over pixels, bag of tokens) and score it (optional).
    DualEncoder(StageArgs),
    /// Train MLP towers over the classical features with InfoNCE and score them (optional).
    MlpFusion(StageArgs),
    /// Score the baseline that learns nothing: every image and caption described by its
    /// similarities to the training pairs (optional).
    Profiles(StageArgs),
    /// Score embeddings computed elsewhere (e.g. Chinese-CLIP) on this pipeline's split, exactly
    /// as `evaluate` scores ours; reports in work/<pipeline>/compare/<NAME>/.
    Compare {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// A name for the model (a folder name).
        #[arg(long)]
        name: String,
        /// Image embeddings, .npy (rows x dims, float32 or float64).
        #[arg(long, value_name = "NPY")]
        images: PathBuf,
        /// Ids of the image rows, one per line (the split's image ids).
        #[arg(long, value_name = "TXT")]
        image_ids: PathBuf,
        /// Text embeddings, .npy.
        #[arg(long, value_name = "NPY")]
        texts: PathBuf,
        /// Ids of the text rows, one per line (the split's caption ids).
        #[arg(long, value_name = "TXT")]
        text_ids: PathBuf,
    },
    /// Train or update every model of each pipeline (CCA and its variants, dual encoder, MLP
    /// fusion, profiles), then write the side-by-side table (Markdown) and an SVG plot of R@10.
    /// Each pipeline uses its own `data` and default work folder.
    Comparison {
        /// Pipeline files (each with its `data` folder), e.g. pipeline/flickr8k-cn.toml.
        #[arg(required = true)]
        pipelines: Vec<PathBuf>,
        /// The Markdown file to write.
        #[arg(long, default_value = "docs/comparison.md")]
        out: PathBuf,
        /// Only read existing reports; train nothing.
        #[arg(long)]
        no_train: bool,
        /// Override a parameter in every pipeline: --set section.key=value (repeatable).
        #[arg(long = "set", value_name = "KEY=VALUE")]
        overrides: Vec<String>,
    },
    /// Rank the images for a caption you type (or the captions for an image file) with a
    /// trained pipeline; queries by id mark their true match. Runs the stale stages up to
    /// `embed` first.
    Search {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// A caption to rank the images for (repeatable).
        #[arg(long, value_name = "CAPTION")]
        text: Vec<String>,
        /// A caption of the dataset, by its id in split/text_ids.txt (repeatable).
        #[arg(long, value_name = "ID")]
        text_id: Vec<String>,
        /// An image file to rank the captions for (repeatable).
        #[arg(long, value_name = "FILE")]
        image: Vec<PathBuf>,
        /// An image of the dataset, by its id in split/image_ids.txt (repeatable).
        #[arg(long, value_name = "ID")]
        image_id: Vec<String>,
        /// Results listed per query.
        #[arg(short, long, default_value_t = 10)]
        k: usize,
        /// The partition whose models are used, e.g. fold-2 (default: the first).
        #[arg(long)]
        partition: Option<String>,
        /// The parts of the split searched: train, validation, test (repeatable; default all).
        #[arg(long, value_name = "PART")]
        part: Vec<Part>,
        /// Print JSON instead of tables.
        #[arg(long)]
        json: bool,
    },
    /// Score a result1.csv / result2.csv against a gold file of (query id, relevant id) pairs.
    Score {
        /// The result file (header; query id, rank, result id).
        results: PathBuf,
        /// The gold file (header; query id, relevant id).
        gold: PathBuf,
    },
    /// Run every stale stage of a pipeline.
    Run(StageArgs),
    /// List each stage as fresh or stale, and why (like `make -n`).
    Status(PipelineArgs),
    /// Remove the artifacts of a stage and of everything downstream (all stages by default).
    Clean {
        #[command(flatten)]
        pipeline: PipelineArgs,
        /// The stage to clean.
        stage: Option<String>,
    },
    /// Generate the synthetic demo dataset (Teddy layout, with bad cases) into DIR.
    MakeFixture {
        dir: PathBuf,
        /// Number of images (CSV rows).
        #[arg(long, default_value_t = 300)]
        images: usize,
        /// Seed of every random choice.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the CSV in GBK with CRLF line ends, as Excel on a Chinese Windows does.
        #[arg(long)]
        gbk: bool,
        /// Leave out the bad cases (GIF and PNG named .jpg, truncated, empty, missing, ...).
        #[arg(long)]
        no_bad_cases: bool,
        /// Largest image size, WIDTHxHEIGHT; sizes are drawn between half of it and it.
        #[arg(long, value_name = "WxH", default_value = "320x240", value_parser = parse_size)]
        max_size: (u32, u32),
    },
    /// Print what an artifact holds: a .npy / .npz matrix, a stage folder or a manifest, a
    /// folder without one (a saved model: its files and their shapes), a JSON file.
    Inspect {
        path: PathBuf,
        /// How many rows to print.
        #[arg(long, default_value_t = 5)]
        rows: usize,
        /// How many values of each row to print.
        #[arg(long, default_value_t = 8)]
        columns: usize,
        /// Export the matrix as CSV (id column first).
        #[arg(long, value_name = "FILE")]
        csv: Option<PathBuf>,
    },
}

/// Parses `WIDTHxHEIGHT` (e.g. `800x600`), the form of `make-fixture --max-size`.
fn parse_size(text: &str) -> Result<(u32, u32), String> {
    let parsed = text
        .split_once(['x', 'X'])
        .and_then(|(w, h)| Some((w.trim().parse().ok()?, h.trim().parse().ok()?)));
    parsed.ok_or_else(|| format!("expected WIDTHxHEIGHT in pixels, e.g. 800x600, got '{text}'"))
}

fn init_logging(verbose: u8, quiet: bool) {
    let level = match (quiet, verbose) {
        (true, _) => "warn",
        (false, 0) => "info",
        (false, 1) => "debug",
        (false, _) => "trace",
    };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level))
        .format_timestamp(None)
        .format_target(false)
        .init();
}

/// Parses the command line and runs it.
pub fn run() -> Result<()> {
    let cli = Cli::parse();
    init_logging(cli.verbose, cli.quiet);
    let show_progress = !cli.quiet && std::io::stderr().is_terminal();
    match cli.command {
        Command::Split(args) => make(&args, Some("split"), show_progress),
        Command::ImageFeatures(args) => make(&args, Some("image-features"), show_progress),
        Command::TextFeatures(args) => make(&args, Some("text-features"), show_progress),
        Command::Tune(args) => make(&args, Some("tune"), show_progress),
        Command::Fit(args) => make(&args, Some("fit"), show_progress),
        Command::Embed(args) => make(&args, Some("embed"), show_progress),
        Command::Rank(args) => make(&args, Some("rank"), show_progress),
        Command::Evaluate(args) => make(&args, Some("evaluate"), show_progress),
        Command::Submit(args) => make(&args, Some("submit"), show_progress),
        Command::DualEncoder(args) => make(&args, Some("dual-encoder"), show_progress),
        Command::MlpFusion(args) => make(&args, Some("mlp-fusion"), show_progress),
        Command::Profiles(args) => make(&args, Some("profiles"), show_progress),
        Command::Compare {
            pipeline,
            name,
            images,
            image_ids,
            texts,
            text_ids,
        } => {
            let args = StageArgs {
                pipeline,
                force: false,
            };
            make(&args, Some("split"), show_progress)?;
            let pipeline = open(&args.pipeline, show_progress)?;
            let external = ExternalEmbeddings::load(&images, &image_ids, &texts, &text_ids)?;
            let (summary, dir) = compare_embeddings(pipeline.context(), &name, &external)?;
            for (direction, d) in [
                ("text → image", &summary.text_to_image),
                ("image → text", &summary.image_to_text),
            ] {
                let r = |k: usize| d.recall.get(&k).map(|m| m.mean * 100.0).unwrap_or(f64::NAN);
                println!(
                    "{direction}: R@1 {:.2}  R@5 {:.2}  R@10 {:.2}  ({} queries)",
                    r(1),
                    r(5),
                    r(10),
                    d.queries
                );
            }
            println!("report in {}", dir.display());
            Ok(())
        }
        Command::Comparison {
            pipelines,
            out,
            no_train,
            overrides,
        } => comparison(&pipelines, &out, no_train, &overrides, show_progress),
        Command::Search {
            pipeline,
            text,
            text_id,
            image,
            image_id,
            k,
            partition,
            part,
            json,
        } => {
            let args = StageArgs {
                pipeline,
                force: false,
            };
            make(&args, Some("embed"), show_progress)?;
            let pipeline = open(&args.pipeline, show_progress)?;
            let queries: Vec<SearchQuery> = text
                .into_iter()
                .map(SearchQuery::Text)
                .chain(text_id.into_iter().map(SearchQuery::TextId))
                .chain(image.into_iter().map(SearchQuery::Image))
                .chain(image_id.into_iter().map(SearchQuery::ImageId))
                .collect();
            let options = SearchOptions {
                k,
                partition,
                parts: part,
            };
            let report = search(pipeline.context(), &queries, &options)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print!("{report}");
            }
            Ok(())
        }
        Command::Score { results, gold } => {
            let report =
                crossmodal::retrieval::score::score_files(&results, &gold).with_context(|| {
                    format!("scoring {} against {}", results.display(), gold.display())
                })?;
            for (k, recall) in &report.recall {
                println!("R@{k}: {:.4}", recall);
            }
            for k in &report.beyond_depth {
                println!(
                    "R@{k}: n/a (the results hold at most {} per query)",
                    report.depth
                );
            }
            println!("queries: {}", report.queries);
            if !report.missing.is_empty() {
                println!(
                    "queries without results (counted as misses): {}",
                    report.missing.len()
                );
            }
            if !report.unknown.is_empty() {
                println!(
                    "result queries not in the gold file (ignored): {}",
                    report.unknown.len()
                );
            }
            Ok(())
        }
        Command::Run(args) => make(&args, None, show_progress),
        Command::Status(args) => status(&args),
        Command::Clean { pipeline, stage } => {
            // Cleaning touches the work folder only: the data folder need not exist.
            let pipeline = open_with(&pipeline, false, false)?;
            let removed = pipeline.clean(stage.as_deref())?;
            if removed.is_empty() {
                println!("nothing to clean");
            }
            for dir in removed {
                println!("removed {}", dir.display());
            }
            Ok(())
        }
        Command::MakeFixture {
            dir,
            images,
            seed,
            gbk,
            no_bad_cases,
            max_size: (width, height),
        } => {
            // Images of an earlier, larger fixture would stay beside the new CSV unlisted.
            let image_dir = dir.join("ImageData");
            if std::fs::read_dir(&image_dir).is_ok_and(|mut entries| entries.next().is_some()) {
                anyhow::bail!(
                    "{} already holds images; remove it or choose an empty folder",
                    image_dir.display()
                );
            }
            let mut params = SyntheticParams::new()
                .n_images(images)
                .seed(seed)
                .bad_cases(!no_bad_cases)
                .size_range((width / 2, height / 2), (width, height));
            if gbk {
                params = params.csv_encoding(CsvEncoding::Gbk).crlf(true);
            }
            let summary =
                generate(&dir, &params).with_context(|| format!("generating {}", dir.display()))?;
            println!(
                "wrote {} rows to {} and images to {} (seed {seed})",
                summary.ids.len(),
                summary.csv_path.display(),
                summary.image_dir.display()
            );
            Ok(())
        }
        Command::Inspect {
            path,
            rows,
            columns,
            csv,
        } => {
            let options = InspectOptions {
                rows,
                columns,
                export_csv: csv,
            };
            let report = inspect(&path, &options)
                .with_context(|| format!("inspecting {}", path.display()))?;
            print!("{report}");
            Ok(())
        }
    }
}

/// Loads the pipeline file with the command line's overrides; the data folder must exist.
fn open(args: &PipelineArgs, show_progress: bool) -> Result<Pipeline> {
    open_with(args, show_progress, true)
}

/// [`open`], checking that the data folder exists only when `need_data`.
fn open_with(args: &PipelineArgs, show_progress: bool, need_data: bool) -> Result<Pipeline> {
    let mut config = PipelineConfig::load(&args.pipeline)
        .with_context(|| format!("loading pipeline {}", args.pipeline.display()))?;
    for assignment in &args.overrides {
        config.set(assignment)?;
    }
    if let Some(work) = &args.work {
        config.pipeline.work = Some(work.clone());
    }
    let data_dir = args
        .data
        .clone()
        .unwrap_or_else(|| config.pipeline.data.clone());
    if need_data && !data_dir.is_dir() {
        anyhow::bail!(
            "data folder {} {} (set `data` in {} or pass --data DIR)",
            data_dir.display(),
            if data_dir.exists() {
                "is not a folder"
            } else {
                "does not exist"
            },
            args.pipeline.display()
        );
    }
    let work_dir = config.work_dir();
    let ctx = Context {
        config,
        data_dir,
        work_dir,
        show_progress,
    };
    Ok(Pipeline::new(ctx, stages::all())?)
}

fn make(args: &StageArgs, target: Option<&str>, show_progress: bool) -> Result<()> {
    let pipeline = open(&args.pipeline, show_progress)?;
    pipeline.make_with(
        target,
        args.force,
        |stage, reasons| log::info!("{stage}: running ({})", reasons.join("; ")),
        |report| log_report(&pipeline, report),
    )?;
    log::info!("artifacts in {}", pipeline.context().work_dir.display());
    Ok(())
}

/// Logs how a stage ended, as soon as it has: its time and the items it skipped.
fn log_report(pipeline: &Pipeline, report: &crossmodal::pipeline::StageReport) {
    let m = &report.manifest;
    if report.ran_because.is_none() {
        log::info!("{}: up to date", report.name);
        return;
    }
    let skipped: Vec<String> = m
        .skipped_counts
        .iter()
        .map(|(reason, n)| format!("{n} {reason}"))
        .collect();
    let skipped = if skipped.is_empty() {
        String::new()
    } else {
        format!(", skipped {}", skipped.join(", "))
    };
    log::info!("{}: done in {:.2} s{skipped}", report.name, m.wall_seconds);
    const SHOWN: usize = 10;
    for skip in m.skipped.iter().take(SHOWN) {
        log::warn!(
            "{}: skipped {}{} — {}",
            report.name,
            skip.id,
            skip.path
                .as_deref()
                .map(|p| format!(" ({p})"))
                .unwrap_or_default(),
            skip.reason
        );
    }
    if m.skipped.len() > SHOWN {
        log::warn!(
            "{}: … and {} more skipped; `crossmodal inspect {}` lists them",
            report.name,
            m.skipped.len() - SHOWN,
            pipeline.context().stage_dir(report.name).display()
        );
    }
}

fn status(args: &PipelineArgs) -> Result<()> {
    let pipeline = open(args, false)?;
    for (stage, status) in pipeline.stages().zip(pipeline.status()?) {
        match status.freshness {
            Freshness::Fresh => println!("{:<16} fresh", stage.name()),
            Freshness::Stale(reasons) if !stage.in_full_run() && reasons == ["never run"] => {
                println!(
                    "{:<16} not run (optional: `crossmodal {}` runs it; `run` leaves it out)",
                    stage.name(),
                    stage.name()
                )
            }
            Freshness::Stale(reasons) => {
                println!("{:<16} stale: {}", stage.name(), reasons.join("; "))
            }
        }
    }
    Ok(())
}

/// Brings every model of each pipeline up to date (unless `no_train`) and writes the table.
fn comparison(
    pipelines: &[PathBuf],
    out: &std::path::Path,
    no_train: bool,
    overrides: &[String],
    show_progress: bool,
) -> Result<()> {
    // Checked before any training: the plot is written beside the table, as <out>.svg.
    if out.extension().is_some_and(|e| e == "svg") {
        anyhow::bail!(
            "--out {} would be overwritten by the plot written beside it as .svg: name the \
             Markdown table's file, e.g. comparison.md",
            out.display()
        );
    }
    let mut datasets = Vec::new();
    for file in pipelines {
        let args = StageArgs {
            pipeline: PipelineArgs {
                pipeline: file.clone(),
                data: None,
                work: None,
                overrides: overrides.to_vec(),
            },
            force: false,
        };
        if !no_train {
            for stage in ["evaluate", "mlp-fusion", "dual-encoder", "profiles"] {
                make(&args, Some(stage), show_progress)?;
            }
        }
        let pipeline = open(&args.pipeline, false)?;
        let ctx = pipeline.context();
        let mut rows = measured_rows(ctx)
            .with_context(|| format!("reading the reports of {}", file.display()))?;
        // CCA variants: the same split and features (linked), other parameters.
        let settings: ComparisonParams = ctx.config.section("comparison")?;
        let mut variant_rows = Vec::new();
        for variant in &settings.variants {
            variant.check()?;
            let work = ctx.work_dir.join("variants").join(&variant.name);
            link_stages(
                &ctx.work_dir,
                &work,
                &["split", "image-features", "text-features"],
                true,
            )?;
            // Stages the variant may share (same parameters): linked once, refitted if not.
            link_stages(&ctx.work_dir, &work, &["fit", "embed"], false)?;
            let mut overrides = overrides.to_vec();
            overrides.extend(variant.set.iter().cloned());
            let variant_args = StageArgs {
                pipeline: PipelineArgs {
                    pipeline: file.clone(),
                    data: None,
                    work: Some(work),
                    overrides,
                },
                force: false,
            };
            if !no_train {
                make(&variant_args, Some("evaluate"), show_progress)?;
            }
            let variant_pipeline = open(&variant_args.pipeline, false)?;
            let found = measured_rows(variant_pipeline.context())?;
            if let Some(mut row) = found.into_iter().find(|r| r.method.starts_with("CCA")) {
                row.method = format!("CCA, variant {}", variant.name);
                row.note = format!("{} ({})", variant.set.join(", "), row.note);
                variant_rows.push(row);
            }
        }
        let at = rows
            .iter()
            .position(|r| r.method.starts_with("CCA"))
            .map_or(0, |i| i + 1);
        rows.splice(at..at, variant_rows);
        if rows.is_empty() {
            anyhow::bail!(
                "{} has no reports yet: run without --no-train",
                ctx.work_dir.display()
            );
        }
        let folds = rows.first().map(|r| r.folds).unwrap_or(1);
        let description = ctx.config.pipeline.description.clone().unwrap_or_default();
        let part = ctx
            .config
            .section::<crossmodal::pipeline::stages::evaluate::EvaluateParams>("evaluate")?
            .part;
        let machine = stage_machine(ctx, "fit")
            .map(|machine| format!(" The CCA fit ran on {machine}."))
            .unwrap_or_default();
        datasets.push(DatasetRows {
            title: ctx.config.pipeline.name.clone(),
            protocol: format!(
                "{description}. `{}`, {} partition{}; scored on the {} part.{machine}",
                file.display(),
                folds,
                if folds == 1 {
                    ""
                } else {
                    "s (mean over folds)"
                },
                part.as_str()
            ),
            rows,
        });
    }
    let plot = out.with_extension("svg");
    let plot_name = plot
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let command = format!(
        "crossmodal comparison {}",
        pipelines
            .iter()
            .map(|p| p.display().to_string())
            .collect::<Vec<_>>()
            .join(" ")
    );
    write_text(&plot, &render_svg(&datasets))?;
    write_text(out, &render_markdown(&datasets, &command, Some(&plot_name)))?;
    println!("wrote {} and {}", out.display(), plot.display());
    Ok(())
}
