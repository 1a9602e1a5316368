#!/usr/bin/env python3
"""Micro-benchmark of the native encoder's matrix products: torch's default BLAS path vs oneDNN.

    python benchmarks/gemm.py                      # MiniLM shapes (H=384, I=1536), M = 128/256/512/4096
    python benchmarks/gemm.py --hidden 768 --inter 3072 --rows 128,512 --rounds 15

Candidates (each computes ``x @ W.T + b`` for ``x`` of shape ``(M, K)``, ``W`` of shape ``(N, K)``):

* ``F.linear``        torch.nn.functional.linear (MKL sgemm / the default BLAS path);
* ``mkl packed``      torch.ops.mkl._mkl_linear with the weight packed once by
                      torch.ops.mkl._mkl_reorder_linear_weight (what inductor's CPU freezing uses);
* ``onednn``          torch.ops.mkldnn._linear_pointwise on the plain weight;
* ``onednn packed``   the same on a weight reordered once by torch.ops.mkldnn._reorder_linear_weight;
* ``onednn packed bf16``  bf16 activations and weights (the ``--dtype bfloat16`` path);
* ``F.linear bf16``   for reference.

The machine may be busy, so absolute numbers are noisy: the candidates run alternately
(A, B, C, ..., A, B, C, ...) and each reports the median over ``--rounds`` rounds of the
GFLOP/s of one round (``--reps`` calls on all four layer shapes). Ratios against F.linear
are medians of per-round ratios, which cancels most of the load drift.

It also checks, per candidate and M, whether a row's result is bit-identical wherever
it sits in the tile and whatever the other rows hold ("row-indep"), which the native
encoder needs for batch-size-invariant results.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F


def candidates(shapes, m: int):
    """name -> (prepare(W, b) -> state, call(x, state) -> y, input dtype)."""
    mk = torch.ops.mkldnn
    out = {
        "F.linear": (lambda w, b: (w, b), lambda x, s: F.linear(x, *s), torch.float32),
        "mkl packed": (lambda w, b: (torch.ops.mkl._mkl_reorder_linear_weight(w, m), w, b),
                       lambda x, s: torch.ops.mkl._mkl_linear(x, s[0], s[1], s[2], m), torch.float32),
        "onednn": (lambda w, b: (w, b), lambda x, s: mk._linear_pointwise(x, s[0], s[1], "none", [], ""),
                   torch.float32),
        "onednn packed": (lambda w, b: (mk._reorder_linear_weight(w, m), b),
                          lambda x, s: mk._linear_pointwise(x, s[0], s[1], "none", [], ""), torch.float32),
    }
    if mk._is_mkldnn_bf16_supported():
        out["onednn packed bf16"] = (lambda w, b: (mk._reorder_linear_weight(w.bfloat16(), m), b.bfloat16()),
                                     lambda x, s: mk._linear_pointwise(x, s[0], s[1], "none", [], ""),
                                     torch.bfloat16)
        out["F.linear bf16"] = (lambda w, b: (w.bfloat16(), b.bfloat16()), lambda x, s: F.linear(x, *s),
                                torch.bfloat16)
    return out


def row_independent(prep, call, dt, k: int, n: int, m: int) -> bool:
    """Is row r of the output the same bits whatever row it is and whatever its neighbours are?"""
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(n, k, generator=g), torch.randn(n, generator=g)
    s = prep(w, b)
    row = torch.randn(1, k, generator=g).to(dt)
    ref = call(torch.cat([row, torch.zeros(m - 1, k, dtype=dt)]), s)[0]
    for pos in (1, m // 2 - 1, m - 1):
        x = torch.randn(m, k, generator=g).to(dt)
        x[pos] = row
        if not torch.equal(call(x, s)[pos], ref):
            return False
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hidden", type=int, default=384)
    ap.add_argument("--inter", type=int, default=1536)
    ap.add_argument("--rows", default="128,256,512,4096", help="M values (tile rows or packed token counts)")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--reps", type=int, default=0, help="calls per shape per round (default: ~50 MFLOP... auto)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time instead of wall time: with --threads 1 on a busy machine "
                         "this counts the work done, not the share of the CPU the process got")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    clock = time.process_time if a.cpu_time else time.perf_counter
    H, I = a.hidden, a.inter
    shapes = [(H, 3 * H), (H, H), (H, I), (I, H)]  # (K, N): qkv, attention out, ffn in, ffn out
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"cpu {torch.backends.cpu.get_cpu_capability()}, layer shapes (K,N) {shapes}")
    print(f"{'M':>5} {'candidate':20} {'GFLOP/s':>8} {'vs F.linear':>11} {'row-indep':>9}")
    with torch.inference_mode():
        for m in [int(v) for v in a.rows.split(",")]:
            cands = candidates(shapes, m)
            g = torch.Generator().manual_seed(1)
            states = {name: [prep(torch.randn(n, k, generator=g), torch.randn(n, generator=g)) for k, n in shapes]
                      for name, (prep, _, _) in cands.items()}
            xs = {dt: [torch.randn(m, k, generator=g).to(dt) for k, _ in shapes]
                  for dt in {c[2] for c in cands.values()}}
            flops_call = sum(2 * m * k * n for k, n in shapes)
            reps = a.reps or max(1, int(4e9 / flops_call))  # ~4 GFLOP per candidate per round
            times = {name: [] for name in cands}
            for r in range(a.rounds + 1):
                for name, (_, call, dt) in cands.items():
                    st, x = states[name], xs[dt]
                    t = clock()
                    for _ in range(reps):
                        for i in range(len(shapes)):
                            call(x[i], st[i])
                    if r:  # round 0 warms up
                        times[name].append(clock() - t)
            base = times["F.linear"]
            for name, (prep, call, dt) in cands.items():
                gf = flops_call * reps / statistics.median(times[name]) / 1e9
                ratio = statistics.median(b / t for b, t in zip(base, times[name]))
                indep = all(row_independent(prep, call, dt, k, n, m) for k, n in shapes)
                print(f"{m:5} {name:20} {gf:8.1f} {ratio:10.2f}x {'yes' if indep else 'NO':>9}")


if __name__ == "__main__":
    main()
