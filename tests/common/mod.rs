//! Shared test helpers: a small fixed problem that both the engine and hand-written references
//! train on, so their parameters can be compared step for step.
#![allow(dead_code)]
pub mod cli;
pub mod run;
use evolve::genome::Genome;
use evolve::optim::UpdateRule;
use tch::{nn, Device, Kind, Tensor};

/// A two-layer MLP regression problem: fixed initial weights and a fixed stream of batches.
pub struct Problem {
    pub init: Vec<Tensor>,
    pub batches: Vec<(Tensor, Tensor)>,
    pub kind: Kind,
}

pub const NAMES: [&str; 4] = ["w1", "b1", "w2", "b2"];

impl Problem {
    pub fn new(steps: usize, kind: Kind) -> Problem {
        let _rng = evolve::train::rng_lock();
        tch::manual_seed(7);
        let opts = (kind, tch::Device::Cpu);
        let init = vec![
            Tensor::randn([8, 16], opts) * 0.4,
            Tensor::randn([16], opts) * 0.1,
            Tensor::randn([16, 4], opts) * 0.4,
            Tensor::randn([4], opts) * 0.1,
        ];
        let batches = (0..steps)
            .map(|_| (Tensor::randn([32, 8], opts), Tensor::randn([32, 4], opts)))
            .collect();
        Problem {
            init,
            batches,
            kind,
        }
    }

    pub fn loss(params: &[Tensor], x: &Tensor, y: &Tensor) -> Tensor {
        let h = (x.matmul(&params[0]) + &params[1]).tanh();
        (h.matmul(&params[2]) + &params[3] - y).square().mean(None)
    }

    /// A var store holding the initial weights (so tch optimizers and the engine can take it).
    pub fn var_store(&self) -> (nn::VarStore, Vec<Tensor>) {
        let mut vs = nn::VarStore::new(tch::Device::Cpu);
        for (name, t) in NAMES.iter().zip(&self.init) {
            let _ = vs.root().var(name, &t.size(), nn::Init::Const(0.0));
        }
        if self.kind == Kind::Double {
            vs.double();
        }
        let params: Vec<Tensor> = NAMES
            .iter()
            .map(|name| vs.root().get(name).expect("just made"))
            .collect();
        tch::no_grad(|| {
            for (p, t) in params.iter().zip(&self.init) {
                p.shallow_clone().copy_(t);
            }
        });
        (vs, params)
    }

    /// Trains with the engine for `steps` steps and returns the final weights.
    pub fn run_engine(&self, genome: &Genome, steps: usize) -> Vec<Tensor> {
        let (vs, params) = self.var_store();
        let mut rule = UpdateRule::new(genome, &vs, steps as u64);
        for (x, y) in &self.batches[..steps] {
            rule.zero_grad();
            Problem::loss(&params, x, y).backward();
            rule.step();
        }
        params.iter().map(|p| p.detach().copy()).collect()
    }

    /// Trains with a hand-written rule: `step(s, params, grads)` updates `params` in place
    /// (step index `s` from 0) under no-grad.
    pub fn run_reference(
        &self,
        steps: usize,
        mut step: impl FnMut(usize, &mut [Tensor], &[Tensor]),
    ) -> Vec<Tensor> {
        let mut params: Vec<Tensor> = self
            .init
            .iter()
            .map(|t| t.copy().set_requires_grad(true))
            .collect();
        for (s, (x, y)) in self.batches[..steps].iter().enumerate() {
            let grads =
                Tensor::run_backward(&[Problem::loss(&params, x, y)], &params, false, false);
            tch::no_grad(|| step(s, &mut params, &grads));
        }
        params.iter().map(|p| p.detach().copy()).collect()
    }
}

/// ‖a − b‖ / ‖b‖ for each tensor, the largest.
pub fn max_rel_error(a: &[Tensor], b: &[Tensor]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(a, b)| (a - b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-30))
        .fold(0.0, f64::max)
}

/// The updates `w − w₀` of each tensor.
pub fn updates(w: &[Tensor], init: &[Tensor]) -> Vec<Tensor> {
    w.iter().zip(init).map(|(w, w0)| w - w0).collect()
}

/// Compares what two runs did to the weights from `init`: ‖Δa − Δb‖ / ‖Δb‖ per tensor must stay
/// within `tol`, so the bound is on the update itself, not diluted by the size of the weights.
pub fn assert_close(what: &str, init: &[Tensor], a: &[Tensor], b: &[Tensor], tol: f64) {
    let (da, db) = (updates(a, init), updates(b, init));
    // Guard against a vacuous pass: every tensor must have moved in both runs.
    for (i, (da, db)) in da.iter().zip(&db).enumerate() {
        let (na, nb) = (da.norm().double_value(&[]), db.norm().double_value(&[]));
        assert!(na > 0.0 && nb > 0.0, "{what}: tensor {i} did not move");
    }
    let err = max_rel_error(&da, &db);
    assert!(
        err <= tol,
        "{what}: relative error of the update {err:e} exceeds {tol:e}"
    );
}

pub fn genome_file(name: &str) -> Genome {
    Genome::load(
        &std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("genomes")
            .join(format!("{name}.json")),
    )
    .expect("shipped genome")
}

/// Runs `script` with the project's own torch (`.venv`, made by `make test`) in `dir`, asserts
/// that it succeeded, and returns what it printed.
pub fn run_venv_python(script: &str, dir: &std::path::Path) -> String {
    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test` (it bootstraps the torch venv)",
        python.display()
    );
    let out = std::process::Command::new(&python)
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "python failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// `steps` steps of `genomes` stacked on `task` (seed 4, on the CPU, in `kind`): losses per step
/// `[steps, K]` and the final variables, trainable and running statistics, each as `[K, -1]`
/// (member k's values in row k), sorted by name.
pub fn train_task(
    task: &evolve::train::Task,
    genomes: &[Genome],
    data: &evolve::train::data::Dataset,
    kind: Kind,
    steps: u64,
) -> (Tensor, Vec<(String, Tensor)>) {
    let mut trainer =
        evolve::train::Trainer::with_precision(task, genomes, 4, data, Device::Cpu, kind);
    let losses: Vec<Tensor> = (0..steps).map(|_| trainer.step()).collect();
    let k = genomes.len() as i64;
    let mut vars: Vec<(String, Tensor)> = trainer
        .vs
        .variables()
        .into_iter()
        .map(|(n, t)| (n, t.detach().reshape([k, -1])))
        .collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    let losses = match losses.is_empty() {
        true => Tensor::zeros([0, k], (Kind::Float, Device::Cpu)),
        false => Tensor::stack(&losses, 0),
    };
    (losses, vars)
}

/// ‖a − b‖ / ‖b‖.
pub fn rel(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).norm().double_value(&[]) / b.norm().double_value(&[]).max(1e-30)
}
