//! The convolutional networks, by name, built for K members at once.
//!
//! Each architecture is written once, as a list of layers. `Cnn` builds it for K ≥ 1 members that
//! see the same batch: convolutions with `groups = K`, batched linear layers, per-member BatchNorm.
//! Every parameter has a leading member dimension `[K, …]` (so the optimizer can keep all members
//! in one `[K, P]` buffer and broadcast per-member hyperparameters), and every member starts from
//! the same initial weights, the ones a single model gets from the same seed. K = 1 is the plain
//! network.
use super::{Layout, ModelKind, Precision};
use crate::train::data::DatasetKind;
use tch::{nn, Kind, Tensor};

/// One layer of an architecture.
#[derive(Clone, Copy, Debug)]
enum Layer {
    /// 3×3 convolution, padding 1, to this many channels.
    Conv(i64),
    /// The same without bias, for a convolution that BatchNorm follows: such a bias has no true
    /// gradient, and adaptive optimizers would turn its rounding noise into full-size steps.
    ConvNoBias(i64),
    BatchNorm,
    Relu,
    MaxPool,
    Dropout(f64),
    /// `[N, K·C, H, W]` → `[K, N, C·H·W]`.
    Flatten,
    Linear(i64),
}

fn architecture(kind: ModelKind, classes: i64) -> Vec<Layer> {
    use Layer::*;
    match kind {
        ModelKind::MarfinetzCnn => vec![
            Conv(32),
            BatchNorm,
            Relu,
            Conv(32),
            Relu,
            MaxPool,
            Dropout(0.25),
            Conv(64),
            BatchNorm,
            Relu,
            Conv(64),
            Relu,
            MaxPool,
            Dropout(0.25),
            Flatten,
            Linear(512),
            Relu,
            Dropout(0.5),
            Linear(classes),
        ],
        ModelKind::MnistCnn => vec![
            Conv(32),
            Relu,
            MaxPool,
            Conv(64),
            Relu,
            MaxPool,
            Flatten,
            Linear(256),
            Relu,
            Dropout(0.3),
            Linear(classes),
        ],
        ModelKind::TinyCnn => vec![
            ConvNoBias(16),
            BatchNorm,
            Relu,
            MaxPool,
            Conv(32),
            Relu,
            MaxPool,
            Flatten,
            Linear(classes),
        ],
        // Not a CNN: `Net::for_task` builds `gpt::Gpt` for it.
        ModelKind::GptTiny => Vec::new(),
    }
}

/// A layer with its variables (each `[K, …]`).
enum Built {
    Conv {
        w: Tensor,
        b: Option<Tensor>,
    },
    BatchNorm {
        w: Tensor,
        b: Tensor,
        mean: Tensor,
        var: Tensor,
    },
    Relu,
    MaxPool,
    Dropout(f64),
    Flatten,
    Linear {
        w: Tensor,
        b: Tensor,
    },
}

/// K copies of one architecture, trained side by side on the same batches.
pub struct Cnn {
    members: i64,
    layers: Vec<Built>,
    /// Compute in this kind instead of the parameters' own (mixed precision).
    compute: Option<Kind>,
    layout: Layout,
}

/// PyTorch's default initialisation for conv and linear layers: U(±1/√fan_in) for weight and bias.
pub(super) fn uniform(shape: &[i64], fan_in: i64, device: tch::Device) -> Tensor {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Tensor::rand(shape, (Kind::Float, device)) * (2.0 * bound) - bound
}

impl Cnn {
    /// Builds `kind` for `members` members under `p`. Initial weights are drawn once (for one
    /// member, in a fixed order) and copied to every member.
    pub fn new(kind: ModelKind, p: &nn::Path, dataset: DatasetKind, members: i64) -> Cnn {
        let device = p.device();
        let var = |layer: usize, name: &str, init: Tensor| {
            let shape: Vec<i64> = [members]
                .iter()
                .chain(init.size().iter())
                .copied()
                .collect();
            (p / layer).var_copy(
                name,
                &init
                    .unsqueeze(0)
                    .expand(shape.as_slice(), false)
                    .contiguous(),
            )
        };
        let mut layers = Vec::new();
        for (i, (layer, [channels, _, _])) in with_inputs(kind, dataset).into_iter().enumerate() {
            layers.push(match layer {
                Layer::Conv(out) | Layer::ConvNoBias(out) => {
                    let fan_in = channels * 9;
                    let w = var(i, "weight", uniform(&[out, channels, 3, 3], fan_in, device));
                    let b = matches!(layer, Layer::Conv(_))
                        .then(|| var(i, "bias", uniform(&[out], fan_in, device)));
                    Built::Conv { w, b }
                }
                Layer::BatchNorm => Built::BatchNorm {
                    w: var(i, "weight", Tensor::ones([channels], (Kind::Float, device))),
                    b: var(i, "bias", Tensor::zeros([channels], (Kind::Float, device))),
                    mean: (p / i).zeros_no_train("running_mean", &[members * channels]),
                    var: (p / i).ones_no_train("running_var", &[members * channels]),
                },
                Layer::Relu => Built::Relu,
                Layer::MaxPool => Built::MaxPool,
                Layer::Dropout(rate) => Built::Dropout(rate),
                Layer::Flatten => Built::Flatten,
                Layer::Linear(out) => {
                    let features = channels;
                    let w = var(i, "weight", uniform(&[out, features], features, device));
                    let b = var(i, "bias", uniform(&[out], features, device));
                    Built::Linear { w, b }
                }
            });
        }
        Cnn {
            members,
            layers,
            compute: None,
            layout: Layout::default(),
        }
    }

    /// The same network computing in `precision` (bf16: weights cast per pass, logits float32).
    pub fn with_precision(mut self, precision: Precision) -> Cnn {
        self.compute = match precision {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(Kind::BFloat16),
        };
        self
    }

    /// The same network with activations and convolution weights in `layout`.
    pub fn with_layout(mut self, layout: Layout) -> Cnn {
        self.layout = layout;
        self
    }

    /// Logits `[K, N, classes]` for images `[N, C, H, W]` (every member sees the same images),
    /// computed in the parameters' precision.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        let k = self.members;
        let kind = match &self.layers[0] {
            Built::Conv { w, .. } => self.compute.unwrap_or(w.kind()),
            _ => Kind::Float,
        };
        let x = x.to_kind(kind);
        let mut x = self
            .layout
            .apply(if k > 1 { x.repeat([1, k, 1, 1]) } else { x });
        for layer in &self.layers {
            x = self.layer(layer, x, train, kind);
        }
        if self.compute.is_some() {
            x.to_kind(Kind::Float)
        } else {
            x
        }
    }

    /// One layer over the K members' activations `x`, its parameters cast to `kind`.
    fn layer(&self, layer: &Built, x: Tensor, train: bool, kind: Kind) -> Tensor {
        let k = self.members;
        let cast = |t: Tensor| if t.kind() == kind { t } else { t.to_kind(kind) };
        match layer {
            Built::Conv { w, b } => {
                let s = w.size();
                let weight = self
                    .layout
                    .apply(cast(w.reshape([k * s[1], s[2], s[3], s[4]])));
                x.conv2d(
                    &weight,
                    b.as_ref().map(|b| cast(b.reshape([-1]))),
                    [1, 1],
                    [1, 1],
                    [1, 1],
                    k,
                )
            }
            Built::BatchNorm { w, b, mean, var } => Tensor::batch_norm(
                &x,
                Some(&w.reshape([-1])),
                Some(&b.reshape([-1])),
                Some(mean),
                Some(var),
                train,
                0.1,
                1e-5,
                true,
            ),
            Built::Relu => x.relu(),
            Built::MaxPool => x.max_pool2d_default(2),
            // On CPU libtorch draws a dropout mask in memory order; drawn for the NCHW shape
            // and then laid out like `x`, it drops the same units in both layouts. (CUDA's
            // fused dropout has a random stream of its own, which no layout reproduces.)
            Built::Dropout(rate)
                if train
                    && x.dim() == 4
                    && self.layout != Layout::Nchw
                    && !x.device().is_cuda() =>
            {
                let keep = Tensor::empty(x.size(), (x.kind(), x.device()))
                    .bernoulli_float_(1.0 - rate)
                    / (1.0 - rate);
                x * self.layout.apply(keep)
            }
            Built::Dropout(rate) => x.dropout(*rate, train),
            Built::Flatten => {
                let n = x.size()[0];
                x.reshape([n, k, -1]).transpose(0, 1)
            }
            // One member: a plain gemm with the transpose folded in (batched gemm of
            // one is slower on CPU).
            Built::Linear { w, b } if k == 1 => x
                .get(0)
                .linear(&cast(w.get(0)), Some(cast(b.get(0))))
                .unsqueeze(0),
            Built::Linear { w, b } => {
                cast(b.unsqueeze(1)).baddbmm(&x, &cast(w.transpose(1, 2)), 1.0, 1.0)
            }
        }
    }
}

/// Each layer of one `kind` network on `dataset`, with the shape `[channels, height, width]` of
/// one image reaching it (`[features, 1, 1]` once flattened).
fn with_inputs(kind: ModelKind, dataset: DatasetKind) -> Vec<(Layer, [i64; 3])> {
    let (c, h, w) = dataset.image_shape();
    let mut shape = [c, h, w];
    architecture(kind, dataset.num_classes())
        .into_iter()
        .map(|layer| {
            let input = shape;
            shape = match layer {
                Layer::Conv(out) | Layer::ConvNoBias(out) => [out, shape[1], shape[2]],
                Layer::MaxPool => [shape[0], shape[1] / 2, shape[2] / 2],
                Layer::Flatten => [shape.iter().product(), 1, 1],
                Layer::Linear(out) => [out, 1, 1],
                Layer::BatchNorm | Layer::Relu | Layer::Dropout(_) => shape,
            };
            (layer, input)
        })
        .collect()
}

/// The 3×3 convolutions of one `kind` network on `dataset`: `[in channels, out channels,
/// height, width]` each (for benchmarks that time them alone).
pub fn convolutions(kind: ModelKind, dataset: DatasetKind) -> Vec<[i64; 4]> {
    with_inputs(kind, dataset)
        .into_iter()
        .filter_map(|(layer, [c, h, w])| match layer {
            Layer::Conv(out) | Layer::ConvNoBias(out) => Some([c, out, h, w]),
            _ => None,
        })
        .collect()
}

/// Floating-point operations of one image's forward pass through one `kind` network on
/// `dataset` (a multiply-add counts two): `(convolutions, linear layers)`. Training costs about
/// three times this (the backward pass computes gradients of inputs and of weights).
pub fn forward_flops(kind: ModelKind, dataset: DatasetKind) -> (f64, f64) {
    let conv = convolutions(kind, dataset)
        .iter()
        .map(|[c, out, h, w]| 2.0 * (h * w * out * c * 9) as f64)
        .sum();
    let linear = with_inputs(kind, dataset)
        .iter()
        .map(|(layer, [features, _, _])| match layer {
            Layer::Linear(out) => 2.0 * (features * out) as f64,
            _ => 0.0,
        })
        .sum();
    (conv, linear)
}
