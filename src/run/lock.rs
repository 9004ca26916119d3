//! The lock that gives a run directory one process.
use super::LOCK;
use crate::error::{Error, Result};
use std::fs::{File, TryLockError};
use std::io::{Read, Write};
use std::path::Path;

/// The exclusive lock on a run directory, held for as long as this value lives.
pub struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes the lock of `dir`, or says which process holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock> {
        let path = dir.join(LOCK);
        crate::fsutil::refuse_link(&path)?;
        let mut file = super::no_follow()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // `evolve status` takes a shared lock for an instant to see whether a run is live, so a
        // busy lock gets a moment before it counts as another run.
        let mut attempts = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) if attempts < 50 => {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                Err(TryLockError::WouldBlock) => return Err(in_use(dir, &mut file)),
                Err(TryLockError::Error(e)) => return Err(Error::io(&path, e)),
            }
        }
        file.set_len(0)
            .and_then(|_| writeln!(file, "{}", std::process::id()))
            .and_then(|_| file.sync_data())
            .map_err(|e| Error::io(&path, e))?;
        Ok(RunLock { _file: file })
    }

    /// The PID of the process holding `dir`'s lock, if one does (`"?"` while it is still
    /// writing it). Takes nothing: for `evolve status` and for refusing a second run.
    pub fn holder(dir: &Path) -> Option<String> {
        let mut file = File::open(dir.join(LOCK)).ok()?;
        match file.try_lock_shared() {
            Ok(()) => None,
            Err(TryLockError::WouldBlock) => Some(read_pid(&mut file)),
            Err(TryLockError::Error(_)) => None,
        }
    }
}

fn read_pid(file: &mut File) -> String {
    let mut text = String::new();
    let _ = file.read_to_string(&mut text);
    match text.trim() {
        "" => "?".into(),
        pid => pid.into(),
    }
}

fn in_use(dir: &Path, file: &mut File) -> Error {
    Error::run(
        dir,
        format!(
            "is in use by another evolve process (PID {}); one process per run directory. Wait for it to finish or stop it (it saves on SIGINT/SIGTERM), then `evolve --resume {}`",
            read_pid(file),
            dir.display()
        ),
    )
}
