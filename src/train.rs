//! One training run: task × genome × seed → metrics.
use crate::data::{loader::BatchStream, Dataset, DatasetKind};
use crate::error::{Error, Result};
use crate::genome::Genome;
use crate::models::{ModelKind, Net, Precision};
use crate::optim::UpdateRule;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

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
    /// `fp32` (default) or `bf16` mixed precision.
    #[serde(default, skip_serializing_if = "is_fp32")]
    pub precision: Precision,
}

fn is_fp32(p: &Precision) -> bool {
    *p == Precision::Fp32
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
    Ok(train_stacked(
        task,
        std::slice::from_ref(genome),
        seed,
        data,
        device,
        on_step,
    )?
    .remove(0))
}

/// K members of one network, their optimizers and their batch stream, set up from `seed`.
/// Holds libtorch's generator for its whole life (see `GLOBAL_RNG`).
pub struct Trainer<'a> {
    pub vs: nn::VarStore,
    pub model: Net,
    stream: BatchStream<'a>,
    opt: UpdateRule,
    _rng: std::sync::MutexGuard<'static, ()>,
}

impl<'a> Trainer<'a> {
    pub fn new(
        task: &Task,
        genomes: &[Genome],
        seed: u64,
        data: &'a Dataset,
        device: Device,
    ) -> Trainer<'a> {
        Trainer::with_precision(task, genomes, seed, data, device, Kind::Float)
    }

    /// The same in another floating-point precision (`Kind::Double` to check equivalences
    /// without float32 rounding).
    pub fn with_precision(
        task: &Task,
        genomes: &[Genome],
        seed: u64,
        data: &'a Dataset,
        device: Device,
        kind: Kind,
    ) -> Trainer<'a> {
        let rng = GLOBAL_RNG
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        tch::manual_seed(seed as i64);
        let mut vs = nn::VarStore::new(device);
        let model = Net::new(task.model, &vs.root(), task.dataset, genomes.len() as i64)
            .with_precision(task.precision);
        vs.set_kind(kind);
        let stream = BatchStream::new(data, task.train_subset, task.batch);
        let opt = UpdateRule::stacked(genomes, &vs, task.steps);
        Trainer {
            vs,
            model,
            stream,
            opt,
            _rng: rng,
        }
    }

    /// One training step of every member on the next batch; returns their losses `[K]`.
    pub fn step(&mut self) -> Tensor {
        let (x, y) = self.stream.next_batch();
        let losses = member_losses(&self.model.forward(&x, true), &y);
        self.opt.zero_grad();
        losses.sum(Kind::Float).backward();
        self.opt.step();
        losses.detach()
    }
}

/// Trains `genomes.len()` members side by side in one stacked network (see `models::Net`), each
/// updated by its own genome, all from the initial weights and batches a single run with `seed`
/// gets. A member that diverges is flagged and stops counting; the others train on. Without
/// dropout, each member's run equals the corresponding single run up to floating-point rounding.
pub fn train_stacked(
    task: &Task,
    genomes: &[Genome],
    seed: u64,
    data: &Dataset,
    device: Device,
    on_step: &dyn Fn(u64),
) -> Result<Vec<RunMetrics>> {
    let start = std::time::Instant::now();
    let k = genomes.len();
    let mut trainer = Trainer::new(task, genomes, seed, data, device);
    let losses = Tensor::zeros([task.steps as i64, k as i64], (Kind::Float, device));
    let mut curves: Vec<Vec<f32>> = vec![Vec::with_capacity(task.steps as usize); k];
    let mut diverged = vec![false; k];
    let mut checked = 0u64;
    for s in 0..task.steps {
        if let Some(signal) = crate::interrupt::requested() {
            return Err(Error::Interrupted(signal));
        }
        losses
            .narrow(0, s as i64, 1)
            .copy_(&trainer.step().unsqueeze(0));
        let done = s + 1;
        if done % CHECK_EVERY == 0 || done == task.steps {
            let rows = (done - checked) as i64;
            let fresh = Vec::<f32>::try_from(
                losses
                    .narrow(0, checked as i64, rows)
                    .contiguous()
                    .view([-1]),
            )
            .expect("float losses");
            checked = done;
            for (member, curve) in curves.iter_mut().enumerate() {
                if diverged[member] {
                    continue;
                }
                for row in fresh.chunks(k) {
                    let loss = row[member];
                    if !loss.is_finite() || loss as f64 > DIVERGED_LOSS {
                        diverged[member] = true;
                        break;
                    }
                    curve.push(loss);
                }
            }
            on_step(done);
            if diverged.iter().all(|&d| d) {
                break;
            }
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let accuracy = if diverged.iter().all(|&d| d) {
        vec![0.0; k]
    } else {
        accuracy(&trainer.model, data)
    };
    let seconds = start.elapsed().as_secs_f64();
    Ok((0..k)
        .map(|member| RunMetrics {
            seed,
            val_acc: if diverged[member] {
                0.0
            } else {
                accuracy[member]
            },
            steps: curves[member].len() as u64,
            losses: std::mem::take(&mut curves[member]),
            diverged: diverged[member],
            seconds,
            train_seconds,
        })
        .collect())
}

/// Mean cross-entropy of each member, `[K]`, from logits `[K, N, classes]`.
fn member_losses(logits: &Tensor, y: &Tensor) -> Tensor {
    let (k, n, classes) = logits.size3().expect("[K, N, classes]");
    logits
        .reshape([k * n, classes])
        .cross_entropy_loss::<Tensor>(&y.repeat([k]), None, tch::Reduction::None, -100, 0.0)
        .view([k, n])
        .mean_dim(1, false, Kind::Float)
}

/// Each member's accuracy on the whole test set, counted on the device, read back once.
pub fn accuracy(model: &Net, data: &Dataset) -> Vec<f64> {
    let _no_grad = tch::no_grad_guard();
    let n = data.test_y.size()[0];
    let mut correct: Option<Tensor> = None;
    for start in (0..n).step_by(1000) {
        let len = 1000.min(n - start);
        let x = data.normalise(&data.test_x.narrow(0, start, len));
        let predicted = model.forward(&x, false).argmax(-1, false);
        let hits = predicted
            .eq_tensor(&data.test_y.narrow(0, start, len).unsqueeze(0))
            .sum_dim_intlist(1, false, Kind::Int64);
        correct = Some(match correct {
            Some(c) => c + hits,
            None => hits,
        });
    }
    Vec::<i64>::try_from(correct.expect("a non-empty test set"))
        .expect("int64 counts")
        .into_iter()
        .map(|c| c as f64 / n as f64)
        .collect()
}
