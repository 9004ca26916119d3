//! The Slurm launcher: one `sbatch` job array per submission, watched with `squeue` (accounting
//! may be off, so `sacct` is never needed), stopped with `scancel`. Batch scripts and logs stay
//! in the run directory (`slurm/*.sbatch`, `slurm/logs/%A_%a.out`) to be read or resubmitted by
//! hand.
use super::remote::{Launcher, TaskState};
use super::Launch;
use crate::config::ExecutorConfig;
use crate::error::{Error, Result};
use crate::fsutil::write_confined;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// Slurm states after which a task neither runs nor will (`squeue --states=all` shows them for
/// `MinJobAge` seconds; after that the task is simply gone).
const ENDED: [&str; 10] = [
    "BOOT_FAIL",
    "CANCELLED",
    "COMPLETED",
    "DEADLINE",
    "FAILED",
    "NODE_FAIL",
    "OUT_OF_MEMORY",
    "PREEMPTED",
    "REVOKED",
    "TIMEOUT",
];

pub struct Slurm {
    /// The run directory, absolute: array tasks may start in another working directory.
    run: PathBuf,
    program: PathBuf,
    data_root: PathBuf,
    device: String,
    sbatch_args: Vec<String>,
    max_parallel: usize,
    windows_per_task: usize,
}

impl Slurm {
    /// Checks that `sbatch` is there and the controller answers, before anything is submitted.
    pub fn new(config: &ExecutorConfig, launch: &Launch) -> Result<Slurm> {
        check_tools()?;
        let absolute = |p: &PathBuf| std::path::absolute(p).map_err(|e| Error::io(p, e));
        Ok(Slurm {
            run: absolute(&launch.run)?,
            program: absolute(&launch.program)?,
            data_root: absolute(&launch.data_root)?,
            device: config.devices.first().cloned().unwrap_or("auto".into()),
            sbatch_args: config.sbatch_args.clone(),
            max_parallel: config.max_parallel,
            windows_per_task: config.windows_per_task,
        })
    }

    fn script(&self, batch: &str, manifest: &str, tasks: usize) -> String {
        let mut s = String::from("#!/bin/bash\n");
        s += &format!("#SBATCH --job-name=evolve-{batch}\n");
        s += &format!("#SBATCH --array=0-{}%{}\n", tasks - 1, self.max_parallel);
        s += &format!(
            "#SBATCH --output={}/slurm/logs/%A_%a.out\n",
            self.run.display()
        );
        for arg in &self.sbatch_args {
            s += &format!("#SBATCH {arg}\n");
        }
        s += &format!(
            "exec {} worker --run {} --batch {batch} --manifest {manifest} --task \"$SLURM_ARRAY_TASK_ID\" --device {} --data-dir {}\n",
            quote(&self.program.display().to_string()),
            quote(&self.run.display().to_string()),
            quote(&self.device),
            quote(&self.data_root.display().to_string()),
        );
        s
    }
}

impl Launcher for Slurm {
    fn name(&self) -> &'static str {
        "slurm"
    }

    fn tasks_for(&self, items: usize) -> usize {
        items.div_ceil(self.windows_per_task)
    }

    fn submit(&mut self, batch: &str, manifest: &str, tasks: usize) -> Result<String> {
        let folder = self.run.join("slurm");
        let logs = folder.join("logs");
        std::fs::create_dir_all(&logs).map_err(|e| Error::io(&logs, e))?;
        let stem = manifest.trim_end_matches(".json");
        let script = folder.join(format!("{batch}-{stem}.sbatch"));
        write_confined(&script, self.script(batch, manifest, tasks).as_bytes())?;
        let out = run_tool("sbatch", &["--parsable", &script.display().to_string()])?;
        // `--parsable` prints `id` or `id;cluster`.
        let id = out.split(';').next().unwrap_or("").trim().to_string();
        match id.parse::<u64>() {
            Ok(_) => Ok(id),
            Err(_) => Err(Error::Usage(format!(
                "sbatch {}: expected a job id, got `{out}`",
                script.display()
            ))),
        }
    }

    fn states(&mut self) -> Result<HashMap<(String, usize), TaskState>> {
        let out = run_tool(
            "squeue",
            &[
                "--me",
                "--noheader",
                "--array",
                "--states=all",
                "--format=%F|%K|%T",
            ],
        )?;
        Ok(out
            .lines()
            .filter_map(|line| {
                let mut fields = line.trim().split('|');
                let job = fields.next()?.to_string();
                let task = fields.next()?.parse::<usize>().ok()?;
                let state = fields.next()?.to_string();
                let active = !ENDED.contains(&state.as_str());
                Some(((job, task), TaskState { active, state }))
            })
            .collect())
    }

    fn cancel(&mut self, jobs: &[String]) -> Result<()> {
        run_tool(
            "scancel",
            &jobs.iter().map(String::as_str).collect::<Vec<_>>(),
        )?;
        // scancel only asks; wait (a while) until no task of these jobs runs any more.
        let until = Instant::now() + Duration::from_secs(60);
        while Instant::now() < until {
            let states = self.states()?;
            if !states
                .iter()
                .any(|((job, _), s)| s.active && jobs.contains(job))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Ok(())
    }

    fn log(&self, job: &str, task: usize) -> PathBuf {
        self.run
            .join("slurm/logs")
            .join(format!("{job}_{task}.out"))
    }

    fn outlives_driver(&self) -> bool {
        true
    }
}

/// Checks that `sbatch` is there and the controller answers.
pub fn check_tools() -> Result<()> {
    run_tool("sbatch", &["--version"])?;
    run_tool("squeue", &["--me", "--noheader", "--format=%i"]).map(|_| ())
}

/// Runs a Slurm command and returns its standard output; a missing command or a failure is an
/// error naming it, with what it said.
fn run_tool(tool: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(tool).args(args).output().map_err(|e| {
        Error::Usage(format!(
            "--executor slurm: cannot run `{tool}` ({e}); install Slurm's client commands (sbatch, squeue, scancel) on this machine's PATH, or use --executor local or workers"
        ))
    })?;
    if !out.status.success() {
        return Err(Error::Usage(format!(
            "--executor slurm: `{tool} {}` failed ({}): {}; is the Slurm controller reachable from here?",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `s` as one shell word.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_batch_script_is_an_array_of_worker_tasks_with_the_users_arguments() {
        let slurm = Slurm {
            run: "/shared/runs/it's".into(),
            program: "/opt/evolve".into(),
            data_root: "/data".into(),
            device: "auto".into(),
            sbatch_args: vec!["--gres=gpu:1".into(), "--time=1:00:00".into()],
            max_parallel: 8,
            windows_per_task: 2,
        };
        let s = slurm.script("0003-full-0", "tasks-0.json", 5);
        assert!(s.contains("#SBATCH --array=0-4%8\n"), "{s}");
        assert!(s.contains("#SBATCH --gres=gpu:1\n#SBATCH --time=1:00:00\n"));
        assert!(s.contains("#SBATCH --output=/shared/runs/it's/slurm/logs/%A_%a.out"));
        assert!(s.contains(r"--run '/shared/runs/it'\''s' --batch 0003-full-0"));
        assert!(s.contains("--task \"$SLURM_ARRAY_TASK_ID\""));
        assert_eq!(slurm.tasks_for(5), 3);
    }
}
