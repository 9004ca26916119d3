//! Multi-fidelity selection against the plain protocol: the same config, seed, generations and
//! population, run twice; reports total training steps and the best genome's fitness vs Adam.
//!
//! Run: `cargo bench --bench fidelity -- [--config configs/quick.json] [--generations 5]
//!       [--data ROOT] [--device cpu]`
use evolve::config::Config;
use evolve::evolution::{self, RunOptions};
use std::path::{Path, PathBuf};
use std::time::Instant;

fn arg(args: &[String], name: &str, default: &str) -> String {
    args.iter()
        .position(|a| a == name)
        .map(|i| args[i + 1].clone())
        .unwrap_or_else(|| default.to_string())
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config_path = PathBuf::from(arg(
        &args,
        "--config",
        &manifest.join("configs/quick.json").display().to_string(),
    ));
    let mut config = Config::load(&config_path).expect("config");
    if let Some(g) = args.iter().position(|a| a == "--generations") {
        config.search.generations = args[g + 1].parse().expect("--generations N");
    }
    let data_root = PathBuf::from(arg(
        &args,
        "--data",
        &manifest.join("../shared/datasets").display().to_string(),
    ));
    let device = evolve::device::parse(&arg(&args, "--device", "cpu")).expect("device");
    let out = tempfile::tempdir().expect("temp dir");
    println!(
        "{} · population {} · {} generations · seed {} · {}",
        config_path.display(),
        config.search.population,
        config.search.generations,
        config.search.seed,
        evolve::device::describe(device)
    );
    let mut results = Vec::new();
    for enabled in [false, true] {
        let mut c = config.clone();
        c.fidelity.enabled = enabled;
        // The selection rungs alone: no held-out check, every genome scored once.
        c.holdout = None;
        c.search.max_seed_groups = 1;
        let options = RunOptions {
            device,
            data_root: data_root.clone(),
            batch_candidates: Some(1),
            observer: std::rc::Rc::new(evolution::Silent),
        };
        let clock = Instant::now();
        let cp = evolution::start(
            c,
            &out.path().join(if enabled { "on" } else { "off" }),
            &options,
        )
        .expect("evolution");
        let best = cp.best.expect("a best genome");
        let label = if enabled {
            format!(
                "multi-fidelity (budget {:.1}%, promote {:.0}%)",
                100.0 * config.fidelity.budget,
                100.0 * config.fidelity.promote
            )
        } else {
            "plain protocol".to_string()
        };
        println!(
            "{label:<42} {:>8} steps  best {:.4}× Adam ({})  {:>6.0} s",
            cp.total_steps,
            best.score.vs_adam,
            best.genome.label(),
            clock.elapsed().as_secs_f64()
        );
        results.push((cp.total_steps, best.score.vs_adam));
    }
    let ((plain_steps, plain_best), (mf_steps, mf_best)) = (results[0], results[1]);
    println!(
        "steps ratio {:.3} (goal ≤ 0.333); best fitness difference {:+.4} (goal ≥ −0.01)",
        mf_steps as f64 / plain_steps as f64,
        mf_best - plain_best
    );
}
