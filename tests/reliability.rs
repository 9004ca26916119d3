//! What `evolve` refuses, and why: nothing a user types may lose a run, replace a file that is
//! not ours, run code from data, or panic (exit 101). Each case runs the binary.
use std::os::unix::fs::FileTypeExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;
use common::cli::{
    assert_unchanged, bare, manifest, refused, run, send, snapshot, stderr, wait_for,
};
use common::run::{history_lines, ok, tiny_config, Fixture};

fn fixture() -> Fixture {
    Fixture::new(&tiny_config(4, 2))
}

#[test]
fn a_fresh_run_only_goes_into_a_missing_or_empty_directory() {
    let f = fixture();
    let foreign = f.path("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("history.jsonl"), "someone else's notes\n").unwrap();
    std::fs::write(foreign.join("best.json"), "{\"mine\": true}\n").unwrap();
    let before = snapshot(&foreign);
    let out = run(f.start(&foreign, &["--generations", "1"]));
    refused(
        &out,
        &[foreign.to_str().unwrap(), "not empty", "--resume", "--out"],
    );
    assert_unchanged(&before, &foreign, "a refused fresh run");
    assert!(!foreign.join("evolve.lock").exists());

    let file = f.path("a-file");
    std::fs::write(&file, "x").unwrap();
    refused(
        &run(f.start(&file, &["--generations", "1"])),
        &["not a directory"],
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"x");

    // An empty directory is fine, and --generations 0 claims no file it did not write.
    let empty = f.path("empty");
    std::fs::create_dir(&empty).unwrap();
    let out = ok(f.start(&empty, &["--generations", "0"]));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        !stdout.contains("best.json") && !stdout.contains("summary.md"),
        "{stdout}"
    );
    assert!(stdout.contains("no generation ran"), "{stdout}");
    assert!(!empty.join("best.json").exists());
}

#[test]
fn one_process_per_run_directory_and_a_killed_run_leaves_no_stale_lock() {
    let f = fixture();
    let dir = f.path("run");
    let mut first = f
        .start(&dir, &["--generations", "10"])
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = first.id().to_string();
    wait_for(
        "the first run to take its lock and save an evaluation",
        || {
            std::fs::read_to_string(dir.join("evolve.lock")).is_ok_and(|t| t.trim() == pid)
                && dir.join("best.json").exists()
        },
    );
    // Frozen, it still holds the lock: the checks below cannot race with its progress.
    send(&first, "STOP");
    let before = snapshot(&dir);

    let again = refused(
        &run(f.start(&dir, &["--generations", "1"])),
        &["in use", &pid],
    );
    assert!(again.contains(dir.to_str().unwrap()), "{again}");
    refused(&run(f.resume(&dir, &[])), &["in use", &pid]);
    assert_unchanged(&before, &dir, "the refused second processes");

    // Reading commands need no lock; status names the process that holds it.
    let status = ok(bare(&["status", dir.to_str().unwrap()]));
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains(&format!("running (PID {pid})")), "{text}");
    let exported = ok(bare(&["export", dir.to_str().unwrap()]));
    assert!(String::from_utf8_lossy(&exported.stdout).contains("\"terms\""));

    first.kill().unwrap(); // SIGKILL: the kernel releases the lock.
    first.wait().unwrap();
    let lines = history_lines(&dir);
    ok(f.resume(&dir, &[]));
    assert!(history_lines(&dir) >= lines);
    assert_eq!(history_lines(&dir), 40, "population 4 × 10 generations");
}

#[test]
fn a_resumed_run_keeps_its_number_of_stacked_candidates() {
    let f = fixture();
    let dir = f.path("run");
    ok(f.start(&dir, &["--generations", "1", "--batch-candidates", "2"]));
    let before = snapshot(&dir);
    refused(
        &run(f.resume(&dir, &["--batch-candidates", "1"])),
        &["--batch-candidates 1", "2 genomes side by side"],
    );
    assert_unchanged(&before, &dir, "a resume with another K");
    refused(
        &run(bare(&["--batch-candidates", "0", "--generations", "1"])),
        &["--batch-candidates", "≥ 1"],
    );
}

#[test]
fn export_writes_only_regular_files_and_never_replaces_a_link() {
    let dir = tempfile::tempdir().unwrap();
    let adam = manifest("genomes/adam.json");
    let export = |out: &Path| {
        run(bare(&[
            "export",
            adam.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]))
    };

    let fifo = dir.path().join("fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    refused(&export(&fifo), &["FIFO", "regular file"]);
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    refused(&export(dir.path()), &["directory", "regular file"]);
    assert!(dir.path().is_dir());

    // A link is written through: the link stays, its target gets the genome.
    let target = dir.path().join("target.json");
    std::fs::write(&target, "old").unwrap();
    let link = dir.path().join("link.json");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    ok(bare(&[
        "export",
        adam.to_str().unwrap(),
        "--out",
        link.to_str().unwrap(),
    ]));
    assert!(std::fs::symlink_metadata(&link)
        .unwrap()
        .file_type()
        .is_symlink());
    assert!(std::fs::read_to_string(&target)
        .unwrap()
        .contains("\"adam\""));

    // A dangling link is refused, not replaced.
    let dangling = dir.path().join("dangling.json");
    std::os::unix::fs::symlink(dir.path().join("nowhere/x.json"), &dangling).unwrap();
    refused(&export(&dangling), &["symbolic link"]);
    assert!(std::fs::symlink_metadata(&dangling)
        .unwrap()
        .file_type()
        .is_symlink());

    // `-` is standard output.
    let out = ok(bare(&["export", adam.to_str().unwrap(), "--out", "-"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("\"adam\""));
    assert!(!Path::new("-").exists());
}

#[test]
fn a_failed_write_leaves_no_temporary_file_and_names_the_target() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("evolved_optimizer.py");
    let mut cmd = bare(&[
        "export",
        manifest("genomes/eve.json").to_str().unwrap(),
        "--format",
        "pytorch",
        "--out",
        out.to_str().unwrap(),
    ]);
    // A file-size limit of 1 KiB stands in for a full disk. SIGXFSZ keeps its default action
    // (as a shell's `ulimit -f` leaves it, which kills the writer): evolve ignores it at start-up,
    // so its write fails with EFBIG and cleans up.
    unsafe {
        cmd.pre_exec(|| {
            let limit = 1024u64;
            let rlim = [limit, limit];
            if setrlimit(1, rlim.as_ptr()) != 0 || signal(25, 0) == usize::MAX {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let err = refused(&run(cmd), &["evolved_optimizer.py"]);
    assert!(
        !err.contains(".evolved_optimizer.py.tmp"),
        "names the target, not the temp file: {err}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

extern "C" {
    /// RLIMIT_FSIZE is resource 1 on Linux; `rlim` is {soft, hard}.
    fn setrlimit(resource: i32, rlim: *const u64) -> i32;
    /// SIGXFSZ is 25 on x86-64 and aarch64 Linux; handler 0 is SIG_DFL.
    fn signal(signum: i32, handler: usize) -> usize;
}

#[test]
fn the_pytorch_export_cannot_be_injected() {
    let python = manifest(".venv/bin/python");
    assert!(
        python.exists(),
        "{} missing: run `make test`",
        python.display()
    );
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("INJECTED");
    let names = [
        format!(
            "x\"\"\"\nimport os; os.system('touch {}')\n\"\"\"",
            marker.display()
        ),
        format!("x'''\nopen('{}', 'w')\n'''", marker.display()),
        "\\N{oops} \\x \\u12 trailing backslash \\".to_string(),
        "{{GENOME_JSON}} {{NAME}} {{LR}}".to_string(),
        "line one\nline two\r\ttabbed".to_string(),
        "ünïcødé ∑ 🚀 \u{0} nul".to_string(),
    ];
    let mut expected = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let mut genome = evolve::genome::shipped("adam");
        genome.name = Some(name.clone());
        let file = dir.path().join(format!("g{i}.json"));
        genome.save(&file).unwrap();
        let module = dir.path().join(format!("opt{i}.py"));
        ok(bare(&[
            "export",
            file.to_str().unwrap(),
            "--format",
            "pytorch",
            "--out",
            module.to_str().unwrap(),
        ]));
        expected.push(serde_json::json!({ "module": format!("opt{i}"), "name": name }));
    }
    let script = r#"
import importlib, json, sys
sys.path.insert(0, sys.argv[1])
for case in json.loads(sys.argv[2]):
    mod = importlib.import_module(case["module"])
    assert mod.GENOME["name"] == case["name"], (mod.GENOME["name"], case["name"])
    assert case["name"] in mod.__doc__, case["name"]
    assert mod.EvolvedOptimizer.__name__ == "EvolvedOptimizer"
print("ok", len(json.loads(sys.argv[2])))
"#;
    let mut python = Command::new(&python);
    python
        .arg("-c")
        .arg(script)
        .arg(dir.path())
        .arg(serde_json::to_string(&expected).unwrap());
    let out = ok(python);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok 6");
    assert!(!marker.exists(), "the export ran code from a genome's name");
}

#[test]
fn genomes_whose_terms_cancel_are_rejected_by_check_and_replay() {
    let dir = tempfile::tempdir().unwrap();
    for (i, terms) in [
        r#"[{"kind": "adam", "weight": 0.0}]"#,
        r#"[{"kind": "sign", "weight": 1.0}, {"kind": "sign", "weight": -1.0}]"#,
    ]
    .iter()
    .enumerate()
    {
        let file = dir.path().join(format!("g{i}.json"));
        std::fs::write(
            &file,
            format!(
                r#"{{"terms": {terms}, "lr": 0.001, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8}}"#
            ),
        )
        .unwrap();
        let out = run(bare(&["check", file.to_str().unwrap()]));
        assert!(!out.status.success());
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("field `terms`") && text.contains("cancel"),
            "{text}"
        );
        refused(
            &run(bare(&["replay", file.to_str().unwrap(), "--device", "cpu"])),
            &["field `terms`", "cancel"],
        );
    }
}

#[test]
fn hostile_config_values_are_refused_with_the_field_named() {
    let f = fixture();
    let cases = [
        (
            serde_json::json!({"ga": {"lr_log10": [-1, -5]}}),
            "ga.lr_log10",
        ),
        (
            serde_json::json!({"ga": {"eps_log10": [400, 500]}}),
            "ga.eps_log10",
        ),
        (serde_json::json!({"ga": {"beta2": [1.5, 2]}}), "ga.beta2"),
        (
            serde_json::json!({"ga": {"mutation_rate": -0.5}}),
            "ga.mutation_rate",
        ),
        (serde_json::json!({"ga": {"log_sigma": -1}}), "ga.log_sigma"),
        (
            serde_json::json!({"ga": {"term_weight": [-1, 2]}}),
            "ga.term_weight",
        ),
        (
            serde_json::json!({"search": {"tournament": 9}}),
            "tournament",
        ),
        (
            serde_json::json!({"search": {"max_seed_groups": 0}}),
            "search.max_seed_groups",
        ),
        (
            serde_json::json!({"fidelity": {"score_images": 0}}),
            "fidelity.score_images",
        ),
        (
            serde_json::json!({"protocol": {"tasks": [{"name": "c", "dataset": "cifar10", "model": "tiny-cnn", "train_subset": 100, "batch": 10, "steps": 5, "score_images": -3}], "seeds": 1}}),
            "score_images",
        ),
        (
            serde_json::json!({"protocol": {"tasks": [{"name": "c", "dataset": "cifar10", "model": "tiny-cnn", "train_subset": 100, "batch": 10, "steps": 5, "eval_every": 0}], "seeds": 1}}),
            "protocol.tasks[0].eval_every",
        ),
        (
            serde_json::json!({"ga": {"lookahead_k": [0, 3]}}),
            "ga.lookahead_k",
        ),
        (
            serde_json::json!({"ga": {"grad_clip_log10": [2, 1]}}),
            "ga.grad_clip_log10",
        ),
        (
            serde_json::json!({"holdout": {"protocol": {"tasks": [], "seeds": 1}, "every": 1, "top": 1}}),
            "holdout.protocol.tasks",
        ),
        (
            serde_json::json!({"holdout": {"protocol": {"tasks": [{"name": "c", "dataset": "cifar10", "model": "tiny-cnn", "train_subset": 100, "batch": 10, "steps": 5}], "seeds": 1}, "every": 0, "top": 1}}),
            "holdout",
        ),
    ];
    for (patch, field) in cases {
        let config = f.config_with(patch);
        let never = f.path("never");
        let out = run(f.evolve(&[
            "--config",
            config.to_str().unwrap(),
            "--out",
            never.to_str().unwrap(),
        ]));
        refused(&out, &[field, "allowed"]);
        assert!(!never.exists(), "{field}");
    }
    let adam = manifest("genomes/adam.json");
    let subset = run(bare(&[
        "replay",
        adam.to_str().unwrap(),
        "--config",
        f.config.to_str().unwrap(),
        "--train-subset",
        "100000",
        "--device",
        "cpu",
        "--data-dir",
        f.root.to_str().unwrap(),
    ]));
    refused(
        &subset,
        &[
            "train_subset",
            "100000",
            "800 training images",
            "validation",
        ],
    );
}

/// A run directory with one finished generation, and a way to tamper with its checkpoint.
fn finished_run(f: &Fixture) -> PathBuf {
    let dir = f.path("run");
    ok(f.start(&dir, &["--generations", "1"]));
    dir
}

fn tamper(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("checkpoint.json");
    let mut cp: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut cp);
    std::fs::write(&path, serde_json::to_string_pretty(&cp).unwrap()).unwrap();
}

#[test]
fn resume_refuses_an_inconsistent_checkpoint_and_changes_nothing() {
    let f = fixture();
    let dir = finished_run(&f);
    let original = std::fs::read(dir.join("checkpoint.json")).unwrap();
    let history = std::fs::read(dir.join("history.jsonl")).unwrap();
    type Edit = Box<dyn Fn(&mut serde_json::Value)>;
    let cases: Vec<(&str, Edit)> = vec![
        (
            "field `stages.full.results`",
            Box::new(|cp| {
                cp["stages"]["full"]["results"]
                    .as_array_mut()
                    .unwrap()
                    .truncate(2)
            }),
        ),
        (
            "field `population.genomes[1]`",
            Box::new(|cp| cp["population"]["genomes"][1]["lr"] = serde_json::json!(-1.0)),
        ),
        (
            "steps 0",
            Box::new(|cp| cp["config"]["protocol"]["tasks"][0]["steps"] = serde_json::json!(0)),
        ),
        (
            "population 0",
            Box::new(|cp| cp["config"]["search"]["population"] = serde_json::json!(0)),
        ),
        (
            "field `stages.full.baseline`",
            Box::new(|cp| cp["stages"]["full"]["baseline"] = serde_json::json!([])),
        ),
        (
            "Adam's fitness",
            Box::new(|cp| cp["stages"]["full"]["baseline"][0]["fitness"] = serde_json::json!(-1.0)),
        ),
        (
            "field `logbook.history_len`",
            Box::new(|cp| {
                let len = cp["logbook"]["history_len"].as_u64().unwrap();
                cp["logbook"]["history_len"] = serde_json::json!(len - 7);
            }),
        ),
        (
            "field `logbook.reused`",
            Box::new(|cp| cp["logbook"]["reused"] = serde_json::json!(1_000_000)),
        ),
        (
            "ga.lr_log10",
            Box::new(|cp| cp["config"]["ga"]["lr_log10"] = serde_json::json!([-1, -5])),
        ),
        (
            "whole number of seed groups",
            Box::new(|cp| cp["stages"]["full"]["baseline"][0]["runs"] = serde_json::json!([])),
        ),
        (
            "field `population.reevaluate[0]`",
            Box::new(|cp| cp["population"]["reevaluate"][0] = serde_json::json!(7)),
        ),
    ];
    for (needle, edit) in cases {
        std::fs::write(dir.join("checkpoint.json"), &original).unwrap();
        tamper(&dir, edit);
        let tampered = std::fs::read(dir.join("checkpoint.json")).unwrap();
        let out = run(f.resume(&dir, &[]));
        refused(&out, &[needle, "checkpoint.json"]);
        assert_eq!(
            std::fs::read(dir.join("history.jsonl")).unwrap(),
            history,
            "{needle}"
        );
        assert_eq!(
            std::fs::read(dir.join("checkpoint.json")).unwrap(),
            tampered,
            "{needle}"
        );
    }
}

/// SIGTERM (what schedulers send) and SIGHUP (a closed SSH session) both stop a run cleanly.
#[test]
fn sigterm_and_sighup_save_print_the_resume_command_and_exit_128_plus_the_signal() {
    for (signal, code) in [("TERM", 143), ("HUP", 129)] {
        let f = fixture();
        let dir = f.path("run");
        let child = f
            .start(&dir, &["--generations", "3"])
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for("the first evaluation on disk", || history_lines(&dir) > 0);
        send(&child, signal);
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(code), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(
            err.contains(&format!("SIG{signal}"))
                && err.contains("evolve --resume")
                && err.contains(dir.to_str().unwrap()),
            "{err}"
        );
        let done = history_lines(&dir);
        assert!(
            (1..12).contains(&done),
            "stopped early with its evaluations saved ({done})"
        );
        ok(f.resume(&dir, &[]));
        assert_eq!(history_lines(&dir), 12);
    }
}

#[test]
fn data_problems_name_the_real_files_and_roots() {
    let root = tempfile::tempdir().unwrap();
    evolve::train::data::synthetic::write_root(root.path(), 1).unwrap();
    let verify = |root: &Path| run(bare(&["data", "verify", root.to_str().unwrap()]));

    // Counts that differ from the official release fail verification.
    let err = refused(&verify(root.path()), &["official", "50000", "1000 train"]);
    assert!(err.contains("cifar10"), "{err}");

    // A raw batch beside its gzipped twin is ambiguous.
    let c = root.path().join("cifar10");
    let gz = std::fs::read(c.join("data_batch_2.bin.gz")).unwrap();
    let mut raw = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&gz[..]), &mut raw).unwrap();
    std::fs::write(c.join("data_batch_2.bin"), &raw).unwrap();
    refused(
        &verify(root.path()),
        &["data_batch_2.bin", "data_batch_2.bin.gz", "keep one"],
    );
    std::fs::remove_file(c.join("data_batch_2.bin")).unwrap();

    // A label error names the file as it is on disk (gzipped).
    let labels = root.path().join("mnist/train-labels-idx1-ubyte.gz");
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(
        &mut flate2::read::GzDecoder::new(&std::fs::read(&labels).unwrap()[..]),
        &mut bytes,
    )
    .unwrap();
    bytes[8] = 42;
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut enc, &bytes).unwrap();
    std::fs::write(&labels, enc.finish().unwrap()).unwrap();
    refused(
        &verify(root.path()),
        &["train-labels-idx1-ubyte.gz", "label 42"],
    );

    // A dataset folder that is a file, and a missing one: the message names the real root.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("cifar10"), "not a folder").unwrap();
    let root_text = other.path().to_str().unwrap();
    let replay = |root: &str| {
        run(bare(&[
            "replay",
            manifest("genomes/adam.json").to_str().unwrap(),
            "--device",
            "cpu",
            "--tasks",
            "cifar10",
            "--data-dir",
            root,
        ]))
    };
    refused(
        &replay(root_text),
        &["not a folder", &format!("data root {root_text} ")],
    );
    std::fs::remove_file(other.path().join("cifar10")).unwrap();
    refused(
        &replay(root_text),
        &[
            &format!("data root is {root_text} "),
            &format!("--data-dir {root_text}`"),
        ],
    );

    // An empty EVOLVE_DATA_DIR is not a data root.
    let out = ok({
        let mut c = bare(&["doctor"]);
        c.env("EVOLVE_DATA_DIR", "");
        c
    });
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("data root: data "), "{text}");
}
