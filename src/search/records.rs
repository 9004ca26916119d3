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
pub const CHECKPOINT_VERSION: u32 = 5;
/// The search's best distinct genomes kept for the held-out stage and reports (at least).
pub const LEADERS: usize = 10;

/// Which protocol an evaluation ran under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The cut-down protocol of multi-fidelity screening.
    Screen,
    /// The full protocol (files name a run stopped early by learning-curve pruning `pruned`).
    #[serde(alias = "pruned")]
    Full,
    /// A held-out protocol: the search's best genomes re-checked (meta-validation).
    Holdout,
    /// The tuning grid (`tuning`) under the full protocol: its best point is the search's
    /// tuned baseline.
    Tune,
    /// The tuning grid under the held-out protocol: its best point is what `best.json` must
    /// beat.
    HoldoutTune,
}

impl Stage {
    /// The name in history lines and checkpoints.
    pub fn name(self) -> &'static str {
        match self {
            Stage::Screen => "screen",
            Stage::Full => "full",
            Stage::Holdout => "holdout",
            Stage::Tune => "tune",
            Stage::HoldoutTune => "holdout_tune",
        }
    }

    /// Whether this stage trains a tuning grid.
    pub fn tunes(self) -> bool {
        matches!(self, Stage::Tune | Stage::HoldoutTune)
    }
}

/// One evaluated genome, as `history.jsonl` and the checkpoint keep it (loss curves left out).
#[derive(Clone, Debug, PartialEq, Deserialize)]
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
    /// Where the genome came from (this generation's; none for the held-out stage).
    #[serde(default)]
    pub origin: Option<Origin>,
}

impl Evaluation {
    /// Whether learning-curve pruning stopped a run of it short: an outcome of a full
    /// evaluation, scored but capped like a screening score, and never a leader.
    pub fn pruned(&self) -> bool {
        self.stage == Stage::Full && self.score.pruned()
    }

    /// A full evaluation whose runs all went the whole way.
    pub fn ran_in_full(&self) -> bool {
        self.stage == Stage::Full && !self.pruned()
    }

    /// The stage as files name it: `pruned` for a pruned full evaluation.
    pub fn stage_label(&self) -> &'static str {
        match self.pruned() {
            true => "pruned",
            false => self.stage.name(),
        }
    }
}

impl Serialize for Evaluation {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut s = serializer.serialize_struct("Evaluation", 11)?;
        s.serialize_field("generation", &self.generation)?;
        s.serialize_field("index", &self.index)?;
        s.serialize_field("hash", &self.hash)?;
        s.serialize_field("genome", &self.genome)?;
        s.serialize_field("stage", self.stage_label())?;
        s.serialize_field("seeds", &self.seeds)?;
        s.serialize_field("score", &self.score)?;
        s.serialize_field("steps", &self.steps)?;
        s.serialize_field("cached", &self.cached)?;
        s.serialize_field("seconds", &self.seconds)?;
        match &self.origin {
            Some(origin) => s.serialize_field("origin", origin)?,
            None => s.skip_field("origin")?,
        }
        s.end()
    }
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
    /// The tuning grid's evaluations under this protocol, by grid point (empty without
    /// `tuning`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tuning: Vec<Option<Evaluation>>,
}

impl StageState {
    /// The tuned baseline: the grid point with the best score, once the whole grid is trained
    /// (a point that diverged on some task cannot be one).
    pub fn tuned(&self) -> Option<&Evaluation> {
        let grid: Option<Vec<&Evaluation>> = self.tuning.iter().map(Option::as_ref).collect();
        grid?
            .into_iter()
            .filter(|e| e.score.tasks.iter().all(|t| t.fitness > 0.0))
            .max_by(|a, b| a.score.vs_adam.total_cmp(&b.score.vs_adam))
    }
}

/// Everything needed to continue a run exactly, grouped as DEAP keeps a search's records: this
/// generation's population, each stage's scores, the hall of fame, the logbook and the GA.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub config: Config,
    /// Genomes trained side by side (stacked); part of what a run is, so it never changes.
    #[serde(default = "one")]
    pub batch_candidates: usize,
    pub population: Population,
    pub stages: Stages,
    pub hall_of_fame: HallOfFame,
    pub logbook: Logbook,
    pub ga: Ga,
}

/// The generation being scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Population {
    pub generation: usize,
    pub genomes: Vec<Genome>,
    /// Where each genome came from.
    pub origins: Vec<Origin>,
    /// Per genome: the seed group a survivor is re-evaluated on (noise-aware selection), fixed
    /// when the generation is bred; `None` for a genome scored as usual.
    pub reevaluate: Vec<Option<u64>>,
}

/// Where a genome of the population came from (its lineage, one step back).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Origin {
    /// A seed genome of generation 0, by the name it was given (`search.seed_genomes`).
    Seed { name: String },
    /// Drawn at random.
    Random,
    /// One of the previous generation's fittest, carried over unchanged.
    Elite { parent: String },
    /// A crossover of two parents (by hash), then mutated in `genes`.
    Crossover {
        parents: [String; 2],
        genes: Vec<String>,
    },
    /// A copy of one parent (by hash), mutated in `genes` (none: an identical copy).
    Mutation { parent: String, genes: Vec<String> },
    /// Bred before checkpoint version 5, which did not record lineage.
    Unrecorded,
}

impl Origin {
    /// The parents' hashes.
    pub fn parents(&self) -> Vec<&str> {
        match self {
            Origin::Elite { parent } | Origin::Mutation { parent, .. } => vec![parent],
            Origin::Crossover { parents, .. } => parents.iter().map(String::as_str).collect(),
            Origin::Seed { .. } | Origin::Random | Origin::Unrecorded => Vec::new(),
        }
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let genes = |genes: &[String]| match genes {
            [] => "no gene changed".to_string(),
            genes => format!("changed {}", genes.join(", ")),
        };
        match self {
            Origin::Seed { name } => write!(f, "seed genome {name}"),
            Origin::Random => write!(f, "random"),
            Origin::Elite { parent } => write!(f, "elite {parent}, unchanged"),
            Origin::Crossover { parents, genes: g } => {
                write!(
                    f,
                    "crossover of {} and {}, {}",
                    parents[0],
                    parents[1],
                    genes(g)
                )
            }
            Origin::Mutation { parent, genes: g } => {
                write!(f, "mutation of {parent}, {}", genes(g))
            }
            Origin::Unrecorded => write!(f, "not recorded (bred by an older evolve)"),
        }
    }
}

/// What each protocol has scored.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stages {
    /// Multi-fidelity screening (results stay empty without it).
    pub screen: StageState,
    /// Full-protocol evaluations; a genome of this generation without one is selected by its
    /// screening evaluation.
    pub full: StageState,
    /// Held-out protocol evaluations (meta-validation); `results` holds this generation's
    /// held-out check by rank.
    pub holdout: StageState,
}

/// The best genomes seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HallOfFame {
    /// The search's best distinct genomes by latest full score, best first (at least `LEADERS`,
    /// or the held-out `top`); pruned runs never lead.
    pub leaders: Vec<Evaluation>,
    /// The best genome by held-out score.
    pub best_holdout: Option<Evaluation>,
}

impl HallOfFame {
    /// The best genome by search score (its latest, seed-averaged evaluation).
    pub fn best(&self) -> Option<&Evaluation> {
        self.leaders.first()
    }

    /// Puts a full evaluation among the `keep` leaders, replacing the genome's older one (a
    /// survivor's score is its mean over more seeds now).
    pub fn rank(&mut self, evaluation: &Evaluation, keep: usize) {
        self.leaders.retain(|e| e.hash != evaluation.hash);
        let at = self
            .leaders
            .partition_point(|e| e.score.vs_adam >= evaluation.score.vs_adam);
        self.leaders.insert(at, evaluation.clone());
        self.leaders.truncate(keep);
    }
}

/// What the run has done so far.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Logbook {
    pub generations: Vec<GenerationStats>,
    /// Training steps done so far (reused scores cost none).
    pub total_steps: u64,
    pub evaluations: u64,
    /// Evaluations that reused the score of an identical genome (no training).
    pub reused: u64,
    /// Byte length of `history.jsonl` when this checkpoint was written.
    pub history_len: u64,
}

fn one() -> usize {
    1
}

impl Checkpoint {
    pub fn stage(&self, stage: Stage) -> &StageState {
        match stage {
            Stage::Screen => &self.stages.screen,
            Stage::Full | Stage::Tune => &self.stages.full,
            Stage::Holdout | Stage::HoldoutTune => &self.stages.holdout,
        }
    }

    pub fn stage_mut(&mut self, stage: Stage) -> &mut StageState {
        match stage {
            Stage::Screen => &mut self.stages.screen,
            Stage::Full | Stage::Tune => &mut self.stages.full,
            Stage::Holdout | Stage::HoldoutTune => &mut self.stages.holdout,
        }
    }

    /// The protocol of `stage` (screening cuts the full one to its budget).
    pub fn protocol(&self, stage: Stage) -> Option<crate::train::Protocol> {
        let c = &self.config;
        match stage {
            Stage::Full | Stage::Tune => Some(c.protocol.clone()),
            Stage::Screen => Some(c.fidelity.screening(&c.protocol)),
            Stage::Holdout | Stage::HoldoutTune => c.holdout.as_ref().map(|h| h.protocol.clone()),
        }
    }

    /// The genome `best.json` holds: the best held out when the run has a held-out protocol
    /// and has checked one, else the best by search score.
    pub fn winner(&self) -> Option<&Evaluation> {
        let fame = &self.hall_of_fame;
        fame.best_holdout.as_ref().or(fame.best())
    }

    /// (genomes of the run that have a selection score, genomes the run will score in all).
    pub fn scored(&self) -> (usize, usize) {
        let search = &self.config.search;
        let total = search.generations.saturating_mul(search.population);
        let this = (0..self.population.genomes.len())
            .filter(|&i| self.selected(i).is_some())
            .count();
        let generation = self.population.generation;
        let done = match generation < search.generations {
            true => (generation * search.population + this).min(total),
            false => total,
        };
        (done, total)
    }

    /// The evaluation genome `i` of this generation is selected by: its full one, else its
    /// screening one.
    pub fn selected(&self, i: usize) -> Option<&Evaluation> {
        let stages = &self.stages;
        stages.full.results[i]
            .as_ref()
            .or(stages.screen.results[i].as_ref())
    }

    /// A survivor due for re-scoring on seed group `group` must have been scored on exactly
    /// `group` groups (or `group + 1`, once re-scored), below the run's cap.
    fn check_reevaluation(&self, i: usize, group: u64) -> std::result::Result<(), String> {
        let seeds = self.config.protocol.seeds;
        let groups = self
            .stages
            .full
            .memo
            .get(&self.population.genomes[i].hash())
            .map(|s| crate::train::baseline::groups(s.seeds(), seeds as usize));
        let due = (1..self.config.search.max_seed_groups).contains(&group);
        if !due || !groups.is_some_and(|g| g == group || g == group + 1) {
            return Err(format!(
                "field `population.reevaluate[{i}]`: seed group {group}, but population.genomes[{i}] was scored on {} seed group(s) of at most {}; allowed: null or the next group",
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
        for i in 0..self.population.genomes.len() {
            self.check_slot(i)?;
        }
        let fame = &self.hall_of_fame;
        if let Some(e) = &fame.best_holdout {
            check_evaluation("hall_of_fame.best_holdout", e)?;
        }
        for (i, e) in fame.leaders.iter().enumerate() {
            check_evaluation(&format!("hall_of_fame.leaders[{i}]"), e)?;
        }
        for (i, e) in self.stages.holdout.results.iter().enumerate() {
            if let Some(e) = e {
                check_evaluation(&format!("stages.holdout.results[{i}]"), e)?;
            }
        }
        for (field, state) in [
            ("full", &self.stages.full),
            ("holdout", &self.stages.holdout),
        ] {
            for (i, e) in state.tuning.iter().enumerate() {
                if let Some(e) = e {
                    check_evaluation(&format!("stages.{field}.tuning[{i}]"), e)?;
                }
            }
        }
        for (field, stage, state) in [
            ("stages.full", Stage::Full, &self.stages.full),
            ("stages.screen", Stage::Screen, &self.stages.screen),
            ("stages.holdout", Stage::Holdout, &self.stages.holdout),
        ] {
            self.check_stage(field, stage, state)?;
        }
        Ok(())
    }

    /// One slot per genome, a generation within the run, counts that add up.
    fn check_counts(&self) -> std::result::Result<(), String> {
        let n = self.config.search.population;
        let population = &self.population;
        for (field, len) in [
            ("population.genomes", population.genomes.len()),
            ("population.reevaluate", population.reevaluate.len()),
            ("population.origins", population.origins.len()),
            ("stages.full.results", self.stages.full.results.len()),
            ("stages.screen.results", self.stages.screen.results.len()),
        ] {
            if len != n {
                return Err(format!(
                    "field `{field}`: {len} entries, but the run's population is {n}"
                ));
            }
        }
        if population.generation > self.config.search.generations {
            return Err(format!(
                "field `population.generation`: {} is past the run's {} generations",
                population.generation, self.config.search.generations
            ));
        }
        let log = &self.logbook;
        if log.reused > log.evaluations {
            return Err(format!(
                "field `logbook.reused`: {} reused of {} evaluations; allowed: at most `evaluations`",
                log.reused, log.evaluations
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
        let genome = &self.population.genomes[i];
        genome
            .validate()
            .map_err(|m| format!("field `population.genomes[{i}]`: {m}"))?;
        if let Some(group) = self.population.reevaluate[i] {
            self.check_reevaluation(i, group)?;
        }
        for (field, stage, state) in [
            ("stages.full", Stage::Full, &self.stages.full),
            ("stages.screen", Stage::Screen, &self.stages.screen),
        ] {
            let Some(e) = &state.results[i] else { continue };
            let field = format!("{field}.results[{i}]");
            check_evaluation(&field, e)?;
            if e.hash != genome.hash() || e.stage != stage {
                return Err(format!(
                    "field `{field}`: a {} evaluation of genome {}, but population.genomes[{i}] is {}",
                    e.stage_label(),
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
