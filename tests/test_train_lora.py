"""freeze_encoder, LoRA adapters (saved as adapter folders that load like full models) and merge."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from bertcli.train import TrainError, train_classify, train_ner
from test_train_run import assert_same_logits, in_memory_logits, loaded_logits, opts, write_conll, write_sentiment

TEXTS = ["loved it the", "terrible food a", "worst of times", "Paris is moving and wonderful"]


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    return write_sentiment(tmp_path_factory.mktemp("sent"))


def _base_weights(encoder_dir):
    return load_file(str(encoder_dir / "model.safetensors"))


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, encoder_dir, sentiment):
    out = tmp_path_factory.mktemp("lora") / "out"
    res = train_classify(encoder_dir, sentiment[0], out, sentiment[1], options=opts(lora=4, epochs=4))
    return res, out


def test_lora_writes_adapter_folder(lora_run, encoder_dir):
    res, out = lora_run
    names = {p.name for p in out.iterdir()}
    assert {"adapter_config.json", "adapter_model.safetensors", "config.json", "tokenizer.json"} <= names
    assert "model.safetensors" not in names
    acfg = json.loads((out / "adapter_config.json").read_text())
    assert acfg["base_model_name_or_path"] == str(encoder_dir.resolve()) and acfg["r"] == 4
    assert sorted(acfg["modules_to_save"]) == ["classifier", "pooler"]
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["BertForSequenceClassification"]
    assert cfg["id2label"] == {"0": "neg", "1": "pos"}
    ad = load_file(str(out / "adapter_model.safetensors"))
    lora_keys = [k for k in ad if "lora_A" in k]
    # 2 layers x (query, key, value, attention output dense); no feed-forward dense
    assert len(lora_keys) == 8 and not any("intermediate" in k or "output.dense.lora" in k.replace(
        "attention.output.dense", "") for k in lora_keys)
    assert any(k.endswith("classifier.weight") for k in ad) and any("pooler" in k for k in ad)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_evaluate_adapter_folder(lora_run, sentiment):
    from bertcli.train import evaluate

    res, out = lora_run
    m = evaluate(out, sentiment[1], device="cpu")
    assert m["accuracy"] == pytest.approx(res.metrics["accuracy"], abs=1e-9)
    assert m["loss"] == pytest.approx(res.metrics["loss"], abs=1e-5)


@pytest.mark.parametrize("backend", [
    "auto", "transformers",
    # The adapter targets "bert.encoder..." while the bare base saves "encoder...": the
    # native merge must match them (and "transformers" goes through peft).
    "native",
])
def test_lora_adapter_loads_like_full_model(lora_run, backend):
    res, out = lora_run
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    before, enc = in_memory_logits(res.model, tok, TEXTS)
    assert_same_logits(loaded_logits(out, "classify", enc, backend), before, backend)


def test_lora_merge_writes_plain_model(encoder_dir, sentiment, tmp_path):
    out = tmp_path / "merged"
    res = train_classify(encoder_dir, sentiment[0], out, options=opts(lora=4, merge=True, epochs=2))
    names = {p.name for p in out.iterdir()}
    assert "model.safetensors" in names and "adapter_config.json" not in names
    sd = load_file(str(out / "model.safetensors"))
    assert not any("lora" in k for k in sd)
    base = _base_weights(encoder_dir)
    q = "encoder.layer.0.attention.self.query.weight"
    assert not np.allclose(sd["bert." + q].numpy(), base[q].numpy())  # the adapter is folded in
    f = "encoder.layer.0.intermediate.dense.weight"
    assert np.array_equal(sd["bert." + f].numpy(), base[f].numpy())  # not a LoRA target
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    before, enc = in_memory_logits(res.model, tok, TEXTS)
    assert_same_logits(loaded_logits(out, "classify", enc), before)
    assert_same_logits(loaded_logits(out, "classify", enc, "native"), before, "native")


def test_freeze_encoder_trains_only_head(encoder_dir, sentiment, tmp_path):
    out = tmp_path / "frozen"
    res = train_classify(encoder_dir, sentiment[0], out, options=opts(freeze_encoder=True, epochs=3))
    sd = load_file(str(out / "model.safetensors"))
    base = _base_weights(encoder_dir)
    for k, v in base.items():
        if k.startswith("pooler"):
            assert not np.allclose(sd["bert." + k].numpy(), v.numpy())  # the pooler is part of the head
        else:
            assert np.array_equal(sd["bert." + k].numpy(), v.numpy()), k
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]


def test_lora_ner_adapter(encoder_dir, tmp_path):
    import torch

    train = write_conll(tmp_path / "train.txt", 40, 1)
    out = tmp_path / "ner"
    res = train_ner(encoder_dir, train, out, options=opts(lora=8))
    assert json.loads((out / "adapter_config.json").read_text())["modules_to_save"] == ["classifier"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    enc = tok([["Angela", "Merkel", "visited", "Paris"]], is_split_into_words=True, return_tensors="pt")
    res.model.eval()
    with torch.no_grad():
        before = res.model(**enc).logits.numpy()
    assert_same_logits(loaded_logits(out, "ner", enc), before)
    # first pieces only were trained: the folder asks `bertcli ner` for "first" aggregation
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["task_specific_params"] == {"ner": {"aggregation_strategy": "first"}}


def test_option_conflicts(encoder_dir, sentiment, tmp_path):
    with pytest.raises(TrainError, match="merge needs lora"):
        train_classify(encoder_dir, sentiment[0], tmp_path / "a", options=opts(merge=True))
    with pytest.raises(TrainError, match="exclusive"):
        train_classify(encoder_dir, sentiment[0], tmp_path / "b", options=opts(lora=2, freeze_encoder=True))
