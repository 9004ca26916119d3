//! `evolve doctor`: what this machine offers a run.
use tch::Device;

/// `evolve doctor`: libtorch, CUDA, CPU and where the datasets under `root` were found.
pub fn doctor(root: &std::path::Path) -> String {
    use crate::train::data::{DatasetKind, DATA_ENV};
    let libtorch = option_env!("EVOLVE_LIBTORCH_VERSION").unwrap_or("unknown");
    let mut s = format!(
        "evolve {}\nlibtorch: {libtorch}\n",
        env!("CARGO_PKG_VERSION")
    );
    s += &format!("CUDA available: {}\n", tch::Cuda::is_available());
    s += &format!("CUDA devices: {}\n", tch::Cuda::device_count());
    for (i, name) in crate::device::gpu_names().iter().enumerate() {
        s += &format!("  cuda:{i}: {name}\n");
    }
    s += &format!("cuDNN available: {}\n", tch::Cuda::cudnn_is_available());
    s += &format!("CPU: {}\n", crate::device::cpu_name());
    s += &format!("CPU threads (libtorch): {}\n", tch::get_num_threads());
    s += &format!(
        "default device (--device auto): {}\n",
        crate::device::describe(Device::cuda_if_available())
    );
    s += &format!(
        "data root: {} (from --data-dir, else ${DATA_ENV}, else ./data)\n",
        root.display()
    );
    for kind in DatasetKind::ALL {
        let dir = kind.locate(root);
        let state = match (dir.is_dir(), kind.is_image()) {
            (true, true) => "found".to_string(),
            (true, false) => match crate::train::data::text::check_fortunes(&dir) {
                Ok(n) => format!("found, {n} files with Debian's checksums"),
                Err(problem) => format!("found, but {problem}"),
            },
            (false, true) => "missing (evolve data download, or --data-dir)".to_string(),
            (false, false) => {
                "missing (apt-get install fortunes, or a text task's own `corpus`)".to_string()
            }
        };
        s += &format!("  {}: {state} ({})\n", kind.dir_name(), dir.display());
    }
    s
}
