#!/usr/bin/env python3
"""The ONNX Runtime one-liner of issue #18: a sequence classifier exported to ONNX, run with
``tokenizers`` + ``onnxruntime`` (no torch, no transformers), the yardstick for bertcli's start-up.

    python benchmarks/ort_oneliner.py MODEL.onnx MODEL_DIR "I loved it"      # texts as arguments
    python benchmarks/ort_oneliner.py MODEL.onnx MODEL_DIR -i lines.txt      # one text per line

MODEL_DIR holds the tokenizer.json and config.json (id2label) of the exported model
(benchmarks/bench.py exports it with export_onnx()). Prints one JSON line per text, in input
order: ``{"label", "score"}``, the softmax of the logits, 6 decimals as bertcli prints them.
Texts are length-sorted into batches of 64; ONNX Runtime's default threads (one per physical
core, spinning between runs). With -i, stderr gets ``{"lines_per_s": ...}`` of the batches alone.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer


def main(argv: list[str]) -> None:
    onnx_path, folder, *rest = argv
    texts = open(rest[1], encoding="utf-8").read().splitlines() if rest[:1] == ["-i"] else rest
    tok = Tokenizer.from_file(f"{folder}/tokenizer.json")
    tok.no_padding()
    tok.enable_truncation(512)
    id2label = json.load(open(f"{folder}/config.json", encoding="utf-8"))["id2label"]
    sess = ort.InferenceSession(onnx_path, providers=["CPUExecutionProvider"])
    names = {i.name for i in sess.get_inputs()}
    t = time.perf_counter()
    encs = tok.encode_batch(texts)
    out: list = [None] * len(texts)
    order = sorted(range(len(texts)), key=lambda i: len(encs[i].ids))
    for s in range(0, len(order), 64):
        idx = order[s:s + 64]
        n = max(len(encs[i].ids) for i in idx)
        ids = np.zeros((len(idx), n), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, i in enumerate(idx):
            ids[r, :len(encs[i].ids)] = encs[i].ids
            mask[r, :len(encs[i].ids)] = 1
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        logits = sess.run(None, {k: v for k, v in feed.items() if k in names})[0].astype(np.float64)
        p = np.exp(logits - logits.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        for r, i in enumerate(idx):
            out[i] = {"label": id2label[str(int(p[r].argmax()))], "score": round(float(p[r].max()), 6)}
    dt = time.perf_counter() - t
    sys.stdout.write("".join(json.dumps(o) + "\n" for o in out))
    if rest[:1] == ["-i"]:
        print(json.dumps({"lines_per_s": len(texts) / dt}), file=sys.stderr)


if __name__ == "__main__":
    main(sys.argv[1:])
