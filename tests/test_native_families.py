"""The native encoder (bertcli.native) on DistilBERT and ELECTRA, against transformers.

Same weights in (a random tiny model of transformers' own class), same logits out to
1e-5 for every head bertcli runs (fill-mask, classify, ner, encoder), through the plain
torch path and the prepared (oneDNN-packed) path; bit-identical results whatever the
batch holds, in float32 and bfloat16; a missing head is a ModelError naming it.
Classes matched: DistilBertModel / DistilBertFor{MaskedLM,SequenceClassification,
TokenClassification}, ElectraModel / ElectraFor{MaskedLM,SequenceClassification,
TokenClassification}.
"""

from __future__ import annotations

import pytest
import torch

from bertcli import native
from bertcli.errors import ModelError

CPU = torch.device("cpu")
V = 97
HEADS = {"fill-mask": "ForMaskedLM", "classify": "ForSequenceClassification", "ner": "ForTokenClassification",
         "encoder": "Model"}
TASKS = list(HEADS)
#: variants: the ELECTRA generator/discriminator layouts (embedding_size < or == hidden_size,
#: i.e. with and without embeddings_project), DistilBERT with learned or sinusoidal positions
#: and ReLU instead of GELU.
VARIANTS = {
    "distilbert": {},
    "distilbert-sinusoidal-relu": dict(sinusoidal_pos_embds=True, activation="relu"),
    "electra": {},
    "electra-no-projection": dict(embedding_size=32),
}


def _hf_model(variant: str, task: str, seed: int = 0, positions: int = 256, init: float = 0.3):
    import transformers as tf

    family = variant.split("-")[0]
    kw = VARIANTS[variant]
    if family == "distilbert":
        cfg = tf.DistilBertConfig(vocab_size=V, dim=32, n_layers=2, n_heads=4, hidden_dim=40,
                                  max_position_embeddings=positions, initializer_range=init, dropout=0.0,
                                  attention_dropout=0.0, seq_classif_dropout=0.0, num_labels=3, **kw)
    else:
        cfg = tf.ElectraConfig(**dict(dict(vocab_size=V, embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                           num_attention_heads=4, intermediate_size=40,
                                           max_position_embeddings=positions, initializer_range=init,
                                           hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                                           num_labels=3), **kw))
    name = ("DistilBert" if family == "distilbert" else "Electra") + HEADS[task]
    torch.manual_seed(seed)
    return getattr(tf, name)(cfg).eval()


def _native(hf, task, dtype=None, sd=None):
    net = native.NativeEncoder(dict(hf.config.to_dict(), num_labels=hf.config.num_labels), task).eval()
    native.load_state(net, hf.state_dict() if sd is None else sd, "mem", "head", "")
    if dtype is not None:
        net.prepare(CPU, dtype)
    return net


def _batch(lengths, seed=1, types=False):
    g = torch.Generator().manual_seed(seed)
    L = max(lengths)
    ids = torch.randint(5, V, (len(lengths), L), generator=g)
    mask = (torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids[mask == 0] = 0
    tt = None
    if types:  # a second segment in every sequence of 4 tokens or more
        tt = ((torch.arange(L)[None, :] >= torch.tensor(lengths)[:, None] // 2) & mask.bool()).long()
    return ids, mask, tt


def _reference(hf, task, ids, mask, tt):
    kw = {} if tt is None else {"token_type_ids": tt}
    with torch.inference_mode():
        out = hf(input_ids=ids, attention_mask=mask, **kw)
    return out.last_hidden_state if task == "encoder" else out.logits


#: (lengths, initializer_range): short sequences with peaked scores (as tests/test_native.py),
#: and 352 tokens crossing 128-row tiles with a smaller range (as tests/test_kernels.py): at
#: 0.3 and 200 tokens, transformers' own eager and SDPA attention differ by up to 1.7e-5.
BATCHES = {"short": ([11, 7, 3], 0.3), "tiles": ([9, 200, 3, 140], 0.1)}


def max_abs_diff(variant: str, task: str, batch: str, prepared: bool) -> tuple[float, float]:
    """(max |native - transformers|, max |transformers|) over the defined outputs."""
    lengths, init = BATCHES[batch]
    hf = _hf_model(variant, task, init=init)
    ids, mask, tt = _batch(lengths, types=variant.startswith("electra"))
    ref = _reference(hf, task, ids, mask, tt)
    net = _native(hf, task, torch.float32 if prepared else None)
    with torch.inference_mode():
        got = net(ids, mask, tt)
    if task != "classify":  # padded positions are not defined outputs
        ref, got = ref[mask.bool()], got[mask.bool()]
    assert got.shape == ref.shape
    return (got - ref).abs().max().item(), ref.abs().max().item()


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("task", TASKS)
@pytest.mark.parametrize("batch", list(BATCHES))
def test_native_matches_transformers(variant, task, batch):
    """The plain torch path and the prepared (oneDNN-packed) path, against transformers' class."""
    for prepared in (False, True) if native.onednn_available(torch.float32) else (False,):
        diff, scale = max_abs_diff(variant, task, batch, prepared)
        assert scale > 0.1  # the outputs are not near zero: the comparison means something
        assert diff <= 1e-5, (prepared, diff)


def test_electra_token_types_matter():
    """ELECTRA has token type embeddings (DistilBERT has none): they change the result,
    in the native path as in transformers."""
    hf = _hf_model("electra", "classify")
    net = _native(hf, "classify")
    ids, mask, tt = _batch([12, 20, 7], types=True)
    with torch.inference_mode():
        a, b = net(ids, mask, tt), net(ids, mask, None)
    assert (a - b).abs().max() > 1e-3
    torch.testing.assert_close(a, _reference(hf, "classify", ids, mask, tt), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b, _reference(hf, "classify", ids, mask, None), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["distilbert", "electra"])
def test_fill_mask_rows_equal_full_projection(variant):
    hf = _hf_model(variant, "fill-mask")
    net = _native(hf, "fill-mask")
    ids, mask, tt = _batch([11, 7, 3], types=variant == "electra")
    rows = torch.tensor([[2, 0], [0, 2], [1, 6], [0, 9]])
    full = _reference(hf, "fill-mask", ids, mask, tt)
    with torch.inference_mode():
        got = net(ids, mask, tt, mask_rows=rows)
    torch.testing.assert_close(got, full[rows[:, 0], rows[:, 1]], atol=1e-5, rtol=1e-5)


def test_sinusoidal_table_is_transformers_own():
    from transformers.models.distilbert.modeling_distilbert import _create_sinusoidal_embeddings

    assert torch.equal(native.sinusoidal_table(64, 32), _create_sinusoidal_embeddings(64, 32, torch.empty(64, 32)))


def test_sinusoidal_positions_left_out_of_the_weights():
    """A DistilBERT checkpoint with sinusoidal_pos_embds may leave out the (computable)
    position table: the native path computes it as transformers does."""
    hf = _hf_model("distilbert-sinusoidal-relu", "ner")
    sd = {k: v for k, v in hf.state_dict().items() if "position_embeddings" not in k}
    net = _native(hf, "ner", sd=sd)
    ids, mask, _ = _batch([10, 4])
    with torch.inference_mode():
        got = net(ids, mask)
    torch.testing.assert_close(got[mask.bool()], _reference(hf, "ner", ids, mask, None)[mask.bool()],
                               atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("variant", ["distilbert", "electra"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_bit_identical_whatever_the_batch(variant, dtype):
    """ner (every row), classify (the first row), fill-mask (mask rows): a sequence's
    logits are the same bits alone as with any neighbours."""
    electra = variant == "electra"
    lengths = [150, 150, 61, 61, 17, 5, 2, 1]
    ids, mask, tt = _batch(lengths, seed=4, types=electra)

    def sub(idx, n=None):
        n = n or max(lengths[i] for i in idx)
        return ids[idx, :n], mask[idx, :n], None if tt is None else tt[idx, :n]

    with torch.inference_mode():
        for task in ("ner", "classify"):
            net = _native(_hf_model(variant, task), task, dtype)
            together = net(ids, mask, tt)
            for i, n in enumerate(lengths):
                alone = net(*sub([i], n))[0]
                ref = together[i, :n] if task == "ner" else together[i]
                assert torch.equal(alone, ref), (task, i, n)
            other = net(*sub([1, 4, 6]))
            for j, i in enumerate([1, 4, 6]):
                ref = together[i, :lengths[i]] if task == "ner" else together[i]
                got = other[j, :lengths[i]] if task == "ner" else other[j]
                assert torch.equal(got, ref), (task, i)
        net = _native(_hf_model(variant, "fill-mask"), "fill-mask", dtype)
        per_seq = [[n // 2] for n in lengths]
        per_seq[0] += [1, 140]
        rows = torch.tensor([[i, p] for i, ps in enumerate(per_seq) for p in sorted(ps)])
        together = net(ids, mask, tt, mask_rows=rows)
        k = 0
        for i, n in enumerate(lengths):
            alone = net(*sub([i], n), mask_rows=torch.tensor([[0, p] for p in sorted(per_seq[i])]))
            for got in alone:
                assert torch.equal(got, together[k]), (i, k)
                k += 1


@pytest.mark.parametrize("variant", ["distilbert", "electra"])
@pytest.mark.parametrize("task", ["fill-mask", "classify", "ner"])
def test_bfloat16_agrees_with_float32(variant, task):
    hf = _hf_model(variant, task)
    f32, bf16 = _native(hf, task, torch.float32), _native(hf, task, torch.bfloat16)
    assert bf16.word.weight.dtype == torch.float32  # embeddings, LayerNorm, residual stay float32
    ids, mask, tt = _batch([12, 30, 7, 25] * 8, seed=5, types=variant == "electra")
    with torch.inference_mode():
        a, b = f32(ids, mask, tt), bf16(ids, mask, tt)
    assert b.dtype == torch.bfloat16
    keep = mask.bool() if a.dim() == 3 else slice(None)
    a, b = a[keep].float(), b[keep].float()
    assert (a.argmax(-1) == b.argmax(-1)).float().mean().item() >= 0.9
    assert (a - b).abs().max().item() < 0.1 * a.abs().max().item()


@pytest.mark.parametrize("variant, task, first_missing", [
    ("distilbert", "classify", r"pre_classifier\.weight"),
    ("distilbert", "fill-mask", r"vocab_transform\.weight"),
    ("distilbert", "ner", r"classifier\.weight"),
    ("electra", "classify", r"classifier\.dense\.weight"),
    ("electra", "fill-mask", r"generator_predictions\.dense\.weight"),
    ("electra", "ner", r"classifier\.weight"),
])
def test_missing_head_is_named(variant, task, first_missing):
    hf = _hf_model(variant, "encoder")  # a bare DistilBertModel / ElectraModel
    net = native.NativeEncoder(dict(hf.config.to_dict(), num_labels=2), task)
    with pytest.raises(ModelError, match=rf"DIR' has no the head \(missing weights: {first_missing}.*train it"):
        native.load_state(net, hf.state_dict(), "DIR", "the head", "train it")


def test_electra_discriminator_has_no_masked_lm_head():
    import transformers as tf

    hf = _hf_model("electra", "encoder")
    disc = tf.ElectraForPreTraining(hf.config).eval()  # discriminator_predictions.*, not a bertcli task
    net = native.NativeEncoder(disc.config.to_dict(), "fill-mask")
    with pytest.raises(ModelError, match="has no masked-LM head"):
        native.load_state(net, disc.state_dict(), "DIR", "masked-LM head", "bertcli train mlm")


@pytest.mark.parametrize("variant", ["distilbert", "electra"])
def test_nsp_is_refused(variant):
    hf = _hf_model(variant, "encoder")
    net = native.NativeEncoder(hf.config.to_dict(), "nsp")
    with pytest.raises(ModelError, match=rf"\({variant}\) has no next-sentence-prediction head architecture"):
        native.load_state(net, hf.state_dict(), "DIR", "next-sentence-prediction head", "")


def test_missing_encoder_weight_is_reported():
    hf = _hf_model("electra", "classify")
    sd = {k: v for k, v in hf.state_dict().items() if "embeddings_project" not in k}
    net = native.NativeEncoder(hf.config.to_dict(), "classify")
    with pytest.raises(ModelError, match=r"missing encoder weights \(embeddings_project\.weight"):
        native.load_state(net, sd, "DIR", "head", "")


def test_real_config_files_are_supported():
    """config.json as shipped with distilbert-base-uncased-finetuned-sst-2-english and
    google/electra-small-discriminator (keys with transformers' defaults may be absent)."""
    sst2 = {"activation": "gelu", "architectures": ["DistilBertForSequenceClassification"], "dim": 768,
            "dropout": 0.1, "hidden_dim": 3072, "id2label": {"0": "NEGATIVE", "1": "POSITIVE"},
            "max_position_embeddings": 512, "model_type": "distilbert", "n_heads": 12, "n_layers": 6,
            "pad_token_id": 0, "sinusoidal_pos_embds": False, "vocab_size": 30522}
    small = {"architectures": ["ElectraForPreTraining"], "embedding_size": 128, "hidden_act": "gelu",
             "hidden_size": 256, "intermediate_size": 1024, "model_type": "electra", "num_attention_heads": 4,
             "num_hidden_layers": 12, "type_vocab_size": 2, "vocab_size": 30522}
    assert native.supported(sst2) and native.supported(small)
    c = native.native_config(sst2)
    assert (c["hidden_size"], c["num_hidden_layers"], c["num_attention_heads"], c["intermediate_size"],
            c["hidden_act"], c["layer_norm_eps"], c["type_vocab_size"]) == (768, 6, 12, 3072, "gelu", 1e-12, 0)
    c = native.native_config({"model_type": "electra"})
    assert (c["embedding_size"], c["hidden_size"], c["max_position_embeddings"]) == (128, 256, 512)
    assert not native.supported(dict(sst2, activation="gelu_10"))
    with torch.device("meta"):  # the real sizes, without allocating them
        net = native.NativeEncoder(dict(sst2, num_labels=2), "classify")
    assert net.types is None and net.emb_proj is None and len(net.layers) == 6
    assert tuple(net.cls_dense.weight.shape) == (768, 768) and tuple(net.head.weight.shape) == (2, 768)


@pytest.mark.parametrize("family", ["distilbert", "electra"])
def test_backends_agree_on_checkpoint_folders(family, cls_dir, tmp_path, monkeypatch):
    """Through load_model on saved folders (safetensors, config.json, tokenizer): the
    native backend's logits are the transformers backend's, every head; ELECTRA gets the
    pair's token types, DistilBERT none."""
    import shutil

    import transformers as tf

    from bertcli.loading import load_model
    from bertcli.tasks.base import Feature, collate

    vocab = sum(1 for _ in open(cls_dir / "vocab.txt", encoding="utf-8"))
    for task in ("fill-mask", "classify", "ner"):
        hf = _hf_model(family, task, positions=128)
        cfg = hf.config
        cfg.vocab_size = vocab
        torch.manual_seed(0)
        d = tmp_path / task
        type(hf)(cfg).save_pretrained(str(d), safe_serialization=True)
        for f in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            shutil.copy(cls_dir / f, d / f)
        monkeypatch.setenv("BERTCLI_BACKEND", "native")
        lm_n = load_model(d, task)
        monkeypatch.setenv("BERTCLI_BACKEND", "transformers")
        lm_t = load_model(d, task)
        assert lm_n.native and not lm_t.native and isinstance(lm_t.model, tf.PreTrainedModel)
        assert lm_n.uses_token_type_ids == lm_t.uses_token_type_ids == (family == "electra")
        enc = lm_n.tokenizer(["I loved this movie", "terrible food [MASK] here"], ["Café Müller", "the service"])
        batch = collate([Feature(i, t) for i, t in zip(enc["input_ids"], enc["token_type_ids"])],
                        lm_n.tokenizer.pad_token_id)
        assert batch["token_type_ids"].any()
        rows = torch.tensor([[0, 1], [1, 3]]) if task == "fill-mask" else None
        a, b = lm_n.forward(batch, rows), lm_t.forward(batch, rows)
        if a.dim() == 3:
            keep = batch["attention_mask"].bool()
            a, b = a[keep], b[keep]
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
