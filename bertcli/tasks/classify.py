"""Sequence classification (``classify``) and its sentiment flavour (``sentiment``).

Scores follow the Hugging Face ``text-classification`` pipeline: softmax over the
labels for single-label models, an independent sigmoid per label for
``problem_type == "multi_label_classification"``, the raw value for
``problem_type == "regression"``. One deliberate difference: a model with one output
and no problem_type is taken as a regressor and gets its raw value, where the pipeline
applies a sigmoid (checked against transformers 5 in tests/test_parity.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

from ..errors import UsageError
from ..io.readers import Record
from .base import (Feature, StreamOptions, collate, encode_texts, forward_gaps, run_refined, stream_records,
                   text_list)


def function_to_apply(config) -> str:
    """``softmax``, ``sigmoid`` or ``none`` from ``config.problem_type`` / ``num_labels``."""
    pt = getattr(config, "problem_type", None)
    if pt == "regression" or (pt is None and config.num_labels == 1):
        return "none"
    if pt == "multi_label_classification":
        return "sigmoid"
    return "softmax"


def label_names(config, override: list[str] | None = None) -> list[str]:
    """Label names by id: ``id2label``, or ``override`` (e.g. ``--labels``).

    Raises:
        UsageError: ``override`` does not have one name per model output.
    """
    n = config.num_labels
    if override:
        if any(not str(x).strip() for x in override) or len(set(override)) != len(override):
            raise UsageError(f"--labels must give distinct, non-empty names, got {', '.join(map(str, override))}")
        if len(override) != n:
            raise UsageError(f"--labels gives {len(override)} names but the model has {n} outputs")
        return list(override)
    id2 = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return [id2.get(i, f"LABEL_{i}") for i in range(n)]


def scores_from_logits(logits, how: str):
    """Turn a ``(batch, num_labels)`` float tensor into scores (same shape). A numpy array (the
    fast path's logits) gets the same functions from :mod:`bertcli.fastpath.ops` (float32 out)."""
    if not hasattr(logits, "softmax"):
        from ..fastpath import ops
        return ops.softmax(logits) if how == "softmax" else ops.sigmoid(logits) if how == "sigmoid" else logits
    if how == "softmax":
        return logits.softmax(-1)
    if how == "sigmoid":
        return logits.sigmoid()
    return logits


def postprocess(scores_row, names: list[str], top_k: int | None, truncated: bool) -> dict:
    """One record's result: ``label``/``score`` of the best label, ``labels`` (top-k list,
    best first; all labels when ``top_k`` is None) and ``truncated``."""
    vals = [float(x) for x in scores_row.tolist()]
    order = sorted(range(len(vals)), key=lambda i: -vals[i])
    k = len(order) if top_k is None else max(1, min(top_k, len(order)))
    labels = [{"label": names[i], "score": vals[i]} for i in order[:k]]
    return {"label": labels[0]["label"], "score": labels[0]["score"], "labels": labels, "truncated": truncated}


def classify_features(lm, feats: list[Feature], opts: StreamOptions):
    """Logits for features, length-sorted and batched; a list of ``(num_labels,)`` tensors in input order."""
    pad = lm.tokenizer.pad_token_id or 0

    def run(model, batch):
        logits, gaps = forward_gaps(model, collate(batch, pad, numpy=getattr(model, "numpy", False)))
        return list(zip(logits, gaps))

    return run_refined(lm, feats, run, opts)


def classify(lm, texts: list[str], text_pairs: list[str] | None = None, top_k: int | None = 1,
             labels: list[str] | None = None, opts: StreamOptions | None = None) -> list[dict]:
    """Classify a list of texts (or pairs). Returns one dict per text; see :func:`postprocess`.

    Texts longer than ``lm.max_length`` tokens are truncated (``truncated: true``).

    Raises:
        TypeError: ``texts`` or ``text_pairs`` is a single ``str`` (pass ``[text]``).
    """
    opts = opts or StreamOptions()
    names = label_names(lm.config, labels)
    how = function_to_apply(lm.config)
    texts = text_list(texts)
    text_pairs = text_list(text_pairs, "text_pairs") if text_pairs is not None else None
    feats, flags = encode_texts(lm.tokenizer, texts, text_pairs or None, lm.max_length)
    logits = classify_features(lm, feats, opts)
    return [postprocess(scores_from_logits(lg, how), names, top_k, fl) for lg, fl in zip(logits, flags)]


def stream(lm, records: Iterable[Record], top_k: int | None = 1, labels: list[str] | None = None,
           opts: StreamOptions | None = None, pairs: bool = False) -> Iterator[tuple[Record, dict | None]]:
    """Classify a record stream; yields ``(record, result)`` in input order (see ``tasks.base``)."""
    opts = opts or StreamOptions()
    label_names(lm.config, labels)  # fail before reading input

    def window(recs: list[Record]) -> list[dict]:
        return classify(lm, [r.text for r in recs], [r.text_pair for r in recs] if pairs else None,
                        top_k, labels, opts)

    return stream_records(records, window, opts)


# ---------------------------------------------------------------- sentiment

_POS = {"positive", "pos", "label_pos", "good", "1", "yes", "4 stars", "5 stars", "4 star", "5 star"}
_NEG = {"negative", "neg", "label_neg", "bad", "0", "no", "1 star", "2 stars", "1 stars", "2 star"}
_NEU = {"neutral", "neu", "3 stars", "3 star", "mixed"}


def normalise_sentiment(label: str, names: list[str]) -> str | None:
    """Map a model's label name to ``positive``, ``negative`` or ``neutral``.

    Covers the common conventions: POSITIVE/NEGATIVE (SST-2 models), pos/neg/neu,
    ``N star(s)`` (1-2 negative, 3 neutral, 4-5 positive), and placeholder ``LABEL_i``:
    with two labels 0 = negative, 1 = positive (GLUE SST-2); with three labels
    0/1/2 = negative/neutral/positive (the cardiffnlp convention). Returns None when
    the name is unknown.
    """
    s = label.strip().lower()
    if s in _POS:
        return "positive"
    if s in _NEG:
        return "negative"
    if s in _NEU:
        return "neutral"
    m = re.fullmatch(r"label_(\d+)", s)
    if m:
        i = int(m.group(1))
        if len(names) == 2:
            return ["negative", "positive"][i] if i < 2 else None
        if len(names) == 3:
            return ["negative", "neutral", "positive"][i] if i < 3 else None
    return None


def sentiment_fields(result: dict, names: list[str]) -> dict:
    """Add ``sentiment`` to a classify result and to each entry of ``labels``."""
    for entry in result["labels"]:
        entry["sentiment"] = normalise_sentiment(entry["label"], names)
    result["sentiment"] = result["labels"][0]["sentiment"]
    return result
