//! `evolve worker`: trains the work items of one task of a job (a Slurm array task, or one
//! local worker process) and writes each result atomically into the run directory. It never
//! touches the checkpoint or the history: only the driver, holding the run lock, merges.
use super::{BatchDir, ItemTrainer, WorkItem};
use crate::error::{Error, Result};
use crate::fsutil::{parse_json, read_to_string, refuse_link, write_json_confined};
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
/// or duplicated task redoes nothing). Nothing it is handed is trusted: the run must be a run
/// directory, names must be plain file names inside it, and every item must pass the checks a
/// run makes before anything trains, so a result can only land under `RUN/results/<batch>/`.
pub fn work(args: &WorkerArgs) -> Result<()> {
    crate::run::RunDir::open(&args.run).require_run()?;
    let batch = plain_name("--batch", &args.batch)?;
    let manifest_name = plain_name("--manifest", &args.manifest)?;
    let dir = BatchDir::new(&args.run, batch);
    dir.check_work_folder()?;
    let manifest = dir.manifest(manifest_name);
    refuse_link(&manifest)?;
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
    let items = keys
        .iter()
        .map(|key| load_item(&dir, key))
        .collect::<Result<Vec<WorkItem>>>()?;
    dir.prepare_results(keys)?;
    let root = crate::train::data::resolve_root(args.data_dir.as_deref());
    let mut trainer = ItemTrainer::new(args.device, &root, None);
    // A local worker whose driver died (SIGKILL) stops after its current item.
    let parent = std::os::unix::process::parent_id();
    for (key, item) in keys.iter().zip(&items) {
        if dir.read_result(item).is_some() {
            println!("{key}: result already there");
            continue;
        }
        if std::os::unix::process::parent_id() != parent {
            return Err(Error::Stopped(
                "the process that started this worker is gone; stopping".into(),
            ));
        }
        let result = trainer.train(item)?;
        write_json_confined(&dir.result(key), &result)?;
        println!(
            "{key}: {} genome(s) trained in {:.1} s",
            item.genomes.len(),
            result.seconds
        );
    }
    Ok(())
}

/// The work item `key` of the batch, checked as a run checks what it trains: its key is its
/// content hash, its protocol and genomes validate, and its sizes are within bounds.
fn load_item(dir: &BatchDir, key: &str) -> Result<WorkItem> {
    if !(key.len() == 20 && key.bytes().all(|b| b.is_ascii_hexdigit())) {
        return Err(Error::Usage(format!(
            "task list names item `{}`; allowed: an item key (20 hexadecimal digits)",
            key.escape_debug()
        )));
    }
    let path = dir.item(key);
    refuse_link(&path)?;
    let item: WorkItem = parse_json(&read_to_string(&path)?)
        .map_err(|m| Error::run(&path, format!("not a work item: {m}")))?;
    item.check(key)
        .map_err(|m| Error::run(&path, format!("refusing to train this work item: {m}")))?;
    Ok(item)
}

/// `value` when it is one plain file name: ASCII letters, digits, `.`, `_` and `-`, not starting
/// with a dot; so a worker argument cannot name a path outside the run.
fn plain_name<'a>(flag: &str, value: &'a str) -> Result<&'a str> {
    let plain = !value.is_empty()
        && !value.starts_with('.')
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    match plain {
        true => Ok(value),
        false => Err(Error::Usage(format!(
            "{flag} `{}`: not a plain name; allowed: one file name of letters, digits, `.`, `_` and `-` (not starting with `.`), inside the run directory",
            value.escape_debug()
        ))),
    }
}
