//! Where the CNN runs: [`ComputeDevice`].

use std::fmt;

use candle_core::Device;

use crate::error::{FeatureError, Result};

/// The device the CNN runs on.
///
/// | spelling | device |
/// |---|---|
/// | `cpu` | the CPU with the fused channels-last kernels (the default, fastest on a CPU) |
/// | `cuda`, `cuda:N` | NVIDIA GPU number N (0 by default); needs a build with the `cuda` feature |
/// | `cpu-ref` | the CPU running the device-generic graph a GPU runs; slower, used to check that graph |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ComputeDevice {
    /// The CPU with the fused kernels.
    #[default]
    Cpu,
    /// The CPU through the device-generic tensor graph (the one GPUs run).
    CpuReference,
    /// An NVIDIA GPU, by ordinal.
    Cuda(usize),
}

impl ComputeDevice {
    /// The candle device for the device-generic graph, or `None` for the fused CPU kernels.
    /// A GPU that this build cannot use, or that does not exist, is a [`FeatureError::Device`].
    pub fn candle_device(self) -> Result<Option<Device>> {
        match self {
            ComputeDevice::Cpu => Ok(None),
            ComputeDevice::CpuReference => Ok(Some(Device::Cpu)),
            ComputeDevice::Cuda(ordinal) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(FeatureError::Device(format!(
                        "{self}: this build has no CUDA support; rebuild with \
                         `cargo build --release -p likeness --features cuda` (needs the CUDA toolkit's nvcc)"
                    )));
                }
                Device::new_cuda(ordinal).map(Some).map_err(|e| FeatureError::Device(format!("{self}: {e}")))
            }
        }
    }

    /// Whether this build can run on this device at all (`cuda` needs the `cuda` feature).
    pub fn compiled_in(self) -> bool {
        !matches!(self, ComputeDevice::Cuda(_)) || candle_core::utils::cuda_is_available()
    }
}

impl fmt::Display for ComputeDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ComputeDevice::Cpu => f.write_str("cpu"),
            ComputeDevice::CpuReference => f.write_str("cpu-ref"),
            ComputeDevice::Cuda(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl std::str::FromStr for ComputeDevice {
    type Err = FeatureError;
    fn from_str(s: &str) -> Result<Self> {
        let lower = s.trim().to_ascii_lowercase();
        match lower.as_str() {
            "cpu" => Ok(ComputeDevice::Cpu),
            "cpu-ref" => Ok(ComputeDevice::CpuReference),
            "cuda" | "gpu" => Ok(ComputeDevice::Cuda(0)),
            other => {
                other.strip_prefix("cuda:").and_then(|n| n.parse().ok()).map(ComputeDevice::Cuda).ok_or_else(|| {
                    FeatureError::InvalidArgument(format!("unknown device {s:?} (cpu, cuda, cuda:N or cpu-ref)"))
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for (s, d) in
            [("cpu", ComputeDevice::Cpu), ("CUDA", ComputeDevice::Cuda(0)), ("cuda:3", ComputeDevice::Cuda(3))]
        {
            assert_eq!(s.parse::<ComputeDevice>().unwrap(), d);
        }
        for d in [ComputeDevice::Cpu, ComputeDevice::CpuReference, ComputeDevice::Cuda(2)] {
            assert_eq!(d.to_string().parse::<ComputeDevice>().unwrap(), d);
        }
        for bad in ["tpu", "cuda:", "cuda:x", ""] {
            assert!(bad.parse::<ComputeDevice>().is_err(), "{bad}");
        }
    }

    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        if ComputeDevice::Cuda(0).compiled_in() {
            return;
        }
        let e = ComputeDevice::Cuda(0).candle_device().unwrap_err().to_string();
        assert!(e.contains("--features cuda"), "{e}");
    }
}
