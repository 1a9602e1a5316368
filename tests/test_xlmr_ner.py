"""NER on an XLM-R checkpoint with a real SentencePiece tokenizer (see tiny_spm.py).

The lone ``▁`` piece that SentencePiece puts before a word whose first piece has no
``▁`` (``▁ FC``, ``▁ 東京``) carries the offsets of that word's first character. It is a
pseudo-token: it must take no character from the real piece ("FC Liverpool" once came
out as "C", "東京" as "京"), while every real piece keeps the pipeline's offsets and scores.
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertcli.loading import load_model
from bertcli.tasks import ner as N
from bertcli.tasks.base import StreamOptions
from tiny_spm import build_xlmr_ner

STRATEGIES = N.AGGREGATIONS
#: The token-local model's labels: ▁ is B-MISC, the real pieces of "FC Liverpool" ORG,
#: 東京 LOC; every other piece O.
HAND = {"▁": "B-MISC", "FC": "B-ORG", "L": "I-ORG", "iver": "I-ORG", "po": "I-ORG", "ol": "I-ORG", "東京": "B-LOC"}

TEXTS = [
    "FC Liverpool won",
    "東京タワーは高い",
    "He plays for FC Liverpool in 東京 now.",
    "Angela Merkel visited Paris on Tuesday with Emmanuel Macron.",
    "Café Müller in Zürich serves crème brûlée to naïve tourists.",
    "Emoji 😀 and 👍🏽 in tweets from New York 🎉.",
    "the capital of France is Paris and the capital of Germany is Berlin.",
    "and the capital of the river bank",
    "Barack   Obama was born in\tHawaii.",
    "  leading and trailing  ",
]


def _pipe(path):
    from transformers import pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline("token-classification", model=str(path), device="cpu")


def _hf(pipe, text, strategy, ignore=()):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = pipe(text, aggregation_strategy=strategy, ignore_labels=list(ignore))
    return [dict(h, start=int(h["start"]), end=int(h["end"]), score=float(h["score"])) for h in out]


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    path = build_xlmr_ner(tmp_path_factory.mktemp("xlmr-hand"), seed=3, token_labels=HAND)
    return load_model(path, "ner", device="cpu"), _pipe(path)


@pytest.fixture(scope="module")
def rand(tmp_path_factory):
    path = build_xlmr_ner(tmp_path_factory.mktemp("xlmr-rand"), seed=5)
    return load_model(path, "ner", device="cpu"), _pipe(path)


def _pieces(lm, text):
    enc = lm.tokenizer([text], return_offsets_mapping=True, return_special_tokens_mask=True)
    toks = lm.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    return [(t, tuple(o)) for t, o, sp in zip(toks, enc["offset_mapping"][0], enc["special_tokens_mask"][0]) if not sp]


def _pseudo_indices(lm, text):
    """Model-input positions of the pseudo-tokens (the template's <s> is position 0)."""
    ps = _pieces(lm, text)
    return {i + 1 for i, (t, (s, e)) in enumerate(ps)
            if N.is_pseudo_token(text, t, s, e, ps[i + 1][1][0] if i + 1 < len(ps) else None)}


def _key(ents, key):
    return [(e[key], e["start"], e["end"]) for e in ents]


def _as_bertcli(text, ents):
    """The pipeline's entities as bertcli reports them (module docstring): widened to whole
    grapheme clusters (the reference boundaries come from regex directly), then trimmed to
    characters no earlier entity covers, and dropped when empty."""
    bounds = sorted({m.start() for m in regex.finditer(r"\X", text)} | {len(text)})
    out, covered = [], 0
    for e in ents:
        if e["end"] <= e["start"]:
            continue
        start = max(b for b in bounds if b <= e["start"])
        end = min(b for b in bounds if b >= e["end"])
        start = max(start, covered)
        if end > start:
            out.append(dict(e, start=start, end=end))
            covered = end
    return out


# ---------------------------------------------------------------- the fixture is faithful

def test_fixture_makes_lone_metaspace_pieces(hand):
    lm, pipe = hand
    # SentencePiece files are read through transformers' class, as the pipeline reads them
    # (transformers 5 rebuilds their pre-tokenizer; bertcli.fasttok defers to it)
    assert type(lm.tokenizer).__name__ == "XLMRobertaTokenizer"
    # as xlm-roberta-base does: a lone ▁ with the offsets of the next piece's first character
    assert _pieces(lm, "FC Liverpool won")[:4] == [("▁", (0, 1)), ("FC", (0, 2)), ("▁", (3, 4)), ("L", (3, 4))]
    assert _pieces(lm, "東京タワーは高い")[:2] == [("▁", (0, 1)), ("東京", (0, 2))]
    # and the pipeline's tokenizer (transformers' XLMRobertaTokenizer) gives the same
    enc = pipe.tokenizer("FC Liverpool won", return_offsets_mapping=True)
    assert [tuple(o) for o in enc["offset_mapping"][1:5]] == [(0, 1), (0, 2), (3, 4), (3, 4)]


# ---------------------------------------------------------------- the reported cases

def test_fc_liverpool(hand):
    lm, pipe = hand
    text = "FC Liverpool won"
    got = {s: N.ner(lm, [text], s)[0]["entities"] for s in STRATEGIES}
    assert [(e["entity"], e["word"], e["start"], e["end"]) for e in got["none"]] == [
        ("B-ORG", "FC", 0, 2), ("I-ORG", "L", 3, 4), ("I-ORG", "iver", 4, 8), ("I-ORG", "po", 8, 10),
        ("I-ORG", "ol", 10, 12)]
    assert [(e["entity_group"], e["word"]) for e in got["simple"]] == [("ORG", "FC"), ("ORG", "Liverpool")]
    # The word strategies count ▁ as the first token of its word (the token first-piece
    # training labels); its label here is MISC, and the words are whole.
    for s in ("first", "max"):
        assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in got[s]] == [
            ("MISC", "FC", 0, 2), ("MISC", "Liverpool", 3, 12)], s
    # average: ▁ (B-MISC) and FC (B-ORG) tie, and B-ORG (the lower id) wins; 4 of the 5
    # tokens of the next word are I-ORG, which continues the entity
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in got["average"]] == [
        ("ORG", "FC Liverpool", 0, 12)]
    # The pipeline reports the two ▁ at 0-1 and 3-4, overlapping FC and L: leaving those
    # out gives bertcli's tokens, with the same scores.
    hf = _hf(pipe, text, "none", ignore=("O",))
    real = [h for h in hf if h["word"] != "▁"]
    assert [h for h in hf if h["word"] == "▁"] and _key(real, "entity") == _key(got["none"], "entity")
    assert np.allclose([h["score"] for h in real], [e["score"] for e in got["none"]], atol=1e-5)
    hf = _hf(pipe, text, "simple", ignore=("O",))
    assert [(h["entity_group"], h["start"], h["end"]) for h in hf] == [
        ("MISC", 0, 1), ("ORG", 0, 2), ("MISC", 3, 4), ("ORG", 3, 12)]


def test_cjk_first_character_keeps_its_label(hand):
    lm, pipe = hand
    text = "東京タワーは高い"
    assert [(e["entity"], e["word"]) for e in N.ner(lm, [text], "none")[0]["entities"]] == [("B-LOC", "東京")]
    assert [(e["entity_group"], e["word"]) for e in N.ner(lm, [text], "simple")[0]["entities"]] == [("LOC", "東京")]
    # no space: one word under the pipeline's heuristic, opened by ▁
    assert [(e["entity_group"], e["word"]) for e in N.ner(lm, [text], "first")[0]["entities"]] == [("MISC", text)]
    hf = _hf(pipe, text, "simple", ignore=("O",))
    assert [(h["entity_group"], h["start"], h["end"]) for h in hf] == [("MISC", 0, 1), ("LOC", 0, 2)]


# ---------------------------------------------------------------- against the pipeline

def test_none_is_the_pipeline_without_pseudo_tokens(rand):
    lm, pipe = rand
    n_pseudo = 0
    for text in TEXTS:
        pseudo = _pseudo_indices(lm, text)
        n_pseudo += len(pseudo)
        got = N.ner(lm, [text], "none", ignore_labels=())[0]["entities"]
        hf = [h for h in _hf(pipe, text, "none") if h["index"] not in pseudo]
        assert [(e["index"], e["entity"], e["start"], e["end"]) for e in got] == \
            [(h["index"], h["entity"], h["start"], h["end"]) for h in _as_bertcli(text, hf)], text
        assert np.allclose([e["score"] for e in got], [h["score"] for h in _as_bertcli(text, hf)], atol=1e-4, rtol=0)
    assert n_pseudo >= 10


def test_texts_without_pseudo_tokens_match_the_pipeline(rand):
    # Where the tokenizer makes no pseudo-token, every strategy is the pipeline's (spans
    # widened to grapheme clusters, the documented difference).
    lm, pipe = rand
    clean = [t for t in TEXTS + ["the capital", "and the river", "the capital and the river", "and the capital"]
             if not _pseudo_indices(lm, t) and t.strip()]
    assert len(clean) >= 3, clean
    n = 0
    for text in clean:
        for strategy in STRATEGIES:
            got = N.ner(lm, [text], strategy, ignore_labels=())[0]["entities"]
            hf = _as_bertcli(text, _hf(pipe, text, strategy))
            key = "entity" if strategy == "none" else "entity_group"
            assert _key(got, key) == _key(hf, key), (text, strategy)
            assert np.allclose([e["score"] for e in got], [h["score"] for h in hf], atol=1e-4, rtol=0)
            n += len(got)
    assert n > 20


def _real_token_chars(lm, text):
    """Characters of the real (non-pseudo) tokens, widened to whole clusters."""
    ps = _pieces(lm, text)
    bounds = N.grapheme_bounds(text)
    chars = set()
    for i, (t, (s, e)) in enumerate(ps):
        if not N.is_pseudo_token(text, t, s, e, ps[i + 1][1][0] if i + 1 < len(ps) else None):
            chars.update(range(*N.widen_to_graphemes(bounds, s, e)))
    return chars


WORDS = ["FC", "Liverpool", "東京", "タワー", "Paris", "the", "capital", "Zürich", "👍🏽", "🇫🇷", "é", "Cafe\u0301", "▁",
         "New", "York", ".", ","]


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.lists(st.tuples(st.one_of(st.sampled_from(WORDS), st.text(st.characters(exclude_categories=("Cs",)),
                                                                             min_size=1, max_size=4)),
                               st.sampled_from([" ", "", "  ", "\t"])), max_size=12).map(
    lambda ps: "".join(a + b for a, b in ps)))
def test_no_pseudo_token_takes_a_character(rand, text):
    lm, _ = rand
    real = _real_token_chars(lm, text)
    bounds = {m.start() for m in regex.finditer(r"\X", text)} | {len(text)}
    pseudo = _pseudo_indices(lm, text)
    for strategy in STRATEGIES:
        ents = N.ner(lm, [text], strategy, ignore_labels=())[0]["entities"]
        chars = [i for e in ents for i in range(e["start"], e["end"])]
        for e in ents:
            assert e["word"] == text[e["start"]:e["end"]] and e["start"] in bounds and e["end"] in bounds
        assert len(chars) == len(set(chars))
        visible = {i for i in real if not text[i].isspace()}  # entities leave out surrounding spaces
        if strategy == "none":
            # exactly the real tokens' characters, none of them lost to a ▁
            assert {i for i in chars if not text[i].isspace()} == visible and not {e["index"] for e in ents} & pseudo
        else:
            assert set(chars) >= visible


# ---------------------------------------------------------------- windows and batches

def test_windows_and_batches_with_pseudo_tokens(hand):
    lm, _ = hand  # token-local: windowing must change nothing
    text = " ".join(TEXTS[:3]) * 25
    assert len(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) > 3 * lm.max_length
    wide = dataclasses.replace(lm, max_length=2048)
    for strategy in STRATEGIES:
        windowed = N.ner(lm, [text], strategy, stride=20)[0]["entities"]
        single = N.ner(wide, [text], strategy)[0]["entities"]
        assert [{k: v for k, v in e.items() if k != "score"} for e in windowed] == \
            [{k: v for k, v in e.items() if k != "score"} for e in single]
        assert any(e["word"] in ("FC", "Liverpool", "東京") for e in windowed)
    one = N.ner(lm, TEXTS, "first", opts=StreamOptions(batch_size=1))
    many = N.ner(lm, TEXTS, "first", opts=StreamOptions(batch_size=64, max_tokens=None))
    assert [[(e["entity_group"], e["start"], e["end"]) for e in r["entities"]] for r in one] == \
        [[(e["entity_group"], e["start"], e["end"]) for e in r["entities"]] for r in many]
