//! Seeded sections of libtorch's process-wide random generator.
//!
//! Initialisation and the ACT exploration draws come from libtorch's default generator, of which
//! a process has one. Two trainings in one process (threads of a test binary, a tool training
//! several models) would otherwise interleave their draws, and a run would no longer draw what
//! it draws alone, which breaks resume equality and reproducibility. A seeded section holds a
//! process-wide lock from `manual_seed` to its last draw.

use std::sync::Mutex;

static DEFAULT_GENERATOR: Mutex<()> = Mutex::new(());

/// Runs `f` with libtorch's default generator seeded with `seed` and no other seeded section
/// running in this process.
pub fn with_seed<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    // A panic in another section leaves nothing to repair: the next section reseeds.
    let _guard = DEFAULT_GENERATOR
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tch::manual_seed(seed);
    f()
}
