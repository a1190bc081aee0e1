//! Loading and validating ARC tasks: a Kaggle-style `*_challenges.json` with its
//! `*_solutions.json` beside it, or a directory of one-JSON-per-task files.
//!
//! Mirrors `load_puzzles_arcagi` and `arc_grid_to_np` of the reference's
//! `dataset/build_arc_dataset.py` (the HRM repository read directories of task files, the TRM
//! successor reads the Kaggle files and fills test outputs from the solutions file, or a dummy
//! `[[0]]` when there is none). What differs: every problem is an error naming the file and the
//! task (malformed JSON with its line and column, a grid over 30x30, a colour outside 0-9,
//! ragged or empty rows, a missing or extra solution), where the reference stops on an assert.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::{Grid, ARC_MAX_GRID_SIZE};
use crate::error::{DataError, Result};

/// One input/output pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcPair {
    /// The input grid.
    pub input: Grid,
    /// The output grid; `None` for a test pair whose solution is not known.
    pub output: Option<Grid>,
}

/// One ARC task: demonstration pairs and test pairs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArcTask {
    /// The task id (the JSON key, or the file name without `.json`).
    pub id: String,
    /// Demonstration pairs (outputs always present).
    pub train: Vec<ArcPair>,
    /// Test pairs.
    pub test: Vec<ArcPair>,
    /// The file the task came from.
    pub source: PathBuf,
}

#[derive(Serialize)]
struct PairJson {
    input: Vec<Vec<u8>>,
    output: Vec<Vec<u8>>,
}

#[derive(Serialize)]
struct TaskJson {
    train: Vec<PairJson>,
    test: Vec<PairJson>,
}

impl ArcTask {
    /// The task in the ARC JSON layout, an unknown test output written as `[[0]]` (as the
    /// reference's `test_puzzles.json` does).
    pub(crate) fn to_json_value(&self) -> impl Serialize {
        let pair = |p: &ArcPair| PairJson {
            input: p.input.to_rows(),
            output: p
                .output
                .as_ref()
                .map(Grid::to_rows)
                .unwrap_or_else(|| vec![vec![0]]),
        };
        TaskJson {
            train: self.train.iter().map(pair).collect(),
            test: self.test.iter().map(pair).collect(),
        }
    }
}

/// Checks and converts one JSON grid; `what` says where it is (e.g. `train pair 2 input`).
fn parse_grid(path: &Path, task: &str, what: &str, v: &Value) -> Result<Grid> {
    let err = |reason: String| DataError::task(path, task, format!("{what}: {reason}"));
    let rows = v
        .as_array()
        .ok_or_else(|| err(format!("expected a list of rows, found {}", kind(v))))?;
    if rows.is_empty() {
        return Err(err("the grid has no rows".into()));
    }
    let mut cells = Vec::new();
    let mut width = None;
    for (r, row) in rows.iter().enumerate() {
        let row = row.as_array().ok_or_else(|| {
            err(format!(
                "row {} is {}, expected a list of colours",
                r + 1,
                kind(row)
            ))
        })?;
        match width {
            None if row.is_empty() => return Err(err("row 1 is empty".into())),
            None => width = Some(row.len()),
            Some(w) if w != row.len() => {
                return Err(err(format!(
                    "ragged rows: row {} has {} cells, row 1 has {w}",
                    r + 1,
                    row.len()
                )));
            }
            Some(_) => {}
        }
        for (c, cell) in row.iter().enumerate() {
            match cell.as_i64() {
                Some(colour @ 0..=9) => cells.push(colour as u8),
                Some(colour) => {
                    return Err(err(format!(
                        "colour {colour} at row {}, column {} is outside 0-9",
                        r + 1,
                        c + 1
                    )));
                }
                None => {
                    return Err(err(format!(
                        "cell at row {}, column {} is {}, expected a colour 0-9",
                        r + 1,
                        c + 1,
                        kind(cell)
                    )))
                }
            }
        }
    }
    let (h, w) = (rows.len(), width.unwrap_or(0));
    if h > ARC_MAX_GRID_SIZE || w > ARC_MAX_GRID_SIZE {
        return Err(err(format!(
            "grid is {h}x{w}, larger than {ARC_MAX_GRID_SIZE}x{ARC_MAX_GRID_SIZE}"
        )));
    }
    Ok(Grid::from_parts(h, w, cells))
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Converts one task object (`{"train": [...], "test": [...]}`).
fn task_from_value(path: &Path, id: &str, v: &Value) -> Result<ArcTask> {
    let err = |reason: String| DataError::task(path, id, reason);
    let obj = v.as_object().ok_or_else(|| {
        err(format!(
            "expected an object with `train` and `test`, found {}",
            kind(v)
        ))
    })?;
    let pairs = |key: &str, need_output: bool| -> Result<Vec<ArcPair>> {
        let list = obj
            .get(key)
            .ok_or_else(|| err(format!("no `{key}` list")))?;
        let list = list.as_array().ok_or_else(|| {
            err(format!(
                "`{key}` is {}, expected a list of pairs",
                kind(list)
            ))
        })?;
        list.iter()
            .enumerate()
            .map(|(i, p)| {
                let what = format!("{key} pair {}", i + 1);
                let input = p
                    .get("input")
                    .ok_or_else(|| err(format!("{what} has no `input`")))?;
                let input = parse_grid(path, id, &format!("{what} input"), input)?;
                let output = match p.get("output") {
                    Some(o) => Some(parse_grid(path, id, &format!("{what} output"), o)?),
                    None if need_output => return Err(err(format!("{what} has no `output`"))),
                    None => None,
                };
                Ok(ArcPair { input, output })
            })
            .collect()
    };
    let train = pairs("train", true)?;
    let test = pairs("test", false)?;
    let id = obj
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or(id)
        .to_string();
    Ok(ArcTask {
        id,
        train,
        test,
        source: path.to_path_buf(),
    })
}

fn read_json(path: &Path) -> Result<Value> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::json(path, e))
}

/// Parses one task file's text; `id` is its name, `path` is only used in errors.
///
/// # Errors
/// [`DataError::Json`] for malformed JSON; [`DataError::Task`] naming the file and task for a
/// structure or grid problem.
pub fn parse_task(id: &str, text: &str, path: &Path) -> Result<ArcTask> {
    let v: Value = serde_json::from_str(text).map_err(|e| DataError::json(path, e))?;
    task_from_value(path, id, &v)
}

/// Loads a Kaggle-style combined challenges file (`{task_id: task}`), filling test outputs
/// from `*_solutions.json` beside it when that exists (`{task_id: [grid, ...]}`). Tasks come
/// sorted by id.
///
/// # Errors
/// [`DataError::Json`], [`DataError::Task`] (including a task missing from the solutions file
/// or a solution count that differs from the test pairs), [`DataError::Io`].
pub fn load_challenges(challenges: &Path) -> Result<Vec<ArcTask>> {
    let v = read_json(challenges)?;
    let obj = v.as_object().ok_or_else(|| {
        DataError::task(
            challenges,
            "*",
            format!("expected an object of tasks, found {}", kind(&v)),
        )
    })?;
    let mut tasks = obj
        .iter()
        .map(|(id, t)| task_from_value(challenges, id, t))
        .collect::<Result<Vec<_>>>()?;
    let name = challenges
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if let Some(stem) = name.strip_suffix("_challenges.json") {
        let sol_path = challenges.with_file_name(format!("{stem}_solutions.json"));
        if sol_path.is_file() {
            let sols = read_json(&sol_path)?;
            let sols = sols.as_object().ok_or_else(|| {
                DataError::task(
                    &sol_path,
                    "*",
                    format!("expected an object of solutions, found {}", kind(&sols)),
                )
            })?;
            for task in &mut tasks {
                let list = sols.get(&task.id).ok_or_else(|| {
                    DataError::task(&sol_path, &task.id, "no solutions for this task")
                })?;
                let list = list.as_array().ok_or_else(|| {
                    DataError::task(
                        &sol_path,
                        &task.id,
                        format!("solutions are {}, expected a list of grids", kind(list)),
                    )
                })?;
                if list.len() != task.test.len() {
                    return Err(DataError::task(
                        &sol_path,
                        &task.id,
                        format!(
                            "{} solutions for {} test inputs",
                            list.len(),
                            task.test.len()
                        ),
                    ));
                }
                for (i, (pair, g)) in task.test.iter_mut().zip(list).enumerate() {
                    pair.output = Some(parse_grid(
                        &sol_path,
                        &task.id,
                        &format!("solution {}", i + 1),
                        g,
                    )?);
                }
            }
        }
    }
    Ok(tasks)
}

/// Loads every `*.json` task file in `dir` (not recursive), the file name without `.json` as
/// the task id (or the file's `name` field). Tasks come sorted by id.
///
/// # Errors
/// [`DataError::Io`] if the directory cannot be listed; per file as [`parse_task`].
pub fn load_task_dir(dir: &Path) -> Result<Vec<ArcTask>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| DataError::io(dir, e))?
        .map(|e| e.map(|e| e.path()).map_err(|e| DataError::io(dir, e)))
        .collect::<Result<Vec<_>>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "json") && p.is_file());
    files.sort();
    let mut tasks = Vec::with_capacity(files.len());
    for f in files {
        let id = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let text = std::fs::read_to_string(&f).map_err(|e| DataError::io(&f, e))?;
        tasks.push(parse_task(&id, &text, &f)?);
    }
    tasks.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(tasks)
}

/// Loads tasks from `path`: a directory of task files, a combined `*_challenges.json` (with
/// its solutions), or a single task file.
///
/// # Errors
/// As [`load_task_dir`] and [`load_challenges`]; [`DataError::Task`] for duplicate task ids.
pub fn load_tasks(path: &Path) -> Result<Vec<ArcTask>> {
    let tasks = if path.is_dir() {
        load_task_dir(path)?
    } else {
        let v = read_json(path)?;
        // A single task has `train`; a combined file maps ids to tasks.
        if v.get("train").is_some() {
            let id = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            vec![task_from_value(path, &id, &v)?]
        } else {
            load_challenges(path)?
        }
    };
    check_unique_ids(&tasks)?;
    Ok(tasks)
}

pub(crate) fn check_unique_ids<'a>(tasks: impl IntoIterator<Item = &'a ArcTask>) -> Result<()> {
    let mut seen: BTreeMap<&str, &Path> = BTreeMap::new();
    for t in tasks {
        if let Some(first) = seen.insert(&t.id, &t.source) {
            return Err(DataError::task(
                &t.source,
                &t.id,
                format!("task id also used in {}", first.display()),
            ));
        }
    }
    Ok(())
}

/// Reads a dataset's `test_puzzles.json`: the test tasks with their solutions, by id.
///
/// # Errors
/// [`DataError::Io`], [`DataError::Json`], [`DataError::Task`] naming the file.
pub fn read_test_puzzles(dataset_dir: &Path) -> Result<BTreeMap<String, ArcTask>> {
    let path = dataset_dir.join("test_puzzles.json");
    let v = read_json(&path)?;
    let obj = v.as_object().ok_or_else(|| {
        DataError::task(
            &path,
            "*",
            format!("expected an object of tasks, found {}", kind(&v)),
        )
    })?;
    obj.iter()
        .map(|(id, t)| Ok((id.clone(), task_from_value(&path, id, t)?)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TASK: &str =
        r#"{"train": [{"input": [[0, 1], [2, 3]], "output": [[3]]}], "test": [{"input": [[5]]}]}"#;

    fn task_error(text: &str) -> String {
        match parse_task("t1", text, Path::new("dir/t1.json")) {
            Err(e @ DataError::Task { .. }) => {
                let s = e.to_string();
                assert!(s.starts_with("dir/t1.json: task `t1`: "), "{s}");
                s
            }
            other => panic!("expected a Task error, got {other:?}"),
        }
    }

    #[test]
    fn parses_a_task() {
        let t = parse_task("t1", TASK, Path::new("t1.json")).unwrap();
        assert_eq!(t.train.len(), 1);
        assert_eq!(t.train[0].input.to_rows(), vec![vec![0, 1], vec![2, 3]]);
        assert_eq!(t.test[0].output, None);
    }

    #[test]
    fn bad_tasks_name_file_task_and_place() {
        let big = format!(
            r#"{{"train": [{{"input": [{}], "output": [[1]]}}], "test": []}}"#,
            vec!["[0]"; 31].join(",")
        );
        assert!(task_error(&big).contains("train pair 1 input: grid is 31x1, larger than 30x30"));
        let colour = r#"{"train": [{"input": [[0, 10]], "output": [[1]]}], "test": []}"#;
        assert!(task_error(colour).contains("colour 10 at row 1, column 2 is outside 0-9"));
        let negative = r#"{"train": [{"input": [[0]], "output": [[-1]]}], "test": []}"#;
        assert!(task_error(negative).contains("train pair 1 output: colour -1"));
        let ragged = r#"{"train": [], "test": [{"input": [[0, 1], [2]]}]}"#;
        assert!(task_error(ragged)
            .contains("test pair 1 input: ragged rows: row 2 has 1 cells, row 1 has 2"));
        let no_output = r#"{"train": [{"input": [[0]]}], "test": []}"#;
        assert!(task_error(no_output).contains("train pair 1 has no `output`"));
        let float = r#"{"train": [{"input": [[0.5]], "output": [[1]]}], "test": []}"#;
        assert!(task_error(float).contains("expected a colour 0-9"));
        let empty = r#"{"train": [{"input": [], "output": [[1]]}], "test": []}"#;
        assert!(task_error(empty).contains("no rows"));
        match parse_task("t1", "{\"train\": [", Path::new("dir/t1.json")) {
            Err(DataError::Json { path, .. }) => assert!(path.ends_with("t1.json")),
            other => panic!("expected a Json error, got {other:?}"),
        }
    }

    #[test]
    fn combined_files_with_solutions() {
        let dir = tempfile::tempdir().unwrap();
        let ch = dir.path().join("x_evaluation_challenges.json");
        std::fs::write(&ch, format!(r#"{{"b": {TASK}, "a": {TASK}}}"#)).unwrap();
        // No solutions file: outputs unknown.
        let tasks = load_tasks(&ch).unwrap();
        assert_eq!(
            tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            vec!["a", "b"]
        );
        assert!(tasks[0].test[0].output.is_none());
        let sol = dir.path().join("x_evaluation_solutions.json");
        std::fs::write(&sol, r#"{"a": [[[7]]], "b": [[[8, 8]]]}"#).unwrap();
        let tasks = load_tasks(&ch).unwrap();
        assert_eq!(
            tasks[1].test[0].output.as_ref().unwrap().to_rows(),
            vec![vec![8, 8]]
        );
        std::fs::write(&sol, r#"{"a": [[[7]]]}"#).unwrap();
        let err = load_tasks(&ch).unwrap_err();
        assert!(
            err.to_string()
                .contains("x_evaluation_solutions.json: task `b`: no solutions"),
            "{err}"
        );
        std::fs::write(&sol, r#"{"a": [[[7]]], "b": [[[11]]]}"#).unwrap();
        let err = load_tasks(&ch).unwrap_err();
        assert!(
            err.to_string().contains("task `b`: solution 1: colour 11"),
            "{err}"
        );
    }

    #[test]
    fn task_directories() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("z9.json"), TASK).unwrap();
        std::fs::write(dir.path().join("a1.json"), TASK).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a task").unwrap();
        let tasks = load_tasks(dir.path()).unwrap();
        assert_eq!(
            tasks.iter().map(|t| t.id.as_str()).collect::<Vec<_>>(),
            vec!["a1", "z9"]
        );
        std::fs::write(dir.path().join("m5.json"), "{ not json").unwrap();
        let err = load_tasks(dir.path()).unwrap_err();
        assert!(
            matches!(&err, DataError::Json { path, .. } if path.ends_with("m5.json")),
            "{err}"
        );
    }
}
