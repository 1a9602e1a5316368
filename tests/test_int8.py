"""``--dtype int8`` (issue #17 item 3): int8 weights (per output channel) and per-row int8
activations in the native encoder's matrix products through oneDNN, outlier activation
columns split into parts, everything else float32.

Checked here: the int8 product equals the exact product of the quantized operands (so the
only error is the quantization's, bounded by hand); outputs are bit-identical whatever the
batching, for every command (per dtype, as for float32); labels agree with float32 on real
SST-2 / CoNLL lines through the shipped defaults within the measured bounds; and int8 is
refused where there is no int8 path (a GPU, the transformers backend, training).
"""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from bertcli import kernels, native
from bertcli.cli.main import cli
from bertcli.errors import DeviceError, ModelError

pytestmark = pytest.mark.skipif(not native.int8_available(), reason="this torch build has no oneDNN int8 linear")

# one_thread: the same autouse one-thread fixture as the determinism tests
from test_determinism import COMMANDS, WHATEVER_BATCHING, _records, _run, one_thread  # noqa: E402,F401


def test_int8_linear_is_the_exact_product_of_the_quantized_operands():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 96, generator=g) * torch.linspace(0.1, 4, 96)  # uneven channels
    lin = torch.nn.Linear(96, 40)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(40, 96, generator=g) * 0.1)
    lin.packed = native.Packed(lin.weight, lin.bias, native.INT8, "int8", native.TILE)
    got = native.tiled_linear(x[:200], lin)  # 200 rows: one partly filled tile
    xq, s = native.quantize_rows(x[:200].clone())
    assert xq.dtype == torch.uint8 and int(xq.min()) >= 1 and int(xq.max()) <= 255
    ws = lin.weight.abs().amax(1) / 127
    wq = torch.round(lin.weight / ws[:, None]).clamp(-127, 127)
    exact = ((xq.double() - 128) @ wq.double().T) * s.double() * ws.double() + lin.bias.double()
    assert torch.allclose(got.double(), exact, rtol=1e-5, atol=1e-5)
    # and the quantization error against float32 stays within its bound:
    # |x - x~| <= s/2 per element, |W - W~| <= ws/2 per element
    ref = x[:200] @ lin.weight.T + lin.bias
    bound = (s / 2) @ lin.weight.abs().sum(1, keepdim=True).T + x[:200].abs() @ (ws[:, None] / 2).expand(-1, 96).T \
        + (s / 2) @ (ws[:, None] / 2).expand(-1, 96).sum(1, keepdim=True).T
    assert bool(((got - ref).abs() <= bound + 1e-4).all())


def test_a_row_does_not_depend_on_the_other_rows():
    lin = torch.nn.Linear(64, 32)
    lin.packed = native.Packed(lin.weight, lin.bias, native.INT8, "int8", native.TILE)
    x = torch.randn(300, 64)
    alone = torch.cat([native.tiled_linear(x[i:i + 1], lin) for i in range(0, 300, 37)])
    together = native.tiled_linear(x, lin)[0::37]
    assert torch.equal(alone, together)


def _outlier_case():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(256, 96, generator=g)
    x[:, 7] *= 30.0  # one outlier feature, as all-MiniLM-L6-v2's column 99
    x[:, 40] *= 9.0
    lin = torch.nn.Linear(96, 40).requires_grad_(False)
    lin.weight.copy_(torch.randn(40, 96, generator=g) * 0.1)
    return x, lin


def test_split_outlier_columns_are_the_exact_product_and_finer():
    """Outlier columns split into parts (Packed's ``outliers``): the int8 product equals the
    exact product of the extended operands, which reconstruct x with every element within
    half the row's (finer) scale; the error against float32 falls well below the plain
    int8 product's."""
    x, lin = _outlier_case()
    cols, parts = torch.tensor([7, 40]), torch.tensor([8, 3])
    plain = native.Packed(lin.weight, lin.bias, native.INT8, "int8", native.TILE)
    split = native.Packed(lin.weight, lin.bias, native.INT8, "int8", native.TILE, (cols, parts))
    xq, s = native.quantize_rows(x.clone(), split.split)
    rep = cols.repeat_interleave(parts - 1)
    width = 96 + int(parts.sum() - 2) + 2  # 107, padded with zero columns (128) to 112
    pad = -width % kernels.INT8_K_MULTIPLE
    assert pad == 5 and split.split[3] == pad and xq.shape == (256, width + pad)
    assert bool((xq[:, width:] == 128).all())
    # the extended columns give x back: column j = parts_j * hi + lo, every error <= s / 2
    v = xq.double() - 128
    back = v[:, :96].clone()
    extra = 96
    for j, (c, n) in enumerate(zip(cols.tolist(), parts.tolist())):
        back[:, c] += v[:, extra:extra + n - 1].sum(1) + v[:, 96 + len(rep) + j]  # high parts + low part
        extra += n - 1
    assert bool(((back * s.double() - x.double()).abs() <= s.double() / 2 + 1e-6).all())
    # the rows' scales are set by the other columns and the outliers' parts: far finer
    assert float(s.mean()) < 0.25 * float(native.quantize_rows(x.clone())[1].mean())
    ext = torch.cat([lin.weight, lin.weight[:, rep], lin.weight[:, cols], torch.zeros(40, pad)], 1)
    ws = ext.abs().amax(1) / 127
    wq = torch.round(ext / ws[:, None]).clamp(-127, 127)
    lin.packed = split
    got = native.tiled_linear(x, lin)
    exact = (v @ wq.double().T) * s.double() * ws.double() + lin.bias.double()
    assert torch.allclose(got.double(), exact, rtol=1e-5, atol=1e-5)
    ref = x @ lin.weight.T + lin.bias
    lin.packed = plain
    err_plain = (native.tiled_linear(x, lin) - ref).abs().mean()
    assert float((got - ref).abs().mean()) < 0.5 * float(err_plain)
    # and a row still does not depend on the other rows
    lin.packed = split
    alone = torch.cat([native.tiled_linear(x[i:i + 1], lin) for i in range(0, 256, 37)])
    assert torch.equal(alone, got[0::37])


def test_load_time_calibration_finds_the_outlier_feature(cls_dir):
    """prepare(..., calibration) splits the column the calibration text makes largest: a tiny
    model whose embeddings put a 40x feature in column 3 gets column 3 split in every
    projection that reads the residual stream."""
    from bertcli.loading import int8_calibration, load_model

    lm = load_model(cls_dir, "classify", "cpu", "float32")
    net = lm.model
    with torch.no_grad():
        net.emb_ln.bias[3] = 40.0  # after the embedding LayerNorm: feature 3 is huge everywhere
    net.prepare("cpu", native.INT8, calibration=int8_calibration(lm.tokenizer))
    qkv = net.layers[0].qkv.packed
    assert qkv.split is not None and 3 in qkv.split[0].tolist()
    assert int(qkv.split[1][qkv.split[0].tolist().index(3)]) > 1
    net.prepare("cpu", native.INT8)  # without calibration: nothing split
    assert net.layers[0].qkv.packed.split is None


@pytest.mark.parametrize("cmd", list(COMMANDS))
def test_int8_output_is_byte_identical_whatever_the_batch_size(cmd, request, tmp_path):
    model = request.getfixturevalue(COMMANDS[cmd])
    recs = _records(cmd)
    path = tmp_path / "in.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs), encoding="utf-8")
    outs = [_run([cmd, "-m", model, "-i", path, "-f", "jsonl", "-q", "--dtype", "int8", *b], "")
            for b in WHATEVER_BATCHING]
    assert len(outs[0].splitlines()) == len(recs)
    for b, out in zip(WHATEVER_BATCHING[1:], outs[1:]):
        assert out == outs[0], f"{cmd} int8 {' '.join(b)} differs from -b 1"
    f32 = _run([cmd, "-m", model, "-i", path, "-f", "jsonl", "-q"], "")
    assert f32 != outs[0]  # int8 really ran (scores differ in the 6th decimal at least)


def _lines(path, n):
    out = []
    for line in path.read_text(encoding="utf-8").splitlines()[1:]:
        out.append(line.split("\t")[0])
        if len(out) == n:
            break
    return out


def test_int8_agrees_with_float32_on_real_sentences(shared_data):
    """The shipped sentiment default on 400 SST-2 dev sentences: measured 99.35 % top-1
    agreement on 2,000 lines with outlier columns split (98.75 % without; benchmarks/
    RESULTS.md); asserted >= 97.5 % here, with
    the largest score difference of agreeing labels < 0.2."""
    from bertcli.loading import load_model
    from bertcli.tasks import classify

    lines = _lines(shared_data / "sst2" / "dev.tsv", 400) if (shared_data / "sst2" / "dev.tsv").is_file() \
        else pytest.skip("sst2/dev.tsv not in the shared data")
    f32 = classify.classify(load_model(None, "sentiment", "cpu", "float32"), lines)
    i8 = classify.classify(load_model(None, "sentiment", "cpu", "int8"), lines)
    agree = sum(a["label"] == b["label"] for a, b in zip(f32, i8)) / len(lines)
    assert agree >= 0.975, agree
    assert max(abs(a["score"] - b["score"]) for a, b in zip(f32, i8) if a["label"] == b["label"]) < 0.2
    assert any(a["score"] != b["score"] for a, b in zip(f32, i8))


def test_int8_is_refused_where_there_is_no_int8_path(cls_dir, monkeypatch):
    from bertcli.device import resolve
    from bertcli.loading import load_model

    assert resolve("auto", "int8") == (torch.device("cpu"), torch.int8)  # auto picks the CPU
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError):
            resolve("cuda", "int8")
    net = native.NativeEncoder({"model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 1,
                                "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 20},
                               "classify")
    with pytest.raises(ModelError, match="CPU only"):
        net.prepare("meta", native.INT8)
    monkeypatch.setenv("BERTCLI_BACKEND", "transformers")
    with pytest.raises(ModelError, match="native encoder"):
        load_model(cls_dir, "classify", "cpu", "int8")
    res = CliRunner().invoke(cli, ["classify", "-m", str(cls_dir), "--dtype", "int8", "hello"])
    assert res.exit_code == 1 and "native encoder" in res.stderr and "Traceback" not in res.stderr


def test_training_refuses_int8(cls_dir):
    from bertcli.train.options import TrainError
    from bertcli.train.core import _fit
    from bertcli.train.options import TrainOptions

    with pytest.raises(TrainError, match="inference only"):
        _fit(None, TrainOptions(dtype="int8", device="cpu"), None)
