//! How good a genome is: datasets and models, one training run, the protocol of runs, the
//! fitness formula, learning-curve pruning and the evaluator that scores a slice of genomes.
pub mod baseline;
pub mod command;
pub mod data;
pub mod evaluator;
pub mod fitness;
pub mod models;
pub mod protocol;
pub mod prune;
pub mod run;
pub mod task;
pub mod tuning;

pub use protocol::Protocol;
pub use run::{
    accuracy, recent_mean, rng_lock, train_run, train_stacked, Bar, RunMetrics, Trainer,
    DIVERGED_LOSS,
};
pub use task::{ScoreOn, Task};
