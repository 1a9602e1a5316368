"""Evaluate a saved model folder on a labelled data file.

:func:`evaluate` loads the folder with :func:`bertcli.loading.load_model` (full models
and LoRA adapter folders alike), reads the data with the same readers as training and
returns the metrics of :mod:`bertcli.train.metrics` as a JSON-ready dict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BertcliError, DataError, ModelError, UsageError
from .collate import Collator, premask
from .core import _check_labels
from .options import ProgressFn, _emit
from .data import read_classification, read_documents, read_ner
from .features import encode_classification, encode_ner
from .metrics import classification_metrics, mlm_metrics, multilabel_metrics, ner_metrics

EVAL_TASKS = ("classify", "ner", "mlm")
#: keywords of a task's reader that :func:`evaluate` sets itself
_SET_HERE = {"path", "multi_label"}


def reader_options(task: str) -> tuple[str, ...]:
    """The reader keywords :func:`evaluate` passes on for ``task`` (``classify``: those of
    :func:`~bertcli.train.data.read_classification` but ``multi_label``, which the model
    decides; ``ner``: :func:`~bertcli.train.data.read_ner`; ``mlm``:
    :func:`~bertcli.train.data.read_documents`), read from the readers' signatures so
    that a new reader option is accepted as soon as the reader takes it."""
    import inspect

    fn = {"classify": read_classification, "ner": read_ner, "mlm": read_documents}[task]
    return tuple(p for p in inspect.signature(fn).parameters if p not in _SET_HERE)


def check_read_options(task: str, read_kw: dict) -> None:
    """Refuse reader keywords ``task``'s reader does not take (they would be ignored, or
    crash the reader after the model has loaded).

    Raises:
        UsageError: naming the first such keyword and the task(s) whose reader takes it.
    """
    for k in read_kw:
        if k not in reader_options(task):
            owners = [t for t in EVAL_TASKS if k in reader_options(t)]
            raise UsageError(f"{k}= is not an option of {task} evaluation"
                             + (f" (it is one of {' and '.join(owners)})" if owners else ""),
                             f"{task} evaluation takes {', '.join(reader_options(task))}")


def check_extras(task: str) -> None:
    """Entity-level NER metrics need ``seqeval`` (a training extra): refuse before any
    inference rather than after it.

    Raises:
        BertcliError: ``task`` is ``ner`` and seqeval is not installed.
    """
    import importlib.util

    if task == "ner" and importlib.util.find_spec("seqeval") is None:
        raise BertcliError("evaluating an NER model needs seqeval (entity-level P/R/F1, conlleval semantics)",
                           "pip install 'bertcli[train]'")


def model_task(model_dir: str | Path) -> str:
    """The training task of a model folder from its config: ``classify``, ``ner`` or ``mlm``.

    Raises:
        ModelError: the folder fails :func:`bertcli.loading.check_folder` (missing, no
            config.json, pickle-only weights, ...), or an architecture without one of these heads.
    """
    from ..loading import check_folder

    cfg = check_folder(Path(model_dir))
    archs = cfg.get("architectures") or []
    for a in archs:
        if a.endswith("ForSequenceClassification"):
            return "classify"
        if a.endswith("ForTokenClassification"):
            return "ner"
        if a.endswith(("ForPreTraining", "ForMaskedLM")):
            return "mlm"
    raise ModelError(f"'{model_dir}' ({', '.join(archs) or 'no architecture'}) has no classification, token "
                     "classification or masked-LM head to evaluate", "choose one with --task (task= in Python) or train a head first")


def _batches(features: list[dict], batch_size: int):
    # Longest first, so a memory problem shows up on the first batch; results go back
    # to input order through the indices.
    order = sorted(range(len(features)), key=lambda i: -len(features[i]["input_ids"]))
    for s in range(0, len(order), batch_size):
        idx = order[s:s + batch_size]
        yield idx, [features[i] for i in idx]


def evaluate(model_dir: str | Path, data: str | Path, *, task: str | None = None, device: str = "auto",
             dtype: str = "auto", batch_size: int = 32, max_length: int | None = None, seed: int = 0,
             mlm_probability: float = 0.15, progress: ProgressFn | None = None, **read_kw) -> dict:
    """Metrics of a saved model on a labelled file.

    Args:
        model_dir: a model folder written by ``train_*`` (or any folder with the head).
        data: the data file (folder for ``mlm``); read with the reader of the task, to
            which the extra keywords go (``text_field``, ``label_field``,
            ``data_format``, ``tag_column``, ``documents``, ...).
        task: ``classify``, ``ner`` or ``mlm``; default from the folder's config.
        device, dtype, batch_size: inference settings.
        max_length: tokens per example (default: the model's limit).
        seed: masks for ``mlm`` (15%, 80/10/10), and the next-sentence pairs.

    Returns:
        ``{"task", "model", "data", "n", ...metrics, "warnings"}``:

        * classify: ``accuracy``, ``macro_f1``, ``loss`` (mean cross-entropy), ``per_label``
          {label: precision, recall, f1, support}, ``confusion_matrix`` {labels, matrix
          (rows true, columns predicted)}; multi-label: ``subset_accuracy``,
          ``micro_f1``, ``macro_f1``, ``per_label`` (threshold: sigmoid > 0.5).
        * ner: entity-level ``precision``, ``recall``, ``f1``, token ``accuracy``,
          ``per_type`` (conlleval semantics, seqeval); words past ``max_length`` count
          as predicted ``O`` (reported in warnings).
        * mlm: ``mlm_loss``, ``perplexity``, ``top1_accuracy``, ``top5_accuracy``,
          ``n_masked`` and, when the folder has an NSP head, ``nsp_accuracy`` (on the
          same masked pairs, as during pre-training).

    Raises:
        DataError: unreadable data, no labels, a label/tag the model does not know.
        UsageError: a reader keyword the task's reader does not take (see
            :func:`reader_options`); raised before the model loads.
        BertcliError: ``ner`` without seqeval installed (before the model loads).
        ModelError, DeviceError: from loading.
    """
    from ..loading import load_model, load_tokenizer, resolve_model_dir

    model_dir = resolve_model_dir(model_dir, "classify")  # a folder, or a hub id from the local cache
    task = task or model_task(model_dir)
    if task not in EVAL_TASKS:
        raise ValueError(f"task must be one of {EVAL_TASKS}")
    check_read_options(task, read_kw)
    check_extras(task)
    if task == "mlm":
        return _evaluate_mlm(model_dir, data, device, dtype, batch_size, max_length, seed, mlm_probability,
                             progress, read_kw)
    lm = load_model(model_dir, task, device=device, dtype=dtype)
    tok = load_tokenizer(Path(model_dir))
    max_len = min(max_length or lm.max_length, lm.max_length)
    labels = [lm.id2label[i] for i in range(len(lm.id2label))]
    l2i = {lab: i for i, lab in enumerate(labels)}
    if task == "classify":
        multi = getattr(lm.config, "problem_type", None) == "multi_label_classification"
        ds = read_classification(data, multi_label=multi, **read_kw)
        _check_labels(ds, labels, "model's")
        feats = encode_classification(tok, ds, l2i, max_len, multi)
        warnings = [str(w) for w in ds.warnings]
    else:
        ds = read_ner(data, **read_kw)
        _check_labels(ds, labels, "model's")
        feats, w = encode_ner(tok, ds, l2i, max_len, False)
        warnings = [str(x) for x in ds.warnings + w]
    for msg in warnings[:20]:
        _emit(progress, {"event": "warning", "message": msg})
    collate = Collator(tok)
    outputs: list = [None] * len(feats)
    done = 0
    for idx, fs in _batches(feats, batch_size):
        batch = collate([{k: v for k, v in f.items() if k not in ("labels", "word_ids", "n_words")} for f in fs])
        logits = lm.forward(batch).numpy()
        for j, i in enumerate(idx):
            n = len(feats[i]["input_ids"])
            outputs[i] = logits[j] if task == "classify" else logits[j, :n]
        done += len(idx)
        _emit(progress, {"event": "progress", "done": done, "total": len(feats)})
    out = {"task": task, "model": str(model_dir), "data": str(data), "n": len(feats)}
    if task == "classify":
        logits = np.stack(outputs) if outputs else np.zeros((0, len(labels)))
        if multi:
            gold = np.array([f["labels"] for f in feats])
            out.update(multilabel_metrics(gold, (logits > 0).astype(int), labels, detailed=True))
        else:
            gold = np.array([f["labels"] for f in feats], dtype=np.int64)
            out.update(classification_metrics(gold, logits.argmax(-1), labels, detailed=True))
            z = logits - logits.max(-1, keepdims=True)
            logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
            out["loss"] = float(-logp[np.arange(len(gold)), gold].mean()) if len(gold) else float("nan")
    else:
        gold_tags, pred_tags = [], []
        for s, f, lg in zip(ds.sentences, feats, outputs):
            pred = ["O"] * len(s.tokens)  # words cut by max_length are predicted O
            ids = lg.argmax(-1)
            prev = -1
            for pos, w in enumerate(f["word_ids"]):
                if w >= 0 and w != prev:
                    pred[w] = labels[int(ids[pos])]
                prev = w
            gold_tags.append(list(s.tags))
            pred_tags.append(pred)
        out.update(ner_metrics(gold_tags, pred_tags, detailed=True))
    out["warnings"] = warnings
    return out


def _evaluate_mlm(model_dir, data, device, dtype, batch_size, max_length, seed, prob, progress, read_kw) -> dict:
    import torch

    from ..loading import inspect_folder, load_model, load_tokenizer, tasks_of_checkpoint
    from .pretraining import make_instances

    lm = load_model(model_dir, "fill-mask", device=device, dtype=dtype)
    nsp_lm = None
    # the weights decide (bert-base-uncased says BertForMaskedLM but carries the NSP head)
    cfg, shapes = inspect_folder(Path(model_dir))
    if "nsp" in (tasks_of_checkpoint(cfg, shapes) or ()):
        nsp_lm = load_model(model_dir, "nsp", device=device, dtype=dtype)
    tok = load_tokenizer(Path(model_dir))
    max_len = min(max_length or lm.max_length, lm.max_length)
    docs, issues = read_documents(data, **read_kw)
    use_nsp = nsp_lm is not None and len(docs) >= 2
    if nsp_lm is not None and not use_nsp:
        issues = [*issues, f"nsp_accuracy not computed: next-sentence pairs need at least two documents "
                           f"(files of a folder, or blank-line separated) and '{data}' has {len(docs)}"]
    inst = make_instances(tok, docs, max_len, use_nsp, seed)
    if not inst:
        raise DataError(f"no evaluation sequences could be made from '{data}'")
    feats = premask(inst, tok, prob, seed)
    collate = Collator(tok)
    nll = 0.0
    n = hits1 = hits5 = 0
    nsp_right = 0
    for idx, fs in _batches(feats, batch_size):
        batch = collate([{k: v for k, v in f.items() if k not in ("labels", "next_sentence_label")} for f in fs])
        lab = torch.tensor([f["labels"] + [-100] * (batch["input_ids"].shape[1] - len(f["labels"])) for f in fs])
        rows = (lab != -100).nonzero()
        if len(rows):
            logits = lm.forward(batch, mask_rows=rows)
            gold = lab[rows[:, 0], rows[:, 1]]
            nll += float(torch.nn.functional.cross_entropy(logits, gold, reduction="sum"))
            top5 = logits.topk(5, dim=-1).indices
            hits1 += int((top5[:, 0] == gold).sum())
            hits5 += int((top5 == gold[:, None]).any(-1).sum())
            n += len(gold)
        if use_nsp:
            pred = nsp_lm.forward(batch).argmax(-1)
            nsp_right += int((pred == torch.tensor([f["next_sentence_label"] for f in fs])).sum())
    out = {"task": "mlm", "model": str(model_dir), "data": str(data), "n": len(feats)}
    out.update(mlm_metrics(nll, n, hits1, hits5))
    if use_nsp:
        out["nsp_accuracy"] = nsp_right / len(feats)
    out["warnings"] = [str(w) for w in issues]
    return out
