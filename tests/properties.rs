//! Property tests (proptest): the canonical form and hash, the GA operators for any valid `ga`
//! section, and the checkpoint's round trip through the run directory.
use evolve::config::Config;
use evolve::genome::genes::GaParams;
use evolve::genome::{Genome, Term, TermKind, SHIPPED};
use evolve::run::RunDir;
use evolve::search::ga::{genomes, Ga};
use evolve::search::records::{
    Checkpoint, Cost, Evaluation, HallOfFame, Logbook, Origin, Population, Stage, StageState,
    Stages, CHECKPOINT_VERSION,
};
use evolve::train::fitness::{Score, TaskScore};
use evolve::train::RunMetrics;
use proptest::prelude::*;
use rand::{seq::SliceRandom, SeedableRng};
use std::collections::BTreeMap;

/// An ordered pair drawn from `[lo, hi]`.
fn ordered(lo: f64, hi: f64) -> impl Strategy<Value = [f64; 2]> {
    (lo..=hi, lo..=hi).prop_map(|(a, b)| if a <= b { [a, b] } else { [b, a] })
}

/// Any `ga` section that validation accepts, extremes included.
fn ga_params() -> impl Strategy<Value = GaParams> {
    let rates = prop::array::uniform6(0.0..=1.0f64);
    let sigmas = prop::array::uniform4(0.0..=50.0f64);
    let logs = (
        ordered(-300.0, 300.0),
        ordered(-300.0, 300.0),
        ordered(-300.0, 300.0),
        ordered(-300.0, 300.0),
    );
    let lookahead = (
        ordered(1e-9, 1.0),
        (1u64..=1_000_000, 1u64..=1_000_000).prop_map(|(a, b)| [a.min(b), a.max(b)]),
    );
    let linear = (
        ordered(0.0, 0.9999999),
        ordered(0.0, 0.9999999),
        ordered(-12.0, 12.0).prop_map(|[a, b]| [10f64.powf(a), 10f64.powf(b)]),
        ordered(0.0, 1.0),
    );
    (
        rates,
        sigmas,
        1..=evolve::genome::MAX_TERMS,
        logs,
        linear,
        lookahead,
        proptest::sample::subsequence(TermKind::ALL.to_vec(), 1..=TermKind::ALL.len()),
    )
        .prop_map(
            |(r, s, max_terms, (lr, eps, wd, clip), (b1, b2, w, warm), (alpha, k), kinds)| {
                GaParams {
                    crossover_rate: r[0],
                    mutation_rate: r[1],
                    add_term_rate: r[2],
                    remove_term_rate: r[3],
                    change_term_rate: r[4],
                    flag_flip_rate: r[5],
                    log_sigma: s[0],
                    beta_sigma: s[1],
                    weight_sigma: s[2],
                    final_strength: s[3],
                    kinds,
                    max_terms,
                    lr_log10: lr,
                    eps_log10: eps,
                    weight_decay_log10: wd,
                    beta1: b1,
                    beta2: b2,
                    term_weight: w,
                    warmup_fraction: warm,
                    grad_clip_log10: clip,
                    lookahead_k: k,
                    lookahead_alpha: alpha,
                }
            },
        )
}

fn shipped() -> Vec<(String, Genome)> {
    SHIPPED
        .iter()
        .map(|(n, _)| (n.to_string(), evolve::genome::shipped(n)))
        .collect()
}

fn random_genome() -> impl Strategy<Value = Genome> {
    any::<u64>().prop_map(|seed| Ga::new(seed, GaParams::default(), 500).random_genome())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn ga_operators_breed_only_valid_genomes(
        params in ga_params(),
        seed in any::<u64>(),
        min_steps in 1u64..5000,
    ) {
        prop_assert!(params.validate().is_ok(), "{:?}", params.validate());
        let mut ga = Ga::new(seed, params, min_steps);
        let mut population = genomes(ga.initial_population(12, shipped()));
        let valid = |g: &Genome| g.validate().map_err(|m| TestCaseError::fail(format!("{m}: {g:?}")));
        for g in &population {
            valid(g)?;
        }
        let fitness: Vec<f64> = (0..population.len()).map(|i| (i % 5) as f64).collect();
        for generation in 0..4 {
            population = genomes(ga.next_generation(&population, &fitness, 2, 3, generation, 4));
            for g in &population {
                valid(g)?;
            }
        }
        for (a, b) in population.iter().zip(population.iter().rev()) {
            let child = ga.crossover(a, b);
            valid(&child)?;
            valid(&ga.mutate(&child, 1.0))?;
            valid(&ga.random_genome())?;
        }
    }

    #[test]
    fn canonical_form_is_idempotent_and_the_hash_ignores_spelling(
        genome in random_genome(),
        shuffle in any::<u64>(),
        name in ".{0,20}",
    ) {
        let canonical = genome.canonical();
        prop_assert_eq!(canonical.canonical(), canonical.clone());
        prop_assert_eq!(canonical.hash(), genome.hash());

        // The same optimizer spelled differently: named, terms shuffled, a term of a kind that
        // appears once split in two halves, a zero-weight term added.
        let mut rewritten = genome.clone();
        rewritten.name = Some(name);
        rewritten.terms.shuffle(&mut rand::rngs::StdRng::seed_from_u64(shuffle));
        let once = rewritten
            .terms
            .iter()
            .position(|t| rewritten.terms.iter().filter(|u| u.kind == t.kind).count() == 1);
        if let Some(i) = once {
            let half = Term { kind: rewritten.terms[i].kind, weight: rewritten.terms[i].weight / 2.0 };
            rewritten.terms[i] = half.clone();
            rewritten.terms.push(half);
        }
        rewritten.terms.push(Term { kind: genome.terms[0].kind, weight: 0.0 });
        prop_assert_eq!(rewritten.hash(), genome.hash());
        prop_assert_eq!(rewritten.canonical(), canonical);

        // And a different optimizer hashes differently.
        let mut other = genome.clone();
        other.lr *= 1.5;
        prop_assert_ne!(other.hash(), genome.hash());
    }

    #[test]
    fn a_checkpoint_round_trips_through_the_run_directory(
        seed in any::<u64>(),
        population in 2usize..10,
        scored in prop::collection::vec(any::<bool>(), 10),
        fitness in prop::collection::vec(-1.0f64..1.1, 10),
        draws in 0usize..20,
    ) {
        let mut config = Config::quick();
        config.search.population = population;
        config.search.elites = 1;
        config.search.tournament = 2;
        let mut ga = Ga::new(seed, config.ga.clone(), 100);
        let children = ga.initial_population(population, shipped());
        let origins: Vec<Origin> = children.iter().map(|c| c.origin.clone()).collect();
        let genomes = evolve::search::ga::genomes(children);
        for _ in 0..draws {
            ga.random_genome(); // advance the saved stream
        }
        let task = |name: &str, fitness: f64| {
            TaskScore::from_runs(name, vec![RunMetrics {
                seed: 1,
                score_loss: None,
                score_acc: fitness.max(0.0),
                test_acc: None,
                fitness: None,
                losses: Vec::new(),
                steps: 10,
                diverged: fitness < 0.0,
                seconds: 0.0,
                pruned: false,
                train_seconds: 0.0,
                curve: Vec::new(),
                failure: None,
            }])
        };
        let baseline = vec![task("cifar10", 0.5), task("mnist", 0.9)];
        let mut memo = BTreeMap::new();
        let scores: Vec<Option<Evaluation>> = genomes
            .iter()
            .enumerate()
            .map(|(i, g)| {
                scored[i].then(|| {
                    let score = Score::new(vec![task("cifar10", fitness[i]), task("mnist", 0.7)], &baseline);
                    memo.insert(g.hash(), score.clone());
                    Evaluation {
                        generation: 0,
                        index: i,
                        hash: g.hash(),
                        genome: g.clone(),
                        stage: Stage::Full,
                        seeds: 1,
                        score,
                        steps: 20,
                        cached: false,
                        seconds: 0.25,
                        origin: Some(origins[i].clone()),
                    }
                })
            })
            .collect();
        let checkpoint = Checkpoint {
            version: CHECKPOINT_VERSION,
            config,
            batch_candidates: 1,
            population: Population {
                generation: 0,
                genomes,
                origins,
                // Scored genomes are due for their second seed group, as survivors would be.
                reevaluate: (0..population).map(|i| scored[i].then_some(1)).collect(),
            },
            stages: Stages {
                screen: StageState {
                    results: vec![None; population],
                    ..StageState::default()
                },
                full: StageState {
                    baseline: Some(baseline),
                    baseline_cost: Some(Cost { steps: 20, seconds: 0.5 }),
                    memo,
                    results: scores.clone(),
                    tuning: Vec::new(),
                },
                holdout: StageState::default(),
            },
            hall_of_fame: HallOfFame {
                leaders: scores.iter().flatten().cloned().collect(),
                best_holdout: None,
            },
            logbook: Logbook {
                generations: Vec::new(),
                total_steps: 40,
                evaluations: 2,
                reused: 0,
                history_len: 0,
            },
            ga,
        };
        prop_assert!(checkpoint.check().is_ok(), "{:?}", checkpoint.check());
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(&dir.path().join("run")).unwrap();
        run.save(&checkpoint).unwrap();
        let back = RunDir::open(&run.path).load_checkpoint().unwrap();
        prop_assert_eq!(back, checkpoint);
    }
}
