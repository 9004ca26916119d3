//! Every gene of the genome, described once. The GA's random initialisation, crossover and
//! mutation walk this table, `GaParams::validate` checks the bounds it names, and a test checks
//! that each field of the genome schema is a gene that mutation can change. A genome field
//! without a row here would be fixed forever; the test catches it.
use crate::genome::{Genome, SignDecay, TermKind};
use serde::{Deserialize, Serialize};

/// How one gene is drawn and varied.
pub enum GeneKind {
    /// The weighted term list: one-point crossover; weights move by log-normal factors; terms
    /// are added, removed and changed (see `Ga::mutate`).
    Terms,
    /// A positive scalar moved in log10 space inside `range` (a log10 range of `ga`). An
    /// optional one may be off (`None`; stored as 0 or null), on at random with `p_on`.
    Log {
        get: fn(&Genome) -> Option<f64>,
        set: fn(&mut Genome, Option<f64>),
        range: fn(&GaParams) -> [f64; 2],
        range_field: &'static str,
        p_on: Option<f64>,
    },
    /// A scalar moved by clamped Gaussian steps of `ga.beta_sigma` inside `range`.
    Bounded {
        get: fn(&Genome) -> f64,
        set: fn(&mut Genome, f64),
        range: fn(&GaParams) -> [f64; 2],
        range_field: &'static str,
    },
    /// On at random with `p_on`; flipped with `ga.flag_flip_rate`.
    Flag {
        get: fn(&Genome) -> bool,
        set: fn(&mut Genome, bool),
        p_on: f64,
    },
    /// One of several schedules; a random genome takes a non-default one with `p_other`, and
    /// mutation switches to another with `ga.flag_flip_rate`.
    SignDecay { p_other: f64 },
    /// Warmup length, a fraction of the shortest task within `ga.warmup_fraction`; on at random
    /// with `p_on`, re-drawn at the mutation rate, switched on and off at the flip rate.
    Warmup { p_on: f64 },
    /// Lookahead's period `k` within `ga.lookahead_k` and step `alpha` within
    /// `ga.lookahead_alpha`; on at random with `p_on`; `k` moves by ±1 and `alpha` by clamped
    /// Gaussian steps at the mutation rate; switched on and off at the flip rate.
    Lookahead { p_on: f64 },
}

pub struct Gene {
    /// The genome's JSON field.
    pub field: &'static str,
    pub kind: GeneKind,
}

/// A scalar every genome has, moved in log10 space inside `ga.<range>`.
macro_rules! log_scalar {
    ($field:ident, $range:ident) => {
        Gene {
            field: stringify!($field),
            kind: GeneKind::Log {
                get: |g| Some(g.$field),
                set: |g, v| g.$field = v.expect(concat!(stringify!($field), " is always on")),
                range: |p| p.$range,
                range_field: stringify!($range),
                p_on: None,
            },
        }
    };
}

/// A scalar moved by clamped steps inside `ga.<field>`.
macro_rules! bounded {
    ($field:ident) => {
        Gene {
            field: stringify!($field),
            kind: GeneKind::Bounded {
                get: |g| g.$field,
                set: |g, v| g.$field = v,
                range: |p| p.$field,
                range_field: stringify!($field),
            },
        }
    };
}

macro_rules! flag {
    ($field:ident, $p_on:expr) => {
        Gene {
            field: stringify!($field),
            kind: GeneKind::Flag {
                get: |g| g.$field,
                set: |g, v| g.$field = v,
                p_on: $p_on,
            },
        }
    };
}

/// The genome, gene by gene, in the order the GA draws them.
pub static GENES: [Gene; 17] = [
    Gene {
        field: "terms",
        kind: GeneKind::Terms,
    },
    log_scalar!(lr, lr_log10),
    bounded!(beta1),
    bounded!(beta2),
    log_scalar!(eps, eps_log10),
    Gene {
        field: "weight_decay",
        kind: GeneKind::Log {
            get: |g| (g.weight_decay > 0.0).then_some(g.weight_decay),
            set: |g, v| g.weight_decay = v.unwrap_or(0.0),
            range: |p| p.weight_decay_log10,
            range_field: "weight_decay_log10",
            p_on: Some(0.5),
        },
    },
    flag!(bias_correction, 0.5),
    flag!(use_m, 0.9),
    flag!(use_v, 0.9),
    Gene {
        field: "grad_clip",
        kind: GeneKind::Log {
            get: |g| g.grad_clip,
            set: |g, v| g.grad_clip = v,
            range: |p| p.grad_clip_log10,
            range_field: "grad_clip_log10",
            p_on: Some(0.1),
        },
    },
    Gene {
        field: "warmup_steps",
        kind: GeneKind::Warmup { p_on: 0.5 },
    },
    flag!(cosine_decay, 0.5),
    Gene {
        field: "sign_decay",
        kind: GeneKind::SignDecay { p_other: 0.2 },
    },
    flag!(radam, 0.1),
    flag!(trust_ratio, 0.1),
    flag!(diffgrad, 0.1),
    Gene {
        field: "lookahead",
        kind: GeneKind::Lookahead { p_on: 0.1 },
    },
];

pub const SIGN_DECAYS: [SignDecay; 3] = [SignDecay::Off, SignDecay::Linear, SignDecay::Cosine];

/// Copies gene `kind` of `from` into `child` (uniform crossover takes each gene from either
/// parent).
pub fn copy_gene(kind: &GeneKind, child: &mut Genome, from: &Genome) {
    match kind {
        GeneKind::Terms => child.terms = from.terms.clone(),
        GeneKind::Log { get, set, .. } => set(child, get(from)),
        GeneKind::Bounded { get, set, .. } => set(child, get(from)),
        GeneKind::Flag { get, set, .. } => set(child, get(from)),
        GeneKind::SignDecay { .. } => child.sign_decay = from.sign_decay,
        GeneKind::Warmup { .. } => child.warmup_steps = from.warmup_steps,
        GeneKind::Lookahead { .. } => child.lookahead = from.lookahead,
    }
}

/// Every rate and bound of the variation operators. Log-scaled scalars are in log10 units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GaParams {
    /// Probability that a child comes from crossover (else it is a copy of one parent).
    pub crossover_rate: f64,
    /// Probability that each scalar gene is perturbed.
    pub mutation_rate: f64,
    /// Std of the Gaussian step on log10(lr), log10(ε), log10(weight decay), at full strength.
    pub log_sigma: f64,
    /// Std of the step on β1 and β2 (then clamped to their ranges).
    pub beta_sigma: f64,
    /// Std of the log-normal factor on a term weight.
    pub weight_sigma: f64,
    pub add_term_rate: f64,
    pub remove_term_rate: f64,
    pub change_term_rate: f64,
    pub flag_flip_rate: f64,
    /// Mutation strength falls linearly from 1 to this over the generations.
    pub final_strength: f64,
    /// The term kinds random terms are drawn from (all of them by default; the seven of
    /// Marfinetz 2025 for the paper's search space).
    pub kinds: Vec<TermKind>,
    pub max_terms: usize,
    pub lr_log10: [f64; 2],
    pub eps_log10: [f64; 2],
    pub weight_decay_log10: [f64; 2],
    pub beta1: [f64; 2],
    pub beta2: [f64; 2],
    pub term_weight: [f64; 2],
    /// Warmup lengths as a fraction of the shortest task's steps.
    pub warmup_fraction: [f64; 2],
    /// Elementwise gradient clipping `c` (log10), when on.
    pub grad_clip_log10: [f64; 2],
    /// Lookahead's period k and step α, when on.
    pub lookahead_k: [u64; 2],
    pub lookahead_alpha: [f64; 2],
}

impl Default for GaParams {
    fn default() -> Self {
        GaParams {
            crossover_rate: 0.7,
            mutation_rate: 0.3,
            log_sigma: 0.3,
            beta_sigma: 0.05,
            weight_sigma: 0.3,
            add_term_rate: 0.1,
            remove_term_rate: 0.1,
            change_term_rate: 0.1,
            flag_flip_rate: 0.05,
            final_strength: 0.3,
            kinds: TermKind::ALL.to_vec(),
            max_terms: 4,
            lr_log10: [-5.0, -1.0],
            eps_log10: [-10.0, -6.0],
            weight_decay_log10: [-6.0, -2.0],
            beta1: [0.5, 0.999],
            beta2: [0.8, 0.9999],
            term_weight: [0.05, 3.0],
            warmup_fraction: [0.0, 0.3],
            grad_clip_log10: [-1.0, 1.0],
            lookahead_k: [5, 10],
            lookahead_alpha: [0.3, 0.8],
        }
    }
}

/// The log10 ranges a genome's positive scalars may be drawn from: 10^x stays a finite,
/// non-zero float.
const LOG10_LIMIT: f64 = 300.0;

impl GaParams {
    /// Every rate a probability, every σ finite and ≥ 0, every range ordered, finite and inside
    /// what a genome allows, so that the operators cannot panic or breed an invalid genome.
    pub fn validate(&self) -> std::result::Result<(), String> {
        self.validate_rates()?;
        let mut kinds = self.kinds.clone();
        kinds.sort();
        kinds.dedup();
        if kinds.is_empty() || kinds.len() != self.kinds.len() {
            return Err(format!(
                "field `ga.kinds`: {} kinds, {} distinct; allowed: a non-empty list without repeats of {}",
                self.kinds.len(),
                kinds.len(),
                crate::genome::known_kinds()
            ));
        }
        if self.max_terms == 0 || self.max_terms > crate::genome::MAX_TERMS {
            return Err(format!(
                "field `ga.max_terms`: {}; allowed: 1..={}",
                self.max_terms,
                crate::genome::MAX_TERMS
            ));
        }
        let [k_lo, k_hi] = self.lookahead_k;
        if !(1 <= k_lo && k_lo <= k_hi && k_hi <= 1_000_000) {
            return Err(format!(
                "field `ga.lookahead_k`: [{k_lo}, {k_hi}]; allowed: an ordered range within [1, 1000000]"
            ));
        }
        for (name, [lo, hi], min, max, allowed) in self.ranges() {
            if !(lo.is_finite() && hi.is_finite() && min <= lo && lo <= hi && hi <= max) {
                return Err(format!(
                    "field `ga.{name}`: [{lo}, {hi}]; allowed: an ordered range [low, high] within {allowed}"
                ));
            }
        }
        Ok(())
    }

    /// Every rate a probability, every σ finite and ≥ 0.
    fn validate_rates(&self) -> std::result::Result<(), String> {
        let rates = [
            ("crossover_rate", self.crossover_rate),
            ("mutation_rate", self.mutation_rate),
            ("add_term_rate", self.add_term_rate),
            ("remove_term_rate", self.remove_term_rate),
            ("change_term_rate", self.change_term_rate),
            ("flag_flip_rate", self.flag_flip_rate),
        ];
        for (name, p) in rates {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "field `ga.{name}`: {p}; allowed: a probability in [0, 1]"
                ));
            }
        }
        let sigmas = [
            ("log_sigma", self.log_sigma),
            ("beta_sigma", self.beta_sigma),
            ("weight_sigma", self.weight_sigma),
            ("final_strength", self.final_strength),
        ];
        for (name, x) in sigmas {
            if !(x.is_finite() && x >= 0.0) {
                return Err(format!(
                    "field `ga.{name}`: {x}; allowed: a finite number ≥ 0"
                ));
            }
        }
        Ok(())
    }

    /// Every range with the bounds a genome allows it: each scalar gene's, from the gene table,
    /// then those of the other genes. `(field, [low, high], min, max, allowed in words)`.
    fn ranges(&self) -> Vec<(&'static str, [f64; 2], f64, f64, &'static str)> {
        let mut ranges = Vec::new();
        for gene in &GENES {
            match &gene.kind {
                GeneKind::Log {
                    range, range_field, ..
                } => ranges.push((
                    *range_field,
                    range(self),
                    -LOG10_LIMIT,
                    LOG10_LIMIT,
                    "[-300, 300] (10^x: a positive value)",
                )),
                GeneKind::Bounded {
                    range, range_field, ..
                } => ranges.push((
                    *range_field,
                    range(self),
                    0.0,
                    0.9999999,
                    "[0, 1) (a genome's β)",
                )),
                _ => {}
            }
        }
        ranges.extend([
            (
                "term_weight",
                self.term_weight,
                1e-300,
                1e300,
                "(0, 1e300] (positive weights)",
            ),
            (
                "warmup_fraction",
                self.warmup_fraction,
                0.0,
                1.0,
                "[0, 1] (of the shortest task)",
            ),
            (
                "lookahead_alpha",
                self.lookahead_alpha,
                1e-9,
                1.0,
                "(0, 1] (Lookahead's step)",
            ),
        ]);
        ranges
    }
}
