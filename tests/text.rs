//! The text dataset and the gpt-tiny language model: the corpus is cut into records that leave
//! the validation and test splits unread by training, Debian's `fortunes` is checked by its
//! checksums, bad corpora are refused by name, and stacked transformer members equal separate
//! runs as the CNNs' do.
mod common;

use common::cli::{bare, refused, run};
use common::{rel, train_task};
use evolve::config::Config;
use evolve::genome::{shipped, Genome};
use evolve::train::data::{loader::BatchStream, DatasetKind};
use evolve::train::data::{synthetic, text, Dataset, Source};
use evolve::train::models::{gpt, ModelKind};
use evolve::train::{train_stacked, ScoreOn, Task};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

const RECORD: usize = text::BLOCK as usize + 1;

fn lm_task(steps: u64) -> Task {
    Task {
        name: "lm".into(),
        dataset: DatasetKind::Text,
        model: ModelKind::GptTiny,
        train_subset: 200,
        batch: 8,
        steps,
        precision: Default::default(),
        layout: Default::default(),
        score_on: ScoreOn::Validation,
        validation: 40,
        score_images: None,
        score_batch: 64,
        eval_every: None,
        corpus: None,
        transformer: gpt::Shape {
            context: 32,
            width: 32,
            depth: 2,
            heads: 4,
        },
        command: None,
    }
}

/// A synthetic corpus of `records` whole records and `extra` bytes more.
fn corpus(dir: &Path, records: usize, extra: usize) -> PathBuf {
    let path = dir.join("corpus.txt");
    synthetic::write_text(&path, records * RECORD + extra, 3).unwrap();
    path
}

fn load(path: &Path) -> Dataset {
    Dataset::open(
        &Source {
            kind: DatasetKind::Text,
            corpus: Some(path.to_path_buf()),
        },
        Path::new("unused"),
    )
    .unwrap()
}

/// A loaded synthetic corpus of 300 whole records (270 for training, 30 for testing).
fn corpus_of_300() -> (tempfile::TempDir, Dataset) {
    let dir = tempfile::tempdir().unwrap();
    let data = load(&corpus(dir.path(), 300, 0));
    (dir, data)
}

fn bytes_of(t: &Tensor) -> Vec<u8> {
    Vec::<u8>::try_from(t.reshape([-1])).unwrap()
}

#[test]
fn records_are_the_corpus_in_order_with_the_test_split_at_its_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = corpus(dir.path(), 300, 77);
    let bytes = std::fs::read(&path).unwrap();
    let d = load(&path);
    assert_eq!(d.train_x.size(), [270, text::BLOCK]);
    assert_eq!(d.test_x.size(), [30, text::BLOCK]);
    assert_eq!(d.train_x.kind(), Kind::Uint8);
    for (split, first) in [(&d.train_x, 0usize), (&d.test_x, 270)] {
        for row in [0, 7, split.size()[0] - 1] {
            let start = (first + row as usize) * RECORD;
            assert_eq!(bytes_of(&split.get(row)), bytes[start..start + RECORD - 1]);
        }
    }
    // Targets are the next bytes: a record's input shifted by one.
    let start = 5 * RECORD;
    assert_eq!(
        bytes_of(&d.train_y.get(5)),
        bytes[start + 1..start + RECORD]
    );
    assert_eq!(
        text::train_count(&path).unwrap(),
        270,
        "the count from file sizes agrees with the load"
    );
}

#[test]
fn no_training_window_reads_the_validation_split() {
    let (_dir, d) = corpus_of_300();
    let task = lm_task(1);
    let pool = task.train_pool(&d);
    assert_eq!(pool, 270 - 40);
    let _rng = evolve::train::rng_lock();
    tch::manual_seed(1);
    let mut stream = BatchStream::new(&d, pool, 10_000, 64).with_context(task.context());
    let max = stream.indices().max().int64_value(&[]);
    assert!(
        max < pool,
        "a training record {max} lies in the validation split"
    );
    assert_eq!(
        stream.indices().size(),
        [pool],
        "the whole pool is the subset"
    );
    // Every training window is a crop of one training record: the same bytes, shifted by one.
    let (x, y) = stream.next_batch();
    assert_eq!(x.size(), [64, 32]);
    assert_eq!(x.kind(), Kind::Int64);
    let all = bytes_of(&d.train_x.narrow(0, 0, pool));
    let records: Vec<&[u8]> = all.chunks(text::BLOCK as usize).collect();
    let (xs, ys) = (
        bytes_of(&x.to_kind(Kind::Uint8)),
        bytes_of(&y.to_kind(Kind::Uint8)),
    );
    for (wx, wy) in xs.chunks(32).zip(ys.chunks(32)) {
        assert_eq!(wx[1..], wy[..31], "targets are the next bytes");
        let found = records.iter().any(|r| r.windows(32).any(|w| w == wx));
        assert!(found, "a window not inside any training record");
    }
    // Scoring reads every whole window of the validation records.
    let (sx, sy) = task.scoring_split(&d);
    assert_eq!(sx.size(), [40 * (text::BLOCK / 32), 32]);
    assert_eq!(
        bytes_of(&sx.narrow(0, 0, 4)),
        bytes_of(&d.train_x.get(pool)),
        "the first validation record, cut in four"
    );
    assert_eq!(sy.size(), sx.size());
}

#[test]
fn an_empty_tiny_or_missing_corpus_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let source = |p: &Path| Source {
        kind: DatasetKind::Text,
        corpus: Some(p.to_path_buf()),
    };
    let err = |p: &Path| {
        Dataset::open(&source(p), dir.path())
            .err()
            .unwrap()
            .to_string()
    };
    let m = err(&empty);
    assert!(
        m.contains("empty") && m.contains("holds no text files"),
        "{m}"
    );
    let tiny = dir.path().join("tiny.txt");
    std::fs::write(&tiny, "to be or not to be").unwrap();
    let m = err(&tiny);
    assert!(
        m.contains("tiny.txt") && m.contains("18 bytes is too small"),
        "{m}"
    );
    assert!(text::train_count(&tiny).is_err());
    let m = err(&dir.path().join("nowhere"));
    assert!(
        m.contains("apt-get install fortunes") && m.contains("`corpus`"),
        "{m}"
    );
}

/// The shared copy of Debian's `fortunes`, as CI and every developer machine have it.
fn shared_fortunes() -> PathBuf {
    common::cli::manifest("../shared/datasets/fortunes")
}

#[test]
fn fortunes_is_checked_file_by_file_against_debians_checksums() {
    let shared = shared_fortunes();
    assert_eq!(text::check_fortunes(&shared), Ok(43));
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("fortunes");
    std::fs::create_dir(&copy).unwrap();
    for entry in std::fs::read_dir(&shared).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), copy.join(entry.file_name())).unwrap();
    }
    let mut altered = std::fs::read(copy.join("pets")).unwrap();
    altered[10] ^= 1;
    std::fs::write(copy.join("pets"), altered).unwrap();
    std::fs::remove_file(copy.join("zippy")).unwrap();
    let problem = text::check_fortunes(&copy).unwrap_err();
    assert!(
        problem.contains("pets differs") && problem.contains("zippy is missing"),
        "{problem}"
    );
    // `data verify` reports it and fails; with the true files it passes and says so.
    let out = run(bare(&["data", "verify", dir.path().to_str().unwrap()]));
    refused(&out, &["pets differs", "zippy is missing"]);
    std::fs::copy(shared.join("pets"), copy.join("pets")).unwrap();
    std::fs::copy(shared.join("zippy"), copy.join("zippy")).unwrap();
    let out = run(bare(&["data", "verify", dir.path().to_str().unwrap()]));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", common::cli::stderr(&out));
    assert!(said.contains("43 files match Debian's fortunes"), "{said}");
    // The whole corpus loads: about 2.5 MB in 129-byte records, a tenth of them for testing.
    let d = load(&copy);
    let records = d.train_x.size()[0] + d.test_x.size()[0];
    assert!((19_000..21_000).contains(&records), "{records} records");
}

#[test]
fn a_text_task_is_validated_with_its_fields_named() {
    let config = |task: &str| {
        let text = format!(
            r#"{{"protocol": {{"tasks": [{task}], "seeds": 1}}, "search": {{"population": 4, "generations": 1}}}}"#
        );
        Config::from_json(&text, "lm.json")
            .err()
            .map(|e| e.to_string())
    };
    let base = r#""name": "lm", "train_subset": 100, "batch": 8, "steps": 10"#;
    let m = config(&format!(
        r#"{{{base}, "dataset": "cifar10", "model": "gpt-tiny"}}"#
    ))
    .unwrap();
    assert!(
        m.contains("tasks[0].model") && m.contains("tiny-cnn"),
        "{m}"
    );
    let m = config(&format!(
        r#"{{{base}, "dataset": "text", "model": "tiny-cnn"}}"#
    ))
    .unwrap();
    assert!(
        m.contains("tasks[0].model") && m.contains("allowed: gpt-tiny"),
        "{m}"
    );
    let m = config(&format!(
        r#"{{{base}, "dataset": "text", "model": "gpt-tiny", "transformer": {{"width": 30, "heads": 4}}}}"#
    ))
    .unwrap();
    assert!(
        m.contains("tasks[0].transformer.width") && m.contains("dividing width"),
        "{m}"
    );
    let m = config(&format!(
        r#"{{{base}, "dataset": "text", "model": "gpt-tiny", "transformer": {{"context": 500}}}}"#
    ))
    .unwrap();
    assert!(
        m.contains("transformer.context") && m.contains("1..=128"),
        "{m}"
    );
    let m = config(&format!(
        r#"{{{base}, "dataset": "mnist", "model": "tiny-cnn", "corpus": "x.txt"}}"#
    ))
    .unwrap();
    assert!(m.contains("tasks[0].corpus"), "{m}");
    assert_eq!(
        config(&format!(
            r#"{{{base}, "dataset": "text", "model": "gpt-tiny", "corpus": "x.txt"}}"#
        )),
        None
    );
}

#[test]
fn stacked_transformer_members_equal_separate_runs_in_float64() {
    let (_dir, data) = corpus_of_300();
    let task = lm_task(20);
    let genomes: Vec<Genome> = ["adam", "lion", "eve"].iter().map(|n| shipped(n)).collect();
    let (losses, vars) = train_task(&task, &genomes, &data, Kind::Double, task.steps);
    for k in 0..genomes.len() {
        let (alone, alone_vars) =
            train_task(&task, &genomes[k..=k], &data, Kind::Double, task.steps);
        let loss_err = rel(&losses.select(1, k as i64), &alone.select(1, 0));
        let var_err = vars
            .iter()
            .zip(&alone_vars)
            .map(|((_, s), (_, v))| rel(&s.get(k as i64), &v.get(0)))
            .fold(0.0, f64::max);
        eprintln!(
            "{}: losses {loss_err:.2e}, parameters {var_err:.2e}",
            genomes[k].label()
        );
        assert!(
            loss_err <= 1e-12 && var_err <= 1e-12,
            "member {k}: {loss_err:e} {var_err:e}"
        );
    }
    // The members did learn, and differently.
    let first = losses.get(0);
    let last = losses.get(task.steps as i64 - 1);
    assert!(
        bool::try_from(last.lt_tensor(&first).all()).unwrap(),
        "{first} → {last}"
    );
    assert!(rel(&vars[0].1.get(0), &vars[0].1.get(1)) > 1e-3);
}

#[test]
fn a_transformer_run_is_deterministic_scores_bits_per_byte_and_survives_a_diverging_member() {
    let (_dir, data) = corpus_of_300();
    let task = lm_task(30);
    let mut exploding = shipped("sgd-momentum");
    exploding.lr = 1e5;
    let genomes = vec![shipped("adam"), exploding];
    let once = || train_stacked(&task, &genomes, 9, &data, true, None, &|_| {}).unwrap();
    let (a, b) = (once(), once());
    assert_eq!(a[0].losses, b[0].losses, "same seed, same run");
    assert_eq!(a[0].score_acc, b[0].score_acc);
    assert!(a[1].diverged && !a[0].diverged);
    assert_eq!((a[1].score_acc, a[1].score_loss), (0.0, None));
    // A grammar of six-word sentences: after 30 steps the next byte is far from a guess.
    assert!(
        a[0].score_acc > 0.2,
        "next-byte accuracy {}",
        a[0].score_acc
    );
    let bits = a[0].score_loss.unwrap() / std::f64::consts::LN_2;
    assert!((0.5..8.0).contains(&bits), "{bits} bits per byte");
    assert!(a[0].test_acc.is_some_and(|t| t > 0.2));
    let score = evolve::train::fitness::TaskScore::from_runs("lm", a[..1].to_vec());
    assert!((score.bits_per_byte().unwrap() - bits).abs() < 1e-12);
}

#[test]
fn a_language_model_task_in_the_held_out_protocol_is_reported_in_bits_per_byte() {
    let base = common::run::Fixture::new(&common::run::tiny_config(4, 1));
    let patched = base.config_with(serde_json::json!({
        "holdout": {
            "protocol": {
                "tasks": [{ "name": "lm", "dataset": "text", "model": "gpt-tiny", "train_subset": 300,
                            "batch": 8, "steps": 20, "validation": 100,
                            "transformer": { "context": 32, "width": 32, "depth": 1, "heads": 2 } }],
                "seeds": 1, "seed": 9
            },
            "every": 1, "top": 1
        }
    }));
    let f = common::run::Fixture::new(&std::fs::read_to_string(patched).unwrap());
    let run = f.path("run");
    common::run::ok(f.start(&run, &[]));
    let summary = std::fs::read_to_string(run.join("summary.md")).unwrap();
    assert!(
        summary.contains("lm (20 steps)") || summary.contains("lm 1."),
        "{summary}"
    );
    assert!(summary.contains("bits/byte"), "{summary}");
    for line in common::run::history(&run)
        .iter()
        .filter(|l| l["stage"] == "holdout")
    {
        let run = &line["score"]["tasks"][0]["runs"][0];
        assert!(
            run["score_loss"].as_f64().is_some_and(|l| l > 0.0),
            "{line}"
        );
    }
}

#[test]
fn bf16_mixed_precision_trains_the_transformer_reproducibly_and_changes_results() {
    let (_dir, data) = corpus_of_300();
    let fp32 = lm_task(30);
    let bf16 = Task {
        precision: evolve::train::models::Precision::Bf16,
        ..lm_task(30)
    };
    let run = |task: &Task| {
        train_stacked(task, &[shipped("adam")], 2, &data, false, None, &|_| {})
            .unwrap()
            .remove(0)
    };
    let (a, b, f) = (run(&bf16), run(&bf16), run(&fp32));
    assert_eq!(a.losses, b.losses, "bf16 is reproducible");
    assert_ne!(a.losses, f.losses, "bf16 computes differently");
    assert_ne!(a.score_loss, f.score_loss, "and scores differently");
    eprintln!(
        "bf16 {:?} {} fp32 {:?} {}",
        a.score_loss, a.score_acc, f.score_loss, f.score_acc
    );
    assert!(a.score_acc > 0.2, "bf16 next-byte accuracy {}", a.score_acc);
}
