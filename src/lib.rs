//! `evolve`: discover deep-learning optimizers by genetic algorithm.
//!
//! genome (what an optimizer is) → optim (how it updates weights) → train/fitness (how good it
//! is) → ga/evolution (how better ones are bred) → report (what a researcher reads).
pub mod error;
pub mod fsutil;
pub mod genome;
pub mod optim;

pub use error::{Error, Result};
pub use genome::Genome;
pub mod config;
pub mod data;
pub mod device;
pub mod evaluator;
pub mod evolution;
pub mod executor;
pub mod export;
pub mod fitness;
pub mod ga;
pub mod generalization;
pub mod genes;
pub mod interrupt;
pub mod models;
pub mod progress;
pub mod replay;
pub mod report;
pub mod run_dir;
pub mod terms;
pub mod train;
