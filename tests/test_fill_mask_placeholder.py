"""``--mask-token STR`` (issue #13, item 11): a text marks the masked word with a
placeholder of the user's (``___`` from a quiz, ``[MASK]`` for a RoBERTa model whose mask
is ``<mask>``), read as the model's own mask token. The record's ``text`` stays the user's
text, and ``sequence`` replaces the placeholder's span in it.

References: the same texts written with the model's own mask (bertcli, and the
transformers pipeline for RoBERTa).
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

import bertcli
import hub_layouts as H
from bertcli.cli.main import cli
from bertcli.io.writers import round_floats
from bertcli.loading import load_model
from bertcli.tasks import fill_mask as FM
from test_fill_mask_masks import default_pipeline
from tiny import CORPUS, SPECIALS

TOL = 1e-4
QUIZ = ["The capital of France is ___.", "___ and ___ 😀", 'Café Müller, in ___, serves "crème brûlée".', "___"]


def _invoke(args, input=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input, env={"BERTCLI_MODEL": None},
                             prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res


def _jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def lm(mlm_dir):
    return load_model(mlm_dir, "fill-mask", device="cpu")


def _word(vocab: list[str], token_id: int) -> str:
    """What a token puts in the text: the piece without ``##``; nothing for a special token."""
    piece = vocab[token_id]
    return "" if piece in SPECIALS else piece.removeprefix("##")


def _spans(text: str, placeholder: str) -> list[tuple[int, int]]:
    out, at = [], text.find(placeholder)
    while at >= 0:
        out.append((at, at + len(placeholder)))
        at = text.find(placeholder, at + len(placeholder))
    return out


def _fill(text: str, spans, words) -> str:
    out, at = "", 0
    for (s, e), w in zip(spans, words):
        out, at = out + text[at:s] + w, e
    return out + text[at:]


@pytest.mark.parametrize("joint", [False, True])
def test_placeholder_reads_as_the_models_mask(lm, mlm_dir, joint):
    vocab = (mlm_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    ours = FM.fill_mask(lm, QUIZ, top_k=4, mask_token="___", joint=joint)
    ref = FM.fill_mask(lm, [t.replace("___", "[MASK]") for t in QUIZ], top_k=4, joint=joint)
    for text, o, r in zip(QUIZ, ours, ref):
        # every mask is filled in every sequence, so the two texts give the same record
        assert o == r
        spans = _spans(text, "___")
        words = [_word(vocab, m[0]["token"]) for m in o["predictions"]]
        assert o["sequence"] == _fill(text, spans, words)
        for j, preds in enumerate(o["predictions"]):
            for p in preds:
                assert p["sequence"] == _fill(text, spans, words[:j] + [_word(vocab, p["token"])] + words[j + 1:])
                assert "___" not in p["sequence"]


def test_cli_keeps_the_users_text(lm, mlm_dir):
    res = _invoke(["fill-mask", *QUIZ, "-m", mlm_dir, "--mask-token", "___", "-k", "3", "-f", "jsonl"])
    assert (res.exit_code, res.stderr) == (0, "")
    want = [{"text": t, **round_floats(r, 6)} for t, r in zip(QUIZ, FM.fill_mask(lm, QUIZ, top_k=3, mask_token="___"))]
    assert _jsonl(res.stdout) == want
    assert [r["text"] for r in _jsonl(res.stdout)] == QUIZ


def test_placeholder_and_the_models_mask_in_one_text(lm):
    # the model's own token stays a mask: both are predicted, in text order
    text = "The [MASK] of France is ___."
    [got] = FM.fill_mask(lm, [text], top_k=3, mask_token="___")
    [ref] = FM.fill_mask(lm, ["The [MASK] of France is [MASK]."], top_k=3)
    assert got == ref
    words = [m[0]["sequence"] for m in got["predictions"]]
    assert words[0] == words[1] == got["sequence"]
    assert got["sequence"].startswith("The ") and got["sequence"].endswith(".")
    assert "[MASK]" not in got["sequence"] and "___" not in got["sequence"]


def test_placeholder_in_a_long_text(lm):
    long = " ".join(CORPUS)
    text = "The capital of ___ is Paris. " + long + " The end of ___."
    [got] = FM.fill_mask(lm, [text], top_k=3, mask_token="___")
    [ref] = FM.fill_mask(lm, [text.replace("___", "[MASK]")], top_k=3)
    assert got["truncated"] is True
    assert got == ref
    assert "___" not in got["sequence"] and "[MASK]" not in got["sequence"]


def test_missing_placeholder_is_a_bad_record(mlm_dir):
    lines = "The capital of France is ___.\nno blank here\nAlice was ___.\n"
    res = _invoke(["fill-mask", "-m", mlm_dir, "--mask-token", "___", "-k", "1", "-f", "jsonl"], input=lines)
    assert res.exit_code == 1
    assert [r["text"] for r in _jsonl(res.stdout)] == ["The capital of France is ___."]  # written before it
    assert res.stderr == "Error: <stdin>, line 2: no ___ in the text (write the mask exactly as ___)\n"
    res = _invoke(["fill-mask", "-m", mlm_dir, "--mask-token", "___", "-k", "1", "-f", "jsonl", "--on-error", "skip"],
                  input=lines)
    assert res.exit_code == 0
    assert [r["text"] for r in _jsonl(res.stdout)] == ["The capital of France is ___.", "Alice was ___."]
    err = res.stderr.splitlines()
    assert json.loads(err[0]) == {"error": "no ___ in the text (write the mask exactly as ___)", "line": 2,
                                  "source": "<stdin>"}


def test_api_missing_placeholder_raises(lm):
    from bertcli.errors import InputError

    with pytest.raises(InputError, match=r"^no ___ in the text: 'no blank here'"):
        FM.fill_mask(lm, ["no blank here"], mask_token="___")


@pytest.mark.parametrize("value", ["", "  "])
def test_empty_placeholder_is_a_usage_error(mlm_dir, value):
    res = _invoke(["fill-mask", "a ___ b", "-m", mlm_dir, "--mask-token", value])
    assert (res.exit_code, res.stdout) == (2, "")
    assert res.stderr == "Error: --mask-token is empty; give the placeholder your texts use, e.g. --mask-token ___\n"


def test_the_models_own_mask_as_placeholder_changes_nothing(lm):
    texts = ["The [MASK] of France is [MASK].", "Alice was [MASK]."]
    assert FM.fill_mask(lm, texts, mask_token="[MASK]") == FM.fill_mask(lm, texts)


def test_python_api_takes_the_same_options(lm):
    assert bertcli.fill_mask(lm, QUIZ[:2], top_k=2, mask_token="___", joint=True, whole_words=True) == \
        FM.fill_mask(lm, QUIZ[:2], top_k=2, mask_token="___", joint=True, whole_words=True)


# ---------------------------------------------------------------- RoBERTa: [MASK] for <mask>

@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    return H.build("roberta-base", tmp_path_factory.mktemp("fm-roberta") / "roberta-base")


def test_bracket_mask_on_a_roberta_model_equals_the_pipeline(roberta):
    from transformers import pipeline

    pipe = pipeline("fill-mask", model=str(roberta), device="cpu")
    texts = ["The capital of France is [MASK].", "She opened the [MASK] and walked into the room."]
    res = _invoke(["fill-mask", *texts, "-m", roberta, "--mask-token", "[MASK]", "-k", "5", "-f", "jsonl",
                   "--precision", "8"])
    assert (res.exit_code, res.stderr) == (0, "")
    for text, rec in zip(texts, _jsonl(res.stdout)):
        assert rec["text"] == text
        ref = pipe(text.replace("[MASK]", "<mask>"), top_k=5)
        preds = rec["predictions"][0]
        assert [p["token"] for p in preds] == [p["token"] for p in ref]
        assert [p["token_str"] for p in preds] == [p["token_str"] for p in ref]
        assert [p["score"] for p in preds] == pytest.approx([p["score"] for p in ref], abs=TOL)
        s = text.index("[MASK]")
        for p in preds:
            assert p["sequence"] == text[:s] + p["token_str"].strip() + text[s + len("[MASK]"):]
    # without --mask-token the same text has no mask for this model
    res = _invoke(["fill-mask", texts[0], "-m", roberta])
    assert res.exit_code == 1
    assert res.stderr == "Error: arguments, text 1: no <mask> in the text (write the mask exactly as <mask>)\n"


# ---------------------------------------------------------------- the shipped default

def test_default_model_quiz_blank(minilm_dir, tmp_path_factory):
    pipe = default_pipeline(tmp_path_factory)
    text = "She ___ to work every day."
    res = _invoke(["fill-mask", text, "--mask-token", "___", "-k", "3", "-f", "jsonl"])
    assert (res.exit_code, res.stderr) == (0, "")
    [rec] = _jsonl(res.stdout)
    ref = pipe(text.replace("___", "[MASK]"), top_k=3)
    assert rec["text"] == text
    assert [p["token"] for p in rec["predictions"][0]] == [p["token"] for p in ref]
    assert [p["score"] for p in rec["predictions"][0]] == pytest.approx([p["score"] for p in ref], abs=TOL)
    assert [p["sequence"] for p in rec["predictions"][0]] == [f"She {p['token_str']} to work every day." for p in ref]
    assert rec["sequence"] == f"She {ref[0]['token_str']} to work every day."
