//! The evolution loop, shaped like DEAP's `eaSimple`: each generation is
//! screen → promote → full → breed.
//!
//! Its files live in the run directory (`run_dir`). Resume is exact by construction: evaluations
//! depend only on (genome, protocol), windows of stacked genomes are planned by a pure function of
//! what is already known, the GA's random stream is in the checkpoint, and `history.jsonl` is cut
//! back to the length the checkpoint recorded, so an evaluation interrupted before its checkpoint
//! is simply redone.
use crate::config::Config;
use crate::error::{Error, Result};
use crate::evaluator::Evaluator;
use crate::fitness::Score;
use crate::fsutil::{write_atomic, write_json_atomic};
use crate::ga::Ga;
use crate::genome::{adam_baseline, Genome, SHIPPED};
use crate::report;
pub use crate::run_dir::{
    Checkpoint, Cost, Evaluation, GenerationStats, RunDir, Stage, StageState, BEST, CHECKPOINT,
    CHECKPOINT_VERSION, CONFIG, FITNESS_SVG, HISTORY, PROGRESS_SVG, SUMMARY,
};
use std::collections::HashSet;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::Device;

/// What the loop tells whoever watches it: the CLI draws progress bars or log lines, tests record.
pub trait Observer {
    /// The run is ready (baselines known) and about to evaluate.
    fn started(&self, _cp: &Checkpoint) {}
    /// A window of genomes starts training (`genome` is the first to train, at `index`).
    fn candidate_started(
        &self,
        _generation: usize,
        _index: usize,
        _genome: &Genome,
        _stage: Stage,
    ) {
    }
    /// Training steps done of the current window (or baseline).
    fn steps(&self, _done: u64, _total: u64) {}
    fn evaluation_done(&self, _evaluation: &Evaluation, _cp: &Checkpoint) {}
    fn generation_done(&self, _stats: &GenerationStats, _cp: &Checkpoint) {}
    fn finished(&self, _cp: &Checkpoint) {}
}

/// Watches nothing.
pub struct Silent;
impl Observer for Silent {}

/// Where and how to run (not part of the protocol: may change on resume).
pub struct RunOptions {
    pub device: Device,
    pub data_root: PathBuf,
    /// Genomes trained side by side for a new run (`None`: the device default). A resumed run
    /// keeps its own; asking for another is refused.
    pub batch_candidates: Option<usize>,
    pub observer: Rc<dyn Observer>,
}

/// Stacking pays on a GPU, where one small network leaves most of the chip idle; on CPU the
/// cores are busy with one, so candidates train one at a time.
pub fn default_batch_candidates(device: Device) -> usize {
    match device {
        Device::Cpu => 1,
        _ => 8,
    }
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

/// Starts a new run in `out`, which must be missing or empty.
pub fn start(config: Config, out: &Path, options: &RunOptions) -> Result<Checkpoint> {
    let dir = RunDir::create(out)?;
    write_json_atomic(&dir.file(CONFIG), &config)?;
    let min_steps = config
        .protocol
        .tasks
        .iter()
        .map(|t| t.steps)
        .min()
        .unwrap_or(0);
    let mut ga = Ga::new(config.search.seed, config.ga.clone(), min_steps);
    let seeds = match config.search.include_shipped {
        true => SHIPPED
            .iter()
            .map(|(name, _)| crate::genome::shipped(name))
            .collect(),
        false => Vec::new(),
    };
    let population = ga.initial_population(config.search.population, seeds);
    let empty = || StageState {
        results: vec![None; population.len()],
        ..StageState::default()
    };
    let checkpoint = Checkpoint {
        version: CHECKPOINT_VERSION,
        full: empty(),
        screen: empty(),
        config,
        generation: 0,
        population,
        ga,
        best: None,
        generations: Vec::new(),
        total_steps: 0,
        evaluations: 0,
        reused: 0,
        history_len: 0,
        batch_candidates: options
            .batch_candidates
            .unwrap_or_else(|| default_batch_candidates(options.device)),
    };
    dir.save(&checkpoint)?;
    dir.truncate_history(0)?;
    run(&dir, checkpoint, options)
}

/// Continues the run in `path`. `requested` turns the run's saved config into the one the user
/// asked for (a config file, flags); anything but the saved config is refused, so no flag is
/// ever silently ignored.
pub fn resume(
    path: &Path,
    requested: impl FnOnce(&Config) -> Result<Config>,
    options: &RunOptions,
) -> Result<Checkpoint> {
    let (dir, checkpoint) = RunDir::resume(path)?;
    if requested(&checkpoint.config)? != checkpoint.config {
        return Err(Error::run(
            path,
            "the requested config or flags differ from the run's saved config.json; a resumed run keeps its protocol and search settings (only --device and --data-dir may change)",
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
    dir.truncate_history(checkpoint.history_len)?;
    run(&dir, checkpoint, options)
}

/// The loop: for each generation left, screen → promote → full → breed.
fn run(dir: &RunDir, mut cp: Checkpoint, options: &RunOptions) -> Result<Checkpoint> {
    let observer = &*options.observer;
    let fidelity = cp.config.fidelity.clone();
    let mut full = Evaluator::new(&cp.config.protocol, options.device, &options.data_root)?;
    full.batch_candidates = cp.batch_candidates;
    let watcher = Rc::clone(&options.observer);
    full.on_steps = Some(Rc::new(move |done, total| watcher.steps(done, total)));
    let mut screen = match fidelity.enabled {
        true => Some(full.at_budget(fidelity.budget)),
        false => None,
    };
    prepare_baseline(&mut full, &mut cp, Stage::Full)?;
    if let Some(screen) = &mut screen {
        prepare_baseline(screen, &mut cp, Stage::Screen)?;
    }
    dir.save(&cp)?;
    observer.started(&cp);
    while cp.generation < cp.config.search.generations {
        if let Some(screen) = &mut screen {
            let unscreened: Vec<usize> = (0..cp.population.len())
                .filter(|&i| {
                    cp.full.results[i].is_none()
                        && cp.screen.results[i].is_none()
                        && !cp.full.memo.contains_key(&cp.population[i].hash())
                })
                .collect();
            evaluate(screen, &mut cp, dir, &unscreened, Stage::Screen, observer)?;
        }
        let pending: Vec<usize> = promoted(&cp.screen.results, fidelity.promote)
            .into_iter()
            .filter(|&i| cp.full.results[i].is_none())
            .collect();
        evaluate(&mut full, &mut cp, dir, &pending, Stage::Full, observer)?;
        let stats = generation_stats(&cp);
        observer.generation_done(&stats, &cp);
        breed(&mut cp, stats)?;
        dir.save(&cp)?;
        write_reports(dir, &cp)?;
    }
    observer.finished(&cp);
    Ok(cp)
}

/// Adam's scores under `stage`'s protocol: restored from the checkpoint, or trained now (counted
/// in the run's steps, and its cost kept for Adam's history line). Either way Adam's own score is
/// in the stage's memo, so the Adam genome is never retrained.
fn prepare_baseline(evaluator: &mut Evaluator, cp: &mut Checkpoint, stage: Stage) -> Result<()> {
    let state = cp.stage_mut(stage);
    let baseline = match state.baseline.take() {
        Some(b) => b,
        None => {
            let clock = std::time::Instant::now();
            let b = evaluator.baseline()?;
            let steps = b.iter().map(|t| t.steps).sum::<u64>();
            state.baseline_cost = Some(Cost {
                steps,
                seconds: clock.elapsed().as_secs_f64(),
            });
            cp.total_steps += steps;
            b
        }
    };
    let state = cp.stage_mut(stage);
    evaluator.set_baseline(baseline.clone());
    state.memo.insert(
        adam_baseline().hash(),
        Score::new(baseline.clone(), &baseline).without_curves(),
    );
    state.baseline = Some(baseline);
    Ok(())
}

/// Evaluates the genomes at `indices` (in order) at `stage`, window by window (see
/// `plan_windows`). History lines follow index order; the checkpoint is saved after each window,
/// so a resumed run plans the same windows.
fn evaluate(
    evaluator: &mut Evaluator,
    cp: &mut Checkpoint,
    dir: &RunDir,
    indices: &[usize],
    stage: Stage,
    observer: &dyn Observer,
) -> Result<()> {
    let hashes: Vec<String> = indices.iter().map(|&i| cp.population[i].hash()).collect();
    let memo = &cp.stage(stage).memo;
    let windows = plan_windows(&hashes, |h| memo.contains_key(h), cp.batch_candidates);
    for window in windows {
        let batch: Vec<Genome> = window
            .train
            .iter()
            .map(|&p| cp.population[indices[p]].clone())
            .collect();
        let first = window.train.first().unwrap_or(&window.positions.start);
        observer.candidate_started(
            cp.generation,
            indices[*first],
            &cp.population[indices[*first]],
            stage,
        );
        let clock = std::time::Instant::now();
        let scores = match batch.is_empty() {
            true => Vec::new(),
            false => evaluator.evaluate(&batch)?,
        };
        // The window trained its genomes together: each is charged an equal share.
        let seconds = clock.elapsed().as_secs_f64() / batch.len().max(1) as f64;
        for (genome, score) in batch.iter().zip(scores) {
            let memo = &mut cp.stage_mut(stage).memo;
            memo.insert(genome.hash(), score.without_curves());
        }
        for position in window.positions.clone() {
            let trained = window.train.contains(&position);
            record(cp, dir, indices[position], stage, trained, seconds)?;
            observer.evaluation_done(
                cp.stage(stage).results[indices[position]]
                    .as_ref()
                    .expect("just recorded"),
                cp,
            );
        }
        dir.save(cp)?;
        if stage == Stage::Full {
            write_best(dir, cp)?;
        }
    }
    Ok(())
}

/// Appends genome `index`'s evaluation at `stage` (its score already in the memo) to the history
/// and the checkpoint. Adam's first line at a stage carries what training the baseline cost.
fn record(
    cp: &mut Checkpoint,
    dir: &RunDir,
    index: usize,
    stage: Stage,
    trained: bool,
    seconds: f64,
) -> Result<()> {
    let genome = cp.population[index].clone();
    let hash = genome.hash();
    let state = cp.stage_mut(stage);
    let score = state.memo[&hash].clone();
    let cost = match trained {
        true => Some(Cost {
            steps: score.steps(),
            seconds,
        }),
        false if hash == adam_baseline().hash() => state.baseline_cost.take(),
        false => None,
    };
    let evaluation = Evaluation {
        generation: cp.generation,
        index,
        hash,
        genome,
        stage,
        score,
        steps: cost.map_or(0, |c| c.steps),
        cached: cost.is_none(),
        seconds: cost.map_or(0.0, |c| c.seconds),
    };
    // A baseline's steps were counted when it trained.
    if trained {
        cp.total_steps += evaluation.steps;
    }
    cp.evaluations += 1;
    cp.reused += u64::from(evaluation.cached);
    cp.history_len = dir.append_history(&evaluation)?;
    if stage == Stage::Full
        && cp
            .best
            .as_ref()
            .is_none_or(|b| evaluation.score.vs_adam > b.score.vs_adam)
    {
        cp.best = Some(evaluation.clone());
    }
    cp.stage_mut(stage).results[index] = Some(evaluation);
    Ok(())
}

/// Consecutive positions of a stage's pending list that are evaluated together; the genomes at
/// `train` (distinct, not known before) train side by side, the others reuse a known score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub positions: Range<usize>,
    pub train: Vec<usize>,
}

/// Splits the pending genomes (their hashes, in index order) into windows of at most `k`
/// genomes to train. A genome already `known`, or trained earlier in the list, rides along in the
/// window it falls in and reuses that score. A pure function of its inputs: a resumed run, which
/// knows the windows already done, plans the remaining ones exactly as the first run did.
pub fn plan_windows(hashes: &[String], known: impl Fn(&str) -> bool, k: usize) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut start = 0;
    let mut train = Vec::new();
    for (position, hash) in hashes.iter().enumerate() {
        if known(hash) || seen.contains(hash.as_str()) {
            continue;
        }
        if train.len() == k.max(1) {
            windows.push(Window {
                positions: start..position,
                train: std::mem::take(&mut train),
            });
            start = position;
        }
        seen.insert(hash);
        train.push(position);
    }
    if start < hashes.len() {
        windows.push(Window {
            positions: start..hashes.len(),
            train,
        });
    }
    windows
}

/// The genomes of this generation that get a full evaluation: those never screened (without
/// multi-fidelity, all; with it, the ones already known in full) and the best `promote` fraction
/// (at least one) of the screened, by screening score. A function of the screening results alone,
/// so a resumed generation promotes the same genomes.
pub fn promoted(screens: &[Option<Evaluation>], promote: f64) -> Vec<usize> {
    let (mut screened, known): (Vec<usize>, Vec<usize>) =
        (0..screens.len()).partition(|&i| screens[i].is_some());
    let score = |i: usize| screens[i].as_ref().expect("screened").score.vs_adam;
    screened.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
    let keep = ((screened.len() as f64 * promote).floor() as usize).max(1);
    let mut chosen: Vec<usize> = known
        .into_iter()
        .chain(screened.into_iter().take(keep))
        .collect();
    chosen.sort();
    chosen
}

/// What selection ranks by: full scores as they are; screening scores capped at the worst full
/// score, so a screened-out genome never outranks a fully trained one.
pub fn selection_fitness(selected: &[&Evaluation]) -> Vec<f64> {
    let worst_full = selected
        .iter()
        .filter(|e| e.stage == Stage::Full)
        .map(|e| e.score.vs_adam)
        .fold(f64::INFINITY, f64::min);
    selected
        .iter()
        .map(|e| match e.stage {
            Stage::Full => e.score.vs_adam,
            Stage::Screen => e.score.vs_adam.min(worst_full),
        })
        .collect()
}

fn fitness(cp: &Checkpoint) -> Vec<f64> {
    let selected: Vec<&Evaluation> = (0..cp.population.len())
        .map(|i| {
            cp.selected(i)
                .expect("every genome of the generation is scored")
        })
        .collect();
    selection_fitness(&selected)
}

fn generation_stats(cp: &Checkpoint) -> GenerationStats {
    let fitness = fitness(cp);
    let best = fitness.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    GenerationStats {
        generation: cp.generation,
        best,
        mean: fitness.iter().sum::<f64>() / fitness.len() as f64,
        best_so_far: cp.best.as_ref().map_or(best, |b| b.score.vs_adam),
    }
}

/// Records the generation and breeds the next one (unless this was the last).
fn breed(cp: &mut Checkpoint, stats: GenerationStats) -> Result<()> {
    let search = cp.config.search.clone();
    let fitness = fitness(cp);
    cp.generations.push(stats);
    if cp.generation + 1 < search.generations {
        let next = cp.ga.next_generation(
            &cp.population,
            &fitness,
            search.elites,
            search.tournament,
            cp.generation + 1,
            search.generations,
        );
        check_bred(&next, cp.generation + 1)?;
        cp.full.results = vec![None; next.len()];
        cp.screen.results = vec![None; next.len()];
        cp.population = next;
    }
    cp.generation += 1;
    Ok(())
}

/// The GA only breeds genomes the update rule accepts (a property test holds it to that for any
/// valid `ga` section); should one slip through, the run stops before training or saving it.
fn check_bred(population: &[Genome], generation: usize) -> Result<()> {
    for (i, genome) in population.iter().enumerate() {
        genome.validate().map_err(|m| Error::Config {
            origin: "config `ga` section".into(),
            message: format!(
                "bred genome #{i} of generation {generation} is invalid ({m}); nothing was saved"
            ),
        })?;
    }
    Ok(())
}

/// `best.json`: the best full-protocol genome so far, named.
fn write_best(dir: &RunDir, cp: &Checkpoint) -> Result<()> {
    if let Some(best) = &cp.best {
        let mut genome = best.genome.clone();
        genome.name = Some(
            genome
                .name
                .unwrap_or_else(|| format!("evolved-{}", best.hash)),
        );
        genome.save(&dir.file(BEST))?;
    }
    Ok(())
}

/// `best.json`, `summary.md` and the two plots.
fn write_reports(dir: &RunDir, cp: &Checkpoint) -> Result<()> {
    write_best(dir, cp)?;
    let history = dir.history(cp)?;
    write_atomic(&dir.file(SUMMARY), report::summary_markdown(cp).as_bytes())?;
    write_atomic(
        &dir.file(FITNESS_SVG),
        report::fitness_svg(&cp.generations, &history).as_bytes(),
    )?;
    write_atomic(
        &dir.file(PROGRESS_SVG),
        report::progress_svg(&history).as_bytes(),
    )
}

/// What `evolve status RUN` prints: readable while the run goes on (it takes no lock).
pub fn status(path: &Path) -> Result<String> {
    let dir = RunDir::open(path);
    let cp = dir.load_checkpoint()?;
    let history = dir.history(&cp)?;
    let holder = crate::run_dir::RunLock::holder(path);
    let modified = |name: &str| std::fs::metadata(dir.file(name)).and_then(|m| m.modified());
    let until = match holder {
        Some(_) => Ok(std::time::SystemTime::now()),
        None => modified(CHECKPOINT),
    };
    let elapsed = match (modified(CONFIG), until) {
        (Ok(start), Ok(end)) => end.duration_since(start).unwrap_or_default(),
        _ => Default::default(),
    };
    Ok(format!(
        "run {}\n{}",
        path.display(),
        report::status_text(&cp, &history, holder.as_deref(), elapsed)
    ))
}

/// What a finished `evolve` prints: the best genome and the files it wrote (only those).
pub fn closing_message(cp: &Checkpoint, dir: &Path) -> String {
    let mut s = String::new();
    if let Some(best) = &cp.best {
        s += &format!(
            "best: {} ({:.4}× Adam) {}\n",
            best.genome.label(),
            best.score.vs_adam,
            best.genome.describe()
        );
    }
    let written: Vec<&str> = [BEST, SUMMARY, FITNESS_SVG, PROGRESS_SVG, HISTORY]
        .into_iter()
        .filter(|f| std::fs::metadata(dir.join(f)).is_ok_and(|m| m.len() > 0))
        .collect();
    let files = match written.is_empty() {
        true => format!("{CONFIG} and {CHECKPOINT} only: no generation ran"),
        false => written.join(", "),
    };
    s + &format!(
        "run directory: {} ({files}); {} training steps\n",
        dir.display(),
        cp.total_steps
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(s: &str) -> Vec<String> {
        s.chars().map(String::from).collect()
    }

    fn window(positions: Range<usize>, train: &[usize]) -> Window {
        Window {
            positions,
            train: train.to_vec(),
        }
    }

    #[test]
    fn windows_hold_at_most_k_new_genomes_and_known_ones_ride_along() {
        let none = |_: &str| false;
        assert_eq!(
            plan_windows(&hashes("abcde"), none, 2),
            [
                window(0..2, &[0, 1]),
                window(2..4, &[2, 3]),
                window(4..5, &[4])
            ]
        );
        assert_eq!(
            plan_windows(&hashes("abcde"), none, 1),
            (0..5).map(|i| window(i..i + 1, &[i])).collect::<Vec<_>>()
        );
        // Known genomes and repeats train nowhere; they stay in the window they fall in.
        let known = |h: &str| h == "k";
        assert_eq!(
            plan_windows(&hashes("kabakc"), known, 2),
            [window(0..5, &[1, 2]), window(5..6, &[5])]
        );
        assert_eq!(plan_windows(&hashes("kk"), known, 4), [window(0..2, &[])]);
        assert!(plan_windows(&[], none, 3).is_empty());
        // k = 0 is treated as 1, never as an endless window.
        assert_eq!(plan_windows(&hashes("ab"), none, 0).len(), 2);
    }

    #[test]
    fn resuming_after_any_window_plans_the_same_remaining_windows() {
        let list = hashes("abacdbef");
        let all = plan_windows(&list, |_| false, 3);
        for done in 1..all.len() {
            // What a resumed run knows: every genome trained in the windows already done.
            let trained: HashSet<String> = all[..done]
                .iter()
                .flat_map(|w| w.train.iter().map(|&p| list[p].clone()))
                .collect();
            let from = all[done].positions.start;
            let rest = plan_windows(&list[from..], |h| trained.contains(h), 3);
            let shifted: Vec<Window> = all[done..]
                .iter()
                .map(|w| Window {
                    positions: w.positions.start - from..w.positions.end - from,
                    train: w.train.iter().map(|p| p - from).collect(),
                })
                .collect();
            assert_eq!(rest, shifted, "resumed after {done} window(s)");
        }
    }

    fn evaluation(index: usize, stage: Stage, vs_adam: f64) -> Evaluation {
        let genome = adam_baseline();
        Evaluation {
            generation: 0,
            index,
            hash: genome.hash(),
            genome,
            stage,
            score: Score {
                tasks: Vec::new(),
                raw: vs_adam,
                vs_adam,
            },
            steps: 0,
            cached: false,
            seconds: 0.0,
        }
    }

    #[test]
    fn the_best_screened_fraction_is_promoted_and_unscreened_genomes_always_are() {
        let screens: Vec<Option<Evaluation>> =
            [None, Some(0.9), Some(1.2), None, Some(1.1), Some(0.5)]
                .iter()
                .enumerate()
                .map(|(i, s)| s.map(|v| evaluation(i, Stage::Screen, v)))
                .collect();
        assert_eq!(promoted(&screens, 0.5), [0, 2, 3, 4]);
        assert_eq!(promoted(&screens, 0.2), [0, 2, 3], "at least one");
        assert_eq!(promoted(&screens, 1.0), [0, 1, 2, 3, 4, 5]);
        assert_eq!(promoted(&vec![None; 3], 0.2), [0, 1, 2], "no screening");
        // Ties go to the lower index.
        let tied: Vec<Option<Evaluation>> = (0..3)
            .map(|i| Some(evaluation(i, Stage::Screen, 1.0)))
            .collect();
        assert_eq!(promoted(&tied, 0.34), [0]);
    }

    #[test]
    fn a_screened_out_genome_never_outranks_a_fully_trained_one() {
        let full = [
            evaluation(0, Stage::Full, 1.05),
            evaluation(1, Stage::Full, 0.95),
        ];
        let screened = [
            evaluation(2, Stage::Screen, 1.4),
            evaluation(3, Stage::Screen, 0.7),
        ];
        let all: Vec<&Evaluation> = full.iter().chain(&screened).collect();
        assert_eq!(selection_fitness(&all), [1.05, 0.95, 0.95, 0.7]);
        let only_full: Vec<&Evaluation> = full.iter().collect();
        assert_eq!(selection_fitness(&only_full), [1.05, 0.95]);
    }
}
