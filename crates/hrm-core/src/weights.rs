//! Reading and writing named tensors as safetensors, under the reference's state-dict names.
//!
//! Writes are atomic (a temporary file in the same directory, renamed over the destination), so
//! an interrupted save never leaves a truncated file where a good one was. Reads accept the
//! prefixes the reference's checkpoints carry (`_orig_mod.` from `torch.compile`, `model.` from
//! the loss head wrapper) and report corrupt files with their path.

use std::path::{Path, PathBuf};

use tch::{Device, Tensor};

use crate::error::{CoreError, Result};

/// Prefixes the reference puts in front of the model's own names, stripped on load.
pub const REFERENCE_PREFIXES: [&str; 2] = ["_orig_mod.", "model."];

/// Strips every known reference prefix from a tensor name
/// (`_orig_mod.model.inner.x` -> `inner.x`).
pub fn strip_reference_prefixes(name: &str) -> &str {
    let mut name = name;
    loop {
        match REFERENCE_PREFIXES.iter().find_map(|p| name.strip_prefix(p)) {
            Some(rest) => name = rest,
            None => return name,
        }
    }
}

/// Reads every tensor of a safetensors file onto the CPU, names as stored.
///
/// # Errors
/// [`CoreError::Io`] when the file cannot be read, [`CoreError::WeightsFormat`] when it is not a
/// valid safetensors file (truncated, corrupt header, unsupported dtype).
pub fn read_safetensors(path: &Path) -> Result<Vec<(String, Tensor)>> {
    let bytes = std::fs::read(path).map_err(|source| CoreError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    read_safetensors_bytes(&bytes, path)
}

/// Reads every tensor of the safetensors file content `bytes` (read from `path`, which names
/// it in errors) onto the CPU, names as stored.
///
/// # Errors
/// [`CoreError::WeightsFormat`] as [`read_safetensors`].
pub fn read_safetensors_bytes(bytes: &[u8], path: &Path) -> Result<Vec<(String, Tensor)>> {
    let st =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| CoreError::WeightsFormat {
            path: path.to_path_buf(),
            message: format!("not a valid safetensors file: {e}"),
        })?;
    let mut out = Vec::with_capacity(st.len());
    for (name, view) in st.tensors() {
        let kind = kind_of(view.dtype()).ok_or_else(|| CoreError::WeightsFormat {
            path: path.to_path_buf(),
            message: format!("tensor `{name}` has unsupported dtype {:?}", view.dtype()),
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        let tensor = Tensor::f_from_data_size(view.data(), &shape, kind)?;
        out.push((name, tensor));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Writes named tensors to `path` atomically (moved to the CPU and made contiguous first).
///
/// # Errors
/// [`CoreError::Io`] for file-system failures, [`CoreError::Torch`] for tensors libtorch cannot
/// serialise.
pub fn write_safetensors(path: &Path, tensors: &[(String, Tensor)]) -> Result<()> {
    let cpu: Vec<(String, Tensor)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), t.detach().to_device(Device::Cpu).contiguous()))
        .collect();
    let tmp = temporary_sibling(path);
    Tensor::write_safetensors(&cpu, &tmp)?;
    std::fs::rename(&tmp, path).map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        CoreError::Io {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// `dir/.name.tmp-<pid>`: a temporary file beside `path`, on the same file system.
pub fn temporary_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn kind_of(dtype: safetensors::Dtype) -> Option<tch::Kind> {
    use safetensors::Dtype as D;
    use tch::Kind as K;
    Some(match dtype {
        D::BOOL => K::Bool,
        D::U8 => K::Uint8,
        D::I8 => K::Int8,
        D::I16 => K::Int16,
        D::I32 => K::Int,
        D::I64 => K::Int64,
        D::BF16 => K::BFloat16,
        D::F16 => K::Half,
        D::F32 => K::Float,
        D::F64 => K::Double,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_stripped_in_any_combination() {
        assert_eq!(
            strip_reference_prefixes("_orig_mod.model.inner.H_init"),
            "inner.H_init"
        );
        assert_eq!(
            strip_reference_prefixes("model.inner.q_head.bias"),
            "inner.q_head.bias"
        );
        assert_eq!(
            strip_reference_prefixes("inner.lm_head.weight"),
            "inner.lm_head.weight"
        );
    }

    #[test]
    fn round_trip_and_corrupt_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("w.safetensors");
        let t = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let b = Tensor::from_slice(&[true, false]);
        write_safetensors(&path, &[("a".into(), t.shallow_clone()), ("b".into(), b)])
            .expect("write");
        let back = read_safetensors(&path).expect("read");
        assert_eq!(back.len(), 2);
        assert_eq!(back[0].0, "a");
        assert!(back[0].1.equal(&t));
        assert_eq!(back[1].1.kind(), tch::Kind::Bool);
        // Truncate the file: a clear error with the path, not a panic.
        let bytes = std::fs::read(&path).expect("read bytes");
        std::fs::write(&path, &bytes[..bytes.len() / 2]).expect("truncate");
        match read_safetensors(&path) {
            Err(CoreError::WeightsFormat { path: p, .. }) => assert_eq!(p, path),
            other => panic!("expected WeightsFormat, got {other:?}"),
        }
    }
}
