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
use crate::genome::{Genome, SHIPPED};
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

/// One evaluated genome, as `history.jsonl` and the checkpoint keep it (loss curves left out).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub generation: usize,
    pub index: usize,
    pub hash: String,
    pub genome: Genome,
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
    /// Scores of the current generation so far, by index.
    pub scores: Vec<Option<Evaluation>>,
    pub ga: Ga,
    pub baseline: Option<Vec<TaskScore>>,
    /// Scores by genome hash, so identical genomes are never trained twice.
    pub memo: BTreeMap<String, Score>,
    pub best: Option<Evaluation>,
    pub generations: Vec<GenerationStats>,
    /// Training steps done so far (reused scores cost none).
    pub total_steps: u64,
    pub evaluations: u64,
    /// Byte length of `history.jsonl` when this checkpoint was written.
    pub history_len: u64,
}

/// Where and how to run (not part of the protocol: may change on resume).
pub struct RunOptions {
    pub device: Device,
    pub data_root: PathBuf,
    pub quiet: bool,
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
        history_len: 0,
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
                "the requested config or flags differ from the run's saved config.json; a resumed run keeps its protocol and search settings (only --device and --data-dir may change)",
            ));
        }
    }
    dir.truncate_history(checkpoint.history_len)?;
    run(&dir, checkpoint, options)
}

/// The loop: evaluate what is missing of this generation, breed the next, until done.
fn run(dir: &RunDir, mut cp: Checkpoint, options: &RunOptions) -> Result<Checkpoint> {
    let search = cp.config.search.clone();
    let mut evaluator = Evaluator::new(&cp.config.protocol, options.device, &options.data_root)?;
    let progress = crate::report::Progress::new(options.quiet, &cp);
    evaluator.progress = progress.steps.clone();
    match &cp.baseline {
        Some(b) => evaluator.set_baseline(b.clone()),
        None => {
            progress.message("adam (baseline)");
            let baseline = evaluator.baseline()?;
            cp.total_steps += baseline.iter().map(|t| t.steps).sum::<u64>();
            cp.baseline = Some(baseline);
            dir.save(&cp)?;
        }
    }
    while cp.generation < search.generations {
        for index in 0..cp.population.len() {
            if cp.scores[index].is_some() {
                continue;
            }
            let genome = cp.population[index].clone();
            progress.candidate(cp.generation, index, &genome);
            let evaluation = evaluate_one(&mut evaluator, &mut cp, &genome, index)?;
            cp.history_len = dir.append_history(&evaluation)?;
            if cp
                .best
                .as_ref()
                .is_none_or(|b| evaluation.score.vs_adam > b.score.vs_adam)
            {
                cp.best = Some(evaluation.clone());
            }
            cp.scores[index] = Some(evaluation);
            dir.save(&cp)?;
            if cp
                .best
                .as_ref()
                .map(|b| b.generation == cp.generation && b.index == index)
                .unwrap_or(false)
            {
                dir.write_reports(&cp)?;
            }
        }
        let fitness: Vec<f64> = cp
            .scores
            .iter()
            .map(|s| s.as_ref().expect("all scored").score.vs_adam)
            .collect();
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
        }
        cp.generation += 1;
        dir.save(&cp)?;
        dir.write_reports(&cp)?;
    }
    progress.finish();
    Ok(cp)
}

/// Scores one genome, reusing the score of an identical one when there is one (the Adam
/// baseline's runs count as such: they were trained, and counted, once).
fn evaluate_one(
    evaluator: &mut Evaluator,
    cp: &mut Checkpoint,
    genome: &Genome,
    index: usize,
) -> Result<Evaluation> {
    let hash = genome.hash();
    let start = std::time::Instant::now();
    let is_baseline = hash == crate::genome::adam_baseline().hash();
    let (score, cached) = match cp.memo.get(&hash) {
        Some(score) => (score.clone(), true),
        None => {
            let score = evaluator
                .evaluate(std::slice::from_ref(genome))?
                .remove(0)
                .without_curves();
            cp.memo.insert(hash.clone(), score.clone());
            (score, is_baseline)
        }
    };
    let steps = if cached { 0 } else { score.steps() };
    cp.total_steps += steps;
    cp.evaluations += 1;
    Ok(Evaluation {
        generation: cp.generation,
        index,
        hash,
        genome: genome.clone(),
        score,
        steps,
        cached,
        seconds: start.elapsed().as_secs_f64(),
    })
}
