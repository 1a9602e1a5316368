#!/usr/bin/env python3
"""Fine-tuning throughput: bertcli's training core vs transformers' Trainer with its defaults.

Target (the performance issue): training throughput >= 1.3x the samples/s of a plain
``Trainer`` run, on the same machine, model, data and seed, reaching the same final metric.

    python benchmarks/train.py                          # 2,000 SST-2 samples, 1 epoch, batch 32, 3 rounds
    python benchmarks/train.py --dtype bfloat16         # bf16 autocast on both sides (Trainer bf16=True)
    python benchmarks/train.py --threads 1 --cpu-time   # process CPU time: the work, not the CPU share got
    python benchmarks/train.py --samples 64 --repeats 1 # smoke test (2 steps per run; a few minutes)

What runs, each in a fresh child process (so peak RSS is its own), bertcli and the
reference alternating for --repeats rounds:

- data: the first --samples lines of ``../shared/data/sst2/train.tsv`` (written to one
  temporary TSV that both sides read), --epochs passes, batch --batch-size, learning
  rate --lr, max_length 128, seed --seed; the model folder --model (default: the
  installed all-MiniLM-L6-v2 encoder) with a fresh 2-label classification head. Both
  sides call ``transformers.set_seed(seed)`` right before loading the model, so the new
  head starts from the same weights.
- bertcli: ``bertcli.train.train_classify`` (what ``bertcli train classify`` calls) with
  ``TrainOptions(epochs, batch_size, learning_rate, max_length=128, seed, device="cpu",
  dtype)`` and bertcli's defaults for everything else (full fine-tuning, no LoRA; its
  defaults include weight decay 0.01, length-grouped batches and a checkpoint at each
  epoch end, which is what a user of ``bertcli train classify`` gets).
- reference: what a user writes with transformers' defaults:
  ``AutoModelForSequenceClassification.from_pretrained(folder, num_labels=2,
  local_files_only=True)``, the fast tokenizer (truncation, max_length 128, no padding),
  ``DataCollatorWithPadding`` and ``Trainer`` with default ``TrainingArguments`` except
  output_dir, per_device_train_batch_size, learning_rate, num_train_epochs, seed,
  use_cpu=True, report_to="none", save_strategy="no", logging_strategy="no",
  disable_tqdm=True (and bf16=True with --dtype bfloat16). A passive callback records
  the clock at train begin / epoch end; it does nothing else.

What is timed (same definition on both sides): the training loop only, from the
Trainer's ``on_train_begin`` to the last ``on_epoch_end`` -- bertcli reports both moments
through its progress events ``train_begin`` / ``epoch_end`` (``train_end`` if a core
emits no ``epoch_end``). Excluded on both sides: imports, reading and tokenizing the data,
loading the model, building the optimizer and data loader, the final save (bertcli's last
epoch-end checkpoint is saved after ``on_epoch_end``, so it is outside too; with
--epochs > 1 the earlier ones are inside, as a bertcli user pays for them). This window
is Trainer's own ``train_runtime`` less its end-of-training bookkeeping.
samples/s = training examples x epochs / loop seconds; tokens/s counts real tokens only
(no padding), the same number for both. The ``e2e s`` column is informational (always wall time): the whole
fine-tune from reading the data to the model folder written (bertcli: the
``train_classify`` call; reference: read, tokenize, load, train, ``save_model``).
Peak RSS is the child's ``ru_maxrss`` right after training (before the evaluation).

Same final metric: after training each child scores SST-2 dev (872 sentences) with
the same code -- a plain batched float32 forward pass (batches of 64, padded, max_length
128, tokenizer of the base folder) of the trained model in memory -- and reports
accuracy. The ratio is bertcli samples/s over Trainer samples/s per round, the median
over the rounds (as benchmarks/bench.py). Nothing touches the network
(``HF_HUB_OFFLINE=1``, ``local_files_only``); without ``../shared/data`` it skips with
a message (exit 0).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

HERE = Path(__file__).resolve().parent
SHARED = HERE.parent.parent / "shared" / "data"
SST2 = SHARED / "sst2"
MAX_LENGTH = 128
EVAL_BATCH = 64
TARGET = 1.3


# ------------------------------------------------------------------ data

def read_tsv(path: Path) -> list[tuple[str, str]]:
    """(sentence, label) rows of a GLUE SST-2 TSV (header ``sentence\\tlabel``)."""
    rows = []
    for ln in path.read_text(encoding="utf-8").splitlines()[1:]:
        if ln.strip():
            text, label = ln.rsplit("\t", 1)
            rows.append((text.strip(), label.strip()))
    return rows


def write_subset(n: int, dest: Path) -> int:
    """The first ``n`` data lines of SST-2 train (with its header) into ``dest``."""
    lines = (SST2 / "train.tsv").read_text(encoding="utf-8").splitlines()
    body = [ln for ln in lines[1:] if ln.strip()][:n]
    dest.write_text("\n".join([lines[0]] + body) + "\n", encoding="utf-8")
    return len(body)


# ------------------------------------------------------------------ child process

def dev_accuracy(net, tok, id2label: list[str], rows: list[tuple[str, str]]) -> float:
    """The same evaluation for both sides: batched float32 forward pass, argmax."""
    import torch

    net.eval()
    net.float()
    correct = 0
    with torch.inference_mode():
        for i in range(0, len(rows), EVAL_BATCH):
            chunk = rows[i:i + EVAL_BATCH]
            enc = tok([t for t, _ in chunk], padding=True, truncation=True, max_length=MAX_LENGTH,
                      return_tensors="pt")
            pred = net(**enc).logits.argmax(-1).tolist()
            correct += sum(id2label[p] == lab for p, (_, lab) in zip(pred, chunk))
    return correct / len(rows)


def child(a) -> None:
    import resource

    import torch

    if a.threads != torch.get_num_threads():
        # only when it changes something (see benchmarks/bench.py: an explicit
        # set_num_threads(2) slows torch 2.13's fp32 flash attention)
        torch.set_num_threads(a.threads)
    import transformers as tf

    from bertcli.loading import quiet_transformers

    quiet_transformers()
    model, data, out = Path(a.model), Path(a.data_file), Path(a.out)
    marks: dict[str, tuple[float, float]] = {}

    def mark(name: str) -> None:
        marks[name] = (time.perf_counter(), time.process_time())

    t_e2e = time.perf_counter()
    if a.impl == "bertcli":
        from bertcli.train import TrainOptions, train_classify

        def progress(ev: dict) -> None:
            kind = ev.get("event")
            if kind == "train_begin":
                marks.clear()
                mark("begin")
            elif kind in ("epoch_end", "train_end") and not (kind == "train_end" and "epoch_end" in marks):
                mark(kind)

        opts = TrainOptions(epochs=a.epochs, batch_size=a.batch_size, learning_rate=a.lr, max_length=MAX_LENGTH,
                            seed=a.seed, device="cpu", dtype=a.dtype)
        res = train_classify(model, data, out, options=opts, progress=progress)
        e2e = time.perf_counter() - t_e2e
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        steps, id2label = res.global_step, [str(x) for x in res.labels]
        net = res.model
        if net is None:  # a core that does not hand the module back: load what it wrote
            net = tf.AutoModelForSequenceClassification.from_pretrained(str(out), local_files_only=True)
    else:
        rows = read_tsv(data)
        labs = {lab for _, lab in rows}
        id2label = sorted(labs, key=int) if all(x.lstrip("-").isdigit() for x in labs) else sorted(labs)
        l2i = {lab: i for i, lab in enumerate(id2label)}
        tok = tf.AutoTokenizer.from_pretrained(str(model), local_files_only=True, use_fast=True)
        enc = tok([t for t, _ in rows], truncation=True, max_length=MAX_LENGTH)
        train_ds = [{**{k: enc[k][i] for k in enc.keys()}, "label": l2i[lab]} for i, (_, lab) in enumerate(rows)]
        tf.set_seed(a.seed)
        net = tf.AutoModelForSequenceClassification.from_pretrained(str(model), num_labels=len(id2label),
                                                                    local_files_only=True)

        class Clock(tf.TrainerCallback):
            def on_train_begin(self, args, state, control, **kw):
                marks.clear()
                mark("begin")

            def on_epoch_end(self, args, state, control, **kw):
                mark("epoch_end")

        args = tf.TrainingArguments(output_dir=str(out / "trainer"), per_device_train_batch_size=a.batch_size,
                                    learning_rate=a.lr, num_train_epochs=a.epochs, seed=a.seed, use_cpu=True,
                                    report_to="none", save_strategy="no", logging_strategy="no",
                                    disable_tqdm=True, bf16=a.dtype == "bfloat16")
        trainer = tf.Trainer(model=net, args=args, train_dataset=train_ds,
                             data_collator=tf.DataCollatorWithPadding(tok), processing_class=tok,
                             callbacks=[Clock()])
        trainer.train()
        trainer.save_model(str(out))
        e2e = time.perf_counter() - t_e2e
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        steps, net = trainer.state.global_step, trainer.model
    end = marks.get("epoch_end") or marks.get("train_end")
    if "begin" not in marks or end is None:
        raise SystemExit(f"{a.impl}: no train begin/end events seen ({sorted(marks)})")
    k = 1 if a.cpu_time else 0
    seconds = end[k] - marks["begin"][k]

    # the numbers both sides share, from the base folder's tokenizer
    base_tok = tf.AutoTokenizer.from_pretrained(str(model), local_files_only=True, use_fast=True)
    train_rows = read_tsv(data)
    tokens = sum(len(x) for x in base_tok([t for t, _ in train_rows], truncation=True,
                                          max_length=MAX_LENGTH)["input_ids"])
    acc = dev_accuracy(net, base_tok, id2label, read_tsv(Path(a.dev_file)))
    print(json.dumps({"impl": a.impl, "seconds": seconds, "e2e_s": e2e, "samples": len(train_rows) * a.epochs,
                      "tokens": tokens * a.epochs, "steps": steps, "peak_rss_mb": rss, "accuracy": acc}))


def spawn(impl: str, a, tmp: Path, data: Path) -> dict:
    out = Path(tempfile.mkdtemp(prefix=f"{impl}-", dir=tmp))
    cmd = [sys.executable, __file__, "--child", "--impl", impl, "--model", str(a.model), "--data-file", str(data),
           "--dev-file", str(SST2 / "dev.tsv"), "--out", str(out), "--epochs", str(a.epochs),
           "--batch-size", str(a.batch_size), "--lr", str(a.lr), "--seed", str(a.seed), "--dtype", a.dtype,
           "--threads", str(a.threads)]
    if a.cpu_time:
        cmd += ["--cpu-time"]
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if p.returncode != 0:
        raise SystemExit(f"child failed ({impl}):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=2000, help="first N lines of SST-2 train (default 2000)")
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--lr", type=float, default=5e-5, help="learning rate (default 5e-5)")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--model", help="base model folder (default: the installed all-MiniLM-L6-v2 encoder)")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                    help="bfloat16: autocast on both sides (bertcli --dtype bfloat16, Trainer bf16=True)")
    ap.add_argument("--cpu-time", action="store_true",
                    help="time the loop in process CPU time, not wall time: with --threads 1 on a busy "
                         "machine this measures the work, not the share of the CPU a run got")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--impl", help=argparse.SUPPRESS)
    ap.add_argument("--data-file", help=argparse.SUPPRESS)
    ap.add_argument("--dev-file", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        return child(a)

    if not (SST2 / "train.tsv").is_file() or not (SST2 / "dev.tsv").is_file():
        print(f"skipped: SST-2 not found under {SST2} (the shared data folder next to the repo)", file=sys.stderr)
        return
    if a.model is None:
        from bertcli import defaults
        from bertcli.errors import BertcliError

        try:
            a.model = str(defaults.default_encoder_dir())
        except BertcliError as e:
            print(f"skipped: {e.message}; {e.hint}", file=sys.stderr)
            return
    import torch
    import transformers

    tmp = Path(tempfile.mkdtemp(prefix="bertcli-train-bench-"))
    try:
        data = tmp / "train.tsv"
        n = write_subset(a.samples, data)
        print(f"machine: {os.cpu_count()} cores, torch {torch.__version__}, transformers {transformers.__version__}, "
              f"threads {a.threads}; {n} SST-2 samples x {a.epochs:g} epoch(s), batch {a.batch_size}, lr {a.lr:g}, "
              f"dtype {a.dtype}; model {'/'.join(Path(a.model).parts[-2:])}" + ("; CPU time" if a.cpu_time else ""))
        print(f"{'impl':9} {'samples/s':>9} {'tokens/s':>9} {'train s':>8} {'e2e s':>7} {'steps':>5} "
              f"{'RSS MB':>7} {'dev acc':>8}")
        rows = {"bertcli": [], "reference": []}
        for _ in range(a.repeats):
            for impl in ("bertcli", "reference"):
                rows[impl].append(spawn(impl, a, tmp, data))
        for impl, rs in rows.items():
            med = sorted(rs, key=lambda r: r["seconds"])[len(rs) // 2]
            print(f"{impl:9} {med['samples'] / med['seconds']:9.1f} {med['tokens'] / med['seconds']:9.0f} "
                  f"{med['seconds']:8.1f} {med['e2e_s']:7.1f} {med['steps']:5d} "
                  f"{max(r['peak_rss_mb'] for r in rs):7.0f} {med['accuracy']:8.4f}")
        ratios = [(b["samples"] / b["seconds"]) / (r["samples"] / r["seconds"])
                  for b, r in zip(rows["bertcli"], rows["reference"])]
        ratio = statistics.median(ratios)
        dt = "" if a.dtype == "float32" else f" ({a.dtype} on both)"
        print(f"ratio bertcli/Trainer: {ratio:.2f}x (median of {a.repeats} alternating runs){dt}; "
              f"target >= {TARGET:.1f}x: {'met' if ratio >= TARGET else 'not met'}")
        accs = {impl: [r["accuracy"] for r in rs] for impl, rs in rows.items()}

        def fmt(v):
            lo, hi = min(v), max(v)
            return f"{statistics.median(v):.4f}" + ("" if lo == hi else f" (runs {lo:.4f}..{hi:.4f})")

        d = statistics.median(accs["bertcli"]) - statistics.median(accs["reference"])
        print(f"SST-2 dev accuracy (872 sentences): bertcli {fmt(accs['bertcli'])}, Trainer {fmt(accs['reference'])}"
              f"; difference {d:+.4f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
