//! The run directory and its records: what a run keeps on disk, and the lock that gives a run
//! one process.
//!
//! `runs/NAME/` holds `config.json` (resolved), `checkpoint.json` (rewritten atomically after every
//! evaluation), `history.jsonl` (one line per evaluation), `best.json`, `summary.md`,
//! `fitness.svg`, `progress.svg` and `evolve.lock`. Nothing here trusts what it reads: a checkpoint that is valid
//! JSON but inconsistent is refused before anything trains on it.
use crate::config::Config;
use crate::error::{Error, Result};
use crate::fitness::{Score, TaskScore};
use crate::fsutil::write_json_confined;
use crate::ga::Ga;
use crate::genome::Genome;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.json";
pub const CHECKPOINT: &str = "checkpoint.json";
pub const HISTORY: &str = "history.jsonl";
pub const BEST: &str = "best.json";
/// With a held-out protocol, the best genome by search score (`best.json` is the best held out).
pub const BEST_SEARCH: &str = "best-search.json";
pub const SUMMARY: &str = "summary.md";
pub const FITNESS_SVG: &str = "fitness.svg";
pub const PROGRESS_SVG: &str = "progress.svg";
/// Held (`flock`) by the one process that runs this directory; the kernel releases it when that
/// process dies, so a killed run never leaves a stale lock. Holds that process's PID.
pub const LOCK: &str = "evolve.lock";
/// Version 4 computes in channels-last with smaller scoring passes by default; version 3 adds the
/// validation split, seed groups and the held-out stage; version 2 keeps one `StageState` per
/// stage. Older files are migrated on load.
pub const CHECKPOINT_VERSION: u32 = 4;
/// The search's best distinct genomes kept for the held-out stage and reports (at least).
pub const LEADERS: usize = 10;

/// Which protocol an evaluation ran under.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stage {
    /// The cut-down protocol of multi-fidelity screening.
    Screen,
    /// The full protocol.
    Full,
    /// A held-out protocol: the search's best genomes re-checked (meta-validation).
    Holdout,
    /// The full protocol, stopped early by learning-curve pruning (`fidelity.prune`); kept with
    /// the full stage's results, scored but capped like a screening score.
    Pruned,
}

/// One evaluated genome, as `history.jsonl` and the checkpoint keep it (loss curves left out).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub generation: usize,
    pub index: usize,
    pub hash: String,
    pub genome: Genome,
    pub stage: Stage,
    /// Runs behind each task's score (a survivor's grow with each seed group).
    #[serde(default)]
    pub seeds: u64,
    /// Scored against Adam under the same stage's protocol, on the same seeds.
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

/// What training Adam's baseline cost, until a history line records it.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Cost {
    pub steps: u64,
    pub seconds: f64,
}

/// What one stage (screening or full) keeps: Adam's scores under its protocol, every genome's
/// score by hash (so identical genomes are never trained twice), and this generation's
/// evaluations by index.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct StageState {
    pub baseline: Option<Vec<TaskScore>>,
    /// Recorded on the history line of Adam's first evaluation at this stage.
    #[serde(default)]
    pub baseline_cost: Option<Cost>,
    pub memo: BTreeMap<String, Score>,
    pub results: Vec<Option<Evaluation>>,
}

/// Everything needed to continue a run exactly.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub version: u32,
    pub config: Config,
    pub generation: usize,
    pub population: Vec<Genome>,
    /// Per genome of this generation: the seed group a survivor is re-evaluated on (noise-aware
    /// selection), fixed when the generation is bred; `None` for a genome scored as usual.
    #[serde(default)]
    pub reevaluate: Vec<Option<u64>>,
    /// Full-protocol evaluations; a genome of this generation without one is selected by its
    /// screening evaluation.
    pub full: StageState,
    /// Multi-fidelity screening (results stay empty without it).
    pub screen: StageState,
    pub ga: Ga,
    /// The best genome by search score (its latest, seed-averaged evaluation).
    pub best: Option<Evaluation>,
    /// The search's best distinct genomes by latest full score, best first (at least `LEADERS`,
    /// or the held-out `top`).
    #[serde(default)]
    pub leaders: Vec<Evaluation>,
    /// Held-out protocol evaluations (meta-validation); `results` holds this generation's
    /// held-out check by rank.
    #[serde(default)]
    pub holdout: StageState,
    /// The best genome by held-out score.
    #[serde(default)]
    pub best_holdout: Option<Evaluation>,
    pub generations: Vec<GenerationStats>,
    /// Training steps done so far (reused scores cost none).
    pub total_steps: u64,
    pub evaluations: u64,
    /// Evaluations that reused the score of an identical genome (no training).
    pub reused: u64,
    /// Byte length of `history.jsonl` when this checkpoint was written.
    pub history_len: u64,
    /// Genomes trained side by side (stacked); part of what a run is, so it never changes.
    #[serde(default = "one")]
    pub batch_candidates: usize,
}

fn one() -> usize {
    1
}

impl Checkpoint {
    pub fn stage(&self, stage: Stage) -> &StageState {
        match stage {
            Stage::Screen => &self.screen,
            Stage::Full | Stage::Pruned => &self.full,
            Stage::Holdout => &self.holdout,
        }
    }

    pub fn stage_mut(&mut self, stage: Stage) -> &mut StageState {
        match stage {
            Stage::Screen => &mut self.screen,
            Stage::Full | Stage::Pruned => &mut self.full,
            Stage::Holdout => &mut self.holdout,
        }
    }

    /// The protocol of `stage` (screening cuts the full one to its budget).
    pub fn protocol(&self, stage: Stage) -> Option<crate::config::Protocol> {
        let c = &self.config;
        match stage {
            Stage::Full | Stage::Pruned => Some(c.protocol.clone()),
            Stage::Screen => Some(c.protocol.screening(&c.fidelity)),
            Stage::Holdout => c.holdout.as_ref().map(|h| h.protocol.clone()),
        }
    }

    /// The genome `best.json` holds: the best held out when the run has a held-out protocol
    /// and has checked one, else the best by search score.
    pub fn winner(&self) -> Option<&Evaluation> {
        self.best_holdout.as_ref().or(self.best.as_ref())
    }

    /// (genomes of the run that have a selection score, genomes the run will score in all).
    pub fn scored(&self) -> (usize, usize) {
        let search = &self.config.search;
        let total = search.generations.saturating_mul(search.population);
        let this = (0..self.population.len())
            .filter(|&i| self.selected(i).is_some())
            .count();
        let done = match self.generation < search.generations {
            true => (self.generation * search.population + this).min(total),
            false => total,
        };
        (done, total)
    }

    /// The evaluation genome `i` of this generation is selected by: its full one, else its
    /// screening one.
    pub fn selected(&self, i: usize) -> Option<&Evaluation> {
        self.full.results[i]
            .as_ref()
            .or(self.screen.results[i].as_ref())
    }

    /// A survivor due for re-scoring on seed group `group` must have been scored on exactly
    /// `group` groups (or `group + 1`, once re-scored), below the run's cap.
    fn check_reevaluation(&self, i: usize, group: u64) -> std::result::Result<(), String> {
        let seeds = self.config.protocol.seeds;
        let groups = self
            .full
            .memo
            .get(&self.population[i].hash())
            .map(|s| s.seeds() as u64 / seeds);
        let due = (1..self.config.search.max_seed_groups).contains(&group);
        if !due || !groups.is_some_and(|g| g == group || g == group + 1) {
            return Err(format!(
                "field `reevaluate[{i}]`: seed group {group}, but population[{i}] was scored on {} seed group(s) of at most {}; allowed: null or the next group",
                groups.map_or("no".into(), |g| g.to_string()),
                self.config.search.max_seed_groups
            ));
        }
        Ok(())
    }

    /// Checks that the checkpoint describes a run this program can continue: a valid config,
    /// one slot per genome, valid genomes that match their evaluations, finite scores and a
    /// usable baseline. The message names the field.
    pub fn check(&self) -> std::result::Result<(), String> {
        self.config
            .validate()
            .map_err(|m| format!("its config: {m}"))?;
        self.ga
            .params
            .validate()
            .map_err(|m| format!("field `ga.params`: {m}"))?;
        let n = self.config.search.population;
        for (field, len) in [
            ("population", self.population.len()),
            ("reevaluate", self.reevaluate.len()),
            ("full.results", self.full.results.len()),
            ("screen.results", self.screen.results.len()),
        ] {
            if len != n {
                return Err(format!(
                    "field `{field}`: {len} entries, but the run's population is {n}"
                ));
            }
        }
        if self.generation > self.config.search.generations {
            return Err(format!(
                "field `generation`: {} is past the run's {} generations",
                self.generation, self.config.search.generations
            ));
        }
        if self.reused > self.evaluations {
            return Err(format!(
                "field `reused`: {} reused of {} evaluations; allowed: at most `evaluations`",
                self.reused, self.evaluations
            ));
        }
        if self.batch_candidates == 0 {
            return Err("field `batch_candidates`: 0; allowed: an integer ≥ 1".into());
        }
        for (i, genome) in self.population.iter().enumerate() {
            genome
                .validate()
                .map_err(|m| format!("field `population[{i}]`: {m}"))?;
            if let Some(group) = self.reevaluate[i] {
                self.check_reevaluation(i, group)?;
            }
            for (field, stage, state) in [
                ("full", Stage::Full, &self.full),
                ("screen", Stage::Screen, &self.screen),
            ] {
                if let Some(e) = &state.results[i] {
                    let field = format!("{field}.results[{i}]");
                    check_evaluation(&field, e)?;
                    let pruned = stage == Stage::Full && e.stage == Stage::Pruned;
                    if e.hash != genome.hash() || (e.stage != stage && !pruned) {
                        return Err(format!(
                            "field `{field}`: a {:?} evaluation of genome {}, but population[{i}] is {}",
                            e.stage,
                            e.hash,
                            genome.hash()
                        ));
                    }
                }
            }
        }
        for (field, e) in [("best", &self.best), ("best_holdout", &self.best_holdout)] {
            if let Some(e) = e {
                check_evaluation(field, e)?;
            }
        }
        for (i, e) in self.leaders.iter().enumerate() {
            check_evaluation(&format!("leaders[{i}]"), e)?;
        }
        for (i, e) in self.holdout.results.iter().enumerate() {
            if let Some(e) = e {
                check_evaluation(&format!("holdout.results[{i}]"), e)?;
            }
        }
        for (field, stage, state) in [
            ("full", Stage::Full, &self.full),
            ("screen", Stage::Screen, &self.screen),
            ("holdout", Stage::Holdout, &self.holdout),
        ] {
            let protocol = self.protocol(stage);
            let tasks: Vec<String> = protocol.as_ref().map_or(Vec::new(), |p| {
                p.tasks.iter().map(|t| t.name.clone()).collect()
            });
            if let Some(b) = &state.baseline {
                let names: Vec<String> = b.iter().map(|t| t.task.clone()).collect();
                if names != tasks {
                    return Err(format!(
                        "field `{field}.baseline`: scores for tasks {names:?}, but the protocol's tasks are {tasks:?}"
                    ));
                }
                // Adam is trained on whole seed groups, every task alike.
                let seeds = protocol.as_ref().map_or(1, |p| p.seeds as usize);
                let runs: Vec<usize> = b.iter().map(|t| t.runs.len()).collect();
                if runs
                    .iter()
                    .any(|&r| r == 0 || r % seeds != 0 || r != runs[0])
                {
                    return Err(format!(
                        "field `{field}.baseline`: {runs:?} runs per task; allowed: the same whole number of seed groups ({seeds} runs each) for every task"
                    ));
                }
                crate::fitness::check_baseline(b)
                    .map_err(|m| format!("field `{field}.baseline`: {m}"))?;
            }
            for (hash, score) in &state.memo {
                check_score(&format!("{field}.memo.{hash}"), score)?;
            }
        }
        Ok(())
    }
}

fn check_evaluation(field: &str, e: &Evaluation) -> std::result::Result<(), String> {
    e.genome
        .validate()
        .map_err(|m| format!("field `{field}.genome`: {m}"))?;
    if e.hash != e.genome.hash() {
        return Err(format!(
            "field `{field}.hash`: {} is not the hash of its genome ({})",
            e.hash,
            e.genome.hash()
        ));
    }
    check_score(&format!("{field}.score"), &e.score)
}

fn check_score(field: &str, score: &Score) -> std::result::Result<(), String> {
    if score.tasks.is_empty() || !score.vs_adam.is_finite() || !score.raw.is_finite() {
        return Err(format!(
            "field `{field}`: {} task score(s), vs_adam {}, raw {}; allowed: at least one task and finite numbers",
            score.tasks.len(),
            score.vs_adam,
            score.raw
        ));
    }
    Ok(())
}

/// The exclusive lock on a run directory, held for as long as this value lives.
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of `dir`, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK);
        crate::fsutil::refuse_link(&path)?;
        let mut file = no_follow()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // `evolve status` takes a shared lock for an instant to see whether a run is live, so a
        // busy lock gets a moment before it counts as another run.
        let mut attempts = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => return Err(in_use(dir, &mut file)),
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        file.set_len(0)
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io(&path, e))?;
        Ok(RunLock { _file: file })
    }

    /// The PID of the process holding `dir`'s lock, if one does (`"?"` while it is still
    /// writing it). Takes nothing: for `evolve status` and for refusing a second run.
    pub fn holder(dir: &Path) -> Option<String> {
        let mut file = File::open(dir.join(LOCK)).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(TryLockError::WouldBlock) => Some(read_pid(&mut file)),
            Err(TryLockError::Error(_)) => None,
        }
    }
}

fn read_pid(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim() {
        "" => "?".into(),
        pid => pid.into(),
    }
}

fn in_use(dir: &Path, file: &mut File) -> Error {
    Error::run(
        dir,
        format!(
            "is in use by another evolve process (PID {}); one process per run directory. Wait for it to finish or stop it (it saves on SIGINT/SIGTERM), then `evolve --resume {}`",
            read_pid(file),
            dir.display()
        ),
    )
}

/// The run directory; `lock` is held by a process that writes to it.
pub struct RunDir {
    pub path: PathBuf,
    _lock: Option<RunLock>,
}

impl RunDir {
    /// A run directory for reading only (export, status): takes no lock.
    pub fn open(path: &Path) -> RunDir {
        RunDir {
            path: path.to_path_buf(),
            _lock: None,
        }
    }

    /// A new run in `path`, locked. `path` must be missing or empty: anything else is refused
    /// untouched, with the ways out.
    pub fn create(path: &Path) -> Result<RunDir> {
        if path.exists() && !path.is_dir() {
            return Err(Error::run(
                path,
                "exists and is not a directory; a new run needs a missing or empty directory: choose another --out",
            ));
        }
        let foreign = entries(path)?;
        if !foreign.is_empty() {
            if let Some(pid) = RunLock::holder(path) {
                return Err(Error::run(
                    path,
                    format!(
                        "is in use by another evolve process (PID {pid}); choose another --out"
                    ),
                ));
            }
            let hint = if path.join(CHECKPOINT).exists() {
                format!("already holds a run; continue it with `evolve --resume {}` or choose another --out", path.display())
            } else {
                format!(
                    "is not empty (holds {}) and is not an evolve run; a new run needs a missing or empty directory: choose another --out (or `evolve --resume {}` for a run)",
                    foreign.iter().take(3).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                    path.display()
                )
            };
            return Err(Error::run(path, hint));
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let lock = RunLock::acquire(path)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: Some(lock),
        })
    }

    /// An existing run in `path`, locked, with its checked checkpoint.
    pub fn resume(path: &Path) -> Result<(RunDir, Checkpoint)> {
        let unlocked = RunDir::open(path);
        unlocked.require_checkpoint()?;
        let dir = RunDir {
            path: path.to_path_buf(),
            _lock: Some(RunLock::acquire(path)?),
        };
        let checkpoint = dir.load_checkpoint()?;
        Ok((dir, checkpoint))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn require_checkpoint(&self) -> Result<()> {
        if self.file(CHECKPOINT).is_file() {
            return Ok(());
        }
        let message = match RunLock::holder(&self.path) {
            Some(pid) => format!("is being created by evolve (PID {pid}): its {CHECKPOINT} is not written yet; try again in a moment"),
            None => format!("no {CHECKPOINT} here: not an evolve run directory (or the run never started)"),
        };
        Err(Error::run(&self.path, message))
    }

    /// Refuses a path that is not a run directory: its `config.json` and `checkpoint.json` must
    /// be regular files in it (not links), as the driver writes them.
    pub fn require_run(&self) -> Result<()> {
        self.require_checkpoint()?;
        for name in [CONFIG, CHECKPOINT] {
            let path = self.file(name);
            if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                return Err(Error::run(
                    &self.path,
                    format!("not an evolve run directory: {name} is missing or not a regular file"),
                ));
            }
        }
        Ok(())
    }

    /// Reads and checks `checkpoint.json` against itself and `history.jsonl`; a corrupt or
    /// inconsistent one is refused without touching anything.
    pub fn load_checkpoint(&self) -> Result<Checkpoint> {
        self.require_checkpoint()?;
        let path = self.file(CHECKPOINT);
        let refuse = |m: String| {
            Error::run(&path, format!("corrupt or inconsistent checkpoint, refusing to read or resume it ({m}); nothing in the run directory was changed"))
        };
        let text = crate::fsutil::read_to_string(&path)?;
        let value: serde_json::Value =
            crate::fsutil::parse_json(&text).map_err(|m| refuse(m.clone()))?;
        let version = value.get("version").and_then(|v| v.as_u64());
        let text = match version {
            Some(1) => migrate_v1(value)
                .and_then(migrate_v2)
                .and_then(migrate_v3)
                .map_err(|m| refuse(m.clone()))?
                .to_string(),
            Some(2) => migrate_v2(value)
                .and_then(migrate_v3)
                .map_err(|m| refuse(m.clone()))?
                .to_string(),
            Some(3) => migrate_v3(value)
                .map_err(|m| refuse(m.clone()))?
                .to_string(),
            Some(v) if v == CHECKPOINT_VERSION as u64 => text,
            _ => {
                return Err(Error::run(
                    &path,
                    format!(
                        "checkpoint version {} (this evolve reads versions 1 to {CHECKPOINT_VERSION}); it was written by another evolve",
                        version.map_or("missing".into(), |v| v.to_string())
                    ),
                ))
            }
        };
        let checkpoint: Checkpoint =
            crate::fsutil::parse_json(&text).map_err(|m| refuse(m.clone()))?;
        checkpoint.check().map_err(refuse)?;
        let history_path = self.file(HISTORY);
        let history = match history_path.exists() {
            true => crate::fsutil::read_regular(&history_path, None)?,
            false => Vec::new(),
        };
        let len = checkpoint.history_len as usize;
        if history.len() < len {
            let whole = history.iter().filter(|&&b| b == b'\n').count();
            return Err(Error::run(
                &history_path,
                format!(
                    "history line {} is incomplete: the file holds {} bytes, the checkpoint records {len}; it was cut or replaced after the checkpoint was written (restore it, or start a new run)",
                    whole + 1,
                    history.len()
                ),
            ));
        }
        if len > 0 && history[len - 1] != b'\n' {
            return Err(refuse(format!(
                "field `history_len`: {len} does not end a line of {HISTORY}"
            )));
        }
        Ok(checkpoint)
    }

    /// Writes the checkpoint atomically, after the same checks a resume makes: a checkpoint
    /// that could not be resumed (a non-finite score, say) is never written.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        checkpoint.check().map_err(|m| {
            Error::run(
                self.file(CHECKPOINT),
                format!(
                    "refusing to save an inconsistent checkpoint ({m}); the previous one is kept"
                ),
            )
        })?;
        self.write_json(CHECKPOINT, checkpoint)
    }

    /// Whether no evaluation has been recorded yet (the history is empty).
    pub fn nothing_evaluated(&self) -> bool {
        std::fs::metadata(self.file(HISTORY)).map_or(true, |m| m.len() == 0)
    }

    /// Removes what a run that never evaluated anything wrote (its files, its executor's
    /// folders) and the directory itself when the run made it (`existed`: it was there, empty).
    /// Best effort: the caller reports the error that stopped the run either way.
    pub fn remove_unstarted(&self, existed: bool) {
        for name in [CONFIG, CHECKPOINT, HISTORY, LOCK] {
            let _ = std::fs::remove_file(self.file(name));
        }
        for folder in ["work", "results", "workers", "slurm"] {
            let _ = std::fs::remove_dir_all(self.file(folder));
        }
        if !existed {
            let _ = std::fs::remove_dir(&self.path);
        }
    }

    /// Writes the run's file `name` atomically, never through a link (see `write_confined`).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        crate::fsutil::write_confined(&self.file(name), bytes)
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        write_json_confined(&self.file(name), value)
    }

    /// Every line of `history.jsonl` that the checkpoint knows of (for `evolve status`).
    pub fn history(&self, checkpoint: &Checkpoint) -> Result<Vec<Evaluation>> {
        let path = self.file(HISTORY);
        let bytes = crate::fsutil::read_regular(&path, None)?;
        let known = &bytes[..(checkpoint.history_len as usize).min(bytes.len())];
        String::from_utf8_lossy(known)
            .lines()
            .enumerate()
            .map(|(i, line)| {
                crate::fsutil::parse_json(line)
                    .map_err(|m| Error::run(&path, format!("line {}: {m}", i + 1)))
            })
            .collect()
    }

    /// Appends one line to `history.jsonl` and returns the file's new length.
    pub fn append_history(&self, evaluation: &Evaluation) -> Result<u64> {
        let path = self.file(HISTORY);
        crate::fsutil::refuse_link(&path)?;
        let mut file = no_follow()
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
    pub fn truncate_history(&self, len: u64) -> Result<()> {
        let path = self.file(HISTORY);
        crate::fsutil::refuse_link(&path)?;
        let file = no_follow()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.set_len(len).map_err(|e| Error::io(&path, e))
    }
}

/// Version 2 runs scored on the test set and scored every genome once: the fields that say so
/// now (`score_on`, `max_seed_groups`) are written in, so the run resumes as it began.
fn migrate_v2(v: serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    use serde_json::{json, Value};
    let mut v = v;
    let config = v
        .get_mut("config")
        .and_then(Value::as_object_mut)
        .ok_or("field `config`: missing")?;
    let tasks = config
        .get_mut("protocol")
        .and_then(|p| p.get_mut("tasks"))
        .and_then(Value::as_array_mut)
        .ok_or("field `config.protocol.tasks`: missing")?;
    for task in tasks.iter_mut().filter_map(Value::as_object_mut) {
        task.entry("score_on").or_insert(json!("test"));
    }
    if let Some(search) = config.get_mut("search").and_then(Value::as_object_mut) {
        search.entry("max_seed_groups").or_insert(json!(1));
    } else {
        config.insert("search".into(), json!({ "max_seed_groups": 1 }));
    }
    let n = v
        .get("population")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let o = v.as_object_mut().ok_or("not a JSON object")?;
    o.entry("reevaluate").or_insert(json!(vec![Value::Null; n]));
    v["version"] = json!(3);
    Ok(v)
}

/// Version 3 computed in NCHW and scored 1,000 images a pass: its tasks (search and held-out)
/// say so now, so the run resumes with the arithmetic it began with.
fn migrate_v3(mut v: serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    use serde_json::{json, Value};
    let config = v.get_mut("config").ok_or("field `config`: missing")?;
    if config.pointer("/protocol/tasks").is_none() {
        return Err("field `config.protocol.tasks`: missing".into());
    }
    for tasks in ["/protocol/tasks", "/holdout/protocol/tasks"] {
        let tasks = config.pointer_mut(tasks).and_then(Value::as_array_mut);
        for task in tasks.into_iter().flatten().filter_map(Value::as_object_mut) {
            task.entry("layout").or_insert(json!("nchw"));
            task.entry("score_batch").or_insert(json!(1000));
        }
    }
    v["version"] = json!(CHECKPOINT_VERSION);
    Ok(v)
}

/// Version 1 kept the two stages in parallel fields (`memo`/`screen_memo`, `baseline`/
/// `screen_baseline`, `scores`/`screens`, where `scores` also held the screening evaluations of
/// genomes not promoted); version 2 keeps one `StageState` per stage.
fn migrate_v1(mut v: serde_json::Value) -> std::result::Result<serde_json::Value, String> {
    use serde_json::{json, Value};
    let o = v.as_object_mut().ok_or("not a JSON object")?;
    let n = o
        .get("population")
        .and_then(Value::as_array)
        .map_or(0, Vec::len);
    let full_results: Vec<Value> = match o.remove("scores") {
        Some(Value::Array(scores)) => scores
            .into_iter()
            .map(|e| match e.get("stage").and_then(Value::as_str) {
                Some("full") => e,
                _ => Value::Null,
            })
            .collect(),
        _ => return Err("field `scores`: missing".into()),
    };
    let screens = match o.remove("screens") {
        Some(Value::Array(s)) if !s.is_empty() => s,
        _ => vec![Value::Null; n],
    };
    let mut take = |key: &str| o.remove(key).unwrap_or(Value::Null);
    let full =
        json!({ "baseline": take("baseline"), "memo": take("memo"), "results": full_results });
    let screen_memo = match take("screen_memo") {
        Value::Null => json!({}),
        memo => memo,
    };
    let screen =
        json!({ "baseline": take("screen_baseline"), "memo": screen_memo, "results": screens });
    o.insert("full".into(), full);
    o.insert("screen".into(), screen);
    o.entry("reused").or_insert(json!(0));
    o.insert("version".into(), json!(2));
    Ok(v)
}

/// Options that refuse to open a symbolic link (`O_NOFOLLOW`): files of a run directory are
/// opened in place, never through a link planted there.
fn no_follow() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.custom_flags(libc::O_NOFOLLOW);
    options
}

/// The names in `dir` other than the lock file (none when `dir` is missing).
fn entries(dir: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(dir) {
        Ok(list) => {
            let mut names: Vec<String> = list
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != LOCK)
                .collect();
            names.sort();
            Ok(names)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir, e)),
    }
}
