//! `evolve worker`: trains the work items of one task of a job (a Slurm array task, or one
//! local worker process) and writes each result atomically into the run directory. It never
//! touches the checkpoint or the history: only the driver, holding the run lock, merges.
use super::{BatchDir, Trainer, WorkItem};
use crate::error::{Error, Result};
use crate::fsutil::{parse_json, read_to_string, write_json_atomic};
use std::path::PathBuf;
use tch::Device;

#[derive(Clone, Debug, clap::Args)]
pub struct WorkerArgs {
    /// The run directory (on a filesystem the driver shares).
    #[arg(long)]
    pub run: PathBuf,
    /// The batch (a folder under `work/`).
    #[arg(long)]
    pub batch: String,
    /// The job's task list in that folder: one list of item keys per task.
    #[arg(long)]
    pub manifest: String,
    /// This worker's task in the list (`$SLURM_ARRAY_TASK_ID` under Slurm).
    #[arg(long)]
    pub task: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = crate::device::parse_flag)]
    pub device: Device,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// Trains the task's items in order, skipping those whose result is already there (a retried
/// or duplicated task redoes nothing).
pub fn work(args: &WorkerArgs) -> Result<()> {
    let dir = BatchDir::new(&args.run, &args.batch);
    let manifest = dir.manifest(&args.manifest);
    let tasks: Vec<Vec<String>> = parse_json(&read_to_string(&manifest)?)
        .map_err(|m| Error::run(&manifest, format!("not a task list: {m}")))?;
    let keys = tasks.get(args.task).ok_or_else(|| {
        Error::Usage(format!(
            "--task {}: {} holds {} task(s), 0..{}",
            args.task,
            manifest.display(),
            tasks.len(),
            tasks.len()
        ))
    })?;
    let root = crate::data::resolve_root(args.data_dir.as_deref());
    let mut trainer = Trainer::new(args.device, &root, None);
    // A local worker whose driver died (SIGKILL) stops after its current item.
    let parent = std::os::unix::process::parent_id();
    for key in keys {
        let path = dir.item(key);
        let item: WorkItem = parse_json(&read_to_string(&path)?)
            .map_err(|m| Error::run(&path, format!("not a work item: {m}")))?;
        if item.key() != *key {
            return Err(Error::run(
                &path,
                format!("holds item {}, not {key}", item.key()),
            ));
        }
        if dir.read_result(&item).is_some() {
            println!("{key}: result already there");
            continue;
        }
        if std::os::unix::process::parent_id() != parent {
            return Err(Error::Usage(
                "the process that started this worker is gone; stopping".into(),
            ));
        }
        let result = trainer.train(&item)?;
        write_json_atomic(&dir.result(key), &result)?;
        println!(
            "{key}: {} genome(s) trained in {:.1} s",
            item.genomes.len(),
            result.seconds
        );
    }
    Ok(())
}
