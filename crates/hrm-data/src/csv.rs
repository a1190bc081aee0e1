//! A small streaming CSV reader for the reference's puzzle CSVs (`source,question,answer,rating`).
//!
//! The reference reads them with Python's `csv.reader` in `build_sudoku_dataset.py` and
//! `build_maze_dataset.py` (`convert_subset`). This reader handles the same dialect: commas,
//! fields optionally in double quotes with `""` for a quote, `\n` or `\r\n` line ends, quoted
//! fields spanning lines. It streams, so multi-gigabyte files need no more memory than a row.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use crate::error::{DataError, Result};

/// The reference's column names.
pub(crate) const HEADER: [&str; 4] = ["source", "question", "answer", "rating"];

/// One record: its 1-based starting line and its fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// The four columns of one record, `[source, question, answer, rating]`.
///
/// # Errors
/// [`DataError`] naming `path` and `line` when the record has another number of fields.
pub(crate) fn columns(path: &Path, line: usize, fields: Vec<String>) -> Result<[String; 4]> {
    fields.try_into().map_err(|f: Vec<String>| {
        DataError::line(
            path,
            line,
            format!(
                "expected 4 fields ({}), found {}",
                HEADER.join(","),
                f.len()
            ),
        )
    })
}

/// Reads records one at a time.
pub(crate) struct CsvReader {
    path: PathBuf,
    reader: BufReader<File>,
    line: usize,
    buf: String,
}

impl CsvReader {
    pub fn open(path: &Path) -> Result<CsvReader> {
        let file = File::open(path).map_err(|e| DataError::io(path, e))?;
        Ok(CsvReader {
            path: path.to_path_buf(),
            reader: BufReader::with_capacity(1 << 20, file),
            line: 0,
            buf: String::new(),
        })
    }

    /// Reads and checks the header row (`source,question,answer,rating`).
    pub fn expect_header(&mut self) -> Result<()> {
        match self.next_record()? {
            Some(r) if r.fields.iter().map(|f| f.trim()).eq(HEADER) => Ok(()),
            Some(r) => Err(DataError::line(
                &self.path,
                r.line,
                format!(
                    "expected the header `{}`, found `{}`",
                    HEADER.join(","),
                    r.fields.join(",")
                ),
            )),
            None => Err(DataError::line(
                &self.path,
                1,
                "empty file: expected the header `source,question,answer,rating`",
            )),
        }
    }

    /// The next record, or `None` at the end. Blank lines are skipped.
    pub fn next_record(&mut self) -> Result<Option<Record>> {
        loop {
            self.buf.clear();
            let n = self
                .reader
                .read_line(&mut self.buf)
                .map_err(|e| DataError::io(&self.path, e))?;
            if n == 0 {
                return Ok(None);
            }
            self.line += 1;
            let start = self.line;
            if self.buf.trim_end_matches(['\r', '\n']).is_empty() {
                continue;
            }
            let mut fields = Vec::new();
            let mut field = String::new();
            let mut in_quotes = false;
            let mut text = std::mem::take(&mut self.buf);
            loop {
                let mut chars = text.chars().peekable();
                while let Some(c) = chars.next() {
                    if in_quotes {
                        if c == '"' {
                            if chars.peek() == Some(&'"') {
                                chars.next();
                                field.push('"');
                            } else {
                                in_quotes = false;
                            }
                        } else {
                            field.push(c);
                        }
                    } else {
                        match c {
                            ',' => fields.push(std::mem::take(&mut field)),
                            '"' if field.is_empty() => in_quotes = true,
                            '\r' | '\n' => {}
                            _ => field.push(c),
                        }
                    }
                }
                if !in_quotes {
                    break;
                }
                // A quoted field continues on the next line.
                text.clear();
                let n = self
                    .reader
                    .read_line(&mut text)
                    .map_err(|e| DataError::io(&self.path, e))?;
                if n == 0 {
                    return Err(DataError::line(
                        &self.path,
                        start,
                        "unterminated quoted field",
                    ));
                }
                self.line += 1;
            }
            fields.push(field);
            self.buf = text;
            return Ok(Some(Record {
                line: start,
                fields,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_reference_dialect() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, "source,question,answer,rating\r\nx,1.2,312,0\r\n\n\"q,\"\"u\"\"\",\"a\nb\",c,7\nlast,,,\n").unwrap();
        let mut r = CsvReader::open(&p).unwrap();
        r.expect_header().unwrap();
        assert_eq!(
            r.next_record().unwrap().unwrap(),
            Record {
                line: 2,
                fields: vec!["x".into(), "1.2".into(), "312".into(), "0".into()]
            }
        );
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!(rec.line, 4);
        assert_eq!(rec.fields, vec!["q,\"u\"", "a\nb", "c", "7"]);
        let rec = r.next_record().unwrap().unwrap();
        assert_eq!(rec.line, 6);
        assert_eq!(rec.fields, vec!["last", "", "", ""]);
        assert_eq!(r.next_record().unwrap(), None);
    }

    #[test]
    fn header_is_checked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.csv");
        std::fs::write(&p, "id,puzzle\n").unwrap();
        let err = CsvReader::open(&p).unwrap().expect_header().unwrap_err();
        assert!(matches!(err, DataError::Line { line: 1, .. }), "{err}");
    }
}
