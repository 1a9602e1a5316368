"""The torch-free fast path for small inputs (bertcli.fastpath, issue #18).

Reference: the normal path on the same folder (bertcli.loading.load_model: the native torch
encoder, oneDNN-packed as the CLI runs it). Labels, entity spans, token ids and every other
non-score field must be identical; scores may differ by rounding only (numpy's float32
products sum in another order than oneDNN's), bounded by SCORE_BOUND, and logits by
LOGIT_BOUND relative to their scale. Measured (this machine, torch 2.13, numpy 2.4) on 96
real lines (benchmarks/bench.py's) through the shipped defaults: largest score difference
1.7e-6 (sentiment), 2.0e-6 (ner), 1.24e-5 (fill-mask: a softmax over 30,522 logits of
magnitude ~20, whose float32 rounding is ~1e-5); 2.7e-7 on a BERT-base-sized classifier;
the same labels, spans and token ids everywhere. The project's own bound between bertcli and
transformers is 1e-4 (tests/test_parity.py).

Also: nothing on the fast path imports torch or transformers (a subprocess runs the CLI and
reports ``sys.modules``), the switch (a long or slow input takes the normal path, with the
same records in the same order), LoRA merged in numpy as by the torch path, and the numpy
kernels (erfc, GELU, safetensors reader) against their references.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from bertcli import families, native
from bertcli.errors import ModelError
from bertcli.fastpath import ops, switch
from bertcli.fastpath.encoder import NumpyEncoder, apply_lora, read_safetensors
from bertcli.fastpath.model import FastModel, load_fast
from bertcli.loading import load_model
from bertcli.tasks import classify, fill_mask, ner, nsp

#: largest |score difference| allowed between the fast and the normal path (probabilities in
#: [0, 1], printed with 6 decimals; measured at most 1.24e-5, fill-mask, see above)
SCORE_BOUND = 5e-5
#: largest |logit difference| allowed, relative to the largest |logit| (measured <= 5e-7)
LOGIT_BOUND = 1e-5

TEXTS = ["I loved this movie, it was wonderful and moving.", "The food was terrible.",
         "Angela Merkel visited Paris on Tuesday with Emmanuel Macron.", "ok", "Café Müller in Zürich."]


def same(a, b, bound=SCORE_BOUND, path="") -> float:
    """Assert two task results equal except floats (within ``bound``); return the largest float difference."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        return max([same(a[k], b[k], bound, f"{path}.{k}") for k in a] + [0.0])
    if isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), path
        return max([same(x, y, bound, f"{path}[{i}]") for i, (x, y) in enumerate(zip(a, b))] + [0.0])
    if isinstance(a, float) and not isinstance(b, bool):
        assert abs(a - b) <= bound, (path, a, b)
        return abs(a - b)
    assert a == b, (path, a, b)
    return 0.0


# ---------------------------------------------------------------- numpy kernels

def test_erfc_within_its_bound_of_math_erfc():
    z = np.concatenate([np.linspace(0, 10, 200001), [1e-12, 0.5, 1.0, 3.0, 9.5]])
    got = ops.erfc(z.copy())
    ref = np.array([math.erfc(v) for v in z])
    assert np.max(np.abs(got - ref) / ref) < 1.2e-7


def test_gelu_within_2_ulp_of_exact():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(200000) * 2, np.linspace(-12, 12, 20001)]).astype(np.float32)
    x64 = x.astype(np.float64)
    exact = 0.5 * x64 * np.array([math.erfc(-v / math.sqrt(2)) for v in x64])
    got = ops.gelu(x).astype(np.float64)
    ulp = np.spacing(np.abs(exact).astype(np.float32)).astype(np.float64)
    assert np.max(np.abs(got - exact) / ulp) <= 2.5
    assert ops.gelu(x).dtype == np.float32


@pytest.mark.parametrize("act", sorted(families.ACTIVATIONS))
def test_activations_match_torch(act):
    """Every activation the native path accepts, against the torch encoder's own function."""
    assert set(ops.ACTS) == set(families.ACTIVATIONS) == set(native._ACTS)
    x = torch.linspace(-8, 8, 4001)
    ref = native._ACTS[act][0](x).numpy()
    got = ops.ACTS[act](x.numpy())
    assert np.max(np.abs(got - ref)) <= 2e-6


def test_layer_norm_softmax_topk_match_torch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(7, 48, generator=g) * 3
    w, b = torch.randn(48, generator=g), torch.randn(48, generator=g)
    ref = torch.nn.functional.layer_norm(x, (48,), w, b, 1e-12).numpy()
    assert np.max(np.abs(ops.layer_norm(x.numpy(), w.numpy(), b.numpy(), 1e-12) - ref)) <= 2e-6
    assert np.max(np.abs(ops.softmax(x.numpy()) - x.softmax(-1).numpy())) <= 1e-7
    p = x.softmax(-1)
    vals, idx = ops.topk(p.numpy(), 5)
    tv, ti = p.topk(5, dim=-1)
    assert (idx == ti.numpy()).all() and np.allclose(vals, tv.numpy())
    assert ops.topk(np.array([[0.2, 0.5, 0.5, 0.1]], dtype=np.float32), 2)[1].tolist() == [[1, 2]]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16])
def test_safetensors_reader_matches_the_library(tmp_path, dtype):
    from safetensors.torch import load_file, save_file

    g = torch.Generator().manual_seed(1)
    tensors = {"a.weight": torch.randn(5, 7, generator=g).to(dtype), "b": torch.randn(3, generator=g).to(dtype),
               "empty": torch.zeros(0, 4, dtype=dtype), "ids": torch.arange(6).reshape(2, 3)}
    f = tmp_path / "m.safetensors"
    save_file(tensors, str(f), metadata={"format": "pt"})
    got = read_safetensors([f])
    ref = load_file(str(f))
    assert got.keys() == ref.keys()
    for k, v in ref.items():
        want = v.float().numpy() if v.is_floating_point() else v.numpy()
        assert got[k].shape == want.shape and got[k].dtype == want.dtype and np.array_equal(got[k], want), k


def test_safetensors_reader_refuses_a_tensor_outside_the_file(tmp_path):
    head = json.dumps({"w": {"dtype": "F32", "shape": [4, 4], "data_offsets": [0, 64]}}).encode()
    f = tmp_path / "bad.safetensors"
    f.write_bytes(len(head).to_bytes(8, "little") + head + b"\0" * 16)  # 16 of the 64 bytes
    with pytest.raises(ModelError, match="does not fit"):
        read_safetensors([f])


# ---------------------------------------------------------------- the encoder, per family and head

V = 97
#: (transformers config class, its keywords) per variant: the families of bertcli.families.FAMILIES,
#: ELECTRA with and without embeddings_project, DistilBERT with sinusoidal positions and ReLU
VARIANTS = {
    "bert": ("BertConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=40,
                                type_vocab_size=2)),
    "bert-gelu-new": ("BertConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                         intermediate_size=40, hidden_act="gelu_new")),
    "roberta": ("RobertaConfig", dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                                      intermediate_size=40, pad_token_id=1, type_vocab_size=1)),
    "distilbert": ("DistilBertConfig", dict(dim=32, n_layers=2, n_heads=4, hidden_dim=40)),
    "distilbert-sinusoidal-relu": ("DistilBertConfig", dict(dim=32, n_layers=2, n_heads=4, hidden_dim=40,
                                                            sinusoidal_pos_embds=True, activation="relu")),
    "electra": ("ElectraConfig", dict(embedding_size=16, hidden_size=32, num_hidden_layers=2,
                                      num_attention_heads=4, intermediate_size=40)),
    "electra-no-projection": ("ElectraConfig", dict(embedding_size=32, hidden_size=32, num_hidden_layers=2,
                                                    num_attention_heads=4, intermediate_size=40)),
}
HEADS = {"classify": "ForSequenceClassification", "ner": "ForTokenClassification", "fill-mask": "ForMaskedLM",
         "nsp": "ForNextSentencePrediction"}
PREFIX = {"BertConfig": "Bert", "RobertaConfig": "Roberta", "DistilBertConfig": "DistilBert",
          "ElectraConfig": "Electra"}


def _hf(variant: str, task: str, seed: int = 0):
    import transformers as tf

    cls_name, kw = VARIANTS[variant]
    cfg = getattr(tf, cls_name)(vocab_size=V, max_position_embeddings=64, initializer_range=0.3, num_labels=3,
                                **kw)
    torch.manual_seed(seed)
    return getattr(tf, PREFIX[cls_name] + HEADS[task])(cfg).eval()


def _inputs(lengths, seed=1, types=False, pad=0):
    g = torch.Generator().manual_seed(seed)
    L = max(lengths)
    ids = torch.randint(5, V, (len(lengths), L), generator=g)
    mask = (torch.arange(L)[None, :] < torch.tensor(lengths)[:, None]).long()
    ids[mask == 0] = pad
    tt = ((torch.arange(L)[None, :] >= torch.tensor(lengths)[:, None] // 2) & mask.bool()).long() if types else None
    return ids, mask, tt


CASES = [(v, t) for v in VARIANTS for t in ("classify", "ner", "fill-mask")] + [("bert", "nsp")]


@pytest.mark.parametrize("variant,task", CASES)
def test_numpy_encoder_matches_the_native_encoder(variant, task):
    hf = _hf(variant, task)
    cfg = dict(hf.config.to_dict(), num_labels=hf.config.num_labels)
    ref_net = native.NativeEncoder(cfg, task).eval()
    native.load_state(ref_net, hf.state_dict(), "mem", "head", "")
    ref_net.prepare(torch.device("cpu"), torch.float32)  # as the CLI runs it
    net = NumpyEncoder.from_state(cfg, task, {k: v.numpy() for k, v in hf.state_dict().items()}, "mem", "head", "")
    types = variant.startswith(("bert", "electra"))
    ids, mask, tt = _inputs([11, 7, 3, 30], types=types, pad=cfg.get("pad_token_id") or 0)
    rows = torch.tensor([[0, 2], [1, 6], [3, 29], [0, 9], [2, 1]]) if task == "fill-mask" else None
    with torch.inference_mode():
        ref = ref_net(ids, mask, tt, mask_rows=rows).numpy()
    got = net.forward(ids.numpy(), mask.numpy(), None if tt is None else tt.numpy(),
                      mask_rows=None if rows is None else rows.numpy())
    if task == "ner":  # padded positions are not outputs
        ref, got = ref[mask.bool().numpy()], got[mask.bool().numpy()]
    assert got.shape == ref.shape and got.dtype == np.float32
    scale = np.abs(ref).max()
    assert scale > 0.1
    assert np.abs(got - ref).max() <= LOGIT_BOUND * scale, np.abs(got - ref).max()


def test_missing_head_and_nsp_family_are_refused_like_the_native_path():
    hf = _hf("bert", "ner")
    sd = {k: v.numpy() for k, v in hf.state_dict().items() if not k.startswith("classifier.")}
    with pytest.raises(ModelError, match="has no head"):
        NumpyEncoder.from_state(hf.config.to_dict(), "ner", sd, "mem", "head", "hint")
    hf = _hf("roberta", "fill-mask")
    with pytest.raises(ModelError, match="cannot run 'nsp'|has no"):
        NumpyEncoder.from_state(hf.config.to_dict(), "nsp", {k: v.numpy() for k, v in hf.state_dict().items()},
                                "mem", "next-sentence-prediction head", "")


# ---------------------------------------------------------------- whole tasks on model folders

def _both(path, task):
    fast = load_fast(path, task)
    assert isinstance(fast, FastModel), f"{path} should run on the fast path"
    return fast, load_model(path, task, "cpu")


def _run(lm, task, texts):
    if task == "classify":
        return classify.classify(lm, texts, top_k=None)
    if task == "ner":
        return ner.ner(lm, texts)
    if task == "nsp":
        return nsp.nsp(lm, texts[:-1], texts[1:])
    masked = [t.replace(t.split()[0], lm.tokenizer.mask_token, 1) for t in texts]
    masked.append(f"{lm.tokenizer.mask_token} and {lm.tokenizer.mask_token} again")
    return fill_mask.fill_mask(lm, masked, top_k=5)


@pytest.mark.parametrize("fixture,task", [("cls_dir", "classify"), ("multilabel_dir", "classify"),
                                          ("regression_dir", "classify"), ("ner_dir", "ner"),
                                          ("ner_uncased_dir", "ner"), ("mlm_dir", "fill-mask"),
                                          ("pretraining_dir", "nsp"), ("pretraining_dir", "fill-mask")])
def test_tasks_equal_the_normal_path_on_tiny_models(request, fixture, task):
    fast, ref = _both(request.getfixturevalue(fixture), task)
    same(_run(fast, task, TEXTS), _run(ref, task, TEXTS))


#: hub layouts (tests/hub_layouts.py) with a tokenizer.json, one per family the fast path runs
LAYOUTS = [("bert-base-uncased", "fill-mask"), ("bert-base-uncased", "nsp"), ("roberta-base", "fill-mask"),
           ("distilroberta-base", "fill-mask"), ("electra-emotion", "classify"),
           ("roberta-go-emotions", "classify"), ("bert-stsb-regression", "classify")]


@pytest.fixture(scope="module")
def layouts(tmp_path_factory):
    import hub_layouts

    root = tmp_path_factory.mktemp("layouts")
    return {name: hub_layouts.build(name, root / name) for name in {n for n, _ in LAYOUTS}}


@pytest.mark.parametrize("name,task", LAYOUTS)
def test_tasks_equal_the_normal_path_on_hub_layouts(layouts, name, task):
    fast, ref = _both(layouts[name], task)
    same(_run(fast, task, TEXTS), _run(ref, task, TEXTS))


@pytest.mark.minilm
@pytest.mark.parametrize("command,task", [("sentiment", "classify"), ("ner", "ner"), ("fill-mask", "fill-mask")])
def test_shipped_defaults_equal_the_normal_path(minilm_dir, command, task):
    """The shipped LoRA adapters on MiniLM, merged in numpy: same labels, spans and tokens;
    scores within the bound."""
    fast = load_fast(None, command)
    assert isinstance(fast, FastModel)
    ref = load_model(None, command, "cpu")
    texts = TEXTS + ["The food was cold and the waiter was rude.", "She opened the door and walked into the room."]
    same(_run(fast, task, texts), _run(ref, task, texts))


@pytest.mark.minilm
@pytest.mark.parametrize("name", ["sentiment", "ner", "pretraining"])
def test_lora_merge_equals_the_torch_merge(minilm_dir, name):
    from bertcli import defaults
    from safetensors.torch import load_file

    folder = defaults.DEFAULTS_DIR / name
    base = {k: v for k, v in load_file(str(minilm_dir / "model.safetensors")).items()}
    ref = native.apply_lora(base, folder)
    got = apply_lora(read_safetensors([minilm_dir / "model.safetensors"]), folder)
    assert got.keys() == ref.keys()
    for k, v in ref.items():
        assert np.abs(got[k] - v.numpy()).max() <= 1e-6, k


def test_unsupported_folders_take_the_normal_path(tmp_path, layouts, encoder_dir):
    import hub_layouts

    # no tokenizer.json (transformers converts vocab.txt / SentencePiece): the normal path
    assert load_fast(hub_layouts.build("xlmr-ner", tmp_path / "xlmr"), "ner") is None
    assert load_fast(hub_layouts.build("albert-base-v2", tmp_path / "albert"), "fill-mask") is None
    # a bare encoder: the normal path words the missing head
    assert load_fast(encoder_dir, "classify") is None


# ---------------------------------------------------------------- the switch

def test_read_ahead_small_and_long_inputs():
    recs, rest = switch.read_ahead(range(5), blocking=False, max_records=5)
    assert recs == [0, 1, 2, 3, 4] and list(rest) == recs
    recs, rest = switch.read_ahead(range(6), blocking=False, max_records=5)
    assert recs is None and list(rest) == list(range(6))
    recs, rest = switch.read_ahead(iter(range(3)), blocking=True, max_records=5, wait_s=5)
    assert recs == [0, 1, 2]
    recs, rest = switch.read_ahead(iter(range(3000)), blocking=True, max_records=5, wait_s=5)
    assert recs is None and list(rest) == list(range(3000))


def test_read_ahead_does_not_wait_for_a_slow_pipe():
    """``tail -f | bertcli``: after WAIT_S without an end the normal path starts, and reads on."""
    def slow():
        yield "a"
        time.sleep(1.0)
        yield "b"

    t = time.monotonic()
    recs, rest = switch.read_ahead(slow(), blocking=True, max_records=5, wait_s=0.2)
    assert recs is None and time.monotonic() - t < 0.9
    assert list(rest) == ["a", "b"]


@pytest.mark.parametrize("blocking", [False, True])
@pytest.mark.parametrize("n", [2, 8])
def test_read_ahead_raises_a_reader_error_where_it_happened(blocking, n):
    """A reader error ends the input: raised after the records before it, by the iterator
    (for ``-f json`` the writer has opened its array by then), small input or long."""
    def failing():
        yield from range(n)
        raise RuntimeError("no column 'nope'")

    recs, rest = switch.read_ahead(failing(), blocking=blocking, max_records=5, wait_s=2)
    assert recs == (list(range(n)) if n <= 5 else None)
    got = []
    with pytest.raises(RuntimeError, match="no column"):
        for r in rest:
            got.append(r)
    assert got == list(range(n))


@pytest.mark.parametrize("params,env,ok", [
    ({}, {}, True), ({"device": "cpu", "dtype": "float32"}, {}, True), ({"device": "cuda"}, {}, False),
    ({"dtype": "bfloat16"}, {}, False), ({}, {"BERTCLI_BACKEND": "transformers"}, False),
    ({}, {"BERTCLI_BACKEND": "native"}, False), ({}, {"BERTCLI_FASTPATH": "0"}, False)])
def test_fast_path_only_for_cpu_float32_runs(monkeypatch, params, env, ok):
    for k in ("BERTCLI_BACKEND", "BERTCLI_FASTPATH"):
        monkeypatch.delenv(k, raising=False)
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    assert switch.enabled(params) is ok


def test_token_budget_scales_with_the_model():
    minilm = {"model_type": "bert", "hidden_size": 384, "intermediate_size": 1536, "num_hidden_layers": 6}
    base = {"model_type": "bert", "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12}
    assert switch.token_budget(minilm) == switch.MAX_TOKENS
    assert switch.token_budget(base) == switch.MAX_TOKENS // 8


# ---------------------------------------------------------------- the CLI, in a fresh process

_PROBE = r"""
import sys
from bertcli.cli.main import main
try:
    main(sys.argv[1:])
except SystemExit as e:
    code = e.code
heavy = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def _cli(args, stdin=None, **env):
    e = {k: v for k, v in os.environ.items() if k not in ("BERTCLI_MODEL", "BERTCLI_FASTPATH", "BERTCLI_BACKEND")}
    e.update(env)
    p = subprocess.run([sys.executable, "-c", _PROBE, *args], input=stdin, capture_output=True, text=True, env=e,
                       timeout=300)
    heavy = [ln for ln in p.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert heavy, p.stderr[-2000:]
    return p.stdout, heavy[-1][len("HEAVY="):], p.stderr


def _records(text):
    return [json.loads(ln) for ln in text.split("\n") if ln]  # not splitlines(): U+2028 is inside a record


@pytest.mark.parametrize("fixture,command,text", [("cls_dir", "classify", "I loved this movie"),
                                                  ("ner_dir", "ner", "Angela Merkel visited Paris."),
                                                  ("mlm_dir", "fill-mask", "The capital of France is [MASK].")])
def test_one_liner_imports_neither_torch_nor_transformers(request, fixture, command, text):
    model = str(request.getfixturevalue(fixture))
    out, heavy, err = _cli([command, text, "-m", model, "-f", "jsonl"])
    assert heavy == "", err
    ref, heavy_ref, _ = _cli([command, text, "-m", model, "-f", "jsonl"], BERTCLI_FASTPATH="0")
    assert heavy_ref  # the normal path does import torch
    same(_records(out), _records(ref))


@pytest.mark.minilm
@pytest.mark.parametrize("command,text", [("sentiment", "I loved it"),
                                          ("ner", "Angela Merkel met Emmanuel Macron in Paris."),
                                          ("fill-mask", "She opened the [MASK] and walked into the room.")])
def test_one_liner_on_the_defaults(minilm_dir, command, text):
    out, heavy, err = _cli([command, text, "-f", "jsonl"])
    assert heavy == "", err
    ref, _, _ = _cli([command, text, "-f", "jsonl"], BERTCLI_FASTPATH="0")
    same(_records(out), _records(ref))
    if command == "sentiment":
        assert _records(out)[0]["score"] == 0.996318  # issue #18's figure, at the printed precision


def test_long_input_takes_the_normal_path(cls_dir, tmp_path):
    lines = [f"line {i} of a long input" for i in range(switch.MAX_RECORDS + 1)]
    f = tmp_path / "in.txt"
    f.write_text("\n".join(lines) + "\n")
    out, heavy, err = _cli(["classify", "-m", str(cls_dir), "-i", str(f), "-f", "jsonl"])
    assert heavy, "a long input runs on torch"
    ref, _, _ = _cli(["classify", "-m", str(cls_dir), "-i", str(f), "-f", "jsonl"], BERTCLI_FASTPATH="0")
    assert out == ref and len(_records(out)) == len(lines)  # the normal path, bit for bit
    f.write_text("\n".join(lines[:3]) + "\n")
    out, heavy, _ = _cli(["classify", "-m", str(cls_dir), "-i", str(f), "-f", "jsonl"])
    assert heavy == "" and [r["text"] for r in _records(out)] == lines[:3]
    out, heavy, _ = _cli(["classify", "-m", str(cls_dir), "-f", "jsonl"], stdin="\n".join(lines[:3]) + "\n")
    assert heavy == "" and len(_records(out)) == 3  # a pipe that ends at once


def test_errors_are_the_same_on_both_paths(encoder_dir, cls_dir):
    """A folder the fast path cannot run (here: no classification head) is loaded and reported
    by the normal path: the same one-line message; bad records the same way too."""
    _, heavy, err = _cli(["classify", "-m", str(encoder_dir), "x"])
    _, _, err_ref = _cli(["classify", "-m", str(encoder_dir), "x"], BERTCLI_FASTPATH="0")
    strip = lambda s: [ln for ln in s.splitlines() if not ln.startswith("HEAVY=")]
    assert strip(err) == strip(err_ref) and strip(err)[0].startswith("Error: ")
    _, _, err = _cli(["classify", "-m", "/nonexistent/model", "x"])
    assert strip(err) == ["Error: model folder '/nonexistent/model' does not exist; pass --model DIR with a local "
                          "Hugging Face model folder"]
    out, heavy, err = _cli(["classify", "-m", str(cls_dir), "--input-format", "jsonl", "-f", "jsonl",
                            "--on-error", "skip"], stdin='{"text": "good"}\nnot json\n{"text": "bad"}\n')
    out_ref, _, err_ref = _cli(["classify", "-m", str(cls_dir), "--input-format", "jsonl", "-f", "jsonl",
                                "--on-error", "skip"], stdin='{"text": "good"}\nnot json\n{"text": "bad"}\n',
                               BERTCLI_FASTPATH="0")
    assert heavy == "" and len(_records(out)) == 2 and strip(err) == strip(err_ref)
    same(_records(out), _records(out_ref))


# ---------------------------------------------------------------- bad input, on both paths

_CORPUS_COMMANDS = {"classify": ("cls_dir", "single"), "ner": ("ner_dir", "single"), "fill-mask": ("mlm_dir", "mask")}


@pytest.fixture(scope="module")
def badinput_corpus(tmp_path_factory):
    from badinput.make_corpus import write

    root = tmp_path_factory.mktemp("badinput")
    return {p: write(root / p, p) for p in ("single", "mask")}


@pytest.mark.parametrize("command", list(_CORPUS_COMMANDS))
def test_bad_input_corpus_same_on_both_paths(request, badinput_corpus, command):
    """tests/test_badinput.py's corpus (every fault class) through the CLI, in-process, on the
    fast path and on the normal one: the same exit status and stderr (errors, skips, warnings,
    notices), the same records but for scores within the bound."""
    from click.testing import CliRunner

    from bertcli.cli.main import cli

    fixture, profile = _CORPUS_COMMANDS[command]
    model = request.getfixturevalue(fixture)
    fast_runs = 0
    for case, path in badinput_corpus[profile]:
        args = [command, "-m", str(model), "-i", str(path), "-f", "jsonl", "--on-error", "skip"]
        if case.input_format:
            args += ["--input-format", case.input_format]
        res = {}
        for mode in ("auto", "0"):
            r = CliRunner().invoke(cli, args, env={"BERTCLI_FASTPATH": mode, "BERTCLI_MODEL": None,
                                                   "BERTCLI_BACKEND": None}, prog_name="bertcli")
            assert r.exception is None or isinstance(r.exception, SystemExit), r.exc_info
            res[mode] = r
        fast, ref = res["auto"], res["0"]
        assert (fast.exit_code, fast.stderr) == (ref.exit_code, ref.stderr), case.name
        same(_records(fast.stdout), _records(ref.stdout))
        fast_runs += bool(fast.stdout)
    assert fast_runs >= 10
