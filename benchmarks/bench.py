#!/usr/bin/env python3
"""bertcli vs the transformers pipeline, side by side on the same machine, model and inputs.

Each measurement runs in a fresh child process, bertcli and the reference alternate, and
the ratio is the median over --repeats alternating runs. Peak RSS is each process's own:
a child reports its VmHWM and the --rss runs are measured through a small launcher, since
ru_maxrss of a process forked from this (large) parent starts at the parent's peak
(see peak_rss_mb() and run_measured()).

    python benchmarks/bench.py                       # all tasks, float32
    python benchmarks/bench.py --tasks classify --dtype bfloat16 --lines 2000
    python benchmarks/bench.py --cold                # + whole-process start-up timings
    python benchmarks/bench.py --tasks none --cold --contention   # issue #18: one-liners vs ONNX Runtime,
                                                                  # throughput beside a busy process
    python benchmarks/bench.py --tasks none --rss     # only peak RSS streaming 2k vs 200k lines
    python benchmarks/bench.py --tasks sst2-distilbert  # DistilBERT SST-2 classifier vs its pipeline

Inputs: real English lines from ../shared/data (sst2 sentences and sentences of the
books), one [MASK] per line for fill-mask. Models: the shipped defaults when present,
else the all-MiniLM-L6-v2 encoder with seeded random heads (speed does not depend on
the head's training). ``sst2-distilbert`` is classify on a DistilBERT laid out like
``distilbert-base-uncased-finetuned-sst-2-english`` (the transformers pipeline's default
sentiment model: its config.json fields, see build_distilbert_sst2()) with seeded random
weights, run by bertcli's native encoder. Useful FLOPs count real tokens only (no padding):
per sequence of n tokens and each layer 2*n*(4H^2 + 2HI) + 4*n^2*H, plus the MLM head
on mask rows for fill-mask. The peak is the best fp32 GEMM rate torch reaches here.
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
TASKS = ("fill-mask", "classify", "ner", "nsp", "sst2-distilbert")
#: bench rows that run another row's bertcli task on their own model
KIND = {"sst2-distilbert": "classify"}
W = max(len(t) for t in TASKS)  # task column width
PIPE = {"fill-mask": "fill-mask", "classify": "text-classification", "ner": "token-classification"}


# ------------------------------------------------------------------ inputs and models

def real_lines(n: int, seed: int = 0) -> list[str]:
    sst = []
    f = SHARED / "sst2" / "train.tsv"
    if f.is_file():
        sst = [ln.split("\t")[0].strip() for ln in f.read_text(encoding="utf-8").splitlines()[1:]]
        sst = [s for s in sst if len(s.split()) >= 4]
    sents = []
    for book in sorted((SHARED / "books").glob("*.txt"))[:6]:
        text = book.read_text(encoding="utf-8-sig").replace("\r\n", "\n")
        m = re.search(r"\*\*\* ?START OF.*?\*\*\*", text)
        body = text[m.end():] if m else text
        body = re.sub(r"\s+", " ", body[:300000])
        sents += [s for s in re.split(r"(?<=[.!?])\s+", body) if 20 <= len(s) <= 400]
    if not sst and not sents:
        raise SystemExit(f"no data under {SHARED}")
    rnd = random.Random(seed)
    out = rnd.sample(sst, min(len(sst), n // 3)) + rnd.sample(sents, min(len(sents), n - n // 3))
    rnd.shuffle(out)
    return out[:n]


def masked(lines: list[str], mask: str = "[MASK]", seed: int = 0) -> list[str]:
    rnd = random.Random(seed)
    out = []
    for s in lines:
        w = s.split(" ")
        i = rnd.randrange(len(w))
        w[i] = mask
        out.append(" ".join(w))
    return out


def build_models(root: Path, only=None) -> dict[str, Path]:
    """One full (merged) checkpoint per task (of ``only``, when given), saved as safetensors,
    that both sides load.

    The shipped defaults when present (fill-mask and nsp: ``pretraining``, classify:
    ``sentiment``, ner: ``ner``), merged from their LoRA adapters by the transformers
    backend, so agreement figures are on trained heads; else MiniLM with seeded random
    heads (speed does not depend on the head's training).
    """
    import torch
    import transformers as tf

    from bertcli import defaults

    from bertcli.loading import quiet_transformers
    quiet_transformers()
    enc = defaults.default_encoder_dir()
    out = {}
    spec = {"fill-mask": tf.BertForMaskedLM, "classify": tf.BertForSequenceClassification,
            "ner": tf.BertForTokenClassification, "nsp": tf.BertForNextSentencePrediction}
    shipped = {"fill-mask": "pretraining", "classify": "sentiment", "ner": "ner", "nsp": "pretraining"}
    for task, cls in spec.items():
        if only is not None and task not in only:
            continue
        d = root / task
        src = defaults.DEFAULTS_DIR / shipped[task]
        if (src / "adapter_config.json").is_file():
            os.environ["BERTCLI_BACKEND"] = "transformers"
            from bertcli.loading import load_model
            lm = load_model(src, task, "cpu")
            del os.environ["BERTCLI_BACKEND"]
            model = lm.model.merge_and_unload() if hasattr(lm.model, "merge_and_unload") else lm.model
            model.save_pretrained(str(d), safe_serialization=True)
            tf.AutoTokenizer.from_pretrained(str(src)).save_pretrained(str(d))
            out[task] = d
            continue
        kw = {}
        if task == "classify":
            kw = dict(num_labels=2, id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
        if task == "ner":
            labels = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
            kw = dict(num_labels=9, id2label=dict(enumerate(labels)), label2id={v: i for i, v in enumerate(labels)})
        torch.manual_seed(0)
        m = cls.from_pretrained(str(enc), **kw)
        m.save_pretrained(str(d), safe_serialization=True)
        tf.AutoTokenizer.from_pretrained(str(enc)).save_pretrained(str(d))
        out[task] = d
    return out


#: config.json of distilbert-base-uncased-finetuned-sst-2-english (Hugging Face hub), the fields
#: that shape the network and its labels; dim/n_layers/n_heads/hidden_dim can be scaled down
#: with --distilbert-size.
DISTILBERT_SST2 = {
    "activation": "gelu", "architectures": ["DistilBertForSequenceClassification"], "attention_dropout": 0.1,
    "dim": 768, "dropout": 0.1, "finetuning_task": "sst-2", "hidden_dim": 3072,
    "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}, "initializer_range": 0.02,
    "label2id": {"NEGATIVE": 0, "POSITIVE": 1}, "max_position_embeddings": 512, "model_type": "distilbert",
    "n_heads": 12, "n_layers": 6, "pad_token_id": 0, "qa_dropout": 0.1, "seq_classif_dropout": 0.2,
    "sinusoidal_pos_embds": False, "vocab_size": 30522,
}


def build_distilbert_sst2(d: Path, size: str = "base") -> Path:
    """A DistilBertForSequenceClassification laid out like distilbert-base-uncased-finetuned-sst-2-english,
    with seeded random weights (speed does not depend on training), saved as safetensors.

    ``size`` "base": the real sizes (dim 768, 6 layers, 12 heads, hidden_dim 3072, 66M
    parameters); "small": dim 384, 6 layers, 12 heads, hidden_dim 1536 (MiniLM-L6's size).
    The tokenizer is the uncased bert-base WordPiece vocabulary (30,522 pieces, the one
    distilbert-base-uncased uses), taken from the installed all-MiniLM-L6-v2 folder, with
    the model's model_max_length 512.
    """
    import torch
    import transformers as tf

    from bertcli import defaults

    cfg = dict(DISTILBERT_SST2)
    if size == "small":
        cfg.update(dim=384, hidden_dim=1536)
    d.mkdir(parents=True, exist_ok=True)
    shutil.copy(defaults.default_encoder_dir() / "vocab.txt", d / "vocab.txt")
    (d / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": True, "model_max_length": 512}))
    (d / "config.json").write_text(json.dumps(cfg))
    config = tf.AutoConfig.from_pretrained(str(d))
    torch.manual_seed(0)
    tf.DistilBertForSequenceClassification(config).save_pretrained(str(d), safe_serialization=True)
    tf.AutoTokenizer.from_pretrained(str(d)).save_pretrained(str(d))  # + tokenizer.json
    return d


# ------------------------------------------------------------------ FLOPs and peak

def encoder_flops(lengths, cfg: dict, mlm_rows: int = 0) -> float:
    from bertcli.native import native_config

    cfg = native_config(cfg)  # DistilBERT's dim/hidden_dim/n_layers under BERT's names
    H, I, Lyr, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["num_hidden_layers"], cfg["vocab_size"]
    f = sum(Lyr * (2 * n * (4 * H * H + 2 * H * I) + 4 * n * n * H) for n in lengths)
    return f + mlm_rows * 2 * (H * H + H * V)


def measure_peak(clock=time.perf_counter) -> float:
    """Best fp32 GEMM GFLOP/s torch reaches on this machine (a few shapes, best of 5), through
    its default BLAS path (``a @ b``) or oneDNN with a pre-packed weight, whichever is faster."""
    import torch

    from bertcli import native

    best = 0.0
    with torch.inference_mode():
        for m, k, n in [(2048, 2048, 2048), (4096, 384, 1536), (4096, 1536, 384)]:
            a, b = torch.randn(m, k), torch.randn(k, n)
            calls = [lambda: a @ b]
            if native.onednn_available(torch.float32):
                w = torch.ops.mkldnn._reorder_linear_weight(b.t().contiguous(), m)
                calls.append(lambda: torch.ops.mkldnn._linear_pointwise(a, w, None, "none", [], ""))
            for call in calls:
                call()
                for _ in range(5):
                    t = clock()
                    call()
                    best = max(best, 2 * m * k * n / (clock() - t) / 1e9)
    return best


# ------------------------------------------------------------------ peak RSS

def peak_rss_mb() -> float:
    """Peak RSS (MB) of this process's own address space.

    Linux: ``VmHWM`` from /proc/self/status, the high-water mark of the current mm,
    which starts afresh at execve. Not ``ru_maxrss``: at execve the kernel folds the old
    mm's high-water mark into it, and a forked child's old mm is a copy of its parent's,
    so every child of the bench parent (which has loaded and merged the models, 0.5-0.6 GB)
    reported the parent's peak, whatever it used itself. Where /proc is missing (macOS)
    this falls back to ``ru_maxrss`` (bytes there), which may carry that inherited peak.
    """
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for ln in fh:
                if ln.startswith("VmHWM:"):
                    return int(ln.split()[1]) / 1024  # kB
    except OSError:
        pass
    import resource
    ru = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return ru / (1024 * 1024) if sys.platform == "darwin" else ru / 1024


# Runs argv[1:] with stdout on /dev/null (stderr inherited) and prints, as JSON, its exit
# code, wall seconds and ``ru_maxrss`` from os.wait4. Stdlib only, run with ``-I``.
_LAUNCHER = r"""
import json, os, sys, time
t = time.perf_counter()
pid = os.posix_spawnp(sys.argv[1], sys.argv[1:], os.environ,
                      file_actions=[(os.POSIX_SPAWN_OPEN, 1, os.devnull, os.O_WRONLY, 0)])
_, status, ru = os.wait4(pid, 0)
print(json.dumps({"exit": os.waitstatus_to_exitcode(status), "seconds": time.perf_counter() - t,
                  "maxrss": ru.ru_maxrss}))
"""


def run_measured(cmd: list[str]) -> tuple[int, float, float, str]:
    """Run ``cmd`` (stdout to /dev/null) and return (exit code, peak RSS MB, seconds, stderr).

    The peak is ``ru_maxrss`` from ``os.wait4``, but not taken here: a process forked
    from this large parent starts with the parent's peak in its ru_maxrss (see
    peak_rss_mb()), and a CLI process's /proc status is gone when it exits. So a fresh,
    small ``python -I -c`` launcher spawns ``cmd`` and reports the wait4 figure: the
    measured process is a copy of the ~10 MB launcher, not of this parent. (Checked: from
    a parent holding 600 MB, ``python3 -c pass`` read 614 MB directly, 13 MB this way.)
    """
    p = subprocess.run([sys.executable, "-I", "-c", _LAUNCHER, *cmd], capture_output=True, text=True)
    if p.returncode != 0 or not p.stdout.strip():
        raise SystemExit(f"launcher failed ({p.returncode}):\n{p.stderr[-2000:]}")
    r = json.loads(p.stdout.strip().splitlines()[-1])
    scale = 1024 * 1024 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return r["exit"], r["maxrss"] / scale, r["seconds"], p.stderr


# ------------------------------------------------------------------ child process

def child(args) -> None:
    import torch

    if args.threads != torch.get_num_threads():
        # only when it changes something: an explicit set_num_threads(2) slows torch 2.13's
        # fp32 flash attention by ~50% (benchmarks/attention.py), and the CLI never calls it
        torch.set_num_threads(args.threads)
    lines = json.loads(Path(args.lines_file).read_text())
    model = Path(args.model)
    cfg = json.loads((model / "config.json").read_text())
    t_load = time.perf_counter()
    task = KIND.get(args.task, args.task)
    if args.impl == "bertcli":
        from bertcli.loading import load_model
        from bertcli.tasks import classify, fill_mask, ner, nsp
        from bertcli.tasks.base import StreamOptions

        lm = load_model(model, task, "cpu", args.dtype)
        opts = StreamOptions(batch_size=args.batch_size, max_tokens=args.max_tokens)
        run = {
            "fill-mask": lambda: fill_mask.fill_mask(lm, lines, top_k=5, opts=opts),
            "classify": lambda: classify.classify(lm, lines, opts=opts),
            "ner": lambda: ner.ner(lm, lines, aggregation="simple", opts=opts),
            "nsp": lambda: nsp.nsp(lm, lines[0::2], lines[1::2], opts=opts),
        }[task]
    else:
        import transformers as tf
        from transformers import pipeline

        from bertcli.loading import quiet_transformers
        quiet_transformers()

        if task == "nsp":
            tok = tf.AutoTokenizer.from_pretrained(str(model))
            net = tf.BertForNextSentencePrediction.from_pretrained(str(model)).eval()

            def run():
                out = []
                with torch.inference_mode():
                    for a, b in zip(lines[0::2], lines[1::2]):
                        enc = tok(a, b, return_tensors="pt", truncation=True)
                        out.append(net(**enc).logits.softmax(-1)[0, 0].item())
                return out
        else:
            kw = {"aggregation_strategy": "simple"} if task == "ner" else {}
            p = pipeline(PIPE[task], model=str(model), device="cpu", **kw)
            call = {"fill-mask": lambda: p(lines, top_k=5), "classify": lambda: p(lines, truncation=True),
                    "ner": lambda: p(lines)}[task]
            run = call
    t_load = time.perf_counter() - t_load
    run_lines = lines if task != "nsp" else lines[0::2]
    clock = time.process_time if args.cpu_time else time.perf_counter
    t = clock()
    res = run()
    dt = clock() - t
    # token counts from the model's own tokenizer (what the encoder actually processed)
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(str(model / "tokenizer.json"))
    tk.no_padding()
    tk.enable_truncation(512)
    if task == "nsp":
        lengths = [len(e.ids) for e in tk.encode_batch(list(zip(lines[0::2], lines[1::2])))]
    else:
        lengths = [len(e.ids) for e in tk.encode_batch(lines)]
    mlm_rows = len(lines) if task == "fill-mask" else 0
    out = {"impl": args.impl, "task": args.task, "seconds": dt, "load_s": t_load, "records": len(run_lines),
           "tokens": sum(lengths), "flops": encoder_flops(lengths, cfg, mlm_rows),
           "peak_rss_mb": peak_rss_mb()}
    if args.save_results:
        Path(args.save_results).write_text(json.dumps(_top1(task, res)))
    print(json.dumps(out))


def _top1(task, res):
    """Top-1 label/token per record, for agreement between dtypes."""
    if task == "fill-mask":
        return [r["predictions"][0][0]["token"] if isinstance(r, dict) else r[0]["token"] for r in res]
    if task == "classify":
        return [r["label"] for r in res]
    if task == "nsp":
        return [r["is_next"] if isinstance(r, dict) else r >= 0.5 for r in res]
    if task == "ner":
        return [[(e["entity_group"], e["start"], e["end"]) for e in r["entities"]] for r in res]
    return res


def spawn(impl, task, model, lines_file, a, dtype="float32", save=None) -> dict:
    cmd = [sys.executable, __file__, "--child", "--impl", impl, "--task", task, "--model", str(model),
           "--lines-file", str(lines_file), "--dtype", dtype, "--threads", str(a.threads),
           "--batch-size", str(a.batch_size), "--max-tokens", str(a.max_tokens)]
    if save:
        cmd += ["--save-results", str(save)]
    if a.cpu_time:
        cmd += ["--cpu-time"]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
    p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"child failed ({impl} {task}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def cold_start(model_dir: Path, n: int = 5) -> dict:
    def med(cmd):
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            subprocess.run(cmd, capture_output=True, check=True)
            ts.append(time.perf_counter() - t)
        return statistics.median(ts)

    bert = [sys.executable, "-m", "bertcli"]
    return {
        "python -c pass": med([sys.executable, "-c", "pass"]),
        "import torch": med([sys.executable, "-c", "import torch"]),
        "bertcli --help": med(bert + ["--help"]),
        "bertcli classify one line": med(bert + ["classify", "one line", "-m", str(model_dir), "-f", "jsonl"]),
        # the user's path: installed encoder + shipped adapter, merged at load
        "bertcli sentiment one line": med(bert + ["sentiment", "one line", "-f", "jsonl"]),
    }


def rss_stream(model_dir: Path, tmp: Path, sizes=(2000, 200000)) -> dict:
    """Peak RSS (MB) of whole ``bertcli classify`` processes streaming ``sizes`` lines.

    The input cycles 2,000 real lines; output goes to /dev/null. Each run is a fresh
    process, started by run_measured() through a small launcher so that its ``os.wait4``
    ru_maxrss is its own peak and not this parent's (which has loaded the models).
    """
    base = real_lines(2000)
    out = {}
    for n in sizes:
        f = tmp / f"rss-{n}.txt"
        with f.open("w", encoding="utf-8") as fh:
            for i in range(n):
                fh.write(base[i % len(base)] + "\n")
        cmd = [sys.executable, "-m", "bertcli", "classify", "-m", str(model_dir), "-i", str(f), "-f", "jsonl", "-q"]
        code, peak, secs, err = run_measured(cmd)
        if code != 0:
            raise SystemExit(f"bertcli classify failed on {n} lines:\n{err[-2000:]}")
        out[n] = (peak, secs)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(TASKS))
    ap.add_argument("--lines", type=int, default=2000)
    ap.add_argument("--repeats", type=int, default=3,
                    help="alternating timed runs per task (0: only the bf16/fp32 agreement)")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--cpu-time", action="store_true",
                    help="time the runs (and the peak) in process CPU time, not wall time: with --threads 1 "
                         "on a busy machine this measures the work, not the share of the CPU a run got")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--max-tokens", type=int, default=4096)
    ap.add_argument("--models", help="folder with one model per task (fill-mask/ classify/ ner/ nsp/ "
                                     "sst2-distilbert/); a missing sst2-distilbert/ is built")
    ap.add_argument("--distilbert-size", choices=("base", "small"), default="base",
                    help="sst2-distilbert: the real sizes (dim 768, hidden_dim 3072) or dim 384, hidden_dim 1536")
    ap.add_argument("--cold", action="store_true", help="also time whole-process start-up, and one-line runs' "
                                                         "time to their first result against an ONNX Runtime "
                                                         "one-liner (benchmarks/startup.py)")
    ap.add_argument("--contention", action="store_true",
                    help="also compare classify throughput alone and beside one busy-loop process "
                         "(benchmarks/startup.py)")
    ap.add_argument("--contention-lines", type=int, default=2000)
    ap.add_argument("--cold-rounds", type=int, default=7)
    ap.add_argument("--rss", action="store_true",
                    help="also compare peak RSS of `bertcli classify` streaming 2k vs --rss-lines lines "
                         "(200k lines take ~15-20 min on 2 cores)")
    ap.add_argument("--rss-lines", type=int, default=200000)
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl", help=argparse.SUPPRESS)
    ap.add_argument("--task", help=argparse.SUPPRESS)
    ap.add_argument("--model", help=argparse.SUPPRESS)
    ap.add_argument("--lines-file", help=argparse.SUPPRESS)
    ap.add_argument("--save-results", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)

    tmp = Path(tempfile.mkdtemp(prefix="bertcli-bench-"))
    atexit.register(shutil.rmtree, tmp, True)  # merged models and line files: ~0.5 GB per run
    need = set(a.tasks.split(",")) | ({"classify"} if a.cold or a.rss or a.contention else set()) \
        | ({"ner", "fill-mask"} if a.cold else set())
    models = ({t: Path(a.models) / t for t in TASKS} if a.models else build_models(tmp / "models", need))
    d = models.get("sst2-distilbert")
    if "sst2-distilbert" in a.tasks.split(",") and (d is None or not d.is_dir()):
        models["sst2-distilbert"] = build_distilbert_sst2(tmp / "models" / "sst2-distilbert", a.distilbert_size)
    lines = real_lines(a.lines)
    import torch
    if a.threads != torch.get_num_threads():
        torch.set_num_threads(a.threads)
    peak = measure_peak(time.process_time if a.cpu_time else time.perf_counter)
    print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, threads {a.threads}, "
          f"fp32 GEMM peak {peak:.0f} GFLOP/s; {len(lines)} lines, dtype {a.dtype}"
          + ("; CPU time" if a.cpu_time else ""))
    print(f"{'task':{W}} {'impl':9} {'lines/s':>9} {'tokens/s':>9} {'GFLOP/s':>8} {'%peak':>6} {'RSS MB':>7}")
    summary = {}
    for task in [t for t in a.tasks.split(",") if t and t != "none"]:
        data = masked(lines) if task == "fill-mask" else lines
        lf = tmp / f"{task}.json"
        lf.write_text(json.dumps(data))
        rows = {"bertcli": [], "reference": []}
        for _ in range(a.repeats if a.repeats > 0 else 0):
            for impl in ("bertcli", "reference"):
                rows[impl].append(spawn(impl, task, models[task], lf, a, a.dtype if impl == "bertcli" else "float32"))
        speeds = {}
        for impl, rs in rows.items() if a.repeats > 0 else ():
            med = sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]
            speeds[impl] = med["records"] / med["seconds"]
            gf = med["flops"] / med["seconds"] / 1e9
            print(f"{task:{W}} {impl:9} {speeds[impl]:9.1f} {med['tokens'] / med['seconds']:9.0f} {gf:8.1f} "
                  f"{100 * gf / peak:5.1f}% {max(r['peak_rss_mb'] for r in rs):7.0f}")
        if a.repeats > 0:
            ratios = [b["seconds"] and r["seconds"] / b["seconds"] for b, r in zip(rows["bertcli"], rows["reference"])]
            summary[task] = statistics.median(ratios)
            ref = "batch-1 model loop" if task == "nsp" else "pipeline"
            dt = "" if a.dtype == "float32" else f" ({a.dtype} vs the float32 {ref})"
            print(f"{task:{W}} ratio bertcli/{ref}: {summary[task]:.2f}x (median of {a.repeats} alternating runs){dt}")
        if a.dtype != "float32":
            f32, low = tmp / "f32.json", tmp / "low.json"
            spawn("bertcli", task, models[task], lf, a, "float32", f32)
            spawn("bertcli", task, models[task], lf, a, a.dtype, low)
            x, y = json.loads(f32.read_text()), json.loads(low.read_text())
            agree = sum(p == q for p, q in zip(x, y)) / len(x)
            print(f"{task:{W}} top-1 agreement {a.dtype} vs float32: {100 * agree:.1f}%")
    if a.cold:
        for k, v in cold_start(models["classify"]).items():
            print(f"cold start  {k:28} {1000 * v:7.0f} ms (median of 5)")
    if a.cold or a.contention:
        import startup

        onnx = startup.export_onnx(models["classify"], tmp / "classify.onnx")
        if a.cold:
            startup.report(cold=startup.cold_oneliners(models, onnx, a.cold_rounds), rounds=a.cold_rounds)
        if a.contention:
            cont = startup.contention(models["classify"], onnx, real_lines(a.contention_lines, seed=1), tmp,
                                      max(1, a.repeats))
            startup.report(cont=cont, crounds=max(1, a.repeats), lines=a.contention_lines)
    if a.rss:
        res = rss_stream(models["classify"], tmp, (2000, a.rss_lines))
        (small, ts), (big, tb) = res[2000], res[a.rss_lines]
        print(f"peak RSS    bertcli classify, 2000 lines {small:7.0f} MB ({ts:.0f} s); {a.rss_lines} lines "
              f"{big:7.0f} MB ({tb:.0f} s); ratio {big / small:.3f} (target <= 1.10)")


if __name__ == "__main__":
    main()
