"""``bertcli evaluate``: metrics of a model folder on a labelled file."""

from __future__ import annotations

import json
import sys

import click

from .options import check_device


@click.command("evaluate")
@click.option("-m", "--model", "model", metavar="DIR|HUB_ID", envvar="BERTCLI_MODEL", show_envvar=True,
              help="Model folder to evaluate, or a hub id from the local Hugging Face cache. Default: the "
                   "shipped model of --task (classify: the sentiment model, ner: the ner model, mlm: the "
                   "pre-training model).")
@click.option("--data", required=True, metavar="PATH", help="Labelled data (same formats as train).")
@click.option("--task", type=click.Choice(["classify", "ner", "mlm"]), help="Default: from the model's config.")
@click.option("--device", default="auto", show_default=True, callback=check_device,
              metavar="auto|cpu|cuda|cuda:N|mps", help="Where to run; auto picks CUDA, then MPS, then CPU.")
@click.option("--dtype", default="auto", show_default=True,
              type=click.Choice(["auto", "float32", "float16", "bfloat16", "int8"]),
              help="Compute precision; auto = float32. float16 is GPU-only; int8 CPU-only (see predict commands).")
@click.option("-b", "--batch-size", type=click.IntRange(min=1), default=32, show_default=True)
@click.option("--max-length", type=click.IntRange(min=8), help="Tokens per example (default: the model's limit).")
@click.option("--seed", type=int, default=0, show_default=True, help="MLM masks and NSP pairs.")
@click.option("--text-field", metavar="NAME", help="Text column/field (default: guessed from the header).")
@click.option("--text-pair-field", metavar="NAME", help="Second text of a sentence pair (classify).")
@click.option("--label-field", metavar="NAME", help="Label column/field (default: guessed from the header).")
@click.option("--label-map", metavar="OLD=NEW,...", help="Rename data labels as read (classify).")
@click.option("--data-format",
              help="auto, jsonl, csv, tsv, label-text (classify); conll, jsonl, spans, labelstudio (ner).")
@click.option("--on-invalid", type=click.Choice(["fix", "skip", "error"]),
              help="NER: invalid tag sequences repaired (fix, the default), left out (skip) or refused; a span "
                   "cutting a word, overlapping or out of range stops the run unless skip.")
@click.option("--tag-column", type=int, help="CoNLL tag column (NER).")
@click.option("--encoding", default="auto", show_default=True, help="Data encoding; auto = UTF-8 (BOM ok).")
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "json"]), default=None,
              help="Default: table on a terminal, else one JSON object.")
@click.option("--precision", type=click.IntRange(0, 12), default=6, show_default=True,
              help="Decimal places of metrics in JSON output.")
def evaluate_cmd(model, data, task, device, dtype, batch_size, max_length, seed, fmt, precision, **read_kw):
    """Evaluate a model: accuracy/macro-F1 with per-label P/R/F1 and a confusion matrix
    (classify), entity-level P/R/F1 per type (ner, conlleval semantics), or MLM loss,
    perplexity and top-1/top-5 accuracy, plus NSP accuracy when the model has an NSP
    head and the data has two or more documents (mlm).

    \b
    Examples:
      bertcli evaluate -m runs/sst2 --data sst2/dev.tsv
      bertcli evaluate -m runs/conll --data conll2003/test.txt -f json | jq .f1
      bertcli evaluate --task ner --data conll2003/test.txt   # the shipped ner default
    """
    from ..train import evaluate

    from .train import parse_label_map

    if not model:
        model = str(_shipped_default(task))

    read_kw["label_map"] = parse_label_map(read_kw.get("label_map"))
    kw = {k: v for k, v in read_kw.items() if v is not None}
    _check_task_options(model, task, kw)
    bar = _EvalProgress()
    try:
        res = evaluate(model, data, task=task, device=device, dtype=dtype, batch_size=batch_size,
                       max_length=max_length, seed=seed, progress=bar, **kw)
    finally:
        bar.stop()
    fmt = fmt or ("table" if sys.stdout.isatty() else "json")
    for w in res.get("warnings", []) or []:
        click.echo(f"Warning: {w}", err=True)
    if fmt == "json":
        from ..io.writers import round_floats

        click.echo(json.dumps(round_floats(res, precision), ensure_ascii=False))
        return
    _tables(res)


_NAMES = {"classify": "a classify", "ner": "an NER", "mlm": "an MLM"}
#: the shipped default a task evaluates without --model (a defaults.DEFAULT_FOR_TASK key)
_DEFAULT_OF = {"classify": "sentiment", "ner": "ner", "mlm": "fill-mask"}


def _shipped_default(task: str | None):
    """The shipped default model folder of ``task`` (evaluate without ``--model``).

    Raises:
        UsageError: no ``--task`` to pick it by.
        ModelError: the default is not installed (from :func:`bertcli.defaults.default_model_dir`).
    """
    from .. import defaults
    from ..errors import UsageError

    if task is None:
        raise UsageError("evaluate needs --model DIR, or --task to evaluate the shipped default of that task",
                         "e.g. bertcli evaluate --task classify --data sst2/dev.tsv "
                         "--label-map 0=negative,1=positive")
    return defaults.default_model_dir(_DEFAULT_OF[task])


def _check_task_options(model: str, task: str | None, kw: dict) -> None:
    """Before any work: an option of another task's data (``--tag-column`` on a classify
    model, ``--label-map`` on an MLM one, ``--seed`` outside MLM...) is a usage error naming
    the option and the task it belongs to, and so is a ``--data-format`` the task's reader
    does not know; NER without seqeval is refused here too, not after all the inference."""
    from ..errors import UsageError
    from ..loading import resolve_model_dir
    from ..train.data import CLASSIFY_FORMATS, NER_FORMATS
    from ..train.evaluation import EVAL_TASKS, check_extras, model_task, reader_options

    ctx = click.get_current_context()
    given = task is not None
    task = task or model_task(resolve_model_dir(model, "classify"))
    whose = f"--task is {task}" if given else f"'{model}' is {_NAMES[task]} model"
    seed = ctx.get_parameter_source("seed") == click.core.ParameterSource.COMMANDLINE
    for k in [*kw, *(["seed"] if seed else [])]:
        if k == "seed" and task != "mlm" or k != "seed" and k not in reader_options(task):
            owners = ["mlm"] if k == "seed" else [t for t in EVAL_TASKS if k in reader_options(t)]
            opt = "--" + k.replace("_", "-")
            raise UsageError(f"{opt} is for {' and '.join(_NAMES[t].split()[1] for t in owners)} evaluation, "
                             f"but {whose}", f"drop {opt}")
    formats = {"classify": CLASSIFY_FORMATS, "ner": NER_FORMATS}.get(task)
    if kw.get("data_format") is not None and formats and kw["data_format"] not in formats:
        raise UsageError(f"--data-format '{kw['data_format']}' is not {_NAMES[task]} data format",
                         f"use one of {', '.join(formats)}")
    check_extras(task)


def _fit(title_parts: list[str], width: int) -> str:
    """``task · model · data`` in at most ``width`` characters: the paths share the room
    left, and one too long keeps its end from a ``/`` on (``…/sst2/dev.tsv``), so that the
    names that tell runs apart stay."""
    fixed, paths = title_parts[0], title_parts[1:]
    left = width - len(fixed) - 3 * len(paths)
    room = [0] * len(paths)
    for k, j in enumerate(sorted(range(len(paths)), key=lambda j: len(paths[j]))):
        room[j] = min(len(paths[j]), max(left // (len(paths) - k), 2))
        left -= room[j]
    out = []
    for p, r in zip(paths, room):
        if len(p) > r:
            tail = p[len(p) - r + 1:]
            p = "…" + (tail[tail.index("/"):] if "/" in tail else tail)
        out.append(p)
    return " · ".join([fixed, *out])


def _tables(res: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    # label names and paths are printed as written, never as rich markup or emoji codes
    con = Console(highlight=False, markup=False, emoji=False)
    # one line, as wide as the terminal at most (a narrow table used to wrap it to three)
    title = _fit([str(res.get("task")), str(res.get("model")), str(res.get("data"))], con.width)
    head = Table("metric", "value", title=title, header_style="bold", min_width=len(title))
    for k, v in res.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            head.add_row(k, f"{v:.4f}" if isinstance(v, float) else str(v))
    con.print(head)
    per = res.get("per_label") or res.get("per_type")
    if per:
        t = Table("label" if "per_label" in res else "type", "precision", "recall", "f1", "support", header_style="bold")
        for name, m in per.items():
            t.add_row(str(name), f"{m['precision']:.4f}", f"{m['recall']:.4f}", f"{m['f1']:.4f}", str(m["support"]))
        con.print(t)
    cm = res.get("confusion_matrix")
    if cm:
        labels = [str(x) for x in cm["labels"]]
        t = Table("true \\ predicted", *labels, header_style="bold")
        for name, row in zip(labels, cm["matrix"]):
            t.add_row(name, *[str(x) for x in row])
        con.print(t)


class _EvalProgress:
    """A progress bar on stderr (a terminal only) fed by evaluate()'s ``progress`` events
    (``{"event": "progress", "done", "total"}`` examples); warnings print above it."""

    def __init__(self):
        self.prog = self.task = None

    def __call__(self, ev: dict) -> None:
        if ev.get("event") == "warning":
            return  # evaluate() also returns them; the command prints them once, after the run
        if ev.get("event") != "progress" or not sys.stderr.isatty():
            return
        if self.prog is None:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            from .output import live_progress
            self.prog = live_progress(TextColumn("evaluate"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                      TextColumn("eta"), TimeRemainingColumn())
            self.task = self.prog.add_task("evaluate", total=ev.get("total"))
            self.prog.start()
        self.prog.update(self.task, completed=ev.get("done", 0))

    def stop(self) -> None:
        if self.prog is not None:
            self.prog.stop()
            self.prog = None
