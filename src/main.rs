//! `evolve`: command-line parsing and dispatch. The work is done in the library.
use clap::{Args, Parser, Subcommand};
use evolve::config::Config;
use evolve::data::{self, DatasetKind};
use evolve::evaluator::Evaluator;
use evolve::evolution::{self, RunOptions};
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
enum ExportFormat {
    Json,
    Pytorch,
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
    /// Genomes trained side by side in one stacked network (default: 1 on CPU, 8 on CUDA).
    #[arg(long, value_parser = at_least_one)]
    batch_candidates: Option<usize>,
}

#[derive(Args)]
struct EvolveArgs {
    /// Generations to run.
    #[arg(long)]
    generations: Option<usize>,
    /// Genomes per generation.
    #[arg(long)]
    population: Option<usize>,
    /// Seed of the GA and of the training runs.
    #[arg(long)]
    seed: Option<u64>,
    /// Run directory (default: runs/<config>-<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory exactly where it stopped.
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// No progress bars or per-generation lines.
    #[arg(long)]
    quiet: bool,
    /// Multi-fidelity selection: screen every new genome on a cut-down budget, train only the
    /// best in full (the config's `fidelity` section sets budget and fraction).
    #[arg(long, value_parser = ["on", "off"])]
    fidelity: Option<String>,
    /// Genomes trained side by side in one stacked network (default: 1 on CPU, 8 on CUDA; a
    /// resumed run keeps its own).
    #[arg(long, value_parser = at_least_one)]
    batch_candidates: Option<usize>,
    #[command(flatten)]
    protocol: ProtocolArgs,
}

fn at_least_one(s: &str) -> std::result::Result<usize, String> {
    match s.parse::<usize>() {
        Ok(k) if k >= 1 => Ok(k),
        _ => Err(format!("`{s}`; allowed: an integer ≥ 1")),
    }
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
        let config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::quick(),
        };
        self.apply(config)
    }

    /// Whether any flag that changes the protocol was given.
    fn changes_protocol(&self) -> bool {
        self.config.is_some()
            || !self.tasks.is_empty()
            || self.steps.is_some()
            || self.seeds.is_some()
            || self.train_subset.is_some()
    }

    fn apply(&self, mut config: Config) -> Result<Config> {
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
        Some(Command::Export {
            source,
            out,
            format,
        }) => export(&source, out.as_deref(), format),
        None => evolution(&cli.evolve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(Error::Interrupted(signal)) => ExitCode::from(128 + signal as u8),
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
    evaluator.batch_candidates = args
        .batch_candidates
        .unwrap_or_else(|| evolution::default_batch_candidates(device));
    let bar = ProgressBar::new(config.protocol.total_steps());
    bar.set_style(
        ProgressStyle::with_template("{msg:>24} [{bar:30}] {pos}/{len} steps {elapsed}<{eta}")
            .expect("valid template"),
    );
    evaluator.progress = Some(bar.clone());
    bar.set_message("adam (baseline)");
    let baseline = evaluator.baseline()?;
    let mut entries = Vec::new();
    bar.set_message(format!("{} genome(s)", genomes.len()));
    let scores = evaluator.evaluate(&genomes)?;
    for ((genome, path), score) in genomes.iter().zip(&args.genomes).zip(scores) {
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
    let mut mismatched: Vec<Error> = reports
        .iter()
        .filter_map(|r| r.count_mismatch().map(|m| Error::data(&r.folder, m)))
        .collect();
    for e in &mismatched[..mismatched.len().saturating_sub(1)] {
        eprintln!("error: {e}");
    }
    match mismatched.pop() {
        Some(last) => Err(last),
        None => Ok(()),
    }
}

impl EvolveArgs {
    fn changes_search(&self) -> bool {
        self.generations.is_some()
            || self.population.is_some()
            || self.seed.is_some()
            || self.fidelity.is_some()
    }

    fn apply(&self, config: Config) -> Result<Config> {
        let mut config = self.protocol.apply(config)?;
        config.search.generations = self.generations.unwrap_or(config.search.generations);
        config.search.population = self.population.unwrap_or(config.search.population);
        if let Some(seed) = self.seed {
            config.search.seed = seed;
            config.protocol.seed = seed;
        }
        if let Some(fidelity) = &self.fidelity {
            config.fidelity.enabled = fidelity == "on";
        }
        config
            .validate()
            .map_err(|m| Error::Usage(format!("after applying flags: {m}")))?;
        Ok(config)
    }
}

fn evolution(args: &EvolveArgs) -> Result<()> {
    evolve::interrupt::install();
    let options = RunOptions {
        device: evolve::device::parse(&args.protocol.device)?,
        data_root: data::resolve_root(args.protocol.data_dir.as_deref()),
        quiet: args.quiet,
        batch_candidates: args.batch_candidates,
    };
    let (dir, result) = match &args.resume {
        Some(dir) => {
            let requested = if args.protocol.changes_protocol() || args.changes_search() {
                let base = match &args.protocol.config {
                    Some(path) => Config::load(path)?,
                    None => Config::load(&dir.join(evolution::CONFIG))?,
                };
                Some(args.apply(base)?)
            } else {
                None
            };
            (
                dir.clone(),
                evolution::resume(dir, requested.as_ref(), &options),
            )
        }
        None => {
            let config = args.protocol.config().and_then(|c| args.apply(c))?;
            let dir = args.out.clone().unwrap_or_else(|| {
                let stem = args
                    .protocol
                    .config
                    .as_deref()
                    .and_then(|p| p.file_stem())
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "quick".into());
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs())
                    .unwrap_or(0);
                PathBuf::from(format!("runs/{stem}-{now}"))
            });
            if !args.quiet {
                eprintln!(
                    "evolving into {} on {}",
                    dir.display(),
                    evolve::device::describe(options.device)
                );
            }
            (dir.clone(), evolution::start(config, &dir, &options))
        }
    };
    match result {
        Ok(cp) => {
            if let Some(best) = &cp.best {
                println!(
                    "best: {} ({:.4}× Adam) {}",
                    best.genome.label(),
                    best.score.vs_adam,
                    best.genome.describe()
                );
            }
            let written: Vec<&str> = [
                evolution::BEST,
                evolution::SUMMARY,
                evolution::FITNESS_SVG,
                evolution::HISTORY,
            ]
            .into_iter()
            .filter(|f| std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0))
            .collect();
            let files = match written.is_empty() {
                true => format!(
                    "{} and {} only: no generation ran",
                    evolution::CONFIG,
                    evolution::CHECKPOINT
                ),
                false => written.join(", "),
            };
            println!(
                "run directory: {} ({files}); {} training steps",
                dir.display(),
                cp.total_steps
            );
            Ok(())
        }
        Err(Error::Interrupted(signal)) => {
            eprintln!(
                "interrupted by {}; progress is saved. Resume with: evolve --resume {}",
                evolve::interrupt::name(signal),
                dir.display()
            );
            Err(Error::Interrupted(signal))
        }
        Err(e) => Err(e),
    }
}

fn export(
    source: &std::path::Path,
    out: Option<&std::path::Path>,
    format: ExportFormat,
) -> Result<()> {
    let (genome, score) = evolve::export::source(source)?;
    let text = match format {
        ExportFormat::Json => {
            serde_json::to_string_pretty(&genome).expect("plain data serialises") + "\n"
        }
        ExportFormat::Pytorch => evolve::export::pytorch_source(&genome, score.as_ref()),
    };
    match out.filter(|p| p.as_os_str() != "-") {
        Some(path) => {
            evolve::fsutil::write_atomic(path, text.as_bytes())?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(())
}
