#!/usr/bin/env python3
"""In-process A/B of native-encoder variants on one task, alternating, medians of ratios.

    python benchmarks/encoder.py --task classify --variants torch,onednn
    python benchmarks/encoder.py --task fill-mask --variants onednn,onednn-t256,onednn-t512
    python benchmarks/encoder.py --task classify --variants onednn,onednn-bf16 --lines 1000

A variant is ``KERNEL[-tN][-bf16]``: KERNEL ``torch`` (F.linear on the parameters, the
path before oneDNN packing) or ``onednn`` (weights packed once, fused epilogues); ``-tN``
sets :data:`bertcli.native.TILE` to N rows; ``-bf16`` runs the matrix products in bf16.
Each round runs every variant once over the same lines through bertcli's task function
(tokenization and post-processing included, as in a real run) in the same process, so a
busy machine slows them alike; the report is each variant's median lines/s and the median
over rounds of its per-round speed ratio to the first variant. A variant's top-1 results
(label, mask token, entity spans) are compared with the first variant's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402

from bertcli import kernels, native  # noqa: E402


def configure(lm, variant: str):
    parts = variant.split("-")
    kernel, tile, dtype = parts[0], native.TILE, torch.float32
    for p in parts[1:]:
        if p.startswith("t"):
            tile = int(p[1:])
        elif p == "bf16":
            dtype = torch.bfloat16
    os.environ["BERTCLI_ONEDNN"] = "1" if kernel == "onednn" else "0"
    native.TILE = kernels.TILE = tile  # the encoder's padding and the products' default tile
    lm.model.prepare(torch.device("cpu"), dtype)
    lm.dtype = dtype


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default="classify", choices=["fill-mask", "classify", "ner", "nsp"])
    ap.add_argument("--variants", default="torch,onednn")
    ap.add_argument("--lines", type=int, default=600)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--cpu-time", action="store_true",
                    help="time with process CPU time instead of wall time: with --threads 1 on a busy machine "
                         "this counts the work done, not the share of the CPU the process got")
    ap.add_argument("--models", help="folder with one model per task (default: build MiniLM + seeded heads)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    clock = time.process_time if a.cpu_time else time.perf_counter
    from bertcli.loading import load_model
    from bertcli.tasks import classify, fill_mask, ner, nsp

    models = Path(a.models) if a.models else Path(tempfile.mkdtemp(prefix="bertcli-enc-"))
    if not (models / a.task).is_dir():
        bench.build_models(models)
    lines = bench.real_lines(a.lines)
    data = bench.masked(lines) if a.task == "fill-mask" else lines
    lm = load_model(models / a.task, a.task, "cpu", "float32")
    run = {
        "fill-mask": lambda: fill_mask.fill_mask(lm, data, top_k=5),
        "classify": lambda: classify.classify(lm, data),
        "ner": lambda: ner.ner(lm, data, aggregation="simple"),
        "nsp": lambda: nsp.nsp(lm, data[0::2], data[1::2]),
    }[a.task]
    variants = a.variants.split(",")
    times = {v: [] for v in variants}
    top1 = {}
    for r in range(a.rounds + 1):
        for v in variants:
            configure(lm, v)
            t = clock()
            res = run()
            dt = clock() - t
            if r == 0:  # warm-up round: results only
                top1[v] = bench._top1(a.task, res)
            else:
                times[v].append(dt)
    n = len(data) if a.task != "nsp" else len(data) // 2
    base = variants[0]
    print(f"{a.task}: {n} records, threads {torch.get_num_threads()}, {a.rounds} rounds (alternating)")
    for v in variants:
        ratio = statistics.median(b / t for b, t in zip(times[base], times[v]))
        agree = sum(p == q for p, q in zip(top1[base], top1[v])) / len(top1[v])
        print(f"  {v:18} {n / statistics.median(times[v]):8.1f} lines/s  {ratio:5.2f}x vs {base}  "
              f"top-1 agreement {100 * agree:5.1f}%")


if __name__ == "__main__":
    main()
