//! What the worker protocol costs: the same work items trained in this process (`local`), by one
//! `evolve worker` process (`workers`), and as a Slurm job array with one window per array task
//! run one at a time (`slurm`, when `sbatch` answers). Per-task overhead = (wall time − the
//! items' own training time) per process started: process start, dataset load, result write and
//! (under Slurm) scheduler latency. It is set against one published-protocol evaluation (every
//! task × 2 seeds × 500 steps), projected from local runs at `--steps` and twice that.
//!
//! Run: `cargo bench --bench executors -- [--config configs/marfinetz2025.json] [--steps 50]
//!       [--items 4] [--data ROOT] [--device cpu]`
use evolve::config::{Config, ExecutorConfig, ExecutorKind};
use evolve::run::executor::{self, Launch, WorkItem};
use evolve::train::Protocol;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .map(|i| args[i + 1].clone())
        .unwrap_or_else(|| default.to_string())
}

/// (wall seconds, the items' own training seconds) of one executor over `items`.
fn measure(kind: ExecutorKind, items: &[WorkItem], device: tch::Device, root: &Path) -> (f64, f64) {
    let run = tempfile::tempdir().expect("temp dir");
    let config = ExecutorConfig {
        kind,
        max_parallel: 1,
        ..ExecutorConfig::default()
    };
    let context = Launch {
        run: run.path().to_path_buf(),
        device,
        data_root: root.to_path_buf(),
        program: PathBuf::from(env!("CARGO_BIN_EXE_evolve")),
        on_steps: None,
    };
    let clock = Instant::now();
    let mut exec = executor::build(&config, context).expect("executor");
    let mut training = 0.0;
    exec.run("bench", items, &|_| {}, &mut |_, r| {
        training += r.seconds;
        Ok(())
    })
    .expect("items trained");
    (clock.elapsed().as_secs_f64(), training)
}

fn items(protocol: &Protocol, n: usize) -> Vec<WorkItem> {
    let names = ["adam", "lion", "signum", "marfinetz2025-evolved", "eve"];
    (0..n)
        .map(|i| WorkItem {
            protocol: protocol.clone(),
            group: 0,
            genomes: vec![evolve::genome::shipped(names[i % names.len()])],
            batch_candidates: 1,
            report_test: true,
            prune: None,
        })
        .collect()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let default_config = manifest.join("configs/marfinetz2025.json");
    let config = Config::load(Path::new(&arg(
        &args,
        "--config",
        &default_config.display().to_string(),
    )))
    .expect("config");
    let steps: u64 = arg(&args, "--steps", "50").parse().expect("--steps N");
    let n: usize = arg(&args, "--items", "4").parse().expect("--items N");
    let root = PathBuf::from(arg(
        &args,
        "--data",
        &manifest.join("../shared/datasets").display().to_string(),
    ));
    let device = evolve::device::parse(&arg(&args, "--device", "cpu")).expect("device");
    let published = config.protocol.clone();
    let cut = |steps: u64| {
        let mut p = published.clone();
        p.seeds = 1;
        for t in &mut p.tasks {
            t.steps = steps;
        }
        p
    };
    let tasks: Vec<String> = published.tasks.iter().map(|t| t.name.clone()).collect();
    println!(
        "tasks {} · {n} items of one genome · {steps} steps · 1 seed · {}",
        tasks.join(", "),
        evolve::device::describe(device)
    );
    // One evaluation = a + b·steps per seed: fitted from `steps` and 2·`steps`, after a
    // warm-up run (CUDA context, cuDNN's algorithm search) that would bias the first.
    measure(ExecutorKind::Local, &items(&cut(steps), 1), device, &root);
    let (_, short) = measure(ExecutorKind::Local, &items(&cut(steps), 1), device, &root);
    let (_, long) = measure(
        ExecutorKind::Local,
        &items(&cut(2 * steps), 1),
        device,
        &root,
    );
    let per_step = (long - short) / steps as f64;
    let fixed = short - per_step * steps as f64;
    // Every published task trains the same number of steps.
    let published_steps = published.tasks.first().map_or(0, |t| t.steps);
    let evaluation = published.seeds as f64 * (fixed + per_step * published_steps as f64);
    println!(
        "one published-protocol evaluation ({} seeds × {} steps, all tasks), projected: {evaluation:.1} s (fixed {fixed:.1} s + {per_step:.3} s/step per seed)",
        published.seeds, published_steps,
    );
    let work = items(&cut(steps), n);
    let mut kinds = vec![(ExecutorKind::Local, 1usize), (ExecutorKind::Workers, 1)];
    let slurm = std::process::Command::new("sinfo")
        .arg("-h")
        .output()
        .is_ok_and(|o| o.status.success());
    match slurm {
        true => kinds.push((ExecutorKind::Slurm, n)),
        false => println!("slurm: skipped (no sbatch)"),
    }
    println!(
        "| executor | processes | wall | training | overhead per process | vs one evaluation |"
    );
    println!("|---|---|---|---|---|---|");
    for (kind, processes) in kinds {
        let (wall, training) = measure(kind, &work, device, &root);
        let overhead = (wall - training) / processes as f64;
        println!(
            "| {kind:?} | {processes} | {wall:.1} s | {training:.1} s | {overhead:.2} s | {:.2} % |",
            100.0 * overhead / evaluation
        );
    }
}
