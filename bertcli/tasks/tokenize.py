"""``tokenize``: the pieces a model reads, with ids, character offsets, word and segment ids.

Only the tokenizer is loaded: no torch, no model weights, and no transformers import when
the folder has a ``tokenizer.json`` that :class:`bertcli.fasttok.FastTokenizer` reads (the
``tokenizers`` library's own object, which transformers' fast tokenizers wrap too, so the
pieces, ids and offsets are the same). Other folders (``vocab.txt`` only, SentencePiece
models, ...) go through transformers' fast tokenizer (:func:`bertcli.loading.load_tokenizer`).

Conventions (those of transformers' fast tokenizers and the ``tokenizers`` library):

* ``token`` is the vocabulary entry (``##ing`` for a WordPiece continuation, ``Ġthe`` in a
  byte-level BPE vocabulary, ``▁the`` in a SentencePiece one), ``id`` its row in the
  embedding matrix (``input_ids``);
* ``start``/``end`` are the tokenizer's ``offset_mapping``: Python string indices (Unicode
  code points) into the text the token came from, ``text[start:end]`` being the characters
  the piece was read from (before lower-casing or accent stripping);
* ``word_id`` is the tokenizer's ``word_ids()`` (the pre-tokenizer's word index, counted
  from 0 in each text of a pair), ``token_type_id`` the segment id (``token_type_ids``:
  0 for the first text and its ``[CLS]``/``[SEP]``, 1 for the second; 0 throughout for
  models without segments, such as RoBERTa);
* ``special`` is the tokenizer's ``special_tokens_mask``: 1 for the tokens its template
  adds (``[CLS]``, ``[SEP]``, ``<s>``, ``</s>``), whose ``start``, ``end`` and ``word_id``
  are null. A special token typed in the text (``[MASK]``) is read from the text: it has
  offsets and ``special`` false, as in transformers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ModelError, UsageError
from ..io.readers import Record
from .base import StreamOptions, stream_records, text_list

#: the shipped default whose tokenizer ``tokenize`` uses when no model is given: every
#: shipped default reads all-MiniLM-L6-v2's uncased WordPiece vocabulary (30,522 pieces);
#: ``sentiment`` and ``ner`` keep its 512-token maximum (``fill-mask``'s reads 128).
DEFAULT_TOKENIZER = "sentiment"


@dataclass
class LoadedTokenizer:
    """A model folder's tokenizer and the longest input its model takes.

    ``tokenizer`` is a :class:`bertcli.fasttok.FastTokenizer` or a transformers fast
    tokenizer; ``max_length`` is :func:`bertcli.loading.model_max_length` (the smaller of
    the tokenizer's ``model_max_length`` and the position table), or None when the folder
    says neither. A :class:`bertcli.loading.LoadedModel` has the same two attributes and can
    be passed wherever a LoadedTokenizer is.
    """

    path: Path
    tokenizer: Any
    max_length: int | None


def load_tokenizer(model: str | os.PathLike | None = None, revision: str | None = None) -> LoadedTokenizer:
    """Load only the tokenizer of a model folder, a hub id from the local Hugging Face cache
    (see :func:`bertcli.loading.resolve_model_dir`), ``$BERTCLI_MODEL``, or, with none of
    them, the shipped defaults' tokenizer (all-MiniLM-L6-v2's uncased WordPiece, which needs
    no encoder package installed).

    The folder needs tokenizer files; ``config.json`` and weights are optional (the config
    gives ``max_position_embeddings``). The same safety checks as for a model apply: no
    symlink out of the folder, no FIFO or device, no custom tokenizer code (``auto_map``).

    Raises:
        UsageError: ``revision`` without a hub id.
        ModelError: missing folder, no tokenizer files, an unsafe folder, a damaged
            tokenizer.json, or a tokenizer without a fast (Rust) version, which gives no
            character offsets (BERTweet, PhoBERT: ``vocab.txt`` + ``bpe.codes``).
    """
    from .. import loading
    from ..fasttok import FastTokenizer

    if model is None or str(model) == "":
        model = os.environ.get("BERTCLI_MODEL") or None
    if model is None:
        if revision is not None:
            raise UsageError(f"--revision {revision} needs a hub id (--model ORG/NAME); the shipped default has "
                             "no revisions")
        from ..defaults import DEFAULTS_DIR
        path = DEFAULTS_DIR / DEFAULT_TOKENIZER
    else:
        path = loading.resolve_model_dir(model, "tokenize", revision)
    if not path.exists():
        raise ModelError(f"model folder '{path}' does not exist",
                         "pass --model DIR with a local Hugging Face model folder")
    if not path.is_dir():
        raise ModelError(f"model path '{path}' is not a folder", "pass the folder that holds the tokenizer files")
    loading._check_symlinks(path)
    loading._check_tokenizer_config(path)
    if not loading._has_tokenizer(path):
        raise ModelError(f"model folder '{path}' has no tokenizer files",
                         "add tokenizer.json (or vocab.txt for BERT, vocab.json+merges.txt for RoBERTa, "
                         "a SentencePiece model such as spm.model)")
    cfg = _read_config(path)
    try:
        tok = FastTokenizer.from_folder(path)
    except Exception as e:  # tokenizers raises a bare Exception for a malformed tokenizer.json
        raise ModelError(f"cannot load the tokenizer in '{path}': {loading._first_line(e)}",
                         "tokenizer.json is damaged; re-save the tokenizer") from None
    if tok is None:
        tok = loading.load_tokenizer(path, cfg, offsets=False)
        if not getattr(tok, "is_fast", False):
            raise ModelError(f"the tokenizer in '{path}' ({type(tok).__name__}) has no fast version, which "
                             "character offsets need", "tokenize runs tokenizers with a tokenizer.json, vocab.txt, "
                             "vocab.json+merges.txt or SentencePiece model")
    return LoadedTokenizer(path, tok, _max_length(cfg, tok))


def _read_config(path: Path) -> dict:
    f = path / "config.json"
    if not f.is_file():
        return {}
    try:
        cfg = json.loads(f.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as e:
        raise ModelError(f"{f} is not valid JSON: {e}") from None
    if not isinstance(cfg, dict):
        raise ModelError(f"{f} is not a JSON object")
    mpe = cfg.get("max_position_embeddings")
    if mpe is not None and (not isinstance(mpe, int) or isinstance(mpe, bool) or mpe <= 0):
        raise ModelError(f"{f}: max_position_embeddings={mpe!r} is not a positive integer")
    return cfg


class _Config:
    def __init__(self, cfg: dict):
        self.max_position_embeddings = cfg.get("max_position_embeddings")
        self.model_type = cfg.get("model_type", "")
        self.pad_token_id = cfg.get("pad_token_id", 1)


def _max_length(cfg: dict, tok) -> int | None:
    from ..fasttok import _HUGE
    from ..loading import model_max_length

    tmax = getattr(tok, "model_max_length", None)
    if not cfg.get("max_position_embeddings") and (tmax is None or tmax >= _HUGE):
        return None  # a tokenizer-only folder that states no maximum
    return model_max_length(_Config(cfg), tok)


def _encodings(tokenizer, texts: list[str], pairs: list[str] | None) -> list[tuple]:
    """Per text: (tokens, ids, offsets, word_ids, type_ids, special_tokens_mask, sequence_ids), the
    last None for single texts."""
    from ..fasttok import FastTokenizer

    if isinstance(tokenizer, FastTokenizer):
        be = tokenizer._tokenizer
        encs = be.encode_batch(texts if pairs is None else list(zip(texts, pairs)), add_special_tokens=True) \
            if texts else []
        # sequence_ids only for pairs: each Encoding attribute builds a new list (a sixth of the run
        # time on 10,000 short lines went to these conversions)
        return [(e.tokens, e.ids, e.offsets, e.word_ids, e.type_ids, e.special_tokens_mask,
                 e.sequence_ids if pairs is not None else None) for e in encs]
    if not texts:
        return []
    enc = tokenizer(texts, pairs, add_special_tokens=True, truncation=False, return_offsets_mapping=True,
                    return_token_type_ids=True, return_special_tokens_mask=True, return_attention_mask=False)
    return [(enc.tokens(i), enc["input_ids"][i], enc["offset_mapping"][i], enc.word_ids(i),
             enc["token_type_ids"][i], enc["special_tokens_mask"][i], enc.sequence_ids(i))
            for i in range(len(texts))]


def tokenize(tok, texts: list[str], text_pairs: list[str] | None = None) -> list[dict]:
    """Tokenise texts (or pairs) exactly as the model reads them, with no truncation.

    Args:
        tok: a :class:`LoadedTokenizer` (:func:`load_tokenizer`) or a
            :class:`bertcli.loading.LoadedModel`.
        texts: the texts; ``text_pairs``: one second text per text, or None.

    Returns:
        Per text ``{"tokens": [{"token", "id", "start", "end", "word_id", "token_type_id",
        "special"}], "n_tokens": int, "max_length": int | None, "exceeds_max_length": bool}``
        (see the module docstring for each field); for pairs, each token also has
        ``sequence_id`` (0: from the text, 1: from its pair, null: added by the template,
        transformers' ``sequence_ids()``), which says which text ``start``/``end`` index.
        ``exceeds_max_length`` is ``n_tokens > max_length`` (false when the maximum is
        unknown): the other commands would truncate such a text.

    Raises:
        TypeError: ``texts`` or ``text_pairs`` is a single ``str`` (pass ``[text]``).
        ValueError: ``text_pairs`` is not one second text per text.
    """
    texts = text_list(texts)
    pairs = None if text_pairs is None else text_list(text_pairs, "text_pairs")
    if pairs is not None and len(pairs) != len(texts):
        raise ValueError(f"{len(texts)} texts but {len(pairs)} text_pairs: pairs need one of each")
    mx = tok.max_length
    out = []
    for toks, ids, offs, words, types, specials, seqs in _encodings(tok.tokenizer, texts, pairs):
        rows = []
        if pairs is None:
            for t, i, (s, e), w, tt, sp in zip(toks, ids, offs, words, types, specials):
                rows.append({"token": t, "id": i, "start": None if sp else s, "end": None if sp else e,
                             "word_id": w, "token_type_id": tt, "special": sp == 1})
        else:
            for t, i, (s, e), w, tt, sp, q in zip(toks, ids, offs, words, types, specials, seqs):
                rows.append({"token": t, "id": i, "start": None if sp else s, "end": None if sp else e,
                             "word_id": w, "token_type_id": tt, "special": sp == 1, "sequence_id": q})
        n = len(rows)
        out.append({"tokens": rows, "n_tokens": n, "max_length": mx,
                    "exceeds_max_length": mx is not None and n > mx})
    return out


def stream(tok, records: Iterable[Record], opts: StreamOptions | None = None, pairs: bool = False
           ) -> Iterator[tuple[Record, dict | None]]:
    """:func:`tokenize` over a record stream (``text``, and ``text_pair`` with ``pairs``),
    a window of records per tokenizer call; yields ``(record, result)`` in input order."""
    opts = opts or StreamOptions()

    def window(recs: list[Record]) -> list[dict]:
        return tokenize(tok, [r.text for r in recs], [r.text_pair for r in recs] if pairs else None)

    return stream_records(records, window, opts)
