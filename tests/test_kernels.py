"""The native encoder's prepared CPU path (bertcli.native.NativeEncoder.prepare).

float32 with oneDNN-packed weights and fused epilogues: the same logits as the plain
torch path and as transformers (1e-5), and bit-identical whatever the batch holds.
bfloat16: the same top-1 results as float32 on a small random model; without oneDNN
(BERTCLI_ONEDNN=0) the same numerics through F.linear.
"""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F

from bertcli import kernels, native

ONEDNN = native.onednn_available(torch.float32)
needs_onednn = pytest.mark.skipif(not ONEDNN, reason="this torch build has no oneDNN linear ops")
CPU = torch.device("cpu")


def _hf_model(family: str, task: str, seed: int = 0, hidden: int = 64, act: str = "gelu"):
    import transformers as tf

    cfg_cls = {"bert": tf.BertConfig, "roberta": tf.RobertaConfig}[family]
    cfg = cfg_cls(vocab_size=211, hidden_size=hidden, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=2 * hidden + 8, max_position_embeddings=320, initializer_range=0.1,
                  hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0, num_labels=3, hidden_act=act)
    name = ("Bert" if family == "bert" else "Roberta") + {
        "fill-mask": "ForMaskedLM", "nsp": "ForNextSentencePrediction", "classify": "ForSequenceClassification",
        "ner": "ForTokenClassification", "encoder": "Model"}[task]
    torch.manual_seed(seed)
    return getattr(tf, name)(cfg).eval()


def _native(hf, task, dtype=None):
    net = native.NativeEncoder(dict(hf.config.to_dict(), num_labels=hf.config.num_labels), task).eval()
    native.load_state(net, hf.state_dict(), "mem", "head", "")
    if dtype is not None:
        net.prepare(CPU, dtype)
    return net


def _batch(family, lengths, seed=1):
    g = torch.Generator().manual_seed(seed)
    pad = 0 if family == "bert" else 1
    L = max(lengths)
    ids = torch.randint(5, 211, (len(lengths), L), generator=g)
    mask = (torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids[mask == 0] = pad
    return ids, mask


def _packed_kinds(net):
    return {m.packed.kind for m in net.modules() if m.__dict__.get("packed") is not None}


@needs_onednn
@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("task", ["fill-mask", "nsp", "classify", "ner", "encoder"])
def test_packed_float32_matches_plain_and_transformers(family, task, monkeypatch):
    if family == "roberta" and task == "nsp":
        pytest.skip("RoBERTa has no NSP head")
    hf = _hf_model(family, task)
    plain, packed = _native(hf, task), _native(hf, task, torch.float32)
    assert _packed_kinds(packed) == {"onednn"} and not _packed_kinds(plain)
    ids, mask = _batch(family, [9, 200, 3, 140])  # crosses 128-row tiles
    with torch.inference_mode():
        ref = hf(input_ids=ids, attention_mask=mask)
        ref = ref.last_hidden_state if task == "encoder" else ref.logits
        a, b = plain(ids, mask), packed(ids, mask)
    if ref.dim() == 3:
        keep = mask.bool()
        ref, a, b = ref[keep], a[keep], b[keep]
    torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(b, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("onednn", ["1", "0"])
def test_bit_identical_whatever_the_batch(dtype, onednn, monkeypatch):
    monkeypatch.setenv("BERTCLI_ONEDNN", onednn)
    hf = _hf_model("bert", "ner")
    net = _native(hf, "ner", dtype)
    lengths = [150, 150, 61, 61, 61, 17, 5, 2]
    ids, mask = _batch("bert", lengths)
    with torch.inference_mode():
        together = net(ids, mask)
        for i, n in enumerate(lengths):
            alone = net(ids[i:i + 1, :n], mask[i:i + 1, :n])[0]
            assert torch.equal(alone, together[i, :n]), (i, n)
        # the same sequences in another batch: other neighbours, other tile rows
        sub = [1, 4, 6]
        other = net(ids[sub], mask[sub])
        for j, i in enumerate(sub):
            assert torch.equal(other[j, :lengths[i]], together[i, :lengths[i]])


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("task", ["fill-mask", "classify", "ner"])
def test_bfloat16_top1_agrees_with_float32(family, task):
    hf = _hf_model(family, task, hidden=128)
    f32, bf16 = _native(hf, task, torch.float32), _native(hf, task, torch.bfloat16)
    assert bf16.word.weight.dtype == torch.float32  # embeddings, LayerNorm, residual stay float32
    ids, mask = _batch(family, [12, 30, 7, 25] * 8, seed=5)
    with torch.inference_mode():
        a, b = f32(ids, mask), bf16(ids, mask)
    assert b.dtype == torch.bfloat16
    keep = mask.bool() if a.dim() == 3 else slice(None)
    a, b = a[keep].float(), b[keep].float()
    agree = (a.argmax(-1) == b.argmax(-1)).float().mean().item()
    assert agree >= 0.95, agree
    assert (a - b).abs().max().item() < 0.1 * a.abs().max().item()


def test_bfloat16_without_onednn_matches_onednn(monkeypatch):
    if not native.onednn_available(torch.bfloat16):
        pytest.skip("no oneDNN bf16 here")
    hf = _hf_model("bert", "classify")
    a = _native(hf, "classify", torch.bfloat16)
    monkeypatch.setenv("BERTCLI_ONEDNN", "0")
    b = _native(hf, "classify", torch.bfloat16)
    assert _packed_kinds(a) == {"onednn"} and _packed_kinds(b) == {"dense"}
    ids, mask = _batch("bert", [12, 30, 7, 25], seed=3)
    with torch.inference_mode():
        torch.testing.assert_close(a(ids, mask).float(), b(ids, mask).float(), atol=2e-2, rtol=2e-2)


def test_float32_without_onednn_is_the_plain_path(monkeypatch):
    monkeypatch.setenv("BERTCLI_ONEDNN", "0")
    hf = _hf_model("bert", "classify")
    plain, prepared = _native(hf, "classify"), _native(hf, "classify", torch.float32)
    assert not _packed_kinds(prepared)
    ids, mask = _batch("bert", [12, 30, 7])
    with torch.inference_mode():
        assert torch.equal(plain(ids, mask), prepared(ids, mask))


@needs_onednn
@pytest.mark.parametrize("act", sorted(native._ACTS))
def test_fused_activation_matches_torch(act):
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(48, 80)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(80, 48, generator=g) * 0.2)
    x = torch.randn(70, 48, generator=g) * 2
    ref = native._ACTS[act][0](F.linear(x, lin.weight, lin.bias))
    lin.packed = native.Packed(lin.weight, lin.bias, torch.float32, "onednn", native.TILE)
    with torch.inference_mode():
        got = native.tiled_linear(x, lin, act=act)
    torch.testing.assert_close(got, ref, atol=1e-5, rtol=1e-5)


@needs_onednn
def test_prepare_again_after_new_weights():
    hf = _hf_model("bert", "classify")
    net = _native(hf, "classify", torch.float32)
    ids, mask = _batch("bert", [12, 30])
    with torch.inference_mode():
        before = net(ids, mask)
    with torch.no_grad():
        net.head.weight.mul_(-1)
    net.prepare(CPU, torch.float32)
    with torch.inference_mode():
        after = net(ids, mask)
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_mask_rows_bit_identical_whatever_the_batch(dtype):
    hf = _hf_model("bert", "fill-mask")
    net = _native(hf, "fill-mask", dtype)
    lengths = [40, 33, 33, 20, 9, 9, 9, 4]
    ids, mask = _batch("bert", lengths, seed=7)
    # a text's mask rows are fixed by the text; which texts share its batch is not
    per_seq = [[n // 2] for n in lengths]
    per_seq[0] += [1, 35]
    per_seq[2] = [0, 30]
    rows = torch.tensor([[i, p] for i, ps in enumerate(per_seq) for p in ps])
    rows = rows[torch.randperm(len(rows), generator=torch.Generator().manual_seed(0))]  # any order
    with torch.inference_mode():
        together = net(ids, mask, mask_rows=rows)
        for i, n in enumerate(lengths):
            alone = net(ids[i:i + 1, :n], mask[i:i + 1, :n], mask_rows=torch.tensor([[0, p] for p in per_seq[i]]))
            for p, got in zip(per_seq[i], alone):
                j = [r.tolist() for r in rows].index([i, p])
                assert torch.equal(got, together[j]), (i, p)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_classify_bit_identical_whatever_the_batch(dtype):
    hf = _hf_model("roberta", "classify")
    net = _native(hf, "classify", dtype)
    lengths = [40, 33, 33, 20, 9, 9, 9, 4, 1]
    ids, mask = _batch("roberta", lengths, seed=9)
    with torch.inference_mode():
        together = net(ids, mask)
        for i, n in enumerate(lengths):
            assert torch.equal(net(ids[i:i + 1, :n], mask[i:i + 1, :n])[0], together[i]), i


@needs_onednn
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, "int8"])
def test_calls_on_several_tiles_give_the_bits_of_the_tiles(dtype, monkeypatch):
    """native.chunk_rows and kernels.step_rows: where the checks pass, a layer runs in calls
    of several 128-row tiles, padded to a multiple of kernels.STEP rows instead of whole tiles; the
    encoder's output is then bit-identical to the tile-by-tile run (BERTCLI_TILED=1), for
    sequences crossing several tiles (2,000+ rows: more than one chunk of 8 tiles) and a
    total that is no multiple of the tile (2,257 tokens)."""
    if dtype == "int8":
        if not native.int8_available():
            pytest.skip("no oneDNN int8 linear")
        dtype = native.INT8
    hf = _hf_model("bert", "ner", seed=3)
    ids, mask = _batch("bert", [9, 200, 3, 140, 77, 300, 64, 310, 290, 305, 299, 280], seed=4)
    chunked = _native(hf, "ner", dtype)
    chunks = [m.packed.chunk for m in chunked.modules() if m.__dict__.get("packed") is not None]
    assert all(c % native.TILE == 0 and c <= kernels.MAX_CHUNK_TILES * native.TILE for c in chunks)
    steps = [m.packed.step for m in chunked.modules() if m.__dict__.get("packed") is not None]
    assert set(steps) <= {kernels.STEP, native.TILE} and chunked.row_step == max(steps)
    assert int(mask.sum()) % native.TILE
    monkeypatch.setenv("BERTCLI_TILED", "1")
    tiled = _native(hf, "ner", dtype)
    assert all(m.packed.chunk == m.packed.step == native.TILE
               for m in tiled.modules() if m.__dict__.get("packed") is not None)
    assert tiled.row_step == native.TILE
    with torch.inference_mode():
        assert torch.equal(chunked(ids, mask), tiled(ids, mask))


def test_chunk_rows_refuses_a_kernel_whose_rows_depend_on_the_call(monkeypatch, tmp_path):
    """A stand-in kernel whose result depends on how many rows it gets (as bf16 with K=1536
    does on this machine from 3 tiles on) keeps the largest power of two of tiles that passed."""
    pk = native.Packed(torch.randn(16, 32), torch.randn(16), torch.float32, "dense", native.TILE)
    pk.kind = "onednn"
    real = torch.ops.mkldnn._linear_pointwise

    class Fake:
        @staticmethod
        def __call__(x, w, b, *a):
            return F.linear(x, w, b) + (1e-3 if x.shape[0] >= 3 * native.TILE else 0.0)

        @staticmethod
        def binary(x, other, w, b, op):
            return F.linear(x, w, b) + other

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", Fake())
    monkeypatch.setenv("BERTCLI_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_CACHE", None)
    kernels._CHUNK.clear()
    try:
        assert native.chunk_rows(pk, 32, native.TILE) == 2 * native.TILE
        # kept on disk for the next process, under a key naming the kind, dtype and shape
        saved = json.loads((tmp_path / "kernels.json").read_text())
        assert [v for k, v in saved.items() if k.endswith(":onednn:torch.float32:32:16:128:False")] == [256]
        kernels._CHUNK.clear()
        monkeypatch.setattr(kernels, "_CACHE", None)
        monkeypatch.setattr(kernels, "_check_chunk", lambda *a: pytest.fail("measured again despite the cache"))
        assert native.chunk_rows(pk, 32, native.TILE) == 2 * native.TILE
    finally:
        kernels._CHUNK.clear()
        monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", real)


@pytest.mark.parametrize("tail_differs", [False, True])
def test_step_rows_pads_to_whole_tiles_where_a_partial_tile_differs(tail_differs, monkeypatch, tmp_path):
    """kernels.step_rows: a stand-in kernel whose rows match the tile's at any row count gives
    calls padded to kernels.STEP rows; one whose rows differ when the call is no whole number of tiles
    (as oneDNN's one-row calls do) keeps whole tiles. Both results are kept on disk."""
    pk = native.Packed(torch.randn(16, 32), torch.randn(16), torch.float32, "dense", native.TILE)
    pk.kind = "onednn"
    real = torch.ops.mkldnn._linear_pointwise

    def lin(x, w, b):
        return F.linear(x, w, b) + (1e-3 if tail_differs and x.shape[0] % native.TILE else 0.0)

    class Fake:
        @staticmethod
        def __call__(x, w, b, *a):
            return lin(x, w, b)

        @staticmethod
        def binary(x, other, w, b, op):
            return lin(x, w, b) + other

    monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", Fake())
    monkeypatch.setenv("BERTCLI_CACHE", str(tmp_path))
    monkeypatch.setattr(kernels, "_CACHE", None)
    kernels._CHUNK.clear()
    try:
        want = native.TILE if tail_differs else kernels.STEP
        assert kernels.step_rows(pk, 32, native.TILE) == want
        assert native.chunk_rows(pk, 32, native.TILE) == kernels.MAX_CHUNK_TILES * native.TILE
        saved = json.loads((tmp_path / "kernels.json").read_text())
        assert [v for k, v in saved.items() if k.endswith(":onednn:torch.float32:32:16:128:False:step")] == [want]
        # an x of 130 rows is padded to the step (or to two tiles), its rows those of the tile-by-tile call
        x = torch.randn(130, 32)
        holder = torch.nn.Linear(32, 16)
        holder.packed = pk
        pk.chunk, pk.step = kernels.MAX_CHUNK_TILES * native.TILE, want
        seen = []
        monkeypatch.setattr(kernels, "_cat", lambda parts: seen.extend(t.shape[0] for t in parts) or torch.cat(parts))
        out = kernels.tiled_linear(x, holder)
        assert seen == [(130 + want - 1) // want * want] and out.shape == (130, 16)
        assert torch.equal(out, F.linear(x, pk.weight, pk.bias))
    finally:
        kernels._CHUNK.clear()
        monkeypatch.setattr(torch.ops.mkldnn, "_linear_pointwise", real)
