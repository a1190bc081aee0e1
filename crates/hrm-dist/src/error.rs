//! The one error type of hrm-dist. Variants carry the facts a user needs to act: the variable,
//! the port, the operation, this rank, the ranks that went away, and c10d's own message verbatim.

use std::time::Duration;

use tch::Device;

/// Everything that can go wrong while reading torchrun's environment, meeting the other ranks
/// or running a collective.
#[derive(Debug, thiserror::Error)]
pub enum DistError {
    // torchrun's environment contract.
    /// A variable torchrun sets is missing although `WORLD_SIZE` asks for several processes.
    #[error("environment variable {var} is not set (torchrun sets it; needed because WORLD_SIZE={world_size})")]
    MissingEnv {
        /// The variable, e.g. `MASTER_PORT`.
        var: &'static str,
        /// The `WORLD_SIZE` that made it necessary.
        world_size: usize,
    },
    /// A variable is set to something unusable.
    #[error("environment variable {var}={value:?}: {reason}")]
    InvalidEnv {
        /// The variable, e.g. `RANK`.
        var: &'static str,
        /// Its value as found.
        value: String,
        /// What is wrong with it.
        reason: String,
    },

    // The group's shape and device.
    /// The world size is zero.
    #[error("world size must be at least 1")]
    ZeroWorldSize,
    /// The rank is not below the world size.
    #[error("rank {rank} is out of range for world size {world_size}")]
    RankOutOfRange {
        /// The rank asked for.
        rank: usize,
        /// The world size.
        world_size: usize,
    },
    /// Port 0 cannot be a rendezvous port: the other ranks could not know which one to dial.
    #[error("rendezvous port 0 is not allowed for {world_size} processes: set MASTER_PORT to a free port")]
    ZeroPort {
        /// The world size.
        world_size: usize,
    },
    /// The device has no c10d backend here.
    #[error("device {device:?} has no distributed backend: use Device::Cpu (Gloo) or Device::Cuda(n) (NCCL)")]
    UnsupportedDevice {
        /// The device asked for.
        device: Device,
    },
    /// A CPU group with several processes, but the shim was compiled without Gloo's headers.
    #[error(
        "built without Gloo headers: install libgloo-dev (apt-get install libgloo-dev) and rebuild"
    )]
    NoGloo,
    /// A CUDA group with several processes, but the shim was compiled without NCCL.
    #[error("built without NCCL ({reason}); rebuild where libtorch has CUDA and nccl.h and the CUDA runtime headers are found (see docs/distributed.md)")]
    NoNccl {
        /// Why the build left NCCL out.
        reason: &'static str,
    },

    // Rendezvous.
    /// Rank 0 could not listen on the rendezvous port.
    #[error("port {port} is already in use on this machine (rank 0 serves the rendezvous store there); pick another MASTER_PORT: {message}")]
    PortInUse {
        /// The port.
        port: u16,
        /// What the system or c10d said.
        message: String,
    },
    /// The rendezvous did not complete within the timeout (a rank never came, or the address is
    /// unreachable).
    #[error("rendezvous at {addr}:{port} as rank {rank} of {world_size} timed out after {timeout:?}: {message}")]
    RendezvousTimeout {
        /// `MASTER_ADDR`.
        addr: String,
        /// `MASTER_PORT`.
        port: u16,
        /// This rank.
        rank: usize,
        /// The world size.
        world_size: usize,
        /// The timeout that ran out.
        timeout: Duration,
        /// c10d's message.
        message: String,
    },
    /// The rendezvous failed for another reason.
    #[error("rendezvous at {addr}:{port} as rank {rank} of {world_size} failed: {message}")]
    Rendezvous {
        /// `MASTER_ADDR`.
        addr: String,
        /// `MASTER_PORT`.
        port: u16,
        /// This rank.
        rank: usize,
        /// The world size.
        world_size: usize,
        /// c10d's message.
        message: String,
    },

    // Collectives.
    /// A collective failed and one or more peers stopped answering (killed, crashed, out of
    /// memory). Rank 0 is reported lost when the rendezvous store it serves no longer answers.
    #[error("{op} on rank {rank} of {world_size} failed: {} went away; c10d said: {message}", ranks_text(.lost))]
    PeerLost {
        /// The collective.
        op: &'static str,
        /// This rank.
        rank: usize,
        /// The world size.
        world_size: usize,
        /// The ranks that stopped beating, in increasing order.
        lost: Vec<usize>,
        /// c10d's message.
        message: String,
    },
    /// A collective ran past its timeout while every peer was still alive (one is stuck, or
    /// did not call the same collective).
    #[error("{op} on rank {rank} of {world_size} timed out after {timeout:?} with every peer alive (is a rank stuck or calling a different collective?): {message}")]
    Timeout {
        /// The collective.
        op: &'static str,
        /// This rank.
        rank: usize,
        /// The world size.
        world_size: usize,
        /// The timeout that ran out.
        timeout: Duration,
        /// c10d's message.
        message: String,
    },
    /// A collective failed for another reason (c10d's message says which).
    #[error("{op} on rank {rank} of {world_size} failed: {message}")]
    Collective {
        /// The collective.
        op: &'static str,
        /// This rank.
        rank: usize,
        /// The world size.
        world_size: usize,
        /// c10d's message.
        message: String,
    },
    /// `all_gather` was given tensors of different shapes or dtypes on different ranks. Every
    /// rank gets this error, and the group stays usable.
    #[error("all_gather on rank {rank}: {message}")]
    ShapeMismatch {
        /// This rank.
        rank: usize,
        /// The shape and dtype each rank passed.
        message: String,
    },
    /// A tensor is not on the group's device.
    #[error("{op}: tensor on {found:?}, but this process group runs on {expected:?}")]
    Device {
        /// The collective.
        op: &'static str,
        /// The group's device.
        expected: Device,
        /// The tensor's device.
        found: Device,
    },
    /// An in-place collective was given a non-contiguous tensor, which c10d cannot write into.
    #[error("{op}: the tensor must be contiguous (call .contiguous(), then copy the result back)")]
    NotContiguous {
        /// The collective.
        op: &'static str,
    },
    /// `all_reduce_many` was given tensors of different kinds.
    #[error("all_reduce_many: tensor {index} is {found:?} but tensor 0 is {expected:?}; reduce each kind separately")]
    MixedKinds {
        /// The offending tensor's position.
        index: usize,
        /// The kind of the first tensor.
        expected: tch::Kind,
        /// The kind found.
        found: tch::Kind,
    },
    /// The broadcast root is not a rank of the group.
    #[error("{op}: root rank {root} is out of range for world size {world_size}")]
    Root {
        /// The collective.
        op: &'static str,
        /// The root asked for.
        root: usize,
        /// The world size.
        world_size: usize,
    },
    /// The group failed earlier; after a failed collective the peers are out of step, so it
    /// refuses further work.
    #[error("{op} refused: this process group failed earlier and cannot be used again ({first})")]
    Broken {
        /// The collective refused.
        op: &'static str,
        /// The first failure, as displayed then.
        first: String,
    },
    /// A tensor operation around a collective failed.
    #[error(transparent)]
    Torch(#[from] tch::TchError),
}

/// "rank 1" or "ranks 1, 2".
fn ranks_text(lost: &[usize]) -> String {
    let list: Vec<String> = lost.iter().map(usize::to_string).collect();
    match lost.len() {
        1 => format!("rank {}", list[0]),
        _ => format!("ranks {}", list.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_lost_names_the_ranks() {
        let one = DistError::PeerLost {
            op: "all_reduce",
            rank: 0,
            world_size: 2,
            lost: vec![1],
            message: "Connection closed by peer".into(),
        };
        assert_eq!(
            one.to_string(),
            "all_reduce on rank 0 of 2 failed: rank 1 went away; c10d said: Connection closed by peer"
        );
        let two = DistError::PeerLost {
            op: "barrier",
            rank: 0,
            world_size: 4,
            lost: vec![1, 3],
            message: "x".into(),
        };
        assert!(two.to_string().contains("ranks 1, 3 went away"), "{two}");
    }

    #[test]
    fn no_gloo_says_what_to_install() {
        assert_eq!(
            DistError::NoGloo.to_string(),
            "built without Gloo headers: install libgloo-dev (apt-get install libgloo-dev) and rebuild"
        );
    }
}
