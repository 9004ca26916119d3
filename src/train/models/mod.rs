//! The networks candidates are trained on, by name, built for K members at once: the CNNs
//! (`cnn`) for images and gpt-tiny (`gpt`) for text. Every parameter has a leading member
//! dimension `[K, …]`, so the optimizer keeps all members in one `[K, P]` buffer.
pub mod cnn;
pub mod gpt;

use crate::train::data::DatasetKind;
use crate::train::Task;
pub use cnn::{convolutions, forward_flops, Cnn};
use serde::{Deserialize, Serialize};
use tch::{nn, Tensor};

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
    /// A small decoder-only transformer over bytes, for text tasks (`gpt::Gpt`; its size is
    /// the task's `transformer` section).
    GptTiny,
}

impl ModelKind {
    /// Whether the model reads byte tokens (a text dataset) rather than images.
    pub fn reads_text(self) -> bool {
        self == ModelKind::GptTiny
    }
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

/// How activations and convolution weights lie in memory. The values are the same either way;
/// the convolution kernels, and so the rounding, differ (`channels_last_equals_nchw_within_rounding`
/// bounds it). Channels-last (NHWC) is the layout oneDNN's and cuDNN's fastest convolutions take:
/// the evaluation bench measures what it gains.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layout {
    #[default]
    ChannelsLast,
    Nchw,
}

impl Layout {
    /// `t` (shaped `[N, C, H, W]`) with this layout's strides; the shape is unchanged.
    pub fn apply(self, t: Tensor) -> Tensor {
        match self {
            Layout::Nchw => t,
            Layout::ChannelsLast => t.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]),
        }
    }
}

/// K members of a task's network.
pub enum Net {
    Cnn(Cnn),
    Gpt(gpt::Gpt),
}

impl Net {
    /// The CNN `kind` on `dataset` for `members` members (see `Cnn::new`).
    pub fn new(kind: ModelKind, p: &nn::Path, dataset: DatasetKind, members: i64) -> Net {
        Net::Cnn(Cnn::new(kind, p, dataset, members))
    }

    /// `task`'s network for `members` members, in its precision and layout.
    pub fn for_task(task: &Task, p: &nn::Path, members: i64) -> Net {
        match task.model {
            ModelKind::GptTiny => {
                Net::Gpt(gpt::Gpt::new(task.transformer, p, members).with_precision(task.precision))
            }
            kind => Net::Cnn(
                Cnn::new(kind, p, task.dataset, members)
                    .with_precision(task.precision)
                    .with_layout(task.layout),
            ),
        }
    }

    /// Logits `[K, M, classes]` for a batch of `M` labels: images `[N, C, H, W]` (M = N) or
    /// tokens `[N, T]` (M = N·T), every member reading the same input.
    pub fn forward(&self, x: &Tensor, train: bool) -> Tensor {
        match self {
            Net::Cnn(net) => net.forward(x, train),
            Net::Gpt(net) => net.forward(x),
        }
    }
}

/// Number of trainable parameters of one `kind` network on `dataset` (a gpt-tiny of the
/// default shape).
pub fn parameter_count(kind: ModelKind, dataset: DatasetKind) -> i64 {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let _ = match kind {
        ModelKind::GptTiny => Net::Gpt(gpt::Gpt::new(gpt::Shape::default(), &vs.root(), 1)),
        _ => Net::new(kind, &vs.root(), dataset, 1),
    };
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}
