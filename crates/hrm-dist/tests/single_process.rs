//! One process: the world-size-1 fast path (no store, no sockets, results unchanged) and the
//! argument checks every group applies before any communication.

use std::time::Duration;

use hrm_dist::{gloo_available, Backend, DistEnv, DistError, ProcessGroup};
use tch::{Device, Kind, Tensor};

const TIMEOUT: Duration = Duration::from_secs(5);

fn single() -> ProcessGroup {
    // Port 1 would need root to serve; one process never opens it.
    ProcessGroup::new(0, 1, "127.0.0.1", 1, Device::Cpu, TIMEOUT).expect("a group of one")
}

#[test]
fn one_process_communicates_nothing_and_changes_nothing() {
    let group = single();
    assert_eq!(
        (
            group.rank(),
            group.world_size(),
            group.local_rank(),
            group.backend()
        ),
        (0, 1, 0, Backend::Single)
    );
    assert!(group.is_main());
    assert_eq!(group.timeout(), TIMEOUT);

    let mut t = Tensor::from_slice(&[1.5f32, -2.0]);
    group.all_reduce(&mut t).expect("all_reduce");
    assert_eq!(Vec::<f32>::try_from(&t).expect("values"), [1.5, -2.0]);

    let mut many = [Tensor::from_slice(&[3i64]), Tensor::from_slice(&[4i64, 5])];
    group.all_reduce_many(&mut many).expect("all_reduce_many");
    assert_eq!(Vec::<i64>::try_from(&many[1]).expect("values"), [4, 5]);

    group.broadcast(&mut t, 0).expect("broadcast");
    assert_eq!(Vec::<f32>::try_from(&t).expect("values"), [1.5, -2.0]);
    group.barrier().expect("barrier");
}

#[test]
fn one_process_all_gather_is_a_fresh_copy_with_a_rank_axis() {
    let group = single();
    let mine = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0]).view([2, 3]);
    let gathered = group.all_gather(&mine.tr()).expect("all_gather");
    // [world_size, 3, 2]
    assert_eq!(gathered.size(), [1, 3, 2]);
    assert_eq!(
        Vec::<f32>::try_from(&gathered.flatten(0, -1)).expect("values"),
        [1.0, 4.0, 2.0, 5.0, 3.0, 6.0]
    );
    // A copy, not a view: writing to it leaves the input alone.
    let _ = gathered.get(0).fill_(0.0);
    assert_eq!(mine.double_value(&[0, 0]), 1.0);
}

#[test]
fn single_is_the_same_as_a_world_of_one() {
    let group = ProcessGroup::single(Device::Cpu);
    assert_eq!(
        (group.rank(), group.world_size(), group.backend()),
        (0, 1, Backend::Single)
    );
    let from_env = ProcessGroup::from_dist_env(&DistEnv::single(), Device::Cpu, TIMEOUT)
        .expect("one process from the environment contract");
    assert_eq!(from_env.world_size(), 1);
}

#[test]
fn bad_arguments_are_named() {
    let cpu = Device::Cpu;
    assert!(matches!(
        ProcessGroup::new(0, 0, "127.0.0.1", 29500, cpu, TIMEOUT),
        Err(DistError::ZeroWorldSize)
    ));
    assert!(matches!(
        ProcessGroup::new(2, 2, "127.0.0.1", 29500, cpu, TIMEOUT),
        Err(DistError::RankOutOfRange {
            rank: 2,
            world_size: 2
        })
    ));
    assert!(matches!(
        ProcessGroup::new(0, 2, "127.0.0.1", 0, cpu, TIMEOUT),
        Err(DistError::ZeroPort { world_size: 2 })
    ));
    assert!(matches!(
        ProcessGroup::new(0, 2, "127.0.0.1", 29500, Device::Mps, TIMEOUT),
        Err(DistError::UnsupportedDevice {
            device: Device::Mps
        })
    ));

    let group = single();
    let mut t = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
    assert!(matches!(
        group.broadcast(&mut t, 1),
        Err(DistError::Root {
            op: "broadcast",
            root: 1,
            world_size: 1
        })
    ));
    let mut transposed = t.tr();
    assert!(matches!(
        group.all_reduce(&mut transposed),
        Err(DistError::NotContiguous { op: "all_reduce" })
    ));
    let mut mixed = [
        Tensor::zeros([2], (Kind::Float, Device::Cpu)),
        Tensor::zeros([2], (Kind::Double, Device::Cpu)),
    ];
    assert!(matches!(
        group.all_reduce_many(&mut mixed),
        Err(DistError::MixedKinds {
            index: 1,
            expected: Kind::Float,
            found: Kind::Double
        })
    ));
}

#[test]
fn tensors_must_be_on_the_groups_device() {
    // A CUDA group of one needs no GPU to exist until a tensor is handed to it.
    let group = ProcessGroup::new(0, 1, "127.0.0.1", 29500, Device::Cuda(0), TIMEOUT)
        .expect("a CUDA group of one");
    let mut t = Tensor::zeros([2], (Kind::Float, Device::Cpu));
    match group.all_reduce(&mut t) {
        Err(DistError::Device {
            op,
            expected,
            found,
        }) => {
            assert_eq!(
                (op, expected, found),
                ("all_reduce", Device::Cuda(0), Device::Cpu)
            );
        }
        other => panic!("expected Device, got {other:?}"),
    }
}

#[test]
fn several_cpu_processes_need_gloo() {
    if gloo_available() {
        println!("Gloo is built in; the multi_process tests cover it");
        return;
    }
    println!("skipped: built without Gloo headers (install libgloo-dev); checking the error");
    match ProcessGroup::new(0, 2, "127.0.0.1", 29500, Device::Cpu, TIMEOUT) {
        Err(e @ DistError::NoGloo) => {
            assert!(e.to_string().contains("apt-get install libgloo-dev"))
        }
        other => panic!("expected NoGloo, got {other:?}"),
    }
}
