//! What a run says about itself: `evolve status RUN` (while it runs, too) and the closing
//! message of a finished `evolve`.
use super::{
    RunDir, BEST, BEST_SEARCH, CHECKPOINT, CONFIG, FITNESS_SVG, HISTORY, PROGRESS_SVG, SUMMARY,
    TUNED,
};
use crate::error::{Error, Result};
use crate::genome::Genome;
use crate::report;
use crate::search::records::{Checkpoint, Evaluation};
use crate::train::fitness::Score;
use std::path::Path;

/// What `evolve status RUN` prints: readable while the run goes on (it takes no lock).
pub fn status(path: &Path) -> Result<String> {
    let dir = RunDir::open(path);
    let cp = dir.load_checkpoint()?;
    let history = dir.history(&cp)?;
    let holder = crate::run::RunLock::holder(path);
    let modified = |name: &str| std::fs::metadata(dir.file(name)).and_then(|m| m.modified());
    let until = match holder {
        Some(_) => Ok(std::time::SystemTime::now()),
        None => modified(CHECKPOINT),
    };
    let elapsed = match (modified(CONFIG), until) {
        (Ok(start), Ok(end)) => end.duration_since(start).unwrap_or_default(),
        _ => Default::default(),
    };
    Ok(format!(
        "run {}\n{}",
        path.display(),
        report::status_text(&cp, &history, holder.as_deref(), elapsed)
    ))
}

/// What a finished `evolve` prints: the best genome and the files it wrote (only those).
pub fn closing_message(cp: &Checkpoint, dir: &Path) -> String {
    let mut s = String::new();
    let line = |what: &str, e: &Evaluation, protocol: &str| {
        format!(
            "{what}: {} ({:.4}× Adam on the {protocol} protocol, {} seed(s)) {}\n",
            e.genome.label(),
            e.score.vs_adam,
            e.seeds,
            e.genome.describe()
        )
    };
    if let Some(held) = &cp.hall_of_fame.best_holdout {
        s += &line("best (held out)", held, "held-out");
        if let Some(tuned) = cp.stages.holdout.tuned() {
            s += &format!(
                "    {:.4}× the tuned baseline {} held out (the comparison that counts; {:.4}× Adam)\n",
                held.score.relative_to(&tuned.score.tasks),
                tuned.genome.label(),
                tuned.score.vs_adam
            );
        }
    }
    if let Some(best) = cp.hall_of_fame.best() {
        s += &line("best by search score", best, "search");
    }
    if let Some(g) = crate::report::generalization::generalization(cp) {
        s += &g.verdict;
        s += "\n";
    }
    let history = RunDir::open(dir).history(cp).unwrap_or_default();
    if let Some(winner) = cp.winner() {
        if let Some(sentence) = crate::report::lineage::seed_sentence(&history, &winner.hash) {
            s += &sentence;
            s += "\n";
        }
    }
    let written: Vec<&str> = [
        BEST,
        BEST_SEARCH,
        TUNED,
        SUMMARY,
        FITNESS_SVG,
        PROGRESS_SVG,
        HISTORY,
    ]
    .into_iter()
    .filter(|f| std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0))
    .collect();
    let files = match written.is_empty() {
        true => format!("{CONFIG} and {CHECKPOINT} only: no generation ran"),
        false => written.join(", "),
    };
    s + &format!(
        "run directory: {} ({files}); {} training steps\n",
        dir.display(),
        cp.logbook.total_steps
    )
}

/// The genome to export and, for a run, its scores: a run directory gives its `best.json` (the
/// best held out when the run has a held-out protocol) with the scores it was chosen by, a
/// genome file gives itself.
pub fn export_source(path: &Path) -> Result<(Genome, Option<Score>)> {
    if path.is_dir() {
        let dir = RunDir::open(path);
        let best = dir.file(BEST);
        if !best.exists() {
            return Err(Error::run(
                path,
                format!("no {BEST} yet: the run has not finished an evaluation"),
            ));
        }
        let genome = Genome::load(&best)?;
        let score = dir
            .load_checkpoint()
            .ok()
            .and_then(|cp| cp.winner().cloned())
            .filter(|w| w.hash == genome.hash())
            .map(|w| w.score);
        Ok((genome, score))
    } else {
        Ok((Genome::load(path)?, None))
    }
}
