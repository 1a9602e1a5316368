"""The vectorised entity decoding (bertcli.tasks.entities.decode_batch, used by ``ner`` for
texts whose tokens all cover characters) gives exactly the per-token path's output
(decode_entities on Token objects): random scores under every aggregation and tag scheme,
and whole ``ner`` runs with the vectorised path turned off, on the real MiniLM default and
on real CoNLL-2003 sentences."""

from __future__ import annotations

import numpy as np
import pytest

from bertcli.tasks import entities, ner
from bertcli.tasks.entities import AGGREGATIONS

import engine_data  # noqa: I001  (tests/ is on pytest's path, as for test_ray)

IOB2 = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
BIOES = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
PLAIN = ["O", "PER", "ORG", "B-LOC", "I-LOC"]


def _case(rng, labels, n):
    """A text of n words of 1-6 letters split into 1-3 pieces, with peaked random scores
    (runs of one label, so that groups and words of several tokens occur)."""
    words = ["".join(rng.choice(list("abcdefghij"), size=rng.integers(1, 7 if rng.random() < 0.8 else 16)))
             for _ in range(n)]
    text, starts, ends, sub = "", [], [], []
    for w in words:
        text += " " if text else ""
        cuts = sorted(set(rng.integers(1, len(w) + 1, size=rng.integers(0, 3 if len(w) < 7 else 15)).tolist())
                      | {len(w)})
        a = 0
        for j, b in enumerate(cuts):
            starts.append(len(text) + a)
            ends.append(len(text) + b)
            sub.append(j > 0)
            a = b
        text += w
    m = len(starts)
    logits = rng.normal(size=(m, len(labels))).astype(np.float32)
    hot = rng.integers(0, len(labels), size=m)
    for i in range(1, m):
        if rng.random() < 0.6:
            hot[i] = hot[i - 1] if rng.random() < 0.5 else (hot[i - 1] + 1) % len(labels)
    logits[np.arange(m), hot] += rng.uniform(0, 6, size=m).astype(np.float32)
    e = np.exp(logits - logits.max(1, keepdims=True))
    scores = (e / e.sum(1, keepdims=True)).astype(np.float32)
    return text, np.array(starts), np.array(ends), np.array(sub), scores


def _decode_one(text, index, starts, ends, scores, labels, aggregation="simple", ignore=("O",), sub=None):
    return entities.decode_batch([text], np.array([0, len(starts)]), index, starts, ends, scores, labels,
                                 aggregation, ignore, sub)[0]


@pytest.mark.parametrize("labels", [IOB2, BIOES, PLAIN], ids=["iob2", "bioes", "plain+iob"])
@pytest.mark.parametrize("aggregation", AGGREGATIONS)
@pytest.mark.parametrize("ignore", [("O",), (), ("O", "PER")], ids=["O", "none", "O+PER"])
def test_decode_batch_equals_decode_entities(labels, aggregation, ignore):
    rng = np.random.default_rng(len(labels) * 7 + AGGREGATIONS.index(aggregation))
    seen = 0
    for _ in range(60):
        text, s, e, sub, sc = _case(rng, labels, int(rng.integers(1, 25)))
        index = np.arange(len(s)) + 1
        toks = [entities.Token(int(i), int(a), int(b), bool(w), sc[j])
                for j, (i, a, b, w) in enumerate(zip(index, s, e, sub))]
        want = entities.decode_entities(text, toks, labels, aggregation, ignore)
        got = _decode_one(text, index, s, e, sc, labels, aggregation, ignore, sub)
        assert got == want  # the same dicts: keys, order, words and float scores to the bit
        seen += len(want)
    assert seen > 50  # the cases hold entities, not only O runs


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_decode_batch_equals_decode_entities_per_text(aggregation):
    """Many texts in one call, empty ones among them: each text's entities are its own (a
    group or word never runs across two texts), as decode_entities gives them text by text."""
    rng = np.random.default_rng(5)
    cases = [_case(rng, BIOES if aggregation == "max" else IOB2, int(rng.integers(1, 12))) for _ in range(40)]
    cases[3] = ("", np.zeros(0, int), np.zeros(0, int), np.zeros(0, bool), np.zeros((0, 9), np.float32))
    for c in cases[::5]:
        c[3][:1] = True  # a text opening with a subword piece still opens a word
    labels = BIOES if aggregation == "max" else IOB2
    bounds = np.cumsum([0] + [len(c[1]) for c in cases])
    cat = [np.concatenate([c[i] for c in cases]) for i in range(1, 5)]
    index = np.concatenate([np.arange(len(c[1])) + 1 for c in cases])
    got = entities.decode_batch([c[0] for c in cases], bounds, index, cat[0], cat[1], cat[3], labels, aggregation,
                                ("O",), cat[2])
    want = [entities.decode_entities(c[0], [entities.Token(j + 1, int(a), int(b), bool(w), c[4][j])
                                            for j, (a, b, w) in enumerate(zip(c[1], c[2], c[3]))],
                                     labels, aggregation) for c in cases]
    assert got == want and sum(map(len, want)) > 20


def test_decode_batch_needs_is_subword_for_word_strategies():
    with pytest.raises(ValueError, match="is_subword"):
        _decode_one("ab", np.array([1]), np.array([0]), np.array([2]), np.ones((1, 9), np.float32) / 9, IOB2, "first")
    with pytest.raises(ValueError, match="unknown aggregation"):
        _decode_one("ab", np.array([1]), np.array([0]), np.array([2]), np.ones((1, 9), np.float32) / 9, IOB2, "mean")


TEXTS = [
    "Angela Merkel met Emmanuel Macron in Paris on Tuesday.",
    "Shares of Acme Corp fell 4.2 percent in New York after the company cut its forecast.",
    "Ünïcödé Zürich-based Nestlé S.A. hired José Ángel from São Paulo 🇧🇷 last year.",
    "",
    "   ",
    "the [SEP] token typed inside a text, and [UNK] too",
    "x" * 3000,  # one word longer than a window: several windows of ## pieces
]


@pytest.mark.parametrize("aggregation", AGGREGATIONS)
def test_ner_is_the_same_without_the_vectorised_path(aggregation, monkeypatch, request):
    """Whole ``ner`` runs on the shipped default (MiniLM's WordPiece tokenizer), on everyday
    texts, accents, emoji, typed special tokens, empty and windowed texts (and CoNLL-2003
    test sentences when ../shared is there): the same results with the vectorised path off."""
    from bertcli.loading import load_model

    texts = list(TEXTS)
    if engine_data.have_data() is None:  # CoNLL-2003 test sentences, every 50th a whole document
        texts += engine_data.lines("ner")[:150]
    lm = load_model(None, "ner")
    real, used = ner.decode_batch, []
    monkeypatch.setattr(ner, "decode_batch", lambda texts, *a: used.extend(texts) or real(texts, *a))
    fast = ner.ner(lm, texts, aggregation=aggregation)
    assert len(used) == len(texts) - 2  # all but the empty texts took the vectorised path
    monkeypatch.setattr(ner._VocabArrays, "of", classmethod(lambda cls, tok: None))
    slow = ner.ner(lm, texts, aggregation=aggregation)
    assert fast == slow
    assert sum(len(r["entities"]) for r in fast) >= 4


def test_pseudo_tokens_take_the_per_token_path(monkeypatch):
    """A SentencePiece marker alone (a possible pseudo-token), an empty span or a score that
    is not finite sends its text to the per-token path; the other texts are decoded together."""
    vocab = ner._VocabArrays.__new__(ner._VocabArrays)
    vocab.word_aware, vocab.size, vocab.unk = True, 10, 1
    vocab.piece_len = np.full(10, 2)
    vocab.marker_only = np.zeros(10, dtype=bool)
    vocab.marker_only[4] = True
    monkeypatch.setattr(ner._VocabArrays, "of", classmethod(lambda cls, tok: vocab))
    batched, per_token = [], []
    monkeypatch.setattr(ner, "decode_batch", lambda texts, *a: batched.extend(texts) or [[] for _ in texts])
    monkeypatch.setattr(ner, "_tokens", lambda tok, doc, sc: per_token.append(doc.text) or [])

    def doc(text, ids, offsets):
        return ner._Doc(text, ids, offsets, [0] * len(ids), 1, [0], 510)

    sc = np.full((2, 9), 1 / 9, dtype=np.float32)
    docs = [doc("plain", [2, 3], [(0, 2), (3, 5)]), doc("marker", [4, 3], [(2, 3), (3, 5)]),
            doc("empty span", [2, 3], [(0, 0), (3, 5)]), doc("nan", [2, 3], [(0, 2), (3, 5)]),
            doc("", [], []), doc("unknown id", [2, 12], [(0, 2), (3, 5)]), doc("plain too", [3, 2], [(0, 2), (3, 5)])]
    scores = [sc, sc, sc, sc * np.nan, None, sc, sc]
    out = ner.decode_docs(None, docs, scores, IOB2, "first", ("O",))
    assert out == [[]] * 7
    assert batched == ["plain", "plain too"]
    assert per_token == ["marker", "empty span", "nan", "unknown id"]
