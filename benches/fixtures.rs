//! Bench of the synthetic fixture generator and the CSV reader: how long `generate` takes for
//! the default 300 images, and `read_captions` on its CSV and on the real attachment 1 CSV when
//! present. Prints wall-clock figures (best of a few runs); no harness.

use std::path::Path;
use std::time::Instant;

use crossmodal::data::csv::{IMAGE_ID_COLUMN, read_captions};
use crossmodal::data::synthetic::{SyntheticParams, generate};

fn best_of<T>(runs: usize, mut f: impl FnMut() -> T) -> (f64, T) {
    let mut best = f64::MAX;
    let mut last = None;
    for _ in 0..runs {
        let t = Instant::now();
        let out = f();
        best = best.min(t.elapsed().as_secs_f64());
        last = Some(out);
    }
    (best, last.expect("runs > 0"))
}

fn main() {
    let threads = rayon::current_num_threads();
    for (n, runs) in [(300, 3), (1000, 1)] {
        let dir = tempfile::tempdir().expect("tempdir");
        let params = SyntheticParams::new().n_images(n);
        let (secs, summary) = best_of(runs, || generate(dir.path(), &params).expect("generate"));
        let bytes: u64 = std::fs::read_dir(&summary.image_dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").metadata().expect("metadata").len())
            .sum();
        println!(
            "generate n={n}: {secs:.3} s ({:.2} ms/image, {threads} threads), images {:.1} MB",
            secs * 1e3 / n as f64,
            bytes as f64 / 1e6
        );
        let (secs, c) = best_of(5, || {
            read_captions(&summary.csv_path, IMAGE_ID_COLUMN).expect("read")
        });
        println!(
            "read_captions synthetic n={n}: {:.2} ms ({} rows)",
            secs * 1e3,
            c.ids.len()
        );
    }
    let real = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/teddy/attachment1/ImageWordData.csv"
    ));
    if real.exists() {
        let (secs, c) = best_of(20, || read_captions(real, IMAGE_ID_COLUMN).expect("read"));
        println!(
            "read_captions real ImageWordData.csv: {:.2} ms ({} rows)",
            secs * 1e3,
            c.ids.len()
        );
    } else {
        println!(
            "real ImageWordData.csv not found at {}: skipped",
            real.display()
        );
    }
}
