//! The run directory: what a run keeps on disk (the search's records, its reports), the lock
//! that gives a run one process, and the executors that train its windows.
//!
//! `runs/NAME/` holds `config.json` (resolved), `checkpoint.json` (rewritten atomically after every
//! evaluation), `history.jsonl` (one line per evaluation), `best.json`, `summary.md`,
//! `fitness.svg`, `progress.svg` and `evolve.lock`. Nothing here trusts what it reads: a checkpoint that is valid
//! JSON but inconsistent is refused before anything trains on it.
mod driver;
pub mod executor;
mod lock;
mod migrate;
mod status;

pub use driver::{default_run_dir, preflight, resume, start, RunOptions};
pub use status::{closing_message, export_source, status};

use crate::error::{Error, Result};
use crate::fsutil::write_json_confined;
use crate::search::records::{Checkpoint, Evaluation, CHECKPOINT_VERSION};
pub use lock::RunLock;
use serde::Serialize;
use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const CONFIG: &str = "config.json";
pub const CHECKPOINT: &str = "checkpoint.json";
pub const HISTORY: &str = "history.jsonl";
pub const BEST: &str = "best.json";
/// With a held-out protocol, the best genome by search score (`best.json` is the best held out).
pub const BEST_SEARCH: &str = "best-search.json";
pub const TUNED: &str = "tuned.json";
pub const SUMMARY: &str = "summary.md";
pub const FITNESS_SVG: &str = "fitness.svg";
pub const PROGRESS_SVG: &str = "progress.svg";
/// Held (`flock`) by the one process that runs this directory; the kernel releases it when that
/// process dies, so a killed run never leaves a stale lock. Holds that process's PID.
pub const LOCK: &str = "evolve.lock";

/// The run directory; `lock` is held by a process that writes to it.
pub struct RunDir {
    pub path: PathBuf,
    _lock: Option<RunLock>,
}

impl RunDir {
    /// A run directory for reading only (export, status): takes no lock.
    pub fn open(path: &Path) -> RunDir {
        RunDir {
            path: path.to_path_buf(),
            _lock: None,
        }
    }

    /// A new run in `path`, locked. `path` must be missing or empty: anything else is refused
    /// untouched, with the ways out.
    pub fn create(path: &Path) -> Result<RunDir> {
        if path.exists() && !path.is_dir() {
            return Err(Error::run(
                path,
                "exists and is not a directory; a new run needs a missing or empty directory: choose another --out",
            ));
        }
        let foreign = entries(path)?;
        if !foreign.is_empty() {
            if let Some(pid) = RunLock::holder(path) {
                return Err(Error::run(
                    path,
                    format!(
                        "is in use by another evolve process (PID {pid}); choose another --out"
                    ),
                ));
            }
            let hint = if path.join(CHECKPOINT).exists() {
                format!("already holds a run; continue it with `evolve --resume {}` or choose another --out", path.display())
            } else {
                format!(
                    "is not empty (holds {}) and is not an evolve run; a new run needs a missing or empty directory: choose another --out (or `evolve --resume {}` for a run)",
                    foreign.iter().take(3).map(|n| format!("`{n}`")).collect::<Vec<_>>().join(", "),
                    path.display()
                )
            };
            return Err(Error::run(path, hint));
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let lock = RunLock::acquire(path)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: Some(lock),
        })
    }

    /// An existing run in `path`, locked, with its checked checkpoint.
    pub fn resume(path: &Path) -> Result<(RunDir, Checkpoint)> {
        let unlocked = RunDir::open(path);
        unlocked.require_checkpoint()?;
        let dir = RunDir {
            path: path.to_path_buf(),
            _lock: Some(RunLock::acquire(path)?),
        };
        let checkpoint = dir.load_checkpoint()?;
        Ok((dir, checkpoint))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    fn require_checkpoint(&self) -> Result<()> {
        if self.file(CHECKPOINT).is_file() {
            return Ok(());
        }
        let message = match RunLock::holder(&self.path) {
            Some(pid) => format!("is being created by evolve (PID {pid}): its {CHECKPOINT} is not written yet; try again in a moment"),
            None => format!("no {CHECKPOINT} here: not an evolve run directory (or the run never started)"),
        };
        Err(Error::run(&self.path, message))
    }

    /// Refuses a path that is not a run directory: its `config.json` and `checkpoint.json` must
    /// be regular files in it (not links), as the driver writes them.
    pub fn require_run(&self) -> Result<()> {
        self.require_checkpoint()?;
        for name in [CONFIG, CHECKPOINT] {
            let path = self.file(name);
            if !std::fs::symlink_metadata(&path).is_ok_and(|m| m.is_file()) {
                return Err(Error::run(
                    &self.path,
                    format!("not an evolve run directory: {name} is missing or not a regular file"),
                ));
            }
        }
        Ok(())
    }

    /// Reads and checks `checkpoint.json` against itself and `history.jsonl`; a corrupt or
    /// inconsistent one is refused without touching anything.
    pub fn load_checkpoint(&self) -> Result<Checkpoint> {
        self.require_checkpoint()?;
        let path = self.file(CHECKPOINT);
        let refuse = |m: String| {
            Error::run(&path, format!("corrupt or inconsistent checkpoint, refusing to read or resume it ({m}); nothing in the run directory was changed"))
        };
        let text = crate::fsutil::read_to_string(&path)?;
        let value: serde_json::Value =
            crate::fsutil::parse_json(&text).map_err(|m| refuse(m.clone()))?;
        let version = value.get("version").and_then(|v| v.as_u64());
        let text = match version {
            Some(v) if v == CHECKPOINT_VERSION as u64 => text,
            Some(v @ 1..) if v < CHECKPOINT_VERSION as u64 => migrate::migrate(value, v)
                .map_err(|m| refuse(m.clone()))?
                .to_string(),
            _ => {
                return Err(Error::run(
                    &path,
                    format!(
                        "checkpoint version {} (this evolve reads versions 1 to {CHECKPOINT_VERSION}); it was written by another evolve",
                        version.map_or("missing".into(), |v| v.to_string())
                    ),
                ))
            }
        };
        let checkpoint: Checkpoint =
            crate::fsutil::parse_json(&text).map_err(|m| refuse(m.clone()))?;
        checkpoint.check().map_err(refuse)?;
        let history_path = self.file(HISTORY);
        let history = match history_path.exists() {
            true => crate::fsutil::read_regular(&history_path, None)?,
            false => Vec::new(),
        };
        let len = checkpoint.logbook.history_len as usize;
        if history.len() < len {
            let whole = history.iter().filter(|&&b| b == b'\n').count();
            return Err(Error::run(
                &history_path,
                format!(
                    "history line {} is incomplete: the file holds {} bytes, the checkpoint records {len}; it was cut or replaced after the checkpoint was written (restore it, or start a new run)",
                    whole + 1,
                    history.len()
                ),
            ));
        }
        if len > 0 && history[len - 1] != b'\n' {
            return Err(refuse(format!(
                "field `logbook.history_len`: {len} does not end a line of {HISTORY}"
            )));
        }
        Ok(checkpoint)
    }

    /// Writes the checkpoint atomically, after the same checks a resume makes: a checkpoint
    /// that could not be resumed (a non-finite score, say) is never written.
    pub fn save(&self, checkpoint: &Checkpoint) -> Result<()> {
        checkpoint.check().map_err(|m| {
            Error::run(
                self.file(CHECKPOINT),
                format!(
                    "refusing to save an inconsistent checkpoint ({m}); the previous one is kept"
                ),
            )
        })?;
        self.write_json(CHECKPOINT, checkpoint)
    }

    /// Whether no evaluation has been recorded yet (the history is empty).
    pub fn nothing_evaluated(&self) -> bool {
        std::fs::metadata(self.file(HISTORY)).map_or(true, |m| m.len() == 0)
    }

    /// Removes what a run that never evaluated anything wrote (its files, its executor's
    /// folders) and the directory itself when the run made it (`existed`: it was there, empty).
    /// Best effort: the caller reports the error that stopped the run either way.
    pub fn remove_unstarted(&self, existed: bool) {
        for name in [CONFIG, CHECKPOINT, HISTORY, LOCK] {
            let _ = std::fs::remove_file(self.file(name));
        }
        for folder in ["work", "results", "workers", "slurm"] {
            let _ = std::fs::remove_dir_all(self.file(folder));
        }
        if !existed {
            let _ = std::fs::remove_dir(&self.path);
        }
    }

    /// Writes the run's file `name` atomically, never through a link (see `write_confined`).
    pub fn write(&self, name: &str, bytes: &[u8]) -> Result<()> {
        crate::fsutil::write_confined(&self.file(name), bytes)
    }

    pub fn write_json<T: Serialize>(&self, name: &str, value: &T) -> Result<()> {
        write_json_confined(&self.file(name), value)
    }

    /// Every line of `history.jsonl` that the checkpoint knows of (for `evolve status`).
    pub fn history(&self, checkpoint: &Checkpoint) -> Result<Vec<Evaluation>> {
        let path = self.file(HISTORY);
        let bytes = crate::fsutil::read_regular(&path, None)?;
        let known = &bytes[..(checkpoint.logbook.history_len as usize).min(bytes.len())];
        String::from_utf8_lossy(known)
            .lines()
            .enumerate()
            .map(|(i, line)| {
                crate::fsutil::parse_json(line)
                    .map_err(|m| Error::run(&path, format!("line {}: {m}", i + 1)))
            })
            .collect()
    }

    /// Appends one line to `history.jsonl` and returns the file's new length.
    pub fn append_history(&self, evaluation: &Evaluation) -> Result<u64> {
        let path = self.file(HISTORY);
        crate::fsutil::refuse_link(&path)?;
        let mut file = no_follow()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        let mut line = serde_json::to_string(evaluation).expect("plain data serialises");
        line.push('\n');
        file.write_all(line.as_bytes())
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io(&path, e))?;
        file.metadata()
            .map(|m| m.len())
            .map_err(|e| Error::io(&path, e))
    }

    /// Cuts `history.jsonl` back to what the checkpoint knows of.
    pub fn truncate_history(&self, len: u64) -> Result<()> {
        let path = self.file(HISTORY);
        crate::fsutil::refuse_link(&path)?;
        let file = no_follow()
            .create(true)
            .write(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        file.set_len(len).map_err(|e| Error::io(&path, e))
    }
}

/// Options that refuse to open a symbolic link (`O_NOFOLLOW`): files of a run directory are
/// opened in place, never through a link planted there.
fn no_follow() -> OpenOptions {
    use std::os::unix::fs::OpenOptionsExt;
    let mut options = OpenOptions::new();
    options.custom_flags(libc::O_NOFOLLOW);
    options
}

/// The names in `dir` other than the lock file (none when `dir` is missing).
fn entries(dir: &Path) -> Result<Vec<String>> {
    match std::fs::read_dir(dir) {
        Ok(list) => {
            let mut names: Vec<String> = list
                .filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n != LOCK)
                .collect();
            names.sort();
            Ok(names)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(Error::io(dir, e)),
    }
}
