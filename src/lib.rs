//! `evolve`: discover deep-learning optimizers by genetic algorithm.
//!
//! The modules follow the flow, one folder per stage:
//!
//! genome (what an optimizer is: terms, genes) → optim (how it updates weights) → train (how good
//! it is: data, models, one run, fitness, the evaluator) → search (how better ones are bred: the
//! loop, the GA) → run (what is kept on disk, and where evaluations run: the run directory,
//! executors) → report (what a researcher reads: summaries, plots, progress, the export).
pub mod genome;
pub mod optim;
pub mod report;
pub mod run;
pub mod search;
pub mod train;

pub mod config;
pub mod device;
pub mod error;
pub mod fsutil;
pub mod interrupt;

pub use error::{Error, Result};
pub use genome::Genome;
