//! One published-protocol CIFAR-10 evaluation (marfinetz-cnn, batch 128, 15k subset) in `evolve`
//! against `../shared/bench/pytorch_reference.py` on the same machine and thread count, plus
//! K stacked candidates and bf16 mixed precision. Training steps/s are measured on the training
//! loop alone, as the reference measures them; medians over `--runs`.
//!
//! Run: `cargo bench --bench evaluation -- [--steps 200] [--runs 1] [--threads 2]
//!       [--genome adam|evolved] [--loaders batched,dataloader] [--precision fp32,bf16]
//!       [--stack 1,4,8] [--device cpu|cuda] [--data ROOT]`
use evolve::data::{Dataset, DatasetKind};
use evolve::genome::shipped;
use evolve::models::{ModelKind, Precision};
use evolve::train::{train_stacked, RunMetrics, ScoreOn, Task};
use std::path::{Path, PathBuf};
use std::process::Command;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .map(|i| args[i + 1].clone())
        .unwrap_or_else(|| default.to_string())
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let steps: u64 = arg(&args, "--steps", "200").parse().expect("--steps N");
    let runs: usize = arg(&args, "--runs", "1").parse().expect("--runs N");
    let threads: i32 = arg(&args, "--threads", "2").parse().expect("--threads N");
    let genome = arg(&args, "--genome", "adam");
    let loaders = arg(&args, "--loaders", "batched");
    let precisions = arg(&args, "--precision", "fp32");
    let stacks = arg(&args, "--stack", "1");
    let device_name = arg(&args, "--device", "cpu");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = PathBuf::from(arg(
        &args,
        "--data",
        &manifest.join("../shared/datasets").display().to_string(),
    ));
    tch::set_num_threads(threads);
    let device = evolve::device::parse(&device_name).expect("device");

    let data = Dataset::load(DatasetKind::Cifar10, &root)
        .expect("CIFAR-10 under --data")
        .to_device(device);
    let g = shipped(if genome == "evolved" {
        "marfinetz2025-evolved"
    } else {
        "adam"
    });
    println!("CIFAR-10 evaluation: marfinetz-cnn, batch 128, 15k subset, {steps} steps, genome {genome}, {device_name}, {threads} threads, median of {runs}");
    let run = |precision: Precision, k: usize| -> Vec<Vec<RunMetrics>> {
        let task = Task {
            name: "cifar10".into(),
            dataset: DatasetKind::Cifar10,
            model: ModelKind::MarfinetzCnn,
            train_subset: 15_000,
            batch: 128,
            steps,
            precision,
            // The reference scores on the test set: so does this measurement.
            score_on: ScoreOn::Test,
            validation: 5000,
            score_images: None,
        };
        (0..runs as u64)
            .map(|seed| {
                train_stacked(
                    &task,
                    &vec![g.clone(); k],
                    seed,
                    &data,
                    device,
                    false,
                    None,
                    &|_| {},
                )
                .expect("training run")
            })
            .collect()
    };

    let mut ours = 0.0;
    for precision in precisions.split(',') {
        let p: Precision =
            serde_json::from_value(serde_json::json!(precision)).expect("--precision fp32|bf16");
        let results = run(p, 1);
        let rate = median(
            results
                .iter()
                .map(|r| r[0].steps as f64 / r[0].train_seconds)
                .collect(),
        );
        let acc = median(results.iter().map(|r| r[0].val_acc).collect());
        if p == Precision::Fp32 {
            ours = rate;
        }
        println!(
            "{:<40} {:>8.2} steps/s  val acc {:.4}",
            format!("evolve ({precision})"),
            rate,
            acc
        );
    }

    let python = manifest.join(".venv/bin/python");
    let script = manifest.join("../shared/bench/pytorch_reference.py");
    for loader in loaders.split(',').filter(|l| !l.is_empty()) {
        let mut rates = Vec::new();
        for seed in 0..runs {
            let out = Command::new(&python)
                .arg(&script)
                .args([
                    "--data",
                    &root.join("cifar10").display().to_string(),
                    "--genome",
                    &genome,
                    "--steps",
                    &steps.to_string(),
                ])
                .args([
                    "--seed",
                    &seed.to_string(),
                    "--threads",
                    &threads.to_string(),
                    "--loader",
                    loader,
                    "--device",
                    &device_name,
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
            assert_eq!(doc["loader"], loader);
            rates.push(doc["steps_per_second"].as_f64().expect("steps_per_second"));
        }
        let theirs = median(rates.clone());
        println!(
            "{:<40} {:>8.2} steps/s  (runs {rates:.2?}) → evolve fp32 is {:.2}× its speed",
            format!("pytorch_reference.py --loader {loader}"),
            theirs,
            ours / theirs
        );
    }

    for k in stacks
        .split(',')
        .map(|k| k.parse::<usize>().expect("--stack K,K,…"))
    {
        let results = run(Precision::Fp32, k);
        let member_rate = median(
            results
                .iter()
                .map(|r| k as f64 * r[0].steps as f64 / r[0].train_seconds)
                .collect(),
        );
        let per_hour = median(
            results
                .iter()
                .map(|r| k as f64 * 3600.0 / r[0].seconds)
                .collect(),
        );
        println!(
            "{:<40} {:>8.2} member-steps/s  {:>8.1} evaluations/hour ({steps} steps + test set)",
            format!("evolve, K = {k} stacked"),
            member_rate,
            per_hour
        );
    }
}
