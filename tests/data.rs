//! Dataset readers on synthetic files in the real formats, the download install path, `evolve
//! data verify`, and (when ../shared is present) the real CIFAR-10, MNIST and Fashion-MNIST copies.
use evolve::train::data::download::{install, md5_hex, Source};
use evolve::train::data::{self, cifar, mnist, synthetic, Dataset, DatasetKind};
use std::io::Write;
use std::path::Path;
use std::process::Command;

fn counts(d: &Dataset) -> (i64, i64) {
    (d.train_y.size()[0], d.test_y.size()[0])
}

#[test]
fn cifar_reader_reads_raw_and_gzipped_batches() {
    for gzip in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        synthetic::write_cifar10(&dir.path().join("cifar10"), 30, 20, gzip, 1).unwrap();
        let d = Dataset::load(DatasetKind::Cifar10, dir.path()).unwrap();
        assert_eq!(counts(&d), (150, 20));
        assert_eq!(d.train_x.size(), [150, 3, 32, 32]);
        assert_eq!(d.train_x.kind(), tch::Kind::Uint8);
        // Synthetic labels cycle 0..9 within each batch.
        assert_eq!(
            Vec::<i64>::try_from(&d.train_y.narrow(0, 28, 4)).unwrap(),
            [8, 9, 0, 1]
        );
    }
}

#[test]
fn mnist_and_fashion_mnist_readers_read_raw_and_gzipped_idx() {
    for kind in [DatasetKind::Mnist, DatasetKind::FashionMnist] {
        for gzip in [false, true] {
            let dir = tempfile::tempdir().unwrap();
            synthetic::write_mnist(&dir.path().join(kind.dir_name()), 50, 10, gzip, 2).unwrap();
            let d = Dataset::load(kind, dir.path()).unwrap();
            assert_eq!(d.kind, kind);
            assert_eq!(counts(&d), (50, 10));
            assert_eq!(d.train_x.size(), [50, 1, 28, 28]);
            assert_eq!(
                Vec::<i64>::try_from(&d.train_y.narrow(0, 0, 3)).unwrap(),
                [0, 7, 4]
            );
        }
    }
    // Fashion-MNIST is not read from mnist/.
    let dir = tempfile::tempdir().unwrap();
    synthetic::write_mnist(&dir.path().join("mnist"), 50, 10, true, 2).unwrap();
    let err = load_err(DatasetKind::FashionMnist, dir.path());
    assert!(
        err.contains("fashion-mnist") && err.contains("not found"),
        "{err}"
    );
}

#[test]
fn a_system_copy_is_found_when_the_data_root_lacks_the_dataset() {
    let root = tempfile::tempdir().unwrap();
    let system = tempfile::tempdir().unwrap();
    let system_dir = system.path().to_str().unwrap();
    let kind = DatasetKind::FashionMnist;
    assert_eq!(kind.system_dirs(), ["/usr/share/datasets/fashion-mnist"]);
    // Missing everywhere: the root's own folder (for the message).
    assert_eq!(
        data::locate_in(kind, root.path(), &["/nonexistent/x"]),
        root.path().join("fashion-mnist")
    );
    // Only the system copy: used.
    assert_eq!(
        data::locate_in(kind, root.path(), &["/nonexistent/x", system_dir]),
        system.path()
    );
    // The root's own copy wins.
    std::fs::create_dir(root.path().join("fashion-mnist")).unwrap();
    assert_eq!(
        data::locate_in(kind, root.path(), &[system_dir]),
        root.path().join("fashion-mnist")
    );
}

fn load_err(kind: DatasetKind, root: &Path) -> String {
    Dataset::load(kind, root)
        .err()
        .expect("should fail")
        .to_string()
}

#[test]
fn truncated_and_corrupt_files_are_reported_with_their_path() {
    let dir = tempfile::tempdir().unwrap();
    let c = dir.path().join("cifar10");
    synthetic::write_cifar10(&c, 10, 10, false, 1).unwrap();
    let batch = c.join(cifar::TRAIN_FILES[2]);
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &bytes[..bytes.len() - 100]).unwrap();
    let m = load_err(DatasetKind::Cifar10, dir.path());
    assert!(
        m.contains("data_batch_3.bin") && m.contains("truncated"),
        "{m}"
    );

    // A label outside 0..9.
    let mut bad = bytes.clone();
    bad[0] = 12;
    std::fs::write(&batch, &bad).unwrap();
    let m = load_err(DatasetKind::Cifar10, dir.path());
    assert!(m.contains("label 12") && m.contains("0..=9"), "{m}");

    // A gzip cut short.
    std::fs::remove_file(&batch).unwrap();
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    enc.write_all(&bytes).unwrap();
    let gz = enc.finish().unwrap();
    std::fs::write(c.join("data_batch_3.bin.gz"), &gz[..gz.len() / 2]).unwrap();
    let m = load_err(DatasetKind::Cifar10, dir.path());
    assert!(
        m.contains("data_batch_3.bin.gz") && m.contains("corrupt or truncated gzip"),
        "{m}"
    );

    let dir = tempfile::tempdir().unwrap();
    let mn = dir.path().join("mnist");
    synthetic::write_mnist(&mn, 20, 5, false, 1).unwrap();
    let images = mn.join(mnist::TRAIN_IMAGES);
    let bytes = std::fs::read(&images).unwrap();
    std::fs::write(&images, &bytes[..bytes.len() - 7]).unwrap();
    let m = load_err(DatasetKind::Mnist, dir.path());
    assert!(
        m.contains("train-images-idx3-ubyte") && m.contains("truncated"),
        "{m}"
    );
    let mut wrong_magic = bytes.clone();
    wrong_magic[3] = 1;
    std::fs::write(&images, &wrong_magic).unwrap();
    assert!(load_err(DatasetKind::Mnist, dir.path()).contains("magic"));
}

#[test]
fn a_missing_dataset_says_where_it_looked_and_how_to_fix_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = load_err(DatasetKind::Cifar10, dir.path());
    assert!(
        m.contains(&dir.path().join("cifar10").display().to_string()),
        "{m}"
    );
    assert!(
        m.contains("evolve data download")
            && m.contains("--data-dir")
            && m.contains(data::DATA_ENV),
        "{m}"
    );
}

/// A CIFAR-10 archive laid out like the official one, made here.
fn make_cifar_archive(path: &Path) {
    let src = tempfile::tempdir().unwrap();
    synthetic::write_cifar10(src.path(), 10, 10, false, 3).unwrap();
    std::fs::write(src.path().join("batches.meta.txt"), "airplane\n").unwrap();
    let file = std::fs::File::create(path).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        file,
        flate2::Compression::fast(),
    ));
    tar.append_dir_all("cifar-10-batches-bin", src.path())
        .unwrap();
    tar.into_inner().unwrap().finish().unwrap();
}

/// Installs each of `sources` from the file of its name in `dir`, with that file's own MD5 in
/// place of the published one.
fn install_as_found(sources: &[Source], dir: &Path, root: &Path) {
    for s in sources {
        let file = dir.join(s.file);
        let md5 = md5_hex(&file).unwrap();
        install(
            &Source {
                md5: &md5,
                ..s.clone()
            },
            &file,
            root,
        )
        .unwrap();
    }
}

#[test]
fn download_install_verifies_checksums_and_unpacks() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("cifar-10-binary.tar.gz");
    make_cifar_archive(&archive);
    let md5 = md5_hex(&archive).unwrap();
    let source = |md5| Source {
        md5,
        ..evolve::train::data::download::CIFAR10
    };

    // Wrong checksum: refused, nothing installed.
    let root = work.path().join("root");
    let err = install(&source("00000000000000000000000000000000"), &archive, &root)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains(&md5),
        "{err}"
    );
    assert!(!root.join("cifar10").exists());

    // Truncated download whose bytes happen to match the expected sum: unpacking fails whole.
    let bytes = std::fs::read(&archive).unwrap();
    let cut = work.path().join("cut.tar.gz");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let cut_md5 = md5_hex(&cut).unwrap();
    let err = install(&source(&cut_md5), &cut, &root)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("corrupt or truncated archive") || err.contains("lacks"),
        "{err}"
    );
    assert!(!root.join("cifar10").exists());

    // The good archive installs and loads.
    install(&source(&md5), &archive, &root).unwrap();
    let d = Dataset::load(DatasetKind::Cifar10, &root).unwrap();
    assert_eq!(counts(&d), (50, 10));
    assert!(root.join("cifar10/batches.meta.txt").exists());

    // MNIST files are verified and copied as they are.
    let mn = tempfile::tempdir().unwrap();
    synthetic::write_mnist(mn.path(), 20, 10, true, 4).unwrap();
    install_as_found(&evolve::train::data::download::MNIST, mn.path(), &root);
    assert_eq!(
        counts(&Dataset::load(DatasetKind::Mnist, &root).unwrap()),
        (20, 10)
    );
    let official = &evolve::train::data::download::MNIST[0];
    assert_eq!(official.md5.len(), 32);
    assert!(install(official, &mn.path().join(official.file), &root)
        .unwrap_err()
        .to_string()
        .contains("checksum mismatch"));

    // Fashion-MNIST the same way; a wrong or truncated file installs nothing.
    let fashion = evolve::train::data::download::FASHION_MNIST;
    assert_eq!(
        evolve::train::data::download::sources(DatasetKind::FashionMnist).len(),
        4
    );
    let fm = tempfile::tempdir().unwrap();
    synthetic::write_mnist(fm.path(), 30, 10, true, 6).unwrap();
    let file = fm.path().join(fashion[0].file);
    let bytes = std::fs::read(&file).unwrap();
    std::fs::write(&file, &bytes[..bytes.len() / 2]).unwrap();
    let err = install(&fashion[0], &file, &root).unwrap_err().to_string();
    assert!(
        err.contains("checksum mismatch") && err.contains(fashion[0].md5),
        "{err}"
    );
    assert!(!root.join("fashion-mnist").exists(), "nothing installed");
    std::fs::write(&file, &bytes).unwrap();
    install_as_found(&fashion, fm.path(), &root);
    assert_eq!(
        counts(&Dataset::load(DatasetKind::FashionMnist, &root).unwrap()),
        (30, 10)
    );
}

#[test]
fn verify_command_reports_counts_and_histograms_and_fails_on_corruption() {
    let root = tempfile::tempdir().unwrap();
    synthetic::write_root(root.path(), 9).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_evolve"))
        .args(["data", "verify"])
        .arg(root.path())
        .output()
        .unwrap();
    // The report is printed in full; then the synthetic counts fail the comparison with the
    // official release (the real copies pass it: see below).
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("1000 train and 200 test records; the official cifar10 has 50000 and 10000"),
        "{err}"
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cifar10")
            && text.contains("1000 train, 200 test")
            && text.contains("labels 0..=9"),
        "{text}"
    );
    assert!(
        text.contains("train histogram: [100, 100, 100, 100, 100, 100, 100, 100, 100, 100]"),
        "{text}"
    );
    assert!(
        text.contains("data_batch_1.bin.gz"),
        "file sizes are listed: {text}"
    );

    let batch = root.path().join("cifar10/test_batch.bin.gz");
    let bytes = std::fs::read(&batch).unwrap();
    std::fs::write(&batch, &bytes[..bytes.len() / 3]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_evolve"))
        .args(["data", "verify"])
        .arg(root.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("test_batch.bin.gz"));
}

/// The real copies in ../shared/datasets (CI has them beside the clone).
#[test]
fn real_cifar10_and_mnist_load_with_the_published_counts() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets");
    if !root.join("cifar10").is_dir() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI has ../shared/datasets beside the clone, but {} is missing",
            root.display()
        );
        eprintln!(
            "SKIPPED real_cifar10_and_mnist_load_with_the_published_counts: {} not present",
            root.display()
        );
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_evolve"))
        .args(["data", "verify"])
        .arg(&root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the real copies match the official counts: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let c = Dataset::load(DatasetKind::Cifar10, &root).unwrap();
    assert_eq!(counts(&c), (50_000, 10_000));
    assert_eq!(
        Vec::<i64>::try_from(&c.train_y.bincount(None::<tch::Tensor>, 10)).unwrap(),
        vec![5000; 10]
    );
    assert_eq!(
        Vec::<i64>::try_from(&c.test_y.bincount(None::<tch::Tensor>, 10)).unwrap(),
        vec![1000; 10]
    );
    let m = Dataset::load(DatasetKind::Mnist, &root).unwrap();
    assert_eq!(counts(&m), (60_000, 10_000));
    assert_eq!(m.train_x.size(), [60_000, 1, 28, 28]);

    // The Fashion-MNIST files are the official ones: their MD5s are the published ones we check
    // downloads against.
    for s in evolve::train::data::download::FASHION_MNIST {
        assert_eq!(
            md5_hex(&root.join("fashion-mnist").join(s.file)).unwrap(),
            s.md5
        );
    }
    let f = Dataset::load(DatasetKind::FashionMnist, &root).unwrap();
    assert_eq!(counts(&f), (60_000, 10_000));
    assert_eq!(
        Vec::<i64>::try_from(&f.train_y.bincount(None::<tch::Tensor>, 10)).unwrap(),
        vec![6000; 10]
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("fashion-mnist") && text.contains("60000 train, 10000 test"),
        "{text}"
    );
}

#[test]
fn installing_writes_through_no_planted_link_and_leaves_no_staging_folder() {
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("cifar-10-binary.tar.gz");
    make_cifar_archive(&archive);
    let source = Source {
        md5: &md5_hex(&archive).unwrap(),
        ..evolve::train::data::download::CIFAR10
    };
    let victim = work.path().join("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "not a dataset").unwrap();
    let root = work.path().join("root");
    std::fs::create_dir(&root).unwrap();
    // The staging names installs used before they were made private and random.
    for name in ["cifar10.partial", ".download"] {
        std::os::unix::fs::symlink(&victim, root.join(name)).unwrap();
    }
    install(&source, &archive, &root).unwrap();
    assert_eq!(
        counts(&Dataset::load(DatasetKind::Cifar10, &root).unwrap()),
        (50, 10)
    );
    let names: Vec<String> = std::fs::read_dir(&victim)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["keep.txt"], "the linked folder was written into");
    let mut left: Vec<String> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    assert_eq!(
        left,
        [".download", "cifar10", "cifar10.partial"],
        "staging left behind"
    );
}
