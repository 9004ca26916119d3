//! The update-rule engine: applies genomes to the trainable tensors of a `VarStore` in place.
//!
//! All parameters are re-pointed into one flat buffer of shape `[K, P]` (each variable becomes a
//! view of it): K members, each with P parameters and its own genome. Every per-member number
//! (learning rate, β, term weights, flags) is a `[K, 1]` column that broadcasts over the buffer,
//! so a step is a fixed handful of whole-buffer kernels whatever the number of tensors or members:
//! gather the gradients (one `cat`), update the moments, sum the terms, apply modifiers, write the
//! weights. A single optimizer is K = 1. The order follows the published code: clip g, decay
//! weights, update m and v, then `w ← w − Δw`, then Lookahead.
pub mod modifiers;
pub mod schedule;

use crate::genome::terms::{Inputs, Member};
use crate::genome::{Genome, TermKind};
use modifiers::Segments;
use tch::{nn::VarStore, Tensor};

/// The running state of K optimizers over K stacked models (or one over one).
pub struct UpdateRule {
    /// One canonical genome per member.
    genomes: Vec<Genome>,
    total_steps: u64,
    /// Steps taken so far.
    t: u64,
    params: Vec<Tensor>,
    /// Every trainable parameter, `[K, P]`; the variables are views into it.
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
    /// Tensor boundaries in each member's row, for per-tensor modifiers.
    segments: Option<Segments>,
}

/// Per-step, per-member numbers, built on the host and sent to the device in one copy.
struct Columns {
    k: usize,
    values: Vec<f64>,
}

impl Columns {
    /// Adds a column (one value per member) and returns its row index.
    fn push(&mut self, values: impl IntoIterator<Item = f64>) -> usize {
        let before = self.values.len();
        self.values.extend(values);
        assert_eq!(self.values.len() - before, self.k, "one value per member");
        before / self.k
    }

    /// All columns as one tensor `[rows, K, 1]` on `like`'s device and kind.
    fn upload(&self, like: &Tensor) -> Tensor {
        Tensor::from_slice(&self.values)
            .view([-1, self.k as i64, 1])
            .to_kind(like.kind())
            .to_device(like.device())
    }
}

impl UpdateRule {
    /// One optimizer over the trainable variables of `vs`, for a run of `total_steps` steps
    /// (cosine decay and sign decay need the run length). The genome is used in canonical form.
    pub fn new(genome: &Genome, vs: &VarStore, total_steps: u64) -> UpdateRule {
        UpdateRule::stacked(std::slice::from_ref(genome), vs, total_steps)
    }

    /// K optimizers over a K-member model: every trainable variable has a leading dimension K,
    /// and member k's slice is updated by `genomes[k]`.
    pub fn stacked(genomes: &[Genome], vs: &VarStore, total_steps: u64) -> UpdateRule {
        let k = genomes.len() as i64;
        let genomes: Vec<Genome> = genomes.iter().map(Genome::canonical).collect();
        let params = vs.trainable_variables();
        for p in &params {
            assert!(
                k == 1 || p.size().first() == Some(&k),
                "a stacked model's variables lead with the member dimension {k}, got {:?}",
                p.size()
            );
        }
        let flat = Tensor::cat(
            &params
                .iter()
                .map(|p| p.detach().reshape([k, -1]))
                .collect::<Vec<_>>(),
            1,
        );
        let mut numels = Vec::with_capacity(params.len());
        let mut offset = 0;
        for p in &params {
            let n = p.numel() as i64 / k;
            p.shallow_clone()
                .set_data(&flat.narrow(1, offset, n).view(p.size().as_slice()));
            numels.push(n);
            offset += n;
        }
        let any = |f: &dyn Fn(&Genome) -> bool| genomes.iter().any(f);
        let zeros = || Some(flat.zeros_like());
        UpdateRule {
            m: if any(&|g| g.needs_m()) { zeros() } else { None },
            v: if any(&|g| g.needs_v()) { zeros() } else { None },
            lion_m: if any(&|g| g.has(TermKind::Lion)) {
                zeros()
            } else {
                None
            },
            prev_grad: if any(&|g| g.diffgrad) { zeros() } else { None },
            slow: if any(&|g| g.lookahead.is_some()) {
                Some(flat.copy())
            } else {
                None
            },
            segments: any(&|g| g.trust_ratio || g.diffgrad)
                .then(|| Segments::new(&numels, flat.device())),
            genomes,
            total_steps,
            t: 0,
            params,
            flat,
        }
    }

    pub fn zero_grad(&mut self) {
        for p in &mut self.params {
            p.zero_grad();
        }
    }

    fn any(&self, f: impl Fn(&Genome) -> bool) -> bool {
        self.genomes.iter().any(f)
    }

    /// A column of one value per member.
    fn per_member(&self, f: impl Fn(&Genome) -> f64) -> Vec<f64> {
        self.genomes.iter().map(f).collect()
    }

    /// One optimizer step from the gradients now stored on the parameters: columns → clip →
    /// decay → moments → direction → per-tensor modifiers → apply → Lookahead.
    pub fn step(&mut self) {
        let _no_grad = tch::no_grad_guard();
        let cols = self.columns();
        let c = |i: usize| cols.values.get(i as i64);

        let mut grad = self.flat_grad();
        if self.any(|g| g.grad_clip.is_some()) {
            grad = grad.minimum(&c(cols.clip)).maximum(&-c(cols.clip));
        }
        let w_norm = match (&self.segments, self.any(|g| g.trust_ratio)) {
            (Some(seg), true) => Some(seg.norms(&self.flat)),
            _ => None,
        };
        if self.any(|g| g.weight_decay > 0.0) {
            let _ = self.flat.g_mul_(&c(cols.decay));
        }
        self.moments(&grad, &cols);
        let direction = self.direction(&grad, &cols.terms, &c);
        let step = match self.per_tensor_scale(&grad, &direction, w_norm.as_ref(), &cols) {
            Some((scale, seg)) => direction * c(cols.lr) * seg.expand(&scale),
            None => direction * c(cols.lr),
        };
        let _ = self.flat.g_sub_(&step);
        self.lookahead(&cols);
        self.t += 1;
    }

    /// Every per-member number this step needs, in one upload.
    fn columns(&self) -> StepColumns {
        let s = self.t;
        let t = (s + 1) as f64;
        let lr = self.per_member(|g| schedule::learning_rate(g, s, self.total_steps));
        let mut cols = Columns {
            k: self.genomes.len(),
            values: Vec::new(),
        };
        let c_lr = cols.push(lr.clone());
        let clip = cols.push(self.per_member(|g| g.grad_clip.unwrap_or(f64::INFINITY)));
        let decay = cols.push(
            self.genomes
                .iter()
                .zip(&lr)
                .map(|(g, lr)| 1.0 - lr * g.weight_decay),
        );
        let m = cols.push(self.per_member(|g| if g.use_m { 1.0 - g.beta1 } else { 1.0 }));
        let v_keep = cols.push(self.per_member(|g| if g.use_v { g.beta2 } else { 0.0 }));
        let v_new = cols.push(self.per_member(|g| if g.use_v { 1.0 - g.beta2 } else { 1.0 }));
        let trust = cols.push(self.per_member(|g| g.trust_ratio as u8 as f64));
        let diffgrad = cols.push(self.per_member(|g| g.diffgrad as u8 as f64));
        let lookahead_now: Vec<f64> = self.per_member(|g| {
            g.lookahead
                .map_or(0.0, |la| ((s + 1).is_multiple_of(la.k)) as u8 as f64)
        });
        let la_alpha = cols.push(
            self.genomes
                .iter()
                .zip(&lookahead_now)
                .map(|(g, now)| g.lookahead.map_or(0.0, |la| la.alpha) * now),
        );
        let la_now = cols.push(lookahead_now.iter().copied());
        let terms = TermColumns::push(&mut cols, &self.genomes, t, s, self.total_steps);
        StepColumns {
            values: cols.upload(&self.flat),
            lr: c_lr,
            clip,
            decay,
            m,
            v_keep,
            v_new,
            trust,
            diffgrad,
            la_alpha,
            la_now,
            lookahead_due: lookahead_now.iter().any(|&now| now > 0.0),
            terms,
        }
    }

    /// `m ← β1·m + (1−β1)·g` and `v ← β2·v + (1−β2)·g²` (or `m = g`, `v = g²` for members that
    /// keep no moment).
    fn moments(&mut self, grad: &Tensor, cols: &StepColumns) {
        let c = |i: usize| cols.values.get(i as i64);
        if let Some(m) = &mut self.m {
            let _ = m.lerp_tensor_(grad, &c(cols.m));
        }
        if let Some(v) = &mut self.v {
            let _ = v.g_mul_(&c(cols.v_keep));
            let _ = v.addcmul_(&(grad * c(cols.v_new)), grad);
        }
    }

    /// The per-tensor multipliers ξ (DiffGrad) and φ (trust ratio), 1 for members without them,
    /// with the segments to expand them by; `None` when no member uses either.
    fn per_tensor_scale(
        &mut self,
        grad: &Tensor,
        direction: &Tensor,
        w_norm: Option<&Tensor>,
        cols: &StepColumns,
    ) -> Option<(Tensor, &Segments)> {
        let c = |i: usize| cols.values.get(i as i64);
        let seg = self.segments.as_ref()?;
        let mut per_tensor: Option<Tensor> = None;
        if let Some(prev) = &mut self.prev_grad {
            let xi = modifiers::diffgrad_friction(&seg.norms(&(&*prev - grad)));
            per_tensor = Some(xi.where_self(&c(cols.diffgrad).gt(0.5), &xi.ones_like()));
            prev.copy_(grad);
        }
        if let Some(w_norm) = w_norm {
            let update_norm = seg.norms(&(&self.flat - direction * c(cols.lr)));
            let phi = modifiers::trust_ratio(w_norm, &update_norm);
            let phi = phi.where_self(&c(cols.trust).gt(0.5), &phi.ones_like());
            per_tensor = Some(match per_tensor {
                Some(xi) => xi * phi,
                None => phi,
            });
        }
        per_tensor.map(|scale| (scale, seg))
    }

    /// Lookahead (Zhang et al. 2019): every k steps the slow weights move `α` of the way to the
    /// fast ones, and the fast ones restart from there (members due this step only).
    fn lookahead(&mut self, cols: &StepColumns) {
        let c = |i: usize| cols.values.get(i as i64);
        if let Some(slow) = &mut self.slow {
            if cols.lookahead_due {
                let _ = slow.lerp_tensor_(&self.flat, &c(cols.la_alpha));
                let merged = slow.where_self(&c(cols.la_now).gt(0.5), &self.flat);
                self.flat.copy_(&merged);
            }
        }
    }

    /// The gradients of all parameters as one `[K, P]` tensor (zeros where a parameter got none).
    fn flat_grad(&self) -> Tensor {
        let k = self.genomes.len() as i64;
        let parts: Vec<Tensor> = self
            .params
            .iter()
            .map(|p| {
                let grad = p.grad();
                if grad.defined() {
                    grad.reshape([k, -1])
                } else {
                    p.detach().zeros_like().reshape([k, -1])
                }
            })
            .collect();
        Tensor::cat(&parts, 1)
    }

    /// `Σ_k weight_k · T_k` for every member at once: each kind any member uses is computed once
    /// over the whole buffer by its declaration (`terms::TERMS`), weighted by columns that are 0
    /// for members without it.
    fn direction(
        &mut self,
        grad: &Tensor,
        terms: &TermColumns,
        c: &dyn Fn(usize) -> Tensor,
    ) -> Tensor {
        // √v̂ + ε, written as PyTorch's Adam writes it: √v / √(1−β2^t) + ε.
        let sqrt_v = self.v.as_ref().map(Tensor::sqrt);
        let denom = |divisor: usize| sqrt_v.as_ref().expect("v kept") / c(divisor) + c(terms.eps);
        let shared_denom = terms
            .kinds
            .iter()
            .any(|(kind, _)| kind.decl().denom)
            .then(|| denom(terms.sqrt_bc2));
        let adam_denom = terms
            .uses(TermKind::Adam)
            .then(|| denom(terms.adam_sqrt_bc2));
        let (eps, sign_decay) = (c(terms.eps), c(terms.sign_decay));
        let mut total: Option<Tensor> = None;
        for (kind, rows) in &terms.kinds {
            let mut inputs = Inputs {
                grad,
                m: self.m.as_ref(),
                lion_m: self.lion_m.as_mut(),
                denom: shared_denom.as_ref(),
                adam_denom: adam_denom.as_ref(),
                eps: &eps,
                sign_decay: &sign_decay,
                radam_momentum: terms.radam_momentum,
                columns: rows.iter().map(|&(name, row)| (name, c(row))).collect(),
            };
            let contribution = (kind.decl().tensor)(&mut inputs);
            total = Some(match total {
                Some(acc) => acc + contribution,
                None => contribution,
            });
        }
        total.expect("a validated genome has at least one term")
    }
}

/// The rows of one step's upload (`values`: `[rows, K, 1]`), by what they hold.
struct StepColumns {
    values: Tensor,
    lr: usize,
    clip: usize,
    decay: usize,
    m: usize,
    v_keep: usize,
    v_new: usize,
    trust: usize,
    diffgrad: usize,
    la_alpha: usize,
    la_now: usize,
    /// Whether some member's Lookahead syncs this step.
    lookahead_due: bool,
    terms: TermColumns,
}

/// The per-member columns of the terms: for each kind some member uses, its declared columns
/// (0-weighted for the others), plus the columns the terms share.
struct TermColumns {
    kinds: Vec<(TermKind, Vec<(&'static str, usize)>)>,
    eps: usize,
    sqrt_bc2: usize,
    /// √(1−β2^t) for the adam term; 1 for RAdam members (their rectifier carries the correction).
    adam_sqrt_bc2: usize,
    sign_decay: usize,
    /// Whether some RAdam member is still in its momentum phase this step.
    radam_momentum: bool,
}

impl TermColumns {
    fn push(
        cols: &mut Columns,
        genomes: &[Genome],
        t: f64,
        s: u64,
        total_steps: u64,
    ) -> TermColumns {
        let member = |g: &Genome, kind: TermKind| Member {
            weight: g
                .terms
                .iter()
                .filter(|x| x.kind == kind)
                .map(|x| x.weight)
                .sum(),
            beta1: g.beta1,
            beta2: g.beta2,
            bias_correction: g.bias_correction,
            radam: g
                .radam
                .then(|| modifiers::radam_rectifier(g.beta1, g.beta2, t)),
            t,
        };
        let mut kinds = Vec::new();
        for kind in TermKind::ALL {
            if !genomes.iter().any(|g| g.has(kind)) {
                continue;
            }
            let rows = kind
                .decl()
                .columns
                .iter()
                .map(|column| {
                    let values = genomes.iter().map(|g| (column.value)(&member(g, kind)));
                    (column.name, cols.push(values))
                })
                .collect();
            kinds.push((kind, rows));
        }
        let col = |cols: &mut Columns, f: &dyn Fn(&Genome) -> f64| cols.push(genomes.iter().map(f));
        let any_member = |g: &Genome| member(g, TermKind::Adam);
        TermColumns {
            kinds,
            eps: col(cols, &|g| g.eps),
            sqrt_bc2: col(cols, &|g| any_member(g).correction(g.beta2).sqrt()),
            adam_sqrt_bc2: col(cols, &|g| match g.radam {
                true => 1.0,
                false => any_member(g).correction(g.beta2).sqrt(),
            }),
            sign_decay: col(cols, &|g| {
                schedule::sign_decay(g.sign_decay, s, total_steps)
            }),
            radam_momentum: genomes
                .iter()
                .any(|g| g.has(TermKind::Adam) && any_member(g).radam == Some(None)),
        }
    }

    fn uses(&self, kind: TermKind) -> bool {
        self.kinds.iter().any(|(k, _)| *k == kind)
    }
}
