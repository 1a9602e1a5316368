#!/usr/bin/env python3
"""bertcli against the fastest CPU runtimes (issue #17): ONNX Runtime, OpenVINO and CTranslate2
on the same model, lines and batching rules, with agreement columns against bertcli fp32.

How to run (``pip install -e '.[bench]'`` installs onnxruntime, onnx, openvino, ctranslate2)::

    nice -n 19 python benchmarks/peers.py                          # 2000 lines, 1 thread, median of 3
    python benchmarks/peers.py --threads 1,2 --json peers.json --markdown   # one table per thread count
    python benchmarks/peers.py --lines 200 --repeats 1 --contenders bertcli-fp32,ort-fp32,ct2-int8
    python benchmarks/peers.py --work /tmp/peers   # keep (and reuse) the merged models and exports

Models: all-MiniLM-L6-v2 with the shipped sentiment head merged (task classify) and the shipped
ner head merged (task ner), built by bench.py's build_models(). Lines: the same ``--lines`` real
lines (bench.py's real_lines(): SST-2 sentences and sentences of the books) for every contender.

Contenders (rows; ``--contenders``, default all):
    bertcli-fp32, bertcli-bf16, bertcli-int8   the Python API (classify.classify; ner.ner with
                 aggregation "simple"), StreamOptions(batch_size, max_tokens); int8 is tried with
                 load_model(..., dtype="int8") and shown "n/a (no int8 mode)" where it is refused;
                 bertcli-int8 recomputes the lines int8 leaves near a decision in float32 (the
                 default), bertcli-int8-pure does not (BERTCLI_INT8_MARGIN=0)
    ort-fp32     ONNX Runtime on the fused graph (onnxruntime.transformers.optimizer, model_type
                 bert) of the ONNX export (startup.export_onnx)
    ort-int8     that fused graph quantized dynamically (quantize_dynamic, int8 per-channel weights)
    ov-fp32, ov-bf16     OpenVINO (convert_model of the ONNX export), INFERENCE_PRECISION_HINT
                 f32 / bf16, PERFORMANCE_HINT LATENCY
    ct2-fp32, ct2-int8   CTranslate2 (TransformersConverter) Encoder, compute_type float32 / int8;
                 the classification / token-classification head applied in numpy
Every runtime gets the threads asked (ORT intra_op_num_threads, OpenVINO INFERENCE_NUM_THREADS,
CTranslate2 intra_threads; bertcli torch.set_num_threads when it differs from torch's default).

Rules, the same for every row: texts tokenized (runtimes: tokenizers.Tokenizer from the model's
tokenizer.json, truncation 512; bertcli: its own), sorted by length and cut into batches of at
most the batch size and ``--max-tokens`` padded tokens (bertcli.batching.plan_batches), each
padded to its longest text; post-processing to the same output (classify: softmax, top label and
score; ner: entities of the "simple" aggregation with character offsets, simple_entities()).
Each contender first gets a short sweep over ``--batch-sizes`` on ``--sweep-lines`` lines (one
run each, after a small warm-up, in one process) and runs at its best size. The timed runs are
fresh child processes, one per contender, the contenders alternating within each of ``--repeats``
rounds; after loading, each child freezes its objects out of the cyclic garbage collector's
scans (gc.freeze, as the bertcli CLI does: a full scan of ~170,000 objects costs ~0.1 s); the
time is the child's CPU time (time.process_time, all its threads: at more than one
thread that includes the time threads spin while waiting) of the whole work after loading; the
figure is the median over the rounds. Wall-clock figures are kept in the JSON too.

Agreement with bertcli fp32 on the same lines (first round): classify, the share of lines with
the same top-1 label; ner, entity-level F1 of the (entity_group, start, end) triples against
bertcli fp32's (micro over all lines) and the share of lines whose entity lists are identical.
"""

from __future__ import annotations

import argparse
import atexit
import gc
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
ROOT = HERE.parent
if str(ROOT) not in sys.path:  # bertcli from this checkout when it is not installed
    sys.path.insert(1, str(ROOT))

from bench import _top1, build_models, real_lines  # noqa: E402

TASKS = ("classify", "ner")
#: contender -> (family, precision, row label); the table keeps this order
CONTENDERS = {
    "bertcli-fp32": ("bertcli", "float32", "bertcli fp32"),
    "ort-fp32": ("ort", "fp32", "ONNX Runtime fp32, fused graph"),
    "ov-fp32": ("ov", "f32", "OpenVINO fp32"),
    "ct2-fp32": ("ct2", "float32", "CTranslate2 fp32"),
    "bertcli-bf16": ("bertcli", "bfloat16", "bertcli bf16"),
    "ov-bf16": ("ov", "bf16", "OpenVINO bf16"),
    "bertcli-int8": ("bertcli", "int8", "bertcli int8"),
    # BERTCLI_INT8_MARGIN=0: no float32 recomputation of the lines int8 leaves near a decision
    "bertcli-int8-pure": ("bertcli", "int8", "bertcli int8, no fp32 fallback"),
    "ort-int8": ("ort", "int8", "ONNX Runtime int8 (dynamic)"),
    "ct2-int8": ("ct2", "int8", "CTranslate2 int8"),
}
REFERENCE = "bertcli-fp32"
#: the rows whose agreement with bertcli fp32 is expected to be exact (same precision)
FP32 = tuple(k for k, v in CONTENDERS.items() if v[1] in ("float32", "fp32", "f32"))


# ------------------------------------------------------------------ post-processing (numpy)

def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis in float32, max-shifted (as the pipeline and bertcli compute it)."""
    x = np.asarray(logits, dtype=np.float32)
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def tag_table(labels: list[str]) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Per label id: its type index, whether it opens an entity (``B-``), and the type names.

    IOB2/IOB1 tags: ``B-PER`` -> (``PER``, True), ``I-PER`` -> (``PER``, False); a label with no
    ``B-``/``I-`` prefix (``O``, ``PER``) is its own type and continues a run of that type, as
    bertcli.tasks.ner.split_tag and the transformers pipeline read it. BIOES tag sets are not
    handled here (bertcli groups them by their meaning; MiniLM's CoNLL head is IOB2).
    """
    types: list[str] = []
    type_id, begins = [], []
    for lb in labels:
        typ = lb[2:] if lb.startswith(("B-", "I-")) else lb
        if typ not in types:
            types.append(typ)
        type_id.append(types.index(typ))
        begins.append(lb.startswith("B-"))
    return np.asarray(type_id, dtype=np.int64), np.asarray(begins, dtype=bool), types


def simple_entities(text: str, probs: np.ndarray, offsets: np.ndarray, labels: list[str],
                    ignore: tuple[str, ...] = ("O",), table=None) -> list[dict]:
    """Entities of one text under the "simple" aggregation (transformers' token-classification
    pipeline, ``aggregation_strategy="simple"``), from its tokens' label probabilities.

    Args:
        text: the original text (``word`` is sliced from it).
        probs: ``(n_tokens, num_labels)`` softmax probabilities of the text's tokens, special
            tokens ([CLS], [SEP]) already removed, in text order.
        offsets: ``(n_tokens, 2)`` character offsets ``[start, end)`` of those tokens.
        labels: label names by id (``config.id2label``).
        ignore: entity groups to drop (the pipeline's ``ignore_labels``).
        table: :func:`tag_table` of ``labels`` (computed when None; pass it to save the work).

    Returns:
        ``{entity_group, score, word, start, end}`` per entity in text order: each token takes
        its most probable label; adjacent tokens form one group while they have the same type
        and the later one is not a ``B-`` tag; a group's score is the mean of its tokens' top
        probabilities, its span the first token's start to the last token's end; groups of an
        ignored type are dropped. This equals bertcli.tasks.ner.decode_entities for WordPiece
        tokenizers, whose offsets are never empty, never hold whitespace and never overlap
        (so bertcli's trimming of such spans and of grapheme clusters changes nothing on them;
        tests/test_peers.py checks the equality on real CoNLL-2003 sentences).
    """
    n = len(probs)
    if n == 0:
        return []
    type_id, begins, types = table if table is not None else tag_table(labels)
    k = probs.argmax(axis=-1)
    top = probs[np.arange(n), k]
    typ = type_id[k]
    new = np.ones(n, dtype=bool)
    new[1:] = (typ[1:] != typ[:-1]) | begins[k[1:]]
    firsts = np.flatnonzero(new)
    lasts = np.append(firsts[1:] - 1, n - 1)
    means = np.add.reduceat(top.astype(np.float64), firsts) / (lasts - firsts + 1)
    out = []
    for g, (a, b) in enumerate(zip(firsts.tolist(), lasts.tolist())):
        name = types[typ[a]]
        if name in ignore:
            continue
        s, e = int(offsets[a][0]), int(offsets[b][1])
        out.append({"entity_group": name, "score": float(means[g]), "word": text[s:e], "start": s, "end": e})
    return out


def ct2_head(task: str, hidden: np.ndarray, pooled: np.ndarray | None, weights: dict) -> np.ndarray:
    """Logits of a BERT classification / token-classification head over CTranslate2's encoder output.

    Args:
        task: "classify" (BertForSequenceClassification: pooler, then classifier) or "ner"
            (BertForTokenClassification: classifier on every token).
        hidden: ``(batch, length, hidden)`` last hidden state.
        pooled: ``(batch, hidden)`` pooler output (``tanh(W_p h_[CLS] + b_p)``) when the
            encoder gives it, else None (then computed from ``bert.pooler.dense.*``).
        weights: the merged checkpoint's tensors (``classifier.weight`` ``(num_labels,
            hidden)``, ``classifier.bias``; ``bert.pooler.dense.*`` for classify when
            ``pooled`` is None).

    Returns:
        float32 logits, ``(batch, num_labels)`` for classify, ``(batch, length, num_labels)``
        for ner.
    """
    w, b = weights["classifier.weight"], weights["classifier.bias"]
    if task == "classify":
        if pooled is None:
            pooled = np.tanh(hidden[:, 0] @ weights["bert.pooler.dense.weight"].T + weights["bert.pooler.dense.bias"])
        return (pooled @ w.T + b).astype(np.float32)
    return (hidden @ w.T + b).astype(np.float32)


# ------------------------------------------------------------------ agreement

def agreement(task: str, ref: list, got: list) -> dict:
    """Agreement of a contender's outputs with the reference's, line by line (percent).

    classify (lists of labels): ``top1``, the share of lines with the same label. ner (lists
    of ``(entity_group, start, end)`` per line): ``entity_f1``, micro F1 of the triples
    (``2 * matches / (|ref| + |got|)``, 100 when both are empty) and ``identical``, the share
    of lines whose entity lists are equal.

    Raises:
        ValueError: the lists differ in length.
    """
    if len(ref) != len(got):
        raise ValueError(f"{len(got)} outputs for {len(ref)} reference lines")
    n = max(1, len(ref))
    if task == "classify":
        return {"top1": 100.0 * sum(a == b for a, b in zip(ref, got)) / n}
    match = total = 0
    same = 0
    for a, b in zip(ref, got):
        sa, sb = {tuple(e) for e in a}, {tuple(e) for e in b}
        match += len(sa & sb)
        total += len(sa) + len(sb)
        same += [tuple(e) for e in a] == [tuple(e) for e in b]
    return {"entity_f1": 100.0 * 2 * match / total if total else 100.0, "identical": 100.0 * same / n}


# ------------------------------------------------------------------ artifacts

def prepare(work: Path, tasks, contenders) -> dict[str, dict[str, Path]]:
    """Build (or reuse, when present under ``work``) what the contenders load, per task:
    ``model`` (merged checkpoint), ``onnx`` (export), ``fused`` (ORT fused graph), ``int8``
    (fused graph, dynamic int8), ``ov`` (OpenVINO IR), ``ct2`` (CTranslate2 folder)."""
    fams = {CONTENDERS[c][0] for c in contenders}
    out: dict[str, dict[str, Path]] = {}
    mdir = work / "models"
    missing = [t for t in tasks if not (mdir / t / "model.safetensors").is_file()]
    if missing:
        build_models(mdir, set(missing))
    for t in tasks:
        a = out.setdefault(t, {"model": mdir / t})
        if fams & {"ort", "ov"}:
            a["onnx"] = _make(work / "onnx" / f"{t}.onnx", lambda p, t=t: _export(mdir / t, p, t))
        if "ort-fp32" in contenders or "ort-int8" in contenders:
            a["fused"] = _make(work / "onnx" / f"{t}.fused.onnx", lambda p, t=t: _fuse(a["onnx"], p, mdir / t))
        if "ort-int8" in contenders:
            a["int8"] = _make(work / "onnx" / f"{t}.int8.onnx", lambda p, t=t: _quantize(a["fused"], p))
        if "ov" in fams:
            a["ov"] = _make(work / "ov" / f"{t}.xml", lambda p, t=t: _openvino(a["onnx"], p))
        if "ct2" in fams:
            a["ct2"] = _make(work / "ct2" / t, lambda p, t=t: _ctranslate2(mdir / t, p), marker="model.bin")
    return out


def _make(path: Path, build, marker: str | None = None) -> Path:
    if not (path / marker if marker else path).exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        build(path)
    return path


def _export(model_dir: Path, path: Path, task: str) -> None:
    import startup

    startup.export_onnx(model_dir, path, task)


def _fuse(src: Path, path: Path, model_dir: Path) -> None:
    from onnxruntime.transformers.optimizer import optimize_model

    cfg = json.loads((model_dir / "config.json").read_text())  # 12 heads, hidden 384 for MiniLM-L6
    m = optimize_model(str(src), model_type="bert", num_heads=cfg["num_attention_heads"],
                       hidden_size=cfg["hidden_size"])
    m.save_model_to_file(str(path))


def _quantize(src: Path, path: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # the fused graph's contrib ops (Attention, SkipLayerNormalization, ...) have no ONNX shape
    # inference, so the quantizer is told their outputs' type
    quantize_dynamic(str(src), str(path), per_channel=True, weight_type=QuantType.QInt8,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def _openvino(src: Path, path: Path) -> None:
    import openvino as ov

    ov.save_model(ov.convert_model(str(src)), str(path), compress_to_fp16=False)  # fp32 weights kept


def _ctranslate2(model_dir: Path, path: Path) -> None:
    import ctranslate2

    from bertcli.loading import quiet_transformers

    quiet_transformers()
    ctranslate2.converters.TransformersConverter(str(model_dir)).convert(str(path), force=True)


# ------------------------------------------------------------------ runners (child side)

def runtime_runner(task: str, model_dir: Path, infer, max_tokens: int | None):
    """``run(texts, batch_size) -> outputs`` for a runtime: tokenize (tokenizers, truncation 512),
    length-sorted batches (bertcli.batching.plan_batches), ``infer(ids, mask, type_ids,
    lengths)`` -> logits (int64 ``(batch, length)`` inputs; ``(batch, num_labels)`` or
    ``(batch, length, num_labels)`` logits), then the same output as bertcli's API: classify
    ``{"label", "score"}``, ner ``{"entities": [...], "truncated": False}`` (simple_entities)."""
    from tokenizers import Tokenizer

    from bertcli.batching import plan_batches

    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(512)
    cfg = json.loads((model_dir / "config.json").read_text())
    labels = [cfg["id2label"][str(i)] for i in range(len(cfg["id2label"]))]
    table = tag_table(labels)
    pad = cfg.get("pad_token_id") or 0

    def run(texts: list[str], batch_size: int) -> list[dict]:
        encs = tok.encode_batch(texts)
        lengths = [len(e.ids) for e in encs]
        out: list = [None] * len(texts)
        for idx in plan_batches(lengths, batch_size, max_tokens):
            n = max(lengths[i] for i in idx)
            ids = np.full((len(idx), n), pad, dtype=np.int64)
            mask = np.zeros((len(idx), n), dtype=np.int64)
            for r, i in enumerate(idx):
                ids[r, :lengths[i]] = encs[i].ids
                mask[r, :lengths[i]] = 1
            logits = infer(ids, mask, np.zeros_like(ids), np.asarray([lengths[i] for i in idx], dtype=np.int32))
            if task == "classify":
                p = softmax(logits)
                k = p.argmax(-1)
                for r, i in enumerate(idx):
                    out[i] = {"label": labels[k[r]], "score": float(p[r, k[r]])}
            else:
                for r, i in enumerate(idx):
                    e = encs[i]
                    content = np.flatnonzero(np.asarray(e.special_tokens_mask) == 0)
                    p = softmax(logits[r, content])
                    offs = np.asarray(e.offsets)[content]
                    out[i] = {"entities": simple_entities(texts[i], p, offs, labels, table=table), "truncated": False}
        return out

    return run


def make_runner(contender: str, task: str, art: dict, threads: int, max_tokens: int | None):
    """Load ``contender`` for ``task`` and return ``run(texts, batch_size) -> outputs``.

    Raises:
        Exception: whatever the runtime raises while loading (bertcli int8 where it is refused).
    """
    fam, prec, _ = CONTENDERS[contender]
    model_dir = Path(art["model"])
    if fam == "bertcli":
        import torch

        if threads != torch.get_num_threads():
            # only when it changes something (see bench.child: set_num_threads(2) slows fp32 attention)
            torch.set_num_threads(threads)
        from bertcli.loading import load_model
        from bertcli.tasks import classify, ner
        from bertcli.tasks.base import StreamOptions

        if contender.endswith("-pure"):
            os.environ["BERTCLI_INT8_MARGIN"] = "0"
        lm = load_model(model_dir, task, "cpu", prec)
        if task == "classify":
            return lambda texts, bs: classify.classify(lm, texts, opts=StreamOptions(batch_size=bs, max_tokens=max_tokens))
        return lambda texts, bs: ner.ner(lm, texts, aggregation="simple",
                                         opts=StreamOptions(batch_size=bs, max_tokens=max_tokens))
    if fam == "ort":
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        sess = ort.InferenceSession(str(art["fused" if prec == "fp32" else "int8"]), so,
                                    providers=["CPUExecutionProvider"])
        names = {i.name for i in sess.get_inputs()}

        def infer(ids, mask, tt, lengths):
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}
            return sess.run(None, {k: v for k, v in feed.items() if k in names})[0]
    elif fam == "ov":
        import openvino as ov

        core = ov.Core()
        compiled = core.compile_model(core.read_model(str(art["ov"])), "CPU", {
            "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": prec, "PERFORMANCE_HINT": "LATENCY"})
        req = compiled.create_infer_request()
        names = {i.get_any_name() for i in compiled.inputs}

        def infer(ids, mask, tt, lengths):
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}
            return req.infer({k: v for k, v in feed.items() if k in names})[0]
    elif fam == "ct2":
        import ctranslate2
        from safetensors.numpy import load_file

        enc = ctranslate2.Encoder(str(art["ct2"]), device="cpu", compute_type=prec, intra_threads=threads,
                                  inter_threads=1)
        weights = {k: v.astype(np.float32) for k, v in load_file(str(model_dir / "model.safetensors")).items()
                   if k.startswith(("classifier.", "bert.pooler."))}

        def infer(ids, mask, tt, lengths):
            o = enc.forward_batch(ctranslate2.StorageView.from_array(ids.astype(np.int32)),
                                  ctranslate2.StorageView.from_array(lengths))
            pooled = np.asarray(o.pooler_output) if o.pooler_output is not None else None
            return ct2_head(task, np.asarray(o.last_hidden_state), pooled, weights)
    else:  # pragma: no cover - CONTENDERS is closed
        raise ValueError(contender)
    return runtime_runner(task, model_dir, infer, max_tokens)


def child(a) -> None:
    """One contender in a fresh process: load, then time each batch size (one JSON line out)."""
    spec = json.loads(a.child)
    lines = json.loads(Path(spec["lines_file"]).read_text())
    art = {k: Path(v) for k, v in spec["art"].items()}
    t = time.perf_counter()
    try:
        run = make_runner(spec["contender"], spec["task"], art, spec["threads"], spec["max_tokens"])
    except Exception as e:  # noqa: BLE001 - reported as "n/a" (bertcli int8 where it is refused)
        if not spec["contender"].startswith("bertcli-int8"):
            raise
        print(json.dumps({"na": f"no int8 mode ({type(e).__name__}: {str(e).splitlines()[0][:120]})"}))
        return
    load_s = time.perf_counter() - t
    gc.freeze()  # what was loaded stays out of the cyclic GC's scans, as the bertcli CLI keeps it
    if spec.get("warmup"):
        run(lines[:spec["warmup"]], spec["batch_sizes"][0])
    runs = []
    res = None
    for bs in spec["batch_sizes"]:
        c, w = time.process_time(), time.perf_counter()
        res = run(lines, bs)
        runs.append({"batch_size": bs, "cpu_s": time.process_time() - c, "wall_s": time.perf_counter() - w})
    if spec.get("save"):
        Path(spec["save"]).write_text(json.dumps(_top1(spec["task"], res)))
    print(json.dumps({"load_s": load_s, "records": len(lines), "runs": runs}))


# ------------------------------------------------------------------ parent

def spawn(contender, task, art, lines_file, threads, batch_sizes, max_tokens, warmup=0, save=None) -> dict:
    """Run one child (see :func:`child`) and return its JSON record.

    Raises:
        SystemExit: the child failed (its stderr's tail is in the message).
    """
    import startup

    spec = {"contender": contender, "task": task, "art": {k: str(v) for k, v in art.items()},
            "lines_file": str(lines_file), "threads": threads, "batch_sizes": list(batch_sizes),
            "max_tokens": max_tokens, "warmup": warmup, "save": str(save) if save else None}
    p = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True,
                       env=startup._env())
    if p.returncode != 0 or not p.stdout.strip():
        raise SystemExit(f"child failed ({contender} {task}, {threads} threads):\n{p.stderr[-3000:]}")
    return json.loads(p.stdout.strip().splitlines()[-1])


def measure(task, contenders, art, lines, tmp, a, threads, log) -> dict:
    """Sweep, alternating timed rounds and agreement for one task at one thread count."""
    lf = tmp / f"{task}.json"
    lf.write_text(json.dumps(lines))
    sub = tmp / f"{task}-sweep.json"
    sub.write_text(json.dumps(lines[:a.sweep_lines]))
    rows: dict[str, dict] = {}
    for c in contenders:
        if len(a.batch_sizes) == 1:
            rows[c] = {"batch_size": a.batch_sizes[0], "sweep": {}}
            continue
        r = spawn(c, task, art, sub, threads, a.batch_sizes, a.max_tokens, warmup=min(32, a.sweep_lines))
        if "na" in r:
            rows[c] = {"na": r["na"]}
            continue
        sweep = {x["batch_size"]: x["cpu_s" if a.clock == "cpu" else "wall_s"] for x in r["runs"]}
        rows[c] = {"batch_size": min(sweep, key=sweep.get), "sweep": sweep}
        log(f"  sweep {task:8} {c:13} " + " ".join(f"{bs}:{a.sweep_lines / s:.0f}" for bs, s in sweep.items())
            + f" lines/s -> {rows[c]['batch_size']}")
    live = [c for c in contenders if "na" not in rows[c]]
    for rnd in range(a.repeats):
        for c in live:
            save = tmp / f"{task}-{c}.out.json" if rnd == 0 else None
            r = spawn(c, task, art, lf, threads, [rows[c]["batch_size"]], a.max_tokens, save=save)
            if "na" in r:
                rows[c] = {"na": r["na"]}
                continue
            rows[c].setdefault("cpu_s", []).append(r["runs"][0]["cpu_s"])
            rows[c].setdefault("wall_s", []).append(r["runs"][0]["wall_s"])
            rows[c]["load_s"] = r["load_s"]
        live = [c for c in live if "na" not in rows[c]]
    ref = json.loads((tmp / f"{task}-{REFERENCE}.out.json").read_text())
    for c in contenders:
        row = rows[c]
        if "na" in row:
            continue
        row["seconds"] = statistics.median(row["cpu_s" if a.clock == "cpu" else "wall_s"])
        row["lines_per_s"] = len(lines) / row["seconds"]
        row["wall_lines_per_s"] = len(lines) / statistics.median(row["wall_s"])
        row["cpu_lines_per_s"] = len(lines) / statistics.median(row["cpu_s"])
        got = json.loads((tmp / f"{task}-{c}.out.json").read_text())
        row["agreement"] = agreement(task, ref, got)
    for c in contenders:
        if "na" not in rows[c]:
            rows[c]["ratio"] = rows[c]["lines_per_s"] / rows[REFERENCE]["lines_per_s"]
    return rows


def _agree_text(task: str, row: dict, contender: str) -> str:
    if "na" in row:
        return ""
    if contender == REFERENCE:
        return "-"
    g = row["agreement"]
    return f"{g['top1']:.1f} %" if task == "classify" else f"F1 {g['entity_f1']:.1f} %, {g['identical']:.1f} % lines"


def text_table(res: dict, tasks, contenders, threads: int) -> str:
    """The console table of one thread count."""
    head = f"{'contender':32}" + "".join(f" | {t + ' lines/s (x fp32)':>24} {'batch':>5} {'agreement':>28}"
                                         for t in tasks)
    out = [head, "-" * len(head)]
    for c in contenders:
        cells = []
        for t in tasks:
            row = res[t][c]
            if "na" in row:
                cells.append(f" | {'n/a (' + row['na'].split(' (')[0] + ')':>24} {'':>5} {'':>28}")
            else:
                cells.append(f" | {row['lines_per_s']:15.1f} ({row['ratio']:.2f}) {row['batch_size']:5d} "
                             f"{_agree_text(t, row, c):>28}")
        out.append(f"{CONTENDERS[c][2]:32}" + "".join(cells))
    return "\n".join(out)


def markdown_table(res: dict, tasks, contenders, threads: int, n: int, repeats: int, clock: str) -> str:
    """One markdown table (issue #17's layout) for one thread count: lines/s and ratio to bertcli
    fp32 per task, each row's batch size, and its agreement with bertcli fp32 per task."""
    what = "CPU time" if clock == "cpu" else "wall time"
    agree_head = {"classify": "classify top-1 agreement", "ner": "ner entity F1 / identical lines"}
    out = [f"{n} lines, {threads} thread{'s' if threads > 1 else ''}, {what}, median of {repeats} "
           f"alternating rounds, each contender at its best batch size; agreement with bertcli fp32:", "",
           "| lines/s, x bertcli fp32 | " + " | ".join(tasks) + " | batch size (" + " / ".join(tasks) + ") | "
           + " | ".join(agree_head[t] for t in tasks) + " |",
           "|---|" + "---|" * (2 * len(tasks) + 1)]
    for c in contenders:
        cells, bss, agr = [], [], []
        for t in tasks:
            row = res[t][c]
            if "na" in row:
                cells.append("n/a (" + row["na"].split(" (")[0] + ")")
                bss.append("-")
                agr.append("-")
                continue
            cells.append(f"{row['lines_per_s']:.0f} ({row['ratio']:.2f})")
            bss.append(str(row["batch_size"]))
            g = row["agreement"]
            agr.append("-" if c == REFERENCE else f"{g['top1']:.1f} %" if t == "classify"
                       else f"{g['entity_f1']:.1f} % / {g['identical']:.1f} %")
        out.append(f"| {CONTENDERS[c][2]} | " + " | ".join(cells) + f" | {' / '.join(bss)} | " + " | ".join(agr) + " |")
    return "\n".join(out)


def versions() -> dict:
    """Versions of the contenders' packages (None where one is missing)."""
    out = {}
    for mod in ("bertcli", "torch", "onnxruntime", "openvino", "ctranslate2", "tokenizers", "transformers"):
        try:
            m = __import__(mod)
            out[mod] = getattr(m, "__version__", None) or getattr(m, "get_version", lambda: None)()
        except ImportError:
            out[mod] = None
    return out


def _ints(s: str) -> list[int]:
    try:
        v = [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None
    if not v or min(v) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {s!r}")
    return v


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", default=",".join(TASKS), help="classify,ner (default both)")
    ap.add_argument("--contenders", default=",".join(CONTENDERS),
                    help=f"rows, comma-separated (default all: {','.join(CONTENDERS)}); {REFERENCE} is always "
                         "run, as the reference of the ratios and agreements")
    ap.add_argument("--lines", type=int, default=2000, help="real lines per run (default 2000)")
    ap.add_argument("--repeats", type=int, default=3, help="alternating timed rounds; the median counts (default 3)")
    ap.add_argument("--threads", type=_ints, default=[1], help="thread counts, one table each, e.g. 1,2 (default 1)")
    ap.add_argument("--batch-sizes", type=_ints, default=[8, 16, 32, 64],
                    help="batch sizes each contender is swept over (default 8,16,32,64; one: no sweep)")
    ap.add_argument("--sweep-lines", type=int, default=300, help="lines of the batch-size sweep (default 300)")
    ap.add_argument("--max-tokens", type=int, default=4096,
                    help="padded tokens per batch at most, for every contender (bertcli's default 4096; 0: none)")
    ap.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                    help="what the table's lines/s divide by: process CPU time (default) or wall time")
    ap.add_argument("--work", help="folder for the merged models and exports, kept and reused (default: a "
                                   "temporary folder, removed at the end)")
    ap.add_argument("--json", help="write every figure to this JSON file")
    ap.add_argument("--markdown", nargs="?", const="-", help="also print markdown tables (RESULTS.md's form), "
                                                             "or write them to this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        return child(a)
    tasks = [t for t in a.tasks.split(",") if t]
    bad = [t for t in tasks if t not in TASKS] + [c for c in a.contenders.split(",") if c and c not in CONTENDERS]
    if bad:
        ap.error(f"unknown task or contender: {', '.join(bad)} (tasks: {', '.join(TASKS)}; contenders: "
                 f"{', '.join(CONTENDERS)})")
    asked = {c for c in a.contenders.split(",") if c} | {REFERENCE}
    contenders = [c for c in CONTENDERS if c in asked]
    a.max_tokens = a.max_tokens or None
    a.sweep_lines = min(a.sweep_lines, a.lines)

    if a.work:
        work = Path(a.work)
        work.mkdir(parents=True, exist_ok=True)
    else:
        work = Path(tempfile.mkdtemp(prefix="bertcli-peers-"))
        atexit.register(shutil.rmtree, work, True)
    tmp = Path(tempfile.mkdtemp(prefix="bertcli-peers-run-"))
    atexit.register(shutil.rmtree, tmp, True)

    def log(msg):
        print(msg, file=sys.stderr, flush=True)

    t0 = time.perf_counter()
    art = prepare(work, tasks, contenders)
    log(f"models and exports ready in {time.perf_counter() - t0:.0f} s ({work})")
    lines = real_lines(a.lines)
    info = {"cores": os.cpu_count(), "cpu": platform.processor() or platform.machine(),
            "load_before": os.getloadavg(), "versions": versions()}
    try:
        info["cpu"] = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    result = {"lines": len(lines), "repeats": a.repeats, "clock": a.clock, "max_tokens": a.max_tokens,
              "batch_sizes": a.batch_sizes, "sweep_lines": a.sweep_lines, "machine": info, "tables": {}}
    md = []
    for threads in a.threads:
        res = {}
        for task in tasks:
            log(f"{task}, {threads} thread(s): sweep and {a.repeats} round(s) of {len(contenders)} contenders")
            res[task] = measure(task, contenders, art[task], lines, tmp, a, threads, log)
        result["tables"][str(threads)] = res
        print(f"\n{len(lines)} lines, {threads} thread(s), {'CPU' if a.clock == 'cpu' else 'wall'} time, median of "
              f"{a.repeats}; {info['cores']} cores ({info['cpu']}), load {os.getloadavg()[0]:.1f}")
        print(text_table(res, tasks, contenders, threads))
        md.append(markdown_table(res, tasks, contenders, threads, len(lines), a.repeats, a.clock))
    info["load_after"] = os.getloadavg()
    if a.markdown:
        text = "\n\n".join(md) + "\n"
        if a.markdown == "-":
            print("\n" + text)
        else:
            Path(a.markdown).write_text(text)
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
