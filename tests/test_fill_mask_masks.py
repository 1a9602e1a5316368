"""Several masks in one text (issue #13, item 9).

* Each prediction's ``sequence`` fills its own mask with it and every other mask with that
  mask's top-1, and the record carries one ``sequence`` with every mask filled: no
  ``[MASK]`` is left in any of them.
* ``--joint``: dependent decoding (the iterative scheme of transformers#10158): fill the
  mask whose top-1 is most probable, run the model again with it filled, repeat. The
  reference here is transformers' ``BertForMaskedLM`` (or the fill-mask pipeline, on the
  shipped default) run by hand in that loop.
"""

from __future__ import annotations

import json
import re

import pytest
import torch
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.io.writers import round_floats
from bertcli.loading import load_model
from bertcli.tasks import fill_mask as FM
from bertcli.tasks.base import StreamOptions
from tiny import CORPUS, SPECIALS

MULTI = ["The [MASK] of France is [MASK].", "[MASK] [MASK] [MASK]",
         "It was the [MASK] of times, it was the worst of [MASK].", "Alice was [MASK] to get very [MASK] of sitting."]
SINGLE = ["The capital of France is [MASK].", "Café Müller in [MASK] serves crème brûlée.", "[MASK]"]
LONG = " ".join(CORPUS)  # ~225 tokens: past the tiny models' 128
TOL = 1e-4


@pytest.fixture(scope="module", params=["native", "transformers"])
def lm(request, mlm_dir):
    mp = pytest.MonkeyPatch()
    mp.setenv("BERTCLI_BACKEND", request.param)
    try:
        model = load_model(mlm_dir, "fill-mask", device="cpu")
    finally:
        mp.undo()
    assert model.native == (request.param == "native")
    return model


@pytest.fixture(scope="module")
def hf(mlm_dir):
    from transformers import AutoTokenizer, BertForMaskedLM

    return AutoTokenizer.from_pretrained(str(mlm_dir)), BertForMaskedLM.from_pretrained(str(mlm_dir)).eval()


def _word(vocab: list[str], token_id: int) -> str:
    """What a token puts in the text: the piece without ``##``; nothing for a special token."""
    piece = vocab[token_id]
    return "" if piece in SPECIALS else piece[2:] if piece.startswith("##") else piece


def _filled(text: str, words: list[str], mask: str = "[MASK]") -> str:
    parts = text.split(mask)
    assert len(parts) == len(words) + 1
    return "".join(p + w for p, w in zip(parts, words + [""]))


def _ranked(preds: list[dict]) -> list[tuple]:
    return [(p["token"], p["score"], p["is_subword"]) for p in preds]


def hand_joint(tok, model, text: str, top_k: int):
    """Dependent decoding by hand on transformers' model: {mask number: (top-k ids, their
    softmax probabilities)} from the pass that filled it, and the order they were filled in."""
    ids = tok(text)["input_ids"]
    pos = [i for i, t in enumerate(ids) if t == tok.mask_token_id]
    left, got, order = list(range(len(pos))), {}, []
    while left:
        with torch.no_grad():
            probs = model(torch.tensor([ids])).logits[0].softmax(-1)
        best = max(left, key=lambda j: (probs[pos[j]].max().item(), -j))  # the first on a tie
        vals, idx = probs[pos[best]].topk(top_k)
        got[best] = (idx.tolist(), vals.tolist())
        ids[pos[best]] = idx[0].item()
        left.remove(best)
        order.append(best)
    return got, order


# ---------------------------------------------------------------- independent (the default)

@pytest.mark.parametrize("text", MULTI)
def test_sequences_fill_the_other_masks_with_their_top1(lm, mlm_dir, text):
    vocab = (mlm_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    [res] = FM.fill_mask(lm, [text], top_k=4)
    top1 = [_word(vocab, preds[0]["token"]) for preds in res["predictions"]]
    assert res["sequence"] == _filled(text, top1)
    for j, preds in enumerate(res["predictions"]):
        for p in preds:
            assert p["sequence"] == _filled(text, top1[:j] + [_word(vocab, p["token"])] + top1[j + 1:])
            assert "[MASK]" not in p["sequence"]
    assert "[MASK]" not in res["sequence"]


def test_independent_predictions_are_the_pipelines(lm, mlm_dir):
    """Filling the other masks in ``sequence`` changes no prediction: each mask's list is
    still the pipeline's (which predicts every mask with the others left masked)."""
    from transformers import pipeline

    pipe = pipeline("fill-mask", model=str(mlm_dir), device="cpu")
    for text in MULTI:
        [res] = FM.fill_mask(lm, [text], top_k=5)
        for ours, ref in zip(res["predictions"], pipe(text, top_k=5)):
            assert [p["token"] for p in ours] == [p["token"] for p in ref]
            assert [p["score"] for p in ours] == pytest.approx([p["score"] for p in ref], abs=TOL)


# ---------------------------------------------------------------- --joint

@pytest.mark.parametrize("text", MULTI)
def test_joint_is_iterative_decoding_by_hand(lm, hf, mlm_dir, text):
    tok, model = hf
    vocab = (mlm_dir / "vocab.txt").read_text(encoding="utf-8").split("\n")
    want, order = hand_joint(tok, model, text, 5)
    [res] = FM.fill_mask(lm, [text], top_k=5, joint=True)
    assert len(res["predictions"]) == len(want) == text.count("[MASK]")
    for j, preds in enumerate(res["predictions"]):
        ids, probs = want[j]
        assert [p["token"] for p in preds] == ids
        assert [p["score"] for p in preds] == pytest.approx(probs, abs=TOL)
    chosen = [_word(vocab, want[j][0][0]) for j in range(len(want))]
    assert res["sequence"] == _filled(text, chosen)
    for j, preds in enumerate(res["predictions"]):
        for p in preds:  # its own word, and the words --joint filled the other masks with
            assert p["sequence"] == _filled(text, chosen[:j] + [_word(vocab, p["token"])] + chosen[j + 1:])
    # the first mask filled comes from the first pass: exactly the independent prediction
    [ind] = FM.fill_mask(lm, [text], top_k=5)
    assert _ranked(res["predictions"][order[0]]) == _ranked(ind["predictions"][order[0]])


def test_joint_conditions_later_masks_on_earlier_fills(lm, hf):
    # 'The [MASK] of France is [MASK].': the second mask filled is predicted with the first
    # one's word in place, so its scores are those of that filled text, not the independent ones
    tok, model = hf
    text = MULTI[0]
    _, order = hand_joint(tok, model, text, 1)
    [res] = FM.fill_mask(lm, [text], top_k=3, joint=True)
    [ind] = FM.fill_mask(lm, [text], top_k=3)
    first, second = order
    # the first-filled mask holds its top-1 token (by id, as --joint feeds it to the model)
    ids = tok(text)["input_ids"]
    pos = [i for i, t in enumerate(ids) if t == tok.mask_token_id]
    ids[pos[first]] = res["predictions"][first][0]["token"]
    with torch.no_grad():
        probs = model(torch.tensor([ids])).logits[0, pos[second]].softmax(-1)
    vals, idx = probs.topk(3)
    assert [p["token"] for p in res["predictions"][second]] == idx.tolist()
    assert [p["score"] for p in res["predictions"][second]] == pytest.approx(vals.tolist(), abs=TOL)
    assert res["predictions"][second] != ind["predictions"][second]


def test_joint_on_one_mask_is_the_independent_result(lm):
    assert FM.fill_mask(lm, SINGLE, top_k=5, joint=True) == FM.fill_mask(lm, SINGLE, top_k=5)


def test_joint_long_text_masks_in_separate_windows(lm):
    # 200+ tokens apart: no window holds the other mask, so filling one changes nothing for
    # the other and --joint gives exactly the independent result
    text = "The [MASK] of France is Paris. " + LONG + " The end of [MASK]."
    [ind] = FM.fill_mask(lm, [text], top_k=3)
    [joint] = FM.fill_mask(lm, [text], top_k=3, joint=True)
    assert ind["truncated"] is joint["truncated"] is True
    if lm.native:
        assert joint == ind
    else:  # transformers' kernels differ in the last bits between batches of 2 and 1 windows
        assert joint["sequence"] == ind["sequence"]
        for x, y in zip(joint["predictions"], ind["predictions"]):
            assert [p["token"] for p in x] == [p["token"] for p in y]
            assert [p["score"] for p in x] == pytest.approx([p["score"] for p in y], abs=1e-5)
    assert "[MASK]" not in joint["sequence"]


BATCHINGS = [dict(batch_size=1, max_tokens=None), dict(batch_size=3, max_tokens=None),
             dict(batch_size=64, max_tokens=24), dict(batch_size=64, max_tokens=100_000)]


def test_joint_results_do_not_depend_on_batching(lm):
    texts = MULTI + SINGLE + ["[MASK] " + LONG + " [MASK]", LONG + " [MASK] and [MASK] ."]
    runs = [FM.fill_mask(lm, texts, top_k=5, joint=True, opts=StreamOptions(**kw)) for kw in BATCHINGS]
    assert runs[0][-1]["truncated"] is True
    for other in runs[1:]:
        if lm.native:  # the native encoder: bit-identical whatever the batch (README, Determinism)
            assert other == runs[0]
        else:
            for a, b in zip(runs[0], other):
                assert a["sequence"] == b["sequence"]
                for x, y in zip(a["predictions"], b["predictions"]):
                    assert [p["token"] for p in x] == [p["token"] for p in y]
                    assert [p["score"] for p in x] == pytest.approx([p["score"] for p in y], abs=1e-5)


# ---------------------------------------------------------------- CLI

def _invoke(args, input=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input, env={"BERTCLI_MODEL": None},
                             prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    return res


def test_cli_joint_jsonl_and_batch_sizes(mlm_dir):
    lm = load_model(mlm_dir, "fill-mask", device="cpu")
    want = [{"text": t, **round_floats(r, 6)} for t, r in zip(MULTI, FM.fill_mask(lm, MULTI, top_k=3, joint=True))]
    outs = []
    for b in ("1", "64"):
        res = _invoke(["fill-mask", *MULTI, "-m", mlm_dir, "-k", "3", "--joint", "-f", "jsonl", "-b", b])
        assert (res.exit_code, res.stderr) == (0, "")
        assert [json.loads(line) for line in res.stdout.splitlines()] == want
        outs.append(res.stdout)
    assert outs[0] == outs[1]  # byte-identical JSONL whatever --batch-size
    assert list(want[0]) == ["text", "predictions", "sequence", "truncated"]


def test_cli_record_sequence_from_a_file(mlm_dir, tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(MULTI)), encoding="utf-8")
    res = _invoke(["fill-mask", "-i", src, "-m", mlm_dir, "-k", "2", "-f", "jsonl"])
    assert (res.exit_code, res.stderr) == (0, "")
    recs = [json.loads(line) for line in res.stdout.splitlines()]
    assert [r["id"] for r in recs] == list(range(len(MULTI)))
    for r in recs:
        assert r["sequence"] == r["predictions"][-1][0]["sequence"] == r["predictions"][0][0]["sequence"]
        assert not re.search(r"\[MASK\]", json.dumps([r["sequence"]] + [p["sequence"] for m in r["predictions"]
                                                                          for p in m]))


# ---------------------------------------------------------------- the shipped default

_DEFAULT_PIPE: dict = {}


def default_pipeline(tmp_path_factory):
    """The transformers fill-mask pipeline on the shipped default (adapter merged and saved
    as a plain checkpoint, as test_defaults does); built once per session."""
    if "pipe" not in _DEFAULT_PIPE:
        from transformers import pipeline

        from bertcli import defaults

        out = tmp_path_factory.mktemp("default-merged")
        mp = pytest.MonkeyPatch()
        mp.setenv("BERTCLI_BACKEND", "transformers")
        try:
            ref = load_model(None, "fill-mask", default="fill-mask")
        finally:
            mp.undo()
        ref.model.save_pretrained(str(out), safe_serialization=True)
        for f in ("tokenizer.json", "tokenizer_config.json"):
            (out / f).write_bytes((defaults.DEFAULTS_DIR / "pretraining" / f).read_bytes())
        _DEFAULT_PIPE["pipe"] = pipeline("fill-mask", model=str(out), device="cpu")
    return _DEFAULT_PIPE["pipe"]


@pytest.fixture(scope="module")
def default_pipe(minilm_dir, tmp_path_factory):
    return default_pipeline(tmp_path_factory)


def test_default_model_joint_against_the_pipeline(default_pipe):
    text = "The [MASK] sat on the [MASK]."
    res = _invoke(["fill-mask", text, "-k", "3", "--joint", "-f", "jsonl"])
    assert (res.exit_code, res.stderr) == (0, "")
    [rec] = [json.loads(line) for line in res.stdout.splitlines()]
    # pass 1: the pipeline on the text as given; the mask with the surer top-1 is filled first
    first_pass = default_pipe(text, top_k=3)
    first = max(range(2), key=lambda j: (first_pass[j][0]["score"], -j))
    second = 1 - first
    word = first_pass[first][0]["token_str"]
    # pass 2: the pipeline on the text with that word in place (a whole WordPiece word here)
    words = ["[MASK]", "[MASK]"]
    words[first] = word
    second_pass = default_pipe(_filled(text, words), top_k=3)
    for j, ref in ((first, first_pass[first]), (second, second_pass)):
        assert [p["token"] for p in rec["predictions"][j]] == [p["token"] for p in ref]
        assert [p["score"] for p in rec["predictions"][j]] == pytest.approx([p["score"] for p in ref], abs=TOL)
    words[second] = second_pass[0]["token_str"]
    assert rec["sequence"] == _filled(text, words)
    assert "[MASK]" not in rec["sequence"]
