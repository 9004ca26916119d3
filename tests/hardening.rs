//! Hardening, tried as a hostile user would: no write goes outside the run or through a planted
//! link, a hand-run worker trusts nothing it is handed, no size can panic or start without end,
//! a run that cannot start leaves nothing behind, and every refusal says what was found. Each
//! case runs the binary and checks that nothing changed on disk.
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::cli::{bare, manifest, refused, run, wait_for};
use common::run::{history, history_lines, kill_at_line, ok, tiny_config, Fixture};
use evolve::config::Config;
use evolve::run::executor::{BatchDir, WorkItem};

const VICTIM: &str = "a file outside the run that nobody asked evolve to write\n";

fn fixture() -> Fixture {
    Fixture::new(&tiny_config(4, 2))
}

/// A file outside every run, to point planted links at.
fn victim(f: &Fixture) -> PathBuf {
    let path = f.path("victim.txt");
    std::fs::write(&path, VICTIM).unwrap();
    path
}

fn assert_victim_untouched(path: &Path) {
    assert_eq!(std::fs::read_to_string(path).unwrap(), VICTIM, "{path:?}");
}

fn is_link(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink())
}

/// Links at `.NAME.tmp<PID>` in `dir` for the next few thousand process ids: the name every
/// atomic write used before temporary files were made exclusive, under a random name.
fn plant_temporary_links(dir: &Path, name: &str, target: &Path) -> Vec<PathBuf> {
    let last: u32 = std::fs::read_to_string("/proc/sys/kernel/ns_last_pid")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (1..3000)
        .map(|i| {
            let link = dir.join(format!(".{name}.tmp{}", (last + i) % max));
            symlink(target, &link).unwrap();
            link
        })
        .collect()
}

/// A run directory whose first evaluations are on disk (killed, resumable).
fn started_run(f: &Fixture) -> PathBuf {
    let run = f.path("run");
    kill_at_line(f, &run, 2);
    run
}

/// The tiny run's protocol as a work item of `genomes`.
fn work_item(f: &Fixture, genomes: Vec<evolve::genome::Genome>) -> WorkItem {
    WorkItem {
        protocol: Config::load(&f.config).unwrap().protocol,
        group: 0,
        genomes,
        batch_candidates: 1,
        report_test: false,
        prune: None,
    }
}

/// Writes `item` and a task list naming it into `run/work/<batch>/`, as a driver does.
fn hand_out(run: &Path, batch: &str, item: &WorkItem) -> BatchDir {
    let dir = BatchDir::new(run, batch);
    std::fs::create_dir_all(&dir.work).unwrap();
    let key = item.key();
    std::fs::write(dir.item(&key), serde_json::to_string(item).unwrap()).unwrap();
    std::fs::write(dir.manifest("tasks-0.json"), format!(r#"[["{key}"]]"#)).unwrap();
    dir
}

/// `evolve replay GENOME --config CONFIG` on the fixture's data, on the CPU.
fn replay(f: &Fixture, genome: &Path, config: &Path) -> Command {
    let mut cmd = bare(&["replay", genome.to_str().unwrap(), "--device", "cpu"]);
    cmd.arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(&f.root);
    cmd
}

fn worker(f: &Fixture, run: &Path, batch: &str, manifest: &str) -> Command {
    let mut cmd = bare(&["worker", "--device", "cpu", "--task", "0"]);
    cmd.arg("--data-dir")
        .arg(&f.root)
        .arg("--run")
        .arg(run)
        .args(["--batch", batch, "--manifest", manifest]);
    cmd
}

#[test]
fn no_write_follows_a_link_planted_at_a_temporary_name() {
    let f = fixture();
    let victim = victim(&f);
    // An export.
    let exports = f.path("exports");
    std::fs::create_dir(&exports).unwrap();
    let planted = plant_temporary_links(&exports, "out.json", &victim);
    let out = exports.join("out.json");
    ok(bare(&[
        "export",
        manifest("genomes/adam.json").to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]));
    assert!(!is_link(&out) && std::fs::read_to_string(&out).unwrap().contains("\"adam\""));
    assert!(
        planted.iter().all(|l| is_link(l)),
        "a planted link was replaced"
    );

    // Checkpoint saves, history, reports and plots of a resumed run.
    let run_dir = started_run(&f);
    for name in [
        "checkpoint.json",
        "best.json",
        "summary.md",
        "fitness.svg",
        "config.json",
    ] {
        plant_temporary_links(&run_dir, name, &victim);
    }
    ok(f.resume(&run_dir, &[]));
    assert_eq!(history_lines(&run_dir), 8);
    for name in ["checkpoint.json", "best.json", "summary.md", "fitness.svg"] {
        assert!(!is_link(&run_dir.join(name)), "{name} became a link");
    }

    // A worker's result.
    let item = work_item(&f, vec![evolve::genome::shipped("adam")]);
    let dir = hand_out(&run_dir, "0099-full-0", &item);
    std::fs::create_dir_all(&dir.results).unwrap();
    plant_temporary_links(&dir.results, &format!("{}.json", item.key()), &victim);
    ok(worker(&f, &run_dir, "0099-full-0", "tasks-0.json"));
    assert!(dir.read_result(&item).is_some());
    assert!(!is_link(&dir.result(&item.key())));
    assert_victim_untouched(&victim);
}

#[test]
fn a_worker_refuses_what_leads_outside_the_run_before_it_trains() {
    let f = fixture();
    let victim = victim(&f);
    let run_dir = started_run(&f);
    let item = work_item(&f, vec![evolve::genome::shipped("adam")]);
    let batch = "0099-full-0";
    let dir = hand_out(&run_dir, batch, &item);
    let outside = f.path("outside");
    std::fs::create_dir(&outside).unwrap();
    let absolute = outside.to_str().unwrap().to_string();
    for (what, batch, manifest) in [
        (
            "a batch climbing out",
            "../../../outside/esc",
            "tasks-0.json",
        ),
        ("an absolute batch", absolute.as_str(), "tasks-0.json"),
        ("a manifest climbing out", batch, "../../../victim.txt"),
        ("an absolute manifest", batch, victim.to_str().unwrap()),
    ] {
        let out = run(worker(&f, &run_dir, batch, manifest));
        refused(&out, &["not a plain name"]);
        assert!(out.stdout.is_empty(), "{what}: trained before refusing");
    }
    assert!(std::fs::read_dir(&outside).unwrap().next().is_none());
    assert!(
        !run_dir.join("results").exists(),
        "nothing trained, nothing written"
    );

    // A folder that is not a run gets no results/ folder.
    let not_a_run = f.path("not-a-run");
    std::fs::create_dir_all(not_a_run.join("work").join(batch)).unwrap();
    refused(
        &run(worker(&f, &not_a_run, batch, "tasks-0.json")),
        &["not an evolve run directory"],
    );
    assert!(!not_a_run.join("results").exists());

    // A result path that is a link out of the run, and a dangling results/<batch> link: both
    // found before training, never written through.
    std::fs::create_dir_all(&dir.results).unwrap();
    symlink(&victim, dir.result(&item.key())).unwrap();
    let out = run(worker(&f, &run_dir, batch, "tasks-0.json"));
    refused(&out, &["symbolic link"]);
    assert!(!String::from_utf8_lossy(&out.stdout).contains("trained"));
    std::fs::remove_dir_all(&dir.results).unwrap();
    symlink(f.path("nowhere"), &dir.results).unwrap();
    let out = run(worker(&f, &run_dir, batch, "tasks-0.json"));
    let err = refused(&out, &["not a folder of the run directory"]);
    assert!(!err.contains("os error 17"), "{err}");
    assert!(!String::from_utf8_lossy(&out.stdout).contains("trained"));
    assert_victim_untouched(&victim);
}

#[test]
fn a_worker_trains_no_item_a_run_would_refuse() {
    let f = fixture();
    let run_dir = started_run(&f);
    for (field, value) in [("lr", -1.0), ("eps", 0.0)] {
        let mut genome = evolve::genome::shipped("adam");
        match field {
            "lr" => genome.lr = value,
            _ => genome.eps = value,
        }
        let item = work_item(&f, vec![genome]);
        let batch = format!("0099-full-{field}");
        let dir = hand_out(&run_dir, &batch, &item);
        let out = run(worker(&f, &run_dir, &batch, "tasks-0.json"));
        refused(&out, &["refusing to train this work item", field]);
        assert!(
            !dir.result(&item.key()).exists(),
            "{field}: a score was written"
        );
    }
    // An item edited after it was handed out no longer matches its key.
    let item = work_item(&f, vec![evolve::genome::shipped("adam")]);
    let dir = hand_out(&run_dir, "0099-full-edited", &item);
    let mut edited = item.clone();
    edited.group = 5;
    std::fs::write(
        dir.item(&item.key()),
        serde_json::to_string(&edited).unwrap(),
    )
    .unwrap();
    refused(
        &run(worker(&f, &run_dir, "0099-full-edited", "tasks-0.json")),
        &["content hash", &item.key()],
    );
    // A task list naming a path instead of a key.
    std::fs::write(dir.manifest("tasks-1.json"), r#"[["../../checkpoint"]]"#).unwrap();
    refused(
        &run(worker(&f, &run_dir, "0099-full-edited", "tasks-1.json")),
        &["item key"],
    );
}

#[test]
fn sizes_are_refused_at_load_before_anything_is_written() {
    let f = fixture();
    let adam = manifest("genomes/adam.json");
    let replay = |extra: &[&str]| {
        let mut cmd = replay(&f, &adam, &f.config);
        cmd.args(extra);
        run(cmd)
    };
    for steps in ["10000000000", "9223372036854775808", "18446744073709551615"] {
        refused(
            &replay(&["--steps", steps]),
            &["steps", steps, "1..=1000000"],
        );
    }
    refused(
        &replay(&["--seeds", "1000000000000"]),
        &["seeds", "1..=1000"],
    );
    let out_dir = f.path("never");
    for (flag, value, needle) in [
        ("--population", "1000000000000", "population 2..=10000"),
        ("--generations", "1000000000000000000", "generations"),
        ("--seeds", "1000000000000", "seeds"),
        ("--steps", "18446744073709551615", "steps"),
    ] {
        refused(&run(f.start(&out_dir, &[flag, value])), &[needle]);
        assert!(
            !out_dir.exists(),
            "{flag} {value}: created the run directory"
        );
    }
    let config = f.config_with(serde_json::json!({ "search": { "population": 4 } }));
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(r#""steps":30"#, r#""steps":18446744073709551615"#);
    std::fs::write(&config, text).unwrap();
    let mut cmd = f.evolve(&["--config", config.to_str().unwrap()]);
    cmd.arg("--out").arg(&out_dir);
    refused(&run(cmd), &["steps 18446744073709551615", "1..=1000000"]);
    assert!(!out_dir.exists());
    refused(
        &run(bare(&[
            "replay",
            adam.to_str().unwrap(),
            "--batch-candidates",
            "100000",
        ])),
        &["at most 1024"],
    );
}

#[test]
fn only_regular_files_are_read_and_a_fifo_never_blocks() {
    let f = fixture();
    let fifo = f.path("fifo.json");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let adam = manifest("genomes/adam.json");
    let cases: [Vec<&str>; 4] = [
        vec!["check", fifo.to_str().unwrap()],
        vec!["check", "/dev/zero"],
        vec!["replay", fifo.to_str().unwrap()],
        vec![
            "replay",
            adam.to_str().unwrap(),
            "--config",
            fifo.to_str().unwrap(),
        ],
    ];
    for args in cases {
        let mut child = bare(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("the refusal", || child.try_wait().unwrap().is_some());
        let out = child.wait_with_output().unwrap();
        let err = refused(&out, &[]);
        // `check` reports each file on standard output.
        let said = String::from_utf8_lossy(&out.stdout) + err.as_str();
        assert!(said.contains("not a regular file"), "{args:?}: {said}");
    }
}

#[test]
fn a_run_that_cannot_start_leaves_no_directory_behind() {
    let f = fixture();
    let out_dir = f.path("run");
    let holdout = |task: serde_json::Value| {
        serde_json::json!({ "holdout": {
            "protocol": { "tasks": [task], "seeds": 1, "seed": 9 }, "every": 1, "top": 2 } })
    };
    let mnist = serde_json::json!({ "name": "mnist", "dataset": "mnist", "model": "tiny-cnn",
        "train_subset": 300, "batch": 32, "steps": 10, "validation": 200 });
    let start = |config: &Path| {
        let mut cmd = f.evolve(&["--config", config.to_str().unwrap()]);
        cmd.arg("--out").arg(&out_dir);
        run(cmd)
    };
    // A missing held-out dataset.
    let mnist_dir = f.root.join("mnist");
    let aside = f.path("mnist-aside");
    std::fs::rename(&mnist_dir, &aside).unwrap();
    refused(
        &start(&f.config_with(holdout(mnist.clone()))),
        &["mnist", "not found"],
    );
    assert!(
        !out_dir.exists(),
        "a missing held-out dataset created the run"
    );
    std::fs::rename(&aside, &mnist_dir).unwrap();
    // A held-out validation split larger than the dataset.
    let mut huge = mnist.clone();
    huge["validation"] = 100_000.into();
    refused(
        &start(&f.config_with(holdout(huge))),
        &["task `mnist`", "validation", "1000 training images"],
    );
    assert!(!out_dir.exists());
    // Devices that do not exist on this machine.
    let cuda = f.config_with(serde_json::json!({
        "executor": { "kind": "workers", "devices": ["cuda:99"] } }));
    refused(
        &start(&cuda),
        &["executor.devices", "cuda:99", "CUDA device(s)"],
    );
    assert!(!out_dir.exists());
    // Corrected, the same --out starts.
    ok({
        let mut cmd = f.evolve(&["--config", f.config_with(holdout(mnist)).to_str().unwrap()]);
        cmd.arg("--out").arg(&out_dir).args(["--generations", "1"]);
        cmd
    });
    assert!(history_lines(&out_dir) > 0);
}

#[test]
fn a_run_failing_before_its_first_evaluation_removes_what_it_made() {
    let f = fixture();
    // Right sizes (the start-up check passes), a label out of range (found when loaded).
    let cifar = f.root.join("cifar10");
    std::fs::remove_dir_all(&cifar).unwrap();
    evolve::train::data::synthetic::write_cifar10(&cifar, 200, 200, false, 5).unwrap();
    let batch = cifar.join("data_batch_1.bin");
    let mut bytes = std::fs::read(&batch).unwrap();
    bytes[0] = 200;
    std::fs::write(&batch, &bytes).unwrap();
    let out_dir = f.path("run");
    let err = refused(
        &run(f.start(&out_dir, &[])),
        &["label", "files were removed"],
    );
    assert!(!out_dir.exists(), "left behind: {err}");
    // Into an empty folder that was there before: the folder stays, empty.
    std::fs::create_dir(&out_dir).unwrap();
    refused(&run(f.start(&out_dir, &[])), &["files were removed"]);
    assert!(std::fs::read_dir(&out_dir).unwrap().next().is_none());
    bytes[0] = 3;
    std::fs::write(&batch, &bytes).unwrap();
    ok(f.start(&out_dir, &["--generations", "1"]));
}

#[test]
fn strings_that_reach_a_batch_script_hold_no_control_characters() {
    let f = fixture();
    let out_dir = f.path("run");
    let config = f.config_with(serde_json::json!({
        "executor": { "sbatch_args": ["--time=1:00:00\nrm -rf ~"] } }));
    let mut cmd = f.evolve(&["--config", config.to_str().unwrap()]);
    cmd.arg("--out").arg(&out_dir);
    refused(&run(cmd), &["executor.sbatch_args[0]", "control character"]);
    refused(
        &run(f.start(
            &out_dir,
            &[
                "--executor",
                "slurm",
                "--sbatch-arg=--gres=gpu:1\n#SBATCH -x",
            ],
        )),
        &["executor.sbatch_args[0]", "control character"],
    );
    refused(
        &run(f.start(&out_dir, &["--executor", "workers", "--devices", "cpu\r"])),
        &["executor.devices[0]"],
    );
    assert!(!out_dir.exists());
}

#[test]
fn messages_say_what_was_found() {
    let f = fixture();
    let adam = manifest("genomes/adam.json");
    let replay_with = |config: &Path| run(replay(&f, &adam, config));
    // No Rust debug text.
    let config = f.config_with(serde_json::json!({ "fidelity": { "score_images": 0 } }));
    let err = refused(&replay_with(&config), &["score_images`: 0;"]);
    assert!(!err.contains("Some("), "{err}");
    let text = std::fs::read_to_string(&f.config).unwrap().replace(
        r#""validation": 200"#,
        r#""validation": 200, "score_images": 0"#,
    );
    let config = f.path("task.json");
    std::fs::write(&config, text).unwrap();
    let err = refused(&replay_with(&config), &["score_images 0;"]);
    assert!(!err.contains("Some("), "{err}");
    // A value of the wrong type is not malformed JSON: the field, what was found, what is allowed.
    let text = std::fs::read_to_string(&f.config)
        .unwrap()
        .replace(r#""dataset": "cifar10""#, r#""dataset": 3"#);
    let config = f.path("typed.json");
    std::fs::write(&config, text).unwrap();
    let err = refused(
        &replay_with(&config),
        &[
            "protocol.tasks[0].dataset",
            "a number",
            "`cifar10`",
            "`mnist`",
        ],
    );
    assert!(!err.contains("malformed"), "{err}");
    // --seed -1.
    refused(
        &run(bare(&["replay", adam.to_str().unwrap(), "--seed", "-1"])),
        &["`-1`", "allowed: an integer 0..="],
    );
    // A data root that is a link loop, or a plain file.
    let looped = f.path("loop");
    symlink(&looped, &looped).unwrap();
    let plain = f.path("plain");
    std::fs::write(&plain, "not a folder").unwrap();
    for (root, what) in [
        (&looped, "symbolic link loop"),
        (&plain, "a file, not a folder"),
    ] {
        let mut cmd = bare(&["replay", adam.to_str().unwrap(), "--device", "cpu"]);
        cmd.args(["--config", f.config.to_str().unwrap()])
            .arg("--data-dir")
            .arg(root);
        let err = refused(&run(cmd), &[what]);
        assert!(!err.contains("evolve data download"), "{err}");
    }
}

#[test]
fn status_says_what_it_found() {
    let f = fixture();
    // A history cut mid-line.
    let run_dir = f.path("run");
    ok(f.start(&run_dir, &["--generations", "1"]));
    let history_file = run_dir.join("history.jsonl");
    let text = std::fs::read_to_string(&history_file).unwrap();
    let lines = text.lines().count();
    std::fs::write(&history_file, &text[..text.len() - 40]).unwrap();
    let err = refused(
        &run(bare(&["status", run_dir.to_str().unwrap()])),
        &[&format!("history line {lines} is incomplete")],
    );
    assert!(!err.contains("resume"), "status resumes nothing: {err}");
    // A run in its first moments: the lock is held, the checkpoint not yet written.
    let young = f.path("young");
    std::fs::create_dir(&young).unwrap();
    let lock = std::fs::File::create(young.join("evolve.lock")).unwrap();
    lock.lock().unwrap();
    std::fs::write(
        young.join("evolve.lock"),
        format!("{}\n", std::process::id()),
    )
    .unwrap();
    refused(
        &run(bare(&["status", young.to_str().unwrap()])),
        &["being created", &format!("PID {}", std::process::id())],
    );
}

#[test]
fn pruning_points_on_the_last_step_are_dropped_and_equal_losses_never_prune() {
    // 8 steps, a point at 99 %: it would fall on the last step, so no run is pruned.
    let f = Fixture::new(
        &tiny_config(4, 1)
            .replace(r#""steps": 30"#, r#""steps": 8"#)
            .replace(
                r#""search""#,
                r#""fidelity": { "enabled": true, "promote": 1.0, "prune": { "at": [0.99], "margin": 1.0, "window": 2 } }, "search""#,
            ),
    );
    let run_dir = f.path("run");
    ok(f.start(&run_dir, &[]));
    let lines = history(&run_dir);
    assert!(!lines.is_empty());
    for line in &lines {
        assert_ne!(line["stage"], "pruned", "{line}");
    }
    // What margin compares: the mean training loss against margin × Adam's, strictly.
    let bar = evolve::train::Bar {
        window: 2,
        limits: vec![(4, 1.0)],
    };
    assert!(!bar.fails(4, &[3.0, 2.0, 1.0, 1.0]), "equal to Adam's loss");
    assert!(bar.fails(4, &[3.0, 2.0, 1.0, 1.01]), "behind Adam's loss");
    assert!(!bar.fails(3, &[3.0, 2.0, 9.0]), "not a pruning point");
    for margin in ["0.5", "101"] {
        let config = f.config_with(serde_json::json!({
            "fidelity": { "prune": { "at": [0.5], "margin": margin.parse::<f64>().unwrap(), "window": 2 } } }));
        let mut cmd = f.evolve(&["--config", config.to_str().unwrap()]);
        cmd.arg("--out").arg(f.path("never"));
        refused(&run(cmd), &["fidelity.prune", "margin in [1, 100]", "loss"]);
    }
}
