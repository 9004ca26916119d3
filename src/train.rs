//! One training run: task × genome × seed → metrics.
use crate::data::{loader::BatchStream, Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::genome::Genome;
use crate::models::{self, ModelKind};
use crate::optim::UpdateRule;
use serde::{Deserialize, Serialize};
use tch::{nn, nn::ModuleT, Device, Kind, Tensor};

/// A loss above this (or NaN/inf) means the run diverged.
pub const DIVERGED_LOSS: f64 = 50.0;
/// Losses are read back from the device every this many steps (a sync), to check for divergence.
const CHECK_EVERY: u64 = 25;

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
}

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    pub seed: u64,
    /// Accuracy on the full test set (0 when diverged).
    pub val_acc: f64,
    /// The training loss at every step done.
    pub losses: Vec<f32>,
    pub steps: u64,
    pub diverged: bool,
    /// Wall time of the whole run (training and test-set evaluation).
    pub seconds: f64,
    /// Wall time of the training loop alone (what steps/s is measured on).
    #[serde(default)]
    pub train_seconds: f64,
}

/// libtorch draws from one process-wide generator, so two runs training at once would interleave
/// their random numbers and lose reproducibility. Runs hold this lock from seeding to the end.
static GLOBAL_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Trains a fresh model of `task` with `genome` from `seed`. `data` must already be on `device`.
/// A diverging genome stops early and comes back flagged, never as an error; `on_step` is told
/// how many steps are done (for progress bars).
pub fn train_run(
    task: &Task,
    genome: &Genome,
    seed: u64,
    data: &Dataset,
    device: Device,
    on_step: &dyn Fn(u64),
) -> Result<RunMetrics> {
    let _rng = GLOBAL_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let start = std::time::Instant::now();
    tch::manual_seed(seed as i64);
    let vs = nn::VarStore::new(device);
    let model = models::build(task.model, &vs.root(), task.dataset);
    let mut stream = BatchStream::new(data, task.train_subset, task.batch);
    let mut opt = UpdateRule::new(genome, &vs, task.steps);
    let losses = Tensor::zeros([task.steps as i64], (Kind::Float, device));
    let mut host_losses: Vec<f32> = Vec::with_capacity(task.steps as usize);
    let mut diverged = false;
    let mut checked = 0u64;
    for s in 0..task.steps {
        if crate::interrupt::requested() {
            return Err(Error::Interrupted);
        }
        let (x, y) = stream.next_batch();
        let loss = model.forward_t(&x, true).cross_entropy_for_logits(&y);
        losses
            .narrow(0, s as i64, 1)
            .copy_(&loss.detach().view([1]));
        opt.zero_grad();
        loss.backward();
        opt.step();
        let done = s + 1;
        if done % CHECK_EVERY == 0 || done == task.steps {
            let fresh =
                Vec::<f32>::try_from(losses.narrow(0, checked as i64, (done - checked) as i64))
                    .expect("float losses");
            checked = done;
            match fresh
                .iter()
                .position(|l| !l.is_finite() || *l as f64 > DIVERGED_LOSS)
            {
                Some(bad) => {
                    host_losses.extend_from_slice(&fresh[..bad]);
                    diverged = true;
                    break;
                }
                None => host_losses.extend(fresh),
            }
            on_step(done);
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let val_acc = if diverged {
        0.0
    } else {
        accuracy(&model, data)
    };
    Ok(RunMetrics {
        seed,
        val_acc,
        steps: host_losses.len() as u64,
        losses: host_losses,
        diverged,
        seconds: start.elapsed().as_secs_f64(),
        train_seconds,
    })
}

/// Accuracy on the whole test set, counted on the device, read back once.
pub fn accuracy(model: &impl ModuleT, data: &Dataset) -> f64 {
    let _no_grad = tch::no_grad_guard();
    let n = data.test_y.size()[0];
    let mut correct = Tensor::zeros([], (Kind::Int64, data.test_y.device()));
    for start in (0..n).step_by(1000) {
        let len = 1000.min(n - start);
        let x = data.normalise(&data.test_x.narrow(0, start, len));
        let predicted = model.forward_t(&x, false).argmax(1, false);
        correct += predicted
            .eq_tensor(&data.test_y.narrow(0, start, len))
            .sum(Kind::Int64);
    }
    correct.int64_value(&[]) as f64 / n as f64
}
