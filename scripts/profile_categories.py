#!/usr/bin/env python3
"""Groups flat `perf` CPU profiles into kinds of work (GEMM, attention, each elementwise op,
allocator, page faults, scheduling, OpenMP, Python, framework overhead) and prints one Markdown
table with a column per profile, in percent of that profile's samples.

Record with software sampling (virtual machines often lack hardware counters), for example

    perf record -e cpu-clock -F 499 -o small-bf16-train.data \\
        target/release/hrm bench --config small --dtype bf16 --threads 2 --eval-rollouts 0
    python3 scripts/profile_categories.py small-bf16-train.data other.data

The same libtorch runs under hrm-rs and under the reference's PyTorch, so the two profiles
group alike; the reference's adds the Python interpreter. Symbols are matched by name: oneDNN's
JIT-compiled kernels (perf's `[JIT]` pseudo-library) and MKL's are counted as GEMM.
"""

import collections
import re
import subprocess
import sys

RULES = [
    # hrm-core's own bfloat16 attention (cpp/attention.cpp): its vdpbf16ps GEMMs, softmax and
    # operand packing, all in that file's anonymous namespace.
    ("attention: hrm-rs bf16 kernels (GEMMs, softmax, packing)", lambda d, s: re.search(
        r"\(anonymous namespace\)::(gemm_tile|gemm_rows|gemm\b|forward_head|backward_head|"
        r"pack_rows|pack_words|pack_a|scores_of|exp_row|row_max|store_scaled)|Bf16Attention", s)),
    ("GEMM (oneDNN JIT, MKL)", lambda d, s: d.startswith("[JIT]") or re.search(
        r"mkl_blas|sgemm|xgemm|gemm_bf16|brgemm|jit_uni|jit_avx|dnnl::impl::cpu::x64::(matmul|brgemm|jit)", s)),
    ("attention kernel (flash, non-GEMM part)", lambda d, s: "flash_attention" in s),
    ("elementwise: hrm-rs fused kernels (residual + RMSNorm, RoPE)", lambda d, s: re.search(
        r"add_rms_norm_row|rope_row", s)),
    ("elementwise: mul", lambda d, s: "mul_kernel" in s),
    ("elementwise: add/sub", lambda d, s: re.search(r"add_kernel|sub_kernel|add_clamp", s)),
    ("elementwise: silu (+backward)", lambda d, s: "silu" in s),
    ("elementwise: casts and copies", lambda d, s: re.search(
        r"copy_kernel|reduced_float_copy|direct_copy|_to_copy|copy_impl|memcpy|memmove", s)),
    ("elementwise: exp/pow/rsqrt/other", lambda d, s: re.search(
        r"pow_|Sleef|exp|rsqrt|sqrt|where_kernel|atan2|lerp|sign_|neg_|div_|clamp|abs_|log|softmax"
        r"|VectorizedLoop|vectorized_loop|cpu_kernel|unary|binary", s)),
    ("reductions (sum, mean, argmax)", lambda d, s: re.search(
        r"reduce|inner_sum|sum_kernel|mean_kernel|argmax|norm_kernel|cascade_sum", s)),
    ("allocator (malloc/free)", lambda d, s: re.search(
        r"malloc|free|_int_|unlink_chunk|memalign|consolidate|memset|CPUAllocator|alloc_cpu", s)),
    ("kernel: page faults", lambda d, s: d == "[kernel.kallsyms]" and re.search(
        r"fault|clear_page|folio|alloc_pages|mm_|pte|lru|rmqueue|memcg|zap|unmap|mmap|tlb", s)),
    ("kernel: scheduling, futex, syscalls", lambda d, s: d == "[kernel.kallsyms]"),
    ("OpenMP runtime (libgomp: spinning, waking)", lambda d, s: "libgomp" in d),
    ("Python interpreter", lambda d, s: "python" in d.lower() or s.startswith(("_Py", "Py"))),
    ("framework: dispatch, autograd, bookkeeping", lambda d, s: True),
]


def rows(data):
    """(percent, library, symbol) of every line of `perf report` for `data`."""
    out = subprocess.run(
        ["perf", "report", "-i", data, "--no-children", "--sort", "dso,sym", "--stdio",
         "--percent-limit", "0"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.match(r"\s*([\d.]+)%\s+(\[JIT\] tid \d+|\S+)\s+\[(.)\]\s+(.*)", line)
        if m:
            yield float(m.group(1)), m.group(2), m.group(4)


def categorise(data):
    shares = collections.OrderedDict((name, 0.0) for name, _ in RULES)
    total = 0.0
    for pct, dso, sym in rows(data):
        total += pct
        for name, match in RULES:
            if match(dso, sym):
                shares[name] += pct
                break
    return {k: 100 * v / total for k, v in shares.items()} if total else shares


def main():
    files = sys.argv[1:]
    if not files:
        sys.exit(__doc__)
    res = [categorise(f) for f in files]
    names = [f.rsplit("/", 1)[-1].removesuffix(".data") for f in files]
    print("| kind of work (% of samples) | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(files))
    for name, _ in RULES:
        if max(r[name] for r in res) < 0.5:
            continue
        print(f"| {name} | " + " | ".join(f"{r[name]:.1f}" for r in res) + " |")


if __name__ == "__main__":
    main()
