//! The `Evaluator`: scores a slice of genomes under one protocol on one device.
//!
//! It takes a slice, not one genome, so that stacked candidates and multi-device fan-out can slot
//! in behind this one function without the evolution loop changing: it trains up to
//! `batch_candidates` of them side by side in one stacked network.
use crate::config::Protocol;
use crate::data::{Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::fitness::{Score, TaskScore};
use crate::genome::{adam_baseline, Genome};
use crate::train::{train_stacked, RunMetrics};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use tch::Device;

pub struct Evaluator {
    protocol: Protocol,
    device: Device,
    data: Rc<HashMap<DatasetKind, Dataset>>,
    baseline: Option<Vec<TaskScore>>,
    /// Told (steps done, steps in all) as the genomes being scored train.
    pub on_steps: Option<Rc<dyn Fn(u64, u64)>>,
    /// How many genomes train side by side in one stacked network (1 = one at a time).
    pub batch_candidates: usize,
}

impl Evaluator {
    /// Loads every dataset the protocol needs from `root` and moves it onto `device` once.
    pub fn new(protocol: &Protocol, device: Device, root: &Path) -> Result<Evaluator> {
        let mut data = HashMap::new();
        for (i, task) in protocol.tasks.iter().enumerate() {
            if let std::collections::hash_map::Entry::Vacant(slot) = data.entry(task.dataset) {
                slot.insert(Dataset::load(task.dataset, root)?.to_device(device));
            }
            let available = data[&task.dataset].train_y.size()[0];
            if task.train_subset > available {
                return Err(Error::Usage(format!(
                    "field `protocol.tasks[{i}].train_subset` ({}): {} images, but {} under {} has {available} training images; allowed: 1..={available} (or --train-subset)",
                    task.name,
                    task.train_subset,
                    task.dataset.dir_name(),
                    root.display()
                )));
            }
        }
        Ok(Evaluator {
            protocol: protocol.clone(),
            device,
            data: Rc::new(data),
            baseline: None,
            on_steps: None,
            batch_candidates: 1,
        })
    }

    /// An evaluator for the same protocol cut to `fraction` of its steps, sharing the data.
    pub fn at_budget(&self, fraction: f64) -> Evaluator {
        Evaluator {
            protocol: self.protocol.at_budget(fraction),
            device: self.device,
            data: Rc::clone(&self.data),
            baseline: None,
            on_steps: self.on_steps.clone(),
            batch_candidates: self.batch_candidates,
        }
    }

    /// Trains `genome` on every task and seed of the protocol.
    pub fn task_scores(&self, genome: &Genome) -> Result<Vec<TaskScore>> {
        Ok(self
            .task_scores_many(std::slice::from_ref(genome))?
            .remove(0))
    }

    /// Trains `genomes` on every task and seed, `batch_candidates` of them stacked at a time.
    pub fn task_scores_many(&self, genomes: &[Genome]) -> Result<Vec<Vec<TaskScore>>> {
        let chunks: Vec<&[Genome]> = genomes.chunks(self.batch_candidates.max(1)).collect();
        let total = self.protocol.total_steps() * chunks.len() as u64;
        let mut done = 0;
        let mut scores: Vec<Vec<TaskScore>> =
            vec![Vec::with_capacity(self.protocol.tasks.len()); genomes.len()];
        for task in &self.protocol.tasks {
            let data = &self.data[&task.dataset];
            let mut runs: Vec<Vec<RunMetrics>> = vec![Vec::new(); genomes.len()];
            for index in 0..self.protocol.seeds {
                let seed = self.protocol.run_seed(task, index);
                let mut first = 0;
                for chunk in &chunks {
                    let on_step = |steps: u64| {
                        if let Some(report) = &self.on_steps {
                            report(done + steps, total);
                        }
                    };
                    let members = train_stacked(task, chunk, seed, data, self.device, &on_step)?;
                    done += task.steps;
                    for (offset, run) in members.into_iter().enumerate() {
                        runs[first + offset].push(run);
                    }
                    first += chunk.len();
                }
            }
            for (genome_scores, genome_runs) in scores.iter_mut().zip(runs) {
                genome_scores.push(TaskScore::from_runs(&task.name, genome_runs));
            }
        }
        Ok(scores)
    }

    /// Adam's scores under this protocol, trained on first use and kept.
    pub fn baseline(&mut self) -> Result<Vec<TaskScore>> {
        if self.baseline.is_none() {
            let baseline = self.task_scores(&adam_baseline())?;
            crate::fitness::check_baseline(&baseline).map_err(Error::Usage)?;
            self.baseline = Some(baseline);
        }
        Ok(self.baseline.clone().expect("just set"))
    }

    /// Restores a baseline computed earlier under the same protocol (from a checkpoint).
    pub fn set_baseline(&mut self, baseline: Vec<TaskScore>) {
        self.baseline = Some(baseline);
    }

    /// Scores each genome against the Adam baseline. A genome equal to the baseline reuses its runs.
    pub fn evaluate(&mut self, genomes: &[Genome]) -> Result<Vec<Score>> {
        let baseline = self.baseline()?;
        let adam = adam_baseline().hash();
        let to_train: Vec<Genome> = genomes
            .iter()
            .filter(|g| g.hash() != adam)
            .cloned()
            .collect();
        let mut trained = self.task_scores_many(&to_train)?.into_iter();
        Ok(genomes
            .iter()
            .map(|g| {
                let tasks = if g.hash() == adam {
                    baseline.clone()
                } else {
                    trained.next().expect("one per genome trained")
                };
                Score::new(tasks, &baseline)
            })
            .collect())
    }
}
