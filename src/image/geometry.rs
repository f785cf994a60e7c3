//! File-level image geometry: the shape, size, compression and container format of the image
//! file as it was published, before any resizing.
//!
//! Web images carry their genre in these properties as much as in their pixels: a scanned exam
//! sheet or a long comic strip is tall, a banner is wide, product shots are square, a screenshot
//! of text compresses to more bytes per pixel than a photograph of the same size, and GIFs are
//! animations or stickers. The pixel descriptors cannot see any of this, because every image is
//! shrunk to `max_side` first (and HOG patches are taken on a square grid). The descriptor here
//! soft-bins four quantities, each into a small histogram that sums to 1 (linear interpolation
//! between the two nearest bin centres, clamped at the ends), so that the block behaves like the
//! other histogram blocks under centring, PCA and the Gaussian kernel maps:
//!
//! - aspect ratio, `log2(width / height)`, centres −2, −1.5, …, 2 (9 bins);
//! - size, `log2(longer side)` in pixels, centres 7, 7.5, …, 11 (128 to 2,048 pixels, 9 bins);
//! - compressed size, `log2(file bytes / pixels)`, centres −5, −4.25, …, 1 (9 bins);
//! - container format, one-hot: JPEG, PNG, GIF, other (4 values).

use serde::{Deserialize, Serialize};

use super::decode::{DecodedImage, ImageFormat};

/// Values in the geometry block.
pub const GEOMETRY_DIM: usize = 3 * BINS + 4;

/// Bins of each soft histogram.
pub(super) const BINS: usize = 9;

/// Geometry block settings (off by default; left out of the saved parameters when off, so that
/// work folders from before this option stay fresh).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GeometryParams {
    /// Whether the block is computed (and written).
    pub enabled: bool,
    /// Multiplies the block's rows in the combined matrix.
    pub weight: f32,
}

impl Default for GeometryParams {
    fn default() -> Self {
        Self {
            enabled: false,
            weight: 1.0,
        }
    }
}

impl GeometryParams {
    /// Off: no geometry block, and the section is left out of the saved parameters.
    pub fn is_disabled(&self) -> bool {
        !self.enabled
    }
}

/// The geometry descriptor of a decoded image (see the module documentation), from its original
/// width and height, its container format and the length of its file in bytes.
pub fn geometry(image: &DecodedImage) -> Vec<f32> {
    let (w, h) = (
        f64::from(image.original_width.max(1)),
        f64::from(image.original_height.max(1)),
    );
    let bytes = (image.encoded_bytes.max(1)) as f64;
    let mut out = Vec::with_capacity(GEOMETRY_DIM);
    soft_bins(&mut out, (w / h).log2(), -2.0, 0.5);
    soft_bins(&mut out, w.max(h).log2(), 7.0, 0.5);
    soft_bins(&mut out, (bytes / (w * h)).log2(), -5.0, 0.75);
    let format = match image.format {
        ImageFormat::Jpeg => 0,
        ImageFormat::Png => 1,
        ImageFormat::Gif => 2,
        _ => 3,
    };
    out.extend((0..4).map(|i| if i == format { 1.0 } else { 0.0 }));
    out
}

/// Appends a [`BINS`]-bin histogram of the single value `v` with bin centres `first + i *
/// step`: its mass split between the two nearest centres in proportion to closeness.
pub(super) fn soft_bins(out: &mut Vec<f32>, v: f64, first: f64, step: f64) {
    let at = ((v - first) / step).clamp(0.0, (BINS - 1) as f64);
    let lower = (at.floor() as usize).min(BINS - 2);
    let upper_share = (at - lower as f64) as f32;
    let start = out.len();
    out.resize(start + BINS, 0.0);
    out[start + lower] = 1.0 - upper_share;
    out[start + lower + 1] = upper_share;
}

#[cfg(test)]
mod tests {
    use opencv::core::Mat;

    use super::*;

    fn image(width: u32, height: u32, bytes: usize, format: ImageFormat) -> DecodedImage {
        DecodedImage {
            bgr: Mat::default(),
            original_width: width,
            original_height: height,
            encoded_bytes: bytes,
            format,
        }
    }

    #[test]
    fn histograms_sum_to_one_and_land_in_the_right_bins() {
        // 1024 x 512: aspect log2 = 1 (centre 6 of -2..2), longer side log2 = 10 (centre 6 of
        // 7..11), bytes per pixel 2^-3 (centre (−3 + 5) / 0.75 = 2.67: bins 2 and 3).
        let v = geometry(&image(1024, 512, 1024 * 512 / 8, ImageFormat::Png));
        assert_eq!(v.len(), GEOMETRY_DIM);
        for group in v.chunks(BINS).take(3) {
            assert!((group.iter().sum::<f32>() - 1.0).abs() < 1e-6, "{group:?}");
        }
        assert!((v[6] - 1.0).abs() < 1e-6, "aspect {:?}", &v[..BINS]);
        assert!(
            (v[BINS + 6] - 1.0).abs() < 1e-6,
            "size {:?}",
            &v[BINS..2 * BINS]
        );
        let bpp = &v[2 * BINS..3 * BINS];
        assert!(
            (bpp[2] - 1.0 / 3.0).abs() < 1e-5 && (bpp[3] - 2.0 / 3.0).abs() < 1e-5,
            "{bpp:?}"
        );
        assert_eq!(&v[3 * BINS..], &[0.0, 1.0, 0.0, 0.0]);
    }

    #[test]
    fn extremes_are_clamped_to_the_end_bins() {
        // 10 x 4000: far taller than the first aspect centre, longer than the last size centre,
        // and a zero-byte length counted as 1 byte.
        let v = geometry(&image(10, 4000, 0, ImageFormat::Webp));
        assert_eq!(v[0], 1.0);
        assert_eq!(v[2 * BINS - 1], 1.0);
        assert_eq!(v[2 * BINS], 1.0);
        assert_eq!(&v[3 * BINS..], &[0.0, 0.0, 0.0, 1.0]);
        let tiny = geometry(&image(16, 16, 100, ImageFormat::Jpeg));
        assert_eq!(
            tiny[BINS], 1.0,
            "a 16-pixel side sits below the first size centre"
        );
    }
}
