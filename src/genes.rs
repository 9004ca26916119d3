//! Every gene of the genome, described once. The GA's random initialisation, crossover and
//! mutation walk this table, `GaParams::validate` checks the bounds it names, and a test checks
//! that each field of the genome schema is a gene that mutation can change. A genome field
//! without a row here would be fixed forever; the test catches it.
use crate::config::GaParams;
use crate::genome::{Genome, SignDecay};

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
