//! gpt-tiny: a small decoder-only transformer over bytes, built for K members at once.
//!
//! Radford et al. 2019, "Language Models are Unsupervised Multitask Learners" (GPT-2): token and
//! learned position embeddings, pre-LayerNorm blocks of causal self-attention and a GELU MLP
//! (4× wide), a final LayerNorm and a linear head, GPT-2's initialisation (N(0, 0.02), the
//! residual projections scaled by 1/√(2·depth)). No dropout, so stacked members equal separate
//! runs. Like the CNNs, every parameter has a leading member dimension `[K, …]` and every member
//! starts from the weights one model gets from the same seed.
use super::Precision;
use crate::train::data::text::BLOCK;
use serde::{Deserialize, Serialize};
use tch::{nn, Kind, Tensor};

/// Byte-level tokens.
pub const VOCABULARY: i64 = 256;

/// The size of a `gpt-tiny`: part of its task, and so of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shape {
    /// Tokens the model reads at once (each training window is a random crop of a record).
    pub context: i64,
    /// The residual stream's width.
    pub width: i64,
    /// Transformer blocks.
    pub depth: i64,
    /// Attention heads; `width` must be a multiple of it.
    pub heads: i64,
}

impl Default for Shape {
    fn default() -> Shape {
        Shape {
            context: 64,
            width: 128,
            depth: 2,
            heads: 4,
        }
    }
}

impl Shape {
    /// Sizes a model can be built with; the message names the field and what is allowed.
    pub fn check(&self) -> std::result::Result<(), String> {
        let Shape {
            context,
            width,
            depth,
            heads,
        } = *self;
        if !(1..=BLOCK).contains(&context) {
            return Err(format!(
                "`context`: {context}; allowed: 1..={BLOCK} (a record's tokens)"
            ));
        }
        if !(1..=64).contains(&depth) {
            return Err(format!("`depth`: {depth}; allowed: 1..=64"));
        }
        if !(1..=4096).contains(&width) || heads < 1 || width % heads != 0 {
            return Err(format!("`width` {width} and `heads` {heads}: allowed: width 1..=4096, heads ≥ 1 dividing width"));
        }
        Ok(())
    }
}

/// One layer of the architecture.
#[derive(Clone, Copy, Debug)]
enum Layer {
    /// Token and learned position embeddings, summed.
    Embedding,
    /// `x + attention(LN(x))`, then `x + MLP(LN(x))`.
    Block,
    /// The final LayerNorm.
    FinalNorm,
    /// Linear to the vocabulary's logits.
    Head,
}

fn architecture(shape: Shape) -> Vec<Layer> {
    let blocks = std::iter::repeat_n(Layer::Block, shape.depth as usize);
    std::iter::once(Layer::Embedding)
        .chain(blocks)
        .chain([Layer::FinalNorm, Layer::Head])
        .collect()
}

/// A linear layer of K members: weight `[K, out, in]`, bias `[K, out]`.
struct Linear {
    w: Tensor,
    b: Tensor,
}

/// A LayerNorm of K members: gain and bias `[K, width]`.
struct Norm {
    w: Tensor,
    b: Tensor,
}

enum Built {
    Embedding {
        tokens: Tensor,
        positions: Tensor,
    },
    Block {
        ln1: Norm,
        qkv: Linear,
        proj: Linear,
        ln2: Norm,
        fc: Linear,
        out: Linear,
    },
    FinalNorm(Norm),
    Head(Linear),
}

/// K gpt-tiny members trained side by side on the same windows.
pub struct Gpt {
    members: i64,
    shape: Shape,
    layers: Vec<Built>,
    compute: Option<Kind>,
}

impl Gpt {
    /// Builds `shape` for `members` members under `p`; initial weights are drawn once, for one
    /// member, in layer order, and copied to every member.
    pub fn new(shape: Shape, p: &nn::Path, members: i64) -> Gpt {
        let device = p.device();
        let var = |layer: usize, name: &str, init: Tensor| {
            let mut size = vec![members];
            size.extend(init.size());
            (p / layer).var_copy(name, &init.unsqueeze(0).expand(size, false).contiguous())
        };
        let normal = |size: &[i64], std: f64| Tensor::randn(size, (Kind::Float, device)) * std;
        let zeros = |size: &[i64]| Tensor::zeros(size, (Kind::Float, device));
        let d = shape.width;
        let residual_std = 0.02 / (2.0 * shape.depth as f64).sqrt();
        let linear = |layer: usize, name: &str, out: i64, input: i64, std: f64| Linear {
            w: var(layer, &format!("{name}_weight"), normal(&[out, input], std)),
            b: var(layer, &format!("{name}_bias"), zeros(&[out])),
        };
        let norm = |layer: usize, name: &str| Norm {
            w: var(
                layer,
                &format!("{name}_weight"),
                Tensor::ones([d], (Kind::Float, device)),
            ),
            b: var(layer, &format!("{name}_bias"), zeros(&[d])),
        };
        let layers = architecture(shape)
            .into_iter()
            .enumerate()
            .map(|(i, layer)| match layer {
                Layer::Embedding => Built::Embedding {
                    tokens: var(i, "tokens", normal(&[VOCABULARY, d], 0.02)),
                    positions: var(i, "positions", normal(&[shape.context, d], 0.02)),
                },
                Layer::Block => Built::Block {
                    ln1: norm(i, "ln1"),
                    qkv: linear(i, "qkv", 3 * d, d, 0.02),
                    proj: linear(i, "proj", d, d, residual_std),
                    ln2: norm(i, "ln2"),
                    fc: linear(i, "fc", 4 * d, d, 0.02),
                    out: linear(i, "out", d, 4 * d, residual_std),
                },
                Layer::FinalNorm => Built::FinalNorm(norm(i, "ln")),
                Layer::Head => Built::Head(linear(i, "head", VOCABULARY, d, 0.02)),
            })
            .collect();
        Gpt {
            members,
            shape,
            layers,
            compute: None,
        }
    }

    /// The same model computing in `precision` (bf16: weights cast per pass, logits float32).
    pub fn with_precision(mut self, precision: Precision) -> Gpt {
        self.compute = (precision == Precision::Bf16).then_some(Kind::BFloat16);
        self
    }

    /// Logits `[K, N·T, 256]` for tokens `[N, T]` (int64, T ≤ the context), every member
    /// reading the same tokens.
    pub fn forward(&self, tokens: &Tensor) -> Tensor {
        let (n, t) = tokens.size2().expect("tokens [N, T]");
        let mut x = Tensor::zeros([0], (Kind::Float, tokens.device()));
        for layer in &self.layers {
            x = self.layer(layer, x, tokens, n, t);
        }
        match self.compute {
            Some(_) => x.to_kind(Kind::Float),
            None => x,
        }
    }

    /// One layer over the members' residual stream `x` (`[K, N·T, width]`).
    fn layer(&self, layer: &Built, x: Tensor, tokens: &Tensor, n: i64, t: i64) -> Tensor {
        match layer {
            Built::Embedding {
                tokens: e,
                positions,
            } => {
                let k = self.members;
                let d = self.shape.width;
                let tok = e.index_select(1, &tokens.reshape([-1])).view([k, n, t, d]);
                let pos = positions.narrow(1, 0, t).unsqueeze(1);
                let x = (tok + pos).view([k, n * t, d]);
                self.compute
                    .map_or(x.shallow_clone(), |kind| x.to_kind(kind))
            }
            Built::Block {
                ln1,
                qkv,
                proj,
                ln2,
                fc,
                out,
            } => {
                let a = self.attention(&self.linear(qkv, &self.norm(ln1, &x)), n, t);
                let x = x + self.linear(proj, &a);
                let h = self.linear(fc, &self.norm(ln2, &x)).gelu("none");
                &x + self.linear(out, &h)
            }
            Built::FinalNorm(norm) => self.norm(norm, &x),
            Built::Head(head) => self.linear(head, &x),
        }
    }

    /// Causal multi-head self-attention from the packed `[K, N·T, 3·width]` projections.
    fn attention(&self, qkv: &Tensor, n: i64, t: i64) -> Tensor {
        let (k, h, d) = (self.members, self.shape.heads, self.shape.width);
        let heads = qkv
            .view([k, n, t, 3, h, d / h])
            .permute([3, 0, 1, 4, 2, 5])
            .reshape([3, k * n, h, t, d / h]);
        let (q, key, v) = (heads.get(0), heads.get(1), heads.get(2));
        Tensor::scaled_dot_product_attention(&q, &key, &v, None::<Tensor>, 0.0, true, None, false)
            .view([k, n, h, t, d / h])
            .permute([0, 1, 3, 2, 4])
            .reshape([k, n * t, d])
    }

    fn cast(&self, w: &Tensor) -> Tensor {
        match self.compute {
            Some(kind) if w.kind() != kind => w.to_kind(kind),
            _ => w.shallow_clone(),
        }
    }

    /// `x @ wᵀ + b` for every member; one member takes a plain gemm (a batched gemm of one is
    /// slower on CPU), as the CNNs do.
    fn linear(&self, l: &Linear, x: &Tensor) -> Tensor {
        let (w, b) = (self.cast(&l.w), self.cast(&l.b));
        match self.members {
            1 => x.get(0).linear(&w.get(0), Some(b.get(0))).unsqueeze(0),
            _ => b.unsqueeze(1).baddbmm(x, &w.transpose(1, 2), 1.0, 1.0),
        }
    }

    /// LayerNorm over the width with each member's own gain and bias (the same arithmetic for
    /// one member as for many).
    fn norm(&self, l: &Norm, x: &Tensor) -> Tensor {
        let normed = x.layer_norm(
            [self.shape.width],
            None::<Tensor>,
            None::<Tensor>,
            1e-5,
            true,
        );
        normed * self.cast(&l.w).unsqueeze(1) + self.cast(&l.b).unsqueeze(1)
    }
}

/// Floating-point operations of one window's forward pass (a multiply-add counts two): the
/// matrix products of every layer and the attention scores and sums.
pub fn forward_flops(shape: Shape) -> f64 {
    let (t, d) = (shape.context as f64, shape.width as f64);
    let per_block = 2.0 * t * (12.0 * d * d) + 2.0 * 2.0 * t * t * d;
    shape.depth as f64 * per_block + 2.0 * t * d * VOCABULARY as f64
}
