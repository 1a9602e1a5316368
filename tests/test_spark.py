"""Spark (local[2]): bertcli.spark's predict_batch_udf and mapInPandas recipes give exactly
the CLI's JSONL.

500 real lines per task from ../shared/data (tests/engine_data.py) are read as a DataFrame,
repartitioned (a shuffle: rows reach the Python workers in another order and other
groupings for every task) and scored; sorted back by ``id``, every row equals the CLI's record
for the same line, fields in the same order. One Spark session serves the module.
"""

from __future__ import annotations

import json
import os
import shutil
import sys

import pytest

pyspark = pytest.importorskip("pyspark", reason="pyspark is not installed (pip install 'bertcli[spark]')")
pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'bertcli[spark]')")
pytest.importorskip("pandas", reason="pandas is not installed (pip install 'bertcli[spark]')")

import engine_data as E  # noqa: E402

import bertcli  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas")

if not (shutil.which("java") or os.environ.get("JAVA_HOME")):
    pytest.skip("no Java runtime for Spark (java not on PATH, JAVA_HOME unset)", allow_module_level=True)


@pytest.fixture(scope="module")
def spark():
    import warnings

    from pyspark.sql import SparkSession

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    warnings.filterwarnings("ignore", message="PySpark does not yet fully support pandas")
    s = (SparkSession.builder.master("local[2]").appName("bertcli-tests")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "4")
         .config("spark.sql.execution.arrow.maxRecordsPerBatch", "128")
         .config("spark.driver.memory", "2g").getOrCreate())
    s.sparkContext.setLogLevel("ERROR")
    yield s
    s.stop()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    why = E.have_data()
    if why:
        pytest.skip(why)
    return tmp_path_factory.mktemp("engines")


def rows_of(df) -> list[dict]:
    return sorted((r.asDict(recursive=True) for r in df.collect()), key=lambda r: r["id"])


#: task -> recipe and partitions after the shuffle; ``column`` is the literal recipe
#: ``withColumn(name, udf("text")).select(..., "name.*")``, written with Spark's JSON writer
RUNS = {"classify": ("udf", 3), "sentiment": ("map_in_pandas", 2), "ner": ("column", 5),
        "fill-mask": ("map_in_pandas", 7)}


@pytest.mark.slow
@pytest.mark.minilm
@pytest.mark.parametrize("task", E.TASKS)
def test_spark_equals_cli(spark, data_dir, task, tmp_path):
    method, parts = RUNS[task]
    _, expected = E.cli_output(task, data_dir)
    df = spark.read.schema("id LONG, text STRING").json(str(E.input_file(task, data_dir))).repartition(parts)
    opts = dict(E.OPTIONS[task])
    model = opts.pop("model", None)
    if method == "column":
        udf = bertcli.spark.predict_udf(model, task, batch_size=50, **opts)
        assert udf.returnType == bertcli.spark.result_type(task, model=model)
        out = df.withColumn("r", udf("text")).select("id", "text", "r.*")
    else:
        out = bertcli.spark.predict(df, model, task, method=method, batch_size=50, **opts)
    rows = rows_of(out)
    assert len(rows) == E.N
    diff = [i for i, (r, e) in enumerate(zip(rows, expected)) if E.as_cli(r) != e]
    assert not diff, (len(diff), rows[diff[0]], expected[diff[0]])
    assert [list(E.as_cli(r)) for r in rows] == [list(e) for e in expected]  # same fields, same order
    if method == "column":
        # Spark's own JSON writer leaves null fields out: its lines parse to the CLI's records
        out.write.json(str(tmp_path / "out"))
        lines = [json.loads(ln) for p in (tmp_path / "out").glob("part-*") for ln in p.read_text().splitlines()]
        assert sorted(lines, key=lambda r: r["id"]) == expected


def test_spark_bad_rows_pairs_and_types(spark, ner_dir, pretraining_dir, cls_dir):
    """Tiny models: a null text gets an error in both recipes; nsp pairs; types declared."""
    from pyspark.sql import types as T

    df = spark.createDataFrame([(0, "Paris", "x"), (1, None, "y"), (2, "", "z")], "id LONG, text STRING, label STRING")
    for method in ("udf", "map_in_pandas"):
        rows = rows_of(bertcli.spark.predict(df, str(cls_dir), "classify", method=method))
        assert list(rows[0]) == ["id", "text", "input_label", "label", "score", "labels", "truncated", "error"]
        assert rows[1]["error"] == "field 'text' is null, expected a string" and rows[1]["labels"] is None
        assert rows[0]["error"] is None and rows[0]["input_label"] == "x"
        a = rows_of(bertcli.spark.predict(df, str(ner_dir), "ner", method=method, aggregation="none"))
        assert a[2]["entities"] == [] and a[1]["entities"] is None
    from bertcli.predictor import cpu_share

    assert spark.sparkContext.parallelize([0], 1).map(lambda _: cpu_share()).collect() == [1]  # spark.task.cpus
    t = bertcli.spark.result_type("ner", "none")
    assert [f.name for f in bertcli.spark.result_type("ner", "simple")["entities"].dataType.elementType.fields] == \
        ["entity_group", "score", "word", "start", "end"]
    assert t["entities"].dataType.elementType["index"].dataType == T.LongType()
    assert bertcli.spark.result_type("nsp")["is_next"].dataType == T.BooleanType()
    pairs = spark.createDataFrame([(0, "He opened the fridge.", "It was empty.")],
                                  "id LONG, text STRING, text_pair STRING")
    (row,) = rows_of(bertcli.spark.predict(pairs, str(pretraining_dir), "nsp"))
    (same,) = bertcli.Predictor(str(pretraining_dir), "nsp").predict(["He opened the fridge."], ["It was empty."])
    assert {k: row[k] for k in same} == same
