#!/usr/bin/env python3
"""The prepared GPU check: one command that, on a machine with CUDA and a python3 with torch
2.11, checks and times hrm-rs there and prints one table.

1. Every golden case on the device: float32 within the format's tolerances, and the bf16
   forward as a smoke check (`hrm golden --bf16`).
2. `hrm bench` for each preset (`tiny,small,paper,paper@768`: `NAME@B` times NAME at batch B)
   in float32 and bfloat16, on CUDA also with `--cuda-graphs` (replays of the captured steps,
   after a check that they match the eager steps), side by side with the reference's own
   modules timed by
   `scripts/bench_reference.py` in the same run: every eager timing first, then the reference
   under `torch.compile` (largest settings first) while `--budget-seconds` lasts (when
   `--reference DIR` names a checkout of sapientinc/HRM).
3. The embedded default config trained for `--train-seconds` on the device and, at the same
   time, on the CPU; the two learning curves are compared at the steps both reached. These
   runs come first, before anything is timed, so that they do not disturb the timings.

The table is rewritten to `--out` after each part, so a run stopped early still leaves one;
`--logs DIR` keeps every command's output and both training runs' metrics.

It needs no cargo and no network: `scripts/gpu_prepare.sh --reference DIR` puts a stripped
release `hrm`, the test executables with GPU-only tests, the golden cases and the reference
checkout into `target/gpu-carry/` elsewhere; copy that with this checkout and point the options
at it. `hrm` runs on the libtorch of `--python`'s torch (its `torch/lib` is put first in
`LD_LIBRARY_PATH`). Without a GPU, `--device cpu` runs the same steps on the CPU, which shows the
script works end to end.

    python3 scripts/gpu_check.py --hrm target/gpu-carry/hrm --tests target/gpu-carry/tests \\
        --golden target/gpu-carry/golden/* --reference target/gpu-carry/reference \\
        --device cuda --out gpu-check.md
"""

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


LOGS = None
DEADLINE = None


def remaining():
    return float("inf") if DEADLINE is None else DEADLINE - time.time()


def run(cmd, timeout=None, env=None, label=None):
    """Runs `cmd`, returning (exit code, stdout, stderr); never raises on failure. The timeout
    is cut to what is left of `--budget-seconds`; with `--logs`, the output is kept there."""
    left = remaining()
    if left < 5:
        return 125, "", "(skipped: --budget-seconds spent)"
    timeout = min(timeout or left, left)
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        code, out, err = p.returncode, p.stdout, p.stderr
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode() if isinstance(e.stdout, bytes) else (e.stdout or "")
        err = e.stderr.decode() if isinstance(e.stderr, bytes) else (e.stderr or "")
        code, err = 124, err + f"\n(timed out after {timeout:.0f} s)"
    except OSError as e:
        code, out, err = 127, "", str(e)
    if LOGS is not None:
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", label or Path(cmd[0]).name)
        (LOGS / f"{name}.log").write_text(f"$ {' '.join(map(str, cmd))}\n# exit {code}\n{out}\n{err}")
    return code, out, err


def golden(hrm, dirs, device, bf16):
    """Per case: (name, PASS/FAIL, worst forward share of tolerance)."""
    cmd = [hrm, "golden", *dirs, "--device", device] + (["--bf16"] if bf16 else [])
    code, out, err = run(cmd, timeout=600, label=f"golden-{'bf16' if bf16 else 'f32'}")
    rows = []
    for line in out.splitlines():
        m = re.match(r"^(\S+)\s+(PASS|FAIL)", line)
        if not m:
            continue
        fwd = re.search(r"forward abs \S+ rel \S+ \(([\d.]+|inf) of tol\)", line)
        rows.append((m.group(1), m.group(2), fwd.group(1) if fwd else "-"))
    if not rows:
        rows.append(("(no case ran)", "FAIL", (err.strip().splitlines() or ["?"])[-1]))
    return rows


def gpu_tests(directory):
    """Runs the GPU-only unit tests (`#[ignore = "needs a CUDA GPU"]`, names ending in
    `on_a_gpu`) of every test executable in `directory` (`scripts/gpu_prepare.sh` puts them
    there). Per executable: (name, PASS/FAIL, summary)."""
    rows = []
    for exe in sorted(Path(directory).iterdir()):
        if not (exe.is_file() and os.access(exe, os.X_OK)):
            continue
        code, out, err = run([str(exe), "--ignored", "on_a_gpu", "--test-threads", "1"],
                             timeout=300, label=f"tests-{exe.name}")
        result = re.search(r"test result: \w+\. (\d+) passed; (\d+) failed", out)
        summary = (f"{result.group(1)} passed, {result.group(2)} failed" if result
                   else (err.strip().splitlines() or ["no result"])[-1])
        failed = [m.group(1) for m in re.finditer(r"^test (\S+) \.\.\. FAILED", out, re.M)]
        if failed:
            summary += ": " + ", ".join(failed)
        rows.append((exe.name, "PASS" if code == 0 and result else "FAIL", summary))
    if not rows:
        rows.append((str(directory), "FAIL", "no test executables there"))
    return rows


def split_preset(spec):
    """`paper@768` -> ("paper", 768); `tiny` -> ("tiny", None)."""
    name, _, batch = spec.partition("@")
    return name, int(batch) if batch else None


def hrm_bench(hrm, spec, dtype, device, steps, threads, graphs=False):
    """(train samples/s, eval puzzles/s, why it failed or "", the `graphs:` check line or None).
    With `graphs`, the timings are of CUDA-graph replays; they are kept even when the check
    that replays match the eager steps failed (the check line says so)."""
    preset, batch = split_preset(spec)
    cmd = [hrm, "bench", "--config", preset, "--dtype", dtype, "--device", device,
           "--steps", str(steps), "--eval-rollouts", "2"]
    if batch:
        cmd += ["--batch-size", str(batch)]
    if threads:
        cmd += ["--threads", str(threads)]
    if graphs:
        cmd.append("--cuda-graphs")
    label = f"hrm-{'graphs-' if graphs else ''}{spec}-{dtype}"
    code, out, err = run(cmd, timeout=600, label=label)
    train = re.search(r"train: ([\d.]+) samples/s", out)
    ev = re.search(r"eval: ([\d.]+) puzzles/s", out)
    check = re.search(r"^graphs: (.*)$", out, re.M)
    check = check.group(1) if check else None
    if not train or (code != 0 and not check):
        return None, None, (err.strip().splitlines() or ["failed"])[-1], check
    why = "" if code == 0 else (err.strip().splitlines() or ["failed"])[-1]
    return float(train.group(1)), float(ev.group(1)) if ev else None, why, check


def reference_bench(python, reference, spec, dtype, device, steps, threads, compile_):
    script = ROOT / "scripts" / "bench_reference.py"
    if not reference or not script.exists():
        return None, None, "no reference"
    preset, batch = split_preset(spec)
    cmd = [python, str(script), "--reference", reference, "--preset", preset, "--dtype", dtype,
           "--device", device, "--steps", str(steps), "--json"]
    if batch:
        cmd += ["--batch-size", str(batch)]
    if threads:
        cmd += ["--threads", str(threads)]
    if compile_:
        cmd.append("--compile")
    label = f"ref-{'compile' if compile_ else 'eager'}-{spec}-{dtype}"
    code, out, err = run(cmd, timeout=900, label=label)
    for line in reversed(out.splitlines()):
        try:
            j = json.loads(line)
            return j.get("train_samples_per_s"), j.get("eval_puzzles_per_s"), ""
        except ValueError:
            continue
    return None, None, (err.strip().splitlines() or ["failed"])[-1]


def gemm_peaks(python, device):
    """The device's float32 and bfloat16 matmul rates (TFLOP/s) measured now, as a yardstick."""
    code = (
        "import torch,time\n"
        f"d=torch.device('{device}')\n"
        "n=8192 if d.type=='cuda' else 1024\n"
        "out=[]\n"
        "for dt in (torch.float32,torch.bfloat16):\n"
        "    a=torch.randn(n,n,device=d,dtype=dt); b=torch.randn(n,n,device=d,dtype=dt)\n"
        "    for _ in range(3): a@b\n"
        "    torch.cuda.synchronize() if d.type=='cuda' else None\n"
        "    t=time.perf_counter(); r=10\n"
        "    for _ in range(r): a@b\n"
        "    torch.cuda.synchronize() if d.type=='cuda' else None\n"
        "    out.append(2*n**3*r/(time.perf_counter()-t)/1e12)\n"
        "name=torch.cuda.get_device_name(d) if d.type=='cuda' else 'cpu'\n"
        "print(f'{name}|{out[0]:.1f}|{out[1]:.1f}|{torch.__version__}')\n"
    )
    rc, out, err = run([python, "-c", code], timeout=120, label="gemm-peaks")
    if rc != 0 or "|" not in out:
        return None
    return out.strip().splitlines()[-1].split("|")


def train_for(hrm, device, seconds, run_dir, threads):
    """Starts `hrm train` (the embedded default) and stops it like Ctrl-C after `seconds`."""
    # Each run in its own directory: the default dataset is built there on first use.
    run_dir.mkdir(parents=True, exist_ok=True)
    cmd = [hrm, "train", "--device", device, "--run-dir", str(run_dir / "run"), "--no-progress"]
    if threads:
        cmd += ["--threads", str(threads)]
    log = open(str(run_dir / "train.log"), "w")
    p = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(run_dir))
    return p, log


def stop(p, log, seconds_left):
    try:
        p.wait(timeout=max(seconds_left, 0))
    except subprocess.TimeoutExpired:
        p.send_signal(signal.SIGINT)
        try:
            p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
    log.close()


def curve(run_dir):
    """{step: lm_loss} of the training lines and the last evaluation's exact accuracy."""
    path = Path(run_dir) / "run" / "metrics.jsonl"
    points, exact = {}, None
    if not path.exists():
        return points, exact
    for line in path.read_text().splitlines():
        try:
            j = json.loads(line)
        except ValueError:
            continue
        if j.get("kind") == "train":
            v = j.get("metrics", {}).get("lm_loss")
            if isinstance(v, (int, float)):
                points[j["step"]] = float(v)
        elif j.get("kind") == "eval":
            exact = j.get("overall", {}).get("exact_accuracy")
    return points, exact


def fmt(x, digits=1):
    return "-" if x is None else f"{x:.{digits}f}"


def ratio(a, b):
    return "-" if a is None or b in (None, 0) else f"{a / b:.2f}"


def main():
    global LOGS, DEADLINE
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--hrm", default=str(ROOT / "target" / "release" / "hrm"))
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--golden", nargs="*",
                    default=[str(ROOT.parent / "shared" / "golden"),
                             str(ROOT.parent / "shared" / "golden-trm")])
    ap.add_argument("--reference", help="a checkout of sapientinc/HRM, to time its modules")
    ap.add_argument("--python", default=sys.executable, help="python with torch 2.11")
    ap.add_argument("--presets", default="tiny,small,paper,paper@768",
                    help="bench presets; `NAME@B` times NAME at batch B instead of its own")
    ap.add_argument("--dtypes", default="f32,bf16")
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per bench")
    ap.add_argument("--threads", type=int, help="CPU intra-op threads (CPU runs)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile timings")
    ap.add_argument("--no-graphs", action="store_true",
                    help="skip the CUDA-graph timings of hrm-rs (`hrm bench --cuda-graphs`)")
    ap.add_argument("--train-seconds", type=int, default=120)
    ap.add_argument("--budget-seconds", type=float, default=470,
                    help="stop starting new measurements after this long (the table says what "
                         "was skipped); the torch.compile timings come last")
    ap.add_argument("--tests", help="a directory of test executables (scripts/gpu_prepare.sh): "
                                    "their GPU-only tests run first")
    ap.add_argument("--logs", help="keep every command's output in this directory")
    ap.add_argument("--out", help="also write the table (markdown) to this file, after each part")
    args = ap.parse_args()

    if args.logs:
        LOGS = Path(args.logs)
        LOGS.mkdir(parents=True, exist_ok=True)
    # `hrm` links libtorch dynamically and its rpath names the build machine's copy: give it the
    # libtorch of the python that times the reference here (both must be torch 2.11).
    rc, out, _ = run([args.python, "-c", "import torch, os; print(os.path.dirname(torch.__file__))"],
                     timeout=120, label="torch-lib")
    if rc == 0 and out.strip():
        lib = str(Path(out.strip().splitlines()[-1]) / "lib")
        os.environ["LD_LIBRARY_PATH"] = os.pathsep.join(
            [lib] + [p for p in os.environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p])

    t0 = time.time()
    DEADLINE = t0 + args.budget_seconds
    if not Path(args.hrm).is_absolute():
        args.hrm = str(Path(args.hrm).resolve())
    work = Path(tempfile.mkdtemp(prefix="hrm-gpu-check-"))
    head = [f"# hrm-rs GPU check: device `{args.device}`, `{args.hrm}`", ""]
    peaks = gemm_peaks(args.python, args.device)
    if peaks:
        head.append(f"Device {peaks[0]} (torch {peaks[3]}): matmul {peaks[1]} TFLOP/s float32, "
                    f"{peaks[2]} TFLOP/s bfloat16, measured in this run "
                    f"({'8192' if args.device.startswith('cuda') else '1024'}^3).")
        head.append("")
    notes = []
    sections = {"tests": [], "train": [], "golden": [], "speed": []}

    def emit(final=False):
        lines = head + sections["tests"] + sections["train"] + sections["golden"] + sections["speed"]
        lines += ["", f"Total time: {time.time() - t0:.0f} s{'' if final else ' (so far)'}."]
        if notes:
            lines += ["", "Notes:"] + [f"- {n}" for n in notes]
        table = "\n".join(lines)
        if args.out:
            Path(args.out).write_text(table + "\n")
        return table

    if args.tests:
        rows = ["", "## GPU-only unit tests", "", "| test executable | result | summary |",
                "|---|---|---|"]
        rows += [f"| {n} | {r} | {m} |" for n, r, m in gpu_tests(args.tests)]
        sections["tests"] = rows
        emit()

    # The training runs come first and alone (the device run and the CPU run side by side, on
    # different hardware), so that they do not disturb the timings below.
    train_runs = {}
    if args.train_seconds > 0:
        for dev in dict.fromkeys([args.device, "cpu"]):
            d = work / f"train-{dev.replace(':', '')}"
            train_runs[dev] = (d, *train_for(args.hrm, dev, args.train_seconds, d, args.threads))
    started = time.time()

    if train_runs:
        rows = ["", f"## Default config, {args.train_seconds} s of training", "",
                "| device | steps | last lm_loss | held-out exact |", "|---|---:|---:|---:|"]
        curves = {}
        for dev, (d, p, log) in train_runs.items():
            stop(p, log, args.train_seconds - (time.time() - started))
            if LOGS is not None:
                tag = dev.replace(":", "")
                (LOGS / f"train-{tag}.log").write_text((d / "train.log").read_text())
                metrics = d / "run" / "metrics.jsonl"
                if metrics.exists():
                    (LOGS / f"train-{tag}-metrics.jsonl").write_text(metrics.read_text())
            pts, exact = curve(d)
            curves[dev] = pts
            last = max(pts) if pts else None
            rows.append(f"| {dev} | {last if last else 0} | {fmt(pts[last], 4) if last else '-'} "
                        f"| {fmt(exact, 4) if exact is not None else '-'} |")
        if len(curves) == 2:
            a, b = curves.values()
            common = sorted(set(a) & set(b))
            if common:
                worst = max(abs(a[s] - b[s]) for s in common)
                rows.append("")
                rows.append(f"Curves at the {len(common)} logged steps both reached (up to step "
                            f"{common[-1]}): largest |lm_loss difference| {worst:.4f}.")
            else:
                notes.append("the device and CPU runs share no logged step")
        sections["train"] = rows
        emit()

    rows = ["", "## Golden cases", "",
            "| case | f32 | forward (share of tol) | bf16 smoke | forward (share of rel-L2 bound) |",
            "|---|---|---:|---|---:|"]
    f32 = golden(args.hrm, args.golden, args.device, False)
    bf = {r[0]: r for r in golden(args.hrm, args.golden, args.device, True)}
    for name, status, fwd in f32:
        b = bf.get(name, (name, "-", "-"))
        rows.append(f"| {name} | {status} | {fwd} | {b[1]} | {b[2]} |")
    sections["golden"] = rows
    emit()

    # Every hrm-rs and eager-reference timing first, then torch.compile's (its compilation is
    # the slow part) while the budget lasts.
    settings = [(spec, dtype) for spec in args.presets.split(",") for dtype in args.dtypes.split(",")]
    res = {k: {} for k in settings}

    graphs = args.device.startswith("cuda") and not args.no_graphs
    if not args.device.startswith("cuda"):
        notes.append("CUDA graphs are CUDA only: no graphs columns on this device")

    def speed_rows():
        rows = ["", "## Speed (same run, same host)", "",
                "| preset | dtype | hrm-rs train samples/s | ref eager | ref compile | ratio eager "
                "| ratio compile | hrm-rs eval puzzles/s | ref eager | ref compile | ratio eager "
                "| ratio compile |",
                "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for (spec, dtype), r in res.items():
            tr, ev = r.get("hrm", (None, None))
            re_tr, re_ev = r.get("eager", (None, None))
            rc_tr, rc_ev = r.get("compile", (None, None))
            rows.append(
                f"| {spec} | {dtype} | {fmt(tr)} | {fmt(re_tr)} | {fmt(rc_tr)} | {ratio(tr, re_tr)} "
                f"| {ratio(tr, rc_tr)} | {fmt(ev, 2)} | {fmt(re_ev, 2)} | {fmt(rc_ev, 2)} "
                f"| {ratio(ev, re_ev)} | {ratio(ev, rc_ev)} |")
        if graphs:
            rows += ["", "hrm-rs with CUDA graphs (`hrm bench --cuda-graphs`: the training step's "
                     "forward and backward and the evaluation rollout replayed; optimisers eager):",
                     "", "| preset | dtype | train samples/s | vs hrm-rs eager | vs ref eager "
                     "| vs ref compile | eval puzzles/s | vs hrm-rs eager | vs ref eager "
                     "| vs ref compile | replay check |",
                     "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
            for (spec, dtype), r in res.items():
                tr, ev = r.get("hrm", (None, None))
                gt, ge = r.get("graphs", (None, None))
                re_tr, re_ev = r.get("eager", (None, None))
                rc_tr, rc_ev = r.get("compile", (None, None))
                rows.append(
                    f"| {spec} | {dtype} | {fmt(gt)} | {ratio(gt, tr)} | {ratio(gt, re_tr)} "
                    f"| {ratio(gt, rc_tr)} | {fmt(ge, 2)} | {ratio(ge, ev)} | {ratio(ge, re_ev)} "
                    f"| {ratio(ge, rc_ev)} | {r.get('check') or '-'} |")
        return rows

    def time_reference(spec, dtype, mode):
        tr, ev, why = reference_bench(args.python, args.reference, spec, dtype, args.device,
                                      args.steps, args.threads, mode == "compile")
        res[(spec, dtype)][mode] = (tr, ev)
        if why:
            notes.append(f"reference {mode} {spec} {dtype}: {why}")

    for spec, dtype in settings:
        tr, ev, why, _ = hrm_bench(args.hrm, spec, dtype, args.device, args.steps, args.threads)
        res[(spec, dtype)]["hrm"] = (tr, ev)
        if why:
            notes.append(f"hrm bench {spec} {dtype}: {why}")
        if graphs:
            tr, ev, why, check = hrm_bench(args.hrm, spec, dtype, args.device, args.steps,
                                           args.threads, graphs=True)
            res[(spec, dtype)]["graphs"] = (tr, ev)
            res[(spec, dtype)]["check"] = check.split(" (")[0] if check else None
            if check:
                notes.append(f"hrm bench --cuda-graphs {spec} {dtype}: {check}")
            if why:
                notes.append(f"hrm bench --cuda-graphs {spec} {dtype}: {why}")
        if args.reference:
            time_reference(spec, dtype, "eager")
        sections["speed"] = speed_rows()
        emit()
    if args.reference and not args.no_compile:
        for spec, dtype in reversed(settings):  # the largest settings first
            time_reference(spec, dtype, "compile")
            sections["speed"] = speed_rows()
            emit()
    if not args.reference:
        notes.append("no --reference checkout given: the reference columns are empty")
    print(emit(final=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
