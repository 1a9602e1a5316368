"""From token scores to entities, with no model or tokenizer involved: tag schemes (IOB2,
IOB1, BIOES/BILOU), the aggregation strategies of the transformers token-classification
pipeline, entity spans trimmed to whitespace and grapheme clusters, and a vectorised path
(:func:`decode_batch`) for the common WordPiece case. :mod:`bertcli.tasks.ner` documents what
is matched and where bertcli differs; it tokenises, runs the model and calls these.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

AGGREGATIONS = ("none", "simple", "first", "average", "max")
WORD_AGGREGATIONS = ("first", "average", "max")
#: SentencePiece's word marker (the Metaspace pre-tokenizer's replacement for a space).
METASPACE = "\u2581"
#: Prefixes read as BIOES when the tag set also has B-/I- tags (L-/U- are BILOU's names).
_BIOES_PREFIX = {"B-": "B", "I-": "I", "E-": "E", "S-": "S", "L-": "E", "U-": "S"}


@dataclass
class Token:
    """One token of a text, ready for aggregation.

    Attributes:
        index: position in the model input as the pipeline counts it (the first special
            token is 0); for a windowed text, the position it would have in one
            unbounded sequence.
        start, end: character offsets of the token in the original text; ``start ==
            end`` for a pseudo-token (no characters of its own: see :mod:`bertcli.tasks.ner`).
        is_subword: the token continues the previous token's word.
        scores: ``(num_labels,)`` float32 softmax probabilities.
    """

    index: int
    start: int
    end: int
    is_subword: bool
    scores: np.ndarray


# ---------------------------------------------------------------- labels and tag schemes

def label_names(config) -> list[str]:
    """Label names by id from ``config.id2label`` (``LABEL_i`` for missing ids)."""
    id2 = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return [id2.get(i, f"LABEL_{i}") for i in range(config.num_labels)]


def is_bioes(labels: Iterable[str]) -> bool:
    """True when the tag set uses E-/S- (or L-/U-) next to B-/I- tags.

    Without B-/I- tags an ``E-``/``S-`` label is taken as a plain label, as the pipeline does.
    """
    labels = list(labels)
    has_bi = any(lb.startswith(("B-", "I-")) for lb in labels)
    has_es = any(lb.startswith(("E-", "S-", "L-", "U-")) for lb in labels)
    return has_bi and has_es


def split_tag(label: str, bioes: bool = False) -> tuple[str, str]:
    """``(prefix, type)`` of a label: prefix ``B``, ``I``, ``E`` or ``S``.

    A label without a known prefix (``O``, ``PER``) is ``("I", label)``: the pipeline's
    reading, under which adjacent plain labels of one type form one entity.
    """
    if label.startswith(("B-", "I-")) or (bioes and label[:2] in _BIOES_PREFIX):
        return _BIOES_PREFIX[label[:2]], label[2:]
    return "I", label


def group_entities(items: Sequence[dict], bioes: bool = False, skip: Iterable[str] = ()) -> list[dict]:
    """Group adjacent token or word predictions into entities.

    Args:
        items: dicts with ``entity`` (label), ``score``, ``start``, ``end``, in text order.
        bioes: read E-/S- prefixes (see :func:`is_bioes`).
        skip: entity groups to leave out of the result (``O`` runs, usually); they still
            end the groups around them.

    Returns:
        dicts with ``entity_group`` (the tag type), ``score`` (mean of the members'
        scores), ``start`` (first member's) and ``end`` (last member's). ``O`` runs are
        groups too; the caller filters them.

    An item continues the open group when it has the group's type, its prefix is ``I``
    or ``E`` and the group is not closed (its last item is not ``E``/``S``). For tag sets
    without E-/S- this is the pipeline's rule: same type and not ``B``.
    """
    skip = set(skip)
    tags: dict[str, tuple[str, str]] = {}  # label -> split_tag(label): a few labels, many tokens
    groups: list[dict] = []
    cur: list[dict] = []
    cur_type = None
    closed = False
    for it in items:
        label = it["entity"]
        tag = tags.get(label)
        if tag is None:
            tag = tags[label] = split_tag(label, bioes)
        prefix, typ = tag
        if cur and typ == cur_type and prefix in ("I", "E") and not closed:
            cur.append(it)
        else:
            if cur and cur_type not in skip:
                groups.append(_close_group(cur, cur_type))
            cur, cur_type = [it], typ
        closed = prefix in ("E", "S")
    if cur and cur_type not in skip:
        groups.append(_close_group(cur, cur_type))
    return groups


def _close_group(members: list[dict], typ: str) -> dict:
    start, end = _span([(m["start"], m["end"]) for m in members])
    return {"entity_group": typ, "score": float(np.nanmean([m["score"] for m in members])),
            "start": start, "end": end}


def _span(spans: Sequence[tuple[int, int]]) -> tuple[int, int]:
    """First start and last end among the spans that cover characters (the pipeline's
    first-start/last-end when all do); an empty span when none does."""
    full = [sp for sp in spans if sp[1] > sp[0]]
    if not full:
        return spans[0][0], spans[0][0]
    return full[0][0], full[-1][1]


# ---------------------------------------------------------------- aggregation (pure)

def aggregate_words(tokens: Sequence[Token], labels: Sequence[str], aggregation: str) -> list[dict]:
    """One prediction per word for ``first``/``average``/``max`` (the pipeline's ``aggregate_word``).

    A word is a token that is not a subword plus the subwords after it. Returns dicts
    with ``entity``, ``score``, ``index`` (of the word's first token), ``start``, ``end``
    (first start and last end of its tokens that cover characters; an empty span for a
    word of pseudo-tokens only).

    Raises:
        ValueError: ``aggregation`` is not a word strategy.
    """
    words: list[list[Token]] = []
    for t in tokens:
        if words and t.is_subword:
            words[-1].append(t)
        else:
            words.append([t])
    out = []
    for w in words:
        if aggregation == "first":
            scores = w[0].scores
        elif aggregation == "max":
            scores = max(w, key=lambda t: t.scores.max()).scores
        elif aggregation == "average":
            scores = np.nanmean(np.stack([t.scores for t in w]), axis=0)
        else:
            raise ValueError(f"{aggregation!r} is not a word aggregation")
        k = int(scores.argmax())
        start, end = _span([(t.start, t.end) for t in w])
        out.append({"entity": labels[k], "score": float(scores[k]), "index": w[0].index,
                    "start": start, "end": end})
    return out


def decode_entities(text: str, tokens: Sequence[Token], labels: Sequence[str], aggregation: str = "simple",
                    ignore_labels: Iterable[str] = ("O",)) -> list[dict]:
    """Entities of one text from its tokens' scores (no model involved).

    Args:
        text: the original text (``word`` is sliced from it).
        tokens: the text's non-special tokens in order (see :class:`Token`).
        labels: label names by id (``len(labels) == num_labels``).
        aggregation: one of :data:`AGGREGATIONS`.
        ignore_labels: labels (for ``none``) or entity groups (otherwise) to drop.

    Returns:
        For ``none``: ``{entity, score, index, word, start, end}`` per kept token; for
        the other strategies ``{entity_group, score, word, start, end}`` per entity.
        Sorted by ``start``, non-overlapping, non-empty, ``word == text[start:end]``,
        ``start`` and ``end`` on grapheme cluster boundaries (see :func:`grapheme_bounds`).

    Raises:
        ValueError: unknown ``aggregation``.
    """
    ignore = set(ignore_labels)
    bioes = is_bioes(labels)
    if aggregation in ("none", "simple"):
        # argmax and its score for all tokens in one numpy call (the same values as per token)
        ks, top = [], []
        if tokens:
            scores = np.stack([t.scores for t in tokens])
            best = scores.argmax(axis=1)
            ks, top = best.tolist(), scores[np.arange(len(tokens)), best].tolist()
        items = [{"entity": labels[k], "score": sc, "index": t.index, "start": t.start, "end": t.end}
                 for t, k, sc in zip(tokens, ks, top)]
    elif aggregation in WORD_AGGREGATIONS:
        items = aggregate_words(tokens, labels, aggregation)
    else:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    if aggregation == "none":
        kept = [{"entity": it["entity"], "score": it["score"], "index": it["index"],
                 "start": it["start"], "end": it["end"]} for it in items if it["entity"] not in ignore]
    else:
        kept = group_entities(items, bioes, skip=ignore)
    return _with_words(text, kept)


def _with_words(text: str, ents: list[dict]) -> list[dict]:
    """Entities in the output form: empty ones dropped, spans stripped of surrounding
    whitespace, widened to grapheme cluster boundaries and trimmed to characters no earlier
    entity covers, ``word`` sliced from ``text``.

    Whitespace: byte-level BPE pieces without an offset-trimming post-processor (ModernBERT)
    and SentencePiece pieces after a Metaspace-only pre-tokenizer (DeBERTa-v2/v3) carry the
    space before the word in their offsets (``Ġ``/``▁`` stands for it); an entity is the
    word itself, so the space is left out.
    """
    out = []
    covered = 0
    bounds = grapheme_bounds(text) if ents else None
    for e in ents:
        # Trimmed to what no earlier entity covers before the spaces are stripped: where
        # byte-level pieces of one character went to two entities, the later one would
        # otherwise start at the space after that character.
        start, end = max(e["start"], covered), e["end"]
        while start < end and text[start].isspace():
            start += 1
        while end > start and text[end - 1].isspace():
            end -= 1
        if end <= start:
            continue
        if bounds is not None:
            start, end = widen_to_graphemes(bounds, start, end)
        start = max(start, covered)  # covered is a cluster boundary: an earlier entity's end
        if end <= start:
            continue
        covered = end
        e = dict(e, start=start, end=end)
        # Key order as in the pipeline's output.
        if "entity_group" in e:
            out.append({"entity_group": e["entity_group"], "score": e["score"], "word": text[start:end],
                        "start": start, "end": end})
        else:
            out.append({"entity": e["entity"], "score": e["score"], "index": e["index"], "word": text[start:end],
                        "start": start, "end": end})
    return out


def grapheme_bounds(text: str) -> list[int] | None:
    """Offsets in ``text`` at which an extended grapheme cluster starts, and ``len(text)``.

    Clusters are Unicode's extended grapheme clusters (UAX #29) as the ``regex`` module's
    ``\\X`` finds them: a base character with its combining marks, an emoji with its skin
    tone or ZWJ-joined emoji, a pair of regional indicators (a flag), an emoji with its tag
    characters (🏴 + U+E0067 ... U+E007F), CR LF. Returns None when every offset is a
    boundary (ASCII text without CR LF), the common case, which needs no regex work.
    """
    if text.isascii() and "\r\n" not in text:
        return None
    import regex

    return [m.start() for m in regex.finditer(r"\X", text)] + [len(text)]


def widen_to_graphemes(bounds: Sequence[int] | None, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` widened to grapheme cluster boundaries: ``start`` back to the start
    of its cluster, ``end`` forward to the end of the cluster holding ``end - 1``.

    Args:
        bounds: :func:`grapheme_bounds` of the text (None: every offset is a boundary).
        start, end: a non-empty span, ``0 <= start < end <= len(text)``.
    """
    if bounds is None:
        return start, end
    return bounds[bisect_right(bounds, start) - 1], bounds[bisect_left(bounds, end)]


# ---------------------------------------------------------------- the same, on arrays

def tag_arrays(labels: Sequence[str], bioes: bool) -> tuple[list[str], np.ndarray, np.ndarray, np.ndarray]:
    """Per label id, as :func:`group_entities` reads it: ``(types, type_id, continues, closes)``:
    the tag type names, each label's index into them, whether its prefix may continue an open
    group (``I``/``E``) and whether it closes its group (``E``/``S``)."""
    types: list[str] = []
    type_id, cont, closes = [], [], []
    for lb in labels:
        prefix, typ = split_tag(lb, bioes)
        if typ not in types:
            types.append(typ)
        type_id.append(types.index(typ))
        cont.append(prefix in ("I", "E"))
        closes.append(prefix in ("E", "S"))
    return types, np.asarray(type_id, dtype=np.int64), np.asarray(cont, dtype=bool), np.asarray(closes, dtype=bool)


def _runs(first: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (exclusive) indices of the runs that begin where ``first`` is True."""
    a = np.flatnonzero(first)
    return a, np.append(a[1:], len(first))


def decode_batch(texts: Sequence[str], bounds: np.ndarray, index: np.ndarray, starts: np.ndarray,
                 ends: np.ndarray, scores: np.ndarray, labels: Sequence[str], aggregation: str = "simple",
                 ignore_labels: Iterable[str] = ("O",), is_subword: np.ndarray | None = None,
                 bioes: bool | None = None) -> list[list[dict]]:
    """:func:`decode_entities` for many texts at once, on arrays, for texts whose tokens all
    cover characters.

    Args:
        texts: the original texts.
        bounds: ``(len(texts) + 1,)`` ints: text t's tokens are rows ``bounds[t]:bounds[t + 1]``
            of the arrays below (all texts' non-special tokens, concatenated in order).
        index: ``(n,)`` ints, each token's :attr:`Token.index`.
        starts, ends: ``(n,)`` ints, character offsets in the token's own text, ``start < end``
            for every token (no pseudo-tokens: those take the per-token path).
        scores: ``(n, num_labels)`` float32 probabilities, all finite.
        labels: label names by id.
        aggregation: one of :data:`AGGREGATIONS`.
        ignore_labels: as :func:`decode_entities`.
        is_subword: ``(n,)`` bools, needed by the word strategies (``first``, ``average``, ``max``).
        bioes: :func:`is_bioes` of ``labels`` (computed when None).

    Returns:
        Per text, exactly :func:`decode_entities`' output for the same tokens (the same argmax,
        word scores and float64 group means: tests/test_ner_arrays.py compares them bit for
        bit). The argmax, words and groups of all texts are found by a few numpy calls; Python
        runs once per entity only (per token, the per-token path cost ~0.1 s on 2,000 lines).

    Raises:
        ValueError: unknown ``aggregation``, or a word strategy without ``is_subword``.
    """
    ignore = set(ignore_labels)
    if aggregation not in AGGREGATIONS:
        raise ValueError(f"unknown aggregation {aggregation!r}")
    n = len(starts)
    out: list[list[dict]] = [[] for _ in texts]
    if n == 0:
        return out
    bounds = np.asarray(bounds, dtype=np.int64)
    doc_first = np.zeros(n, dtype=bool)
    doc_first[bounds[:-1][bounds[:-1] < bounds[1:]]] = True
    doc_of = np.repeat(np.arange(len(texts)), np.diff(bounds))
    if aggregation in ("none", "simple"):
        k = scores.argmax(axis=1)
        top = scores[np.arange(n), k]
        if aggregation == "none":
            keep = np.flatnonzero(~np.isin(k, [j for j, lb in enumerate(labels) if lb in ignore]))
            per: dict[int, list[dict]] = {}
            for i in keep.tolist():
                per.setdefault(int(doc_of[i]), []).append(
                    {"entity": labels[k[i]], "score": float(top[i]), "index": int(index[i]),
                     "start": int(starts[i]), "end": int(ends[i])})
            for t, ents in per.items():
                out[t] = _with_words(texts[t], ents)
            return out
        item_start, item_end, item_doc, item_first = starts, ends, doc_of, doc_first
    else:
        if is_subword is None:
            raise ValueError(f"{aggregation!r} needs is_subword")
        ws, we = _runs(doc_first | ~np.asarray(is_subword, dtype=bool))
        lens = we - ws
        if aggregation == "first":
            wsc = scores[ws]
        elif aggregation == "average":
            # np.nanmean's arithmetic on finite rows: its axis-0 sum adds a word's rows one after
            # another (np.add.reduceat does not: other bits), then divides in float64 and casts
            acc = scores[ws].copy()
            for j in range(1, int(lens.max())):
                more = np.flatnonzero(lens > j)
                acc[more] += scores[ws[more] + j]
            wsc = (acc / lens[:, None]).astype(scores.dtype)
        else:  # max: the rows of each word's most confident token (the first on ties)
            best = scores.max(axis=1)
            is_max = best == np.repeat(np.maximum.reduceat(best, ws), lens)
            hits = np.flatnonzero(is_max)
            word_of = np.repeat(np.arange(len(ws)), lens)[hits]
            wsc = scores[hits[np.r_[True, word_of[1:] != word_of[:-1]]]]
        k = wsc.argmax(axis=1)
        top = wsc[np.arange(len(ws)), k]
        item_start, item_end, item_doc, item_first = starts[ws], ends[we - 1], doc_of[ws], doc_first[ws]
    types, type_id, cont, closes = tag_arrays(labels, is_bioes(labels) if bioes is None else bioes)
    typ = type_id[k]
    new = item_first.copy()
    new[0] = True
    new[1:] |= (typ[1:] != typ[:-1]) | ~cont[k[1:]] | closes[k[:-1]]
    gf, gl = _runs(new)
    keep = [j for j, name in enumerate(types) if name not in ignore]
    chosen = np.flatnonzero(np.isin(typ[gf], keep))
    mean_of = top.astype(np.float64)
    per = {}
    for g in chosen.tolist():
        a, b = int(gf[g]), int(gl[g])
        score = float(mean_of[a]) if b - a == 1 else float(np.nanmean(mean_of[a:b]))
        per.setdefault(int(item_doc[a]), []).append(
            {"entity_group": types[typ[a]], "score": score, "start": int(item_start[a]), "end": int(item_end[b - 1])})
    for t, ents in per.items():
        out[t] = _with_words(texts[t], ents)
    return out

