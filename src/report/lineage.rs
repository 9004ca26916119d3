//! Where a genome came from: its ancestry through the history, back to generation 0.
use crate::search::records::{Evaluation, Origin, Stage};
use std::collections::{BTreeSet, HashMap};

/// A genome of the ancestry at its first appearance, and where it came from then.
#[derive(Clone, Debug, PartialEq)]
pub struct Ancestor {
    pub generation: usize,
    pub index: usize,
    pub hash: String,
    pub label: String,
    /// `None` for a genome the history never shows bred (a held-out comparator such as Adam,
    /// when it was not a seed, or a point of the tuning grid).
    pub origin: Option<Origin>,
    /// Whether it first appeared as a point of the tuning grid.
    pub tuned: bool,
}

/// `hash` and every ancestor of it, each once, latest generation first: each genome as the
/// search first met it (an elite's first appearance says how it was made), then its parents.
pub fn ancestry(history: &[Evaluation], hash: &str) -> Vec<Ancestor> {
    let mut first: HashMap<&str, &Evaluation> = HashMap::new();
    for e in history.iter().filter(|e| e.stage != Stage::Holdout) {
        first.entry(e.hash.as_str()).or_insert(e);
    }
    let mut seen = BTreeSet::new();
    let mut pending = vec![hash.to_string()];
    let mut out = Vec::new();
    while let Some(hash) = pending.pop() {
        if !seen.insert(hash.clone()) {
            continue;
        }
        let Some(e) = first.get(hash.as_str()) else {
            out.push(Ancestor {
                generation: 0,
                index: 0,
                label: hash.clone(),
                hash,
                origin: None,
                tuned: false,
            });
            continue;
        };
        if let Some(origin) = &e.origin {
            pending.extend(origin.parents().into_iter().map(str::to_string));
        }
        out.push(Ancestor {
            generation: e.generation,
            index: e.index,
            hash: e.hash.clone(),
            label: e.genome.label(),
            origin: e.origin.clone(),
            tuned: e.stage.tunes(),
        });
    }
    out.sort_by(|a, b| b.generation.cmp(&a.generation).then(a.index.cmp(&b.index)));
    out
}

/// The ancestry as a Markdown section: one line per genome.
pub fn lineage_markdown(what: &str, ancestors: &[Ancestor]) -> String {
    let mut s = format!("## Lineage of {what}\n\n");
    for a in ancestors {
        let origin = match (&a.origin, a.tuned) {
            (Some(origin), _) => origin.to_string(),
            (None, true) => "a point of the tuning grid (a tuned baseline, not bred)".to_string(),
            (None, false) => "never bred by the search".to_string(),
        };
        let name = match a.label == a.hash {
            true => format!("`{}`", a.hash),
            false => format!("`{}` ({})", a.label, a.hash),
        };
        s += &format!(
            "- generation {} #{} {name}: {origin}\n",
            a.generation, a.index
        );
    }
    s + "\n"
}

/// One plain sentence when `hash` is a seed genome, unchanged (so the search handed back what
/// it was given), else `None`.
pub fn seed_sentence(history: &[Evaluation], hash: &str) -> Option<String> {
    let name = history.iter().find_map(|e| match &e.origin {
        Some(Origin::Seed { name }) if e.hash == hash => Some(name),
        _ => None,
    })?;
    Some(format!(
        "best.json is the seed genome {name}, unchanged: the search found nothing better than what it started from."
    ))
}
