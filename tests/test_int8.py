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


def test_int8_agrees_with_float32_on_real_sentences(shared_data, monkeypatch):
    """Pure int8 (no float32 fallback: ``BERTCLI_INT8_MARGIN=0``), the shipped sentiment default on
    400 SST-2 dev sentences: measured 99.35 % top-1 agreement on 2,000 lines with outlier
    columns split (98.75 % without; benchmarks/RESULTS.md); asserted >= 97.5 % here, with
    the largest score difference of agreeing labels < 0.2."""
    from bertcli.loading import load_model

    monkeypatch.setenv("BERTCLI_INT8_MARGIN", "0")
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


# ---------------------------------------------------------------- the float32 fallback


def _texts(n: int, seed: int = 7) -> list[str]:
    import random

    rnd = random.Random(seed)
    words = "Angela Merkel visited Paris and Berlin on Tuesday the food was terrible I loved this movie Café".split()
    return [" ".join(rnd.choice(words) for _ in range(rnd.randint(1, 12))) for _ in range(n)]


def _load(path, task, dtype, margin, monkeypatch):
    from bertcli.loading import load_model

    monkeypatch.setenv("BERTCLI_INT8_MARGIN", str(margin))
    return load_model(path, task, "cpu", dtype)


def _one_by_one_gaps(lm, task, texts, pairs=None):
    """Each text's int8 decision gap, from a batch of its own."""
    from bertcli.tasks import ner
    from bertcli.tasks.base import collate, encode_texts

    if task == "ner":
        _, feats = ner.encode(lm, texts, ner.resolve_stride(lm, None))
    else:
        feats, _ = encode_texts(lm.tokenizer, texts, pairs, lm.max_length)
    assert len(feats) == len(texts)  # one window each
    gaps = []
    for f in feats:
        b = collate([f], lm.tokenizer.pad_token_id or 0)
        gaps.append(float(lm.decision_gaps(lm.encode_inputs(b), lm.forward(b))[0]))
    return gaps


def _results(lm, task, texts, pairs, batch_size):
    from bertcli.tasks import classify, ner, nsp
    from bertcli.tasks.base import StreamOptions

    opts = StreamOptions(batch_size=batch_size)
    if task == "classify":
        return classify.classify(lm, texts, top_k=None, opts=opts)
    if task == "nsp":
        return nsp.nsp(lm, texts, pairs, opts=opts)
    return ner.ner(lm, texts, opts=opts)


@pytest.mark.parametrize("task,fixture", [("classify", "cls_dir"), ("nsp", "pretraining_dir"), ("ner", "ner_dir")])
def test_fallback_gives_float32_below_the_margin_and_int8_above(task, fixture, request, monkeypatch):
    """Per text: under the margin its result is exactly float32's, above it exactly pure int8's
    (margin 0), at any batch size; the margin here is the median gap, so both sides occur."""
    path = request.getfixturevalue(fixture)
    texts = _texts(24)
    pairs = _texts(24, seed=8) if task == "nsp" else None
    pure = _load(path, task, "int8", 0, monkeypatch)
    assert pure.fallback is None
    gaps = _one_by_one_gaps(pure, task, texts, pairs)
    s = sorted(gaps)
    margin = (s[11] + s[12]) / 2
    assert s[11] < margin < s[12]
    f32 = _results(_load(path, task, "float32", margin, monkeypatch), task, texts, pairs, 5)
    i8 = _results(pure, task, texts, pairs, 5)
    for bs in (1, 5, 64):
        lm = _load(path, task, "int8", margin, monkeypatch)
        assert lm.fallback is not None and lm.fallback.dtype == torch.float32 and lm.fallback_margin == margin
        got = _results(lm, task, texts, pairs, bs)
        for i, (g, gap) in enumerate(zip(got, gaps)):
            assert g == (f32[i] if gap < margin else i8[i]), (i, gap, margin, bs)
        assert lm.info["fallback_rows"] == 12 and lm.info["rows"] == 24
    assert f32 != i8


def test_fallback_through_lm_forward_reruns_in_the_batch(cls_dir, monkeypatch):
    """``LoadedModel.forward`` (what ``bertcli evaluate`` calls) reruns the rows under the
    margin itself: each row's logits are float32's or pure int8's, exactly."""
    from bertcli.tasks.base import collate, encode_texts

    texts = _texts(16)
    pure = _load(cls_dir, "classify", "int8", 0, monkeypatch)
    f32 = _load(cls_dir, "classify", "float32", 0, monkeypatch)
    lm = _load(cls_dir, "classify", "int8", 1e9, monkeypatch)  # every row under the margin
    feats, _ = encode_texts(lm.tokenizer, texts, None, lm.max_length)
    b = collate(feats, lm.tokenizer.pad_token_id or 0)
    assert torch.equal(lm.forward(b), torch.stack([f32.forward(collate([f], 0))[0] for f in feats]))
    assert not torch.equal(lm.forward(b, refine=False), f32.forward(b))
    assert torch.equal(lm.forward(b, refine=False), pure.forward(b))


def test_decision_gaps_by_hand(ner_dir, cls_dir):
    """classify: top-1 minus top-2 logit; ner: the smallest such gap over the tokens that are
    neither special tokens nor padding."""
    from bertcli.loading import load_model

    lm = load_model(ner_dir, "ner", "cpu", "float32")
    tok = lm.tokenizer
    cls, sep, pad, unk = tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.unk_token_id
    ids = torch.tensor([[cls, 7, 8, sep, pad], [cls, 9, sep, pad, pad], [cls, unk, 9, sep, pad]])
    mask = (torch.arange(5) < torch.tensor([[4], [3], [4]])).long()
    logits = torch.tensor([[[0., 0., 0.1], [2., 1., 0.], [0., 3., 2.5], [9., 9., 9.], [0., 0., 0.]],
                           [[5., 5., 5.], [1., 1.3, -1.], [0., 0., 0.], [4., 4., 4.], [0., 0., 0.]],
                           [[5., 5., 5.], [1., 1.05, 0.], [0., 2., 0.], [4., 4., 4.], [0., 0., 0.]]])
    inputs = {"input_ids": ids, "attention_mask": mask}
    # [UNK] is a text token ner labels: its gap counts (0.05); [CLS], [SEP] and padding do not
    assert torch.allclose(lm.decision_gaps(inputs, logits), torch.tensor([0.5, 0.3, 0.05]))
    # by position: the text tokens' spans (an empty span: no text token, inf)
    assert torch.allclose(lm.decision_gaps(inputs, logits, [(1, 3), (1, 2), (2, 3)]), torch.tensor([0.5, 0.3, 2.0]))
    assert lm.decision_gaps(inputs, logits, [(1, 3), (1, 1), (2, 3)])[1] == float("inf")
    cl = load_model(cls_dir, "classify", "cpu", "float32")
    assert torch.allclose(cl.decision_gaps({}, torch.tensor([[0.2, 1.0, 0.7], [3., -1., 2.]])),
                          torch.tensor([0.3, 1.0]))


def test_no_fallback_where_it_does_not_apply(mlm_dir, regression_dir, multilabel_dir, cls_dir, monkeypatch):
    monkeypatch.delenv("BERTCLI_INT8_MARGIN", raising=False)
    from bertcli.loading import INT8_MARGIN, load_model

    assert load_model(cls_dir, "classify", "cpu", "int8").fallback_margin == INT8_MARGIN
    assert load_model(cls_dir, "classify", "cpu", "float32").fallback is None
    assert load_model(mlm_dir, "fill-mask", "cpu", "int8").fallback is None
    assert load_model(regression_dir, "classify", "cpu", "int8").fallback is None
    assert load_model(multilabel_dir, "classify", "cpu", "int8").fallback is None


def test_margin_by_task_and_head(monkeypatch):
    from types import SimpleNamespace

    from bertcli.loading import INT8_MARGIN, int8_margin

    monkeypatch.delenv("BERTCLI_INT8_MARGIN", raising=False)
    cfg = SimpleNamespace(num_labels=9, problem_type=None)
    assert int8_margin("ner", cfg) == int8_margin("classify", cfg) == int8_margin("nsp", cfg) == INT8_MARGIN
    assert int8_margin("fill-mask", cfg) == int8_margin("encoder", cfg) == 0.0
    assert int8_margin("ner", SimpleNamespace(num_labels=1, problem_type=None)) == 0.0  # no runner-up label
    assert int8_margin("classify", SimpleNamespace(num_labels=3, problem_type="multi_label_classification")) == 0.0
    monkeypatch.setenv("BERTCLI_INT8_MARGIN", " 0.5 ")
    assert int8_margin("ner", cfg) == 0.5
    monkeypatch.setenv("BERTCLI_INT8_MARGIN", "inf")  # every line recomputed: allowed, if pointless
    assert int8_margin("ner", cfg) == float("inf")


@pytest.mark.parametrize("bad", ["abc", "-1", "-inf", "nan"])
def test_a_bad_margin_is_a_one_line_error(cls_dir, mlm_dir, bad):
    res = CliRunner().invoke(cli, ["classify", "-m", str(cls_dir), "--dtype", "int8", "hello"],
                             env={"BERTCLI_INT8_MARGIN": bad})
    assert res.exit_code == 1 and "BERTCLI_INT8_MARGIN" in res.stderr and "Traceback" not in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1
    # read only where it applies: fill-mask has no fallback
    res = CliRunner().invoke(cli, ["fill-mask", "-m", str(mlm_dir), "--dtype", "int8", "a [MASK] b"],
                             env={"BERTCLI_INT8_MARGIN": bad})
    assert res.exit_code == 0, res.stderr


def _conll_sentences(path, n):
    out, cur = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("-DOCSTART-"):
            if cur:
                out.append(" ".join(cur))
                cur = []
                if len(out) == n:
                    break
        else:
            cur.append(line.split()[0])
    return out


def test_int8_meets_the_agreement_floors_on_real_lines(shared_data):
    """Issue #17's floors on the shipped defaults, with the default fallback margin: top-1
    agreement with float32 >= 99.5 % on 400 SST-2 dev sentences (measured 100 % on all 872)
    and identical entity lists >= 99 % on 400 CoNLL-2003 test sentences, while at most 15 % of
    them are recomputed in float32 (so the floors are not met by recomputing everything)."""
    from bertcli.loading import load_model
    from bertcli.tasks import classify, ner

    sst, conll = shared_data / "sst2" / "dev.tsv", shared_data / "conll2003" / "test.txt"
    if not (sst.is_file() and conll.is_file()):
        pytest.skip("sst2/dev.tsv or conll2003/test.txt not in the shared data")
    lines = _lines(sst, 400)
    i8 = load_model(None, "sentiment", "cpu", "int8")
    a = classify.classify(load_model(None, "sentiment", "cpu", "float32"), lines)
    b = classify.classify(i8, lines)
    assert sum(x["label"] == y["label"] for x, y in zip(a, b)) / len(lines) >= 0.995
    assert i8.info["fallback_rows"] <= 0.15 * len(lines)
    sents = _conll_sentences(conll, 400)
    i8 = load_model(None, "ner", "cpu", "int8")
    a = ner.ner(load_model(None, "ner", "cpu", "float32"), sents)
    b = ner.ner(i8, sents)
    same = sum([(e["entity_group"], e["start"], e["end"]) for e in x["entities"]]
               == [(e["entity_group"], e["start"], e["end"]) for e in y["entities"]] for x, y in zip(a, b))
    assert same / len(sents) >= 0.99, same
    assert 0 < i8.info["fallback_rows"] <= 0.15 * len(sents)


def test_unknown_tokens_are_checked_like_words(ner_dir, monkeypatch):
    """A text of out-of-vocabulary symbols is all ``[UNK]`` tokens, which ner labels like words:
    with every text under the margin it gets float32's entities and scores too (a check by
    token id that left out ``[UNK]`` would keep the int8 result)."""
    from bertcli.tasks import ner

    texts = ["🚀 ✈", "✈✈ Men ⓐ", "Angela [MASK] visited Paris"]
    lm = _load(ner_dir, "ner", "int8", 1e9, monkeypatch)
    assert all(t == lm.tokenizer.unk_token_id for t in lm.tokenizer(texts[:1])["input_ids"][0][1:-1])
    assert ner.ner(lm, texts) == ner.ner(_load(ner_dir, "ner", "float32", 0, monkeypatch), texts)
    assert lm.info["fallback_rows"] == 3
