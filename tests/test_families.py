"""Other BERT-family architectures: ALBERT (transformers path) and RoBERTa, DistilBERT,
ELECTRA (native path) give the transformers pipeline's results through bertcli."""

from __future__ import annotations

import shutil

import pytest
import torch

from bertcli.loading import load_model
from bertcli.tasks.classify import classify
from bertcli.tasks.fill_mask import fill_mask

SMALL = dict(vocab_size=None, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=48,
             max_position_embeddings=128, initializer_range=0.5)
#: families bertcli runs on its native encoder (bertcli.native.FAMILIES)
NATIVE = ("roberta", "distilbert", "electra")
TEXTS = ["I loved this movie, it was wonderful.", "The food was terrible [MASK] worse.", "Café Müller in Zürich"]


def _config(family: str, vocab: int, **kw):
    import transformers as tf

    s = dict(SMALL, vocab_size=vocab)
    if family == "distilbert":
        return tf.DistilBertConfig(vocab_size=vocab, dim=32, n_layers=2, n_heads=2, hidden_dim=48,
                                   max_position_embeddings=128, initializer_range=0.5, dropout=0.0,
                                   attention_dropout=0.0, **kw)
    if family == "albert":
        return tf.AlbertConfig(embedding_size=16, **s, **kw)
    if family == "electra":
        return tf.ElectraConfig(embedding_size=16, **s, **kw)
    if family == "roberta":
        return tf.RobertaConfig(**s, pad_token_id=0, bos_token_id=2, eos_token_id=3, type_vocab_size=1, **kw)
    raise ValueError(family)


def _checkpoint(tmp, tok_dir, family, head, **kw):
    import transformers as tf

    d = tmp / f"{family}-{head}"
    d.mkdir()
    for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(tok_dir / f, d / f)
    vocab = sum(1 for _ in open(tok_dir / "vocab.txt", encoding="utf-8"))
    cfg = _config(family, vocab, **kw)
    torch.manual_seed(0)
    cls = getattr(tf, tf.AutoModelForMaskedLM._model_mapping[type(cfg)].__name__ if head == "mlm" else
                  tf.AutoModelForSequenceClassification._model_mapping[type(cfg)].__name__)
    cls(cfg).save_pretrained(str(d), safe_serialization=True)
    return d


@pytest.mark.parametrize("family", ["distilbert", "albert", "electra", "roberta"])
def test_classify_matches_pipeline(family, cls_dir, tmp_path):
    from transformers import pipeline

    d = _checkpoint(tmp_path, cls_dir, family, "cls", num_labels=3,
                    id2label={0: "a", 1: "b", 2: "c"}, label2id={"a": 0, "b": 1, "c": 2})
    lm = load_model(d, "classify")
    assert lm.native == (family in NATIVE)
    ours = classify(lm, TEXTS, top_k=None)
    ref = pipeline("text-classification", model=str(d), top_k=None)(TEXTS)
    for o, r in zip(ours, ref):
        assert [x["label"] for x in o["labels"]] == [x["label"] for x in r]
        for x, y in zip(o["labels"], r):
            assert x["score"] == pytest.approx(y["score"], abs=1e-4)


@pytest.mark.parametrize("family", ["distilbert", "albert", "electra", "roberta"])
def test_fill_mask_matches_pipeline(family, cls_dir, tmp_path):
    from transformers import pipeline

    d = _checkpoint(tmp_path, cls_dir, family, "mlm")
    lm = load_model(d, "fill-mask")
    assert lm.native == (family in NATIVE)
    text = [TEXTS[1]]
    ours = fill_mask(lm, text, top_k=5)[0]["predictions"][0]
    ref = pipeline("fill-mask", model=str(d), top_k=5)(text[0])
    assert [p["token"] for p in ours] == [p["token"] for p in ref]
    for x, y in zip(ours, ref):
        assert x["score"] == pytest.approx(y["score"], abs=1e-4)
        assert x["token_str"] == y["token_str"]
