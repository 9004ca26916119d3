//! Time to target (AlgoPerf's metric, Dahl et al. 2023, "Benchmarking Neural Network Training
//! Algorithms", arXiv:2306.07179): the steps a genome needs to reach the target's final
//! validation accuracy, and the speed-up against the target's own. "Trains as well in 0.7× the
//! steps" is what a user of the optimizer buys.
use crate::train::fitness::TaskScore;
use serde::Serialize;

/// One genome on one task against the target.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TimeToTarget {
    pub name: String,
    pub task: String,
    /// The target's final accuracy on the scoring split (mean over seeds).
    pub target_acc: f64,
    /// Steps this genome needed to reach it (`None`: not within the run).
    pub steps: Option<u64>,
    /// Steps the target needed to reach its own final accuracy.
    pub target_steps: Option<u64>,
    /// `target_steps / steps` (above 1: faster than the target).
    pub speedup: Option<f64>,
}

/// The first measured step at which `curve` reaches `target`.
pub fn steps_to_reach(curve: &[(u64, f64)], target: f64) -> Option<u64> {
    curve
        .iter()
        .find(|(_, acc)| *acc >= target)
        .map(|(s, _)| *s)
}

/// The mean over a task's runs of their accuracy curves, on the steps every run measured.
pub fn mean_curve(task: &TaskScore) -> Vec<(u64, f64)> {
    let Some(first) = task.runs.first() else {
        return Vec::new();
    };
    first
        .curve
        .iter()
        .filter_map(|&(step, _)| {
            let at: Option<Vec<f64>> = task
                .runs
                .iter()
                .map(|r| r.curve.iter().find(|(s, _)| *s == step).map(|(_, a)| *a))
                .collect();
            let at = at?;
            Some((step, at.iter().sum::<f64>() / at.len() as f64))
        })
        .collect()
}

/// Each task of `genome` (named `name`) against the same task of `target`.
pub fn against(name: &str, genome: &[TaskScore], target: &[TaskScore]) -> Vec<TimeToTarget> {
    genome
        .iter()
        .zip(target)
        .map(|(g, t)| {
            let target_curve = mean_curve(t);
            let target_acc = target_curve.last().map_or(f64::NAN, |(_, a)| *a);
            let steps = steps_to_reach(&mean_curve(g), target_acc);
            let target_steps = steps_to_reach(&target_curve, target_acc);
            TimeToTarget {
                name: name.to_string(),
                task: g.task.clone(),
                target_acc,
                steps,
                target_steps,
                speedup: steps.zip(target_steps).map(|(s, t)| t as f64 / s as f64),
            }
        })
        .collect()
}

/// The geometric mean of the speed-ups, when every task reached the target.
pub fn geomean(rows: &[&TimeToTarget]) -> Option<f64> {
    let logs: Option<Vec<f64>> = rows.iter().map(|r| r.speedup.map(f64::ln)).collect();
    let logs = logs.filter(|l| !l.is_empty())?;
    Some((logs.iter().sum::<f64>() / logs.len() as f64).exp())
}

/// The rows as a table, with each genome's geometric mean over tasks.
pub fn table(target: &str, rows: &[TimeToTarget]) -> String {
    let mut out = format!(
        "\ntime to target ({target}'s final accuracy on the scoring split):\n{:<28} {:<14} {:>9} {:>9} {:>12} {:>9}\n",
        "genome", "task", "target", "steps", "target's", "speed-up"
    );
    let mut names: Vec<&str> = Vec::new();
    for r in rows {
        if !names.contains(&r.name.as_str()) {
            names.push(&r.name);
        }
    }
    let steps = |s: Option<u64>| s.map_or("not reached".to_string(), |s| s.to_string());
    for name in names {
        let own: Vec<&TimeToTarget> = rows.iter().filter(|r| r.name == name).collect();
        for r in &own {
            out += &format!(
                "{:<28} {:<14} {:>8.2}% {:>9} {:>12} {:>9}\n",
                crate::report::truncate(name, 28),
                crate::report::truncate(&r.task, 14),
                100.0 * r.target_acc,
                steps(r.steps),
                steps(r.target_steps),
                r.speedup.map_or("—".to_string(), |x| format!("{x:.2}×"))
            );
        }
        if let Some(g) = geomean(&own) {
            out += &format!(
                "{:<28} {:<14} {:>9} {:>9} {:>12} {:>8.2}×\n",
                "", "geometric mean", "", "", "", g
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_to_target_on_a_synthetic_curve() {
        // The target creeps to 0.80 at step 100; the genome passes 0.80 at step 40.
        let target = [(20, 0.5), (40, 0.62), (60, 0.70), (80, 0.78), (100, 0.80)];
        let faster = [(20, 0.6), (40, 0.81), (60, 0.84), (80, 0.85), (100, 0.86)];
        let slower = [(20, 0.3), (40, 0.4), (60, 0.5), (80, 0.6), (100, 0.7)];
        assert_eq!(steps_to_reach(&target, 0.80), Some(100));
        assert_eq!(steps_to_reach(&faster, 0.80), Some(40));
        assert_eq!(steps_to_reach(&slower, 0.80), None);
        let row = |name: &str, speedup| TimeToTarget {
            name: name.into(),
            task: "t".into(),
            target_acc: 0.8,
            steps: None,
            target_steps: Some(100),
            speedup,
        };
        let (a, b) = (row("a", Some(2.5)), row("a", Some(0.4)));
        assert!((geomean(&[&a, &b]).unwrap() - 1.0).abs() < 1e-12);
        assert_eq!(geomean(&[&a, &row("a", None)]), None, "a task not reached");
    }
}
