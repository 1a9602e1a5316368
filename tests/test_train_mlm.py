"""MLM / NSP pre-training: instance building, BERT masking, tiny runs that reload as fill-mask and nsp."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from bertcli.errors import ModelError
from bertcli.train import TrainOptions, evaluate, train_mlm
from bertcli.train.data import Document
from bertcli.train.pretraining import make_instances, mask_tokens
from tiny import CORPUS


@pytest.fixture(scope="module")
def tok(encoder_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(encoder_dir))


def test_nsp_instances_follow_bert(tok):
    # Every sentence carries its document's number, so a segment's origin is visible.
    words = ["Paris", "Berlin", "capital", "movie", "food", "service"]  # one WordPiece each
    r = random.Random(0)
    docs = [Document(f"d{i}", [f"{i} " + " ".join(r.choice(words) for _ in range(5)) + f" {i} ." for _ in range(200)])
            for i in range(6)]
    digit = {tok.convert_tokens_to_ids(str(i)): i for i in range(6)}
    inst = make_instances(tok, docs, 32, nsp=True, seed=1)
    assert len(inst) > 350
    labels = [x["next_sentence_label"] for x in inst]
    assert 0.43 < sum(labels) / len(labels) < 0.57  # 50% random B (binomial sd ~0.027)
    cls, sep = tok.cls_token_id, tok.sep_token_id
    checked = 0
    for x in inst:
        ids = x["input_ids"]
        assert len(ids) <= 32 and ids[0] == cls and ids[-1] == sep and ids.count(sep) == 2
        k = ids.index(sep)
        assert x["token_type_ids"] == [0] * (k + 1) + [1] * (len(ids) - k - 1)
        doc_a = {digit[t] for t in ids[1:k] if t in digit}
        doc_b = {digit[t] for t in ids[k + 1:-1] if t in digit}
        if doc_a and doc_b:
            checked += 1
            if x["next_sentence_label"] == 0:
                assert doc_a == doc_b  # B continues A's document
            else:
                assert not doc_a & doc_b  # B comes from another document
    assert checked > 0.9 * len(inst)
    again = make_instances(tok, docs, 32, nsp=True, seed=1)
    assert again == inst  # the seed fixes everything


def test_mlm_instances_pack_sentences(tok):
    docs = [Document("d", CORPUS[:8])]
    inst = make_instances(tok, docs, 24, nsp=False, seed=0, short_seq_prob=0.0)
    n_tokens = sum(len(tok(s, add_special_tokens=False)["input_ids"]) for s in CORPUS[:8])
    assert all(len(x["input_ids"]) <= 24 and x["input_ids"].count(tok.sep_token_id) == 1 for x in inst)
    # Whole sentences are packed, nothing dropped except what a too-long chunk loses.
    assert sum(len(x["input_ids"]) - 2 for x in inst) <= n_tokens
    assert sum(len(x["input_ids"]) - 2 for x in inst) > 0.8 * n_tokens


def test_mask_tokens_80_10_10(tok):
    import torch

    g = torch.Generator().manual_seed(0)
    ids = torch.randint(10, len(tok), (256, 128), generator=g)
    special = torch.zeros_like(ids, dtype=torch.bool)
    special[:, 0] = special[:, -1] = True
    masked, labels = mask_tokens(ids, special, tok, 0.15, generator=g)
    chosen = labels != -100
    assert not chosen[special].any()
    assert torch.equal(labels[chosen], ids[chosen])
    frac = chosen.sum().item() / (~special).sum().item()
    assert abs(frac - 0.15) < 0.01
    n = chosen.sum().item()
    as_mask = (masked[chosen] == tok.mask_token_id).sum().item() / n
    kept = (masked[chosen] == ids[chosen]).sum().item() / n
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.015
    assert torch.equal(masked[~chosen], ids[~chosen])  # unchosen positions untouched


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("text")
    r = random.Random(0)
    for i in range(4):
        paras = ["\r\n".join(r.sample(CORPUS, 4)) for _ in range(6)]
        body = "\r\n\r\n".join(paras)
        if i == 0:
            body = ("\ufeffheader\r\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\r\n" + body +
                    "\r\n*** END OF THE PROJECT GUTENBERG EBOOK X ***\r\nlicence\r\n")
        (d / f"doc{i}.txt").write_bytes(body.encode("utf-8"))
    return d


@pytest.fixture(scope="module")
def nsp_run(tmp_path_factory, encoder_dir, text_dir):
    out = tmp_path_factory.mktemp("mlm") / "out"
    res = train_mlm(encoder_dir, text_dir, out, nsp=True, eval_fraction=0.25,
                    options=TrainOptions(epochs=4, batch_size=4, learning_rate=2e-3, max_length=48, device="cpu",
                                         seed=0, logging_steps=100))
    return res, out


def test_mlm_nsp_learns_and_saves(nsp_run, encoder_dir):
    res, out = nsp_run
    ev = [e["mlm_loss"] for e in res.evaluations]
    assert len(ev) == 4 and ev[-1] < ev[0]
    assert {"mlm_loss", "perplexity", "top1_accuracy", "top5_accuracy", "nsp_accuracy"} <= set(res.metrics)
    assert res.metrics["perplexity"] == pytest.approx(math.exp(res.metrics["mlm_loss"]))
    net = res.model
    assert net.cls.predictions.decoder.weight.data_ptr() == net.bert.embeddings.word_embeddings.weight.data_ptr()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["BertForPreTraining"]


def test_heads_start_from_encoder_weights(encoder_dir):
    from safetensors.torch import load_file

    from bertcli.train.core import _load_net

    net = _load_net("AutoModelForPreTraining", encoder_dir)
    sd = load_file(str(encoder_dir / "model.safetensors"))
    key = next(k for k in sd if k.endswith("embeddings.word_embeddings.weight"))
    assert np.array_equal(net.bert.embeddings.word_embeddings.weight.detach().numpy(), sd[key].numpy())
    q = next(k for k in sd if k.endswith("layer.1.attention.self.query.weight"))
    assert np.array_equal(net.bert.encoder.layer[1].attention.self.query.weight.detach().numpy(), sd[q].numpy())


@pytest.mark.parametrize("backend", ["native", "transformers"])
def test_mlm_folder_loads_as_fill_mask_and_nsp(nsp_run, monkeypatch, backend):
    import torch

    from bertcli.loading import load_model

    monkeypatch.setenv("BERTCLI_BACKEND", backend)
    res, out = nsp_run
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    enc = tok(["The capital of [MASK] is Paris ."], ["It was the best of times ."], return_tensors="pt")
    pos = enc["input_ids"][0].tolist().index(tok.mask_token_id)
    res.model.eval()
    with torch.no_grad():
        o = res.model(**enc)
    fm = load_model(out, "fill-mask", device="cpu")
    rows = torch.tensor([[0, pos]])
    np.testing.assert_allclose(fm.forward(dict(enc), mask_rows=rows).numpy(), o.prediction_logits[0, pos:pos + 1],
                               rtol=1e-5, atol=1e-5 if backend == "transformers" else 1e-4)
    nsp = load_model(out, "nsp", device="cpu")
    np.testing.assert_allclose(nsp.forward(dict(enc)).numpy(), o.seq_relationship_logits.numpy(),
                               rtol=1e-5, atol=1e-5 if backend == "transformers" else 1e-4)


def test_evaluate_mlm(nsp_run, text_dir):
    res, out = nsp_run
    m = evaluate(out, text_dir, device="cpu")
    assert m["task"] == "mlm" and m["n_masked"] > 50
    assert m["perplexity"] == pytest.approx(math.exp(m["mlm_loss"]))
    assert 0.0 <= m["top1_accuracy"] <= m["top5_accuracy"] <= 1.0
    assert 0.0 <= m["nsp_accuracy"] <= 1.0
    assert evaluate(out, text_dir, device="cpu") == m  # fixed seed: same masks, same numbers


def test_mlm_only_has_no_nsp_head(encoder_dir, text_dir, tmp_path):
    from bertcli.loading import load_model

    out = tmp_path / "out"
    res = train_mlm(encoder_dir, text_dir, out, options=TrainOptions(max_steps=3, batch_size=4, max_length=32,
                                                                   device="cpu", logging_steps=100))
    assert "nsp_accuracy" not in res.metrics
    assert json.loads((out / "config.json").read_text())["architectures"] == ["BertForMaskedLM"]
    load_model(out, "fill-mask", device="cpu")
    with pytest.raises(ModelError):
        load_model(out, "nsp", device="cpu")


def test_masked_rows_loss_equals_full_forward_loss(encoder_dir, tok):
    import torch

    from bertcli.train.collate import Collator
    from bertcli.train.core import _load_net
    from bertcli.train.losses import masked_rows_mlm_loss

    torch.manual_seed(0)
    net = _load_net("AutoModelForPreTraining", encoder_dir).eval()
    docs = [Document(f"d{i}", CORPUS[i * 6:(i + 1) * 6]) for i in range(3)]
    batch = Collator(tok, mlm_probability=0.15)(make_instances(tok, docs, 40, nsp=True, seed=3)[:6])
    assert (batch["labels"] != -100).sum() > 5
    with torch.no_grad():
        full = net(**batch).loss
        fast = masked_rows_mlm_loss(net, batch)
        mlm_only = masked_rows_mlm_loss(net, {k: v for k, v in batch.items() if k != "next_sentence_label"})
        logits = net(**{k: v for k, v in batch.items() if k not in ("labels", "next_sentence_label")}).prediction_logits
    assert float(fast) == pytest.approx(float(full), rel=1e-5)
    # The MLM part alone: hand-computed mean cross-entropy over the labelled positions.
    sel = batch["labels"] != -100
    want = torch.nn.functional.cross_entropy(logits[sel], batch["labels"][sel])
    assert float(mlm_only) == pytest.approx(float(want), rel=1e-5)


@pytest.fixture(scope="module")
def lora_nsp_run(tmp_path_factory, encoder_dir, text_dir):
    out = tmp_path_factory.mktemp("mlm-lora") / "out"
    res = train_mlm(encoder_dir, text_dir, out, nsp=True, eval_fraction=0.25,
                    options=TrainOptions(epochs=2, batch_size=4, learning_rate=2e-3, max_length=48, device="cpu",
                                         seed=0, logging_steps=100, lora=4, lora_targets="all-linear"))
    return res, out


def test_lora_pretraining_writes_small_adapter(lora_nsp_run, encoder_dir):
    from safetensors.torch import load_file

    res, out = lora_nsp_run
    assert (out / "adapter_config.json").is_file() and not (out / "model.safetensors").exists()
    ad = load_file(str(out / "adapter_model.safetensors"))
    names = list(ad)
    assert any(".lora_A." in k for k in names)
    # heads in full (transform, pooler, NSP), every bias, never the tied decoder/embeddings
    assert any("predictions.transform" in k and k.endswith("dense.weight") for k in names)
    assert any("seq_relationship" in k for k in names) and any("pooler" in k for k in names)
    assert any(k.endswith("predictions.bias") for k in names)
    assert not any("decoder.weight" in k or "word_embeddings" in k for k in names)
    trained = res.model.get_base_model()
    bias = next(v for k, v in ad.items() if k.endswith("predictions.bias"))
    assert not torch_all_zero(bias)  # the output bias learned a prior (it starts at zero)
    np.testing.assert_array_equal(bias.numpy(), trained.cls.predictions.bias.detach().numpy())
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["BertForPreTraining"]


def torch_all_zero(t) -> bool:
    return bool((t == 0).all())


@pytest.mark.parametrize("backend", ["native", "transformers"])
def test_lora_pretraining_adapter_loads_like_trained_model(lora_nsp_run, monkeypatch, backend):
    import torch
    from transformers import AutoTokenizer

    from bertcli.loading import load_model

    monkeypatch.setenv("BERTCLI_BACKEND", backend)
    res, out = lora_nsp_run
    tok = AutoTokenizer.from_pretrained(str(out))
    enc = tok(["The capital of [MASK] is Paris ."], ["It was the best of times ."], return_tensors="pt")
    pos = enc["input_ids"][0].tolist().index(tok.mask_token_id)
    net = res.model.eval()
    with torch.no_grad():
        o = net(**enc)
    fm = load_model(out, "fill-mask", device="cpu")
    np.testing.assert_allclose(fm.forward(dict(enc), mask_rows=torch.tensor([[0, pos]])).numpy(),
                               o.prediction_logits[0, pos:pos + 1].numpy(), rtol=1e-4, atol=1e-4)
    nsp = load_model(out, "nsp", device="cpu")
    np.testing.assert_allclose(nsp.forward(dict(enc)).numpy(), o.seq_relationship_logits.numpy(),
                               rtol=1e-4, atol=1e-4)
