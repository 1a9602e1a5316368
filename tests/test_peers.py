"""benchmarks/peers.py (issue #17): its numpy post-processing against bertcli's, the CTranslate2
head against transformers, and a tiny end-to-end run, so that the benchmark cannot rot."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCH))
import peers  # noqa: E402

from bertcli.tasks import ner as bner  # noqa: E402

IOB2 = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]


def _bertcli_simple(text, probs, offsets, labels):
    toks = [bner.Token(i + 1, int(s), int(e), False, probs[i]) for i, (s, e) in enumerate(offsets)]
    return bner.decode_entities(text, toks, labels, "simple")


def _same(got, want):
    assert [(e["entity_group"], e["start"], e["end"], e["word"]) for e in got] == \
        [(e["entity_group"], e["start"], e["end"], e["word"]) for e in want]
    np.testing.assert_allclose([e["score"] for e in got], [e["score"] for e in want], rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("labels", [IOB2, ["O", "PER", "ORG", "B-LOC", "I-LOC"]], ids=["iob2", "plain+iob"])
def test_simple_entities_equals_bertcli_decode_entities(labels):
    """Random label sequences (B after I, I after O, type switches, plain labels): the same
    groups, spans, words and mean scores as bertcli.tasks.ner.decode_entities."""
    rng = np.random.default_rng(0)
    n_ents = 0
    for _ in range(200):
        n = int(rng.integers(1, 25))
        words = ["w" * int(rng.integers(1, 4)) for _ in range(n)]
        offsets, text = [], ""
        for w in words:
            text += " " if text and rng.random() < 0.6 else ""  # some tokens glued (word pieces)
            offsets.append((len(text), len(text) + len(w)))
            text += w
        # peaked random probabilities so that argmax runs over several tags
        logits = rng.normal(size=(n, len(labels))).astype(np.float32) * 3
        probs = peers.softmax(logits)
        want = _bertcli_simple(text, probs, offsets, labels)
        got = peers.simple_entities(text, probs, np.asarray(offsets), labels)
        _same(got, want)
        n_ents += len(want)
    assert n_ents > 300  # the cases did exercise grouping


def test_agreement_figures():
    assert peers.agreement("classify", ["a", "b", "a", "b"], ["a", "b", "b", "b"]) == {"top1": 75.0}
    ref = [[("PER", 0, 5), ("LOC", 9, 14)], [], [("ORG", 0, 3)]]
    got = [[("PER", 0, 5), ("LOC", 9, 13)], [], [("ORG", 0, 3)]]
    g = peers.agreement("ner", ref, got)
    assert g["entity_f1"] == pytest.approx(100 * 2 * 2 / 6)  # 2 of 3 triples match on each side
    assert g["identical"] == pytest.approx(200 / 3)
    assert peers.agreement("ner", [[], []], [[], []]) == {"entity_f1": 100.0, "identical": 100.0}
    with pytest.raises(ValueError):
        peers.agreement("classify", ["a"], [])


@pytest.mark.parametrize("kind", ["classify", "ner"])
def test_ct2_head_equals_transformers(kind, tmp_path):
    """CTranslate2's fp32 encoder + peers.ct2_head on a tiny BERT: transformers' logits within 1e-4,
    in a padded batch of two lengths (with CT2's pooler output and with the numpy pooler)."""
    ctranslate2 = pytest.importorskip("ctranslate2", reason="benchmarks/peers.py's CTranslate2 rows")
    import torch
    import transformers as tf
    from safetensors.numpy import load_file

    from tiny import build_model

    # CTranslate2's BERT loader reads config.position_embedding_type, which transformers 5 only
    # keeps when the config names it (the merged MiniLM checkpoints do)
    folder = build_model(tmp_path / "model", kind, position_embedding_type="absolute")
    ct2 = tmp_path / "ct2"
    peers._ctranslate2(folder, ct2)
    enc = ctranslate2.Encoder(str(ct2), device="cpu", compute_type="float32", intra_threads=1)
    weights = {k: v.astype(np.float32) for k, v in load_file(str(folder / "model.safetensors")).items()}
    ids = np.array([[2, 7, 8, 9, 10, 3], [2, 11, 12, 3, 0, 0]], dtype=np.int64)
    lengths = np.array([6, 4], dtype=np.int32)
    o = enc.forward_batch(ctranslate2.StorageView.from_array(ids.astype(np.int32)),
                          ctranslate2.StorageView.from_array(lengths))
    hidden = np.asarray(o.last_hidden_state)
    cls = tf.AutoModelForSequenceClassification if kind == "classify" else tf.AutoModelForTokenClassification
    net = cls.from_pretrained(str(folder)).eval()
    with torch.inference_mode():
        want = net(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy((ids != 0).astype(np.int64)),
                   token_type_ids=torch.zeros_like(torch.from_numpy(ids))).logits.numpy()
    pooled = [np.asarray(o.pooler_output), None] if kind == "classify" else [None]
    for p in pooled:
        got = peers.ct2_head(kind, hidden, p, weights)
        if kind == "ner":  # padding rows are not compared
            for r, n in enumerate(lengths):
                np.testing.assert_allclose(got[r, :n], want[r, :n], atol=1e-4, rtol=0)
        else:
            np.testing.assert_allclose(got, want, atol=1e-4, rtol=0)


# ------------------------------------------------------------------ MiniLM with the shipped heads

def _conll_sentences(shared: Path, n: int = 24) -> list[str]:
    out, words, has_ent = [], [], False
    for ln in (shared / "conll2003" / "test.txt").read_text(encoding="utf-8").splitlines():
        parts = ln.split()
        if not parts or parts[0] == "-DOCSTART-":
            if words and has_ent:
                out.append(" ".join(words))
            words, has_ent = [], False
            if len(out) >= n:
                break
            continue
        words.append(parts[0])
        has_ent |= parts[-1] != "O"
    return out


@pytest.fixture(scope="module")
def work(tmp_path_factory, minilm_dir, shared_data):
    """A peers.py work folder, shared by the tests below (models and exports built once)."""
    return tmp_path_factory.mktemp("peers-work")


def test_simple_entities_equals_bertcli_ner_on_onnx_logits(work, shared_data):
    """On real CoNLL-2003 sentences: the runtimes' numpy path (tokenizers + simple_entities) gives
    the entities of bertcli's ner() when both read the same fp32 ONNX Runtime logits."""
    ort = pytest.importorskip("onnxruntime", reason="benchmarks/peers.py's ONNX Runtime rows")
    from bertcli.loading import load_model

    art = peers.prepare(work, ["ner"], ["bertcli-fp32", "ort-fp32"])["ner"]
    sess = ort.InferenceSession(str(art["fused"]), providers=["CPUExecutionProvider"])

    def infer(ids, mask, tt, lengths=None):
        return sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt})[0]

    texts = _conll_sentences(shared_data)
    assert len(texts) >= 20
    got = peers.runtime_runner("ner", art["model"], infer, 4096)(texts, 8)
    lm = load_model(art["model"], "ner", "cpu", "float32")
    lm.forward = lambda batch, mask_rows=None: infer(*(batch[k].numpy() for k in
                                                       ("input_ids", "attention_mask", "token_type_ids")))
    want = bner.ner(lm, texts, aggregation="simple")
    assert sum(len(w["entities"]) for w in want) >= 40
    for g, w in zip(got, want):
        _same(g["entities"], w["entities"])


def test_peers_end_to_end(work, tmp_path):
    """peers.py on 40 lines, one round, batch 8: every requested row in the JSON, and the fp32
    runtimes agree with bertcli fp32 on every label and entity."""
    rows = ["bertcli-fp32"] + [c for c, mod in (("ort-fp32", "onnxruntime"), ("ov-fp32", "openvino"),
                                               ("ct2-fp32", "ctranslate2")) if importlib.util.find_spec(mod)]
    if len(rows) == 1:
        pytest.skip("none of onnxruntime, openvino, ctranslate2 is installed (pip install -e '.[bench]')")
    out = tmp_path / "peers.json"
    md = tmp_path / "peers.md"
    p = subprocess.run([sys.executable, str(BENCH / "peers.py"), "--lines", "40", "--repeats", "1",
                        "--batch-sizes", "8", "--contenders", ",".join(rows), "--work", str(work),
                        "--json", str(out), "--markdown", str(md)], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["lines"] == 40 and list(res["tables"]) == ["1"]
    for task in ("classify", "ner"):
        table = res["tables"]["1"][task]
        assert list(table) == rows
        for c, row in table.items():
            assert row["batch_size"] == 8 and len(row["cpu_s"]) == 1 and row["lines_per_s"] > 0
            want = {"top1": 100.0} if task == "classify" else {"entity_f1": 100.0, "identical": 100.0}
            assert row["agreement"] == want, (task, c)
        assert table["bertcli-fp32"]["ratio"] == 1.0
    text = md.read_text()
    for c in rows:
        assert f"| {peers.CONTENDERS[c][2]} |" in text
