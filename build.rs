//! Makes the binary find libtorch at run time and keeps CUDA linked.
//!
//! Two traps this avoids: the linker's `--as-needed` drops `libtorch_cuda.so`
//! (nothing references it by symbol, it registers CUDA kernels when loaded),
//! and Cargo does not put libtorch on the loader path.
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-env-changed=LIBTORCH");
    let Some(libtorch) = std::env::var_os("LIBTORCH") else {
        return;
    };
    let libtorch = PathBuf::from(libtorch);
    if let Some(version) = libtorch_version(&libtorch) {
        println!("cargo:rustc-env=EVOLVE_LIBTORCH_VERSION={version}");
    }
    let lib = libtorch.join("lib");
    println!("cargo:rustc-link-search=native={}", lib.display());
    println!("cargo:rustc-link-arg=-Wl,-rpath,{}", lib.display());
    if lib.join("libtorch_cuda.so").exists() {
        println!("cargo:rustc-link-arg=-Wl,--no-as-needed,-ltorch_cuda,--as-needed");
    }
}

/// The libtorch version, read from the torch package's `version.py` (or `build-version`).
fn libtorch_version(libtorch: &std::path::Path) -> Option<String> {
    if let Ok(v) = std::fs::read_to_string(libtorch.join("build-version")) {
        return Some(v.trim().to_string());
    }
    let text = std::fs::read_to_string(libtorch.join("version.py")).ok()?;
    let line = text.lines().find(|l| l.starts_with("__version__"))?;
    Some(line.split(['\'', '"']).nth(1)?.to_string())
}
