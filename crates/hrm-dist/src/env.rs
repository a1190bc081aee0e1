//! torchrun's environment contract: `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`,
//! `MASTER_PORT`, as `torch.distributed.run` sets them for every worker (and as a Slurm script
//! can set them by hand). No `WORLD_SIZE` means one process.

use crate::error::DistError;

/// Where this process sits in a distributed run, read from torchrun's variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DistEnv {
    /// This process's rank, `0..world_size` (`RANK`).
    pub rank: usize,
    /// The number of processes (`WORLD_SIZE`).
    pub world_size: usize,
    /// The rank among the processes on this machine (`LOCAL_RANK`); picks the CUDA device.
    pub local_rank: usize,
    /// The host of rank 0, which serves the rendezvous store (`MASTER_ADDR`).
    pub master_addr: String,
    /// The rendezvous port on `master_addr` (`MASTER_PORT`).
    pub master_port: u16,
}

impl DistEnv {
    /// One process: rank 0 of 1. The address and port are placeholders nothing dials.
    pub fn single() -> Self {
        Self {
            rank: 0,
            world_size: 1,
            local_rank: 0,
            master_addr: "127.0.0.1".to_string(),
            master_port: 29500,
        }
    }

    /// Reads the process environment.
    ///
    /// # Errors
    /// [`DistError::InvalidEnv`] for a value that is not a number, a rank not below
    /// `WORLD_SIZE`, `WORLD_SIZE=0` or a port outside `1..=65535`; [`DistError::MissingEnv`] for
    /// a variable missing while `WORLD_SIZE` is above 1. Each names the variable.
    pub fn from_env() -> Result<Self, DistError> {
        Self::from_lookup(|var| std::env::var(var).ok())
    }

    /// Reads the contract through `lookup` (a variable's value, or `None` when unset), so
    /// callers and tests need not touch the process environment.
    ///
    /// # Errors
    /// As [`DistEnv::from_env`].
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, DistError> {
        let Some(world) = lookup("WORLD_SIZE") else {
            return Ok(Self::single());
        };
        let world_size = parse_usize("WORLD_SIZE", &world)?;
        if world_size == 0 {
            return Err(DistError::InvalidEnv {
                var: "WORLD_SIZE",
                value: world,
                reason: "must be at least 1".to_string(),
            });
        }
        let required = |var: &'static str| -> Result<Option<String>, DistError> {
            match lookup(var) {
                Some(value) => Ok(Some(value)),
                None if world_size > 1 => Err(DistError::MissingEnv { var, world_size }),
                None => Ok(None),
            }
        };
        let rank = match required("RANK")? {
            Some(value) => {
                let rank = parse_usize("RANK", &value)?;
                if rank >= world_size {
                    return Err(DistError::InvalidEnv {
                        var: "RANK",
                        value,
                        reason: format!("must be below WORLD_SIZE={world_size}"),
                    });
                }
                rank
            }
            None => 0,
        };
        let local_rank = match required("LOCAL_RANK")? {
            Some(value) => parse_usize("LOCAL_RANK", &value)?,
            None => 0,
        };
        let single = Self::single();
        let master_addr = match required("MASTER_ADDR")? {
            Some(value) if value.trim().is_empty() => {
                return Err(DistError::InvalidEnv {
                    var: "MASTER_ADDR",
                    value,
                    reason: "is empty".to_string(),
                })
            }
            Some(value) => value.trim().to_string(),
            None => single.master_addr,
        };
        let master_port = match required("MASTER_PORT")? {
            Some(value) => match value.trim().parse::<u16>() {
                Ok(port) if port > 0 => port,
                _ => {
                    return Err(DistError::InvalidEnv {
                        var: "MASTER_PORT",
                        value,
                        reason: "must be a port number in 1..=65535".to_string(),
                    })
                }
            },
            None => single.master_port,
        };
        Ok(Self {
            rank,
            world_size,
            local_rank,
            master_addr,
            master_port,
        })
    }
}

fn parse_usize(var: &'static str, value: &str) -> Result<usize, DistError> {
    value
        .trim()
        .parse::<usize>()
        .map_err(|_| DistError::InvalidEnv {
            var,
            value: value.to_string(),
            reason: "must be a non-negative integer".to_string(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn read(vars: &[(&str, &str)]) -> Result<DistEnv, DistError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        DistEnv::from_lookup(|var| map.get(var).cloned())
    }

    const FULL: [(&str, &str); 5] = [
        ("RANK", "3"),
        ("WORLD_SIZE", "8"),
        ("LOCAL_RANK", "1"),
        ("MASTER_ADDR", "node0"),
        ("MASTER_PORT", "29511"),
    ];

    #[test]
    fn reads_torchruns_variables() {
        let env = read(&FULL).expect("valid environment");
        assert_eq!(
            env,
            DistEnv {
                rank: 3,
                world_size: 8,
                local_rank: 1,
                master_addr: "node0".to_string(),
                master_port: 29511,
            }
        );
    }

    #[test]
    fn no_world_size_is_one_process() {
        assert_eq!(read(&[]).expect("empty environment"), DistEnv::single());
        // torchrun with one process sets everything; that is one process too.
        let one = read(&[("WORLD_SIZE", "1"), ("RANK", "0")]).expect("world of one");
        assert_eq!((one.rank, one.world_size), (0, 1));
    }

    #[test]
    fn each_missing_variable_is_named() {
        for missing in ["RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"] {
            let vars: Vec<(&str, &str)> = FULL
                .iter()
                .copied()
                .filter(|(k, _)| *k != missing)
                .collect();
            match read(&vars) {
                Err(DistError::MissingEnv { var, world_size }) => {
                    assert_eq!((var, world_size), (missing, 8));
                }
                other => panic!("without {missing}: expected MissingEnv, got {other:?}"),
            }
        }
    }

    #[test]
    fn invalid_values_are_named() {
        let cases = [
            ("WORLD_SIZE", "two"),
            ("WORLD_SIZE", "0"),
            ("RANK", "-1"),
            ("RANK", "8"),
            ("LOCAL_RANK", "x"),
            ("MASTER_ADDR", " "),
            ("MASTER_PORT", "0"),
            ("MASTER_PORT", "70000"),
        ];
        for (bad, value) in cases {
            let vars: Vec<(&str, &str)> = FULL
                .iter()
                .map(|&(k, v)| if k == bad { (k, value) } else { (k, v) })
                .collect();
            match read(&vars) {
                Err(DistError::InvalidEnv {
                    var, value: found, ..
                }) => {
                    assert_eq!((var, found.as_str()), (bad, value));
                }
                other => panic!("{bad}={value}: expected InvalidEnv, got {other:?}"),
            }
        }
    }
}
