"""``--explain`` and :mod:`bertcli.tasks.explain`: integrated gradients on the word embeddings.

References: captum's ``LayerIntegratedGradients`` on transformers' model class of the same
folder (the word embedding layer, the same baseline ids, ``n_steps`` and method), token by
token; the model's own inference path for F(x) and F(x') (the baseline is the embedding of
``[PAD]`` ids, so F(x') is the model run on those ids); the tokenizer's ``word_ids`` and
``offset_mapping`` through transformers' ``AutoTokenizer`` on the Unicode corpus of
tests/test_tokenize.py; and sentences where one word decides the label, checked by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

import hub_layouts as H
from bertcli import load_model
from bertcli.cli.main import cli
from bertcli.errors import UsageError
from bertcli.tasks import explain as X
from bertcli.tasks.classify import classify
from bertcli.tasks.fill_mask import fill_mask
from bertcli.tasks.ner import ner
from test_tokenize import UNICODE
from tiny import build_model

captum = pytest.importorskip("captum", reason="captum is the reference implementation (pip install captum)")
from captum.attr import LayerIntegratedGradients  # noqa: E402

TEXTS = ["I loved this movie, it was wonderful.", "The food was terrible and the service was even worse.",
         "Café Müller in Zürich 😀", ""]
NER_TEXTS = ["Angela Merkel visited Paris on Tuesday with Emmanuel Macron.",
             "Barack Obama was born in Hawaii and studied at Columbia University."]
MLM_TEXTS = ["The capital of France is [MASK] and [MASK] is Berlin.", "[MASK] loved this movie."]


def invoke(args, input=None, env=None):
    full_env = {"BERTCLI_MODEL": None, "COLUMNS": "200"}
    full_env.update(env or {})
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input, env=full_env, prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


def jsonl(stdout: str) -> list[dict]:
    return [json.loads(line) for line in stdout.splitlines()]


@pytest.fixture(scope="module")
def layout(tmp_path_factory):
    root = tmp_path_factory.mktemp("explain-layouts")
    built = {}

    def get(name):
        if name not in built:
            built[name] = H.build(name, root / name)
        return built[name]

    return get


@pytest.fixture(scope="module")
def cls_uncased_dir(tmp_path_factory):
    return build_model(tmp_path_factory.mktemp("cls-uncased"), "classify", lowercase=True)


# ---------------------------------------------------------------- the reference: captum

def hf_model(path: Path, task: str):
    import transformers as tf

    cls = {"classify": tf.AutoModelForSequenceClassification, "ner": tf.AutoModelForTokenClassification,
           "fill-mask": tf.AutoModelForMaskedLM}[task]
    return cls.from_pretrained(str(path), local_files_only=True, dtype=torch.float32).eval()


def captum_ig(model, inp: X.IGInput, value, steps=50, method="gausslegendre", pad_id=0):
    """Token attributions ``(L,)`` and the convergence delta from captum's
    LayerIntegratedGradients on the word embeddings; ``value(logits)`` -> ``(N,)``."""
    ids = torch.tensor([inp.input_ids])
    base = torch.tensor([[t if f else pad_id for t, f in zip(inp.input_ids, inp.fixed)]])
    mask = torch.ones_like(ids)
    uses_tt = inp.token_type_ids is not None and getattr(model.config, "type_vocab_size", 0) > 1
    tt = torch.tensor([inp.token_type_ids]) if uses_tt else None

    def forward(ids, mask, *rest):
        kw = {"token_type_ids": rest[0]} if rest else {}
        return value(model(input_ids=ids, attention_mask=mask, **kw).logits)

    lig = LayerIntegratedGradients(forward, model.get_input_embeddings())
    extra = (mask, tt) if tt is not None else (mask,)
    attr, delta = lig.attribute(ids, baselines=base, additional_forward_args=extra, n_steps=steps, method=method,
                                return_convergence_delta=True)
    return attr.sum(-1)[0].double().numpy(), float(delta[0])


def classify_input(lm, text: str, pair: str | None = None, label: int = 0) -> X.IGInput:
    enc = lm.tokenizer([text], [pair] if pair is not None else None, return_token_type_ids=True)
    ids = enc["input_ids"][0]
    fixed = [s is None for s in enc.sequence_ids(0)]
    return X.IGInput(ids, enc["token_type_ids"][0], fixed, [X.Target([(None, [label])])])


def assert_attr_close(got: np.ndarray, want: np.ndarray, rel=2e-5):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=0, atol=rel * scale)


# ---------------------------------------------------------------- quadrature

@pytest.mark.parametrize("steps", [1, 2, 7, 50])
def test_quadrature(steps):
    from captum.attr._utils.approximation_methods import approximation_parameters

    sizes, alphas = approximation_parameters("gausslegendre")
    a, w = X.quadrature(steps, "gausslegendre")
    np.testing.assert_allclose(a, alphas(steps), atol=1e-12)
    np.testing.assert_allclose(w, sizes(steps), atol=1e-12)
    if steps > 1:
        sizes, alphas = approximation_parameters("riemann_trapezoid")
        a, w = X.quadrature(steps, "trapezoid")
        np.testing.assert_allclose(a, alphas(steps), atol=1e-6)
        # captum's trapezoid steps are 1/n (they sum to (n - 1)/n); the rule's are 1/(n - 1)
        np.testing.assert_allclose(w, np.array(sizes(steps)) * steps / (steps - 1), atol=1e-12)
        # exact on a straight line
        assert sum(wi * (3 * ai + 1) for ai, wi in zip(a, w)) == pytest.approx(2.5)
    assert sum(w) == pytest.approx(1.0)


def test_quadrature_refuses_bad_steps():
    with pytest.raises(UsageError, match="at least 1"):
        X.quadrature(0)
    with pytest.raises(UsageError, match="at least 2"):
        X.quadrature(1, "trapezoid")
    with pytest.raises(UsageError, match="unknown integration method"):
        X.quadrature(5, "simpson")


# ---------------------------------------------------------------- agreement with captum

@pytest.mark.parametrize("backend", ["native", "transformers"])
@pytest.mark.parametrize("method", X.METHODS)
def test_classify_equals_captum(cls_dir, monkeypatch, backend, method):
    monkeypatch.setenv("BERTCLI_BACKEND", backend)
    lm = load_model(str(cls_dir), "classify", "cpu")
    assert lm.native == (backend == "native")
    model = hf_model(cls_dir, "classify")
    inputs = [classify_input(lm, t, label=k % 2) for k, t in enumerate(TEXTS[:3])]
    inputs.append(classify_input(lm, "He opened the fridge.", "It was empty.", label=1))
    got = X.integrated_gradients(lm, inputs, steps=20, method=method)
    for inp, (r,) in zip(inputs, got):
        label = inp.targets[0].terms[0][1][0]
        if method == "gausslegendre":
            want, delta = captum_ig(model, inp, lambda lg: lg[:, label], steps=20)
            assert r.delta == pytest.approx(delta, abs=2e-5)
        else:  # captum's riemann_trapezoid: the same points, weights (n - 1)/n of the rule's
            want, _ = captum_ig(model, inp, lambda lg: lg[:, label], steps=20, method="riemann_trapezoid")
            want = want * 20 / 19
        assert_attr_close(r.attributions, want)
        assert all(r.attributions[k] == 0.0 for k, f in enumerate(inp.fixed) if f)


@pytest.mark.parametrize("name", ["distilbert-sst2", "cardiffnlp-twitter-roberta", "electra-emotion",
                                  "deberta-v3-nli"])
def test_families_equal_captum(layout, name):
    """The native encoder's differentiable forward (DistilBERT's ReLU head, RoBERTa's tanh head and
    fairseq positions, ELECTRA's GELU head and embedding projection) and the transformers path
    (DeBERTa-v3) against captum on transformers' class."""
    path = layout(name)
    lm = load_model(str(path), "classify", "cpu")
    assert lm.native == (name != "deberta-v3-nli")
    model = hf_model(path, "classify")
    pad = lm.tokenizer.pad_token_id
    inputs = [classify_input(lm, t, label=lm.config.num_labels - 1) for t in TEXTS[:2]]
    for inp, (r,) in zip(inputs, X.integrated_gradients(lm, inputs, steps=16)):
        label = inp.targets[0].terms[0][1][0]
        want, delta = captum_ig(model, inp, lambda lg: lg[:, label], steps=16, pad_id=pad)
        assert_attr_close(r.attributions, want)
        if name == "cardiffnlp-twitter-roberta":
            # captum's delta runs the model on the baseline ids, whose [PAD]s move RoBERTa's
            # positions (fairseq positions skip padding): not the path it integrated along,
            # whose positions come from the real ids. bertcli's F(x') keeps them.
            ids = torch.tensor([inp.input_ids])
            base = torch.tensor([[t if f else pad for t, f in zip(inp.input_ids, inp.fixed)]])
            emb = model.get_input_embeddings()
            with torch.no_grad():
                fx = float(model(input_ids=ids).logits[0, label])
                base_emb = emb(base)
                h = emb.register_forward_hook(lambda m, a, out: base_emb)
                try:
                    fb = float(model(input_ids=ids).logits[0, label])  # positions of the real ids
                finally:
                    h.remove()
            assert (r.logit, r.baseline_logit) == (pytest.approx(fx, abs=1e-5), pytest.approx(fb, abs=1e-5))
            assert r.delta == pytest.approx(float(want.sum()) - (fx - fb), abs=5e-5)
            assert abs(delta - r.delta) > 0.1  # captum's is another quantity here
        else:
            assert r.delta == pytest.approx(delta, abs=5e-5)


def test_ner_entity_equals_captum(ner_dir):
    lm = load_model(str(ner_dir), "ner", "cpu")
    model = hf_model(ner_dir, "ner")
    res = ner(lm, NER_TEXTS, aggregation="simple")
    got = X.explain_ner(lm, NER_TEXTS, res, aggregation="simple", steps=20)
    enc = lm.tokenizer(NER_TEXTS, return_token_type_ids=True, return_offsets_mapping=True)
    n_checked = 0
    for i, (r, per) in enumerate(zip(res, got)):
        assert len(per) == len(r["entities"]) > 0
        for ent, e in zip(r["entities"][:3], per[:3]):
            # the entity's tokens and, per token, the tag of its type it scores highest
            inp = classify_input(lm, NER_TEXTS[i])
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([inp.input_ids])).logits[0]
            names = [lm.config.id2label[k] for k in range(lm.config.num_labels)]
            cands = [k for k, n in enumerate(names) if n[2:] == ent["entity_group"]]
            pos = [j for j, (s, t) in enumerate(enc["offset_mapping"][i])
                   if t > s and s < ent["end"] and t > ent["start"] and enc.sequence_ids(i)[j] == 0]
            cls = [cands[int(logits[j, cands].argmax())] for j in pos]
            want, delta = captum_ig(model, inp, lambda lg: lg[:, pos, cls].sum(-1), steps=20)
            words = e["attributions"]
            want_words = X.words(X._doc(enc, i, (NER_TEXTS[i],)), want)
            assert [w["word"] for w in words] == [w["word"] for w in want_words]
            np.testing.assert_allclose([w["score"] for w in words], [w["score"] for w in want_words],
                                       atol=2e-5 * max(1.0, np.abs(want).max()))
            assert e["explanation"]["delta"] == pytest.approx(delta, abs=5e-5)
            n_checked += 1
    assert n_checked >= 4


def test_fill_mask_top_candidate_equals_captum(mlm_dir):
    lm = load_model(str(mlm_dir), "fill-mask", "cpu")
    model = hf_model(mlm_dir, "fill-mask")
    res = fill_mask(lm, MLM_TEXTS, top_k=2)
    got = X.explain_fill_mask(lm, MLM_TEXTS, res, steps=20)
    tok = lm.tokenizer
    for i, (r, per) in enumerate(zip(res, got)):
        assert [e["mask"] for e in per] == list(range(len(r["predictions"])))
        enc = tok([MLM_TEXTS[i]], return_token_type_ids=True, return_offsets_mapping=True)
        ids = enc["input_ids"][0]
        masks = [j for j, t in enumerate(ids) if t == tok.mask_token_id]
        for e, preds, pos in zip(per, r["predictions"], masks):
            assert e["token"] == preds[0]["token"] and e["token_str"] == preds[0]["token_str"]
            assert MLM_TEXTS[i][e["start"]:e["end"]] == "[MASK]"
            inp = X.IGInput(ids, enc["token_type_ids"][0],
                            [s is None or t == tok.mask_token_id for s, t in zip(enc.sequence_ids(0), ids)], [])
            want, delta = captum_ig(model, inp, lambda lg: lg[:, pos, e["token"]], steps=20)
            want_words = X.words(X._doc(enc, 0, (MLM_TEXTS[i],)), want)
            np.testing.assert_allclose([w["score"] for w in e["attributions"]], [w["score"] for w in want_words],
                                       atol=2e-5 * max(1.0, np.abs(want).max()))
            assert e["explanation"]["delta"] == pytest.approx(delta, abs=5e-5)
            # the masks are held in the baseline: score 0
            assert [w["score"] for w in e["attributions"] if w["word"] == "[MASK]"] == [0.0] * len(masks)


def test_albert_fill_mask_transformers_path(layout):
    """A family only transformers runs (ALBERT: factorised embeddings, the MLM head found by logits)."""
    path = layout("albert-base-v2")
    lm = load_model(str(path), "fill-mask", "cpu")
    assert not lm.native
    model = hf_model(path, "fill-mask")
    text = "The capital of France is [MASK]."
    res = fill_mask(lm, [text], top_k=1)
    (e,) = X.explain_fill_mask(lm, [text], res, steps=16)[0]
    tok = lm.tokenizer
    enc = tok([text], return_token_type_ids=True, return_offsets_mapping=True)
    ids = enc["input_ids"][0]
    pos = ids.index(tok.mask_token_id)
    inp = X.IGInput(ids, enc["token_type_ids"][0],
                    [s is None or t == tok.mask_token_id for s, t in zip(enc.sequence_ids(0), ids)], [])
    want, delta = captum_ig(model, inp, lambda lg: lg[:, pos, e["token"]], steps=16, pad_id=tok.pad_token_id)
    assert sum(w["score"] for w in e["attributions"]) == pytest.approx(float(want.sum()), abs=1e-4)
    assert e["explanation"]["delta"] == pytest.approx(delta, abs=5e-5)


# ---------------------------------------------------------------- completeness

def _logit(lm, ids: list[int], label: int) -> float:
    batch = {"input_ids": torch.tensor([ids]), "attention_mask": torch.ones(1, len(ids), dtype=torch.long),
             "token_type_ids": torch.zeros(1, len(ids), dtype=torch.long)}
    return float(lm.forward(batch)[0, label])


def check_completeness(lm, texts, steps=50):
    res = classify(lm, texts)
    names = [lm.config.id2label[k] for k in range(lm.config.num_labels)]
    labels = [names.index(r["label"]) for r in res]
    few = X.explain_classify(lm, texts, labels=labels, steps=4)
    got = X.explain_classify(lm, texts, labels=labels, steps=steps)
    pad = lm.tokenizer.pad_token_id
    for text, label, e, e4 in zip(texts, labels, got, few):
        ex = e["explanation"]
        ids = lm.tokenizer([text])["input_ids"][0][:lm.max_length]
        base = [ids[0]] + [pad] * (len(ids) - 2) + [ids[-1]]
        # F(x) and F(x') from the model's own inference path (native packed encoder)
        assert ex["logit"] == pytest.approx(_logit(lm, ids, label), abs=1e-4)
        assert ex["baseline_logit"] == pytest.approx(_logit(lm, base, label), abs=1e-4)
        total = sum(w["score"] for w in e["attributions"])
        # completeness: the words' scores add up to the logit change, within the reported delta
        assert total == pytest.approx(ex["logit"] - ex["baseline_logit"] + ex["delta"], abs=1e-6)
        assert abs(total - (ex["logit"] - ex["baseline_logit"])) <= abs(ex["delta"]) + 1e-6
        change = abs(ex["logit"] - ex["baseline_logit"])
        assert abs(ex["delta"]) <= 0.01 * change + 1e-3
        # more steps, a smaller error
        assert abs(ex["delta"]) <= abs(e4["explanation"]["delta"]) + 1e-6
    return got


def test_completeness_tiny(cls_dir):
    check_completeness(load_model(str(cls_dir), "classify", "cpu"), TEXTS)


@pytest.mark.minilm
def test_completeness_default_sentiment_on_real_lines(minilm_dir, shared_data):
    lines = (shared_data / "sst2" / "dev.tsv").read_text(encoding="utf-8").splitlines()[1:7]
    texts = [ln.split("\t")[0] for ln in lines]
    got = check_completeness(load_model(None, "classify", "cpu", default="sentiment"), texts)
    assert all(e["attributions"] for e in got)


def test_completeness_ner_and_fill_mask(ner_dir, mlm_dir):
    """Completeness within the reported delta, and the delta going to 0 with more steps (the
    tiny random models, drawn with a large std, are far more curved than trained ones)."""
    got = {}
    for steps in (10, 200):
        lm = load_model(str(ner_dir), "ner", "cpu")
        got[steps] = [e for per in X.explain_ner(lm, NER_TEXTS, ner(lm, NER_TEXTS), steps=steps) for e in per]
        lm = load_model(str(mlm_dir), "fill-mask", "cpu")
        got[steps] += [e for per in X.explain_fill_mask(lm, MLM_TEXTS, fill_mask(lm, MLM_TEXTS), steps=steps)
                       for e in per]
    assert len(got[200]) >= 6
    for e in got[10] + got[200]:
        ex = e["explanation"]
        total = sum(w["score"] for w in e["attributions"])
        assert total == pytest.approx(ex["logit"] - ex["baseline_logit"] + ex["delta"], abs=1e-6)
    errors = {n: sum(abs(e["explanation"]["delta"]) for e in got[n]) for n in got}
    changes = sum(abs(e["explanation"]["logit"] - e["explanation"]["baseline_logit"]) for e in got[200])
    assert errors[200] < errors[10] / 20 and errors[200] < 0.01 * changes


# ---------------------------------------------------------------- batching

def test_batching_does_not_change_results(cls_dir):
    lm = load_model(str(cls_dir), "classify", "cpu")
    texts = TEXTS + ["a b c d e f g h i j k l m n o p q r s t u v w x y z " * 3]
    together = X.explain_classify(lm, texts, labels=[0] * len(texts), steps=12)
    # a budget far below one text's rows: every text is cut into several passes
    split = X.explain_classify(lm, texts, labels=[0] * len(texts), steps=12, max_tokens=60)
    for k, t in enumerate(texts):
        (alone,) = X.explain_classify(lm, [t], labels=[0], steps=12)
        for other in (together[k], split[k]):
            assert [w["word"] for w in other["attributions"]] == [w["word"] for w in alone["attributions"]]
            np.testing.assert_allclose([w["score"] for w in other["attributions"]],
                                       [w["score"] for w in alone["attributions"]], atol=2e-5)
            for key in ("logit", "baseline_logit", "delta"):
                assert other["explanation"][key] == pytest.approx(alone["explanation"][key], abs=2e-5)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(1, 300), min_size=1, max_size=12), st.integers(2, 60), st.integers(16, 5000))
def test_plan_covers_every_row_once(lengths, n_rows, budget):
    inputs = [X.IGInput([0] * n, None, [False] * n, []) for n in lengths]
    batches = X.plan(inputs, n_rows, budget)
    seen = {i: [] for i in range(len(inputs))}
    for batch in batches:
        rows = sum(n for _, _, n in batch)
        Lb = max(len(inputs[i]) for i, _, _ in batch)
        # within the budget, unless one piece of the two end points alone exceeds it
        assert rows * Lb <= budget or (len(batch) == 1 and batch[0][2] <= 2)
        for i, r0, n in batch:
            assert n >= 1
            seen[i].append((r0, n))
    for i, pieces in seen.items():
        rows = [r for r0, n in pieces for r in range(r0, r0 + n)]
        assert rows == list(range(n_rows))  # once each, in order
        assert pieces[0][0] == 0 and pieces[0][1] >= 2  # the end points share the first piece


def test_long_texts_windows(ner_dir, mlm_dir, cls_dir):
    """Texts longer than the model's 128 tokens: classify truncates, ner explains each entity
    in its window, fill-mask each mask in the window centred on it."""
    long = " ".join(NER_TEXTS * 5)
    lm = load_model(str(ner_dir), "ner", "cpu")
    res = ner(lm, [long], aggregation="simple")
    (per,) = X.explain_ner(lm, [long], res, aggregation="simple", steps=8)
    assert len(per) == len(res[0]["entities"]) > 10
    for ent, e in zip(res[0]["entities"], per):
        words = e["attributions"]
        assert words and all(long[w["start"]:w["end"]] == w["word"] for w in words)
        assert len(words) < 128 and min(w["start"] for w in words) <= ent["start"] < max(w["end"] for w in words)
        ex = e["explanation"]
        assert sum(w["score"] for w in words) == pytest.approx(ex["logit"] - ex["baseline_logit"] + ex["delta"],
                                                                abs=1e-5)
    lm = load_model(str(mlm_dir), "fill-mask", "cpu")
    text = "The capital of France is [MASK]. " + "It was the best of times. " * 25 + "[MASK] loved it."
    res = fill_mask(lm, [text], top_k=1)
    assert res[0]["truncated"]
    per = X.explain_fill_mask(lm, [text], res, steps=8)[0]
    assert [e["mask"] for e in per] == [0, 1]
    assert per[0]["attributions"][0]["start"] == 0 and per[1]["attributions"][-1]["end"] == len(text)
    lm = load_model(str(cls_dir), "classify", "cpu")
    (e,) = X.explain_classify(lm, [long], labels=[0], steps=8)
    assert e["attributions"][0]["start"] == 0 and e["attributions"][-1]["end"] < len(long) - 100  # truncated


# ---------------------------------------------------------------- words and offsets

def expected_words(path: Path, text: str) -> list[tuple[int, int]]:
    """Word spans from transformers' tokenizer: the union of each word's token offsets, widened
    to grapheme clusters (regex \\X), overlapping words merged."""
    import regex
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    enc = tok(text, return_offsets_mapping=True)
    spans: dict[int, list[int]] = {}
    for w, (s, e) in zip(enc.word_ids(), enc["offset_mapping"]):
        if w is not None and e > s:
            spans.setdefault(w, [s, e])
            spans[w] = [min(spans[w][0], s), max(spans[w][1], e)]
    bounds = [m.start() for m in regex.finditer(r"\X", text)] + [len(text)]
    out: list[list[int]] = []
    for w in sorted(spans):
        s, e = spans[w]
        s = max(b for b in bounds if b <= s)
        e = min(b for b in bounds if b >= e)
        if out and s < out[-1][1]:
            out[-1] = [min(out[-1][0], s), max(out[-1][1], e)]
        else:
            out.append([s, e])
    return [tuple(x) for x in out]


def check_offsets(path: Path, lm):
    got = X.explain_classify(lm, UNICODE, labels=[0] * len(UNICODE), steps=2)
    for text, e in zip(UNICODE, got):
        words = e["attributions"]
        assert [(w["start"], w["end"]) for w in words] == expected_words(path, text), text
        assert all(text[w["start"]:w["end"]] == w["word"] for w in words)
        ex = e["explanation"]
        assert sum(w["score"] for w in words) == pytest.approx(ex["logit"] - ex["baseline_logit"] + ex["delta"],
                                                                abs=1e-5)


def test_offsets_unicode_cased(cls_dir):
    check_offsets(cls_dir, load_model(str(cls_dir), "classify", "cpu"))


def test_offsets_unicode_uncased(cls_uncased_dir):
    check_offsets(cls_uncased_dir, load_model(str(cls_uncased_dir), "classify", "cpu"))


def test_offsets_unicode_byte_level_bpe(layout):
    path = layout("cardiffnlp-twitter-roberta")
    check_offsets(path, load_model(str(path), "classify", "cpu"))


@pytest.mark.minilm
def test_offsets_unicode_default_sentiment(minilm_dir):
    lm = load_model(None, "classify", "cpu", default="sentiment")
    check_offsets(Path(lm.path), lm)


def test_words_of_pairs(cls_dir):
    lm = load_model(str(cls_dir), "classify", "cpu")
    (e,) = X.explain_classify(lm, ["He opened the fridge."], ["It was empty."], labels=[1], steps=4)
    words = e["attributions"]
    assert [(w["word"], w["sequence_id"]) for w in words] == [
        ("He", 0), ("opened", 0), ("the", 0), ("fridge", 0), (".", 0), ("It", 1), ("was", 1), ("empty", 1), (".", 1)]
    assert words[5]["start"] == 0 and words[-1]["end"] == len("It was empty.")


# ---------------------------------------------------------------- hand-checked

@pytest.mark.minilm
@pytest.mark.parametrize("text,label,word", [
    ("The food was terrible.", "negative", "terrible"),
    ("This movie was wonderful.", "positive", "wonderful"),
    ("What a boring film.", "negative", "boring"),
    ("I hated every minute of it.", "negative", "hated"),
])
def test_deciding_word_ranks_first(minilm_dir, text, label, word):
    """One word carries the sentiment: it gets the largest attribution for the predicted label,
    and explaining the other label turns it into the most negative one."""
    lm = load_model(None, "classify", "cpu", default="sentiment")
    (res,) = classify(lm, [text])
    assert res["label"] == label
    names = [lm.config.id2label[k] for k in range(lm.config.num_labels)]
    (e,) = X.explain_classify(lm, [text], labels=[names.index(label)])
    assert max(e["attributions"], key=lambda w: w["score"])["word"] == word
    (other,) = X.explain_classify(lm, [text], labels=[1 - names.index(label)])
    assert min(other["attributions"], key=lambda w: w["score"])["word"] == word


@pytest.mark.minilm
def test_entity_words_rank_first(minilm_dir):
    lm = load_model(None, "ner", "cpu")
    texts = ["Angela Merkel visited Paris.", "Microsoft opened an office in London."]
    res = ner(lm, texts)
    got = X.explain_ner(lm, texts, res)
    seen = {}
    for r, per in zip(res, got):
        for ent, e in zip(r["entities"], per):
            top = max(e["attributions"], key=lambda w: w["score"])
            seen[ent["word"]] = (ent["entity_group"], top["word"])
    assert seen == {"Angela Merkel": ("PER", "Angela"), "Paris": ("LOC", "Paris"),
                    "Microsoft": ("ORG", "Microsoft"), "London": ("LOC", "London")}


# ---------------------------------------------------------------- CLI

def test_cli_sentiment_jsonl(cls_dir):
    res = invoke(["sentiment", "-m", cls_dir, "--explain", "--ig-steps", "20", "-f", "jsonl", *TEXTS[:3]])
    assert res.exit_code == 0, res.stderr
    lm = load_model(str(cls_dir), "classify", "cpu")
    names = [lm.config.id2label[k] for k in range(lm.config.num_labels)]
    for rec, text in zip(jsonl(res.stdout), TEXTS):
        assert list(rec)[-2:] == ["attributions", "explanation"]
        assert rec["explanation"]["label"] == rec["label"] and rec["explanation"]["steps"] == 20
        (want,) = X.explain_classify(lm, [text], labels=[names.index(rec["label"])], steps=20)
        assert [w["word"] for w in rec["attributions"]] == [w["word"] for w in want["attributions"]]
        np.testing.assert_allclose([w["score"] for w in rec["attributions"]],
                                   [w["score"] for w in want["attributions"]], atol=5e-6)


def test_cli_explain_label_and_pairs(cls_dir):
    res = invoke(["classify", "-m", cls_dir, "--explain", "--explain-label", "POSITIVE", "--text-pair",
                  "It was empty.", "-f", "jsonl", "He opened the fridge."])
    assert res.exit_code == 0, res.stderr
    (rec,) = jsonl(res.stdout)
    assert rec["explanation"]["label"] == "POSITIVE"
    assert {w["sequence_id"] for w in rec["attributions"]} == {0, 1}


def test_cli_streams_a_file(cls_dir, tmp_path):
    """Past the fast path's 32 records (the torch model from the start) and below it (loaded
    again for gradients): the same records."""
    lines = [TEXTS[k % 3] + f" {k}" for k in range(40)]
    big, small = tmp_path / "big.txt", tmp_path / "small.txt"
    big.write_text("\n".join(lines) + "\n", encoding="utf-8")
    small.write_text("\n".join(lines[:3]) + "\n", encoding="utf-8")
    a = invoke(["classify", "-m", cls_dir, "--explain", "--ig-steps", "8", "-i", big, "-b", "7"])
    b = invoke(["classify", "-m", cls_dir, "--explain", "--ig-steps", "8", "-i", small])
    assert a.exit_code == 0 and b.exit_code == 0, a.stderr + b.stderr
    ra, rb = jsonl(a.stdout), jsonl(b.stdout)
    assert [r["text"] for r in ra] == lines
    for x, y in zip(ra[:3], rb):
        assert [w["word"] for w in x["attributions"]] == [w["word"] for w in y["attributions"]]
        np.testing.assert_allclose([w["score"] for w in x["attributions"]], [w["score"] for w in y["attributions"]],
                                   atol=5e-5)


def test_cli_bad_record_skipped(cls_dir, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"text": "I loved it"}\n{"text": 3}\n{"text": "The food was terrible"}\n', encoding="utf-8")
    res = invoke(["classify", "-m", cls_dir, "--explain", "--ig-steps", "4", "-i", f, "--on-error", "skip"])
    assert res.exit_code == 0
    recs = jsonl(res.stdout)
    assert [r["text"] for r in recs] == ["I loved it", "The food was terrible"]
    assert all(r["attributions"] for r in recs)
    assert '"line": 2' in res.stderr


def test_cli_ner_and_fill_mask(ner_dir, mlm_dir):
    res = invoke(["ner", "-m", ner_dir, "--explain", "--ig-steps", "8", "-f", "jsonl", NER_TEXTS[0]])
    assert res.exit_code == 0, res.stderr
    (rec,) = jsonl(res.stdout)
    assert rec["entities"] and all(set(e) >= {"attributions", "explanation"} for e in rec["entities"])
    res = invoke(["fill-mask", "-m", mlm_dir, "--explain", "--ig-steps", "8", "-f", "jsonl", MLM_TEXTS[0]])
    assert res.exit_code == 0, res.stderr
    (rec,) = jsonl(res.stdout)
    assert [e["mask"] for e in rec["explanations"]] == [0, 1]
    assert [e["token_str"] for e in rec["explanations"]] == [p[0]["token_str"] for p in rec["predictions"]]
    word = rec["predictions"][0][1]["token_str"]
    res = invoke(["fill-mask", "-m", mlm_dir, "--explain", "--explain-label", word, "-f", "jsonl", MLM_TEXTS[0]])
    assert res.exit_code == 0, res.stderr
    assert {e["token_str"] for e in jsonl(res.stdout)[0]["explanations"]} == {word}


def test_cli_table(cls_dir, ner_dir):
    res = invoke(["sentiment", "-m", cls_dir, "--explain", "--ig-steps", "4", "-f", "table", "The food was terrible."])
    assert res.exit_code == 0, res.stderr
    assert "green: for, red: against" in res.stdout and "top words" in res.stdout
    assert "The food was terrible." in res.stdout
    res = invoke(["ner", "-m", ner_dir, "--explain", "--ig-steps", "4", "-f", "table", NER_TEXTS[0]])
    assert res.exit_code == 0, res.stderr
    assert res.stdout.count("Angela Merkel visited") >= 2  # one shaded text per entity


@pytest.mark.parametrize("args,message", [
    (["classify", "--ig-steps", "5", "x"], "Error: --ig-steps sets what --explain computes; add --explain"),
    (["sentiment", "--explain-label", "positive", "--ig-steps", "5", "x"],
     "Error: --explain-label and --ig-steps set what --explain computes; add --explain"),
    (["classify", "--explain", "--dtype", "bfloat16", "x"],
     "Error: --explain computes in float32 (integrated gradients sum many small steps); drop --dtype bfloat16"),
    (["ner", "--explain", "-f", "spans", "x"],
     "Error: --format spans writes entity spans only; drop --format spans to see --explain's attributions (-f jsonl)"),
    (["fill-mask", "--explain", "--joint", "x [MASK]"],
     "Error: --explain explains each mask predicted with the others still masked; drop --joint"),
    (["classify", "--explain", "--ig-steps", "0", "x"], "Invalid value for '--ig-steps'"),
])
def test_cli_usage_errors(cls_dir, args, message):
    res = invoke([args[0], "-m", cls_dir, *args[1:]])
    assert res.exit_code == 2
    assert message in res.stderr
    assert res.stdout == ""


def test_cli_unknown_explain_label(cls_dir, mlm_dir):
    res = invoke(["classify", "-m", cls_dir, "--explain", "--explain-label", "nope", "x"])
    assert res.exit_code == 2
    assert res.stderr == "Error: --explain-label 'nope' is not a label of the model; use one of NEGATIVE, POSITIVE\n"
    res = invoke(["sentiment", "-m", cls_dir, "--explain", "--explain-label", "positive", "-f", "jsonl", "x"])
    assert res.exit_code == 0 and jsonl(res.stdout)[0]["explanation"]["label"] == "POSITIVE"
    res = invoke(["fill-mask", "-m", mlm_dir, "--explain", "--explain-label", "unbelievable", "x [MASK]"])
    assert res.exit_code == 2 and "not a single vocabulary token: 'unbelievable'" in res.stderr


def test_cli_help_lists_explain():
    for cmd in ("classify", "sentiment", "ner", "fill-mask"):
        res = invoke([cmd, "--help"])
        assert "--explain" in res.stdout and "--ig-steps" in res.stdout
    assert "--explain-label" not in invoke(["ner", "--help"]).stdout


def test_shading():
    from bertcli.cli.explain_view import GREEN, RED, shade, top_words

    text = "The plot was thin but the acting was superb."
    attrs = [{"word": "thin", "start": 13, "end": 17, "score": -3.2}, {"word": "superb", "start": 37, "end": 43,
                                                                       "score": 2.2},
             {"word": "The", "start": 0, "end": 3, "score": 0.01}]
    t = shade(text, attrs, focus=(37, 43))
    assert t.plain == text
    styles = {(s.start, s.end): s.style for s in t.spans if s.style.bgcolor is not None}
    assert styles[(13, 17)].bgcolor.get_truecolor() == RED  # the strongest word: the full colour
    g = styles[(37, 43)].bgcolor.get_truecolor()
    assert g[1] > g[0] and g[1] > g[2]  # green, lighter
    assert (0, 3) not in styles  # under 5% of the strongest: plain
    assert any(s.style.underline for s in t.spans if (s.start, s.end) == (37, 43))
    assert top_words(attrs, 2) == "thin -3.20, superb +2.20"
    long = shade("x " * 1000, [{"word": "x", "start": 1000, "end": 1001, "score": 1.0}], focus=(1000, 1001),
                 limit=100)
    assert len(long.plain) == 102 and long.plain[0] == "…" and long.plain[-1] == "…"
    assert GREEN != RED
