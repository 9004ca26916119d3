//! Command tasks: a user's training script scores genomes through a documented contract (the
//! exported optimizer and genome as files, placeholders as whole arguments, one JSON line back).
//! A failing, hanging, malformed or NaN-reporting script is a diverged run with its reason and
//! stderr kept; hostile genome names never reach the command line; the script's process group is
//! killed at its time limit and when evolve is stopped; runs resume exactly and memoised, and the
//! workers executor gives the local history. The shipped example runs with the bootstrap venv.
mod common;

use common::cli::{bare, manifest, refused, run, send, wait_for};
use common::run::{history, kill_and_resume, ok, same_history, Fixture};
use std::path::{Path, PathBuf};

/// A stand-in for a training script, in plain Python (no torch: it starts in milliseconds). It
/// logs each call (its arguments, the genome's hash of contents, the seed), checks that the
/// optimizer file is the export, and answers by `--mode`. Adam always answers well, so the
/// baseline trains; other genomes meet the mode.
const FAKE: &str = r#"
import hashlib, json, os, subprocess, sys, time
args = sys.argv[1:]
opt = dict(zip(args[::2], args[1::2]))
mode, log = opt["--mode"], opt["--log"]
text = open(opt["--genome"]).read()
genome = json.loads(text)
with open(log, "a") as f:
    f.write(json.dumps({"argv": sys.argv, "genome": hashlib.sha256(text.encode()).hexdigest(), "seed": opt["--seed"]}) + "\n")
assert "class EvolvedOptimizer" in open(opt["--optimizer"]).read()
name = genome.get("name")
adam = genome["lr"] == 0.001 and name == "adam"
if mode == "hang" or (mode == "timeout" and not adam):
    child = subprocess.Popen(["sleep", "300"])
    with open(log + ".pids", "a") as f:
        f.write(f"{os.getpid()} {child.pid}\n")
    time.sleep(300)
if not adam and (mode == "exit" or name == "rmsprop"):
    print("boom: the learning rate is too high for this model", file=sys.stderr)
    sys.exit(3)
if not adam and mode == "malformed":
    print("epoch 1 done, accuracy 0.5")
    sys.exit(0)
if not adam and mode == "nan":
    print(json.dumps({"val_acc": float("nan")}))
    sys.exit(0)
acc = round(0.3 + 50 * genome["lr"] + int(opt["--seed"]) % 10 / 1000, 6)
print("some chatter before the result")
print(json.dumps({"val_acc": acc, "losses": [2.0, 1.5, 0.5], "val_loss": 0.75}))
"#;

fn python() -> PathBuf {
    manifest(".venv/bin/python")
}

/// A command task running the fake script in `mode`, logging to `log`.
fn task(name: &str, script: &Path, mode: &str, log: &Path, timeout_s: u64) -> serde_json::Value {
    serde_json::json!({
        "name": name,
        "command": [python(), script, "--mode", mode, "--optimizer", "{optimizer}", "--genome", "{genome}",
                    "--seed", "{seed}", "--steps", "{steps}", "--log", log],
        "steps": 40,
        "timeout_s": timeout_s
    })
}

fn config(tasks: Vec<serde_json::Value>, seeds: u64, search: serde_json::Value) -> String {
    serde_json::json!({
        "protocol": { "tasks": tasks, "seeds": seeds, "seed": 3 },
        "search": search
    })
    .to_string()
}

fn small_search(population: usize, generations: usize) -> serde_json::Value {
    serde_json::json!({
        "population": population, "generations": generations, "elites": 1, "tournament": 2, "seed": 11,
        "seed_genomes": ["adam", "lion", "rmsprop", "sgd-momentum"], "max_seed_groups": 1
    })
}

struct Setup {
    dir: tempfile::TempDir,
    script: PathBuf,
}

impl Setup {
    fn new() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("fake.py");
        std::fs::write(&script, FAKE).unwrap();
        Setup { dir, script }
    }

    /// A config of one well-behaved command task on `seeds` seeds, logging to `log`.
    fn ok_config(&self, log: &Path, seeds: u64) -> PathBuf {
        let tasks = vec![task("script", &self.script, "ok", log, 60)];
        self.write("c.json", &config(tasks, seeds, small_search(4, 1)))
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// `evolve replay GENOMES --config CONFIG --json`, parsed, and evolve's stderr.
    fn replay(&self, config: &Path, genomes: &[PathBuf]) -> (serde_json::Value, String) {
        let mut cmd = bare(&["replay", "--json", "--device", "cpu", "--config"]);
        cmd.arg(config).args(genomes);
        let out = run(cmd);
        let err = common::cli::stderr(&out);
        assert!(out.status.success(), "{err}");
        (serde_json::from_slice(&out.stdout).unwrap(), err)
    }
}

fn calls(log: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn genome(name: &str) -> PathBuf {
    manifest(&format!("genomes/{name}.json"))
}

#[test]
fn a_command_task_scores_genomes_through_the_contract() {
    let s = Setup::new();
    let log = s.path("calls.log");
    let cfg = s.ok_config(&log, 2);
    let (doc, _) = s.replay(&cfg, &[genome("adam"), genome("sgd-momentum")]);
    // Adam trains once per seed, through the same script; the genome once per seed.
    let calls = calls(&log);
    assert_eq!(calls.len(), 4, "{calls:?}");
    for (g, lr) in [(0, 0.001), (1, 0.01)] {
        for run in doc["genomes"][g]["score"]["tasks"][0]["runs"]
            .as_array()
            .unwrap()
        {
            let seed = run["seed"].as_u64().unwrap();
            let want = ((0.3 + 50.0 * lr + (seed % 10) as f64 / 1000.0) * 1e6f64).round() / 1e6;
            assert_eq!(
                run["val_acc"].as_f64().unwrap(),
                want,
                "the script's val_acc"
            );
            assert_eq!(run["diverged"], false);
        }
    }
    // The reported curve feeds the published formula: acc + 0.05·(1 − mean of the losses).
    let run = &doc["genomes"][1]["score"]["tasks"][0]["runs"][0];
    let acc = run["val_acc"].as_f64().unwrap();
    let fitness = run["fitness"].as_f64().unwrap();
    assert!((fitness - acc - 0.05 * (1.0 - 4.0 / 3.0_f64).max(0.0)).abs() < 1e-9);
    assert_eq!(doc["genomes"][0]["score"]["vs_adam"], 1.0);
    // Placeholders became whole arguments: the two files and the two numbers.
    let argv: Vec<String> = serde_json::from_value(calls[0]["argv"].clone()).unwrap();
    let after = |flag: &str| argv[argv.iter().position(|a| a == flag).unwrap() + 1].clone();
    assert!(after("--optimizer").ends_with("evolved_optimizer.py"));
    assert!(after("--genome").ends_with("genome.json"));
    assert_eq!(after("--steps"), "40");
    assert!(after("--seed").parse::<u64>().is_ok());
    assert!(
        !Path::new(&after("--optimizer")).exists(),
        "the run's files are removed after it"
    );
}

#[test]
fn a_failing_hanging_malformed_or_nan_script_is_a_diverged_run_with_its_reason() {
    let s = Setup::new();
    let log = s.path("calls.log");
    let modes = ["exit", "malformed", "nan", "timeout"];
    let tasks = modes
        .iter()
        .map(|m| task(m, &s.script, m, &log, if *m == "timeout" { 2 } else { 60 }))
        .collect();
    let cfg = s.write("c.json", &config(tasks, 1, small_search(4, 1)));
    let (doc, err) = s.replay(&cfg, &[genome("lion")]);
    let tasks = doc["genomes"][0]["score"]["tasks"].as_array().unwrap();
    let reasons = [
        "exited with status 3; stderr ends: boom: the learning rate is too high",
        "its last line is not the JSON result",
        "reported a NaN or infinite value",
        "timed out after 2 s and was killed",
    ];
    for ((t, reason), mode) in tasks.iter().zip(reasons).zip(modes) {
        let run = &t["runs"][0];
        assert_eq!(run["diverged"], true, "{mode}");
        assert_eq!(run["val_acc"], 0.0, "{mode}");
        let failure = run["failure"].as_str().unwrap();
        assert!(failure.contains(reason), "{mode}: {failure}");
        assert!(err.contains(reason), "the log says it too: {err}");
    }
    assert!(doc["genomes"][0]["score"]["vs_adam"].as_f64().unwrap() < 0.0);
    // The timed-out script and the child it started were both killed.
    let pids = std::fs::read_to_string(format!("{}.pids", log.display())).unwrap();
    for pid in pids.split_whitespace() {
        assert!(gone(pid), "process {pid} outlived its timeout");
    }
}

/// A process that no longer runs: gone, or a zombie no one has reaped yet.
fn gone(pid: &str) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat
            .rsplit(')')
            .next()
            .is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}

#[test]
fn hostile_genome_names_never_reach_the_command_line_and_bad_commands_are_refused() {
    let s = Setup::new();
    let log = s.path("calls.log");
    let cfg = s.ok_config(&log, 1);
    let pwned = s.path("pwned");
    let mut hostile: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(genome("adamw")).unwrap()).unwrap();
    hostile["name"] = format!(
        "{{seed}} --steps 0 \"; touch {} #\" $(touch {})",
        pwned.display(),
        pwned.display()
    )
    .into();
    let file = s.write("hostile.json", &hostile.to_string());
    let (doc, _) = s.replay(&cfg, &[file]);
    assert_eq!(
        doc["genomes"][0]["score"]["tasks"][0]["runs"][0]["diverged"],
        false
    );
    assert!(!pwned.exists(), "a shell ran the genome's name");
    for call in calls(&log) {
        let argv: Vec<String> = serde_json::from_value(call["argv"].clone()).unwrap();
        assert_eq!(argv.len(), 13, "one argument per placeholder: {argv:?}");
        assert!(
            argv.iter()
                .all(|a| !a.contains("touch") && !a.contains("{")),
            "{argv:?}"
        );
    }

    // Commands that would not keep their promise are refused, with the field named.
    let refuse = |command: serde_json::Value, needles: &[&str]| {
        let t = serde_json::json!({ "name": "bad", "command": command, "steps": 5 });
        let cfg = s.write("bad.json", &config(vec![t], 1, small_search(4, 1)));
        let mut cmd = bare(&["replay", "--device", "cpu", "--config"]);
        cmd.arg(&cfg).arg(genome("adam"));
        refused(&run(cmd), needles);
    };
    refuse(
        serde_json::json!(["python", "t.py", "--seed={seed}", "{optimizer}"]),
        &["protocol.tasks[0].command[2]", "whole arguments"],
    );
    refuse(
        serde_json::json!(["python", "t.py", "{optimiser}"]),
        &[
            "command[2]",
            "unknown placeholder",
            "{optimizer}, {genome}, {seed}, {steps}",
        ],
    );
    refuse(serde_json::json!(["python", "t.py"]), &["passes neither"]);
    refuse(serde_json::json!([]), &["tasks[0].command", "no program"]);
    refuse(
        serde_json::json!(["no-such-program-here", "{optimizer}"]),
        &[
            "task `bad`",
            "command[0]",
            "no-such-program-here",
            "not an executable file on PATH",
        ],
    );
    let t = serde_json::json!({ "name": "bad", "command": ["python", "{genome}"], "steps": 5, "dataset": "mnist" });
    let cfg = s.write("bad.json", &config(vec![t], 1, small_search(4, 1)));
    let mut cmd = bare(&["replay", "--config"]);
    cmd.arg(&cfg).arg(genome("adam"));
    refused(&run(cmd), &["`dataset` is for built-in tasks"]);
    let t = serde_json::json!({ "name": "bad", "steps": 5, "model": "tiny-cnn", "train_subset": 9, "batch": 3 });
    let cfg = s.write("bad.json", &config(vec![t], 1, small_search(4, 1)));
    let mut cmd = bare(&["replay", "--config"]);
    cmd.arg(&cfg).arg(genome("adam"));
    refused(
        &run(cmd),
        &["`dataset` is missing", "or else is a `command`"],
    );
}

/// A fixture whose search trains one command task in `mode` (its data root is unused).
fn command_fixture(s: &Setup, mode: &str, seeds: u64) -> (Fixture, PathBuf) {
    let log = s.path("calls.log");
    let f = Fixture::new(&config(
        vec![task("script", &s.script, mode, &log, 600)],
        seeds,
        small_search(6, 3),
    ));
    (f, log)
}

#[test]
fn sigterm_stops_the_run_and_kills_the_script_with_its_children() {
    let s = Setup::new();
    let (f, log) = command_fixture(&s, "hang", 1);
    let out = f.path("run");
    let child = f.start(&out, &[]).spawn().unwrap();
    let pids = PathBuf::from(format!("{}.pids", log.display()));
    wait_for("the script to start", || {
        pids.exists() && std::fs::read_to_string(&pids).unwrap().ends_with('\n')
    });
    send(&child, "TERM");
    let status = child.wait_with_output().unwrap().status;
    assert_eq!(status.code(), Some(143), "exits 128 + SIGTERM");
    for pid in std::fs::read_to_string(&pids).unwrap().split_whitespace() {
        assert!(gone(pid), "process {pid} outlived evolve's SIGTERM");
    }
}

#[test]
fn a_command_run_resumes_exactly_after_sigkill_without_rerunning_what_it_scored() {
    let s = Setup::new();
    let (f, log) = command_fixture(&s, "ok", 2);
    kill_and_resume(&f, &[], |h| vec![h.len() / 2]);
    // The reference run called the script once per (genome, seed) it trained: memoised.
    let all = calls(&log);
    let key = |c: &serde_json::Value| (c["genome"].to_string(), c["seed"].to_string());
    let reference = history(&f.path("reference"));
    let trained: usize = reference.iter().filter(|l| l["cached"] != true).count();
    let mut unique: Vec<_> = all.iter().map(key).collect();
    unique.sort();
    unique.dedup();
    assert!(trained >= 6, "{trained} evaluations");
    // Both runs together: each pair at most twice (once per run), and the killed run repeated
    // no more than the genome in flight when it was killed (one per seed).
    let twice = all.len() - unique.len();
    assert!(
        all.len() <= 2 * unique.len() + 2,
        "{} calls, {} pairs",
        all.len(),
        unique.len()
    );
    assert!(
        twice >= unique.len(),
        "the second run called the script too: {twice}"
    );
    // A genome that failed keeps its reason in its history line.
    let failed = reference
        .iter()
        .find(|l| l["genome"]["name"] == "rmsprop")
        .expect("rmsprop was a seed genome");
    let failure = failed["score"]["tasks"][0]["runs"][0]["failure"]
        .as_str()
        .unwrap();
    assert!(
        failure.contains("exited with status 3") && failure.contains("boom"),
        "{failure}"
    );
}

#[test]
fn two_worker_processes_run_a_command_task_as_the_local_run_does() {
    let s = Setup::new();
    let (f, _) = command_fixture(&s, "ok", 1);
    let local = f.path("local");
    ok(f.start(&local, &[]));
    let workers = f.path("workers");
    ok(f.start(&workers, &["--executor", "workers", "--workers", "2"]));
    same_history(&workers, &local);
}

#[test]
fn the_shipped_example_script_trains_genomes_through_the_export() {
    let s = Setup::new();
    let mut cfg: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(manifest("configs/command-task.json")).unwrap(),
    )
    .unwrap();
    let t = &mut cfg["protocol"]["tasks"][0];
    t["command"][0] = python().display().to_string().into();
    t["command"][1] = manifest("configs/command-task/train.py")
        .display()
        .to_string()
        .into();
    t["steps"] = 150.into();
    cfg["protocol"]["seeds"] = 1.into();
    let path = s.write("example.json", &cfg.to_string());
    let (doc, _) = s.replay(
        &path,
        &[genome("adam"), genome("lion"), genome("sgd-momentum")],
    );
    let acc = |g: usize| {
        doc["genomes"][g]["score"]["tasks"][0]["val_acc_mean"]
            .as_f64()
            .unwrap()
    };
    eprintln!(
        "adam {:.4}, lion {:.4}, sgd-momentum {:.4}",
        acc(0),
        acc(1),
        acc(2)
    );
    // The student learns the teacher's labels well past chance (10 classes) with Adam.
    assert!(acc(0) > 0.4, "adam {}", acc(0));
    for g in 0..3 {
        assert_eq!(
            doc["genomes"][g]["score"]["tasks"][0]["runs"][0]["diverged"],
            false
        );
        assert!(
            doc["genomes"][g]["score"]["tasks"][0]["score_loss_mean"]
                .as_f64()
                .unwrap()
                > 0.0
        );
    }
}
