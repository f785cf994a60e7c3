//! A generator of small synthetic datasets in the layout of the Teddy Cup 2024 problem B
//! attachment 1 (`ImageWordData.csv` + `ImageData/*.jpg`), for tests, examples and benches.
//!
//! The real data cannot be shipped with the crate and is noisy web alt-text, so this module draws
//! its own: coloured shapes (circle, square, triangle, star, ellipse), one to three of a kind at a
//! named position, on solid, gradient or textured backgrounds (stripes, checkerboard, dots,
//! noise), each with a Chinese caption that says what is drawn (colour, shape, count, position,
//! background) in varied wordings, some with the Noah-Wukong person mask `<人名>` (Gu et al.,
//! "Wukong: A 100 Million Large-scale Chinese Cross-modal Pre-training Benchmark", NeurIPS 2022,
//! which the contest's captions follow). Colour histograms, local gradient features and word
//! features therefore share a real signal, in the spirit of the synthetic "shapes" benchmarks
//! used to sanity-check retrieval (e.g. CLEVR, Johnson et al., CVPR 2017), at a tiny scale.
//!
//! The drawing is a small rasteriser of its own (analytic discs and ellipses, even-odd polygons,
//! 2x2 supersampled edges) on an [`image::RgbImage`], encoded as JPEG by the `image` crate. Ids
//! look like the contest's, `Image<8-digit group>-<4-digit index>.jpg`, with gaps between
//! indices, and the CSV is sorted by id. Everything is a function of [`SyntheticParams::seed`]:
//! the scenes are planned in order from one ChaCha8 stream, then images are rendered and written
//! in parallel, each from its own planned scene, so the bytes do not depend on the thread count.
//!
//! The bad cases of the real attachment 1 (see `shared/data/teddy/SOURCE.md`) are reproduced
//! when [`SyntheticParams::bad_cases`] is on (the default), one image each: a GIF named `.jpg`
//! (animated, two frames), a PNG with alpha named `.jpg`, a greyscale JPEG, a truncated JPEG (the
//! first half of its bytes), a 0-byte file, an image listed in the CSV but missing, and a caption
//! with an embedded newline (quoted in the CSV). The CSV can be written in GBK with CRLF, as Excel
//! on a Chinese Windows saves it. [`SyntheticSummary::bad`] lists the ids of each case.

use std::path::{Path, PathBuf};

use ::image::codecs::gif::{GifEncoder, Repeat};
use ::image::codecs::jpeg::JpegEncoder;
use ::image::codecs::png::PngEncoder;
use ::image::{Delay, Frame, ImageEncoder, Rgb, RgbImage, Rgba, RgbaImage};
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::DataError;
use crate::error::IoError;

/// Encoding of the generated CSV file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CsvEncoding {
    /// UTF-8 without BOM, as the contest ships it.
    Utf8,
    /// UTF-8 with a BOM, as Excel's "CSV UTF-8" saves.
    Utf8Bom,
    /// GBK, as Excel's plain "CSV" saves on a Chinese Windows.
    Gbk,
}

/// Parameters of [`generate`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SyntheticParams {
    /// Number of CSV rows (images), in `[1, 100000]`; at least 10 with `bad_cases`.
    pub n_images: usize,
    /// Seed of every random choice.
    pub seed: u64,
    /// Smallest image width in pixels.
    pub min_width: u32,
    /// Largest image width in pixels.
    pub max_width: u32,
    /// Smallest image height in pixels.
    pub min_height: u32,
    /// Largest image height in pixels.
    pub max_height: u32,
    /// JPEG quality in `[1, 100]`.
    pub jpeg_quality: u8,
    /// Write the bad cases (GIF, RGBA PNG, greyscale, truncated, empty, missing, multi-line).
    pub bad_cases: bool,
    /// Encoding of `ImageWordData.csv`.
    pub csv_encoding: CsvEncoding,
    /// End CSV lines with CRLF instead of LF.
    pub crlf: bool,
    /// The 8-digit image group of the first id (`Image<group>-<index>.jpg`).
    pub group: u32,
}

impl Default for SyntheticParams {
    fn default() -> Self {
        Self {
            n_images: 300,
            seed: 0,
            min_width: 160,
            max_width: 320,
            min_height: 120,
            max_height: 240,
            jpeg_quality: 85,
            bad_cases: true,
            csv_encoding: CsvEncoding::Utf8,
            crlf: false,
            group: 19990001,
        }
    }
}

impl SyntheticParams {
    /// The defaults: 300 images of 160..=320 x 120..=240 pixels, seed 0, bad cases on, UTF-8.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the number of images.
    pub fn n_images(mut self, n: usize) -> Self {
        self.n_images = n;
        self
    }

    /// Sets the seed.
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets the range of image sizes (inclusive).
    pub fn size_range(mut self, min: (u32, u32), max: (u32, u32)) -> Self {
        (self.min_width, self.min_height) = min;
        (self.max_width, self.max_height) = max;
        self
    }

    /// Sets the JPEG quality.
    pub fn jpeg_quality(mut self, quality: u8) -> Self {
        self.jpeg_quality = quality;
        self
    }

    /// Turns the bad cases on or off.
    pub fn bad_cases(mut self, on: bool) -> Self {
        self.bad_cases = on;
        self
    }

    /// Sets the CSV encoding.
    pub fn csv_encoding(mut self, encoding: CsvEncoding) -> Self {
        self.csv_encoding = encoding;
        self
    }

    /// Ends CSV lines with CRLF.
    pub fn crlf(mut self, on: bool) -> Self {
        self.crlf = on;
        self
    }

    /// Sets the 8-digit group of the first id.
    pub fn group(mut self, group: u32) -> Self {
        self.group = group;
        self
    }

    /// Checks the parameters.
    pub fn check(&self) -> Result<&Self, DataError> {
        let param = |name, value: &dyn ToString, message| {
            Err(DataError::Param {
                name,
                value: value.to_string(),
                message,
            })
        };
        let min_n = if self.bad_cases { N_BAD_CASES + 3 } else { 1 };
        if self.n_images < min_n || self.n_images > 100_000 {
            return param(
                "n_images",
                &self.n_images,
                "must be in [1, 100000], and at least 10 with bad_cases",
            );
        }
        for (name, lo, hi) in [
            ("width", self.min_width, self.max_width),
            ("height", self.min_height, self.max_height),
        ] {
            if !(32..=4096).contains(&lo) || !(lo..=4096).contains(&hi) {
                return param(
                    name,
                    &format!("{lo}..={hi}"),
                    "range must satisfy 32 <= min <= max <= 4096",
                );
            }
        }
        if !(1..=100).contains(&self.jpeg_quality) {
            return param("jpeg_quality", &self.jpeg_quality, "must be in [1, 100]");
        }
        // Gaps between indices average 2, so n images span at most n * 3 / 10000 + 1 groups.
        let last_group = self.group as u64 + (self.n_images as u64 * 3) / 10_000 + 1;
        if self.group < 10_000_000 || last_group > 99_999_999 {
            return param(
                "group",
                &self.group,
                "must have 8 digits and leave room for the following groups",
            );
        }
        Ok(self)
    }
}

const N_BAD_CASES: usize = 7;

/// The ids of each bad case written by [`generate`] (each empty when bad cases are off).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BadCases {
    /// An animated GIF (2 frames) named `.jpg`.
    pub gif: Vec<String>,
    /// A PNG with an alpha channel named `.jpg`.
    pub png_rgba: Vec<String>,
    /// A single-channel (greyscale) JPEG; its caption still names colours.
    pub greyscale_jpeg: Vec<String>,
    /// A JPEG cut to the first half of its bytes.
    pub truncated_jpeg: Vec<String>,
    /// A 0-byte file.
    pub empty_file: Vec<String>,
    /// Listed in the CSV, but no file.
    pub missing: Vec<String>,
    /// Its caption holds an embedded newline (quoted in the CSV); the image is fine.
    pub multiline_caption: Vec<String>,
}

/// What [`generate`] wrote.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyntheticSummary {
    /// `dir/ImageWordData.csv`.
    pub csv_path: PathBuf,
    /// `dir/ImageData`.
    pub image_dir: PathBuf,
    /// All ids, in CSV order (sorted).
    pub ids: Vec<String>,
    /// The captions as written (the multi-line one holds its `\n`), parallel to `ids`.
    pub captions: Vec<String>,
    /// What each image shows, parallel to `ids`.
    pub scenes: Vec<Scene>,
    /// The ids of the bad cases.
    pub bad: BadCases,
    /// Encoding of the CSV.
    pub csv_encoding: CsvEncoding,
}

/// A colour of the palette, with its Chinese name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Colour {
    /// `红色`, drawn as `[220, 30, 30]`.
    Red,
    /// `橙色`, drawn as `[245, 130, 20]`.
    Orange,
    /// `黄色`, drawn as `[240, 220, 30]`.
    Yellow,
    /// `绿色`, drawn as `[40, 170, 60]`.
    Green,
    /// `青色`, drawn as `[0, 190, 190]`.
    Cyan,
    /// `蓝色`, drawn as `[30, 70, 210]`.
    Blue,
    /// `紫色`, drawn as `[140, 50, 180]`.
    Purple,
    /// `粉色`, drawn as `[250, 150, 190]`.
    Pink,
    /// `白色`, drawn as `[245, 245, 245]`.
    White,
    /// `黑色`, drawn as `[20, 20, 20]`.
    Black,
    /// `灰色`, drawn as `[128, 128, 128]`.
    Grey,
    /// `棕色`, drawn as `[130, 80, 40]`.
    Brown,
}

const COLOURS: [Colour; 12] = [
    Colour::Red,
    Colour::Orange,
    Colour::Yellow,
    Colour::Green,
    Colour::Cyan,
    Colour::Blue,
    Colour::Purple,
    Colour::Pink,
    Colour::White,
    Colour::Black,
    Colour::Grey,
    Colour::Brown,
];

impl Colour {
    /// The sRGB value drawn.
    pub fn rgb(self) -> [u8; 3] {
        match self {
            Colour::Red => [220, 30, 30],
            Colour::Orange => [245, 130, 20],
            Colour::Yellow => [240, 220, 30],
            Colour::Green => [40, 170, 60],
            Colour::Cyan => [0, 190, 190],
            Colour::Blue => [30, 70, 210],
            Colour::Purple => [140, 50, 180],
            Colour::Pink => [250, 150, 190],
            Colour::White => [245, 245, 245],
            Colour::Black => [20, 20, 20],
            Colour::Grey => [128, 128, 128],
            Colour::Brown => [130, 80, 40],
        }
    }

    /// The Chinese name, e.g. `红色`.
    pub fn name_zh(self) -> &'static str {
        match self {
            Colour::Red => "红色",
            Colour::Orange => "橙色",
            Colour::Yellow => "黄色",
            Colour::Green => "绿色",
            Colour::Cyan => "青色",
            Colour::Blue => "蓝色",
            Colour::Purple => "紫色",
            Colour::Pink => "粉色",
            Colour::White => "白色",
            Colour::Black => "黑色",
            Colour::Grey => "灰色",
            Colour::Brown => "棕色",
        }
    }

    /// The second colour of a textured background of this colour: lighter, or darker for light
    /// colours.
    pub fn texture_partner(self) -> [u8; 3] {
        let c = self.rgb();
        let luma = 0.299 * c[0] as f32 + 0.587 * c[1] as f32 + 0.114 * c[2] as f32;
        if luma > 180.0 {
            mix(c, [0, 0, 0], 0.35)
        } else {
            mix(c, [255, 255, 255], 0.55)
        }
    }
}

/// A shape kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// A disc of radius `r` (`圆形`, `圆`).
    Circle,
    /// A square with corners at about 1.2 `r` from its centre (`正方形`, `方块`, `方形`).
    Square,
    /// An equilateral triangle with corners at `r`, pointing up before rotation (`三角形`, `三角`).
    Triangle,
    /// A five-pointed star, points at `r` and inner corners at 0.45 `r` (`五角星`, `星星`, `星形`).
    Star,
    /// An ellipse with semi-axes `r` and 0.55 `r` (`椭圆`, `椭圆形`).
    Ellipse,
}

const SHAPES: [Shape; 5] = [
    Shape::Circle,
    Shape::Square,
    Shape::Triangle,
    Shape::Star,
    Shape::Ellipse,
];

impl Shape {
    fn names_zh(self) -> &'static [&'static str] {
        match self {
            Shape::Circle => &["圆形", "圆"],
            Shape::Square => &["正方形", "方块", "方形"],
            Shape::Triangle => &["三角形", "三角"],
            Shape::Star => &["五角星", "星星", "星形"],
            Shape::Ellipse => &["椭圆", "椭圆形"],
        }
    }
}

/// Where a group of shapes sits in the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Position {
    /// Anchored at (0.25, 0.25) (`左上角`, `左上方`).
    TopLeft,
    /// Anchored at (0.75, 0.25) (`右上角`, `右上方`).
    TopRight,
    /// Anchored at (0.25, 0.75) (`左下角`, `左下方`).
    BottomLeft,
    /// Anchored at (0.75, 0.75) (`右下角`, `右下方`).
    BottomRight,
    /// Anchored at (0.5, 0.5) (`中间`, `中央`, `正中间`).
    Centre,
    /// Anchored at (0.2, 0.5) (`左边`, `左侧`); a generated group stands in a column.
    Left,
    /// Anchored at (0.8, 0.5) (`右边`, `右侧`); a generated group stands in a column.
    Right,
    /// Anchored at (0.5, 0.2) (`上方`, `上面`, `顶部`).
    Top,
    /// Anchored at (0.5, 0.8) (`下方`, `下面`, `底部`).
    Bottom,
}

const POSITIONS: [Position; 9] = [
    Position::TopLeft,
    Position::TopRight,
    Position::BottomLeft,
    Position::BottomRight,
    Position::Centre,
    Position::Left,
    Position::Right,
    Position::Top,
    Position::Bottom,
];

impl Position {
    /// The anchor as fractions of width and height.
    pub fn anchor(self) -> (f32, f32) {
        match self {
            Position::TopLeft => (0.25, 0.25),
            Position::TopRight => (0.75, 0.25),
            Position::BottomLeft => (0.25, 0.75),
            Position::BottomRight => (0.75, 0.75),
            Position::Centre => (0.5, 0.5),
            Position::Left => (0.2, 0.5),
            Position::Right => (0.8, 0.5),
            Position::Top => (0.5, 0.2),
            Position::Bottom => (0.5, 0.8),
        }
    }

    fn names_zh(self) -> &'static [&'static str] {
        match self {
            Position::TopLeft => &["左上角", "左上方"],
            Position::TopRight => &["右上角", "右上方"],
            Position::BottomLeft => &["左下角", "左下方"],
            Position::BottomRight => &["右下角", "右下方"],
            Position::Centre => &["中间", "中央", "正中间"],
            Position::Left => &["左边", "左侧"],
            Position::Right => &["右边", "右侧"],
            Position::Top => &["上方", "上面", "顶部"],
            Position::Bottom => &["下方", "下面", "底部"],
        }
    }
}

/// The kind of background.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum BackgroundKind {
    /// The main colour everywhere.
    Solid,
    /// From the main colour at the top towards its texture partner at the bottom.
    Gradient,
    /// Bands alternating the main colour and its partner every `period` pixels, per `orientation`.
    Stripes,
    /// Squares of `period` pixels, alternating the main colour and its partner.
    Checkerboard,
    /// Partner-coloured dots of diameter `period / 2`, one per `period`-pixel cell.
    Dots,
    /// The main colour plus uniform noise in [-40, 40] per pixel and channel, from `noise_seed`.
    Noise,
}

const BACKGROUNDS: [BackgroundKind; 6] = [
    BackgroundKind::Solid,
    BackgroundKind::Gradient,
    BackgroundKind::Stripes,
    BackgroundKind::Checkerboard,
    BackgroundKind::Dots,
    BackgroundKind::Noise,
];

/// A background: its kind, main colour, and texture geometry.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Background {
    /// The pattern.
    pub kind: BackgroundKind,
    /// The main colour; textures alternate it with [`Colour::texture_partner`].
    pub colour: Colour,
    /// Period of the texture in pixels (stripes, checkerboard, dots).
    pub period: u32,
    /// 0 horizontal, 1 vertical, 2 diagonal (stripes only).
    pub orientation: u8,
    /// Seed of the noise texture.
    pub noise_seed: u64,
}

/// One drawn shape: centre and size `r` in pixels (what `r` measures depends on the [`Shape`]),
/// rotation in radians.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Instance {
    /// Horizontal centre, in pixels from the left edge.
    pub cx: f32,
    /// Vertical centre, in pixels from the top edge.
    pub cy: f32,
    /// Size in pixels; what it measures depends on the [`Shape`].
    pub r: f32,
    /// Rotation in radians, clockwise on screen (y points down); circles ignore it.
    pub angle: f32,
}

/// One to three shapes of one kind and colour at one position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShapeGroup {
    /// The kind of every shape of the group.
    pub shape: Shape,
    /// The fill colour of every shape of the group.
    pub colour: Colour,
    /// Where the group is placed, and how the caption says so.
    pub position: Position,
    /// The shapes drawn.
    pub instances: Vec<Instance>,
}

/// What an image shows: its size, background, and shape groups (drawn in order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scene {
    /// Image width in pixels.
    pub width: u32,
    /// Image height in pixels.
    pub height: u32,
    /// What is painted first.
    pub background: Background,
    /// The shape groups, painted over the background in order.
    pub groups: Vec<ShapeGroup>,
}

/// Writes `dir/ImageWordData.csv` and `dir/ImageData/*.jpg` in the layout of the contest's
/// attachment 1 and returns what was written. Existing files of the same names are overwritten.
pub fn generate(dir: &Path, params: &SyntheticParams) -> Result<SyntheticSummary, DataError> {
    params.check()?;
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed);
    let n = params.n_images;

    let ids = make_ids(params.group, n, &mut rng);
    let scenes: Vec<Scene> = (0..n).map(|_| plan_scene(params, &mut rng)).collect();
    let mut captions: Vec<String> = scenes.iter().map(|s| caption(s, &mut rng)).collect();

    let mut kinds = vec![FileKind::Jpeg; n];
    let mut bad = BadCases::default();
    if params.bad_cases {
        let picks = rand::seq::index::sample(&mut rng, n, N_BAD_CASES).into_vec();
        let cases: [(FileKind, &mut Vec<String>); N_BAD_CASES] = [
            (FileKind::Gif, &mut bad.gif),
            (FileKind::PngRgba, &mut bad.png_rgba),
            (FileKind::GreyJpeg, &mut bad.greyscale_jpeg),
            (FileKind::TruncatedJpeg, &mut bad.truncated_jpeg),
            (FileKind::Empty, &mut bad.empty_file),
            (FileKind::Missing, &mut bad.missing),
            (FileKind::Jpeg, &mut bad.multiline_caption),
        ];
        for ((kind, list), &i) in cases.into_iter().zip(&picks) {
            kinds[i] = kind;
            list.push(ids[i].clone());
        }
        let i = picks[N_BAD_CASES - 1];
        let chars: Vec<char> = captions[i].chars().collect();
        let cut = chars.len() / 2;
        captions[i] = format!(
            "{}\n{}",
            chars[..cut].iter().collect::<String>(),
            chars[cut..].iter().collect::<String>()
        );
    }

    let image_dir = dir.join("ImageData");
    std::fs::create_dir_all(&image_dir).map_err(|e| IoError::new("creating", &image_dir, e))?;
    let csv_path = dir.join("ImageWordData.csv");
    let csv_bytes = csv_bytes(&ids, &captions, params, &csv_path)?;
    std::fs::write(&csv_path, csv_bytes).map_err(|e| IoError::new("writing", &csv_path, e))?;

    (0..n).into_par_iter().try_for_each(|i| {
        let path = image_dir.join(&ids[i]);
        let bytes = match kinds[i] {
            FileKind::Missing => {
                return match std::fs::remove_file(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        Err(IoError::new("removing", &path, e).into())
                    }
                    _ => Ok(()),
                };
            }
            FileKind::Empty => Vec::new(),
            kind => encode(&render(&scenes[i]), kind, params.jpeg_quality).map_err(|source| {
                DataError::ImageEncode {
                    path: path.clone(),
                    cause: source,
                }
            })?,
        };
        std::fs::write(&path, bytes).map_err(|e| DataError::from(IoError::new("writing", &path, e)))
    })?;

    Ok(SyntheticSummary {
        csv_path,
        image_dir,
        ids,
        captions,
        scenes,
        bad,
        csv_encoding: params.csv_encoding,
    })
}

/// How an image is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FileKind {
    Jpeg,
    GreyJpeg,
    Gif,
    PngRgba,
    TruncatedJpeg,
    Empty,
    Missing,
}

/// Sorted, unique ids `Image<group>-<index>.jpg` with index gaps of 1 to 3, rolling over to the
/// next group after index 9999.
fn make_ids(group: u32, n: usize, rng: &mut ChaCha8Rng) -> Vec<String> {
    let (mut group, mut index) = (group, rng.gen_range(0..3u32));
    let mut ids = Vec::with_capacity(n);
    for _ in 0..n {
        ids.push(format!("Image{group:08}-{index:04}.jpg"));
        index += rng.gen_range(1..=3);
        if index > 9999 {
            group += 1;
            index -= 10_000;
        }
    }
    ids
}

fn colour_distance(a: [u8; 3], b: [u8; 3]) -> f32 {
    a.iter()
        .zip(&b)
        .map(|(&x, &y)| (x as f32 - y as f32).powi(2))
        .sum::<f32>()
        .sqrt()
}

fn mix(a: [u8; 3], b: [u8; 3], t: f32) -> [u8; 3] {
    std::array::from_fn(|k| (a[k] as f32 * (1.0 - t) + b[k] as f32 * t).round() as u8)
}

/// Plans one image: size, background, one group of shapes and, one time in three, a second.
fn plan_scene(params: &SyntheticParams, rng: &mut ChaCha8Rng) -> Scene {
    let width = rng.gen_range(params.min_width..=params.max_width);
    let height = rng.gen_range(params.min_height..=params.max_height);
    let bg_colour = *COLOURS.choose(rng).unwrap_or(&Colour::White);
    let kind = *BACKGROUNDS.choose(rng).unwrap_or(&BackgroundKind::Solid);
    let side = width.min(height) as f32;
    let background = Background {
        kind,
        colour: bg_colour,
        period: rng.gen_range((side / 16.0).max(4.0) as u32..=(side / 7.0).max(6.0) as u32),
        orientation: rng.gen_range(0..3),
        noise_seed: rng.r#gen(),
    };
    // Shape colours that stand out from both background colours.
    let (a, b) = (bg_colour.rgb(), bg_colour.texture_partner());
    let usable: Vec<Colour> = COLOURS
        .iter()
        .copied()
        .filter(|c| colour_distance(c.rgb(), a) > 150.0 && colour_distance(c.rgb(), b) > 100.0)
        .collect();
    let n_groups = if rng.gen_bool(1.0 / 3.0) { 2 } else { 1 };
    let mut groups: Vec<ShapeGroup> = Vec::with_capacity(n_groups);
    while groups.len() < n_groups {
        let shape = *SHAPES.choose(rng).unwrap_or(&Shape::Circle);
        let colour = *usable.choose(rng).unwrap_or(&Colour::Red);
        let position = *POSITIONS.choose(rng).unwrap_or(&Position::Centre);
        let far_enough = groups.iter().all(|g| {
            let (p, q) = (g.position.anchor(), position.anchor());
            (p.0 - q.0).abs() + (p.1 - q.1).abs() >= 0.5 && g.shape != shape
        });
        if !far_enough {
            continue;
        }
        let count = *[1usize, 1, 2, 3].choose(rng).unwrap_or(&1);
        let scale = if count == 1 { 1.0 } else { 0.75 };
        let r = side * rng.gen_range(0.09..0.16) * scale;
        let (ax, ay) = position.anchor();
        let (ax, ay) = (ax * width as f32, ay * height as f32);
        // Side by side along the longer free direction: a column on the left and right edges.
        let column = matches!(position, Position::Left | Position::Right);
        let instances = (0..count)
            .map(|k| {
                let offset = (k as f32 - (count - 1) as f32 / 2.0) * 2.4 * r;
                let (dx, dy) = if column { (0.0, offset) } else { (offset, 0.0) };
                let jitter = 0.2 * r;
                let margin = 1.25 * r + 1.0;
                let cx = (ax + dx + rng.gen_range(-jitter..=jitter))
                    .clamp(margin, width as f32 - margin);
                let cy = (ay + dy + rng.gen_range(-jitter..=jitter))
                    .clamp(margin, height as f32 - margin);
                Instance {
                    cx,
                    cy,
                    r,
                    angle: rng.gen_range(-0.5..0.5),
                }
            })
            .collect();
        groups.push(ShapeGroup {
            shape,
            colour,
            position,
            instances,
        });
    }
    Scene {
        width,
        height,
        background,
        groups,
    }
}

fn pick<'a>(rng: &mut ChaCha8Rng, options: &[&'a str]) -> &'a str {
    options.choose(rng).copied().unwrap_or("")
}

/// A noun phrase such as `两个蓝色五角星` or `一个红色的大圆形`.
fn noun_phrase(group: &ShapeGroup, side: f32, rng: &mut ChaCha8Rng) -> String {
    let count = ["一个", "两个", "三个"][group.instances.len().clamp(1, 3) - 1];
    let shape = pick(rng, group.shape.names_zh());
    let colour = group.colour.name_zh();
    let rel = group.instances[0].r
        / side
        / if group.instances.len() == 1 {
            1.0
        } else {
            0.75
        };
    let size = if rel > 0.135 {
        "大"
    } else if rel < 0.11 {
        "小"
    } else {
        ""
    };
    if !size.is_empty() && rng.gen_bool(0.5) {
        format!("{count}{colour}的{size}{shape}")
    } else if rng.gen_bool(0.2) {
        let short: String = colour.chars().take(1).collect();
        format!("{count}{short}{shape}")
    } else {
        format!("{count}{colour}{shape}")
    }
}

fn background_phrase(bg: &Background, rng: &mut ChaCha8Rng) -> String {
    let c = bg.colour.name_zh();
    let forms: &[&str] = match bg.kind {
        BackgroundKind::Solid => &["{c}背景", "纯{c}背景", "{c}的背景"],
        BackgroundKind::Gradient => &["{c}渐变背景"],
        BackgroundKind::Stripes => &["{c}条纹背景", "{c}的条纹背景"],
        BackgroundKind::Checkerboard => &["{c}格子背景", "{c}棋盘格背景"],
        BackgroundKind::Dots => &["{c}波点背景", "{c}圆点背景"],
        BackgroundKind::Noise => &["{c}噪点背景", "{c}杂色背景"],
    };
    pick(rng, forms).replace("{c}", c)
}

/// A Chinese caption of a scene, from one of several wordings; ASCII `,` and `:` as in the
/// contest's normalised captions.
fn caption(scene: &Scene, rng: &mut ChaCha8Rng) -> String {
    let side = scene.width.min(scene.height) as f32;
    let g = &scene.groups[0];
    let n = noun_phrase(g, side, rng);
    let p = pick(rng, g.position.names_zh());
    let b = background_phrase(&scene.background, rng);
    let mut text = match rng.gen_range(0..10) {
        0 => format!("{b}上,{p}有{n}"),
        1 => format!("{p}有{n},{b}"),
        2 => format!("一张{b}的图片,{n}位于{p}"),
        3 => format!("<人名>拍摄的{n},在画面{p},{b}"),
        4 => format!("{n}出现在{b}的{p}"),
        5 => format!("画面{p}画着{n},{b}"),
        6 => format!("<人名>作品:{b}上的{n}"),
        7 => format!(
            "题为\"{}{}\"的插图,{p}是{n},{b}",
            g.colour.name_zh(),
            pick(rng, g.shape.names_zh())
        ),
        8 => format!("简笔画:{n}在{p}"),
        _ => format!("{b}里{p}的{n}"),
    };
    if let Some(g2) = scene.groups.get(1) {
        let n2 = noun_phrase(g2, side, rng);
        let p2 = pick(rng, g2.position.names_zh());
        if rng.gen_bool(0.5) {
            text.push_str(&format!(",{p2}还有{n2}"));
        } else {
            text.push_str(&format!(",另有{n2}在{p2}"));
        }
    }
    text
}

/// The region a shape covers, in pixel coordinates (pixel (x, y) has its centre at x+0.5, y+0.5).
enum Geometry {
    Ellipse {
        cx: f32,
        cy: f32,
        rx: f32,
        ry: f32,
        cos: f32,
        sin: f32,
    },
    Polygon(Vec<(f32, f32)>),
}

impl Geometry {
    fn new(shape: Shape, inst: &Instance) -> Self {
        let Instance { cx, cy, r, angle } = *inst;
        let regular = |n: usize, inner: Option<f32>, phase: f32| {
            let steps = if inner.is_some() { 2 * n } else { n };
            let points = (0..steps)
                .map(|k| {
                    let radius = match inner {
                        Some(ratio) if k % 2 == 1 => r * ratio,
                        _ => r,
                    };
                    let t = phase + angle + k as f32 * std::f32::consts::TAU / steps as f32;
                    (cx + radius * t.cos(), cy + radius * t.sin())
                })
                .collect();
            Geometry::Polygon(points)
        };
        let up = -std::f32::consts::FRAC_PI_2;
        match shape {
            Shape::Circle => Geometry::Ellipse {
                cx,
                cy,
                rx: r,
                ry: r,
                cos: 1.0,
                sin: 0.0,
            },
            Shape::Ellipse => Geometry::Ellipse {
                cx,
                cy,
                rx: r,
                ry: 0.55 * r,
                cos: angle.cos(),
                sin: angle.sin(),
            },
            // Half side 0.85 r: corners at 1.2 r.
            Shape::Square => {
                let c = 0.85 * std::f32::consts::SQRT_2 * r;
                let corners = (0..4)
                    .map(|k| {
                        let t = angle
                            + std::f32::consts::FRAC_PI_4
                            + k as f32 * std::f32::consts::FRAC_PI_2;
                        (cx + c * t.cos(), cy + c * t.sin())
                    })
                    .collect();
                Geometry::Polygon(corners)
            }
            Shape::Triangle => regular(3, None, up),
            Shape::Star => regular(5, Some(0.45), up),
        }
    }

    fn bbox(&self) -> (f32, f32, f32, f32) {
        match self {
            Geometry::Ellipse { cx, cy, rx, .. } => (cx - rx, cy - rx, cx + rx, cy + rx),
            Geometry::Polygon(points) => points.iter().fold(
                (f32::MAX, f32::MAX, f32::MIN, f32::MIN),
                |(x0, y0, x1, y1), &(x, y)| (x0.min(x), y0.min(y), x1.max(x), y1.max(y)),
            ),
        }
    }

    fn contains(&self, x: f32, y: f32) -> bool {
        match self {
            Geometry::Ellipse {
                cx,
                cy,
                rx,
                ry,
                cos,
                sin,
            } => {
                let (dx, dy) = (x - cx, y - cy);
                let (u, v) = (dx * cos + dy * sin, -dx * sin + dy * cos);
                (u / rx).powi(2) + (v / ry).powi(2) <= 1.0
            }
            Geometry::Polygon(points) => {
                let mut inside = false;
                let mut j = points.len() - 1;
                for (i, &(xi, yi)) in points.iter().enumerate() {
                    let (xj, yj) = points[j];
                    if (yi > y) != (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi {
                        inside = !inside;
                    }
                    j = i;
                }
                inside
            }
        }
    }
}

/// Draws a scene.
pub fn render(scene: &Scene) -> RgbImage {
    let mut img = RgbImage::new(scene.width, scene.height);
    paint_background(&mut img, &scene.background);
    for group in &scene.groups {
        for inst in &group.instances {
            paint_shape(
                &mut img,
                &Geometry::new(group.shape, inst),
                group.colour.rgb(),
            );
        }
    }
    img
}

fn paint_background(img: &mut RgbImage, bg: &Background) {
    let a = bg.colour.rgb();
    let b = bg.colour.texture_partner();
    let p = bg.period.max(2);
    let h = img.height().max(1) as f32;
    let mut rng = ChaCha8Rng::seed_from_u64(bg.noise_seed);
    for (x, y, px) in img.enumerate_pixels_mut() {
        let c = match bg.kind {
            BackgroundKind::Solid => a,
            BackgroundKind::Gradient => mix(a, b, y as f32 / h),
            BackgroundKind::Stripes => {
                let t = match bg.orientation {
                    0 => y,
                    1 => x,
                    _ => x + y,
                };
                if (t / p) % 2 == 0 { a } else { b }
            }
            BackgroundKind::Checkerboard => {
                if (x / p + y / p) % 2 == 0 {
                    a
                } else {
                    b
                }
            }
            BackgroundKind::Dots => {
                let (dx, dy) = (
                    (x % p) as f32 - p as f32 / 2.0,
                    (y % p) as f32 - p as f32 / 2.0,
                );
                if dx * dx + dy * dy <= (p as f32 * 0.25).powi(2) {
                    b
                } else {
                    a
                }
            }
            BackgroundKind::Noise => {
                std::array::from_fn(|k| (a[k] as i32 + rng.gen_range(-40..=40)).clamp(0, 255) as u8)
            }
        };
        *px = Rgb(c);
    }
}

/// Fills a shape with 2x2 supersampled coverage at its edges.
fn paint_shape(img: &mut RgbImage, geometry: &Geometry, colour: [u8; 3]) {
    let (x0, y0, x1, y1) = geometry.bbox();
    let (w, h) = (img.width() as i64, img.height() as i64);
    let xs = (x0.floor() as i64 - 1).max(0)..(x1.ceil() as i64 + 1).min(w);
    let ys = (y0.floor() as i64 - 1).max(0)..(y1.ceil() as i64 + 1).min(h);
    const SUB: [(f32, f32); 4] = [(0.25, 0.25), (0.75, 0.25), (0.25, 0.75), (0.75, 0.75)];
    for y in ys {
        for x in xs.clone() {
            let hits = SUB
                .iter()
                .filter(|(sx, sy)| geometry.contains(x as f32 + sx, y as f32 + sy))
                .count();
            if hits == 0 {
                continue;
            }
            let px = img.get_pixel_mut(x as u32, y as u32);
            px.0 = mix(px.0, colour, hits as f32 / 4.0);
        }
    }
}

/// Encodes a rendered image as the file kind asks.
fn encode(img: &RgbImage, kind: FileKind, quality: u8) -> Result<Vec<u8>, ::image::ImageError> {
    let mut out = Vec::new();
    match kind {
        FileKind::Jpeg | FileKind::TruncatedJpeg => {
            JpegEncoder::new_with_quality(&mut out, quality).encode_image(img)?;
            if kind == FileKind::TruncatedJpeg {
                out.truncate(out.len() / 2);
            }
        }
        FileKind::GreyJpeg => {
            let grey = ::image::DynamicImage::ImageRgb8(img.clone()).to_luma8();
            JpegEncoder::new_with_quality(&mut out, quality).encode_image(&grey)?;
        }
        FileKind::Gif => {
            let first = ::image::DynamicImage::ImageRgb8(img.clone()).to_rgba8();
            // The second frame is the first shifted 3 pixels right (edge column repeated).
            let second = RgbaImage::from_fn(first.width(), first.height(), |x, y| {
                *first.get_pixel(x.saturating_sub(3), y)
            });
            let delay = Delay::from_numer_denom_ms(200, 1);
            let mut encoder = GifEncoder::new_with_speed(&mut out, 10);
            encoder.set_repeat(Repeat::Infinite)?;
            encoder.encode_frames([
                Frame::from_parts(first, 0, 0, delay),
                Frame::from_parts(second, 0, 0, delay),
            ])?;
        }
        FileKind::PngRgba => {
            // Alpha falls from opaque at the left to half transparent at the right.
            let w = img.width().max(2) as f32;
            let rgba = RgbaImage::from_fn(img.width(), img.height(), |x, y| {
                let [r, g, b] = img.get_pixel(x, y).0;
                Rgba([
                    r,
                    g,
                    b,
                    (255.0 - 127.0 * x as f32 / (w - 1.0)).round() as u8,
                ])
            });
            PngEncoder::new(&mut out).write_image(
                rgba.as_raw(),
                rgba.width(),
                rgba.height(),
                ::image::ExtendedColorType::Rgba8,
            )?;
        }
        FileKind::Empty | FileKind::Missing => {}
    }
    Ok(out)
}

/// The CSV file's bytes: header `image_id,caption`, RFC 4180 quoting, LF or CRLF, in the encoding
/// asked for. `path` is for messages only.
fn csv_bytes(
    ids: &[String],
    captions: &[String],
    params: &SyntheticParams,
    path: &Path,
) -> Result<Vec<u8>, DataError> {
    let terminator = if params.crlf {
        ::csv::Terminator::CRLF
    } else {
        ::csv::Terminator::Any(b'\n')
    };
    let mut writer = ::csv::WriterBuilder::new()
        .terminator(terminator)
        .from_writer(Vec::new());
    let csv_err = |source| DataError::CsvWrite {
        path: path.to_path_buf(),
        cause: source,
    };
    writer
        .write_record(["image_id", "caption"])
        .map_err(csv_err)?;
    for (id, caption) in ids.iter().zip(captions) {
        writer.write_record([id, caption]).map_err(csv_err)?;
    }
    let utf8 = writer
        .into_inner()
        .map_err(|e| IoError::new("writing", path, e.into_error()))?;
    Ok(match params.csv_encoding {
        CsvEncoding::Utf8 => utf8,
        CsvEncoding::Utf8Bom => [&[0xEF, 0xBB, 0xBF][..], &utf8].concat(),
        CsvEncoding::Gbk => {
            // The writer only copies the UTF-8 strings it was given, so this is lossless.
            let text = String::from_utf8_lossy(&utf8);
            let (bytes, _, unmappable) = encoding_rs::GBK.encode(&text);
            if unmappable {
                let bad = captions
                    .iter()
                    .find(|c| encoding_rs::GBK.encode(c).2)
                    .cloned()
                    .unwrap_or_default();
                return Err(DataError::Unencodable {
                    encoding: "GBK",
                    text: bad,
                });
            }
            bytes.into_owned()
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::csv::{ENC_GB18030, ENC_UTF8, ENC_UTF8_BOM, IMAGE_ID_COLUMN, read_captions};

    fn small(seed: u64) -> SyntheticParams {
        SyntheticParams::new().n_images(40).seed(seed)
    }

    #[test]
    fn same_seed_same_bytes_other_seed_other_bytes() {
        let (d1, d2, d3) = (
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
            tempfile::tempdir().unwrap(),
        );
        let s1 = generate(d1.path(), &small(7)).unwrap();
        let s2 = generate(d2.path(), &small(7)).unwrap();
        let s3 = generate(d3.path(), &small(8)).unwrap();
        assert_eq!(s1.ids, s2.ids);
        assert_eq!(s1.scenes, s2.scenes);
        let csv1 = std::fs::read(&s1.csv_path).unwrap();
        assert_eq!(csv1, std::fs::read(&s2.csv_path).unwrap());
        assert_ne!(csv1, std::fs::read(&s3.csv_path).unwrap());
        for id in &s1.ids {
            let (a, b) = (s1.image_dir.join(id), s2.image_dir.join(id));
            assert_eq!(a.exists(), b.exists(), "{id}");
            if a.exists() {
                assert_eq!(
                    std::fs::read(&a).unwrap(),
                    std::fs::read(&b).unwrap(),
                    "{id}"
                );
            }
        }
    }

    #[test]
    fn default_counts_ids_and_reader_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(dir.path(), &SyntheticParams::default()).unwrap();
        assert_eq!(s.ids.len(), 300);
        assert_eq!(s.captions.len(), 300);
        assert_eq!(s.scenes.len(), 300);
        let files = std::fs::read_dir(&s.image_dir).unwrap().count();
        assert_eq!(files, 299, "one listed image is missing");
        // Ids: Image<8 digits>-<4 digits>.jpg, strictly increasing.
        for id in &s.ids {
            let b = id.as_bytes();
            assert_eq!(b.len(), 22, "{id}");
            assert!(id.starts_with("Image19990") && id.ends_with(".jpg"), "{id}");
            assert!(
                b[5..13].iter().all(u8::is_ascii_digit) && b[13] == b'-',
                "{id}"
            );
            assert!(b[14..18].iter().all(u8::is_ascii_digit), "{id}");
        }
        assert!(s.ids.windows(2).all(|w| w[0] < w[1]));
        let c = read_captions(&s.csv_path, IMAGE_ID_COLUMN).unwrap();
        assert_eq!(c.encoding, ENC_UTF8);
        assert_eq!(c.ids, s.ids);
        assert!(c.warnings.is_empty(), "{:?}", c.warnings);
        for (read, written) in c.captions.iter().zip(&s.captions) {
            assert_eq!(*read, written.replace('\n', " "));
        }
        // Every physical line is accounted for: the one embedded newline shifts later rows by 1.
        let multi = s
            .ids
            .iter()
            .position(|id| *id == s.bad.multiline_caption[0])
            .unwrap();
        for (i, &line) in c.lines.iter().enumerate() {
            let expected = i as u64 + 2 + u64::from(i > multi);
            assert_eq!(line, expected, "row {i}");
        }
    }

    #[test]
    fn captions_describe_the_scene_and_vary() {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(dir.path(), &SyntheticParams::new().bad_cases(false)).unwrap();
        for (caption, scene) in s.captions.iter().zip(&s.scenes) {
            for (k, g) in scene.groups.iter().enumerate() {
                let colour_char = g.colour.name_zh().chars().next().unwrap();
                assert!(
                    caption.contains(colour_char),
                    "{caption} lacks {colour_char}"
                );
                assert!(
                    g.shape.names_zh().iter().any(|n| caption.contains(n)),
                    "{caption} lacks {:?}",
                    g.shape
                );
                let count = ["一个", "两个", "三个"][g.instances.len() - 1];
                assert!(caption.contains(count), "{caption} lacks {count}");
                // The main group's position is named except in the two wordings that omit it.
                if k == 1 || !caption.starts_with("<人名>作品") {
                    assert!(
                        g.position.names_zh().iter().any(|n| caption.contains(n)),
                        "{caption} lacks {:?}",
                        g.position
                    );
                }
            }
            assert!(!caption.contains('，') && !caption.contains('。'));
        }
        let masked = s.captions.iter().filter(|c| c.contains("<人名>")).count();
        assert!(
            (15..=120).contains(&masked),
            "{masked} captions with <人名>"
        );
        let distinct: std::collections::HashSet<_> = s.captions.iter().collect();
        assert!(
            distinct.len() >= 280,
            "only {} distinct captions",
            distinct.len()
        );
        let two_groups = s.scenes.iter().filter(|sc| sc.groups.len() == 2).count();
        assert!((50..=150).contains(&two_groups), "{two_groups}");
        let sizes: std::collections::HashSet<_> =
            s.scenes.iter().map(|sc| (sc.width, sc.height)).collect();
        assert!(sizes.len() > 100);
        assert!(
            s.scenes
                .iter()
                .all(|sc| (160..=320).contains(&sc.width) && (120..=240).contains(&sc.height))
        );
        assert!(s.bad.gif.is_empty() && s.bad.missing.is_empty());
    }

    #[test]
    fn rendered_shapes_have_their_colour() {
        let params = SyntheticParams::new();
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        for _ in 0..200 {
            let scene = plan_scene(&params, &mut rng);
            let img = render(&scene);
            assert_eq!(img.dimensions(), (scene.width, scene.height));
            // The last group is drawn on top: its centres show its exact colour.
            let top = scene.groups.last().unwrap();
            for inst in &top.instances {
                let px = img.get_pixel(inst.cx as u32, inst.cy as u32).0;
                assert_eq!(px, top.colour.rgb(), "{scene:?}");
                // Shapes stay inside the image.
                assert!(inst.cx - inst.r >= 0.0 && inst.cx + inst.r <= scene.width as f32);
                assert!(inst.cy - inst.r >= 0.0 && inst.cy + inst.r <= scene.height as f32);
            }
            // A solid background shows its colour wherever no shape reaches.
            if scene.background.kind == BackgroundKind::Solid {
                let far = |x: f32, y: f32| {
                    scene
                        .groups
                        .iter()
                        .flat_map(|g| &g.instances)
                        .all(|i| (i.cx - x).hypot(i.cy - y) > 1.3 * i.r + 2.0)
                };
                for (x, y) in [(0, 0), (scene.width - 1, scene.height - 1)] {
                    if far(x as f32, y as f32) {
                        assert_eq!(img.get_pixel(x, y).0, scene.background.colour.rgb());
                    }
                }
            }
        }
    }

    #[test]
    fn geometry_matches_hand_values() {
        let inst = Instance {
            cx: 50.0,
            cy: 50.0,
            r: 10.0,
            angle: 0.0,
        };
        let circle = Geometry::new(Shape::Circle, &inst);
        assert!(circle.contains(59.9, 50.0) && !circle.contains(57.2, 57.2));
        let square = Geometry::new(Shape::Square, &inst); // half side 8.5
        assert!(square.contains(58.4, 58.4) && !square.contains(58.6, 50.0));
        let triangle = Geometry::new(Shape::Triangle, &inst); // apex up at y = 40, base y = 55
        assert!(triangle.contains(50.0, 40.5) && triangle.contains(50.0, 54.9));
        assert!(!triangle.contains(50.0, 55.1) && !triangle.contains(44.0, 42.0));
        let star = Geometry::new(Shape::Star, &inst); // inner radius 4.5
        assert!(star.contains(50.0, 40.5) && star.contains(50.0, 54.0));
        assert!(!star.contains(50.0, 55.0) && !star.contains(58.0, 50.0));
        let ellipse = Geometry::new(Shape::Ellipse, &inst); // semi-axes 10 and 5.5
        assert!(ellipse.contains(59.5, 50.0) && ellipse.contains(50.0, 55.4));
        assert!(!ellipse.contains(50.0, 55.6));
    }

    #[test]
    fn jpeg_keeps_the_colour() {
        let dir = tempfile::tempdir().unwrap();
        let s = generate(dir.path(), &small(11).bad_cases(false)).unwrap();
        for (id, scene) in s.ids.iter().zip(&s.scenes) {
            let img = ::image::open(s.image_dir.join(id)).unwrap().to_rgb8();
            assert_eq!(img.dimensions(), (scene.width, scene.height));
            let top = scene.groups.last().unwrap();
            let inst = top.instances[0];
            let px = img.get_pixel(inst.cx as u32, inst.cy as u32).0;
            let d = colour_distance(px, top.colour.rgb());
            assert!(d < 60.0, "{id}: {px:?} vs {:?}", top.colour);
        }
    }

    #[test]
    fn bad_cases_are_as_described() {
        use ::image::AnimationDecoder;
        let dir = tempfile::tempdir().unwrap();
        let s = generate(dir.path(), &small(5)).unwrap();
        let b = &s.bad;
        let all = [
            &b.gif,
            &b.png_rgba,
            &b.greyscale_jpeg,
            &b.truncated_jpeg,
            &b.empty_file,
            &b.missing,
            &b.multiline_caption,
        ];
        assert!(all.iter().all(|l| l.len() == 1));
        let distinct: std::collections::HashSet<_> = all.iter().map(|l| &l[0]).collect();
        assert_eq!(distinct.len(), 7);
        let read = |id: &String| std::fs::read(s.image_dir.join(id)).unwrap();
        let scene_of = |id: &String| &s.scenes[s.ids.iter().position(|x| x == id).unwrap()];

        let gif = read(&b.gif[0]);
        assert!(gif.starts_with(b"GIF89a"));
        let decoder = ::image::codecs::gif::GifDecoder::new(std::io::Cursor::new(&gif)).unwrap();
        let frames = decoder.into_frames().collect_frames().unwrap();
        assert_eq!(frames.len(), 2);
        let sc = scene_of(&b.gif[0]);
        assert_eq!(frames[0].buffer().dimensions(), (sc.width, sc.height));

        let png = read(&b.png_rgba[0]);
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"));
        let img = ::image::load_from_memory(&png).unwrap();
        assert_eq!(img.color(), ::image::ColorType::Rgba8);
        let rgba = img.to_rgba8();
        assert_eq!(rgba.get_pixel(0, 0).0[3], 255);
        assert_eq!(rgba.get_pixel(rgba.width() - 1, 0).0[3], 128);

        let grey = ::image::load_from_memory(&read(&b.greyscale_jpeg[0])).unwrap();
        assert_eq!(grey.color(), ::image::ColorType::L8);

        let cut = read(&b.truncated_jpeg[0]);
        assert!(cut.starts_with(&[0xFF, 0xD8]) && !cut.ends_with(&[0xFF, 0xD9]));
        let whole = encode(&render(scene_of(&b.truncated_jpeg[0])), FileKind::Jpeg, 85).unwrap();
        assert_eq!(cut.len(), whole.len() / 2);
        assert_eq!(cut[..], whole[..cut.len()]);

        assert_eq!(read(&b.empty_file[0]).len(), 0);
        assert!(!s.image_dir.join(&b.missing[0]).exists());

        let i = s
            .ids
            .iter()
            .position(|x| *x == b.multiline_caption[0])
            .unwrap();
        assert_eq!(s.captions[i].matches('\n').count(), 1);
        let text = std::fs::read_to_string(&s.csv_path).unwrap();
        let quoted = s.captions[i].replace('"', "\"\"");
        assert!(text.contains(&format!("{},\"{quoted}\"\n", s.ids[i])));
        let jpeg = read(&b.multiline_caption[0]);
        assert!(jpeg.starts_with(&[0xFF, 0xD8]) && jpeg.ends_with(&[0xFF, 0xD9]));
    }

    #[test]
    fn gbk_option_writes_gbk_with_crlf() {
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let utf8 = generate(d1.path(), &small(9)).unwrap();
        let gbk = generate(
            d2.path(),
            &small(9).csv_encoding(CsvEncoding::Gbk).crlf(true),
        )
        .unwrap();
        let bytes = std::fs::read(&gbk.csv_path).unwrap();
        assert!(
            std::str::from_utf8(&bytes).is_err(),
            "GBK output must not be valid UTF-8"
        );
        let (text, had_errors) = encoding_rs::GB18030.decode_without_bom_handling(&bytes);
        assert!(!had_errors);
        let expected = std::fs::read_to_string(&utf8.csv_path).unwrap();
        // Record terminators become CRLF; the newline inside the quoted caption stays LF.
        let multi = &utf8.captions[utf8
            .ids
            .iter()
            .position(|x| *x == utf8.bad.multiline_caption[0])
            .unwrap()];
        let expected_crlf = expected
            .replace('\n', "\r\n")
            .replace(&multi.replace('\n', "\r\n"), multi);
        assert_eq!(text, expected_crlf);
        let c = read_captions(&gbk.csv_path, IMAGE_ID_COLUMN).unwrap();
        assert_eq!(c.encoding, ENC_GB18030);
        assert_eq!(c.ids, utf8.ids);

        let d3 = tempfile::tempdir().unwrap();
        let bom = generate(d3.path(), &small(9).csv_encoding(CsvEncoding::Utf8Bom)).unwrap();
        let bytes = std::fs::read(&bom.csv_path).unwrap();
        assert_eq!(&bytes[..3], &[0xEF, 0xBB, 0xBF]);
        assert_eq!(&bytes[3..], expected.as_bytes());
        assert_eq!(
            read_captions(&bom.csv_path, IMAGE_ID_COLUMN)
                .unwrap()
                .encoding,
            ENC_UTF8_BOM
        );
    }

    #[test]
    fn bad_params_are_rejected_with_their_value() {
        let dir = tempfile::tempdir().unwrap();
        let err = generate(dir.path(), &SyntheticParams::new().n_images(5)).unwrap_err();
        assert!(err.to_string().contains("n_images") && err.to_string().contains('5'));
        assert!(
            SyntheticParams::new()
                .n_images(5)
                .bad_cases(false)
                .check()
                .is_ok()
        );
        let err = SyntheticParams::new()
            .size_range((100, 100), (90, 200))
            .check()
            .unwrap_err();
        assert!(err.to_string().contains("100..=90"), "{err}");
        assert!(SyntheticParams::new().jpeg_quality(0).check().is_err());
        assert!(SyntheticParams::new().group(1234).check().is_err());
        let toml_like: SyntheticParams =
            serde_json::from_str(r#"{"n_images": 50, "csv_encoding": "gbk"}"#).unwrap();
        assert_eq!(toml_like.n_images, 50);
        assert_eq!(toml_like.csv_encoding, CsvEncoding::Gbk);
        assert_eq!(toml_like.seed, 0);
        assert!(serde_json::from_str::<SyntheticParams>(r#"{"n_image": 50}"#).is_err());
    }

    #[test]
    fn ids_roll_over_to_the_next_group() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let ids = make_ids(19990001, 6000, &mut rng);
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.last().unwrap().starts_with("Image19990002-"));
        let unique: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(unique.len(), ids.len());
    }
}
