"""Token attributions summed into words with character offsets into the original text."""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ...errors import ModelError
from ..ner import grapheme_bounds
from .gradients import IGResult


# ---------------------------------------------------------------- words

@dataclass
class _Text:
    """A tokenised text (or pair) with what words need: per token its character span, word
    and sequence (None for template specials)."""

    texts: tuple[str, ...]
    offsets: list[tuple[int, int]]
    word_ids: list[int | None]
    sequence_ids: list[int | None]


def words(doc: _Text, attributions: np.ndarray, positions: Sequence[int | None] | None = None) -> list[dict]:
    """Token attributions summed into words, with character offsets into the original text.

    Args:
        doc: the tokenised text (:class:`_Text`).
        attributions: ``(n,)`` per model-input token.
        positions: for each model-input token, its index in ``doc`` (None for a token the
            window's template added); default the identity (the input is the whole text).

    Returns:
        ``[{word, start, end, score}]`` in text order (``sequence_id`` added for pairs), one per
        word the input holds: ``word == text[start:end]``. A word spans its tokens' characters,
        widened to whole grapheme clusters (a combining accent dropped by the tokenizer's
        normaliser belongs to its letter); words that then overlap are merged (their scores
        add up), and a word whose tokens cover no character joins the next word.
    """
    if positions is None:
        positions = list(range(len(attributions)))
    per: dict[tuple[int, int], list] = {}
    for k, j in enumerate(positions):
        if j is None or doc.sequence_ids[j] is None or doc.word_ids[j] is None:
            continue
        key = (doc.sequence_ids[j], doc.word_ids[j])
        s, e = doc.offsets[j]
        w = per.setdefault(key, [None, None, 0.0])
        if e > s:
            w[0] = s if w[0] is None else min(w[0], s)
            w[1] = e if w[1] is None else max(w[1], e)
        w[2] += float(attributions[k])
    out: list[dict] = []
    for seq in sorted({k[0] for k in per}):
        text = doc.texts[seq]
        bounds = grapheme_bounds(text)
        items = []
        carry = 0.0
        for (sq, _), (s, e, score) in sorted(((k, v) for k, v in per.items() if k[0] == seq), key=lambda kv: kv[0][1]):
            if s is None:  # no character of its own: its score goes to the next word
                carry += score
                continue
            s, e = _widen(bounds, s, e)
            score += carry
            carry = 0.0
            if items and s < items[-1][1]:  # overlaps the word before: one word
                p = items[-1]
                items[-1] = [min(p[0], s), max(p[1], e), p[2] + score]
            else:
                items.append([s, e, score])
        if carry and items:
            items[-1][2] += carry
        for s, e, score in items:
            d = {"word": text[s:e], "start": s, "end": e, "score": score}
            if len(doc.texts) > 1:
                d["sequence_id"] = seq
            out.append(d)
    return out


def _widen(bounds, s: int, e: int) -> tuple[int, int]:
    if bounds is None:
        return s, e
    return bounds[bisect_right(bounds, s) - 1], bounds[bisect_left(bounds, e)]


def _needs_offsets(lm) -> None:
    if not getattr(lm.tokenizer, "is_fast", False):
        raise ModelError(f"--explain needs character offsets, which the tokenizer of '{lm.path}' does not give "
                         "(a slow-only tokenizer)", "use a model with a fast tokenizer (tokenizer.json)")


def _tokenise(lm, texts: list[str], pairs: list[str] | None, truncation: bool):
    enc = lm.tokenizer(texts, pairs, add_special_tokens=True, truncation=truncation,
                       max_length=lm.max_length if truncation else None, return_offsets_mapping=True,
                       return_attention_mask=False, return_token_type_ids=True)
    return enc


def _doc(enc, i: int, texts: tuple[str, ...]) -> _Text:
    return _Text(texts, [tuple(o) for o in enc["offset_mapping"][i]], list(enc.word_ids(i)),
                 list(enc.sequence_ids(i)))


def _summary(res: IGResult, steps: int, method: str) -> dict:
    return {"logit": res.logit, "baseline_logit": res.baseline_logit, "delta": res.delta, "steps": steps,
            "method": method}
