//! The run configuration: the training protocol (what a fitness evaluation is) and the search
//! (population, selection, variation). Files in `configs/`; command-line flags override them.
use crate::error::{Error, Result};
use crate::genome::genes::GaParams;
use crate::genome::Genome;
use crate::train::Protocol;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Seed groups per genome are bounded: each costs a full evaluation.
pub const MAX_SEED_GROUPS: u64 = 100;

// Upper bounds on every count the search and executor sections set (see `train::protocol` for
// the protocol's), far above any real search and low enough that no start-up can run without end.
/// Genomes per generation.
pub const MAX_POPULATION: usize = 10_000;
pub const MAX_GENERATIONS: usize = 100_000;
/// Worker processes, devices, array tasks at once, windows per array task.
pub const MAX_WORKERS: usize = 4_096;
/// Genomes re-checked on the held-out protocol.
pub const MAX_HOLDOUT_TOP: usize = 1_000;

/// The outer loop: Marfinetz 2025's population 50, 50 generations, 3 elites, tournament 4.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Search {
    pub population: usize,
    pub generations: usize,
    pub elites: usize,
    pub tournament: usize,
    /// Seed of the GA's random stream.
    pub seed: u64,
    /// Start from the shipped genomes (SGD, Adam, AdamW, RMSprop, Lion, Signum, Eve, the
    /// published one), filling the rest with random genomes (when `seed_genomes` is not given).
    pub include_shipped: bool,
    /// The genomes generation 0 starts from, each a shipped genome's name or a path to a
    /// genome file (ending in `.json`), filled up with random genomes; given, it replaces
    /// `include_shipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seed_genomes: Option<Vec<String>>,
    /// Noise-aware selection: a genome that survives into a later generation is trained again
    /// on a fresh group of `protocol.seeds` seeds, up to this many groups, and is selected by
    /// its mean over all of them (1 = every genome is scored once).
    pub max_seed_groups: u64,
}

impl Search {
    /// Generation 0's seed genomes with the names they were given: `seed_genomes` (shipped
    /// names resolved, files loaded and validated), else every shipped genome with
    /// `include_shipped`, else none.
    pub fn seeds(&self) -> Result<Vec<(String, Genome)>> {
        let shipped = || {
            crate::genome::SHIPPED
                .map(|(name, _)| name.to_string())
                .to_vec()
        };
        let names = match (&self.seed_genomes, self.include_shipped) {
            (Some(list), _) => list.clone(),
            (None, true) => shipped(),
            (None, false) => Vec::new(),
        };
        let resolve = |seed: String| {
            let genome = match crate::genome::is_shipped(&seed) {
                true => crate::genome::shipped(&seed),
                false => Genome::load(Path::new(&seed))?,
            };
            Ok((seed, genome))
        };
        names.into_iter().map(resolve).collect()
    }
}

impl Default for Search {
    fn default() -> Self {
        Search {
            population: 50,
            generations: 50,
            elites: 3,
            tournament: 4,
            seed: 0,
            include_shipped: true,
            seed_genomes: None,
            max_seed_groups: 3,
        }
    }
}

/// Multi-fidelity selection (successive halving with one screening rung, Jamieson & Talwalkar
/// 2016): every new candidate first trains `budget` of each task's steps; only the best `promote`
/// fraction of them (at least one) is trained under the full protocol. The others keep their
/// screening score for selection, capped at the generation's worst full score so that a screened-out
/// genome never outranks a fully trained one. Off, the loop is the plain protocol exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Fidelity {
    pub enabled: bool,
    /// Screening budget, as a fraction of every task's steps.
    pub budget: f64,
    /// Fraction of a generation's screened candidates trained in full (rounded down, at least one).
    pub promote: f64,
    /// Screening scores on the first this many images of each task's scoring split (their
    /// score only ranks genomes for promotion); `null`: the whole split. The full rung always
    /// scores on the whole split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score_images: Option<i64>,
    /// Screening runs in this precision (`bf16`: mixed precision, faster where the hardware has bf16 units); `null`:
    /// each task's own. The full rung always keeps the task's own precision, so a bf16 rounding
    /// shift can only change which genomes get promoted, never a full score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<crate::train::models::Precision>,
    /// Learning-curve pruning of full runs; `null`: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<crate::train::prune::Prune>,
}

impl Fidelity {
    /// The screening rung of `protocol`: every task cut to `budget` of its steps
    /// (at least one), when `score_images` is set scored on the first that many images of its
    /// scoring split (the same images for every genome), and in `fidelity.precision` when set.
    pub fn screening(&self, protocol: &Protocol) -> Protocol {
        let (fidelity, mut p) = (self, protocol.clone());
        for t in &mut p.tasks {
            t.steps = ((t.steps as f64 * fidelity.budget).ceil() as u64).max(1);
            t.score_images = fidelity.score_images;
            t.precision = fidelity.precision.unwrap_or(t.precision);
        }
        p
    }
}

impl Default for Fidelity {
    fn default() -> Self {
        Fidelity {
            enabled: false,
            budget: 0.125,
            promote: 0.2,
            score_images: None,
            precision: None,
            prune: None,
        }
    }
}

/// Meta-validation (as in Lion's search, Chen et al. 2023): the search's best genomes are
/// re-checked on held-out protocols (harder or different tasks, other seeds), and the winner is
/// the best of them there, so that a rule that only wins the short proxy race is not handed out.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holdout {
    /// The held-out protocol: each of its tasks is a held-out task.
    pub protocol: Protocol,
    /// Re-check every this many generations, and after the last.
    pub every: usize,
    /// How many of the search's best distinct genomes are re-checked.
    pub top: usize,
    /// Shipped genomes trained on the held-out protocol beside the search's best, to compare
    /// with and never handed out as `best.json` (default: the published genome, so every report
    /// says how a discovery fares against it).
    #[serde(default = "default_comparators")]
    pub comparators: Vec<String>,
}

fn default_comparators() -> Vec<String> {
    vec![crate::genome::PUBLISHED.to_string()]
}

impl Holdout {
    /// The comparators' genomes (names checked by `Config::validate`).
    pub fn comparator_genomes(&self) -> Vec<crate::genome::Genome> {
        self.comparators
            .iter()
            .filter(|n| crate::genome::is_shipped(n))
            .map(|n| crate::genome::shipped(n))
            .collect()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub protocol: Protocol,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holdout: Option<Holdout>,
    #[serde(default)]
    pub search: Search,
    #[serde(default)]
    pub ga: GaParams,
    #[serde(default)]
    pub fidelity: Fidelity,
    /// Tuned baselines (absent: none; `{}`: the default AdamW grid).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tuning: Option<crate::train::tuning::Tuning>,
    /// Where evaluations run. Not part of what a run is: a resumed run may change it.
    #[serde(default)]
    pub executor: ExecutorConfig,
}

/// Which executor trains a stage's windows (see `executor`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ExecutorKind {
    /// In this process (the default).
    #[default]
    Local,
    /// Worker processes on this machine, one per device (`devices`) or `workers` of them.
    Workers,
    /// One Slurm job array per stage; the run directory (on a shared filesystem) is where
    /// work items and results meet.
    Slurm,
}

/// The `executor` section: where evaluations run, and how faults are retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    pub kind: ExecutorKind,
    /// `workers`: worker processes when `devices` is empty (each on the run's `--device`).
    pub workers: usize,
    /// `workers`: one worker per device (`cuda:0`, `cuda:1`, …). `slurm`: the device of every
    /// array task (the first entry; default `auto`, the GPU Slurm gave the task if any).
    pub devices: Vec<String>,
    /// `slurm`: extra `#SBATCH` arguments (`--partition=gpu`, `--gres=gpu:1`, `--time=1:00:00`).
    pub sbatch_args: Vec<String>,
    /// `slurm`: array tasks running at once (`--array=…%max_parallel`).
    pub max_parallel: usize,
    /// Times a failed task (non-zero exit, node failure, time limit, preemption) is resubmitted.
    pub retries: u32,
    /// `slurm`: windows per array task, to amortise process start and dataset load.
    pub windows_per_task: usize,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            kind: ExecutorKind::Local,
            workers: 1,
            devices: Vec::new(),
            sbatch_args: Vec::new(),
            max_parallel: 64,
            retries: 2,
            windows_per_task: 1,
        }
    }
}

impl ExecutorConfig {
    pub fn validate(&self) -> std::result::Result<(), String> {
        let counts = [self.workers, self.max_parallel, self.windows_per_task];
        if counts.iter().any(|n| !(1..=MAX_WORKERS).contains(n)) || self.devices.len() > MAX_WORKERS
        {
            return Err(format!(
                "field `executor`: workers {}, max_parallel {}, windows_per_task {}, {} devices; allowed: each 1..={MAX_WORKERS}, at most {MAX_WORKERS} devices",
                self.workers, self.max_parallel, self.windows_per_task, self.devices.len()
            ));
        }
        // These reach a batch script or a command line: a newline would become a line of its own.
        for (field, values) in [
            ("sbatch_args", &self.sbatch_args),
            ("devices", &self.devices),
        ] {
            for (i, value) in values.iter().enumerate() {
                if value.chars().any(char::is_control) {
                    return Err(format!(
                        "field `executor.{field}[{i}]`: `{}` holds a control character (a newline, tab or the like); allowed: printable text, one argument per entry",
                        value.escape_debug()
                    ));
                }
            }
        }
        if self.retries > 100 {
            return Err(format!(
                "field `executor.retries`: {}; allowed: 0..=100",
                self.retries
            ));
        }
        for d in &self.devices {
            let ok = matches!(d.as_str(), "auto" | "cpu" | "cuda")
                || d.strip_prefix("cuda:")
                    .is_some_and(|n| n.parse::<usize>().is_ok());
            if !ok {
                return Err(format!(
                    "field `executor.devices`: `{d}`; allowed: auto, cpu, cuda, cuda:N"
                ));
            }
        }
        Ok(())
    }
}

/// The CPU-friendly default, built in.
pub const QUICK: &str = include_str!("../configs/quick.json");

impl Config {
    pub fn from_json(text: &str, origin: &str) -> Result<Config> {
        let err = |message: String| Error::Config {
            origin: origin.to_string(),
            message,
        };
        crate::fsutil::parse_checked(text, Config::validate).map_err(err)
    }

    pub fn load(path: &Path) -> Result<Config> {
        Config::from_json(
            &crate::fsutil::read_to_string(path)?,
            &path.display().to_string(),
        )
    }

    /// The config file at `path`, else the built-in quick config.
    pub fn load_or_quick(path: Option<&Path>) -> Result<Config> {
        path.map_or_else(|| Ok(Config::quick()), Config::load)
    }

    pub fn quick() -> Config {
        Config::from_json(QUICK, "configs/quick.json").expect("the built-in config is valid")
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        self.protocol.validate("protocol")?;
        if let Some(t) = &self.tuning {
            t.validate()?;
        }
        if let Some(h) = &self.holdout {
            h.protocol.validate("holdout.protocol")?;
            if !(1..=MAX_GENERATIONS).contains(&h.every) || !(1..=MAX_HOLDOUT_TOP).contains(&h.top)
            {
                return Err(format!(
                    "field `holdout`: every {}, top {}; allowed: every 1..={MAX_GENERATIONS}, top 1..={MAX_HOLDOUT_TOP}",
                    h.every, h.top
                ));
            }
            for (i, name) in h.comparators.iter().enumerate() {
                if name == "adam" {
                    return Err(format!("field `holdout.comparators[{i}]`: `adam` is the yardstick every genome is scored against already; name another shipped genome"));
                }
                if !crate::genome::is_shipped(name) {
                    return Err(format!(
                        "field `holdout.comparators[{i}]`: `{name}` is not a shipped genome; allowed: {}",
                        crate::genome::shipped_names()
                    ));
                }
            }
        }
        let s = &self.search;
        if !(2..=MAX_POPULATION).contains(&s.population)
            || s.elites >= s.population
            || s.tournament == 0
            || s.tournament > s.population
        {
            return Err(format!(
                "field `search`: population {}, elites {}, tournament {}; allowed: population 2..={MAX_POPULATION}, elites < population, 1 ≤ tournament ≤ population",
                s.population, s.elites, s.tournament
            ));
        }
        for (i, seed) in s.seed_genomes.iter().flatten().enumerate() {
            let known = crate::genome::is_shipped(seed);
            if !known && !seed.ends_with(".json") {
                return Err(format!(
                    "field `search.seed_genomes[{i}]`: `{seed}` is not a shipped genome; allowed: {}, or a path to a genome file (ending in .json)",
                    crate::genome::shipped_names()
                ));
            }
        }
        if s.generations > MAX_GENERATIONS {
            return Err(format!(
                "field `search.generations`: {}; allowed: 0..={MAX_GENERATIONS}",
                s.generations
            ));
        }
        if !(1..=MAX_SEED_GROUPS).contains(&s.max_seed_groups) {
            return Err(format!(
                "field `search.max_seed_groups`: {}; allowed: 1..={MAX_SEED_GROUPS}",
                s.max_seed_groups
            ));
        }
        let f = &self.fidelity;
        if let Some(n) = f.score_images.filter(|&n| n < 1) {
            return Err(format!(
                "field `fidelity.score_images`: {n}; allowed: an integer ≥ 1, or null (the whole split)"
            ));
        }
        if let Some(p) = &f.prune {
            p.validate()?;
        }
        if !(f.budget > 0.0 && f.budget <= 1.0 && f.promote > 0.0 && f.promote <= 1.0) {
            return Err(format!(
                "field `fidelity`: budget {}, promote {}; allowed: both in (0, 1]",
                f.budget, f.promote
            ));
        }
        self.executor.validate()?;
        self.ga.validate()
    }

    /// Keeps only the named tasks (the `--tasks` flag); an unknown name lists the known ones.
    pub fn select_tasks(&mut self, names: &[String]) -> Result<()> {
        let known: Vec<String> = self.protocol.tasks.iter().map(|t| t.name.clone()).collect();
        for n in names {
            if !known.contains(n) {
                return Err(Error::Usage(format!(
                    "--tasks: unknown task `{n}`; this config has: {}",
                    known.join(", ")
                )));
            }
        }
        self.protocol.tasks.retain(|t| names.contains(&t.name));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::Config;

    #[test]
    fn the_shipped_configs_are_valid() {
        for (name, text) in [
            ("quick", super::QUICK),
            (
                "marfinetz2025",
                include_str!("../configs/marfinetz2025.json"),
            ),
            (
                "marfinetz2025-table",
                include_str!("../configs/marfinetz2025-table.json"),
            ),
        ] {
            let config = Config::from_json(text, name).unwrap_or_else(|e| panic!("{e}"));
            assert!(
                config.holdout.is_some() || name.ends_with("table"),
                "{name}: searches check their winner held out"
            );
        }
    }
}
