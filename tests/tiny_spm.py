"""Tiny XLM-R checkpoints with a real SentencePiece (Unigram) tokenizer, for tests.

The tokenizer is made the way XLM-R's own was: a ``sentencepiece`` Unigram model is
trained (here on :data:`tiny.CORPUS` and a few lines more) and converted by transformers'
``XLMRobertaTokenizer`` (fairseq id layout ``<s> <pad> </s> <unk>``, Precompiled
normaliser, Metaspace pre-tokenizer, ``<s> $A </s>`` template), then saved as
``tokenizer.json``. Like the real ``xlm-roberta-base`` tokenizer it splits a word whose
first piece has no ``▁`` into a lone ``▁`` piece and that piece, and the lone ``▁`` gets
the offsets of the next piece's first character::

    "FC Liverpool won" -> ▁ (0,1) FC (0,2) ▁ (3,4) L (3,4) iver (4,8) po ol ▁wo n
    "東京タワーは高い"   -> ▁ (0,1) 東京 (0,2) タ ワ ー ...

:func:`build_xlmr_ner` saves an ``XLMRobertaForTokenClassification`` next to it: random
(contextual) weights, or with ``token_labels`` a token-local model whose label for a
token is set by hand (no encoder layers, no position embeddings), so the same checkpoint
gives the same, chosen, label pattern to bertcli and to the transformers pipeline.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from tiny import CORPUS

#: Lines added to tiny's corpus: CJK words written without spaces (so ``▁東京`` is not a
#: piece), "FC"/"Liverpool" only inside or after other words, and clusters of several
#: code points (skin tone, flags, a ZWJ family, a tag sequence, a decomposed accent).
EXTRA = [
    "私は東京と北京と上海に行きました。東京タワーは高い。",
    "AFC SCFC AFCB TFC clubs in Liverpool and Merseyside",
    "Ich wohne in Köln und München.",
    "thumbs 👍🏽 family 👨\u200d👩\u200d👧 flags 🇫🇷 🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f",
]

NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def build_spm_tokenizer(folder: Path):
    """Train a SentencePiece Unigram model, convert it with ``XLMRobertaTokenizer`` and
    save ``tokenizer.json`` (+ the ``sentencepiece.bpe.model`` it came from) in ``folder``."""
    import sentencepiece as spm
    from transformers import AutoTokenizer

    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    # One thread: the trainer's result is then the same from run to run.
    spm.SentencePieceTrainer.train(sentence_iterator=iter((CORPUS + EXTRA) * 4), model_writer=buf,
                                   vocab_size=400, hard_vocab_limit=False, model_type="unigram",
                                   character_coverage=1.0, num_threads=1, minloglevel=2)
    (folder / "sentencepiece.bpe.model").write_bytes(buf.getvalue())
    (folder / "tokenizer_config.json").write_text(json.dumps({
        "tokenizer_class": "XLMRobertaTokenizer", "model_max_length": 128}))
    tok = AutoTokenizer.from_pretrained(str(folder))
    tok.save_pretrained(str(folder))
    return AutoTokenizer.from_pretrained(str(folder))


def xlmr_config(vocab_size: int, labels=NER_LABELS, **kw):
    from transformers import XLMRobertaConfig

    base = dict(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=48, max_position_embeddings=130, initializer_range=0.5,
                hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, type_vocab_size=1,
                pad_token_id=1, bos_token_id=0, eos_token_id=2,
                id2label=dict(enumerate(labels)), label2id={v: k for k, v in enumerate(labels)})
    base.update(kw)
    return XLMRobertaConfig(**base)


def build_xlmr_ner(folder: Path, seed: int = 0, token_labels: dict[str, str] | None = None,
                   labels=NER_LABELS) -> Path:
    """Save a tiny ``XLMRobertaForTokenClassification`` and its SentencePiece tokenizer.

    Args:
        token_labels: None for random weights (2 layers, contextual). Otherwise a
            token-local model: piece -> label for the pieces named, ``labels[0]`` for all
            others, each with probability about 0.9; 2050 positions, all zero (the
            tokenizer still says 128, so long texts are windowed).
    """
    import torch
    from transformers import XLMRobertaForTokenClassification

    tok = build_spm_tokenizer(folder)
    local = token_labels is not None
    # token-local: 2050 positions (all zero) let a test run a long text in one pass
    config = xlmr_config(len(tok), labels, **({"num_hidden_layers": 0, "max_position_embeddings": 2050}
                                              if local else {}))
    torch.manual_seed(seed)
    model = XLMRobertaForTokenClassification(config)
    if local:
        h, n = config.hidden_size, len(labels)
        emb = model.roberta.embeddings
        with torch.no_grad():
            # Orthonormal, zero-mean classifier rows; a token's embedding is the row of its
            # label, so after LayerNorm its logits peak on that label.
            r = torch.randn(h, n)
            q, _ = torch.linalg.qr(r - r.mean(dim=0, keepdim=True))  # columns in the zero-mean subspace
            rows = q.T
            model.classifier.weight.copy_(rows * 0.8)
            model.classifier.bias.zero_()
            emb.position_embeddings.weight.zero_()
            emb.token_type_embeddings.weight.zero_()
            emb.LayerNorm.weight.fill_(1.0)
            emb.LayerNorm.bias.zero_()
            want = torch.zeros(len(tok), dtype=torch.long)
            vocab = tok.get_vocab()
            for piece, label in token_labels.items():
                want[vocab[piece]] = labels.index(label)
            emb.word_embeddings.weight.copy_(rows[want])
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder
