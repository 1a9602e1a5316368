"""Builders of tiny, randomly initialised BERT checkpoints for tests.

Each checkpoint is a real Hugging Face model folder: config.json, model.safetensors and
a fast WordPiece tokenizer whose vocabulary was trained (``tokenizers``' WordPiece
trainer) on the small corpus below, so words split into several ``##`` pieces as in
real BERT vocabularies. ``initializer_range`` is large so that scores are peaked and
top-k orders are not decided by rounding noise.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The capital of France is Paris and the capital of Germany is Berlin.",
    "Angela Merkel visited Paris on Tuesday with Emmanuel Macron.",
    "I loved this movie, it was wonderful and moving.",
    "The food was terrible and the service was even worse.",
    "He opened the fridge. It was empty.",
    "Barack Obama was born in Hawaii and studied at Columbia University.",
    "The quick brown fox jumps over the lazy dog near the river bank.",
    "Microsoft and Google announced new products in San Francisco yesterday.",
    "She sells sea shells by the sea shore every summer morning.",
    "Café Müller in Zürich serves crème brûlée to naïve tourists.",
    "東京 は 日本 の 首都 です 。 北京 上海",
    "Emoji 😀 and symbols ™ © appear in tweets from New York.",
    "unbelievable unhappiness internationalization tokenization preprocessing",
    "Reuters reported that the European Union rejected the German proposal.",
    "It was the best of times, it was the worst of times.",
    "a b c d e f g h i j k l m n o p q r s t u v w x y z 0 1 2 3 4 5 6 7 8 9",
    "Alice was beginning to get very tired of sitting by her sister on the bank.",
]

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


SUFFIXES = ["s", "es", "ed", "ing", "er", "ly", "tion", "ness", "able", "ful", "ie", "ive", "ment", "al"]


def wordpiece_vocab(lowercase: bool = False) -> list[str]:
    """A deterministic WordPiece vocabulary for :data:`CORPUS`.

    Special tokens; every character alone and as a ``##`` continuation; common English
    suffixes as ``##`` pieces; and the corpus words seen twice or of at most 7 characters
    (sorted). Longer rare words split into pieces (``unbelievable`` -> ``un ##b ##e ...``), as rare words do
    in real BERT vocabularies. (The ``tokenizers`` WordPiece trainer breaks ties in
    hash order, so its vocabulary changes from run to run.)
    """
    import re
    import unicodedata
    from collections import Counter

    text = " ".join(CORPUS)
    if lowercase:
        text = "".join(c for c in unicodedata.normalize("NFD", text.lower()) if unicodedata.category(c) != "Mn")
    words = re.findall(r"\w+|[^\w\s]", text)
    counts = Counter(words)
    chars = sorted({c for w in words for c in w})
    vocab = list(SPECIALS) + chars + ["##" + c for c in chars] + ["##" + s for s in SUFFIXES]
    vocab += sorted(w for w, n in counts.items() if len(w) > 1 and (n >= 2 or len(w) <= 7))
    vocab += ["un", "in", "pre", "inter"]
    return list(dict.fromkeys(vocab))


def build_tokenizer(folder: Path, lowercase: bool = False):
    """Write a deterministic WordPiece vocab and a fast BERT tokenizer into ``folder``."""
    import json

    from tokenizers import BertWordPieceTokenizer
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(wordpiece_vocab(lowercase)) + "\n", encoding="utf-8")
    wp = BertWordPieceTokenizer(str(folder / "vocab.txt"), lowercase=lowercase,
                                strip_accents=False if not lowercase else None)
    # tokenizer.json + a tokenizer_config.json naming the BERT class: loads the same way
    # in transformers 4.x and 5.x (their slow/fast constructors differ).
    wp.save(str(folder / "tokenizer.json"))
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "BertTokenizer", "do_lower_case": lowercase, "model_max_length": 128,
        "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
        "mask_token": "[MASK]"}))
    tok = AutoTokenizer.from_pretrained(str(folder))
    return tok


def bert_config(vocab_size: int, **kw):
    from transformers import BertConfig

    base = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=48, max_position_embeddings=128, initializer_range=0.5,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    base.update(kw)
    return BertConfig(**base)


def build_model(folder: Path, kind: str, seed: int = 0, lowercase: bool = False, **config_kw) -> Path:
    """Save a tiny model of ``kind`` into ``folder``.

    kinds: ``masked-lm``, ``pretraining`` (MLM + NSP heads), ``nsp``, ``classify``,
    ``multi-label``, ``regression``, ``ner``, ``encoder`` (bare BertModel).
    """
    import torch
    import transformers as tf

    tok = build_tokenizer(folder, lowercase=lowercase)
    cfg_kw = dict(config_kw)
    if kind in ("classify", "multi-label", "regression", "ner"):
        labels = cfg_kw.pop("labels", None) or {
            "classify": ["NEGATIVE", "POSITIVE"],
            "multi-label": ["sports", "politics", "tech"],
            "regression": ["score"],
            "ner": ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"],
        }[kind]
        cfg_kw["id2label"] = dict(enumerate(labels))
        cfg_kw["label2id"] = {v: k for k, v in enumerate(labels)}
        if kind == "multi-label":
            cfg_kw["problem_type"] = "multi_label_classification"
        if kind == "regression":
            cfg_kw["problem_type"] = "regression"
    config = bert_config(len(tok), **cfg_kw)
    cls = {
        "masked-lm": tf.BertForMaskedLM, "pretraining": tf.BertForPreTraining,
        "nsp": tf.BertForNextSentencePrediction, "classify": tf.BertForSequenceClassification,
        "multi-label": tf.BertForSequenceClassification, "regression": tf.BertForSequenceClassification,
        "ner": tf.BertForTokenClassification, "encoder": tf.BertModel,
    }[kind]
    torch.manual_seed(seed)
    model = cls(config)
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder
