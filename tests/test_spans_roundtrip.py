"""``bertcli ner --format spans`` and the round trip an annotator makes: predict with a
model -> spans file -> correct it in an annotation tool -> ``train ner`` / ``evaluate`` read
it back, exactly those entities as BIO tags.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from bertcli.cli.main import cli
from bertcli.train.data import entities_to_spans, read_ner, split_words


def jsonl(*objs):
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objs)


def invoke(args, input=None):
    res = CliRunner().invoke(cli, [str(a) for a in args], input=input,
                             env={"BERTCLI_MODEL": None, "BERTCLI_BACKEND": None}, prog_name="bertcli")
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.stderr
    return res


def test_entities_to_spans_keeps_offsets_label_and_score():
    ents = [{"entity_group": "PER", "score": 0.5, "word": "Angela Merkel", "start": 0, "end": 13}]
    assert entities_to_spans(ents) == [{"start": 0, "end": 13, "label": "PER", "score": 0.5}]
    with pytest.raises(ValueError):
        entities_to_spans([{"entity": "B-PER", "score": 0.5, "index": 1, "word": "Angela", "start": 0, "end": 6}])


def test_ner_spans_format_usage_errors(ner_dir, tmp_path):
    res = invoke(["ner", "-m", ner_dir, "-f", "spans", "-a", "none", "Paris"])
    assert res.exit_code == 2 and res.stdout == ""
    assert res.stderr.splitlines()[-1] == ("Error: --format spans writes entities; --aggregation none gives token "
                                           "tags (use first, simple, average or max)")
    res = invoke(["ner", "-m", ner_dir, "-f", "spans", "-i", "-", "--resume", tmp_path / "r.jsonl"], input="Paris\n")
    assert res.exit_code == 2
    assert res.stderr.splitlines()[-1] == ("Error: --resume continues a JSONL file of entities; drop --format spans "
                                           "to resume")


# ---------------------------------------------------------------- the round trip

TEXTS = ["Angela Merkel visited Paris on Tuesday with Emmanuel Macron.",
         "Barack Obama was born in Hawaii and studied at Columbia University.",
         "Microsoft and Google announced new products in San Francisco yesterday.",
         "Reuters reported that the European Union rejected the German proposal.",
         "Emoji 😀 and symbols appear in tweets from New York."]


@pytest.fixture(scope="module")
def predicted(ner_dir, tmp_path_factory):
    """``ner --format spans`` of the tiny random tagger (aggregation first: whole words)."""
    d = tmp_path_factory.mktemp("spans")
    src = d / "texts.jsonl"
    src.write_text(jsonl(*({"id": i, "text": t} for i, t in enumerate(TEXTS))), encoding="utf-8")
    res = invoke(["ner", "-m", ner_dir, "-a", "first", "-i", src, "-f", "spans", "-o", d / "pred.jsonl"])
    assert res.exit_code == 0 and res.stdout == "" and res.stderr == "", res.output
    plain = invoke(["ner", "-m", ner_dir, "-a", "first", "-i", src, "-f", "jsonl"])
    return d / "pred.jsonl", [json.loads(x) for x in plain.stdout.splitlines()]


def test_spans_output_is_the_entities_of_jsonl_output(predicted):
    path, plain = predicted
    recs = [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines()]
    assert [list(r) for r in recs] == [["id", "text", "spans"]] * len(TEXTS)
    for r, p in zip(recs, plain):
        assert r["text"] == p["text"]
        assert r["spans"] == [{"start": e["start"], "end": e["end"], "label": e["entity_group"], "score": e["score"]}
                              for e in p["entities"]]
    assert sum(len(r["spans"]) for r in recs) > 10  # a random tagger finds plenty


def test_spans_read_back_as_exactly_the_predicted_entities(predicted):
    from seqeval.metrics.sequence_labeling import get_entities

    path, plain = predicted
    d = read_ner(path)
    assert (d.data_format, len(d.sentences), d.warnings) == ("spans", len(TEXTS), [])
    for s, p in zip(d.sentences, plain):
        offs = split_words(p["text"])
        assert s.tokens == [p["text"][a:b] for a, b in offs]
        back = [(offs[i][0], offs[j][1], typ) for typ, i, j in get_entities(s.tags)]
        assert back == [(e["start"], e["end"], e["entity_group"]) for e in p["entities"]]


def test_evaluate_on_a_models_own_span_predictions_is_f1_one(predicted, ner_dir):
    path, plain = predicted
    res = invoke(["evaluate", "-m", ner_dir, "--data", path, "-f", "json"])
    assert res.exit_code == 0 and res.stderr == "", res.output
    m = json.loads(res.stdout)
    n_ents = sum(len(p["entities"]) for p in plain)
    assert (m["precision"], m["recall"], m["f1"], m["n"]) == (1.0, 1.0, 1.0, len(TEXTS))
    assert sum(t["support"] for t in m["per_type"].values()) == n_ents


def test_train_ner_trains_on_a_spans_file(predicted, encoder_dir, tmp_path):
    path, _ = predicted
    out = tmp_path / "run"
    res = invoke(["train", "ner", "-m", encoder_dir, "--train", path, "--eval", path, "-o", out, "--max-steps", "2",
                  "-b", "4", "-f", "jsonl"])
    assert res.exit_code == 0, res.output
    cfg = json.loads((out / "config.json").read_text())
    assert list(cfg["id2label"].values()) == read_ner(path).labels()
    args = json.loads((out / "training_args.json").read_text())
    assert f"({len(TEXTS)} sentences, spans, IOB2)" in json.dumps(args)
