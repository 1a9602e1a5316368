"""One picklable predictor for engines that run Python over batches of rows: Ray Data's
``map_batches``, Spark's ``predict_batch_udf`` and ``mapInPandas``, or a plain loop.

A :class:`Predictor` holds only its settings (model, task, options): pickling it ships a
few strings to a worker, and the model is loaded there on the first call, once per worker
process (a module-level cache shared by every predictor of the process with the same
model, task, device and dtype). Each batch runs through the task's own ``stream`` function,
the one the CLI runs, so a row gets exactly the fields and values of the CLI's JSONL record
for it: classify and sentiment ``label``/``score``/``labels``/``truncated`` (``sentiment``
first for sentiment), ner ``entities``/``truncated``, fill-mask ``predictions``/``sequence``/
``truncated``, nsp ``is_next``/``score``/``truncated``, with floats rounded to ``precision``
places as ``--precision`` rounds them (default 6, the CLI's). The native encoder's results
do not depend on how rows are batched, so neither do a predictor's: any partitioning of
the input gives the CLI's values.

Batches come and go in the shapes Ray Data and Spark use:

* a pandas ``DataFrame`` -> a ``DataFrame`` (result columns of ``pd.ArrowDtype``),
* a pyarrow ``Table`` -> a ``Table``,
* a dict of columns (lists or numpy arrays; Ray Data's default ``numpy`` batches) -> a
  dict with the input columns as given and each result column a ``pyarrow.Array``.

Result columns are typed by :func:`result_schema` (nested ``list<struct>`` for ``labels``,
``entities``, ``predictions``): a batch whose rows found no entity still has
``list<struct<...>>``, never a ``list<null>`` that Parquet writers and Ray's block
concatenation refuse to merge with the others. An ``error`` column comes last: null
for a good row; for a bad one (a missing or non-string text, a fill-mask text without a
mask, a row the model fails on) the reason, with every result field null. A bad row never
fails the batch. An input column named like a result field is kept as ``input_<name>``,
as the CLI renames it.

Nothing here imports torch until the first batch, nor Click/rich at all.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterable, Sequence

# the result columns (re-exported: ray, spark and tests reach them as predictor.*)
from .schema import (DEFAULT_TOP_K, ERROR, RESULT_KEYS, TASKS, _task, model_aggregation, output_columns,  # noqa: F401
                     output_names, result_fields, result_schema)

_LOADED: dict = {}  # (model, task, device, dtype, revision) -> LoadedModel, per process
_LOCK = threading.Lock()


# ---------------------------------------------------------------- threads

def cpu_share() -> int | None:
    """CPUs this worker may use: the CPUs Ray assigned to this task/actor, else Spark's
    ``spark.task.cpus`` inside a Spark task, else None (unknown: torch keeps its own
    default). Looks only at engines already imported by the process."""
    if "ray" in sys.modules:
        try:
            import ray

            if ray.is_initialized():
                n = ray.get_runtime_context().get_assigned_resources().get("CPU")
                if n:
                    return max(1, int(round(n)))
        except Exception:
            pass
    if "pyspark" in sys.modules:
        try:
            from pyspark import TaskContext

            ctx = TaskContext.get()
            if ctx is not None:
                return max(1, int(ctx.cpus()))
        except Exception:
            pass
    return None


# ---------------------------------------------------------------- the predictor

class Predictor:
    """Run one bertcli task over batches of rows; picklable, loads its model lazily.

    Args:
        model: a model folder or hub id from the local Hugging Face cache; None: the
            shipped default of the task (or ``$BERTCLI_MODEL``), as ``-m`` in the CLI.
        task: ``classify``, ``sentiment``, ``ner``, ``fill-mask`` or ``nsp``.
        text_column: the column holding the text (the CLI's ``--field``, default ``text``).
        pair_column: the column of the second text for pairs (``--field-b``): classify and
            sentiment run on pairs only when it is given; nsp always does (default
            ``text_pair``).
        top_k: classify/sentiment labels per row (default 1; None or ``"all"``: every
            label), fill-mask predictions per mask (default 5).
        labels: classify/sentiment label names by id (``--labels``): a list or ``"A,B"``.
        aggregation: ner aggregation strategy (``none``, ``simple``, ``first``, ``average``,
            ``max``); None: the model's own.
        stride: ner window overlap in tokens (None: a quarter of the model's maximum).
        targets: fill-mask words to score (a list or ``"w1,w2"``).
        whole_words, joint, mask_token: fill-mask ``--whole-words``, ``--joint``,
            ``--mask-token``.
        device, dtype: as ``--device``/``--dtype`` (``auto`` picks CUDA, then MPS, then
            CPU: a Ray actor given ``num_gpus=1`` sees its own GPU only).
        revision: with a hub id, the cached branch/tag/commit.
        batch_size, max_tokens: texts / padded tokens per forward pass (``-b``/
            ``--max-tokens``); an engine's batch is split into such passes.
        threads: torch threads of the worker process; None: the worker's CPU share
            (:func:`cpu_share`: Ray's CPUs for the actor, Spark's ``spark.task.cpus``), or
            torch's default outside an engine. Set once per process, on first load.
        precision: decimal places of float results (``--precision``, default 6); None
            keeps full precision.

    Raises:
        UsageError: an unknown task or an option that is wrong without looking at the model
            (an aggregation name, ``whole_words`` with ``targets``, a negative ``top_k``,
            ``pair_column`` for ner or fill-mask). Options that need the model (label
            count, targets in the vocabulary, stride range) are checked on the first
            batch and fail it as a whole: they would fail every row.
    """

    def __init__(self, model=None, task: str = "classify", *, text_column: str = "text",
                 pair_column: str | None = None, top_k: int | str | None = "default",
                 labels: Sequence[str] | str | None = None, aggregation: str | None = None,
                 stride: int | None = None, targets: Sequence[str] | str | None = None,
                 whole_words: bool = False, joint: bool = False, mask_token: str | None = None,
                 device: str = "auto", dtype: str = "auto", revision: str | None = None,
                 batch_size: int | None = None, max_tokens: int | None = "default",
                 threads: int | None = None, precision: int | None = 6):
        from . import batching
        from .errors import UsageError

        self.task = _task(task)
        self.model = None if model is None else str(model)
        self.text_column = text_column
        if self.task == "nsp":
            pair_column = pair_column or "text_pair"
        elif pair_column is not None and self.task not in ("classify", "sentiment"):
            raise UsageError(f"{self.task} reads single texts; drop pair_column")
        self.pair_column = pair_column
        if top_k == "default":
            top_k = DEFAULT_TOP_K.get(self.task)
        if isinstance(top_k, str):
            if top_k.lower() != "all":
                try:
                    top_k = int(top_k)
                except ValueError:
                    raise UsageError(f"top_k must be a positive number or 'all', got {top_k!r}") from None
            else:
                top_k = None
        if top_k is not None and (isinstance(top_k, bool) or int(top_k) < 1):
            raise UsageError(f"top_k must be a positive number or 'all', got {top_k!r}")
        if top_k is None and self.task == "fill-mask":
            raise UsageError("fill-mask needs a number for top_k")
        self.top_k = None if top_k is None else int(top_k)
        self.labels = _names(labels)
        self.aggregation = None
        if aggregation is not None:
            from .tasks.ner import check_aggregation
            self.aggregation = check_aggregation(aggregation)
        self.stride = stride
        self.targets = targets.split(",") if isinstance(targets, str) else (list(targets) if targets else None)
        self.whole_words, self.joint, self.mask_token = bool(whole_words), bool(joint), mask_token
        if self.task == "fill-mask":
            from .tasks.fill_mask import check_flags
            check_flags(self.targets, self.whole_words, self.mask_token)
        self.device, self.dtype, self.revision = device, dtype, revision
        self.batch_size = int(batch_size or batching.DEFAULT_BATCH_SIZE)
        self.max_tokens = batching.DEFAULT_MAX_TOKENS if max_tokens == "default" else max_tokens
        if threads is not None and int(threads) < 1:
            raise UsageError(f"threads must be at least 1, got {threads!r}")
        self.threads = None if threads is None else int(threads)
        self.precision = precision
        self._lm = None

    # pickling ships the settings only; the model loads again where the predictor lands
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_lm"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)

    def __repr__(self) -> str:
        return f"Predictor(model={self.model!r}, task={self.task!r})"

    @property
    def result_keys(self) -> tuple[str, ...]:
        """The result fields of this task, in the CLI's order."""
        return RESULT_KEYS[self.task]

    @property
    def schema(self):
        """The ``pyarrow.Schema`` of the result columns plus ``error`` (:func:`result_schema`)."""
        agg = self.aggregation
        if self.task == "ner" and agg is None and self._lm is not None:
            from .tasks.ner import default_aggregation
            agg = default_aggregation(self._lm)
        return result_schema(self.task, agg, self.model, self.revision)

    # ------------------------------------------------------------ model

    def load(self):
        """The model of this worker process (:class:`bertcli.LoadedModel`), loaded on first
        use and shared by every predictor of the process with the same model, task, device,
        dtype and revision; the options that need the model are checked here."""
        if self._lm is not None:
            return self._lm
        key = (self.model, self.task if self.task != "sentiment" or self.model is None else "classify",
               self.device, self.dtype, self.revision)
        with _LOCK:
            lm = _LOADED.get(key)
            if lm is None:
                from .loading import load_model

                n = self.threads or cpu_share()
                if n:
                    import torch
                    torch.set_num_threads(n)
                lm = load_model(self.model, self.task, self.device, self.dtype, revision=self.revision)
                _LOADED[key] = lm
        self._check(lm)
        self._lm = lm
        return lm

    def _check(self, lm) -> None:
        if self.task in ("classify", "sentiment"):
            from .tasks.classify import label_names
            label_names(lm.config, self.labels)
        elif self.task == "fill-mask":
            from .tasks.fill_mask import check_options
            check_options(lm.tokenizer, self.targets, self.whole_words, self.mask_token)
        elif self.task == "ner":
            from .tasks.ner import resolve_aggregation, resolve_stride
            resolve_aggregation(lm, self.aggregation)
            resolve_stride(lm, self.stride)

    def _stream(self, lm, records):
        from .tasks.base import StreamOptions

        opts = StreamOptions(batch_size=self.batch_size, max_tokens=self.max_tokens)
        if self.task in ("classify", "sentiment"):
            from .tasks import classify
            out = classify.stream(lm, records, self.top_k, self.labels, opts, pairs=self.pair_column is not None)
            if self.task == "sentiment":
                names = classify.label_names(lm.config, self.labels)

                def with_sentiment(pairs):
                    for rec, res in pairs:
                        if res is not None:  # as the sentiment command: sentiment first
                            res = classify.sentiment_fields(res, names)
                            res = {"sentiment": res.pop("sentiment"), **res}
                        yield rec, res
                return with_sentiment(out)
            return out
        if self.task == "ner":
            from .tasks import ner
            return ner.stream(lm, records, self.aggregation, self.stride, opts)
        if self.task == "fill-mask":
            from .tasks import fill_mask
            return fill_mask.stream(lm, records, self.top_k, self.targets, opts, whole_words=self.whole_words,
                                    joint=self.joint, mask_token=self.mask_token)
        from .tasks import nsp
        return nsp.stream(lm, records, opts)

    # ------------------------------------------------------------ rows

    def predict(self, texts: Iterable, pairs: Iterable | None = None) -> list[dict]:
        """Results for a list of texts (and second texts): one dict per text, in order, with
        the task's result fields and ``error`` (None for a good row; for a bad one the
        reason, and every result field None). Floats rounded to ``precision``.

        Raises:
            UsageError, ModelError, DeviceError: the model cannot be loaded, or an option
                does not fit it (these would fail every row).
        """
        from .io.readers import Record
        from .io.writers import round_floats

        texts = list(texts)
        pairs = list(pairs) if pairs is not None else None
        if self.pair_column is not None and pairs is None:
            from .errors import UsageError
            raise UsageError(f"{self.task} on pairs needs the second texts ('{self.pair_column}')")
        lm = self.load()

        def records():
            out = []
            for i, t in enumerate(texts):
                err = _not_text(t, self.text_column)
                p = pairs[i] if pairs is not None else None
                if err is None and pairs is not None:
                    err = _not_text(p, self.pair_column)
                out.append(Record(i, None, None if err else t, None if err else p, error=err))
            return out

        try:
            done = list(self._stream(lm, records()))
        except Exception:
            # one row the model fails on must not fail the batch: find it, row by row
            done = []
            for rec in records():
                try:
                    done += list(self._stream(lm, [rec]))
                except Exception as e:  # noqa: BLE001 - reported in the row's error field
                    rec.error = _message(e)
                    done.append((rec, None))
        keys = self.result_keys
        rows = []
        for rec, res in done:
            if res is None:
                rows.append({**{k: None for k in keys}, ERROR: rec.error or "bad record"})
            else:
                res = round_floats(res, self.precision) if self.precision is not None else res
                rows.append({**{k: res.get(k) for k in keys}, ERROR: None})
        return rows

    def __call__(self, batch):
        """Results beside a batch of rows: a pandas DataFrame, a pyarrow Table, or a dict
        of columns (lists or numpy arrays). Returns the same kind of batch (a dict's result
        columns are pyarrow Arrays) with the input columns, then the result columns and
        ``error`` (see the module docstring), the rows in input order.

        Raises:
            UsageError: the batch has no ``text_column`` (or ``pair_column``); see
                :meth:`predict`.
        """
        kind, columns, get = _columns_of(batch)
        for c in (self.text_column, self.pair_column):
            if c is not None and c not in columns:
                from .errors import UsageError
                raise UsageError(f"the batch has no column '{c}' (columns: {', '.join(map(str, columns)) or 'none'})",
                                 "name the text column with text_column= (pairs: pair_column=)")
        texts = _pylist(get(self.text_column))
        pairs = _pylist(get(self.pair_column)) if self.pair_column is not None else None
        rows = self.predict(texts, pairs)
        arrays = self.result_arrays(rows)
        plan = output_columns(columns, self.task)
        if kind == "pandas":
            import pandas as pd

            out = {}
            for src, name in plan:
                if src is None:
                    out[name] = pd.Series(arrays[name].to_pandas(types_mapper=pd.ArrowDtype), index=batch.index)
                else:
                    out[name] = batch[src]
            return pd.DataFrame(out, index=batch.index)
        if kind == "arrow":
            import pyarrow as pa

            cols, names = [], []
            for src, name in plan:
                cols.append(arrays[name] if src is None else batch.column(src))
                names.append(name)
            return pa.Table.from_arrays(cols, names=names)
        return {name: (arrays[name] if src is None else batch[src]) for src, name in plan}

    def result_arrays(self, rows: list[dict]) -> dict:
        """``{field: pyarrow.Array}`` of :meth:`predict`'s rows, typed by :attr:`schema`."""
        import pyarrow as pa

        return {f.name: pa.array([r[f.name] for r in rows], type=f.type) for f in self.schema}


# ---------------------------------------------------------------- helpers

def _names(v) -> list[str] | None:
    if v is None:
        return None
    if isinstance(v, str):
        return [x.strip() for x in v.split(",")]
    return [str(x) for x in v]


def _kind(v) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "a boolean"
    if isinstance(v, float) and v != v:
        return "null"  # how pandas and Spark's pandas batches hold a missing text
    if isinstance(v, (int, float)) or type(v).__module__ == "numpy":
        return "a number"
    if isinstance(v, (list, tuple)):
        return "a list"
    if isinstance(v, dict):
        return "an object"
    return f"a {type(v).__name__}"


def _not_text(v, column: str | None) -> str | None:
    """Why ``v`` is not a text (the CLI's wording for a JSONL field), or None."""
    if isinstance(v, str):
        return None
    return f"field '{column}' is {_kind(v)}, expected a string"


def _message(e: BaseException) -> str:
    s = str(e).strip().splitlines()
    return f"{type(e).__name__}: {s[0]}" if s else type(e).__name__


def _columns_of(batch):
    """``(kind, column names, get(column))`` of a pandas/pyarrow/dict batch."""
    mod = type(batch).__module__.split(".")[0]
    if mod == "pandas":
        return "pandas", [str(c) for c in batch.columns], lambda c: batch[c]
    if mod == "pyarrow":
        return "arrow", list(batch.column_names), lambda c: batch.column(c)
    if isinstance(batch, dict):
        return "dict", list(batch), lambda c: batch[c]
    raise TypeError(f"a batch is a pandas DataFrame, a pyarrow Table or a dict of columns, "
                    f"not {type(batch).__name__}")


def _pylist(col) -> list:
    """A column's values as Python objects (pyarrow -> as_py, numpy/pandas -> items); pandas'
    missing values (NaN in an object column, ``pd.NA``) become None."""
    if hasattr(col, "to_pylist"):
        return col.to_pylist()
    if type(col).__module__.split(".")[0] == "pandas":
        import pandas as pd

        return [None if not isinstance(v, str) and pd.api.types.is_scalar(v) and pd.isna(v) else v
                for v in col.tolist()]
    if hasattr(col, "tolist"):
        return col.tolist()
    return list(col)
