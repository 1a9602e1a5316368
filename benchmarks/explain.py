#!/usr/bin/env python3
"""``--explain`` throughput: bertcli's integrated gradients against captum's default
``LayerIntegratedGradients`` on the transformers model, same texts, same model, same targets.

    pip install -e '.[bench]'        # captum
    python benchmarks/explain.py                      # 48 SST-2 dev lines, 20 and 50 steps, 3 rounds
    python benchmarks/explain.py --lines 100 --steps 50 --rounds 5 --threads 1

Model: the shipped sentiment default (all-MiniLM-L6-v2 + its LoRA adapter and head). Texts: the
first ``--lines`` sentences of SST-2 dev (``../shared/data/sst2/dev.tsv``). Target: the label
bertcli predicts for each text (the same for every tool). Candidates, each timed in a fresh
process after loading and one warm-up text, alternated per round (median over rounds):

* ``bertcli``     :func:`bertcli.tasks.explain.explain_classify` on the native encoder's
                  differentiable forward: the steps of several texts in one pass (rows x tokens
                  up to its token budget), words and offsets included;
* ``captum``      captum's ``LayerIntegratedGradients`` on transformers' ``BertForSequenceClassification``
                  (the adapter merged, as ``BERTCLI_BACKEND=transformers`` loads it), word
                  embeddings, baseline ``[CLS] [PAD]... [SEP]``, defaults (Gauss-Legendre,
                  ``internal_batch_size`` None: all steps in one pass), ``return_convergence_delta``;
                  one text per call, as captum's BERT tutorial and transformers-interpret do;
* ``captum-b8``   the same with 8 texts per call (padded, attention mask; targets per text).

All compute the same quantity (Gauss-Legendre, same points); the report gives lines/s, the
ratio to captum (one text per call), the largest difference between bertcli's word scores and
captum's token attributions summed into the same words, and bertcli's median
|delta| / |F(x) - F(x')|.
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

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
TOOLS = ("bertcli", "captum", "captum-b8")


def lines(n: int) -> list[str]:
    f = SHARED / "sst2" / "dev.tsv"
    if not f.is_file():
        raise SystemExit(f"no SST-2 dev set at {f}")
    rows = f.read_text(encoding="utf-8").splitlines()[1:]
    return [r.split("\t")[0].strip() for r in rows[:n]]


def worker(tool: str, n_lines: int, steps: int, out: str) -> None:
    import torch

    if os.environ.get("BENCH_THREADS"):
        torch.set_num_threads(int(os.environ["BENCH_THREADS"]))
    from bertcli import load_model
    from bertcli.tasks import explain as X
    from bertcli.tasks.classify import classify

    texts = lines(n_lines)
    native = load_model(None, "classify", "cpu", default="sentiment")
    names = [native.config.id2label[k] for k in range(native.config.num_labels)]
    labels = [names.index(r["label"]) for r in classify(native, texts)]
    tok = native.tokenizer
    enc = tok(texts, return_token_type_ids=True)
    n_tokens = sum(len(ids) for ids in enc["input_ids"])
    attrs, rel = [], []
    if tool == "bertcli":
        X.explain_classify(native, texts[:1], labels=labels[:1], steps=steps)  # warm-up
        t0 = time.perf_counter()
        got = X.explain_classify(native, texts, labels=labels, steps=steps)  # as --explain runs it
        secs = time.perf_counter() - t0
        for e in got:
            ex = e["explanation"]
            attrs.append([w["score"] for w in e["attributions"]])
            rel.append(abs(ex["delta"]) / max(abs(ex["logit"] - ex["baseline_logit"]), 1e-12))
    else:
        from captum.attr import LayerIntegratedGradients

        os.environ["BERTCLI_BACKEND"] = "transformers"
        model = load_model(None, "classify", "cpu", default="sentiment").model.eval()
        per_call = 8 if tool == "captum-b8" else 1

        def forward(ids, mask, tt):
            return model(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits

        lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
        pad = tok.pad_token_id

        def run(idx):
            L = max(len(enc["input_ids"][i]) for i in idx)
            ids = torch.full((len(idx), L), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), L), dtype=torch.long)
            for k, i in enumerate(idx):
                n = len(enc["input_ids"][i])
                ids[k, :n] = torch.tensor(enc["input_ids"][i])
                mask[k, :n] = 1
            tt = torch.zeros_like(ids)
            base = torch.where(mask.bool(), torch.full_like(ids, pad), ids)
            special = torch.tensor([[s is None for s in enc.sequence_ids(i)] + [False] * (L - len(enc["input_ids"][i]))
                                    for i in idx])
            base = torch.where(special, ids, base)
            a, d = lig.attribute(ids, baselines=base, target=[labels[i] for i in idx],
                                 additional_forward_args=(mask, tt), n_steps=steps, return_convergence_delta=True)
            return a.sum(-1), d

        run([0])  # warm-up
        t0 = time.perf_counter()
        res = [run(list(range(s, min(s + per_call, len(texts))))) for s in range(0, len(texts), per_call)]
        secs = time.perf_counter() - t0
        wenc = tok(texts, return_offsets_mapping=True)
        rows_ = [row.double().numpy() for a, _ in res for row in a]
        for i, row in enumerate(rows_):  # words, as bertcli sums them (outside the timing)
            doc = X._doc(wenc, i, (texts[i],))
            attrs.append([w["score"] for w in X.words(doc, row[:len(wenc["input_ids"][i])])])
    Path(out).write_text(json.dumps({"seconds": secs, "lines": len(texts), "tokens": n_tokens, "attributions": attrs,
                                     "rel_delta": rel}))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=48)
    ap.add_argument("--steps", default="20,50", help="comma-separated step counts")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads(N) in every worker")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        worker(a.worker, a.lines, int(a.steps), a.out)
        return
    env = dict(os.environ, TOKENIZERS_PARALLELISM="false")
    if a.threads:
        env["BENCH_THREADS"] = str(a.threads)
    tools = a.tools.split(",")
    rows = []
    for steps in [int(s) for s in a.steps.split(",")]:
        times = {t: [] for t in tools}
        outs: dict[str, dict] = {}
        for rnd in range(a.rounds):
            for t in tools:
                with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
                    path = f.name
                subprocess.run([sys.executable, __file__, "--worker", t, "--lines", str(a.lines), "--steps", str(steps),
                                "--out", path], check=True, env=env, cwd=ROOT)
                outs[t] = json.loads(Path(path).read_text())
                os.unlink(path)
                times[t].append(outs[t]["seconds"])
                print(f"  steps {steps} round {rnd + 1} {t}: {outs[t]['lines'] / outs[t]['seconds']:.2f} lines/s",
                      file=sys.stderr)
        ref = statistics.median(times["captum"]) if "captum" in times else None
        diff = None
        if "bertcli" in outs and "captum" in outs:
            import numpy as np

            diff = max(float(np.max(np.abs(np.array(x) - np.array(y)), initial=0.0))
                       for x, y in zip(outs["bertcli"]["attributions"], outs["captum"]["attributions"]))
        for t in tools:
            med = statistics.median(times[t])
            o = outs[t]
            rows.append((steps, t, o["lines"] / med, o["tokens"] / med, (ref / med) if ref else None,
                         diff if t == "bertcli" else None,
                         statistics.median(o["rel_delta"]) if o["rel_delta"] else None))
    print(f"\n{a.lines} SST-2 dev lines, shipped sentiment default (MiniLM-L6 + LoRA), median of {a.rounds} "
          f"alternating rounds, torch threads: {a.threads or 'default'}\n")
    print("| steps | tool | lines/s | tokens/s | vs captum | max abs(word score - captum's) | median abs(delta)/abs(dF) |")
    print("|---|---|---|---|---|---|---|")
    for steps, t, lps, tps, ratio, diff, rel in rows:
        print(f"| {steps} | {t} | {lps:.2f} | {tps:.0f} | {f'{ratio:.2f}x' if ratio else '-'} | "
              f"{f'{diff:.1e}' if diff is not None else ''} | {f'{rel:.1e}' if rel is not None else ''} |")


if __name__ == "__main__":
    main()
