"""Next-sentence prediction training (issue #16): the NSP loss logged apart from the MLM loss,
its weight, NSP alone (train_nsp), the head and pooler learning rate, LoRA in the top layers,
and the metrics of an NSP head (per class, majority baseline, calibration)."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.train import TrainOptions, train_mlm, train_nsp
from bertcli.train.data import Document
from tiny import CORPUS


def test_nsp_metrics_by_hand():
    from bertcli.train.metrics import nsp_metrics

    gold = [True, True, True, False, False]
    scores = [0.9, 0.7, 0.2, 0.4, 0.95]
    m = nsp_metrics(gold, scores, n_bins=10)
    assert m["n"] == 5 and m["n_is_next"] == 3 and m["n_not_next"] == 2
    assert m["accuracy"] == pytest.approx(3 / 5)  # hits: 0.9, 0.7, 0.4
    assert m["is_next_accuracy"] == pytest.approx(2 / 3) and m["not_next_accuracy"] == pytest.approx(1 / 2)
    assert m["majority_baseline"] == pytest.approx(3 / 5)
    # confidences 0.9 (hit), 0.7 (hit), 0.8 (miss), 0.6 (hit), 0.95 (miss): bins 0.6, 0.7, 0.8, 0.9 (x2)
    ece = (abs(0.6 - 1) + abs(0.7 - 1) + abs(0.8 - 0) + abs((0.9 + 0.95) / 2 - 0.5) * 2) / 5
    assert m["ece"] == pytest.approx(ece)
    assert m["brier"] == pytest.approx(sum((s - g) ** 2 for s, g in zip(scores, gold)) / 5)
    perfect = nsp_metrics([True, False], [1.0, 0.0])
    assert perfect["accuracy"] == 1.0 and perfect["ece"] == 0.0
    with pytest.raises(ValueError):
        nsp_metrics([True], [])


def test_pretraining_loss_weights_the_nsp_part():
    import torch

    from bertcli.train.losses import pretraining_loss

    g = torch.Generator().manual_seed(0)
    mlm = torch.randn(2, 5, 11, generator=g)
    labels = torch.tensor([[3, -100, 4, -100, -100], [-100, 1, -100, -100, 7]])
    nsp = torch.randn(2, 2, generator=g)
    nsl = torch.tensor([0, 1])
    parts = {}
    one = pretraining_loss(mlm, nsp, labels, nsl, 1.0, lambda k, v: parts.__setitem__(k, float(v)))
    three = pretraining_loss(mlm, nsp, labels, nsl, 3.0)
    ce_nsp = float(torch.nn.functional.cross_entropy(nsp, nsl))
    ce_mlm = float(torch.nn.functional.cross_entropy(mlm.reshape(-1, 11), labels.reshape(-1)))
    assert parts["mlm_loss"] == pytest.approx(ce_mlm) and parts["nsp_loss"] == pytest.approx(ce_nsp)
    assert float(one) == pytest.approx(ce_mlm + ce_nsp)
    assert float(three) == pytest.approx(ce_mlm + 3 * ce_nsp)
    assert parts["nsp_accuracy"] == float((nsp.argmax(-1) == nsl).float().mean())


@pytest.fixture(scope="module")
def docs_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("docs")
    r = random.Random(0)
    for i in range(4):
        (d / f"doc{i}.txt").write_text("\n\n".join(" ".join(r.sample(CORPUS, 3)) for _ in range(8)) + "\n")
    return d


def test_mlm_nsp_logs_the_nsp_loss_apart(encoder_dir, docs_dir, tmp_path):
    events = []
    res = train_mlm(encoder_dir, docs_dir, tmp_path / "out", nsp=True, nsp_weight=2.0, eval_fraction=0.25,
                    options=TrainOptions(max_steps=4, batch_size=4, learning_rate=1e-3, max_length=48, device="cpu",
                                         seed=0, logging_steps=2, eval_steps=4), progress=events.append)
    logs = [e for e in events if e["event"] == "log"]
    assert logs and all({"mlm_loss", "nsp_loss", "nsp_accuracy"} <= set(e) for e in logs)
    for e in logs:
        # the logged loss is the weighted sum of its logged parts (means over the same steps)
        assert e["loss"] == pytest.approx(e["mlm_loss"] + 2.0 * e["nsp_loss"], rel=1e-3)
        assert 0.0 <= e["nsp_accuracy"] <= 1.0
    assert {"nsp_loss", "nsp_accuracy", "nsp_is_next_accuracy", "nsp_not_next_accuracy"} <= set(res.metrics)
    args = json.loads((tmp_path / "out" / "training_args.json").read_text())
    assert args["data"]["nsp_weight"] == 2.0


def _copy_docs(folder, n_docs=400):
    # Synthetic NSP: every document repeats one sentence, so an IsNext B is a copy of A and a
    # NotNext B is another document's sentence: a path that can learn anything learns this.
    r = random.Random(1)
    for i in range(n_docs):
        words = " ".join(r.sample(CORPUS, 2)).split()
        s = " ".join(r.sample(words, min(6, len(words))))
        (folder / f"d{i:03d}.txt").write_text("\n\n".join([s] * 4) + "\n")
    return folder


@pytest.mark.slow
@pytest.mark.minilm
def test_train_nsp_learns_a_copied_b(minilm_dir, tmp_path):
    """The NSP path (pairs, segment ids, labels, pooler and head, LoRA) learns: MiniLM with LoRA
    tells a copied B from a random one after a few dozen steps (issue #16's diagnosis)."""
    (tmp_path / "train").mkdir()
    train = _copy_docs(tmp_path / "train")
    res = train_nsp(minilm_dir, train, tmp_path / "out", eval_fraction=0.15,
                    options=TrainOptions(max_steps=30, batch_size=16, learning_rate=3e-3, head_lr=5e-3, max_length=24,
                                         lora=8, lora_targets="all-linear", lora_layers=2, device="cpu", seed=0,
                                         eval_steps=30, logging_steps=10, max_eval_samples=96))
    last = res.evaluations[-1]
    assert last["accuracy"] >= 0.9, res.evaluations
    assert min(last["is_next_accuracy"], last["not_next_accuracy"]) >= 0.8, res.evaluations
    assert res.labels == ["IsNext", "NotNext"]


def test_train_nsp_writes_a_bert_nsp_folder(encoder_dir, docs_dir, tmp_path, monkeypatch):
    import torch
    from transformers import BertForNextSentencePrediction

    from bertcli.loading import load_model

    out = tmp_path / "out"
    events = []
    res = train_nsp(encoder_dir, docs_dir, out, eval_fraction=0.25,
                    options=TrainOptions(max_steps=3, batch_size=4, learning_rate=1e-3, head_lr=1e-2, max_length=40,
                                         device="cpu", seed=0, logging_steps=1), progress=events.append)
    assert {"accuracy", "is_next_accuracy", "not_next_accuracy", "loss"} <= set(res.metrics)
    assert all({"nsp_loss", "nsp_accuracy"} <= set(e) for e in events if e["event"] == "log")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["BertForNextSentencePrediction"]
    from transformers import AutoTokenizer

    ref = BertForNextSentencePrediction.from_pretrained(str(out)).eval()
    enc = AutoTokenizer.from_pretrained(str(out))(["the film was good"], ["the food was cold"], return_tensors="pt")
    for backend in ("native", "transformers"):
        monkeypatch.setenv("BERTCLI_BACKEND", backend)
        lm = load_model(out, "nsp", device="cpu")
        assert lm.native is (backend == "native")
        with torch.no_grad():
            want = ref(**{k: enc[k] for k in ("input_ids", "attention_mask", "token_type_ids")}).logits
        np.testing.assert_allclose(lm.forward(dict(enc)).numpy(), want.numpy(), atol=1e-5)


def test_head_lr_and_top_layer_lora(encoder_dir, docs_dir, tmp_path):
    from safetensors import safe_open

    out = tmp_path / "out"
    res = train_nsp(encoder_dir, docs_dir, out, eval_fraction=0,
                    options=TrainOptions(max_steps=2, batch_size=4, learning_rate=1e-3, head_lr=5e-3, max_length=40,
                                         device="cpu", seed=0, lora=4, lora_targets="all-linear", lora_layers=1))
    n_layers = json.loads((out / "config.json").read_text())["num_hidden_layers"]
    with safe_open(str(out / "adapter_model.safetensors"), "pt") as f:
        names = list(f.keys())
    lora_layers = {n.split(".layer.")[1].split(".")[0] for n in names if "lora_" in n}
    assert lora_layers == {str(n_layers - 1)}
    assert any("pooler.dense.weight" in n for n in names) and any("seq_relationship.weight" in n for n in names)
    card = (out / "README.md").read_text()
    assert "LoRA rank 4 in the top 1 layers" in card and "head and pooler learning rate 0.005" in card


def test_head_lr_groups(encoder_dir):
    from bertcli.train.trainer import _make_trainer_class
    from transformers import AutoModelForNextSentencePrediction, TrainingArguments

    net = AutoModelForNextSentencePrediction.from_pretrained(str(encoder_dir))
    Trainer = _make_trainer_class()
    t = Trainer(model=net, args=TrainingArguments(output_dir="/tmp/unused-bertcli", learning_rate=1e-4,
                                                  weight_decay=0.01, use_cpu=True, report_to="none"))
    t._head_lr, t._head_names = 3e-3, ("seq_relationship", "pooler")
    opt = t.create_optimizer()
    lr_of = {}
    for g in opt.param_groups:
        for p in g["params"]:
            lr_of[id(p)] = (g["lr"], g["weight_decay"])
    named = dict(net.named_parameters())
    assert lr_of[id(named["cls.seq_relationship.weight"])] == (3e-3, 0.01)
    assert lr_of[id(named["bert.pooler.dense.bias"])] == (3e-3, 0.0)
    assert lr_of[id(named["bert.encoder.layer.0.attention.self.query.weight"])] == (1e-4, 0.01)
    assert sum(len(g["params"]) for g in opt.param_groups) == sum(p.requires_grad for p in net.parameters())


def test_cli_train_nsp_and_option_checks(encoder_dir, docs_dir, tmp_path):
    r = CliRunner().invoke(cli, ["train", "mlm", "-m", str(encoder_dir), "--train", str(docs_dir), "-o",
                                 str(tmp_path / "a"), "--nsp-weight", "2"])
    assert r.exit_code == 2 and "--nsp-weight" in r.stderr and "--nsp" in r.stderr
    r = CliRunner().invoke(cli, ["train", "nsp", "-m", str(encoder_dir), "--train", str(docs_dir), "-o",
                                 str(tmp_path / "b"), "--lora-layers", "1"])
    assert r.exit_code == 2 and "--lora-layers" in r.stderr
    r = CliRunner().invoke(cli, ["train", "nsp", "-m", str(encoder_dir), "--train", str(docs_dir), "-o",
                                 str(tmp_path / "c"), "--max-steps", "2", "-b", "4", "--max-length", "40",
                                 "--logging-steps", "1", "--device", "cpu", "-f", "jsonl"])
    assert r.exit_code == 0, r.output
    row = json.loads(r.stdout.splitlines()[-1])
    assert {"accuracy", "is_next_accuracy", "not_next_accuracy"} <= set(row)
    assert "nsp_loss" in r.stderr and "nsp_accuracy" in r.stderr
    assert math.isfinite(row["loss"])


def test_text_pairs_follow_bert_rule(encoder_dir):
    """Evaluation pairs as text: B follows A inside a document (IsNext) or comes from another
    document (NotNext), half and half, fixed by the seed."""
    from transformers import AutoTokenizer

    from bertcli.train.pretraining import text_pairs

    tok = AutoTokenizer.from_pretrained(str(encoder_dir))
    docs = [Document(f"d{k}", [f"story {k} line {i} ." for i in range(60)]) for k in range(3)]
    pairs = text_pairs(tok, docs, 32, 0)
    assert pairs == text_pairs(tok, docs, 32, 0) and pairs != text_pairs(tok, docs, 32, 1)
    labels = [p["label"] for p in pairs]
    assert len(pairs) > 30 and 0.3 < labels.count("IsNext") / len(labels) < 0.7
    for p in pairs:
        a = [(int(w[0]), int(w[1])) for w in (s.split()[1::2] for s in p["text"].split(" .")[:-1])]
        b = [(int(w[0]), int(w[1])) for w in (s.split()[1::2] for s in p["text_pair"].split(" .")[:-1])]
        assert {d for d, _ in a} == {p["document"]}
        assert [i for _, i in a] == list(range(a[0][1], a[0][1] + len(a)))  # A: consecutive sentences
        if p["label"] == "IsNext":
            assert b[0] == (p["document"], a[-1][1] + 1) and len({d for d, _ in b}) == 1
        else:
            assert b[0][0] != p["document"]
