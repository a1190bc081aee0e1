//! `hrm train --nproc N`: torchrun's job on one machine. Spawns N copies of this command as the
//! workers of a data-parallel run on 127.0.0.1 with a free port (torchrun's environment:
//! `RANK`, `WORLD_SIZE`, `LOCAL_RANK`, `MASTER_ADDR`, `MASTER_PORT`), forwards Ctrl-C and
//! SIGTERM to them, and exits non-zero when any of them fails.

use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

/// The environment a worker of `rank` in a world of `world` on this machine gets.
pub fn worker_env(rank: usize, world: usize, port: u16) -> Vec<(&'static str, String)> {
    vec![
        ("RANK", rank.to_string()),
        ("WORLD_SIZE", world.to_string()),
        ("LOCAL_RANK", rank.to_string()),
        ("LOCAL_WORLD_SIZE", world.to_string()),
        ("MASTER_ADDR", "127.0.0.1".to_string()),
        ("MASTER_PORT", port.to_string()),
    ]
}

/// A TCP port nothing listens on now (the OS picks it), for the rendezvous store.
///
/// # Errors
/// When no socket can be bound on 127.0.0.1.
pub fn free_port() -> anyhow::Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// `args` without `--nproc N` / `--nproc=N`: what each worker runs.
pub fn worker_args(args: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    let mut skip = false;
    for a in args {
        if skip {
            skip = false;
        } else if a == "--nproc" {
            skip = true;
        } else if !a.starts_with("--nproc=") {
            out.push(a.clone());
        }
    }
    out
}

/// Runs `nproc` workers of `hrm train` and waits for them; returns the exit code of the run
/// (0, or a stop code when Ctrl-C or SIGTERM stopped the workers).
///
/// `timeout` is the workers' collective timeout: once a worker has failed, the others get that
/// long (plus a margin) to notice and stop before they are killed.
///
/// # Errors
/// When a worker cannot be started, or when any worker exits unsuccessfully (naming its rank
/// and status).
pub fn launch(nproc: usize, timeout: Duration) -> anyhow::Result<u8> {
    anyhow::ensure!(nproc >= 1, "--nproc must be at least 1");
    let exe = std::env::current_exe().context("finding the hrm executable")?;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let args = worker_args(&args);
    let port = free_port()?;
    eprintln!("[launch] {nproc} workers on 127.0.0.1:{port}");
    let mut children: Vec<(usize, Child)> = Vec::new();
    for rank in 0..nproc {
        let child = Command::new(&exe)
            .args(&args)
            .envs(worker_env(rank, nproc, port))
            .spawn()
            .with_context(|| format!("starting worker {rank}"))?;
        children.push((rank, child));
    }

    // Ctrl-C reaches the workers through the terminal's process group; SIGTERM (a scheduler's
    // preemption) reaches only us, so pass both on.
    let signalled = Arc::new(AtomicBool::new(false));
    {
        let signalled = Arc::clone(&signalled);
        let pids: Vec<u32> = children.iter().map(|(_, c)| c.id()).collect();
        let _ = ctrlc::set_handler(move || {
            signalled.store(true, Ordering::SeqCst);
            for pid in &pids {
                let _ = Command::new("kill")
                    .args(["-INT", &pid.to_string()])
                    .status();
            }
        });
    }

    let mut statuses: Vec<Option<ExitStatus>> = vec![None; nproc];
    let mut first_failure: Option<(usize, ExitStatus, Instant)> = None;
    let grace = timeout + Duration::from_secs(30);
    while statuses.iter().any(Option::is_none) {
        for (rank, child) in children.iter_mut() {
            if statuses[*rank].is_some() {
                continue;
            }
            if let Some(status) = child.try_wait()? {
                statuses[*rank] = Some(status);
                if !status.success() && first_failure.is_none() {
                    eprintln!("[launch] worker {rank} exited with {status}");
                    first_failure = Some((*rank, status, Instant::now()));
                }
            }
        }
        if let Some((_, _, at)) = first_failure {
            if at.elapsed() > grace {
                for (rank, child) in children.iter_mut() {
                    if statuses[*rank].is_none() {
                        eprintln!("[launch] worker {rank} still running; killing it");
                        let _ = child.kill();
                        statuses[*rank] = child.wait().ok();
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let interrupted = signalled.load(Ordering::SeqCst);
    if let Some((rank, status, _)) = first_failure {
        // Workers stopped on request exit with the stop codes: pass them on as the run's.
        let stopped = [crate::cmd::EXIT_STOPPED, crate::cmd::EXIT_ABANDONED]
            .into_iter()
            .find(|&c| status.code() == Some(i32::from(c)));
        if let (true, Some(code)) = (interrupted, stopped) {
            return Ok(code);
        }
        bail!("worker {rank} of {nproc} failed ({status})");
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_get_torchruns_variables_and_lose_the_nproc_flag() {
        let env = worker_env(1, 2, 29_555);
        assert!(env.contains(&("RANK", "1".into())));
        assert!(env.contains(&("WORLD_SIZE", "2".into())));
        assert!(env.contains(&("MASTER_PORT", "29555".into())));
        let args: Vec<String> = ["train", "c.toml", "--nproc", "2", "--nproc=3", "--resume"]
            .map(String::from)
            .to_vec();
        assert_eq!(worker_args(&args), ["train", "c.toml", "--resume"]);
        assert!(free_port().expect("port") > 0);
    }
}
