//! Datasets: readers for the official CIFAR-10 binary and MNIST / Fashion-MNIST IDX layouts (raw or gzipped)
//! and for byte-level text corpora, download with checksums, verification, the device-resident
//! batch loader, and writers of small synthetic datasets in the same formats (so the tests
//! exercise the real readers).
pub mod cifar;
pub mod download;
pub mod loader;
pub mod mnist;
pub mod synthetic;
pub mod text;

use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// The environment variable naming the data root when `--data-dir` is not given.
pub const DATA_ENV: &str = "EVOLVE_DATA_DIR";

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DatasetKind {
    Cifar10,
    Mnist,
    /// Xiao et al. 2017: 28×28 grey clothing images, MNIST's layout and sizes.
    #[serde(rename = "fashion-mnist")]
    FashionMnist,
    /// A byte-level text corpus (see `text`): Debian's `fortunes` unless a task names its own.
    Text,
}

impl DatasetKind {
    pub const ALL: [DatasetKind; 4] = [
        DatasetKind::Cifar10,
        DatasetKind::Mnist,
        DatasetKind::FashionMnist,
        DatasetKind::Text,
    ];

    /// The folder under the data root.
    pub fn dir_name(self) -> &'static str {
        match self {
            DatasetKind::Cifar10 => "cifar10",
            DatasetKind::Mnist => "mnist",
            DatasetKind::FashionMnist => "fashion-mnist",
            DatasetKind::Text => "fortunes",
        }
    }

    /// The name configs and `--datasets` use.
    pub fn config_name(self) -> &'static str {
        match self {
            DatasetKind::Text => "text",
            _ => self.dir_name(),
        }
    }

    /// Whether records are images (else byte-level text).
    pub fn is_image(self) -> bool {
        self != DatasetKind::Text
    }

    /// Per-channel mean and std of the training set, for normalisation.
    pub fn mean_std(self) -> (&'static [f64], &'static [f64]) {
        match self {
            DatasetKind::Cifar10 => (&[0.4914, 0.4822, 0.4465], &[0.2470, 0.2435, 0.2616]),
            DatasetKind::Mnist => (&[0.1307], &[0.3081]),
            DatasetKind::FashionMnist => (&[0.2860], &[0.3530]),
            DatasetKind::Text => (&[], &[]),
        }
    }

    /// Random crop with padding 4 and horizontal flip suit natural images, not digits.
    pub fn augment(self) -> bool {
        self == DatasetKind::Cifar10
    }

    /// Classes of a label (for text: the 256 values of the next byte).
    pub fn num_classes(self) -> i64 {
        match self {
            DatasetKind::Text => 256,
            _ => 10,
        }
    }

    /// (train, test) records of the official release (a text corpus has none: its files'
    /// checksums are checked instead).
    pub fn official_counts(self) -> Option<(usize, usize)> {
        match self {
            DatasetKind::Cifar10 => Some((50_000, 10_000)),
            DatasetKind::Mnist | DatasetKind::FashionMnist => Some((60_000, 10_000)),
            DatasetKind::Text => None,
        }
    }

    /// Where a system package installs the dataset (Debian's `dataset-fashion-mnist`), used
    /// when the data root lacks it.
    pub fn system_dirs(self) -> &'static [&'static str] {
        match self {
            DatasetKind::FashionMnist => &["/usr/share/datasets/fashion-mnist"],
            DatasetKind::Text => &[text::SYSTEM_DIR],
            _ => &[],
        }
    }

    /// The dataset's folder: `ROOT/<dir_name>` when it exists, else the first system location
    /// that exists, else `ROOT/<dir_name>` (for the message that it is missing).
    pub fn locate(self, root: &Path) -> PathBuf {
        locate_in(self, root, self.system_dirs())
    }

    /// The allowed dataset names, for messages.
    pub fn names() -> String {
        DatasetKind::ALL.map(|k| k.config_name()).join(", ")
    }

    /// (channels, height, width) of an image; a text record is `(1, 1, BLOCK)`.
    pub fn image_shape(self) -> (i64, i64, i64) {
        match self {
            DatasetKind::Cifar10 => (3, 32, 32),
            DatasetKind::Mnist | DatasetKind::FashionMnist => (1, 28, 28),
            DatasetKind::Text => (1, 1, text::BLOCK),
        }
    }
}

/// Where a task's data comes from: its dataset and, for text, the corpus it names (else the
/// default one). Datasets are loaded, and shared, once per source.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Source {
    pub kind: DatasetKind,
    pub corpus: Option<PathBuf>,
}

impl Source {
    /// The dataset's file or folder: the corpus named, else `DatasetKind::locate`.
    pub fn locate(&self, root: &Path) -> PathBuf {
        self.corpus
            .clone()
            .unwrap_or_else(|| self.kind.locate(root))
    }
}

/// Images as uint8 `[N, C, H, W]`, labels as int64 `[N]`, wherever they were put.
pub struct Dataset {
    pub kind: DatasetKind,
    pub train_x: Tensor,
    pub train_y: Tensor,
    pub test_x: Tensor,
    pub test_y: Tensor,
}

impl Dataset {
    /// Reads the dataset's folder under `root` (see `DatasetKind::locate`); a missing folder
    /// gets an error that says how to fix it.
    pub fn load(kind: DatasetKind, root: &Path) -> Result<Dataset> {
        Dataset::open(&Source { kind, corpus: None }, root)
    }

    /// Reads `source` (see `Source::locate`).
    pub fn open(source: &Source, root: &Path) -> Result<Dataset> {
        let dir = source.locate(root);
        match source.kind {
            DatasetKind::Cifar10 => cifar::load(&dir),
            DatasetKind::Mnist | DatasetKind::FashionMnist => mnist::load(&dir, source.kind),
            DatasetKind::Text => text::load(&dir),
        }
    }

    pub fn to_device(&self, device: Device) -> Dataset {
        Dataset {
            kind: self.kind,
            train_x: self.train_x.to_device(device),
            train_y: self.train_y.to_device(device),
            test_x: self.test_x.to_device(device),
            test_y: self.test_y.to_device(device),
        }
    }

    /// Turns uint8 records into the network's input: normalised float images, or int64 tokens.
    pub fn normalise(&self, x_uint8: &Tensor) -> Tensor {
        match self.kind.is_image() {
            true => self.normalise_float(&(x_uint8.to_kind(Kind::Float) / 255.0)),
            false => x_uint8.to_kind(Kind::Int64),
        }
    }

    /// Normalises images already scaled to [0, 1].
    pub fn normalise_float(&self, x: &Tensor) -> Tensor {
        let (mean, std) = self.kind.mean_std();
        let shape = [1, mean.len() as i64, 1, 1];
        let stat = |s: &[f64]| {
            Tensor::from_slice(s)
                .to_kind(Kind::Float)
                .view(shape)
                .to_device(x.device())
        };
        (x - stat(mean)) / stat(std)
    }
}

/// The data root: `--data-dir`, else `$EVOLVE_DATA_DIR`, else `./data` (an empty value counts
/// as not given).
pub fn resolve_root(flag: Option<&Path>) -> PathBuf {
    let given = |p: PathBuf| (!p.as_os_str().is_empty()).then_some(p);
    flag.map(Path::to_path_buf)
        .and_then(given)
        .or_else(|| {
            std::env::var_os(DATA_ENV)
                .map(PathBuf::from)
                .and_then(given)
        })
        .unwrap_or_else(|| PathBuf::from("data"))
}

/// `DatasetKind::locate` with the system locations given.
pub fn locate_in(kind: DatasetKind, root: &Path, system: &[&str]) -> PathBuf {
    let own = root.join(kind.dir_name());
    if own.exists() {
        return own;
    }
    system
        .iter()
        .map(PathBuf::from)
        .find(|dir| dir.is_dir())
        .unwrap_or(own)
}

/// The data root that `looked_for` (the dataset's folder, or a file in it) was sought under.
fn root_of(kind: DatasetKind, looked_for: &Path) -> PathBuf {
    let root = looked_for
        .ancestors()
        .find(|a| a.file_name().is_some_and(|n| n == kind.dir_name()))
        .and_then(Path::parent)
        .unwrap_or(Path::new("."));
    let root = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    std::path::absolute(root).unwrap_or_else(|_| root.to_path_buf())
}

/// What is at `path` when it cannot be a folder to read from: a link loop, a dangling link or a
/// file (`None` for a folder, or nothing at all).
fn not_a_folder(path: &Path) -> Option<&'static str> {
    match std::fs::metadata(path) {
        Ok(meta) if meta.is_dir() => None,
        Ok(_) => Some("a file, not a folder"),
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => Some("a symbolic link loop"),
        Err(_) if std::fs::symlink_metadata(path).is_ok() => {
            Some("a symbolic link to nothing (dangling)")
        }
        Err(_) => None,
    }
}

/// The message for a dataset that is not where we looked: what stands in the way when the data
/// root or the dataset's folder is there but unusable, else where it should be and how to get it.
pub fn missing(kind: DatasetKind, looked_for: &Path) -> Error {
    let root = root_of(kind, looked_for);
    for place in [root.clone(), root.join(kind.dir_name())] {
        if let Some(what) = not_a_folder(&place) {
            return Error::data(
                &place,
                format!(
                    "is {what}; the data root (from --data-dir, else ${DATA_ENV}, else ./data) must be a folder holding {}/: point it at one",
                    kind.dir_name()
                ),
            );
        }
    }
    Error::data(
        looked_for,
        format!(
            "not found. The data root is {} (from --data-dir, else ${DATA_ENV}, else ./data) and should hold {}/. \
             Fetch it with `evolve data download --data-dir {}`, or point --data-dir (or ${DATA_ENV}) at a folder \
             holding cifar10/, mnist/ and fashion-mnist/ in the official layouts.",
            root.display(),
            kind.dir_name(),
            root.display()
        ),
    )
}

/// Checks that the dataset's folder is a folder; a file there gets its own message.
pub fn require_dir(kind: DatasetKind, dir: &Path) -> Result<()> {
    if dir.is_dir() {
        return Ok(());
    }
    if dir.exists() {
        return Err(Error::data(
            dir,
            format!(
                "is not a folder; the data root {} should hold a folder {}/ with the official files",
                root_of(kind, dir).display(),
                kind.dir_name()
            ),
        ));
    }
    Err(missing(kind, dir))
}

/// `path` or `path.gz`, whichever exists (and whether it is the gzipped one); both at once is
/// refused, since either could be the stale one.
fn find_maybe_gz(path: &Path, kind: DatasetKind) -> Result<(PathBuf, bool)> {
    let gz = PathBuf::from(format!("{}.gz", path.display()));
    match (path.exists(), gz.exists()) {
        (true, true) => Err(Error::data(
            path,
            format!(
                "both {} and {} exist; keep one of them (evolve will not guess which is current)",
                path.display(),
                gz.display()
            ),
        )),
        (true, false) => Ok((path.to_path_buf(), false)),
        (false, true) => Ok((gz, true)),
        (false, false) => Err(missing(kind, path)),
    }
}

/// Reads `path`, or `path.gz` decompressed, whichever exists (see `find_maybe_gz`).
pub fn read_maybe_gz(path: &Path, kind: DatasetKind) -> Result<(PathBuf, Vec<u8>)> {
    let (found, gz) = find_maybe_gz(path, kind)?;
    let file = std::fs::File::open(&found).map_err(|e| Error::io(&found, e))?;
    let mut bytes = Vec::new();
    match gz {
        false => std::io::BufReader::new(file)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(&found, e))?,
        true => flate2::read::GzDecoder::new(std::io::BufReader::new(file))
            .read_to_end(&mut bytes)
            .map_err(|e| Error::data(&found, format!("corrupt or truncated gzip file: {e}")))?,
    };
    Ok((found, bytes))
}

/// The first `n` bytes of `path` (or of `path.gz`, decompressed), without reading the rest.
pub fn head_maybe_gz(path: &Path, kind: DatasetKind, n: usize) -> Result<(PathBuf, Vec<u8>)> {
    let (found, gz) = find_maybe_gz(path, kind)?;
    let file = std::fs::File::open(&found).map_err(|e| Error::io(&found, e))?;
    let mut bytes = Vec::new();
    let read = match gz {
        false => file.take(n as u64).read_to_end(&mut bytes),
        true => flate2::read::GzDecoder::new(file)
            .take(n as u64)
            .read_to_end(&mut bytes),
    };
    read.map_err(|e| Error::data(&found, format!("unreadable or corrupt: {e}")))?;
    Ok((found, bytes))
}

/// The length of `path`'s data (of `path.gz` decompressed: the gzip trailer's size field, so
/// nothing is decompressed; exact below 4 GiB, which every dataset file is).
pub fn len_maybe_gz(path: &Path, kind: DatasetKind) -> Result<(PathBuf, u64)> {
    use std::io::{Seek, SeekFrom};
    let (found, gz) = find_maybe_gz(path, kind)?;
    let mut file = std::fs::File::open(&found).map_err(|e| Error::io(&found, e))?;
    let len = file.metadata().map_err(|e| Error::io(&found, e))?.len();
    if !gz {
        return Ok((found, len));
    }
    let mut trailer = [0u8; 4];
    file.seek(SeekFrom::Start(len.saturating_sub(4)))
        .and_then(|_| file.read_exact(&mut trailer))
        .map_err(|e| Error::data(&found, format!("truncated gzip file: {e}")))?;
    Ok((found, u32::from_le_bytes(trailer) as u64))
}

/// How many training images `kind` has under `root`, from file headers and sizes alone: what a
/// run checks its split sizes against before it creates anything.
pub fn train_count(source: &Source, root: &Path) -> Result<i64> {
    let dir = source.locate(root);
    if source.kind == DatasetKind::Text {
        return text::train_count(&dir);
    }
    require_dir(source.kind, &dir)?;
    match source.kind {
        DatasetKind::Cifar10 => cifar::train_count(&dir),
        _ => mnist::train_count(&dir, source.kind),
    }
}

/// Checks that every label is in `0..classes`; `labels` is int64.
pub fn check_labels(labels: &Tensor, classes: i64, path: &Path) -> Result<()> {
    if labels.numel() == 0 {
        return Err(Error::data(path, "holds no records"));
    }
    let (lo, hi) = (labels.min().int64_value(&[]), labels.max().int64_value(&[]));
    if lo < 0 || hi >= classes {
        return Err(Error::data(
            path,
            format!(
                "label {} is outside the allowed range 0..={}",
                if lo < 0 { lo } else { hi },
                classes - 1
            ),
        ));
    }
    Ok(())
}

/// What `evolve data verify` reports for one dataset.
#[derive(Debug, Serialize)]
pub struct DatasetReport {
    pub dataset: DatasetKind,
    pub folder: PathBuf,
    pub files: Vec<(String, u64)>,
    pub train: usize,
    pub test: usize,
    pub label_range: (i64, i64),
    pub train_histogram: Vec<i64>,
    pub test_histogram: Vec<i64>,
    /// A text corpus's files against Debian's published checksums: how many match, or what
    /// differs (`None` for images).
    pub checksums: Option<std::result::Result<usize, String>>,
}

impl DatasetReport {
    /// How the record counts differ from the official release, if they do.
    pub fn count_mismatch(&self) -> Option<String> {
        if let Some(problem) = &self.checksums.as_ref().and_then(|c| c.as_ref().err()) {
            return Some(problem.to_string());
        }
        let (train, test) = self.dataset.official_counts()?;
        ((self.train, self.test) != (train, test)).then(|| {
            format!(
                "{} train and {} test records; the official {} has {train} and {test}: an incomplete or altered copy",
                self.train,
                self.test,
                self.dataset.dir_name()
            )
        })
    }
}

/// Fails unless some dataset was found and every one has the official record counts.
pub fn check_counts(reports: &[DatasetReport], root: &Path) -> Result<()> {
    if reports.is_empty() {
        return Err(missing(DatasetKind::Cifar10, &root.join("cifar10")));
    }
    let problems: Vec<String> = reports
        .iter()
        .filter_map(|r| {
            r.count_mismatch()
                .map(|m| format!("{}: {m}", r.folder.display()))
        })
        .collect();
    match problems.is_empty() {
        true => Ok(()),
        false => Err(Error::data(root, problems.join("; "))),
    }
}

/// Loads every dataset present under `root` and summarises it; a corrupt one is an error.
/// Returns the reports and the datasets that were absent.
pub fn verify(root: &Path) -> Result<(Vec<DatasetReport>, Vec<DatasetKind>)> {
    let mut reports = Vec::new();
    let mut absent = Vec::new();
    for kind in DatasetKind::ALL {
        let folder = kind.locate(root);
        if !folder.exists() {
            absent.push(kind);
            continue;
        }
        let data = Dataset::load(kind, root)?;
        let mut files: Vec<(String, u64)> = std::fs::read_dir(&folder)
            .map_err(|e| Error::io(&folder, e))?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                Some((
                    e.file_name().to_string_lossy().into_owned(),
                    e.metadata().ok()?.len(),
                ))
            })
            .collect();
        files.sort();
        // A text corpus's 256 byte counts say nothing a reader checks; its checksums do.
        let histogram = |y: &Tensor| match kind.is_image() {
            true => Vec::<i64>::try_from(&y.bincount(None::<Tensor>, kind.num_classes()))
                .expect("int64 histogram"),
            false => Vec::new(),
        };
        let all = Tensor::cat(&[&data.train_y, &data.test_y], 0).to_kind(Kind::Int64);
        let checksums = (!kind.is_image()).then(|| text::check_fortunes(&folder));
        reports.push(DatasetReport {
            checksums,
            dataset: kind,
            folder,
            files,
            train: data.train_y.size()[0] as usize,
            test: data.test_y.size()[0] as usize,
            label_range: (all.min().int64_value(&[]), all.max().int64_value(&[])),
            train_histogram: histogram(&data.train_y),
            test_histogram: histogram(&data.test_y),
        });
    }
    Ok((reports, absent))
}
