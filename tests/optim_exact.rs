//! The engine against textbook optimizers: libtorch's own (Adam, AdamW, SGD+momentum, RMSprop)
//! and the closed forms of Lion, Signum, the published evolved genome and each modifier,
//! written out here per tensor, independently of the engine's flat buffers.
mod common;
use common::{assert_close, genome_file, Problem};
use evolve::genome::{Genome, Lookahead, SignDecay, Term, TermKind};
use evolve::optim::modifiers::radam_rectifier;
use evolve::optim::schedule;
use tch::nn::{self, OptimizerConfig};
use tch::{Kind, Tensor};

const STEPS: usize = 100;
/// In float64 the engine and an independent reference agree on the update to ~1e-13 after 100
/// steps; 1e-10 still catches any change of a constant or an order of operations.
const TOL: f64 = 1e-10;

/// Trains the problem with a libtorch optimizer.
fn run_tch(problem: &Problem, config: impl OptimizerConfig, lr: f64) -> Vec<Tensor> {
    let (vs, params) = problem.var_store();
    let mut opt = config.build(&vs, lr).unwrap();
    for (x, y) in &problem.batches[..STEPS] {
        opt.zero_grad();
        Problem::loss(&params, x, y).backward();
        opt.step();
    }
    params.iter().map(|p| p.detach().copy()).collect()
}

#[test]
fn adam_json_matches_libtorch_adam() {
    let p = Problem::new(STEPS, Kind::Double);
    let g = genome_file("adam");
    let ours = p.run_engine(&g, STEPS);
    let theirs = run_tch(
        &p,
        nn::Adam {
            beta1: g.beta1,
            beta2: g.beta2,
            eps: g.eps,
            wd: 0.0,
            amsgrad: false,
        },
        g.lr,
    );
    assert_close("adam", &p.init, &ours, &theirs, TOL);
}

#[test]
fn adamw_json_matches_libtorch_adamw() {
    let p = Problem::new(STEPS, Kind::Double);
    let g = genome_file("adamw");
    assert!(g.weight_decay > 0.0);
    let ours = p.run_engine(&g, STEPS);
    let theirs = run_tch(
        &p,
        nn::AdamW {
            beta1: g.beta1,
            beta2: g.beta2,
            eps: g.eps,
            wd: g.weight_decay,
            amsgrad: false,
        },
        g.lr,
    );
    assert_close("adamw", &p.init, &ours, &theirs, TOL);
}

#[test]
fn sgd_momentum_json_matches_libtorch_sgd() {
    let p = Problem::new(STEPS, Kind::Double);
    let g = genome_file("sgd-momentum");
    let ours = p.run_engine(&g, STEPS);
    let theirs = run_tch(
        &p,
        nn::Sgd {
            momentum: g.beta1,
            dampening: 0.0,
            wd: 0.0,
            nesterov: false,
        },
        g.lr,
    );
    assert_close("sgd-momentum", &p.init, &ours, &theirs, TOL);
}

#[test]
fn rmsprop_json_matches_libtorch_rmsprop() {
    let p = Problem::new(STEPS, Kind::Double);
    let g = genome_file("rmsprop");
    let ours = p.run_engine(&g, STEPS);
    let theirs = run_tch(
        &p,
        nn::RmsProp {
            alpha: g.beta2,
            eps: g.eps,
            wd: 0.0,
            momentum: 0.0,
            centered: false,
        },
        g.lr,
    );
    assert_close("rmsprop", &p.init, &ours, &theirs, TOL);
}

/// Per-tensor first/second moments for references.
fn zeros(p: &[Tensor]) -> Vec<Tensor> {
    p.iter().map(|t| t.zeros_like()).collect()
}

#[test]
fn lion_json_matches_the_lion_paper() {
    let p = Problem::new(STEPS, Kind::Double);
    let g = genome_file("lion");
    let (lr, b1, b2, wd) = (g.lr, g.beta1, g.beta2, g.weight_decay);
    let mut m = zeros(&p.init);
    let reference = p.run_reference(STEPS, |_, w, grads| {
        for i in 0..w.len() {
            let c = &m[i] * b1 + &grads[i] * (1.0 - b1);
            let new = &w[i] * (1.0 - lr * wd) - c.sign() * lr;
            w[i].copy_(&new);
            m[i] = &m[i] * b2 + &grads[i] * (1.0 - b2);
        }
    });
    assert_close("lion", &p.init, &p.run_engine(&g, STEPS), &reference, TOL);
}

#[test]
fn signum_json_matches_the_signum_paper() {
    let p = Problem::new(STEPS, Kind::Double);
    let g = genome_file("signum");
    let mut m = zeros(&p.init);
    let reference = p.run_reference(STEPS, |_, w, grads| {
        for i in 0..w.len() {
            m[i] = &m[i] * g.beta1 + &grads[i] * (1.0 - g.beta1);
            let new = &w[i] - m[i].sign() * g.lr;
            w[i].copy_(&new);
        }
    });
    assert_close("signum", &p.init, &p.run_engine(&g, STEPS), &reference, TOL);
}

/// The published genome as the published code computes it: weight decay, then m and v (no bias
/// correction), then Δw = η_t·Σ α_k T_k with T ∈ {sign(g), m/(√v+ε)}, warmup 100 and cosine decay.
#[test]
fn evolved_genome_matches_the_published_formula() {
    let p = Problem::new(STEPS, Kind::Double);
    let g = genome_file("marfinetz2025-evolved");
    let alphas = [
        0.41205802174892475,
        0.32238621456272765,
        2.0030004279455267,
        1.6322011630060542,
    ];
    let (b1, b2) = (0.8553020861538518, 0.9357561078635277);
    let eps = 10f64.powf(-8.26423960220415);
    let wd = 10f64.powf(-3.0112238437153316);
    let lr0 = 10f64.powf(-2.9198932483267144);
    // The test's own schedule, written from the paper: warmup (s+1)/100, cosine over the run.
    let total = STEPS as f64;
    let lr_at = |s: usize| {
        let warm = if s < 100 {
            (s as f64 + 1.0) / 100.0
        } else {
            1.0
        };
        lr0 * warm * 0.5 * (1.0 + (std::f64::consts::PI * s as f64 / total).cos())
    };
    let (mut m, mut v) = (zeros(&p.init), zeros(&p.init));
    let reference = p.run_reference(STEPS, |s, w, grads| {
        let lr = lr_at(s);
        for i in 0..w.len() {
            let decayed = &w[i] * (1.0 - lr * wd);
            m[i] = &m[i] * b1 + &grads[i] * (1.0 - b1);
            v[i] = &v[i] * b2 + grads[i].square() * (1.0 - b2);
            let adam = &m[i] / (v[i].sqrt() + eps);
            let sign = grads[i].sign();
            let delta =
                &sign * alphas[0] + &sign * alphas[1] + &adam * alphas[2] + &adam * alphas[3];
            w[i].copy_(&(decayed - delta * lr));
        }
    });
    assert_close(
        "evolved",
        &p.init,
        &p.run_engine(&g, STEPS),
        &reference,
        TOL,
    );
}

fn genome(terms: &[(TermKind, f64)]) -> Genome {
    Genome {
        name: None,
        terms: terms
            .iter()
            .map(|&(kind, weight)| Term { kind, weight })
            .collect(),
        lr: 3e-3,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
        bias_correction: true,
        use_m: true,
        use_v: true,
        grad_clip: None,
        warmup_steps: 0,
        cosine_decay: false,
        sign_decay: SignDecay::Off,
        radam: false,
        trust_ratio: false,
        diffgrad: false,
        lookahead: None,
    }
}

/// A per-tensor reference of every primitive term, straight from the formulas in the README (the same as `shared/docs/optimizers.md`).
fn reference_direction(
    g: &Genome,
    s: usize,
    grad: &Tensor,
    m: &Tensor,
    v: &Tensor,
    lion: &Tensor,
    total: usize,
) -> Tensor {
    let t = s as f64 + 1.0;
    let (bc1, bc2) = if g.bias_correction {
        (1.0 - g.beta1.powf(t), 1.0 - g.beta2.powf(t))
    } else {
        (1.0, 1.0)
    };
    let m_hat = m / bc1;
    let v_hat = v / bc2;
    let d = schedule::sign_decay(g.sign_decay, s as u64, total as u64);
    let mut out = grad.zeros_like();
    for term in &g.terms {
        let value = match term.kind {
            TermKind::Gradient => grad.copy(),
            TermKind::Momentum => m_hat.copy(),
            TermKind::RmsNorm => grad / (v_hat.sqrt() + g.eps),
            TermKind::Adam => &m_hat / (v_hat.sqrt() + g.eps),
            TermKind::Sign => grad.sign(),
            TermKind::Unit => grad / (grad.abs() + g.eps),
            TermKind::Nesterov => &m_hat + (grad - &m_hat) * 0.9,
            TermKind::SignMomentum => m.sign(),
            TermKind::Lion => (lion * g.beta1 + grad * (1.0 - g.beta1)).sign(),
            TermKind::AddSign => (grad.sign() * m.sign() * d + 1.0) * grad,
            TermKind::PowerSign => (grad.sign() * m.sign() * d).exp() * grad,
            // QHAdam (Ma & Yarats 2019) with ν1 = 0.7, ν2 = 1.
            TermKind::QhAdam => (grad * 0.3 + &m_hat * 0.7) / (v_hat.sqrt() + g.eps),
        };
        out += value * term.weight;
    }
    out
}

/// The engine against the per-tensor reference for plain (modifier-free) genomes.
fn check_terms(g: &Genome, what: &str) {
    let p = Problem::new(STEPS, Kind::Double);
    let (mut m, mut v, mut lion) = (zeros(&p.init), zeros(&p.init), zeros(&p.init));
    let reference = p.run_reference(STEPS, |s, w, grads| {
        let lr = schedule::learning_rate(g, s as u64, STEPS as u64);
        for i in 0..w.len() {
            let grad = match g.grad_clip {
                Some(c) => grads[i].clamp(-c, c),
                None => grads[i].copy(),
            };
            let decayed = &w[i] * (1.0 - lr * g.weight_decay);
            m[i] = if g.use_m {
                &m[i] * g.beta1 + &grad * (1.0 - g.beta1)
            } else {
                grad.copy()
            };
            v[i] = if g.use_v {
                &v[i] * g.beta2 + grad.square() * (1.0 - g.beta2)
            } else {
                grad.square()
            };
            let dir = reference_direction(g, s, &grad, &m[i], &v[i], &lion[i], STEPS);
            lion[i] = &lion[i] * g.beta2 + &grad * (1.0 - g.beta2);
            w[i].copy_(&(decayed - dir * lr));
        }
    });
    assert_close(what, &p.init, &p.run_engine(g, STEPS), &reference, TOL);
}

#[test]
fn every_primitive_term_matches_its_formula() {
    for kind in TermKind::ALL {
        check_terms(&genome(&[(kind, 0.7)]), kind.name());
    }
}

#[test]
fn mixed_terms_flags_and_schedules_match() {
    let mut g = genome(&[
        (TermKind::Adam, 1.2),
        (TermKind::Nesterov, 0.3),
        (TermKind::Unit, 0.1),
        (TermKind::AddSign, 0.2),
        (TermKind::PowerSign, 0.2),
    ]);
    g.weight_decay = 1e-2;
    g.grad_clip = Some(0.05);
    g.warmup_steps = 10;
    g.cosine_decay = true;
    g.sign_decay = SignDecay::Cosine;
    check_terms(&g, "mixed");
    g.bias_correction = false;
    g.use_m = false;
    g.use_v = false;
    g.sign_decay = SignDecay::Linear;
    check_terms(&g, "mixed, m=g, v=g²");
}

#[test]
fn split_terms_train_like_merged_terms() {
    let p = Problem::new(20, Kind::Double);
    let split = genome(&[
        (TermKind::Sign, 0.25),
        (TermKind::Adam, 1.0),
        (TermKind::Sign, 0.5),
    ]);
    let merged = genome(&[(TermKind::Adam, 1.0), (TermKind::Sign, 0.75)]);
    assert_eq!(split.hash(), merged.hash());
    assert_close(
        "split vs merged",
        &p.init,
        &p.run_engine(&split, 20),
        &p.run_engine(&merged, 20),
        1e-12,
    );
}

fn norm(t: &Tensor) -> f64 {
    t.norm().double_value(&[])
}

/// The Eve library's rule (RAdam + trust ratio + DiffGrad + Lookahead), per tensor, with each
/// modifier switchable so every one is tested alone and together.
fn check_eve(
    radam: bool,
    trust: bool,
    diffgrad: bool,
    lookahead: Option<Lookahead>,
    wd: f64,
    what: &str,
) {
    let p = Problem::new(STEPS, Kind::Double);
    let mut g = genome(&[(TermKind::Adam, 1.0)]);
    g.bias_correction = !radam;
    g.radam = radam;
    g.trust_ratio = trust;
    g.diffgrad = diffgrad;
    g.lookahead = lookahead;
    g.weight_decay = wd;
    g.beta2 = 0.999;
    let (b1, b2, eps, lr) = (g.beta1, g.beta2, g.eps, g.lr);
    let (mut m, mut v, mut prev) = (zeros(&p.init), zeros(&p.init), zeros(&p.init));
    let mut slow: Vec<Tensor> = p.init.iter().map(|t| t.copy()).collect();
    let reference = p.run_reference(STEPS, |s, w, grads| {
        let t = s as f64 + 1.0;
        for i in 0..w.len() {
            let grad = &grads[i];
            let w_norm = norm(&w[i]);
            let decayed = &w[i] - &w[i] * (wd * lr);
            m[i] = &m[i] * b1 + grad * (1.0 - b1);
            v[i] = &v[i] * b2 + grad.square() * (1.0 - b2);
            let step = if radam {
                let n_max = 2.0 / (1.0 - b2) - 1.0;
                let n_t = n_max - 2.0 * t * b2.powf(t) / (1.0 - b2.powf(t));
                if n_t >= 5.0 {
                    let r = ((1.0 - b2.powf(t)) * (n_t - 4.0) / (n_max - 4.0) * (n_t - 2.0) / n_t
                        * n_max
                        / (n_max - 2.0))
                        .sqrt()
                        / (1.0 - b1.powf(t));
                    &m[i] / (v[i].sqrt() + eps) * r
                } else {
                    &m[i] / (1.0 - b1.powf(t))
                }
            } else {
                (&m[i] / (1.0 - b1.powf(t))) / ((&v[i] / (1.0 - b2.powf(t))).sqrt() + eps)
            };
            let xi = if diffgrad {
                1.0 / (1.0 + (-norm(&(&prev[i] - grad))).exp())
            } else {
                1.0
            };
            prev[i] = grad.copy();
            let phi = if trust {
                let u = norm(&(&decayed - &step * lr));
                if w_norm > 0.0 && u > 0.0 {
                    w_norm.min(10.0) / u
                } else {
                    1.0
                }
            } else {
                1.0
            };
            w[i].copy_(&(decayed - step * (lr * xi * phi)));
        }
        if let Some(la) = lookahead {
            if (s as u64 + 1).is_multiple_of(la.k) {
                for i in 0..w.len() {
                    slow[i] = &slow[i] + (&w[i] - &slow[i]) * la.alpha;
                    w[i].copy_(&slow[i]);
                }
            }
        }
    });
    assert_close(what, &p.init, &p.run_engine(&g, STEPS), &reference, TOL);
}

#[test]
fn radam_rectification_matches_its_formula() {
    // β2 = 0.999: N_t < 5 for the first steps (momentum branch), then the rectified branch.
    assert!(radam_rectifier(0.9, 0.999, 1.0).is_none());
    assert!(radam_rectifier(0.9, 0.999, 50.0).is_some());
    check_eve(true, false, false, None, 0.0, "radam");
}

#[test]
fn trust_ratio_matches_its_formula() {
    check_eve(false, true, false, None, 1e-2, "trust ratio");
}

#[test]
fn diffgrad_matches_its_formula() {
    check_eve(false, false, true, None, 0.0, "diffgrad");
}

#[test]
fn lookahead_matches_its_formula() {
    check_eve(
        false,
        false,
        false,
        Some(Lookahead { k: 3, alpha: 0.5 }),
        0.0,
        "lookahead",
    );
}

#[test]
fn eve_json_matches_the_eve_rule() {
    let g = genome_file("eve");
    assert!(
        g.radam
            && g.trust_ratio
            && g.diffgrad
            && g.lookahead == Some(Lookahead { k: 6, alpha: 0.5 })
    );
    check_eve(true, true, true, g.lookahead, 0.0, "eve (all modifiers)");
}

#[test]
fn schedule_is_warmup_then_cosine() {
    let mut g = genome(&[(TermKind::Adam, 1.0)]);
    g.lr = 1.0;
    g.warmup_steps = 4;
    assert_eq!(schedule::learning_rate(&g, 0, 100), 0.25);
    assert_eq!(schedule::learning_rate(&g, 3, 100), 1.0);
    assert_eq!(schedule::learning_rate(&g, 50, 100), 1.0);
    g.cosine_decay = true;
    assert!((schedule::learning_rate(&g, 50, 100) - 0.5).abs() < 1e-12);
    assert!((schedule::learning_rate(&g, 0, 100) - 0.25).abs() < 1e-12);
    assert!(schedule::learning_rate(&g, 99, 100) < 1e-3);
}
