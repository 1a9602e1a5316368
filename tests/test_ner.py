"""bertcli.tasks.ner: parity with the transformers pipeline, offsets, tag schemes, long texts."""

from __future__ import annotations

import dataclasses
import unicodedata
import warnings

import numpy as np
import pytest

from bertcli.errors import InputError
from bertcli.io.readers import Record
from bertcli.loading import load_model
from bertcli.tasks import ner as N
from bertcli.tasks.base import StreamOptions
from tiny import build_model

STRATEGIES = ("none", "simple", "first", "average", "max")

# Plain English, accents, CJK, emoji (in the tiny vocabulary and not: 🎉 is [UNK]),
# several spaces and a tab, words unknown to the vocabulary (many ## pieces), and
# decomposed (NFD) accents, where the token and the text it covers differ in length.
SENTENCES = [
    "Angela Merkel visited Paris on Tuesday with Emmanuel Macron.",
    "Café Müller in Zürich serves crème brûlée to naïve tourists.",
    "東京 は 日本 の 首都 です 。 北京 上海",
    "Emoji 😀 and symbols ™ © appear in tweets from New York 🎉.",
    "Barack   Obama was born in\tHawaii and studied at Columbia University.",
    "Schwarzenegger met Kowalski and Przybylski at Łódź.",
    unicodedata.normalize("NFD", "Café Müller in Zürich"),
]
# Cased, single-spaced, no space before punctuation: here the pipeline's decoded word is
# the text itself (but for a leading "##").
CLEAN = SENTENCES[:4]

UNICODE_CORPUS = SENTENCES + [
    "東京は日本の首都です。北京と上海",
    "👩‍👩‍👧 family 👍🏽 thumbs 🎉🎉 up",
    "İstanbul ve Iğdır, ﬁnance, Straße ẞ ǅ Ωmega",
    "مرحبا بالعالم",
    "नमस्ते दुनिया",
    "  leading and trailing  \t\n",
    "tabs\tand\nnewlines  and   spaces",
    "[SEP] typed [CLS] in the text [MASK]",
    "zero\u200bwidth\u00a0nbsp \ufffd replacement",
    "Pneumonoultramicroscopicsilicovolcanoconiosis " + "x" * 150,
    " ".join(SENTENCES) * 3,  # ~300 tokens: the windowed path
]


def _pipe(model_dir):
    from transformers import pipeline
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipeline("token-classification", model=str(model_dir), device="cpu")


@pytest.fixture(scope="module")
def cased(ner_dir):
    return load_model(ner_dir, "ner"), _pipe(ner_dir)


@pytest.fixture(scope="module")
def uncased(ner_uncased_dir):
    return load_model(ner_uncased_dir, "ner"), _pipe(ner_uncased_dir)


@pytest.fixture(scope="module")
def flat_lm(tmp_path_factory):
    """A NER model whose scores for a token depend on nothing but its id: no encoder
    layers and zeroed position embeddings. Windowing must then be exact, so long-text
    results can be compared to references to float rounding. 2048 positions allow a
    single-pass reference for a ~1,000-token text.

    "." is made an "O" token (its embedding points along the classifier's O row), so
    that it can separate sentences: tiny's vocabulary, hence which token gets which
    random embedding, changes from one build to the next.
    """
    import torch
    from transformers import BertForTokenClassification

    path = build_model(tmp_path_factory.mktemp("ner-flat"), "ner", seed=4, num_hidden_layers=0,
                       max_position_embeddings=2048)
    model = BertForTokenClassification.from_pretrained(str(path))
    emb = model.bert.embeddings
    emb.position_embeddings.weight.data.zero_()
    dot = load_model(path, "ner").tokenizer.convert_tokens_to_ids(".")
    with torch.no_grad():
        emb.word_embeddings.weight[dot] = model.classifier.weight[0] - emb.token_type_embeddings.weight[0]
    model.save_pretrained(str(path), safe_serialization=True)
    lm = load_model(path, "ner")
    assert lm.max_length == 128  # the tokenizer's limit: long texts are windowed
    assert N.ner(lm, ["."], "none", ignore_labels=())[0]["entities"][0]["entity"] == "O"
    return lm


def _hf(pipe, text, strategy):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return pipe(text, aggregation_strategy=strategy)


def _check_offsets(text, ents):
    prev_end = 0
    for e in ents:
        assert 0 <= e["start"] < e["end"] <= len(text), e
        assert e["start"] >= prev_end, ("overlap or unsorted", e)
        assert e["word"] == text[e["start"]:e["end"]]
        assert isinstance(e["score"], float) and 0.0 < e["score"] <= 1.0
        prev_end = e["end"]


# ---------------------------------------------------------------- parity with transformers

@pytest.mark.parametrize("which", ["cased", "uncased"])
def test_parity_with_pipeline(which, request):
    lm, pipe = request.getfixturevalue(which)
    n_entities = widened = 0
    outputs = {}
    for strategy in STRATEGIES:
        ours = N.ner(lm, SENTENCES, strategy)
        outputs[strategy] = ours
        for text, res in zip(SENTENCES, ours):
            assert res["truncated"] is False
            hf = _hf(pipe, text, strategy)
            got = res["entities"]
            key = "entity" if strategy == "none" else "entity_group"
            # bertcli's spans are the pipeline's widened to grapheme cluster boundaries (the
            # NFD sentence: the uncased token "cafe" covers "Cafe" but not the U+0301 after it).
            bounds = N.grapheme_bounds(text)
            assert [(e[key], e["start"], e["end"]) for e in got] == \
                [(h[key], *N.widen_to_graphemes(bounds, int(h["start"]), int(h["end"]))) for h in hf], (strategy, text)
            widened += sum((e["start"], e["end"]) != (int(h["start"]), int(h["end"])) for e, h in zip(got, hf))
            keys = (["entity", "score", "index", "word", "start", "end"] if strategy == "none"
                    else ["entity_group", "score", "word", "start", "end"])
            for e, h in zip(got, hf):
                assert list(e) == keys
                assert abs(e["score"] - float(h["score"])) < 1e-4
                assert e["word"] == text[e["start"]:e["end"]]
                if strategy == "none":
                    assert e["index"] == h["index"]
                if which == "cased" and text in CLEAN:
                    # A group may start inside a word, where the pipeline writes "##".
                    assert e["word"] == h["word"].removeprefix("##")
            n_entities += len(got)
    # The comparison must not be vacuous: entities are found, and the word strategies
    # keep words whole where `simple` may cut them (these names are many ## pieces).
    assert n_entities > 100
    assert outputs["first"] != outputs["simple"]
    assert widened > 0 if which == "uncased" else widened == 0
    text = SENTENCES[5]
    inner = {i for w in ("Schwarzenegger", "Kowalski", "Przybylski")
             for i in range(text.index(w) + 1, text.index(w) + len(w))}
    assert len(lm.tokenizer.tokenize("Schwarzenegger")) > 3
    for strategy in ("first", "average", "max"):
        assert not any(e["start"] in inner or e["end"] in inner for e in outputs[strategy][5]["entities"])


def test_uncased_word_is_original_text(uncased):
    lm, pipe = uncased
    text = "Café Müller in Zürich serves crème brûlée to naïve tourists."
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        hf = pipe(text, aggregation_strategy="simple", ignore_labels=[])
    ours = N.ner(lm, [text], "simple", ignore_labels=())[0]["entities"]
    # The pipeline decodes the normalised tokens ("cafe ..."); bertcli keeps the text.
    assert hf[0]["word"].startswith("cafe") and ours[0]["word"].startswith("Café")
    assert [e["word"] for e in ours] == [text[int(h["start"]):int(h["end"])] for h in hf]
    # With nothing ignored the groups tile the text: every character is reported once.
    assert "".join(e["word"] for e in ours).replace(" ", "") == text.replace(" ", "")


# ---------------------------------------------------------------- offsets

@pytest.mark.parametrize("which", ["cased", "uncased"])
def test_offset_invariant_unicode(which, request):
    lm, _ = request.getfixturevalue(which)
    for strategy in STRATEGIES:
        for ignore in (("O",), ()):
            results = N.ner(lm, UNICODE_CORPUS, strategy, ignore_labels=ignore)
            assert len(results) == len(UNICODE_CORPUS)
            for text, res in zip(UNICODE_CORPUS, results):
                _check_offsets(text, res["entities"])
                if not ignore and text.strip() and strategy == "none":
                    assert res["entities"], text  # every visible text has tokens


def test_empty_and_whitespace(cased):
    lm, _ = cased
    assert N.ner(lm, ["", " ", "\t\n  ", "Paris"], "simple", ignore_labels=())[:3] == \
        [{"entities": [], "truncated": False}] * 3
    assert N.ner(lm, [], "simple") == []


def test_overlapping_token_spans_are_trimmed():
    # Byte-level BPE gives every piece of one emoji the same span; entities must not overlap.
    labels = ["O", "B-X", "B-Y"]
    toks = [N.Token(1, 0, 2, False, np.array([0.1, 0.9, 0.0], np.float32)),
            N.Token(2, 0, 2, False, np.array([0.1, 0.0, 0.9], np.float32)),
            N.Token(3, 1, 4, False, np.array([0.2, 0.0, 0.8], np.float32))]
    got = N.decode_entities("ab c", toks, labels, "none")
    # The third piece's span is trimmed to what "ab" leaves, then stripped of the space.
    assert [(e["entity"], e["index"], e["word"], e["start"], e["end"]) for e in got] == \
        [("B-X", 1, "ab", 0, 2), ("B-Y", 3, "c", 3, 4)]


def test_entity_after_a_shared_character_has_no_leading_space():
    """ModernBERT's byte-level pieces keep the space before a word in their offsets
    ("Ġwas" over " was") and cut 京 into three pieces over one character. When the last
    piece of 京 and the next word make one entity, that entity starts where the earlier one
    (京) ends, at the space: the space is left out (found with a small fixture vocabulary)."""
    text = "in 東京 was"
    labels = ["O", "B-LOC", "B-ORG", "I-ORG"]
    p = {lab: np.eye(len(labels), dtype=np.float32)[i] * 0.9 + 0.025 for i, lab in enumerate(labels)}
    toks = [N.Token(1, 0, 2, False, p["O"]),
            N.Token(2, 3, 4, False, p["O"]),
            N.Token(3, 4, 5, False, p["B-LOC"]), N.Token(4, 4, 5, False, p["B-LOC"]),
            N.Token(5, 4, 5, False, p["B-ORG"]),
            N.Token(6, 5, 9, False, p["I-ORG"])]
    got = N.decode_entities(text, toks, labels, "simple")
    assert [(e["entity_group"], e["word"], e["start"], e["end"]) for e in got] == \
        [("LOC", "京", 4, 5), ("ORG", "was", 6, 9)]


# ---------------------------------------------------------------- batching

def test_batch_size_invariance(cased):
    lm, _ = cased
    texts = UNICODE_CORPUS + SENTENCES
    for strategy in ("none", "average"):
        one = N.ner(lm, texts, strategy, opts=StreamOptions(batch_size=1))
        many = N.ner(lm, texts, strategy, opts=StreamOptions(batch_size=64, max_tokens=None))
        for a, b in zip(one, many):
            assert [{k: v for k, v in e.items() if k != "score"} for e in a["entities"]] == \
                [{k: v for k, v in e.items() if k != "score"} for e in b["entities"]]
            assert np.allclose([e["score"] for e in a["entities"]], [e["score"] for e in b["entities"]],
                               atol=1e-5, rtol=0)


def test_stream_keeps_order_and_error_records(cased):
    lm, _ = cased
    recs = [Record(0, 1, SENTENCES[0]), Record(1, 2, error="invalid UTF-8 at byte 3"), Record(2, 3, ""),
            Record(3, 4, SENTENCES[3])]
    out = list(N.stream(lm, iter(recs), "first", opts=StreamOptions(window=2)))
    assert [r.index for r, _ in out] == [0, 1, 2, 3]
    assert out[1][1] is None and out[2][1] == {"entities": [], "truncated": False}
    assert out[0][1] == N.ner(lm, [SENTENCES[0]], "first")[0]
    assert out[3][1] == N.ner(lm, [SENTENCES[3]], "first")[0]


def test_stream_validates_before_reading(cased):
    lm, _ = cased

    def records():
        raise AssertionError("input read before the options were checked")
        yield  # pragma: no cover

    with pytest.raises(InputError, match="stride"):
        N.stream(lm, records(), stride=500)
    with pytest.raises(InputError, match="aggregation"):
        N.stream(lm, records(), aggregation="longest")


# ---------------------------------------------------------------- long texts

def _long_text(lm, sep):
    sentences = [s for s in SENTENCES if "  " not in s and "\t" not in s]
    parts, starts, pos = [], [], 0
    while len(lm.tokenizer(f" {sep} ".join(parts), add_special_tokens=False)["input_ids"]) < 1000:
        s = sentences[len(parts) % len(sentences)]
        starts.append(pos)
        parts.append(s)
        pos += len(s) + len(sep) + 2
    return f" {sep} ".join(parts), parts, starts


def _same(a, b, tol):
    assert [{k: v for k, v in e.items() if k != "score"} for e in a] == \
        [{k: v for k, v in e.items() if k != "score"} for e in b]
    assert np.allclose([e["score"] for e in a], [e["score"] for e in b], atol=tol, rtol=0)


@pytest.mark.parametrize("strategy", STRATEGIES)
def test_long_text_matches_sentences_alone(flat_lm, strategy):
    lm = flat_lm
    text, parts, starts = _long_text(lm, ".")  # "." is O in flat_lm: no group crosses sentences
    docs, feats = N.encode(lm, [text], N.resolve_stride(lm, None))
    assert len(docs[0].ids) >= 1000 and len(feats) >= 10  # really windowed
    got = N.ner(lm, [text], strategy)[0]
    assert got["truncated"] is False
    _check_offsets(text, got["entities"])
    alone = N.ner(lm, parts, strategy)
    expected = []
    for part, start, res in zip(parts, starts, alone):
        n_before = len(lm.tokenizer(text[:start], add_special_tokens=False)["input_ids"])
        for e in res["entities"]:
            e = dict(e, start=e["start"] + start, end=e["end"] + start)
            if "index" in e:
                e["index"] += n_before
            expected.append(e)
    assert len(expected) > len(parts)
    # The model sees each token alone, so only float rounding (padding, batch shape)
    # may differ: any larger gap means a token was taken from the wrong place.
    _same(got["entities"], expected, 1e-5)


@pytest.mark.parametrize("stride", [None, 0, 1, 60, 125])
def test_long_text_windows_match_single_pass(flat_lm, stride):
    # Same model allowed 2048 tokens at once: the windowed run must equal it for every
    # strategy, groups crossing window edges included (no loss, no duplicate).
    lm = flat_lm
    text = " ".join(SENTENCES[:6]) * 6
    if stride == 125:  # one window per token: keep the text short
        text = " ".join(SENTENCES[:6]) * 2
    wide = dataclasses.replace(lm, max_length=2048)
    for strategy in STRATEGIES:
        windowed = N.ner(lm, [text], strategy, stride=stride, ignore_labels=())[0]["entities"]
        single = N.ner(wide, [text], strategy, ignore_labels=())[0]["entities"]
        _same(windowed, single, 1e-5)


def test_long_text_contextual_model(cased):
    lm, _ = cased
    text = " ".join(SENTENCES) * 9
    n = len(lm.tokenizer(text, add_special_tokens=False)["input_ids"])
    assert n > 6 * lm.max_length
    every = N.ner(lm, [text], "none", ignore_labels=())[0]["entities"]
    # Every token once, in order, whatever window it was scored in.
    assert [e["index"] for e in every] == list(range(1, n + 1))
    for strategy in STRATEGIES:
        _check_offsets(text, N.ner(lm, [text], strategy)[0]["entities"])


def test_stitch_takes_each_token_from_its_most_central_window():
    n, span, stride = 10, 4, 2
    starts = N.window_starts(n, span, stride)
    assert starts == [0, 2, 4, 6]
    wins = [np.full((span, 1), k, dtype=np.float32) for k in range(len(starts))]
    got = N.stitch_windows(n, starts, span, wins)[:, 0].astype(int).tolist()
    # Token 3: edge of window 0, one token from window 1's cut -> window 1. Tokens
    # 0-1 and 8-9 touch only the text's own ends, which are not cuts.
    assert got == [0, 0, 0, 1, 1, 2, 2, 3, 3, 3]
    # Odd overlap (tokens 2-4): token 3 is one token from either cut; the earlier window wins.
    starts = N.window_starts(7, 5, 3)
    assert starts == [0, 2]
    wins = [np.full((5, 1), k, dtype=np.float32) for k in range(2)]
    assert N.stitch_windows(7, starts, 5, wins)[:, 0].astype(int).tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert N.window_starts(5, 4, 2) == [0, 1]
    assert N.window_starts(4, 4, 2) == [0]


def test_stride_validation(cased):
    lm, _ = cased
    for bad in (126, 500, -1, 1.5, True):
        with pytest.raises(InputError, match="stride must be an integer from 0 to 125"):
            N.ner(lm, ["Paris"], stride=bad)
    assert N.resolve_stride(lm, None) == 32
    assert N.resolve_stride(lm, 125) == 125


def test_unknown_aggregation(cased):
    lm, _ = cased
    with pytest.raises(InputError, match="unknown aggregation strategy 'longest'"):
        N.ner(lm, ["Paris"], "longest")
    assert N.ner(lm, ["Paris"], "SIMPLE") == N.ner(lm, ["Paris"], "simple")


# ---------------------------------------------------------------- tag schemes (pure)

def _tokens(text, labels, tags):
    """One token per space-separated word, scored `p` on its tag (the rest spread evenly)."""
    out, pos = [], 0
    for i, (piece, (tag, p)) in enumerate(zip(text.split(" "), tags)):
        scores = np.full(len(labels), (1 - p) / (len(labels) - 1), dtype=np.float32)
        scores[labels.index(tag)] = p
        out.append(N.Token(i + 1, pos, pos + len(piece), False, scores))
        pos += len(piece) + 1
    return out


def _groups(ents):
    return [(e["entity_group"], e["word"], e["start"], e["end"], round(e["score"], 6)) for e in ents]


def test_iob1_grouping():
    labels = ["O", "I-PER", "B-PER", "I-LOC", "B-LOC"]
    text = "Ann Lee Bob Ray met Rome"
    toks = _tokens(text, labels, [("I-PER", .9), ("I-PER", .7), ("B-PER", .8), ("I-PER", .6), ("O", .9),
                                  ("I-LOC", .5)])
    assert not N.is_bioes(labels)
    # IOB1: I- opens an entity; B- only separates two adjacent entities of one type.
    assert _groups(N.decode_entities(text, toks, labels, "simple")) == [
        ("PER", "Ann Lee", 0, 7, 0.8), ("PER", "Bob Ray", 8, 15, 0.7), ("LOC", "Rome", 20, 24, 0.5)]


def test_iob2_consecutive_b_are_two_entities():
    labels = ["O", "B-PER", "I-PER"]
    text = "Ann Bob Lee"
    toks = _tokens(text, labels, [("B-PER", .9), ("B-PER", .7), ("I-PER", .5)])
    assert _groups(N.decode_entities(text, toks, labels, "simple")) == [
        ("PER", "Ann", 0, 3, 0.9), ("PER", "Bob Lee", 4, 11, 0.6)]


def test_bioes_grouping():
    labels = ["O", "B-PER", "I-PER", "E-PER", "S-PER", "B-LOC", "I-LOC", "E-LOC", "S-LOC"]
    text = "Ann Lee Ray Bob Rome Oslo New York City"
    toks = _tokens(text, labels, [("B-PER", .9), ("I-PER", .8), ("E-PER", .7), ("S-PER", .6), ("S-LOC", .9),
                                  ("S-LOC", .5), ("B-LOC", .8), ("E-LOC", .6), ("I-LOC", .4)])
    assert N.is_bioes(labels)
    # E- closes its entity, S- is an entity alone, so "City" after E-LOC opens a new one.
    assert _groups(N.decode_entities(text, toks, labels, "simple")) == [
        ("PER", "Ann Lee Ray", 0, 11, 0.8), ("PER", "Bob", 12, 15, 0.6), ("LOC", "Rome", 16, 20, 0.9),
        ("LOC", "Oslo", 21, 25, 0.5), ("LOC", "New York", 26, 34, 0.7), ("LOC", "City", 35, 39, 0.4)]
    none = N.decode_entities(text, toks, labels, "none")
    assert [e["entity"] for e in none][:4] == ["B-PER", "I-PER", "E-PER", "S-PER"]


def test_bilou_and_stray_tags():
    labels = ["O", "B-ORG", "I-ORG", "L-ORG", "U-ORG", "B-PER", "I-PER", "L-PER", "U-PER"]
    text = "Acme Corp Inc Bob Lee Ann"
    toks = _tokens(text, labels, [("B-ORG", .8), ("I-ORG", .6), ("L-ORG", .4), ("U-PER", .9), ("L-PER", .7),
                                  ("L-PER", .5)])
    # A stray L-/E- (nothing open to close) is an entity of its own, as a stray I- is.
    assert _groups(N.decode_entities(text, toks, labels, "simple")) == [
        ("ORG", "Acme Corp Inc", 0, 13, 0.6), ("PER", "Bob", 14, 17, 0.9), ("PER", "Lee", 18, 21, 0.7),
        ("PER", "Ann", 22, 25, 0.5)]


def test_plain_labels_group_like_the_pipeline():
    labels = ["O", "PER", "LOC", "S-LOC"]  # no B-/I- tags: "S-LOC" is a plain label too
    assert not N.is_bioes(labels)
    text = "Ann Lee in Rome Oslo"
    toks = _tokens(text, labels, [("PER", .9), ("PER", .5), ("O", .9), ("LOC", .8), ("S-LOC", .6)])
    assert _groups(N.decode_entities(text, toks, labels, "simple")) == [
        ("PER", "Ann Lee", 0, 7, 0.7), ("LOC", "Rome", 11, 15, 0.8), ("S-LOC", "Oslo", 16, 20, 0.6)]


def test_word_strategies_by_hand():
    # The pipeline's docstring case: micro|soft| com|pany| with disagreeing pieces.
    labels = ["O", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    text = "Microsoft company"
    spans = [(0, 5, False), (5, 9, True), (10, 13, False), (13, 17, True)]
    rows = [[0, .7, 0, 0, .3], [0, .2, 0, 0, .8], [.4, 0, .6, 0, 0], [.1, 0, .9, 0, 0]]
    toks = [N.Token(i + 1, s, e, sub, np.array(r, np.float32)) for i, ((s, e, sub), r) in enumerate(zip(spans, rows))]

    def run(strategy):
        return _groups(N.decode_entities(text, toks, labels, strategy))

    assert run("simple") == [("ORG", "Micro", 0, 5, 0.7), ("PER", "soft", 5, 9, 0.8), ("ORG", "company", 10, 17, 0.75)]
    assert run("first") == [("ORG", "Microsoft company", 0, 17, 0.65)]
    assert run("average") == [("PER", "Microsoft", 0, 9, 0.55), ("ORG", "company", 10, 17, 0.75)]
    assert run("max") == [("PER", "Microsoft", 0, 9, 0.8), ("ORG", "company", 10, 17, 0.9)]
    none = N.decode_entities(text, toks, labels, "none", ignore_labels=("O", "I-ORG"))
    assert [(e["entity"], e["index"], e["word"]) for e in none] == [("B-ORG", 1, "Micro"), ("I-PER", 2, "soft")]
