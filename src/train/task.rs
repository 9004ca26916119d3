//! A task: what to train on and for how long, and the split its fitness is scored on.
use super::data::{text, Dataset, DatasetKind, Source};
use super::models::{gpt, Layout, ModelKind, Precision};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// What to train on and for how long: a built-in task (a dataset and a model `evolve` trains),
/// or a `command`, the user's own training script (see `train::command`). Files spell it as
/// `TaskFile`, where a command task has no dataset, model, subset or batch.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TaskFile", into = "TaskFile")]
pub struct Task {
    /// The name reports use and `--tasks` selects by.
    pub name: String,
    pub dataset: DatasetKind,
    pub model: ModelKind,
    pub train_subset: i64,
    pub batch: i64,
    pub steps: u64,
    /// `fp32` (default) or `bf16` mixed precision.
    pub precision: Precision,
    /// `channels_last` (default) or `nchw`: the memory layout of activations (see `Layout`).
    pub layout: Layout,
    /// The split fitness is scored on (see `ScoreOn`).
    pub score_on: ScoreOn,
    /// Images in the validation split: the last this many of the training set, left out of
    /// every training subset when `score_on` is `validation`.
    pub validation: i64,
    /// Score on only the first this many images of the scoring split (multi-fidelity's
    /// screening rung sets it; see `Protocol::screening`).
    pub score_images: Option<i64>,
    /// Images per forward pass when scoring. Results do not depend on it beyond rounding; on CPU
    /// a batch whose activations fit the cache is fastest (see the evaluation bench).
    pub score_batch: i64,
    /// Measure accuracy on the scoring split every this many steps too (replay's
    /// `--eval-every`, for time to target); training is unchanged by it.
    pub eval_every: Option<u64>,
    /// A text task's own corpus: a file, or a folder of files read in name order (default:
    /// Debian's `fortunes`, see `data::text`).
    pub corpus: Option<std::path::PathBuf>,
    /// A `gpt-tiny`'s context, width, depth and heads.
    pub transformer: gpt::Shape,
    /// A training script that scores a genome instead (the built-in fields above are unused).
    pub command: Option<Command>,
}

/// A task's training script: its argument list (no shell) and time limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Command {
    pub argv: Vec<String>,
    pub timeout_s: u64,
}

/// A task as config files spell it: a command task leaves out what only built-in tasks have.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct TaskFile {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dataset: Option<DatasetKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    model: Option<ModelKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    train_subset: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    batch: Option<i64>,
    steps: u64,
    #[serde(default, skip_serializing_if = "is_default")]
    precision: Precision,
    #[serde(default, skip_serializing_if = "is_default")]
    layout: Layout,
    #[serde(default)]
    score_on: ScoreOn,
    #[serde(default = "default_validation")]
    validation: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    score_images: Option<i64>,
    #[serde(
        default = "default_score_batch",
        skip_serializing_if = "is_default_score_batch"
    )]
    score_batch: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    eval_every: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    corpus: Option<std::path::PathBuf>,
    #[serde(default, skip_serializing_if = "is_default")]
    transformer: gpt::Shape,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    command: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout_s: Option<u64>,
}

impl TryFrom<TaskFile> for Task {
    type Error = String;

    /// A built-in task needs its dataset, model, subset and batch; a command task has none of
    /// them (nor a corpus or transformer) and a time limit.
    fn try_from(f: TaskFile) -> std::result::Result<Task, String> {
        let builtin = [
            ("dataset", f.dataset.is_some()),
            ("model", f.model.is_some()),
            ("train_subset", f.train_subset.is_some()),
            ("batch", f.batch.is_some()),
            ("corpus", f.corpus.is_some()),
            ("transformer", f.transformer != gpt::Shape::default()),
        ];
        let command = match (f.command, f.timeout_s) {
            (Some(argv), timeout) => {
                if let Some((field, _)) = builtin.iter().find(|(_, given)| *given) {
                    return Err(format!("task `{}`: `{field}` is for built-in tasks; a `command` task trains in its own script and has none", f.name));
                }
                Some(Command {
                    argv,
                    timeout_s: timeout.unwrap_or(crate::train::command::DEFAULT_TIMEOUT_S),
                })
            }
            (None, Some(_)) => {
                return Err(format!(
                    "task `{}`: `timeout_s` is for a `command` task",
                    f.name
                ));
            }
            (None, None) => None,
        };
        let required = |field: &str| {
            format!(
                "task `{}`: `{field}` is missing; a built-in task names its dataset ({}), model, train_subset and batch, or else is a `command`",
                f.name,
                DatasetKind::names()
            )
        };
        let absent = command.is_some();
        Ok(Task {
            dataset: match f.dataset {
                Some(d) => d,
                None if absent => DatasetKind::Cifar10,
                None => return Err(required("dataset")),
            },
            model: match f.model {
                Some(m) => m,
                None if absent => ModelKind::TinyCnn,
                None => return Err(required("model")),
            },
            train_subset: match f.train_subset {
                Some(n) => n,
                None if absent => 0,
                None => return Err(required("train_subset")),
            },
            batch: match f.batch {
                Some(n) => n,
                None if absent => 0,
                None => return Err(required("batch")),
            },
            name: f.name,
            steps: f.steps,
            precision: f.precision,
            layout: f.layout,
            score_on: f.score_on,
            validation: f.validation,
            score_images: f.score_images,
            score_batch: f.score_batch,
            eval_every: f.eval_every,
            corpus: f.corpus,
            transformer: f.transformer,
            command,
        })
    }
}

impl From<Task> for TaskFile {
    fn from(t: Task) -> TaskFile {
        let builtin = t.command.is_none();
        let (command, timeout_s) = match t.command {
            Some(c) => (Some(c.argv), Some(c.timeout_s)),
            None => (None, None),
        };
        TaskFile {
            name: t.name,
            dataset: builtin.then_some(t.dataset),
            model: builtin.then_some(t.model),
            train_subset: builtin.then_some(t.train_subset),
            batch: builtin.then_some(t.batch),
            steps: t.steps,
            precision: t.precision,
            layout: t.layout,
            score_on: t.score_on,
            validation: t.validation,
            score_images: t.score_images,
            score_batch: t.score_batch,
            eval_every: t.eval_every,
            corpus: t.corpus,
            transformer: t.transformer,
            command,
            timeout_s,
        }
    }
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
    /// Where the task's data comes from.
    pub fn source(&self) -> Source {
        Source {
            kind: self.dataset,
            corpus: self.corpus.clone(),
        }
    }

    /// Tokens a text task's model reads at once (`None` for images).
    pub fn context(&self) -> Option<i64> {
        (!self.dataset.is_image()).then_some(self.transformer.context)
    }

    /// Whether the model and dataset go together, and the transformer's shape can be built; the
    /// message names the fields.
    pub fn check_model(&self) -> std::result::Result<(), String> {
        if self.model.reads_text() == self.dataset.is_image() {
            let wanted = match self.dataset.is_image() {
                true => "marfinetz-cnn, mnist-cnn or tiny-cnn",
                false => "gpt-tiny",
            };
            return Err(format!(
                "`model`: {} cannot train on dataset `{}`; allowed: {wanted}",
                serde_json::to_string(&self.model).unwrap_or_default(),
                self.dataset.config_name()
            ));
        }
        if self.corpus.is_some() && self.dataset.is_image() {
            return Err(format!(
                "`corpus`: only a text task reads a corpus; this one's dataset is `{}`",
                self.dataset.config_name()
            ));
        }
        if self.transformer != gpt::Shape::default() && !self.model.reads_text() {
            return Err("`transformer`: only a gpt-tiny task has one".into());
        }
        self.transformer
            .check()
            .map_err(|m| format!("`transformer.{}", &m[1..]))
    }

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
    /// A text task's records are cut into every whole window of its context.
    pub fn scoring_split(&self, data: &Dataset) -> (Tensor, Tensor) {
        let (x, y) = self.whole_scoring_split(data);
        let (x, y) = match self.score_images {
            Some(n) if n < y.size()[0] => (x.narrow(0, 0, n), y.narrow(0, 0, n)),
            _ => (x, y),
        };
        match self.context() {
            Some(context) => text::windows(&x, &y, context),
            None => (x, y),
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
