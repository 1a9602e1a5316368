"""Shared options, as small decorators stacked on each command (the sqlite-utils way)."""

from __future__ import annotations

import re

import click

from ..batching import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS, DEFAULT_WINDOW


_DEVICE = re.compile(r"(auto|cpu|mps|cuda(:\d+)?)\Z")


def check_device(ctx, param, value):
    """Click callback: a malformed ``--device`` is a usage error (exit 2); whether the
    device exists is checked when the model loads (exit 1)."""
    if value is None or _DEVICE.match(value.strip().lower()):
        return value if value is None else value.strip().lower()
    raise click.BadParameter(f"'{value}' is not a device: use auto, cpu, cuda, cuda:N or mps")


def check_threads(ctx, param, value):
    """Click callback: ``--threads`` is ``auto``, ``off`` or a positive number of threads."""
    v = (value or "auto").strip().lower()
    if v in ("auto", "off") or (v.isdigit() and int(v) > 0):
        return v
    raise click.BadParameter(f"'{value}' is not a thread count: use auto or a number >= 1")


def name_list(value: str | None, option: str) -> list[str] | None:
    """``"a,b"`` -> ``["a", "b"]`` for options that name labels (None when not given).

    Raises:
        click.BadParameter: an empty name (``"a,"``) or a repeated one (``"a,a"``).
    """
    if value is None:
        return None
    names = [s.strip() for s in value.split(",")]
    if any(not n for n in names):
        raise click.BadParameter(f"'{value}' has an empty name", param_hint=option)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise click.BadParameter(f"'{value}' names {', '.join(dup)} more than once", param_hint=option)
    return names


def _stack(*decorators):
    def apply(f):
        for d in reversed(decorators):
            f = d(f)
        return f
    return apply


def model_options(f):
    return _stack(
        click.option("-m", "--model", "model", metavar="DIR|HUB_ID", envvar="BERTCLI_MODEL", show_envvar=True,
                     help="Local model folder (config.json, *.safetensors, tokenizer), or a hub id such as "
                          "dslim/bert-base-NER found in the local Hugging Face cache (never downloaded). Default: "
                          "the shipped default model of the command, where there is one (sentiment, ner, fill-mask, nsp)."),
        click.option("--revision", metavar="REV", default=None,
                     help="With a hub id: the branch, tag or commit of the cached snapshot (default: main)."),
        click.option("--device", default="auto", show_default=True, metavar="auto|cpu|cuda|cuda:N|mps",
                     callback=check_device, help="Where to run; auto picks CUDA, then MPS, then CPU."),
        click.option("--dtype", default="auto", show_default=True,
                     type=click.Choice(["auto", "float32", "float16", "bfloat16", "int8"], case_sensitive=False),
                     help="Compute precision; auto = float32. float16 is GPU-only. int8 (CPU only): int8 "
                          "weights and activations in the encoder's matrix products; for classify, sentiment, nsp "
                          "and ner, lines it leaves near a decision are computed again in float32 (env "
                          "BERTCLI_INT8_MARGIN, 0 = off), so 99.5-100 % of them match float32. 1.2-1.6x float32 "
                          "on large inputs on an AVX-512 VNNI CPU, where bfloat16 was as fast: prefer bfloat16 on "
                          "CPUs with AVX-512 BF16 or AMX (README: Determinism and precision)."),
        click.option("--threads", default="auto", show_default=True, metavar="auto|N", envvar="BERTCLI_THREADS",
                     show_envvar=True, callback=check_threads,
                     help="CPU threads for the model. auto: the CPUs this process may use (affinity, cgroup "
                          "quota), less those other processes keep busy, re-checked as the run goes on; N: "
                          "exactly N. Results are the same at any count."),
    )(f)


def batch_options(f):
    return _stack(
        click.option("-b", "--batch-size", type=click.IntRange(min=1), default=DEFAULT_BATCH_SIZE,
                     show_default=True, help="Most texts per forward pass."),
        click.option("--max-tokens", type=click.IntRange(min=1), default=DEFAULT_MAX_TOKENS, show_default=True,
                     help="Most padded tokens per forward pass (texts are length-sorted)."),
        click.option("--window", "window", type=click.IntRange(min=1), default=DEFAULT_WINDOW, show_default=True,
                     hidden=True, help="Records read ahead and sorted at a time."),
    )(f)


def input_options(pairs: bool = False):
    opts = [
        click.option("-i", "--input", "input_path", metavar="PATH|-",
                     help="Read records from a file or '-' (stdin). Default: stdin when piped."),
        click.option("--input-format", type=click.Choice(["auto", "text", "jsonl", "json", "csv", "tsv"]),
                     default="auto", show_default=True,
                     help="Input format (json: one array); auto = by extension, then by content."),
    ]
    if pairs:
        opts += [
            click.option("--field-a", "--field", "field", default="text", show_default=True,
                         help="JSONL key / CSV column of the first text."),
            click.option("--field-b", "field_b", default="text_pair", show_default=True,
                         help="JSONL key / CSV column of the second text."),
        ]
    else:
        opts += [click.option("--field", default="text", show_default=True,
                              help="JSONL key / CSV column holding the text.")]
    return _stack(*opts)


def output_options(f=None, *, extra_formats: dict[str, str] | None = None):
    """``@output_options``, or ``@output_options(extra_formats={"name": "help"})`` for a command
    that also writes its own record shape (``ner --format spans``)."""
    if f is None:
        return lambda g: output_options(g, extra_formats=extra_formats)
    extra = extra_formats or {}
    return _stack(
        click.option("-f", "--format", "fmt", type=click.Choice(["table", "jsonl", "json", *extra]), default=None,
                     help="Output format. Default: table on a terminal, else jsonl."
                          + "".join(f" {k}: {v}" for k, v in extra.items())),
        click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
                     help="Bad input record: stop with exit 1, or report it on stderr and go on."),
        click.option("--precision", type=click.IntRange(0, 12), default=6, show_default=True,
                     help="Decimal places of scores in JSON output."),
        click.option("-o", "--output", "output", metavar="FILE", help="Write results to FILE instead of stdout."),
        click.option("--resume", "resume", metavar="FILE",
                     help="Continue an interrupted run: skip the records FILE already holds, append the rest."),
        click.option("-q", "--quiet", is_flag=True, help="No progress bar or warnings on stderr."),
    )(f)


def explain_options(label_help: str | None = None):
    """``--explain``, ``--ig-steps`` and (where ``label_help`` says what it names)
    ``--explain-label``: word attributions by integrated gradients
    (:mod:`bertcli.tasks.explain`; checked by :func:`bertcli.cli.explain_view.explain_params`)."""
    opts = [
        click.option("--explain", "explain", is_flag=True,
                     help="Add word attributions (integrated gradients on the word embeddings, Sundararajan et "
                          "al. 2017): which words pushed the prediction up (green) or down (red). Costs about "
                          "3 x --ig-steps forward passes per text."),
        click.option("--ig-steps", "ig_steps", type=click.IntRange(min=1), default=None, metavar="N",
                     help="With --explain: integration steps (Gauss-Legendre points; default 50). More steps, "
                          "smaller convergence delta, slower."),
    ]
    if label_help:
        opts.insert(1, click.option("--explain-label", "explain_label", metavar="NAME", default=None,
                                    help=f"With --explain: {label_help}"))
    return _stack(*opts)
