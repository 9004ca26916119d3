//! Genome files: validation with precise messages, canonical form and content hash, `evolve check`.
mod common;
use evolve::genome::{Genome, TermKind, SHIPPED};
use std::process::Command;

const GOOD: &str = r#"{"terms": [{"kind": "adam", "weight": 1.0}], "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}"#;

fn error_of(text: &str) -> String {
    Genome::from_json(text, "bad.json")
        .expect_err("should be rejected")
        .to_string()
}

fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(
            message.contains(part),
            "message {message:?} should mention {part:?}"
        );
    }
}

#[test]
fn a_minimal_genome_loads_with_defaults() {
    let g = Genome::from_json(GOOD, "good.json").unwrap();
    assert!(g.bias_correction && g.use_m && g.use_v && !g.cosine_decay);
    assert_eq!(g.weight_decay, 0.0);
    assert_eq!(g.grad_clip, None);
}

#[test]
fn unknown_term_kind_lists_the_known_ones() {
    let m = error_of(&GOOD.replace("\"adam\"", "\"adamax\""));
    assert_mentions(&m, &["bad.json", "terms[0].kind", "adamax", "line 1"]);
    for kind in TermKind::ALL {
        assert_mentions(&m, &[kind.name()]);
    }
}

#[test]
fn unknown_field_is_named() {
    let m = error_of(&GOOD.replace("\"lr\"", "\"learning_rate\""));
    assert_mentions(
        &m,
        &["bad.json", "learning_rate", "expected one of", "`lr`"],
    );
}

#[test]
fn beta_outside_unit_interval_is_rejected() {
    assert_mentions(
        &error_of(&GOOD.replace("0.999", "1.0")),
        &["bad.json", "beta2", "1", "[0, 1)"],
    );
    assert_mentions(
        &error_of(&GOOD.replace("0.9,", "-0.1,")),
        &["beta1", "-0.1", "[0, 1)"],
    );
}

#[test]
fn non_finite_numbers_are_rejected() {
    // JSON has no NaN; an overflowing literal is the way a file says infinity.
    assert_mentions(
        &error_of(&GOOD.replace("0.001", "1e999")),
        &["bad.json", "line 1"],
    );
    let mut g = Genome::from_json(GOOD, "x").unwrap();
    g.lr = f64::NAN;
    assert_mentions(
        &g.validate().unwrap_err(),
        &["lr", "NaN", "not a finite number"],
    );
    g.lr = 1e-3;
    g.terms[0].weight = f64::INFINITY;
    assert_mentions(&g.validate().unwrap_err(), &["terms[0].weight", "inf"]);
}

#[test]
fn empty_term_list_is_rejected() {
    let m = error_of(&GOOD.replace(r#"[{"kind": "adam", "weight": 1.0}]"#, "[]"));
    assert_mentions(&m, &["bad.json", "terms", "empty", "adam", "sign"]);
}

#[test]
fn negative_steps_are_rejected() {
    let m = error_of(&GOOD.replace("\"eps\"", "\"warmup_steps\": -5, \"eps\""));
    assert_mentions(&m, &["bad.json", "warmup_steps", "-5"]);
}

#[test]
fn malformed_json_gives_line_and_column() {
    let m = error_of("{\n  \"terms\": [\n    {\"kind\": \"adam\" \"weight\": 1}\n}");
    assert_mentions(&m, &["bad.json", "malformed JSON", "line 3", "column"]);
}

#[test]
fn other_bad_values_name_their_field() {
    assert_mentions(&error_of(&GOOD.replace("1e-8", "0")), &["eps", "positive"]);
    assert_mentions(
        &error_of(&GOOD.replace("\"eps\"", "\"weight_decay\": -1, \"eps\"")),
        &["weight_decay", "negative"],
    );
    assert_mentions(
        &error_of(&GOOD.replace("\"eps\"", "\"grad_clip\": 0, \"eps\"")),
        &["grad_clip", "positive"],
    );
    assert_mentions(
        &error_of(&GOOD.replace(
            "\"eps\"",
            "\"lookahead\": {\"k\": 0, \"alpha\": 0.5}, \"eps\"",
        )),
        &["lookahead.k"],
    );
}

#[test]
fn every_shipped_genome_is_valid_and_round_trips() {
    for (name, text) in SHIPPED {
        let g = Genome::from_json(text, name).unwrap();
        let again = Genome::from_json(&serde_json::to_string(&g).unwrap(), name).unwrap();
        assert_eq!(g, again, "{name}");
        assert_eq!(g.hash(), again.hash());
    }
}

#[test]
fn the_same_optimizer_written_two_ways_hashes_the_same() {
    let published = common::genome_file("marfinetz2025-evolved");
    let mut rewritten = published.canonical();
    rewritten.name = Some("another name".into());
    rewritten.terms.reverse();
    assert_eq!(rewritten.terms.len(), 2, "sign and adam merged");
    assert_eq!(published.hash(), rewritten.hash());
    let mut different = published.clone();
    different.beta1 = 0.9;
    assert_ne!(published.hash(), different.hash());
    let mut zero_term = published.clone();
    zero_term.terms.push(evolve::genome::Term {
        kind: TermKind::Gradient,
        weight: 0.0,
    });
    assert_eq!(published.hash(), zero_term.hash());
}

#[test]
fn check_command_accepts_good_files_and_rejects_bad_ones() {
    let exe = env!("CARGO_BIN_EXE_evolve");
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.json");
    let bad = dir.path().join("bad.json");
    std::fs::write(&good, GOOD).unwrap();
    std::fs::write(&bad, GOOD.replace("0.999", "1.5")).unwrap();
    let out = Command::new(exe).arg("check").arg(&good).output().unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_mentions(
        &stdout,
        &["ok", "adam×1.000", "lr 1.000e-3", "β1 0.9000", "bias-corr"],
    );
    let out = Command::new(exe)
        .arg("check")
        .arg(&good)
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert_mentions(
        &String::from_utf8_lossy(&out.stdout),
        &["bad.json", "beta2", "1.5", "[0, 1)"],
    );
}

#[test]
fn genomes_round_trip_through_json_bit_for_bit() {
    // A value that serde_json's default (fast, inexact) float parser reads back one ULP off.
    let lr = 0.0014499033624410568f64;
    let text = GOOD.replace("0.001", &format!("{lr:?}"));
    let g = Genome::from_json(&text, "x").unwrap();
    assert_eq!(g.lr.to_bits(), lr.to_bits());
    let again = Genome::from_json(&serde_json::to_string(&g).unwrap(), "x").unwrap();
    assert_eq!(again.hash(), g.hash());
}
