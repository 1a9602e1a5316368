"""The one loop every inference command shares: records in -> core stream -> records out."""

from __future__ import annotations

from collections.abc import Callable

import gc
import os

import click

from ..errors import InputError, ModelError, UsageError
from ..io.readers import iter_input
from ..io.resume import check_precision, prepare_resume, skip_done
from .output import compose, count_records, input_names, make_writer, progress_callback, write_results


#: the result keys of each command's output records, in order (the first one tells --resume
#: a command's own file; the rest say which input fields were renamed beside them)
RESULT_KEYS = {"classify": ("label", "score", "labels", "truncated"),
               "sentiment": ("sentiment", "label", "score", "labels", "truncated"),
               "fill-mask": ("predictions", "sequence", "truncated"), "ner": ("entities", "truncated"),
               "nsp": ("is_next", "score", "truncated")}


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
    out_path, resume = params.get("output"), params.get("resume")
    if out_path and resume and out_path != resume:
        raise click.UsageError("--resume FILE already names the output file; drop -o/--output")
    fmt = params.get("fmt")
    target = resume or out_path
    if target:
        tp = os.path.abspath(target)
        inp = params.get("input_path")
        if inp and inp != "-" and os.path.exists(inp) and os.path.exists(tp) and os.path.samefile(inp, tp):
            raise UsageError(f"the output file '{target}' is the input file", "write the results to another file")
        if not os.path.isdir(os.path.dirname(tp)):
            raise InputError(f"cannot write '{target}': folder '{os.path.dirname(tp)}' does not exist")
    if resume:
        if fmt not in (None, "jsonl"):
            raise click.UsageError("--resume continues a JSONL file; drop --format or use --format jsonl")
        done, last = prepare_resume(resume)
        command = default or task
        result_keys = RESULT_KEYS[command]
        key = result_keys[0]
        if last is not None and key not in last:
            # another command's results: their records lack this command's result key
            raise InputError(f"cannot resume '{resume}': its records have no '{key}', so another command "
                             f"wrote them, not '{command}'", "resume with the command that wrote the file")
        check_precision(resume, params.get("precision", 6))
        def expect(rec):  # input field -> (key it is written under, value), as compose writes it
            src = rec.fields if rec.fields is not None else compose(rec, {}, pairs)
            names = input_names(src, result_keys)
            return {k: (names[k], v) for k, v in src.items()}

        records = skip_done(records, done, last, resume, expect,
                            fields=(params.get("field", "text"),
                                    (params.get("field_b") or "text_pair") if pairs else None))
        out_path = resume
    from ..threads import ThreadGovernor

    # torch's threads follow the CPUs other processes leave free; the import and model load
    # below are its first measured interval (issue #18)
    governor = ThreadGovernor(setting=params.get("threads"))
    try:
        # a small input runs on the numpy encoder, without importing torch (issue #18)
        from ..fastpath.switch import small_run

        lm, records = small_run(records, source, task, params, default=default)
        if lm is None:
            lm = load_model(params.get("model"), task, params.get("device", "auto"), params.get("dtype", "auto"),
                            default=default, revision=params.get("revision"))
    except ModelError as e:
        ctx = click.get_current_context(silent=True)
        if ctx is not None and ctx.get_parameter_source("model") == click.core.ParameterSource.ENVIRONMENT:
            # the user typed no --model: say where the folder came from
            e.message = f"{e.message} (from $BERTCLI_MODEL)"
        raise
    if prepare is not None:
        prepare(lm)
    # what was loaded lives until the process ends: out of the cyclic garbage collector's
    # scans (one full scan of the ~170,000 objects of torch and the model took ~0.1 s per
    # 2,000 lines of ner, 1.5 % of the run)
    gc.freeze()
    governor.update(force=True)
    cb, prog = progress_callback(params.get("quiet", False), count_records(texts, params.get("input_path"), pairs))
    opts = StreamOptions(batch_size=params["batch_size"], max_tokens=params["max_tokens"],
                         window=params["window"], progress=governor.progress(cb))
    stream_out = None
    if out_path:
        try:
            stream_out = open(out_path, "a" if resume else "w", encoding="utf-8", newline="\n")
        except OSError as e:
            raise InputError(f"cannot write '{out_path}': {e.strerror}") from None
        if fmt is None:
            fmt = "jsonl"
    writer = make_writer(fmt, params.get("precision", 6), columns, rows_of, stream_out)
    if hasattr(writer, "progress"):
        writer.progress = prog  # a table on the terminal clears the spinner first
    try:
        write_results(stream(lm, records, opts), writer, on_error=params.get("on_error", "fail"),
                      source=source, pairs=pairs, quiet=params.get("quiet", False),
                      transform=(lambda rec, res: transform(lm, rec, res)) if transform else None)
    finally:
        governor.restore()
        if prog is not None:
            prog.stop()
        if stream_out is not None:
            stream_out.close()


def short(text: str | None, n: int = 60) -> str:
    text = (text or "").replace("\n", " ")
    return text if len(text) <= n else text[: n - 1] + "…"


def fmt_score(x: float) -> str:
    return f"{x:.4f}"
