//! The evolution loop and its run directory.
//!
//! `runs/NAME/` holds `config.json` (resolved), `checkpoint.json` (rewritten atomically after every
//! evaluation), `history.jsonl` (one line per evaluation), `best.json`, `summary.md` and
//! `fitness.svg`. Resume is exact by construction: evaluations depend only on (genome, protocol),
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
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tch::Device;

pub const CONFIG: &str = "config.json";
pub const CHECKPOINT: &str = "checkpoint.json";
pub const HISTORY: &str = "history.jsonl";
pub const BEST: &str = "best.json";
pub const SUMMARY: &str = "summary.md";
pub const FITNESS_SVG: &str = "fitness.svg";
const CHECKPOINT_VERSION: u32 = 1;

/// Which protocol an evaluation ran under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The cut-down protocol of multi-fidelity screening.
    Screen,
    /// The full protocol.
    Full,
}

/// One evaluated genome, as `history.jsonl` and the checkpoint keep it (loss curves left out).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub generation: usize,
    pub index: usize,
    pub hash: String,
    pub genome: Genome,
    pub stage: Stage,
    /// Scored against Adam under the same stage's protocol.
    pub score: Score,
    /// Steps trained for this evaluation (0 when the score was reused).
    pub steps: u64,
    /// Whether the score was reused from an identical genome evaluated before.
    pub cached: bool,
    pub seconds: f64,
}

/// Best, mean and best-so-far fitness (vs Adam) of one generation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GenerationStats {
    pub generation: usize,
    pub best: f64,
    pub mean: f64,
    pub best_so_far: f64,
}

/// Everything needed to continue a run exactly.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub config: Config,
    pub generation: usize,
    pub population: Vec<Genome>,
    /// The evaluation each genome of the current generation is selected by, by index (a full
    /// one, or a screening one for genomes screened out).
    pub scores: Vec<Option<Evaluation>>,
    /// Screening evaluations of the current generation, by index (multi-fidelity only).
    #[serde(default)]
    pub screens: Vec<Option<Evaluation>>,
    pub ga: Ga,
    pub baseline: Option<Vec<TaskScore>>,
    /// Full scores by genome hash, so identical genomes are never trained twice.
    pub memo: BTreeMap<String, Score>,
    /// Screening scores by genome hash, and Adam's under the screening protocol.
    #[serde(default)]
    pub screen_memo: BTreeMap<String, Score>,
    #[serde(default)]
    pub screen_baseline: Option<Vec<TaskScore>>,
    pub best: Option<Evaluation>,
    pub generations: Vec<GenerationStats>,
    /// Training steps done so far (reused scores cost none).
    pub total_steps: u64,
    pub evaluations: u64,
    /// Evaluations that reused the score of an identical genome (no training).
    #[serde(default)]
    pub reused: u64,
    /// Byte length of `history.jsonl` when this checkpoint was written.
    pub history_len: u64,
    /// Genomes trained side by side (stacked); kept so that a resumed run trains the same way.
    #[serde(default = "one")]
    pub batch_candidates: usize,
}

fn one() -> usize {
    1
}

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

/// The run directory.
pub struct RunDir {
    pub path: PathBuf,
}

impl RunDir {
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Reads and checks `checkpoint.json`; a corrupt one is refused without touching anything.
    pub fn load_checkpoint(&self) -> Result<Checkpoint> {
        let path = self.file(CHECKPOINT);
        if !path.exists() {
            return Err(Error::run(
                &self.path,
                format!(
                    "no {CHECKPOINT} here: not an evolve run directory (or the run never started)"
                ),
            ));
        }
        let text = crate::fsutil::read_to_string(&path)?;
        let checkpoint: Checkpoint = crate::fsutil::parse_json(&text)
            .map_err(|m| Error::run(&path, format!("corrupt or truncated checkpoint, refusing to resume ({m}); nothing in the run directory was changed")))?;
        if checkpoint.version != CHECKPOINT_VERSION {
            return Err(Error::run(
                &path,
                format!(
                    "checkpoint version {} (this evolve writes {CHECKPOINT_VERSION})",
                    checkpoint.version
                ),
            ));
        }
        let history = std::fs::metadata(self.file(HISTORY))
            .map(|m| m.len())
            .unwrap_or(0);
        if history < checkpoint.history_len {
            return Err(Error::run(self.file(HISTORY), format!("shorter ({history} bytes) than the checkpoint records ({}); refusing to resume", checkpoint.history_len)));
        }
        Ok(checkpoint)
    }

    fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        write_json_atomic(&self.file(CHECKPOINT), checkpoint)
    }

    fn append_history(&self, evaluation: &Evaluation) -> Result<u64> {
        let path = self.file(HISTORY);
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut line = serde_json::to_string(evaluation).expect("plain data serialises");
        line.push('\n');
        file.write_all(line.as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io(&path, e))?;
        file.metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io(&path, e))
    }

    /// Cuts `history.jsonl` back to what the checkpoint knows of.
    fn truncate_history(&self, len: u64) -> Result<()> {
        let path = self.file(HISTORY);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.set_len(len).map_err(|e| Error::io(&path, e))
    }

    /// Writes `best.json`, `summary.md` and `fitness.svg` from the checkpoint.
    fn write_reports(&self, checkpoint: &Checkpoint) -> Result<()> {
        if let Some(best) = &checkpoint.best {
            let mut genome = best.genome.clone();
            genome.name = Some(
                genome
                    .name
                    .unwrap_or_else(|| format!("evolved-{}", best.hash)),
            );
            genome.save(&self.file(BEST))?;
        }
        write_atomic(
            &self.file(SUMMARY),
            report::summary_markdown(checkpoint).as_bytes(),
        )?;
        write_atomic(
            &self.file(FITNESS_SVG),
            report::fitness_svg(&checkpoint.generations).as_bytes(),
        )
    }
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
    let dir = RunDir {
        path: out.to_path_buf(),
    };
    if dir.file(CHECKPOINT).exists() {
        return Err(Error::run(out, format!("already holds a run; continue it with `evolve --resume {}` or choose another --out", out.display())));
    }
    std::fs::create_dir_all(out).map_err(|e| Error::io(out, e))?;
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
    let dir = RunDir {
        path: path.to_path_buf(),
    };
    let checkpoint = dir.load_checkpoint()?;
    if let Some(requested) = requested {
        if requested != &checkpoint.config {
            return Err(Error::run(
                path,
                "the requested config or flags differ from the run's saved config.json; a resumed run keeps its protocol and search settings (only --device, --data-dir and --batch-candidates may change)",
            ));
        }
    }
    dir.truncate_history(checkpoint.history_len)?;
    let mut checkpoint = checkpoint;
    if let Some(k) = options.batch_candidates {
        checkpoint.batch_candidates = k;
    }
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
        let stats = GenerationStats {
            generation: cp.generation,
            best: fitness.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            mean: fitness.iter().sum::<f64>() / fitness.len() as f64,
            best_so_far: cp
                .best
                .as_ref()
                .map(|b| b.score.vs_adam)
                .unwrap_or(f64::NAN),
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
            cp.scores = vec![None; cp.population.len()];
            cp.screens = vec![None; cp.population.len()];
        }
        cp.generation += 1;
        dir.save(&cp)?;
        dir.write_reports(&cp)?;
    }
    progress.finish();
    Ok(cp)
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
            dir.write_reports(cp)?;
        }
        start = end;
    }
    Ok(())
}
