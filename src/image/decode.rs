//! Decoding images by content, not by file name, into a BGR `opencv::core::Mat`.
//!
//! Web image collections (the Teddy Cup data) hold GIFs and RGBA PNGs named `.jpg`, greyscale
//! and CMYK JPEGs, and the odd truncated download. The format is sniffed from the magic bytes;
//! JPEG/PNG/BMP/WebP/TIFF go through OpenCV's `imdecode` (large JPEGs are decoded at 1/2, 1/4 or
//! 1/8 size by libjpeg's DCT scaling, as `IMREAD_REDUCED_COLOR_*` does), GIF through the `image`
//! crate (OpenCV 4.6 has no GIF reader; the first frame is taken). Transparent pixels (PNG, GIF)
//! are composited on white. A JPEG must end with the EOI marker (FF D9, trailing padding
//! allowed): OpenCV silently decodes a truncated JPEG with a grey bottom. The result is resized
//! (area interpolation) so that its longer side is at most `max_side`; images are never enlarged.
//! A PNG's chunks are walked first: a file cut short is reported as truncated and garbled chunks
//! as undecodable, by name, and embedded colour profiles (iCCP chunks) are dropped: OpenCV
//! applies none, and libpng would print a warning for a common miswritten one straight to stderr.

use std::borrow::Cow;
use std::path::Path;

use opencv::core::{Mat, Scalar, Size, Vector};
use opencv::prelude::*;
use opencv::{imgcodecs, imgproc};
use serde::{Deserialize, Serialize};

use super::ImageError;

/// Container formats recognised by their magic bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ImageFormat {
    /// JPEG: starts with FF D8 FF.
    Jpeg,
    /// PNG: starts with the 8-byte PNG signature.
    Png,
    /// GIF: starts with `GIF87a` or `GIF89a`; only the first frame is decoded.
    Gif,
    /// BMP: starts with `BM` and is at least 26 bytes long.
    Bmp,
    /// WebP: a RIFF file whose bytes 8 to 11 are `WEBP`.
    Webp,
    /// TIFF: starts with `II*\0` (little-endian) or `MM\0*` (big-endian).
    Tiff,
}

/// A decoded image: 8-bit BGR, longer side at most the `max_side` it was decoded with (0: no
/// limit).
#[derive(Debug)]
pub struct DecodedImage {
    /// The pixels, 8-bit 3-channel BGR, transparent pixels composited on white.
    pub bgr: Mat,
    /// Width in pixels as stored in the file, before any reduction or resizing.
    pub original_width: u32,
    /// Height in pixels as stored in the file, before any reduction or resizing.
    pub original_height: u32,
    /// Length of the encoded file in bytes.
    pub encoded_bytes: usize,
    /// The container format sniffed from the first bytes.
    pub format: ImageFormat,
}

/// The format of an encoded image, from its first bytes; `None` when unknown.
pub fn sniff_format(bytes: &[u8]) -> Option<ImageFormat> {
    if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
        Some(ImageFormat::Jpeg)
    } else if bytes.starts_with(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A]) {
        Some(ImageFormat::Png)
    } else if bytes.starts_with(b"GIF87a") || bytes.starts_with(b"GIF89a") {
        Some(ImageFormat::Gif)
    } else if bytes.starts_with(b"BM") && bytes.len() >= 26 {
        Some(ImageFormat::Bmp)
    } else if bytes.len() >= 12 && &bytes[0..4] == b"RIFF" && &bytes[8..12] == b"WEBP" {
        Some(ImageFormat::Webp)
    } else if bytes.starts_with(b"II*\0") || bytes.starts_with(b"MM\0*") {
        Some(ImageFormat::Tiff)
    } else {
        None
    }
}

/// Reads and decodes the image at `path`; see the module documentation.
pub fn decode_image(path: &Path, max_side: u32) -> Result<DecodedImage, ImageError> {
    let bytes = std::fs::read(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::NotFound {
            ImageError::Missing {
                path: path.to_path_buf(),
            }
        } else {
            ImageError::Read {
                path: path.to_path_buf(),
                cause: e,
            }
        }
    })?;
    decode_bytes(&bytes, path, max_side)
}

/// Decodes an encoded image held in memory; `path` is only used in error messages.
pub fn decode_bytes(bytes: &[u8], path: &Path, max_side: u32) -> Result<DecodedImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty {
            path: path.to_path_buf(),
        });
    }
    let format = sniff_format(bytes).ok_or_else(|| ImageError::UnknownFormat {
        path: path.to_path_buf(),
        magic: bytes
            .iter()
            .take(8)
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(" "),
    })?;
    let undecodable = |reason: String| ImageError::Undecodable {
        path: path.to_path_buf(),
        format,
        reason,
    };
    let (mat, ow, oh) = match format {
        ImageFormat::Jpeg => {
            check_jpeg_complete(bytes).map_err(|reason| ImageError::Truncated {
                path: path.to_path_buf(),
                format,
                reason,
            })?;
            let (w, h) = jpeg_dimensions(bytes).ok_or_else(|| {
                undecodable("no SOF marker with the image size before the scan data".into())
            })?;
            let longer = w.max(h);
            let mut flag = imgcodecs::IMREAD_COLOR;
            if max_side > 0 {
                for (f, code) in [
                    (8, imgcodecs::IMREAD_REDUCED_COLOR_8),
                    (4, imgcodecs::IMREAD_REDUCED_COLOR_4),
                    (2, imgcodecs::IMREAD_REDUCED_COLOR_2),
                ] {
                    if longer / f >= max_side {
                        flag = code;
                        break;
                    }
                }
            }
            let buf = Vector::<u8>::from_slice(bytes);
            let m = imgcodecs::imdecode(&buf, flag).map_err(|e| undecodable(e.to_string()))?;
            (m, w, h)
        }
        ImageFormat::Gif => {
            let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Gif)
                .map_err(|e| undecodable(e.to_string()))?;
            let rgba = img.to_rgba8();
            let (w, h) = rgba.dimensions();
            let m = rgba_to_bgr_on_white(rgba.as_raw(), w, h)?;
            (m, w, h)
        }
        _ => {
            let bytes = match format {
                ImageFormat::Png => {
                    png_without_colour_profiles(bytes).map_err(|problem| match problem {
                        PngStructure::Truncated(reason) => ImageError::Truncated {
                            path: path.to_path_buf(),
                            format,
                            reason,
                        },
                        PngStructure::Garbled(reason) => undecodable(reason),
                    })?
                }
                _ => Cow::Borrowed(bytes),
            };
            let buf = Vector::<u8>::from_slice(&bytes);
            let m = imgcodecs::imdecode(&buf, imgcodecs::IMREAD_UNCHANGED)
                .map_err(|e| undecodable(e.to_string()))?;
            if m.empty() {
                return Err(undecodable("OpenCV returned an empty image".into()));
            }
            let m = to_bgr8(m).map_err(|e| undecodable(e.to_string()))?;
            let (w, h) = (m.cols() as u32, m.rows() as u32);
            (m, w, h)
        }
    };
    if mat.empty() || mat.rows() == 0 || mat.cols() == 0 {
        return Err(undecodable("OpenCV returned an empty image".into()));
    }
    let bgr = resize_to_max_side(mat, max_side).map_err(|e| undecodable(e.to_string()))?;
    Ok(DecodedImage {
        bgr,
        original_width: ow,
        original_height: oh,
        encoded_bytes: bytes.len(),
        format,
    })
}

/// Why a PNG's chunks do not add up, found before libpng sees them (it would print its own
/// message to stderr as well as fail).
enum PngStructure {
    /// A chunk runs past the end of the file, or the file ends before IEND.
    Truncated(String),
    /// A chunk type that is not four ASCII letters: not a PNG past this point.
    Garbled(String),
}

/// The PNG `bytes` without their iCCP chunks (embedded ICC colour profiles), after walking
/// their chunks from the signature to IEND by their length fields. OpenCV applies no colour
/// management, so the pixels are the same without the profiles; but libpng checks a profile as
/// it reads it and, for one that is common on the web ("iCCP: known incorrect sRGB profile"),
/// prints a warning to stderr on every decode, past the logging and `--quiet`. Chunks that do
/// not add up are reported here, named, rather than by libpng on stderr.
fn png_without_colour_profiles(bytes: &[u8]) -> Result<Cow<'_, [u8]>, PngStructure> {
    const SIGNATURE: usize = 8;
    // Length and type before each chunk's data, CRC after it.
    const HEADER: usize = 8;
    const CRC: usize = 4;
    let mut profiles = Vec::new();
    let mut start = SIGNATURE;
    loop {
        if start + HEADER > bytes.len() {
            return Err(PngStructure::Truncated(format!(
                "the file ends at byte {} without an IEND chunk",
                bytes.len()
            )));
        }
        let kind = &bytes[start + 4..start + 8];
        if !kind.iter().all(u8::is_ascii_alphabetic) {
            return Err(PngStructure::Garbled(format!(
                "the chunk at byte {start} has no valid type ({})",
                kind.iter()
                    .map(|b| format!("{b:02X}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            )));
        }
        let kind_name = String::from_utf8_lossy(kind);
        let data_len = u32::from_be_bytes([
            bytes[start],
            bytes[start + 1],
            bytes[start + 2],
            bytes[start + 3],
        ]) as usize;
        let end = (start + HEADER + CRC).saturating_add(data_len);
        if end > bytes.len() {
            return Err(PngStructure::Truncated(format!(
                "the {kind_name} chunk at byte {start} needs {} bytes, the file has {}",
                end - start,
                bytes.len() - start
            )));
        }
        if kind == b"iCCP" {
            profiles.push(start..end);
        }
        if kind == b"IEND" {
            break;
        }
        start = end;
    }
    if profiles.is_empty() {
        return Ok(Cow::Borrowed(bytes));
    }
    let mut kept = Vec::with_capacity(bytes.len());
    let mut from = 0;
    for chunk in profiles {
        kept.extend_from_slice(&bytes[from..chunk.start]);
        from = chunk.end;
    }
    kept.extend_from_slice(&bytes[from..]);
    Ok(Cow::Owned(kept))
}

/// Checks that the JPEG's entropy-coded data is followed by an EOI marker (FF D9).
///
/// Markers are walked from SOI up to the first SOS (so an EXIF thumbnail, which has its own EOI,
/// is skipped as part of its APP1 segment); after it, FF D9 can only be the EOI, since in scan
/// data an FF byte is followed by 00 or a restart marker. Bytes after the EOI are tolerated.
fn check_jpeg_complete(bytes: &[u8]) -> Result<(), String> {
    let sos = first_sos(bytes).ok_or_else(|| "no start-of-scan marker (FF DA)".to_string())?;
    let tail = &bytes[sos..];
    if tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
        Ok(())
    } else {
        Err(format!(
            "no end-of-image marker (FF D9) after the scan data ({} bytes)",
            bytes.len()
        ))
    }
}

/// The markers of a JPEG after SOI, as libjpeg reads them: `(offset of the FF, marker, segment
/// length)`, the length 0 for a marker that stands alone (RSTn, TEM). Bytes where a marker
/// should start are skipped up to the next FF, as libjpeg does ("extraneous bytes before
/// marker"), so a file that libjpeg decodes is not called truncated over junk between segments.
fn jpeg_markers(bytes: &[u8]) -> impl Iterator<Item = (usize, u8, usize)> + '_ {
    let mut i = 2;
    std::iter::from_fn(move || {
        loop {
            while i < bytes.len() && bytes[i] != 0xFF {
                i += 1;
            }
            while i + 1 < bytes.len() && bytes[i + 1] == 0xFF {
                i += 1; // fill bytes
            }
            if i + 1 >= bytes.len() {
                return None;
            }
            let (at, marker) = (i, bytes[i + 1]);
            if marker == 0x00 {
                i += 2; // a stuffed FF 00 is data, not a marker
                continue;
            }
            if marker == 0x01 || (0xD0..=0xD7).contains(&marker) {
                i += 2;
                return Some((at, marker, 0));
            }
            if i + 4 > bytes.len() {
                return None;
            }
            let len = u16::from_be_bytes([bytes[i + 2], bytes[i + 3]]) as usize;
            i += 2 + len;
            return Some((at, marker, len));
        }
    })
}

/// Offset of the first SOS segment's data.
fn first_sos(bytes: &[u8]) -> Option<usize> {
    jpeg_markers(bytes)
        .find(|&(_, marker, _)| marker == 0xDA)
        .map(|(at, _, len)| (at + 2 + len).min(bytes.len()))
}

/// Width and height from the first SOF marker of a JPEG (before the first scan).
fn jpeg_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    for (at, marker, _) in jpeg_markers(bytes) {
        if marker == 0xDA {
            return None;
        }
        let is_sof = (0xC0..=0xCF).contains(&marker) && !matches!(marker, 0xC4 | 0xC8 | 0xCC);
        if is_sof {
            let field = bytes.get(at + 5..at + 9)?;
            let h = u16::from_be_bytes([field[0], field[1]]) as u32;
            let w = u16::from_be_bytes([field[2], field[3]]) as u32;
            return (w > 0 && h > 0).then_some((w, h));
        }
    }
    None
}

/// Composites RGBA pixels on white and returns an 8-bit BGR Mat.
fn rgba_to_bgr_on_white(rgba: &[u8], w: u32, h: u32) -> Result<Mat, ImageError> {
    let mut m = Mat::new_rows_cols_with_default(
        h as i32,
        w as i32,
        opencv::core::CV_8UC3,
        Scalar::all(0.0),
    )
    .map_err(|e| ImageError::opencv("allocating an image", e))?;
    let out = m
        .data_bytes_mut()
        .map_err(|e| ImageError::opencv("allocating an image", e))?;
    for (o, p) in out.chunks_exact_mut(3).zip(rgba.chunks_exact(4)) {
        let a = p[3] as u32;
        let blend = |c: u8| ((c as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
        o[0] = blend(p[2]);
        o[1] = blend(p[1]);
        o[2] = blend(p[0]);
    }
    Ok(m)
}

/// Any `IMREAD_UNCHANGED` result (1/3/4 channels, 8 or 16 bit, float) → 8-bit BGR; alpha is
/// composited on white.
fn to_bgr8(m: Mat) -> opencv::Result<Mat> {
    let m8 = match m.depth() {
        opencv::core::CV_8U => m,
        opencv::core::CV_16U => {
            let mut o = Mat::default();
            m.convert_to(&mut o, opencv::core::CV_8U, 1.0 / 257.0, 0.0)?;
            o
        }
        opencv::core::CV_32F | opencv::core::CV_64F => {
            let mut o = Mat::default();
            m.convert_to(&mut o, opencv::core::CV_8U, 255.0, 0.0)?;
            o
        }
        _ => {
            let mut o = Mat::default();
            m.convert_to(&mut o, opencv::core::CV_8U, 1.0, 0.0)?;
            o
        }
    };
    match m8.channels() {
        3 => Ok(m8),
        1 => {
            let mut o = Mat::default();
            imgproc::cvt_color_def(&m8, &mut o, imgproc::COLOR_GRAY2BGR)?;
            Ok(o)
        }
        4 => {
            let m8 = if m8.is_continuous() {
                m8
            } else {
                m8.try_clone()?
            };
            let (w, h) = (m8.cols() as usize, m8.rows() as usize);
            let src = m8.data_bytes()?;
            let mut o = Mat::new_rows_cols_with_default(
                h as i32,
                w as i32,
                opencv::core::CV_8UC3,
                Scalar::all(0.0),
            )?;
            let dst = o.data_bytes_mut()?;
            for (d, p) in dst.chunks_exact_mut(3).zip(src.chunks_exact(4)) {
                let a = p[3] as u32;
                for c in 0..3 {
                    d[c] = ((p[c] as u32 * a + 255 * (255 - a) + 127) / 255) as u8;
                }
            }
            Ok(o)
        }
        c => Err(opencv::Error::new(
            opencv::core::StsBadArg,
            format!("unsupported channel count {c}"),
        )),
    }
}

/// Shrinks (area interpolation) so that the longer side is at most `max_side` (0: no limit).
fn resize_to_max_side(m: Mat, max_side: u32) -> opencv::Result<Mat> {
    let (w, h) = (m.cols(), m.rows());
    let longer = w.max(h) as u32;
    if max_side == 0 || longer <= max_side {
        return Ok(m);
    }
    let s = max_side as f64 / longer as f64;
    let nw = ((w as f64 * s).round() as i32).max(1);
    let nh = ((h as f64 * s).round() as i32).max(1);
    let mut o = Mat::default();
    imgproc::resize(&m, &mut o, Size::new(nw, nh), 0.0, 0.0, imgproc::INTER_AREA)?;
    Ok(o)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn write_rgb_jpeg(path: &Path, w: u32, h: u32, grey: bool) {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x * 7 % 256) as u8, (y * 5 % 256) as u8, 128])
        });
        if grey {
            image::DynamicImage::ImageRgb8(img)
                .to_luma8()
                .save(path)
                .unwrap();
        } else {
            img.save_with_format(path, image::ImageFormat::Jpeg)
                .unwrap();
        }
    }

    #[test]
    fn sniff_known_and_unknown() {
        assert_eq!(
            sniff_format(&[0xFF, 0xD8, 0xFF, 0xE0]),
            Some(ImageFormat::Jpeg)
        );
        assert_eq!(sniff_format(b"GIF89a...."), Some(ImageFormat::Gif));
        assert_eq!(
            sniff_format(&[0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A, 0]),
            Some(ImageFormat::Png)
        );
        assert_eq!(
            sniff_format(b"RIFF\0\0\0\0WEBPVP8 "),
            Some(ImageFormat::Webp)
        );
        assert_eq!(sniff_format(b"hello world"), None);
    }

    #[test]
    fn gif_named_jpg_decodes_first_frame() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("anim.jpg");
        {
            let f = std::fs::File::create(&p).unwrap();
            let mut enc = image::codecs::gif::GifEncoder::new(f);
            let red = image::RgbaImage::from_pixel(20, 10, image::Rgba([255, 0, 0, 255]));
            let blue = image::RgbaImage::from_pixel(20, 10, image::Rgba([0, 0, 255, 255]));
            enc.encode_frames(vec![image::Frame::new(red), image::Frame::new(blue)])
                .unwrap();
        }
        let d = decode_image(&p, 256).unwrap();
        assert_eq!(d.format, ImageFormat::Gif);
        assert_eq!((d.original_width, d.original_height), (20, 10));
        assert_eq!((d.bgr.cols(), d.bgr.rows(), d.bgr.channels()), (20, 10, 3));
        let px = d.bgr.data_bytes().unwrap();
        // first frame is red: BGR (0, 0, 255) up to palette quantisation
        assert!(px[2] > 200 && px[0] < 50, "{:?}", &px[..3]);
    }

    #[test]
    fn rgba_png_named_jpg_is_composited_on_white() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("logo.jpg");
        let img = image::RgbaImage::from_fn(8, 8, |x, _| {
            if x < 4 {
                image::Rgba([0, 0, 0, 0]) // transparent black -> white
            } else {
                image::Rgba([0, 255, 0, 255]) // opaque green
            }
        });
        img.save_with_format(&p, image::ImageFormat::Png).unwrap();
        let d = decode_image(&p, 256).unwrap();
        assert_eq!(d.format, ImageFormat::Png);
        let px = d.bgr.data_bytes().unwrap();
        assert_eq!(&px[0..3], &[255, 255, 255]);
        assert_eq!(&px[7 * 3..8 * 3], &[0, 255, 0]);
    }

    /// CRC-32 of PNG chunks (ISO 3309, as zlib's), bit by bit.
    fn png_crc(data: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &byte in data {
            crc ^= u32::from(byte);
            for _ in 0..8 {
                crc = if crc & 1 == 1 {
                    0xEDB8_8320 ^ (crc >> 1)
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn png_colour_profiles_are_dropped_and_the_pixels_kept() {
        let img =
            image::RgbImage::from_fn(6, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 7]));
        let mut plain = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut plain),
                image::ImageFormat::Png,
            )
            .unwrap();
        // An iCCP chunk after IHDR (signature 8 bytes, IHDR 25): profile name, compression 0,
        // then a profile that is not valid zlib data, so libpng would have to judge it.
        let mut chunk_data = b"ICC Profile\0\0".to_vec();
        chunk_data.extend_from_slice(&[0x78, 0x9C, 1, 2, 3, 4]);
        let mut chunk = (chunk_data.len() as u32).to_be_bytes().to_vec();
        chunk.extend_from_slice(b"iCCP");
        chunk.extend_from_slice(&chunk_data);
        let crc = png_crc(&chunk[4..]);
        chunk.extend_from_slice(&crc.to_be_bytes());
        let mut with_profile = plain[..33].to_vec();
        with_profile.extend_from_slice(&chunk);
        with_profile.extend_from_slice(&plain[33..]);

        let stripped = |b: &[u8]| match png_without_colour_profiles(b) {
            Ok(kept) => kept.into_owned(),
            Err(PngStructure::Truncated(r) | PngStructure::Garbled(r)) => panic!("{r}"),
        };
        assert_eq!(stripped(&with_profile), plain);
        assert!(matches!(
            png_without_colour_profiles(&plain),
            Ok(Cow::Borrowed(_))
        ));
        // Bytes after IEND are left as they are.
        let mut padded = with_profile.clone();
        padded.extend_from_slice(&[0; 5]);
        assert_eq!(stripped(&padded)[..plain.len()], plain[..]);

        let path = Path::new("with_profile.png");
        let a = decode_bytes(&with_profile, path, 256).unwrap();
        let b = decode_bytes(&plain, path, 256).unwrap();
        assert_eq!(a.bgr.data_bytes().unwrap(), b.bgr.data_bytes().unwrap());
        assert_eq!((a.original_width, a.original_height), (6, 4));
        assert_eq!(a.encoded_bytes, with_profile.len());
    }

    #[test]
    fn grey_jpeg_becomes_bgr_and_large_jpeg_is_reduced() {
        let dir = tempfile::tempdir().unwrap();
        let g = dir.path().join("grey.jpg");
        write_rgb_jpeg(&g, 40, 30, true);
        let d = decode_image(&g, 256).unwrap();
        assert_eq!(d.bgr.channels(), 3);
        assert_eq!((d.bgr.cols(), d.bgr.rows()), (40, 30));

        let big = dir.path().join("big.jpg");
        write_rgb_jpeg(&big, 1200, 900, false);
        let d = decode_image(&big, 256).unwrap();
        assert_eq!((d.original_width, d.original_height), (1200, 900));
        assert_eq!((d.bgr.cols(), d.bgr.rows()), (256, 192));
    }

    #[test]
    fn junk_between_jpeg_segments_is_skipped_as_libjpeg_does() {
        let dir = tempfile::tempdir().unwrap();
        let clean = dir.path().join("clean.jpg");
        write_rgb_jpeg(&clean, 48, 32, false);
        let bytes = std::fs::read(&clean).unwrap();
        // Three junk bytes (and a stuffed FF 00) after the first segment, before the next marker.
        let (_, _, len) = jpeg_markers(&bytes).next().unwrap();
        let cut = 2 + 2 + len;
        let mut junk = bytes[..cut].to_vec();
        junk.extend_from_slice(&[0x12, 0xFF, 0x00, 0x34]);
        junk.extend_from_slice(&bytes[cut..]);
        let dirty = dir.path().join("dirty.jpg");
        std::fs::write(&dirty, &junk).unwrap();
        let (a, b) = (
            decode_image(&clean, 0).unwrap(),
            decode_image(&dirty, 0).unwrap(),
        );
        assert_eq!((b.original_width, b.original_height), (48, 32));
        assert_eq!(a.bgr.data_bytes().unwrap(), b.bgr.data_bytes().unwrap());
    }

    #[test]
    fn truncated_empty_missing_and_garbage_are_distinct_errors() {
        let dir = tempfile::tempdir().unwrap();
        let full = dir.path().join("full.jpg");
        write_rgb_jpeg(&full, 64, 64, false);
        let bytes = std::fs::read(&full).unwrap();

        let cut = dir.path().join("cut.jpg");
        std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
        assert!(matches!(
            decode_image(&cut, 256),
            Err(ImageError::Truncated { .. })
        ));

        // trailing padding after EOI is fine
        let padded = dir.path().join("padded.jpg");
        let mut b = bytes.clone();
        b.extend_from_slice(&[0u8; 16]);
        std::fs::write(&padded, &b).unwrap();
        assert!(decode_image(&padded, 256).is_ok());

        let empty = dir.path().join("empty.jpg");
        std::fs::write(&empty, b"").unwrap();
        assert!(matches!(
            decode_image(&empty, 256),
            Err(ImageError::Empty { .. })
        ));

        let missing = dir.path().join("nope.jpg");
        let e = decode_image(&missing, 256).unwrap_err();
        assert!(matches!(e, ImageError::Missing { .. }));
        assert!(e.to_string().contains("nope.jpg"));

        let text = dir.path().join("text.jpg");
        std::fs::write(&text, b"this is not an image").unwrap();
        assert!(matches!(
            decode_image(&text, 256),
            Err(ImageError::UnknownFormat { .. })
        ));

        // a PNG header followed by garbage: named by the chunk walk, before libpng sees it
        let bad_png = dir.path().join("bad.png");
        let mut b = vec![0x89, b'P', b'N', b'G', 0x0D, 0x0A, 0x1A, 0x0A];
        b.extend_from_slice(&[7u8; 40]);
        std::fs::write(&bad_png, &b).unwrap();
        let e = decode_image(&bad_png, 256).unwrap_err();
        assert!(matches!(e, ImageError::Undecodable { .. }), "{e}");
        assert!(
            e.to_string()
                .contains("byte 8 has no valid type (07 07 07 07)"),
            "{e}"
        );

        // a PNG cut short, within its image data or before IEND
        let png = dir.path().join("full.png");
        image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([x as u8 * 8, y as u8 * 8, 0]))
            .save_with_format(&png, image::ImageFormat::Png)
            .unwrap();
        let bytes = std::fs::read(&png).unwrap();
        assert!(decode_image(&png, 256).is_ok());
        for keep in [bytes.len() / 2, bytes.len() - 12] {
            let cut = dir.path().join("cut.png");
            std::fs::write(&cut, &bytes[..keep]).unwrap();
            let e = decode_image(&cut, 256).unwrap_err();
            assert!(matches!(e, ImageError::Truncated { .. }), "{e}");
        }
    }

    /// A baseline 8x8 JPEG with four components and an Adobe APP14 marker (transform 0), i.e.
    /// CMYK, written byte by byte: one quantisation table of ones, one-symbol Huffman tables
    /// (DC category 0, AC end-of-block), so every block is flat at the mid level (128).
    fn cmyk_jpeg_bytes() -> Vec<u8> {
        let mut b = vec![0xFF, 0xD8];
        b.extend([0xFF, 0xEE, 0x00, 0x0E]);
        b.extend(b"Adobe");
        b.extend([0x00, 0x64, 0x00, 0x00, 0x00, 0x00, 0x00]);
        b.extend([0xFF, 0xDB, 0x00, 0x43, 0x00]);
        b.extend([1u8; 64]);
        b.extend([0xFF, 0xC0, 0x00, 0x14, 0x08, 0x00, 0x08, 0x00, 0x08, 0x04]);
        for id in 1..=4u8 {
            b.extend([id, 0x11, 0x00]);
        }
        for class in [0x00u8, 0x10] {
            b.extend([0xFF, 0xC4, 0x00, 0x14, class, 0x01]);
            b.extend([0u8; 15]);
            b.push(0x00);
        }
        b.extend([0xFF, 0xDA, 0x00, 0x0E, 0x04]);
        for id in 1..=4u8 {
            b.extend([id, 0x00]);
        }
        b.extend([0x00, 0x3F, 0x00]);
        // four blocks, each "0" (DC diff 0) + "0" (EOB): 8 zero bits
        b.push(0x00);
        b.extend([0xFF, 0xD9]);
        b
    }

    #[test]
    fn cmyk_jpeg_decodes_to_bgr() {
        let bytes = cmyk_jpeg_bytes();
        assert_eq!(jpeg_dimensions(&bytes), Some((8, 8)));
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("cmyk.jpg");
        std::fs::write(&p, &bytes).unwrap();
        let d = decode_image(&p, 256).unwrap();
        assert_eq!(d.format, ImageFormat::Jpeg);
        assert_eq!(d.bgr.channels(), 3);
        assert_eq!(d.bgr.typ(), opencv::core::CV_8UC3);
        assert_eq!((d.bgr.cols(), d.bgr.rows()), (8, 8));
        // C = M = Y = K = 128 everywhere: one grey level in every pixel and channel
        let px = d.bgr.data_bytes().unwrap();
        assert!(px.iter().all(|&v| v == px[0]), "{:?}", &px[..12]);
        assert!((30..=230).contains(&px[0]), "{}", px[0]);
    }

    #[test]
    fn real_teddy_odd_files_decode() {
        let dir = PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/data/teddy/attachment1/ImageData"
        ));
        if !dir.is_dir() {
            eprintln!(
                "SKIPPED real_teddy_odd_files_decode: {} absent",
                dir.display()
            );
            return;
        }
        for (name, fmt) in [
            ("Image14001001-8201.jpg", ImageFormat::Gif),
            ("Image14001007-3611.jpg", ImageFormat::Gif),
            ("Image14001002-2729.jpg", ImageFormat::Png),
        ] {
            let d = decode_image(&dir.join(name), 256).unwrap();
            assert_eq!(d.format, fmt, "{name}");
            assert_eq!(d.bgr.channels(), 3);
            assert!(d.bgr.cols().max(d.bgr.rows()) <= 256);
        }
        // The PNG's colour profile is dropped, and the pixels are those OpenCV decodes with it.
        let png_path = dir.join("Image14001002-2729.jpg");
        let png = std::fs::read(&png_path).unwrap();
        assert!(matches!(
            png_without_colour_profiles(&png),
            Ok(Cow::Owned(_))
        ));
        let with_profile =
            imgcodecs::imdecode(&Vector::<u8>::from_slice(&png), imgcodecs::IMREAD_UNCHANGED)
                .unwrap();
        let with_profile = to_bgr8(with_profile).unwrap();
        let d = decode_bytes(&png, &png_path, 0).unwrap();
        assert_eq!(
            d.bgr.data_bytes().unwrap(),
            with_profile.data_bytes().unwrap()
        );
        let missing = dir.join("Image14001001-2540.jpg");
        assert!(matches!(
            decode_image(&missing, 256),
            Err(ImageError::Missing { .. })
        ));
    }
}
