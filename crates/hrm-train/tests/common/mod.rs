//! Helpers shared by hrm-train's integration tests (`mod common;` in each).

use std::path::Path;

use hrm_train::checkpoint;

/// Two checkpoint directories hold the same step, sampler position and optimiser step counts,
/// and every tensor agrees to 1e-6.
pub fn assert_same_checkpoint(a: &Path, b: &Path) {
    let a = checkpoint::load(a).expect("load a");
    let b = checkpoint::load(b).expect("load b");
    assert_eq!(a.state.step, b.state.step);
    assert_eq!(a.state.sampler, b.state.sampler);
    assert_eq!(a.state.adam_steps, b.state.adam_steps);
    for (set_a, set_b) in [(&a.model, &b.model), (&a.optimizer, &b.optimizer)] {
        assert_eq!(set_a.len(), set_b.len());
        for ((na, ta), (nb, tb)) in set_a.iter().zip(set_b.iter()) {
            assert_eq!(na, nb);
            let diff = (ta.to_kind(tch::Kind::Double) - tb.to_kind(tch::Kind::Double))
                .abs()
                .max()
                .double_value(&[]);
            assert!(diff <= 1e-6, "{na} differs by {diff}");
        }
    }
}
