"""Training runs on tiny models: classify (single, pairs, multi-label) and NER.

Each run is a few dozen steps of a 2-layer, 32-wide BERT on synthetic but learnable
data; the checks are on real values: loss goes down, the saved folder reloads and
predicts what the in-memory model predicted, metrics agree with ``evaluate``.
"""

from __future__ import annotations

import contextlib
import io
import json
import random

import numpy as np
import pytest

from bertcli.errors import DataError
from bertcli.train import TrainError, TrainOptions, evaluate, train_classify, train_ner

POS = ["wonderful movie", "loved it", "moving and wonderful", "best of times", "I loved this"]
NEG = ["terrible food", "even worse", "the service was terrible", "worst of times", "food was worse"]


def write_sentiment(folder, n_train=64, n_dev=16, seed=0):
    r = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in (("train.tsv", n_train), ("dev.tsv", n_dev)):
        with open(folder / name, "w", encoding="utf-8") as f:
            f.write("sentence\tlabel\n")
            for _ in range(n):
                pos = r.random() < 0.5
                f.write(f"{r.choice(POS if pos else NEG)} {r.choice(['the', 'a', 'it'])}\t{'pos' if pos else 'neg'}\n")
    return folder / "train.tsv", folder / "dev.tsv"


PEOPLE = [["Angela", "Merkel"], ["Barack", "Obama"], ["Emmanuel", "Macron"], ["Alice"]]
PLACES = [["Paris"], ["Berlin"], ["San", "Francisco"], ["New", "York"], ["Hawaii"], ["Parisian", "bank"]]
ORGS = [["Microsoft"], ["Google"], ["Reuters"], ["European", "Union"], ["Columbia", "University"]]


def write_conll(path, n, seed):
    r = random.Random(seed)
    with open(path, "w", encoding="utf-8") as f:
        f.write("-DOCSTART- -X- -X- O\n\n")
        for _ in range(n):
            toks, tags = [], []
            for kind, pool in (("PER", PEOPLE), ("LOC", PLACES)):
                ent = r.choice(pool)
                toks += ent
                tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(ent) - 1)
                if kind == "PER":
                    w = r.choice([["visited"], ["was", "born", "in"]])
                    toks += w
                    tags += ["O"] * len(w)
            if r.random() < 0.5:
                o = r.choice(ORGS)
                toks += ["with"] + o
                tags += ["O", "B-ORG"] + ["I-ORG"] * (len(o) - 1)
            for t, g in zip(toks + ["."], tags + ["O"]):
                f.write(f"{t} NN O {g}\n")
            f.write("\n")
    return path


def opts(**kw):
    base = dict(epochs=3, batch_size=8, learning_rate=1e-3, logging_steps=4, device="cpu", seed=0)
    base.update(kw)
    return TrainOptions(**base)


def run_quiet(fn, *a, **kw):
    """Run fn, returning (result, events, stdout): the core must not print."""
    events = []
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        res = fn(*a, progress=events.append, **kw)
    return res, events, buf.getvalue()


def in_memory_logits(model, tokenizer, texts, pairs=None):
    import torch

    enc = tokenizer(texts, pairs, padding=True, return_tensors="pt")
    model.eval()
    with torch.no_grad():
        return model(**enc).logits.float().numpy(), enc


def loaded_logits(folder, task, enc, backend="transformers"):
    """Logits of the saved folder through ``bertcli.loading.load_model``."""
    import os

    from bertcli.loading import load_model

    old = os.environ.get("BERTCLI_BACKEND")
    os.environ["BERTCLI_BACKEND"] = backend
    try:
        lm = load_model(folder, task, device="cpu")
        return lm.forward(dict(enc)).numpy()
    finally:
        if old is None:
            os.environ.pop("BERTCLI_BACKEND")
        else:
            os.environ["BERTCLI_BACKEND"] = old


def assert_same_logits(after, before, backend="transformers"):
    # Same kernels (transformers): the saved weights must reproduce the logits to 1e-5.
    # The native encoder sums in another order; the tiny models' large init range gives
    # logits of size ~5, where that shows at ~2e-5.
    tol = 1e-5 if backend == "transformers" else 1e-4
    np.testing.assert_allclose(after, before, rtol=1e-5, atol=tol)


@pytest.fixture(scope="module")
def sentiment(tmp_path_factory):
    return write_sentiment(tmp_path_factory.mktemp("sent"))


@pytest.fixture(scope="module")
def cls_run(tmp_path_factory, encoder_dir, sentiment):
    out = tmp_path_factory.mktemp("runs") / "cls"
    train, dev = sentiment
    res, events, printed = run_quiet(train_classify, encoder_dir, train, out, dev,
                                     options=opts(command="bertcli train classify --model tiny"))
    return res, events, printed, out


def test_classify_learns_and_writes_folder(cls_run, encoder_dir):
    res, events, printed, out = cls_run
    assert printed == ""
    losses = [h["train_loss"] for h in res.history]
    assert len(losses) == 3 and losses[-1] < losses[0] * 0.5
    assert res.global_step == 24 and res.labels == ["neg", "pos"]
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "training_args.json", "metrics.json",
            "README.md"} <= names
    assert "checkpoints" not in names and not any(n.endswith((".bin", ".pt", ".pth")) for n in names)
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["id2label"] == {"0": "neg", "1": "pos"} and cfg["label2id"] == {"neg": 0, "pos": 1}
    assert cfg["problem_type"] == "single_label_classification"
    assert cfg["architectures"] == ["BertForSequenceClassification"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1.0, 2.0, 3.0]
    assert all("train_loss" in e and "eval_accuracy" in e for e in metrics["epochs"])
    best = max(metrics["evaluations"], key=lambda e: e["accuracy"])
    assert metrics["best"]["accuracy"] == best["accuracy"] == res.metrics["accuracy"]
    targs = json.loads((out / "training_args.json").read_text())
    assert targs["options"]["learning_rate"] == 1e-3 and targs["base_model"] == str(encoder_dir)
    card = (out / "README.md").read_text()
    assert str(encoder_dir) in card and "bertcli train classify --model tiny" in card and "| accuracy |" in card
    kinds = [e["event"] for e in events]
    assert kinds[0] == "train_begin" and kinds[-1] == "train_end"
    assert kinds.count("epoch_end") == 3 and kinds.count("eval") == 3 and "saved" in kinds


@pytest.mark.parametrize("backend", ["native", "transformers"])
def test_classify_reload_predicts_same(cls_run, backend):
    res, _, _, out = cls_run
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    texts = ["loved it the", "terrible food a", "worst of times", "Paris is moving and wonderful"]
    before, enc = in_memory_logits(res.model, tok, texts)
    assert_same_logits(loaded_logits(out, "classify", enc, backend), before, backend)


def test_evaluate_matches_training_eval(cls_run, sentiment):
    res, _, _, out = cls_run
    m = evaluate(out, sentiment[1], device="cpu")
    assert m["accuracy"] == pytest.approx(res.metrics["accuracy"], abs=1e-9)
    assert m["loss"] == pytest.approx(res.metrics["loss"], abs=1e-5)
    assert sum(map(sum, m["confusion_matrix"]["matrix"])) == m["n"] == 16


def test_same_seed_same_metrics(cls_run, encoder_dir, sentiment, tmp_path):
    res, _, _, _ = cls_run
    again = train_classify(encoder_dir, sentiment[0], tmp_path / "again", sentiment[1], options=opts())
    assert again.history == res.history
    other = train_classify(encoder_dir, sentiment[0], tmp_path / "other", sentiment[1], options=opts(seed=1, epochs=1))
    assert other.history[0]["train_loss"] != res.history[0]["train_loss"]


def test_unseen_eval_label_fails_before_training(encoder_dir, sentiment, tmp_path):
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\nloved it\tpos\nmeh\tneutral\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dev.tsv, line 3: label 'neutral' is not among the training labels"):
        train_classify(encoder_dir, sentiment[0], tmp_path / "out", dev, options=opts())
    assert not (tmp_path / "out").exists()


def test_non_empty_output_needs_overwrite(encoder_dir, sentiment, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "model.safetensors").write_text("old")
    (out / "notes.txt").write_text("mine")
    with pytest.raises(TrainError, match=r"output folder '.*out' is not empty \(model.safetensors, notes.txt\)"):
        train_classify(encoder_dir, sentiment[0], out, options=opts(epochs=1))
    train_classify(encoder_dir, sentiment[0], out, options=opts(epochs=1, overwrite=True))
    assert (out / "notes.txt").read_text() == "mine"  # only a run's own files are replaced
    assert (out / "model.safetensors").stat().st_size > 1000


def test_nan_loss_stops_with_message(encoder_dir, sentiment, tmp_path):
    with pytest.raises(TrainError, match=r"the training loss became nan at step \d+ .*training stopped"):
        train_classify(encoder_dir, sentiment[0], tmp_path / "out", options=opts(learning_rate=1e30))


def test_early_stopping_keeps_best(encoder_dir, sentiment, tmp_path):
    # lr 0: the metric can never improve, so patience 1 stops after the 2nd evaluation.
    res = train_classify(encoder_dir, sentiment[0], tmp_path / "out", sentiment[1],
                         options=opts(learning_rate=0.0, patience=1, epochs=5))
    assert res.stopped_early and res.global_step == 16 and res.best_step == 8
    assert len(res.evaluations) == 2


def test_pairs_jsonl(encoder_dir, tmp_path):
    r = random.Random(3)
    rows = []
    for _ in range(48):
        same = r.random() < 0.5
        a = r.choice(POS + NEG)
        b = a if same else r.choice([x for x in POS + NEG if x != a])
        rows.append({"premise": a, "hypothesis": b, "label": "same" if same else "different"})
    p = tmp_path / "pairs.jsonl"
    p.write_text("".join(json.dumps(x) + "\n" for x in rows), encoding="utf-8")
    res = train_classify(encoder_dir, p, tmp_path / "out", p, options=opts(epochs=4))
    info = json.loads((tmp_path / "out" / "training_args.json").read_text())["data"]
    assert (info["text_field"], info["text_pair_field"]) == ("premise", "hypothesis")
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tmp_path / "out"))
    before, enc = in_memory_logits(res.model, tok, ["loved it", "even worse"], ["loved it", "loved it"])
    assert enc["token_type_ids"][0].tolist().count(1) == 3  # "loved it [SEP]" is segment B
    assert_same_logits(loaded_logits(tmp_path / "out", "classify", enc), before)


def test_multi_label(encoder_dir, tmp_path):
    r = random.Random(5)
    topics = {"sports": ["quick brown fox jumps"], "politics": ["Merkel visited Paris", "European Union rejected"],
              "tech": ["Microsoft and Google announced"]}
    lines = []
    for _ in range(48):
        labs = r.sample(sorted(topics), r.choice([1, 1, 2]))
        lines.append(json.dumps({"text": " and ".join(r.choice(topics[t]) for t in labs), "labels": labs}))
    p = tmp_path / "ml.jsonl"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    res = train_classify(encoder_dir, p, tmp_path / "out", p, multi_label=True, options=opts(epochs=4))
    cfg = json.loads((tmp_path / "out" / "config.json").read_text())
    assert cfg["problem_type"] == "multi_label_classification"
    assert cfg["id2label"] == {"0": "politics", "1": "sports", "2": "tech"}
    assert {"subset_accuracy", "micro_f1", "macro_f1"} <= set(res.metrics)
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    m = evaluate(tmp_path / "out", p, device="cpu")
    assert m["micro_f1"] == pytest.approx(res.metrics["micro_f1"], abs=1e-9)
    assert set(m["per_label"]) == {"politics", "sports", "tech"}


@pytest.fixture(scope="module")
def ner_run(tmp_path_factory, encoder_dir):
    d = tmp_path_factory.mktemp("ner")
    train, dev = write_conll(d / "train.txt", 60, 1), write_conll(d / "dev.txt", 16, 2)
    out = d / "out"
    res, events, printed = run_quiet(train_ner, encoder_dir, train, out, dev, options=opts())
    return res, out, train, dev, printed


def test_ner_learns_reloads_and_evaluates(ner_run):
    res, out, train, dev, printed = ner_run
    assert printed == ""
    assert res.labels == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    losses = [h["train_loss"] for h in res.history]
    assert losses[-1] < losses[0]
    assert {"precision", "recall", "f1", "accuracy"} <= set(res.metrics)
    m = evaluate(out, dev, device="cpu")
    assert m["f1"] == pytest.approx(res.metrics["f1"], abs=1e-9)
    assert m["precision"] == pytest.approx(res.metrics["precision"], abs=1e-9)
    assert set(m["per_type"]) <= {"PER", "LOC", "ORG"} and m["n_sentences"] == 16
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    enc = tok([["Angela", "Merkel", "visited", "Parisian", "bank"]], is_split_into_words=True, return_tensors="pt")
    import torch

    with torch.no_grad():
        before = res.model(**enc).logits.numpy()
    assert_same_logits(loaded_logits(out, "ner", enc), before)
    assert_same_logits(loaded_logits(out, "ner", enc, "auto"), before, "auto")


def test_ner_eval_tag_unseen(encoder_dir, tmp_path):
    train = write_conll(tmp_path / "train.txt", 8, 1)
    dev = tmp_path / "dev.txt"
    dev.write_text("Bob B-PER\nin O\nMars B-PLANET\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"dev.txt, line 3: tag 'B-PLANET' is not among the training tags"):
        train_ner(encoder_dir, train, tmp_path / "out", dev, options=opts())


def test_base_with_other_labels_gets_fresh_head(cls_dir):
    import torch

    from bertcli.train.core import _load_net
    from bertcli.train.tasks import _fresh_head_if_relabelled

    def head(labels):
        net = _load_net("AutoModelForSequenceClassification", cls_dir, num_labels=2,
                        id2label=dict(enumerate(labels)), label2id={x: i for i, x in enumerate(labels)},
                        ignore_mismatched_sizes=True)
        loaded = net.classifier.weight.detach().clone()
        _fresh_head_if_relabelled(cls_dir, net, labels, "classifier")
        return loaded, net.classifier.weight.detach()

    loaded, after = head(["NEGATIVE", "POSITIVE"])  # the base's own labels: keep its trained head
    assert torch.equal(loaded, after)
    loaded, after = head(["neg", "pos"])  # same size, other meaning: a fresh head
    assert not torch.equal(loaded, after)
    assert abs(after.std().item() - 0.5) < 0.25  # N(0, initializer_range=0.5) of the tiny config


def test_bf16_autocast_on_cpu_saves_float32(encoder_dir, sentiment, tmp_path):
    from safetensors.torch import load_file

    res = train_classify(encoder_dir, sentiment[0], tmp_path / "out", options=opts(dtype="bfloat16", epochs=2))
    assert res.history[-1]["train_loss"] < res.history[0]["train_loss"]
    assert json.loads((tmp_path / "out" / "training_args.json").read_text())["dtype"] == "bfloat16"
    assert {str(v.dtype) for v in load_file(str(tmp_path / "out" / "model.safetensors")).values()} == {"torch.float32"}


def test_a_tie_on_the_selection_metric_goes_to_the_lower_loss(encoder_dir, tmp_path):
    """Trainer keeps the earliest of equal-accuracy checkpoints; bertcli breaks the tie by
    evaluation loss, so a run whose accuracy saturates early keeps its later training."""
    rows = [("good", "pos"), ("bad", "neg")] * 16
    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "".join(f"{t} {t}\t{lab}\n" for t, lab in rows))
    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\ngood\tpos\nbad\tneg\ngood good good\tpos\nbad bad\tneg\n")
    res = train_classify(encoder_dir, train, tmp_path / "out", dev, options=opts(epochs=6, eval_steps=4))
    top = max(e["accuracy"] for e in res.evaluations)
    ties = [e for e in res.evaluations if e["accuracy"] == top]
    assert top == 1.0 and len(ties) >= 2, res.evaluations  # the case under test happened
    assert res.best_step == min(ties, key=lambda e: e["loss"])["step"] != ties[0]["step"]
    saved = json.loads((tmp_path / "out" / "metrics.json").read_text())
    assert saved["best_step"] == res.best_step
