"""The explainers of each command (classify/sentiment, ner, fill-mask) and the streaming driver."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator

import numpy as np

from ... import batching
from ...io.readers import Record
from .gradients import DEFAULT_STEPS, IGInput, Target, integrated_gradients
from .words import _doc, _needs_offsets, _summary, _tokenise, words


# ---------------------------------------------------------------- classify / sentiment

def explain_classify(lm, texts: list[str], text_pairs: list[str] | None = None, labels: list[int | None] | None = None,
                     *, steps: int = DEFAULT_STEPS, method: str = "gausslegendre", baseline: str = "pad",
                     label_names: list[str] | None = None, max_tokens: int | None = None) -> list[dict]:
    """Word attributions of sequence classifications.

    Args:
        lm: a classify model (:func:`bertcli.load_model` with ``task="classify"``).
        texts, text_pairs: the texts (and second texts of pairs), truncated to
            ``lm.max_length`` as :func:`bertcli.tasks.classify.classify` truncates them.
        labels: per text the label id to explain; None (or a None entry): the predicted
            label, the largest logit.
        label_names: names by id (default the model's ``id2label``).

    Returns:
        Per text ``{"attributions": [{word, start, end, score}], "explanation": {label, logit,
        baseline_logit, delta, steps, method}}``; ``score`` is in logit units and the scores
        add up to ``logit - baseline_logit + delta`` (completeness; ``delta`` is the
        quadrature's error, see the module docstring). Words of a pair carry ``sequence_id``
        (0: text, 1: text_pair). Words cut off by truncation are not listed.

    Raises:
        ModelError: the tokenizer gives no character offsets (a slow-only tokenizer).
        UsageError: as :func:`integrated_gradients`.
    """
    from .. import classify as cl

    _needs_offsets(lm)
    names = label_names or cl.label_names(lm.config)
    if not texts:
        return []
    enc = _tokenise(lm, list(texts), list(text_pairs) if text_pairs is not None else None, truncation=False)
    too_long = [i for i, ids in enumerate(enc["input_ids"]) if len(ids) > lm.max_length]
    enc2 = _tokenise(lm, [texts[i] for i in too_long], [text_pairs[i] for i in too_long] if text_pairs else None,
                     truncation=True) if too_long else None
    where = {i: (enc2, k) for k, i in enumerate(too_long)}
    n_labels = len(names)
    ins, docs = [], []
    for i, t in enumerate(texts):
        src, k = where.get(i, (enc, i))
        doc = _doc(src, k, (t,) if text_pairs is None else (t, text_pairs[i]))
        want = labels[i] if labels is not None else None
        cands = [want] if want is not None else list(range(n_labels))
        tt = src["token_type_ids"][k] if "token_type_ids" in src else None
        ins.append(IGInput(list(src["input_ids"][k]), tt, [s is None for s in doc.sequence_ids],
                           [Target([(None, cands)])]))
        docs.append(doc)
    res = integrated_gradients(lm, ins, steps, method, baseline, max_tokens)
    out = []
    for doc, (r,) in zip(docs, res):
        out.append({"attributions": words(doc, r.attributions),
                    "explanation": {"label": names[r.classes[0]], **_summary(r, steps, method)}})
    return out


# ---------------------------------------------------------------- ner

def explain_ner(lm, texts: list[str], results: list[dict], *, aggregation: str | None = None,
                stride: int | None = None, steps: int = DEFAULT_STEPS, method: str = "gausslegendre",
                baseline: str = "pad", max_tokens: int | None = None) -> list[list[dict]]:
    """Word attributions of each entity :func:`bertcli.tasks.ner.ner` found.

    Args:
        texts: the texts; ``results`` their :func:`~bertcli.tasks.ner.ner` results (same
            ``aggregation`` and ``stride``).

    Returns:
        Per text, per entity (in ``results`` order): ``{"attributions": [...], "explanation":
        {logit, baseline_logit, delta, steps, method}}``. F is the sum over the entity's
        tokens of the logit of the tag of its type each token scores highest (under
        ``first``: each word's first token only). A long text's entity is explained in the
        window where its tokens have the most context (as ``ner`` takes their scores), and only
        the words of that window are listed.

    Raises:
        ModelError, UsageError: as :func:`explain_classify`.
    """
    from .. import ner as N

    _needs_offsets(lm)
    agg = N.resolve_aggregation(lm, aggregation)
    stride = N.resolve_stride(lm, stride)
    tags = N.label_names(lm.config)
    bioes = N.is_bioes(tags)
    by_type: dict[str, list[int]] = {}
    for c, tag in enumerate(tags):
        by_type.setdefault(N.split_tag(tag, bioes)[1], []).append(c)
    texts = list(texts)
    if not texts:
        return []
    docs, feats = N.encode(lm, texts, stride)
    wenc = lm.tokenizer(texts, add_special_tokens=True, truncation=False, return_offsets_mapping=True,
                        return_attention_mask=False, return_token_type_ids=False)
    ins: list[IGInput] = []
    jobs: list[tuple[int, int, int, list]] = []  # (text, entity, input, positions)
    feat_of = {}
    for fi, f in enumerate(feats):
        feat_of[(f.extra["doc"], f.extra["window"])] = fi
    for ti, (text, doc, res) in enumerate(zip(texts, docs, results)):
        ents = res.get("entities") or []
        if not ents or not doc.ids:
            continue
        toks = N._tokens(lm.tokenizer, doc, np.zeros((len(doc.ids), 1), dtype=np.float32))
        word_of, w = [], -1
        for tk in toks:
            w += 0 if tk.is_subword and w >= 0 else 1
            word_of.append(w)
        full = _doc(wenc, ti, (text,))
        per_window: dict[int, list[tuple[int, Target]]] = {}
        for ei, ent in enumerate(ents):
            if "entity_group" in ent:  # the tags of its type; each token reads its best one
                cands = by_type.get(ent["entity_group"], [])
            else:  # aggregation none: the token's own tag
                cands = [tags.index(ent["entity"])] if ent.get("entity") in tags else []
            s, e = ent["start"], ent["end"]
            inside = [k for k, tk in enumerate(toks) if tk.end > tk.start and tk.start < e and tk.end > s]
            if not inside or not cands:
                continue
            if agg in N.WORD_AGGREGATIONS:
                wset = sorted({word_of[k] for k in inside})
                members = [k for k, _ in enumerate(toks) if word_of[k] in wset]
                if agg == "first":
                    members = [min(k for k in members if word_of[k] == wd) for wd in wset]
            else:
                members = inside
            # doc token index (content tokens: Token.index - n_prefix)
            dj = [toks[k].index - doc.n_prefix for k in members]
            win = _best_window(doc, dj)
            a = doc.window_starts[win]
            fi = feat_of[(ti, win)]
            pre = feats[fi].extra["prefix"]
            terms = [(pre + j - a, list(cands)) for j in dj]
            per_window.setdefault(fi, []).append((ei, Target(terms)))
        for fi, tl in per_window.items():
            f = feats[fi]
            pre, cnt = f.extra["prefix"], f.extra["content"]
            a = doc.window_starts[f.extra["window"]]
            fixed = [True] * len(f)
            for p in range(pre, pre + cnt):
                fixed[p] = bool(doc.special[a + p - pre])
            # model-input token -> index in the full encoding (text tokens only)
            positions = [None] * len(f)
            for p in range(pre, pre + cnt):
                positions[p] = doc.n_prefix + a + p - pre
            ins.append(IGInput(list(f.input_ids), f.token_type_ids, fixed, [t for _, t in tl]))
            jobs.append((ti, fi, len(ins) - 1, [(ei, positions, full) for ei, _ in tl]))
    res = integrated_gradients(lm, ins, steps, method, baseline, max_tokens) if ins else []
    out: list[list[dict]] = [[{} for _ in (r.get("entities") or [])] for r in results]
    for ti, fi, ii, ents in jobs:
        for (ei, positions, full), r in zip(ents, res[ii]):
            out[ti][ei] = {"attributions": words(full, r.attributions, positions),
                           "explanation": _summary(r, steps, method)}
    return out


def _best_window(doc, dj: list[int]) -> int:
    """The window in which the tokens ``dj`` (doc content indices) have the most context: the
    largest smallest distance to a cut edge (the text's own ends are not cuts), as
    :func:`bertcli.tasks.ner.stitch_windows` picks a token's scores; ties to the earlier."""
    if len(doc.window_starts) == 1:
        return 0
    n = len(doc.ids)
    best, best_ctx = 0, -1
    for w, a in enumerate(doc.window_starts):
        length = min(doc.span, n - a)
        if min(dj) < a or max(dj) >= a + length:
            continue
        big = n + doc.span
        ctx = min(min(j - a if a > 0 else big, (a + length - 1 - j) if a + length < n else big) for j in dj)
        if ctx > best_ctx:
            best, best_ctx = w, ctx
    if best_ctx < 0:  # no window holds the whole entity: the one holding its first token
        best = max(w for w, a in enumerate(doc.window_starts) if a <= min(dj))
    return best


# ---------------------------------------------------------------- fill-mask

def explain_fill_mask(lm, texts: list[str], results: list[dict], *, mask_token: str | None = None,
                      target: str | None = None, steps: int = DEFAULT_STEPS, method: str = "gausslegendre",
                      baseline: str = "pad", max_tokens: int | None = None) -> list[list[dict]]:
    """Word attributions of each mask's top candidate (independent decoding: every mask of the
    text still masked, as :func:`bertcli.tasks.fill_mask.fill_mask` predicts without ``joint``).

    Args:
        results: the texts' fill-mask results (their top candidates are explained).
        mask_token: the placeholder the texts use for the mask, as in ``fill_mask``.
        target: a word (one vocabulary token) to explain at every mask instead of the top
            candidate.

    Returns:
        Per text, per mask: ``{"mask": k, "start", "end", "token": id, "token_str": str,
        "attributions": [...], "explanation": {logit, baseline_logit, delta, steps, method}}``
        (``k`` counts the masks from 0 in text order; ``start``/``end``: the mask's characters). The masks themselves
        (and template specials) are kept in the baseline: their score is 0. A long text's mask
        is explained in its window (the words of that window only).

    Raises:
        UsageError: a bad ``target`` (see :func:`bertcli.tasks.fill_mask.target_ids`).
        ModelError: as :func:`explain_classify`.
    """
    from .. import fill_mask as FM

    _needs_offsets(lm)
    tok = lm.tokenizer
    tid = FM.target_ids(tok, [target])[0] if target is not None else None
    texts = list(texts)
    if not texts:
        return []
    enc = FM.encode(lm, texts, mask_token)
    ph = FM._placeholder(tok, mask_token)
    mapped = [FM._model_text(t, ph, tok.mask_token) for t in texts]
    wenc = tok([m for m, _ in mapped], add_special_tokens=True, truncation=False, return_offsets_mapping=True,
               return_attention_mask=False, return_token_type_ids=False)
    ins, jobs = [], []
    for ti, (text, e, res) in enumerate(zip(texts, enc, results)):
        if not e.masks:
            continue
        back = mapped[ti][1]
        d = _doc(wenc, ti, (text,))
        # offsets into the user's text (a placeholder's span for a replaced mask)
        d.offsets = [back(s, t) if t > s else (s, t) for s, t in d.offsets]
        mask_pos = {m.pos for m in e.masks}
        preds = res.get("predictions") or []
        for f in FM.features(e.ids, e.masks, lm.max_length):
            n = len(f)
            if len(e.ids) <= lm.max_length:
                positions = list(range(n))
            else:  # a window: [CLS] + body[lo:lo + width] + [SEP]
                m0 = f.extra["masks"][0]
                orig = next(m for m in e.masks if m.k == m0.k)
                lo = orig.pos - m0.pos
                positions = [None] + list(range(lo + 1, lo + n - 1)) + [None]
            fixed = [p is None or d.sequence_ids[p] is None or p in mask_pos for p in positions]
            tl, meta = [], []
            for m in f.extra["masks"]:
                cand = tid if tid is not None else (preds[m.k][0]["token"] if m.k < len(preds) and preds[m.k] else None)
                if cand is None:
                    continue
                tl.append(Target([(m.pos, [int(cand)])]))
                orig = next(o for o in e.masks if o.k == m.k)
                meta.append((m.k, orig.start, orig.end, int(cand)))
            if tl:
                ins.append(IGInput(list(f.input_ids), None, fixed, tl))
                jobs.append((ti, positions, d, meta))
    res = integrated_gradients(lm, ins, steps, method, baseline, max_tokens) if ins else []
    out: list[list[dict]] = [[] for _ in texts]
    for (ti, positions, d, meta), rs in zip(jobs, res):
        for (k, start, end, cand), r in zip(meta, rs):
            out[ti].append({"mask": k, "start": start, "end": end, "token": cand, "token_str": tok.decode([cand]),
                            "attributions": words(d, r.attributions, positions),
                            "explanation": _summary(r, steps, method)})
    for o in out:
        o.sort(key=lambda x: x["mask"])
    return out


# ---------------------------------------------------------------- streaming

def stream(results: Iterable[tuple[Record, dict | None]], explain_window: Callable[[list[Record], list[dict]], None],
           window: int = batching.DEFAULT_WINDOW, progress: Callable[[int], None] | None = None
           ) -> Iterator[tuple[Record, dict | None]]:
    """Add explanations to a task's ``(record, result)`` stream, window by window.

    ``explain_window(records, results)`` adds the explanation fields to each result in place.
    Windows grow from 1 record (the first result comes out at once) to ``window``; a record
    with an error (``result`` None) passes through in its place. Yields in input order.
    """
    done = 0
    for win in batching.windows(results, window, is_barrier=lambda rr: rr[1] is None):
        if win[0][1] is not None:
            explain_window([r for r, _ in win], [res for _, res in win])
        yield from win
        done += len(win)
        if progress:
            progress(done)
