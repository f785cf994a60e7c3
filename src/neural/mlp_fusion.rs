//! Deep fusion over the classical features: two MLP towers, one over the image feature matrix
//! and one over the text feature matrix, trained with symmetric InfoNCE — the same inputs as
//! CCA (each view first reduced by PCA fitted on the training rows, as CCA's pre-reduction
//! does), with a learned non-linear map in place of the linear canonical projections.
//!
//! `MlpFusionParams` → [`MlpFusionParams::check`] → `fit` → [`FittedMlpFusion`], which embeds
//! feature rows and saves to / loads from a folder (`model.safetensors`, the PCA of each view
//! as `.npy`, and `mlp_fusion.json`).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use indicatif::ProgressBar;
use ndarray::{Array1, Array2, Axis};
use serde::{Deserialize, Serialize};

use super::NeuralError;
use super::contrastive::{self, TrainLog, TrainParams};
use super::towers::{MlpTower, l2_normalize};
use crate::fusion::{FittedPca, PcaParams};
use crate::matrix::FeatureMatrix;
use crate::pipeline::artifacts::{read_dense, write_dense};

/// Hyper-parameters of the MLP fusion (unchecked). A pipeline file's `[mlp_fusion]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MlpFusionParams {
    /// PCA dimensions of each view before the towers (CCA's `pca_dims`).
    pub pca_dims: usize,
    /// Hidden widths of each tower.
    pub hidden: Vec<usize>,
    /// Dimensions of the shared space.
    pub embed_dim: usize,
    /// Dropout on the hidden activations while training.
    pub dropout: f32,
    /// Optimisation parameters, their keys in the same table (`[mlp_fusion]`); by default 60
    /// epochs, batches of 256, learning rate 1e-3, weight decay 1e-2.
    #[serde(flatten)]
    pub train: TrainParams,
}

impl Default for MlpFusionParams {
    fn default() -> Self {
        Self {
            pca_dims: 512,
            hidden: vec![1024],
            embed_dim: 256,
            dropout: 0.3,
            train: TrainParams {
                epochs: 60,
                batch_size: 256,
                learning_rate: 1e-3,
                weight_decay: 1e-2,
                ..TrainParams::default()
            },
        }
    }
}

impl MlpFusionParams {
    /// Checks every value, the [`TrainParams`] included; errors name the value.
    pub fn check(self) -> Result<Self, NeuralError> {
        let bad = |name, value: String, expected| {
            Err(NeuralError::InvalidParam {
                name,
                value,
                expected,
            })
        };
        if !(2..=8192).contains(&self.pca_dims) {
            return bad("pca_dims", self.pca_dims.to_string(), "in [2, 8192]");
        }
        if self.hidden.iter().any(|&h| h == 0 || h > 8192) {
            return bad("hidden", format!("{:?}", self.hidden), "1 to 8192 each");
        }
        if !(2..=2048).contains(&self.embed_dim) {
            return bad("embed_dim", self.embed_dim.to_string(), "in [2, 2048]");
        }
        if !(0.0..0.95).contains(&self.dropout) {
            return bad("dropout", self.dropout.to_string(), "in [0, 0.95)");
        }
        self.train.check()?;
        Ok(self)
    }

    /// Fits the PCA of each view and trains both towers on `pairs` of (row of `images`, row of
    /// `texts`).
    pub fn fit(
        &self,
        images: &FeatureMatrix,
        texts: &FeatureMatrix,
        pairs: &[(usize, usize)],
        bar: &ProgressBar,
    ) -> Result<(FittedMlpFusion, TrainLog), NeuralError> {
        let params = self.clone().check()?;
        if pairs.len() < 2 {
            return Err(NeuralError::TooFewPairs {
                what: "MLP fusion",
                counted: "training pairs",
                got: pairs.len(),
                need: 2,
            });
        }
        let (image_rows, pair_image) = crate::pipeline::stages::fusion::distinct_images(pairs);
        let text_rows: Vec<usize> = pairs.iter().map(|&(_, t)| t).collect();
        let image_view = ViewInput::fit(images, &image_rows, params.pca_dims, params.train.seed)?;
        let text_view = ViewInput::fit(texts, &text_rows, params.pca_dims, params.train.seed)?;
        let x = image_view.transform(&select(images, &image_rows))?;
        let y = text_view.transform(&select(texts, &text_rows))?;
        let model = FittedMlpFusion::build(params, image_view, text_view)?;
        contrastive::seeded_init(
            &model.varmap,
            model.params.train.seed,
            model.params.train.temperature,
        )?;
        let mut captions_of = vec![Vec::new(); image_rows.len()];
        for (pair, &image) in pair_image.iter().enumerate() {
            captions_of[image].push(pair);
        }
        let dropout = model.params.dropout;
        let log = contrastive::train(
            &model.varmap,
            &model.params.train,
            &captions_of,
            bar,
            |batch_images, batch_pairs, rng| {
                let xb = rows_tensor(&x, batch_images, &model.device)?;
                let yb = rows_tensor(&y, batch_pairs, &model.device)?;
                let zi =
                    l2_normalize(&model.image_tower.forward(&xb, Some((dropout, &mut *rng)))?)?;
                let zt = l2_normalize(&model.text_tower.forward(&yb, Some((dropout, &mut *rng)))?)?;
                contrastive::info_nce(&zi, &zt, &model.logit_scale)
            },
        )?;
        Ok((model, log))
    }
}

fn select(m: &FeatureMatrix, rows: &[usize]) -> FeatureMatrix {
    match m {
        FeatureMatrix::Dense(a) => FeatureMatrix::Dense(a.select(Axis(0), rows)),
        FeatureMatrix::Sparse(s) => FeatureMatrix::Sparse(s.select_rows(rows)),
    }
}

fn rows_tensor(m: &Array2<f32>, rows: &[usize], device: &Device) -> candle_core::Result<Tensor> {
    let data: Vec<f32> = rows.iter().flat_map(|&r| m.row(r).to_vec()).collect();
    Tensor::from_vec(data, (rows.len(), m.ncols()), device)
}

/// One view's input map: PCA fitted on the training rows, then one global scale so that the
/// mean squared value is 1.
struct ViewInput {
    pca: FittedPca,
    scale: f32,
}

impl ViewInput {
    fn fit(m: &FeatureMatrix, rows: &[usize], dims: usize, seed: u64) -> Result<Self, NeuralError> {
        let train = select(m, rows);
        let k = dims
            .min(train.n_cols())
            .min(train.n_rows().saturating_sub(1))
            .max(1);
        let pca = PcaParams::new(k)
            .seed(seed)
            .check()
            .and_then(|p| p.fit(&train))
            .map_err(NeuralError::Pca)?;
        let scores = pca.transform(&train).map_err(NeuralError::Pca)?;
        let mean_sq = scores.iter().map(|v| v * v).sum::<f32>()
            / scores.ncols() as f32
            / scores.nrows().max(1) as f32;
        Ok(Self {
            pca,
            scale: 1.0 / mean_sq.sqrt().max(1e-12),
        })
    }

    fn transform(&self, m: &FeatureMatrix) -> Result<Array2<f32>, NeuralError> {
        if m.n_cols() != self.pca.mean.len() {
            return Err(NeuralError::InputWidth {
                got: m.n_cols(),
                expected: self.pca.mean.len(),
            });
        }
        let scores = self.pca.transform(m).map_err(NeuralError::Pca)?;
        Ok(scores * self.scale)
    }
}

/// A trained MLP fusion.
pub struct FittedMlpFusion {
    params: MlpFusionParams,
    image_view: ViewInput,
    text_view: ViewInput,
    varmap: VarMap,
    image_tower: MlpTower,
    text_tower: MlpTower,
    logit_scale: Tensor,
    device: Device,
}

#[derive(Serialize, Deserialize)]
struct SavedMlpFusion {
    format: u32,
    params: MlpFusionParams,
    image_scale: f32,
    text_scale: f32,
}

const MODEL_FILE: &str = "model.safetensors";
const META_FILE: &str = "mlp_fusion.json";

impl FittedMlpFusion {
    fn build(
        params: MlpFusionParams,
        image_view: ViewInput,
        text_view: ViewInput,
    ) -> Result<Self, NeuralError> {
        let device = contrastive::device();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let image_tower = MlpTower::new(
            image_view.pca.n_components(),
            &params.hidden,
            params.embed_dim,
            vb.pp("image"),
        )?;
        let text_tower = MlpTower::new(
            text_view.pca.n_components(),
            &params.hidden,
            params.embed_dim,
            vb.pp("text"),
        )?;
        let logit_scale = contrastive::logit_scale(&vb, params.train.temperature)?;
        Ok(Self {
            params,
            image_view,
            text_view,
            varmap,
            image_tower,
            text_tower,
            logit_scale,
            device,
        })
    }

    /// The parameters the model was built with.
    pub fn params(&self) -> &MlpFusionParams {
        &self.params
    }

    /// Number of scalar parameters of both towers and the logit scale, plus the entries of the
    /// two views' PCA bases.
    pub fn parameter_count(&self) -> usize {
        contrastive::parameter_count(&self.varmap)
            + self.image_view.pca.components.len()
            + self.text_view.pca.components.len()
    }

    fn embed(
        &self,
        view: &ViewInput,
        tower: &MlpTower,
        m: &FeatureMatrix,
    ) -> Result<Array2<f32>, NeuralError> {
        let input = view.transform(m)?;
        contrastive::embed_in_blocks(input.nrows(), 1024, |range| {
            let rows: Vec<usize> = range.collect();
            let x = rows_tensor(&input, &rows, &self.device)?;
            l2_normalize(&tower.forward::<rand_chacha::ChaCha8Rng>(&x, None)?)
        })
    }

    /// L2-normalised embeddings of image feature rows.
    pub fn embed_images(&self, images: &FeatureMatrix) -> Result<Array2<f32>, NeuralError> {
        self.embed(&self.image_view, &self.image_tower, images)
    }

    /// L2-normalised embeddings of text feature rows.
    pub fn embed_texts(&self, texts: &FeatureMatrix) -> Result<Array2<f32>, NeuralError> {
        self.embed(&self.text_view, &self.text_tower, texts)
    }

    /// Writes the model into `dir`, the folder whole or not at all (an existing one is
    /// replaced).
    pub fn save(&self, dir: &Path) -> Result<(), NeuralError> {
        crate::model_dir::write_folder_atomically(dir, |staging| self.write_files(staging))
    }

    fn write_files(&self, dir: &Path) -> Result<(), NeuralError> {
        let err = |path: &Path, e: &dyn std::fmt::Display| NeuralError::Model {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        for (name, view) in [("image", &self.image_view), ("text", &self.text_view)] {
            let mean = view.pca.mean.clone().insert_axis(Axis(0));
            let path = dir.join(format!("{name}_pca_mean.npy"));
            write_dense(&path, &mean).map_err(|e| err(&path, &e))?;
            let path = dir.join(format!("{name}_pca_components.npy"));
            write_dense(&path, &view.pca.components).map_err(|e| err(&path, &e))?;
        }
        let meta = SavedMlpFusion {
            format: 1,
            params: self.params.clone(),
            image_scale: self.image_view.scale,
            text_scale: self.text_view.scale,
        };
        let path = dir.join(META_FILE);
        crate::pipeline::artifacts::write_json(&path, &meta).map_err(|e| err(&path, &e))?;
        self.varmap.save(dir.join(MODEL_FILE))?;
        Ok(())
    }

    /// Loads what [`Self::save`] wrote.
    pub fn load(dir: &Path) -> Result<Self, NeuralError> {
        let err = |path: &Path, e: &dyn std::fmt::Display| NeuralError::Model {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&path).map_err(|e| err(&path, &e))?;
        let meta: SavedMlpFusion = serde_json::from_str(&text).map_err(|e| err(&path, &e))?;
        if meta.format != 1 {
            return Err(err(
                &path,
                &format!(
                    "format {} is not supported (this build reads 1)",
                    meta.format
                ),
            ));
        }
        let view = |name: &str, scale: f32| -> Result<ViewInput, NeuralError> {
            let path = dir.join(format!("{name}_pca_components.npy"));
            let components = read_dense(&path).map_err(|e| err(&path, &e))?;
            let k = components.ncols();
            let path = dir.join(format!("{name}_pca_mean.npy"));
            let mean = read_dense(&path).map_err(|e| err(&path, &e))?;
            if mean.dim() != (1, components.nrows()) {
                return Err(err(
                    &path,
                    &format!(
                        "is {} x {}, expected 1 x {} (one mean per row of {name}_pca_components.npy)",
                        mean.nrows(),
                        mean.ncols(),
                        components.nrows()
                    ),
                ));
            }
            let mean: Array1<f32> = mean.row(0).to_owned();
            Ok(ViewInput {
                pca: FittedPca {
                    mean,
                    components,
                    explained_variance: Array1::zeros(k),
                    total_variance: 0.0,
                },
                scale,
            })
        };
        let mut model = Self::build(
            meta.params.check()?,
            view("image", meta.image_scale)?,
            view("text", meta.text_scale)?,
        )?;
        let path = dir.join(MODEL_FILE);
        model.varmap.load(&path).map_err(|e| err(&path, &e))?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Two views sharing a 4-dimensional latent signal, plus noise.
    fn views(n: usize) -> (FeatureMatrix, FeatureMatrix) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let latent = Array2::from_shape_fn((n, 4), |_| rng.gen_range(-1.0f32..1.0));
        let mix_x = Array2::from_shape_fn((4, 20), |_| rng.gen_range(-1.0f32..1.0));
        let mix_y = Array2::from_shape_fn((4, 12), |_| rng.gen_range(-1.0f32..1.0));
        let x =
            latent.dot(&mix_x) + Array2::from_shape_fn((n, 20), |_| rng.gen_range(-0.1f32..0.1));
        let y =
            latent.dot(&mix_y) + Array2::from_shape_fn((n, 12), |_| rng.gen_range(-0.1f32..0.1));
        (FeatureMatrix::Dense(x), FeatureMatrix::Dense(y))
    }

    #[test]
    fn learns_a_shared_signal_and_reloads_identically() {
        let (x, y) = views(96);
        let pairs: Vec<(usize, usize)> = (0..96).map(|i| (i, i)).collect();
        let params = MlpFusionParams {
            pca_dims: 8,
            hidden: vec![32],
            embed_dim: 8,
            dropout: 0.1,
            train: TrainParams {
                epochs: 40,
                batch_size: 32,
                learning_rate: 5e-3,
                weight_decay: 1e-4,
                ..TrainParams::default()
            },
        };
        let (model, log) = params.fit(&x, &y, &pairs, &ProgressBar::hidden()).unwrap();
        assert!(
            log.epoch_loss.last().unwrap() < &(0.6 * log.epoch_loss[0]),
            "{:?}",
            log.epoch_loss
        );
        let zi = model.embed_images(&x).unwrap();
        let zt = model.embed_texts(&y).unwrap();
        let scores = zt.dot(&zi.t());
        let hits = (0..96)
            .filter(|&t| {
                let row = scores.row(t);
                let mine = row[t];
                row.iter().filter(|&&s| s > mine).count() < 5
            })
            .count();
        // Chance of R@5 is 5/96; the shared signal makes it far higher.
        assert!(hits > 48, "R@5 hits {hits} of 96");
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let loaded = FittedMlpFusion::load(dir.path()).unwrap();
        assert_eq!(loaded.embed_images(&x).unwrap(), zi);
        assert_eq!(loaded.embed_texts(&y).unwrap(), zt);
        let e = model.embed_images(&y).err().unwrap().to_string();
        assert!(e.contains("12") && e.contains("20"), "{e}");

        // A mean of the wrong shape is an error naming the file (an empty one used to panic).
        let mean = dir.path().join("image_pca_mean.npy");
        write_dense(&mean, &Array2::zeros((0, 20))).unwrap();
        let e = FittedMlpFusion::load(dir.path()).err().unwrap().to_string();
        assert!(
            e.contains("image_pca_mean.npy") && e.contains("is 0 x 20, expected 1 x 20"),
            "{e}"
        );
    }
}
