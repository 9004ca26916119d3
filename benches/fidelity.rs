//! Multi-fidelity selection against the plain protocol: the same config, seed, generations and
//! population, run with each throughput lever added in turn (plain; screened; screened on a
//! subset of the split; in bf16; with learning-curve pruning), then two runs on another seed for
//! the seed-to-seed noise of the best fitness. Reports total training steps, wall time, the best
//! genome's fitness vs Adam and its score on the config's held-out protocol, and how often bf16
//! screening promotes other genomes than float32 screening.
//!
//! Run: `cargo bench --bench fidelity -- [--config configs/quick.json] [--generations 5]
//!       [--data ROOT] [--device cpu]`
use evolve::config::Config;
use evolve::evolution::{self, RunOptions};
use evolve::models::Precision;
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
    type Lever = fn(&mut Config);
    let levers: [(&str, Lever); 7] = [
        ("plain protocol", |_| {}),
        ("multi-fidelity (screen 12.5 %, promote 20 %)", |c| {
            c.fidelity.enabled = true
        }),
        ("  + screening on 1,000 images of the split", |c| {
            c.fidelity.enabled = true;
            c.fidelity.score_images = Some(1000);
        }),
        ("  + bf16 screening", |c| {
            c.fidelity.enabled = true;
            c.fidelity.score_images = Some(1000);
            c.fidelity.precision = Some(Precision::Bf16);
        }),
        ("  + learning-curve pruning (all levers)", all_levers),
        ("noise: multi-fidelity, search seed 1", |c| {
            c.fidelity.enabled = true;
            c.search.seed = 1;
            c.protocol.seed = 1;
        }),
        ("noise: all levers, search seed 1", |c| {
            all_levers(c);
            c.search.seed = 1;
            c.protocol.seed = 1;
        }),
    ];
    let mut results = Vec::new();
    for (i, (label, lever)) in levers.into_iter().enumerate() {
        let mut c = config.clone();
        lever(&mut c);
        // The selection rungs alone: no held-out check, every genome scored once.
        c.holdout = None;
        c.search.max_seed_groups = 1;
        let options = RunOptions {
            device,
            data_root: data_root.clone(),
            batch_candidates: Some(1),
            observer: std::rc::Rc::new(evolution::Silent),
        };
        let dir = out.path().join(i.to_string());
        let clock = Instant::now();
        let cp = evolution::start(c.clone(), &dir, &options).expect("evolution");
        let seconds = clock.elapsed().as_secs_f64();
        let best = cp.best.clone().expect("a best genome");
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
        if c.fidelity.precision == Some(Precision::Bf16) && c.search.seed == config.search.seed {
            promotions_against_fp32(&dir, &cp, &c, device, &data_root);
        }
        results.push((cp.total_steps, seconds, best.score.vs_adam));
    }
    let (plain, mf, all) = (results[0], results[1], results[4]);
    println!(
        "multi-fidelity: steps {:.3}× plain, wall {:.3}×; all levers: wall {:.3}× multi-fidelity, best fitness {:+.4} vs multi-fidelity; seed-to-seed noise of the best fitness: {:.4} (multi-fidelity), {:.4} (all levers)",
        mf.0 as f64 / plain.0 as f64,
        mf.1 / plain.1,
        all.1 / mf.1,
        all.2 - mf.2,
        (results[5].2 - mf.2).abs(),
        (results[6].2 - all.2).abs(),
    );
}

fn all_levers(c: &mut Config) {
    c.fidelity.enabled = true;
    c.fidelity.score_images = Some(1000);
    c.fidelity.precision = Some(Precision::Bf16);
    c.fidelity.prune = Some(evolve::config::Prune::default());
}

/// How often bf16 screening promotes other genomes than float32 screening would: each
/// generation's screened genomes are screened again in float32 and promoted by the same rule.
fn promotions_against_fp32(
    dir: &Path,
    cp: &evolution::Checkpoint,
    config: &Config,
    device: tch::Device,
    root: &Path,
) {
    let history = evolution::RunDir::open(dir).history(cp).expect("history");
    let mut fp32 = config.fidelity.clone();
    fp32.precision = None;
    let mut screen = evolve::evaluator::Evaluator::new(&config.protocol, device, root)
        .expect("data")
        .screening(&fp32);
    let (mut same, mut kept, mut promoted) = (0, 0, 0);
    for generation in 0..cp.generation {
        let screened: Vec<&evolution::Evaluation> = history
            .iter()
            .filter(|e| e.generation == generation && e.stage == evolution::Stage::Screen)
            .collect();
        if screened.is_empty() {
            continue;
        }
        let genomes: Vec<evolve::Genome> = screened.iter().map(|e| e.genome.clone()).collect();
        let again = screen.evaluate(&genomes).expect("fp32 screening");
        let top = |scores: Vec<f64>| -> Vec<usize> {
            let mut order: Vec<usize> = (0..scores.len()).collect();
            order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
            let keep = ((scores.len() as f64 * config.fidelity.promote).floor() as usize).max(1);
            let mut chosen: Vec<usize> = order.into_iter().take(keep).collect();
            chosen.sort();
            chosen
        };
        let bf16 = top(screened.iter().map(|e| e.score.vs_adam).collect());
        let float = top(again.iter().map(|s| s.vs_adam).collect());
        same += usize::from(bf16 == float);
        kept += bf16.iter().filter(|i| float.contains(i)).count();
        promoted += bf16.len();
    }
    println!(
        "    bf16 vs float32 screening: the same promoted set in {same} of {} generations; {kept} of {promoted} promoted genomes in common",
        cp.generation
    );
}
