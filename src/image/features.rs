//! The image feature extractor, in linfa style: [`ImageFeatureParams`] → `check()` →
//! [`ImageFeatureValidParams::fit`] → [`FittedImageFeatures`] → `transform()`.
//!
//! Fitting decodes (a seeded subset of) the training images, keeps a seeded sample of each
//! image's dense RootSIFT / HOG descriptors and learns the vocabularies (k-means for bags of
//! words and VLAD, PCA + diagonal GMM for Fisher vectors; Perronnin et al. 2010, Jégou et al.
//! 2010). Transforming describes each image independently (parallel over images with rayon,
//! in chunks; [`FittedImageFeatures::transform_chunked`] hands each chunk over as it is done, so
//! the features of 50,000 images, about 10 GB, can go to disk without being held at once) into
//! named blocks: encodings of the local descriptors over a spatial pyramid, HSV histograms,
//! GIST, optionally a global HOG. Each block is normalised on its own; `combined` is the
//! concatenation of the blocks times their weights. An image that cannot be decoded is
//! skipped and reported in [`ImageFeatures::skipped`], never fatal.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use indicatif::ProgressBar;
use ndarray::{Array1, Array2, Axis};
use opencv::core::Mat;
use opencv::prelude::*;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::ImageError;
use super::colour;
use super::decode::decode_image;
use super::dsift::{
    DenseGridParams, LocalDescriptors, dense_descriptors, global_hog, grey_f32, keypoint_sift,
};
use super::encode::{self, Assignment, BlockNorm, FisherModel};
use super::faces::{FACE_DIM, FaceDetector, FaceParams};
use super::geometry::{GEOMETRY_DIM, GeometryParams, geometry};
use super::global::{GistParams, HsvParams, gist, hsv_histograms};
use super::vocabulary::{Codebook, DiagGmm, KMeansSettings, Pca, kmeans};

/// Bag-of-words encoding settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BowParams {
    /// Whether the block is computed (and written).
    pub enabled: bool,
    /// Vocabulary size.
    pub k: usize,
    /// Hard (nearest word) or soft (kernel codebook) assignment of each descriptor.
    pub assignment: Assignment,
    /// Spatial pyramid levels (g → g×g cells).
    pub pyramid: Vec<u32>,
    /// Normalisation of the whole block (Hellinger then L2, optionally the χ² feature map).
    pub norm: BlockNorm,
    /// Multiplies the block's rows in the combined matrix.
    pub weight: f32,
}

impl Default for BowParams {
    fn default() -> Self {
        Self {
            enabled: true,
            k: 512,
            assignment: Assignment::Hard,
            pyramid: vec![1, 2],
            norm: BlockNorm::default(),
            weight: 1.0,
        }
    }
}

/// VLAD encoding settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VladParams {
    /// Whether the block is computed (and written).
    pub enabled: bool,
    /// Vocabulary size (k-means centroids).
    pub k: usize,
    /// Spatial pyramid levels (g → g×g cells).
    pub pyramid: Vec<u32>,
    /// Multiplies the block's rows in the combined matrix.
    pub weight: f32,
}

impl Default for VladParams {
    fn default() -> Self {
        Self {
            enabled: true,
            k: 32,
            pyramid: vec![1],
            weight: 1.0,
        }
    }
}

/// Fisher vector settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FisherParams {
    /// Whether the block is computed (and written).
    pub enabled: bool,
    /// Gaussians.
    pub k: usize,
    /// PCA dimension of the descriptors before the GMM.
    pub pca_dim: usize,
    /// Spatial pyramid levels (g → g×g cells).
    pub pyramid: Vec<u32>,
    /// EM iterations of the diagonal GMM.
    pub em_iter: usize,
    /// Multiplies the block's rows in the combined matrix.
    pub weight: f32,
}

impl Default for FisherParams {
    fn default() -> Self {
        Self {
            enabled: true,
            k: 64,
            pca_dim: 32,
            pyramid: vec![1, 2],
            em_iter: 20,
            weight: 1.0,
        }
    }
}

/// Which kind of local descriptor a [`LocalParams`] describes; it only selects the defaults
/// (so that a partial `[hog]` TOML section is completed with HOG, not SIFT, settings).
pub trait LocalKind: Clone + std::fmt::Debug + PartialEq + Default + Send + Sync {
    /// The kind's name: its TOML section and the prefix of its blocks (`sift`, `hog`, `colour`).
    const NAME: &'static str;
    /// What the kind computes at each patch.
    const DESCRIPTOR: LocalDescriptor;
    /// The kind's default settings.
    fn defaults() -> LocalParams<Self>;
}

/// What a local kind computes at each patch of its grid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalDescriptor {
    /// Gradient orientation histograms: SIFT / RootSIFT or HOG ([`super::dsift`]).
    Gradient,
    /// Mean and standard deviation of R, G, B per cell ([`super::colour`]).
    Colour,
}

/// Marker: dense RootSIFT (or keypoint SIFT).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sift;

/// Marker: HOG patches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Hog;

impl LocalKind for Sift {
    const NAME: &'static str = "sift";
    const DESCRIPTOR: LocalDescriptor = LocalDescriptor::Gradient;

    /// Dense RootSIFT with all three encodings.
    fn defaults() -> LocalParams<Self> {
        LocalParams {
            enabled: true,
            keypoints: false,
            max_keypoints: 500,
            grid: DenseGridParams::sift(),
            bow: BowParams::default(),
            vlad: VladParams::default(),
            fisher: FisherParams::default(),
            kind: PhantomData,
        }
    }
}

impl LocalKind for Hog {
    const NAME: &'static str = "hog";
    const DESCRIPTOR: LocalDescriptor = LocalDescriptor::Gradient;

    /// Bag of HOG words (k = 256) only.
    fn defaults() -> LocalParams<Self> {
        LocalParams {
            enabled: true,
            keypoints: false,
            max_keypoints: 0,
            grid: DenseGridParams::hog(),
            bow: BowParams {
                k: 256,
                ..BowParams::default()
            },
            vlad: VladParams {
                enabled: false,
                ..VladParams::default()
            },
            fisher: FisherParams {
                enabled: false,
                ..FisherParams::default()
            },
            kind: PhantomData,
        }
    }
}

/// Marker: dense local colour statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Colour;

impl LocalKind for Colour {
    const NAME: &'static str = "colour";
    const DESCRIPTOR: LocalDescriptor = LocalDescriptor::Colour;

    /// Off by default; when on, Fisher vectors (64 Gaussians on a 32-dimensional PCA, a 1x1 +
    /// 2x2 pyramid) of 96-dimensional colour statistics, as Perronnin et al. (2010) encode them.
    fn defaults() -> LocalParams<Self> {
        LocalParams {
            enabled: false,
            keypoints: false,
            max_keypoints: 0,
            grid: DenseGridParams::colour(),
            bow: BowParams {
                enabled: false,
                ..BowParams::default()
            },
            vlad: VladParams {
                enabled: false,
                ..VladParams::default()
            },
            fisher: FisherParams::default(),
            kind: PhantomData,
        }
    }
}

/// One kind of local descriptor (SIFT, HOG patches or colour statistics) and its encodings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields, bound = "K: LocalKind")]
pub struct LocalParams<K: LocalKind> {
    /// Whether this kind of descriptor is computed at all (with every encoding of it).
    pub enabled: bool,
    /// OpenCV difference-of-Gaussians keypoints instead of the dense grid (SIFT only).
    pub keypoints: bool,
    /// At most this many keypoints per image (0: all).
    pub max_keypoints: usize,
    /// The dense grid of patches the descriptors are computed on.
    pub grid: DenseGridParams,
    /// Bag-of-visual-words encoding.
    pub bow: BowParams,
    /// VLAD encoding.
    pub vlad: VladParams,
    /// Fisher vector encoding.
    pub fisher: FisherParams,
    #[serde(skip)]
    kind: PhantomData<K>,
}

impl<K: LocalKind> Default for LocalParams<K> {
    fn default() -> Self {
        K::defaults()
    }
}

impl<K: LocalKind> LocalParams<K> {
    /// Off: the kind adds no block and learns no vocabulary.
    pub fn is_disabled(&self) -> bool {
        !self.enabled
    }

    /// A kind-free view used internally.
    fn view(&self) -> LocalView<'_> {
        LocalView {
            name: K::NAME,
            descriptor: K::DESCRIPTOR,
            enabled: self.enabled,
            keypoints: self.keypoints,
            max_keypoints: self.max_keypoints,
            grid: &self.grid,
            bow: &self.bow,
            vlad: &self.vlad,
            fisher: &self.fisher,
        }
    }
}

/// [`LocalParams`] without its kind marker.
#[derive(Debug, Clone, Copy)]
struct LocalView<'a> {
    name: &'static str,
    descriptor: LocalDescriptor,
    enabled: bool,
    keypoints: bool,
    max_keypoints: usize,
    grid: &'a DenseGridParams,
    bow: &'a BowParams,
    vlad: &'a VladParams,
    fisher: &'a FisherParams,
}

impl LocalView<'_> {
    fn dim(&self) -> usize {
        match self.descriptor {
            LocalDescriptor::Colour => {
                self.grid.spatial_bins * self.grid.spatial_bins * colour::STATS_PER_CELL
            }
            LocalDescriptor::Gradient if self.keypoints => 128,
            LocalDescriptor::Gradient => self.grid.dim(),
        }
    }

    /// Enabled with at least one encoding: a vocabulary to learn.
    fn needs_model(&self) -> bool {
        self.enabled && (self.bow.enabled || self.vlad.enabled || self.fisher.enabled)
    }

    fn check(&self) -> Result<(), ImageError> {
        let name = self.name;
        if !self.enabled {
            return Ok(());
        }
        self.grid.check(name)?;
        if self.keypoints && name != "sift" {
            return Err(ImageError::param(
                name,
                "keypoints are only available for sift",
            ));
        }
        let d = self.dim();
        if self.bow.enabled && !(2..=65536).contains(&self.bow.k) {
            return Err(ImageError::param(
                name,
                format!("bow.k must be in [2, 65536], got {}", self.bow.k),
            ));
        }
        if let Assignment::Soft { neighbours, beta } = self.bow.assignment {
            if neighbours == 0 || !(beta > 0.0 && beta.is_finite()) {
                return Err(ImageError::param(
                    name,
                    format!(
                        "soft assignment needs neighbours >= 1 and beta > 0, got {neighbours}, {beta}"
                    ),
                ));
            }
        }
        if self.vlad.enabled && !(2..=4096).contains(&self.vlad.k) {
            return Err(ImageError::param(
                name,
                format!("vlad.k must be in [2, 4096], got {}", self.vlad.k),
            ));
        }
        if self.fisher.enabled {
            if !(1..=1024).contains(&self.fisher.k) {
                return Err(ImageError::param(
                    name,
                    format!("fisher.k must be in [1, 1024], got {}", self.fisher.k),
                ));
            }
            if !(1..=d).contains(&self.fisher.pca_dim) {
                return Err(ImageError::param(
                    name,
                    format!(
                        "fisher.pca_dim must be in [1, {d}], got {}",
                        self.fisher.pca_dim
                    ),
                ));
            }
        }
        for (what, p) in [
            ("bow.pyramid", &self.bow.pyramid),
            ("vlad.pyramid", &self.vlad.pyramid),
            ("fisher.pyramid", &self.fisher.pyramid),
        ] {
            check_pyramid(name, what, p)?;
        }
        Ok(())
    }
}

fn check_pyramid(name: &'static str, what: &str, p: &[u32]) -> Result<(), ImageError> {
    if p.is_empty() || p.iter().any(|&g| !(1..=8).contains(&g)) {
        return Err(ImageError::param(
            name,
            format!("{what} must be a non-empty list of levels in [1, 8], got {p:?}"),
        ));
    }
    Ok(())
}

/// A global HOG of the whole image (off by default: it hurt in the exploration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GlobalHogParams {
    /// Whether the block is computed (and written).
    pub enabled: bool,
    /// Side in pixels of the square the image is resized to before the HOG.
    pub size: usize,
    /// HOG cell side in pixels.
    pub cell: usize,
    /// Multiplies the block's rows in the combined matrix.
    pub weight: f32,
}

impl Default for GlobalHogParams {
    fn default() -> Self {
        Self {
            enabled: false,
            size: 64,
            cell: 8,
            weight: 1.0,
        }
    }
}

/// How the vocabularies are learnt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FitParams {
    /// At most this many training images are described (a seeded subset).
    pub max_images: usize,
    /// Total descriptors kept (per kind), spread evenly over the images.
    pub max_descriptors: usize,
    /// Lloyd iterations of k-means.
    pub kmeans_iter: usize,
    /// k-means++ seeding runs on at most this many descriptors.
    pub kmeans_init_sample: usize,
}

impl Default for FitParams {
    fn default() -> Self {
        Self {
            max_images: 3000,
            max_descriptors: 200_000,
            kmeans_iter: 20,
            kmeans_init_sample: 20_000,
        }
    }
}

/// All settings of the image stage; a TOML section of the pipeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ImageFeatureParams {
    /// Images are shrunk so the longer side is at most this (never enlarged).
    pub max_side: u32,
    /// Seed of the fit's random draws (the image and descriptor subsets, k-means, the GMM).
    pub seed: u64,
    /// Images per parallel chunk in `transform` (bounds memory).
    pub chunk_size: usize,
    /// Dense SIFT (RootSIFT) descriptors and their encodings.
    pub sift: LocalParams<Sift>,
    /// Dense HOG patch descriptors and their encodings.
    pub hog: LocalParams<Hog>,
    /// Dense local colour statistics (off by default; left out of the saved parameters when
    /// off, so that work folders from before this option stay fresh).
    #[serde(skip_serializing_if = "LocalParams::is_disabled")]
    pub colour: LocalParams<Colour>,
    /// HSV colour histograms, over the regions of `hsv_pyramid`.
    pub hsv: HsvParams,
    /// Spatial pyramid of the HSV histograms.
    pub hsv_pyramid: Vec<u32>,
    /// Normalisation of the HSV block.
    pub hsv_norm: BlockNorm,
    /// GIST: Gabor filter energies on a grid.
    pub gist: GistParams,
    /// A HOG of the whole image (off by default).
    pub global_hog: GlobalHogParams,
    /// Shape, size, compression and format of the image file ([`super::geometry`]).
    #[serde(skip_serializing_if = "GeometryParams::is_disabled")]
    pub geometry: GeometryParams,
    /// Frontal faces found by OpenCV's Viola–Jones cascade ([`super::faces`]).
    #[serde(skip_serializing_if = "FaceParams::is_disabled")]
    pub faces: FaceParams,
    /// How the vocabularies are learnt.
    pub fit: FitParams,
    /// Also describe every image outside the test part mirrored left to right, as extra
    /// training pairs with the same captions (data augmentation; the vocabularies are still
    /// learnt on the unmirrored training images only). Left out of the saved parameters when
    /// off, so that work folders from before this option stay fresh.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hflip_training: bool,
}

impl Default for ImageFeatureParams {
    fn default() -> Self {
        Self {
            max_side: 256,
            seed: 42,
            chunk_size: 64,
            sift: LocalParams::default(),
            hog: LocalParams::default(),
            colour: LocalParams::default(),
            hsv: HsvParams::default(),
            hsv_pyramid: vec![1, 2],
            hsv_norm: BlockNorm::default(),
            gist: GistParams::default(),
            global_hog: GlobalHogParams::default(),
            geometry: GeometryParams::default(),
            faces: FaceParams::default(),
            fit: FitParams::default(),
            hflip_training: false,
        }
    }
}

/// Parameters that passed [`ImageFeatureParams::check`].
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFeatureValidParams(ImageFeatureParams);

impl ImageFeatureParams {
    /// The defaults: images shrunk to a longer side of at most 256 px, seed 42; dense RootSIFT
    /// as a bag of words, VLAD and Fisher vectors, dense HOG as a bag of words, HSV histograms
    /// and GIST, each over its spatial pyramid: six blocks, 29,568 columns in all
    /// ([`FittedImageFeatures::block_layout`] lists them). The local colour statistics, the
    /// global HOG, the file's geometry and the face block are off.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Self::seed`].
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }

    /// Sets [`Self::max_side`].
    pub fn max_side(mut self, max_side: u32) -> Self {
        self.max_side = max_side;
        self
    }

    /// The local kinds in output order: SIFT, HOG patches, colour statistics.
    fn locals(&self) -> [LocalView<'_>; 3] {
        [self.sift.view(), self.hog.view(), self.colour.view()]
    }

    /// Validates every field, naming the offending one.
    pub fn check(self) -> Result<ImageFeatureValidParams, ImageError> {
        if !(32..=4096).contains(&self.max_side) {
            return Err(ImageError::param(
                "max_side",
                format!("must be in [32, 4096], got {}", self.max_side),
            ));
        }
        if self.chunk_size == 0 {
            return Err(ImageError::param("chunk_size", "must be at least 1, got 0"));
        }
        for local in self.locals() {
            local.check()?;
        }
        if self.hsv.enabled {
            if self.hsv.bins.iter().any(|&b| !(1..=64).contains(&b)) {
                return Err(ImageError::param(
                    "hsv.bins",
                    format!("each must be in [1, 64], got {:?}", self.hsv.bins),
                ));
            }
            check_pyramid("hsv_pyramid", "hsv_pyramid", &self.hsv_pyramid)?;
        }
        if self.gist.enabled {
            self.gist.check()?;
        }
        if self.global_hog.enabled
            && (self.global_hog.cell == 0
                || self.global_hog.size < 2 * self.global_hog.cell
                || self.global_hog.size > 512)
        {
            return Err(ImageError::param(
                "global_hog",
                format!(
                    "needs 2*cell <= size <= 512, got size {} cell {}",
                    self.global_hog.size, self.global_hog.cell
                ),
            ));
        }
        if self.faces.enabled {
            self.faces.check()?;
        }
        if self.fit.max_images == 0 || self.fit.max_descriptors == 0 || self.fit.kmeans_iter == 0 {
            return Err(ImageError::param(
                "fit",
                "max_images, max_descriptors and kmeans_iter must be >= 1",
            ));
        }
        let p = ImageFeatureValidParams(self);
        if p.block_layout().is_empty() {
            return Err(ImageError::param(
                "image features",
                "every block is disabled",
            ));
        }
        Ok(p)
    }
}

/// Whether an image is described as it is or mirrored left to right (augmentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Orientation {
    /// The image as it is.
    AsIs,
    /// The image mirrored left to right.
    Mirrored,
}

/// An image that could not be described, with the reason.
#[derive(Debug, Clone)]
pub struct SkippedImage {
    /// Index of the image in the input paths.
    pub index: usize,
    /// The image's file.
    pub path: PathBuf,
    /// Why it could not be described.
    pub reason: String,
}

/// The features of a list of images.
#[derive(Debug, Clone)]
pub struct ImageFeatures {
    /// Named blocks, each normalised on its own, one row per usable image.
    pub blocks: Vec<(String, Array2<f32>)>,
    /// Concatenation of the blocks, each times its weight.
    pub combined: Array2<f32>,
    /// For each row, the index into the input paths.
    pub rows: Vec<usize>,
    /// The images that could not be described, in input order.
    pub skipped: Vec<SkippedImage>,
}

impl ImageFeatures {
    /// For each input path, in input order, its row in `blocks` and `combined` (`None`: the
    /// image was skipped). The inverse of `rows`.
    pub fn row_of_input(&self) -> Vec<Option<usize>> {
        let mut row_of = vec![None; self.rows.len() + self.skipped.len()];
        for (row, &input) in self.rows.iter().enumerate() {
            row_of[input] = Some(row);
        }
        row_of
    }
}

/// The rows of a few images, as [`FittedImageFeatures::transform_chunked`] hands them over.
#[derive(Debug, Clone)]
pub struct ImageFeatureChunk {
    /// For each row, the index into the input paths.
    pub rows: Vec<usize>,
    /// One matrix per block, in [`FittedImageFeatures::block_layout`] order, one row per
    /// entry of `rows`.
    pub blocks: Vec<Array2<f32>>,
}

/// Vocabularies of one kind of local descriptor.
#[derive(Debug, Clone, PartialEq)]
struct LocalModel {
    bow: Option<Codebook>,
    vlad: Option<Codebook>,
    fisher: Option<FisherModel>,
}

/// Learnt image feature extractor.
#[derive(Debug, Clone)]
pub struct FittedImageFeatures {
    params: ImageFeatureParams,
    /// One per kind of [`ImageFeatureParams::locals`] (`None`: the kind is off).
    locals: [Option<LocalModel>; 3],
    gist_filters: Vec<Vec<f32>>,
    /// The face cascade when the face block is on (shared by clones: it holds no fitted state).
    faces: Option<Arc<FaceDetector>>,
}

impl ImageFeatureValidParams {
    /// The checked parameters.
    pub fn params(&self) -> &ImageFeatureParams {
        &self.0
    }

    /// Block names and widths, in output order.
    pub fn block_layout(&self) -> Vec<(String, usize, f32)> {
        let p = &self.0;
        let mut v = Vec::new();
        for l in p.locals() {
            let name = l.name;
            if !l.enabled {
                continue;
            }
            let d = l.dim();
            if l.bow.enabled {
                v.push((
                    format!("{name}_bow"),
                    l.bow
                        .norm
                        .out_dim(l.bow.k * encode::n_regions(&l.bow.pyramid)),
                    l.bow.weight,
                ));
            }
            if l.vlad.enabled {
                v.push((
                    format!("{name}_vlad"),
                    l.vlad.k * d * encode::n_regions(&l.vlad.pyramid),
                    l.vlad.weight,
                ));
            }
            if l.fisher.enabled {
                v.push((
                    format!("{name}_fisher"),
                    2 * l.fisher.k * l.fisher.pca_dim * encode::n_regions(&l.fisher.pyramid),
                    l.fisher.weight,
                ));
            }
        }
        if p.hsv.enabled {
            v.push((
                "hsv".into(),
                p.hsv_norm
                    .out_dim(p.hsv.dim_per_region() * encode::n_regions(&p.hsv_pyramid)),
                p.hsv.weight,
            ));
        }
        if p.gist.enabled {
            v.push(("gist".into(), p.gist.dim(), p.gist.weight));
        }
        if p.global_hog.enabled {
            let nb = p.global_hog.size / p.global_hog.cell;
            v.push(("hog_global".into(), nb * nb * 9, p.global_hog.weight));
        }
        if p.geometry.enabled {
            v.push(("geometry".into(), GEOMETRY_DIM, p.geometry.weight));
        }
        if p.faces.enabled {
            v.push(("faces".into(), FACE_DIM, p.faces.weight));
        }
        v
    }

    /// Learns the vocabularies from the training images `paths`.
    pub fn fit(
        &self,
        paths: &[PathBuf],
        progress: &ProgressBar,
    ) -> Result<FittedImageFeatures, ImageError> {
        let p = &self.0;
        // A missing face cascade is reported before any image is decoded.
        let faces = face_detector(p)?;
        let n_all = paths.len();
        if n_all == 0 {
            return Err(ImageError::Fit {
                what: "image vocabularies".into(),
                reason: "no training images".into(),
            });
        }
        let mut rng = ChaCha8Rng::seed_from_u64(p.seed);
        let mut chosen: Vec<usize> = if n_all > p.fit.max_images {
            rand::seq::index::sample(&mut rng, n_all, p.fit.max_images).into_vec()
        } else {
            (0..n_all).collect()
        };
        chosen.sort_unstable();
        let per_image = p.fit.max_descriptors.div_ceil(chosen.len()).max(1);
        let locals = p.locals();
        progress.set_length(chosen.len() as u64);
        // Sampled descriptors of each kind, row after row.
        let mut rows: [Vec<f32>; 3] = Default::default();
        let mut used = 0usize;
        for chunk in chosen.chunks(p.chunk_size) {
            let results: Vec<Option<Vec<Array2<f32>>>> = chunk
                .par_iter()
                .map(|&i| {
                    let r = (|| -> Result<_, ImageError> {
                        let img = decode_image(&paths[i], p.max_side)?;
                        let grey = grey_f32(&img.bgr)?;
                        let mut rng = ChaCha8Rng::seed_from_u64(
                            p.seed ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
                        );
                        locals
                            .iter()
                            .map(|l| {
                                if l.needs_model() {
                                    let d = local_descriptors(l, &img.bgr, &grey)?;
                                    Ok(subsample(d.desc, per_image, &mut rng))
                                } else {
                                    Ok(Array2::zeros((0, l.dim())))
                                }
                            })
                            .collect::<Result<Vec<_>, ImageError>>()
                    })();
                    progress.inc(1);
                    match r {
                        Ok(v) => Some(v),
                        Err(e) => {
                            log::debug!("fit: skipping {}: {e}", paths[i].display());
                            None
                        }
                    }
                })
                .collect();
            for sampled in results.into_iter().flatten() {
                used += 1;
                for (buf, d) in rows.iter_mut().zip(sampled) {
                    buf.extend(d.iter());
                }
            }
        }
        if used == 0 {
            return Err(ImageError::Fit {
                what: "image vocabularies".into(),
                reason: format!(
                    "none of the {} training images could be decoded",
                    chosen.len()
                ),
            });
        }
        let mut models: [Option<LocalModel>; 3] = Default::default();
        // Each kind its own seed offset: 0 for SIFT, 1000 for HOG, 2000 for colour.
        for (k, ((slot, l), buf)) in models.iter_mut().zip(&locals).zip(rows).enumerate() {
            if l.needs_model() {
                let seed = p.seed.wrapping_add(1000 * k as u64);
                *slot = Some(fit_local(l.name, l, buf, &p.fit, seed)?);
            }
        }
        Ok(FittedImageFeatures {
            params: p.clone(),
            locals: models,
            gist_filters: if p.gist.enabled {
                p.gist.filters()
            } else {
                Vec::new()
            },
            faces,
        })
    }
}

/// The face cascade, loaded when the face block is on.
fn face_detector(p: &ImageFeatureParams) -> Result<Option<Arc<FaceDetector>>, ImageError> {
    if !p.faces.enabled {
        return Ok(None);
    }
    FaceDetector::new(&p.faces).map(|d| Some(Arc::new(d)))
}

fn local_descriptors(
    l: &LocalView<'_>,
    bgr: &opencv::core::Mat,
    grey: &opencv::core::Mat,
) -> Result<LocalDescriptors, ImageError> {
    match l.descriptor {
        LocalDescriptor::Colour => colour::colour_statistics(bgr, l.grid),
        LocalDescriptor::Gradient if l.keypoints => keypoint_sift(bgr, l.max_keypoints),
        LocalDescriptor::Gradient => dense_descriptors(grey, l.grid),
    }
}

/// At most `m` rows of `x`, chosen with `rng`, in their original order.
fn subsample(x: Array2<f32>, m: usize, rng: &mut ChaCha8Rng) -> Array2<f32> {
    if x.nrows() <= m {
        return x;
    }
    let mut idx = rand::seq::index::sample(rng, x.nrows(), m).into_vec();
    idx.sort_unstable();
    x.select(Axis(0), &idx)
}

fn fit_local(
    name: &str,
    l: &LocalView<'_>,
    rows: Vec<f32>,
    fit: &FitParams,
    seed: u64,
) -> Result<LocalModel, ImageError> {
    let d = l.dim();
    let n = rows.len() / d;
    let x = Array2::from_shape_vec((n, d), rows).map_err(|e| ImageError::Fit {
        what: format!("{name} vocabulary"),
        reason: e.to_string(),
    })?;
    let settings = |k: usize, s: u64| KMeansSettings {
        k,
        max_iter: fit.kmeans_iter,
        tol: 1e-4,
        init_sample: fit.kmeans_init_sample,
        seed: s,
    };
    let bow = if l.bow.enabled {
        Some(kmeans(x.view(), &settings(l.bow.k, seed.wrapping_add(1)))?.0)
    } else {
        None
    };
    let vlad = if l.vlad.enabled {
        Some(kmeans(x.view(), &settings(l.vlad.k, seed.wrapping_add(2)))?.0)
    } else {
        None
    };
    let fisher = if l.fisher.enabled {
        let pca = Pca::fit(x.view(), l.fisher.pca_dim)?;
        let xr = pca.transform(x.view());
        let gmm = DiagGmm::fit(
            xr.view(),
            l.fisher.k,
            l.fisher.em_iter,
            1e-3,
            seed.wrapping_add(3),
        )?;
        Some(FisherModel { pca, gmm })
    } else {
        None
    };
    Ok(LocalModel { bow, vlad, fisher })
}

impl FittedImageFeatures {
    /// The parameters the extractor was fitted with.
    pub fn params(&self) -> &ImageFeatureParams {
        &self.params
    }

    /// Block names, widths and weights, in output order.
    pub fn block_layout(&self) -> Vec<(String, usize, f32)> {
        ImageFeatureValidParams(self.params.clone()).block_layout()
    }

    /// Describes one image: one vector per block, in [`Self::block_layout`] order.
    pub fn describe(&self, path: &Path) -> Result<Vec<Vec<f32>>, ImageError> {
        self.describe_oriented(path, Orientation::AsIs)
    }

    /// Describes one image as it is or mirrored left to right.
    pub fn describe_oriented(
        &self,
        path: &Path,
        orientation: Orientation,
    ) -> Result<Vec<Vec<f32>>, ImageError> {
        let p = &self.params;
        let mut img = decode_image(path, p.max_side)?;
        if orientation == Orientation::Mirrored {
            let mut flipped = Mat::default();
            opencv::core::flip(&img.bgr, &mut flipped, 1).map_err(|e| ImageError::OpenCv {
                action: "mirroring the image",
                reason: format!("{}: {e}", path.display()),
            })?;
            img.bgr = flipped;
        }
        let (w, h) = (img.bgr.cols().max(0) as u32, img.bgr.rows().max(0) as u32);
        if w.min(h) < 8 {
            return Err(ImageError::TooSmall {
                path: path.to_path_buf(),
                width: w,
                height: h,
            });
        }
        let grey = grey_f32(&img.bgr)?;
        let mut out = Vec::new();
        for (l, model) in p.locals().into_iter().zip(&self.locals) {
            let Some(model) = model else { continue };
            if !l.enabled {
                continue;
            }
            let d = local_descriptors(&l, &img.bgr, &grey)?;
            let desc = d.desc.view();
            if let Some(book) = &model.bow {
                let regions = encode::pyramid_regions(&d.xy, d.width, d.height, &l.bow.pyramid);
                let v = encode::bow(desc, &regions, book, l.bow.assignment);
                out.push(l.bow.norm.apply(v));
            }
            if let Some(book) = &model.vlad {
                let regions = encode::pyramid_regions(&d.xy, d.width, d.height, &l.vlad.pyramid);
                let mut v = encode::vlad(desc, &regions, book);
                encode::l2_normalise(&mut v);
                out.push(v);
            }
            if let Some(fm) = &model.fisher {
                let regions = encode::pyramid_regions(&d.xy, d.width, d.height, &l.fisher.pyramid);
                let mut v = encode::fisher(desc, &regions, fm);
                encode::l2_normalise(&mut v);
                out.push(v);
            }
        }
        if p.hsv.enabled {
            let v = hsv_histograms(&img.bgr, p.hsv.bins, &p.hsv_pyramid)?;
            out.push(p.hsv_norm.apply(v));
        }
        if p.gist.enabled {
            let mut v = gist(&grey, &p.gist, &self.gist_filters)?;
            encode::l2_normalise(&mut v);
            out.push(v);
        }
        if p.global_hog.enabled {
            let mut v = global_hog(&grey, p.global_hog.size, p.global_hog.cell)?;
            encode::l2_normalise(&mut v);
            out.push(v);
        }
        if p.geometry.enabled {
            out.push(geometry(&img));
        }
        if let Some(detector) = &self.faces {
            out.push(detector.describe(&img.bgr)?);
        }
        Ok(out)
    }

    /// Describes every image in `paths` (bad ones are skipped and listed); `progress.inc(1)`
    /// per image.
    pub fn transform(
        &self,
        paths: &[PathBuf],
        progress: &ProgressBar,
    ) -> Result<ImageFeatures, ImageError> {
        self.transform_oriented(paths, Orientation::AsIs, progress)
    }

    /// [`Self::transform`] with every image as it is or mirrored left to right.
    pub fn transform_oriented(
        &self,
        paths: &[PathBuf],
        orientation: Orientation,
        progress: &ProgressBar,
    ) -> Result<ImageFeatures, ImageError> {
        let layout = self.block_layout();
        let mut data: Vec<Vec<f32>> = layout
            .iter()
            .map(|(_, width, _)| Vec::with_capacity(paths.len() * width))
            .collect();
        let mut rows = Vec::with_capacity(paths.len());
        let skipped = self.transform_chunked(paths, orientation, progress, |chunk| {
            for (buf, block) in data.iter_mut().zip(&chunk.blocks) {
                buf.extend(block.iter());
            }
            rows.extend(chunk.rows);
            Ok::<(), ImageError>(())
        })?;
        let n = rows.len();
        let mut blocks = Vec::with_capacity(layout.len());
        for (buf, (name, width, _)) in data.into_iter().zip(&layout) {
            let m = Array2::from_shape_vec((n, *width), buf).map_err(|e| ImageError::Fit {
                what: format!("block {name}"),
                reason: e.to_string(),
            })?;
            blocks.push((name.clone(), m));
        }
        let combined = self.combine(blocks.iter().map(|(_, m)| m));
        Ok(ImageFeatures {
            blocks,
            combined,
            rows,
            skipped,
        })
    }

    /// Describes every image in `paths` a chunk at a time (`chunk_size` images, in parallel)
    /// and hands each chunk's rows to `sink`, in the order of `paths`, so that the features of
    /// more images than fit in memory can be written out as they come. Returns the images that
    /// could not be described; `progress.inc(1)` per image.
    pub fn transform_chunked<E, F>(
        &self,
        paths: &[PathBuf],
        orientation: Orientation,
        progress: &ProgressBar,
        mut sink: F,
    ) -> Result<Vec<SkippedImage>, E>
    where
        E: From<ImageError>,
        F: FnMut(ImageFeatureChunk) -> Result<(), E>,
    {
        let layout = self.block_layout();
        let mut skipped = Vec::new();
        let indices: Vec<usize> = (0..paths.len()).collect();
        for chunk in indices.chunks(self.params.chunk_size) {
            let results: Vec<Result<Vec<Vec<f32>>, ImageError>> = chunk
                .par_iter()
                .map(|&i| {
                    let r = self.describe_oriented(&paths[i], orientation);
                    progress.inc(1);
                    r
                })
                .collect();
            let mut data: Vec<Vec<f32>> = layout
                .iter()
                .map(|(_, width, _)| Vec::with_capacity(chunk.len() * width))
                .collect();
            let mut rows = Vec::with_capacity(chunk.len());
            for (&i, r) in chunk.iter().zip(results) {
                match r {
                    Ok(blocks) => {
                        for ((buf, b), (name, width, _)) in data.iter_mut().zip(blocks).zip(&layout)
                        {
                            if b.len() != *width {
                                return Err(ImageError::Fit {
                                    what: format!("block {name}"),
                                    reason: format!("expected {width} values, got {}", b.len()),
                                }
                                .into());
                            }
                            buf.extend(b);
                        }
                        rows.push(i);
                    }
                    Err(e) => {
                        log::warn!("skipping image {}: {e}", paths[i].display());
                        skipped.push(SkippedImage {
                            index: i,
                            path: paths[i].clone(),
                            reason: e.to_string(),
                        });
                    }
                }
            }
            let n = rows.len();
            let blocks = data
                .into_iter()
                .zip(&layout)
                .map(|(buf, (name, width, _))| {
                    Array2::from_shape_vec((n, *width), buf).map_err(|e| ImageError::Fit {
                        what: format!("block {name}"),
                        reason: e.to_string(),
                    })
                })
                .collect::<Result<Vec<_>, _>>()?;
            sink(ImageFeatureChunk { rows, blocks })?;
        }
        Ok(skipped)
    }

    /// The concatenation of `blocks` (one matrix per block, in [`Self::block_layout`] order,
    /// the same rows), each times its weight: the rows of [`ImageFeatures::combined`].
    pub fn combine<'a>(&self, blocks: impl IntoIterator<Item = &'a Array2<f32>>) -> Array2<f32> {
        let layout = self.block_layout();
        let blocks: Vec<&Array2<f32>> = blocks.into_iter().collect();
        assert_eq!(blocks.len(), layout.len(), "one matrix per block");
        let n = blocks.first().map_or(0, |m| m.nrows());
        let total: usize = layout.iter().map(|l| l.1).sum();
        let mut combined = Array2::<f32>::zeros((n, total));
        let mut off = 0;
        for (m, (_, width, weight)) in blocks.into_iter().zip(&layout) {
            combined
                .slice_mut(ndarray::s![.., off..off + width])
                .zip_mut_with(m, |c, &v| *c = v * weight);
            off += width;
        }
        combined
    }

    /// The learnt arrays, named `"<kind>.<encoding>.<part>"`, for saving as `.npy` files.
    pub fn to_arrays(&self) -> Vec<(String, Array2<f32>)> {
        let mut v = Vec::new();
        for (l, model) in self.params.locals().into_iter().zip(&self.locals) {
            let name = l.name;
            let Some(m) = model else { continue };
            if let Some(b) = &m.bow {
                v.push((format!("{name}.bow.centroids"), b.centroids.clone()));
            }
            if let Some(b) = &m.vlad {
                v.push((format!("{name}.vlad.centroids"), b.centroids.clone()));
            }
            if let Some(f) = &m.fisher {
                v.push((format!("{name}.fisher.pca_mean"), row(&f.pca.mean)));
                v.push((
                    format!("{name}.fisher.pca_components"),
                    f.pca.components.clone(),
                ));
                v.push((format!("{name}.fisher.gmm_weights"), row(&f.gmm.weights)));
                v.push((format!("{name}.fisher.gmm_means"), f.gmm.means.clone()));
                v.push((
                    format!("{name}.fisher.gmm_variances"),
                    f.gmm.variances.clone(),
                ));
            }
        }
        v
    }

    /// Rebuilds a fitted extractor from `params` and the arrays of [`Self::to_arrays`],
    /// checking that every expected array is present with the right shape.
    pub fn from_arrays(
        params: ImageFeatureParams,
        arrays: Vec<(String, Array2<f32>)>,
    ) -> Result<Self, ImageError> {
        let checked = params.check()?;
        let p = checked.0;
        let mut map: std::collections::HashMap<String, Array2<f32>> = arrays.into_iter().collect();
        let mut take = |name: String, shape: (usize, usize)| -> Result<Array2<f32>, ImageError> {
            let a = map.remove(&name).ok_or_else(|| ImageError::ModelArray {
                name: name.clone(),
                reason: "missing".into(),
            })?;
            if a.dim() != shape {
                return Err(ImageError::ModelArray {
                    name,
                    reason: format!("expected shape {shape:?}, got {:?}", a.dim()),
                });
            }
            if a.iter().any(|v| !v.is_finite()) {
                return Err(ImageError::ModelArray {
                    name,
                    reason: "contains NaN or infinity".into(),
                });
            }
            Ok(a)
        };
        let mut models: [Option<LocalModel>; 3] = Default::default();
        for (slot, l) in models.iter_mut().zip(p.locals()) {
            let name = l.name;
            if !l.needs_model() {
                continue;
            }
            let d = l.dim();
            let bow = if l.bow.enabled {
                Some(Codebook::new(take(
                    format!("{name}.bow.centroids"),
                    (l.bow.k, d),
                )?))
            } else {
                None
            };
            let vlad = if l.vlad.enabled {
                Some(Codebook::new(take(
                    format!("{name}.vlad.centroids"),
                    (l.vlad.k, d),
                )?))
            } else {
                None
            };
            let fisher = if l.fisher.enabled {
                let (k, pd) = (l.fisher.k, l.fisher.pca_dim);
                let mean = take(format!("{name}.fisher.pca_mean"), (1, d))?;
                let comps = take(format!("{name}.fisher.pca_components"), (d, pd))?;
                let w = take(format!("{name}.fisher.gmm_weights"), (1, k))?;
                let means = take(format!("{name}.fisher.gmm_means"), (k, pd))?;
                let vars = take(format!("{name}.fisher.gmm_variances"), (k, pd))?;
                if vars.iter().any(|&v| v <= 0.0) {
                    return Err(ImageError::ModelArray {
                        name: format!("{name}.fisher.gmm_variances"),
                        reason: "variances must be positive".into(),
                    });
                }
                Some(FisherModel {
                    pca: Pca {
                        mean: mean.row(0).to_owned(),
                        components: comps,
                    },
                    gmm: DiagGmm {
                        weights: w.row(0).to_owned(),
                        means,
                        variances: vars,
                    },
                })
            } else {
                None
            };
            *slot = Some(LocalModel { bow, vlad, fisher });
        }
        if let Some(extra) = map.keys().next() {
            return Err(ImageError::ModelArray {
                name: extra.clone(),
                reason: "not expected by these parameters".into(),
            });
        }
        Ok(FittedImageFeatures {
            gist_filters: if p.gist.enabled {
                p.gist.filters()
            } else {
                Vec::new()
            },
            faces: face_detector(&p)?,
            params: p,
            locals: models,
        })
    }
}

/// The parameters' file in a saved image model's folder.
pub const IMAGE_PARAMS_JSON: &str = "params.json";

impl FittedImageFeatures {
    /// Saves the extractor to `dir`: `params.json` and one `<name>.npy` per array of
    /// [`Self::to_arrays`] (vocabularies, PCA and GMM of the Fisher vectors, ...). The folder is
    /// written whole or not at all; an existing one is replaced.
    pub fn save(&self, dir: &Path) -> Result<(), ImageError> {
        crate::model_dir::write_folder_atomically(dir, |staging| {
            crate::model_dir::write_json(&staging.join(IMAGE_PARAMS_JSON), &self.params)?;
            for (name, array) in self.to_arrays() {
                crate::model_dir::write_npy(&staging.join(format!("{name}.npy")), &array)?;
            }
            Ok(())
        })
    }

    /// Loads an extractor written by [`Self::save`].
    pub fn load(dir: &Path) -> Result<Self, ImageError> {
        let params = crate::model_dir::read_json(&dir.join(IMAGE_PARAMS_JSON))?;
        Self::read_arrays(dir, params)
    }

    /// Rebuilds an extractor from `params` and the `.npy` files of `dir` (the pipeline's
    /// `image-features` folders keep the parameters in their manifest, not in the folder).
    pub fn read_arrays(dir: &Path, params: ImageFeatureParams) -> Result<Self, ImageError> {
        let mut arrays = Vec::new();
        for (name, path) in crate::model_dir::npy_files(dir)? {
            arrays.push((name, crate::model_dir::read_npy(&path)?));
        }
        Self::from_arrays(params, arrays)
    }
}

fn row(a: &Array1<f32>) -> Array2<f32> {
    a.clone().insert_axis(Axis(0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::dsift::tests::synthetic_bgr;

    fn small_params() -> ImageFeatureParams {
        let mut p = ImageFeatureParams::default();
        p.sift.bow.k = 8;
        p.sift.vlad.k = 4;
        p.sift.fisher.k = 2;
        p.sift.fisher.pca_dim = 8;
        p.hog.bow.k = 8;
        p.fit.max_descriptors = 4000;
        p.fit.kmeans_iter = 5;
        p.chunk_size = 3;
        p
    }

    /// Six textured images and one text file named .jpg, in a tempdir.
    fn image_dir() -> (tempfile::TempDir, Vec<PathBuf>) {
        let dir = tempfile::tempdir().unwrap();
        let mut paths = Vec::new();
        for i in 0..6 {
            let m = synthetic_bgr(100 + i, 96 + 8 * i as i32, 80);
            let p = dir.path().join(format!("img{i}.jpg"));
            let mut buf = opencv::core::Vector::<u8>::new();
            opencv::imgcodecs::imencode_def(".jpg", &m, &mut buf).unwrap();
            std::fs::write(&p, buf.as_slice()).unwrap();
            paths.push(p);
        }
        let bad = dir.path().join("bad.jpg");
        std::fs::write(&bad, b"<html>not found</html>").unwrap();
        paths.insert(2, bad);
        (dir, paths)
    }

    #[test]
    fn fit_transform_shapes_skips_and_is_deterministic() {
        let (_dir, paths) = image_dir();
        let checked = small_params().check().unwrap();
        let bar = ProgressBar::hidden();
        let fitted = checked.fit(&paths, &bar).unwrap();
        let f = fitted.transform(&paths, &bar).unwrap();
        assert_eq!(f.rows, vec![0, 1, 3, 4, 5, 6]);
        let row_of = [Some(0), Some(1), None, Some(2), Some(3), Some(4), Some(5)];
        assert_eq!(f.row_of_input(), row_of);
        assert_eq!(f.skipped.len(), 1);
        assert_eq!(f.skipped[0].index, 2);
        assert!(f.skipped[0].reason.contains("bad.jpg"));
        let names: Vec<&str> = f.blocks.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "sift_bow",
                "sift_vlad",
                "sift_fisher",
                "hog_bow",
                "hsv",
                "gist"
            ]
        );
        let widths: Vec<usize> = f.blocks.iter().map(|b| b.1.ncols()).collect();
        assert_eq!(widths, [8 * 5, 4 * 128, 2 * 2 * 8 * 5, 8 * 5, 128 * 5, 512]);
        assert_eq!(f.combined.dim(), (6, widths.iter().sum()));
        for (name, m) in &f.blocks {
            for r in m.rows() {
                let n: f32 = r.iter().map(|v| v * v).sum::<f32>().sqrt();
                assert!((n - 1.0).abs() < 1e-4, "{name}: norm {n}");
            }
        }
        // same seed, same everything
        let fitted2 = checked.fit(&paths, &bar).unwrap();
        assert_eq!(fitted.to_arrays(), fitted2.to_arrays());
        let f2 = fitted2.transform(&paths, &bar).unwrap();
        assert_eq!(f.combined, f2.combined);

        // save/load round trip through arrays, and through a saved folder
        let loaded =
            FittedImageFeatures::from_arrays(checked.params().clone(), fitted.to_arrays()).unwrap();
        let f3 = loaded.transform(&paths, &bar).unwrap();
        assert_eq!(f.combined, f3.combined);
        let saved = tempfile::tempdir().unwrap();
        let model_dir = saved.path().join("image-model");
        fitted.save(&model_dir).unwrap();
        let loaded = FittedImageFeatures::load(&model_dir).unwrap();
        assert_eq!(loaded.params(), fitted.params());
        assert_eq!(loaded.to_arrays(), fitted.to_arrays());
        assert_eq!(loaded.transform(&paths, &bar).unwrap().combined, f.combined);
        std::fs::remove_file(model_dir.join("sift.bow.centroids.npy")).unwrap();
        let e = FittedImageFeatures::load(&model_dir).unwrap_err();
        assert!(e.to_string().contains("sift.bow.centroids"), "{e}");
        std::fs::write(model_dir.join(IMAGE_PARAMS_JSON), "{\"sift\": 3}").unwrap();
        let e = FittedImageFeatures::load(&model_dir).unwrap_err();
        assert!(e.to_string().contains("params.json"), "{e}");

        // a missing array is named
        let mut arrays = fitted.to_arrays();
        arrays.retain(|a| a.0 != "sift.fisher.gmm_means");
        let e = FittedImageFeatures::from_arrays(checked.params().clone(), arrays).unwrap_err();
        assert!(e.to_string().contains("sift.fisher.gmm_means"), "{e}");
    }

    #[test]
    fn colour_statistics_add_their_blocks_learn_their_vocabularies_and_round_trip() {
        let (_dir, paths) = image_dir();
        let bar = ProgressBar::hidden();
        let mut p = small_params();
        // Off, the kind is not even written, so saved parameters from before it stay the same.
        let off = serde_json::to_value(&p).unwrap();
        assert!(off.get("colour").is_none(), "{off}");
        p.colour.enabled = true;
        p.colour.vlad.enabled = true;
        p.colour.vlad.k = 4;
        p.colour.fisher.k = 2;
        p.colour.fisher.pca_dim = 8;
        let on = serde_json::to_value(&p).unwrap();
        assert_eq!(on["colour"]["enabled"], true);
        let checked = p.check().unwrap();
        let fitted = checked.fit(&paths, &bar).unwrap();
        let f = fitted.transform(&paths, &bar).unwrap();
        let layout: Vec<(&str, usize)> = f
            .blocks
            .iter()
            .map(|(n, m)| (n.as_str(), m.ncols()))
            .filter(|(n, _)| n.starts_with("colour"))
            .collect();
        // 96-dimensional statistics; Fisher vectors over the 1x1 + 2x2 pyramid.
        assert_eq!(
            layout,
            [("colour_vlad", 4 * 96), ("colour_fisher", 2 * 2 * 8 * 5)]
        );
        // Between the HOG and the HSV blocks, in the order of the layout.
        let names: Vec<&str> = f.blocks.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(&names[3..6], ["hog_bow", "colour_vlad", "colour_fisher"]);
        let arrays = fitted.to_arrays();
        assert!(arrays.iter().any(|(n, _)| n == "colour.fisher.gmm_means"));
        let loaded = FittedImageFeatures::from_arrays(checked.params().clone(), arrays).unwrap();
        assert_eq!(loaded.transform(&paths, &bar).unwrap().combined, f.combined);
        // The SIFT and HOG vocabularies do not change when colour is switched on.
        let without = small_params().check().unwrap().fit(&paths, &bar).unwrap();
        let sift_and_hog = |a: Vec<(String, Array2<f32>)>| {
            a.into_iter()
                .filter(|(n, _)| !n.starts_with("colour"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            sift_and_hog(fitted.to_arrays()),
            sift_and_hog(without.to_arrays())
        );
        // Keypoints are for SIFT only.
        let mut bad = small_params();
        bad.colour.enabled = true;
        bad.colour.keypoints = true;
        let err = bad.check().unwrap_err();
        assert!(err.to_string().contains("colour"), "{err}");
    }

    /// [`small_params`] with only the HSV block on, for tests of the blocks that follow it.
    fn hsv_only_params() -> ImageFeatureParams {
        let mut p = small_params();
        p.sift.enabled = false;
        p.hog.enabled = false;
        p.gist.enabled = false;
        p
    }

    #[test]
    fn face_block_comes_after_geometry_and_counts_each_image_once() {
        let (dir, paths) = image_dir();
        let bar = ProgressBar::hidden();
        let mut p = hsv_only_params();
        let off = serde_json::to_value(&p).unwrap();
        assert!(off.get("faces").is_none(), "{off}");
        p.geometry.enabled = true;
        p.faces.enabled = true;
        let fitted = p.clone().check().unwrap().fit(&paths, &bar).unwrap();
        let f = fitted.transform(&paths, &bar).unwrap();
        let names: Vec<&str> = f.blocks.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(names, ["hsv", "geometry", "faces"]);
        let faces = &f.blocks[2].1;
        // Six images described, the text file named .jpg skipped.
        assert_eq!(faces.dim(), (paths.len() - 1, FACE_DIM));
        for r in faces.rows() {
            // Exactly one count bin is set; the synthetic shapes hold no face.
            assert_eq!(r.slice(ndarray::s![..5]).sum(), 1.0, "{r}");
            assert_eq!(r[0], 1.0, "{r}");
        }
        // A cascade that is not there is named before any image is described.
        p.faces.cascade = Some(dir.path().join("no-cascade.xml"));
        let err = p.check().unwrap().fit(&paths, &bar).unwrap_err();
        assert!(err.to_string().contains("no-cascade.xml"), "{err}");
    }

    #[test]
    fn geometry_block_comes_last_and_describes_the_file_not_the_pixels() {
        let (_dir, paths) = image_dir();
        let bar = ProgressBar::hidden();
        let mut p = hsv_only_params();
        // Off, it is not written, so saved parameters from before it stay the same.
        let off = serde_json::to_value(&p).unwrap();
        assert!(off.get("geometry").is_none(), "{off}");
        p.geometry.enabled = true;
        p.geometry.weight = 0.5;
        let fitted = p.check().unwrap().fit(&paths, &bar).unwrap();
        let f = fitted.transform(&paths, &bar).unwrap();
        let names: Vec<&str> = f.blocks.iter().map(|b| b.0.as_str()).collect();
        assert_eq!(names, ["hsv", "geometry"]);
        let geometry = &f.blocks[1].1;
        assert_eq!(geometry.ncols(), GEOMETRY_DIM);
        // The combined row holds the block times its weight.
        let hsv_width = f.blocks[0].1.ncols();
        assert_eq!(
            f.combined.slice(ndarray::s![.., hsv_width..]),
            geometry * 0.5
        );
        // The six images are 96 to 136 pixels wide and 80 high, so their aspect bins differ;
        // all are JPEG files.
        let jpeg = GEOMETRY_DIM - 4;
        for r in geometry.rows() {
            assert_eq!(r[jpeg], 1.0);
        }
        assert_ne!(geometry.row(0), geometry.row(5));
        // Mirroring moves pixels, not the file's shape, size or format.
        let mirrored = fitted
            .transform_oriented(&paths, Orientation::Mirrored, &bar)
            .unwrap();
        assert_eq!(&mirrored.blocks[1].1, geometry);
    }

    #[test]
    fn mirrored_description_is_that_of_the_mirrored_file() {
        let (_dir, paths) = image_dir();
        let bar = ProgressBar::hidden();
        let fitted = small_params().check().unwrap().fit(&paths, &bar).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let image = synthetic_bgr(7, 96, 80);
        let mut flipped = Mat::default();
        opencv::core::flip(&image, &mut flipped, 1).unwrap();
        let write = |name: &str, m: &Mat| {
            // PNG: lossless, so both files hold exactly these pixels.
            let mut buf = opencv::core::Vector::<u8>::new();
            opencv::imgcodecs::imencode_def(".png", m, &mut buf).unwrap();
            let path = dir.path().join(name);
            std::fs::write(&path, buf.as_slice()).unwrap();
            path
        };
        let (original, mirrored_file) = (write("a.png", &image), write("b.png", &flipped));
        let mirrored = fitted
            .transform_oriented(std::slice::from_ref(&original), Orientation::Mirrored, &bar)
            .unwrap();
        let direct = fitted.transform(&[mirrored_file], &bar).unwrap();
        assert_eq!(mirrored.combined, direct.combined);
        let as_is = fitted.transform(&[original], &bar).unwrap();
        assert_ne!(
            as_is.combined, mirrored.combined,
            "the test image is not symmetric"
        );
    }

    #[test]
    fn different_seed_gives_different_vocabulary() {
        let (_dir, paths) = image_dir();
        let bar = ProgressBar::hidden();
        let a = small_params().check().unwrap().fit(&paths, &bar).unwrap();
        let b = small_params()
            .seed(7)
            .check()
            .unwrap()
            .fit(&paths, &bar)
            .unwrap();
        assert_ne!(a.to_arrays()[0].1, b.to_arrays()[0].1);
    }

    #[test]
    fn check_names_the_bad_field() {
        let mut p = ImageFeatureParams::default();
        p.sift.bow.k = 1;
        let e = p.check().unwrap_err().to_string();
        assert!(e.contains("bow.k") && e.contains("got 1"), "{e}");
        let e = ImageFeatureParams::default()
            .max_side(5)
            .check()
            .unwrap_err()
            .to_string();
        assert!(e.contains("max_side"), "{e}");
    }

    #[test]
    fn params_round_trip_through_toml_and_reject_unknown_fields() {
        let p = small_params();
        let s = toml::to_string(&p).unwrap();
        let q: ImageFeatureParams = toml::from_str(&s).unwrap();
        assert_eq!(p, q);
        let partial: ImageFeatureParams =
            toml::from_str("seed = 3\n[sift.bow]\nk = 1024\n").unwrap();
        assert_eq!(partial.seed, 3);
        assert_eq!(partial.sift.bow.k, 1024);
        assert_eq!(partial.sift.vlad, VladParams::default());
        assert!(toml::from_str::<ImageFeatureParams>("sede = 3").is_err());
        // hflip_training is only written when on (older manifests stay fresh), and read back.
        assert!(!s.contains("hflip_training"), "{s}");
        let mut flipped = small_params();
        flipped.hflip_training = true;
        let s = toml::to_string(&flipped).unwrap();
        assert_eq!(toml::from_str::<ImageFeatureParams>(&s).unwrap(), flipped);
    }

    #[test]
    fn fit_fails_cleanly_when_nothing_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("x.jpg");
        std::fs::write(&p, b"nope").unwrap();
        let e = small_params()
            .check()
            .unwrap()
            .fit(&[p], &ProgressBar::hidden())
            .unwrap_err();
        assert!(matches!(e, ImageError::Fit { .. }), "{e}");
    }

    #[test]
    fn real_teddy_images_are_all_described() {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/teddy/attachment1/ImageData"
        ));
        if !dir.is_dir() {
            eprintln!(
                "SKIPPED real_teddy_images_are_all_described: {} absent",
                dir.display()
            );
            return;
        }
        let mut paths: Vec<PathBuf> = ["Image14001001-8201.jpg", "Image14001002-2729.jpg"]
            .iter()
            .map(|n| dir.join(n))
            .collect();
        let mut rest: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        rest.sort();
        paths.extend(rest.into_iter().take(6));
        paths.push(dir.join("Image14001001-2540.jpg")); // listed but missing
        let bar = ProgressBar::hidden();
        let fitted = small_params().check().unwrap().fit(&paths, &bar).unwrap();
        let f = fitted.transform(&paths, &bar).unwrap();
        assert_eq!(f.rows.len(), paths.len() - 1);
        assert_eq!(f.skipped.len(), 1);
        assert_eq!(f.skipped[0].index, paths.len() - 1);
    }
}
