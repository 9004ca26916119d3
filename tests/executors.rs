//! Executors: the same run trained in worker processes or as Slurm job arrays gives the history
//! and best genome of a local run, survives failed tasks, a killed driver and a signal, and
//! refuses to start without Slurm. The Slurm tests run on a real cluster (`.ci/slurm-up`); CI
//! fails without one, a developer without one sees them skipped.
mod common;
use common::run::{
    history_lines, kill_and_resume, kill_at_line, ok, same_history, tiny_config, Fixture,
};
use evolve::config::Config;
use evolve::run::executor::{BatchDir, ItemTrainer, WorkItem, WorkResult};
use evolve::train::fitness::TaskScore;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Six genomes, two generations, survivors re-scored on a second seed group: every kind of
/// window (new genomes, re-scoring, Adam's baseline extended) goes through the executor.
fn fixture() -> Fixture {
    Fixture::new(&tiny_config(6, 2).replace(r#""max_seed_groups": 1"#, r#""max_seed_groups": 2"#))
}

/// Whether a Slurm cluster answers here. Under CI it must; elsewhere the skip is said out loud
/// (on the terminal, past the test harness's capture).
fn slurm(test: &str) -> bool {
    let up = Command::new("sinfo")
        .args(["-h", "-o", "%T"])
        .output()
        .is_ok_and(|o| o.status.success() && !o.stdout.is_empty());
    if !up {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true but no Slurm cluster answers here; .ci/run starts one with .ci/slurm-up"
        );
        let _ = writeln!(
            std::io::stderr(),
            "{test}: skipped: no sbatch (run .ci/slurm-up as root to test the Slurm executor)"
        );
    }
    up
}

fn same_best(run: &Path, reference: &Path) {
    assert_eq!(
        std::fs::read(run.join("best.json")).unwrap(),
        std::fs::read(reference.join("best.json")).unwrap()
    );
}

/// Waits (for an event, with a generous cap) until `done` holds, failing if `child` exits first.
fn wait_for(child: &mut std::process::Child, what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(done(), "the run exited ({status}) before {what}");
        }
        assert!(start.elapsed() < Duration::from_secs(600), "never {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn jobs(run: &Path, launcher: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join(launcher).join("jobs.json"))
        .ok()
        .and_then(|t| serde_json::from_str(&t).ok())
        .unwrap_or_default()
}

#[test]
fn two_worker_processes_give_the_local_history_and_best_genome() {
    let f = fixture();
    let local = f.path("local");
    ok(f.start(&local, &["--batch-candidates", "2"]));
    let workers = f.path("workers");
    let flags = [
        "--batch-candidates",
        "2",
        "--executor",
        "workers",
        "--workers",
        "2",
    ];
    ok(f.start(&workers, &flags));
    same_history(&workers, &local);
    same_best(&workers, &local);
    assert!(
        !workers.join("work").exists() && !workers.join("results").exists(),
        "merged batches leave no work files"
    );
    let logs = std::fs::read_dir(workers.join("workers/logs"))
        .unwrap()
        .count();
    assert!(logs >= 2, "one log per worker task ({logs})");
}

#[test]
fn under_slurm_a_run_and_a_run_killed_three_times_give_the_local_history() {
    if !slurm("under_slurm_a_run_and_a_run_killed_three_times_give_the_local_history") {
        return;
    }
    let f = fixture();
    let flags = ["--batch-candidates", "2", "--executor", "slurm"];
    // The reference is an uninterrupted Slurm run; the killed one resumes (under Slurm, from its
    // saved config), adopting the jobs its killed driver left queued or running.
    kill_and_resume(&f, &flags, |h| vec![1, h.len() / 3, 2 * h.len() / 3]);
    let local = f.path("local");
    ok(f.start(&local, &["--batch-candidates", "2"]));
    let slurm_run = f.path("reference");
    same_history(&slurm_run, &local);
    same_best(&slurm_run, &local);
    let scripts = std::fs::read_dir(slurm_run.join("slurm"))
        .unwrap()
        .filter(|e| e.as_ref().unwrap().path().extension() == Some("sbatch".as_ref()))
        .count();
    assert!(
        scripts >= 3,
        "one batch script per submitted job ({scripts})"
    );
    assert!(jobs(&slurm_run, "slurm").is_empty(), "every job merged");
}

/// A local run killed after 3 lines, its `results` folder made unwritable for workers.
fn run_whose_workers_cannot_write(f: &Fixture) -> std::path::PathBuf {
    let run = f.path("run");
    kill_at_line(f, &run, 3);
    std::fs::write(run.join("results"), "a file where workers put results").unwrap();
    run
}

#[test]
fn a_failed_slurm_task_is_resubmitted_and_the_run_completes_exactly() {
    if !slurm("a_failed_slurm_task_is_resubmitted_and_the_run_completes_exactly") {
        return;
    }
    let f = fixture();
    let reference = f.path("reference");
    ok(f.start(&reference, &[]));
    let run = run_whose_workers_cannot_write(&f);
    // Started locally, resumed under Slurm: the executor is not part of the run.
    let mut child = f
        .resume(&run, &["--executor", "slurm", "--retries", "3"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, "a task was resubmitted", || {
        jobs(&run, "slurm").len() >= 2
    });
    std::fs::remove_file(run.join("results")).unwrap();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("resubmitting (retry 1 of 3)"), "{stderr}");
    same_history(&run, &reference);
    same_best(&run, &reference);
}

#[test]
fn a_task_failing_past_its_retries_stops_the_run_naming_job_task_log_and_genomes() {
    let mut kinds = vec!["workers"];
    if slurm("a_task_failing_past_its_retries_stops_the_run_naming_job_task_log_and_genomes") {
        kinds.push("slurm");
    }
    for kind in kinds {
        let f = fixture();
        let reference = f.path("reference");
        ok(f.start(&reference, &[]));
        let run = run_whose_workers_cannot_write(&f);
        let out = f
            .resume(&run, &["--executor", kind, "--retries", "1"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{kind}: {stderr}");
        for part in [
            &format!("{kind} job "),
            " task 0 ended (",
            "after 1 retries; log: ",
            "it held genome(s) ",
            "resume with `evolve --resume",
        ] {
            assert!(stderr.contains(part), "{kind}: `{part}` not in: {stderr}");
        }
        let error = stderr.lines().find(|l| l.starts_with("error:")).unwrap();
        let log = error
            .split("log: ")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap();
        let log = std::fs::read_to_string(log).unwrap();
        assert!(log.contains("results"), "{kind}: the log says why: {log}");
        // The driver's error quotes the end of that log, so the cause is on the terminal.
        let (_, quoted) = stderr.split_once("The log ends:\n").unwrap();
        let last = log.lines().rfind(|l| !l.trim().is_empty()).unwrap();
        assert!(
            quoted.contains(last),
            "{kind}: `{last}` not quoted: {stderr}"
        );
        // Nothing was lost: the run goes on locally once the cause is fixed.
        std::fs::remove_file(run.join("results")).unwrap();
        ok(f.resume(&run, &["--executor", "local"]));
        same_history(&run, &reference);
    }
}

#[test]
fn sigterm_cancels_the_runs_slurm_jobs_saves_and_says_how_to_resume() {
    if !slurm("sigterm_cancels_the_runs_slurm_jobs_saves_and_says_how_to_resume") {
        return;
    }
    let f = fixture();
    let run = f.path("run");
    let mut child = f
        .start(&run, &["--executor", "slurm"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&mut child, "a job was submitted", || {
        !jobs(&run, "slurm").is_empty()
    });
    let submitted: Vec<String> = jobs(&run, "slurm")
        .iter()
        .map(|j| j["id"].as_str().unwrap().to_string())
        .collect();
    ok({
        let mut kill = Command::new("kill");
        kill.args(["-TERM", &child.id().to_string()]);
        kill
    });
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(143), "{stderr}");
    assert!(stderr.contains("Resume with: evolve --resume"), "{stderr}");
    let queue = ok({
        let mut q = Command::new("squeue");
        q.args(["--me", "--noheader", "--array", "--format=%F %T"]);
        q
    });
    let queue = String::from_utf8_lossy(&queue.stdout);
    for line in queue.lines() {
        let job = line.split_whitespace().next().unwrap();
        assert!(
            !submitted.iter().any(|s| s == job) || line.contains("COMPLETING"),
            "job {job} still queued or running after SIGTERM: {line}"
        );
    }
    // The resumed run (under Slurm again, from its saved config) is the local one.
    ok(f.resume(&run, &[]));
    let local = f.path("local");
    ok(f.start(&local, &[]));
    same_history(&run, &local);
}

#[test]
fn without_sbatch_the_slurm_executor_stops_before_submitting_anything() {
    let f = fixture();
    let run = f.path("run");
    let out = f
        .start(&run, &["--executor", "slurm"])
        .env("PATH", f.path("no-such-bin"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("cannot run `sbatch`") && stderr.contains("--executor local or workers"),
        "{stderr}"
    );
    assert!(!run.join("slurm").exists() && !run.join("work").exists());
    assert_eq!(history_lines(&run), 0);
}

#[test]
fn a_worker_writes_the_in_process_result_and_redoes_nothing_when_it_is_there() {
    let f = fixture();
    let config = Config::load(&f.config).unwrap();
    let item = WorkItem {
        protocol: config.protocol,
        group: 1,
        genomes: vec![
            evolve::genome::shipped("adam"),
            evolve::genome::shipped("lion"),
        ],
        batch_candidates: 2,
        report_test: true,
        prune: None,
    };
    // A worker works only in a run directory: one whose first evaluation is on disk.
    let run = f.path("run");
    kill_at_line(&f, &run, 1);
    let dir = BatchDir::new(&run, "0000-full-1");
    let key = item.key();
    std::fs::create_dir_all(&dir.work).unwrap();
    std::fs::write(dir.item(&key), serde_json::to_string(&item).unwrap()).unwrap();
    std::fs::write(dir.manifest("tasks-0.json"), format!(r#"[["{key}"]]"#)).unwrap();
    let worker = |task: &str| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_evolve"));
        cmd.args(["worker", "--device", "cpu", "--data-dir"])
            .arg(&f.root)
            .arg("--run")
            .arg(&run)
            .args(["--batch", "0000-full-1", "--manifest", "tasks-0.json"])
            .args(["--task", task]);
        cmd.output().unwrap()
    };
    assert!(worker("0").status.success());
    let written = std::fs::read(dir.result(&key)).unwrap();
    let result: WorkResult = serde_json::from_slice(&written).unwrap();
    let mut trainer = ItemTrainer::new(tch::Device::Cpu, &f.root, None);
    let here = trainer.train(&item).unwrap();
    assert_eq!(
        untimed(result.scores.clone()),
        untimed(here.scores),
        "another process, the same scores"
    );
    // A damaged result (a run missing) is not merged: it counts as not there.
    let mut damaged = result.clone();
    damaged.scores[0][0].runs.clear();
    std::fs::write(dir.result(&key), serde_json::to_string(&damaged).unwrap()).unwrap();
    assert!(dir.read_result(&item).is_none());
    std::fs::write(dir.result(&key), &written).unwrap();
    assert!(dir.read_result(&item).is_some());
    let out = worker("0");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("result already there"));
    assert_eq!(std::fs::read(dir.result(&key)).unwrap(), written);
    // A task index the task list does not have is refused, naming the list.
    let out = worker("1");
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("holds 1 task(s)"));
}

/// Scores without their wall-clock fields.
fn untimed(mut scores: Vec<Vec<TaskScore>>) -> Vec<Vec<TaskScore>> {
    for task in scores.iter_mut().flatten() {
        task.seconds = 0.0;
        for run in &mut task.runs {
            run.seconds = 0.0;
            run.train_seconds = 0.0;
        }
    }
    scores
}
