#!/usr/bin/env bash
# Builds, on a machine with cargo, what scripts/gpu_check.py needs on a GPU machine without it:
# a stripped release `hrm` and the stripped test executables that hold GPU-only tests (hrm-core's
# and hrm-train's unit tests, hrm-train's `train` tests), in target/gpu-carry/ (`hrm`, `tests/`).
# Then, there:
#
#   python3 scripts/gpu_check.py --hrm target/gpu-carry/hrm --tests target/gpu-carry/tests \
#       --device cuda --reference /path/to/HRM --out gpu-check.md
set -euo pipefail
cd "$(dirname "$0")/.."

out=target/gpu-carry
cargo build --release -p hrm-cli --bin hrm
rm -rf "$out"
mkdir -p "$out/tests"
strip -o "$out/hrm" target/release/hrm

# The test executables cargo builds, as cargo reports them.
{
    cargo test --release -p hrm-core -p hrm-train --lib --no-run --message-format=json
    cargo test --release -p hrm-train --test train --no-run --message-format=json
} | python3 -c '
import json, sys
for line in sys.stdin:
    try:
        msg = json.loads(line)
    except ValueError:
        continue
    if msg.get("reason") == "compiler-artifact" and msg.get("executable") and msg["profile"]["test"]:
        print(msg["target"]["name"], msg["executable"])
' | while read -r name exe; do
    strip -o "$out/tests/$name" "$exe"
done
du -sh "$out" "$out"/hrm "$out"/tests/*
