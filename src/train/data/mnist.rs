//! MNIST and Fashion-MNIST (the same layout and sizes), official IDX layout: big-endian magic (2051 images, 2049 labels), then the dimensions,
//! then uint8 data; `*-ubyte` or `*-ubyte.gz`.
use super::{check_labels, read_maybe_gz, Dataset, DatasetKind};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";
pub const IMAGES_MAGIC: u32 = 2051;
pub const LABELS_MAGIC: u32 = 2049;

/// Parses an IDX file: its dimensions and its data bytes, checked against the header.
/// Returns the file as found on disk (maybe with `.gz`), its dimensions and its data.
fn read_idx(path: &Path, magic: u32, kind: DatasetKind) -> Result<(PathBuf, Vec<i64>, Tensor)> {
    let (found, bytes) = read_maybe_gz(path, kind)?;
    let be = |i: usize| {
        bytes
            .get(i..i + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    let got = be(0).ok_or_else(|| Error::data(&found, "truncated: shorter than an IDX header"))?;
    if got != magic {
        return Err(Error::data(
            &found,
            format!("not an IDX file of the expected type: magic {got}, expected {magic}"),
        ));
    }
    let ndim = if magic == IMAGES_MAGIC { 3 } else { 1 };
    let dims: Vec<i64> = (0..ndim)
        .map(|d| be(4 + 4 * d).map(|x| x as i64))
        .collect::<Option<_>>()
        .ok_or_else(|| Error::data(&found, "truncated IDX header"))?;
    let header = 4 + 4 * ndim;
    let expected: i64 = dims.iter().product();
    let have = (bytes.len() - header) as i64;
    if have != expected {
        return Err(Error::data(&found, format!("truncated or corrupt: header promises {expected} data bytes ({dims:?}), file has {have}")));
    }
    Ok((found, dims, Tensor::from_slice(&bytes[header..])))
}

fn read_split(
    dir: &Path,
    images: &str,
    labels: &str,
    kind: DatasetKind,
) -> Result<(Tensor, Tensor)> {
    let (_, dims, x) = read_idx(&dir.join(images), IMAGES_MAGIC, kind)?;
    let (labels, ldims, y) = read_idx(&dir.join(labels), LABELS_MAGIC, kind)?;
    if ldims[0] != dims[0] {
        return Err(Error::data(
            &labels,
            format!("{} labels for {} images", ldims[0], dims[0]),
        ));
    }
    let y = y.to_kind(Kind::Int64);
    check_labels(&y, 10, &labels)?;
    Ok((x.view([dims[0], 1, dims[1], dims[2]]), y))
}

/// Training images in `dir`, from the training labels' IDX header (see `data::train_count`);
/// the other three files must be there too.
pub fn train_count(dir: &Path, kind: DatasetKind) -> Result<i64> {
    super::require_dir(kind, dir)?;
    let mut count = 0;
    for (name, magic) in [
        (TRAIN_LABELS, LABELS_MAGIC),
        (TRAIN_IMAGES, IMAGES_MAGIC),
        (TEST_LABELS, LABELS_MAGIC),
        (TEST_IMAGES, IMAGES_MAGIC),
    ] {
        let (found, head) = super::head_maybe_gz(&dir.join(name), kind, 8)?;
        let be = |i: usize| u32::from_be_bytes([head[i], head[i + 1], head[i + 2], head[i + 3]]);
        if head.len() < 8 || be(0) != magic {
            return Err(Error::data(
                &found,
                format!("not an IDX file of the expected type (magic {magic}) or truncated"),
            ));
        }
        if name == TRAIN_LABELS {
            count = be(4) as i64;
        }
    }
    Ok(count)
}

/// Reads `dir` as `kind` (MNIST or Fashion-MNIST).
pub fn load(dir: &Path, kind: DatasetKind) -> Result<Dataset> {
    super::require_dir(kind, dir)?;
    let (train_x, train_y) = read_split(dir, TRAIN_IMAGES, TRAIN_LABELS, kind)?;
    let (test_x, test_y) = read_split(dir, TEST_IMAGES, TEST_LABELS, kind)?;
    Ok(Dataset {
        kind,
        train_x,
        train_y,
        test_x,
        test_y,
    })
}
