//! The evolution loop end to end through the binary: reproducibility, caching, crash safety
//! (SIGKILL at random moments, then resume), refusal of corrupt or changed runs, export.
use evolve::genome::Genome;
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const CONFIG: &str = r#"{
  "protocol": {
    "tasks": [{ "name": "cifar10", "dataset": "cifar10", "model": "tiny-cnn", "train_subset": 400, "batch": 32, "steps": 30 }],
    "seeds": 1,
    "seed": 3
  },
  "search": { "population": 5, "generations": 3, "elites": 1, "tournament": 2, "seed": 11, "include_shipped": true }
}"#;

struct Fixture {
    _dir: tempfile::TempDir,
    root: PathBuf,
    config: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        evolve::data::synthetic::write_root(&root, 5).unwrap();
        let config = dir.path().join("tiny.json");
        std::fs::write(&config, CONFIG).unwrap();
        Fixture {
            root,
            config,
            _dir: dir,
        }
    }

    fn run_dir(&self, name: &str) -> PathBuf {
        self._dir.path().join(name)
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evolve"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.root)
            .arg("--device")
            .arg("cpu")
            .arg("--quiet");
        cmd
    }

    fn start(&self, out: &Path) -> Command {
        let mut cmd = self.command(&["--config", self.config.to_str().unwrap()]);
        cmd.arg("--out").arg(out);
        cmd
    }

    fn resume(&self, out: &Path) -> Command {
        let mut cmd = self.command(&[]);
        cmd.arg("--resume").arg(out);
        cmd
    }
}

fn ok(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{:?} failed: {}",
        cmd,
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// history.jsonl without the wall-clock field, one JSON value per line.
fn history(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            v.as_object_mut().unwrap().remove("seconds");
            v
        })
        .collect()
}

#[test]
fn same_seed_gives_the_same_run_and_identical_genomes_are_trained_once() {
    let f = Fixture::new();
    let (a, b) = (f.run_dir("a"), f.run_dir("b"));
    ok(f.start(&a));
    ok(f.start(&b));
    let (ha, hb) = (history(&a), history(&b));
    assert_eq!(ha.len(), 15, "population 5 × 3 generations");
    assert_eq!(ha, hb);
    assert_eq!(
        std::fs::read(a.join("best.json")).unwrap(),
        std::fs::read(b.join("best.json")).unwrap()
    );

    // Elites come back unchanged: their scores are reused, never retrained.
    let cached: Vec<&serde_json::Value> = ha.iter().filter(|e| e["cached"] == true).collect();
    assert!(!cached.is_empty());
    assert!(cached.iter().all(|e| e["steps"] == 0));
    let mut trained = std::collections::HashMap::new();
    for e in ha.iter().filter(|e| e["cached"] == false) {
        *trained
            .entry(e["hash"].as_str().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert!(
        trained.values().all(|&n| n == 1),
        "a genome was trained twice: {trained:?}"
    );

    for file in [
        "config.json",
        "checkpoint.json",
        "best.json",
        "summary.md",
        "fitness.svg",
    ] {
        assert!(a.join(file).exists(), "{file}");
    }
    let summary = std::fs::read_to_string(a.join("summary.md")).unwrap();
    assert!(
        summary.contains("total training steps")
            && summary.contains("| adam |")
            && summary.contains("## Best genome")
    );
    assert!(std::fs::read_to_string(a.join("fitness.svg"))
        .unwrap()
        .contains("<polyline"));
}

#[test]
fn sigkill_at_random_moments_then_resume_equals_an_uninterrupted_run() {
    let f = Fixture::new();
    let reference = f.run_dir("reference");
    ok(f.start(&reference));

    let run = f.run_dir("killed");
    let mut rng = rand::rngs::StdRng::seed_from_u64(2024);
    let mut kills = 0;
    loop {
        let mut cmd = if run.join("checkpoint.json").exists() {
            f.resume(&run)
        } else {
            f.start(&run)
        };
        let mut child = cmd.spawn().unwrap();
        if kills < 5 {
            std::thread::sleep(Duration::from_millis(rng.gen_range(300..1500)));
            if child.try_wait().unwrap().is_none() {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                continue;
            }
        }
        let status = child.wait().unwrap();
        assert!(status.success());
        break;
    }
    assert!(
        kills >= 3,
        "the run finished before it could be killed often enough ({kills})"
    );
    assert_eq!(history(&run), history(&reference));
    assert_eq!(
        std::fs::read(run.join("best.json")).unwrap(),
        std::fs::read(reference.join("best.json")).unwrap()
    );
}

#[test]
fn corrupt_checkpoint_and_changed_protocol_are_refused_without_losing_anything() {
    let f = Fixture::new();
    let run = f.run_dir("run");
    ok(f.start(&run));
    let history_before = std::fs::read(run.join("history.jsonl")).unwrap();

    // A changed protocol on resume.
    let out = f.resume(&run).arg("--steps").arg("31").output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("differ"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Starting over into a run directory.
    let out = f.start(&run).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("already holds a run"));

    // A truncated checkpoint.
    let checkpoint = std::fs::read(run.join("checkpoint.json")).unwrap();
    std::fs::write(
        run.join("checkpoint.json"),
        &checkpoint[..checkpoint.len() / 2],
    )
    .unwrap();
    let out = f.resume(&run).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("checkpoint.json") && err.contains("corrupt"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(run.join("history.jsonl")).unwrap(),
        history_before
    );
    assert_eq!(
        std::fs::read(run.join("checkpoint.json")).unwrap(),
        &checkpoint[..checkpoint.len() / 2]
    );
}

#[test]
fn export_writes_the_best_genome_as_json_and_as_pytorch() {
    let f = Fixture::new();
    let run = f.run_dir("run");
    ok(f.start(&run));
    let json = run.join("exported.json");
    ok({
        let mut c = Command::new(env!("CARGO_BIN_EXE_evolve"));
        c.arg("export").arg(&run).arg("--out").arg(&json);
        c
    });
    assert_eq!(
        Genome::load(&json).unwrap(),
        Genome::load(&run.join("best.json")).unwrap()
    );

    let py = run.join("evolved_optimizer.py");
    ok({
        let mut c = Command::new(env!("CARGO_BIN_EXE_evolve"));
        c.arg("export")
            .arg(&run)
            .arg("--format")
            .arg("pytorch")
            .arg("--out")
            .arg(&py);
        c
    });
    let text = std::fs::read_to_string(&py).unwrap();
    assert!(text.contains("class EvolvedOptimizer(torch.optim.Optimizer)"));
    assert!(text.contains("× Adam"), "docstring gives the scores");

    let out = ok({
        let mut c = Command::new(env!("CARGO_BIN_EXE_evolve"));
        c.arg("export")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("genomes/lion.json"))
            .arg("--format")
            .arg("pytorch");
        c
    });
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"kind\": \"lion\""));
}
