//! The search's records: every evaluation, the state of each stage, the generation log and
//! the checkpoint that holds them all (with the GA's state), and the checks a checkpoint must
//! pass before anything trains on it. `run` keeps them on disk.
use crate::config::Config;
use crate::genome::Genome;
use crate::search::ga::Ga;
use crate::train::fitness::{Score, TaskScore};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The checkpoint format this evolve writes; older ones are migrated on load (`run::migrate`
/// says what each version changed), so a run resumes with the arithmetic it began with.
pub const CHECKPOINT_VERSION: u32 = 4;
/// The search's best distinct genomes kept for the held-out stage and reports (at least).
pub const LEADERS: usize = 10;

/// Which protocol an evaluation ran under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The cut-down protocol of multi-fidelity screening.
    Screen,
    /// The full protocol.
    Full,
    /// A held-out protocol: the search's best genomes re-checked (meta-validation).
    Holdout,
    /// The full protocol, stopped early by learning-curve pruning (`fidelity.prune`); kept with
    /// the full stage's results, scored but capped like a screening score.
    Pruned,
}

impl Stage {
    /// The name in history lines and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Screen => "screen",
            Stage::Full => "full",
            Stage::Holdout => "holdout",
            Stage::Pruned => "pruned",
        }
    }
}

/// One evaluated genome, as `history.jsonl` and the checkpoint keep it (loss curves left out).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub generation: usize,
    pub index: usize,
    pub hash: String,
    pub genome: Genome,
    pub stage: Stage,
    /// Runs behind each task's score (a survivor's grow with each seed group).
    #[serde(default)]
    pub seeds: u64,
    /// Scored against Adam under the same stage's protocol, on the same seeds.
    pub score: Score,
    /// Steps trained for this evaluation (0 when the score was reused).
    pub steps: u64,
    /// Whether the score was reused from an identical genome evaluated before.
    pub cached: bool,
    pub seconds: f64,
}

/// Best, mean and best-so-far fitness (vs Adam) of one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    pub generation: usize,
    pub best: f64,
    pub mean: f64,
    pub best_so_far: f64,
}

/// What training Adam's baseline cost, until a history line records it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub steps: u64,
    pub seconds: f64,
}

/// What one stage (screening or full) keeps: Adam's scores under its protocol, every genome's
/// score by hash (so identical genomes are never trained twice), and this generation's
/// evaluations by index.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    pub baseline: Option<Vec<TaskScore>>,
    /// Recorded on the history line of Adam's first evaluation at this stage.
    #[serde(default)]
    pub baseline_cost: Option<Cost>,
    pub memo: BTreeMap<String, Score>,
    pub results: Vec<Option<Evaluation>>,
}

/// Everything needed to continue a run exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub config: Config,
    pub generation: usize,
    pub population: Vec<Genome>,
    /// Per genome of this generation: the seed group a survivor is re-evaluated on (noise-aware
    /// selection), fixed when the generation is bred; `None` for a genome scored as usual.
    #[serde(default)]
    pub reevaluate: Vec<Option<u64>>,
    /// Full-protocol evaluations; a genome of this generation without one is selected by its
    /// screening evaluation.
    pub full: StageState,
    /// Multi-fidelity screening (results stay empty without it).
    pub screen: StageState,
    pub ga: Ga,
    /// The best genome by search score (its latest, seed-averaged evaluation).
    pub best: Option<Evaluation>,
    /// The search's best distinct genomes by latest full score, best first (at least `LEADERS`,
    /// or the held-out `top`).
    #[serde(default)]
    pub leaders: Vec<Evaluation>,
    /// Held-out protocol evaluations (meta-validation); `results` holds this generation's
    /// held-out check by rank.
    #[serde(default)]
    pub holdout: StageState,
    /// The best genome by held-out score.
    #[serde(default)]
    pub best_holdout: Option<Evaluation>,
    pub generations: Vec<GenerationStats>,
    /// Training steps done so far (reused scores cost none).
    pub total_steps: u64,
    pub evaluations: u64,
    /// Evaluations that reused the score of an identical genome (no training).
    pub reused: u64,
    /// Byte length of `history.jsonl` when this checkpoint was written.
    pub history_len: u64,
    /// Genomes trained side by side (stacked); part of what a run is, so it never changes.
    #[serde(default = "one")]
    pub batch_candidates: usize,
}

fn one() -> usize {
    1
}

impl Checkpoint {
    pub fn stage(&self, stage: Stage) -> &StageState {
        match stage {
            Stage::Screen => &self.screen,
            Stage::Full | Stage::Pruned => &self.full,
            Stage::Holdout => &self.holdout,
        }
    }

    pub fn stage_mut(&mut self, stage: Stage) -> &mut StageState {
        match stage {
            Stage::Screen => &mut self.screen,
            Stage::Full | Stage::Pruned => &mut self.full,
            Stage::Holdout => &mut self.holdout,
        }
    }

    /// The protocol of `stage` (screening cuts the full one to its budget).
    pub fn protocol(&self, stage: Stage) -> Option<crate::train::Protocol> {
        let c = &self.config;
        match stage {
            Stage::Full | Stage::Pruned => Some(c.protocol.clone()),
            Stage::Screen => Some(c.fidelity.screening(&c.protocol)),
            Stage::Holdout => c.holdout.as_ref().map(|h| h.protocol.clone()),
        }
    }

    /// The genome `best.json` holds: the best held out when the run has a held-out protocol
    /// and has checked one, else the best by search score.
    pub fn winner(&self) -> Option<&Evaluation> {
        self.best_holdout.as_ref().or(self.best.as_ref())
    }

    /// (genomes of the run that have a selection score, genomes the run will score in all).
    pub fn scored(&self) -> (usize, usize) {
        let search = &self.config.search;
        let total = search.generations.saturating_mul(search.population);
        let this = (0..self.population.len())
            .filter(|&i| self.selected(i).is_some())
            .count();
        let done = match self.generation < search.generations {
            true => (self.generation * search.population + this).min(total),
            false => total,
        };
        (done, total)
    }

    /// The evaluation genome `i` of this generation is selected by: its full one, else its
    /// screening one.
    pub fn selected(&self, i: usize) -> Option<&Evaluation> {
        self.full.results[i]
            .as_ref()
            .or(self.screen.results[i].as_ref())
    }

    /// A survivor due for re-scoring on seed group `group` must have been scored on exactly
    /// `group` groups (or `group + 1`, once re-scored), below the run's cap.
    fn check_reevaluation(&self, i: usize, group: u64) -> std::result::Result<(), String> {
        let seeds = self.config.protocol.seeds;
        let groups = self
            .full
            .memo
            .get(&self.population[i].hash())
            .map(|s| crate::train::baseline::groups(s.seeds(), seeds as usize));
        let due = (1..self.config.search.max_seed_groups).contains(&group);
        if !due || !groups.is_some_and(|g| g == group || g == group + 1) {
            return Err(format!(
                "field `reevaluate[{i}]`: seed group {group}, but population[{i}] was scored on {} seed group(s) of at most {}; allowed: null or the next group",
                groups.map_or("no".into(), |g| g.to_string()),
                self.config.search.max_seed_groups
            ));
        }
        Ok(())
    }

    /// Checks that the checkpoint describes a run this program can continue: a valid config,
    /// one slot per genome, valid genomes that match their evaluations, finite scores and a
    /// usable baseline. The message names the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.config
            .validate()
            .map_err(|m| format!("its config: {m}"))?;
        self.ga
            .params
            .validate()
            .map_err(|m| format!("field `ga.params`: {m}"))?;
        self.check_counts()?;
        for i in 0..self.population.len() {
            self.check_slot(i)?;
        }
        for (field, e) in [("best", &self.best), ("best_holdout", &self.best_holdout)] {
            if let Some(e) = e {
                check_evaluation(field, e)?;
            }
        }
        for (i, e) in self.leaders.iter().enumerate() {
            check_evaluation(&format!("leaders[{i}]"), e)?;
        }
        for (i, e) in self.holdout.results.iter().enumerate() {
            if let Some(e) = e {
                check_evaluation(&format!("holdout.results[{i}]"), e)?;
            }
        }
        for (field, stage, state) in [
            ("full", Stage::Full, &self.full),
            ("screen", Stage::Screen, &self.screen),
            ("holdout", Stage::Holdout, &self.holdout),
        ] {
            self.check_stage(field, stage, state)?;
        }
        Ok(())
    }

    /// One slot per genome, a generation within the run, counts that add up.
    fn check_counts(&self) -> std::result::Result<(), String> {
        let n = self.config.search.population;
        for (field, len) in [
            ("population", self.population.len()),
            ("reevaluate", self.reevaluate.len()),
            ("full.results", self.full.results.len()),
            ("screen.results", self.screen.results.len()),
        ] {
            if len != n {
                return Err(format!(
                    "field `{field}`: {len} entries, but the run's population is {n}"
                ));
            }
        }
        if self.generation > self.config.search.generations {
            return Err(format!(
                "field `generation`: {} is past the run's {} generations",
                self.generation, self.config.search.generations
            ));
        }
        if self.reused > self.evaluations {
            return Err(format!(
                "field `reused`: {} reused of {} evaluations; allowed: at most `evaluations`",
                self.reused, self.evaluations
            ));
        }
        if self.batch_candidates == 0 {
            return Err("field `batch_candidates`: 0; allowed: an integer ≥ 1".into());
        }
        Ok(())
    }

    /// Genome `i` is valid, due for re-scoring only on its next seed group, and its screening
    /// and full evaluations are of it.
    fn check_slot(&self, i: usize) -> std::result::Result<(), String> {
        let genome = &self.population[i];
        genome
            .validate()
            .map_err(|m| format!("field `population[{i}]`: {m}"))?;
        if let Some(group) = self.reevaluate[i] {
            self.check_reevaluation(i, group)?;
        }
        for (field, stage, state) in [
            ("full", Stage::Full, &self.full),
            ("screen", Stage::Screen, &self.screen),
        ] {
            let Some(e) = &state.results[i] else { continue };
            let field = format!("{field}.results[{i}]");
            check_evaluation(&field, e)?;
            let pruned = stage == Stage::Full && e.stage == Stage::Pruned;
            if e.hash != genome.hash() || (e.stage != stage && !pruned) {
                return Err(format!(
                    "field `{field}`: a {} evaluation of genome {}, but population[{i}] is {}",
                    e.stage.name(),
                    e.hash,
                    genome.hash()
                ));
            }
        }
        Ok(())
    }

    /// A stage's baseline covers its protocol's tasks on whole seed groups and is usable; its
    /// memo holds finite scores.
    fn check_stage(
        &self,
        field: &str,
        stage: Stage,
        state: &StageState,
    ) -> std::result::Result<(), String> {
        let protocol = self.protocol(stage);
        let tasks: Vec<String> = protocol.as_ref().map_or(Vec::new(), |p| {
            p.tasks.iter().map(|t| t.name.clone()).collect()
        });
        if let Some(b) = &state.baseline {
            let names: Vec<String> = b.iter().map(|t| t.task.clone()).collect();
            if names != tasks {
                return Err(format!(
                    "field `{field}.baseline`: scores for tasks {names:?}, but the protocol's tasks are {tasks:?}"
                ));
            }
            // Adam is trained on whole seed groups, every task alike.
            let seeds = protocol.as_ref().map_or(1, |p| p.seeds as usize);
            let runs: Vec<usize> = b.iter().map(|t| t.runs.len()).collect();
            if runs
                .iter()
                .any(|&r| r == 0 || r % seeds != 0 || r != runs[0])
            {
                return Err(format!(
                    "field `{field}.baseline`: {runs:?} runs per task; allowed: the same whole number of seed groups ({seeds} runs each) for every task"
                ));
            }
            crate::train::fitness::check_baseline(b)
                .map_err(|m| format!("field `{field}.baseline`: {m}"))?;
        }
        for (hash, score) in &state.memo {
            check_score(&format!("{field}.memo.{hash}"), score)?;
        }
        Ok(())
    }
}

fn check_evaluation(field: &str, e: &Evaluation) -> std::result::Result<(), String> {
    e.genome
        .validate()
        .map_err(|m| format!("field `{field}.genome`: {m}"))?;
    if e.hash != e.genome.hash() {
        return Err(format!(
            "field `{field}.hash`: {} is not the hash of its genome ({})",
            e.hash,
            e.genome.hash()
        ));
    }
    check_score(&format!("{field}.score"), &e.score)
}

fn check_score(field: &str, score: &Score) -> std::result::Result<(), String> {
    if score.tasks.is_empty() || !score.vs_adam.is_finite() || !score.raw.is_finite() {
        return Err(format!(
            "field `{field}`: {} task score(s), vs_adam {}, raw {}; allowed: at least one task and finite numbers",
            score.tasks.len(),
            score.vs_adam,
            score.raw
        ));
    }
    Ok(())
}
