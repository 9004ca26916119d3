//! Optimizer-step time on a ~1M-parameter model: the engine (Adam, the published evolved genome,
//! Eve) against libtorch's own per-tensor Adam.
//!
//! Run: `cargo bench --bench optimizer_step` (add `-- --device cuda` on a GPU machine).
use evolve::genome::shipped;
use evolve::optim::UpdateRule;
use std::time::Instant;
use tch::nn::{self, OptimizerConfig};
use tch::{Device, Kind, Tensor};

const WARMUP: usize = 20;
const ITERS: usize = 200;

/// An MLP 784 → 1024 → 256 → 10 (1.07M parameters) with gradients filled in once.
fn model(device: Device) -> (nn::VarStore, usize) {
    let vs = nn::VarStore::new(device);
    let root = vs.root();
    let _ = nn::seq()
        .add(nn::linear(&root / "l1", 784, 1024, Default::default()))
        .add(nn::linear(&root / "l2", 1024, 256, Default::default()))
        .add(nn::linear(&root / "l3", 256, 10, Default::default()));
    let params = vs.trainable_variables();
    let n = params.iter().map(|p| p.numel()).sum();
    for p in &params {
        let loss = (p * Tensor::randn(p.size(), (Kind::Float, device))).sum(Kind::Float);
        loss.backward();
    }
    (vs, n)
}

fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

/// Median microseconds per call of `step`.
fn time(device: Device, mut step: impl FnMut()) -> f64 {
    for _ in 0..WARMUP {
        step();
    }
    let mut samples: Vec<f64> = (0..ITERS)
        .map(|_| {
            sync(device);
            let t = Instant::now();
            step();
            sync(device);
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    samples[ITERS / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let device = match args.iter().position(|a| a == "--device") {
        Some(i) => evolve::device::parse(&args[i + 1]).expect("device"),
        None => Device::Cpu,
    };
    let (vs, n) = model(device);
    let _no_grad = tch::no_grad_guard();
    println!(
        "optimizer step, {n} parameters in {} tensors, {}, median of {ITERS}",
        vs.trainable_variables().len(),
        evolve::device::describe(device)
    );
    let mut opt = nn::Adam::default().build(&vs, 1e-3).unwrap();
    let libtorch = time(device, || opt.step());
    println!(
        "{:<34} {:>9.1} µs",
        "libtorch nn::Adam (per tensor)", libtorch
    );
    for name in ["adam", "marfinetz2025-evolved", "eve"] {
        let (vs, _) = tch::with_grad(|| model(device));
        let mut rule = UpdateRule::new(&shipped(name), &vs, 1_000_000);
        let us = time(device, || rule.step());
        println!(
            "{:<34} {:>9.1} µs  ({:.2}× libtorch Adam)",
            format!("evolve {name}"),
            us,
            us / libtorch
        );
    }
}
