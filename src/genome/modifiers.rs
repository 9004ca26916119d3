//! The modifiers that wrap a genome's summed direction, each declared once: its genome field,
//! formula, paper, the per-parameter state it keeps and its code in the exported PyTorch
//! optimizer. The engine's tensor code for each is in `optim::modifiers`; the engine/export
//! agreement test (`tests/export_pytorch.rs`) holds the two together for every modifier.
use crate::genome::terms::{Den, Paper, Part};
use crate::genome::Genome;

/// A modifier, declared once.
pub struct ModifierDecl {
    /// The genome field that turns it on.
    pub name: &'static str,
    /// What it does, as the README writes it.
    pub formula: &'static str,
    pub paper: Paper,
    /// Whether `genome` uses it.
    pub enabled: fn(&Genome) -> bool,
    /// The per-parameter state it keeps, with its initial value (a Python expression of `p`).
    pub state: &'static [(&'static str, &'static str)],
    pub python: PythonModifier,
}

/// A modifier's code in the exported step (the names in scope are those of `terms::Python`,
/// plus `d`, the summed direction, `lr_t`, the scheduled learning rate, and `eager`, false while
/// `torch.compile` traces or when the step counts live on the device). Each field is Python
/// statements (or an expression, for `scale`), "" for none.
pub struct PythonModifier {
    /// Constants taken from the genome, bound before the step's code.
    pub constants: fn(&Genome) -> Vec<(&'static str, String)>,
    /// Per-step scalars, computed from `t` (each tensor's step number, from 1).
    pub scalars: &'static str,
    /// Run before weight decay.
    pub before: &'static str,
    /// A per-tensor factor of the step (a `[n]` tensor), from `d`.
    pub scale: &'static str,
    /// Run after the weights are updated.
    pub after: &'static str,
    /// The `adam` term's parts when this modifier is on (RAdam rewrites the term).
    pub adam: &'static [Part],
}

const NONE: PythonModifier = PythonModifier {
    constants: |_| Vec::new(),
    scalars: "",
    before: "",
    scale: "",
    after: "",
    adam: &[],
};

/// RAdam.
pub const LIU_2020: Paper = Paper {
    authors: "Liu et al.",
    year: 2020,
    title: "On the Variance of the Adaptive Learning Rate and Beyond",
    arxiv: "1908.03265",
};
/// LAMB's trust ratio.
pub const YOU_2020: Paper = Paper {
    authors: "You et al.",
    year: 2020,
    title: "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes",
    arxiv: "1904.00962",
};
/// DiffGrad.
pub const DUBEY_2019: Paper = Paper {
    authors: "Dubey et al.",
    year: 2019,
    title: "diffGrad: An Optimization Method for Convolutional Neural Networks",
    arxiv: "1909.11015",
};
/// Lookahead.
pub const ZHANG_2019: Paper = Paper {
    authors: "Zhang et al.",
    year: 2019,
    title: "Lookahead Optimizer: k steps forward, 1 step back",
    arxiv: "1907.08610",
};

/// Every modifier, in the order the step applies them.
pub static MODIFIERS: [ModifierDecl; 4] = [
    ModifierDecl {
        name: "radam",
        formula: "the `adam` term becomes r_t·m / (√v + ε) while N_t ≥ 5, m / (1−β1^t) before",
        paper: LIU_2020,
        enabled: |g| g.radam,
        state: &[],
        python: PythonModifier {
            // The Eve library's form, from raw m and v (see `optim::modifiers::radam_rectifier`).
            scalars: "n_max = 2 / (1 - b2) - 1
b2t = b2 ** t
n_t = n_max - 2 * t * b2t / (1 - b2t)
tractable = n_t >= 5
rect = ((1 - b2t) * (n_t - 4) / (n_max - 4) * (n_t - 2) / n_t * n_max / (n_max - 2)).clamp(min=0).sqrt()
r_t = torch.where(tractable, rect / (1 - b1 ** t), 0.0)
momentum_t = torch.where(tractable, 0.0, 1 / (1 - b1 ** t))",
            adam: &[
                Part {
                    num: "m",
                    den: Some(Den {
                        base: "torch._foreach_sqrt(v)",
                        divide: "",
                    }),
                    coef: "r_t",
                },
                Part {
                    num: "m",
                    den: None,
                    coef: "momentum_t",
                },
            ],
            ..NONE
        },
    },
    ModifierDecl {
        name: "diffgrad",
        formula: "ξ = sigmoid(‖g_prev − g‖₂) per tensor",
        paper: DUBEY_2019,
        enabled: |g| g.diffgrad,
        state: &[("prev_grad", "torch.zeros_like(p)")],
        python: PythonModifier {
            scale: "torch.sigmoid(torch.stack(torch._foreach_norm(torch._foreach_sub(prev_grad, g))))",
            after: "torch._foreach_copy_(prev_grad, g)",
            ..NONE
        },
    },
    ModifierDecl {
        name: "trust_ratio",
        formula: "φ = min(‖w‖, 10) / ‖w_d − η_t·s‖ per tensor (1 where either is 0)",
        paper: YOU_2020,
        enabled: |g| g.trust_ratio,
        state: &[],
        python: PythonModifier {
            before: "w_norm = torch.stack(torch._foreach_norm(p))",
            scale: "_trust_ratio(w_norm, torch.stack(torch._foreach_norm(torch._foreach_add(p, torch._foreach_mul(d, -lr_t)))))",
            ..NONE
        },
    },
    ModifierDecl {
        name: "lookahead",
        formula: "every k steps the slow weights move α of the way to w, and w restarts there",
        paper: ZHANG_2019,
        enabled: |g| g.lookahead.is_some(),
        state: &[("slow", "p.detach().clone()")],
        python: PythonModifier {
            constants: |g| {
                let la = g.lookahead.expect("enabled");
                vec![("la_k", la.k.to_string()), ("la_alpha", format!("{:?}", la.alpha))]
            },
            after: "due = (t % la_k == 0).to(t.dtype)
if not eager or bool(due.any()):
    torch._foreach_lerp_(slow, p, _per_tensor(la_alpha * due, eager))
    torch._foreach_lerp_(p, slow, _per_tensor(due, eager))",
            ..NONE
        },
    },
];

/// The modifiers `genome` uses, in order.
pub fn enabled(genome: &Genome) -> impl Iterator<Item = &'static ModifierDecl> + '_ {
    MODIFIERS.iter().filter(|m| (m.enabled)(genome))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_shows_every_modifier() {
        for decl in &MODIFIERS {
            crate::genome::terms::tests::assert_readme_row(decl.name, decl.formula, &decl.paper);
        }
    }

    #[test]
    fn each_modifier_is_its_genome_field() {
        let mut g = crate::genome::shipped("eve");
        let json = serde_json::to_value(&g).unwrap();
        for decl in &MODIFIERS {
            assert!(
                json.get(decl.name).is_some(),
                "no genome field {}",
                decl.name
            );
            assert!((decl.enabled)(&g), "eve uses {}", decl.name);
        }
        (g.radam, g.diffgrad, g.trust_ratio, g.lookahead) = (false, false, false, None);
        assert_eq!(enabled(&g).count(), 0);
    }
}
