//! The primitive update terms, each declared once: its name, its paper, what it reads, the
//! per-member numbers it needs at a step (named columns), its tensor expression in the engine and
//! its expression in the exported PyTorch optimizer. Adding a term is one enum variant and one
//! entry in `TERMS`: the engine (`optim`) and the export both read this table. (The per-tensor
//! reference in `tests/optim_exact.rs` stays written out by hand, on purpose: it checks this.)
use serde::{Deserialize, Serialize};
use tch::Tensor;

/// The primitive update terms. The first seven are Marfinetz 2025's; the rest make Signum,
/// Lion, AddSign, PowerSign and QHAdam expressible.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TermKind {
    Gradient,
    Momentum,
    RmsNorm,
    Adam,
    Sign,
    Unit,
    Nesterov,
    SignMomentum,
    Lion,
    AddSign,
    PowerSign,
    QhAdam,
}

impl TermKind {
    pub const ALL: [TermKind; 12] = [
        TermKind::Gradient,
        TermKind::Momentum,
        TermKind::RmsNorm,
        TermKind::Adam,
        TermKind::Sign,
        TermKind::Unit,
        TermKind::Nesterov,
        TermKind::SignMomentum,
        TermKind::Lion,
        TermKind::AddSign,
        TermKind::PowerSign,
        TermKind::QhAdam,
    ];

    /// This kind's declaration.
    pub fn decl(self) -> &'static TermDecl {
        &TERMS[self as usize]
    }

    /// The name in genome files.
    pub fn name(self) -> &'static str {
        self.decl().name
    }

    /// Whether the term reads the first moment `m` (Lion keeps its own).
    pub fn needs_m(self) -> bool {
        self.decl().state.contains(&"m")
    }

    /// Whether the term reads the second moment `v`.
    pub fn needs_v(self) -> bool {
        self.decl().state.contains(&"v")
    }
}

/// One member's numbers at step `t` (from 1) that a term's columns are computed from; `weight` is
/// the member's total weight on this kind (0 when it does not use it).
pub struct Member {
    pub weight: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub bias_correction: bool,
    /// `Some(r_t)` (RAdam's rectifier, already over `1−β1^t`) while the variance is tractable,
    /// `None` before; unset for members without RAdam.
    pub radam: Option<Option<f64>>,
    pub t: f64,
}

impl Member {
    /// `1 − β^t` with bias correction, else 1.
    pub fn correction(&self, beta: f64) -> f64 {
        match self.bias_correction {
            true => 1.0 - beta.powf(self.t),
            false => 1.0,
        }
    }
}

/// A per-member number a term needs at each step: one `[K, 1]` column of the step's upload.
pub struct Column {
    pub name: &'static str,
    pub value: fn(&Member) -> f64,
}

/// What a term's tensor expression reads, for all K members at once (`[K, P]` buffers), and its
/// own columns (`[K, 1]`, in declaration order).
pub struct Inputs<'a> {
    pub grad: &'a Tensor,
    pub m: Option<&'a Tensor>,
    /// Lion's own momentum, which the term also advances.
    pub lion_m: Option<&'a mut Tensor>,
    /// `√v / √(1−β2^t) + ε` (PyTorch's order of operations), for the terms that declare
    /// `denom`.
    pub denom: Option<&'a Tensor>,
    /// The same for the adam term (without the correction for RAdam members).
    pub adam_denom: Option<&'a Tensor>,
    pub eps: &'a Tensor,
    /// `d_t` of AddSign/PowerSign.
    pub sign_decay: &'a Tensor,
    /// Whether some RAdam member is still in its momentum phase this step.
    pub radam_momentum: bool,
    pub columns: Vec<(&'static str, Tensor)>,
}

impl Inputs<'_> {
    /// The column `name` of this term.
    pub fn col(&self, name: &str) -> &Tensor {
        self.columns
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, c)| c)
            .unwrap_or_else(|| panic!("no column `{name}` declared for this term"))
    }

    fn m(&self) -> &Tensor {
        self.m.expect("m is kept when a term reads it")
    }

    fn denom(&self) -> &Tensor {
        self.denom.expect("computed when a term declares `denom`")
    }
}

/// A term kind, declared once.
pub struct TermDecl {
    pub kind: TermKind,
    pub name: &'static str,
    /// The term `T` as the README writes it (`m̂`, `v̂` bias-corrected when the genome asks).
    pub formula: &'static str,
    /// Where the term comes from (optax's convention: authors, year, title, arXiv id).
    pub paper: Paper,
    /// What this term's form takes from its paper, when it is not the paper's rule as a whole.
    pub note: &'static str,
    /// The per-parameter state the term reads: the moments `m` and `v`, and Lion's own
    /// momentum `lion_m` (which the term also advances).
    pub state: &'static [&'static str],
    /// Whether the term reads `√v̂ + ε` (computed once a step for every term that does).
    pub denom: bool,
    pub columns: &'static [Column],
    /// `weight · T` for every member, from `Inputs`.
    pub tensor: fn(&mut Inputs) -> Tensor,
    /// `T` in the exported optimizer (see `Python`).
    pub python: Python,
}

/// A term in the exported optimizer's generated step, over each parameter group's tensors at
/// once (`torch._foreach_*`): `T = Σ coef · num / (den.base / den.divide + ε)` over its parts,
/// then `after` once the weights are updated. The lists `g` (gradients), `p`, and the state
/// (`m`, `v`, `lion_m`) are in scope, as are the step's scalars: `bc1` (`1 − β1^t`, or 1),
/// `sqrt_bc2` (`√(1 − β2^t)`, or 1), `d_t`, `b1`, `b2` (one value per tensor, or per group).
/// Splitting a term into parts lets the generator fold every scalar into one fused call
/// (`_foreach_addcdiv_`, as torch.optim's Adam does), so a one-term genome costs what torch's
/// own optimizer costs.
pub struct Python {
    pub parts: &'static [Part],
    pub after: &'static str,
}

/// One summand of a term: a list expression, an optional divisor and a scalar coefficient.
pub struct Part {
    /// A list expression; a bare name (`g`, `m`) is never written to.
    pub num: &'static str,
    pub den: Option<Den>,
    pub coef: &'static str,
}

/// A divisor `base / divide + ε`, `base` a freshly allocated list.
#[derive(Clone, Copy)]
pub struct Den {
    pub base: &'static str,
    /// A scalar expression, or "" for none.
    pub divide: &'static str,
}

/// `√v̂ + ε`, PyTorch's order of operations: `√v / √(1−β2^t) + ε`.
pub const DENOM: Den = Den {
    base: "torch._foreach_sqrt(v)",
    divide: "sqrt_bc2",
};

/// A term of one part without a divisor and nothing after.
macro_rules! py {
    ($num:expr, $coef:expr) => {
        Python {
            parts: &[Part {
                num: $num,
                den: None,
                coef: $coef,
            }],
            after: "",
        }
    };
}

/// A paper, cited as optax cites one.
#[derive(Clone, Copy, Debug)]
pub struct Paper {
    pub authors: &'static str,
    pub year: u16,
    pub title: &'static str,
    pub arxiv: &'static str,
}

impl std::fmt::Display for Paper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}, \"{}\", arXiv:{}",
            self.authors, self.year, self.title, self.arxiv
        )
    }
}

/// Marfinetz 2025: the seven primitives and the published genome.
pub const MARFINETZ_2025: Paper = Paper {
    authors: "Marfinetz",
    year: 2025,
    title: "Evolving Deep Learning Optimizers",
    arxiv: "2512.11853",
};
/// Signum: the sign of the momentum.
pub const BERNSTEIN_2018: Paper = Paper {
    authors: "Bernstein et al.",
    year: 2018,
    title: "signSGD: Compressed Optimisation for Non-Convex Problems",
    arxiv: "1802.04434",
};
/// Lion.
pub const CHEN_2023: Paper = Paper {
    authors: "Chen et al.",
    year: 2023,
    title: "Symbolic Discovery of Optimization Algorithms",
    arxiv: "2302.06675",
};
/// AddSign and PowerSign.
pub const BELLO_2017: Paper = Paper {
    authors: "Bello et al.",
    year: 2017,
    title: "Neural Optimizer Search with Reinforcement Learning",
    arxiv: "1709.07417",
};

/// QHAdam.
pub const MA_2019: Paper = Paper {
    authors: "Ma & Yarats",
    year: 2019,
    title: "Quasi-hyperbolic momentum and Adam for deep learning",
    arxiv: "1810.06801",
};

/// The plain weight column: most terms need nothing else.
const WEIGHT: &[Column] = &[Column {
    name: "weight",
    value: |m| m.weight,
}];

/// Every term kind, in `TermKind` order.
pub static TERMS: [TermDecl; 12] = [
    TermDecl {
        kind: TermKind::Gradient,
        name: "gradient",
        formula: "g",
        paper: MARFINETZ_2025,
        note: "",
        state: &[],
        denom: false,
        columns: WEIGHT,
        tensor: |x| x.grad * x.col("weight"),
        python: py!("g", "1"),
    },
    TermDecl {
        kind: TermKind::Momentum,
        name: "momentum",
        formula: "m̂",
        paper: MARFINETZ_2025,
        note: "",
        state: &["m"],
        denom: false,
        columns: &[Column {
            name: "weight",
            value: |m| m.weight / m.correction(m.beta1),
        }],
        tensor: |x| x.m() * x.col("weight"),
        python: py!("m", "1 / bc1"),
    },
    TermDecl {
        kind: TermKind::RmsNorm,
        name: "rms_norm",
        formula: "g / (√v̂ + ε)",
        paper: MARFINETZ_2025,
        note: "",
        state: &["v"],
        denom: true,
        columns: WEIGHT,
        tensor: |x| x.grad / x.denom() * x.col("weight"),
        python: Python {
            parts: &[Part {
                num: "g",
                den: Some(DENOM),
                coef: "1",
            }],
            after: "",
        },
    },
    TermDecl {
        kind: TermKind::Adam,
        name: "adam",
        formula: "m̂ / (√v̂ + ε)",
        paper: MARFINETZ_2025,
        note: "the `radam` modifier rectifies it",
        state: &["m", "v"],
        denom: false,
        columns: &[
            // The rectified step while RAdam's variance is tractable, else 0 (momentum phase).
            Column {
                name: "weight",
                value: |m| match m.radam {
                    None => m.weight / m.correction(m.beta1),
                    Some(Some(r)) => m.weight * r,
                    Some(None) => 0.0,
                },
            },
            // RAdam's momentum phase: plain bias-corrected momentum.
            Column {
                name: "momentum_weight",
                value: |m| match m.radam {
                    Some(None) => m.weight / (1.0 - m.beta1.powf(m.t)),
                    _ => 0.0,
                },
            },
        ],
        tensor: |x| {
            let adam = x.m() / x.adam_denom.expect("computed when used") * x.col("weight");
            match x.radam_momentum {
                true => adam + x.m() * x.col("momentum_weight"),
                false => adam,
            }
        },
        python: Python {
            parts: &[Part {
                num: "m",
                den: Some(DENOM),
                coef: "1 / bc1",
            }],
            after: "",
        },
    },
    TermDecl {
        kind: TermKind::Sign,
        name: "sign",
        formula: "sign(g)",
        paper: MARFINETZ_2025,
        note: "",
        state: &[],
        denom: false,
        columns: WEIGHT,
        tensor: |x| x.grad.sign() * x.col("weight"),
        python: py!("torch._foreach_sign(g)", "1"),
    },
    TermDecl {
        kind: TermKind::Unit,
        name: "unit",
        formula: "g / (|g| + ε)",
        paper: MARFINETZ_2025,
        note: "",
        state: &[],
        denom: false,
        columns: WEIGHT,
        tensor: |x| x.grad / (x.grad.abs() + x.eps) * x.col("weight"),
        python: Python {
            parts: &[Part {
                num: "g",
                den: Some(Den {
                    base: "torch._foreach_abs(g)",
                    divide: "",
                }),
                coef: "1",
            }],
            after: "",
        },
    },
    TermDecl {
        kind: TermKind::Nesterov,
        name: "nesterov",
        formula: "m̂ + 0.9·(g − m̂)",
        paper: MARFINETZ_2025,
        note: "0.9 constant, as published",
        state: &["m"],
        denom: false,
        // m̂ + 0.9·(g − m̂) = 0.1·m̂ + 0.9·g
        columns: &[
            Column {
                name: "momentum_weight",
                value: |m| 0.1 * m.weight / m.correction(m.beta1),
            },
            Column {
                name: "gradient_weight",
                value: |m| 0.9 * m.weight,
            },
        ],
        tensor: |x| x.m() * x.col("momentum_weight") + x.grad * x.col("gradient_weight"),
        python: Python {
            parts: &[
                Part {
                    num: "m",
                    den: None,
                    coef: "0.1 / bc1",
                },
                Part {
                    num: "g",
                    den: None,
                    coef: "0.9",
                },
            ],
            after: "",
        },
    },
    TermDecl {
        kind: TermKind::SignMomentum,
        name: "sign_momentum",
        formula: "sign(m)",
        paper: BERNSTEIN_2018,
        note: "Signum",
        state: &["m"],
        denom: false,
        columns: WEIGHT,
        tensor: |x| x.m().sign() * x.col("weight"),
        python: py!("torch._foreach_sign(m)", "1"),
    },
    TermDecl {
        kind: TermKind::Lion,
        name: "lion",
        formula: "sign(β1·c + (1−β1)·g), then c ← β2·c + (1−β2)·g",
        paper: CHEN_2023,
        note: "Lion",
        state: &["lion_m"],
        denom: false,
        columns: &[
            Column {
                name: "weight",
                value: |m| m.weight,
            },
            Column {
                name: "one_minus_beta1",
                value: |m| 1.0 - m.beta1,
            },
            Column {
                name: "one_minus_beta2",
                value: |m| 1.0 - m.beta2,
            },
        ],
        tensor: |x| {
            let (grad, b1, b2) = (x.grad, x.col("one_minus_beta1"), x.col("one_minus_beta2"));
            let weight = x.col("weight").shallow_clone();
            let (b1, b2) = (b1.shallow_clone(), b2.shallow_clone());
            let c = x.lion_m.as_mut().expect("lion state kept");
            let term = c.lerp_tensor(grad, &b1).sign() * weight;
            let _ = c.lerp_tensor_(grad, &b2);
            term
        },
        python: Python {
            parts: &[Part {
                num: "torch._foreach_sign(torch._foreach_lerp(lion_m, g, 1 - b1))",
                den: None,
                coef: "1",
            }],
            after: "torch._foreach_lerp_(lion_m, g, 1 - b2)",
        },
    },
    TermDecl {
        kind: TermKind::AddSign,
        name: "add_sign",
        formula: "(1 + d_t·sign(g)·sign(m))·g",
        paper: BELLO_2017,
        note: "AddSign",
        state: &["m"],
        denom: false,
        columns: WEIGHT,
        // sign(g)·g = |g|, so (1 + d·sign(g)·sign(m))·g = g + d·|g|·sign(m).
        tensor: |x| (x.grad + x.grad.abs() * x.m().sign() * x.sign_decay) * x.col("weight"),
        python: Python {
            parts: &[
                Part {
                    num: "g",
                    den: None,
                    coef: "1",
                },
                Part {
                    num: "torch._foreach_mul(torch._foreach_abs(g), torch._foreach_sign(m))",
                    den: None,
                    coef: "d_t",
                },
            ],
            after: "",
        },
    },
    TermDecl {
        kind: TermKind::PowerSign,
        name: "power_sign",
        formula: "e^(d_t·sign(g)·sign(m))·g",
        paper: BELLO_2017,
        note: "PowerSign",
        state: &["m"],
        denom: false,
        columns: WEIGHT,
        tensor: |x| (x.grad.sign() * x.m().sign() * x.sign_decay).exp() * x.grad * x.col("weight"),
        python: py!(
            "torch._foreach_mul(torch._foreach_exp(torch._foreach_mul(torch._foreach_mul(\
             torch._foreach_sign(g), torch._foreach_sign(m)), d_t)), g)",
            "1"
        ),
    },
    TermDecl {
        kind: TermKind::QhAdam,
        name: "qh_adam",
        formula: "(0.3·g + 0.7·m̂) / (√v̂ + ε)",
        paper: MA_2019,
        note: "QHAdam with ν1 = 0.7 (the paper's recommended ν) and ν2 = 1",
        state: &["m", "v"],
        denom: true,
        columns: &[
            Column {
                name: "momentum_weight",
                value: |m| 0.7 * m.weight / m.correction(m.beta1),
            },
            Column {
                name: "gradient_weight",
                value: |m| 0.3 * m.weight,
            },
        ],
        tensor: |x| {
            (x.m() * x.col("momentum_weight") + x.grad * x.col("gradient_weight")) / x.denom()
        },
        python: Python {
            parts: &[
                Part {
                    num: "m",
                    den: Some(DENOM),
                    coef: "0.7 / bc1",
                },
                Part {
                    num: "g",
                    den: Some(DENOM),
                    coef: "0.3",
                },
            ],
            after: "",
        },
    },
];

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn the_table_follows_the_enum_and_its_file_names() {
        for (i, kind) in TermKind::ALL.into_iter().enumerate() {
            let decl = &TERMS[i];
            assert_eq!(decl.kind, kind);
            assert_eq!(kind as usize, i);
            assert_eq!(
                serde_json::to_string(&kind).unwrap(),
                format!("\"{}\"", decl.name)
            );
            assert!(decl.columns.iter().any(|c| c.name.ends_with("weight")));
        }
    }

    /// The README has a table row for `name` showing `formula` and citing `paper`.
    pub(crate) fn assert_readme_row(name: &str, formula: &str, paper: &Paper) {
        let readme = include_str!("../../README.md");
        let row = format!("| `{name}` | {} |", formula.replace('|', "\\|"));
        let line = readme.lines().find(|l| l.starts_with(&row));
        let line = line.unwrap_or_else(|| panic!("README lacks the row {row}"));
        let cited = format!("{} {}, arXiv:{}", paper.authors, paper.year, paper.arxiv);
        assert!(
            line.contains(&cited),
            "README's row {row} does not cite {cited}"
        );
    }

    #[test]
    fn the_readme_table_shows_the_declared_formulas() {
        for decl in &TERMS {
            assert_readme_row(decl.name, decl.formula, &decl.paper);
        }
    }
}
