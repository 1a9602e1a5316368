#!/usr/bin/env python3
"""Micro-benchmark of the native encoder's per-length-group attention on real length mixes.

    python benchmarks/attention.py                 # float32, torch's thread count
    python benchmarks/attention.py --dtype bfloat16 --threads 1 --cpu-time

Sequences: 640 real lines (benchmarks/bench.py's), tokenized by the MiniLM tokenizer, sorted
by length and cut into batches of 64 as bertcli does; each batch runs one layer's attention
(12 heads of 32) over its runs of equal-length sequences. Candidates, alternated per round
(median of per-round ratios to the first):

* ``sdpa``    F.scaled_dot_product_attention on the strided q/k/v views (flash kernel on CPU),
              what bertcli.native runs;
* ``math``    contiguous q/k/v, matmul, softmax, matmul (contiguous operands keep each
              sequence's result independent of the other sequences of its group);
* ``math-f32-softmax``  bf16 scores, softmax in float32 (bf16 only);
* ``sdpa-math``  torch's reference math kernel.

Each prints the largest difference from ``sdpa``.

Measured on the 2-core Zen 4 machine (torch 2.13, quiet, median of 6): float32 ``math`` vs
``sdpa`` 1.04x with torch's default threads, but 1.45x after an explicit
``torch.set_num_threads(2)``, which slows the fp32 flash kernel by ~50% (bf16 is not
affected; ``--threads`` here makes that call). End to end without the call (as the bertcli
CLI runs) math attention was 1.02x/0.99x/1.00x (classify/ner/fill-mask), so bertcli keeps SDPA.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402
from bertcli.native import length_groups  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    ap.add_argument("--threads", type=int, default=0, help="call torch.set_num_threads(N) (see above)")
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--cpu-time", action="store_true", help="process CPU time instead of wall time")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    clock = time.process_time if a.cpu_time else time.perf_counter
    dt = getattr(torch, a.dtype)
    from tokenizers import Tokenizer

    from bertcli import defaults
    tk = Tokenizer.from_file(str(defaults.default_encoder_dir() / "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(512)
    lens = sorted((len(e.ids) for e in tk.encode_batch(bench.real_lines(640))), reverse=True)
    H, heads = 384, 12
    d = H // heads
    g = torch.Generator().manual_seed(0)
    data = []
    for i in range(0, len(lens), 64):
        b = lens[i:i + 64]
        data.append((torch.randn(sum(b), 3 * H, generator=g).to(dt), length_groups(b)))

    def run(att):
        def f(qkv, groups):
            out = qkv.new_empty((qkv.shape[0], H))
            for start, count, n in groups:
                blk = qkv[start:start + count * n].view(count, n, 3, heads, d).permute(2, 0, 3, 1, 4)
                out[start:start + count * n].view(count, n, heads, d).copy_(att(blk[0], blk[1], blk[2]).transpose(1, 2))
            return out
        return f

    def f32_softmax(q, k, v):
        s = torch.matmul(q, k.transpose(-1, -2)).mul_(d ** -0.5)
        return torch.matmul(torch.softmax(s, -1, dtype=torch.float32).to(q.dtype), v)

    def math(q, k, v):
        s = torch.matmul(q.contiguous(), k.contiguous().transpose(-1, -2))
        return torch.matmul(s.mul_(d ** -0.5).softmax(-1), v.contiguous())

    cands = {"sdpa": run(F.scaled_dot_product_attention), "math": run(math)}
    if dt == torch.bfloat16:
        cands["math-f32-softmax"] = run(f32_softmax)
    cands["sdpa-math"] = run(lambda q, k, v: torch.ops.aten._scaled_dot_product_attention_math(q, k, v)[0])
    ref = [cands["sdpa"](*x) for x in data]
    times = {k: [] for k in cands}
    for r in range(a.rounds + 1):
        for name, f in cands.items():
            t = clock()
            for x in data:
                f(*x)
            if r:
                times[name].append(clock() - t)
    print(f"{len(lens)} sequences, {len(data)} batches of 64, mean length {statistics.mean(lens):.1f}, "
          f"dtype {a.dtype}, threads {torch.get_num_threads()}, {'CPU' if a.cpu_time else 'wall'} time")
    for name, f in cands.items():
        err = max((f(*x).float() - y.float()).abs().max().item() for x, y in zip(data, ref))
        ratio = statistics.median(b / t for b, t in zip(times["sdpa"], times[name]))
        print(f"  {name:17} {1000 * statistics.median(times[name]):7.1f} ms  {ratio:5.2f}x vs sdpa  "
              f"max diff {err:.1e}")


if __name__ == "__main__":
    main()
