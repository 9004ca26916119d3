//! Learning-curve pruning in the full rung: its settings (`Prune`, the config's
//! `fidelity.prune`) and the bars Adam's curves set for each task and seed (`Pruning`); the bar
//! one run must clear is `run::Bar`.
use super::fitness::TaskScore;
use super::protocol::{Protocol, MAX_STEPS};
use super::run::{recent_mean, Bar};
use serde::{Deserialize, Serialize};

/// Pruning points per run.
pub const MAX_PRUNE_POINTS: usize = 100;
/// What `margin` may be: a factor on Adam's loss.
pub const PRUNE_MARGIN: [f64; 2] = [1.0, 100.0];

/// Learning-curve pruning in the full rung: at each fraction `at` of a task's steps, a run whose
/// mean training loss over the last `window` steps is more than `margin` times Adam's (same
/// task, same seed, same step) stops there. `margin` compares losses, not accuracies: at 1 every
/// run behind Adam's loss stops, even one that would end level with Adam's accuracy; a run whose
/// loss equals Adam's never does. A point that falls on or after a task's last step is dropped
/// (stopping there saves nothing). Its evaluation is recorded with stage `pruned` and
/// capped like a screening score, so it never outranks a completed run. Comparing with Adam
/// alone (not with the generation's other runs) keeps a genome's score a function of the genome
/// and the protocol: memoised, resumable and the same under every executor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prune {
    pub at: Vec<f64>,
    pub margin: f64,
    pub window: usize,
}

impl Default for Prune {
    fn default() -> Self {
        Prune {
            at: vec![0.25, 0.5, 0.75],
            margin: 1.25,
            window: 25,
        }
    }
}

impl Prune {
    /// `at` fractions inside the run, `margin` a factor within `PRUNE_MARGIN`, `window` ≥ 1.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let fractions = self.at.iter().all(|a| *a > 0.0 && *a < 1.0);
        let [lo, hi] = PRUNE_MARGIN;
        if !(1..=MAX_PRUNE_POINTS).contains(&self.at.len())
            || !fractions
            || !(lo..=hi).contains(&self.margin)
            || !(1..=MAX_STEPS as usize).contains(&self.window)
        {
            return Err(format!(
                    "field `fidelity.prune`: at {:?}, margin {}, window {}; allowed: at 1 to {MAX_PRUNE_POINTS} fractions in (0, 1) of each task's steps, margin in [{lo}, {hi}] (a factor on Adam's mean training loss: a run is stopped when its loss exceeds margin × Adam's), window 1..={MAX_STEPS} steps",
                    self.at, self.margin, self.window
                ));
        }
        Ok(())
    }
}

/// The bars runs must clear, one per task and run seed (see `Bar`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pruning {
    pub bars: Vec<(String, u64, Bar)>,
}

impl Pruning {
    /// Bars at `config.at` of each task's steps: `margin` × Adam's mean loss over the last
    /// `window` steps there, on the same task and seed (`baseline`: Adam's scores with curves).
    pub fn from_baseline(protocol: &Protocol, baseline: &[TaskScore], config: &Prune) -> Pruning {
        let mut bars = Vec::new();
        for (task, adam) in protocol.tasks.iter().zip(baseline) {
            for run in adam.runs.iter().filter(|r| !r.losses.is_empty()) {
                let limits = config
                    .at
                    .iter()
                    .map(|f| ((task.steps as f64 * f).ceil() as u64).max(1))
                    // Stopping at or after the last step saves nothing: not a pruning point.
                    .filter(|&step| step < task.steps && step as usize <= run.losses.len())
                    .filter_map(|step| {
                        let upto = &run.losses[..step as usize];
                        let adam = recent_mean(upto, config.window)?;
                        Some((step, config.margin * adam))
                    })
                    .collect();
                let bar = Bar {
                    window: config.window,
                    limits,
                };
                bars.push((task.name.clone(), run.seed, bar));
            }
        }
        Pruning { bars }
    }

    pub(crate) fn bar(&self, task: &str, seed: u64) -> Option<&Bar> {
        self.bars
            .iter()
            .find(|(t, s, _)| t == task && *s == seed)
            .map(|(_, _, b)| b)
    }
}
