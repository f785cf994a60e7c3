//! The image input of the neural dual encoder: every image decoded once (by content, as the
//! feature stage does), squashed to `size x size` RGB bytes and kept in memory; batches are cut
//! from it as `N x crop x crop x 3` (channels last) tensors with random crops and horizontal
//! flips while training, and the centre crop otherwise.

use std::path::Path;

use candle_core::{Device, Tensor};
use opencv::core::{Mat, Size};
use opencv::prelude::*;
use rand::Rng;

use crate::image::ImageError;
use crate::image::decode::decode_image;

/// Decoded images, `size * size * 3` RGB bytes each, row-major.
#[derive(Debug, Clone)]
pub struct PixelSet {
    /// Side of every stored image, in pixels.
    pub size: usize,
    /// One entry per image: `size * size * 3` RGB bytes, row-major.
    pub pixels: Vec<Vec<u8>>,
}

/// Decodes `path` and squashes it to `size x size` RGB.
pub fn load_rgb(path: &Path, size: usize) -> Result<Vec<u8>, ImageError> {
    let decoded = decode_image(path, (size * 4) as u32)?;
    let format = decoded.format;
    let wrap = |e: opencv::Error| ImageError::Undecodable {
        path: path.to_path_buf(),
        format,
        reason: e.to_string(),
    };
    let mut small = Mat::default();
    opencv::imgproc::resize(
        &decoded.bgr,
        &mut small,
        Size::new(size as i32, size as i32),
        0.0,
        0.0,
        opencv::imgproc::INTER_AREA,
    )
    .map_err(wrap)?;
    let mut rgb = Mat::default();
    opencv::imgproc::cvt_color_def(&small, &mut rgb, opencv::imgproc::COLOR_BGR2RGB)
        .map_err(wrap)?;
    let bytes = rgb.data_bytes().map_err(wrap)?;
    Ok(bytes.to_vec())
}

impl PixelSet {
    /// A batch of the images `rows` as an `N x crop x crop x 3` tensor scaled to about [-1, 1].
    /// With `rng`, each image gets a random crop and a random horizontal flip (training);
    /// without, the centre crop.
    pub fn batch<R: Rng>(
        &self,
        rows: &[usize],
        crop: usize,
        mut rng: Option<&mut R>,
        device: &Device,
    ) -> candle_core::Result<Tensor> {
        let s = self.size;
        let margin = s - crop;
        let plane = crop * crop * 3;
        let mut data = vec![0f32; rows.len() * plane];
        for (b, &row) in rows.iter().enumerate() {
            let (dx, dy, flip) = match rng.as_deref_mut() {
                Some(r) => (
                    r.gen_range(0..=margin),
                    r.gen_range(0..=margin),
                    r.gen_bool(0.5),
                ),
                None => (margin / 2, margin / 2, false),
            };
            let img = &self.pixels[row];
            let out = &mut data[b * plane..(b + 1) * plane];
            for y in 0..crop {
                for x in 0..crop {
                    let sx = if flip { crop - 1 - x } else { x } + dx;
                    let src = ((y + dy) * s + sx) * 3;
                    let dst = (y * crop + x) * 3;
                    for c in 0..3 {
                        out[dst + c] = img[src + c] as f32 / 127.5 - 1.0;
                    }
                }
            }
        }
        Tensor::from_vec(data, (rows.len(), crop, crop, 3), device)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn centre_crop_batch_has_the_expected_shape_and_range() {
        let set = PixelSet {
            size: 4,
            pixels: vec![(0..48).map(|v| (v * 5) as u8).collect(); 2],
        };
        let t = set
            .batch::<rand_chacha::ChaCha8Rng>(&[0, 1], 2, None, &Device::Cpu)
            .unwrap();
        assert_eq!(t.dims(), &[2, 2, 2, 3]);
        let v: Vec<f32> = t.flatten_all().unwrap().to_vec1().unwrap();
        assert!(v.iter().all(|x| (-1.0..=1.0).contains(x)));
        // Centre crop starts at (1, 1): red channel of pixel (1, 1) is byte (1 * 4 + 1) * 3.
        assert!((v[0] - (15.0 * 5.0 / 127.5 - 1.0)).abs() < 1e-6);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
        let t = set.batch(&[1], 2, Some(&mut rng), &Device::Cpu).unwrap();
        assert_eq!(t.dims(), &[1, 2, 2, 3]);
    }
}
