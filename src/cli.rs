//! The command line as clap types: what `evolve` accepts, with its help text (ripgrep's
//! `flags` module, in small). `main.rs` dispatches on it.
use clap::{Args, Parser, Subcommand};
use evolve::config::{Config, ExecutorKind};
use evolve::train::data::DatasetKind;
use evolve::{Error, Result};
use std::path::PathBuf;
use tch::Device;

/// Discover deep-learning optimizers by genetic algorithm.
///
/// Without a subcommand, runs an evolution: `evolve --generations 5 --config configs/quick.json`.
#[derive(Parser)]
#[command(name = "evolve", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub evolve: EvolveArgs,
}

#[derive(Subcommand)]
pub enum Command {
    /// Print libtorch version, CUDA devices, CPU threads and where datasets were found.
    Doctor {
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
    /// Validate genome files and print each in one line.
    Check {
        #[arg(required = true)]
        genomes: Vec<PathBuf>,
    },
    /// Train genomes under a protocol and compare them with Adam.
    Replay(ReplayArgs),
    /// Where a run stands (works while it runs): generation, best so far, top 5, ETA.
    Status { run: PathBuf },
    /// A run's generalization report: its best genomes on the search and held-out protocols.
    Report {
        run: PathBuf,
        /// Print one JSON document instead of Markdown.
        #[arg(long)]
        json: bool,
    },
    /// Train the work items of one task of a job (started by the `workers` and `slurm`
    /// executors; results go into the run directory, which the driver merges).
    Worker(evolve::run::executor::WorkerArgs),
    /// Download or verify datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Write a run's best genome (or a genome file) as JSON or as a PyTorch optimizer.
    Export {
        /// A run directory (runs/NAME) or a genome file.
        source: PathBuf,
        /// Output file, a regular file (default, or `-`: standard output).
        #[arg(long)]
        out: Option<PathBuf>,
        #[arg(long, value_enum, default_value = "json")]
        format: ExportFormat,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
pub enum ExportFormat {
    Json,
    Pytorch,
}

#[derive(Subcommand)]
pub enum DataCommand {
    /// Fetch the official CIFAR-10, MNIST and Fashion-MNIST files, verify checksums, unpack into the data root.
    Download {
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Which datasets (default: all).
        #[arg(long, value_delimiter = ',', value_parser = parse_dataset)]
        datasets: Vec<DatasetKind>,
    },
    /// Check every dataset under ROOT: record counts, file sizes, label range, class histogram.
    Verify { root: Option<PathBuf> },
}

/// Where to train: flags shared by every command that trains.
#[derive(Args)]
pub struct Place {
    /// Config file (default: the built-in configs/quick.json).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = evolve::device::parse_flag)]
    pub device: Device,
    /// Data root holding cifar10/, mnist/ and fashion-mnist/ (else $EVOLVE_DATA_DIR, else ./data).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Genomes trained side by side in one stacked network (default: 1 on CPU, 8 on CUDA; a
    /// resumed run keeps its own).
    #[arg(long, value_parser = at_least_one)]
    pub batch_candidates: Option<usize>,
}

#[derive(Args)]
pub struct ReplayArgs {
    #[arg(required = true)]
    pub genomes: Vec<PathBuf>,
    #[command(flatten)]
    pub place: Place,
    #[command(flatten)]
    pub protocol: ProtocolOverrides,
    /// Train under the config's held-out protocol (`holdout`) instead of its search protocol.
    #[arg(long)]
    pub holdout: bool,
    /// Base of the run seeds (fresh seeds: a number the search never used).
    #[arg(long, allow_negative_numbers = true, value_parser = seed_flag)]
    pub seed: Option<u64>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Also train every genome and Adam at these multiples of their learning rates
    /// (comma-separated, e.g. 0.3,1,3), scored against Adam at its own.
    #[arg(long, value_delimiter = ',')]
    pub lr_scale: Vec<f64>,
    /// With --lr-scale: write the sensitivity plot (SVG) here.
    #[arg(long, requires = "lr_scale")]
    pub lr_plot: Option<PathBuf>,
    /// Measure accuracy on the scoring split every N steps, and report each genome's time to
    /// the target's final accuracy (AlgoPerf's metric).
    #[arg(long, value_name = "N")]
    pub eval_every: Option<u64>,
    /// With --eval-every: the genome file (one of those replayed, e.g. a run's tuned baseline)
    /// whose final accuracy is the target; default Adam's.
    #[arg(long, requires = "eval_every")]
    pub target: Option<PathBuf>,
}

#[derive(Args)]
pub struct EvolveArgs {
    /// Run directory (default: runs/<config>-<unix time>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue the run in this directory exactly where it stopped.
    #[arg(long, conflicts_with = "out")]
    pub resume: Option<PathBuf>,
    /// No progress bars or log lines.
    #[arg(long)]
    pub quiet: bool,
    #[command(flatten)]
    pub place: Place,
    #[command(flatten)]
    pub protocol: ProtocolOverrides,
    #[command(flatten)]
    pub search: SearchOverrides,
    #[command(flatten)]
    pub executor: ExecutorOverrides,
}

pub fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    let most = evolve::train::protocol::MAX_BATCH_CANDIDATES;
    match s.parse::<usize>() {
        Ok(k) if (1..=most).contains(&k) => Ok(k),
        _ => Err(format!("`{s}`; allowed: an integer ≥ 1, at most {most}")),
    }
}

pub fn parse_dataset(s: &str) -> std::result::Result<DatasetKind, String> {
    DatasetKind::ALL
        .into_iter()
        .find(|k| k.dir_name() == s || k.config_name() == s)
        .ok_or_else(|| format!("unknown dataset `{s}`; allowed: {}", DatasetKind::names()))
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
    pub fn apply(&self, config: &mut Config) {
        let e = &mut config.executor;
        e.kind = self.executor.unwrap_or(e.kind);
        e.workers = self.workers.unwrap_or(e.workers);
        if !self.devices.is_empty() {
            e.devices = self.devices.clone();
        }
        e.sbatch_args.extend(self.sbatch_args.iter().cloned());
        e.retries = self.retries.unwrap_or(e.retries);
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
            // A command task's script owns its data and splits.
            if task.command.is_none() {
                task.train_subset = self.train_subset.unwrap_or(task.train_subset);
                task.validation = self.validation.unwrap_or(task.validation);
            }
        }
        config.protocol.seeds = self.seeds.unwrap_or(config.protocol.seeds);
        Ok(())
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
    pub fn apply(&self, config: &mut Config) {
        let search = &mut config.search;
        search.generations = self.generations.unwrap_or(search.generations);
        search.population = self.population.unwrap_or(search.population);
        if let Some(seed) = self.seed {
            search.seed = seed;
            config.protocol.seed = seed;
        }
        config.fidelity.enabled = self.fidelity.unwrap_or(config.fidelity.enabled);
    }
}

/// A `--seed` value; a negative or malformed one is refused with the allowed range (clap alone
/// would take `-1` for an unknown flag).
fn seed_flag(s: &str) -> std::result::Result<u64, String> {
    s.parse::<u64>()
        .map_err(|_| format!("`{s}`; allowed: an integer 0..={}", u64::MAX))
}

/// Applies every flag to `config`, then validates once: the error names the field a flag set.
pub fn apply(
    config: &mut Config,
    protocol: &ProtocolOverrides,
    search: Option<&SearchOverrides>,
    executor: Option<&ExecutorOverrides>,
) -> Result<()> {
    protocol.apply(config)?;
    if let Some(search) = search {
        search.apply(config);
    }
    if let Some(executor) = executor {
        executor.apply(config);
    }
    config
        .validate()
        .map_err(|m| Error::Usage(format!("after applying flags: {m}")))
}
