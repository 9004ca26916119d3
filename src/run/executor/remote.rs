//! The driver side of worker processes: write a stage's items, start jobs of `evolve worker`
//! tasks through a `Launcher` (local processes or Slurm), collect results in item order,
//! resubmit failed tasks up to `retries` times, cancel on a signal.
use super::{BatchDir, Executor, WorkItem, WorkResult};
use crate::config::ExecutorConfig;
use crate::error::{Error, Result};
use crate::fsutil::{parse_json, write_json_confined};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the driver looks for results and asks the launcher about its tasks.
const POLL: Duration = Duration::from_millis(250);

/// One task's state as the launcher sees it.
#[derive(Clone, Debug)]
pub struct TaskState {
    /// Queued or running (results may still come).
    pub active: bool,
    /// Its state in the launcher's words (`PENDING`, `FAILED`, `exit status: 1`, …).
    pub state: String,
}

/// Starts and watches jobs of `evolve worker` tasks.
pub trait Launcher {
    /// `workers` or `slurm`: the folder under the run directory for scripts, logs and jobs.
    fn name(&self) -> &'static str;
    /// How many tasks `items` pending items are spread over.
    fn tasks_for(&self, items: usize) -> usize;
    /// Starts a job of `tasks` tasks on task list `manifest` of `batch`; returns its id.
    fn submit(&mut self, batch: &str, manifest: &str, tasks: usize) -> Result<String>;
    /// What the launcher knows of its tasks, by (job id, task). A task it no longer knows has
    /// ended.
    fn states(&mut self) -> Result<HashMap<(String, usize), TaskState>>;
    /// Stops `jobs` and returns once none of their tasks runs.
    fn cancel(&mut self, jobs: &[String]) -> Result<()>;
    fn log(&self, job: &str, task: usize) -> PathBuf;
    /// Whether jobs outlive the driver, so that a resumed driver may adopt them.
    fn outlives_driver(&self) -> bool;
}

/// A submitted job: which item keys each of its tasks holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Job {
    pub id: String,
    pub batch: String,
    pub tasks: Vec<Vec<String>>,
}

pub struct Remote {
    launcher: Box<dyn Launcher>,
    run: PathBuf,
    retries: u32,
    /// Jobs of this run not yet merged, kept in `<launcher>/jobs.json`.
    jobs: Vec<Job>,
}

impl Remote {
    pub fn new(launcher: Box<dyn Launcher>, config: &ExecutorConfig, run: &Path) -> Result<Remote> {
        let mut remote = Remote {
            launcher,
            run: run.to_path_buf(),
            retries: config.retries,
            jobs: Vec::new(),
        };
        let path = remote.jobs_file();
        if remote.launcher.outlives_driver() {
            if let Ok(text) = crate::fsutil::read_to_string(&path) {
                remote.jobs = parse_json(&text)
                    .map_err(|m| Error::run(&path, format!("not a job list: {m}")))?;
            }
        }
        Ok(remote)
    }

    fn jobs_file(&self) -> PathBuf {
        self.run.join(self.launcher.name()).join("jobs.json")
    }

    fn save_jobs(&self) -> Result<()> {
        write_json_confined(&self.jobs_file(), &self.jobs)
    }

    /// Submits `keys` of `batch` as one job, spread round-robin over its tasks so that results
    /// arrive roughly in item order.
    fn submit(&mut self, dir: &BatchDir, batch: &str, keys: &[String]) -> Result<Vec<Running>> {
        let n = self.launcher.tasks_for(keys.len()).clamp(1, keys.len());
        let tasks: Vec<Vec<String>> = (0..n)
            .map(|t| keys.iter().skip(t).step_by(n).cloned().collect())
            .collect();
        let name = (0..)
            .map(|i| format!("tasks-{i}.json"))
            .find(|name| !dir.manifest(name).exists())
            .expect("an unused name");
        write_json_confined(&dir.manifest(&name), &tasks)?;
        let id = self.launcher.submit(batch, &name, n)?;
        let running = (0..n)
            .map(|task| Running {
                job: id.clone(),
                task,
                keys: tasks[task].clone(),
            })
            .collect();
        self.jobs.push(Job {
            id,
            batch: batch.to_string(),
            tasks,
        });
        self.save_jobs()?;
        Ok(running)
    }

    /// Tasks of jobs an earlier driver submitted for `batch` that still run and hold some of
    /// `missing`: waited for instead of trained again.
    fn adopt(&mut self, batch: &str, missing: &HashSet<String>) -> Result<Vec<Running>> {
        if missing.is_empty() || !self.jobs.iter().any(|j| j.batch == batch) {
            return Ok(Vec::new());
        }
        let states = self.launcher.states()?;
        let active = |job: &str, task: usize| {
            states
                .get(&(job.to_string(), task))
                .is_some_and(|s| s.active)
        };
        Ok(self
            .jobs
            .iter()
            .filter(|j| j.batch == batch)
            .flat_map(|j| {
                j.tasks
                    .iter()
                    .enumerate()
                    .map(move |(t, keys)| (j, t, keys))
            })
            .filter(|(j, t, keys)| active(&j.id, *t) && keys.iter().any(|k| missing.contains(k)))
            .map(|(j, task, keys)| Running {
                job: j.id.clone(),
                task,
                keys: keys.clone(),
            })
            .collect())
    }

    /// Cancels the jobs `running` belongs to.
    fn cancel(&mut self, running: &[Running]) -> Result<()> {
        let mut jobs: Vec<String> = running.iter().map(|r| r.job.clone()).collect();
        jobs.sort();
        jobs.dedup();
        match jobs.is_empty() {
            true => Ok(()),
            false => self.launcher.cancel(&jobs),
        }
    }

    /// The wait loop of `run`: merges results in order, resubmits what failed.
    fn collect(
        &mut self,
        batch: &str,
        dir: &BatchDir,
        items: &[WorkItem],
        running: &mut Vec<Running>,
        starting: &dyn Fn(usize),
        done: &mut dyn FnMut(usize, WorkResult) -> Result<()>,
    ) -> Result<()> {
        let mut attempts: HashMap<String, u32> = HashMap::new();
        let mut next = 0;
        let mut announced = None;
        loop {
            while let Some(item) = items.get(next) {
                let result = match item.genomes.is_empty() {
                    true => Some(nothing_to_train(item)),
                    false => dir.read_result(item),
                };
                let Some(result) = result else { break };
                done(next, result)?;
                next += 1;
            }
            if next == items.len() {
                return Ok(());
            }
            if announced != Some(next) {
                starting(next);
                announced = Some(next);
            }
            if let Some(signal) = crate::interrupt::requested() {
                return Err(Error::Interrupted(signal));
            }
            let again = self.ended_without_results(dir, items, running, &mut attempts)?;
            if !again.is_empty() {
                let resubmitted = self.submit(dir, batch, &again)?;
                running.extend(resubmitted);
            }
            std::thread::sleep(POLL);
        }
    }

    /// Drops the tasks of `running` that ended, and returns the keys of their items still
    /// without a result, to resubmit: counted in `attempts`, an error once one is past `retries`.
    /// States first, results second: a task seen ended whose result is still missing really
    /// ended without it.
    fn ended_without_results(
        &mut self,
        dir: &BatchDir,
        items: &[WorkItem],
        running: &mut Vec<Running>,
        attempts: &mut HashMap<String, u32>,
    ) -> Result<Vec<String>> {
        let states = self.launcher.states()?;
        let mut failed: Vec<(Running, String)> = Vec::new();
        running.retain(|r| match states.get(&(r.job.clone(), r.task)) {
            Some(s) if s.active => true,
            s => {
                let state = s.map_or("ended".to_string(), |s| s.state.clone());
                failed.push((r.clone(), state));
                false
            }
        });
        let mut again: Vec<String> = Vec::new();
        for (task, state) in failed {
            for key in &task.keys {
                let item = items.iter().find(|i| i.key() == *key);
                let Some(item) = item.filter(|i| dir.read_result(i).is_none()) else {
                    continue;
                };
                let tries = attempts.entry(key.clone()).or_insert(0);
                *tries += 1;
                if *tries > self.retries {
                    return Err(self.gave_up(&task, &state, item));
                }
                eprintln!(
                    "{} job {} task {} ended ({state}) without the result of {key}; resubmitting (retry {tries} of {}); log: {}",
                    self.launcher.name(),
                    task.job,
                    task.task,
                    self.retries,
                    self.launcher.log(&task.job, task.task).display()
                );
                if !again.contains(key) {
                    again.push(key.clone());
                }
            }
        }
        Ok(again)
    }

    fn gave_up(&self, task: &Running, state: &str, item: &WorkItem) -> Error {
        let genomes: Vec<String> = item.genomes.iter().map(|g| g.label()).collect();
        let log = self.launcher.log(&task.job, task.task);
        Error::Stopped(format!(
            "{} job {} task {} ended ({state}) without its results after {} retries; log: {}; it held genome(s) {} (seed group {}). Progress is saved: fix the cause and resume with `evolve --resume {}`. The log ends:\n{}",
            self.launcher.name(),
            task.job,
            task.task,
            self.retries,
            log.display(),
            genomes.join(", "),
            item.group,
            self.run.display(),
            log_tail(&log, LOG_TAIL_LINES)
        ))
    }
}

/// How much of a failed task's log the driver's error quotes.
const LOG_TAIL_LINES: usize = 8;

/// The last `lines` lines of a worker's log, indented, for an error message (the cause is
/// usually its last line); says so when the log cannot be read.
fn log_tail(path: &Path, lines: usize) -> String {
    match crate::fsutil::read_to_string(path) {
        Ok(text) => {
            let all: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            match tail.is_empty() {
                true => "  (the log is empty)".into(),
                false => tail
                    .iter()
                    .map(|l| format!("  {l}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            }
        }
        Err(e) => format!("  (the log cannot be read: {e})"),
    }
}

/// A task the driver waits for.
#[derive(Clone, Debug)]
struct Running {
    job: String,
    task: usize,
    keys: Vec<String>,
}

/// An item without genomes (every genome of its window rides along): nothing to train.
fn nothing_to_train(item: &WorkItem) -> WorkResult {
    WorkResult {
        key: item.key(),
        scores: Vec::new(),
        seconds: 0.0,
    }
}

impl Executor for Remote {
    fn run(
        &mut self,
        batch: &str,
        items: &[WorkItem],
        starting: &dyn Fn(usize),
        done: &mut dyn FnMut(usize, WorkResult) -> Result<()>,
    ) -> Result<()> {
        let dir = BatchDir::new(&self.run, batch);
        let mut missing: Vec<String> = Vec::new();
        for item in items.iter().filter(|i| !i.genomes.is_empty()) {
            let key = item.key();
            if !dir.item(&key).exists() {
                write_json_confined(&dir.item(&key), item)?;
            }
            if dir.read_result(item).is_none() && !missing.contains(&key) {
                missing.push(key);
            }
        }
        let mut running = self.adopt(batch, &missing.iter().cloned().collect())?;
        let adopted: HashSet<&String> = running.iter().flat_map(|r| &r.keys).collect();
        let fresh: Vec<String> = missing
            .iter()
            .filter(|k| !adopted.contains(k))
            .cloned()
            .collect();
        if !fresh.is_empty() {
            let submitted = self.submit(&dir, batch, &fresh)?;
            running.extend(submitted);
        }
        let outcome = self.collect(batch, &dir, items, &mut running, starting, done);
        // Whatever still runs is a duplicate now, or would outlive a failed stage.
        self.cancel(&running)?;
        if outcome.is_ok() {
            self.jobs.retain(|j| j.batch != batch);
            self.save_jobs()?;
            dir.remove();
        }
        outcome
    }
}
