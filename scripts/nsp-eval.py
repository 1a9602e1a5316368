#!/usr/bin/env python3
"""Score a next-sentence model on labelled pairs: accuracy, per class, majority baseline, ECE.

    scripts/nsp-eval.py MODEL pairs.jsonl             # {"text", "text_pair", "label": IsNext|NotNext}
    scripts/nsp-eval.py MODEL BOOKS_DIR [--seed 7]    # pairs made from the documents of a folder

A folder of documents (the held-out novels) becomes pairs by BERT's rule
(bertcli.train.pretraining.text_pairs: 128-token targets, B the sentences after A or, half of the
time, sentences of another document). Prints one JSON object (bertcli.train.metrics.nsp_metrics,
plus task, data, model and, for records with a "genre", the accuracy per genre), the form
scripts/default-card.py reads. The scores are those of `bertcli nsp` (bertcli.tasks.nsp).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path


def pairs_of(path: Path, tokenizer, seed: int, max_length: int) -> list[dict]:
    if path.is_dir():
        from bertcli.train.data import read_documents
        from bertcli.train.pretraining import text_pairs

        docs, _ = read_documents(path)
        return text_pairs(tokenizer, docs, max_length, seed)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("data", type=Path)
    ap.add_argument("--seed", type=int, default=7, help="pairs of a folder: the seed of text_pairs")
    ap.add_argument("--max-length", type=int, default=128, help="pairs of a folder: the target length in tokens")
    ap.add_argument("--limit", type=int, help="score only the first N pairs")
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    from bertcli.loading import load_model
    from bertcli.tasks.nsp import nsp
    from bertcli.train.metrics import nsp_metrics

    lm = load_model(a.model, "nsp", device=a.device)
    recs = pairs_of(a.data, lm.tokenizer, a.seed, a.max_length)[:a.limit]
    res = nsp(lm, [r["text"] for r in recs], [r["text_pair"] for r in recs])
    gold = [r["label"] == "IsNext" for r in recs]
    out = {"task": "nsp", "data": str(a.data), "model": str(a.model),
           **nsp_metrics(gold, [x["score"] for x in res])}
    genres = sorted({r["genre"] for r in recs if "genre" in r})
    if genres:
        out["per_genre"] = {g: sum((x["score"] >= 0.5) == y for x, y, r in zip(res, gold, recs) if r.get("genre") == g)
                            / sum(r.get("genre") == g for r in recs) for g in genres}
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
