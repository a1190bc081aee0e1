//! Collectives across real processes: each test re-executes this test binary as 2 or 3 workers
//! (selected by `HRM_DIST_TEST_WORKER`, given torchrun's variables) that meet over Gloo on
//! 127.0.0.1 at a free port and check their results exactly. Fault tests kill a worker in the
//! middle of a collective and check that the survivors get an error naming it, within the
//! timeout. Without Gloo's headers in the build the tests say they were skipped and pass.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hrm_dist::{gloo_available, DistError, ProcessGroup};
use tch::{Device, Kind, Tensor};

/// The variable that turns a run of this binary into a worker of the named test.
const WORKER_VAR: &str = "HRM_DIST_TEST_WORKER";
/// How long a launcher waits for its workers before killing them and failing.
const LAUNCH_DEADLINE: Duration = Duration::from_secs(120);

// ---------------------------------------------------------------------------------------------
// Launcher side.

/// Runs `worker` when this process is a worker of `test`; returns `true` then.
fn as_worker(test: &str, worker: fn()) -> bool {
    if std::env::var(WORKER_VAR).as_deref() == Ok(test) {
        worker();
        true
    } else {
        false
    }
}

fn skip_without_gloo() -> bool {
    if gloo_available() {
        return false;
    }
    println!("skipped: built without Gloo headers (install libgloo-dev)");
    true
}

fn free_port() -> u16 {
    let listener = TcpListener::bind(("127.0.0.1", 0)).expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// One worker process; its output lines travel through the channel `spawn_workers` returns.
struct Worker {
    rank: usize,
    child: Child,
}

/// Starts `world` workers of `test`, each a re-run of this binary filtered to that test, with
/// torchrun's variables and `extra` in their environment.
fn spawn_workers(
    test: &str,
    world: usize,
    extra: &[(&str, String)],
) -> (Vec<Worker>, mpsc::Receiver<(usize, String)>) {
    let exe = std::env::current_exe().expect("path of the test binary");
    let port = free_port();
    let (tx, rx) = mpsc::channel();
    let workers = (0..world)
        .map(|rank| {
            let mut child = Command::new(&exe)
                .args([test, "--exact", "--nocapture", "--test-threads=1"])
                .env(WORKER_VAR, test)
                .env("RANK", rank.to_string())
                .env("WORLD_SIZE", world.to_string())
                .env("LOCAL_RANK", rank.to_string())
                .env("MASTER_ADDR", "127.0.0.1")
                .env("MASTER_PORT", port.to_string())
                .env("OMP_NUM_THREADS", "1")
                .envs(extra.iter().map(|(k, v)| (*k, v.as_str())))
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start a worker");
            for stream in [
                child
                    .stdout
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
                child
                    .stderr
                    .take()
                    .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            ]
            .into_iter()
            .flatten()
            {
                let tx = tx.clone();
                thread::spawn(move || {
                    for line in BufReader::new(stream).lines().map_while(Result::ok) {
                        let _ = tx.send((rank, line));
                    }
                });
            }
            Worker { rank, child }
        })
        .collect();
    (workers, rx)
}

/// Everything the workers printed, and how each ended.
struct Outcome {
    log: Vec<(usize, String)>,
    status: Vec<ExitStatus>,
}

impl Outcome {
    fn text(&self) -> String {
        self.log
            .iter()
            .map(|(rank, line)| format!("[rank {rank}] {line}\n"))
            .collect()
    }

    /// Whether `rank` printed `marker` (libtest may put "test NAME ... " before the first line
    /// a test prints, so a marker may sit anywhere in a line).
    fn printed(&self, rank: usize, marker: &str) -> bool {
        self.log
            .iter()
            .any(|(r, l)| *r == rank && l.contains(marker))
    }
}

/// Waits for every worker (killing all of them past the deadline), collecting their output.
/// `on_line` sees each line as it arrives and may kill workers (fault tests).
fn wait_workers(
    mut workers: Vec<Worker>,
    rx: mpsc::Receiver<(usize, String)>,
    mut on_line: impl FnMut(usize, &str, &mut [Worker]),
) -> Outcome {
    let started = Instant::now();
    let mut log = Vec::new();
    let mut status: Vec<Option<ExitStatus>> = vec![None; workers.len()];
    loop {
        while let Ok((rank, line)) = rx.recv_timeout(Duration::from_millis(20)) {
            on_line(rank, &line, &mut workers);
            log.push((rank, line));
        }
        for w in workers.iter_mut() {
            if status[w.rank].is_none() {
                status[w.rank] = w.child.try_wait().expect("poll a worker");
            }
        }
        if status.iter().all(Option::is_some) {
            break;
        }
        if started.elapsed() > LAUNCH_DEADLINE {
            for w in workers.iter_mut() {
                let _ = w.child.kill();
            }
            let text: String = log
                .iter()
                .map(|(r, l)| format!("[rank {r}] {l}\n"))
                .collect();
            panic!("workers still running after {LAUNCH_DEADLINE:?}; output:\n{text}");
        }
    }
    // Drain what the reader threads still hold.
    while let Ok((rank, line)) = rx.recv_timeout(Duration::from_millis(200)) {
        log.push((rank, line));
    }
    Outcome {
        log,
        status: status
            .into_iter()
            .map(|s| s.expect("every worker ended"))
            .collect(),
    }
}

/// Runs `world` workers of `test` to completion and asserts that all succeeded.
fn launch(test: &str, world: usize) -> Outcome {
    let (workers, rx) = spawn_workers(test, world, &[]);
    let outcome = wait_workers(workers, rx, |_, _, _| {});
    for (rank, status) in outcome.status.iter().enumerate() {
        assert!(
            status.success(),
            "rank {rank} of {world} failed ({status}); output:\n{}",
            outcome.text()
        );
    }
    outcome
}

// ---------------------------------------------------------------------------------------------
// Worker side.

fn join(timeout: Duration) -> ProcessGroup {
    ProcessGroup::from_env(Device::Cpu, timeout).expect("join the group")
}

fn values_f32(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(&t.flatten(0, -1)).expect("f32 values")
}

/// Every collective, with results checked exactly on every rank.
fn collectives_worker() {
    let group = join(Duration::from_secs(30));
    let (rank, world) = (group.rank(), group.world_size());
    let r = rank as f32;
    let w = world as f32;

    // all_reduce: rank r holds [r + 1, 10 (r + 1), -0.5]; the sum of r + 1 is w (w + 1) / 2.
    let mut t = Tensor::from_slice(&[r + 1.0, 10.0 * (r + 1.0), -0.5]);
    group.all_reduce(&mut t).expect("all_reduce f32");
    let tri = w * (w + 1.0) / 2.0;
    assert_eq!(values_f32(&t), [tri, 10.0 * tri, -0.5 * w]);

    let mut ints = Tensor::from_slice(&[rank as i64, 1 << 40]);
    group.all_reduce(&mut ints).expect("all_reduce i64");
    let ranks_sum = (world * (world - 1) / 2) as i64;
    assert_eq!(
        Vec::<i64>::try_from(&ints).expect("i64 values"),
        [ranks_sum, (1 << 40) * world as i64]
    );

    // all_reduce_many: two shapes, one of them a non-contiguous view, in one collective.
    let mut many = [
        Tensor::full([2, 3], f64::from(r), (Kind::Float, Device::Cpu)),
        Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0])
            .view([2, 2])
            .tr(),
    ];
    group.all_reduce_many(&mut many).expect("all_reduce_many");
    let ranks_sum_f = ranks_sum as f32;
    assert_eq!(values_f32(&many[0]), [ranks_sum_f; 6]);
    // tr() of [[1, 2], [3, 4]] reads [1, 3, 2, 4].
    assert_eq!(values_f32(&many[1]), [w, 3.0 * w, 2.0 * w, 4.0 * w]);

    // all_gather: row k of the result is rank k's tensor, exactly.
    let mine = Tensor::from_slice(&[r, r * 2.0, r + 0.25, -r]).view([2, 2]);
    let gathered = group.all_gather(&mine).expect("all_gather");
    assert_eq!(gathered.size(), [world as i64, 2, 2]);
    for k in 0..world {
        let k_f = k as f32;
        assert_eq!(
            values_f32(&gathered.get(k as i64)),
            [k_f, k_f * 2.0, k_f + 0.25, -k_f]
        );
    }
    // The sparse-embedding use: ids of each rank gathered and concatenated.
    let ids = Tensor::from_slice(&[rank as i64 * 100, rank as i64 * 100 + 1]);
    let all_ids = group
        .all_gather(&ids)
        .expect("all_gather ids")
        .flatten(0, 1);
    let expected: Vec<i64> = (0..world as i64)
        .flat_map(|k| [k * 100, k * 100 + 1])
        .collect();
    assert_eq!(Vec::<i64>::try_from(&all_ids).expect("ids"), expected);

    // Shapes that differ between ranks: the same clear error everywhere, group still usable.
    let ragged = Tensor::zeros([rank as i64 + 1], (Kind::Float, Device::Cpu));
    match group.all_gather(&ragged) {
        Err(DistError::ShapeMismatch { rank: at, message }) => {
            assert_eq!(at, rank);
            assert!(message.contains("rank 0 [1] Float"), "{message}");
            assert!(message.contains("rank 1 [2] Float"), "{message}");
        }
        other => panic!("ragged all_gather: expected ShapeMismatch, got {other:?}"),
    }

    // broadcast from the last rank.
    let root = world - 1;
    let mut b = Tensor::from_slice(&[r, r + 0.5, 7.0]);
    group.broadcast(&mut b, root).expect("broadcast");
    let root_f = root as f32;
    assert_eq!(values_f32(&b), [root_f, root_f + 0.5, 7.0]);

    group.barrier().expect("barrier");
    println!("rank {rank} of {world}: all collectives exact");
}

#[test]
fn collectives_two_ranks() {
    if as_worker("collectives_two_ranks", collectives_worker) || skip_without_gloo() {
        return;
    }
    let outcome = launch("collectives_two_ranks", 2);
    for rank in 0..2 {
        let done = format!("rank {rank} of 2: all collectives exact");
        assert!(outcome.printed(rank, &done), "{}", outcome.text());
    }
}

#[test]
fn collectives_three_ranks() {
    if as_worker("collectives_three_ranks", collectives_worker) || skip_without_gloo() {
        return;
    }
    let outcome = launch("collectives_three_ranks", 3);
    for rank in 0..3 {
        let done = format!("rank {rank} of 3: all collectives exact");
        assert!(outcome.printed(rank, &done), "{}", outcome.text());
    }
}

// ---------------------------------------------------------------------------------------------
// Faults.

/// The collective timeout of the fault tests: short, so that the suite stays fast.
const FAULT_TIMEOUT: Duration = Duration::from_secs(4);

/// Environment variable naming the rank the launcher will kill.
const VICTIM_VAR: &str = "HRM_DIST_TEST_VICTIM";

/// One successful all_reduce, then the victim announces itself and waits to be killed while
/// the others enter a second all_reduce, which must fail naming the victim.
fn peer_dies_worker() {
    let victim: usize = std::env::var(VICTIM_VAR)
        .expect("victim rank")
        .parse()
        .expect("victim rank is a number");
    let group = join(FAULT_TIMEOUT);
    let (rank, world) = (group.rank(), group.world_size());
    let mut t = Tensor::from_slice(&[1.0f32]);
    group.all_reduce(&mut t).expect("first all_reduce");
    assert_eq!(values_f32(&t), [world as f32]);
    if rank == victim {
        println!("VICTIM READY");
        thread::sleep(Duration::from_secs(60));
        panic!("the victim was not killed");
    }
    println!("ENTERING");
    let started = Instant::now();
    let err = group
        .all_reduce(&mut t)
        .expect_err("all_reduce with a dead peer");
    let elapsed = started.elapsed();
    println!("ERROR after {elapsed:?}: {err}");
    match &err {
        DistError::PeerLost {
            op,
            rank: at,
            world_size,
            lost,
            message,
        } => {
            assert_eq!((*op, *at, *world_size), ("all_reduce", rank, world));
            assert_eq!(lost, &vec![victim], "lost ranks");
            assert!(!message.is_empty(), "c10d's message is kept");
        }
        other => panic!("expected PeerLost, got {other:?}"),
    }
    assert!(
        err.to_string()
            .contains(&format!("rank {victim} went away")),
        "{err}"
    );
    // Not a benchmark: a bound that tells "failed promptly" from "hung until the launcher's
    // deadline", with room for a loaded 2-core machine.
    assert!(
        elapsed < FAULT_TIMEOUT * 2,
        "the error took {elapsed:?} (timeout {FAULT_TIMEOUT:?})"
    );
    // The group refuses further work rather than hanging.
    match group.barrier() {
        Err(DistError::Broken { op, first }) => {
            assert_eq!(op, "barrier");
            assert!(first.contains("went away"), "{first}");
        }
        other => panic!("expected Broken, got {other:?}"),
    }
    println!("SURVIVOR OK");
}

/// Launches `world` workers, kills `victim` once it and every survivor are in place, and
/// checks that each survivor reported it.
fn kill_one(test: &str, world: usize, victim: usize) {
    let (workers, rx) = spawn_workers(test, world, &[(VICTIM_VAR, victim.to_string())]);
    let mut victim_ready = false;
    let mut entering = 0;
    let mut killed = false;
    let outcome = wait_workers(workers, rx, |_, line, workers| {
        if line.ends_with("VICTIM READY") {
            victim_ready = true;
        }
        if line.ends_with("ENTERING") {
            entering += 1;
        }
        if !killed && victim_ready && entering == world - 1 {
            // Let the survivors block inside the collective first.
            thread::sleep(Duration::from_millis(300));
            let w = workers
                .iter_mut()
                .find(|w| w.rank == victim)
                .expect("victim");
            w.child.kill().expect("kill the victim");
            killed = true;
        }
    });
    assert!(
        killed,
        "the victim was never killed; output:\n{}",
        outcome.text()
    );
    assert!(
        !outcome.status[victim].success(),
        "the victim exited normally; output:\n{}",
        outcome.text()
    );
    // Shown with --nocapture: what a user would read.
    for (rank, line) in &outcome.log {
        if line.contains("ERROR after") {
            println!("[rank {rank}] {line}");
        }
    }
    for rank in (0..world).filter(|&r| r != victim) {
        assert!(
            outcome.status[rank].success() && outcome.printed(rank, "SURVIVOR OK"),
            "survivor {rank} did not report the lost rank {victim} ({}); output:\n{}",
            outcome.status[rank],
            outcome.text()
        );
    }
}

#[test]
fn killed_rank_is_named_by_the_survivor() {
    if as_worker("killed_rank_is_named_by_the_survivor", peer_dies_worker) || skip_without_gloo() {
        return;
    }
    kill_one("killed_rank_is_named_by_the_survivor", 2, 1);
}

#[test]
fn killed_rank_zero_is_named_although_it_served_the_store() {
    const NAME: &str = "killed_rank_zero_is_named_although_it_served_the_store";
    if as_worker(NAME, peer_dies_worker) || skip_without_gloo() {
        return;
    }
    kill_one(NAME, 2, 0);
}

#[test]
fn killed_middle_rank_is_named_by_both_survivors() {
    const NAME: &str = "killed_middle_rank_is_named_by_both_survivors";
    if as_worker(NAME, peer_dies_worker) || skip_without_gloo() {
        return;
    }
    kill_one(NAME, 3, 1);
}

/// Rank 1 stays alive but never joins the collective: rank 0 gets `Timeout`, not `PeerLost`.
fn stuck_peer_worker() {
    let group = join(Duration::from_secs(2));
    if group.rank() == 1 {
        // Outlive rank 0's timeout and liveness check, then leave without a collective.
        thread::sleep(Duration::from_secs(6));
        println!("STUCK RANK DONE");
        return;
    }
    let mut t = Tensor::from_slice(&[1.0f32]);
    match group.all_reduce(&mut t) {
        Err(DistError::Timeout {
            op,
            rank,
            world_size,
            timeout,
            message,
        }) => {
            assert_eq!(
                (op, rank, world_size, timeout),
                ("all_reduce", 0, 2, Duration::from_secs(2))
            );
            assert!(!message.is_empty(), "c10d's message is kept");
            println!(
                "TIMEOUT OK: {}",
                DistError::Timeout {
                    op,
                    rank,
                    world_size,
                    timeout,
                    message
                }
            );
        }
        other => panic!("expected Timeout with every peer alive, got {other:?}"),
    }
}

#[test]
fn stuck_peer_is_a_timeout_not_a_lost_rank() {
    const NAME: &str = "stuck_peer_is_a_timeout_not_a_lost_rank";
    if as_worker(NAME, stuck_peer_worker) || skip_without_gloo() {
        return;
    }
    let outcome = launch(NAME, 2);
    assert!(outcome.printed(0, "TIMEOUT OK"), "{}", outcome.text());
    for (_, line) in outcome.log.iter().filter(|(_, l)| l.contains("TIMEOUT OK")) {
        println!("[rank 0] {line}");
    }
}

// ---------------------------------------------------------------------------------------------
// Rendezvous errors, in this process.

#[test]
fn port_in_use_is_a_clear_error() {
    if skip_without_gloo() {
        return;
    }
    let holder = TcpListener::bind(("0.0.0.0", 0)).expect("hold a port");
    let port = holder.local_addr().expect("address").port();
    match ProcessGroup::new(0, 2, "127.0.0.1", port, Device::Cpu, Duration::from_secs(2)) {
        Err(DistError::PortInUse { port: p, message }) => {
            assert_eq!(p, port);
            assert!(!message.is_empty());
        }
        other => panic!("expected PortInUse, got {other:?}"),
    }
}

#[test]
fn absent_peers_make_the_rendezvous_time_out() {
    if skip_without_gloo() {
        return;
    }
    let timeout = Duration::from_millis(1500);
    // Rank 1 with nobody serving the store.
    let port = free_port();
    match ProcessGroup::new(1, 2, "127.0.0.1", port, Device::Cpu, timeout) {
        Err(DistError::RendezvousTimeout {
            rank,
            world_size,
            port: p,
            ..
        }) => {
            assert_eq!((rank, world_size, p), (1, 2, port));
        }
        other => panic!("rank 1 alone: expected RendezvousTimeout, got {other:?}"),
    }
    // Rank 0 waiting for a rank 1 that never comes.
    let port = free_port();
    match ProcessGroup::new(0, 2, "127.0.0.1", port, Device::Cpu, timeout) {
        Err(DistError::RendezvousTimeout { rank, .. }) => assert_eq!(rank, 0),
        other => panic!("rank 0 alone: expected RendezvousTimeout, got {other:?}"),
    }
}
