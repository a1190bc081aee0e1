//! A small pickle virtual machine for the opcodes `torch.save` emits, bounded against hostile
//! input.
//!
//! No maintained Rust crate reads PyTorch's pickles: `serde-pickle` has no persistent ids
//! (`BINPERSID`) and drops the names of globals, which is exactly what tells a tensor from any
//! other object; `repugnant-pickle` is a 0.0.1 release that panics on malformed input; candle's
//! reader lives inside `candle-core`. So this module implements the subset of protocols 0-5 that
//! torch's `_save` and `_legacy_save` produce (and what a `pickle_protocol=4/5` save adds), and
//! builds plain [`Value`]s. It calls nothing: `GLOBAL` becomes a name, `REDUCE` an opaque
//! [`Value::Object`] (except `collections.OrderedDict`, which must become a dict because items are
//! added to it afterwards), a persistent id a [`Value::Persistent`]; [`super::torch_file`] gives
//! them meaning.
//!
//! Every length is checked against the bytes that remain, nesting is capped at [`MAX_DEPTH`], and
//! the memory the values may take (copies made by `GET`/`PUT`/`DUP` included) at
//! [`MAX_VALUE_BYTES`], so a malicious file yields an error, never a panic, a stack overflow or a
//! huge allocation.

use std::collections::HashMap;

/// Deepest nesting of values accepted (a state dict needs about 6).
pub(crate) const MAX_DEPTH: usize = 64;

/// Memory the values of one pickle may take, copies included.
pub(crate) const MAX_VALUE_BYTES: usize = 512 << 20;

/// Longest text line (`GLOBAL` names, text opcodes).
const MAX_LINE: usize = 4096;

/// A value built by the machine.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `None`.
    None,
    /// `True` / `False`.
    Bool(bool),
    /// An integer that fits 64 bits.
    Int(i64),
    /// A wider integer, as its little-endian two's-complement bytes.
    BigInt(Vec<u8>),
    /// A float.
    Float(f64),
    /// A text string.
    Str(String),
    /// A byte string.
    Bytes(Vec<u8>),
    /// A tuple.
    Tuple(Vec<Value>),
    /// A list.
    List(Vec<Value>),
    /// A dict (also `collections.OrderedDict`), items in pickle order.
    Dict(Vec<(Value, Value)>),
    /// A module-level name (`GLOBAL module name`).
    Global {
        /// The module, e.g. `torch._utils`.
        module: String,
        /// The qualified name, e.g. `_rebuild_tensor_v2`.
        name: String,
    },
    /// The result of calling `callable` with `args` (`REDUCE`, `NEWOBJ`), not evaluated.
    Object {
        /// What would be called.
        callable: Box<Value>,
        /// Its arguments (a tuple).
        args: Box<Value>,
        /// The state set by `BUILD`, if any.
        state: Option<Box<Value>>,
    },
    /// A persistent id (`BINPERSID`), for the caller to resolve.
    Persistent(Box<Value>),
}

impl Value {
    /// A short description for error messages (`a dict`, `torch._utils._rebuild_tensor_v2(...)`).
    pub(crate) fn describe(&self) -> String {
        match self {
            Value::None => "None".into(),
            Value::Bool(b) => format!("the bool {b}"),
            Value::Int(i) => format!("the int {i}"),
            Value::BigInt(_) => "a big int".into(),
            Value::Float(f) => format!("the float {f}"),
            Value::Str(s) => format!("the string {s:?}"),
            Value::Bytes(b) => format!("{} bytes", b.len()),
            Value::Tuple(v) => format!("a tuple of {}", v.len()),
            Value::List(v) => format!("a list of {}", v.len()),
            Value::Dict(v) => format!("a dict of {} items", v.len()),
            Value::Global { module, name } => format!("the global {module}.{name}"),
            Value::Object { callable, .. } => match callable.as_ref() {
                Value::Global { module, name } => format!("an object {module}.{name}(...)"),
                other => format!("an object made by {}", other.describe()),
            },
            Value::Persistent(_) => "a persistent reference".into(),
        }
    }

    /// Nesting depth: 1 for a scalar.
    fn depth(&self) -> usize {
        1 + match self {
            Value::Tuple(v) | Value::List(v) => v.iter().map(Value::depth).max().unwrap_or(0),
            Value::Dict(v) => v
                .iter()
                .map(|(k, x)| k.depth().max(x.depth()))
                .max()
                .unwrap_or(0),
            Value::Object {
                callable,
                args,
                state,
            } => callable
                .depth()
                .max(args.depth())
                .max(state.as_ref().map_or(0, |s| s.depth())),
            Value::Persistent(v) => v.depth(),
            _ => 0,
        }
    }

    /// Approximate memory of the value, for the budget.
    fn weight(&self) -> usize {
        let node = std::mem::size_of::<Value>();
        node + match self {
            Value::BigInt(b) | Value::Bytes(b) => b.len(),
            Value::Str(s) => s.len(),
            Value::Global { module, name } => module.len() + name.len(),
            Value::Tuple(v) | Value::List(v) => v.iter().map(Value::weight).sum(),
            Value::Dict(v) => v.iter().map(|(k, x)| k.weight() + x.weight()).sum(),
            Value::Object {
                callable,
                args,
                state,
            } => callable.weight() + args.weight() + state.as_ref().map_or(0, |s| s.weight()),
            Value::Persistent(v) => v.weight(),
            _ => 0,
        }
    }
}

/// Why a pickle could not be read, with the byte offset of the opcode.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct PickleError {
    /// Offset of the failing opcode in the pickle.
    pub offset: usize,
    /// What went wrong.
    pub reason: String,
}

impl std::fmt::Display for PickleError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pickle byte {}: {}", self.offset, self.reason)
    }
}

/// Runs the pickle at the start of `data` to its `STOP`; returns the value and the bytes used
/// (the legacy format has several pickles and raw data back to back).
///
/// # Errors
/// [`PickleError`] for truncated data, unsupported opcodes, malformed stacks and exceeded limits.
pub(crate) fn parse(data: &[u8]) -> Result<(Value, usize), PickleError> {
    parse_within(data, MAX_VALUE_BYTES)
}

/// [`parse`] with `budget` bytes for the values instead of [`MAX_VALUE_BYTES`].
fn parse_within(data: &[u8], budget: usize) -> Result<(Value, usize), PickleError> {
    let mut m = Machine {
        data,
        pos: 0,
        op_start: 0,
        stack: Vec::new(),
        marks: Vec::new(),
        memo: HashMap::new(),
        budget,
    };
    let value = m.run()?;
    Ok((value, m.pos))
}

struct Machine<'a> {
    data: &'a [u8],
    pos: usize,
    op_start: usize,
    stack: Vec<Value>,
    /// Stack lengths at each `MARK`.
    marks: Vec<usize>,
    memo: HashMap<u32, Value>,
    /// Bytes of values that may still be created.
    budget: usize,
}

type R<T> = Result<T, PickleError>;

impl Machine<'_> {
    fn err<T>(&self, reason: impl Into<String>) -> R<T> {
        Err(PickleError {
            offset: self.op_start,
            reason: reason.into(),
        })
    }

    fn charge(&mut self, bytes: usize) -> R<()> {
        match self.budget.checked_sub(bytes) {
            Some(left) => {
                self.budget = left;
                Ok(())
            }
            None => self.err(
                "the values would take more memory than a state dict can need (a malicious or \
                 corrupt pickle)",
            ),
        }
    }

    /// Pushes a new value, charging its own node (children were charged when made).
    fn push(&mut self, v: Value) -> R<()> {
        self.charge(std::mem::size_of::<Value>())?;
        if v.depth() > MAX_DEPTH {
            return self.err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        self.stack.push(v);
        Ok(())
    }

    fn take(&mut self, n: usize) -> R<&[u8]> {
        let left = self.data.len() - self.pos;
        if n > left {
            return self.err(format!(
                "needs {n} bytes but only {left} remain (truncated data)"
            ));
        }
        let s = &self.data[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u8(&mut self) -> R<u8> {
        Ok(self.take(1)?[0])
    }

    fn le<const N: usize>(&mut self) -> R<[u8; N]> {
        let mut b = [0u8; N];
        b.copy_from_slice(self.take(N)?);
        Ok(b)
    }

    /// A length read as `u32`/`u64`, checked against the remaining bytes.
    fn len_u64(&mut self, n: u64) -> R<usize> {
        let left = self.data.len() - self.pos;
        match usize::try_from(n) {
            Ok(n) if n <= left => Ok(n),
            _ => self.err(format!(
                "declares {n} bytes but only {left} remain (truncated or corrupt)"
            )),
        }
    }

    fn line(&mut self) -> R<String> {
        let rest = &self.data[self.pos..];
        let Some(end) = rest.iter().take(MAX_LINE).position(|&b| b == b'\n') else {
            return self.err(format!(
                "a text argument without its newline within {MAX_LINE} bytes"
            ));
        };
        let text = match std::str::from_utf8(&rest[..end]) {
            Ok(t) => t.to_string(),
            Err(_) => return self.err("a text argument that is not UTF-8"),
        };
        self.pos += end + 1;
        Ok(text)
    }

    fn utf8(&mut self, n: usize) -> R<Value> {
        self.charge(n)?;
        let bytes = self.take(n)?;
        match std::str::from_utf8(bytes) {
            Ok(s) => Ok(Value::Str(s.to_string())),
            Err(_) => self.err("a string that is not UTF-8"),
        }
    }

    fn bytes(&mut self, n: usize) -> R<Value> {
        self.charge(n)?;
        Ok(Value::Bytes(self.take(n)?.to_vec()))
    }

    fn pop(&mut self) -> R<Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("pops an empty stack");
        }
        match self.stack.pop() {
            Some(v) => Ok(v),
            None => self.err("pops an empty stack"),
        }
    }

    fn pop_mark(&mut self) -> R<Vec<Value>> {
        let Some(mark) = self.marks.pop() else {
            return self.err("no MARK to pop to");
        };
        Ok(self.stack.split_off(mark.min(self.stack.len())))
    }

    fn top_mut(&mut self) -> R<&mut Value> {
        let floor = self.marks.last().copied().unwrap_or(0);
        if self.stack.len() <= floor {
            return self.err("needs an object on the stack");
        }
        let offset = self.op_start;
        self.stack.last_mut().ok_or(PickleError {
            offset,
            reason: "needs an object on the stack".into(),
        })
    }

    fn check_depth(&self, v: &Value) -> R<()> {
        // The container will hold `v` one level down.
        if v.depth() >= MAX_DEPTH {
            return self.err(format!("values nested deeper than {MAX_DEPTH}"));
        }
        Ok(())
    }

    fn memo_put(&mut self, key: u32) -> R<()> {
        let Some(weight) = self.stack.last().map(Value::weight) else {
            return self.err("PUT with an empty stack");
        };
        self.charge(weight)?;
        if let Some(top) = self.stack.last().cloned() {
            self.memo.insert(key, top);
        }
        Ok(())
    }

    fn memo_get(&mut self, key: u32) -> R<()> {
        let Some(weight) = self.memo.get(&key).map(Value::weight) else {
            return self.err(format!("GET of memo key {key}, which was never PUT"));
        };
        self.charge(weight)?;
        if let Some(v) = self.memo.get(&key).cloned() {
            self.stack.push(v);
        }
        Ok(())
    }

    fn int_from_le(&self, bytes: &[u8]) -> Value {
        if bytes.is_empty() {
            return Value::Int(0);
        }
        if bytes.len() <= 8 {
            let negative = bytes[bytes.len() - 1] & 0x80 != 0;
            let mut b = [if negative { 0xff } else { 0 }; 8];
            b[..bytes.len()].copy_from_slice(bytes);
            Value::Int(i64::from_le_bytes(b))
        } else {
            Value::BigInt(bytes.to_vec())
        }
    }

    fn text_int(&self, line: &str) -> R<Value> {
        match line {
            "00" => Ok(Value::Bool(false)),
            "01" => Ok(Value::Bool(true)),
            _ => match line.trim_end_matches('L').parse::<i64>() {
                Ok(i) => Ok(Value::Int(i)),
                Err(_) => self.err(format!("integer {line:?} is not a 64-bit integer")),
            },
        }
    }

    fn reduce(&mut self, callable: Value, args: Value) -> R<Value> {
        if let Value::Global { module, name } = &callable {
            if module == "collections" && name == "OrderedDict" {
                // Items come later with SETITEMS; only the empty call (what pickle emits) and a
                // list of pairs are meaningful.
                return match args {
                    Value::Tuple(a) if a.is_empty() => Ok(Value::Dict(Vec::new())),
                    Value::Tuple(mut a) if a.len() == 1 => match a.pop() {
                        Some(Value::List(pairs)) => {
                            let mut items = Vec::with_capacity(pairs.len());
                            for p in pairs {
                                match p {
                                    Value::Tuple(kv) if kv.len() == 2 => {
                                        let mut kv = kv.into_iter();
                                        if let (Some(k), Some(v)) = (kv.next(), kv.next()) {
                                            items.push((k, v));
                                        }
                                    }
                                    other => {
                                        return self.err(format!(
                                            "OrderedDict item {} is not a pair",
                                            other.describe()
                                        ))
                                    }
                                }
                            }
                            Ok(Value::Dict(items))
                        }
                        _ => self.err("OrderedDict called with an argument that is not a list"),
                    },
                    _ => self.err("OrderedDict called with unexpected arguments"),
                };
            }
        }
        Ok(Value::Object {
            callable: Box::new(callable),
            args: Box::new(args),
            state: None,
        })
    }

    fn run(&mut self) -> R<Value> {
        loop {
            self.op_start = self.pos;
            let op = match self.take(1) {
                Ok(b) => b[0],
                Err(_) => return self.err("the pickle ends before its STOP opcode (truncated)"),
            };
            match op {
                // PROTO
                0x80 => {
                    let v = self.u8()?;
                    if v > 5 {
                        return self.err(format!("pickle protocol {v} (at most 5 is known)"));
                    }
                }
                // FRAME: the whole pickle is in memory already.
                0x95 => {
                    self.le::<8>()?;
                }
                // STOP
                b'.' => {
                    return match self.stack.pop() {
                        Some(v) => Ok(v),
                        None => self.err("STOP with an empty stack"),
                    };
                }
                // MARK
                b'(' => self.marks.push(self.stack.len()),
                // POP
                b'0' => {
                    if self.marks.last() == Some(&self.stack.len()) {
                        self.marks.pop();
                    } else {
                        self.pop()?;
                    }
                }
                // POP_MARK
                b'1' => {
                    self.pop_mark()?;
                }
                // DUP
                b'2' => {
                    let Some(weight) = self.stack.last().map(Value::weight) else {
                        return self.err("DUP with an empty stack");
                    };
                    // Charged before the copy is made, so a refused copy allocates nothing.
                    self.charge(weight)?;
                    if let Some(top) = self.stack.last().cloned() {
                        self.stack.push(top);
                    }
                }
                b'N' => self.push(Value::None)?,
                0x88 => self.push(Value::Bool(true))?,
                0x89 => self.push(Value::Bool(false))?,
                // INT, LONG (text)
                b'I' | b'L' => {
                    let line = self.line()?;
                    let v = self.text_int(&line)?;
                    self.push(v)?;
                }
                // BININT
                b'J' => {
                    let v = i32::from_le_bytes(self.le::<4>()?);
                    self.push(Value::Int(v.into()))?;
                }
                // BININT1
                b'K' => {
                    let v = self.u8()?;
                    self.push(Value::Int(v.into()))?;
                }
                // BININT2
                b'M' => {
                    let v = u16::from_le_bytes(self.le::<2>()?);
                    self.push(Value::Int(v.into()))?;
                }
                // LONG1
                0x8a => {
                    let n = usize::from(self.u8()?);
                    self.charge(n)?;
                    let bytes = self.take(n)?.to_vec();
                    let v = self.int_from_le(&bytes);
                    self.push(v)?;
                }
                // LONG4
                0x8b => {
                    let n = i32::from_le_bytes(self.le::<4>()?);
                    if n < 0 {
                        return self.err("LONG4 with a negative length");
                    }
                    let n = self.len_u64(n as u64)?;
                    self.charge(n)?;
                    let bytes = self.take(n)?.to_vec();
                    let v = self.int_from_le(&bytes);
                    self.push(v)?;
                }
                // BINFLOAT (big-endian)
                b'G' => {
                    let v = f64::from_be_bytes(self.le::<8>()?);
                    self.push(Value::Float(v))?;
                }
                // FLOAT (text)
                b'F' => {
                    let line = self.line()?;
                    match line.parse::<f64>() {
                        Ok(v) => self.push(Value::Float(v))?,
                        Err(_) => return self.err(format!("float {line:?} cannot be read")),
                    }
                }
                // BINUNICODE, SHORT_BINUNICODE, BINUNICODE8
                b'X' => {
                    let n = u32::from_le_bytes(self.le::<4>()?);
                    let n = self.len_u64(n.into())?;
                    let v = self.utf8(n)?;
                    self.push(v)?;
                }
                0x8c => {
                    let n = usize::from(self.u8()?);
                    let v = self.utf8(n)?;
                    self.push(v)?;
                }
                0x8d => {
                    let n = u64::from_le_bytes(self.le::<8>()?);
                    let n = self.len_u64(n)?;
                    let v = self.utf8(n)?;
                    self.push(v)?;
                }
                // BINSTRING, SHORT_BINSTRING: Python 2 `str`, read as text when UTF-8.
                b'T' | b'U' => {
                    let n = if op == b'T' {
                        let n = i32::from_le_bytes(self.le::<4>()?);
                        if n < 0 {
                            return self.err("BINSTRING with a negative length");
                        }
                        self.len_u64(n as u64)?
                    } else {
                        usize::from(self.u8()?)
                    };
                    let v = self.bytes(n)?;
                    let v = match v {
                        Value::Bytes(b) => match String::from_utf8(b) {
                            Ok(s) => Value::Str(s),
                            Err(e) => Value::Bytes(e.into_bytes()),
                        },
                        other => other,
                    };
                    self.push(v)?;
                }
                // BINBYTES, SHORT_BINBYTES, BINBYTES8
                b'B' => {
                    let n = u32::from_le_bytes(self.le::<4>()?);
                    let n = self.len_u64(n.into())?;
                    let v = self.bytes(n)?;
                    self.push(v)?;
                }
                b'C' => {
                    let n = usize::from(self.u8()?);
                    let v = self.bytes(n)?;
                    self.push(v)?;
                }
                0x8e => {
                    let n = u64::from_le_bytes(self.le::<8>()?);
                    let n = self.len_u64(n)?;
                    let v = self.bytes(n)?;
                    self.push(v)?;
                }
                // Tuples
                b')' => self.push(Value::Tuple(Vec::new()))?,
                b't' => {
                    let items = self.pop_mark()?;
                    self.charge(items.len() * std::mem::size_of::<Value>())?;
                    self.push(Value::Tuple(items))?;
                }
                0x85..=0x87 => {
                    let n = usize::from(op - 0x84);
                    let mut items = Vec::with_capacity(n);
                    for _ in 0..n {
                        items.push(self.pop()?);
                    }
                    items.reverse();
                    self.push(Value::Tuple(items))?;
                }
                // Lists
                b']' => self.push(Value::List(Vec::new()))?,
                b'l' => {
                    let items = self.pop_mark()?;
                    self.push(Value::List(items))?;
                }
                b'a' | b'e' => {
                    let items = if op == b'a' {
                        vec![self.pop()?]
                    } else {
                        self.pop_mark()?
                    };
                    for item in &items {
                        self.check_depth(item)?;
                    }
                    match self.top_mut()? {
                        Value::List(list) => list.extend(items),
                        other => {
                            let what = other.describe();
                            return self.err(format!("APPEND to {what}, not a list"));
                        }
                    }
                }
                // Dicts
                b'}' => self.push(Value::Dict(Vec::new()))?,
                b'd' | b's' | b'u' => {
                    let flat = if op == b's' {
                        let v = self.pop()?;
                        let k = self.pop()?;
                        vec![k, v]
                    } else {
                        self.pop_mark()?
                    };
                    if flat.len() % 2 != 0 {
                        return self.err("an odd number of items for a dict");
                    }
                    for item in &flat {
                        self.check_depth(item)?;
                    }
                    let mut pairs = Vec::with_capacity(flat.len() / 2);
                    let mut it = flat.into_iter();
                    while let (Some(k), Some(v)) = (it.next(), it.next()) {
                        pairs.push((k, v));
                    }
                    if op == b'd' {
                        self.push(Value::Dict(pairs))?;
                    } else {
                        match self.top_mut()? {
                            Value::Dict(items) => items.extend(pairs),
                            other => {
                                let what = other.describe();
                                return self.err(format!("SETITEM on {what}, not a dict"));
                            }
                        }
                    }
                }
                // GLOBAL
                b'c' => {
                    let module = self.line()?;
                    let name = self.line()?;
                    self.charge(module.len() + name.len())?;
                    self.push(Value::Global { module, name })?;
                }
                // STACK_GLOBAL
                0x93 => {
                    let name = self.pop()?;
                    let module = self.pop()?;
                    match (module, name) {
                        (Value::Str(module), Value::Str(name)) => {
                            self.push(Value::Global { module, name })?
                        }
                        _ => return self.err("STACK_GLOBAL without two strings"),
                    }
                }
                // REDUCE, NEWOBJ
                b'R' | 0x81 => {
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.push(v)?;
                }
                // NEWOBJ_EX: keyword arguments are dropped (torch never uses them).
                0x92 => {
                    let _kwargs = self.pop()?;
                    let args = self.pop()?;
                    let callable = self.pop()?;
                    let v = self.reduce(callable, args)?;
                    self.push(v)?;
                }
                // BUILD
                b'b' => {
                    let state = self.pop()?;
                    self.check_depth(&state)?;
                    match self.top_mut()? {
                        // A dict's state is its attributes (a state dict's `_metadata`): not data.
                        Value::Dict(_) => {}
                        Value::Object { state: slot, .. } => *slot = Some(Box::new(state)),
                        other => {
                            let what = other.describe();
                            return self.err(format!("BUILD on {what}"));
                        }
                    }
                }
                // Memo
                b'q' => {
                    let k = self.u8()?;
                    self.memo_put(k.into())?;
                }
                b'r' => {
                    let k = u32::from_le_bytes(self.le::<4>()?);
                    self.memo_put(k)?;
                }
                0x94 => {
                    let k = u32::try_from(self.memo.len()).unwrap_or(u32::MAX);
                    self.memo_put(k)?;
                }
                b'p' => {
                    let line = self.line()?;
                    match line.parse::<u32>() {
                        Ok(k) => self.memo_put(k)?,
                        Err(_) => return self.err(format!("PUT key {line:?}")),
                    }
                }
                b'h' => {
                    let k = self.u8()?;
                    self.memo_get(k.into())?;
                }
                b'j' => {
                    let k = u32::from_le_bytes(self.le::<4>()?);
                    self.memo_get(k)?;
                }
                b'g' => {
                    let line = self.line()?;
                    match line.parse::<u32>() {
                        Ok(k) => self.memo_get(k)?,
                        Err(_) => return self.err(format!("GET key {line:?}")),
                    }
                }
                // BINPERSID, PERSID
                b'Q' => {
                    let pid = self.pop()?;
                    self.push(Value::Persistent(Box::new(pid)))?;
                }
                b'P' => {
                    let line = self.line()?;
                    self.charge(line.len())?;
                    self.push(Value::Persistent(Box::new(Value::Str(line))))?;
                }
                other => {
                    let shown = if other.is_ascii_graphic() {
                        format!(" ({:?})", other as char)
                    } else {
                        String::new()
                    };
                    return self.err(format!(
                        "opcode 0x{other:02x}{shown} is not one torch.save writes"
                    ));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn global(module: &str, name: &str) -> Vec<u8> {
        format!("c{module}\n{name}\n").into_bytes()
    }

    #[test]
    fn reads_an_ordered_dict_with_a_persistent_id_and_memo() {
        // OrderedDict({"w": REDUCE(g, (PERSID(("storage", 7)),))}) with a memo round trip.
        let mut p = vec![0x80, 2];
        p.extend(global("collections", "OrderedDict"));
        p.extend([b'q', 0, b')', b'R', b'(']);
        p.extend([0x8c, 1, b'w']);
        p.extend(global("torch._utils", "_rebuild_tensor_v2"));
        p.push(b'(');
        p.extend([b'X', 7, 0, 0, 0]);
        p.extend(b"storage");
        p.extend([b'q', 1, b'K', 7, b'h', 1, b't', b'Q', 0x85, b'R']);
        p.extend([b'u', b'.']);
        let (v, used) = parse(&p).expect("parses");
        assert_eq!(used, p.len());
        let Value::Dict(items) = v else {
            panic!("not a dict: {v:?}")
        };
        assert_eq!(items.len(), 1);
        assert_eq!(items[0].0, Value::Str("w".into()));
        let Value::Object { callable, args, .. } = &items[0].1 else {
            panic!("not an object")
        };
        assert_eq!(
            **callable,
            Value::Global {
                module: "torch._utils".into(),
                name: "_rebuild_tensor_v2".into()
            }
        );
        let Value::Tuple(a) = args.as_ref() else {
            panic!("args")
        };
        assert_eq!(
            a[0],
            Value::Persistent(Box::new(Value::Tuple(vec![
                Value::Str("storage".into()),
                Value::Int(7),
                Value::Str("storage".into())
            ])))
        );
    }

    #[test]
    fn integers_of_every_width() {
        let p = [
            0x80, 2, b'(', b'J', 0xfe, 0xff, 0xff, 0xff, b'M', 0x01, 0x02, 0x8a, 2, 0x00, 0x80,
            0x8a, 0, b't', b'.',
        ];
        let (v, _) = parse(&p).expect("parses");
        assert_eq!(
            v,
            Value::Tuple(vec![
                Value::Int(-2),
                Value::Int(0x0201),
                Value::Int(-32768),
                Value::Int(0)
            ])
        );
    }

    #[test]
    fn hostile_inputs_are_errors_not_panics() {
        // Truncated string length.
        let e = parse(&[0x80, 2, b'X', 0xff, 0xff, 0xff, 0x7f, b'a']).expect_err("long");
        assert!(e.reason.contains("remain"), "{e}");
        // No STOP.
        let e = parse(&[0x80, 2, b'N']).expect_err("no stop");
        assert!(e.reason.contains("STOP"), "{e}");
        // Popping an empty stack, unknown opcodes, GET of a missing key.
        assert!(parse(b"0.").is_err());
        assert!(parse(&[0xff]).is_err());
        assert!(parse(b"h\x05.").is_err());
        // Deep nesting: 100 000 TUPLE1 around None is refused, not a stack overflow.
        let mut p = vec![b'N'];
        p.extend(std::iter::repeat_n(0x85u8, 100_000));
        p.push(b'.');
        let e = parse(&p).expect_err("deep");
        assert!(e.reason.contains("nested"), "{e}");
        // Exponential copies through the memo are stopped by the budget.
        let mut p = vec![b'N'];
        for _ in 0..40 {
            p.extend([b'q', 0, b'h', 0, 0x86]);
        }
        p.push(b'.');
        let e = parse_within(&p, 1 << 20).expect_err("bomb");
        assert!(e.reason.contains("memory"), "{e}");
        // A wide copy bomb within the depth limit: a list of many items duplicated many times.
        let mut p = vec![b']'];
        for _ in 0..1_000 {
            p.extend([b'N', b'a']);
        }
        p.extend(std::iter::repeat_n(b'2', 1_000));
        p.push(b'.');
        let e = parse_within(&p, 1 << 20).expect_err("wide bomb");
        assert!(e.reason.contains("memory"), "{e}");
        // The same file within the real budget is fine: the limit is far above real pickles.
        assert!(parse(&p).is_ok());
    }
}
