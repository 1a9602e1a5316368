"""The one loop every inference command shares: records in -> core stream -> records out."""

from __future__ import annotations

from collections.abc import Callable

from ..io.readers import iter_input
from .output import make_writer, progress_callback, write_results


def run_inference(*, task: str, texts, params: dict, stream: Callable, columns: list[str], rows_of: Callable,
                  pairs: bool = False, default: str | None = None, transform=None, prepare=None) -> None:
    """Read records, load the model, stream results, write them.

    ``stream(lm, records, opts)`` is the task's streaming function with its options bound.
    ``prepare(lm)`` may validate options against the model before any input is read.
    Input problems that can be seen without the model (a missing file) are reported
    before the (slow) model load.
    """
    from ..loading import load_model
    from ..tasks.base import StreamOptions

    records, source = iter_input(list(texts), params.get("input_path"), params.get("input_format", "auto"),
                                 params.get("field", "text"), params.get("field_b"), pairs)
    lm = load_model(params.get("model"), task, params.get("device", "auto"), params.get("dtype", "auto"),
                    default=default)
    if prepare is not None:
        prepare(lm)
    cb, prog = progress_callback(params.get("quiet", False))
    opts = StreamOptions(batch_size=params["batch_size"], max_tokens=params["max_tokens"],
                         window=params["window"], progress=cb)
    writer = make_writer(params.get("fmt"), params.get("precision", 6), columns, rows_of)
    try:
        write_results(stream(lm, records, opts), writer, on_error=params.get("on_error", "fail"),
                      source=source, pairs=pairs, quiet=params.get("quiet", False),
                      transform=(lambda rec, res: transform(lm, rec, res)) if transform else None)
    finally:
        if prog is not None:
            prog.stop()


def short(text: str | None, n: int = 60) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def fmt_score(x: float) -> str:
    return f"{x:.4f}"
