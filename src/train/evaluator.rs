//! The `Evaluator`: scores a slice of genomes under one protocol on one device.
//!
//! It takes a slice, not one genome, so that stacked candidates slot in behind this one function:
//! it trains up to `batch_candidates` of them side by side in one stacked network. Fan-out over
//! processes, devices and machines is the `executor`'s, one level up.
use crate::error::Result;
use crate::genome::{adam_baseline, Genome};
use crate::train::baseline;
use crate::train::data::{Dataset, Source};
use crate::train::fitness::{Score, TaskScore};
use crate::train::prune::Pruning;
use crate::train::Protocol;
use crate::train::{train_stacked, RunMetrics};
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use tch::Device;

pub struct Evaluator {
    protocol: Protocol,
    device: Device,
    /// Datasets on the device, shared with the evaluators made from this one.
    data: HashMap<Source, Rc<Dataset>>,
    /// Adam's scores over the seed groups trained so far (see `Protocol::run_seed`).
    baseline: Option<Vec<TaskScore>>,
    /// Told (steps done, steps in all) as the genomes being scored train.
    pub on_steps: Option<Rc<dyn Fn(u64, u64)>>,
    /// How many genomes train side by side in one stacked network (1 = one at a time).
    pub batch_candidates: usize,
    /// Whether runs also measure test-set accuracy (for reports; costs an evaluation pass when
    /// fitness is scored on the validation split).
    pub report_test: bool,
    /// Learning-curve pruning of the runs (full rung only), by task and run seed.
    pub prune: Option<Pruning>,
}

impl Evaluator {
    /// Loads every dataset the protocol needs from `root` and moves it onto `device` once.
    pub fn new(protocol: &Protocol, device: Device, root: &Path) -> Result<Evaluator> {
        let empty = Evaluator {
            protocol: protocol.clone(),
            device,
            data: HashMap::new(),
            baseline: None,
            on_steps: None,
            batch_candidates: 1,
            report_test: true,
            prune: None,
        };
        empty.for_protocol(protocol, root)
    }

    /// An evaluator for `protocol` with this one's settings and `data`, and no baseline yet.
    fn sharing(&self, protocol: Protocol, data: HashMap<Source, Rc<Dataset>>) -> Evaluator {
        Evaluator {
            protocol,
            device: self.device,
            data,
            baseline: None,
            on_steps: self.on_steps.clone(),
            batch_candidates: self.batch_candidates,
            report_test: self.report_test,
            prune: None,
        }
    }

    /// An evaluator for another protocol (a held-out one) with the same settings, sharing the
    /// datasets already on the device and loading the others from `root`.
    pub fn for_protocol(&self, protocol: &Protocol, root: &Path) -> Result<Evaluator> {
        let mut data = self.data.clone();
        for task in &protocol.tasks {
            if let Some(command) = &task.command {
                crate::train::command::find_program(command, &task.name)?;
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(slot) = data.entry(task.source()) {
                let loaded = Dataset::open(&task.source(), root)?.to_device(self.device);
                slot.insert(Rc::new(loaded));
            }
            task.check_against(data[&task.source()].train_y.size()[0], root)?;
        }
        Ok(self.sharing(protocol.clone(), data))
    }

    pub fn protocol(&self) -> &Protocol {
        &self.protocol
    }

    /// An evaluator for `protocol`, a variant of this one's on the same datasets (multi-fidelity's
    /// screening rung, see `Fidelity::screening`), sharing the data.
    pub fn with_protocol(&self, protocol: Protocol) -> Evaluator {
        self.sharing(protocol, self.data.clone())
    }

    /// Trains `genomes` on every task and on seed group `group` (runs `group·seeds ..
    /// (group+1)·seeds`), `batch_candidates` of them stacked at a time.
    pub fn task_scores_many(&self, genomes: &[Genome], group: u64) -> Result<Vec<Vec<TaskScore>>> {
        let chunks: Vec<&[Genome]> = genomes.chunks(self.batch_candidates.max(1)).collect();
        let total = self.protocol.total_steps() * chunks.len() as u64;
        let mut done = 0;
        let mut scores: Vec<Vec<TaskScore>> =
            vec![Vec::with_capacity(self.protocol.tasks.len()); genomes.len()];
        for task in &self.protocol.tasks {
            let data = self.data.get(&task.source());
            let mut runs: Vec<Vec<RunMetrics>> = vec![Vec::new(); genomes.len()];
            let seeds = self.protocol.seeds;
            for index in group * seeds..(group + 1) * seeds {
                let seed = self.protocol.run_seed(task, index);
                let mut first = 0;
                for chunk in &chunks {
                    let on_step = |steps: u64| {
                        if let Some(report) = &self.on_steps {
                            report(done + steps, total);
                        }
                    };
                    let members = match (&task.command, data) {
                        (Some(command), _) => chunk
                            .iter()
                            .map(|g| crate::train::command::run(task, command, g, seed))
                            .collect::<Result<Vec<_>>>()?,
                        (None, Some(data)) => train_stacked(
                            task,
                            chunk,
                            seed,
                            data,
                            self.report_test,
                            self.prune.as_ref().and_then(|p| p.bar(&task.name, seed)),
                            &on_step,
                        )?,
                        (None, None) => {
                            return Err(crate::Error::Internal(format!(
                                "task `{}`: its dataset was not loaded",
                                task.name
                            )))
                        }
                    };
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

    /// Adam's scores under this protocol on seed groups `0..=group`, trained on first use and
    /// kept.
    pub fn baseline_through(&mut self, group: u64) -> Result<Vec<TaskScore>> {
        let seeds = self.protocol.seeds as usize;
        let mut baseline = self.baseline.take();
        let extended = baseline::extend(&mut baseline, group, seeds, |g| {
            Ok(self.task_scores_many(&[adam_baseline()], g)?.remove(0))
        });
        self.baseline = baseline;
        extended?;
        Ok(self.baseline.clone().expect("just extended"))
    }

    /// Adam's scores on the protocol's own seeds (group 0).
    pub fn baseline(&mut self) -> Result<Vec<TaskScore>> {
        self.baseline_through(0)
    }

    /// Trains each genome on seed group `group` (Adam reuses its baseline's runs) and returns
    /// its task scores on that group alone.
    pub fn train_group(&mut self, genomes: &[Genome], group: u64) -> Result<Vec<Vec<TaskScore>>> {
        let baseline = self.baseline_through(group)?;
        let to_train: Vec<Genome> = genomes
            .iter()
            .filter(|g| baseline::trains(g))
            .cloned()
            .collect();
        let trained = self.task_scores_many(&to_train, group)?;
        let seeds = self.protocol.seeds as usize;
        Ok(baseline::with_adam(
            genomes, &baseline, group, seeds, trained,
        ))
    }

    /// Scores each genome on the protocol's seeds against the Adam baseline.
    pub fn evaluate(&mut self, genomes: &[Genome]) -> Result<Vec<Score>> {
        let baseline = self.baseline()?;
        Ok(self
            .train_group(genomes, 0)?
            .into_iter()
            .map(|tasks| Score::new(tasks, &baseline))
            .collect())
    }
}
