"""What every task shares: tokenising a window, collating a batch, the streaming driver."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

from .. import batching
from ..errors import UsageError
from ..io.readers import Record


@dataclass
class StreamOptions:
    """Batching knobs shared by every task (see :mod:`bertcli.batching`)."""

    batch_size: int = batching.DEFAULT_BATCH_SIZE
    max_tokens: int | None = batching.DEFAULT_MAX_TOKENS
    window: int = batching.DEFAULT_WINDOW
    progress: Callable[[int], None] | None = None  # called with the number of records done


@dataclass
class Feature:
    """One tokenised input: ids for the model plus whatever the task needs afterwards."""

    input_ids: list[int]
    token_type_ids: list[int] | None = None
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.input_ids)


def text_list(texts, name: str = "texts") -> list[str]:
    """``texts`` as a list, refusing a bare ``str`` (iterating it would give one text per
    character, silently).

    Raises:
        TypeError: ``texts`` is a ``str`` (or ``bytes``); wrap one text as ``[text]``.
    """
    if isinstance(texts, (str, bytes)):
        raise TypeError(f"{name} must be a list of strings, not a single {type(texts).__name__}; "
                        f"wrap one text as [text]")
    return list(texts)


def collate(features: list[Feature], pad_id: int, numpy: bool = False) -> dict:
    """Pad a batch (right padding) into LongTensors of shape ``(batch, max_len)``:
    ``input_ids``, ``attention_mask`` (1 = real token) and ``token_type_ids``; int64 numpy
    arrays of the same values with ``numpy`` (the fast path's model: ``lm.numpy``)."""
    if numpy:
        import numpy as np

        n = max(len(f) for f in features)
        ids = np.full((len(features), n), pad_id, dtype=np.int64)
        mask = np.zeros((len(features), n), dtype=np.int64)
        tt = np.zeros((len(features), n), dtype=np.int64)
        for i, f in enumerate(features):
            ids[i, :len(f)] = f.input_ids
            mask[i, :len(f)] = 1
            if f.token_type_ids is not None:
                tt[i, :len(f)] = f.token_type_ids
        return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}
    import torch

    n = max(len(f) for f in features)
    ids = torch.full((len(features), n), pad_id, dtype=torch.long)
    mask = torch.zeros((len(features), n), dtype=torch.long)
    tt = torch.zeros((len(features), n), dtype=torch.long)
    for i, f in enumerate(features):
        L = len(f)
        ids[i, :L] = torch.tensor(f.input_ids, dtype=torch.long)
        mask[i, :L] = 1
        if f.token_type_ids is not None:
            tt[i, :L] = torch.tensor(f.token_type_ids, dtype=torch.long)
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}


def encode_texts(tokenizer, texts: list[str], pairs: list[str] | None, max_length: int,
                 keep: tuple[str, ...] = (), **kwargs) -> tuple[list[Feature], list[bool]]:
    """Tokenise a window in one call; truncate to ``max_length`` only what is too long.

    Returns one :class:`Feature` per text and a list of ``truncated`` flags. Pairs are
    truncated with the ``longest_first`` strategy (the transformers default for pairs).
    ``keep`` names extra tokenizer outputs (e.g. ``offset_mapping``, asked for through
    ``kwargs``) copied into ``Feature.extra``.

    Raises:
        UsageError: ``pairs`` is not one second text per text.
    """
    if pairs is not None and len(pairs) != len(texts):
        raise UsageError(f"{len(texts)} texts but {len(pairs)} second texts: pairs need one of each")
    enc = tokenizer(texts, pairs, add_special_tokens=True, truncation=False, return_attention_mask=False,
                    return_token_type_ids=True, **kwargs)
    too_long = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) > max_length]
    rows = {}
    if too_long:
        enc2 = tokenizer([texts[i] for i in too_long], [pairs[i] for i in too_long] if pairs else None,
                         add_special_tokens=True, truncation=True, max_length=max_length,
                         return_attention_mask=False, return_token_type_ids=True, **kwargs)
        rows = {i: j for j, i in enumerate(too_long)}
    feats, flags = [], []
    for i in range(len(texts)):
        src, k = (enc2, rows[i]) if i in rows else (enc, i)
        tt = src.get("token_type_ids")
        extra = {key: src[key][k] for key in keep}
        feats.append(Feature(src["input_ids"][k], tt[k] if tt is not None else None, extra))
        flags.append(i in rows)
    return feats, flags


def run_refined(lm, feats: list[Feature], run: Callable, opts: StreamOptions) -> list:
    """``run(model, batch) -> [(result, gap), ...]`` over length-sorted batches of ``feats`` on ``lm``
    (:func:`bertcli.batching.run_sorted`); results in input order.

    When ``lm`` has an int8 fallback (:attr:`bertcli.loading.LoadedModel.fallback`), the features
    whose gap (:meth:`~bertcli.loading.LoadedModel.decision_gaps`) is under ``lm.fallback_margin``
    then run again, together, on the float32 model, and their results replace the int8 ones:
    one pass in batches of their own rather than a few rows at every batch, which gave the same
    output 5 % slower (1,000 real lines, 1 thread, batch 64, paired: ner 2.94 vs 2.78 s, classify
    2.36 vs 2.25 s). ``run`` gives each result's gap (``inf`` when it has none). Counts go to
    ``lm.info`` (``rows``, ``fallback_rows``)."""
    lengths = [len(f) for f in feats]
    pairs = batching.run_sorted(feats, lengths, lambda b: run(lm, b), opts.batch_size, opts.max_tokens)
    out = [r for r, _ in pairs]
    fb = getattr(lm, "fallback", None)
    if fb is None:
        return out
    redo = [i for i, (_, g) in enumerate(pairs) if g < lm.fallback_margin]
    lm.info["rows"] = lm.info.get("rows", 0) + len(feats)
    if redo:
        lm.info["fallback_rows"] = lm.info.get("fallback_rows", 0) + len(redo)
        again = batching.run_sorted([feats[i] for i in redo], [lengths[i] for i in redo], lambda b: run(fb, b),
                                    opts.batch_size, opts.max_tokens)
        for i, (r, _) in zip(redo, again):
            out[i] = r
    return out


def forward_gaps(model, batch: dict, content=None) -> tuple:
    """``(logits, gaps)``: ``model.forward(batch)`` without its own int8 fallback, and each
    sequence's decision gap as a list of floats when the model has a fallback (else ``inf``s):
    the ``run`` half of :func:`run_refined`. ``content``: per sequence, the ``(start, end)``
    positions of its text tokens (ner; see :meth:`~bertcli.loading.LoadedModel.decision_gaps`)."""
    if getattr(model, "fallback", None) is None:
        logits = model.forward(batch)
        return logits, [float("inf")] * len(logits)
    logits = model.forward(batch, refine=False)
    return logits, model.decision_gaps(batch, logits, content).tolist()


def stream_records(records: Iterable[Record], process_window: Callable[[list[Record]], list[dict]],
                   opts: StreamOptions) -> Iterator[tuple[Record, dict | None]]:
    """Drive a task over a record stream.

    ``process_window`` gets the good records of one window and returns one result dict
    per record, in the same order. Yields ``(record, result)`` in input order; records
    with ``error`` set come through with ``result=None`` and end the current window
    first, so that every result before a bad record is yielded before it.
    """
    done = 0
    for win in batching.windows(records, opts.window, is_barrier=lambda r: r.error is not None):
        if win[0].error is not None:
            yield win[0], None
            done += 1
        else:
            for rec, res in zip(win, process_window(win)):
                yield rec, res
            done += len(win)
        if opts.progress:
            opts.progress(done)
