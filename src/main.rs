//! `evolve`: parse the command line, call the library, print. The work is done in the library.
mod cli;

use clap::Parser;
use cli::{Cli, Command, DataCommand, EvolveArgs, ExportFormat, ReplayArgs};
use evolve::config::Config;
use evolve::report::replay::ReplayOptions;
use evolve::run::{self, RunOptions};
use evolve::train::data::{self, DatasetKind};
use evolve::{Error, Result};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn main() -> ExitCode {
    evolve::interrupt::ignore_file_size_signal();
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Doctor { data_dir }) => {
            let root = data::resolve_root(data_dir.as_deref());
            print!("{}", evolve::report::doctor::doctor(&root));
            Ok(())
        }
        Some(Command::Check { genomes }) => check(&genomes),
        Some(Command::Replay(args)) => replay(&args),
        Some(Command::Worker(args)) => {
            evolve::interrupt::install();
            evolve::run::executor::work(&args)
        }
        Some(Command::Status { run }) => run::status(&run).map(|text| print!("{text}")),
        Some(Command::Report { run, json }) => report(&run, json),
        Some(Command::Data(DataCommand::Download { data_dir, datasets })) => {
            let root = data::resolve_root(data_dir.as_deref());
            // By default every dataset with an archive to fetch: the text corpus is a Debian
            // package, checked when named.
            let datasets = match datasets.is_empty() {
                true => DatasetKind::ALL
                    .into_iter()
                    .filter(|k| k.is_image())
                    .collect(),
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
    if args.holdout {
        config.protocol = config.holdout.take().map(|h| h.protocol).ok_or_else(|| {
            Error::Usage(
                "--holdout: this config has no `holdout` section (a held-out protocol)".into(),
            )
        })?;
    }
    config.protocol.seed = args.seed.unwrap_or(config.protocol.seed);
    cli::apply(&mut config, &args.protocol, None, None)?;
    evolve::report::sensitivity::check_scales(&args.lr_scale).map_err(Error::Usage)?;
    if let Some(n) = args.eval_every {
        for task in &mut config.protocol.tasks {
            if !task.eval_every_fits(n) {
                return Err(Error::Usage(format!(
                    "--eval-every {n}: allowed: 1..={} (the steps of task {})",
                    task.steps, task.name
                )));
            }
            task.eval_every = Some(n);
        }
    }
    if let Some(t) = &args.target {
        if !args.genomes.contains(t) {
            return Err(Error::Usage(format!(
                "--target {}: allowed: one of the genome files replayed",
                t.display()
            )));
        }
    }
    let (bar, on_steps) = evolve::report::progress::steps_bar();
    let options = ReplayOptions {
        device: args.place.device,
        data_root: data::resolve_root(args.place.data_dir.as_deref()),
        batch_candidates: args.place.batch_candidates,
        on_steps: Some(on_steps),
        lr_scales: args.lr_scale.clone(),
        target: args.target.clone(),
    };
    let doc = evolve::report::replay::replay(&args.genomes, &config, options)?;
    bar.finish_and_clear();
    if let Some(path) = &args.lr_plot {
        let svg = evolve::report::sensitivity::plot(&doc.lr_sensitivity);
        evolve::fsutil::write_atomic(path, svg.as_bytes())?;
    }
    match args.json {
        true => println!(
            "{}",
            serde_json::to_string_pretty(&doc).expect("plain data")
        ),
        false => print!("{}", evolve::report::replay_table(&doc)),
    }
    Ok(())
}

fn report(run: &Path, json: bool) -> Result<()> {
    let dir = evolve::run::RunDir::open(run);
    let cp = dir.load_checkpoint()?;
    let g = evolve::report::generalization::generalization(&cp).ok_or_else(|| {
        Error::run(
            run,
            "has no held-out protocol (`holdout` in its config): nothing to report",
        )
    })?;
    if json {
        println!("{}", serde_json::to_string_pretty(&g).expect("plain data"));
        return Ok(());
    }
    print!("{}", evolve::report::generalization_markdown(&g));
    if let Some(winner) = cp.winner() {
        let history = dir.history(&cp)?;
        let ancestors = evolve::report::lineage::ancestry(&history, &winner.hash);
        print!(
            "\n{}",
            evolve::report::lineage::lineage_markdown("best.json", &ancestors)
        );
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
        observer: evolve::report::progress::observer(args.quiet),
    };
    let requested = |saved: &Config| -> Result<Config> {
        let mut config = match &place.config {
            Some(path) => Config::load(path)?,
            None => saved.clone(),
        };
        cli::apply(
            &mut config,
            &args.protocol,
            Some(&args.search),
            Some(&args.executor),
        )?;
        Ok(config)
    };
    let (dir, result) = match &args.resume {
        Some(dir) => (dir.clone(), run::resume(dir, requested, &options)),
        None => {
            let config = requested(&Config::quick())?;
            let dir = args
                .out
                .clone()
                .unwrap_or_else(|| run::default_run_dir(place.config.as_deref()));
            if !args.quiet {
                let device = evolve::device::describe(options.device);
                eprintln!("evolving into {} on {device}", dir.display());
            }
            (dir.clone(), run::start(config, &dir, &options))
        }
    };
    match result {
        Ok(cp) => {
            print!("{}", run::closing_message(&cp, &dir));
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
    let (genome, score) = evolve::run::export_source(source)?;
    let text = match format {
        ExportFormat::Json => evolve::report::export::json_source(&genome),
        ExportFormat::Pytorch => evolve::report::export::pytorch_source(&genome, score.as_ref()),
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
