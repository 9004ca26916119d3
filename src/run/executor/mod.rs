//! Executors: who trains a stage's windows. The evolution loop plans the windows (a pure
//! function of the run's state), hands them over as `WorkItem`s and merges the results in
//! window order, so history comes out the same wherever the training ran.
//!
//! - `Local` trains in this process.
//! - `Remote` hands items to `evolve worker` processes through the run directory: started on
//!   this machine (`workers`, one per device) or as Slurm job arrays (`slurm`). Like `submitit`,
//!   the run directory (on a shared filesystem) is the meeting point: items are written by the
//!   driver, results by workers, atomically and named by the item's content hash.
mod remote;
mod slurm;
mod worker;
mod workers;

pub use crate::search::work::{Executor, WorkItem, WorkResult};
pub use remote::Remote;
pub use worker::{work, WorkerArgs};

use crate::config::{ExecutorConfig, ExecutorKind};
use crate::error::{Error, Result};
use crate::train::evaluator::Evaluator;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::Device;

/// Where the driver runs and what its workers need.
pub struct Launch {
    pub run: PathBuf,
    pub device: Device,
    pub data_root: PathBuf,
    /// The `evolve` binary workers run (this one, by default).
    pub program: PathBuf,
    pub on_steps: Option<Rc<dyn Fn(u64, u64)>>,
}

/// Checks that the executor can run here, before a run creates or trains anything: the
/// `workers` devices exist on this machine, and Slurm's commands answer. (A Slurm task's device
/// is the compute node's, so it is not checked here.)
pub fn preflight(config: &ExecutorConfig) -> Result<()> {
    match config.kind {
        ExecutorKind::Local => Ok(()),
        ExecutorKind::Workers => {
            for spec in &config.devices {
                crate::device::parse(spec).map_err(|e| {
                    Error::Usage(format!("field `executor.devices` (--devices): {e}"))
                })?;
            }
            Ok(())
        }
        ExecutorKind::Slurm => slurm::check_tools(),
    }
}

/// The executor `config` asks for. Remote ones check their tools here, before anything runs.
pub fn build(config: &ExecutorConfig, launch: Launch) -> Result<Box<dyn Executor>> {
    Ok(match config.kind {
        ExecutorKind::Local => Box::new(Local {
            trainer: ItemTrainer::new(launch.device, &launch.data_root, launch.on_steps),
        }),
        ExecutorKind::Workers => {
            let launcher = workers::Workers::new(config, &launch);
            Box::new(Remote::new(Box::new(launcher), config, &launch.run)?)
        }
        ExecutorKind::Slurm => {
            let launcher = slurm::Slurm::new(config, &launch)?;
            Box::new(Remote::new(Box::new(launcher), config, &launch.run)?)
        }
    })
}

/// Trains items in this process, keeping one evaluator (and each dataset, on the device) per
/// protocol across items.
pub struct ItemTrainer {
    device: Device,
    root: PathBuf,
    on_steps: Option<Rc<dyn Fn(u64, u64)>>,
    evaluators: HashMap<String, Evaluator>,
}

impl ItemTrainer {
    pub fn new(device: Device, root: &Path, on_steps: Option<Rc<dyn Fn(u64, u64)>>) -> ItemTrainer {
        ItemTrainer {
            device,
            root: root.to_path_buf(),
            on_steps,
            evaluators: HashMap::new(),
        }
    }

    /// Trains `item`; its `seconds` leave out loading datasets (once per protocol).
    pub fn train(&mut self, item: &WorkItem) -> Result<WorkResult> {
        let protocol = serde_json::to_string(&item.protocol).expect("plain data serialises");
        if !self.evaluators.contains_key(&protocol) {
            let mut evaluator = match self.evaluators.values().next() {
                Some(other) => other.for_protocol(&item.protocol, &self.root)?,
                None => Evaluator::new(&item.protocol, self.device, &self.root)?,
            };
            evaluator.on_steps = self.on_steps.clone();
            self.evaluators.insert(protocol.clone(), evaluator);
        }
        let evaluator = self.evaluators.get_mut(&protocol).expect("just inserted");
        evaluator.batch_candidates = item.batch_candidates;
        evaluator.report_test = item.report_test;
        evaluator.prune = item.prune.clone();
        let clock = std::time::Instant::now();
        let scores = evaluator.task_scores_many(&item.genomes, item.group)?;
        Ok(WorkResult {
            key: item.key(),
            scores,
            seconds: clock.elapsed().as_secs_f64(),
        })
    }
}

/// Every window in this process, one after the other (the default).
pub struct Local {
    trainer: ItemTrainer,
}

impl Executor for Local {
    fn run(
        &mut self,
        _batch: &str,
        items: &[WorkItem],
        starting: &dyn Fn(usize),
        done: &mut dyn FnMut(usize, WorkResult) -> Result<()>,
    ) -> Result<()> {
        for (i, item) in items.iter().enumerate() {
            starting(i);
            let result = self.trainer.train(item)?;
            done(i, result)?;
        }
        Ok(())
    }
}

/// Where a batch's items, task lists and results live in the run directory: items and task
/// lists under `work/<batch>/` (written by the driver), results under `results/<batch>/`
/// (written by workers). Both go once the batch is merged.
pub struct BatchDir {
    pub work: PathBuf,
    pub results: PathBuf,
}

impl BatchDir {
    pub fn new(run: &Path, batch: &str) -> BatchDir {
        BatchDir {
            work: run.join("work").join(batch),
            results: run.join("results").join(batch),
        }
    }

    pub fn item(&self, key: &str) -> PathBuf {
        self.work.join(format!("{key}.item.json"))
    }

    pub fn result(&self, key: &str) -> PathBuf {
        self.results.join(format!("{key}.json"))
    }

    pub fn manifest(&self, name: &str) -> PathBuf {
        self.work.join(name)
    }

    /// Refuses a batch whose `work/` folders are not real folders of the run (a link could lead
    /// a worker to read items from anywhere).
    pub fn check_work_folder(&self) -> Result<()> {
        let work = self.work.parent().expect("work/<batch>");
        for folder in [work, &self.work] {
            match std::fs::symlink_metadata(folder) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(not_a_folder(folder)),
                Err(e) => return Err(Error::io(folder, e)),
            }
        }
        Ok(())
    }

    /// Makes `results/<batch>/` (real folders, never links) and checks that no result of
    /// `keys` is a link or anything but a regular file: before training, so that a result is
    /// never computed only to be refused.
    pub fn prepare_results(&self, keys: &[String]) -> Result<()> {
        let results = self.results.parent().expect("results/<batch>");
        for folder in [results, &self.results] {
            match std::fs::symlink_metadata(folder) {
                Ok(meta) if meta.is_dir() => {}
                Ok(_) => return Err(not_a_folder(folder)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match std::fs::create_dir(folder) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                        Err(e) => return Err(Error::io(folder, e)),
                    }
                }
                Err(e) => return Err(Error::io(folder, e)),
            }
        }
        for key in keys {
            let path = self.result(key);
            crate::fsutil::refuse_link(&path)?;
            crate::fsutil::write_target(&path)?;
        }
        Ok(())
    }

    /// The result of `item` when it is there and whole (one score list per genome, one score
    /// per task of the protocol, in order, each over the protocol's seeds); anything else counts
    /// as not there yet, so a damaged file is trained again rather than merged.
    pub fn read_result(&self, item: &WorkItem) -> Option<WorkResult> {
        let key = item.key();
        let path = self.result(&key);
        let is_file = std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file());
        let text = crate::fsutil::read_to_string(&path)
            .ok()
            .filter(|_| is_file)?;
        let result: WorkResult = serde_json::from_str(&text).ok()?;
        let tasks = &item.protocol.tasks;
        let seeds = item.protocol.seeds as usize;
        let whole = |scores: &Vec<crate::train::fitness::TaskScore>| {
            scores.len() == tasks.len()
                && scores
                    .iter()
                    .zip(tasks)
                    .all(|(s, t)| s.task == t.name && s.runs.len() == seeds)
        };
        let fits = result.key == key
            && result.scores.len() == item.genomes.len()
            && result.scores.iter().all(whole);
        fits.then_some(result)
    }

    /// Removes the batch's files, and `work/` and `results/` once empty (best effort: a
    /// leftover folder is harmless).
    pub fn remove(&self) {
        for folder in [&self.work, &self.results] {
            let _ = std::fs::remove_dir_all(folder);
            if let Some(parent) = folder.parent() {
                let _ = std::fs::remove_dir(parent);
            }
        }
    }
}

fn not_a_folder(path: &Path) -> Error {
    Error::run(
        path,
        "is not a folder of the run directory (a link or a file); a worker reads and writes only real folders inside the run",
    )
}

/// The `--device` spelling of `device`, for a worker's command line.
pub fn device_flag(device: Device) -> String {
    match device {
        Device::Cuda(i) => format!("cuda:{i}"),
        _ => "cpu".into(),
    }
}
