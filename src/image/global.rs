//! Global image descriptors: HSV colour histograms on a spatial grid and GIST-like Gabor energy.
//!
//! Colour: joint H×S×V histograms (hard binning of OpenCV's 8-bit HSV, H in [0, 180)) per region
//! of the same spatial pyramid as the local encodings (Lazebnik et al. 2006), each summing to 1.
//! GIST (Oliva & Torralba 2001): the grey image resized to `size`², multiplied in the Fourier
//! domain by Gabor transfer functions (`scales` × `orientations`, Gaussians in log-polar
//! coordinates as in Oliva & Torralba's `createGabor`), and the energy (magnitude of the complex
//! response) averaged over a `grid`×`grid` layout.

use opencv::core::{Mat, Size};
use opencv::prelude::*;
use opencv::{core, imgproc};
use serde::{Deserialize, Serialize};

use super::ImageError;

/// HSV histogram settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HsvParams {
    /// Whether the block is computed (and written).
    pub enabled: bool,
    /// Bins of hue, saturation and value.
    pub bins: [usize; 3],
    /// Multiplies the block's rows in the combined matrix.
    pub weight: f32,
}

impl Default for HsvParams {
    fn default() -> Self {
        Self {
            enabled: true,
            bins: [8, 4, 4],
            weight: 1.0,
        }
    }
}

impl HsvParams {
    /// Length of one region's histogram: the product of the three bin counts.
    pub fn dim_per_region(&self) -> usize {
        self.bins.iter().product()
    }
}

/// HSV histograms of the regions of a spatial pyramid with `levels` (each sums to 1).
pub fn hsv_histograms(bgr: &Mat, bins: [usize; 3], levels: &[u32]) -> Result<Vec<f32>, ImageError> {
    let mut hsv = Mat::default();
    imgproc::cvt_color_def(bgr, &mut hsv, imgproc::COLOR_BGR2HSV)
        .map_err(|e| ImageError::opencv("converting to HSV", e))?;
    let (w, h) = (hsv.cols() as usize, hsv.rows() as usize);
    let px = hsv
        .data_bytes()
        .map_err(|e| ImageError::opencv("reading HSV pixels", e))?;
    let per = bins[0] * bins[1] * bins[2];
    let mut out = Vec::new();
    // bin index of every pixel, computed once, through one lookup table per channel (each
    // channel's share of the joint index), not three divisions per pixel
    let lut = |c: usize, range: usize, stride: usize| -> [u32; 256] {
        std::array::from_fn(|v| ((v * bins[c] / range).min(bins[c] - 1) * stride) as u32)
    };
    let (lh, ls, lv) = (
        lut(0, 180, bins[1] * bins[2]),
        lut(1, 256, bins[2]),
        lut(2, 256, 1),
    );
    let idx: Vec<u32> = px
        .chunks_exact(3)
        .map(|p| lh[p[0] as usize] + ls[p[1] as usize] + lv[p[2] as usize])
        .collect();
    let mut counts: Vec<u32> = Vec::new();
    for &g in levels {
        let g = g.max(1) as usize;
        counts.clear();
        counts.resize(g * g * per, 0);
        let cell_x: Vec<usize> = (0..w).map(|x| (x * g / w).min(g - 1) * per).collect();
        for y in 0..h {
            let cy = (y * g / h).min(g - 1);
            let base = cy * g * per;
            for (&cx, &i) in cell_x.iter().zip(&idx[y * w..(y + 1) * w]) {
                counts[base + cx + i as usize] += 1;
            }
        }
        let mut hist: Vec<f32> = counts.iter().map(|&c| c as f32).collect();
        for cell in hist.chunks_exact_mut(per) {
            let s: f32 = cell.iter().sum();
            if s > 0.0 {
                cell.iter_mut().for_each(|v| *v /= s);
            }
        }
        out.extend(hist);
    }
    Ok(out)
}

/// GIST-like settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GistParams {
    /// Whether the block is computed (and written).
    pub enabled: bool,
    /// Side of the square image the filters run on (a power of two is fastest).
    pub size: usize,
    /// Filter scales: centre frequency 0.3 cycles per pixel, halved at each further scale.
    pub scales: usize,
    /// Filter orientations per scale, evenly spaced over π.
    pub orientations: usize,
    /// Cells per side of the grid the energies are averaged over.
    pub grid: usize,
    /// Multiplies the block's rows in the combined matrix.
    pub weight: f32,
}

impl Default for GistParams {
    fn default() -> Self {
        Self {
            enabled: true,
            size: 64,
            scales: 4,
            orientations: 8,
            grid: 4,
            weight: 1.0,
        }
    }
}

impl GistParams {
    /// Descriptor length: scales × orientations × grid².
    pub fn dim(&self) -> usize {
        self.scales * self.orientations * self.grid * self.grid
    }

    /// Checks the ranges of `size`, `scales`, `orientations` and `grid`.
    pub fn check(&self) -> Result<(), ImageError> {
        if !(16..=512).contains(&self.size) {
            return Err(ImageError::param(
                "gist.size",
                format!("must be in [16, 512], got {}", self.size),
            ));
        }
        if self.scales == 0 || self.orientations == 0 || self.grid == 0 || self.grid > self.size {
            return Err(ImageError::param(
                "gist",
                format!(
                    "scales, orientations and grid must be >= 1 (grid <= size), got {}, {}, {}",
                    self.scales, self.orientations, self.grid
                ),
            ));
        }
        Ok(())
    }

    /// The transfer functions, `scales*orientations` real planes of `size²` in DFT layout.
    pub fn filters(&self) -> Vec<Vec<f32>> {
        let n = self.size;
        let mut out = Vec::new();
        for s in 0..self.scales {
            // centre frequencies from 0.3 cycles/pixel down by octaves
            let f0 = 0.3 / 2f32.powi(s as i32);
            for o in 0..self.orientations {
                let theta = std::f32::consts::PI * o as f32 / self.orientations as f32;
                let mut g = vec![0f32; n * n];
                for v in 0..n {
                    let fy = if v <= n / 2 {
                        v as f32
                    } else {
                        v as f32 - n as f32
                    } / n as f32;
                    for u in 0..n {
                        let fx = if u <= n / 2 {
                            u as f32
                        } else {
                            u as f32 - n as f32
                        } / n as f32;
                        let r = (fx * fx + fy * fy).sqrt();
                        if r == 0.0 {
                            continue;
                        }
                        let phi = fy.atan2(fx);
                        let mut dphi = phi - theta;
                        while dphi > std::f32::consts::PI {
                            dphi -= std::f32::consts::TAU;
                        }
                        while dphi < -std::f32::consts::PI {
                            dphi += std::f32::consts::TAU;
                        }
                        // one-sided in orientation: an analytic (complex) response
                        let lr = (r / f0).ln();
                        let sigma_r = 0.55f32;
                        let sigma_t = std::f32::consts::PI / self.orientations as f32 * 0.6;
                        g[v * n + u] = (-(lr * lr) / (2.0 * sigma_r * sigma_r)
                            - dphi * dphi / (2.0 * sigma_t * sigma_t))
                            .exp();
                    }
                }
                out.push(g);
            }
        }
        out
    }
}

/// GIST-like descriptor of a grey `CV_32F` image with precomputed `filters`.
pub fn gist(grey: &Mat, p: &GistParams, filters: &[Vec<f32>]) -> Result<Vec<f32>, ImageError> {
    let n = p.size;
    let mut small = Mat::default();
    imgproc::resize(
        grey,
        &mut small,
        Size::new(n as i32, n as i32),
        0.0,
        0.0,
        imgproc::INTER_AREA,
    )
    .map_err(|e| ImageError::opencv("resizing for GIST", e))?;
    // zero mean, unit contrast so the energy is illumination-invariant
    {
        let px = small
            .data_typed_mut::<f32>()
            .map_err(|e| ImageError::opencv("reading grey pixels", e))?;
        let mean = px.iter().sum::<f32>() / px.len() as f32;
        let sd = (px.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / px.len() as f32)
            .sqrt()
            .max(1e-3);
        px.iter_mut().for_each(|v| *v = (*v - mean) / sd);
    }
    let mut spec = Mat::default();
    core::dft(&small, &mut spec, core::DFT_COMPLEX_OUTPUT, 0)
        .map_err(|e| ImageError::opencv("Fourier transform", e))?;
    let sp = spec
        .data_typed::<opencv::core::Vec2f>()
        .map_err(|e| ImageError::opencv("reading the spectrum", e))?
        .to_vec();
    let g = p.grid;
    let mut out = Vec::with_capacity(p.dim());
    let mut prod = Mat::new_rows_cols_with_default(
        n as i32,
        n as i32,
        core::CV_32FC2,
        opencv::core::Scalar::all(0.0),
    )
    .map_err(|e| ImageError::opencv("allocating", e))?;
    let mut resp = Mat::default();
    let mut magnitude = vec![0f32; n * n];
    for f in filters {
        {
            let dst = prod
                .data_typed_mut::<opencv::core::Vec2f>()
                .map_err(|e| ImageError::opencv("allocating", e))?;
            for ((d, s), &w) in dst.iter_mut().zip(&sp).zip(f) {
                d[0] = s[0] * w;
                d[1] = s[1] * w;
            }
        }
        core::dft(&prod, &mut resp, core::DFT_INVERSE | core::DFT_SCALE, 0)
            .map_err(|e| ImageError::opencv("inverse Fourier transform", e))?;
        let r = resp
            .data_typed::<opencv::core::Vec2f>()
            .map_err(|e| ImageError::opencv("reading the response", e))?;
        for (m, c) in magnitude.iter_mut().zip(r) {
            *m = (c[0] * c[0] + c[1] * c[1]).sqrt();
        }
        out.extend(cell_means(&magnitude, n, g));
    }
    Ok(out)
}

/// The mean of an `n x n` map (row-major) over each cell of a `g x g` grid, row by row; pixel
/// `x` falls in cell `x * g / n`, so when `g` does not divide `n` the cells differ in size by
/// one pixel a side, and each is divided by its own pixel count.
fn cell_means(map: &[f32], n: usize, g: usize) -> Vec<f32> {
    // grid column of each pixel column, computed once rather than divided per pixel
    let cell_of: Vec<usize> = (0..n).map(|x| x * g / n).collect();
    let mut width = vec![0usize; g];
    for &c in &cell_of {
        width[c] += 1;
    }
    let mut cells = vec![0f32; g * g];
    for (y, row) in map.chunks_exact(n).enumerate() {
        let cell_row = &mut cells[cell_of[y] * g..(cell_of[y] + 1) * g];
        for (&cx, v) in cell_of.iter().zip(row) {
            cell_row[cx] += v;
        }
    }
    for (i, v) in cells.iter_mut().enumerate() {
        *v /= (width[i / g] * width[i % g]) as f32;
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;
    use opencv::core::Scalar;

    #[test]
    fn hsv_histograms_sum_to_one_per_region_and_find_the_colour() {
        // left half pure red, right half pure blue, 40x20
        let mut m =
            Mat::new_rows_cols_with_default(20, 40, core::CV_8UC3, Scalar::all(0.0)).unwrap();
        {
            let px = m.data_bytes_mut().unwrap();
            for y in 0..20 {
                for x in 0..40 {
                    let p = &mut px[(y * 40 + x) * 3..(y * 40 + x) * 3 + 3];
                    if x < 20 {
                        p.copy_from_slice(&[0, 0, 255]);
                    } else {
                        p.copy_from_slice(&[255, 0, 0]);
                    }
                }
            }
        }
        let bins = [8, 4, 4];
        let h = hsv_histograms(&m, bins, &[1, 2]).unwrap();
        assert_eq!(h.len(), 5 * 128);
        for r in h.chunks(128) {
            assert!((r.iter().sum::<f32>() - 1.0).abs() < 1e-5);
        }
        // red: H=0, S=255, V=255 -> bin (0,3,3) = 15; blue: H=120 -> hb=5 -> (5*4+3)*4+3 = 95
        assert!((h[15] - 0.5).abs() < 1e-6 && (h[95] - 0.5).abs() < 1e-6);
        // top-left cell (region 1) all red, top-right (region 2) all blue
        assert_eq!(h[128 + 15], 1.0);
        assert_eq!(h[256 + 95], 1.0);
    }

    #[test]
    fn cell_means_divide_each_cell_by_its_own_size() {
        // 10 pixels over 3 cells: 4, 3 and 3 a side. A constant map has that mean everywhere
        // (it divided every cell by 100 / 9 = 11, rounded down, before).
        assert_eq!(cell_means(&[2.0; 100], 10, 3), vec![2.0; 9]);
        let ramp: Vec<f32> = (0..16).map(|i| (i % 4) as f32).collect();
        assert_eq!(cell_means(&ramp, 4, 2), vec![0.5, 2.5, 0.5, 2.5]);
    }

    #[test]
    fn gist_responds_to_orientation() {
        // vertical stripes (intensity varies along x) excite orientation 0 (frequency along x)
        let n = 64;
        let mut m =
            Mat::new_rows_cols_with_default(n, n, core::CV_32FC1, Scalar::all(0.0)).unwrap();
        {
            let px = m.data_typed_mut::<f32>().unwrap();
            for y in 0..n as usize {
                for x in 0..n as usize {
                    px[y * n as usize + x] = (x as f32 * 0.3 * std::f32::consts::TAU).sin();
                }
            }
        }
        let p = GistParams::default();
        let f = p.filters();
        let g = gist(&m, &p, &f).unwrap();
        assert_eq!(g.len(), p.dim());
        let energy = |o: usize| -> f32 { g[o * 16..(o + 1) * 16].iter().sum() };
        // scale 0: orientations 0..8; orientation 0 beats orientation 4 (perpendicular)
        assert!(
            energy(0) > 10.0 * energy(4),
            "{} vs {}",
            energy(0),
            energy(4)
        );
    }
}
