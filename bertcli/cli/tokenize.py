"""``bertcli tokenize``: the pieces, ids, offsets, word and segment ids a model reads.

Needs only the tokenizer: no torch import, so it starts and runs in a fraction of a second.
"""

from __future__ import annotations

import json
import os
import unicodedata

import click

from ..errors import InputError, ModelError, UsageError
from .options import input_options
from .output import TableWriter, write_results

#: background colours of consecutive pieces (ColorBrewer "Paired", light half), black text:
#: readable on dark and light terminals alike.
PALETTE = ("#a6cee3", "#b2df8a", "#fb9a99", "#fdbf6f", "#cab2d6", "#ffff99")


def visible(s: str) -> str:
    """``s`` with control characters as their Unicode Control Pictures (TAB -> U+2409 ␉,
    LF -> U+240A ␊, DEL -> U+2421 ␡; C1 controls -> U+2426 ␦), one character each, so that
    character offsets still line up and the terminal is not driven by the text."""
    out = []
    for c in s:
        o = ord(c)
        if o < 0x20:
            out.append(chr(0x2400 + o))
        elif o == 0x7F:
            out.append("\u2421")
        elif 0x80 <= o < 0xA0 or (unicodedata.category(c) in ("Zl", "Zp")):
            out.append("\u2426")
        else:
            out.append(c)
    return "".join(out)


def coloured_text(text: str, tokens: list[dict], seq: int | None):
    """The text with the characters of each piece on its colour (pieces of text ``seq`` of a
    pair; None: all non-special pieces)."""
    from rich.text import Text

    t = Text(visible(text), no_wrap=False)
    for k, tok in enumerate(tokens):
        if tok["start"] is None or (seq is not None and tok.get("sequence_id") != seq):
            continue
        if tok["end"] > tok["start"]:
            t.stylize(f"black on {PALETTE[k % len(PALETTE)]}", tok["start"], tok["end"])
    return t


def piece_grid(tokens: list[dict], width: int, pairs: bool) -> list:
    """Rows ``token`` / ``id`` / ``word`` (and ``type`` for pairs), one column per piece on its
    colour, wrapped to ``width`` cells."""
    from rich.cells import cell_len
    from rich.text import Text

    names = ["token", "id", "word"] + (["type"] if pairs else [])
    label_w = max(map(len, names)) + 1
    cols = []
    for k, tok in enumerate(tokens):
        cells = [visible(tok["token"]), str(tok["id"]), "" if tok["word_id"] is None else str(tok["word_id"])]
        if pairs:
            cells.append(str(tok["token_type_id"]))
        w = max(cell_len(c) for c in cells)
        style = "dim" if tok["special"] else f"black on {PALETTE[k % len(PALETTE)]}"
        cols.append((w, cells, style))
    lines, start = [], 0
    while start < len(cols) or not lines:
        used, end = label_w, start
        while end < len(cols) and (end == start or used + cols[end][0] + 1 <= width):
            used += cols[end][0] + 1
            end += 1
        for r, name in enumerate(names):
            line = Text(name.ljust(label_w), style="bold" if r == 0 else "dim")
            for w, cells, style in cols[start:end]:
                c = cells[r]
                pad = " " * (w - cell_len(c))
                line.append(c + pad, style=style if r == 0 else ("dim" if style == "dim" else ""))
                line.append(" ")
            lines.append(line)
        start = end
        if start >= len(cols):
            break
    return lines


class TokenTableWriter(TableWriter):
    """One block per record at a terminal: a header (record number, token count, maximum),
    the text with each piece's characters on its colour, then the pieces in the same colours
    with their ids and word ids (and segment ids for pairs)."""

    def __init__(self, file=None, pairs: bool = False):
        from rich.console import Console
        self.console = Console(highlight=False, soft_wrap=False, markup=False, emoji=False, file=file)
        self.pairs, self.count, self.rows = pairs, 0, []

    def write(self, record: dict) -> None:
        from rich.text import Text

        self.count += 1
        n, mx = record["n_tokens"], record["max_length"]
        head = Text(f"#{self.count}", style="bold")
        head.append(f"  {n} tokens" + (f" (max {mx})" if mx is not None else ""), style="dim")
        if record["exceeds_max_length"]:
            head.append(f"  {n - mx} over the maximum: other commands truncate it", style="bold red")
        self.console.print(head)
        toks = record["tokens"]
        if self.pairs:
            self.console.print(Text("A ", style="dim") + coloured_text(record.get("text") or "", toks, 0))
            self.console.print(Text("B ", style="dim") + coloured_text(record.get("text_pair") or "", toks, 1))
        else:
            self.console.print(coloured_text(record.get("text") or "", toks, None))
        for line in piece_grid(toks, max(20, self.console.width), self.pairs):
            self.console.print(line, overflow="fold")
        self.console.print()

    def flush(self) -> None:
        self.console.file.flush()

    def close(self) -> None:
        self.flush()


#: one token object as ``json.dumps`` writes it (default separators), for the fast path below
_SPECIAL = '{"token": %s, "id": %d, "start": null, "end": null, "word_id": null, "token_type_id": %d, "special": true'
_PIECE = '{"token": %s, "id": %d, "start": %d, "end": %d, "word_id": %s, "token_type_id": %d, "special": false'


def tokens_json(tokens: list[dict]) -> str:
    """``json.dumps(tokens, ensure_ascii=False)`` for :func:`bertcli.tasks.tokenize.tokenize`'s
    token objects, formatted directly: the same text at about a third of the cost (10,000
    lines make some 180,000 token objects, and the generic encoder was a quarter of the run).
    Anything of another shape goes through ``json.dumps``."""
    from json.encoder import encode_basestring as enc

    parts = []
    for d in tokens:
        if len(d) == 7:
            end = "}"
        elif len(d) == 8 and "sequence_id" in d:  # pairs
            q = d["sequence_id"]
            end = ', "sequence_id": %s}' % ("null" if q is None else int(q))
        else:
            return json.dumps(tokens, ensure_ascii=False)
        if d["special"] is True and d["start"] is None and d["word_id"] is None:
            parts.append(_SPECIAL % (enc(d["token"]), d["id"], d["token_type_id"]) + end)
        elif d["special"] is False:
            w = d["word_id"]
            parts.append(_PIECE % (enc(d["token"]), d["id"], d["start"], d["end"], "null" if w is None else int(w),
                                   d["token_type_id"]) + end)
        else:
            return json.dumps(tokens, ensure_ascii=False)
    return "[" + ", ".join(parts) + "]"


def _value(v, enc) -> str:
    """``json.dumps(v, ensure_ascii=False)``, without its call overhead for the scalars."""
    if type(v) is str:
        return enc(v)
    if v is None:
        return "null"
    if v is True or v is False:
        return "true" if v else "false"
    if type(v) is int:
        return str(v)
    return json.dumps(v, ensure_ascii=False)


class _Jsonl:
    """JSONL (or a streamed JSON array) of tokenize records, written as
    :class:`bertcli.io.writers.JsonlWriter` writes them but without its float-rounding pass
    (these records hold no floats) and with the token list formatted by :func:`tokens_json`."""

    def __init__(self, stream, array: bool = False):
        self.stream, self.array, self.count, self.closed = stream, array, 0, False

    def write(self, record: dict) -> None:
        from json.encoder import encode_basestring as enc

        s = "{" + ", ".join(enc(k) + ": " + (tokens_json(v) if k == "tokens" and isinstance(v, list)
                                              else _value(v, enc))
                            for k, v in record.items()) + "}"
        if self.array:
            s = ("[\n" if self.count == 0 else ",\n") + s
        else:
            s += "\n"
        self.stream.write(s)
        self.count += 1

    def flush(self) -> None:
        self.stream.flush()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self.array:
            self.stream.write("[]\n" if self.count == 0 else "\n]\n")
        self.flush()


@click.command("tokenize")
@click.argument("texts", nargs=-1)
@click.option("--pairs", "read_pairs", is_flag=True,
              help="Texts are pairs: arguments A B (A1 B1 A2 B2 ...), or records with --field-a/--field-b "
                   "(A<TAB>B lines), tokenised as [CLS] A [SEP] B [SEP].")
@click.option("-m", "--model", "model", metavar="DIR|HUB_ID", envvar="BERTCLI_MODEL", show_envvar=True,
              help="Model folder or hub id (local Hugging Face cache) whose tokenizer to use; only the tokenizer "
                   "files are read. Default: the shipped default models' tokenizer (all-MiniLM-L6-v2, uncased "
                   "WordPiece, 512 tokens).")
@click.option("--revision", metavar="REV", default=None,
              help="With a hub id: the branch, tag or commit of the cached snapshot (default: main).")
@input_options(pairs=True)
@click.option("-f", "--format", "fmt", type=click.Choice(["table", "jsonl", "json"]), default=None,
              help="Output format. Default: table on a terminal, else jsonl.")
@click.option("--on-error", type=click.Choice(["fail", "skip"]), default="fail", show_default=True,
              help="Bad input record: stop with exit 1, or report it on stderr and go on.")
@click.option("-o", "--output", "output", metavar="FILE", help="Write results to FILE instead of stdout.")
@click.option("-q", "--quiet", is_flag=True, help="No notices or warnings on stderr.")
def tokenize_cmd(texts, read_pairs, model, revision, input_path, input_format, field, field_b, fmt, on_error,
                 output, quiet):
    """Show the pieces a model reads: token, id, character offsets, word and segment ids.

    Only the tokenizer is loaded (no model, no torch), so it is instant. Offsets
    index the original text (text[start:end] is what the piece was read from);
    the template's [CLS]/[SEP] have null offsets. Nothing is truncated: each
    record says how many tokens the text makes and whether that exceeds the
    model's maximum (where the other commands truncate).

    \b
    Examples:
      bertcli tokenize "Unaffable émigrés" -m bert-base-cased
      bertcli tokenize --pairs "He opened the fridge." "It was empty."
      cut -f1 sst2/dev.tsv | sed 1d | bertcli tokenize | jq -c '[.n_tokens, .exceeds_max_length]'
    \b
    JSONL record: input fields (or text[, text_pair]) plus
      tokens: [{token, id, start, end, word_id, token_type_id, special}]
        (pairs: also sequence_id, 0 = text, 1 = text_pair, null = template token)
      n_tokens, max_length, exceeds_max_length
    """
    from ..io.readers import iter_input
    from ..tasks import tokenize as task
    from ..tasks.base import StreamOptions

    ctx = click.get_current_context()
    if ctx.get_parameter_source("field_b") == click.core.ParameterSource.COMMANDLINE:
        if texts:
            raise click.UsageError("--field-b names the second text of records read from --input or stdin; "
                                   "with arguments give A B pairs with --pairs")
        read_pairs = True
    records, source = iter_input(list(texts), input_path, input_format, field, field_b if read_pairs else None,
                                 read_pairs)
    stream_out = None
    if output:
        tp = os.path.abspath(output)
        if input_path and input_path != "-" and os.path.exists(input_path) and os.path.exists(tp) \
                and os.path.samefile(input_path, tp):
            raise UsageError(f"the output file '{output}' is the input file", "write the results to another file")
        if not os.path.isdir(os.path.dirname(tp)):
            raise InputError(f"cannot write '{output}': folder '{os.path.dirname(tp)}' does not exist")
    try:
        tok = task.load_tokenizer(model, revision)
    except ModelError as e:
        if ctx.get_parameter_source("model") == click.core.ParameterSource.ENVIRONMENT:
            e.message = f"{e.message} (from $BERTCLI_MODEL)"
        raise
    if output:
        try:
            stream_out = open(output, "w", encoding="utf-8", newline="\n")
        except OSError as e:
            raise InputError(f"cannot write '{output}': {e.strerror}") from None
    import sys
    out = stream_out or sys.stdout
    if fmt is None:
        fmt = "jsonl" if stream_out is not None or not out.isatty() else "table"
    writer = TokenTableWriter(stream_out, read_pairs) if fmt == "table" else _Jsonl(out, array=fmt == "json")
    try:
        write_results(task.stream(tok, records, StreamOptions(), pairs=read_pairs), writer, on_error=on_error,
                      source=source, pairs=read_pairs, quiet=quiet)
    finally:
        if stream_out is not None:
            stream_out.close()
