"""Spark: bertcli's tasks over a DataFrame, as a ``predict_batch_udf`` or with ``mapInPandas``.

Two recipes give the same rows, the CLI's JSONL records as Spark rows::

    from pyspark.sql import SparkSession
    import bertcli.spark
    spark = SparkSession.builder.master("local[2]").getOrCreate()
    df = spark.read.schema("id LONG, text STRING").json("reviews.jsonl")

    # 1. a column: predict_batch_udf underneath, a struct of the task's result fields
    ner = bertcli.spark.predict_udf(task="ner")
    df.withColumn("ner", ner("text")).select("id", "text", "ner.*")

    # 2. whole rows: mapInPandas with the declared output schema
    out = df.mapInPandas(bertcli.spark.map_in_pandas(task="ner"),
                         bertcli.spark.output_schema(df.schema, "ner"))

    bertcli.spark.predict(df, task="ner")      # 1, composed like a CLI record
    out.write.parquet("scored.parquet")

Each Python worker loads the model once (``predict_batch_udf``'s model cache, and
:class:`bertcli.Predictor`'s per-process cache under ``mapInPandas``); it runs
``spark.task.cpus`` torch threads unless ``threads=`` says otherwise.

``pyspark.ml.functions.predict_batch_udf`` checks a struct result field by field and takes
numeric and string scalars and fixed-size arrays only: neither the booleans
(``truncated``, ``is_next``) nor the nested, ragged lists of ``labels``, ``entities`` and
``predictions`` pass. So the batch UDF returns each row's results as the CLI's JSON text
(``bertcli.io.writers.dumps``: floats already rounded to ``precision``), and
``from_json`` with :func:`result_type` turns it into the typed struct inside the JVM; a
JSON number read back into a double is the same double, so nothing changes on the way.
"""

from __future__ import annotations

from collections.abc import Iterator

from bertcli.predictor import ERROR, Predictor, output_columns, result_schema

#: the column :func:`predict` uses for the struct while it selects the fields out of it
_TMP = "__bertcli_result"


def spark_type(t):
    """The Spark SQL type of a pyarrow type (string, double, int64, bool, list, struct)."""
    import pyarrow as pa
    from pyspark.sql import types as T

    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return T.StringType()
    if pa.types.is_float64(t):
        return T.DoubleType()
    if pa.types.is_float32(t):
        return T.FloatType()
    if pa.types.is_int64(t):
        return T.LongType()
    if pa.types.is_int32(t):
        return T.IntegerType()
    if pa.types.is_boolean(t):
        return T.BooleanType()
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return T.ArrayType(spark_type(t.value_type), True)
    if pa.types.is_struct(t):
        return T.StructType([T.StructField(t.field(i).name, spark_type(t.field(i).type), True)
                             for i in range(t.num_fields)])
    raise TypeError(f"no Spark type for {t}")


def result_type(task: str, aggregation: str | None = None, model=None, revision: str | None = None):
    """The ``StructType`` of a task's results plus ``error``: the fields of the CLI's JSONL
    record, nested for ``labels``, ``entities`` and ``predictions``
    (:func:`bertcli.predictor.result_schema`; ner's entity fields depend on the aggregation,
    read from the model's ``config.json`` when None)."""
    from pyspark.sql import types as T

    return T.StructType([T.StructField(f.name, spark_type(f.type), True)
                         for f in result_schema(task, aggregation, model, revision)])


def _predictor_type(p: Predictor):
    from pyspark.sql import types as T

    return T.StructType([T.StructField(f.name, spark_type(f.type), True) for f in p.schema])


class PredictUDF:
    """A column function: ``udf(text_col)`` (pairs: ``udf(text_col, pair_col)``) gives a
    struct column of type :attr:`returnType`. :attr:`json_udf` is the
    ``predict_batch_udf`` underneath, whose column is each row's results as JSON text."""

    def __init__(self, json_udf, return_type, pairs: bool):
        self.json_udf, self.returnType, self.pairs = json_udf, return_type, pairs

    def __call__(self, *cols):
        from pyspark.sql import functions as F

        want = 2 if self.pairs else 1
        if len(cols) != want:
            raise TypeError(f"this UDF takes {want} column(s) ({'text, second text' if self.pairs else 'text'}), "
                            f"got {len(cols)}")
        return F.from_json(self.json_udf(*cols), self.returnType)


def predict_udf(model=None, task: str = "classify", *, batch_size: int = 256, **options) -> PredictUDF:
    """A UDF running ``task`` on a text column (and a second text column for pairs: nsp,
    or classify/sentiment given ``pair_column=``), built on
    ``pyspark.ml.functions.predict_batch_udf`` with batches of ``batch_size`` rows.
    ``options`` are :class:`bertcli.Predictor`'s (``top_k``, ``labels``, ``aggregation``,
    ``stride``, ``targets``, ``device``, ``dtype``, ``threads``, ``precision``, ...); they
    are checked here, on the driver. Its column is a struct of the task's result fields and
    ``error`` (:func:`result_type`); a bad row has the reason in ``error`` and null results.
    """
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql import types as T

    p = Predictor(model, task, **options)
    pairs = p.pair_column is not None
    settings = dict(model=model, task=task, **options)

    def make_predict_fn():
        # runs on the Python worker, once per process (predict_batch_udf caches it)
        import numpy as np

        worker = Predictor(**settings)
        encode = _json_encoder(worker.precision)

        if pairs:
            def predict(texts, second):
                return np.array([encode(r) for r in worker.predict(texts.tolist(), second.tolist())], dtype=object)
        else:
            def predict(texts):
                return np.array([encode(r) for r in worker.predict(texts.tolist())], dtype=object)
        return predict

    inner = predict_batch_udf(make_predict_fn, return_type=T.StringType(), batch_size=batch_size)
    return PredictUDF(inner, _predictor_type(p), pairs)


def _json_encoder(precision: int | None):
    from bertcli.io.writers import dumps

    if precision is not None:
        return lambda r: dumps(r, precision)
    import json
    import math

    def finite(o):
        if isinstance(o, float):
            return o if math.isfinite(o) else None
        if isinstance(o, dict):
            return {k: finite(v) for k, v in o.items()}
        if isinstance(o, list):
            return [finite(v) for v in o]
        return o
    return lambda r: json.dumps(finite(r), ensure_ascii=False, allow_nan=False)


def output_schema(input_schema, task: str, aggregation: str | None = None, model=None,
                  revision: str | None = None):
    """The ``StructType`` of the rows :func:`map_in_pandas` yields for a DataFrame of
    ``input_schema``: its columns (a column named like a result field becomes
    ``input_<name>``, as the CLI renames it), then the result fields and ``error``."""
    from pyspark.sql import types as T

    by_name = {f.name: f for f in input_schema.fields}
    res = {f.name: f for f in result_type(task, aggregation, model, revision).fields}
    fields = []
    for src, name in output_columns([f.name for f in input_schema.fields], task):
        f = res[name] if src is None else by_name[src]
        fields.append(T.StructField(name, f.dataType, f.nullable, f.metadata))
    return T.StructType(fields)


def map_in_pandas(model=None, task: str = "classify", **options):
    """A function for ``df.mapInPandas(fn, output_schema(df.schema, task, ...))``: each
    pandas batch goes through one :class:`bertcli.Predictor` (pickled with the function,
    its model loaded once per Python worker) and comes back with the results beside it.
    ``options`` as :func:`predict_udf`'s; ``text_column``/``pair_column`` name the input
    columns. Arrow batches are ``spark.sql.execution.arrow.maxRecordsPerBatch`` rows."""
    p = Predictor(model, task, **options)

    def fn(batches: Iterator) -> Iterator:
        import pandas as pd

        for pdf in batches:
            out = p(pdf)
            # plain Python values: pyspark converts nested columns value by value and
            # takes pd.NA (what an ArrowDtype column holds for null) for a list
            for name in p.schema.names:
                out[name] = pd.Series(out[name].array.__arrow_array__().to_pylist(), index=out.index, dtype=object)
            yield out
    return fn


def predict(df, model=None, task: str = "classify", *, method: str = "udf", batch_size: int = 256,
            text_column: str = "text", pair_column: str | None = None, **options):
    """``df`` with ``task``'s results beside each row, composed as the CLI composes a
    record: the input columns (``input_<name>`` where a result field takes the name), the
    result fields, then ``error``. ``method``: ``udf`` (:func:`predict_udf`) or
    ``map_in_pandas`` (:func:`map_in_pandas`); both give the same rows."""
    from pyspark.sql import functions as F

    p = Predictor(model, task, text_column=text_column, pair_column=pair_column, **options)
    agg = options.get("aggregation")
    if method == "map_in_pandas":
        schema = output_schema(df.schema, task, agg, model, options.get("revision"))
        return df.mapInPandas(map_in_pandas(model, task, text_column=text_column, pair_column=pair_column,
                                            **options), schema)
    if method != "udf":
        raise ValueError(f"unknown method {method!r}: use udf or map_in_pandas")
    udf = predict_udf(model, task, batch_size=batch_size, pair_column=pair_column, **options)
    cols = [F.col(_quote(text_column))] + ([F.col(_quote(p.pair_column))] if p.pair_column else [])
    tmp = _TMP
    while tmp in df.columns:
        tmp = "_" + tmp
    out = df.withColumn(tmp, udf(*cols))
    sel = [F.col(_quote(src)).alias(name) if src is not None else F.col(tmp).getField(name).alias(name)
           for src, name in output_columns(df.columns, task)]
    return out.select(*sel)


def _quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


__all__ = ["predict_udf", "map_in_pandas", "predict", "result_type", "output_schema", "spark_type",
           "PredictUDF", "ERROR"]
