//! `evolve data download`: fetch the official archives, verify their published MD5 checksums,
//! unpack into the data root. Nothing is installed unless its checksum matches and it unpacks whole.
use super::{cifar, DatasetKind};
use crate::error::{Error, Result};
use md5::{Digest, Md5};
use std::io::Read;
use std::path::Path;

/// One official file and its published checksum.
#[derive(Clone, Debug)]
pub struct Source<'a> {
    pub dataset: DatasetKind,
    pub url: &'a str,
    pub file: &'a str,
    pub md5: &'a str,
}

/// The CIFAR-10 binary version (Krizhevsky 2009).
pub const CIFAR10: Source<'static> = Source {
    dataset: DatasetKind::Cifar10,
    url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
    file: "cifar-10-binary.tar.gz",
    md5: "c32a1d4ab5d03f1284b67883e8d87530",
};

/// MNIST, from the mirror torchvision uses, with its published checksums.
pub const MNIST: [Source<'static>; 4] = [
    Source {
        dataset: DatasetKind::Mnist,
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz",
        file: "train-images-idx3-ubyte.gz",
        md5: "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    },
    Source {
        dataset: DatasetKind::Mnist,
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/train-labels-idx1-ubyte.gz",
        file: "train-labels-idx1-ubyte.gz",
        md5: "d53e105ee54ea40749a09fcbcd1e9432",
    },
    Source {
        dataset: DatasetKind::Mnist,
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-images-idx3-ubyte.gz",
        file: "t10k-images-idx3-ubyte.gz",
        md5: "9fb629c4189551a2d022fa330f9573f3",
    },
    Source {
        dataset: DatasetKind::Mnist,
        url: "https://ossci-datasets.s3.amazonaws.com/mnist/t10k-labels-idx1-ubyte.gz",
        file: "t10k-labels-idx1-ubyte.gz",
        md5: "ec29112dd5afa0611ce80d1b7f02629c",
    },
];

/// Fashion-MNIST (Xiao et al. 2017), from its official bucket, with its published checksums.
pub const FASHION_MNIST: [Source<'static>; 4] = [
    Source {
        dataset: DatasetKind::FashionMnist,
        url:
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-images-idx3-ubyte.gz",
        file: "train-images-idx3-ubyte.gz",
        md5: "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
    },
    Source {
        dataset: DatasetKind::FashionMnist,
        url:
            "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/train-labels-idx1-ubyte.gz",
        file: "train-labels-idx1-ubyte.gz",
        md5: "25c81989df183df01b3e8a0aad5dffbe",
    },
    Source {
        dataset: DatasetKind::FashionMnist,
        url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-images-idx3-ubyte.gz",
        file: "t10k-images-idx3-ubyte.gz",
        md5: "bef4ecab320f06d8554ea6380940ec79",
    },
    Source {
        dataset: DatasetKind::FashionMnist,
        url: "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/t10k-labels-idx1-ubyte.gz",
        file: "t10k-labels-idx1-ubyte.gz",
        md5: "bb300cfdad3c16e7a12a480ee83cd310",
    },
];

pub fn sources(dataset: DatasetKind) -> Vec<Source<'static>> {
    match dataset {
        DatasetKind::Cifar10 => vec![CIFAR10],
        DatasetKind::Mnist => MNIST.to_vec(),
        DatasetKind::FashionMnist => FASHION_MNIST.to_vec(),
        // Debian's `fortunes` package is the text corpus's official archive: see `text_corpus`.
        DatasetKind::Text => Vec::new(),
    }
}

/// The text corpus comes from Debian's package, not a download: `Ok` (what was found) when the
/// data root or the package's folder holds it with Debian's checksums, else how to install it.
pub fn text_corpus(root: &Path) -> Result<String> {
    let dir = DatasetKind::Text.locate(root);
    match super::text::check_fortunes(&dir) {
        Ok(n) => Ok(format!(
            "{}: {n} files with Debian's SHA-256 checksums",
            dir.display()
        )),
        Err(_) if !dir.exists() => Err(Error::data(
            &dir,
            format!(
                "not installed: the text corpus is Debian's `fortunes` package. Run `apt-get install fortunes` (it installs into {}), or copy its files to {}/fortunes/, or give a text task a `corpus` of your own",
                super::text::SYSTEM_DIR,
                root.display()
            ),
        )),
        Err(problem) => Err(Error::data(&dir, problem)),
    }
}

/// Downloads, verifies and installs `datasets` under `root`.
pub fn download(root: &Path, datasets: &[DatasetKind]) -> Result<()> {
    let staging = private_folder(root, ".download.")?;
    let staging = staging.path();
    for dataset in datasets {
        if *dataset == DatasetKind::Text {
            eprintln!("{}", text_corpus(root)?);
        }
        for source in sources(*dataset) {
            let dest = staging.join(source.file);
            eprintln!("fetching {}", source.url);
            fetch(source.url, &dest).map_err(|e| {
                Error::data(
                    &dest,
                    format!(
                        "could not download {}: {e}. Without internet access, copy the official files into {}/{} \
                         by hand and pass --data-dir {} (or set ${}).",
                        source.url,
                        root.display(),
                        dataset.dir_name(),
                        root.display(),
                        super::DATA_ENV
                    ),
                )
            })?;
            install(&source, &dest, root)?;
            let _ = std::fs::remove_file(&dest);
        }
    }
    Ok(())
}

/// A fresh folder under `parent` with a random name, only ours (0700), removed when dropped:
/// downloads and unpacking write there, where no link can have been planted.
fn private_folder(parent: &Path, prefix: &str) -> Result<tempfile::TempDir> {
    std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir_in(parent)
        .map_err(|e| Error::io(parent, e))
}

fn fetch(url: &str, dest: &Path) -> std::result::Result<(), String> {
    let response = ureq::get(url).call().map_err(|e| e.to_string())?;
    let mut file = std::fs::File::create(dest).map_err(|e| e.to_string())?;
    std::io::copy(&mut response.into_reader(), &mut file).map_err(|e| e.to_string())?;
    Ok(())
}

pub fn md5_hex(path: &Path) -> Result<String> {
    let mut file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut hasher = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

/// Verifies `downloaded` against `source.md5`, then puts it in place under `root`: the CIFAR-10
/// archive is unpacked (all six batches must be present), (Fashion-)MNIST files are installed as
/// they are.
pub fn install(source: &Source, downloaded: &Path, root: &Path) -> Result<()> {
    let got = md5_hex(downloaded)?;
    if got != source.md5 {
        return Err(Error::data(
            downloaded,
            format!("checksum mismatch: MD5 {got}, the published {} is {}; the file is corrupt or truncated, nothing was installed", source.file, source.md5),
        ));
    }
    let dir = root.join(source.dataset.dir_name());
    match source.dataset {
        DatasetKind::Cifar10 => unpack_cifar(downloaded, &dir),
        _ => {
            std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
            let bytes = std::fs::read(downloaded).map_err(|e| Error::io(downloaded, e))?;
            crate::fsutil::write_atomic(&dir.join(source.file), &bytes)
        }
    }
}

/// Unpacks `cifar-10-batches-bin/*` into a staging folder, checks all batches arrived, then moves
/// them into `dir`. A broken archive leaves `dir` untouched.
fn unpack_cifar(archive: &Path, dir: &Path) -> Result<()> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    let staging = private_folder(parent, ".cifar10.partial.")?;
    let staging = staging.path();
    let file = std::fs::File::open(archive).map_err(|e| Error::io(archive, e))?;
    let corrupt =
        |e: std::io::Error| Error::data(archive, format!("corrupt or truncated archive: {e}"));
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    for entry in tar.entries().map_err(corrupt)? {
        let mut entry = entry.map_err(corrupt)?;
        let path = entry.path().map_err(corrupt)?.into_owned();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if entry.header().entry_type().is_file()
            && (name.ends_with(".bin") || name.ends_with(".txt"))
        {
            let target = staging.join(&name);
            let mut out = std::fs::File::create(&target).map_err(|e| Error::io(&target, e))?;
            std::io::copy(&mut entry, &mut out).map_err(corrupt)?;
        }
    }
    for name in cifar::TRAIN_FILES.iter().chain([&cifar::TEST_FILE]) {
        if !staging.join(name).exists() {
            return Err(Error::data(
                archive,
                format!("archive lacks {name}; nothing was installed"),
            ));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    for entry in std::fs::read_dir(staging).map_err(|e| Error::io(staging, e))? {
        let entry = entry.map_err(|e| Error::io(staging, e))?;
        let target = crate::fsutil::write_target(&dir.join(entry.file_name()))?;
        std::fs::rename(entry.path(), &target).map_err(|e| Error::io(&target, e))?;
    }
    Ok(())
}
