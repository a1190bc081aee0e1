//! `--device auto|cpu|cuda|cuda:N`.

use tch::Device;

use crate::error::{Result, TrainError};

/// Parses a device name. `auto` is the first CUDA device when one is available, else the CPU.
///
/// # Errors
/// [`TrainError::Config`] for an unknown name, or a CUDA device that is not available.
pub fn parse_device(name: &str) -> Result<Device> {
    let cuda_count = tch::Cuda::device_count() as usize;
    let bad = |reason: String| {
        Err(TrainError::Config {
            key: "device".into(),
            reason,
        })
    };
    match name {
        "auto" => Ok(if cuda_count > 0 {
            Device::Cuda(0)
        } else {
            Device::Cpu
        }),
        "cpu" => Ok(Device::Cpu),
        "cuda" => parse_device("cuda:0"),
        other => match other.strip_prefix("cuda:").map(str::parse::<usize>) {
            Some(Ok(i)) if i < cuda_count => Ok(Device::Cuda(i)),
            Some(Ok(i)) => bad(format!(
                "cuda:{i} requested but {cuda_count} CUDA device(s) are available"
            )),
            _ => bad(format!("`{other}` is not one of auto, cpu, cuda, cuda:N")),
        },
    }
}

/// The forward dtype a run uses when its config does not choose one: bfloat16 on CUDA (as the
/// reference), float32 on the CPU.
pub fn default_forward_dtype(device: Device) -> &'static str {
    if device.is_cuda() {
        "bfloat16"
    } else {
        "float32"
    }
}

/// The name `parse_device` reads back (`cpu`, `cuda:0`): the one device-name format of messages,
/// reports and bench ids.
pub fn device_name(device: Device) -> String {
    match device {
        Device::Cpu => "cpu".into(),
        Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_errors_list_choices() {
        assert_eq!(parse_device("cpu").expect("cpu"), Device::Cpu);
        let err = parse_device("tpu").expect_err("unknown");
        assert!(err.to_string().contains("auto, cpu, cuda"), "{err}");
        if tch::Cuda::device_count() == 0 {
            assert_eq!(parse_device("auto").expect("auto"), Device::Cpu);
            assert!(parse_device("cuda").is_err());
        }
    }
}
