//! Multi-fidelity selection against the plain protocol: the same config, seed, generations and
//! population, run with each throughput lever added in turn (plain; screened; screened on a
//! subset of the split; in bf16; with learning-curve pruning; with channels-last activations and
//! smaller scoring passes), then two runs on another seed for
//! the seed-to-seed noise of the best fitness. Reports total training steps, wall time, the best
//! genome's fitness vs Adam and its score on the config's held-out protocol, and how often bf16
//! screening promotes other genomes than float32 screening.
//!
//! Run: `cargo bench --bench fidelity -- [--config configs/quick.json] [--generations 5]
//!       [--data ROOT] [--device cpu]`
use evolve::config::Config;
use evolve::run::{self, RunDir, RunOptions};
use evolve::search;
use evolve::train::models::{Layout, Precision};
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
        evolve::train::evaluator::Evaluator::new(&h.protocol, device, &data_root)
            .expect("held-out data")
    });
    // Each lever is added to the ones above it, on top of multi-fidelity as it was before them.
    type Lever = fn(&mut Config);
    let levers: [(&str, Lever); 6] = [
        ("plain protocol", |_| {}),
        ("multi-fidelity (screen 12.5 %, promote 20 %)", |c| {
            c.fidelity.enabled = true
        }),
        ("  + screening on 1,000 images of the split", |c| {
            c.fidelity.score_images = Some(1000)
        }),
        ("  + bf16 screening", |c| {
            c.fidelity.precision = Some(Precision::Bf16)
        }),
        ("  + learning-curve pruning", |c| {
            c.fidelity.prune = Some(evolve::train::prune::Prune::default())
        }),
        ("  + channels-last, scoring 128 images a pass", |c| {
            for t in &mut c.protocol.tasks {
                t.layout = Layout::ChannelsLast;
                t.score_batch = 128;
            }
        }),
    ];
    let with_levers = |n: usize, seed: u64| {
        let mut c = config.clone();
        before_the_levers(&mut c);
        for (_, lever) in &levers[..=n] {
            lever(&mut c);
        }
        c.search.seed = seed;
        c.protocol.seed = seed;
        c
    };
    let all = levers.len() - 1;
    const BF16_ROW: usize = 3;
    assert!(levers[BF16_ROW].0.contains("bf16"));
    let seed = config.search.seed;
    let mut runs: Vec<(String, Config)> = levers
        .iter()
        .enumerate()
        .map(|(n, (label, _))| (label.to_string(), with_levers(n, seed)))
        .collect();
    runs.push((
        format!("noise: multi-fidelity, search seed {}", seed + 1),
        with_levers(1, seed + 1),
    ));
    runs.push((
        format!("noise: all levers, search seed {}", seed + 1),
        with_levers(all, seed + 1),
    ));
    let mut results = Vec::new();
    for (i, (label, mut c)) in runs.into_iter().enumerate() {
        // The selection rungs alone: no held-out check, every genome scored once.
        c.holdout = None;
        c.search.max_seed_groups = 1;
        let options = RunOptions {
            device,
            data_root: data_root.clone(),
            batch_candidates: Some(1),
            observer: std::rc::Rc::new(search::Silent),
        };
        let dir = out.path().join(i.to_string());
        let clock = Instant::now();
        let cp = run::start(c.clone(), &dir, &options).expect("evolution");
        let seconds = clock.elapsed().as_secs_f64();
        let best = cp.hall_of_fame.best().cloned().expect("a best genome");
        let held = held_out.as_mut().map_or("—".to_string(), |e| {
            let score = e
                .evaluate(std::slice::from_ref(&best.genome))
                .expect("held-out check");
            format!("{:.4}", score[0].vs_adam)
        });
        println!(
            "{label:<46} {:>8} steps  {seconds:>6.0} s  best {:.4}× Adam ({})  held out {held}",
            cp.logbook.total_steps,
            best.score.vs_adam,
            best.genome.label(),
        );
        // The row that adds bf16 screening: did it promote other genomes than float32 would?
        if i == BF16_ROW {
            promotions_against_fp32(&dir, &cp, &c, device, &data_root);
        }
        results.push((cp.logbook.total_steps, seconds, best.score.vs_adam));
    }
    let (plain, mf, last) = (results[0], results[1], results[all]);
    println!(
        "multi-fidelity: steps {:.3}× plain, wall {:.3}×; all levers: wall {:.3}× multi-fidelity, best fitness {:+.4} vs multi-fidelity; seed-to-seed noise of the best fitness: {:.4} (multi-fidelity), {:.4} (all levers)",
        mf.0 as f64 / plain.0 as f64,
        mf.1 / plain.1,
        last.1 / mf.1,
        last.2 - mf.2,
        (results[all + 1].2 - mf.2).abs(),
        (results[all + 2].2 - last.2).abs(),
    );
}

/// Multi-fidelity as it ran before the levers: NCHW activations, scoring 1,000 images a pass.
fn before_the_levers(c: &mut Config) {
    for t in &mut c.protocol.tasks {
        t.layout = Layout::Nchw;
        t.score_batch = 1000;
    }
}

/// How often bf16 screening promotes other genomes than float32 screening would: each
/// generation's screened genomes are screened again in float32 and promoted by the same rule.
fn promotions_against_fp32(
    dir: &Path,
    cp: &search::Checkpoint,
    config: &Config,
    device: tch::Device,
    root: &Path,
) {
    let history = RunDir::open(dir).history(cp).expect("history");
    let mut fp32 = config.fidelity.clone();
    fp32.precision = None;
    let screen =
        evolve::train::evaluator::Evaluator::new(&config.protocol, device, root).expect("data");
    let mut screen = screen.with_protocol(fp32.screening(&config.protocol));
    let (mut same, mut kept, mut promoted) = (0, 0, 0);
    for generation in 0..cp.population.generation {
        let screened: Vec<&search::Evaluation> = history
            .iter()
            .filter(|e| e.generation == generation && e.stage == search::Stage::Screen)
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
        cp.population.generation
    );
}
