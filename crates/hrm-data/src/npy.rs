//! NumPy `.npy` files: header parsing, memory-mapped reading and streaming writing.
//!
//! The reference writes every dataset array with `np.save` and reads them back with
//! `np.load(..., mmap_mode="r")` (`puzzle_dataset.py`, `PuzzleDataset._lazy_load_dataset`).
//! This module reads the versions 1.0, 2.0 and 3.0 of the format for the integer dtypes
//! `|u1 |i1 <u2 <i2 <u4 <i4 <u8 <i8` (little-endian, C order), and writes version 1.0 with the
//! data aligned to 64 bytes, as NumPy does. [`NpyWriter`] streams rows of unknown count: it
//! reserves a fixed-size header and rewrites it with the final shape in [`NpyWriter::finish`].

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::error::{DataError, Result};

const MAGIC: &[u8; 6] = b"\x93NUMPY";
/// NumPy aligns the start of the data to this many bytes.
const ALIGN: usize = 64;

/// The element types this crate reads and writes (all little-endian integers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dtype {
    /// `|u1`, what the reference writes for `inputs` and `labels`.
    U8,
    /// `|i1`.
    I8,
    /// `<u2`.
    U16,
    /// `<i2`.
    I16,
    /// `<u4`.
    U32,
    /// `<i4`, what the reference writes for identifiers and indices.
    I32,
    /// `<u8`.
    U64,
    /// `<i8`, NumPy's default integer on most platforms.
    I64,
}

impl Dtype {
    /// The NumPy `descr` string, e.g. `<i4`.
    pub fn descr(self) -> &'static str {
        match self {
            Dtype::U8 => "|u1",
            Dtype::I8 => "|i1",
            Dtype::U16 => "<u2",
            Dtype::I16 => "<i2",
            Dtype::U32 => "<u4",
            Dtype::I32 => "<i4",
            Dtype::U64 => "<u8",
            Dtype::I64 => "<i8",
        }
    }

    /// Bytes per element.
    pub fn size(self) -> usize {
        match self {
            Dtype::U8 | Dtype::I8 => 1,
            Dtype::U16 | Dtype::I16 => 2,
            Dtype::U32 | Dtype::I32 => 4,
            Dtype::U64 | Dtype::I64 => 8,
        }
    }

    /// Parses a `descr`; `None` for anything but the little-endian integers above.
    /// Single-byte types are accepted with any byte-order mark (`|`, `<`, `=`, `>`).
    pub fn from_descr(descr: &str) -> Option<Dtype> {
        // The byte-order mark is one ASCII character; a descr starting with anything else
        // (even a multi-byte character) matches no code below.
        let (order, code) = descr.split_at_checked(1).unwrap_or(("", descr));
        let little = order == "<" || (order == "=" && cfg!(target_endian = "little"));
        match code {
            "u1" | "B" => Some(Dtype::U8),
            "i1" | "b" => Some(Dtype::I8),
            "u2" if little => Some(Dtype::U16),
            "i2" if little => Some(Dtype::I16),
            "u4" if little => Some(Dtype::U32),
            "i4" if little => Some(Dtype::I32),
            "u8" if little => Some(Dtype::U64),
            "i8" if little => Some(Dtype::I64),
            _ => None,
        }
    }

    /// Decodes the element starting at `bytes[0]`.
    #[inline]
    fn decode(self, bytes: &[u8]) -> i64 {
        match self {
            Dtype::U8 => i64::from(bytes[0]),
            Dtype::I8 => i64::from(bytes[0] as i8),
            Dtype::U16 => i64::from(u16::from_le_bytes([bytes[0], bytes[1]])),
            Dtype::I16 => i64::from(i16::from_le_bytes([bytes[0], bytes[1]])),
            Dtype::U32 => i64::from(u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))),
            Dtype::I32 => i64::from(i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"))),
            // Values past i64::MAX saturate; they fail every range check downstream anyway.
            Dtype::U64 => {
                i64::try_from(u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")))
                    .unwrap_or(i64::MAX)
            }
            Dtype::I64 => i64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")),
        }
    }
}

/// A parsed `.npy` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NpyHeader {
    /// Element type.
    pub dtype: Dtype,
    /// Shape, C order.
    pub shape: Vec<usize>,
    /// Byte offset of the data in the file.
    pub data_offset: usize,
}

impl NpyHeader {
    /// Number of elements (`1` for a 0-d array); saturates at `usize::MAX` for a shape no
    /// file can hold (which the reader refuses).
    pub fn num_elements(&self) -> usize {
        self.shape.iter().fold(1, |n, &d| n.saturating_mul(d))
    }
}

/// Reads and checks the header of an open `.npy` file.
fn read_header(path: &Path, file: &mut File) -> Result<NpyHeader> {
    let bad = |reason: String| DataError::Npy {
        path: path.to_path_buf(),
        reason,
    };
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix)
        .map_err(|_| bad("file too short for a .npy header".into()))?;
    if &prefix[..6] != MAGIC {
        return Err(bad("missing \\x93NUMPY magic".into()));
    }
    let (major, minor) = (prefix[6], prefix[7]);
    let (header_len, len_bytes) = match major {
        1 => {
            let mut b = [0u8; 2];
            file.read_exact(&mut b)
                .map_err(|e| DataError::io(path, e))?;
            (usize::from(u16::from_le_bytes(b)), 2)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            file.read_exact(&mut b)
                .map_err(|e| DataError::io(path, e))?;
            (u32::from_le_bytes(b) as usize, 4)
        }
        _ => return Err(bad(format!("unsupported format version {major}.{minor}"))),
    };
    // The stated length is checked against the file before anything is allocated for it (a
    // damaged length field could claim 4 GiB).
    let file_len = file.metadata().map_err(|e| DataError::io(path, e))?.len();
    if (8 + len_bytes + header_len) as u64 > file_len {
        return Err(bad(format!(
            "header length {header_len} runs past the end of the {file_len}-byte file"
        )));
    }
    let mut text = vec![0u8; header_len];
    file.read_exact(&mut text)
        .map_err(|_| bad("header shorter than its stated length".into()))?;
    let text = String::from_utf8_lossy(&text);
    let dict =
        parse_header_dict(&text).map_err(|reason| bad(format!("header {text:?}: {reason}")))?;
    let descr = dict
        .descr
        .ok_or_else(|| bad("header has no 'descr'".into()))?;
    let dtype = Dtype::from_descr(&descr).ok_or_else(|| {
        bad(format!("dtype {descr:?} is not supported (little-endian integers only: |u1 |i1 <u2 <i2 <u4 <i4 <u8 <i8)"))
    })?;
    let shape = dict
        .shape
        .ok_or_else(|| bad("header has no 'shape'".into()))?;
    // The size the shape claims must be a number before it is compared with the file: a
    // damaged header can claim more elements than a usize holds.
    let bytes = shape
        .iter()
        .try_fold(dtype.size(), |n, &d| n.checked_mul(d));
    if bytes.is_none() {
        return Err(bad(format!(
            "shape {shape:?} of {descr} claims more bytes than a file can hold"
        )));
    }
    if dict.fortran_order == Some(true) && shape.iter().filter(|&&d| d > 1).count() > 1 {
        return Err(bad(
            "Fortran-order arrays are not supported; save with C order".into(),
        ));
    }
    Ok(NpyHeader {
        dtype,
        shape,
        data_offset: 8 + len_bytes + header_len,
    })
}

#[derive(Default)]
struct HeaderDict {
    descr: Option<String>,
    fortran_order: Option<bool>,
    shape: Option<Vec<usize>>,
}

/// Parses the Python dict literal of a `.npy` header, e.g.
/// `{'descr': '<i4', 'fortran_order': False, 'shape': (3, 81), }`.
fn parse_header_dict(text: &str) -> std::result::Result<HeaderDict, String> {
    let s = text.trim();
    let inner = s
        .strip_prefix('{')
        .and_then(|r| r.strip_suffix('}'))
        .ok_or("not a dict literal")?;
    let mut dict = HeaderDict::default();
    let mut rest = inner.trim_start();
    while !rest.is_empty() {
        let (key, after) = take_quoted(rest).ok_or("expected a quoted key")?;
        let after = after
            .trim_start()
            .strip_prefix(':')
            .ok_or("expected ':' after key")?
            .trim_start();
        let consumed;
        match key.as_str() {
            "descr" => {
                let (v, a) = take_quoted(after)
                    .ok_or("'descr' must be a string (structured dtypes are not supported)")?;
                dict.descr = Some(v);
                consumed = a;
            }
            "fortran_order" => {
                if let Some(a) = after.strip_prefix("False") {
                    dict.fortran_order = Some(false);
                    consumed = a;
                } else if let Some(a) = after.strip_prefix("True") {
                    dict.fortran_order = Some(true);
                    consumed = a;
                } else {
                    return Err("'fortran_order' must be True or False".into());
                }
            }
            "shape" => {
                let body = after.strip_prefix('(').ok_or("'shape' must be a tuple")?;
                let close = body.find(')').ok_or("unterminated 'shape' tuple")?;
                let mut shape = Vec::new();
                for part in body[..close].split(',') {
                    let part = part.trim().trim_end_matches('L');
                    if part.is_empty() {
                        continue;
                    }
                    shape.push(
                        part.parse::<usize>()
                            .map_err(|_| format!("bad dimension {part:?}"))?,
                    );
                }
                dict.shape = Some(shape);
                consumed = &body[close + 1..];
            }
            other => return Err(format!("unexpected key {other:?}")),
        }
        rest = consumed.trim_start();
        if let Some(r) = rest.strip_prefix(',') {
            rest = r.trim_start();
        } else if !rest.is_empty() {
            return Err("expected ',' between entries".into());
        }
    }
    Ok(dict)
}

/// Takes a `'...'` or `"..."` string from the front of `s`.
fn take_quoted(s: &str) -> Option<(String, &str)> {
    let quote = s.chars().next().filter(|c| *c == '\'' || *c == '"')?;
    let body = &s[1..];
    let end = body.find(quote)?;
    Some((body[..end].to_string(), &body[end + 1..]))
}

/// The bytes behind an array: a read-only memory map of the file, or an owned buffer.
enum Storage {
    Mapped(memmap2::Mmap),
    Owned(Vec<u8>),
}

/// A `.npy` array of integers, memory-mapped ([`NpyArray::open`]) or read into memory
/// ([`NpyArray::read`]).
pub struct NpyArray {
    path: PathBuf,
    header: NpyHeader,
    storage: Storage,
}

impl std::fmt::Debug for NpyArray {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NpyArray")
            .field("path", &self.path)
            .field("dtype", &self.header.dtype)
            .field("shape", &self.header.shape)
            .finish()
    }
}

impl NpyArray {
    /// Memory-maps `path` read-only.
    ///
    /// # Errors
    /// [`DataError::Io`] if the file cannot be opened or mapped, [`DataError::Npy`] for a bad
    /// header or a data size that does not match the shape.
    pub fn open(path: &Path) -> Result<NpyArray> {
        let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let header = read_header(path, &mut file)?;
        let map = map_file(&file).map_err(|e| DataError::io(path, e))?;
        let array = NpyArray {
            path: path.to_path_buf(),
            header,
            storage: Storage::Mapped(map),
        };
        array.check_size()?;
        Ok(array)
    }

    /// Reads `path` whole into memory.
    ///
    /// # Errors
    /// As [`NpyArray::open`].
    pub fn read(path: &Path) -> Result<NpyArray> {
        let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
        let mut file = File::open(path).map_err(|e| DataError::io(path, e))?;
        let header = read_header(path, &mut file)?;
        let array = NpyArray {
            path: path.to_path_buf(),
            header,
            storage: Storage::Owned(bytes),
        };
        array.check_size()?;
        Ok(array)
    }

    fn check_size(&self) -> Result<()> {
        let have = self
            .file_bytes()
            .len()
            .saturating_sub(self.header.data_offset);
        let need = self
            .header
            .num_elements()
            .saturating_mul(self.header.dtype.size());
        if have != need {
            return Err(DataError::Npy {
                path: self.path.clone(),
                reason: format!(
                    "shape {:?} of {} needs {need} data bytes, the file has {have}",
                    self.header.shape,
                    self.header.dtype.descr()
                ),
            });
        }
        Ok(())
    }

    fn file_bytes(&self) -> &[u8] {
        match &self.storage {
            Storage::Mapped(m) => m,
            Storage::Owned(v) => v,
        }
    }

    /// The file this array came from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Element type.
    pub fn dtype(&self) -> Dtype {
        self.header.dtype
    }

    /// Shape, C order.
    pub fn shape(&self) -> &[usize] {
        &self.header.shape
    }

    /// Number of elements.
    pub fn num_elements(&self) -> usize {
        self.header.num_elements()
    }

    /// The raw little-endian data bytes.
    pub fn data(&self) -> &[u8] {
        &self.file_bytes()[self.header.data_offset..]
    }

    /// Element `i` of the flattened array, widened to `i64`.
    ///
    /// # Panics
    /// If `i >= self.num_elements()`.
    pub fn get(&self, i: usize) -> i64 {
        let size = self.header.dtype.size();
        self.header
            .dtype
            .decode(&self.data()[i * size..(i + 1) * size])
    }

    /// All elements, widened to `i64`.
    pub fn to_vec_i64(&self) -> Vec<i64> {
        let size = self.header.dtype.size();
        let dtype = self.header.dtype;
        self.data()
            .chunks_exact(size)
            .map(|b| dtype.decode(b))
            .collect()
    }

    /// Copies elements `start..start + out.len()` into `out` as `i32` (values are assumed to fit,
    /// which [`crate::Dataset::open`] checks for token arrays).
    ///
    /// # Panics
    /// If the range is past the end.
    pub fn copy_to_i32(&self, start: usize, out: &mut [i32]) {
        let size = self.header.dtype.size();
        let bytes = &self.data()[start * size..(start + out.len()) * size];
        match self.header.dtype {
            Dtype::U8 => out
                .iter_mut()
                .zip(bytes)
                .for_each(|(o, &b)| *o = i32::from(b)),
            Dtype::I32 => out
                .iter_mut()
                .zip(bytes.chunks_exact(4))
                .for_each(|(o, b)| *o = i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            dtype => out
                .iter_mut()
                .zip(bytes.chunks_exact(size))
                .for_each(|(o, b)| *o = dtype.decode(b) as i32),
        }
    }

    /// Minimum and maximum element, scanned in parallel; `None` for an empty array.
    pub fn min_max(&self) -> Option<(i64, i64)> {
        let size = self.header.dtype.size();
        let dtype = self.header.dtype;
        const CHUNK: usize = 1 << 20;
        self.data()
            .par_chunks(CHUNK * size)
            .map(|chunk| {
                if dtype == Dtype::U8 {
                    let (mut lo, mut hi) = (u8::MAX, u8::MIN);
                    for &b in chunk {
                        lo = lo.min(b);
                        hi = hi.max(b);
                    }
                    (i64::from(lo), i64::from(hi))
                } else {
                    chunk
                        .chunks_exact(size)
                        .map(|b| dtype.decode(b))
                        .fold((i64::MAX, i64::MIN), |(lo, hi), v| (lo.min(v), hi.max(v)))
                }
            })
            .reduce_with(|a, b| (a.0.min(b.0), a.1.max(b.1)))
    }

    /// The flat index and value of the first element outside `lo..=hi` and not equal to
    /// `except`, scanning in parallel; `None` if all are in range.
    pub fn first_outside(&self, lo: i64, hi: i64, except: Option<i64>) -> Option<(usize, i64)> {
        let size = self.header.dtype.size();
        let dtype = self.header.dtype;
        const CHUNK: usize = 1 << 20;
        self.data()
            .par_chunks(CHUNK * size)
            .enumerate()
            .filter_map(|(ci, chunk)| {
                chunk.chunks_exact(size).enumerate().find_map(|(j, b)| {
                    let v = dtype.decode(b);
                    ((v < lo || v > hi) && Some(v) != except).then_some((ci * CHUNK + j, v))
                })
            })
            .min_by_key(|&(i, _)| i)
    }
}

/// Memory-maps a file read-only.
#[allow(unsafe_code)]
fn map_file(file: &File) -> std::io::Result<memmap2::Mmap> {
    // SAFETY: the map is read-only and private to this process. As with `np.load(mmap_mode="r")`,
    // the dataset files must not be truncated or rewritten while a `Dataset` is open; our own
    // writer never rewrites a dataset in place (it builds a new directory and renames it).
    unsafe { memmap2::Mmap::map(file) }
}

/// The header bytes (magic to `\n`) for `dtype` and `shape`, padded with spaces to
/// `min_total` bytes if that is larger, and to a multiple of 64 bytes.
fn header_bytes(dtype: Dtype, shape: &[usize], min_total: usize) -> Vec<u8> {
    let shape_text = match shape {
        [n] => format!("({n},)"),
        dims => format!(
            "({})",
            dims.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let dict = format!(
        "{{'descr': '{}', 'fortran_order': False, 'shape': {shape_text}, }}",
        dtype.descr()
    );
    // magic (6) + version (2) + length (2) + dict + padding + '\n'
    let unpadded = 10 + dict.len() + 1;
    let total = unpadded.max(min_total).div_ceil(ALIGN) * ALIGN;
    let header_len = total - 10;
    let mut out = Vec::with_capacity(total);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header_len as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out.resize(total - 1, b' ');
    out.push(b'\n');
    out
}

/// Writes a whole array. `data` holds `shape.iter().product()` elements of `dtype` as
/// little-endian bytes.
///
/// # Errors
/// [`DataError::Io`] naming `path`.
///
/// # Panics
/// If `data.len()` does not match the shape.
pub fn write_npy(path: &Path, dtype: Dtype, shape: &[usize], data: &[u8]) -> Result<()> {
    assert_eq!(
        data.len(),
        shape.iter().product::<usize>() * dtype.size(),
        "data does not match the shape"
    );
    let io = |e| DataError::io(path, e);
    let mut w = BufWriter::new(File::create(path).map_err(io)?);
    w.write_all(&header_bytes(dtype, shape, 0)).map_err(io)?;
    w.write_all(data).map_err(io)?;
    w.into_inner()
        .map_err(|e| DataError::io(path, e.into_error()))?
        .sync_all()
        .map_err(io)?;
    Ok(())
}

/// Writes an `i32` array (`<i4`), e.g. predictions `[N, seq]` or indices `[N]`.
///
/// # Errors
/// [`DataError::Io`] naming `path`.
///
/// # Panics
/// If `data.len()` does not match the shape.
pub fn write_i32(path: &Path, shape: &[usize], data: &[i32]) -> Result<()> {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    write_npy(path, Dtype::I32, shape, &bytes)
}

/// Writes a `u8` array (`|u1`).
///
/// # Errors
/// [`DataError::Io`] naming `path`.
///
/// # Panics
/// If `data.len()` does not match the shape.
pub fn write_u8(path: &Path, shape: &[usize], data: &[u8]) -> Result<()> {
    write_npy(path, Dtype::U8, shape, data)
}

/// Streams rows of a `[rows, ..row_shape]` array whose row count is known only at the end.
pub struct NpyWriter {
    path: PathBuf,
    file: BufWriter<File>,
    dtype: Dtype,
    row_shape: Vec<usize>,
    row_bytes: usize,
    rows: usize,
    header_len: usize,
}

impl NpyWriter {
    /// Creates `path` and reserves a header large enough for any row count.
    ///
    /// # Errors
    /// [`DataError::Io`] naming `path`.
    pub fn create(path: &Path, dtype: Dtype, row_shape: &[usize]) -> Result<NpyWriter> {
        let mut shape = vec![usize::MAX];
        shape.extend_from_slice(row_shape);
        let header = header_bytes(dtype, &shape, 0);
        let io = |e| DataError::io(path, e);
        let mut file = BufWriter::with_capacity(1 << 20, File::create(path).map_err(io)?);
        file.write_all(&header).map_err(io)?;
        Ok(NpyWriter {
            path: path.to_path_buf(),
            file,
            dtype,
            row_bytes: row_shape.iter().product::<usize>() * dtype.size(),
            row_shape: row_shape.to_vec(),
            rows: 0,
            header_len: header.len(),
        })
    }

    /// Appends whole rows given as raw little-endian bytes.
    ///
    /// # Errors
    /// [`DataError::Io`] naming the file.
    ///
    /// # Panics
    /// If `bytes` is not a whole number of rows.
    pub fn write_rows(&mut self, bytes: &[u8]) -> Result<()> {
        if self.row_bytes == 0 {
            assert!(bytes.is_empty(), "zero-sized rows take no bytes");
            return Ok(());
        }
        assert_eq!(
            bytes.len() % self.row_bytes,
            0,
            "not a whole number of rows"
        );
        self.file
            .write_all(bytes)
            .map_err(|e| DataError::io(&self.path, e))?;
        self.rows += bytes.len() / self.row_bytes;
        Ok(())
    }

    /// Rows written so far.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Element type of the file.
    pub fn dtype(&self) -> Dtype {
        self.dtype
    }

    /// Writes the final header and flushes the file to disk.
    ///
    /// # Errors
    /// [`DataError::Io`] naming the file.
    pub fn finish(self) -> Result<()> {
        let path = self.path;
        let io = |e| DataError::io(&path, e);
        let mut file = self
            .file
            .into_inner()
            .map_err(|e| DataError::io(&path, e.into_error()))?;
        let mut shape = vec![self.rows];
        shape.extend_from_slice(&self.row_shape);
        let header = header_bytes(self.dtype, &shape, self.header_len);
        debug_assert_eq!(header.len(), self.header_len);
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(&header).map_err(io)?;
        file.sync_all().map_err(io)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_alignment() {
        let h = header_bytes(Dtype::I32, &[3, 81], 0);
        assert_eq!(h.len() % 64, 0);
        assert_eq!(*h.last().unwrap(), b'\n');
        let text = String::from_utf8_lossy(&h[10..]);
        let dict = parse_header_dict(&text).unwrap();
        assert_eq!(dict.descr.as_deref(), Some("<i4"));
        assert_eq!(dict.shape, Some(vec![3, 81]));
        assert_eq!(dict.fortran_order, Some(false));
        let one = header_bytes(Dtype::U8, &[7], 0);
        assert!(String::from_utf8_lossy(&one).contains("'shape': (7,)"));
    }

    #[test]
    fn parses_numpy_style_headers() {
        let d = parse_header_dict(
            "{'descr': '|u1', 'fortran_order': False, 'shape': (1001, 900), }    ",
        )
        .unwrap();
        assert_eq!(d.shape, Some(vec![1001, 900]));
        let d = parse_header_dict("{\"shape\": (), \"descr\": \"<i8\", \"fortran_order\": False}")
            .unwrap();
        assert_eq!(d.shape, Some(vec![]));
        assert!(parse_header_dict(
            "{'descr': [('a', '<i4')], 'fortran_order': False, 'shape': (2,), }"
        )
        .is_err());
    }

    #[test]
    fn write_read_all_dtypes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        write_i32(&path, &[2, 3], &[0, -1, 2, 3, 4, i32::MAX]).unwrap();
        for a in [
            NpyArray::open(&path).unwrap(),
            NpyArray::read(&path).unwrap(),
        ] {
            assert_eq!(a.shape(), &[2, 3]);
            assert_eq!(a.to_vec_i64(), vec![0, -1, 2, 3, 4, i64::from(i32::MAX)]);
            let mut row = [0i32; 3];
            a.copy_to_i32(3, &mut row);
            assert_eq!(row, [3, 4, i32::MAX]);
            assert_eq!(a.min_max(), Some((-1, i64::from(i32::MAX))));
            assert_eq!(a.first_outside(0, 10, None), Some((1, -1)));
            assert_eq!(
                a.first_outside(-1, 10, None),
                Some((5, i64::from(i32::MAX)))
            );
        }
        let bytes: Vec<u8> = [5i16, -7].iter().flat_map(|v| v.to_le_bytes()).collect();
        write_npy(&path, Dtype::I16, &[2], &bytes).unwrap();
        assert_eq!(NpyArray::open(&path).unwrap().to_vec_i64(), vec![5, -7]);
    }

    #[test]
    fn streaming_writer_rewrites_shape() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.npy");
        let mut w = NpyWriter::create(&path, Dtype::U8, &[4]).unwrap();
        w.write_rows(&[1, 2, 3, 4, 5, 6, 7, 8]).unwrap();
        w.write_rows(&[9, 9, 9, 9]).unwrap();
        w.finish().unwrap();
        let a = NpyArray::open(&path).unwrap();
        assert_eq!(a.shape(), &[3, 4]);
        assert_eq!(a.dtype(), Dtype::U8);
        assert_eq!(a.get(8), 9);
    }

    /// Fuzzing regressions: headers that lie must be refused before anything is allocated
    /// for them, and odd text must not panic.
    #[test]
    fn lying_headers_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.npy");
        // Magic, version, the header length (or `claimed`), the dict and 4 data bytes.
        let file = |major: u8, claimed: Option<u32>, dict: &str| {
            let len = claimed.unwrap_or(dict.len() as u32 + 1);
            let mut bytes = MAGIC.to_vec();
            bytes.extend([major, 0]);
            if major == 1 {
                bytes.extend((len as u16).to_le_bytes());
            } else {
                bytes.extend(len.to_le_bytes());
            }
            bytes.extend(dict.as_bytes());
            bytes.extend([b'\n', 0, 0, 0, 0]);
            std::fs::write(&path, &bytes).unwrap();
            bytes.len()
        };
        let both = |want: &str| {
            for result in [NpyArray::open(&path), NpyArray::read(&path)] {
                let err = result.unwrap_err();
                assert!(err.to_string().contains(want), "{err} should say {want}");
            }
        };
        let dict = "{'descr': '<i4', 'fortran_order': False, 'shape': (1,), }";
        file(1, None, dict);
        NpyArray::open(&path).unwrap();
        // A version 2 header claiming 4 GiB used to allocate 4 GiB before reading it.
        let len = file(2, Some(u32::MAX), dict);
        both(&format!(
            "header length 4294967295 runs past the end of the {len}-byte file"
        ));
        file(1, Some(u16::MAX.into()), dict);
        both("header length 65535 runs past the end");
        // A shape whose element count overflows used to panic in the size check.
        let huge = "{'descr': '<i4', 'fortran_order': False, 'shape': (18446744073709551615, 2), }";
        file(1, None, huge);
        both("claims more bytes than a file can hold");
        // A descr starting with a multi-byte character used to panic in `from_descr`.
        assert_eq!(Dtype::from_descr("\u{fffd}<i4"), None);
        assert_eq!(Dtype::from_descr("é"), None);
        assert_eq!(Dtype::from_descr(""), None);
        file(
            1,
            None,
            "{'descr': '\u{fffd}<i4', 'fortran_order': False, 'shape': (1,), }",
        );
        both("is not supported");
    }

    #[test]
    fn bad_files_name_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.npy");
        std::fs::write(&path, b"not numpy at all").unwrap();
        let err = NpyArray::open(&path).unwrap_err();
        assert!(
            matches!(err, DataError::Npy { ref path, .. } if path.ends_with("bad.npy")),
            "{err}"
        );
        // Truncated data.
        write_i32(&path, &[4], &[1, 2, 3, 4]).unwrap();
        let full = std::fs::read(&path).unwrap();
        std::fs::write(&path, &full[..full.len() - 2]).unwrap();
        let err = NpyArray::open(&path).unwrap_err();
        assert!(err.to_string().contains("needs 16 data bytes"), "{err}");
        // Big-endian is refused.
        let mut be = full.clone();
        let pos = be.windows(3).position(|w| w == b"<i4").unwrap();
        be[pos] = b'>';
        std::fs::write(&path, &be).unwrap();
        assert!(NpyArray::open(&path)
            .unwrap_err()
            .to_string()
            .contains(">i4"));
    }
}
