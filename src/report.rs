//! What a researcher reads: replay tables and documents. Computes no fitness.
use crate::fitness::{Score, TaskScore};
use crate::genome::Genome;
use serde::Serialize;

/// One genome's replay result.
#[derive(Serialize)]
pub struct ReplayEntry {
    pub name: String,
    pub file: String,
    pub hash: String,
    pub genome: Genome,
    pub score: Score,
}

/// The `--json` document of `evolve replay`.
#[derive(Serialize)]
pub struct ReplayDocument {
    pub protocol: crate::config::Protocol,
    pub device: String,
    pub baseline: Vec<TaskScore>,
    pub genomes: Vec<ReplayEntry>,
}

/// A plain-text table: per genome and task, accuracy mean ± std over seeds, fitness, Δ and %
/// vs Adam, wall time; then each genome's aggregate.
pub fn replay_table(doc: &ReplayDocument) -> String {
    let mut out = format!(
        "{:<28} {:<10} {:>16} {:>8} {:>9} {:>8} {:>8}\n",
        "genome", "task", "val acc", "fitness", "Δ adam", "% adam", "time"
    );
    for entry in &doc.genomes {
        for (t, b) in entry.score.tasks.iter().zip(&doc.baseline) {
            let diverged = if t.diverged() { " (diverged)" } else { "" };
            out += &format!(
                "{:<28} {:<10} {:>7.2}% ± {:>5.2} {:>8.4} {:>+9.4} {:>+7.1}% {:>7.1}s{}\n",
                truncate(&entry.name, 28),
                truncate(&t.task, 10),
                100.0 * t.val_acc_mean,
                100.0 * t.val_acc_std,
                t.fitness,
                t.fitness - b.fitness,
                100.0 * (t.fitness / b.fitness - 1.0),
                t.seconds,
                diverged
            );
        }
        out += &format!(
            "{:<28} {:<10} {:>16} {:>8.4} {:>9} {:>7.3}× {:>7.1}s\n",
            "",
            "aggregate",
            "",
            entry.score.raw,
            "",
            entry.score.vs_adam,
            entry.score.seconds()
        );
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}
