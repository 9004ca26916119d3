//! The evolution loop, shaped like DEAP's `eaSimple`: each generation is
//! screen → promote → full → breed.
//!
//! Its records go to a `Store` (the run directory, see `run`). Resume is exact by construction:
//! evaluations depend only on (genome, protocol), windows of stacked genomes are planned by a pure
//! function of what is already known, the GA's random stream is in the checkpoint, and `history.jsonl` is cut
//! back to the length the checkpoint recorded, so an evaluation interrupted before its checkpoint
//! is simply redone.
pub mod ga;
pub mod records;
pub mod work;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::genome::{adam_baseline, adam_hash, Genome};
use crate::search::ga::Ga;
use crate::train::baseline;
use crate::train::fitness::{Score, TaskScore};
use crate::train::prune::Pruning;
pub use records::{
    Checkpoint, Cost, Evaluation, GenerationStats, HallOfFame, Logbook, Origin, Population, Stage,
    StageState, Stages, CHECKPOINT_VERSION, LEADERS,
};
use std::collections::HashSet;
use std::ops::Range;
use work::{Executor, WorkItem, WorkResult};

/// What the loop tells whoever watches it: the CLI draws progress bars or log lines, tests record.
pub trait Observer {
    /// The run is ready (baselines known) and about to evaluate.
    fn started(&self, _cp: &Checkpoint) {}
    /// A window of genomes starts training (`genome` is the first to train, at `index`).
    fn candidate_started(
        &self,
        _generation: usize,
        _index: usize,
        _genome: &Genome,
        _stage: Stage,
    ) {
    }
    /// Training steps done of the current window (or baseline).
    fn steps(&self, _done: u64, _total: u64) {}
    fn evaluation_done(&self, _evaluation: &Evaluation, _cp: &Checkpoint) {}
    fn generation_done(&self, _stats: &GenerationStats, _cp: &Checkpoint) {}
    fn finished(&self, _cp: &Checkpoint) {}
}

/// Watches nothing.
pub struct Silent;
impl Observer for Silent {}

/// What the loop works with: who trains its windows, and where its records go.
pub struct Context<'a> {
    pub exec: &'a mut dyn Executor,
    pub out: Out<'a>,
}

/// Where the loop's records go: the store keeps them (the run directory), the observer watches.
#[derive(Clone, Copy)]
pub struct Out<'a> {
    pub store: &'a dyn Store,
    pub observer: &'a dyn Observer,
}

/// Where the loop keeps its records (the run directory, in `run`).
pub trait Store {
    /// Saves the checkpoint.
    fn save(&self, cp: &Checkpoint) -> Result<()>;
    /// Appends one evaluation to the history; returns the history's new length in bytes.
    fn append(&self, evaluation: &Evaluation) -> Result<u64>;
    /// Writes the winner so far (`best.json`), after every window.
    fn best(&self, cp: &Checkpoint) -> Result<()>;
    /// Writes the reports (summary, plots), after every generation.
    fn reports(&self, cp: &Checkpoint) -> Result<()>;
}

/// The loop, as short as DEAP's `eaSimple`: the baselines, then for each generation left,
/// screen → promote → full (new genomes, then survivors on fresh seeds) → held-out check (when
/// due) → breed.
pub fn run(cx: &mut Context, mut cp: Checkpoint) -> Result<Checkpoint> {
    let stages = [
        (Stage::Full, true),
        (Stage::Screen, cp.config.fidelity.enabled),
        (Stage::Holdout, cp.config.holdout.is_some()),
    ];
    for (stage, _) in stages.iter().filter(|(_, on)| *on) {
        prepare_baseline(cx.exec, &mut cp, *stage)?;
    }
    cx.out.store.save(&cp)?;
    cx.out.observer.started(&cp);
    for (stage, _) in stages.iter().filter(|(_, on)| *on) {
        tune_stage(cx, &mut cp, *stage)?;
    }
    while cp.population.generation < cp.config.search.generations {
        if cp.config.fidelity.enabled {
            screen_stage(cx, &mut cp)?;
        }
        full_stage(cx, &mut cp)?;
        if holdout_due(&cp) {
            holdout_stage(cx, &mut cp)?;
        }
        let stats = generation_stats(&cp);
        cx.out.observer.generation_done(&stats, &cp);
        breed(&mut cp, stats)?;
        cx.out.store.save(&cp)?;
        cx.out.store.reports(&cp)?;
    }
    cx.out.observer.finished(&cp);
    Ok(cp)
}

/// A new run's first checkpoint: generation 0 is the named `seeds` (`Search::seeds`) filled up
/// with random genomes.
pub fn first_checkpoint(
    config: Config,
    batch_candidates: usize,
    seeds: Vec<(String, Genome)>,
) -> Checkpoint {
    let min_steps = config
        .protocol
        .tasks
        .iter()
        .map(|t| t.steps)
        .min()
        .unwrap_or(0);
    let mut ga = Ga::new(config.search.seed, config.ga.clone(), min_steps);
    let (population, origins): (Vec<Genome>, Vec<Origin>) = ga
        .initial_population(config.search.population, seeds)
        .into_iter()
        .map(|c| (c.genome, c.origin))
        .unzip();
    let empty = || StageState {
        results: vec![None; population.len()],
        ..StageState::default()
    };
    Checkpoint {
        version: CHECKPOINT_VERSION,
        config,
        batch_candidates,
        stages: Stages {
            screen: empty(),
            full: empty(),
            holdout: StageState::default(),
        },
        population: Population {
            generation: 0,
            reevaluate: vec![None; population.len()],
            genomes: population,
            origins,
        },
        hall_of_fame: HallOfFame {
            leaders: Vec::new(),
            best_holdout: None,
        },
        logbook: Logbook {
            generations: Vec::new(),
            total_steps: 0,
            evaluations: 0,
            reused: 0,
            history_len: 0,
        },
        ga,
    }
}

/// Screens every genome of the generation not yet known in full (multi-fidelity).
fn screen_stage(cx: &mut Context, cp: &mut Checkpoint) -> Result<()> {
    let unscreened: Vec<usize> = (0..cp.population.genomes.len())
        .filter(|&i| {
            cp.stages.full.results[i].is_none()
                && cp.stages.screen.results[i].is_none()
                && !cp
                    .stages
                    .full
                    .memo
                    .contains_key(&cp.population.genomes[i].hash())
        })
        .collect();
    let pass = candidates(cp, &unscreened);
    evaluate(cx, cp, &pass, Stage::Screen, 0)
}

/// Trains the promoted genomes under the full protocol: new ones on the protocol's seeds, then
/// survivors on their next seed group (noise-aware selection), one seed group at a time.
fn full_stage(cx: &mut Context, cp: &mut Checkpoint) -> Result<()> {
    let pending: Vec<usize> = promoted(&cp.stages.screen.results, cp.config.fidelity.promote)
        .into_iter()
        .filter(|&i| cp.stages.full.results[i].is_none())
        .collect();
    let mut groups: Vec<Option<u64>> = pending
        .iter()
        .map(|&i| cp.population.reevaluate[i])
        .collect();
    groups.sort();
    groups.dedup();
    for group in groups {
        let due: Vec<usize> = pending
            .iter()
            .copied()
            .filter(|&i| cp.population.reevaluate[i] == group)
            .collect();
        let pass = candidates(cp, &due);
        evaluate(cx, cp, &pass, Stage::Full, group.unwrap_or(0))?;
    }
    Ok(())
}

/// Trains the search's best genomes (and Adam) under the held-out protocol; `holdout.results`
/// records this generation's check by rank, so a resumed check picks up where it stopped.
fn holdout_stage(cx: &mut Context, cp: &mut Checkpoint) -> Result<()> {
    let candidates = held_out_candidates(cp);
    if cp.stages.holdout.results.len() != candidates.len() {
        cp.stages.holdout.results = vec![None; candidates.len()];
    }
    let pass: Vec<(usize, Genome)> = candidates
        .into_iter()
        .filter(|(rank, _)| cp.stages.holdout.results[*rank].is_none())
        .collect();
    evaluate(cx, cp, &pass, Stage::Holdout, 0)
}

/// Trains the tuning grid (`tuning`) under the protocol of `stage` (full or held out), once, at
/// the start: its best point is that protocol's tuned baseline. `tuning` records the grid's
/// evaluations by point, so a resumed run picks up where it stopped.
fn tune_stage(cx: &mut Context, cp: &mut Checkpoint, stage: Stage) -> Result<()> {
    let tune = match stage {
        Stage::Full => Stage::Tune,
        Stage::Holdout => Stage::HoldoutTune,
        _ => return Ok(()),
    };
    let Some(tuning) = &cp.config.tuning else {
        return Ok(());
    };
    let protocol = stage_protocol(cp, stage);
    let min_steps = protocol.tasks.iter().map(|t| t.steps).min().unwrap_or(0);
    let grid = tuning.grid(min_steps);
    let state = cp.stage_mut(stage);
    if state.tuning.len() != grid.len() {
        state.tuning = vec![None; grid.len()];
    }
    let pass: Vec<(usize, Genome)> = grid
        .into_iter()
        .enumerate()
        .filter(|(i, _)| state.tuning[*i].is_none())
        .collect();
    evaluate(cx, cp, &pass, tune, 0)
}

/// The genomes of this generation at `indices`, with their indices.
fn candidates(cp: &Checkpoint, indices: &[usize]) -> Vec<(usize, Genome)> {
    indices
        .iter()
        .map(|&i| (i, cp.population.genomes[i].clone()))
        .collect()
}

/// Whether this generation ends with a held-out check: every `every` generations and after the
/// last.
fn holdout_due(cp: &Checkpoint) -> bool {
    let done = cp.population.generation + 1;
    cp.config
        .holdout
        .as_ref()
        .is_some_and(|h| done.is_multiple_of(h.every) || done == cp.config.search.generations)
}

/// The search's `top` best distinct genomes so far, ranked (the index is the rank), then Adam
/// and the held-out tuned baseline (the winner held out must beat them there, or the baseline
/// is what `best.json` honestly holds), then the comparators (see `comparator`).
fn held_out_candidates(cp: &Checkpoint) -> Vec<(usize, Genome)> {
    let mut list: Vec<Genome> = held_out_leaders(cp).cloned().collect();
    let tuned = cp.stages.holdout.tuned().map(|e| e.genome.clone());
    let baselines = std::iter::once(adam_baseline()).chain(tuned);
    for baseline in baselines.chain(comparators(cp)) {
        if !list.iter().any(|g| g.hash() == baseline.hash()) {
            list.push(baseline);
        }
    }
    list.into_iter().enumerate().collect()
}

/// The search's `top` best distinct genomes so far, best first.
fn held_out_leaders(cp: &Checkpoint) -> impl Iterator<Item = &Genome> {
    let top = cp.config.holdout.as_ref().map_or(0, |h| h.top);
    cp.hall_of_fame.leaders.iter().take(top).map(|e| &e.genome)
}

/// The held-out protocol's comparators (none without one).
fn comparators(cp: &Checkpoint) -> Vec<Genome> {
    cp.config
        .holdout
        .as_ref()
        .map_or(Vec::new(), |h| h.comparator_genomes())
}

/// Whether the genome with `hash` is held out only to be compared with: a comparator that is
/// not also one of the search's leaders. It is never `best.json`, which holds what the search
/// found (or a baseline when it found nothing better).
fn comparator(cp: &Checkpoint, hash: &str) -> bool {
    comparators(cp).iter().any(|g| g.hash() == hash)
        && !held_out_leaders(cp).any(|g| g.hash() == hash)
}

/// Adam's scores under `stage`'s protocol: restored from the checkpoint, or trained now (counted
/// in the run's steps, and its cost kept for Adam's history line). Either way Adam's own score is
/// in the stage's memo, so the Adam genome is never retrained.
fn prepare_baseline(exec: &mut dyn Executor, cp: &mut Checkpoint, stage: Stage) -> Result<()> {
    if cp.stage(stage).baseline.is_none() {
        let clock = std::time::Instant::now();
        let steps = extend_baseline(exec, cp, stage, 0)?;
        cp.stage_mut(stage).baseline_cost = Some(Cost {
            steps,
            seconds: clock.elapsed().as_secs_f64(),
        });
        cp.logbook.total_steps += steps;
    }
    let seeds = stage_protocol(cp, stage).seeds as usize;
    let state = cp.stage_mut(stage);
    let baseline = state.baseline.clone().expect("just trained or restored");
    state
        .memo
        .entry(adam_hash().to_string())
        .or_insert_with(|| {
            let own: Vec<_> = baseline.iter().map(|t| t.first_runs(seeds)).collect();
            Score::new(own.clone(), &own).without_curves()
        });
    Ok(())
}

fn stage_protocol(cp: &Checkpoint, stage: Stage) -> crate::train::Protocol {
    cp.protocol(stage).expect("a stage the run has")
}

/// A window of `stage` on seed group `group`, as the executor gets it.
fn work_item(cp: &Checkpoint, stage: Stage, group: u64, genomes: Vec<Genome>) -> WorkItem {
    WorkItem {
        protocol: stage_protocol(cp, stage),
        group,
        genomes,
        batch_candidates: cp.batch_candidates,
        // Screening only ranks genomes for promotion: its runs skip the test-set pass.
        report_test: stage != Stage::Screen,
        prune: None,
    }
}

/// Learning-curve pruning of the full rung's windows on seed group `group`, against Adam's runs
/// on that group (multi-fidelity with `fidelity.prune` only).
fn pruning(cp: &Checkpoint, stage: Stage, group: u64) -> Option<Pruning> {
    let fidelity = &cp.config.fidelity;
    let prune = fidelity.prune.as_ref();
    let prune = prune.filter(|_| fidelity.enabled && stage == Stage::Full)?;
    let protocol = stage_protocol(cp, stage);
    let baseline = cp.stage(stage).baseline.as_ref()?;
    let adam = baseline::group(baseline, group, protocol.seeds as usize);
    Some(Pruning::from_baseline(&protocol, &adam, prune))
}

/// The folder name of a stage's work at `generation` (see `executor::BatchDir`).
fn batch_name(generation: usize, stage: Stage, group: u64, what: &str) -> String {
    format!("{generation:04}-{}-{what}{group}", stage.name())
}

/// Trains Adam under `stage`'s protocol on the seed groups up to `group` that its baseline
/// lacks, and returns the steps that took.
fn extend_baseline(
    exec: &mut dyn Executor,
    cp: &mut Checkpoint,
    stage: Stage,
    group: u64,
) -> Result<u64> {
    let adam = work_item(cp, stage, 0, vec![adam_baseline()]);
    let seeds = adam.protocol.seeds as usize;
    let generation = cp.population.generation;
    let mut held = cp.stage_mut(stage).baseline.take();
    let extended = baseline::extend(&mut held, group, seeds, |g| {
        let item = WorkItem {
            group: g,
            ..adam.clone()
        };
        let mut trained: Option<Vec<TaskScore>> = None;
        exec.run(
            &batch_name(generation, stage, g, "adam-"),
            &[item],
            &|_| {},
            &mut |_, mut result: WorkResult| {
                trained = result.scores.pop();
                Ok(())
            },
        )?;
        Ok(trained.expect("one genome trained"))
    });
    cp.stage_mut(stage).baseline = held;
    extended
}

/// Evaluates `pass` (genomes with their indices, in order) at `stage` on seed group `group`,
/// window by window (see `plan_windows`). History lines follow the pass's order; the checkpoint
/// is saved after each window, so a resumed run plans the same windows. On group 0 a genome
/// already in the stage's memo reuses its score; on a later group a genome trains unless the
/// memo already holds that group (an earlier copy of it trained it).
fn evaluate(
    cx: &mut Context,
    cp: &mut Checkpoint,
    pass: &[(usize, Genome)],
    stage: Stage,
    group: u64,
) -> Result<()> {
    let (exec, out) = (&mut *cx.exec, cx.out);
    let hashes: Vec<String> = pass.iter().map(|(_, g)| g.hash()).collect();
    let seeds = stage_protocol(cp, stage).seeds as usize;
    let memo = &cp.stage(stage).memo;
    let known = |h: &str| {
        memo.get(h)
            .is_some_and(|s| s.seeds() > group as usize * seeds)
    };
    let windows = plan_windows(&hashes, known, cp.batch_candidates);
    if windows.is_empty() {
        return Ok(());
    }
    // Adam trained on a new seed group costs steps too.
    cp.logbook.total_steps += extend_baseline(exec, cp, stage, group)?;
    // Adam rides along on its baseline's runs; the others train.
    let prune = pruning(cp, stage, group);
    let items: Vec<WorkItem> = windows
        .iter()
        .map(|w| {
            let genomes = w.train.iter().map(|&p| pass[p].1.clone());
            let genomes = genomes.filter(baseline::trains).collect();
            WorkItem {
                prune: prune.clone(),
                ..work_item(cp, stage, group, genomes)
            }
        })
        .collect();
    let generation = cp.population.generation;
    let starting = |i: usize| {
        let window: &Window = &windows[i];
        let first = *window.train.first().unwrap_or(&window.positions.start);
        out.observer
            .candidate_started(generation, pass[first].0, &pass[first].1, stage);
    };
    let batch = batch_name(cp.population.generation, stage, group, "");
    exec.run(&batch, &items, &starting, &mut |i, result| {
        merge_window(out, cp, pass, &windows[i], result, stage, group)
    })
}

/// Puts a trained window's scores in the stage's memo (a survivor's merged with its earlier
/// seed groups), records every position of the window, then saves.
fn merge_window(
    out: Out,
    cp: &mut Checkpoint,
    pass: &[(usize, Genome)],
    window: &Window,
    result: WorkResult,
    stage: Stage,
    group: u64,
) -> Result<()> {
    let seeds = stage_protocol(cp, stage).seeds as usize;
    let state = cp.stage_mut(stage);
    let baseline = state.baseline.clone().expect("extended before training");
    let trained: Vec<&Genome> = window.train.iter().map(|&p| &pass[p].1).collect();
    // The window trained its genomes together: each is charged an equal share.
    let seconds = result.seconds / trained.len().max(1) as f64;
    let scored = baseline::with_adam(
        trained.iter().copied(),
        &baseline,
        group,
        seeds,
        result.scores,
    );
    let mut costs = std::collections::HashMap::new();
    for (genome, tasks) in trained.into_iter().zip(scored) {
        let steps = tasks.iter().map(|t| t.steps).sum();
        costs.insert(genome.hash(), Cost { steps, seconds });
        let tasks = match state.memo.remove(&genome.hash()) {
            Some(known) if group > 0 => known
                .tasks
                .into_iter()
                .zip(tasks)
                .map(|(k, t)| k.merged(t))
                .collect(),
            _ => tasks,
        };
        let score = Score::new(tasks, &baseline).without_curves();
        state.memo.insert(genome.hash(), score);
    }
    for position in window.positions.clone() {
        let (index, genome) = &pass[position];
        let cost = match window.train.contains(&position) {
            true => costs.get(&genome.hash()).copied(),
            false => None,
        };
        let evaluation = record(out.store, cp, *index, genome, stage, cost)?;
        out.observer.evaluation_done(&evaluation, cp);
    }
    out.store.save(cp)?;
    out.store.best(cp)
}

/// Appends the evaluation of `genome` (index `index` of its stage; its score already in the
/// memo) to the history and the checkpoint, with what training it now cost (`None`: its score
/// was reused). Adam's first line at a stage carries what training the baseline cost.
fn record(
    store: &dyn Store,
    cp: &mut Checkpoint,
    index: usize,
    genome: &Genome,
    stage: Stage,
    trained: Option<Cost>,
) -> Result<Evaluation> {
    let hash = genome.hash();
    let state = cp.stage_mut(stage);
    let score = state.memo[&hash].clone();
    let cost = match trained {
        Some(cost) => Some(cost),
        None if hash == adam_hash() => state.baseline_cost.take(),
        None => None,
    };
    let evaluation = Evaluation {
        generation: cp.population.generation,
        index,
        hash,
        genome: genome.clone(),
        stage,
        seeds: score.seeds() as u64,
        score,
        steps: cost.map_or(0, |c| c.steps),
        cached: cost.is_none(),
        seconds: cost.map_or(0.0, |c| c.seconds),
        origin: match stage {
            Stage::Screen | Stage::Full => cp.population.origins.get(index).cloned(),
            _ => None,
        },
    };
    // A baseline's steps were counted when it trained.
    if trained.is_some() {
        cp.logbook.total_steps += evaluation.steps;
    }
    cp.logbook.evaluations += 1;
    cp.logbook.reused += u64::from(evaluation.cached);
    cp.logbook.history_len = store.append(&evaluation)?;
    let state = cp.stage_mut(stage);
    match stage.tunes() {
        true => state.tuning[index] = Some(evaluation.clone()),
        false => state.results[index] = Some(evaluation.clone()),
    }
    let yardstick = held_out_yardstick(cp);
    let compared_only = stage == Stage::Holdout && comparator(cp, &evaluation.hash);
    let fame = &mut cp.hall_of_fame;
    match stage {
        // A pruned run is scored, but never a leader: it stopped short.
        Stage::Full if !evaluation.pruned() => {
            let keep = cp.config.holdout.as_ref().map_or(0, |h| h.top).max(LEADERS);
            fame.rank(&evaluation, keep);
        }
        Stage::Holdout if !compared_only => {
            let best = fame.best_holdout.as_ref();
            if best.is_none_or(|b| yardstick(&evaluation) > yardstick(b)) {
                fame.best_holdout = Some(evaluation.clone());
            }
        }
        _ => {}
    }
    Ok(evaluation)
}

/// What `best.json` is chosen by held out: the score against the held-out tuned baseline when
/// the run tunes one, else against Adam.
fn held_out_yardstick(cp: &Checkpoint) -> impl Fn(&Evaluation) -> f64 {
    let tuned = cp.stages.holdout.tuned().map(|e| e.score.tasks.clone());
    move |e: &Evaluation| match &tuned {
        Some(tuned) => e.score.relative_to(tuned),
        None => e.score.vs_adam,
    }
}

/// Consecutive positions of a stage's pending list that are evaluated together; the genomes at
/// `train` (distinct, not known before) train side by side, the others reuse a known score.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    pub positions: Range<usize>,
    pub train: Vec<usize>,
}

/// Splits the pending genomes (their hashes, in index order) into windows of at most `k`
/// genomes to train. A genome already `known`, or trained earlier in the list, rides along in the
/// window it falls in and reuses that score. A pure function of its inputs: a resumed run, which
/// knows the windows already done, plans the remaining ones exactly as the first run did.
pub fn plan_windows(hashes: &[String], known: impl Fn(&str) -> bool, k: usize) -> Vec<Window> {
    let mut windows = Vec::new();
    let mut seen: HashSet<&str> = HashSet::new();
    let mut start = 0;
    let mut train = Vec::new();
    for (position, hash) in hashes.iter().enumerate() {
        if known(hash) || seen.contains(hash.as_str()) {
            continue;
        }
        if train.len() == k.max(1) {
            windows.push(Window {
                positions: start..position,
                train: std::mem::take(&mut train),
            });
            start = position;
        }
        seen.insert(hash);
        train.push(position);
    }
    if start < hashes.len() {
        windows.push(Window {
            positions: start..hashes.len(),
            train,
        });
    }
    windows
}

/// The genomes of this generation that get a full evaluation: those never screened (without
/// multi-fidelity, all; with it, the ones already known in full) and the best `promote` fraction
/// (at least one) of the screened, by screening score. A function of the screening results alone,
/// so a resumed generation promotes the same genomes.
pub fn promoted(screens: &[Option<Evaluation>], promote: f64) -> Vec<usize> {
    let (mut screened, known): (Vec<usize>, Vec<usize>) =
        (0..screens.len()).partition(|&i| screens[i].is_some());
    let score = |i: usize| screens[i].as_ref().expect("screened").score.vs_adam;
    screened.sort_by(|&a, &b| score(b).total_cmp(&score(a)).then(a.cmp(&b)));
    let keep = ((screened.len() as f64 * promote).floor() as usize).max(1);
    let mut chosen: Vec<usize> = known
        .into_iter()
        .chain(screened.into_iter().take(keep))
        .collect();
    chosen.sort();
    chosen
}

/// What selection ranks by: full scores as they are; screening and pruned scores capped at the
/// worst full score, so a genome screened out or stopped short never outranks a fully trained
/// one.
pub fn selection_fitness(selected: &[&Evaluation]) -> Vec<f64> {
    let capped = |e: &Evaluation| e.stage == Stage::Screen || e.pruned();
    let worst_full = selected
        .iter()
        .filter(|e| e.ran_in_full())
        .map(|e| e.score.vs_adam)
        .fold(f64::INFINITY, f64::min);
    selected
        .iter()
        .map(|e| match capped(e) {
            true => e.score.vs_adam.min(worst_full),
            false => e.score.vs_adam,
        })
        .collect()
}

fn fitness(cp: &Checkpoint) -> Vec<f64> {
    let selected: Vec<&Evaluation> = (0..cp.population.genomes.len())
        .map(|i| {
            cp.selected(i)
                .expect("every genome of the generation is scored")
        })
        .collect();
    selection_fitness(&selected)
}

fn generation_stats(cp: &Checkpoint) -> GenerationStats {
    let fitness = fitness(cp);
    let best = fitness.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    GenerationStats {
        generation: cp.population.generation,
        best,
        mean: fitness.iter().sum::<f64>() / fitness.len() as f64,
        best_so_far: cp.hall_of_fame.best().map_or(best, |b| b.score.vs_adam),
    }
}

/// Records the generation and breeds the next one (unless this was the last).
fn breed(cp: &mut Checkpoint, stats: GenerationStats) -> Result<()> {
    let search = cp.config.search.clone();
    let fitness = fitness(cp);
    cp.logbook.generations.push(stats);
    if cp.population.generation + 1 < search.generations {
        let (next, origins): (Vec<Genome>, Vec<Origin>) = cp
            .ga
            .next_generation(
                &cp.population.genomes,
                &fitness,
                search.elites,
                search.tournament,
                cp.population.generation + 1,
                search.generations,
            )
            .into_iter()
            .map(|c| (c.genome, c.origin))
            .unzip();
        check_bred(&next, cp.population.generation + 1)?;
        cp.population.origins = origins;
        cp.stages.full.results = vec![None; next.len()];
        cp.stages.screen.results = vec![None; next.len()];
        cp.population.reevaluate = next.iter().map(|g| next_seed_group(cp, g)).collect();
        cp.stages.holdout.results = Vec::new();
        cp.population.genomes = next;
    }
    cp.population.generation += 1;
    Ok(())
}

/// Noise-aware selection: a genome the full stage already scored on fewer than
/// `max_seed_groups` seed groups is trained on the next one (Adam is the reference, never
/// re-trained).
fn next_seed_group(cp: &Checkpoint, genome: &Genome) -> Option<u64> {
    let hash = genome.hash();
    let seeds = cp.config.protocol.seeds as usize;
    let groups = baseline::groups(cp.stages.full.memo.get(&hash)?.seeds(), seeds);
    (baseline::trains(genome) && groups < cp.config.search.max_seed_groups).then_some(groups)
}

/// The GA only breeds genomes the update rule accepts (a property test holds it to that for any
/// valid `ga` section); should one slip through, the run stops before training or saving it.
fn check_bred(population: &[Genome], generation: usize) -> Result<()> {
    for (i, genome) in population.iter().enumerate() {
        genome.validate().map_err(|m| {
            Error::Internal(format!(
                "the GA bred an invalid genome #{i} in generation {generation} ({m}) from the config's `ga` section; nothing was saved"
            ))
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(s: &str) -> Vec<String> {
        s.chars().map(String::from).collect()
    }

    fn window(positions: Range<usize>, train: &[usize]) -> Window {
        Window {
            positions,
            train: train.to_vec(),
        }
    }

    #[test]
    fn windows_hold_at_most_k_new_genomes_and_known_ones_ride_along() {
        let none = |_: &str| false;
        assert_eq!(
            plan_windows(&hashes("abcde"), none, 2),
            [
                window(0..2, &[0, 1]),
                window(2..4, &[2, 3]),
                window(4..5, &[4])
            ]
        );
        assert_eq!(
            plan_windows(&hashes("abcde"), none, 1),
            (0..5).map(|i| window(i..i + 1, &[i])).collect::<Vec<_>>()
        );
        // Known genomes and repeats train nowhere; they stay in the window they fall in.
        let known = |h: &str| h == "k";
        assert_eq!(
            plan_windows(&hashes("kabakc"), known, 2),
            [window(0..5, &[1, 2]), window(5..6, &[5])]
        );
        assert_eq!(plan_windows(&hashes("kk"), known, 4), [window(0..2, &[])]);
        assert!(plan_windows(&[], none, 3).is_empty());
        // k = 0 is treated as 1, never as an endless window.
        assert_eq!(plan_windows(&hashes("ab"), none, 0).len(), 2);
    }

    #[test]
    fn resuming_after_any_window_plans_the_same_remaining_windows() {
        let list = hashes("abacdbef");
        let all = plan_windows(&list, |_| false, 3);
        for done in 1..all.len() {
            // What a resumed run knows: every genome trained in the windows already done.
            let trained: HashSet<String> = all[..done]
                .iter()
                .flat_map(|w| w.train.iter().map(|&p| list[p].clone()))
                .collect();
            let from = all[done].positions.start;
            let rest = plan_windows(&list[from..], |h| trained.contains(h), 3);
            let shifted: Vec<Window> = all[done..]
                .iter()
                .map(|w| Window {
                    positions: w.positions.start - from..w.positions.end - from,
                    train: w.train.iter().map(|p| p - from).collect(),
                })
                .collect();
            assert_eq!(rest, shifted, "resumed after {done} window(s)");
        }
    }

    /// A full evaluation stopped by learning-curve pruning.
    fn pruned(index: usize, vs_adam: f64) -> Evaluation {
        let run = crate::train::RunMetrics {
            seed: 0,
            score_loss: None,
            score_acc: 0.5,
            test_acc: None,
            fitness: None,
            losses: Vec::new(),
            steps: 15,
            diverged: false,
            pruned: true,
            seconds: 0.0,
            train_seconds: 0.0,
            curve: Vec::new(),
            failure: None,
        };
        let mut e = evaluation(index, Stage::Full, vs_adam);
        e.score.tasks = vec![crate::train::fitness::TaskScore::from_runs(
            "cifar10",
            vec![run],
        )];
        e
    }

    fn evaluation(index: usize, stage: Stage, vs_adam: f64) -> Evaluation {
        let genome = adam_baseline();
        Evaluation {
            generation: 0,
            index,
            hash: genome.hash(),
            genome,
            stage,
            seeds: 1,
            score: Score {
                tasks: Vec::new(),
                raw: vs_adam,
                vs_adam,
            },
            steps: 0,
            cached: false,
            seconds: 0.0,
            origin: None,
        }
    }

    #[test]
    fn the_best_screened_fraction_is_promoted_and_unscreened_genomes_always_are() {
        let screens: Vec<Option<Evaluation>> =
            [None, Some(0.9), Some(1.2), None, Some(1.1), Some(0.5)]
                .iter()
                .enumerate()
                .map(|(i, s)| s.map(|v| evaluation(i, Stage::Screen, v)))
                .collect();
        assert_eq!(promoted(&screens, 0.5), [0, 2, 3, 4]);
        assert_eq!(promoted(&screens, 0.2), [0, 2, 3], "at least one");
        assert_eq!(promoted(&screens, 1.0), [0, 1, 2, 3, 4, 5]);
        assert_eq!(promoted(&vec![None; 3], 0.2), [0, 1, 2], "no screening");
        // Ties go to the lower index.
        let tied: Vec<Option<Evaluation>> = (0..3)
            .map(|i| Some(evaluation(i, Stage::Screen, 1.0)))
            .collect();
        assert_eq!(promoted(&tied, 0.34), [0]);
    }

    #[test]
    fn a_screened_out_or_pruned_genome_never_outranks_a_fully_trained_one() {
        let full = [
            evaluation(0, Stage::Full, 1.05),
            evaluation(1, Stage::Full, 0.95),
        ];
        let screened = [
            evaluation(2, Stage::Screen, 1.4),
            evaluation(3, Stage::Screen, 0.7),
            pruned(4, 1.3),
            pruned(5, 0.6),
        ];
        let all: Vec<&Evaluation> = full.iter().chain(&screened).collect();
        assert_eq!(selection_fitness(&all), [1.05, 0.95, 0.95, 0.7, 0.95, 0.6]);
        let only_full: Vec<&Evaluation> = full.iter().collect();
        assert_eq!(selection_fitness(&only_full), [1.05, 0.95]);
    }
}
