//! What a researcher reads: replay tables and documents. Computes no fitness.
use crate::fitness::{Score, TaskScore};
use crate::genome::Genome;
use serde::Serialize;

/// One genome's replay result.
#[derive(Serialize)]
pub struct ReplayEntry {
    pub name: String,
    pub file: String,
    pub hash: String,
    pub genome: Genome,
    pub score: Score,
}

/// The `--json` document of `evolve replay`.
#[derive(Serialize)]
pub struct ReplayDocument {
    pub protocol: crate::config::Protocol,
    pub device: String,
    pub baseline: Vec<TaskScore>,
    pub genomes: Vec<ReplayEntry>,
}

/// A plain-text table: per genome and task, accuracy mean ± std over seeds, fitness, Δ and %
/// vs Adam, wall time; then each genome's aggregate.
pub fn replay_table(doc: &ReplayDocument) -> String {
    let mut out = format!(
        "{:<28} {:<10} {:>16} {:>8} {:>9} {:>8} {:>8}\n",
        "genome", "task", "val acc", "fitness", "Δ adam", "% adam", "time"
    );
    for entry in &doc.genomes {
        for (t, b) in entry.score.tasks.iter().zip(&doc.baseline) {
            let diverged = if t.diverged() { " (diverged)" } else { "" };
            out += &format!(
                "{:<28} {:<10} {:>7.2}% ± {:>5.2} {:>8.4} {:>+9.4} {:>+7.1}% {:>7.1}s{}\n",
                truncate(&entry.name, 28),
                truncate(&t.task, 10),
                100.0 * t.val_acc_mean,
                100.0 * t.val_acc_std,
                t.fitness,
                t.fitness - b.fitness,
                100.0 * (t.fitness / b.fitness - 1.0),
                t.seconds,
                diverged
            );
        }
        out += &format!(
            "{:<28} {:<10} {:>16} {:>8.4} {:>9} {:>7.3}× {:>7.1}s\n",
            "",
            "aggregate",
            "",
            entry.score.raw,
            "",
            entry.score.vs_adam,
            entry.score.seconds()
        );
    }
    out
}

fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

use crate::run_dir::{Checkpoint, GenerationStats};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Progress of an evolution: a bar over all evaluations (with ETA), one over the steps of the
/// genome in training, and a one-line summary per generation. Silent with `--quiet`.
pub struct Progress {
    quiet: bool,
    population: usize,
    multi: MultiProgress,
    candidates: ProgressBar,
    pub steps: ProgressBar,
}

impl Progress {
    pub fn new(quiet: bool, cp: &Checkpoint) -> Progress {
        let search = &cp.config.search;
        let multi = MultiProgress::with_draw_target(if quiet {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        });
        let total = (search.generations * search.population) as u64;
        let done = (cp.generation * search.population
            + cp.scores.iter().filter(|s| s.is_some()).count()) as u64;
        let candidates = multi.add(ProgressBar::new(total).with_position(done.min(total)));
        candidates.set_style(
            ProgressStyle::with_template(
                "evaluations [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}",
            )
            .expect("valid template"),
        );
        let steps = multi.add(ProgressBar::new(cp.config.protocol.total_steps()));
        steps.set_style(
            ProgressStyle::with_template("   training [{bar:30}] {pos}/{len} steps {msg}")
                .expect("valid template"),
        );
        Progress {
            quiet,
            population: search.population,
            multi,
            candidates,
            steps,
        }
    }

    pub fn message(&self, message: &str) {
        self.candidates.set_message(message.to_string());
    }

    pub fn candidate(&self, generation: usize, index: usize, genome: &Genome, what: &str) {
        self.candidates
            .set_position((generation * self.population + index) as u64);
        self.candidates.set_message(format!(
            "gen {generation} #{index} {what}: {}",
            genome.label()
        ));
        self.steps.set_message(truncate(&genome.describe(), 70));
    }

    pub fn generation_done(&self, stats: &GenerationStats, cp: &Checkpoint) {
        self.candidates
            .set_position(((stats.generation + 1) * cp.config.search.population) as u64);
        let line = format!(
            "gen {:>3}: best {:.4}  mean {:.4}  best so far {:.4}  (vs Adam = 1.0; {} evaluations, {} training steps)",
            stats.generation, stats.best, stats.mean, stats.best_so_far, cp.evaluations, cp.total_steps
        );
        if !self.quiet {
            let _ = self.multi.println(line);
        }
    }

    pub fn finish(&self) {
        self.candidates.finish_and_clear();
        self.steps.finish_and_clear();
    }
}

/// `summary.md`: the best genome in words and against the shipped baselines.
pub fn summary_markdown(cp: &Checkpoint) -> String {
    let search = &cp.config.search;
    let mut s = String::from("# evolve run summary\n\n");
    s += &format!(
        "Generations {} of {} · population {} · evaluations {} ({} trained, {} reused) · **total training steps {}**\n\n",
        cp.generation.min(search.generations),
        search.generations,
        search.population,
        cp.evaluations,
        cp.evaluations - cp.reused,
        cp.reused,
        cp.total_steps
    );
    let tasks: Vec<String> = cp
        .config
        .protocol
        .tasks
        .iter()
        .map(|t| {
            format!(
                "{} ({}, {} steps, batch {}, subset {})",
                t.name,
                serde_json::to_string(&t.model)
                    .unwrap_or_default()
                    .trim_matches('"'),
                t.steps,
                t.batch,
                t.train_subset
            )
        })
        .collect();
    let f = &cp.config.fidelity;
    if f.enabled {
        s += &format!("Multi-fidelity selection: every new genome screened on {:.1}% of the steps, the best {:.0}% (at least one) trained in full.\n\n", 100.0 * f.budget, 100.0 * f.promote);
    }
    s += &format!("Protocol: {} × {} seed(s). Fitness is the mean over tasks of the published fitness divided by Adam's (Adam = 1.0).\n\n", tasks.join(", "), cp.config.protocol.seeds);
    if let Some(best) = &cp.best {
        s += "## Best genome\n\n";
        s += &format!(
            "`{}` (generation {}, #{}, hash `{}`): **{:.4}× Adam**, raw fitness {:.4}\n\n",
            best.genome.label(),
            best.generation,
            best.index,
            best.hash,
            best.score.vs_adam,
            best.score.raw
        );
        s += &format!("    {}\n\n", best.genome.describe());
    }
    s += "## Best vs the shipped baselines\n\n| genome | vs Adam | raw fitness |";
    for t in &cp.config.protocol.tasks {
        s += &format!(" {} acc |", t.name);
    }
    s += "\n|---|---|---|";
    s += &"---|".repeat(cp.config.protocol.tasks.len());
    s += "\n";
    let mut rows: Vec<(String, Option<&Score>)> = Vec::new();
    if let Some(best) = &cp.best {
        rows.push((
            format!("**best** ({})", best.genome.label()),
            Some(&best.score),
        ));
    }
    for (name, _) in crate::genome::SHIPPED {
        let hash = crate::genome::shipped(name).hash();
        rows.push((name.to_string(), cp.memo.get(&hash)));
    }
    for (name, score) in rows {
        match score {
            Some(score) => {
                s += &format!("| {name} | {:.4} | {:.4} |", score.vs_adam, score.raw);
                for t in &score.tasks {
                    s += &format!(" {:.2}% |", 100.0 * t.val_acc_mean);
                }
                s += "\n";
            }
            None => {
                s += &format!(
                    "| {name} | not evaluated in this run | |{}\n",
                    " |".repeat(cp.config.protocol.tasks.len())
                )
            }
        }
    }
    s += "\n## Generations\n\n| generation | best | mean | best so far |\n|---|---|---|---|\n";
    for g in &cp.generations {
        s += &format!(
            "| {} | {:.4} | {:.4} | {:.4} |\n",
            g.generation, g.best, g.mean, g.best_so_far
        );
    }
    s
}

/// `fitness.svg`: best and mean fitness per generation, with Adam's 1.0 as a dashed line.
pub fn fitness_svg(stats: &[GenerationStats]) -> String {
    let (w, h, pad) = (640.0, 360.0, 48.0);
    let values = stats
        .iter()
        .flat_map(|g| [g.best, g.mean])
        .filter(|v| v.is_finite())
        .chain([1.0]);
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    let (lo, hi) = (
        lo - 0.05 * (hi - lo).max(0.1),
        hi + 0.05 * (hi - lo).max(0.1),
    );
    let n = stats.len().max(2) as f64 - 1.0;
    let x = |i: usize| pad + (w - 2.0 * pad) * i as f64 / n;
    let y = |v: f64| h - pad - (h - 2.0 * pad) * (v - lo) / (hi - lo);
    let line = |f: &dyn Fn(&GenerationStats) -> f64| {
        stats
            .iter()
            .enumerate()
            .map(|(i, g)| format!("{:.1},{:.1}", x(i), y(f(g))))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n");
    s += &format!("<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n");
    s += &format!(
        "<line x1=\"{pad}\" y1=\"{0}\" x2=\"{1}\" y2=\"{0}\" stroke=\"black\"/>\n",
        h - pad,
        w - pad
    );
    s += &format!(
        "<line x1=\"{pad}\" y1=\"{pad}\" x2=\"{pad}\" y2=\"{}\" stroke=\"black\"/>\n",
        h - pad
    );
    for k in 0..=4 {
        let v = lo + (hi - lo) * k as f64 / 4.0;
        s += &format!(
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{v:.3}</text>\n",
            pad - 4.0,
            y(v) + 4.0
        );
    }
    s += &format!("<line x1=\"{pad}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#d62728\" stroke-dasharray=\"6 4\"/>\n", y(1.0), w - pad);
    s += &format!(
        "<text x=\"{}\" y=\"{:.1}\" fill=\"#d62728\">Adam = 1.0</text>\n",
        w - pad - 70.0,
        y(1.0) - 4.0
    );
    s += &format!(
        "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\" points=\"{}\"/>\n",
        line(&|g| g.best)
    );
    s += &format!(
        "<polyline fill=\"none\" stroke=\"#7f7f7f\" stroke-width=\"2\" points=\"{}\"/>\n",
        line(&|g| g.mean.max(lo))
    );
    s += &format!(
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">generation</text>\n",
        w / 2.0,
        h - 12.0
    );
    s += &format!("<text x=\"{pad}\" y=\"20\"><tspan fill=\"#1f77b4\">best</tspan> and <tspan fill=\"#7f7f7f\">mean</tspan> fitness vs Adam per generation</text>\n");
    s += "</svg>\n";
    s
}
