//! Tuned baselines, the yardstick a reviewer accepts (Chen et al. 2023 tuned AdamW's learning
//! rate and weight decay on a log grid, with the same schedule, before claiming anything; Choi
//! et al. 2019, "On Empirical Comparisons of Optimizers for Deep Learning", arXiv:1910.05446,
//! show that the tuning protocol alone can reverse a ranking). Each family is trained on a grid
//! of learning rates and weight decays with the schedule a genome can have (warmup, cosine
//! decay), under each protocol, on its validation split and seeds; the best grid point is that
//! protocol's tuned baseline.
use crate::genome::Genome;
use serde::{Deserialize, Serialize};

/// The most grid points a tuning budget may hold.
pub const MAX_GRID: usize = 64;

/// The config's `tuning` section: the families, and the grid that is their tuning budget.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Tuning {
    /// Shipped genomes whose learning rate and weight decay are tuned.
    pub families: Vec<String>,
    pub lr: Vec<f64>,
    pub weight_decay: Vec<f64>,
    /// Warmup length as a fraction of the protocol's shortest task.
    pub warmup_fraction: f64,
    pub cosine_decay: bool,
}

impl Default for Tuning {
    /// AdamW with warmup and cosine decay, learning rates 3e-4 … 1e-2 on a log grid, weight
    /// decay 0 or 0.01.
    fn default() -> Self {
        Tuning {
            families: vec!["adamw".into()],
            lr: vec![3e-4, 1e-3, 3e-3, 1e-2],
            weight_decay: vec![0.0, 0.01],
            warmup_fraction: 0.05,
            cosine_decay: true,
        }
    }
}

impl Tuning {
    pub fn validate(&self) -> std::result::Result<(), String> {
        let shipped = crate::genome::SHIPPED.map(|(name, _)| name);
        for (i, family) in self.families.iter().enumerate() {
            if !shipped.contains(&family.as_str()) {
                return Err(format!(
                    "field `tuning.families[{i}]`: `{family}`; allowed: {}",
                    shipped.join(", ")
                ));
            }
        }
        let size = self.families.len() * self.lr.len() * self.weight_decay.len();
        if !(1..=MAX_GRID).contains(&size) {
            return Err(format!(
                "field `tuning`: {} families × {} learning rates × {} weight decays = {size} grid points; allowed: 1..={MAX_GRID}",
                self.families.len(),
                self.lr.len(),
                self.weight_decay.len()
            ));
        }
        if let Some(lr) = self.lr.iter().find(|&&x| !(x.is_finite() && x > 0.0)) {
            return Err(format!(
                "field `tuning.lr`: {lr}; allowed: positive numbers"
            ));
        }
        if let Some(wd) = self
            .weight_decay
            .iter()
            .find(|&&x| !(x.is_finite() && x >= 0.0))
        {
            return Err(format!(
                "field `tuning.weight_decay`: {wd}; allowed: numbers ≥ 0"
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_fraction) {
            return Err(format!(
                "field `tuning.warmup_fraction`: {}; allowed: [0, 1)",
                self.warmup_fraction
            ));
        }
        Ok(())
    }

    /// The grid's genomes for a protocol whose shortest task has `min_steps` steps, each named
    /// by its family and point.
    pub fn grid(&self, min_steps: u64) -> Vec<Genome> {
        let warmup = (self.warmup_fraction * min_steps as f64).round() as u64;
        let mut grid = Vec::new();
        for family in &self.families {
            for &lr in &self.lr {
                for &weight_decay in &self.weight_decay {
                    grid.push(Genome {
                        name: Some(format!("{family} lr {lr:e} wd {}", short(weight_decay))),
                        lr,
                        weight_decay,
                        warmup_steps: warmup,
                        cosine_decay: self.cosine_decay,
                        ..crate::genome::shipped(family)
                    });
                }
            }
        }
        grid
    }
}

/// `x` in few characters: 0 as `0`, others in scientific notation (`1e-2`).
fn short(x: f64) -> String {
    match x == 0.0 {
        true => "0".to_string(),
        false => format!("{x:e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_grid_spans_the_learning_rates_a_reviewer_asks_for() {
        let grid = Tuning::default().grid(200);
        assert_eq!(grid.len(), 8);
        let lrs: Vec<f64> = grid.iter().map(|g| g.lr).collect();
        assert!(lrs.iter().any(|&x| x <= 3e-4) && lrs.iter().any(|&x| x >= 1e-2));
        for g in &grid {
            g.validate().unwrap();
            assert!(g.cosine_decay && g.warmup_steps == 10);
            assert_eq!(g.terms, crate::genome::shipped("adamw").terms);
        }
        let hashes: std::collections::BTreeSet<String> = grid.iter().map(Genome::hash).collect();
        assert_eq!(hashes.len(), 8, "distinct grid points");
    }

    #[test]
    fn a_bad_tuning_section_names_its_field() {
        let bad = |t: Tuning, needle: &str| {
            let message = t.validate().unwrap_err();
            assert!(message.contains(needle), "{message}");
        };
        let d = Tuning::default;
        bad(
            Tuning {
                families: vec!["adamx".into()],
                ..d()
            },
            "tuning.families[0]",
        );
        bad(Tuning { lr: vec![], ..d() }, "0 grid points");
        bad(
            Tuning {
                lr: vec![-1.0],
                ..d()
            },
            "tuning.lr",
        );
        bad(
            Tuning {
                weight_decay: vec![f64::NAN],
                ..d()
            },
            "tuning.weight_decay",
        );
        bad(
            Tuning {
                warmup_fraction: 1.0,
                ..d()
            },
            "tuning.warmup_fraction",
        );
        bad(
            Tuning {
                lr: vec![1e-3; 33],
                ..d()
            },
            "allowed: 1..=64",
        );
    }
}
