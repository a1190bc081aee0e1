//! The two optimisers of HRM training: AdamATan2 for the network and a sparse sign-SGD for the
//! puzzle embedding table.

pub mod adam_atan2;
pub mod ema;
pub mod sign_sgd;

pub use adam_atan2::{adam_atan2_update, AdamAtan2, AdamAtan2Config, MomentState};
pub use ema::{ema_blend, Ema};
pub use sign_sgd::{sign_sgd_step, SignSgdConfig};
