"""Determinism: the same input, model and options give byte-identical JSONL, run after run,
whatever --batch-size / --max-tokens is (README, "Determinism and precision"), for every
command; and JSON scores are rounded to --precision places (default 6).

The tiny checkpoints are BERT, so bertcli's native encoder runs them (the README promises
bit-identical scores for it; BERTCLI_BACKEND=transformers does not, and these tests fail
under it, as they should).
"""

from __future__ import annotations

import json
import os
from decimal import Decimal
import random
import subprocess
import sys

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli

COMMANDS = {"fill-mask": "mlm_dir", "nsp": "pretraining_dir", "classify": "cls_dir", "sentiment": "cls_dir",
            "ner": "ner_dir"}
# batch shapes that change how the records are grouped: one per batch, odd-sized
# batches, everything at once (twice: a repeated run), a token budget that splits
WHATEVER_BATCHING = [["-b", "1"], ["-b", "3"], ["-b", "64"], ["-b", "64"], ["-b", "3", "--max-tokens", "40"]]
WORDS = ("Angela Merkel visited Paris and Berlin on Tuesday . the food was terrible , I loved this movie "
         "東京 は 日本 😀 Café Müller Zürich unbelievable preprocessing").split()


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _records(cmd: str) -> list[dict]:
    """~40 records of very different lengths (1 to ~700 words: windowed for ner, cut or
    windowed around the masks for the others), seeded."""
    rnd = random.Random(13)
    out = []
    for i in range(40):
        n = 700 if i in (5, 26) else rnd.choice([1, 2, 5, 9, 20, 40, 90])
        words = [rnd.choice(WORDS) for _ in range(n)]
        if cmd == "fill-mask":
            for _ in range(rnd.choice([1, 1, 2, 3])):
                words.insert(rnd.randrange(len(words) + 1), "[MASK]")
        r = {"id": i, "text": " ".join(words)}
        if cmd == "nsp":
            r["text_pair"] = " ".join(rnd.choice(WORDS) for _ in range(rnd.choice([1, 4, 12, 200])))
        out.append(r)
    out.append({"id": 40, "text": "" if cmd != "fill-mask" else "[MASK]", **({"text_pair": ""} if cmd == "nsp" else {})})
    return out


def _run(args, data: str):
    res = CliRunner().invoke(cli, [str(a) for a in args], input=data, env={"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None})
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert res.exit_code == 0, res.stderr
    return res.stdout


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_byte_identical_jsonl_whatever_the_batch_size(cmd, request, tmp_path):
    model = request.getfixturevalue(COMMANDS[cmd])
    recs = _records(cmd)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    outs = [_run([cmd, "-m", model, "-i", path, "-f", "jsonl", "-q", *b], "") for b in WHATEVER_BATCHING]
    lines = outs[0].splitlines()
    assert len(lines) == len(recs)
    assert [json.loads(x)["id"] for x in lines] == [r["id"] for r in recs]  # input order
    for b, out in zip(WHATEVER_BATCHING[1:], outs[1:]):
        assert out == outs[0], f"{cmd} {' '.join(b)} differs from -b 1"  # byte for byte
    # two records far past the model's 128 tokens (windowed by ner and fill-mask, cut by the others)
    assert sum(len(r["text"].split()) > 600 for r in recs) == 2
    truncated = [json.loads(x)["truncated"] for x in lines]
    assert (truncated[5], truncated[26]) == ((False, False) if cmd == "ner" else (True, True))


def test_a_fresh_process_gives_the_same_bytes(ner_dir, tmp_path):
    recs = _records("ner")
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    here = _run(["ner", "-m", ner_dir, "-i", path, "-f", "jsonl", "-q", "-b", "1"], "")
    env = {k: v for k, v in os.environ.items() if k not in ("BERTCLI_MODEL", "BERTCLI_BACKEND")}
    env["OMP_NUM_THREADS"] = "1"
    p = subprocess.run([sys.executable, "-m", "bertcli", "ner", "-m", str(ner_dir), "-i", str(path), "-f", "jsonl",
                        "-q", "-b", "64"], capture_output=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.decode("utf-8") == here


def _decimals(out: str) -> int:
    """The most decimal places of any number in JSON text (strings are not numbers)."""
    most = 0
    for line in out.splitlines():
        def walk(v):
            nonlocal most
            if isinstance(v, float):
                most = max(most, -Decimal(repr(v)).normalize().as_tuple().exponent)
            elif isinstance(v, dict):
                [walk(x) for x in v.values()]
            elif isinstance(v, list):
                [walk(x) for x in v]
        walk(json.loads(line))
    return most


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_scores_are_rounded_to_precision(cmd, request):
    model = request.getfixturevalue(COMMANDS[cmd])
    recs = _records(cmd)[:12]
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs)
    default = _run([cmd, "-m", model, "-f", "jsonl", "-q"], data)
    assert _decimals(default) == 6  # the README's default
    assert _decimals(_run([cmd, "-m", model, "-f", "jsonl", "-q", "--precision", "2"], data)) <= 2


def test_precision_rounds_the_full_score(cls_dir, monkeypatch):
    # --precision N is round(score, N) of the core's full-precision float, not a truncation
    from bertcli.loading import load_model

    monkeypatch.delenv("BERTCLI_BACKEND", raising=False)  # the same backend as the CLI runs
    from bertcli.tasks.classify import classify

    texts = [" ".join(WORDS[i:i + 7]) for i in range(0, 28, 3)]
    full = classify(load_model(cls_dir, "classify", device="cpu"), texts, top_k=None)
    for n in (0, 3, 6, 9):
        out = _run(["classify", "-m", cls_dir, "-f", "jsonl", "-q", "--top-k", "all", "--precision", n, *texts], "")
        got = [json.loads(x) for x in out.splitlines()]
        assert [[d["score"] for d in g["labels"]] for g in got] == \
            [[round(d["score"], n) for d in f["labels"]] for f in full]
