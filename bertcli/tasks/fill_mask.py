"""Masked-token prediction (``fill-mask``), matching the Hugging Face ``fill-mask`` pipeline.

For every mask token in a text (the model's own: ``[MASK]`` for BERT, ``<mask>`` for
RoBERTa) the result holds the ``top_k`` vocabulary tokens by softmax probability over
the whole vocabulary (pipeline semantics; with ``targets`` the same probabilities are
read for the target tokens only). Each prediction has ``score``, ``token`` (token_id),
``token_str`` (``tokenizer.decode([token_id])``, as the pipeline) and ``sequence``.

Deliberate differences:

* ``sequence`` is the *original text* with that one mask replaced by the predicted word
  (``##``/``Ġ`` markers removed), so casing, spacing and the other masks of the text are
  kept; the pipeline's ``sequence`` is a lossy decode of all tokens;
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

from .. import batching
from ..errors import InputError, UsageError
from ..io.readers import Record
from .base import Feature, StreamOptions, collate, stream_records, text_list


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


def _clean_piece(tokenizer, token_id: int) -> str:
    """The text a predicted token puts in place of the mask: no ``##``, and nothing for a
    special token (the pipeline's ``skip_special_tokens`` decode drops those too) or an
    id the tokenizer does not have."""
    if token_id in set(tokenizer.all_special_ids):
        return ""
    piece = tokenizer.convert_ids_to_tokens(token_id)
    if piece is None:
        return ""
    if piece.startswith("##"):
        return piece[2:]
    s = tokenizer.decode([token_id])
    return s.strip()


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


def encode(lm, texts: list[str]) -> tuple[list[list[Feature]], list[bool]]:
    """Tokenise texts; one or more features per text (one per mask window when too long).

    Each feature's ``extra`` holds ``masks``: ``[(mask_number, position, char_start, char_end)]``.
    """
    tok = lm.tokenizer
    mask_id = tok.mask_token_id
    fast = getattr(tok, "is_fast", False)
    enc = tok(texts, add_special_tokens=True, truncation=False, return_offsets_mapping=fast,
              return_attention_mask=False, return_token_type_ids=False)
    out, flags = [], []
    L = lm.max_length
    for n, ids in enumerate(enc["input_ids"]):
        pos = [i for i, t in enumerate(ids) if t == mask_id]
        offs = enc["offset_mapping"][n] if fast else _mask_offsets(texts[n], tok.mask_token, pos)
        if len(ids) <= L:
            out.append([Feature(ids, None, {"masks": [(k, p, *offs[p]) for k, p in enumerate(pos)]})])
            flags.append(False)
            continue
        # Too long: a window of L tokens centred on each mask, between [CLS] and [SEP].
        head, tail = ids[0], ids[-1]
        body = ids[1:-1]
        width = L - 2
        feats = []
        for k, p in enumerate(pos):
            b = p - 1
            lo = max(0, min(b - width // 2, len(body) - width))
            win = [head] + body[lo:lo + width] + [tail]
            feats.append(Feature(win, None, {"masks": [(k, b - lo + 1, *offs[p])]}))
        out.append(feats)
        flags.append(True)
    return out, flags


def predict_features(lm, feats: list[Feature], top_k: int, targets: list[int] | None,
                     opts: StreamOptions) -> list[list[list[tuple[int, float]]]]:
    """Top-k ``(token_id, score)`` per mask of each feature, batched and length-sorted.

    ``score`` is the softmax over all of the head's ``vocab_size`` outputs; candidates are
    ``targets`` when given, else the ids that have a token (:func:`candidate_ids`), so at
    most ``min(top_k, number of candidates)`` pairs per mask, best first.
    """
    import torch

    pad = lm.tokenizer.pad_token_id or 0
    tgt = torch.tensor(targets) if targets else None
    known: dict[int, torch.Tensor | None] = {}  # head width -> candidate ids (None: all)

    def run(batch: list[Feature]):
        rows = [(b, m[1]) for b, f in enumerate(batch) for m in f.extra["masks"]]
        if not rows:
            return [[] for _ in batch]
        logits = lm.forward(collate(batch, pad), mask_rows=torch.tensor(rows, dtype=torch.long))
        probs = logits.softmax(-1)  # over every row, padding rows included: the pipeline's scores
        cand = tgt
        if cand is None:
            width = probs.shape[-1]
            if width not in known:
                ids = candidate_ids(lm.tokenizer, width)
                known[width] = None if ids is None else torch.tensor(ids, dtype=torch.long)
            cand = known[width]
        if cand is not None:
            probs = probs[:, cand]
        k = min(top_k, probs.shape[-1])
        vals, idx = probs.topk(k, dim=-1)
        if cand is not None:
            idx = cand[idx]
        res: list[list] = [[] for _ in batch]
        for (b, _), v, i in zip(rows, vals.tolist(), idx.tolist()):
            res[b].append(list(zip(i, v)))
        return res

    return batching.run_sorted(feats, [len(f) for f in feats], run, opts.batch_size, opts.max_tokens)


def fill_mask(lm, texts: list[str], top_k: int = 5, targets: list[str] | None = None,
              opts: StreamOptions | None = None) -> list[dict]:
    """Predict every mask of every text.

    Returns per text ``{"predictions": [[{score, token, token_str, sequence}, ...] per mask],
    "truncated": bool}``; the outer list follows the masks' order in the text. Each mask
    has ``min(top_k, candidates)`` predictions, best first: the candidates are
    ``targets``, or every id that has a token (not an embedding row past the tokenizer);
    ``score`` is the softmax over all of the model's vocabulary rows, as in the pipeline.

    Raises:
        InputError: a text has no mask token (names the token to use).
        UsageError: a bad target (see :func:`target_ids`).
        TypeError: ``texts`` is a single ``str`` (pass ``[text]``).
    """
    opts = opts or StreamOptions()
    tok = lm.tokenizer
    if tok.mask_token is None:
        raise InputError(f"the tokenizer of '{lm.path}' has no mask token")
    tids = target_ids(tok, targets)
    texts = text_list(texts)
    per_text, flags = encode(lm, texts)
    for t, feats in zip(texts, per_text):
        if not any(f.extra["masks"] for f in feats):
            raise InputError(f"no {tok.mask_token} in the text: {t[:60]!r}",
                             f"write the mask exactly as {tok.mask_token}")
    flat = [f for feats in per_text for f in feats]
    preds = predict_features(lm, flat, top_k, tids, opts)
    cache: dict[int, tuple[str, str]] = {}

    def strings(tid):
        if tid not in cache:
            cache[tid] = (tok.decode([tid]), _clean_piece(tok, tid))
        return cache[tid]

    results, j = [], 0
    for text, feats, fl in zip(texts, per_text, flags):
        masks: list = []
        for f in feats:
            for (k, _pos, cs, ce), cand in zip(f.extra["masks"], preds[j]):
                row = []
                for tid, score in cand:
                    token_str, clean = strings(tid)
                    row.append({"score": float(score), "token": int(tid), "token_str": token_str,
                                "sequence": text[:cs] + clean + text[ce:]})
                masks.append((k, row))
            j += 1
        masks.sort(key=lambda m: m[0])
        results.append({"predictions": [r for _, r in masks], "truncated": fl})
    return results


def stream(lm, records: Iterable[Record], top_k: int = 5, targets: list[str] | None = None,
           opts: StreamOptions | None = None) -> Iterator[tuple[Record, dict | None]]:
    """fill-mask over a record stream; a text without a mask becomes an error record."""
    opts = opts or StreamOptions()
    tok = lm.tokenizer
    target_ids(tok, targets)  # fail before reading input
    mask = tok.mask_token

    def checked():
        for r in records:
            if r.error is None and mask not in r.text:
                r.error = f"no {mask} in the text (write the mask exactly as {mask})"
            yield r

    def window(recs: list[Record]) -> list[dict]:
        return fill_mask(lm, [r.text for r in recs], top_k, targets, opts)

    return stream_records(checked(), window, opts)
