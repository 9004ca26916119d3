//! `evolve replay`: genome files trained under one protocol, each compared with Adam.
use crate::config::Config;
use crate::error::Result;
use crate::genome::Genome;
use crate::report::{sensitivity, ReplayDocument, ReplayEntry};
use crate::train::evaluator::Evaluator;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use tch::Device;

/// Where and how to train (not part of the protocol).
pub struct ReplayOptions {
    pub device: Device,
    pub data_root: PathBuf,
    /// Genomes trained side by side (`None`: the device default).
    pub batch_candidates: Option<usize>,
    /// Told (steps done, steps in all) while training.
    pub on_steps: Option<Rc<dyn Fn(u64, u64)>>,
    /// Learning-rate scales to train every genome and Adam at as well (`--lr-scale`).
    pub lr_scales: Vec<f64>,
    /// With the protocol's `eval_every` set: the file (one of the genomes) whose final accuracy
    /// is the target of time to target; `None`: Adam's.
    pub target: Option<PathBuf>,
}

/// Loads every file first (a bad one fails before any training), trains Adam once, then the
/// genomes, `batch_candidates` at a time.
pub fn replay(
    files: &[impl AsRef<Path>],
    config: &Config,
    options: ReplayOptions,
) -> Result<ReplayDocument> {
    let genomes: Vec<Genome> = files
        .iter()
        .map(|p| Genome::load(p.as_ref()))
        .collect::<Result<_>>()?;
    let mut evaluator = Evaluator::new(&config.protocol, options.device, &options.data_root)?;
    evaluator.batch_candidates = options
        .batch_candidates
        .unwrap_or_else(|| crate::device::default_batch_candidates(options.device));
    evaluator.on_steps = options.on_steps;
    let baseline = evaluator.baseline()?;
    let scores = evaluator.evaluate(&genomes)?;
    let lr_sensitivity = lr_sensitivity(&mut evaluator, &genomes, &options.lr_scales)?;
    let entries: Vec<ReplayEntry> = genomes
        .into_iter()
        .zip(files)
        .zip(scores)
        .map(|((genome, path), score)| ReplayEntry {
            name: genome.label(),
            file: path.as_ref().display().to_string(),
            hash: genome.hash(),
            genome,
            paired: crate::train::fitness::paired(&score.tasks, &baseline),
            score,
        })
        .collect();
    let timed = config.protocol.tasks.iter().all(|t| t.eval_every.is_some());
    let (target, time_to_target) = match timed {
        false => (None, Vec::new()),
        true => {
            let chosen = options.target.as_ref().map(|t| {
                entries
                    .iter()
                    .zip(files)
                    .find(|(_, f)| f.as_ref() == t.as_path())
                    .map(|(e, _)| e)
                    .expect("checked to be one of the files")
            });
            let (name, reference) = match chosen {
                Some(e) => (e.name.clone(), &e.score.tasks),
                None => ("adam".to_string(), &baseline),
            };
            // Adam too, unless it is one of the files.
            let adam_listed = entries.iter().any(|e| e.hash == crate::genome::adam_hash());
            let adam = (!adam_listed).then(|| ("adam".to_string(), &baseline));
            let rows = entries
                .iter()
                .map(|e| (e.name.clone(), &e.score.tasks))
                .chain(adam)
                .flat_map(|(n, tasks)| crate::report::target::against(&n, tasks, reference))
                .collect();
            (Some(name), rows)
        }
    };
    Ok(ReplayDocument {
        protocol: config.protocol.clone(),
        device: crate::device::describe(options.device),
        baseline,
        genomes: entries,
        lr_sensitivity,
        target,
        time_to_target,
    })
}

/// Every genome, and Adam, at each of `scales` times its learning rate, scored against the
/// unscaled Adam baseline (scale 1 reuses the scores already trained).
fn lr_sensitivity(
    evaluator: &mut Evaluator,
    genomes: &[Genome],
    scales: &[f64],
) -> Result<Vec<sensitivity::Point>> {
    let adam = crate::genome::adam_baseline();
    let mut subjects: Vec<(String, &Genome)> = genomes.iter().map(|g| (g.label(), g)).collect();
    if !genomes.iter().any(|g| g.hash() == adam.hash()) {
        subjects.push((adam.label(), &adam));
    }
    let mut named = Vec::new();
    for &scale in scales {
        for (name, genome) in &subjects {
            named.push((name.clone(), scale, sensitivity::scaled(genome, scale)));
        }
    }
    let trained: Vec<Genome> = named.iter().map(|(_, _, g)| g.clone()).collect();
    let scores = evaluator.evaluate(&trained)?;
    Ok(named
        .into_iter()
        .zip(scores)
        .map(|((name, scale, genome), score)| sensitivity::Point {
            name,
            scale,
            lr: genome.lr,
            vs_adam: score.vs_adam,
            diverged: score.tasks.iter().any(|t| t.diverged()),
        })
        .collect())
}
