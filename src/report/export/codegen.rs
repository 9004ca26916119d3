//! The exported optimizer's step, written out for one genome from the term and modifier
//! declarations (`genome::terms::TERMS`, `genome::modifiers::MODIFIERS`): only the state its rule
//! reads, every call a `torch._foreach_*` over a parameter group's tensors, and the scalars of a
//! one-term rule folded into one fused call, as torch.optim's own optimizers do.
use crate::genome::modifiers::{self, ModifierDecl};
use crate::genome::terms::{Den, Part};
use crate::genome::{Genome, SignDecay, TermKind};

/// The module-level code of `genome`'s rule (used in canonical form: one term per kind): the
/// schedule's `_learning_rate` and `_sign_decay`, the `STATE` a tensor keeps and the step `_rule`.
pub fn rule(genome: &Genome) -> String {
    let genome = genome.canonical();
    let mods: Vec<&ModifierDecl> = modifiers::enabled(&genome).collect();
    let parts = parts(&genome, &mods);
    let mut out = String::new();
    out += &schedule(&genome);
    out += &state(&genome, &mods);
    out += RULE_SIGNATURE;
    let mut body = Body::default();
    body.bind_state(&genome, &mods);
    for m in &mods {
        for (name, value) in (m.python.constants)(&genome) {
            body.line(&format!("{name} = {value}"));
        }
    }
    body.scalars(&genome, &parts, &mods);
    body.line("if maximize:");
    body.line("    g = torch._foreach_neg(g)");
    if let Some(clip) = genome.grad_clip {
        body.line(&format!(
            "g = torch._foreach_clamp_max(torch._foreach_clamp_min(g, -{clip:?}), {clip:?})"
        ));
    }
    for m in &mods {
        body.block(m.python.before);
    }
    body.line("if wd:");
    body.line("    torch._foreach_mul_(p, _per_tensor(1 - lr_t * wd, eager))");
    body.moments(&genome);
    body.direction(&parts, &mods);
    for kind in TermKind::ALL.into_iter().filter(|&k| genome.has(k)) {
        body.block(kind.decl().python.after);
    }
    for m in &mods {
        body.block(m.python.after);
    }
    out += &body.text;
    out
}

const RULE_SIGNATURE: &str = r#"

def _rule(p: List[Tensor], g: List[Tensor], state: Dict[str, List[Tensor]], t: Tensor, s: Tensor,
          lr: float, b1: float, b2: float, eps: float, wd: float, total: int, schedule: bool,
          maximize: bool, eager: bool) -> None:
    """One step of this genome over one parameter group's tensors `p` with gradients `g`.

    `t` holds each tensor's step number (from 1), `s` the group's schedule step (from 0); both
    are float64 tensors on the host, so nothing here waits for the device. `eager` is False
    while torch.compile traces the step.
    """
"#;

/// The weighted parts of every term, with RAdam's rewrite of the `adam` term applied.
fn parts(genome: &Genome, mods: &[&ModifierDecl]) -> Vec<(f64, &'static Part)> {
    let mut out = Vec::new();
    for term in &genome.terms {
        let rewrite = mods
            .iter()
            .map(|m| m.python.adam)
            .find(|adam| term.kind == TermKind::Adam && !adam.is_empty());
        let parts = rewrite.unwrap_or(term.kind.decl().python.parts);
        out.extend(parts.iter().map(|p| (term.weight, p)));
    }
    out
}

fn den_text(den: Option<Den>) -> String {
    den.map_or(String::new(), |d| format!("{} {}", d.base, d.divide))
}

/// `_learning_rate` and `_sign_decay` as this genome schedules them (the engine's
/// `optim::schedule`, with the cosine held at its end after `total` steps).
fn schedule(genome: &Genome) -> String {
    let mut lr = String::from(
        "def _learning_rate(lr: float, s: Tensor, total: int, schedule: bool) -> Tensor:
    \"\"\"The learning rate at schedule step `s` (from 0) of a run of `total` steps.\"\"\"
    lr_t = torch.full_like(s, lr)
    if not schedule:
        return lr_t
",
    );
    if genome.warmup_steps > 0 {
        lr += &format!(
            "    lr_t = lr_t * torch.clamp((s + 1) / {}, max=1.0)  # warmup\n",
            genome.warmup_steps
        );
    }
    if genome.cosine_decay {
        lr += "    lr_t = lr_t * (0.5 * (1 + torch.cos(math.pi * torch.clamp(s, max=total) / total)))\n";
    }
    lr += "    return lr_t\n";
    let decay = match genome.sign_decay {
        SignDecay::Off => "torch.ones_like(s)",
        SignDecay::Linear => "1 - torch.clamp(s, max=total) / total",
        SignDecay::Cosine => "0.5 * (1 + torch.cos(math.pi * (torch.clamp(s, max=total) / total)))",
    };
    let guard = match genome.sign_decay {
        SignDecay::Off => "",
        _ => "    if not schedule or not total:\n        return torch.ones_like(s)\n",
    };
    format!(
        "{lr}

def _sign_decay(s: Tensor, total: int, schedule: bool) -> Tensor:
    \"\"\"d_t of AddSign and PowerSign at schedule step `s`.\"\"\"
{guard}    return {decay}
"
    )
}

/// `STATE`: what each tensor's state holds beyond its step count, with initial values.
fn state(genome: &Genome, mods: &[&ModifierDecl]) -> String {
    let entries: Vec<String> = kept(genome, mods)
        .iter()
        .map(|(name, init)| format!("    \"{name}\": lambda p: {init},\n"))
        .collect();
    format!(
        "\n\n# The state each tensor keeps besides its step count, and how it starts.\nSTATE = {{\n{}}}\n",
        entries.concat()
    )
}

/// The per-tensor state the rule reads: the moments only when a term reads them and the genome
/// keeps them (`use_m`/`use_v` off use `g` and `g²` of this step), then the modifiers' state.
fn kept(genome: &Genome, mods: &[&ModifierDecl]) -> Vec<(&'static str, &'static str)> {
    let reads = |key: &str| {
        genome
            .terms
            .iter()
            .any(|t| t.kind.decl().state.contains(&key))
    };
    let mut out = Vec::new();
    let moments = [("m", genome.use_m), ("v", genome.use_v), ("lion_m", true)];
    for (key, kept) in moments {
        if reads(key) && kept {
            out.push((key, "torch.zeros_like(p)"));
        }
    }
    out.extend(mods.iter().flat_map(|m| m.state.iter().copied()));
    out
}

/// The statements of `_rule`, indented once.
#[derive(Default)]
struct Body {
    text: String,
    /// Divisors already computed, with their variable names.
    dens: Vec<(&'static str, &'static str, String)>,
}

impl Body {
    fn line(&mut self, line: &str) {
        self.text += "    ";
        self.text += line;
        self.text += "\n";
    }

    /// Python statements, one per line, "" for none.
    fn block(&mut self, code: &str) {
        for line in code.lines().filter(|l| !l.trim().is_empty()) {
            self.line(line);
        }
    }

    fn bind_state(&mut self, genome: &Genome, mods: &[&ModifierDecl]) {
        for (key, _) in kept(genome, mods) {
            self.line(&format!("{key} = state[\"{key}\"]"));
        }
    }

    /// The step's scalars the rule reads: `lr_t`, and `d_t`, `bc1`, `sqrt_bc2` and the
    /// modifiers' own where a part or a modifier names them.
    fn scalars(&mut self, genome: &Genome, parts: &[(f64, &Part)], mods: &[&ModifierDecl]) {
        self.line("lr_t = _learning_rate(lr, s, total, schedule)");
        let text: String = parts
            .iter()
            .map(|(_, p)| format!("{} {} {}", p.num, p.coef, den_text(p.den)))
            .chain(
                mods.iter()
                    .map(|m| format!("{} {}", m.python.scale, m.python.after)),
            )
            .collect();
        if text.contains("d_t") {
            self.line("d_t = _sign_decay(s, total, schedule)");
        }
        let corrected = |beta: &str| match genome.bias_correction {
            true => format!("1 - {beta} ** t"),
            false => "torch.ones_like(t)".to_string(),
        };
        if text.contains("bc1") {
            self.line(&format!("bc1 = {}", corrected("b1")));
        }
        if text.contains("sqrt_bc2") {
            self.line(&format!("sqrt_bc2 = ({}).sqrt()", corrected("b2")));
        }
        for m in mods {
            self.block(m.python.scalars);
        }
    }

    /// `m ← β1·m + (1−β1)·g`, `v ← β2·v + (1−β2)·g²`, or `m = g`, `v = g²` when not kept.
    fn moments(&mut self, genome: &Genome) {
        let reads = |key: &str| {
            genome
                .terms
                .iter()
                .any(|t| t.kind.decl().state.contains(&key))
        };
        if reads("m") {
            match genome.use_m {
                true => self.line("torch._foreach_lerp_(m, g, 1 - b1)"),
                false => self.line("m = g"),
            }
        }
        if reads("v") {
            match genome.use_v {
                true => {
                    self.line("torch._foreach_mul_(v, b2)");
                    self.line("torch._foreach_addcmul_(v, g, g, 1 - b2)");
                }
                false => self.line("v = torch._foreach_mul(g, g)"),
            }
        }
    }

    /// The divisor `base / divide + ε` in a variable (computed once per distinct divisor).
    fn den(&mut self, den: Den) -> String {
        if let Some((_, _, name)) = self
            .dens
            .iter()
            .find(|(b, d, _)| *b == den.base && *d == den.divide)
        {
            return name.clone();
        }
        let name = format!("den{}", self.dens.len());
        self.line(&format!("{name} = {}", den.base));
        if !den.divide.is_empty() {
            self.line(&format!(
                "torch._foreach_div_({name}, _per_tensor({}, eager))",
                den.divide
            ));
        }
        self.line(&format!("torch._foreach_add_({name}, eps)"));
        self.dens.push((den.base, den.divide, name.clone()));
        name
    }

    /// `w ← w − η_t·ξ·φ·Σ weight·coef·num/den`: one fused call for a one-part rule without
    /// per-tensor factors, else the direction `d` summed first.
    fn direction(&mut self, parts: &[(f64, &Part)], mods: &[&ModifierDecl]) {
        let scales: Vec<&str> = mods
            .iter()
            .map(|m| m.python.scale)
            .filter(|s| !s.is_empty())
            .collect();
        if let ([(weight, part)], true) = (parts, scales.is_empty()) {
            let k = format!("-lr_t * ({weight:?} * ({}))", part.coef);
            self.add_part("p", part, &k);
            return;
        }
        for (i, (weight, part)) in parts.iter().enumerate() {
            let k = format!("{weight:?} * ({})", part.coef);
            match (i, part.den) {
                (0, Some(den)) => {
                    let den = self.den(den);
                    self.line(&format!("d = torch._foreach_div({}, {den})", part.num));
                    self.line(&format!("torch._foreach_mul_(d, _per_tensor({k}, eager))"));
                }
                (0, None) => self.line(&format!(
                    "d = torch._foreach_mul({}, _per_tensor({k}, eager))",
                    part.num
                )),
                _ => self.add_part("d", part, &k),
            }
        }
        let factor = match scales.as_slice() {
            [] => "-lr_t".to_string(),
            _ => {
                let product: Vec<String> = scales.iter().map(|s| format!("({s})")).collect();
                self.line(&format!("scale = {}", product.join(" * ")));
                "-lr_t * scale".to_string()
            }
        };
        self.line(&format!("_add_scaled_(p, d, {factor}, eager)"));
    }

    /// `target += k·num/den` (or `k·num`).
    fn add_part(&mut self, target: &str, part: &Part, k: &str) {
        match part.den {
            Some(den) => {
                let den = self.den(den);
                self.line(&format!(
                    "_addcdiv_({target}, {}, {den}, {k}, eager)",
                    part.num
                ));
            }
            None => self.line(&format!("_add_scaled_({target}, {}, {k}, eager)", part.num)),
        }
    }
}
