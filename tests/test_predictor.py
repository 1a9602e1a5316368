"""bertcli.Predictor: a picklable per-batch predictor giving the CLI's JSONL records as rows.

Tiny random models (tests/tiny.py) keep these fast; the 500-line equality on the shipped
models runs through Ray and Spark in test_ray.py and test_spark.py. Every comparison is
exact: the predictor's row, less its null ``error``, equals the CLI's parsed JSONL record.
"""

from __future__ import annotations

import json
import pickle

import pytest

from click.testing import CliRunner

pd = pytest.importorskip("pandas", reason="pandas is not installed (pip install 'bertcli[ray]' or 'bertcli[spark]')")
pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'bertcli[ray]' or 'bertcli[spark]')")
np = pytest.importorskip("numpy")

import bertcli  # noqa: E402
from bertcli.errors import UsageError  # noqa: E402
from bertcli.predictor import RESULT_KEYS, Predictor, result_schema  # noqa: E402

TEXTS = ["Angela Merkel met Emmanuel Macron in Paris.", "", "The food was cold and the waiter was rude.",
         "Zürich 😀 東京, naïve café", " ".join(["word"] * 300), "I loved this film."]
MASKED = ["The [MASK] sat on the mat.", "A [MASK] and a [MASK].", "[MASK]", " ".join(["long"] * 200) + " [MASK] end."]


def cli_jsonl(args, rows: list[dict], tmp_path) -> list[dict]:
    """The CLI's records for ``rows`` written as a JSONL file (``-i FILE -f jsonl``).

    ``BERTCLI_FASTPATH=0``: a run of at most 32 records takes the CLI's numpy fast path
    (issue #18), whose floats may differ from torch's in the 6th decimal; runs longer than
    that (the 500-line equality tests) and the predictor always take the torch path."""
    from bertcli.cli.main import cli

    inp = tmp_path / "in.jsonl"
    inp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    res = CliRunner().invoke(cli, [*map(str, args), "-i", str(inp), "-f", "jsonl", "-q"],
                             env={"BERTCLI_MODEL": None, "BERTCLI_FASTPATH": "0"}, prog_name="bertcli")
    assert res.exit_code == 0, (res.stderr, res.exc_info)
    return [json.loads(ln) for ln in res.stdout.splitlines()]


def without_error(rows: list[dict]) -> list[dict]:
    for r in rows:
        assert r["error"] is None, r
    return [{k: v for k, v in r.items() if k != "error"} for r in rows]


def rows_of(out) -> list[dict]:
    """Plain Python rows of a pandas / pyarrow / dict batch."""
    if isinstance(out, pd.DataFrame):
        return out.to_dict("records")
    if isinstance(out, pa.Table):
        return out.to_pylist()
    cols = {k: (v.to_pylist() if hasattr(v, "to_pylist") else v.tolist() if hasattr(v, "tolist") else list(v))
            for k, v in out.items()}
    return [dict(zip(cols, vals)) for vals in zip(*cols.values())]


def test_api_and_keys():
    from bertcli.cli.run import RESULT_KEYS as CLI_KEYS

    assert bertcli.Predictor is Predictor
    assert RESULT_KEYS == CLI_KEYS
    for task, keys in RESULT_KEYS.items():
        schema = result_schema(task, aggregation="simple")
        assert schema.names == [*keys, "error"]


@pytest.mark.parametrize("kind", ["pandas", "arrow", "dict"])
def test_classify_equals_cli_in_every_batch_shape(cls_dir, tmp_path, kind):
    rows = [{"id": i, "text": t, "label": "gold"} for i, t in enumerate(TEXTS)]
    expected = cli_jsonl(["classify", "-m", cls_dir, "--top-k", "all"], rows, tmp_path)
    p = pickle.loads(pickle.dumps(Predictor(cls_dir, "classify", top_k="all")))
    ids, texts, gold = [r["id"] for r in rows], TEXTS, ["gold"] * len(TEXTS)
    batch = {"pandas": lambda: pd.DataFrame({"id": ids, "text": texts, "label": gold}),
             "arrow": lambda: pa.table({"id": ids, "text": texts, "label": gold}),
             "dict": lambda: {"id": np.array(ids), "text": np.array(texts, dtype=object), "label": gold}}[kind]()
    out = p(batch)
    assert type(out) is type(batch)
    got = rows_of(out)
    # the input 'label' moves to input_label, as the CLI renames a field a result takes
    assert list(got[0]) == ["id", "text", "input_label", "label", "score", "labels", "truncated", "error"]
    assert list(got[0])[:-1] == list(expected[0])
    assert without_error(got) == expected
    assert [r["truncated"] for r in got] == [False, False, False, False, True, False]


def test_sentiment_ner_fill_mask_nsp_equal_cli(cls_dir, ner_dir, mlm_dir, pretraining_dir, tmp_path):
    cases = [("sentiment", cls_dir, {"top_k": 2}, ["--top-k", "2"], TEXTS),
             ("ner", ner_dir, {}, [], TEXTS),
             ("ner", ner_dir, {"aggregation": "none", "stride": 16}, ["-a", "none", "--stride", "16"], TEXTS),
             ("ner", ner_dir, {"aggregation": "max"}, ["-a", "max"], TEXTS),
             ("fill-mask", mlm_dir, {"top_k": 3}, ["--top-k", "3"], MASKED),
             ("fill-mask", mlm_dir, {"joint": True, "whole_words": True}, ["--joint", "--whole-words"], MASKED),
             ("fill-mask", mlm_dir, {"targets": "the,a"}, ["--targets", "the,a"], MASKED),
             ("fill-mask", mlm_dir, {"mask_token": "___"}, ["--mask-token", "___"], ["A ___ b.", "[MASK] and ___"]),
             ("classify", cls_dir, {"dtype": "bfloat16", "device": "cpu", "batch_size": 2, "max_tokens": 64},
              ["--dtype", "bfloat16", "--device", "cpu"], TEXTS)]
    for i, (task, model, kw, args, texts) in enumerate(cases):
        rows = [{"text": t} for t in texts]
        expected = cli_jsonl([task, "-m", model, *args], rows, tmp_path)
        got = rows_of(Predictor(model, task, **kw)(pd.DataFrame({"text": texts})))
        assert without_error(got) == expected, (task, kw)
    pairs = [{"text": a, "text_pair": b} for a, b in [("He opened the fridge.", "It was empty."), ("A", "")]]
    expected = cli_jsonl(["nsp", "-m", pretraining_dir], pairs, tmp_path)
    assert without_error(rows_of(Predictor(pretraining_dir, "nsp")(pa.Table.from_pylist(pairs)))) == expected
    rows = [{"a": a["text"], "b": a["text_pair"]} for a in pairs]
    expected = cli_jsonl(["classify", "-m", cls_dir, "--field", "a", "--field-b", "b"], rows, tmp_path)
    p = Predictor(cls_dir, "classify", text_column="a", pair_column="b")
    assert without_error(rows_of(p(pa.Table.from_pylist(rows)))) == expected


def test_bad_rows_get_an_error_and_the_batch_goes_on(cls_dir, mlm_dir, monkeypatch):
    p = Predictor(cls_dir, "classify")
    out = p(pd.DataFrame({"text": ["good", None, 3, "fine"]})).to_dict("records")
    assert [r["error"] for r in out] == [None, "field 'text' is null, expected a string",
                                         "field 'text' is a number, expected a string", None]
    assert out[1]["label"] is None and out[1]["labels"] is None and out[1]["truncated"] is None
    assert out[0]["label"] in ("NEGATIVE", "POSITIVE") and out[3]["label"] in ("NEGATIVE", "POSITIVE")
    fm = Predictor(mlm_dir, "fill-mask")(pa.table({"text": ["a [MASK] b", "no mask here"]})).to_pylist()
    assert fm[0]["error"] is None and len(fm[0]["predictions"]) == 1
    assert fm[1] == {"text": "no mask here", "predictions": None, "sequence": None, "truncated": None,
                     "error": "no [MASK] in the text (write the mask exactly as [MASK])"}
    # a row the model fails on: the batch is run again row by row, that row alone gets the error
    from bertcli.tasks import classify as task

    real = task.classify

    def fragile(lm, texts, *a, **kw):
        if "boom" in texts:
            raise RuntimeError("model failed\nsecond line")
        return real(lm, texts, *a, **kw)

    monkeypatch.setattr(task, "classify", fragile)
    out = p({"text": ["ok", "boom", "fine"]})
    assert out["error"].to_pylist() == [None, "RuntimeError: model failed", None]
    labels = out["label"].to_pylist()
    assert labels[1] is None and None not in (labels[0], labels[2])


def test_types_hold_for_empty_and_failed_batches(ner_dir):
    p = Predictor(ner_dir, "ner", aggregation="simple")
    t = p(pa.table({"text": ["", None]}))
    entity = pa.struct([("entity_group", pa.string()), ("score", pa.float64()), ("word", pa.string()),
                        ("start", pa.int64()), ("end", pa.int64())])
    assert t.schema.field("entities").type == pa.list_(entity)
    assert t.column("entities").to_pylist() == [[], None]
    df = p(pd.DataFrame({"text": [""]}))
    assert str(df["entities"].dtype).startswith("list<")  # pd.ArrowDtype: Ray/Parquet keep the nested type
    assert Predictor(ner_dir, "ner", aggregation="none").schema.field("entities").type.value_type.names == \
        ["entity", "score", "index", "word", "start", "end"]
    # None: the model's own strategy, read from config.json without loading it
    assert Predictor(ner_dir, "ner").schema.field("entities").type.value_type.names[0] == "entity_group"


def test_options_are_checked(cls_dir, mlm_dir, ner_dir):
    for kw in [dict(task="summarize"), dict(task="ner", aggregation="mean"), dict(task="classify", top_k=0),
               dict(task="fill-mask", targets="a,b", whole_words=True), dict(task="fill-mask", top_k="all"),
               dict(task="ner", pair_column="b"), dict(task="classify", threads=0)]:
        with pytest.raises(UsageError):
            Predictor(cls_dir, **kw)
    p = Predictor(cls_dir, "classify", labels="a,b,c")  # checked against the model on the first batch
    with pytest.raises(UsageError, match="--labels gives 3 names but the model has 2 outputs"):
        p({"text": ["x"]})
    with pytest.raises(UsageError, match="the batch has no column 'text'"):
        Predictor(cls_dir, "classify")({"body": ["x"]})
    assert Predictor(cls_dir, "classify", labels="bad,good")({"text": ["x"]})["label"].to_pylist()[0] in ("bad", "good")
    assert Predictor(ner_dir, "ner", stride=3).load() is not None


def test_pickles_settings_only_and_loads_once_per_process(cls_dir):
    from bertcli import predictor as mod

    p = Predictor(cls_dir, "classify", threads=1)
    blob = pickle.dumps(p)
    assert len(blob) < 2000
    p({"text": ["x"]})
    assert p._lm is not None
    again = pickle.loads(pickle.dumps(p))
    assert again._lm is None and len(pickle.dumps(p)) < 2000
    again({"text": ["y"]})
    assert again._lm is p._lm  # the process's cache: one model per worker
    key = next(k for k in mod._LOADED if k[0] == str(cls_dir))
    assert key[1:] == ("classify", "auto", "auto", None)


def test_threads_default_to_the_worker_share(cls_dir, monkeypatch):
    import torch

    from bertcli import predictor as mod

    before = torch.get_num_threads()
    try:
        mod._LOADED.clear()
        monkeypatch.setattr(mod, "cpu_share", lambda: 1)
        Predictor(cls_dir, "classify")({"text": ["x"]})
        assert torch.get_num_threads() == 1
        mod._LOADED.clear()
        Predictor(cls_dir, "classify", threads=2)({"text": ["x"]})
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)
        mod._LOADED.clear()
    assert mod.cpu_share() is None or mod.cpu_share() >= 1  # outside Ray and Spark: unknown, or an engine's


def test_precision(cls_dir):
    full = Predictor(cls_dir, "classify", precision=None)({"text": ["x"]})["score"].to_pylist()[0]
    assert Predictor(cls_dir, "classify")({"text": ["x"]})["score"].to_pylist()[0] == round(full, 6)
    assert Predictor(cls_dir, "classify", precision=2)({"text": ["x"]})["score"].to_pylist()[0] == round(full, 2)
