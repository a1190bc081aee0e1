//! Seeded sections of libtorch's process-wide random generator.
//!
//! Initialisation and the ACT exploration draws come from libtorch's default generator, of which
//! a process has one. Two trainings in one process (threads of a test binary, a tool training
//! several models) would otherwise interleave their draws, and a run would no longer draw what
//! it draws alone, which breaks resume equality and reproducibility. A seeded section holds a
//! process-wide lock from `manual_seed` to its last draw; code that draws without needing a
//! seed of its own (building a model to count or load into) holds the same lock through
//! [`exclusive`], so it cannot land in the middle of somebody else's seeded section.
//!
//! Sections nest within a thread: an inner section runs under the lock its thread already
//! holds (an inner [`with_seed`] reseeds), so library functions can take the lock themselves and
//! still be called from inside a seeded section.
//!
//! The lock covers only draws made inside these sections. Your own draws in another thread
//! (`Tensor::randn` and the like) go through the same generator: wrap them in [`exclusive`] while
//! a training runs in the process.

use std::cell::Cell;
use std::sync::{Mutex, MutexGuard};

static DEFAULT_GENERATOR: Mutex<()> = Mutex::new(());

thread_local! {
    /// Whether this thread holds [`DEFAULT_GENERATOR`] (in an outer section).
    static HOLDING: Cell<bool> = const { Cell::new(false) };
}

/// The lock, held by this thread until dropped; `None` inside an outer section of this thread,
/// which holds it already.
struct Held {
    guard: Option<MutexGuard<'static, ()>>,
}

impl Held {
    fn acquire() -> Self {
        if HOLDING.with(Cell::get) {
            return Held { guard: None };
        }
        // A panic in another section leaves nothing to repair: the next section reseeds.
        let guard = DEFAULT_GENERATOR
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        HOLDING.with(|h| h.set(true));
        Held { guard: Some(guard) }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if self.guard.is_some() {
            // Runs on unwinding too, so a panicking section does not leave the flag set.
            HOLDING.with(|h| h.set(false));
        }
    }
}

/// Runs `f` with libtorch's default generator seeded with `seed` and no other thread's section
/// running in this process.
pub fn with_seed<T>(seed: i64, f: impl FnOnce() -> T) -> T {
    let _held = Held::acquire();
    tch::manual_seed(seed);
    f()
}

/// Runs `f`, which draws from libtorch's default generator without a seed of its own, while no
/// other thread's section runs.
pub fn exclusive<T>(f: impl FnOnce() -> T) -> T {
    let _held = Held::acquire();
    f()
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::{Device, Kind, Tensor};

    fn draw() -> Vec<f32> {
        Vec::<f32>::try_from(Tensor::rand([4], (Kind::Float, Device::Cpu))).expect("f32")
    }

    #[test]
    fn sections_nest_and_an_inner_seed_reseeds() {
        let (outer, inner) = with_seed(3, || {
            let outer = draw();
            let inner = exclusive(|| with_seed(3, draw));
            (outer, inner)
        });
        assert_eq!(outer, inner);
        assert!(
            !HOLDING.with(Cell::get),
            "the flag is cleared after the outer section"
        );
    }

    #[test]
    fn unseeded_draws_in_other_threads_wait_for_a_seeded_section() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let alone = with_seed(7, || (0..50).flat_map(|_| draw()).collect::<Vec<_>>());
        let stop = AtomicBool::new(false);
        // Compared after the scope: a failed comparison inside it would leave the drawing
        // thread running and the scope waiting for it.
        let shared: Vec<Vec<f32>> = std::thread::scope(|s| {
            s.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    exclusive(draw);
                }
            });
            let runs = (0..20)
                .map(|_| with_seed(7, || (0..50).flat_map(|_| draw()).collect()))
                .collect();
            stop.store(true, Ordering::Relaxed);
            runs
        });
        for run in &shared {
            assert_eq!(run, &alone);
        }
    }

    #[test]
    fn a_panicking_section_releases_the_lock() {
        let result = std::panic::catch_unwind(|| with_seed(1, || panic!("inside")));
        assert!(result.is_err());
        assert!(!HOLDING.with(Cell::get));
        assert_eq!(with_seed(1, draw), with_seed(1, draw));
    }
}
