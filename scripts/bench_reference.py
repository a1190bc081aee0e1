#!/usr/bin/env python3
"""Times the reference implementation (sapientinc/HRM) with its own modules, and sets it side by
side with `hrm bench` on the same presets, dtypes and thread counts, in the same run.

Two modes:

* one setting (what `scripts/gpu_check.py` calls):

      python scripts/bench_reference.py --reference /path/to/HRM --preset small --dtype bf16 \\
          --device cpu --threads 2 [--steps 10] [--compile] [--json]

  builds `HierarchicalReasoningModel_ACTV1` wrapped in `ACTLossHead` (stablemax) from the
  checkout, with the preset's sizes and batch (tiny: H 128, 2+2 layers, batch 64; small: H 256,
  4+4 layers, batch 32; paper: H 512, 8 heads, 4+4 layers, batch 16; all: 81 tokens, vocabulary
  11, RoPE, a puzzle embedding as wide as H, 2x2 cycles, 16 ACT steps) and random data, then
  times what `pretrain.py` does per batch (the ACT call with its Q-target pass, the loss,
  `(loss / B).backward()`, the sparse sign-SGD and AdamATan2 steps, zero_grad) and what its
  `evaluate` does per batch under `torch.inference_mode` (ACT calls with the loss head until
  every row halted, 16 steps). It prints `train: X samples/s` and `eval: Y puzzles/s`, and with
  `--json` one JSON line (`train_samples_per_s`, `eval_puzzles_per_s`, ...).

* the side-by-side table:

      python scripts/bench_reference.py --reference /path/to/HRM --hrm target/release/hrm \\
          --settings tiny:f32:2,tiny:bf16:2,small:f32:2,small:bf16:2,small:f32:1,small:bf16:1

  runs, for each setting and `--repeats` times, the reference (this script, in its own process)
  and `hrm bench` alternately, and prints one Markdown table of the medians with the ratios
  hrm-rs / reference, headed by the host's GEMM peaks (torch.matmul 2048^3 in float32 and
  bfloat16 at each thread count, measured in the same run).

What stands in for the parts of the reference that do not run here (nothing is installed):
  - `flash_attn_interface` / `flash_attn` (CUDA-only): `flash_attn_func(q, k, v, causal)` is
    `torch.nn.functional.scaled_dot_product_attention` on `[b, nh, s, d]` transposes of the
    same tensors, returned as `[b, s, nh, d]` (libtorch's fused CPU/CUDA kernels, the same
    call hrm-rs makes);
  - `adam_atan2` (a CUDA extension, only imported by `pretrain.py`): AdamATan2 written below
    with the same update as the package's kernel (decoupled multiplicative weight decay, the
    lerp moments, `p -= lr / bc1 * atan2(m, sqrt(v) / sqrt(bc2))`), using PyTorch's
    multi-tensor `_foreach` ops, the fastest form eager PyTorch offers on the CPU;
  - `pydantic` (only the config class derives from `BaseModel`): a minimal `BaseModel` that
    sets the annotated fields from keyword arguments and class defaults.
No code of the reference is copied here: its modules are imported from the checkout given.

Environment: the same for both implementations. On a machine shared with other work,
`--omp-passive` sets `OMP_WAIT_POLICY=PASSIVE` for every run (OpenMP threads then sleep instead
of spinning while they wait, which otherwise takes cores from the other processes and from each
other); the table says whether it was set.
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
import types

PRESETS = {
    # name: (hidden, heads, layers per level, batch)
    "tiny": (128, 4, 2, 64),
    "small": (256, 4, 4, 32),
    "paper": (512, 8, 4, 16),
}
DTYPES = {"f32": "float32", "float32": "float32", "bf16": "bfloat16", "bfloat16": "bfloat16"}


# --------------------------------------------------------------------------------------------
# Stand-ins for what the reference imports but is not installed
# --------------------------------------------------------------------------------------------

def install_stand_ins():
    """Registers `flash_attn_interface`, `flash_attn` and (when missing) `pydantic` modules."""
    import torch
    import torch.nn.functional as F

    def flash_attn_func(q, k, v, causal=False, **_):
        # q, k, v: [b, s, nh, d] -> SDPA on [b, nh, s, d] -> [b, s, nh, d]
        out = F.scaled_dot_product_attention(
            q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2), is_causal=causal)
        # The caller `.view`s the result; flash-attention returns it contiguous, and so does
        # SDPA's CPU kernel (`contiguous` is then free).
        return out.transpose(1, 2).contiguous()

    for name in ("flash_attn_interface", "flash_attn"):
        mod = types.ModuleType(name)
        mod.flash_attn_func = flash_attn_func
        sys.modules[name] = mod

    try:
        import pydantic  # noqa: F401
    except ImportError:
        mod = types.ModuleType("pydantic")

        class BaseModel:
            def __init__(self, **kwargs):
                fields = {}
                for klass in reversed(type(self).__mro__):
                    fields.update(getattr(klass, "__annotations__", {}))
                for name in fields:
                    if name in kwargs:
                        value = kwargs.pop(name)
                    elif hasattr(type(self), name):
                        value = getattr(type(self), name)
                    else:
                        raise TypeError(f"missing config field {name}")
                    setattr(self, name, value)
                if kwargs:
                    raise TypeError(f"unknown config fields {sorted(kwargs)}")

        mod.BaseModel = BaseModel
        sys.modules["pydantic"] = mod
    return torch


class AdamATan2:
    """AdamATan2 as the `adam-atan2` package's kernel computes it (see the module doc)."""

    def __init__(self, params, lr=0.0, betas=(0.9, 0.95), weight_decay=0.1):
        import torch
        self.params = [p for p in params if p.requires_grad]
        self.lr, self.betas, self.weight_decay = lr, betas, weight_decay
        self.exp_avg = [torch.zeros_like(p) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p) for p in self.params]
        self.t = 0

    def step(self):
        import torch
        with torch.no_grad():
            idx = [i for i, p in enumerate(self.params) if p.grad is not None]
            if not idx:
                return
            params = [self.params[i] for i in idx]
            grads = [self.params[i].grad for i in idx]
            m = [self.exp_avg[i] for i in idx]
            v = [self.exp_avg_sq[i] for i in idx]
            self.t += 1
            b1, b2 = self.betas
            bc1 = 1 - b1 ** self.t
            bc2_sqrt = (1 - b2 ** self.t) ** 0.5
            torch._foreach_mul_(params, 1 - self.lr * self.weight_decay)
            torch._foreach_lerp_(m, grads, 1 - b1)
            torch._foreach_lerp_(v, torch._foreach_mul(grads, grads), 1 - b2)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, bc2_sqrt)
            updates = [torch.atan2(mi, di) for mi, di in zip(m, denom)]
            torch._foreach_add_(params, updates, alpha=-self.lr / bc1)

    def zero_grad(self):
        for p in self.params:
            p.grad = None


# --------------------------------------------------------------------------------------------
# Timing the reference
# --------------------------------------------------------------------------------------------

def time_reference(args):
    torch = install_stand_ins()
    torch.set_num_threads(args.threads) if args.threads else None
    sys.path.insert(0, os.path.abspath(args.reference))
    from models.hrm.hrm_act_v1 import HierarchicalReasoningModel_ACTV1
    from models.losses import ACTLossHead
    from models.sparse_embedding import CastedSparseEmbeddingSignSGD_Distributed

    hidden, heads, layers, batch = PRESETS[args.preset]
    batch = args.batch_size or batch
    device = torch.device(args.device)
    torch.manual_seed(args.seed)
    cfg = dict(
        batch_size=batch, seq_len=81, puzzle_emb_ndim=hidden, num_puzzle_identifiers=1,
        vocab_size=11, H_cycles=2, L_cycles=2, H_layers=layers, L_layers=layers,
        hidden_size=hidden, expansion=4.0, num_heads=heads, pos_encodings="rope",
        rms_norm_eps=1e-5, rope_theta=10000.0, halt_max_steps=16, halt_exploration_prob=0.1,
        forward_dtype=DTYPES[args.dtype],
    )
    with device:
        model = ACTLossHead(HierarchicalReasoningModel_ACTV1(cfg), loss_type="stablemax_cross_entropy")
    if args.compile:
        model = torch.compile(model, dynamic=False)
    inner = model._orig_mod if args.compile else model
    optimizers = [
        CastedSparseEmbeddingSignSGD_Distributed(
            inner.model.puzzle_emb.buffers(), lr=1e-2, weight_decay=0.1, world_size=1),
        AdamATan2(model.parameters(), lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1),
    ]
    data = {
        "inputs": torch.randint(1, 11, (batch, 81), dtype=torch.int32, device=device),
        "labels": torch.randint(1, 11, (batch, 81), dtype=torch.int32, device=device),
        "puzzle_identifiers": torch.zeros(batch, dtype=torch.int32, device=device),
    }

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    state = {"carry": None}

    def train_step():
        # pretrain.py's train_batch, without the learning-rate schedule and logging.
        if state["carry"] is None:
            with device:
                state["carry"] = model.initial_carry(data)
        state["carry"], loss, _metrics, _, _ = model(carry=state["carry"], batch=data, return_keys=[])
        ((1 / batch) * loss).backward()
        for opt in optimizers:
            opt.step()
            opt.zero_grad()

    def eval_rollout():
        # evaluate()'s inner loop for one batch.
        with torch.inference_mode():
            with device:
                carry = model.initial_carry(data)
            while True:
                carry, _, _metrics, _preds, all_finish = model(carry=carry, batch=data, return_keys=[])
                if all_finish:
                    break

    model.train()
    for _ in range(args.warmup):
        train_step()
    sync()
    t0, c0 = time.perf_counter(), time.process_time()
    for _ in range(args.steps):
        train_step()
    sync()
    train_wall, train_cpu = time.perf_counter() - t0, time.process_time() - c0

    eval_wall = eval_cpu = None
    if args.eval_rollouts > 0:
        model.eval()
        for _ in range(args.eval_warmup):
            eval_rollout()
        sync()
        t0, c0 = time.perf_counter(), time.process_time()
        for _ in range(args.eval_rollouts):
            eval_rollout()
        sync()
        eval_wall, eval_cpu = time.perf_counter() - t0, time.process_time() - c0

    result = {
        "impl": "reference" + (" (torch.compile)" if args.compile else ""),
        "preset": args.preset, "dtype": args.dtype, "device": args.device,
        "threads": torch.get_num_threads(), "batch": batch,
        "train_samples_per_s": batch * args.steps / train_wall,
        "train_ms_per_step": 1e3 * train_wall / args.steps,
        "train_cpu_ms_per_step": 1e3 * train_cpu / args.steps,
        "eval_puzzles_per_s": batch * args.eval_rollouts / eval_wall if eval_wall else None,
        "eval_ms_per_rollout": 1e3 * eval_wall / args.eval_rollouts if eval_wall else None,
        "eval_cpu_ms_per_rollout": 1e3 * eval_cpu / args.eval_rollouts if eval_wall else None,
    }
    print(f"reference bench: config={args.preset} device={args.device} dtype={args.dtype} "
          f"threads={result['threads']} batch={batch} compile={'on' if args.compile else 'off'}")
    print(f"train: {result['train_samples_per_s']:.2f} samples/s "
          f"({result['train_ms_per_step']:.1f} ms/step, cpu {result['train_cpu_ms_per_step']:.1f} ms/step)")
    if eval_wall:
        print(f"eval: {result['eval_puzzles_per_s']:.2f} puzzles/s ({result['eval_ms_per_rollout']:.1f} ms/rollout, "
              f"cpu {result['eval_cpu_ms_per_rollout']:.1f} ms/rollout)")
    if args.json:
        print(json.dumps(result))
    return result


# --------------------------------------------------------------------------------------------
# The side-by-side table
# --------------------------------------------------------------------------------------------

def gemm_peaks(python, threads):
    """GFLOP/s of torch.matmul 2048^3 in float32 and bfloat16 (best of 5 after 2 warm-ups)."""
    code = (
        "import torch, time\n"
        f"torch.set_num_threads({threads})\n"
        "out = []\n"
        "for dt in (torch.float32, torch.bfloat16):\n"
        "    a = torch.randn(2048, 2048).to(dt); b = torch.randn(2048, 2048).to(dt)\n"
        "    for _ in range(2): a @ b\n"
        "    best = min((lambda t: (a @ b, time.perf_counter() - t)[1])(time.perf_counter()) for _ in range(5))\n"
        "    out.append(2 * 2048 ** 3 / best / 1e9)\n"
        "print(*out)\n"
    )
    p = subprocess.run([python, "-c", code], capture_output=True, text=True)
    try:
        f32, bf16 = (float(x) for x in p.stdout.split())
        return f32, bf16
    except ValueError:
        return None, None


def run_hrm(hrm, preset, dtype, threads, a):
    """(train samples/s, eval puzzles/s, train cpu ms/step, eval cpu ms/rollout) of `hrm bench`."""
    cmd = [hrm, "bench", "--config", preset, "--dtype", dtype, "--device", a.device,
           "--threads", str(threads), "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--eval-rollouts", str(a.eval_rollouts), "--eval-warmup", str(a.eval_warmup)]
    if a.batch_size:
        cmd += ["--batch-size", str(a.batch_size)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    tr = re.search(r"train: ([\d.]+) samples/s \(.*?cpu ([\d.]+) ms/step", p.stdout)
    ev = re.search(r"eval: ([\d.]+) puzzles/s \(.*?cpu ([\d.]+) ms/rollout", p.stdout)
    if p.returncode != 0 or not tr:
        sys.stderr.write(f"hrm bench failed: {' '.join(cmd)}\n{p.stdout}{p.stderr}\n")
        return None, None, None, None
    return (float(tr.group(1)), float(ev.group(1)) if ev else None,
            float(tr.group(2)), float(ev.group(2)) if ev else None)


def run_ref(preset, dtype, threads, a):
    """The same four figures for the reference, from this script's JSON line."""
    cmd = [a.python, os.path.abspath(__file__), "--reference", a.reference, "--preset", preset,
           "--dtype", dtype, "--device", a.device, "--threads", str(threads),
           "--steps", str(a.steps), "--warmup", str(a.warmup),
           "--eval-rollouts", str(a.eval_rollouts), "--eval-warmup", str(a.eval_warmup), "--json"]
    if a.batch_size:
        cmd += ["--batch-size", str(a.batch_size)]
    p = subprocess.run(cmd, capture_output=True, text=True)
    for line in reversed(p.stdout.splitlines()):
        try:
            j = json.loads(line)
        except ValueError:
            continue
        return (j["train_samples_per_s"], j.get("eval_puzzles_per_s"),
                j["train_cpu_ms_per_step"], j.get("eval_cpu_ms_per_rollout"))
    sys.stderr.write(f"reference bench failed: {' '.join(cmd)}\n{p.stderr[-2000:]}\n")
    return None, None, None, None


def median(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def spread(xs):
    """(max - min) / median in percent, over the repeats."""
    xs = [x for x in xs if x is not None]
    return 100 * (max(xs) - min(xs)) / statistics.median(xs) if len(xs) > 1 else 0.0


def side_by_side(a):
    settings = []
    for item in a.settings.split(","):
        preset, dtype, threads = item.strip().split(":")
        settings.append((preset, dtype, int(threads)))
    peaks = {t: gemm_peaks(a.python, t) for t in sorted({s[2] for s in settings})}
    rows = []
    for preset, dtype, threads in settings:
        ref, ours = [], []
        for r in range(a.repeats):
            # Alternate which runs first, so a drift in load hits both alike.
            order = [("ref", run_ref), ("hrm", None)] if r % 2 == 0 else [("hrm", None), ("ref", run_ref)]
            for name, _ in order:
                if name == "ref":
                    ref.append(run_ref(preset, dtype, threads, a))
                else:
                    ours.append(run_hrm(a.hrm, preset, dtype, threads, a))
            sys.stderr.write(f"{preset} {dtype} {threads}T repeat {r + 1}: reference {ref[-1]}, hrm-rs {ours[-1]}\n")
        rows.append((preset, dtype, threads, ref, ours))

    def fmt(x, d=1):
        return "-" if x is None else f"{x:.{d}f}"

    def ratio(x, y):
        return "-" if x is None or y is None else f"{x / y:.2f}"

    print(f"Host GEMM peaks (torch.matmul 2048^3, GFLOP/s): " + "; ".join(
        f"{t} thread{'s' if t > 1 else ''}: f32 {fmt(p[0])}, bf16 {fmt(p[1])}" for t, p in peaks.items()))
    print(f"Device {a.device}; {a.steps} timed steps after {a.warmup}, {a.eval_rollouts} rollouts after "
          f"{a.eval_warmup}; medians of {a.repeats} alternating repeats; OMP_WAIT_POLICY="
          f"{os.environ.get('OMP_WAIT_POLICY', 'unset')}.")
    print()
    print("| preset, threads | dtype | reference train samples/s | hrm-rs | ratio | reference eval puzzles/s "
          "| hrm-rs | ratio | CPU-time ratio train / eval | spread % ref / hrm |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for preset, dtype, threads, ref, ours in rows:
        col = lambda rs, i: median([x[i] for x in rs])  # noqa: E731
        rt, re_, rc, rce = (col(ref, i) for i in range(4))
        ot, oe, oc, oce = (col(ours, i) for i in range(4))
        # CPU-time ratio: reference CPU ms per unit of work over hrm-rs's (above 1: hrm-rs does
        # the work with less CPU time; steadier than wall time when other work shares the cores).
        print(f"| {preset}, {threads} | {dtype} | {fmt(rt)} | {fmt(ot)} | {ratio(ot, rt)} | {fmt(re_, 2)} | "
              f"{fmt(oe, 2)} | {ratio(oe, re_)} | {ratio(rc, oc)} / {ratio(rce, oce)} | "
              f"{spread([x[0] for x in ref]):.0f} / {spread([x[0] for x in ours]):.0f} |")


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reference", required=True, help="a checkout of sapientinc/HRM")
    p.add_argument("--preset", default="small", choices=sorted(PRESETS))
    p.add_argument("--dtype", default="f32", choices=sorted(DTYPES))
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=None, help="intra-op threads (default: torch's)")
    p.add_argument("--steps", type=int, default=10, help="timed training steps")
    p.add_argument("--warmup", type=int, default=3, help="untimed training steps before them")
    p.add_argument("--eval-rollouts", type=int, default=2, help="timed evaluation rollouts (0: none)")
    p.add_argument("--eval-warmup", type=int, default=1, help="untimed rollouts before them")
    p.add_argument("--batch-size", type=int, default=None,
                   help="rows per step instead of each preset's batch (GPU runs: e.g. 768)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--compile", action="store_true", help="wrap the model in torch.compile")
    p.add_argument("--json", action="store_true", help="also print one JSON line")
    p.add_argument("--hrm", help="the hrm binary: print the side-by-side table for --settings")
    p.add_argument("--settings", default="tiny:f32:2,tiny:bf16:2,small:f32:2,small:bf16:2,small:f32:1,small:bf16:1",
                   help="preset:dtype:threads,... for the table")
    p.add_argument("--repeats", type=int, default=2, help="alternating repeats per setting in the table")
    p.add_argument("--python", default=sys.executable, help="python with torch 2.11 for the reference")
    p.add_argument("--omp-passive", action="store_true", help="set OMP_WAIT_POLICY=PASSIVE for every run")
    a = p.parse_args()
    if a.steps < 1:
        p.error("--steps must be at least 1")
    if a.omp_passive:
        if os.environ.get("OMP_WAIT_POLICY", "").upper() != "PASSIVE":
            # OpenMP reads it when it starts: re-run this script with it set.
            env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
            os.execve(sys.executable, [sys.executable, *sys.argv], env)
    if a.hrm:
        side_by_side(a)
    else:
        time_reference(a)


if __name__ == "__main__":
    main()
