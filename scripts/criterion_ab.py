#!/usr/bin/env python3
"""Compares two builds of the criterion benches on the same machine, back to back: runs the
`before` and `after` bench executables alternately for `--rounds` rounds (so a change of load
hits both alike) and prints one Markdown table of the median time per bench id, the ratio
after / before, and each side's spread over the rounds (how noisy the machine was).

Build each side's executable with `cargo bench -p hrm-benches --no-run` (it prints the path,
`target/release/deps/bench_main-HASH`) and copy it away before building the other, e.g. a
checkout of the previous commit. Then

    HRM_BENCH_PRESETS=tiny,small python3 scripts/criterion_ab.py \\
        --before /tmp/bench-before --after /tmp/bench-after --rounds 2 \\
        --filter 'attention|swiglu|rms_norm|block|train_step_.*/step$'

The environment (HRM_BENCH_PRESETS, HRM_BENCH_DTYPES, OMP_WAIT_POLICY, ...) is passed to both.
"""

import argparse
import collections
import os
import re
import statistics
import subprocess

UNIT_MS = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}


def parse(text):
    """Bench id -> the middle estimate of its time in ms, from criterion's output."""
    times, current = {}, None
    for line in text.splitlines():
        s = line.strip()
        m = re.match(r"^(\w+_\w+/\S+)(?:\s+time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\])?$", s)
        if m and not line.startswith(" "):
            current = m.group(1)
            if m.group(2):
                times[current] = float(m.group(2)) * UNIT_MS[m.group(3)]
                current = None
            continue
        m = re.match(r"^time:\s+\[\S+ \S+ (\S+) (\S+) \S+ \S+\]", s)
        if m and current:
            times[current] = float(m.group(1)) * UNIT_MS[m.group(2)]
            current = None
    return times


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--before", required=True, help="bench executable of the old build")
    p.add_argument("--after", required=True, help="bench executable of the new build")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--filter", default="", help="criterion's bench-id regex")
    a = p.parse_args()
    runs = collections.defaultdict(lambda: {"before": [], "after": []})
    for r in range(a.rounds):
        for side in ("before", "after"):
            cmd = [getattr(a, side), "--bench"] + ([a.filter] if a.filter else [])
            load = open("/proc/loadavg").read().split()[0] if os.path.exists("/proc/loadavg") else "?"
            print(f"round {r + 1}, {side} (load {load})", flush=True)
            out = subprocess.run(cmd, capture_output=True, text=True).stdout
            for bench_id, ms in parse(out).items():
                runs[bench_id][side].append(ms)

    def spread(xs):
        return f"{100 * (max(xs) - min(xs)) / statistics.median(xs):.0f}%" if len(xs) > 1 else "-"

    print()
    print("| bench id | before ms | after ms | after / before | spread over rounds, before / after |")
    print("|---|---:|---:|---:|---:|")
    for bench_id, t in runs.items():
        if t["before"] and t["after"]:
            b, f = statistics.median(t["before"]), statistics.median(t["after"])
            print(f"| {bench_id} | {b:.1f} | {f:.1f} | {f / b:.2f} | {spread(t['before'])} / {spread(t['after'])} |")


if __name__ == "__main__":
    main()
