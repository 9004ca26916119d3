//! How good a genome is: the published per-run formula, averaged over seeds and tasks, and
//! normalised so that the Adam baseline scores exactly 1.0.
use crate::train::RunMetrics;
use serde::{Deserialize, Serialize};

/// The loss bonus averages this many final training losses.
pub const LOSS_TAIL: usize = 50;
pub const LOSS_BONUS: f64 = 0.05;
/// The score of a diverged run.
pub const DIVERGED: f64 = -1.0;

/// Marfinetz 2025: `score_acc + 0.05·max(0, 1 − mean of the last 50 losses)`, −1 if diverged.
/// A run that kept its fitness but not its loss curve (a stored score) gives the kept value.
pub fn run_fitness(run: &RunMetrics) -> f64 {
    if let Some(fitness) = run.fitness {
        return fitness;
    }
    if run.diverged {
        return DIVERGED;
    }
    let mean = crate::train::recent_mean(&run.losses, LOSS_TAIL).unwrap_or(f64::INFINITY);
    run.score_acc + LOSS_BONUS * (1.0 - mean).max(0.0)
}

/// One genome on one task, over all seeds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskScore {
    pub task: String,
    /// Accuracy on the scoring split over the runs (`val_acc_mean` in files).
    #[serde(rename = "val_acc_mean")]
    pub score_acc_mean: f64,
    #[serde(rename = "val_acc_std")]
    pub score_acc_std: f64,
    /// Mean test-set accuracy, when every run measured it (reports only; never selected on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_acc_mean: Option<f64>,
    /// Mean cross-entropy on the scoring split in nats, when every run measured it (a text
    /// task's `/ ln 2` is its bits per byte; see `bits_per_byte`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_loss_mean: Option<f64>,
    /// Mean over seeds of `run_fitness`.
    pub fitness: f64,
    pub steps: u64,
    pub seconds: f64,
    pub runs: Vec<RunMetrics>,
}

impl TaskScore {
    pub fn from_runs(task: &str, mut runs: Vec<RunMetrics>) -> TaskScore {
        for run in &mut runs {
            run.fitness = Some(run_fitness(run));
        }
        let n = runs.len().max(1) as f64;
        let fitness = runs.iter().map(run_fitness).sum::<f64>() / n;
        TaskScore::with_fitness(task, runs, fitness)
    }

    /// Mean and std of accuracy over `runs`, with the given mean fitness.
    fn with_fitness(task: &str, runs: Vec<RunMetrics>, fitness: f64) -> TaskScore {
        let accs: Vec<f64> = runs.iter().map(|r| r.score_acc).collect();
        let (mean, std) = mean_std(&accs);
        let tests: Option<Vec<f64>> = runs.iter().map(|r| r.test_acc).collect();
        let losses: Option<Vec<f64>> = runs.iter().map(|r| r.score_loss).collect();
        TaskScore {
            task: task.to_string(),
            score_acc_mean: mean,
            score_acc_std: std,
            test_acc_mean: tests.filter(|t| !t.is_empty()).map(|t| mean_std(&t).0),
            score_loss_mean: losses.filter(|l| !l.is_empty()).map(|l| mean_std(&l).0),
            fitness,
            steps: runs.iter().map(|r| r.steps).sum(),
            seconds: runs.iter().map(|r| r.seconds).sum(),
            runs,
        }
    }

    /// This score and `more` (the same task on further seeds) as one score over all their runs.
    /// The mean fitness is weighted by runs, so it stays exact after loss curves are dropped.
    pub fn merged(self, more: TaskScore) -> TaskScore {
        let (a, b) = (self.runs.len() as f64, more.runs.len() as f64);
        let fitness = (self.fitness * a + more.fitness * b) / (a + b).max(1.0);
        let mut runs = self.runs;
        runs.extend(more.runs);
        TaskScore::with_fitness(&self.task, runs, fitness)
    }

    /// The score over this task's first `n` runs (Adam's baseline on the seeds a genome has);
    /// itself, unchanged, when it has no more than `n`.
    pub fn first_runs(&self, n: usize) -> TaskScore {
        if n >= self.runs.len() {
            return self.clone();
        }
        let runs: Vec<RunMetrics> = self.runs.iter().take(n).cloned().collect();
        let fitness = runs.iter().map(run_fitness).sum::<f64>() / runs.len().max(1) as f64;
        TaskScore::with_fitness(&self.task, runs, fitness)
    }

    /// Validation loss in bits per label: bits per byte for a text task.
    pub fn bits_per_byte(&self) -> Option<f64> {
        self.score_loss_mean
            .map(|nats| nats / std::f64::consts::LN_2)
    }

    pub fn diverged(&self) -> bool {
        self.runs.iter().any(|r| r.diverged)
    }
}

/// Mean and sample standard deviation (0 for fewer than two values).
pub fn mean_std(xs: &[f64]) -> (f64, f64) {
    let n = xs.len().max(1) as f64;
    let mean = xs.iter().sum::<f64>() / n;
    let var = match xs.len() > 1 {
        true => xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0),
        false => 0.0,
    };
    (mean, var.sqrt())
}

/// A genome against Adam on the same (task, seed) runs: how many it wins, and the mean
/// difference in run fitness with a 95 % Student-t interval.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Paired {
    pub runs: usize,
    pub wins: usize,
    pub mean_diff: f64,
    /// Half-width of the 95 % interval (infinite with one pair).
    pub ci95: f64,
}

/// Pairs `genome`'s runs with `adam`'s by task and seed; `None` when no run pairs (or a stored
/// run lacks its fitness).
pub fn paired(genome: &[TaskScore], adam: &[TaskScore]) -> Option<Paired> {
    let mut diffs = Vec::new();
    for (g, a) in genome.iter().zip(adam) {
        for run in &g.runs {
            if let Some(base) = a.runs.iter().find(|b| b.seed == run.seed) {
                diffs.push(run.fitness? - base.fitness?);
            }
        }
    }
    if diffs.is_empty() {
        return None;
    }
    let (mean, std) = mean_std(&diffs);
    let n = diffs.len();
    Some(Paired {
        runs: n,
        wins: diffs.iter().filter(|&&d| d > 0.0).count(),
        mean_diff: mean,
        ci95: match n {
            1 => f64::INFINITY,
            _ => t_975(n - 1) * std / (n as f64).sqrt(),
        },
    })
}

/// The 0.975 quantile of Student's t with `df` degrees of freedom.
fn t_975(df: usize) -> f64 {
    const TABLE: [f64; 30] = [
        12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160,
        2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056,
        2.052, 2.048, 2.045, 2.042,
    ];
    TABLE.get(df.wrapping_sub(1)).copied().unwrap_or(1.960)
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
    /// `baseline` holds Adam's scores on the same tasks, in the same order, on at least the
    /// seeds each task score has: a genome is compared with Adam on its own seeds (paired).
    pub fn new(tasks: Vec<TaskScore>, baseline: &[TaskScore]) -> Score {
        let n = tasks.len().max(1) as f64;
        let raw = tasks.iter().map(|t| t.fitness).sum::<f64>() / n;
        let vs_adam = tasks
            .iter()
            .zip(baseline)
            .map(|(t, b)| t.fitness / b.first_runs(t.runs.len()).fitness)
            .sum::<f64>()
            / n;
        Score {
            tasks,
            raw,
            vs_adam,
        }
    }

    /// Fitness over `reference`'s on each task (the same tasks, in order), averaged over tasks as
    /// `vs_adam` is: the score against a baseline other than Adam (a tuned one).
    pub fn relative_to(&self, reference: &[TaskScore]) -> f64 {
        let n = self.tasks.len().max(1) as f64;
        self.tasks
            .iter()
            .zip(reference)
            .map(|(t, r)| t.fitness / r.fitness)
            .sum::<f64>()
            / n
    }

    pub fn steps(&self) -> u64 {
        self.tasks.iter().map(|t| t.steps).sum()
    }

    /// Training runs behind each task's score (seeds).
    pub fn seeds(&self) -> usize {
        self.tasks.iter().map(|t| t.runs.len()).min().unwrap_or(0)
    }

    pub fn seconds(&self) -> f64 {
        self.tasks.iter().map(|t| t.seconds).sum()
    }

    /// Whether any run behind this score was stopped by learning-curve pruning.
    pub fn pruned(&self) -> bool {
        self.tasks.iter().flat_map(|t| &t.runs).any(|r| r.pruned)
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
            .map(|&(score_acc, diverged)| RunMetrics {
                seed: 0,
                score_loss: None,
                score_acc,
                test_acc: None,
                fitness: None,
                losses: vec![2.0; 60],
                steps: 60,
                diverged,
                seconds: 0.0,
                pruned: false,
                train_seconds: 0.0,
                curve: Vec::new(),
                failure: None,
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

    #[test]
    fn scores_merge_over_seeds_exactly_without_their_curves() {
        let all = task(&[(0.4, false), (0.6, false), (0.5, false)]);
        let mut first = task(&[(0.4, false), (0.6, false)]);
        let mut more = task(&[(0.5, false)]);
        for run in first.runs.iter_mut().chain(&mut more.runs) {
            run.losses.clear();
        }
        let merged = first.merged(more);
        assert!((merged.fitness - all.fitness).abs() < 1e-15);
        assert_eq!(merged.score_acc_mean, all.score_acc_mean);
        assert_eq!(
            merged.first_runs(2).fitness,
            task(&[(0.4, false), (0.6, false)]).fitness
        );
    }

    #[test]
    fn paired_comparison_counts_wins_and_bounds_the_difference() {
        let mut adam = task(&[(0.5, false), (0.5, false), (0.5, false)]);
        let mut genome = task(&[(0.52, false), (0.49, false), (0.56, false)]);
        for (i, (a, g)) in adam.runs.iter_mut().zip(&mut genome.runs).enumerate() {
            a.seed = i as u64;
            g.seed = i as u64;
        }
        let p = paired(&[genome], &[adam]).expect("three pairs");
        assert_eq!((p.runs, p.wins), (3, 2));
        assert!((p.mean_diff - 0.07 / 3.0).abs() < 1e-12, "{p:?}");
        // Differences 0.02, −0.01, 0.06: sd 0.0351, t(2) = 4.303.
        assert!(
            (p.ci95 - 4.303 * 0.035118845842842 / 3f64.sqrt()).abs() < 1e-9,
            "{p:?}"
        );
        assert!(paired(&[task(&[(0.5, false)])], &[]).is_none());
    }
}
