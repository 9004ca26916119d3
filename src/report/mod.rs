//! What a researcher reads: replay tables, the run summary, its plots and `evolve status`.
//! It formats the search's records and scores, and computes no fitness.
pub mod doctor;
pub mod export;
pub mod generalization;
pub mod lineage;
pub mod progress;
pub mod replay;
pub mod sensitivity;
pub mod target;
use crate::genome::Genome;
use crate::report::generalization::Generalization;
use crate::search::records::{Checkpoint, Evaluation, GenerationStats, Stage};
use crate::train::fitness::{Paired, Score, TaskScore};
use plotters::coord::Shift;
use plotters::prelude::*;
use serde::Serialize;
use std::time::Duration;

/// One genome's replay result.
#[derive(Serialize)]
pub struct ReplayEntry {
    pub name: String,
    pub file: String,
    pub hash: String,
    pub genome: Genome,
    pub score: Score,
    /// Against Adam on the same (task, seed) runs.
    pub paired: Option<Paired>,
}

/// The `--json` document of `evolve replay`.
#[derive(Serialize)]
pub struct ReplayDocument {
    pub protocol: crate::train::Protocol,
    pub device: String,
    pub baseline: Vec<TaskScore>,
    pub genomes: Vec<ReplayEntry>,
    /// With `--lr-scale`: every genome and Adam at each learning-rate scale.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lr_sensitivity: Vec<sensitivity::Point>,
    /// With `--eval-every`: the genome whose final accuracy is the target, and every genome's
    /// time to it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub time_to_target: Vec<target::TimeToTarget>,
}

/// A plain-text table: per genome and task, accuracy mean ± std over seeds on the scoring split,
/// test accuracy (reported, never selected on), fitness, Δ and % vs Adam, wall time; then each
/// genome's aggregate and its paired comparison with Adam on the same seeds.
pub fn replay_table(doc: &ReplayDocument) -> String {
    let mut out = format!(
        "{:<28} {:<10} {:>16} {:>8} {:>8} {:>9} {:>8} {:>8}\n",
        "genome", "task", "val acc", "test acc", "fitness", "Δ adam", "% adam", "time"
    );
    for entry in &doc.genomes {
        for (t, b) in entry.score.tasks.iter().zip(&doc.baseline) {
            let diverged = if t.diverged() { " (diverged)" } else { "" };
            let text = doc
                .protocol
                .tasks
                .iter()
                .any(|task| task.name == t.task && !task.dataset.is_image());
            let bits = match (text, t.bits_per_byte()) {
                (true, Some(bits)) => format!("  {bits:.3} bits/byte"),
                _ => String::new(),
            };
            out += &format!(
                "{:<28} {:<10} {:>7.2}% ± {:>5.2} {:>8} {:>8.4} {:>+9.4} {:>+7.1}% {:>7.1}s{}{}\n",
                truncate(&entry.name, 28),
                truncate(&t.task, 10),
                100.0 * t.score_acc_mean,
                100.0 * t.score_acc_std,
                percent(t.test_acc_mean),
                t.fitness,
                t.fitness - b.fitness,
                100.0 * (t.fitness / b.fitness - 1.0),
                t.seconds,
                bits,
                diverged
            );
        }
        out += &format!(
            "{:<28} {:<10} {:>16} {:>8} {:>8.4} {:>9} {:>7.3}× {:>7.1}s\n",
            "",
            "aggregate",
            "",
            "",
            entry.score.raw,
            "",
            entry.score.vs_adam,
            entry.score.seconds()
        );
        if let Some(p) = &entry.paired {
            out += &format!("{:<28} {:<10} {}\n", "", "vs Adam", paired_text(p));
        }
    }
    if !doc.lr_sensitivity.is_empty() {
        out += &sensitivity::table(&doc.lr_sensitivity);
    }
    if let (Some(name), false) = (&doc.target, doc.time_to_target.is_empty()) {
        out += &target::table(name, &doc.time_to_target);
    }
    out
}

/// `wins 5/6 runs, Δ fitness +0.0120 (95% CI −0.0030 … +0.0270)`.
pub fn paired_text(p: &Paired) -> String {
    if !p.ci95.is_finite() {
        return format!(
            "wins {}/{} paired runs, Δ fitness {:+.4} (one pair: no interval)",
            p.wins, p.runs, p.mean_diff
        );
    }
    format!(
        "wins {}/{} paired runs, Δ fitness {:+.4} (95% CI {:+.4} … {:+.4})",
        p.wins,
        p.runs,
        p.mean_diff,
        p.mean_diff - p.ci95,
        p.mean_diff + p.ci95
    )
}

fn percent(x: Option<f64>) -> String {
    x.map_or("—".into(), |x| format!("{:.2}%", 100.0 * x))
}

/// The generalization report as Markdown (a section of `summary.md`, and `evolve report`).
pub fn generalization_markdown(g: &Generalization) -> String {
    let tasks: Vec<String> = g
        .held_out_protocol
        .tasks
        .iter()
        .map(|t| format!("{} ({} steps)", t.name, t.steps))
        .collect();
    let mut s = format!(
        "## Generalization: the search's best on the held-out protocol\n\nHeld-out protocol: {} × {} seed(s) (seed base {}). Scores are fitness / Adam's on each protocol (Adam = 1.0); accuracy is on each task's scoring split, test accuracy is reported only.\n\n",
        tasks.join(", "),
        g.held_out_protocol.seeds,
        g.held_out_protocol.seed
    );
    s += "| rank | genome | search (seeds) | held out | held-out tasks: vs Adam, acc, test acc (Adam's) | vs Adam, paired |\n|---|---|---|---|---|---|\n";
    for r in &g.rows {
        let tasks: Vec<String> = r
            .tasks
            .iter()
            .map(|t| {
                let bits =
                    |b: Option<f64>| b.map_or(String::new(), |b| format!(", {b:.3} bits/byte"));
                format!(
                    "{} {:.3}×, {:.2}%, test {}{} ({:.2}%, test {}{})",
                    t.task,
                    t.vs_adam,
                    100.0 * t.score_acc,
                    percent(t.test_acc),
                    bits(t.bits_per_byte),
                    100.0 * t.adam_score_acc,
                    percent(t.adam_test_acc),
                    bits(t.adam_bits_per_byte)
                )
            })
            .collect();
        let name = match r.label == r.hash {
            true => format!("`{}`", r.hash),
            false => format!("`{}` ({})", r.label, r.hash),
        };
        s += &format!(
            "| {} | {name} | {} ({}) | {} | {} | {} |\n",
            r.rank,
            match r.search.is_finite() {
                true => format!("{:.4}", r.search),
                false => "—".into(),
            },
            r.search_seeds,
            r.held_out
                .map_or("not checked yet".into(), |h| format!("**{h:.4}**")),
            tasks.join("; "),
            r.paired.as_ref().map_or("—".into(), paired_text)
        );
    }
    if let Some(t) = &g.held_out_tuned {
        let against: Vec<String> = g
            .rows
            .iter()
            .filter_map(|r| Some(format!("rank {} {:.4}×", r.rank, r.held_out_vs_tuned?)))
            .collect();
        s += &format!(
            "\nAgainst the held-out tuned baseline `{}` ({}; {:.4}× Adam held out): {}.\n",
            t.label,
            t.genome,
            t.vs_adam,
            against.join(", ")
        );
    }
    if let Some(t) = &g.search_tuned {
        s += &format!(
            "The search protocol's tuned baseline is `{}` at {:.4}× Adam.\n",
            t.label, t.vs_adam
        );
    }
    for c in &g.comparators {
        let num = |x: Option<f64>| x.map_or("—".into(), |x| format!("{x:.4}×"));
        let what = match c.label == crate::genome::PUBLISHED {
            true => "the published genome",
            false => "the comparator",
        };
        s += &format!(
            "Vs {what} `{}` (compared with, not a parent): {:.4}× Adam held out, {} the tuned baseline; best.json is {} it.\n",
            c.label,
            c.vs_adam,
            num(c.vs_tuned),
            num(c.best_vs_it)
        );
    }
    s += &format!(
        "\nRank correlation (Spearman) between search and held-out scores: {}.\n\n{}\n\n",
        g.rank_correlation
            .map_or("needs 3 genomes checked".into(), |r| format!("{r:.3}")),
        g.verdict
    );
    s
}

pub(crate) fn truncate(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        s.chars().take(n - 1).collect::<String>() + "…"
    }
}

/// `summary.md`: the run in numbers, its best genomes in words, the generalization report, the
/// best against the shipped baselines and the generation log.
pub fn summary_markdown(cp: &Checkpoint, history: &[Evaluation]) -> String {
    let mut s = String::from("# evolve run summary\n\n");
    s += &summary_header(cp);
    s += &summary_best(cp);
    if let Some(winner) = cp.winner() {
        if let Some(sentence) = lineage::seed_sentence(history, &winner.hash) {
            s += &format!("{sentence}\n\n");
        }
    }
    if let Some(g) = crate::report::generalization::generalization(cp) {
        s += &generalization_markdown(&g);
    }
    s += &summary_baselines(cp);
    if let Some(winner) = cp.winner() {
        s += "\n";
        s += &lineage::lineage_markdown("best.json", &lineage::ancestry(history, &winner.hash));
    }
    s += "\n## Generations\n\n| generation | best | mean | best so far |\n|---|---|---|---|\n";
    for g in &cp.logbook.generations {
        s += &format!(
            "| {} | {:.4} | {:.4} | {:.4} |\n",
            g.generation, g.best, g.mean, g.best_so_far
        );
    }
    s
}

/// How far the run got, what it cost, and its protocol.
fn summary_header(cp: &Checkpoint) -> String {
    let search = &cp.config.search;
    let mut s = format!(
        "Generations {} of {} · population {} · evaluations {} ({} trained, {} reused) · **total training steps {}**\n\n",
        cp.population.generation.min(search.generations),
        search.generations,
        search.population,
        cp.logbook.evaluations,
        cp.logbook.evaluations - cp.logbook.reused,
        cp.logbook.reused,
        cp.logbook.total_steps
    );
    let tasks: Vec<String> = cp
        .config
        .protocol
        .tasks
        .iter()
        .map(|t| match &t.command {
            Some(c) => format!(
                "{} (command `{}`, {} steps)",
                t.name,
                c.argv.join(" "),
                t.steps
            ),
            None => format!(
                "{} ({}, {} steps, batch {}, subset {})",
                t.name,
                serde_json::to_string(&t.model)
                    .unwrap_or_default()
                    .trim_matches('"'),
                t.steps,
                t.batch,
                t.train_subset
            ),
        })
        .collect();
    let f = &cp.config.fidelity;
    if f.enabled {
        s += &format!("Multi-fidelity selection: every new genome screened on {:.1}% of the steps, the best {:.0}% (at least one) trained in full.\n\n", 100.0 * f.budget, 100.0 * f.promote);
    }
    s += &format!("Protocol: {} × {} seed(s). Fitness is the mean over tasks of the published fitness divided by Adam's (Adam = 1.0).\n\n", tasks.join(", "), cp.config.protocol.seeds);
    s
}

/// The best genome held out and the best by search score, each in words.
fn summary_best(cp: &Checkpoint) -> String {
    let described = |e: &Evaluation, protocol: &str| {
        format!(
            "`{}` (generation {}, #{}, hash `{}`): **{:.4}× Adam** on the {protocol} over {} seed(s), raw fitness {:.4}\n\n    {}\n\n",
            e.genome.label(),
            e.generation,
            e.index,
            e.hash,
            e.score.vs_adam,
            e.seeds,
            e.score.raw,
            e.genome.describe()
        )
    };
    let mut s = String::new();
    if let Some(winner) = &cp.hall_of_fame.best_holdout {
        s += "## Best genome (best.json: chosen on the held-out protocol)\n\n";
        s += &described(winner, "held-out protocol");
    }
    if let Some(best) = cp.hall_of_fame.best() {
        s += match cp.config.holdout {
            Some(_) => "## Best by search score (best-search.json)\n\n",
            None => "## Best genome\n\n",
        };
        s += &described(best, "search protocol");
    }
    s
}

/// The best genomes and the shipped ones, side by side on the search protocol.
fn summary_baselines(cp: &Checkpoint) -> String {
    let tasks = cp.config.protocol.tasks.len();
    let mut s = String::from(
        "## Best vs the shipped baselines (search protocol)\n\n| genome | vs Adam | raw fitness |",
    );
    for t in &cp.config.protocol.tasks {
        s += &format!(" {} acc | {} test acc |", t.name, t.name);
    }
    s += "\n|---|---|---|";
    s += &"---|---|".repeat(tasks);
    s += "\n";
    let mut rows: Vec<(String, Option<&Score>)> = Vec::new();
    if let Some(held) = &cp.hall_of_fame.best_holdout {
        rows.push((
            format!("**best held out** ({})", held.genome.label()),
            cp.stages.full.memo.get(&held.hash),
        ));
    }
    if let Some(best) = cp.hall_of_fame.best() {
        let what = match cp.config.holdout {
            Some(_) => "best by search score",
            None => "best",
        };
        rows.push((
            format!("**{what}** ({})", best.genome.label()),
            Some(&best.score),
        ));
    }
    for (name, _) in crate::genome::SHIPPED {
        let hash = crate::genome::shipped(name).hash();
        rows.push((name.to_string(), cp.stages.full.memo.get(&hash)));
    }
    for (name, score) in rows {
        let Some(score) = score else {
            s += &format!(
                "| {name} | not evaluated in this run | |{}\n",
                " | |".repeat(tasks)
            );
            continue;
        };
        s += &format!("| {name} | {:.4} | {:.4} |", score.vs_adam, score.raw);
        for t in &score.tasks {
            s += &format!(
                " {:.2}% | {} |",
                100.0 * t.score_acc_mean,
                percent(t.test_acc_mean)
            );
        }
        s += "\n";
    }
    s
}

/// `fitness.svg`: every evaluated genome as a dot at its generation (screened ones hollow), the
/// best and mean selection fitness per generation as lines, Adam at 1.0.
pub fn fitness_svg(stats: &[GenerationStats], history: &[Evaluation]) -> String {
    svg(|root| draw_fitness(root, stats, history))
}

/// `progress.svg`: the best full score found so far against the training steps spent so far
/// (what the search paid for what it found).
pub fn progress_svg(history: &[Evaluation]) -> String {
    svg(|root| draw_progress(root, history))
}

pub(crate) type Area<'a> = DrawingArea<SVGBackend<'a>, Shift>;
pub(crate) type Drawn = std::result::Result<(), DrawingAreaErrorKind<std::io::Error>>;

pub(crate) fn svg(draw: impl for<'a> FnOnce(&Area<'a>) -> Drawn) -> String {
    let mut text = String::new();
    {
        let root = SVGBackend::with_string(&mut text, (760, 440)).into_drawing_area();
        draw(&root).expect("drawing into a string does not fail");
        root.present().expect("drawing into a string does not fail");
    }
    text
}

/// A y range holding every finite value and Adam's 1.0, with a margin.
pub(crate) fn value_range(values: impl Iterator<Item = f64>) -> std::ops::Range<f64> {
    let (lo, hi) = values
        .filter(|v| v.is_finite())
        .chain([1.0])
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
    let pad = 0.05 * (hi - lo).max(0.1);
    (lo - pad)..(hi + pad)
}

fn integer_label(x: &f64) -> String {
    match (x - x.round()).abs() < 1e-9 {
        true => format!("{}", x.round()),
        false => String::new(),
    }
}

fn draw_fitness(root: &Area, stats: &[GenerationStats], history: &[Evaluation]) -> Drawn {
    root.fill(&WHITE)?;
    let generations = history
        .iter()
        .map(|e| e.generation + 1)
        .chain(stats.iter().map(|g| g.generation + 1))
        .max()
        .unwrap_or(1);
    let y = value_range(
        history
            .iter()
            .map(|e| e.score.vs_adam)
            .chain(stats.iter().flat_map(|g| [g.best, g.mean])),
    );
    let mut chart = ChartBuilder::on(root)
        .caption("fitness vs Adam, per generation", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(-0.4..(generations as f64 - 0.6), y)?;
    chart
        .configure_mesh()
        .x_desc("generation")
        .y_desc("fitness / Adam's fitness")
        .x_labels(generations.min(25) + 1)
        .x_label_formatter(&integer_label)
        .draw()?;
    draw_genomes(&mut chart, history)?;
    draw_generation_lines(&mut chart, stats, generations)?;
    legend(&mut chart)
}

/// The series labels, boxed, at the lower right.
pub(crate) fn legend<'a>(chart: &mut FitnessChart<'a, 'a>) -> Drawn {
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

/// The colour of the full protocol's dots and of the best-of-generation line.
const BLUE_LINE: RGBColor = RGBColor(31, 119, 180);

/// The fitness chart's axes: generations across, fitness vs Adam up.
pub(crate) type FitnessChart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// One dot per evaluated genome at its generation: filled for the full protocol, hollow for
/// screening only.
fn draw_genomes(chart: &mut FitnessChart, history: &[Evaluation]) -> Drawn {
    let at = |e: &Evaluation| (e.generation as f64, e.score.vs_adam);
    let orange = RGBColor(255, 127, 14);
    chart
        .draw_series(
            history
                .iter()
                .filter(|e| e.ran_in_full())
                .map(|e| Circle::new(at(e), 3, BLUE_LINE.mix(0.45).filled())),
        )?
        .label("a genome, full protocol")
        .legend(move |(x, y)| Circle::new((x + 10, y), 3, BLUE_LINE.mix(0.45).filled()));
    chart
        .draw_series(
            history
                .iter()
                .filter(|e| e.stage == Stage::Screen)
                .map(|e| Circle::new(at(e), 3, orange.stroke_width(1))),
        )?
        .label("a genome, screening only")
        .legend(move |(x, y)| Circle::new((x + 10, y), 3, orange.stroke_width(1)));
    Ok(())
}

/// The generation's best and mean, and Adam's level.
fn draw_generation_lines(
    chart: &mut FitnessChart,
    stats: &[GenerationStats],
    generations: usize,
) -> Drawn {
    let line = |f: fn(&GenerationStats) -> f64| {
        stats
            .iter()
            .map(move |g| (g.generation as f64, f(g)))
            .collect::<Vec<_>>()
    };
    chart
        .draw_series(LineSeries::new(line(|g| g.best), BLUE_LINE.stroke_width(2)))?
        .label("best of the generation")
        .legend(move |(x, y)| {
            PathElement::new(vec![(x, y), (x + 20, y)], BLUE_LINE.stroke_width(2))
        });
    let grey = RGBColor(127, 127, 127);
    chart
        .draw_series(LineSeries::new(line(|g| g.mean), grey.stroke_width(2)))?
        .label("mean of the generation")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], grey.stroke_width(2)));
    let red = RGBColor(214, 39, 40);
    chart
        .draw_series(LineSeries::new(
            [(-0.4, 1.0), (generations as f64 - 0.6, 1.0)],
            red.stroke_width(1),
        ))?
        .label("Adam = 1.0")
        .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], red));
    Ok(())
}

fn draw_progress(root: &Area, history: &[Evaluation]) -> Drawn {
    root.fill(&WHITE)?;
    let mut spent = 0u64;
    let mut best = f64::NEG_INFINITY;
    let mut points = Vec::new();
    for e in history {
        spent += e.steps;
        if e.ran_in_full() && e.score.vs_adam > best {
            best = e.score.vs_adam;
        }
        if best.is_finite() {
            points.push((spent as f64, best));
        }
    }
    let x_end = (spent as f64).max(1.0);
    let mut chart = ChartBuilder::on(root)
        .caption("best so far vs training steps spent", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..x_end, value_range(points.iter().map(|p| p.1)))?;
    chart
        .configure_mesh()
        .x_desc("training steps (cumulative, baseline included)")
        .y_desc("best fitness / Adam's so far")
        .x_label_formatter(&|x| format!("{x:.0}"))
        .draw()?;
    let blue = RGBColor(31, 119, 180);
    chart.draw_series(LineSeries::new(
        points.iter().copied(),
        blue.stroke_width(2),
    ))?;
    chart.draw_series(points.iter().map(|&p| Circle::new(p, 2, blue.filled())))?;
    let red = RGBColor(214, 39, 40);
    chart.draw_series(LineSeries::new(
        [(0.0, 1.0), (x_end, 1.0)],
        red.stroke_width(1),
    ))?;
    Ok(())
}

/// `evolve status RUN`: where a run stands, from its checkpoint and history (no lock needed).
/// `holder` is the PID of the process running it, `elapsed` the wall time since it started.
pub fn status_text(
    cp: &Checkpoint,
    history: &[Evaluation],
    holder: Option<&str>,
    elapsed: Duration,
) -> String {
    let search = &cp.config.search;
    let (done, total) = cp.scored();
    let mut s = match holder {
        Some(pid) => format!("running (PID {pid})\n"),
        None if done == total => "finished\n".to_string(),
        None => "not running (resume with `evolve --resume`)\n".to_string(),
    };
    s += &format!(
        "generation {} of {} · genomes scored {done} of {total} · evaluations {} ({} trained, {} reused) · training steps {}\n",
        (cp.population.generation + usize::from(cp.population.generation < search.generations)).min(search.generations),
        search.generations,
        cp.logbook.evaluations,
        cp.logbook.evaluations - cp.logbook.reused,
        cp.logbook.reused,
        cp.logbook.total_steps
    );
    let eta = match holder {
        Some(_) if done < total => format!(" · ETA {}", eta(elapsed, done, total - done)),
        _ => String::new(),
    };
    s += &format!("elapsed {}{eta}\n", clock(elapsed));
    if let Some(held) = &cp.hall_of_fame.best_holdout {
        s += &format!(
            "best held out: {:.4}× Adam on the held-out protocol  {}  (best.json)\n    {}\n",
            held.score.vs_adam,
            held.genome.label(),
            held.genome.describe()
        );
    }
    if let Some(best) = cp.hall_of_fame.best() {
        s += &format!(
            "best so far by search score: {:.4}× Adam  {}  (generation {}, #{})\n    {}\n",
            best.score.vs_adam,
            best.genome.label(),
            best.generation,
            best.index,
            best.genome.describe()
        );
    }
    s + &top_five(history)
}

/// The five best distinct genomes of `history` trained in full, one line each.
fn top_five(history: &[Evaluation]) -> String {
    let mut top: Vec<&Evaluation> = Vec::new();
    let mut full: Vec<&Evaluation> = history.iter().filter(|e| e.ran_in_full()).collect();
    full.sort_by(|a, b| b.score.vs_adam.total_cmp(&a.score.vs_adam));
    for e in full {
        if top.len() < 5 && !top.iter().any(|t| t.hash == e.hash) {
            top.push(e);
        }
    }
    let lines = top.iter().enumerate().map(|(rank, e)| {
        format!(
            "  {}. {:.4}× Adam  {}  {}\n",
            rank + 1,
            e.score.vs_adam,
            e.hash,
            e.genome.describe()
        )
    });
    match top.is_empty() {
        true => String::new(),
        false => "top 5 (full protocol):\n".to_string() + &lines.collect::<String>(),
    }
}

/// The time left for `left` more genomes at the pace of `done` in `elapsed`.
pub fn eta(elapsed: Duration, done: usize, left: usize) -> String {
    let seconds = elapsed.as_secs_f64() * left as f64 / done as f64;
    match (left, Duration::try_from_secs_f64(seconds)) {
        (0, _) => "done".into(),
        (_, Ok(d)) if done > 0 => clock(d),
        _ => "unknown yet".into(),
    }
}

/// A duration as `1h 02m 03s`, `4m 05s` or `6s`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, m, sec) => format!("{m}m {sec:02}s"),
        (h, m, sec) => format!("{h}h {m:02}m {sec:02}s"),
    }
}

/// `evolve data verify`: per dataset, counts, label range, file sizes and class histograms.
pub fn verify_text(
    reports: &[crate::train::data::DatasetReport],
    absent: &[crate::train::data::DatasetKind],
    root: &std::path::Path,
) -> String {
    let mut s = String::new();
    for r in reports {
        s += &format!(
            "{} ({}): {} train, {} test, labels {}..={}\n",
            r.dataset.dir_name(),
            r.folder.display(),
            r.train,
            r.test,
            r.label_range.0,
            r.label_range.1
        );
        for (file, size) in &r.files {
            s += &format!("  {file:<32} {size:>12} bytes\n");
        }
        if !r.train_histogram.is_empty() {
            s += &format!("  train histogram: {:?}\n", r.train_histogram);
            s += &format!("  test histogram:  {:?}\n", r.test_histogram);
        }
        match &r.checksums {
            Some(Ok(n)) => s += &format!("  {n} files match Debian's fortunes (SHA-256)\n"),
            Some(Err(problem)) => s += &format!("  {problem}\n"),
            None => {}
        }
    }
    for kind in absent {
        s += &format!(
            "{}: not present under {}\n",
            kind.dir_name(),
            root.display()
        );
    }
    s
}
