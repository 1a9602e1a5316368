"""Tell what an input is when its name does not: binary data, JSON, a CSV/TSV table, or text.

:func:`bertcli.io.readers.read_records` in ``auto`` mode reads the head of the input
(:func:`read_head`), refuses binary data (:func:`binary_kind`) and, for stdin and names
without a known extension, picks the reader with :func:`guess_format`.

The rules, in order, on the first lines of the input (blank lines ignored):

* binary: a file signature (ELF, ZIP, gzip, xz, zstd, 7-Zip, bzip2, PDF, PNG, JPEG,
  SQLite, Mach-O), UTF-16/UTF-32 text (a byte-order mark, or a NUL byte beside every
  ASCII character), or NUL bytes in a head that is not UTF-8 or is more than a tenth
  NUL. A NUL byte inside otherwise valid UTF-8 text is a character of that text (as
  ``grep -a`` reads it), not a reason to refuse the file.
* JSON: the first line starts with ``{`` (JSONL), or is ``[`` / ``[]`` or starts with
  ``[{`` (one JSON array, as ``--format json`` writes it).
* TSV: the first line is a header (two or more distinct names: a letter or ``#``
  first, at most three words of at most 40 characters, no sentence punctuation) and
  every line has its number of TABs (no quoting, the GLUE convention).
* CSV: the same with commas (standard quoting), and the header names the text
  column(s) asked for (``text`` unless ``--field``). A comma is common in prose, a TAB
  is not: without that column, lines such as ``Hello, world`` stay text (with a
  warning when the whole head has that shape).
* anything else is plain text. Lines that all hold the same number of TABs without a
  header row (``text<TAB>label``, as UCI's ``yelp_labelled.txt``) are read as text, with
  a warning: each whole line is one text there, label included (for pairs, the line is
  split at its first TAB and a warning is given only for three or more columns).

This is the evidence ``csv.Sniffer`` and sqlite-utils' ``--sniff`` weigh (a consistent
delimiter and a header row), made conservative for prose: a wrong guess must never turn
ordinary text into a table. Every guess of CSV/TSV is said on stderr (``Note:``) with
the option that overrides it.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

#: how much of the input is looked at: what one read returns, up to this many bytes
HEAD_BYTES = 64 * 1024
#: lines of the head used to judge a table
SAMPLE_LINES = 50


def read_head(stream: BinaryIO) -> tuple[bytes, bool]:
    """The first bytes of ``stream`` for sniffing, and whether they are all of it.

    Reads what is available (``read1``: one read of the underlying file or pipe) until
    the first line is whole; when that first line could be a table header (a TAB or a
    comma in it) and nothing follows it yet, waits for one more line. So a producer that
    writes a line at a time (``tail -f``) delays the first result by at most one line,
    and a file or ``cat`` gives up to :data:`HEAD_BYTES` at once.
    """
    read1 = getattr(stream, "read1", None) or stream.read
    chunks: list[bytes] = []
    size = n = 0
    want, first = 1, None
    while True:
        chunk = read1(HEAD_BYTES)
        if not chunk:
            return b"".join(chunks), True
        chunks.append(chunk)  # joined once, not per chunk: a first line may be very long
        size += len(chunk)
        n += chunk.count(b"\n")
        if n and first is None:
            chunks = [b"".join(chunks)]
            first = chunks[0][:chunks[0].index(b"\n")]
            if n == 1 and (b"\t" in first or b"," in first):
                want = 2
        if n >= want or n and size >= HEAD_BYTES:
            return b"".join(chunks), False


def prefixed(head: bytes, stream: BinaryIO) -> Iterator[bytes]:
    """The lines of ``head`` followed by the rest of ``stream``, as iterating the stream
    would have given them (each with its ``\\n``; a line cut at the end of the head is
    completed from the stream)."""
    *whole, tail = head.split(b"\n")
    for line in whole:
        yield line + b"\n"
    if tail:
        yield tail + stream.readline()
    yield from stream


# ------------------------------------------------------------------------- binary data

_SIGNATURES = [
    (b"\x7fELF", "an ELF executable", None),
    (b"PK\x03\x04", "a ZIP archive", "unzip it first"),
    (b"PK\x05\x06", "a ZIP archive", "unzip it first"),
    (b"\x1f\x8b", "gzip-compressed data", "decompress it first, e.g. zcat FILE | bertcli ..."),
    (b"\xfd7zXZ\x00", "xz-compressed data", "decompress it first, e.g. xzcat FILE | bertcli ..."),
    (b"\x28\xb5\x2f\xfd", "zstd-compressed data", "decompress it first, e.g. zstdcat FILE | bertcli ..."),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "extract it first"),
    (b"%PDF-", "a PDF document", "extract its text first, e.g. pdftotext FILE - | bertcli ..."),
    (b"\x89PNG\r\n\x1a\n", "a PNG image", None),
    (b"\xff\xd8\xff", "a JPEG image", None),
    (b"SQLite format 3\x00", "an SQLite database", "export the text column first, e.g. sqlite3 -json"),
    (b"\xcf\xfa\xed\xfe", "a Mach-O executable", None),
    (b"\xce\xfa\xed\xfe", "a Mach-O executable", None),
    (b"\xca\xfe\xba\xbe", "a Mach-O or Java class file", None),
    (b"\xff\xfe\x00\x00", "UTF-32 text", "convert it to UTF-8 first: iconv -f UTF-32 -t UTF-8 FILE"),
    (b"\x00\x00\xfe\xff", "UTF-32 text", "convert it to UTF-8 first: iconv -f UTF-32 -t UTF-8 FILE"),
    (b"\xff\xfe", "UTF-16 text", "convert it to UTF-8 first: iconv -f UTF-16 -t UTF-8 FILE"),
    (b"\xfe\xff", "UTF-16 text", "convert it to UTF-8 first: iconv -f UTF-16 -t UTF-8 FILE"),
]
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_TEXT_FORMATS = "bertcli reads UTF-8 text, JSONL, JSON, CSV or TSV"


def binary_kind(head: bytes, eof: bool, name: str = "FILE") -> tuple[str, str] | None:
    """``(message, hint)`` when ``head`` (the start of the input ``name``) is binary data or
    text in another encoding than UTF-8, else None. See the module docstring for the rules."""
    found = None
    for sig, what, hint in _SIGNATURES:
        if head.startswith(sig):
            found = what, hint
            break
    else:
        if _BZIP2.match(head):
            found = "bzip2-compressed data", "decompress it first, e.g. bzcat FILE | bertcli ..."
    nul = head.count(b"\x00")
    if found is None and nul:
        sample = head[:4096]
        even, odd = sample[0::2], sample[1::2]
        # ASCII as UTF-16 without a BOM: every other byte is NUL
        for zeros, other, order in ((odd, even, "LE"), (even, odd, "BE")):
            if len(zeros) >= 2 and zeros.count(0) >= 0.9 * len(zeros) and other.count(0) <= 0.1 * len(other):
                found = f"UTF-16{order} text", f"convert it to UTF-8 first: iconv -f UTF-16{order} -t UTF-8 FILE"
                break
        else:
            if nul * 10 > len(head):
                found = "many NUL bytes", None
            elif not _is_utf8(head, eof):
                found = "NUL bytes, and not UTF-8", None
    if found is None:
        return None
    what, hint = found
    file = name if name and not name.startswith("<") else "FILE"
    hint = (hint or _TEXT_FORMATS).replace("FILE", file)
    if what.endswith(" text"):
        return f"looks like {what}, not UTF-8", hint
    return f"looks like a binary file ({what}), not text", hint


def _is_utf8(data: bytes, eof: bool) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(data, final=eof)
        return True
    except UnicodeDecodeError:
        return False


# ------------------------------------------------------------------------- formats

@dataclass
class Guess:
    """What :func:`guess_format` found.

    Attributes:
        fmt: ``text``, ``jsonl``, ``json``, ``csv`` or ``tsv``.
        notices: ``(kind, message)`` pairs for the user, kind ``note`` or ``warning``.
        how: for a table, how it was recognised (added to a header error's hint).
    """

    fmt: str
    notices: list[tuple[str, str]] = field(default_factory=list)
    how: str | None = None


# A header cell: a name, not a phrase. Letters (any script) or '#' first; then word
# characters and . - / ( ) #, at most three words (MRPC's '#1 String', 'Review Text'),
# none of them a bare number ("Chapter 1") or ending in a period.
_NAME = re.compile(r"(?:#|[^\W\d])[\w.\-/()#]*(?: (?!\d+(?: |\Z))[\w.\-/()#]+){0,2}\Z")
_ABBREV = re.compile(r"\w\.(?: |\Z)")  # "Mr. Holmes", "etc.": prose, not a column name


def header_like(cells: list[str]) -> bool:
    """Whether ``cells`` read as a header row: two or more distinct names (see :data:`_NAME`)."""
    names = [c.strip() for c in cells]
    return (len(names) >= 2 and len(set(names)) == len(names)
            and all(len(c) <= 40 and _NAME.match(c) and not _ABBREV.search(c) for c in names))


@dataclass
class _Table:
    header: list[str]
    rows: int  # data rows in the sample, all as wide as the header
    spaced: bool  # a header cell has spaces around it ("banal , virulently ...": prose)


def _table(lines: list[str], delim: str, complete: bool) -> _Table | None:
    """The sample as a table of ``delim``-separated columns: every row as wide as the first
    (two or more columns) and at least one row after it; else None. ``complete``: the
    sample is the whole input (else its last CSV row may go on past it)."""
    if delim not in lines[0]:
        return None
    if delim == "\t":
        rows = [ln.split("\t") for ln in lines]
    else:
        rows = [r for r in csv.reader(lines, strict=False) if r]
        if not complete and len(rows) > 2:
            rows = rows[:-1]
    width = len(rows[0])
    if width < 2 or len(rows) < 2 or any(len(r) != width for r in rows[1:]):
        return None
    return _Table([c.strip() for c in rows[0]], len(rows) - 1, any(c != c.strip() for c in rows[0]))


def _cols(names: list[str], most: int = 6) -> str:
    shown = [n[:40] for n in names[:most]]
    return ", ".join(shown) + (f", ... ({len(names) - most} more)" if len(names) > most else "")


def guess_format(lines: list[str], eof: bool, fields: list[str], pairs: bool, name: str,
                 by_name: str | None = None) -> Guess:
    """The reader for an input whose first lines are ``lines`` (decoded, without line ends).

    Args:
        lines: the head's complete lines (all of them when ``eof``).
        eof: ``lines`` are the whole input.
        fields: the text field(s) asked for (``--field``, and ``--field-b`` for pairs).
        pairs: records are text pairs (a plain line is ``A<TAB>B``).
        name: the input's name, for messages.
        by_name: the format the input's name gives (``text`` for a ``.txt`` file), or None.
            A named format is kept; what the content suggests becomes a warning.

    Returns:
        a :class:`Guess`; see the module docstring for the rules.
    """
    sample = [ln for ln in lines if ln.strip()]
    complete = eof and len(sample) <= SAMPLE_LINES
    sample = sample[:SAMPLE_LINES]
    if not sample:
        return Guess(by_name or "text")
    first = sample[0].lstrip(" \t")
    if by_name is None:
        if first.startswith("{"):
            return Guess("jsonl")
        if first.rstrip() in ("[", "[]") or re.match(r"\[\s*\{", first):
            return Guess("json")
    guess = _guess_table(sample, complete, fields, pairs, name)
    if by_name is None or guess.fmt == by_name:
        return guess
    # a .txt name: read as text, but say what the content looks like
    notices = [(k, m) for k, m in guess.notices if k == "warning"]
    if guess.fmt in ("csv", "tsv"):
        notices.append(("warning", f"{name} is read as plain text (by its name), but it looks like "
                                   f"{guess.fmt.upper()}, {guess.how}; pass --input-format {guess.fmt} to read "
                                   "it as a table"))
    return Guess(by_name, notices)


def _guess_table(sample: list[str], complete: bool, fields: list[str], pairs: bool, name: str) -> Guess:
    tsv = _table(sample, "\t", complete)
    if tsv is not None and header_like(tsv.header):
        has = all(f in tsv.header for f in fields)
        # two one-word texts per line ("cat<TAB>dog") are pairs, not a header
        if has or not (pairs and len(tsv.header) == 2):
            k = len(tsv.header) - 1
            how = f"a header row and {k} TAB{'s' if k > 1 else ''} on every line"
            return Guess("tsv", [("note", f"reading {name} as TSV: {how} (header: {_cols(tsv.header)}); "
                                          "--input-format text reads each line as one text")], how)
    csv_ = _table(sample, ",", complete)
    if csv_ is not None and header_like(csv_.header) and all(f in csv_.header for f in fields):
        how = f"a header row and {len(csv_.header)} columns on every line"
        return Guess("csv", [("note", f"reading {name} as CSV: {how} (header: {_cols(csv_.header)}); "
                                      "--input-format text reads each line as one text")], how)
    if tsv is not None:
        n = len(tsv.header)
        if not pairs:
            return Guess("text", [("warning", (
                f"every line of {name} has {n - 1} TAB{'s' if n > 2 else ''} ({n} columns) and no header row, so "
                "each whole line, TABs and all, is read as one text; to read the text column only, cut it out "
                "(cut -f 1) or add a header row and pass --field NAME"))])
        if n > 2:
            return Guess("text", [("warning", (
                f"every line of {name} has {n - 1} TABs ({n} columns) and no header row: each pair is split at "
                f"the first TAB, so the second text holds {n - 1} columns; cut out the two text columns "
                "(cut -f 1,2) or add a header row and pass --field-a NAME --field-b NAME"))])
    if csv_ is not None and header_like(csv_.header) and csv_.rows >= 2 and not csv_.spaced:
        # (a warning only on firmer evidence than a CSV read: two rows and a tight header)
        missing = next(f for f in fields if f not in csv_.header)
        return Guess("text", [("warning", (
            f"the first line of {name} looks like a CSV header ({_cols(csv_.header)}) without a column "
            f"'{missing}', so each whole line, that one too, is read as one text; to read it as CSV pass "
            f"--field{'-a/--field-b' if pairs else ''} NAME"))])
    return Guess("text")
