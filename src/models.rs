//! The networks candidates are trained on, by name.
use crate::data::DatasetKind;
use serde::{Deserialize, Serialize};
use tch::nn;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// The published CIFAR-10 CNN: two blocks of [conv3×3, BN, ReLU, conv3×3, ReLU, maxpool 2,
    /// dropout .25] with 32 then 64 channels, then linear →512, ReLU, dropout .5, linear 512→10.
    MarfinetzCnn,
    /// The published MNIST CNN: conv 32, pool, conv 64, pool, linear →256, dropout .3, linear →10.
    MnistCnn,
    /// Small enough for CPU tests and the quick config: conv 16, BN, ReLU, pool, conv 32, ReLU,
    /// pool, linear →10. No dropout, so runs are easy to compare.
    TinyCnn,
}

fn conv(p: nn::Path, cin: i64, cout: i64) -> nn::Conv2D {
    nn::conv2d(
        p,
        cin,
        cout,
        3,
        nn::ConvConfig {
            padding: 1,
            ..Default::default()
        },
    )
}

/// Builds `kind` for images of `dataset` under the var-store path `p`.
pub fn build(kind: ModelKind, p: &nn::Path, dataset: DatasetKind) -> nn::SequentialT {
    let (c, h, w) = dataset.image_shape();
    let classes = dataset.num_classes();
    let pooled = (h / 4) * (w / 4);
    match kind {
        ModelKind::MarfinetzCnn => {
            let block = |seq: nn::SequentialT, name: &str, cin: i64, cout: i64| {
                let p = p / name;
                seq.add(conv(&p / "conv1", cin, cout))
                    .add(nn::batch_norm2d(&p / "bn", cout, Default::default()))
                    .add_fn(|x| x.relu())
                    .add(conv(&p / "conv2", cout, cout))
                    .add_fn(|x| x.relu().max_pool2d_default(2))
                    .add_fn_t(|x, train| x.dropout(0.25, train))
            };
            let seq = block(nn::seq_t(), "block1", c, 32);
            block(seq, "block2", 32, 64)
                .add_fn(|x| x.flatten(1, -1))
                .add(nn::linear(p / "fc1", 64 * pooled, 512, Default::default()))
                .add_fn(|x| x.relu())
                .add_fn_t(|x, train| x.dropout(0.5, train))
                .add(nn::linear(p / "fc2", 512, classes, Default::default()))
        }
        ModelKind::MnistCnn => nn::seq_t()
            .add(conv(p / "conv1", c, 32))
            .add_fn(|x| x.relu().max_pool2d_default(2))
            .add(conv(p / "conv2", 32, 64))
            .add_fn(|x| x.relu().max_pool2d_default(2).flatten(1, -1))
            .add(nn::linear(p / "fc1", 64 * pooled, 256, Default::default()))
            .add_fn(|x| x.relu())
            .add_fn_t(|x, train| x.dropout(0.3, train))
            .add(nn::linear(p / "fc2", 256, classes, Default::default())),
        ModelKind::TinyCnn => nn::seq_t()
            .add(conv(p / "conv1", c, 16))
            .add(nn::batch_norm2d(p / "bn", 16, Default::default()))
            .add_fn(|x| x.relu().max_pool2d_default(2))
            .add(conv(p / "conv2", 16, 32))
            .add_fn(|x| x.relu().max_pool2d_default(2).flatten(1, -1))
            .add(nn::linear(
                p / "fc",
                32 * pooled,
                classes,
                Default::default(),
            )),
    }
}

/// Number of trainable parameters of `kind` on `dataset`.
pub fn parameter_count(kind: ModelKind, dataset: DatasetKind) -> i64 {
    let vs = nn::VarStore::new(tch::Device::Cpu);
    let _ = build(kind, &vs.root(), dataset);
    vs.trainable_variables()
        .iter()
        .map(|t| t.numel() as i64)
        .sum()
}
