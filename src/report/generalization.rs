//! The generalization report: how the search's best genomes fare on the held-out protocol
//! (meta-validation), so that a researcher sees whether a lead found on the proxy survives.
use crate::search::records::{Checkpoint, Evaluation};
use crate::train::fitness::{paired, Paired};
use crate::train::Protocol;
use serde::Serialize;

/// One of the search's best genomes, on both protocols.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// Rank by search score (1 = the search winner).
    pub rank: usize,
    pub hash: String,
    pub label: String,
    pub genome: String,
    /// Fitness / Adam's on the search protocol, and the seeds behind it.
    pub search: f64,
    pub search_seeds: u64,
    /// Fitness / Adam's on the held-out protocol (`None`: not checked there yet).
    pub held_out: Option<f64>,
    pub tasks: Vec<HeldOutTask>,
    /// Against Adam on the same held-out runs.
    pub paired: Option<Paired>,
    /// Fitness / the held-out tuned baseline's (with `tuning`; the comparison that counts).
    pub held_out_vs_tuned: Option<f64>,
}

/// A protocol's tuned baseline: the best point of the tuning grid.
#[derive(Clone, Debug, Serialize)]
pub struct Tuned {
    pub label: String,
    pub hash: String,
    pub genome: String,
    /// Fitness / Adam's on its protocol.
    pub vs_adam: f64,
}

impl Tuned {
    fn of(e: &Evaluation) -> Tuned {
        Tuned {
            label: e.genome.label(),
            hash: e.hash.clone(),
            genome: e.genome.describe(),
            vs_adam: e.score.vs_adam,
        }
    }
}

#[derive(Clone, Debug, Serialize)]
pub struct HeldOutTask {
    pub task: String,
    pub vs_adam: f64,
    /// Accuracy on the held-out protocol's scoring split (`val_acc` in `report --json`).
    #[serde(rename = "val_acc")]
    pub score_acc: f64,
    pub test_acc: Option<f64>,
    #[serde(rename = "adam_val_acc")]
    pub adam_score_acc: f64,
    pub adam_test_acc: Option<f64>,
    /// A text task's validation loss in bits per byte, the genome's and Adam's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bits_per_byte: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub adam_bits_per_byte: Option<f64>,
}

/// A comparator (the published genome by default) held out: how it fares against Adam and the
/// tuned baseline, and how `best.json` fares against it.
#[derive(Clone, Debug, Serialize)]
pub struct Compared {
    pub label: String,
    pub hash: String,
    pub vs_adam: f64,
    pub vs_tuned: Option<f64>,
    /// `best.json`'s held-out fitness / the comparator's.
    pub best_vs_it: Option<f64>,
}

/// What `summary.md` shows and `evolve report --json` prints.
#[derive(Clone, Debug, Serialize)]
pub struct Generalization {
    pub held_out_protocol: Protocol,
    pub rows: Vec<Row>,
    /// Spearman's ρ between search and held-out scores of the rows checked (3 or more).
    pub rank_correlation: Option<f64>,
    /// The genome `best.json` holds (best held out) and the search winner.
    pub winner: Option<String>,
    pub search_winner: Option<String>,
    /// The tuned baselines of the search and held-out protocols (with `tuning`).
    pub search_tuned: Option<Tuned>,
    pub held_out_tuned: Option<Tuned>,
    /// The comparators trained held out so far.
    pub comparators: Vec<Compared>,
    /// One plain sentence on whether the search winner's lead survives (and, with `tuning`, one
    /// on the tuned baseline).
    pub verdict: String,
}

/// The report for a run with a held-out protocol (`None` without one).
pub fn generalization(cp: &Checkpoint) -> Option<Generalization> {
    let holdout = cp.config.holdout.as_ref()?;
    let adam = cp.stages.holdout.baseline.as_deref().unwrap_or(&[]);
    let tuned = cp.stages.holdout.tuned();
    let mut listed: Vec<&Evaluation> = cp.hall_of_fame.leaders.iter().take(holdout.top).collect();
    if let Some(w) = &cp.hall_of_fame.best_holdout {
        if !listed.iter().any(|e| e.hash == w.hash) {
            listed.push(
                cp.hall_of_fame
                    .leaders
                    .iter()
                    .find(|e| e.hash == w.hash)
                    .unwrap_or(w),
            );
        }
    }
    let rows: Vec<Row> = listed
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let held = cp.stages.holdout.memo.get(&e.hash);
            Row {
                rank: i + 1,
                hash: e.hash.clone(),
                label: e.genome.label(),
                genome: e.genome.describe(),
                search: match e.stage {
                    crate::search::records::Stage::Holdout => f64::NAN,
                    _ => e.score.vs_adam,
                },
                search_seeds: e.seeds,
                held_out: held.map(|s| s.vs_adam),
                tasks: held.map_or(Vec::new(), |s| {
                    s.tasks
                        .iter()
                        .zip(adam)
                        .map(|(t, a)| {
                            let text = holdout
                                .protocol
                                .tasks
                                .iter()
                                .any(|task| task.name == t.task && !task.dataset.is_image());
                            HeldOutTask {
                                task: t.task.clone(),
                                vs_adam: t.fitness / a.first_runs(t.runs.len()).fitness,
                                score_acc: t.score_acc_mean,
                                test_acc: t.test_acc_mean,
                                adam_score_acc: a.score_acc_mean,
                                adam_test_acc: a.test_acc_mean,
                                bits_per_byte: t.bits_per_byte().filter(|_| text),
                                adam_bits_per_byte: a.bits_per_byte().filter(|_| text),
                            }
                        })
                        .collect()
                }),
                paired: held.and_then(|s| paired(&s.tasks, adam)),
                held_out_vs_tuned: held.zip(tuned).map(|(s, t)| s.relative_to(&t.score.tasks)),
            }
        })
        .collect();
    let checked: Vec<(f64, f64)> = rows
        .iter()
        .filter_map(|r| Some((r.search, r.held_out?)))
        .filter(|(s, _)| s.is_finite())
        .collect();
    let rank_correlation = (checked.len() >= 3).then(|| spearman(&checked));
    let mut verdict = verdict(cp, &rows);
    if let Some(t) = tuned {
        verdict += &tuned_verdict(cp, t);
    }
    let comparators = compared(cp, holdout);
    for c in &comparators {
        verdict += &compared_sentence(c);
    }
    Some(Generalization {
        held_out_protocol: holdout.protocol.clone(),
        rows,
        rank_correlation,
        winner: cp.winner().map(|e| e.hash.clone()),
        search_winner: cp.hall_of_fame.best().map(|e| e.hash.clone()),
        search_tuned: cp.stages.full.tuned().map(Tuned::of),
        held_out_tuned: tuned.map(Tuned::of),
        comparators,
        verdict,
    })
}

/// The comparators that have a held-out score.
fn compared(cp: &Checkpoint, holdout: &crate::config::Holdout) -> Vec<Compared> {
    let memo = &cp.stages.holdout.memo;
    let tuned = cp.stages.holdout.tuned();
    let best = cp.winner().and_then(|w| memo.get(&w.hash));
    holdout
        .comparator_genomes()
        .into_iter()
        .filter_map(|g| {
            let hash = g.hash();
            let score = memo.get(&hash)?;
            Some(Compared {
                label: g.label(),
                vs_adam: score.vs_adam,
                vs_tuned: tuned.map(|t| score.relative_to(&t.score.tasks)),
                best_vs_it: best.map(|b| b.relative_to(&score.tasks)),
                hash,
            })
        })
        .collect()
}

/// `The published genome `x` scores 1.07× Adam held out (1.00× the tuned baseline); best.json
/// scores 0.95× it.`
fn compared_sentence(c: &Compared) -> String {
    let tuned = c
        .vs_tuned
        .map_or(String::new(), |t| format!(", {t:.4}× the tuned baseline"));
    let best = c
        .best_vs_it
        .map_or(String::new(), |b| format!("; best.json scores {b:.4}× it"));
    let what = match c.label == crate::genome::PUBLISHED {
        true => "The published genome",
        false => "The comparator",
    };
    format!(
        " {what} `{}` (compared with, not a parent) scores {:.4}× Adam held out{tuned}{best}.",
        c.label, c.vs_adam
    )
}

fn verdict(cp: &Checkpoint, rows: &[Row]) -> String {
    let Some(top) = rows.first() else {
        return "No genome has been scored yet.".into();
    };
    let Some(held) = top.held_out else {
        return format!(
            "The search winner `{}` ({:.4}× Adam on the search protocol) has not been checked on the held-out protocol yet.",
            top.label, top.search
        );
    };
    let mut s = match held >= 1.0 {
        true => format!(
            "The search winner `{}` keeps a lead over Adam held out: {:.4}× Adam on the search protocol, {held:.4}× held out.",
            top.label, top.search
        ),
        false => format!(
            "The search winner `{}` led the search at {:.4}× Adam, but its lead disappears held out: {held:.4}× Adam there.",
            top.label, top.search
        ),
    };
    if let Some(w) = cp
        .hall_of_fame
        .best_holdout
        .as_ref()
        .filter(|w| w.hash != top.hash)
    {
        let adam = match w.hash == crate::genome::adam_hash() {
            true => " No genome of the search beats Adam held out.",
            false => "",
        };
        s += &format!(
            " best.json holds the best held out instead: `{}` at {:.4}× Adam (the search winner is in best-search.json).{adam}",
            w.genome.label(),
            w.score.vs_adam
        );
    }
    s
}

/// The sentence on the held-out tuned baseline `tuned`: whether `best.json` beats it there, and
/// when not, that `best.json` is the tuned baseline.
fn tuned_verdict(cp: &Checkpoint, tuned: &Evaluation) -> String {
    let against = |e: &Evaluation| {
        let held = cp.stages.holdout.memo.get(&e.hash).unwrap_or(&e.score);
        held.relative_to(&tuned.score.tasks)
    };
    match cp.winner() {
        Some(w) if w.hash == tuned.hash => {
            let best_found = cp
                .hall_of_fame
                .leaders
                .iter()
                .filter(|e| cp.stages.holdout.memo.contains_key(&e.hash))
                .map(|e| (e.genome.label(), against(e)))
                .max_by(|a, b| a.1.total_cmp(&b.1));
            let found = best_found.map_or(String::new(), |(label, x)| {
                format!(" (the best the search found, `{label}`, scores {x:.4}× it)")
            });
            format!(
                " No genome of the search beats the tuned baseline held out{found}: best.json is the tuned baseline `{}` ({:.4}× Adam held out).",
                tuned.genome.label(),
                tuned.score.vs_adam
            )
        }
        Some(w) => format!(
            " Against the tuned baseline `{}` ({:.4}× Adam held out), best.json scores {:.4}× held out.",
            tuned.genome.label(),
            tuned.score.vs_adam,
            against(w)
        ),
        None => String::new(),
    }
}

/// Spearman's rank correlation of the pairs (average ranks for ties).
pub fn spearman(pairs: &[(f64, f64)]) -> f64 {
    let ranks = |values: Vec<f64>| -> Vec<f64> {
        let mut order: Vec<usize> = (0..values.len()).collect();
        order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
        let mut r = vec![0.0; values.len()];
        let mut i = 0;
        while i < order.len() {
            let mut j = i;
            while j + 1 < order.len() && values[order[j + 1]] == values[order[i]] {
                j += 1;
            }
            for &k in &order[i..=j] {
                r[k] = (i + j) as f64 / 2.0 + 1.0;
            }
            i = j + 1;
        }
        r
    };
    let a = ranks(pairs.iter().map(|p| p.0).collect());
    let b = ranks(pairs.iter().map(|p| p.1).collect());
    let (ma, mb) = (
        crate::train::fitness::mean_std(&a).0,
        crate::train::fitness::mean_std(&b).0,
    );
    let cov: f64 = a.iter().zip(&b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    match va * vb > 0.0 {
        true => cov / (va * vb).sqrt(),
        false => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::spearman;

    #[test]
    fn spearman_is_one_for_the_same_order_and_minus_one_reversed() {
        let same = [(1.0, 10.0), (2.0, 20.0), (3.0, 25.0), (4.0, 40.0)];
        assert!((spearman(&same) - 1.0).abs() < 1e-12);
        let reversed = [(1.0, 4.0), (2.0, 3.0), (3.0, 2.0), (4.0, 1.0)];
        assert!((spearman(&reversed) + 1.0).abs() < 1e-12);
        let tied = [(1.0, 1.0), (1.0, 2.0), (2.0, 3.0)];
        assert!((spearman(&tied) - 0.8660254037844387).abs() < 1e-9);
    }
}
