//! The local launcher: `evolve worker` processes on this machine, one per device slot.
//! Processes, not threads: libtorch's generator is process-wide, so threads would serialise
//! on the lock that keeps runs reproducible.
use super::remote::{Launcher, TaskState};
use super::{device_flag, Launch};
use crate::config::ExecutorConfig;
use crate::error::{Error, Result};
use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};

pub struct Workers {
    run: PathBuf,
    program: PathBuf,
    data_root: PathBuf,
    /// One slot per worker: the device it trains on and the task it runs.
    slots: Vec<(String, Option<JobTask>)>,
    queue: VecDeque<JobTask>,
    ended: HashMap<(String, usize), TaskState>,
    submitted: usize,
}

struct JobTask {
    job: String,
    task: usize,
    batch: String,
    manifest: String,
    child: Option<Child>,
}

impl Workers {
    pub fn new(config: &ExecutorConfig, launch: &Launch) -> Workers {
        let devices = match config.devices.is_empty() {
            true => vec![device_flag(launch.device); config.workers],
            false => config.devices.clone(),
        };
        Workers {
            run: launch.run.clone(),
            program: launch.program.clone(),
            data_root: launch.data_root.clone(),
            slots: devices.into_iter().map(|d| (d, None)).collect(),
            queue: VecDeque::new(),
            ended: HashMap::new(),
            submitted: 0,
        }
    }

    /// Starts queued tasks on free slots.
    fn fill(&mut self) -> Result<()> {
        for (device, slot) in &mut self.slots {
            if slot.is_some() {
                continue;
            }
            let Some(mut task) = self.queue.pop_front() else {
                break;
            };
            let log = self
                .run
                .join("workers/logs")
                .join(format!("{}_{}.out", task.job, task.task));
            let parent = log.parent().expect("a folder");
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
            let file = crate::fsutil::create_confined(&log)?;
            let err = file.try_clone().map_err(|e| Error::io(&log, e))?;
            let child = Command::new(&self.program)
                .arg("worker")
                .arg("--run")
                .arg(&self.run)
                .args(["--batch", &task.batch, "--manifest", &task.manifest])
                .args(["--task", &task.task.to_string(), "--device", device])
                .arg("--data-dir")
                .arg(&self.data_root)
                .stdin(Stdio::null())
                .stdout(file)
                .stderr(err)
                .spawn()
                .map_err(|e| Error::io(&self.program, e))?;
            task.child = Some(child);
            *slot = Some(task);
        }
        Ok(())
    }
}

impl Launcher for Workers {
    fn name(&self) -> &'static str {
        "workers"
    }

    fn tasks_for(&self, items: usize) -> usize {
        items.min(self.slots.len())
    }

    fn submit(&mut self, batch: &str, manifest: &str, tasks: usize) -> Result<String> {
        self.submitted += 1;
        let job = format!("{}-{}", std::process::id(), self.submitted);
        for task in 0..tasks {
            self.queue.push_back(JobTask {
                job: job.clone(),
                task,
                batch: batch.to_string(),
                manifest: manifest.to_string(),
                child: None,
            });
        }
        self.fill()?;
        Ok(job)
    }

    fn states(&mut self) -> Result<HashMap<(String, usize), TaskState>> {
        for (_, slot) in &mut self.slots {
            let Some(task) = slot else { continue };
            let child = task.child.as_mut().expect("a started task has a process");
            if let Some(status) = child.try_wait().map_err(|e| Error::io(&self.program, e))? {
                let state = TaskState {
                    active: false,
                    state: status.to_string(),
                };
                self.ended.insert((task.job.clone(), task.task), state);
                *slot = None;
            }
        }
        self.fill()?;
        let mut states = self.ended.clone();
        let running = self.slots.iter().filter_map(|(_, s)| s.as_ref());
        for (task, state) in running
            .map(|t| (t, "RUNNING"))
            .chain(self.queue.iter().map(|t| (t, "PENDING")))
        {
            let state = TaskState {
                active: true,
                state: state.into(),
            };
            states.insert((task.job.clone(), task.task), state);
        }
        Ok(states)
    }

    fn cancel(&mut self, jobs: &[String]) -> Result<()> {
        self.queue.retain(|t| !jobs.contains(&t.job));
        for (_, slot) in &mut self.slots {
            if let Some(task) = slot.take_if(|t| jobs.contains(&t.job)) {
                let mut child = task.child.expect("a started task has a process");
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        self.fill()
    }

    fn log(&self, job: &str, task: usize) -> PathBuf {
        self.run
            .join("workers/logs")
            .join(format!("{job}_{task}.out"))
    }

    fn outlives_driver(&self) -> bool {
        false
    }
}

impl Drop for Workers {
    /// A driver that stops (an error, a signal) takes its workers with it.
    fn drop(&mut self) {
        for (_, slot) in &mut self.slots {
            if let Some(mut child) = slot.take().and_then(|t| t.child) {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}
