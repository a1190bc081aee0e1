#!/usr/bin/env bash
# Builds, on a machine with cargo, everything scripts/gpu_check.py needs on a GPU machine that has
# neither cargo nor network, into one folder, target/gpu-carry/:
#   hrm          a stripped release `hrm` (libtorch is linked dynamically: about 7 MB)
#   tests/       the stripped test executables that hold GPU-only tests (hrm-core's and
#                hrm-train's unit tests, hrm-train's `train` tests)
#   golden/      copies of the golden-case directories (default ../shared/golden and
#                ../shared/golden-trm, where they exist; --golden DIR, repeatable, instead)
#   reference/   a copy of a checkout of sapientinc/HRM, with --reference DIR (its .git left out)
# Then, there (with this checkout and the folder beside it):
#
#   python3 scripts/gpu_check.py --hrm target/gpu-carry/hrm --tests target/gpu-carry/tests \
#       --golden target/gpu-carry/golden/* --reference target/gpu-carry/reference \
#       --device cuda --out gpu-check.md
set -euo pipefail
cd "$(dirname "$0")/.."

reference=""
golden=()
while [ $# -gt 0 ]; do
    case "$1" in
        --reference) reference="$2"; shift 2 ;;
        --golden) golden+=("$2"); shift 2 ;;
        *) echo "usage: $0 [--reference DIR] [--golden DIR]..." >&2; exit 2 ;;
    esac
done
if [ ${#golden[@]} -eq 0 ]; then
    for d in ../shared/golden ../shared/golden-trm; do
        [ -d "$d" ] && golden+=("$d")
    done
fi
if [ -n "$reference" ] && [ ! -f "$reference/models/hrm/hrm_act_v1.py" ]; then
    echo "--reference $reference: not a checkout of sapientinc/HRM (no models/hrm/hrm_act_v1.py)" >&2
    exit 2
fi

out=target/gpu-carry
cargo build --release -p hrm-cli --bin hrm
rm -rf "$out"
mkdir -p "$out/tests" "$out/golden"
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

for d in "${golden[@]}"; do
    cp -r "$d" "$out/golden/$(basename "$d")"
done
if [ -n "$reference" ]; then
    mkdir -p "$out/reference"
    (cd "$reference" && tar --exclude=.git -cf - .) | (cd "$out/reference" && tar -xf -)
fi
du -shc "$out"/*
