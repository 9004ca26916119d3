//! Adam's baseline under a protocol: the task scores every genome is divided by, grown one seed
//! group (`seeds` runs of each task) at a time, and reused wherever Adam itself would be trained.
use super::fitness::{check_baseline, TaskScore};
use crate::error::{Error, Result};
use crate::genome::{adam_hash, Genome};

/// How many whole seed groups of `seeds` runs `runs` runs make.
pub fn groups(runs: usize, seeds: usize) -> u64 {
    (runs / seeds.max(1)) as u64
}

/// The seed groups `baseline` holds (none before it is trained).
pub fn groups_held(baseline: Option<&[TaskScore]>, seeds: usize) -> u64 {
    baseline
        .and_then(|b| b.first())
        .map_or(0, |t| groups(t.runs.len(), seeds))
}

/// Adam's runs of seed group `group` alone, as a genome trained on that group would have them.
pub fn group(baseline: &[TaskScore], group: u64, seeds: usize) -> Vec<TaskScore> {
    let skip = group as usize * seeds;
    baseline
        .iter()
        .map(|t| TaskScore::from_runs(&t.task, t.runs[skip..skip + seeds].to_vec()))
        .collect()
}

/// Trains (`train(g)`) and merges in every seed group `g` through `through` that `baseline`
/// lacks, each checked as a baseline must be; returns the steps that took.
pub fn extend(
    baseline: &mut Option<Vec<TaskScore>>,
    through: u64,
    seeds: usize,
    mut train: impl FnMut(u64) -> Result<Vec<TaskScore>>,
) -> Result<u64> {
    let mut steps = 0;
    loop {
        let have = groups_held(baseline.as_deref(), seeds);
        if have > through {
            return Ok(steps);
        }
        let more = train(have)?;
        check_baseline(&more).map_err(Error::Protocol)?;
        steps += more.iter().map(|t| t.steps).sum::<u64>();
        *baseline = Some(match baseline.take() {
            None => more,
            Some(b) => b.into_iter().zip(more).map(|(b, m)| b.merged(m)).collect(),
        });
    }
}

/// Whether `genome` trains: Adam never does, it reuses the baseline's runs.
pub fn trains(genome: &Genome) -> bool {
    genome.hash() != adam_hash()
}

/// The task scores of `genomes` on seed group `group`, in order: Adam's from the baseline, each
/// other genome's from `trained` (the genomes that `trains`, in the same order).
pub fn with_adam<'a>(
    genomes: impl IntoIterator<Item = &'a Genome>,
    baseline: &[TaskScore],
    at: u64,
    seeds: usize,
    trained: Vec<Vec<TaskScore>>,
) -> Vec<Vec<TaskScore>> {
    let mut trained = trained.into_iter();
    genomes
        .into_iter()
        .map(|g| match trains(g) {
            true => trained.next().expect("one score list per genome trained"),
            false => group(baseline, at, seeds),
        })
        .collect()
}
