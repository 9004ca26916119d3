//! The update-rule engine: applies a genome to the trainable tensors of a `VarStore` in place.
//!
//! All parameters are re-pointed into one flat buffer (each variable becomes a view of it), so a
//! step is a fixed handful of whole-buffer kernels whatever the number of tensors: gather the
//! gradients (one `cat`), update the moments, sum the terms, apply modifiers, write the weights.
//! The order follows the published code: clip g, decay weights, update m and v, then `w ← w − Δw`.
pub mod modifiers;
pub mod schedule;

use crate::genome::{Genome, TermKind};
use modifiers::Segments;
use tch::{nn::VarStore, Tensor};

/// The running state of one optimizer over one model.
pub struct UpdateRule {
    genome: Genome,
    total_steps: u64,
    /// Steps taken so far.
    t: u64,
    params: Vec<Tensor>,
    /// Every trainable parameter, end to end; the variables are views into it.
    flat: Tensor,
    /// First moment `m` (when a term reads it).
    m: Option<Tensor>,
    /// Second moment `v` (when a term reads it).
    v: Option<Tensor>,
    /// Lion's own momentum.
    lion_m: Option<Tensor>,
    /// DiffGrad's previous gradient.
    prev_grad: Option<Tensor>,
    /// Lookahead's slow weights.
    slow: Option<Tensor>,
    /// Tensor boundaries in `flat`, for per-tensor modifiers.
    segments: Option<Segments>,
}

impl UpdateRule {
    /// Takes over the trainable variables of `vs` for a run of `total_steps` steps (cosine decay
    /// and sign decay need the run length). The genome is used in canonical form.
    pub fn new(genome: &Genome, vs: &VarStore, total_steps: u64) -> UpdateRule {
        let genome = genome.canonical();
        let params = vs.trainable_variables();
        let flat = Tensor::cat(
            &params
                .iter()
                .map(|p| p.detach().reshape(-1))
                .collect::<Vec<_>>(),
            0,
        );
        let mut numels = Vec::with_capacity(params.len());
        let mut offset = 0;
        for p in &params {
            let n = p.numel() as i64;
            let view = flat.narrow(0, offset, n).view(p.size().as_slice());
            p.shallow_clone().set_data(&view);
            numels.push(n);
            offset += n;
        }
        let zeros = || Some(flat.zeros_like());
        let per_tensor = genome.trust_ratio || genome.diffgrad;
        UpdateRule {
            m: if genome.needs_m() { zeros() } else { None },
            v: if genome.needs_v() { zeros() } else { None },
            lion_m: if genome.has(TermKind::Lion) {
                zeros()
            } else {
                None
            },
            prev_grad: if genome.diffgrad { zeros() } else { None },
            slow: genome.lookahead.map(|_| flat.copy()),
            segments: per_tensor.then(|| Segments::new(&numels, flat.device())),
            genome,
            total_steps,
            t: 0,
            params,
            flat,
        }
    }

    /// Steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.t
    }

    /// All trainable parameters as one flat tensor (a view: do not write to it).
    pub fn flat_params(&self) -> &Tensor {
        &self.flat
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    /// One optimizer step from the gradients now stored on the parameters.
    pub fn step(&mut self) {
        let _no_grad = tch::no_grad_guard();
        let g = &self.genome;
        let s = self.t;
        let lr = schedule::learning_rate(g, s, self.total_steps);

        let mut grad = self.flat_grad();
        if let Some(c) = g.grad_clip {
            let _ = grad.clamp_(-c, c);
        }
        let w_norm = match (&self.segments, g.trust_ratio) {
            (Some(seg), true) => Some(seg.norms(&self.flat)),
            _ => None,
        };
        if g.weight_decay > 0.0 {
            let _ = self.flat.g_mul_scalar_(1.0 - lr * g.weight_decay);
        }
        self.update_moments(&grad);
        let direction = self.direction(&grad, s);

        // Per-tensor multipliers ξ (DiffGrad) and φ (trust ratio), when asked for.
        let mut per_tensor: Option<Tensor> = None;
        if let (Some(prev), Some(seg)) = (&mut self.prev_grad, &self.segments) {
            per_tensor = Some(modifiers::diffgrad_friction(&seg.norms(&(&*prev - &grad))));
            prev.copy_(&grad);
        }
        if let (Some(w_norm), Some(seg)) = (&w_norm, &self.segments) {
            let update_norm = seg.norms(&(&self.flat - &direction * lr));
            let phi = modifiers::trust_ratio(w_norm, &update_norm);
            per_tensor = Some(match per_tensor {
                Some(xi) => xi * phi,
                None => phi,
            });
        }
        let step = match (&per_tensor, &self.segments) {
            (Some(scale), Some(seg)) => direction * lr * seg.expand(scale),
            _ => direction * lr,
        };
        let _ = self.flat.g_sub_(&step);

        if let (Some(la), Some(slow)) = (self.genome.lookahead, &mut self.slow) {
            if (s + 1).is_multiple_of(la.k) {
                let _ = slow.lerp_(&self.flat, la.alpha);
                self.flat.copy_(slow);
            }
        }
        self.t += 1;
    }

    /// The gradients of all parameters as one flat tensor (zeros where a parameter got none).
    fn flat_grad(&self) -> Tensor {
        let parts: Vec<Tensor> = self
            .params
            .iter()
            .map(|p| {
                let grad = p.grad();
                if grad.defined() {
                    grad.reshape(-1)
                } else {
                    p.detach().zeros_like().reshape(-1)
                }
            })
            .collect();
        Tensor::cat(&parts, 0)
    }

    /// `m ← β1·m + (1−β1)·g` (or `m = g`), `v ← β2·v + (1−β2)·g²` (or `v = g²`).
    fn update_moments(&mut self, grad: &Tensor) {
        let g = &self.genome;
        if let Some(m) = &mut self.m {
            if g.use_m {
                let _ = m.lerp_(grad, 1.0 - g.beta1);
            } else {
                m.copy_(grad);
            }
        }
        if let Some(v) = &mut self.v {
            if g.use_v {
                let _ = v.g_mul_scalar_(g.beta2);
                let _ = v.addcmul_(&(grad * (1.0 - g.beta2)), grad);
            } else {
                v.copy_(&grad.square());
            }
        }
    }

    /// `Σ_k weight_k · T_k`, each term computed once (the genome is canonical: one entry per kind).
    fn direction(&mut self, grad: &Tensor, s: u64) -> Tensor {
        let g = &self.genome;
        let t = (s + 1) as f64;
        let (bc1, bc2) = if g.bias_correction {
            (1.0 - g.beta1.powf(t), 1.0 - g.beta2.powf(t))
        } else {
            (1.0, 1.0)
        };
        // √v̂ + ε, written as PyTorch's Adam writes it: √v / √(1−β2^t) + ε.
        let denom = self.v.as_ref().map(|v| v.sqrt() / bc2.sqrt() + g.eps);
        let m = self.m.as_ref();
        let m_hat = |w: f64| m.expect("m kept for this term") * (w / bc1);
        let d_t = schedule::sign_decay(g.sign_decay, s, self.total_steps);

        let mut total: Option<Tensor> = None;
        for term in &g.terms {
            let w = term.weight;
            let contribution = match term.kind {
                TermKind::Gradient => grad * w,
                TermKind::Momentum => m_hat(w),
                TermKind::RmsNorm => grad / denom.as_ref().expect("v kept") * w,
                TermKind::Adam => {
                    let m = m.expect("m kept");
                    if g.radam {
                        match modifiers::radam_rectifier(g.beta1, g.beta2, t) {
                            Some(r) => {
                                m / (self.v.as_ref().expect("v kept").sqrt() + g.eps) * (w * r)
                            }
                            None => m * (w / (1.0 - g.beta1.powf(t))),
                        }
                    } else {
                        m / denom.as_ref().expect("v kept") * (w / bc1)
                    }
                }
                TermKind::Sign => grad.sign() * w,
                TermKind::Unit => grad / (grad.abs() + g.eps) * w,
                TermKind::Nesterov => m_hat(0.1 * w) + grad * (0.9 * w),
                TermKind::SignMomentum => m.expect("m kept").sign() * w,
                TermKind::Lion => {
                    let lion_m = self.lion_m.as_mut().expect("lion state kept");
                    let c = lion_m.lerp(grad, 1.0 - g.beta1).sign() * w;
                    let _ = lion_m.lerp_(grad, 1.0 - g.beta2);
                    c
                }
                // sign(g)·g = |g|, so (1 + d·sign(g)·sign(m))·g = g + d·|g|·sign(m).
                TermKind::AddSign => (grad + grad.abs() * m.expect("m kept").sign() * d_t) * w,
                TermKind::PowerSign => {
                    (grad.sign() * m.expect("m kept").sign() * d_t).exp() * grad * w
                }
            };
            total = Some(match total {
                Some(acc) => acc + contribution,
                None => contribution,
            });
        }
        total.expect("a validated genome has at least one term")
    }
}
