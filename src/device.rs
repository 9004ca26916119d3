//! Choosing the training device, and what `evolve doctor` reports about it.
use crate::error::{Error, Result};
use tch::Device;

/// `auto` (CUDA when present), `cpu`, `cuda`, or `cuda:N`.
pub fn parse(spec: &str) -> Result<Device> {
    let bad = || {
        Error::Usage(format!(
            "`{spec}`: allowed values are auto, cpu, cuda, cuda:N"
        ))
    };
    match spec {
        "auto" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "cuda:0" => cuda(0),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(n)) => cuda(n),
            _ => Err(bad()),
        },
    }
}

fn cuda(index: usize) -> Result<Device> {
    let count = tch::Cuda::device_count() as usize;
    if index < count {
        Ok(Device::Cuda(index))
    } else {
        Err(Error::Usage(format!(
            "`cuda:{index}`: this machine has {count} CUDA device(s) visible to libtorch (cuda:0 to cuda:N-1)"
        )))
    }
}

/// `parse` for clap's `value_parser`.
pub fn parse_flag(spec: &str) -> std::result::Result<Device, String> {
    parse(spec).map_err(|e| e.to_string())
}

pub fn describe(device: Device) -> String {
    match device {
        Device::Cpu => format!("cpu ({} threads)", tch::get_num_threads()),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}"),
    }
}

/// GPU names from the NVIDIA driver (libtorch has no call for them); empty without a GPU.
pub fn gpu_names() -> Vec<String> {
    if let Ok(out) = std::process::Command::new("nvidia-smi")
        .args(["--query-gpu=name", "--format=csv,noheader"])
        .output()
    {
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(|l| l.trim().to_string())
                .filter(|l| !l.is_empty())
                .collect();
        }
    }
    let mut names: Vec<String> = std::fs::read_dir("/proc/driver/nvidia/gpus")
        .into_iter()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.ok()?.path().join("information")).ok())
        .filter_map(|info| {
            info.lines()
                .find_map(|l| l.strip_prefix("Model:").map(|m| m.trim().to_string()))
        })
        .collect();
    names.sort();
    names
}

pub fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("model name")
                    .map(|m| m.trim_start_matches([' ', '\t', ':']).to_string())
            })
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Stacking pays on a GPU, where one small network leaves most of the chip idle; on CPU the
/// cores are busy with one, so candidates train one at a time.
pub fn default_batch_candidates(device: Device) -> usize {
    match device {
        Device::Cpu => 1,
        _ => 8,
    }
}
