"""NER entity offsets: grapheme clusters are never split, pseudo-tokens take no characters.

Pure tests of :mod:`bertcli.tasks.ner`'s offset logic on hand-made tokens (expectations
computed by hand), hypothesis properties over arbitrary token spans on cluster-rich text,
and the same invariants through a real (tiny BERT) model.
"""

from __future__ import annotations

import numpy as np
import pytest
import regex
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bertcli.loading import load_model
from bertcli.tasks import ner as N

STRATEGIES = N.AGGREGATIONS
LABELS = ["O", "B-X", "I-X", "B-Y", "I-Y"]

ACUTE = "\u0301"
ZWJ = "\u200d"
THUMB_MEDIUM = "👍🏽"  # U+1F44D U+1F3FD: emoji + skin tone
FAMILY = f"👨{ZWJ}👩{ZWJ}👧"  # 5 code points
FLAG_FR = "🇫🇷"  # two regional indicators
FLAG_SCOTLAND = "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f"  # black flag + 6 tag characters


def tok(i, start, end, label, p=0.9, sub=False):
    scores = np.full(len(LABELS), (1 - p) / (len(LABELS) - 1), dtype=np.float32)
    scores[LABELS.index(label)] = p
    return N.Token(i, start, end, sub, scores)


def spans(ents):
    return [(e.get("entity_group", e.get("entity")), e["word"], e["start"], e["end"]) for e in ents]


def cluster_bounds(text):
    """Grapheme boundaries straight from the regex module (the reference for the properties)."""
    return {m.start() for m in regex.finditer(r"\X", text)} | {len(text)}


# ---------------------------------------------------------------- grapheme boundaries by hand

@pytest.mark.parametrize("text, expected", [
    ("Cafe" + ACUTE + "s", [0, 1, 2, 3, 5, 6]),            # e + U+0301 is one cluster (3..5)
    ("a" + THUMB_MEDIUM + "b", [0, 1, 3, 4]),              # emoji + skin tone (1..3)
    ("a" + FAMILY + "b", [0, 1, 6, 7]),                    # ZWJ sequence (1..6)
    (FLAG_FR + FLAG_FR, [0, 2, 4]),                        # regional indicators pair up
    ("x" + FLAG_SCOTLAND, [0, 1, 8]),                      # tag sequence (1..8)
    ("a\r\nb", [0, 1, 3, 4]),                              # CR LF
])
def test_grapheme_bounds_by_hand(text, expected):
    assert N.grapheme_bounds(text) == expected


def test_ascii_needs_no_bounds():
    assert N.grapheme_bounds("Paris and Berlin.\t\n") is None
    assert N.widen_to_graphemes(None, 2, 5) == (2, 5)


@pytest.mark.parametrize("text, span, expected", [
    ("Cafe" + ACUTE, (0, 4), (0, 5)),           # the accent joins the entity ending on its base
    ("Cafe" + ACUTE, (4, 5), (3, 5)),           # an entity of the accent alone takes its base
    ("a" + THUMB_MEDIUM, (1, 2), (1, 3)),
    ("a" + THUMB_MEDIUM, (2, 3), (1, 3)),
    ("a" + FAMILY + "b", (3, 4), (1, 6)),       # the middle of a ZWJ family: all of it
    (FLAG_FR, (0, 1), (0, 2)),
    (FLAG_FR, (1, 2), (0, 2)),
    (FLAG_SCOTLAND + " x", (0, 1), (0, 7)),     # BERT's token for 🏴 (its tags are Cf, dropped)
    ("ab", (0, 1), (0, 1)),
])
def test_widen_by_hand(text, span, expected):
    assert N.widen_to_graphemes(N.grapheme_bounds(text), *span) == expected


# ---------------------------------------------------------------- entities by hand

def test_decomposed_accent_stays_with_its_base():
    # XLM-R's normaliser composes e + U+0301 and gives the token 'é' the span of "e" only.
    text = "Cafe" + ACUTE + " ok"
    toks = [tok(1, 0, 4, "B-X"), tok(2, 6, 8, "O")]
    for strategy in STRATEGIES:
        assert spans(N.decode_entities(text, toks, LABELS, strategy)) == \
            [("B-X" if strategy == "none" else "X", "Cafe" + ACUTE, 0, 5)], strategy


def test_flag_tag_sequence_stays_whole():
    # BERT drops the tag characters (category Cf): its token covers the black flag only.
    text = FLAG_SCOTLAND + " Paris"
    toks = [tok(1, 0, 1, "B-X"), tok(2, 8, 13, "B-Y")]
    got = N.decode_entities(text, toks, LABELS, "simple")
    assert spans(got) == [("X", FLAG_SCOTLAND, 0, 7), ("Y", "Paris", 8, 13)]


@pytest.mark.parametrize("cluster", [THUMB_MEDIUM, FAMILY, FLAG_FR])
def test_pieces_of_one_cluster_give_one_entity(cluster):
    # A tokenizer that splits the cluster into pieces of different labels: the first
    # entity touching it takes all of it, the others are left nothing and dropped.
    text = f"x {cluster} y"
    n = len(cluster)
    pieces = [tok(1, 0, 1, "O")] + [tok(2 + i, 2 + i, 3 + i, "B-X" if i % 2 == 0 else "B-Y") for i in range(n)] + \
        [tok(2 + n, 3 + n, 4 + n, "O")]
    got = N.decode_entities(text, pieces, LABELS, "none")
    assert spans(got) == [("B-X", cluster, 2, 2 + n)]
    got = N.decode_entities(text, pieces, LABELS, "simple")
    assert spans(got) == [("X", cluster, 2, 2 + n)]


def test_entity_starting_inside_a_cluster_after_an_o_takes_the_whole_cluster():
    text = "a" + THUMB_MEDIUM
    toks = [tok(1, 0, 1, "O"), tok(2, 1, 2, "O"), tok(3, 2, 3, "B-X")]
    assert spans(N.decode_entities(text, toks, LABELS, "none")) == [("B-X", THUMB_MEDIUM, 1, 3)]


# ---------------------------------------------------------------- pseudo-tokens by hand

@pytest.mark.parametrize("text, piece, span, next_start, expected", [
    ("FC", "▁", (0, 1), 0, True),         # XLM-R: the inserted marker repeats F's offsets
    ("a FC", "▁", (2, 3), 2, True),
    ("a FC", "▁", (1, 2), 2, True),        # an older Metaspace: the marker covers the space
    ("Paris ", "▁", (5, 6), None, True),   # a trailing space
    ("FC", "FC", (0, 2), None, False),
    ("FC", "▁F", (0, 1), 1, False),        # a real piece that starts a word
    ("a ▁ b", "▁", (2, 3), 4, False),      # a typed ▁ keeps its character
    ("ab", "[UNK]", (1, 1), None, True),   # any empty span
    ("ab", None, (0, 1), 1, False),
])
def test_is_pseudo_token(text, piece, span, next_start, expected):
    assert N.is_pseudo_token(text, piece, *span, next_start) is expected


def test_pseudo_tokens_take_no_characters_from_real_pieces():
    # Tokens as _tokens makes them for XLM-R's "FC Liverpool": ▁ FC ▁ L iver po ol, each
    # ▁ an empty span that opens the word after it.
    text = "FC Liverpool"
    toks = [tok(1, 0, 0, "B-Y"), tok(2, 0, 2, "B-X", sub=True), tok(3, 3, 3, "B-Y"), tok(4, 3, 4, "I-X", sub=True),
            tok(5, 4, 8, "I-X", sub=True), tok(6, 8, 10, "I-X", sub=True), tok(7, 10, 12, "I-X", sub=True)]
    assert spans(N.decode_entities(text, toks, LABELS, "none")) == [
        ("B-X", "FC", 0, 2), ("I-X", "L", 3, 4), ("I-X", "iver", 4, 8), ("I-X", "po", 8, 10), ("I-X", "ol", 10, 12)]
    assert spans(N.decode_entities(text, toks, LABELS, "simple")) == [("X", "FC", 0, 2), ("X", "Liverpool", 3, 12)]
    # the word strategies read ▁, the first token of each word
    for strategy in ("first", "max"):
        assert spans(N.decode_entities(text, toks, LABELS, strategy)) == [("Y", "FC", 0, 2), ("Y", "Liverpool", 3, 12)]
    # a pseudo-token at the end of a group adds no character (no trailing space)
    toks2 = [tok(1, 0, 2, "B-X"), tok(2, 3, 3, "I-X"), tok(3, 3, 12, "O")]
    assert spans(N.decode_entities(text, toks2, LABELS, "simple")) == [("X", "FC", 0, 2)]


# ---------------------------------------------------------------- properties

PROPS = settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
CLUSTER_RICH = st.lists(st.sampled_from(
    ["a", "e", "Z", " ", "\t", "\r", "\n", "\r\n", ACUTE, "\u0308", ZWJ, "👍", "🏽", "👨", "👩", FAMILY, THUMB_MEDIUM,
     "🇫", "🇷", FLAG_FR, "🏴", "\U000e0067", "\U000e007f", FLAG_SCOTLAND, "東", "京", "ก", "\u0e33", "न", "\u094d",
     "\ufe0f", "▁", "."]), min_size=1, max_size=25).map("".join)


@st.composite
def tokenised(draw):
    """A cluster-rich text and tokens as tokenizers give them: starts in order, spans that
    may split clusters, repeat or overlap the previous token (an end past the next start),
    or be empty; random labels."""
    text = draw(CLUSTER_RICH)
    n = len(text)
    toks, pos = [], 0
    for i in range(draw(st.integers(1, 12))):
        start = draw(st.integers(pos, n))
        end = draw(st.integers(start, min(n, start + 4)))
        label = draw(st.sampled_from(LABELS))
        toks.append(tok(i + 1, start, end, label, draw(st.floats(0.3, 0.99)), sub=draw(st.booleans())))
        pos = start
    return text, toks


@PROPS
@given(case=tokenised())
def test_entities_sit_on_grapheme_boundaries(case):
    text, toks = case
    bounds = cluster_bounds(text)
    for strategy in STRATEGIES:
        for ignore in (("O",), ()):
            got = N.decode_entities(text, toks, LABELS, strategy, ignore)
            prev = 0
            for e in got:
                assert prev <= e["start"] < e["end"] <= len(text), e
                assert e["word"] == text[e["start"]:e["end"]]
                assert e["start"] in bounds and e["end"] in bounds, (text, e)
                prev = e["end"]
            if strategy == "none" and not ignore:
                have = [i for e in got for i in range(e["start"], e["end"])]
                assert len(have) == len(set(have)) and set(have) == _reported_chars(text, toks)


def _reported_chars(text, toks) -> set:
    """What strategy "none" reports when no label is ignored: every character of every token,
    once. Each token gives what earlier tokens did not already report, stripped of surrounding
    whitespace and widened to whole clusters (so a token whose earlier part an earlier token's
    cluster took does not start its entity at a space)."""
    want, covered = set(), 0
    for t in toks:
        s, e = max(t.start, covered), t.end
        while s < e and text[s].isspace():
            s += 1
        while e > s and text[e - 1].isspace():
            e -= 1
        if e > s:
            s, e = N.widen_to_graphemes(N.grapheme_bounds(text), s, e)
            s = max(s, covered)
            if e > s:
                want.update(range(s, e))
                covered = e
    return want


def test_a_token_after_a_cluster_an_earlier_token_took_does_not_start_at_a_space():
    # found by the property above: the family emoji (5 code points, one cluster) is cut between
    # two tokens; the first token's entity takes the whole cluster, the second's is what is left
    # after it, " a", stripped to "a"
    text = "aaaaa\U0001F468\u200d\U0001F469\u200d\U0001F467 a"
    toks = [tok(1, 2, 6, "B-X", 0.5), tok(2, 8, 12, "B-X", 0.5)]
    got = N.decode_entities(text, toks, LABELS, "none", ())
    assert [(e["start"], e["end"], e["word"]) for e in got] == [(2, 10, text[2:10]), (11, 12, "a")]
    assert set(i for e in got for i in range(e["start"], e["end"])) == _reported_chars(text, toks)


@pytest.fixture(scope="module")
def bert_ner(ner_dir):
    return load_model(ner_dir, "ner", device="cpu")


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(text=st.one_of(CLUSTER_RICH, st.text(st.characters(exclude_categories=("Cs",)), max_size=40)))
def test_model_entities_never_split_a_cluster(bert_ner, text):
    bounds = cluster_bounds(text)
    for strategy in STRATEGIES:
        for e in N.ner(bert_ner, [text], strategy, ignore_labels=())[0]["entities"]:
            assert e["word"] == text[e["start"]:e["end"]]
            assert e["start"] in bounds and e["end"] in bounds, (text, e)


@pytest.mark.parametrize("text, word", [
    ("Ein Cafe" + ACUTE + " in Paris", "Cafe" + ACUTE),
    (FLAG_SCOTLAND + " Paris", FLAG_SCOTLAND),
    ("東" + ACUTE + "京", "東" + ACUTE),
])
def test_model_tokens_keep_their_marks(bert_ner, text, word):
    # Real BERT offsets that cut a cluster: "Cafe" + U+0301 is [UNK] here, "東" + U+0301
    # is "東" then [UNK], 🏴's tag characters are dropped by the tokenizer.
    got = N.ner(bert_ner, [text], "none", ignore_labels=())[0]["entities"]
    assert word in [e["word"] for e in got], got
