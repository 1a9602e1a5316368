"""``is_subword`` and ``--whole-words`` (issue #13, item 10).

A candidate that continues the word before the mask carries ``is_subword: true``:
WordPiece ``##`` pieces (``##ley``) anywhere; for byte-level BPE (RoBERTa, ``Ġ``) and
SentencePiece (ALBERT, ``▁``) a piece without the word-start marker when the mask follows a
word (at the start of a text or after punctuation such a piece begins a word). Punctuation
alone never continues a word. ``--whole-words`` keeps the whole-word candidates (not
``is_subword``, no special token): the top-k of the same ranking, same scores.

Expected flags are computed from the vocabulary files / transformers' tokenizer, not from
bertcli.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import hub_layouts as H
from bertcli.cli.main import cli
from bertcli.io.writers import round_floats
from bertcli.loading import load_model
from bertcli.tasks import fill_mask as FM
from test_fill_mask_masks import default_pipeline
from tiny import SPECIALS

TOL = 1e-4
WP_TEXTS = ["The capital of France is [MASK].", "Café Müller in Zü[MASK] serves crème.",
            "un[MASK] unhappiness", "The [MASK] of France is [MASK]."]


def _invoke(args):
    res = CliRunner().invoke(cli, [str(a) for a in args], env={"BERTCLI_MODEL": None}, prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res


@pytest.fixture(scope="module")
def wp(mlm_dir):
    vocab = (mlm_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    return load_model(mlm_dir, "fill-mask", device="cpu"), vocab


def _all(lm, text, **kw):
    """Every candidate of every mask of ``text``, best first."""
    return FM.fill_mask(lm, [text], top_k=len(lm.tokenizer), **kw)[0]


def _whole(ranked: list[dict], subword, special, k: int) -> list[tuple[int, float]]:
    return [(p["token"], p["score"]) for p in ranked if not subword(p["token"]) and p["token"] not in special][:k]


# ---------------------------------------------------------------- WordPiece

@pytest.mark.parametrize("text", WP_TEXTS)
def test_wordpiece_double_hash_pieces_are_subwords(wp, text):
    lm, vocab = wp
    res = _all(lm, text)
    flags = [(p["is_subword"], vocab[p["token"]].startswith("##") and len(vocab[p["token"]]) > 2)
             for preds in res["predictions"] for p in preds]
    assert all(got == want for got, want in flags)
    assert any(got for got, _ in flags) and not all(got for got, _ in flags)


@pytest.mark.parametrize("text", WP_TEXTS)
def test_whole_words_is_the_top_k_of_the_whole_words_same_scores(wp, text):
    lm, vocab = wp
    special = {vocab.index(s) for s in SPECIALS}
    full = _all(lm, text)
    got = FM.fill_mask(lm, [text], top_k=5, whole_words=True)[0]
    for ranked, preds in zip(full["predictions"], got["predictions"]):
        want = _whole(ranked, lambda i: vocab[i].startswith("##") and len(vocab[i]) > 2, special, 5)
        assert [(p["token"], p["score"]) for p in preds] == want  # same floats: one softmax, filtered
        assert not any(p["is_subword"] for p in preds)
    # the sequences use the whole-word top-1 of the other masks
    top1 = [vocab[preds[0]["token"]] for preds in got["predictions"]]
    assert got["sequence"] == "".join(p + w for p, w in zip(text.split("[MASK]"), top1 + [""]))


def test_whole_words_changes_the_top_k_where_pieces_rank_high(wp):
    lm, _ = wp
    text = WP_TEXTS[0]  # its top-5 holds [CLS] and ##ness
    plain = FM.fill_mask(lm, [text], top_k=5)[0]["predictions"][0]
    whole = FM.fill_mask(lm, [text], top_k=5, whole_words=True)[0]["predictions"][0]
    assert any(p["is_subword"] for p in plain)
    assert [p["token_str"] for p in whole] != [p["token_str"] for p in plain]
    assert len(whole) == 5


def test_whole_words_scores_are_the_pipelines(mlm_dir, wp):
    from transformers import pipeline

    lm, _ = wp
    text = WP_TEXTS[1]
    pipe = pipeline("fill-mask", model=str(mlm_dir), device="cpu")
    ref = {p["token"]: p["score"] for p in pipe(text, top_k=len(pipe.tokenizer))}
    for p in FM.fill_mask(lm, [text], top_k=10, whole_words=True)[0]["predictions"][0]:
        assert p["score"] == pytest.approx(ref[p["token"]], abs=TOL)


def test_cli_whole_words(mlm_dir, wp):
    lm, _ = wp
    res = _invoke(["fill-mask", *WP_TEXTS, "-m", mlm_dir, "-k", "3", "--whole-words", "-f", "jsonl"])
    assert (res.exit_code, res.stderr) == (0, "")
    want = [{"text": t, **round_floats(r, 6)} for t, r in
            zip(WP_TEXTS, FM.fill_mask(lm, WP_TEXTS, top_k=3, whole_words=True))]
    assert [json.loads(line) for line in res.stdout.splitlines()] == want


def test_cli_whole_words_with_targets_is_a_usage_error(mlm_dir):
    res = _invoke(["fill-mask", "a [MASK] b", "-m", mlm_dir, "--targets", "Paris,Berlin", "--whole-words"])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr == ("Error: --whole-words and --targets do not combine: the targets already are the "
                          "candidates; list only whole words in --targets, or drop one of the options\n")


def test_api_whole_words_with_targets_raises(wp):
    from bertcli.errors import UsageError

    with pytest.raises(UsageError, match="do not combine"):
        FM.fill_mask(wp[0], ["a [MASK] b"], targets=["Paris"], whole_words=True)


# ---------------------------------------------------------------- byte-level BPE and SentencePiece

@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    root = tmp_path_factory.mktemp("fill-mask-layouts")
    return {name: H.build(name, root / name) for name in ("roberta-base", "albert-base-v2")}


def _expected_flag(tok, marker: str, token_id: int, after_word: bool) -> bool:
    """From transformers' tokenizer: a piece without the word-start marker that holds a
    letter or digit (a byte-level piece holding part of a character's bytes decodes to
    U+FFFD and counts as a fragment of a letter), right after a word."""
    if token_id in set(tok.all_special_ids):
        return False
    piece = tok.convert_ids_to_tokens(token_id)
    text = tok.decode([token_id])
    wordish = "\ufffd" in text or any(c.isalnum() for c in text)
    return after_word and not piece.startswith(marker) and wordish


CASES = [("The capital of France is {m}.", True), ("{m} is the capital of France.", False),
         ('"{m}" she said.', False), ("She opened the door,{m} and left.", False), ("opened{m}", True)]


@pytest.mark.parametrize("name,marker", [("roberta-base", "Ġ"), ("albert-base-v2", "▁")])
def test_marker_schemes(layouts, name, marker):
    from transformers import AutoTokenizer

    folder = layouts[name]
    tok = AutoTokenizer.from_pretrained(str(folder))
    lm = load_model(folder, "fill-mask", device="cpu")
    assert lm.tokenizer.mask_token == tok.mask_token
    special = set(tok.all_special_ids)
    for template, after in CASES:
        text = template.format(m=tok.mask_token)
        ranked = _all(lm, text)["predictions"][0]
        assert len(ranked) == len(tok)
        flags = [p["is_subword"] for p in ranked]
        assert flags == [_expected_flag(tok, marker, p["token"], after) for p in ranked], text
        assert any(flags) == after
        whole = FM.fill_mask(lm, [text], top_k=5, whole_words=True)[0]["predictions"][0]
        want = _whole(ranked, lambda i: _expected_flag(tok, marker, i, after), special, 5)
        assert [(p["token"], p["score"]) for p in whole] == want


def test_roberta_subword_scores_are_the_pipelines(layouts):
    from transformers import pipeline

    folder = layouts["roberta-base"]
    pipe = pipeline("fill-mask", model=str(folder), device="cpu")
    text = "The capital of France is <mask>."
    ref = pipe(text, top_k=5)
    ours = FM.fill_mask(load_model(folder, "fill-mask", device="cpu"), [text], top_k=5)[0]["predictions"][0]
    assert [p["token"] for p in ours] == [p["token"] for p in ref]
    assert [p["token_str"] for p in ours] == [p["token_str"] for p in ref]
    assert [p["score"] for p in ours] == pytest.approx([p["score"] for p in ref], abs=TOL)
    assert [p["is_subword"] for p in ours] == [not p["token_str"].startswith(" ") for p in ref]


# ---------------------------------------------------------------- the shipped default

def test_default_model_subwords_and_whole_words(minilm_dir, tmp_path_factory):
    pipe = default_pipeline(tmp_path_factory)
    text = "I met Mr. Green[MASK] yesterday."
    res = _invoke(["fill-mask", text, "-k", "5", "-f", "jsonl"])
    assert (res.exit_code, res.stderr) == (0, "")
    preds = json.loads(res.stdout)["predictions"][0]
    ref = pipe(text, top_k=len(pipe.tokenizer))
    assert [p["token"] for p in preds] == [p["token"] for p in ref[:5]]
    assert [p["is_subword"] for p in preds] == [p["token_str"].startswith("##") for p in ref[:5]]
    assert any(p["is_subword"] for p in preds)  # ##ley, ##by, ...
    res = _invoke(["fill-mask", text, "-k", "5", "--whole-words", "-f", "jsonl"])
    assert (res.exit_code, res.stderr) == (0, "")
    whole = json.loads(res.stdout)["predictions"][0]
    special = set(pipe.tokenizer.all_special_ids)
    want = [p for p in ref if not p["token_str"].startswith("##") and p["token"] not in special][:5]
    assert [p["token"] for p in whole] == [p["token"] for p in want]
    assert [p["score"] for p in whole] == pytest.approx([p["score"] for p in want], abs=TOL)
    assert not any(p["is_subword"] for p in whole)


# ---------------------------------------------------------------- schemes without a model here

class _Vocab:
    """The two things subword_pieces reads from a tokenizer."""

    def __init__(self, pieces, special=()):
        self._v = {p: i for i, p in enumerate(pieces)}
        self.all_special_ids = [self._v[s] for s in special]

    def get_vocab(self):
        return dict(self._v)


def test_fastbpe_pieces_ending_in_at_at_are_subwords():
    # BERTweet / PhoBERT (fastBPE): 'hel@@ lo' is one word; a piece ending in @@ is never a whole word
    tok = _Vocab(["<s>", "</s>", "<mask>", "hel@@", "lo", "world", "@@", "wor@@", ","], special=["<s>", "</s>", "<mask>"])
    p = FM.subword_pieces(tok)
    assert p.scheme == "@@"
    assert [FM.is_subword(p, i, after) for after in (False, True) for i in range(9)] == \
        [False, False, False, True, False, False, False, True, False] * 2
    assert FM.whole_word_ids(tok, range(9), True) == [4, 5, 6, 8]


def test_a_vocabulary_without_markers_has_no_subwords():
    tok = _Vocab(["[CLS]", "[MASK]", "a", "b", "東", "京"], special=["[CLS]", "[MASK]"])
    p = FM.subword_pieces(tok)
    assert p.scheme is None
    assert not any(FM.is_subword(p, i, True) for i in range(6))
    assert FM.whole_word_ids(tok, range(6), True) == [2, 3, 4, 5]
