//! Benchmark of the CCA fit (issue 5 target: 50,000 pairs of 4,096-dim views in < 60 s on 2
//! cores), on random views with a planted 32-dim correlated subspace, plus the dense
//! eigendecomposition / SVD timings that decided the solver (randomized PCA pre-reduction, then
//! LAPACK `syevd`/`gesdd` at <= 2,048 dims). Prints figures and peak RSS (VmHWM).
//!
//! Run: `cargo bench --bench fusion` (env `FUSION_N`, `FUSION_D`, `FUSION_PCA` override the size).

mod common;

use common::{env_usize, peak_rss};
use std::time::Instant;

use crossmodal::fusion::CcaParams;
use crossmodal::matrix::FeatureMatrix;
use ndarray::{Array2, Axis};
use ndarray_linalg::{Eigh, JobSvd, SVDDC, UPLO};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// Standard normals, generated in parallel row blocks with per-block seeds.
fn gaussian(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut m = Array2::<f32>::zeros((rows, cols));
    m.axis_chunks_iter_mut(Axis(0), 1024)
        .into_par_iter()
        .enumerate()
        .for_each(|(b, mut blk)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((b as u64 + 1) << 20));
            for v in blk.iter_mut() {
                let u1: f32 = rng.r#gen::<f32>().max(1e-30);
                let u2: f32 = rng.r#gen::<f32>();
                *v = (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos();
            }
        });
    m
}

fn main() {
    let n = env_usize("FUSION_N", 50_000);
    let d = env_usize("FUSION_D", 4096);
    let pca = env_usize("FUSION_PCA", 512);
    let latent = 32;
    println!(
        "fusion bench: n = {n}, d = {d} per view, planted latent dims = {latent}, PCA to {pca}, rayon threads = {}",
        rayon::current_num_threads()
    );

    // Dense eigh / SVD at the sizes the fit uses.
    for k in [512usize, 1024, 2048] {
        let a = gaussian(k, k, 7).mapv(|v| v as f64);
        let c = a.t().dot(&a);
        let t = Instant::now();
        let _ = c.eigh(UPLO::Lower).expect("eigh");
        let te = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let _ = c.svddc(JobSvd::Some).expect("svddc");
        println!(
            "  LAPACK f64 {k}x{k}: eigh (syevd) {te:.2} s, SVD divide-and-conquer (gesdd) {:.2} s",
            t.elapsed().as_secs_f64()
        );
    }

    let t = Instant::now();
    let z = gaussian(n, latent, 1);
    let ax = gaussian(latent, d, 2);
    let ay = gaussian(latent, d, 3);
    // Signal in 32 directions, isotropic noise elsewhere: population canonical correlations of
    // the latent factors are high (signal variance ~d/32 per factor vs noise 4 per direction).
    let x = z.dot(&ax) + gaussian(n, d, 4) * 2.0;
    let y = z.dot(&ay) + gaussian(n, d, 5) * 2.0;
    println!(
        "  data generated in {:.1} s (2 x {:.0} MiB)",
        t.elapsed().as_secs_f64(),
        (n * d * 4) as f64 / 1048576.0
    );
    let (x, y) = (FeatureMatrix::Dense(x), FeatureMatrix::Dense(y));

    for (q, label) in [(2usize, "power_iters = 2"), (1, "power_iters = 1")] {
        let t = Instant::now();
        let cca = CcaParams::new(256)
            .ridge(0.1)
            .pca_dims(pca)
            .power_iters(q)
            .check()
            .expect("params")
            .fit(&x, &y)
            .expect("fit");
        let secs = t.elapsed().as_secs_f64();
        let c = cca.correlations();
        println!(
            "  CCA fit ({label}): {secs:.1} s; correlations [0] {:.4} [31] {:.4} [32] {:.4} [255] {:.4}; peak RSS {}",
            c[0],
            c[31],
            c[32],
            c[c.len() - 1],
            peak_rss()
        );
    }
}
