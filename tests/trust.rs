//! What makes a discovery trustworthy, end to end through the binary: the winner is chosen on a
//! held-out protocol (meta-validation), survivors are re-scored on fresh seeds (noise-aware
//! selection), both resume exactly, and an old run that scored on the test set resumes as it
//! began.
use evolve::config::Config;
use evolve::genome::{adam_baseline, Genome, Term, TermKind};
use evolve::run::RunDir;
use evolve::search::ga::Ga;
use evolve::search::records::{
    Checkpoint, Evaluation, HallOfFame, Logbook, Origin, Population, Stage, StageState, Stages,
    CHECKPOINT_VERSION,
};
use evolve::train::fitness::{Score, TaskScore};
use evolve::train::RunMetrics;
use std::collections::BTreeMap;

mod common;
use common::run::{
    as_before_v4, history, kill_and_resume, ok, old_checkpoint_resumes_exactly, tiny_config,
    version_4_checkpoint_resumes_exactly, Fixture,
};

fn evolve(args: &[&str]) -> std::process::Command {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_evolve"));
    cmd.args(args);
    cmd
}

/// A held-out protocol of one `tiny-cnn` task on `dataset`, checked every generation (top 2).
fn holdout(dataset: &str, subset: u64, steps: u64, seed: u64) -> serde_json::Value {
    serde_json::json!({
        "protocol": {
            "tasks": [{ "name": "held-out", "dataset": dataset, "model": "tiny-cnn",
                        "train_subset": subset, "batch": 32, "steps": steps, "validation": 200 }],
            "seeds": 1, "seed": seed
        },
        "every": 1, "top": 2
    })
}

/// A tiny search with a held-out protocol (Fashion-MNIST, checked every generation), two elites
/// and noise-aware selection over up to three seed groups.
fn held_out_fixture() -> Fixture {
    let base = Fixture::new(&tiny_config(5, 3));
    let patched = base.config_with(serde_json::json!({
        "holdout": holdout("fashion-mnist", 400, 40, 77),
        "search": { "elites": 2, "max_seed_groups": 3 }
    }));
    Fixture::new(&std::fs::read_to_string(patched).unwrap())
}

#[test]
fn sigkill_in_the_middle_of_a_held_out_stage_or_a_re_evaluation_then_resume_is_exact() {
    kill_and_resume(&held_out_fixture(), &[], |history| {
        let at = |i: usize| {
            (
                history[i]["stage"].as_str().unwrap(),
                history[i]["seeds"].as_u64().unwrap(),
            )
        };
        // Right after a held-out line that another follows (mid-stage), and right after a
        // survivor's re-evaluation on a fresh seed group.
        let mut targets: Vec<usize> = (1..history.len())
            .filter(|&i| at(i - 1).0 == "holdout" && at(i).0 == "holdout")
            .take(2)
            .chain((1..history.len()).filter(|&i| at(i - 1).1 > 1).take(2))
            .collect();
        targets.sort();
        targets.dedup();
        targets
    });
}

#[test]
fn survivors_are_re_scored_on_fresh_seeds_up_to_the_cap_and_compared_with_adam_on_the_same() {
    let f = held_out_fixture();
    let run = f.path("run");
    ok(f.start(&run, &[]));
    let lines = history(&run);
    let full: Vec<&serde_json::Value> = lines.iter().filter(|e| e["stage"] == "full").collect();
    let mut groups: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for e in full.iter().filter(|e| e["cached"] == false) {
        groups
            .entry(e["hash"].as_str().unwrap().into())
            .or_default()
            .push(e["seeds"].as_u64().unwrap());
    }
    // Each training of a genome adds one seed group: 1, 2, 3 and never more.
    assert!(
        groups
            .values()
            .all(|g| *g == (1..=g.len() as u64).collect::<Vec<_>>() && g.len() <= 3),
        "{groups:?}"
    );
    assert!(
        groups.values().any(|g| g.len() >= 2),
        "no survivor was re-scored: {groups:?}"
    );
    // A re-scored line carries the mean over all its seeds; the runs are the new group's
    // seeds added to the earlier ones, and Adam's baseline holds as many seed groups.
    let rescored = full
        .iter()
        .find(|e| e["seeds"].as_u64() == Some(2) && e["cached"] == false)
        .unwrap();
    let runs = rescored["score"]["tasks"][0]["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 2);
    assert_eq!(
        rescored["steps"], 30,
        "a re-scoring costs one seed group's steps"
    );
    assert_ne!(runs[0]["seed"], runs[1]["seed"]);
    let mean = (runs[0]["fitness"].as_f64().unwrap() + runs[1]["fitness"].as_f64().unwrap()) / 2.0;
    assert!((rescored["score"]["tasks"][0]["fitness"].as_f64().unwrap() - mean).abs() < 1e-12);
    let cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint.json")).unwrap())
            .unwrap();
    let adam_runs = cp["stages"]["full"]["baseline"][0]["runs"]
        .as_array()
        .unwrap();
    let most = groups.values().map(Vec::len).max().unwrap();
    assert_eq!(
        adam_runs.len(),
        most,
        "Adam trained on every seed group in use"
    );
    assert_eq!(
        adam_runs[1]["seed"], runs[1]["seed"],
        "paired on the same seeds"
    );
    // The report gives the paired comparison and the seeds behind each score.
    let report = String::from_utf8(ok(evolve(&["report", run.to_str().unwrap()])).stdout).unwrap();
    assert!(
        report.contains("paired runs") && report.contains("Spearman"),
        "{report}"
    );
}

/// A fabricated search result: a run of one generation whose full stage is done, where the
/// search winner `sluggish` (SGD at lr 1e-7: it cannot learn anything) was handed a search score
/// of 1.5× Adam. Only the held-out check is left to run.
fn fabricated_run(f: &Fixture, dir: &std::path::Path) -> Genome {
    let mut config: Config = serde_json::from_str(
        &std::fs::read_to_string(f.config_with(serde_json::json!({
            "search": { "population": 3, "generations": 1, "elites": 1, "tournament": 2 },
            "holdout": holdout("cifar10", 600, 80, 5)
        })))
        .unwrap(),
    )
    .unwrap();
    config.search.include_shipped = false;
    let sluggish = Genome {
        name: Some("sluggish".into()),
        terms: vec![Term {
            kind: TermKind::Gradient,
            weight: 1.0,
        }],
        lr: 1e-7,
        ..adam_baseline()
    };
    let faster_adam = Genome {
        name: Some("adam-2e-3".into()),
        lr: 2e-3,
        ..adam_baseline()
    };
    let population = vec![sluggish.clone(), faster_adam, adam_baseline()];
    let score = |fitness: f64| {
        let run = RunMetrics {
            seed: 1,
            score_loss: None,
            score_acc: fitness,
            test_acc: None,
            fitness: None,
            losses: Vec::new(),
            steps: 30,
            diverged: false,
            seconds: 0.0,
            pruned: false,
            train_seconds: 0.0,
            curve: Vec::new(),
            failure: None,
        };
        vec![TaskScore::from_runs("cifar10", vec![run])]
    };
    let baseline = score(0.4);
    let evaluations: Vec<Evaluation> = population
        .iter()
        .zip([0.6, 0.44, 0.4])
        .enumerate()
        .map(|(index, (g, fitness))| Evaluation {
            generation: 0,
            index,
            hash: g.hash(),
            genome: g.clone(),
            stage: Stage::Full,
            seeds: 1,
            score: Score::new(score(fitness), &baseline),
            steps: 30,
            cached: false,
            seconds: 0.0,
            origin: Some(Origin::Random),
        })
        .collect();
    let memo = evaluations
        .iter()
        .map(|e| (e.hash.clone(), e.score.clone()))
        .collect();
    let ga = Ga::new(1, config.ga.clone(), 30);
    let checkpoint = Checkpoint {
        version: CHECKPOINT_VERSION,
        config,
        batch_candidates: 1,
        population: Population {
            generation: 0,
            genomes: population,
            reevaluate: vec![None; 3],
            origins: vec![Origin::Random; 3],
        },
        stages: Stages {
            screen: StageState {
                results: vec![None; 3],
                ..StageState::default()
            },
            full: StageState {
                baseline: Some(baseline),
                baseline_cost: None,
                memo,
                results: evaluations.iter().cloned().map(Some).collect(),
                tuning: Vec::new(),
            },
            holdout: StageState::default(),
        },
        hall_of_fame: HallOfFame {
            leaders: evaluations.clone(),
            best_holdout: None,
        },
        logbook: Logbook {
            generations: Vec::new(),
            total_steps: 90,
            evaluations: 3,
            reused: 0,
            history_len: 0,
        },
        ga,
    };
    let run = RunDir::create(dir).unwrap();
    run.save(&checkpoint).unwrap();
    sluggish
}

#[test]
fn the_winner_is_chosen_on_the_held_out_protocol_when_the_search_winner_loses_there() {
    let f = Fixture::new(&tiny_config(3, 1));
    let run = f.path("run");
    let sluggish = fabricated_run(&f, &run);
    let out = ok(f.resume(&run, &[]));
    let best = Genome::load(&run.join("best.json")).unwrap();
    let best_search = Genome::load(&run.join("best-search.json")).unwrap();
    assert_eq!(
        best_search.hash(),
        sluggish.hash(),
        "best-search.json keeps the search winner"
    );
    assert_ne!(best.hash(), sluggish.hash(), "best.json is chosen held out");
    let held: Vec<serde_json::Value> = history(&run)
        .into_iter()
        .filter(|e| e["stage"] == "holdout")
        .collect();
    assert_eq!(held.len(), 4, "the top 2, Adam and the published genome");
    let published = evolve::genome::shipped(evolve::genome::PUBLISHED).hash();
    let top = held
        .iter()
        .filter(|e| e["hash"] != published.as_str())
        .max_by(|a, b| {
            a["score"]["vs_adam"]
                .as_f64()
                .partial_cmp(&b["score"]["vs_adam"].as_f64())
                .unwrap()
        })
        .unwrap();
    assert_eq!(top["hash"].as_str(), Some(best.hash().as_str()));
    let sluggish_held = held
        .iter()
        .find(|e| e["hash"] == sluggish.hash().as_str())
        .unwrap();
    assert!(sluggish_held["score"]["vs_adam"].as_f64().unwrap() < 1.0);
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    for text in [summary.as_str(), &said] {
        assert!(text.contains("its lead disappears held out"), "{text}");
    }
    assert!(
        summary.contains("## Generalization")
            && summary.contains("best.json: chosen on the held-out protocol")
    );
    let json: serde_json::Value =
        serde_json::from_slice(&ok(evolve(&["report", run.to_str().unwrap(), "--json"])).stdout)
            .unwrap();
    assert_eq!(json["search_winner"], sluggish.hash().as_str());
    assert_eq!(json["winner"], best.hash().as_str());
    assert!((json["rows"][0]["search"].as_f64().unwrap() - 1.5).abs() < 1e-12);
    let status = String::from_utf8(ok(evolve(&["status", run.to_str().unwrap()])).stdout).unwrap();
    assert!(status.contains("best held out"), "{status}");
    // The export of the run is best.json, with the held-out scores it was chosen by.
    let exported = String::from_utf8(
        ok(evolve(&[
            "export",
            run.to_str().unwrap(),
            "--format",
            "pytorch",
        ]))
        .stdout,
    )
    .unwrap();
    assert!(
        exported.contains(&best.hash()) || exported.contains(best.name.as_deref().unwrap()),
        "exports best.json"
    );
    assert!(exported.contains("held-out val acc"), "{exported}");
}

#[test]
fn a_version_4_run_with_a_held_out_stage_is_migrated_and_resumes_exactly() {
    // Version 4 kept the records loose at the top level, with a copy of the best leader.
    version_4_checkpoint_resumes_exactly(&held_out_fixture(), |_| {});
}

#[test]
fn a_version_3_run_resumes_in_the_layout_and_scoring_passes_it_began_with() {
    // Version 3 computed in NCHW and scored 1,000 images a pass; today's defaults round otherwise.
    let fixture = Fixture::new(&as_before_v4(&tiny_config(5, 3)));
    old_checkpoint_resumes_exactly(&fixture, |cp| cp["version"] = 3.into());
}

#[test]
fn a_version_2_run_scored_on_the_test_set_resumes_as_it_began() {
    // Version 2 scored every genome once on the official test set.
    let mut config: serde_json::Value = serde_json::from_str(&tiny_config(5, 3)).unwrap();
    config["protocol"]["tasks"][0]["score_on"] = "test".into();
    old_checkpoint_resumes_exactly(&Fixture::new(&as_before_v4(&config.to_string())), |cp| {
        // As version 2 wrote it: no split, no seed groups, no held-out stage.
        let o = cp.as_object_mut().unwrap();
        for key in ["reevaluate", "leaders", "holdout", "best_holdout"] {
            o.remove(key);
        }
        o.insert("version".into(), 2.into());
        let task = cp["config"]["protocol"]["tasks"][0]
            .as_object_mut()
            .unwrap();
        task.remove("score_on");
        task.remove("validation");
        cp["config"]["search"]
            .as_object_mut()
            .unwrap()
            .remove("max_seed_groups");
    });
}

/// The held-out fixture seeded with two classic optimizers; the rest random.
fn seeded_fixture() -> Fixture {
    let base = held_out_fixture();
    let patched = base.config_with(serde_json::json!({
        "search": { "seed_genomes": ["adamw", "lion"] }
    }));
    Fixture::new(&std::fs::read_to_string(patched).unwrap())
}

#[test]
fn every_history_line_says_where_its_genome_came_from_and_resume_keeps_it() {
    let f = seeded_fixture();
    // Killed twice, once inside generation 0 and once in a bred generation: the resumed run's
    // history, origins included, equals the uninterrupted one's.
    kill_and_resume(&f, &[], |h| vec![3, 2 * h.len() / 3]);
    let run = f.path("reference");
    let lines = history(&run);
    let kind = |e: &serde_json::Value| e["origin"]["kind"].as_str().map(str::to_string);
    let mut kinds = std::collections::BTreeSet::new();
    for e in &lines {
        match e["stage"].as_str().unwrap() {
            "holdout" => assert!(e.get("origin").is_none(), "{e}"),
            _ => {
                kinds.insert(kind(e).expect("a search evaluation records its origin"));
            }
        }
    }
    let gen0: Vec<_> = lines
        .iter()
        .filter(|e| e["generation"] == 0 && e["stage"] != "holdout")
        .collect();
    assert_eq!(
        gen0[0]["origin"],
        serde_json::json!({ "kind": "seed", "name": "adamw" })
    );
    assert_eq!(
        gen0[1]["origin"],
        serde_json::json!({ "kind": "seed", "name": "lion" })
    );
    assert!(gen0[2..]
        .iter()
        .all(|e| kind(e).as_deref() == Some("random")));
    for expected in ["seed", "random", "elite", "crossover", "mutation"] {
        assert!(
            kinds.contains(expected),
            "no {expected} origin in {kinds:?}"
        );
    }
    // A bred genome names its parents by hash; each parent was evaluated earlier.
    for e in lines
        .iter()
        .filter(|e| e["generation"].as_u64() > Some(0) && e["stage"] != "holdout")
    {
        let parents = match kind(e).as_deref() {
            Some("crossover") => e["origin"]["parents"].as_array().unwrap().clone(),
            Some("mutation" | "elite") => vec![e["origin"]["parent"].clone()],
            other => panic!("generation {} line from {other:?}", e["generation"]),
        };
        for p in parents {
            assert!(
                lines
                    .iter()
                    .any(|x| x["hash"] == p && x["generation"].as_u64() < e["generation"].as_u64()),
                "parent {p} of {e} was never evaluated before"
            );
        }
    }
    // A winner the search bred is not called a seed.
    let best: evolve::genome::Genome =
        evolve::genome::Genome::load(&run.join("best.json")).unwrap();
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    let seeded = gen0[..2].iter().any(|e| e["hash"] == best.hash().as_str());
    assert_eq!(summary.contains("is the seed genome"), seeded, "{summary}");
    // `evolve report` traces best.json back to generation 0.
    let out = ok(evolve(&["report", run.to_str().unwrap()]));
    let text = String::from_utf8(out.stdout).unwrap();
    let lineage = &text[text
        .find("## Lineage of best.json")
        .expect("a lineage section")..];
    assert!(lineage.contains("- generation 0 #"), "{lineage}");
    assert!(
        lineage.contains("seed genome") || lineage.contains(": random"),
        "{lineage}"
    );
}

#[test]
fn seed_genomes_are_checked_before_a_run_starts() {
    let f = held_out_fixture();
    for (seeds, needle) in [
        (serde_json::json!(["adamx"]), "field `search.seed_genomes[0]`: `adamx` is not a shipped genome; allowed: adam, adamw, sgd-momentum"),
        (serde_json::json!(["adam", "missing/genome.json"]), "missing/genome.json"),
    ] {
        let config = f.config_with(serde_json::json!({ "search": { "seed_genomes": seeds } }));
        let out = f.evolve(&["--config", config.to_str().unwrap(), "--out", f.path("never").to_str().unwrap()]).output().unwrap();
        assert!(!out.status.success());
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains(needle), "{said}");
        assert!(!f.path("never").exists(), "nothing was created");
    }
    // A genome file is a seed as a shipped name is; it must be a valid genome.
    let bad = f.path("bad.json");
    std::fs::write(
        &bad,
        r#"{"terms": [], "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}"#,
    )
    .unwrap();
    let config =
        f.config_with(serde_json::json!({ "search": { "seed_genomes": [bad.to_str().unwrap()] } }));
    let out = f
        .evolve(&[
            "--config",
            config.to_str().unwrap(),
            "--out",
            f.path("never").to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && said.contains("bad.json") && said.contains("field `terms`"),
        "{said}"
    );
}

#[test]
fn a_winner_that_is_a_seed_genome_unchanged_is_said_so() {
    // Every genome of the one generation is the seed Adam, so best.json can only be Adam.
    let f = held_out_fixture();
    let config = f.config_with(serde_json::json!({
        "search": { "seed_genomes": ["adam", "adam", "adam", "adam", "adam"], "generations": 1 }
    }));
    let run = f.path("run");
    let out = ok(f.evolve(&[
        "--config",
        config.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]));
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("best.json")).unwrap()).unwrap();
    assert_eq!(best["name"], "adam");
    let said = String::from_utf8_lossy(&out.stdout);
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    for text in [said.as_ref(), summary.as_str()] {
        assert!(
            text.contains("best.json is the seed genome adam, unchanged"),
            "{text}"
        );
    }
}

#[test]
fn lr_sensitivity_trains_each_genome_and_adam_at_every_scale_and_draws_them() {
    let f = Fixture::new(&tiny_config(3, 1));
    let genomes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("genomes");
    let (lion, adam) = (genomes.join("lion.json"), genomes.join("adam.json"));
    let plot = f.path("lr.svg");
    let data = ["--data-dir", f.root.to_str().unwrap(), "--device", "cpu"];
    let replay = |extra: &[&str]| {
        let config = f.config.to_str().unwrap();
        let mut args = vec![
            "replay",
            lion.to_str().unwrap(),
            "--config",
            config,
            "--json",
        ];
        args.extend_from_slice(&data);
        args.extend_from_slice(extra);
        let out = ok(evolve(&args));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let doc = replay(&[
        "--lr-scale",
        "0.1,1,10",
        "--lr-plot",
        plot.to_str().unwrap(),
    ]);
    let points = doc["lr_sensitivity"].as_array().unwrap();
    // Lion and Adam (not given, so added) at three scales each.
    assert_eq!(points.len(), 6, "{points:?}");
    let at = |name: &str, scale: f64| {
        points
            .iter()
            .find(|p| p["name"] == name && p["scale"].as_f64() == Some(scale))
            .unwrap_or_else(|| panic!("no {name} at {scale}"))
    };
    assert_eq!(
        at("adam", 1.0)["vs_adam"],
        1.0,
        "Adam at its own lr is the baseline"
    );
    assert!((at("lion", 10.0)["lr"].as_f64().unwrap() - 1e-3).abs() < 1e-15);
    // Scale 1 is the plain replay's score.
    assert_eq!(
        at("lion", 1.0)["vs_adam"],
        doc["genomes"][0]["score"]["vs_adam"]
    );
    assert_ne!(at("adam", 0.1)["vs_adam"], at("adam", 10.0)["vs_adam"]);
    let svg = std::fs::read_to_string(&plot).unwrap();
    assert!(svg.contains("lion") && svg.contains("adam") && svg.contains("<svg"));
    // Without --lr-scale the document has no sensitivity; a bad scale is refused by name.
    assert!(replay(&[]).get("lr_sensitivity").is_none());
    let out = evolve(&["replay", adam.to_str().unwrap(), "--lr-scale", "0,1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--lr-scale 0: allowed"));
}

/// The held-out fixture with a two-point tuning grid (AdamW with warmup and cosine decay at
/// two learning rates).
fn tuned_fixture() -> Fixture {
    let base = held_out_fixture();
    let patched = base.config_with(serde_json::json!({
        "tuning": { "lr": [1e-3, 1e-2], "weight_decay": [0.0] }
    }));
    Fixture::new(&std::fs::read_to_string(patched).unwrap())
}

#[test]
fn tuning_is_memoised_counted_and_resumes_exactly_and_its_best_point_is_the_tuned_baseline() {
    let f = tuned_fixture();
    // Killed inside the search protocol's grid and inside the held-out one.
    kill_and_resume(&f, &[], |_| vec![1, 3]);
    let run = f.path("reference");
    let lines = history(&run);
    let of = |stage: &str| -> Vec<&serde_json::Value> {
        lines.iter().filter(|e| e["stage"] == stage).collect()
    };
    let (tune, held_tune) = (of("tune"), of("holdout_tune"));
    assert_eq!(
        (tune.len(), held_tune.len()),
        (2, 2),
        "each grid point once per protocol"
    );
    assert_eq!(lines[0]["stage"], "tune", "tuned before the search begins");
    for e in tune.iter().chain(&held_tune) {
        assert_eq!(e["cached"], false);
        assert!(e["steps"].as_u64().unwrap() > 0);
        assert!(
            e["genome"]["cosine_decay"] == true && e["genome"]["warmup_steps"].as_u64() > Some(0)
        );
    }
    // The tuned baseline is the best grid point on each protocol's validation split.
    let best = |points: &[&serde_json::Value]| {
        points
            .iter()
            .max_by(|a, b| {
                a["score"]["vs_adam"]
                    .as_f64()
                    .unwrap()
                    .total_cmp(&b["score"]["vs_adam"].as_f64().unwrap())
            })
            .unwrap()["hash"]
            .clone()
    };
    let json: serde_json::Value =
        serde_json::from_slice(&ok(evolve(&["report", run.to_str().unwrap(), "--json"])).stdout)
            .unwrap();
    assert_eq!(json["held_out_tuned"]["hash"], best(&held_tune));
    assert_eq!(json["search_tuned"]["hash"], best(&tune));
    // It is a held-out candidate, reusing its grid score (no second training), and every row
    // is compared with it.
    let tuned_hash = best(&held_tune);
    let checks: Vec<_> = of("holdout")
        .into_iter()
        .filter(|e| e["hash"] == tuned_hash)
        .collect();
    assert!(!checks.is_empty() && checks.iter().all(|e| e["cached"] == true));
    assert!(json["rows"]
        .as_array()
        .unwrap()
        .iter()
        .all(|r| r["held_out_vs_tuned"].is_number()));
    // The grid's steps are counted in the run's steps.
    let cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("checkpoint.json")).unwrap())
            .unwrap();
    let trained: u64 = lines.iter().map(|e| e["steps"].as_u64().unwrap()).sum();
    assert!(cp["logbook"]["total_steps"].as_u64().unwrap() >= trained);
    let tuned = evolve::genome::Genome::load(&run.join("tuned.json")).unwrap();
    assert_eq!(
        tuned.hash(),
        tuned_hash.as_str().unwrap(),
        "tuned.json is the tuned baseline"
    );
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        summary.contains("Against the held-out tuned baseline"),
        "{summary}"
    );
}

#[test]
fn best_json_is_the_tuned_baseline_when_no_genome_beats_it_held_out() {
    // The grid's one point is Adam itself and every genome of the one generation is Adam: no
    // genome can beat the tuned baseline, so best.json must be it, and the run says so.
    let f = held_out_fixture();
    let config = f.config_with(serde_json::json!({
        "search": { "seed_genomes": ["adam", "adam", "adam", "adam", "adam"], "generations": 1 },
        "tuning": { "families": ["adam"], "lr": [1e-3], "weight_decay": [0.0],
                    "warmup_fraction": 0.0, "cosine_decay": false }
    }));
    let run = f.path("run");
    let out = ok(f.evolve(&[
        "--config",
        config.to_str().unwrap(),
        "--out",
        run.to_str().unwrap(),
    ]));
    let best = evolve::genome::Genome::load(&run.join("best.json")).unwrap();
    assert_eq!(best.hash(), evolve::genome::adam_hash());
    let said = String::from_utf8_lossy(&out.stdout);
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    for text in [said.as_ref(), summary.as_str()] {
        assert!(
            text.contains("No genome of the search beats the tuned baseline held out")
                && text.contains("best.json is the tuned baseline"),
            "{text}"
        );
    }
}

#[test]
fn replay_measures_time_to_the_targets_final_accuracy() {
    let f = Fixture::new(&tiny_config(3, 1));
    let genomes = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("genomes");
    let (lion, adamw) = (genomes.join("lion.json"), genomes.join("adamw.json"));
    let (lion, adamw) = (lion.to_str().unwrap(), adamw.to_str().unwrap());
    let config = f.config.to_str().unwrap();
    let data = ["--data-dir", f.root.to_str().unwrap(), "--device", "cpu"];
    let replay = |extra: &[&str]| {
        let mut args = vec!["replay", lion, adamw, "--config", config, "--json"];
        args.extend_from_slice(&data);
        args.extend_from_slice(extra);
        serde_json::from_slice::<serde_json::Value>(&ok(evolve(&args)).stdout).unwrap()
    };
    let plain = replay(&[]);
    let doc = replay(&["--eval-every", "10", "--target", adamw]);
    assert_eq!(doc["target"], "adamw");
    // Measuring along the way changes nothing in training.
    for i in 0..2 {
        assert_eq!(
            doc["genomes"][i]["score"]["vs_adam"],
            plain["genomes"][i]["score"]["vs_adam"]
        );
    }
    let run = &doc["genomes"][1]["score"]["tasks"][0]["runs"][0];
    let curve = run["curve"].as_array().unwrap();
    let steps: Vec<u64> = curve.iter().map(|p| p[0].as_u64().unwrap()).collect();
    assert_eq!(steps, [10, 20, 30]);
    assert_eq!(
        curve[2][1], run["val_acc"],
        "the last point is the final accuracy"
    );
    let rows = doc["time_to_target"].as_array().unwrap();
    assert_eq!(rows.len(), 3, "lion, adamw and adam on one task");
    let target = rows.iter().find(|r| r["name"] == "adamw").unwrap();
    assert_eq!(target["target_acc"], run["val_acc"]);
    assert_eq!(target["speedup"], 1.0, "the target against itself");
    for r in rows {
        let reached = r["steps"].as_u64();
        assert!(reached.is_none_or(|s| steps.contains(&s)), "{r}");
        assert_eq!(r["speedup"].is_number(), reached.is_some(), "{r}");
    }
    let table = String::from_utf8(
        ok(evolve(
            &[
                &[
                    "replay",
                    lion,
                    adamw,
                    "--config",
                    config,
                    "--eval-every",
                    "10",
                ][..],
                &data,
            ]
            .concat(),
        ))
        .stdout,
    )
    .unwrap();
    assert!(
        table.contains("time to target (adam's final accuracy"),
        "{table}"
    );
    let out = evolve(&["replay", lion, "--eval-every", "0"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("--eval-every 0: allowed: 1..="));
    let out = evolve(&["replay", lion, "--eval-every", "5", "--target", adamw])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("one of the genome files replayed"));
}

#[test]
fn the_published_genome_is_compared_with_held_out_and_never_handed_out() {
    let f = tuned_fixture();
    let run = f.path("run");
    ok(f.start(&run, &[]));
    let published = evolve::genome::shipped(evolve::genome::PUBLISHED).hash();
    let lines = history(&run);
    let held: Vec<&serde_json::Value> = lines.iter().filter(|e| e["stage"] == "holdout").collect();
    let compared = held
        .iter()
        .find(|e| e["hash"] == published.as_str())
        .expect("the published genome is trained held out");
    let best: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("best.json")).unwrap()).unwrap();
    let best_hash = evolve::genome::Genome::from_json(&best.to_string(), "best.json")
        .unwrap()
        .hash();
    assert_ne!(best_hash, published, "a comparator is never best.json");
    let report = ok(evolve(&["report", "--json", run.to_str().unwrap()]));
    let doc: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    let c = &doc["comparators"][0];
    assert_eq!(c["hash"], published.as_str());
    let held_out = compared["score"]["vs_adam"].as_f64().unwrap();
    assert!(
        (c["vs_adam"].as_f64().unwrap() - held_out).abs() < 1e-9,
        "{c} vs {held_out}"
    );
    assert!(
        c["vs_tuned"].as_f64().is_some() && c["best_vs_it"].as_f64().is_some(),
        "{c}"
    );
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        summary.contains(
            "Vs the published genome `marfinetz2025-evolved` (compared with, not a parent)"
        ),
        "{summary}"
    );
    // An unknown comparator is refused with the shipped names.
    let bad = f.config_with(serde_json::json!({ "holdout": { "comparators": ["adma"] } }));
    let out = evolve(&[
        "--config",
        bad.to_str().unwrap(),
        "--out",
        f.path("bad").to_str().unwrap(),
    ])
    .output()
    .unwrap();
    common::cli::refused(
        &out,
        &["holdout.comparators[0]", "adma", "marfinetz2025-evolved"],
    );
}
