"""Masked-token prediction (``fill-mask``), matching the Hugging Face ``fill-mask`` pipeline.

For every mask token in a text (the model's own: ``[MASK]`` for BERT, ``<mask>`` for
RoBERTa, or a placeholder of the user's, ``mask_token``) the result holds the ``top_k``
vocabulary tokens by softmax probability over the whole vocabulary (pipeline semantics;
with ``targets`` the same probabilities are read for the target tokens only). Each
prediction has ``score``, ``token`` (token_id), ``token_str``
(``tokenizer.decode([token_id])``, as the pipeline), ``is_subword`` and ``sequence``.

Deliberate differences from the pipeline:

* ``sequence`` is the *original text* with the masks replaced by predicted words
  (``##``/``Ġ``/``▁`` markers removed), so casing and spacing are kept; the pipeline's
  ``sequence`` is a lossy decode of all tokens and leaves the other masks of the text in
  place. A prediction's ``sequence`` fills its own mask with it and every other mask with
  that mask's top-1, so it holds no mask; the record's ``sequence`` fills every mask with
  its top-1;
* ``joint=True`` decodes several masks one after another (see :func:`fill_mask`); the
  pipeline predicts each mask as if the others stayed masked (independent decoding,
  which is also bertcli's default);
* only ids that have a token are candidates. Many checkpoints pad the embedding matrix
  beyond the tokenizer (ModernBERT: 50368 rows for 50280 tokens; a multiple of 64 is
  faster on GPUs); the rows past the tokenizer stand for no token. Scores stay the
  softmax over all of the model's rows, as the pipeline computes them (a prediction's
  score equals the pipeline's for that id), but ids without a token are never returned;
  the pipeline returns them with an empty ``token_str`` when ``top_k`` reaches them. So a
  mask gets ``min(top_k, number of candidates)`` predictions.

Long texts keep a window of ``max_length`` tokens centred on each mask, so every mask
gets a prediction (``truncated: true`` in the record).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from .. import batching
from ..errors import InputError, UsageError
from ..io.readers import Record
from .base import Feature, StreamOptions, collate, stream_records, text_list


class Mask(NamedTuple):
    """One mask of a text, as the features carry it (``Feature.extra["masks"]``)."""

    k: int             #: its number in the text, 0-based, in text order
    pos: int           #: token position in the feature's ``input_ids``
    start: int         #: character span of the mask in the user's text
    end: int
    after_word: bool   #: right after a word (spaces between skipped): see :func:`is_subword`


def target_ids(tokenizer, targets: list[str] | None) -> list[int] | None:
    """Vocabulary ids of ``targets``.

    Raises:
        UsageError: a target is not a single vocabulary token (names the pieces it splits
            into), or ``targets`` holds no word.
    """
    if not targets:
        return None
    ids, bad = [], []
    vocab = tokenizer.get_vocab()
    for t in targets:
        t = t.strip()
        if not t:
            continue
        if t in vocab:
            ids.append(vocab[t])
            continue
        pieces = tokenizer.tokenize(t)
        if len(pieces) == 1 and pieces[0] != tokenizer.unk_token:
            ids.append(tokenizer.convert_tokens_to_ids(pieces[0]))
        else:
            bad.append(f"'{t}' -> {' '.join(pieces) or '(nothing)'}")
    if bad:
        raise UsageError("target(s) not a single vocabulary token: " + "; ".join(bad),
                         "fill-mask predicts one token per mask; choose whole-token targets")
    if not ids:
        raise UsageError("--targets is empty")
    return list(dict.fromkeys(ids))


def check_flags(targets: list[str] | None = None, whole_words: bool = False, mask_token: str | None = None) -> None:
    """Check the fill-mask options that need no model.

    Raises:
        UsageError: ``whole_words`` with ``targets`` (the targets already are the
            candidates), or a ``mask_token`` that is empty or only spaces.
    """
    if whole_words and targets:
        raise UsageError("--whole-words and --targets do not combine: the targets already are the candidates",
                         "list only whole words in --targets, or drop one of the options")
    if mask_token is not None and not mask_token.strip():
        raise UsageError("--mask-token is empty", "give the placeholder your texts use, e.g. --mask-token ___")


def check_options(tokenizer, targets: list[str] | None = None, whole_words: bool = False,
                  mask_token: str | None = None) -> list[int] | None:
    """Validate the fill-mask options against a tokenizer; the target ids (see :func:`target_ids`).

    Raises:
        UsageError: see :func:`check_flags` and :func:`target_ids`.
    """
    check_flags(targets, whole_words, mask_token)
    return target_ids(tokenizer, targets)


def candidate_ids(tokenizer, n_rows: int) -> list[int] | None:
    """The output rows of an ``n_rows``-wide masked-LM head that stand for a token.

    Returns None when the tokenizer has at least ``n_rows`` tokens (the usual case: one
    row per token; loading refuses a tokenizer larger than the head), else the sorted
    ids below ``n_rows`` that the tokenizer has, e.g. ``0 .. 50279`` of ModernBERT's
    50368 rows. Rows past the tokenizer are padding (embedding matrices are often padded
    to a multiple of 64); they are never candidates.
    """
    if len(tokenizer) >= n_rows:
        return None
    ids = sorted({i for i in tokenizer.get_vocab().values() if 0 <= i < n_rows})
    return None if len(ids) == n_rows else ids


# ---------------------------------------------------------------- subword pieces

# which pieces continue a word (re-exported: tests reach them as fill_mask.*)
from .subwords import Pieces, _clean_piece, is_subword, subword_pieces, whole_word_ids  # noqa: E402,F401


# ---------------------------------------------------------------- masks in the text

def _mask_offsets(text: str, mask_token: str, pos: list[int]) -> dict[int, tuple[int, int]]:
    """Character spans of the mask tokens at token positions ``pos`` when the tokenizer
    gives no offsets (a slow-only tokenizer such as BERTweet's or PhoBERT's): the k-th mask
    token is the k-th occurrence of ``mask_token`` in the text, as the tokenizer matches
    special tokens verbatim. A mask that cannot be found gets the empty span at the end."""
    spans, start = {}, 0
    for p in pos:
        i = text.find(mask_token, start) if mask_token else -1
        spans[p] = (i, i + len(mask_token)) if i >= 0 else (len(text), len(text))
        start = i + len(mask_token) if i >= 0 else start
    return spans


def _placeholder(tokenizer, mask_token: str | None) -> str | None:
    """The user's placeholder when it is not the model's own mask token, else None."""
    return None if mask_token is None or mask_token == tokenizer.mask_token else mask_token


def _model_text(text: str, placeholder: str | None, model_mask: str):
    """``text`` with each occurrence of ``placeholder`` (left to right, not overlapping)
    replaced by the model's mask token, and a function mapping a mask's character span in
    that text back to the span in ``text`` (the placeholder's span for a replaced one)."""
    if placeholder is None or placeholder not in text:
        return text, lambda s, e: (s, e)
    parts = text.split(placeholder)
    repl = []  # (start in the model text, start in the user's text)
    ms = us = 0
    for part in parts[:-1]:
        ms += len(part)
        us += len(part)
        repl.append((ms, us))
        ms += len(model_mask)
        us += len(placeholder)

    def back(s: int, e: int) -> tuple[int, int]:
        shift = 0
        for m0, u0 in repl:
            m1 = m0 + len(model_mask)
            if s < m1 and e > m0:  # this mask is a replaced placeholder
                return u0 - max(0, m0 - s), u0 + len(placeholder) + max(0, e - m1)
            if m1 <= s:
                shift = m1 - (u0 + len(placeholder))
        return s - shift, e - shift

    return model_mask.join(parts), back


def _after_word(text: str, start: int, mask_ends: set[int]) -> bool:
    """Is the character before ``start`` (spaces skipped: byte-level BPE masks such as
    RoBERTa's ``<mask>`` take the space before them) a letter, a digit or another mask?"""
    i = start
    while i > 0 and text[i - 1].isspace():
        i -= 1
    return i > 0 and (text[i - 1].isalnum() or i in mask_ends)


class Encoded(NamedTuple):
    """One tokenised text (see :func:`encode`)."""

    ids: list[int]        #: the whole text's token ids, special tokens included
    masks: list[Mask]     #: its masks in text order; ``pos`` indexes ``ids``
    truncated: bool       #: longer than the model's ``max_length``: a window per mask


def encode(lm, texts: list[str], mask_token: str | None = None) -> list[Encoded]:
    """Tokenise texts whose masks are the model's mask token or ``mask_token`` (a
    placeholder of the user's, read as the model's own); spans are in the user's text."""
    tok = lm.tokenizer
    mask_id = tok.mask_token_id
    ph = _placeholder(tok, mask_token)
    fast = getattr(tok, "is_fast", False)
    mapped = [_model_text(t, ph, tok.mask_token) for t in texts]
    enc = tok([m for m, _ in mapped], add_special_tokens=True, truncation=False, return_offsets_mapping=fast,
              return_attention_mask=False, return_token_type_ids=False)
    out = []
    for n, ids in enumerate(enc["input_ids"]):
        model_text, back = mapped[n]
        pos = [i for i, t in enumerate(ids) if t == mask_id]
        offs = enc["offset_mapping"][n] if fast else _mask_offsets(model_text, tok.mask_token, pos)
        spans = [back(*offs[p]) for p in pos]
        ends = {e for _, e in spans}
        masks = [Mask(k, p, s, e, _after_word(texts[n], s, ends)) for k, (p, (s, e)) in enumerate(zip(pos, spans))]
        out.append(Encoded(list(ids), masks, len(ids) > lm.max_length))
    return out


def features(ids: list[int], masks: list[Mask], max_length: int) -> list[Feature]:
    """The model inputs that predict ``masks`` of a text: the text itself when it fits,
    else a window of ``max_length`` tokens centred on each mask, between the first
    ([CLS]) and last ([SEP]) token, clamped to the text (``pos`` made window-relative)."""
    if len(ids) <= max_length:
        return [Feature(ids, None, {"masks": list(masks)})]
    head, tail = ids[0], ids[-1]
    body = ids[1:-1]
    width = max_length - 2
    feats = []
    for m in masks:
        b = m.pos - 1
        lo = max(0, min(b - width // 2, len(body) - width))
        win = [head] + body[lo:lo + width] + [tail]
        feats.append(Feature(win, None, {"masks": [m._replace(pos=b - lo + 1)]}))
    return feats


# ---------------------------------------------------------------- prediction

def predict_features(lm, feats: list[Feature], top_k: int, targets: list[int] | None,
                     opts: StreamOptions, whole_words: bool = False) -> list[list[list[tuple[int, float]]]]:
    """Top-k ``(token_id, score)`` per mask of each feature, batched and length-sorted.

    ``score`` is the softmax over all of the head's ``vocab_size`` outputs; candidates are
    ``targets`` when given, else the ids that have a token (:func:`candidate_ids`), less
    the pieces that are no whole word at that mask with ``whole_words``
    (:func:`whole_word_ids`), so at most ``min(top_k, number of candidates)`` pairs per
    mask, best first.

    Raises:
        UsageError: ``whole_words`` and the vocabulary has no whole-word token.
    """
    numpy = getattr(lm, "numpy", False)  # the fast path: numpy arrays, the same steps (fastpath.ops)
    if numpy:
        import numpy as np

        from ..fastpath import ops

        def ids_array(ids):
            return np.asarray(ids, dtype=np.int64)
    else:
        import torch

        def ids_array(ids):
            return torch.tensor(ids, dtype=torch.long)

    tok = lm.tokenizer
    pad = tok.pad_token_id or 0
    tgt = ids_array(targets) if targets else None
    known: dict[tuple, object] = {}  # (head width, after_word) -> candidate ids (None: all)

    def cands(width: int, after: bool):
        key = (width, after)
        if key not in known:
            ids = candidate_ids(tok, width)
            if whole_words:
                ids = whole_word_ids(tok, range(width) if ids is None else ids, after)
                if not ids:
                    raise UsageError("the model's vocabulary has no whole-word token", "leave out --whole-words")
            known[key] = None if ids is None else ids_array(ids)
        return known[key]

    def run(batch: list[Feature]):
        rows = [(b, m.pos) for b, f in enumerate(batch) for m in f.extra["masks"]]
        if not rows:
            return [[] for _ in batch]
        after = [whole_words and m.after_word for f in batch for m in f.extra["masks"]]
        logits = lm.forward(collate(batch, pad, numpy=numpy), mask_rows=ids_array(rows))
        # over every row, padding rows included: the pipeline's scores
        probs = ops.softmax(logits) if numpy else logits.softmax(-1)
        out: list = [None] * len(rows)
        for group in sorted(set(after)):
            sel = [r for r, a in enumerate(after) if a == group]
            cand = tgt if tgt is not None else cands(probs.shape[-1], group)
            p = probs[sel] if len(sel) < len(rows) else probs
            if cand is not None:
                p = p[:, cand]
            k = min(top_k, p.shape[-1])
            vals, idx = ops.topk(p, k) if numpy else p.topk(k, dim=-1)
            if cand is not None:
                idx = cand[idx]
            for r, v, i in zip(sel, vals.tolist(), idx.tolist()):
                out[r] = list(zip(i, v))
        res: list[list] = [[] for _ in batch]
        for (b, _), cand in zip(rows, out):
            res[b].append(cand)
        return res

    return batching.run_sorted(feats, [len(f) for f in feats], run, opts.batch_size, opts.max_tokens)


def _fill(text: str, spans: list[tuple[int, int]], words: list[str]) -> str:
    """``text`` with each span (in text order, not overlapping) replaced by its word."""
    out, at = [], 0
    for (s, e), w in zip(spans, words):
        out += [text[at:s], w]
        at = e
    out.append(text[at:])
    return "".join(out)


def fill_mask(lm, texts: list[str], top_k: int = 5, targets: list[str] | None = None,
              opts: StreamOptions | None = None, *, whole_words: bool = False, joint: bool = False,
              mask_token: str | None = None) -> list[dict]:
    """Predict every mask of every text.

    Args:
        top_k: predictions per mask.
        targets: score only these words (each one vocabulary token), as the pipeline's ``targets``.
        whole_words: only whole-word candidates (``is_subword`` false, no special token);
            still the top ``top_k`` of them, scores unchanged.
        joint: dependent decoding of several masks: fill the most confident mask (highest
            top-1 score; the first in the text on a tie) with its top-1, run the model again
            with it filled, and repeat until every mask is filled (the iterative scheme of
            transformers#10158). One forward pass per mask; batches still mix texts, so
            results do not depend on ``opts``' batch sizes.
        mask_token: a placeholder the texts use for the mask (``___``, or ``[MASK]`` for a
            model whose mask is ``<mask>``), read as the model's own mask token; the
            model's own token still counts as a mask too.

    Returns per text ``{"predictions": [[{score, token, token_str, is_subword, sequence},
    ...] per mask], "sequence": str, "truncated": bool}``; the outer list follows the
    masks' order in the text. Each mask has ``min(top_k, candidates)`` predictions, best
    first: the candidates are ``targets``, or every id that has a token (not an embedding
    row past the tokenizer); ``score`` is the softmax over all of the model's vocabulary
    rows, as in the pipeline. Independently (the default, as the pipeline) each mask is
    predicted with the other masks left masked; with ``joint`` a mask's predictions and
    scores are those of the pass that filled it, so they are conditioned on the masks
    filled before it. ``is_subword``: the token continues the word before the mask
    (:func:`subword_pieces`). A prediction's ``sequence`` is the text with its mask
    replaced by the token's text and every other mask by that mask's top-1 (under
    ``joint``: the token filled there), and the record's ``sequence`` has every mask so
    filled; the placeholder's span is what is replaced.

    Raises:
        InputError: a text has no mask token (names the token to use).
        UsageError: a bad target (see :func:`target_ids`) or option (:func:`check_options`).
        TypeError: ``texts`` is a single ``str`` (pass ``[text]``).
    """
    opts = opts or StreamOptions()
    tok = lm.tokenizer
    if tok.mask_token is None:
        raise InputError(f"the tokenizer of '{lm.path}' has no mask token")
    tids = check_options(tok, targets, whole_words, mask_token)
    shown = _placeholder(tok, mask_token) or tok.mask_token
    texts = text_list(texts)
    encoded = encode(lm, texts, mask_token)
    for t, e in zip(texts, encoded):
        if not e.masks:
            raise InputError(f"no {shown} in the text: {t[:60]!r}", f"write the mask exactly as {shown}")
    L = lm.max_length
    chosen: list[dict[int, list]] = [{} for _ in texts]  # text -> mask number -> [(token_id, score)]
    ids = [list(e.ids) for e in encoded]
    left = [list(e.masks) for e in encoded]
    while any(left):
        flat, owner = [], []
        for n, masks in enumerate(left):
            if masks:
                fs = features(ids[n], masks, L)
                flat += fs
                owner += [n] * len(fs)
        preds = predict_features(lm, flat, top_k, tids, opts, whole_words)
        got: dict[int, list] = {}
        for f, n, p in zip(flat, owner, preds):
            for m, cand in zip(f.extra["masks"], p):
                got.setdefault(n, []).append((m.k, cand))
        if not joint:
            for n, pairs in got.items():
                chosen[n].update(pairs)
            break
        for n, pairs in got.items():
            # the most confident mask: the highest top-1 score, the first in the text on a tie
            k, cand = min(pairs, key=lambda kc: (-(kc[1][0][1] if kc[1] else -1.0), kc[0]))
            chosen[n][k] = cand
            m = next(x for x in left[n] if x.k == k)
            if cand:
                ids[n][m.pos] = cand[0][0]
            left[n] = [x for x in left[n] if x.k != k]

    pieces = subword_pieces(tok)
    cache: dict[int, tuple[str, str]] = {}

    def strings(tid):
        if tid not in cache:
            cache[tid] = (tok.decode([tid]), _clean_piece(tok, tid))
        return cache[tid]

    results = []
    for text, e, picks in zip(texts, encoded, chosen):
        spans = [(m.start, m.end) for m in e.masks]
        best = [strings(picks[m.k][0][0])[1] if picks[m.k] else text[m.start:m.end] for m in e.masks]
        masks = []
        for j, m in enumerate(e.masks):
            row = []
            for tid, score in picks[m.k]:
                token_str, clean = strings(tid)
                words = best[:j] + [clean] + best[j + 1:]
                row.append({"score": float(score), "token": int(tid), "token_str": token_str,
                            "is_subword": is_subword(pieces, tid, m.after_word),
                            "sequence": _fill(text, spans, words)})
            masks.append(row)
        results.append({"predictions": masks, "sequence": _fill(text, spans, best), "truncated": e.truncated})
    return results


def stream(lm, records: Iterable[Record], top_k: int = 5, targets: list[str] | None = None,
           opts: StreamOptions | None = None, *, whole_words: bool = False, joint: bool = False,
           mask_token: str | None = None) -> Iterator[tuple[Record, dict | None]]:
    """fill-mask over a record stream (options as :func:`fill_mask`); a text without a
    mask becomes an error record.

    Raises:
        UsageError: a bad option (:func:`check_options`), before any record is read.
    """
    opts = opts or StreamOptions()
    tok = lm.tokenizer
    check_options(tok, targets, whole_words, mask_token)  # fail before reading input
    mask = tok.mask_token
    ph = _placeholder(tok, mask_token)
    marks = [m for m in (ph, mask) if m]
    shown = ph or mask

    def checked():
        for r in records:
            if r.error is None and not any(m in r.text for m in marks):
                r.error = f"no {shown} in the text (write the mask exactly as {shown})"
            yield r

    def window(recs: list[Record]) -> list[dict]:
        return fill_mask(lm, [r.text for r in recs], top_k, targets, opts, whole_words=whole_words, joint=joint,
                         mask_token=mask_token)

    return stream_records(checked(), window, opts)
