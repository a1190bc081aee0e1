//! Timing the linear-layer routes of a new shape leaves libtorch's global random stream alone,
//! so a run draws the same numbers whichever route its first calls chose and however long the
//! timing took.
//!
//! The check is alone in this test binary, hence in a process of its own: the unit tests draw
//! from the same global generator on parallel threads, and any draw of theirs between the two
//! seeds below would fail it.

use hrm_core::linear_route::linear;
use tch::{Device, Kind, Tensor};

#[test]
fn timing_a_new_shape_draws_no_random_numbers() {
    tch::manual_seed(9);
    let a = Tensor::randn([3], (Kind::Float, Device::Cpu));
    tch::manual_seed(9);
    // A shape no call has decided yet: the first call times the routes.
    let w = Tensor::full([6, 5], 0.1, (Kind::Float, Device::Cpu));
    let x = Tensor::full([2, 4, 5], 1.0, (Kind::Float, Device::Cpu));
    let y = tch::no_grad(|| linear(&x, &w, None, false));
    assert_eq!(y.size(), vec![2, 4, 6]);
    let b = Tensor::randn([3], (Kind::Float, Device::Cpu));
    assert!(a.equal(&b));
}
