//! Step-size schedules, as functions of the step index `s` (counted from 0) and the run length `S`.
use crate::genome::{Genome, SignDecay};
use std::f64::consts::PI;

/// `η_t`: linear warmup `η·(s+1)/W` for `s < W`, then (if asked) cosine decay `½(1 + cos(π·s/S))`
/// over the whole run, as the published code computes it.
pub fn learning_rate(genome: &Genome, s: u64, total_steps: u64) -> f64 {
    let mut lr = genome.lr;
    if genome.warmup_steps > 0 && s < genome.warmup_steps {
        lr *= (s + 1) as f64 / genome.warmup_steps as f64;
    }
    if genome.cosine_decay && total_steps > 0 {
        lr *= 0.5 * (1.0 + (PI * s as f64 / total_steps as f64).cos());
    }
    lr
}

/// `d_t` of AddSign/PowerSign (Bello et al. 2017): 1, or decaying to 0 over the run.
pub fn sign_decay(decay: SignDecay, s: u64, total_steps: u64) -> f64 {
    let frac = if total_steps == 0 {
        0.0
    } else {
        s as f64 / total_steps as f64
    };
    match decay {
        SignDecay::Off => 1.0,
        SignDecay::Linear => 1.0 - frac,
        SignDecay::Cosine => 0.5 * (1.0 + (PI * frac).cos()),
    }
}
