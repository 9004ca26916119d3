//! A tiny evolution through the binary: synthetic data in the real formats, a config, and
//! commands that start and resume runs in a temporary folder.
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One CIFAR-10 task on `tiny-cnn`, 30 steps: a whole run takes seconds on a CPU.
pub fn tiny_config(population: usize, generations: usize) -> String {
    format!(
        r#"{{
  "protocol": {{
    "tasks": [{{ "name": "cifar10", "dataset": "cifar10", "model": "tiny-cnn", "train_subset": 400, "batch": 32, "steps": 30 }}],
    "seeds": 1,
    "seed": 3
  }},
  "search": {{ "population": {population}, "generations": {generations}, "elites": 1, "tournament": 2, "seed": 11, "include_shipped": true }}
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
        evolve::data::synthetic::write_root(&root, 5).unwrap();
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
