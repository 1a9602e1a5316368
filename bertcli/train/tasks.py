"""The three training entry points: :func:`train_classify`, :func:`train_ner`, :func:`train_mlm`.

Each reads and validates all data *before* building a model (so a bad label or line
fails in seconds), then hands a prepared job to :func:`bertcli.train.core._fit`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import DataError
from .collate import Collator, premask
from .checkpoints import prepare_output
from .core import _base_dir, _check_labels, _fit, _Job, _load_net, _subsample
from .data import read_classification, read_documents, read_ner
from .features import encode_classification, encode_ner
from .metrics import classification_metrics, mlm_metrics, multilabel_metrics, ner_metrics
from .options import ProgressFn, TrainError, TrainOptions, TrainResult, _emit


def _tokenizer_and_length(base: Path, max_length: int):
    import json

    from transformers import AutoConfig

    from ..loading import load_tokenizer, model_max_length

    cfg = json.loads((base / "config.json").read_text(encoding="utf-8"))
    tok = load_tokenizer(base, cfg)
    limit = model_max_length(AutoConfig.from_pretrained(str(base), local_files_only=True, trust_remote_code=False),
                             tok)
    return tok, min(int(max_length), limit)


def _warn_all(progress, warnings, limit: int = 20) -> list[str]:
    out = [str(w) for w in warnings]
    for w in out[:limit]:
        _emit(progress, {"event": "warning", "message": w})
    if len(out) > limit:
        _emit(progress, {"event": "warning", "message": f"... and {len(out) - limit} more data notices"})
    return out


def _seed_all(seed: int) -> None:
    from transformers import set_seed

    set_seed(seed)


# ---------------------------------------------------------------- classify

def classify_metrics_fn(labels: list[str], multi_label: bool):
    """``compute_metrics`` for Trainer: accuracy + macro-F1 (single-label, argmax) or
    subset accuracy + micro/macro-F1 (multi-label, sigmoid > 0.5)."""
    def compute(p):
        logits = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        if multi_label:
            pred = (logits > 0).astype(np.int64)  # sigmoid(x) > 0.5  <=>  x > 0
            m = multilabel_metrics(p.label_ids, pred, labels)
        else:
            m = classification_metrics(p.label_ids, logits.argmax(-1), labels)
        m.pop("n", None)
        return m
    return compute


def train_classify(model: str | Path | None, train: str | Path, output: str | Path, eval: str | Path | None = None,
                   *, text_field: str | None = None, text_pair_field: str | None = None,
                   label_field: str | None = None, data_format: str = "auto", multi_label: bool = False,
                   label_sep: str | None = None, header: bool | None = None, encoding: str = "auto",
                   labels: list[str] | None = None, label_map: dict[str, str] | None = None,
                   options: TrainOptions | None = None, progress: ProgressFn | None = None) -> TrainResult:
    """Fine-tune a sequence classifier (single- or multi-label, single texts or pairs).

    The head is ``AutoModelForSequenceClassification`` on ``[CLS]`` (BERT paper §4.1):
    cross-entropy, or with ``multi_label`` one sigmoid per label
    (``problem_type="multi_label_classification"``, BCE). A base that already has a
    classifier with other labels gets a fresh head.

    Args:
        model: base model folder (``None``: the installed all-MiniLM-L6-v2).
        train, eval: data files (see :func:`bertcli.train.data.read_classification`
            for the formats and the field keywords, which are passed through).
        output: the model folder to write.
        labels: the label set in id order; default: the training labels, sorted
            (numerically when all are integers).
        label_map: rename labels as read (``{"0": "negative", "1": "positive"}``).
        options: :class:`TrainOptions`.
        progress: event callback (see :mod:`bertcli.train.core`).

    Returns:
        :class:`TrainResult`; ``metrics`` has ``accuracy`` and ``macro_f1`` (or
        ``subset_accuracy``, ``micro_f1``, ``macro_f1``) and ``loss``.

    Raises:
        DataError: unreadable data; an eval label not among the training labels (before
            any training).
        ModelError: unusable base folder. TrainError: output in use, NaN loss, bad options.
    """
    opts = options or TrainOptions()
    out = prepare_output(output, opts.overwrite, opts.resume)
    base = _base_dir(model)
    kw = dict(text_field=text_field, text_pair_field=text_pair_field, label_field=label_field,
              data_format=data_format, multi_label=multi_label, label_sep=label_sep, header=header,
              encoding=encoding, label_map=label_map)
    tr = read_classification(train, **kw)
    ev = read_classification(eval, **kw) if eval else None
    if ev is not None and (ev.text_pair_field is None) != (tr.text_pair_field is None):
        raise DataError(f"{ev.source}: the training data has {'text pairs' if tr.text_pair_field else 'single texts'}"
                        f" but this file has {'text pairs' if ev.text_pair_field else 'single texts'}")
    label_list = list(labels) if labels else tr.labels()
    if not label_list:
        raise DataError(f"{tr.source}: no labels in the training data")
    if len(label_list) < 2 and not multi_label:
        raise DataError(f"{tr.source}: only one label ({', '.join(label_list)}) in the training data",
                        "a classifier needs at least two labels")
    _check_labels(tr, label_list, "given")
    if ev is not None:
        _check_labels(ev, label_list, "training")
    warnings = _warn_all(progress, tr.warnings + (ev.warnings if ev else []))
    tok, max_len = _tokenizer_and_length(base, opts.max_length)
    l2i = {lab: i for i, lab in enumerate(label_list)}
    train_f = _subsample(encode_classification(tok, tr, l2i, max_len, multi_label), opts.max_train_samples, opts.seed)
    eval_f = _subsample(encode_classification(tok, ev, l2i, max_len, multi_label), opts.max_eval_samples,
                        opts.seed) if ev else None
    _seed_all(opts.seed)
    net = _load_net("AutoModelForSequenceClassification", base, num_labels=len(label_list),
                    id2label=dict(enumerate(label_list)), label2id=l2i,
                    problem_type="multi_label_classification" if multi_label else "single_label_classification",
                    ignore_mismatched_sizes=True)
    _fresh_head_if_relabelled(base, net, label_list, "classifier")
    info = {"train": f"{tr.source} ({len(train_f)} examples, {tr.data_format})",
            "eval": f"{ev.source} ({len(eval_f)} examples)" if ev else "none",
            "text_field": tr.text_field, "text_pair_field": tr.text_pair_field, "label_field": tr.label_field,
            "multi_label": multi_label}
    metric = opts.metric or ("micro_f1" if multi_label else "accuracy")
    heads = ["classifier"] + (["pooler"] if getattr(net.base_model, "pooler", None) is not None else [])
    job = _Job("classify", base, out, net, tok, train_f, eval_f, Collator(tok), classify_metrics_fn(label_list,
               multi_label), None, ["labels"], metric, label_list, info, warnings, heads)
    return _fit(job, opts, progress)


def _fresh_head_if_relabelled(base: Path, net, labels: list[str], head: str) -> None:
    import json

    cfg = json.loads((base / "config.json").read_text(encoding="utf-8"))
    old = cfg.get("id2label") or {}
    old_names = [str(old[k]) for k in sorted(old, key=int)] if old else []
    trained = any(a.endswith(("ForSequenceClassification", "ForTokenClassification"))
                  for a in cfg.get("architectures") or [])
    if trained and old_names and old_names != list(labels):
        # Same number of labels but other names: the loaded head would map them wrongly.
        # BERT's initialisation of a Linear head (modeling_bert._init_weights): weights
        # N(0, initializer_range), bias 0. (_init_weights itself skips modules that
        # from_pretrained marked as initialised.)
        import torch

        module = getattr(net, head, None)
        std = getattr(net.config, "initializer_range", 0.02)
        for m in ([module] if module is not None else []):
            for sub in m.modules():
                if isinstance(sub, torch.nn.Linear):
                    with torch.no_grad():
                        sub.weight.normal_(0.0, std)
                        if sub.bias is not None:
                            sub.bias.zero_()


# ---------------------------------------------------------------- NER

def ner_metrics_fn(labels: list[str]):
    """``compute_metrics`` for Trainer: entity-level P/R/F1 (seqeval, conlleval
    semantics) over the first WordPiece of each word (label != -100)."""
    def compute(p):
        preds = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        gold = p.label_ids
        t_all, p_all = [], []
        for pr, gl in zip(preds, gold):
            keep = gl != -100
            t_all.append([labels[i] for i in gl[keep]])
            p_all.append([labels[i] for i in pr[keep]])
        m = ner_metrics(t_all, p_all, detailed=False)
        m.pop("n_sentences", None)
        return m
    return compute


def _argmax_logits(logits, labels):
    if isinstance(logits, tuple):
        logits = logits[0]
    return logits.argmax(-1)


def train_ner(model: str | Path | None, train: str | Path, output: str | Path, eval: str | Path | None = None,
              *, data_format: str = "auto", token_column: int = 0, tag_column: int = -1,
              tokens_field: str = "tokens", tags_field: str | None = None, scheme: str = "auto",
              on_invalid: str = "fix", token_format: str = "auto", encoding: str = "auto", text_field: str = "text",
              label_all_tokens: bool = False, labels: list[str] | None = None,
              options: TrainOptions | None = None, progress: ProgressFn | None = None) -> TrainResult:
    """Fine-tune a token classifier for named entities.

    Tags are aligned to WordPieces with :func:`bertcli.train.features.align_labels`
    (first piece of a word = its tag, the rest -100 or, with ``label_all_tokens``,
    ``I-``); evaluation always scores the first piece of each word, entity level
    (conlleval semantics, seqeval).

    Args:
        model, train, eval, output, options, progress: as :func:`train_classify`.
        data_format ... encoding, text_field: passed to :func:`bertcli.train.data.read_ner`
            (CoNLL, JSONL tokens/tags, or character spans: ``spans``, ``labelstudio``).
            IOB1 files are converted to IOB2; invalid sequences are repaired and reported
            (``on_invalid="error"`` refuses them, ``"skip"`` leaves them out); an invalid
            span stops the run before the model loads, unless ``on_invalid="skip"``.
        labels: the tag set in id order (default: training tags, ``O`` first, then by
            type; with ``label_all_tokens`` each ``B-X`` also gets its ``I-X``).

    Returns:
        :class:`TrainResult`; ``metrics`` has ``precision``, ``recall``, ``f1``,
        ``accuracy`` (tokens) and ``loss``.

    Raises:
        DataError: unreadable data, an eval tag not in the training tags, different tag
            schemes in train and eval. ModelError, TrainError: as :func:`train_classify`.
    """
    opts = options or TrainOptions()
    out = prepare_output(output, opts.overwrite, opts.resume)
    base = _base_dir(model)
    kw = dict(data_format=data_format, token_column=token_column, tag_column=tag_column, tokens_field=tokens_field,
              tags_field=tags_field, scheme=scheme, on_invalid=on_invalid, token_format=token_format,
              encoding=encoding, tag_names=labels, text_field=text_field)
    tr = read_ner(train, **kw)
    ev = read_ner(eval, **kw) if eval else None
    if ev is not None and ev.scheme != tr.scheme:
        if any(t != "O" for s in ev.sentences for t in s.tags):
            raise DataError(f"{ev.source}: tags are {ev.scheme} but the training data's are {tr.scheme}",
                            "convert both files to the same scheme")
    from .data import sort_tags

    tag_list = list(labels) if labels else tr.labels()
    if label_all_tokens and not labels:
        tag_list = sort_tags(set(tag_list) | {"I-" + t[2:] for t in tag_list if t.startswith("B-")})
    _check_labels(tr, tag_list, "given")
    if ev is not None:
        _check_labels(ev, tag_list, "training")
    tok, max_len = _tokenizer_and_length(base, opts.max_length)
    l2i = {t: i for i, t in enumerate(tag_list)}
    train_f, w1 = encode_ner(tok, tr, l2i, max_len, label_all_tokens)
    eval_f, w2 = encode_ner(tok, ev, l2i, max_len, False) if ev else (None, [])
    warnings = _warn_all(progress, tr.warnings + (ev.warnings if ev else []) + w1 + w2)
    train_f = _subsample(train_f, opts.max_train_samples, opts.seed)
    eval_f = _subsample(eval_f, opts.max_eval_samples, opts.seed) if eval_f else None
    _seed_all(opts.seed)
    net = _load_net("AutoModelForTokenClassification", base, num_labels=len(tag_list),
                    id2label=dict(enumerate(tag_list)), label2id=l2i, ignore_mismatched_sizes=True)
    _fresh_head_if_relabelled(base, net, tag_list, "classifier")
    # Only first pieces carry a trained tag unless label_all_tokens: `bertcli ner` then groups
    # by word ("first") by default, read from this standard config field.
    net.config.task_specific_params = {"ner": {"aggregation_strategy": "simple" if label_all_tokens else "first"}}
    info = {"train": f"{tr.source} ({len(train_f)} sentences, {tr.data_format}, {tr.source_scheme}"
                     f"{' -> ' + tr.scheme if tr.scheme != tr.source_scheme else ''})",
            "eval": f"{ev.source} ({len(eval_f)} sentences)" if ev else "none",
            "scheme": tr.scheme, "token_format": tr.token_format, "label_all_tokens": label_all_tokens}
    job = _Job("ner", base, out, net, tok, train_f, eval_f, Collator(tok), ner_metrics_fn(tag_list),
               _argmax_logits, ["labels"], opts.metric or "f1", tag_list, info, warnings, ["classifier"])
    return _fit(job, opts, progress)


# ---------------------------------------------------------------- MLM / NSP

def _mlm_preprocess(logits, labels):
    """Keep only what the metrics need: top-5 ids and the per-position NLL (and the NSP
    logits), instead of ``(batch, seq, vocab)`` logits."""
    import torch
    import torch.nn.functional as F

    nsp_logits = None
    if isinstance(logits, tuple):
        logits, nsp_logits = logits[0], (logits[1] if len(logits) > 1 else None)
    mlm_labels = labels[0] if isinstance(labels, tuple) else labels
    top5 = logits.topk(5, dim=-1).indices
    nll = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), mlm_labels.reshape(-1),
                          ignore_index=-100, reduction="none").reshape(mlm_labels.shape)
    if nsp_logits is not None:
        return top5, nll, nsp_logits.float()
    return top5, nll


def mlm_metrics_fn(nsp: bool):
    """``compute_metrics`` for Trainer: MLM loss/perplexity/top-1/top-5 over the
    masked positions, and the NSP loss and accuracy (also per class: a head that answers
    one class for everything scores 0.5 overall but 1.0 and 0.0 per class)."""
    def compute(p):
        preds = p.predictions
        top5, nll = preds[0], preds[1]
        lab = p.label_ids[0] if isinstance(p.label_ids, (tuple, list)) else p.label_ids
        mask = lab != -100
        hits1 = int((top5[..., 0] == lab)[mask].sum())
        hits5 = int((top5 == lab[..., None]).any(-1)[mask].sum())
        m = mlm_metrics(float(nll[mask].sum()), int(mask.sum()), hits1, hits5)
        if nsp:
            m.update(nsp_metrics_of_logits(preds[2], p.label_ids[1], "nsp_"))
        return m
    return compute


#: how to give next-sentence pre-training more than one document (a single file is one
#: document per file when it is a Project Gutenberg book, else split at blank lines).
_DOCUMENTS_HINT = ("put a blank line between documents and pass --documents blank-line, "
                   "or pass a folder with one file per document")


def train_mlm(model: str | Path | None, train: str | Path, output: str | Path, eval: str | Path | None = None,
              *, nsp: bool = False, nsp_weight: float = 1.0, mlm_probability: float = 0.15, documents: str = "auto",
              encoding: str = "auto",
              gutenberg: bool = True, eval_fraction: float = 0.05, short_seq_prob: float = 0.1,
              options: TrainOptions | None = None, progress: ProgressFn | None = None) -> TrainResult:
    """Masked-LM (and next-sentence) pre-training on raw text (BERT paper §3.1).

    A bare encoder gets the heads: ``BertForMaskedLM`` (or ``BertForPreTraining`` with
    ``nsp``) initialised from the encoder's weights, the MLM decoder tied to the word
    embeddings; a checkpoint that already has the heads continues with them. Masks are
    drawn per batch (dynamic masking), 15% of tokens, 80/10/10.

    Args:
        train, eval: a text file or folder (:func:`bertcli.train.data.read_documents`).
            Without ``eval``, ``eval_fraction`` of the instances is held out (seeded).
            Evaluation masks are fixed once (seeded), so every evaluation scores the same
            positions.
        nsp: also train next-sentence prediction (50% true next, 50% random sentences
            from another document); needs at least two documents.
        nsp_weight: the NSP loss's weight in the summed training loss (BERT: 1). Training
            logs report the MLM loss, the NSP loss and the NSP accuracy apart (``log``
            events), and evaluations add ``nsp_loss`` and the accuracy per class.
        mlm_probability: share of tokens to predict.
        documents, encoding, gutenberg: passed to ``read_documents``.
        short_seq_prob: share of instances with a shorter random target length.

    Returns:
        :class:`TrainResult`; ``metrics`` has ``mlm_loss``, ``perplexity``,
        ``top1_accuracy``, ``top5_accuracy`` (and ``nsp_accuracy``) and ``loss``.
        The folder loads with ``load_model(dir, "fill-mask")`` and, with ``nsp``,
        ``load_model(dir, "nsp")``.

    Raises:
        DataError: no text, fewer than two documents with ``nsp``, too little text to
            hold out an evaluation set. ModelError: the model type has no MLM/NSP
            head in transformers.
    """
    opts = options or TrainOptions()
    out = prepare_output(output, opts.overwrite, opts.resume)
    base = _base_dir(model)
    docs, w1 = read_documents(train, documents=documents, encoding=encoding, gutenberg=gutenberg)
    eval_docs, w2 = read_documents(eval, documents=documents, encoding=encoding, gutenberg=gutenberg) if eval \
        else (None, [])
    if nsp and len(docs) < 2:
        raise DataError(f"{train}: next-sentence pairs need at least two documents, found {len(docs)}",
                        _DOCUMENTS_HINT)
    if not nsp_weight > 0:
        raise TrainError(f"nsp_weight must be above 0, not {nsp_weight}")
    warnings = _warn_all(progress, w1 + w2)
    tok, max_len = _tokenizer_and_length(base, opts.max_length)
    if tok.mask_token_id is None:
        raise DataError(f"the tokenizer of '{base}' has no mask token", "MLM needs a [MASK] token")
    from .pretraining import make_instances as make

    inst = make(tok, docs, max_len, nsp, opts.seed, short_seq_prob)
    if eval_docs is not None:
        if nsp and len(eval_docs) < 2:
            raise DataError(f"{eval}: next-sentence pairs need at least two documents, found {len(eval_docs)}",
                            _DOCUMENTS_HINT)
        eval_inst = make(tok, eval_docs, max_len, nsp, opts.seed + 1, short_seq_prob)
    else:
        n_eval = int(round(len(inst) * eval_fraction)) if eval_fraction else 0
        if eval_fraction and (n_eval < 1 or n_eval >= len(inst)):
            raise DataError(f"{train}: {len(inst)} training sequences are too few to hold out {eval_fraction:.0%}",
                            "pass --eval FILE or more text")
        # Instances are already in a seeded random order: the tail is a random held-out set.
        eval_inst = inst[len(inst) - n_eval:] if n_eval else None
        inst = inst[:len(inst) - n_eval] if n_eval else inst
    inst = _subsample(inst, opts.max_train_samples, opts.seed)
    if eval_inst:
        eval_inst = _subsample(eval_inst, opts.max_eval_samples, opts.seed)
        eval_inst = premask(eval_inst, tok, mlm_probability, opts.seed)
    _seed_all(opts.seed)
    cls_name = "AutoModelForPreTraining" if nsp else "AutoModelForMaskedLM"
    net = _load_net(cls_name, base)
    if nsp and not hasattr(net, "cls") or (nsp and not hasattr(getattr(net, "cls", None), "seq_relationship")):
        raise TrainError(f"'{base}' ({net.config.model_type}) has no next-sentence head in transformers",
                         "train without --nsp")
    info = {"train": f"{train} ({len(docs)} documents, {len(inst)} sequences)",
            "eval": f"{eval or 'held out'} ({len(eval_inst or [])} sequences)", "nsp": nsp,
            "mlm_probability": mlm_probability}
    if nsp:
        info["nsp_weight"] = nsp_weight
    job = _Job("mlm", base, out, net, tok, inst, eval_inst, Collator(tok, mlm_probability=mlm_probability),
               mlm_metrics_fn(nsp), _mlm_preprocess, ["labels", "next_sentence_label"] if nsp else ["labels"],
               opts.metric or "mlm_loss", [], info, warnings,
               # LoRA: the heads train in full (the tied decoder stays the embeddings).
               ["predictions.transform", "seq_relationship", "pooler"] if nsp else ["predictions.transform"])
    return _fit(job, opts, progress)


# ---------------------------------------------------------------- NSP alone

def nsp_metrics_of_logits(logits, labels, prefix: str = "") -> dict:
    """NSP metrics of ``(n, 2)`` logits (index 0 = IsNext) and labels (0 = IsNext,
    1 = NotNext): ``loss`` (mean cross-entropy), ``accuracy``, ``is_next_accuracy``,
    ``not_next_accuracy`` (recall of each class), each name with ``prefix``."""
    logits = np.asarray(logits, dtype=np.float64)
    labels = np.asarray(labels).reshape(-1)
    z = logits - logits.max(-1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(-1, keepdims=True))
    pred = logits.argmax(-1)
    out = {"loss": float(-logp[np.arange(len(labels)), labels].mean()) if len(labels) else float("nan"),
           "accuracy": float((pred == labels).mean()) if len(labels) else float("nan")}
    for name, lab in (("is_next_accuracy", 0), ("not_next_accuracy", 1)):
        sel = labels == lab
        out[name] = float((pred[sel] == lab).mean()) if sel.any() else float("nan")
    return {(prefix + k if k != "loss" or prefix else k): v for k, v in out.items()} if prefix else out


def nsp_metrics_fn():
    """``compute_metrics`` for Trainer on a next-sentence head alone (see
    :func:`nsp_metrics_of_logits`)."""
    def compute(p):
        logits = p.predictions[0] if isinstance(p.predictions, tuple) else p.predictions
        m = nsp_metrics_of_logits(logits, p.label_ids)
        m.pop("loss")  # Trainer reports the evaluation loss itself
        return m
    return compute


def train_nsp(model: str | Path | None, train: str | Path, output: str | Path, eval: str | Path | None = None,
              *, documents: str = "auto", encoding: str = "auto", gutenberg: bool = True,
              eval_fraction: float = 0.05, short_seq_prob: float = 0.1, random_b: str = "document",
              options: TrainOptions | None = None, progress: ProgressFn | None = None) -> TrainResult:
    """Next-sentence prediction alone, on raw documents (BERT paper §3.1, without MLM).

    Pairs are made as in :func:`train_mlm` with ``nsp`` (:func:`bertcli.train.pretraining.
    make_instances`): A is a run of a document's sentences, B the sentences after it
    (label 0, IsNext) or, half of the time, sentences from another document (label 1,
    NotNext). The model is ``BertForNextSentencePrediction`` (``AutoModelForNextSentence
    Prediction``): the pooler on ``[CLS]`` and ``cls.seq_relationship``, BERT's own
    format, so the folder runs ``bertcli nsp`` on every backend; a bare encoder gets a new
    head (and keeps its pooler). With LoRA, the pooler and head train in full.

    Args:
        model, output, options, progress: as :func:`train_mlm`.
        train, eval, documents, encoding, gutenberg, eval_fraction: as :func:`train_mlm`
            (documents must be real ones: unrelated sentences grouped together make
            IsNext labels that are noise).
        short_seq_prob: share of pairs with a shorter random target length (BERT: 0.1;
            more teaches short pairs such as two single sentences).
        random_b: how the document of a random B is drawn: ``document`` (uniformly, as
            BERT) or ``length`` (in proportion to its sentences, so a corpus of a few long
            books and many short articles draws book B segments for book A segments as
            often as the text holds them).

    Returns:
        :class:`TrainResult`; ``metrics`` has ``accuracy``, ``is_next_accuracy``,
        ``not_next_accuracy`` and ``loss``.

    Raises:
        DataError: no text, fewer than two documents. ModelError: the model type has no
            next-sentence head in transformers.
    """
    opts = options or TrainOptions()
    out = prepare_output(output, opts.overwrite, opts.resume)
    base = _base_dir(model)
    if random_b not in ("document", "length"):
        raise TrainError(f"unknown random_b '{random_b}'", "use document or length")
    docs, w1 = read_documents(train, documents=documents, encoding=encoding, gutenberg=gutenberg)
    eval_docs, w2 = read_documents(eval, documents=documents, encoding=encoding, gutenberg=gutenberg) if eval \
        else (None, [])
    for d, src in ((docs, train), (eval_docs, eval)):
        if d is not None and len(d) < 2:
            raise DataError(f"{src}: next-sentence pairs need at least two documents, found {len(d)}",
                            _DOCUMENTS_HINT)
    warnings = _warn_all(progress, w1 + w2)
    tok, max_len = _tokenizer_and_length(base, opts.max_length)
    from .pretraining import make_instances as make

    def pairs(ds, seed):
        inst = make(tok, ds, max_len, True, seed, short_seq_prob, random_b=random_b)
        for f in inst:
            f["labels"] = f.pop("next_sentence_label")
        return inst

    inst = pairs(docs, opts.seed)
    if eval_docs is not None:
        eval_inst = pairs(eval_docs, opts.seed + 1)
    else:
        n_eval = int(round(len(inst) * eval_fraction)) if eval_fraction else 0
        if eval_fraction and (n_eval < 1 or n_eval >= len(inst)):
            raise DataError(f"{train}: {len(inst)} training pairs are too few to hold out {eval_fraction:.0%}",
                            "pass --eval FILE or more text")
        eval_inst = inst[len(inst) - n_eval:] if n_eval else None
        inst = inst[:len(inst) - n_eval] if n_eval else inst
    inst = _subsample(inst, opts.max_train_samples, opts.seed)
    if eval_inst:
        eval_inst = _subsample(eval_inst, opts.max_eval_samples, opts.seed)
    _seed_all(opts.seed)
    net = _load_net("AutoModelForNextSentencePrediction", base)
    if not hasattr(getattr(net, "cls", None), "seq_relationship"):
        raise TrainError(f"'{base}' ({net.config.model_type}) has no next-sentence head in transformers")
    net.config.architectures = [type(net).__name__]
    n_next = sum(f["labels"] == 0 for f in inst)
    info = {"train": f"{train} ({len(docs)} documents, {len(inst)} pairs, {n_next / max(1, len(inst)):.1%} IsNext)",
            "eval": f"{eval or 'held out'} ({len(eval_inst or [])} pairs)", "short_seq_prob": short_seq_prob,
            "random_b": random_b}
    job = _Job("nsp", base, out, net, tok, inst, eval_inst, Collator(tok), nsp_metrics_fn(), None, ["labels"],
               opts.metric or "accuracy", ["IsNext", "NotNext"], info, warnings, ["seq_relationship", "pooler"])
    return _fit(job, opts, progress)

