//! Small synthetic datasets written in the real on-disk formats, so tests run the real readers.
//! Each class has its own colour and stripe pattern plus noise: learnable, but not trivially.
use super::{cifar, mnist};
use crate::error::{Error, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::io::Write;
use std::path::Path;

/// One image of `class`, `channels × side × side` bytes, channel-major.
fn image(rng: &mut ChaCha8Rng, class: u8, channels: usize, side: usize) -> Vec<u8> {
    let c = class as usize;
    let mut px = Vec::with_capacity(channels * side * side);
    for ch in 0..channels {
        let base = 40 + ((c * 37 + ch * 71) % 160);
        for y in 0..side {
            for x in 0..side {
                let along = if c.is_multiple_of(2) { y } else { x };
                let stripe = if (along / (1 + c / 2)).is_multiple_of(2) {
                    50
                } else {
                    0
                };
                let noise: i32 = rng.gen_range(-30..=30);
                px.push((base as i32 + stripe + noise).clamp(0, 255) as u8);
            }
        }
    }
    px
}

fn write(path: &Path, bytes: &[u8], gzip: bool) -> Result<()> {
    let io = |e| Error::io(path, e);
    if gzip {
        let file = std::fs::File::create(format!("{}.gz", path.display())).map_err(io)?;
        let mut enc = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        enc.write_all(bytes).map_err(io)?;
        enc.finish().map_err(io)?;
        Ok(())
    } else {
        std::fs::write(path, bytes).map_err(io)
    }
}

/// Writes a CIFAR-10-layout folder: five training batches of `per_batch` records and a test batch.
pub fn write_cifar10(
    dir: &Path,
    per_batch: usize,
    test: usize,
    gzip: bool,
    seed: u64,
) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let batch = |n: usize, rng: &mut ChaCha8Rng| {
        let mut bytes = Vec::with_capacity(n * cifar::RECORD_BYTES as usize);
        for i in 0..n {
            let class = (i % 10) as u8;
            bytes.push(class);
            bytes.extend(image(rng, class, 3, 32));
        }
        bytes
    };
    for name in cifar::TRAIN_FILES {
        write(&dir.join(name), &batch(per_batch, &mut rng), gzip)?;
    }
    write(&dir.join(cifar::TEST_FILE), &batch(test, &mut rng), gzip)
}

/// Writes an MNIST-layout folder (IDX files) with `train` and `test` images.
pub fn write_mnist(dir: &Path, train: usize, test: usize, gzip: bool, seed: u64) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for (n, images, labels) in [
        (train, mnist::TRAIN_IMAGES, mnist::TRAIN_LABELS),
        (test, mnist::TEST_IMAGES, mnist::TEST_LABELS),
    ] {
        let mut img = [mnist::IMAGES_MAGIC, n as u32, 28, 28]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>();
        let mut lab = [mnist::LABELS_MAGIC, n as u32]
            .iter()
            .flat_map(|v| v.to_be_bytes())
            .collect::<Vec<u8>>();
        for i in 0..n {
            let class = ((i * 7) % 10) as u8;
            lab.push(class);
            img.extend(image(&mut rng, class, 1, 28));
        }
        write(&dir.join(images), &img, gzip)?;
        write(&dir.join(labels), &lab, gzip)?;
    }
    Ok(())
}

/// A whole synthetic data root (`cifar10/`, `mnist/`, `fashion-mnist/`, and `fortunes/` with a
/// 700-record text corpus), small enough for CPU tests.
pub fn write_root(root: &Path, seed: u64) -> Result<()> {
    write_cifar10(&root.join("cifar10"), 200, 200, true, seed)?;
    write_mnist(&root.join("mnist"), 1000, 200, true, seed + 1)?;
    write_mnist(&root.join("fashion-mnist"), 1000, 200, true, seed + 2)?;
    let record = super::text::BLOCK as usize + 1;
    write_text(&root.join("fortunes/synthetic.txt"), 700 * record, seed + 3)
}

/// Writes a text corpus of about `bytes` bytes to `path`: sentences drawn from a small grammar
/// (a learnable next byte, not a trivial one), entries separated by `%` lines as in `fortunes`.
pub fn write_text(path: &Path, bytes: usize, seed: u64) -> Result<()> {
    const SUBJECTS: [&str; 6] = ["the cat", "a dog", "my friend", "the old man", "she", "we"];
    const VERBS: [&str; 5] = ["sees", "likes", "finds", "keeps", "wants"];
    const OBJECTS: [&str; 6] = [
        "a fish",
        "the moon",
        "some bread",
        "two books",
        "it",
        "water",
    ];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut text = String::with_capacity(bytes + 64);
    while text.len() < bytes {
        let pick =
            |rng: &mut ChaCha8Rng, words: &[&'static str]| words[rng.gen_range(0..words.len())];
        let s = pick(&mut rng, &SUBJECTS);
        let v = pick(&mut rng, &VERBS);
        let o = pick(&mut rng, &OBJECTS);
        text += &format!("{s} {v} {o}.\n");
        if rng.gen_range(0..4) == 0 {
            text += "%\n";
        }
    }
    text.truncate(bytes);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    }
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}
