//! The evolution loop. Its files live in the run directory (`run_dir`). Resume is exact by
//! construction: evaluations depend only on (genome, protocol),
//! the GA's random stream is in the checkpoint, and `history.jsonl` is cut back to the length the
//! checkpoint recorded, so an evaluation interrupted before its checkpoint is simply redone.
use crate::config::Config;
use crate::error::{Error, Result};
use crate::evaluator::Evaluator;
use crate::fitness::{Score, TaskScore};
use crate::fsutil::{write_atomic, write_json_atomic};
use crate::ga::Ga;
use crate::genome::{adam_baseline, Genome, SHIPPED};
use crate::report;
pub use crate::run_dir::{
    Checkpoint, Evaluation, GenerationStats, RunDir, Stage, BEST, CHECKPOINT, CHECKPOINT_VERSION,
    CONFIG, FITNESS_SVG, HISTORY, SUMMARY,
};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use tch::Device;

/// Where and how to run (not part of the protocol: may change on resume).
pub struct RunOptions {
    pub device: Device,
    pub data_root: PathBuf,
    pub quiet: bool,
    /// Genomes trained side by side in one stacked network; `None`: the run's own choice (saved
    /// in the checkpoint), else the device default.
    pub batch_candidates: Option<usize>,
}

/// Stacking pays on a GPU, where one small network leaves most of the chip idle; on CPU the
/// cores are busy with one, so candidates train one at a time.
pub fn default_batch_candidates(device: Device) -> usize {
    match device {
        Device::Cpu => 1,
        _ => 8,
    }
}

/// Writes `best.json`, `summary.md` and `fitness.svg` from the checkpoint.
fn write_reports(dir: &RunDir, checkpoint: &Checkpoint) -> Result<()> {
    if let Some(best) = &checkpoint.best {
        let mut genome = best.genome.clone();
        genome.name = Some(
            genome
                .name
                .unwrap_or_else(|| format!("evolved-{}", best.hash)),
        );
        genome.save(&dir.file(BEST))?;
    }
    write_atomic(
        &dir.file(SUMMARY),
        report::summary_markdown(checkpoint).as_bytes(),
    )?;
    write_atomic(
        &dir.file(FITNESS_SVG),
        report::fitness_svg(&checkpoint.generations).as_bytes(),
    )
}

/// The shipped genomes that seed the first generation.
fn shipped_genomes() -> Vec<Genome> {
    SHIPPED
        .iter()
        .map(|(name, _)| crate::genome::shipped(name))
        .collect()
}

/// Starts a new run in `out`. Refuses a directory that already holds a run.
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
    let seeds = if config.search.include_shipped {
        shipped_genomes()
    } else {
        Vec::new()
    };
    let population = ga.initial_population(config.search.population, seeds);
    let checkpoint = Checkpoint {
        version: CHECKPOINT_VERSION,
        scores: vec![None; population.len()],
        screens: vec![None; population.len()],
        screen_memo: BTreeMap::new(),
        screen_baseline: None,
        config,
        generation: 0,
        population,
        ga,
        baseline: None,
        memo: BTreeMap::new(),
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

/// Continues the run in `path`. `requested`, when given, must equal the saved config.
pub fn resume(path: &Path, requested: Option<&Config>, options: &RunOptions) -> Result<Checkpoint> {
    let (dir, checkpoint) = RunDir::resume(path)?;
    if let Some(requested) = requested {
        if requested != &checkpoint.config {
            return Err(Error::run(
                path,
                "the requested config or flags differ from the run's saved config.json; a resumed run keeps its protocol and search settings (only --device and --data-dir may change)",
            ));
        }
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

/// The loop: evaluate what is missing of this generation, breed the next, until done.
fn run(dir: &RunDir, mut cp: Checkpoint, options: &RunOptions) -> Result<Checkpoint> {
    let search = cp.config.search.clone();
    let fidelity = cp.config.fidelity.clone();
    let mut full = Evaluator::new(&cp.config.protocol, options.device, &options.data_root)?;
    let progress = crate::report::Progress::new(options.quiet, &cp);
    full.progress = Some(progress.steps.clone());
    full.batch_candidates = cp.batch_candidates.max(1);
    progress.message("adam (baseline)");
    cp.baseline = Some(baseline(
        &mut full,
        &mut cp.memo,
        cp.baseline.take(),
        &mut cp.total_steps,
    )?);
    let mut screen = match fidelity.enabled {
        true => {
            let mut screen = full.at_budget(fidelity.budget);
            cp.screen_baseline = Some(baseline(
                &mut screen,
                &mut cp.screen_memo,
                cp.screen_baseline.take(),
                &mut cp.total_steps,
            )?);
            Some(screen)
        }
        false => None,
    };
    dir.save(&cp)?;
    while cp.generation < search.generations {
        if let Some(screen) = &mut screen {
            let pending: Vec<usize> = (0..cp.population.len())
                .filter(|&i| {
                    cp.scores[i].is_none()
                        && cp.screens[i].is_none()
                        && !cp.memo.contains_key(&cp.population[i].hash())
                })
                .collect();
            evaluate_in_windows(screen, &mut cp, dir, &pending, Stage::Screen, &progress)?;
        }
        let promoted = promoted(&cp, fidelity.enabled.then_some(fidelity.promote));
        for index in 0..cp.population.len() {
            if cp.scores[index].is_none() && !promoted.contains(&index) {
                cp.scores[index] = cp.screens[index].clone();
            }
        }
        dir.save(&cp)?;
        let pending: Vec<usize> = promoted
            .into_iter()
            .filter(|&i| cp.scores[i].is_none())
            .collect();
        evaluate_in_windows(&mut full, &mut cp, dir, &pending, Stage::Full, &progress)?;
        let fitness = selection_fitness(&cp.scores);
        let best = fitness.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let stats = GenerationStats {
            generation: cp.generation,
            best,
            mean: fitness.iter().sum::<f64>() / fitness.len() as f64,
            best_so_far: cp.best.as_ref().map_or(best, |b| b.score.vs_adam),
        };
        progress.generation_done(&stats, &cp);
        cp.generations.push(stats);
        if cp.generation + 1 < search.generations {
            cp.population = cp.ga.next_generation(
                &cp.population,
                &fitness,
                search.elites,
                search.tournament,
                cp.generation + 1,
                search.generations,
            );
            check_bred(&cp.population, cp.generation + 1)?;
            cp.scores = vec![None; cp.population.len()];
            cp.screens = vec![None; cp.population.len()];
        }
        cp.generation += 1;
        dir.save(&cp)?;
        write_reports(dir, &cp)?;
    }
    progress.finish();
    Ok(cp)
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

/// Adam's scores under the evaluator's protocol: restored from the checkpoint, or trained now
/// (and counted). Either way Adam's own score is in `memo`, so the Adam genome is never retrained.
fn baseline(
    evaluator: &mut Evaluator,
    memo: &mut BTreeMap<String, Score>,
    saved: Option<Vec<TaskScore>>,
    total_steps: &mut u64,
) -> Result<Vec<TaskScore>> {
    let baseline = match saved {
        Some(b) => b,
        None => {
            let b = evaluator.baseline()?;
            *total_steps += b.iter().map(|t| t.steps).sum::<u64>();
            b
        }
    };
    evaluator.set_baseline(baseline.clone());
    memo.insert(
        adam_baseline().hash(),
        Score::new(baseline.clone(), &baseline).without_curves(),
    );
    Ok(baseline)
}

/// The genomes of this generation that get a full evaluation: those never screened (without
/// multi-fidelity, all; with it, the ones already known in full) and the best `promote` fraction
/// (at least one) of the screened, by screening score. A function of the screening results alone,
/// so a resumed generation promotes the same genomes.
fn promoted(cp: &Checkpoint, promote: Option<f64>) -> Vec<usize> {
    let (mut screened, known): (Vec<usize>, Vec<usize>) =
        (0..cp.population.len()).partition(|&i| cp.screens[i].is_some());
    let screen_score = |i: usize| cp.screens[i].as_ref().expect("screened").score.vs_adam;
    screened.sort_by(|&a, &b| screen_score(b).total_cmp(&screen_score(a)).then(a.cmp(&b)));
    let keep = match promote {
        Some(p) if !screened.is_empty() => ((screened.len() as f64 * p).floor() as usize).max(1),
        _ => screened.len(),
    };
    let mut chosen: Vec<usize> = known
        .into_iter()
        .chain(screened.into_iter().take(keep))
        .collect();
    chosen.sort();
    chosen
}

/// What selection ranks by: full scores as they are; screening scores capped at the worst full
/// score, so a screened-out genome never outranks a fully trained one.
fn selection_fitness(scores: &[Option<Evaluation>]) -> Vec<f64> {
    let all: Vec<&Evaluation> = scores
        .iter()
        .map(|s| s.as_ref().expect("all scored"))
        .collect();
    let worst_full = all
        .iter()
        .filter(|e| e.stage == Stage::Full)
        .map(|e| e.score.vs_adam)
        .fold(f64::INFINITY, f64::min);
    all.iter()
        .map(|e| match e.stage {
            Stage::Full => e.score.vs_adam,
            Stage::Screen => e.score.vs_adam.min(worst_full),
        })
        .collect()
}

/// Evaluates the genomes at `indices` (in order) at `stage`, in windows holding up to
/// `batch_candidates` distinct genomes not trained before, which train side by side. Genomes
/// already scored reuse their score. History lines follow index order; the checkpoint is saved
/// after each window, so a resumed run re-forms the same windows.
fn evaluate_in_windows(
    evaluator: &mut Evaluator,
    cp: &mut Checkpoint,
    dir: &RunDir,
    indices: &[usize],
    stage: Stage,
    progress: &crate::report::Progress,
) -> Result<()> {
    let k = evaluator.batch_candidates.max(1);
    let mut start = 0;
    while start < indices.len() {
        let memo = match stage {
            Stage::Screen => &cp.screen_memo,
            Stage::Full => &cp.memo,
        };
        let mut batch: Vec<Genome> = Vec::new();
        let mut end = start;
        while end < indices.len() {
            let genome = &cp.population[indices[end]];
            let hash = genome.hash();
            if !memo.contains_key(&hash) && !batch.iter().any(|g| g.hash() == hash) {
                if batch.len() == k {
                    break;
                }
                batch.push(genome.clone());
            }
            end += 1;
        }
        let first = &cp.population[indices[start]];
        progress.candidate(
            cp.generation,
            indices[start],
            batch.first().unwrap_or(first),
            if stage == Stage::Screen {
                "screening"
            } else {
                "training"
            },
        );
        let clock = std::time::Instant::now();
        let scores = if batch.is_empty() {
            Vec::new()
        } else {
            evaluator.evaluate(&batch)?
        };
        let seconds = clock.elapsed().as_secs_f64();
        let mut fresh: Vec<String> = Vec::new();
        for (genome, score) in batch.iter().zip(scores) {
            let memo = match stage {
                Stage::Screen => &mut cp.screen_memo,
                Stage::Full => &mut cp.memo,
            };
            memo.insert(genome.hash(), score.without_curves());
            fresh.push(genome.hash());
        }
        for &index in &indices[start..end] {
            let genome = cp.population[index].clone();
            let hash = genome.hash();
            let trained_now = fresh
                .iter()
                .position(|h| *h == hash)
                .map(|i| fresh.remove(i))
                .is_some();
            let score = match stage {
                Stage::Screen => &cp.screen_memo,
                Stage::Full => &cp.memo,
            }[&hash]
                .clone();
            let steps = if trained_now { score.steps() } else { 0 };
            cp.total_steps += steps;
            cp.evaluations += 1;
            cp.reused += u64::from(!trained_now);
            let evaluation = Evaluation {
                generation: cp.generation,
                index,
                hash,
                genome,
                stage,
                score,
                steps,
                cached: !trained_now,
                seconds: if trained_now { seconds } else { 0.0 },
            };
            cp.history_len = dir.append_history(&evaluation)?;
            match stage {
                Stage::Screen => cp.screens[index] = Some(evaluation),
                Stage::Full => {
                    if cp
                        .best
                        .as_ref()
                        .is_none_or(|b| evaluation.score.vs_adam > b.score.vs_adam)
                    {
                        cp.best = Some(evaluation.clone());
                    }
                    cp.scores[index] = Some(evaluation);
                }
            }
        }
        dir.save(cp)?;
        if stage == Stage::Full {
            write_reports(dir, cp)?;
        }
        start = end;
    }
    Ok(())
}
