"""Which vocabulary pieces continue a word and which start one (WordPiece ``##``, byte-level BPE
``Ġ``, SentencePiece ``▁``), for fill-mask's ``is_subword`` field and ``--whole-words``
(re-exported by :mod:`bertcli.tasks.fill_mask`).
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable
from typing import NamedTuple


class Pieces(NamedTuple):
    """How a vocabulary marks the pieces of a word (see :func:`subword_pieces`)."""

    scheme: str | None       #: "##" (WordPiece), "@@" (fastBPE), "Ġ" (byte-level BPE), "▁" (SentencePiece)
    always: frozenset        #: ids that continue a word wherever they stand
    after_word: frozenset    #: ids that continue a word when they follow one (no word-start marker)
    special: frozenset       #: the tokenizer's special ids ([CLS], [SEP], [MASK], ...)


_PIECES: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def subword_pieces(tokenizer) -> Pieces:
    """Which vocabulary ids are continuation pieces, found from the vocabulary itself.

    The scheme is the marker most of the vocabulary carries: ``##`` at the start of a
    WordPiece continuation (BERT, ELECTRA: ``##wald``), ``@@`` at the end of a fastBPE
    piece that the next one continues (BERTweet, PhoBERT), ``Ġ`` (byte-level BPE: RoBERTa,
    ModernBERT) or ``▁`` (SentencePiece: ALBERT, XLM-R, DeBERTa-v3) at the start of a piece
    that begins a word. ``##``/``@@`` pieces are continuations wherever they stand. A piece
    without ``Ġ``/``▁`` continues the word before it only when there is one: at the start
    of a text or after punctuation (``"<mask>``, ``(<mask>``) it begins a word, as BPE's
    pre-tokenizer splits words from punctuation; and a piece of punctuation alone (``,``
    ``.``) never continues a word. Special tokens are never continuations. Cached per
    tokenizer.
    """
    try:
        return _PIECES[tokenizer]
    except (KeyError, TypeError):
        pass
    special = frozenset(tokenizer.all_special_ids)
    vocab = {t: i for t, i in tokenizer.get_vocab().items() if i not in special}
    counts = {"##": sum(t.startswith("##") and len(t) > 2 for t in vocab),
              "@@": sum(t.endswith("@@") and len(t) > 2 for t in vocab),
              "Ġ": sum(t.startswith("Ġ") for t in vocab),
              "▁": sum(t.startswith("▁") for t in vocab)}
    scheme = max(counts, key=counts.get)
    always, after = frozenset(), frozenset()
    if counts[scheme] == 0:
        scheme = None
    elif scheme == "##":
        always = frozenset(i for t, i in vocab.items() if t.startswith("##") and len(t) > 2)
    elif scheme == "@@":
        always = frozenset(i for t, i in vocab.items() if t.endswith("@@") and len(t) > 2)
    else:
        text = _bytelevel_text if scheme == "Ġ" else (lambda t: t)
        after = frozenset(i for t, i in vocab.items()
                          if not t.startswith(scheme) and any(c.isalnum() for c in text(t)))
    pieces = Pieces(scheme, always, after, special)
    try:
        _PIECES[tokenizer] = pieces
    except TypeError:  # a tokenizer that cannot be weakly referenced: computed per call
        pass
    return pieces


def _byte_chars() -> dict[str, int]:
    """GPT-2's byte-level alphabet (``bytes_to_unicode``), inverted: character -> byte.
    Printable bytes stand for themselves; the others (controls, space, ...) for 256 + n."""
    bs = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    cs = list(bs)
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


_BYTE_CHARS = _byte_chars()


def _bytelevel_text(piece: str) -> str:
    """The text of a byte-level BPE piece (``Ċ`` -> newline, ``Ã©`` -> é). A piece that
    holds part of a character's bytes is a fragment of a letter (most multi-byte
    characters are), so it reads as ``a``."""
    table = _BYTE_CHARS
    if not all(c in table for c in piece):
        return piece  # an added token, written as it is
    try:
        return bytes(table[c] for c in piece).decode("utf-8")
    except UnicodeDecodeError:
        return "a"


def is_subword(pieces: Pieces, token_id: int, after_word: bool) -> bool:
    """True when ``token_id`` in a mask that follows a word (``after_word``) would continue
    that word rather than start one (see :func:`subword_pieces`)."""
    return token_id in pieces.always or (after_word and token_id in pieces.after_word)


def whole_word_ids(tokenizer, ids: Iterable[int], after_word: bool) -> list[int]:
    """The ids among ``ids`` that put a whole word in a mask: not a continuation piece
    there (:func:`is_subword`), not a special token."""
    p = subword_pieces(tokenizer)
    return [i for i in ids if i not in p.special and not is_subword(p, i, after_word)]


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
