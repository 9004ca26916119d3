//! One published-protocol CIFAR-10 evaluation (marfinetz-cnn, batch 128, 15k subset, training
//! then scoring the 10,000 test images) in `evolve` against `../shared/bench/pytorch_reference.py`
//! on the same machine and thread count; then what the time is spent on: the scoring pass by
//! layout, batch and precision, a training step by phase, the convolutions alone against the
//! machine's measured matrix-multiply peak; and K stacked candidates. Training steps/s are
//! measured on the training loop alone, as the reference measures them; an evaluation's seconds
//! count loading the data, training and scoring, as the reference's `total_seconds` do. Medians
//! over `--runs`.
//!
//! Then the gpt-tiny language model on the `fortunes` corpus (batch 32, context 64) against
//! `benches/lm_reference.py`, the same model and batch written as a PyTorch user writes it.
//!
//! Run: `cargo bench --bench evaluation -- [--steps 200] [--runs 1] [--threads 2]
//!       [--genome adam|evolved] [--loaders batched,dataloader] [--precision fp32,bf16]
//!       [--score-batches 64,128,256,1000] [--stack 1,4,8] [--device cpu|cuda] [--data ROOT]
//!       [--parts cifar,lm] [--lm-steps 150]`
use evolve::genome::{shipped, Genome};
use evolve::train::data::{Dataset, DatasetKind};
use evolve::train::models::{self, Layout, ModelKind, Net, Precision};
use evolve::train::{accuracy, train_stacked, RunMetrics, ScoreOn, Task, Trainer};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;
use tch::{Device, Kind, Tensor};

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .map(|i| args[i + 1].clone())
        .unwrap_or_else(|| default.to_string())
}

fn list(args: &[String], name: &str, default: &str) -> Vec<String> {
    arg(args, name, default)
        .split(',')
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// The published CIFAR-10 task, scored on the test set as the reference scores it.
fn task(steps: u64, precision: Precision, layout: Layout, score_batch: i64) -> Task {
    Task {
        name: "cifar10".into(),
        dataset: DatasetKind::Cifar10,
        model: ModelKind::MarfinetzCnn,
        train_subset: 15_000,
        batch: 128,
        steps,
        precision,
        layout,
        score_on: ScoreOn::Test,
        validation: 5000,
        score_images: None,
        score_batch,
        eval_every: None,
        corpus: None,
        transformer: Default::default(),
        command: None,
    }
}

/// Waits for the device's queued work, so that wall-clock time is the work's.
fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Seconds `f` takes, the device's queue drained before and after.
fn timed(device: Device, f: impl FnOnce()) -> f64 {
    sync(device);
    let clock = Instant::now();
    f();
    sync(device);
    clock.elapsed().as_secs_f64()
}

struct Bench {
    steps: u64,
    runs: usize,
    genome: Genome,
    data: Dataset,
    device: Device,
    /// Seconds to read and decompress the dataset (part of an evaluation's wall time).
    load: f64,
}

impl Bench {
    /// `runs` evaluations of `k` stacked copies of the genome on `task`, seeds 0, 1, ….
    fn run(&self, task: &Task, k: usize) -> Vec<RunMetrics> {
        (0..self.runs as u64)
            .map(|seed| {
                let genomes = vec![self.genome.clone(); k];
                train_stacked(task, &genomes, seed, &self.data, false, None, &|_| {})
                    .expect("training run")
                    .remove(0)
            })
            .collect()
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps: u64 = arg(&args, "--steps", "200").parse().expect("--steps N");
    let runs: usize = arg(&args, "--runs", "1").parse().expect("--runs N");
    let threads: i32 = arg(&args, "--threads", "2").parse().expect("--threads N");
    let genome = arg(&args, "--genome", "adam");
    let device_name = arg(&args, "--device", "cpu");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = PathBuf::from(arg(
        &args,
        "--data",
        &manifest.join("../shared/datasets").display().to_string(),
    ));
    tch::set_num_threads(threads);
    let device = evolve::device::parse(&device_name).expect("device");
    let parts = list(&args, "--parts", "cifar,lm");
    if parts.iter().any(|p| p == "lm") {
        let lm_steps: u64 = arg(&args, "--lm-steps", "150")
            .parse()
            .expect("--lm-steps N");
        language_model(&root, device, threads, runs, lm_steps);
    }
    if !parts.iter().any(|p| p == "cifar") {
        return;
    }
    let clock = Instant::now();
    let data = Dataset::load(DatasetKind::Cifar10, &root)
        .expect("CIFAR-10 under --data")
        .to_device(device);
    let bench = Bench {
        steps,
        runs,
        genome: shipped(if genome == "evolved" {
            "marfinetz2025-evolved"
        } else {
            "adam"
        }),
        data,
        device,
        load: clock.elapsed().as_secs_f64(),
    };
    println!("CIFAR-10 evaluation: marfinetz-cnn, batch 128, 15k subset, {steps} steps, genome {genome}, {device_name}, {threads} threads, median of {runs}; loading the data took {:.2} s", bench.load);

    let default = evaluations(&bench, &list(&args, "--precision", "fp32,bf16"));
    reference(&bench, &args, &root, &genome, threads, default);
    scoring_passes(&bench, &list(&args, "--score-batches", "64,128,256,1000"));
    step_phases(&bench);
    convolutions_against_peak(&bench);
    stacking(&bench, &list(&args, "--stack", "1"));
}

/// Whole evaluations: as evolve ran them before the throughput levers (NCHW, scoring 1,000
/// images a pass), and with today's defaults in each precision. Returns the default fp32
/// evaluation's (training steps/s, seconds with the data load).
fn evaluations(b: &Bench, precisions: &[String]) -> (f64, f64) {
    let mut setups = vec![(
        "NCHW, scoring 1,000 a pass",
        Precision::Fp32,
        Layout::Nchw,
        1000,
    )];
    for p in precisions {
        let precision: Precision =
            serde_json::from_value(serde_json::json!(p)).expect("--precision fp32|bf16");
        setups.push((
            "channels-last, 128 a pass",
            precision,
            Layout::ChannelsLast,
            128,
        ));
    }
    let mut default = (0.0, 0.0);
    for (label, precision, layout, score_batch) in setups {
        let results = b.run(&task(b.steps, precision, layout, score_batch), 1);
        let rate = median(
            results
                .iter()
                .map(|r| r.steps as f64 / r.train_seconds)
                .collect(),
        );
        let scoring = median(
            results
                .iter()
                .map(|r| r.seconds - r.train_seconds)
                .collect(),
        );
        let seconds = b.load + median(results.iter().map(|r| r.seconds).collect());
        let acc = median(results.iter().map(|r| r.score_acc).collect());
        if precision == Precision::Fp32 && layout == Layout::ChannelsLast {
            default = (rate, seconds);
        }
        println!(
            "{:<48} {rate:>8.2} steps/s  scoring {scoring:>5.2} s ({:>4.1} % of the run)  evaluation {seconds:>6.1} s  test acc {acc:.4}",
            format!("evolve {precision:?}, {label}"),
            100.0 * scoring / (seconds - b.load),
        );
    }
    default
}

/// The PyTorch reference, side by side, and evolve's default fp32 evaluation against it.
fn reference(
    b: &Bench,
    args: &[String],
    root: &Path,
    genome: &str,
    threads: i32,
    ours: (f64, f64),
) {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let python = manifest.join(".venv/bin/python");
    let script = manifest.join("../shared/bench/pytorch_reference.py");
    for loader in list(args, "--loaders", "batched") {
        let (mut rates, mut totals) = (Vec::new(), Vec::new());
        for seed in 0..b.runs {
            let out = Command::new(&python)
                .arg(&script)
                .args(["--data", &root.join("cifar10").display().to_string()])
                .args(["--genome", genome, "--steps", &b.steps.to_string()])
                .args([
                    "--seed",
                    &seed.to_string(),
                    "--threads",
                    &threads.to_string(),
                ])
                .args([
                    "--loader",
                    &loader,
                    "--device",
                    &arg(args, "--device", "cpu"),
                ])
                .output()
                .expect("run the PyTorch reference with .venv/bin/python");
            assert!(
                out.status.success(),
                "reference failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let line = String::from_utf8_lossy(&out.stdout);
            let doc: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or(""))
                .expect("reference prints one JSON line");
            assert_eq!(doc["loader"], loader.as_str());
            rates.push(doc["steps_per_second"].as_f64().expect("steps_per_second"));
            totals.push(doc["total_seconds"].as_f64().expect("total_seconds"));
        }
        let (rate, total) = (median(rates.clone()), median(totals.clone()));
        println!(
            "{:<48} {rate:>8.2} steps/s (runs {rates:.2?})  evaluation {total:>6.1} s (runs {totals:.1?})",
            format!("pytorch_reference.py --loader {loader}"),
        );
        println!(
            "    evolve's default fp32 against it: training {:.2}× its speed, whole evaluation {:.2}×",
            ours.0 / rate,
            total / ours.1
        );
    }
}

/// Seconds to score the 10,000 test images, by layout, images per pass and precision.
fn scoring_passes(b: &Bench, batches: &[String]) {
    let n = b.data.test_y.size()[0];
    for layout in [Layout::Nchw, Layout::ChannelsLast] {
        for precision in [Precision::Fp32, Precision::Bf16] {
            let vs = tch::nn::VarStore::new(b.device);
            let net = Net::Cnn(
                models::Cnn::new(ModelKind::MarfinetzCnn, &vs.root(), DatasetKind::Cifar10, 1)
                    .with_layout(layout)
                    .with_precision(precision),
            );
            let row: Vec<String> = batches
                .iter()
                .map(|batch| {
                    let batch: i64 = batch.parse().expect("--score-batches N,N,…");
                    let score = || {
                        accuracy(&net, &b.data, &b.data.test_x, &b.data.test_y, batch)
                            .expect("no stop signal in a bench");
                    };
                    score();
                    format!("{batch} a pass {:.2} s", timed(b.device, score))
                })
                .collect();
            println!(
                "scoring {n} images, {layout:?} {precision:?}: {}",
                row.join(", ")
            );
        }
    }
}

/// Where a default fp32 training step's time goes: the batch, the forward pass and loss, the
/// backward pass, the optimizer's update.
fn step_phases(b: &Bench) {
    for layout in [Layout::Nchw, Layout::ChannelsLast] {
        let task = task(b.steps, Precision::Fp32, layout, 128);
        let mut trainer =
            Trainer::new(&task, std::slice::from_ref(&b.genome), 0, &b.data, b.device);
        let mut phases = [0.0; 4];
        for step in 0..23 {
            let mut batch = None;
            let mut losses = None;
            let times = [
                timed(b.device, || batch = Some(trainer.next_batch())),
                timed(b.device, || {
                    let (x, y) = batch.as_ref().expect("a batch");
                    losses = Some(trainer.forward(x, y));
                }),
                timed(b.device, || {
                    trainer.backward(losses.as_ref().expect("losses"))
                }),
                timed(b.device, || trainer.update()),
            ];
            // The first steps warm the allocator and oneDNN's kernel caches.
            if step >= 3 {
                phases
                    .iter_mut()
                    .zip(times)
                    .for_each(|(p, t)| *p += t / 20.0);
            }
        }
        let total: f64 = phases.iter().sum();
        let names = ["batch", "forward", "backward", "update"];
        let parts: Vec<String> = names
            .iter()
            .zip(phases)
            .map(|(name, t)| format!("{name} {:.1} ms ({:.0} %)", 1e3 * t, 100.0 * t / total))
            .collect();
        println!(
            "one step, {layout:?}: {:.1} ms = {}",
            1e3 * total,
            parts.join(", ")
        );
    }
}

/// The model's convolutions alone (forward, then gradients of input and weight) at batch 128,
/// against the measured peak of a large float32 matrix multiply on the same threads.
fn convolutions_against_peak(b: &Bench) {
    let n = 2048;
    let a = Tensor::randn([n, n], (Kind::Float, b.device));
    let _ = a.matmul(&a);
    let reps = 5;
    let seconds = timed(b.device, || {
        for _ in 0..reps {
            let _ = a.matmul(&a);
        }
    });
    let peak = reps as f64 * 2.0 * (n * n * n) as f64 / seconds / 1e9;
    println!("float32 matrix multiply {n}×{n}: {peak:.1} GFLOP/s (the peak these convolutions are measured against)");
    let (conv, linear) = models::forward_flops(ModelKind::MarfinetzCnn, DatasetKind::Cifar10);
    for layout in [Layout::Nchw, Layout::ChannelsLast] {
        let mut total = 0.0;
        for [c, out, h, w] in models::convolutions(ModelKind::MarfinetzCnn, DatasetKind::Cifar10) {
            let x = layout.apply(Tensor::randn([128, c, h, w], (Kind::Float, b.device)));
            let weight = layout
                .apply(Tensor::randn([out, c, 3, 3], (Kind::Float, b.device)))
                .set_requires_grad(true);
            let x = x.set_requires_grad(true);
            let pass = || {
                let y = x.conv2d(&weight, None::<Tensor>, [1, 1], [1, 1], [1, 1], 1);
                y.sum(Kind::Float).backward();
            };
            pass();
            total += timed(b.device, || {
                for _ in 0..5 {
                    pass()
                }
            }) / 5.0;
        }
        let flops = 3.0 * conv * 128.0;
        println!(
            "convolutions alone, {layout:?}: {:.1} ms a step, {:.1} GFLOP/s = {:.0} % of that peak ({:.2} GFLOP a step; the linear layers add {:.2})",
            1e3 * total,
            flops / total / 1e9,
            100.0 * flops / total / 1e9 / peak,
            flops / 1e9,
            3.0 * linear * 128.0 / 1e9
        );
    }
}

/// K candidates stacked in one network: member-steps/s and evaluations/hour.
fn stacking(b: &Bench, stacks: &[String]) {
    for k in stacks
        .iter()
        .map(|k| k.parse::<usize>().expect("--stack K,K,…"))
    {
        let results = b.run(
            &task(b.steps, Precision::Fp32, Layout::ChannelsLast, 128),
            k,
        );
        let member_rate = median(
            results
                .iter()
                .map(|r| k as f64 * r.steps as f64 / r.train_seconds)
                .collect(),
        );
        let per_hour = median(
            results
                .iter()
                .map(|r| k as f64 * 3600.0 / r.seconds)
                .collect(),
        );
        println!(
            "{:<48} {member_rate:>8.2} member-steps/s  {per_hour:>8.1} evaluations/hour ({} steps + test set)",
            format!("evolve, K = {k} stacked"),
            b.steps
        );
    }
}

/// gpt-tiny (default shape) on the `fortunes` corpus, batch 32, Adam: evolve in fp32 and bf16
/// against `benches/lm_reference.py` (same model, batch and windows), steps/s side by side, with
/// next-byte accuracy and bits per byte on the validation split as a check that both learn alike.
fn language_model(root: &Path, device: Device, threads: i32, runs: usize, steps: u64) {
    let source = evolve::train::data::Source {
        kind: DatasetKind::Text,
        corpus: None,
    };
    let data = Dataset::open(&source, root)
        .expect("the fortunes corpus under --data")
        .to_device(device);
    let shape = models::gpt::Shape::default();
    println!(
        "gpt-tiny language model: fortunes, context {}, width {}, depth {}, heads {}, batch 32, {steps} steps, Adam, {threads} threads, median of {runs}; {:.1} MFLOP a window forward",
        shape.context,
        shape.width,
        shape.depth,
        shape.heads,
        models::gpt::forward_flops(shape) / 1e6
    );
    let mut ours = 0.0;
    for precision in [Precision::Fp32, Precision::Bf16] {
        let task = Task {
            name: "fortunes-gpt".into(),
            dataset: DatasetKind::Text,
            model: ModelKind::GptTiny,
            train_subset: 16_000,
            batch: 32,
            validation: 1000,
            score_on: ScoreOn::Validation,
            precision,
            ..task(steps, Precision::Fp32, Layout::default(), 128)
        };
        let results: Vec<RunMetrics> = (0..runs as u64)
            .map(|seed| {
                train_stacked(&task, &[shipped("adam")], seed, &data, false, None, &|_| {})
                    .expect("training run")
                    .remove(0)
            })
            .collect();
        let rate = median(
            results
                .iter()
                .map(|r| r.steps as f64 / r.train_seconds)
                .collect(),
        );
        let acc = median(results.iter().map(|r| r.score_acc).collect());
        let bits = median(
            results
                .iter()
                .map(|r| r.score_loss.unwrap_or(f64::NAN) / std::f64::consts::LN_2)
                .collect(),
        );
        if precision == Precision::Fp32 {
            ours = rate;
        }
        println!(
            "{:<48} {rate:>8.2} steps/s  next-byte acc {acc:.4}  {bits:.3} bits/byte",
            format!("evolve gpt-tiny {precision:?}")
        );
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let corpus = DatasetKind::Text.locate(root);
    let docs: Vec<serde_json::Value> = (0..runs)
        .map(|seed| {
            let out = Command::new(manifest.join(".venv/bin/python"))
                .arg(manifest.join("benches/lm_reference.py"))
                .arg("--corpus")
                .arg(&corpus)
                .args([
                    "--steps",
                    &steps.to_string(),
                    "--threads",
                    &threads.to_string(),
                ])
                .args(["--seed", &seed.to_string()])
                .output()
                .expect("run benches/lm_reference.py with .venv/bin/python");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8_lossy(&out.stdout);
            serde_json::from_str(text.lines().last().unwrap_or("")).expect("one JSON line")
        })
        .collect();
    let field = |name: &str| median(docs.iter().map(|d| d[name].as_f64().expect(name)).collect());
    let rate = field("steps_per_second");
    println!(
        "{:<48} {rate:>8.2} steps/s  next-byte acc {:.4}  {:.3} bits/byte",
        "lm_reference.py (PyTorch, torch.optim.Adam)",
        field("val_acc"),
        field("bits_per_byte")
    );
    println!(
        "    evolve's fp32 gpt-tiny against it: training {:.2}× its speed",
        ours / rate
    );
}
