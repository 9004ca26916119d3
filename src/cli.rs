//! The command line as clap types: what `evolve` accepts, with its help text (ripgrep's
//! `flags` module, in small). `main.rs` dispatches on it.
use clap::{Args, Parser, Subcommand};
use evolve::config::{ExecutorOverrides, ProtocolOverrides, SearchOverrides};
use evolve::data::DatasetKind;
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
    Worker(evolve::executor::WorkerArgs),
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
    #[arg(long, allow_negative_numbers = true, value_parser = evolve::config::seed_flag)]
    pub seed: Option<u64>,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    pub json: bool,
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
    let most = evolve::config::MAX_BATCH_CANDIDATES;
    match s.parse::<usize>() {
        Ok(k) if (1..=most).contains(&k) => Ok(k),
        _ => Err(format!("`{s}`; allowed: an integer ≥ 1, at most {most}")),
    }
}

pub fn parse_dataset(s: &str) -> std::result::Result<DatasetKind, String> {
    DatasetKind::ALL
        .into_iter()
        .find(|k| k.dir_name() == s)
        .ok_or_else(|| format!("unknown dataset `{s}`; allowed: {}", DatasetKind::names()))
}
