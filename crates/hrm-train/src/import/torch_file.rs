//! Reading the state dict of a `torch.save` file without Python.
//!
//! Two layouts exist. Since PyTorch 1.6 `torch.save` writes a zip archive whose entries sit in
//! one top-level folder: `data.pkl` (the pickled object, with each tensor's storage replaced by a
//! persistent id `('storage', <dtype>Storage, key, location, numel)`), `data/<key>` (the raw
//! little-endian bytes of each storage, uncompressed), `byteorder` and a few version files. The
//! legacy layout (`_use_new_zipfile_serialization=False`, and every file before 1.6) is a stream
//! of pickles (magic number, protocol version, system info, the object, the list of storage
//! keys) followed by each storage as an 8-byte element count and its bytes. Both are read here.
//!
//! A tensor is `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)` (also
//! `_rebuild_tensor_v3` with an explicit dtype, and `_rebuild_parameter` around either); its
//! elements are gathered from the storage with the given offset and strides, after checking that
//! every index falls inside the storage. Floating-point (f64, f32, f16, bf16), integer and bool
//! storages are read; anything else in the dict (a nested dict, a custom object) is an error
//! naming the entry.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::Path;

use tch::{Kind, Tensor};

use super::pickle::{self, Value};
use crate::error::{Result, TrainError};

/// Largest `data.pkl` read (a state dict's pickle is kilobytes; this bounds hostile files).
const MAX_PICKLE_BYTES: u64 = 64 << 20;

/// Most dimensions a tensor may have.
const MAX_DIMS: usize = 16;

/// The magic number at the start of the legacy format, as the bytes of its `LONG1` opcode.
const LEGACY_MAGIC: [u8; 14] = [
    0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc, 0x9c, 0x46, 0xf9, 0x20, 0x6a, 0xa8, 0x50, 0x19,
];

/// The two file layouts of `torch.save`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TorchFormat {
    /// The zip archive of PyTorch 1.6 and later.
    Zip,
    /// The legacy stream of pickles and raw storages.
    Legacy,
}

impl TorchFormat {
    /// A short name (`zip`, `legacy`).
    pub fn name(self) -> &'static str {
        match self {
            TorchFormat::Zip => "zip",
            TorchFormat::Legacy => "legacy",
        }
    }
}

/// The tensors of a `torch.save` file, in the file's order, with names as stored.
#[derive(Debug)]
pub struct TorchStateDict {
    /// Name and tensor (on the CPU, contiguous, in the stored dtype).
    pub tensors: Vec<(String, Tensor)>,
    /// Which layout the file had.
    pub format: TorchFormat,
}

/// Reads the state dict (a dict of tensors) that `torch.save` wrote to `path`.
///
/// # Errors
/// [`TrainError::TorchFile`] naming the file and the problem: not a `torch.save` file,
/// truncated or corrupt, a value that is not a tensor (naming the entry), a tensor outside its
/// storage, an unsupported dtype; [`TrainError::Io`] when it cannot be opened.
pub fn read_torch_state_dict(path: &Path) -> Result<TorchStateDict> {
    let fail = |reason: String| TrainError::TorchFile {
        path: path.to_path_buf(),
        reason,
    };
    let mut file = File::open(path).map_err(|source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let file_len = file
        .metadata()
        .map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?
        .len();
    let mut head = Vec::with_capacity(LEGACY_MAGIC.len());
    (&mut file)
        .take(LEGACY_MAGIC.len() as u64)
        .read_to_end(&mut head)
        .map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
    if head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06") {
        drop(file);
        read_zip(path, file_len).map_err(fail)
    } else if head == LEGACY_MAGIC {
        let bytes = std::fs::read(path).map_err(|source| TrainError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        read_legacy(&bytes).map_err(fail)
    } else if head.first() == Some(&0x80) {
        Err(fail(
            "a Python pickle without torch's magic number: not written by torch.save".into(),
        ))
    } else {
        let what = if file_len == 0 {
            "the file is empty".to_string()
        } else {
            let shown: Vec<String> = head.iter().take(8).map(|b| format!("{b:02x}")).collect();
            format!("the file starts with bytes {}", shown.join(" "))
        };
        Err(fail(format!(
            "neither a zip archive (torch.save since PyTorch 1.6) nor torch's legacy format \
             ({what})"
        )))
    }
}

/// Where a tensor's elements are, before its storage is read.
#[derive(Debug, Clone)]
struct TensorRef {
    storage: StorageRef,
    /// The tensor's dtype (the storage's, or `_rebuild_tensor_v3`'s).
    kind: Kind,
    offset: i64,
    size: Vec<i64>,
    stride: Vec<i64>,
}

/// A persistent storage id.
#[derive(Debug, Clone)]
struct StorageRef {
    key: String,
    /// `None` for an untyped storage (bytes; the tensor gives the dtype).
    kind: Option<Kind>,
    /// Elements of `kind` (bytes when untyped).
    numel: u64,
}

impl StorageRef {
    fn nbytes(&self) -> std::result::Result<u64, String> {
        let el = self.kind.map_or(1, element_size);
        self.numel
            .checked_mul(el)
            .ok_or_else(|| format!("storage {} is impossibly large", self.key))
    }
}

/// The dtype of a storage class (`torch.BFloat16Storage`) or dtype name (`torch.bfloat16`).
fn kind_of_name(name: &str) -> Option<Kind> {
    Some(match name {
        "FloatStorage" | "float32" | "float" => Kind::Float,
        "DoubleStorage" | "float64" | "double" => Kind::Double,
        "HalfStorage" | "float16" | "half" => Kind::Half,
        "BFloat16Storage" | "bfloat16" => Kind::BFloat16,
        "LongStorage" | "int64" | "long" => Kind::Int64,
        "IntStorage" | "int32" | "int" => Kind::Int,
        "ShortStorage" | "int16" | "short" => Kind::Int16,
        "CharStorage" | "int8" => Kind::Int8,
        "ByteStorage" | "uint8" => Kind::Uint8,
        "BoolStorage" | "bool" => Kind::Bool,
        _ => return None,
    })
}

/// The dtype's name as PyTorch spells it (`bfloat16`).
pub fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::Float => "float32",
        Kind::Double => "float64",
        Kind::Half => "float16",
        Kind::BFloat16 => "bfloat16",
        Kind::Int64 => "int64",
        Kind::Int => "int32",
        Kind::Int16 => "int16",
        Kind::Int8 => "int8",
        Kind::Uint8 => "uint8",
        Kind::Bool => "bool",
        _ => "other",
    }
}

fn element_size(kind: Kind) -> u64 {
    match kind {
        Kind::Double | Kind::Int64 => 8,
        Kind::Float | Kind::Int => 4,
        Kind::Half | Kind::BFloat16 | Kind::Int16 => 2,
        _ => 1,
    }
}

type Res<T> = std::result::Result<T, String>;

fn as_int(v: &Value, what: &str) -> Res<i64> {
    match v {
        Value::Int(i) => Ok(*i),
        other => Err(format!("{what} is {}, not an int", other.describe())),
    }
}

fn as_ints(v: &Value, what: &str) -> Res<Vec<i64>> {
    match v {
        Value::Tuple(items) | Value::List(items) => {
            if items.len() > MAX_DIMS {
                return Err(format!("{what} has {} dimensions", items.len()));
            }
            items.iter().map(|x| as_int(x, what)).collect()
        }
        other => Err(format!("{what} is {}, not a tuple", other.describe())),
    }
}

/// A persistent id: `('storage', torch.<X>Storage, key, location, numel[, view_metadata])`.
fn storage_ref(v: &Value) -> Res<StorageRef> {
    let Value::Persistent(pid) = v else {
        return Err(format!(
            "the storage is {}, not a persistent id",
            v.describe()
        ));
    };
    let Value::Tuple(items) = pid.as_ref() else {
        return Err(format!("the persistent id is {}", pid.describe()));
    };
    if items.len() < 5 || items[0] != Value::Str("storage".into()) {
        return Err("the persistent id is not ('storage', type, key, location, size)".into());
    }
    let kind = match &items[1] {
        Value::Global { module, name } if module == "torch" && name == "UntypedStorage" => None,
        Value::Global { module, name } if module == "torch" => match kind_of_name(name) {
            Some(k) => Some(k),
            None => return Err(format!("storage type torch.{name} is not supported")),
        },
        other => {
            return Err(format!(
                "storage type {} is not supported",
                other.describe()
            ))
        }
    };
    let key = match &items[2] {
        Value::Str(s) => s.clone(),
        Value::Int(i) => i.to_string(),
        other => return Err(format!("storage key {}", other.describe())),
    };
    let numel = as_int(&items[4], "the storage size")?;
    let numel = u64::try_from(numel).map_err(|_| format!("storage {key} has size {numel}"))?;
    if let Some(view) = items.get(5) {
        if *view != Value::None {
            return Err(format!(
                "storage {key} is a view of another storage (PyTorch before 1.0), not supported"
            ));
        }
    }
    Ok(StorageRef { key, kind, numel })
}

/// Reads a state-dict entry as a tensor reference.
fn tensor_ref(v: &Value) -> Res<TensorRef> {
    let Value::Object { callable, args, .. } = v else {
        return Err(format!("it is {}, not a tensor", v.describe()));
    };
    let (module, name) = match callable.as_ref() {
        Value::Global { module, name } => (module.as_str(), name.as_str()),
        _ => return Err(format!("it is {}, not a tensor", v.describe())),
    };
    let Value::Tuple(a) = args.as_ref() else {
        return Err(format!("{module}.{name} called with {}", args.describe()));
    };
    match (module, name) {
        ("torch._utils", "_rebuild_parameter" | "_rebuild_parameter_with_state") => {
            match a.first() {
                Some(inner) => tensor_ref(inner),
                None => Err(format!("{name} without arguments")),
            }
        }
        ("torch._utils", "_rebuild_tensor" | "_rebuild_tensor_v2" | "_rebuild_tensor_v3") => {
            if a.len() < 4 {
                return Err(format!("{name} with {} arguments", a.len()));
            }
            let storage = storage_ref(&a[0])?;
            let kind = if name == "_rebuild_tensor_v3" {
                match a.get(6) {
                    Some(Value::Global {
                        module,
                        name: dtype,
                    }) if module == "torch" => kind_of_name(dtype)
                        .ok_or_else(|| format!("dtype torch.{dtype} is not supported"))?,
                    Some(other) => return Err(format!("dtype {}", other.describe())),
                    None => return Err("_rebuild_tensor_v3 without a dtype".into()),
                }
            } else {
                storage
                    .kind
                    .ok_or("an untyped storage without a dtype".to_string())?
            };
            if storage.kind.is_some_and(|k| k != kind) {
                return Err(format!(
                    "storage {} holds another dtype than the tensor's",
                    storage.key
                ));
            }
            Ok(TensorRef {
                storage,
                kind,
                offset: as_int(&a[1], "the storage offset")?,
                size: as_ints(&a[2], "the size")?,
                stride: as_ints(&a[3], "the stride")?,
            })
        }
        _ => Err(format!(
            "it is {}, which is not a plain tensor",
            v.describe()
        )),
    }
}

/// The entries of the unpickled object, which must be a dict of tensors.
fn state_dict_refs(value: &Value) -> Res<Vec<(String, TensorRef)>> {
    let Value::Dict(items) = value else {
        return Err(format!(
            "the saved object is {}, not a state dict (a dict of tensors)",
            value.describe()
        ));
    };
    let mut out = Vec::with_capacity(items.len());
    for (k, v) in items {
        let Value::Str(name) = k else {
            return Err(format!(
                "a key of the dict is {}, not a string",
                k.describe()
            ));
        };
        let r = tensor_ref(v).map_err(|e| format!("entry `{name}`: {e}"))?;
        out.push((name.clone(), r));
    }
    if out.is_empty() {
        return Err("the saved dict is empty".into());
    }
    Ok(out)
}

/// Builds the tensor `r` from its storage's bytes (`little_endian` as stored).
fn materialise(name: &str, r: &TensorRef, bytes: &[u8], little_endian: bool) -> Res<Tensor> {
    let el = element_size(r.kind);
    let bad = |what: String| format!("tensor `{name}`: {what}");
    if r.size.len() != r.stride.len() {
        return Err(bad(format!(
            "size {:?} and stride {:?} differ in length",
            r.size, r.stride
        )));
    }
    if r.size.iter().any(|&d| d < 0) || r.stride.iter().any(|&s| s < 0) || r.offset < 0 {
        return Err(bad(format!(
            "negative size, stride or offset ({:?}, {:?}, {})",
            r.size, r.stride, r.offset
        )));
    }
    let storage_numel = bytes.len() as u64 / el;
    let numel = r
        .size
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .ok_or_else(|| bad(format!("size {:?} overflows", r.size)))?;
    if numel == 0 {
        return Tensor::f_zeros(&r.size, (r.kind, tch::Device::Cpu))
            .map_err(|e| bad(e.to_string()));
    }
    // The last element read is offset + sum((size_i - 1) * stride_i).
    let last = r
        .size
        .iter()
        .zip(&r.stride)
        .try_fold(r.offset as u64, |acc, (&d, &s)| {
            (d as u64 - 1)
                .checked_mul(s as u64)
                .and_then(|x| acc.checked_add(x))
        })
        .ok_or_else(|| bad("the strides overflow".into()))?;
    if last >= storage_numel {
        return Err(bad(format!(
            "size {:?}, stride {:?} and offset {} reach element {last}, but its storage `{}` \
             holds {storage_numel}",
            r.size, r.stride, r.offset, r.storage.key
        )));
    }
    let contiguous = {
        let mut expected = 1i64;
        let mut ok = true;
        for (&d, &s) in r.size.iter().zip(&r.stride).rev() {
            if d != 1 && s != expected {
                ok = false;
            }
            expected *= d;
        }
        ok
    };
    // Only the bytes the tensor uses when it is contiguous; the whole storage otherwise.
    let (start, end) = if contiguous {
        (r.offset as u64 * el, (r.offset as u64 + numel) * el)
    } else {
        (0, storage_numel * el)
    };
    let slice = &bytes[start as usize..end as usize];
    let converted;
    let slice = if r.kind == Kind::Bool {
        // Any byte other than 0 or 1 is not a valid C++ bool.
        converted = slice.iter().map(|&b| u8::from(b != 0)).collect::<Vec<u8>>();
        &converted[..]
    } else if little_endian || el == 1 {
        slice
    } else {
        converted = slice
            .chunks_exact(el as usize)
            .flat_map(|c| c.iter().rev().copied())
            .collect::<Vec<u8>>();
        &converted[..]
    };
    let tensor = if contiguous {
        Tensor::f_from_data_size(slice, &r.size, r.kind)
    } else {
        Tensor::f_from_data_size(slice, &[storage_numel as i64], r.kind)
            .and_then(|s| s.f_as_strided(&r.size, &r.stride, Some(r.offset)))
            .and_then(|t| t.f_contiguous())
    };
    tensor.map_err(|e| bad(e.to_string()))
}

/// Reads `dir/data.pkl` and the storages of a zip archive.
fn read_zip(path: &Path, file_len: u64) -> Res<TorchStateDict> {
    let file = File::open(path).map_err(|e| e.to_string())?;
    let mut zip = zip::ZipArchive::new(file)
        .map_err(|e| format!("not a readable zip archive (truncated or corrupt): {e}"))?;
    let pkl_names: Vec<String> = zip
        .file_names()
        .filter(|n| {
            n.strip_suffix("data.pkl").is_some_and(|dir| {
                dir.is_empty() || dir.matches('/').count() == 1 && dir.ends_with('/')
            })
        })
        .map(str::to_string)
        .collect();
    let pkl_name = match pkl_names.as_slice() {
        [one] => one.clone(),
        [] => {
            return Err(
                "a zip archive without `data.pkl`: not a torch.save file (a TorchScript or \
                 other archive?)"
                    .into(),
            )
        }
        many => return Err(format!("several `data.pkl` entries: {}", many.join(", "))),
    };
    let prefix = pkl_name.trim_end_matches("data.pkl").to_string();
    let read_entry = |zip: &mut zip::ZipArchive<File>, name: &str, limit: u64| -> Res<Vec<u8>> {
        let mut entry = zip
            .by_name(name)
            .map_err(|e| format!("entry `{name}`: {e}"))?;
        if entry.compression() != zip::CompressionMethod::Stored {
            return Err(format!(
                "entry `{name}` is compressed ({:?}); torch.save stores entries uncompressed, so \
                 this archive was not written by torch.save (was it re-zipped?)",
                entry.compression()
            ));
        }
        let size = entry.size();
        if size > limit || size > file_len {
            return Err(format!(
                "entry `{name}` declares {size} bytes, more than the file holds or a state dict \
                 needs (corrupt)"
            ));
        }
        let mut buf = Vec::with_capacity(size as usize);
        // Reading to the end also checks the entry's CRC-32.
        entry
            .read_to_end(&mut buf)
            .map_err(|e| format!("entry `{name}` cannot be read (truncated or corrupt): {e}"))?;
        if buf.len() as u64 != size {
            return Err(format!(
                "entry `{name}` holds {} bytes, its header says {size} (truncated)",
                buf.len()
            ));
        }
        Ok(buf)
    };
    let byteorder = format!("{prefix}byteorder");
    let little_endian = match zip.index_for_name(&byteorder) {
        Some(_) => {
            let text = read_entry(&mut zip, &byteorder, 16)?;
            match text.as_slice() {
                b"little" => true,
                b"big" => false,
                other => {
                    return Err(format!(
                        "byteorder entry says {:?}",
                        String::from_utf8_lossy(other)
                    ))
                }
            }
        }
        // Archives written before PyTorch 1.10 have no byteorder entry: little-endian.
        None => true,
    };
    let pkl = read_entry(&mut zip, &pkl_name, MAX_PICKLE_BYTES)?;
    let (value, _) = pickle::parse(&pkl).map_err(|e| format!("{pkl_name}: {e}"))?;
    let refs = state_dict_refs(&value)?;
    let mut storages: HashMap<String, Vec<u8>> = HashMap::new();
    let mut tensors = Vec::with_capacity(refs.len());
    for (name, r) in &refs {
        let entry = format!("{prefix}data/{}", r.storage.key);
        if !storages.contains_key(&r.storage.key) {
            let bytes = read_entry(&mut zip, &entry, file_len)?;
            storages.insert(r.storage.key.clone(), bytes);
        }
        let bytes = &storages[&r.storage.key];
        // Checked per tensor: two persistent ids may claim different sizes for one storage.
        let nbytes = r.storage.nbytes()?;
        if (bytes.len() as u64) < nbytes {
            return Err(format!(
                "entry `{entry}` holds {} bytes, but tensor `{name}` says its storage has \
                 {nbytes} (truncated)",
                bytes.len()
            ));
        }
        tensors.push((
            name.clone(),
            materialise(name, r, &bytes[..nbytes as usize], little_endian)?,
        ));
    }
    Ok(TorchStateDict {
        tensors,
        format: TorchFormat::Zip,
    })
}

/// Reads the legacy layout from memory.
fn read_legacy(bytes: &[u8]) -> Res<TorchStateDict> {
    let mut pos = 0usize;
    let next = |what: &str, pos: &mut usize| -> Res<Value> {
        let (v, used) =
            pickle::parse(&bytes[*pos..]).map_err(|e| format!("the {what} pickle: {e}"))?;
        *pos += used;
        Ok(v)
    };
    // The magic number was matched on the raw bytes already.
    next("magic number", &mut pos)?;
    match next("protocol version", &mut pos)? {
        Value::Int(1001) => {}
        other => {
            return Err(format!(
                "legacy protocol version {} (only 1001 exists)",
                other.describe()
            ))
        }
    }
    let little_endian = match next("system info", &mut pos)? {
        Value::Dict(items) => items
            .iter()
            .find(|(k, _)| *k == Value::Str("little_endian".into()))
            .map(|(_, v)| *v != Value::Bool(false))
            .unwrap_or(true),
        other => return Err(format!("the system info is {}", other.describe())),
    };
    let value = next("state dict", &mut pos)?;
    let refs = state_dict_refs(&value)?;
    let keys = match next("storage keys", &mut pos)? {
        Value::List(keys) => keys
            .into_iter()
            .map(|k| match k {
                Value::Str(s) => Ok(s),
                other => Err(format!("a storage key is {}", other.describe())),
            })
            .collect::<Res<Vec<String>>>()?,
        other => return Err(format!("the storage key list is {}", other.describe())),
    };
    let declared: HashMap<&str, &StorageRef> = refs
        .iter()
        .map(|(_, r)| (r.storage.key.as_str(), &r.storage))
        .collect();
    let mut storages: HashMap<String, &[u8]> = HashMap::new();
    for key in &keys {
        let Some(s) = declared.get(key.as_str()) else {
            return Err(format!("storage {key} is listed but no tensor uses it"));
        };
        let left = bytes.len() - pos;
        if left < 8 {
            return Err(format!("storage {key}: the file ends (truncated)"));
        }
        let mut n = [0u8; 8];
        n.copy_from_slice(&bytes[pos..pos + 8]);
        let numel = if little_endian {
            u64::from_le_bytes(n)
        } else {
            u64::from_be_bytes(n)
        };
        pos += 8;
        if numel != s.numel {
            return Err(format!(
                "storage {key} holds {numel} elements, the pickle says {}",
                s.numel
            ));
        }
        let nbytes = s.nbytes()?;
        if nbytes > (bytes.len() - pos) as u64 {
            return Err(format!(
                "storage {key} needs {nbytes} bytes, {} remain (truncated)",
                bytes.len() - pos
            ));
        }
        storages.insert(key.clone(), &bytes[pos..pos + nbytes as usize]);
        pos += nbytes as usize;
    }
    let mut tensors = Vec::with_capacity(refs.len());
    for (name, r) in &refs {
        let Some(data) = storages.get(&r.storage.key) else {
            return Err(format!(
                "tensor `{name}`: its storage {} is not in the file",
                r.storage.key
            ));
        };
        tensors.push((name.clone(), materialise(name, r, data, little_endian)?));
    }
    Ok(TorchStateDict {
        tensors,
        format: TorchFormat::Legacy,
    })
}

/// The stored dtype of each tensor, counted by PyTorch's name (`{"bfloat16": 2, "float32": 21}`).
pub fn dtype_counts(tensors: &[(String, Tensor)]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for (_, t) in tensors {
        *counts.entry(kind_name(t.kind()).to_string()).or_insert(0) += 1;
    }
    counts
}

/// The file name's step, when it follows the reference's `step_<N>` naming.
pub fn step_from_file_name(path: &Path) -> Option<u64> {
    let name = path.file_stem()?.to_str()?;
    name.strip_prefix("step_")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn fixture(name: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/import/tiny")
            .join(name)
    }

    fn data_pkl(path: &Path) -> Vec<u8> {
        let mut zip = zip::ZipArchive::new(File::open(path).expect("open")).expect("zip");
        let mut entry = zip.by_name("step_120/data.pkl").expect("data.pkl");
        let mut buf = Vec::new();
        entry.read_to_end(&mut buf).expect("read");
        buf
    }

    #[test]
    fn reads_torch_pickles_and_their_storages() {
        let pkl = data_pkl(&fixture("step_120.pt"));
        let (value, used) = pickle::parse(&pkl).expect("parses");
        assert_eq!(used, pkl.len());
        let refs = state_dict_refs(&value).expect("a state dict");
        assert_eq!(refs.len(), 16);
        let (name, r) = &refs[0];
        assert_eq!(name, "_orig_mod.model.inner.H_init");
        assert_eq!(r.kind, Kind::BFloat16);
        assert_eq!(
            (r.size.as_slice(), r.stride.as_slice()),
            (&[8][..], &[1][..])
        );
        assert_eq!(step_from_file_name(&fixture("step_120.pt")), Some(120));
        assert_eq!(step_from_file_name(Path::new("checkpoint")), None);
    }

    #[test]
    fn strided_views_are_bounds_checked() {
        let storage = StorageRef {
            key: "0".into(),
            kind: Some(Kind::Float),
            numel: 6,
        };
        let bytes: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_le_bytes()).collect();
        let view = |offset, size: Vec<i64>, stride: Vec<i64>| TensorRef {
            storage: storage.clone(),
            kind: Kind::Float,
            offset,
            size,
            stride,
        };
        // A transpose of a [2, 3] storage: [[0, 3], [1, 4], [2, 5]].
        let t = materialise("t", &view(0, vec![3, 2], vec![1, 3]), &bytes, true).expect("fits");
        assert_eq!(
            Vec::<f32>::try_from(t.reshape([-1])).expect("vec"),
            [0., 3., 1., 4., 2., 5.]
        );
        // Big-endian storages are swapped.
        let be: Vec<u8> = (0..6).flat_map(|i| (i as f32).to_be_bytes()).collect();
        let t = materialise("t", &view(2, vec![2], vec![1]), &be, false).expect("fits");
        assert_eq!(Vec::<f32>::try_from(t).expect("vec"), [2., 3.]);
        // One element past the storage, negative strides, overflowing sizes: errors naming it.
        for bad in [
            view(1, vec![2, 3], vec![3, 1]),
            view(0, vec![2], vec![-1]),
            view(0, vec![i64::MAX, 2], vec![1, 1]),
            view(0, vec![3], vec![1, 1]),
        ] {
            let e = materialise("w", &bad, &bytes, true).expect_err("outside");
            assert!(e.contains("`w`"), "{e}");
        }
    }

    /// Flipped and cut bytes anywhere in real files give errors, never panics.
    #[test]
    fn corrupt_files_are_errors_not_panics() {
        let pkl = data_pkl(&fixture("step_120.pt"));
        let mut parsed = 0;
        for cut in 0..pkl.len() {
            if let Ok((v, _)) = pickle::parse(&pkl[..cut]) {
                let _ = state_dict_refs(&v);
                parsed += 1;
            }
        }
        for pos in 0..pkl.len() {
            for flip in [0x01u8, 0xff] {
                let mut p = pkl.clone();
                p[pos] ^= flip;
                if let Ok((v, _)) = pickle::parse(&p) {
                    if let Ok(refs) = state_dict_refs(&v) {
                        // Sizes and strides may now be anything: still checked.
                        let bytes = vec![0u8; 4096];
                        for (name, r) in &refs {
                            let _ = materialise(name, r, &bytes, true);
                        }
                    }
                }
            }
        }
        assert_eq!(parsed, 0, "a cut pickle never reaches its STOP");
        let legacy = std::fs::read(fixture("legacy_f32.pt")).expect("read");
        for cut in (0..legacy.len()).step_by(211) {
            assert!(read_legacy(&legacy[..cut]).is_err(), "cut at {cut}");
        }
        for pos in 0..800.min(legacy.len()) {
            let mut l = legacy.clone();
            l[pos] ^= 0x55;
            let _ = read_legacy(&l);
        }
        let zip_bytes = std::fs::read(fixture("views_f16.pt")).expect("read");
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.pt");
        let n = zip_bytes.len();
        // The local header and data.pkl, then the central directory; storages are CRC-checked.
        let positions = (0..256)
            .chain((n - 640)..n)
            .chain((256..n - 640).step_by(2039));
        for pos in positions {
            let mut z = zip_bytes.clone();
            z[pos] ^= 0x55;
            std::fs::write(&path, &z).expect("write");
            let _ = read_torch_state_dict(&path);
        }
    }
}
