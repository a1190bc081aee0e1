//! Checkpoints: everything needed to continue a run exactly where it stopped, verified on
//! every read.
//!
//! A checkpoint is a directory `checkpoints/step_<N>/` holding
//! - `model.safetensors`: every model tensor under the reference's names;
//! - `optimizer.safetensors`: AdamATan2 moments (`adam.exp_avg.<name>`,
//!   `adam.exp_avg_sq.<name>`), the EMA shadow (`ema.<name>`), and the ACT carry of the running
//!   batch (`carry.*`), so a resumed run continues every row's computation;
//! - `state.json`: the step, per-parameter optimiser step counts, the sampler position, seeds,
//!   the resolved config, and the size and SHA-256 of the two other files.
//!
//! It is written into a temporary directory, read back and verified (digests, safetensors
//! headers, every float tensor finite), and only then renamed into place; `checkpoints/latest`
//! (a one-line file for people and scripts) is replaced after it, and older checkpoints beyond
//! `keep_checkpoints` are deleted last. An interrupted save never leaves a partial checkpoint
//! under a real name and never removes a good one.
//!
//! Readers ([`load`], [`load_model`], [`newest_verified`]) check the digests, the headers and
//! that no model or optimiser tensor holds NaN or an infinity, and name the file (and tensor)
//! that fails. Checkpoints are found by scanning the `step_*` directories, so a deleted
//! `latest` hides nothing. [`newest_verified`] (what `--resume` uses) passes over checkpoints
//! that fail, renaming each to `corrupt-step_<N>` (out of the rotation, kept for inspection).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::{Device, Kind, Tensor};

use hrm_act::{ActBatch, ActCarry};
use hrm_core::linear_route::{self, LinearRoute, RouteKey};
use hrm_core::InnerCarry;

use hrm_core::weights::{read_safetensors_bytes, write_safetensors};
use hrm_data::SamplerState;

use crate::arch::ArchModel;
use crate::error::{Result, TrainError};
use crate::optim::{AdamAtan2, Ema};

/// Version of the checkpoint layout this build writes (2: `state.json` records digests).
pub const CHECKPOINT_FORMAT: u32 = 2;

/// The oldest layout this build reads (1: without digests, read unverified).
pub const OLDEST_CHECKPOINT_FORMAT: u32 = 1;

/// The weights file of a checkpoint.
pub const MODEL_FILE: &str = "model.safetensors";
/// The optimiser, EMA and carry file of a checkpoint.
pub const OPTIMIZER_FILE: &str = "optimizer.safetensors";
/// The small JSON file of a checkpoint.
pub const STATE_FILE: &str = "state.json";
/// The prefix given to a checkpoint directory that failed verification on resume.
pub const CORRUPT_PREFIX: &str = "corrupt-";

/// Size and SHA-256 of one checkpoint file, as `state.json` records them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileDigest {
    /// Size in bytes.
    pub bytes: u64,
    /// SHA-256 of the content, 64 lower-case hex digits.
    pub sha256: String,
}

impl FileDigest {
    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Self {
        FileDigest {
            bytes: bytes.len() as u64,
            sha256: hex(&Sha256::digest(bytes)),
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 15)] as char);
    }
    out
}

/// `state.json` of a checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// [`CHECKPOINT_FORMAT`] when written by this build.
    pub format_version: u32,
    /// Training steps taken.
    pub step: u64,
    /// Steps the schedule spans.
    pub total_steps: u64,
    /// Where the training sampler stands after the last consumed batch.
    pub sampler: SamplerState,
    /// AdamATan2 step count of each parameter.
    pub adam_steps: BTreeMap<String, u64>,
    /// The full config of the run, as TOML text.
    pub config_toml: String,
    /// The resolved model table (data sizes and dtype filled in).
    pub model: toml::Table,
    /// Seconds of training so far (for throughput over resumed runs).
    pub train_seconds: f64,
    /// Size and SHA-256 of every other file of the checkpoint, by file name (format 2 on;
    /// [`save`] fills it in).
    #[serde(default)]
    pub files: BTreeMap<String, FileDigest>,
    /// The CPU linear-layer routes this process had chosen ([`hrm_core::linear_route`]), so a
    /// resumed run pins them and computes what the uninterrupted one would have. Empty on CUDA
    /// and in checkpoints of older builds.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub linear_routes: Vec<PinnedRoute>,
}

/// One linear-layer route decision as `state.json` records it: the shape and the route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PinnedRoute {
    /// The shape and dtype of the calls it applies to.
    #[serde(flatten)]
    pub key: RouteKey,
    /// `blas` or `onednn`.
    pub route: LinearRoute,
}

impl PinnedRoute {
    /// Every route decision of this process so far.
    pub fn current() -> Vec<PinnedRoute> {
        linear_route::decisions()
            .into_iter()
            .map(|d| PinnedRoute {
                key: d.key,
                route: d.route,
            })
            .collect()
    }

    /// Pins every recorded route in this process ([`linear_route::pin`]).
    pub fn pin_all(routes: &[PinnedRoute]) {
        for r in routes {
            linear_route::pin(r.key, r.route);
        }
    }
}

/// A checkpoint in memory.
#[derive(Debug)]
pub struct Checkpoint {
    /// `state.json`.
    pub state: CheckpointState,
    /// `model.safetensors` content.
    pub model: Vec<(String, Tensor)>,
    /// `optimizer.safetensors` content.
    pub optimizer: Vec<(String, Tensor)>,
}

/// The directory name of the checkpoint at `step`.
pub fn step_dir_name(step: u64) -> String {
    format!("step_{step:08}")
}

/// The step of a checkpoint directory name (`step_00000012` -> 12).
pub fn parse_step_dir_name(name: &str) -> Option<u64> {
    let digits = name.strip_prefix("step_")?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError {
    let path = path.to_path_buf();
    move |source| TrainError::Io { path, source }
}

/// Writes `ckpt` under `root` (`<run>/checkpoints`) atomically, verifies what was written,
/// points `latest` at it, and only then deletes older checkpoints beyond `keep`. The digests
/// of `ckpt.state.files` are computed here. Returns the checkpoint directory.
///
/// # Errors
/// [`TrainError::NonFiniteTensor`] when a tensor of `ckpt` holds NaN or an infinity (nothing is
/// written); [`TrainError::Io`] / [`TrainError::Core`] when writing fails, and the verification
/// errors of [`load`] when the written files do not read back; in every case what existed
/// before is intact.
pub fn save(root: &Path, ckpt: &Checkpoint, keep: usize) -> Result<PathBuf> {
    std::fs::create_dir_all(root).map_err(io_error(root))?;
    remove_stale_temporaries(root);
    let name = step_dir_name(ckpt.state.step);
    let final_dir = root.join(&name);
    // A diverged state is never written: refuse before touching the disk.
    check_finite(&ckpt.model, &final_dir.join(MODEL_FILE))?;
    check_finite(&ckpt.optimizer, &final_dir.join(OPTIMIZER_FILE))?;
    let tmp = root.join(format!(".tmp-{name}-{}", std::process::id()));
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp).map_err(io_error(&tmp))?;
    }
    std::fs::create_dir_all(&tmp).map_err(io_error(&tmp))?;
    let written = (|| -> Result<()> {
        write_safetensors(&tmp.join(MODEL_FILE), &ckpt.model)?;
        write_safetensors(&tmp.join(OPTIMIZER_FILE), &ckpt.optimizer)?;
        let mut state = ckpt.state.clone();
        state.format_version = CHECKPOINT_FORMAT;
        state.files = BTreeMap::new();
        for file in [MODEL_FILE, OPTIMIZER_FILE] {
            let path = tmp.join(file);
            let bytes = std::fs::read(&path).map_err(io_error(&path))?;
            state.files.insert(file.to_string(), FileDigest::of(&bytes));
        }
        let state_path = tmp.join(STATE_FILE);
        let json = serde_json::to_vec_pretty(&state).map_err(|source| TrainError::Json {
            path: state_path.clone(),
            source,
        })?;
        std::fs::write(&state_path, json).map_err(io_error(&state_path))?;
        // Read everything back as a resume would before it gets a real name.
        load(&tmp)?;
        Ok(())
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_dir_all(&tmp);
        return Err(e);
    }
    if final_dir.exists() {
        // Same step saved again (e.g. right after a resume): swap, never delete first.
        let old = root.join(format!(".old-{name}-{}", std::process::id()));
        std::fs::rename(&final_dir, &old).map_err(io_error(&final_dir))?;
        std::fs::rename(&tmp, &final_dir).map_err(io_error(&final_dir))?;
        let _ = std::fs::remove_dir_all(&old);
    } else {
        std::fs::rename(&tmp, &final_dir).map_err(io_error(&final_dir))?;
    }
    let latest = root.join("latest");
    let latest_tmp = root.join(format!(".latest-{}", std::process::id()));
    std::fs::write(&latest_tmp, format!("{name}\n")).map_err(io_error(&latest_tmp))?;
    std::fs::rename(&latest_tmp, &latest).map_err(io_error(&latest))?;
    prune(root, keep, ckpt.state.step);
    Ok(final_dir)
}

/// Removes `.tmp-*` directories left by saves that were killed: they never hold a checkpoint
/// that took a real name.
fn remove_stale_temporaries(root: &Path) {
    let Ok(entries) = std::fs::read_dir(root) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        if entry.file_name().to_string_lossy().starts_with(".tmp-") {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Deletes the oldest `step_*` directories so that `keep` remain; never the one just written
/// (`current`). Only called once `current` is written and verified.
fn prune(root: &Path, keep: usize, current: u64) {
    let mut steps = list(root);
    steps.reverse(); // oldest first
    let excess = steps.len().saturating_sub(keep.max(1));
    for (step, dir) in steps.into_iter().take(excess) {
        if step != current {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Every `step_<N>` directory under `root`, newest first.
pub fn list(root: &Path) -> Vec<(u64, PathBuf)> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return Vec::new();
    };
    let mut steps: Vec<(u64, PathBuf)> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .filter_map(|e| {
            Some((
                parse_step_dir_name(&e.file_name().to_string_lossy())?,
                e.path(),
            ))
        })
        .collect();
    steps.sort_by_key(|(step, _)| std::cmp::Reverse(*step));
    steps
}

/// The newest checkpoint directory under `root`, found by scanning the `step_*` directories
/// (the `latest` file is written for people and scripts, and not needed to find it).
///
/// # Errors
/// None at present; a `Result` so that callers handle future checks.
pub fn latest(root: &Path) -> Result<Option<PathBuf>> {
    Ok(list(root).into_iter().next().map(|(_, dir)| dir))
}

/// A checkpoint that `--resume` passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedCheckpoint {
    /// The checkpoint directory as it was found.
    pub dir: PathBuf,
    /// Its step.
    pub step: u64,
    /// Where it was moved (`corrupt-step_<N>`), or `None` when the rename failed.
    pub moved_to: Option<PathBuf>,
    /// Why it failed verification.
    pub reason: String,
}

/// The newest checkpoint that verifies, and those newer than it that did not.
#[derive(Debug)]
pub struct Resumable {
    /// Its directory.
    pub dir: PathBuf,
    /// Its content, verified.
    pub checkpoint: Checkpoint,
    /// Newer checkpoints that failed verification, newest first; each was moved aside.
    pub skipped: Vec<SkippedCheckpoint>,
}

/// Whether a [`load`] error means the checkpoint is damaged (as opposed to a layout from
/// another build, which a fallback must not paper over).
pub fn is_damaged(e: &TrainError) -> bool {
    matches!(
        e,
        TrainError::CheckpointDigest { .. }
            | TrainError::CheckpointFile { .. }
            | TrainError::NonFiniteTensor { .. }
    )
}

/// Finds the newest checkpoint under `root` that verifies. Damaged ones newer than it are
/// renamed to `corrupt-step_<N>` (so that no rotation counts or deletes them) and listed.
///
/// # Errors
/// [`TrainError::NoVerifiedCheckpoint`] when checkpoints exist but none verifies;
/// [`TrainError::CheckpointFormat`] for a checkpoint of an unknown layout.
pub fn newest_verified(root: &Path) -> Result<Option<Resumable>> {
    let candidates = list(root);
    if candidates.is_empty() {
        return Ok(None);
    }
    let mut skipped = Vec::new();
    for (step, dir) in candidates {
        match load(&dir) {
            Ok(checkpoint) => {
                return Ok(Some(Resumable {
                    dir,
                    checkpoint,
                    skipped,
                }))
            }
            Err(e) if is_damaged(&e) => {
                let moved_to = move_aside(root, step, &dir);
                skipped.push(SkippedCheckpoint {
                    dir,
                    step,
                    moved_to,
                    reason: e.to_string(),
                });
            }
            Err(e) => return Err(e),
        }
    }
    Err(TrainError::NoVerifiedCheckpoint {
        root: root.to_path_buf(),
        skipped,
    })
}

/// Renames a damaged checkpoint to `corrupt-step_<N>` (`.2`, `.3`, ... when taken).
fn move_aside(root: &Path, step: u64, dir: &Path) -> Option<PathBuf> {
    let base = format!("{CORRUPT_PREFIX}{}", step_dir_name(step));
    let target = (1..1000)
        .map(|i| {
            if i == 1 {
                root.join(&base)
            } else {
                root.join(format!("{base}.{i}"))
            }
        })
        .find(|p| !p.exists())?;
    std::fs::rename(dir, &target).ok().map(|()| target)
}

/// Parses and checks the content of a `state.json` (`path` names it in errors): the JSON, the
/// format version, and in format 2 a well-formed digest of each checkpoint file.
///
/// # Errors
/// [`TrainError::CheckpointFile`] naming the problem, [`TrainError::CheckpointFormat`] for an
/// unknown version.
pub fn parse_state(bytes: &[u8], path: &Path) -> Result<CheckpointState> {
    let bad = |reason: String| TrainError::CheckpointFile {
        file: path.to_path_buf(),
        reason,
    };
    let state: CheckpointState =
        serde_json::from_slice(bytes).map_err(|e| bad(format!("not a checkpoint state: {e}")))?;
    if !(OLDEST_CHECKPOINT_FORMAT..=CHECKPOINT_FORMAT).contains(&state.format_version) {
        return Err(TrainError::CheckpointFormat {
            file: path.to_path_buf(),
            found: state.format_version,
            oldest: OLDEST_CHECKPOINT_FORMAT,
            newest: CHECKPOINT_FORMAT,
        });
    }
    for (name, digest) in &state.files {
        let plain = !name.is_empty()
            && name != STATE_FILE
            && name != "."
            && name != ".."
            && !name.contains(['/', '\\', '\0']);
        if !plain {
            return Err(bad(format!(
                "records a digest of `{name}`, which is not a file name of the checkpoint"
            )));
        }
        if digest.sha256.len() != 64
            || !digest
                .sha256
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            return Err(bad(format!(
                "the SHA-256 of `{name}` is not 64 lower-case hex digits: `{}`",
                digest.sha256
            )));
        }
    }
    if state.format_version >= 2 {
        for file in [MODEL_FILE, OPTIMIZER_FILE] {
            if !state.files.contains_key(file) {
                return Err(bad(format!("records no digest of {file}")));
            }
        }
    }
    Ok(state)
}

/// Reads `dir/name`, checks it against its digest in `state` (when recorded) and parses it as
/// safetensors.
fn read_verified(dir: &Path, name: &str, state: &CheckpointState) -> Result<Vec<(String, Tensor)>> {
    let path = dir.join(name);
    let bytes = std::fs::read(&path).map_err(|e| TrainError::CheckpointFile {
        file: path.clone(),
        reason: format!("cannot be read: {e}"),
    })?;
    if let Some(expected) = state.files.get(name) {
        verify_digest(&bytes, expected, &path)?;
    }
    read_tensors(&bytes, &path)
}

/// Checks `bytes` (the content of `path`) against `expected`.
///
/// # Errors
/// [`TrainError::CheckpointDigest`] naming the file, for a size or a SHA-256 that differs.
pub fn verify_digest(bytes: &[u8], expected: &FileDigest, path: &Path) -> Result<()> {
    if bytes.len() as u64 != expected.bytes {
        return Err(TrainError::CheckpointDigest {
            file: path.to_path_buf(),
            expected: format!("{} bytes", expected.bytes),
            reason: format!("the file has {} bytes", bytes.len()),
        });
    }
    let found = FileDigest::of(bytes);
    if found.sha256 != expected.sha256 {
        return Err(TrainError::CheckpointDigest {
            file: path.to_path_buf(),
            expected: format!("SHA-256 {}", expected.sha256),
            reason: format!("its SHA-256 is {}", found.sha256),
        });
    }
    Ok(())
}

/// Parses the safetensors content `bytes` of the checkpoint file `path` onto the CPU.
///
/// # Errors
/// [`TrainError::CheckpointFile`] naming the file for a bad header, a truncated body or an
/// unsupported dtype.
pub fn read_tensors(bytes: &[u8], path: &Path) -> Result<Vec<(String, Tensor)>> {
    read_safetensors_bytes(bytes, path).map_err(|e| TrainError::CheckpointFile {
        file: path.to_path_buf(),
        reason: match e {
            hrm_core::CoreError::WeightsFormat { message, .. } => message,
            other => other.to_string(),
        },
    })
}

/// Fails on the first floating-point tensor of `tensors` (from the file `file`) that holds a
/// NaN or an infinity.
///
/// # Errors
/// [`TrainError::NonFiniteTensor`] naming the file and the tensor.
pub fn check_finite(tensors: &[(String, Tensor)], file: &Path) -> Result<()> {
    for (name, t) in tensors {
        if !matches!(
            t.kind(),
            Kind::Float | Kind::Double | Kind::Half | Kind::BFloat16
        ) {
            continue;
        }
        let count = tch::no_grad(|| t.isfinite().logical_not().sum(Kind::Int64).int64_value(&[]));
        if count > 0 {
            return Err(TrainError::NonFiniteTensor {
                file: file.to_path_buf(),
                tensor: name.clone(),
                count,
            });
        }
    }
    Ok(())
}

/// Reads and verifies a checkpoint directory: `state.json`, the digests it records, the
/// safetensors headers, and that every float tensor is finite.
///
/// # Errors
/// [`TrainError::CheckpointFile`] naming the file that is missing, unreadable or malformed;
/// [`TrainError::CheckpointDigest`] naming the file whose size or SHA-256 differs;
/// [`TrainError::NonFiniteTensor`] naming the file and tensor holding NaN or an infinity;
/// [`TrainError::CheckpointFormat`] for a layout this build does not read.
pub fn load(dir: &Path) -> Result<Checkpoint> {
    let state_path = dir.join(STATE_FILE);
    let text = std::fs::read(&state_path).map_err(|e| TrainError::CheckpointFile {
        file: state_path.clone(),
        reason: format!("cannot be read: {e}"),
    })?;
    let state = parse_state(&text, &state_path)?;
    // Extra files a later build may record are verified too.
    for (name, digest) in &state.files {
        if name != MODEL_FILE && name != OPTIMIZER_FILE {
            let path = dir.join(name);
            let bytes = std::fs::read(&path).map_err(|e| TrainError::CheckpointFile {
                file: path.clone(),
                reason: format!("cannot be read: {e}"),
            })?;
            verify_digest(&bytes, digest, &path)?;
        }
    }
    let model = read_verified(dir, MODEL_FILE, &state)?;
    let optimizer = read_verified(dir, OPTIMIZER_FILE, &state)?;
    check_finite(&model, &dir.join(MODEL_FILE))?;
    check_finite(&optimizer, &dir.join(OPTIMIZER_FILE))?;
    Ok(Checkpoint {
        state,
        model,
        optimizer,
    })
}

/// The model keys whose values differ between a checkpoint's resolved model table and the
/// current one, as `key (checkpoint X, config Y)`.
pub fn model_differences(saved: &toml::Table, current: &toml::Table) -> Vec<String> {
    let mut keys: Vec<&String> = saved.keys().chain(current.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| saved.get(*k) != current.get(*k))
        .map(|k| {
            let show = |v: Option<&toml::Value>| v.map_or("absent".to_string(), |v| v.to_string());
            format!(
                "{k} (checkpoint {}, config {})",
                show(saved.get(k)),
                show(current.get(k))
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(step: u64) -> CheckpointState {
        CheckpointState {
            format_version: CHECKPOINT_FORMAT,
            step,
            total_steps: 10,
            sampler: SamplerState {
                seed: 0,
                global_batch_size: 2,
                epoch: 0,
                set_index: 0,
                position: 0,
            },
            adam_steps: BTreeMap::new(),
            config_toml: String::new(),
            model: toml::Table::new(),
            train_seconds: 0.0,
            files: BTreeMap::new(),
            linear_routes: Vec::new(),
        }
    }

    fn ckpt(step: u64, value: f32) -> Checkpoint {
        Checkpoint {
            state: state(step),
            model: vec![("w".into(), Tensor::from_slice(&[value, 1.0]))],
            optimizer: vec![("m".into(), Tensor::from_slice(&[0.5f32]))],
        }
    }

    #[test]
    fn save_load_prune_and_corruption() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("checkpoints");
        for step in 1..=3 {
            save(&root, &ckpt(step, step as f32), 2).expect("save");
        }
        let last = latest(&root).expect("latest").expect("some");
        assert!(last.ends_with(step_dir_name(3)));
        assert!(!root.join(step_dir_name(1)).exists(), "pruned");
        assert!(root.join(step_dir_name(2)).exists());
        let back = load(&last).expect("load");
        assert_eq!(back.state.step, 3);
        assert_eq!(back.state.format_version, CHECKPOINT_FORMAT);
        assert_eq!(back.model[0].1.double_value(&[0]), 3.0);
        assert_eq!(
            back.state.files.keys().collect::<Vec<_>>(),
            [MODEL_FILE, OPTIMIZER_FILE]
        );
        // A truncated weights file is a clear error naming it.
        let f = last.join(MODEL_FILE);
        let bytes = std::fs::read(&f).expect("read");
        std::fs::write(&f, &bytes[..bytes.len() - 3]).expect("truncate");
        let err = load(&last).expect_err("truncated");
        assert!(
            matches!(&err, TrainError::CheckpointDigest { file, .. } if file == &f),
            "{err}"
        );
        assert!(err.to_string().contains("bytes"), "{err}");
    }

    #[test]
    fn flipped_bytes_are_named_and_resume_falls_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("checkpoints");
        for step in [10, 20] {
            save(&root, &ckpt(step, step as f32), 3).expect("save");
        }
        // Flip bytes in the middle of the newest optimizer file: same size, other content.
        let newest = root.join(step_dir_name(20));
        let f = newest.join(OPTIMIZER_FILE);
        let mut bytes = std::fs::read(&f).expect("read");
        let n = bytes.len();
        for b in &mut bytes[n - 4..] {
            *b ^= 0xff;
        }
        std::fs::write(&f, &bytes).expect("write");
        let err = load(&newest).expect_err("flipped");
        assert!(
            matches!(&err, TrainError::CheckpointDigest { file, .. } if file == &f),
            "{err}"
        );
        assert!(err.to_string().contains("SHA-256"), "{err}");
        // The `latest` file is gone too: scanning still finds both.
        std::fs::remove_file(root.join("latest")).expect("rm latest");
        assert_eq!(latest(&root).expect("latest"), Some(newest.clone()));
        let found = newest_verified(&root).expect("scan").expect("one verifies");
        assert_eq!(found.dir, root.join(step_dir_name(10)));
        assert_eq!(found.checkpoint.state.step, 10);
        assert_eq!(found.skipped.len(), 1);
        assert_eq!(found.skipped[0].step, 20);
        let moved = root.join(format!("{CORRUPT_PREFIX}{}", step_dir_name(20)));
        assert_eq!(found.skipped[0].moved_to.as_deref(), Some(moved.as_path()));
        assert!(moved.is_dir() && !newest.exists());
        // Moved aside, it is out of the rotation: two newer saves with keep = 2 leave it.
        save(&root, &ckpt(30, 3.0), 2).expect("save 30");
        assert!(root.join(step_dir_name(10)).is_dir(), "kept: keep = 2");
        save(&root, &ckpt(40, 4.0), 2).expect("save 40");
        assert!(
            !root.join(step_dir_name(10)).exists(),
            "rotated once two newer exist"
        );
        assert!(moved.is_dir());
    }

    #[test]
    fn non_finite_tensors_are_refused_on_save_and_load() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("checkpoints");
        let err = save(&root, &ckpt(5, f32::NAN), 2).expect_err("NaN weights");
        assert!(
            matches!(&err, TrainError::NonFiniteTensor { tensor, count: 1, .. } if tensor == "w"),
            "{err}"
        );
        assert!(list(&root).is_empty(), "nothing written");
        // A file rewritten with NaN and a matching digest (as a diverged run would have
        // written it before this check existed) is refused on load, naming the tensor.
        let good = save(&root, &ckpt(6, 1.0), 2).expect("save");
        let f = good.join(MODEL_FILE);
        write_safetensors(
            &f,
            &[("w".into(), Tensor::from_slice(&[f32::INFINITY, f32::NAN]))],
        )
        .expect("rewrite");
        let bytes = std::fs::read(&f).expect("read");
        let state_path = good.join(STATE_FILE);
        let mut state =
            parse_state(&std::fs::read(&state_path).expect("state"), &state_path).expect("parse");
        state
            .files
            .insert(MODEL_FILE.into(), FileDigest::of(&bytes));
        std::fs::write(&state_path, serde_json::to_vec(&state).expect("json")).expect("write");
        let err = load(&good).expect_err("NaN");
        assert!(
            matches!(&err, TrainError::NonFiniteTensor { file, tensor, count: 2 } if file == &f && tensor == "w"),
            "{err}"
        );
    }

    #[test]
    fn state_json_checks() {
        let p = Path::new("state.json");
        let mut st = state(1);
        st.format_version = 9;
        let err = parse_state(&serde_json::to_vec(&st).expect("json"), p).expect_err("version");
        assert!(
            matches!(err, TrainError::CheckpointFormat { found: 9, .. }),
            "{err}"
        );
        st.format_version = CHECKPOINT_FORMAT;
        let err = parse_state(&serde_json::to_vec(&st).expect("json"), p).expect_err("no digests");
        assert!(err.to_string().contains(MODEL_FILE), "{err}");
        st.files.insert(
            "../x".into(),
            FileDigest {
                bytes: 1,
                sha256: "0".repeat(64),
            },
        );
        let err = parse_state(&serde_json::to_vec(&st).expect("json"), p).expect_err("path");
        assert!(err.to_string().contains("../x"), "{err}");
        // Format 1 (before digests) still reads.
        let mut old = state(1);
        old.format_version = 1;
        parse_state(&serde_json::to_vec(&old).expect("json"), p).expect("format 1");
        assert_eq!(parse_step_dir_name("step_00000012"), Some(12));
        assert_eq!(parse_step_dir_name("step_123456789"), Some(123_456_789));
        assert_eq!(parse_step_dir_name("step_"), None);
        assert_eq!(parse_step_dir_name("corrupt-step_00000012"), None);
        assert_eq!(parse_step_dir_name("step_+1"), None);
    }

    #[test]
    fn differences_list_the_keys() {
        let a: toml::Table = "hidden_size = 64\nH_cycles = 2".parse().expect("toml");
        let b: toml::Table = "hidden_size = 128\nH_cycles = 2".parse().expect("toml");
        let d = model_differences(&a, &b);
        assert_eq!(d.len(), 1);
        assert!(
            d[0].starts_with("hidden_size (checkpoint 64, config 128)"),
            "{d:?}"
        );
    }
}

// The tensors of `optimizer.safetensors`, by name. Only this file knows these names: the
// trainer hands over its optimiser, EMA and carry and gets them back.
const ADAM_EXP_AVG: &str = "adam.exp_avg.";
const ADAM_EXP_AVG_SQ: &str = "adam.exp_avg_sq.";
const EMA: &str = "ema.";
const CARRY: [&str; 7] = [
    "carry.z_h",
    "carry.z_l",
    "carry.steps",
    "carry.halted",
    "carry.inputs",
    "carry.labels",
    "carry.puzzle_identifiers",
];

/// The training state a checkpoint holds beside the weights: AdamATan2 moments, the EMA shadow
/// and the ACT carry of the running batch, as named tensors plus the per-parameter Adam step
/// counts (for `state.json`).
pub fn optimizer_tensors(
    adam: &AdamAtan2,
    ema: Option<&Ema>,
    carry: Option<&ActCarry>,
) -> (Vec<(String, Tensor)>, BTreeMap<String, u64>) {
    let mut tensors = Vec::new();
    let mut steps = BTreeMap::new();
    for (name, st) in adam.named_state() {
        tensors.push((format!("{ADAM_EXP_AVG}{name}"), st.exp_avg.shallow_clone()));
        tensors.push((
            format!("{ADAM_EXP_AVG_SQ}{name}"),
            st.exp_avg_sq.shallow_clone(),
        ));
        steps.insert(name.to_string(), st.step);
    }
    if let Some(ema) = ema {
        for (name, s) in ema.shadow() {
            tensors.push((format!("{EMA}{name}"), s.shallow_clone()));
        }
    }
    if let Some(c) = carry {
        let parts = [
            &c.inner.z_h,
            &c.inner.z_l,
            &c.steps,
            &c.halted,
            &c.current_data.inputs,
            &c.current_data.labels,
            &c.current_data.puzzle_identifiers,
        ];
        for (name, t) in CARRY.iter().zip(parts) {
            tensors.push(((*name).to_string(), t.shallow_clone()));
        }
    }
    (tensors, steps)
}

impl Checkpoint {
    /// The optimiser-side tensor `name`, on `device`.
    fn optimizer_tensor(&self, name: &str, device: Device) -> Result<Tensor> {
        self.optimizer
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.to_device(device))
            .ok_or_else(|| TrainError::Checkpoint(format!("optimizer.safetensors lacks `{name}`")))
    }

    /// Puts the stored AdamATan2 moments and step counts of every parameter of `adam` back.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] naming a missing moment; shape errors from the optimiser.
    pub fn restore_adam(&self, adam: &mut AdamAtan2, device: Device) -> Result<()> {
        let names: Vec<String> = adam.named_state().map(|(n, _)| n.to_string()).collect();
        for name in names {
            let m = self.optimizer_tensor(&format!("{ADAM_EXP_AVG}{name}"), device)?;
            let v = self.optimizer_tensor(&format!("{ADAM_EXP_AVG_SQ}{name}"), device)?;
            let steps = self.state.adam_steps.get(&name).copied().unwrap_or(0);
            adam.set_state(&name, &m, &v, steps)?;
        }
        Ok(())
    }

    /// The stored EMA shadow of the parameters `names`, or `None` when the run kept no EMA.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when some but not all shadows are stored.
    pub fn ema_shadow<'a>(
        &self,
        names: impl IntoIterator<Item = &'a str>,
        device: Device,
    ) -> Result<Option<Vec<(String, Tensor)>>> {
        if !self.optimizer.iter().any(|(n, _)| n.starts_with(EMA)) {
            return Ok(None);
        }
        names
            .into_iter()
            .map(|name| {
                Ok((
                    name.to_string(),
                    self.optimizer_tensor(&format!("{EMA}{name}"), device)?,
                ))
            })
            .collect::<Result<Vec<_>>>()
            .map(Some)
    }

    /// The stored ACT carry of the running batch, if the run had one.
    ///
    /// # Errors
    /// [`TrainError::Checkpoint`] when the carry is stored incompletely.
    pub fn carry(&self, device: Device) -> Result<Option<ActCarry>> {
        if !self.optimizer.iter().any(|(n, _)| n == CARRY[0]) {
            return Ok(None);
        }
        let get = |i: usize| self.optimizer_tensor(CARRY[i], device);
        Ok(Some(ActCarry {
            inner: InnerCarry {
                z_h: get(0)?,
                z_l: get(1)?,
            },
            steps: get(2)?.to_kind(Kind::Int),
            halted: get(3)?.to_kind(Kind::Bool),
            current_data: ActBatch {
                inputs: get(4)?,
                labels: get(5)?,
                puzzle_identifiers: get(6)?,
            },
        }))
    }
}

/// Overwrites the trainable parameters of `model` with `shadow` (an EMA's averaged weights);
/// buffers and the sparse puzzle table stay as they are, as in the reference's EMA evaluation.
///
/// # Errors
/// [`TrainError::Checkpoint`] when a parameter has no shadow; shape errors from the copy.
pub fn apply_shadow(model: &ArchModel, shadow: &[(String, Tensor)]) -> Result<()> {
    let by_name: BTreeMap<&str, &Tensor> = shadow.iter().map(|(n, t)| (n.as_str(), t)).collect();
    tch::no_grad(|| -> Result<()> {
        for (name, p) in model.params().trainable() {
            let s = by_name
                .get(name.as_str())
                .ok_or_else(|| TrainError::Checkpoint(format!("no EMA shadow of `{name}`")))?;
            p.shallow_clone().f_copy_(s)?;
        }
        Ok(())
    })
}

/// A trained model read back from a run directory or a checkpoint directory.
#[derive(Debug)]
pub struct LoadedModel {
    /// The run's config (with the resolved model table in `config.model`).
    pub config: crate::config::TrainConfig,
    /// The model, weights loaded.
    pub model: ArchModel,
    /// The training step of the checkpoint.
    pub step: u64,
    /// The checkpoint directory that was read.
    pub checkpoint: PathBuf,
    /// Whether the weights are the run's EMA average (`ema = true` runs) rather than the live
    /// weights of `model.safetensors`.
    pub ema: bool,
}

/// Loads the model of `path`: a run directory (its newest checkpoint) or a checkpoint
/// directory, onto `device`, verified as [`load`] verifies. Runs trained with an EMA get the
/// averaged weights. The CPU linear-layer routes the checkpoint records are pinned for this
/// process ([`PinnedRoute::pin_all`]).
///
/// # Errors
/// [`TrainError::Checkpoint`] when `path` holds no checkpoint; the errors of [`load`] naming
/// the file (and tensor) of a damaged or diverged one; model errors when the stored config
/// cannot build a model.
pub fn load_model(path: &Path, device: tch::Device) -> Result<LoadedModel> {
    let dir = if path.join(STATE_FILE).is_file() {
        path.to_path_buf()
    } else {
        let root = path.join("checkpoints");
        match latest(&root)? {
            Some(dir) => dir,
            None if root.is_dir() => {
                return Err(TrainError::Checkpoint(format!(
                    "the run directory {} holds no checkpoint (no step_* directory in {})",
                    path.display(),
                    root.display()
                )))
            }
            None => {
                return Err(TrainError::Checkpoint(format!(
                    "{} is neither a checkpoint directory (with {STATE_FILE}) nor a run directory (with checkpoints/)",
                    path.display()
                )))
            }
        }
    };
    let ckpt = load(&dir)?;
    // The training process's linear-layer routes: an evaluation with the training batch size
    // then computes what the training-time evaluation did.
    PinnedRoute::pin_all(&ckpt.state.linear_routes);
    let mut config = crate::config::TrainConfig::from_toml_str(&ckpt.state.config_toml, &[])
        .map_err(|e| {
            TrainError::Checkpoint(format!(
                "{}: the stored config cannot be read: {e}",
                dir.display()
            ))
        })?;
    config.model = ckpt.state.model.clone();
    let model = crate::arch::build_model(config.arch, &config.model, device)?;
    let names: Vec<String> = model
        .params()
        .trainable()
        .into_iter()
        .map(|(n, _)| n)
        .collect();
    let shadow = ckpt.ema_shadow(names.iter().map(String::as_str), device)?;
    model
        .params()
        .load_named(&dir.join("model.safetensors"), ckpt.model)?;
    let ema = shadow.is_some();
    if let Some(shadow) = shadow {
        apply_shadow(&model, &shadow)?;
    }
    Ok(LoadedModel {
        config,
        model,
        step: ckpt.state.step,
        checkpoint: dir,
        ema,
    })
}
