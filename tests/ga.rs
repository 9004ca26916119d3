//! Genetic operators: every child is a valid genome within the configured bounds, selection and
//! elitism do what they say, and the random stream survives a checkpoint round trip.
use evolve::genome::genes::GaParams;
use evolve::genome::{shipped, Genome};
use evolve::search::ga::{genomes, Ga};

fn ga(seed: u64) -> Ga {
    Ga::new(seed, GaParams::default(), 500)
}

fn in_bounds(g: &Genome, p: &GaParams) {
    g.validate()
        .unwrap_or_else(|e| panic!("invalid child {g:?}: {e}"));
    assert!(
        !g.terms.is_empty() && g.terms.len() <= p.max_terms,
        "{} terms",
        g.terms.len()
    );
    let log = |x: f64, r: [f64; 2]| x.log10() >= r[0] - 1e-9 && x.log10() <= r[1] + 1e-9;
    assert!(log(g.lr, p.lr_log10), "lr {}", g.lr);
    assert!(log(g.eps, p.eps_log10), "eps {}", g.eps);
    assert!(
        g.weight_decay == 0.0 || log(g.weight_decay, p.weight_decay_log10),
        "wd {}",
        g.weight_decay
    );
    assert!(
        (p.beta1[0]..=p.beta1[1]).contains(&g.beta1)
            && (p.beta2[0]..=p.beta2[1]).contains(&g.beta2)
    );
    assert!(g
        .terms
        .iter()
        .all(|t| t.weight >= p.term_weight[0] - 1e-12 && t.weight <= p.term_weight[1] + 1e-12));
    assert!(g.warmup_steps <= (p.warmup_fraction[1] * 500.0).ceil() as u64);
}

#[test]
fn random_genomes_and_their_offspring_stay_valid_and_in_bounds() {
    let mut ga = ga(1);
    let p = ga.params.clone();
    let mut population: Vec<Genome> = (0..40).map(|_| ga.random_genome()).collect();
    for g in &population {
        in_bounds(g, &p);
    }
    let kinds: std::collections::HashSet<_> = population
        .iter()
        .flat_map(|g| g.terms.iter().map(|t| t.kind))
        .collect();
    assert!(
        kinds.len() >= 8,
        "random genomes explore the term kinds ({} seen)",
        kinds.len()
    );
    for generation in 1..15 {
        let fitness: Vec<f64> = population.iter().map(|g| -g.lr.log10()).collect();
        population = genomes(ga.next_generation(&population, &fitness, 3, 4, generation, 15));
        for g in &population {
            in_bounds(g, &p);
        }
    }
}

#[test]
fn elites_survive_unchanged_and_selection_prefers_the_fit() {
    let mut ga = ga(2);
    let population: Vec<Genome> = (0..10).map(|_| ga.random_genome()).collect();
    let fitness: Vec<f64> = (0..10).map(|i| i as f64).collect();
    let next = genomes(ga.next_generation(&population, &fitness, 2, 3, 1, 10));
    assert_eq!(next.len(), 10);
    assert_eq!(next[0], population[9]);
    assert_eq!(next[1], population[8]);
    let picks: Vec<usize> = (0..200).map(|_| ga.tournament(&fitness, 4)).collect();
    let mean = picks.iter().sum::<usize>() as f64 / picks.len() as f64;
    assert!(
        mean > 6.0,
        "tournament of 4 should pick above-average genomes (mean index {mean})"
    );
    assert_eq!(ga.tournament(&fitness, 1000), 9);
}

#[test]
fn crossover_bounds_the_term_list() {
    let mut ga = ga(3);
    let a = shipped("marfinetz2025-evolved");
    let b = shipped("eve");
    for _ in 0..200 {
        let child = ga.crossover(&a, &b);
        assert!(!child.terms.is_empty() && child.terms.len() <= ga.params.max_terms);
        for t in &child.terms {
            assert!(
                a.terms.contains(t) || b.terms.contains(t),
                "terms come from the parents"
            );
        }
        assert!(child.lr == a.lr || child.lr == b.lr);
    }
}

#[test]
fn mutation_strength_anneals() {
    // At strength 0, scalars stay put (only discrete changes remain possible).
    let mut ga = ga(4);
    let g = shipped("adam");
    let still = (0..100).filter(|_| ga.mutate(&g, 0.0).lr == g.lr).count();
    assert_eq!(still, 100);
    let moved = (0..100).filter(|_| ga.mutate(&g, 1.0).lr != g.lr).count();
    assert!(moved > 10, "at full strength lr moves ({moved}/100)");
}

#[test]
fn the_random_stream_survives_a_checkpoint_round_trip() {
    let mut a = ga(5);
    let _ = a.random_genome();
    let mut b: Ga = serde_json::from_str(&serde_json::to_string(&a).unwrap()).unwrap();
    for _ in 0..20 {
        assert_eq!(a.random_genome(), b.random_genome());
    }
    let mut c = ga(5);
    let mut d = ga(5);
    assert_eq!(
        c.initial_population(12, vec![("adam".into(), shipped("adam"))]),
        d.initial_population(12, vec![("adam".into(), shipped("adam"))])
    );
}

/// Every field a genome file can hold, with a value unlike the defaults (so none is skipped).
fn every_field_set() -> Genome {
    let mut g = shipped("adam");
    g.weight_decay = 1e-3;
    g.grad_clip = Some(1.0);
    g.warmup_steps = 50;
    g.cosine_decay = true;
    g.sign_decay = evolve::genome::SignDecay::Linear;
    g.radam = true;
    g.trust_ratio = true;
    g.diffgrad = true;
    g.lookahead = Some(evolve::genome::Lookahead { k: 7, alpha: 0.5 });
    g
}

#[test]
fn every_gene_of_the_genome_schema_is_in_the_gene_table_and_mutation_reaches_it() {
    let base = every_field_set();
    let json = serde_json::to_value(&base).unwrap();
    let mut fields: Vec<&str> = json
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .filter(|&k| k != "name")
        .collect();
    fields.sort();
    let mut genes: Vec<&str> = evolve::genome::genes::GENES
        .iter()
        .map(|g| g.field)
        .collect();
    genes.sort();
    assert_eq!(
        fields, genes,
        "every genome field is a gene, and only those"
    );

    // Mutation from one genome, many times over: each field takes another value, every
    // sign-decay schedule and Lookahead's own k and α included.
    let mut ga = ga(3);
    let mut seen: std::collections::HashMap<String, std::collections::HashSet<String>> =
        Default::default();
    for start in [base.clone(), shipped("lion")] {
        for _ in 0..3000 {
            let child = serde_json::to_value(ga.mutate(&start, 1.0)).unwrap();
            for field in &genes {
                let value = child.get(*field).map_or("absent".into(), |v| v.to_string());
                seen.entry(field.to_string()).or_default().insert(value);
            }
        }
    }
    for field in &genes {
        assert!(seen[*field].len() >= 2, "mutation never changes `{field}`");
    }
    for schedule in ["\"linear\"", "\"cosine\"", "absent"] {
        assert!(
            seen["sign_decay"].contains(schedule),
            "sign_decay {schedule}"
        );
    }
    let lookaheads: Vec<serde_json::Value> = seen["lookahead"]
        .iter()
        .filter_map(|v| serde_json::from_str(v).ok())
        .collect();
    assert!(lookaheads
        .iter()
        .any(|l| l["alpha"].as_f64().is_some_and(|a| a != 0.5)));
    assert!(lookaheads
        .iter()
        .any(|l| l["k"] != 7 && l["k"] != serde_json::Value::Null));

    // Random genomes reach the same schedules and options.
    let randoms: Vec<Genome> = (0..2000).map(|_| ga.random_genome()).collect();
    for decay in [
        evolve::genome::SignDecay::Linear,
        evolve::genome::SignDecay::Cosine,
    ] {
        assert!(randoms.iter().any(|g| g.sign_decay == decay), "{decay:?}");
    }
    assert!(randoms.iter().any(|g| g.grad_clip.is_some()));
    assert!(randoms
        .iter()
        .any(|g| g.lookahead.is_some_and(|l| l.alpha != 0.5)));
}

#[test]
fn random_and_mutated_terms_come_from_ga_kinds_only() {
    use evolve::genome::TermKind;
    let paper = [TermKind::Adam, TermKind::Sign, TermKind::Nesterov];
    let params = GaParams {
        kinds: paper.to_vec(),
        change_term_rate: 1.0,
        add_term_rate: 1.0,
        ..GaParams::default()
    };
    params.validate().unwrap();
    let mut ga = Ga::new(5, params, 500);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..60 {
        let g = ga.random_genome();
        let child = ga.mutate(&g, 1.0);
        for t in g.terms.iter().chain(&child.terms) {
            assert!(paper.contains(&t.kind), "{:?} is not in ga.kinds", t.kind);
            seen.insert(t.kind);
        }
    }
    assert_eq!(seen.len(), paper.len(), "every listed kind is drawn");
}

#[test]
fn ga_kinds_must_be_known_distinct_and_not_empty() {
    for (kinds, needle) in [
        (serde_json::json!([]), "field `ga.kinds`"),
        (serde_json::json!(["adam", "adam"]), "field `ga.kinds`"),
        (
            serde_json::json!(["adam", "bogus"]),
            "unknown variant `bogus`",
        ),
    ] {
        let text = serde_json::json!({ "kinds": kinds }).to_string();
        let message = match serde_json::from_str::<GaParams>(&text) {
            Ok(p) => p.validate().unwrap_err(),
            Err(e) => e.to_string(),
        };
        assert!(message.contains(needle), "{message}");
        assert!(
            message.contains("qh_adam"),
            "names the known kinds: {message}"
        );
    }
}

#[test]
fn every_child_records_where_it_came_from() {
    use evolve::search::records::Origin;
    let mut ga = ga(9);
    let seeds = vec![("adamw".to_string(), shipped("adamw"))];
    let first = ga.initial_population(6, seeds);
    assert_eq!(
        first[0].origin,
        Origin::Seed {
            name: "adamw".into()
        }
    );
    assert!(first[1..].iter().all(|c| c.origin == Origin::Random));
    let population = genomes(first);
    let hashes: Vec<String> = population.iter().map(Genome::hash).collect();
    let fitness: Vec<f64> = (0..6).map(|i| i as f64).collect();
    let next = ga.next_generation(&population, &fitness, 1, 3, 1, 5);
    assert_eq!(
        next[0].origin,
        Origin::Elite {
            parent: hashes[5].clone()
        }
    );
    let (mut crossed, mut mutated) = (0, 0);
    for child in &next[1..] {
        let genes = match &child.origin {
            Origin::Crossover { parents, genes } => {
                crossed += 1;
                assert!(parents.iter().all(|p| hashes.contains(p)));
                genes
            }
            Origin::Mutation { parent, genes } => {
                mutated += 1;
                let parent = &population[hashes.iter().position(|h| h == parent).unwrap()];
                // The genes named are exactly those in which the child differs from its parent.
                let (a, b) = (
                    serde_json::to_value(parent).unwrap(),
                    serde_json::to_value(&child.genome).unwrap(),
                );
                for gene in evolve::genome::genes::GENES.iter() {
                    let differs = a.get(gene.field) != b.get(gene.field);
                    assert_eq!(
                        differs,
                        genes.iter().any(|g| g == gene.field),
                        "{}",
                        gene.field
                    );
                }
                genes
            }
            other => panic!("a bred child from {other:?}"),
        };
        assert!(genes
            .iter()
            .all(|g| evolve::genome::genes::GENES.iter().any(|x| x.field == g)));
    }
    assert!(
        crossed > 0 && mutated > 0,
        "{crossed} crossed, {mutated} mutated"
    );
}
