//! A tiny evolution through the binary: synthetic data in the real formats, a config, and
//! commands that start and resume runs in a temporary folder.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// One CIFAR-10 task on `tiny-cnn`, 30 steps, scored on a 200-image validation split, every
/// genome scored once: a whole run takes seconds on a CPU.
pub fn tiny_config(population: usize, generations: usize) -> String {
    format!(
        r#"{{
  "protocol": {{
    "tasks": [{{ "name": "cifar10", "dataset": "cifar10", "model": "tiny-cnn", "train_subset": 400, "batch": 32, "steps": 30, "validation": 200 }}],
    "seeds": 1,
    "seed": 3
  }},
  "search": {{ "population": {population}, "generations": {generations}, "elites": 1, "tournament": 2, "seed": 11, "include_shipped": true, "max_seed_groups": 1 }}
}}"#
    )
}

pub struct Fixture {
    dir: tempfile::TempDir,
    pub root: PathBuf,
    pub config: PathBuf,
    text: String,
}

impl Fixture {
    pub fn new(config: &str) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("data");
        evolve::train::data::synthetic::write_root(&root, 5).unwrap();
        let path = dir.path().join("tiny.json");
        std::fs::write(&path, config).unwrap();
        Fixture {
            dir,
            root,
            config: path,
            text: config.to_string(),
        }
    }

    /// A path in the fixture's temporary folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// `evolve ARGS` on the synthetic data, on the CPU, quiet.
    pub fn evolve(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evolve"));
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.root)
            .arg("--device")
            .arg("cpu")
            .arg("--quiet");
        cmd
    }

    pub fn start(&self, out: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.evolve(&["--config", self.config.to_str().unwrap()]);
        cmd.arg("--out").arg(out).args(extra);
        cmd
    }

    pub fn resume(&self, out: &Path, extra: &[&str]) -> Command {
        let mut cmd = self.evolve(extra);
        cmd.arg("--resume").arg(out);
        cmd
    }

    /// The fixture's config with `patch`'s sections merged in, written to a file.
    pub fn config_with(&self, patch: serde_json::Value) -> PathBuf {
        let mut config: serde_json::Value = serde_json::from_str(&self.text).unwrap();
        for (section, fields) in patch.as_object().unwrap() {
            let slot = &mut config[section];
            if slot.is_null() {
                *slot = serde_json::json!({});
            }
            for (key, value) in fields.as_object().unwrap() {
                slot[key] = value.clone();
            }
        }
        let path = self.path("patched.json");
        std::fs::write(&path, config.to_string()).unwrap();
        path
    }
}

/// Runs `cmd` and asserts that it succeeded.
pub fn ok(mut cmd: Command) -> Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The number of lines in a run's `history.jsonl` (0 before it exists).
pub fn history_lines(dir: &Path) -> usize {
    std::fs::read_to_string(dir.join("history.jsonl"))
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

/// history.jsonl without the wall-clock field, one JSON value per line.
pub fn history(dir: &Path) -> Vec<serde_json::Value> {
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

/// Line by line, so that a difference names its line.
pub fn same_history(run: &Path, reference: &Path) {
    let (got, want) = (history(run), history(reference));
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert_eq!(g, w, "history line {} differs", i + 1);
    }
    assert_eq!(got.len(), want.len(), "history lengths");
}

/// Kills a run of `f` each time its history reaches one of the lengths `targets` picks from
/// the uninterrupted run's history, resumes it, and compares the two.
pub fn kill_and_resume(
    f: &Fixture,
    extra: &[&str],
    targets: impl FnOnce(&[serde_json::Value]) -> Vec<usize>,
) {
    let reference = f.path("reference");
    ok(f.start(&reference, extra));
    let targets = targets(&history(&reference));
    assert!(
        !targets.is_empty() && targets.windows(2).all(|w| w[0] < w[1]) && targets[0] > 0,
        "kill targets {targets:?}: too few lines"
    );
    let run = f.path("killed");
    for &target in &targets {
        let mut cmd = match run.join("checkpoint.json").exists() {
            true => f.resume(&run, &[]),
            false => f.start(&run, extra),
        };
        let mut child = cmd.spawn().unwrap();
        let waiting = std::time::Instant::now();
        while history_lines(&run) < target {
            // Checked after the exit, so a run that writes its last lines and exits between two
            // polls is not mistaken for one that stopped short.
            if child.try_wait().unwrap().is_some() {
                assert!(history_lines(&run) >= target, "exited before line {target}");
                break;
            }
            assert!(waiting.elapsed() < Duration::from_secs(600), "no progress");
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = child.kill(); // SIGKILL (a run that already exited needs none)
        child.wait().unwrap();
    }
    ok(f.resume(&run, &[]));
    same_history(&run, &reference);
    assert_eq!(
        std::fs::read(run.join("best.json")).unwrap(),
        std::fs::read(reference.join("best.json")).unwrap()
    );
}

/// Starts a run of `f` into `run` and SIGKILLs it once its history has `lines` lines.
pub fn kill_at_line(f: &Fixture, run: &Path, lines: usize) {
    let mut child = f.start(run, &[]).spawn().unwrap();
    let waiting = std::time::Instant::now();
    while history_lines(run) < lines {
        assert!(waiting.elapsed() < Duration::from_secs(600), "no progress");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `config` (JSON) computing as evolve did before checkpoint version 4 (NCHW, 1,000 images a
/// scoring pass), for runs that stand in for ones an older evolve started.
pub fn as_before_v4(config: &str) -> String {
    let mut v: serde_json::Value = serde_json::from_str(config).unwrap();
    for task in v["protocol"]["tasks"].as_array_mut().unwrap() {
        task["layout"] = "nchw".into();
        task["score_batch"] = 1000.into();
    }
    v.to_string()
}

/// Kills a run of `f` (a fixture made with `as_before_v4`) after 7 history lines, rewrites its
/// checkpoint with `rewrite` (as an older version wrote it), resumes it and checks that it equals
/// an uninterrupted run.
pub fn old_checkpoint_resumes_exactly(f: &Fixture, rewrite: impl FnOnce(&mut serde_json::Value)) {
    version_4_checkpoint_resumes_exactly(f, |cp| {
        // No version before 4 wrote a task's layout or scoring batch.
        for task in cp["config"]["protocol"]["tasks"].as_array_mut().unwrap() {
            let task = task.as_object_mut().unwrap();
            assert_eq!(task.remove("layout"), Some("nchw".into()), "as_before_v4");
            assert_eq!(
                task.remove("score_batch"),
                Some(1000.into()),
                "as_before_v4"
            );
        }
        rewrite(cp);
    });
}

/// Kills a run at its 7th history line, writes its checkpoint as version 4 laid it out, then
/// as `rewrite` makes it, resumes it and checks it ends as an uninterrupted run does.
pub fn version_4_checkpoint_resumes_exactly(
    f: &Fixture,
    rewrite: impl FnOnce(&mut serde_json::Value),
) {
    let reference = f.path("reference");
    ok(f.start(&reference, &[]));
    let run = f.path("old");
    kill_at_line(f, &run, 7);
    let path = run.join("checkpoint.json");
    let mut cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    as_version_4(&mut cp);
    rewrite(&mut cp);
    std::fs::write(&path, serde_json::to_string_pretty(&cp).unwrap()).unwrap();
    ok(f.resume(&run, &[]));
    // The generation the old run was in has no recorded lineage; the rest is the same, line by
    // line, and the generations bred after the resume record theirs.
    let unrecorded = serde_json::json!({ "kind": "unrecorded" });
    let (mut got, mut want) = (history(&run), history(&reference));
    for (g, w) in got.iter_mut().zip(want.iter_mut()) {
        if g["origin"] == unrecorded {
            g.as_object_mut().unwrap().remove("origin");
            w.as_object_mut().unwrap().remove("origin");
        }
    }
    assert_eq!(got, want);
    assert!(
        got.last().unwrap().get("origin").is_some() || got.last().unwrap()["stage"] == "holdout"
    );
}

/// A version-5 checkpoint as version 4 laid it out: its records loose at the top level, and
/// `best` a copy of the first leader.
fn as_version_4(cp: &mut serde_json::Value) {
    assert_eq!(cp["version"], 5, "written by this evolve");
    let o = cp.as_object_mut().unwrap();
    let mut population = o.remove("population").unwrap();
    let mut stages = o.remove("stages").unwrap();
    let mut fame = o.remove("hall_of_fame").unwrap();
    let logbook = o.remove("logbook").unwrap();
    let take = |group: &mut serde_json::Value, key: &str| group[key].take();
    let best = fame["leaders"].get(0).cloned().unwrap_or_default();
    let moved = [
        ("generation", take(&mut population, "generation")),
        ("population", take(&mut population, "genomes")),
        ("reevaluate", take(&mut population, "reevaluate")),
        ("screen", take(&mut stages, "screen")),
        ("full", take(&mut stages, "full")),
        ("holdout", take(&mut stages, "holdout")),
        ("leaders", take(&mut fame, "leaders")),
        ("best_holdout", take(&mut fame, "best_holdout")),
        ("best", best),
    ];
    for (key, value) in moved {
        o.insert(key.into(), value);
    }
    for (key, value) in logbook.as_object().unwrap() {
        o.insert(key.clone(), value.clone());
    }
    o.insert("version".into(), 4.into());
}
