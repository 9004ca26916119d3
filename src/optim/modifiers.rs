//! Modifiers that wrap the summed direction: RAdam rectification, per-tensor norms for the
//! LAMB trust ratio and DiffGrad friction. Lookahead lives in the engine (it touches the weights).
use tch::Tensor;

/// RAdam's rectification for step number `t` (from 1), in the Eve library's form: `Some(r_t)`
/// (already divided by `1−β1^t`) when the variance is tractable (`N_t ≥ 5`), else `None`, in which
/// case the step is plain momentum `m/(1−β1^t)`.
pub fn radam_rectifier(beta1: f64, beta2: f64, t: f64) -> Option<f64> {
    let n_max = 2.0 / (1.0 - beta2) - 1.0;
    let b2t = beta2.powf(t);
    let n_t = n_max - 2.0 * t * b2t / (1.0 - b2t);
    if n_t < 5.0 {
        return None;
    }
    let r = ((1.0 - b2t) * (n_t - 4.0) / (n_max - 4.0) * (n_t - 2.0) / n_t * n_max / (n_max - 2.0))
        .sqrt();
    Some(r / (1.0 - beta1.powf(t)))
}

/// The parameter tensors laid end to end in each member's row of a `[K, P]` buffer, for the
/// per-tensor reductions of trust ratio and DiffGrad. Each norm is one fused reduction per tensor
/// over all members at once (a model has a dozen or two tensors). `segment_reduce` would be a
/// single kernel, but its CUDA kernel sums each segment on one thread, in sequence over the
/// millions of elements of a linear layer (the README's benchmarks give the cost).
pub struct Segments {
    /// Each tensor's `(start, length)` within a row.
    bounds: Vec<(i64, i64)>,
    /// `[n]`: the lengths again, on the device, for `expand`.
    lengths: Tensor,
    total: i64,
}

impl Segments {
    pub fn new(numels: &[i64], device: tch::Device) -> Segments {
        let starts = numels.iter().scan(0, |start, &n| {
            *start += n;
            Some(*start - n)
        });
        Segments {
            bounds: starts.zip(numels.iter().copied()).collect(),
            lengths: Tensor::from_slice(numels).to_device(device),
            total: numels.iter().sum(),
        }
    }

    /// ‖x‖₂ of each tensor's slice of each row of `x` (`[K, P]` → `[K, n]`).
    pub fn norms(&self, x: &Tensor) -> Tensor {
        let norms: Vec<Tensor> = self
            .bounds
            .iter()
            .map(|&(start, len)| x.narrow(1, start, len).norm_scalaropt_dim(2.0, [1], false))
            .collect();
        Tensor::stack(&norms, 1)
    }

    /// Broadcasts one value per tensor back over the rows (`[K, n]` → `[K, P]`).
    pub fn expand(&self, per_tensor: &Tensor) -> Tensor {
        per_tensor.repeat_interleave_self_tensor(&self.lengths, 1, self.total)
    }
}

/// LAMB trust ratio as the Eve library writes it: `min(‖w‖, 10) / ‖w_d − η·s‖`, 1 where either
/// norm is 0. `w_norm` is taken before weight decay, `update_norm` after it.
pub fn trust_ratio(w_norm: &Tensor, update_norm: &Tensor) -> Tensor {
    let ratio = w_norm.clamp_max(10.0) / update_norm;
    let usable = w_norm.gt(0.0).logical_and(&update_norm.gt(0.0));
    ratio.where_self(&usable, &ratio.ones_like())
}

/// DiffGrad friction, one scalar per tensor: `sigmoid(‖g_prev − g‖₂)`.
pub fn diffgrad_friction(diff_norm: &Tensor) -> Tensor {
    diff_norm.sigmoid()
}
