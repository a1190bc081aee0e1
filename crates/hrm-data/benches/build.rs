//! Criterion benches of the dataset builders at small sizes, and of the training sampler.
//!
//! The full-size figures (1000 x 1000 Sudoku, ARC-AGI-1 with 1000 augmentations) are in the
//! crate's docs; these keep a quick, repeatable measure of each builder's throughput
//! (examples written per second) for spotting regressions. Run with
//! `cargo bench -p hrm-data --bench build`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use hrm_data::arc::{build_arc, ArcOptions};
use hrm_data::maze::{build_maze, MazeOptions};
use hrm_data::sudoku::{build_sudoku, Difficulty, SudokuOptions};
use hrm_data::{Dataset, TrainSampler};

fn sudoku(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_build_sudoku");
    g.sample_size(10);
    let cases = [
        ("4x4_hard/100x100", 4, Difficulty::Hard, 100, 100),
        ("9x9_medium/20x100", 9, Difficulty::Medium, 20, 100),
        ("9x9_extreme/10x10", 9, Difficulty::Extreme, 10, 10),
    ];
    for (name, size, difficulty, train, aug) in cases {
        g.throughput(Throughput::Elements((train * (1 + aug) + train) as u64));
        g.bench_function(name, |b| {
            b.iter_batched(
                || tempfile::tempdir().unwrap(),
                |dir| {
                    let opts = SudokuOptions {
                        train,
                        test: train,
                        aug,
                        difficulty,
                        size,
                        ..SudokuOptions::new(dir.path().join("s"))
                    };
                    black_box(build_sudoku(&opts).unwrap());
                    dir
                },
                BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

fn maze(c: &mut Criterion) {
    let mut g = c.benchmark_group("cpu_build_maze");
    g.sample_size(10);
    g.throughput(Throughput::Elements(20 * 8 + 20));
    g.bench_function("30x30_min110_aug/20", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let opts = MazeOptions {
                    train: 20,
                    test: 20,
                    aug: true,
                    ..MazeOptions::new(dir.path().join("m"))
                };
                black_box(build_maze(&opts).unwrap());
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn arc(c: &mut Criterion) {
    let tasks = tempfile::tempdir().unwrap();
    for k in 0..8u8 {
        let c = |d: u8| (k + d) % 10;
        let grid = |d: u8| {
            format!(
                "[[{}, {}, 0], [0, {}, {}], [{}, 0, {}]]",
                c(d),
                c(d + 1),
                c(d + 2),
                c(d + 3),
                c(d + 4),
                c(d + 5)
            )
        };
        let text = format!(
            r#"{{"train": [{{"input": {}, "output": {}}}, {{"input": {}, "output": {}}}], "test": [{{"input": {}, "output": {}}}]}}"#,
            grid(1),
            grid(2),
            grid(3),
            grid(4),
            grid(5),
            grid(6)
        );
        std::fs::write(tasks.path().join(format!("t{k}.json")), text).unwrap();
    }
    let mut g = c.benchmark_group("cpu_build_arc");
    g.sample_size(10);
    // 8 tasks x 101 puzzles x (2 train + 1 test) examples.
    g.throughput(Throughput::Elements(8 * 101 * 3));
    g.bench_function("8_tasks_aug100", |b| {
        b.iter_batched(
            || tempfile::tempdir().unwrap(),
            |dir| {
                let opts = ArcOptions {
                    from: Some(tasks.path().to_path_buf()),
                    aug: 100,
                    ..ArcOptions::new(dir.path().join("a"))
                };
                black_box(build_arc(&opts).unwrap());
                dir
            },
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn sampler(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let opts = SudokuOptions {
        train: 200,
        test: 10,
        aug: 50,
        difficulty: Difficulty::Medium,
        ..SudokuOptions::new(dir.path().join("s"))
    };
    build_sudoku(&opts).unwrap();
    let ds = Dataset::open(&opts.out, "train").unwrap();
    let mut g = c.benchmark_group("cpu_sampler_sudoku_9x9");
    g.throughput(Throughput::Elements(128));
    let mut s = TrainSampler::new(&ds, 128, 0).unwrap();
    g.bench_function("train_batch/128", |b| {
        b.iter(|| black_box(s.next().unwrap()))
    });
    g.finish();
}

criterion_group!(benches, sudoku, maze, arc, sampler);
criterion_main!(benches);
