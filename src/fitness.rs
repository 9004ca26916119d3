//! How good a genome is: the published per-run formula, averaged over seeds and tasks, and
//! normalised so that the Adam baseline scores exactly 1.0.
use crate::train::RunMetrics;
use serde::{Deserialize, Serialize};

/// The loss bonus averages this many final training losses.
pub const LOSS_TAIL: usize = 50;
pub const LOSS_BONUS: f64 = 0.05;
/// The score of a diverged run.
pub const DIVERGED: f64 = -1.0;

/// Marfinetz 2025: `val_acc + 0.05·max(0, 1 − mean of the last 50 losses)`, −1 if diverged.
pub fn run_fitness(run: &RunMetrics) -> f64 {
    if run.diverged {
        return DIVERGED;
    }
    let tail = &run.losses[run.losses.len().saturating_sub(LOSS_TAIL)..];
    let mean = if tail.is_empty() {
        f64::INFINITY
    } else {
        tail.iter().map(|&l| l as f64).sum::<f64>() / tail.len() as f64
    };
    run.val_acc + LOSS_BONUS * (1.0 - mean).max(0.0)
}

/// One genome on one task, over all seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    pub task: String,
    pub val_acc_mean: f64,
    pub val_acc_std: f64,
    /// Mean over seeds of `run_fitness`.
    pub fitness: f64,
    pub steps: u64,
    pub seconds: f64,
    pub runs: Vec<RunMetrics>,
}

impl TaskScore {
    pub fn from_runs(task: &str, runs: Vec<RunMetrics>) -> TaskScore {
        let n = runs.len().max(1) as f64;
        let accs: Vec<f64> = runs.iter().map(|r| r.val_acc).collect();
        let mean = accs.iter().sum::<f64>() / n;
        let var = if runs.len() > 1 {
            accs.iter().map(|a| (a - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        TaskScore {
            task: task.to_string(),
            val_acc_mean: mean,
            val_acc_std: var.sqrt(),
            fitness: runs.iter().map(run_fitness).sum::<f64>() / n,
            steps: runs.iter().map(|r| r.steps).sum(),
            seconds: runs.iter().map(|r| r.seconds).sum(),
            runs,
        }
    }

    pub fn diverged(&self) -> bool {
        self.runs.iter().any(|r| r.diverged)
    }
}

/// Scores are divided by Adam's, so Adam must have scored a finite, positive fitness on every
/// task: a diverged or zero baseline would make every comparison meaningless (or infinite).
pub fn check_baseline(baseline: &[TaskScore]) -> Result<(), String> {
    if baseline.is_empty() {
        return Err("Adam's baseline holds no task scores".into());
    }
    for t in baseline {
        if !(t.fitness.is_finite() && t.fitness > 0.0) {
            return Err(format!(
                "Adam's fitness on task `{}` is {} ({}); every score is divided by it, so it must be positive. Change the protocol (more steps, a larger subset or batch) so that Adam trains",
                t.task,
                t.fitness,
                if t.diverged() { "its run diverged" } else { "zero accuracy and no loss bonus" }
            ));
        }
    }
    Ok(())
}

/// A genome's scores on the whole protocol.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Score {
    pub tasks: Vec<TaskScore>,
    /// Mean over tasks of the paper-style fitness.
    pub raw: f64,
    /// Mean over tasks of fitness / Adam's fitness: Adam = 1.0, higher is better.
    pub vs_adam: f64,
}

impl Score {
    /// `baseline` holds Adam's scores on the same tasks, in the same order.
    pub fn new(tasks: Vec<TaskScore>, baseline: &[TaskScore]) -> Score {
        let n = tasks.len().max(1) as f64;
        let raw = tasks.iter().map(|t| t.fitness).sum::<f64>() / n;
        let vs_adam = tasks
            .iter()
            .zip(baseline)
            .map(|(t, b)| t.fitness / b.fitness)
            .sum::<f64>()
            / n;
        Score {
            tasks,
            raw,
            vs_adam,
        }
    }

    pub fn steps(&self) -> u64 {
        self.tasks.iter().map(|t| t.steps).sum()
    }

    pub fn seconds(&self) -> f64 {
        self.tasks.iter().map(|t| t.seconds).sum()
    }

    /// The same score without per-step loss curves and timings (what run directories keep:
    /// compact, and equal between two runs that trained the same way).
    pub fn without_curves(mut self) -> Score {
        for task in &mut self.tasks {
            task.seconds = 0.0;
            for run in &mut task.runs {
                run.losses = Vec::new();
                run.seconds = 0.0;
                run.train_seconds = 0.0;
            }
        }
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task(fitness_runs: &[(f64, bool)]) -> TaskScore {
        let runs = fitness_runs
            .iter()
            .map(|&(val_acc, diverged)| RunMetrics {
                seed: 0,
                val_acc,
                losses: vec![2.0; 60],
                steps: 60,
                diverged,
                seconds: 0.0,
                train_seconds: 0.0,
            })
            .collect();
        TaskScore::from_runs("cifar10", runs)
    }

    #[test]
    fn a_baseline_must_be_positive_on_every_task() {
        assert!(check_baseline(&[task(&[(0.4, false)])]).is_ok());
        assert!(check_baseline(&[]).is_err());
        let diverged = check_baseline(&[task(&[(0.4, false), (0.0, true)])]).unwrap_err();
        assert!(
            diverged.contains("cifar10") && diverged.contains("diverged"),
            "{diverged}"
        );
        let zero = check_baseline(&[task(&[(0.0, false)])]).unwrap_err();
        assert!(zero.contains("is 0"), "{zero}");
    }
}
