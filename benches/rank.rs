//! Benchmark of exact cosine top-K ranking (issue 5 target: 5,000 queries against 50,000 items,
//! dims 256–1,024, in < 2 s on 2 cores), and of the exact first-relevant-rank evaluation over the
//! same sizes, and of top-K under the inverted softmax: in two passes (its gallery penalties,
//! then top-K with them, as `evaluate` ranks) and in one (`top_k_inverted_softmax`, as `rank` and
//! `submit` do). Prints figures and peak RSS (VmHWM).
//!
//! Run: `cargo bench --bench rank` (env `RANK_Q`, `RANK_G` override the sizes).

mod common;

use common::{env_usize, peak_rss};
use std::time::Instant;

use crossmodal::retrieval::evaluate::first_relevant_ranks;
use crossmodal::retrieval::rank::top_k_inverted_softmax;
use crossmodal::retrieval::{Csls, TopK, l2_normalize_rows, top_k};
use ndarray::{Array2, Axis};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

fn uniform(rows: usize, cols: usize, seed: u64) -> Array2<f32> {
    let mut m = Array2::<f32>::zeros((rows, cols));
    m.axis_chunks_iter_mut(Axis(0), 1024)
        .into_par_iter()
        .enumerate()
        .for_each(|(b, mut blk)| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((b as u64 + 1) << 20));
            blk.iter_mut().for_each(|v| *v = rng.r#gen::<f32>() - 0.5);
        });
    m
}

fn main() {
    let nq = env_usize("RANK_Q", 5_000);
    let ng = env_usize("RANK_G", 50_000);
    println!(
        "rank bench: {nq} queries x {ng} gallery, rayon threads = {}",
        rayon::current_num_threads()
    );
    // Query i is a noisy copy of gallery item `source(i)`, so the top-K is not arbitrary.
    let source = |i: usize| (i * 7) % ng;
    let source_hits = |top: &TopK| {
        (0..nq)
            .filter(|&i| top.indices[[i, 0]] as usize == source(i))
            .count()
    };
    for d in [256usize, 512, 1024] {
        let mut g = uniform(ng, d, 1);
        let mut q = Array2::from_shape_fn((nq, d), |(i, j)| g[[source(i), j]]) + uniform(nq, d, 2);
        l2_normalize_rows(&mut g);
        l2_normalize_rows(&mut q);
        for block in [128usize, 512] {
            let t = Instant::now();
            let top = top_k(&q.view(), &g.view(), 10, block, None).expect("top_k");
            let secs = t.elapsed().as_secs_f64();
            let hits = source_hits(&top);
            println!(
                "  d = {d:4}, block {block}: top-10 in {secs:.2} s ({:.0} queries/s), top-1 = source item for {hits}/{nq}; peak RSS {}",
                nq as f64 / secs,
                peak_rss()
            );
        }
        let t = Instant::now();
        let penalties =
            Csls::inverted_softmax(&q.view(), &g.view(), &q.view(), 0.2).expect("penalties");
        let penalty_secs = t.elapsed().as_secs_f64();
        let top = top_k(&q.view(), &g.view(), 10, 512, Some(&penalties)).expect("top_k");
        let secs = t.elapsed().as_secs_f64();
        let hits = source_hits(&top);
        println!(
            "  d = {d:4}, block 512, inverted softmax T = 0.2 (bank: the queries): top-10 in {secs:.2} s ({penalty_secs:.2} s of it the penalties), top-1 = source item for {hits}/{nq}; peak RSS {}",
            peak_rss()
        );
        let t = Instant::now();
        let fused = top_k_inverted_softmax(&q.view(), &g.view(), 10, 256, 0.2).expect("top_k");
        let secs = t.elapsed().as_secs_f64();
        let differ = (0..nq)
            .filter(|&i| fused.indices.row(i) != top.indices.row(i))
            .count();
        println!(
            "  d = {d:4}, gallery blocks of 256, inverted softmax T = 0.2 in one pass: top-10 in {secs:.2} s, top-1 = source item for {}/{nq}, top-10 unlike the two passes' for {differ} queries; peak RSS {}",
            source_hits(&fused),
            peak_rss()
        );
        let positives: Vec<Vec<usize>> = (0..nq).map(|i| vec![source(i)]).collect();
        let t = Instant::now();
        let ranks =
            first_relevant_ranks(&q.view(), &g.view(), &positives, 256, None).expect("ranks");
        println!(
            "  d = {d:4}: exact ranks of all queries in {:.2} s (R@1 {:.3})",
            t.elapsed().as_secs_f64(),
            ranks.iter().filter(|&&r| r == 1).count() as f64 / nq as f64
        );
    }
}
