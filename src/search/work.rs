//! What the loop hands out and gets back: a window of genomes to train (`WorkItem`), its scores
//! (`WorkResult`), and the `Executor` that trains windows (this process, worker processes or
//! Slurm: see `run::executor`). An item is everything a worker needs, named by its content hash.
use crate::error::Result;
use crate::genome::Genome;
use crate::train::fitness::TaskScore;
use crate::train::prune::Pruning;
use crate::train::Protocol;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// One window: genomes trained side by side under a protocol on one seed group. Everything a
/// worker needs, and nothing about where it runs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    pub protocol: Protocol,
    /// Seed group: runs `group·seeds .. (group+1)·seeds` of each task.
    pub group: u64,
    pub genomes: Vec<Genome>,
    /// Genomes stacked in one network (part of what a run is: it changes rounding).
    pub batch_candidates: usize,
    /// Whether runs also measure test-set accuracy.
    pub report_test: bool,
    /// Learning-curve pruning (full rung with `fidelity.prune` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prune: Option<Pruning>,
}

impl WorkItem {
    /// The item's content hash: its file name, so a resumed driver finds the results of the
    /// windows it plans again.
    pub fn key(&self) -> String {
        let json = serde_json::to_string(self).expect("plain data serialises");
        let digest = Sha256::digest(json.as_bytes());
        digest[..10].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// What a worker checks before it trains an item found under `key`: the key is the item's
    /// content hash, and the protocol, every genome and the stacking are what a run accepts.
    pub fn check(&self, key: &str) -> std::result::Result<(), String> {
        if self.key() != key {
            return Err(format!(
                "its content hash is {}, not {key} (edited or misplaced)",
                self.key()
            ));
        }
        self.protocol.validate("protocol")?;
        if self.genomes.is_empty() {
            return Err("field `genomes`: empty; allowed: one or more genomes".into());
        }
        for (i, genome) in self.genomes.iter().enumerate() {
            genome
                .validate()
                .map_err(|m| format!("genome {i} ({}): {m}", genome.label()))?;
        }
        let most = crate::train::protocol::MAX_BATCH_CANDIDATES;
        if !(1..=most).contains(&self.batch_candidates) {
            return Err(format!(
                "field `batch_candidates`: {}; allowed: 1..={most}",
                self.batch_candidates
            ));
        }
        let limits = self
            .prune
            .iter()
            .flat_map(|p| &p.bars)
            .flat_map(|(_, _, b)| &b.limits);
        if let Some((step, limit)) = limits.clone().find(|(_, l)| !(l.is_finite() && *l > 0.0)) {
            return Err(format!(
                "field `prune`: limit {limit} at step {step}; allowed: a finite loss > 0"
            ));
        }
        Ok(())
    }
}

/// What training an item gave: one list of task scores per genome, in the item's order.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct WorkResult {
    pub key: String,
    pub scores: Vec<Vec<TaskScore>>,
    /// Wall time of the whole item.
    pub seconds: f64,
}

/// Trains a stage's items. `starting(i)` is told before item `i` is awaited, `done(i, result)`
/// gets the results strictly in item order (the loop saves after each).
pub trait Executor {
    fn run(
        &mut self,
        batch: &str,
        items: &[WorkItem],
        starting: &dyn Fn(usize),
        done: &mut dyn FnMut(usize, WorkResult) -> Result<()>,
    ) -> Result<()>;
}
