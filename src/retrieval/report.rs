//! Evaluation reports: `report.json`, `report.md`, a recall@K curve PNG and `report.html`.
//!
//! `report.json` has a fixed shape that scripts rely on:
//! `{"text_to_image": {"r1", "r5", "r10", "median_rank", "mean_rank", "queries", ...},
//!   "image_to_text": {...}, "folds": n, ...}`, recalls as fractions in [0, 1] (means over folds),
//! with extra keys `*_std` (sample std over folds), `gallery`, `recall_at` (every K evaluated) and
//! `chance_at`. The PNG is drawn with the `image` crate (lines and a 3x5 pixel digit font, no
//! font files): recall@K for K = 1.. in both directions with their chance levels (dashed), the
//! plot of Hodosh et al. (2013) style evaluations. `report.html` shows a seeded sample of queries
//! in both directions with their top-5 results and the true match marked.

use std::fmt::Write as _;
use std::io::Write as _;
use std::path::Path;

use image::{Rgb, RgbImage};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde_json::{Map, Value, json};

use super::RetrievalError;
use super::evaluate::{DirectionSummary, Summary};
use super::rank::TopK;
use crate::pipeline::artifacts::atomic_write;

fn direction_json(d: &DirectionSummary) -> Value {
    let r = |k: usize| d.recall.get(&k).map_or(0.0, |m| m.mean);
    let s = |k: usize| d.recall.get(&k).map_or(0.0, |m| m.std);
    let recall_at: Map<String, Value> = d
        .recall
        .iter()
        .map(|(k, m)| (k.to_string(), json!(m.mean)))
        .collect();
    let chance_at: Map<String, Value> = d
        .chance
        .iter()
        .map(|(k, c)| (k.to_string(), json!(c)))
        .collect();
    json!({
        "r1": r(1), "r5": r(5), "r10": r(10),
        "median_rank": d.median_rank.mean,
        "mean_rank": d.mean_rank.mean,
        "queries": d.queries,
        "r1_std": s(1), "r5_std": s(5), "r10_std": s(10),
        "median_rank_std": d.median_rank.std,
        "mean_rank_std": d.mean_rank.std,
        "gallery": d.gallery,
        "recall_at": recall_at,
        "chance_at": chance_at,
    })
}

/// The `report.json` value; `extra` keys (e.g. parameters) are added at the top level.
pub fn report_json(summary: &Summary, extra: Option<&Map<String, Value>>) -> Value {
    let mut top = Map::new();
    top.insert(
        "text_to_image".into(),
        direction_json(&summary.text_to_image),
    );
    top.insert(
        "image_to_text".into(),
        direction_json(&summary.image_to_text),
    );
    top.insert("folds".into(), json!(summary.folds));
    if let Some(extra) = extra {
        for (k, v) in extra {
            top.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
    Value::Object(top)
}

/// Writes [`report_json`] to `path`, pretty-printed, through a temporary file renamed over it.
pub fn write_report_json(
    path: &Path,
    summary: &Summary,
    extra: Option<&Map<String, Value>>,
) -> Result<(), RetrievalError> {
    let mut text = serde_json::to_string_pretty(&report_json(summary, extra))
        .expect("a JSON value always serializes");
    text.push('\n');
    atomic_write(path, |w| w.write_all(text.as_bytes()))?;
    Ok(())
}

/// The `report.md` text: a table of both directions (mean ± std over folds; with one fold, the
/// values alone) and chance levels, one column per recall level the evaluation measured.
pub fn report_markdown(summary: &Summary, title: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# {title}\n");
    let several = summary.folds > 1;
    let _ = writeln!(
        md,
        "Folds: {}. Recall@K in %{}; ranks are 1-based (first relevant item).\n",
        summary.folds,
        if several {
            ", mean ± std over folds"
        } else {
            ""
        }
    );
    let directions = [
        ("text → image", &summary.text_to_image),
        ("image → text", &summary.image_to_text),
    ];
    let ks: std::collections::BTreeSet<usize> = directions
        .iter()
        .flat_map(|(_, d)| d.recall.keys().copied())
        .collect();
    let headers: Vec<String> = ks.iter().map(|k| format!("R@{k}")).collect();
    let _ = writeln!(
        md,
        "| direction | queries | gallery | {} | median rank | mean rank |",
        headers.join(" | ")
    );
    let _ = writeln!(md, "|---|---:|---:|{}---:|---:|", "---:|".repeat(ks.len()));
    let spread = |mean: f64, std: f64, digits: usize| {
        if several {
            format!("{mean:.digits$} ± {std:.digits$}")
        } else {
            format!("{mean:.digits$}")
        }
    };
    for (name, d) in directions {
        let cells: Vec<String> = ks
            .iter()
            .map(|k| {
                d.recall.get(k).map_or("–".to_string(), |m| {
                    spread(100.0 * m.mean, 100.0 * m.std, 2)
                })
            })
            .collect();
        let _ = writeln!(
            md,
            "| {name} | {} | {} | {} | {} | {} |",
            d.queries,
            d.gallery,
            cells.join(" | "),
            spread(d.median_rank.mean, d.median_rank.std, 1),
            spread(d.mean_rank.mean, d.mean_rank.std, 1),
        );
    }
    let _ = writeln!(md, "\nChance level (random ranking), %:\n");
    let _ = writeln!(md, "| direction | {} |", headers.join(" | "));
    let _ = writeln!(md, "|---|{}", "---:|".repeat(ks.len()));
    for (name, d) in directions {
        let cells: Vec<String> = ks
            .iter()
            .map(|k| {
                d.chance
                    .get(k)
                    .map_or("–".to_string(), |v| format!("{:.3}", 100.0 * v))
            })
            .collect();
        let _ = writeln!(md, "| {name} | {} |", cells.join(" | "));
    }
    let _ = writeln!(
        md,
        "\nRecall curve (`recall_curve.png`): x = K from 1 to {}, y = recall 0..1 (grid every 0.1); \
         blue = text → image, orange = image → text, dashed = their chance levels.",
        summary
            .text_to_image
            .curve
            .len()
            .max(summary.image_to_text.curve.len())
    );
    md
}

/// Writes [`report_markdown`] to `path`, through a temporary file renamed over it.
pub fn write_report_markdown(
    path: &Path,
    summary: &Summary,
    title: &str,
) -> Result<(), RetrievalError> {
    atomic_write(path, |w| {
        w.write_all(report_markdown(summary, title).as_bytes())
    })?;
    Ok(())
}

const BLUE: Rgb<u8> = Rgb([31, 119, 180]);
const ORANGE: Rgb<u8> = Rgb([255, 127, 14]);
const GRID: Rgb<u8> = Rgb([225, 225, 225]);
const AXIS: Rgb<u8> = Rgb([40, 40, 40]);

/// 3x5 glyphs for "0123456789.", one row per 3 bits (MSB left).
const DIGITS: [[u8; 5]; 11] = [
    [7, 5, 5, 5, 7],
    [2, 6, 2, 2, 7],
    [7, 1, 7, 4, 7],
    [7, 1, 7, 1, 7],
    [5, 5, 7, 1, 1],
    [7, 4, 7, 1, 7],
    [7, 4, 7, 5, 7],
    [7, 1, 1, 1, 1],
    [7, 5, 7, 5, 7],
    [7, 5, 7, 1, 7],
    [0, 0, 0, 0, 2],
];

fn draw_text(img: &mut RgbImage, x: i64, y: i64, text: &str, scale: i64) {
    let mut cx = x;
    for ch in text.chars() {
        let g = match ch {
            '0'..='9' => ch as usize - '0' as usize,
            '.' => 10,
            _ => {
                cx += 4 * scale;
                continue;
            }
        };
        for (row, bits) in DIGITS[g].iter().enumerate() {
            for col in 0..3 {
                if bits & (4 >> col) != 0 {
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(
                                img,
                                cx + col * scale + dx,
                                y + row as i64 * scale + dy,
                                AXIS,
                            );
                        }
                    }
                }
            }
        }
        cx += 4 * scale;
    }
}

fn put(img: &mut RgbImage, x: i64, y: i64, c: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < img.width() && (y as u32) < img.height() {
        img.put_pixel(x as u32, y as u32, c);
    }
}

/// A 2-pixel line; `dash` > 0 leaves gaps every `dash` pixels.
fn line(img: &mut RgbImage, (x0, y0): (f64, f64), (x1, y1): (f64, f64), c: Rgb<u8>, dash: usize) {
    let steps = ((x1 - x0).abs().max((y1 - y0).abs()).ceil() as usize).max(1);
    for i in 0..=steps {
        if dash > 0 && (i / dash) % 2 == 1 {
            continue;
        }
        let t = i as f64 / steps as f64;
        let (x, y) = (
            (x0 + t * (x1 - x0)).round() as i64,
            (y0 + t * (y1 - y0)).round() as i64,
        );
        for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
            put(img, x + dx, y + dy, c);
        }
    }
}

/// Draws recall@K curves (both directions, with chance levels) as an RGB image.
pub fn recall_curve_image(summary: &Summary) -> RgbImage {
    let (w, h) = (800u32, 500u32);
    let (left, right, top, bottom) = (60.0, 20.0, 20.0, 50.0);
    let mut img = RgbImage::from_pixel(w, h, Rgb([255, 255, 255]));
    let kmax = summary
        .text_to_image
        .curve
        .len()
        .max(summary.image_to_text.curve.len())
        .max(2);
    let pw = w as f64 - left - right;
    let ph = h as f64 - top - bottom;
    let px = |k: usize| left + (k - 1) as f64 / (kmax - 1) as f64 * pw;
    let py = |r: f64| top + (1.0 - r.clamp(0.0, 1.0)) * ph;
    for i in 0..=10 {
        let y = py(i as f64 / 10.0);
        line(&mut img, (left, y), (left + pw, y), GRID, 0);
        if i % 2 == 0 {
            draw_text(
                &mut img,
                8,
                y as i64 - 5,
                &format!("{:.1}", i as f64 / 10.0),
                2,
            );
        }
    }
    let xticks = 5usize;
    for i in 0..=xticks {
        let k = 1 + (kmax - 1) * i / xticks;
        let x = px(k);
        line(&mut img, (x, top), (x, top + ph), GRID, 0);
        draw_text(
            &mut img,
            x as i64 - 6,
            (top + ph) as i64 + 10,
            &k.to_string(),
            2,
        );
    }
    line(&mut img, (left, top), (left, top + ph), AXIS, 0);
    line(&mut img, (left, top + ph), (left + pw, top + ph), AXIS, 0);
    for (d, c) in [
        (&summary.text_to_image, BLUE),
        (&summary.image_to_text, ORANGE),
    ] {
        for (curve, dash) in [(&d.chance_curve, 6), (&d.curve, 0)] {
            for (i, pair) in curve.windows(2).enumerate() {
                line(
                    &mut img,
                    (px(i + 1), py(pair[0])),
                    (px(i + 2), py(pair[1])),
                    c,
                    dash,
                );
            }
        }
    }
    img
}

/// Writes [`recall_curve_image`] to `path` as a PNG, through a temporary file renamed over it.
pub fn write_recall_curve_png(path: &Path, summary: &Summary) -> Result<(), RetrievalError> {
    let img = recall_curve_image(summary);
    let mut bytes = std::io::Cursor::new(Vec::new());
    img.write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|e| RetrievalError::Image(e.to_string()))?;
    atomic_write(path, |w| w.write_all(bytes.get_ref()))?;
    Ok(())
}

/// The link from a page in folder `page_dir` to the file `target`: a relative URL (each path
/// segment percent-encoded), so the report still shows its thumbnails when the work folder and
/// the data are moved or copied together, or served by a web server; a `file://` URL where no
/// relative path exists (folders that cannot be resolved).
pub fn image_href(page_dir: &Path, target: &Path) -> String {
    let resolved = (page_dir.canonicalize(), target.canonicalize());
    let (Ok(from), Ok(to)) = resolved else {
        let absolute = std::path::absolute(target).unwrap_or_else(|_| target.to_path_buf());
        return format!(
            "file://{}",
            percent_encode_path(&absolute.to_string_lossy())
        );
    };
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut segments: Vec<String> = vec!["..".to_string(); from.len() - common];
    segments.extend(
        to[common..]
            .iter()
            .map(|c| percent_encode_path(&c.as_os_str().to_string_lossy())),
    );
    segments.join("/")
}

/// `text` with every byte outside RFC 3986's unreserved characters and `/` percent-encoded.
fn percent_encode_path(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || b"-._~/".contains(&b) {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// What `report.html` shows. `text_to_image` / `image_to_text` hold the top-K (K >= 1; up to
/// 5 shown) of every text / image query; `image_hrefs` are the thumbnails' links as
/// [`image_href`] makes them (relative to the HTML file where it can).
#[derive(Debug, Clone, Copy)]
pub struct HtmlExamples<'a> {
    /// The page's title and heading.
    pub title: &'a str,
    /// Id of each image, shown under it.
    pub image_ids: &'a [String],
    /// The `src` of each image's thumbnail, in `image_ids` order (e.g. from [`image_href`]).
    pub image_hrefs: &'a [String],
    /// Id of each text.
    pub text_ids: &'a [String],
    /// The caption of each text, in `text_ids` order.
    pub texts: &'a [String],
    /// Index in `image_ids` of each text's true image: a result that matches it is marked.
    pub text_image: &'a [usize],
    /// Top-K of every text query, one row per text, indices into `image_ids`.
    pub text_to_image: &'a TopK,
    /// Top-K of every image query, one row per image, indices into `text_ids`.
    pub image_to_text: &'a TopK,
    /// Queries sampled per direction.
    pub samples: usize,
    /// Seed of the sample of queries shown.
    pub seed: u64,
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The `report.html` text.
pub fn report_html(ex: &HtmlExamples<'_>) -> Result<String, RetrievalError> {
    let n_txt = ex.text_ids.len();
    let n_img = ex.image_ids.len();
    for (what, got, expected) in [
        ("texts", ex.texts.len(), n_txt),
        ("text_image", ex.text_image.len(), n_txt),
        ("image_hrefs", ex.image_hrefs.len(), n_img),
        (
            "text_to_image rows",
            ex.text_to_image.indices.nrows(),
            n_txt,
        ),
        (
            "image_to_text rows",
            ex.image_to_text.indices.nrows(),
            n_img,
        ),
    ] {
        if got != expected {
            return Err(RetrievalError::LengthMismatch {
                what,
                expected,
                got,
            });
        }
    }
    let check = |top: &TopK, gallery: usize| {
        top.indices
            .indexed_iter()
            .find(|(_, g)| **g as usize >= gallery)
            .map_or(Ok(()), |((q, _), g)| {
                Err(RetrievalError::IndexOutOfRange {
                    query: q,
                    index: *g as usize,
                    gallery,
                })
            })
    };
    check(ex.text_to_image, n_img)?;
    check(ex.image_to_text, n_txt)?;
    if let Some((t, &i)) = ex.text_image.iter().enumerate().find(|(_, i)| **i >= n_img) {
        return Err(RetrievalError::IndexOutOfRange {
            query: t,
            index: i,
            gallery: n_img,
        });
    }
    let mut rng = ChaCha8Rng::seed_from_u64(ex.seed);
    let mut pick = |n: usize| {
        let mut v: Vec<usize> = (0..n).collect();
        v.shuffle(&mut rng);
        v.truncate(ex.samples);
        v
    };
    let (t_sample, i_sample) = (pick(n_txt), pick(n_img));
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>{0}</title><style>\
         body{{font-family:sans-serif}} .r{{display:inline-block;margin:4px;padding:3px;\
         border:3px solid #ddd;vertical-align:top;width:150px;font-size:12px}} .hit{{border-color:#2a2}}\
         img{{max-width:144px;max-height:144px}} .q{{margin:14px 0 2px}}</style></head><body>\n<h1>{0}</h1>\
         <p>Seeded sample (seed {1}) of queries with their top-5 results; a green border marks a true \
         match.</p>",
        esc(ex.title),
        ex.seed
    );
    let _ = writeln!(h, "<h2>Text → image</h2>");
    for &t in &t_sample {
        let _ = writeln!(
            h,
            "<div class=\"q\"><b>{}</b>: {}</div><div>",
            esc(&ex.text_ids[t]),
            esc(&ex.texts[t])
        );
        for (r, &g) in ex.text_to_image.indices.row(t).iter().take(5).enumerate() {
            let g = g as usize;
            let cls = if ex.text_image[t] == g { "r hit" } else { "r" };
            let _ = writeln!(
                h,
                "<div class=\"{cls}\">{}. <img src=\"{}\" alt=\"{}\"><br>{}</div>",
                r + 1,
                esc(&ex.image_hrefs[g]),
                esc(&ex.image_ids[g]),
                esc(&ex.image_ids[g])
            );
        }
        let _ = writeln!(h, "</div>");
    }
    let _ = writeln!(h, "<h2>Image → text</h2>");
    for &i in &i_sample {
        let _ = writeln!(
            h,
            "<div class=\"q\"><b>{}</b><br><img src=\"{}\" alt=\"{}\"></div><div>",
            esc(&ex.image_ids[i]),
            esc(&ex.image_hrefs[i]),
            esc(&ex.image_ids[i])
        );
        for (r, &t) in ex.image_to_text.indices.row(i).iter().take(5).enumerate() {
            let t = t as usize;
            let cls = if ex.text_image[t] == i { "r hit" } else { "r" };
            let _ = writeln!(
                h,
                "<div class=\"{cls}\">{}. {} <small>({})</small></div>",
                r + 1,
                esc(&ex.texts[t]),
                esc(&ex.text_ids[t])
            );
        }
        let _ = writeln!(h, "</div>");
    }
    let _ = writeln!(h, "</body></html>");
    Ok(h)
}

/// Writes [`report_html`] to `path`, through a temporary file renamed over it.
pub fn write_report_html(path: &Path, ex: &HtmlExamples<'_>) -> Result<(), RetrievalError> {
    let html = report_html(ex)?;
    atomic_write(path, |w| w.write_all(html.as_bytes()))?;
    Ok(())
}

/// Writes `report.json`, `report.md` and `recall_curve.png` into `dir`.
pub fn write_reports(
    dir: &Path,
    summary: &Summary,
    title: &str,
    extra: Option<&Map<String, Value>>,
) -> Result<(), RetrievalError> {
    write_report_json(&dir.join("report.json"), summary, extra)?;
    write_report_markdown(&dir.join("report.md"), summary, title)?;
    write_recall_curve_png(&dir.join("recall_curve.png"), summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::retrieval::evaluate::{EvalOptions, evaluate};
    use ndarray::Array2;

    #[test]
    fn image_hrefs_are_relative_and_percent_encoded() {
        let root = tempfile::tempdir().unwrap();
        let page = root.path().join("work/evaluate");
        let images = root.path().join("data/Image Data");
        std::fs::create_dir_all(&page).unwrap();
        std::fs::create_dir_all(&images).unwrap();
        let image = images.join("图#1.jpg");
        std::fs::write(&image, b"").unwrap();
        assert_eq!(
            super::image_href(&page, &image),
            "../../data/Image%20Data/%E5%9B%BE%231.jpg"
        );
        // Through a relative path with `..` in it, the same link.
        let indirect = page.join("../../data/Image Data/图#1.jpg");
        assert_eq!(
            super::image_href(&page, &indirect),
            super::image_href(&page, &image)
        );
        // A file that does not exist cannot be resolved: an absolute file:// URL.
        let missing = images.join("missing file.jpg");
        let href = super::image_href(&page, &missing);
        assert!(href.starts_with("file:///"), "{href}");
        assert!(href.ends_with("/Image%20Data/missing%20file.jpg"), "{href}");
        // A relative one is made absolute first.
        let href = super::image_href(&page, Path::new("no-such-folder/missing.jpg"));
        assert!(href.starts_with("file:///"), "{href}");
        assert!(href.ends_with("/no-such-folder/missing.jpg"), "{href}");
    }

    fn summary() -> Summary {
        let images = Array2::<f32>::eye(4);
        let text_image = vec![0, 0, 1, 1, 2, 2, 3, 3];
        // Texts of images 0, 1 point to their image; those of 2, 3 to image 0.
        let texts = Array2::from_shape_fn((8, 4), |(t, j)| {
            let target = if text_image[t] < 2 { text_image[t] } else { 0 };
            if j == target { 1.0 } else { 0.0 }
        });
        let e = evaluate(
            &images.view(),
            &texts.view(),
            &text_image,
            &EvalOptions::default(),
        )
        .unwrap();
        Summary::from_folds(&[e]).unwrap()
    }

    #[test]
    fn json_has_the_contract_shape() {
        let mut extra = Map::new();
        extra.insert("dims".into(), json!(128));
        extra.insert("folds".into(), json!(99)); // must not override
        let v = report_json(&summary(), Some(&extra));
        for dir in ["text_to_image", "image_to_text"] {
            for key in ["r1", "r5", "r10", "median_rank", "mean_rank"] {
                assert!(v[dir][key].is_f64(), "{dir}.{key} = {}", v[dir][key]);
            }
            assert!(v[dir]["queries"].is_u64());
            let r1 = v[dir]["r1"].as_f64().unwrap();
            assert!((0.0..=1.0).contains(&r1));
        }
        assert_eq!(v["folds"], json!(1));
        assert_eq!(v["dims"], json!(128));
        // Text → image: texts of images 0, 1 hit at rank 1 (4 of 8).
        assert_eq!(v["text_to_image"]["r1"], json!(0.5));
        assert_eq!(v["text_to_image"]["queries"], json!(8));
        assert_eq!(v["image_to_text"]["queries"], json!(4));
    }

    #[test]
    fn writes_all_files() {
        let dir = tempfile::tempdir().unwrap();
        let s = summary();
        write_reports(dir.path(), &s, "test", None).unwrap();
        let json: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.path().join("report.json")).unwrap())
                .unwrap();
        assert_eq!(json["folds"], json!(1));
        let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
        assert!(md.contains("| text → image | 8 | 4 | 50.00 |"), "{md}");
        assert!(!md.contains("±"), "one fold has no spread: {md}");
        let png = image::open(dir.path().join("recall_curve.png"))
            .unwrap()
            .to_rgb8();
        assert_eq!(png.dimensions(), (800, 500));
        // Both curve colours are present.
        assert!(png.pixels().any(|p| *p == BLUE) && png.pixels().any(|p| *p == ORANGE));
    }

    #[test]
    fn html_marks_true_matches_and_escapes() {
        let image_ids: Vec<String> = (0..6).map(|i| format!("img{i}")).collect();
        let hrefs: Vec<String> = image_ids
            .iter()
            .map(|i| format!("../images/{i}.jpg"))
            .collect();
        let text_ids: Vec<String> = (0..6).map(|t| format!("t{t}")).collect();
        let texts: Vec<String> = (0..6).map(|t| format!("一只<猫> {t}")).collect();
        let text_image: Vec<usize> = (0..6).collect();
        let top = TopK {
            indices: Array2::from_shape_fn((6, 5), |(q, j)| ((q + j) % 6) as u32),
            scores: Array2::zeros((6, 5)),
        };
        let ex = HtmlExamples {
            title: "t",
            image_ids: &image_ids,
            image_hrefs: &hrefs,
            text_ids: &text_ids,
            texts: &texts,
            text_image: &text_image,
            text_to_image: &top,
            image_to_text: &top,
            samples: 3,
            seed: 1,
        };
        let h = report_html(&ex).unwrap();
        assert_eq!(
            h.matches("class=\"r hit\"").count(),
            6,
            "each sampled query ranks its match first"
        );
        assert!(h.contains("一只&lt;猫&gt;") && !h.contains("<猫>"));
        assert_eq!(
            h,
            report_html(&ex).unwrap(),
            "seeded sample is deterministic"
        );
        let bad = HtmlExamples {
            text_image: &text_image[..5],
            ..ex
        };
        assert!(report_html(&bad).is_err());
    }
}
