"""A fast tokenizer straight from ``tokenizer.json`` through the ``tokenizers`` library.

It offers the part of the transformers ``PreTrainedTokenizerFast`` interface that
bertcli's tasks use (calling it on a batch, ``decode``, ``convert_ids_to_tokens``,
special tokens, ...) with the same results, because transformers' fast tokenizers are
this same Rust object plus the special-token settings of ``tokenizer_config.json``.
Importing it costs milliseconds instead of transformers' seconds.
"""

from __future__ import annotations

import json
from pathlib import Path

_SPECIAL = ("unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "bos_token", "eos_token")
_HUGE = 10 ** 12


def _content(v):
    if isinstance(v, dict):
        return v.get("content")
    return v


def _spm_style(backend) -> bool:
    """True for a SentencePiece-converted tokenizer: a Unigram model, or a Metaspace
    pre-tokenizer (alone or in a sequence)."""
    if type(backend.model).__name__ == "Unigram":
        return True
    pre = backend.pre_tokenizer
    return pre is not None and "Metaspace" in repr(pre)


class FastTokenizer:
    """``tokenizers.Tokenizer`` with the transformers-style calls bertcli needs.

    Build it with :meth:`from_folder`. Calling it returns a dict of per-text lists
    (``input_ids``, ``token_type_ids``, ``attention_mask``, ``offset_mapping`` as asked),
    like a transformers ``BatchEncoding`` without padding or tensors.
    """

    is_fast = True

    def __init__(self, backend, special: dict[str, str | None], model_max_length: int | None,
                 model_input_names=("input_ids", "token_type_ids", "attention_mask")):
        self._tokenizer = backend
        backend.no_padding()
        backend.no_truncation()
        for name in _SPECIAL:
            setattr(self, name, special.get(name))
        self.model_max_length = model_max_length if model_max_length and model_max_length < _HUGE else _HUGE
        self.model_input_names = list(model_input_names)
        self._vocab = None

    @classmethod
    def from_folder(cls, path: Path) -> "FastTokenizer | None":
        """Load from ``path/tokenizer.json`` (+ ``tokenizer_config.json``, ``special_tokens_map.json``);
        None when there is no ``tokenizer.json`` or it has no post-processor (special-token template)."""
        from tokenizers import Tokenizer

        tj = path / "tokenizer.json"
        if not tj.is_file():
            return None
        backend = Tokenizer.from_file(str(tj))
        if backend.post_processor is None:
            # No [CLS]/[SEP] template in the file: transformers' tokenizer classes rebuild
            # one from the class defaults; leave such folders to them.
            return None
        if _spm_style(backend):
            # SentencePiece-style files (XLM-R, CamemBERT, ALBERT, DeBERTa-v2/v3): transformers 5
            # rebuilds their pre-tokenizer from the class (WhitespaceSplit + Metaspace) and
            # ignores the file's; hub files made before that (Metaspace alone) then give other
            # ids and offsets (a run of spaces becomes '▁' tokens). Take transformers' tokenizer
            # so that bertcli reads exactly what the pipeline reads.
            return None
        conf: dict = {}
        for name in ("special_tokens_map.json", "tokenizer_config.json"):
            f = path / name
            if f.is_file():
                try:
                    d = json.loads(f.read_text(encoding="utf-8"))
                    if isinstance(d, dict):
                        conf.update(d)
                except ValueError:
                    pass
        special = {k: _content(conf.get(k)) for k in _SPECIAL}
        vocab = backend.get_vocab(with_added_tokens=True)
        defaults = {"unk_token": ("[UNK]", "<unk>"), "sep_token": ("[SEP]", "</s>"), "pad_token": ("[PAD]", "<pad>"),
                    "cls_token": ("[CLS]", "<s>"), "mask_token": ("[MASK]", "<mask>")}
        for k, cands in defaults.items():
            if special.get(k) is None:
                special[k] = next((c for c in cands if c in vocab), None)
        names = conf.get("model_input_names") or ("input_ids", "token_type_ids", "attention_mask")
        return cls(backend, special, conf.get("model_max_length"), names)

    # -- special tokens
    def _id(self, tok):
        return None if tok is None else self._tokenizer.token_to_id(tok)

    @property
    def unk_token_id(self):
        return self._id(self.unk_token)

    @property
    def sep_token_id(self):
        return self._id(self.sep_token)

    @property
    def pad_token_id(self):
        return self._id(self.pad_token)

    @property
    def cls_token_id(self):
        return self._id(self.cls_token)

    @property
    def mask_token_id(self):
        return self._id(self.mask_token)

    @property
    def all_special_ids(self):
        return [i for i in (self._id(getattr(self, n)) for n in _SPECIAL) if i is not None]

    # -- vocabulary
    def __len__(self) -> int:
        return self._tokenizer.get_vocab_size(with_added_tokens=True)

    def get_vocab(self) -> dict[str, int]:
        if self._vocab is None:
            self._vocab = self._tokenizer.get_vocab(with_added_tokens=True)
        return self._vocab

    def tokenize(self, text: str) -> list[str]:
        return self._tokenizer.encode(text, add_special_tokens=False).tokens

    def convert_ids_to_tokens(self, ids):
        if isinstance(ids, int):
            return self._tokenizer.id_to_token(ids)
        return [self._tokenizer.id_to_token(i) for i in ids]

    def convert_tokens_to_ids(self, tokens):
        if isinstance(tokens, str):
            i = self._tokenizer.token_to_id(tokens)
            return self.unk_token_id if i is None else i
        return [self.convert_tokens_to_ids(t) for t in tokens]

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        return self._tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def num_special_tokens_to_add(self, pair: bool = False) -> int:
        pp = self._tokenizer.post_processor
        return pp.num_special_tokens_to_add(pair) if pp is not None else 0

    # -- encoding
    def __call__(self, text, text_pair=None, add_special_tokens: bool = True, truncation=False,
                 max_length: int | None = None, return_offsets_mapping: bool = False,
                 return_token_type_ids: bool = True, return_attention_mask: bool = True,
                 return_special_tokens_mask: bool = False, **_ignored):
        single = isinstance(text, str)
        texts = [text] if single else list(text)
        pairs = None if text_pair is None else ([text_pair] if single else list(text_pair))
        be = self._tokenizer
        if truncation and max_length:
            be.enable_truncation(max_length, strategy="longest_first")
        try:
            inputs = texts if pairs is None else list(zip(texts, pairs))
            encs = be.encode_batch(inputs, add_special_tokens=add_special_tokens) if inputs else []
        finally:
            if truncation and max_length:
                be.no_truncation()
        out = {"input_ids": [e.ids for e in encs]}
        if return_token_type_ids:
            out["token_type_ids"] = [e.type_ids for e in encs]
        if return_attention_mask:
            out["attention_mask"] = [e.attention_mask for e in encs]
        if return_offsets_mapping:
            out["offset_mapping"] = [e.offsets for e in encs]
        if return_special_tokens_mask:
            out["special_tokens_mask"] = [e.special_tokens_mask for e in encs]
        enc = _Encoding(out, encs)
        if single:
            return _Encoding({k: v[0] for k, v in out.items()}, encs)
        return enc


class _Encoding(dict):
    """A dict of lists with transformers' ``word_ids(i)`` / ``sequence_ids(i)`` accessors."""

    def __init__(self, data, encs):
        super().__init__(data)
        self._encs = encs

    def word_ids(self, i: int = 0):
        return self._encs[i].word_ids

    def sequence_ids(self, i: int = 0):
        return self._encs[i].sequence_ids

    @property
    def encodings(self):
        return self._encs
