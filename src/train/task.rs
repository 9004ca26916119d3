//! A task: what to train on and for how long, and the split its fitness is scored on.
use super::data::Dataset;
use super::data::DatasetKind;
use super::models::{Layout, ModelKind, Precision};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// What to train on and for how long.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Task {
    /// The name reports use and `--tasks` selects by.
    pub name: String,
    pub dataset: DatasetKind,
    pub model: ModelKind,
    pub train_subset: i64,
    pub batch: i64,
    pub steps: u64,
    /// `fp32` (default) or `bf16` mixed precision.
    #[serde(default, skip_serializing_if = "is_default")]
    pub precision: Precision,
    /// `channels_last` (default) or `nchw`: the memory layout of activations (see `Layout`).
    #[serde(default, skip_serializing_if = "is_default")]
    pub layout: Layout,
    /// The split fitness is scored on (see `ScoreOn`).
    #[serde(default)]
    pub score_on: ScoreOn,
    /// Images in the validation split: the last this many of the training set, left out of
    /// every training subset when `score_on` is `validation`.
    #[serde(default = "default_validation")]
    pub validation: i64,
    /// Score on only the first this many images of the scoring split (multi-fidelity's
    /// screening rung sets it; see `Protocol::screening`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_images: Option<i64>,
    /// Images per forward pass when scoring. Results do not depend on it beyond rounding; on CPU
    /// a batch whose activations fit the cache is fastest (see the evaluation bench).
    #[serde(
        default = "default_score_batch",
        skip_serializing_if = "is_default_score_batch"
    )]
    pub score_batch: i64,
    /// Measure accuracy on the scoring split every this many steps too (replay's
    /// `--eval-every`, for time to target); training is unchanged by it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_every: Option<u64>,
}

fn is_default<T: Default + PartialEq>(value: &T) -> bool {
    *value == T::default()
}

fn default_score_batch() -> i64 {
    128
}

fn is_default_score_batch(n: &i64) -> bool {
    *n == default_score_batch()
}

fn default_validation() -> i64 {
    5000
}

/// What a run's accuracy is measured on for its fitness. Selecting on the test set (as the
/// published notebook did) turns the test set into training data for the search, so fresh
/// searches score on a validation split held out of the training set and keep the test set for
/// reporting.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScoreOn {
    #[default]
    Validation,
    /// The official test set, as Marfinetz 2025 (for comparisons with the paper's numbers).
    Test,
}

impl Task {
    /// Training images a subset may be drawn from: all of them when scoring on the test set,
    /// else all but the validation split at the end.
    pub fn train_pool(&self, data: &Dataset) -> i64 {
        let n = data.train_y.size()[0];
        match self.score_on {
            ScoreOn::Test => n,
            ScoreOn::Validation => n - self.validation,
        }
    }

    /// The images and labels fitness accuracy is measured on: the scoring split, or its first
    /// `score_images` images.
    pub fn scoring_split(&self, data: &Dataset) -> (Tensor, Tensor) {
        let (x, y) = self.whole_scoring_split(data);
        match self.score_images {
            Some(n) if n < y.size()[0] => (x.narrow(0, 0, n), y.narrow(0, 0, n)),
            _ => (x, y),
        }
    }

    fn whole_scoring_split(&self, data: &Dataset) -> (Tensor, Tensor) {
        match self.score_on {
            ScoreOn::Test => (data.test_x.shallow_clone(), data.test_y.shallow_clone()),
            ScoreOn::Validation => {
                let n = data.train_y.size()[0];
                let start = n - self.validation;
                (
                    data.train_x.narrow(0, start, self.validation),
                    data.train_y.narrow(0, start, self.validation),
                )
            }
        }
    }

    /// Whether accuracy can be measured every `n` steps of this task (`eval_every`).
    pub fn eval_every_fits(&self, n: u64) -> bool {
        (1..=self.steps).contains(&n)
    }

    /// `check_sizes`, as the error a run stops with: it names the task, its dataset and root.
    pub fn check_against(&self, available: i64, root: &std::path::Path) -> Result<()> {
        self.check_sizes(available).map_err(|m| {
            Error::Usage(format!(
                "task `{}` ({} under {}): {m}",
                self.name,
                self.dataset.dir_name(),
                root.display()
            ))
        })
    }

    /// Checks the split sizes against a dataset of `available` training images; the message
    /// names the task's fields.
    pub fn check_sizes(&self, available: i64) -> std::result::Result<(), String> {
        let pool = match self.score_on {
            ScoreOn::Test => available,
            ScoreOn::Validation => available - self.validation,
        };
        if self.score_on == ScoreOn::Validation && !(1..available).contains(&self.validation) {
            return Err(format!(
                "`validation`: {} images, but the dataset has {available} training images; allowed: 1..{available}",
                self.validation
            ));
        }
        if self.score_batch < 1 {
            return Err(format!(
                "`score_batch`: {} images per pass; allowed: 1 or more",
                self.score_batch
            ));
        }
        if self.train_subset > pool {
            return Err(format!(
                "`train_subset`: {} images, but {pool} training images are left outside the validation split; allowed: 1..={pool} (or --train-subset, or a smaller `validation`)",
                self.train_subset
            ));
        }
        Ok(())
    }
}
