//! The real ARC data in `../shared/data/arc` (or `$HRM_ARC_DIR`): every file parses, and the
//! arc1 protocol puts the right pairs in each split.

use std::path::PathBuf;

use hrm_data::arc::{build_arc, load_challenges, ArcOptions, ArcSets};
use hrm_data::Dataset;

fn arc_dir() -> PathBuf {
    std::env::var_os("HRM_ARC_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/arc")
        })
}

#[test]
fn arc1_protocol_on_the_shared_data() {
    let dir = arc_dir();
    assert!(
        dir.is_dir(),
        "ARC data not found at {} (set HRM_ARC_DIR)",
        dir.display()
    );
    let mut pairs = std::collections::BTreeMap::new();
    for subset in [
        "training",
        "evaluation",
        "concept",
        "training2",
        "evaluation2",
    ] {
        let tasks =
            load_challenges(&dir.join(format!("arc-agi_{subset}_challenges.json"))).unwrap();
        assert!(
            tasks
                .iter()
                .all(|t| t.test.iter().all(|p| p.output.is_some())),
            "{subset} has solutions"
        );
        let train: usize = tasks.iter().map(|t| t.train.len()).sum();
        let test: usize = tasks.iter().map(|t| t.test.len()).sum();
        pairs.insert(subset, (tasks.len(), train, test));
    }
    let out = tempfile::tempdir().unwrap();
    let opts = ArcOptions {
        sets: ArcSets::Arc1,
        arc_dir: dir,
        aug: 0,
        ..ArcOptions::new(out.path().join("arc1"))
    };
    let summary = build_arc(&opts).unwrap();
    let (tr, ev, co) = (pairs["training"], pairs["evaluation"], pairs["concept"]);
    // Training and ConceptARC tasks: all pairs to train; evaluation: demonstrations to train,
    // test pairs to test.
    assert_eq!(summary.examples("train"), tr.1 + tr.2 + co.1 + co.2 + ev.1);
    assert_eq!(summary.examples("test"), ev.2);
    assert_eq!(summary.num_puzzle_identifiers, 1 + tr.0 + ev.0 + co.0);
    let test = Dataset::open(&opts.out, "test").unwrap();
    assert_eq!(test.metadata().total_groups, ev.0);
    let train = Dataset::open(&opts.out, "train").unwrap();
    assert_eq!(train.metadata().total_groups, tr.0 + ev.0 + co.0);
}
