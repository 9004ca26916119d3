//! A task run by the user's own training script instead of a built-in model.
//!
//! For each (genome, seed) `evolve` writes the genome as an importable PyTorch optimizer (the
//! export) and as JSON into a private temporary folder, runs the command with the placeholders
//! filled in, and reads the last line the script prints: one JSON object with `val_acc` (or a
//! `score`), and optionally `test_acc`, `val_loss` and `losses` (the training-loss curve).
//!
//! Safety: the command is an argument list run without a shell, and a placeholder is replaced
//! only where it is a whole argument, by one argument; nothing from a genome (its name least of
//! all) reaches the command line, which holds only the two file paths and two numbers. The script
//! runs in a process group of its own, which is killed, children and all, when it ends, at its
//! time limit, or when `evolve` is told to stop.
//!
//! A non-zero exit, a timeout, output that breaks the contract or a NaN scores the run as
//! diverged; the reason and the tail of the script's stderr go into the run's `failure` (so into
//! the history line) and the log.
use super::task::{Command, Task};
use super::RunMetrics;
use crate::error::{Error, Result};
use crate::genome::Genome;
use serde::Deserialize;
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// A command task's time limit when it names none.
pub const DEFAULT_TIMEOUT_S: u64 = 3600;
/// The longest time limit accepted (a week).
pub const MAX_TIMEOUT_S: u64 = 7 * 24 * 3600;
/// What a whole argument may be, and what replaces it: the exported optimizer's path, the genome
/// JSON's path, the run's seed and the task's steps.
pub const PLACEHOLDERS: [&str; 4] = ["{optimizer}", "{genome}", "{seed}", "{steps}"];
/// Bytes of a script's output kept (the end of it).
const KEPT: usize = 8 << 20;
/// Characters of stderr kept with a failed run.
const STDERR_TAIL: usize = 1500;
/// How long a script has to exit after SIGTERM before SIGKILL.
const GRACE: Duration = Duration::from_secs(5);
/// How often the wait looks at the script, the clock and the stop flag.
const POLL: Duration = Duration::from_millis(20);

/// Checks a command: a program, only known placeholders, each a whole argument, the genome
/// passed one way or the other, and a time limit in range. Messages start with the field.
pub fn check(c: &Command) -> std::result::Result<(), String> {
    if c.argv.first().is_none_or(|p| p.is_empty()) {
        return Err(r#"`command`: no program; allowed: a program and its arguments, e.g. ["python", "train.py", "--optimizer", "{optimizer}"]"#.into());
    }
    let known = PLACEHOLDERS.join(", ");
    for (i, arg) in c.argv.iter().enumerate() {
        if PLACEHOLDERS.contains(&arg.as_str()) {
            continue;
        }
        if PLACEHOLDERS.iter().any(|p| arg.contains(p)) {
            return Err(format!("`command[{i}]`: `{arg}` holds a placeholder inside a longer argument; placeholders are whole arguments (write \"--seed\", \"{{seed}}\")"));
        }
        if arg.starts_with('{') && arg.ends_with('}') {
            return Err(format!(
                "`command[{i}]`: unknown placeholder `{arg}`; allowed: {known}"
            ));
        }
    }
    if !c.argv.iter().any(|a| a == "{optimizer}" || a == "{genome}") {
        return Err(format!("`command`: passes neither {{optimizer}} nor {{genome}}, so the script cannot know what to train with; placeholders: {known}"));
    }
    if !(1..=MAX_TIMEOUT_S).contains(&c.timeout_s) {
        return Err(format!(
            "`timeout_s`: {}; allowed: 1..={MAX_TIMEOUT_S}",
            c.timeout_s
        ));
    }
    Ok(())
}

/// The program a command runs, found as a path or on `PATH`; the error names the task.
pub fn find_program(c: &Command, task: &str) -> Result<PathBuf> {
    let program = Path::new(&c.argv[0]);
    let executable = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    };
    let found = match c.argv[0].contains('/') {
        true => executable(program).then(|| program.to_path_buf()),
        false => std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|p| executable(p))
        }),
    };
    found.ok_or_else(|| {
        Error::Usage(format!(
            "task `{task}`: field `command[0]`: `{}` is not an executable file{}; install it or give its path",
            program.display(),
            match c.argv[0].contains('/') {
                true => "",
                false => " on PATH",
            }
        ))
    })
}

/// The command line for one run: each placeholder argument replaced by one argument.
pub fn fill(
    argv: &[String],
    optimizer: &Path,
    genome: &Path,
    seed: u64,
    steps: u64,
) -> Vec<String> {
    argv.iter()
        .map(|arg| match arg.as_str() {
            "{optimizer}" => optimizer.display().to_string(),
            "{genome}" => genome.display().to_string(),
            "{seed}" => seed.to_string(),
            "{steps}" => steps.to_string(),
            _ => arg.clone(),
        })
        .collect()
}

/// Scores `genome` on `task` with `seed` by running the task's script. A failed script is a
/// diverged run, not an error; stopping (SIGINT/SIGTERM) kills the script and is an error.
pub fn run(task: &Task, command: &Command, genome: &Genome, seed: u64) -> Result<RunMetrics> {
    let start = Instant::now();
    let dir = tempfile::Builder::new()
        .prefix("evolve-task.")
        .tempdir()
        .map_err(|e| Error::io(std::env::temp_dir(), e))?;
    let optimizer = dir.path().join("evolved_optimizer.py");
    let genome_file = dir.path().join("genome.json");
    let source = crate::report::export::pytorch_source(genome, None);
    crate::fsutil::write_atomic(&optimizer, source.as_bytes())?;
    let json = crate::report::export::json_source(genome);
    crate::fsutil::write_atomic(&genome_file, json.as_bytes())?;
    let argv = fill(&command.argv, &optimizer, &genome_file, seed, task.steps);
    let ended = execute(&argv, Duration::from_secs(command.timeout_s), &task.name)?;
    let seconds = start.elapsed().as_secs_f64();
    let mut metrics = RunMetrics {
        seed,
        score_acc: 0.0,
        score_loss: None,
        test_acc: None,
        fitness: None,
        losses: Vec::new(),
        steps: task.steps,
        diverged: true,
        pruned: false,
        seconds,
        train_seconds: seconds,
        curve: Vec::new(),
        failure: None,
    };
    match ended
        .verdict(command.timeout_s)
        .and_then(|()| parse(&ended.stdout))
    {
        Ok(r) => {
            metrics.score_acc = r.val_acc.or(r.score).unwrap_or(0.0);
            metrics.fitness = r.score;
            metrics.test_acc = r.test_acc;
            metrics.score_loss = r.val_loss;
            metrics.losses = r.losses.iter().map(|&l| l as f32).collect();
            metrics.diverged = false;
        }
        Err(reason) => {
            let failure = match ended.stderr.trim().is_empty() {
                true => reason,
                false => format!("{reason}; stderr ends: {}", ended.stderr.trim()),
            };
            eprintln!(
                "task `{}`, genome {} ({}), seed {seed}: scored as diverged: {failure}",
                task.name,
                genome.hash(),
                genome.label()
            );
            metrics.failure = Some(failure);
        }
    }
    Ok(metrics)
}

/// How a script ended: its exit status (`None`: killed at the time limit), what it printed on
/// stdout, and the tail of its stderr.
struct Ended {
    status: Option<std::process::ExitStatus>,
    stdout: String,
    stderr: String,
}

impl Ended {
    /// `Ok` for a script that exited 0 within its time.
    fn verdict(&self, timeout_s: u64) -> std::result::Result<(), String> {
        match self.status {
            None => Err(format!("timed out after {timeout_s} s and was killed")),
            Some(s) if s.success() => Ok(()),
            Some(s) => Err(match s.code() {
                Some(code) => format!("exited with status {code}"),
                None => format!(
                    "killed by signal {}",
                    std::os::unix::process::ExitStatusExt::signal(&s).unwrap_or(0)
                ),
            }),
        }
    }
}

/// Runs `argv` in its own process group, without a shell or stdin, until it exits, its time is
/// up, or a stop is requested; whatever is left of the group is then killed.
fn execute(argv: &[String], timeout: Duration, task: &str) -> Result<Ended> {
    let mut child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .map_err(|e| Error::Usage(format!("task `{task}`: could not start `{}`: {e}", argv[0])))?;
    let group = child.id() as i32;
    let stdout = drain(child.stdout.take());
    let stderr = drain(child.stderr.take());
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| Error::io(&argv[0], e))? {
            break Some(status);
        }
        if let Some(signal) = crate::interrupt::requested() {
            stop(group, &mut child);
            return Err(Error::Interrupted(signal));
        }
        if Instant::now() >= deadline {
            kill_group(group, libc::SIGKILL);
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(POLL);
    };
    // Children the script left behind would hold its pipes open: they go with it.
    kill_group(group, libc::SIGKILL);
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    let tail_start = stderr
        .char_indices()
        .rev()
        .nth(STDERR_TAIL)
        .map_or(0, |(i, _)| i);
    Ok(Ended {
        status,
        stdout,
        stderr: stderr[tail_start..].to_string(),
    })
}

/// Reads a pipe to its end on a thread of its own (so a script filling one pipe never blocks),
/// keeping the last `KEPT` bytes: the result line is the last one, and a chatty script cannot
/// fill memory.
fn drain(pipe: Option<impl Read + Send + 'static>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut chunk = [0u8; 1 << 16];
        let Some(mut pipe) = pipe else {
            return String::new();
        };
        loop {
            match pipe.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => kept.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => break,
            }
            if kept.len() > 2 * KEPT {
                kept.drain(..kept.len() - KEPT);
            }
        }
        String::from_utf8_lossy(&kept).into_owned()
    })
}

/// SIGTERM to the script's group, then SIGKILL if it has not exited within `GRACE`.
fn stop(group: i32, child: &mut Child) {
    kill_group(group, libc::SIGTERM);
    let deadline = Instant::now() + GRACE;
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            break;
        }
        std::thread::sleep(POLL);
    }
    kill_group(group, libc::SIGKILL);
    let _ = child.wait();
}

fn kill_group(group: i32, signal: i32) {
    // SAFETY: killpg only sends a signal; a group that is gone is ESRCH, which is fine.
    unsafe {
        libc::killpg(group, signal);
    }
}

/// What the script reports; other fields are allowed and ignored.
#[derive(Debug, Deserialize)]
struct Reported {
    val_acc: Option<f64>,
    score: Option<f64>,
    test_acc: Option<f64>,
    val_loss: Option<f64>,
    #[serde(default)]
    losses: Vec<f64>,
}

/// The script's result: its last non-empty line of stdout, as the contract says.
fn parse(stdout: &str) -> std::result::Result<Reported, String> {
    let contract = r#"the contract is a last line like {"val_acc": 0.91}"#;
    let line = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .ok_or_else(|| format!("printed nothing on stdout; {contract}"))?;
    let shown: String = line.chars().take(200).collect();
    if ["NaN", "Infinity"].iter().any(|w| line.contains(w)) {
        return Err(format!("reported a NaN or infinite value: {shown}"));
    }
    let r: Reported = serde_json::from_str(line)
        .map_err(|e| format!("its last line is not the JSON result ({e}): {shown}; {contract}"))?;
    match (r.val_acc, r.score) {
        (None, None) => return Err(format!("reported neither `val_acc` nor `score`: {shown}")),
        (Some(acc), _) if !(0.0..=1.0).contains(&acc) => {
            return Err(format!("`val_acc` {acc} is outside 0..=1: {shown}"))
        }
        _ => {}
    }
    Ok(r)
}
