"""Ray Data (local, 2 actors): bertcli.Predictor in map_batches gives exactly the CLI's JSONL.

The equality runs take 500 real lines per task from ../shared/data (tests/engine_data.py)
through ``ds.map_batches(bertcli.Predictor, ...)`` with a different batch format and batch
size for each task, and compare every row with the CLI's record for the same line. One Ray
instance serves the module; it has one logical CPU more than the two actors take, so that
read tasks run beside them (with exactly as many CPUs as actors, the read waits for ever).
"""

from __future__ import annotations

import json

import pytest

ray = pytest.importorskip("ray", reason="ray is not installed (pip install 'bertcli[ray]')")
pytest.importorskip("ray.data", reason="ray[data] is not installed (pip install 'bertcli[ray]')")
pa = pytest.importorskip("pyarrow", reason="pyarrow is not installed (pip install 'bertcli[ray]')")
pytest.importorskip("pandas", reason="pandas is not installed (pip install 'bertcli[ray]')")

import engine_data as E  # noqa: E402

import bertcli  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:.*deprecated:DeprecationWarning")


@pytest.fixture(scope="module")
def local_ray():
    import ray.data

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=3, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
    ctx = ray.data.DataContext.get_current()
    old = ctx.enable_progress_bars, ctx.execution_options.preserve_order
    ctx.enable_progress_bars = False
    yield ray
    ctx.enable_progress_bars, ctx.execution_options.preserve_order = old
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    why = E.have_data()
    if why:
        pytest.skip(why)
    return tmp_path_factory.mktemp("engines")


def plain(o):
    """Ray's numpy-format rows hold numpy arrays and scalars: as Python values."""
    import numpy as np

    if isinstance(o, np.ndarray):
        return [plain(x) for x in o.tolist()]
    if isinstance(o, (list, tuple)):
        return [plain(x) for x in o]
    if isinstance(o, dict):
        return {k: plain(v) for k, v in o.items()}
    if isinstance(o, np.generic):
        return o.item()
    return o


def test_module_does_not_shadow_ray():
    import bertcli.ray as br

    assert br.__name__ == "bertcli.ray" and bertcli.ray is br
    import ray as real

    assert hasattr(real, "init") and real.__name__ == "ray"


#: task -> how its 500 lines go through Ray: batch format, batch size, blocks read, and
#: the issue's literal ``map_batches(bertcli.Predictor, concurrency=2)``, bertcli.ray.predict
#: (an ActorPoolStrategy of 2) or bertcli.ray.run (JSONL file in, JSONL file out, in order)
RUNS = {"classify": ("default", 64, 4, "concurrency"), "sentiment": ("pyarrow", 50, 3, "run"),
        "ner": ("pyarrow", 37, 5, "concurrency"), "fill-mask": ("pandas", 500, 2, "predict")}


@pytest.mark.slow
@pytest.mark.minilm
@pytest.mark.parametrize("task", E.TASKS)
def test_ray_equals_cli(local_ray, data_dir, task, tmp_path):
    fmt, bs, blocks, how = RUNS[task]
    cli_file, expected = E.cli_output(task, data_dir)
    opts = dict(E.OPTIONS[task])
    if how == "run":
        # the very bytes of the CLI's -o file
        out = tmp_path / f"{task}.jsonl"
        assert bertcli.ray.run(E.input_file(task, data_dir), out, opts.pop("model", None), task, concurrency=2,
                               batch_size=bs, **opts) == E.N
        assert out.read_bytes() == cli_file.read_bytes()
        return
    ds = bertcli.ray.read(E.input_file(task, data_dir), override_num_blocks=blocks)
    if how == "concurrency":
        out = ds.map_batches(bertcli.Predictor, fn_constructor_kwargs={"task": task, **E.OPTIONS[task]},
                             concurrency=2, batch_size=bs, batch_format=fmt)
    else:
        out = bertcli.ray.predict(ds, opts.pop("model", None), task, concurrency=2, batch_size=bs, **opts)
    rows = sorted((plain(r) for r in out.take_all()), key=lambda r: r["id"])
    assert len(rows) == E.N
    diff = [i for i, (r, e) in enumerate(zip(rows, expected)) if E.as_cli(r) != e]
    assert not diff, (len(diff), rows[diff[0]], expected[diff[0]])
    assert [list(E.as_cli(r)) for r in rows] == [list(e) for e in expected]  # same fields, same order


def test_ray_bad_rows_and_parquet_types(local_ray, ner_dir, tmp_path):
    """Tiny model: a null text gets an error, empty-entity batches keep list<struct>."""
    import pyarrow.parquet as pq
    import ray.data

    items = [{"id": i, "text": t} for i, t in enumerate(["", "Paris", None, "x y z", "Berlin", ""])]
    ds = ray.data.from_items(items, override_num_blocks=3)
    out = ds.map_batches(bertcli.Predictor, fn_constructor_kwargs={"model": str(ner_dir), "task": "ner",
                                                                 "aggregation": "simple"},
                         concurrency=1, batch_size=1)
    bertcli.ray.write(out, tmp_path / "ner.parquet")
    t = pq.read_table(tmp_path / "ner.parquet")
    assert str(t.schema.field("entities").type).startswith("list<element: struct<entity_group: string")
    rows = sorted(t.to_pylist(), key=lambda r: r["id"])
    assert [r["error"] for r in rows] == [None, None, "field 'text' is null, expected a string", None, None, None]
    assert rows[0]["entities"] == [] and rows[2]["entities"] is None
    n = bertcli.ray.write(out, tmp_path / "ner.jsonl")
    recs = sorted((json.loads(ln) for ln in (tmp_path / "ner.jsonl").read_text().splitlines()), key=lambda r: r["id"])
    assert n == 6 and recs[2] == {"id": 2, "text": None, "error": "field 'text' is null, expected a string"}
    assert "error" not in recs[0] and recs[0]["entities"] == []
    # a worker's default torch threads: the CPUs Ray gave it (1 here)
    from bertcli.predictor import cpu_share

    assert ray.data.range(1).map_batches(lambda b: {"n": [cpu_share()]}).take_all() == [{"n": 1}]
    # chained: classify on the ner output read back from Parquet; the nested input column passes through
    (tmp_path / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in recs if "error" not in r))
    bertcli.ray.write(bertcli.ray.predict(bertcli.ray.read(tmp_path / "in.jsonl"), str(ner_dir), "ner",
                                          batch_size=2, aggregation="none"), tmp_path / "again.parquet")
    t = pq.read_table(tmp_path / "again.parquet")
    assert t.column_names == ["id", "text", "input_entities", "input_truncated", "entities", "truncated", "error"]
    assert t.schema.field("entities").type.value_type.names == ["entity", "score", "index", "word", "start", "end"]
