"""Read input records lazily from arguments, a file or stdin.

One record per input line (text, JSONL) or row (CSV/TSV with a header). A record that
cannot be read is not raised: it comes out as a :class:`Record` with ``error`` set and
the 1-based line number, so the caller decides whether to stop or skip, and every
record before it is still processed (see ``bertcli.batching.windows``).

Conventions:

* UTF-8, strictly: undecodable bytes make an error record naming the line. A UTF-8
  BOM at the start is dropped; CRLF and LF line ends are both accepted.
* ``text``: the line itself (without its line end) is the text; empty and
  whitespace-only lines are records too. For pairs, the line is split at the first TAB.
* ``jsonl``: each line must be a JSON object with string value(s) in the chosen
  field(s); an empty line is an error record.
* ``csv``/``tsv``: the first row is the header; ``--field`` names a column. TSV has no
  quoting (the GLUE/IANA convention); CSV uses standard double-quote quoting.
* ``auto``: by file extension (.jsonl/.ndjson/.json, .csv, .tsv/.tab, else by content:
  a first line starting with ``{`` is JSONL, otherwise plain text).
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError

FORMATS = ("auto", "text", "jsonl", "csv", "tsv")
_EXT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
        ".txt": "text", ".text": "text"}


@dataclass
class Record:
    """One input record.

    Attributes:
        index: 0-based position among the records of this input.
        line: 1-based line number in the source (for CSV, the row's first line), or None
            for command-line arguments.
        text: the text (None only when ``error`` is set).
        text_pair: the second text of a pair, or None.
        fields: the original JSONL object / CSV row, echoed back in the output; None for
            plain text and arguments.
        error: why the record could not be read, or None.
    """

    index: int
    line: int | None
    text: str | None = None
    text_pair: str | None = None
    fields: dict | None = None
    error: str | None = None

    def to_error(self, source: str = "input") -> InputError:
        return InputError(self.error or "bad record", line=self.line, source=source)


def from_args(texts: Iterable[str], pairs: bool = False) -> Iterator[Record]:
    """Records from command-line arguments; with ``pairs``, two arguments make one pair."""
    texts = list(texts)
    if pairs:
        if len(texts) % 2:
            raise InputError(f"pairs need an even number of texts, got {len(texts)}",
                             "give TEXT_A TEXT_B (or use --input with two fields)")
        for i in range(0, len(texts), 2):
            yield Record(i // 2, None, texts[i], texts[i + 1])
    else:
        for i, t in enumerate(texts):
            yield Record(i, None, t)


def open_source(path: str | Path) -> tuple[BinaryIO, str]:
    """Open ``path`` (``-`` is stdin) for binary reading; return the stream and its display name.

    Raises:
        InputError: the file does not exist or cannot be read.
    """
    if str(path) == "-":
        return sys.stdin.buffer, "<stdin>"
    p = Path(path)
    try:
        return open(p, "rb"), str(p)
    except FileNotFoundError:
        raise InputError(f"input file '{p}' does not exist") from None
    except IsADirectoryError:
        raise InputError(f"input '{p}' is a folder, not a file") from None
    except OSError as e:
        raise InputError(f"cannot read '{p}': {e.strerror}") from None


def read_records(stream: BinaryIO, fmt: str = "auto", field: str = "text", field_b: str | None = None,
                 name: str | None = None, pairs: bool = False) -> Iterator[Record]:
    """Read records lazily from a binary stream.

    Args:
        stream: binary input (a file or ``sys.stdin.buffer``); read line by line.
        fmt: one of :data:`FORMATS`.
        field: JSONL key / CSV column of the text.
        field_b: JSONL key / CSV column of the second text (pairs); default ``text_pair``.
        name: the source's name, for the extension check of ``auto``.
        pairs: read text pairs (for ``text``: split each line at its first TAB).

    Yields:
        :class:`Record`, one per line/row, in order; bad ones have ``error`` set.

    Raises:
        InputError: an unknown format, or a CSV/TSV header without the field.
    """
    if fmt not in FORMATS:
        raise InputError(f"unknown input format '{fmt}'", f"use one of {', '.join(FORMATS)}")
    if pairs and field_b is None:
        field_b = "text_pair"
    lines = _lines(stream)
    if fmt == "auto":
        fmt = _EXT.get(Path(name).suffix.lower(), "") if name and name != "<stdin>" else ""
        if not fmt:
            first = next(lines, None)
            if first is None:
                return
            fmt = "jsonl" if first[1].lstrip(b"\xef\xbb\xbf \t").startswith(b"{") else "text"
            lines = _chain([first], lines)
    if fmt == "text":
        yield from _read_text(lines, pairs)
    elif fmt == "jsonl":
        yield from _read_jsonl(lines, field, field_b if pairs else None)
    else:
        yield from _read_delimited(lines, "," if fmt == "csv" else "\t", field, field_b if pairs else None, name)


def _chain(first, rest):
    yield from first
    yield from rest


def _lines(stream: BinaryIO) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line without its line end); BOM dropped from line 1."""
    for n, raw in enumerate(stream, 1):
        if raw.endswith(b"\n"):
            raw = raw[:-1]
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if n == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        yield n, raw


def _decode(raw: bytes) -> str:
    return raw.decode("utf-8")


def _bad_utf8(e: UnicodeDecodeError) -> str:
    return f"invalid UTF-8 at byte {e.start}"


def _decoded(lines):
    """``(index, line_number, text, None)``, or ``(index, line_number, None, error_record)``."""
    for i, (n, raw) in enumerate(lines):
        try:
            yield i, n, _decode(raw), None
        except UnicodeDecodeError as e:
            yield i, n, None, Record(i, n, error=_bad_utf8(e))


def _read_text(lines, pairs: bool) -> Iterator[Record]:
    for i, n, s, bad in _decoded(lines):
        if bad is not None:
            yield bad
            continue
        if pairs:
            a, sep, b = s.partition("\t")
            if not sep:
                yield Record(i, n, error="expected two texts separated by a TAB")
                continue
            yield Record(i, n, a, b)
        else:
            yield Record(i, n, s)


def _get_str(obj: dict, key: str) -> tuple[str | None, str | None]:
    if key not in obj:
        return None, f"missing field '{key}'"
    v = obj[key]
    if not isinstance(v, str):
        return None, f"field '{key}' is {_json_kind(v)}, expected a string"
    return v, None


def _read_jsonl(lines, field: str, field_b: str | None) -> Iterator[Record]:
    for i, n, s, bad in _decoded(lines):
        if bad is not None:
            yield bad
            continue
        if not s.strip():
            yield Record(i, n, error="empty line, expected a JSON object")
            continue
        try:
            obj = json.loads(s)
        except json.JSONDecodeError as e:
            yield Record(i, n, error=f"malformed JSON: {e.msg} at column {e.colno}")
            continue
        except RecursionError:
            yield Record(i, n, error="malformed JSON: nested too deeply")
            continue
        except ValueError as e:  # e.g. an integer longer than Python's int_max_str_digits
            yield Record(i, n, error=f"malformed JSON: {str(e).split(':')[0]}")
            continue
        if not isinstance(obj, dict):
            yield Record(i, n, error=f"expected a JSON object, got {_json_kind(obj)}")
            continue
        text, err = _get_str(obj, field)
        pair = None
        if err is None and field_b is not None:
            pair, err = _get_str(obj, field_b)
        if err:
            yield Record(i, n, fields=obj, error=err)
        else:
            yield Record(i, n, text, pair, fields=obj)


def _json_kind(v) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number", dict: "an object"}.get(type(v), type(v).__name__)


def _read_delimited(lines, delim: str, field: str, field_b: str | None, name) -> Iterator[Record]:
    # Decode line by line so that a bad byte is reported with its line; quoted CSV
    # fields may span lines, which csv.reader handles across the decoded lines.
    bad: dict[int, str] = {}
    linemap: list[int] = []

    def decoded():
        for n, raw in lines:
            try:
                s = _decode(raw)
            except UnicodeDecodeError as e:
                bad[len(linemap)] = _bad_utf8(e)
                s = raw.decode("utf-8", errors="replace")
            linemap.append(n)
            yield s + "\n"

    src = decoded()
    # Python's csv refuses fields over 128 KiB by default; a long document in one cell is
    # valid input (text and JSONL have no such limit). 2**31 - 1 fits a C long everywhere.
    csv.field_size_limit(max(csv.field_size_limit(), 2**31 - 1))
    if delim == "\t":
        reader = csv.reader(src, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:
        reader = csv.reader(src, delimiter=",", quotechar='"', doublequote=True, strict=False)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        raise InputError(f"cannot read the header: {e}", line=1, source=name) from None
    header = [h.strip() for h in header]
    for key in (field, field_b):
        if key is not None and key not in header:
            raise InputError(f"no column '{key}' in the header ({', '.join(header) or 'empty'})",
                             "choose one with --field" + ("/--field-b" if field_b else ""), line=1, source=name)
    i = 0
    while True:
        start = len(linemap) + 1 - 1  # index of the next line to be read (0-based)
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            yield Record(i, linemap[-1] if linemap else None, error=f"malformed row: {e}")
            i += 1
            continue
        first_line = linemap[start] if start < len(linemap) else (linemap[-1] if linemap else None)
        errs = [bad.pop(k) for k in sorted(k for k in list(bad) if k >= start)]
        if errs:
            yield Record(i, first_line, error=errs[0])
        elif len(row) != len(header):
            yield Record(i, first_line, error=f"row has {len(row)} columns, the header has {len(header)}")
        else:
            rec = dict(zip(header, row))
            yield Record(i, first_line, rec[field], rec[field_b] if field_b else None, fields=rec)
        i += 1


def iter_input(args: list[str], input_path: str | None, fmt: str = "auto", field: str = "text",
               field_b: str | None = None, pairs: bool = False) -> tuple[Iterator[Record], str]:
    """Records from ``args`` if given, else from ``input_path`` (``-`` for stdin).

    Returns ``(records, source_name)``. With neither, reads stdin when it is not a
    terminal; otherwise raises :class:`InputError` asking for text.
    """
    if args and input_path:
        raise InputError("give texts as arguments or --input, not both")
    if args:
        return from_args(args, pairs), "arguments"
    if input_path is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise InputError("no input: give a text as an argument, --input FILE, or pipe lines into stdin",
                             "see --help for examples")
        input_path = "-"
    stream, name = open_source(input_path)
    return read_records(stream, fmt, field, field_b, name, pairs), name
