//! One training run: task × genome(s) × seed → metrics, K genomes stacked in one network.
use super::data::{loader::BatchStream, Dataset};
use super::models::Net;
use super::task::{ScoreOn, Task};
use crate::error::{Error, Result};
use crate::genome::Genome;
use crate::optim::UpdateRule;
use serde::{Deserialize, Serialize};
use tch::{nn, Device, Kind, Tensor};

/// A loss above this (or NaN/inf) means the run diverged.
pub const DIVERGED_LOSS: f64 = 50.0;
/// Losses are read back from the device every this many steps (a sync), to check for divergence.
const CHECK_EVERY: u64 = 25;

/// The outcome of one run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunMetrics {
    pub seed: u64,
    /// Accuracy on the scoring split (the validation split, or the test set with `score_on:
    /// test`); 0 when diverged. Files call it `val_acc`, as they always have.
    #[serde(rename = "val_acc")]
    pub score_acc: f64,
    /// Mean cross-entropy on the scoring split, in nats per label (a text task's validation
    /// loss: `/ ln 2` is bits per byte); absent when diverged or not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score_loss: Option<f64>,
    /// Accuracy on the official test set, for reports only (measured when asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_acc: Option<f64>,
    /// This run's fitness (`fitness::run_fitness`), kept so that scores merge over seeds
    /// after the loss curve is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fitness: Option<f64>,
    /// The training loss at every step done.
    pub losses: Vec<f32>,
    pub steps: u64,
    pub diverged: bool,
    /// Stopped early by learning-curve pruning (`steps` says where); its score is capped.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pruned: bool,
    /// Wall time of the whole run (training and test-set evaluation).
    pub seconds: f64,
    /// Wall time of the training loop alone (what steps/s is measured on).
    #[serde(default)]
    pub train_seconds: f64,
    /// Accuracy on the scoring split every `eval_every` steps, as `(steps done, accuracy)`
    /// (replay's `--eval-every`; empty otherwise).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub curve: Vec<(u64, f64)>,
    /// Why a command task's script counts as diverged, with the tail of its stderr.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// The mean of the last `window` losses of a curve, in f64 (`None` for an empty curve).
pub fn recent_mean(losses: &[f32], window: usize) -> Option<f64> {
    let tail = &losses[losses.len().saturating_sub(window)..];
    let sum: f64 = tail.iter().map(|&l| l as f64).sum();
    (!tail.is_empty()).then(|| sum / tail.len() as f64)
}

/// libtorch draws from one process-wide generator, so two runs training at once would interleave
/// their random numbers and lose reproducibility. Runs hold this lock from seeding to the end.
static GLOBAL_RNG: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Holds libtorch's generator: anything else that seeds or draws from it in a process that also
/// trains (a test) takes this first.
pub fn rng_lock() -> std::sync::MutexGuard<'static, ()> {
    GLOBAL_RNG
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Trains a fresh model of `task` with `genome` from `seed`, on the device `data` is on.
/// A diverging genome stops early and comes back flagged, never as an error; `on_step` is told
/// how many steps are done (for progress bars). Test accuracy is measured too (for reports).
pub fn train_run(
    task: &Task,
    genome: &Genome,
    seed: u64,
    data: &Dataset,
    on_step: &dyn Fn(u64),
) -> Result<RunMetrics> {
    Ok(train_stacked(
        task,
        std::slice::from_ref(genome),
        seed,
        data,
        true,
        None,
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
        let rng = rng_lock();
        tch::manual_seed(seed as i64);
        let mut vs = nn::VarStore::new(device);
        let model = Net::for_task(task, &vs.root(), genomes.len() as i64);
        vs.set_kind(kind);
        let stream = BatchStream::new(data, task.train_pool(data), task.train_subset, task.batch)
            .with_context(task.context());
        let opt = UpdateRule::stacked(genomes, &vs, task.steps);
        Trainer {
            vs,
            model,
            stream,
            opt,
            _rng: rng,
        }
    }

    /// Indices (into the training set) of the subset this run trains on.
    pub fn subset_indices(&self) -> &Tensor {
        self.stream.indices()
    }

    /// One training step of every member on the next batch; returns their losses `[K]`.
    pub fn step(&mut self) -> Tensor {
        let (x, y) = self.next_batch();
        let losses = self.forward(&x, &y);
        self.backward(&losses);
        self.update();
        losses.detach()
    }

    // The step's phases are public so that the evaluation bench can time each one.

    /// The next augmented batch `(images, labels)`.
    pub fn next_batch(&mut self) -> (Tensor, Tensor) {
        self.stream.next_batch()
    }

    /// Each member's mean loss on `(x, y)`, `[K]`, with its graph.
    pub fn forward(&self, x: &Tensor, y: &Tensor) -> Tensor {
        member_losses(&self.model.forward(x, true), y)
    }

    /// Every member's gradients of `losses`.
    pub fn backward(&mut self, losses: &Tensor) {
        self.opt.zero_grad();
        losses.sum(Kind::Float).backward();
    }

    /// Every member's optimizer step.
    pub fn update(&mut self) {
        self.opt.step();
    }
}

/// Trains `genomes.len()` members side by side in one stacked network (see `models::Net`), each
/// updated by its own genome, all from the initial weights and batches a single run with `seed`
/// gets. A member that diverges is flagged and stops counting; the others train on. Without
/// dropout, each member's run equals the corresponding single run up to floating-point rounding.
/// With `report_test`, each member's test-set accuracy is measured as well (an extra pass when
/// fitness is scored on the validation split). It trains on the device `data` is on.
pub fn train_stacked(
    task: &Task,
    genomes: &[Genome],
    seed: u64,
    data: &Dataset,
    report_test: bool,
    bar: Option<&Bar>,
    on_step: &dyn Fn(u64),
) -> Result<Vec<RunMetrics>> {
    let device = data.train_x.device();
    let start = std::time::Instant::now();
    let k = genomes.len();
    let mut trainer = Trainer::new(task, genomes, seed, data, device);
    let losses = Tensor::zeros([task.steps as i64, k as i64], (Kind::Float, device));
    let mut members = Members::new(k, task.steps);
    let checkpoint = |done: u64| bar.and_then(|b| b.limit_at(done)).is_some();
    let mut checked = 0u64;
    let mut curves: Vec<Vec<(u64, f64)>> = vec![Vec::new(); k];
    for s in 0..task.steps {
        if let Some(signal) = crate::interrupt::requested() {
            return Err(Error::Interrupted(signal));
        }
        losses
            .narrow(0, s as i64, 1)
            .copy_(&trainer.step().unsqueeze(0));
        let done = s + 1;
        if done % CHECK_EVERY == 0 || done == task.steps || checkpoint(done) {
            let rows = (done - checked) as i64;
            let fresh = Vec::<f32>::try_from(
                losses
                    .narrow(0, checked as i64, rows)
                    .contiguous()
                    .view([-1]),
            )
            .expect("float losses");
            checked = done;
            members.read(&fresh, done, bar);
            on_step(done);
            // Members pruned in a stack that goes on keep their curve (and steps) as pruned.
            if members.all_stopped() {
                break;
            }
        }
        if task
            .eval_every
            .is_some_and(|n| done % n == 0 || done == task.steps)
        {
            let (x, y) = task.scoring_split(data);
            let measured = accuracy(&trainer.model, data, &x, &y, task.score_batch)?;
            for (member, acc) in measured.into_iter().enumerate() {
                curves[member].push((done, acc));
            }
        }
    }
    let train_seconds = start.elapsed().as_secs_f64();
    let all_diverged = members.diverged.iter().all(|&d| d);
    let (scored, test) = score_members(&trainer.model, task, data, k, all_diverged, report_test)?;
    let seconds = start.elapsed().as_secs_f64();
    let accuracy_curves = curves;
    let Members {
        curves,
        diverged,
        pruned,
    } = members;
    let zero_if_diverged = |member: usize, acc: f64| if diverged[member] { 0.0 } else { acc };
    let (scored, split_losses) = scored;
    Ok(curves
        .into_iter()
        .zip(accuracy_curves)
        .enumerate()
        .map(|(member, (losses, curve))| RunMetrics {
            seed,
            score_acc: zero_if_diverged(member, scored[member]),
            score_loss: (!diverged[member] && !all_diverged).then(|| split_losses[member]),
            test_acc: test.as_ref().map(|t| zero_if_diverged(member, t[member])),
            fitness: None,
            steps: losses.len() as u64,
            losses,
            diverged: diverged[member],
            pruned: pruned[member],
            seconds,
            train_seconds,
            curve: match diverged[member] {
                true => Vec::new(),
                false => curve,
            },
            failure: None,
        })
        .collect())
}

/// Each member's loss curve as read back from the device, and whether it diverged or was pruned
/// (its curve stops there).
struct Members {
    curves: Vec<Vec<f32>>,
    diverged: Vec<bool>,
    pruned: Vec<bool>,
}

impl Members {
    fn new(k: usize, steps: u64) -> Members {
        Members {
            curves: vec![Vec::with_capacity(steps as usize); k],
            diverged: vec![false; k],
            pruned: vec![false; k],
        }
    }

    /// Takes in the losses of the steps since the last read-back (`fresh`: one row of K losses a
    /// step), now `done` steps in: a non-finite or huge loss marks its member diverged, a member
    /// behind its pruning bar at `done` is pruned.
    fn read(&mut self, fresh: &[f32], done: u64, bar: Option<&Bar>) {
        let k = self.curves.len();
        for (member, curve) in self.curves.iter_mut().enumerate() {
            if self.diverged[member] || self.pruned[member] {
                continue;
            }
            for row in fresh.chunks(k) {
                let loss = row[member];
                if !loss.is_finite() || loss as f64 > DIVERGED_LOSS {
                    self.diverged[member] = true;
                    break;
                }
                curve.push(loss);
            }
            self.pruned[member] =
                !self.diverged[member] && bar.is_some_and(|b| b.fails(done, curve));
        }
    }

    fn all_stopped(&self) -> bool {
        (0..self.curves.len()).all(|m| self.diverged[m] || self.pruned[m])
    }
}

/// Each member's (accuracy, loss) on the task's scoring split and, with `report_test`, its
/// accuracy on the test set (zeros, unmeasured, when every member diverged).
type Scored = ((Vec<f64>, Vec<f64>), Option<Vec<f64>>);

fn score_members(
    model: &Net,
    task: &Task,
    data: &Dataset,
    k: usize,
    all_diverged: bool,
    report_test: bool,
) -> Result<Scored> {
    let measure = |(x, y): (Tensor, Tensor)| match all_diverged {
        true => Ok((vec![0.0; k], vec![f64::NAN; k])),
        false => score_split(model, data, &x, &y, task.score_batch),
    };
    let scored = measure(task.scoring_split(data))?;
    // Scored on the whole test set already: that is the test accuracy.
    let scored_is_test = task.score_on == ScoreOn::Test && task.score_images.is_none();
    let test = match report_test {
        false => None,
        true if scored_is_test => Some(scored.0.clone()),
        true => {
            let (x, y) = (data.test_x.shallow_clone(), data.test_y.shallow_clone());
            let (x, y) = match task.context() {
                Some(context) => crate::train::data::text::windows(&x, &y, context),
                None => (x, y),
            };
            Some(measure((x, y))?.0)
        }
    };
    Ok((scored, test))
}

/// Each label's cross-entropy for each member, `[K, M]`, from logits `[K, M, classes]` and labels
/// of any shape holding M values (`[N]` for images, `[N, T]` for text).
fn member_cross_entropy(logits: &Tensor, y: &Tensor) -> Tensor {
    let (k, m, classes) = logits.size3().expect("[K, M, classes]");
    logits
        .reshape([k * m, classes])
        .cross_entropy_loss::<Tensor>(
            &y.reshape([-1]).to_kind(Kind::Int64).repeat([k]),
            None,
            tch::Reduction::None,
            -100,
            0.0,
        )
        .view([k, m])
}

/// Mean cross-entropy of each member, `[K]`: the training loss.
fn member_losses(logits: &Tensor, y: &Tensor) -> Tensor {
    member_cross_entropy(logits, y).mean_dim(1, false, Kind::Float)
}

/// Summed cross-entropy of each member, `[K]`, for a split scored pass by pass.
fn member_loss_sums(logits: &Tensor, y: &Tensor) -> Tensor {
    member_cross_entropy(logits, y).sum_dim_intlist(1, false, Kind::Float)
}

/// Each member's accuracy on inputs `x` (uint8 images or byte windows) with labels `y` (see
/// `score_split`).
pub fn accuracy(
    model: &Net,
    data: &Dataset,
    x: &Tensor,
    y: &Tensor,
    batch: i64,
) -> Result<Vec<f64>> {
    Ok(score_split(model, data, x, y, batch)?.0)
}

/// Each member's (accuracy, mean cross-entropy in nats) on inputs `x` with labels `y`, `batch`
/// records per forward pass without autograd, counted on the device, read back once. A stop
/// signal is honoured between passes: on a big split scoring can outlast a scheduler's grace
/// period.
pub fn score_split(
    model: &Net,
    data: &Dataset,
    x: &Tensor,
    y: &Tensor,
    batch: i64,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let _no_grad = tch::no_grad_guard();
    let n = y.size()[0];
    let mut sums: Option<Tensor> = None;
    for start in (0..n).step_by(batch.max(1) as usize) {
        if let Some(signal) = crate::interrupt::requested() {
            return Err(Error::Interrupted(signal));
        }
        let len = batch.min(n - start);
        let input = data.normalise(&x.narrow(0, start, len));
        let labels = y.narrow(0, start, len);
        let logits = model.forward(&input, false);
        let hits = logits
            .argmax(-1, false)
            .eq_tensor(&labels.reshape([1, -1]).to_kind(Kind::Int64))
            .sum_dim_intlist(1, false, Kind::Float);
        let both = Tensor::stack(&[hits, member_loss_sums(&logits, &labels)], 0);
        sums = Some(match sums {
            Some(s) => s + both,
            None => both,
        });
    }
    let labels = y.numel() as f64;
    let sums = sums.expect("a non-empty split").to_kind(Kind::Double) / labels;
    let column = |row: i64| Vec::<f64>::try_from(sums.get(row)).expect("float sums");
    Ok((column(0), column(1)))
}

/// Learning-curve pruning of one run (the idea of Optuna's median pruner and ASHA, inside one
/// run): at each `(step, limit)`, a run whose mean training loss over the last `window` steps
/// exceeds `limit` stops there. The limits come from Adam's run on the same task and seed, so
/// whether a run is pruned depends on the genome and the protocol alone.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Bar {
    pub window: usize,
    pub limits: Vec<(u64, f64)>,
}

impl Bar {
    /// The limit checked after `step` steps, if the run is checked there.
    pub(crate) fn limit_at(&self, step: u64) -> Option<f64> {
        self.limits
            .iter()
            .find(|(s, _)| *s == step)
            .map(|&(_, l)| l)
    }

    /// Whether a run with loss curve `curve` (every step so far) falls below the bar at `step`:
    /// its recent mean loss strictly above the limit.
    pub fn fails(&self, step: u64, curve: &[f32]) -> bool {
        let recent = recent_mean(curve, self.window);
        self.limit_at(step)
            .is_some_and(|limit| recent.is_some_and(|mean| mean > limit))
    }
}
