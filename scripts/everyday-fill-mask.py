#!/usr/bin/env python3
"""Score `bertcli fill-mask -k 5 -f jsonl` output on the everyday sentence set.

    bertcli fill-mask --input tests/data/everyday_fill_mask.jsonl -k 5 -f jsonl \\
        | scripts/everyday-fill-mask.py tests/data/everyday_fill_mask.jsonl > eval.json

Each input record has ``text`` (one ``[MASK]``) and ``answers`` (accepted single
WordPiece tokens); bertcli keeps ``answers`` in its output next to ``predictions``.
A sentence counts for top-k when any accepted answer is among the first k
``token_str``. Prints one JSON object (task ``fill-mask-everyday``, ``n``,
``top1_accuracy``, ``top5_accuracy``, and the misses).
"""
import json
import sys

recs = [json.loads(line) for line in sys.stdin if line.strip()]
top1 = top5 = 0
misses = []
for r in recs:
    got = [p["token_str"].strip().lower() for p in r["predictions"][0]]  # one list per mask; one mask each
    ok = set(r["answers"])
    top1 += bool(got[:1] and got[0] in ok)
    hit5 = bool(ok & set(got[:5]))
    top5 += hit5
    if not hit5:
        misses.append({"text": r["text"], "predicted": got[:5]})
n = len(recs)
print(json.dumps({"task": "fill-mask-everyday", "data": sys.argv[1] if len(sys.argv) > 1 else "<stdin>", "n": n,
                  "top1_accuracy": top1 / n if n else 0.0, "top5_accuracy": top5 / n if n else 0.0,
                  "misses": misses}))
