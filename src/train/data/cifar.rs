//! CIFAR-10, official binary layout: records of 1 label byte + 3,072 pixel bytes (R, G, B planes,
//! row-major), 10,000 per file, in `data_batch_1..5.bin` and `test_batch.bin`, each maybe gzipped.
use super::{check_labels, read_maybe_gz, Dataset, DatasetKind};
use crate::error::{Error, Result};
use std::path::Path;
use tch::{Kind, Tensor};

pub const RECORD_BYTES: i64 = 1 + 3 * 32 * 32;
pub const TRAIN_FILES: [&str; 5] = [
    "data_batch_1.bin",
    "data_batch_2.bin",
    "data_batch_3.bin",
    "data_batch_4.bin",
    "data_batch_5.bin",
];
pub const TEST_FILE: &str = "test_batch.bin";

/// One batch file as (images uint8 `[n,3,32,32]`, labels int64 `[n]`).
pub fn read_batch(path: &Path) -> Result<(Tensor, Tensor)> {
    let (found, bytes) = read_maybe_gz(path, DatasetKind::Cifar10)?;
    let len = bytes.len() as i64;
    if len == 0 || len % RECORD_BYTES != 0 {
        return Err(Error::data(
            &found,
            format!("truncated or corrupt: {len} bytes is not a whole number of {RECORD_BYTES}-byte records"),
        ));
    }
    let records = Tensor::from_slice(&bytes).view([len / RECORD_BYTES, RECORD_BYTES]);
    let labels = records.select(1, 0).to_kind(Kind::Int64);
    check_labels(&labels, 10, &found)?;
    let images = records
        .narrow(1, 1, RECORD_BYTES - 1)
        .reshape([-1, 3, 32, 32]);
    Ok((images, labels))
}

/// Training records in `dir`, from the six files' sizes (see `data::train_count`).
pub fn train_count(dir: &Path) -> Result<i64> {
    super::require_dir(DatasetKind::Cifar10, dir)?;
    let mut train = 0;
    for name in TRAIN_FILES.iter().chain([&TEST_FILE]) {
        let (found, len) = super::len_maybe_gz(&dir.join(name), DatasetKind::Cifar10)?;
        let len = len as i64;
        if len == 0 || len % RECORD_BYTES != 0 {
            return Err(Error::data(
                &found,
                format!("truncated or corrupt: {len} bytes is not a whole number of {RECORD_BYTES}-byte records"),
            ));
        }
        if *name != TEST_FILE {
            train += len / RECORD_BYTES;
        }
    }
    Ok(train)
}

/// Reads the six batch files in parallel (rayon): decompressing them is most of a worker's
/// start-up.
pub fn load(dir: &Path) -> Result<Dataset> {
    use rayon::prelude::*;
    super::require_dir(DatasetKind::Cifar10, dir)?;
    let files: Vec<&str> = TRAIN_FILES.iter().chain([&TEST_FILE]).copied().collect();
    let mut batches = files
        .par_iter()
        .map(|name| read_batch(&dir.join(name)))
        .collect::<Result<Vec<_>>>()?;
    let (test_x, test_y) = batches.pop().expect("the test file was read");
    let (xs, ys): (Vec<Tensor>, Vec<Tensor>) = batches.into_iter().unzip();
    Ok(Dataset {
        kind: DatasetKind::Cifar10,
        train_x: Tensor::cat(&xs, 0),
        train_y: Tensor::cat(&ys, 0),
        test_x,
        test_y,
    })
}
