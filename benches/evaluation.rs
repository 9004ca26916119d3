//! One published-protocol CIFAR-10 evaluation (marfinetz-cnn, batch 128, 15k subset) in `evolve`
//! against `../shared/bench/pytorch_reference.py` on the same machine and thread count.
//! Reports training steps/s (training loop only, as the reference measures it), medians over runs.
//!
//! Run: `cargo bench --bench evaluation -- [--steps 200] [--runs 1] [--threads 2]
//!       [--genome adam|evolved] [--loaders batched,dataloader] [--device cpu|cuda] [--data ROOT]`
use evolve::data::{Dataset, DatasetKind};
use evolve::genome::shipped;
use evolve::models::ModelKind;
use evolve::train::{train_run, Task};
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
    let task = Task {
        name: "cifar10".into(),
        dataset: DatasetKind::Cifar10,
        model: ModelKind::MarfinetzCnn,
        train_subset: 15_000,
        batch: 128,
        steps,
    };
    let g = shipped(if genome == "evolved" {
        "marfinetz2025-evolved"
    } else {
        "adam"
    });
    println!("CIFAR-10 evaluation: marfinetz-cnn, batch 128, 15k subset, {steps} steps, genome {genome}, {device_name}, {threads} threads, median of {runs}");
    let (mut rates, mut accs) = (Vec::new(), Vec::new());
    for seed in 0..runs as u64 {
        let r = train_run(&task, &g, seed, &data, device, &|_| {}).expect("training run");
        rates.push(r.steps as f64 / r.train_seconds);
        accs.push(r.val_acc);
    }
    let ours = median(rates);
    println!(
        "{:<36} {:>8.2} steps/s  (val acc {:.4})",
        "evolve",
        ours,
        median(accs)
    );

    let python = manifest.join(".venv/bin/python");
    let script = manifest.join("../shared/bench/pytorch_reference.py");
    for loader in loaders.split(',') {
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
            rates.push(doc["steps_per_second"].as_f64().expect("steps_per_second"));
        }
        let theirs = median(rates);
        println!(
            "{:<36} {:>8.2} steps/s  → evolve is {:.2}× its speed",
            format!("pytorch_reference.py --loader {loader}"),
            theirs,
            ours / theirs
        );
    }
}
