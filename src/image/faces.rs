//! Frontal faces found by a Viola–Jones cascade (Viola & Jones 2001, "Rapid object detection
//! using a boosted cascade of simple features"; Lienhart & Maydt 2002 for the extended Haar
//! features of OpenCV's `haarcascade_frontalface_alt2.xml`), summarised as one image block.
//!
//! Every other image block is a statistic of gradients or colours; none of them says whether a
//! picture shows a person. Web captions often do (an actor, a minister, "男主", `<人名>`), so
//! whether there are faces, how large the largest is and where they sit is a candidate for the
//! little shared signal the fusion can find. The cascade is OpenCV's own, read from the
//! `opencv-data` package (or a file named in the parameters); nothing is learnt here.
//!
//! The block soft-bins three things, so that it behaves like the other histogram blocks under
//! centring, PCA and the Gaussian kernel maps:
//! - how many faces: one-hot over 0, 1, 2, 3, 4 or more (5 values);
//! - the largest face's side over the image's shorter side, `log2`, centres −4, −3.5, …, 0
//!   (9 bins; all zero without a face);
//! - where the faces are: their centres in a 3 × 3 grid, each weighted by its area, summing to
//!   1 (9 values; all zero without a face).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use opencv::core::{Mat, Rect, Size, Vector};
use opencv::imgproc;
use opencv::objdetect::{CascadeClassifier, CascadeClassifierTrait, CascadeClassifierTraitConst};
use opencv::prelude::*;
use serde::{Deserialize, Serialize};

use super::ImageError;
use super::geometry::{BINS, soft_bins};

/// Values in the face block.
pub const FACE_DIM: usize = COUNT_BINS + BINS + 9;

/// Face counts 0, 1, 2, 3 and 4 or more.
const COUNT_BINS: usize = 5;

/// Where OpenCV's data packages put the cascade, searched in order when `cascade` is not set.
const CASCADE_DIRS: [&str; 3] = [
    "/usr/share/opencv4/haarcascades",
    "/usr/local/share/opencv4/haarcascades",
    "/usr/share/opencv/haarcascades",
];

/// The cascade looked for in [`CASCADE_DIRS`].
const DEFAULT_CASCADE: &str = "haarcascade_frontalface_alt2.xml";

/// Face block settings (off by default; left out of the saved parameters when off, so that
/// work folders from before this option stay fresh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaceParams {
    /// Whether the block is computed (and written).
    pub enabled: bool,
    /// Multiplies the block's rows in the combined matrix.
    pub weight: f32,
    /// The cascade file; unset, `haarcascade_frontalface_alt2.xml` from OpenCV's data folder.
    pub cascade: Option<PathBuf>,
    /// Ratio between the window sizes the cascade is run at (`detectMultiScale`).
    pub scale_factor: f64,
    /// Overlapping detections a face needs to be kept.
    pub min_neighbors: u32,
    /// Smallest face side, in pixels of the shrunk image.
    pub min_size: u32,
}

impl Default for FaceParams {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
            cascade: None,
            scale_factor: 1.1,
            min_neighbors: 4,
            min_size: 20,
        }
    }
}

impl FaceParams {
    /// Off: no face block, and the section is left out of the saved parameters.
    pub fn is_disabled(&self) -> bool {
        !self.enabled
    }

    pub(crate) fn check(&self) -> Result<(), ImageError> {
        if !(self.scale_factor > 1.0 && self.scale_factor <= 2.0) {
            return Err(ImageError::param(
                "faces.scale_factor",
                format!("must be in (1, 2], got {}", self.scale_factor),
            ));
        }
        if self.min_neighbors > 100 {
            return Err(ImageError::param(
                "faces.min_neighbors",
                format!("must be in [0, 100], got {}", self.min_neighbors),
            ));
        }
        if !(8..=1024).contains(&self.min_size) {
            return Err(ImageError::param(
                "faces.min_size",
                format!("must be in [8, 1024], got {}", self.min_size),
            ));
        }
        Ok(())
    }

    /// The cascade file: the one named, or the first of `CASCADE_DIRS` that has
    /// `DEFAULT_CASCADE`.
    pub fn cascade_path(&self) -> Result<PathBuf, ImageError> {
        if let Some(path) = &self.cascade {
            return Ok(path.clone());
        }
        CASCADE_DIRS
            .iter()
            .map(|dir| Path::new(dir).join(DEFAULT_CASCADE))
            .find(|path| path.is_file())
            .ok_or_else(|| {
                ImageError::param(
                    "faces.cascade",
                    format!(
                        "{DEFAULT_CASCADE} is in none of {} (install the opencv-data package or \
                         set image_features.faces.cascade)",
                        CASCADE_DIRS.join(", ")
                    ),
                )
            })
    }
}

/// A loaded cascade and its settings. `CascadeClassifier` is `Send` but not `Sync` (detection
/// writes scratch buffers), so each describing thread takes one from a pool and puts it back.
pub struct FaceDetector {
    params: FaceParams,
    path: PathBuf,
    idle: Mutex<Vec<CascadeClassifier>>,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceDetector")
            .field("params", &self.params)
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl FaceDetector {
    /// Loads the cascade once, so that a missing or unreadable file is reported before any
    /// image is described.
    pub fn new(params: &FaceParams) -> Result<Self, ImageError> {
        params.check()?;
        let path = params.cascade_path()?;
        let first = load_cascade(&path)?;
        Ok(Self {
            params: params.clone(),
            path,
            idle: Mutex::new(vec![first]),
        })
    }

    /// The face block of an 8-bit BGR image (see the module documentation).
    pub fn describe(&self, bgr: &Mat) -> Result<Vec<f32>, ImageError> {
        let mut grey = Mat::default();
        imgproc::cvt_color_def(bgr, &mut grey, imgproc::COLOR_BGR2GRAY)
            .map_err(|e| ImageError::opencv("converting to grey for face detection", e))?;
        let mut equalised = Mat::default();
        imgproc::equalize_hist(&grey, &mut equalised)
            .map_err(|e| ImageError::opencv("equalising for face detection", e))?;
        let pooled = self.idle.lock().map(|mut idle| idle.pop()).unwrap_or(None);
        let mut cascade = match pooled {
            Some(cascade) => cascade,
            None => load_cascade(&self.path)?,
        };
        let mut found = Vector::<Rect>::new();
        let min = self.params.min_size as i32;
        let detected = cascade.detect_multi_scale(
            &equalised,
            &mut found,
            self.params.scale_factor,
            self.params.min_neighbors as i32,
            0,
            Size::new(min, min),
            Size::default(),
        );
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(cascade);
        }
        detected.map_err(|e| ImageError::opencv("detecting faces", e))?;
        let faces: Vec<Rect> = found.to_vec();
        Ok(face_block(&faces, equalised.cols(), equalised.rows()))
    }
}

fn load_cascade(path: &Path) -> Result<CascadeClassifier, ImageError> {
    if !path.is_file() {
        return Err(ImageError::param(
            "faces.cascade",
            format!("{} is not a file", path.display()),
        ));
    }
    let cascade = CascadeClassifier::new(path).map_err(|e| {
        ImageError::param(
            "faces.cascade",
            format!("cannot load {}: {e}", path.display()),
        )
    })?;
    let empty = cascade
        .empty()
        .map_err(|e| ImageError::opencv("checking the face cascade", e))?;
    if empty {
        return Err(ImageError::param(
            "faces.cascade",
            format!("{} is not a cascade OpenCV can read", path.display()),
        ));
    }
    Ok(cascade)
}

/// The block for the faces `faces` found in a `width` × `height` image.
fn face_block(faces: &[Rect], width: i32, height: i32) -> Vec<f32> {
    let mut out = vec![0.0; COUNT_BINS];
    out[faces.len().min(COUNT_BINS - 1)] = 1.0;
    let (width, height) = (width.max(1) as f64, height.max(1) as f64);
    match faces.iter().map(|f| f.width.max(f.height)).max() {
        Some(side) => {
            let relative = (f64::from(side.max(1)) / width.min(height)).log2();
            soft_bins(&mut out, relative, -4.0, 0.5);
        }
        None => out.resize(COUNT_BINS + BINS, 0.0),
    }
    let mut grid = [0.0f64; 9];
    for face in faces {
        let cx = (f64::from(face.x) + f64::from(face.width) / 2.0) / width;
        let cy = (f64::from(face.y) + f64::from(face.height) / 2.0) / height;
        let cell = |c: f64| ((c * 3.0).floor() as usize).min(2);
        grid[cell(cy) * 3 + cell(cx)] += f64::from(face.width) * f64::from(face.height);
    }
    let total: f64 = grid.iter().sum();
    out.extend(
        grid.iter()
            .map(|&a| if total > 0.0 { (a / total) as f32 } else { 0.0 }),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_face_is_a_count_of_zero_and_nothing_else() {
        let v = face_block(&[], 640, 480);
        assert_eq!(v.len(), FACE_DIM);
        assert_eq!(v[0], 1.0);
        assert_eq!(v.iter().sum::<f32>(), 1.0);
    }

    #[test]
    fn faces_are_counted_sized_and_placed_by_area() {
        // 400 x 200: the shorter side is 200. A 100-pixel face (side ratio 2^-1, the 7th size
        // centre) in the top-left cell and a 50-pixel one in the bottom-right cell.
        let big = Rect::new(0, 0, 100, 100);
        let small = Rect::new(340, 140, 50, 50);
        let v = face_block(&[big, small], 400, 200);
        assert_eq!(v.len(), FACE_DIM);
        assert_eq!(&v[..COUNT_BINS], &[0.0, 0.0, 1.0, 0.0, 0.0]);
        let size = &v[COUNT_BINS..COUNT_BINS + BINS];
        assert!((size[6] - 1.0).abs() < 1e-6, "{size:?}");
        let grid = &v[COUNT_BINS + BINS..];
        assert!((grid[0] - 0.8).abs() < 1e-6, "{grid:?}");
        assert!((grid[8] - 0.2).abs() < 1e-6, "{grid:?}");
        assert!((grid.iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn many_faces_share_the_last_count_bin() {
        let faces: Vec<Rect> = (0..7).map(|i| Rect::new(i * 40, 0, 30, 30)).collect();
        let v = face_block(&faces, 300, 300);
        assert_eq!(v[COUNT_BINS - 1], 1.0);
    }

    #[test]
    fn real_teddy_images_have_faces_in_some_and_not_all() {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/teddy/attachment1/ImageData"
        ));
        if !dir.is_dir() {
            eprintln!(
                "SKIPPED real_teddy_images_have_faces_in_some_and_not_all: {} absent",
                dir.display()
            );
            return;
        }
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        let detector = FaceDetector::new(&FaceParams {
            enabled: true,
            ..FaceParams::default()
        })
        .unwrap();
        let (mut described, mut with_face) = (0, 0);
        for path in paths.iter().take(100) {
            let Ok(image) = super::super::decode::decode_image(path, 512) else {
                continue;
            };
            let block = detector.describe(&image.bgr).unwrap();
            described += 1;
            if block[0] == 0.0 {
                with_face += 1;
            }
        }
        // Over all 998 images, 21.5 % have a face: a broken conversion or scale finds none or
        // finds them everywhere.
        assert!(described >= 90, "{described}");
        let share = with_face as f64 / described as f64;
        assert!((0.05..=0.5).contains(&share), "{with_face} of {described}");
    }

    #[test]
    fn settings_outside_their_range_are_named() {
        let p = FaceParams {
            scale_factor: 1.0,
            ..FaceParams::default()
        };
        let e = p.check().unwrap_err().to_string();
        assert!(
            e.contains("faces.scale_factor") && e.contains("got 1"),
            "{e}"
        );
        let p = FaceParams {
            cascade: Some("/no/such/cascade.xml".into()),
            enabled: true,
            ..FaceParams::default()
        };
        let e = FaceDetector::new(&p).unwrap_err().to_string();
        assert!(e.contains("/no/such/cascade.xml"), "{e}");
    }
}
