"""Ray Data: bertcli's tasks over a dataset, with :class:`bertcli.Predictor` in ``map_batches``.

The whole recipe is one ``map_batches`` call; this module adds readers and writers that
keep the CLI's record shape::

    import ray, bertcli, bertcli.ray
    ds = bertcli.ray.read("reviews.jsonl")                       # or .parquet, .csv, .txt
    out = ds.map_batches(bertcli.Predictor, fn_constructor_kwargs={"task": "sentiment"},
                         concurrency=2, batch_size=256, batch_format="pyarrow")
    bertcli.ray.write(out, "scored.parquet")                     # a folder of Parquet files
    bertcli.ray.write(out, "scored.jsonl")                       # one JSONL file, as the CLI writes it

or :func:`run` for the three steps. Each actor of the pool holds one predictor and loads
the model once, on its first batch; ``num_gpus=1`` gives each actor a GPU (``device``
``auto`` then uses it). Rows keep their order inside a batch; across the dataset Ray keeps
input order only with ``DataContext.get_current().execution_options.preserve_order =
True`` (:func:`run` sets it).

This module is named like the ``ray`` package: it imports it absolutely (``import ray``
here is the real Ray, never this file), and ``bertcli.ray`` is imported on first access.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

from bertcli.predictor import ERROR, RESULT_KEYS, Predictor

#: input formats by file extension (a folder: its files' extension)
FORMATS = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".csv": "csv",
           ".txt": "text", ".text": "text"}


def _format(path: str, given: str | None) -> str:
    if given:
        return given
    p = str(path).rstrip("/")
    if os.path.isdir(p):
        exts = {os.path.splitext(n)[1].lower() for n in os.listdir(p) if not n.startswith((".", "_"))}
        known = [FORMATS[e] for e in exts if e in FORMATS]
        if len(set(known)) == 1:
            return known[0]
    ext = os.path.splitext(p)[1].lower()
    if ext in FORMATS:
        return FORMATS[ext]
    raise ValueError(f"cannot tell the format of '{path}' from its name; pass input_format= "
                     f"(one of {', '.join(sorted(set(FORMATS.values())))})")


def read(path, input_format: str | None = None, **kwargs):
    """A Ray dataset of the records in ``path`` (a file, a folder or a list of files):
    ``jsonl`` (one object per line, read by Arrow's JSON reader: ``ray.data.read_json``;
    its ``lines=True`` goes through pandas, which turns integer fields with a null into
    floats), ``parquet``,
    ``csv`` (header row) or ``text`` (one record per line in a ``text`` column; empty lines
    are records, as the CLI reads them). ``input_format`` defaults to the extension;
    ``kwargs`` go to the Ray reader."""
    import ray.data

    fmt = _format(path[0] if isinstance(path, (list, tuple)) else path, input_format)
    if fmt == "jsonl":
        return ray.data.read_json(path, **kwargs)
    if fmt == "parquet":
        return ray.data.read_parquet(path, **kwargs)
    if fmt == "csv":
        return ray.data.read_csv(path, **kwargs)
    if fmt == "text":
        kwargs.setdefault("drop_empty_lines", False)
        return ray.data.read_text(path, **kwargs)
    raise ValueError(f"unknown input format {fmt!r}")


def predict(ds, model=None, task: str = "classify", *, concurrency: int | tuple = 1, batch_size: int = 256,
            num_gpus: float | None = None, num_cpus: float | None = None, **options):
    """``ds`` with the results of ``task`` beside each row: ``ds.map_batches`` over a pool of
    ``concurrency`` actors (an int, or ``(min, max)`` for an autoscaling pool), each holding
    a :class:`bertcli.Predictor` (``options`` are its keywords: ``text_column``, ``top_k``,
    ``aggregation``, ``threads``, ...) and reserving ``num_cpus`` CPUs (Ray's default: 1)
    and ``num_gpus`` GPUs. Batches are pyarrow tables, so nested input columns pass
    through untouched. Lazy, as every Ray transform.

    The actors hold their CPUs for the whole run: with as many actors as the cluster has
    CPUs, no read task can start and the run waits for ever; leave a CPU for the reads
    (:func:`run` does when it starts Ray itself)."""
    Predictor(model, task, **options)  # bad options fail here, not on every actor
    import ray.data

    remote = {}
    if num_gpus is not None:
        remote["num_gpus"] = num_gpus
    if num_cpus is not None:
        remote["num_cpus"] = num_cpus
    if isinstance(concurrency, tuple):
        pool = ray.data.ActorPoolStrategy(min_size=concurrency[0], max_size=concurrency[1])
    else:
        pool = ray.data.ActorPoolStrategy(size=int(concurrency))
    return ds.map_batches(Predictor, fn_constructor_kwargs={"model": model, "task": task, **options},
                          compute=pool, batch_size=batch_size, batch_format="pyarrow", **remote)


def records(ds, keep_nulls: bool = False) -> Iterator[dict]:
    """The output rows of ``ds`` as the CLI's JSONL records, in the dataset's order: a good
    row without its null ``error``; a bad row with its input fields and ``error`` (its null
    result fields left out, unless ``keep_nulls``)."""
    results = set().union(*RESULT_KEYS.values())
    for batch in ds.iter_batches(batch_format="pyarrow", batch_size=1024):
        for row in batch.to_pylist():
            if row.get(ERROR) is None:
                row.pop(ERROR, None)
            elif not keep_nulls:
                row = {k: v for k, v in row.items() if not (k in results and v is None)}
            yield row


def write(ds, path, output_format: str | None = None, precision: int = 6) -> int | None:
    """Write the results: ``parquet`` (a folder of Parquet files, written by the workers in
    parallel, typed by :func:`bertcli.predictor.result_schema`), ``jsonl`` to a ``.jsonl``
    file (one file streamed through the driver, each line exactly as the CLI writes it:
    :func:`records` through ``bertcli.io.writers.dumps``; returns the number of lines) or
    ``json-dir`` (a folder of JSONL part files written by the workers with pandas, whose
    float and escape formatting differ from the CLI's). The format defaults to the
    extension: ``.jsonl``/``.json`` -> jsonl, anything else -> parquet."""
    fmt = output_format or ("jsonl" if str(path).lower().endswith((".jsonl", ".json", ".ndjson")) else "parquet")
    if fmt == "parquet":
        ds.write_parquet(str(path))
        return None
    if fmt == "json-dir":
        ds.write_json(str(path), force_ascii=False)
        return None
    if fmt != "jsonl":
        raise ValueError(f"unknown output format {fmt!r}: use parquet, jsonl or json-dir")
    from bertcli.io.writers import JsonlWriter

    n = 0
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        w = JsonlWriter(f, precision)
        for rec in records(ds):
            w.write(rec)
            n += 1
        w.close()
    return n


def run(input, output, model=None, task: str = "classify", *, input_format: str | None = None,
        output_format: str | None = None, concurrency: int | tuple = 1, batch_size: int = 256,
        num_gpus: float | None = None, preserve_order: bool = True, **options):
    """:func:`read` -> :func:`predict` -> :func:`write`; with ``preserve_order`` (default)
    the output rows follow the input's order. Starts Ray when none is running
    (``ray.init()``; it joins the cluster that ``RAY_ADDRESS`` names, else starts one on
    this machine with one logical CPU more than the actors take, so that reads can run
    beside them). Returns what :func:`write` returns."""
    import ray

    if not ray.is_initialized():
        kw = {}
        if not os.environ.get("RAY_ADDRESS"):
            n = max(concurrency) if isinstance(concurrency, tuple) else int(concurrency)
            kw["num_cpus"] = max(os.cpu_count() or 1, n + 1)
        ray.init(**kw)
    if preserve_order:
        from ray.data import DataContext
        DataContext.get_current().execution_options.preserve_order = True
    ds = predict(read(input, input_format), model, task, concurrency=concurrency, batch_size=batch_size,
                 num_gpus=num_gpus, **options)
    return write(ds, output, output_format, options.get("precision", 6) or 6)
