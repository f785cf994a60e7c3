//! Speed and a text-only sanity figure of `crossmodal::text` on the Flickr8k-CN captions.
//!
//! Prints (1) segmentation throughput (normalise + jieba, captions/s, one thread), (2) fit and
//! transform times of each block, (3) a text-only proxy of retrieval quality used to see what
//! each block adds, on a VALIDATION part of the training split (the last 1,000 of the 6,000
//! Flickr8k train images in `flickr8ktrain.txt` order; features fitted on the captions of the
//! other 5,000): each validation image's caption #0 queries the 4,000 captions #1–#4 of all
//! validation images, cosine on L2-normalised combined rows, and R@K counts a hit when a
//! caption of the same image is in the top K (Hodosh et al. 2013 style R@K, caption-to-caption).
//! Not a substitute for the image–text evaluation: it only says which text view groups
//! captions of the same picture.
//!
//! ```sh
//! cargo bench --bench text_features
//! ```

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::Instant;

use crossmodal::sparse::CsrMatrix;
use crossmodal::text::normalize::{NormalizeParams, normalize};
use crossmodal::text::{SegmentParams, Segmenter, SubwordParams, TextFeatureParams, WordVectors};
use indicatif::ProgressBar;

/// Captions of each image, by image id.
type CaptionsByImage = HashMap<String, Vec<String>>;

/// The train image ids, in `flickr8ktrain.txt` order, and their Chinese captions.
fn load() -> Option<(Vec<String>, CaptionsByImage)> {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/data/flickr8k"
    ));
    let ids_text = std::fs::read_to_string(dir.join("flickr8ktrain.txt")).ok()?;
    let ids: Vec<String> = ids_text.split_whitespace().map(str::to_owned).collect();
    let train: HashSet<&str> = ids.iter().map(String::as_str).collect();
    let text = std::fs::read_to_string(dir.join("flickr8kzhc.caption.txt")).ok()?;
    let mut by_image: HashMap<String, Vec<String>> = HashMap::new();
    for line in text.lines() {
        let Some((key, caption)) = line.split_once(' ') else {
            continue;
        };
        let image = key.split(".jpg").next().unwrap_or_default();
        if train.contains(image) {
            by_image
                .entry(image.to_owned())
                .or_default()
                .push(caption.to_owned());
        }
    }
    Some((ids, by_image))
}

fn l2_rows(m: &CsrMatrix) -> CsrMatrix {
    let mut out = m.clone();
    for i in 0..out.n_rows() {
        let values = out.row_values_mut(i);
        let n = values.iter().map(|v| v * v).sum::<f32>().sqrt();
        if n > 0.0 {
            values.iter_mut().for_each(|v| *v /= n);
        }
    }
    out
}

/// R@1, R@5, R@10 of caption-to-caption retrieval (see the module documentation).
fn recall(queries: &CsrMatrix, gallery: &CsrMatrix, gallery_image: &[usize]) -> [f64; 3] {
    let (q, g) = (l2_rows(queries), l2_rows(gallery));
    let mut postings: Vec<Vec<(u32, f32)>> = vec![Vec::new(); g.n_cols()];
    for r in 0..g.n_rows() {
        let (cols, vals) = g.row(r);
        for (&c, &v) in cols.iter().zip(vals) {
            postings[c as usize].push((r as u32, v));
        }
    }
    let mut hits = [0usize; 3];
    let mut scores = vec![0f32; g.n_rows()];
    for i in 0..q.n_rows() {
        scores.iter_mut().for_each(|s| *s = 0.0);
        let (cols, vals) = q.row(i);
        for (&c, &v) in cols.iter().zip(vals) {
            for &(r, gv) in &postings[c as usize] {
                scores[r as usize] += v * gv;
            }
        }
        // Rank of the best-placed caption of image i: how many captions of other images score
        // strictly higher than it.
        let best_own = (0..g.n_rows())
            .filter(|&r| gallery_image[r] == i)
            .map(|r| scores[r])
            .fold(f32::NEG_INFINITY, f32::max);
        let rank = (0..g.n_rows())
            .filter(|&r| gallery_image[r] != i && scores[r] > best_own)
            .count();
        for (h, k) in hits.iter_mut().zip([1, 5, 10]) {
            if rank < k {
                *h += 1;
            }
        }
    }
    hits.map(|h| 100.0 * h as f64 / q.n_rows() as f64)
}

fn main() {
    let Some((ids, by_image)) = load() else {
        println!("SKIPPED: no Flickr8k-CN data under ../shared/data/flickr8k");
        return;
    };
    let all: Vec<String> = ids.iter().flat_map(|id| by_image[id].clone()).collect();
    println!("Flickr8k-CN train captions: {}", all.len());

    // 1. Segmentation throughput, one thread.
    let seg = Segmenter::new(&SegmentParams::default()).expect("segmenter");
    let np = NormalizeParams::default();
    let start = Instant::now();
    let mut n_tokens = 0usize;
    for c in &all {
        n_tokens += seg.tokens(&normalize(c, &np)).len();
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "normalise + segment (1 thread): {:.0} captions/s ({} captions, {} tokens, {:.2} s)",
        all.len() as f64 / secs,
        all.len(),
        n_tokens,
        secs
    );

    // 2. Word-vector training time on all 30,000 train captions.
    let corpus: Vec<Vec<String>> = all.iter().map(|c| seg.tokens(&normalize(c, &np))).collect();
    for threads in [1usize, 2] {
        let start = Instant::now();
        let v = WordVectors::train(&SubwordParams::default(), &corpus, 42, threads).expect("train");
        println!(
            "subword skip-gram training (dim 100, 10 epochs, {} words), {threads} thread(s): {:.2} s",
            v.vocabulary().len(),
            start.elapsed().as_secs_f64()
        );
    }

    // 3. Validation proxy: fit on the first 5,000 train images, evaluate on the last 1,000.
    let (fit_ids, val_ids) = ids.split_at(ids.len() - 1000);
    let fit_texts: Vec<String> = fit_ids.iter().flat_map(|id| by_image[id].clone()).collect();
    let queries: Vec<String> = val_ids.iter().map(|id| by_image[id][0].clone()).collect();
    let mut gallery = Vec::new();
    let mut gallery_image = Vec::new();
    for (i, id) in val_ids.iter().enumerate() {
        for c in &by_image[id][1..] {
            gallery.push(c.clone());
            gallery_image.push(i);
        }
    }
    let configs: [(&str, bool, bool, bool); 7] = [
        ("char 1-2", false, true, false),
        ("word", true, false, false),
        ("sentence (SIF)", false, false, true),
        ("word + char", true, true, false),
        ("char + sentence", false, true, true),
        ("word + sentence", true, false, true),
        ("word + char + sentence", true, true, true),
    ];
    println!(
        "\ncaption->caption proxy on 1,000 validation train images (fit on the other 5,000; \
         weights 1):"
    );
    println!("| blocks | fit s | transform s | R@1 | R@5 | R@10 |\n|---|---|---|---|---|---|");
    for (name, w, c, s) in configs {
        let params = TextFeatureParams::new()
            .word_block(w, 1.0)
            .char_block(c, 1.0)
            .sentence_block(s, 1.0)
            .seed(42)
            .threads(1);
        let start = Instant::now();
        let fitted = params
            .check()
            .expect("params")
            .fit(&fit_texts, &[], &ProgressBar::hidden())
            .expect("fit");
        let fit_s = start.elapsed().as_secs_f64();
        let start = Instant::now();
        let fq = fitted.transform(&queries, &ProgressBar::hidden());
        let fg = fitted.transform(&gallery, &ProgressBar::hidden());
        let tr_s = start.elapsed().as_secs_f64();
        let r = recall(&fq.combined, &fg.combined, &gallery_image);
        println!(
            "| {name} | {fit_s:.2} | {tr_s:.2} | {:.1} | {:.1} | {:.1} |",
            r[0], r[1], r[2]
        );
    }
}
