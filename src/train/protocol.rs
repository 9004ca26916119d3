//! The protocol: what one fitness evaluation is (tasks × seeds), with the bounds every count in
//! it must keep.
use super::Task;
use serde::{Deserialize, Serialize};

// Upper bounds on the protocol's counts, far above any real search (the paper's is
// 50 genomes × 50 generations × 500 steps × 2 seeds) and low enough that no allocation sized by
// one can exhaust memory or a start-up never end. The README lists them.
/// Training steps of one task's run (its loss curve is kept: 4 bytes a step).
pub const MAX_STEPS: u64 = 1_000_000;
/// Runs (seeds) per task.
pub const MAX_SEEDS: u64 = 1_000;
/// Images per training step.
pub const MAX_BATCH: i64 = 65_536;
/// Genomes trained side by side in one stacked network.
pub const MAX_BATCH_CANDIDATES: usize = 1_024;

/// How every genome is scored; two runs can share scores only if their protocols are equal.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Protocol {
    pub tasks: Vec<Task>,
    /// Training runs per task (each with its own seed).
    pub seeds: u64,
    /// Base of the per-run seeds (see `Protocol::run_seed`).
    #[serde(default)]
    pub seed: u64,
}

impl Protocol {
    /// The seed of run `index` of `task`: every genome gets the same ones (common random numbers,
    /// and an Adam baseline that is trained once), and a task keeps its seeds when others are
    /// dropped with `--tasks`.
    pub fn run_seed(&self, task: &Task, index: u64) -> u64 {
        let name = task.name.bytes().fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
        splitmix64(self.seed ^ splitmix64(name ^ splitmix64(index))) >> 1
    }

    pub fn total_steps(&self) -> u64 {
        self.tasks.iter().map(|t| t.steps).sum::<u64>() * self.seeds
    }
}

impl Protocol {
    /// Tasks present with sane sizes, unique names, seeds ≥ 1; `field` names the section.
    pub fn validate(&self, field: &str) -> std::result::Result<(), String> {
        if self.tasks.is_empty() {
            return Err(format!(
                "field `{field}.tasks`: empty; allowed: one or more tasks"
            ));
        }
        if !(1..=MAX_SEEDS).contains(&self.seeds) {
            return Err(format!(
                "field `{field}.seeds`: {}; allowed: 1..={MAX_SEEDS}",
                self.seeds
            ));
        }
        for (i, t) in self.tasks.iter().enumerate() {
            if self.tasks[..i].iter().any(|o| o.name == t.name) {
                return Err(format!("field `{field}.tasks[{i}].name`: `{}` appears twice; task names must be unique", t.name));
            }
            if let Some(command) = &t.command {
                if !(1..=MAX_STEPS).contains(&t.steps) {
                    return Err(format!(
                        "field `{field}.tasks[{i}].steps`: {}; allowed: 1..={MAX_STEPS}",
                        t.steps
                    ));
                }
                crate::train::command::check(command)
                    .map_err(|m| format!("field `{field}.tasks[{i}].{}", &m[1..]))?;
                continue;
            }
            if !(1..=MAX_STEPS).contains(&t.steps)
                || !(1..=MAX_BATCH).contains(&t.batch)
                || t.train_subset < t.batch
                || t.validation < 1
                || t.score_images.is_some_and(|n| n < 1)
            {
                let score_images = t.score_images.map_or("absent".into(), |n| n.to_string());
                return Err(format!(
                    "field `{field}.tasks[{i}]` ({}): steps {}, batch {}, train_subset {}, validation {}, score_images {score_images}; allowed: steps 1..={MAX_STEPS}, batch 1..={MAX_BATCH}, train_subset ≥ batch, validation ≥ 1, score_images ≥ 1 or absent",
                    t.name, t.steps, t.batch, t.train_subset, t.validation
                ));
            }
            if let Some(m) = t.check_model().err() {
                return Err(format!("field `{field}.tasks[{i}].{}", &m[1..]));
            }
            if let Some(n) = t.eval_every.filter(|&n| !t.eval_every_fits(n)) {
                return Err(format!(
                    "field `{field}.tasks[{i}].eval_every`: {n}; allowed: 1..={} (the task's steps), or absent",
                    t.steps
                ));
            }
        }
        Ok(())
    }
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}
