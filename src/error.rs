//! One error type for the library: every variant says which file or field is wrong
//! and what would be accepted, so the CLI can print it as is.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A genome that does not parse or validate. `origin` is the file (or "<genome>").
    #[error("{origin}: {message}")]
    Genome { origin: String, message: String },

    /// A config file that does not parse or validate.
    #[error("{origin}: {message}")]
    Config { origin: String, message: String },

    /// A dataset that is missing, truncated or corrupt.
    #[error("{path}: {message}")]
    Data { path: PathBuf, message: String },

    /// A run directory or checkpoint that cannot be used.
    #[error("{path}: {message}")]
    Run { path: PathBuf, message: String },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// The user asked for something that cannot be done (bad flag value and the like).
    #[error("{0}")]
    Usage(String),

    /// The protocol cannot score genomes: Adam, the yardstick, did not train under it.
    #[error("{0}")]
    Protocol(String),

    /// The run cannot go on for a reason outside this process: a worker task out of retries,
    /// a driver that is gone. Progress is saved.
    #[error("{0}")]
    Stopped(String),

    /// A bug in evolve (an invariant broke); the message says what, and nothing was saved from it.
    #[error("internal error: {0}")]
    Internal(String),

    /// SIGINT or SIGTERM arrived (the signal's number); the caller saves and exits 128 + signal.
    #[error("interrupted by {}", crate::interrupt::name(*.0))]
    Interrupted(i32),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    pub fn data(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Data {
            path: path.into(),
            message: message.into(),
        }
    }
    pub fn run(path: impl Into<PathBuf>, message: impl Into<String>) -> Self {
        Error::Run {
            path: path.into(),
            message: message.into(),
        }
    }
}
