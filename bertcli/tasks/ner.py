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

import weakref
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import chain

import numpy as np

from ..errors import ModelError, UsageError
from ..io.readers import Record
from .base import Feature, StreamOptions, collate, forward_gaps, run_refined, stream_records, text_list
from .entities import (  # noqa: F401  (re-exported: the pure decoding lives in entities)
    _BIOES_PREFIX, AGGREGATIONS, METASPACE, WORD_AGGREGATIONS, Token, _close_group, _span, _with_words,
    aggregate_words, decode_batch, decode_entities, grapheme_bounds, group_entities, is_bioes,
    label_names, split_tag, widen_to_graphemes)


@dataclass
class _Doc:
    """A tokenised text: its content tokens (template specials removed) and its windows."""

    text: str
    ids: list[int]
    offsets: list[tuple[int, int]]  # (start, end) pairs as the tokenizer gives them
    special: list[int]
    n_prefix: int
    window_starts: list[int]
    span: int


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
    all_ids, all_offsets, all_special = enc["input_ids"], enc["offset_mapping"], enc["special_tokens_mask"]
    all_tts = enc["token_type_ids"] if "token_type_ids" in enc else None
    for i, text in enumerate(texts):
        ids = all_ids[i]
        tts = all_tts[i] if all_tts is not None else None
        # Template specials have no sequence id; a "[SEP]" typed inside the text has one.
        seq = enc.sequence_ids(i)
        if 0 not in seq:
            docs.append(_Doc(text, [], [], [], 0, [], span))
            continue
        first, last = seq.index(0), len(seq) - seq[::-1].index(0)
        doc = _Doc(text, ids[first:last], all_offsets[i][first:last], all_special[i][first:last], first, [], span)
        n = last - first
        if len(ids) <= lm.max_length:  # one window: the whole input as the tokenizer gave it
            doc.window_starts = [0]
            feats.append(Feature(ids, tts, {"doc": len(docs), "window": 0, "prefix": first, "content": n}))
            docs.append(doc)
            continue
        doc.window_starts = window_starts(n, span, stride)
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
        the padding rows cut off. Rows of special tokens are included. With ``--dtype int8``,
        the features whose int8 logits leave a token's label within ``lm.fallback_margin``
        get the float32 model's (:func:`bertcli.tasks.base.run_refined`).
    """
    opts = opts or StreamOptions()
    pad = lm.tokenizer.pad_token_id or 0

    def run(model, batch: list[Feature]) -> list[tuple[np.ndarray, float]]:
        spans = [(f.extra["prefix"], f.extra["prefix"] + f.extra["content"]) if "content" in f.extra else (0, len(f))
                 for f in batch]
        logits, gaps = forward_gaps(model, collate(batch, pad, numpy=getattr(model, "numpy", False)), spans)
        logits = logits if isinstance(logits, np.ndarray) else logits.numpy()
        return [(softmax(logits[k, :len(f)]), g) for k, (f, g) in enumerate(zip(batch, gaps))]

    return run_refined(lm, feats, run, opts)


class _VocabArrays:
    """Per-vocabulary-id arrays for the vectorised decoding (:func:`decode_docs`): each piece's
    length in characters (the word-aware ``is_subword`` test of :func:`_tokens`), whether the
    piece is made of SentencePiece word markers only (a possible pseudo-token), the vocabulary
    size and the ``[UNK]`` id. Built once per tokenizer (about 15 ms for 30,522 WordPiece ids)."""

    def __init__(self, tokenizer):
        backend = tokenizer._tokenizer
        self.word_aware = bool(getattr(backend.model, "continuing_subword_prefix", None))
        pieces = [backend.id_to_token(i) or "" for i in range(backend.get_vocab_size(with_added_tokens=True))]
        self.size = len(pieces)
        self.piece_len = np.fromiter(map(len, pieces), dtype=np.int64, count=self.size)
        self.marker_only = np.fromiter((bool(p) and not p.strip(METASPACE) for p in pieces), dtype=bool,
                                       count=self.size)
        self.unk = tokenizer.unk_token_id

    @classmethod
    def of(cls, tokenizer) -> "_VocabArrays | None":
        """The arrays of ``tokenizer``, or None for one without a ``tokenizers`` backend."""
        if getattr(tokenizer, "_tokenizer", None) is None:
            return None
        try:
            got = _VOCABS.get(tokenizer)
        except TypeError:  # not weak-referenceable
            return cls(tokenizer)
        if got is None:
            got = _VOCABS[tokenizer] = cls(tokenizer)
        return got


#: tokenizer -> its :class:`_VocabArrays`, for as long as the tokenizer lives
_VOCABS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def decode_docs(tokenizer, docs: list[_Doc], scores: list[np.ndarray | None], labels: list[str],
                aggregation: str, ignore: tuple[str, ...]) -> list[list[dict]]:
    """The entities of stitched documents (``scores[i]``: ``(len(docs[i].ids), num_labels)``,
    None for a document without tokens), in order.

    Documents whose content tokens all cover characters, hold no piece made of word markers
    only and have finite scores (WordPiece text, nearly always) are decoded together by
    :func:`~bertcli.tasks.entities.decode_batch`; the others (pseudo-tokens, a tokenizer
    without a ``tokenizers`` backend, a word strategy without WordPiece's subword test) take
    the per-token path, :func:`_tokens` and :func:`~bertcli.tasks.entities.decode_entities`.
    Both give the same output where both apply (tests/test_ner_arrays.py)."""
    bioes = is_bioes(labels)
    out: list[list[dict] | None] = [[] if not d.ids else None for d in docs]
    vocab = _VocabArrays.of(tokenizer)
    cand = [t for t, d in enumerate(docs) if d.ids]
    if vocab is not None and cand and (aggregation not in WORD_AGGREGATIONS or vocab.word_aware):
        lens = np.fromiter((len(docs[t].ids) for t in cand), dtype=np.int64, count=len(cand))
        n = int(lens.sum())
        ids = np.fromiter(chain.from_iterable(docs[t].ids for t in cand), dtype=np.int64, count=n)
        content = np.fromiter(chain.from_iterable(docs[t].special for t in cand), dtype=np.int64, count=n) == 0
        offs = np.fromiter(chain.from_iterable(chain.from_iterable(docs[t].offsets for t in cand)), dtype=np.int64,
                           count=2 * n).reshape(n, 2)
        sc = np.concatenate([scores[t] for t in cand])
        doc_of = np.repeat(np.arange(len(cand)), lens)
        first = np.cumsum(lens) - lens
        index = np.arange(n) - first[doc_of] + np.asarray([docs[t].n_prefix for t in cand])[doc_of]
        known = (ids >= 0) & (ids < vocab.size)
        bad = ~known | vocab.marker_only[np.where(known, ids, 0)] | (offs[:, 1] <= offs[:, 0]) | \
            ~np.isfinite(sc).all(axis=1)
        good_doc = np.bincount(doc_of[bad & content], minlength=len(cand)) == 0
        keep = content & good_doc[doc_of]
        sub = None
        if aggregation in WORD_AGGREGATIONS:
            sub = vocab.piece_len[np.where(known, ids, 0)] != offs[:, 1] - offs[:, 0]
            if vocab.unk is not None:
                sub &= ids != vocab.unk
            sub = sub[keep]
        chosen = [t for t, ok in zip(cand, good_doc.tolist()) if ok]
        bounds = np.concatenate([[0], np.cumsum(np.bincount(doc_of[keep], minlength=len(cand))[good_doc])])
        decoded = decode_batch([docs[t].text for t in chosen], bounds, index[keep], offs[keep, 0], offs[keep, 1],
                               sc[keep], labels, aggregation, ignore, sub, bioes)
        for t, ents in zip(chosen, decoded):
            out[t] = ents
    for t, d in enumerate(docs):
        if out[t] is None:
            out[t] = decode_entities(d.text, _tokens(tokenizer, d, scores[t]), labels, aggregation, ignore)
    return out  # type: ignore[return-value]


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
    stitched = [stitch_windows(len(doc.ids), doc.window_starts, doc.span, wins) if doc.ids else None
                for doc, wins in zip(docs, per_doc)]
    return [{"entities": ents, "truncated": False}
            for ents in decode_docs(lm.tokenizer, docs, stitched, labels, agg, ignore)]


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
