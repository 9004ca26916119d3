//! Handing a genome over: as JSON (loadable by `evolve replay`) or as a self-contained PyTorch
//! optimizer file.
use crate::error::{Error, Result};
use crate::evolution::{RunDir, BEST};
use crate::fitness::Score;
use crate::genome::Genome;
use std::path::Path;

/// The genome to export and, for a run, its scores: a run directory gives its best genome, a
/// genome file gives itself.
pub fn source(path: &Path) -> Result<(Genome, Option<Score>)> {
    if path.is_dir() {
        let dir = RunDir {
            path: path.to_path_buf(),
        };
        let best = dir.file(BEST);
        if !best.exists() {
            return Err(Error::run(
                path,
                format!("no {BEST} yet: the run has not finished an evaluation"),
            ));
        }
        let score = dir
            .load_checkpoint()
            .ok()
            .and_then(|cp| cp.best)
            .map(|b| b.score);
        Ok((Genome::load(&best)?, score))
    } else {
        Ok((Genome::load(path)?, None))
    }
}

const TEMPLATE: &str = include_str!("pytorch_template.py");

/// A Python file defining `EvolvedOptimizer(torch.optim.Optimizer)` that implements `genome`
/// (terms, modifiers, schedule) with its values as constructor defaults.
pub fn pytorch_source(genome: &Genome, score: Option<&Score>) -> String {
    let json = serde_json::to_string_pretty(genome).expect("plain data serialises");
    let scores = match score {
        Some(s) => {
            let tasks: Vec<String> = s
                .tasks
                .iter()
                .map(|t| {
                    format!(
                        "{} val acc {:.2}% fitness {:.4}",
                        t.task,
                        100.0 * t.val_acc_mean,
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
        None => "not scored in this export (exported from a genome file)".to_string(),
    };
    let needs_total = genome.cosine_decay || genome.sign_decay != crate::genome::SignDecay::Off;
    TEMPLATE
        .replace("{{NAME}}", &genome.label())
        .replace("{{DESCRIBE}}", &genome.describe())
        .replace("{{HASH}}", &genome.hash())
        .replace("{{SCORES}}", &scores)
        .replace("{{GENOME_JSON}}", &json)
        .replace("{{LR}}", &format!("{:?}", genome.lr))
        .replace("{{BETA1}}", &format!("{:?}", genome.beta1))
        .replace("{{BETA2}}", &format!("{:?}", genome.beta2))
        .replace("{{EPS}}", &format!("{:?}", genome.eps))
        .replace("{{WEIGHT_DECAY}}", &format!("{:?}", genome.weight_decay))
        .replace(
            "{{TOTAL_STEPS_NOTE}}",
            if needs_total {
                "required: this genome's schedule spans the run"
            } else {
                "unused by this genome"
            },
        )
}
