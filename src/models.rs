//! The networks candidates are trained on, by name, built for K members at once.
//!
//! Each architecture is written once, as a list of layers. `Net` builds it for K ≥ 1 members that
//! see the same batch: convolutions with `groups = K`, batched linear layers, per-member BatchNorm.
//! Every parameter has a leading member dimension `[K, …]` (so the optimizer can keep all members
//! in one `[K, P]` buffer and broadcast per-member hyperparameters), and every member starts from
//! the same initial weights, the ones a single model gets from the same seed. K = 1 is the plain
//! network.
use crate::data::DatasetKind;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The published CIFAR-10 CNN: two blocks of [conv3×3, BN, ReLU, conv3×3, ReLU, maxpool 2,
    /// dropout .25] with 32 then 64 channels, then linear →512, ReLU, dropout .5, linear 512→10.
    MarfinetzCnn,
    /// The published MNIST CNN: conv 32, pool, conv 64, pool, linear →256, dropout .3, linear →10.
    MnistCnn,
    /// Small enough for CPU tests and the quick config: conv 16 (no bias: BN follows), BN, ReLU,
    /// pool, conv 32, ReLU, pool, linear →10. No dropout, so stacked and separate runs can be
    /// compared exactly.
    TinyCnn,
}

/// The arithmetic of the forward and backward passes. Weights and optimizer state stay float32
/// either way; bf16 casts them per pass (mixed precision), which these CPUs run on AMX units.
/// Part of the protocol: it changes results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    Fp32,
    Bf16,
}

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
pub struct Net {
    members: i64,
    layers: Vec<Built>,
    /// Compute in this kind instead of the parameters' own (mixed precision).
    compute: Option<Kind>,
}

/// PyTorch's default initialisation for conv and linear layers: U(±1/√fan_in) for weight and bias.
fn uniform(shape: &[i64], fan_in: i64, device: tch::Device) -> Tensor {
    let bound = 1.0 / (fan_in as f64).sqrt();
    Tensor::rand(shape, (Kind::Float, device)) * (2.0 * bound) - bound
}

impl Net {
    /// Builds `kind` for `members` members under `p`. Initial weights are drawn once (for one
    /// member, in a fixed order) and copied to every member.
    pub fn new(kind: ModelKind, p: &nn::Path, dataset: DatasetKind, members: i64) -> Net {
        let (mut channels, h, w) = dataset.image_shape();
        let mut side = (h, w);
        let mut features = 0;
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
        for (i, layer) in architecture(kind, dataset.num_classes())
            .into_iter()
            .enumerate()
        {
            layers.push(match layer {
                Layer::Conv(out) | Layer::ConvNoBias(out) => {
                    let fan_in = channels * 9;
                    let w = var(i, "weight", uniform(&[out, channels, 3, 3], fan_in, device));
                    let b = matches!(layer, Layer::Conv(_))
                        .then(|| var(i, "bias", uniform(&[out], fan_in, device)));
                    channels = out;
                    Built::Conv { w, b }
                }
                Layer::BatchNorm => Built::BatchNorm {
                    w: var(i, "weight", Tensor::ones([channels], (Kind::Float, device))),
                    b: var(i, "bias", Tensor::zeros([channels], (Kind::Float, device))),
                    mean: (p / i).zeros_no_train("running_mean", &[members * channels]),
                    var: (p / i).ones_no_train("running_var", &[members * channels]),
                },
                Layer::Relu => Built::Relu,
                Layer::MaxPool => {
                    side = (side.0 / 2, side.1 / 2);
                    Built::MaxPool
                }
                Layer::Dropout(rate) => Built::Dropout(rate),
                Layer::Flatten => {
                    features = channels * side.0 * side.1;
                    Built::Flatten
                }
                Layer::Linear(out) => {
                    let w = var(i, "weight", uniform(&[out, features], features, device));
                    let b = var(i, "bias", uniform(&[out], features, device));
                    features = out;
                    Built::Linear { w, b }
                }
            });
        }
        Net {
            members,
            layers,
            compute: None,
        }
    }

    /// The same network computing in `precision` (bf16: weights cast per pass, logits float32).
    pub fn with_precision(mut self, precision: Precision) -> Net {
        self.compute = match precision {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(Kind::BFloat16),
        };
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
        let cast = |t: Tensor| if t.kind() == kind { t } else { t.to_kind(kind) };
        let x = x.to_kind(kind);
        let mut x = if k > 1 { x.repeat([1, k, 1, 1]) } else { x };
        for layer in &self.layers {
            x = match layer {
                Built::Conv { w, b } => {
                    let s = w.size();
                    let weight = cast(w.reshape([k * s[1], s[2], s[3], s[4]]));
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
            };
        }
        if self.compute.is_some() {
            x.to_kind(Kind::Float)
        } else {
            x
        }
    }
}

/// Number of trainable parameters of one `kind` network on `dataset`.
pub fn parameter_count(kind: ModelKind, dataset: DatasetKind) -> i64 {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let _ = Net::new(kind, &vs.root(), dataset, 1);
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}
