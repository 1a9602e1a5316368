"""The native encoder (bertcli.native) against transformers' model classes, head by head.

Same weights in, same logits out (to 1e-5), for the BERT and RoBERTa families; and the
native LoRA merge against peft's merge_and_unload.
"""

from __future__ import annotations

import json

import pytest
import torch

from bertcli import native
from bertcli.errors import ModelError
from bertcli.loading import load_model

HEADS = {
    "fill-mask": "ForMaskedLM",
    "nsp": "ForNextSentencePrediction",
    "classify": "ForSequenceClassification",
    "ner": "ForTokenClassification",
    "encoder": "Model",
}


def _hf_model(family: str, task: str, seed: int = 0, **kw):
    import transformers as tf

    cfg_cls = {"bert": tf.BertConfig, "roberta": tf.RobertaConfig}[family]
    cfg = cfg_cls(vocab_size=97, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
                  max_position_embeddings=64, initializer_range=0.3, hidden_dropout_prob=0.0,
                  attention_probs_dropout_prob=0.0, num_labels=3, **kw)
    name = ("Bert" if family == "bert" else "Roberta") + HEADS[task]
    torch.manual_seed(seed)
    return getattr(tf, name)(cfg).eval()


def _inputs(family: str, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    pad = 0 if family == "bert" else 1
    ids = torch.randint(5, 97, (3, 11), generator=g)
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0  # a padded row
    mask[2, 3:] = 0
    ids[mask == 0] = pad
    tt = torch.zeros_like(ids)
    if family == "bert":
        tt[0, 5:] = 1
    return ids, mask, tt


def _native(model, task):
    cfg = model.config.to_dict()
    net = native.NativeEncoder(dict(cfg, num_labels=model.config.num_labels), task).eval()
    native.load_state(net, model.state_dict(), "mem", "head", "")
    return net


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("task", ["fill-mask", "nsp", "classify", "ner", "encoder"])
def test_native_matches_transformers(family, task):
    if family == "roberta" and task == "nsp":
        pytest.skip("RoBERTa has no NSP head (it was trained without NSP)")
    hf = _hf_model(family, task)
    net = _native(hf, task)
    ids, mask, tt = _inputs(family)
    with torch.inference_mode():
        kw = {"token_type_ids": tt} if family == "bert" else {}
        ref = hf(input_ids=ids, attention_mask=mask, **kw)
        ref = ref.last_hidden_state if task == "encoder" else ref.logits
        got = net(ids, mask, tt if family == "bert" else None)
    if task in ("ner", "encoder", "fill-mask"):
        keep = mask.bool()  # padded positions are not defined outputs
        ref, got = ref[keep], got[keep]
    assert got.shape == ref.shape
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


def test_fill_mask_rows_equal_full_projection():
    hf = _hf_model("bert", "fill-mask")
    net = _native(hf, "fill-mask")
    ids, mask, tt = _inputs("bert")
    rows = torch.tensor([[0, 2], [1, 6], [2, 0]])
    with torch.inference_mode():
        full = hf(input_ids=ids, attention_mask=mask, token_type_ids=tt).logits
        got = net(ids, mask, tt, mask_rows=rows)
    torch.testing.assert_close(got, full[rows[:, 0], rows[:, 1]], atol=1e-5, rtol=1e-5)


def test_missing_head_is_named():
    hf = _hf_model("bert", "encoder")
    net = native.NativeEncoder(dict(hf.config.to_dict(), num_labels=2), "fill-mask")
    with pytest.raises(ModelError, match=r"has no masked-LM head.*cls\.predictions.*bertcli train mlm"):
        native.load_state(net, hf.state_dict(), "DIR", "masked-LM head", "bertcli train mlm")


def test_wrong_shape_is_reported():
    hf = _hf_model("bert", "classify")
    sd = hf.state_dict()
    sd["classifier.weight"] = torch.zeros(5, 32)
    net = native.NativeEncoder(dict(hf.config.to_dict(), num_labels=3), "classify")
    with pytest.raises(ModelError, match="classifier.weight has shape"):
        native.load_state(net, sd, "DIR", "head", "")


def test_backends_agree_on_checkpoint_folders(mlm_dir, cls_dir, pretraining_dir, monkeypatch):
    from bertcli.tasks.classify import classify
    from bertcli.tasks.fill_mask import fill_mask
    from bertcli.tasks.nsp import nsp

    texts = ["The capital of France is [MASK].", "Café [MASK] 東京 😀 in New York", "[MASK] [MASK] ."]
    runs = [("fill-mask", mlm_dir, lambda lm: fill_mask(lm, texts, top_k=5)),
            ("classify", cls_dir, lambda lm: classify(lm, texts, top_k=None)),
            ("nsp", pretraining_dir, lambda lm: nsp(lm, texts, texts[::-1]))]
    for task, path, run in runs:
        monkeypatch.setenv("BERTCLI_BACKEND", "native")
        lm_n = load_model(path, task)
        monkeypatch.setenv("BERTCLI_BACKEND", "transformers")
        lm_t = load_model(path, task)
        assert lm_n.native and not lm_t.native
        a, b = run(lm_n), run(lm_t)
        assert json.dumps(_strip_floats(a)) == json.dumps(_strip_floats(b)), task
        for x, y in zip(_floats(a), _floats(b)):
            assert abs(x - y) < 1e-5


def _floats(x):
    if isinstance(x, dict):
        return [f for k in sorted(x) for f in _floats(x[k])]
    if isinstance(x, list):
        return [f for i in x for f in _floats(i)]
    return [x] if isinstance(x, float) else []


def _strip_floats(x):
    if isinstance(x, dict):
        return {k: _strip_floats(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_strip_floats(v) for v in x]
    return None if isinstance(x, float) else x


def test_native_lora_merge_matches_peft(cls_dir, tmp_path, monkeypatch):
    peft = pytest.importorskip("peft")
    import shutil

    import transformers as tf

    base = tf.BertForSequenceClassification.from_pretrained(str(cls_dir))
    cfg = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["query", "key", "value", "dense"],
                          modules_to_save=["classifier"], task_type="SEQ_CLS")
    model = peft.get_peft_model(base, cfg)
    torch.manual_seed(3)
    with torch.no_grad():  # LoRA B starts at zero: make the adapter do something
        for n, p in model.named_parameters():
            if "lora_B" in n or "modules_to_save" in n:
                p.add_(torch.randn_like(p) * 0.2)
    adapter = tmp_path / "adapter"
    model.save_pretrained(str(adapter))
    for f in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        shutil.copy(cls_dir / f, adapter / f)
    cfg_json = json.loads((adapter / "adapter_config.json").read_text())
    cfg_json["base_model_name_or_path"] = str(cls_dir)
    (adapter / "adapter_config.json").write_text(json.dumps(cfg_json))
    merged = model.merge_and_unload().eval()

    monkeypatch.setenv("BERTCLI_BACKEND", "native")
    lm = load_model(adapter, "classify")
    assert lm.native
    tok = lm.tokenizer
    enc = tok(["I loved this movie", "terrible food"])
    from bertcli.tasks.base import Feature, collate
    batch = collate([Feature(i, t) for i, t in zip(enc["input_ids"], enc["token_type_ids"])], tok.pad_token_id)
    with torch.inference_mode():
        ref = merged(**batch).logits
    torch.testing.assert_close(lm.forward(batch), ref, atol=1e-5, rtol=1e-5)
    base_logits = tf.BertForSequenceClassification.from_pretrained(str(cls_dir)).eval()(**batch).logits
    assert (ref - base_logits).abs().max() > 1e-3  # the adapter really changed the model
