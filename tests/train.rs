//! Training runs, fitness and the evaluator on synthetic data (CPU).
use evolve::genome::{adam_baseline, shipped, Genome};
use evolve::train::data::{loader, synthetic, Dataset, DatasetKind};
use evolve::train::evaluator::Evaluator;
use evolve::train::fitness::{run_fitness, Score, TaskScore};
use evolve::train::models::{self, ModelKind, Precision};
use evolve::train::Protocol;
use evolve::train::{train_run, RunMetrics, ScoreOn, Task, Trainer};
use std::process::Command;
use tch::{Device, Kind, Tensor};

fn task(steps: u64) -> Task {
    Task {
        name: "cifar10".into(),
        dataset: DatasetKind::Cifar10,
        model: ModelKind::TinyCnn,
        train_subset: 600,
        batch: 32,
        steps,
        precision: Precision::Fp32,
        score_on: ScoreOn::Test,
        validation: 200,
        score_images: None,
        layout: Default::default(),
        score_batch: 128,
        eval_every: None,
        corpus: None,
        transformer: Default::default(),
        command: None,
    }
}

fn cifar() -> (tempfile::TempDir, Dataset) {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_root(dir.path(), 1).unwrap();
    let d = Dataset::load(DatasetKind::Cifar10, dir.path()).unwrap();
    (dir, d)
}

#[test]
fn same_seed_same_genome_gives_identical_runs_on_cpu() {
    let (_dir, data) = cifar();
    let g = shipped("marfinetz2025-evolved");
    let a = train_run(&task(40), &g, 5, &data, &|_| {}).unwrap();
    let b = train_run(&task(40), &g, 5, &data, &|_| {}).unwrap();
    assert_eq!(
        (a.losses.clone(), a.score_acc, a.steps),
        (b.losses.clone(), b.score_acc, b.steps)
    );
    let c = train_run(&task(40), &g, 6, &data, &|_| {}).unwrap();
    assert_ne!(a.losses, c.losses, "another seed, another run");
}

#[test]
fn every_genome_sees_the_same_weights_and_batches_for_a_seed() {
    let (_dir, data) = cifar();
    // The first loss depends only on the initial weights and the first batch.
    let first = |g: &Genome| train_run(&task(2), g, 9, &data, &|_| {}).unwrap().losses[0];
    assert_eq!(first(&adam_baseline()), first(&shipped("lion")));
    assert_eq!(first(&adam_baseline()), first(&shipped("sgd-momentum")));
}

#[test]
fn adam_learns_the_synthetic_task() {
    let (_dir, data) = cifar();
    let run = train_run(&task(80), &adam_baseline(), 1, &data, &|_| {}).unwrap();
    assert!(!run.diverged);
    assert_eq!(run.steps, 80);
    assert!(
        run.score_acc > 0.3,
        "accuracy {} should beat chance (0.1) clearly",
        run.score_acc
    );
    assert!(run.losses[79] < run.losses[0]);
}

#[test]
fn a_diverging_genome_is_stopped_and_scored_minus_one() {
    let (_dir, data) = cifar();
    let mut g = shipped("sgd-momentum");
    g.lr = 1e4;
    let run = train_run(&task(100), &g, 1, &data, &|_| {}).unwrap();
    assert!(run.diverged);
    assert!(run.steps < 100, "stopped early at {}", run.steps);
    assert_eq!(run_fitness(&run), -1.0);
    assert!(
        run.losses.iter().all(|l| l.is_finite() && *l <= 50.0),
        "only the losses before divergence are kept"
    );
}

#[test]
fn fitness_is_the_published_formula() {
    let run = |acc: f64, losses: Vec<f32>, diverged| RunMetrics {
        seed: 0,
        score_loss: None,
        score_acc: acc,
        test_acc: None,
        fitness: None,
        steps: losses.len() as u64,
        losses,
        diverged,
        seconds: 0.0,
        pruned: false,
        train_seconds: 0.0,
        curve: Vec::new(),
        failure: None,
    };
    let mut losses = vec![5.0f32; 30];
    losses.extend(vec![0.4f32; 50]);
    assert!((run_fitness(&run(0.5, losses, false)) - (0.5 + 0.05 * 0.6)).abs() < 1e-6);
    assert_eq!(
        run_fitness(&run(0.5, vec![1.5; 60], false)),
        0.5,
        "no bonus when the loss is above 1"
    );
    assert_eq!(run_fitness(&run(0.9, vec![0.1; 60], true)), -1.0);

    let task = |fitness: f64| TaskScore::from_runs("t", vec![run(fitness, vec![2.0; 50], false)]);
    let baseline = vec![task(0.5), task(0.8)];
    let s = Score::new(vec![task(0.55), task(0.8)], &baseline);
    assert!((s.vs_adam - (1.1 + 1.0) / 2.0).abs() < 1e-12);
    assert!((s.raw - 0.675).abs() < 1e-12);
    let two = TaskScore::from_runs(
        "t",
        vec![
            run(0.4, vec![2.0; 50], false),
            run(0.6, vec![2.0; 50], false),
        ],
    );
    assert!(
        (two.score_acc_mean - 0.5).abs() < 1e-12
            && (two.score_acc_std - 0.02f64.sqrt()).abs() < 1e-12
    );
}

#[test]
fn the_evaluator_scores_adam_at_exactly_one() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_root(dir.path(), 1).unwrap();
    let protocol = Protocol {
        tasks: vec![task(20)],
        seeds: 2,
        seed: 0,
    };
    let mut e = Evaluator::new(&protocol, Device::Cpu, dir.path()).unwrap();
    // Adam written differently (weight 2, half the learning rate: every product is the same in
    // binary floating point), so it has its own hash and is trained, not reused.
    let mut rewritten = adam_baseline();
    rewritten.terms[0].weight = 2.0;
    rewritten.lr /= 2.0;
    assert_ne!(rewritten.hash(), adam_baseline().hash());
    let scores = e
        .evaluate(&[adam_baseline(), shipped("lion"), rewritten])
        .unwrap();
    assert_eq!(scores[0].vs_adam, 1.0);
    assert_eq!(scores[0].tasks[0].runs.len(), 2);
    assert_ne!(scores[1].vs_adam, 1.0);
    assert_eq!(scores[2].vs_adam, 1.0, "normalised by Adam's own runs");
}

#[test]
fn augmentation_crops_and_flips_whole_batches() {
    // Seeding libtorch's generator while another test trains would change that test's draws.
    let _rng = evolve::train::rng_lock();
    tch::manual_seed(0);
    let x = Tensor::arange(2 * 3 * 8 * 8, (Kind::Float, Device::Cpu)).view([2, 3, 8, 8]) + 1.0;
    let out = loader::crop_and_flip(&x, 2);
    assert_eq!(out.size(), [2, 3, 8, 8]);
    let padded = x.constant_pad_nd([2, 2, 2, 2]);
    for n in 0..2 {
        let img = out.get(n);
        let matches = (0..5)
            .flat_map(|dy| (0..5).map(move |dx| (dy, dx)))
            .any(|(dy, dx)| {
                let crop = padded.get(n).narrow(1, dy, 8).narrow(2, dx, 8);
                crop.equal(&img) || crop.flip([2]).equal(&img)
            });
        assert!(
            matches,
            "image {n} is not a crop (or flipped crop) of its padded input"
        );
    }
}

#[test]
fn the_published_models_have_the_published_shapes() {
    // conv 3→32, BN, conv 32→32, conv 32→64, BN, conv 64→64, linear 4096→512, linear 512→10.
    let cifar = 896 + 64 + 9248 + 18496 + 128 + 36928 + (4096 * 512 + 512) + 5130;
    assert_eq!(
        models::parameter_count(ModelKind::MarfinetzCnn, DatasetKind::Cifar10),
        cifar
    );
    // A multiply-add is two operations: conv 32·32 pixels · 32·3·9, 32·32 · 32·32·9, 16·16 · 64·32·9,
    // 16·16 · 64·64·9; linear 4096·512 + 512·10.
    assert_eq!(
        models::forward_flops(ModelKind::MarfinetzCnn, DatasetKind::Cifar10),
        (48_955_392.0, 4_204_544.0)
    );
    // conv 1→32, conv 32→64, linear 3136→256, linear 256→10.
    assert_eq!(
        models::parameter_count(ModelKind::MnistCnn, DatasetKind::Mnist),
        320 + 18496 + (3136 * 256 + 256) + 2570
    );
    let vs = tch::nn::VarStore::new(Device::Cpu);
    let net = models::Net::new(ModelKind::MarfinetzCnn, &vs.root(), DatasetKind::Cifar10, 3);
    let y = net.forward(
        &Tensor::zeros([2, 3, 32, 32], (Kind::Float, Device::Cpu)),
        false,
    );
    assert_eq!(y.size(), [3, 2, 10], "[members, batch, classes]");
}

#[test]
fn replay_prints_a_table_and_a_json_document() {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_root(dir.path(), 1).unwrap();
    let genomes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("genomes");
    let replay = |extra: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_evolve"))
            .arg("replay")
            .arg(genomes.join("marfinetz2025-evolved.json"))
            .arg(genomes.join("adam.json"))
            .args([
                "--steps",
                "20",
                "--train-subset",
                "300",
                "--seeds",
                "2",
                "--validation",
                "200",
                "--device",
                "cpu",
                "--data-dir",
            ])
            .arg(dir.path())
            .args(extra)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let table = replay(&[]);
    assert!(
        table.contains("marfinetz2025-evolved")
            && table.contains("aggregate")
            && table.contains("% adam")
            && table.contains("±")
            && table.contains("test acc")
            && table.contains("paired runs"),
        "{table}"
    );
    let doc: serde_json::Value = serde_json::from_str(&replay(&["--json"])).unwrap();
    assert_eq!(doc["genomes"].as_array().unwrap().len(), 2);
    assert_eq!(doc["genomes"][1]["score"]["vs_adam"], 1.0);
    assert_eq!(doc["protocol"]["tasks"][0]["steps"], 20);
    assert_eq!(doc["baseline"][0]["runs"].as_array().unwrap().len(), 2);
    // Adam against itself: every paired run a tie, none won.
    assert_eq!(doc["genomes"][1]["paired"]["runs"], 4);
    assert_eq!(doc["genomes"][1]["paired"]["wins"], 0);
    assert!(doc["baseline"][0]["test_acc_mean"].as_f64().unwrap() > 0.0);
    // The held-out protocol of the config, on fresh seeds.
    let held: serde_json::Value =
        serde_json::from_str(&replay(&["--json", "--holdout", "--seed", "5"])).unwrap();
    assert_eq!(
        held["protocol"]["tasks"][0]["name"],
        "cifar10-marfinetz-cnn"
    );
    assert_eq!(held["protocol"]["seed"], 5);
    assert_ne!(
        held["baseline"][0]["runs"][0]["seed"],
        doc["baseline"][0]["runs"][0]["seed"]
    );
}

#[test]
fn bf16_mixed_precision_learns_reproducibly_and_changes_results() {
    let (_dir, data) = cifar();
    let bf16 = Task {
        precision: Precision::Bf16,
        ..task(80)
    };
    let a = train_run(&bf16, &adam_baseline(), 1, &data, &|_| {}).unwrap();
    let b = train_run(&bf16, &adam_baseline(), 1, &data, &|_| {}).unwrap();
    assert_eq!(a.losses, b.losses);
    assert!(a.score_acc > 0.3, "bf16 accuracy {}", a.score_acc);
    let fp32 = train_run(&task(80), &adam_baseline(), 1, &data, &|_| {}).unwrap();
    assert_ne!(
        a.losses, fp32.losses,
        "bf16 is part of the protocol: it changes results"
    );
}

/// The indices a run's training subset holds, sorted.
fn subset(task: &Task, data: &Dataset, seed: u64) -> Vec<i64> {
    let trainer = Trainer::new(task, &[adam_baseline()], seed, data, Device::Cpu);
    let mut idx = Vec::<i64>::try_from(trainer.subset_indices()).unwrap();
    idx.sort();
    idx
}

#[test]
fn the_validation_split_never_overlaps_a_training_subset() {
    let (_dir, data) = cifar();
    let n = data.train_y.size()[0];
    let validation = Task {
        score_on: ScoreOn::Validation,
        validation: 200,
        train_subset: n - 200,
        ..task(10)
    };
    for seed in 0..5 {
        // The whole pool is drawn: exactly the images before the split, never one after it.
        assert_eq!(
            subset(&validation, &data, seed),
            (0..n - 200).collect::<Vec<_>>()
        );
    }
    let smaller = Task {
        train_subset: 300,
        ..validation.clone()
    };
    for seed in 0..5 {
        assert!(subset(&smaller, &data, seed).iter().all(|&i| i < n - 200));
    }
    let (x, y) = validation.scoring_split(&data);
    assert_eq!(x.size()[0], 200);
    assert!(
        x.equal(&data.train_x.narrow(0, n - 200, 200))
            && y.equal(&data.train_y.narrow(0, n - 200, 200))
    );
    // Scoring on the test set keeps the whole training set for training, as the paper did.
    let test = Task {
        score_on: ScoreOn::Test,
        train_subset: n,
        ..validation.clone()
    };
    assert_eq!(subset(&test, &data, 0), (0..n).collect::<Vec<_>>());
    // A subset that would reach into the split is refused, naming both fields.
    let err = Task {
        train_subset: n - 199,
        ..validation
    }
    .check_sizes(n)
    .unwrap_err();
    assert!(
        err.contains("train_subset") && err.contains("validation"),
        "{err}"
    );
    // A scoring pass of no images is refused, naming the field and what it allows.
    for score_batch in [0, -5] {
        let err = Task {
            score_batch,
            ..task(10)
        }
        .check_sizes(n)
        .unwrap_err();
        assert!(
            err.contains("`score_batch`") && err.contains("allowed: 1 or more"),
            "{err}"
        );
    }
}

#[test]
fn scoring_on_the_test_set_reports_the_test_accuracy_it_scored() {
    let (_dir, data) = cifar();
    let t = task(20);
    // Its accuracy is the test set's, so the test accuracy it reports is the same number.
    let run = train_run(&t, &adam_baseline(), 7, &data, &|_| {}).unwrap();
    assert_eq!(run.test_acc, Some(run.score_acc));
    // Scored on part of the test set, it still reports the whole test set's accuracy.
    let part = Task {
        score_images: Some(50),
        ..t.clone()
    };
    let partly = train_run(&part, &adam_baseline(), 7, &data, &|_| {}).unwrap();
    assert_eq!(partly.test_acc, Some(run.score_acc));
    let hits = partly.score_acc * 50.0;
    assert!(
        (hits - hits.round()).abs() < 1e-9,
        "scored on 50 images: {hits}"
    );
    let held = Task {
        score_on: ScoreOn::Validation,
        ..t
    };
    let run = train_run(&held, &adam_baseline(), 7, &data, &|_| {}).unwrap();
    assert!(run.test_acc.is_some_and(|t| t > 0.0) && run.score_acc > 0.0);
}

#[test]
fn screening_scores_every_genome_on_the_same_first_images_of_the_split() {
    let (_dir, data) = cifar();
    let n = data.train_y.size()[0];
    let full = Protocol {
        tasks: vec![Task {
            score_on: ScoreOn::Validation,
            validation: 200,
            ..task(40)
        }],
        seeds: 1,
        seed: 0,
    };
    let fidelity = evolve::config::Fidelity {
        enabled: true,
        budget: 0.25,
        promote: 0.5,
        score_images: Some(50),
        precision: Some(Precision::Bf16),
        prune: None,
    };
    let screen = fidelity.screening(&full);
    assert_eq!(screen.tasks[0].steps, 10);
    assert_eq!(
        screen.tasks[0].precision,
        Precision::Bf16,
        "screening in bf16"
    );
    assert_eq!(
        full.tasks[0].precision,
        Precision::Fp32,
        "the full rung keeps fp32"
    );
    let (x, y) = screen.tasks[0].scoring_split(&data);
    // The first 50 images of the validation split: fixed by the task, not drawn per run.
    assert!(
        x.equal(&data.train_x.narrow(0, n - 200, 50))
            && y.equal(&data.train_y.narrow(0, n - 200, 50))
    );
    let (whole, _) = full.tasks[0].scoring_split(&data);
    assert_eq!(whole.size()[0], 200, "the full rung keeps the whole split");
    let whole = Evaluator::new(&full, Device::Cpu, _dir.path()).unwrap();
    let mut evaluator = whole.with_protocol(fidelity.screening(&full));
    let scores = evaluator.evaluate(&[shipped("lion")]).unwrap();
    let acc = scores[0].tasks[0].score_acc_mean * 50.0;
    assert!(
        (acc - acc.round()).abs() < 1e-9,
        "accuracy counted over 50 images: {acc}"
    );
}

#[test]
fn a_run_behind_its_bar_stops_there_and_a_bar_it_clears_changes_nothing() {
    use evolve::train::{train_stacked, Bar};
    let (_dir, data) = cifar();
    let t = task(30);
    let genomes = [shipped("lion")];
    let run = |bar: Option<&Bar>| {
        train_stacked(&t, &genomes, 5, &data, false, bar, &|_| {})
            .unwrap()
            .remove(0)
    };
    let free = run(None);
    let cleared = run(Some(&Bar {
        window: 5,
        limits: vec![(10, f64::INFINITY), (20, f64::INFINITY)],
    }));
    assert_eq!(
        (cleared.losses.clone(), cleared.score_acc),
        (free.losses.clone(), free.score_acc)
    );
    assert!(!cleared.pruned && !free.pruned);
    let stopped = run(Some(&Bar {
        window: 5,
        limits: vec![(10, 0.0), (20, f64::INFINITY)],
    }));
    assert!(stopped.pruned && stopped.steps == 10);
    assert_eq!(
        stopped.losses,
        free.losses[..10],
        "the same run, cut at its checkpoint"
    );
}
