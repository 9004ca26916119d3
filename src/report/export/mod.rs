//! Handing a genome over: as JSON (loadable by `evolve replay`) or as a self-contained PyTorch
//! optimizer file.
mod codegen;

use crate::genome::{modifiers, Genome};
use crate::train::fitness::Score;

/// The genome as a JSON file (loadable by `evolve replay`).
pub fn json_source(genome: &Genome) -> String {
    serde_json::to_string_pretty(genome).expect("plain data serialises") + "\n"
}

const TEMPLATE: &str = include_str!("pytorch_template.py");

/// A Python file defining `EvolvedOptimizer(torch.optim.Optimizer)` that implements `genome`
/// (terms, modifiers, schedule) with its values as constructor defaults.
pub fn pytorch_source(genome: &Genome, score: Option<&Score>) -> String {
    // One term per kind, as the engine trains it (the published genome lists `sign` and `adam`
    // twice each): each kind is computed once a step.
    let mut exported = genome.canonical();
    exported.name = genome.name.clone();
    let json = serde_json::to_string_pretty(&exported).expect("plain data serialises");
    let scores = scores_line(score);
    let needs_total = genome.cosine_decay || genome.sign_decay != crate::genome::SignDecay::Off;
    let origin = origin(genome, score.is_some());
    let number = |x: f64| format!("{x:?}");
    fill(
        TEMPLATE,
        &[
            ("NAME", python_text(&genome.label())),
            ("ORIGIN", python_text(&origin)),
            ("DESCRIBE", python_text(&genome.describe())),
            ("HASH", python_text(&genome.hash())),
            ("SCORES", python_text(&scores)),
            ("GENOME_JSON", python_literal(&json)),
            ("PAPERS", python_text_block(&papers(&exported))),
            ("RULE", codegen::rule(&exported)),
            ("LR", number(genome.lr)),
            ("BETA1", number(genome.beta1)),
            ("BETA2", number(genome.beta2)),
            ("EPS", number(genome.eps)),
            ("WEIGHT_DECAY", number(genome.weight_decay)),
            (
                "TOTAL_STEPS_NOTE",
                if needs_total {
                    "required: this genome's schedule spans the run"
                } else {
                    "unused by this genome"
                }
                .to_string(),
            ),
        ],
    )
}

/// What the file's scores line says.
fn scores_line(score: Option<&Score>) -> String {
    let Some(s) = score else {
        return "not scored in this export (exported from a genome file)".to_string();
    };
    let tasks: Vec<String> = s
        .tasks
        .iter()
        .map(|t| {
            format!(
                "{} val acc {:.2}% fitness {:.4}",
                t.task,
                100.0 * t.score_acc_mean,
                t.fitness
            )
        })
        .collect();
    format!(
        "{:.4}× Adam (raw fitness {:.4}; {})",
        s.vs_adam,
        s.raw,
        tasks.join("; ")
    )
}

/// The file's first line after the name: a shipped genome says which it is; a run's winner
/// says where its scores come from.
fn origin(genome: &Genome, scored: bool) -> String {
    let shipped = crate::genome::SHIPPED
        .iter()
        .map(|(name, _)| *name)
        .find(|name| crate::genome::shipped(name).hash() == genome.hash());
    match (shipped, scored) {
        (Some(name), _) => format!(
            "the genome `{name}` that evolve ships (genomes/{name}.json), as a PyTorch optimizer."
        ),
        (None, true) => "an optimizer found by an evolve search; its scores, held out where the run had a held-out protocol, are below.".to_string(),
        (None, false) => "a genome exported by evolve as a PyTorch optimizer (not scored in this export).".to_string(),
    }
}

/// One line per term and modifier of `genome`: its name, formula and paper.
fn papers(genome: &Genome) -> String {
    let terms = genome.terms.iter().map(|t| {
        let decl = t.kind.decl();
        let note = match decl.note {
            "" => String::new(),
            note => format!("; {note}"),
        };
        format!(
            "        {}: {} ({}{note})\n",
            decl.name, decl.formula, decl.paper
        )
    });
    let mods = modifiers::enabled(genome)
        .map(|m| format!("        {}: {} ({})\n", m.name, m.formula, m.paper));
    terms.chain(mods).collect()
}

/// Replaces each `{{KEY}}` of `template` in one pass: values are never scanned again, so data
/// that looks like a placeholder stays text.
fn fill(template: &str, values: &[(&str, String)]) -> String {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open]);
        let after = &rest[open + 2..];
        let close = after.find("}}").expect("template placeholders are closed");
        let key = &after[..close];
        let (_, value) = values
            .iter()
            .find(|(k, _)| *k == key)
            .unwrap_or_else(|| panic!("template placeholder {{{{{key}}}}} has no value"));
        out.push_str(value);
        rest = &after[close + 2..];
    }
    out.push_str(rest);
    out
}

/// `text` escaped for the inside of a (non-raw) Python string or docstring: backslashes,
/// quotes, line breaks and control characters become escapes, so no data can close the string
/// or start a line of code; other characters (`×`, `β`, names in any script) stay readable.
pub fn python_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\'' => out.push_str("\\'"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out
}

/// Lines of `text` for a docstring, readable as they are: backslashes and control characters
/// escaped, and no run of quotes left that could close it.
fn python_text_block(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if chars.peek() == Some(&'"') => out.push_str("\\\""),
            '"' | '\'' | '\n' => out.push(c),
            c => out.push_str(&python_text(&c.to_string())),
        }
    }
    out
}

/// `text` as a parenthesised Python string expression, one literal per line of `text`.
pub fn python_literal(text: &str) -> String {
    let lines: Vec<String> = text
        .split_inclusive('\n')
        .map(|line| format!("    \"{}\"", python_text(line)))
        .collect();
    format!("(\n{}\n)", lines.join("\n"))
}
