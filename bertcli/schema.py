"""The columns of a predictor's results (:class:`bertcli.predictor.Predictor`, Ray Data, Spark):
each task's result fields as pyarrow types, in the CLI's order, and the names input columns
keep beside them (re-exported by :mod:`bertcli.predictor`). Nothing here imports torch; pyarrow
only when a schema is asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

#: the tasks a predictor runs (``sentiment`` is ``classify`` plus the sentiment fields)
TASKS = ("classify", "sentiment", "ner", "fill-mask", "nsp")
#: result fields of each task's records, in the CLI's order (bertcli.cli.run.RESULT_KEYS)
RESULT_KEYS = {"classify": ("label", "score", "labels", "truncated"),
               "sentiment": ("sentiment", "label", "score", "labels", "truncated"),
               "fill-mask": ("predictions", "sequence", "truncated"), "ner": ("entities", "truncated"),
               "nsp": ("is_next", "score", "truncated")}
#: the extra column of every output: null, or why the row has no results
ERROR = "error"
#: default top-k per task, as the CLI's ``--top-k``
DEFAULT_TOP_K = {"classify": 1, "sentiment": 1, "fill-mask": 5}


def _task(task: str) -> str:
    t = str(task).lower().replace("_", "-")
    if t not in TASKS:
        from .errors import UsageError

        raise UsageError(f"unknown task {task!r}", f"use one of {', '.join(TASKS)}")
    return t


def model_aggregation(model=None, revision: str | None = None) -> str:
    """The aggregation strategy a NER model uses when none is given, from its ``config.json``
    alone (no weights are read): ``task_specific_params.ner.aggregation_strategy``, else
    ``simple`` (:func:`bertcli.tasks.ner.default_aggregation`)."""
    import json

    from .loading import resolve_model_dir
    from .tasks.ner import default_aggregation

    path = resolve_model_dir(model, "ner", revision)
    try:
        cfg = json.loads((path / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        cfg = {}

    class _Cfg:
        config = cfg
    return default_aggregation(_Cfg)


def result_fields(task: str, aggregation: str | None = None, model=None, revision: str | None = None) -> list:
    """The pyarrow fields of a task's results, in the CLI's order (``error`` not included).

    ``aggregation`` matters for ``ner`` only: ``none`` gives token entities
    ``{entity, score, index, word, start, end}``, any other ``{entity_group, score, word,
    start, end}``; None reads the model's own from its ``config.json`` (``model`` and
    ``revision`` as :func:`bertcli.load_model` takes them).
    """
    import pyarrow as pa

    task = _task(task)
    s, f, i, b = pa.string(), pa.float64(), pa.int64(), pa.bool_()
    if task in ("classify", "sentiment"):
        entry = [("label", s), ("score", f)] + ([("sentiment", s)] if task == "sentiment" else [])
        out = [("label", s), ("score", f), ("labels", pa.list_(pa.struct(entry))), ("truncated", b)]
        if task == "sentiment":
            out.insert(0, ("sentiment", s))
    elif task == "ner":
        agg = aggregation if aggregation is not None else model_aggregation(model, revision)
        if str(agg).lower() == "none":
            ent = [("entity", s), ("score", f), ("index", i), ("word", s), ("start", i), ("end", i)]
        else:
            ent = [("entity_group", s), ("score", f), ("word", s), ("start", i), ("end", i)]
        out = [("entities", pa.list_(pa.struct(ent))), ("truncated", b)]
    elif task == "fill-mask":
        pred = pa.struct([("score", f), ("token", i), ("token_str", s), ("is_subword", b), ("sequence", s)])
        out = [("predictions", pa.list_(pa.list_(pred))), ("sequence", s), ("truncated", b)]
    else:  # nsp
        out = [("is_next", b), ("score", f), ("truncated", b)]
    return [pa.field(n, t) for n, t in out]


def result_schema(task: str, aggregation: str | None = None, model=None, revision: str | None = None):
    """:func:`result_fields` plus ``error`` (string), as a ``pyarrow.Schema``."""
    import pyarrow as pa

    return pa.schema(result_fields(task, aggregation, model, revision) + [pa.field(ERROR, pa.string())])


def output_names(columns: Sequence[str], result_keys: Sequence[str]) -> dict[str, str]:
    """The name each input column keeps beside the results: its own, or ``input_<name>``
    (``input_input_<name>``, ...) when a result field has it; the CLI's JSONL fields too
    (``bertcli.cli.output.input_names``)."""
    rk = list(result_keys)
    names = {k: k for k in columns}
    used = set(names)
    for k in rk:
        if names.get(k) == k:
            new = f"input_{k}"
            while new in used or new in rk:
                new = f"input_{new}"
            used.discard(k)
            used.add(new)
            names[k] = new
    return names


def output_columns(columns: Sequence[str], task: str) -> list[tuple[str | None, str]]:
    """``(input column or None, output name)`` of every output column, in order: the input
    columns not renamed, then the renamed ones (in result order), then the results and
    ``error`` (input None), as the CLI composes a record."""
    keys = list(RESULT_KEYS[_task(task)]) + [ERROR]
    names = output_names(list(columns), keys)
    out = [(c, c) for c in columns if names[c] == c]
    out += [(k, names[k]) for k in keys if k in names and names[k] != k]
    out += [(None, k) for k in keys]
    return out
