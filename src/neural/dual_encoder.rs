//! A neural dual encoder trained from scratch on the training pairs: a small CNN over the raw
//! pixels and an embedding bag over words, characters and character bigrams followed by an
//! MLP, trained with symmetric InfoNCE ([`super::contrastive`]). It is the "what does a neural
//! model learn from these few thousand pairs alone" baseline: no pretraining, no external data.
//!
//! `DualEncoderParams` → [`DualEncoderParams::check`] → `fit` → [`FittedDualEncoder`], which
//! embeds images and captions, and saves to / loads from a folder (`model.safetensors` plus
//! `dual_encoder.json` with the parameters and the token vocabulary).

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use candle_nn::{VarBuilder, VarMap};
use indicatif::ProgressBar;
use ndarray::Array2;
use serde::{Deserialize, Serialize};

use super::NeuralError;
use super::contrastive::{self, TrainLog, TrainParams};
use super::pixels::PixelSet;
use super::towers::{ConvTower, MlpTower, l2_normalize};
use super::vocab::{Bag, BagVocabulary, caption_tokens};
use crate::text::segment::{SegmentParams, Segmenter};

/// Hyper-parameters of the dual encoder (unchecked). A pipeline file's `[dual_encoder]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DualEncoderParams {
    /// Side of the square crop the CNN sees, in pixels.
    pub image_size: usize,
    /// Side images are stored at; training crops at random positions inside it.
    pub stored_size: usize,
    /// Kernel (= stride) of each convolution; their product must divide `image_size`.
    pub kernels: Vec<usize>,
    /// Output channels of each convolution.
    pub channels: Vec<usize>,
    /// Hidden widths of the text MLP (the first is the embedding bag's width).
    pub text_hidden: Vec<usize>,
    /// Dimensions of the shared space.
    pub embed_dim: usize,
    /// A token enters the vocabulary when at least this many training captions have it.
    pub min_count: usize,
    /// Largest vocabulary.
    pub max_tokens: usize,
    /// Optimisation parameters, their keys in the same table (`[dual_encoder]`).
    #[serde(flatten)]
    pub train: TrainParams,
}

impl Default for DualEncoderParams {
    fn default() -> Self {
        Self {
            image_size: 64,
            stored_size: 72,
            kernels: vec![4, 2, 2],
            channels: vec![96, 192, 384],
            text_hidden: vec![512],
            embed_dim: 128,
            min_count: 2,
            max_tokens: 20_000,
            train: TrainParams::default(),
        }
    }
}

impl DualEncoderParams {
    /// Checks every value, the [`TrainParams`] included; errors name the value.
    pub fn check(self) -> Result<Self, NeuralError> {
        let bad = |name, value: String, expected| {
            Err(NeuralError::InvalidParam {
                name,
                value,
                expected,
            })
        };
        if !(16..=256).contains(&self.image_size) {
            return bad("image_size", self.image_size.to_string(), "in [16, 256]");
        }
        if self.stored_size < self.image_size || self.stored_size > 2 * self.image_size {
            return bad(
                "stored_size",
                self.stored_size.to_string(),
                "in [image_size, 2 x image_size]",
            );
        }
        if self.channels.is_empty() || self.channels.iter().any(|&c| c == 0 || c > 1024) {
            return bad(
                "channels",
                format!("{:?}", self.channels),
                "1 to 1024 each, at least one",
            );
        }
        if self.kernels.len() != self.channels.len() || self.kernels.contains(&0) {
            return bad(
                "kernels",
                format!("{:?}", self.kernels),
                "one kernel >= 1 per entry of channels",
            );
        }
        let reduction: usize = self.kernels.iter().product();
        if self.image_size % reduction != 0 {
            return bad(
                "image_size",
                self.image_size.to_string(),
                "divisible by the product of the kernels",
            );
        }
        if self.text_hidden.iter().any(|&h| h == 0 || h > 8192) {
            return bad(
                "text_hidden",
                format!("{:?}", self.text_hidden),
                "1 to 8192 each",
            );
        }
        if !(2..=2048).contains(&self.embed_dim) {
            return bad("embed_dim", self.embed_dim.to_string(), "in [2, 2048]");
        }
        if self.min_count == 0 {
            return bad("min_count", "0".into(), ">= 1");
        }
        if self.max_tokens == 0 {
            return bad("max_tokens", "0".into(), ">= 1");
        }
        self.train.check()?;
        Ok(self)
    }

    /// Learns the vocabulary and trains both towers on `pairs` of (row of `pixels`, index into
    /// `captions`).
    pub fn fit(
        &self,
        pixels: &PixelSet,
        captions: &[String],
        pairs: &[(usize, usize)],
        bar: &ProgressBar,
    ) -> Result<(FittedDualEncoder, TrainLog), NeuralError> {
        let params = self.clone().check()?;
        if pixels.size != params.stored_size {
            return Err(NeuralError::InvalidParam {
                name: "stored_size",
                value: pixels.size.to_string(),
                expected: "the size the pixels were stored at",
            });
        }
        if pairs.len() < 2 {
            return Err(NeuralError::TooFewPairs {
                what: "dual encoder",
                counted: "training pairs",
                got: pairs.len(),
                need: 2,
            });
        }
        let segmenter = default_segmenter()?;
        let tokenized: Vec<Vec<String>> = pairs
            .iter()
            .map(|&(_, t)| caption_tokens(&captions[t], &segmenter))
            .collect();
        let vocab = BagVocabulary::fit(&tokenized, params.min_count, params.max_tokens);
        let model = FittedDualEncoder::build(params, vocab, segmenter)?;
        contrastive::seeded_init(
            &model.varmap,
            model.params.train.seed,
            model.params.train.temperature,
        )?;
        let bags: Vec<Bag> = tokenized.iter().map(|t| model.vocab.bag(t)).collect();
        // Group the pairs by image: training visits each image once per epoch.
        let (images, pair_image) = crate::pipeline::stages::fusion::distinct_images(pairs);
        let mut captions_of = vec![Vec::new(); images.len()];
        for (pair, &image) in pair_image.iter().enumerate() {
            captions_of[image].push(pair);
        }
        let crop = model.params.image_size;
        let log = contrastive::train(
            &model.varmap,
            &model.params.train,
            &captions_of,
            bar,
            |batch_images, batch_pairs, rng| {
                let rows: Vec<usize> = batch_images.iter().map(|&i| images[i]).collect();
                let x = pixels.batch(&rows, crop, Some(rng), &model.device)?;
                let y = bags_tensor(
                    batch_pairs.iter().map(|&p| &bags[p]),
                    model.vocab.len(),
                    &model.device,
                )?;
                let zi = l2_normalize(&model.image_tower.forward(&x)?)?;
                let zt = l2_normalize(&model.text_forward(&y)?)?;
                contrastive::info_nce(&zi, &zt, &model.logit_scale)
            },
        )?;
        Ok((model, log))
    }
}

/// The jieba segmenter with the default dictionary and stop words.
fn default_segmenter() -> Result<Segmenter, NeuralError> {
    Segmenter::new(&SegmentParams::default()).map_err(NeuralError::Segmenter)
}

/// A dense `N x vocabulary` batch of bags.
fn bags_tensor<'a>(
    bags: impl Iterator<Item = &'a Bag>,
    width: usize,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut data = Vec::new();
    let mut n = 0;
    for bag in bags {
        let start = data.len();
        data.resize(start + width, 0f32);
        for &(i, w) in bag {
            data[start + i as usize] = w;
        }
        n += 1;
    }
    Tensor::from_vec(data, (n, width), device)
}

/// A trained dual encoder.
pub struct FittedDualEncoder {
    params: DualEncoderParams,
    vocab: BagVocabulary,
    segmenter: Segmenter,
    varmap: VarMap,
    image_tower: ConvTower,
    text_tower: MlpTower,
    logit_scale: Tensor,
    device: Device,
}

#[derive(Serialize, Deserialize)]
struct SavedDualEncoder {
    format: u32,
    params: DualEncoderParams,
    tokens: Vec<String>,
}

const MODEL_FILE: &str = "model.safetensors";
const META_FILE: &str = "dual_encoder.json";

impl FittedDualEncoder {
    fn build(
        params: DualEncoderParams,
        vocab: BagVocabulary,
        segmenter: Segmenter,
    ) -> Result<Self, NeuralError> {
        let device = contrastive::device();
        let varmap = VarMap::new();
        let vb = VarBuilder::from_varmap(&varmap, DType::F32, &device);
        let image_tower = ConvTower::new(
            &params.kernels,
            &params.channels,
            params.embed_dim,
            vb.pp("image"),
        )?;
        let text_tower = MlpTower::new(
            vocab.len().max(1),
            &params.text_hidden,
            params.embed_dim,
            vb.pp("text"),
        )?;
        let logit_scale = contrastive::logit_scale(&vb, params.train.temperature)?;
        Ok(Self {
            params,
            vocab,
            segmenter,
            varmap,
            image_tower,
            text_tower,
            logit_scale,
            device,
        })
    }

    fn text_forward(&self, bags: &Tensor) -> candle_core::Result<Tensor> {
        self.text_tower
            .forward::<rand_chacha::ChaCha8Rng>(bags, None)
    }

    /// The parameters the model was built with.
    pub fn params(&self) -> &DualEncoderParams {
        &self.params
    }

    /// Number of tokens in the text vocabulary.
    pub fn vocabulary_len(&self) -> usize {
        self.vocab.len()
    }

    /// Number of scalar parameters of both towers and the logit scale.
    pub fn parameter_count(&self) -> usize {
        contrastive::parameter_count(&self.varmap)
    }

    /// L2-normalised embeddings of the images `rows` of `pixels` (centre crops).
    pub fn embed_images(
        &self,
        pixels: &PixelSet,
        rows: &[usize],
    ) -> Result<Array2<f32>, NeuralError> {
        contrastive::embed_in_blocks(rows.len(), 256, |range| {
            let x = pixels.batch::<rand_chacha::ChaCha8Rng>(
                &rows[range],
                self.params.image_size,
                None,
                &self.device,
            )?;
            l2_normalize(&self.image_tower.forward(&x)?)
        })
    }

    /// L2-normalised embeddings of `captions`.
    pub fn embed_texts(&self, captions: &[String]) -> Result<Array2<f32>, NeuralError> {
        let bags: Vec<Bag> = captions
            .iter()
            .map(|c| self.vocab.bag(&caption_tokens(c, &self.segmenter)))
            .collect();
        contrastive::embed_in_blocks(bags.len(), 512, |range| {
            let y = bags_tensor(bags[range].iter(), self.vocab.len(), &self.device)?;
            l2_normalize(&self.text_forward(&y)?)
        })
    }

    /// Writes `model.safetensors` and `dual_encoder.json` into `dir`, the folder whole or not at
    /// all (an existing one is replaced).
    pub fn save(&self, dir: &Path) -> Result<(), NeuralError> {
        crate::model_dir::write_folder_atomically(dir, |staging| self.write_files(staging))
    }

    fn write_files(&self, dir: &Path) -> Result<(), NeuralError> {
        let model_err = |path: &Path, e: &dyn std::fmt::Display| NeuralError::Model {
            path: path.to_path_buf(),
            message: e.to_string(),
        };
        let meta = SavedDualEncoder {
            format: 1,
            params: self.params.clone(),
            tokens: self.vocab.tokens.clone(),
        };
        let meta_path = dir.join(META_FILE);
        crate::pipeline::artifacts::write_json(&meta_path, &meta)
            .map_err(|e| model_err(&meta_path, &e))?;
        self.varmap.save(dir.join(MODEL_FILE))?;
        Ok(())
    }

    /// Loads what [`Self::save`] wrote.
    pub fn load(dir: &Path) -> Result<Self, NeuralError> {
        let meta_path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&meta_path).map_err(|e| NeuralError::Model {
            path: meta_path.clone(),
            message: e.to_string(),
        })?;
        let meta: SavedDualEncoder =
            serde_json::from_str(&text).map_err(|e| NeuralError::Model {
                path: meta_path.clone(),
                message: e.to_string(),
            })?;
        if meta.format != 1 {
            return Err(NeuralError::Model {
                path: meta_path,
                message: format!(
                    "format {} is not supported (this build reads 1)",
                    meta.format
                ),
            });
        }
        let params = meta.params.check()?;
        let mut model = Self::build(
            params,
            BagVocabulary::from_tokens(meta.tokens),
            default_segmenter()?,
        )?;
        let model_path = dir.join(MODEL_FILE);
        model
            .varmap
            .load(&model_path)
            .map_err(|e| NeuralError::Model {
                path: model_path,
                message: e.to_string(),
            })?;
        Ok(model)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Images of one flat colour each, with captions naming the colour.
    fn toy() -> (PixelSet, Vec<String>, Vec<(usize, usize)>) {
        let colours = [
            ("红色", [220u8, 30, 30]),
            ("绿色", [30, 200, 40]),
            ("蓝色", [30, 40, 220]),
            ("黄色", [230, 220, 30]),
        ];
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let (mut pixels, mut captions, mut pairs) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..32 {
            let (name, rgb) = colours[i % 4];
            let img: Vec<u8> = (0..18 * 18)
                .flat_map(|_| rgb.map(|c| c.saturating_add(rng.gen_range(0..20))))
                .collect();
            pixels.push(img);
            captions.push(format!("一张{name}的图片"));
            pairs.push((i, i));
        }
        (PixelSet { size: 18, pixels }, captions, pairs)
    }

    fn small() -> DualEncoderParams {
        DualEncoderParams {
            image_size: 16,
            stored_size: 18,
            kernels: vec![4, 4],
            channels: vec![8, 16],
            text_hidden: vec![32],
            embed_dim: 16,
            min_count: 1,
            train: TrainParams {
                epochs: 30,
                batch_size: 16,
                learning_rate: 5e-3,
                ..TrainParams::default()
            },
            ..DualEncoderParams::default()
        }
    }

    #[test]
    fn loss_falls_and_a_saved_model_reloads_and_embeds_identically() {
        let (pixels, captions, pairs) = toy();
        let (model, log) = small()
            .fit(&pixels, &captions, &pairs, &ProgressBar::hidden())
            .unwrap();
        let first = log.epoch_loss[0];
        let last = *log.epoch_loss.last().unwrap();
        assert!(last < 0.7 * first, "loss {first} -> {last}");
        let rows: Vec<usize> = (0..pixels.pixels.len()).collect();
        let images = model.embed_images(&pixels, &rows).unwrap();
        let texts = model.embed_texts(&captions).unwrap();
        // Each caption's nearest image has its colour.
        let scores = texts.dot(&images.t());
        for (t, row) in scores.rows().into_iter().enumerate() {
            let best = row
                .iter()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(b.1))
                .unwrap()
                .0;
            assert_eq!(best % 4, t % 4, "caption {t}: {}", captions[t]);
        }
        let dir = tempfile::tempdir().unwrap();
        model.save(dir.path()).unwrap();
        let loaded = FittedDualEncoder::load(dir.path()).unwrap();
        assert_eq!(loaded.embed_images(&pixels, &rows).unwrap(), images);
        assert_eq!(loaded.embed_texts(&captions).unwrap(), texts);
    }

    #[test]
    fn same_seed_same_model() {
        let (pixels, captions, pairs) = toy();
        let mut params = small();
        params.train.epochs = 2;
        let (a, _) = params
            .fit(&pixels, &captions, &pairs, &ProgressBar::hidden())
            .unwrap();
        let (b, _) = params
            .fit(&pixels, &captions, &pairs, &ProgressBar::hidden())
            .unwrap();
        assert_eq!(
            a.embed_texts(&captions).unwrap(),
            b.embed_texts(&captions).unwrap()
        );
    }

    #[test]
    fn bad_parameters_name_the_value() {
        let e = DualEncoderParams {
            image_size: 8,
            ..DualEncoderParams::default()
        }
        .check()
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("image_size") && e.contains('8'), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let e = FittedDualEncoder::load(dir.path())
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("dual_encoder.json"), "{e}");
    }
}
