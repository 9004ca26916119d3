//! The `Evaluator`: scores a slice of genomes under one protocol on one device.
//!
//! It takes a slice, not one genome, so that stacked candidates and multi-device fan-out can slot
//! in behind this one function without the evolution loop changing. Today it trains them in turn.
use crate::config::Protocol;
use crate::data::{Dataset, DatasetKind};
use crate::error::Result;
use crate::fitness::{Score, TaskScore};
use crate::genome::{adam_baseline, Genome};
use crate::train::train_run;
use indicatif::ProgressBar;
use std::collections::HashMap;
use std::path::Path;
use tch::Device;

pub struct Evaluator {
    protocol: Protocol,
    device: Device,
    data: HashMap<DatasetKind, Dataset>,
    baseline: Option<Vec<TaskScore>>,
    /// Shows training steps of the genome being scored, when set.
    pub progress: Option<ProgressBar>,
}

impl Evaluator {
    /// Loads every dataset the protocol needs from `root` and moves it onto `device` once.
    pub fn new(protocol: &Protocol, device: Device, root: &Path) -> Result<Evaluator> {
        let mut data = HashMap::new();
        for task in &protocol.tasks {
            if let std::collections::hash_map::Entry::Vacant(slot) = data.entry(task.dataset) {
                slot.insert(Dataset::load(task.dataset, root)?.to_device(device));
            }
        }
        Ok(Evaluator {
            protocol: protocol.clone(),
            device,
            data,
            baseline: None,
            progress: None,
        })
    }

    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    pub fn device(&self) -> Device {
        self.device
    }

    /// Trains `genome` on every task and seed of the protocol.
    pub fn task_scores(&self, genome: &Genome) -> Result<Vec<TaskScore>> {
        let total = self.protocol.total_steps();
        if let Some(bar) = &self.progress {
            bar.set_length(total);
            bar.set_position(0);
        }
        let mut done = 0;
        let mut scores = Vec::with_capacity(self.protocol.tasks.len());
        for task in &self.protocol.tasks {
            let data = &self.data[&task.dataset];
            let mut runs = Vec::with_capacity(self.protocol.seeds as usize);
            for index in 0..self.protocol.seeds {
                let seed = self.protocol.run_seed(task, index);
                let on_step = |steps: u64| {
                    if let Some(bar) = &self.progress {
                        bar.set_position(done + steps);
                    }
                };
                let run = train_run(task, genome, seed, data, self.device, &on_step)?;
                done += task.steps;
                runs.push(run);
            }
            scores.push(TaskScore::from_runs(&task.name, runs));
        }
        Ok(scores)
    }

    /// Adam's scores under this protocol, trained on first use and kept.
    pub fn baseline(&mut self) -> Result<Vec<TaskScore>> {
        if self.baseline.is_none() {
            self.baseline = Some(self.task_scores(&adam_baseline())?);
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
        genomes
            .iter()
            .map(|g| {
                let tasks = if g.hash() == adam {
                    baseline.clone()
                } else {
                    self.task_scores(g)?
                };
                Ok(Score::new(tasks, &baseline))
            })
            .collect()
    }
}
