//! Starting and resuming a run: what it needs is checked first, its directory is made (or
//! reopened and checked), and the search loop runs on it with the executor the config asks for.
use super::executor;
use super::{RunDir, BEST, BEST_SEARCH, CONFIG, FITNESS_SVG, PROGRESS_SVG, SUMMARY, TUNED};
use crate::config::{Config, ExecutorConfig};
use crate::error::{Error, Result};
use crate::genome::Genome;
use crate::report;
use crate::search::records::{Checkpoint, Evaluation};
use crate::search::{self, Context, Observer, Out, Store};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::Device;

/// Where and how to run (not part of the protocol: may change on resume).
pub struct RunOptions {
    pub device: Device,
    pub data_root: PathBuf,
    /// Genomes trained side by side for a new run (`None`: the device default). A resumed run
    /// keeps its own; asking for another is refused.
    pub batch_candidates: Option<usize>,
    pub observer: Rc<dyn Observer>,
}

/// `runs/<config name>-<unix time>`, for a run started without `--out`.
pub fn default_run_dir(config: Option<&Path>) -> PathBuf {
    let stem = config
        .and_then(Path::file_stem)
        .map_or("quick".into(), |s| s.to_string_lossy().into_owned());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    PathBuf::from(format!("runs/{stem}-{now}"))
}

/// Checks what a run will need before anything is created: every dataset of the search and
/// held-out protocols is there with room for the task's splits (from file headers: nothing is
/// loaded), and the executor's devices and tools exist.
pub fn preflight(config: &Config, options: &RunOptions) -> Result<()> {
    let holdout = config.holdout.as_ref().map(|h| &h.protocol);
    let tasks = std::iter::once(&config.protocol)
        .chain(holdout)
        .flat_map(|p| &p.tasks);
    let mut counts = std::collections::HashMap::new();
    for task in tasks {
        if let Some(command) = &task.command {
            crate::train::command::find_program(command, &task.name)?;
            continue;
        }
        let available = match counts.get(&task.source()) {
            Some(&n) => n,
            None => crate::train::data::train_count(&task.source(), &options.data_root)?,
        };
        counts.insert(task.source(), available);
        task.check_against(available, &options.data_root)?;
    }
    executor::preflight(&config.executor)
}

/// Starts a new run in `out`, which must be missing or empty. What it needs is checked first
/// (`preflight`); a run that still fails before its first evaluation takes its files away with
/// it, so the same command, corrected, can be run again.
pub fn start(config: Config, out: &Path, options: &RunOptions) -> Result<Checkpoint> {
    preflight(&config, options)?;
    let seeds = config.search.seeds()?;
    let existed = out.exists();
    let dir = RunDir::create(out)?;
    match begin(&dir, config, seeds, options) {
        Err(e) if !matches!(e, Error::Interrupted(_)) && dir.nothing_evaluated() => {
            dir.remove_unstarted(existed);
            Err(Error::run(
                out,
                format!("{e}; nothing had been evaluated, so the run's files were removed: fix the cause and run the same command again"),
            ))
        }
        outcome => outcome,
    }
}

/// Writes a new run's config, first checkpoint (generation 0 from `seeds` and random genomes)
/// and empty history into `dir`, then runs it.
fn begin(
    dir: &RunDir,
    config: Config,
    seeds: Vec<(String, Genome)>,
    options: &RunOptions,
) -> Result<Checkpoint> {
    dir.write_json(CONFIG, &config)?;
    let k = options
        .batch_candidates
        .unwrap_or_else(|| crate::device::default_batch_candidates(options.device));
    let checkpoint = search::first_checkpoint(config, k, seeds);
    dir.save(&checkpoint)?;
    dir.truncate_history(0)?;
    let executor = checkpoint.config.executor.clone();
    drive(dir, checkpoint, options, &executor)
}

/// Continues the run in `path`. `requested` turns the run's saved config into the one the user
/// asked for (a config file, flags); anything but the saved config is refused, so no flag is
/// ever silently ignored. The executor is the exception: where evaluations run is not part of
/// what a run is, so a run started locally may go on under Slurm and back.
pub fn resume(
    path: &Path,
    requested: impl FnOnce(&Config) -> Result<Config>,
    options: &RunOptions,
) -> Result<Checkpoint> {
    let (dir, checkpoint) = RunDir::resume(path)?;
    let mut wanted = requested(&checkpoint.config)?;
    executor::preflight(&wanted.executor)?;
    let executor = std::mem::replace(&mut wanted.executor, checkpoint.config.executor.clone());
    if wanted != checkpoint.config {
        return Err(Error::run(
            path,
            "the requested config or flags differ from the run's saved config.json; a resumed run keeps its protocol and search settings (only --device, --data-dir and the executor flags may change)",
        ));
    }
    if let Some(k) = options.batch_candidates {
        if k != checkpoint.batch_candidates {
            return Err(Error::run(
                path,
                format!(
                    "--batch-candidates {k}, but this run trains {} genomes side by side; the number of stacked candidates changes float32 rounding and dropout masks, so a resumed run keeps its own (leave the flag out)",
                    checkpoint.batch_candidates
                ),
            ));
        }
    }
    dir.truncate_history(checkpoint.logbook.history_len)?;
    drive(&dir, checkpoint, options, &executor)
}

/// Runs the loop on `dir` with the executor `executor` asks for, the observer told of its steps.
fn drive(
    dir: &RunDir,
    cp: Checkpoint,
    options: &RunOptions,
    executor: &ExecutorConfig,
) -> Result<Checkpoint> {
    let watcher = Rc::clone(&options.observer);
    let launch = executor::Launch {
        run: dir.path.clone(),
        device: options.device,
        data_root: options.data_root.clone(),
        program: std::env::current_exe().map_err(|e| Error::io("evolve", e))?,
        on_steps: Some(Rc::new(move |done, total| watcher.steps(done, total))),
    };
    let mut exec = executor::build(executor, launch)?;
    let out = Out {
        store: dir,
        observer: &*options.observer,
    };
    search::run(
        &mut Context {
            exec: &mut *exec,
            out,
        },
        cp,
    )
}

impl Store for RunDir {
    fn save(&self, cp: &Checkpoint) -> Result<()> {
        RunDir::save(self, cp)
    }

    fn append(&self, evaluation: &Evaluation) -> Result<u64> {
        self.append_history(evaluation)
    }

    fn best(&self, cp: &Checkpoint) -> Result<()> {
        write_best(self, cp)
    }

    fn reports(&self, cp: &Checkpoint) -> Result<()> {
        write_reports(self, cp)
    }
}

/// `best.json`: the winner so far (see `Checkpoint::winner`), named; with a held-out protocol,
/// `best-search.json` holds the best by search score beside it, and with `tuning`,
/// `tuned.json` the tuned baseline.
fn write_best(dir: &RunDir, cp: &Checkpoint) -> Result<()> {
    let save = |e: &Evaluation, file: &str| {
        let mut genome = e.genome.clone();
        genome.name = Some(genome.name.unwrap_or_else(|| format!("evolved-{}", e.hash)));
        dir.write_json(file, &genome)
    };
    if let Some(winner) = cp.winner() {
        save(winner, BEST)?;
    }
    if let (Some(best), Some(_)) = (cp.hall_of_fame.best(), &cp.config.holdout) {
        save(best, BEST_SEARCH)?;
    }
    // The held-out tuned baseline (else the search's): what `replay --target` measures against.
    let stages = &cp.stages;
    if let Some(tuned) = stages.holdout.tuned().or(stages.full.tuned()) {
        save(tuned, TUNED)?;
    }
    Ok(())
}

/// `best.json`, `summary.md` and the two plots.
fn write_reports(dir: &RunDir, cp: &Checkpoint) -> Result<()> {
    write_best(dir, cp)?;
    let history = dir.history(cp)?;
    dir.write(SUMMARY, report::summary_markdown(cp, &history).as_bytes())?;
    dir.write(
        FITNESS_SVG,
        report::fitness_svg(&cp.logbook.generations, &history).as_bytes(),
    )?;
    dir.write(PROGRESS_SVG, report::progress_svg(&history).as_bytes())
}
