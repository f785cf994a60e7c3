//! Contrastive training of a dual encoder: the symmetric InfoNCE loss with a learnable
//! temperature (CLIP, Radford et al. 2021), AdamW with a cosine learning-rate schedule, batches
//! of distinct images each with one of its captions drawn at random, and seeded weight
//! initialisation.

use std::time::Instant;

use candle_core::{D, DType, Device, Tensor, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW, VarMap};
use indicatif::ProgressBar;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::NeuralError;

/// Name of the learnable log inverse temperature in every model's variables.
pub const LOGIT_SCALE: &str = "logit_scale";
/// The inverse temperature is capped at 100, as in CLIP.
const MAX_LOGIT_SCALE: f32 = 4.605_17;

/// Optimisation parameters shared by the neural baselines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainParams {
    /// Passes over the training images.
    pub epochs: usize,
    /// Images per batch (each with one caption): the negatives of InfoNCE.
    pub batch_size: usize,
    /// Peak learning rate of AdamW (cosine decay to zero after a short warm-up).
    pub learning_rate: f64,
    /// Weight decay of AdamW.
    pub weight_decay: f64,
    /// Initial temperature of the softmax (learned from there).
    pub temperature: f64,
    /// Seed of the weight initialisation, the batches and the augmentations.
    pub seed: u64,
}

impl Default for TrainParams {
    fn default() -> Self {
        Self {
            epochs: 30,
            batch_size: 128,
            learning_rate: 2e-3,
            weight_decay: 1e-4,
            temperature: 0.07,
            seed: 0,
        }
    }
}

impl TrainParams {
    /// Checks the ranges: `epochs` >= 1, `batch_size` >= 2, `learning_rate` > 0,
    /// `weight_decay` >= 0, `temperature` in (0.01, 1]; errors name the value.
    pub fn check(&self) -> Result<(), NeuralError> {
        let bad = |name, value: String, expected| {
            Err(NeuralError::InvalidParam {
                name,
                value,
                expected,
            })
        };
        if self.epochs == 0 {
            return bad("epochs", "0".into(), ">= 1");
        }
        if self.batch_size < 2 {
            return bad("batch_size", self.batch_size.to_string(), ">= 2");
        }
        if !(self.learning_rate.is_finite() && self.learning_rate > 0.0) {
            return bad("learning_rate", self.learning_rate.to_string(), "> 0");
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return bad("weight_decay", self.weight_decay.to_string(), ">= 0");
        }
        if !(self.temperature > 0.01 && self.temperature <= 1.0) {
            return bad("temperature", self.temperature.to_string(), "in (0.01, 1]");
        }
        Ok(())
    }
}

/// What training did: mean loss per epoch and the time it took.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainLog {
    /// Mean batch loss of each epoch, in order.
    pub epoch_loss: Vec<f32>,
    /// Optimiser steps taken (one per batch; a batch of a single image is skipped).
    pub steps: usize,
    /// Wall-clock time of the training, in seconds.
    pub seconds: f64,
    /// The learned temperature at the end.
    pub temperature: f32,
}

/// Gives every variable of `varmap` a value drawn from a generator seeded with `seed`, in name
/// order: weights uniform in ±sqrt(6 / fan_in) (He et al. 2015, for ReLU networks), biases 0,
/// the logit scale log(1 / temperature).
pub fn seeded_init(varmap: &VarMap, seed: u64, temperature: f64) -> Result<(), NeuralError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let data = varmap.data().lock().expect("variable map lock");
    let mut names: Vec<&String> = data.keys().collect();
    names.sort();
    for name in names {
        let var = &data[name];
        let shape = var.shape().clone();
        let n = shape.elem_count();
        let values: Vec<f32> = if name.ends_with(LOGIT_SCALE) {
            vec![(1.0 / temperature).ln() as f32; n]
        } else if name.ends_with("bias") || shape.dims().len() < 2 {
            vec![0.0; n]
        } else {
            let fan_in = n / shape.dims()[0];
            let bound = (6.0 / fan_in as f64).sqrt() as f32;
            (0..n).map(|_| rng.gen_range(-bound..bound)).collect()
        };
        var.set(&Tensor::from_vec(values, shape, var.device())?)?;
    }
    Ok(())
}

/// The learnable logit scale, created in `vb`'s variable map.
pub fn logit_scale(vb: &candle_nn::VarBuilder, temperature: f64) -> candle_core::Result<Tensor> {
    vb.get_with_hints(
        1,
        LOGIT_SCALE,
        candle_nn::Init::Const((1.0 / temperature).ln()),
    )
}

/// Symmetric InfoNCE of `n` matched pairs: row `i` of `images` goes with row `i` of `texts`
/// (both L2-normalised); the logits are cosines times `exp(logit_scale)`.
pub fn info_nce(
    images: &Tensor,
    texts: &Tensor,
    logit_scale: &Tensor,
) -> candle_core::Result<Tensor> {
    let n = images.dim(0)?;
    let scale = logit_scale.clamp(0f32, MAX_LOGIT_SCALE)?.exp()?;
    let logits = images.matmul(&texts.t()?)?.broadcast_mul(&scale)?;
    let targets = Tensor::arange(0u32, n as u32, images.device())?;
    let i2t = candle_nn::loss::cross_entropy(&logits, &targets)?;
    let t2i = candle_nn::loss::cross_entropy(&logits.t()?, &targets)?;
    (i2t + t2i)? / 2.0
}

/// Trains the variables of `varmap` with InfoNCE. `captions_of[i]` lists the captions of
/// training image `i`; each epoch visits every image once, in a seeded random order, in
/// batches of `params.batch_size` images, each with one of its captions drawn at random.
/// `batch_loss(images, captions, rng)` returns the loss of one batch.
pub fn train<F>(
    varmap: &VarMap,
    params: &TrainParams,
    captions_of: &[Vec<usize>],
    bar: &ProgressBar,
    mut batch_loss: F,
) -> Result<TrainLog, NeuralError>
where
    F: FnMut(&[usize], &[usize], &mut ChaCha8Rng) -> candle_core::Result<Tensor>,
{
    params.check()?;
    let usable: Vec<usize> = (0..captions_of.len())
        .filter(|&i| !captions_of[i].is_empty())
        .collect();
    if usable.len() < 2 {
        return Err(NeuralError::TooFewPairs {
            what: "contrastive training",
            counted: "images with a caption",
            got: usable.len(),
            need: 2,
        });
    }
    let batch = params.batch_size.min(usable.len());
    let steps_per_epoch = usable.len().div_ceil(batch);
    let total = steps_per_epoch * params.epochs;
    let warmup = (total / 20).max(1);
    let mut optimizer = AdamW::new(
        varmap.all_vars(),
        ParamsAdamW {
            lr: params.learning_rate,
            weight_decay: params.weight_decay,
            ..Default::default()
        },
    )?;
    let mut rng = ChaCha8Rng::seed_from_u64(params.seed ^ 0x5eed_ba7c);
    bar.set_length(total as u64);
    let start = Instant::now();
    let mut epoch_loss = Vec::with_capacity(params.epochs);
    let mut step = 0;
    for epoch in 0..params.epochs {
        let mut order = usable.clone();
        order.shuffle(&mut rng);
        let (mut sum, mut count) = (0f64, 0usize);
        for chunk in order.chunks(batch) {
            if chunk.len() < 2 {
                continue;
            }
            let captions: Vec<usize> = chunk
                .iter()
                .map(|&i| *captions_of[i].choose(&mut rng).expect("non-empty"))
                .collect();
            let lr = if step < warmup {
                params.learning_rate * (step + 1) as f64 / warmup as f64
            } else {
                let t = (step - warmup) as f64 / (total - warmup).max(1) as f64;
                params.learning_rate * 0.5 * (1.0 + (std::f64::consts::PI * t).cos())
            };
            optimizer.set_learning_rate(lr);
            let loss = batch_loss(chunk, &captions, &mut rng)?;
            let value = loss.to_dtype(DType::F32)?.to_vec0::<f32>()?;
            optimizer.backward_step(&loss)?;
            sum += value as f64;
            count += 1;
            step += 1;
            bar.inc(1);
            bar.set_message(format!("epoch {} loss {value:.3}", epoch + 1));
        }
        epoch_loss.push((sum / count.max(1) as f64) as f32);
        log::debug!("epoch {}: mean loss {:.4}", epoch + 1, epoch_loss[epoch]);
    }
    bar.finish_and_clear();
    let temperature = current_temperature(varmap)?;
    Ok(TrainLog {
        epoch_loss,
        steps: step,
        seconds: start.elapsed().as_secs_f64(),
        temperature,
    })
}

/// `1 / exp(logit_scale)` of a model's variables (1 when it has none).
pub fn current_temperature(varmap: &VarMap) -> Result<f32, NeuralError> {
    let data = varmap.data().lock().expect("variable map lock");
    match data.iter().find(|(name, _)| name.ends_with(LOGIT_SCALE)) {
        Some((_, var)) => {
            let v: Vec<f32> = var.as_tensor().flatten_all()?.to_vec1()?;
            Ok(1.0 / v[0].min(MAX_LOGIT_SCALE).exp())
        }
        None => Ok(1.0),
    }
}

/// Runs `f` over `0..n` in blocks of `block` rows and stacks the results (inference).
pub fn embed_in_blocks<F>(
    n: usize,
    block: usize,
    mut f: F,
) -> Result<ndarray::Array2<f32>, NeuralError>
where
    F: FnMut(std::ops::Range<usize>) -> candle_core::Result<Tensor>,
{
    let mut rows: Vec<f32> = Vec::new();
    let mut width = 0;
    let mut start = 0;
    while start < n {
        let end = (start + block).min(n);
        let t = f(start..end)?;
        width = t.dim(D::Minus1)?;
        rows.extend(t.flatten_all()?.to_vec1::<f32>()?);
        start = end;
    }
    Ok(ndarray::Array2::from_shape_vec((n, width), rows).expect("rows of equal width"))
}

/// The device every model runs on.
pub fn device() -> Device {
    Device::Cpu
}

/// Number of scalar parameters of a model.
pub fn parameter_count(varmap: &VarMap) -> usize {
    varmap.all_vars().iter().map(|v: &Var| v.elem_count()).sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn info_nce_is_low_for_matched_pairs_and_high_for_swapped_ones() {
        let dev = Device::Cpu;
        let eye = Tensor::eye(4, DType::F32, &dev).unwrap();
        let swapped = Tensor::from_vec(
            vec![
                0f32, 1., 0., 0., 1., 0., 0., 0., 0., 0., 0., 1., 0., 0., 1., 0.,
            ],
            (4, 4),
            &dev,
        )
        .unwrap();
        let scale = Tensor::new(&[(1.0f32 / 0.07).ln()], &dev).unwrap();
        let good: f32 = info_nce(&eye, &eye, &scale).unwrap().to_vec0().unwrap();
        let bad: f32 = info_nce(&eye, &swapped, &scale).unwrap().to_vec0().unwrap();
        assert!(good < 0.01, "matched loss {good}");
        assert!(bad > 5.0, "swapped loss {bad}");
    }

    #[test]
    fn train_params_are_checked() {
        let p = TrainParams {
            batch_size: 1,
            ..Default::default()
        };
        let e = p.check().unwrap_err().to_string();
        assert!(e.contains("batch_size") && e.contains('1'), "{e}");
    }
}
