//! The run configuration: the training protocol (what a fitness evaluation is) and the search
//! (population, selection, variation). Files in `configs/`; command-line flags override them.
use crate::error::{Error, Result};
use crate::genes::GeneKind;
use crate::train::Task;
use serde::{Deserialize, Serialize};
use std::path::Path;

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

    /// The screening rung of multi-fidelity selection: every task cut to `budget` of its steps
    /// (at least one), when `score_images` is set scored on the first that many images of its
    /// scoring split (the same images for every genome), and in `fidelity.precision` when set.
    pub fn screening(&self, fidelity: &Fidelity) -> Protocol {
        let mut p = self.clone();
        for t in &mut p.tasks {
            t.steps = ((t.steps as f64 * fidelity.budget).ceil() as u64).max(1);
            t.score_images = fidelity.score_images;
            t.precision = fidelity.precision.unwrap_or(t.precision);
        }
        p
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
            if self.tasks[..i].iter().any(|o| o.name == t.name) {
                return Err(format!("field `{field}.tasks[{i}].name`: `{}` appears twice; task names must be unique", t.name));
            }
        }
        Ok(())
    }
}

/// Seed groups per genome are bounded: each costs a full evaluation.
pub const MAX_SEED_GROUPS: u64 = 100;

// Upper bounds on every count a config or flag sets, far above any real search (the paper's is
// 50 genomes × 50 generations × 500 steps × 2 seeds) and low enough that no allocation sized by
// one can exhaust memory or a start-up never end. The README lists them.
/// Training steps of one task's run (its loss curve is kept: 4 bytes a step).
pub const MAX_STEPS: u64 = 1_000_000;
/// Runs (seeds) per task.
pub const MAX_SEEDS: u64 = 1_000;
/// Images per training step.
pub const MAX_BATCH: i64 = 65_536;
/// Genomes per generation.
pub const MAX_POPULATION: usize = 10_000;
pub const MAX_GENERATIONS: usize = 100_000;
/// Genomes trained side by side in one stacked network.
pub const MAX_BATCH_CANDIDATES: usize = 1_024;
/// Worker processes, devices, array tasks at once, windows per array task.
pub const MAX_WORKERS: usize = 4_096;
/// Genomes re-checked on the held-out protocol.
pub const MAX_HOLDOUT_TOP: usize = 1_000;
/// Pruning points per run.
pub const MAX_PRUNE_POINTS: usize = 100;
/// What `fidelity.prune.margin` may be: a factor on Adam's loss.
pub const PRUNE_MARGIN: [f64; 2] = [1.0, 100.0];

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e3779b97f4a7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d049bb133111eb);
    z ^ (z >> 31)
}

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
    /// published one), filling the rest with random genomes.
    pub include_shipped: bool,
    /// Noise-aware selection: a genome that survives into a later generation is trained again
    /// on a fresh group of `protocol.seeds` seeds, up to this many groups, and is selected by
    /// its mean over all of them (1 = every genome is scored once).
    pub max_seed_groups: u64,
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
            max_seed_groups: 3,
        }
    }
}

/// Every rate and bound of the variation operators. Log-scaled scalars are in log10 units.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GaParams {
    /// Probability that a child comes from crossover (else it is a copy of one parent).
    pub crossover_rate: f64,
    /// Probability that each scalar gene is perturbed.
    pub mutation_rate: f64,
    /// Std of the Gaussian step on log10(lr), log10(ε), log10(weight decay), at full strength.
    pub log_sigma: f64,
    /// Std of the step on β1 and β2 (then clamped to their ranges).
    pub beta_sigma: f64,
    /// Std of the log-normal factor on a term weight.
    pub weight_sigma: f64,
    pub add_term_rate: f64,
    pub remove_term_rate: f64,
    pub change_term_rate: f64,
    pub flag_flip_rate: f64,
    /// Mutation strength falls linearly from 1 to this over the generations.
    pub final_strength: f64,
    pub max_terms: usize,
    pub lr_log10: [f64; 2],
    pub eps_log10: [f64; 2],
    pub weight_decay_log10: [f64; 2],
    pub beta1: [f64; 2],
    pub beta2: [f64; 2],
    pub term_weight: [f64; 2],
    /// Warmup lengths as a fraction of the shortest task's steps.
    pub warmup_fraction: [f64; 2],
    /// Elementwise gradient clipping `c` (log10), when on.
    pub grad_clip_log10: [f64; 2],
    /// Lookahead's period k and step α, when on.
    pub lookahead_k: [u64; 2],
    pub lookahead_alpha: [f64; 2],
}

impl Default for GaParams {
    fn default() -> Self {
        GaParams {
            crossover_rate: 0.7,
            mutation_rate: 0.3,
            log_sigma: 0.3,
            beta_sigma: 0.05,
            weight_sigma: 0.3,
            add_term_rate: 0.1,
            remove_term_rate: 0.1,
            change_term_rate: 0.1,
            flag_flip_rate: 0.05,
            final_strength: 0.3,
            max_terms: 4,
            lr_log10: [-5.0, -1.0],
            eps_log10: [-10.0, -6.0],
            weight_decay_log10: [-6.0, -2.0],
            beta1: [0.5, 0.999],
            beta2: [0.8, 0.9999],
            term_weight: [0.05, 3.0],
            warmup_fraction: [0.0, 0.3],
            grad_clip_log10: [-1.0, 1.0],
            lookahead_k: [5, 10],
            lookahead_alpha: [0.3, 0.8],
        }
    }
}

/// The log10 ranges a genome's positive scalars may be drawn from: 10^x stays a finite,
/// non-zero float.
const LOG10_LIMIT: f64 = 300.0;

impl GaParams {
    /// Every rate a probability, every σ finite and ≥ 0, every range ordered, finite and inside
    /// what a genome allows, so that the operators cannot panic or breed an invalid genome.
    pub fn validate(&self) -> std::result::Result<(), String> {
        let rates = [
            ("crossover_rate", self.crossover_rate),
            ("mutation_rate", self.mutation_rate),
            ("add_term_rate", self.add_term_rate),
            ("remove_term_rate", self.remove_term_rate),
            ("change_term_rate", self.change_term_rate),
            ("flag_flip_rate", self.flag_flip_rate),
        ];
        for (name, p) in rates {
            if !(0.0..=1.0).contains(&p) {
                return Err(format!(
                    "field `ga.{name}`: {p}; allowed: a probability in [0, 1]"
                ));
            }
        }
        let sigmas = [
            ("log_sigma", self.log_sigma),
            ("beta_sigma", self.beta_sigma),
            ("weight_sigma", self.weight_sigma),
            ("final_strength", self.final_strength),
        ];
        for (name, x) in sigmas {
            if !(x.is_finite() && x >= 0.0) {
                return Err(format!(
                    "field `ga.{name}`: {x}; allowed: a finite number ≥ 0"
                ));
            }
        }
        if self.max_terms == 0 || self.max_terms > crate::genome::MAX_TERMS {
            return Err(format!(
                "field `ga.max_terms`: {}; allowed: 1..={}",
                self.max_terms,
                crate::genome::MAX_TERMS
            ));
        }
        // Every scalar gene's range, from the gene table; then the ranges of the other genes.
        let mut ranges: Vec<(&str, [f64; 2], f64, f64, &str)> = Vec::new();
        for gene in &crate::genes::GENES {
            match &gene.kind {
                GeneKind::Log {
                    range, range_field, ..
                } => ranges.push((
                    range_field,
                    range(self),
                    -LOG10_LIMIT,
                    LOG10_LIMIT,
                    "[-300, 300] (10^x: a positive value)",
                )),
                GeneKind::Bounded {
                    range, range_field, ..
                } => ranges.push((
                    range_field,
                    range(self),
                    0.0,
                    0.9999999,
                    "[0, 1) (a genome's β)",
                )),
                _ => {}
            }
        }
        ranges.extend([
            (
                "term_weight",
                self.term_weight,
                1e-300,
                1e300,
                "(0, 1e300] (positive weights)",
            ),
            (
                "warmup_fraction",
                self.warmup_fraction,
                0.0,
                1.0,
                "[0, 1] (of the shortest task)",
            ),
            (
                "lookahead_alpha",
                self.lookahead_alpha,
                1e-9,
                1.0,
                "(0, 1] (Lookahead's step)",
            ),
        ]);
        let [k_lo, k_hi] = self.lookahead_k;
        if !(1 <= k_lo && k_lo <= k_hi && k_hi <= 1_000_000) {
            return Err(format!(
                "field `ga.lookahead_k`: [{k_lo}, {k_hi}]; allowed: an ordered range within [1, 1000000]"
            ));
        }
        for (name, [lo, hi], min, max, allowed) in ranges {
            if !(lo.is_finite() && hi.is_finite() && min <= lo && lo <= hi && hi <= max) {
                return Err(format!(
                    "field `ga.{name}`: [{lo}, {hi}]; allowed: an ordered range [low, high] within {allowed}"
                ));
            }
        }
        Ok(())
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
    /// Screening runs in this precision (`bf16`: mixed precision, 1.78× on AMX CPUs); `null`:
    /// each task's own. The full rung always keeps the task's own precision, so a bf16 rounding
    /// shift can only change which genomes get promoted, never a full score.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub precision: Option<crate::models::Precision>,
    /// Learning-curve pruning of full runs; `null`: off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<Prune>,
}

/// Learning-curve pruning in the full rung: at each fraction `at` of a task's steps, a run whose
/// mean training loss over the last `window` steps is more than `margin` times Adam's (same
/// task, same seed, same step) stops there. `margin` compares losses, not accuracies: at 1 every
/// run behind Adam's loss stops, even one that would end level with Adam's accuracy; a run whose
/// loss equals Adam's never does. A point that falls on or after a task's last step is dropped
/// (stopping there saves nothing). Its evaluation is recorded with stage `pruned` and
/// capped like a screening score, so it never outranks a completed run. Comparing with Adam
/// alone (not with the generation's other runs) keeps a genome's score a function of the genome
/// and the protocol: memoised, resumable and the same under every executor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Prune {
    pub at: Vec<f64>,
    pub margin: f64,
    pub window: usize,
}

impl Default for Prune {
    fn default() -> Self {
        Prune {
            at: vec![0.25, 0.5, 0.75],
            margin: 1.25,
            window: 25,
        }
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

/// Command-line changes to the executor (for `evolve`; allowed on resume).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ExecutorOverrides {
    /// Where evaluations run: local (this process), workers (processes on this machine) or
    /// slurm (job arrays).
    #[arg(long, value_enum)]
    pub executor: Option<ExecutorKind>,
    /// Worker processes for `--executor workers` on one device.
    #[arg(long)]
    pub workers: Option<usize>,
    /// Comma-separated devices, one worker each (`--executor workers`), or the device of every
    /// Slurm array task.
    #[arg(long, value_delimiter = ',')]
    pub devices: Vec<String>,
    /// An extra sbatch argument (repeatable), after the config's: `--sbatch-arg=--gres=gpu:1`.
    #[arg(long = "sbatch-arg", allow_hyphen_values = true)]
    pub sbatch_args: Vec<String>,
    /// Times a failed worker task is resubmitted.
    #[arg(long)]
    pub retries: Option<u32>,
}

impl ExecutorOverrides {
    pub fn apply(&self, config: &mut Config) -> Result<()> {
        let e = &mut config.executor;
        e.kind = self.executor.unwrap_or(e.kind);
        e.workers = self.workers.unwrap_or(e.workers);
        if !self.devices.is_empty() {
            e.devices = self.devices.clone();
        }
        e.sbatch_args.extend(self.sbatch_args.iter().cloned());
        e.retries = self.retries.unwrap_or(e.retries);
        checked(config)
    }
}

/// Command-line changes to the protocol (for `evolve` and `evolve replay`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct ProtocolOverrides {
    /// Comma-separated task names from the config.
    #[arg(long, value_delimiter = ',')]
    pub tasks: Vec<String>,
    /// Training steps per run, for every task.
    #[arg(long)]
    pub steps: Option<u64>,
    /// Seeds (runs) per task.
    #[arg(long)]
    pub seeds: Option<u64>,
    /// Training-subset size, for every task.
    #[arg(long)]
    pub train_subset: Option<i64>,
    /// Validation-split size (images held out of training to score on), for every task.
    #[arg(long)]
    pub validation: Option<i64>,
}

impl ProtocolOverrides {
    pub fn apply(&self, config: &mut Config) -> Result<()> {
        if !self.tasks.is_empty() {
            config.select_tasks(&self.tasks)?;
        }
        for task in &mut config.protocol.tasks {
            task.steps = self.steps.unwrap_or(task.steps);
            task.train_subset = self.train_subset.unwrap_or(task.train_subset);
            task.validation = self.validation.unwrap_or(task.validation);
        }
        config.protocol.seeds = self.seeds.unwrap_or(config.protocol.seeds);
        checked(config)
    }
}

/// Command-line changes to the search (for `evolve`).
#[derive(Clone, Debug, Default, clap::Args)]
pub struct SearchOverrides {
    /// Generations to run.
    #[arg(long)]
    pub generations: Option<usize>,
    /// Genomes per generation.
    #[arg(long)]
    pub population: Option<usize>,
    /// Seed of the GA and of the training runs.
    #[arg(long, allow_negative_numbers = true, value_parser = seed_flag)]
    pub seed: Option<u64>,
    /// Multi-fidelity selection (on/off): screen every new genome on a cut-down budget, train
    /// only the best in full (the config's `fidelity` section sets budget and fraction).
    #[arg(long, action = clap::ArgAction::Set, value_parser = clap::builder::BoolishValueParser::new())]
    pub fidelity: Option<bool>,
}

impl SearchOverrides {
    pub fn apply(&self, config: &mut Config) -> Result<()> {
        let search = &mut config.search;
        search.generations = self.generations.unwrap_or(search.generations);
        search.population = self.population.unwrap_or(search.population);
        if let Some(seed) = self.seed {
            search.seed = seed;
            config.protocol.seed = seed;
        }
        config.fidelity.enabled = self.fidelity.unwrap_or(config.fidelity.enabled);
        checked(config)
    }
}

/// A `--seed` value; a negative or malformed one is refused with the allowed range (clap alone
/// would take `-1` for an unknown flag).
pub fn seed_flag(s: &str) -> std::result::Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("`{s}`; allowed: an integer 0..={}", u64::MAX))
}

fn checked(config: &Config) -> Result<()> {
    config
        .validate()
        .map_err(|m| Error::Usage(format!("after applying flags: {m}")))
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
        if let Some(h) = &self.holdout {
            h.protocol.validate("holdout.protocol")?;
            if !(1..=MAX_GENERATIONS).contains(&h.every) || !(1..=MAX_HOLDOUT_TOP).contains(&h.top)
            {
                return Err(format!(
                    "field `holdout`: every {}, top {}; allowed: every 1..={MAX_GENERATIONS}, top 1..={MAX_HOLDOUT_TOP}",
                    h.every, h.top
                ));
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
            let fractions = p.at.iter().all(|a| *a > 0.0 && *a < 1.0);
            let [lo, hi] = PRUNE_MARGIN;
            if !(1..=MAX_PRUNE_POINTS).contains(&p.at.len())
                || !fractions
                || !(lo..=hi).contains(&p.margin)
                || !(1..=MAX_STEPS as usize).contains(&p.window)
            {
                return Err(format!(
                    "field `fidelity.prune`: at {:?}, margin {}, window {}; allowed: at 1 to {MAX_PRUNE_POINTS} fractions in (0, 1) of each task's steps, margin in [{lo}, {hi}] (a factor on Adam's mean training loss: a run is stopped when its loss exceeds margin × Adam's), window 1..={MAX_STEPS} steps",
                    p.at, p.margin, p.window
                ));
            }
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
