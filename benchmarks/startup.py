"""Issue #18's two figures, for ``bench.py --cold --contention``: one-line runs' time to their
first result against an ONNX Runtime one-liner, and throughput beside a busy competitor.

``--cold``: every run is a fresh process; the time is from its start to the first line on its
stdout (the first result; for a one-line run that is the whole run less the exit). Rows
alternate within each round (median of ``rounds``): ``python -c pass``, ``import torch``,
the ORT one-liner (benchmarks/ort_oneliner.py on the merged sentiment classifier exported to
ONNX), then each bertcli one-liner twice: as it runs now (the fast path for a few records)
and as before issue #18 (``BERTCLI_FASTPATH=0``: torch and the native encoder), on the shipped
defaults and on full (merged) local checkpoints.

``--contention``: ``bertcli classify`` on ``lines`` real lines (``-i FILE -f jsonl -q``), at
its default thread count, alone and beside one busy-loop process (``python -c "while True:
pass"``, started in its own session, as another user's job would be: Linux then shares the
CPU between the two sessions first, ``sched_autogroup``). Throughput is the steady state:
(lines - 1) / (time from the first output line to the last), so start-up is left out. Rows:
bertcli now (threads adapted, bertcli.threads), bertcli as before (``BERTCLI_THREADS=off``:
torch's default threads, never changed), and ONNX Runtime at its defaults (its own count of
the batches). Quiet and busy runs alternate, ``rounds`` of each (median).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORT = HERE / "ort_oneliner.py"
BUSY = "while True: pass"


def export_onnx(model_dir: Path, out: Path, task: str = "classify") -> Path:
    """``model_dir`` (a full checkpoint with the task's head) as ONNX (opset 17, dynamic batch
    and length, eager attention so the mask is a graph input), for the ORT one-liner and
    benchmarks/peers.py.

    Inputs ``input_ids``, ``attention_mask``, ``token_type_ids``: int64 ``(batch, length)``.
    Output ``logits``: ``(batch, num_labels)`` for ``task`` "classify" (a sequence
    classifier), ``(batch, length, num_labels)`` for "ner" (a token classifier).

    Raises:
        ValueError: ``task`` is neither "classify" nor "ner".
    """
    import torch
    import transformers as tf

    heads = {"classify": (tf.AutoModelForSequenceClassification, {0: "batch"}),
             "ner": (tf.AutoModelForTokenClassification, {0: "batch", 1: "length"})}
    if task not in heads:
        raise ValueError(f"export_onnx: task must be classify or ner, got {task!r}")
    cls, out_axes = heads[task]
    net = cls.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    ids = torch.tensor([[101, 1045, 3866, 2009, 102], [101, 2009, 102, 0, 0]])
    mask = (ids != 0).long()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    with torch.inference_mode():
        torch.onnx.export(net, (ids, mask, torch.zeros_like(ids)), str(out), input_names=names,
                          output_names=["logits"], opset_version=17, dynamo=False,
                          dynamic_axes={**{n: {0: "batch", 1: "length"} for n in names}, "logits": out_axes})
    return out


def _env(**extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTCLI_", "OMP_", "GOMP_", "OPENBLAS_"))}
    env.update(TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", **extra)
    return env


def first_result(cmd: list[str], env: dict) -> tuple[float, str]:
    """Seconds from spawning ``cmd`` to its first stdout line, and that line."""
    t = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    line = p.stdout.readline()
    dt = time.perf_counter() - t
    p.stdout.read()
    err = p.stderr.read()
    p.wait()
    if p.returncode != 0 or not line:
        raise SystemExit(f"failed ({p.returncode}): {' '.join(cmd)}\n{err.decode()[-2000:]}")
    return dt, line.decode()


def _score(line: str) -> str:
    try:
        rec = json.loads(line)
    except ValueError:
        return ""
    if "score" in rec:
        return f"score {rec['score']}"
    if rec.get("entities"):
        return f"{len(rec['entities'])} entities, first {rec['entities'][0]['word']!r} {rec['entities'][0]['score']}"
    if rec.get("predictions"):
        p = rec["predictions"][0][0]
        return f"top-1 {p['token_str']!r} {p['score']}"
    return ""


def cold_oneliners(models: dict[str, Path], onnx: Path, rounds: int = 7) -> list[tuple[str, float, float | None, str]]:
    """``(row, median s now, median s before issue #18 or None, first result)`` per one-liner."""
    py = sys.executable
    bert = [py, "-m", "bertcli"]
    text = {"sentiment": "I loved it", "classify": "I loved it", "ner": "Angela Merkel met Emmanuel Macron in Paris.",
            "fill-mask": "She opened the [MASK] and walked into the room."}
    rows: list[tuple[str, list[str], bool]] = [
        ("python -c pass", [py, "-c", "print()"], False),
        ("import torch", [py, "-c", "import torch; print()"], False),
        ("ORT one-liner (classify, merged)", [py, str(ORT), str(onnx), str(models["classify"]), text["classify"]],
         False),
        ("bertcli sentiment (default)", bert + ["sentiment", text["sentiment"], "-f", "jsonl"], True),
        ("bertcli ner (default)", bert + ["ner", text["ner"], "-f", "jsonl"], True),
        ("bertcli fill-mask (default)", bert + ["fill-mask", text["fill-mask"], "-f", "jsonl"], True),
    ]
    for task in ("classify", "ner", "fill-mask"):
        if task in models:
            rows.append((f"bertcli {task} -m merged checkpoint",
                         bert + [task, text[task], "-m", str(models[task]), "-f", "jsonl"], True))
    times: dict[tuple[str, bool], list[float]] = {}
    shown: dict[str, str] = {}
    for _ in range(rounds):
        for name, cmd, both in rows:
            for before in ((False, True) if both else (False,)):
                dt, line = first_result(cmd, _env(**({"BERTCLI_FASTPATH": "0"} if before else {})))
                times.setdefault((name, before), []).append(dt)
                shown.setdefault(name, _score(line))
    return [(name, statistics.median(times[(name, False)]),
             statistics.median(times[(name, True)]) if both else None, shown[name]) for name, _, both in rows]


def _steady(cmd: list[str], env: dict, n: int) -> float:
    """Lines/s between the first and the last output line of ``cmd`` (``n`` lines expected)."""
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env)
    first = last = None
    count = 0
    for _ in p.stdout:
        last = time.perf_counter()
        first = first or last
        count += 1
    p.wait()
    if p.returncode != 0 or count != n or last is None or last <= first:
        raise SystemExit(f"failed ({p.returncode}, {count}/{n} lines): {' '.join(cmd)}")
    return (n - 1) / (last - first)


def _ort_rate(cmd: list[str], env: dict) -> float:
    p = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env, text=True)
    if p.returncode != 0:
        raise SystemExit(f"ORT failed:\n{p.stderr[-2000:]}")
    return json.loads(p.stderr.strip().splitlines()[-1])["lines_per_s"]


def contention(model: Path, onnx: Path, lines: list[str], tmp: Path, rounds: int = 3) -> dict[str, dict[str, float]]:
    """``{row: {"quiet": lines/s, "busy": lines/s}}`` (medians), rows as in the module docstring."""
    f = tmp / "contention.txt"
    f.write_text("".join(ln.replace("\n", " ") + "\n" for ln in lines), encoding="utf-8")
    n = len(lines)
    bert = [sys.executable, "-m", "bertcli", "classify", "-m", str(model), "-i", str(f), "-f", "jsonl", "-q"]
    runs = {
        "bertcli, threads adapted (now)": lambda: _steady(bert, _env(), n),
        "bertcli, torch's threads (before)": lambda: _steady(bert, _env(BERTCLI_THREADS="off"), n),
        "ONNX Runtime, its defaults": lambda: _ort_rate([sys.executable, str(ORT), str(onnx), str(model), "-i", str(f)],
                                                        _env()),
    }
    got: dict[str, dict[str, list[float]]] = {k: {"quiet": [], "busy": []} for k in runs}
    for _ in range(rounds):
        for busy in (False, True):
            comp = subprocess.Popen([sys.executable, "-c", BUSY], start_new_session=True) if busy else None
            try:
                if comp is not None:
                    time.sleep(0.5)  # the competitor is running before the measured run starts
                for name, run in runs.items():
                    got[name]["busy" if busy else "quiet"].append(run())
            finally:
                if comp is not None:
                    comp.kill()
                    comp.wait()
    return {k: {m: statistics.median(v) for m, v in d.items()} for k, d in got.items()}


def report(cold=None, cont=None, rounds: int = 7, crounds: int = 3, lines: int = 0) -> None:
    """Print the two figures (and their targets) as bench.py's other rows."""
    if cold is not None:
        print(f"one-line runs: time to the first result, median of {rounds} alternating rounds "
              "(target <= 500 ms now)")
        print(f"  {'run':38} {'now':>8} {'before':>8}  first result")
        for name, now, before, shown in cold:
            b = f"{1000 * before:6.0f} ms" if before is not None else " " * 9
            print(f"  {name:38} {1000 * now:5.0f} ms {b}  {shown}")
    if cont is not None:
        print(f"contention: classify, {lines} lines, lines/s after the first result, median of {crounds} "
              "alternating rounds; competitor: one busy loop in its own session (target ratio <= 2.2x, "
              "quiet loss <= 3 %)")
        print(f"  {'impl':36} {'quiet':>8} {'busy':>8} {'ratio':>7}")
        for name, d in cont.items():
            print(f"  {name:36} {d['quiet']:8.1f} {d['busy']:8.1f} {d['quiet'] / d['busy']:6.2f}x")
        now, before = cont["bertcli, threads adapted (now)"], cont["bertcli, torch's threads (before)"]
        print(f"  quiet, now vs before: {100 * (now['quiet'] / before['quiet'] - 1):+.1f} %")
