//! Throughput and memory of the image stage (decode → final matrix), per block and whole.
//!
//! Run: `cargo bench --bench image_features` (optionally `BENCH_FLICKR_N=500 BENCH_TEDDY_REPEAT=3 BENCH_FIT_N=1000`).
//! The machine is shared: besides wall-clock rates it prints images per CPU-second of this
//! process (utime + stime), which is what 1 dedicated core would do, and for the whole stage
//! the wall and CPU seconds themselves (CPU ≈ 2 × wall when both cores are kept busy).
//! Fits the default vocabularies on Flickr8k training images that are not timed, then times
//! `transform` on Flickr8k (224×224) and on the Teddy images (median 659×577), each block alone
//! and all together, and reads the peak RSS (VmHWM) after one and after several passes over the
//! Teddy list, to show that memory does not grow with the number of images. Needs the data
//! under `../shared/data`; prints SKIPPED otherwise. Follows no paper: it is a measurement.

mod common;

use common::{env_usize, peak_rss_mib};
use std::path::PathBuf;
use std::time::Instant;

use crossmodal::image::{FittedImageFeatures, ImageFeatureParams, decode_image};
use indicatif::ProgressBar;
use rayon::prelude::*;

/// CPU seconds (user + system) used by this process so far, from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // fields after the ")" of the command name: state is field 3; utime 14, stime 15
    let rest = s.rsplit_once(')').map(|x| x.1).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (tick(11) + tick(12)) / 100.0
}

fn list(dir: &PathBuf) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|r| r.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// The same params with only the block `name` switched on.
fn only(p: &ImageFeatureParams, name: &str) -> ImageFeatureParams {
    let mut q = p.clone();
    q.sift.bow.enabled = name == "sift_bow";
    q.sift.vlad.enabled = name == "sift_vlad";
    q.sift.fisher.enabled = name == "sift_fisher";
    q.sift.enabled = name.starts_with("sift");
    q.hog.bow.enabled = name == "hog_bow";
    q.hog.enabled = name == "hog_bow";
    q.hsv.enabled = name == "hsv";
    q.gist.enabled = name == "gist";
    q.global_hog.enabled = name == "hog_global";
    q
}

/// What one timed `transform` did.
struct Timed {
    wall_s: f64,
    cpu_s: f64,
    images: usize,
    dims: usize,
    skipped: usize,
}

impl Timed {
    fn rate(&self) -> f64 {
        self.images as f64 / self.wall_s
    }

    fn cpu_rate(&self) -> f64 {
        self.images as f64 / self.cpu_s
    }
}

fn time_transform(f: &FittedImageFeatures, paths: &[PathBuf]) -> Timed {
    let t = Instant::now();
    let c = cpu_seconds();
    let out = f
        .transform(paths, &ProgressBar::hidden())
        .expect("transform");
    Timed {
        wall_s: t.elapsed().as_secs_f64(),
        cpu_s: cpu_seconds() - c,
        images: paths.len(),
        dims: out.combined.ncols(),
        skipped: out.skipped.len(),
    }
}

fn time_decode(paths: &[PathBuf], max_side: u32) -> f64 {
    let t = Instant::now();
    let ok = paths
        .par_iter()
        .filter(|p| decode_image(p, max_side).is_ok())
        .count();
    let s = t.elapsed().as_secs_f64();
    assert!(ok > 0);
    paths.len() as f64 / s
}

fn main() {
    let data = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/data"));
    let flickr = list(&data.join("flickr8k/images"));
    let teddy = list(&data.join("teddy/attachment1/ImageData"));
    if flickr.len() < 1000 {
        println!(
            "SKIPPED image_features bench: Flickr8k images not found under {}",
            data.display()
        );
        return;
    }
    let n = env_usize("BENCH_FLICKR_N", 500);
    let repeat = env_usize("BENCH_TEDDY_REPEAT", 3);
    println!("rayon threads: {}", rayon::current_num_threads());
    let n_fit = env_usize("BENCH_FIT_N", 1000).min(flickr.len() / 2);
    // fit on the last n_fit files (sorted by name), time on the first n: disjoint sets
    let fit_paths: Vec<PathBuf> = flickr[flickr.len() - n_fit..].to_vec();
    let bench_paths: Vec<PathBuf> = flickr[..n.min(flickr.len() - n_fit)].to_vec();
    println!(
        "load average: {}",
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    let params = ImageFeatureParams::default();
    let t = Instant::now();
    let c0 = cpu_seconds();
    let fitted = params
        .clone()
        .check()
        .expect("params")
        .fit(&fit_paths, &ProgressBar::hidden())
        .expect("fit");
    println!(
        "fit (default params, {} images, {} descriptors cap): {:.1} s wall, {:.1} CPU-s, VmHWM {:.0} MiB",
        fit_paths.len(),
        params.fit.max_descriptors,
        t.elapsed().as_secs_f64(),
        cpu_seconds() - c0,
        peak_rss_mib()
    );
    let arrays = fitted.to_arrays();

    let mut sets: Vec<(&str, Vec<PathBuf>)> = vec![("flickr8k 224x224", bench_paths)];
    if !teddy.is_empty() {
        sets.push(("teddy (median 659x577)", teddy.clone()));
    }
    for (label, paths) in &sets {
        println!("\n== {label}: {} images ==", paths.len());
        println!(
            "decode only (max_side {}): {:.1} images/s",
            params.max_side,
            time_decode(paths, params.max_side)
        );
        for name in [
            "sift_bow",
            "sift_vlad",
            "sift_fisher",
            "hog_bow",
            "hsv",
            "gist",
        ] {
            let q = only(&params, name);
            let keep: Vec<(String, ndarray::Array2<f32>)> = arrays
                .iter()
                .filter(|(a, _)| {
                    let enc = a.split('.').take(2).collect::<Vec<_>>().join("_");
                    enc == name
                })
                .cloned()
                .collect();
            let f = FittedImageFeatures::from_arrays(q, keep).expect("from_arrays");
            let part = &paths[..paths.len().min(300)];
            let t = time_transform(&f, part);
            println!(
                "block {name:12} (incl. decode, {} images): {:7.1} images/s wall, {:7.1} images per CPU-second, {} dims",
                part.len(),
                t.rate(),
                t.cpu_rate(),
                t.dims
            );
        }
        let t = time_transform(&fitted, paths);
        println!(
            "ALL blocks: {:.1} images/s wall, {:.1} images per CPU-second ({:.1} s wall, {:.1} CPU-s), {} dims, {} skipped, VmHWM {:.0} MiB",
            t.rate(),
            t.cpu_rate(),
            t.wall_s,
            t.cpu_s,
            t.dims,
            t.skipped,
            peak_rss_mib()
        );
    }
    if !teddy.is_empty() && repeat > 1 {
        let before = peak_rss_mib();
        let many: Vec<PathBuf> = (0..repeat).flat_map(|_| teddy.iter().cloned()).collect();
        let t = time_transform(&fitted, &many);
        let out_mib =
            (many.len() - t.skipped) as f64 * t.dims as f64 * 4.0 * 2.0 / (1024.0 * 1024.0);
        println!(
            "\nteddy x{repeat} ({} images): {:.1} images/s wall, {:.1} images per CPU-second ({:.1} s wall, {:.1} CPU-s); VmHWM before {before:.0} MiB, after {:.0} MiB (output blocks+combined ~{out_mib:.0} MiB)",
            many.len(),
            t.rate(),
            t.cpu_rate(),
            t.wall_s,
            t.cpu_s,
            peak_rss_mib()
        );
    }
}
