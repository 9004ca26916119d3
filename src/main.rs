//! `evolve`: command-line parsing and dispatch. The work is done in the library.
use clap::{Args, Parser, Subcommand};
use evolve::config::Config;
use evolve::data::{self, DatasetKind};
use evolve::evaluator::Evaluator;
use evolve::genome::Genome;
use evolve::report::{self, ReplayDocument, ReplayEntry};
use evolve::{Error, Result};
use indicatif::{ProgressBar, ProgressStyle};
use std::path::PathBuf;
use std::process::ExitCode;

/// Discover deep-learning optimizers by genetic algorithm.
///
/// Without a subcommand, runs an evolution: `evolve --generations 5 --config configs/quick.json`.
#[derive(Parser)]
#[command(name = "evolve", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    evolve: EvolveArgs,
}

#[derive(Subcommand)]
enum Command {
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
    /// Download or verify datasets.
    #[command(subcommand)]
    Data(DataCommand),
}

#[derive(Subcommand)]
enum DataCommand {
    /// Fetch the official CIFAR-10 and MNIST files, verify checksums, unpack into the data root.
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

/// Flags shared by every command that trains.
#[derive(Args, Clone)]
struct ProtocolArgs {
    /// Config file (default: the built-in configs/quick.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Comma-separated task names from the config.
    #[arg(long, value_delimiter = ',')]
    tasks: Vec<String>,
    /// Training steps per run, for every task.
    #[arg(long)]
    steps: Option<u64>,
    /// Seeds (runs) per task.
    #[arg(long)]
    seeds: Option<u64>,
    /// Training-subset size, for every task.
    #[arg(long)]
    train_subset: Option<i64>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    /// Data root holding cifar10/ and mnist/ (else $EVOLVE_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

#[derive(Args)]
struct ReplayArgs {
    #[arg(required = true)]
    genomes: Vec<PathBuf>,
    #[command(flatten)]
    protocol: ProtocolArgs,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvolveArgs {
    #[arg(long)]
    generations: Option<usize>,
}

fn parse_dataset(s: &str) -> std::result::Result<DatasetKind, String> {
    DatasetKind::ALL
        .into_iter()
        .find(|k| k.dir_name() == s)
        .ok_or_else(|| format!("unknown dataset `{s}`; allowed: cifar10, mnist"))
}

impl ProtocolArgs {
    /// The config file with these flags applied.
    fn config(&self) -> Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::quick(),
        };
        if !self.tasks.is_empty() {
            config.select_tasks(&self.tasks)?;
        }
        for task in &mut config.protocol.tasks {
            task.steps = self.steps.unwrap_or(task.steps);
            task.train_subset = self.train_subset.unwrap_or(task.train_subset);
        }
        config.protocol.seeds = self.seeds.unwrap_or(config.protocol.seeds);
        config
            .validate()
            .map_err(|m| Error::Usage(format!("after applying flags: {m}")))?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Doctor { data_dir }) => doctor(data_dir),
        Some(Command::Check { genomes }) => check(&genomes),
        Some(Command::Replay(args)) => replay(&args),
        Some(Command::Data(DataCommand::Download { data_dir, datasets })) => {
            let root = data::resolve_root(data_dir.as_deref());
            let datasets = if datasets.is_empty() {
                DatasetKind::ALL.to_vec()
            } else {
                datasets
            };
            data::download::download(&root, &datasets)
                .map(|_| println!("datasets installed under {}", root.display()))
        }
        Some(Command::Data(DataCommand::Verify { root })) => verify(root),
        None => Err(Error::Usage(format!(
            "evolution is not wired yet (--generations {:?})",
            cli.evolve.generations
        ))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn doctor(data_dir: Option<PathBuf>) -> Result<()> {
    println!("evolve {}", env!("CARGO_PKG_VERSION"));
    println!(
        "libtorch: {}",
        option_env!("EVOLVE_LIBTORCH_VERSION").unwrap_or("unknown")
    );
    println!("CUDA available: {}", tch::Cuda::is_available());
    println!("CUDA devices: {}", tch::Cuda::device_count());
    for (i, name) in evolve::device::gpu_names().iter().enumerate() {
        println!("  cuda:{i}: {name}");
    }
    println!("cuDNN available: {}", tch::Cuda::cudnn_is_available());
    println!("CPU: {}", evolve::device::cpu_name());
    println!("CPU threads (libtorch): {}", tch::get_num_threads());
    println!(
        "default device (--device auto): {}",
        evolve::device::describe(tch::Device::cuda_if_available())
    );
    let root = data::resolve_root(data_dir.as_deref());
    println!(
        "data root: {} (from --data-dir, else ${}, else ./data)",
        root.display(),
        data::DATA_ENV
    );
    for kind in DatasetKind::ALL {
        let dir = root.join(kind.dir_name());
        let state = if dir.is_dir() {
            "found"
        } else {
            "missing (evolve data download, or --data-dir)"
        };
        println!("  {}: {} ({})", kind.dir_name(), state, dir.display());
    }
    Ok(())
}

fn check(paths: &[PathBuf]) -> Result<()> {
    let mut failures = 0;
    for path in paths {
        match Genome::load(path) {
            Ok(g) => println!("ok    {}  {}  {}", path.display(), g.hash(), g.describe()),
            Err(e) => {
                failures += 1;
                println!("error {e}");
            }
        }
    }
    match failures {
        0 => Ok(()),
        n => Err(Error::Usage(format!(
            "{n} of {} genome file(s) invalid",
            paths.len()
        ))),
    }
}

fn replay(args: &ReplayArgs) -> Result<()> {
    let genomes: Vec<Genome> = args
        .genomes
        .iter()
        .map(|p| Genome::load(p))
        .collect::<Result<_>>()?;
    let config = args.protocol.config()?;
    let device = evolve::device::parse(&args.protocol.device)?;
    let root = data::resolve_root(args.protocol.data_dir.as_deref());
    let mut evaluator = Evaluator::new(&config.protocol, device, &root)?;
    let bar = ProgressBar::new(config.protocol.total_steps() * (genomes.len() as u64 + 1));
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} steps {elapsed}<{eta}")
            .expect("valid template"),
    );
    evaluator.progress = Some(bar.clone());
    bar.set_message("adam (baseline)");
    let baseline = evaluator.baseline()?;
    let mut entries = Vec::new();
    for (genome, path) in genomes.iter().zip(&args.genomes) {
        bar.set_message(genome.label());
        let score = evaluator.evaluate(std::slice::from_ref(genome))?.remove(0);
        entries.push(ReplayEntry {
            name: genome.label(),
            file: path.display().to_string(),
            hash: genome.hash(),
            genome: genome.clone(),
            score,
        });
    }
    bar.finish_and_clear();
    let doc = ReplayDocument {
        protocol: config.protocol,
        device: evolve::device::describe(device),
        baseline,
        genomes: entries,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("plain data serialises")
        );
    } else {
        print!("{}", report::replay_table(&doc));
    }
    Ok(())
}

fn verify(root: Option<PathBuf>) -> Result<()> {
    let root = data::resolve_root(root.as_deref());
    let (reports, absent) = data::verify(&root)?;
    for r in &reports {
        println!(
            "{} ({}): {} train, {} test, labels {}..={}",
            r.dataset.dir_name(),
            r.folder.display(),
            r.train,
            r.test,
            r.label_range.0,
            r.label_range.1
        );
        for (name, size) in &r.files {
            println!("  {name:<32} {size:>12} bytes");
        }
        println!("  train histogram: {:?}", r.train_histogram);
        println!("  test histogram:  {:?}", r.test_histogram);
    }
    for kind in &absent {
        println!("{}: not present under {}", kind.dir_name(), root.display());
    }
    if reports.is_empty() {
        return Err(data::missing(DatasetKind::Cifar10, &root.join("cifar10")));
    }
    Ok(())
}
