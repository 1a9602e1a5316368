"""fill-mask on a model whose embedding matrix has rows past the tokenizer.

ModernBERT pads its 50280-token vocabulary to 50368 rows; the extra rows stand for no
token. A ``--top-k`` that reaches them used to end in a traceback (``_clean_piece`` got
None for the piece). Now they are never candidates, and the scores stay the softmax over
all rows, as the transformers pipeline computes them.
"""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.loading import load_model
from bertcli.tasks import fill_mask as FM
from tiny import bert_config, build_tokenizer

PAD_ROWS = 40
TEXT = "The capital of France is [MASK] and the capital of Germany is [MASK]."


def _build(folder, arch):
    tok = build_tokenizer(folder)
    n = len(tok)
    torch.manual_seed(1)
    if arch == "bert":
        from transformers import BertForMaskedLM

        model = BertForMaskedLM(bert_config(n + PAD_ROWS))
    else:
        from transformers import ModernBertConfig, ModernBertForMaskedLM

        model = ModernBertForMaskedLM(ModernBertConfig(
            vocab_size=n + PAD_ROWS, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=2, max_position_embeddings=128, global_attn_every_n_layers=1, local_attention=16,
            initializer_range=0.5, pad_token_id=tok.pad_token_id, cls_token_id=tok.cls_token_id,
            sep_token_id=tok.sep_token_id, bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id))
    with torch.no_grad():  # make the padding rows likely winners, as untrained rows can be
        head = model.get_output_embeddings()
        head.bias[n:] = head.bias[:n].max() + 3.0
    model.save_pretrained(str(folder), safe_serialization=True)
    return folder, n


@pytest.fixture(scope="module", params=["bert", "modernbert"])
def padded(request, tmp_path_factory):
    return _build(tmp_path_factory.mktemp(f"mlm-pad-{request.param}"), request.param)


def _pipeline_scores(folder, text, top_k):
    """The pipeline's predictions per mask: lists of (token id, score), all rows ranked."""
    from transformers import pipeline

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pipe = pipeline("fill-mask", model=str(folder), device="cpu")
        out = pipe(text, top_k=top_k)
    out = out if isinstance(out[0], list) else [out]
    return [[(p["token"], p["score"], p["token_str"]) for p in mask] for mask in out]


def test_top_k_past_the_tokenizer(padded):
    folder, n = padded
    rows = n + PAD_ROWS
    res = CliRunner().invoke(cli, ["fill-mask", "-m", str(folder), "-k", str(rows + 10), "-f", "jsonl", TEXT],
                             prog_name="bertcli")
    assert res.exit_code == 0, res.output
    assert "Traceback" not in res.stderr
    [rec] = [json.loads(line) for line in res.stdout.splitlines()]
    hf = _pipeline_scores(folder, TEXT, rows)
    assert len(rec["predictions"]) == len(hf) == 2
    for ours, theirs in zip(rec["predictions"], hf):
        # The pipeline ranks the padding rows (empty token_str) among the tokens ...
        assert any(tid >= n for tid, _, _ in theirs[:5])
        assert all(s == "" for tid, _, s in theirs if tid >= n)
        # ... bertcli returns every token and nothing else, best first, with the same scores.
        assert len(ours) == n
        assert sorted(p["token"] for p in ours) == list(range(n))
        assert [p["score"] for p in ours] == sorted((p["score"] for p in ours), reverse=True)
        want = {tid: score for tid, score, _ in theirs}
        assert max(abs(p["score"] - want[p["token"]]) for p in ours) < 1e-4
        # the scores are the softmax over all rows: the tokens' share is below 1
        assert sum(p["score"] for p in ours) < 0.99


def test_small_top_k_skips_padding_rows(padded):
    folder, n = padded
    lm = load_model(folder, "fill-mask", device="cpu")
    [res] = FM.fill_mask(lm, [TEXT], top_k=5)
    hf = _pipeline_scores(folder, TEXT, n + PAD_ROWS)
    for ours, theirs in zip(res["predictions"], hf):
        best_tokens = [(tid, score) for tid, score, _ in theirs if tid < n][:5]
        assert [p["token"] for p in ours] == [tid for tid, _ in best_tokens]
        assert all(abs(p["score"] - s) < 1e-4 for p, (_, s) in zip(ours, best_tokens))
        for p in ours:
            assert p["token_str"] == lm.tokenizer.decode([p["token"]])


def test_candidate_ids(padded):
    folder, n = padded
    lm = load_model(folder, "fill-mask", device="cpu")
    assert FM.candidate_ids(lm.tokenizer, n) is None
    assert FM.candidate_ids(lm.tokenizer, n - 3) is None
    assert FM.candidate_ids(lm.tokenizer, n + PAD_ROWS) == list(range(n))
    assert FM._clean_piece(lm.tokenizer, n + 1) == ""  # no token: nothing, not a traceback


def test_targets_unchanged(padded):
    folder, n = padded
    lm = load_model(folder, "fill-mask", device="cpu")
    [res] = FM.fill_mask(lm, [TEXT], top_k=10, targets=["Paris", "Berlin"])
    hf = {tid: s for tid, s, _ in _pipeline_scores(folder, TEXT, n + PAD_ROWS)[0]}
    preds = res["predictions"][0]
    assert len(preds) == 2
    for p in preds:
        assert abs(p["score"] - hf[p["token"]]) < 1e-4
