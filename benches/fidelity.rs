//! Multi-fidelity selection against the plain protocol: the same config, seed, generations and
//! population, run three times (plain; screened; screened and scored on a subset of the split);
//! reports total training steps, wall time, the best genome's fitness vs Adam, and its score on
//! the config's held-out protocol.
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
    // The best genome of each search, re-checked on the config's held-out protocol (Adam's
    // baseline there is trained once and shared).
    let mut held_out = config.holdout.as_ref().map(|h| {
        evolve::evaluator::Evaluator::new(&h.protocol, device, &data_root).expect("held-out data")
    });
    let variants = [
        ("plain protocol".to_string(), false, None),
        (
            format!(
                "multi-fidelity (budget {:.1}%, promote {:.0}%)",
                100.0 * config.fidelity.budget,
                100.0 * config.fidelity.promote
            ),
            true,
            None,
        ),
        (
            "  + screening on 1,000 images of the split".to_string(),
            true,
            Some(1000),
        ),
    ];
    let mut results = Vec::new();
    for (i, (label, enabled, score_images)) in variants.into_iter().enumerate() {
        let mut c = config.clone();
        c.fidelity.enabled = enabled;
        c.fidelity.score_images = score_images;
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
        let cp = evolution::start(c, &out.path().join(i.to_string()), &options).expect("evolution");
        let seconds = clock.elapsed().as_secs_f64();
        let best = cp.best.expect("a best genome");
        let held = held_out.as_mut().map_or("—".to_string(), |e| {
            let score = e
                .evaluate(std::slice::from_ref(&best.genome))
                .expect("held-out check");
            format!("{:.4}", score[0].vs_adam)
        });
        println!(
            "{label:<46} {:>8} steps  {seconds:>6.0} s  best {:.4}× Adam ({})  held out {held}",
            cp.total_steps,
            best.score.vs_adam,
            best.genome.label(),
        );
        results.push((cp.total_steps, seconds, best.score.vs_adam));
    }
    let (plain, mf, cheap) = (results[0], results[1], results[2]);
    println!(
        "multi-fidelity: steps {:.3}× plain, wall {:.3}×; with cheap screening: wall {:.3}× multi-fidelity; best fitness {:+.4} / {:+.4} vs plain",
        mf.0 as f64 / plain.0 as f64,
        mf.1 / plain.1,
        cheap.1 / mf.1,
        mf.2 - plain.2,
        cheap.2 - plain.2
    );
}
