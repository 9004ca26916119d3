//! Training batches drawn, augmented and normalised on the device, a whole batch at a time: images
//! are cropped and flipped, text records cut to a random window of the model's context.
//!
//! The training subset stays on the device as uint8; each step costs a handful of kernels and no
//! host work. Every random draw comes from libtorch's generator, which a run seeds, so for a given
//! seed every genome sees the same subset, batch order and augmentations (common random numbers).
use super::Dataset;
use tch::{Kind, Tensor};

pub struct BatchStream<'a> {
    data: &'a Dataset,
    indices: Tensor,
    x: Tensor,
    y: Tensor,
    batch: i64,
    order: Tensor,
    cursor: i64,
    /// A text task's context: each record is cut to a random window this long.
    context: Option<i64>,
}

impl<'a> BatchStream<'a> {
    /// Draws a random training subset of `subset` images (all of them if larger) from the first
    /// `pool` training images of `data` (the rest are the validation split).
    pub fn new(data: &'a Dataset, pool: i64, subset: i64, batch: i64) -> BatchStream<'a> {
        let n = pool.min(data.train_y.size()[0]);
        let subset = subset.min(n);
        let idx = Tensor::randperm(n, (Kind::Int64, tch::Device::Cpu))
            .narrow(0, 0, subset)
            .to_device(data.train_x.device());
        let batch = batch.min(subset);
        BatchStream {
            data,
            x: data.train_x.index_select(0, &idx),
            y: data.train_y.index_select(0, &idx),
            indices: idx,
            batch,
            order: Tensor::zeros([0], (Kind::Int64, data.train_x.device())),
            cursor: subset,
            context: None,
        }
    }

    /// The same stream cutting text records to random windows of `context` tokens.
    pub fn with_context(mut self, context: Option<i64>) -> BatchStream<'a> {
        self.context = context;
        self
    }

    /// The subset's indices into the training set.
    pub fn indices(&self) -> &Tensor {
        &self.indices
    }

    /// The next `(input, labels)`; a new random order each pass, a partial last batch dropped
    /// (every step then has the same shape and cost).
    pub fn next_batch(&mut self) -> (Tensor, Tensor) {
        let n = self.y.size()[0];
        if self.cursor + self.batch > n {
            self.order = Tensor::randperm(n, (Kind::Int64, self.x.device()));
            self.cursor = 0;
        }
        let idx = self.order.narrow(0, self.cursor, self.batch);
        self.cursor += self.batch;
        if let Some(context) = self.context {
            let (x, y) = (self.x.index_select(0, &idx), self.y.index_select(0, &idx));
            let (x, y) = super::text::random_windows(&x, &y, context);
            return (x.to_kind(Kind::Int64), y.to_kind(Kind::Int64));
        }
        let x = self.x.index_select(0, &idx).to_kind(Kind::Float) / 255.0;
        let x = if self.data.kind.augment() {
            crop_and_flip(&x, 4)
        } else {
            x
        };
        (self.data.normalise_float(&x), self.y.index_select(0, &idx))
    }
}

/// Random crop back to the input size after zero padding by `pad`, and a random horizontal flip,
/// per image, for the whole batch at once (the torchvision `RandomCrop(pad) + RandomHorizontalFlip`).
pub fn crop_and_flip(x: &Tensor, pad: i64) -> Tensor {
    let (n, c, h, w) = x.size4().expect("a batch of images");
    let device = x.device();
    let padded = x.constant_pad_nd([pad, pad, pad, pad]);
    let span = 2 * pad + 1;
    let dy = Tensor::randint(span, [n], (Kind::Int64, device));
    let dx = Tensor::randint(span, [n], (Kind::Int64, device));
    let rows = (dy.unsqueeze(1) + Tensor::arange(h, (Kind::Int64, device)).unsqueeze(0))
        .view([n, 1, h, 1])
        .expand([n, c, h, w + 2 * pad], false);
    let cols = (dx.unsqueeze(1) + Tensor::arange(w, (Kind::Int64, device)).unsqueeze(0))
        .view([n, 1, 1, w])
        .expand([n, c, h, w], false);
    let cropped = padded.gather(2, &rows, false).gather(3, &cols, false);
    let flip = Tensor::rand([n], (Kind::Float, device))
        .lt(0.5)
        .view([n, 1, 1, 1]);
    cropped.flip([3]).where_self(&flip, &cropped)
}
