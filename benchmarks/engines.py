#!/usr/bin/env python3
"""Ray Data and Spark against the CLI alone: lines/s and each engine's per-row overhead.

    python benchmarks/engines.py                            # sentiment, 2000 lines
    python benchmarks/engines.py --task ner --lines 1000
    python benchmarks/engines.py --engines cli,ray          # a subset (cli, predictor, ray, spark)

Rows measured, all on the same real lines (SST-2 train sentences of 4+ words; for ner
CoNLL-2003 train sentences; for fill-mask the same SST-2 sentences with their middle word
masked), the same model (the task's shipped default) and this machine's CPU:

* ``cli``: ``bertcli <task> -i lines.txt -o out.jsonl``, a fresh process (start-up and
  model load included), torch's default threads.
* ``predictor``: :class:`bertcli.Predictor` in this process, 1 thread, model already
  loaded: the inference alone, the base the engines' overhead is measured against.
* ``ray N``: ``ray.data.read_text -> map_batches(bertcli.Predictor, concurrency=N) ->
  take_all`` on a local Ray started once (``num_cpus`` = N + 1, 1 CPU and 1 torch thread
  per actor); each run starts its actors and loads the model in them.
* ``spark local[N]``: ``spark.read.text -> bertcli.spark.predict(method=udf) -> collect``
  in a fresh ``local[N]`` session (1 torch thread per task); the first run of a session
  starts the Python workers and loads the model, later runs reuse them.

Each engine runs a warm-up job, then ``--small`` lines (default 64, above the CLI's
32-record fast path) and ``--lines`` lines. ``lines/s`` is the large run's. The fixed cost
is what the small run costs beyond its share of inference; the per-row overhead is the
slope between the two runs, in CPU milliseconds per row beyond the predictor's own:
``((T_large - T_small) * workers / (lines - small)) - predictor ms/row``. The CLI's
overhead uses its thread count for ``workers``. Timings on a shared machine swing; every
number comes from one run (``--repeats`` takes the median of several).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SHARED = ROOT.parent / "shared" / "data"


def real_lines(task: str, n: int) -> list[str]:
    if task == "ner":
        from bertcli.train.data import conll_documents

        docs = conll_documents(SHARED / "conll2003" / "train.txt")
        return [" ".join(s) for doc in docs for s in doc if len(s) >= 4][:n]
    rows = (SHARED / "sst2" / "train.tsv").read_text(encoding="utf-8").splitlines()[1:]
    sents = [r.split("\t")[0].strip() for r in rows]
    sents = [s for s in sents if len(s.split()) >= 4]
    if task == "fill-mask":
        masked = []
        for s in sents:
            w = s.split()
            w[len(w) // 2] = "[MASK]"
            masked.append(" ".join(w))
        sents = masked
    if len(sents) < n:
        raise SystemExit(f"only {len(sents)} lines for {task}")
    return sents[:n]


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median(fn, repeats: int) -> float:
    return statistics.median(timed(fn) for _ in range(repeats))


# ---------------------------------------------------------------- engines

def run_cli(task: str, path: Path, out: Path) -> None:
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    subprocess.run([sys.executable, "-m", "bertcli", task, "-i", str(path), "-o", str(out), "-q"], env=env,
                   check=True, capture_output=True)


def bench_cli(task, files, repeats):
    import torch

    out = files["large"].with_suffix(".out.jsonl")
    run_cli(task, files["small"], out)  # warm the page cache
    ts = median(lambda: run_cli(task, files["small"], out), repeats)
    tl = median(lambda: run_cli(task, files["large"], out), repeats)
    return {"engine": "cli", "workers": torch.get_num_threads(), "t_small": ts, "t_large": tl}


def bench_predictor(task, lines, small, repeats):
    import torch

    import bertcli

    p = bertcli.Predictor(task=task, threads=1)
    p.predict(lines[:small])  # loads the model
    ts = median(lambda: p.predict(lines[:small]), repeats)
    tl = median(lambda: p.predict(lines), repeats)
    torch.set_num_threads(os.cpu_count() or 1)
    return {"engine": "predictor (1 thread)", "workers": 1, "t_small": ts, "t_large": tl}


def bench_ray(task, files, workers, repeats):
    import ray
    import ray.data

    import bertcli

    if not ray.is_initialized():
        t = time.perf_counter()
        ray.init(num_cpus=max(workers) + 1, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
        print(f"  ray.init: {time.perf_counter() - t:.1f} s", file=sys.stderr)
    ray.data.DataContext.get_current().enable_progress_bars = False

    def job(path, n):
        ds = ray.data.read_text(str(path), drop_empty_lines=False)
        rows = ds.map_batches(bertcli.Predictor, fn_constructor_kwargs={"task": task}, concurrency=n,
                              batch_size=64, batch_format="pyarrow").take_all()
        assert all(r["error"] is None for r in rows)

    out = []
    for n in workers:
        job(files["small"], n)  # warm-up
        ts = median(lambda: job(files["small"], n), repeats)
        tl = median(lambda: job(files["large"], n), repeats)
        out.append({"engine": f"ray, {n} worker{'s' if n > 1 else ''}", "workers": n, "t_small": ts, "t_large": tl})
    ray.shutdown()
    return out


def bench_spark(task, files, workers, repeats):
    import warnings

    from pyspark.sql import SparkSession

    import bertcli.spark

    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    out = []
    for n in workers:
        t = time.perf_counter()
        spark = (SparkSession.builder.master(f"local[{n}]").appName("bertcli-bench")
                 .config("spark.ui.enabled", "false").config("spark.ui.showConsoleProgress", "false")
                 .config("spark.driver.memory", "2g").getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        print(f"  spark local[{n}] session: {time.perf_counter() - t:.1f} s", file=sys.stderr)

        def job(path):
            df = spark.read.text(str(path)).withColumnRenamed("value", "text").repartition(n)
            rows = bertcli.spark.predict(df, task=task, batch_size=64).select("error").collect()
            assert all(r["error"] is None for r in rows)

        job(files["small"])  # warm-up: Python workers start, the model loads
        ts = median(lambda: job(files["small"]), repeats)
        tl = median(lambda: job(files["large"]), repeats)
        out.append({"engine": f"spark local[{n}]", "workers": n, "t_small": ts, "t_large": tl})
        spark.stop()
    return out


# ---------------------------------------------------------------- report

def report(rows, n_small, n_large, base_ms):
    lines = ["| engine | lines/s | wall s (%d lines) | fixed cost s | overhead ms CPU/row |" % n_large,
             "|---|---:|---:|---:|---:|"]
    for r in rows:
        slope = (r["t_large"] - r["t_small"]) / (n_large - n_small)  # wall s per extra row
        cpu_ms = slope * r["workers"] * 1000
        fixed = r["t_small"] - slope * n_small
        over = "" if r["engine"].startswith("predictor") else f"{cpu_ms - base_ms:+.2f}"
        r.update(lines_per_s=n_large / r["t_large"], fixed_s=fixed, overhead_ms_per_row=cpu_ms - base_ms)
        lines.append(f"| {r['engine']} | {n_large / r['t_large']:.0f} | {r['t_large']:.1f} | {fixed:.1f} | {over} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--task", default="sentiment", choices=["sentiment", "ner", "fill-mask"])
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--small", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--engines", default="cli,predictor,ray,spark")
    ap.add_argument("--workers", default="1,2", help="Ray actors / Spark local[N] cores to measure")
    ap.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    a = ap.parse_args()
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    engines = a.engines.split(",")
    workers = [int(x) for x in a.workers.split(",")]
    lines = real_lines(a.task, a.lines)
    tmp = Path(tempfile.mkdtemp(prefix="bertcli-engines-"))
    files = {}
    for name, k in (("small", a.small), ("large", a.lines)):
        files[name] = tmp / f"{name}.txt"
        files[name].write_text("\n".join(lines[:k]) + "\n", encoding="utf-8")
    import torch

    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, task {a.task}, {a.small} and {a.lines} "
          f"real lines, {a.repeats} run(s) each", file=sys.stderr)
    rows = []
    if "cli" in engines:
        rows.append(bench_cli(a.task, files, a.repeats))
    pred = bench_predictor(a.task, lines, a.small, a.repeats)
    base_ms = (pred["t_large"] - pred["t_small"]) / (a.lines - a.small) * 1000
    if "predictor" in engines:
        rows.append(pred)
    if "ray" in engines:
        rows += bench_ray(a.task, files, workers, a.repeats)
    if "spark" in engines:
        rows += bench_spark(a.task, files, workers, a.repeats)
    print(f"\n{a.task}, {a.lines} lines; inference alone (predictor, 1 thread): {base_ms:.2f} ms/row\n")
    print(report(rows, a.small, a.lines, base_ms))
    if a.json:
        Path(a.json).write_text(json.dumps(rows, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
