"""Token classification (``ner``): entities with exact character offsets, any text length.

What is matched from the Hugging Face ``token-classification`` pipeline
(``transformers.pipelines.token_classification``, read against transformers 5.x):

* scores are the softmax over the labels of each token (computed in float32 as the
  pipeline does); special tokens added by the tokenizer's template are skipped;
* ``is_subword``: with a tokenizer whose model has a ``continuing_subword_prefix``
  (WordPiece ``##``), a token is a subword when the token string and the text it covers
  differ in length; otherwise the pipeline's fallback (no space just before the token);
  an ``[UNK]`` token always starts a word;
* the aggregation strategies ``none``, ``simple``, ``first``, ``average`` and ``max``:
  ``none`` gives one entry per token, ``simple`` groups adjacent tokens, the word
  strategies first give each word one label (first token's / averaged scores / the most
  confident token's) and then group words; a group's score is the mean of its members'
  scores; groups and tokens whose label is in ``ignore_labels`` are dropped after grouping.

Where bertcli deliberately differs:

* ``word`` is always ``text[start:end]``, the original characters (case, accents,
  spacing kept). The pipeline decodes the tokens instead, which gives lowercased or
  accent-stripped words for uncased models and ``##`` pieces for ``none``;
* BIOES/BILOU tag sets are grouped by their meaning (``S-`` is a one-token entity, ``E-``
  ends one); the pipeline only knows ``B-``/``I-`` and would split ``B-PER I-PER E-PER``
  into two entities. IOB2, IOB1 and plain labels (no prefix: an ``I-`` of that type) are
  grouped exactly as the pipeline groups them. A group's ``entity_group`` is its tag type
  (``B-PER`` -> ``PER``, plain ``STREET-NAME`` -> ``STREET-NAME``; the pipeline would cut
  the plain label at its first ``-``);
* long texts are never truncated (see below); the pipeline truncates, or with its
  ``stride`` option merges entities found in each chunk;
* entities never overlap: where a tokenizer maps several tokens onto the same characters
  (e.g. byte-level BPE pieces of one emoji), a later entity is trimmed to characters not
  yet covered, or dropped when none are left; an entity covering no characters is dropped;
* pseudo-tokens cover no characters. A pseudo-token is a token with an empty span, or a
  SentencePiece word marker alone (``▁``, as XLM-R, CamemBERT and DeBERTa-v3 make it
  before a word whose first piece has no ``▁``: ``▁ 東京``, ``▁ FC``) whose span is
  whitespace or repeats the next token's first character (``FC Liverpool``: ``▁`` 0-1,
  ``FC`` 0-2, ``▁`` 3-4, ``L`` 3-4), so the pipeline reports it overlapping the real
  piece. In bertcli the pseudo-token keeps its scores but takes no character: ``none``
  leaves it out, ``simple`` groups it like any token (a group of pseudo-tokens only is
  dropped), and the word strategies count it as the first token of the word after it,
  as the tokenizer's ``word_ids`` do (so ``first`` reads the scores of ``▁``, the token
  that first-piece NER training, ``bertcli train ner`` included, labels; the pipeline
  makes it a word of its own). A group or word spans its members that cover characters;
* entities never start or end inside an extended grapheme cluster (Unicode UAX #29, the
  ``regex`` module's ``\\X``): a combining accent, an emoji's skin tone or ZWJ sequence, a
  flag's regional indicators or tag characters belong to the entity that covers their
  base character. An entity's start is moved back and its end forward to the nearest
  cluster boundaries (then trimmed to characters not yet covered, as above), since
  tokenizers drop or split such characters: BERT removes the tag characters of 🏴 (a
  ``Cf`` control), XLM-R's normaliser composes ``e`` + U+0301 and leaves the accent out
  of the token's span.

Long texts: the tokens of a text longer than ``lm.max_length`` are cut into windows of
``max_length - n_special`` tokens (each framed by the tokenizer's own special tokens)
that overlap by at least ``stride`` tokens; the last window is aligned to the text's end
so that it is full. Each token takes its scores from the window in which it is farthest
from a cut edge (the text's own start and end are not cut edges; ties go to the earlier
window), so every token has about ``stride / 2`` tokens of context or more on each side
(for a stride up to half a window). Grouping then runs once over the stitched token
sequence, so an entity crossing a window edge is found once, with exact offsets; this
holds for ``none`` too (the pipeline refuses ``stride`` with ``none``), whose ``index``
is then the token's position in one unbounded sequence.

A consequence of matching the pipeline's ``is_subword`` test: under an accent-stripping
(uncased) tokenizer, a word written with decomposed accents (NFD, ``u`` + U+0308) covers
more characters than its token, so it counts as a subword and the word strategies join
it to the word before; NFC text (the usual form) is not affected.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from .. import batching
from ..errors import ModelError, UsageError
from ..io.readers import Record
from .base import Feature, StreamOptions, collate, stream_records, text_list

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
            end`` for a pseudo-token (no characters of its own, see the module docstring).
        is_subword: the token continues the previous token's word.
        scores: ``(num_labels,)`` float32 softmax probabilities.
    """

    index: int
    start: int
    end: int
    is_subword: bool
    scores: np.ndarray


@dataclass
class _Doc:
    """A tokenised text: its content tokens (template specials removed) and its windows."""

    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]
    special: list[int]
    n_prefix: int
    window_starts: list[int]
    span: int


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


# ---------------------------------------------------------------- tokenising and windows

def n_special_tokens(tokenizer) -> int:
    """Special tokens the tokenizer adds around one sequence (2 for BERT: [CLS] and [SEP])."""
    return int(tokenizer.num_special_tokens_to_add(pair=False))


def resolve_stride(lm, stride: int | None) -> int:
    """The window overlap in tokens: ``stride``, or ``max_length // 4`` when None.

    Raises:
        UsageError: ``stride`` is not an integer in ``[0, max_length - n_special)``.
        ModelError: the model's ``max_length`` leaves no room for text tokens.
    """
    span = lm.max_length - n_special_tokens(lm.tokenizer)
    if span < 1:
        raise ModelError(f"the model takes {lm.max_length} tokens per sequence, which leaves no room for text")
    if stride is None:
        return min(lm.max_length // 4, span - 1)
    if isinstance(stride, bool) or not isinstance(stride, int) or not 0 <= stride < span:
        raise UsageError(f"stride must be an integer from 0 to {span - 1} (the model takes {lm.max_length} tokens, "
                         f"{lm.max_length - span} of them special), got {stride!r}",
                         f"use a stride below {span}, e.g. {lm.max_length // 4}")
    return stride


def window_starts(n: int, span: int, stride: int) -> list[int]:
    """Start positions of windows of ``span`` tokens over ``n`` tokens, overlapping by at
    least ``stride``; the last window ends at ``n``. One window when ``n <= span``."""
    if n <= span:
        return [0]
    step = span - stride
    return list(range(0, n - span, step)) + [n - span]


def stitch_windows(n: int, starts: Sequence[int], span: int, window_scores: Sequence[np.ndarray]) -> np.ndarray:
    """Per-token scores ``(n, num_labels)`` from overlapping windows.

    ``window_scores[k]`` holds the scores of tokens ``starts[k] .. starts[k] + len - 1``
    (shape ``(len, num_labels)``, ``len <= span``). Each token takes the row of the window
    where its distance to the nearer cut edge is largest; a window edge at the text's
    start or end is not a cut, since no context is missing there. Ties: earlier window.
    """
    if len(starts) == 1:
        return window_scores[0][:n]
    out = np.empty((n, window_scores[0].shape[-1]), dtype=window_scores[0].dtype)
    best = np.full(n, -1, dtype=np.int64)
    big = n + span  # stands for "no cut on this side"
    for a, sc in zip(starts, window_scores):
        length = min(span, n - a)
        pos = np.arange(length)
        left = pos if a > 0 else np.full(length, big)
        right = (length - 1 - pos) if a + length < n else np.full(length, big)
        ctx = np.minimum(left, right)
        take = ctx > best[a:a + length]
        out[a:a + length][take] = sc[:length][take]
        best[a:a + length][take] = ctx[take]
    return out


def encode(lm, texts: list[str], stride: int) -> tuple[list[_Doc], list[Feature]]:
    """Tokenise texts in one call and cut them into model inputs.

    Returns the documents and a flat list of window :class:`Feature`s; each feature's
    ``extra`` has ``doc`` (index into ``texts``), ``window`` (index into the doc's
    ``window_starts``), ``prefix`` (template specials before the text tokens) and
    ``content`` (text tokens in the window). A text that fits ``lm.max_length`` gives
    exactly the pipeline's input (template specials included); an empty or
    whitespace-only text gives none.
    """
    tok = lm.tokenizer
    enc = tok(list(texts), add_special_tokens=True, truncation=False, return_offsets_mapping=True,
              return_special_tokens_mask=True, return_attention_mask=False, return_token_type_ids=True,
              verbose=False)
    span = lm.max_length - n_special_tokens(tok)
    docs: list[_Doc] = []
    feats: list[Feature] = []
    for i, text in enumerate(texts):
        ids = enc["input_ids"][i]
        tts = enc["token_type_ids"][i] if "token_type_ids" in enc else None
        # Template specials have no sequence id; a "[SEP]" typed inside the text has one.
        content = [j for j, s in enumerate(enc.sequence_ids(i)) if s == 0]
        if not content:
            docs.append(_Doc(text, [], [], [], 0, [], span))
            continue
        first, last = content[0], content[-1] + 1
        doc = _Doc(text, ids[first:last], [tuple(o) for o in enc["offset_mapping"][i][first:last]],
                   enc["special_tokens_mask"][i][first:last], first, [], span)
        n = last - first
        doc.window_starts = [0] if len(ids) <= lm.max_length else window_starts(n, span, stride)
        for w, a in enumerate(doc.window_starts):
            b = n if len(doc.window_starts) == 1 else a + span
            win_ids = ids[:first] + ids[first + a:first + b] + ids[last:]
            win_tt = tts[:first] + tts[first + a:first + b] + tts[last:] if tts is not None else None
            feats.append(Feature(win_ids, win_tt, {"doc": len(docs), "window": w, "prefix": first,
                                                   "content": b - a}))
        docs.append(doc)
    return docs, feats


# ---------------------------------------------------------------- model

def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, computed as the pipeline does (float32, max-shifted)."""
    maxes = np.max(logits, axis=-1, keepdims=True)
    shifted = np.exp(logits - maxes)
    return shifted / shifted.sum(axis=-1, keepdims=True)


def token_scores(lm, feats: list[Feature], opts: StreamOptions | None = None) -> list[np.ndarray]:
    """Per-token label probabilities for features, batched by length.

    Args:
        lm: a :class:`~bertcli.loading.LoadedModel` for task ``ner``.
        feats: model inputs, each at most ``lm.max_length`` tokens.
        opts: batch size and token budget.

    Returns:
        One float32 array of shape ``(len(feature), num_labels)`` per feature, in input
        order: softmax over ``lm.forward``'s ``(batch, seq_len, num_labels)`` logits with
        the padding rows cut off. Rows of special tokens are included.
    """
    opts = opts or StreamOptions()
    pad = lm.tokenizer.pad_token_id or 0

    def run(batch: list[Feature]) -> list[np.ndarray]:
        logits = lm.forward(collate(batch, pad, numpy=getattr(lm, "numpy", False)))
        logits = logits if isinstance(logits, np.ndarray) else logits.numpy()
        return [softmax(logits[k, :len(f)]) for k, f in enumerate(batch)]

    return batching.run_sorted(feats, [len(f) for f in feats], run, opts.batch_size, opts.max_tokens)


def _tokens(tokenizer, doc: _Doc, scores: np.ndarray) -> list[Token]:
    """The pipeline's ``gather_pre_entities`` on a stitched document, with pseudo-tokens
    (:func:`is_pseudo_token`) given an empty span and joined to the word after them."""
    backend = getattr(tokenizer, "_tokenizer", None)
    word_aware = bool(backend is not None and getattr(backend.model, "continuing_subword_prefix", None))
    strings = tokenizer.convert_ids_to_tokens(doc.ids)
    unk = tokenizer.unk_token_id
    text = doc.text
    content = [j for j in range(len(doc.ids)) if not doc.special[j]]
    out = []
    pending: list[Token] = []  # pseudo-tokens waiting for the next real token
    for n, j in enumerate(content):
        tid, (s, e) = doc.ids[j], doc.offsets[j]
        nxt = doc.offsets[content[n + 1]][0] if n + 1 < len(content) else None
        if tid != unk and is_pseudo_token(text, strings[j], s, e, nxt):
            pending.append(Token(doc.n_prefix + j, s, s, True, scores[j]))
            continue
        if tid == unk:
            sub = False
        elif word_aware:
            sub = len(strings[j]) != e - s
        else:
            sub = s > 0 and " " not in text[s - 1:s + 1]
        if pending:
            # The pseudo-tokens open this token's word (or continue the word before, as it does).
            for p in pending:
                p.is_subword = sub
            out.extend(pending)
            pending = []
            sub = True
        out.append(Token(doc.n_prefix + j, s, e, sub, scores[j]))
    out.extend(pending)  # trailing pseudo-tokens: subwords of the last word
    return out


def is_pseudo_token(text: str, piece: str | None, start: int, end: int, next_start: int | None) -> bool:
    """True for a token that has no characters of its own (see the module docstring).

    That is a token with an empty span, or a piece made of SentencePiece word markers only
    (``▁``) whose span is whitespace (the space the marker replaced) or reaches into the
    next token's span (``next_start < end``: tokenizers give the marker inserted before a
    word the offsets of that word's first character). A ``▁`` typed in the text and read
    as that piece keeps its character.

    Args:
        text: the original text.
        piece: the token string (``convert_ids_to_tokens``).
        start, end: the token's character offsets in ``text``.
        next_start: the start offset of the next non-special token, None if there is none.
    """
    if end <= start:
        return True
    if not piece or piece.strip(METASPACE):
        return False
    return text[start:end].isspace() or (next_start is not None and next_start < end)


# ---------------------------------------------------------------- public API

def check_aggregation(aggregation: str) -> str:
    """The aggregation name, lowercased.

    Raises:
        UsageError: not one of :data:`AGGREGATIONS`.
    """
    agg = str(aggregation).lower()
    if agg not in AGGREGATIONS:
        raise UsageError(f"unknown aggregation strategy '{aggregation}'", f"use one of {', '.join(AGGREGATIONS)}")
    return agg


def default_aggregation(lm) -> str:
    """The model's own aggregation strategy: ``config.task_specific_params["ner"]
    ["aggregation_strategy"]`` (``bertcli train ner`` writes ``first`` when only the first
    WordPiece of a word was trained), else ``simple`` (the transformers pipeline's usual choice)."""
    cfg = lm.config
    tsp = cfg.get("task_specific_params") if isinstance(cfg, dict) else getattr(cfg, "task_specific_params", None)
    agg = ((tsp or {}).get("ner") or {}).get("aggregation_strategy")
    return agg if agg in ("none", "simple", "first", "average", "max") else "simple"


def resolve_aggregation(lm, aggregation: str | None) -> str:
    """``aggregation`` checked (:func:`check_aggregation`), or the model's own when None."""
    return check_aggregation(aggregation if aggregation is not None else default_aggregation(lm))


def ner(lm, texts: list[str], aggregation: str | None = None, stride: int | None = None,
        ignore_labels: Iterable[str] | None = ("O",), opts: StreamOptions | None = None) -> list[dict]:
    """Find entities in texts.

    Args:
        lm: a :class:`~bertcli.loading.LoadedModel` loaded for task ``ner``; its
            ``forward`` gives ``(batch, seq_len, num_labels)`` logits.
        texts: the texts; any length (long ones are windowed, never truncated).
        aggregation: ``none``, ``simple``, ``first``, ``average`` or ``max`` (the
            pipeline's ``aggregation_strategy``; see the module docstring); None: the
            model's own (:func:`default_aggregation`), as the ``ner`` command does.
        stride: overlap in tokens between consecutive windows of a long text; default
            ``max_length // 4``.
        ignore_labels: labels/entity groups left out (None: ``("O",)``, as the pipeline).
        opts: batching knobs; all windows of all texts are batched together by length.

    Returns:
        Per text, in order: ``{"entities": [...], "truncated": False}``. Entities: for
        ``none`` ``{entity, score, index, word, start, end}``, otherwise
        ``{entity_group, score, word, start, end}``; ``score`` a float probability,
        ``start``/``end`` character offsets with ``word == text[start:end]``, sorted and
        non-overlapping.

    Raises:
        UsageError: unknown ``aggregation``; ``stride`` out of range (see :func:`resolve_stride`).
        TypeError: ``texts`` is a single ``str`` (pass ``[text]``).
        ModelError: the model's ``max_length`` leaves no room for text.
    """
    agg = resolve_aggregation(lm, aggregation)
    stride = resolve_stride(lm, stride)
    ignore = ("O",) if ignore_labels is None else tuple(ignore_labels)
    labels = label_names(lm.config)
    texts = text_list(texts)
    if not texts:  # transformers' tokenizers reject an empty batch
        return []
    docs, feats = encode(lm, texts, stride)
    scores = token_scores(lm, feats, opts) if feats else []
    per_doc: list[list[np.ndarray]] = [[] for _ in docs]
    for f, sc in zip(feats, scores):
        pre = f.extra["prefix"]
        per_doc[f.extra["doc"]].append(sc[pre:pre + f.extra["content"]])
    results = []
    for doc, wins in zip(docs, per_doc):
        if not doc.ids:
            results.append({"entities": [], "truncated": False})
            continue
        stitched = stitch_windows(len(doc.ids), doc.window_starts, doc.span, wins)
        toks = _tokens(lm.tokenizer, doc, stitched)
        results.append({"entities": decode_entities(doc.text, toks, labels, agg, ignore), "truncated": False})
    return results


def stream(lm, records: Iterable[Record], aggregation: str | None = None, stride: int | None = None,
           opts: StreamOptions | None = None, ignore_labels: Iterable[str] | None = ("O",)
           ) -> Iterator[tuple[Record, dict | None]]:
    """Run :func:`ner` over a record stream; yields ``(record, result)`` in input order
    (records with ``error`` set get ``None``; see :func:`bertcli.tasks.base.stream_records`).

    Raises:
        UsageError: as :func:`ner`, before any record is read.
    """
    opts = opts or StreamOptions()
    agg = resolve_aggregation(lm, aggregation)
    stride = resolve_stride(lm, stride)  # fail before reading input

    def window(recs: list[Record]) -> list[dict]:
        return ner(lm, [r.text for r in recs], agg, stride, ignore_labels, opts)

    return stream_records(records, window, opts)
