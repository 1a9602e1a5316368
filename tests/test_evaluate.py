"""Metrics against hand-computed values, and ``evaluate`` on fixtures with known predictions."""

from __future__ import annotations

import json
import math

import pytest

from bertcli.errors import DataError
from bertcli.train import evaluate, model_task
from bertcli.train.metrics import classification_metrics, mlm_metrics, multilabel_metrics, ner_metrics


def test_classification_metrics_by_hand():
    # true 0 0 1 1 2 / pred 0 1 1 1 0
    m = classification_metrics([0, 0, 1, 1, 2], [0, 1, 1, 1, 0], ["a", "b", "c"], detailed=True)
    assert m["accuracy"] == pytest.approx(3 / 5)
    # a: tp1 fp1 fn1 -> .5/.5/.5; b: tp2 fp1 fn0 -> 2/3, 1, .8; c: tp0 -> 0
    assert m["per_label"]["a"] == {"precision": 0.5, "recall": 0.5, "f1": 0.5, "support": 2}
    assert m["per_label"]["b"]["precision"] == pytest.approx(2 / 3) and m["per_label"]["b"]["f1"] == pytest.approx(0.8)
    assert m["per_label"]["c"] == {"precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 1}
    assert m["macro_f1"] == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert m["confusion_matrix"] == {"labels": ["a", "b", "c"], "matrix": [[1, 1, 0], [0, 2, 0], [1, 0, 0]]}


def test_multilabel_metrics_by_hand():
    gold = [[1, 0, 1], [0, 1, 0]]
    pred = [[1, 0, 0], [0, 1, 0]]
    m = multilabel_metrics(gold, pred, ["x", "y", "z"], detailed=True)
    assert m["subset_accuracy"] == 0.5
    # micro: tp 2, fp 0, fn 1 -> p 1, r 2/3, f 0.8
    assert m["micro_f1"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((1 + 1 + 0) / 3)


def test_ner_metrics_conlleval_semantics():
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    pred = [["B-PER", "I-PER", "O", "B-ORG"], ["I-ORG", "O"]]  # I-ORG after start = an ORG entity (conlleval)
    m = ner_metrics(gold, pred)
    # gold entities: PER, LOC, ORG (3); predicted: PER, ORG@s0, ORG@s1 (3); correct: PER, ORG@s1 (2)
    assert (m["precision"], m["recall"]) == (pytest.approx(2 / 3), pytest.approx(2 / 3))
    assert m["f1"] == pytest.approx(2 / 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["per_type"]["PER"] == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "support": 1}
    assert m["per_type"]["LOC"]["recall"] == 0.0 and m["per_type"]["LOC"]["support"] == 1
    assert m["per_type"]["ORG"]["precision"] == 0.5 and m["per_type"]["ORG"]["recall"] == 1.0


def test_mlm_metrics_by_hand():
    m = mlm_metrics(nll_sum=2 * math.log(4), n_masked=2, top1_hits=1, top5_hits=2)
    assert m["mlm_loss"] == pytest.approx(math.log(4)) and m["perplexity"] == pytest.approx(4.0)
    assert (m["top1_accuracy"], m["top5_accuracy"]) == (0.5, 1.0)


def _predict(folder, task, texts):
    from bertcli.loading import load_model

    lm = load_model(folder, task, device="cpu")
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    if task == "classify":
        enc = tok(texts, padding=True, return_tensors="pt")
        return [lm.id2label[int(i)] for i in lm.forward(dict(enc)).argmax(-1)]
    out = []
    for words in texts:
        enc = tok([words], is_split_into_words=True, return_tensors="pt")
        ids = lm.forward(dict(enc))[0].argmax(-1)
        wids = enc.word_ids(0)
        tags = ["O"] * len(words)
        prev = None
        for pos, w in enumerate(wids):
            if w is not None and w != prev:
                tags[w] = lm.id2label[int(ids[pos])]
            prev = w
        out.append(tags)
    return out


def test_evaluate_classify_known_predictions(cls_dir, tmp_path):
    texts = ["I loved this movie", "The food was terrible", "Paris and Berlin", "sea shells", "the quick brown fox",
             "It was the worst of times"]
    pred = _predict(cls_dir, "classify", texts)
    flip = {"POSITIVE": "NEGATIVE", "NEGATIVE": "POSITIVE"}
    gold = pred[:4] + [flip[p] for p in pred[4:]]  # 4 right, 2 wrong
    p = tmp_path / "d.jsonl"
    p.write_text("".join(json.dumps({"text": t, "label": g}) + "\n" for t, g in zip(texts, gold)), encoding="utf-8")
    assert model_task(cls_dir) == "classify"
    m = evaluate(cls_dir, p, device="cpu", batch_size=4)  # 2 batches, length-sorted: order must come back
    assert m["n"] == 6 and m["accuracy"] == pytest.approx(4 / 6)
    labels = ["NEGATIVE", "POSITIVE"]
    cm = [[sum(1 for g, q in zip(gold, pred) if g == a and q == b) for b in labels] for a in labels]
    assert m["confusion_matrix"] == {"labels": labels, "matrix": cm}
    for lab in labels:
        tp = cm[labels.index(lab)][labels.index(lab)]
        pp = sum(row[labels.index(lab)] for row in cm)
        assert m["per_label"][lab]["precision"] == pytest.approx(tp / pp if pp else 0.0)
        assert m["per_label"][lab]["support"] == sum(cm[labels.index(lab)])


def test_evaluate_classify_unknown_label(cls_dir, tmp_path):
    p = tmp_path / "d.tsv"
    p.write_text("text\tlabel\nfine\tPOSITIVE\nmeh\tNEUTRAL\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"d.tsv, line 3: label 'NEUTRAL' is not among the model's labels"):
        evaluate(cls_dir, p, device="cpu")


def test_evaluate_ner_known_predictions(ner_dir, tmp_path):
    sents = [["Angela", "Merkel", "visited", "Paris"], ["Microsoft", "and", "Google"], ["Obamacare", "Hawaiians"]]
    pred = _predict(ner_dir, "ner", sents)
    gold = [list(pred[0]), list(pred[1]), ["O", "O"]]
    gold[1][0] = "B-LOC" if pred[1][0] != "B-LOC" else "B-PER"  # one changed word
    lines = []
    for ws, ts in zip(sents, gold):
        lines += [f"{w} {t}" for w, t in zip(ws, ts)] + [""]
    p = tmp_path / "d.txt"
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from seqeval.metrics import f1_score, precision_score, recall_score

    from bertcli.train.data import read_ner

    g = [s.tags for s in read_ner(p).sentences]
    # The reader repairs I- starts to B- (conlleval); the expected values use the same gold.
    exp = (precision_score(g, pred, zero_division=0), recall_score(g, pred, zero_division=0),
           f1_score(g, pred, zero_division=0))
    m = evaluate(ner_dir, p, device="cpu")
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx(exp)
    n_tok = sum(len(s) for s in sents)
    right = sum(a == b for s, q in zip(g, pred) for a, b in zip(s, q))
    assert m["accuracy"] == pytest.approx(right / n_tok)
    assert m["n_sentences"] == 3
