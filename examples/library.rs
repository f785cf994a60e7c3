//! crossmodal as a library: every stage of the pipeline as plain calls, without the pipeline
//! engine, its work folder or its manifests. Read a dataset in the contest's layout, split it,
//! learn the image and text features on the training images, learn the CCA on the training
//! pairs, save the three fitted models and load them back, describe the test images and
//! captions with the loaded models and embed them in the shared space, score both directions
//! and print one caption's top 5.
//!
//!     cargo run --release --example library                 # on a generated synthetic dataset
//!     cargo run --release --example library -- DATA_DIR     # on a folder in Teddy's layout
//!     cargo run --release --example library -- --kernel DATA_DIR
//!
//! `DATA_DIR` holds `ImageWordData.csv` and `ImageData/` (or `附件1/`), as
//! `../shared/data/teddy/attachment1` does. Without it, the synthetic demo dataset (300 images
//! with their bad cases: a truncated file, an empty one, a missing one) is generated in a
//! temporary folder. Each stage is the linfa-style sequence `Params` → `check()` → `fit()` →
//! fitted model → `transform()`. The features use the library's defaults and the CCA is linear;
//! `--kernel` puts Gaussian-kernel maps in front of the CCA as `pipeline/teddy.toml` does (its
//! larger images and colour block aside), the change that lifted Teddy's recalls most in
//! `docs/results.md`.
//! Exits non-zero when a direction's R@10 is not above chance, so CI can run it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result, bail};

use crossmodal::data::split::{SplitParams, partitions};
use crossmodal::data::synthetic::{SyntheticParams, generate};
use crossmodal::data::{Part, teddy};
use crossmodal::fusion::{CcaParams, FittedCca, KernelMapParams};
use crossmodal::image::{FittedImageFeatures, ImageFeatureParams, ImageFeatures};
use crossmodal::indicatif::ProgressBar;
use crossmodal::matrix::FeatureMatrix;
use crossmodal::ndarray::{Axis, s};
use crossmodal::retrieval::evaluate::DirectionMetrics;
use crossmodal::retrieval::{EvalOptions, evaluate, top_k};
use crossmodal::text::{FittedTextFeatures, TextFeatureParams};

/// Seed of the synthetic data, the split, the image vocabularies, the CCA's randomized PCA and
/// the word vectors (when their block is turned on).
const SEED: u64 = 2024;

fn main() -> ExitCode {
    match try_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn try_main() -> Result<()> {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let kernel = match args.iter().position(|a| a == "--kernel") {
        Some(i) => {
            args.remove(i);
            true
        }
        None => false,
    };
    if args.len() > 1 {
        bail!("usage: library [--kernel] [DATA_DIR], got {args:?}");
    }
    let temporary;
    let data_dir = match args.pop() {
        Some(dir) => PathBuf::from(dir),
        None => {
            temporary = tempfile::tempdir().context("creating a temporary folder")?;
            let summary = generate(temporary.path(), &SyntheticParams::new().seed(SEED))?;
            println!(
                "generated {} synthetic image–caption pairs in {}",
                summary.ids.len(),
                summary.csv_path.display()
            );
            temporary.path().to_path_buf()
        }
    };
    println!("seed {SEED}");
    run(&data_dir, kernel)
}

fn run(data_dir: &Path, kernel: bool) -> Result<()> {
    // 1. The dataset: images whose file exists, their captions, what was missing.
    let dataset = teddy::load_attachment1(data_dir)
        .with_context(|| format!("reading the dataset in {}", data_dir.display()))?;
    println!(
        "{} images with captions; {} listed images missing; caption file {}",
        dataset.images.len(),
        dataset.missing_images.len(),
        dataset.encoding
    );
    for warning in &dataset.warnings {
        println!("  warning: {warning}");
    }

    // 2. The split: a keyed hash of each image's id puts it in train or test.
    let split = SplitParams {
        seed: SEED,
        validation: 0.0,
        test: 0.2,
        ..SplitParams::default()
    };
    let partition = partitions(&dataset, &split)?.remove(0);
    let train = partition.images_in(Part::Train);

    // 3. Image features: vocabularies learnt on the training images, which are then described.
    // An image that cannot be decoded is reported and left out, never fatal.
    let quiet = ProgressBar::hidden();
    let paths_of = |images: &[usize]| -> Vec<PathBuf> {
        images
            .iter()
            .map(|&i| dataset.images[i].path.clone())
            .collect()
    };
    let train_paths = paths_of(&train);
    let image_model = ImageFeatureParams::new()
        .seed(SEED)
        .check()?
        .fit(&train_paths, &quiet)?;
    let train_images = image_model.transform(&train_paths, &quiet)?;
    for skipped in &train_images.skipped {
        println!("  skipped {}: {}", skipped.path.display(), skipped.reason);
    }
    let layout: Vec<String> = image_model
        .block_layout()
        .iter()
        .map(|(name, width, _)| format!("{name} {width}"))
        .collect();
    println!(
        "image features of the training images: {} x {} ({})",
        train_images.combined.nrows(),
        train_images.combined.ncols(),
        layout.join(", ")
    );
    let train_pairs = described_pairs(&dataset.pairs, &train, &train_images);

    // 4. Text features: TF-IDF of character 1-2 grams (the default block; word TF-IDF and
    // fastText-style sentence vectors are options), fitted on the training captions.
    let captions_of = |pairs: &[(usize, usize)]| -> Vec<String> {
        pairs
            .iter()
            .map(|&(_, text)| dataset.texts[text].caption.clone())
            .collect()
    };
    let train_captions = captions_of(&train_pairs);
    let text_model =
        TextFeatureParams::new()
            .seed(SEED)
            .check()?
            .fit(&train_captions, &[], &quiet)?;
    let train_texts = text_model.transform(&train_captions, &quiet).combined;
    println!(
        "text features of the training captions: {} x {}, {} stored values",
        train_texts.n_rows(),
        train_texts.n_cols(),
        train_texts.nnz()
    );

    // 5. The CCA, learnt on the training pairs (an image's row repeated for each caption): a
    // ridge relative to each view's scale, the dimensions weighted by their canonical
    // correlations squared (Gong et al. 2014).
    let image_rows: Vec<usize> = train_pairs.iter().map(|&(row, _)| row).collect();
    let x = FeatureMatrix::Dense(train_images.combined.select(Axis(0), &image_rows));
    let y = FeatureMatrix::Sparse(train_texts);
    let cca_params = if kernel {
        // As pipeline/teddy.toml: each row described by its Gaussian kernel values against the
        // training rows (up to 4,096 of them), after a PCA to 1,024 columns; on the image side
        // one kernel per feature block, the kernels summed.
        let block_widths = image_model.block_layout().iter().map(|b| b.1).collect();
        let mut params = CcaParams::new(256).ridge_x(0.3).ridge_y(1.0).pca_dims(1024);
        params.kernel_x = KernelMapParams {
            landmarks: 4096,
            input_dims: 1024,
            gamma_scale: 4.0,
            seed: SEED,
            block_widths,
            ..KernelMapParams::default()
        };
        params.kernel_y = KernelMapParams {
            landmarks: 4096,
            input_dims: 1024,
            gamma_scale: 2.0,
            seed: SEED,
            ..KernelMapParams::default()
        };
        params
    } else {
        CcaParams::new(64).ridge(1.0)
    };
    let cca = cca_params
        .eigen_power(2.0)
        .seed(SEED)
        .check()?
        .fit(&x, &y)?;
    let first: Vec<String> = cca
        .correlations()
        .iter()
        .take(5)
        .map(|c| format!("{c:.3}"))
        .collect();
    println!(
        "CCA on {} training pairs: {} dimensions, first canonical correlations {}",
        train_pairs.len(),
        cca.dims(),
        first.join(", ")
    );

    // 6. The three fitted models saved and loaded back, as a later program answering queries
    // would: folders of .npy arrays (numpy reads them) and JSON, each written whole or not at all.
    let saved = tempfile::tempdir().context("creating a folder for the models")?;
    let (image_dir, text_dir, cca_dir) = (
        saved.path().join("image"),
        saved.path().join("text"),
        saved.path().join("cca"),
    );
    image_model.save(&image_dir)?;
    text_model.save(&text_dir)?;
    cca.save(&cca_dir)?;
    let image_model = FittedImageFeatures::load(&image_dir)?;
    let text_model = FittedTextFeatures::load(&text_dir)?;
    let cca = FittedCca::load(&cca_dir)?;
    println!(
        "models saved (image {:.1} MB, text {:.1} MB, CCA {:.1} MB) and loaded back",
        folder_bytes(&image_dir)? as f64 / 1e6,
        folder_bytes(&text_dir)? as f64 / 1e6,
        folder_bytes(&cca_dir)? as f64 / 1e6
    );

    // 7. The test images and captions described by the loaded models and embedded in the
    // shared space (unit rows: cosine is a dot product). The gallery: the test images that
    // were read and have a caption.
    let test = partition.images_in(Part::Test);
    let described = image_model.transform(&paths_of(&test), &quiet)?;
    for skipped in &described.skipped {
        println!("  skipped {}: {}", skipped.path.display(), skipped.reason);
    }
    let test_pairs = described_pairs(&dataset.pairs, &test, &described);
    let test_captions = captions_of(&test_pairs);
    let mut gallery_rows: Vec<usize> = test_pairs.iter().map(|&(row, _)| row).collect();
    gallery_rows.sort_unstable();
    gallery_rows.dedup();
    let test_images = cca.embed_x(&FeatureMatrix::Dense(
        described.combined.select(Axis(0), &gallery_rows),
    ))?;
    let test_texts = cca.embed_y(&FeatureMatrix::Sparse(
        text_model.transform(&test_captions, &quiet).combined,
    ))?;
    let text_image: Vec<usize> = test_pairs
        .iter()
        .map(|(row, _)| gallery_rows.binary_search(row).expect("a test image"))
        .collect();

    // 8. R@K both ways, against the test images and captions only.
    let scores = evaluate(
        &test_images.view(),
        &test_texts.view(),
        &text_image,
        &EvalOptions::default(),
    )?;
    report("text → image", &scores.text_to_image);
    report("image → text", &scores.image_to_text);

    // 9. One caption's top 5, as `crossmodal search` shows it.
    let query = 0;
    let top = top_k(
        &test_texts.slice(s![query..query + 1, ..]),
        &test_images.view(),
        5.min(gallery_rows.len()),
        256,
        None,
    )?;
    println!("caption {:?}:", test_captions[query]);
    for (rank, (&index, &score)) in top.indices.row(0).iter().zip(top.scores.row(0)).enumerate() {
        let image = &dataset.images[test[described.rows[gallery_rows[index as usize]]]];
        let mark = if index as usize == text_image[query] {
            "  <- its image"
        } else {
            ""
        };
        println!("  {}. {} (cosine {score:.3}){mark}", rank + 1, image.id);
    }

    for (name, metrics) in [
        ("text → image", &scores.text_to_image),
        ("image → text", &scores.image_to_text),
    ] {
        if metrics.recall[&10] <= metrics.chance[&10] {
            bail!(
                "{name}: R@10 {:.3} is not above chance ({:.3})",
                metrics.recall[&10],
                metrics.chance[&10]
            );
        }
    }
    Ok(())
}

/// The caption pairs of `images` (indices into the dataset's images) whose image `described`
/// has a row for: `(row, text index)`. An image that could not be read drops out here.
fn described_pairs(
    pairs: &[(usize, usize)],
    images: &[usize],
    described: &ImageFeatures,
) -> Vec<(usize, usize)> {
    let row_of_input = described.row_of_input();
    let input_of: HashMap<usize, usize> = images.iter().enumerate().map(|(k, &i)| (i, k)).collect();
    pairs
        .iter()
        .filter_map(|&(image, text)| Some((row_of_input[*input_of.get(&image)?]?, text)))
        .collect()
}

/// Bytes of the files under `dir`.
fn folder_bytes(dir: &Path) -> Result<u64> {
    let mut bytes = 0;
    for file in crossmodal::model_dir::files_under(dir)? {
        bytes += std::fs::metadata(&file)
            .with_context(|| format!("reading the size of {}", file.display()))?
            .len();
    }
    Ok(bytes)
}

fn report(direction: &str, m: &DirectionMetrics) {
    println!(
        "{direction}: R@1 {:.1} %, R@5 {:.1} %, R@10 {:.1} % (chance {:.1} %), median rank {} \
         of {}, {} queries",
        100.0 * m.recall[&1],
        100.0 * m.recall[&5],
        100.0 * m.recall[&10],
        100.0 * m.chance[&10],
        m.median_rank,
        m.gallery,
        m.queries
    );
}
