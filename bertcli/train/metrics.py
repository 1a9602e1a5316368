"""Evaluation metrics: classification, multi-label, NER (entity level) and masked LM / NSP.

All functions take plain sequences or numpy arrays and return JSON-ready dicts (Python
floats and ints). Conventions:

* precision/recall/F1 of a label with no prediction and no gold example are 0, like
  scikit-learn's ``zero_division=0``; macro averages are over the labels given.
* confusion matrix: ``matrix[i][j]`` counts examples of true label ``labels[i]``
  predicted as ``labels[j]``.
* NER scores are entity-level, with conlleval's chunking (seqeval's default mode: an
  ``I-X`` after ``O`` starts an entity), micro-averaged over entities.
* masked-LM scores use only the positions whose label is not -100; perplexity is
  ``exp(mean cross-entropy)`` over those positions (nats).
"""

from __future__ import annotations

import math

import numpy as np


def _prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return p, r, f


def classification_metrics(y_true, y_pred, labels: list[str], detailed: bool = False) -> dict:
    """Accuracy and macro-F1 of single-label predictions.

    Args:
        y_true, y_pred: label ids (ints in ``range(len(labels))``), same length.
        labels: label names by id.
        detailed: also return ``per_label`` ({name: precision, recall, f1, support}) and
            ``confusion_matrix`` (``{"labels": [...], "matrix": [[...]]}``).
    """
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    k = len(labels)
    cm = np.zeros((k, k), dtype=np.int64)
    np.add.at(cm, (t, p), 1)
    per = {}
    f1s = []
    for i, name in enumerate(labels):
        tp = int(cm[i, i])
        fp = int(cm[:, i].sum() - tp)
        fn = int(cm[i, :].sum() - tp)
        pr, rc, f = _prf(tp, fp, fn)
        per[name] = {"precision": pr, "recall": rc, "f1": f, "support": int(cm[i, :].sum())}
        f1s.append(f)
    out = {"accuracy": float((t == p).mean()) if len(t) else 0.0, "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
           "n": int(len(t))}
    if detailed:
        out["per_label"] = per
        out["confusion_matrix"] = {"labels": list(labels), "matrix": cm.tolist()}
    return out


def multilabel_metrics(y_true, y_pred, labels: list[str], detailed: bool = False) -> dict:
    """Scores of multi-label predictions.

    Args:
        y_true, y_pred: 0/1 arrays of shape ``(n, len(labels))`` (predictions already
            thresholded, e.g. sigmoid > 0.5).

    Returns:
        ``subset_accuracy`` (every label right), ``micro_f1``, ``macro_f1``, ``n``; with
        ``detailed`` also ``per_label``.
    """
    t = np.asarray(y_true).astype(bool)
    p = np.asarray(y_pred).astype(bool)
    tp = (t & p).sum(0)
    fp = (~t & p).sum(0)
    fn = (t & ~p).sum(0)
    per = {}
    f1s = []
    for i, name in enumerate(labels):
        pr, rc, f = _prf(int(tp[i]), int(fp[i]), int(fn[i]))
        per[name] = {"precision": pr, "recall": rc, "f1": f, "support": int(t[:, i].sum())}
        f1s.append(f)
    _, _, micro = _prf(int(tp.sum()), int(fp.sum()), int(fn.sum()))
    out = {"subset_accuracy": float((t == p).all(1).mean()) if len(t) else 0.0, "micro_f1": micro,
           "macro_f1": float(np.mean(f1s)) if f1s else 0.0, "n": int(len(t))}
    if detailed:
        out["per_label"] = per
    return out


def ner_metrics(true_tags: list[list[str]], pred_tags: list[list[str]], detailed: bool = True) -> dict:
    """Entity-level precision, recall and F1 (conlleval semantics, via ``seqeval``).

    Args:
        true_tags, pred_tags: one tag list per sentence, same lengths.

    Returns:
        ``precision``, ``recall``, ``f1`` (micro over entities), ``accuracy`` (tokens),
        ``n_sentences``; with ``detailed`` also ``per_type``: {type: precision, recall, f1,
        support} where support counts gold entities.
    """
    from seqeval.metrics import accuracy_score, classification_report, f1_score, precision_score, recall_score

    if any(len(a) != len(b) for a, b in zip(true_tags, pred_tags)) or len(true_tags) != len(pred_tags):
        raise ValueError("gold and predicted tag sequences differ in length")
    out = {"precision": float(precision_score(true_tags, pred_tags, zero_division=0)),
           "recall": float(recall_score(true_tags, pred_tags, zero_division=0)),
           "f1": float(f1_score(true_tags, pred_tags, zero_division=0)),
           "accuracy": float(accuracy_score(true_tags, pred_tags)) if true_tags else 0.0,
           "n_sentences": len(true_tags)}
    if detailed:
        rep = classification_report(true_tags, pred_tags, output_dict=True, zero_division=0)
        out["per_type"] = {k: {"precision": float(v["precision"]), "recall": float(v["recall"]),
                               "f1": float(v["f1-score"]), "support": int(v["support"])}
                           for k, v in rep.items() if not k.endswith(" avg")}
    return out


def mlm_metrics(nll_sum: float, n_masked: int, top1_hits: int, top5_hits: int) -> dict:
    """Masked-LM scores from counts: ``mlm_loss`` (mean cross-entropy, nats),
    ``perplexity`` (exp of it; inf when it overflows), ``top1_accuracy``,
    ``top5_accuracy`` over ``n_masked`` predicted positions."""
    if n_masked == 0:
        return {"mlm_loss": float("nan"), "perplexity": float("nan"), "top1_accuracy": 0.0, "top5_accuracy": 0.0,
                "n_masked": 0}
    loss = nll_sum / n_masked
    try:
        ppl = math.exp(loss)
    except OverflowError:
        ppl = float("inf")
    return {"mlm_loss": loss, "perplexity": ppl, "top1_accuracy": top1_hits / n_masked,
            "top5_accuracy": top5_hits / n_masked, "n_masked": int(n_masked)}


def nsp_metrics(is_next: list[bool], scores: list[float], n_bins: int = 10) -> dict:
    """Scores of a next-sentence head on labelled pairs, with the baselines a reader needs.

    Args:
        is_next: the gold answers (True: B follows A).
        scores: P(B follows A) per pair (``bertcli nsp``'s ``score``); the prediction is
            ``score >= 0.5``, as ``is_next``.
        n_bins: equal-width confidence bins of the calibration error.

    Returns:
        ``n``, ``n_is_next``, ``n_not_next``; ``accuracy``; ``is_next_accuracy`` and
        ``not_next_accuracy`` (the recall of each class: a head that answers one class
        for everything scores 1.0 on it and 0.0 on the other); ``majority_baseline``
        (the accuracy of always answering the larger class); ``ece``, the expected
        calibration error of the confidence ``max(score, 1 - score)`` of each answer
        (Guo et al. 2017: the size-weighted mean of ``|accuracy - mean confidence|``
        over ``n_bins`` equal-width bins of [0, 1]); ``brier`` (mean squared error of
        ``score``).

    Raises:
        ValueError: the lists differ in length or are empty.
    """
    if len(is_next) != len(scores) or not scores:
        raise ValueError("is_next and scores must be non-empty lists of the same length")
    n = len(scores)
    gold = [bool(g) for g in is_next]
    pred = [float(s) >= 0.5 for s in scores]
    hit = [p == g for p, g in zip(pred, gold)]
    n_next = sum(gold)

    def recall(cls: bool) -> float:
        sel = [h for h, g in zip(hit, gold) if g == cls]
        return sum(sel) / len(sel) if sel else float("nan")

    bins: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for s, h in zip(scores, hit):
        conf = max(float(s), 1.0 - float(s))
        bins[min(int(conf * n_bins), n_bins - 1)].append((conf, h))
    ece = sum(abs(sum(c for c, _ in b) / len(b) - sum(h for _, h in b) / len(b)) * len(b) / n for b in bins if b)
    return {"n": n, "n_is_next": n_next, "n_not_next": n - n_next, "accuracy": sum(hit) / n,
            "is_next_accuracy": recall(True), "not_next_accuracy": recall(False),
            "majority_baseline": max(n_next, n - n_next) / n, "ece": ece,
            "brier": sum((float(s) - float(g)) ** 2 for s, g in zip(scores, gold)) / n}
