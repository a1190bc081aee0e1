//! ARC voting end to end on a dataset built from two small tasks: predicting every view's
//! label solves both tasks at one attempt; predicting the inputs solves none.

use std::collections::BTreeMap;

use hrm_data::arc::{build_arc, ArcOptions};
use hrm_data::Dataset;
use hrm_train::eval::arc::evaluate_arc;
use hrm_train::eval::SetOutputs;

const TASK_A: &str = r#"{"train": [{"input": [[1, 0], [0, 0]], "output": [[0, 1], [0, 0]]},
                                   {"input": [[0, 0], [2, 0]], "output": [[0, 0], [0, 2]]}],
                         "test": [{"input": [[3, 0], [0, 0]], "output": [[0, 3], [0, 0]]}]}"#;
const TASK_B: &str = r#"{"train": [{"input": [[5, 5, 0]], "output": [[5], [5], [0]]}],
                         "test": [{"input": [[0, 4, 4]], "output": [[0], [4], [4]]},
                                  {"input": [[6, 0, 0]], "output": [[6], [0], [0]]}]}"#;

fn outputs(ds: &Dataset, from_labels: bool) -> BTreeMap<String, SetOutputs> {
    let mut out = BTreeMap::new();
    for set in ds.sets() {
        let s = ds.metadata().seq_len;
        let n = set.num_examples();
        let mut predictions = Vec::with_capacity(n * s);
        for i in 0..n {
            let (inputs, labels) = set.example(i).expect("example");
            predictions.extend(if from_labels { labels } else { inputs });
        }
        out.insert(
            set.name().to_string(),
            SetOutputs {
                seq_len: s,
                predictions,
                q_halt_logits: vec![0.0; n],
                exact: vec![from_labels; n],
            },
        );
    }
    out
}

#[test]
fn perfect_views_solve_every_task_and_inputs_solve_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tasks = dir.path().join("tasks");
    std::fs::create_dir_all(&tasks).expect("mkdir");
    std::fs::write(tasks.join("aaaa0001.json"), TASK_A).expect("write");
    std::fs::write(tasks.join("bbbb0002.json"), TASK_B).expect("write");
    let out = dir.path().join("arc");
    let opts = ArcOptions {
        from: Some(tasks),
        aug: 4,
        seed: 1,
        ..ArcOptions::new(&out)
    };
    build_arc(&opts).expect("build");
    let test = Dataset::open(&out, "test").expect("test split");

    let good = evaluate_arc(&out, &test, &outputs(&test, true)).expect("vote");
    assert_eq!(good.tasks.len(), 2);
    assert_eq!(good.unmatched_views, 0);
    assert_eq!(good.pass_at_1, 1.0, "{good:#?}");
    let sub = good.submission();
    assert_eq!(
        sub["aaaa0001"][0]["attempt_1"],
        serde_json::json!([[0, 3], [0, 0]])
    );
    assert_eq!(
        sub["bbbb0002"][1]["attempt_1"],
        serde_json::json!([[6], [0], [0]])
    );
    // Several augmented views voted for each test input.
    assert!(good.tasks.iter().all(|t| t
        .tests
        .iter()
        .all(|r| r.views > 1 && r.top[0].votes == r.views)));

    let bad = evaluate_arc(&out, &test, &outputs(&test, false)).expect("vote");
    assert_eq!(bad.pass_at_2, 0.0);
}
