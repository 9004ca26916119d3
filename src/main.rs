//! `evolve`: parse the command line, call the library, print. The work is done in the library.
use clap::{Args, Parser, Subcommand};
use evolve::config::{Config, ProtocolOverrides, SearchOverrides};
use evolve::data::{self, DatasetKind};
use evolve::evolution::{self, RunOptions};
use evolve::replay::ReplayOptions;
use evolve::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use tch::Device;

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
    /// Where a run stands (works while it runs): generation, best so far, top 5, ETA.
    Status { run: PathBuf },
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

/// Where to train: flags shared by every command that trains.
#[derive(Args)]
struct Place {
    /// Config file (default: the built-in configs/quick.json).
    #[arg(long)]
    config: Option<PathBuf>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = evolve::device::parse_flag)]
    device: Device,
    /// Data root holding cifar10/ and mnist/ (else $EVOLVE_DATA_DIR, else ./data).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Genomes trained side by side in one stacked network (default: 1 on CPU, 8 on CUDA; a
    /// resumed run keeps its own).
    #[arg(long, value_parser = at_least_one)]
    batch_candidates: Option<usize>,
}

#[derive(Args)]
struct ReplayArgs {
    #[arg(required = true)]
    genomes: Vec<PathBuf>,
    #[command(flatten)]
    place: Place,
    #[command(flatten)]
    protocol: ProtocolOverrides,
    /// Print one JSON document instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct EvolveArgs {
    /// Run directory (default: runs/<config>-<unix time>).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the run in this directory exactly where it stopped.
    #[arg(long, conflicts_with = "out")]
    resume: Option<PathBuf>,
    /// No progress bars or log lines.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    place: Place,
    #[command(flatten)]
    protocol: ProtocolOverrides,
    #[command(flatten)]
    search: SearchOverrides,
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

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Doctor { data_dir }) => {
            let root = data::resolve_root(data_dir.as_deref());
            print!("{}", evolve::device::doctor(&root));
            Ok(())
        }
        Some(Command::Check { genomes }) => check(&genomes),
        Some(Command::Replay(args)) => replay(&args),
        Some(Command::Status { run }) => evolution::status(&run).map(|text| print!("{text}")),
        Some(Command::Data(DataCommand::Download { data_dir, datasets })) => {
            let root = data::resolve_root(data_dir.as_deref());
            let datasets = match datasets.is_empty() {
                true => DatasetKind::ALL.to_vec(),
                false => datasets,
            };
            data::download::download(&root, &datasets)
                .map(|_| println!("datasets installed under {}", root.display()))
        }
        Some(Command::Data(DataCommand::Verify { root })) => verify(root.as_deref()),
        Some(Command::Export {
            source,
            out,
            format,
        }) => export(&source, out.as_deref(), format),
        None => evolve(&cli.evolve),
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

fn check(paths: &[PathBuf]) -> Result<()> {
    let (report, failures) = evolve::genome::check_files(paths);
    print!("{report}");
    match failures {
        0 => Ok(()),
        n => Err(Error::Usage(format!(
            "{n} of {} genome file(s) invalid",
            paths.len()
        ))),
    }
}

fn replay(args: &ReplayArgs) -> Result<()> {
    let mut config = Config::load_or_quick(args.place.config.as_deref())?;
    args.protocol.apply(&mut config)?;
    let (bar, on_steps) = evolve::progress::steps_bar();
    let options = ReplayOptions {
        device: args.place.device,
        data_root: data::resolve_root(args.place.data_dir.as_deref()),
        batch_candidates: args.place.batch_candidates,
        on_steps: Some(on_steps),
    };
    let doc = evolve::replay::replay(&args.genomes, &config, options)?;
    bar.finish_and_clear();
    match args.json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("plain data")
        ),
        false => print!("{}", evolve::report::replay_table(&doc)),
    }
    Ok(())
}

fn verify(root: Option<&Path>) -> Result<()> {
    let root = data::resolve_root(root);
    let (reports, absent) = data::verify(&root)?;
    print!("{}", evolve::report::verify_text(&reports, &absent, &root));
    data::check_counts(&reports, &root)
}

fn evolve(args: &EvolveArgs) -> Result<()> {
    evolve::interrupt::install();
    let place = &args.place;
    let options = RunOptions {
        device: place.device,
        data_root: data::resolve_root(place.data_dir.as_deref()),
        batch_candidates: place.batch_candidates,
        observer: evolve::progress::observer(args.quiet),
    };
    let requested = |saved: &Config| -> Result<Config> {
        let mut config = match &place.config {
            Some(path) => Config::load(path)?,
            None => saved.clone(),
        };
        args.protocol.apply(&mut config)?;
        args.search.apply(&mut config)?;
        Ok(config)
    };
    let (dir, result) = match &args.resume {
        Some(dir) => (dir.clone(), evolution::resume(dir, requested, &options)),
        None => {
            let config = requested(&Config::quick())?;
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| evolution::default_run_dir(place.config.as_deref()));
            if !args.quiet {
                let device = evolve::device::describe(options.device);
                eprintln!("evolving into {} on {device}", dir.display());
            }
            (dir.clone(), evolution::start(config, &dir, &options))
        }
    };
    match result {
        Ok(cp) => {
            print!("{}", evolution::closing_message(&cp, &dir));
            Ok(())
        }
        Err(Error::Interrupted(signal)) => {
            let name = evolve::interrupt::name(signal);
            eprintln!(
                "interrupted by {name}; progress is saved. Resume with: evolve --resume {}",
                dir.display()
            );
            Err(Error::Interrupted(signal))
        }
        Err(e) => Err(e),
    }
}

fn export(source: &Path, out: Option<&Path>, format: ExportFormat) -> Result<()> {
    let (genome, score) = evolve::export::source(source)?;
    let text = match format {
        ExportFormat::Json => evolve::export::json_source(&genome),
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
