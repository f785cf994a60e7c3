//! Dense local colour statistics (LCS): the mean and standard deviation of R, G and B in each
//! cell of a patch, on the same dense grid as the SIFT and HOG patches.
//!
//! LCS is the colour descriptor that Perronnin, Sánchez & Mensink (ECCV 2010, "Improving the
//! Fisher kernel for large-scale image classification") encode with Fisher vectors beside SIFT,
//! after Clinchant, Csurka, Perronnin & Renders (ImageCLEF 2007): a patch is split into 4 x 4
//! cells and each cell gives 6 values, 96 per patch. The global HSV histograms say which colours
//! an image holds; LCS says how colours sit next to each other in small regions (a blue patch
//! over a white one, a textured green), which a bag of such patches keeps and a histogram loses.
//! Sums come from integral images, so a patch costs the same at every scale.

use opencv::core::Mat;
use opencv::prelude::*;

use super::ImageError;
use super::dsift::{DenseGridParams, LocalDescriptors};

/// Values per cell: the mean and the standard deviation of R, G and B.
pub const STATS_PER_CELL: usize = 6;

/// Prefix sums of one image's channels and squared channels: entry `(y, x)` of channel `c` is
/// the sum over the pixels above and left of `(y, x)` (exclusive), `(h + 1) x (w + 1)` each.
struct IntegralImages {
    w1: usize,
    sum: [Vec<f64>; 3],
    sq: [Vec<f64>; 3],
}

impl IntegralImages {
    /// From an 8-bit BGR image, channels as R, G, B in [0, 1].
    fn new(bgr: &[u8], w: usize, h: usize) -> Self {
        let w1 = w + 1;
        let mut sum: [Vec<f64>; 3] = std::array::from_fn(|_| vec![0.0; w1 * (h + 1)]);
        let mut sq: [Vec<f64>; 3] = std::array::from_fn(|_| vec![0.0; w1 * (h + 1)]);
        for y in 0..h {
            let mut run = [0.0f64; 3];
            let mut run_sq = [0.0f64; 3];
            for x in 0..w {
                for c in 0..3 {
                    // BGR in memory: R is channel 2.
                    let v = f64::from(bgr[(y * w + x) * 3 + (2 - c)]) / 255.0;
                    run[c] += v;
                    run_sq[c] += v * v;
                    let at = (y + 1) * w1 + x + 1;
                    sum[c][at] = sum[c][at - w1] + run[c];
                    sq[c][at] = sq[c][at - w1] + run_sq[c];
                }
            }
        }
        Self { w1, sum, sq }
    }

    /// The sum of `table` over the rectangle `[x0, x1) x [y0, y1)`.
    fn rect(&self, table: &[f64], x0: usize, y0: usize, x1: usize, y1: usize) -> f64 {
        let w1 = self.w1;
        table[y1 * w1 + x1] - table[y0 * w1 + x1] - table[y1 * w1 + x0] + table[y0 * w1 + x0]
    }
}

/// Patch origins along one axis: patches of `cells * cell` pixels every `step` pixels, inside
/// the image.
fn patch_origins(
    len: usize,
    cell: usize,
    cells: usize,
    step: usize,
) -> impl Iterator<Item = usize> {
    let span = cell * cells;
    (0..)
        .map(move |i| i * step)
        .take_while(move |&o| o + span <= len)
}

/// Dense LCS descriptors of an 8-bit BGR image: one row per patch and scale, for every cell
/// size in `p.bin_sizes` (a patch is `p.spatial_bins` x `p.spatial_bins` cells) on a grid of
/// step `p.step`. Each row holds, cell by cell in row-major order, the means of R, G, B then
/// their standard deviations, all in [0, 1]. The gradient settings of `p` (orientations,
/// smoothing, contrast threshold, RootSIFT) do not apply: flat patches are kept, since the colour
/// of a flat sky is what this descriptor is for.
pub fn colour_statistics(bgr: &Mat, p: &DenseGridParams) -> Result<LocalDescriptors, ImageError> {
    let w = bgr.cols().max(0) as usize;
    let h = bgr.rows().max(0) as usize;
    let nb = p.spatial_bins;
    let dim = nb * nb * STATS_PER_CELL;
    if bgr.typ() != opencv::core::CV_8UC3 {
        return Err(ImageError::Fit {
            what: "colour statistics".into(),
            reason: format!("expected an 8-bit, 3-channel image, got type {}", bgr.typ()),
        });
    }
    let pixels = if bgr.is_continuous() {
        bgr.data_bytes()
            .map_err(|e| ImageError::opencv("reading colour pixels", e))?
            .to_vec()
    } else {
        bgr.try_clone()
            .and_then(|m| m.data_bytes().map(<[u8]>::to_vec))
            .map_err(|e| ImageError::opencv("reading colour pixels", e))?
    };
    let integral = IntegralImages::new(&pixels, w, h);
    let mut data = Vec::new();
    let mut xy = Vec::new();
    for &cell in &p.bin_sizes {
        let area = (cell * cell) as f64;
        for y0 in patch_origins(h, cell, nb, p.step) {
            for x0 in patch_origins(w, cell, nb, p.step) {
                for cy in 0..nb {
                    for cx in 0..nb {
                        let (xa, ya) = (x0 + cx * cell, y0 + cy * cell);
                        let (xb, yb) = (xa + cell, ya + cell);
                        let mut stats = [0.0f32; STATS_PER_CELL];
                        for c in 0..3 {
                            let mean = integral.rect(&integral.sum[c], xa, ya, xb, yb) / area;
                            let mean_sq = integral.rect(&integral.sq[c], xa, ya, xb, yb) / area;
                            stats[c] = mean as f32;
                            stats[3 + c] = (mean_sq - mean * mean).max(0.0).sqrt() as f32;
                        }
                        data.extend_from_slice(&stats);
                    }
                }
                let half = (nb * cell) as f32 / 2.0;
                xy.push([x0 as f32 + half, y0 as f32 + half]);
            }
        }
    }
    LocalDescriptors::from_rows("colour statistics", data, dim, xy, w, h)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::dsift::tests::synthetic_bgr;

    fn grid(step: usize, cells: Vec<usize>, nb: usize) -> DenseGridParams {
        DenseGridParams {
            step,
            bin_sizes: cells,
            spatial_bins: nb,
            ..DenseGridParams::colour()
        }
    }

    #[test]
    fn statistics_match_a_direct_computation() {
        let img = synthetic_bgr(5, 61, 47);
        let p = grid(5, vec![3, 6], 4);
        let d = colour_statistics(&img, &p).unwrap();
        // Patches of 12 px: origins 0, 5, ..., 45 across (10) and 0, ..., 35 down (8); 24 px:
        // 0, ..., 35 (8) and 0, ..., 20 (5).
        assert_eq!(d.desc.nrows(), 10 * 8 + 8 * 5);
        assert_eq!(d.desc.ncols(), 4 * 4 * STATS_PER_CELL);
        let bytes = img.data_bytes().unwrap();
        // Patch 13 of the first scale: origin (15, 5); its cell (row 2, column 1).
        let (x0, y0, cell) = (15 + 3, 5 + 2 * 3, 3);
        assert_eq!(d.xy[13], [15.0 + 6.0, 5.0 + 6.0]);
        let row = d.desc.row(13);
        let stats = &row.as_slice().unwrap()[(2 * 4 + 1) * 6..(2 * 4 + 2) * 6];
        for c in 0..3 {
            let values: Vec<f64> = (y0..y0 + cell)
                .flat_map(|y| (x0..x0 + cell).map(move |x| (x, y)))
                .map(|(x, y)| f64::from(bytes[(y * 61 + x) * 3 + 2 - c]) / 255.0)
                .collect();
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
            assert!((f64::from(stats[c]) - mean).abs() < 1e-5, "mean {c}");
            assert!(
                (f64::from(stats[3 + c]) - var.sqrt()).abs() < 1e-4,
                "std {c}"
            );
        }
    }

    #[test]
    fn a_flat_colour_gives_its_value_and_no_spread() {
        let img = Mat::new_rows_cols_with_default(
            32,
            40,
            opencv::core::CV_8UC3,
            opencv::core::Scalar::new(255.0, 0.0, 51.0, 0.0),
        )
        .unwrap();
        let d = colour_statistics(&img, &grid(8, vec![4], 4)).unwrap();
        assert_eq!(d.desc.nrows(), 4 * 3);
        for row in d.desc.rows() {
            for cell in row.as_slice().unwrap().chunks(6) {
                // BGR (255, 0, 51) is R 0.2, G 0, B 1.
                let expected = [0.2, 0.0, 1.0, 0.0, 0.0, 0.0];
                for (v, e) in cell.iter().zip(expected) {
                    assert!((v - e).abs() < 1e-5, "{cell:?}");
                }
            }
        }
        // Too small for one patch: no rows, the right width.
        let tiny = colour_statistics(&img, &grid(8, vec![16], 4)).unwrap();
        assert_eq!(tiny.desc.dim(), (0, 96));
    }

    #[test]
    fn grey_images_are_refused() {
        let grey = Mat::new_rows_cols_with_default(
            16,
            16,
            opencv::core::CV_8UC1,
            opencv::core::Scalar::all(0.0),
        )
        .unwrap();
        let err = colour_statistics(&grey, &grid(4, vec![2], 4)).unwrap_err();
        assert!(err.to_string().contains("3-channel"), "{err}");
    }
}
