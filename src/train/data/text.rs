//! A text corpus for language models: raw bytes as tokens (vocabulary 256), cut into blocks.
//!
//! The corpus is one file, or every regular file of a folder in name order, concatenated. It is
//! cut into non-overlapping records of `BLOCK + 1` bytes: a record's first `BLOCK` bytes are the
//! input (`train_x` row) and its last `BLOCK` the next-byte targets (`train_y` row), so a record
//! reads nothing of its neighbours. The last tenth of the records is the test split; the
//! validation split is the last `validation` records before it (`Task::train_pool`), so no
//! training window ever reads a byte of either, as with images.
//!
//! The default corpus is Debian's `fortunes` package (1:1.99.1-7.3): `apt-get install fortunes`
//! puts it in `/usr/share/games/fortunes/`. `FORTUNES_SHA256` pins its files, which
//! `evolve data verify` checks.
use super::{Dataset, DatasetKind};
use crate::error::{Error, Result};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Tokens in one record's input (and in its targets): the longest context a model can read.
pub const BLOCK: i64 = 128;
/// One record in the corpus: its input and one byte more.
const RECORD: usize = BLOCK as usize + 1;
/// One record in this many is in the test split (the last ones).
const TEST_SHARE: i64 = 10;
/// Where Debian's `fortunes` package installs the default corpus.
pub const SYSTEM_DIR: &str = "/usr/share/games/fortunes";

/// `sha256sum` lines of the 43 text files of Debian's `fortunes` 1:1.99.1-7.3.
pub const FORTUNES_SHA256: &str = include_str!("fortunes.sha256");

/// The files of a corpus in the order they are read: `path` itself, or the regular files of the
/// folder `path` in name order. Debian's index files (`.dat`), links (`.u8`, which point at
/// files already read) and checksum or README files are not text to learn from.
pub fn corpus_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = std::fs::metadata(path).map_err(|_| missing(path))?;
    if meta.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    let skip =
        |name: &str| name.ends_with(".dat") || name == "SHA256SUMS" || name.starts_with("README");
    let mut files: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(|e| Error::io(path, e))?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter(|e| !skip(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(Error::data(path, "holds no text files: an empty corpus; point `corpus` at a UTF-8 or byte text file or a folder of them"));
    }
    Ok(files)
}

fn missing(path: &Path) -> Error {
    Error::data(
        path,
        format!("no text corpus here. Install Debian's `fortunes` package (`apt-get install fortunes`, into {SYSTEM_DIR}), copy those files to DATA_ROOT/fortunes/, or set the task's `corpus` to a text file or folder of your own"),
    )
}

/// The whole corpus, as bytes.
pub fn read_corpus(path: &Path) -> Result<Vec<u8>> {
    let mut bytes = Vec::new();
    for file in corpus_files(path)? {
        bytes.extend(std::fs::read(&file).map_err(|e| Error::io(&file, e))?);
    }
    Ok(bytes)
}

/// Records in a corpus of `bytes` bytes: (training, test).
fn split_counts(bytes: usize) -> (i64, i64) {
    let records = (bytes / RECORD) as i64;
    let test = records / TEST_SHARE;
    (records - test, test)
}

/// Training records in the corpus at `path`, from file sizes alone.
pub fn train_count(path: &Path) -> Result<i64> {
    let mut bytes = 0usize;
    for file in corpus_files(path)? {
        bytes += std::fs::metadata(&file)
            .map_err(|e| Error::io(&file, e))?
            .len() as usize;
    }
    checked_counts(bytes, path).map(|(train, _)| train)
}

/// The split sizes, or why a corpus this small cannot be trained on.
fn checked_counts(bytes: usize, path: &Path) -> Result<(i64, i64)> {
    let (train, test) = split_counts(bytes);
    if test < 1 {
        return Err(Error::data(
            path,
            format!(
                "{bytes} bytes is too small a corpus: it needs at least {} bytes ({TEST_SHARE} records of {RECORD} bytes, one of them for the test split)",
                TEST_SHARE as usize * RECORD
            ),
        ));
    }
    Ok((train, test))
}

/// Reads the corpus at `path` into records: `train_x`/`test_x` the inputs and
/// `train_y`/`test_y` the next bytes, uint8 `[records, BLOCK]` each.
pub fn load(path: &Path) -> Result<Dataset> {
    let bytes = read_corpus(path)?;
    let (train, test) = checked_counts(bytes.len(), path)?;
    let used = (train + test) as usize * RECORD;
    let records = Tensor::from_slice(&bytes[..used]).view([train + test, RECORD as i64]);
    let inputs = records.narrow(1, 0, BLOCK);
    let targets = records.narrow(1, 1, BLOCK);
    Ok(Dataset {
        kind: DatasetKind::Text,
        train_x: inputs.narrow(0, 0, train).contiguous(),
        train_y: targets.narrow(0, 0, train).contiguous(),
        test_x: inputs.narrow(0, train, test).contiguous(),
        test_y: targets.narrow(0, train, test).contiguous(),
    })
}

/// How the files at `dir` compare with Debian's `fortunes`: `Ok(n)` when all `n` files are there
/// with their published SHA-256, else the files missing or altered.
pub fn check_fortunes(dir: &Path) -> std::result::Result<usize, String> {
    let mut problems = Vec::new();
    let mut n = 0;
    for line in FORTUNES_SHA256.lines().filter(|l| !l.trim().is_empty()) {
        let (sum, name) = line.split_once("  ").expect("sha256sum lines");
        n += 1;
        match std::fs::read(dir.join(name)) {
            Ok(bytes) if hex(&Sha256::digest(&bytes)) == sum => {}
            Ok(_) => problems.push(format!("{name} differs from Debian's (SHA-256)")),
            Err(_) => problems.push(format!("{name} is missing")),
        }
    }
    match problems.is_empty() {
        true => Ok(n),
        false => Err(format!(
            "not Debian's fortunes 1:1.99.1-7.3: {}; reinstall it (`apt-get install --reinstall fortunes`) or copy those files again",
            problems.join(", ")
        )),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Windows of `context` tokens from records `x` and `y` (`[N, BLOCK]`): every whole window,
/// side by side (`[N·⌊BLOCK/context⌋, context]`), for scoring on all of a split.
pub fn windows(x: &Tensor, y: &Tensor, context: i64) -> (Tensor, Tensor) {
    let cut = |t: &Tensor| t.unfold(1, context, context).reshape([-1, context]);
    (cut(x), cut(y))
}

/// One random window of `context` tokens from each record of a batch (the same offset in input
/// and targets), drawn on the device for the whole batch: the text's random crop.
pub fn random_windows(x: &Tensor, y: &Tensor, context: i64) -> (Tensor, Tensor) {
    let (n, block) = x.size2().expect("records [N, BLOCK]");
    if context >= block {
        return (x.shallow_clone(), y.shallow_clone());
    }
    let device = x.device();
    let start = Tensor::randint(block - context + 1, [n, 1], (tch::Kind::Int64, device));
    let idx = start + Tensor::arange(context, (tch::Kind::Int64, device)).unsqueeze(0);
    (x.gather(1, &idx, false), y.gather(1, &idx, false))
}
