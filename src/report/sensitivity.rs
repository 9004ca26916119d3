//! Learning-rate sensitivity (`evolve replay --lr-scale`): each genome, Adam included, trained at
//! scaled learning rates, as the Lion paper's robustness figures show it. A rule that only wins
//! at its own learning rate shows at a glance.
use crate::genome::Genome;
use crate::report::{svg, value_range, Area, Drawn};
use plotters::prelude::*;
use serde::Serialize;

/// The most a learning rate may be scaled by, either way.
pub const MAX_SCALE: f64 = 1000.0;

/// One genome at one learning-rate scale.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub name: String,
    pub scale: f64,
    pub lr: f64,
    /// Fitness over the unscaled Adam baseline's (Adam at scale 1 is 1.0).
    pub vs_adam: f64,
    pub diverged: bool,
}

/// `genome` with its learning rate times `scale` (its name kept, so the lines read by name).
pub fn scaled(genome: &Genome, scale: f64) -> Genome {
    Genome {
        lr: genome.lr * scale,
        ..genome.clone()
    }
}

/// Checks `--lr-scale`: each a finite scale in [1/MAX_SCALE, MAX_SCALE], without repeats.
pub fn check_scales(scales: &[f64]) -> std::result::Result<(), String> {
    for &s in scales {
        if !(s.is_finite() && (1.0 / MAX_SCALE..=MAX_SCALE).contains(&s)) {
            return Err(format!(
                "--lr-scale {s}: allowed: scales in [{}, {MAX_SCALE}], comma-separated",
                1.0 / MAX_SCALE
            ));
        }
    }
    let mut sorted = scales.to_vec();
    sorted.sort_by(f64::total_cmp);
    if sorted.windows(2).any(|w| w[0] == w[1]) {
        return Err(format!("--lr-scale {scales:?}: a scale is repeated"));
    }
    Ok(())
}

/// The points as a table: one row per genome, one column per scale.
pub fn table(points: &[Point]) -> String {
    let mut scales: Vec<f64> = points.iter().map(|p| p.scale).collect();
    scales.sort_by(f64::total_cmp);
    scales.dedup();
    let mut names: Vec<&str> = Vec::new();
    for p in points {
        if !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    let mut out = format!(
        "\nlearning-rate sensitivity (fitness / Adam's at its own lr):\n{:<28}",
        "genome"
    );
    for s in &scales {
        out += &format!(" {:>9}", format!("{s}× lr"));
    }
    out += "\n";
    for name in names {
        out += &format!("{:<28}", crate::report::truncate(name, 28));
        for s in &scales {
            let cell = points
                .iter()
                .find(|p| p.name == name && p.scale == *s)
                .map_or("—".to_string(), |p| match p.diverged {
                    true => "diverged".to_string(),
                    false => format!("{:.3}×", p.vs_adam),
                });
            out += &format!(" {cell:>9}");
        }
        out += "\n";
    }
    out
}

/// The points as an SVG plot: fitness against the learning-rate scale (log axis), one line per
/// genome.
pub fn plot(points: &[Point]) -> String {
    svg(|root| draw(root, points))
}

fn draw(root: &Area, points: &[Point]) -> Drawn {
    root.fill(&WHITE)?;
    let logs: Vec<f64> = points.iter().map(|p| p.scale.log10()).collect();
    let (lo, hi) = logs
        .iter()
        .fold((0.0f64, 0.0f64), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    let pad = 0.05 * (hi - lo).max(0.5);
    let y = value_range(points.iter().filter(|p| !p.diverged).map(|p| p.vs_adam));
    let mut chart = ChartBuilder::on(root)
        .caption(
            "fitness vs Adam against the learning-rate scale",
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d((lo - pad)..(hi + pad), y)?;
    chart
        .configure_mesh()
        .x_desc("learning rate × (log scale)")
        .y_desc("fitness / Adam's fitness")
        .x_label_formatter(&|x| format!("{:.3}", 10f64.powf(*x)))
        .draw()?;
    let mut names: Vec<&str> = Vec::new();
    for p in points {
        if !names.contains(&p.name.as_str()) {
            names.push(&p.name);
        }
    }
    for (i, name) in names.into_iter().enumerate() {
        let colour = Palette99::pick(i).to_rgba();
        let mut line: Vec<(f64, f64)> = points
            .iter()
            .filter(|p| p.name == name && !p.diverged)
            .map(|p| (p.scale.log10(), p.vs_adam))
            .collect();
        line.sort_by(|a, b| a.0.total_cmp(&b.0));
        chart
            .draw_series(LineSeries::new(line.clone(), colour.stroke_width(2)))?
            .label(name.to_string())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2))
            });
        chart.draw_series(
            line.into_iter()
                .map(|xy| Circle::new(xy, 3, colour.filled())),
        )?;
    }
    crate::report::legend(&mut chart)
}
