//! The genome: a whole optimizer written as data.
//!
//! The update is `Δw = η_t · ξ · φ · Σ_k weight_k · T_k(g, m, v)` (see `optim`), so a genome is the
//! list of primitive terms `T_k` with their weights plus the scalars and flags of the rule.
//! Files hold plain values (`"lr": 0.001`); the GA mutates lr, ε and weight decay in log10 space
//! (see `ga`), which is why they are kept strictly positive (weight decay may be exactly 0 = off).
pub mod genes;
pub mod modifiers;
pub mod terms;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The term kinds and their declarations live in `terms`.
pub use crate::genome::terms::TermKind;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Term {
    pub kind: TermKind,
    pub weight: f64,
}

/// The sign-decay schedule `d_t` of AddSign/PowerSign (Bello et al. 2017).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignDecay {
    /// `d_t = 1`
    #[default]
    Off,
    /// `d_t = 1 − s/S`
    Linear,
    /// `d_t = ½(1 + cos(π·s/S))`
    Cosine,
}

/// Lookahead (Zhang et al. 2019, "Lookahead Optimizer: k steps forward, 1 step back"):
/// every `k` steps the slow weights move `alpha` of the way to the fast ones, which restart there.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lookahead {
    pub k: u64,
    pub alpha: f64,
}

fn yes() -> bool {
    true
}
fn is_false(b: &bool) -> bool {
    !*b
}
fn is_zero(x: &u64) -> bool {
    *x == 0
}

/// A whole optimizer. Only `terms`, `lr`, `beta1`, `beta2` and `eps` are required in a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genome {
    /// A label for people; not part of the optimizer (ignored by the content hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub terms: Vec<Term>,
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// Decoupled: `w ← w·(1 − η_t·λ)` before the update.
    #[serde(default)]
    pub weight_decay: f64,
    #[serde(default = "yes")]
    pub bias_correction: bool,
    /// Off: `m = g` (the published flag `use_m`).
    #[serde(default = "yes")]
    pub use_m: bool,
    /// Off: `v = g²` (the published flag `use_v`).
    #[serde(default = "yes")]
    pub use_v: bool,
    /// Elementwise clamp of `g` to `±c`; `null` = off.
    #[serde(default)]
    pub grad_clip: Option<f64>,
    /// Linear warmup `η·(s+1)/W` for step index `s < W`; 0 = off.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub warmup_steps: u64,
    /// `η_t ·= ½(1 + cos(π·s/S))` over the run's S steps.
    #[serde(default)]
    pub cosine_decay: bool,
    #[serde(default, skip_serializing_if = "is_default_decay")]
    pub sign_decay: SignDecay,
    /// RAdam rectification of the `adam` term (Liu et al. 2020, "On the Variance of the Adaptive
    /// Learning Rate and Beyond"), computed from raw m, v as the Eve library does.
    #[serde(default, skip_serializing_if = "is_false")]
    pub radam: bool,
    /// LAMB/LARS layer-wise trust ratio (You et al. 2020, "Large Batch Optimization for Deep
    /// Learning: Training BERT in 76 minutes"), per tensor, in the Eve library's form.
    #[serde(default, skip_serializing_if = "is_false")]
    pub trust_ratio: bool,
    /// DiffGrad friction (Dubey et al. 2019, "diffGrad: An Optimization Method for CNNs"), one
    /// scalar `sigmoid(‖g_prev − g‖)` per tensor as the Eve library implements it.
    #[serde(default, skip_serializing_if = "is_false")]
    pub diffgrad: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lookahead: Option<Lookahead>,
}

fn is_default_decay(d: &SignDecay) -> bool {
    *d == SignDecay::Off
}

/// The largest number of terms a genome may have (keeps the search space and the step cost bounded).
pub const MAX_TERMS: usize = 8;

impl Genome {
    /// Parses and validates genome JSON; `origin` names the file in error messages.
    pub fn from_json(text: &str, origin: &str) -> Result<Genome> {
        let err = |message: String| Error::Genome {
            origin: origin.to_string(),
            message,
        };
        crate::fsutil::parse_checked(text, Genome::validate).map_err(err)
    }

    pub fn load(path: &Path) -> Result<Genome> {
        let text = crate::fsutil::read_to_string(path)?;
        Genome::from_json(&text, &path.display().to_string())
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        crate::fsutil::write_json_atomic(path, self)
    }

    /// Checks every value against what the update rule can use; the message names the field.
    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.terms.is_empty() {
            return Err(format!(
                "field `terms`: the term list is empty; give at least one of {}",
                known_kinds()
            ));
        }
        if self.terms.len() > MAX_TERMS {
            return Err(format!(
                "field `terms`: {} terms, at most {MAX_TERMS} allowed",
                self.terms.len()
            ));
        }
        for (i, t) in self.terms.iter().enumerate() {
            finite(&format!("terms[{i}].weight"), t.weight)?;
        }
        let canonical = self.canonical();
        for t in &canonical.terms {
            finite(
                &format!("terms (total weight of {})", t.kind.name()),
                t.weight,
            )?;
        }
        if canonical.terms.is_empty() {
            return Err(format!(
                "field `terms`: the weights are zero or cancel out for every kind ({}), so this genome never moves the weights; give at least one kind a non-zero total weight",
                self.terms
                    .iter()
                    .map(|t| format!("{} {}", t.kind.name(), t.weight))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        positive("lr", self.lr)?;
        positive("eps", self.eps)?;
        beta("beta1", self.beta1)?;
        beta("beta2", self.beta2)?;
        finite("weight_decay", self.weight_decay)?;
        if self.weight_decay < 0.0 {
            return Err(format!(
                "field `weight_decay`: {} is negative; allowed: 0 (off) or a positive value",
                self.weight_decay
            ));
        }
        if let Some(c) = self.grad_clip {
            positive("grad_clip", c)?;
        }
        if let Some(la) = self.lookahead {
            if la.k == 0 {
                return Err("field `lookahead.k`: 0; allowed: an integer ≥ 1".into());
            }
            finite("lookahead.alpha", la.alpha)?;
            if !(la.alpha > 0.0 && la.alpha <= 1.0) {
                return Err(format!(
                    "field `lookahead.alpha`: {}; allowed: (0, 1]",
                    la.alpha
                ));
            }
        }
        Ok(())
    }

    pub fn needs_m(&self) -> bool {
        self.terms.iter().any(|t| t.kind.needs_m())
    }
    pub fn needs_v(&self) -> bool {
        self.terms.iter().any(|t| t.kind.needs_v())
    }
    pub fn has(&self, kind: TermKind) -> bool {
        self.terms.iter().any(|t| t.kind == kind)
    }

    /// The same optimizer in one spelling: terms of one kind merged, zero weights dropped,
    /// terms sorted by kind, the name removed.
    pub fn canonical(&self) -> Genome {
        let mut terms: Vec<Term> = Vec::new();
        for kind in TermKind::ALL {
            // Summed in sorted order, so the same terms listed in any order give the same bits.
            let mut weights: Vec<f64> = self
                .terms
                .iter()
                .filter(|t| t.kind == kind)
                .map(|t| t.weight)
                .collect();
            weights.sort_by(f64::total_cmp);
            let weight: f64 = weights.into_iter().sum();
            if weight != 0.0 {
                terms.push(Term { kind, weight });
            }
        }
        Genome {
            name: None,
            terms,
            ..self.clone()
        }
    }

    /// A stable content hash of the canonical form (16 hex digits): the same optimizer written
    /// two ways hashes the same, so scores can be cached and duplicates skipped.
    pub fn hash(&self) -> String {
        let json = serde_json::to_string(&self.canonical()).expect("plain data serialises");
        let digest = Sha256::digest(json.as_bytes());
        digest[..8].iter().map(|b| format!("{b:02x}")).collect()
    }

    /// One readable line: terms with weights, lr, betas, flags.
    pub fn describe(&self) -> String {
        let terms: Vec<String> = self
            .terms
            .iter()
            .map(|t| format!("{}×{:.3}", t.kind.name(), t.weight))
            .collect();
        let mut s = format!(
            "[{}] lr {:.3e} β1 {:.4} β2 {:.4} ε {:.1e}",
            terms.join(" + "),
            self.lr,
            self.beta1,
            self.beta2,
            self.eps
        );
        if self.weight_decay > 0.0 {
            s += &format!(" wd {:.1e}", self.weight_decay);
        }
        let mut flags = Vec::new();
        if self.bias_correction {
            flags.push("bias-corr".to_string());
        }
        if !self.use_m {
            flags.push("m=g".into());
        }
        if !self.use_v {
            flags.push("v=g²".into());
        }
        if let Some(c) = self.grad_clip {
            flags.push(format!("clip {c}"));
        }
        if self.warmup_steps > 0 {
            flags.push(format!("warmup {}", self.warmup_steps));
        }
        if self.cosine_decay {
            flags.push("cosine".into());
        }
        if self.sign_decay != SignDecay::Off {
            flags.push(format!("sign-decay {:?}", self.sign_decay).to_lowercase());
        }
        if self.radam {
            flags.push("radam".into());
        }
        if self.trust_ratio {
            flags.push("trust-ratio".into());
        }
        if self.diffgrad {
            flags.push("diffgrad".into());
        }
        if let Some(la) = self.lookahead {
            flags.push(format!("lookahead k={} α={}", la.k, la.alpha));
        }
        if !flags.is_empty() {
            s += &format!(" | {}", flags.join(", "));
        }
        s
    }

    /// The name to show: the genome's own, else its hash.
    pub fn label(&self) -> String {
        self.name.clone().unwrap_or_else(|| self.hash())
    }
}

/// `evolve check`: one line per file (`ok` with hash and description, or the error), and how
/// many failed.
pub fn check_files(paths: &[std::path::PathBuf]) -> (String, usize) {
    let mut report = String::new();
    let mut failures = 0;
    for path in paths {
        match Genome::load(path) {
            Ok(g) => {
                report += &format!("ok    {}  {}  {}\n", path.display(), g.hash(), g.describe())
            }
            Err(e) => {
                failures += 1;
                report += &format!("error {e}\n");
            }
        }
    }
    (report, failures)
}

pub fn known_kinds() -> String {
    TermKind::ALL
        .iter()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .join(", ")
}

fn finite(field: &str, x: f64) -> std::result::Result<(), String> {
    if x.is_finite() {
        Ok(())
    } else {
        Err(format!("field `{field}`: {x} is not a finite number"))
    }
}

fn positive(field: &str, x: f64) -> std::result::Result<(), String> {
    finite(field, x)?;
    if x > 0.0 {
        Ok(())
    } else {
        Err(format!("field `{field}`: {x}; allowed: a positive number"))
    }
}

fn beta(field: &str, x: f64) -> std::result::Result<(), String> {
    finite(field, x)?;
    if (0.0..1.0).contains(&x) {
        Ok(())
    } else {
        Err(format!("field `{field}`: {x} is outside [0, 1)"))
    }
}

/// The genomes shipped in `genomes/`, built into the binary so the baseline and the initial
/// population never depend on the working directory.
pub const SHIPPED: [(&str, &str); 8] = [
    ("adam", include_str!("../../genomes/adam.json")),
    ("adamw", include_str!("../../genomes/adamw.json")),
    (
        "sgd-momentum",
        include_str!("../../genomes/sgd-momentum.json"),
    ),
    ("rmsprop", include_str!("../../genomes/rmsprop.json")),
    ("lion", include_str!("../../genomes/lion.json")),
    ("signum", include_str!("../../genomes/signum.json")),
    ("eve", include_str!("../../genomes/eve.json")),
    (
        "marfinetz2025-evolved",
        include_str!("../../genomes/marfinetz2025-evolved.json"),
    ),
];

/// The shipped genome of Marfinetz 2025: the answer a search is compared with, never seeded
/// from by the shipped configs.
pub const PUBLISHED: &str = "marfinetz2025-evolved";

/// Whether `name` is a shipped genome's.
pub fn is_shipped(name: &str) -> bool {
    SHIPPED.iter().any(|(n, _)| *n == name)
}

/// The shipped genomes' names, for messages that list what is allowed.
pub fn shipped_names() -> String {
    SHIPPED.map(|(name, _)| name).join(", ")
}

/// A shipped genome by name (see `SHIPPED`).
pub fn shipped(name: &str) -> Genome {
    let (_, text) = SHIPPED
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("no shipped genome {name}"));
    Genome::from_json(text, &format!("genomes/{name}.json")).expect("shipped genomes are valid")
}

/// The Adam baseline every fitness is normalised against.
pub fn adam_baseline() -> Genome {
    shipped("adam")
}

/// The Adam baseline's content hash, computed once.
pub fn adam_hash() -> &'static str {
    static HASH: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    HASH.get_or_init(|| adam_baseline().hash())
}
