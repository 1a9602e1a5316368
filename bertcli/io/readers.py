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
  field(s). A blank line (only spaces and TABs) is not a record: it is skipped, as jq,
  pandas and the JSON Lines convention do; line numbers stay the file's own. A missing
  field's error lists the keys the object has. JSON strings must be Unicode text: an
  escaped lone surrogate (``"\\ud800"``) makes an error record (it could not be written
  out as UTF-8).
* ``json``: one JSON array of objects (what ``--format json`` writes); each element is
  a record, numbered by the line its ``{`` is on. The file is read whole.
* ``csv``/``tsv``: the first row is the header; ``--field`` names a column. TSV has no
  quoting (the GLUE/IANA convention); CSV uses standard double-quote quoting.
* ``auto``: binary data is refused (an error naming what it looks like: a ZIP or
  gzip file, an executable, UTF-16 text, ...). Then by file extension (.jsonl/.ndjson,
  .json: a JSON array when its first non-blank character is ``[``, else JSONL; .csv,
  .tsv/.tab, .txt), else by content (:mod:`bertcli.io.sniff`): JSONL, a JSON array, a
  CSV/TSV table with a header row, or plain text. A table found this way, or a text
  that looks like one, is said in a notice on the first record (see
  :attr:`Record.notices`).

Fatal records: where the rest of a file cannot be read at all (a CSV quote that is
never closed, a syntax error in a JSON array), the reader yields one error record with
``fatal`` set and stops; it stops the run even with ``--on-error skip``, so no record is
ever lost silently.
"""

from __future__ import annotations

import csv
import re
import sys
import uuid
from collections.abc import Iterable, Iterator
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..errors import InputError, UsageError
from . import sniff

FORMATS = ("auto", "text", "jsonl", "json", "csv", "tsv")
#: ``.json`` is sniffed: a JSON array when it starts with ``[``, else JSONL.
_EXT = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json?", ".csv": "csv", ".tsv": "tsv", ".tab": "tsv",
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
        fatal: nothing after this bad record can be read (the reader stops after it), so
            it ends the run even where bad records are skipped.
        notices: ``(kind, message)`` pairs about the whole input (kind ``note`` or
            ``warning``), on its first record only: how ``auto`` read it (``reading
            <stdin> as TSV: ...``) or what looks wrong. The CLI prints them on stderr
            before that record's result.
    """

    index: int
    line: int | None
    text: str | None = None
    text_pair: str | None = None
    fields: dict | None = None
    error: str | None = None
    fatal: bool = False
    notices: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    def to_error(self, source: str = "input") -> InputError:
        """This record's error as an :class:`InputError` naming ``source`` and the line."""
        return InputError(self.error or "bad record", line=self.line, source=source)


def from_args(texts: Iterable[str], pairs: bool = False) -> Iterator[Record]:
    """Records from command-line arguments; with ``pairs``, two arguments make one pair.

    An argument that is not valid UTF-8 (Python hands such bytes over as lone surrogates)
    makes an error record.

    Raises:
        UsageError: ``pairs`` with an odd number of texts (before any record is yielded).
    """
    texts = list(texts)
    if pairs and len(texts) % 2:
        raise UsageError(f"pairs need an even number of texts, got {len(texts)}",
                         "give TEXT_A TEXT_B (or use --input with two fields)")
    return _from_args(texts, pairs)


def _from_args(texts: list[str], pairs: bool) -> Iterator[Record]:
    step = 2 if pairs else 1
    for i in range(0, len(texts), step):
        group = texts[i:i + step]
        bad = next((e for e in map(surrogate_error, group) if e), None)
        if bad:
            yield Record(i // step, None, error=bad)
        else:
            yield Record(i // step, None, group[0], group[1] if pairs else None)


def surrogate_error(s: str) -> str | None:
    """Why ``s`` is not Unicode text that can be written as UTF-8, or None when it is.

    Python decodes undecodable bytes (in ``sys.argv``, say) to lone surrogates
    U+DC80..U+DCFF, and JSON can spell any lone surrogate as an escape (``"\\ud800"``);
    neither can be tokenised nor written out.
    """
    m = _SURROGATE.search(s)
    if m is None:
        return None
    c = ord(m.group())
    if 0xDC80 <= c <= 0xDCFF:
        return "invalid UTF-8 in the text"
    return _lone(c, "the text")


def _lone(c: int, where: str) -> str:
    return f"lone surrogate \\u{c:04x} in {where} (not a Unicode character)"


_SURROGATE = re.compile("[\ud800-\udfff]")


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
        UsageError: an unknown format; a ``field``/``field_b`` other than the default
            when ``auto`` finds plain text (the input is probably CSV/TSV on stdin).
        InputError: a CSV/TSV header without the field; with ``auto``, binary data.
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown input format '{fmt}'", f"use one of {', '.join(FORMATS)}")
    if pairs and field_b is None:
        field_b = "text_pair"
    notices: list[tuple[str, str]] = []
    how = None
    if fmt != "auto":
        lines = _lines(stream)
    else:
        head, eof = sniff.read_head(stream)
        bad = sniff.binary_kind(head, eof, name or "input")
        if bad is not None:
            raise InputError(*bad, source=name or "input")
        lines = _lines(sniff.prefixed(head, stream))
        fmt = _EXT.get(Path(name).suffix.lower(), "") if name and name != "<stdin>" else ""
        if fmt in ("", "text"):
            sample = [_strip_eol(x) for x in (head if eof else head[:head.rfind(b"\n") + 1]).split(b"\n")]
            if sample and sample[0].startswith(b"\xef\xbb\xbf"):
                sample[0] = sample[0][3:]
            fields = [field] + ([field_b] if pairs else [])
            guess = sniff.guess_format([x.decode("utf-8", errors="replace") for x in sample], eof, fields, pairs,
                                       name or "the input", by_name=fmt or None)
            fmt, notices, how = guess.fmt, guess.notices, guess.how
        elif fmt == "json?":
            upto = []  # the lines up to the first non-blank one
            for n, raw in lines:
                upto.append((n, raw))
                if raw.strip():
                    break
            fmt = "json" if upto and upto[-1][1].lstrip().startswith(b"[") else "jsonl"
            lines = _chain(upto, lines)
        named = [f for f, default in ((field, "text"), (field_b, "text_pair")) if f not in (None, default)]
        if fmt == "text" and named:
            # A field name means structured input; reading it as plain lines would
            # classify a CSV header and whole rows without a word of warning.
            raise UsageError(f"field '{named[0]}' needs JSONL, CSV or TSV input, but {name or 'the input'} "
                             "reads as plain text", "pass --input-format csv, tsv or jsonl")
    if fmt in ("jsonl", "json"):
        from .json_input import _read_json_array, _read_jsonl  # (it imports Record and the decoding from here)
    if fmt == "text":
        records = _read_text(lines, pairs)
    elif fmt == "jsonl":
        records = _read_jsonl(lines, field, field_b if pairs else None)
    elif fmt == "json":
        records = _read_json_array(lines, field, field_b if pairs else None)
    else:
        records = _read_delimited(lines, "," if fmt == "csv" else "\t", field, field_b if pairs else None, name,
                                  how)
    for rec in records:
        if notices:
            rec.notices, notices = notices, []
        yield rec


def _chain(first, rest):
    yield from first
    yield from rest


def _strip_eol(raw: bytes) -> bytes:
    if raw.endswith(b"\n"):
        raw = raw[:-1]
    if raw.endswith(b"\r"):
        raw = raw[:-1]
    return raw


def _lines(stream) -> Iterator[tuple[int, bytes]]:
    """(1-based line number, raw line without its line end); BOM dropped from line 1.
    ``stream``: a binary stream, or any iterable of its lines."""
    for n, raw in enumerate(stream, 1):
        raw = _strip_eol(raw)
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
    if pairs:  # a blank line (no TAB) holds no pair: skipped, as JSONL skips one (a trailing one is
        # common); "\t" alone is a pair of two empty texts, kept
        lines = ((n, raw) for n, raw in lines if b"\t" in raw or raw.strip(b" \r"))
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


def _read_delimited(lines, delim: str, field: str, field_b: str | None, name, how: str | None = None
                    ) -> Iterator[Record]:
    # Decode line by line so that a bad byte is reported with its line; quoted CSV
    # fields may span lines, which csv.reader handles across the decoded lines.
    bad: dict[int, str] = {}
    linemap: list[int] = []
    # A last line that cannot occur in the data: a row that swallows it is a quoted field
    # still open at the end of the file (Python's csv would return it silently).
    eof = f"\ufdd0bertcli-end-of-input-{uuid.uuid4().hex}"

    def decoded():
        for n, raw in lines:
            try:
                s = _decode(raw)
            except UnicodeDecodeError as e:
                bad[len(linemap)] = _bad_utf8(e)
                s = raw.decode("utf-8", errors="replace")
            linemap.append(n)
            yield s + "\n"
        yield eof + "\n"

    def unterminated(row: list[str]) -> bool:
        return bool(row) and row[-1].endswith(eof + "\n")

    def opened_on(row: list[str]) -> int:
        # the open field holds every line from the quote's on, each ending in "\n"
        return linemap[-1] - row[-1][:-len(eof) - 1].count("\n") + 1

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
    if header == [eof]:  # an empty file
        return
    if unterminated(header):
        raise InputError(f"the header has a quoted field that is never closed (from line {opened_on(header)})",
                         line=1, source=name)
    header = [h.strip() for h in header]
    for key in (field, field_b):
        if key is not None and key not in header:
            hint = "choose one with --field" + ("/--field-b" if field_b else "")
            plain = "one A<TAB>B pair" if field_b else "one text"
            if how:  # the format was guessed: say why, and how to read plain lines instead
                hint += (f" ({name or 'the input'} was read as {'TSV' if delim == chr(9) else 'CSV'}, {how}; "
                         f"--input-format text reads each line as {plain})")
            elif field_b and len(header) == 2 and delim == "\t":  # perhaps A<TAB>B lines, no header row
                hint += f", or pass --input-format text to read each line as {plain}"
            raise InputError(f"no column '{key}' in the header ({', '.join(header) or 'empty'})", hint,
                             line=1, source=name)
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
        if row == [eof]:
            return
        if unterminated(row):
            first, last = opened_on(row), linemap[-1]
            lost = f"lines {first}-{last}" if last > first else f"line {first}"
            yield Record(i, first, fatal=True,
                         error=f"unterminated quoted field: the quote opened on this line is never closed, "
                               f"so {lost} cannot be read")
            return
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
    terminal; otherwise raises :class:`UsageError` asking for text (also for both given,
    an odd number of pair arguments, or a ``field``/``field_b`` other than the default
    with ``args``: an argument is the text itself, so the name would be ignored).
    """
    if args and input_path:
        raise UsageError("give texts as arguments or --input, not both")
    if args:
        named = [(opt, f) for opt, f, default in (("--field-a" if pairs else "--field", field, "text"),
                                                  ("--field-b", field_b, "text_pair")) if f not in (None, default)]
        if named:
            # it would be ignored: an argument is the text itself, it has no fields
            raise UsageError(f"{named[0][0]} '{named[0][1]}' names a field of records read from --input or stdin; "
                             "texts given as arguments have none", f"drop {named[0][0]}")
        return from_args(args, pairs), "arguments"
    if input_path is None:
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no input: give a text as an argument, --input FILE, or pipe lines into stdin",
                             "see --help for examples")
        input_path = "-"
    stream, name = open_source(input_path)
    return read_records(stream, fmt, field, field_b, name, pairs), name
