//! How a run shows its progress: bars on a terminal; plain, timestamped lines when stderr is a
//! log (nohup, a Slurm log, CI), the way cargo degrades; nothing with `--quiet`.
use crate::genome::Genome;
use crate::report::eta;
use crate::search::{Checkpoint, Evaluation, GenerationStats, Observer, Silent, Stage};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::cell::Cell;
use std::io::IsTerminal;
use std::rc::Rc;
use std::time::{Instant, SystemTime};

/// The observer for a run started from the command line.
pub fn observer(quiet: bool) -> Rc<dyn Observer> {
    match (quiet, std::io::stderr().is_terminal()) {
        (true, _) => Rc::new(Silent),
        (false, true) => Rc::new(Bars::new()),
        (false, false) => Rc::new(Lines::new()),
    }
}

/// A bar of training steps for `evolve replay`, and the callback that moves it.
pub fn steps_bar() -> (ProgressBar, Rc<dyn Fn(u64, u64)>) {
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template("training [{bar:30}] {pos}/{len} steps {elapsed}<{eta}")
            .expect("valid template"),
    );
    let shown = bar.clone();
    let on_steps = Rc::new(move |done, total| {
        shown.set_length(total);
        shown.set_position(done);
    });
    (bar, on_steps)
}

/// A stage as log lines show it: its name, with the held-out stage spelled for people.
fn stage_name(stage: Stage) -> &'static str {
    shown(stage.name())
}

/// `label` (a stage's name in files) as log lines show it.
fn shown(label: &'static str) -> &'static str {
    match label {
        "holdout" => "held-out",
        other => other,
    }
}

/// The estimated time left, from this process's pace (what it scored since it started).
struct Pace {
    start: Instant,
    scored_at_start: Cell<Option<usize>>,
}

impl Pace {
    fn new() -> Pace {
        Pace {
            start: Instant::now(),
            scored_at_start: Cell::new(None),
        }
    }

    fn begin(&self, cp: &Checkpoint) {
        self.scored_at_start.set(Some(cp.scored().0));
    }

    fn eta(&self, cp: &Checkpoint) -> String {
        let (done, total) = cp.scored();
        let here = done.saturating_sub(self.scored_at_start.get().unwrap_or(0));
        eta(self.start.elapsed(), here, total.saturating_sub(done))
    }
}

/// Plain lines on stderr, one per evaluation and one per generation, each with a UTC timestamp.
pub struct Lines {
    pace: Pace,
}

impl Lines {
    pub fn new() -> Lines {
        Lines { pace: Pace::new() }
    }

    fn say(&self, line: String) {
        let now = humantime::format_rfc3339_seconds(SystemTime::now());
        eprintln!("[{now}] {line}");
    }
}

impl Default for Lines {
    fn default() -> Self {
        Lines::new()
    }
}

impl Observer for Lines {
    fn started(&self, cp: &Checkpoint) {
        self.pace.begin(cp);
        let (done, total) = cp.scored();
        self.say(format!(
            "Adam baseline ready; genomes scored {done}/{total}; {} trained side by side",
            cp.batch_candidates
        ));
    }

    fn evaluation_done(&self, e: &Evaluation, _cp: &Checkpoint) {
        let how = match e.cached {
            true => "reused".to_string(),
            false => format!("{} steps {:.1}s", e.steps, e.seconds),
        };
        self.say(format!(
            "gen {} #{} {}: {:.4}× Adam over {} seed(s) ({how}) {}",
            e.generation,
            e.index,
            shown(e.stage_label()),
            e.score.vs_adam,
            e.seeds,
            e.genome.describe()
        ));
    }

    fn generation_done(&self, g: &GenerationStats, cp: &Checkpoint) {
        let (done, total) = cp.scored();
        self.say(format!(
            "gen {} done: best {:.4} mean {:.4} best so far {:.4} (Adam = 1.0); genomes {done}/{total}; {} training steps; ETA {}",
            g.generation,
            g.best,
            g.mean,
            g.best_so_far,
            cp.logbook.total_steps,
            self.pace.eta(cp)
        ));
    }
}

/// Two bars (genomes scored with ETA; steps of the window in training) and a line per generation.
pub struct Bars {
    multi: MultiProgress,
    genomes: ProgressBar,
    steps: ProgressBar,
}

impl Bars {
    pub fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stderr());
        let genomes = multi.add(ProgressBar::new(0));
        genomes.set_style(
            ProgressStyle::with_template("genomes  [{bar:30}] {pos}/{len} {elapsed}<{eta} {msg}")
                .expect("valid template"),
        );
        let steps = multi.add(ProgressBar::new(0));
        steps.set_style(
            ProgressStyle::with_template("training [{bar:30}] {pos}/{len} steps {msg}")
                .expect("valid template"),
        );
        steps.set_message("adam (baseline)");
        Bars {
            multi,
            genomes,
            steps,
        }
    }

    fn scored(&self, cp: &Checkpoint) {
        let (done, total) = cp.scored();
        self.genomes.set_length(total as u64);
        self.genomes.set_position(done as u64);
    }
}

impl Default for Bars {
    fn default() -> Self {
        Bars::new()
    }
}

impl Observer for Bars {
    fn started(&self, cp: &Checkpoint) {
        self.genomes.reset_elapsed();
        self.scored(cp);
    }

    fn candidate_started(&self, generation: usize, index: usize, genome: &Genome, stage: Stage) {
        self.genomes.set_message(format!(
            "gen {generation} #{index} {}: {}",
            stage_name(stage),
            genome.label()
        ));
        let line = genome.describe();
        self.steps
            .set_message(line.chars().take(70).collect::<String>());
    }

    fn steps(&self, done: u64, total: u64) {
        self.steps.set_length(total);
        self.steps.set_position(done);
    }

    fn evaluation_done(&self, _e: &Evaluation, cp: &Checkpoint) {
        self.scored(cp);
    }

    fn generation_done(&self, g: &GenerationStats, cp: &Checkpoint) {
        self.scored(cp);
        let _ = self.multi.println(format!(
            "gen {:>3}: best {:.4}  mean {:.4}  best so far {:.4}  (vs Adam = 1.0; {} evaluations, {} training steps)",
            g.generation, g.best, g.mean, g.best_so_far, cp.logbook.evaluations, cp.logbook.total_steps
        ));
    }

    fn finished(&self, _cp: &Checkpoint) {
        self.genomes.finish_and_clear();
        self.steps.finish_and_clear();
    }
}
