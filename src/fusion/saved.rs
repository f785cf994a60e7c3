//! A fitted CCA as a folder of `.npy` files, the layout the pipeline's `fit` stage leaves in
//! each partition's folder (docs/pipelines.md), so that a model saved by the library and one
//! fitted by the pipeline are read the same way, by numpy as well as by [`FittedCca::load`].
//!
//! `mean_x.npy`, `mean_y.npy` (`1 x d`), `proj_x.npy`, `proj_y.npy` (`d x k`, unweighted),
//! `correlations.npy` (`1 x k`), and per view with a kernel map `kernel_<view>/` holding
//! `mean.npy`, `basis.npy` (when a PCA came first), `landmarks.npy`, `gamma.npy`, and with
//! alignment weighting `weight.npy` and `alignment.npy`; with several blocks, each block's files
//! in `kernel_<view>/block-<i>/`; and `cca.json` (the eigenvalue power, the dimensions and the
//! format's version).

use std::path::Path;

use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use super::FusionError;
use super::cca::{CcaArrays, FittedCca};
use super::kernel_map::{FittedKernelMap, GaussianMap};
use crate::error::IoError;
use crate::model_dir::{ArrayFile, read_json, read_npy, write_folder_atomically, write_json};

/// The file of [`CcaJson`], beside the arrays.
pub const CCA_JSON: &str = "cca.json";

/// The version of the saved layout [`FittedCca::load`] reads.
const FORMAT: u32 = 1;

/// What `cca.json` holds: what the arrays do not say.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CcaJson {
    /// The version of the saved layout.
    pub format: u32,
    /// The power `p` of the weighting `σ^p` the transforms apply.
    pub eigen_power: f64,
    /// Output dimensions (the length of `correlations.npy`).
    pub dims: usize,
}

impl FittedCca {
    /// The model's arrays as the files of its saved folder, each with what it holds: what
    /// [`Self::save`] writes, and what the `fit` stage writes and records in its manifest.
    pub fn array_files(&self) -> Vec<ArrayFile> {
        let a = self.to_arrays();
        let mut files = vec![
            ArrayFile::new("mean_x.npy", as_row(&a.mean_x), "image-view mean"),
            ArrayFile::new("mean_y.npy", as_row(&a.mean_y), "text-view mean"),
            ArrayFile::new("proj_x.npy", a.proj_x, "image-view projection"),
            ArrayFile::new("proj_y.npy", a.proj_y, "text-view projection"),
            ArrayFile::new(
                "correlations.npy",
                as_row(&a.correlations),
                "canonical correlations, decreasing",
            ),
        ];
        for (view, map) in [("x", &a.kernel_x), ("y", &a.kernel_y)] {
            if let Some(map) = map {
                kernel_map_files(&format!("kernel_{view}"), map, &mut files);
            }
        }
        files
    }

    /// The contents of `cca.json`.
    pub fn cca_json(&self) -> CcaJson {
        CcaJson {
            format: FORMAT,
            eigen_power: self.eigen_power(),
            dims: self.dims(),
        }
    }

    /// Saves the model to `dir`: [`Self::array_files`] and `cca.json` ([`Self::cca_json`]).
    /// The folder is written whole or not at all; an existing one is replaced.
    pub fn save(&self, dir: &Path) -> Result<(), FusionError> {
        write_folder_atomically(dir, |staging| {
            for file in self.array_files() {
                file.write_in(staging)?;
            }
            write_json(&staging.join(CCA_JSON), &self.cca_json())?;
            Ok(())
        })
    }

    /// Loads a model written by [`Self::save`] or by the pipeline's `fit` stage. Errors name
    /// the file that is missing or does not fit the others.
    pub fn load(dir: &Path) -> Result<Self, FusionError> {
        if !dir.join(CCA_JSON).exists() && dir.join("proj_x.npy").exists() {
            return Err(FusionError::BadArrays(format!(
                "{} has the arrays of a CCA but no {CCA_JSON} (a `fit` folder of an older build): \
                 load it with FittedCca::read_arrays(dir, eigen_power), the eigen power as the \
                 pipeline file sets it",
                dir.display()
            )));
        }
        let saved: CcaJson = read_json(&dir.join(CCA_JSON))?;
        if saved.format != FORMAT {
            return Err(FusionError::BadArrays(format!(
                "{}: format {} (this build reads {FORMAT})",
                dir.join(CCA_JSON).display(),
                saved.format
            )));
        }
        let model = Self::read_arrays(dir, saved.eigen_power)?;
        if model.dims() != saved.dims {
            return Err(FusionError::BadArrays(format!(
                "{} says {} dims, correlations.npy has {}",
                dir.join(CCA_JSON).display(),
                saved.dims,
                model.dims()
            )));
        }
        Ok(model)
    }

    /// Reads the arrays of a saved folder, with the eigenvalue power given rather than read
    /// from `cca.json` (which `fit` folders of older builds lack; the pipeline reads every `fit`
    /// folder this way, with the power of its pipeline file). A view has a kernel map when its
    /// `kernel_<view>/` folder exists.
    pub fn read_arrays(dir: &Path, eigen_power: f64) -> Result<Self, FusionError> {
        let vector = |name: &str| read_row(&dir.join(name));
        let kernel = |view: &str| -> Result<Option<FittedKernelMap>, FusionError> {
            let kernel_dir = dir.join(format!("kernel_{view}"));
            kernel_dir
                .is_dir()
                .then(|| read_kernel_map(&kernel_dir))
                .transpose()
        };
        FittedCca::from_arrays(CcaArrays {
            kernel_x: kernel("x")?,
            kernel_y: kernel("y")?,
            mean_x: vector("mean_x.npy")?,
            mean_y: vector("mean_y.npy")?,
            proj_x: read_npy(&dir.join("proj_x.npy"))?,
            proj_y: read_npy(&dir.join("proj_y.npy"))?,
            correlations: vector("correlations.npy")?,
            eigen_power,
        })
        .map_err(|e| in_folder(dir, e))
    }
}

/// A [`FusionError::BadArrays`] about arrays read from `dir`, its message prefixed with the
/// folder (with several partitions or blocks, the array's name alone does not say which).
fn in_folder(dir: &Path, error: FusionError) -> FusionError {
    match error {
        FusionError::BadArrays(message) => {
            FusionError::BadArrays(format!("{}: {message}", dir.display()))
        }
        other => other,
    }
}

/// A vector saved as a `1 x d` matrix.
fn as_row(a: &Array1<f32>) -> Array2<f32> {
    a.clone().insert_axis(Axis(0))
}

/// Reads a vector saved by [`as_row`]; any other shape is an error naming the file.
fn read_row(path: &Path) -> Result<Array1<f32>, FusionError> {
    let m: Array2<f32> = read_npy(path)?;
    if m.nrows() != 1 {
        return Err(FusionError::BadArrays(format!(
            "{} is {:?}, expected one row",
            path.display(),
            m.dim()
        )));
    }
    Ok(m.row(0).to_owned())
}

/// Reads a scalar saved as a `1 x 1` matrix.
fn read_scalar(path: &Path) -> Result<f32, FusionError> {
    let row = read_row(path)?;
    match row.as_slice() {
        Some([value]) => Ok(*value),
        _ => Err(FusionError::BadArrays(format!(
            "{} has {} values, expected one",
            path.display(),
            row.len()
        ))),
    }
}

fn scalar(value: f32) -> Array2<f32> {
    Array2::from_elem((1, 1), value)
}

/// A kernel map's files under `prefix`: one block's directly, several blocks' each in
/// `prefix/block-<i>/`.
fn kernel_map_files(prefix: &str, map: &FittedKernelMap, files: &mut Vec<ArrayFile>) {
    if let [block] = map.blocks.as_slice() {
        return gaussian_map_files(prefix, block, files);
    }
    for (i, block) in map.blocks.iter().enumerate() {
        gaussian_map_files(&format!("{prefix}/block-{i}"), block, files);
    }
}

fn gaussian_map_files(prefix: &str, map: &GaussianMap, files: &mut Vec<ArrayFile>) {
    let file = |name: &str| format!("{prefix}/{name}");
    files.push(ArrayFile::new(
        file("mean.npy"),
        as_row(&map.mean),
        "kernel map: view mean",
    ));
    if let Some(basis) = &map.basis {
        files.push(ArrayFile::new(
            file("basis.npy"),
            basis.clone(),
            "kernel map: PCA basis before the map",
        ));
    }
    files.push(ArrayFile::new(
        file("landmarks.npy"),
        map.landmarks.clone(),
        "kernel map: landmarks (unit rows in the reduced space)",
    ));
    files.push(ArrayFile::new(
        file("gamma.npy"),
        scalar(map.gamma),
        "kernel map: Gaussian kernel width γ",
    ));
    if let Some(alignment) = map.alignment {
        files.push(ArrayFile::new(
            file("weight.npy"),
            scalar(map.weight),
            "kernel map: the block's weight in the sum of kernels",
        ));
        files.push(ArrayFile::new(
            file("alignment.npy"),
            scalar(alignment),
            "kernel map: centred alignment of the block's kernel with the other view's",
        ));
    }
}

/// Reads a kernel map written by [`kernel_map_files`].
fn read_kernel_map(dir: &Path) -> Result<FittedKernelMap, FusionError> {
    let block_dir = |i: usize| dir.join(format!("block-{i}"));
    let mut blocks = Vec::new();
    while block_dir(blocks.len()).is_dir() {
        blocks.push(read_gaussian_map(&block_dir(blocks.len()))?);
    }
    // Blocks are numbered from 0 without a gap: a later one left after a missing one would
    // otherwise be ignored, and the model would refuse its input's width instead.
    let folders = std::fs::read_dir(dir)
        .map_err(|e| IoError::new("listing", dir, e))?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("block-"))
        .count();
    if folders != blocks.len() {
        return Err(FusionError::BadArrays(format!(
            "{}: holds {folders} block-<i> folders, but block-{} is missing",
            dir.display(),
            blocks.len()
        )));
    }
    if blocks.is_empty() {
        blocks.push(read_gaussian_map(dir)?);
    }
    FittedKernelMap::from_blocks(blocks).map_err(|e| in_folder(dir, e))
}

fn read_gaussian_map(dir: &Path) -> Result<GaussianMap, FusionError> {
    // `basis.npy` only when a PCA came first; `weight.npy` and `alignment.npy` only for blocks
    // weighted by their alignment (otherwise weight 1).
    let present = |name: &str| Some(dir.join(name)).filter(|path| path.exists());
    GaussianMap::from_parts(
        read_row(&dir.join("mean.npy"))?,
        present("basis.npy").map(|p| read_npy(&p)).transpose()?,
        read_npy(&dir.join("landmarks.npy"))?,
        read_scalar(&dir.join("gamma.npy"))?,
        present("weight.npy")
            .map(|p| read_scalar(&p))
            .transpose()?
            .unwrap_or(1.0),
        present("alignment.npy")
            .map(|p| read_scalar(&p))
            .transpose()?,
    )
    .map_err(|e| in_folder(dir, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fusion::{CcaParams, KernelMapParams};
    use crate::matrix::FeatureMatrix;
    use rand::{Rng, SeedableRng};

    /// Two views sharing one signal, 120 rows.
    fn views() -> (FeatureMatrix, FeatureMatrix) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let signal: Vec<f32> = (0..120).map(|_| rng.gen_range(-1.0..1.0)).collect();
        let x = Array2::from_shape_fn((120, 12), |(i, j)| {
            signal[i] * (j == 0) as u8 as f32 + rng.gen_range(-1.0..1.0)
        });
        let y = Array2::from_shape_fn((120, 6), |(i, j)| {
            signal[i] * (j == 2) as u8 as f32 + rng.gen_range(-1.0..1.0)
        });
        (FeatureMatrix::Dense(x), FeatureMatrix::Dense(y))
    }

    fn kernel_params(block_widths: Vec<usize>) -> KernelMapParams {
        KernelMapParams {
            landmarks: 40,
            block_widths,
            ..KernelMapParams::default()
        }
    }

    #[test]
    fn a_saved_model_loads_and_embeds_the_same_linear_and_kernel() {
        let (x, y) = views();
        let linear = CcaParams::new(3).eigen_power(1.5);
        let mut kernel = CcaParams::new(3);
        // Two blocks on the image view, one on the text view: both kernel layouts on disk.
        kernel.kernel_x = KernelMapParams {
            block_weighting: crate::fusion::BlockWeighting::Alignment,
            ..kernel_params(vec![8, 4])
        };
        kernel.kernel_y = kernel_params(vec![]);
        for params in [linear, kernel] {
            let fitted = params.check().unwrap().fit(&x, &y).unwrap();
            let root = tempfile::tempdir().unwrap();
            let dir = root.path().join("cca");
            fitted.save(&dir).unwrap();
            let loaded = FittedCca::load(&dir).unwrap();
            assert_eq!(loaded, fitted);
            assert_eq!(loaded.embed_x(&x).unwrap(), fitted.embed_x(&x).unwrap());
            assert_eq!(loaded.embed_y(&y).unwrap(), fitted.embed_y(&y).unwrap());
            // Every file listed is on disk, and numpy's shapes are the arrays'.
            for file in fitted.array_files() {
                let on_disk: Array2<f32> = read_npy(&dir.join(&file.file)).unwrap();
                assert_eq!(on_disk, file.array, "{}", file.file);
            }
            // A kernel block gone from the middle is named, not skipped with those after it.
            if dir.join("kernel_x/block-1").is_dir() {
                std::fs::remove_dir_all(dir.join("kernel_x/block-0")).unwrap();
                let err = FittedCca::load(&dir).unwrap_err().to_string();
                assert!(
                    err.contains("kernel_x: holds 1 block-<i> folders, but block-0 is missing"),
                    "{err}"
                );
            }
        }
    }

    #[test]
    fn a_missing_or_inconsistent_file_is_named() {
        let (x, y) = views();
        let fitted = CcaParams::new(3).check().unwrap().fit(&x, &y).unwrap();
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("cca");
        fitted.save(&dir).unwrap();

        std::fs::remove_file(dir.join("proj_y.npy")).unwrap();
        let err = FittedCca::load(&dir).unwrap_err().to_string();
        assert!(err.contains("proj_y.npy"), "{err}");

        fitted.save(&dir).unwrap();
        std::fs::write(
            dir.join(CCA_JSON),
            r#"{"format": 1, "eigen_power": 1.0, "dims": 9}"#,
        )
        .unwrap();
        let err = FittedCca::load(&dir).unwrap_err().to_string();
        assert!(err.contains("cca.json") && err.contains('9'), "{err}");

        fitted.save(&dir).unwrap();
        let empty = Array2::<f32>::zeros((0, 12));
        crate::model_dir::write_npy(&dir.join("mean_x.npy"), &empty).unwrap();
        let err = FittedCca::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("mean_x.npy") && err.contains("one row"),
            "{err}"
        );

        fitted.save(&dir).unwrap();
        let wrong = Array2::<f32>::zeros((5, 3));
        crate::model_dir::write_npy(&dir.join("proj_x.npy"), &wrong).unwrap();
        let err = FittedCca::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains(&format!("{}: proj_x rows", dir.display())),
            "the folder is named: {err}"
        );

        // A folder without cca.json, as the `fit` stage of older builds left them.
        fitted.save(&dir).unwrap();
        std::fs::remove_file(dir.join(CCA_JSON)).unwrap();
        let err = FittedCca::load(&dir).unwrap_err().to_string();
        assert!(
            err.contains("cca.json") && err.contains("read_arrays"),
            "{err}"
        );
        let read = FittedCca::read_arrays(&dir, fitted.eigen_power()).unwrap();
        assert_eq!(read, fitted);
    }
}
