//! JSON in the reference's style: Python's `json.dump` separators (`", "` and `": "`), so the
//! files we write are byte-identical to the reference's for the same content.

use std::io::Write;

use serde::Serialize;

use crate::error::Result;

/// Serialises like Python's `json.dump` (`", "` and `": "` separators), as the reference writes.
struct PythonJsonFormatter;

impl serde_json::ser::Formatter for PythonJsonFormatter {
    fn begin_array_value<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_key<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        if first {
            Ok(())
        } else {
            writer.write_all(b", ")
        }
    }

    fn begin_object_value<W: ?Sized + Write>(&mut self, writer: &mut W) -> std::io::Result<()> {
        writer.write_all(b": ")
    }
}

/// `value` as JSON in the reference's style (`json.dump` separators).
///
/// # Errors
/// [`DataError::JsonOther`](crate::DataError::JsonOther) if `value` cannot be serialised.
pub fn to_python_json<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, PythonJsonFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}
