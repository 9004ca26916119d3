//! Stacked candidates: K genomes trained side by side in one grouped network give the same losses
//! and parameters as K separate runs, and a diverging member does not leak into the others. The
//! channels-last layout computes the same networks as NCHW.
mod common;
use common::{rel, train_task};
use evolve::genome::{shipped, Genome};
use evolve::train::data::{synthetic, Dataset, DatasetKind};
use evolve::train::models::{Layout, ModelKind};
use evolve::train::{train_stacked, ScoreOn, Task};
use tch::{Device, Kind, Tensor};

const STEPS: u64 = 50;
const ADAM_LIKE: [&str; 5] = ["adam", "adamw", "rmsprop", "sgd-momentum", "eve"];
const SIGN_BASED: [&str; 3] = ["lion", "signum", "marfinetz2025-evolved"];

fn task() -> Task {
    Task {
        name: "cifar10".into(),
        dataset: DatasetKind::Cifar10,
        model: ModelKind::TinyCnn,
        train_subset: 600,
        batch: 32,
        steps: STEPS,
        precision: Default::default(),
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

fn data() -> (tempfile::TempDir, Dataset) {
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_cifar10(&dir.path().join("cifar10"), 200, 200, true, 8).unwrap();
    let d = Dataset::load(DatasetKind::Cifar10, dir.path()).unwrap();
    (dir, d)
}

fn genomes(names: &[&str]) -> Vec<Genome> {
    names.iter().map(|n| shipped(n)).collect()
}

/// Losses per step `[steps, K]` and the final variables, trainable and running statistics, each
/// as `[K, -1]` (member k's values in row k), sorted by name.
fn train(genomes: &[Genome], data: &Dataset, kind: Kind) -> (Tensor, Vec<(String, Tensor)>) {
    train_for(genomes, data, kind, STEPS)
}

/// `train` for `steps` steps.
fn train_for(
    genomes: &[Genome],
    data: &Dataset,
    kind: Kind,
    steps: u64,
) -> (Tensor, Vec<(String, Tensor)>) {
    train_task(&task(), genomes, data, kind, steps)
}

/// For each member: the largest relative difference between its stacked run and its separate
/// run, over the loss curve and over the variables.
fn stacked_vs_separate(genomes: &[Genome], data: &Dataset, kind: Kind) -> Vec<(f64, f64)> {
    let (stacked_losses, stacked_vars) = train(genomes, data, kind);
    (0..genomes.len())
        .map(|k| {
            let (losses, vars) = train(&genomes[k..=k], data, kind);
            let loss_err = rel(&stacked_losses.select(1, k as i64), &losses.select(1, 0));
            let var_err = stacked_vars
                .iter()
                .zip(&vars)
                .map(|((_, s), (_, v))| rel(&s.get(k as i64), &v.get(0)))
                .fold(0.0, f64::max);
            (loss_err, var_err)
        })
        .collect()
}

fn check(names: &[&str], kind: Kind, tolerance: f64) {
    let (_dir, data) = data();
    let genomes = genomes(names);
    for (g, (loss_err, var_err)) in genomes
        .iter()
        .zip(stacked_vs_separate(&genomes, &data, kind))
    {
        eprintln!(
            "{:<24} {kind:?}: losses {loss_err:.2e}  parameters {var_err:.2e}",
            g.label()
        );
        assert!(
            loss_err <= tolerance && var_err <= tolerance,
            "{} ({kind:?}): losses {loss_err:e}, parameters {var_err:e} > {tolerance:e}",
            g.label()
        );
    }
}

/// Stacking changes no arithmetic: in float64 every member's losses and parameters equal its
/// separate run's: measured, identical loss curves and parameters within 4e-14 (the stacked linear
/// layers use a batched gemm, a single network a plain one).
#[test]
fn stacked_members_equal_separate_runs_in_float64() {
    check(&ADAM_LIKE, Kind::Double, 1e-12);
    check(&SIGN_BASED, Kind::Double, 1e-12);
}

/// Steps of the float32 comparison: early, before training amplifies rounding into drift.
const STEPS32: u64 = 5;
/// In float32, oneDNN's grouped and plain convolutions (and BatchNorm over K·C channels) sum in
/// different orders, so a stacked member and its separate run differ by rounding, which training
/// amplifies (after 50 steps: Adam 2e-3, SGD+momentum 1e-2, more than Adam and AdamW differ by).
/// After 5 steps, measured on the update `w − w₀` in NCHW: 2e-4 (SGD+momentum), 6e-6 (RMSprop),
/// ≤ 6e-5 for the others; in channels-last, where grouped and plain convolutions round alike,
/// ≤ 3e-7. A skipped update is off by 1e-1 or more, a wrong member by 2.2e-4 (Adam vs AdamW, the
/// closest pair) to 1.
const TOL32: f64 = 1e-3;

/// Member `k`'s stacked update against every genome's separate update (`[k][j]`).
fn float32_errors(
    stacked: &[(String, Tensor)],
    separate: &[Vec<(String, Tensor)>],
    init: &[(String, Tensor)],
) -> Vec<Vec<f64>> {
    (0..separate.len())
        .map(|k| {
            let mine = updates(stacked, init, k as i64);
            separate
                .iter()
                .map(|s| rel(&mine, &updates(s, init, 0)))
                .collect()
        })
        .collect()
}

/// The float32 check: member k is within `TOL32` of `claimed[k]`'s separate run and nearer to it
/// than to any other genome's run (so two swapped members fail it even when both are close).
fn float32_check(errors: &[Vec<f64>], claimed: &[usize]) -> Result<(), String> {
    for (k, row) in errors.iter().enumerate() {
        let own = row[claimed[k]];
        let nearest = row
            .iter()
            .enumerate()
            .filter(|&(j, _)| j != claimed[k])
            .map(|(_, e)| *e)
            .fold(f64::INFINITY, f64::min);
        if own > TOL32 || own >= nearest {
            return Err(format!(
                "member {k}: {own:e} from its run, {nearest:e} from the nearest other"
            ));
        }
    }
    Ok(())
}

#[test]
fn stacked_members_match_separate_runs_in_float32_and_the_check_catches_mistakes() {
    let (_dir, data) = data();
    let mut names = ADAM_LIKE.to_vec();
    names.extend(SIGN_BASED);
    let genomes = genomes(&names);
    let (_, init) = train_for(&genomes[..1], &data, Kind::Float, 0);
    let (_, stacked) = train_for(&genomes, &data, Kind::Float, STEPS32);
    let separate: Vec<_> = (0..genomes.len())
        .map(|j| train_for(&genomes[j..=j], &data, Kind::Float, STEPS32).1)
        .collect();
    let errors = float32_errors(&stacked, &separate, &init);
    for (name, row) in names.iter().zip(&errors) {
        eprintln!(
            "{name:<24} {:?}",
            row.iter().map(|e| format!("{e:.1e}")).collect::<Vec<_>>()
        );
    }
    let identity: Vec<usize> = (0..genomes.len()).collect();
    float32_check(&errors, &identity).unwrap();

    // A wrong member: any two swapped (Adam and AdamW, the closest pair, included) fail.
    for a in 0..genomes.len() {
        for b in a + 1..genomes.len() {
            let mut swapped = identity.clone();
            swapped.swap(a, b);
            assert!(
                float32_check(&errors, &swapped).is_err(),
                "{} and {} swapped went unnoticed",
                names[a],
                names[b]
            );
        }
    }
    // A skipped update: each separate run one step short fails.
    let short: Vec<_> = (0..genomes.len())
        .map(|j| train_for(&genomes[j..=j], &data, Kind::Float, STEPS32 - 1).1)
        .collect();
    let skipped = float32_errors(&stacked, &short, &init);
    for (k, name) in names.iter().enumerate() {
        assert!(
            skipped[k][k] > TOL32,
            "{name}: a skipped update went unnoticed"
        );
    }
}

#[test]
fn a_diverging_member_does_not_leak_into_the_others() {
    let (_dir, data) = data();
    let mut exploding = shipped("sgd-momentum");
    exploding.lr = 1e4;
    let genomes = vec![shipped("adam"), exploding, shipped("adamw")];
    let runs = train_stacked(&task(), &genomes, 4, &data, false, None, &|_| {}).unwrap();
    assert!(runs[1].diverged && !runs[0].diverged && !runs[2].diverged);
    assert_eq!((runs[0].steps, runs[2].steps), (STEPS, STEPS));
    assert!(runs[0].score_acc > 0.0 && runs[1].score_acc == 0.0);

    let (losses, vars) = train(&genomes, &data, Kind::Double);
    assert_eq!(
        losses.select(1, 1).isfinite().all().int64_value(&[]),
        0,
        "member 1 blew up"
    );
    for k in [0, 2] {
        let (alone_losses, alone_vars) = train(&genomes[k..=k], &data, Kind::Double);
        let loss_err = rel(&losses.select(1, k as i64), &alone_losses.select(1, 0));
        assert!(
            loss_err <= 1e-12,
            "member {k}'s losses changed by {loss_err:e}"
        );
        for ((name, v), (_, alone)) in vars.iter().zip(&alone_vars) {
            let err = rel(&v.get(k as i64), &alone.get(0));
            assert!(err <= 1e-12, "member {k}'s {name} changed by {err:e}");
        }
    }
}

/// The updates `w − w₀` of member `k` of a run's variables.
fn updates(vars: &[(String, Tensor)], init: &[(String, Tensor)], k: i64) -> Tensor {
    Tensor::cat(
        &vars
            .iter()
            .zip(init)
            .map(|((_, v), (_, v0))| v.get(k) - v0.get(0))
            .collect::<Vec<_>>(),
        0,
    )
}

/// Channels-last (the default) and NCHW compute the same networks, dropout masks included, one
/// member and stacked. In float64 they differ only in summation order: losses and parameters
/// within 1e-12 (measured: identical losses, parameters within 1.7e-14). In float32, every
/// member's update `w − w₀` after `STEPS32` steps of SGD with momentum is within `TOL32`, the
/// stacking check's bound, of its NCHW run's (measured: ≤ 4.8e-4, losses ≤ 1.3e-5); SGD because a rule that normalises the gradient
/// (Adam: `m/√v` ≈ sign(g) at first) turns rounding-sized gradients into full-sized steps (Adam
/// after 5 steps: 2e-3). For the same reason the published CIFAR-10 model, whose convolutions
/// keep a bias BatchNorm cancels (no true gradient, see `models`), is checked with SGD alone.
#[test]
fn channels_last_equals_nchw_within_rounding() {
    let (_dir, data) = data();
    let x = Tensor::rand([2, 3, 4, 5], (Kind::Float, Device::Cpu));
    let laid = Layout::ChannelsLast.apply(x.shallow_clone());
    assert_eq!(laid.stride(), [60, 1, 15, 3], "NHWC strides");
    assert!(laid.equal(&x));

    let adaptive = genomes(&["adam", "lion", "eve"]);
    let mut slower = shipped("sgd-momentum");
    slower.lr *= 0.5;
    let sgd = vec![shipped("sgd-momentum"), slower];
    let cases = [
        (ModelKind::TinyCnn, &adaptive, 20, Kind::Double),
        (ModelKind::TinyCnn, &sgd, STEPS32, Kind::Float),
        (ModelKind::MarfinetzCnn, &sgd, 3, Kind::Double),
        (ModelKind::MarfinetzCnn, &sgd, STEPS32, Kind::Float),
    ];
    for (model, genomes, steps, kind) in cases {
        for members in [&genomes[..1], &genomes[..]] {
            let run = |layout, steps| {
                let task = Task {
                    model,
                    layout,
                    ..task()
                };
                train_task(&task, members, &data, kind, steps)
            };
            let (_, init) = run(Layout::Nchw, 0);
            let (nchw_losses, nchw) = run(Layout::Nchw, steps);
            let (last_losses, last) = run(Layout::ChannelsLast, steps);
            let losses = rel(&last_losses, &nchw_losses);
            let (bound, what) = match kind {
                Kind::Double => (1e-12, "parameters"),
                _ => (TOL32, "update"),
            };
            for k in 0..members.len() as i64 {
                let err = match kind {
                    Kind::Double => last
                        .iter()
                        .zip(&nchw)
                        .map(|((_, a), (_, b))| rel(&a.get(k), &b.get(k)))
                        .fold(0.0, f64::max),
                    _ => rel(&updates(&last, &init, k), &updates(&nchw, &init, k)),
                };
                eprintln!(
                    "{model:?} {kind:?} K = {} member {k}: losses {losses:.1e}, {what} {err:.1e}",
                    members.len()
                );
                assert!(
                    losses <= bound && err <= bound,
                    "{model:?} {kind:?} member {k}: losses {losses:e}, {what} {err:e}"
                );
            }
        }
    }
}
