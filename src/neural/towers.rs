//! The towers of the dual encoders: a small convolutional network over pixels and a
//! multi-layer perceptron (over a bag of tokens, or over classical feature vectors).
//!
//! The CNN is a stack of non-overlapping convolutions (kernel = stride, as in the patch
//! embeddings of ViT and ConvMixer) with ReLU, global average pooling and a linear projection.
//! Each such convolution is a reshape and one matrix product, so the forward and backward
//! passes run at matrix-product speed on the CPU. A first version with candle's overlapping
//! 3x3 `conv2d` (stride 2) was several times slower per epoch on this machine: its backward
//! pass goes through candle's direct CPU `conv_transpose2d`. No batch normalisation, so a
//! batch of one embeds as a batch of many does.

use candle_core::{Module, Tensor};
use candle_nn::{Linear, VarBuilder};
use rand::Rng;

/// A CNN over `N x H x W x 3` (channels last) pixels: for each `(kernel, channels)` a
/// `kernel x kernel` convolution with stride `kernel` and ReLU, then the mean over positions
/// and a linear map to `out_dim`.
#[derive(Debug, Clone)]
pub struct ConvTower {
    layers: Vec<(usize, Linear)>,
    proj: Linear,
}

impl ConvTower {
    /// A convolution for each pair of `kernels` and `channels` (zipped) and the projection to
    /// `out_dim`, their variables created in `vb` (`conv0`, `conv1`, ..., `proj`).
    pub fn new(
        kernels: &[usize],
        channels: &[usize],
        out_dim: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let mut layers = Vec::with_capacity(channels.len());
        let mut input = 3;
        for (i, (&k, &c)) in kernels.iter().zip(channels).enumerate() {
            layers.push((
                k,
                candle_nn::linear(k * k * input, c, vb.pp(format!("conv{i}")))?,
            ));
            input = c;
        }
        let proj = candle_nn::linear(input, out_dim, vb.pp("proj"))?;
        Ok(Self { layers, proj })
    }

    /// `N x H x W x 3` pixels → `N x out_dim` (not normalised). `H` and `W` must be divisible
    /// by the product of the kernels.
    pub fn forward(&self, pixels: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = pixels.clone();
        for (k, layer) in &self.layers {
            let (n, h, w, c) = x.dims4()?;
            let (gh, gw) = (h / k, w / k);
            let patches = x
                .reshape(vec![n, gh, *k, gw, *k, c])?
                .permute([0, 1, 3, 2, 4, 5])?
                .contiguous()?
                .reshape((n * gh * gw, k * k * c))?;
            let y = layer.forward(&patches)?.relu()?;
            let out = y.dim(1)?;
            x = y.reshape((n, gh, gw, out))?;
        }
        let (n, h, w, c) = x.dims4()?;
        let pooled = x.reshape((n, h * w, c))?.mean(1)?;
        self.proj.forward(&pooled)
    }
}

/// An MLP: `Linear → ReLU (→ dropout)` for each hidden width, then a final `Linear`.
#[derive(Debug, Clone)]
pub struct MlpTower {
    layers: Vec<Linear>,
}

impl MlpTower {
    /// A layer from `in_dim` inputs for each width of `hidden`, then one to `out_dim`, their
    /// variables created in `vb` (`layer0`, `layer1`, ...).
    pub fn new(
        in_dim: usize,
        hidden: &[usize],
        out_dim: usize,
        vb: VarBuilder,
    ) -> candle_core::Result<Self> {
        let mut layers = Vec::with_capacity(hidden.len() + 1);
        let mut input = in_dim;
        for (i, &h) in hidden.iter().chain(std::iter::once(&out_dim)).enumerate() {
            layers.push(candle_nn::linear(input, h, vb.pp(format!("layer{i}")))?);
            input = h;
        }
        Ok(Self { layers })
    }

    /// `N x in_dim` → `N x out_dim`. With `dropout = Some((p, rng))`, hidden activations are
    /// dropped with probability `p` (inverted dropout, mask drawn from our seeded `rng`).
    pub fn forward<R: Rng>(
        &self,
        input: &Tensor,
        mut dropout: Option<(f32, &mut R)>,
    ) -> candle_core::Result<Tensor> {
        let mut x = input.clone();
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            x = layer.forward(&x)?;
            if i < last {
                x = x.relu()?;
                if let Some((p, rng)) = dropout.as_mut()
                    && *p > 0.0
                {
                    let keep = 1.0 - *p;
                    let mask: Vec<f32> = (0..x.elem_count())
                        .map(|_| {
                            if rng.gen_bool(keep as f64) {
                                1.0 / keep
                            } else {
                                0.0
                            }
                        })
                        .collect();
                    let mask = Tensor::from_vec(mask, x.shape(), x.device())?;
                    x = (x * mask)?;
                }
            }
        }
        Ok(x)
    }
}

/// Rows scaled to unit L2 norm.
pub fn l2_normalize(x: &Tensor) -> candle_core::Result<Tensor> {
    let norm = (x.sqr()?.sum_keepdim(1)? + 1e-12)?.sqrt()?;
    x.broadcast_div(&norm)
}
